//! The client library's watch against real daemons: a program that loses
//! its connection, or whose node restarts, ends with exactly the right set
//! and is told every removal as a delete, never an add twice. Three paths:
//! its node restarted (a new epoch: reset and a fresh snapshot), its
//! connection cut while the node stays up (the changes since its revision
//! replayed, no snapshot), and a connection cut for longer than the
//! node's history window (reset). Then `catalogue subscribe --json`, which
//! runs the same watch: its JSON Lines mark the reset and report the
//! delete after its node restarts, and `--once` prints the snapshot and
//! exits. Last, the same on the wire, frame by frame: a resume replays
//! exactly the changes since, a stale epoch gets a reset.

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use catalogue::client::{ConnectOptions, Endpoint, SyncKind};
use catalogue_integration_tests::{Cli, Cluster, DEADLINE, Proxy, WatchLog};

fn set(uris: &[&str]) -> BTreeSet<String> {
    uris.iter().map(|u| u.to_string()).collect()
}

/// A watch over TCP to node `i` through a proxy the test can cut.
fn proxied_watch(cluster: &mut Cluster, i: usize) -> Result<(Proxy, WatchLog)> {
    let client = cluster.daemon(i)?.client.clone();
    let proxy = Proxy::start(&client)?;
    let options = ConnectOptions::new(Endpoint::Tcp(proxy.addr().to_string()));
    let watch = WatchLog::start(&options, "^tcp://")?;
    Ok((proxy, watch))
}

#[test]
fn a_watch_reports_a_delete_made_while_its_node_was_down() -> Result<()> {
    let mut cluster = Cluster::builder(2).start()?;
    let registrar = cluster.registrar(0)?;
    registrar.register_all(&["tcp://gone:1", "tcp://kept:1"])?;
    let watch = WatchLog::start(&cluster.client_options(1), "^tcp://")?;
    let both = set(&["tcp://gone:1", "tcp://kept:1"]);
    watch.wait(0, DEADLINE, "both services", |r| r.set == both)?;

    let mark = watch.mark();
    cluster.stop(1)?;
    watch.wait(mark, DEADLINE, "the lost connection", |r| {
        r.disconnects_since(mark) > 0
    })?;
    registrar.unregister("tcp://gone:1")?;
    cluster.restart(1)?;

    let kept = set(&["tcp://kept:1"]);
    let seen = watch.wait(mark, DEADLINE, "the delete and the kept service", |r| {
        r.set == kept
            && r.deleted_since(mark).contains(&"tcp://gone:1".to_string())
            && r.syncs_since(mark).contains(&SyncKind::Reset)
    })?;
    ensure!(
        seen.contradictions.is_empty(),
        "the watch contradicted itself: {:?}",
        seen.contradictions
    );
    Ok(())
}

#[test]
fn a_watch_cut_off_briefly_replays_the_changes_without_a_snapshot() -> Result<()> {
    let mut cluster = Cluster::builder(2).start()?;
    let far = cluster.registrar(0)?;
    let near = cluster.registrar(1)?;
    far.register("tcp://far-old:1")?;
    near.register("tcp://near-old:1")?;
    let (proxy, watch) = proxied_watch(&mut cluster, 1)?;
    let old = set(&["tcp://far-old:1", "tcp://near-old:1"]);
    watch.wait(0, DEADLINE, "both old services", |r| r.set == old)?;

    let mark = watch.mark();
    proxy.cut();
    watch.wait(mark, DEADLINE, "the lost connection", |r| {
        r.disconnects_since(mark) > 0
    })?;
    // Changes at the watched node and at the other one while cut off.
    far.unregister("tcp://far-old:1")?;
    near.unregister("tcp://near-old:1")?;
    far.register("tcp://far-new:1")?;
    near.register("tcp://near-new:1")?;
    let new = set(&["tcp://far-new:1", "tcp://near-new:1"]);
    cluster.wait_listing(1, DEADLINE, |l| {
        l.keys().cloned().collect::<BTreeSet<_>>() == new
    })?;
    proxy.restore();

    let seen = watch.wait(mark, DEADLINE, "the changes replayed", |r| {
        r.set == new && !r.syncs_since(mark).is_empty()
    })?;
    let deleted: BTreeSet<String> = seen.deleted_since(mark).into_iter().collect();
    ensure!(
        deleted == old,
        "each removal is told as a delete: {deleted:?}"
    );
    ensure!(
        seen.syncs_since(mark)
            .iter()
            .all(|k| *k == SyncKind::Resumed),
        "resumed without a snapshot: {:?}",
        seen.syncs_since(mark)
    );
    ensure!(
        seen.contradictions.is_empty(),
        "the watch contradicted itself: {:?}",
        seen.contradictions
    );
    Ok(())
}

#[test]
fn a_watch_away_longer_than_the_history_gets_a_reset_with_the_differences() -> Result<()> {
    let mut cluster = Cluster::builder(1)
        .set("limits.subscription_history", "2")
        .start()?;
    let registrar = cluster.registrar(0)?;
    registrar.register_all(&["tcp://a:1", "tcp://b:1"])?;
    let (proxy, watch) = proxied_watch(&mut cluster, 0)?;
    watch.wait(0, DEADLINE, "a and b", |r| {
        r.set == set(&["tcp://a:1", "tcp://b:1"])
    })?;

    let mark = watch.mark();
    proxy.cut();
    watch.wait(mark, DEADLINE, "the lost connection", |r| {
        r.disconnects_since(mark) > 0
    })?;
    // Three changes: more than the two the node keeps.
    registrar.unregister("tcp://a:1")?;
    registrar.register_all(&["tcp://c:1", "tcp://d:1"])?;
    proxy.restore();

    let want = set(&["tcp://b:1", "tcp://c:1", "tcp://d:1"]);
    let seen = watch.wait(mark, DEADLINE, "the reset", |r| {
        r.set == want && r.syncs_since(mark).contains(&SyncKind::Reset)
    })?;
    ensure!(
        seen.deleted_since(mark) == ["tcp://a:1"],
        "{:?}",
        seen.events
    );
    let added: BTreeSet<String> = seen.added_since(mark).into_iter().collect();
    ensure!(added == set(&["tcp://c:1", "tcp://d:1"]), "{added:?}");
    ensure!(
        seen.contradictions.is_empty(),
        "the watch contradicted itself: {:?}",
        seen.contradictions
    );
    Ok(())
}

/// The next JSON Lines record of a running `catalogue subscribe --json`.
fn record(cli: &mut catalogue_integration_tests::RunningCli) -> Result<serde_json::Value> {
    let line = cli.next_line(DEADLINE)?;
    serde_json::from_str(&line).with_context(|| format!("not a JSON record: {line}"))
}

#[test]
fn subscribe_json_reports_a_reset_and_the_delete_after_its_node_restarts() -> Result<()> {
    let mut cluster = Cluster::builder(1).start()?;
    let socket = cluster.socket(0).display().to_string();
    let registrar = cluster.registrar(0)?;
    registrar.register("tcp://x:1")?;
    let mut sub = Cli::new(["subscribe", "^tcp://", "--json", "--socket", &socket]).spawn()?;
    let added = record(&mut sub)?;
    ensure!(
        added["event"] == "added" && added["uri"] == "tcp://x:1",
        "{added}"
    );
    let end = record(&mut sub)?;
    ensure!(
        end["event"] == "snapshot_end" && end["kind"] == "snapshot" && end["count"] == 1,
        "{end}"
    );
    let epoch = end["epoch"].clone();

    // The node restarts without the service (its registrar went with it).
    cluster.stop(0)?;
    drop(registrar);
    cluster.restart(0)?;
    let reset = record(&mut sub)?;
    ensure!(reset["event"] == "reset", "{reset}");
    ensure!(reset["epoch"] != epoch, "a new epoch: {reset} after {end}");
    let deleted = record(&mut sub)?;
    ensure!(
        deleted["event"] == "deleted" && deleted["uri"] == "tcp://x:1",
        "{deleted}"
    );
    let end = record(&mut sub)?;
    ensure!(
        end["event"] == "snapshot_end" && end["kind"] == "reset" && end["count"] == 0,
        "{end}"
    );
    Ok(())
}

#[test]
fn subscribe_once_prints_the_snapshot_and_exits() -> Result<()> {
    let cluster = Cluster::builder(1).start()?;
    let socket = cluster.socket(0).display().to_string();
    let registrar = cluster.registrar(0)?;
    registrar.register_all(&["tcp://a:1", "tcp://b:1", "http://c:1"])?;
    let out = Cli::new([
        "subscribe",
        "^tcp://",
        "--once",
        "--json",
        "--socket",
        &socket,
    ])
    .output(DEADLINE)?;
    ensure!(out.code == 0, "exit {}: {}", out.code, out.stderr);
    let records: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let uris: Vec<&str> = records
        .iter()
        .filter(|r| r["event"] == "added")
        .filter_map(|r| r["uri"].as_str())
        .collect();
    ensure!(uris == ["tcp://a:1", "tcp://b:1"], "{}", out.stdout);
    let last = records.last().context("no records")?;
    ensure!(
        last["event"] == "snapshot_end" && last["count"] == 2,
        "{last}"
    );
    ensure!(records.len() == 3, "{}", out.stdout);
    Ok(())
}

/// What a subscription started with: (kind, uri, snapshot flag, revision)
/// of each event before its `SnapshotEnd`, and that end.
type Started = (
    Vec<(i32, String, bool, u64)>,
    catalogue_proto::catalogue::SnapshotEnd,
);

/// Subscribes to `^tcp://` on a fresh connection (resuming from `resume`)
/// and reads its `Success`, then every frame up to the `SnapshotEnd`.
fn subscribe_raw(
    socket: &std::path::Path,
    resume: Option<catalogue_proto::catalogue::Position>,
) -> Result<Started> {
    use catalogue_proto::{Body, catalogue::Subscribe};
    let mut conn = catalogue_integration_tests::Conn::unix(socket)?;
    conn.recv()?;
    let serial = conn.send(Body::Subscribe(Subscribe {
        subscription_id: 1,
        regex: "^tcp://".into(),
        resume,
        grouped: false,
    }))?;
    match conn.recv()?.and_then(|f| f.body) {
        Some(Body::Success(s)) if s.in_reply_to == serial => {}
        other => anyhow::bail!("expected Success, got {other:?}"),
    }
    let mut events = Vec::new();
    loop {
        match conn.recv()?.and_then(|f| f.body) {
            Some(Body::ServiceEvent(e)) => events.push((e.kind, e.uri, e.snapshot, e.revision)),
            Some(Body::SnapshotEnd(end)) => return Ok((events, end)),
            other => anyhow::bail!("expected an event, got {other:?}"),
        }
    }
}

#[test]
fn on_the_wire_a_resume_replays_the_changes_and_a_stale_epoch_gets_a_reset() -> Result<()> {
    use catalogue_proto::catalogue::{EventKind, Position};
    let cluster = Cluster::builder(1).start()?;
    let registrar = cluster.registrar(0)?;
    registrar.register_all(&["tcp://a:1", "tcp://b:1"])?;
    let socket = cluster.socket(0).clone();

    let (first, end) = subscribe_raw(&socket, None)?;
    ensure!(first.len() == 2 && first.iter().all(|e| e.2), "{first:?}");
    let at = end.position.context("a position")?;
    ensure!(at.epoch != 0 && at.revision == 2, "{at:?}");
    ensure!(!end.resumed && !end.reset);
    ensure!(first.iter().all(|e| e.3 == at.revision), "{first:?}");

    registrar.unregister("tcp://a:1")?;
    registrar.register("tcp://c:1")?;
    let (replayed, end) = subscribe_raw(&socket, Some(at))?;
    let deleted = EventKind::Deleted as i32;
    let added = EventKind::Added as i32;
    ensure!(
        replayed
            == [
                (deleted, "tcp://a:1".to_string(), false, 3),
                (added, "tcp://c:1".to_string(), false, 4),
            ],
        "{replayed:?}"
    );
    ensure!(end.resumed && !end.reset && end.count == 2, "{end:?}");
    ensure!(
        end.position
            == Some(Position {
                epoch: at.epoch,
                revision: 4
            }),
        "{end:?}"
    );

    let stale = Position {
        epoch: at.epoch.wrapping_add(1),
        revision: 2,
    };
    let (snapshot, end) = subscribe_raw(&socket, Some(stale))?;
    let uris: Vec<&str> = snapshot.iter().map(|e| e.1.as_str()).collect();
    ensure!(uris == ["tcp://b:1", "tcp://c:1"], "{snapshot:?}");
    ensure!(
        snapshot.iter().all(|e| e.2),
        "snapshot entries: {snapshot:?}"
    );
    ensure!(end.reset && !end.resumed && end.count == 2, "{end:?}");
    Ok(())
}
