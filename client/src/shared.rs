//! One stream for many subscriptions: a program that holds hundreds or
//! thousands of subscriptions (a proxy, a gateway, a load balancer's
//! control plane) reads all their events from one channel, each tagged
//! with its subscription's id, instead of waiting on a channel per
//! subscription. This is how etcd's clients read the watchers of one watch
//! stream; it costs the client one wake-up per batch of events rather than
//! one per event per subscription.
//!
//! ```no_run
//! # async fn demo(client: &catalogue_client::Client) -> Result<(), catalogue_client::ClientError> {
//! let (sink, mut events) = catalogue_client::shared_events(4096);
//! let db = client.subscribe_shared("^tcp://db", None, &sink).await?;
//! let web = client.subscribe_shared("^http://web", None, &sink).await?;
//! while let Some((id, marked)) = events.next().await {
//!     let which = if id == db { "db" } else if id == web { "web" } else { "?" };
//!     println!("{which}: {:?}", marked.event);
//! }
//! # Ok(()) }
//! ```
//!
//! Subscription ids are unique within the process (several clients may
//! share one sink). The events of each subscription keep their order; the
//! events of different subscriptions interleave as the node sent them. A
//! sink whose stream is not read eventually stops its connections from
//! reading their sockets, as a [`crate::Subscription`] does, and the node's
//! overflow rule takes over.

use tokio::sync::mpsc;

use crate::Marked;

/// Where subscriptions opened with [`crate::Client::subscribe_shared`]
/// send their events (cheap to clone).
#[derive(Debug, Clone)]
pub struct EventSink {
    pub(crate) tx: mpsc::Sender<(u64, Marked)>,
}

/// The events of every subscription sent to its [`EventSink`], tagged
/// with the subscription's id.
#[derive(Debug)]
pub struct SharedEvents {
    rx: mpsc::Receiver<(u64, Marked)>,
}

impl SharedEvents {
    /// The next event and the id of its subscription; `None` once every
    /// sink is dropped and every connection that used one has ended.
    pub async fn next(&mut self) -> Option<(u64, Marked)> {
        self.rx.recv().await
    }

    /// Moves up to `limit` waiting events into `into` (waiting for the
    /// first); returns how many, 0 only when the stream has ended. Reading
    /// in batches costs less per event than [`SharedEvents::next`].
    pub async fn next_many(&mut self, into: &mut Vec<(u64, Marked)>, limit: usize) -> usize {
        self.rx.recv_many(into, limit).await
    }
}

/// A sink and its stream, holding up to `capacity` events before the
/// connections writing to it wait.
pub fn shared_events(capacity: usize) -> (EventSink, SharedEvents) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (EventSink { tx }, SharedEvents { rx })
}

/// Where the connection task sends one subscription's events.
#[derive(Debug)]
pub(crate) enum Sink {
    /// A [`crate::Subscription`]'s own channel.
    Own(mpsc::Sender<Marked>),
    /// A shared stream; events go with the subscription's id.
    Shared(mpsc::Sender<(u64, Marked)>),
}

impl Sink {
    /// Sends subscription `id`'s `event`; false once nobody reads.
    pub(crate) async fn send(&self, id: u64, event: Marked) -> bool {
        match self {
            Sink::Own(tx) => tx.send(event).await.is_ok(),
            Sink::Shared(tx) => tx.send((id, event)).await.is_ok(),
        }
    }
}
