//! The notify, fan-out and cluster workloads against etcd's native gRPC
//! API (`--etcd-api grpc`), with the `etcd-client` crate (tonic over
//! HTTP/2, no TLS), used as etcd's own Go client uses it:
//!
//! * notify: put `/notify/<rate>/<i>` on one client (one HTTP/2
//!   connection), a watcher on the prefix `/notify/` on another client;
//!   put-to-event latency, closed loop;
//! * fan-out: N watchers with distinct ranges (watcher `i` of group `g`
//!   watches `/rR/gG/` up to `/rR/gG/~i`, as through the gateway), all
//!   multiplexed on one watch stream of one client, as clientv3 does for
//!   the watchers of one context; each put (to `/rR/gG/eK`) matches 10% of
//!   them, and the stream is read while the puts go out;
//! * cluster: put at `--etcd`, watch the prefix at `--etcd-watch`, open
//!   loop at a fixed rate and with `--inflight` puts in flight, all
//!   multiplexed on one connection.

use std::{
    cell::Cell,
    collections::{HashMap, VecDeque},
};

use anyhow::{Context, Result, bail};
use etcd_client::{Client, KvClient, WatchOptions, WatchRequestSender, WatchResponseStream};
use tokio::sync::Mutex;

use super::{
    BenchArgs, Workload, fanout,
    measure::{Pace, closed_loop, latency_header, latency_row, open_loop, within},
};

/// Runs the selected workloads (notify, fanout, cluster) against etcd's
/// gRPC API at `url` (and `watch_url` for the cluster's watcher).
pub async fn run(args: &BenchArgs, url: &str, watch_url: &str) -> Result<()> {
    if args.selected(Workload::Notify) {
        notify(url, args.events, args.rate).await?;
    }
    if args.selected(Workload::Fanout) {
        fan_out(url, args.events, &args.subscriptions, args.inflight).await?;
    }
    if args.selected(Workload::Cluster) {
        cluster(url, watch_url, args).await?;
    }
    Ok(())
}

async fn connect(url: &str) -> Result<Client> {
    Client::connect([url], None)
        .await
        .with_context(|| format!("connecting to etcd at {url} (gRPC)"))
}

/// One watch stream and the keys it delivered that nobody took yet.
struct Watch {
    /// Kept so the stream stays open in both directions.
    _requests: WatchRequestSender,
    responses: WatchResponseStream,
    pending: VecDeque<Vec<u8>>,
}

impl Watch {
    /// Opens a stream watching every key under `prefix` and waits until
    /// etcd confirms the watcher.
    async fn prefix(client: &Client, prefix: &str) -> Result<Watch> {
        let stream = client
            .watch_client()
            .watch(prefix, Some(WatchOptions::new().with_prefix()))
            .await?;
        let (requests, mut responses) = stream.split();
        loop {
            let response = within("etcd's watch confirmation", responses.message())
                .await??
                .context("etcd ended the watch stream")?;
            if response.created() {
                break;
            }
        }
        Ok(Watch {
            _requests: requests,
            responses,
            pending: VecDeque::new(),
        })
    }

    /// The keys of the next response that carries events.
    async fn next_keys(responses: &mut WatchResponseStream) -> Result<Vec<Vec<u8>>> {
        loop {
            let Some(response) = responses.message().await? else {
                bail!("etcd ended the watch stream");
            };
            if response.canceled() {
                bail!("etcd canceled a watcher: {}", response.cancel_reason());
            }
            if !response.events().is_empty() {
                return Ok(response
                    .events()
                    .iter()
                    .filter_map(|e| e.kv())
                    .map(|kv| kv.key().to_vec())
                    .collect());
            }
        }
    }

    /// Waits for the put of `key`, dropping the keys before it.
    async fn wait_key(&mut self, key: &[u8]) -> Result<()> {
        loop {
            if let Some(at) = self.pending.iter().position(|k| k == key) {
                self.pending.drain(..=at);
                return Ok(());
            }
            let keys = Self::next_keys(&mut self.responses).await?;
            self.pending.extend(keys);
        }
    }
}

async fn put(writer: &Mutex<KvClient>, key: &str) -> Result<()> {
    // A clone shares the connection, so puts can be in flight together.
    let mut kv = writer.lock().await.clone();
    kv.put(key, "", None).await?;
    Ok(())
}

async fn notify(url: &str, events: usize, rate: u32) -> Result<()> {
    let writer = Mutex::new(connect(url).await?.kv_client());
    let watcher = Mutex::new(Watch::prefix(&connect(url).await?, "/notify/").await?);
    latency_header(&format!(
        "notify latency (etcd gRPC: put -> watch event), {events} events"
    ));
    for (label, rate) in [
        (format!("{rate}/s"), Some(rate)),
        ("saturation".into(), None),
    ] {
        let measured = closed_loop(events, rate, |i| {
            let key = format!("/notify/{label}/{i}");
            let (writer, watcher) = (&writer, &watcher);
            async move {
                put(writer, &key).await?;
                watcher.lock().await.wait_key(key.as_bytes()).await
            }
        })
        .await?;
        latency_row("notify", &label, measured);
    }
    Ok(())
}

async fn fan_out(url: &str, events: usize, counts: &[usize], inflight: usize) -> Result<()> {
    let writer = connect(url).await?.kv_client();
    let watchers = connect(url).await?;
    let mut round = 0;
    for pass in fanout::passes(inflight) {
        fanout::header(" (etcd gRPC, one watch stream)", events, pass);
        for &count in counts {
            let options = |i: usize| {
                let prefix = format!("/r{round}/g{}/", i % 10);
                let end = format!("{prefix}~{i}");
                (prefix, WatchOptions::new().with_range(end))
            };
            let (key, first) = options(0);
            let stream = watchers.watch_client().watch(key, Some(first)).await?;
            let (mut requests, mut responses) = stream.split();
            // Create the other watchers while reading etcd's confirmations,
            // so neither side waits for the other's buffers to drain.
            let creating = async {
                for i in 1..count {
                    let (key, more) = options(i);
                    requests.watch(key, Some(more)).await?;
                }
                Ok::<_, anyhow::Error>(())
            };
            let confirming = async {
                let mut created = 0;
                while created < count {
                    let response = within("etcd's watch confirmations", responses.message())
                        .await??
                        .context("etcd ended the watch stream")?;
                    if response.canceled() {
                        bail!("etcd refused a watcher: {}", response.cancel_reason());
                    }
                    if response.created() {
                        created += 1;
                    }
                }
                Ok(())
            };
            tokio::try_join!(creating, confirming)?;
            let expected = fanout::expected(count, events);
            let delivered = Cell::new(0usize);
            let putting = |k: usize| {
                let key = format!("/r{round}/g{}/e{k}", fanout::group_of(count, k));
                let mut writer = writer.clone();
                async move {
                    writer.put(key, "", None).await?;
                    Ok(())
                }
            };
            let receiving = async {
                while delivered.get() < expected {
                    let keys = Watch::next_keys(&mut responses).await?;
                    delivered.set(delivered.get() + keys.len());
                }
                Ok(())
            };
            let shape = fanout::Shape {
                count,
                events,
                inflight: pass,
                expected,
            };
            fanout::measure(shape, putting, receiving, &delivered).await?;
            drop(requests);
            round += 1;
        }
    }
    Ok(())
}

async fn cluster(put_url: &str, watch_url: &str, args: &BenchArgs) -> Result<()> {
    let writer = Mutex::new(connect(put_url).await?.kv_client());
    let watcher = Mutex::new(Watch::prefix(&connect(watch_url).await?, "/cluster/").await?);
    put(&writer, "/cluster/warm-up").await?;
    {
        let mut watch = watcher.lock().await;
        watch.wait_key(b"/cluster/warm-up").await?;
        watch.pending.clear();
    }
    latency_header(&format!(
        "cluster propagation (etcd gRPC: put at {put_url} -> watch event at {watch_url}), {} / {} events",
        args.events, args.saturation_events
    ));
    let runs = [
        (Pace::Rate(args.rate), args.events),
        (Pace::Saturate(args.inflight), args.saturation_events),
    ];
    for (round, (pace, events)) in runs.into_iter().enumerate() {
        let prefix = format!("/cluster/r{round}/");
        let index: HashMap<Vec<u8>, usize> = (0..events)
            .map(|i| (format!("{prefix}{i}").into_bytes(), i))
            .collect();
        let measured = open_loop(
            events,
            pace,
            |i| {
                let key = format!("{prefix}{i}");
                let writer = &writer;
                async move { put(writer, &key).await }
            },
            || {
                let (watcher, index) = (&watcher, &index);
                async move {
                    let mut watch = watcher.lock().await;
                    loop {
                        while let Some(key) = watch.pending.pop_front() {
                            if let Some(&i) = index.get(&key) {
                                return Ok(i);
                            }
                        }
                        let keys = Watch::next_keys(&mut watch.responses).await?;
                        watch.pending.extend(keys);
                    }
                }
            },
        )
        .await
        .context("etcd cluster workload (gRPC)")?;
        latency_row("cluster", &pace.label(), measured);
    }
    Ok(())
}
