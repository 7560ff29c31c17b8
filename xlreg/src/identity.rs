//! A registry client's identity: its signing key, its comms key, and once
//! registered the ID and name the registry gave it, kept in a directory the
//! caller chooses.
//!
//! Files in that directory: `sig.key` and `comms.key` (PKCS#8 PEM, mode
//! 0600, made on first use) and `client.id`, written once the registry has
//! answered `ClientOK`:
//!
//! ```text
//! id <ID in hex>
//! name <name the registry uses>
//! ```

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use catalogue_proto::reg::xl_reg_msg::Token;

use super::keys::{self, KeyError, PrivateKey};

/// Signing key file.
pub const SIG_KEY_FILE: &str = "sig.key";
/// Comms key file.
pub const COMMS_KEY_FILE: &str = "comms.key";
/// Registered ID and name.
pub const ID_FILE: &str = "client.id";

/// Why an identity could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A key failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The ID file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// The ID file is malformed.
    #[error("{path}: {reason}")]
    BadIdFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A client of the registry.
#[derive(Debug, Clone)]
pub struct Identity {
    dir: Option<PathBuf>,
    name: String,
    attrs: u64,
    sig_key: PrivateKey,
    comms_key: PrivateKey,
    id: Option<Vec<u8>>,
}

/// Lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses lower- or upper-case hex.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

impl Identity {
    /// The identity kept in `dir`, making its keys on first use. `name` is
    /// the name proposed when registering; once registered, the name the
    /// registry gave is used.
    pub fn load_or_create(dir: &Path, name: &str) -> Result<Identity, IdentityError> {
        keys::ensure_private_dir(dir)?;
        let (sig_key, _) = keys::load_or_create(&dir.join(SIG_KEY_FILE))?;
        let (comms_key, _) = keys::load_or_create(&dir.join(COMMS_KEY_FILE))?;
        let mut identity = Identity {
            dir: Some(dir.to_path_buf()),
            name: name.to_string(),
            attrs: 0,
            sig_key,
            comms_key,
            id: None,
        };
        let path = dir.join(ID_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                let bad = |reason: &str| IdentityError::BadIdFile {
                    path: path.clone(),
                    reason: reason.to_string(),
                };
                for line in text.lines() {
                    match line.split_once(' ') {
                        Some(("id", hex)) => {
                            let id = from_hex(hex.trim()).ok_or_else(|| bad("bad id"))?;
                            if id.len() != 20 && id.len() != 32 {
                                return Err(bad("id of neither 20 nor 32 bytes"));
                            }
                            identity.id = Some(id);
                        }
                        Some(("name", registered)) => identity.name = registered.to_string(),
                        _ if line.trim().is_empty() => {}
                        _ => return Err(bad("unknown line")),
                    }
                }
                if identity.id.is_none() {
                    return Err(bad("no id line"));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(IdentityError::Io { path, source }),
        }
        Ok(identity)
    }

    /// The fingerprint of the signing key, `sha256:<hex>`: what
    /// `xlreg.admit.keys` and `xlreg.cluster.creator` take.
    pub fn fingerprint(&self) -> Result<String, IdentityError> {
        let der = self.sig_key.public_key()?.to_der()?;
        Ok(keys::format_fingerprint(&keys::fingerprint(&der)))
    }

    /// An identity kept in memory only.
    pub fn ephemeral(name: &str, sig_key: PrivateKey, comms_key: PrivateKey) -> Identity {
        Identity {
            dir: None,
            name: name.to_string(),
            attrs: 0,
            sig_key,
            comms_key,
            id: None,
        }
    }

    /// The name: the registered one once known, else the proposed one.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The registered ID, once known.
    pub fn id(&self) -> Option<&[u8]> {
        self.id.as_deref()
    }

    /// The attrs proposed when registering.
    pub fn set_attrs(&mut self, attrs: u64) {
        self.attrs = attrs;
    }

    /// The signing key.
    pub fn sig_key(&self) -> &PrivateKey {
        &self.sig_key
    }

    /// The comms key.
    pub fn comms_key(&self) -> &PrivateKey {
        &self.comms_key
    }

    /// The token describing this client with `my_ends`: Name, Attrs, ID
    /// (once known), CommsKey, SigKey, MyEnds.
    pub fn token(&self, my_ends: &[String]) -> Result<Token, IdentityError> {
        Ok(Token {
            name: Some(self.name.clone()),
            attrs: Some(self.attrs),
            id: self.id.clone(),
            comms_key: Some(self.comms_key.public_key()?.to_der()?),
            sig_key: Some(self.sig_key.public_key()?.to_der()?),
            my_ends: my_ends.to_vec(),
            dig_sig: None,
        })
    }

    /// Records the ID and name the registry gave, durably if the identity
    /// lives in a directory.
    pub fn remember(&mut self, id: &[u8], name: &str) -> Result<(), IdentityError> {
        if self.id.as_deref() == Some(id) && self.name == name {
            return Ok(());
        }
        self.id = Some(id.to_vec());
        self.name = name.to_string();
        if let Some(dir) = &self.dir {
            let text = format!("id {}\nname {}\n", to_hex(id), name);
            keys::replace_file(&dir.join(ID_FILE), text.as_bytes(), 0o600)?;
        }
        Ok(())
    }

    /// Forgets the registered ID (the registry no longer knows it), so the
    /// next login registers anew.
    pub fn forget(&mut self) -> Result<(), IdentityError> {
        self.id = None;
        if let Some(dir) = &self.dir {
            let path = dir.join(ID_FILE);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(IdentityError::Io { path, source }),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        assert_eq!(to_hex(&[0, 0xAB, 0x10]), "00ab10");
        assert_eq!(from_hex("00AB10"), Some(vec![0, 0xAB, 0x10]));
        assert_eq!(from_hex("0"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex("é0"), None);
    }

    #[test]
    fn identity_persists_keys_and_registration() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut first = Identity::load_or_create(dir.path(), "alpha").expect("create");
        assert_eq!(first.id(), None);
        assert_eq!(first.name(), "alpha");
        first.remember(&[7; 32], "alpha-2").expect("remember");
        let again = Identity::load_or_create(dir.path(), "ignored").expect("load");
        assert_eq!(again.id(), Some(&[7u8; 32][..]));
        assert_eq!(again.name(), "alpha-2");
        assert_eq!(
            again.sig_key().public_key().expect("public"),
            first.sig_key().public_key().expect("public")
        );
        assert_ne!(
            again.sig_key().public_key().expect("public"),
            again.comms_key().public_key().expect("public")
        );
        let token = again.token(&["h:1".into()]).expect("token");
        assert_eq!(token.id, Some(vec![7; 32]));
        assert_eq!(token.my_ends, vec!["h:1".to_string()]);
        crate::token::check(&token).expect("a valid token");

        let mut again = again;
        again.forget().expect("forget");
        let fresh = Identity::load_or_create(dir.path(), "beta").expect("load");
        assert_eq!(fresh.id(), None);
        assert_eq!(fresh.name(), "beta");
    }

    #[test]
    fn malformed_id_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        Identity::load_or_create(dir.path(), "a").expect("create");
        for bad in ["id zz\n", "name x\n", "id 0101\n", "what\n"] {
            fs::write(dir.path().join(ID_FILE), bad).expect("write");
            assert!(
                matches!(
                    Identity::load_or_create(dir.path(), "a"),
                    Err(IdentityError::BadIdFile { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
