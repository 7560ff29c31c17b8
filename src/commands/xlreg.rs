//! `catalogue xlreg ...`: the cluster registry from the command line.
//! Being written (issue 6).

use clap::Subcommand;

use super::Exit;

/// `catalogue xlreg` subcommands.
#[derive(Debug, Subcommand)]
pub enum XlregAction {
    /// Print the registry's public key (PEM), creating the keys if needed.
    Pubkey {
        /// The node's data directory (node.data_dir).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<std::path::PathBuf>,
    },
}

/// Runs an xlreg subcommand.
pub fn run(action: &XlregAction) -> Exit {
    let _ = action;
    tracing::error!("not implemented yet");
    Exit::Failure
}
