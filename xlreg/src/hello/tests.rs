//! Known answers for both layouts: the Hello plaintext, a Hello encrypted by
//! `openssl pkeyutl` (OAEP, SHA-1) under a fixed test key, and the
//! HelloReply as `openssl enc -aes-256-cbc` encrypts it; then every way a
//! handshake message is refused.

use super::*;
use crate::test_support::{hex, server_key};

/// A 2048-bit RSA key used by these tests only, never anywhere else.
const KAT_KEY: &[u8] = include_bytes!("test-only-kat-key.pem");

/// `openssl pkeyutl -encrypt -pkeyopt rsa_padding_mode:oaep
/// -pkeyopt rsa_oaep_md:sha1 -pkeyopt rsa_mgf1_md:sha1` of [`kat_hello`].
const KAT_HELLO_OAEP: &str = "733af553bf74a517934609af555837f8a47236074c649ab8624e7073d1f18e5a7906624dd115b01afbad9d1b98b8598c015e244c861981abb656f2aa0d9e5cb14f3a6362339194bbbebd8bc35bbc803949373bc692db344596b1c8787b57ff80fc21977a15690851238645e9c622bde5a3d2e9bf65c118d483cf0785a8b9dfc70bddd6234a6dfa5ce1fcce7bae92a0b007c784eea3b61c502e4f9b20dcc06cd0dfa99fa19ec7286a7b15132d859349f46b5ac6368fc6c3532ecb2c0e99719c77f73e872518ff19d2386d4167752104913e2d13b6de745d383958005030a51adca6f137bbe814286fea8daa19cbf3e463d28c0d30dd782b7df3449f3f58b4b0d2";

/// The same tool, the first 59 bytes of [`kat_hello`].
const KAT_HELLO_59_OAEP: &str = "5af1e30d206dc11c32eb23a8eb6e9979c3041969e1032b5f4f91ae1d78665839ea2fb5b96a9c77ed3b3f5c73f2c443b552c6d61ea0cdd9e2ae1a22d5b9f54c42a616ea1dfef5ea8a7f19fe0b6e65932f4d56d27d075df76fac80adff57d2e936bb266d9d6c2cde9e3fca55312b83d51d418e5f9639937c7c0ae2b818ac6889fd8dc6880aa499ccf85bc598ea52e562fa965212ee7feb11481103498e59444fe97f37000e9dfbc385f63377aeb1b75fd5224fa9059bfc9631ac0f8ec89f372a6b37530d04610b01f47ffc5b21c1c4aed54d386925ea388e22240608f8dd82ab1d5506e558a8571bb8b91a8476f64ced7f69cb13b774f93df0d4025d93e750389d";

/// The same tool with SHA-256 as the OAEP and MGF1 hash.
const KAT_HELLO_SHA256_OAEP: &str = "6ce4bcc54a1ea09bc4886d45630407b851e7388fa8e585038eb136102f628a25acf136995dd6a08e58dee733b1749a61decf2a760f6b289d90f1319f84a482464e90175127895965bab6fa9f49fbdc4bafaae4183471ee2b86d46c9f64ccb5bb99f62345f88634c2ac6e7cac8103db262b9158e74eef4ba1eec160b14901f6b4c3106b3b0a4dedec4b41c1f8481948c6bf5089d5bd0d67c7c31b60bf15a3eb84757c8aae291c32d071a7ef535e53ce9810c4a638864989ca9280a63f248797b8f14690ae9bb539162c07d7a3463acd525f570bf1a89840caba93032622d5cdff93683a1169eb228cf67594d73044d5e71447c0597335ce9517ed79b9b4a9046f";

/// `openssl enc -aes-256-cbc -K 10..2f -iv 00..0f` of [`kat_reply`].
const KAT_REPLY_WIRE: &str = "cdd8f77b26931cb712c17f345f89459bbd3863b55d008bc3c91b91189afa9e8972e8ea18197099ba83e785266961c09d42907fc9fca2894f15b76a9a7be56c29475e312810edb308e8140d065838da9b";

fn seq<const N: usize>(start: u8) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = start + i as u8;
    }
    out
}

/// iv1 = 00..0f, key1 = 10..2f, salt1 = 30..37, version 2.0.0.0.
fn kat_hello() -> Hello {
    Hello {
        iv1: seq(0x00),
        key1: seq(0x10),
        salt1: seq(0x30),
        version: Version::V2,
    }
}

/// iv2 = 40..4f, key2 = 50..6f, salt1 = 30..37, salt2 = 70..77, 2.0.0.0.
fn kat_reply() -> HelloReply {
    HelloReply {
        iv2: seq(0x40),
        key2: seq(0x50),
        salt1: seq(0x30),
        salt2: seq(0x70),
        version: Version::V2,
    }
}

fn kat_key() -> PrivateKey {
    PrivateKey::from_pem(KAT_KEY).expect("test key")
}

#[test]
fn hello_plaintext_layout() {
    let bytes = kat_hello().to_bytes();
    assert_eq!(
        bytes.to_vec(),
        hex(
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363702000000"
        )
    );
    assert_eq!(Hello::from_bytes(&bytes).expect("parses"), kat_hello());
}

#[test]
fn hello_from_openssl_decrypts() {
    let hello = Hello::open(&hex(KAT_HELLO_OAEP), &kat_key()).expect("opens");
    assert_eq!(hello, kat_hello());
}

#[test]
fn hello_we_seal_is_one_modulus_and_opens() {
    let key = kat_key();
    let sealed = kat_hello()
        .seal(&key.public_key().expect("public"))
        .expect("seals");
    assert_eq!(sealed.len(), 256);
    assert_eq!(Hello::open(&sealed, &key).expect("opens"), kat_hello());
}

#[test]
fn malformed_hellos_are_refused() {
    let key = kat_key();
    // 59 bytes inside a valid OAEP envelope
    assert!(matches!(
        Hello::open(&hex(KAT_HELLO_59_OAEP), &key),
        Err(HandshakeError::HelloLength(59))
    ));
    // OAEP with another hash
    assert!(matches!(
        Hello::open(&hex(KAT_HELLO_SHA256_OAEP), &key),
        Err(HandshakeError::HelloUndecryptable(_))
    ));
    // one bit flipped, truncated, garbage, empty
    let mut flipped = hex(KAT_HELLO_OAEP);
    flipped[17] ^= 0x10;
    for bad in [
        flipped,
        hex(KAT_HELLO_OAEP)[..255].to_vec(),
        vec![0x42; 256],
        vec![],
    ] {
        assert!(matches!(
            Hello::open(&bad, &key),
            Err(HandshakeError::HelloUndecryptable(_))
        ));
    }
    // under another key
    let other = kat_hello()
        .seal(&server_key().public_key().expect("public"))
        .expect("seals");
    assert!(matches!(
        Hello::open(&other, &key),
        Err(HandshakeError::HelloUndecryptable(_))
    ));
    assert!(matches!(
        Hello::from_bytes(&[0u8; 61]),
        Err(HandshakeError::HelloLength(61))
    ));
}

#[test]
fn reply_layout_and_encryption() {
    let reply = kat_reply();
    assert_eq!(
        reply.to_bytes().to_vec(),
        hex(
            "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f3031323334353637707172737475767702000000"
        )
    );
    let wire = reply.seal(&kat_hello());
    assert_eq!(wire.len(), REPLY_WIRE_LEN);
    assert_eq!(wire, hex(KAT_REPLY_WIRE));
    assert_eq!(HelloReply::open(&wire, &kat_hello()).expect("opens"), reply);
}

#[test]
fn client_refuses_a_reply_with_a_wrong_salt1() {
    let mut reply = kat_reply();
    reply.salt1[7] ^= 1;
    let wire = reply.seal(&kat_hello());
    assert!(matches!(
        HelloReply::open(&wire, &kat_hello()),
        Err(HandshakeError::Salt1Mismatch)
    ));
}

#[test]
fn client_refuses_undecryptable_or_short_replies() {
    let hello = kat_hello();
    let wire = hex(KAT_REPLY_WIRE);
    // another key1
    let mut other = hello.clone();
    other.key1[0] ^= 1;
    assert!(HelloReply::open(&wire, &other).is_err());
    // a truncated reply, a reply that is not whole blocks
    assert!(matches!(
        HelloReply::open(&wire[..64], &hello),
        Err(HandshakeError::ReplyUndecryptable(_)) | Err(HandshakeError::ReplyLength(_))
    ));
    assert!(matches!(
        HelloReply::open(&wire[..79], &hello),
        Err(HandshakeError::ReplyUndecryptable(
            CryptoError::CiphertextLength(79)
        ))
    ));
    // a well-padded reply of the wrong length
    let short = crypto::cbc_encrypt(&hello.key1, &hello.iv1, &kat_reply().to_bytes()[..67]);
    assert!(matches!(
        HelloReply::open(&short, &hello),
        Err(HandshakeError::ReplyLength(67))
    ));
    // the last block's padding altered (through the previous block)
    let mut tampered = wire.clone();
    tampered[63] ^= 0x01;
    assert!(matches!(
        HelloReply::open(&tampered, &hello),
        Err(HandshakeError::ReplyUndecryptable(CryptoError::Padding))
    ));
}

#[test]
fn answer_echoes_salt1_and_negotiates() {
    let mut hello = kat_hello();
    let reply = HelloReply::answer(&hello).expect("answers");
    assert_eq!(reply.salt1, hello.salt1);
    assert_eq!(reply.version, Version::V2);
    assert_ne!(reply.key2, [0u8; 32]);
    hello.version = Version::V1;
    assert_eq!(
        HelloReply::answer(&hello).expect("answers").version,
        Version::V1
    );
    hello.version = Version::new(0, 0, 0, 0);
    assert_eq!(
        HelloReply::answer(&hello).expect("answers").version,
        Version::V1
    );
}

#[test]
fn unknown_reply_versions_have_no_scheme() {
    let mut reply = kat_reply();
    reply.version = Version::new(9, 0, 0, 0);
    assert!(matches!(reply.scheme(), Err(HandshakeError::Version(_))));
}
