//! The `Registry` actor: owns the registry state and its log, runs one
//! request at a time.
//!
//! A request that changes the registry is planned, its record written to
//! the log, and applied; every reply (changing or not) then waits until all
//! records written so far are synced, which the [`Committer`] does for many
//! records at once. So no session ever sees, or is told about, a change
//! that is not on disk, and concurrent changes share their syncs. The actor
//! lives on its own arbiter (thread) because it writes the log
//! synchronously. Sessions reach it with [`Execute`].

use actix::prelude::*;
use tracing::{error, info};

use crate::xlreg::{
    commit::Committer,
    protocol::{Reply, Request},
    registry::{Change, Registry, RegistryError},
    session::SessionContext,
    store::Store,
};

/// Runs `request` for a session.
#[derive(Debug, Message)]
#[rtype(result = "Result<Executed, RegistryError>")]
pub struct Execute {
    /// The session's state.
    pub context: SessionContext,
    /// The request.
    pub request: Request,
}

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
    metrics: Option<crate::stats::ActorMetrics>,
}

impl RegistryActor {
    /// An actor over a registry replayed from `store`, whose log
    /// `committer` syncs.
    pub fn new(
        registry: Registry,
        store: Store,
        committer: Committer,
        metrics: Option<crate::stats::ActorMetrics>,
    ) -> RegistryActor {
        RegistryActor {
            registry,
            store,
            committer,
            metrics,
        }
    }

    fn log_change(&self, change: &Change, existed: bool, reply: &Reply) {
        match (change, reply) {
            (Change::PutClient(token), _) => info!(
                client = token.name.as_deref().unwrap_or(""),
                endpoints = ?token.my_ends,
                "{}",
                if existed {
                    "xlReg client updated"
                } else {
                    "xlReg client registered"
                }
            ),
            (Change::CreateCluster(info), _) => info!(
                cluster = %info.name,
                size = info.size,
                endpoints = info.endpoints,
                "xlReg cluster created"
            ),
            (Change::AddMember { .. }, Reply::JoinReply(info)) => {
                let members = self.registry.members_of(&info.name).map_or(0, |m| m.len());
                info!(cluster = %info.name, members, size = info.size, "xlReg member joined");
            }
            _ => {}
        }
    }

    /// Plans, writes and applies `msg`; the result is not durable yet.
    fn run(&mut self, msg: &Execute) -> Result<Executed, RegistryError> {
        let planned = self.registry.plan(&msg.context, &msg.request)?;
        if let Some(change) = &planned.change {
            let existed = match change {
                Change::PutClient(token) => token
                    .id
                    .as_ref()
                    .is_some_and(|id| self.registry.has_client(id)),
                _ => false,
            };
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
            self.log_change(change, existed, &planned.reply);
        }
        Ok(Executed {
            reply: planned.reply,
            client: planned.client,
            cluster: planned.cluster,
        })
    }
}

impl Actor for RegistryActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        if let Some(m) = &self.metrics {
            m.started();
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(m) = &self.metrics {
            m.stopped();
        }
    }
}

impl Handler<Execute> for RegistryActor {
    type Result = ResponseFuture<Result<Executed, RegistryError>>;

    fn handle(&mut self, msg: Execute, _: &mut Context<Self>) -> Self::Result {
        let _timer = self.metrics.as_ref().map(|m| m.handling("Execute"));
        if self.committer.failed() {
            // The state in memory may hold changes that never reached the
            // disk: answer nothing from it.
            return Box::pin(async { Err(RegistryError::Storage) });
        }
        let result = self.run(&msg);
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
