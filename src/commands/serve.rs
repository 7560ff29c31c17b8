//! `catalogue serve`: runs a node on the actix runtime until SIGINT or
//! SIGTERM. SIGHUP re-reads the layered configuration and hands it to the
//! running node (see `catalogue_actors::reload`); an invalid configuration
//! is reported and the running one kept.

use catalogue_actors::settings::Settings;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};
use tracing::{error, info, warn};

use super::{Exit, load_settings};
use crate::{cli::SettingsArgs, config_layers::Layers, logging::LogControl};

/// Applies `log.level` unless the command line set the filter.
fn apply_log_level(settings: &Settings, log: &LogControl) {
    if log.from_command_line || settings.log.level.is_empty() {
        return;
    }
    if let Err(e) = log.set_filter(&settings.log.level) {
        error!("log.level: {e}; keeping the current filter");
    }
}

/// Loads the settings and runs the node until a stop signal.
pub fn run(args: &SettingsArgs, log: &LogControl) -> Exit {
    let loaded = match load_settings(args) {
        Ok(loaded) => loaded,
        Err(exit) => return exit,
    };
    apply_log_level(&loaded.settings, log);
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
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(h) => h,
            Err(e) => {
                error!(error = %e, "cannot install the SIGHUP handler");
                return Exit::Failure;
            }
        };
        let (reload_tx, reload_rx) = mpsc::unbounded_channel();
        let args = args.clone();
        let reloading = async move {
            while hangups.recv().await.is_some() {
                info!("SIGHUP: reloading the configuration");
                match Layers::from_process(args.config.clone(), args.overrides()).load() {
                    Ok(loaded) => {
                        apply_log_level(&loaded.settings, log);
                        if reload_tx.send(loaded.settings).is_err() {
                            break;
                        }
                    }
                    Err(e) => warn!("reload refused, keeping the running configuration: {e}"),
                }
            }
        };
        let node = catalogue_actors::node::run(loaded.settings, stop, reload_rx);
        tokio::select! {
            result = node => match result {
                Ok(()) => Exit::Ok,
                Err(e) => {
                    error!(error = %e, "node failed");
                    Exit::Failure
                }
            },
            () = reloading => Exit::Failure,
        }
    })
}
