//! Known answers (NIST SP 800-38A, RFC 4231, RFC 5869, and `openssl enc`)
//! and every padding error.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test hex"))
        .collect()
}

fn arr<const N: usize>(s: &str) -> [u8; N] {
    hex(s).try_into().expect("test hex length")
}

#[test]
fn cbc_matches_nist_and_openssl() {
    // SP 800-38A F.2.5, first block, then the full PKCS#7 block that
    // `openssl enc -aes-256-cbc` appends.
    let key = arr("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
    let iv = arr("000102030405060708090a0b0c0d0e0f");
    let plain = hex("6bc1bee22e409f96e93d7e117393172a");
    let cipher = cbc_encrypt(&key, &iv, &plain);
    assert_eq!(
        cipher,
        hex("f58c4c04d6e5f1ba779eabfb5f7bfbd6485a5c81519cf378fa36d42b8547edc0")
    );
    assert_eq!(cbc_decrypt(&key, &iv, &cipher).expect("decrypts"), plain);

    let key = arr("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    let iv = arr("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
    let cipher = cbc_encrypt(&key, &iv, b"xlReg");
    assert_eq!(cipher, hex("fc281a42e7d7a313042d3e0a38bba676"));
    assert_eq!(cbc_decrypt(&key, &iv, &cipher).expect("decrypts"), b"xlReg");
}

#[test]
fn pads_every_length() {
    for len in 0..=48 {
        let data = vec![0xAB; len];
        let padded = pkcs7_pad(&data);
        assert_eq!(padded.len() % BLOCK_LEN, 0);
        assert!(padded.len() > len && padded.len() <= len + BLOCK_LEN);
        let pad = padded.len() - len;
        assert!(padded[len..].iter().all(|&b| usize::from(b) == pad));
        assert_eq!(pkcs7_unpad(&padded).expect("unpads"), &data[..]);
    }
}

#[test]
fn refuses_every_bad_padding() {
    let good = pkcs7_pad(b"0123456789");
    assert_eq!(good.len(), 16);
    // pad byte zero, and longer than a block
    for last in [0u8, 17, 200] {
        let mut bad = good.clone();
        bad[15] = last;
        assert_eq!(pkcs7_unpad(&bad), Err(CryptoError::Padding), "last {last}");
    }
    // each pad byte but the last one changed in turn
    for i in 10..15 {
        let mut bad = good.clone();
        bad[i] ^= 1;
        assert_eq!(pkcs7_unpad(&bad), Err(CryptoError::Padding), "byte {i}");
    }
    // not a whole number of blocks, or empty
    assert_eq!(pkcs7_unpad(&good[..15]), Err(CryptoError::Padding));
    assert_eq!(pkcs7_unpad(&[]), Err(CryptoError::Padding));
    // a full block of padding is fine, 16 times 0x10
    assert_eq!(pkcs7_unpad(&[16u8; 16]).expect("full pad"), &[] as &[u8]);
}

#[test]
fn decrypt_refuses_bad_lengths_and_padding() {
    let key = [7u8; 32];
    let iv = [9u8; 16];
    assert_eq!(
        cbc_decrypt(&key, &iv, &[]),
        Err(CryptoError::CiphertextLength(0))
    );
    assert_eq!(
        cbc_decrypt(&key, &iv, &[0u8; 17]),
        Err(CryptoError::CiphertextLength(17))
    );
    let mut cipher = cbc_encrypt(&key, &iv, b"some message");
    // Flipping a bit of the IV flips the same bit of the first block's
    // plaintext: here the last byte, the padding.
    let mut iv2 = iv;
    iv2[15] ^= 0x01;
    assert_eq!(cbc_decrypt(&key, &iv2, &cipher), Err(CryptoError::Padding));
    cipher[0] ^= 0x80;
    assert!(cbc_decrypt(&key, &iv, &cipher) != Ok(b"some message".to_vec()));
}

#[test]
fn hmac_matches_rfc_4231_case_2() {
    let tag = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]).expect("hmac");
    assert_eq!(
        tag.to_vec(),
        hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    );
    hmac_sha256_verify(b"Jefe", &[b"what do ya want for nothing?"], &tag).expect("verifies");
    let mut bad = tag;
    bad[31] ^= 1;
    assert_eq!(
        hmac_sha256_verify(b"Jefe", &[b"what do ya want for nothing?"], &bad),
        Err(CryptoError::Tag)
    );
    assert_eq!(
        hmac_sha256_verify(b"Jefe", &[b"what do ya want for nothing?"], &tag[..31]),
        Err(CryptoError::Tag)
    );
}

#[test]
fn hkdf_matches_rfc_5869_case_1() {
    let okm: [u8; 42] = hkdf_sha256(
        &hex("000102030405060708090a0b0c"),
        &[0x0b; 22],
        &hex("f0f1f2f3f4f5f6f7f8f9"),
    )
    .expect("hkdf");
    assert_eq!(
        okm.to_vec(),
        hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
    );
}

#[test]
fn random_bytes_differ() {
    let a: [u8; 32] = random().expect("random");
    let b: [u8; 32] = random().expect("random");
    assert_ne!(a, b);
}

#[test]
fn constant_time_eq_compares() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
}
