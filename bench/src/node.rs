//! A node under test: `catalogue serve` (the binary chosen once per run by
//! [`choose_binary`]) started in its own temporary directory (data and UNIX
//! socket), with extra `--set` flags for peers, TLS or the registry. Its
//! JSON log is read on a thread; each line's message is passed on with the
//! instant it was read, so a workload can wait for "listening" or
//! "ready: ..." with a deadline instead of sleeping. Memory figures come
//! from `/proc/<pid>/status`. A node is stopped (SIGTERM, then waited for)
//! when dropped, on every path.

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;
use tokio::sync::mpsc;

use catalogue_client::{ConnectOptions, Endpoint};

/// How long a node may take to log a line a workload waits for.
pub const LOG_DEADLINE: Duration = Duration::from_secs(30);

/// The `catalogue` binary every node of this process runs, set once by
/// [`choose_binary`].
static BINARY: OnceLock<PathBuf> = OnceLock::new();

/// No `catalogue` binary to start nodes with.
#[derive(Debug, thiserror::Error)]
pub enum NodeBinaryError {
    /// The running binary's path is unknown.
    #[error("cannot find the running binary: {0}")]
    CurrentExe(#[source] std::io::Error),
    /// Neither `--catalogue` nor a `catalogue` beside the running binary.
    #[error(
        "no catalogue binary at {0} (build it: cargo build --release --bin catalogue, or pass --catalogue PATH)"
    )]
    Missing(PathBuf),
}

/// Chooses the binary the nodes run: `explicit`, else `catalogue` beside
/// the running binary (`catalogue-bench` in the same target directory).
/// The first choice of the process stands.
pub fn choose_binary(explicit: Option<&Path>) -> Result<(), NodeBinaryError> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe()
            .map_err(NodeBinaryError::CurrentExe)?
            .with_file_name("catalogue"),
    };
    if !path.is_file() {
        return Err(NodeBinaryError::Missing(path));
    }
    let _ = BINARY.set(path);
    Ok(())
}

/// A running node.
pub struct BenchNode {
    child: Child,
    dir: TempDir,
    log: mpsc::UnboundedReceiver<(String, Instant)>,
    /// When the process was spawned.
    pub spawned: Instant,
    /// When it logged that it listens.
    pub listening: Instant,
    /// Its UNIX socket.
    pub socket: PathBuf,
}

/// A free loopback port (bound and released at once; the bench lives with
/// the small chance that something takes it meanwhile).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl BenchNode {
    /// Starts node `name` with the bench limits plus `sets` (`key=value`,
    /// as `--set` takes them) and waits until it accepts connections.
    pub async fn start(name: &str, sets: &[String]) -> Result<BenchNode> {
        let dir = tempfile::Builder::new()
            .prefix("catalogue-bench-")
            .tempdir()?;
        let socket = dir.path().join(format!("{name}.sock"));
        let exe = BINARY
            .get()
            .context("no catalogue binary chosen (choose_binary)")?;
        let mut command = Command::new(exe);
        command.args([
            "--log-format",
            "json",
            "--log-level",
            "info",
            "serve",
            "--name",
            name,
        ]);
        let mut all = vec![
            format!("listen.socket={}", socket.display()),
            format!("node.data_dir={}", dir.path().display()),
            "listen.client=".into(),
            "listen.peer=".into(),
            "metrics.listen=".into(),
            "http.listen=".into(),
            "limits.subscriptions_per_connection=20000".into(),
            "limits.registrations_per_connection=1000000".into(),
            "limits.subscription_queue=65536".into(),
        ];
        all.extend(sets.iter().cloned());
        for set in &all {
            command.arg("--set").arg(set);
        }
        let spawned = Instant::now();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting catalogue serve")?;
        let stderr = child.stderr.take().context("the node's stderr")?;
        let (tx, log) = mpsc::unbounded_channel();
        // Read (and then drop) every line so the node never blocks on a
        // full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let at = Instant::now();
                if let Some(message) = message_of(&line) {
                    let _ = tx.send((message, at));
                }
            }
        });
        let mut node = BenchNode {
            child,
            dir,
            log,
            spawned,
            listening: spawned,
            socket,
        };
        node.listening = node.wait_log("listening").await?;
        Ok(node)
    }

    /// Waits (at most [`LOG_DEADLINE`]) for a log message starting with
    /// `prefix`; returns when the node wrote it. Earlier lines are skipped.
    pub async fn wait_log(&mut self, prefix: &str) -> Result<Instant> {
        let found = tokio::time::timeout(LOG_DEADLINE, async {
            while let Some((message, at)) = self.log.recv().await {
                if message.starts_with(prefix) {
                    return Some(at);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(at)) => Ok(at),
            Ok(None) => bail!("the node exited before logging {prefix:?}"),
            Err(_) => bail!("the node did not log {prefix:?} within {LOG_DEADLINE:?}"),
        }
    }

    /// How to connect.
    pub fn options(&self) -> ConnectOptions {
        ConnectOptions::new(Endpoint::Unix(self.socket.clone()))
    }

    /// Its data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size now, KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        status_kib(self.child.id(), "VmRSS:")
    }

    /// Peak resident set size, KiB.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        status_kib(self.child.id(), "VmHWM:")
    }

    /// Stops the node (SIGTERM) and waits for it; dropping it does the
    /// same.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for BenchNode {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child has no memory-safety effect.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

/// The `message` field of a JSON log line.
fn message_of(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = value.get("fields").unwrap_or(&value);
    fields
        .get("message")
        .or_else(|| value.get("message"))?
        .as_str()
        .map(str::to_string)
}

/// A `kB` field of `/proc/<pid>/status`, e.g. `VmHWM:`.
pub fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// CPU time (user + system) of process `pid`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let utime: u64 = fields.get(11).context("utime")?.parse()?;
    let stime: u64 = fields.get(12).context("stime")?.parse()?;
    Ok(utime + stime)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of
/// [`cpu_ticks`].
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_of_a_json_line() {
        let line =
            r#"{"timestamp":"t","level":"INFO","fields":{"message":"listening","node":"a"}}"#;
        assert_eq!(message_of(line).as_deref(), Some("listening"));
        assert_eq!(message_of("not json"), None);
    }

    #[test]
    fn own_status_has_a_peak() {
        assert!(status_kib(std::process::id(), "VmHWM:").is_ok_and(|k| k > 0));
    }
}
