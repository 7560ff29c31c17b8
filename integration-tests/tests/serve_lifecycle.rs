//! A real `catalogue serve` process: it greets every connection with
//! `Welcome`, answers frames, and on SIGTERM or SIGINT says `Bye`, removes
//! its socket and exits 0. A failed start (metrics port in use) is one
//! `error:` line with a hint and exit code 1, with no panic and no socket
//! left; the socket and data directories are created with safe modes.

use std::os::unix::fs::PermissionsExt;

use catalogue_integration_tests::{Cli, Conn, DEADLINE, Daemon};
use catalogue_proto::{
    Body, PROTOCOL_MAJOR,
    catalogue::{Ack, ErrorCode, List},
};

fn expect_welcome(conn: &mut Conn) -> catalogue_proto::catalogue::Welcome {
    match conn.recv().expect("read").expect("a frame").body {
        Some(Body::Welcome(w)) => w,
        other => panic!("expected Welcome first, got {other:?}"),
    }
}

#[test]
fn every_listener_sends_welcome_first() {
    let daemon = Daemon::builder()
        .arg("--environment")
        .arg("staging")
        .arg("--cluster")
        .arg("blue")
        .start()
        .expect("daemon starts");
    for mut conn in [
        Conn::tcp(&daemon.client).expect("tcp"),
        Conn::unix(&daemon.socket).expect("unix"),
        Conn::tcp(&daemon.peer).expect("peer port"),
    ] {
        let w = expect_welcome(&mut conn);
        assert_eq!(w.server_name, "node-under-test");
        assert_eq!(w.cluster, "blue");
        assert_eq!(w.environment, "staging");
        assert_eq!(w.protocol_major, PROTOCOL_MAJOR);
    }
}

#[test]
fn an_oversized_frame_gets_an_error_then_the_connection_closes() {
    let daemon = Daemon::builder()
        .set("limits.max_frame_bytes", "4096")
        .start()
        .expect("daemon starts");
    let mut conn = Conn::tcp(&daemon.client).expect("tcp");
    expect_welcome(&mut conn);
    conn.send_raw(&u32::MAX.to_be_bytes()).expect("write");
    match conn.recv().expect("read").expect("an error frame").body {
        Some(Body::Error(e)) => assert_eq!(e.code(), ErrorCode::FrameTooLarge),
        other => panic!("expected Error, got {other:?}"),
    }
    assert!(conn.recv().expect("read").is_none(), "connection closed");
    // The node still serves others.
    let mut other = Conn::tcp(&daemon.client).expect("tcp");
    expect_welcome(&mut other);
}

#[test]
fn requests_are_answered_with_the_serial_they_answer() {
    let daemon = Daemon::start().expect("daemon starts");
    let mut conn = Conn::unix(&daemon.socket).expect("unix");
    expect_welcome(&mut conn);
    let list = conn
        .send(Body::List(List {
            regex: String::new(),
            ..Default::default()
        }))
        .expect("send");
    let ack = conn.send(Body::Ack(Ack { ack_serial: 0 })).expect("send");
    match conn.recv().expect("read").expect("a reply").body {
        Some(Body::ListReply(r)) => assert_eq!(r.in_reply_to, list),
        other => panic!("expected ListReply, got {other:?}"),
    }
    match conn.recv().expect("read").expect("a reply").body {
        Some(Body::Error(e)) => {
            assert_eq!(e.in_reply_to, Some(ack));
            assert_eq!(e.code(), ErrorCode::UnexpectedMessage);
        }
        other => panic!("expected Error, got {other:?}"),
    }
}

fn stops_cleanly_on(signal: i32) {
    let mut daemon = Daemon::start().expect("daemon starts");
    let mut conn = Conn::tcp(&daemon.client).expect("tcp");
    expect_welcome(&mut conn);
    assert!(daemon.socket.exists());
    daemon.signal(signal).expect("signal");
    match conn.recv().expect("read").expect("a goodbye").body {
        Some(Body::Bye(bye)) => assert_eq!(bye.reason, "shutting down"),
        other => panic!("expected Bye, got {other:?}"),
    }
    let status = daemon.wait_exit(DEADLINE).expect("exits");
    assert!(status.success(), "exit status {status:?}");
    assert!(!daemon.socket.exists(), "socket file removed");
    assert!(
        daemon.logged().iter().any(|l| l["message"] == "stopped"),
        "logs its stop"
    );
}

#[test]
fn sigterm_says_bye_and_exits_zero() {
    stops_cleanly_on(libc::SIGTERM);
}

#[test]
fn sigint_says_bye_and_exits_zero() {
    stops_cleanly_on(libc::SIGINT);
}

#[test]
fn a_busy_address_is_a_clear_startup_error() {
    let first = Daemon::start().expect("daemon starts");
    let err = Daemon::builder()
        .set("listen.client", &first.client)
        .start()
        .err()
        .expect("second daemon must fail");
    let text = format!("{err:#}");
    assert!(text.contains("cannot listen for clients on"), "{text}");
}

#[test]
fn a_metrics_port_in_use_is_one_error_line_and_leaves_no_socket() -> anyhow::Result<()> {
    let busy = std::net::TcpListener::bind("127.0.0.1:0")?;
    let busy_addr = busy.local_addr()?.to_string();
    let dir = tempfile::tempdir()?;
    // Neither directory exists yet: serve creates them.
    let socket = dir.path().join("run/catalogue/catalogue.sock");
    let data = dir.path().join("lib/catalogue");
    let set = |kv: String| ["--set".to_string(), kv];
    let mut args = vec!["serve".to_string()];
    for kv in [
        format!("metrics.listen={busy_addr}"),
        format!("listen.socket={}", socket.display()),
        "listen.client=127.0.0.1:0".to_string(),
        "listen.peer=127.0.0.1:0".to_string(),
        format!("node.data_dir={}", data.display()),
    ] {
        args.extend(set(kv));
    }
    let out = Cli::new(&args).output(DEADLINE)?;
    assert_eq!(out.code, 1, "{out:?}");
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    assert!(
        errors[0].contains(&format!("cannot listen for metrics on {busy_addr}"))
            && errors[0].contains("hint: ")
            && errors[0].contains("metrics.listen"),
        "{}",
        errors[0]
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(!socket.exists(), "socket file left behind");
    let mode = |p: &std::path::Path| -> anyhow::Result<u32> {
        Ok(std::fs::metadata(p)?.permissions().mode() & 0o777)
    };
    let socket_dir = socket
        .parent()
        .ok_or_else(|| anyhow::anyhow!("no parent"))?;
    assert_eq!(mode(socket_dir)?, 0o755);
    assert_eq!(mode(&data)?, 0o700);
    drop(busy);
    Ok(())
}
