//! Registration by lease over the HTTP API's UNIX socket (`http.socket`),
//! against real nodes: a lease registers its service cluster-wide, a
//! renewal keeps it past its first TTL, expiry and revocation withdraw it
//! on every node, and each bad request gets its own status and code.

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use catalogue::client::{ConnectOptions, Endpoint};
use catalogue_integration_tests::{DEADLINE, Daemon, TestCa, Watcher, added, deleted};
use serde_json::{Value, json};

/// One HTTP/1.1 request over the UNIX socket `path`; the status and the
/// JSON body (`null` when there is none).
fn call(path: &Path, method: &str, target: &str, body: Option<&Value>) -> Result<(u16, Value)> {
    let mut stream = UnixStream::connect(path).with_context(|| format!("{}", path.display()))?;
    stream.set_read_timeout(Some(DEADLINE))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("status line")?;
    let text = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).with_context(|| format!("not JSON: {text}"))?
    };
    Ok((status, value))
}

fn grant(socket: &Path, uri: &str, ttl: &str) -> Result<(u16, Value)> {
    call(
        socket,
        "PUT",
        "/v1/services",
        Some(&json!({ "uri": uri, "attrs": { "via": "http" }, "ttl": ttl })),
    )
}

fn lease_id(granted: &(u16, Value)) -> Result<String> {
    ensure!(
        granted.0 == 201,
        "grant answered {}: {}",
        granted.0,
        granted.1
    );
    Ok(granted.1["lease"].as_str().context("lease id")?.to_string())
}

/// A node serving the API on a UNIX socket in `dir`.
fn node_with_socket(dir: &Path, extra: &[(&str, &str)]) -> Result<(Daemon, PathBuf)> {
    let socket = dir.join("api.sock");
    let mut builder = Daemon::builder().set("http.socket", &socket.display().to_string());
    for (k, v) in extra {
        builder = builder.set(k, v);
    }
    let mut daemon = builder.start()?;
    serving(&mut daemon)?;
    Ok((daemon, socket))
}

/// Waits until `daemon` serves its API socket.
fn serving(daemon: &mut Daemon) -> Result<()> {
    daemon.wait_log(DEADLINE, |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("HTTP API listening on a UNIX socket"))
    })?;
    Ok(())
}

fn unix(daemon: &Daemon) -> ConnectOptions {
    ConnectOptions::new(Endpoint::Unix(daemon.socket.clone()))
}

#[test]
fn a_lease_registers_cluster_wide_until_it_is_no_longer_renewed() -> Result<()> {
    let ca = TestCa::new("cluster-ca")?;
    // b accepts a link from a (a peer with no address: b never dials it).
    let b = Daemon::builder()
        .name("b")
        .tls(&ca.node("b")?)
        .peer("a", "")
        .start()?;
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("api.sock");
    let mut a = Daemon::builder()
        .name("a")
        .tls(&ca.node("a")?)
        .peer("b", &b.peer)
        .set("http.socket", &socket.display().to_string())
        .start()?;
    serving(&mut a)?;
    let watch_b = Watcher::start("b", &unix(&b), "^tcp://leased")?;
    let watch_a = Watcher::start("a", &unix(&a), "^tcp://leased")?;

    let t0 = Instant::now();
    let granted = grant(&socket, "tcp://leased:1", "2s")?;
    let id = lease_id(&granted)?;
    assert_eq!(granted.1["ttl_ms"], 2000);
    watch_b.wait(0, DEADLINE, "the leased service at b", |e| {
        added(e).contains(&"tcp://leased:1".to_string())
    })?;

    // Renewed after 1.2 s, it outlives its first TTL.
    std::thread::sleep(Duration::from_millis(1200).saturating_sub(t0.elapsed()));
    let (status, renewed) = call(&socket, "PUT", &format!("/v1/leases/{id}"), None)?;
    assert_eq!(status, 200, "{renewed}");
    let renewed_at = Instant::now();
    std::thread::sleep(Duration::from_millis(2500).saturating_sub(t0.elapsed()));
    let mark = watch_a.mark();
    assert!(
        deleted(&watch_b.events_since(0)).is_empty(),
        "withdrawn before its renewed TTL"
    );

    // Not renewed again: withdrawn on every node about 2 s after the
    // renewal.
    watch_b.wait(0, DEADLINE, "the expiry at b", |e| {
        deleted(e).contains(&"tcp://leased:1".to_string())
    })?;
    let lived = renewed_at.elapsed();
    assert!(
        lived >= Duration::from_millis(1900),
        "expired {lived:?} after its renewal, TTL 2 s"
    );
    watch_a.wait(mark, DEADLINE, "the expiry at a", |e| {
        deleted(e).contains(&"tcp://leased:1".to_string())
    })?;
    let (status, gone) = call(&socket, "PUT", &format!("/v1/leases/{id}"), None)?;
    assert_eq!(status, 404, "{gone}");
    assert_eq!(gone["error"]["code"], "no_lease");
    Ok(())
}

#[test]
fn revoking_withdraws_at_once_and_bad_requests_get_their_codes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (daemon, socket) = node_with_socket(dir.path(), &[("http.max_leases", "2")])?;
    let watch = Watcher::start("node", &unix(&daemon), "^tcp://")?;

    let id = lease_id(&grant(&socket, "tcp://one:1", "1h")?)?;
    watch.wait(0, DEADLINE, "the leased service", |e| {
        added(e).contains(&"tcp://one:1".to_string())
    })?;
    // The same URI again, under another lease: the node says who has it.
    let (status, body) = grant(&socket, "tcp://one:1", "1h")?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    let _second = lease_id(&grant(&socket, "tcp://two:1", "1h")?)?;
    let (status, body) = grant(&socket, "tcp://three:1", "1h")?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("too_many_leases")),
        "{body}"
    );

    let mark = watch.mark();
    let revoked_at = Instant::now();
    let (status, body) = call(&socket, "DELETE", &format!("/v1/leases/{id}"), None)?;
    assert_eq!(status, 200, "{body}");
    watch.wait(mark, DEADLINE, "the revoked service's delete", |e| {
        deleted(e).contains(&"tcp://one:1".to_string())
    })?;
    assert!(revoked_at.elapsed() < Duration::from_secs(1));
    let (status, body) = call(&socket, "DELETE", &format!("/v1/leases/{id}"), None)?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("no_lease"))
    );

    for (body, why) in [
        (json!({ "uri": "tcp://x:1", "ttl": "soon" }), "ttl"),
        (
            json!({ "uri": "tcp://x:1", "ttl": "48h" }),
            "http.max_lease_ttl",
        ),
        (json!({ "uri": "tcp://x:1", "ttl": "500ms" }), "ttl"),
        (json!({ "uri": "not a uri", "ttl": "10s" }), "uri"),
        (
            json!({ "uri": "tcp://x:1", "ttl": "10s", "colour": "blue" }),
            "colour",
        ),
        (json!({ "uri": "tcp://x:1" }), "ttl"),
    ] {
        let (status, answer) = call(&socket, "PUT", "/v1/services", Some(&body))?;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert_eq!(answer["error"]["code"], "bad_request", "{body}");
        let message = answer["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(why), "{body}: {message}");
    }
    // The read endpoints answer on the socket too.
    let (status, listed) = call(&socket, "GET", "/v1/services", None)?;
    assert_eq!(status, 200);
    assert_eq!(listed["services"][0]["uri"], "tcp://two:1");
    Ok(())
}

#[test]
fn a_uid_that_may_not_register_is_told_which_setting_decides() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (_daemon, socket) = node_with_socket(dir.path(), &[("register.allowed_uids", "[12345]")])?;
    let (status, body) = grant(&socket, "tcp://x:1", "10s")?;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "not_allowed");
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("register.allowed_uids"), "{message}");
    Ok(())
}
