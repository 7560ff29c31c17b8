//! Known answers for v1 and v2 frames (computed with `openssl enc`,
//! `openssl kdf HKDF` and Python's `hmac`), tamper tests for v2, and every
//! length and padding error.

use bytes::BytesMut;
use catalogue_proto::reg::{XlRegMsg, xl_reg_msg::Tag};

use super::*;
use crate::test_support::hex;

fn seq<const N: usize>(start: u8) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = start + i as u8;
    }
    out
}

/// key2 = 50..6f, iv2 = 40..4f, salt1 = 30..37, salt2 = 70..77.
fn keys(scheme: Scheme) -> SessionKeys {
    SessionKeys::derive(scheme, &seq(0x50), &seq(0x40), &seq(0x30), &seq(0x70)).expect("keys")
}

fn bye() -> XlRegMsg {
    XlRegMsg {
        op: Some(Tag::Bye as i32),
        ..Default::default()
    }
}

#[test]
fn bye_encodes_to_two_bytes() {
    assert_eq!(bye().encode_to_vec(), hex("080b"));
}

#[test]
fn mac_keys_match_openssl_hkdf() {
    let k = keys(Scheme::V2);
    assert_eq!(
        k.mac_client_to_server.to_vec(),
        hex("8a06557eff44516019adc79c353ab90656f4ca4b709494c58ce42ecb4e024635")
    );
    assert_eq!(
        k.mac_server_to_client.to_vec(),
        hex("db065b9147ae250172f7806334fc0de207bd0573645ccbbeb5ac9c51a511d0b5")
    );
}

#[test]
fn v1_frame_known_answer() {
    let mut sealer = keys(Scheme::V1).sealer(Role::Client);
    let frame = sealer.seal(&hex("080b")).expect("seal");
    assert_eq!(frame, hex("0000001076c4cf283f4cdd4680b5ceaf149c1420"));
    // v1 uses iv2 every time: the same message seals to the same bytes
    assert_eq!(sealer.seal(&hex("080b")).expect("seal"), frame);
    // and both directions use the same key and IV
    let mut server = keys(Scheme::V1).opener(Role::Server);
    assert_eq!(server.open(&frame[4..]).expect("open"), hex("080b"));
    let mut client = keys(Scheme::V1).opener(Role::Client);
    assert_eq!(client.open(&frame[4..]).expect("open"), hex("080b"));
}

#[test]
fn v2_frame_known_answer() {
    let iv: Iv = seq(0x80);
    let mut sealer = keys(Scheme::V2).sealer(Role::Client);
    let first = sealer.seal_with_iv(&hex("080b"), &iv).expect("seal");
    assert_eq!(
        first,
        hex(concat!(
            "00000040",
            "808182838485868788898a8b8c8d8e8f",
            "47e3b43eaf586dff6d3fc44596423bb3",
            "eae7e39868ad743b095ee41fb61dbf73d4620f789952ae8c70680712e951824d"
        ))
    );
    // the second frame counts 1 in its tag
    let second = sealer.seal_with_iv(&hex("080b"), &iv).expect("seal");
    assert_eq!(
        second[second.len() - 32..].to_vec(),
        hex("12e79e1537fd6b66e4a17896e5ae1aab4d68b6b2841fd1267bad1b5c590d699f")
    );
    let mut opener = keys(Scheme::V2).opener(Role::Server);
    assert_eq!(opener.open(&first[4..]).expect("open"), hex("080b"));
    assert_eq!(opener.open(&second[4..]).expect("open"), hex("080b"));
}

#[test]
fn v2_ivs_are_fresh() {
    let mut sealer = keys(Scheme::V2).sealer(Role::Server);
    let a = sealer.seal(b"same").expect("seal");
    let b = sealer.seal(b"same").expect("seal");
    assert_ne!(a[4..20], b[4..20]);
}

fn v2_pair() -> (Sealer, Opener) {
    let k = keys(Scheme::V2);
    (k.sealer(Role::Client), k.opener(Role::Server))
}

#[test]
fn v2_any_flipped_bit_fails_the_tag() {
    let (mut sealer, _) = v2_pair();
    let frame = sealer.seal(&bye().encode_to_vec()).expect("seal");
    for byte in 4..frame.len() {
        for bit in [0x01u8, 0x80] {
            let mut tampered = frame.clone();
            tampered[byte] ^= bit;
            let (_, mut opener) = v2_pair();
            assert!(
                matches!(opener.open(&tampered[4..]), Err(FrameError::BadTag)),
                "byte {byte} bit {bit:#x}"
            );
        }
    }
}

#[test]
fn v2_replay_reorder_reflection_and_truncation_fail() {
    let (mut sealer, mut opener) = v2_pair();
    let one = sealer.seal(b"one").expect("seal");
    let two = sealer.seal(b"two").expect("seal");
    // reordered
    assert!(matches!(opener.open(&two[4..]), Err(FrameError::BadTag)));
    // replayed
    let (_, mut opener) = v2_pair();
    opener.open(&one[4..]).expect("first");
    assert!(matches!(opener.open(&one[4..]), Err(FrameError::BadTag)));
    // reflected back to its sender
    let mut client_opener = keys(Scheme::V2).opener(Role::Client);
    assert!(matches!(
        client_opener.open(&one[4..]),
        Err(FrameError::BadTag)
    ));
    // a ciphertext block cut out (length still plausible)
    let long = {
        let (mut sealer, _) = v2_pair();
        sealer.seal(&[7u8; 40]).expect("seal")
    };
    let mut cut = long[4..20].to_vec();
    cut.extend_from_slice(&long[36..]);
    let (_, mut opener) = v2_pair();
    assert!(matches!(opener.open(&cut), Err(FrameError::BadTag)));
}

#[test]
fn v2_padding_is_checked_after_the_tag() {
    let k = keys(Scheme::V2);
    let iv: Iv = seq(0x90);
    // one block whose last byte (0x00) is not valid padding
    let whole = crypto::cbc_encrypt(&k.key2, &iv, &[0u8; 16]);
    let cipher = &whole[..16];
    let len = prefix(16 + 16 + 32);
    let tag = crypto::hmac_sha256(
        &k.mac_client_to_server,
        &[&0u64.to_be_bytes(), &len, &iv, cipher],
    )
    .expect("hmac");
    let mut body = iv.to_vec();
    body.extend_from_slice(cipher);
    body.extend_from_slice(&tag);
    let mut opener = k.opener(Role::Server);
    assert!(matches!(
        opener.open(&body),
        Err(FrameError::Crypto(CryptoError::Padding))
    ));
}

#[test]
fn v1_padding_is_strict() {
    let k = keys(Scheme::V1);
    let whole = crypto::cbc_encrypt(&k.key2, &k.iv2, &[0u8; 16]);
    let mut opener = k.opener(Role::Server);
    assert!(matches!(
        opener.open(&whole[..16]),
        Err(FrameError::Crypto(CryptoError::Padding))
    ));
}

#[test]
fn impossible_lengths_are_refused() {
    let v1 = keys(Scheme::V1).opener(Role::Server);
    let v2 = keys(Scheme::V2).opener(Role::Server);
    for len in [0, 1, 15, 17, 33] {
        assert!(
            matches!(v1.check_len(len), Err(FrameError::BadLength(_))),
            "{len}"
        );
    }
    for len in [0, 16, 47, 48, 63, 65, 81] {
        assert!(
            matches!(v2.check_len(len), Err(FrameError::BadLength(_))),
            "{len}"
        );
    }
    v1.check_len(16).expect("one block");
    v2.check_len(64).expect("iv, one block, tag");
    v1.check_len(MAX_REQUEST_FRAME_LEN).expect("limit");
    assert!(matches!(
        v1.check_len(MAX_REQUEST_FRAME_LEN + 16),
        Err(FrameError::TooLong { .. })
    ));
}

#[test]
fn replies_may_be_as_large_as_the_largest_cluster_and_requests_64_kib() {
    for scheme in [Scheme::V1, Scheme::V2] {
        let k = keys(scheme);
        // the registry reads requests, the client reads replies
        let server = k.opener(Role::Server);
        let client = k.opener(Role::Client);
        let whole = |n: usize| n - (n - FRAME_OVERHEAD) % BLOCK_LEN;
        let request = whole(MAX_REQUEST_FRAME_LEN);
        let reply = whole(MAX_REPLY_FRAME_LEN);
        server.check_len(request).expect("largest request");
        assert!(matches!(
            server.check_len(request + BLOCK_LEN),
            Err(FrameError::TooLong {
                max: MAX_REQUEST_FRAME_LEN,
                ..
            })
        ));
        client.check_len(reply).expect("largest reply");
        assert!(matches!(
            client.check_len(reply + BLOCK_LEN),
            Err(FrameError::TooLong {
                max: MAX_REPLY_FRAME_LEN,
                ..
            })
        ));
        // what each side may send, it may also receive
        let mut sealer = k.sealer(Role::Server);
        let frame = sealer
            .seal(&vec![7u8; MAX_REPLY_MESSAGE_LEN])
            .expect("largest reply seals");
        assert!(frame.len() - LENGTH_PREFIX_LEN <= MAX_REPLY_FRAME_LEN);
        let mut client = k.opener(Role::Client);
        assert_eq!(
            client
                .open(&frame[LENGTH_PREFIX_LEN..])
                .expect("opens")
                .len(),
            MAX_REPLY_MESSAGE_LEN
        );
        assert!(matches!(
            k.sealer(Role::Client)
                .seal(&vec![7u8; MAX_REQUEST_MESSAGE_LEN + 1]),
            Err(FrameError::MessageTooLarge(_))
        ));
    }
}

#[test]
fn an_oversized_length_is_refused_before_its_bytes_arrive() {
    let mut decoder = MsgDecoder(keys(Scheme::V2).opener(Role::Server));
    let mut buf = BytesMut::from(&0x0001_0010u32.to_be_bytes()[..]);
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(FrameError::TooLong {
            len: 0x0001_0010,
            ..
        })
    ));
}

#[test]
fn largest_message_fits_and_one_more_byte_does_not() {
    for scheme in [Scheme::V1, Scheme::V2] {
        let k = keys(scheme);
        let mut sealer = k.sealer(Role::Client);
        let frame = sealer
            .seal(&vec![1u8; MAX_REQUEST_MESSAGE_LEN])
            .expect("fits");
        assert!(frame.len() - 4 <= MAX_REQUEST_FRAME_LEN);
        let mut opener = k.opener(Role::Server);
        assert_eq!(
            opener.open(&frame[4..]).expect("opens").len(),
            MAX_REQUEST_MESSAGE_LEN
        );
        assert!(matches!(
            sealer.seal(&vec![1u8; MAX_REQUEST_MESSAGE_LEN + 1]),
            Err(FrameError::MessageTooLarge(_))
        ));
    }
}

#[test]
fn codec_decodes_byte_by_byte_in_both_versions() {
    for scheme in [Scheme::V1, Scheme::V2] {
        let k = keys(scheme);
        let mut encoder = MsgEncoder(k.sealer(Role::Client));
        let mut decoder = MsgDecoder(k.opener(Role::Server));
        let msg = XlRegMsg {
            op: Some(Tag::Join as i32),
            cluster_name: Some("c".repeat(100)),
            ..Default::default()
        };
        let mut wire = BytesMut::new();
        encoder.encode(msg.clone(), &mut wire).expect("encode");
        encoder.encode(bye(), &mut wire).expect("encode");
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in wire.iter() {
            buf.extend_from_slice(&[*byte]);
            while let Some(m) = decoder.decode(&mut buf).expect("decode") {
                got.push(m.msg);
            }
        }
        assert_eq!(got, vec![msg, bye()]);
        assert!(buf.is_empty());
    }
}

#[test]
fn undecodable_plaintext_is_an_error() {
    let k = keys(Scheme::V2);
    let frame = k.sealer(Role::Client).seal(&[0xff, 0xff]).expect("seal");
    let mut decoder = MsgDecoder(k.opener(Role::Server));
    let mut buf = BytesMut::from(&frame[..]);
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(FrameError::Decode(_))
    ));
}
