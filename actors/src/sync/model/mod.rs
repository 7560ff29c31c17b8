//! Model tests of replication: a deterministic simulation of a cluster of
//! nodes in plain code (one thread, no socket, no actor, no real time)
//! that runs the real replication code, [`Replica`](super::replica::Replica)
//! and [`SyncSession`](super::session::SyncSession), under random faults,
//! and checks what must hold once the cluster is quiet.
//!
//! **What is real, what is simulated.** Each node has a real `Replica`, a
//! real `Hlc<ManualClock>` (each node's clock is the world's time plus a
//! skew) and, per link, a real `SyncSession`; every frame is encoded and
//! decoded with prost. The [`world`] plays the actors: it applies local
//! changes and sends them to every link (`CatalogueSupervisor::apply_local`),
//! observes every timestamp of a received batch, applies it and forwards
//! what was newer to every other link (`Handler<PeerBatch>`), issues its own
//! `LinkAdd`/`LinkDelete` when a link comes up or goes down (`LinkUp`,
//! `LinkDown`), purges tombstones older than a TTL (`purge_tombstones`), and
//! answers session events as `PeerLink` does (`Registered` → our digest,
//! `PeerDigest` → our plan, `Batch` → the supervisor). Not modelled: the
//! duplicate-link arbitration, `Error`/`Bye` frames, keepalives, and the
//! subscribers' view (the unreachable-origin grace period is presentation;
//! the tables are what is checked).
//!
//! **Faults** ([`run`]): deliveries interleaved at random across links and
//! nodes (each direction of a link is FIFO, as TCP is), copies of frames
//! delivered again later (retransmissions), links that break with a random
//! prefix of their frames in flight delivered and the rest lost, links that
//! come up between any two nodes (a new pair of sessions, serials from 1
//! and 2 as after the handshake), registrations and unregistrations drawn
//! from a small pool of URIs so nodes write the same URIs concurrently,
//! restarts (empty tables, new clock, no registration, after a downtime
//! longer than twice the clock skew), tombstone purges with a short TTL,
//! and time passing (batch delays, retransmit timers). Then, in 70 % of the
//! runs, links join every component into one; then the cluster runs with no
//! new operation until nothing is in flight, nothing is batched and every
//! frame is acknowledged (a run that never gets there fails). Everything is
//! drawn from a SplitMix64 seeded per run ([`rng`]) and every collection
//! iterated is ordered, so a seed replays exactly; a failure prints the
//! seed, the run's parameters and its trace.
//!
//! **Invariants** ([`check`]), for each connected component of the links
//! that are up at the end, since nodes that cannot reach each other cannot
//! be expected to agree:
//! * *convergence*: every node holds the same live services (URI, origin,
//!   timestamp, attributes) and the same live links; without purges and
//!   restarts, the same digest, tombstones included. This is "every
//!   reachable node holds the same table".
//! * *nothing resurrected*: a live service whose origin is in the component
//!   is exactly what that origin's local programs hold registered now, in
//!   its current life (same timestamp and attributes). Anything else of a
//!   reachable origin is a deleted entry come back (unregistered, or
//!   registered before the origin restarted: a node re-registers nothing).
//!   Of an origin in another component the component cannot know the
//!   latest; such an entry must at least have been registered by it once.
//! * *nothing lost*: a registration a local program holds now is live at
//!   every node of its origin's component (each origin owns its own
//!   registration of a URI; another node's registration or delete of the
//!   same URI never touches it).
//! * *links are true*: every link that is up is live in its component's
//!   tables, and no link with an end in the component is live while it is
//!   down (reachability, hence which origins are withdrawn, comes from
//!   this table).
//! * no protocol error between two correct nodes, no timestamp refused.
//!
//! **What runs** ([`tests`], [`scenarios`]): in CI, 1,000 seeds of clusters
//! of 2 to 5 nodes with every fault but restarts and purges, and 1,000 more
//! with clock skew (about 2.6 s each in a debug build, in parallel), plus
//! targeted scenarios (a partition healing with deletes on both sides,
//! flapping links under concurrent writes of one URI, a node away longer
//! than the TTL). By hand: `cargo test -p catalogue-actors --lib
//! sync::model::tests::long_run -- --ignored --nocapture` runs 100,000
//! seeds per family (`MODEL_SEEDS` to change), clusters of up to 8 nodes
//! included; `tests::replay` and `tests::survey` replay a seed or survey
//! failures under a profile taken from the environment.
//!
//! **Bugs found**, each reproduced by an `#[ignore]`d `bug_*` scenario
//! (and by `tests::every_fault`); the `fixed_*` scenarios and
//! `tests::every_fault_but_purges_with_the_proposed_fixes` run the same
//! with the fix proposed for it applied in the model's driver
//! (`World::proposed_fix`):
//! 1. a restarted node gets back its previous life's registrations from a
//!    peer (`Replica::apply_batch` applies entries of its own origin);
//! 2. the same for its links, in the links table;
//! 3. two ends' concurrent changes of their link (a flap within the same
//!    millisecond, or within the clock skew) can leave a down link live;
//! 4. a replacement planned from a peer's digest retires the entries of
//!    its origin that reached the peer since by another path; passed on,
//!    it retires them at the origin itself;
//! 5. with tombstones purged, entries older than the purge horizon are
//!    refused even when they are live and legitimate (a node that joins
//!    late never gets long-lived services of other origins), and two nodes
//!    that each see the other as stale replace each other's view (a node
//!    away longer than the TTL brings a deleted service back).
//!
//! The CI families avoid restarts and purges (bugs 1, 2, 5) and do not
//! check ghost links (bug 3); bug 4 shows in about 1 seed in 10,000 of
//! them, so `tests::long_run` fails until it is fixed.

mod check;
mod rng;
mod run;
mod scenarios;
mod tests;
mod world;
