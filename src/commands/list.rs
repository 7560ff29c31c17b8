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
                Exit::Ok
            }
            Err(e) => client::fail(&e),
        }
    })
}
