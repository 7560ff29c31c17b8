//! Where the memory of an idle subscribed connection goes, measured with
//! a counting allocator (this test binary's global allocator): the bytes
//! each part keeps allocated once it is idle. Run with `--nocapture` to
//! see the breakdown (docs/PERFORMANCE.md, "Memory per idle subscribed
//! connection"); the assertions hold the parts to the budget that keeps a
//! connection with one subscription under 12 KiB of heap.

use std::{
    alloc::{GlobalAlloc, Layout},
    sync::{
        Arc,
        atomic::{AtomicIsize, Ordering},
    },
};

use actix::prelude::*;
use catalogue_actors::{
    frame_writer::{OUTBOUND_FRAMES, Outbound},
    matcher,
    metrics::Metrics,
    subscription::{
        Release, Subscription, SubscriptionEnded, SubscriptionParts,
        direct::DirectPath,
        history::Position,
        ledger::{LedgerLimits, Owner, SharedLedger},
        patterns::PatternCache,
    },
    supervisor::{Resnapshot, Snapshot},
};
use catalogue_proto::Body;
use tokio::sync::mpsc;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Live bytes `make` leaves allocated, averaged over `n` calls (the
/// results are kept until the end, so nothing is freed early).
fn held<T>(n: usize, mut make: impl FnMut(usize) -> T) -> (isize, Vec<T>) {
    let mut kept = Vec::with_capacity(n);
    let before = live();
    for i in 0..n {
        kept.push(make(i));
    }
    let after = live();
    (
        (after - before - (n * std::mem::size_of::<T>()) as isize) / n as isize,
        kept,
    )
}

/// Stands in for the supervisor and the connection.
struct Sink;
impl Actor for Sink {
    type Context = Context<Self>;
}
impl Handler<Resnapshot> for Sink {
    type Result = ();
    fn handle(&mut self, _: Resnapshot, _: &mut Context<Self>) {}
}
impl Handler<SubscriptionEnded> for Sink {
    type Result = ();
    fn handle(&mut self, _: SubscriptionEnded, _: &mut Context<Self>) {}
}

const N: usize = 1000;

#[test]
fn breakdown_of_an_idle_subscription() {
    let sizes = [
        ("Body", std::mem::size_of::<Body>()),
        ("Subscription", std::mem::size_of::<Subscription>()),
        ("regex::Regex", std::mem::size_of::<regex::Regex>()),
    ];
    for (name, size) in sizes {
        println!("size_of {name}: {size} bytes");
    }

    let (regex, _kept) = held(N, |i| {
        regex::Regex::new(&format!("^tcp://idle/{i}/")).unwrap()
    });
    println!("regex::Regex for ^tcp://idle/I/, compiled: {regex} bytes");
    let (used, _kept2) = held(N, |i| {
        let r = regex::Regex::new(&format!("^tcp://idle/{i}/")).unwrap();
        r.is_match("tcp://idle/1/x");
        r
    });
    println!("  after one is_match: {used} bytes");
    let (pattern, _kept5) = held(N, |i| {
        matcher::Pattern::compile(&format!("^tcp://idle/{i}/"), 1 << 20).unwrap()
    });
    println!("matcher::Pattern for ^tcp://idle/I/ (literal, no regex): {pattern} bytes");
    assert!(pattern < 256, "a literal prefix holds {pattern} bytes");

    let (channel, _kept3) = held(N, |_| mpsc::channel::<Body>(256));
    println!("mpsc::channel::<Body>(256): {channel} bytes");
    let (boxed, _kept6) = held(N, |_| mpsc::channel::<Outbound>(OUTBOUND_FRAMES));
    println!(
        "outbound mpsc::channel::<Outbound>(256), {} bytes a slot: {boxed} bytes",
        std::mem::size_of::<Outbound>()
    );
    // tokio allocates 32 slots at once: 16 bytes a slot (a boxed body or
    // grouped change, or a subscription id and a shared event) is 512 of
    // them, and the channel's own state the rest (1,040 bytes); with a
    // third variant a slot was 24 bytes and the channel 1,296; bodies
    // inline (144 bytes) would be 5,136.
    assert!(
        boxed < 1152,
        "the outbound channel holds {boxed} bytes idle"
    );

    let sys = actix::System::new();
    let (actor, _kept4) = sys.block_on(async {
        let metrics = Arc::new(Metrics::new());
        let ledger = SharedLedger::new(
            LedgerLimits {
                total: usize::MAX,
                per_uid: usize::MAX,
                per_address: usize::MAX,
                regex_bytes: usize::MAX,
            },
            Default::default(),
        );
        let sink = Sink.start();
        let cache = PatternCache::new();
        let (tx, mut rx) = mpsc::channel::<Outbound>(OUTBOUND_FRAMES);
        actix::spawn(async move { while rx.recv().await.is_some() {} });
        // Warm up the metrics' per-kind series.
        let first = start(&sink, &tx, &metrics, &ledger, &cache, u64::MAX);
        settle().await;
        let before = live();
        let addrs: Vec<_> = (0..N as u64)
            .map(|key| start(&sink, &tx, &metrics, &ledger, &cache, key))
            .collect();
        settle().await;
        let per = (live() - before) / N as isize;
        (per, (first, addrs, sink, tx))
    });
    println!("Subscription actor, started, snapshot and released: {actor} bytes");
}

fn start(
    sink: &Addr<Sink>,
    tx: &mpsc::Sender<Outbound>,
    metrics: &Arc<Metrics>,
    ledger: &SharedLedger,
    cache: &PatternCache,
    key: u64,
) -> Addr<Subscription> {
    let (pattern, permit) = cache
        .admit(
            &format!("^tcp://idle/{key}/"),
            1 << 20,
            ledger,
            Owner::Uid(0),
        )
        .unwrap();
    let direct = DirectPath::new(key, tx.clone(), false);
    let addr = Subscription::new(SubscriptionParts {
        key,
        id: key,
        limit: 1000,
        policy: catalogue_actors::settings::OverflowPolicy::Resnapshot,
        outbound: tx.clone(),
        supervisor: sink.clone().recipient(),
        ended: sink.clone().recipient(),
        stats: metrics.clone(),
        permit,
        pattern,
        direct: direct.clone(),
    })
    .start();
    // As the supervisor does before it sends what the actor must handle.
    direct.via_actor();
    addr.do_send(Snapshot {
        services: Vec::new(),
        at: Position {
            epoch: 1,
            revision: 0,
        },
        reset: false,
    });
    addr.do_send(Release);
    addr
}

/// Lets every actor handle what was sent to it.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}
