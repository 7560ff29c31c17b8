//! `catalogue dev --nodes N`: a local cluster for trying things out, like
//! `consul agent -dev`. In its directory (`--dir`, by default
//! `$XDG_STATE_HOME/catalogue/dev` or `~/.local/state/catalogue/dev`) it
//! makes a fresh CA and one certificate per node, writes one configuration
//! file per node (full mesh over TLS on loopback, node i dialing the nodes
//! before it so no two nodes dial each other) on the ports of the previous
//! run where they are free ([`ports`]), starts `catalogue serve` for each
//! ([`nodes`]), prints where everything is, reports a node that exits, and
//! stops them all on Ctrl-C. Logs, configuration and data stay in the
//! directory.

mod nodes;
mod ports;

use std::{
    fmt::Write as _,
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
    time::Duration,
};

use catalogue_actors::tls::{CertificateAuthority, Overwrite};
use tracing::{info, warn};

use super::{Exit, client};
use nodes::Node;
use ports::Ports;

/// How often the running nodes are checked for an exit.
const CHECK_EVERY: Duration = Duration::from_millis(200);

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

/// The directory of the cluster: `--dir`, else under the user's state
/// directory.
fn default_dir() -> Option<PathBuf> {
    let state = match std::env::var_os("XDG_STATE_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".local/state"),
    };
    Some(state.join("catalogue/dev"))
}

fn prepare(dir: &Path, nodes: usize) -> anyhow::Result<Vec<PathBuf>> {
    let ca = CertificateAuthority::generate("catalogue-dev-ca")?;
    ca.write_to_dir(dir, Overwrite::Replace)?;
    let ports = ports::choose(dir, nodes)?;
    let mut files = Vec::new();
    for i in 1..=nodes {
        let cert = ca.issue(&node_name(i), Duration::from_secs(7 * 24 * 3600))?;
        cert.write_to_dir(dir, Overwrite::Replace)?;
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

/// How to call this binary in a suggestion: `catalogue` when that name on
/// `PATH` is this binary, else its full path (e.g. under `target/debug`
/// after `cargo run -- dev`).
fn command_name(exe: &Path) -> String {
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::canonicalize(dir.join("catalogue"))
                .is_ok_and(|found| std::fs::canonicalize(exe).is_ok_and(|me| me == found))
        })
    });
    if on_path {
        "catalogue".into()
    } else {
        exe.display().to_string()
    }
}

/// Runs the command.
pub fn run(nodes: usize, dir: Option<&Path>) -> Exit {
    if !(1..=16).contains(&nodes) {
        eprintln!("error: --nodes must be between 1 and 16");
        return Exit::Config;
    }
    let Some(dir) = dir.map(Path::to_path_buf).or_else(default_dir) else {
        eprintln!("error: no HOME to keep the cluster in; hint: pass --dir DIR");
        return Exit::Config;
    };
    if let Err(e) = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
    {
        eprintln!(
            "error: cannot create {}: {e}; hint: pass --dir DIR",
            dir.display()
        );
        return Exit::Failure;
    }
    let files = match prepare(&dir, nodes) {
        Ok(files) => files,
        Err(e) => {
            eprintln!(
                "error: cannot prepare the cluster in {}: {e:#}",
                dir.display()
            );
            return Exit::Failure;
        }
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("error: cannot find the catalogue binary: {e}");
            return Exit::Failure;
        }
    };
    // The stop-signal handlers go in before anything is started or
    // printed, so a Ctrl-C right after the addresses appear stops the
    // nodes instead of killing this process and orphaning them.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return Exit::Failure;
        }
    };
    let interrupted = {
        let _in_runtime = runtime.enter();
        client::interrupted()
    };
    let mut running = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let name = node_name(i + 1);
        match Node::start(&exe, &name, file, &file.with_extension("log")) {
            Ok(node) => {
                println!("{name:<8} pid {}  log {}", node.pid(), node.log.display());
                running.push(node);
            }
            Err(e) => {
                eprintln!("error: cannot start {name}: {e}");
                nodes::stop_all(&mut running);
                return Exit::Failure;
            }
        }
    }
    println!(
        "logs and configuration in {} (kept after Ctrl-C)",
        dir.display()
    );
    println!(
        "try: {} subscribe '.*' --socket {}",
        command_name(&exe),
        dir.join("node-1.sock").display()
    );
    info!(nodes, "local cluster running; Ctrl-C stops it");
    let exit = runtime.block_on(async {
        tokio::pin!(interrupted);
        let mut check = tokio::time::interval(CHECK_EVERY);
        loop {
            tokio::select! {
                () = &mut interrupted => return Exit::Ok,
                _ = check.tick() => {
                    nodes::reap_exited(&mut running);
                    if running.is_empty() {
                        eprintln!("error: every node has exited");
                        return Exit::Failure;
                    }
                }
            }
        }
    });
    if !running.is_empty() {
        warn!("stopping the local cluster");
        nodes::stop_all(&mut running);
    }
    println!("logs kept in {}", dir.display());
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
