//! Services the node owns (`[[services]]`, docs/CLIENTS.md "Services the
//! node owns"), against real nodes: a definition's TCP health check
//! withdraws its service cluster-wide when the checked port closes and
//! registers it again when the port opens, as a subscriber on another
//! node sees; the check's state is in `catalogue_check_status`; SIGHUP
//! adds, changes and removes definitions; an HTTPS check passes only
//! against a certificate the node's CA store trusts.

use std::{
    net::{SocketAddr, TcpListener},
    path::Path,
};

use anyhow::{Context, Result};
use catalogue::client::{ConnectOptions, Endpoint, SubscriptionEvent};
use catalogue_integration_tests::{
    DEADLINE, Daemon, TestCa, TlsFiles, Watcher, added, deleted, describe, scrape,
};
use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};

fn unix(daemon: &Daemon) -> ConnectOptions {
    ConnectOptions::new(Endpoint::Unix(daemon.socket.clone()))
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("{}", path.display()))
}

/// The value of `catalogue_check_status` for `uri` at `metrics`, if any.
fn check_status(metrics: &str, uri: &str) -> Result<Option<f64>> {
    let samples = scrape(metrics)?;
    Ok(samples
        .get(&format!("catalogue_check_status{{uri={uri}}}"))
        .copied())
}

#[test]
fn a_tcp_check_withdraws_and_returns_the_service_at_another_node() -> Result<()> {
    let ca = TestCa::new("cluster-ca")?;
    let port = TcpListener::bind("127.0.0.1:0")?;
    let checked: SocketAddr = port.local_addr()?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("services.toml");
    write(
        &config,
        &format!(
            r#"
[[services]]
uri = "tcp://checked:1"
attrs = {{ role = "db" }}
check = {{ tcp = "{checked}", interval = "200ms", timeout = "150ms", failures = 2, successes = 2 }}

[[services]]
uri = "tcp://unchecked:1"
"#
        ),
    )?;
    let b = Daemon::builder()
        .name("b")
        .tls(&ca.node("b")?)
        .peer("a", "")
        .start()?;
    let watch_b = Watcher::start("b", &unix(&b), "^tcp://")?;
    let mut a = Daemon::builder()
        .name("a")
        .tls(&ca.node("a")?)
        .peer("b", &b.peer)
        .metrics()
        .arg("--config")
        .arg(&config.display().to_string())
        .start()?;
    let metrics = a.metrics_address()?;

    // Both definitions reach b; the checked one with its attributes.
    let seen = watch_b.wait(0, DEADLINE, "both definitions at b", |e| {
        let up = added(e);
        up.contains(&"tcp://checked:1".to_string()) && up.contains(&"tcp://unchecked:1".to_string())
    })?;
    let attr = |uri: &str, key: &str| {
        seen.iter().find_map(|e| match e {
            SubscriptionEvent::Added { service, .. } if service.uri == uri => {
                Some(service.attrs.get(key).cloned())
            }
            _ => None,
        })
    };
    assert_eq!(
        attr("tcp://checked:1", "role"),
        Some(Some("db".into())),
        "{}",
        describe(&seen)
    );
    // The check's state travels with the service; an unchecked one has none.
    assert_eq!(
        attr("tcp://checked:1", "check"),
        Some(Some("passing".into())),
        "{}",
        describe(&seen)
    );
    assert_eq!(
        attr("tcp://unchecked:1", "check"),
        Some(None),
        "{}",
        describe(&seen)
    );
    assert_eq!(check_status(&metrics, "tcp://checked:1")?, Some(1.0));

    // The port closes: the service is withdrawn at b, the other stays.
    let mark = watch_b.mark();
    let log_mark = a.mark();
    drop(port);
    let since = watch_b.wait(mark, DEADLINE, "the withdrawal at b", |e| {
        deleted(e).contains(&"tcp://checked:1".to_string())
    })?;
    assert!(
        !deleted(&since).contains(&"tcp://unchecked:1".to_string()),
        "the unchecked definition went too: {}",
        describe(&since)
    );
    a.wait_log_from(log_mark, DEADLINE, |l| {
        l["check"] == "failing" && l["uri"] == "tcp://checked:1"
    })?;
    assert_eq!(check_status(&metrics, "tcp://checked:1")?, Some(0.0));

    // The port opens again: the service returns at b.
    let mark = watch_b.mark();
    let _port = TcpListener::bind(checked).context("binding the checked port again")?;
    watch_b.wait(mark, DEADLINE, "the return at b", |e| {
        added(e).contains(&"tcp://checked:1".to_string())
    })?;
    assert_eq!(check_status(&metrics, "tcp://checked:1")?, Some(1.0));
    Ok(())
}

#[test]
fn sighup_adds_changes_and_removes_definitions() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("services.toml");
    write(
        &config,
        r#"
[[services]]
uri = "tcp://stays:1"
attrs = { v = "1" }

[[services]]
uri = "tcp://goes:1"
"#,
    )?;
    let mut node = Daemon::builder()
        .arg("--config")
        .arg(&config.display().to_string())
        .start()?;
    let watch = Watcher::start("node", &unix(&node), "^tcp://")?;
    watch.wait(0, DEADLINE, "both definitions", |e| {
        let up = added(e);
        up.contains(&"tcp://stays:1".to_string()) && up.contains(&"tcp://goes:1".to_string())
    })?;

    write(
        &config,
        r#"
[[services]]
uri = "tcp://stays:1"
attrs = { v = "2" }

[[services]]
uri = "tcp://new:1"
"#,
    )?;
    let mark = watch.mark();
    let log_mark = node.mark();
    node.signal(libc::SIGHUP)?;
    let since = watch.wait(mark, DEADLINE, "the reload's changes", |e| {
        let changed = e.iter().any(|e| {
            matches!(e, SubscriptionEvent::Added { service, .. }
                if service.uri == "tcp://stays:1" && service.attrs.get("v").map(String::as_str) == Some("2"))
        });
        changed
            && added(e).contains(&"tcp://new:1".to_string())
            && deleted(e).contains(&"tcp://goes:1".to_string())
    })?;
    assert!(
        !deleted(&since).contains(&"tcp://stays:1".to_string()),
        "a changed definition is updated in place, not withdrawn: {}",
        describe(&since)
    );
    node.wait_log_from(log_mark, DEADLINE, |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("configuration reloaded"))
    })?;
    Ok(())
}

/// An HTTPS server on loopback answering `200 OK` to every GET, with the
/// certificate and key in `files`, for as long as the test runs.
fn https_server(files: &TlsFiles) -> Result<SocketAddr> {
    use std::io::{Read, Write};
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    acceptor.set_certificate_chain_file(&files.cert)?;
    acceptor.set_private_key_file(&files.key, SslFiletype::PEM)?;
    let acceptor = acceptor.build();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            // A failed handshake (the untrusting client hangs up) is fine.
            if let Ok(mut tls) = acceptor.accept(stream) {
                let mut buf = [0u8; 1024];
                let _ = tls.read(&mut buf);
                let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                let _ = tls.shutdown();
            }
        }
    });
    Ok(addr)
}

#[test]
fn an_https_check_passes_only_with_a_trusted_certificate() -> Result<()> {
    // Two servers named localhost: one certified by the CA the node trusts
    // (SSL_CERT_FILE, which OpenSSL's default verify paths read), one by
    // another CA.
    let trusted = TestCa::new("trusted-ca")?;
    let other = TestCa::new("other-ca")?;
    let good = https_server(&trusted.node("localhost")?)?;
    let bad = https_server(&other.node("localhost")?)?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("services.toml");
    let check = |addr: SocketAddr| {
        format!(
            r#"{{ http = "https://localhost:{}/health", interval = "200ms", timeout = "150ms" }}"#,
            addr.port()
        )
    };
    write(
        &config,
        &format!(
            "[[services]]\nuri = \"tcp://good:1\"\ncheck = {}\n\n[[services]]\nuri = \"tcp://bad:1\"\ncheck = {}\n",
            check(good),
            check(bad)
        ),
    )?;
    let mut node = Daemon::builder()
        .env("SSL_CERT_FILE", &trusted.ca_pem().display().to_string())
        .set("log.level", "info,catalogue_actors::definitions=debug")
        .metrics()
        .arg("--config")
        .arg(&config.display().to_string())
        .start()?;
    let metrics = node.metrics_address()?;
    let watch = Watcher::start("node", &unix(&node), "^tcp://")?;
    watch.wait(0, DEADLINE, "the trusted server's service", |e| {
        added(e).contains(&"tcp://good:1".to_string())
    })?;
    // The other server's check has run and failed on its certificate.
    let line = node.wait_log(DEADLINE, |l| {
        l["uri"] == "tcp://bad:1" && l["message"] == "service check failed"
    })?;
    assert!(
        line["error"].as_str().is_some_and(|e| e.starts_with("TLS")),
        "{line}"
    );
    assert_eq!(check_status(&metrics, "tcp://good:1")?, Some(1.0));
    assert_eq!(check_status(&metrics, "tcp://bad:1")?, Some(0.0));
    let seen = watch.wait(0, DEADLINE, "the events so far", |_| true)?;
    assert!(
        !added(&seen).contains(&"tcp://bad:1".to_string()),
        "registered with an untrusted certificate: {}",
        describe(&seen)
    );
    Ok(())
}
