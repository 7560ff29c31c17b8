use std::{
    io::Write,
    time::{Duration, Instant},
};

use tokio::{io::AsyncReadExt, task::LocalSet};

use super::{SHARED, Window, polls, start, touch};

const DEADLINE: Duration = Duration::from_secs(10);

fn sleeping() -> bool {
    SHARED.with(|s| s.sleeping.borrow().is_some())
}

/// Yields to the runtime until `done` holds; panics after [`DEADLINE`].
async fn until(what: &str, done: impl Fn() -> bool) {
    let began = Instant::now();
    while !done() {
        assert!(began.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[test]
fn a_frame_reopens_the_window_and_its_absence_closes_it() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut w = Window::open(ms(10), t0);
    assert!(w.keep_polling(false, t0 + ms(5)));
    // A frame at 8 ms keeps it open until 18 ms.
    assert!(w.keep_polling(true, t0 + ms(8)));
    assert!(w.keep_polling(false, t0 + ms(17)));
    assert!(!w.keep_polling(false, t0 + ms(18)));
}

#[tokio::test]
async fn polls_only_after_a_frame_and_sleeps_when_the_window_closes() {
    LocalSet::new()
        .run_until(async {
            let _poll = start(Duration::from_millis(20)).expect("first on this thread");
            until("the task to sleep", sleeping).await;
            let before = polls();
            for _ in 0..100 {
                tokio::task::yield_now().await;
            }
            assert_eq!(polls(), before, "polled with no frame");

            touch();
            until("polling", || polls() > before).await;
            until("the window to close", sleeping).await;
            let after = polls();
            for _ in 0..100 {
                tokio::task::yield_now().await;
            }
            assert_eq!(polls(), after, "polled after the window closed");
        })
        .await;
}

/// While the task polls, the thread's sockets and timers still make
/// progress: a loop that spun without yielding to the runtime would never
/// see the bytes.
#[tokio::test]
async fn sockets_are_read_while_it_polls() {
    LocalSet::new()
        .run_until(async {
            let _poll = start(Duration::from_secs(60)).expect("first on this thread");
            touch();
            until("polling", || polls() > 0).await;
            let (mut writer, reader) = std::os::unix::net::UnixStream::pair().expect("pair");
            reader.set_nonblocking(true).expect("nonblocking");
            let mut reader = tokio::net::UnixStream::from_std(reader).expect("register");
            let sender = std::thread::spawn(move || writer.write_all(b"frame"));
            let mut got = [0u8; 5];
            tokio::time::timeout(DEADLINE, reader.read_exact(&mut got))
                .await
                .expect("read within the deadline")
                .expect("read");
            assert_eq!(&got, b"frame");
            sender.join().expect("sender").expect("write");
            assert!(!sleeping(), "the 60 s window closed early");
        })
        .await;
}

#[tokio::test]
async fn one_task_a_thread_and_none_for_a_zero_window() {
    LocalSet::new()
        .run_until(async {
            assert!(start(Duration::ZERO).is_none());
            let first = start(Duration::from_millis(1)).expect("first");
            assert!(start(Duration::from_millis(1)).is_none());
            drop(first);
            assert!(start(Duration::from_millis(1)).is_some());
        })
        .await;
}
