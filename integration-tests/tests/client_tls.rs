//! TLS on the client TCP port (`listen.client_tls`): a reader that trusts
//! the cluster CA reads over an encrypted connection, with the library and
//! with the CLI; what is not TLS, not the right name, not the right CA or
//! (for `mutual`) has no certificate from the cluster CA is refused with an
//! error that says why; handshakes that stall are bounded in number and in
//! time.

use std::{
    collections::BTreeMap,
    io::Read,
    net::TcpStream,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use catalogue::client::{Client, ClientError, ConnectOptions, Endpoint, TlsOptions};
use catalogue_integration_tests::{Cli, DEADLINE, Daemon, TestCa, TlsFiles, runtime};

const NODE: &str = "node-a";
const URI: &str = "svc://tls-test/one";

/// A node named [`NODE`] whose client port speaks TLS in `mode`, with one
/// service registered over its UNIX socket (by `holder`, kept open).
fn node(ca: &TestCa, mode: &str, extra: &[(&str, &str)]) -> Result<Daemon> {
    let files = ca.node(NODE)?;
    let mut builder = Daemon::builder()
        .name(NODE)
        .tls(&files)
        .set("listen.client_tls", mode);
    for (key, value) in extra {
        builder = builder.set(key, value);
    }
    builder.start()
}

fn tls_options(daemon: &Daemon, tls: TlsOptions) -> ConnectOptions {
    let mut options = ConnectOptions::new(Endpoint::Tcp(daemon.client.clone()));
    options.tls = Some(tls);
    options
}

fn trusting(ca: &Path) -> TlsOptions {
    TlsOptions {
        ca: ca.to_path_buf(),
        server_name: Some(NODE.into()),
        identity: None,
    }
}

/// Registers [`URI`] over the UNIX socket and returns the connection that
/// holds it.
async fn register(daemon: &Daemon) -> Result<Client> {
    let holder = Client::connect(&ConnectOptions::new(Endpoint::Unix(daemon.socket.clone())))
        .await
        .context("connect over the UNIX socket")?;
    holder.register(URI, BTreeMap::new()).await?;
    Ok(holder)
}

async fn listed(options: &ConnectOptions) -> Result<Vec<String>, ClientError> {
    let client = Client::connect(options).await?;
    Ok(client.list("").await?.into_iter().map(|s| s.uri).collect())
}

fn tls_error(result: Result<Vec<String>, ClientError>) -> Result<String> {
    match result {
        Err(e @ ClientError::Tls { .. }) => Ok(e.to_string()),
        other => bail!("expected a TLS error, got {other:?}"),
    }
}

#[test]
fn tls_port_serves_readers_that_trust_the_cluster_ca_and_says_why_others_fail() -> Result<()> {
    let ca = TestCa::new("cluster-ca")?;
    let mut daemon = node(&ca, "on", &[])?;
    let rt = runtime()?;
    let _holder = rt.block_on(register(&daemon))?;

    // Over TLS, naming the node: the service is there.
    let uris = rt.block_on(listed(&tls_options(&daemon, trusting(&ca.ca_pem()))))?;
    assert_eq!(uris, [URI]);

    // The same through the command line.
    let out = Cli::new([
        "list",
        "--json",
        "--connect",
        &daemon.client,
        "--tls-ca",
        &ca.ca_pem().display().to_string(),
        "--tls-name",
        NODE,
    ])
    .output(DEADLINE)?;
    assert_eq!(out.code, 0, "catalogue list over TLS: {}", out.stderr);
    assert!(out.stdout.contains(URI), "list output: {}", out.stdout);

    // Dialled by address without naming the node: the certificate names
    // node-a, not 127.0.0.1, and the error says what to give.
    let mut by_address = trusting(&ca.ca_pem());
    by_address.server_name = None;
    let text = tls_error(rt.block_on(listed(&tls_options(&daemon, by_address))))?;
    assert!(text.contains("--tls-name"), "{text}");

    // A client trusting another CA refuses the node.
    let other = TestCa::new("other-ca")?;
    let text = tls_error(rt.block_on(listed(&tls_options(&daemon, trusting(&other.ca_pem())))))?;
    assert!(text.contains("not signed by the CA"), "{text}");

    // The node counted (and logged) the handshakes its clients abandoned.
    daemon.wait_log(DEADLINE, |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("client TLS handshake failed"))
    })?;

    // A plaintext client gets no Welcome from a TLS port, and is told so.
    let plain = ConnectOptions::new(Endpoint::Tcp(daemon.client.clone()));
    match rt.block_on(listed(&plain)) {
        Err(e @ ClientError::WrongEndpoint { .. }) => {
            assert!(e.to_string().contains("--tls-ca"), "{e}");
        }
        other => bail!("plaintext to a TLS port: expected WrongEndpoint, got {other:?}"),
    }
    Ok(())
}

#[test]
fn a_plaintext_port_is_named_to_a_tls_client() -> Result<()> {
    let ca = TestCa::new("cluster-ca")?;
    let daemon = node(&ca, "off", &[])?;
    let rt = runtime()?;
    let text = tls_error(rt.block_on(listed(&tls_options(&daemon, trusting(&ca.ca_pem())))))?;
    assert!(text.contains("plaintext"), "{text}");
    Ok(())
}

#[test]
fn mutual_admits_only_clients_with_a_certificate_from_the_cluster_ca() -> Result<()> {
    let ca = TestCa::new("cluster-ca")?;
    let daemon = node(&ca, "mutual", &[])?;
    let rt = runtime()?;
    let _holder = rt.block_on(register(&daemon))?;

    // No certificate: refused, and told a certificate is wanted.
    let text = tls_error(rt.block_on(listed(&tls_options(&daemon, trusting(&ca.ca_pem())))))?;
    assert!(text.contains("mutual"), "{text}");

    // A certificate from another CA: refused.
    let other = TestCa::new("other-ca")?;
    let stranger: TlsFiles = other.node("reader")?;
    let mut with_stranger = trusting(&ca.ca_pem());
    with_stranger.identity = Some((stranger.cert, stranger.key));
    let result = rt.block_on(listed(&tls_options(&daemon, with_stranger)));
    assert!(
        matches!(result, Err(ClientError::Tls { .. })),
        "a certificate from another CA: {result:?}"
    );

    // A certificate from the cluster CA, under any name: admitted.
    let reader = ca.node("reader-1")?;
    let mut with_reader = trusting(&ca.ca_pem());
    with_reader.identity = Some((reader.cert.clone(), reader.key.clone()));
    let uris = rt.block_on(listed(&tls_options(&daemon, with_reader)))?;
    assert_eq!(uris, [URI]);

    // And through the command line.
    let out = Cli::new([
        "list",
        "--connect",
        &daemon.client,
        "--tls-ca",
        &ca.ca_pem().display().to_string(),
        "--tls-name",
        NODE,
        "--tls-cert",
        &reader.cert.display().to_string(),
        "--tls-key",
        &reader.key.display().to_string(),
    ])
    .output(DEADLINE)?;
    assert_eq!(
        out.code, 0,
        "catalogue list with a client certificate: {}",
        out.stderr
    );
    assert!(out.stdout.contains(URI), "list output: {}", out.stdout);
    Ok(())
}

/// Whether the node closes `stream` (EOF or reset) before `deadline`.
fn closed_within(stream: &mut TcpStream, deadline: Duration) -> Result<bool> {
    stream.set_read_timeout(Some(deadline))?;
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => Ok(true),
        Ok(_) => bail!("the node sent bytes before any ClientHello"),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(true),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

#[test]
fn stalled_handshakes_are_bounded_per_address_and_in_time() -> Result<()> {
    let ca = TestCa::new("cluster-ca")?;
    let daemon = node(
        &ca,
        "on",
        &[
            ("limits.handshakes_in_progress_per_address", "2"),
            ("limits.frame_read_timeout", "2s"),
        ],
    )?;
    // Two connections that never send a ClientHello hold this address's
    // two handshakes; a third is closed at once.
    let mut first = TcpStream::connect(&daemon.client)?;
    let mut second = TcpStream::connect(&daemon.client)?;
    let opened = Instant::now();
    let mut third = TcpStream::connect(&daemon.client)?;
    assert!(
        closed_within(&mut third, Duration::from_millis(1500))?,
        "a third stalled handshake from one address was not refused"
    );
    assert!(
        !closed_within(&mut first, Duration::from_millis(200))?,
        "the first stalled handshake was closed before its deadline"
    );
    // The stalled ones end at limits.frame_read_timeout, not never.
    assert!(
        closed_within(&mut first, DEADLINE)?,
        "a stalled handshake outlived its deadline"
    );
    assert!(closed_within(&mut second, DEADLINE)?);
    let held = opened.elapsed();
    assert!(
        held >= Duration::from_millis(1500) && held < Duration::from_secs(6),
        "stalled handshakes held for {held:?}, expected about 2 s"
    );

    // Their places are free again: a real client gets through.
    let rt = runtime()?;
    rt.block_on(listed(&tls_options(&daemon, trusting(&ca.ca_pem()))))?;
    Ok(())
}
