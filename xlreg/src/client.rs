//! The registry client, for cluster formation and the command line.
//!
//! ```ignore
//! let server_key = PublicKey::from_pem(&std::fs::read("registry.pub")?)?;
//! let mut identity = Identity::load_or_create(&dir, "node-a")?;
//! let my_ends = vec!["10.0.0.2:7481".to_string()];
//! let mut client = RegistryClient::connect("10.0.0.1:7483", &server_key).await?;
//! client.login(&mut identity, Some(my_ends.as_slice())).await?;
//! client.create("prod", 3, 1).await?;          // or find it, unchanged
//! let me = client.join("prod").await?;
//! let members = client.members(&ClusterRef::default()).await?; // this session's cluster
//! client.bye().await?;
//! ```
//!
//! [`RegistryClient::connect`] runs the Hello exchange and refuses a
//! registry that does not prove it holds the key (wrong salt1, bad
//! padding). Every request then waits at most [`ClientOptions::timeout`]
//! for its reply. An `Error` reply ends the session (the registry closes
//! it) and comes back as [`ClientError::Refused`], or
//! [`ClientError::UnknownClient`] when the registry does not know a
//! returning client's ID (call [`Identity::forget`], connect again and
//! register anew).
//!
//! Extensions (docs/XLREG.md §14): every `Client` message announces
//! `Extensions`, so a catalogue registry names each cluster's creator in
//! its replies ([`ClusterInfo::creator`]); with [`ClientOptions::secret`]
//! it also carries `AdmitProof` for a registry whose admission control
//! asks for a shared secret. A seed registry ignores both.

use std::time::Duration;

use catalogue_proto::{
    reg::{
        XlRegMsg,
        xl_reg_msg::{Tag, Token},
    },
    regext::XlRegExt,
};
use futures_util::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_util::codec::Framed;

use super::{
    crypto::Salt,
    ext::{self, Envelope},
    frame::{FrameError, MsgCodec, Role},
    hello::{HandshakeError, Hello, HelloReply, REPLY_WIRE_LEN},
    identity::{Identity, IdentityError},
    keys::PublicKey,
    protocol::{ClusterInfo, ClusterRef, Reply},
    registry::RegistryError,
    token::{self, TokenError},
    version::Version,
};

/// Default time allowed for connecting, the Hello exchange and each reply.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A shared secret; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How a client connects.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The version asked for in the Hello.
    pub version: Version,
    /// The oldest version accepted in the reply.
    pub min_version: Version,
    /// Time allowed for each step.
    pub timeout: Duration,
    /// The registry's shared secret, proved in `Client` (`AdmitProof`)
    /// when given.
    pub secret: Option<Secret>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            version: Version::V2,
            min_version: Version::V2,
            timeout: DEFAULT_TIMEOUT,
            secret: None,
        }
    }
}

/// Why a registry request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection could not be made.
    #[error("cannot connect to the registry at {addr}: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The connection failed.
    #[error("registry connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// A step took longer than the timeout.
    #[error("no answer from the registry within {0:?}")]
    Timeout(Duration),
    /// The registry's HelloReply was refused.
    #[error("registry handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The registry closed the connection without a reply.
    #[error("the registry closed the connection")]
    Closed,
    /// A session frame failed.
    #[error("registry session failed: {0}")]
    Frame(#[from] FrameError),
    /// The registry answered `Error` (and closed the session).
    #[error("the registry refused: {0}")]
    Refused(String),
    /// The registry does not know this client's ID.
    #[error("the registry does not know this client's ID")]
    UnknownClient,
    /// The registry answered something else than the request calls for.
    #[error("unexpected reply from the registry: {0}")]
    Unexpected(String),
    /// The identity could not be used or saved.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Signing failed.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The session is over (after `Bye`, or an error).
    #[error("the registry session is closed")]
    SessionClosed,
}

/// What `ClientOK` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The name the registry uses for this client.
    pub name: String,
    /// The client's ID.
    pub id: Vec<u8>,
    /// The attrs the registry uses.
    pub attrs: u64,
}

/// One member of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its position in join order: its bit in `Which`.
    pub index: u32,
    /// Its name.
    pub name: String,
    /// Its client ID.
    pub id: Vec<u8>,
    /// Its attrs.
    pub attrs: u64,
    /// Its endpoints (`MyEnds`): `[0]` for links inside the cluster.
    pub my_ends: Vec<String>,
    /// Its comms key (DER `SubjectPublicKeyInfo`).
    pub comms_key: Vec<u8>,
    /// Its signing key (DER `SubjectPublicKeyInfo`).
    pub sig_key: Vec<u8>,
}

/// Members of a cluster, as far as known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members {
    /// The cluster.
    pub cluster: ClusterInfo,
    /// The members present, one bit each.
    pub which: u64,
    /// Those members, in index order.
    pub members: Vec<Member>,
}

impl Members {
    /// Whether every slot of the cluster is filled.
    pub fn complete(&self) -> bool {
        self.members.len() >= self.cluster.size as usize
    }

    /// The member with client ID `id`.
    pub fn find(&self, id: &[u8]) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }
}

/// Pairs the tokens of a `ClusterMembers` with their bits.
pub fn members_from(which: u64, tokens: Vec<Token>) -> Result<Vec<Member>, ClientError> {
    if which.count_ones() as usize != tokens.len() {
        return Err(ClientError::Unexpected(format!(
            "Which has {} bits set but {} tokens came",
            which.count_ones(),
            tokens.len()
        )));
    }
    let indices = (0..64u32).filter(|n| which & (1u64 << n) != 0);
    Ok(indices
        .zip(tokens)
        .map(|(index, t)| Member {
            index,
            name: t.name.unwrap_or_default(),
            id: t.id.unwrap_or_default(),
            attrs: t.attrs.unwrap_or(0),
            my_ends: t.my_ends,
            comms_key: t.comms_key.unwrap_or_default(),
            sig_key: t.sig_key.unwrap_or_default(),
        })
        .collect())
}

/// A session with the registry.
pub struct RegistryClient {
    framed: Framed<TcpStream, MsgCodec>,
    version: Version,
    salt2: Salt,
    timeout: Duration,
    secret: Option<Secret>,
    open: bool,
}

fn op(tag: Tag) -> XlRegMsg {
    XlRegMsg {
        op: Some(tag as i32),
        ..Default::default()
    }
}

impl RegistryClient {
    /// Connects with the default options (asks for v2, accepts only v2).
    pub async fn connect(
        addr: &str,
        server_key: &PublicKey,
    ) -> Result<RegistryClient, ClientError> {
        Self::connect_with(addr, server_key, &ClientOptions::default()).await
    }

    /// Connects and runs the Hello exchange.
    pub async fn connect_with(
        addr: &str,
        server_key: &PublicKey,
        options: &ClientOptions,
    ) -> Result<RegistryClient, ClientError> {
        let timeout = options.timeout;
        let mut stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
            .map_err(|source| ClientError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let hello = Hello::new(options.version)?;
        let sealed = hello.seal(server_key)?;
        let reply = tokio::time::timeout(timeout, async {
            stream.write_all(&sealed).await?;
            let mut wire = [0u8; REPLY_WIRE_LEN];
            match stream.read_exact(&mut wire).await {
                Ok(_) => Ok(wire),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(ClientError::Closed),
                Err(e) => Err(ClientError::Io(e)),
            }
        })
        .await
        .map_err(|_| ClientError::Timeout(timeout))??;
        let reply = HelloReply::open(&reply, &hello)?;
        if reply.version > options.version
            || reply.version < options.min_version
            || reply.version.scheme().is_none()
        {
            return Err(HandshakeError::Version(reply.version).into());
        }
        let keys = reply.session_keys()?;
        Ok(RegistryClient {
            framed: Framed::new(stream, MsgCodec::new(&keys, Role::Client)),
            version: reply.version,
            salt2: reply.salt2,
            timeout,
            secret: options.secret.clone(),
            open: true,
        })
    }

    /// The version the registry chose.
    pub fn version(&self) -> Version {
        self.version
    }

    /// This session's salt2.
    pub fn salt2(&self) -> &Salt {
        &self.salt2
    }

    /// Sends `msg` and waits for the reply. An `Error` reply closes the
    /// session.
    pub async fn request(&mut self, msg: XlRegMsg) -> Result<Reply, ClientError> {
        self.request_envelope(msg.into()).await
    }

    /// [`RegistryClient::request`] with extension fields.
    pub async fn request_envelope(&mut self, msg: Envelope) -> Result<Reply, ClientError> {
        if !self.open {
            return Err(ClientError::SessionClosed);
        }
        let timeout = self.timeout;
        let result = tokio::time::timeout(timeout, async {
            self.framed.send(msg).await?;
            match self.framed.next().await {
                Some(Ok(reply)) => Ok(reply),
                Some(Err(e)) => Err(ClientError::Frame(e)),
                None => Err(ClientError::Closed),
            }
        })
        .await
        .map_err(|_| ClientError::Timeout(timeout));
        let reply = match result.and_then(|r| r) {
            Ok(reply) => reply,
            Err(e) => {
                self.open = false;
                return Err(e);
            }
        };
        match Reply::from_envelope(reply) {
            Ok(Reply::Error(desc)) => {
                self.open = false;
                if desc == RegistryError::UnknownClient.to_string() {
                    Err(ClientError::UnknownClient)
                } else {
                    Err(ClientError::Refused(desc))
                }
            }
            Ok(reply) => Ok(reply),
            Err(e) => {
                self.open = false;
                Err(ClientError::Unexpected(e.to_string()))
            }
        }
    }

    /// The extension fields of this session's `Client`: `Extensions`, and
    /// `AdmitProof` when a secret is configured.
    fn client_ext(&self) -> Result<XlRegExt, ClientError> {
        let proof = match &self.secret {
            Some(secret) => Some(
                ext::admission_proof(&secret.0, &self.salt2)
                    .map_err(|e| ClientError::Unexpected(e.to_string()))?
                    .to_vec(),
            ),
            None => None,
        };
        Ok(XlRegExt {
            extensions: Some(ext::EXTENSIONS),
            admit_proof: proof,
            ..Default::default()
        })
    }

    fn client_ok(reply: Reply) -> Result<Registered, ClientError> {
        match reply {
            Reply::ClientOk { name, id, attrs } => Ok(Registered { name, id, attrs }),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Registers `identity` as a new client with `my_ends`, and remembers
    /// the ID and name the registry gives.
    pub async fn register(
        &mut self,
        identity: &mut Identity,
        my_ends: &[String],
    ) -> Result<Registered, ClientError> {
        let token = identity.token(my_ends)?;
        let signature = token::sign(identity.sig_key(), &token::signed_bytes(&token))?;
        let msg = XlRegMsg {
            client_name: Some(identity.name().to_string()),
            client_specs: Some(token),
            dig_sig: Some(signature),
            ..op(Tag::Client)
        };
        let ext = self.client_ext()?;
        let registered = Self::client_ok(self.request_envelope(Envelope { msg, ext }).await?)?;
        identity.remember(&registered.id, &registered.name)?;
        Ok(registered)
    }

    /// Comes back as the registered `identity`, updating its endpoints to
    /// `my_ends` when given.
    pub async fn resume(
        &mut self,
        identity: &Identity,
        my_ends: Option<&[String]>,
    ) -> Result<Registered, ClientError> {
        let id = identity
            .id()
            .ok_or_else(|| ClientError::Unexpected("the identity has no ID yet".into()))?
            .to_vec();
        let update = match my_ends {
            Some(ends) => Some(identity.token(ends)?),
            None => None,
        };
        let signed = token::returning_signed_bytes(&id, &self.salt2, update.as_ref());
        let msg = XlRegMsg {
            client_id: Some(id),
            salt2: Some(self.salt2.to_vec()),
            client_specs: update,
            dig_sig: Some(token::sign(identity.sig_key(), &signed)?),
            ..op(Tag::Client)
        };
        let ext = self.client_ext()?;
        Self::client_ok(self.request_envelope(Envelope { msg, ext }).await?)
    }

    /// [`resume`](Self::resume) when `identity` has an ID, else
    /// [`register`](Self::register) (with `my_ends`, or none).
    pub async fn login(
        &mut self,
        identity: &mut Identity,
        my_ends: Option<&[String]>,
    ) -> Result<Registered, ClientError> {
        if identity.id().is_some() {
            self.resume(identity, my_ends).await
        } else {
            self.register(identity, my_ends.unwrap_or(&[])).await
        }
    }

    fn cluster(reply: Reply, want: Tag) -> Result<ClusterInfo, ClientError> {
        match (reply, want) {
            (Reply::CreateReply(info), Tag::CreateReply)
            | (Reply::JoinReply(info), Tag::JoinReply) => Ok(info),
            (other, _) => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Creates cluster `name` (size clamped to 2..=64, `endpoints` 1 or 2),
    /// or finds it unchanged if it exists.
    pub async fn create(
        &mut self,
        name: &str,
        size: u32,
        endpoints: u32,
    ) -> Result<ClusterInfo, ClientError> {
        let msg = XlRegMsg {
            cluster_name: Some(name.to_string()),
            cluster_size: Some(size),
            end_point_count: Some(endpoints),
            ..op(Tag::Create)
        };
        Self::cluster(self.request(msg).await?, Tag::CreateReply)
    }

    /// Joins cluster `name`.
    pub async fn join(&mut self, name: &str) -> Result<ClusterInfo, ClientError> {
        self.join_ref(ClusterRef {
            id: None,
            name: Some(name.to_string()),
        })
        .await
    }

    /// Joins the cluster `cluster` names.
    pub async fn join_ref(&mut self, cluster: ClusterRef) -> Result<ClusterInfo, ClientError> {
        let msg = XlRegMsg {
            cluster_id: cluster.id,
            cluster_name: cluster.name,
            ..op(Tag::Join)
        };
        Self::cluster(self.request(msg).await?, Tag::JoinReply)
    }

    /// `GetCluster`: the members of `cluster` (empty: this session's)
    /// selected by `which` (`None`: all): every one of them that is defined,
    /// in one reply.
    pub async fn get_cluster(
        &mut self,
        cluster: &ClusterRef,
        which: Option<u64>,
    ) -> Result<Members, ClientError> {
        let msg = XlRegMsg {
            cluster_id: cluster.id.clone(),
            cluster_name: cluster.name.clone(),
            which,
            ..op(Tag::GetCluster)
        };
        match self.request(msg).await? {
            Reply::Members {
                cluster,
                which,
                tokens,
            } => Ok(Members {
                members: members_from(which, tokens)?,
                cluster,
                which,
            }),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Every member of `cluster` (empty: this session's) known now, asking
    /// again for any missing from the reply (a registry from before replies
    /// carried every member cut them at 64 KiB).
    pub async fn members(&mut self, cluster: &ClusterRef) -> Result<Members, ClientError> {
        let mut all = self.get_cluster(cluster, None).await?;
        // Ask by ID from now on: names could be ambiguous only by mistake.
        let by_id = ClusterRef {
            id: Some(all.cluster.id.clone()),
            name: None,
        };
        for _ in 0..64 {
            let more = self.get_cluster(&by_id, Some(!all.which)).await?;
            if more.which & !all.which == 0 {
                break;
            }
            all.which |= more.which;
            all.members.extend(more.members);
        }
        all.members.sort_by_key(|m| m.index);
        Ok(all)
    }

    /// `Leave` (extension, docs/XLREG.md §14): `identity` (the client this
    /// session identified as) gives up its slot in cluster `name`, signing
    /// with its SigKey over this session's salt2. Returns the slot freed,
    /// as a `Which` bit.
    pub async fn leave(&mut self, identity: &Identity, name: &str) -> Result<u64, ClientError> {
        let id = identity
            .id()
            .ok_or_else(|| ClientError::Unexpected("the identity has no ID yet".into()))?
            .to_vec();
        // The signature covers the cluster's ID: learn it first.
        let found = self
            .get_cluster(
                &ClusterRef {
                    id: None,
                    name: Some(name.to_string()),
                },
                Some(0),
            )
            .await?;
        let cluster_id = found.cluster.id;
        let signed = ext::leave_signed_bytes(&id, &cluster_id, &self.salt2);
        let msg = XlRegMsg {
            op: Some(ext::OP_LEAVE),
            cluster_id: Some(cluster_id),
            dig_sig: Some(token::sign(identity.sig_key(), &signed)?),
            ..Default::default()
        };
        match self.request(msg).await? {
            Reply::Left { which, .. } => Ok(which),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Ends the session: `Bye`, then the registry's `Ack`.
    pub async fn bye(mut self) -> Result<(), ClientError> {
        match self.request(op(Tag::Bye)).await? {
            Reply::Ack => Ok(()),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests;
