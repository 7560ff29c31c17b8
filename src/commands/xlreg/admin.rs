//! `catalogue xlreg admin ...`: the registry's operator, on the hosting
//! node, over its admin socket (`<node.data_dir>/xlreg/admin.sock`; one
//! JSON line each way, docs/XLREG.md §14). Never over the network: the
//! node checks the caller's uid (SO_PEERCRED) against its own, root's and
//! `xlreg.admin_uids`.
//!
//! Exit statuses: 0 done (and synced to the registry's log); 1 the socket
//! could not be reached; 2 bad arguments or configuration; 4 the registry
//! refused.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use catalogue_actors::xlreg::server::{
    admin::{AdminMessage, AdminReply, socket_path},
    registry_dir,
};
use clap::Subcommand;

use super::{super::Exit, default_settings};

/// Time allowed for the whole exchange.
const TIMEOUT: Duration = Duration::from_secs(30);

/// `catalogue xlreg admin` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// Free a member's slot (a member whose host was lost, say): the next
    /// join takes it.
    RemoveMember {
        /// Cluster name.
        #[arg(value_name = "CLUSTER")]
        cluster: String,
        /// The member's client name (as `xlreg members` prints it) or its
        /// client ID in hex.
        #[arg(value_name = "MEMBER")]
        member: String,
    },
    /// Change a cluster's size (2 to 64, not below its highest slot held).
    SetSize {
        /// Cluster name.
        #[arg(value_name = "CLUSTER")]
        cluster: String,
        /// The new size.
        #[arg(value_name = "SIZE")]
        size: u32,
    },
}

/// Runs an admin subcommand against the registry hosted with `data_dir`
/// (default: `node.data_dir` of the configuration in `config`).
pub fn run(
    action: &AdminAction,
    data_dir: Option<&Path>,
    config: &[PathBuf],
    set: &[(String, String)],
) -> Exit {
    let dir = match data_dir {
        Some(dir) => dir.to_path_buf(),
        None => match default_settings(config, set) {
            Some(settings) => settings.node.data_dir,
            None => return Exit::Config,
        },
    };
    let message = match action {
        AdminAction::RemoveMember { cluster, member } => AdminMessage::RemoveMember {
            cluster: cluster.clone(),
            member: member.clone(),
        },
        AdminAction::SetSize { cluster, size } => AdminMessage::SetSize {
            cluster: cluster.clone(),
            size: *size,
        },
    };
    let path = socket_path(&registry_dir(&dir));
    match exchange(&path, &message) {
        Ok(AdminReply {
            ok: true, message, ..
        }) => {
            println!("{}", message.unwrap_or_default());
            Exit::Ok
        }
        Ok(reply) => {
            eprintln!(
                "error: the registry refused: {}",
                reply.error.unwrap_or_default()
            );
            Exit::Refused
        }
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            Exit::Failure
        }
    }
}

/// One request, one reply.
fn exchange(path: &Path, message: &AdminMessage) -> std::io::Result<AdminReply> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut line = serde_json::to_vec(message)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?;
    serde_json::from_str(&reply).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad reply {reply:?}: {e}"),
        )
    })
}
