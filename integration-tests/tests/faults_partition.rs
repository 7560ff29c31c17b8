//! Fault scenario 2, partition and heal: a five-node cluster is split 2|3
//! by cutting every crossing link at the proxies. Each side withdraws the
//! other side's services after `sync.unreachable_grace`, both sides
//! register and unregister meanwhile, and once the links are restored every
//! node lists the same table: the other side's services are back, and
//! what was deleted during the partition stays deleted.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use catalogue::client::Client;
use catalogue_integration_tests::{Cluster, DEADLINE, Listed, Listing, runtime};

/// Bound on convergence after the partition heals, and on each side
/// withdrawing the other's services.
const CONVERGENCE: Duration = Duration::from_secs(20);
/// Services each node registers before the partition.
const PER_NODE: usize = 40;
/// Of those, how many each node unregisters in each of two rounds during
/// the partition (registering as many new ones).
const CHURN: usize = 10;

fn uri(node: &str, phase: &str, k: usize) -> String {
    format!("tcp://{node}-{phase}-{k}.example:80")
}

/// The entries of `full` whose origin is one of `origins`.
fn only(full: &Listing, origins: &[String]) -> Listing {
    full.iter()
        .filter(|(_, s)| origins.contains(&s.origin))
        .map(|(u, s)| (u.clone(), s.clone()))
        .collect()
}

#[test]
fn a_partitioned_cluster_withdraws_churns_and_converges_after_healing() -> Result<()> {
    let mut cluster = Cluster::builder(5)
        .set("sync.unreachable_grace", "500ms")
        .start()?;
    let names: Vec<String> = (0..5).map(|i| cluster.name(i).to_string()).collect();
    let all: Vec<usize> = (0..5).collect();
    let (left, right): (Vec<usize>, Vec<usize>) = ((0..2).collect(), (2..5).collect());
    let rt = runtime()?;

    // One registering connection per node, with attributes saying which
    // phase registered each service.
    let mut expected = Listing::new();
    let clients: Vec<Client> = rt.block_on(async {
        let mut clients = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let client = Client::connect(&cluster.client_options(i)).await?;
            for k in 0..PER_NODE {
                let attrs = BTreeMap::from([("phase".to_string(), "before".to_string())]);
                client.register(&uri(name, "svc", k), attrs.clone()).await?;
                expected.insert(
                    uri(name, "svc", k),
                    Listed {
                        origin: name.clone(),
                        attrs,
                    },
                );
            }
            clients.push(client);
        }
        Ok::<_, anyhow::Error>(clients)
    })?;
    cluster
        .wait_listings(&all, &expected, CONVERGENCE)
        .context("before the partition")?;

    // Split n1 n2 | n3 n4 n5; each side keeps only its own services after
    // the grace period.
    let marks: Vec<usize> = all
        .iter()
        .map(|&i| cluster.daemon(i).map(|d| d.mark()))
        .collect::<Result<_>>()?;
    let cut_at = Instant::now();
    cluster.partition(&left);
    let left_names: Vec<String> = left.iter().map(|&i| names[i].clone()).collect();
    let right_names: Vec<String> = right.iter().map(|&i| names[i].clone()).collect();

    // Churn on both sides while they cannot see each other: each node
    // unregisters some services and registers new ones, once right after
    // the cut and once more after both sides have withdrawn the other's.
    let mut deleted = Vec::new();
    let mut churn = |round: usize, expected: &mut Listing| {
        rt.block_on(async {
            for (i, client) in clients.iter().enumerate() {
                for k in round * CHURN..(round + 1) * CHURN {
                    let gone = uri(&names[i], "svc", k);
                    client.unregister(&gone).await?;
                    expected.remove(&gone);
                    deleted.push(gone);
                    let attrs = BTreeMap::from([("phase".to_string(), format!("during-{round}"))]);
                    client
                        .register(&uri(&names[i], "new", k), attrs.clone())
                        .await?;
                    expected.insert(
                        uri(&names[i], "new", k),
                        Listed {
                            origin: names[i].clone(),
                            attrs,
                        },
                    );
                }
            }
            Ok::<_, anyhow::Error>(())
        })
    };
    churn(0, &mut expected)?;
    let split = |cluster: &Cluster, expected: &Listing| -> Result<Duration> {
        let left_view = only(expected, &left_names);
        let right_view = only(expected, &right_names);
        cluster
            .wait_listings(&left, &left_view, CONVERGENCE)
            .context("left side during the partition")?;
        cluster
            .wait_listings(&right, &right_view, CONVERGENCE)
            .context("right side during the partition")
    };
    split(&cluster, &expected)?;
    let withdrawn_in = cut_at.elapsed();
    // The withdrawal was the grace rule, logged per origin on every node.
    for &i in &all {
        let others: &[String] = if left.contains(&i) {
            &right_names
        } else {
            &left_names
        };
        let daemon = cluster.daemon(i)?;
        for origin in others {
            daemon
                .wait_log_from(marks[i], DEADLINE, |l| {
                    l["message"] == "origin unreachable: its services are withdrawn"
                        && l["origin"] == origin.as_str()
                })
                .with_context(|| format!("{} withdrawing {origin}", names[i]))?;
        }
    }
    churn(1, &mut expected)?;
    split(&cluster, &expected)?;
    let partitioned_for = cut_at.elapsed();

    // Heal: everything returns, the deletes hold.
    cluster.heal();
    let converged = cluster
        .wait_listings(&all, &expected, CONVERGENCE)
        .context("after healing")?;
    for i in all.iter().copied() {
        let listing = cluster.listing(i)?;
        let resurrected: Vec<&String> = deleted
            .iter()
            .filter(|u| listing.contains_key(*u))
            .collect();
        assert!(
            resurrected.is_empty(),
            "{} lists services deleted during the partition: {resurrected:?}",
            names[i]
        );
    }
    eprintln!(
        "figure: partition 2|3: both sides had withdrawn the other's services {:.2} s after \
         the cut (grace 500ms); partitioned for {:.2} s; healed cluster converged in {:.2} s \
         ({} services compared on 5 nodes, {} deleted during the partition)",
        withdrawn_in.as_secs_f64(),
        partitioned_for.as_secs_f64(),
        converged.as_secs_f64(),
        expected.len(),
        deleted.len(),
    );
    drop(clients);
    Ok(())
}
