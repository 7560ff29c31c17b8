//! Listeners that would collide: two of the node's TCP listeners
//! (`listen.client`, `listen.peer`, `metrics.listen`, `http.listen`,
//! `xlreg.listen` when the registry is served) on one port of one address,
//! or on one port where either binds every address (`0.0.0.0`, `::`), which
//! the kernel refuses at start with "address in use". Port 0 (the kernel
//! picks) never collides.

use std::net::SocketAddr;

use super::{Problems, Settings};

/// The node's TCP listeners that are on and parse, in start order.
fn listeners(s: &Settings) -> Vec<(&'static str, SocketAddr)> {
    let mut all = vec![
        ("listen.client", s.listen.client.as_str()),
        ("listen.peer", s.listen.peer.as_str()),
        ("metrics.listen", s.metrics.listen.as_str()),
        ("http.listen", s.http.listen.as_str()),
    ];
    if s.xlreg.serve {
        all.push(("xlreg.listen", s.xlreg.listen.as_str()));
    }
    all.into_iter()
        .filter_map(|(key, value)| Some((key, value.parse().ok()?)))
        .collect()
}

/// Whether binding `a` and then `b` fails with "address in use".
fn collide(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Adds a problem on the later key of each colliding pair.
pub(super) fn check(s: &Settings, p: &mut Problems) {
    let all = listeners(s);
    for (i, (key, addr)) in all.iter().enumerate() {
        if let Some((earlier, other)) = all[..i].iter().find(|(_, a)| collide(*a, *addr)) {
            p.add(
                *key,
                format!(
                    "{addr} collides with {earlier} ({other}): two listeners cannot share a \
                     port; give one of them another"
                ),
            );
        }
    }
}
