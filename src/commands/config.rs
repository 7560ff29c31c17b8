//! `catalogue config show` and `catalogue config check`. `check` also prints
//! the warnings of valid but risky settings (`warning: <key>: <problem>`,
//! e.g. a registry served without admission control in production); they
//! do not change its exit status.

use super::{Exit, load_settings};
use crate::cli::SettingsArgs;

/// Prints the merged settings as TOML.
pub fn show(args: &SettingsArgs) -> Exit {
    let loaded = match load_settings(args) {
        Ok(loaded) => loaded,
        Err(exit) => return exit,
    };
    match toml::to_string(&loaded.settings) {
        Ok(text) => {
            print!("{text}");
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: cannot render the settings as TOML: {e}");
            Exit::Failure
        }
    }
}

/// Validates the merged settings.
pub fn check(args: &SettingsArgs) -> Exit {
    match load_settings(args) {
        Ok(loaded) => {
            for warning in loaded.settings.warnings() {
                eprintln!("warning: {warning}");
            }
            let layers: Vec<String> = loaded
                .origins()
                .map(|o| o.describe("").trim_end_matches(' ').to_string())
                .collect();
            println!("configuration is valid (layers: {})", layers.join(", "));
            Exit::Ok
        }
        Err(exit) => exit,
    }
}
