//! `catalogue config show` and `catalogue config check`.

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
