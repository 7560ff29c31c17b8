//! Register-to-event latency through the HTTP API's watch
//! (`GET /v1/watch`, Server-Sent Events; docs/HTTP.md): a registrar on the
//! node's UNIX socket registers, a reader of the SSE stream over TCP waits
//! for the `added` event. The same rows as the native `notify` workload,
//! so the two compare line by line.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use catalogue_client::Client;
use serde::Deserialize;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

use super::{
    measure::{Pace, closed_loop, latency_header, latency_row, open_loop, within},
    node::{BenchNode, free_port},
};

/// URIs of this workload.
const PREFIX: &str = "tcp://httpw/";

/// The data of an `added` event, as a client program would read it (the
/// bench uses the URI; the rest is parsed all the same).
#[derive(Deserialize)]
#[allow(dead_code)]
struct ServiceData {
    uri: String,
    attrs: BTreeMap<String, String>,
    origin: String,
    at_ms: u64,
    revision: u64,
}

/// An SSE stream read over HTTP/1.1 (chunked), event by event: chunks are
/// read whole into one buffer and events are cut from it in place, each
/// `added` event's data parsed as JSON, so the reader costs little beside
/// the node and still reads every event as a client would.
pub(crate) struct SseReader {
    reader: BufReader<TcpStream>,
    /// Body bytes read; events start at `start`.
    body: Vec<u8>,
    start: usize,
    /// The chunk-size line being read.
    size: String,
}

/// One event cut from the stream: its type and its (single) data line.
struct Event<'a> {
    kind: &'a [u8],
    data: &'a [u8],
}

impl Event<'_> {
    fn parse(block: &[u8]) -> Event<'_> {
        let mut event = Event {
            kind: b"",
            data: b"",
        };
        for line in block.split(|&b| b == b'\n') {
            if let Some(v) = line.strip_prefix(b"event: ") {
                event.kind = v;
            } else if let Some(v) = line.strip_prefix(b"data: ") {
                event.data = v;
            }
        }
        event
    }
}

impl SseReader {
    pub(crate) async fn open(addr: &str, path: &str) -> Result<SseReader> {
        let mut stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect to the HTTP API at {addr}"))?;
        let _ = stream.set_nodelay(true);
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut reader = BufReader::with_capacity(64 * 1024, stream);
        let mut line = String::new();
        reader.read_line(&mut line).await?;
        if !line.contains(" 200 ") {
            bail!("the watch answered {}", line.trim());
        }
        loop {
            line.clear();
            reader.read_line(&mut line).await?;
            if line.trim().is_empty() {
                break;
            }
        }
        Ok(SseReader {
            reader,
            body: Vec::with_capacity(64 * 1024),
            start: 0,
            size: String::new(),
        })
    }

    /// Reads the next chunk of the body onto the buffer.
    async fn read_chunk(&mut self) -> Result<()> {
        loop {
            self.size.clear();
            if self.reader.read_line(&mut self.size).await? == 0 {
                bail!("the stream ended");
            }
            let size = self.size.trim();
            if size.is_empty() {
                continue;
            }
            let len = usize::from_str_radix(size, 16).context("chunk size")?;
            if len == 0 {
                bail!("the stream ended");
            }
            // Events end where chunks end, so this keeps little if any.
            self.body.drain(..self.start);
            self.start = 0;
            let at = self.body.len();
            self.body.resize(at + len, 0);
            self.reader.read_exact(&mut self.body[at..]).await?;
            return Ok(());
        }
    }

    /// The bounds of the next whole event (without its blank line).
    async fn next_block(&mut self) -> Result<(usize, usize)> {
        loop {
            let rest = &self.body[self.start..];
            if let Some(end) = rest.windows(2).position(|w| w == b"\n\n") {
                let block = (self.start, self.start + end);
                self.start += end + 2;
                return Ok(block);
            }
            self.read_chunk().await?;
        }
    }

    /// The type of the next event (`snapshot_end`, `added`...).
    async fn next_kind(&mut self) -> Result<String> {
        let (from, to) = self.next_block().await?;
        let event = Event::parse(&self.body[from..to]);
        Ok(String::from_utf8_lossy(event.kind).into_owned())
    }

    /// The URI of the next `added` event; an overflow is an error.
    async fn next_added(&mut self) -> Result<String> {
        loop {
            let (from, to) = self.next_block().await?;
            let event = Event::parse(&self.body[from..to]);
            match event.kind {
                b"added" => {
                    let data: ServiceData =
                        serde_json::from_slice(event.data).context("an added event's data")?;
                    return Ok(data.uri);
                }
                b"overflow" => bail!(
                    "the watch overflowed: {}",
                    String::from_utf8_lossy(event.data)
                ),
                _ => continue,
            }
        }
    }
}

/// Runs the workload on its own node (the HTTP API on a free port).
pub async fn run(
    node_sets: &[String],
    events: usize,
    rate: u32,
    pipelined: (usize, usize),
) -> Result<()> {
    let port = free_port()?;
    let mut sets = node_sets.to_vec();
    sets.push(format!("http.listen=127.0.0.1:{port}"));
    let mut node = BenchNode::start("bench-http", &sets).await?;
    let result = async {
        node.wait_log("HTTP API listening").await?;
        let addr = format!("127.0.0.1:{port}");
        let registrar = Client::connect(&node.options()).await?;
        let mut sse = SseReader::open(&addr, "/v1/watch?match=%5Etcp%3A%2F%2Fhttpw%2F").await?;
        while within("snapshot_end", sse.next_kind()).await?? != "snapshot_end" {}
        let sse = tokio::sync::Mutex::new(sse);
        latency_header(&format!(
            "http-watch latency (register call -> SSE event over HTTP), {events} events"
        ));
        for (label, rate) in [
            (format!("{rate}/s"), Some(rate)),
            ("saturation".into(), None),
        ] {
            let measured = closed_loop(events, rate, |i| {
                let uri = format!("{PREFIX}{label}/{i}");
                let (registrar, sse) = (&registrar, &sse);
                async move {
                    registrar.register(&uri, BTreeMap::new()).await?;
                    let mut sse = sse.lock().await;
                    while sse.next_added().await? != uri {}
                    Ok(())
                }
            })
            .await?;
            latency_row("http-watch", &label, measured);
        }
        let (events, inflight) = pipelined;
        let measured = open_loop(
            events,
            Pace::Saturate(inflight),
            |i| {
                let uri = format!("{PREFIX}pipelined/{i}");
                let registrar = &registrar;
                async move { Ok(registrar.register(&uri, BTreeMap::new()).await?) }
            },
            || {
                let sse = &sse;
                async move {
                    let mut sse = sse.lock().await;
                    loop {
                        let uri = sse.next_added().await?;
                        if let Some(i) = uri.strip_prefix(&format!("{PREFIX}pipelined/")) {
                            return i.parse().context("an index in the URI");
                        }
                    }
                }
            },
        )
        .await?;
        latency_row("http-watch", &format!("pipelined-x{inflight}"), measured);
        Ok::<_, anyhow::Error>(())
    }
    .await;
    node.stop();
    result
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::{io::AsyncWriteExt, net::TcpListener};

    use super::SseReader;

    /// The text of `n` `added` events, as the node writes them.
    fn events(n: usize) -> Vec<u8> {
        let mut text = Vec::new();
        for i in 0..n {
            text.extend_from_slice(
                format!(
                    "event: added\nid: 7:{i}\ndata: {{\"uri\":\"tcp://httpw/canned/{i}\",\
                     \"attrs\":{{}},\"origin\":\"bench-http\",\"at_ms\":1764908400123,\
                     \"at\":\"2025-12-05T04:20:00.123Z\",\"snapshot\":false,\"revision\":{i}}}\n\n"
                )
                .as_bytes(),
            );
        }
        text
    }

    /// The reader against a canned stream served on loopback: every event
    /// is read, in order, whatever the chunk boundaries (some cut events
    /// in two); with `--nocapture` it prints how many events a second it
    /// reads alone, the ceiling of the workload's events/s.
    #[tokio::test]
    async fn the_reader_reads_every_event_of_a_canned_stream() {
        const N: usize = 50_000;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address").to_string();
        let body = events(N);
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.expect("accept");
            let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                transfer-encoding: chunked\r\n\r\n"
                .to_vec();
            // Chunks of 1 to 64 events' worth of bytes, cut anywhere.
            let mut at = 0;
            let mut size = 157;
            while at < body.len() {
                let end = (at + size).min(body.len());
                out.extend_from_slice(format!("{:x}\r\n", end - at).as_bytes());
                out.extend_from_slice(&body[at..end]);
                out.extend_from_slice(b"\r\n");
                at = end;
                size = size * 7 % 13_001 + 1;
            }
            out.extend_from_slice(b"0\r\n\r\n");
            conn.write_all(&out).await.expect("write");
            conn
        });
        let mut reader = SseReader::open(&addr, "/v1/watch").await.expect("open");
        let started = Instant::now();
        for i in 0..N {
            let uri = reader.next_added().await.expect("an event");
            assert_eq!(uri, format!("tcp://httpw/canned/{i}"));
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "reader alone: {N} events in {seconds:.3} s, {:.0}/s",
            N as f64 / seconds
        );
        assert!(reader.next_added().await.is_err(), "the stream has ended");
        drop(server.await);
    }
}
