//! What session messages mean: an incoming `XLRegMsg` (with its extension
//! fields, [`Envelope`]) checked and turned into a typed [`Request`] (server
//! side), a typed [`Reply`] turned into an `XLRegMsg` and back (both sides).
//! The extension fields (docs/XLREG.md §14) are `AdmitProof` and
//! `Extensions` in `Client`, and the cluster's creator in cluster replies,
//! which [`Reply::to_envelope`] adds only for clients that announced
//! `Extensions`.
//!
//! Shape errors (no `Op`, an op the registry does not serve, a required
//! field missing, a salt shorter than 8 bytes, an endpoint count other than
//! 1 or 2) are [`ProtocolError`]s; the server answers them with `Error` and
//! closes. Whether the request is allowed and what it does is decided by
//! [`super::session`] and [`super::registry`].

use catalogue_proto::{
    reg::{
        XlRegMsg,
        xl_reg_msg::{Tag, Token},
    },
    regext::XlRegExt,
};

use super::{
    crypto::SALT_LEN,
    ext::{Envelope, OP_LEAVE, OP_LEAVE_REPLY},
    keys::Fingerprint,
};

/// Why a message was refused for its shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// No `Op`.
    #[error("message has no Op")]
    MissingOp,
    /// An `Op` outside the enum.
    #[error("unknown Op {0}")]
    UnknownOp(i32),
    /// An op the other side does not take.
    #[error("{0} is not accepted here")]
    Unexpected(&'static str),
    /// A required field is absent.
    #[error("{op} needs {field}")]
    Missing {
        /// The message's op.
        op: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// A salt shorter than 8 bytes.
    #[error("{field} has {len} bytes; salts have at least {SALT_LEN}")]
    ShortSalt {
        /// `Salt1` or `Salt2`.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// `EndPointCount` is neither 1 nor 2.
    #[error("EndPointCount {0}: members have 1 or 2 endpoints")]
    EndpointCount(u32),
    /// `Client` before identification is required first.
    #[error("identify first: send Client")]
    NotIdentified,
    /// A second `Client` in one session.
    #[error("already identified in this session")]
    AlreadyIdentified,
}

/// Which cluster a request names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterRef {
    /// `ClusterID`, which wins when both are given.
    pub id: Option<Vec<u8>>,
    /// `ClusterName`.
    pub name: Option<String>,
}

impl ClusterRef {
    /// Whether neither is given.
    pub fn is_empty(&self) -> bool {
        self.id.is_none() && self.name.is_none()
    }
}

/// A client's request, checked for shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `Client` with a token: register (proposing a name, maybe an ID).
    NewClient {
        /// `ClientName`, else the token's `Name`.
        name: String,
        /// `ClientSpecs`.
        token: Token,
        /// `DigSig` over the token.
        signature: Vec<u8>,
        /// `AdmitProof` (extension), for a registry that asks for one.
        proof: Option<Vec<u8>>,
    },
    /// `Client` with `ClientID` and `Salt2`: a registered client returns.
    ReturningClient {
        /// `ClientID`.
        id: Vec<u8>,
        /// `Salt2`, which must be this session's.
        salt2: Vec<u8>,
        /// `DigSig` over `ClientID ‖ Salt2 [‖ token]`.
        signature: Vec<u8>,
        /// `ClientSpecs`, when the client updates its token.
        update: Option<Token>,
        /// `AdmitProof` (extension), for a registry that asks for one.
        proof: Option<Vec<u8>>,
    },
    /// `Create`.
    Create {
        /// `ClusterName`.
        name: String,
        /// `ClusterSize` as proposed (clamped by the registry).
        size: u32,
        /// `EndPointCount` (1 when absent).
        endpoints: u32,
    },
    /// `Join`.
    Join(ClusterRef),
    /// `GetCluster`.
    GetCluster {
        /// The cluster; empty means the session's.
        cluster: ClusterRef,
        /// `Which`; all bits when absent.
        which: u64,
    },
    /// `Bye`.
    Bye,
    /// `Leave` (extension op 100, docs/XLREG.md §14): the session's client
    /// leaves the cluster, freeing its slot.
    Leave {
        /// The cluster.
        cluster: ClusterRef,
        /// `DigSig` by the client's SigKey over
        /// [`super::ext::leave_signed_bytes`].
        signature: Vec<u8>,
    },
}

impl Request {
    /// Whether a successful reply to this request says anything about the
    /// registry's state (and so must wait until every change it may
    /// reflect is durable). Only `Bye`, answered with a bare `Ack`, does
    /// not.
    pub fn reads_registry(&self) -> bool {
        !matches!(self, Request::Bye)
    }
}

fn op_of(msg: &XlRegMsg) -> Result<Tag, ProtocolError> {
    let raw = msg.op.ok_or(ProtocolError::MissingOp)?;
    Tag::try_from(raw).map_err(|_| ProtocolError::UnknownOp(raw))
}

fn check_salts(msg: &XlRegMsg) -> Result<(), ProtocolError> {
    for (field, salt) in [("Salt1", &msg.salt1), ("Salt2", &msg.salt2)] {
        if let Some(salt) = salt {
            if salt.len() < SALT_LEN {
                return Err(ProtocolError::ShortSalt {
                    field,
                    len: salt.len(),
                });
            }
        }
    }
    Ok(())
}

fn missing(op: &'static str, field: &'static str) -> ProtocolError {
    ProtocolError::Missing { op, field }
}

fn cluster_ref(msg: &XlRegMsg) -> ClusterRef {
    ClusterRef {
        id: msg.cluster_id.clone(),
        name: msg.cluster_name.clone(),
    }
}

/// Turns a message from a client (with or without extension fields) into a
/// [`Request`].
pub fn parse_request(msg: impl Into<Envelope>) -> Result<Request, ProtocolError> {
    let Envelope { msg, ext } = msg.into();
    if msg.op == Some(OP_LEAVE) {
        check_salts(&msg)?;
        let cluster = cluster_ref(&msg);
        if cluster.is_empty() {
            return Err(missing("Leave", "ClusterName or ClusterID"));
        }
        let signature = msg.dig_sig.ok_or(missing("Leave", "DigSig"))?;
        return Ok(Request::Leave { cluster, signature });
    }
    let op = op_of(&msg)?;
    check_salts(&msg)?;
    match op {
        Tag::Client => {
            let signature = msg.dig_sig.clone().ok_or(missing("Client", "DigSig"))?;
            let proof = ext.admit_proof;
            if let Some(id) = msg.client_id {
                let salt2 = msg.salt2.ok_or(missing("Client", "Salt2"))?;
                Ok(Request::ReturningClient {
                    id,
                    salt2,
                    signature,
                    update: msg.client_specs,
                    proof,
                })
            } else {
                let token = msg
                    .client_specs
                    .ok_or(missing("Client", "ClientSpecs or ClientID"))?;
                let name = msg
                    .client_name
                    .or_else(|| token.name.clone())
                    .ok_or(missing("Client", "ClientName"))?;
                Ok(Request::NewClient {
                    name,
                    token,
                    signature,
                    proof,
                })
            }
        }
        Tag::Create => {
            let name = msg.cluster_name.ok_or(missing("Create", "ClusterName"))?;
            let size = msg.cluster_size.ok_or(missing("Create", "ClusterSize"))?;
            let endpoints = msg.end_point_count.unwrap_or(1);
            if !(1..=2).contains(&endpoints) {
                return Err(ProtocolError::EndpointCount(endpoints));
            }
            Ok(Request::Create {
                name,
                size,
                endpoints,
            })
        }
        Tag::Join => {
            let cluster = cluster_ref(&msg);
            if cluster.is_empty() {
                return Err(missing("Join", "ClusterName or ClusterID"));
            }
            Ok(Request::Join(cluster))
        }
        Tag::GetCluster => Ok(Request::GetCluster {
            cluster: cluster_ref(&msg),
            which: msg.which.unwrap_or(u64::MAX),
        }),
        Tag::Bye => Ok(Request::Bye),
        other => Err(ProtocolError::Unexpected(other.as_str_name())),
    }
}

/// Who created a cluster, as cluster replies say (extension fields
/// `CreatorName` and `CreatorKey`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creator {
    /// The creator's client name.
    pub name: String,
    /// SHA-256 of its signing key (DER `SubjectPublicKeyInfo`).
    pub key: Fingerprint,
}

/// What a cluster looks like in replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// `ClusterID`.
    pub id: Vec<u8>,
    /// `ClusterName`.
    pub name: String,
    /// `ClusterSize`: most members.
    pub size: u32,
    /// `EndPointCount`: endpoints per member.
    pub endpoints: u32,
    /// `ClusterAttrs`.
    pub attrs: u64,
    /// Who created it (extension; absent from a seed registry, or from a
    /// cluster created before creators were kept).
    pub creator: Option<Creator>,
}

/// A reply from the registry.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `ClientOK`.
    ClientOk {
        /// `ClientName`: the name the registry uses (maybe uniquified).
        name: String,
        /// `ClientID`: the client's ID.
        id: Vec<u8>,
        /// `ClientAttrs`: the attrs the registry uses.
        attrs: u64,
    },
    /// `CreateReply`.
    CreateReply(ClusterInfo),
    /// `JoinReply`.
    JoinReply(ClusterInfo),
    /// `ClusterMembers`.
    Members {
        /// The cluster (its ID, name, size and endpoint count are sent).
        cluster: ClusterInfo,
        /// `Which`: the members whose tokens follow.
        which: u64,
        /// `Tokens`, in bit order.
        tokens: Vec<Token>,
    },
    /// `Ack` (to `Bye`).
    Ack,
    /// `Error`.
    Error(String),
    /// `LeaveReply` (extension op 101): the client left `cluster`, freeing
    /// the slots in `which`.
    Left {
        /// The cluster's ID.
        id: Vec<u8>,
        /// Its name.
        name: String,
        /// The slot freed, as a `Which` bit.
        which: u64,
    },
}

fn with_op(op: Tag) -> XlRegMsg {
    XlRegMsg {
        op: Some(op as i32),
        ..Default::default()
    }
}

fn cluster_msg(op: Tag, c: &ClusterInfo) -> XlRegMsg {
    XlRegMsg {
        cluster_id: Some(c.id.clone()),
        cluster_name: Some(c.name.clone()),
        cluster_size: Some(c.size),
        cluster_attrs: Some(c.attrs),
        end_point_count: Some(c.endpoints),
        ..with_op(op)
    }
}

/// The creator extension fields of `info`.
fn creator_ext(info: &ClusterInfo) -> XlRegExt {
    match &info.creator {
        Some(c) => XlRegExt {
            creator_name: Some(c.name.clone()),
            creator_key: Some(c.key.to_vec()),
            ..Default::default()
        },
        None => XlRegExt::default(),
    }
}

/// The creator a reply's extension fields name, if both are there and well
/// formed.
fn creator_from(ext: &XlRegExt) -> Option<Creator> {
    let key = Fingerprint::try_from(ext.creator_key.as_deref()?).ok()?;
    Some(Creator {
        name: ext.creator_name.clone()?,
        key,
    })
}

impl Reply {
    /// The message on the wire, with the extension fields when `ext` (the
    /// client announced `Extensions`); without, exactly the seed's message.
    pub fn to_envelope(&self, ext: bool) -> Envelope {
        let msg = self.to_msg();
        let ext = match self {
            Reply::CreateReply(c) | Reply::JoinReply(c) | Reply::Members { cluster: c, .. }
                if ext =>
            {
                creator_ext(c)
            }
            _ => XlRegExt::default(),
        };
        Envelope { msg, ext }
    }

    /// Reads a reply received by a client, with its extension fields.
    pub fn from_envelope(env: Envelope) -> Result<Reply, ProtocolError> {
        let creator = creator_from(&env.ext);
        let mut reply = Reply::from_msg(env.msg)?;
        if let Reply::CreateReply(c) | Reply::JoinReply(c) | Reply::Members { cluster: c, .. } =
            &mut reply
        {
            c.creator = creator;
        }
        Ok(reply)
    }

    /// The seed's message on the wire.
    pub fn to_msg(&self) -> XlRegMsg {
        match self {
            Reply::ClientOk { name, id, attrs } => XlRegMsg {
                client_name: Some(name.clone()),
                client_id: Some(id.clone()),
                client_attrs: Some(*attrs),
                ..with_op(Tag::ClientOk)
            },
            Reply::CreateReply(c) => cluster_msg(Tag::CreateReply, c),
            Reply::JoinReply(c) => cluster_msg(Tag::JoinReply, c),
            Reply::Members {
                cluster,
                which,
                tokens,
            } => XlRegMsg {
                which: Some(*which),
                tokens: tokens.clone(),
                ..cluster_msg(Tag::ClusterMembers, cluster)
            },
            Reply::Ack => with_op(Tag::Ack),
            Reply::Error(desc) => XlRegMsg {
                err_desc: Some(desc.clone()),
                ..with_op(Tag::Error)
            },
            Reply::Left { id, name, which } => XlRegMsg {
                op: Some(OP_LEAVE_REPLY),
                cluster_id: Some(id.clone()),
                cluster_name: Some(name.clone()),
                which: Some(*which),
                ..Default::default()
            },
        }
    }

    /// Reads a reply received by a client (seed fields only).
    pub fn from_msg(msg: XlRegMsg) -> Result<Reply, ProtocolError> {
        if msg.op == Some(OP_LEAVE_REPLY) {
            return Ok(Reply::Left {
                id: msg.cluster_id.ok_or(missing("LeaveReply", "ClusterID"))?,
                name: msg.cluster_name.unwrap_or_default(),
                which: msg.which.unwrap_or(0),
            });
        }
        let op = op_of(&msg)?;
        check_salts(&msg)?;
        let cluster = |msg: &XlRegMsg, op: &'static str| -> Result<ClusterInfo, ProtocolError> {
            Ok(ClusterInfo {
                id: msg.cluster_id.clone().ok_or(missing(op, "ClusterID"))?,
                name: msg.cluster_name.clone().unwrap_or_default(),
                size: msg.cluster_size.ok_or(missing(op, "ClusterSize"))?,
                endpoints: msg.end_point_count.unwrap_or(1),
                attrs: msg.cluster_attrs.unwrap_or(0),
                creator: None,
            })
        };
        match op {
            Tag::ClientOk => Ok(Reply::ClientOk {
                id: msg.client_id.ok_or(missing("ClientOK", "ClientID"))?,
                name: msg.client_name.unwrap_or_default(),
                attrs: msg.client_attrs.unwrap_or(0),
            }),
            Tag::CreateReply => Ok(Reply::CreateReply(cluster(&msg, "CreateReply")?)),
            Tag::JoinReply => Ok(Reply::JoinReply(cluster(&msg, "JoinReply")?)),
            Tag::ClusterMembers => {
                let info = ClusterInfo {
                    id: msg
                        .cluster_id
                        .clone()
                        .ok_or(missing("ClusterMembers", "ClusterID"))?,
                    name: msg.cluster_name.clone().unwrap_or_default(),
                    size: msg.cluster_size.unwrap_or(0),
                    endpoints: msg.end_point_count.unwrap_or(0),
                    attrs: msg.cluster_attrs.unwrap_or(0),
                    creator: None,
                };
                Ok(Reply::Members {
                    cluster: info,
                    which: msg.which.unwrap_or(0),
                    tokens: msg.tokens,
                })
            }
            Tag::Ack => Ok(Reply::Ack),
            Tag::Error => Ok(Reply::Error(msg.err_desc.unwrap_or_default())),
            other => Err(ProtocolError::Unexpected(other.as_str_name())),
        }
    }
}

#[cfg(test)]
mod tests;
