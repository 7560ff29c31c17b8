//! Bad input (docs/RELIABILITY.md §3): random and mutated frames on a real
//! node's client socket, peer port (before and after the handshake, and
//! TLS handshakes cut short) and xlReg port; oversized length prefixes,
//! invalid UTF-8, pathological regexes and registration floods. The node
//! never crashes, answers a well-formed request afterwards, answers with
//! an `Error` frame wherever the input is well framed, and its table is
//! the same after rejected input as before.
//!
//! Inputs come from a seeded generator; each test prints its seed
//! (`figure: ... seed N`), and `CATALOGUE_TEST_SEED=N` replays a run.
//! Figures (inputs per port, errors answered, time) are printed on stderr
//! with the prefix `figure:`; see docs/RELIABILITY.md. One module per port:
//! [`client_socket`], [`peer_port`], [`xlreg_port`]; the helpers they share
//! are here.

mod client_socket;
mod peer_port;
mod xlreg_port;

use std::{
    collections::BTreeMap,
    io::Write,
    net::TcpStream,
    os::unix::net::UnixStream,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use catalogue_actors::xlreg::{hello::Hello as XlHello, keys::PublicKey, version::Version};
use catalogue_integration_tests::{
    Conn, DEADLINE, Daemon, TestCa,
    bad_input::{
        Rng, Tally, XlregProbe, alive, client_hello, exchange, keeper, listing, mutate,
        peer_connect, peer_frame, peer_handshake, random_bytes, random_msg, seed, start_session,
        tls_session, wait_listing,
    },
    read_frame, write_frame,
};
use catalogue_proto::{
    Body, Frame,
    catalogue::{
        Ack, Bye, ErrorCode, Hello, LinkAdd, LinkKey, List, ListLinks, ListPeers, Lock, Peer,
        Register, RegisterService, ServiceAdd, Subscribe, Timestamp, UnlockAll, UnregisterService,
        Unsubscribe, UpdTree,
    },
    reg::{XlRegMsg, xl_reg_msg::Tag},
};
use prost::Message;

/// Time allowed for the node to answer one input and close.
const ANSWER: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- helpers

/// A frame with its length prefix.
fn bytes_of(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    write_frame(&mut out, frame).expect("writing to a Vec");
    out
}

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Frames the node may send a client.
fn is_reply(body: &Option<Body>) -> bool {
    matches!(
        body,
        Some(
            Body::Success(_)
                | Body::Error(_)
                | Body::ListReply(_)
                | Body::LinksReply(_)
                | Body::PeersReply(_)
                | Body::ServiceEvent(_)
                | Body::SnapshotEnd(_)
                | Body::Overflow(_)
                | Body::Bye(_)
        )
    )
}

use client_socket::{client_input, client_socket_fuzz};
use peer_port::{peer_port_fuzz, peer_session_fuzz};
use xlreg_port::xlreg_fuzz;

/// Ten times the inputs on every port. Run with `cargo build --bin
/// catalogue && cargo test -p catalogue-integration-tests --test bad_input
/// -- --ignored --nocapture` (add `CATALOGUE_TEST_SEED=N` to replay).
#[test]
#[ignore = "big variant: minutes in a debug build"]
fn ten_times_the_inputs_on_every_port() -> Result<()> {
    client_socket_fuzz(30_000)?;
    peer_port_fuzz(20_000)?;
    peer_session_fuzz(10_000, 1500)?;
    xlreg_fuzz(10_000, 10_000)
}
