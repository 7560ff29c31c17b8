//! The loopback ports of a `catalogue dev` cluster, remembered across runs
//! in `DIR/ports` (one line per node: client, peer, metrics and HTTP port),
//! so that a second run in the same directory serves at the same addresses
//! as the first: each remembered port is taken again when it is free, and
//! replaced by a fresh one when something else holds it.

use std::{net::TcpListener, path::Path};

/// Ports one node uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// listen.client
    pub client: u16,
    /// listen.peer
    pub peer: u16,
    /// metrics.listen
    pub metrics: u16,
    /// http.listen
    pub http: u16,
}

/// The file that remembers the ports, in the cluster's directory.
const FILE: &str = "ports";

/// A free loopback port (bound and released at once; a dev tool can live
/// with the small chance that something takes it meanwhile).
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `port` when it can be bound on loopback now, else a fresh free one.
fn again_or_fresh(port: Option<u16>) -> std::io::Result<u16> {
    match port {
        Some(port) if port != 0 && TcpListener::bind(("127.0.0.1", port)).is_ok() => Ok(port),
        _ => free_port(),
    }
}

/// The ports remembered in `dir`, node by node (none when the file is
/// missing or unreadable; a line that does not parse forgets that node).
fn remembered(dir: &Path) -> Vec<Option<[u16; 4]>> {
    let Ok(text) = std::fs::read_to_string(dir.join(FILE)) else {
        return Vec::new();
    };
    text.lines()
        .map(|line| {
            let ports: Vec<u16> = line
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
            <[u16; 4]>::try_from(ports).ok()
        })
        .collect()
}

/// Ports for `nodes` nodes: the ones remembered in `dir` where still free,
/// fresh ones elsewhere; written back to `dir` for the next run.
pub fn choose(dir: &Path, nodes: usize) -> std::io::Result<Vec<Ports>> {
    let before = remembered(dir);
    let mut chosen = Vec::with_capacity(nodes);
    let mut text = String::new();
    for i in 0..nodes {
        let old = before.get(i).copied().flatten();
        let pick = |k: usize| again_or_fresh(old.map(|o| o[k]));
        let ports = Ports {
            client: pick(0)?,
            peer: pick(1)?,
            metrics: pick(2)?,
            http: pick(3)?,
        };
        text.push_str(&format!(
            "{} {} {} {}\n",
            ports.client, ports.peer, ports.metrics, ports.http
        ));
        chosen.push(ports);
    }
    std::fs::write(dir.join(FILE), text)?;
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_taken_again_and_held_ones_replaced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = choose(dir.path(), 2).expect("first run");
        let second = choose(dir.path(), 2).expect("second run");
        assert_eq!(first, second, "free ports are reused");
        // Something else now holds node 1's client port.
        let _held = TcpListener::bind(("127.0.0.1", first[0].client)).expect("still free");
        let third = choose(dir.path(), 3).expect("third run");
        assert_ne!(third[0].client, first[0].client);
        assert_eq!(third[0].peer, first[0].peer);
        assert_eq!(third[1], first[1]);
        assert_eq!(
            remembered(dir.path()).len(),
            3,
            "the new node is remembered"
        );
    }
}
