//! Tools for tests that throw bad input at a real node: a seeded random
//! generator ([`Rng`], so a failing run can be repeated from the seed it
//! printed), mutators that turn valid frames into broken ones
//! ([`mutate`]), one-shot exchanges that write an input, half-close and
//! read what the node answers until it closes ([`exchange`]), the first
//! flight of a real TLS client ([`client_hello`]) and a minimal xlReg
//! client that gets through the RSA/AES handshake ([`XlregProbe`]).

mod exchange;
mod mutate;
mod rng;
mod tls_hello;
mod xlreg;

pub use exchange::{Answer, HalfClose, exchange, parse_frames};
pub use mutate::{mutate, random_bytes};
pub use rng::{Rng, seed};
pub use tls_hello::client_hello;
pub use xlreg::XlregProbe;
