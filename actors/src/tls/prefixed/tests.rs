//! [`Prefixed`] on its own: buffered bytes come out once, in order, across
//! reads of any size, then reads go through; writes are untouched.

use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

use super::Prefixed;

#[tokio::test]
async fn replays_buffered_bytes_once_then_reads_through() {
    let (mut far, near) = duplex(1024);
    far.write_all(b" world").await.expect("write");
    drop(far);
    let mut stream = Prefixed::new(b"hello".to_vec(), near);
    let mut all = Vec::new();
    stream.read_to_end(&mut all).await.expect("read");
    assert_eq!(all, b"hello world");
    assert!(stream.buffered().is_empty());
}

#[tokio::test]
async fn small_reads_split_the_buffered_bytes_without_skipping_any() {
    let (mut far, near) = duplex(1024);
    far.write_all(b"XYZ").await.expect("write");
    let mut stream = Prefixed::new(&b"abcde"[..], near);
    let mut two = [0u8; 2];
    assert_eq!(stream.read(&mut two).await.expect("read"), 2);
    assert_eq!(&two, b"ab");
    assert_eq!(stream.buffered(), b"cde");
    // A read never mixes the buffer with the inner stream: it ends at the
    // buffer's end.
    let mut big = [0u8; 16];
    assert_eq!(stream.read(&mut big).await.expect("read"), 3);
    assert_eq!(&big[..3], b"cde");
    assert_eq!(stream.read(&mut big).await.expect("read"), 3);
    assert_eq!(&big[..3], b"XYZ");
    drop(far);
    assert_eq!(stream.read(&mut big).await.expect("read"), 0, "then EOF");
}

#[tokio::test]
async fn empty_buffer_reads_straight_through() {
    let (mut far, near) = duplex(1024);
    far.write_all(b"direct").await.expect("write");
    drop(far);
    let mut stream = Prefixed::new(Vec::new(), near);
    let mut all = Vec::new();
    stream.read_to_end(&mut all).await.expect("read");
    assert_eq!(all, b"direct");
}

#[tokio::test]
async fn writes_go_to_the_inner_stream() {
    let (mut far, near) = duplex(1024);
    let mut stream = Prefixed::new(b"unread".to_vec(), near);
    stream.write_all(b"out").await.expect("write");
    stream.flush().await.expect("flush");
    stream.shutdown().await.expect("shutdown");
    let mut got = Vec::new();
    far.read_to_end(&mut got).await.expect("read");
    assert_eq!(got, b"out");
    let (rest, _inner) = stream.into_parts();
    assert_eq!(&rest[..], b"unread", "writing does not consume the buffer");
}
