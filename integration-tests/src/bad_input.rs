//! Tools for tests that throw bad input at a real node: a seeded random
//! generator ([`Rng`], so a failing run can be repeated from the seed it
//! printed), mutators that turn valid frames into broken ones
//! ([`mutate`]), one-shot exchanges that write an input, half-close and
//! read what the node answers until it closes ([`exchange`]), the first
//! flight of a real TLS client ([`client_hello`]), a peer's side of the
//! handshake and session ([`peer_handshake`], [`tls_session`],
//! [`start_session`]), a minimal xlReg client that gets through the
//! RSA/AES handshake ([`XlregProbe`]), the table bad input must leave
//! alone ([`keeper`], [`listing`], [`wait_listing`]) and a [`Tally`] of
//! what came back.

mod exchange;
mod mutate;
mod peer;
mod rng;
mod table;
mod tally;
mod tls_hello;
mod xlreg;

pub use exchange::{Answer, HalfClose, exchange, parse_frames};
pub use mutate::{mutate, random_bytes};
pub use peer::{peer_connect, peer_frame, peer_handshake, start_session, tls_session};
pub use rng::{Rng, seed};
pub use table::{alive, keeper, listing, wait_listing};
pub use tally::Tally;
pub use tls_hello::client_hello;
pub use xlreg::{XlregProbe, random_msg};
