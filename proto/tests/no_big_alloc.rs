//! Checks that a hostile length prefix is refused without allocating for it.
//!
//! A counting global allocator wraps the system allocator and, while the
//! current thread is measuring, records the largest single allocation or
//! reallocation it is asked for. The frame decoder is then fed prefixes that
//! announce gigabytes, followed by a few bytes: it must answer
//! `CodecError::FrameTooLarge`, and no single allocation made during the
//! decode may exceed [`ALLOWED`].
//!
//! The requirement speaks of a 5 GiB announcement; a 4-byte prefix cannot
//! express that, so 0xFFFF_FFFF (4 GiB - 1), the largest length a prefix can
//! announce, stands in for it.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use bytes::BytesMut;
use catalogue_proto::{CodecError, DEFAULT_MAX_FRAME_LEN, FrameCodec};
use tokio_util::codec::Decoder;

/// Largest single allocation a refused decode may make, and the most room
/// a decode may reserve beyond the bytes it holds (`READ_STEP`).
const ALLOWED: usize = 64 * 1024;

/// The system allocator, plus a record of the largest request made by a
/// thread that is measuring.
struct CountingAllocator;

/// Largest allocation or reallocation seen while measuring, in bytes.
static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// Only one measurement at a time, since `LARGEST` is shared.
static MEASURING: Mutex<()> = Mutex::new(());

thread_local! {
    /// Whether this thread's allocations are recorded. Other test threads and
    /// the harness allocate concurrently and must not count.
    static RECORDING: Cell<bool> = const { Cell::new(false) };
}

fn record(size: usize) {
    // `try_with` because the allocator also runs while thread-locals are
    // being torn down.
    if RECORDING.try_with(Cell::get).unwrap_or(false) {
        LARGEST.fetch_max(size, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to `System`; recording touches
// only an atomic and a const-initialised thread-local, neither of which
// allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f` and returns its result with the largest single allocation it
/// made on this thread.
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let _guard = MEASURING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    LARGEST.store(0, Ordering::Relaxed);
    RECORDING.with(|r| r.set(true));
    let result = f();
    RECORDING.with(|r| r.set(false));
    (result, LARGEST.load(Ordering::Relaxed))
}

/// A buffer holding `prefix` as a big-endian length and a few body bytes.
fn hostile_input(prefix: u32) -> BytesMut {
    let mut buf = BytesMut::with_capacity(16);
    buf.extend_from_slice(&prefix.to_be_bytes());
    buf.extend_from_slice(&[0x08, 0x01, 0x22, 0x02, 0x08, 0x01]);
    buf
}

/// Feeds `input` to `codec` (first through `decode`, then `decode_eof`) and
/// checks both refuse it as too large without a big allocation.
fn assert_refused_cheaply(mut codec: FrameCodec, prefix: u32) {
    let max = codec.max_frame_len();
    for at_eof in [false, true] {
        let mut input = hostile_input(prefix);
        let (result, largest) = measure(|| {
            if at_eof {
                codec.decode_eof(&mut input)
            } else {
                codec.decode(&mut input)
            }
        });
        let call = if at_eof { "decode_eof" } else { "decode" };
        match result {
            Err(CodecError::FrameTooLarge { len, max: m }) => {
                assert_eq!(len, u64::from(prefix), "{call}: reported length");
                assert_eq!(m, max, "{call}: reported limit");
            }
            other => panic!("{call} of prefix {prefix:#x}: expected FrameTooLarge, got {other:?}"),
        }
        assert!(
            largest <= ALLOWED,
            "{call} of prefix {prefix:#x} made an allocation of {largest} bytes \
             (allowed: {ALLOWED})"
        );
    }
}

#[test]
fn the_counter_sees_allocations() {
    // Without this, a counter that never records would let every other test
    // pass.
    let (v, largest) = measure(|| Vec::<u8>::with_capacity(100_000));
    drop(v);
    assert!(largest >= 100_000, "recorded only {largest} bytes");
}

#[test]
fn largest_announceable_length_is_refused_without_allocating() {
    assert_refused_cheaply(FrameCodec::default(), 0xFFFF_FFFF);
}

#[test]
fn two_gib_prefix_is_refused_without_allocating() {
    assert_refused_cheaply(FrameCodec::default(), 0x8000_0000);
}

#[test]
fn one_past_the_default_limit_is_refused() {
    let just_over = u32::try_from(DEFAULT_MAX_FRAME_LEN + 1).expect("4 MiB + 1 fits in u32");
    assert_refused_cheaply(FrameCodec::default(), just_over);
}

#[test]
fn one_past_a_custom_limit_is_refused() {
    assert_refused_cheaply(FrameCodec::new(1024), 1025);
}

#[test]
fn a_prefix_split_across_reads_is_refused_when_complete() {
    let mut codec = FrameCodec::default();
    let mut input = BytesMut::with_capacity(16);
    input.extend_from_slice(&[0xFF, 0xFF]);
    let (first, largest_first) = measure(|| codec.decode(&mut input));
    assert!(
        matches!(first, Ok(None)),
        "half a prefix asks for more: {first:?}"
    );
    input.extend_from_slice(&[0xFF, 0xFF, 0x00, 0x01]);
    let (second, largest_second) = measure(|| codec.decode(&mut input));
    assert!(
        matches!(
            second,
            Err(CodecError::FrameTooLarge {
                len: 0xFFFF_FFFF,
                ..
            })
        ),
        "the completed prefix is refused: {second:?}"
    );
    let largest = largest_first.max(largest_second);
    assert!(largest <= ALLOWED, "allocated {largest} bytes");
}

#[test]
fn a_length_at_the_limit_is_waited_for() {
    // The other side of the limit: exactly 1024 is accepted and waited for,
    // and no room is reserved for body bytes that have not arrived (the
    // buffer still has room for more, so it does not grow).
    let mut codec = FrameCodec::new(1024);
    let mut input = hostile_input(1024);
    let capacity_before = input.capacity();
    let (result, largest) = measure(|| codec.decode(&mut input));
    assert!(
        matches!(result, Ok(None)),
        "a frame at the limit is awaited: {result:?}"
    );
    assert!(largest <= ALLOWED, "allocated {largest} bytes");
    assert_eq!(
        input.capacity(),
        capacity_before,
        "nothing reserved for the announced body"
    );
}

#[test]
fn a_4_mib_announcement_with_100_bytes_sent_allocates_for_the_bytes_only() {
    // From the hostile-load report (docs/RELIABILITY.md §6 Hostile load,
    // Memory): a prefix announcing the largest accepted
    // frame, then a little of its body, then nothing. Before the fix the
    // decoder reserved the whole 4 MiB at once.
    let announced = u32::try_from(DEFAULT_MAX_FRAME_LEN).expect("4 MiB fits in u32");
    let mut codec = FrameCodec::default();
    let mut input = BytesMut::with_capacity(512);
    input.extend_from_slice(&announced.to_be_bytes());
    input.extend_from_slice(&[0x08; 100]);
    let (result, largest) = measure(|| codec.decode(&mut input));
    assert!(
        matches!(result, Ok(None)),
        "the frame is awaited: {result:?}"
    );
    assert!(
        largest <= ALLOWED + 1024,
        "allocated {largest} bytes for 104 received (allowed: {ALLOWED} plus the bytes held)"
    );
    assert!(
        input.capacity() <= ALLOWED + 1024,
        "capacity {} for 104 bytes held",
        input.capacity()
    );
}
