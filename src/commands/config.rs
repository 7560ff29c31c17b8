//! `catalogue config show` and `catalogue config check`. `check` also prints
//! the warnings of valid but risky settings (`warning: <key>: <problem>`,
//! e.g. a registry served without admission control in production); they
//! do not change its exit status. `check` also looks at the files and
//! directories the node will need: the configured files (`tls.*`,
//! `xlreg.secret_file`) must be readable, `node.data_dir` writable (or
//! creatable).

use std::{ffi::CString, os::unix::ffi::OsStrExt, path::Path};

use catalogue_actors::settings::Settings;

use super::{Exit, load_settings};
use crate::cli::SettingsArgs;

/// May this process access `path` as `mode` (`libc::R_OK`, `libc::W_OK`)?
fn may(path: &Path, mode: libc::c_int) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string for the whole call.
    unsafe { libc::access(c.as_ptr(), mode) == 0 }
}

/// `(key, problem)` for each configured file that cannot be read and for a
/// data directory that cannot be written or created.
pub fn path_problems(settings: &Settings) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let files = [
        ("tls.ca", &settings.tls.ca),
        ("tls.cert", &settings.tls.cert),
        ("tls.key", &settings.tls.key),
        ("xlreg.secret_file", &settings.xlreg.secret_file),
    ];
    for (key, path) in files.into_iter().filter(|(_, p)| !p.is_empty()) {
        let path = Path::new(path);
        let problem = match std::fs::File::open(path) {
            Err(e) => format!("cannot read {}: {e}", path.display()),
            Ok(_) if path.is_dir() => format!("{} is a directory, not a file", path.display()),
            Ok(_) => continue,
        };
        problems.push((
            key.to_string(),
            format!(
                "{problem} (the node's user, e.g. catalogue under systemd, must be able to read it)"
            ),
        ));
    }
    let dir = &settings.node.data_dir;
    if !dir.as_os_str().is_empty() {
        let problem = if dir.is_dir() {
            (!may(dir, libc::W_OK)).then(|| format!("{} is not writable", dir.display()))
        } else if dir.exists() {
            Some(format!("{} is not a directory", dir.display()))
        } else {
            // serve creates it: the nearest existing ancestor must be writable.
            let ancestor = dir.ancestors().skip(1).find(|a| a.exists());
            match ancestor {
                Some(a) if a.is_dir() && may(a, libc::W_OK) => None,
                Some(a) => Some(format!(
                    "{} does not exist and cannot be created ({} is not a writable directory)",
                    dir.display(),
                    a.display()
                )),
                None => Some(format!("{} does not exist", dir.display())),
            }
        };
        if let Some(problem) = problem {
            problems.push(("node.data_dir".to_string(), problem));
        }
    }
    problems
}

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
            let problems = path_problems(&loaded.settings);
            if !problems.is_empty() {
                for (key, problem) in &problems {
                    eprintln!("error: {key}: {problem} (set in {})", loaded.source_of(key));
                }
                return Exit::Config;
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
