//! `catalogue serve`: runs a node on the actix runtime until SIGINT or
//! SIGTERM. SIGHUP re-reads the layered configuration and hands it to the
//! running node (see `catalogue_actors::reload`); an invalid configuration
//! is reported and the running one kept.
//!
//! Before the node starts, the directory of `listen.socket` (mode 0755) and
//! `node.data_dir` (mode 0700) are created when missing and creatable. A
//! failed start prints one `error: ...` line with a hint and exits with
//! [`Exit::Failure`] (docs/OPERATIONS.md, "Exit codes").

use std::{io::ErrorKind, os::unix::fs::DirBuilderExt, path::Path};

use catalogue_actors::{listen::ListenError, node::NodeError, settings::Settings};
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

/// Creates `dir` and its missing parents with `mode` when it is missing;
/// a failure is left to the step that needs the directory, which says why.
fn create_dir(dir: &Path, mode: u32) {
    if dir.as_os_str().is_empty() || dir.exists() {
        return;
    }
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
    {
        Ok(()) => info!(directory = %dir.display(), mode = format!("{mode:o}"), "created"),
        Err(e) => warn!(directory = %dir.display(), error = %e, "cannot create"),
    }
}

/// What to do about a failed start.
fn hint(e: &NodeError) -> &'static str {
    let in_use = |source: &std::io::Error| source.kind() == ErrorKind::AddrInUse;
    match e {
        NodeError::Metrics { source, .. } if in_use(source) => {
            "another process listens there (see `ss -ltnp`): stop it, or set metrics.listen to a free address or to \"\" to turn the endpoint off"
        }
        NodeError::Metrics { .. } => {
            "set metrics.listen to an address of this host, or to \"\" to turn the endpoint off"
        }
        NodeError::Listen(ListenError::Tcp { source, .. }) if in_use(source) => {
            "another process listens there (see `ss -ltnp`; another catalogue node?): stop it, or change listen.client or listen.peer"
        }
        NodeError::Listen(ListenError::Tcp { .. }) => {
            "set listen.client and listen.peer to addresses of this host (ip:port)"
        }
        NodeError::Listen(ListenError::Unix { .. }) => {
            "run as a user that may create the socket and its directory (the systemd unit runs as user catalogue), or set listen.socket to a path you can write"
        }
        NodeError::Tls(_) => {
            "check tls.ca, tls.cert and tls.key (`catalogue tls` makes them) and that the node's user may read them"
        }
        NodeError::Xlreg(_) => "check the xlreg.* settings (`catalogue config check`)",
        NodeError::Http { source, .. } if in_use(source) => {
            "another process listens there (see `ss -ltnp`): stop it, or set http.listen to a free address or to \"\" to turn the API off"
        }
        NodeError::Reader(_) => {
            "the system refused a new thread: check the node's limits on processes and memory (ulimit -u, systemd TasksMax)"
        }
        NodeError::Http { .. } => {
            "set http.listen to an address of this host and http.socket to a path the node's user may create, or \"\" to turn them off"
        }
    }
}

/// Loads the settings and runs the node until a stop signal.
pub fn run(args: &SettingsArgs, log: &LogControl) -> Exit {
    let loaded = match load_settings(args) {
        Ok(loaded) => loaded,
        Err(exit) => return exit,
    };
    apply_log_level(&loaded.settings, log);
    for socket in [&loaded.settings.listen.socket, &loaded.settings.http.socket] {
        if let Some(dir) = Path::new(socket.as_str()).parent() {
            if !socket.is_empty() {
                create_dir(dir, 0o755);
            }
        }
    }
    create_dir(&loaded.settings.node.data_dir, 0o700);
    let system = actix_rt::System::new();
    let exit = system.block_on(async move {
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
                    eprintln!("error: {e}; hint: {}", hint(&e));
                    Exit::Failure
                }
            },
            () = reloading => Exit::Failure,
        }
    });
    if exit != Exit::Ok {
        // Actors started by a failed start may never have run: dropping the
        // runtime would run their `started` outside it and panic. The
        // process ends now; the OS frees what they hold.
        std::mem::forget(system);
    }
    exit
}
