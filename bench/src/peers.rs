//! Peered nodes for the cluster and sync workloads: a throwaway CA and one
//! certificate per node in a temporary directory (the code behind
//! `catalogue tls ca|cert`), and the `--set` flags that give a node its
//! certificate, its peer port and its neighbours.

use std::time::Duration;

use anyhow::Result;
use catalogue_actors::tls::{CertificateAuthority, Overwrite};
use tempfile::TempDir;

use super::node::{BenchNode, free_port};

/// The CA and node certificates, removed on drop.
pub struct Pki {
    dir: TempDir,
    ca: CertificateAuthority,
}

impl Pki {
    /// A new CA.
    pub fn new() -> Result<Pki> {
        let dir = tempfile::Builder::new()
            .prefix("catalogue-bench-pki-")
            .tempdir()?;
        let ca = CertificateAuthority::generate("catalogue-bench-ca")?;
        ca.write_to_dir(dir.path(), Overwrite::Refuse)?;
        Ok(Pki { dir, ca })
    }

    /// Issues a certificate for `name` (written once) and returns the
    /// `tls.*` settings pointing at it.
    fn tls_sets(&self, name: &str) -> Result<Vec<String>> {
        let dir = self.dir.path();
        if !dir.join(format!("{name}.pem")).exists() {
            self.ca
                .issue(name, Duration::from_secs(24 * 3600))?
                .write_to_dir(dir, Overwrite::Refuse)?;
        }
        let file = |f: String| dir.join(f).display().to_string();
        Ok(vec![
            format!("tls.ca={}", file("ca.pem".into())),
            format!("tls.cert={}", file(format!("{name}.pem"))),
            format!("tls.key={}", file(format!("{name}.key"))),
        ])
    }
}

/// A neighbour of a node: its name, and its peer port if this node dials
/// it (`None`: this node accepts its connection).
pub struct Neighbour<'a> {
    /// Its node name.
    pub name: &'a str,
    /// Its peer port, when this node dials.
    pub dial: Option<u16>,
}

/// Starts node `name` of cluster "bench" with TLS on peer port `port` and
/// the given neighbours, plus `extra` settings.
pub async fn start_peer(
    pki: &Pki,
    name: &str,
    port: u16,
    neighbours: &[Neighbour<'_>],
    extra: &[String],
) -> Result<BenchNode> {
    let peers: Vec<String> = neighbours
        .iter()
        .map(|n| {
            let address = n.dial.map_or(String::new(), |p| format!("127.0.0.1:{p}"));
            format!("{{ name = \"{}\", address = \"{address}\" }}", n.name)
        })
        .collect();
    let mut sets = pki.tls_sets(name)?;
    sets.push("node.cluster=bench".into());
    sets.push(format!("listen.peer=127.0.0.1:{port}"));
    sets.push(format!("peers=[{}]", peers.join(", ")));
    sets.extend(extra.iter().cloned());
    BenchNode::start(name, &sets).await
}

/// Peer ports for `n` nodes.
pub fn ports(n: usize) -> Result<Vec<u16>> {
    (0..n).map(|_| free_port()).collect()
}
