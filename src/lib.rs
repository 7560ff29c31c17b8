//! The `catalogue` crate: the daemon's command line ([`cli`], [`commands`]),
//! the layered configuration loader ([`config_layers`]), logging setup, and
//! the client library ([`client`], the `catalogue-client` crate) other
//! programs use to register services and subscribe to events.

pub mod cli;
/// The client library, its own crate (`client/`): `catalogue::client` stays
/// the path programs and the commands use.
pub use catalogue_client as client;
pub mod commands;
pub mod config_layers;
pub mod logging;
pub mod signals;
