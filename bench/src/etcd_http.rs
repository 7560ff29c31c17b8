//! A small HTTP/1.1 client for etcd's v3 JSON gateway, enough for the
//! benchmark: `POST /v3/kv/put` on a kept-alive connection, and a
//! streaming `POST /v3/watch` whose chunked response carries one JSON
//! message per line. Keys and values travel base64-encoded. No TLS, no
//! redirects, no proxies: etcd on loopback.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

/// The gateway's path prefix (etcd 3.4 and later serve `/v3/`).
const PREFIX: &str = "/v3";

/// Time allowed for etcd to confirm the watchers of a new stream.
const CREATE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// A connection to one etcd member.
pub struct Http {
    stream: BufReader<TcpStream>,
    host: String,
}

/// How a response body is delimited.
enum Body {
    Length(usize),
    Chunked,
}

impl Http {
    /// Connects to `url` (`http://host:port`).
    pub async fn connect(url: &str) -> Result<Http> {
        let host = url
            .strip_prefix("http://")
            .with_context(|| format!("{url}: only http:// URLs"))?
            .trim_end_matches('/')
            .to_string();
        let stream = TcpStream::connect(&host)
            .await
            .with_context(|| format!("connecting to etcd at {host}"))?;
        stream.set_nodelay(true)?;
        Ok(Http {
            stream: BufReader::new(stream),
            host,
        })
    }

    async fn send(&mut self, path: &str, body: &str) -> Result<Body> {
        let request = format!(
            "POST {PREFIX}{path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        self.read_head().await
    }

    /// Reads the status line and headers.
    async fn read_head(&mut self) -> Result<Body> {
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut body = Body::Length(0);
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                bail!("etcd closed the connection in the headers");
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                body = Body::Length(value.parse().context("Content-Length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding")
                && value.eq_ignore_ascii_case("chunked")
            {
                body = Body::Chunked;
            }
        }
        if status != "200" {
            let text = self.read_body(body).await.unwrap_or_default();
            bail!("etcd answered {status}: {}", String::from_utf8_lossy(&text));
        }
        Ok(body)
    }

    async fn read_body(&mut self, body: Body) -> Result<Vec<u8>> {
        match body {
            Body::Length(n) => {
                let mut buf = vec![0; n];
                self.stream.read_exact(&mut buf).await?;
                Ok(buf)
            }
            Body::Chunked => {
                let mut chunks = Chunks::default();
                let mut all = Vec::new();
                while let Some(piece) = chunks.next_piece(&mut self.stream).await? {
                    all.extend_from_slice(&piece);
                }
                Ok(all)
            }
        }
    }

    /// Puts `key` = `value`.
    pub async fn put(&mut self, key: &str, value: &str) -> Result<()> {
        let body = format!(
            r#"{{"key":"{}","value":"{}"}}"#,
            base64(key.as_bytes()),
            base64(value.as_bytes())
        );
        let head = self.send("/kv/put", &body).await?;
        self.read_body(head).await?;
        Ok(())
    }

    /// Opens a watch stream with one watcher per `(key, range_end)`, and
    /// waits until etcd has confirmed each. Through the gateway only the
    /// first is reliable: Go's HTTP/1.1 server drops the unread rest of the
    /// request body once the first answer starts, and then this fails
    /// after [`CREATE_DEADLINE`].
    pub async fn watch(mut self, ranges: &[(String, String)]) -> Result<WatchStream> {
        let mut body = String::new();
        for (key, end) in ranges {
            body.push_str(&format!(
                r#"{{"create_request":{{"key":"{}","range_end":"{}"}}}}"#,
                base64(key.as_bytes()),
                base64(end.as_bytes())
            ));
            body.push('\n');
        }
        match self.send("/watch", &body).await? {
            Body::Chunked => {}
            Body::Length(_) => bail!("etcd's watch answer is not a stream"),
        }
        let mut stream = WatchStream {
            http: self,
            chunks: Chunks::default(),
            line: Vec::new(),
        };
        let mut created = 0;
        let confirmed = tokio::time::timeout(CREATE_DEADLINE, async {
            while created < ranges.len() {
                let message = stream.next_message().await?;
                if message.get("created").and_then(Value::as_bool) == Some(true) {
                    created += 1;
                }
            }
            Ok::<_, anyhow::Error>(())
        })
        .await;
        match confirmed {
            Ok(result) => result.map(|()| stream),
            Err(_) => bail!(
                "etcd confirmed {created} of {} watchers on one stream within {CREATE_DEADLINE:?}",
                ranges.len()
            ),
        }
    }
}

/// The end of the range of every key with `prefix` (the prefix with its
/// last byte incremented), as etcd's clients compute it.
pub fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0x7f {
            bytes.push(last + 1);
            break;
        }
    }
    String::from_utf8(bytes).unwrap_or_default()
}

/// A live watch response stream.
pub struct WatchStream {
    http: Http,
    chunks: Chunks,
    line: Vec<u8>,
}

impl WatchStream {
    /// The next message's `result` object.
    async fn next_message(&mut self) -> Result<Value> {
        loop {
            if let Some(end) = self.line.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.line.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let value: Value =
                    serde_json::from_slice(&line).context("a watch message that is not JSON")?;
                if let Some(error) = value.get("error") {
                    bail!("etcd ended the watch: {error}");
                }
                return Ok(value.get("result").cloned().unwrap_or(Value::Null));
            }
            match self.chunks.next_piece(&mut self.http.stream).await? {
                Some(piece) => self.line.extend_from_slice(&piece),
                None => bail!("etcd ended the watch stream"),
            }
        }
    }

    /// The next batch of events: `(watch_id, base64 keys)`.
    pub async fn next_events(&mut self) -> Result<(u64, Vec<String>)> {
        loop {
            let message = self.next_message().await?;
            let Some(events) = message.get("events").and_then(Value::as_array) else {
                continue;
            };
            let id = match message.get("watch_id") {
                Some(Value::String(s)) => s.parse().context("watch_id")?,
                Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
                _ => 0,
            };
            let keys = events
                .iter()
                .filter_map(|e| e.pointer("/kv/key").and_then(Value::as_str))
                .map(str::to_string)
                .collect();
            return Ok((id, keys));
        }
    }
}

/// Chunked transfer decoding state.
#[derive(Default)]
struct Chunks {
    /// Data bytes left in the current chunk.
    left: usize,
}

impl Chunks {
    /// The next piece of body data; `None` after the last chunk.
    async fn next_piece(&mut self, stream: &mut BufReader<TcpStream>) -> Result<Option<Vec<u8>>> {
        if self.left == 0 {
            let mut line = String::new();
            loop {
                line.clear();
                if stream.read_line(&mut line).await? == 0 {
                    bail!("etcd closed the connection inside a chunked body");
                }
                // The CRLF that ends the previous chunk's data.
                if !line.trim().is_empty() {
                    break;
                }
            }
            let size = line.trim().split(';').next().unwrap_or("");
            self.left = usize::from_str_radix(size, 16)
                .with_context(|| format!("a chunk size {size:?}"))?;
            if self.left == 0 {
                // The trailer ends with an empty line.
                loop {
                    line.clear();
                    if stream.read_line(&mut line).await? == 0 || line.trim().is_empty() {
                        return Ok(None);
                    }
                }
            }
        }
        let available = stream.fill_buf().await?;
        if available.is_empty() {
            bail!("etcd closed the connection inside a chunk");
        }
        let n = available.len().min(self.left);
        let piece = available[..n].to_vec();
        stream.consume(n);
        self.left -= n;
        Ok(Some(piece))
    }
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for group in data.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= group.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_known_strings() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
    }

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end("/a/"), "/a0");
        assert_eq!(prefix_end("ab"), "ac");
    }
}
