//! RSA keys: the registry's comms key and the clients' signing and comms
//! keys, their encodings, the two RSA operations xlReg uses, and key files.
//!
//! RSA goes through OpenSSL (already linked for TLS): its private-key
//! operations are constant-time, which matters because the registry
//! decrypts Hellos chosen by anyone who can reach it (the pure-Rust `rsa`
//! crate is open to the Marvin timing attack, RUSTSEC-2023-0071).
//!
//! - Hello encryption: RSA-OAEP with SHA-1, MGF1-SHA-1 and an empty label.
//! - Client signatures: RSA PKCS#1 v1.5 over SHA-256.
//! - Public keys travel as DER `SubjectPublicKeyInfo`; PEM files hold
//!   `BEGIN PUBLIC KEY` (SPKI; `BEGIN RSA PUBLIC KEY` is read too) and
//!   private keys as PKCS#8 `BEGIN PRIVATE KEY`.
//! - [`load_or_create`] makes a key file once, mode 0600, atomically: a
//!   second process racing to create the same file ends up using the first
//!   one's key, never a half-written file.

use std::{
    fs,
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use openssl::{
    encrypt::{Decrypter, Encrypter},
    hash::MessageDigest,
    pkey::{Id, PKey, Private, Public},
    rsa::{Padding, Rsa},
    sign::{Signer, Verifier},
};

/// Size of the keys this build generates.
pub const KEY_BITS: u32 = 2048;
/// Smallest RSA key accepted anywhere (registry key, client signing keys).
pub const MIN_KEY_BITS: u32 = 2048;
/// Largest RSA key accepted from the network.
pub const MAX_KEY_BITS: u32 = 8192;

/// Why a key could not be made, read, written or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// OpenSSL refused (malformed key, failed operation).
    #[error("{what}: {source}")]
    Openssl {
        /// What was being done.
        what: &'static str,
        /// OpenSSL's errors.
        source: openssl::error::ErrorStack,
    },
    /// The key is not RSA, or its size is out of bounds.
    #[error("unsupported key: {0}")]
    Unsupported(String),
    /// A key file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// A key file holds no usable key.
    #[error("{path}: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

fn ossl(what: &'static str) -> impl FnOnce(openssl::error::ErrorStack) -> KeyError {
    move |source| KeyError::Openssl { what, source }
}

/// An RSA private key.
#[derive(Clone)]
pub struct PrivateKey(PKey<Private>);

/// An RSA public key.
#[derive(Clone)]
pub struct PublicKey(PKey<Public>);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey(RSA-{})", self.0.bits())
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey(RSA-{})", self.0.bits())
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.public_eq(&other.0)
    }
}

fn check_rsa_bits(bits: u32) -> Result<(), KeyError> {
    if (MIN_KEY_BITS..=MAX_KEY_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(KeyError::Unsupported(format!(
            "RSA key of {bits} bits (need {MIN_KEY_BITS} to {MAX_KEY_BITS})"
        )))
    }
}

impl PrivateKey {
    /// A fresh RSA key of `bits` bits (public exponent 65537).
    pub fn generate(bits: u32) -> Result<PrivateKey, KeyError> {
        let rsa = Rsa::generate(bits).map_err(ossl("generating an RSA key"))?;
        Ok(PrivateKey(
            PKey::from_rsa(rsa).map_err(ossl("wrapping an RSA key"))?,
        ))
    }

    /// From PEM (PKCS#8 or PKCS#1); the key must be RSA of an accepted size.
    pub fn from_pem(pem: &[u8]) -> Result<PrivateKey, KeyError> {
        let key = PKey::private_key_from_pem(pem).map_err(ossl("reading a private key"))?;
        if key.id() != Id::RSA {
            return Err(KeyError::Unsupported("not an RSA key".into()));
        }
        check_rsa_bits(key.bits())?;
        Ok(PrivateKey(key))
    }

    /// PKCS#8 PEM.
    pub fn to_pem(&self) -> Result<Vec<u8>, KeyError> {
        self.0
            .private_key_to_pem_pkcs8()
            .map_err(ossl("encoding a private key"))
    }

    /// The public half.
    pub fn public_key(&self) -> Result<PublicKey, KeyError> {
        let rsa = self.0.rsa().map_err(ossl("reading an RSA key"))?;
        let public = Rsa::from_public_components(
            rsa.n().to_owned().map_err(ossl("copying a modulus"))?,
            rsa.e().to_owned().map_err(ossl("copying an exponent"))?,
        )
        .map_err(ossl("making a public key"))?;
        Ok(PublicKey(
            PKey::from_rsa(public).map_err(ossl("making a public key"))?,
        ))
    }

    /// Modulus length in bytes: the length of every ciphertext and signature.
    pub fn size(&self) -> usize {
        self.0.size()
    }

    /// RSA-OAEP (SHA-1, MGF1-SHA-1, empty label) decryption.
    pub fn oaep_decrypt(&self, cipher: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut d = Decrypter::new(&self.0).map_err(ossl("OAEP"))?;
        d.set_rsa_padding(Padding::PKCS1_OAEP)
            .map_err(ossl("OAEP"))?;
        d.set_rsa_oaep_md(MessageDigest::sha1())
            .map_err(ossl("OAEP"))?;
        d.set_rsa_mgf1_md(MessageDigest::sha1())
            .map_err(ossl("OAEP"))?;
        let mut out = vec![0u8; d.decrypt_len(cipher).map_err(ossl("OAEP"))?];
        let n = d
            .decrypt(cipher, &mut out)
            .map_err(ossl("OAEP decryption"))?;
        out.truncate(n);
        Ok(out)
    }

    /// RSA PKCS#1 v1.5 signature over SHA-256 of `data`.
    pub fn sign_sha256(&self, data: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut s = Signer::new(MessageDigest::sha256(), &self.0).map_err(ossl("signing"))?;
        s.set_rsa_padding(Padding::PKCS1).map_err(ossl("signing"))?;
        s.sign_oneshot_to_vec(data).map_err(ossl("signing"))
    }
}

impl PublicKey {
    /// From DER `SubjectPublicKeyInfo` of an RSA key of an accepted size,
    /// in its canonical encoding with nothing after it.
    pub fn from_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        // The RSA-specific codec: OpenSSL 3's generic decoders cost some
        // 100 µs a key, these about 1 µs.
        let rsa = Rsa::public_key_from_der(der).map_err(ossl("reading a public key"))?;
        if rsa
            .public_key_to_der()
            .map_err(ossl("encoding a public key"))?
            != der
        {
            return Err(KeyError::Unsupported(
                "public key not in canonical DER".into(),
            ));
        }
        Self::checked(rsa)
    }

    /// From PEM: `BEGIN PUBLIC KEY` (SPKI) or `BEGIN RSA PUBLIC KEY` (PKCS#1).
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey, KeyError> {
        let rsa = match Rsa::public_key_from_pem(pem) {
            Ok(rsa) => rsa,
            Err(_) => Rsa::public_key_from_pem_pkcs1(pem).map_err(ossl("reading a public key"))?,
        };
        Self::checked(rsa)
    }

    fn checked(rsa: Rsa<Public>) -> Result<PublicKey, KeyError> {
        check_rsa_bits(rsa.n().num_bits().unsigned_abs())?;
        Ok(PublicKey(
            PKey::from_rsa(rsa).map_err(ossl("reading a public key"))?,
        ))
    }

    fn rsa(&self) -> Result<Rsa<Public>, KeyError> {
        self.0.rsa().map_err(ossl("reading an RSA key"))
    }

    /// DER `SubjectPublicKeyInfo`.
    pub fn to_der(&self) -> Result<Vec<u8>, KeyError> {
        self.rsa()?
            .public_key_to_der()
            .map_err(ossl("encoding a public key"))
    }

    /// PEM `BEGIN PUBLIC KEY` (SPKI).
    pub fn to_pem(&self) -> Result<Vec<u8>, KeyError> {
        self.rsa()?
            .public_key_to_pem()
            .map_err(ossl("encoding a public key"))
    }

    /// Modulus length in bytes.
    pub fn size(&self) -> usize {
        self.0.size()
    }

    /// RSA-OAEP (SHA-1, MGF1-SHA-1, empty label) encryption.
    pub fn oaep_encrypt(&self, plain: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut e = Encrypter::new(&self.0).map_err(ossl("OAEP"))?;
        e.set_rsa_padding(Padding::PKCS1_OAEP)
            .map_err(ossl("OAEP"))?;
        e.set_rsa_oaep_md(MessageDigest::sha1())
            .map_err(ossl("OAEP"))?;
        e.set_rsa_mgf1_md(MessageDigest::sha1())
            .map_err(ossl("OAEP"))?;
        let mut out = vec![0u8; e.encrypt_len(plain).map_err(ossl("OAEP"))?];
        let n = e
            .encrypt(plain, &mut out)
            .map_err(ossl("OAEP encryption"))?;
        out.truncate(n);
        Ok(out)
    }

    /// Whether `signature` is this key's PKCS#1 v1.5 SHA-256 signature of
    /// `data`. A malformed signature is simply not valid.
    pub fn verify_sha256(&self, data: &[u8], signature: &[u8]) -> bool {
        let Ok(mut v) = Verifier::new(MessageDigest::sha256(), &self.0) else {
            return false;
        };
        if v.set_rsa_padding(Padding::PKCS1).is_err() {
            return false;
        }
        v.verify_oneshot(signature, data).unwrap_or(false)
    }
}

/// Creates `dir` (and its parents) if missing, the last one mode 0700.
pub fn ensure_private_dir(dir: &Path) -> Result<(), KeyError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| KeyError::File {
            path: dir.to_path_buf(),
            source,
        })
}

/// Writes `bytes` to `path` only if it does not exist yet, atomically and
/// durably, with `mode`. Returns false (and leaves the file alone) when
/// another writer got there first.
pub fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<bool, KeyError> {
    let file_error = |source| KeyError::File {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temporary_sibling(path)?;
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        match fs::hard_link(&tmp, path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e),
        }
        fs::File::open(dir)?.sync_all()?;
        Ok(true)
    })();
    let _ = fs::remove_file(&tmp);
    result.map_err(file_error)
}

/// Replaces `path` with `bytes`, atomically and durably, with `mode`.
pub fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temporary_sibling(path)?;
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|source| KeyError::File {
        path: path.to_path_buf(),
        source,
    })
}

/// A fresh, unused name beside `path` for a file to be renamed or linked
/// into place.
fn temporary_sibling(path: &Path) -> Result<PathBuf, KeyError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let nonce: [u8; 8] = super::crypto::random().map_err(|e| KeyError::BadFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        nonce.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )))
}

/// Loads the private key in `path`, or generates one there (PKCS#8 PEM,
/// mode 0600) when the file does not exist. Returns the key and whether it
/// was created now. A key file readable by group or others is refused.
pub fn load_or_create(path: &Path) -> Result<(PrivateKey, bool), KeyError> {
    if let Some(dir) = path.parent() {
        ensure_private_dir(dir)?;
    }
    let mut created = false;
    if !path.exists() {
        let key = PrivateKey::generate(KEY_BITS)?;
        created = write_new_file(path, &key.to_pem()?, 0o600)?;
    }
    let meta = fs::metadata(path).map_err(|source| KeyError::File {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::BadFile {
            path: path.to_path_buf(),
            reason: format!(
                "private key file has mode {mode:03o}; it must not be readable by group or others (chmod 600)"
            ),
        });
    }
    let pem = fs::read(path).map_err(|source| KeyError::File {
        path: path.to_path_buf(),
        source,
    })?;
    let key = PrivateKey::from_pem(&pem).map_err(|e| KeyError::BadFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok((key, created))
}

/// A key's fingerprint: SHA-256 of its DER `SubjectPublicKeyInfo`.
pub type Fingerprint = [u8; 32];

/// The fingerprint of a public key given as DER.
pub fn fingerprint(der: &[u8]) -> Fingerprint {
    use sha2::{Digest, Sha256};
    Sha256::digest(der).into()
}

/// `sha256:<64 lower-case hex digits>`, how fingerprints are written in
/// settings and printed by `catalogue xlreg fingerprint`.
pub fn format_fingerprint(fp: &Fingerprint) -> String {
    let hex: String = fp.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Reads [`format_fingerprint`]'s form (hex in either case).
pub fn parse_fingerprint(text: &str) -> Option<Fingerprint> {
    let hex = text.strip_prefix("sha256:")?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Reads a public key PEM file.
pub fn read_public(path: &Path) -> Result<PublicKey, KeyError> {
    let pem = fs::read(path).map_err(|source| KeyError::File {
        path: path.to_path_buf(),
        source,
    })?;
    PublicKey::from_pem(&pem).map_err(|e| KeyError::BadFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::test_support::{client_key, server_key};

    #[test]
    fn fingerprints_print_and_parse() {
        let der = client_key(0)
            .public_key()
            .and_then(|k| k.to_der())
            .expect("der");
        let fp = fingerprint(&der);
        let text = format_fingerprint(&fp);
        assert!(
            text.starts_with("sha256:") && text.len() == 7 + 64,
            "{text}"
        );
        assert_eq!(parse_fingerprint(&text), Some(fp));
        assert_eq!(
            parse_fingerprint(&text.to_uppercase().replace("SHA256", "sha256")),
            Some(fp)
        );
        assert_eq!(parse_fingerprint(&text[..70]), None);
        assert_eq!(parse_fingerprint(&text.replace("sha256:", "md5:")), None);
        assert_eq!(parse_fingerprint("sha256:zz"), None);
    }

    #[test]
    fn oaep_round_trip_and_sizes() {
        let key = server_key();
        let public = key.public_key().expect("public");
        assert_eq!(key.size(), 256);
        let cipher = public.oaep_encrypt(&[5u8; 60]).expect("encrypt");
        assert_eq!(cipher.len(), 256);
        assert_eq!(key.oaep_decrypt(&cipher).expect("decrypt"), vec![5u8; 60]);
        let mut bad = cipher.clone();
        bad[100] ^= 1;
        assert!(key.oaep_decrypt(&bad).is_err());
        assert!(key.oaep_decrypt(&cipher[..255]).is_err());
    }

    #[test]
    fn signatures_verify_only_for_their_data_and_key() {
        let key = client_key(0);
        let public = key.public_key().expect("public");
        let sig = key.sign_sha256(b"data").expect("sign");
        assert_eq!(sig.len(), 256);
        assert!(public.verify_sha256(b"data", &sig));
        assert!(!public.verify_sha256(b"date", &sig));
        assert!(!public.verify_sha256(b"data", &sig[1..]));
        let other = client_key(1).public_key().expect("public");
        assert!(!other.verify_sha256(b"data", &sig));
    }

    #[test]
    fn encodings_round_trip() {
        let public = client_key(0).public_key().expect("public");
        let der = public.to_der().expect("der");
        assert_eq!(PublicKey::from_der(&der).expect("from der"), public);
        let pem = public.to_pem().expect("pem");
        assert!(pem.starts_with(b"-----BEGIN PUBLIC KEY-----"));
        assert_eq!(PublicKey::from_pem(&pem).expect("from pem"), public);
        let private_pem = client_key(0).to_pem().expect("pem");
        assert!(private_pem.starts_with(b"-----BEGIN PRIVATE KEY-----"));
        let again = PrivateKey::from_pem(&private_pem).expect("from pem");
        assert_eq!(again.public_key().expect("public"), public);
        assert!(PublicKey::from_der(b"not a key").is_err());
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(PublicKey::from_der(&trailing).is_err());
        // the PKCS#1 PEM form is read too
        let rsa = Rsa::public_key_from_der(&der).expect("rsa");
        let pkcs1 = rsa.public_key_to_pem_pkcs1().expect("pkcs1");
        assert!(pkcs1.starts_with(b"-----BEGIN RSA PUBLIC KEY-----"));
        assert_eq!(PublicKey::from_pem(&pkcs1).expect("from pkcs1"), public);
    }

    #[test]
    fn small_keys_are_refused() {
        let small = Rsa::generate(1024).expect("1024-bit key");
        let der = small.public_key_to_der().expect("der");
        assert!(matches!(
            PublicKey::from_der(&der),
            Err(KeyError::Unsupported(_))
        ));
    }

    #[test]
    fn key_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("key.pem");
        let (first, created) = load_or_create(&path).expect("create");
        assert!(created);
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(path.parent().expect("parent"))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        let (second, created) = load_or_create(&path).expect("load");
        assert!(!created);
        assert_eq!(
            first.public_key().expect("public"),
            second.public_key().expect("public")
        );
        // no temporary files left behind
        let names: Vec<_> = fs::read_dir(path.parent().expect("parent"))
            .expect("read dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            load_or_create(&path),
            Err(KeyError::BadFile { .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        fs::write(&path, b"garbage").expect("write");
        assert!(matches!(
            load_or_create(&path),
            Err(KeyError::BadFile { .. })
        ));
    }

    #[test]
    fn write_new_file_never_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        assert!(write_new_file(&path, b"one", 0o600).expect("write"));
        assert!(!write_new_file(&path, b"two", 0o600).expect("write"));
        assert_eq!(fs::read(&path).expect("read"), b"one");
        replace_file(&path, b"three", 0o600).expect("replace");
        assert_eq!(fs::read(&path).expect("read"), b"three");
    }
}
