//! Stop signals. The handlers are installed when [`stop_signal`] is called,
//! not when its future is first polled, so a signal that arrives right after
//! a command says it is ready is never lost to the default action.

use std::future::Future;

use tokio::signal::unix::{SignalKind, signal};

/// Installs SIGINT and SIGTERM handlers; the returned future resolves with
/// the name of the first one received.
pub fn stop_signal() -> std::io::Result<impl Future<Output = &'static str>> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        }
    })
}
