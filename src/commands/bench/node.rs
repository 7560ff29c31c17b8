//! The node under test: `catalogue serve` started from this binary in a
//! temporary directory, UNIX socket only, limits raised for the workloads.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::client::{ConnectOptions, Endpoint};

/// A running node.
pub struct BenchNode {
    child: Child,
    _dir: TempDir,
    /// Its UNIX socket.
    pub socket: PathBuf,
}

impl BenchNode {
    /// Starts the node and waits until it accepts connections.
    pub fn start() -> Result<BenchNode> {
        let dir = tempfile::Builder::new()
            .prefix("catalogue-bench-")
            .tempdir()?;
        let socket = dir.path().join("bench.sock");
        let exe = std::env::current_exe().context("the catalogue binary")?;
        let mut child = Command::new(exe)
            .args([
                "--log-format",
                "json",
                "--log-level",
                "info",
                "serve",
                "--name",
                "bench",
            ])
            .arg("--set")
            .arg(format!("listen.socket={}", socket.display()))
            .arg("--set")
            .arg(format!("node.data_dir={}", dir.path().display()))
            .args([
                "--set",
                "listen.client=",
                "--set",
                "listen.peer=",
                "--set",
                "metrics.listen=",
            ])
            .args(["--set", "limits.subscriptions_per_connection=20000"])
            .args(["--set", "limits.registrations_per_connection=1000000"])
            .args(["--set", "limits.subscription_queue=65536"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting catalogue serve")?;
        // The node says "listening" once its socket accepts connections;
        // its log is read (and then discarded) on a thread so it never
        // blocks on a full pipe.
        let stderr = child.stderr.take().context("the node's stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("\"message\":\"listening\"") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                }
            }
        });
        let node = BenchNode {
            child,
            _dir: dir,
            socket,
        };
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(()) => Ok(node),
            Err(_) => bail!("the node did not start listening within 10 s"),
        }
    }

    /// How to connect.
    pub fn options(&self) -> ConnectOptions {
        ConnectOptions::new(Endpoint::Unix(self.socket.clone()))
    }

    /// Stops the node.
    pub fn stop(mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child has no memory-safety effect.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}
