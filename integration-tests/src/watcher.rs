//! A subscription that records every event it gets, for tests that check
//! what a subscriber was told while they kill nodes and cut links.
//!
//! A [`Watcher`] subscribes on a node from its own thread (with its own
//! Tokio runtime), so events are read as they come whatever the test is
//! doing, and appends them to a log shared with the test. The test takes
//! positions in that log ([`Watcher::mark`]) and waits, under a deadline,
//! until the events after a position satisfy a predicate
//! ([`Watcher::wait`]); a wait that runs out says what was seen
//! ([`describe`]). [`added`] and [`deleted`] pick URIs out of a stretch of
//! events. Dropping the watcher ends its thread and its connection.

use std::{
    collections::BTreeMap,
    sync::{Arc, Condvar, Mutex, MutexGuard, mpsc},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use catalogue::client::{Client, ConnectOptions, SubscriptionEvent};
use tokio::sync::oneshot;

use crate::DEADLINE;

/// A recording subscription; see the module documentation.
pub struct Watcher {
    /// Who it watches, for messages.
    node: String,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The log the thread writes and the test reads.
#[derive(Default)]
struct Shared {
    recorded: Mutex<Recorded>,
    /// Signalled on every event and at the end.
    changed: Condvar,
}

#[derive(Default)]
struct Recorded {
    events: Vec<SubscriptionEvent>,
    /// Why the subscription ended, if it has.
    ended: Option<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Recorded> {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, event: SubscriptionEvent) {
        self.lock().events.push(event);
        self.changed.notify_all();
    }

    fn end(&self, why: String) {
        self.lock().ended = Some(why);
        self.changed.notify_all();
    }
}

impl Watcher {
    /// Subscribes to `regex` on `node` (a name for messages) at `options`,
    /// and returns once the initial snapshot has ended: the first events
    /// are the snapshot's adds and its end.
    pub fn start(node: &str, options: &ConnectOptions, regex: &str) -> Result<Watcher> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("watcher runtime")?;
        let shared = Arc::new(Shared::default());
        let recorder = shared.clone();
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let (ready, ready_rx) = mpsc::channel::<Result<()>>();
        let (options, regex) = (options.clone(), regex.to_string());
        let thread = std::thread::Builder::new()
            .name(format!("watcher {node}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let subscribed = async {
                        let client = Client::connect(&options).await?;
                        let sub = client.subscribe(&regex).await?;
                        Ok::<_, anyhow::Error>((client, sub))
                    }
                    .await;
                    let (_client, mut sub) = match subscribed {
                        Ok(subscribed) => {
                            let _ = ready.send(Ok(()));
                            subscribed
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    let record = async {
                        while let Some(event) = sub.next().await {
                            recorder.push(event);
                        }
                        recorder.end("the subscription ended".to_string());
                    };
                    tokio::select! {
                        () = record => {}
                        _ = shutdown_rx => {}
                    }
                });
            })
            .context("watcher thread")?;
        let watcher = Watcher {
            node: node.to_string(),
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        };
        ready_rx
            .recv_timeout(DEADLINE)
            .map_err(|_| anyhow!("{node}: no subscription within {DEADLINE:?}"))?
            .with_context(|| format!("subscribing on {node}"))?;
        watcher.wait(0, DEADLINE, "the snapshot's end", |events| {
            events
                .iter()
                .any(|e| matches!(e, SubscriptionEvent::SnapshotEnd { .. }))
        })?;
        Ok(watcher)
    }

    /// A position in the log: the number of events recorded so far.
    pub fn mark(&self) -> usize {
        self.shared.lock().events.len()
    }

    /// The events recorded after position `mark`.
    pub fn events_since(&self, mark: usize) -> Vec<SubscriptionEvent> {
        self.shared
            .lock()
            .events
            .get(mark..)
            .unwrap_or_default()
            .to_vec()
    }

    /// Waits until the events after `mark` satisfy `pred`, at most
    /// `deadline`; returns those events. On timeout, or if the
    /// subscription ends first, the error names `what` was awaited and
    /// describes the events seen.
    pub fn wait(
        &self,
        mark: usize,
        deadline: Duration,
        what: &str,
        pred: impl Fn(&[SubscriptionEvent]) -> bool,
    ) -> Result<Vec<SubscriptionEvent>> {
        let end = Instant::now() + deadline;
        let mut recorded = self.shared.lock();
        loop {
            let since = recorded.events.get(mark..).unwrap_or_default();
            if pred(since) {
                return Ok(since.to_vec());
            }
            if let Some(why) = &recorded.ended {
                bail!(
                    "{}'s subscriber: {why} before {what}; events since: {}",
                    self.node,
                    describe(since)
                );
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "{}'s subscriber: {what} not seen within {deadline:?}; events since: {}",
                    self.node,
                    describe(since)
                );
            }
            recorded = self
                .shared
                .changed
                .wait_timeout(recorded, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// URIs of the adds among `events` (snapshot adds included), in order,
/// repeats kept.
pub fn added(events: &[SubscriptionEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            SubscriptionEvent::Added { service, .. } => Some(service.uri.clone()),
            _ => None,
        })
        .collect()
}

/// URIs of the deletes among `events`, in order, repeats kept.
pub fn deleted(events: &[SubscriptionEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            SubscriptionEvent::Deleted { service } => Some(service.uri.clone()),
            _ => None,
        })
        .collect()
}

/// `events` in a line: how many adds and deletes per origin, a few URIs of
/// each, and any snapshot end or overflow.
pub fn describe(events: &[SubscriptionEvent]) -> String {
    // Kind -> (count, a few URIs).
    let mut kinds: BTreeMap<String, (usize, Vec<&str>)> = BTreeMap::new();
    for event in events {
        let (kind, uri) = match event {
            SubscriptionEvent::Added { service, snapshot } => {
                let add = if *snapshot { "snapshot add" } else { "add" };
                (format!("{add} from {}", service.origin), Some(&service.uri))
            }
            SubscriptionEvent::Deleted { service } => (
                format!("delete from {}", service.origin),
                Some(&service.uri),
            ),
            SubscriptionEvent::SnapshotEnd { count } => (format!("snapshot end ({count})"), None),
            SubscriptionEvent::Overflow {
                dropped,
                resnapshot,
            } => (
                format!("overflow ({dropped} dropped, resnapshot {resnapshot})"),
                None,
            ),
        };
        let (count, sample) = kinds.entry(kind).or_default();
        *count += 1;
        if let Some(uri) = uri.filter(|_| sample.len() < 3) {
            sample.push(uri);
        }
    }
    if kinds.is_empty() {
        return "none".to_string();
    }
    let parts: Vec<String> = kinds
        .iter()
        .map(|(kind, (count, sample))| {
            if sample.is_empty() {
                format!("{count} {kind}")
            } else {
                format!("{count} {kind} (e.g. {sample:?})")
            }
        })
        .collect();
    format!("{} events: {}", events.len(), parts.join("; "))
}
