//! `catalogue serve`: runs a node on the actix runtime until SIGINT or
//! SIGTERM.

use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info};

use super::{Exit, load_settings};
use crate::cli::SettingsArgs;

/// Loads the settings and runs the node until a stop signal.
pub fn run(args: &SettingsArgs) -> Exit {
    let loaded = match load_settings(args) {
        Ok(loaded) => loaded,
        Err(exit) => return exit,
    };
    let system = actix_rt::System::new();
    system.block_on(async move {
        let stop = match stop_signal() {
            Ok(stop) => stop,
            Err(e) => {
                error!(error = %e, "cannot install signal handlers");
                return Exit::Failure;
            }
        };
        match catalogue_actors::node::run(loaded.settings, stop).await {
            Ok(()) => Exit::Ok,
            Err(e) => {
                error!(error = %e, "node failed");
                Exit::Failure
            }
        }
    })
}

/// A future that resolves on the first SIGINT or SIGTERM.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        info!(signal = name, "stop requested");
    })
}
