//! Busy polling after input: for `node.busy_poll` after a frame arrives,
//! the node's thread keeps polling its sockets instead of sleeping in the
//! kernel, so the next frame of a conversation is read without a wake-up.
//!
//! A request and its answer take two wake-ups, one on each side, when both
//! sides sleep between frames. On a virtual machine a wake-up can cost
//! tens of microseconds (docs/PERFORMANCE.md, "Busy polling"), more than
//! the node's work on a registration. While the window is open one task on
//! the node's thread yields in a loop; each yield lets the runtime poll
//! its I/O driver with a zero timeout, so a frame that arrives meanwhile
//! is found at once. Every frame read ([`touch`], called by the frame
//! readers of [`crate::input`]) opens the window again; when it closes the
//! task sleeps until the next frame, so an idle node uses no CPU. The cost
//! is CPU while traffic flows: at most one core for as long as frames keep
//! arriving closer together than the window. A window of zero turns it
//! off.
//!
//! The state is per thread: the node's frame readers and the polling task
//! share its thread. One polling task runs per thread; a second node
//! started on the same thread (as in tests) shares the first one's.

use std::{
    cell::{Cell, RefCell},
    future::poll_fn,
    task::{Poll, Waker},
    time::{Duration, Instant},
};

use tokio::task::JoinHandle;

/// When polling stops: `window` after the last frame.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    window: Duration,
    until: Instant,
}

impl Window {
    /// A window opened at `now`.
    pub fn open(window: Duration, now: Instant) -> Self {
        Window {
            window,
            until: now + window,
        }
    }

    /// After one poll at `now`, with `touched` telling whether a frame
    /// arrived since the last: whether to keep polling. A frame reopens
    /// the window.
    pub fn keep_polling(&mut self, touched: bool, now: Instant) -> bool {
        if touched {
            self.until = now + self.window;
        }
        now < self.until
    }
}

/// What the frame readers and the polling task of one thread share.
#[derive(Default)]
struct Shared {
    /// A frame arrived since the task last looked.
    touched: Cell<bool>,
    /// The task, while it sleeps.
    sleeping: RefCell<Option<Waker>>,
    /// A polling task runs on this thread.
    running: Cell<bool>,
    /// Polls made, for tests.
    polls: Cell<u64>,
}

thread_local! {
    static SHARED: Shared = Shared::default();
}

/// Notes that a frame arrived: opens the polling window of this thread
/// (wakes its polling task if it sleeps). Cheap when no task runs.
pub fn touch() {
    SHARED.with(|s| {
        s.touched.set(true);
        if let Some(waker) = s.sleeping.borrow_mut().take() {
            waker.wake();
        }
    });
}

/// The polling task of a node; stops it when dropped.
#[derive(Debug)]
pub struct BusyPoll {
    task: JoinHandle<()>,
}

impl Drop for BusyPoll {
    fn drop(&mut self) {
        self.task.abort();
        SHARED.with(|s| {
            s.running.set(false);
            s.sleeping.borrow_mut().take();
        });
    }
}

/// Starts polling on this thread (which must run a `LocalSet`, as actix's
/// does) with `window` after each frame. `None` when the window is zero or
/// a task already polls on this thread.
pub fn start(window: Duration) -> Option<BusyPoll> {
    if window.is_zero() || SHARED.with(|s| s.running.replace(true)) {
        return None;
    }
    let task = tokio::task::spawn_local(run(window));
    Some(BusyPoll { task })
}

async fn run(window: Duration) {
    loop {
        // Asleep until a frame arrives.
        poll_fn(|cx| {
            SHARED.with(|s| {
                if s.touched.replace(false) {
                    Poll::Ready(())
                } else {
                    *s.sleeping.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                }
            })
        })
        .await;
        let mut open = Window::open(window, Instant::now());
        loop {
            // Deferred until the runtime has polled its I/O driver.
            tokio::task::yield_now().await;
            // A process this node woke (a client reading its answer) is
            // often queued on this CPU; without giving way it would wait
            // for the window to close.
            std::thread::yield_now();
            let touched = SHARED.with(|s| {
                s.polls.set(s.polls.get() + 1);
                s.touched.replace(false)
            });
            if !open.keep_polling(touched, Instant::now()) {
                break;
            }
        }
    }
}

/// Polls made on this thread so far.
#[cfg(test)]
fn polls() -> u64 {
    SHARED.with(|s| s.polls.get())
}

#[cfg(test)]
mod tests;
