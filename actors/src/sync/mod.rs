//! Replication between nodes, as plain code: the entries that travel
//! ([`entry`]), digests ([`digest`]), the tables and their exchange rules
//! ([`replica`]), the serial-acknowledged session of one link
//! ([`session`]) and the [`driver`] that decides what a node does with
//! every change. The `PeerLink` actor drives a session; the supervisor
//! drives the driver and executes its effects.

pub mod digest;
pub mod driver;
pub mod entry;
#[cfg(test)]
mod model;
pub mod replica;
pub mod session;
pub mod wire;
