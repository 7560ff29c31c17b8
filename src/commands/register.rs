//! `catalogue register URI`: registers a service and keeps it registered
//! while the command runs. When the node goes away (a restart, an upgrade)
//! it connects again and registers the service again, so the service is
//! gone only for about as long as the node's restart; Ctrl-C (or SIGTERM)
//! unregisters it and exits. It gives up only on what retrying cannot mend
//! (the node refuses the registration, another environment, an untrusted
//! socket).

use std::collections::BTreeMap;

use tracing::{info, warn};

use super::{Exit, client};
use crate::{
    cli::ClientArgs,
    client::{KeeperEvent, keep_registered},
};

/// Runs the command.
pub fn run(uri: &str, attrs: &[(String, String)], args: &ClientArgs) -> Exit {
    let attrs: BTreeMap<String, String> = attrs.iter().cloned().collect();
    let options = client::options(args);
    let services = vec![(uri.to_string(), attrs)];
    client::block_on(async move {
        let report = |event: KeeperEvent| match event {
            KeeperEvent::Registered { node } => {
                info!(uri, %node, "registered; Ctrl-C to unregister");
            }
            KeeperEvent::Lost { error, retry_in } => {
                warn!(uri, %error, ?retry_in, "the node is gone; registering again once it is back");
            }
        };
        match keep_registered(&options, &services, report, client::interrupted()).await {
            Ok(()) => {
                info!(uri, "unregistered");
                Exit::Ok
            }
            Err(e) => client::fail(&e),
        }
    })
}
