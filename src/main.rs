//! The `catalogue` binary: parses the command line, sets up logging and runs
//! the subcommand (see `catalogue --help`).

use std::process::ExitCode;

use catalogue::{cli::Cli, commands, logging};
use clap::Parser;

/// mimalloc rather than glibc's malloc: a node joining a cluster of a
/// million services spent nearly half its time in glibc's `malloc` and
/// `_int_free` (docs/PERFORMANCE.md, "Scale: 32 nodes").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = match logging::init(cli.log_format, cli.log_level.as_deref()) {
        Ok(log) => log,
        Err(e) => {
            eprintln!("error: {e}");
            return commands::Exit::Config.into();
        }
    };
    commands::run(cli.command, &log).into()
}
