//! What a person sees when a client command cannot talk to a node: one
//! `error:` line saying what is wrong, a `hint:` line saying what to try,
//! and the documented exit status; the node found through
//! `CATALOGUE_SOCKET`. Pointed at the wrong kind of endpoint (a node's peer
//! port, its metrics endpoint), the client says which it is.

use anyhow::Result;
use catalogue_integration_tests::{Cli, DEADLINE, Daemon};

#[test]
fn a_missing_socket_says_so_with_a_hint() -> Result<()> {
    let out = Cli::new(["list", "--socket", "/nonexistent/catalogue.sock"]).output(DEADLINE)?;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines
            .first()
            .is_some_and(|l| l.starts_with("error: cannot connect to /nonexistent/catalogue.sock")),
        "{}",
        out.stderr
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("hint: is the node running?")),
        "{}",
        out.stderr
    );
    Ok(())
}

#[test]
fn catalogue_socket_in_the_environment_finds_the_node() -> Result<()> {
    let daemon = Daemon::start()?;
    let out = Cli::new(["list"])
        .env("CATALOGUE_SOCKET", &daemon.socket_arg())
        .output(DEADLINE)?;
    assert_eq!(out.code, 0, "{}", out.stderr);
    Ok(())
}

#[test]
fn the_peer_port_is_named_for_what_it_is() -> Result<()> {
    let daemon = Daemon::start()?;
    let out = Cli::new(["list", "--connect", &daemon.peer]).output(DEADLINE)?;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("is not a catalogue client port: it is the peer port of node"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: clients use"), "{}", out.stderr);
    Ok(())
}

#[test]
fn the_metrics_endpoint_is_named_for_what_it_is() -> Result<()> {
    let mut daemon = Daemon::builder().metrics().start()?;
    let line = daemon.wait_log(DEADLINE, |l| l["message"] == "metrics endpoint listening")?;
    let addr = line["address"].as_str().unwrap_or_default().to_string();
    let out = Cli::new(["list", "--connect", &addr]).output(DEADLINE)?;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("is not a catalogue client port"),
        "{}",
        out.stderr
    );
    Ok(())
}
