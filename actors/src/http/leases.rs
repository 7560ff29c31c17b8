//! `LeaseKeeper`: the actor that holds the node's HTTP leases
//! ([`LeaseTable`]) and keeps the supervisor told. A grant registers its
//! service under the lease's own connection id before the lease exists; a
//! revocation or an expiry closes that connection, so the service is
//! withdrawn cluster-wide exactly as when a registering process dies.
//!
//! Messages, all from the HTTP handlers on the UNIX-socket listener:
//! [`Grant`], [`Renew`], [`Revoke`]. One timer, set to the next expiry,
//! does the rest.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use actix::prelude::*;
use tracing::info;

use super::lease_table::{Lease, LeaseError, LeaseTable};
use crate::supervisor::{CatalogueSupervisor, ConnectionClosed, RegisterError, RegisterService};

/// Why a grant failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// The table is full.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// The supervisor refused the registration.
    #[error(transparent)]
    Register(#[from] RegisterError),
    /// The supervisor is gone (the node is stopping).
    #[error("the node is stopping")]
    Stopping,
}

/// Registers `uri` under a new lease lasting `ttl`, for `uid`.
#[derive(Debug, Message)]
#[rtype(result = "Result<Lease, GrantError>")]
pub struct Grant {
    /// Validated URI.
    pub uri: String,
    /// Validated attributes.
    pub attrs: BTreeMap<String, String>,
    /// Time to live of each renewal.
    pub ttl: Duration,
    /// The caller's uid.
    pub uid: u32,
}

/// Extends a lease by its TTL.
#[derive(Debug, Message)]
#[rtype(result = "Result<Lease, LeaseError>")]
pub struct Renew {
    /// The lease.
    pub id: String,
    /// The caller's uid.
    pub uid: u32,
}

/// Ends a lease and withdraws its service.
#[derive(Debug, Message)]
#[rtype(result = "Result<Lease, LeaseError>")]
pub struct Revoke {
    /// The lease.
    pub id: String,
    /// The caller's uid.
    pub uid: u32,
}

/// Holds the leases; one per node with an HTTP socket.
pub struct LeaseKeeper {
    table: LeaseTable,
    supervisor: Addr<CatalogueSupervisor>,
    timer: Option<SpawnHandle>,
}

impl LeaseKeeper {
    /// A keeper of at most `max` leases, registering through `supervisor`.
    pub fn new(max: usize, supervisor: Addr<CatalogueSupervisor>) -> Self {
        LeaseKeeper {
            table: LeaseTable::new(max),
            supervisor,
            timer: None,
        }
    }

    /// Sets the one timer to the next expiry.
    fn rearm(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        if let Some(at) = self.table.next_expiry() {
            let wait = at.saturating_duration_since(Instant::now());
            self.timer = Some(ctx.run_later(wait, |keeper, ctx| {
                keeper.timer = None;
                for lease in keeper.table.expire(Instant::now()) {
                    info!(lease = %lease.id, uri = %lease.uri, uid = lease.uid, "lease expired; service withdrawn");
                    keeper.withdraw(&lease);
                }
                keeper.rearm(ctx);
            }));
        }
    }

    fn withdraw(&self, lease: &Lease) {
        self.supervisor
            .do_send(ConnectionClosed { conn: lease.conn });
    }
}

impl Actor for LeaseKeeper {
    type Context = Context<Self>;
}

impl Handler<Grant> for LeaseKeeper {
    type Result = ResponseActFuture<Self, Result<Lease, GrantError>>;

    fn handle(&mut self, msg: Grant, _: &mut Context<Self>) -> Self::Result {
        let id = format!("{:016x}", rand::random::<u64>());
        let lease = match self
            .table
            .reserve(id, &msg.uri, msg.uid, msg.ttl, Instant::now())
        {
            Ok(lease) => lease,
            Err(e) => return Box::pin(fut::ready(Err(e.into()))),
        };
        let register = self.supervisor.send(RegisterService {
            conn: lease.conn,
            uri: msg.uri.into(),
            attrs: msg.attrs,
        });
        Box::pin(
            fut::wrap_future(register).map(move |result, keeper: &mut Self, ctx| match result {
                Ok(Ok(())) => {
                    // The TTL runs from the registration, not the request.
                    let mut lease = lease;
                    lease.expires = Instant::now() + lease.ttl;
                    info!(lease = %lease.id, uri = %lease.uri, uid = lease.uid, ttl = ?lease.ttl, "lease granted");
                    keeper.table.insert(lease.clone());
                    keeper.rearm(ctx);
                    Ok(lease)
                }
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err(GrantError::Stopping),
            }),
        )
    }
}

impl Handler<Renew> for LeaseKeeper {
    type Result = Result<Lease, LeaseError>;

    fn handle(&mut self, msg: Renew, ctx: &mut Context<Self>) -> Self::Result {
        let lease = self.table.renew(&msg.id, msg.uid, Instant::now())?;
        self.rearm(ctx);
        Ok(lease)
    }
}

impl Handler<Revoke> for LeaseKeeper {
    type Result = Result<Lease, LeaseError>;

    fn handle(&mut self, msg: Revoke, ctx: &mut Context<Self>) -> Self::Result {
        let lease = self.table.revoke(&msg.id, msg.uid)?;
        info!(lease = %lease.id, uri = %lease.uri, uid = msg.uid, "lease revoked; service withdrawn");
        self.withdraw(&lease);
        self.rearm(ctx);
        Ok(lease)
    }
}
