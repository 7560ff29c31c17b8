//! `catalogue serve`: runs a node on the actix runtime until SIGINT or
//! SIGTERM.

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
        let stop = match crate::signals::stop_signal() {
            Ok(stop) => {
                async move {
                    let name = stop.await;
                    info!(signal = name, "stop requested");
                }
            }
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
