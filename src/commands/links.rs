//! `catalogue links` and `catalogue peers`: the node's view of the cluster.

use serde_json::json;

use super::{Exit, client, output};
use crate::{cli::ClientArgs, client::Client};

/// Prints the links table and the reachable nodes.
pub fn links(json: bool, args: &ClientArgs) -> Exit {
    let options = client::options(args);
    client::block_on(async move {
        let conn = match Client::connect(&options).await {
            Ok(c) => c,
            Err(e) => return client::fail(&e),
        };
        let reply = match conn.links().await {
            Ok(reply) => reply,
            Err(e) => return client::fail(&e),
        };
        if json {
            let links: Vec<_> = reply
                .links
                .iter()
                .map(|l| json!({ "a": l.a, "b": l.b, "origin": l.origin }))
                .collect();
            println!(
                "{}",
                json!({ "node": reply.node, "links": links, "reachable": reply.reachable })
            );
        } else {
            if reply.links.is_empty() {
                println!("(no links: {} has no peer link up)", reply.node);
            }
            for l in &reply.links {
                println!("{} <-> {} (by {})", l.a, l.b, l.origin);
            }
            println!(
                "reachable from {}: {}",
                reply.node,
                reply.reachable.join(" ")
            );
        }
        Exit::Ok
    })
}

/// Prints the direct peers.
pub fn peers(json: bool, args: &ClientArgs) -> Exit {
    let options = client::options(args);
    client::block_on(async move {
        let conn = match Client::connect(&options).await {
            Ok(c) => c,
            Err(e) => return client::fail(&e),
        };
        let peers = match conn.peers().await {
            Ok(peers) => peers,
            Err(e) => return client::fail(&e),
        };
        if !json {
            println!(
                "{:<20} {:<11} ADDRESS [DIRECTION] [LAST ERROR]",
                "PEER", "STATE"
            );
            if peers.is_empty() {
                eprintln!(
                    "(no peers: none configured in [[peers]] and none discovered through xlReg)"
                );
            }
        }
        for p in &peers {
            if json {
                println!(
                    "{}",
                    json!({
                        "name": p.name,
                        "address": p.address,
                        "state": p.state,
                        "direction": p.direction,
                        "since_ms": p.since_ms,
                        "since": output::iso8601_ms(p.since_ms),
                        "last_error": p.last_error,
                    })
                );
            } else {
                let address = if p.address.is_empty() {
                    "(accept only)"
                } else {
                    &p.address
                };
                let mut line = format!("{:<20} {:<11} {}", p.name, p.state, address);
                if !p.direction.is_empty() {
                    line.push_str(&format!(" {}", p.direction));
                }
                if !p.last_error.is_empty() {
                    line.push_str(&format!(" last error: {}", p.last_error));
                }
                println!("{line}");
            }
        }
        Exit::Ok
    })
}
