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
//! - `Join` gives the client the lowest free slot unless it holds one
//!   already (one slot per client), refuses a full cluster, and refuses a
//!   client whose token does not carry exactly the cluster's endpoint count.
//! - `GetCluster` returns the tokens of the members whose bit is set in
//!   `Which` (bit N = slot N), in bit order, and the `Which` of the tokens
//!   sent: every member asked for, in one reply.
//! - Leaving and repair (extensions, docs/XLREG.md §14): `Leave`, signed
//!   by the member over this session's salt2, frees its slot; the
//!   operator's [`AdminRequest`]s remove a member or change a cluster's
//!   size. A freed slot is the next join's; slots never move.
//!
//! Bounds against abuse (docs/XLREG.md, "11. Limits and abuse"):
//! - [`Admission`]: who may identify at all (off by default).
//! - A client may have created at most `max_clusters_per_client` live
//!   clusters; the registry holds at most `max_clients` and `max_clusters`.
//! - [`Registry::expired`]: a cluster nobody joined within `client_ttl` of
//!   its creation, and a client that is in no cluster and created none
//!   still alive `client_ttl` after it registered, are forgotten (changes
//!   like any other: logged, then applied).
//! - Renaming a taken name (`name-2`, `name-3`...) starts from the next
//!   suffix remembered per base name, so it never walks the taken ones.
//!
//! Every cluster remembers its creator, which cluster replies name (an
//! extension, [`ClusterInfo::creator`]).

use std::collections::{BTreeMap, HashMap};

use catalogue_proto::reg::xl_reg_msg::Token;

use super::{
    admission::{Admission, AdmissionError},
    crypto::{self, CryptoError},
    ext::leave_signed_bytes,
    keys::{self, Fingerprint, PublicKey},
    protocol::{ClusterInfo, ClusterRef, Creator, Reply, Request},
    session::SessionContext,
    token::{self, TokenError},
};

/// Smallest cluster size.
pub const MIN_CLUSTER_SIZE: u32 = 2;
pub use super::sizes::MAX_CLUSTER_SIZE;
/// Length of the IDs the registry assigns.
pub const ID_LEN: usize = 32;

/// Bounds on what the registry holds, so that nobody can fill its disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most registered clients.
    pub max_clients: usize,
    /// Most clusters.
    pub max_clusters: usize,
    /// Most live clusters one client may have created.
    pub max_clusters_per_client: usize,
    /// How long a client in no cluster (that created none still alive) is
    /// kept after it registered, and a cluster nobody joined after its
    /// creation.
    pub client_ttl: std::time::Duration,
}

impl Default for Limits {
    /// The defaults of `config/default.toml`.
    fn default() -> Self {
        Limits {
            max_clients: 100_000,
            max_clusters: 10_000,
            max_clusters_per_client: 8,
            client_ttl: std::time::Duration::from_secs(600),
        }
    }
}

/// Seconds since the Unix epoch, as registration and creation times are
/// kept.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
    /// `Leave` or a removal of a client that holds no slot in the cluster.
    #[error("{client:?} is not a member of cluster {cluster:?}")]
    NotMember {
        /// The cluster.
        cluster: String,
        /// The client (its name).
        client: String,
    },
    /// The operator named a member the registry does not know.
    #[error("no client {0:?} (give a client name or a hex ID)")]
    NoSuchClient(String),
    /// A size the operator asked for that cannot be.
    #[error(
        "cluster {cluster:?} cannot have size {size}: sizes are {MIN_CLUSTER_SIZE} to \
         {MAX_CLUSTER_SIZE}, and at least {needed} to keep the member in its highest slot \
         (remove it first)"
    )]
    BadSize {
        /// The cluster.
        cluster: String,
        /// The size asked for.
        size: u32,
        /// One past the highest slot held.
        needed: usize,
    },
    /// The registry holds as many clients or clusters as it may.
    #[error("the registry is full: no more {0}")]
    Full(&'static str),
    /// The client may not create another cluster.
    #[error(
        "this client has created {max} clusters, the most one client may (xlreg.max_clusters_per_client)"
    )]
    TooManyClusters {
        /// The bound.
        max: usize,
    },
    /// Admission control refused the client.
    #[error(transparent)]
    NotAdmitted(#[from] AdmissionError),
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

impl RegistryError {
    /// A short label for the refusal metric
    /// (`catalogue_xlreg_refusals_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            RegistryError::Token(_) | RegistryError::NameMismatch { .. } => "bad_token",
            RegistryError::UnknownClient => "unknown_client",
            RegistryError::SaltMismatch => "bad_salt2",
            RegistryError::Immutable(_) | RegistryError::UpdateEnds { .. } => "bad_update",
            RegistryError::NoSuchCluster
            | RegistryError::ClusterMismatch
            | RegistryError::NoCluster => "no_such_cluster",
            RegistryError::ClusterFull { .. } => "cluster_full",
            RegistryError::Endpoints { .. } => "endpoints",
            RegistryError::Full("clients") => "registry_full_clients",
            RegistryError::Full(_) => "registry_full_clusters",
            RegistryError::TooManyClusters { .. } => "clusters_per_client",
            RegistryError::NotAdmitted(_) => "not_admitted",
            RegistryError::NotIdentified => "not_identified",
            RegistryError::Random(_) | RegistryError::Storage => "storage",
            RegistryError::Inconsistent(_) => "inconsistent",
            RegistryError::NotMember { .. } => "not_member",
            RegistryError::NoSuchClient(_) => "no_such_client",
            RegistryError::BadSize { .. } => "bad_size",
        }
    }
}

/// A change to the registry, as logged.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A client registered or updated.
    PutClient {
        /// The token with its final `Name`, `Attrs` and `ID` (and no
        /// `DigSig`).
        token: Token,
        /// When it registered (Unix seconds); an update keeps the first
        /// registration's time.
        registered: u64,
    },
    /// A cluster created.
    CreateCluster {
        /// The cluster (its `creator` is not part of the change).
        info: ClusterInfo,
        /// The ID of the client that created it (absent in logs written
        /// before creators were kept).
        creator: Option<Vec<u8>>,
        /// When (Unix seconds).
        created: u64,
    },
    /// A client joined a cluster.
    AddMember {
        /// The cluster's ID.
        cluster: Vec<u8>,
        /// The client's ID.
        client: Vec<u8>,
        /// The slot it takes (absent in logs written before slots could be
        /// freed: the lowest free one).
        slot: Option<usize>,
    },
    /// A member left, or the registry's operator removed it (extension,
    /// docs/XLREG.md §14): its slot is free.
    RemoveMember {
        /// The cluster's ID.
        cluster: Vec<u8>,
        /// The client's ID.
        client: Vec<u8>,
    },
    /// The registry's operator changed a cluster's size (extension).
    SetSize {
        /// The cluster's ID.
        cluster: Vec<u8>,
        /// Its new size (2 to 64, at least one past its highest slot held).
        size: u32,
    },
    /// An empty cluster forgotten ([`Registry::expired`]).
    ForgetCluster(Vec<u8>),
    /// A client in no cluster forgotten ([`Registry::expired`]).
    ForgetClient(Vec<u8>),
}

/// What the registry's operator may ask (docs/XLREG.md §14, "Leaving and
/// repair"); the hosting node takes it over its admin socket only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRequest {
    /// Free the slot of `member` (a client name or a hex client ID).
    RemoveMember {
        /// The cluster's name.
        cluster: String,
        /// The member's client name, or its ID in hex.
        member: String,
    },
    /// Change the cluster's size.
    SetSize {
        /// The cluster's name.
        cluster: String,
        /// The new size (2 to 64, not below the highest slot held).
        size: u32,
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
    /// Its signing key's fingerprint.
    fingerprint: Fingerprint,
    /// When it registered (Unix seconds).
    registered: u64,
    /// IDs of the clusters it is a member of.
    clusters: Vec<Vec<u8>>,
    /// Live clusters it created.
    created: usize,
}

impl Client {
    /// A client in a cluster, or the creator of a live one, is kept.
    fn anchored(&self) -> bool {
        !self.clusters.is_empty() || self.created > 0
    }
}

/// A cluster.
#[derive(Debug, Clone)]
struct Cluster {
    /// As replies show it, less its creator.
    info: ClusterInfo,
    /// Client IDs by slot: the member in slot N has bit N of `Which`. A
    /// slot freed by a leave or a removal (docs/XLREG.md §14) is `None`
    /// until a join takes it; slots never move.
    members: Vec<Option<Vec<u8>>>,
    /// The client that created it.
    creator: Option<Vec<u8>>,
    /// When (Unix seconds).
    created: u64,
    /// Its place in creation order (key of `cluster_order`).
    seq: u64,
}

impl Cluster {
    /// Whether `client` holds a slot.
    fn holds(&self, client: &[u8]) -> bool {
        self.slot_of(client).is_some()
    }

    /// The slot `client` holds.
    fn slot_of(&self, client: &[u8]) -> Option<usize> {
        self.members
            .iter()
            .position(|m| m.as_deref() == Some(client))
    }

    /// How many members it has.
    fn count(&self) -> usize {
        self.members.iter().flatten().count()
    }

    /// The members, with their slots.
    fn slots(&self) -> impl Iterator<Item = (usize, &Vec<u8>)> {
        self.members
            .iter()
            .enumerate()
            .filter_map(|(n, m)| m.as_ref().map(|id| (n, id)))
    }

    /// The slot the next join takes: the lowest free one below the size.
    fn free_slot(&self) -> Option<usize> {
        (0..(self.info.size as usize).min(MAX_CLUSTER_SIZE as usize))
            .find(|n| self.members.get(*n).is_none_or(Option::is_none))
    }

    /// One past the highest slot held (the smallest size that keeps every
    /// member).
    fn slots_used(&self) -> usize {
        self.members
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |n| n + 1)
    }
}

/// The registry.
#[derive(Debug, Default)]
pub struct Registry {
    limits: Limits,
    admission: Admission,
    clients: HashMap<Vec<u8>, Client>,
    client_names: HashMap<String, Vec<u8>>,
    /// For each base name, a suffix from which `base-N` is free: every
    /// registered `base-N` has a lower N. Renaming starts there.
    name_suffix: HashMap<String, u64>,
    clusters: HashMap<Vec<u8>, Cluster>,
    cluster_names: HashMap<String, Vec<u8>>,
    /// Cluster IDs in creation order (for snapshots).
    cluster_order: BTreeMap<u64, Vec<u8>>,
    next_seq: u64,
}

/// `name` split as `base-N` (N at least 2, no leading zero), if it is one.
fn split_suffix(name: &str) -> Option<(&str, u64)> {
    let (base, n) = name.rsplit_once('-')?;
    if base.is_empty()
        || n.is_empty()
        || n.starts_with('0')
        || !n.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let n: u64 = n.parse().ok()?;
    (n >= 2).then_some((base, n))
}

impl Registry {
    /// An empty registry with `limits`, admitting everyone.
    pub fn new(limits: Limits) -> Registry {
        Registry {
            limits,
            ..Default::default()
        }
    }

    /// Who may identify from now on.
    pub fn set_admission(&mut self, admission: Admission) {
        self.admission = admission;
    }

    /// The bounds in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
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
                .slots()
                .filter_map(|(_, id)| self.clients.get(id).map(|c| &c.token))
                .collect(),
        )
    }

    /// Decides what `request` does in a session with `ctx`, now.
    pub fn plan(&self, ctx: &SessionContext, request: &Request) -> Result<Planned, RegistryError> {
        self.plan_at(ctx, request, unix_now())
    }

    /// Decides what `request` does in a session with `ctx` at `now` (Unix
    /// seconds).
    pub fn plan_at(
        &self,
        ctx: &SessionContext,
        request: &Request,
        now: u64,
    ) -> Result<Planned, RegistryError> {
        match request {
            Request::NewClient {
                name,
                token,
                signature,
                proof,
            } => self.plan_new_client(ctx, name, token, signature, proof.as_deref(), now),
            Request::ReturningClient {
                id,
                salt2,
                signature,
                update,
                proof,
            } => self.plan_returning(ctx, id, salt2, signature, update.as_ref(), proof.as_deref()),
            Request::Create {
                name,
                size,
                endpoints,
            } => self.plan_create(identified(ctx)?, name, *size, *endpoints, now),
            Request::Join(cluster) => self.plan_join(identified(ctx)?, cluster),
            Request::GetCluster { cluster, which } => {
                identified(ctx)?;
                self.plan_get(ctx, cluster, *which)
            }
            Request::Bye => Ok(Planned::reply(Reply::Ack)),
            Request::Leave { cluster, signature } => {
                self.plan_leave(ctx, identified(ctx)?, cluster, signature)
            }
        }
    }

    /// `Leave`: the session's client, proving its signing key over this
    /// session's salt2, gives up its slot.
    fn plan_leave(
        &self,
        ctx: &SessionContext,
        client_id: &[u8],
        cluster: &ClusterRef,
        signature: &[u8],
    ) -> Result<Planned, RegistryError> {
        let cluster = self.resolve(cluster)?;
        let client = self
            .clients
            .get(client_id)
            .ok_or(RegistryError::UnknownClient)?;
        let signed = leave_signed_bytes(client_id, &cluster.info.id, &ctx.salt2);
        token::verify(&client.sig_key, &signed, signature)?;
        let slot = cluster
            .slot_of(client_id)
            .ok_or_else(|| RegistryError::NotMember {
                cluster: cluster.info.name.clone(),
                client: client.token.name.clone().unwrap_or_default(),
            })?;
        Ok(Planned {
            change: Some(Change::RemoveMember {
                cluster: cluster.info.id.clone(),
                client: client_id.to_vec(),
            }),
            ..Planned::reply(Reply::Left {
                id: cluster.info.id.clone(),
                name: cluster.info.name.clone(),
                which: 1u64 << slot,
            })
        })
    }

    /// What the registry's operator asks (over the hosting node's admin
    /// socket, never over the network): the change it makes and a sentence
    /// saying what it did.
    pub fn plan_admin(&self, request: &AdminRequest) -> Result<(Change, String), RegistryError> {
        let cluster_named = |name: &str| {
            self.resolve(&ClusterRef {
                id: None,
                name: Some(name.to_string()),
            })
        };
        match request {
            AdminRequest::RemoveMember { cluster, member } => {
                let c = cluster_named(cluster)?;
                let id = self
                    .client_names
                    .get(member)
                    .cloned()
                    .or_else(|| {
                        crate::identity::from_hex(member).filter(|id| self.clients.contains_key(id))
                    })
                    .ok_or_else(|| RegistryError::NoSuchClient(member.clone()))?;
                let name = self
                    .clients
                    .get(&id)
                    .and_then(|c| c.token.name.clone())
                    .unwrap_or_default();
                let slot = c.slot_of(&id).ok_or_else(|| RegistryError::NotMember {
                    cluster: c.info.name.clone(),
                    client: name.clone(),
                })?;
                Ok((
                    Change::RemoveMember {
                        cluster: c.info.id.clone(),
                        client: id,
                    },
                    format!(
                        "removed {name} from cluster {} (slot {slot} is free)",
                        c.info.name
                    ),
                ))
            }
            AdminRequest::SetSize { cluster, size } => {
                let c = cluster_named(cluster)?;
                let needed = c.slots_used().max(MIN_CLUSTER_SIZE as usize);
                if !(MIN_CLUSTER_SIZE..=MAX_CLUSTER_SIZE).contains(size)
                    || (*size as usize) < needed
                {
                    return Err(RegistryError::BadSize {
                        cluster: c.info.name.clone(),
                        size: *size,
                        needed,
                    });
                }
                Ok((
                    Change::SetSize {
                        cluster: c.info.id.clone(),
                        size: *size,
                    },
                    format!(
                        "cluster {} now has size {size} (was {}; {} members)",
                        c.info.name,
                        c.info.size,
                        c.count()
                    ),
                ))
            }
        }
    }

    fn plan_new_client(
        &self,
        ctx: &SessionContext,
        name: &str,
        token: &Token,
        signature: &[u8],
        proof: Option<&[u8]>,
        now: u64,
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
        // Admission first: it costs a hash, the signature an RSA operation.
        self.admission.check(
            token.sig_key.as_deref().unwrap_or_default(),
            proof,
            &ctx.salt2,
        )?;
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
            change: Some(Change::PutClient {
                token: stored,
                registered: now,
            }),
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
        proof: Option<&[u8]>,
    ) -> Result<Planned, RegistryError> {
        let client = self.clients.get(id).ok_or(RegistryError::UnknownClient)?;
        if !crypto::constant_time_eq(salt2, &ctx.salt2) {
            return Err(RegistryError::SaltMismatch);
        }
        self.admission.check(
            client.token.sig_key.as_deref().unwrap_or_default(),
            proof,
            &ctx.salt2,
        )?;
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
            for cluster in client.clusters.iter().filter_map(|c| self.clusters.get(c)) {
                let needs = cluster.info.endpoints;
                if update.my_ends.len() != needs as usize {
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
                change = Some(Change::PutClient {
                    token: updated.clone(),
                    registered: client.registered,
                });
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

    fn plan_create(
        &self,
        client_id: &[u8],
        name: &str,
        size: u32,
        endpoints: u32,
        now: u64,
    ) -> Result<Planned, RegistryError> {
        if let Some(cluster) = self
            .cluster_names
            .get(name)
            .and_then(|id| self.clusters.get(id))
        {
            return Ok(Planned {
                cluster: Some(cluster.info.id.clone()),
                ..Planned::reply(Reply::CreateReply(self.reply_info(cluster)))
            });
        }
        token::check_name(name)?;
        let client = self
            .clients
            .get(client_id)
            .ok_or(RegistryError::UnknownClient)?;
        if self.clusters.len() >= self.limits.max_clusters {
            return Err(RegistryError::Full("clusters"));
        }
        if client.created >= self.limits.max_clusters_per_client {
            return Err(RegistryError::TooManyClusters {
                max: self.limits.max_clusters_per_client,
            });
        }
        let info = ClusterInfo {
            id: self.fresh_id(|id| self.clusters.contains_key(id))?,
            name: name.to_string(),
            size: size.clamp(MIN_CLUSTER_SIZE, MAX_CLUSTER_SIZE),
            endpoints,
            attrs: 0,
            creator: None,
        };
        let reply = ClusterInfo {
            creator: Some(creator_of(client)),
            ..info.clone()
        };
        Ok(Planned {
            change: Some(Change::CreateCluster {
                info,
                creator: Some(client_id.to_vec()),
                created: now,
            }),
            cluster: Some(reply.id.clone()),
            client: None,
            reply: Reply::CreateReply(reply),
        })
    }

    /// A cluster as replies show it: with its creator, when known.
    fn reply_info(&self, cluster: &Cluster) -> ClusterInfo {
        ClusterInfo {
            creator: cluster
                .creator
                .as_ref()
                .and_then(|id| self.clients.get(id))
                .map(creator_of),
            ..cluster.info.clone()
        }
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
            ..Planned::reply(Reply::JoinReply(self.reply_info(cluster)))
        };
        if cluster.holds(client_id) {
            return Ok(joined);
        }
        let Some(slot) = cluster.free_slot() else {
            return Err(RegistryError::ClusterFull {
                name: cluster.info.name.clone(),
                size: cluster.info.size,
            });
        };
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
                slot: Some(slot),
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
        let info = self.reply_info(cluster);
        // Every member asked for, in one reply: the reply frame limit is
        // that of the largest legal cluster (`sizes`).
        let mut sent = 0u64;
        let mut tokens = Vec::new();
        for (n, id) in cluster
            .slots()
            .take_while(|(n, _)| *n < MAX_CLUSTER_SIZE as usize)
        {
            let bit = 1u64 << n;
            if which & bit == 0 {
                continue;
            }
            let Some(client) = self.clients.get(id) else {
                continue;
            };
            tokens.push(client.token.clone());
            sent |= bit;
        }
        Ok(Planned {
            cluster: Some(cluster.info.id.clone()),
            ..Planned::reply(Reply::Members {
                cluster: info,
                which: sent,
                tokens,
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

    /// `name`, or when taken `name-N` with the first N of the suffix index
    /// (see `name_suffix`): no walk over the names already taken.
    fn unique_name(&self, name: &str) -> String {
        if !self.client_names.contains_key(name) {
            return name.to_string();
        }
        let from = self.name_suffix.get(name).copied().unwrap_or(2);
        // The index says base-N is free from `from` on; the loop is only a
        // guard, it ends at its first step.
        (from..)
            .map(|n| format!("{name}-{n}"))
            .find(|candidate| !self.client_names.contains_key(candidate))
            .unwrap_or_else(|| name.to_string())
    }

    /// Notes that `name` is taken, for [`Registry::unique_name`].
    fn index_name(&mut self, name: &str) {
        if let Some((base, n)) = split_suffix(name) {
            let next = self.name_suffix.entry(base.to_string()).or_insert(2);
            *next = (*next).max(n.saturating_add(1));
        }
    }

    /// The changes that forget, at `now`, what has outlived the client TTL:
    /// clusters nobody has joined, `client_ttl` after their creation, then
    /// clients in no cluster that created no cluster still alive,
    /// `client_ttl` after they registered. Apply them in order.
    pub fn expired(&self, now: u64) -> Vec<Change> {
        let ttl = self.limits.client_ttl.as_secs();
        let mut out = Vec::new();
        let mut freed: HashMap<&Vec<u8>, usize> = HashMap::new();
        for id in self.cluster_order.values() {
            let Some(cluster) = self.clusters.get(id) else {
                continue;
            };
            if cluster.count() == 0 && cluster.created.saturating_add(ttl) <= now {
                out.push(Change::ForgetCluster(id.clone()));
                if let Some(creator) = &cluster.creator {
                    *freed.entry(creator).or_default() += 1;
                }
            }
        }
        for (id, client) in &self.clients {
            let created = client
                .created
                .saturating_sub(freed.get(id).copied().unwrap_or(0));
            if client.clusters.is_empty()
                && created == 0
                && client.registered.saturating_add(ttl) <= now
            {
                out.push(Change::ForgetClient(id.clone()));
            }
        }
        out
    }

    /// Applies a change (planned here, or replayed from the log).
    pub fn apply(&mut self, change: &Change) -> Result<(), RegistryError> {
        let inconsistent = |what: &str| RegistryError::Inconsistent(what.to_string());
        match change {
            Change::PutClient { token, registered } => {
                let id = token
                    .id
                    .clone()
                    .ok_or_else(|| inconsistent("client without ID"))?;
                let name = token
                    .name
                    .clone()
                    .ok_or_else(|| inconsistent("client without name"))?;
                let der = token
                    .sig_key
                    .as_deref()
                    .ok_or_else(|| inconsistent("client without SigKey"))?;
                let sig_key =
                    PublicKey::from_der(der).map_err(|e| inconsistent(&format!("client {e}")))?;
                if let Some(owner) = self.client_names.get(&name) {
                    if *owner != id {
                        return Err(inconsistent("client name taken by another client"));
                    }
                }
                let fingerprint = keys::fingerprint(der);
                let client = match self.clients.remove(&id) {
                    Some(old) => {
                        if old.token.name.as_ref() != Some(&name) {
                            self.clients.insert(id, old);
                            return Err(inconsistent("client renamed"));
                        }
                        Client {
                            token: token.clone(),
                            sig_key,
                            fingerprint,
                            ..old
                        }
                    }
                    None => Client {
                        token: token.clone(),
                        sig_key,
                        fingerprint,
                        registered: *registered,
                        clusters: Vec::new(),
                        created: 0,
                    },
                };
                self.index_name(&name);
                self.client_names.insert(name, id.clone());
                self.clients.insert(id, client);
            }
            Change::CreateCluster {
                info,
                creator,
                created,
            } => {
                if self.clusters.contains_key(&info.id)
                    || self.cluster_names.contains_key(&info.name)
                {
                    return Err(RegistryError::Inconsistent(format!(
                        "cluster {:?} created twice",
                        info.name
                    )));
                }
                if let Some(creator) = creator {
                    self.clients
                        .get_mut(creator)
                        .ok_or_else(|| inconsistent("cluster created by no client"))?
                        .created += 1;
                }
                let seq = self.next_seq;
                self.next_seq += 1;
                self.cluster_names
                    .insert(info.name.clone(), info.id.clone());
                self.cluster_order.insert(seq, info.id.clone());
                self.clusters.insert(
                    info.id.clone(),
                    Cluster {
                        info: ClusterInfo {
                            creator: None,
                            ..info.clone()
                        },
                        members: Vec::new(),
                        creator: creator.clone(),
                        created: *created,
                        seq,
                    },
                );
            }
            Change::AddMember {
                cluster,
                client,
                slot,
            } => {
                let c = self
                    .clusters
                    .get_mut(cluster)
                    .ok_or_else(|| inconsistent("member of no cluster"))?;
                let member = self
                    .clients
                    .get_mut(client)
                    .ok_or_else(|| inconsistent("member is no client"))?;
                if c.holds(client) {
                    return Ok(());
                }
                // A record without a slot (written before slots could be
                // freed) takes the lowest free one, as joins did.
                let slot = match slot {
                    Some(n) if *n < c.info.size as usize && *n < MAX_CLUSTER_SIZE as usize => *n,
                    Some(_) => return Err(inconsistent("member slot over the cluster's size")),
                    None => c.free_slot().ok_or_else(|| {
                        RegistryError::Inconsistent(format!(
                            "cluster {:?} over its size",
                            c.info.name
                        ))
                    })?,
                };
                if c.members.len() <= slot {
                    c.members.resize(slot + 1, None);
                }
                if c.members[slot].is_some() {
                    return Err(inconsistent("member slot taken"));
                }
                c.members[slot] = Some(client.clone());
                member.clusters.push(cluster.clone());
            }
            Change::RemoveMember { cluster, client } => {
                let c = self
                    .clusters
                    .get_mut(cluster)
                    .ok_or_else(|| inconsistent("removing a member of no cluster"))?;
                let slot = c
                    .slot_of(client)
                    .ok_or_else(|| inconsistent("removing no member"))?;
                c.members[slot] = None;
                while c.members.last().is_some_and(Option::is_none) {
                    c.members.pop();
                }
                if let Some(member) = self.clients.get_mut(client) {
                    member.clusters.retain(|id| id != cluster);
                }
            }
            Change::SetSize { cluster, size } => {
                let c = self
                    .clusters
                    .get_mut(cluster)
                    .ok_or_else(|| inconsistent("resizing no cluster"))?;
                if !(MIN_CLUSTER_SIZE..=MAX_CLUSTER_SIZE).contains(size)
                    || (*size as usize) < c.slots_used()
                {
                    return Err(inconsistent("cluster size below its members"));
                }
                c.info.size = *size;
            }
            Change::ForgetCluster(id) => {
                let cluster = self
                    .clusters
                    .get(id)
                    .ok_or_else(|| inconsistent("forgetting no cluster"))?;
                if cluster.count() > 0 {
                    return Err(inconsistent("forgetting a cluster with members"));
                }
                let cluster = self
                    .clusters
                    .remove(id)
                    .ok_or_else(|| inconsistent("forgetting no cluster"))?;
                self.cluster_names.remove(&cluster.info.name);
                self.cluster_order.remove(&cluster.seq);
                if let Some(creator) = cluster.creator.and_then(|c| self.clients.get_mut(&c)) {
                    creator.created = creator.created.saturating_sub(1);
                }
            }
            Change::ForgetClient(id) => {
                let client = self
                    .clients
                    .get(id)
                    .ok_or_else(|| inconsistent("forgetting no client"))?;
                if client.anchored() {
                    return Err(inconsistent(
                        "forgetting a client in a cluster or with clusters",
                    ));
                }
                if let Some(client) = self.clients.remove(id) {
                    if let Some(name) = &client.token.name {
                        self.client_names.remove(name);
                    }
                }
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
            .map(|c| Change::PutClient {
                token: c.token.clone(),
                registered: c.registered,
            })
            .collect();
        let clusters: Vec<&Cluster> = self
            .cluster_order
            .values()
            .filter_map(|id| self.clusters.get(id))
            .collect();
        out.extend(clusters.iter().map(|c| Change::CreateCluster {
            info: c.info.clone(),
            creator: c.creator.clone(),
            created: c.created,
        }));
        for c in clusters {
            out.extend(c.slots().map(|(n, m)| Change::AddMember {
                cluster: c.info.id.clone(),
                client: m.clone(),
                slot: Some(n),
            }));
        }
        out
    }
}

/// What replies say of a cluster's creator.
fn creator_of(client: &Client) -> Creator {
    Creator {
        name: client.token.name.clone().unwrap_or_default(),
        key: client.fingerprint,
    }
}

fn identified(ctx: &SessionContext) -> Result<&[u8], RegistryError> {
    ctx.client.as_deref().ok_or(RegistryError::NotIdentified)
}

#[cfg(test)]
mod tests;
