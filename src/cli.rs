//! Command-line interface of the `catalogue` binary (clap). Each subcommand
//! is one variant of [`Command`]; the code that runs it lives in
//! `commands/`. Flags that set configuration are gathered in
//! [`SettingsArgs`] and become the last configuration layer.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The help heading of the global logging options, so they stand apart
/// from each subcommand's own options.
const LOG_OPTIONS: &str = "Logging options (every command)";

/// Clustered service catalogue: register services, subscribe to changes,
/// replicate across nodes.
#[derive(Debug, Parser)]
#[command(name = "catalogue", version, propagate_version = true)]
pub struct Cli {
    /// Log format on standard error.
    #[arg(
        long,
        value_enum,
        default_value_t = LogFormat::Human,
        global = true,
        help_heading = LOG_OPTIONS
    )]
    pub log_format: LogFormat,

    /// Log filter: a level (error, warn, info, debug, trace) or tracing
    /// directives such as `info,catalogue_actors=debug` [default: log.level
    /// of the configuration, else info].
    #[arg(long, env = "CATALOGUE_LOG", global = true, help_heading = LOG_OPTIONS)]
    pub log_level: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a catalogue node (the daemon) until SIGINT or SIGTERM.
    Serve {
        /// Configuration layers.
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Register a service and keep it registered while this command runs;
    /// Ctrl-C (or SIGTERM) unregisters it. Registration needs the node's
    /// UNIX socket.
    Register {
        /// Service URI (RFC 3986), e.g. tcp://10.0.0.1:5432.
        uri: String,
        /// Attribute `key=value`; repeatable.
        #[arg(long = "attr", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        attrs: Vec<(String, String)>,
        /// A health check: the service is registered while it passes.
        #[command(flatten)]
        check: CheckArgs,
        /// Where the node is.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print the services matching REGEX, then every change as it happens;
    /// reconnects with backoff after a lost connection and resumes, so what
    /// changed meanwhile (deletes included) is printed too.
    Subscribe {
        /// Regular expression over service URIs (unanchored; use ^ and $).
        regex: String,
        /// JSON Lines: one record per change (added, updated, deleted, with
        /// its revision) and per notice (snapshot_end, reset, overflow);
        /// the schema is in docs/CLIENTS.md.
        #[arg(long)]
        json: bool,
        /// Print the matching services (the snapshot and its end) and exit.
        #[arg(long)]
        once: bool,
        /// Where the node is.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print the services matching REGEX (all without one), sorted by URI.
    List {
        /// Regular expression over service URIs.
        regex: Option<String>,
        /// One JSON object per line: uri, attrs, origin.
        #[arg(long)]
        json: bool,
        /// Where the node is.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print the node's view of the links table (which node is linked to
    /// which) and the nodes it can reach.
    Links {
        /// One JSON object.
        #[arg(long)]
        json: bool,
        /// Where the node is.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print the node's direct peers and the state of each link.
    Peers {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Where the node is.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create a cluster CA and node certificates for peer links.
    Tls {
        /// What to create.
        #[command(subcommand)]
        action: crate::commands::tls::TlsAction,
    },
    /// The xlReg cluster registry: keys, clusters, members.
    Xlreg {
        /// What to do.
        #[command(subcommand)]
        action: crate::commands::xlreg::XlregAction,
    },
    /// Start a local cluster (its own CA, TLS, loopback ports reused across
    /// runs) and stop it on Ctrl-C, keeping its logs: the quickest way to
    /// see catalogue work.
    Dev {
        /// How many nodes (1 to 16).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Where the cluster keeps its configuration, certificates, data
        /// and logs across runs [default: $XDG_STATE_HOME/catalogue/dev,
        /// else ~/.local/state/catalogue/dev].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Measure nodes on loopback (notify, fan-out, cluster propagation,
    /// sync, idle connections, xlReg) and print tables; build with
    /// --release for meaningful figures.
    Bench {
        /// Workloads and their sizes.
        #[command(flatten)]
        args: catalogue_bench::BenchArgs,
    },
    /// Print a shell completion script for SHELL on standard output, e.g.
    /// `catalogue completions bash > /etc/bash_completion.d/catalogue`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page, catalogue(1), as roff on standard output, e.g.
    /// `catalogue manpage | man -l -`.
    Manpage,
    /// Inspect the layered configuration.
    Config {
        /// What to do with it.
        #[command(subcommand)]
        action: ConfigAction,
    },
}

/// `catalogue config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print the merged settings as TOML (exit 2 when they are invalid).
    Show {
        /// Configuration layers.
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Validate the merged settings: exit 0, or print each problem with the
    /// key and the layer that set it and exit 2.
    Check {
        /// Configuration layers.
        #[command(flatten)]
        settings: SettingsArgs,
    },
}

/// How client commands find the node. Without `--connect` they use the
/// UNIX socket: `--socket`, else `listen.socket` of the configuration.
#[derive(Debug, Clone, Default, Args)]
pub struct ClientArgs {
    /// The node's UNIX socket.
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "connect",
        env = "CATALOGUE_SOCKET"
    )]
    pub socket: Option<PathBuf>,

    /// The node's client TCP address instead of the UNIX socket.
    #[arg(long, value_name = "HOST:PORT", env = "CATALOGUE_CONNECT")]
    pub connect: Option<String>,

    /// Disconnect at once, exit with status 3 and never reconnect if the
    /// node's Welcome names another environment.
    #[arg(long, value_name = "ENV")]
    pub expect_environment: Option<String>,

    /// Configuration file to read `listen.socket` from; repeatable.
    #[arg(long = "config", short = 'c', value_name = "FILE")]
    pub config: Vec<PathBuf>,

    /// Override one setting of that configuration, e.g. `--set
    /// listen.socket=/run/catalogue/catalogue.sock`; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,

    /// Also trust a node's UNIX socket served by this user (besides root,
    /// yourself and the owner of the socket's private directory); repeatable.
    #[arg(long = "trust-uid", value_name = "UID")]
    pub trust_uid: Vec<u32>,

    /// Speak TLS to the client TCP port (a node with listen.client_tls on),
    /// trusting only this CA certificate (PEM; the cluster's tls.ca).
    #[arg(long, value_name = "FILE", env = "CATALOGUE_TLS_CA")]
    pub tls_ca: Option<PathBuf>,

    /// The name the node's certificate must carry (its node name), when the
    /// --connect host is not that name, e.g. an IP address.
    #[arg(
        long,
        value_name = "NAME",
        requires = "tls_ca",
        env = "CATALOGUE_TLS_NAME"
    )]
    pub tls_name: Option<String>,

    /// Certificate (PEM) to present to a node with listen.client_tls =
    /// "mutual", signed by the cluster CA; needs --tls-key.
    #[arg(
        long,
        value_name = "FILE",
        requires_all = ["tls_ca", "tls_key"],
        env = "CATALOGUE_TLS_CERT"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        env = "CATALOGUE_TLS_KEY"
    )]
    pub tls_key: Option<PathBuf>,
}

/// Configuration files and command-line overrides, applied after the
/// defaults, /etc/catalogue/catalogue.toml and CATALOGUE__SECTION__KEY
/// environment variables.
#[derive(Debug, Clone, Default, Args)]
pub struct SettingsArgs {
    /// Configuration file layered over the defaults; repeat for more, later
    /// files win.
    #[arg(long = "config", short = 'c', value_name = "FILE")]
    pub config: Vec<PathBuf>,

    /// Override one setting, e.g. `--set limits.max_frame_bytes=8192` or
    /// `--set 'register.allowed_uids=[0, 1000]'`. The value is read as TOML,
    /// or as a string when it is not valid TOML. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,

    /// Node name (node.name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Cluster name (node.cluster).
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,

    /// Environment name (node.environment).
    #[arg(long, value_name = "NAME")]
    pub environment: Option<String>,

    /// Debug mode (node.debug = true): plaintext peer links, registration
    /// over TCP without uid checks.
    #[arg(long)]
    pub debug: bool,
}

impl SettingsArgs {
    /// The overrides these flags make, in order: `--set` first, then the
    /// named flags.
    pub fn overrides(&self) -> Vec<(String, String)> {
        let mut out = self.set.clone();
        let quoted = |v: &str| toml_string(v);
        if let Some(v) = &self.name {
            out.push(("node.name".into(), quoted(v)));
        }
        if let Some(v) = &self.cluster {
            out.push(("node.cluster".into(), quoted(v)));
        }
        if let Some(v) = &self.environment {
            out.push(("node.environment".into(), quoted(v)));
        }
        if self.debug {
            out.push(("node.debug".into(), "true".into()));
        }
        out
    }
}

/// A TOML string literal for `value`, so a named flag is always a string.
fn toml_string(value: &str) -> String {
    toml::Value::String(value.to_string()).to_string()
}

/// `register`'s health check (docs/CLIENTS.md, "Health checks"): at most
/// one of `--check-tcp`, `--check-http`, `--check-exec`, and when to run it.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Health check")]
pub struct CheckArgs {
    /// Passes when HOST:PORT accepts a TCP connection.
    #[arg(long, value_name = "HOST:PORT", group = "check_kind")]
    pub check_tcp: Option<String>,
    /// Passes when a GET of URL (http:// or https://, the certificate
    /// checked against the system's CAs) answers 2xx.
    #[arg(long, value_name = "URL", group = "check_kind")]
    pub check_http: Option<String>,
    /// Passes when the program exits 0: the program and its arguments,
    /// split on whitespace, run without a shell.
    #[arg(long, value_name = "COMMAND", group = "check_kind")]
    pub check_exec: Option<String>,
    /// Time between the starts of two runs.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub check_interval: std::time::Duration,
    /// Longest a run may take (at most the interval).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub check_timeout: std::time::Duration,
    /// Consecutive failures that withdraw the service.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub check_failures: u32,
    /// Consecutive passes that register it (again).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub check_successes: u32,
}

impl CheckArgs {
    /// The check as the node's `[[services]]` would hold it, or `None`
    /// without one.
    pub fn settings(&self) -> Option<catalogue_actors::settings::CheckSettings> {
        if self.check_tcp.is_none() && self.check_http.is_none() && self.check_exec.is_none() {
            return None;
        }
        Some(catalogue_actors::settings::CheckSettings {
            tcp: self.check_tcp.clone(),
            http: self.check_http.clone(),
            exec: self
                .check_exec
                .as_ref()
                .map(|c| c.split_whitespace().map(str::to_string).collect()),
            interval: self.check_interval,
            timeout: self.check_timeout,
            failures: self.check_failures,
            successes: self.check_successes,
        })
    }
}

/// A duration as the config files write them: `500ms`, `10s`, `1m 30s`.
fn parse_duration(arg: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(arg.trim())
        .map_err(|e| format!("{e} (write a duration such as 500ms, 10s or 1m 30s)"))
}

pub(crate) fn parse_key_value(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got {arg:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn named_flags_come_after_set_and_stay_strings() {
        let cli = Cli::try_parse_from([
            "catalogue",
            "serve",
            "--set",
            "node.name=a",
            "--name",
            "123",
            "--debug",
        ])
        .expect("parses");
        let Command::Serve { settings } = cli.command else {
            panic!("serve expected");
        };
        assert_eq!(
            settings.overrides(),
            vec![
                ("node.name".to_string(), "a".to_string()),
                ("node.name".to_string(), "\"123\"".to_string()),
                ("node.debug".to_string(), "true".to_string()),
            ]
        );
    }

    #[test]
    fn set_needs_an_equals_sign() {
        assert!(Cli::try_parse_from(["catalogue", "serve", "--set", "node.name"]).is_err());
    }
}
