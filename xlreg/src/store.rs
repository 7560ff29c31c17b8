//! Durable registry state: an append-only log of [`Change`]s, compacted on
//! every start.
//!
//! ```text
//! file   = magic "XLREGLG1" ‖ record*
//! record = len[4, big-endian] ‖ payload[len] ‖ check[8]
//! check  = the first 8 bytes of SHA-256(len ‖ payload)
//! payload: an XLRegMsg (the protocol's own schema), then maybe extension
//!          fields (an XLRegExt, docs/XLREG.md §14)
//!   client registered or updated  Op=Client  ClientSpecs=token (final Name, Attrs, ID)
//!                                            [ext Registered]
//!   cluster created               Op=Create  ClusterID ClusterName ClusterSize
//!                                            EndPointCount ClusterAttrs
//!                                            [ClientID = creator] [ext Created]
//!   member joined                 Op=Join    ClusterID ClientID [ext Slot]
//!   member left or removed        Op=100     ClusterID ClientID
//!   cluster size changed          Op=102     ClusterID ClusterSize
//!   empty cluster forgotten       Op=Bye     ClusterID
//!   client forgotten              Op=Bye     ClientID
//! ```
//!
//! A record without its time (written before times were kept) gets the
//! time of the replay.
//!
//! [`Store::append`] writes one record and `fdatasync`s before it returns;
//! the registry instead [`Store::write`]s and lets a
//! [`super::commit::Committer`] sync many records at once, but either way a
//! change is on disk before its reply leaves. After a failed write or sync
//! the store refuses every further change (the page cache can no longer be
//! trusted) until the registry restarts.
//!
//! [`Store::open`] replays the log. The last record may be torn by a crash
//! (incomplete, or with a bad check when nothing follows it): it was never
//! acknowledged, so it is dropped with a warning. Anything else that does
//! not read back is corruption, and the registry refuses to start rather
//! than forget members. What has outlived the client TTL while the registry
//! was down is then forgotten ([`Registry::expired`]), and the state is
//! written as a fresh log (a snapshot: every client, every cluster, every
//! membership in join order) to a temporary file, synced, and renamed over
//! the old one: a restart never keeps what the TTL let go.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use catalogue_proto::{
    reg::{XlRegMsg, xl_reg_msg::Tag},
    regext::XlRegExt,
};
use sha2::{Digest, Sha256};

use super::{
    ext::{Envelope, OP_LEAVE, OP_SET_SIZE},
    protocol::ClusterInfo,
    registry::{Change, Limits, Registry, RegistryError, unix_now},
};

/// Name of the log file in the registry's directory.
pub const LOG_FILE: &str = "registry.log";
/// First bytes of a log file.
pub const MAGIC: &[u8; 8] = b"XLREGLG1";
/// Largest record payload accepted.
pub const MAX_RECORD_LEN: usize = 1 << 20;
const CHECK_LEN: usize = 8;
/// Most bytes a torn last record can leave: more unreadable bytes at the
/// end of the log are corruption, not a crash.
const MAX_TORN_LEN: usize = 4 + MAX_RECORD_LEN + CHECK_LEN;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file system failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// The log does not start with the magic.
    #[error("{path} is not a registry log")]
    NotALog {
        /// The file.
        path: PathBuf,
    },
    /// A record in the middle of the log does not read back.
    #[error("{path}: record at byte {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the record starts.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// An earlier write failed; no change is accepted until a restart.
    #[error("an earlier write to the registry log failed; restart the registry")]
    Poisoned,
}

/// What [`Store::open`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpenReport {
    /// Records replayed.
    pub records: usize,
    /// Bytes of a torn last record dropped.
    pub dropped_bytes: usize,
    /// Clients and clusters forgotten at start (past the client TTL).
    pub expired: usize,
}

/// The registry's log, open for appending.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    file: File,
    poisoned: bool,
    /// Records written since the log was opened.
    written: u64,
}

/// A change as a record payload.
pub fn encode_change(change: &Change) -> Vec<u8> {
    let op = |tag: Tag| Some(tag as i32);
    let (msg, ext) = match change {
        Change::PutClient { token, registered } => (
            XlRegMsg {
                op: op(Tag::Client),
                client_specs: Some(token.clone()),
                ..Default::default()
            },
            XlRegExt {
                registered: Some(*registered),
                ..Default::default()
            },
        ),
        Change::CreateCluster {
            info,
            creator,
            created,
        } => (
            XlRegMsg {
                op: op(Tag::Create),
                cluster_id: Some(info.id.clone()),
                cluster_name: Some(info.name.clone()),
                cluster_size: Some(info.size),
                end_point_count: Some(info.endpoints),
                cluster_attrs: Some(info.attrs),
                client_id: creator.clone(),
                ..Default::default()
            },
            XlRegExt {
                created: Some(*created),
                ..Default::default()
            },
        ),
        Change::AddMember {
            cluster,
            client,
            slot,
        } => (
            XlRegMsg {
                op: op(Tag::Join),
                cluster_id: Some(cluster.clone()),
                client_id: Some(client.clone()),
                ..Default::default()
            },
            XlRegExt {
                slot: slot.and_then(|n| u32::try_from(n).ok()),
                ..Default::default()
            },
        ),
        Change::RemoveMember { cluster, client } => (
            XlRegMsg {
                op: Some(OP_LEAVE),
                cluster_id: Some(cluster.clone()),
                client_id: Some(client.clone()),
                ..Default::default()
            },
            XlRegExt::default(),
        ),
        Change::SetSize { cluster, size } => (
            XlRegMsg {
                op: Some(OP_SET_SIZE),
                cluster_id: Some(cluster.clone()),
                cluster_size: Some(*size),
                ..Default::default()
            },
            XlRegExt::default(),
        ),
        Change::ForgetCluster(cluster) => (
            XlRegMsg {
                op: op(Tag::Bye),
                cluster_id: Some(cluster.clone()),
                ..Default::default()
            },
            XlRegExt::default(),
        ),
        Change::ForgetClient(client) => (
            XlRegMsg {
                op: op(Tag::Bye),
                client_id: Some(client.clone()),
                ..Default::default()
            },
            XlRegExt::default(),
        ),
    };
    Envelope { msg, ext }.encode_to_vec()
}

/// A record payload as a change; `default_time` stands for a time the
/// record does not carry (a log written before times were kept).
pub fn decode_change(payload: &[u8], default_time: u64) -> Result<Change, String> {
    let Envelope { msg, ext } = Envelope::decode(payload).map_err(|e| e.to_string())?;
    let missing = |field: &str| format!("record without {field}");
    match msg.op {
        Some(OP_LEAVE) => {
            return Ok(Change::RemoveMember {
                cluster: msg.cluster_id.ok_or_else(|| missing("ClusterID"))?,
                client: msg.client_id.ok_or_else(|| missing("ClientID"))?,
            });
        }
        Some(OP_SET_SIZE) => {
            return Ok(Change::SetSize {
                cluster: msg.cluster_id.ok_or_else(|| missing("ClusterID"))?,
                size: msg.cluster_size.ok_or_else(|| missing("ClusterSize"))?,
            });
        }
        _ => {}
    }
    match msg.op.map(Tag::try_from) {
        Some(Ok(Tag::Client)) => Ok(Change::PutClient {
            token: msg.client_specs.ok_or_else(|| missing("ClientSpecs"))?,
            registered: ext.registered.unwrap_or(default_time),
        }),
        Some(Ok(Tag::Create)) => Ok(Change::CreateCluster {
            info: ClusterInfo {
                id: msg.cluster_id.ok_or_else(|| missing("ClusterID"))?,
                name: msg.cluster_name.ok_or_else(|| missing("ClusterName"))?,
                size: msg.cluster_size.ok_or_else(|| missing("ClusterSize"))?,
                endpoints: msg
                    .end_point_count
                    .ok_or_else(|| missing("EndPointCount"))?,
                attrs: msg.cluster_attrs.unwrap_or(0),
                creator: None,
            },
            creator: msg.client_id,
            created: ext.created.unwrap_or(default_time),
        }),
        Some(Ok(Tag::Join)) => Ok(Change::AddMember {
            cluster: msg.cluster_id.ok_or_else(|| missing("ClusterID"))?,
            client: msg.client_id.ok_or_else(|| missing("ClientID"))?,
            slot: ext.slot.map(|n| n as usize),
        }),
        Some(Ok(Tag::Bye)) => match (msg.cluster_id, msg.client_id) {
            (Some(cluster), None) => Ok(Change::ForgetCluster(cluster)),
            (None, Some(client)) => Ok(Change::ForgetClient(client)),
            _ => Err("Bye record without exactly one of ClusterID and ClientID".into()),
        },
        other => Err(format!("record with op {other:?}")),
    }
}

fn check_of(len: &[u8], payload: &[u8]) -> [u8; CHECK_LEN] {
    let digest = Sha256::new()
        .chain_update(len)
        .chain_update(payload)
        .finalize();
    let mut out = [0u8; CHECK_LEN];
    out.copy_from_slice(&digest[..CHECK_LEN]);
    out
}

/// A change as a whole record.
pub fn record(change: &Change) -> Vec<u8> {
    let payload = encode_change(change);
    // Payloads are far below 4 GiB: tokens are bounded by the frame limit.
    let len = u32::try_from(payload.len())
        .unwrap_or(u32::MAX)
        .to_be_bytes();
    let mut out = Vec::with_capacity(4 + payload.len() + CHECK_LEN);
    out.extend_from_slice(&len);
    out.extend_from_slice(&payload);
    out.extend_from_slice(&check_of(&len, &payload));
    out
}

/// How one record read back.
enum Read {
    /// A good record and where the next one starts.
    Record(Change, usize),
    /// The log ends here, possibly after a torn record.
    End,
}

fn read_record(bytes: &[u8], offset: usize, now: u64) -> Result<Read, String> {
    let rest = &bytes[offset..];
    if rest.is_empty() {
        return Ok(Read::End);
    }
    let torn = Ok(Read::End);
    if rest.len() < 4 {
        return torn;
    }
    let mut len_bytes = [0u8; 4];
    len_bytes.copy_from_slice(&rest[..4]);
    let len = u32::from_be_bytes(len_bytes) as usize;
    let end = 4 + len + CHECK_LEN;
    if rest.len() < end {
        return torn;
    }
    let payload = &rest[4..4 + len];
    if rest[4 + len..end] != check_of(&len_bytes, payload) {
        if rest.len() == end {
            return torn;
        }
        return Err("bad check".into());
    }
    if len > MAX_RECORD_LEN {
        return Err(format!("record of {len} bytes"));
    }
    Ok(Read::Record(decode_change(payload, now)?, offset + end))
}

/// Rebuilds the registry from the bytes of a log (`path` names it in
/// errors).
pub fn replay(
    bytes: &[u8],
    limits: Limits,
    path: &Path,
) -> Result<(Registry, OpenReport), StoreError> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(StoreError::NotALog {
            path: path.to_path_buf(),
        });
    }
    let mut registry = Registry::new(limits);
    let mut report = OpenReport::default();
    let mut offset = MAGIC.len();
    let now = unix_now();
    loop {
        let corrupt = |reason: String| StoreError::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason,
        };
        match read_record(bytes, offset, now).map_err(corrupt)? {
            Read::Record(change, next) => {
                registry
                    .apply(&change)
                    .map_err(|e: RegistryError| corrupt(e.to_string()))?;
                report.records += 1;
                offset = next;
            }
            Read::End => {
                report.dropped_bytes = bytes.len() - offset;
                if report.dropped_bytes > MAX_TORN_LEN {
                    return Err(corrupt(format!(
                        "{} unreadable bytes at the end, more than one torn record",
                        report.dropped_bytes
                    )));
                }
                return Ok((registry, report));
            }
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Store {
    /// Opens (or creates) the log in `dir`, replays it, forgets what has
    /// outlived the client TTL at `now`, compacts it.
    pub fn open(dir: &Path, limits: Limits) -> Result<(Store, Registry, OpenReport), StoreError> {
        Self::open_at(dir, limits, unix_now())
    }

    /// [`Store::open`] at `now` (Unix seconds).
    pub fn open_at(
        dir: &Path,
        limits: Limits,
        now: u64,
    ) -> Result<(Store, Registry, OpenReport), StoreError> {
        fs::DirBuilder::new()
            .recursive(true)
            .create(dir)
            .map_err(io_error(dir))?;
        let path = dir.join(LOG_FILE);
        let (mut registry, mut report) = match fs::read(&path) {
            Ok(bytes) => replay(&bytes, limits, &path)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                (Registry::new(limits), OpenReport::default())
            }
            Err(e) => return Err(io_error(&path)(e)),
        };
        for change in registry.expired(now) {
            registry.apply(&change).map_err(|e| StoreError::Corrupt {
                path: path.clone(),
                offset: 0,
                reason: format!("forgetting what expired: {e}"),
            })?;
            report.expired += 1;
        }
        Self::compact(&path, &registry)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_error(&path))?;
        Ok((
            Store {
                path,
                file,
                poisoned: false,
                written: 0,
            },
            registry,
            report,
        ))
    }

    /// Writes `registry`'s snapshot as the new log at `path`.
    fn compact(path: &Path, registry: &Registry) -> Result<(), StoreError> {
        let mut bytes = MAGIC.to_vec();
        for change in registry.snapshot() {
            bytes.extend_from_slice(&record(&change));
        }
        let tmp = path.with_extension("log.compacting");
        let dir = path.parent().unwrap_or(Path::new("."));
        (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            File::open(dir)?.sync_all()
        })()
        .map_err(io_error(path))
    }

    /// Appends `change` and syncs it to disk.
    pub fn append(&mut self, change: &Change) -> Result<(), StoreError> {
        self.write(change)?;
        if let Err(e) = self.file.sync_data() {
            self.poisoned = true;
            return Err(io_error(&self.path)(e));
        }
        Ok(())
    }

    /// Appends `change` without syncing (a [`super::commit::Committer`]
    /// syncs); returns the number of records written since the log was
    /// opened, this one included.
    pub fn write(&mut self, change: &Change) -> Result<u64, StoreError> {
        if self.poisoned {
            return Err(StoreError::Poisoned);
        }
        if let Err(e) = self.file.write_all(&record(change)) {
            self.poisoned = true;
            return Err(io_error(&self.path)(e));
        }
        self.written += 1;
        Ok(self.written)
    }

    /// Records written since the log was opened.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Another handle on the log file, for syncing it from another thread.
    pub fn sync_handle(&self) -> Result<File, StoreError> {
        self.file.try_clone().map_err(io_error(&self.path))
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests;
