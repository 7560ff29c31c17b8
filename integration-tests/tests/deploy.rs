//! The deployment files: the systemd units (the node's, and the companion
//! that keeps a service registered) pass `systemd-analyze verify` (with
//! ExecStart pointing at the binary under test); the node's is
//! `Type=notify`, and a node started with `NOTIFY_SOCKET` sends `READY=1`
//! once it serves and `STOPPING=1` when stopped; the example cluster
//! configuration passes `catalogue config check`; the Debian package's
//! definition names files that exist (or that deploy/build-deb.sh makes)
//! and maintainer scripts that parse.

use std::{os::unix::net::UnixDatagram, path::Path, process::Command};

use anyhow::{Context, Result, ensure};
use catalogue_integration_tests::{Cli, Conn, DEADLINE, Daemon, catalogue_bin};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
}

/// Runs `systemd-analyze verify` on `unit` (a file of `deploy/`) installed
/// as `name` in a directory that also holds `extra` units; fails on any
/// complaint naming `name`. Skipped where systemd-analyze is missing.
fn verify(unit: &str, name: &str, extra: &[(&str, &str)]) -> Result<()> {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: systemd-analyze is not installed");
        return Ok(());
    }
    let text = std::fs::read_to_string(repo().join("deploy").join(unit))?;
    let text = text.replace(
        "/usr/local/bin/catalogue",
        &catalogue_bin().display().to_string(),
    );
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(name);
    std::fs::write(&path, text)?;
    for (other, body) in extra {
        std::fs::write(dir.path().join(other), body)?;
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .current_dir(dir.path())
        .output()
        .context("systemd-analyze verify")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Warnings about the host's own units are not ours; only lines naming
    // our unit count.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains(name)).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze: {stderr}"
    );
    Ok(())
}

#[test]
fn the_systemd_unit_verifies() -> Result<()> {
    verify("catalogue.service", "catalogue.service", &[])
}

#[test]
fn the_companion_register_unit_verifies() -> Result<()> {
    // An instance announcing a stand-in for the service it is bound to.
    verify(
        "catalogue-register@.service",
        "catalogue-register@example.service",
        &[("example.service", "[Service]\nExecStart=/bin/true\n")],
    )
}

#[test]
fn the_example_cluster_configuration_is_valid() -> Result<()> {
    // `config check` reads the certificate files the examples name under
    // /etc/catalogue: stand-ins in a temp dir take their place.
    let dir = tempfile::tempdir()?;
    let stand_in = dir.path().join("stand-in.pem");
    std::fs::write(&stand_in, "not parsed by config check\n")?;
    let stand_in = stand_in.display().to_string();
    for node in ["a", "b", "c"] {
        let file = repo().join(format!("config/examples/node-{node}.toml"));
        let mut args = vec![
            "config".to_string(),
            "check".to_string(),
            "--config".to_string(),
            file.display().to_string(),
        ];
        for key in ["tls.ca", "tls.cert", "tls.key"] {
            args.push("--set".to_string());
            args.push(format!("{key}={stand_in}"));
        }
        let out = Cli::new(&args).output(DEADLINE)?;
        assert_eq!(out.code, 0, "node-{node}: {}", out.stderr);
    }
    Ok(())
}

/// The next datagram on `socket`, as text (waits at most `DEADLINE`).
fn next_notification(socket: &UnixDatagram) -> Result<String> {
    let mut buf = [0u8; 512];
    let n = socket
        .recv(&mut buf)
        .context("no notification before the deadline")?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn the_node_tells_systemd_when_it_is_ready_and_when_it_stops() -> Result<()> {
    let unit = std::fs::read_to_string(repo().join("deploy/catalogue.service"))?;
    ensure!(
        unit.lines().any(|l| l == "Type=notify"),
        "the unit is not Type=notify"
    );
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("notify.sock");
    let manager = UnixDatagram::bind(&path)?;
    manager.set_read_timeout(Some(DEADLINE))?;
    let path = path.to_str().context("utf-8 path")?;
    let mut daemon = Daemon::builder().env("NOTIFY_SOCKET", path).start()?;
    assert_eq!(next_notification(&manager)?, "READY=1");
    // Ready means serving: the UNIX socket answers at once.
    let mut conn = Conn::unix(&daemon.socket)?;
    let welcome = conn.recv_within(DEADLINE)?;
    assert!(welcome.is_some(), "no Welcome from a ready node");
    daemon.signal(libc::SIGTERM)?;
    assert_eq!(next_notification(&manager)?, "STOPPING=1");
    let status = daemon.wait_exit(DEADLINE)?;
    assert_eq!(status.code(), Some(0));
    Ok(())
}

#[test]
fn the_debian_package_definition_is_complete() -> Result<()> {
    // Every asset of [package.metadata.deb] that is not generated by
    // deploy/build-deb.sh (under target/) exists, so `cargo deb` does not
    // fail late in CI on a moved doc; the maintainer scripts parse as sh.
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(repo().join("Cargo.toml"))?)?;
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets = deb["assets"].as_array().context("assets")?;
    ensure!(assets.len() >= 10, "assets: {assets:?}");
    for asset in assets {
        let source = asset[0].as_str().context("asset source")?;
        if source.starts_with("target/") {
            continue;
        }
        let matches = if let Some(dir) = source.strip_suffix("/*") {
            repo().join(dir).read_dir()?.next().is_some()
        } else {
            repo().join(source).is_file()
        };
        ensure!(matches, "asset {source} is missing");
    }
    let build = std::fs::read_to_string(repo().join("deploy/build-deb.sh"))?;
    for generated in assets
        .iter()
        .filter_map(|a| a[0].as_str())
        .filter_map(|s| s.strip_prefix("target/deb-assets/"))
    {
        let name = generated.trim_end_matches(".gz");
        ensure!(
            build.contains(name),
            "deploy/build-deb.sh does not make {generated}"
        );
    }
    for script in ["postinst", "postrm", "prerm"] {
        let status = Command::new("sh")
            .arg("-n")
            .arg(repo().join("deploy/debian").join(script))
            .status()?;
        ensure!(status.success(), "{script} does not parse");
    }
    Ok(())
}
