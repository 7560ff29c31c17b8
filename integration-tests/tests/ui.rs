//! The status page as a person sees it: a headless Chromium opens `/ui/` on
//! the first node of a three-node chain; a service registered at the far
//! end after the page loaded appears in its table, live; the graph shows
//! the three nodes and their two links; the peers table shows the link.
//! A screenshot is saved (`CATALOGUE_UI_SCREENSHOT=docs/ui.png` to refresh
//! the one in the repository).

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result};
use catalogue_integration_tests::{Browser, Cluster, DEADLINE};

#[test]
fn the_status_page_shows_the_cluster_and_services_live() -> Result<()> {
    let mut cluster = Cluster::builder(3)
        .chain()
        .set("http.listen", "127.0.0.1:0")
        .start()?;
    let api = cluster
        .daemon(0)?
        .wait_log(DEADLINE, |l| l["message"] == "HTTP API listening")?["address"]
        .as_str()
        .context("API address")?
        .to_string();

    let mut browser = Browser::launch()?;
    browser.open(&format!("http://{api}/ui/"))?;
    browser.wait_for("document.body.dataset.snapshot === 'done'", DEADLINE)?;
    browser.wait_for("document.body.dataset.cluster === 'done'", DEADLINE)?;

    // Registered after the page loaded, two hops away: it must come in over
    // the page's live watch.
    let far = cluster.registrar(2)?;
    far.register("tcp://ui-demo.example:8080")?;
    browser.wait_for(
        "document.querySelector('#services tr[data-uri=\"tcp://ui-demo.example:8080\"]') !== null",
        DEADLINE,
    )?;
    // The graph redraws every 2 s from /v1/links: three nodes, two links.
    browser.wait_for(
        "document.querySelectorAll('#graph .node').length === 3 \
         && document.querySelectorAll('#graph .link').length >= 2",
        DEADLINE,
    )?;
    let unreachable =
        browser.eval("document.querySelectorAll('#graph .node.unreachable').length")?;
    assert_eq!(unreachable, 0, "every node of the chain is reachable");
    let peer_state = browser.eval(
        "[...document.querySelectorAll('#peers tr[data-peer]')].map(r => r.children[1].textContent).join(',')",
    )?;
    assert_eq!(peer_state, "up", "node 0's one peer");

    // Unregistered: gone from the table.
    far.unregister("tcp://ui-demo.example:8080")?;
    browser.wait_for(
        "document.querySelector('#services tr[data-uri=\"tcp://ui-demo.example:8080\"]') === null",
        DEADLINE,
    )?;
    far.register("tcp://ui-demo.example:8080")?;
    browser.wait_for(
        "document.querySelectorAll('#services tr[data-uri]').length === 1",
        Duration::from_secs(5),
    )?;

    let shot = std::env::var_os("CATALOGUE_UI_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui.png"));
    browser.screenshot(&shot)?;
    let png = std::fs::read(&shot)?;
    assert!(png.starts_with(b"\x89PNG"), "a PNG at {}", shot.display());

    // The far node is killed: its link to the middle goes, and the graph
    // marks it unreachable (from the view the supervisor publishes).
    drop(far);
    cluster.kill(2)?;
    browser.wait_for(
        "document.querySelector('#graph .node.unreachable[data-node=\"n3\"]') !== null \
         && document.querySelectorAll('#graph .link').length === 1",
        DEADLINE,
    )?;
    Ok(())
}
