//! The reader thread: where a socket client's `List` is built, off the
//! node's thread.
//!
//! Client connections live on the node's thread beside the supervisor (so
//! a registration reaches a subscriber without a thread hop), but a
//! listing is work that grows with the table: matching the regex against
//! every visible URI, copying each match into its wire form, cutting the
//! frames. Done there, a flood of `List` took most of the thread that
//! applies replication (docs/PERFORMANCE.md, "reads against
//! replication"). The reader is one thread with a small runtime of its
//! own: a listing runs there as a task that reads the supervisor's read
//! view and puts the frames straight into the connection's outbound
//! channel, waiting for room as the connection's own answers do. One
//! thread, so reads can take at most one core from a node however many
//! clients list at once; they queue there, in order, instead. The queue is
//! bounded by the connections: a connection hands over its next listing
//! only when its previous one is done.

use std::{future::Future, thread};

use tokio::{runtime, sync::oneshot};

/// A handle on the reader thread; the thread ends when the handle is
/// dropped (at the node's stop), and listings under way with it.
#[derive(Debug)]
pub struct Reader {
    runtime: runtime::Handle,
    /// Dropped with the handle: the thread's signal to end.
    _stop: oneshot::Sender<()>,
}

impl Reader {
    /// Starts the reader thread.
    pub fn start() -> std::io::Result<Reader> {
        let rt = runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        thread::Builder::new()
            .name("catalogue-reader".into())
            .spawn(move || {
                // Ends when every handle has been dropped.
                let _ = rt.block_on(stopped);
            })?;
        Ok(Reader {
            runtime: handle,
            _stop: stop,
        })
    }

    /// Runs `job` on the reader thread; the receiver completes with its
    /// result (or is cancelled if the reader has stopped).
    pub fn run<F>(&self, job: F) -> oneshot::Receiver<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send,
    {
        let (tx, rx) = oneshot::channel();
        self.runtime.spawn(async move {
            let _ = tx.send(job.await);
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::Reader;

    #[tokio::test]
    async fn jobs_run_on_the_reader_thread() {
        let reader = Reader::start().expect("reader");
        let here = std::thread::current().id();
        let name = reader
            .run(async move {
                let me = std::thread::current();
                assert_ne!(me.id(), here);
                me.name().map(str::to_string)
            })
            .await
            .expect("job ran");
        assert_eq!(name.as_deref(), Some("catalogue-reader"));
    }
}
