//! Member tokens and client signatures: what a client signs, and what the
//! registry accepts in a token.
//!
//! A new client signs its token: the bytes of the token's fields 1 to 6
//! that are present, in field-number order, concatenated without
//! separators (strings as UTF-8, `Attrs` as a `u64` little-endian, bytes as
//! they are, every `MyEnds` entry in order). The token's own `DigSig`
//! (field 7) is never part of it. A returning client signs
//! `ClientID ‖ Salt2`, followed by the signed bytes of the token it sends
//! to update its registration, if it sends one. Signatures are RSA PKCS#1
//! v1.5 over SHA-256 with the client's signing key, the token's `SigKey`.

use catalogue_proto::reg::xl_reg_msg::Token;

use super::keys::{KeyError, PrivateKey, PublicKey};

/// Longest name (client or cluster), in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// Longest endpoint, in bytes.
pub const MAX_END_LEN: usize = 255;
/// Most endpoints a token may carry (a cluster needs 1 or 2).
pub const MAX_ENDS: usize = 2;
/// Longest DER key accepted in a token.
pub const MAX_KEY_DER_LEN: usize = 2048;

/// Why a token or a signature was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A required field is missing.
    #[error("token has no {0}")]
    Missing(&'static str),
    /// The ID is neither 20 nor 32 bytes.
    #[error("token ID has {0} bytes; it must have 20 or 32")]
    IdLength(usize),
    /// A key does not parse or is not acceptable.
    #[error("token {field}: {source}")]
    Key {
        /// `CommsKey` or `SigKey`.
        field: &'static str,
        /// Why.
        source: KeyError,
    },
    /// A key is too long.
    #[error("token {0} is longer than {MAX_KEY_DER_LEN} bytes")]
    KeyTooLong(&'static str),
    /// Too many endpoints.
    #[error("token has {0} endpoints; at most {MAX_ENDS} are allowed")]
    TooManyEnds(usize),
    /// An endpoint is empty, too long or holds control characters.
    #[error("bad endpoint {0:?}")]
    BadEnd(String),
    /// A name is empty, too long or holds control characters.
    #[error("bad name {0:?}: it must have 1 to {MAX_NAME_LEN} bytes and no control characters")]
    BadName(String),
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// Signing failed (client side).
    #[error("cannot sign: {0}")]
    Sign(KeyError),
}

/// The bytes a new client signs: the token's fields 1 to 6 that are present.
pub fn signed_bytes(token: &Token) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(name) = &token.name {
        out.extend_from_slice(name.as_bytes());
    }
    if let Some(attrs) = token.attrs {
        out.extend_from_slice(&attrs.to_le_bytes());
    }
    if let Some(id) = &token.id {
        out.extend_from_slice(id);
    }
    if let Some(key) = &token.comms_key {
        out.extend_from_slice(key);
    }
    if let Some(key) = &token.sig_key {
        out.extend_from_slice(key);
    }
    for end in &token.my_ends {
        out.extend_from_slice(end.as_bytes());
    }
    out
}

/// The bytes a returning client signs.
pub fn returning_signed_bytes(client_id: &[u8], salt2: &[u8], update: Option<&Token>) -> Vec<u8> {
    let mut out = Vec::with_capacity(client_id.len() + salt2.len());
    out.extend_from_slice(client_id);
    out.extend_from_slice(salt2);
    if let Some(token) = update {
        out.extend_from_slice(&signed_bytes(token));
    }
    out
}

/// Signs `bytes` with a client's signing key.
pub fn sign(key: &PrivateKey, bytes: &[u8]) -> Result<Vec<u8>, TokenError> {
    key.sign_sha256(bytes).map_err(TokenError::Sign)
}

/// Checks `signature` over `bytes` with `key`.
pub fn verify(key: &PublicKey, bytes: &[u8], signature: &[u8]) -> Result<(), TokenError> {
    if key.verify_sha256(bytes, signature) {
        Ok(())
    } else {
        Err(TokenError::BadSignature)
    }
}

/// Checks a name (client or cluster).
pub fn check_name(name: &str) -> Result<(), TokenError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(TokenError::BadName(name.chars().take(64).collect()));
    }
    Ok(())
}

/// What a checked token's keys are.
#[derive(Debug, Clone)]
pub struct CheckedToken {
    /// The signing key, parsed.
    pub sig_key: PublicKey,
}

/// Checks a token a client sends: ID absent or 20/32 bytes, both keys DER
/// `SubjectPublicKeyInfo` of acceptable RSA keys, at most two endpoints,
/// each 1 to 255 bytes without control characters, and the name if present.
pub fn check(token: &Token) -> Result<CheckedToken, TokenError> {
    if let Some(name) = &token.name {
        check_name(name)?;
    }
    if let Some(id) = &token.id {
        if id.len() != 20 && id.len() != 32 {
            return Err(TokenError::IdLength(id.len()));
        }
    }
    let comms = token
        .comms_key
        .as_deref()
        .ok_or(TokenError::Missing("CommsKey"))?;
    if comms.len() > MAX_KEY_DER_LEN {
        return Err(TokenError::KeyTooLong("CommsKey"));
    }
    PublicKey::from_der(comms).map_err(|source| TokenError::Key {
        field: "CommsKey",
        source,
    })?;
    let sig = token
        .sig_key
        .as_deref()
        .ok_or(TokenError::Missing("SigKey"))?;
    if sig.len() > MAX_KEY_DER_LEN {
        return Err(TokenError::KeyTooLong("SigKey"));
    }
    let sig_key = PublicKey::from_der(sig).map_err(|source| TokenError::Key {
        field: "SigKey",
        source,
    })?;
    if token.my_ends.len() > MAX_ENDS {
        return Err(TokenError::TooManyEnds(token.my_ends.len()));
    }
    for end in &token.my_ends {
        if end.is_empty() || end.len() > MAX_END_LEN || end.chars().any(char::is_control) {
            return Err(TokenError::BadEnd(end.chars().take(64).collect()));
        }
    }
    Ok(CheckedToken { sig_key })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{client_key, hex, token_of};

    #[test]
    fn signed_bytes_layout() {
        let token = Token {
            name: Some("ab".into()),
            attrs: Some(0x0102),
            id: Some(vec![0xEE; 2]),
            comms_key: Some(vec![0xC1]),
            sig_key: Some(vec![0x51, 0x52]),
            my_ends: vec!["h:1".into(), "h:2".into()],
            dig_sig: Some(vec![0xFF; 4]),
        };
        let mut expected = b"ab".to_vec();
        expected.extend_from_slice(&[0x02, 0x01, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[0xEE, 0xEE, 0xC1, 0x51, 0x52]);
        expected.extend_from_slice(b"h:1h:2");
        assert_eq!(signed_bytes(&token), expected);
        // absent fields contribute nothing; DigSig never does
        let bare = Token {
            sig_key: Some(vec![9]),
            ..Default::default()
        };
        assert_eq!(signed_bytes(&bare), vec![9]);
        // attrs present but zero still count
        let zero = Token {
            attrs: Some(0),
            ..Default::default()
        };
        assert_eq!(signed_bytes(&zero), vec![0; 8]);
    }

    /// `openssl dgst -sha256 -sign` with the test-only key of the Hello
    /// known answers, over the signed bytes of the token below.
    const KAT_SIGNATURE: &str = "13960bbc54fbcb1a33b8a768e41170bc83f1c1278dd6bea959652ac37e8b7fd046843b518a6dcc5d35326047a20a86b19a235d7275c0b82018ae34fdf159c33a2b35a0b9765104d083e78b176c780abc80efa20e5718e137a67e063710c6addc22371699b05b9b330c448fb6a3286cfd820e778b0e0bb316717c0242f48c66ff413436f22945fc225cd6fe760e62a65376ea22eb8582618bc8c39557b232627c804a3d651800b5e2c0e94d7aa47f8f91f30559cdfe0b7876a17bc29069d0695d69acf5127c8ccbfba989f952a4aeb8e93797e032998cc25774ea99de4866046c1c459a2e74ce6b7e45a8ebcd6eb1d5d493015f2571f5e86f624531359b36bb82";

    #[test]
    fn signature_known_answer() {
        let key = PrivateKey::from_pem(include_bytes!("hello/test-only-kat-key.pem")).expect("key");
        let token = Token {
            name: Some("node-a".into()),
            attrs: Some(1),
            id: None,
            comms_key: Some(vec![1, 2, 3]),
            sig_key: Some(vec![4, 5, 6]),
            my_ends: vec!["127.0.0.1:7481".into()],
            dig_sig: None,
        };
        let bytes = signed_bytes(&token);
        assert_eq!(
            bytes,
            hex("6e6f64652d6101000000000000000102030405063132372e302e302e313a37343831")
        );
        let signature = sign(&key, &bytes).expect("sign");
        assert_eq!(signature, hex(KAT_SIGNATURE));
        verify(&key.public_key().expect("public"), &bytes, &signature).expect("verifies");
    }

    #[test]
    fn returning_bytes_layout() {
        assert_eq!(
            returning_signed_bytes(&[1, 2], &[3; 8], None),
            vec![1, 2, 3, 3, 3, 3, 3, 3, 3, 3]
        );
        let update = Token {
            my_ends: vec!["x".into()],
            ..Default::default()
        };
        assert_eq!(
            returning_signed_bytes(&[1], &[2], Some(&update)),
            vec![1, 2, b'x']
        );
    }

    #[test]
    fn sign_and_verify() {
        let key = client_key(0);
        let token = token_of("alpha", 0, &["127.0.0.1:1"]);
        let sig = sign(key, &signed_bytes(&token)).expect("sign");
        let checked = check(&token).expect("valid token");
        verify(&checked.sig_key, &signed_bytes(&token), &sig).expect("verifies");
        let mut changed = token.clone();
        changed.my_ends[0] = "127.0.0.1:2".into();
        assert!(matches!(
            verify(&checked.sig_key, &signed_bytes(&changed), &sig),
            Err(TokenError::BadSignature)
        ));
    }

    #[test]
    fn every_token_error() {
        let good = token_of("alpha", 0, &["h:1"]);
        check(&good).expect("good");

        let mut t = good.clone();
        t.id = Some(vec![0; 21]);
        assert!(matches!(check(&t), Err(TokenError::IdLength(21))));
        for len in [20, 32] {
            t.id = Some(vec![0; len]);
            check(&t).expect("20 or 32");
        }

        let mut t = good.clone();
        t.comms_key = None;
        assert!(matches!(check(&t), Err(TokenError::Missing("CommsKey"))));
        let mut t = good.clone();
        t.sig_key = None;
        assert!(matches!(check(&t), Err(TokenError::Missing("SigKey"))));
        let mut t = good.clone();
        t.sig_key = Some(vec![1, 2, 3]);
        assert!(matches!(
            check(&t),
            Err(TokenError::Key {
                field: "SigKey",
                ..
            })
        ));
        let mut t = good.clone();
        t.comms_key = Some(vec![0; MAX_KEY_DER_LEN + 1]);
        assert!(matches!(check(&t), Err(TokenError::KeyTooLong("CommsKey"))));

        let mut t = good.clone();
        t.my_ends = vec!["a".into(), "b".into(), "c".into()];
        assert!(matches!(check(&t), Err(TokenError::TooManyEnds(3))));
        for bad in ["", "a\nb"] {
            let mut t = good.clone();
            t.my_ends = vec![bad.into()];
            assert!(matches!(check(&t), Err(TokenError::BadEnd(_))));
        }
        let mut t = good.clone();
        t.my_ends = vec!["x".repeat(MAX_END_LEN + 1)];
        assert!(matches!(check(&t), Err(TokenError::BadEnd(_))));

        for bad in [String::new(), "x".repeat(256), "tab\there".into()] {
            let mut t = good.clone();
            t.name = Some(bad);
            assert!(matches!(check(&t), Err(TokenError::BadName(_))));
        }
    }
}
