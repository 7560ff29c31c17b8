//! What client commands print about an empty or lonely node, through the
//! real binary: `peers` prints its header and says there are none,
//! `links` says there are none instead of printing nothing, and `peers
//! --json` carries an ISO 8601 `since` beside the epoch `since_ms`.

use anyhow::{Context, Result};
use catalogue_integration_tests::{Cli, DEADLINE, Daemon};

#[test]
fn a_lonely_node_says_it_has_no_peers_and_no_links() -> Result<()> {
    let daemon = Daemon::start()?;
    let socket = daemon.socket_arg();
    let peers = Cli::new(["peers", "--socket", &socket]).output(DEADLINE)?;
    assert_eq!(peers.code, 0, "{}", peers.stderr);
    assert!(
        peers.stdout.starts_with("PEER") && peers.stdout.contains("STATE"),
        "{}",
        peers.stdout
    );
    assert!(peers.stderr.contains("(no peers"), "{}", peers.stderr);
    let links = Cli::new(["links", "--socket", &socket]).output(DEADLINE)?;
    assert_eq!(links.code, 0, "{}", links.stderr);
    assert!(links.stdout.starts_with("(no links"), "{}", links.stdout);
    Ok(())
}

#[test]
fn peers_json_has_iso_8601_beside_epoch_milliseconds() -> Result<()> {
    // A peer that cannot be reached: its state changed when the first dial
    // failed, so its since_ms is set.
    let mut daemon = Daemon::builder()
        .peer("node-b", "127.0.0.1:1")
        .set("node.debug", "true")
        .start()?;
    daemon.wait_log(DEADLINE, |l| l["message"] == "cannot link to peer")?;
    let out = Cli::new(["peers", "--json", "--socket", &daemon.socket_arg()]).output(DEADLINE)?;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let peer: serde_json::Value =
        serde_json::from_str(out.stdout.lines().next().context("one line")?)?;
    let ms = peer["since_ms"].as_u64().context("since_ms")?;
    let iso = peer["since"].as_str().context("since")?;
    assert!(ms > 0, "the failed dial set since_ms: {peer}");
    // 2026-12-05T07:36:03.123Z: the same instant, to the millisecond.
    assert_eq!(iso.len(), 24, "{peer}");
    assert!(iso.ends_with('Z') && iso.as_bytes()[10] == b'T', "{peer}");
    assert!(iso.ends_with(&format!(".{:03}Z", ms % 1000)), "{peer}");
    let seconds_of_minute = (ms / 1000) % 60;
    assert_eq!(&iso[17..19], format!("{seconds_of_minute:02}"), "{peer}");
    Ok(())
}
