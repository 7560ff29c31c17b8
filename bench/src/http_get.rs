//! A kept-alive HTTP/1.1 connection for `GET` requests to a node's HTTP
//! API (docs/HTTP.md), enough for the read workloads: the status line, a
//! `Content-Length` body, no TLS, no redirects, no chunked replies (the
//! API's JSON answers carry a length).

use anyhow::{Context, Result, bail};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

/// One connection; requests go one after the other.
pub struct HttpGet {
    reader: BufReader<TcpStream>,
    addr: String,
    line: String,
    body: Vec<u8>,
}

impl HttpGet {
    /// Connects to `addr` (`host:port`).
    pub async fn connect(addr: &str) -> Result<HttpGet> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect to the HTTP API at {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(HttpGet {
            reader: BufReader::with_capacity(64 * 1024, stream),
            addr: addr.to_string(),
            line: String::new(),
            body: Vec::new(),
        })
    }

    /// `GET path`: the body of a 200 answer.
    pub async fn get(&mut self, path: &str) -> Result<&[u8]> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        self.reader.get_mut().write_all(request.as_bytes()).await?;
        self.line.clear();
        self.reader.read_line(&mut self.line).await?;
        if !self.line.contains(" 200 ") {
            bail!("GET {path} answered {:?}", self.line.trim());
        }
        let mut length = None;
        loop {
            self.line.clear();
            if self.reader.read_line(&mut self.line).await? == 0 {
                bail!("the API closed the connection in the headers");
            }
            let header = self.line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = Some(value.trim().parse::<usize>().context("Content-Length")?);
                }
            }
        }
        let length = length.context("an answer without Content-Length")?;
        self.body.resize(length, 0);
        self.reader.read_exact(&mut self.body).await?;
        Ok(&self.body)
    }
}
