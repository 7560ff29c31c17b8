//! Validation of [`Settings`]: ranges of single values and the relations
//! between them. Each problem names the key (in the dotted form used by the
//! config files, e.g. `peers[1].address`) so the loader can say which layer
//! set it.

use std::{collections::HashSet, net::SocketAddr, path::Path, time::Duration};

use super::Settings;
use crate::names;

/// One invalid setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct Problem {
    /// Dotted key of the offending setting.
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
}

/// Longest path a UNIX socket address can hold on Linux (sun_path less NUL).
const MAX_SOCKET_PATH: usize = 107;
/// Longest `node.busy_poll`: beyond this a node spins through gaps in a
/// conversation that are long enough to sleep through.
const MAX_BUSY_POLL: Duration = Duration::from_millis(10);

/// Collects problems as the checks run.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, problem: impl ToString) {
        self.0.push(Problem {
            key: key.into(),
            problem: problem.to_string(),
        });
    }

    fn check(&mut self, ok: bool, key: &str, problem: impl FnOnce() -> String) {
        if !ok {
            self.add(key, problem());
        }
    }
}

fn socket_addr_problem(value: &str) -> Option<String> {
    match value.parse::<SocketAddr>() {
        Ok(_) => None,
        Err(_) => Some(format!(
            "{value:?} is not an ip:port address (e.g. 127.0.0.1:7480 or [::1]:7480)"
        )),
    }
}

/// `host:port` where host is a name or an IP address and port a number.
fn host_port_problem(value: &str) -> Option<String> {
    if value.parse::<SocketAddr>().is_ok() {
        return None;
    }
    let Some((host, port)) = value.rsplit_once(':') else {
        return Some(format!("{value:?} is not host:port"));
    };
    if port.parse::<u16>().is_err() {
        return Some(format!(
            "{value:?}: port {port:?} is not a number from 0 to 65535"
        ));
    }
    names::check(host)
        .err()
        .map(|p| format!("{value:?}: host {p}"))
}

fn range<T: PartialOrd + std::fmt::Display + Copy>(
    p: &mut Problems,
    key: &str,
    value: T,
    min: T,
    max: T,
) {
    p.check(value >= min && value <= max, key, || {
        format!("{value} is out of range {min}..={max}")
    });
}

fn positive(p: &mut Problems, key: &str, value: Duration) {
    p.check(!value.is_zero(), key, || "must be longer than zero".into());
}

pub(super) fn validate(s: &Settings) -> Vec<Problem> {
    let mut p = Problems::default();

    // [node]
    if !s.node.name.is_empty() {
        if let Err(problem) = names::check(&s.node.name) {
            p.add("node.name", problem);
        }
    }
    for (key, value) in [
        ("node.cluster", &s.node.cluster),
        ("node.environment", &s.node.environment),
    ] {
        if let Err(problem) = names::check(value) {
            p.add(key, problem);
        }
    }
    p.check(
        !s.node.data_dir.as_os_str().is_empty(),
        "node.data_dir",
        || "must not be empty".into(),
    );
    p.check(s.node.busy_poll <= MAX_BUSY_POLL, "node.busy_poll", || {
        format!(
            "{} is longer than {}",
            humantime::format_duration(s.node.busy_poll),
            humantime::format_duration(MAX_BUSY_POLL)
        )
    });

    // [listen]
    for (key, value) in [
        ("listen.client", &s.listen.client),
        ("listen.peer", &s.listen.peer),
    ] {
        if !value.is_empty() {
            if let Some(problem) = socket_addr_problem(value) {
                p.add(key, problem);
            }
        }
    }
    if !s.listen.socket.is_empty() {
        p.check(
            Path::new(&s.listen.socket).is_absolute(),
            "listen.socket",
            || format!("{:?} must be an absolute path", s.listen.socket),
        );
        p.check(
            s.listen.socket.len() <= MAX_SOCKET_PATH,
            "listen.socket",
            || {
                format!(
                    "is {} bytes long; a UNIX socket path holds at most {MAX_SOCKET_PATH}",
                    s.listen.socket.len()
                )
            },
        );
    }
    p.check(
        !(s.listen.client.is_empty() && s.listen.socket.is_empty()),
        "listen.socket",
        || "listen.client and listen.socket are both empty: clients could not connect".into(),
    );

    // [tls]
    let tls = [
        ("tls.ca", &s.tls.ca),
        ("tls.cert", &s.tls.cert),
        ("tls.key", &s.tls.key),
    ];
    let set = tls.iter().filter(|(_, v)| !v.is_empty()).count();
    if set != 0 && set != tls.len() {
        for (key, _) in tls.iter().filter(|(_, v)| v.is_empty()) {
            p.add(
                *key,
                "must be set when any of tls.ca, tls.cert, tls.key is set",
            );
        }
    }
    let wants_links = !s.peers.is_empty() || !s.xlreg.server.is_empty();
    if wants_links && !s.node.debug && s.tls.is_empty() {
        p.add(
            "tls.ca",
            "peer links need tls.ca, tls.cert and tls.key (or node.debug = true for plaintext)",
        );
    }

    if s.listen.client_tls != super::ClientTls::Off {
        p.check(!s.tls.is_empty(), "listen.client_tls", || {
            "TLS on the client port needs tls.ca, tls.cert and tls.key (the node presents \
             tls.cert; \"mutual\" checks clients against tls.ca)"
                .into()
        });
        p.check(!s.listen.client.is_empty(), "listen.client_tls", || {
            "is set but listen.client is empty: there is no client TCP port".into()
        });
    }

    // Debug mode: plaintext, unauthenticated peer links, registration over
    // TCP. Never where anyone but this host can reach it, never in
    // production.
    if s.node.debug {
        for (key, value) in [
            ("listen.peer", &s.listen.peer),
            ("listen.client", &s.listen.client),
        ] {
            let loopback = value
                .parse::<SocketAddr>()
                .is_ok_and(|a| a.ip().is_loopback());
            p.check(value.is_empty() || loopback, key, || {
                format!(
                    "{value:?} is not a loopback address: with node.debug = true anyone who \
                     reaches it could inject services in plaintext (use 127.0.0.1:PORT, or \
                     turn debug off)"
                )
            });
        }
        p.check(s.node.environment != "production", "node.debug", || {
            "must not be true in environment \"production\" (plaintext, unauthenticated peer links)"
                .into()
        });
    }

    // [[peers]]
    let mut seen = HashSet::new();
    for (i, peer) in s.peers.iter().enumerate() {
        let name_key = format!("peers[{i}].name");
        if let Err(problem) = names::check(&peer.name) {
            p.add(&name_key, problem);
        } else if !seen.insert(peer.name.as_str()) {
            p.add(&name_key, format!("{:?} is listed twice", peer.name));
        } else if peer.name == s.node.name {
            p.add(
                &name_key,
                format!("{:?} is this node's own name", peer.name),
            );
        }
        // An empty address: accept links from this peer, never dial it.
        if !peer.address.is_empty() {
            if let Some(problem) = host_port_problem(&peer.address) {
                p.add(format!("peers[{i}].address"), problem);
            }
        }
    }

    services(s, &mut p);

    // [limits]
    let l = &s.limits;
    range(
        &mut p,
        "limits.max_frame_bytes",
        l.max_frame_bytes,
        1024,
        1 << 30,
    );
    range(&mut p, "limits.max_uri_bytes", l.max_uri_bytes, 16, 65536);
    // Only meaningful once max_frame_bytes itself is sane.
    let frame_ok = l.max_frame_bytes >= 1024;
    p.check(
        !frame_ok || l.max_uri_bytes < l.max_frame_bytes,
        "limits.max_uri_bytes",
        || {
            format!(
                "must be smaller than limits.max_frame_bytes ({})",
                l.max_frame_bytes
            )
        },
    );
    range(
        &mut p,
        "limits.max_regex_bytes",
        l.max_regex_bytes,
        1024,
        64 << 20,
    );
    range(
        &mut p,
        "limits.subscriptions_per_connection",
        l.subscriptions_per_connection,
        1,
        1 << 20,
    );
    range(
        &mut p,
        "limits.registrations_per_connection",
        l.registrations_per_connection,
        1,
        1 << 24,
    );
    range(
        &mut p,
        "limits.subscription_queue",
        l.subscription_queue,
        16,
        1 << 24,
    );
    range(
        &mut p,
        "limits.subscription_history",
        l.subscription_history,
        0,
        1 << 24,
    );
    range(
        &mut p,
        "limits.requests_in_flight",
        l.requests_in_flight,
        1,
        1024,
    );
    range(
        &mut p,
        "limits.requests_in_flight_tcp",
        l.requests_in_flight_tcp,
        1,
        1 << 16,
    );
    range(
        &mut p,
        "limits.requests_in_flight_unix",
        l.requests_in_flight_unix,
        1,
        1 << 16,
    );
    range(
        &mut p,
        "limits.connections_tcp",
        l.connections_tcp,
        1,
        1 << 24,
    );
    range(
        &mut p,
        "limits.connections_unix",
        l.connections_unix,
        1,
        1 << 24,
    );
    p.check(
        l.idle_timeout >= Duration::from_millis(100),
        "limits.idle_timeout",
        || "must be at least 100ms".into(),
    );
    range(
        &mut p,
        "limits.handshakes_in_progress",
        l.handshakes_in_progress,
        1,
        1 << 16,
    );
    range(
        &mut p,
        "limits.handshakes_in_progress_per_address",
        l.handshakes_in_progress_per_address,
        1,
        1 << 16,
    );
    p.check(
        l.handshakes_in_progress_per_address <= l.handshakes_in_progress,
        "limits.handshakes_in_progress_per_address",
        || {
            format!(
                "{} is more than limits.handshakes_in_progress ({})",
                l.handshakes_in_progress_per_address, l.handshakes_in_progress
            )
        },
    );
    range(
        &mut p,
        "limits.handshake_frame_bytes",
        l.handshake_frame_bytes,
        1024,
        1 << 20,
    );
    positive(&mut p, "limits.frame_read_timeout", l.frame_read_timeout);
    range(
        &mut p,
        "limits.input_buffer_bytes",
        l.input_buffer_bytes,
        64 << 10,
        1 << 40,
    );
    p.check(
        !frame_ok || l.input_buffer_bytes >= l.max_frame_bytes + catalogue_proto::LENGTH_PREFIX_LEN,
        "limits.input_buffer_bytes",
        || {
            format!(
                "must hold at least one whole frame of limits.max_frame_bytes ({}) and its 4-byte prefix",
                l.max_frame_bytes
            )
        },
    );
    for (key, value) in [
        ("limits.subscriptions_total", l.subscriptions_total),
        ("limits.subscriptions_per_uid", l.subscriptions_per_uid),
        (
            "limits.subscriptions_per_address",
            l.subscriptions_per_address,
        ),
    ] {
        range(&mut p, key, value, 1, 1 << 24);
    }
    range(
        &mut p,
        "limits.regex_memory_bytes",
        l.regex_memory_bytes,
        64 << 10,
        1 << 40,
    );

    // [sync]
    let y = &s.sync;
    p.check(
        y.tombstone_ttl >= Duration::from_secs(1),
        "sync.tombstone_ttl",
        || "must be at least 1s".into(),
    );
    positive(&mut p, "sync.max_clock_drift", y.max_clock_drift);
    range(
        &mut p,
        "sync.batch_max_entries",
        y.batch_max_entries,
        1,
        1 << 20,
    );
    range(&mut p, "sync.window", y.window, 1, 1 << 16);
    positive(&mut p, "sync.ack_timeout", y.ack_timeout);
    positive(&mut p, "sync.retry_initial", y.retry_initial);
    p.check(y.retry_initial <= y.retry_max, "sync.retry_max", || {
        format!(
            "{} is shorter than sync.retry_initial ({})",
            humantime::format_duration(y.retry_max),
            humantime::format_duration(y.retry_initial)
        )
    });

    // [metrics]
    if !s.http.listen.is_empty() {
        if let Some(problem) = socket_addr_problem(&s.http.listen) {
            p.add("http.listen", problem);
        }
    }
    p.check(s.http.max_leases >= 1, "http.max_leases", || {
        "must be at least 1".into()
    });
    p.check(
        s.http.max_lease_ttl >= std::time::Duration::from_secs(1),
        "http.max_lease_ttl",
        || "must be at least 1s".into(),
    );
    p.check(
        s.http.socket.is_empty() || s.http.socket != s.listen.socket,
        "http.socket",
        || "must differ from listen.socket".into(),
    );
    p.check(s.http.page_limit >= 1, "http.page_limit", || {
        "must be at least 1".into()
    });
    p.check(s.http.max_connections >= 1, "http.max_connections", || {
        "must be at least 1".into()
    });
    p.check(
        s.http.max_request_bytes >= 1024,
        "http.max_request_bytes",
        || "must be at least 1024".into(),
    );
    if !s.metrics.listen.is_empty() {
        if let Some(problem) = socket_addr_problem(&s.metrics.listen) {
            p.add("metrics.listen", problem);
        }
    }

    // [xlreg]
    let x = &s.xlreg;
    if x.serve {
        if let Some(problem) = socket_addr_problem(&x.listen) {
            p.add("xlreg.listen", problem);
        }
    }
    if !x.server.is_empty() {
        if let Some(problem) = host_port_problem(&x.server) {
            p.add("xlreg.server", problem);
        }
        p.check(!x.server_key.is_empty(), "xlreg.server_key", || {
            "must be set when xlreg.server is set".into()
        });
        p.check(!x.cluster.name.is_empty(), "xlreg.cluster.name", || {
            "must be set when xlreg.server is set".into()
        });
    }
    if !x.cluster.name.is_empty() {
        if let Err(problem) = names::check(&x.cluster.name) {
            p.add("xlreg.cluster.name", problem);
        }
    }
    positive(&mut p, "xlreg.handshake_timeout", x.handshake_timeout);
    range(&mut p, "xlreg.max_handshakes", x.max_handshakes, 1, 1 << 16);
    // A member's session polls every 5 s; a shorter idle timeout would
    // close it between polls.
    p.check(
        x.idle_timeout >= Duration::from_secs(10),
        "xlreg.idle_timeout",
        || "must be at least 10s".into(),
    );
    range(
        &mut p,
        "xlreg.sessions_per_source",
        x.sessions_per_source,
        0,
        1_000_000,
    );
    range(
        &mut p,
        "xlreg.sessions_burst",
        x.sessions_burst,
        1,
        1_000_000,
    );
    range(
        &mut p,
        "xlreg.max_connections_per_source",
        x.max_connections_per_source,
        0,
        1 << 20,
    );
    range(&mut p, "xlreg.max_clients", x.max_clients, 1, 10_000_000);
    range(&mut p, "xlreg.max_clusters", x.max_clusters, 1, 1_000_000);
    range(
        &mut p,
        "xlreg.max_clusters_per_client",
        x.max_clusters_per_client,
        1,
        x.max_clusters.max(1),
    );
    p.check(
        x.client_ttl >= Duration::from_secs(1),
        "xlreg.client_ttl",
        || "must be at least 1s".into(),
    );
    for (i, entry) in x.admit.keys.iter().enumerate() {
        let entry = entry.trim();
        let problem = if entry.is_empty() {
            Some("must not be empty".to_string())
        } else if entry.starts_with("sha256:")
            && catalogue_xlreg::keys::parse_fingerprint(entry).is_none()
        {
            Some(format!("{entry:?} is not sha256: and 64 hex digits"))
        } else {
            None
        };
        if let Some(problem) = problem {
            p.add(format!("xlreg.admit.keys[{i}]"), problem);
        }
    }
    range(&mut p, "xlreg.cluster.size", x.cluster.size, 2, 64);
    range(&mut p, "xlreg.cluster.endpoints", x.cluster.endpoints, 1, 2);
    let creator = &x.cluster.creator;
    if creator.starts_with("sha256:") {
        p.check(
            catalogue_xlreg::keys::parse_fingerprint(creator).is_some(),
            "xlreg.cluster.creator",
            || format!("{creator:?} is not sha256: and 64 hex digits"),
        );
    } else if !creator.is_empty() {
        if let Err(problem) = names::check(creator) {
            p.add("xlreg.cluster.creator", problem);
        }
    }

    listeners::check(s, &mut p);
    p.0
}

/// Valid but risky settings (see [`Settings::warnings`]).
/// `[[services]]`: valid URIs and attributes, each URI once, a check of
/// exactly one kind with sane timings.
fn services(s: &Settings, p: &mut Problems) {
    let mut seen = HashSet::new();
    for (i, def) in s.services.iter().enumerate() {
        let uri_key = format!("services[{i}].uri");
        if let Err(e) = crate::uri::validate_uri(&def.uri, s.limits.max_uri_bytes) {
            p.add(&uri_key, e);
        } else if !seen.insert(def.uri.as_str()) {
            p.add(&uri_key, format!("{:?} is defined twice", def.uri));
        }
        if let Err(e) = crate::uri::validate_attrs(&def.attrs) {
            p.add(format!("services[{i}].attrs"), e);
        }
        if let Some(check) = &def.check {
            check_settings(check, &format!("services[{i}].check"), p);
        }
    }
}

/// The problems of one health check, under keys `{prefix}.tcp` and so on
/// (`services[i].check` in a config file; the `register --check-*` flags
/// name their own prefix).
pub fn check_problems(check: &super::CheckSettings, prefix: &str) -> Vec<Problem> {
    let mut p = Problems::default();
    check_settings(check, prefix, &mut p);
    p.0
}

/// A check of exactly one kind with sane timings.
fn check_settings(check: &super::CheckSettings, prefix: &str, p: &mut Problems) {
    let key = |k: &str| format!("{prefix}.{k}");
    match check.kind() {
        None => p.add(prefix, "needs exactly one of tcp, http, exec"),
        Some(super::CheckKind::Tcp(addr)) => {
            if let Some(problem) = host_port_problem(&addr) {
                p.add(key("tcp"), problem);
            }
        }
        Some(super::CheckKind::Http(url)) => {
            if let Some(problem) = http_url_problem(&url) {
                p.add(key("http"), problem);
            }
        }
        Some(super::CheckKind::Exec(argv)) => {
            p.check(
                argv.first().is_some_and(|c| !c.is_empty()),
                &key("exec"),
                || "needs a program: [\"program\", \"arg\", ...]".into(),
            );
        }
    }
    positive(p, &key("interval"), check.interval);
    positive(p, &key("timeout"), check.timeout);
    p.check(check.timeout <= check.interval, &key("timeout"), || {
        format!(
            "must be at most {prefix}.interval ({})",
            humantime::format_duration(check.interval)
        )
    });
    range(p, &key("failures"), check.failures, 1, 1000);
    range(p, &key("successes"), check.successes, 1, 1000);
}

/// An `http://` or `https://` URL (`host[:port]/path`) a check can GET.
fn http_url_problem(url: &str) -> Option<String> {
    let (rest, default_port) = match url.strip_prefix("https://") {
        Some(rest) => (rest, 443),
        None => match url.strip_prefix("http://") {
            Some(rest) => (rest, 80),
            None => return Some(format!("{url:?} is not an http:// or https:// URL")),
        },
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let with_port = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    };
    host_port_problem(&with_port).map(|problem| format!("{url:?}: {problem}"))
}

pub(super) fn warnings(s: &Settings) -> Vec<Problem> {
    let mut p = Problems::default();
    let x = &s.xlreg;
    let production = s.node.environment == "production";
    if production && x.serve && x.admit.is_open() {
        p.add(
            "xlreg.admit",
            format!(
                "the registry is served (xlreg.serve = true) without admission control in \
                 environment production: anyone who reaches {} can register clients and create \
                 clusters; list the members' keys in xlreg.admit.keys or set \
                 xlreg.admit.secret_file",
                x.listen
            ),
        );
    }
    if production && !x.server.is_empty() && x.cluster.creator.is_empty() {
        p.add(
            "xlreg.cluster.creator",
            format!(
                "not set: this node joins any cluster named {:?} in the registry, whoever \
                 created it; name the node that creates it (or its key's fingerprint)",
                x.cluster.name
            ),
        );
    }
    p.0
}

mod listeners;
#[cfg(test)]
mod tests;
