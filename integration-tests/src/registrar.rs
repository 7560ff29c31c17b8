//! A blocking client connection that registers services for a test.
//!
//! A [`Registrar`] is a [`Client`] with its own single-threaded Tokio
//! runtime, so a test that waits on listings with blocking calls can
//! register and unregister without managing a runtime. Its services stay
//! registered while it lives; dropping it closes the connection, which
//! unregisters them. The runtime only runs during a call: between calls
//! the connection stays open but nothing is read from it, which is all a
//! registering connection needs.

use anyhow::{Context, Result};
use catalogue::client::{Client, ConnectOptions};
use tokio::runtime::Runtime;

/// A registering connection; see the module documentation.
pub struct Registrar {
    // Field order is drop order: the connection before its runtime.
    client: Client,
    runtime: Runtime,
}

impl Registrar {
    /// Connects to the node at `options`.
    pub fn connect(options: &ConnectOptions) -> Result<Registrar> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("registrar runtime")?;
        let client = runtime
            .block_on(Client::connect(options))
            .context("registrar connect")?;
        Ok(Registrar { client, runtime })
    }

    /// Registers `uri`, without attributes; returns once the node has
    /// acknowledged it.
    pub fn register(&self, uri: &str) -> Result<()> {
        self.runtime
            .block_on(self.client.register(uri, Default::default()))
            .with_context(|| format!("register {uri}"))
    }

    /// Registers each of `uris` in turn.
    pub fn register_all<S: AsRef<str>>(&self, uris: &[S]) -> Result<()> {
        uris.iter().try_for_each(|uri| self.register(uri.as_ref()))
    }

    /// Unregisters `uri`; returns once the node has acknowledged it.
    pub fn unregister(&self, uri: &str) -> Result<()> {
        self.runtime
            .block_on(self.client.unregister(uri))
            .with_context(|| format!("unregister {uri}"))
    }

    /// Unregisters each of `uris` in turn.
    pub fn unregister_all<S: AsRef<str>>(&self, uris: &[S]) -> Result<()> {
        uris.iter()
            .try_for_each(|uri| self.unregister(uri.as_ref()))
    }
}
