//! The catalogue node: its actors and the plain state machines they drive.
//!
//! Actors (actix) are thin shells around plain code: the tables, merge
//! rules and protocol state machines live in ordinary structs that are
//! tested without sockets. This crate also holds the typed [`settings`] a
//! node runs with (the binary loads and layers them) and [`node::run`],
//! which binds the listeners and serves until told to stop.

pub mod admission;
pub mod backoff;
pub mod client;
pub mod hlc;
pub mod links;
pub mod listen;
pub mod log_limit;
pub mod matcher;
pub mod membership;
pub mod metrics_http;
pub mod node;
pub mod peer;
pub mod reload;
pub mod services;
pub mod settings;
pub mod stats;
pub mod subscription;
pub mod supervisor;
pub mod sync;
pub mod tls;
pub mod uri;
pub mod xlreg;
