//! `catalogue list [REGEX]`: one-shot listing.

use super::{Exit, client, output};
use crate::{cli::ClientArgs, client::Client};

/// Runs the command.
pub fn run(regex: Option<&str>, json: bool, args: &ClientArgs) -> Exit {
    let options = client::options(args);
    client::block_on(async move {
        let conn = match Client::connect(&options).await {
            Ok(c) => c,
            Err(e) => return client::fail(&e),
        };
        match conn.list(regex.unwrap_or("")).await {
            Ok(services) => {
                for s in &services {
                    println!("{}", output::service_line(s, json));
                }
                // An empty answer says so (on standard error: standard output
                // stays one line per service), as `peers` and `links` do; a
                // blank screen left newcomers unsure the node had answered.
                if services.is_empty() && !json {
                    match regex {
                        Some(r) if !r.is_empty() => eprintln!("(no services match {r})"),
                        _ => eprintln!("(no services registered)"),
                    }
                }
                Exit::Ok
            }
            Err(e) => client::fail(&e),
        }
    })
}
