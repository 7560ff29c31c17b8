//! What the binary generates from its clap definitions, through the real
//! binary: shell completions that know the subcommands and their options,
//! a catalogue(1) page that is valid roff (rendered by `man -l` where
//! man-db is installed) with a section per subcommand, and help that keeps
//! the global logging options under their own heading.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};
use catalogue_integration_tests::catalogue_bin;

/// Runs `catalogue ARGS`; fails unless it exits 0; returns standard output.
fn stdout_of(args: &[&str]) -> Result<String> {
    let out = Command::new(catalogue_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    ensure!(
        out.status.success(),
        "catalogue {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

#[test]
fn bash_completion_knows_the_subcommands_and_their_options() -> Result<()> {
    let bash = stdout_of(&["completions", "bash"])?;
    assert!(
        bash.contains("complete -F"),
        "not a bash completion: {bash:.200}"
    );
    for word in [
        "subscribe",
        "register",
        "peers",
        "links",
        "xlreg",
        "manpage",
    ] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    // Options of a nested subcommand, not only the top level.
    assert!(bash.contains("--expect-environment") && bash.contains("--trust-uid"));
    let zsh = stdout_of(&["completions", "zsh"])?;
    assert!(zsh.starts_with("#compdef catalogue"), "{zsh:.100}");
    let fish = stdout_of(&["completions", "fish"])?;
    assert!(fish.contains("complete -c catalogue") && fish.contains("subscribe"));
    Ok(())
}

#[test]
fn an_unknown_shell_is_refused_with_the_valid_ones() -> Result<()> {
    let out = Command::new(catalogue_bin())
        .args(["completions", "tcsh"])
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bash") && stderr.contains("zsh"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn the_man_page_is_roff_and_renders() -> Result<()> {
    let roff = stdout_of(&["manpage"])?;
    assert!(roff.contains(".TH catalogue 1"), "{roff:.300}");
    for header in [".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS"] {
        assert!(roff.contains(header), "man page lacks {header}");
    }
    // A section per subcommand, nested ones included.
    for section in [
        "CATALOGUE SUBSCRIBE",
        "CATALOGUE CONFIG CHECK",
        "CATALOGUE TLS CERT",
    ] {
        assert!(roff.contains(&format!(".SH \"{section}\"")), "no {section}");
    }
    let dir = tempfile::tempdir()?;
    let page = dir.path().join("catalogue.1");
    std::fs::write(&page, &roff)?;
    let rendered = match Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
    {
        Ok(out) => out,
        Err(_) => {
            eprintln!("man is not installed: checked the roff only");
            return Ok(());
        }
    };
    let text = String::from_utf8_lossy(&rendered.stdout);
    assert!(
        rendered.status.success(),
        "man -l: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    assert!(
        text.contains("CATALOGUE SUBSCRIBE") && text.contains("--expect-environment"),
        "rendered page: {text:.500}"
    );
    // Rendering leaves no roff requests behind.
    assert!(!text.contains(".SH"), "unrendered roff: {text:.500}");
    Ok(())
}

#[test]
fn help_keeps_the_logging_options_apart() -> Result<()> {
    let help = stdout_of(&["list", "--help"])?;
    let heading = help
        .find("Logging options (every command):")
        .context("no logging heading")?;
    let options = help.find("Options:").context("no Options heading")?;
    let log_format = help.find("--log-format").context("no --log-format")?;
    assert!(options < heading && heading < log_format, "{help}");
    // The subcommand's own options stay under Options.
    let socket = help.find("--socket").context("no --socket")?;
    assert!(options < socket && socket < heading, "{help}");
    Ok(())
}
