//! Where a node's memory per service goes, measured with a counting
//! allocator (this test binary's global allocator): 100,000 services of the
//! shape the `scale` bench registers (`tcp://scale/bulk/{node}/{k}`, no
//! attributes, spread over 32 origins `n00`..`n31`) applied to a services
//! table, then carried to the watch history and the read view the way the
//! supervisor carries every visible move. Run with `--nocapture` to see the
//! breakdown (docs/PERFORMANCE.md, "Memory per service"); the assertion
//! holds the total to the budget that keeps a node under issue 20's 400
//! bytes per service of RSS.
//!
//! Two figures per part: the bytes asked of the allocator, and what glibc's
//! allocator spends on them (every block takes its size plus an 8-byte
//! header, rounded up to 16, and at least 32 bytes), which is what a
//! node's RSS pays.

use std::{
    alloc::{GlobalAlloc, Layout},
    sync::{
        Arc,
        atomic::{AtomicIsize, Ordering},
    },
};

use catalogue_actors::{
    hlc::Timestamp,
    services::{Applied, Change, Service, ServicesTable},
    subscription::history::History,
    supervisor::ServicesView,
};
use catalogue_proto::catalogue::EventKind;

struct Counting;

static ASKED: AtomicIsize = AtomicIsize::new(0);
static SPENT: AtomicIsize = AtomicIsize::new(0);

/// What glibc's malloc spends on a block of `size` bytes.
fn chunk(size: usize) -> isize {
    ((size + 8 + 15) & !15).max(32) as isize
}

fn count(size: usize, sign: isize) {
    ASKED.fetch_add(sign * size as isize, Ordering::Relaxed);
    SPENT.fetch_add(sign * chunk(size), Ordering::Relaxed);
}

// SAFETY: forwards to the system allocator, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 1);
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(layout.size(), -1);
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        count(layout.size(), -1);
        count(new, 1);
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const SERVICES: usize = 100_000;
const ORIGINS: usize = 32;
/// `limits.subscription_history`'s default.
const HISTORY_WINDOW: usize = 16_384;
/// What the node may spend per service (glibc blocks) in these
/// structures: issue 20 asks for under 400 bytes of RSS, which also pays
/// for the allocator's free space and for what is in flight. The table's
/// index by origin (about 30 bytes a service) is what lets a node hide or
/// retire an origin without visiting a million entries.
const BUDGET: isize = 300;

/// Bytes asked and spent since `before`, per service.
#[derive(Clone, Copy)]
struct Mark(isize, isize);

fn mark() -> Mark {
    Mark(ASKED.load(Ordering::Relaxed), SPENT.load(Ordering::Relaxed))
}

fn per_service(before: Mark) -> Mark {
    let now = mark();
    let n = SERVICES as isize;
    Mark((now.0 - before.0) / n, (now.1 - before.1) / n)
}

/// The bench's registrations, in the order it makes them.
fn bench_changes() -> Vec<Change> {
    (0..SERVICES)
        .map(|k| {
            let i = k % ORIGINS;
            Change::Add(Service {
                uri: format!("tcp://scale/bulk/{i}/{}", k / ORIGINS).into(),
                attrs: Default::default(),
                origin: format!("n{i:02}").into(),
                ts: Timestamp {
                    physical_ms: 1_800_000_000_000 + k as u64,
                    logical: 0,
                },
            })
        })
        .collect()
}

#[test]
fn a_node_holds_a_service_in_few_bytes() {
    let mut changes = bench_changes();
    let mut table = ServicesTable::new();
    let mut history = History::new(7, HISTORY_WINDOW);
    let view = ServicesView::default();
    let mut moved: Vec<Arc<Service>> = Vec::with_capacity(SERVICES);

    // As the supervisor routes them: each visible move shared, numbered in
    // the history, then set in the view.
    for change in changes.drain(..) {
        if let Applied::Added(s) = table.apply(change) {
            moved.push(s);
        }
    }
    for s in &moved {
        history.record(EventKind::Added, s.clone());
        view.set(s.clone());
    }
    assert_eq!(table.len(), SERVICES);
    assert_eq!(view.len(), SERVICES);
    assert_eq!(history.len(), HISTORY_WINDOW);

    // Each part is what dropping it gives back, in this order (an entry
    // shared by several parts counts where its last holder goes).
    let start = mark();
    drop(view);
    let in_view = per_service(start);
    let start = mark();
    drop(history);
    let in_history = per_service(start);
    let start = mark();
    let vec_bytes = (moved.capacity() * std::mem::size_of::<Arc<Service>>() / SERVICES) as isize;
    drop(moved);
    let shared = per_service(start);
    let shared = Mark(shared.0 + vec_bytes, shared.1 + vec_bytes);
    let start = mark();
    drop(table);
    let in_table = per_service(start);

    let rows = [
        ("read view", in_view),
        ("watch history", in_history),
        ("visible entries", shared),
        ("services table", in_table),
    ];
    println!("bytes per service, {SERVICES} services of {ORIGINS} origins:");
    println!("{:<26} {:>6} {:>6}", "", "asked", "glibc");
    let mut total = Mark(0, 0);
    for (what, m) in rows {
        // Dropping gives back: the part held the negative of the change.
        let m = Mark(-m.0, -m.1);
        println!("{what:<26} {:>6} {:>6}", m.0, m.1);
        total = Mark(total.0 + m.0, total.1 + m.1);
    }
    println!("{:<26} {:>6} {:>6}", "total", total.0, total.1);
    assert!(
        total.1 < BUDGET,
        "{} bytes per service spent, over the budget of {BUDGET}",
        total.1
    );
}
