//! [`Prefixed`]: a stream that first hands out bytes the caller has already
//! read from it, then reads through.
//!
//! A peer link reads the plaintext `Peer` frame before TLS starts. The
//! dialling side may send its TLS ClientHello right behind that frame, so
//! the read that completed the frame can also hold the first bytes of the
//! handshake. Wrapping the socket as `Prefixed::new(leftover, socket)`
//! before [`super::accept`] gives those bytes to OpenSSL first, so nothing
//! is lost and nothing is read twice. Writes go straight to the inner
//! stream.

use std::{
    io::{self, IoSlice},
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `buffered` bytes, then `inner`.
#[derive(Debug)]
pub struct Prefixed<S> {
    /// Already read from `inner`, not yet consumed; handed out first.
    buffered: Bytes,
    /// The stream itself.
    inner: S,
}

impl<S> Prefixed<S> {
    /// Reads return `buffered` first, then read from `inner`.
    pub fn new(buffered: impl Into<Bytes>, inner: S) -> Self {
        Self {
            buffered: buffered.into(),
            inner,
        }
    }

    /// The bytes not handed out yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buffered
    }

    /// The inner stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner stream. Reading from it directly skips what is buffered.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The bytes not handed out yet, and the inner stream.
    pub fn into_parts(self) -> (Bytes, S) {
        (self.buffered, self.inner)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.buffered.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = this.buffered.len().min(buf.remaining());
        buf.put_slice(&this.buffered[..n]);
        this.buffered.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
