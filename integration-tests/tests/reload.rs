//! Reload on SIGHUP without dropping anything: a node's certificate and CA
//! bundle are rotated on disk; after SIGHUP a new peer link uses the new
//! certificate, the existing link and a client subscription keep going, and
//! a link whose peer the new bundle no longer trusts is closed.

use std::{collections::BTreeMap, path::Path, time::Duration};

use anyhow::{Result, bail};
use catalogue::client::{Client, ConnectOptions, Endpoint, Subscription, SubscriptionEvent};
use catalogue_actors::tls::{CertificateAuthority, Overwrite};
use catalogue_integration_tests::{DEADLINE, Daemon, TlsFiles, runtime};

/// Writes `ca` bundle (one or more CA certificates) and `name`'s certificate
/// issued by `issuer` into `dir`, at fixed paths.
fn write_node(
    dir: &Path,
    name: &str,
    bundle: &[&CertificateAuthority],
    issuer: &CertificateAuthority,
) -> Result<TlsFiles> {
    std::fs::create_dir_all(dir)?;
    let mut pem = Vec::new();
    for ca in bundle {
        pem.extend(ca.cert_pem()?);
    }
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, pem)?;
    let cert = issuer.issue(name, Duration::from_secs(3600))?;
    let paths = cert.write_to_dir(dir, Overwrite::Replace)?;
    Ok(TlsFiles {
        ca: ca_path,
        cert: paths.cert,
        key: paths.key,
    })
}

async fn next_added(sub: &mut Subscription) -> Result<String> {
    loop {
        match tokio::time::timeout(DEADLINE, sub.next()).await {
            Ok(Some(SubscriptionEvent::Added { service, .. })) => return Ok(service.uri),
            Ok(Some(SubscriptionEvent::SnapshotEnd { .. })) => continue,
            Ok(other) => bail!("unexpected {other:?}"),
            Err(_) => bail!("no event within {DEADLINE:?}"),
        }
    }
}

#[test]
fn sighup_rotates_certificates_without_dropping_links_or_clients() -> Result<()> {
    let old_ca = CertificateAuthority::generate("old-ca")?;
    let new_ca = CertificateAuthority::generate("new-ca")?;
    let dir = tempfile::tempdir()?;
    let a_dir = dir.path().join("a");
    let a_tls = write_node(&a_dir, "node-a", &[&old_ca], &old_ca)?;
    let mut a = Daemon::builder()
        .name("node-a")
        .tls(&a_tls)
        .peer("node-b", "")
        .peer("node-c", "")
        .start()?;
    let b_tls = write_node(&dir.path().join("b"), "node-b", &[&old_ca], &old_ca)?;
    let mut b = Daemon::builder()
        .name("node-b")
        .tls(&b_tls)
        .peer("node-a", &a.peer)
        .start()?;
    b.wait_log(DEADLINE, |l| {
        l["message"] == "initial sync done" && l["peer"] == "node-a"
    })?;

    let rt = runtime()?;
    let (client, mut sub) = rt.block_on(async {
        let client =
            Client::connect(&ConnectOptions::new(Endpoint::Unix(a.socket.clone()))).await?;
        let mut sub = client.subscribe("^tcp://r").await?;
        client.register("tcp://r:1", BTreeMap::new()).await?;
        assert_eq!(next_added(&mut sub).await?, "tcp://r:1");
        Ok::<_, anyhow::Error>((client, sub))
    })?;

    // Rotate A: new certificate from the new CA; bundle trusts both CAs.
    write_node(&a_dir, "node-a", &[&old_ca, &new_ca], &new_ca)?;
    let mark = a.mark();
    let b_mark = b.mark();
    a.signal(libc::SIGHUP)?;
    a.wait_log_from(mark, DEADLINE, |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("TLS files reloaded"))
    })?;

    // A new node that trusts only the new CA links to A: A presents the
    // new certificate.
    let c_tls = write_node(&dir.path().join("c"), "node-c", &[&new_ca], &new_ca)?;
    let mut c = Daemon::builder()
        .name("node-c")
        .tls(&c_tls)
        .peer("node-a", &a.peer)
        .start()?;
    c.wait_log(DEADLINE, |l| {
        l["message"] == "initial sync done" && l["peer"] == "node-a"
    })?;

    // The client subscription kept receiving events throughout.
    rt.block_on(async {
        client.register("tcp://r:2", BTreeMap::new()).await?;
        assert_eq!(next_added(&mut sub).await?, "tcp://r:2");
        Ok::<_, anyhow::Error>(())
    })?;
    // The existing link to B was not dropped.
    assert!(
        !b.logged()[b_mark..]
            .iter()
            .any(|l| l["message"] == "peer link down"),
        "B's link to A stayed up"
    );

    // Now drop the old CA from A's bundle: B's certificate is no longer
    // trusted and its link is closed; C's stays.
    write_node(&a_dir, "node-a", &[&new_ca], &new_ca)?;
    let mark = a.mark();
    a.signal(libc::SIGHUP)?;
    a.wait_log_from(mark, DEADLINE, |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.contains("no longer trusted"))
            && l["peer"] == "node-b"
    })?;
    let c_mark = c.mark();
    rt.block_on(async {
        client.register("tcp://r:3", BTreeMap::new()).await?;
        assert_eq!(next_added(&mut sub).await?, "tcp://r:3");
        Ok::<_, anyhow::Error>(())
    })?;
    assert!(
        !c.logged()[c_mark..]
            .iter()
            .any(|l| l["message"] == "peer link down")
    );
    Ok(())
}
