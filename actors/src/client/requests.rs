//! Turning each client request into a reply. Every request is answered by
//! exactly one `Success`, `Error` or `ListReply` naming its serial; the
//! checks that need no other actor (transport and uid, URI syntax, limits,
//! regex compilation, the node's subscription ledger) happen here, before
//! the supervisor is asked.

use std::collections::BTreeMap;

use actix::{fut, prelude::*};
use catalogue_proto::{
    Body, Frame,
    catalogue::{
        self, Error, ErrorCode, LinkEntry, LinksReply, ListReply, PeerStatus, PeersReply, Success,
    },
};
use prost::Message as _;
use tracing::{debug, info, warn};

use super::{ClientConnection, auth::Transport};
use crate::{
    matcher::{self, RegexError},
    services::Service,
    subscription::{Subscription, SubscriptionParts, ledger::Owner},
    supervisor::{
        AddSubscription, ListLinks, ListPeers, ListServices, RegisterError, RegisterService,
        UnregisterService,
    },
    uri,
};

/// The future a request turns into; the actor waits for it before reading
/// the next request.
pub(super) type Reply = Pin<Box<dyn ActorFuture<ClientConnection, Output = ()>>>;

use std::pin::Pin;

impl ClientConnection {
    /// Handles one frame from the client.
    pub(super) fn request(&mut self, frame: Frame, ctx: &mut Context<Self>) -> Reply {
        let serial = frame.serial;
        let Some(body) = frame.body else {
            return self.error(serial, ErrorCode::BadRequest, "frame without a body");
        };
        match body {
            Body::RegisterService(r) => self.register(serial, r.uri, r.attrs),
            Body::UnregisterService(u) => self.unregister(serial, u.uri),
            Body::Subscribe(s) => self.subscribe(serial, s.subscription_id, &s.regex, ctx),
            Body::Unsubscribe(u) => self.unsubscribe(serial, u.subscription_id),
            Body::List(l) => self.list(serial, &l.regex),
            Body::ListLinks(_) => self.list_links(serial),
            Body::ListPeers(_) => self.list_peers(serial),
            Body::Bye(_) => {
                ctx.stop();
                Box::pin(fut::ready(()))
            }
            other => self.error(
                serial,
                ErrorCode::UnexpectedMessage,
                format!("{} is not a client request", other.kind()),
            ),
        }
    }

    /// Queues `body`, waiting for room.
    fn send(&self, body: Body) -> Reply {
        let tx = self.outbound.clone();
        Box::pin(fut::wrap_future(async move {
            let _ = tx.send(body).await;
        }))
    }

    fn error(&self, serial: u64, code: ErrorCode, message: impl Into<String>) -> Reply {
        self.send(Body::Error(Error::new(code, message).replying_to(serial)))
    }

    fn success(&self, serial: u64) -> Reply {
        self.send(Body::Success(Success {
            in_reply_to: serial,
        }))
    }

    fn register(&mut self, serial: u64, uri: String, attrs: BTreeMap<String, String>) -> Reply {
        let allowed = match self.shared.policy.read() {
            Ok(policy) => policy.check(&self.transport),
            Err(poisoned) => poisoned.into_inner().check(&self.transport),
        };
        if let Err(refusal) = allowed {
            self.shared.stats.register_refusal(refusal.reason());
            warn!(
                conn = self.id,
                transport = %self.transport,
                reason = refusal.reason(),
                uri = %uri,
                "registration refused"
            );
            return self.error(
                serial,
                ErrorCode::AuthFailed,
                format!("auth failed: {refusal}"),
            );
        }
        if let Err(e) = uri::validate_uri(&uri, self.shared.limits.max_uri_bytes) {
            return self.error(serial, ErrorCode::InvalidUri, e.to_string());
        }
        if let Err(e) = uri::validate_attrs(&attrs) {
            return self.error(serial, ErrorCode::BadRequest, e.to_string());
        }
        let limit = self.shared.limits.registrations_per_connection;
        if !self.registered.contains(&uri) && self.registered.len() >= limit {
            return self.error(
                serial,
                ErrorCode::LimitExceeded,
                format!("this connection already registered {limit} services (limits.registrations_per_connection)"),
            );
        }
        let request = self.shared.supervisor.send(RegisterService {
            conn: self.id,
            uri: uri.clone(),
            attrs,
        });
        Box::pin(
            fut::wrap_future(request).then(move |result, act: &mut Self, _| match result {
                Ok(Ok(())) => {
                    act.registered.insert(uri);
                    act.success(serial)
                }
                Ok(Err(e @ RegisterError::Conflict { .. })) => {
                    act.error(serial, ErrorCode::Conflict, e.to_string())
                }
                Ok(Err(e)) => act.error(serial, ErrorCode::NotFound, e.to_string()),
                Err(e) => act.error(
                    serial,
                    ErrorCode::Internal,
                    format!("supervisor unavailable: {e}"),
                ),
            }),
        )
    }

    fn unregister(&mut self, serial: u64, uri: String) -> Reply {
        if !self.registered.contains(&uri) {
            return self.error(
                serial,
                ErrorCode::NotFound,
                format!("{uri} is not registered by this connection"),
            );
        }
        let request = self.shared.supervisor.send(UnregisterService {
            conn: self.id,
            uri: uri.clone(),
        });
        Box::pin(
            fut::wrap_future(request).then(move |result, act: &mut Self, _| {
                act.registered.remove(&uri);
                match result {
                    Ok(Ok(())) => act.success(serial),
                    Ok(Err(e)) => act.error(serial, ErrorCode::NotFound, e.to_string()),
                    Err(e) => act.error(
                        serial,
                        ErrorCode::Internal,
                        format!("supervisor unavailable: {e}"),
                    ),
                }
            }),
        )
    }

    fn compile(&self, pattern: &str) -> Result<regex::Regex, RegexError> {
        matcher::compile(pattern, self.shared.limits.max_regex_bytes)
    }

    fn subscribe(&mut self, serial: u64, id: u64, pattern: &str, ctx: &mut Context<Self>) -> Reply {
        if self.subscriptions.contains_key(&id) {
            return self.error(
                serial,
                ErrorCode::Conflict,
                format!("subscription id {id} is already in use on this connection"),
            );
        }
        let stats = &self.shared.stats;
        let limit = self.shared.limits.subscriptions_per_connection;
        if self.subscriptions.len() >= limit {
            stats.subscription_refusal("per_connection");
            return self.error(
                serial,
                ErrorCode::LimitExceeded,
                format!("this connection already holds {limit} subscriptions (limits.subscriptions_per_connection)"),
            );
        }
        let measured = match matcher::compile_measured(pattern, self.shared.limits.max_regex_bytes)
        {
            Ok(measured) => measured,
            Err(e) => {
                stats.subscription_refusal("invalid_regex");
                return self.error(serial, ErrorCode::InvalidRegex, e.to_string());
            }
        };
        let permit = match self
            .shared
            .subscriptions
            .admit(self.owner(), measured.memory)
        {
            Ok(permit) => permit,
            Err(refusal) => {
                stats.subscription_refusal(refusal.reason());
                debug!(conn = self.id, transport = %self.transport, reason = refusal.reason(), "subscription refused");
                return self.error(serial, ErrorCode::LimitExceeded, refusal.to_string());
            }
        };
        let regex = measured.regex;
        let shared = self.shared.clone();
        let key = shared.new_key();
        let parts = SubscriptionParts {
            key,
            id,
            limit: shared.limits.subscription_queue,
            policy: shared.limits.overflow_policy,
            outbound: self.outbound.clone(),
            supervisor: shared.supervisor.clone().recipient(),
            remove: shared.supervisor.clone().recipient(),
            ended: ctx.address().recipient(),
            stats: shared.stats.clone(),
            permit,
        };
        // Success goes out before the subscription can send its snapshot.
        Box::pin(self.success(serial).map(move |(), act: &mut Self, _| {
            let addr = Subscription::new(parts).start();
            act.subscriptions.insert(id, addr.clone());
            act.shared
                .supervisor
                .do_send(AddSubscription { key, regex, addr });
        }))
    }

    /// Whom this connection's subscriptions count against in the ledger.
    fn owner(&self) -> Owner {
        match self.transport {
            Transport::Unix { uid, .. } => Owner::Uid(uid),
            Transport::Tcp { peer } => Owner::Address(peer.ip().to_canonical()),
        }
    }

    fn unsubscribe(&mut self, serial: u64, id: u64) -> Reply {
        let Some(addr) = self.subscriptions.remove(&id) else {
            return self.error(
                serial,
                ErrorCode::NotFound,
                format!("no subscription {id} on this connection"),
            );
        };
        Box::pin(
            fut::wrap_future(addr.send(crate::subscription::Cancel))
                .then(move |_, act: &mut Self, _| act.success(serial)),
        )
    }

    fn list(&mut self, serial: u64, pattern: &str) -> Reply {
        let regex = if pattern.is_empty() {
            None
        } else {
            match self.compile(pattern) {
                Ok(regex) => Some(regex),
                Err(e) => return self.error(serial, ErrorCode::InvalidRegex, e.to_string()),
            }
        };
        let request = self.shared.supervisor.send(ListServices { regex });
        let max_frame = self.shared.limits.max_frame_bytes;
        Box::pin(fut::wrap_future(request).then(move |result, act: &mut Self, _| {
            let services = match result {
                Ok(services) => services,
                Err(e) => return act.error(serial, ErrorCode::Internal, format!("supervisor unavailable: {e}")),
            };
            let count = services.len();
            let reply = ListReply {
                in_reply_to: serial,
                services: services.into_iter().map(to_wire).collect(),
            };
            // The envelope adds a few bytes to the body.
            if reply.encoded_len() + 16 > max_frame {
                info!(conn = act.id, count, "list reply too large for one frame");
                return act.error(
                    serial,
                    ErrorCode::LimitExceeded,
                    format!(
                        "{count} services match; the reply would exceed limits.max_frame_bytes ({max_frame}); narrow the regex or subscribe"
                    ),
                );
            }
            act.send(Body::ListReply(reply))
        }))
    }
}

impl ClientConnection {
    fn list_links(&mut self, serial: u64) -> Reply {
        let request = self.shared.supervisor.send(ListLinks);
        Box::pin(
            fut::wrap_future(request).then(move |result, act: &mut Self, _| match result {
                Ok(view) => act.send(Body::LinksReply(LinksReply {
                    in_reply_to: serial,
                    node: view.node,
                    links: view
                        .links
                        .into_iter()
                        .map(|l| LinkEntry {
                            a: l.key.a().to_string(),
                            b: l.key.b().to_string(),
                            origin: l.origin,
                            ts: Some(l.ts.into()),
                        })
                        .collect(),
                    reachable: view.reachable,
                })),
                Err(e) => act.error(
                    serial,
                    ErrorCode::Internal,
                    format!("supervisor unavailable: {e}"),
                ),
            }),
        )
    }

    fn list_peers(&mut self, serial: u64) -> Reply {
        let request = self.shared.supervisor.send(ListPeers);
        Box::pin(
            fut::wrap_future(request).then(move |result, act: &mut Self, _| match result {
                Ok(peers) => act.send(Body::PeersReply(PeersReply {
                    in_reply_to: serial,
                    peers: peers
                        .into_iter()
                        .map(|p| PeerStatus {
                            name: p.name,
                            address: p.address,
                            state: p.state.as_str().to_string(),
                            direction: p
                                .direction
                                .map(|d| d.as_str().to_string())
                                .unwrap_or_default(),
                            since_ms: p.since_ms,
                            last_error: p.last_error,
                        })
                        .collect(),
                })),
                Err(e) => act.error(
                    serial,
                    ErrorCode::Internal,
                    format!("supervisor unavailable: {e}"),
                ),
            }),
        )
    }
}

fn to_wire(s: Service) -> catalogue::Service {
    catalogue::Service {
        uri: s.uri,
        attrs: s.attrs,
        origin: s.origin,
        ts: Some(s.ts.into()),
    }
}
