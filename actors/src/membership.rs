//! Cluster formation through xlReg: the `ClusterMembership` actor.
//!
//! With `xlreg.server`, `xlreg.server_key` and `xlreg.cluster` set, a node
//! logs in to the registry (a client identity kept in
//! `node.data_dir/xlreg-client`), creates the cluster if it does not exist,
//! joins it, and polls the member list (every 250 ms until it is complete,
//! then every 5 s, keeping one session open; reconnecting with backoff).
//! Each member it learns becomes a known peer; the node dials those whose
//! name sorts before its own (so each pair is dialed once) at the first
//! endpoint of their token. Every poll is compared with what is known
//! ([`membership_changes`]): a member whose endpoint changed is dialed at
//! the new one, and one no longer listed (it left, or the registry's
//! operator removed it) is dropped as a peer removed from the
//! configuration would be: no dialing, its links closed, its name no
//! longer accepted. So changes take effect within one poll interval. Only names in member tokens (and configured
//! peers) are accepted on the peer port, and a member that is not a
//! configured peer must also present a certificate naming the cluster
//! (`catalogue tls cert --cluster`; see `crate::peer::handshake`). Its
//! member index is its node id in the cluster.
//!
//! A node does not trust the registry's cluster blindly. Before it joins it
//! checks ([`check_cluster`]) that the registry registered it under its own
//! name (not `node-c-2`: someone else holds `node-c`), and that the cluster
//! has the configured size and endpoint count and, when
//! `xlreg.cluster.creator` is set, was created by that client (the registry
//! names creators in an extension, docs/XLREG.md §14). With a creator set,
//! only that node creates the cluster; the others wait for it. A cluster
//! that fails a check is refused: an error in the log, a count in
//! `catalogue_xlreg_cluster_refusals_total{reason}`, and no join; the node
//! tries again later (backing off to 30 s).

use std::{collections::BTreeMap, path::PathBuf, sync::Arc, time::Duration};

use actix::prelude::*;
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::{
    backoff::Backoff,
    metrics::{ActorMetrics, Metrics},
    xlreg::{
        ClientError, ClientOptions, ClusterInfo, ClusterRef, Identity, Member, PublicKey,
        RegistryClient, client::Secret, keys, registry::RegistryError,
    },
};

/// Poll interval while members are missing.
const POLL_FAST: Duration = Duration::from_millis(250);
/// Poll interval once every member is known.
const POLL_SLOW: Duration = Duration::from_secs(5);

/// What the membership needs to know.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// This node's name.
    pub node: String,
    /// `host:port` of the registry.
    pub server: String,
    /// PEM file of the registry's public key.
    pub server_key: PathBuf,
    /// Cluster name, size and endpoints per member.
    pub cluster: String,
    /// Most members.
    pub size: u32,
    /// Endpoints per member.
    pub endpoints: u32,
    /// Who must have created the cluster: a client name, a key
    /// fingerprint (`sha256:<hex>`), or empty (not checked).
    pub creator: String,
    /// The registry's shared secret, if it asks for one.
    pub secret: Option<Secret>,
    /// Where the client identity is kept.
    pub identity_dir: PathBuf,
    /// Our endpoints: the peer listener first.
    pub my_ends: Vec<String>,
}

impl MembershipConfig {
    /// Whether this node creates the cluster (no creator configured, or
    /// this node is it).
    pub fn creates(&self) -> bool {
        self.creator.is_empty() || self.creator == self.node
    }
}

/// Why a node refuses the cluster the registry offers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterRefusal {
    /// The registry registered this node under another name.
    #[error(
        "the registry registered this node as {given:?}: the name {wanted:?} is held by another \
         client (squatted?); not joining under another name"
    )]
    NameTaken {
        /// `node.name`.
        wanted: String,
        /// The name the registry gave.
        given: String,
    },
    /// The cluster's size differs from `xlreg.cluster.size`.
    #[error(
        "cluster {cluster:?} in the registry has size {found}, but xlreg.cluster.size is \
         {configured}: created by someone else? not joining"
    )]
    Size {
        /// The cluster.
        cluster: String,
        /// Its size in the registry.
        found: u32,
        /// The configured size.
        configured: u32,
    },
    /// The cluster's endpoint count differs from `xlreg.cluster.endpoints`.
    #[error(
        "cluster {cluster:?} in the registry wants {found} endpoints per member, but \
         xlreg.cluster.endpoints is {configured}: not joining"
    )]
    Endpoints {
        /// The cluster.
        cluster: String,
        /// Its endpoint count in the registry.
        found: u32,
        /// The configured count.
        configured: u32,
    },
    /// Someone else created the cluster.
    #[error(
        "cluster {cluster:?} was created by {found}, but xlreg.cluster.creator is \
         {configured:?}: not joining"
    )]
    Creator {
        /// The cluster.
        cluster: String,
        /// Who the registry says created it (name and key fingerprint).
        found: String,
        /// The configured creator.
        configured: String,
    },
    /// The registry does not say who created the cluster.
    #[error(
        "the registry does not say who created cluster {cluster:?} (a seed registry, or a \
         cluster older than that), and xlreg.cluster.creator is {configured:?}: not joining"
    )]
    CreatorUnknown {
        /// The cluster.
        cluster: String,
        /// The configured creator.
        configured: String,
    },
}

impl ClusterRefusal {
    /// Label of `catalogue_xlreg_cluster_refusals_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            ClusterRefusal::NameTaken { .. } => "name_taken",
            ClusterRefusal::Size { .. } => "size",
            ClusterRefusal::Endpoints { .. } => "endpoints",
            ClusterRefusal::Creator { .. } => "creator",
            ClusterRefusal::CreatorUnknown { .. } => "creator_unknown",
        }
    }
}

/// Checks the cluster the registry offers against the configuration:
/// size, endpoint count, and creator when one is configured.
pub fn check_cluster(cfg: &MembershipConfig, info: &ClusterInfo) -> Result<(), ClusterRefusal> {
    if info.size != cfg.size {
        return Err(ClusterRefusal::Size {
            cluster: info.name.clone(),
            found: info.size,
            configured: cfg.size,
        });
    }
    if info.endpoints != cfg.endpoints {
        return Err(ClusterRefusal::Endpoints {
            cluster: info.name.clone(),
            found: info.endpoints,
            configured: cfg.endpoints,
        });
    }
    if cfg.creator.is_empty() {
        return Ok(());
    }
    let Some(creator) = &info.creator else {
        return Err(ClusterRefusal::CreatorUnknown {
            cluster: info.name.clone(),
            configured: cfg.creator.clone(),
        });
    };
    let matches = match keys::parse_fingerprint(&cfg.creator) {
        Some(fp) => creator.key == fp,
        None => creator.name == cfg.creator,
    };
    if matches {
        Ok(())
    } else {
        Err(ClusterRefusal::Creator {
            cluster: info.name.clone(),
            found: format!(
                "{:?} ({})",
                creator.name,
                keys::format_fingerprint(&creator.key)
            ),
            configured: cfg.creator.clone(),
        })
    }
}

/// Why a session with the registry ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    /// The registry, the connection or the identity failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The offered cluster is not the configured one.
    #[error(transparent)]
    Refused(#[from] ClusterRefusal),
}

/// A change in the cluster's membership, as the registry's member list
/// shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovered {
    /// A member learned, or one whose first endpoint changed (a host that
    /// moved, or a freed slot joined by a new node): trust it, and dial it
    /// (again) at `address` if `dial`.
    Member {
        /// Its node name.
        name: String,
        /// Its first endpoint (peer links).
        address: String,
        /// Should this node dial it (its name sorts before ours)?
        dial: bool,
    },
    /// A member that left or was removed by the registry's operator: stop
    /// dialing it, close its links, and no longer trust its name (as a
    /// peer removed from the configuration).
    Gone {
        /// Its node name.
        name: String,
    },
}

/// What changed between the members `known` (name to first endpoint, this
/// node's own name with an empty one) and the registry's full list
/// `members`: members new or moved, then members gone. `me` is this node.
pub fn membership_changes(
    known: &BTreeMap<String, String>,
    me: &str,
    members: &[Member],
) -> Vec<Discovered> {
    let mut out = Vec::new();
    for m in members {
        if m.name == me {
            continue;
        }
        let Some(address) = m.my_ends.first() else {
            continue;
        };
        if known.get(&m.name) != Some(address) {
            out.push(Discovered::Member {
                name: m.name.clone(),
                address: address.clone(),
                dial: m.name.as_str() < me,
            });
        }
    }
    out.extend(
        known
            .keys()
            .filter(|name| name.as_str() != me && !members.iter().any(|m| &m.name == *name))
            .map(|name| Discovered::Gone { name: name.clone() }),
    );
    out
}

/// The member list as of the last poll.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct MembersUpdate {
    members: Vec<Member>,
    complete: bool,
}

/// The membership actor.
pub struct ClusterMembership {
    cfg: MembershipConfig,
    found: mpsc::UnboundedSender<Discovered>,
    known: BTreeMap<String, String>,
    stop: watch::Receiver<bool>,
    metrics: ActorMetrics,
    stats: Arc<Metrics>,
    complete: bool,
}

impl ClusterMembership {
    /// A membership that reports members on `found` until `stop`.
    pub fn new(
        cfg: MembershipConfig,
        found: mpsc::UnboundedSender<Discovered>,
        stop: watch::Receiver<bool>,
        stats: Arc<Metrics>,
    ) -> Self {
        ClusterMembership {
            cfg,
            found,
            known: BTreeMap::new(),
            stop,
            metrics: ActorMetrics::new(stats.clone(), "membership"),
            stats,
            complete: false,
        }
    }
}

impl Actor for ClusterMembership {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.metrics.started();
        let cfg = self.cfg.clone();
        let stop = self.stop.clone();
        let me = ctx.address();
        ctx.spawn(
            poll_loop(cfg, me, stop, self.stats.clone())
                .into_actor(self)
                .map(|(), _, ctx| ctx.stop()),
        );
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.metrics.stopped();
    }
}

impl Handler<MembersUpdate> for ClusterMembership {
    type Result = ();

    fn handle(&mut self, msg: MembersUpdate, _ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("MembersUpdate");
        match msg.members.iter().find(|m| m.name == self.cfg.node) {
            Some(me) if !self.known.contains_key(&me.name) => {
                info!(
                    index = me.index,
                    "joined the cluster; this node's id is its member index"
                );
                self.known.insert(me.name.clone(), String::new());
            }
            Some(_) => {}
            None if self.known.remove(&self.cfg.node).is_some() => {
                warn!(
                    "this node is no longer a member of the xlReg cluster (it left or was removed)"
                );
            }
            None => {}
        }
        for change in membership_changes(&self.known, &self.cfg.node, &msg.members) {
            match &change {
                Discovered::Member { name, address, .. } => {
                    let index = msg
                        .members
                        .iter()
                        .find(|m| &m.name == name)
                        .map(|m| m.index);
                    match self.known.insert(name.clone(), address.clone()) {
                        None => info!(member = %name, %address, index, "cluster member learned"),
                        Some(old) => {
                            info!(member = %name, %address, %old, index, "cluster member moved")
                        }
                    }
                }
                Discovered::Gone { name } => {
                    info!(member = %name, "cluster member gone (left or removed)");
                    self.known.remove(name);
                }
            }
            let _ = self.found.send(change);
        }
        if msg.complete && !self.complete {
            info!(members = msg.members.len(), "every cluster member is known");
        }
        self.complete = msg.complete;
    }
}

async fn poll_loop(
    cfg: MembershipConfig,
    me: Addr<ClusterMembership>,
    mut stop: watch::Receiver<bool>,
    stats: Arc<Metrics>,
) {
    let key = match std::fs::read(&cfg.server_key)
        .map_err(|e| e.to_string())
        .and_then(|pem| PublicKey::from_pem(&pem).map_err(|e| e.to_string()))
    {
        Ok(key) => key,
        Err(e) => {
            warn!(path = %cfg.server_key.display(), error = %e, "cannot read the registry's public key; not joining a cluster");
            return;
        }
    };
    let mut identity = match Identity::load_or_create(&cfg.identity_dir, &cfg.node) {
        Ok(identity) => identity,
        Err(e) => {
            warn!(error = %e, "cannot load or create the xlReg client identity; not joining a cluster");
            return;
        }
    };
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
    loop {
        let result = tokio::select! {
            r = session(&cfg, &key, &mut identity, &me, &mut backoff) => r,
            _ = stop.changed() => return,
        };
        match result {
            Ok(()) => {}
            Err(SessionError::Refused(refusal)) => {
                stats.xlreg_cluster_refusal(refusal.reason());
                error!(
                    server = %cfg.server,
                    cluster = %cfg.cluster,
                    reason = refusal.reason(),
                    error = %refusal,
                    "refusing the xlReg cluster"
                );
                if matches!(refusal, ClusterRefusal::NameTaken { .. }) {
                    // Register anew next time, under the node's own name
                    // (not the one the registry gave): it may be free then.
                    let _ = identity.forget_as(&cfg.node);
                }
            }
            Err(SessionError::Client(ClientError::Refused(desc)))
                if !cfg.creates() && desc == RegistryError::NoSuchCluster.to_string() =>
            {
                info!(cluster = %cfg.cluster, creator = %cfg.creator, "waiting for the creator to create the xlReg cluster");
            }
            Err(SessionError::Client(e)) => {
                warn!(server = %cfg.server, error = %e, "xlReg session failed; retrying");
                if matches!(e, ClientError::UnknownClient) {
                    let _ = identity.forget();
                }
            }
        }
        let delay = backoff.next_delay(&mut rand::rng());
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn session(
    cfg: &MembershipConfig,
    key: &PublicKey,
    identity: &mut Identity,
    me: &Addr<ClusterMembership>,
    backoff: &mut Backoff,
) -> Result<(), SessionError> {
    let options = ClientOptions {
        secret: cfg.secret.clone(),
        ..ClientOptions::default()
    };
    let mut client = RegistryClient::connect_with(&cfg.server, key, &options).await?;
    let registered = client.login(identity, Some(&cfg.my_ends)).await?;
    if registered.name != cfg.node {
        return Err(ClusterRefusal::NameTaken {
            wanted: cfg.node.clone(),
            given: registered.name,
        }
        .into());
    }
    let by_name = ClusterRef {
        id: None,
        name: Some(cfg.cluster.clone()),
    };
    let found = if cfg.creates() {
        client.create(&cfg.cluster, cfg.size, cfg.endpoints).await?
    } else {
        client.get_cluster(&by_name, Some(0)).await?.cluster
    };
    check_cluster(cfg, &found)?;
    // By ID: the cluster checked is the one joined.
    let info = client
        .join_ref(ClusterRef {
            id: Some(found.id.clone()),
            name: None,
        })
        .await?;
    debug!(cluster = %info.name, size = info.size, "joined through xlReg");
    let cluster = ClusterRef {
        id: Some(info.id.clone()),
        name: None,
    };
    loop {
        let members = client.members(&cluster).await?;
        backoff.reset();
        let complete = members.complete();
        me.do_send(MembersUpdate {
            members: members.members,
            complete,
        });
        tokio::time::sleep(if complete { POLL_SLOW } else { POLL_FAST }).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xlreg::Creator;

    fn cfg(creator: &str) -> MembershipConfig {
        MembershipConfig {
            node: "node-c".into(),
            server: "127.0.0.1:1".into(),
            server_key: PathBuf::new(),
            cluster: "prod".into(),
            size: 3,
            endpoints: 1,
            creator: creator.into(),
            secret: None,
            identity_dir: PathBuf::new(),
            my_ends: vec![],
        }
    }

    fn cluster(size: u32, endpoints: u32, creator: Option<(&str, u8)>) -> ClusterInfo {
        ClusterInfo {
            id: vec![1; 32],
            name: "prod".into(),
            size,
            endpoints,
            attrs: 0,
            creator: creator.map(|(name, key)| Creator {
                name: name.into(),
                key: [key; 32],
            }),
        }
    }

    #[test]
    fn the_configured_cluster_passes() {
        check_cluster(&cfg(""), &cluster(3, 1, None)).expect("no creator configured");
        check_cluster(&cfg("node-a"), &cluster(3, 1, Some(("node-a", 7)))).expect("by name");
        let fp = keys::format_fingerprint(&[7; 32]);
        check_cluster(&cfg(&fp), &cluster(3, 1, Some(("anyone", 7)))).expect("by key");
    }

    #[test]
    fn a_squatted_cluster_is_refused_with_the_reason() {
        let e = check_cluster(&cfg(""), &cluster(2, 1, None)).expect_err("size");
        assert_eq!(e.reason(), "size");
        assert!(e.to_string().contains("size 2"), "{e}");
        let e = check_cluster(&cfg(""), &cluster(3, 2, None)).expect_err("endpoints");
        assert_eq!(e.reason(), "endpoints");
        let e =
            check_cluster(&cfg("node-a"), &cluster(3, 1, Some(("evil", 7)))).expect_err("creator");
        assert_eq!(e.reason(), "creator");
        assert!(e.to_string().contains("\"evil\""), "{e}");
        let fp = keys::format_fingerprint(&[7; 32]);
        let e = check_cluster(&cfg(&fp), &cluster(3, 1, Some(("node-a", 8)))).expect_err("key");
        assert_eq!(e.reason(), "creator", "the name alone does not do");
        let e = check_cluster(&cfg("node-a"), &cluster(3, 1, None)).expect_err("unknown");
        assert_eq!(e.reason(), "creator_unknown");
    }

    #[test]
    fn only_the_creator_creates() {
        assert!(cfg("").creates());
        assert!(cfg("node-c").creates());
        assert!(!cfg("node-a").creates());
        assert!(!cfg(&keys::format_fingerprint(&[1; 32])).creates());
    }

    fn member(index: u32, name: &str, end: &str) -> Member {
        Member {
            index,
            name: name.into(),
            id: vec![index as u8; 32],
            attrs: 0,
            my_ends: vec![end.into()],
            comms_key: Vec::new(),
            sig_key: Vec::new(),
        }
    }

    #[test]
    fn members_new_moved_and_gone_are_told_apart() {
        let mut known = BTreeMap::new();
        let first = [
            member(0, "node-a", "a:1"),
            member(1, "node-b", "b:1"),
            member(2, "node-c", "c:1"),
        ];
        let changes = membership_changes(&known, "node-b", &first);
        assert_eq!(
            changes,
            [
                Discovered::Member {
                    name: "node-a".into(),
                    address: "a:1".into(),
                    dial: true
                },
                Discovered::Member {
                    name: "node-c".into(),
                    address: "c:1".into(),
                    dial: false
                },
            ]
        );
        known.insert("node-a".to_string(), "a:1".to_string());
        known.insert("node-b".to_string(), String::new());
        known.insert("node-c".to_string(), "c:1".to_string());
        assert!(membership_changes(&known, "node-b", &first).is_empty());
        // node-c removed, node-a moved, node-d took slot 2
        let then = [
            member(0, "node-a", "a:2"),
            member(1, "node-b", "b:1"),
            member(2, "node-d", "d:1"),
        ];
        assert_eq!(
            membership_changes(&known, "node-b", &then),
            [
                Discovered::Member {
                    name: "node-a".into(),
                    address: "a:2".into(),
                    dial: true
                },
                Discovered::Member {
                    name: "node-d".into(),
                    address: "d:1".into(),
                    dial: false
                },
                Discovered::Gone {
                    name: "node-c".into()
                },
            ]
        );
        // this node itself is never reported gone
        assert_eq!(
            membership_changes(&known, "node-b", &first[..1]),
            [Discovered::Gone {
                name: "node-c".into()
            }]
        );
    }
}
