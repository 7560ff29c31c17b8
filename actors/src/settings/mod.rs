//! Typed settings of a catalogue node.
//!
//! The daemon's configuration is layered (built-in `config/default.toml`,
//! `/etc/catalogue/catalogue.toml`, `--config` files, `CATALOGUE__SECTION__KEY`
//! environment variables, command-line flags); the binary merges the layers
//! and deserializes the result into [`Settings`]. Every key lives in
//! `config/default.toml`, so the structs carry no serde defaults of their
//! own and unknown keys are refused. [`Settings::validate`] checks values and
//! the relations between them once, at start, and names the offending key.

pub mod definitions;
pub mod diff;
pub(crate) mod validate;

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

pub use definitions::{CheckKind, CheckSettings, ServiceDefinition};
pub use validate::{Problem, check_problems};

/// Everything a node is configured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Identity of this node.
    pub node: NodeSettings,
    /// Where the node listens.
    pub listen: ListenSettings,
    /// Certificates for peer links.
    pub tls: TlsSettings,
    /// Statically configured neighbours.
    pub peers: Vec<PeerSettings>,
    /// Services the node registers itself while it runs (`[[services]]`).
    pub services: Vec<ServiceDefinition>,
    /// Who may register services.
    pub register: RegisterSettings,
    /// Bounds on what clients and peers may ask for.
    pub limits: LimitsSettings,
    /// Replication tuning.
    pub sync: SyncSettings,
    /// The metrics and health endpoint.
    pub metrics: MetricsSettings,
    /// The HTTP/JSON API.
    pub http: HttpSettings,
    /// The xlReg cluster registry, served here or joined.
    pub xlreg: XlregSettings,
    /// Logging.
    pub log: LogSettings,
}

/// `[log]`: logging that can change at run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Log filter (a level or tracing directives). Empty: the
    /// `--log-level` flag or `CATALOGUE_LOG`, else `info`. Applied again on
    /// SIGHUP.
    pub level: String,
}

/// `[node]`: who this node is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSettings {
    /// Node name, unique in the cluster and named by its TLS certificate.
    /// Empty in the files means the host name; the loader fills it in.
    pub name: String,
    /// Cluster this node belongs to.
    pub cluster: String,
    /// Deployment environment; clients and peers expecting another one leave.
    pub environment: String,
    /// Plaintext peer links and registration over TCP without uid checks.
    pub debug: bool,
    /// Directory for state that must survive restarts.
    pub data_dir: PathBuf,
    /// How long the node's thread keeps polling its sockets after a frame
    /// arrives instead of sleeping (zero: never); see [`crate::busy_poll`].
    #[serde(with = "humantime_serde")]
    pub busy_poll: Duration,
}

/// `[listen]`: addresses; an empty string disables that listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenSettings {
    /// TCP address for client connections (`ip:port`).
    pub client: String,
    /// Path of the UNIX socket for local clients and registration.
    pub socket: String,
    /// TCP address for peer links (`ip:port`).
    pub peer: String,
    /// TLS on the client TCP port (docs/PROTOCOL.md §1.1).
    pub client_tls: ClientTls,
}

/// `listen.client_tls`: what the client TCP port asks of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientTls {
    /// Plaintext, as the UNIX socket.
    Off,
    /// TLS with this node's certificate (`tls.cert`, `tls.key`); clients
    /// verify it against the cluster CA.
    On,
    /// TLS, and each client presents a certificate the cluster CA
    /// (`tls.ca`) signed.
    Mutual,
}

/// `[tls]`: PEM files for peer links; all three set, or all three empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// CA certificate(s) that sign every node of the cluster.
    pub ca: String,
    /// This node's certificate (chain).
    pub cert: String,
    /// This node's private key.
    pub key: String,
}

impl TlsSettings {
    /// True when no TLS file is configured at all.
    pub fn is_empty(&self) -> bool {
        self.ca.is_empty() && self.cert.is_empty() && self.key.is_empty()
    }
}

/// One `[[peers]]` entry: a neighbour this node dials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSettings {
    /// The peer's node name (and the name its certificate must carry).
    pub name: String,
    /// `host:port` of the peer's peer listener; empty to accept links from
    /// this peer without dialing it.
    pub address: String,
}

/// `[register]`: who may register services over the UNIX socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterSettings {
    /// Uids allowed to register; with `allowed_gids` also empty, root and the
    /// daemon's own uid.
    pub allowed_uids: Vec<u32>,
    /// Gids allowed to register.
    pub allowed_gids: Vec<u32>,
}

/// What happens to a subscription whose queue overflows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverflowPolicy {
    /// Notify, discard the queue, send a fresh snapshot.
    Resnapshot,
    /// Notify and cancel the subscription.
    Drop,
}

/// `[limits]`: bounds that keep one client or peer from hurting the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSettings {
    /// Largest frame body accepted or sent, bytes.
    pub max_frame_bytes: usize,
    /// Largest service URI, bytes.
    pub max_uri_bytes: usize,
    /// Largest compiled subscription regex, bytes.
    pub max_regex_bytes: usize,
    /// Subscriptions per connection.
    pub subscriptions_per_connection: usize,
    /// Registered services per connection.
    pub registrations_per_connection: usize,
    /// Events queued per subscription before it overflows.
    pub subscription_queue: usize,
    /// Policy for an overflowing subscription.
    pub overflow_policy: OverflowPolicy,
    /// Visible changes the node keeps (the latest of each URI), numbered,
    /// so a subscription that lost its connection can resume with the
    /// changes it missed rather than a fresh snapshot (docs/PROTOCOL.md
    /// §5); 0 keeps none.
    pub subscription_history: usize,
    /// Largest frame body accepted before the other side is known: the
    /// plaintext handshake on the peer port (either side) and the first
    /// frame of a peer link (`max_frame_bytes` applies if smaller).
    pub handshake_frame_bytes: usize,
    /// Time a frame may take to arrive whole once part of it has: a
    /// connection that started a frame and did not finish it in time is
    /// closed (docs/PROTOCOL.md §1).
    #[serde(with = "humantime_serde")]
    pub frame_read_timeout: Duration,
    /// Bytes held in partly received frames, every client and peer
    /// connection together; the connection whose bytes would go over it is
    /// closed.
    pub input_buffer_bytes: usize,
    /// Subscriptions on the node, every connection together.
    pub subscriptions_total: usize,
    /// Subscriptions held by the UNIX-socket connections of one uid.
    pub subscriptions_per_uid: usize,
    /// Subscriptions held by the TCP connections from one IP address.
    pub subscriptions_per_address: usize,
    /// Estimated memory of the compiled regexes of every subscription
    /// together, bytes (`crate::matcher::compile_measured`).
    pub regex_memory_bytes: usize,
    /// Requests one client connection may have read and not yet had
    /// answered; at the bound the connection reads nothing more until an
    /// answer goes out. Bounds the supervisor's mailbox (see
    /// docs/OPERATIONS.md, "Limits on connections and work").
    pub requests_in_flight: usize,
    /// Requests all TCP connections together may have read and not yet
    /// had answered (a fair queue: each connection waits its turn).
    pub requests_in_flight_tcp: usize,
    /// The same for all UNIX socket connections, apart from TCP's.
    pub requests_in_flight_unix: usize,
    /// Client connections open at once over TCP.
    pub connections_tcp: usize,
    /// Client connections open at once over the UNIX socket; TCP clients
    /// never take these places.
    pub connections_unix: usize,
    /// A client connection that holds nothing (no registration, no
    /// subscription, no request in flight) and sends nothing for this long
    /// is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Peer-port connections whose handshake is in progress at once; more
    /// are refused as they arrive.
    pub handshakes_in_progress: usize,
    /// Of those, how many may come from one source address.
    pub handshakes_in_progress_per_address: usize,
}

/// `[sync]`: replication tuning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSettings {
    /// How long tombstones of deletes are kept.
    #[serde(with = "humantime_serde")]
    pub tombstone_ttl: Duration,
    /// How long services of an unreachable origin stay visible.
    #[serde(with = "humantime_serde")]
    pub unreachable_grace: Duration,
    /// Largest accepted lead of a peer's clock over ours.
    #[serde(with = "humantime_serde")]
    pub max_clock_drift: Duration,
    /// Most entries per lock/unlockall batch.
    pub batch_max_entries: usize,
    /// Longest wait to batch a change with others.
    #[serde(with = "humantime_serde")]
    pub batch_delay: Duration,
    /// Most unacknowledged frames in flight per link.
    pub window: usize,
    /// Time without an ack before a frame is resent.
    #[serde(with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// First reconnect delay of an outbound link, and the longest wait
    /// after a dial that made no TCP connection (see `crate::backoff`).
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Upper bound of the reconnect delay (reached by refused handshakes).
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
}

/// `[metrics]`: the HTTP endpoint for operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// `ip:port` of /metrics, /health and /ready; empty disables it.
    pub listen: String,
}

/// `[http]`: the HTTP/JSON API (docs/HTTP.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// `ip:port` of the read-only API; empty disables it.
    pub listen: String,
    /// Services in one page of `GET /v1/services` at most (and when the
    /// request gives no `limit`).
    pub page_limit: usize,
    /// Connections the API holds at once; more wait in the kernel's
    /// accept queue.
    pub max_connections: usize,
    /// Largest request (query string and body), in bytes; larger ones are
    /// answered 413.
    pub max_request_bytes: usize,
    /// Path of the UNIX socket serving the API *with* registration by
    /// lease (SO_PEERCRED checked like the native socket); empty: none.
    pub socket: String,
    /// Leases held at once at most.
    pub max_leases: usize,
    /// Longest TTL a lease may ask for.
    #[serde(with = "humantime_serde")]
    pub max_lease_ttl: Duration,
}

/// `[xlreg]`: the cluster registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XlregSettings {
    /// Host the registry in this node.
    pub serve: bool,
    /// `ip:port` the hosted registry listens on.
    pub listen: String,
    /// `host:port` of the registry to join; empty: none.
    pub server: String,
    /// PEM public key of that registry.
    pub server_key: String,
    /// File holding the shared secret this node proves to the registry at
    /// `server` (when its admission control asks for one); empty: none.
    pub secret_file: String,
    /// Time a connection to the hosted registry has, from its accept, to
    /// send its Hello and identify (`ClientOK`).
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Concurrent handshakes served (from the Hello's decryption to
    /// `ClientOK`).
    pub max_handshakes: usize,
    /// An identified session silent for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// New connections one source address may open per second (token
    /// bucket refilled at this rate); 0: no limit.
    pub sessions_per_source: u32,
    /// Connections one source may open at once above that rate (the
    /// bucket's size).
    pub sessions_burst: u32,
    /// Connections one source address may hold open at once (handshakes and
    /// sessions); 0: no limit.
    pub max_connections_per_source: usize,
    /// Most clients the hosted registry holds.
    pub max_clients: usize,
    /// Most clusters the hosted registry holds.
    pub max_clusters: usize,
    /// Most live clusters one client may have created.
    pub max_clusters_per_client: usize,
    /// A client that has joined no cluster, and created none still alive,
    /// is forgotten this long after it registered; a cluster nobody has
    /// joined, this long after its creation.
    #[serde(with = "humantime_serde")]
    pub client_ttl: Duration,
    /// Admission control of the hosted registry (an extension; off when
    /// both lists are empty).
    pub admit: XlregAdmitSettings,
    /// Uids besides the node's own and root's that may use the hosted
    /// registry's admin socket (`catalogue xlreg admin`).
    #[serde(default)]
    pub admin_uids: Vec<u32>,
    /// Cluster to create or join.
    pub cluster: XlregClusterSettings,
}

/// `[xlreg.admit]`: who the hosted registry lets identify.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XlregAdmitSettings {
    /// Client signing keys admitted, each a fingerprint (`sha256:<hex>`, as
    /// `catalogue xlreg fingerprint` prints), a PEM public key, or the path
    /// of a PEM public key file. Empty: any key.
    pub keys: Vec<String>,
    /// File holding a shared secret every client must prove in `Client`
    /// (`AdmitProof`). Empty: no secret.
    pub secret_file: String,
}

impl XlregAdmitSettings {
    /// True when admission control is off (the open registry of the
    /// original xlReg; docs/XLREG.md §14, Admission control).
    pub fn is_open(&self) -> bool {
        self.keys.is_empty() && self.secret_file.is_empty()
    }
}

/// `[xlreg.cluster]`: the cluster a node forms through the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XlregClusterSettings {
    /// Cluster name; empty: none.
    pub name: String,
    /// Most members (2..=64), used when the cluster is created, and the
    /// size a found cluster must have.
    pub size: u32,
    /// Endpoints per member (1 or 2).
    pub endpoints: u32,
    /// Who must have created the cluster: a client name, or the
    /// fingerprint of its signing key (`sha256:<hex>`). The node of that
    /// name creates the cluster; the others only join it, and only if the
    /// registry says that client created it. Empty: any node creates it
    /// and the creator is not checked.
    pub creator: String,
}

impl Settings {
    /// Checks every value and the relations between values. Returns all the
    /// problems found, each naming its key, or nothing.
    pub fn validate(&self) -> Vec<Problem> {
        validate::validate(self)
    }

    /// Valid settings that are probably a mistake in production (e.g. a
    /// registry served without admission control): each names its key.
    /// `config check` prints them, `serve` logs them; neither refuses.
    pub fn warnings(&self) -> Vec<Problem> {
        validate::warnings(self)
    }
}
