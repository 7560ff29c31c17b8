//! A change as routed to subscriptions ([`Event`]), and one routed change
//! shared by every subscription it matches ([`SharedEvent`]).
//!
//! The supervisor wraps each change it routes in a [`SharedEvent`] once and
//! hands every matching subscription a reference to it. The change's
//! `ServiceEvent` fields are encoded at most once, by the first connection
//! writer that sends it ([`SharedEvent::fields`]); each frame then only
//! adds its serial and subscription id around those bytes
//! ([`catalogue_proto::encode_event_frame`]). So the cost of a delivery
//! does not include building and encoding the service again: with a
//! thousand subscriptions matching, the service is encoded once, not a
//! thousand times.

use std::sync::{Arc, OnceLock};

use catalogue_proto::{
    Body, EventFields,
    catalogue::{EventKind, ServiceEvent},
};

use crate::services::Service;

/// A change as routed to subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Added (or updated) versus deleted.
    pub kind: EventKind,
    /// The service as it is (added) or was (deleted).
    pub service: Arc<Service>,
    /// The node's revision of this change (`subscription::history`).
    pub revision: u64,
}

/// A routed change and, once a writer has needed them, its encoded fields.
#[derive(Debug)]
pub struct SharedEvent {
    event: Event,
    fields: OnceLock<EventFields>,
}

impl SharedEvent {
    /// Wraps a change for sharing.
    pub fn new(event: Event) -> Arc<SharedEvent> {
        Arc::new(SharedEvent {
            event,
            fields: OnceLock::new(),
        })
    }

    /// The change.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The change as a live (not snapshot) `ServiceEvent` without its
    /// subscription id, encoded on first use.
    pub fn fields(&self) -> &EventFields {
        self.fields
            .get_or_init(|| EventFields::encode(&self.message(0)))
    }

    /// The change as the body sent to subscription `subscription_id` (for
    /// readers that need the message, not its bytes: the HTTP watch).
    pub fn body(&self, subscription_id: u64) -> Body {
        Body::ServiceEvent(self.message(subscription_id))
    }

    fn message(&self, subscription_id: u64) -> ServiceEvent {
        let e = &self.event;
        service_event(subscription_id, e.kind, &e.service, false, e.revision)
    }
}

impl From<Event> for Arc<SharedEvent> {
    fn from(event: Event) -> Self {
        SharedEvent::new(event)
    }
}

/// The `ServiceEvent` telling subscription `id` of `s`.
pub(crate) fn service_event(
    id: u64,
    kind: EventKind,
    s: &Service,
    snapshot: bool,
    revision: u64,
) -> ServiceEvent {
    ServiceEvent {
        subscription_id: id,
        kind: kind as i32,
        uri: s.uri.to_string(),
        attrs: if kind == EventKind::Deleted {
            Default::default()
        } else {
            s.attrs.clone()
        },
        origin: s.origin.to_string(),
        ts: Some(s.ts.into()),
        snapshot,
        revision,
        also: Vec::new(),
    }
}
