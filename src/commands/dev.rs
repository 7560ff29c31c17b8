//! `catalogue dev --nodes N`: a throwaway local cluster for trying things
//! out, like `consul agent -dev`. It makes a CA and one certificate per
//! node in a temporary directory, writes one configuration file per node
//! (full mesh over TLS on loopback, node i dialing the nodes before it so
//! no two nodes dial each other), starts `catalogue serve` for each, prints
//! where everything is, and stops them all on Ctrl-C.

use std::{
    fmt::Write as _,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use catalogue_actors::tls::{CertificateAuthority, Overwrite};
use tracing::{error, info, warn};

use super::{Exit, client};

/// Ports one node uses.
struct Ports {
    client: u16,
    peer: u16,
    metrics: u16,
    http: u16,
}

/// A free loopback port (bound and released at once; a dev tool can live
/// with the small chance that something takes it meanwhile).
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn node_name(i: usize) -> String {
    format!("node-{i}")
}

/// The configuration file of node `i`.
fn config(dir: &Path, i: usize, ports: &[Ports]) -> String {
    let name = node_name(i);
    let p = &ports[i - 1];
    let mut text = String::new();
    let _ = writeln!(text, "# catalogue dev: node {i} of {}", ports.len());
    text.push_str("peers = [\n");
    for (j, other) in ports.iter().enumerate() {
        let j = j + 1;
        if j == i {
            continue;
        }
        // Node i dials the nodes before it and accepts the ones after it.
        let address = if j < i {
            format!("127.0.0.1:{}", other.peer)
        } else {
            String::new()
        };
        let _ = writeln!(
            text,
            "  {{ name = \"{}\", address = \"{address}\" }},",
            node_name(j)
        );
    }
    text.push_str("]\n\n");
    let _ = writeln!(
        text,
        "[node]\nname = \"{name}\"\ncluster = \"dev\"\nenvironment = \"dev\"\ndata_dir = \"{}\"\n",
        dir.join(&name).display()
    );
    let _ = writeln!(
        text,
        "[listen]\nclient = \"127.0.0.1:{}\"\nsocket = \"{}\"\npeer = \"127.0.0.1:{}\"\n",
        p.client,
        dir.join(format!("{name}.sock")).display(),
        p.peer
    );
    let _ = writeln!(
        text,
        "[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
        dir.join("ca.pem").display(),
        dir.join(format!("{name}.pem")).display(),
        dir.join(format!("{name}.key")).display()
    );
    let _ = writeln!(text, "[metrics]\nlisten = \"127.0.0.1:{}\"", p.metrics);
    let _ = writeln!(text, "[http]\nlisten = \"127.0.0.1:{}\"", p.http);
    text
}

fn prepare(dir: &Path, nodes: usize) -> anyhow::Result<Vec<PathBuf>> {
    let ca = CertificateAuthority::generate("catalogue-dev-ca")?;
    ca.write_to_dir(dir, Overwrite::Refuse)?;
    let mut ports = Vec::new();
    for _ in 0..nodes {
        ports.push(Ports {
            client: free_port()?,
            peer: free_port()?,
            metrics: free_port()?,
            http: free_port()?,
        });
    }
    let mut files = Vec::new();
    for i in 1..=nodes {
        let cert = ca.issue(&node_name(i), Duration::from_secs(7 * 24 * 3600))?;
        cert.write_to_dir(dir, Overwrite::Refuse)?;
        std::fs::create_dir_all(dir.join(node_name(i)))?;
        let file = dir.join(format!("{}.toml", node_name(i)));
        std::fs::write(&file, config(dir, i, &ports))?;
        let p = &ports[i - 1];
        println!(
            "{:<8} socket {}  client 127.0.0.1:{}  peer 127.0.0.1:{}  metrics http://127.0.0.1:{}/metrics  api http://127.0.0.1:{}/v1/services",
            node_name(i),
            dir.join(format!("{}.sock", node_name(i))).display(),
            p.client,
            p.peer,
            p.metrics,
            p.http
        );
        files.push(file);
    }
    Ok(files)
}

fn stop_all(children: &mut [Child]) {
    for child in children.iter() {
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill(2) on our own children has no memory-safety effect.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
    for child in children.iter_mut() {
        let _ = child.wait();
    }
}

/// Runs the command.
pub fn run(nodes: usize) -> Exit {
    if !(1..=16).contains(&nodes) {
        error!("--nodes must be between 1 and 16");
        return Exit::Config;
    }
    let dir = match tempfile::Builder::new().prefix("catalogue-dev-").tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            error!("cannot create a temporary directory: {e}");
            return Exit::Failure;
        }
    };
    let files = match prepare(dir.path(), nodes) {
        Ok(files) => files,
        Err(e) => {
            error!("cannot prepare the cluster: {e:#}");
            return Exit::Failure;
        }
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            error!("cannot find the catalogue binary: {e}");
            return Exit::Failure;
        }
    };
    let mut children = Vec::new();
    for file in &files {
        let log = match std::fs::File::create(file.with_extension("log")) {
            Ok(log) => log,
            Err(e) => {
                error!("cannot create a log file: {e}");
                stop_all(&mut children);
                return Exit::Failure;
            }
        };
        match Command::new(&exe)
            .arg("serve")
            .arg("--config")
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
        {
            Ok(child) => children.push(child),
            Err(e) => {
                error!("cannot start a node: {e}");
                stop_all(&mut children);
                return Exit::Failure;
            }
        }
    }
    println!("logs and configuration in {}", dir.path().display());
    println!(
        "try: catalogue subscribe '.*' --socket {}",
        dir.path().join("node-1.sock").display()
    );
    info!(nodes, "local cluster running; Ctrl-C stops it");
    let exit = client::block_on(async {
        client::interrupted().await;
        Exit::Ok
    });
    warn!("stopping the local cluster");
    stop_all(&mut children);
    exit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pair_is_dialed_by_exactly_one_node() {
        let ports: Vec<Ports> = (0..3)
            .map(|i| Ports {
                client: 1000 + i,
                peer: 2000 + i,
                metrics: 3000 + i,
                http: 4000 + i,
            })
            .collect();
        let dir = Path::new("/tmp/x");
        let n2: toml::Table = toml::from_str(&config(dir, 2, &ports)).expect("valid TOML");
        let peers = n2["peers"].as_array().expect("peers");
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[0]["name"].as_str(), Some("node-1"));
        assert_eq!(
            peers[0]["address"].as_str(),
            Some("127.0.0.1:2000"),
            "dials the node before it"
        );
        assert_eq!(
            peers[1]["address"].as_str(),
            Some(""),
            "accepts the node after it"
        );
        assert_eq!(n2["listen"]["peer"].as_str(), Some("127.0.0.1:2001"));
    }
}
