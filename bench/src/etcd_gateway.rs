//! The notify, fan-out and cluster workloads against etcd through its v3
//! JSON gateway ([`etcd_http`](super::etcd_http)), over HTTP/1.1 (`--etcd-api
//! gateway`); `etcd_grpc.rs` drives etcd's native gRPC API. Shaped like the
//! catalogue ones so `bench/compare-etcd.sh` can put the tables side by
//! side:
//!
//! * notify: put `/notify/<rate>/<i>`, a watcher on the prefix `/notify/`
//!   on another connection; put-to-event latency, closed loop;
//! * fan-out: N watchers with distinct ranges, one per watch stream (so
//!   one HTTP connection each), each put matching 10% of them (watcher `i`
//!   of group `g` watches `/rR/gG/` up to `/rR/gG/~i`, and puts go to
//!   `/rR/gG/eK`);
//! * cluster: put at `--etcd`, watch the prefix at `--etcd-watch`, open
//!   loop at a fixed rate and with `--inflight` puts in flight, each on its
//!   own connection.

use std::time::Instant;

use anyhow::{Context, Result};
use tokio::sync::Mutex;

use super::{
    BenchArgs, Workload,
    etcd_http::{Http, WatchStream, base64, prefix_end},
    fanout,
    measure::{Pace, closed_loop, latency_header, latency_row, open_loop, within},
};

/// Watchers per watch stream in the fan-out workload. Only one: etcd's
/// gateway (Go's HTTP/1.1 server) discards the unread part of a request
/// body once it starts the response, so create requests after the first
/// are lost unless the gateway happened to read them already.
const PER_STREAM: usize = 1;

/// Runs the selected workloads (notify, fanout, cluster) against etcd's
/// gateway at `url` (and `watch_url` for the cluster's watcher).
pub async fn run(args: &BenchArgs, url: &str, watch_url: &str) -> Result<()> {
    if args.selected(Workload::Notify) {
        notify(url, args.events, args.rate).await?;
    }
    if args.selected(Workload::Fanout) {
        fan_out(url, args.events, &args.subscriptions).await?;
    }
    if args.selected(Workload::Cluster) {
        cluster(url, watch_url, args).await?;
    }
    Ok(())
}

/// Waits for the put of `key` (its base64 form) on `stream`.
async fn wait_key(stream: &mut WatchStream, pending: &mut Vec<String>, key: &str) -> Result<()> {
    loop {
        if let Some(at) = pending.iter().position(|k| k == key) {
            pending.drain(..=at);
            return Ok(());
        }
        let (_, keys) = stream.next_events().await?;
        pending.extend(keys);
    }
}

async fn notify(url: &str, events: usize, rate: u32) -> Result<()> {
    let writer = Mutex::new(Http::connect(url).await?);
    let stream = Http::connect(url)
        .await?
        .watch(&[("/notify/".into(), prefix_end("/notify/"))])
        .await?;
    let watcher = Mutex::new((stream, Vec::new()));
    latency_header(&format!(
        "notify latency (etcd gateway: put -> watch event), {events} events"
    ));
    for (label, rate) in [
        (format!("{rate}/s"), Some(rate)),
        ("saturation".into(), None),
    ] {
        let measured = closed_loop(events, rate, |i| {
            let key = format!("/notify/{label}/{i}");
            let (writer, watcher) = (&writer, &watcher);
            async move {
                writer.lock().await.put(&key, "").await?;
                let mut guard = watcher.lock().await;
                let (stream, pending) = &mut *guard;
                wait_key(stream, pending, &base64(key.as_bytes())).await
            }
        })
        .await?;
        latency_row("notify", &label, measured);
    }
    Ok(())
}

async fn fan_out(url: &str, events: usize, counts: &[usize]) -> Result<()> {
    fanout::header(" (etcd gateway)", events, 1);
    let mut writer = Http::connect(url).await?;
    for (round, &count) in counts.iter().enumerate() {
        let ranges: Vec<(String, String)> = (0..count)
            .map(|i| {
                let prefix = format!("/r{round}/g{}/", i % 10);
                let end = format!("{prefix}~{i}");
                (prefix, end)
            })
            .collect();
        let mut streams = Vec::new();
        for part in ranges.chunks(PER_STREAM) {
            streams.push(Http::connect(url).await?.watch(part).await?);
        }
        let started = Instant::now();
        for k in 0..events {
            let group = fanout::group_of(count, k);
            writer.put(&format!("/r{round}/g{group}/e{k}"), "").await?;
        }
        // Each watcher expects the events of its group.
        let per_group: Vec<usize> = (0..10)
            .map(|g| {
                (0..events)
                    .filter(|&k| fanout::group_of(count, k) == g)
                    .count()
            })
            .collect();
        let mut delivered = 0;
        for (s, stream) in streams.iter_mut().enumerate() {
            let first = s * PER_STREAM;
            let last = (first + PER_STREAM).min(count);
            let want: usize = (first..last).map(|i| per_group[i % 10]).sum();
            let mut got = 0;
            while got < want {
                let (_, keys) = within("a fan-out event", stream.next_events()).await??;
                got += keys.len();
            }
            delivered += got;
        }
        let secs = started.elapsed().as_secs_f64();
        fanout::row(count, 1, events, delivered, secs);
    }
    Ok(())
}

async fn cluster(put_url: &str, watch_url: &str, args: &BenchArgs) -> Result<()> {
    let mut writers = Vec::new();
    for _ in 0..args.inflight.max(1) {
        writers.push(Mutex::new(Http::connect(put_url).await?));
    }
    let stream = Http::connect(watch_url)
        .await?
        .watch(&[("/cluster/".into(), prefix_end("/cluster/"))])
        .await?;
    let watcher = Mutex::new((stream, Vec::<String>::new()));
    writers[0].lock().await.put("/cluster/warm-up", "").await?;
    {
        let mut guard = watcher.lock().await;
        let (stream, pending) = &mut *guard;
        wait_key(stream, pending, &base64(b"/cluster/warm-up")).await?;
        pending.clear();
    }
    latency_header(&format!(
        "cluster propagation (etcd gateway: put at {put_url} -> watch event at {watch_url}), {} / {} events",
        args.events, args.saturation_events
    ));
    let runs = [
        (Pace::Rate(args.rate), args.events),
        (Pace::Saturate(args.inflight), args.saturation_events),
    ];
    for (round, (pace, events)) in runs.into_iter().enumerate() {
        let prefix = format!("/cluster/r{round}/");
        // Keys are matched back to their index by their base64 form.
        let index: std::collections::HashMap<String, usize> = (0..events)
            .map(|i| (base64(format!("{prefix}{i}").as_bytes()), i))
            .collect();
        let measured = open_loop(
            events,
            pace,
            |i| {
                let key = format!("{prefix}{i}");
                let writer = &writers[i % writers.len()];
                async move { writer.lock().await.put(&key, "").await }
            },
            || {
                let (watcher, index) = (&watcher, &index);
                async move {
                    let mut guard = watcher.lock().await;
                    let (stream, pending) = &mut *guard;
                    loop {
                        while let Some(key) = pending.pop() {
                            if let Some(&i) = index.get(&key) {
                                return Ok(i);
                            }
                        }
                        let (_, keys) = stream.next_events().await?;
                        pending.extend(keys.into_iter().rev());
                    }
                }
            },
        )
        .await
        .context("etcd cluster workload")?;
        latency_row("cluster", &pace.label(), measured);
    }
    Ok(())
}
