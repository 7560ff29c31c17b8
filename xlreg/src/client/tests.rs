//! The client against fake registries that misbehave in the handshake, and
//! the pairing of `Which` bits with tokens.

use catalogue_proto::reg::xl_reg_msg::Token;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::*;
use crate::{
    crypto,
    hello::{Hello, HelloReply},
    test_support::server_key,
};

/// A one-connection registry that reads the Hello and answers with what
/// `answer` makes of it (nothing: close).
async fn fake_registry(answer: impl FnOnce(Hello) -> Option<Vec<u8>> + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut cipher = vec![0u8; server_key().size()];
        stream.read_exact(&mut cipher).await.expect("hello");
        let hello = Hello::open(&cipher, server_key()).expect("a good hello");
        let Some(bytes) = answer(hello) else {
            return;
        };
        stream.write_all(&bytes).await.expect("reply");
        // hold the connection until the client goes
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    });
    addr
}

async fn connect_to(addr: &str) -> Result<RegistryClient, ClientError> {
    RegistryClient::connect(addr, &server_key().public_key().expect("public")).await
}

#[tokio::test]
async fn a_reply_with_the_wrong_salt1_is_refused() {
    let addr = fake_registry(|hello| {
        let mut reply = HelloReply::answer(&hello).expect("answer");
        reply.salt1[0] ^= 0xFF;
        Some(reply.seal(&hello))
    })
    .await;
    assert!(matches!(
        connect_to(&addr).await,
        Err(ClientError::Handshake(HandshakeError::Salt1Mismatch))
    ));
}

#[tokio::test]
async fn a_reply_under_another_key_is_refused() {
    let addr = fake_registry(|hello| {
        let reply = HelloReply::answer(&hello).expect("answer");
        let mut wrong = hello.clone();
        wrong.key1[5] ^= 1;
        Some(reply.seal(&wrong))
    })
    .await;
    assert!(matches!(
        connect_to(&addr).await,
        Err(ClientError::Handshake(
            HandshakeError::ReplyUndecryptable(_)
                | HandshakeError::ReplyLength(_)
                | HandshakeError::Salt1Mismatch
        ))
    ));
}

#[tokio::test]
async fn a_reply_of_the_wrong_length_is_refused() {
    let addr = fake_registry(|hello| {
        let reply = HelloReply::answer(&hello).expect("answer");
        // 67 bytes pad to 80 on the wire too
        Some(crypto::cbc_encrypt(
            &hello.key1,
            &hello.iv1,
            &reply.to_bytes()[..67],
        ))
    })
    .await;
    assert!(matches!(
        connect_to(&addr).await,
        Err(ClientError::Handshake(HandshakeError::ReplyLength(67)))
    ));
}

#[tokio::test]
async fn a_registry_that_closes_is_reported() {
    let addr = fake_registry(|_| None).await;
    assert!(matches!(connect_to(&addr).await, Err(ClientError::Closed)));
}

#[tokio::test]
async fn a_version_we_do_not_speak_is_refused() {
    let addr = fake_registry(|hello| {
        let mut reply = HelloReply::answer(&hello).expect("answer");
        reply.version = Version::new(7, 0, 0, 0);
        Some(reply.seal(&hello))
    })
    .await;
    assert!(matches!(
        connect_to(&addr).await,
        Err(ClientError::Handshake(HandshakeError::Version(_)))
    ));
    // a v1 answer to our v2 Hello, which the default options refuse
    let addr = fake_registry(|hello| {
        let mut reply = HelloReply::answer(&hello).expect("answer");
        reply.version = Version::V1;
        Some(reply.seal(&hello))
    })
    .await;
    assert!(matches!(
        connect_to(&addr).await,
        Err(ClientError::Handshake(HandshakeError::Version(v))) if v == Version::V1
    ));
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    assert!(matches!(
        connect_to(&addr).await,
        Err(ClientError::Connect { .. })
    ));
}

#[test]
fn which_bits_pair_with_tokens_in_order() {
    let token = |name: &str| Token {
        name: Some(name.into()),
        ..Default::default()
    };
    let members =
        members_from(0b1001_0010, vec![token("a"), token("b"), token("c")]).expect("pairs");
    let got: Vec<_> = members.iter().map(|m| (m.index, m.name.as_str())).collect();
    assert_eq!(got, [(1, "a"), (4, "b"), (7, "c")]);
    assert!(members_from(0b11, vec![token("a")]).is_err());
    assert!(members_from(0, vec![]).expect("none").is_empty());
    let top = members_from(1 << 63, vec![token("last")]).expect("bit 63");
    assert_eq!(top[0].index, 63);
}
