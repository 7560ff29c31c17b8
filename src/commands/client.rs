//! What the client subcommands share: finding the node, connecting, and
//! turning client errors into exit statuses.

use std::path::PathBuf;

use tracing::warn;

use catalogue_proto::catalogue::ErrorCode;

use super::Exit;
use crate::{
    cli::ClientArgs,
    client::{ClientError, ConnectOptions, Endpoint, TlsOptions},
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
        match Layers::from_process(args.config.clone(), args.set.clone()).load() {
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
    if let Some(ca) = &args.tls_ca {
        if matches!(options.endpoint, Endpoint::Unix(_)) {
            warn!("--tls-ca is for a TCP endpoint (--connect); the UNIX socket needs no TLS");
        } else {
            options.tls = Some(TlsOptions {
                ca: ca.clone(),
                server_name: args.tls_name.clone(),
                identity: args.tls_cert.clone().zip(args.tls_key.clone()),
            });
        }
    }
    options
}

/// Prints `e` as `error: ...` with a hint where one helps, and returns
/// the exit status it deserves.
pub fn fail(e: &ClientError) -> Exit {
    eprintln!("error: {e}");
    if let Some(hint) = hint(e) {
        eprintln!("hint: {hint}");
    }
    match e {
        ClientError::EnvironmentMismatch { .. } => Exit::EnvironmentMismatch,
        ClientError::Server { .. } => Exit::Refused,
        _ => Exit::Failure,
    }
}

/// What to try after `e`, if we can say.
fn hint(e: &ClientError) -> Option<&'static str> {
    match e {
        ClientError::Connect { reason, .. } if reason.contains("No such file") => Some(
            "is the node running? Its socket is listen.socket of its configuration: pass \
             --socket PATH (or set CATALOGUE_SOCKET), or --config FILE",
        ),
        ClientError::Connect { reason, .. } if reason.contains("refused") => Some(
            "nothing listens there: is the node running, and is this its listen.client \
             address (or its socket)?",
        ),
        ClientError::Connect { reason, .. } if reason.contains("ermission denied") => Some(
            "the socket's permissions do not let this user in: ask the node's operator, or \
             run as a user in register.allowed_uids / allowed_gids",
        ),
        ClientError::Server {
            code: ErrorCode::AuthFailed,
            ..
        } => Some(
            "the node lets only the uids in register.allowed_uids (and gids in \
             register.allowed_gids) register services",
        ),
        ClientError::WrongEndpoint { .. } => Some(
            "clients use the node's UNIX socket (listen.socket) or its client port \
             (listen.client, 7480 by default)",
        ),
        ClientError::EnvironmentMismatch { .. } => {
            Some("--expect-environment names another environment than the node's node.environment")
        }
        _ => None,
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
            eprintln!("error: cannot start the runtime: {e}");
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
