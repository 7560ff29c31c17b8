//! `catalogue subscribe REGEX`: follows the matching services through the
//! client library's [`Watch`]: prints the snapshot, then every difference,
//! one line each, and marks the end of each snapshot, resets and
//! overflows. It reconnects by itself and resumes from the node's
//! revision, so a service that went away while it was disconnected is
//! printed as deleted. `--json` prints JSON Lines (the schema is in
//! docs/CLIENTS.md, "`catalogue subscribe`"); `--once` prints the snapshot
//! and exits.

use tracing::{info, warn};

use super::{Exit, client, output};
use crate::{
    cli::ClientArgs,
    client::{Watch, WatchEvent},
};

/// Runs the command.
pub fn run(regex: &str, json: bool, once: bool, args: &ClientArgs) -> Exit {
    let options = client::options(args);
    client::block_on(async move {
        let interrupted = client::interrupted();
        tokio::pin!(interrupted);
        let mut watch = Watch::new(options, regex);
        loop {
            let event = tokio::select! {
                () = &mut interrupted => return Exit::Ok,
                event = watch.next() => event,
            };
            let event = match event {
                Ok(event) => event,
                Err(e) => return client::fail(&e),
            };
            match &event {
                WatchEvent::Disconnected { error, retry_in } => {
                    if once {
                        return client::fail(error);
                    }
                    warn!(%error, ?retry_in, "subscription lost; reconnecting");
                    continue;
                }
                WatchEvent::Synced { kind, count, .. } => {
                    info!(
                        node = watch.node().unwrap_or_default(),
                        regex,
                        ?kind,
                        count,
                        "snapshot complete"
                    );
                }
                WatchEvent::Overflow { dropped } => {
                    warn!(dropped, "events lost: this subscriber read too slowly");
                }
                _ => {}
            }
            if let Some(line) = output::watch_line(&event, json) {
                println!("{line}");
            }
            if once && matches!(event, WatchEvent::Synced { .. }) {
                return Exit::Ok;
            }
        }
    })
}
