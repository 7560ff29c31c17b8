//! The node processes of a `catalogue dev` cluster: each runs `catalogue
//! serve` with its standard error in `DIR/node-N.log`. A node that exits
//! while the cluster runs is reaped (no zombie) and reported with its exit
//! status and the last lines of its log; Ctrl-C stops the rest with
//! SIGTERM. The logs stay in the directory after the cluster stops.

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
};

/// How many log lines a report of an exited node shows.
const LAST_LINES: usize = 10;

/// One running node.
pub struct Node {
    /// node-N
    pub name: String,
    /// Its process.
    child: Child,
    /// Its standard error.
    pub log: PathBuf,
}

impl Node {
    /// Starts `exe serve --config config`, logging to `log` (a previous
    /// run's log is kept as `log.1`).
    pub fn start(exe: &Path, name: &str, config: &Path, log: &Path) -> std::io::Result<Node> {
        if log.exists() {
            std::fs::rename(log, log.with_extension("log.1"))?;
        }
        let file = std::fs::File::create(log)?;
        let child = Command::new(exe)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()?;
        Ok(Node {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status if it has exited (reaping it).
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

/// Removes the nodes that have exited from `nodes`, printing for each one
/// `error:` with its status and the end of its log on standard error.
/// Returns how many exited.
pub fn reap_exited(nodes: &mut Vec<Node>) -> usize {
    let mut gone = 0;
    nodes.retain_mut(|node| match node.exited() {
        None => true,
        Some(status) => {
            gone += 1;
            eprintln!(
                "error: {} exited ({status}); the last lines of {}:",
                node.name,
                node.log.display()
            );
            for line in last_lines(&node.log, LAST_LINES) {
                eprintln!("  {line}");
            }
            false
        }
    });
    gone
}

/// Stops every node: SIGTERM, then waits for each.
pub fn stop_all(nodes: &mut [Node]) {
    for node in nodes.iter() {
        if let Ok(pid) = i32::try_from(node.pid()) {
            // SAFETY: kill(2) on our own children has no memory-safety effect.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
    for node in nodes.iter_mut() {
        let _ = node.child.wait();
    }
}

/// The last `n` lines of the file at `path` (none if it cannot be read).
fn last_lines(path: &Path, n: usize) -> Vec<String> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let mut last = VecDeque::with_capacity(n);
    for line in BufReader::new(file).lines().map_while(Result::ok) {
        if last.len() == n {
            last.pop_front();
        }
        last.push_back(line);
    }
    last.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_keeps_the_end() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("x.log");
        let text: String = (1..=25).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).expect("write");
        let last = last_lines(&path, 10);
        assert_eq!(last.len(), 10);
        assert_eq!(last[0], "line 16");
        assert_eq!(last[9], "line 25");
        assert!(last_lines(&dir.path().join("missing"), 10).is_empty());
    }
}
