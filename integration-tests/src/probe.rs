//! Small probes tests share: predicates for "links table changed" and
//! "unlinked" log lines, and a plain HTTP GET for the metrics endpoint.

use std::{
    io::{Read, Write},
    net::TcpStream,
};

use anyhow::{Context, Result};

use crate::{DEADLINE, LogLine};

/// A log line saying the links table changed for {x,y} with `op` ("add" or
/// "delete").
pub fn link_changed(x: &str, y: &str, op: &'static str) -> impl Fn(&LogLine) -> bool {
    let (a, b) = if x <= y {
        (x.to_string(), y.to_string())
    } else {
        (y.to_string(), x.to_string())
    };
    move |l: &LogLine| {
        l["message"] == "link table changed"
            && l["a"] == a.as_str()
            && l["b"] == b.as_str()
            && l["op"] == op
    }
}

/// A log line saying this node's current link to `peer` ended (whether or
/// not it had entered the links table: a link enters it once synced).
pub fn unlinked(peer: &str) -> impl Fn(&LogLine) -> bool {
    let peer = peer.to_string();
    move |l: &LogLine| l["message"] == "unlinked" && l["peer"] == peer.as_str()
}

/// A plain HTTP/1.1 GET; returns the status code and the body.
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(DEADLINE))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("status line")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
