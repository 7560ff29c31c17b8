//! `catalogue dev`, through the real binary: it keeps its configuration and
//! logs in `--dir` after Ctrl-C, reports a node that dies (its exit status
//! and the end of its log) instead of leaving a zombie, and a second run in
//! the same directory serves on the same ports.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use catalogue_integration_tests::{Cli, DEADLINE, RunningCli, catalogue_bin};

/// What one run printed before it settled: node name, client port, pid.
struct Started {
    dev: RunningCli,
    clients: Vec<String>,
    pids: Vec<i32>,
}

/// Starts `catalogue dev --nodes 2 --dir DIR` and reads what it prints up
/// to "logs and configuration in".
fn start(dir: &Path) -> Result<Started> {
    let dir_arg = dir.display().to_string();
    let mut dev = Cli::new(["dev", "--nodes", "2", "--dir", &dir_arg]).spawn()?;
    let (mut clients, mut pids) = (Vec::new(), Vec::new());
    loop {
        let line = dev.next_line(DEADLINE)?;
        if let Some(client) = line.split("client ").nth(1) {
            clients.push(client.split_whitespace().next().unwrap_or("").to_string());
        }
        if let Some(pid) = line.split(" pid ").nth(1) {
            pids.push(pid.split_whitespace().next().unwrap_or("").parse()?);
        }
        if line.starts_with("logs and configuration in") {
            assert!(line.contains(&dir_arg), "{line}");
            break;
        }
    }
    // The suggestion names a command that runs: the binary under test is
    // not on PATH, so its full path.
    let try_line = dev.next_line(DEADLINE)?;
    let expected = format!("try: {} subscribe", catalogue_bin().display());
    assert!(try_line.starts_with(&expected), "{try_line}");
    assert_eq!((clients.len(), pids.len()), (2, 2), "{clients:?} {pids:?}");
    Ok(Started { dev, clients, pids })
}

/// Waits until the file at `path` has a line containing `needle`.
fn wait_for_line(path: &Path, needle: &str) -> Result<()> {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle)) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{} has no line with {needle:?}", path.display())
}

#[test]
fn dev_reports_a_dead_node_keeps_its_logs_and_reuses_its_ports() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut first = start(dir.path())?;
    let log2 = dir.path().join("node-2.log");
    wait_for_line(&log2, "listening")?;

    // A node that dies is reported with its status and its last log lines.
    // SAFETY: kill(2) on a pid the command under test printed.
    unsafe { libc::kill(first.pids[1], libc::SIGKILL) };
    let report = first.dev.wait_stderr("error: node-2 exited", DEADLINE)?;
    assert!(report.contains("signal: 9"), "{report}");
    assert!(report.contains("node-2.log"), "{report}");
    // The report ends with the log's last line (the node is dead: the
    // file no longer changes).
    let log = std::fs::read_to_string(&log2)?;
    let last = log.lines().rev().find(|l| !l.trim().is_empty());
    let last = last.context("node-2 logged nothing")?.trim().to_string();
    first.dev.wait_stderr(&last, DEADLINE)?;
    // Reaped: no zombie left under the dev process.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", first.pids[1]));
    assert!(stat.is_err(), "node-2 still in the process table: {stat:?}");

    // Ctrl-C stops the cluster and keeps the directory.
    first.dev.signal(libc::SIGINT)?;
    let status = first.dev.wait(DEADLINE)?;
    assert_eq!(status.code(), Some(0));
    let log1 = std::fs::read_to_string(dir.path().join("node-1.log")).context("node-1.log")?;
    assert!(log1.contains("listening"), "{log1}");
    assert!(dir.path().join("node-1.toml").exists());

    // A second run serves on the same client ports, the old logs kept aside.
    let mut second = start(dir.path())?;
    assert_eq!(second.clients, first.clients, "ports reused");
    assert!(dir.path().join("node-1.log.1").exists());
    second.dev.signal(libc::SIGINT)?;
    assert_eq!(second.dev.wait(DEADLINE)?.code(), Some(0));
    Ok(())
}
