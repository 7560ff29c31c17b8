//! What the client subcommands share: finding the node, connecting, and
//! turning client errors into exit statuses.

use std::path::PathBuf;

use tracing::{error, warn};

use super::Exit;
use crate::{
    cli::ClientArgs,
    client::{ClientError, ConnectOptions, Endpoint},
    config_layers::Layers,
};

/// The UNIX socket used when no configuration names one.
const FALLBACK_SOCKET: &str = "/run/catalogue/catalogue.sock";

/// Where to connect, from the flags or the configuration.
pub fn options(args: &ClientArgs) -> ConnectOptions {
    let endpoint = if let Some(addr) = &args.connect {
        Endpoint::Tcp(addr.clone())
    } else if let Some(path) = &args.socket {
        Endpoint::Unix(path.clone())
    } else {
        match Layers::from_process(args.config.clone(), vec![]).load() {
            Ok(loaded) if !loaded.settings.listen.socket.is_empty() => {
                Endpoint::Unix(PathBuf::from(&loaded.settings.listen.socket))
            }
            Ok(loaded) => Endpoint::Tcp(loaded.settings.listen.client.clone()),
            Err(e) => {
                warn!(error = %e, "cannot load the configuration; using {FALLBACK_SOCKET}");
                Endpoint::Unix(PathBuf::from(FALLBACK_SOCKET))
            }
        }
    };
    let mut options = ConnectOptions::new(endpoint);
    options.expect_environment = args.expect_environment.clone();
    options.trusted_uids = args.trust_uid.clone();
    options
}

/// Logs `e` and returns the exit status it deserves.
pub fn fail(e: &ClientError) -> Exit {
    error!("{e}");
    match e {
        ClientError::EnvironmentMismatch { .. } => Exit::EnvironmentMismatch,
        ClientError::Server { .. } => Exit::Refused,
        _ => Exit::Failure,
    }
}

/// Runs a client command's future on a current-thread runtime.
pub fn block_on(command: impl std::future::Future<Output = Exit>) -> Exit {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(command),
        Err(e) => {
            error!("cannot start the runtime: {e}");
            Exit::Failure
        }
    }
}

/// Installs the stop-signal handlers now; the future resolves on SIGINT or
/// SIGTERM. Without handlers (should not happen) it never resolves.
pub fn interrupted() -> impl std::future::Future<Output = ()> {
    let stop = crate::signals::stop_signal();
    async move {
        match stop {
            Ok(stop) => {
                stop.await;
            }
            Err(e) => {
                warn!("cannot install signal handlers: {e}");
                std::future::pending::<()>().await;
            }
        }
    }
}
