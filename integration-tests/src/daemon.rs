//! A real `catalogue serve` process under test.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use tempfile::TempDir;

use crate::DEADLINE;

/// One line of the daemon's JSON log.
pub type LogLine = Value;

/// Path of the `catalogue` binary built for this test run: `CATALOGUE_BIN`
/// when set, else `target/<profile>/catalogue` next to the test executable.
pub fn catalogue_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("CATALOGUE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/catalogue
    exe.parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("catalogue"))
        .expect("target directory")
}

/// Builds a daemon: extra arguments and environment variables.
#[derive(Debug, Default)]
pub struct DaemonBuilder {
    args: Vec<String>,
    env: Vec<(String, String)>,
    socket: Option<PathBuf>,
    name: Option<String>,
    peers: Vec<(String, String)>,
    peer_listen: Option<String>,
    open_files: Option<u64>,
    http: bool,
}

impl DaemonBuilder {
    /// Adds `--set key=value`.
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.args.push("--set".into());
        self.args.push(format!("{key}={value}"));
        self
    }

    /// Serves the HTTP API on a free loopback port (off by default, so
    /// that tests do not fight over `http.listen`'s default port);
    /// [`Daemon::http`] is its address.
    pub fn http(mut self) -> Self {
        self.http = true;
        self
    }

    /// The node's name (default `node-under-test`).
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// A peer: dialed at `address`, or only accepted from when it is empty.
    pub fn peer(mut self, name: &str, address: &str) -> Self {
        self.peers.push((name.to_string(), address.to_string()));
        self
    }

    /// The peer listener's address (default `127.0.0.1:0`).
    pub fn peer_listen(mut self, address: &str) -> Self {
        self.peer_listen = Some(address.to_string());
        self
    }

    /// TLS files for peer links.
    pub fn tls(self, files: &crate::TlsFiles) -> Self {
        self.set("tls.ca", &files.ca.display().to_string())
            .set("tls.cert", &files.cert.display().to_string())
            .set("tls.key", &files.key.display().to_string())
    }

    /// Serves metrics, health and readiness over HTTP on a port of its own
    /// choosing ([`Daemon::metrics_address`] says which).
    pub fn metrics(self) -> Self {
        self.set("metrics.listen", "127.0.0.1:0")
    }

    /// Serves the xlReg registry on a port of its own choosing
    /// (`xlReg registry listening` says which, see
    /// [`Daemon::address_logged`]).
    pub fn xlreg_registry(self) -> Self {
        self.set("xlreg.serve", "true")
            .set("xlreg.listen", "127.0.0.1:0")
    }

    /// Forms cluster `cluster` of `size` nodes through the xlReg registry
    /// at `server`, whose public key is in the file `server_key`.
    pub fn xlreg_member(self, server: &str, server_key: &str, cluster: &str, size: usize) -> Self {
        self.set("xlreg.server", server)
            .set("xlreg.server_key", server_key)
            .set("xlreg.cluster.name", cluster)
            .set("xlreg.cluster.size", &size.to_string())
    }

    /// Adds a raw argument after `serve`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Listens on this UNIX socket path instead of one in its own directory
    /// (to restart a node where clients expect it).
    pub fn socket(mut self, path: &Path) -> Self {
        self.socket = Some(path.to_path_buf());
        self
    }

    /// Starts the daemon with this open-file limit, soft and hard (so it
    /// cannot raise it), to run it out of descriptors.
    pub fn open_files(mut self, limit: u64) -> Self {
        self.open_files = Some(limit);
        self
    }

    /// Sets an environment variable for the daemon.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Starts the daemon and waits until it logs `listening`.
    pub fn start(self) -> Result<Daemon> {
        let dir = tempfile::tempdir().context("temp dir")?;
        // Other users (tests that drop privileges) must reach the socket.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .context("temp dir permissions")?;
        let socket = self
            .socket
            .clone()
            .unwrap_or_else(|| dir.path().join("catalogue.sock"));
        let mut cmd = Command::new(catalogue_bin());
        cmd.arg("--log-format")
            .arg("json")
            .arg("--log-level")
            .arg("debug")
            .arg("serve")
            // Not production: tests may run nodes in debug mode.
            .arg("--set")
            .arg("node.environment=test")
            .arg("--set")
            .arg("listen.client=127.0.0.1:0")
            .arg("--set")
            .arg(format!(
                "listen.peer={}",
                self.peer_listen.as_deref().unwrap_or("127.0.0.1:0")
            ))
            .arg("--set")
            .arg(format!("listen.socket={}", socket.display()))
            .arg("--set")
            .arg(format!("node.data_dir={}", dir.path().display()))
            .arg("--set")
            .arg("metrics.listen=")
            .arg("--set")
            .arg(if self.http {
                "http.listen=127.0.0.1:0"
            } else {
                "http.listen="
            })
            .arg("--name")
            .arg(self.name.as_deref().unwrap_or("node-under-test"))
            .args(self.peers_arg())
            .args(&self.args)
            .env_remove("CATALOGUE_LOG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(limit) = self.open_files {
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            // SAFETY: setrlimit is async-signal-safe and only reads the
            // struct, which the closure owns.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", catalogue_bin().display()))?;
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let parsed = serde_json::from_str::<Value>(&line)
                    .unwrap_or_else(|_| Value::String(line.clone()));
                if tx.send(parsed).is_err() {
                    break;
                }
            }
        });
        let mut daemon = Daemon {
            child,
            log: rx,
            seen: Vec::new(),
            dir,
            socket,
            client: String::new(),
            peer: String::new(),
            http: String::new(),
        };
        let listening = daemon.wait_log(DEADLINE, |l| l["message"] == "listening")?;
        daemon.client = field(&listening, "client")?;
        daemon.peer = field(&listening, "peer")?;
        if self.http {
            let api = daemon.wait_log(DEADLINE, |l| l["message"] == "HTTP API listening")?;
            daemon.http = field(&api, "address")?;
        }
        Ok(daemon)
    }
}

impl DaemonBuilder {
    fn peers_arg(&self) -> Vec<String> {
        if self.peers.is_empty() {
            return vec![];
        }
        let entries: Vec<String> = self
            .peers
            .iter()
            .map(|(name, address)| format!("{{name = \"{name}\", address = \"{address}\"}}"))
            .collect();
        vec!["--set".into(), format!("peers=[{}]", entries.join(", "))]
    }
}

fn field(line: &Value, name: &str) -> Result<String> {
    line[name]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("log line without {name}: {line}"))
}

/// A running `catalogue serve`.
pub struct Daemon {
    child: Child,
    log: Receiver<Value>,
    seen: Vec<Value>,
    dir: TempDir,
    /// Path of its UNIX socket.
    pub socket: PathBuf,
    /// Address of its client listener.
    pub client: String,
    /// Address of its peer listener.
    pub peer: String,
    /// Address of its HTTP API, when the builder asked for one.
    pub http: String,
}

impl Daemon {
    /// A builder with no extra settings.
    pub fn builder() -> DaemonBuilder {
        DaemonBuilder::default()
    }

    /// Starts a daemon with default test settings.
    pub fn start() -> Result<Daemon> {
        Self::builder().start()
    }

    /// The daemon's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits until a log line satisfies `pred`, at most `deadline`. Lines
    /// seen while waiting are kept for [`Daemon::logged`].
    pub fn wait_log(&mut self, deadline: Duration, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        self.wait_log_from(0, deadline, pred)
    }

    /// Waits for the log line `message` and returns its `address` field
    /// (a listener on port 0 says where it is).
    pub fn address_logged(&mut self, message: &str) -> Result<String> {
        let line = self.wait_log(DEADLINE, |l| l["message"] == message)?;
        Ok(line["address"]
            .as_str()
            .with_context(|| format!("{message}: no address"))?
            .to_string())
    }

    /// The metrics endpoint's address, once it listens (see
    /// [`DaemonBuilder::metrics`]).
    pub fn metrics_address(&mut self) -> Result<String> {
        self.address_logged("metrics endpoint listening")
    }

    /// A position in the log, for [`Daemon::wait_log_from`].
    pub fn mark(&self) -> usize {
        self.seen.len()
    }

    /// Like [`Daemon::wait_log`], looking only at lines after `mark`.
    pub fn wait_log_from(
        &mut self,
        mark: usize,
        deadline: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        if let Some(line) = self.seen.iter().skip(mark).find(|l| pred(l)) {
            return Ok(line.clone());
        }
        let end = Instant::now() + deadline;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!(
                        "no matching log line within {deadline:?}; log so far:\n{}",
                        self.log_text()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    bail!("daemon log ended; log so far:\n{}", self.log_text())
                }
            }
        }
    }

    /// Reads the log for `window`, keeping every line for
    /// [`Daemon::logged`]. For a test's measurement window (how often
    /// something happens over a stretch of time), never to wait for an
    /// event: that is [`Daemon::wait_log`].
    pub fn record_for(&mut self, window: Duration) -> Result<()> {
        let end = Instant::now() + window;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            match self.log.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Timeout) => return Ok(()),
                Err(RecvTimeoutError::Disconnected) => {
                    bail!("daemon log ended; log so far:\n{}", self.log_text())
                }
            }
        }
    }

    /// Every log line received so far.
    pub fn logged(&self) -> &[Value] {
        &self.seen
    }

    fn log_text(&self) -> String {
        self.seen.iter().map(|l| format!("{l}\n")).collect()
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the daemon.
    pub fn signal(&self, signal: i32) -> Result<()> {
        let pid = i32::try_from(self.child.id()).context("pid")?;
        // SAFETY: kill(2) on our own child's pid has no memory-safety effect.
        let rc = unsafe { libc::kill(pid, signal) };
        if rc != 0 {
            bail!("kill({pid}, {signal}): {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's resident set size in KiB, from /proc.
    pub fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("no VmRSS in /proc status"))
    }

    /// CPU time (user and system) the daemon has used so far, from /proc.
    pub fn cpu_time(&self) -> Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // Fields after the command name (which may hold spaces), from
        // field 3 on: utime and stime are fields 14 and 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| -> Result<u64> {
            fields
                .get(i)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow!("no field {i} in /proc stat"))
        };
        let total = ticks(11)? + ticks(12)?;
        // SAFETY: sysconf has no preconditions.
        let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100);
        Ok(Duration::from_millis(total * 1000 / per_second.max(1)))
    }

    /// The socket path as a string, for command lines.
    pub fn socket_arg(&self) -> String {
        self.socket.display().to_string()
    }

    /// Waits for the daemon to exit, at most `deadline`. The event waited
    /// on is the end of its standard error (the pipe closes when it exits).
    pub fn wait_exit(&mut self, deadline: Duration) -> Result<ExitStatus> {
        let end = Instant::now() + deadline;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => bail!(
                    "daemon still running after {deadline:?}; log so far:\n{}",
                    self.log_text()
                ),
            }
        }
        Ok(self.child.wait()?)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
