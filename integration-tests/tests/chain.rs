//! Faults on a chain, the sparse topology real deployments use
//! (docs/RELIABILITY.md §5):
//! five nodes n1-n2-n3-n4-n5, each with static peers to its neighbours
//! only, a proxy on every link, `sync.unreachable_grace` 1 s.
//!
//! Cut and heal: services registered at both ends reach every node; the
//! middle link n3-n4 is cut, so n1, n2, n3 withdraw n5's services and n4,
//! n5 withdraw n1's; some of n5's are unregistered meanwhile (in one
//! variant their tombstones are purged before the heal); once the link is
//! restored every node lists both ends again, the unregistered services
//! nowhere. A subscriber on n1 is told exactly the withdrawal at the cut
//! and the return at the heal, and never an add of an unregistered service.
//!
//! Kill and restart: n3, the middle node, is killed with SIGKILL while n1
//! registers services and restarted with the same configuration, at once
//! or once both sides have withdrawn the other end's services; every node
//! converges to the same table.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, ensure};
use catalogue_integration_tests::{
    Cluster, DEADLINE, Listing, added, deleted, describe, listing_of, log_time, uris,
};

/// Grace before an unreachable origin's services are withdrawn.
const GRACE: &str = "1s";
/// Bound on every convergence waited for: withdrawal after a cut, return
/// after a heal, agreement after a restart.
const CONVERGENCE: Duration = Duration::from_secs(15);
/// Services registered at each end of the chain.
const PER_END: usize = 20;
/// Of n5's, how many are unregistered during the partition.
const UNREGISTERED: usize = 5;
/// Tombstone TTL of the variant where tombstones expire during the
/// partition. Nodes purge every 10 s, so the purge past the TTL comes at
/// most about 12 s after the deletes.
const SHORT_TTL: Duration = Duration::from_secs(2);
/// Bound on waiting for that purge.
const PURGE_DEADLINE: Duration = Duration::from_secs(25);

/// Node numbers (`n1` is 0).
const N1: usize = 0;
const N2: usize = 1;
const N3: usize = 2;
const N4: usize = 3;
const N5: usize = 4;
const ALL: [usize; 5] = [N1, N2, N3, N4, N5];

/// Sorted, to compare as multisets.
fn sorted(mut uris: Vec<String>) -> Vec<String> {
    uris.sort();
    uris
}

/// What each node should list while n3-n4 is cut: `left` on n1, n2, n3,
/// `right` on n4, n5.
fn halves<'a>(left: &'a Listing, right: &'a Listing) -> [(usize, &'a Listing); 5] {
    [(N1, left), (N2, left), (N3, left), (N4, right), (N5, right)]
}

/// The cut-and-heal scenario: `unregister` of n5's services are
/// unregistered during the partition; with `tombstone_ttl`, the test waits
/// until n4 and n5 have purged their tombstones before healing.
fn cut_and_heal(unregister: usize, tombstone_ttl: Option<Duration>) -> Result<()> {
    let mut builder = Cluster::builder(5)
        .chain()
        .set("sync.unreachable_grace", GRACE);
    if let Some(ttl) = tombstone_ttl {
        builder = builder.set("sync.tombstone_ttl", &format!("{}ms", ttl.as_millis()));
    }
    let mut cluster = builder.start()?;
    let left_uris = uris("n1-svc", PER_END);
    let right_uris = uris("n5-svc", PER_END);
    let at_n1 = cluster.registrar(N1)?;
    at_n1.register_all(&left_uris)?;
    let at_n5 = cluster.registrar(N5)?;
    at_n5.register_all(&right_uris)?;
    let left = listing_of("n1", &left_uris);
    let right = listing_of("n5", &right_uris);
    let both: Listing = left.clone().into_iter().chain(right.clone()).collect();
    cluster
        .wait_listings(&ALL, &both, CONVERGENCE)
        .context("both ends' services crossing the chain before the cut")?;

    // A subscriber on n1 from before the cut; its snapshot is both ends.
    let watcher = cluster.watch(N1, ".*")?;
    let snapshot = added(&watcher.events_since(0));
    ensure!(
        sorted(snapshot.clone()) == both.keys().cloned().collect::<Vec<_>>(),
        "n1's snapshot before the cut is not both ends' services: {snapshot:?}"
    );

    // Cut n3-n4: each half withdraws the other end's services after the
    // grace period.
    let cut_mark = watcher.mark();
    let cut_at = Instant::now();
    cluster.cut(N3, N4);
    cluster
        .wait_views(&halves(&left, &right), CONVERGENCE)
        .context("each half withdrawing the other end's services after the n3-n4 cut")?;
    let withdrawn_in = cut_at.elapsed();
    watcher.wait(cut_mark, DEADLINE, "the deletes of n5's services", |ev| {
        deleted(ev).len() >= PER_END
    })?;

    // During the partition n5 unregisters some of its services; n4 and n5
    // drop them, the other half does not hear of it.
    let gone: Vec<String> = sorted(right_uris.clone())[..unregister].to_vec();
    let marks = [cluster.daemon(N4)?.mark(), cluster.daemon(N5)?.mark()];
    at_n5.unregister_all(&gone)?;
    let deleted_at = SystemTime::now();
    let mut right_now = right.clone();
    right_now.retain(|uri, _| !gone.contains(uri));
    cluster
        .wait_views(&halves(&left, &right_now), CONVERGENCE)
        .context("n4 and n5 dropping the services n5 unregistered during the partition")?;
    if let Some(ttl) = tombstone_ttl {
        // n4 and n5 forget the deletes before the heal.
        let past_ttl = deleted_at + ttl + Duration::from_millis(100);
        for (i, mark) in [N4, N5].into_iter().zip(marks) {
            cluster
                .daemon(i)?
                .wait_log_from(mark, PURGE_DEADLINE, |l| {
                    l["message"] == "expired tombstones purged"
                        && log_time(l).is_some_and(|t| t >= past_ttl)
                })
                .with_context(|| format!("{} purging the deletes' tombstones", cluster.name(i)))?;
        }
    }
    let partitioned_for = cut_at.elapsed();

    // All n1's subscriber was told during the partition: the withdrawal of
    // n5's services, each once, and nothing of the deletes behind the cut.
    let during = watcher.events_since(cut_mark);
    ensure!(
        sorted(deleted(&during)) == sorted(right_uris.clone()) && added(&during).is_empty(),
        "n1's subscriber during the partition: expected exactly the deletes of n5's {PER_END} \
         services, got {}",
        describe(&during)
    );

    // Heal: every node lists n1's services and n5's remaining ones.
    let heal_mark = cut_mark + during.len();
    cluster.restore(N3, N4);
    let expected: Listing = left.clone().into_iter().chain(right_now.clone()).collect();
    let converged_in = cluster
        .wait_listings(&ALL, &expected, CONVERGENCE)
        .with_context(|| {
            format!(
                "every node listing both ends after the n3-n4 link was restored \
                 ({unregister} of n5's unregistered during the partition); \
                 n1's subscriber since the restore: {}",
                describe(&watcher.events_since(heal_mark))
            )
        })?;

    // A sentinel registered at n5 after the heal reaches n1's subscriber
    // behind anything the heal could bring: the events up to it are all
    // there is to check.
    let sentinel = "tcp://n5-sentinel.example:80".to_string();
    at_n5.register(&sentinel)?;
    let after_heal = watcher.wait(heal_mark, DEADLINE, "the sentinel's add", |ev| {
        added(ev).contains(&sentinel)
    })?;
    let returned: Vec<String> = right_now
        .keys()
        .cloned()
        .chain([sentinel.clone()])
        .collect();
    ensure!(
        sorted(added(&after_heal)) == sorted(returned) && deleted(&after_heal).is_empty(),
        "n1's subscriber after the heal: expected exactly the adds of n5's {} remaining \
         services and the sentinel, got {}",
        right_now.len(),
        describe(&after_heal)
    );
    let since_cut = watcher.events_since(cut_mark);
    let resurrected: Vec<String> = added(&since_cut)
        .into_iter()
        .filter(|uri| gone.contains(uri))
        .collect();
    ensure!(
        resurrected.is_empty(),
        "n1's subscriber was told of services unregistered during the partition: \
         {resurrected:?}"
    );
    eprintln!(
        "figure: chain cut n3-n4: halves withdrawn {:.2} s after the cut (grace {GRACE}); \
         partitioned {:.2} s with {unregister} deletes at n5{}; all 5 nodes listed {} services \
         {:.2} s after the restore; n1's subscriber checked over {} events",
        withdrawn_in.as_secs_f64(),
        partitioned_for.as_secs_f64(),
        if tombstone_ttl.is_some() {
            " (tombstones purged)"
        } else {
            ""
        },
        expected.len(),
        converged_in.as_secs_f64(),
        since_cut.len(),
    );
    drop((at_n1, at_n5, watcher));
    Ok(())
}

#[test]
fn cutting_the_middle_of_a_chain_and_healing_it_brings_both_ends_back_everywhere() -> Result<()> {
    cut_and_heal(0, None)
}

#[test]
fn deletes_made_while_a_chain_is_cut_hold_after_healing() -> Result<()> {
    cut_and_heal(UNREGISTERED, None)
}

#[test]
fn deletes_whose_tombstones_expired_while_a_chain_was_cut_do_not_come_back() -> Result<()> {
    cut_and_heal(UNREGISTERED, Some(SHORT_TTL))
}

/// The kill-and-restart scenario: n5 holds services; n1 registers
/// `REGISTRATIONS`, and n3 is killed after a third of them and restarted
/// after two thirds, so the last third are registered while it syncs
/// again. With `outlast_grace`, n3 stays dead until both sides have
/// withdrawn the other end's services.
fn kill_and_restart(outlast_grace: bool) -> Result<()> {
    const REGISTRATIONS: usize = 100;
    let mut cluster = Cluster::builder(5)
        .chain()
        .set("sync.unreachable_grace", GRACE)
        .start()?;
    let right_uris = uris("n5-svc", PER_END);
    let at_n5 = cluster.registrar(N5)?;
    at_n5.register_all(&right_uris)?;
    let right = listing_of("n5", &right_uris);
    cluster
        .wait_listings(&ALL, &right, CONVERGENCE)
        .context("n5's services crossing the chain")?;

    let left_uris = uris("n1-svc", REGISTRATIONS);
    let at_n1 = cluster.registrar(N1)?;
    let (kill_at, restart_at) = (REGISTRATIONS / 3, 2 * REGISTRATIONS / 3);
    let mut dead_for = Duration::ZERO;
    let mut killed = Instant::now();
    for (k, uri) in left_uris.iter().enumerate() {
        if k == kill_at {
            cluster.kill(N3)?;
            killed = Instant::now();
            if outlast_grace {
                let left = listing_of("n1", &left_uris[..k]);
                cluster
                    .wait_views(
                        &[(N1, &left), (N2, &left), (N4, &right), (N5, &right)],
                        CONVERGENCE,
                    )
                    .context("each side withdrawing the other end's services while n3 is dead")?;
            }
        }
        if k == restart_at {
            dead_for = killed.elapsed();
            cluster.restart(N3)?;
        }
        at_n1.register(uri)?;
    }
    let expected: Listing = listing_of("n1", &left_uris)
        .into_iter()
        .chain(right)
        .collect();
    let converged = cluster
        .wait_listings(&ALL, &expected, CONVERGENCE)
        .context("every node listing n1's and n5's services after n3's restart")?;
    let listings: Vec<Listing> = ALL
        .iter()
        .map(|&i| cluster.listing(i))
        .collect::<Result<_>>()?;
    ensure!(
        listings.iter().all(|l| l == &listings[0]),
        "listings differ in attributes"
    );
    eprintln!(
        "figure: chain kill -9 of n3 after {kill_at}/{REGISTRATIONS} registrations at n1, \
         dead {:.2} s (grace {GRACE}), restarted at {restart_at}; all 5 nodes listed {} \
         services {:.2} s after the last registration",
        dead_for.as_secs_f64(),
        expected.len(),
        converged.as_secs_f64(),
    );
    drop((at_n1, at_n5));
    Ok(())
}

#[test]
fn a_chain_converges_after_its_middle_node_is_killed_and_restarted_during_registrations()
-> Result<()> {
    kill_and_restart(false)
}

#[test]
fn a_chain_converges_after_its_middle_node_is_down_past_the_grace_during_registrations()
-> Result<()> {
    kill_and_restart(true)
}
