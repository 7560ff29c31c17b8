//! Group commit: one `fdatasync` makes every record written before it
//! durable, so concurrent changes share syncs instead of queueing for one
//! each.
//!
//! The registry writes a record (without syncing), tells the
//! [`Committer`] how many records are written, and waits for them to be
//! durable before it replies. A dedicated thread syncs whenever records
//! are written and not yet synced: while one sync runs, further records
//! accumulate and the next sync covers them all. So a burst of changes
//! from many sessions costs two syncs however long it is, and each reply
//! leaves once the first sync that began after its record was written has
//! finished. A reply that reads the registry waits too, for every record
//! written before it (a reply never reflects a change that is not on disk
//! yet); one that neither changes nor reads it (`Bye`) waits for nothing
//! and causes no sync.
//!
//! What syncs is a [`SyncTarget`]: the log file, or in tests a target
//! whose syncs the test holds and releases.
//!
//! A failed sync is final: the page cache can no longer be trusted, every
//! waiter gets [`CommitError`] and [`Committer::failed`] stays true until
//! the registry restarts. Dropping the committer syncs what is pending and
//! stops the thread.

use std::{
    fs::File,
    sync::{Arc, Condvar, Mutex, PoisonError},
    thread::JoinHandle,
};

use tokio::sync::watch;

/// How far the log is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Durable {
    /// Records up to this count are on disk.
    Upto(u64),
    /// A sync failed.
    Failed(String),
}

/// A sync failed: nothing written since the last good sync is durable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syncing the registry log failed: {0}")]
pub struct CommitError(pub String);

#[derive(Debug, Default)]
struct Pending {
    /// Records written so far.
    written: u64,
    /// Stop once everything written is synced.
    stop: bool,
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

/// Something [`Committer`] can make durable: the log file, or a test's
/// stand-in.
pub trait SyncTarget: Send + 'static {
    /// Makes everything written so far durable.
    fn sync(&self) -> std::io::Result<()>;
}

impl SyncTarget for File {
    fn sync(&self) -> std::io::Result<()> {
        self.sync_data()
    }
}

/// Syncs the log on its own thread.
#[derive(Debug)]
pub struct Committer {
    shared: Arc<Shared>,
    durable: watch::Receiver<Durable>,
    syncs: Arc<std::sync::atomic::AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    /// Starts syncing `file` (a handle on the log), whose first `written`
    /// records are already durable.
    pub fn start(file: impl SyncTarget, written: u64) -> std::io::Result<Committer> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                written,
                stop: false,
            }),
            wake: Condvar::new(),
        });
        let (tx, durable) = watch::channel(Durable::Upto(written));
        let syncs = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let thread = {
            let (shared, syncs) = (shared.clone(), syncs.clone());
            std::thread::Builder::new()
                .name("xlreg-sync".into())
                .spawn(move || sync_loop(&file, &shared, &tx, &syncs, written))?
        };
        Ok(Committer {
            shared,
            durable,
            syncs,
            thread: Some(thread),
        })
    }

    /// Records up to `count` are written: sync them.
    pub fn written(&self, count: u64) {
        let mut pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        pending.written = pending.written.max(count);
        self.shared.wake.notify_one();
    }

    /// Resolves once records up to `count` are durable.
    pub fn wait(&self, count: u64) -> impl Future<Output = Result<(), CommitError>> + use<> {
        let mut durable = self.durable.clone();
        async move {
            let reached = durable
                .wait_for(|d| match d {
                    Durable::Upto(n) => *n >= count,
                    Durable::Failed(_) => true,
                })
                .await
                .map(|d| d.clone());
            match reached {
                Ok(Durable::Upto(_)) => Ok(()),
                Ok(Durable::Failed(e)) => Err(CommitError(e)),
                Err(_) => Err(CommitError("the sync thread stopped".into())),
            }
        }
    }

    /// Whether a sync has failed.
    pub fn failed(&self) -> bool {
        matches!(*self.durable.borrow(), Durable::Failed(_))
    }

    /// Syncs made so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        {
            let mut pending = self
                .shared
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            pending.stop = true;
            self.shared.wake.notify_one();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn sync_loop(
    file: &impl SyncTarget,
    shared: &Shared,
    tx: &watch::Sender<Durable>,
    syncs: &std::sync::atomic::AtomicU64,
    mut synced: u64,
) {
    loop {
        let target = {
            let mut pending = shared
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            while pending.written <= synced && !pending.stop {
                pending = shared
                    .wake
                    .wait(pending)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if pending.written <= synced {
                return; // stopping, nothing left to sync
            }
            pending.written
        };
        syncs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match file.sync() {
            Ok(()) => {
                synced = target;
                tx.send_replace(Durable::Upto(synced));
            }
            Err(e) => {
                tx.send_replace(Durable::Failed(e.to_string()));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[tokio::test]
    async fn waits_resolve_once_synced_and_syncs_are_shared() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut file = File::create(dir.path().join("log")).expect("create");
        let committer = Committer::start(file.try_clone().expect("clone"), 0).expect("start");
        committer.wait(0).await.expect("nothing to wait for");
        for _ in 0..100 {
            file.write_all(b"record").expect("write");
        }
        committer.written(100);
        for n in 1..=100 {
            committer.wait(n).await.expect("durable");
        }
        assert!(committer.syncs() <= 2, "{} syncs", committer.syncs());
        assert!(!committer.failed());
    }

    #[tokio::test]
    async fn a_failed_sync_fails_every_waiter_for_good() {
        // /dev/null cannot be synced (EINVAL).
        let file = File::options()
            .write(true)
            .open("/dev/null")
            .expect("/dev/null");
        let committer = Committer::start(file, 5).expect("start");
        committer.wait(5).await.expect("already durable");
        committer.written(6);
        assert!(committer.wait(6).await.is_err());
        assert!(committer.failed());
        assert!(committer.wait(6).await.is_err());
    }

    /// A sync that waits until the test lets it finish, and says when it
    /// has begun.
    struct Held {
        began: std::sync::mpsc::Sender<()>,
        release: Mutex<std::sync::mpsc::Receiver<()>>,
    }

    impl SyncTarget for Held {
        fn sync(&self) -> std::io::Result<()> {
            let _ = self.began.send(());
            let _ = self.release.lock().unwrap().recv();
            Ok(())
        }
    }

    /// Whether `wait` has resolved, without waiting for it.
    fn resolved(wait: &mut (impl Future<Output = Result<(), CommitError>> + Unpin)) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        std::pin::Pin::new(wait).poll(&mut cx).is_ready()
    }

    #[test]
    fn a_reply_waits_for_the_sync_that_covers_it_and_one_sync_covers_a_burst() {
        let (began_tx, began) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel();
        let committer = Committer::start(
            Held {
                began: began_tx,
                release: Mutex::new(release_rx),
            },
            0,
        )
        .expect("start");
        let second = std::time::Duration::from_secs(10);
        // Record 1 is written; its sync begins and is held.
        committer.written(1);
        began.recv_timeout(second).expect("first sync began");
        let mut first = Box::pin(committer.wait(1));
        // Records 2 to 5, from other sessions, are written meanwhile.
        let mut burst: Vec<_> = (2..=5)
            .map(|n| {
                committer.written(n);
                Box::pin(committer.wait(n))
            })
            .collect();
        assert!(
            !resolved(&mut first),
            "no reply before its sync has finished"
        );
        release.send(()).expect("release the first sync");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(&mut first).expect("record 1 durable");
        // The first sync began before 2 to 5 were written: it covers none.
        began.recv_timeout(second).expect("second sync began");
        assert!(
            burst.iter_mut().all(|w| !resolved(w)),
            "records written during a sync wait for the next one"
        );
        release.send(()).expect("release the second sync");
        for w in burst {
            rt.block_on(w).expect("durable");
        }
        assert_eq!(committer.syncs(), 2, "one sync for the whole burst");
        // Nothing written since: waiting for what is durable syncs nothing.
        rt.block_on(committer.wait(5)).expect("durable");
        assert!(
            began
                .recv_timeout(std::time::Duration::from_millis(50))
                .is_err(),
            "no sync without a new record"
        );
        drop(release);
        assert_eq!(committer.syncs(), 2);
    }

    #[test]
    fn dropping_syncs_what_is_pending() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = File::create(dir.path().join("log")).expect("create");
        let committer = Committer::start(file, 0).expect("start");
        let durable = committer.durable.clone();
        committer.written(3);
        drop(committer);
        assert_eq!(*durable.borrow(), Durable::Upto(3));
    }
}
