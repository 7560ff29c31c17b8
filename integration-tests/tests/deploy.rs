//! The deployment files: the systemd units (the node's, and the companion
//! that keeps a service registered) pass `systemd-analyze verify` (with
//! ExecStart pointing at the binary under test), and the example cluster
//! configuration passes `catalogue config check`.

use std::{path::Path, process::Command};

use anyhow::{Context, Result};
use catalogue_integration_tests::{Cli, DEADLINE, catalogue_bin};

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
    for node in ["a", "b", "c"] {
        let file = repo().join(format!("config/examples/node-{node}.toml"));
        let out = Cli::new(["config", "check", "--config", &file.display().to_string()])
            .output(DEADLINE)?;
        assert_eq!(out.code, 0, "node-{node}: {}", out.stderr);
    }
    Ok(())
}
