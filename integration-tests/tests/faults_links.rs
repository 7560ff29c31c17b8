//! Single-link faults through the harness proxies: in a three-node mesh a
//! cut link is routed around (the origin stays reachable through the third
//! node, nothing is withdrawn, new services still arrive), and a stalled
//! link, which carries nothing but stays open, is found out by the
//! keepalive; once both of n1's links are down its services are withdrawn,
//! and they come back when the links are restored.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context, Result, bail};
use catalogue::client::Client;
use catalogue_integration_tests::{Cluster, DEADLINE, link_changed, runtime};

/// Grace period of the test cluster.
const GRACE: Duration = Duration::from_millis(300);

#[test]
fn a_cut_link_is_routed_around_and_a_stalled_one_is_found_out() -> Result<()> {
    let mut cluster = Cluster::builder(3)
        .set("sync.unreachable_grace", "300ms")
        .start()?;
    let (n1, n2, n3) = (0, 1, 2);
    let rt = runtime()?;
    let registrar = rt.block_on(Client::connect(&cluster.client_options(n1)))?;
    let first = "tcp://n1-first.example:80";
    rt.block_on(registrar.register(first, BTreeMap::new()))?;
    cluster.wait_listing(n2, DEADLINE, |l| l.contains_key(first))?;

    // Cut n1-n2: n2 still reaches n1 through n3.
    let mark = cluster.daemon(n2)?.mark();
    cluster.cut(n1, n2);
    cluster
        .daemon(n2)?
        .wait_log_from(mark, DEADLINE, link_changed("n1", "n2", "delete"))?;
    let second = "tcp://n1-second.example:80";
    rt.block_on(registrar.register(second, BTreeMap::new()))?;
    let relayed = cluster.wait_listing(n2, DEADLINE, |l| l.contains_key(second))?;
    // Observed for three grace periods: n1's services stay listed at n2.
    // (A window for something that must not happen, not a wait.)
    let withdrawn = cluster.wait_listing(n2, 3 * GRACE, |l| {
        !l.contains_key(first) || !l.contains_key(second)
    });
    if withdrawn.is_ok() {
        bail!("n2 withdrew n1's services although n1 is reachable through n3");
    }
    if let Some(line) = cluster.daemon(n2)?.logged()[mark..]
        .iter()
        .find(|l| l["message"] == "origin unreachable: its services are withdrawn")
    {
        bail!("n2 withdrew an origin over a single cut link: {line}");
    }

    // Stall n1-n3 as well: no bytes, no close. The keepalive finds out,
    // and then n1 is unreachable from n2 and n3.
    let marks = [cluster.daemon(n2)?.mark(), cluster.daemon(n3)?.mark()];
    cluster.proxy(n1, n3).stall();
    let found_out = std::time::Instant::now();
    cluster
        .daemon(n3)?
        .wait_log_from(marks[1], Duration::from_secs(15), |l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("peer link silent"))
                && l["peer"] == "n1"
        })
        .context("n3 noticing the stalled link")?;
    let silent_after = found_out.elapsed();
    for (i, mark) in [n2, n3].into_iter().zip(marks) {
        cluster
            .daemon(i)?
            .wait_log_from(mark, DEADLINE, |l| {
                l["message"] == "origin unreachable: its services are withdrawn"
                    && l["origin"] == "n1"
            })
            .with_context(|| format!("node {i} withdrawing n1"))?;
        cluster.wait_listing(i, DEADLINE, |l| l.is_empty())?;
    }

    // Restore both links: n1's services are back everywhere.
    cluster.heal();
    let back = cluster.wait_listing(n2, DEADLINE, |l| {
        l.contains_key(first) && l.contains_key(second)
    })?;
    cluster.wait_listing(n3, DEADLINE, |l| {
        l.contains_key(first) && l.contains_key(second)
    })?;
    eprintln!(
        "figure: single links: a service crossed the cut n1-n2 link through n3 in {:.2} s; \
         a stalled link was closed by the keepalive after {:.2} s; n1's services back at n2 \
         {:.2} s after the links were restored",
        relayed.as_secs_f64(),
        silent_after.as_secs_f64(),
        back.as_secs_f64(),
    );
    drop(registrar);
    Ok(())
}
