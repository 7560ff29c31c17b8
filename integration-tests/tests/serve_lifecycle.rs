//! A real `catalogue serve` process: it greets every connection with
//! `Welcome`, answers frames, and on SIGTERM or SIGINT says `Bye`, removes
//! its socket and exits 0.

use catalogue_integration_tests::{Conn, DEADLINE, Daemon};
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
