//! `catalogue register --check-*` against real nodes: the command runs the
//! health check itself and keeps the service registered only while it
//! passes: a subscriber on another node sees it added with
//! `check = "passing"`, deleted when the checked port closes (the command
//! keeps running) and added again when the port opens; bad check flags are
//! refused with the flag named and exit code 2.

use std::net::{SocketAddr, TcpListener};

use anyhow::{Context, Result};
use catalogue::client::SubscriptionEvent;
use catalogue_integration_tests::{Cli, Cluster, DEADLINE, added, deleted, describe};

#[test]
fn a_failing_check_withdraws_the_service_until_it_passes() -> Result<()> {
    let uri = "tcp://checked:1";
    let port = TcpListener::bind("127.0.0.1:0")?;
    let checked: SocketAddr = port.local_addr()?;
    let cluster = Cluster::builder(2).start()?;
    let watcher = cluster.watch(1, "^tcp://checked")?;
    let socket = cluster.socket(0).display().to_string();
    let mut register = Cli::new([
        "register",
        uri,
        "--attr",
        "role=db",
        "--socket",
        &socket,
        "--check-tcp",
        &checked.to_string(),
        "--check-interval",
        "200ms",
        "--check-timeout",
        "150ms",
        "--check-failures",
        "2",
    ])
    .spawn()?;

    let seen = watcher.wait(0, DEADLINE, "the registration", |ev| added(ev) == [uri])?;
    let attrs = seen.iter().find_map(|e| match e {
        SubscriptionEvent::Added { service, .. } => Some(service.attrs.clone()),
        _ => None,
    });
    let attrs = attrs.context("an added event")?;
    assert_eq!(attrs.get("check").map(String::as_str), Some("passing"));
    assert_eq!(attrs.get("role").map(String::as_str), Some("db"));

    // The port closes: withdrawn cluster-wide, the command keeps running.
    let mark = watcher.mark();
    drop(port);
    watcher.wait(mark, DEADLINE, "the withdrawal", |ev| deleted(ev) == [uri])?;
    register.wait_stderr("check failing", DEADLINE)?;
    assert!(
        register.exited()?.is_none(),
        "register exited: {}",
        register.stderr_seen.join("\n")
    );

    // It opens again: registered again.
    let mark = watcher.mark();
    let _port = TcpListener::bind(checked).context("binding the checked port again")?;
    let since = watcher.wait(mark, DEADLINE, "the return", |ev| {
        added(ev).contains(&uri.to_string())
    })?;
    assert!(
        !deleted(&since).contains(&uri.to_string()),
        "{}",
        describe(&since)
    );

    // Ctrl-C: unregistered, exit 0.
    let mark = watcher.mark();
    register.signal(libc::SIGINT)?;
    let status = register.wait(DEADLINE)?;
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        register.stderr_seen.join("\n")
    );
    watcher.wait(mark, DEADLINE, "the unregistration", |ev| {
        deleted(ev) == [uri]
    })?;
    Ok(())
}

#[test]
fn bad_check_flags_are_refused_by_name() -> Result<()> {
    let cases: [&[&str]; 3] = [
        &["--check-http", "ftp://x/health"],
        &["--check-tcp", "127.0.0.1:1", "--check-timeout", "20s"],
        &["--check-tcp", "nohostport"],
    ];
    let flags = ["--check-http", "--check-timeout", "--check-tcp"];
    for (args, flag) in cases.iter().zip(flags) {
        let mut all = vec!["register", "tcp://x:1", "--socket", "/nonexistent/socket"];
        all.extend_from_slice(args);
        let out = Cli::new(all).output(DEADLINE)?;
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("error: {flag}: ")),
            "{args:?}: {}",
            out.stderr
        );
    }
    // Two kinds at once: clap refuses it.
    let out = Cli::new([
        "register",
        "tcp://x:1",
        "--check-tcp",
        "127.0.0.1:1",
        "--check-exec",
        "true",
    ])
    .output(DEADLINE)?;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
    Ok(())
}
