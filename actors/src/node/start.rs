//! Starting a node: the open-file limit, the listeners (bound first, so a
//! port in use fails the start before any actor runs), TLS contexts, the
//! metrics endpoint, the supervisor, peer connectors, the HTTP API, a hosted
//! xlReg registry, cluster membership and the node's own services. The
//! result is a [`Node`], which [`super::serve`] runs and [`super::stop`]
//! stops.

use std::{
    path::PathBuf,
    rc::Rc,
    sync::{Arc, atomic::AtomicU64},
};

use actix::prelude::*;
use catalogue_proto::catalogue::Welcome;
use tokio::{
    net::TcpListener,
    sync::{Semaphore, mpsc, watch},
    task::JoinSet,
};
use tracing::{info, warn};

use super::{
    NodeError,
    acceptor::{ACCEPT_LOG_INTERVAL, Acceptor},
    listeners::{Listeners, SocketFile},
};
use crate::{
    admission::{self, AcceptBackoff, ConnectionSlots, HandshakeSlots},
    connection::{ClientShared, auth::RegisterPolicy, tls::TlsPort},
    hlc::{Hlc, SystemClock},
    input::InputLimits,
    log_limit::LogLimit,
    membership::{ClusterMembership, Discovered, MembershipConfig},
    metrics::Metrics,
    peer::{
        PeerContext, connector::Connectors, directory::PeerDirectory, handshake::LocalIdentity,
    },
    reload::Reloader,
    settings::{ClientTls, Settings},
    subscription::ledger::{LedgerLimits, SharedLedger},
    supervisor::{CatalogueSupervisor, LinksCell, ServicesView, SupervisorConfig},
    tls::TlsContexts,
};

/// A started node: what [`super::serve`] drives and [`super::stop`] stops.
pub(super) struct Node {
    pub listeners: Listeners,
    /// Removes the socket file if the node is dropped without stopping.
    pub _socket_file: SocketFile,
    pub acceptor: Acceptor,
    /// The client port's TLS handshakes (`listen.client_tls`), if on.
    pub client_tls: Option<TlsPort>,
    /// Places for handshakes on the peer port.
    pub handshakes: HandshakeSlots,
    pub backoff: Backoffs,
    /// Accepted peer links, until their handshake and link end.
    pub peer_tasks: JoinSet<()>,
    pub peers: Rc<PeerContext>,
    pub connectors: Connectors,
    /// Members found (or gone) through xlReg.
    pub found: mpsc::UnboundedReceiver<Discovered>,
    pub reloader: Reloader,
    pub supervisor: Addr<CatalogueSupervisor>,
    pub api_servers: Vec<crate::http::ApiServer>,
    /// Tells the registry and membership actors to stop.
    pub stop_tx: watch::Sender<bool>,
    pub metrics: Option<crate::metrics_endpoint::MetricsServer>,
    pub stats: Arc<Metrics>,
}

/// The pause of each listener after failed accepts.
#[derive(Default)]
pub(super) struct Backoffs {
    pub client: AcceptBackoff,
    pub unix: AcceptBackoff,
    pub peer: AcceptBackoff,
}

/// Starts a node with `settings`: everything but accepting.
pub(super) async fn start(settings: Settings) -> Result<Node, NodeError> {
    let node = &settings.node;
    if node.debug {
        warn!(
            "debug mode: peer links stay plaintext and registration is accepted over TCP without uid checks"
        );
    }
    let nofile = match admission::raise_nofile() {
        Ok(n) => {
            info!(
                soft = n.soft,
                hard = n.hard,
                was = n.before,
                "open file limit"
            );
            n.soft
        }
        Err(e) => {
            warn!(error = %e, "cannot read or raise the open file limit");
            u64::MAX
        }
    };
    let listeners = Listeners::bind(&settings).await?;
    // Removes the socket file if the start fails from here on (the normal
    // shutdown removes it itself, below).
    let _socket_file = SocketFile(listeners.socket_path.clone());
    info!(
        node = %node.name,
        cluster = %node.cluster,
        environment = %node.environment,
        client = %Listeners::describe(&listeners.client),
        client_tls = ?settings.listen.client_tls,
        socket = %listeners.socket_path.as_ref().map_or_else(|| "-".to_string(), |p| p.display().to_string()),
        peer = %Listeners::describe(&listeners.peer),
        "listening"
    );

    for warning in settings.warnings() {
        warn!(key = %warning.key, "{}", warning.problem);
    }
    let tls = if node.debug || settings.tls.is_empty() {
        None
    } else {
        let t = &settings.tls;
        Some(Arc::new(TlsContexts::from_files(
            t.ca.as_ref(),
            t.cert.as_ref(),
            t.key.as_ref(),
        )?))
    };
    let client_tls = match settings.listen.client_tls {
        ClientTls::Off => None,
        mode => {
            let t = &settings.tls;
            Some(TlsContexts::client_port_from_files(
                t.ca.as_ref(),
                t.cert.as_ref(),
                t.key.as_ref(),
                mode == ClientTls::Mutual,
            )?)
        }
    };
    let xlreg_cluster =
        (!settings.xlreg.server.is_empty()).then(|| settings.xlreg.cluster.name.clone());
    if let (Some(cluster), Some(_)) = (&xlreg_cluster, &tls) {
        warn_unless_certificate_names(&settings.tls.cert, cluster);
    }
    let xlreg_secret = match settings.xlreg.secret_file.as_str() {
        "" => None,
        path => Some(crate::xlreg::client::Secret(
            crate::xlreg::admission::read_secret(std::path::Path::new(path)).map_err(
                |problem| {
                    crate::xlreg::XlregError::Admission(crate::xlreg::admission::AdmitConfigError {
                        key: "xlreg.secret_file".into(),
                        problem,
                    })
                },
            )?,
        )),
    };
    let stats = Arc::new(Metrics::default());
    let input = InputLimits::new(&settings.limits);
    stats.watch_input(&input.budget);
    let directory = PeerDirectory::default();
    for p in &settings.peers {
        directory.add(&p.name, &p.address);
    }
    stats
        .open_files_limit
        .set(i64::try_from(nofile).unwrap_or(i64::MAX));
    // Bound before any actor starts, so that a port in use fails the start
    // cleanly.
    let metrics = match settings.metrics.listen.as_str() {
        "" => None,
        addr => {
            let server = crate::metrics_endpoint::start(
                addr,
                stats.clone(),
                directory.clone(),
                &node.name,
                &node.cluster,
            )
            .map_err(|source| NodeError::Metrics {
                addr: addr.to_string(),
                source,
            })?;
            info!(address = %server.local_addr, "metrics endpoint listening");
            Some(server)
        }
    };
    let hlc = Hlc::new(SystemClock, settings.sync.max_clock_drift);
    let view = ServicesView::default();
    let supervisor = CatalogueSupervisor::new(
        node.name.clone(),
        hlc,
        directory.clone(),
        SupervisorConfig::from(&settings),
        stats.clone(),
        view.clone(),
    );
    let links_cell = supervisor.links_cell();
    let supervisor = supervisor.start();
    let peers = Rc::new(PeerContext::new(
        &settings,
        LocalIdentity {
            name: node.name.clone(),
            cluster: node.cluster.clone(),
            environment: node.environment.clone(),
            debug: node.debug,
            xlreg_cluster,
        },
        tls,
        directory,
        supervisor.clone(),
        stats.clone(),
        input.clone(),
    ));
    let shared = Arc::new(ClientShared {
        limits: settings.limits.clone(),
        policy: std::sync::RwLock::new(RegisterPolicy::from(&settings)),
        supervisor: supervisor.clone(),
        view: view.clone(),
        stats: stats.clone(),
        next_key: AtomicU64::new(1),
        subscriptions: SharedLedger::new(
            LedgerLimits::new(&settings.limits),
            stats.regex_memory.clone(),
        ),
        patterns: crate::subscription::patterns::PatternCache::new(),
        reader: crate::reader::Reader::start().map_err(NodeError::Reader)?,
        log: std::sync::Mutex::new(LogLimit::new(ACCEPT_LOG_INTERVAL)),
    });
    let welcome = Welcome {
        server_name: node.name.clone(),
        cluster: node.cluster.clone(),
        environment: node.environment.clone(),
        protocol_major: catalogue_proto::PROTOCOL_MAJOR,
        protocol_minor: catalogue_proto::PROTOCOL_MINOR,
        port: catalogue_proto::catalogue::WelcomePort::Client.into(),
    };
    if settings.peers.is_empty() {
        stats.set_ready();
    }
    let api_servers = start_api(
        &settings,
        (&view, &links_cell),
        &supervisor,
        &peers.directory,
        &stats,
        &shared,
    )?;
    let (stop_tx, stop_rx) = watch::channel(false);
    if let Some(registry) =
        crate::xlreg::host(&settings, stop_rx.clone(), Some(stats.clone())).await?
    {
        info!(address = %registry.local_addr, "xlReg registry listening");
        stats.add_collector(Box::new(crate::xlreg::XlregCollector::new(
            registry.stats.clone(),
        )));
    }
    let limits = &settings.limits;
    let tcp_limit = admission::tcp_budget(
        limits.connections_tcp,
        limits.connections_unix,
        limits.handshakes_in_progress,
        nofile,
    );
    if tcp_limit < limits.connections_tcp {
        warn!(
            configured = limits.connections_tcp,
            in_force = tcp_limit,
            open_files = nofile,
            "limits.connections_tcp lowered to leave descriptors for the UNIX socket and peer handshakes"
        );
    }
    let acceptor = Acceptor {
        welcome: welcome.clone(),
        shared,
        stop: stop_rx.clone(),
        next_conn: 1,
        max_frame: settings.limits.max_frame_bytes,
        input,
        tcp: ConnectionSlots::new(tcp_limit, stats.connections_open("tcp")),
        unix: ConnectionSlots::new(limits.connections_unix, stats.connections_open("unix")),
        tcp_requests: Arc::new(Semaphore::new(limits.requests_in_flight_tcp)),
        unix_requests: Arc::new(Semaphore::new(limits.requests_in_flight_unix)),
        log: LogLimit::new(ACCEPT_LOG_INTERVAL),
        writers: JoinSet::new(),
    };
    let handshakes = HandshakeSlots::new(
        limits.handshakes_in_progress,
        limits.handshakes_in_progress_per_address,
        stats.handshakes_in_progress.clone(),
    );
    let client_tls = client_tls.map(|acceptor| {
        let slots = HandshakeSlots::new(
            limits.handshakes_in_progress,
            limits.handshakes_in_progress_per_address,
            stats.client_tls_handshakes.clone(),
        );
        TlsPort::new(acceptor, slots, limits.frame_read_timeout)
    });
    let mut connectors = Connectors::new(peers.clone());
    for p in settings.peers.iter().filter(|p| !p.address.is_empty()) {
        connectors.start(&p.name, &p.address);
    }
    let (found_tx, found_rx) = mpsc::unbounded_channel::<Discovered>();
    if !settings.xlreg.server.is_empty() {
        let advertise = |l: &Option<TcpListener>| {
            l.as_ref().and_then(|l| l.local_addr().ok()).map(|a| {
                if a.ip().is_unspecified() {
                    format!("{}:{}", node.name, a.port())
                } else {
                    a.to_string()
                }
            })
        };
        let mut my_ends: Vec<String> = advertise(&listeners.peer).into_iter().collect();
        if settings.xlreg.cluster.endpoints >= 2 {
            my_ends.extend(advertise(&listeners.client));
        }
        let x = &settings.xlreg;
        let cfg = MembershipConfig {
            node: node.name.clone(),
            server: x.server.clone(),
            server_key: PathBuf::from(&x.server_key),
            cluster: x.cluster.name.clone(),
            size: x.cluster.size,
            endpoints: x.cluster.endpoints,
            creator: x.cluster.creator.clone(),
            secret: xlreg_secret.clone(),
            identity_dir: node.data_dir.join("xlreg-client"),
            my_ends,
        };
        info!(server = %x.server, cluster = %x.cluster.name, "joining a cluster through xlReg");
        ClusterMembership::new(cfg, found_tx.clone(), stop_rx.clone(), stats.clone()).start();
    }
    let definitions =
        crate::definitions::DefinitionKeeper::new(supervisor.clone(), stats.clone()).start();
    definitions.do_send(crate::definitions::Apply {
        definitions: settings.services.clone(),
    });
    let reloader = Reloader {
        current: settings.clone(),
        peers: peers.clone(),
        clients: acceptor.shared.clone(),
        supervisor: supervisor.clone(),
        definitions,
    };

    Ok(Node {
        listeners,
        _socket_file,
        acceptor,
        client_tls,
        handshakes,
        backoff: Backoffs::default(),
        peer_tasks: JoinSet::new(),
        peers,
        connectors,
        found: found_rx,
        reloader,
        supervisor,
        api_servers,
        stop_tx,
        metrics,
        stats,
    })
}

/// Warns when this node's certificate does not name the xlReg cluster it
/// forms: its peers that know it only from the registry will refuse it.
fn warn_unless_certificate_names(cert: &str, cluster: &str) {
    let names = crate::tls::pem::load_certificates(std::path::Path::new(cert))
        .ok()
        .and_then(|certs| certs.first().map(|c| crate::tls::cluster_names(c)))
        .unwrap_or_default();
    if !names.iter().any(|n| n == cluster) {
        warn!(
            cert,
            cluster,
            "this node's certificate does not name its xlReg cluster (URI SAN catalogue://cluster/{cluster}); \
             members that know it only from the registry will refuse its links: issue it with \
             `catalogue tls cert --cluster {cluster}`"
        );
    }
}

/// Starts the HTTP API on `http.listen` (read-only) and `http.socket`
/// (with registration by lease), as configured.
fn start_api(
    settings: &Settings,
    (view, links): (&ServicesView, &LinksCell),
    supervisor: &Addr<CatalogueSupervisor>,
    directory: &PeerDirectory,
    stats: &Arc<Metrics>,
    shared: &Arc<ClientShared>,
) -> Result<Vec<crate::http::ApiServer>, NodeError> {
    let http = &settings.http;
    let node = &settings.node;
    let api = crate::http::Api::new(
        (
            view.clone(),
            links.clone(),
            directory.clone(),
            stats.clone(),
        ),
        crate::http::NodeIdentity {
            name: node.name.clone(),
            cluster: node.cluster.clone(),
            environment: node.environment.clone(),
        },
        http,
        &settings.limits,
        shared.clone(),
    );
    let mut servers = Vec::new();
    if !http.listen.is_empty() {
        let server = crate::http::start(http, api.clone()).map_err(|source| NodeError::Http {
            addr: http.listen.clone(),
            source,
        })?;
        if let Some(address) = server.local_addr {
            info!(%address, "HTTP API listening");
        }
        servers.push(server);
    }
    if !http.socket.is_empty() {
        let registrar = crate::http::Registrar {
            keeper: crate::http::LeaseKeeper::new(http.max_leases, supervisor.clone()).start(),
            shared: shared.clone(),
            max_ttl: http.max_lease_ttl,
        };
        let path = PathBuf::from(&http.socket);
        let server = crate::http::start_unix(&path, http, api, registrar).map_err(|source| {
            NodeError::Http {
                addr: http.socket.clone(),
                source,
            }
        })?;
        info!(socket = %path.display(), "HTTP API listening on a UNIX socket, with registration");
        servers.push(server);
    }
    Ok(servers)
}
