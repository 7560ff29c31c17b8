//! Replication between nodes, as plain code: the entries that travel
//! ([`entry`]), digests ([`digest`]), the tables and their exchange rules
//! ([`replica`]) and the serial-acknowledged session of one link
//! ([`session`]). The `PeerLink` actor and the supervisor drive them.

pub mod digest;
pub mod entry;
#[cfg(test)]
mod model;
pub mod replica;
pub mod session;
