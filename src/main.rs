//! The `catalogue` binary: parses the command line, sets up logging and runs
//! the subcommand (see `catalogue --help`).

use std::process::ExitCode;

use catalogue::{cli::Cli, commands, logging};
use clap::Parser;

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
