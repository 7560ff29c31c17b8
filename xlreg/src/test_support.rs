//! Test helpers: 2048-bit keys generated once per test binary, tokens and
//! signed requests, hex literals.

use std::sync::OnceLock;

use catalogue_proto::reg::xl_reg_msg::Token;

use super::{
    keys::{KEY_BITS, PrivateKey},
    protocol::Request,
    token,
};

/// Bytes from a hex literal (tests only: panics on a typo).
pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex literal");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex literal"))
        .collect()
}

fn generated(cell: &'static OnceLock<PrivateKey>) -> &'static PrivateKey {
    cell.get_or_init(|| PrivateKey::generate(KEY_BITS).expect("key generation"))
}

/// The registry key of the tests.
pub fn server_key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    generated(&KEY)
}

/// Client key number `i` (0 to 3).
pub fn client_key(i: usize) -> &'static PrivateKey {
    static KEYS: [OnceLock<PrivateKey>; 4] = [const { OnceLock::new() }; 4];
    generated(&KEYS[i])
}

/// A token signed by client key `key` (its comms key is key `key + 1`),
/// without ID.
pub fn token_with(key: usize, name: &str, attrs: u64, ends: &[&str]) -> Token {
    Token {
        name: Some(name.into()),
        attrs: Some(attrs),
        id: None,
        comms_key: Some(
            client_key((key + 1) % 4)
                .public_key()
                .and_then(|k| k.to_der())
                .expect("der"),
        ),
        sig_key: Some(
            client_key(key)
                .public_key()
                .and_then(|k| k.to_der())
                .expect("der"),
        ),
        my_ends: ends.iter().map(|e| e.to_string()).collect(),
        dig_sig: None,
    }
}

/// [`token_with`] key 0.
pub fn token_of(name: &str, attrs: u64, ends: &[&str]) -> Token {
    token_with(0, name, attrs, ends)
}

/// A signed `Client` request of a new client.
pub fn new_client(key: usize, name: &str, ends: &[&str]) -> Request {
    let token = token_with(key, name, 0, ends);
    let signature = token::sign(client_key(key), &token::signed_bytes(&token)).expect("sign");
    Request::NewClient {
        name: name.into(),
        token,
        signature,
        proof: None,
    }
}

/// A signed `Client` request of a returning client.
pub fn returning_client(key: usize, id: &[u8], salt2: &[u8], update: Option<Token>) -> Request {
    let signature = token::sign(
        client_key(key),
        &token::returning_signed_bytes(id, salt2, update.as_ref()),
    )
    .expect("sign");
    Request::ReturningClient {
        id: id.to_vec(),
        salt2: salt2.to_vec(),
        signature,
        update,
        proof: None,
    }
}
