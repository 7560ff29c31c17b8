//! Logging setup: `tracing` events to standard error, human-readable by
//! default or one JSON object per line with `--log-format json`.

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

/// Installs the global subscriber.
pub fn init(format: LogFormat, filter: &str) -> Result<(), LoggingError> {
    let env_filter = EnvFilter::try_new(filter).map_err(|e| LoggingError::Filter {
        filter: filter.to_string(),
        reason: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr);
    // A second initialisation (only possible in tests) keeps the first.
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    Ok(())
}
