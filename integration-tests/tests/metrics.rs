//! The operators' endpoint of a real node: `/metrics` is valid classic
//! Prometheus text by default and valid OpenMetrics when asked for (checked
//! here, and by `promtool check metrics` when it is installed: `.ci/run`
//! installs it and sets `CATALOGUE_REQUIRE_PROMTOOL`), carries the process,
//! build and per-peer metrics, and its actor metrics move when clients
//! register and subscribe; `/health` says `degraded` with reasons while a
//! peer is down, and `/ready` is 200 once no reachable peer awaits its sync
//! (a node whose peers are all away is ready).

use std::{
    collections::{BTreeMap, HashMap},
    io::Write,
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail, ensure};
use catalogue::client::{Client, ConnectOptions, Endpoint};
use catalogue_integration_tests::{
    DEADLINE, Daemon, http_get, http_request, link_changed, runtime, scrape,
};

fn value(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

#[test]
fn actor_metrics_move_when_clients_register_and_subscribe() -> Result<()> {
    let mut daemon = Daemon::builder().metrics().start()?;
    let addr = daemon.metrics_address()?;

    let before = scrape(&addr)?;
    assert_eq!(
        value(&before, "catalogue_actors_live{kind=supervisor}"),
        1.0,
        "{before:#?}"
    );
    let rt = runtime()?;
    let client = rt.block_on(async {
        let client =
            Client::connect(&ConnectOptions::new(Endpoint::Unix(daemon.socket.clone()))).await?;
        client.register("tcp://metrics:1", BTreeMap::new()).await?;
        let mut sub = client.subscribe("^tcp://").await?;
        // The snapshot's end comes once the supervisor has the subscription.
        loop {
            match tokio::time::timeout(DEADLINE, sub.next()).await {
                Ok(Some(catalogue::client::SubscriptionEvent::SnapshotEnd { .. })) => break,
                Ok(Some(_)) => continue,
                other => bail!("no snapshot end: {other:?}"),
            }
        }
        Ok::<_, anyhow::Error>((client, sub))
    })?;
    let after = scrape(&addr)?;
    let moved = |key: &str| value(&after, key) - value(&before, key);
    assert_eq!(
        moved("catalogue_actors_live{kind=client_connection}"),
        1.0,
        "{after:#?}"
    );
    assert_eq!(
        moved("catalogue_actors_started_total{kind=subscription}"),
        1.0,
        "{after:#?}"
    );
    assert_eq!(moved("catalogue_actors_live{kind=subscription}"), 1.0);
    assert_eq!(
        moved("catalogue_actor_messages_total{kind=supervisor,message=RegisterService}"),
        1.0
    );
    assert_eq!(
        moved("catalogue_actor_messages_total{kind=supervisor,message=AddSubscription}"),
        1.0
    );
    assert!(
        moved("catalogue_actor_messages_total{kind=client_connection,message=RegisterService}")
            >= 1.0
    );
    assert_eq!(value(&after, "catalogue_services{}"), 1.0);
    assert_eq!(value(&after, "catalogue_subscriptions{}"), 1.0);
    assert!(after.contains_key("catalogue_actor_handling_seconds_count{kind=supervisor}"));

    let (status, body) = http_get(&addr, "/health")?;
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(health["node"], "node-under-test");
    assert_eq!(health["services"], 1);
    let (status, _) = http_get(&addr, "/ready")?;
    assert_eq!(status, 200, "a node without peers is ready at once");
    drop(client);
    Ok(())
}

#[test]
fn a_node_whose_peers_are_away_is_degraded_and_ready() -> Result<()> {
    let mut daemon = Daemon::builder()
        .metrics()
        .arg("--debug")
        .peer("node-away", "127.0.0.1:9")
        .start()?;
    let line = daemon.wait_log(DEADLINE, |l| l["message"] == "metrics endpoint listening")?;
    let addr = line["address"].as_str().context("address")?.to_string();
    // Once its first attempt failed the peer is away, not awaited.
    daemon.wait_log(DEADLINE, |l| {
        l["message"] == "cannot link to peer" && l["peer"] == "node-away"
    })?;
    let (status, body) = http_get(&addr, "/ready")?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(&addr, "/health")?;
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["peers_down"], serde_json::json!(["node-away"]));
    let reasons = health["reasons"].as_array().context("reasons")?;
    assert_eq!(reasons.len(), 1, "{health}");
    assert!(
        reasons[0]
            .as_str()
            .is_some_and(|r| r.starts_with("peer node-away is ")),
        "{health}"
    );
    Ok(())
}

#[test]
fn a_node_is_healthy_once_its_peer_links_and_syncs() -> Result<()> {
    let mut a = Daemon::builder()
        .name("node-a")
        .arg("--debug")
        .metrics()
        .peer("node-b", "")
        .start()?;
    let line = a.wait_log(DEADLINE, |l| l["message"] == "metrics endpoint listening")?;
    let addr = line["address"].as_str().context("address")?.to_string();
    let (status, body) = http_get(&addr, "/health")?;
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(
        health["reasons"],
        serde_json::json!(["peer node-b is idle"]),
        "an accept-only peer not linked is away"
    );
    assert_eq!(http_get(&addr, "/ready")?.0, 200, "node-b away: ready");
    let _b = Daemon::builder()
        .name("node-b")
        .arg("--debug")
        .peer("node-a", &a.peer)
        .start()?;
    a.wait_log(DEADLINE, link_changed("node-a", "node-b", "add"))?;
    assert_eq!(http_get(&addr, "/ready")?.0, 200);
    let (_, body) = http_get(&addr, "/health")?;
    let health: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["reasons"], serde_json::json!([]));
    let m = scrape(&addr)?;
    assert!(
        value(
            &m,
            "catalogue_sync_last_success_timestamp_seconds{peer=node-b}"
        ) > 0.0
    );
    Ok(())
}

/// The sample name of an exposition line (before its labels or value).
fn sample_name(line: &str) -> &str {
    line.split(['{', ' ']).next().unwrap_or(line)
}

/// Checks the structure of an exposition: every family has HELP then TYPE,
/// and every sample belongs to the family declared last, named as the
/// format wants (`openmetrics`: counter families without `_total`, samples
/// with it, `# EOF` last; classic: families named as their samples, no
/// `# EOF` or `# UNIT`). Returns the type of each family.
fn check_exposition(body: &str, openmetrics: bool) -> Result<HashMap<String, String>> {
    let mut types = HashMap::new();
    let mut helped: Option<String> = None;
    let mut family: Option<(String, String)> = None;
    let mut lines: Vec<&str> = body.lines().collect();
    ensure!(body.ends_with('\n'), "no final newline");
    if openmetrics {
        ensure!(lines.pop() == Some("# EOF"), "OpenMetrics ends with # EOF");
    }
    for line in lines {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped = Some(rest.split(' ').next().unwrap_or("").to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').context("TYPE line")?;
            ensure!(helped.as_deref() == Some(name), "no HELP before {line}");
            ensure!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "{name} declared twice"
            );
            family = Some((name.to_string(), kind.to_string()));
        } else if line.starts_with('#') {
            ensure!(
                openmetrics && line.starts_with("# UNIT "),
                "unexpected line {line:?}"
            );
        } else {
            let name = sample_name(line);
            let (fam, kind) = family.as_ref().context("sample before any TYPE")?;
            let suffixes: &[&str] = match (openmetrics, kind.as_str()) {
                (true, "counter") => &["_total"],
                (true, "info") => &["_info"],
                (_, "histogram") => &["_bucket", "_sum", "_count"],
                (false, "counter" | "gauge" | "untyped") | (true, "gauge" | "unknown") => &[""],
                (_, other) => bail!(
                    "type {other} in {}",
                    if openmetrics {
                        "OpenMetrics"
                    } else {
                        "classic"
                    }
                ),
            };
            ensure!(
                suffixes.iter().any(|s| name == format!("{fam}{s}")),
                "sample {name} in family {fam} ({kind})"
            );
            if !openmetrics && kind == "counter" {
                ensure!(name.ends_with("_total"), "classic counter {name}");
            }
            if openmetrics && kind == "counter" {
                ensure!(!fam.ends_with("_total"), "OpenMetrics counter family {fam}");
            }
        }
    }
    Ok(types)
}

/// Runs `promtool check metrics` on `body` when promtool is installed (or
/// must be: `CATALOGUE_REQUIRE_PROMTOOL`); returns whether it ran.
fn promtool_check(body: &str) -> Result<bool> {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var_os("CATALOGUE_REQUIRE_PROMTOOL").is_none() => {
            eprintln!("promtool not run ({e}): install Debian's prometheus package");
            return Ok(false);
        }
        Err(e) => bail!("promtool: {e}"),
    };
    child
        .stdin
        .take()
        .context("promtool stdin")?
        .write_all(body.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "promtool check metrics: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(true)
}

#[test]
fn both_expositions_are_valid_and_carry_process_build_and_peer_metrics() -> Result<()> {
    let mut a = Daemon::builder()
        .name("node-a")
        .arg("--debug")
        .set("metrics.listen", "127.0.0.1:0")
        .peer("node-b", "")
        .peer("node-away", "127.0.0.1:9")
        .start()?;
    let line = a.wait_log(DEADLINE, |l| l["message"] == "metrics endpoint listening")?;
    let addr = line["address"].as_str().context("address")?.to_string();
    let _b = Daemon::builder()
        .name("node-b")
        .arg("--debug")
        .peer("node-a", &a.peer)
        .start()?;
    a.wait_log(DEADLINE, link_changed("node-a", "node-b", "add"))?;

    // No Accept header: the classic format.
    let classic = http_request(&addr, "GET", "/metrics", &[])?;
    assert_eq!(classic.status, 200);
    assert_eq!(
        classic.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let types = check_exposition(&classic.body, false)?;
    assert_eq!(
        types
            .get("catalogue_events_routed_total")
            .map(String::as_str),
        Some("counter"),
        "{}",
        classic.body
    );
    assert_eq!(
        types.get("process_cpu_seconds_total").map(String::as_str),
        Some("counter")
    );
    let promtool_ran = promtool_check(&classic.body)?;
    eprintln!("promtool ran: {promtool_ran}");

    let m = scrape(&addr)?;
    let version = format!(
        "catalogue_build_info{{version={}}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(m.get(&version), Some(&1.0), "{m:#?}");
    assert_eq!(m.get("catalogue_peer_up{peer=node-b}"), Some(&1.0));
    assert_eq!(m.get("catalogue_peer_up{peer=node-away}"), Some(&0.0));
    let rss = m
        .get("process_resident_memory_bytes{}")
        .copied()
        .unwrap_or(0.0);
    assert!(rss > 1e6, "resident memory {rss}");
    assert!(m.get("process_open_fds{}").is_some_and(|v| *v >= 3.0));
    assert!(m.get("process_max_fds{}").is_some_and(|v| *v >= 64.0));
    assert!(
        m.get("process_cpu_seconds_total{}")
            .is_some_and(|v| *v >= 0.0)
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs_f64();
    let start = m
        .get("process_start_time_seconds{}")
        .copied()
        .unwrap_or(0.0);
    assert!(
        start <= now + 1.0 && start > now - 600.0,
        "start {start}, now {now}"
    );

    // What Prometheus sends: OpenMetrics.
    let accept =
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let om = http_request(&addr, "GET", "/metrics", &[("Accept", accept)])?;
    assert_eq!(om.status, 200);
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let types = check_exposition(&om.body, true)?;
    assert_eq!(
        types.get("catalogue_events_routed").map(String::as_str),
        Some("counter")
    );
    assert_eq!(
        types.get("catalogue_build").map(String::as_str),
        Some("info")
    );

    // HEAD: the headers without a body.
    let head = http_request(&addr, "HEAD", "/metrics", &[])?;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(head.body, "");
    Ok(())
}
