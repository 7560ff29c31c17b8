//! The deployment files: the systemd unit passes `systemd-analyze verify`
//! (with ExecStart pointing at the binary under test), and the example
//! cluster configuration passes `catalogue config check`.

use std::{path::Path, process::Command};

use anyhow::{Context, Result};
use catalogue_integration_tests::{Cli, DEADLINE, catalogue_bin};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
}

#[test]
fn the_systemd_unit_verifies() -> Result<()> {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: systemd-analyze is not installed");
        return Ok(());
    }
    let unit = std::fs::read_to_string(repo().join("deploy/catalogue.service"))?;
    let unit = unit.replace(
        "/usr/local/bin/catalogue",
        &catalogue_bin().display().to_string(),
    );
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("catalogue.service");
    std::fs::write(&path, unit)?;
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .context("systemd-analyze verify")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Warnings about the host's own units are not ours; only lines naming
    // our unit count.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("catalogue.service"))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze: {stderr}"
    );
    Ok(())
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
