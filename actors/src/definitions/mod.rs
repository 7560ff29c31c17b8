//! `DefinitionKeeper`: the actor that registers the node's own services,
//! the `[[services]]` tables of its configuration (docs/CLIENTS.md,
//! "Services the node owns"), and runs their health checks. Each definition
//! registers under its own connection id ([`DEFINITION_CONN_BASE`] and up,
//! a fresh one per registration), like an HTTP lease
//! (`crate::http::lease_table`), so withdrawing it is a closed connection
//! to the supervisor and reaches the whole cluster as an unregister.
//!
//! Messages: [`Apply`], the definitions in force, at start and on every
//! reload (SIGHUP). The plain code it drives: [`diff`] (what a reload adds,
//! removes, changes) and [`health`] (consecutive results → passing or
//! failing); [`probe`] runs one check.
//!
//! A definition without a check is registered at once and stays. One with
//! a check is registered once the check has passed `successes` times in a
//! row, withdrawn after `failures` failures in a row, and so on; its state
//! is the metric `catalogue_check_status{uri}` and a log line at each
//! change, and a registered checked service carries the attribute
//! `check = "passing"` ([`health::CHECK_ATTR`]), so `list` shows it. A definition whose URI a client already registered is not
//! registered (logged); a changed check restarts from failing.

pub mod diff;
pub mod health;
pub mod probe;

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::prelude::*;
use tracing::{debug, info, warn};

use self::{
    diff::diff,
    health::{CheckState, Status},
};
use crate::{
    metrics::{Metrics, UriLabel},
    settings::{CheckKind, ServiceDefinition},
    supervisor::{CatalogueSupervisor, ConnId, ConnectionClosed, RegisterService},
};

/// Connection ids of definitions start here, above those of HTTP leases
/// (`1 << 48`) and HTTP watches (`1 << 49`).
pub const DEFINITION_CONN_BASE: ConnId = 1 << 50;

/// The definitions now in force (the whole list: the keeper works out the
/// differences).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Apply {
    /// Validated definitions (`Settings::validate`).
    pub definitions: Vec<ServiceDefinition>,
}

/// A running check of one definition.
struct Checking {
    kind: CheckKind,
    state: CheckState,
    /// The pending timer or run; cancelled when the definition goes.
    handle: Option<SpawnHandle>,
}

/// One definition and what the keeper did with it.
struct Entry {
    def: ServiceDefinition,
    /// The connection id it is registered under, while registered.
    conn: Option<ConnId>,
    check: Option<Checking>,
    /// Tells a stale timer or run (of a removed or changed definition)
    /// from the current one.
    generation: u64,
}

/// Registers the node's definitions; one per node.
pub struct DefinitionKeeper {
    entries: BTreeMap<String, Entry>,
    supervisor: Addr<CatalogueSupervisor>,
    stats: Arc<Metrics>,
    next_conn: u64,
    next_generation: u64,
}

impl DefinitionKeeper {
    /// A keeper with no definitions yet (send it [`Apply`]).
    pub fn new(supervisor: Addr<CatalogueSupervisor>, stats: Arc<Metrics>) -> Self {
        DefinitionKeeper {
            entries: BTreeMap::new(),
            supervisor,
            stats,
            next_conn: 0,
            next_generation: 0,
        }
    }

    fn add(&mut self, def: ServiceDefinition, ctx: &mut Context<Self>) {
        self.next_generation += 1;
        let generation = self.next_generation;
        let uri = def.uri.clone();
        let check = def.check.as_ref().and_then(|c| {
            c.kind().map(|kind| Checking {
                kind,
                state: CheckState::new(c.failures, c.successes),
                handle: None,
            })
        });
        let checked = check.is_some();
        self.entries.insert(
            uri.clone(),
            Entry {
                def,
                conn: None,
                check,
                generation,
            },
        );
        if checked {
            self.set_gauge(&uri, Status::Failing);
            info!(%uri, "service defined; registered once its check passes");
            self.schedule(uri, generation, Duration::ZERO, ctx);
        } else {
            info!(%uri, "service defined; registered");
            self.register(&uri, ctx);
        }
    }

    fn remove(&mut self, uri: &str, ctx: &mut Context<Self>) {
        let Some(mut entry) = self.entries.remove(uri) else {
            return;
        };
        if let Some(handle) = entry.check.as_mut().and_then(|c| c.handle.take()) {
            ctx.cancel_future(handle);
        }
        if entry.check.is_some() {
            self.stats.check_status.remove(&UriLabel {
                uri: uri.to_string(),
            });
        }
        if let Some(conn) = entry.conn {
            self.supervisor.do_send(ConnectionClosed { conn });
        }
        info!(%uri, "service definition removed; withdrawn");
    }

    /// Registers `uri` under a fresh connection id.
    fn register(&mut self, uri: &str, ctx: &mut Context<Self>) {
        let Some(entry) = self.entries.get_mut(uri) else {
            return;
        };
        let conn = match entry.conn {
            Some(conn) => conn,
            None => {
                self.next_conn += 1;
                DEFINITION_CONN_BASE + self.next_conn
            }
        };
        entry.conn = Some(conn);
        let generation = entry.generation;
        let mut attrs = entry.def.attrs.clone();
        if entry.check.is_some() {
            health::mark_passing(&mut attrs);
        }
        let request = self.supervisor.send(RegisterService {
            conn,
            uri: uri.into(),
            attrs,
        });
        let uri = uri.to_string();
        ctx.spawn(
            fut::wrap_future(request).map(move |result, keeper: &mut Self, _| {
                let refused = match result {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "the node is stopping".to_string(),
                };
                warn!(%uri, error = %refused, "cannot register the defined service");
                if let Some(entry) = keeper.entries.get_mut(&uri) {
                    if entry.generation == generation && entry.conn == Some(conn) {
                        entry.conn = None;
                    }
                }
            }),
        );
    }

    fn withdraw(&mut self, uri: &str) {
        if let Some(conn) = self.entries.get_mut(uri).and_then(|e| e.conn.take()) {
            self.supervisor.do_send(ConnectionClosed { conn });
        }
    }

    fn set_gauge(&self, uri: &str, status: Status) {
        self.stats
            .check_status
            .get_or_create(&UriLabel {
                uri: uri.to_string(),
            })
            .set(i64::from(status == Status::Passing));
    }

    /// Runs the check of `uri` after `delay`.
    fn schedule(&mut self, uri: String, generation: u64, delay: Duration, ctx: &mut Context<Self>) {
        let Some(check) = self.current(&uri, generation) else {
            return;
        };
        let key = uri.clone();
        let handle = ctx.run_later(delay, move |keeper, ctx| {
            keeper.run_check(key, generation, ctx)
        });
        check.handle = Some(handle);
    }

    fn current(&mut self, uri: &str, generation: u64) -> Option<&mut Checking> {
        self.entries
            .get_mut(uri)
            .filter(|e| e.generation == generation)
            .and_then(|e| e.check.as_mut())
    }

    fn run_check(&mut self, uri: String, generation: u64, ctx: &mut Context<Self>) {
        let Some(entry) = self
            .entries
            .get(&uri)
            .filter(|e| e.generation == generation)
        else {
            return;
        };
        let Some((check, settings)) = entry.check.as_ref().zip(entry.def.check.as_ref()) else {
            return;
        };
        let kind = check.kind.clone();
        let timeout = settings.timeout;
        let started = Instant::now();
        let run = async move { probe::run(&kind, timeout).await };
        let key = uri.clone();
        let handle = ctx.spawn(
            fut::wrap_future(run).map(move |result, keeper: &mut Self, ctx| {
                keeper.checked(key, generation, result, started, ctx);
            }),
        );
        if let Some(check) = self.current(&uri, generation) {
            check.handle = Some(handle);
        }
    }

    fn checked(
        &mut self,
        uri: String,
        generation: u64,
        result: Result<(), probe::ProbeError>,
        started: Instant,
        ctx: &mut Context<Self>,
    ) {
        let Some(entry) = self
            .entries
            .get(&uri)
            .filter(|e| e.generation == generation)
        else {
            return;
        };
        let interval = entry
            .def
            .check
            .as_ref()
            .map_or(Duration::from_secs(10), |c| c.interval);
        let Some(check) = self.current(&uri, generation) else {
            return;
        };
        check.handle = None;
        if let Err(e) = &result {
            debug!(%uri, error = %e, "service check failed");
        }
        match check.state.record(result.is_ok()) {
            Some(Status::Passing) => {
                info!(%uri, check = "passing", "service check passing; service registered");
                self.set_gauge(&uri, Status::Passing);
                self.register(&uri, ctx);
            }
            Some(Status::Failing) => {
                let error = result.err().map(|e| e.to_string()).unwrap_or_default();
                warn!(%uri, check = "failing", %error, "service check failing; service withdrawn");
                self.set_gauge(&uri, Status::Failing);
                self.withdraw(&uri);
            }
            None => {}
        }
        let delay = interval.saturating_sub(started.elapsed());
        self.schedule(uri, generation, delay, ctx);
    }
}

impl Actor for DefinitionKeeper {
    type Context = Context<Self>;
}

impl Handler<Apply> for DefinitionKeeper {
    type Result = ();

    fn handle(&mut self, msg: Apply, ctx: &mut Context<Self>) {
        let old: Vec<ServiceDefinition> = self.entries.values().map(|e| e.def.clone()).collect();
        let d = diff(&old, &msg.definitions);
        for uri in &d.removed {
            self.remove(uri, ctx);
        }
        for def in d.changed {
            let same_check = self
                .entries
                .get(&def.uri)
                .is_some_and(|e| e.def.check == def.check);
            if same_check {
                // Attributes only: registered again under the same
                // connection id, which updates them in place.
                let uri = def.uri.clone();
                let registered = match self.entries.get_mut(&uri) {
                    Some(entry) => {
                        entry.def = def;
                        entry.conn.is_some()
                    }
                    None => false,
                };
                info!(%uri, "service definition changed");
                if registered {
                    self.register(&uri, ctx);
                }
            } else {
                self.remove(&def.uri.clone(), ctx);
                self.add(def, ctx);
            }
        }
        for def in d.added {
            self.add(def, ctx);
        }
    }
}
