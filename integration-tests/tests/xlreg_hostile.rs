//! The xlReg registry and cluster formation against an attacker (issue 14,
//! item 5), with real `catalogue` processes on loopback:
//! - a cluster squatted in the registry (created first with the production
//!   name and size 2, a member name taken) is refused by the nodes
//!   configured to form it, with a clear error and a metric;
//! - a member of the xlReg cluster whose certificate (from the cluster CA)
//!   does not name the cluster cannot link to the real nodes;
//! - with admission control on, an unknown key is refused and a listed one
//!   (with the shared secret) accepted;
//! - 1,200 idle connections from one source do not lock a legitimate
//!   `xlreg members` out.

use std::{
    collections::BTreeMap,
    fs,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use catalogue_integration_tests::{
    Cli, CliOutput, DEADLINE, Daemon, LogLine, TestCa, link_changed, runtime, scrape,
};
use serde_json::Value;

/// Time allowed for one `catalogue xlreg` command.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// Idle connections the attacker holds open.
const IDLE_CONNECTIONS: usize = 1200;

/// A running registry: its daemon, address, public key file and metrics.
struct Registry {
    /// Kept so the registry runs while the test does.
    _daemon: Daemon,
    address: String,
    key: std::path::PathBuf,
    metrics: String,
}

/// A daemon hosting the registry on a free port, with `settings` on top.
fn registry(settings: &[(&str, &str)]) -> Result<Registry> {
    let mut builder = Daemon::builder()
        .name("registry")
        .xlreg_registry()
        .metrics();
    for (key, value) in settings {
        builder = builder.set(key, value);
    }
    let mut daemon = builder.start()?;
    let metrics = daemon.metrics_address()?;
    let address = daemon.address_logged("xlReg registry listening")?;
    let key = daemon.dir().join("xlreg").join("registry.pub");
    Ok(Registry {
        _daemon: daemon,
        address,
        key,
        metrics,
    })
}

/// `catalogue xlreg ARGS... --server --server-key --identity-dir --name`.
fn xlreg(registry: &Registry, args: &[&str], identity: &Path, name: &str) -> Result<CliOutput> {
    let mut all: Vec<String> = vec!["xlreg".into()];
    all.extend(args.iter().map(|a| a.to_string()));
    all.extend([
        "--server".into(),
        registry.address.clone(),
        "--server-key".into(),
        registry.key.display().to_string(),
        "--identity-dir".into(),
        identity.display().to_string(),
        "--name".into(),
        name.into(),
    ]);
    Cli::new(all).output(COMMAND_DEADLINE)
}

fn member_names(registry: &Registry, reader: &Path, cluster: &str) -> Result<Vec<String>> {
    let out = xlreg(registry, &["members", cluster, "--json"], reader, "reader")?;
    if out.code != 0 {
        bail!("members: exit {}: {}", out.code, out.stderr);
    }
    let listed: Value = serde_json::from_str(&out.stdout)?;
    Ok(listed["members"]
        .as_array()
        .context("members array")?
        .iter()
        .filter_map(|m| m["name"].as_str().map(str::to_string))
        .collect())
}

/// A log line refusing the xlReg cluster for `reason`.
fn refused_for(reason: &'static str) -> impl Fn(&LogLine) -> bool {
    move |l: &LogLine| l["message"] == "refusing the xlReg cluster" && l["reason"] == reason
}

/// The value of `name{labels}` in a scrape, 0 when absent.
fn sample(scraped: &BTreeMap<String, f64>, key: &str) -> f64 {
    scraped.get(key).copied().unwrap_or(0.0)
}

#[test]
fn a_squatted_cluster_is_refused_by_the_nodes_configured_to_form_it() -> Result<()> {
    let reg = registry(&[])?;
    let ids = tempfile::tempdir()?;
    // The attacker gets there first: "prod" with size 2, and the name of
    // the real node-c taken by a member of it.
    let out = xlreg(
        &reg,
        &["create", "prod", "--size", "2"],
        &ids.path().join("evil"),
        "evil",
    )?;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = xlreg(
        &reg,
        &["join", "prod", "--endpoint", "127.0.0.1:9"],
        &ids.path().join("squatter"),
        "node-c",
    )?;
    assert_eq!(out.code, 0, "{}", out.stderr);

    let ca = TestCa::new("prod-ca")?;
    let start = |name: &str| -> Result<Daemon> {
        Daemon::builder()
            .name(name)
            .tls(&ca.node_in(name, "prod")?)
            .metrics()
            .xlreg_member(&reg.address, &reg.key.display().to_string(), "prod", 3)
            .start()
    };
    // The real node-c is registered as node-c-2 by the registry: it says so
    // and does not join under that name.
    let mut c = start("node-c")?;
    let c_metrics = c.metrics_address()?;
    let line = c.wait_log(DEADLINE, refused_for("name_taken"))?;
    assert_eq!(line["level"], "ERROR", "{line}");
    let error = line["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("\"node-c-2\"") && error.contains("\"node-c\" is held by another client"),
        "{error}"
    );
    // node-a finds "prod" with the wrong size and refuses it.
    let mut a = start("node-a")?;
    let a_metrics = a.metrics_address()?;
    let line = a.wait_log(DEADLINE, refused_for("size"))?;
    let error = line["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("size 2") && error.contains("xlreg.cluster.size is 3"),
        "{error}"
    );
    // Both count it.
    let refusals = |metrics: &str, reason: &str| -> Result<f64> {
        Ok(sample(
            &scrape(metrics)?,
            &format!("catalogue_xlreg_cluster_refusals_total{{reason={reason}}}"),
        ))
    };
    assert!(refusals(&c_metrics, "name_taken")? >= 1.0);
    assert!(refusals(&a_metrics, "size")? >= 1.0);
    // Neither joined: the squatted cluster holds the squatter alone.
    assert_eq!(
        member_names(&reg, &ids.path().join("reader"), "prod")?,
        ["node-c"]
    );
    // And neither node ever logged a join.
    for node in [&c, &a] {
        assert!(
            !node
                .logged()
                .iter()
                .any(|l| l["message"] == "joined the cluster; this node's id is its member index"),
            "a node joined the squatted cluster"
        );
    }
    Ok(())
}

#[test]
fn a_member_whose_certificate_lacks_the_cluster_cannot_link() -> Result<()> {
    let reg = registry(&[])?;
    let ca = TestCa::new("formed-ca")?;
    let start = |name: &str, tls: catalogue_integration_tests::TlsFiles| -> Result<Daemon> {
        Daemon::builder()
            .name(name)
            .tls(&tls)
            .xlreg_member(&reg.address, &reg.key.display().to_string(), "formed", 3)
            .start()
    };
    let mut a = start("node-a", ca.node_in("node-a", "formed")?)?;
    let mut b = start("node-b", ca.node_in("node-b", "formed")?)?;
    a.wait_log(DEADLINE, link_changed("node-a", "node-b", "add"))?;
    // The attacker holds a certificate of the cluster CA for a name
    // configured nowhere, without the cluster in it, and joins the open
    // registry: the member tokens make it a known name...
    let mut x = start("node-x", ca.node("node-x")?)?;
    x.wait_log(DEADLINE, |l| {
        l["message"] == "cluster member learned" && l["member"] == "node-b"
    })?;
    // ...but it dials node-a and node-b (their names sort first) and both
    // refuse it at the TLS step.
    for node in [&mut a, &mut b] {
        let line = node.wait_log(DEADLINE, |l| {
            l["message"] == "peer link refused" && l["reason"] == "cluster_not_in_certificate"
        })?;
        let error = line["error"].as_str().unwrap_or_default();
        assert!(error.contains("catalogue://cluster/formed"), "{error}");
    }
    // node-x reads the refusal (0x03, with the reason) over TLS
    x.wait_log(DEADLINE, |l| {
        l["message"] == "peer link ended before its first frame"
            && l["error"]
                .as_str()
                .is_some_and(|e| e.contains("does not name cluster \"formed\""))
    })?;
    for node in [&a, &b] {
        assert!(
            !node
                .logged()
                .iter()
                .any(|l| l["message"] == "peer link up" && l["peer"] == "node-x"),
            "node-x linked"
        );
    }
    Ok(())
}

#[test]
fn with_admission_on_an_unknown_key_is_refused_and_a_listed_one_accepted() -> Result<()> {
    let ids = tempfile::tempdir()?;
    let (member, stranger) = (ids.path().join("member"), ids.path().join("stranger"));
    let dir = member.display().to_string();
    let fp = Cli::new(["xlreg", "fingerprint", "--identity-dir", &dir]).output(COMMAND_DEADLINE)?;
    assert_eq!(fp.code, 0, "{}", fp.stderr);
    let fingerprint = fp.stdout.trim().to_string();
    assert!(fingerprint.starts_with("sha256:"), "{fingerprint}");
    let secret = ids.path().join("xlreg.secret");
    fs::write(&secret, "a shared secret of the cluster\n")?;
    let secret_arg = secret.display().to_string();
    let reg = registry(&[
        ("xlreg.admit.keys", &format!("[\"{fingerprint}\"]")),
        ("xlreg.admit.secret_file", &secret_arg),
    ])?;

    // A key that is not listed: refused (exit 4), even with the secret.
    let out = xlreg(
        &reg,
        &["create", "c", "--size", "2", "--secret-file", &secret_arg],
        &stranger,
        "stranger",
    )?;
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr.contains("not admitted") && out.stderr.contains("not on the registry's list"),
        "{}",
        out.stderr
    );
    // The listed key without the secret: refused.
    let out = xlreg(&reg, &["create", "c", "--size", "2"], &member, "member")?;
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stderr.contains("shared secret"), "{}", out.stderr);
    // The listed key with the secret: in, and it comes back as itself.
    let out = xlreg(
        &reg,
        &["create", "c", "--size", "2", "--secret-file", &secret_arg],
        &member,
        "member",
    )?;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = xlreg(
        &reg,
        &[
            "join",
            "c",
            "--endpoint",
            "127.0.0.1:9",
            "--secret-file",
            &secret_arg,
        ],
        &member,
        "member",
    )?;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let scraped = scrape(&reg.metrics)?;
    assert_eq!(
        sample(
            &scraped,
            "catalogue_xlreg_refusals_total{reason=not_admitted}"
        ),
        2.0
    );
    assert_eq!(sample(&scraped, "catalogue_xlreg_clients{}"), 1.0);
    Ok(())
}

/// Raises this process's open-file limit to at least `want` (children
/// inherit it), within the hard limit.
fn raise_fd_limit(want: u64) -> Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `limit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            bail!("getrlimit: {}", std::io::Error::last_os_error());
        }
        if limit.rlim_cur < want {
            limit.rlim_cur = want.min(limit.rlim_max);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                bail!("setrlimit: {}", std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

#[test]
fn idle_connections_do_not_lock_out_xlreg_members() -> Result<()> {
    raise_fd_limit(4 * IDLE_CONNECTIONS as u64)?;
    // A handshake deadline longer than the test: the idle connections are
    // not simply timed out while it runs.
    let reg = registry(&[("xlreg.handshake_timeout", "120s")])?;
    let ids = tempfile::tempdir()?;
    let admin = ids.path().join("admin");
    let out = xlreg(&reg, &["create", "c", "--size", "2"], &admin, "admin")?;
    assert_eq!(out.code, 0, "{}", out.stderr);

    // 1,200 connections from another loopback address that never send a
    // byte.
    let rt = runtime()?;
    let server: std::net::SocketAddr = reg.address.parse()?;
    let idle = rt.block_on(async {
        let mut idle = Vec::with_capacity(IDLE_CONNECTIONS);
        for _ in 0..IDLE_CONNECTIONS {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind("127.0.0.2:0".parse()?)?;
            idle.push(socket.connect(server).await?);
        }
        Ok::<_, anyhow::Error>(idle)
    })?;
    // Wait until the registry has accepted every one of them.
    let accepted = |scraped: &BTreeMap<String, f64>| {
        sample(scraped, "catalogue_xlreg_connections_total{}") as usize
    };
    let end = Instant::now() + DEADLINE;
    loop {
        let scraped = scrape(&reg.metrics)?;
        if accepted(&scraped) > IDLE_CONNECTIONS {
            break;
        }
        if Instant::now() > end {
            bail!(
                "the registry accepted {} of the idle connections",
                accepted(&scraped)
            );
        }
        std::thread::yield_now();
    }
    // A legitimate client, from another source, is served while they last.
    let started = Instant::now();
    let out = xlreg(&reg, &["members", "c", "--json"], &admin, "admin")?;
    assert_eq!(out.code, 0, "members refused: {}", out.stderr);
    eprintln!(
        "xlreg members answered in {:?} with {IDLE_CONNECTIONS} idle connections open",
        started.elapsed()
    );
    // The source's connections beyond its bounds (64 open at once, 64 in a
    // burst) were closed at once.
    let scraped = scrape(&reg.metrics)?;
    let refused = sample(
        &scraped,
        "catalogue_xlreg_refusals_total{reason=connections_per_source}",
    ) + sample(
        &scraped,
        "catalogue_xlreg_refusals_total{reason=rate_limited}",
    );
    assert!(
        refused >= (IDLE_CONNECTIONS - 64) as f64,
        "{refused} refused over the per-source bounds"
    );
    drop(idle);
    Ok(())
}
