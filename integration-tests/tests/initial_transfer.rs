//! What an initial sync transfers, counted on real nodes: when a link comes
//! up between two nodes that already reached each other through a third,
//! their digests agree and no service entry crosses it; when one of them
//! was cut off and missed changes, exactly those cross (its completeness
//! mark for the origin tells the other side that it lacks nothing older),
//! and nothing crosses back.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use catalogue::client::Client;
use catalogue_integration_tests::{Cluster, DEADLINE, link_changed, runtime, unlinked};

/// Waits for node `i`'s "initial batch planned" line for `peer` after
/// `mark` and returns how many service entries that batch holds.
fn planned_services(cluster: &mut Cluster, i: usize, mark: usize, peer: &str) -> Result<u64> {
    let line = cluster
        .daemon(i)?
        .wait_log_from(mark, DEADLINE, |l| {
            l["message"] == "initial batch planned" && l["peer"] == peer
        })
        .with_context(|| format!("node {i} planning for {peer}"))?;
    line["services"].as_u64().context("no services count")
}

#[test]
fn a_link_between_reachable_nodes_transfers_no_service_and_a_stale_one_only_what_it_lacks()
-> Result<()> {
    let mut cluster = Cluster::builder(3).start()?;
    let (n1, n2, n3) = (0, 1, 2);
    let rt = runtime()?;
    let registrar = rt.block_on(Client::connect(&cluster.client_options(n1)))?;
    for i in 0..300 {
        let uri = format!("tcp://n1-svc-{i}.example:80");
        rt.block_on(registrar.register(&uri, BTreeMap::new()))?;
    }
    for i in [n2, n3] {
        cluster.wait_listing(i, DEADLINE, |l| l.len() == 300)?;
    }

    // Cut n1-n3 and restore it: n1 and n3 reached each other through n2
    // all along, so their initial batches carry no service.
    let marks = [cluster.daemon(n1)?.mark(), cluster.daemon(n3)?.mark()];
    cluster.cut(n1, n3);
    cluster
        .daemon(n3)?
        .wait_log_from(marks[1], DEADLINE, link_changed("n1", "n3", "delete"))?;
    cluster.restore(n1, n3);
    let from_n1 = planned_services(&mut cluster, n1, marks[0], "n3")?;
    let from_n3 = planned_services(&mut cluster, n3, marks[1], "n1")?;
    assert_eq!((from_n1, from_n3), (0, 0), "service entries planned");

    // Cut n3 off entirely; n1 registers 50 more and unregisters 10. When
    // one link comes back, n3 receives those 60 changes, not the table.
    let mark = cluster.daemon(n3)?.mark();
    cluster.partition(&[n3]);
    cluster
        .daemon(n3)?
        .wait_log_from(mark, DEADLINE, unlinked("n1"))?;
    cluster
        .daemon(n3)?
        .wait_log_from(mark, DEADLINE, unlinked("n2"))?;
    for i in 300..350 {
        let uri = format!("tcp://n1-svc-{i}.example:80");
        rt.block_on(registrar.register(&uri, BTreeMap::new()))?;
    }
    for i in 0..10 {
        rt.block_on(registrar.unregister(&format!("tcp://n1-svc-{i}.example:80")))?;
    }
    cluster.wait_listing(n2, DEADLINE, |l| l.len() == 340)?;
    let marks = [cluster.daemon(n1)?.mark(), cluster.daemon(n3)?.mark()];
    cluster.restore(n1, n3);
    let from_n1 = planned_services(&mut cluster, n1, marks[0], "n3")?;
    let from_n3 = planned_services(&mut cluster, n3, marks[1], "n1")?;
    assert_eq!(from_n1, 60, "50 adds and 10 deletes n3 lacks");
    assert_eq!(from_n3, 0, "n3 holds nothing n1 lacks");
    cluster.wait_listing(n3, DEADLINE, |l| l.len() == 340)?;
    eprintln!(
        "figure: initial transfer: 0 service entries between nodes already reachable; \
         {from_n1} to a node that missed 60 changes (10 of them deletes) of a 340-service table, \
         {from_n3} back"
    );
    drop(registrar);
    Ok(())
}
