//! Logging setup: `tracing` events to standard error, human-readable by
//! default or one JSON object per line with `--log-format json`. The filter
//! can be replaced while running ([`LogControl::set_filter`]), which is how
//! `log.level` is applied again on SIGHUP.

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The filter does not parse.
    #[error("invalid log level {filter:?}: {reason}")]
    Filter {
        /// The filter given.
        filter: String,
        /// The parser's message.
        reason: String,
    },
}

type Setter = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

/// Changes the log filter of the installed subscriber.
pub struct LogControl {
    set: Option<Setter>,
    /// True when the filter came from `--log-level` or `CATALOGUE_LOG`,
    /// which then win over `log.level` in the configuration.
    pub from_command_line: bool,
}

impl LogControl {
    /// Replaces the filter.
    pub fn set_filter(&self, filter: &str) -> Result<(), LoggingError> {
        let parsed = parse(filter)?;
        match &self.set {
            Some(set) => set(parsed).map_err(|reason| LoggingError::Filter {
                filter: filter.to_string(),
                reason,
            }),
            None => Ok(()),
        }
    }
}

fn parse(filter: &str) -> Result<EnvFilter, LoggingError> {
    EnvFilter::try_new(filter).map_err(|e| LoggingError::Filter {
        filter: filter.to_string(),
        reason: e.to_string(),
    })
}

/// Colours in human logs only on a terminal, and never with `NO_COLOR` set
/// (<https://no-color.org>).
fn colours() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber with `filter` (`None`: `info`).
pub fn init(format: LogFormat, filter: Option<&str>) -> Result<LogControl, LoggingError> {
    let env_filter = parse(filter.unwrap_or("info"))?;
    let from_command_line = filter.is_some();
    // A second initialisation (only possible in tests) keeps the first.
    let set: Option<Setter> =
        match format {
            LogFormat::Human => {
                let builder = tracing_subscriber::fmt()
                    .with_writer(std::io::stderr)
                    .with_ansi(colours())
                    .with_env_filter(env_filter)
                    .with_filter_reloading();
                let handle = builder.reload_handle();
                builder.try_init().ok().map(|()| {
                    Box::new(move |f| handle.reload(f).map_err(|e| e.to_string())) as Setter
                })
            }
            LogFormat::Json => {
                let builder = tracing_subscriber::fmt()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr)
                    .with_env_filter(env_filter)
                    .with_filter_reloading();
                let handle = builder.reload_handle();
                builder.try_init().ok().map(|()| {
                    Box::new(move |f| handle.reload(f).map_err(|e| e.to_string())) as Setter
                })
            }
        };
    Ok(LogControl {
        set,
        from_command_line,
    })
}
