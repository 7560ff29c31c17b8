//! Small probes tests share: predicates for "links table changed" and
//! "unlinked" log lines, plain HTTP requests for the metrics endpoint, and a
//! parsed scrape of its `/metrics`.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::TcpStream,
};

use anyhow::{Context, Result, bail};

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
    let r = http_request(addr, "GET", path, &[])?;
    Ok((r.status, r.body))
}

/// An HTTP response as [`http_request`] reads it.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The header lines, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Everything after the headers.
    pub body: String,
}

impl HttpResponse {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A plain HTTP/1.1 request with `Connection: close` and the extra
/// `headers`; reads the response until the server closes.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<HttpResponse> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(DEADLINE))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("no end of headers")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("status line")?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(HttpResponse {
        status,
        headers,
        body: body.to_string(),
    })
}

/// A scrape of `/metrics` at `addr`, parsed: the value of each counter,
/// gauge or untyped sample, keyed `name{label=value,...}` with the labels
/// sorted (histograms and summaries are left out).
pub fn scrape(addr: &str) -> Result<BTreeMap<String, f64>> {
    let (status, body) = http_get(addr, "/metrics")?;
    if status != 200 {
        bail!("/metrics answered {status}");
    }
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).context("Prometheus text format")?;
    let mut out = BTreeMap::new();
    for s in parsed.samples {
        let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(_) | prometheus_parse::Value::Summary(_) => continue,
        };
        out.insert(format!("{}{{{}}}", s.metric, labels.join(",")), value);
    }
    Ok(out)
}
