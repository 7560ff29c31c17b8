//! `catalogue xlreg ...`: the cluster registry from the command line.
//!
//! `pubkey` prints a node's registry public key (making the key pair the
//! way `catalogue serve` would, if there is none yet). `fingerprint` prints
//! the fingerprint of a client identity's signing key (`sha256:<hex>`),
//! what a registry's `xlreg.admit.keys` and a node's
//! `xlreg.cluster.creator` take. `create`, `join` and
//! `members` open one registry session each: Hello, `Client` (registering
//! the identity kept in `--identity-dir` on first use, coming back as it
//! afterwards), the request, `Bye`. Defaults for `--server`,
//! `--server-key`, `--name` and `--data-dir` come from the layered
//! configuration (`xlreg.server`, `xlreg.server_key`, `node.name`,
//! `node.data_dir`), and `--secret-file` (the registry's shared secret, for
//! a registry with admission control) from `xlreg.secret_file`.
//!
//! Exit statuses: 0 done; 1 the registry could not be reached or the
//! handshake failed; 2 bad arguments or configuration; 4 the registry
//! refused (e.g. the cluster is full).

use std::path::{Path, PathBuf};

use catalogue_actors::xlreg::{
    ClientError, ClientOptions, ClusterRef, Identity, Members, PublicKey, RegistryClient, Secret,
    Version, admission, identity::to_hex, keys,
};
use clap::{Args, Subcommand};
use tracing::{error, warn};

use super::{Exit, client::block_on};
use crate::config_layers::Layers;

/// `catalogue xlreg` subcommands.
#[derive(Debug, Subcommand)]
pub enum XlregAction {
    /// Print the registry's public key (PEM), creating the keys if needed.
    Pubkey {
        /// The node's data directory (default: node.data_dir).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Print the fingerprint of a client identity's signing key
    /// (`sha256:<hex>`, for `xlreg.admit.keys` and `xlreg.cluster.creator`),
    /// creating the keys if needed.
    Fingerprint {
        /// The identity's directory (default: node.data_dir/xlreg-client,
        /// the identity `catalogue serve` uses).
        #[arg(long, value_name = "DIR", env = "CATALOGUE_XLREG_IDENTITY")]
        identity_dir: Option<PathBuf>,
    },
    /// Create a cluster, or print it unchanged if it exists.
    Create {
        /// Cluster name.
        #[arg(value_name = "NAME")]
        cluster: String,
        /// Most members (clamped to 2..=64 by the registry).
        #[arg(long)]
        size: u32,
        /// Endpoints each member publishes (1 or 2).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=2))]
        endpoints: u32,
        /// The registry and this client.
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Join a cluster, publishing this client's endpoints.
    Join {
        /// Cluster name.
        #[arg(value_name = "NAME")]
        cluster: String,
        /// An endpoint of this member (`MyEnds`), as many as the cluster
        /// wants (1 or 2); the first is the one peers link to.
        #[arg(long = "endpoint", value_name = "HOST:PORT", required = true)]
        endpoints: Vec<String>,
        /// The registry and this client.
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Print the members of a cluster in join order.
    Members {
        /// Cluster name.
        #[arg(value_name = "NAME")]
        cluster: String,
        /// One JSON object: cluster, id, size, endpoints, which, members.
        #[arg(long)]
        json: bool,
        /// The registry and this client.
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

/// Which registry, and who this client is.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Registry address (default: xlreg.server).
    #[arg(long, value_name = "HOST:PORT")]
    server: Option<String>,
    /// File holding the registry's public key, PEM (default: xlreg.server_key).
    #[arg(long, value_name = "FILE")]
    server_key: Option<PathBuf>,
    /// Directory of this client's keys and registered ID; made on first use.
    #[arg(long, value_name = "DIR", env = "CATALOGUE_XLREG_IDENTITY")]
    identity_dir: PathBuf,
    /// Name to register under (default: node.name).
    #[arg(long = "name", value_name = "NAME")]
    client_name: Option<String>,
    /// File holding the registry's shared secret, for a registry whose
    /// admission control asks for one (default: xlreg.secret_file).
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// Protocol version to ask for (2, or 1 for the seeds' scheme).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    protocol: u8,
    /// Time allowed for each step: a duration (`30s`, `1m`, `500ms`); a
    /// bare number is seconds.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_timeout)]
    timeout: std::time::Duration,
    /// Configuration file for the defaults (repeatable).
    #[arg(long = "config", value_name = "FILE")]
    config: Vec<PathBuf>,
    /// Override one setting of that configuration, e.g. `--set
    /// xlreg.server=registry.example:7490`; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = crate::cli::parse_key_value)]
    set: Vec<(String, String)>,
}

/// A `--timeout`: a humantime duration, or a bare number of seconds (the
/// older form); at least 1 ms.
fn parse_timeout(arg: &str) -> Result<std::time::Duration, String> {
    let duration = match arg.trim().parse::<u64>() {
        Ok(seconds) => std::time::Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(arg.trim()).map_err(|e| {
            format!("{e}; a duration is a number and a unit, e.g. 30s, 1m or 500ms (a bare number is seconds)")
        })?,
    };
    if duration < std::time::Duration::from_millis(1) {
        return Err("must be at least 1ms".into());
    }
    Ok(duration)
}

/// Runs an xlreg subcommand.
pub fn run(action: &XlregAction) -> Exit {
    match action {
        XlregAction::Pubkey { data_dir } => pubkey(data_dir.as_deref()),
        XlregAction::Fingerprint { identity_dir } => fingerprint(identity_dir.as_deref()),
        XlregAction::Create {
            cluster,
            size,
            endpoints,
            registry,
        } => session(
            registry,
            None,
            Request::Create {
                name: cluster,
                size: *size,
                endpoints: *endpoints,
            },
        ),
        XlregAction::Join {
            cluster,
            endpoints,
            registry,
        } => session(registry, Some(endpoints), Request::Join { name: cluster }),
        XlregAction::Members {
            cluster,
            json,
            registry,
        } => session(
            registry,
            None,
            Request::Members {
                name: cluster,
                json: *json,
            },
        ),
    }
}

/// The request of a session.
enum Request<'a> {
    Create {
        name: &'a str,
        size: u32,
        endpoints: u32,
    },
    Join {
        name: &'a str,
    },
    Members {
        name: &'a str,
        json: bool,
    },
}

fn default_settings(
    config: &[PathBuf],
    set: &[(String, String)],
) -> Option<catalogue_actors::settings::Settings> {
    match Layers::from_process(config.to_vec(), set.to_vec()).load() {
        Ok(loaded) => Some(loaded.settings),
        Err(e) => {
            warn!("cannot load the configuration for defaults: {e}");
            None
        }
    }
}

fn pubkey(data_dir: Option<&Path>) -> Exit {
    let dir = match data_dir {
        Some(dir) => dir.to_path_buf(),
        None => match default_settings(&[], &[]) {
            Some(settings) => settings.node.data_dir,
            None => return Exit::Config,
        },
    };
    match catalogue_actors::xlreg::public_key_pem(&dir) {
        Ok(pem) => {
            print!("{pem}");
            Exit::Ok
        }
        Err(e) => {
            error!("{e}");
            Exit::Failure
        }
    }
}

fn fingerprint(identity_dir: Option<&Path>) -> Exit {
    let dir = match identity_dir {
        Some(dir) => dir.to_path_buf(),
        None => match default_settings(&[], &[]) {
            Some(settings) => settings.node.data_dir.join("xlreg-client"),
            None => return Exit::Config,
        },
    };
    match Identity::load_or_create(&dir, "").and_then(|id| id.fingerprint()) {
        Ok(fp) => {
            println!("{fp}");
            Exit::Ok
        }
        Err(e) => {
            error!("{e}");
            Exit::Failure
        }
    }
}

/// What a session needs, from the flags or the configuration.
struct Target {
    server: String,
    server_key: PublicKey,
    identity: Identity,
    options: ClientOptions,
}

fn target(args: &RegistryArgs) -> Result<Target, Exit> {
    let needs_config = args.server.is_none()
        || args.server_key.is_none()
        || args.client_name.is_none()
        || args.secret_file.is_none();
    let settings = if needs_config {
        default_settings(&args.config, &args.set)
    } else {
        None
    };
    let from_config = |pick: fn(&catalogue_actors::settings::Settings) -> &String| {
        settings
            .as_ref()
            .map(|s| pick(s).clone())
            .filter(|v| !v.is_empty())
    };
    let Some(server) = args
        .server
        .clone()
        .or_else(|| from_config(|s| &s.xlreg.server))
    else {
        error!("no registry: give --server HOST:PORT or set xlreg.server");
        return Err(Exit::Config);
    };
    let Some(key_path) = args
        .server_key
        .clone()
        .or_else(|| from_config(|s| &s.xlreg.server_key).map(PathBuf::from))
    else {
        error!("no registry key: give --server-key FILE or set xlreg.server_key");
        return Err(Exit::Config);
    };
    let server_key = keys::read_public(&key_path).map_err(|e| {
        error!("{e}");
        Exit::Config
    })?;
    let Some(name) = args
        .client_name
        .clone()
        .or_else(|| from_config(|s| &s.node.name))
    else {
        error!("no client name: give --name NAME or set node.name");
        return Err(Exit::Config);
    };
    let identity = Identity::load_or_create(&args.identity_dir, &name).map_err(|e| {
        error!("{e}");
        Exit::Failure
    })?;
    let secret = match args
        .secret_file
        .clone()
        .or_else(|| from_config(|s| &s.xlreg.secret_file).map(PathBuf::from))
    {
        Some(path) => Some(Secret(admission::read_secret(&path).map_err(|e| {
            error!("--secret-file: {e}");
            Exit::Config
        })?)),
        None => None,
    };
    let version = if args.protocol == 1 {
        Version::V1
    } else {
        Version::V2
    };
    Ok(Target {
        server,
        server_key,
        identity,
        options: ClientOptions {
            version,
            min_version: version,
            timeout: args.timeout,
            secret,
        },
    })
}

fn exit_for(e: &ClientError) -> Exit {
    error!("{e}");
    match e {
        ClientError::Refused(_) | ClientError::UnknownClient => Exit::Refused,
        _ => Exit::Failure,
    }
}

/// Connects and identifies (registering on first use, or again when the
/// registry has forgotten this client).
async fn open(
    target: &mut Target,
    my_ends: Option<&[String]>,
) -> Result<RegistryClient, ClientError> {
    let mut client =
        RegistryClient::connect_with(&target.server, &target.server_key, &target.options).await?;
    match client.login(&mut target.identity, my_ends).await {
        Ok(_) => Ok(client),
        Err(ClientError::UnknownClient) => {
            warn!("the registry does not know this client any more; registering again");
            target.identity.forget()?;
            let mut client =
                RegistryClient::connect_with(&target.server, &target.server_key, &target.options)
                    .await?;
            client.login(&mut target.identity, my_ends).await?;
            Ok(client)
        }
        Err(e) => Err(e),
    }
}

/// One session: identify, run the request and print its result, say
/// `Bye`. A failed `Bye` after the request succeeded is only a warning.
fn session(args: &RegistryArgs, my_ends: Option<&Vec<String>>, request: Request<'_>) -> Exit {
    let mut target = match target(args) {
        Ok(target) => target,
        Err(exit) => return exit,
    };
    block_on(async move {
        let mut client = match open(&mut target, my_ends.map(Vec::as_slice)).await {
            Ok(client) => client,
            Err(e) => return exit_for(&e),
        };
        let done = match request {
            Request::Create {
                name,
                size,
                endpoints,
            } => client.create(name, size, endpoints).await.map(|info| {
                println!(
                    "cluster {} id {} size {} endpoints {}",
                    info.name,
                    to_hex(&info.id),
                    info.size,
                    info.endpoints
                );
            }),
            Request::Join { name } => client.join(name).await.map(|info| {
                println!(
                    "joined {} id {} size {} endpoints {} as {}",
                    info.name,
                    to_hex(&info.id),
                    info.size,
                    info.endpoints,
                    target.identity.name()
                );
            }),
            Request::Members { name, json } => {
                let cluster = ClusterRef {
                    id: None,
                    name: Some(name.to_string()),
                };
                client
                    .members(&cluster)
                    .await
                    .map(|members| print_members(&members, json))
            }
        };
        if let Err(e) = done {
            return exit_for(&e);
        }
        if let Err(e) = client.bye().await {
            warn!("saying Bye to the registry: {e}");
        }
        Exit::Ok
    })
}

fn print_members(members: &Members, json: bool) {
    if json {
        let list: Vec<_> = members
            .members
            .iter()
            .map(|m| {
                serde_json::json!({
                    "index": m.index,
                    "name": m.name,
                    "id": to_hex(&m.id),
                    "attrs": m.attrs,
                    "endpoints": m.my_ends,
                })
            })
            .collect();
        let out = serde_json::json!({
            "cluster": members.cluster.name,
            "id": to_hex(&members.cluster.id),
            "size": members.cluster.size,
            "endpoints": members.cluster.endpoints,
            "which": members.which,
            "members": list,
        });
        println!("{out}");
    } else {
        for m in &members.members {
            println!(
                "{} {} {} {}",
                m.index,
                m.name,
                m.my_ends.join(","),
                to_hex(&m.id)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[test]
    fn timeouts_are_durations_or_bare_seconds() {
        use std::time::Duration;
        assert_eq!(parse_timeout("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_timeout("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_timeout("0").is_err());
        let bad = parse_timeout("5x").err().unwrap_or_default();
        assert!(bad.contains("e.g. 30s"), "{bad}");
    }

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(subcommand)]
        action: XlregAction,
    }

    #[test]
    fn arguments_are_consistent() {
        Probe::command().debug_assert();
    }

    #[test]
    fn join_takes_repeated_endpoints() {
        let probe = Probe::try_parse_from([
            "xlreg",
            "join",
            "prod",
            "--endpoint",
            "h:1",
            "--endpoint",
            "h:2",
            "--identity-dir",
            "/tmp/x",
            "--name",
            "me",
        ])
        .expect("parses");
        match probe.action {
            XlregAction::Join {
                cluster,
                endpoints,
                registry,
            } => {
                assert_eq!(cluster, "prod");
                assert_eq!(endpoints, ["h:1", "h:2"]);
                assert_eq!(registry.client_name.as_deref(), Some("me"));
            }
            other => panic!("{other:?}"),
        }
        assert!(Probe::try_parse_from(["xlreg", "join", "prod", "--identity-dir", "/x"]).is_err());
        assert!(
            Probe::try_parse_from([
                "xlreg",
                "create",
                "c",
                "--size",
                "3",
                "--endpoints",
                "3",
                "--identity-dir",
                "/x"
            ])
            .is_err()
        );
    }
}
