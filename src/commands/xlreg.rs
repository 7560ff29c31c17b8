//! `catalogue xlreg ...`: the cluster registry from the command line.
//!
//! `pubkey` prints a node's registry public key (making the key pair the
//! way `catalogue serve` would, if there is none yet). `fingerprint` prints
//! the fingerprint of a client identity's signing key (`sha256:<hex>`),
//! what a registry's `xlreg.admit.keys` and a node's
//! `xlreg.cluster.creator` take. `create`, `join`,
//! `members` and `leave` open one registry session each: Hello, `Client` (registering
//! the identity kept in `--identity-dir` on first use, coming back as it
//! afterwards), the request, `Bye`. Defaults for `--server`,
//! `--server-key`, `--name` and `--data-dir` come from the layered
//! configuration (`xlreg.server`, `xlreg.server_key`, `node.name`,
//! `node.data_dir`), and `--secret-file` (the registry's shared secret, for
//! a registry with admission control) from `xlreg.secret_file`.
//!
//! `admin` talks to the registry hosted on this host instead, over its
//! admin socket ([`admin`]).
//!
//! Exit statuses: 0 done; 1 the registry could not be reached or the
//! handshake failed; 2 bad arguments or configuration; 4 the registry
//! refused (e.g. the cluster is full).

mod admin;

use std::path::{Path, PathBuf};

use catalogue_actors::xlreg::{
    ClientError, ClientOptions, ClusterInfo, ClusterRef, Identity, Members, PublicKey,
    RegistryClient, Secret, Version, admission,
    identity::to_hex,
    keys,
    registry::{MAX_CLUSTER_SIZE, MIN_CLUSTER_SIZE},
};
use clap::{Args, Subcommand};
use tracing::warn;

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
    /// Create a cluster, or print it unchanged if it exists (warning when
    /// it is not what was asked for).
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
    /// Leave a cluster: this client gives up its slot (signed with its
    /// signing key).
    Leave {
        /// Cluster name.
        #[arg(value_name = "NAME")]
        cluster: String,
        /// The registry and this client.
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// The registry's operator, on the node hosting it (its admin socket;
    /// never over the network): remove a member, change a cluster's size.
    Admin {
        /// What to do.
        #[command(subcommand)]
        action: admin::AdminAction,
        /// The hosting node's data directory (default: node.data_dir).
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<PathBuf>,
        /// Configuration file for the defaults (repeatable).
        #[arg(long = "config", value_name = "FILE", global = true)]
        config: Vec<PathBuf>,
        /// Override one setting of that configuration (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE", global = true, value_parser = crate::cli::parse_key_value)]
        set: Vec<(String, String)>,
    },
    /// Print the members of a cluster in join order, and its free slots.
    Members {
        /// Cluster name.
        #[arg(value_name = "NAME")]
        cluster: String,
        /// One JSON object: cluster, id, size, endpoints, which, members,
        /// free (the free slots).
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
    /// Protocol version to ask for (2, or 1 for the original xlReg's scheme: docs/XLREG.md §2).
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
        XlregAction::Leave { cluster, registry } => {
            session(registry, None, Request::Leave { name: cluster })
        }
        XlregAction::Admin {
            action,
            data_dir,
            config,
            set,
        } => admin::run(action, data_dir.as_deref(), config, set),
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
    Leave {
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
            eprintln!("error: {e}");
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
            eprintln!("error: {e}");
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
        eprintln!("error: no registry: give --server HOST:PORT or set xlreg.server");
        return Err(Exit::Config);
    };
    let Some(key_path) = args
        .server_key
        .clone()
        .or_else(|| from_config(|s| &s.xlreg.server_key).map(PathBuf::from))
    else {
        eprintln!("error: no registry key: give --server-key FILE or set xlreg.server_key");
        return Err(Exit::Config);
    };
    let server_key = keys::read_public(&key_path).map_err(|e| {
        eprintln!("error: {e}");
        Exit::Config
    })?;
    let Some(name) = args
        .client_name
        .clone()
        .or_else(|| from_config(|s| &s.node.name))
    else {
        eprintln!("error: no client name: give --name NAME or set node.name");
        return Err(Exit::Config);
    };
    let identity = Identity::load_or_create(&args.identity_dir, &name).map_err(|e| {
        eprintln!("error: {e}");
        Exit::Failure
    })?;
    let secret = match args
        .secret_file
        .clone()
        .or_else(|| from_config(|s| &s.xlreg.secret_file).map(PathBuf::from))
    {
        Some(path) => Some(Secret(admission::read_secret(&path).map_err(|e| {
            eprintln!("error: --secret-file: {e}");
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
    eprintln!("error: {e}");
    if let Some(hint) = hint_for(e) {
        eprintln!("hint: {hint}");
    }
    match e {
        ClientError::Refused(_) | ClientError::UnknownClient => Exit::Refused,
        _ => Exit::Failure,
    }
}

/// What to try after `e`, if we can say.
fn hint_for(e: &ClientError) -> Option<&'static str> {
    match e {
        ClientError::Connect { .. } => Some(
            "is the registry's node running (xlreg.serve = true), and is --server \
             (xlreg.server) its xlreg.listen address?",
        ),
        ClientError::Timeout(_) | ClientError::Handshake(_) | ClientError::Closed => Some(
            "is --server an xlReg registry (its node's xlreg.listen, not a catalogue client, \
             peer or HTTP port), and --server-key that registry's key (`catalogue xlreg \
             pubkey` on its host)?",
        ),
        ClientError::Refused(_) | ClientError::UnknownClient => Some(
            "the registry's admission control (xlreg.admit) may not list this client's key \
             (`catalogue xlreg fingerprint`) or want a secret (--secret-file)",
        ),
        _ => None,
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
            } => create(&mut client, name, size, endpoints).await,
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
            Request::Leave { name } => client.leave(&target.identity, name).await.map(|which| {
                println!(
                    "left {name} as {} (slot {} is free)",
                    target.identity.name(),
                    which.trailing_zeros()
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

/// `Create`, then the cluster as the registry holds it: its size and
/// endpoint count (which an existing cluster keeps, whatever was asked),
/// how many members it has and how many slots are free. Warns on stderr
/// when the cluster is not what was asked for.
async fn create(
    client: &mut RegistryClient,
    name: &str,
    size: u32,
    endpoints: u32,
) -> Result<(), ClientError> {
    let info = client.create(name, size, endpoints).await?;
    let by_id = ClusterRef {
        id: Some(info.id.clone()),
        name: None,
    };
    let members = client.members(&by_id).await?;
    let joined = members.members.len();
    println!(
        "cluster {} id {} size {} endpoints {} members {} free {}",
        info.name,
        to_hex(&info.id),
        info.size,
        info.endpoints,
        joined,
        free_slots(&members).len()
    );
    if let Some(warning) = create_warning(&info, size, endpoints, joined) {
        warn!("{warning}");
    }
    Ok(())
}

/// What `create` should tell the operator when the cluster the registry
/// holds differs from the one asked for.
fn create_warning(info: &ClusterInfo, size: u32, endpoints: u32, joined: usize) -> Option<String> {
    let clamped = size.clamp(MIN_CLUSTER_SIZE, MAX_CLUSTER_SIZE);
    if info.size == clamped && info.endpoints == endpoints {
        return (clamped != size).then(|| {
            format!(
                "cluster {} has size {} (sizes are {MIN_CLUSTER_SIZE} to {MAX_CLUSTER_SIZE}; \
                 --size {size} was clamped)",
                info.name, info.size
            )
        });
    }
    Some(format!(
        "cluster {} already exists with size {} and {} endpoint(s) per member ({joined} \
         joined); the registry keeps an existing cluster as it is, so --size {size} \
         --endpoints {endpoints} was not applied (the registry's operator changes a size \
         with `catalogue xlreg admin set-size`)",
        info.name, info.size, info.endpoints
    ))
}

/// The slots (join indices below the cluster's size) nobody holds.
fn free_slots(members: &Members) -> Vec<u32> {
    (0..members.cluster.size.min(MAX_CLUSTER_SIZE))
        .filter(|i| members.which & (1u64 << i) == 0)
        .collect()
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
            "free": free_slots(members),
        });
        println!("{out}");
    } else {
        let free = free_slots(members);
        let mut slots: Vec<(u32, String)> = members
            .members
            .iter()
            .map(|m| {
                let line = format!(
                    "{} {} {} {}",
                    m.index,
                    m.name,
                    m.my_ends.join(","),
                    to_hex(&m.id)
                );
                (m.index, line)
            })
            .chain(free.iter().map(|i| (*i, format!("{i} (free)"))))
            .collect();
        slots.sort_by_key(|(index, _)| *index);
        for (_, line) in slots {
            println!("{line}");
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

    fn info(size: u32, endpoints: u32) -> ClusterInfo {
        ClusterInfo {
            id: vec![1; 32],
            name: "demo".into(),
            size,
            endpoints,
            attrs: 0,
            creator: None,
        }
    }

    #[test]
    fn create_warns_when_the_cluster_is_not_what_was_asked() {
        assert_eq!(create_warning(&info(3, 1), 3, 1, 0), None);
        let existing = create_warning(&info(3, 1), 5, 1, 3).expect("warns");
        assert!(
            existing.contains("already exists with size 3") && existing.contains("--size 5"),
            "{existing}"
        );
        assert!(create_warning(&info(3, 1), 3, 2, 3).is_some(), "endpoints");
        let clamped = create_warning(&info(64, 1), 100, 1, 0).expect("warns");
        assert!(clamped.contains("clamped"), "{clamped}");
    }

    #[test]
    fn free_slots_are_those_below_the_size_nobody_holds() {
        let members = |size, which| Members {
            cluster: info(size, 1),
            which,
            members: Vec::new(),
        };
        assert_eq!(free_slots(&members(4, 0b0101)), [1, 3]);
        assert_eq!(free_slots(&members(2, 0b11)), Vec::<u32>::new());
        assert_eq!(free_slots(&members(64, u64::MAX >> 1)), [63]);
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
