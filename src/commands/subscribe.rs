//! `catalogue subscribe REGEX`: prints the snapshot, then events, one line
//! each; reconnects with jittered exponential backoff after a lost
//! connection and subscribes again (the node sends a fresh snapshot).

use std::time::Duration;

use catalogue_actors::backoff::Backoff;
use tracing::{info, warn};

use super::{Exit, client, output};
use crate::{
    cli::ClientArgs,
    client::{Client, ClientError, SubscriptionEvent},
};

/// First reconnect delay.
const RETRY_INITIAL: Duration = Duration::from_millis(200);
/// Longest reconnect delay.
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Runs the command.
pub fn run(regex: &str, json: bool, args: &ClientArgs) -> Exit {
    let options = client::options(args);
    client::block_on(async move {
        let interrupted = client::interrupted();
        tokio::pin!(interrupted);
        let mut backoff = Backoff::new(RETRY_INITIAL, RETRY_MAX);
        loop {
            let session = async {
                let conn = Client::connect(&options).await?;
                let mut sub = conn.subscribe(regex).await?;
                info!(node = %conn.welcome().server_name, regex, "subscribed");
                backoff.reset();
                while let Some(event) = sub.next().await {
                    print_event(&event, json);
                }
                Err::<(), ClientError>(conn.closed().await)
            };
            let result = tokio::select! {
                () = &mut interrupted => return Exit::Ok,
                result = session => result,
            };
            let Err(e) = result else { continue };
            if e.is_permanent() {
                return client::fail(&e);
            }
            let delay = backoff.next_delay(&mut rand::rng());
            warn!(error = %e, retry_in = ?delay, "subscription lost; reconnecting");
            tokio::select! {
                () = &mut interrupted => return Exit::Ok,
                () = tokio::time::sleep(delay) => {}
            }
        }
    })
}

fn print_event(event: &SubscriptionEvent, json: bool) {
    match event {
        SubscriptionEvent::Added { service, snapshot } => {
            println!("{}", output::event_line("added", service, *snapshot, json));
        }
        SubscriptionEvent::Deleted { service } => {
            println!("{}", output::event_line("deleted", service, false, json));
        }
        SubscriptionEvent::SnapshotEnd { count } => info!(count, "snapshot complete"),
        SubscriptionEvent::Overflow {
            dropped,
            resnapshot,
        } => {
            warn!(
                dropped,
                resnapshot, "events lost: this subscriber read too slowly"
            );
        }
    }
}
