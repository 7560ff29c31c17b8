//! Registrations that outlive the node's restarts. A registration lives as
//! long as the connection that made it; [`keep_registered`] holds one
//! connection, and when the node goes away (a restart, an upgrade, a crash)
//! it connects again with a short exponential backoff and registers the
//! same services again, so the gap is about as long as the node's restart.
//! Errors that retrying cannot mend (the node refuses the registration, the
//! wrong environment, an untrusted socket) end it; so does `stop`, after
//! unregistering.

use std::{collections::BTreeMap, future::Future, time::Duration};

use catalogue_proto::catalogue::ErrorCode;

use super::{Client, ClientError, ConnectOptions};

/// First delay before connecting again.
pub const RETRY_INITIAL: Duration = Duration::from_millis(50);
/// Longest delay between attempts.
pub const RETRY_MAX: Duration = Duration::from_secs(2);

/// A service to keep registered: URI and attributes.
pub type Registration = (String, BTreeMap<String, String>);

/// What happened, for the caller to report.
#[derive(Debug, Clone)]
pub enum KeeperEvent {
    /// Every service is registered with node `node`.
    Registered {
        /// The node's name.
        node: String,
    },
    /// The connection or a registration failed; trying again in `retry_in`.
    Lost {
        /// Why.
        error: ClientError,
        /// When the next attempt starts.
        retry_in: Duration,
    },
}

/// Keeps `services` registered with the node of `options` until `stop`
/// resolves (then unregisters them and returns `Ok`) or an error retrying
/// cannot mend (returned). `on_event` hears of every (re)registration and
/// every loss.
pub async fn keep_registered(
    options: &ConnectOptions,
    services: &[Registration],
    mut on_event: impl FnMut(KeeperEvent),
    stop: impl Future<Output = ()>,
) -> Result<(), ClientError> {
    tokio::pin!(stop);
    let mut delay = RETRY_INITIAL;
    let mut registered_once = false;
    loop {
        let session = async {
            let conn = Client::connect(options).await?;
            for (uri, attrs) in services {
                conn.register(uri, attrs.clone()).await?;
            }
            Ok::<Client, ClientError>(conn)
        };
        let attempt = tokio::select! {
            () = &mut stop => return Ok(()),
            attempt = session => attempt,
        };
        let error = match attempt {
            Ok(conn) => {
                delay = RETRY_INITIAL;
                registered_once = true;
                on_event(KeeperEvent::Registered {
                    node: conn.welcome().server_name.clone(),
                });
                tokio::select! {
                    () = &mut stop => {
                        for (uri, _) in services {
                            conn.unregister(uri).await?;
                        }
                        return Ok(());
                    }
                    error = conn.closed() => error,
                }
            }
            Err(error) => error,
        };
        // After a lost connection, the node may not have released our
        // previous registration yet: a conflict then is worth a retry.
        let ours_still_held = registered_once
            && matches!(
                &error,
                ClientError::Server {
                    code: ErrorCode::Conflict,
                    ..
                }
            );
        if error.is_permanent() && !ours_still_held {
            return Err(error);
        }
        on_event(KeeperEvent::Lost {
            error,
            retry_in: delay,
        });
        tokio::select! {
            () = &mut stop => return Ok(()),
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(RETRY_MAX);
    }
}
