//! The first flight of a real TLS client (its ClientHello records), made
//! by OpenSSL with a node's certificate, to send cut short to a node.

use std::io::{self, Read, Write};

use anyhow::{Result, bail};
use catalogue_actors::tls::TlsContexts;
use openssl::ssl::{ErrorCode, SslStream};

use crate::TlsFiles;

/// A stream that keeps what is written and has nothing to read.
#[derive(Default)]
struct Capture(Vec<u8>);

impl Read for Capture {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The bytes a TLS client holding `files` sends first to `server_name`.
pub fn client_hello(files: &TlsFiles, server_name: &str) -> Result<Vec<u8>> {
    let contexts = TlsContexts::from_files(&files.ca, &files.cert, &files.key)?;
    let ssl = contexts.connector.configure()?.into_ssl(server_name)?;
    let mut stream = SslStream::new(ssl, Capture::default())?;
    match stream.connect() {
        Err(e) if e.code() == ErrorCode::WANT_READ => {}
        other => bail!("expected the handshake to wait for the server, got {other:?}"),
    }
    let hello = std::mem::take(&mut stream.get_mut().0);
    if hello.first() != Some(&0x16) {
        bail!(
            "not a TLS handshake record: {:02x?}",
            &hello[..hello.len().min(8)]
        );
    }
    Ok(hello)
}
