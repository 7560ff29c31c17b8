//! What a person sees when a client command cannot talk to a node: one
//! `error:` line saying what is wrong, a `hint:` line saying what to try,
//! and the documented exit status; the node found through
//! `CATALOGUE_SOCKET`. Pointed at the wrong kind of endpoint (a node's peer
//! port, its metrics endpoint, its HTTP API, an xlReg registry, a TLS
//! client port without `--tls-ca`), the client says which it is at once,
//! well before its 5 s Welcome deadline, and exits 1 (client/src/probe.rs).

use std::time::{Duration, Instant};

use anyhow::Result;
use catalogue_integration_tests::{Cli, CliOutput, DEADLINE, Daemon, TestCa};

/// Much less than the client's Welcome deadline (5 s): what answered was
/// recognised from its first reply, not by waiting.
const AT_ONCE: Duration = Duration::from_secs(2);

/// Runs `catalogue COMMAND --connect ADDR ARGS`, checks that it fails with
/// exit 1 within [`AT_ONCE`], one `error:` line naming `what`, a `hint:`
/// and no log line; returns its output.
fn wrong_endpoint(command: &str, addr: &str, args: &[&str], what: &str) -> Result<CliOutput> {
    let started = Instant::now();
    let mut argv = vec![command, "--connect", addr];
    argv.extend_from_slice(args);
    let out = Cli::new(argv).output(DEADLINE)?;
    let took = started.elapsed();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(took < AT_ONCE, "took {took:?}: {}", out.stderr);
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    assert!(
        errors[0].contains("is not a catalogue client port") && errors[0].contains(what),
        "expected {what:?}: {}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: "), "{}", out.stderr);
    assert!(!out.stderr.contains("ERROR"), "{}", out.stderr);
    Ok(out)
}

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
    wrong_endpoint("list", &addr, &[], "an HTTP server")?;
    Ok(())
}

#[test]
fn subscribe_at_the_peer_port_gives_up_at_once() -> Result<()> {
    let daemon = Daemon::start()?;
    let out = wrong_endpoint("subscribe", &daemon.peer, &[".*"], "the peer port of node")?;
    assert!(
        out.stderr.contains("listen.client") && out.stderr.contains("listen.socket"),
        "the hint names where clients go: {}",
        out.stderr
    );
    Ok(())
}

#[test]
fn the_http_api_is_named_for_what_it_is() -> Result<()> {
    let daemon = Daemon::builder().http().start()?;
    wrong_endpoint("peers", &daemon.http, &[], "an HTTP server")?;
    Ok(())
}

#[test]
fn an_xlreg_registry_is_named_for_what_it_is() -> Result<()> {
    let mut daemon = Daemon::builder().xlreg_registry().start()?;
    let addr = daemon.address_logged("xlReg registry listening")?;
    wrong_endpoint("list", &addr, &[], "xlReg registry")?;
    Ok(())
}

#[test]
fn a_tls_client_port_without_tls_ca_says_so() -> Result<()> {
    let ca = TestCa::new("cli-errors")?;
    let files = ca.node("node-a")?;
    let daemon = Daemon::builder()
        .name("node-a")
        .tls(&files)
        .set("listen.client_tls", "on")
        .start()?;
    wrong_endpoint("list", &daemon.client, &[], "--tls-ca")?;
    Ok(())
}

#[test]
fn a_node_slow_to_greet_answers_the_probe_harmlessly() -> Result<()> {
    // A relay holds the node's Welcome back until the client has spoken,
    // as a node slower than the probe delay would: the client probes, the
    // real node gets the probe first, and the listing still succeeds.
    let daemon = Daemon::start()?;
    let (addr, relay) = greeting_after_the_client_speaks(&daemon.client)?;
    let out = Cli::new(["list", "--connect", &addr]).output(DEADLINE)?;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let first = relay
        .join()
        .map_err(|_| anyhow::anyhow!("relay panicked"))??;
    // The client's first bytes were the probe: a 1100-byte frame.
    assert_eq!(
        first,
        1100u32.to_be_bytes(),
        "the client spoke first with the probe"
    );
    Ok(())
}

/// A one-connection relay to `node` that forwards nothing from the node
/// until the client has sent its first bytes; returns its address and a
/// thread that ends with the first four bytes the client sent once the
/// connection closes.
fn greeting_after_the_client_speaks(
    node: &str,
) -> Result<(String, std::thread::JoinHandle<Result<[u8; 4]>>)> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    let node = node.to_string();
    let relay = std::thread::spawn(move || -> Result<[u8; 4]> {
        let (mut client, _) = listener.accept()?;
        let mut upstream = std::net::TcpStream::connect(&node)?;
        client.set_read_timeout(Some(DEADLINE))?;
        let mut first = [0u8; 4];
        client.read_exact(&mut first)?;
        upstream.write_all(&first)?;
        let (mut up_read, mut client_write) = (upstream.try_clone()?, client.try_clone()?);
        let down = std::thread::spawn(move || std::io::copy(&mut up_read, &mut client_write));
        client.set_read_timeout(None)?;
        std::io::copy(&mut client, &mut upstream)?;
        upstream.shutdown(std::net::Shutdown::Write)?;
        let _ = down.join();
        Ok(first)
    });
    Ok((addr, relay))
}

#[test]
fn xlreg_commands_fail_with_an_error_line_and_a_hint() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let reg = dir.path().join("reg").display().to_string();
    let key = Cli::new(["xlreg", "pubkey", "--data-dir", &reg]).output(DEADLINE)?;
    assert_eq!(key.code, 0, "{}", key.stderr);
    let key_file = dir.path().join("reg.pub");
    std::fs::write(&key_file, key.stdout)?;
    let identity = dir.path().join("id").display().to_string();
    let out = Cli::new([
        "xlreg",
        "members",
        "c1",
        "--identity-dir",
        &identity,
        "--server",
        "127.0.0.1:1",
        "--server-key",
        &key_file.display().to_string(),
        "--name",
        "x",
    ])
    .output(DEADLINE)?;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("error: cannot connect to the registry at 127.0.0.1:1")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: ") && out.stderr.contains("xlreg.listen"));
    assert!(!out.stderr.contains("ERROR"), "{}", out.stderr);
    Ok(())
}
