//! The registry's state and rules, as plain code: clients, clusters and
//! their members.
//!
//! A request is first *planned* against the current state
//! ([`Registry::plan`]): checked, and turned into the reply to send and the
//! [`Change`] to make, if any. The caller makes the change durable, then
//! *applies* it ([`Registry::apply`]) and only then sends the reply. The
//! log replayed at start is a sequence of the same changes, and
//! [`Registry::snapshot`] gives the shortest sequence that rebuilds the
//! current state.
//!
//! Rules (docs/XLREG.md §8: the xlReg documents', and ours where they are
//! silent):
//! - A new client proposes a name and maybe an ID; a name already taken
//!   becomes `name-2`, `name-3`...; an ID absent or taken is replaced by 32
//!   random bytes. Its attrs are kept as proposed. Registering never
//!   authenticates as an existing client: that is what the returning form,
//!   signed over this session's salt2, is for.
//! - A returning client may send a token update (new endpoints, comms key
//!   or attrs; same name, ID and signing key).
//! - `Create` of a new name makes a cluster of the proposed size clamped to
//!   2..=64; of an existing name it returns that cluster unchanged.
//! - `Join` appends the client to the members unless it is one already
//!   (one slot per client), refuses a full cluster, and refuses a client
//!   whose token does not carry exactly the cluster's endpoint count.
//! - `GetCluster` returns the tokens of the members whose bit is set in
//!   `Which` (bit N = the Nth member to join), in bit order, and the `Which`
//!   of the tokens actually sent; as many as fit one message.

use std::collections::HashMap;

use catalogue_proto::reg::{XlRegMsg, xl_reg_msg::Token};
use prost::Message;

use super::{
    crypto::{self, CryptoError},
    frame::MAX_MESSAGE_LEN,
    keys::PublicKey,
    protocol::{ClusterInfo, ClusterRef, Reply, Request},
    session::SessionContext,
    token::{self, TokenError},
};

/// Smallest cluster size.
pub const MIN_CLUSTER_SIZE: u32 = 2;
/// Largest cluster size (one bit of `Which` per member).
pub const MAX_CLUSTER_SIZE: u32 = 64;
/// Length of the IDs the registry assigns.
pub const ID_LEN: usize = 32;

/// Bounds on what the registry holds, so that nobody can fill its disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most registered clients.
    pub max_clients: usize,
    /// Most clusters.
    pub max_clusters: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_clients: 100_000,
            max_clusters: 10_000,
        }
    }
}

/// Why the registry refused a request (sent to the client in `Error`).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The token or its signature is not acceptable.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// `ClientName` and the token's `Name` differ.
    #[error("ClientName {client:?} differs from the token's Name {token:?}")]
    NameMismatch {
        /// `ClientName`.
        client: String,
        /// The token's `Name`.
        token: String,
    },
    /// A returning client's ID is not registered.
    #[error("unknown client ID")]
    UnknownClient,
    /// A returning client signed another session's salt2.
    #[error("Salt2 is not this session's")]
    SaltMismatch,
    /// A token update changes what may not change.
    #[error("a token update may not change the client's {0}")]
    Immutable(&'static str),
    /// A token update drops endpoints a cluster of the client needs.
    #[error("cluster {cluster:?} needs {needs} endpoints per member; the update has {has}")]
    UpdateEnds {
        /// The cluster.
        cluster: String,
        /// Its endpoint count.
        needs: u32,
        /// Endpoints in the update.
        has: usize,
    },
    /// The named cluster does not exist.
    #[error("no such cluster")]
    NoSuchCluster,
    /// `ClusterID` and `ClusterName` name different clusters.
    #[error("ClusterID and ClusterName name different clusters")]
    ClusterMismatch,
    /// `GetCluster` without a cluster, in a session that has none.
    #[error("no cluster: give ClusterID or ClusterName, or Create or Join first")]
    NoCluster,
    /// The cluster has as many members as its size.
    #[error("cluster {name:?} is full ({size} members)")]
    ClusterFull {
        /// The cluster.
        name: String,
        /// Its size.
        size: u32,
    },
    /// The client's token does not carry the cluster's endpoint count.
    #[error(
        "cluster {cluster:?} needs {needs} endpoints per member; this client's token has {has}"
    )]
    Endpoints {
        /// The cluster.
        cluster: String,
        /// Its endpoint count.
        needs: u32,
        /// Endpoints in the token.
        has: usize,
    },
    /// The registry holds as many clients or clusters as it may.
    #[error("the registry is full: no more {0}")]
    Full(&'static str),
    /// The request needs an identified client (a bug in the caller).
    #[error("identify first: send Client")]
    NotIdentified,
    /// No random bytes for a new ID.
    #[error("cannot make an ID: {0}")]
    Random(#[from] CryptoError),
    /// The change could not be made durable.
    #[error("registry storage failed")]
    Storage,
    /// A replayed change does not fit the state (a damaged log).
    #[error("inconsistent change: {0}")]
    Inconsistent(String),
}

/// A change to the registry, as logged.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A client registered or updated: the token with its final `Name`,
    /// `Attrs` and `ID` (and no `DigSig`).
    PutClient(Token),
    /// A cluster created.
    CreateCluster(ClusterInfo),
    /// A client joined a cluster.
    AddMember {
        /// The cluster's ID.
        cluster: Vec<u8>,
        /// The client's ID.
        client: Vec<u8>,
    },
}

/// What a planned request does.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// The change to make durable and apply before replying.
    pub change: Option<Change>,
    /// The reply.
    pub reply: Reply,
    /// The client the session is now identified as.
    pub client: Option<Vec<u8>>,
    /// The cluster the session now refers to.
    pub cluster: Option<Vec<u8>>,
}

impl Planned {
    fn reply(reply: Reply) -> Planned {
        Planned {
            change: None,
            reply,
            client: None,
            cluster: None,
        }
    }
}

/// A registered client.
#[derive(Debug, Clone)]
struct Client {
    /// The token as members see it (final name, attrs and ID).
    token: Token,
    /// Its signing key, parsed once.
    sig_key: PublicKey,
}

/// A cluster.
#[derive(Debug, Clone)]
struct Cluster {
    info: ClusterInfo,
    /// Client IDs in join order: member N has bit N of `Which`.
    members: Vec<Vec<u8>>,
}

/// The registry.
#[derive(Debug, Default)]
pub struct Registry {
    limits: Limits,
    clients: HashMap<Vec<u8>, Client>,
    client_names: HashMap<String, Vec<u8>>,
    clusters: HashMap<Vec<u8>, Cluster>,
    cluster_names: HashMap<String, Vec<u8>>,
    /// Cluster IDs in creation order (for snapshots).
    cluster_order: Vec<Vec<u8>>,
}

impl Registry {
    /// An empty registry with `limits`.
    pub fn new(limits: Limits) -> Registry {
        Registry {
            limits,
            ..Default::default()
        }
    }

    /// Number of registered clients.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Whether `id` is a registered client.
    pub fn has_client(&self, id: &[u8]) -> bool {
        self.clients.contains_key(id)
    }

    /// Number of clusters.
    pub fn cluster_count(&self) -> usize {
        self.clusters.len()
    }

    /// The members of cluster `name`, as their tokens, in join order.
    pub fn members_of(&self, name: &str) -> Option<Vec<&Token>> {
        let cluster = self.clusters.get(self.cluster_names.get(name)?)?;
        Some(
            cluster
                .members
                .iter()
                .filter_map(|id| self.clients.get(id).map(|c| &c.token))
                .collect(),
        )
    }

    /// Decides what `request` does in a session with `ctx`.
    pub fn plan(&self, ctx: &SessionContext, request: &Request) -> Result<Planned, RegistryError> {
        match request {
            Request::NewClient {
                name,
                token,
                signature,
            } => self.plan_new_client(name, token, signature),
            Request::ReturningClient {
                id,
                salt2,
                signature,
                update,
            } => self.plan_returning(ctx, id, salt2, signature, update.as_ref()),
            Request::Create {
                name,
                size,
                endpoints,
            } => {
                identified(ctx)?;
                self.plan_create(name, *size, *endpoints)
            }
            Request::Join(cluster) => self.plan_join(identified(ctx)?, cluster),
            Request::GetCluster { cluster, which } => {
                identified(ctx)?;
                self.plan_get(ctx, cluster, *which)
            }
            Request::Bye => Ok(Planned::reply(Reply::Ack)),
        }
    }

    fn plan_new_client(
        &self,
        name: &str,
        token: &Token,
        signature: &[u8],
    ) -> Result<Planned, RegistryError> {
        if let Some(token_name) = &token.name {
            if token_name != name {
                return Err(RegistryError::NameMismatch {
                    client: name.to_string(),
                    token: token_name.clone(),
                });
            }
        }
        token::check_name(name)?;
        let checked = token::check(token)?;
        token::verify(&checked.sig_key, &token::signed_bytes(token), signature)?;
        if self.clients.len() >= self.limits.max_clients {
            return Err(RegistryError::Full("clients"));
        }
        let id = match &token.id {
            Some(id) if !self.clients.contains_key(id) => id.clone(),
            _ => self.fresh_id(|id| self.clients.contains_key(id))?,
        };
        let name = self.unique_name(name);
        let attrs = token.attrs.unwrap_or(0);
        let stored = Token {
            name: Some(name.clone()),
            attrs: Some(attrs),
            id: Some(id.clone()),
            comms_key: token.comms_key.clone(),
            sig_key: token.sig_key.clone(),
            my_ends: token.my_ends.clone(),
            dig_sig: None,
        };
        Ok(Planned {
            change: Some(Change::PutClient(stored)),
            reply: Reply::ClientOk {
                name,
                id: id.clone(),
                attrs,
            },
            client: Some(id),
            cluster: None,
        })
    }

    fn plan_returning(
        &self,
        ctx: &SessionContext,
        id: &[u8],
        salt2: &[u8],
        signature: &[u8],
        update: Option<&Token>,
    ) -> Result<Planned, RegistryError> {
        let client = self.clients.get(id).ok_or(RegistryError::UnknownClient)?;
        if !crypto::constant_time_eq(salt2, &ctx.salt2) {
            return Err(RegistryError::SaltMismatch);
        }
        token::verify(
            &client.sig_key,
            &token::returning_signed_bytes(id, salt2, update),
            signature,
        )?;
        let mut change = None;
        let mut current = client.token.clone();
        if let Some(update) = update {
            token::check(update)?;
            if update
                .name
                .as_ref()
                .is_some_and(|n| Some(n) != current.name.as_ref())
            {
                return Err(RegistryError::Immutable("name"));
            }
            if update.id.as_deref().is_some_and(|i| i != id) {
                return Err(RegistryError::Immutable("ID"));
            }
            if update.sig_key != current.sig_key {
                return Err(RegistryError::Immutable("signing key"));
            }
            for cluster in self.clusters.values() {
                let needs = cluster.info.endpoints;
                if cluster.members.iter().any(|m| m == id) && update.my_ends.len() != needs as usize
                {
                    return Err(RegistryError::UpdateEnds {
                        cluster: cluster.info.name.clone(),
                        needs,
                        has: update.my_ends.len(),
                    });
                }
            }
            let updated = Token {
                attrs: Some(update.attrs.unwrap_or(current.attrs.unwrap_or(0))),
                comms_key: update.comms_key.clone(),
                my_ends: update.my_ends.clone(),
                ..current.clone()
            };
            if updated != current {
                change = Some(Change::PutClient(updated.clone()));
                current = updated;
            }
        }
        Ok(Planned {
            change,
            reply: Reply::ClientOk {
                name: current.name.clone().unwrap_or_default(),
                id: id.to_vec(),
                attrs: current.attrs.unwrap_or(0),
            },
            client: Some(id.to_vec()),
            cluster: None,
        })
    }

    fn plan_create(&self, name: &str, size: u32, endpoints: u32) -> Result<Planned, RegistryError> {
        if let Some(cluster) = self
            .cluster_names
            .get(name)
            .and_then(|id| self.clusters.get(id))
        {
            return Ok(Planned {
                cluster: Some(cluster.info.id.clone()),
                ..Planned::reply(Reply::CreateReply(cluster.info.clone()))
            });
        }
        token::check_name(name)?;
        if self.clusters.len() >= self.limits.max_clusters {
            return Err(RegistryError::Full("clusters"));
        }
        let info = ClusterInfo {
            id: self.fresh_id(|id| self.clusters.contains_key(id))?,
            name: name.to_string(),
            size: size.clamp(MIN_CLUSTER_SIZE, MAX_CLUSTER_SIZE),
            endpoints,
            attrs: 0,
        };
        Ok(Planned {
            change: Some(Change::CreateCluster(info.clone())),
            cluster: Some(info.id.clone()),
            client: None,
            reply: Reply::CreateReply(info),
        })
    }

    fn resolve(&self, cluster: &ClusterRef) -> Result<&Cluster, RegistryError> {
        let by_name = |name: &String| {
            self.cluster_names
                .get(name)
                .and_then(|id| self.clusters.get(id))
                .ok_or(RegistryError::NoSuchCluster)
        };
        match (&cluster.id, &cluster.name) {
            (Some(id), name) => {
                let found = self.clusters.get(id).ok_or(RegistryError::NoSuchCluster)?;
                if name.as_ref().is_some_and(|n| *n != found.info.name) {
                    return Err(RegistryError::ClusterMismatch);
                }
                Ok(found)
            }
            (None, Some(name)) => by_name(name),
            (None, None) => Err(RegistryError::NoCluster),
        }
    }

    fn plan_join(&self, client_id: &[u8], cluster: &ClusterRef) -> Result<Planned, RegistryError> {
        let cluster = self.resolve(cluster)?;
        let joined = Planned {
            cluster: Some(cluster.info.id.clone()),
            ..Planned::reply(Reply::JoinReply(cluster.info.clone()))
        };
        if cluster.members.iter().any(|m| m == client_id) {
            return Ok(joined);
        }
        if cluster.members.len() >= cluster.info.size as usize {
            return Err(RegistryError::ClusterFull {
                name: cluster.info.name.clone(),
                size: cluster.info.size,
            });
        }
        let client = self
            .clients
            .get(client_id)
            .ok_or(RegistryError::UnknownClient)?;
        let has = client.token.my_ends.len();
        if has != cluster.info.endpoints as usize {
            return Err(RegistryError::Endpoints {
                cluster: cluster.info.name.clone(),
                needs: cluster.info.endpoints,
                has,
            });
        }
        Ok(Planned {
            change: Some(Change::AddMember {
                cluster: cluster.info.id.clone(),
                client: client_id.to_vec(),
            }),
            ..joined
        })
    }

    fn plan_get(
        &self,
        ctx: &SessionContext,
        cluster: &ClusterRef,
        which: u64,
    ) -> Result<Planned, RegistryError> {
        let cluster = if cluster.is_empty() {
            let id = ctx.cluster.as_ref().ok_or(RegistryError::NoCluster)?;
            self.clusters.get(id).ok_or(RegistryError::NoSuchCluster)?
        } else {
            self.resolve(cluster)?
        };
        let mut msg = XlRegMsg {
            which: Some(u64::MAX),
            ..Reply::Members {
                cluster: cluster.info.clone(),
                which: 0,
                tokens: Vec::new(),
            }
            .to_msg()
        };
        let mut sent = 0u64;
        for (n, id) in cluster.members.iter().enumerate().take(64) {
            let bit = 1u64 << n;
            if which & bit == 0 {
                continue;
            }
            let Some(client) = self.clients.get(id) else {
                continue;
            };
            msg.tokens.push(client.token.clone());
            if msg.encoded_len() > MAX_MESSAGE_LEN {
                msg.tokens.pop();
                break;
            }
            sent |= bit;
        }
        Ok(Planned {
            cluster: Some(cluster.info.id.clone()),
            ..Planned::reply(Reply::Members {
                cluster: cluster.info.clone(),
                which: sent,
                tokens: msg.tokens,
            })
        })
    }

    fn fresh_id(&self, taken: impl Fn(&Vec<u8>) -> bool) -> Result<Vec<u8>, RegistryError> {
        loop {
            let id = crypto::random::<ID_LEN>()?.to_vec();
            if !taken(&id) {
                return Ok(id);
            }
        }
    }

    fn unique_name(&self, name: &str) -> String {
        if !self.client_names.contains_key(name) {
            return name.to_string();
        }
        (2u64..)
            .map(|n| format!("{name}-{n}"))
            .find(|candidate| !self.client_names.contains_key(candidate))
            .unwrap_or_else(|| name.to_string())
    }

    /// Applies a change (planned here, or replayed from the log).
    pub fn apply(&mut self, change: &Change) -> Result<(), RegistryError> {
        match change {
            Change::PutClient(token) => {
                let inconsistent =
                    |what: &str| RegistryError::Inconsistent(format!("client {what}"));
                let id = token.id.clone().ok_or_else(|| inconsistent("without ID"))?;
                let name = token
                    .name
                    .clone()
                    .ok_or_else(|| inconsistent("without name"))?;
                let sig_key = token
                    .sig_key
                    .as_deref()
                    .ok_or_else(|| inconsistent("without SigKey"))
                    .and_then(|der| {
                        PublicKey::from_der(der).map_err(|e| inconsistent(&e.to_string()))
                    })?;
                if let Some(owner) = self.client_names.get(&name) {
                    if *owner != id {
                        return Err(inconsistent("name taken by another client"));
                    }
                }
                if let Some(old) = self.clients.get(&id) {
                    if old.token.name.as_ref() != Some(&name) {
                        return Err(inconsistent("renamed"));
                    }
                }
                self.client_names.insert(name, id.clone());
                self.clients.insert(
                    id,
                    Client {
                        token: token.clone(),
                        sig_key,
                    },
                );
            }
            Change::CreateCluster(info) => {
                if self.clusters.contains_key(&info.id)
                    || self.cluster_names.contains_key(&info.name)
                {
                    return Err(RegistryError::Inconsistent(format!(
                        "cluster {:?} created twice",
                        info.name
                    )));
                }
                self.cluster_names
                    .insert(info.name.clone(), info.id.clone());
                self.cluster_order.push(info.id.clone());
                self.clusters.insert(
                    info.id.clone(),
                    Cluster {
                        info: info.clone(),
                        members: Vec::new(),
                    },
                );
            }
            Change::AddMember { cluster, client } => {
                if !self.clients.contains_key(client) {
                    return Err(RegistryError::Inconsistent("member is no client".into()));
                }
                let c = self
                    .clusters
                    .get_mut(cluster)
                    .ok_or_else(|| RegistryError::Inconsistent("member of no cluster".into()))?;
                if c.members.contains(client) {
                    return Ok(());
                }
                if c.members.len() >= c.info.size as usize {
                    return Err(RegistryError::Inconsistent(format!(
                        "cluster {:?} over its size",
                        c.info.name
                    )));
                }
                c.members.push(client.clone());
            }
        }
        Ok(())
    }

    /// The changes that rebuild the current state: every client, every
    /// cluster, then every membership in join order.
    pub fn snapshot(&self) -> Vec<Change> {
        let mut out: Vec<Change> = self
            .clients
            .values()
            .map(|c| Change::PutClient(c.token.clone()))
            .collect();
        let clusters: Vec<&Cluster> = self
            .cluster_order
            .iter()
            .filter_map(|id| self.clusters.get(id))
            .collect();
        out.extend(
            clusters
                .iter()
                .map(|c| Change::CreateCluster(c.info.clone())),
        );
        for c in clusters {
            out.extend(c.members.iter().map(|m| Change::AddMember {
                cluster: c.info.id.clone(),
                client: m.clone(),
            }));
        }
        out
    }
}

fn identified(ctx: &SessionContext) -> Result<&[u8], RegistryError> {
    ctx.client.as_deref().ok_or(RegistryError::NotIdentified)
}

#[cfg(test)]
mod tests;
