//! Fuzz target: arbitrary bytes as handshake messages, on both sides.
//!
//! Byte 0 picks the mode; the rest is the input.
//!
//! - Client side (even): the bytes are parsed as a Hello plaintext, as a
//!   HelloReply plaintext, and (after the first 48, which are key1 and iv1)
//!   as a HelloReply on the wire answering a Hello with that key1 and iv1.
//!   A reply that opens must carry the Hello's salt1.
//! - Server side (odd): the bytes are what the registry reads first. As
//!   they are, they go to `Hello::open` with the registry's private key
//!   (a fuzzer cannot forge OAEP, so this tests the refusal of garbage of
//!   any length); and, encrypted with the public key as a client would
//!   (at most the 214 bytes OAEP takes), they must open exactly when they
//!   are 60 bytes long, to the same bytes. A Hello that opens is answered
//!   as the registry answers it, and the reply must open on the client's
//!   side with the negotiated version and usable session keys.
//!
//! Nothing may panic.

#![no_main]

use std::sync::OnceLock;

use catalogue_xlreg::{
    hello::{HELLO_LEN, Hello, HelloReply},
    keys::{KEY_BITS, PrivateKey, PublicKey},
    version::Version,
};
use libfuzzer_sys::fuzz_target;

/// Largest plaintext RSA-2048 OAEP (SHA-1) encrypts.
const OAEP_MAX: usize = 256 - 2 * 20 - 2;

fn registry_key() -> &'static (PrivateKey, PublicKey) {
    static KEY: OnceLock<(PrivateKey, PublicKey)> = OnceLock::new();
    KEY.get_or_init(|| {
        let private = PrivateKey::generate(KEY_BITS).expect("an RSA key");
        let public = private.public_key().expect("its public key");
        (private, public)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        client_side(data);
    } else {
        server_side(data);
    }
});

fn client_side(data: &[u8]) {
    let _ = Hello::from_bytes(data);
    let _ = HelloReply::from_bytes(data);
    if data.len() < 48 {
        return;
    }
    let mut hello = Hello {
        iv1: [0; 16],
        key1: [0; 32],
        salt1: [0x5A; 8],
        version: Version::V2,
    };
    hello.key1.copy_from_slice(&data[..32]);
    hello.iv1.copy_from_slice(&data[32..48]);
    if let Ok(reply) = HelloReply::open(&data[48..], &hello) {
        assert_eq!(reply.salt1, hello.salt1);
        let _ = reply.session_keys();
    }
}

fn server_side(data: &[u8]) {
    let (private, public) = registry_key();
    let _ = Hello::open(data, private);
    if data.len() > OAEP_MAX {
        return;
    }
    let cipher = public
        .oaep_encrypt(data)
        .expect("OAEP takes up to 214 bytes");
    match Hello::open(&cipher, private) {
        Ok(hello) => {
            assert_eq!(data.len(), HELLO_LEN, "a Hello of another length opened");
            assert_eq!(&hello.to_bytes()[..], data, "the Hello changed");
            let reply = HelloReply::answer(&hello).expect("random bytes");
            let wire = reply.seal(&hello);
            let opened = HelloReply::open(&wire, &hello).expect("our reply opens");
            assert_eq!(opened, reply);
            assert_eq!(opened.version, Version::negotiate(hello.version));
            opened
                .session_keys()
                .expect("the negotiated version has a scheme");
        }
        Err(_) => assert_ne!(data.len(), HELLO_LEN, "a 60-byte Hello did not open"),
    }
}
