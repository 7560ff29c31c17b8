//! A client-library [`Watch`] run on its own thread, recording everything
//! it tells the program, for tests of what a program sees across lost
//! connections and node restarts.
//!
//! Unlike [`crate::Watcher`] (one subscription, ends with its connection),
//! a [`WatchLog`] reconnects and resumes by itself. It keeps the set as a
//! program would, from the events alone, and notes every event that
//! contradicts it (an add of a service already held, a delete or update of
//! one not held): a correct watch never produces one. Tests wait on the
//! log with deadlines ([`WatchLog::wait`]), never on sleeps.

use std::{
    collections::BTreeSet,
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use catalogue::client::{ConnectOptions, SyncKind, Watch, WatchEvent};
use tokio::sync::oneshot;

/// A recording watch; see the module documentation.
pub struct WatchLog {
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    recorded: Mutex<Recorded>,
    changed: Condvar,
}

/// What the watch said, and the set it implies.
#[derive(Default, Debug, Clone)]
pub struct Recorded {
    /// Every event, in order.
    pub events: Vec<WatchEvent>,
    /// The set, from the events alone.
    pub set: BTreeSet<String>,
    /// Events that contradicted the set (must stay empty).
    pub contradictions: Vec<String>,
    /// Why the watch ended, if it has.
    pub ended: Option<String>,
}

impl Recorded {
    fn push(&mut self, event: WatchEvent) {
        let problem = match &event {
            WatchEvent::Added { service, .. } => (!self.set.insert(service.uri.clone()))
                .then(|| format!("added {} while held", service.uri)),
            WatchEvent::Updated { new, .. } => (!self.set.contains(&new.uri))
                .then(|| format!("updated {} while not held", new.uri)),
            WatchEvent::Deleted { service, .. } => (!self.set.remove(&service.uri))
                .then(|| format!("deleted {} while not held", service.uri)),
            _ => None,
        };
        self.contradictions.extend(problem);
        self.events.push(event);
    }

    /// The URIs deleted among the events after `mark`.
    pub fn deleted_since(&self, mark: usize) -> Vec<String> {
        self.since(mark)
            .iter()
            .filter_map(|e| match e {
                WatchEvent::Deleted { service, .. } => Some(service.uri.clone()),
                _ => None,
            })
            .collect()
    }

    /// The URIs added among the events after `mark`.
    pub fn added_since(&self, mark: usize) -> Vec<String> {
        self.since(mark)
            .iter()
            .filter_map(|e| match e {
                WatchEvent::Added { service, .. } => Some(service.uri.clone()),
                _ => None,
            })
            .collect()
    }

    /// How the watch synced after `mark`, in order.
    pub fn syncs_since(&self, mark: usize) -> Vec<SyncKind> {
        self.since(mark)
            .iter()
            .filter_map(|e| match e {
                WatchEvent::Synced { kind, .. } => Some(*kind),
                _ => None,
            })
            .collect()
    }

    /// Times the watch lost its connection after `mark`.
    pub fn disconnects_since(&self, mark: usize) -> usize {
        self.since(mark)
            .iter()
            .filter(|e| matches!(e, WatchEvent::Disconnected { .. }))
            .count()
    }

    fn since(&self, mark: usize) -> &[WatchEvent] {
        self.events.get(mark..).unwrap_or_default()
    }
}

impl WatchLog {
    /// Starts a watch of `regex` at `options` and returns once its first
    /// snapshot is complete.
    pub fn start(options: &ConnectOptions, regex: &str) -> Result<WatchLog> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("watch runtime")?;
        let shared = Arc::new(Shared::default());
        let recorder = shared.clone();
        let (shutdown, mut shutdown_rx) = oneshot::channel::<()>();
        let mut watch = Watch::new(options.clone(), regex);
        let thread = std::thread::Builder::new()
            .name("watch log".into())
            .spawn(move || {
                runtime.block_on(async move {
                    loop {
                        tokio::select! {
                            _ = &mut shutdown_rx => return,
                            next = watch.next() => {
                                let mut recorded = recorder.lock();
                                match next {
                                    Ok(event) => recorded.push(event),
                                    Err(e) => {
                                        recorded.ended = Some(e.to_string());
                                        drop(recorded);
                                        recorder.changed.notify_all();
                                        return;
                                    }
                                }
                                drop(recorded);
                                recorder.changed.notify_all();
                            }
                        }
                    }
                });
            })
            .context("watch thread")?;
        let log = WatchLog {
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        };
        log.wait(0, crate::DEADLINE, "the first snapshot", |r| {
            !r.syncs_since(0).is_empty()
        })?;
        Ok(log)
    }

    /// A position in the log: the number of events so far.
    pub fn mark(&self) -> usize {
        self.shared.lock().events.len()
    }

    /// What was recorded so far.
    pub fn recorded(&self) -> Recorded {
        self.shared.lock().clone()
    }

    /// Waits until the record satisfies `pred`, at most `deadline`;
    /// fails (saying what was seen since `mark`) on timeout or if the
    /// watch ended.
    pub fn wait(
        &self,
        mark: usize,
        deadline: Duration,
        what: &str,
        pred: impl Fn(&Recorded) -> bool,
    ) -> Result<Recorded> {
        let end = Instant::now() + deadline;
        let mut recorded = self.shared.lock();
        loop {
            if pred(&recorded) {
                return Ok(recorded.clone());
            }
            let seen = || format!("{:?}", recorded.events.get(mark..).unwrap_or_default());
            if let Some(why) = &recorded.ended {
                bail!(
                    "the watch ended ({why}) before {what}; events since: {}",
                    seen()
                );
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "{what} not seen within {deadline:?}; events since: {}",
                    seen()
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

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Recorded> {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for WatchLog {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
