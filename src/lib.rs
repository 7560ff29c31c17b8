//! The `catalogue` crate: the daemon's command line ([`cli`], [`commands`]),
//! the layered configuration loader ([`config_layers`]), logging setup, and
//! (as they land) the client library other programs use to register
//! services and subscribe to events.

pub mod cli;
pub mod client;
pub mod commands;
pub mod config_layers;
pub mod logging;
pub mod signals;
