//! `catalogue completions SHELL` and `catalogue manpage`: shell completion
//! scripts (clap_complete) and the catalogue(1) manual page (clap_mangen),
//! both generated from the clap definitions in `cli.rs`, so they cannot
//! drift from the real options. The .deb ships their output (see
//! `deploy/build-deb.sh`).

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use super::Exit;
use crate::cli::Cli;

/// Writes the completion script for `shell` to standard output.
pub fn completions(shell: Shell) -> Exit {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "catalogue", &mut out);
    write_out(&out)
}

/// Writes catalogue(1) to standard output: the top-level page, then one
/// section per subcommand (nested ones included) with its options.
pub fn manpage() -> Exit {
    let command = Cli::command();
    let mut out = Vec::new();
    let rendered = clap_mangen::Man::new(command.clone())
        .render(&mut out)
        .and_then(|()| subcommand_sections(&command, "catalogue", &mut out));
    match rendered {
        Ok(()) => write_out(&out),
        Err(e) => {
            eprintln!("error: cannot render the manual page: {e}");
            Exit::Failure
        }
    }
}

/// Appends, for every subcommand of `command` (depth first), a section
/// headed by its full name with its description and options.
fn subcommand_sections(
    command: &clap::Command,
    prefix: &str,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("{prefix} {}", sub.get_name());
        writeln!(out, ".SH \"{}\"", name.to_uppercase())?;
        let man = clap_mangen::Man::new(sub.clone().bin_name(name.clone()));
        man.render_description_section(out)?;
        man.render_synopsis_section(out)?;
        if sub.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(out)?;
        }
        subcommand_sections(sub, &name, out)?;
    }
    Ok(())
}

/// Writes `bytes` to standard output; a closed pipe (`| head`) is not an
/// error worth more than exit 1.
fn write_out(bytes: &[u8]) -> Exit {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Exit::Ok,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Exit::Failure,
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            Exit::Failure
        }
    }
}
