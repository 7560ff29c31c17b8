//! Layered configuration: merges the layers in order, later wins, key by key:
//!
//! 1. the built-in `config/default.toml` (compiled in, holds every key),
//! 2. `/etc/catalogue/catalogue.toml`, if present,
//! 3. each `--config FILE`, in the order given (a missing file is an error),
//! 4. environment variables `CATALOGUE__SECTION__KEY`,
//! 5. command-line flags (`--set section.key=value` and named flags).
//!
//! The merged tree is deserialized into [`Settings`] and validated. Every
//! problem is reported with the key and the layer that set it, so an
//! operator knows which file (or variable, or flag) to fix.

use std::{
    collections::HashMap,
    fmt,
    path::{Path, PathBuf},
};

use catalogue_actors::settings::Settings;
use config::{Config, File, FileFormat};

/// The built-in defaults: the first layer.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// The system-wide file: the second layer, read when it exists.
pub const SYSTEM_FILE: &str = "/etc/catalogue/catalogue.toml";

/// Prefix of the environment variables read as a layer, with its separator.
pub const ENV_PREFIX: &str = "CATALOGUE";
const ENV_SEPARATOR: &str = "__";

/// Keys whose environment values are comma-separated lists.
const ENV_LIST_KEYS: &[&str] = &["register.allowed_uids", "register.allowed_gids"];

/// Where a layer comes from, as shown to the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The compiled-in `config/default.toml`.
    Defaults,
    /// A configuration file (the system file or a `--config` file).
    File(PathBuf),
    /// The `CATALOGUE__...` environment variables.
    Environment,
    /// Command-line flags.
    Flags,
    /// Filled in by the loader (the host name for an empty `node.name`).
    Derived(&'static str),
}

/// One invalid setting, with the layer that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedProblem {
    /// Dotted key, e.g. `limits.max_frame_bytes` or `peers[1].address`.
    pub key: String,
    /// What is wrong.
    pub problem: String,
    /// Who set it, e.g. `/etc/catalogue/catalogue.toml` or
    /// `environment variable CATALOGUE__NODE__NAME`.
    pub source: String,
}

impl fmt::Display for LocatedProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (set in {})", self.key, self.problem, self.source)
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A `--config` file does not exist or cannot be read.
    #[error("{path}: cannot read configuration file: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// A file or flag is not valid TOML.
    #[error("{origin}: {reason}")]
    Syntax {
        /// The file or flag.
        origin: String,
        /// The parser's message.
        reason: String,
    },
    /// Some settings have wrong types or values.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<LocatedProblem>),
}

/// The inputs of every layer. Tests build one by hand; the binary builds it
/// from the real files, environment and flags.
#[derive(Debug, Clone)]
pub struct Layers {
    /// Text of the defaults layer.
    pub defaults: String,
    /// The system-wide file; skipped when it does not exist.
    pub system_file: Option<PathBuf>,
    /// `--config` files, in order.
    pub files: Vec<PathBuf>,
    /// Environment variables (all of them; those without the prefix are
    /// ignored).
    pub env: HashMap<String, String>,
    /// `(key, value)` pairs from the command line, in order; a value that
    /// parses as a TOML value (number, boolean, array, inline table) is
    /// taken as such, anything else as a string.
    pub flags: Vec<(String, String)>,
}

/// Settings loaded from the layers, with what is needed to say where each
/// value came from.
#[derive(Debug)]
pub struct Loaded {
    /// The merged, validated settings.
    pub settings: Settings,
    /// Each layer on its own, in order, for [`Loaded::source_of`].
    layers: Vec<(Origin, Config)>,
    /// True when `node.name` was empty and the host name filled it in.
    derived_name: bool,
}

impl Layers {
    /// The layers of a real run: defaults, the system file, the given files,
    /// this process's environment and the given flags.
    pub fn from_process(files: Vec<PathBuf>, flags: Vec<(String, String)>) -> Self {
        Layers {
            defaults: DEFAULT_TOML.to_string(),
            system_file: Some(PathBuf::from(SYSTEM_FILE)),
            files,
            env: std::env::vars().collect(),
            flags,
        }
    }

    /// Merges, deserializes and validates.
    pub fn load(&self) -> Result<Loaded, LoadError> {
        let layers = self.build_layers()?;
        let mut merged = Config::builder();
        for (_, layer) in &layers {
            merged = merged.add_source(layer.clone());
        }
        let merged = merged
            .build()
            .map_err(|e| syntax_error("configuration", e))?;
        // Every problem, not only the first: a key that does not
        // deserialize is reported, put back to its default and the rest
        // checked again.
        let mut problems: Vec<LocatedProblem> = Vec::new();
        let mut merged = merged;
        let settings: Settings = loop {
            match serde_path_to_error::deserialize::<_, Settings>(merged.clone()) {
                Ok(settings) => break settings,
                Err(e) => {
                    let key = e.path().to_string();
                    let repeated = problems.iter().any(|p| p.key == key);
                    if !repeated {
                        problems.push(LocatedProblem {
                            problem: explain(&key, describe(e.inner())),
                            source: source_in(&layers, &key),
                            key: key.clone(),
                        });
                    }
                    let default = layers[0].1.get::<config::Value>(&key).ok();
                    let Some(default) = default.filter(|_| !repeated && problems.len() < 64) else {
                        return Err(LoadError::Invalid(problems));
                    };
                    merged = Config::builder()
                        .add_source(merged)
                        .set_override(&key, default)
                        .and_then(|b| b.build())
                        .map_err(|e| syntax_error("configuration", e))?;
                }
            }
        };
        problems.extend(loose_booleans(&layers, &merged));
        let mut loaded = Loaded {
            settings,
            layers,
            derived_name: false,
        };
        loaded.fill_derived();
        let validated: Vec<LocatedProblem> = loaded
            .settings
            .validate()
            .into_iter()
            .map(|p| LocatedProblem {
                source: loaded.source_of(&p.key),
                key: p.key,
                problem: p.problem,
            })
            .collect();
        problems.extend(validated);
        if problems.is_empty() {
            Ok(loaded)
        } else {
            Err(LoadError::Invalid(problems))
        }
    }

    fn build_layers(&self) -> Result<Vec<(Origin, Config)>, LoadError> {
        let mut layers = Vec::new();
        let defaults = single(File::from_str(&self.defaults, FileFormat::Toml))
            .map_err(|e| syntax_error("built-in defaults", e))?;
        layers.push((Origin::Defaults, defaults));

        if let Some(path) = self.system_file.as_ref().filter(|p| p.exists()) {
            layers.push((Origin::File(path.clone()), read_file(path)?));
        }
        for path in &self.files {
            layers.push((Origin::File(path.clone()), read_file(path)?));
        }

        let mut env: Vec<(&String, &String)> = self
            .env
            .iter()
            .filter(|(k, _)| {
                k.starts_with(ENV_PREFIX) && k[ENV_PREFIX.len()..].starts_with(ENV_SEPARATOR)
            })
            .collect();
        if !env.is_empty() {
            env.sort();
            let mut builder = Config::builder();
            for (name, value) in env {
                let key = env_key(name).ok_or_else(|| LoadError::Syntax {
                    origin: format!("environment variable {name}"),
                    reason: "does not name a setting (CATALOGUE__SECTION__KEY)".into(),
                })?;
                builder = if ENV_LIST_KEYS.contains(&key.as_str()) {
                    let items: Vec<String> = value
                        .split(',')
                        .map(str::trim)
                        .filter(|item| !item.is_empty())
                        .map(str::to_string)
                        .collect();
                    builder.set_override(&key, items)
                } else {
                    builder.set_override(&key, value.as_str())
                }
                .map_err(|e| syntax_error(&format!("environment variable {name}"), e))?;
            }
            let layer = builder
                .build()
                .map_err(|e| syntax_error("environment", e))?;
            layers.push((Origin::Environment, layer));
        }

        if !self.flags.is_empty() {
            // One source per flag: a key given twice is not a TOML error,
            // the later flag wins.
            let mut builder = Config::builder();
            for (key, value) in &self.flags {
                builder =
                    builder.add_source(File::from_str(&flag_line(key, value)?, FileFormat::Toml));
            }
            let layer = builder
                .build()
                .map_err(|e| syntax_error("command-line flags", e))?;
            layers.push((Origin::Flags, layer));
        }
        Ok(layers)
    }
}

impl Loaded {
    /// Names the layer that set `key`: the last layer holding it.
    pub fn source_of(&self, key: &str) -> String {
        if key == "node.name" && self.derived_name {
            return Origin::Derived("the host name").describe(key);
        }
        source_in(&self.layers, key)
    }

    /// The layers that took part, in order.
    pub fn origins(&self) -> impl Iterator<Item = &Origin> {
        self.layers.iter().map(|(o, _)| o)
    }

    fn fill_derived(&mut self) {
        if self.settings.node.name.is_empty() {
            self.settings.node.name = gethostname::gethostname().to_string_lossy().into_owned();
            self.derived_name = true;
        }
    }
}

impl Origin {
    /// How the operator finds this layer's setting of `key`.
    pub fn describe(&self, key: &str) -> String {
        match self {
            Origin::Defaults => "built-in defaults".to_string(),
            Origin::File(path) => path.display().to_string(),
            Origin::Environment => format!("environment variable {}", env_var_name(key)),
            Origin::Flags => format!("command-line flag --set {key}"),
            Origin::Derived(what) => what.to_string(),
        }
    }
}

/// The environment variable that sets `key`: `peers[0].name` has none, the
/// rest map to `CATALOGUE__SECTION__KEY`.
pub fn env_var_name(key: &str) -> String {
    let mut name = String::from(ENV_PREFIX);
    for part in key.split('.') {
        name.push_str(ENV_SEPARATOR);
        name.push_str(&part.to_ascii_uppercase());
    }
    name
}

/// The key an environment variable sets: `CATALOGUE__SYNC__TOMBSTONE_TTL` is
/// `sync.tombstone_ttl`. None when a part is empty.
fn env_key(name: &str) -> Option<String> {
    let rest = name.strip_prefix(ENV_PREFIX)?.strip_prefix(ENV_SEPARATOR)?;
    let parts: Vec<String> = rest
        .split(ENV_SEPARATOR)
        .map(str::to_ascii_lowercase)
        .collect();
    if parts.iter().any(String::is_empty) {
        return None;
    }
    Some(parts.join("."))
}

fn source_in(layers: &[(Origin, Config)], key: &str) -> String {
    layers
        .iter()
        .rev()
        .find(|(_, layer)| layer.get::<config::Value>(key).is_ok())
        .or_else(|| {
            // An unknown or misplaced key: blame the last layer that holds
            // its parent, if any.
            let parent = key.rsplit_once('.').map(|(p, _)| p)?;
            layers
                .iter()
                .rev()
                .find(|(_, layer)| layer.get::<config::Value>(parent).is_ok())
        })
        .map(|(origin, _)| origin.describe(key))
        .unwrap_or_else(|| "an unknown layer".to_string())
}

fn single(
    source: impl config::Source + Send + Sync + 'static,
) -> Result<Config, config::ConfigError> {
    Config::builder().add_source(source).build()
}

fn read_file(path: &Path) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    single(File::from_str(&text, FileFormat::Toml))
        .map_err(|e| syntax_error(&path.display().to_string(), e))
}

fn syntax_error(origin: &str, e: config::ConfigError) -> LoadError {
    LoadError::Syntax {
        origin: origin.to_string(),
        reason: e.to_string(),
    }
}

/// One TOML line for a command-line override. Keys are dotted lowercase
/// words (`limits.max_frame_bytes`); values are TOML values, or strings.
fn flag_line(key: &str, value: &str) -> Result<String, LoadError> {
    let valid_key = !key.is_empty()
        && key.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
    if !valid_key {
        return Err(LoadError::Syntax {
            origin: format!("command-line flag --set {key}"),
            reason: "keys are dotted lowercase words, e.g. limits.max_frame_bytes".into(),
        });
    }
    let as_toml = format!("{key} = {value}\n");
    if toml::from_str::<toml::Table>(&as_toml).is_ok() {
        Ok(as_toml)
    } else {
        let quoted = toml::Value::String(value.to_string());
        Ok(format!("{key} = {quoted}\n"))
    }
}

/// How durations are written, shown with a bad one.
const DURATION_SYNTAX: &str =
    "durations are a number and a unit (ms, s, m, h, d), e.g. 500ms, 30s, 5m or 1h 30m";

/// Adds what an operator needs to fix the problem of `key`: the duration
/// syntax, or the values an enumerated setting takes.
fn explain(key: &str, problem: String) -> String {
    if problem.contains("expected a duration") {
        format!("{problem}; {DURATION_SYNTAX}")
    } else if problem.contains("variant") {
        match valid_values(key) {
            Some(values) => format!("{problem}; {values}"),
            None => problem,
        }
    } else {
        problem
    }
}

/// "expected `a` or `b`" for an enumerated setting, read from serde's
/// own error for a value no variant has.
fn valid_values(key: &str) -> Option<String> {
    let (section, name) = key.split_once('.')?;
    let mut defaults: toml::Table = toml::from_str(DEFAULT_TOML).ok()?;
    defaults
        .get_mut(section)?
        .as_table_mut()?
        .insert(name.to_string(), toml::Value::String("\u{1}".into()));
    let error = toml::Value::Table(defaults)
        .try_into::<Settings>()
        .err()?
        .to_string();
    // serde: "unknown variant `x`, expected `a` or `b`" (or "one of ...").
    let after = &error[error.find("unknown variant")?..];
    let start = after.find("expected ")?;
    Some(after[start..].lines().next()?.trim().to_string())
}

/// Booleans given as strings other than `true` and `false` (the config
/// crate would take `yes`, `on` or `1` as true): a problem each. The
/// boolean keys are those whose built-in default is a boolean.
fn loose_booleans(layers: &[(Origin, Config)], merged: &Config) -> Vec<LocatedProblem> {
    fn bool_keys(prefix: &str, table: &config::Map<String, config::Value>, out: &mut Vec<String>) {
        for (name, value) in table {
            let key = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            match &value.kind {
                config::ValueKind::Boolean(_) => out.push(key),
                config::ValueKind::Table(t) => bool_keys(&key, t, out),
                _ => {}
            }
        }
    }
    let mut keys = Vec::new();
    if let Ok(defaults) = config::Source::collect(&layers[0].1) {
        bool_keys("", &defaults, &mut keys);
    }
    keys.into_iter()
        .filter_map(|key| {
            let value = merged.get::<config::Value>(&key).ok()?;
            match value.kind {
                config::ValueKind::String(s) if s != "true" && s != "false" => {
                    Some(LocatedProblem {
                        problem: format!("expected a boolean, true or false, got {s:?}"),
                        source: source_in(layers, &key),
                        key,
                    })
                }
                _ => None,
            }
        })
        .collect()
}

/// The problem of a deserialization error, without the key (reported apart).
fn describe(e: &config::ConfigError) -> String {
    match e {
        config::ConfigError::Type {
            unexpected,
            expected,
            ..
        } => format!("invalid type: {unexpected}, expected {expected}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
