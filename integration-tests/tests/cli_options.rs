//! Options every command shares, through the real binary: `xlreg` commands
//! take `--set` beside `--config` and a `--timeout` duration (a bare number
//! still being seconds), and human logs carry no ANSI colours when standard
//! error is not a terminal.

use std::process::{Command, Stdio};

use anyhow::Result;
use catalogue_integration_tests::catalogue_bin;

/// Runs `catalogue ARGS` with standard error piped (not a terminal) and
/// without `NO_COLOR`; returns the exit code and standard error.
fn run(args: &[&str]) -> Result<(i32, String)> {
    let out = Command::new(catalogue_bin())
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("CATALOGUE_LOG")
        .stdin(Stdio::null())
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn xlreg_takes_set_and_logs_without_colours_off_a_terminal() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let identity = dir.path().to_str().unwrap_or(".");
    let (code, stderr) = run(&[
        "xlreg",
        "members",
        "c1",
        "--identity-dir",
        identity,
        "--set",
        "xlreg.server=127.0.0.1:1",
        "--timeout",
        "1",
    ])?;
    assert_ne!(code, 0, "{stderr}");
    // The override reached the configuration: its validation speaks of it.
    assert!(
        stderr.contains("xlreg.cluster.name: must be set when xlreg.server is set"),
        "{stderr}"
    );
    assert!(stderr.contains(" WARN "), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "ANSI escapes in {stderr:?}");
    Ok(())
}

#[test]
fn xlreg_timeout_is_a_duration() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let identity = dir.path().to_str().unwrap_or(".");
    let (code, stderr) = run(&[
        "xlreg",
        "members",
        "c1",
        "--identity-dir",
        identity,
        "--timeout",
        "5x",
    ])?;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("'5x' for '--timeout <DURATION>'") && stderr.contains("e.g. 30s"),
        "{stderr}"
    );
    for accepted in ["1m 30s", "500ms", "45"] {
        let (_, stderr) = run(&[
            "xlreg",
            "members",
            "c1",
            "--identity-dir",
            identity,
            "--timeout",
            accepted,
        ])?;
        assert!(!stderr.contains("--timeout"), "{accepted}: {stderr}");
    }
    Ok(())
}
