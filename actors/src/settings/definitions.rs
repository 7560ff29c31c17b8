//! `[[services]]`: services the node itself registers for as long as it
//! runs, each with an optional health check (docs/CLIENTS.md, "Services the
//! node owns"). The types here are only the configuration; the
//! [`crate::definitions`] module registers them and runs their checks.

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};

/// One `[[services]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDefinition {
    /// The service's URI, unique among the definitions.
    pub uri: String,
    /// Its attributes.
    #[serde(default)]
    pub attrs: BTreeMap<String, String>,
    /// A health check; without one the service is registered as long as
    /// the node runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckSettings>,
}

/// `services[i].check`: exactly one of `tcp`, `http`, `exec`, and when to
/// run it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSettings {
    /// `host:port` that must accept a TCP connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    /// `http://` URL whose GET must answer 2xx (plain HTTP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// Program and arguments (no shell) that must exit 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    /// Time between the starts of two runs.
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Longest a run may take; a run that takes longer failed.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Consecutive failures that withdraw a registered service.
    #[serde(default = "default_failures")]
    pub failures: u32,
    /// Consecutive passes that (re)register a withdrawn service.
    #[serde(default = "default_successes")]
    pub successes: u32,
}

fn default_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_failures() -> u32 {
    3
}

fn default_successes() -> u32 {
    1
}

/// What a check does, once validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// Connect to `host:port`.
    Tcp(String),
    /// GET this `http://` URL.
    Http(String),
    /// Run this program with these arguments.
    Exec(Vec<String>),
}

impl CheckSettings {
    /// The one kind set, or `None` when none or several are set (which
    /// validation refuses).
    pub fn kind(&self) -> Option<CheckKind> {
        match (&self.tcp, &self.http, &self.exec) {
            (Some(a), None, None) => Some(CheckKind::Tcp(a.clone())),
            (None, Some(u), None) => Some(CheckKind::Http(u.clone())),
            (None, None, Some(c)) => Some(CheckKind::Exec(c.clone())),
            _ => None,
        }
    }
}
