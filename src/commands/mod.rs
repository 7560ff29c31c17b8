//! Running the subcommands. Each returns an [`Exit`] status; `main` turns
//! it into the process exit code.

mod client;
mod config;
mod dev;
mod generate;
mod links;
mod list;
mod output;
mod register;
mod serve;
mod subscribe;
pub mod tls;
pub mod xlreg;

use std::process::ExitCode;

use crate::{
    cli::{Command, ConfigAction, SettingsArgs},
    config_layers::{Layers, LoadError, Loaded},
    logging::LogControl,
};

/// Exit statuses of the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// A runtime failure (listener, I/O).
    Failure = 1,
    /// Invalid configuration or arguments.
    Config = 2,
    /// The server belongs to another environment than expected.
    EnvironmentMismatch = 3,
    /// The node refused the request (error reply).
    Refused = 4,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// Runs `command`; `log` adjusts the log filter (used by `serve`).
pub fn run(command: Command, log: &LogControl) -> Exit {
    match command {
        Command::Serve { settings } => serve::run(&settings, log),
        Command::Register {
            uri,
            attrs,
            check,
            client,
        } => register::run(&uri, &attrs, &check, &client),
        Command::Subscribe {
            regex,
            json,
            once,
            client,
        } => subscribe::run(&regex, json, once, &client),
        Command::List {
            regex,
            json,
            client,
        } => list::run(regex.as_deref(), json, &client),
        Command::Links { json, client } => links::links(json, &client),
        Command::Peers { json, client } => links::peers(json, &client),
        Command::Tls { action } => tls::run(&action),
        Command::Xlreg { action } => xlreg::run(&action),
        Command::Dev { nodes, dir } => dev::run(nodes, dir.as_deref()),
        Command::Bench { args } => bench(&args),
        Command::Completions { shell } => generate::completions(shell),
        Command::Manpage => generate::manpage(),
        Command::Config { action } => match action {
            ConfigAction::Show { settings } => config::show(&settings),
            ConfigAction::Check { settings } => config::check(&settings),
        },
    }
}

/// `catalogue bench`: the workloads of the `catalogue-bench` crate, with
/// this binary serving the nodes (unless `--catalogue` names another).
fn bench(args: &catalogue_bench::BenchArgs) -> Exit {
    let result = std::env::current_exe()
        .map_err(|e| format!("cannot find the running binary: {e}"))
        .and_then(|me| catalogue_bench::run_with_nodes_of(args, &me).map_err(|e| e.to_string()));
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failure
        }
    }
}

/// Loads the layered settings for `args`, printing every problem as
/// `error: <key>: <problem> (set in <source>)` when they are invalid.
fn load_settings(args: &SettingsArgs) -> Result<Loaded, Exit> {
    Layers::from_process(args.config.clone(), args.overrides())
        .load()
        .map_err(|e| {
            match e {
                LoadError::Invalid(problems) => {
                    for p in problems {
                        eprintln!("error: {p}");
                    }
                }
                other => eprintln!("error: {other}"),
            }
            Exit::Config
        })
}
