//! The HTTP/JSON API of a real node, read as `curl` would: services page by
//! page (no table size fails), the links, peers and node records, JSON
//! errors with stable codes for every bad request, and every request in
//! the metrics by route and status.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::TcpStream,
};

use anyhow::{Context, Result, bail, ensure};
use catalogue::client::{Client, ConnectOptions, Endpoint};
use catalogue_integration_tests::{DEADLINE, Daemon, http_get, runtime, scrape};
use serde_json::Value;

const SERVICES: usize = 2_500;

fn get_json(addr: &str, path: &str) -> Result<(u16, Value)> {
    let (status, body) = http_get(addr, path)?;
    let value = serde_json::from_str(&body)
        .with_context(|| format!("GET {path}: not JSON ({status}): {body}"))?;
    Ok((status, value))
}

/// The `error.code` of an error answer with `status`.
fn error_code(addr: &str, path: &str, status: u16) -> Result<String> {
    let (got, body) = get_json(addr, path)?;
    ensure!(
        got == status,
        "GET {path}: {got}, expected {status}: {body}"
    );
    let message = body["error"]["message"].as_str().unwrap_or("");
    ensure!(!message.is_empty(), "GET {path}: no message in {body}");
    Ok(body["error"]["code"].as_str().unwrap_or("").to_string())
}

/// Registers `count` services `tcp://svc-NNNNN:1` on one UNIX connection.
async fn register(daemon: &Daemon, count: usize) -> Result<Client> {
    let client = Client::connect(&ConnectOptions::new(Endpoint::Unix(daemon.socket.clone())))
        .await
        .context("connect")?;
    for i in 0..count {
        client
            .register(&format!("tcp://svc-{i:05}:1"), BTreeMap::new())
            .await?;
    }
    Ok(client)
}

#[test]
fn services_come_in_pages_that_cover_the_table_in_order() -> Result<()> {
    let daemon = Daemon::builder()
        .http()
        .set("limits.registrations_per_connection", "10000")
        .set("http.page_limit", "1000")
        .start()?;
    let rt = runtime()?;
    let _holder = rt.block_on(register(&daemon, SERVICES))?;

    // Every service once, in URI order, in pages of at most 1000.
    let mut uris = Vec::new();
    let mut path = "/v1/services".to_string();
    let mut pages = 0;
    loop {
        let (status, body) = get_json(&daemon.http, &path)?;
        ensure!(status == 200, "{path}: {status} {body}");
        let page = body["services"].as_array().context("services")?;
        ensure!(page.len() <= 1000, "a page of {}", page.len());
        uris.extend(
            page.iter()
                .map(|s| s["uri"].as_str().unwrap_or("").to_string()),
        );
        pages += 1;
        match body["next"].as_str() {
            Some(next) => path = format!("/v1/services?after={}", encode(next)),
            None => break,
        }
    }
    let expected: Vec<String> = (0..SERVICES)
        .map(|i| format!("tcp://svc-{i:05}:1"))
        .collect();
    assert_eq!(uris, expected);
    assert_eq!(pages, 3);

    // A filter and a smaller page.
    let (_, body) = get_json(&daemon.http, "/v1/services?match=svc-0001[0-9]&limit=4")?;
    let page: Vec<&str> = body["services"]
        .as_array()
        .context("services")?
        .iter()
        .filter_map(|s| s["uri"].as_str())
        .collect();
    assert_eq!(
        page,
        [
            "tcp://svc-00010:1",
            "tcp://svc-00011:1",
            "tcp://svc-00012:1",
            "tcp://svc-00013:1"
        ]
    );
    assert_eq!(body["next"], "tcp://svc-00013:1");
    let first = &body["services"][0];
    assert_eq!(first["origin"], "node-under-test");
    assert!(first["registered_ms"].as_u64().unwrap_or(0) > 0, "{first}");
    assert!(
        first["registered"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{first}"
    );
    Ok(())
}

/// Percent-encodes what a URI may carry in a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn bad_requests_get_json_errors_with_stable_codes() -> Result<()> {
    let mut daemon = Daemon::builder()
        .http()
        .set("metrics.listen", "127.0.0.1:0")
        .set("http.page_limit", "100")
        .set("http.max_request_bytes", "2048")
        .start()?;
    let api = daemon.http.clone();
    let cases = [
        ("/v1/services?match=(unclosed", 400, "bad_regex"),
        ("/v1/services?colour=blue", 400, "bad_request"),
        ("/v1/services?limit=0", 400, "bad_request"),
        ("/v1/services?limit=101", 400, "bad_request"),
        ("/v1/services?limit=ten", 400, "bad_request"),
        ("/v1/nothing-here", 404, "not_found"),
    ];
    for (path, status, code) in cases {
        assert_eq!(error_code(&api, path, status)?, code, "{path}");
    }
    // A regex that compiles too large is refused like a bad one.
    let huge = format!("/v1/services?match={}", encode(&"\\w{50}".repeat(20)));
    assert_eq!(error_code(&api, &huge, 400)?, "bad_regex");
    // A query string past http.max_request_bytes.
    let long = format!("/v1/services?match={}", "a".repeat(3000));
    assert_eq!(error_code(&api, &long, 413)?, "too_large");

    // Every request is counted by its route pattern, never its raw path.
    let line = daemon.wait_log(DEADLINE, |l| l["message"] == "metrics endpoint listening")?;
    let metrics = line["address"]
        .as_str()
        .context("metrics address")?
        .to_string();
    let scraped = scrape(&metrics)?;
    let count = |route: &str, status: u16| {
        scraped
            .get(&format!(
                "catalogue_http_requests_total{{route={route},status={status}}}"
            ))
            .copied()
            .unwrap_or(0.0)
    };
    assert_eq!(count("/v1/services", 400), 6.0, "{scraped:?}");
    assert_eq!(count("/v1/services", 413), 1.0, "{scraped:?}");
    assert_eq!(count("unmatched", 404), 1.0, "{scraped:?}");
    assert!(
        !scraped.keys().any(|k| k.contains("nothing-here")),
        "a raw path became a label"
    );
    Ok(())
}

#[test]
fn node_peers_and_links_describe_the_node() -> Result<()> {
    let daemon = Daemon::builder().http().name("node-h").start()?;
    let (status, node) = get_json(&daemon.http, "/v1/node")?;
    assert_eq!(status, 200);
    assert_eq!(node["name"], "node-h");
    assert_eq!(node["environment"], "test");
    assert!(node["version"].as_str().is_some_and(|v| !v.is_empty()));

    let (status, peers) = get_json(&daemon.http, "/v1/peers")?;
    assert_eq!(status, 200);
    assert_eq!(peers["peers"], Value::Array(vec![]));

    let (status, links) = get_json(&daemon.http, "/v1/links")?;
    assert_eq!(status, 200);
    assert_eq!(links["node"], "node-h");
    assert_eq!(links["reachable"], serde_json::json!(["node-h"]));
    Ok(())
}

#[test]
fn the_api_is_read_only_over_tcp() -> Result<()> {
    let daemon = Daemon::builder().http().start()?;
    let mut stream = TcpStream::connect(&daemon.http)?;
    stream.set_read_timeout(Some(DEADLINE))?;
    let body = r#"{"uri":"tcp://x:1"}"#;
    write!(
        stream,
        "PUT /v1/services HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split_whitespace().nth(1).unwrap_or("");
    if status != "404" && status != "405" {
        bail!("PUT over TCP answered {status}: {response}");
    }
    let (_, listed) = get_json(&daemon.http, "/v1/services")?;
    assert_eq!(listed["services"], Value::Array(vec![]));
    Ok(())
}
