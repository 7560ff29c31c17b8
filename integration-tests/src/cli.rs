//! Running the real `catalogue` command-line client from tests: to
//! completion ([`Cli::output`]) or in the background with its output lines
//! delivered on a channel ([`Cli::spawn`]).

use std::{
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};

use crate::catalogue_bin;

/// What a finished command printed.
#[derive(Debug)]
pub struct CliOutput {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// A `catalogue` client command.
pub struct Cli {
    command: Command,
}

/// A client command running in the background.
pub struct RunningCli {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Standard error lines seen so far.
    pub stderr_seen: Vec<String>,
}

impl Cli {
    /// `catalogue ARGS...`, logging at info level in human format.
    pub fn new<I, S>(args: I) -> Cli
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = Command::new(catalogue_bin());
        command
            .args(args)
            .env_remove("CATALOGUE_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        Cli { command }
    }

    /// Sets an environment variable for the command.
    pub fn env(mut self, key: &str, value: &str) -> Cli {
        self.command.env(key, value);
        self
    }

    /// Runs as another user (the test must be root).
    pub fn as_user(mut self, uid: u32, gid: u32) -> Cli {
        self.command.uid(uid).gid(gid);
        self
    }

    /// Runs to completion, at most `deadline`.
    pub fn output(mut self, deadline: Duration) -> Result<CliOutput> {
        let mut running = self.spawn_inner()?;
        let status = running.wait(deadline)?;
        // The process has exited; its stdout reader ends at end of file.
        let mut lines = Vec::new();
        loop {
            match running.stdout.recv_timeout(deadline) {
                Ok(line) => lines.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    bail!("stdout still open after the command exited")
                }
            }
        }
        let stdout = lines.join("\n");
        running.stderr_seen.extend(running.stderr.try_iter());
        Ok(CliOutput {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr: running.stderr_seen.join("\n"),
        })
    }

    /// Starts in the background.
    pub fn spawn(mut self) -> Result<RunningCli> {
        self.spawn_inner()
    }

    fn spawn_inner(&mut self) -> Result<RunningCli> {
        let mut child = self
            .command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting catalogue")?;
        let stdout = lines(child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?);
        let stderr = lines(child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?);
        Ok(RunningCli {
            child,
            stdout,
            stderr,
            stderr_seen: Vec::new(),
        })
    }
}

fn lines<R: std::io::Read + Send + 'static>(r: R) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl RunningCli {
    /// The next standard output line, waiting at most `deadline`.
    pub fn next_line(&mut self, deadline: Duration) -> Result<String> {
        match self.stdout.recv_timeout(deadline) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => bail!(
                "no output line within {deadline:?}; stderr so far:\n{}",
                self.drain_stderr()
            ),
            Err(RecvTimeoutError::Disconnected) => {
                bail!("command ended; stderr:\n{}", self.drain_stderr())
            }
        }
    }

    /// Waits for a standard error line containing `needle`.
    pub fn wait_stderr(&mut self, needle: &str, deadline: Duration) -> Result<String> {
        if let Some(line) = self.stderr_seen.iter().find(|l| l.contains(needle)) {
            return Ok(line.clone());
        }
        let end = Instant::now() + deadline;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.stderr_seen.push(line.clone());
                    if line.contains(needle) {
                        return Ok(line);
                    }
                }
                Err(_) => bail!(
                    "no stderr line containing {needle:?} within {deadline:?}; seen:\n{}",
                    self.stderr_seen.join("\n")
                ),
            }
        }
    }

    fn drain_stderr(&mut self) -> String {
        self.stderr_seen.extend(self.stderr.try_iter());
        self.stderr_seen.join("\n")
    }

    /// How the command exited, if it has (without waiting).
    pub fn exited(&mut self) -> Result<Option<ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Sends `signal` to the command.
    pub fn signal(&self, signal: i32) -> Result<()> {
        let pid = i32::try_from(self.child.id()).context("pid")?;
        // SAFETY: kill(2) on our own child's pid has no memory-safety effect.
        if unsafe { libc::kill(pid, signal) } != 0 {
            bail!("kill: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits for the command to exit, at most `deadline`; the event is the
    /// end of its standard error.
    pub fn wait(&mut self, deadline: Duration) -> Result<ExitStatus> {
        let end = Instant::now() + deadline;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => self.stderr_seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    bail!(
                        "command still running after {deadline:?}; stderr:\n{}",
                        self.stderr_seen.join("\n")
                    )
                }
            }
        }
        Ok(self.child.wait()?)
    }
}

impl Drop for RunningCli {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
