//! xlReg: the cluster registry's protocol, rules, log and client, as plain
//! code with no actor system.
//!
//! Nodes find each other through a registry: each registers as a client,
//! creates or joins a named cluster, and polls the cluster's member tokens
//! (names, keys, endpoints) until it knows every member. The bytes on the
//! wire, the rules and the persistence format are in `docs/XLREG.md`.
//! Throughout this crate, "the seed" and "a seed client" mean the original
//! xlReg and its clients, whose schema `proto/proto/xlreg.proto` keeps
//! field for field (docs/XLREG.md, introduction; a verbatim copy of the
//! original schema is `proto/tests/data/xlreg-protobuf-spec.txt`).
//! The actors that host a registry in a node (the listener, `RegistryActor`,
//! `RegistrySession`) live in `catalogue-actors` (`xlreg::server`) and drive
//! what is here.
//!
//! Layers, each plain code tested without sockets except the client:
//! - [`version`], [`crypto`], [`keys`]: versions, primitives, RSA keys.
//! - [`hello`]: the Hello and HelloReply layouts.
//! - [`frame`]: v1 and v2 session framing, as tokio codecs, with the
//!   limits of [`sizes`] (requests 64 KiB, replies the largest cluster).
//! - [`token`], [`protocol`], [`session`]: signatures, request and reply
//!   shapes, what a session may do when.
//! - [`ext`]: catalogue's extension fields, outside the seed's schema
//!   (docs/XLREG.md §14), and [`admission`]: who a registry lets identify.
//! - [`registry`], [`store`], [`commit`]: the rules (with the bounds against
//!   abuse and the client TTL), the durable log, group commit.
//! - [`sources`]: per-source bounds on a registry's connections.
//! - [`config`]: how a hosted registry is configured ([`XlregConfig`]);
//!   [`metrics`]: its counters and their Prometheus collector.
//! - [`client`], [`identity`]: the async client that cluster formation and
//!   the command line use.

pub mod admission;
pub mod client;
pub mod commit;
pub mod config;
pub mod crypto;
pub mod ext;
pub mod frame;
pub mod hello;
pub mod identity;
pub mod keys;
pub mod metrics;
pub mod protocol;
pub mod registry;
pub mod session;
pub mod sizes;
pub mod sources;
pub mod store;
pub mod token;
pub mod version;

#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

pub use client::{ClientError, ClientOptions, Member, Members, Registered, RegistryClient, Secret};
pub use config::{AdmitConfig, XlregConfig};
pub use identity::{Identity, IdentityError};
pub use keys::{KeyError, PrivateKey, PublicKey};
pub use metrics::{XlregCollector, XlregStats};
pub use protocol::{ClusterInfo, ClusterRef, Creator};
pub use version::Version;
