//! The node under test: `catalogue serve` started from this binary in a
//! temporary directory, UNIX socket only, limits raised for the workloads.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::client::{Client, ConnectOptions, Endpoint};

/// A running node.
pub struct BenchNode {
    child: Child,
    _dir: TempDir,
    /// Its UNIX socket.
    pub socket: PathBuf,
}

impl BenchNode {
    /// Starts the node and waits until it accepts connections.
    pub async fn start() -> Result<BenchNode> {
        let dir = tempfile::Builder::new()
            .prefix("catalogue-bench-")
            .tempdir()?;
        let socket = dir.path().join("bench.sock");
        let exe = std::env::current_exe().context("the catalogue binary")?;
        let child = Command::new(exe)
            .args(["--log-level", "warn", "serve", "--name", "bench"])
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
            .spawn()
            .context("starting catalogue serve")?;
        let node = BenchNode {
            child,
            _dir: dir,
            socket,
        };
        // The socket appears when the node listens; connecting is the event.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Client::connect(&node.options()).await {
                Ok(_) => return Ok(node),
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => bail!("the node did not start listening: {e}"),
            }
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
