//! Register-to-event latency through the HTTP API's watch
//! (`GET /v1/watch`, Server-Sent Events; docs/HTTP.md): a registrar on the
//! node's UNIX socket registers, a reader of the SSE stream over TCP waits
//! for the `added` event. The same rows as the native `notify` workload,
//! so the two compare line by line.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use catalogue_client::Client;
use serde_json::Value;
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

/// An SSE stream read over HTTP/1.1 (chunked), event by event.
struct SseReader {
    reader: BufReader<TcpStream>,
    /// Body bytes read and not yet split into lines.
    body: Vec<u8>,
}

impl SseReader {
    async fn open(addr: &str, path: &str) -> Result<SseReader> {
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
        let mut reader = BufReader::new(stream);
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
            body: Vec::new(),
        })
    }

    /// The next line of the body: whole chunks are read at once and
    /// split here, so the reader costs little beside the node.
    async fn line(&mut self) -> Result<String> {
        loop {
            if let Some(end) = self.body.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.body.drain(..=end).collect();
                return Ok(String::from_utf8_lossy(&line[..end]).into_owned());
            }
            let mut size = String::new();
            self.reader.read_line(&mut size).await?;
            let size = size.trim();
            if size.is_empty() {
                continue;
            }
            let len = usize::from_str_radix(size, 16).context("chunk size")?;
            if len == 0 {
                bail!("the stream ended");
            }
            let start = self.body.len();
            self.body.resize(start + len, 0);
            self.reader.read_exact(&mut self.body[start..]).await?;
        }
    }

    /// The next event: its type and data.
    async fn next(&mut self) -> Result<(String, Value)> {
        let (mut kind, mut data) = (String::new(), String::new());
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                if !kind.is_empty() {
                    let data = serde_json::from_str(&data).unwrap_or(Value::Null);
                    return Ok((kind, data));
                }
                continue;
            }
            if let Some(v) = line.strip_prefix("event: ") {
                kind = v.to_string();
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push_str(v);
            }
        }
    }

    /// The URI of the next `added` event; an overflow is an error.
    async fn next_added(&mut self) -> Result<String> {
        loop {
            match self.next().await? {
                (kind, data) if kind == "added" => {
                    return Ok(data["uri"].as_str().unwrap_or_default().to_string());
                }
                (kind, data) if kind == "overflow" => bail!("the watch overflowed: {data}"),
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
        while within("snapshot_end", sse.next()).await??.0 != "snapshot_end" {}
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
