//! The catalogue node: its actors and the plain state machines they drive.
//!
//! Actors (actix) are thin shells around plain code: the tables, merge
//! rules and protocol state machines live in ordinary structs that are
//! tested without sockets. This crate also holds the typed [`settings`] a
//! node runs with (the binary loads and layers them) and [`node::run`],
//! which binds the listeners and serves until told to stop, telling systemd
//! when it is ready and when it stops ([`sd_notify`]).
//!
//! The actors, one line each (who talks to whom, with every message, is
//! drawn in `docs/ACTORS.md`):
//! - [`supervisor::CatalogueSupervisor`], one per node: runs the
//!   replication [`sync::driver::Driver`] (tables, clock, own links,
//!   reachability) and carries out what it decides; routes events to
//!   subscriptions; answers registrations and listings.
//! - [`connection::ClientConnection`], one per client socket: requests to the
//!   supervisor, the services it registered, its subscriptions.
//! - [`subscription::Subscription`], one per subscription: a bounded queue
//!   of events toward its connection.
//! - [`peer::link::PeerLink`], one per peer link: drives the link's
//!   [`sync::session::SyncSession`], hands batches to the supervisor.
//! - `xlreg::server` `RegistryActor` (the registry of a hosting node) and
//!   `RegistrySession` (one per xlReg client connection), driving the
//!   plain code of the `catalogue-xlreg` crate.
//! - [`membership::ClusterMembership`]: a node's xlReg client, reporting
//!   the members it discovers.
//! - [`http::LeaseKeeper`], one per node with an API socket: the services
//!   registered over HTTP with a TTL lease.
//! - [`definitions::DefinitionKeeper`], one per node: the `[[services]]`
//!   the node registers itself, and their health checks.
//!
//! Besides the actors, [`http`] serves the HTTP/JSON API, its watch
//! streams and the status page on actix-web worker threads, reading the
//! supervisor's published views (docs/HTTP.md).
//!
//! The supervisor's messages, those it accepts and those it sends to links
//! and subscriptions, are declared in one file (`supervisor/messages.rs`,
//! re-exported by [`supervisor`]); client connections and peer links write
//! their frames through [`frame_writer`]; [`names`] checks node, cluster
//! and environment names; [`busy_poll`] keeps the node's thread polling
//! its sockets for a moment after each frame instead of sleeping.

pub mod admission;
pub mod backoff;
pub mod busy_poll;
pub mod connection;
pub mod definitions;
pub mod frame_writer;
pub mod hlc;
pub mod http;
pub mod input;
pub mod links;
pub mod listen;
pub mod log_limit;
pub mod matcher;
pub mod membership;
pub mod metrics;
pub mod metrics_endpoint;
pub mod names;
pub mod node;
pub mod peer;
pub mod reader;
pub mod reload;
pub mod routed;
pub mod sd_notify;
pub mod services;
pub mod settings;
pub mod subscription;
pub mod supervisor;
pub mod sync;
pub mod tls;
pub mod uri;
pub mod xlreg;
