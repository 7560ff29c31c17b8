//! The table that bad input must leave alone: a connection that holds a
//! few services ([`keeper`]), the node's listing ([`listing`]), waiting
//! for the listing to come back to what it was ([`wait_listing`]), and a
//! check that the process is still running ([`alive`]).

use std::{collections::BTreeMap, time::Instant};

use anyhow::{Context, Result, bail};
use catalogue_proto::{
    Body,
    catalogue::{List, RegisterService},
};

use crate::{Conn, DEADLINE, Daemon};

/// The node's services, one `uri origin attrs ts` line each, from a `List`
/// on a fresh connection: also proves the node answers a well-formed
/// request.
pub fn listing(daemon: &Daemon) -> Result<Vec<String>> {
    let mut conn = Conn::unix(&daemon.socket)?;
    conn.recv()?;
    conn.send(Body::List(List {
        regex: String::new(),
        ..Default::default()
    }))?;
    match conn.recv()?.and_then(|f| f.body) {
        Some(Body::ListReply(r)) => Ok(r
            .services
            .into_iter()
            .map(|s| format!("{} {} {:?} {:?}", s.uri, s.origin, s.attrs, s.ts))
            .collect()),
        other => bail!("expected ListReply, got {other:?}"),
    }
}

/// Waits until the listing equals `expected`, at most [`DEADLINE`]:
/// services registered by connections that are gone leave with them, a
/// moment after the connection closes.
pub fn wait_listing(daemon: &Daemon, expected: &[String]) -> Result<()> {
    let end = Instant::now() + DEADLINE;
    loop {
        let now = listing(daemon)?;
        if now == expected {
            return Ok(());
        }
        if Instant::now() > end {
            bail!("the table changed:\nbefore {expected:#?}\nafter {now:#?}");
        }
        std::thread::yield_now();
    }
}

/// A connection that registers three services and keeps them while it
/// lives.
pub fn keeper(daemon: &Daemon) -> Result<Conn> {
    let mut conn = Conn::unix(&daemon.socket)?;
    conn.recv()?;
    for (uri, role) in [
        ("tcp://db.keep:5432", "primary"),
        ("http://api.keep:80/v1", "api"),
        ("tcp://cache.keep:6379", "cache"),
    ] {
        conn.send(Body::RegisterService(RegisterService {
            uri: uri.into(),
            attrs: BTreeMap::from([("role".to_string(), role.to_string())]),
        }))?;
        match conn.recv()?.and_then(|f| f.body) {
            Some(Body::Success(_)) => {}
            other => bail!("keeper: {other:?}"),
        }
    }
    Ok(conn)
}

/// The node is still running (its /proc entry has a resident set; an
/// exited process has none); returns that RSS in KiB.
pub fn alive(daemon: &Daemon) -> Result<u64> {
    daemon.rss_kib().context("the daemon is gone")
}
