//! The `Registry` actor: owns the registry state and its log, runs one
//! request at a time.
//!
//! A request that changes the registry is planned, its record written to
//! the log, and applied; its reply, and every reply that reads the
//! registry, then waits until all records written so far are synced, which
//! the [`Committer`] does for many records at once (a `Bye`, answered with
//! a bare `Ack`, waits for nothing). So no session ever sees, or is told about, a change
//! that is not on disk, and concurrent changes share their syncs. The actor
//! lives on its own arbiter (thread) because it writes the log
//! synchronously. Sessions reach it with [`Execute`].
//!
//! Every [`sweep_interval`] it forgets what has outlived the client TTL
//! ([`Registry::expired`]): the same log-then-apply path as a request's
//! change. Refused requests are counted by reason in [`XlregStats`].

use std::{sync::Arc, time::Duration};

use actix::prelude::*;
use tracing::{debug, error, info};

use crate::xlreg::XlregStats;
use crate::xlreg::{
    commit::Committer,
    protocol::{Reply, Request},
    registry::{AdminRequest, Change, Registry, RegistryError, unix_now},
    session::SessionContext,
    store::Store,
};

/// How often the registry looks for what expired: a tenth of the client
/// TTL, between 1 s and 60 s.
pub fn sweep_interval(client_ttl: Duration) -> Duration {
    (client_ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Runs `request` for a session.
#[derive(Debug, Message)]
#[rtype(result = "Result<Executed, RegistryError>")]
pub struct Execute {
    /// The session's state.
    pub context: SessionContext,
    /// The request.
    pub request: Request,
}

/// Runs an operator's request from the admin socket ([`super::admin`]).
#[derive(Debug, Message)]
#[rtype(result = "Result<String, RegistryError>")]
pub struct Admin(pub AdminRequest);

/// What a request did.
#[derive(Debug)]
pub struct Executed {
    /// The reply to send.
    pub reply: Reply,
    /// The client the session is now identified as.
    pub client: Option<Vec<u8>>,
    /// The cluster the session now refers to.
    pub cluster: Option<Vec<u8>>,
}

/// The registry actor.
pub struct RegistryActor {
    registry: Registry,
    store: Store,
    committer: Committer,
    metrics: Option<crate::metrics::ActorMetrics>,
    stats: Arc<XlregStats>,
}

impl RegistryActor {
    /// An actor over a registry replayed from `store`, whose log
    /// `committer` syncs.
    pub fn new(
        registry: Registry,
        store: Store,
        committer: Committer,
        metrics: Option<crate::metrics::ActorMetrics>,
        stats: Arc<XlregStats>,
    ) -> RegistryActor {
        stats.set_sizes(registry.client_count(), registry.cluster_count());
        RegistryActor {
            registry,
            store,
            committer,
            metrics,
            stats,
        }
    }

    fn log_change(&self, change: &Change, existed: bool, reply: &Reply) {
        match (change, reply) {
            (Change::PutClient { token, .. }, _) => info!(
                client = token.name.as_deref().unwrap_or(""),
                endpoints = ?token.my_ends,
                "{}",
                if existed {
                    "xlReg client updated"
                } else {
                    "xlReg client registered"
                }
            ),
            (Change::CreateCluster { info, .. }, Reply::CreateReply(reply)) => info!(
                cluster = %info.name,
                size = info.size,
                endpoints = info.endpoints,
                creator = reply.creator.as_ref().map_or("", |c| c.name.as_str()),
                "xlReg cluster created"
            ),
            (Change::AddMember { .. }, Reply::JoinReply(info)) => {
                let members = self.registry.members_of(&info.name).map_or(0, |m| m.len());
                info!(cluster = %info.name, members, size = info.size, "xlReg member joined");
            }
            (Change::RemoveMember { .. }, Reply::Left { name, which, .. }) => {
                info!(cluster = %name, slot = which.trailing_zeros(), "xlReg member left");
            }
            _ => {}
        }
    }

    /// Writes `change` to the log and applies it; not durable yet.
    fn make(&mut self, change: &Change) -> Result<(), RegistryError> {
        match self.store.write(change) {
            Ok(written) => self.committer.written(written),
            Err(e) => {
                error!(error = %e, "xlReg: cannot write the registry log; refusing changes");
                return Err(RegistryError::Storage);
            }
        }
        if let Err(e) = self.registry.apply(change) {
            // Planned against this very state, so this is a bug.
            error!(error = %e, "xlReg: a planned change does not apply");
            return Err(RegistryError::Storage);
        }
        self.stats
            .set_sizes(self.registry.client_count(), self.registry.cluster_count());
        Ok(())
    }

    /// Plans, writes and applies `msg`; the result is not durable yet.
    fn run(&mut self, msg: &Execute) -> Result<Executed, RegistryError> {
        let planned = self
            .registry
            .plan_at(&msg.context, &msg.request, unix_now())
            .inspect_err(|e| self.stats.refused(e.reason()))?;
        if let Some(change) = &planned.change {
            let existed = match change {
                Change::PutClient { token, .. } => token
                    .id
                    .as_ref()
                    .is_some_and(|id| self.registry.has_client(id)),
                _ => false,
            };
            self.make(change)?;
            self.log_change(change, existed, &planned.reply);
        }
        Ok(Executed {
            reply: planned.reply,
            client: planned.client,
            cluster: planned.cluster,
        })
    }

    /// Forgets what has outlived the client TTL (log, then apply).
    fn sweep(&mut self) {
        if self.committer.failed() {
            return;
        }
        let expired = self.registry.expired(unix_now());
        let (mut clients, mut clusters) = (0u64, 0u64);
        for change in &expired {
            if self.make(change).is_err() {
                break;
            }
            match change {
                Change::ForgetClient(_) => clients += 1,
                _ => clusters += 1,
            }
        }
        if clients + clusters > 0 {
            self.stats.expired(clients, clusters);
            info!(
                clients,
                clusters,
                left = self.registry.client_count(),
                "xlReg: forgot clients and clusters past xlreg.client_ttl"
            );
        } else {
            debug!("xlReg: nothing expired");
        }
    }
}

impl Actor for RegistryActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(m) = &self.metrics {
            m.started();
        }
        let every = sweep_interval(self.registry.limits().client_ttl);
        ctx.run_interval(every, |act, _| act.sweep());
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(m) = &self.metrics {
            m.stopped();
        }
    }
}

impl Handler<Admin> for RegistryActor {
    type Result = ResponseFuture<Result<String, RegistryError>>;

    fn handle(&mut self, msg: Admin, _: &mut Context<Self>) -> Self::Result {
        let _timer = self.metrics.as_ref().map(|m| m.handling("Admin"));
        if self.committer.failed() {
            return Box::pin(async { Err(RegistryError::Storage) });
        }
        let result = self
            .registry
            .plan_admin(&msg.0)
            .and_then(|(changes, said)| {
                changes
                    .iter()
                    .try_for_each(|change| self.make(change))
                    .map(|()| said)
            });
        if let Ok(said) = &result {
            info!(request = ?msg.0, "xlReg operator: {said}");
        }
        let durable = self.committer.wait(self.store.written());
        Box::pin(async move {
            if let Err(e) = durable.await {
                error!(error = %e, "xlReg: the registry log cannot be synced; refusing requests");
                return Err(RegistryError::Storage);
            }
            result
        })
    }
}

impl Handler<Execute> for RegistryActor {
    type Result = ResponseFuture<Result<Executed, RegistryError>>;

    fn handle(&mut self, msg: Execute, _: &mut Context<Self>) -> Self::Result {
        let _timer = self.metrics.as_ref().map(|m| m.handling("Execute"));
        if self.committer.failed() {
            // The state in memory may hold changes that never reached the
            // disk: answer nothing from it.
            self.stats.refused(RegistryError::Storage.reason());
            return Box::pin(async { Err(RegistryError::Storage) });
        }
        let before = self.store.written();
        let result = self.run(&msg);
        let changed = self.store.written() != before;
        if result.is_ok() && !changed && !msg.request.reads_registry() {
            // A bare `Ack`: nothing to make durable, nothing reflected.
            return Box::pin(async move { result });
        }
        let durable = self.committer.wait(self.store.written());
        Box::pin(async move {
            if let Err(e) = durable.await {
                error!(error = %e, "xlReg: the registry log cannot be synced; refusing requests");
                return Err(RegistryError::Storage);
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Mutex, mpsc};

    use super::*;
    use crate::xlreg::{
        commit::SyncTarget,
        protocol::{ClusterInfo, ClusterRef},
        registry::Limits,
    };

    /// A sync that waits until the test lets it finish.
    struct Held {
        began: mpsc::Sender<()>,
        release: Mutex<mpsc::Receiver<()>>,
    }

    impl SyncTarget for Held {
        fn sync(&self) -> std::io::Result<()> {
            let _ = self.began.send(());
            let _ = self
                .release
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .recv();
            Ok(())
        }
    }

    fn context() -> SessionContext {
        SessionContext {
            client: None,
            cluster: None,
            salt2: [7; crate::xlreg::crypto::SALT_LEN],
        }
    }

    #[actix_rt::test]
    async fn a_bye_waits_for_no_sync_and_other_replies_for_the_pending_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, mut registry, _) = Store::open(dir.path(), Limits::default()).expect("open");
        registry
            .apply(&Change::CreateCluster {
                info: ClusterInfo {
                    id: vec![1; 32],
                    name: "c".into(),
                    size: 4,
                    endpoints: 1,
                    attrs: 0,
                    creator: None,
                },
                creator: None,
                created: 0,
            })
            .expect("cluster");
        let (began_tx, began) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let committer = Committer::start(
            Held {
                began: began_tx,
                release: Mutex::new(release_rx),
            },
            store.written(),
        )
        .expect("committer");
        let actor = RegistryActor::new(
            registry,
            store,
            committer,
            None,
            Arc::new(XlregStats::default()),
        )
        .start();
        // A change: written, its sync begun and held.
        let resize = actor.send(Admin(AdminRequest::SetSize {
            cluster: "c".into(),
            size: 8,
        }));
        let resize = actix_rt::spawn(resize);
        tokio::task::spawn_blocking(move || began.recv_timeout(Duration::from_secs(10)))
            .await
            .expect("join")
            .expect("the sync began");
        // A refusal reads the registry: it waits for the pending change.
        let refused = actix_rt::spawn(actor.send(Execute {
            context: context(),
            request: Request::GetCluster {
                cluster: ClusterRef {
                    id: None,
                    name: Some("c".into()),
                },
                which: u64::MAX,
            },
        }));
        // A Bye neither changes nor reads it: answered while the sync is
        // still held.
        let bye = actor.send(Execute {
            context: context(),
            request: Request::Bye,
        });
        let bye = tokio::time::timeout(Duration::from_secs(10), bye)
            .await
            .expect("a Bye answered while a sync is held")
            .expect("delivered")
            .expect("Ack");
        assert!(matches!(bye.reply, Reply::Ack), "{:?}", bye.reply);
        assert!(!resize.is_finished() && !refused.is_finished());
        release.send(()).expect("release");
        resize
            .await
            .expect("join")
            .expect("delivered")
            .expect("resized");
        assert!(
            refused.await.expect("join").expect("delivered").is_err(),
            "an unidentified GetCluster is refused"
        );
    }
}
