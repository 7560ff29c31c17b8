//! One real node: registration over the UNIX socket with uid checks,
//! regex subscriptions with snapshots and live events, deletes when the
//! registering process dies, and the client commands' exit statuses.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow, bail};
use catalogue::client::{
    Client, ClientError, ConnectOptions, Endpoint, Subscription, SubscriptionEvent,
};
use catalogue_integration_tests::{Cli, DEADLINE, Daemon, runtime};
use catalogue_proto::catalogue::ErrorCode;
use tokio::runtime::Runtime;

fn tcp(daemon: &Daemon) -> ConnectOptions {
    ConnectOptions::new(Endpoint::Tcp(daemon.client.clone()))
}

fn unix(daemon: &Daemon) -> ConnectOptions {
    ConnectOptions::new(Endpoint::Unix(daemon.socket.clone()))
}

/// The next event of `sub`, within the deadline.
async fn next(sub: &mut Subscription) -> Result<SubscriptionEvent> {
    match tokio::time::timeout(DEADLINE, sub.next()).await {
        Ok(Some(event)) => Ok(event),
        Ok(None) => bail!("subscription ended"),
        Err(_) => bail!("no event within {DEADLINE:?}"),
    }
}

async fn expect_snapshot_end(sub: &mut Subscription, count: u64) -> Result<()> {
    match next(sub).await? {
        SubscriptionEvent::SnapshotEnd { count: c } if c == count => Ok(()),
        other => bail!("expected the end of a {count}-service snapshot, got {other:?}"),
    }
}

/// A subscription on its own connection, past its (empty) snapshot. The
/// client is leaked so the connection lives as long as the test.
fn watch(rt: &Runtime, daemon: &Daemon, regex: &str) -> Result<Subscription> {
    rt.block_on(async {
        let client = Client::connect(&tcp(daemon)).await?;
        let mut sub = client.subscribe(regex).await?;
        expect_snapshot_end(&mut sub, 0).await?;
        std::mem::forget(client);
        Ok(sub)
    })
}

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn server_code(e: &ClientError) -> Option<ErrorCode> {
    match e {
        ClientError::Server { code, .. } => Some(*code),
        _ => None,
    }
}

#[test]
fn a_registering_process_that_dies_takes_its_service_with_it() -> Result<()> {
    let daemon = Daemon::start()?;
    let rt = runtime()?;
    let (client, mut sub) = rt.block_on(async {
        let client = Client::connect(&tcp(&daemon)).await?;
        let mut sub = client.subscribe("^tcp://db").await?;
        expect_snapshot_end(&mut sub, 0).await?;
        Ok::<_, anyhow::Error>((client, sub))
    })?;

    let registrar = Cli::new([
        "register",
        "tcp://db.example:5432",
        "--attr",
        "role=primary",
        "--socket",
        &daemon.socket_arg(),
    ])
    .spawn()?;
    rt.block_on(async {
        match next(&mut sub).await? {
            SubscriptionEvent::Added { service, snapshot } => {
                assert_eq!(service.uri, "tcp://db.example:5432");
                assert_eq!(service.attrs, attrs(&[("role", "primary")]));
                assert_eq!(service.origin, "node-under-test");
                assert!(!snapshot, "a live event, not a snapshot");
            }
            other => bail!("expected the add, got {other:?}"),
        }
        Ok(())
    })?;
    // A second subscriber now gets it in its snapshot.
    rt.block_on(async {
        let mut late = client.subscribe("db").await?;
        match next(&mut late).await? {
            SubscriptionEvent::Added {
                service,
                snapshot: true,
            } => {
                assert_eq!(service.uri, "tcp://db.example:5432")
            }
            other => bail!("expected a snapshot entry, got {other:?}"),
        }
        expect_snapshot_end(&mut late, 1).await
    })?;

    registrar.signal(libc::SIGKILL)?;
    rt.block_on(async {
        match next(&mut sub).await? {
            SubscriptionEvent::Deleted { service } => {
                assert_eq!(service.uri, "tcp://db.example:5432")
            }
            other => bail!("expected the delete, got {other:?}"),
        }
        assert!(
            client.list("").await?.is_empty(),
            "the table is empty again"
        );
        Ok(())
    })
}

#[test]
fn ctrl_c_unregisters_and_exits_zero() -> Result<()> {
    let daemon = Daemon::start()?;
    let rt = runtime()?;
    let mut sub = watch(&rt, &daemon, "")?;
    let mut registrar = Cli::new([
        "register",
        "http://api:8080/v1",
        "--socket",
        &daemon.socket_arg(),
    ])
    .spawn()?;
    rt.block_on(async {
        assert!(matches!(
            next(&mut sub).await?,
            SubscriptionEvent::Added { .. }
        ));
        Ok::<_, anyhow::Error>(())
    })?;
    registrar.wait_stderr("registered", DEADLINE)?;
    registrar.signal(libc::SIGINT)?;
    let status = registrar.wait(DEADLINE)?;
    assert!(status.success(), "{status:?}");
    rt.block_on(async {
        assert!(matches!(
            next(&mut sub).await?,
            SubscriptionEvent::Deleted { .. }
        ));
        Ok(())
    })
}

#[test]
fn register_over_tcp_is_refused_with_0x01_and_changes_nothing() -> Result<()> {
    let daemon = Daemon::start()?;
    let rt = runtime()?;
    rt.block_on(async {
        let client = Client::connect(&tcp(&daemon)).await?;
        let err = client
            .register("tcp://x:1", BTreeMap::new())
            .await
            .expect_err("register over TCP must be refused");
        assert_eq!(server_code(&err), Some(ErrorCode::AuthFailed), "{err}");
        assert!(client.list("").await?.is_empty());
        Ok(())
    })
}

#[test]
fn debug_mode_accepts_register_over_tcp() -> Result<()> {
    let mut daemon = Daemon::builder().arg("--debug").start()?;
    daemon.wait_log(DEADLINE, |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("debug mode"))
    })?;
    let rt = runtime()?;
    rt.block_on(async {
        let client = Client::connect(&tcp(&daemon)).await?;
        client.register("tcp://x:1", BTreeMap::new()).await?;
        assert_eq!(client.list("").await?.len(), 1);
        Ok(())
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

const NOBODY: u32 = 65534;

#[test]
fn a_uid_that_is_not_allowed_is_refused() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: dropping to uid {NOBODY} needs root");
        return Ok(());
    }
    let daemon = Daemon::start()?;
    let out = Cli::new(["register", "tcp://x:1", "--socket", &daemon.socket_arg()])
        .as_user(NOBODY, NOBODY)
        .output(DEADLINE)?;
    assert_eq!(
        out.code, 4,
        "refused request exits 4; stderr: {}",
        out.stderr
    );
    assert!(out.stderr.contains("server error 0x01"), "{}", out.stderr);
    assert!(out.stderr.contains("uid 65534"), "{}", out.stderr);
    // The hint names the setting that would let it in; no log line.
    assert!(
        out.stderr.contains("hint:") && out.stderr.contains("register.allowed_uids"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("ERROR"), "{}", out.stderr);
    let rt = runtime()?;
    rt.block_on(async {
        let client = Client::connect(&unix(&daemon)).await?;
        assert!(client.list("").await?.is_empty(), "nothing registered");
        Ok(())
    })
}

#[test]
fn an_allowed_uid_may_register() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: dropping to uid {NOBODY} needs root");
        return Ok(());
    }
    let daemon = Daemon::builder()
        .set("register.allowed_uids", &format!("[{NOBODY}]"))
        .start()?;
    let rt = runtime()?;
    let mut sub = watch(&rt, &daemon, "")?;
    let _registrar = Cli::new([
        "register",
        "tcp://nobody:1",
        "--socket",
        &daemon.socket_arg(),
    ])
    .as_user(NOBODY, NOBODY)
    .spawn()?;
    rt.block_on(async {
        match next(&mut sub).await? {
            SubscriptionEvent::Added { service, .. } => assert_eq!(service.uri, "tcp://nobody:1"),
            other => bail!("expected the add, got {other:?}"),
        }
        Ok(())
    })
}

#[test]
fn bad_input_gets_errors_and_the_connection_stays_usable() -> Result<()> {
    let daemon = Daemon::start()?;
    let rt = runtime()?;
    rt.block_on(async {
        let client = Client::connect(&unix(&daemon)).await?;
        let err = client.subscribe("(unclosed").await.expect_err("bad regex");
        assert_eq!(server_code(&err), Some(ErrorCode::InvalidRegex), "{err}");
        assert!(
            err.to_string().contains("unclosed"),
            "names the problem: {err}"
        );

        let err = client
            .register("not a uri", BTreeMap::new())
            .await
            .expect_err("bad URI");
        assert_eq!(server_code(&err), Some(ErrorCode::InvalidUri), "{err}");

        let err = client
            .unregister("tcp://never:1")
            .await
            .expect_err("not registered");
        assert_eq!(server_code(&err), Some(ErrorCode::NotFound), "{err}");

        // Still usable: a valid subscription and a registration work.
        let mut sub = client.subscribe("^tcp://ok").await?;
        expect_snapshot_end(&mut sub, 0).await?;
        client.register("tcp://ok:1", attrs(&[("a", "b")])).await?;
        match next(&mut sub).await? {
            SubscriptionEvent::Added { service, .. } => assert_eq!(service.uri, "tcp://ok:1"),
            other => bail!("expected the add, got {other:?}"),
        }
        Ok(())
    })
}

#[test]
fn a_uri_held_by_another_connection_is_a_conflict() -> Result<()> {
    let daemon = Daemon::start()?;
    let rt = runtime()?;
    rt.block_on(async {
        let first = Client::connect(&unix(&daemon)).await?;
        let second = Client::connect(&unix(&daemon)).await?;
        first.register("tcp://shared:1", BTreeMap::new()).await?;
        let err = second
            .register("tcp://shared:1", BTreeMap::new())
            .await
            .expect_err("conflict");
        assert_eq!(server_code(&err), Some(ErrorCode::Conflict), "{err}");
        // The holder may update its attributes.
        first
            .register("tcp://shared:1", attrs(&[("v", "2")]))
            .await?;
        let listed = second.list("shared").await?;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].attrs, attrs(&[("v", "2")]));
        Ok(())
    })
}

#[test]
fn unsubscribe_stops_events_and_several_subscriptions_are_independent() -> Result<()> {
    let daemon = Daemon::start()?;
    let rt = runtime()?;
    rt.block_on(async {
        let client = Client::connect(&unix(&daemon)).await?;
        let mut a = client.subscribe("^tcp://").await?;
        let mut b = client.subscribe("^http://").await?;
        expect_snapshot_end(&mut a, 0).await?;
        expect_snapshot_end(&mut b, 0).await?;
        client.register("http://h:1", BTreeMap::new()).await?;
        client.register("tcp://t:1", BTreeMap::new()).await?;
        match next(&mut a).await? {
            SubscriptionEvent::Added { service, .. } => assert_eq!(service.uri, "tcp://t:1"),
            other => bail!("a: {other:?}"),
        }
        match next(&mut b).await? {
            SubscriptionEvent::Added { service, .. } => assert_eq!(service.uri, "http://h:1"),
            other => bail!("b: {other:?}"),
        }
        client.unsubscribe(b).await?;
        client.register("http://h:2", BTreeMap::new()).await?;
        client.register("tcp://t:2", BTreeMap::new()).await?;
        match next(&mut a).await? {
            SubscriptionEvent::Added { service, .. } => assert_eq!(service.uri, "tcp://t:2"),
            other => bail!("a: {other:?}"),
        }
        Ok(())
    })
}

#[test]
fn list_command_says_when_there_is_nothing_to_list() -> Result<()> {
    let daemon = Daemon::start()?;
    let socket = daemon.socket_arg();
    let out = Cli::new(["list", "--socket", &socket]).output(DEADLINE)?;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr.trim(), "(no services registered)");
    let out = Cli::new(["list", "^tcp://", "--socket", &socket]).output(DEADLINE)?;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr.trim(), "(no services match ^tcp://)");
    // --json is for programs: nothing at all.
    let out = Cli::new(["list", "--json", "--socket", &socket]).output(DEADLINE)?;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", ""));
    Ok(())
}

#[test]
fn list_command_prints_matching_services() -> Result<()> {
    let daemon = Daemon::builder().arg("--debug").start()?;
    let rt = runtime()?;
    let client = rt.block_on(async {
        let client = Client::connect(&tcp(&daemon)).await?;
        client.register("tcp://b:1", attrs(&[("k", "v")])).await?;
        client.register("tcp://a:1", BTreeMap::new()).await?;
        client.register("http://c:1", BTreeMap::new()).await?;
        Ok::<_, ClientError>(client)
    })?;
    let out = Cli::new(["list", "^tcp", "--socket", &daemon.socket_arg()]).output(DEADLINE)?;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        [
            "tcp://a:1 origin=node-under-test",
            "tcp://b:1 origin=node-under-test k=v"
        ]
    );
    let out = Cli::new(["list", "--json", "--connect", &daemon.client]).output(DEADLINE)?;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let uris: Vec<String> = out
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .map(|v| v["uri"].as_str().unwrap_or("").to_string())
        })
        .collect::<Result<_, _>>()?;
    assert_eq!(uris, ["http://c:1", "tcp://a:1", "tcp://b:1"]);
    drop(client);
    Ok(())
}

#[test]
fn subscribe_command_prints_json_events() -> Result<()> {
    let daemon = Daemon::builder().arg("--debug").start()?;
    let mut sub = Cli::new([
        "subscribe",
        "^tcp://",
        "--json",
        "--connect",
        &daemon.client,
    ])
    .spawn()?;
    sub.wait_stderr("snapshot complete", DEADLINE)?;
    let rt = runtime()?;
    let client = rt.block_on(async {
        let client = Client::connect(&tcp(&daemon)).await?;
        client.register("tcp://j:1", attrs(&[("x", "y")])).await?;
        client.unregister("tcp://j:1").await?;
        Ok::<_, ClientError>(client)
    })?;
    let end: serde_json::Value = serde_json::from_str(&sub.next_line(DEADLINE)?)?;
    assert_eq!(end["event"], "snapshot_end");
    assert_eq!(end["kind"], "snapshot");
    assert_eq!(end["count"], 0);
    let added: serde_json::Value = serde_json::from_str(&sub.next_line(DEADLINE)?)?;
    assert_eq!(added["event"], "added");
    assert_eq!(added["uri"], "tcp://j:1");
    assert_eq!(added["attrs"]["x"], "y");
    assert_eq!(added["origin"], "node-under-test");
    assert_eq!(added["revision"], 1);
    let deleted: serde_json::Value = serde_json::from_str(&sub.next_line(DEADLINE)?)?;
    assert_eq!(deleted["event"], "deleted");
    assert_eq!(deleted["uri"], "tcp://j:1");
    assert_eq!(deleted["revision"], 2);
    drop(client);
    Ok(())
}

#[test]
fn environment_mismatch_exits_3_without_retrying() -> Result<()> {
    let daemon = Daemon::start()?;
    for command in ["list", "subscribe"] {
        let mut args = vec![command];
        if command == "subscribe" {
            args.push("x");
        }
        let socket = daemon.socket_arg();
        args.extend(["--expect-environment", "staging", "--socket", &socket]);
        let out = Cli::new(&args).output(DEADLINE)?;
        assert_eq!(out.code, 3, "{command}: {}", out.stderr);
        assert!(
            out.stderr
                .contains("environment mismatch: expected staging, server test"),
            "{command}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("reconnecting"),
            "{command} must not retry: {}",
            out.stderr
        );
    }
    Ok(())
}

#[test]
fn a_stalled_subscriber_neither_delays_others_nor_grows_memory() -> Result<()> {
    const CHURN: usize = 20_000;
    let mut daemon = Daemon::builder()
        .arg("--debug")
        .set("limits.subscription_queue", "64")
        .start()?;
    // A subscriber that never reads after subscribing.
    let mut stalled = catalogue_integration_tests::Conn::unix(&daemon.socket)?;
    stalled.recv()?;
    stalled.send(catalogue_proto::Body::Subscribe(
        catalogue_proto::catalogue::Subscribe {
            subscription_id: 1,
            regex: "^tcp://".into(),
            ..Default::default()
        },
    ))?;
    let rt = runtime()?;
    let big = "x".repeat(4096);
    let (received, baseline_kib) = rt.block_on(async {
        let watcher = Client::connect(&unix(&daemon)).await?;
        let mut sub = watcher.subscribe("^tcp://").await?;
        expect_snapshot_end(&mut sub, 0).await?;
        let registrar = Client::connect(&tcp(&daemon)).await?;
        let baseline = daemon.rss_kib()?;
        let mut received = 0usize;
        for i in 0..CHURN {
            let uri = format!("tcp://churn:{}", i % 16);
            if i % 2 == 0 {
                registrar.register(&uri, attrs(&[("pad", &big)])).await?;
            } else {
                registrar
                    .unregister(&format!("tcp://churn:{}", (i - 1) % 16))
                    .await?;
            }
            // The live subscriber sees each change before the next is made.
            match next(&mut sub).await? {
                SubscriptionEvent::Added { .. } | SubscriptionEvent::Deleted { .. } => {
                    received += 1
                }
                other => bail!("unexpected {other:?}"),
            }
        }
        Ok::<_, anyhow::Error>((received, baseline))
    })?;
    assert_eq!(received, CHURN);
    let grown_kib = daemon.rss_kib()?.saturating_sub(baseline_kib);
    let unbounded_kib = (CHURN * big.len() / 1024) as u64;
    println!(
        "stalled subscriber: {CHURN} events, RSS grew {grown_kib} KiB (an unbounded queue would hold {unbounded_kib} KiB)"
    );
    assert!(grown_kib < unbounded_kib / 4, "RSS grew {grown_kib} KiB");
    daemon
        .wait_log(DEADLINE, |l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("overflowed"))
        })
        .map_err(|e| anyhow!("the stalled subscription overflowed: {e}"))?;
    drop(stalled);
    Ok(())
}

#[test]
fn subscribe_command_reconnects_and_resubscribes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("node.sock");
    let mut first = Daemon::builder().socket(&socket).arg("--debug").start()?;
    let socket_arg = socket.display().to_string();
    let mut sub = Cli::new(["subscribe", "^tcp://", "--json", "--socket", &socket_arg]).spawn()?;
    sub.wait_stderr("snapshot complete", DEADLINE)?;
    first.signal(libc::SIGTERM)?;
    first.wait_exit(DEADLINE)?;
    sub.wait_stderr("reconnecting", DEADLINE)?;

    let second = Daemon::builder().socket(&socket).arg("--debug").start()?;
    let rt = runtime()?;
    let client = rt.block_on(async {
        let client = Client::connect(&tcp(&second)).await?;
        client.register("tcp://again:1", BTreeMap::new()).await?;
        Ok::<_, ClientError>(client)
    })?;
    // After reconnecting (a reset: the node restarted), the fresh
    // snapshot or the live event shows it; notices come first.
    let added = loop {
        let line: serde_json::Value = serde_json::from_str(&sub.next_line(DEADLINE)?)?;
        if line["event"] != "reset" && line["event"] != "snapshot_end" {
            break line;
        }
    };
    assert_eq!(added["event"], "added");
    assert_eq!(added["uri"], "tcp://again:1");
    drop(client);
    Ok(())
}

/// Another local user binds the node's socket path first (in a shared
/// directory like `/tmp`, anyone can): a client asks the kernel who
/// listens, refuses to talk to that user's process, and sends it nothing.
#[test]
fn a_client_sends_nothing_to_a_socket_another_user_bound_first() -> Result<()> {
    use std::{
        io::{BufRead, BufReader},
        os::unix::{fs::PermissionsExt, process::CommandExt},
        process::{Command, Stdio},
        sync::mpsc,
    };
    if !is_root() {
        eprintln!("skipped: running a listener as uid {NOBODY} needs root");
        return Ok(());
    }
    let shared = tempfile::tempdir()?;
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777))?;
    let path = shared.path().join("catalogue.sock");
    // The squatter: accepts one connection and says how many bytes came.
    let mut squatter = Command::new("python3")
        .args([
            "-c",
            "import socket,sys\n\
             s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen()\n\
             print('ready', flush=True)\n\
             c,_=s.accept(); n=len(c.recv(4096)); print('got', n, flush=True)",
        ])
        .arg(&path)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = squatter.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    assert_eq!(lines.recv_timeout(DEADLINE)?, "ready");
    let out = Cli::new([
        "register",
        "tcp://x:1",
        "--socket",
        &path.display().to_string(),
    ])
    .output(DEADLINE)?;
    let got = lines.recv_timeout(DEADLINE)?;
    let _ = squatter.kill();
    let _ = squatter.wait();
    assert_eq!(out.code, 1, "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains("refusing to use") && out.stderr.contains("uid 65534"),
        "{}",
        out.stderr
    );
    assert_eq!(got, "got 0", "the squatter received bytes");
    Ok(())
}
