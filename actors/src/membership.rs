//! Cluster formation through xlReg: the `ClusterMembership` actor.
//!
//! With `xlreg.server`, `xlreg.server_key` and `xlreg.cluster` set, a node
//! logs in to the registry (a client identity kept in
//! `node.data_dir/xlreg-client`), creates the cluster if it does not exist,
//! joins it, and polls the member list (every 250 ms until it is complete,
//! then every 5 s, keeping one session open; reconnecting with backoff).
//! Each member it learns becomes a known peer; the node dials those whose
//! name sorts before its own (so each pair is dialed once) at the first
//! endpoint of their token. Only names in member tokens (and configured
//! peers) are accepted on the peer port. Its member index is its node id in
//! the cluster.

use std::{collections::BTreeMap, path::PathBuf, sync::Arc, time::Duration};

use actix::prelude::*;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::{
    backoff::Backoff,
    stats::{ActorMetrics, Stats},
    xlreg::{ClientError, ClusterRef, Identity, Member, PublicKey, RegistryClient},
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
    /// Where the client identity is kept.
    pub identity_dir: PathBuf,
    /// Our endpoints: the peer listener first.
    pub my_ends: Vec<String>,
}

/// A member learned from the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// Its node name.
    pub name: String,
    /// Its first endpoint (peer links).
    pub address: String,
    /// Should this node dial it (its name sorts before ours)?
    pub dial: bool,
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
    complete: bool,
}

impl ClusterMembership {
    /// A membership that reports members on `found` until `stop`.
    pub fn new(
        cfg: MembershipConfig,
        found: mpsc::UnboundedSender<Discovered>,
        stop: watch::Receiver<bool>,
        stats: Arc<Stats>,
    ) -> Self {
        ClusterMembership {
            cfg,
            found,
            known: BTreeMap::new(),
            stop,
            metrics: ActorMetrics::new(stats, "membership"),
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
            poll_loop(cfg, me, stop)
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
        for m in &msg.members {
            if m.name == self.cfg.node {
                if !self.known.contains_key(&m.name) {
                    info!(
                        index = m.index,
                        "joined the cluster; this node's id is its member index"
                    );
                    self.known.insert(m.name.clone(), String::new());
                }
                continue;
            }
            let Some(address) = m.my_ends.first().cloned() else {
                continue;
            };
            if self.known.get(&m.name) == Some(&address) {
                continue;
            }
            info!(member = %m.name, %address, index = m.index, "cluster member learned");
            self.known.insert(m.name.clone(), address.clone());
            let dial = m.name < self.cfg.node;
            let _ = self.found.send(Discovered {
                name: m.name.clone(),
                address,
                dial,
            });
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
        if let Err(e) = result {
            warn!(server = %cfg.server, error = %e, "xlReg session failed; retrying");
            if matches!(e, ClientError::UnknownClient) {
                let _ = identity.forget();
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
) -> Result<(), ClientError> {
    let mut client = RegistryClient::connect(&cfg.server, key).await?;
    client.login(identity, Some(&cfg.my_ends)).await?;
    client.create(&cfg.cluster, cfg.size, cfg.endpoints).await?;
    let info = client.join(&cfg.cluster).await?;
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
