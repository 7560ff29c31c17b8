//! Initial sync: node A holds N services (registered by the bench over one
//! connection, pipelined); node B starts with A as its peer (TLS). The time
//! until B holds them all is taken from B's own log: the instant it logs
//! "ready" (its first initial sync is done), checked by the count at the
//! end of a snapshot of everything at B. Peak RSS (`VmHWM`) of both nodes.

use std::{collections::BTreeMap, time::Instant};

use anyhow::{Context, Result, bail};
use futures_util::{StreamExt, TryStreamExt, stream};

use super::{
    measure::within,
    node::BenchNode,
    notify::wait_snapshot_end,
    peers::{Neighbour, Pki, ports, start_peer},
};
use catalogue_client::{Client, SubscriptionEvent};

/// Registrations in flight while filling A.
const FILL_INFLIGHT: usize = 256;

/// Runs the workload with `services` services at A.
pub async fn run(services: usize, extra: &[String]) -> Result<()> {
    let pki = Pki::new()?;
    let p = ports(2)?;
    let a = start_peer(
        &pki,
        "a",
        p[0],
        &[Neighbour {
            name: "b",
            dial: None,
        }],
        extra,
    )
    .await
    .context("starting node a")?;
    measure(&pki, &p, &a, services, extra).await
}

async fn measure(
    pki: &Pki,
    p: &[u16],
    a: &BenchNode,
    services: usize,
    extra: &[String],
) -> Result<()> {
    let registrar = Client::connect(&a.options()).await?;
    let filling = Instant::now();
    stream::iter(0..services)
        .map(|i| {
            let registrar = &registrar;
            async move {
                registrar
                    .register(&format!("tcp://sync/{i}"), BTreeMap::new())
                    .await
            }
        })
        .buffer_unordered(FILL_INFLIGHT)
        .try_collect::<()>()
        .await?;
    let fill_secs = filling.elapsed().as_secs_f64();
    let dial_a = Neighbour {
        name: "a",
        dial: Some(p[0]),
    };
    let mut b = start_peer(pki, "b", p[1], &[dial_a], extra).await?;
    let ready = b.wait_log("ready").await?;
    let watcher = Client::connect(&b.options()).await?;
    let mut sub = watcher.subscribe("^tcp://sync/").await?;
    let mut held = wait_snapshot_end(&mut sub).await?;
    let mut done = ready;
    // Should the ready line come before the last batch is applied, the
    // rest arrives as live events: count them, and time the last.
    while (held as usize) < services {
        match within("a service at B", sub.next()).await? {
            Some(SubscriptionEvent::Added { .. }) => {
                held += 1;
                done = Instant::now();
            }
            Some(_) => continue,
            None => bail!("the subscription at B ended with {held} of {services}"),
        }
    }
    let secs = done.duration_since(b.spawned).as_secs_f64();
    let after_listen = done.saturating_duration_since(b.listening).as_secs_f64();
    println!("\ninitial sync: B joins A holding {services} services (TLS, loopback)");
    println!(
        "{:>10} {:>14} {:>18} {:>14} {:>14}",
        "services", "sync s", "after listen s", "peak RSS A MiB", "peak RSS B MiB"
    );
    let (peak_a, peak_b) = (
        a.peak_rss_kib()? as f64 / 1024.0,
        b.peak_rss_kib()? as f64 / 1024.0,
    );
    println!("{services:>10} {secs:>14.3} {after_listen:>18.3} {peak_a:>14.1} {peak_b:>14.1}");
    super::report::record(
        "sync",
        &services.to_string(),
        &[
            ("sync_s", secs),
            ("after_listen_s", after_listen),
            ("peak_rss_a_mib", peak_a),
            ("peak_rss_b_mib", peak_b),
            ("fill_per_s", services as f64 / fill_secs),
        ],
    );
    println!(
        "(filling A took {fill_secs:.2} s = {:.0} registrations/s; sync s counts from B's spawn)",
        services as f64 / fill_secs
    );
    Ok(())
}
