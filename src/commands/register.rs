//! `catalogue register URI`: registers a service and holds the connection
//! open, so the service lives exactly as long as this command.

use std::collections::BTreeMap;

use tracing::{error, info};

use super::{Exit, client};
use crate::{cli::ClientArgs, client::Client};

/// Runs the command.
pub fn run(uri: &str, attrs: &[(String, String)], args: &ClientArgs) -> Exit {
    let attrs: BTreeMap<String, String> = attrs.iter().cloned().collect();
    let options = client::options(args);
    client::block_on(async move {
        let interrupted = client::interrupted();
        let conn = match Client::connect(&options).await {
            Ok(c) => c,
            Err(e) => return client::fail(&e),
        };
        if let Err(e) = conn.register(uri, attrs).await {
            return client::fail(&e);
        }
        info!(uri, node = %conn.welcome().server_name, "registered; Ctrl-C to unregister");
        tokio::select! {
            () = interrupted => {
                match conn.unregister(uri).await {
                    Ok(()) => {
                        info!(uri, "unregistered");
                        Exit::Ok
                    }
                    Err(e) => client::fail(&e),
                }
            }
            reason = conn.closed() => {
                error!("the node ended the connection ({reason}); the service is no longer registered");
                Exit::Failure
            }
        }
    })
}
