//! Turning each client request into an answer. Every request is answered by
//! exactly one `Success`, `Error` or reply naming its serial; the checks
//! that need no other actor (transport and uid, URI syntax, limits, regex
//! compilation, the node's subscription ledger) happen here, as the request
//! is read, in request order.
//! What needs the supervisor is sent to it at once and answered when it is
//! done ([`ClientConnection::answer_later`]); a `List` is answered from
//! the supervisor's read view when it reaches the front of the pipeline.

use std::collections::BTreeMap;

use actix::{fut, prelude::*};
use catalogue_proto::{
    Body, Frame,
    catalogue::{
        Error, ErrorCode, LinkEntry, LinksReply, PeerStatus, PeersReply, Subscribe, Success,
    },
};
use tracing::{debug, warn};

use super::{
    Answer, ClientConnection, Effect, InFlight, Step, auth::Transport, listing::ListRequest,
};
use crate::services::SharedStr;
use crate::{
    matcher::{self, RegexError},
    subscription::{
        Cancel, Subscription, SubscriptionParts, direct::DirectPath, history::Position,
        ledger::Owner, patterns::AdmitError,
    },
    supervisor::{
        AddSubscription, ListLinks, ListPeers, RegisterError, RegisterService, RemoveSubscription,
        UnregisterService,
    },
    uri,
};

fn error(serial: u64, code: ErrorCode, message: impl Into<String>) -> Answer {
    Answer::plain(Body::Error(Error::new(code, message).replying_to(serial)))
}

fn success(serial: u64) -> Body {
    Body::Success(Success {
        in_reply_to: serial,
    })
}

fn unavailable(serial: u64, e: MailboxError) -> Answer {
    error(
        serial,
        ErrorCode::Internal,
        format!("supervisor unavailable: {e}"),
    )
}

impl ClientConnection {
    /// Handles one frame from the client; `permit` goes back once it is
    /// answered.
    pub(super) fn request(&mut self, frame: Frame, permit: InFlight, ctx: &mut Context<Self>) {
        let serial = frame.serial;
        let Some(body) = frame.body else {
            let answer = error(serial, ErrorCode::BadRequest, "frame without a body");
            return self.answer_now(answer, permit, ctx);
        };
        match body {
            Body::RegisterService(r) => self.register(serial, r.uri, r.attrs, permit, ctx),
            Body::UnregisterService(u) => self.unregister(serial, u.uri, permit, ctx),
            Body::Subscribe(s) => self.subscribe(serial, s, permit, ctx),
            Body::Unsubscribe(u) => self.unsubscribe(serial, u.subscription_id, permit, ctx),
            Body::List(l) => self.list(serial, &l.regex, l.stream, permit, ctx),
            Body::ListLinks(_) => self.list_links(serial, permit, ctx),
            Body::ListPeers(_) => self.list_peers(serial, permit, ctx),
            Body::Bye(_) => {
                drop(permit);
                self.close(None, ctx);
            }
            other => {
                let answer = error(
                    serial,
                    ErrorCode::UnexpectedMessage,
                    format!("{} is not a client request", other.kind()),
                );
                self.answer_now(answer, permit, ctx);
            }
        }
    }

    fn register(
        &mut self,
        serial: u64,
        uri: String,
        attrs: BTreeMap<String, String>,
        permit: InFlight,
        ctx: &mut Context<Self>,
    ) {
        let allowed = match self.shared.policy.read() {
            Ok(policy) => policy.check(&self.transport),
            Err(poisoned) => poisoned.into_inner().check(&self.transport),
        };
        if let Err(refusal) = allowed {
            self.shared.stats.register_refusal(refusal.reason());
            let (conn, transport) = (self.id, &self.transport);
            self.shared.log_limited(refusal.reason(), |unlogged| {
                warn!(
                    conn,
                    %transport,
                    reason = refusal.reason(),
                    uri = %uri,
                    unlogged,
                    "registration refused"
                );
            });
            let answer = error(
                serial,
                ErrorCode::AuthFailed,
                format!("auth failed: {refusal}"),
            );
            return self.answer_now(answer, permit, ctx);
        }
        if let Err(e) = uri::validate_uri(&uri, self.shared.limits.max_uri_bytes) {
            let answer = error(serial, ErrorCode::InvalidUri, e.to_string());
            return self.answer_now(answer, permit, ctx);
        }
        if let Err(e) = uri::validate_attrs(&attrs) {
            let answer = error(serial, ErrorCode::BadRequest, e.to_string());
            return self.answer_now(answer, permit, ctx);
        }
        let limit = self.shared.limits.registrations_per_connection;
        // Registrations on their way count, so a pipelined flood stops at
        // exactly the limit.
        let uri = SharedStr::from(uri);
        let new = !self.registered.contains(&uri);
        if new && self.registered.len() + self.registering >= limit {
            let answer = error(
                serial,
                ErrorCode::LimitExceeded,
                format!(
                    "this connection already registered {limit} services (limits.registrations_per_connection)"
                ),
            );
            return self.answer_now(answer, permit, ctx);
        }
        if new {
            self.registering += 1;
        }
        let request = self.shared.supervisor.send(RegisterService {
            conn: self.id,
            uri: uri.clone(),
            attrs,
        });
        let fut = fut::wrap_future(request).map(move |result, _: &mut Self, _| {
            let (body, ok) = match result {
                Ok(Ok(())) => (success(serial), true),
                Ok(Err(e @ RegisterError::Conflict { .. })) => (
                    error(serial, ErrorCode::Conflict, e.to_string()).body,
                    false,
                ),
                Ok(Err(e)) => (
                    error(serial, ErrorCode::NotFound, e.to_string()).body,
                    false,
                ),
                Err(e) => (unavailable(serial, e).body, false),
            };
            Answer {
                body,
                effect: Effect::Register {
                    uri,
                    ok,
                    counted: new,
                },
            }
        });
        self.answer_later(permit, fut, ctx);
    }

    /// Sent to the supervisor, which knows what this connection holds
    /// (including registrations still on their way, ahead in its mailbox).
    fn unregister(&mut self, serial: u64, uri: String, permit: InFlight, ctx: &mut Context<Self>) {
        let request = self.shared.supervisor.send(UnregisterService {
            conn: self.id,
            uri: uri.clone(),
        });
        let fut = fut::wrap_future(request).map(move |result, _: &mut Self, _| {
            let body = match result {
                Ok(Ok(())) => success(serial),
                Ok(Err(e)) => error(serial, ErrorCode::NotFound, e.to_string()).body,
                Err(e) => unavailable(serial, e).body,
            };
            Answer {
                body,
                effect: Effect::Unregister { uri },
            }
        });
        self.answer_later(permit, fut, ctx);
    }

    fn compile(&self, pattern: &str) -> Result<regex::Regex, RegexError> {
        matcher::compile(pattern, self.shared.limits.max_regex_bytes)
    }

    fn subscribe(
        &mut self,
        serial: u64,
        request: Subscribe,
        permit: InFlight,
        ctx: &mut Context<Self>,
    ) {
        let id = request.subscription_id;
        let pattern = request.regex.as_str();
        let resume: Option<Position> = request.resume.map(Into::into);
        if self.subscriptions.contains_key(&id) {
            let answer = error(
                serial,
                ErrorCode::Conflict,
                format!("subscription id {id} is already in use on this connection"),
            );
            return self.answer_now(answer, permit, ctx);
        }
        let stats = &self.shared.stats;
        let limit = self.shared.limits.subscriptions_per_connection;
        if self.subscriptions.len() >= limit {
            stats.subscription_refusal("per_connection");
            let answer = error(
                serial,
                ErrorCode::LimitExceeded,
                format!(
                    "this connection already holds {limit} subscriptions (limits.subscriptions_per_connection)"
                ),
            );
            return self.answer_now(answer, permit, ctx);
        }
        let admitted = self.shared.patterns.admit(
            pattern,
            self.shared.limits.max_regex_bytes,
            &self.shared.subscriptions,
            self.owner(),
        );
        let (compiled, place) = match admitted {
            Ok(admitted) => admitted,
            Err(AdmitError::Regex(e)) => {
                stats.subscription_refusal("invalid_regex");
                let answer = error(serial, ErrorCode::InvalidRegex, e.to_string());
                return self.answer_now(answer, permit, ctx);
            }
            Err(AdmitError::Refused(refusal)) => {
                stats.subscription_refusal(refusal.reason());
                debug!(conn = self.id, transport = %self.transport, reason = refusal.reason(), "subscription refused");
                let answer = error(serial, ErrorCode::LimitExceeded, refusal.to_string());
                return self.answer_now(answer, permit, ctx);
            }
        };
        let regex = compiled.pattern().clone();
        let shared = self.shared.clone();
        let key = shared.new_key();
        // Held: it sends nothing before its Success is written.
        let direct = DirectPath::new(id, self.outbound.clone(), request.grouped);
        let addr = Subscription::new(SubscriptionParts {
            key,
            id,
            limit: shared.limits.subscription_queue,
            policy: shared.limits.overflow_policy,
            outbound: self.outbound.clone(),
            supervisor: shared.supervisor.clone().recipient(),
            ended: ctx.address().recipient(),
            stats: shared.stats.clone(),
            permit: place,
            pattern: compiled,
            direct: direct.clone(),
        })
        .start();
        self.subscriptions
            .insert(id, (key, addr.clone(), direct.clone()));
        let ended = direct.clone();
        let request = shared.supervisor.send(AddSubscription {
            conn: self.id,
            key,
            regex,
            addr: addr.clone(),
            direct,
            resume,
        });
        let fut = fut::wrap_future(request).map(move |result, act: &mut Self, _| match result {
            Ok(()) => Answer {
                body: success(serial),
                effect: Effect::Release(addr),
            },
            Err(e) => {
                if act.subscriptions.get(&id).is_some_and(|(k, ..)| *k == key) {
                    act.subscriptions.remove(&id);
                }
                ended.end();
                addr.do_send(Cancel);
                unavailable(serial, e)
            }
        });
        self.answer_later(permit, fut, ctx);
    }

    /// Whom this connection's subscriptions count against in the ledger.
    fn owner(&self) -> Owner {
        match self.transport {
            Transport::Unix { uid, .. } => Owner::Uid(uid),
            Transport::Tcp { peer } => Owner::Address(peer.ip().to_canonical()),
        }
    }

    fn unsubscribe(&mut self, serial: u64, id: u64, permit: InFlight, ctx: &mut Context<Self>) {
        let Some((key, addr, direct)) = self.subscriptions.remove(&id) else {
            let answer = error(
                serial,
                ErrorCode::NotFound,
                format!("no subscription {id} on this connection"),
            );
            return self.answer_now(answer, permit, ctx);
        };
        // Both go out now, in request order; the answer waits for both:
        // no event of the subscription follows it, and the supervisor has
        // let go of it.
        direct.end();
        let cancel = addr.send(Cancel);
        let remove = self
            .shared
            .supervisor
            .send(RemoveSubscription { conn: self.id, key });
        let fut = fut::wrap_future(async move {
            let _ = cancel.await;
            remove.await
        })
        .map(move |result, _: &mut Self, _| match result {
            Ok(()) => Answer::plain(success(serial)),
            Err(e) => unavailable(serial, e),
        });
        self.answer_later(permit, fut, ctx);
    }

    fn list(
        &mut self,
        serial: u64,
        pattern: &str,
        stream: bool,
        mut permit: InFlight,
        ctx: &mut Context<Self>,
    ) {
        let regex = if pattern.is_empty() {
            None
        } else {
            match self.compile(pattern) {
                Ok(regex) => Some(regex),
                Err(e) => {
                    let answer = error(serial, ErrorCode::InvalidRegex, e.to_string());
                    return self.answer_now(answer, permit, ctx);
                }
            }
        };
        // Answered from the read view: nothing for the supervisor to do.
        permit.answered();
        self.pipeline.push_done(Box::new(Step::List(
            ListRequest {
                serial,
                regex,
                stream,
            },
            permit,
        )));
        self.drain(ctx);
    }

    fn list_links(&mut self, serial: u64, permit: InFlight, ctx: &mut Context<Self>) {
        let request = self.shared.supervisor.send(ListLinks);
        let fut = fut::wrap_future(request).map(move |result, _: &mut Self, _| match result {
            Ok(view) => Answer::plain(Body::LinksReply(LinksReply {
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
            Err(e) => unavailable(serial, e),
        });
        self.answer_later(permit, fut, ctx);
    }

    fn list_peers(&mut self, serial: u64, permit: InFlight, ctx: &mut Context<Self>) {
        let request = self.shared.supervisor.send(ListPeers);
        let fut = fut::wrap_future(request).map(move |result, _: &mut Self, _| match result {
            Ok(peers) => Answer::plain(Body::PeersReply(PeersReply {
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
            Err(e) => unavailable(serial, e),
        });
        self.answer_later(permit, fut, ctx);
    }
}
