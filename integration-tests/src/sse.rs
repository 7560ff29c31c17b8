//! A Server-Sent Events reader for tests: a plain HTTP/1.1 GET over TCP,
//! its chunked body decoded, and the events parsed one by one with a
//! deadline, the way a browser's `EventSource` reads `/v1/watch`.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// `event:` (`message` when absent).
    pub kind: String,
    /// `id:`, when the event has one.
    pub id: Option<String>,
    /// `data:`, parsed as JSON (`Null` when empty).
    pub data: Value,
}

/// An open stream.
pub struct SseStream {
    reader: BufReader<TcpStream>,
    /// Bytes of the current chunk still to read.
    chunk_left: usize,
    /// The status of the response.
    pub status: u16,
    /// The body, when the status is not 200.
    pub error_body: String,
    /// The response said `Connection: close`: a watch served on the node's
    /// own thread does (docs/HTTP.md, "Where a watch is served").
    pub connection_close: bool,
}

impl SseStream {
    /// `GET path` at `addr` with optional `Last-Event-ID`.
    pub fn open(addr: &str, path: &str, last_event_id: Option<&str>) -> Result<SseStream> {
        let mut stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
        let mut request =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        if let Some(id) = last_event_id {
            request.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes())?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        read_line_by(
            &mut reader,
            &mut status_line,
            Instant::now() + crate::DEADLINE,
        )?;
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("status line {status_line:?}"))?;
        let mut chunked = false;
        let mut connection_close = false;
        let mut length = None;
        loop {
            let mut line = String::new();
            read_line_by(&mut reader, &mut line, Instant::now() + crate::DEADLINE)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
            if lower.starts_with("connection:") && lower.contains("close") {
                connection_close = true;
            }
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse::<usize>().ok();
            }
        }
        let mut sse = SseStream {
            reader,
            chunk_left: 0,
            status,
            error_body: String::new(),
            connection_close,
        };
        if status != 200 {
            let mut body = vec![0u8; length.unwrap_or(0)];
            sse.reader.read_exact(&mut body)?;
            sse.error_body = String::from_utf8_lossy(&body).into_owned();
        } else if !chunked {
            bail!("a 200 stream without chunked encoding");
        }
        Ok(sse)
    }

    /// The next line of the decoded body, by `deadline`.
    fn body_line(&mut self, deadline: Instant) -> Result<String> {
        let mut line = Vec::new();
        loop {
            if self.chunk_left == 0 {
                let mut size = String::new();
                read_line_by(&mut self.reader, &mut size, deadline)?;
                let size = size.trim();
                if size.is_empty() {
                    continue;
                }
                self.chunk_left = usize::from_str_radix(size, 16)
                    .with_context(|| format!("chunk size {size:?}"))?;
                if self.chunk_left == 0 {
                    bail!("the stream ended");
                }
            }
            let mut byte = [0u8; 1];
            loop {
                match self.reader.read(&mut byte) {
                    Ok(0) => bail!("the connection closed"),
                    Ok(_) => break,
                    Err(e) if is_timeout(&e) => {
                        if Instant::now() >= deadline {
                            bail!("no event by the deadline");
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            self.chunk_left -= 1;
            if byte[0] == b'\n' {
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            line.push(byte[0]);
        }
    }

    /// The next event (comments and `retry:` skipped), within `within`.
    pub fn next_event(&mut self, within: Duration) -> Result<SseEvent> {
        let deadline = Instant::now() + within;
        let (mut kind, mut id, mut data) = (None, None, String::new());
        loop {
            let line = self.body_line(deadline)?;
            if line.is_empty() {
                if kind.is_some() || !data.is_empty() {
                    let data = if data.is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_str(&data).with_context(|| format!("data {data:?}"))?
                    };
                    return Ok(SseEvent {
                        kind: kind.unwrap_or_else(|| "message".into()),
                        id,
                        data,
                    });
                }
                continue;
            }
            if let Some(v) = line.strip_prefix("event: ") {
                kind = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push_str(v);
            }
        }
    }

    /// Events up to and including the next `snapshot_end`.
    pub fn until_snapshot_end(&mut self, within: Duration) -> Result<Vec<SseEvent>> {
        let deadline = Instant::now() + within;
        let mut events = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = self.next_event(left)?;
            let end = event.kind == "snapshot_end";
            events.push(event);
            if end {
                return Ok(events);
            }
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

fn read_line_by(reader: &mut impl BufRead, line: &mut String, deadline: Instant) -> Result<()> {
    loop {
        match reader.read_line(line) {
            Ok(0) => bail!("the connection closed"),
            Ok(_) => return Ok(()),
            Err(e) if is_timeout(&e) => {
                if Instant::now() >= deadline {
                    bail!("nothing by the deadline");
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}
