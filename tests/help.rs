//! Every subcommand of the real binary answers `--help` with exit 0 and a
//! usage line. (This test also makes `cargo test` build the `catalogue`
//! binary that the integration-tests crate starts.)

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_catalogue"))
        .args(args)
        .arg("--help")
        .output()
        .expect("run catalogue");
    assert!(
        out.status.success(),
        "{args:?} --help exited {:?}",
        out.status
    );
    String::from_utf8(out.stdout).expect("utf-8 help")
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        &[][..],
        &["serve"],
        &["config"],
        &["config", "show"],
        &["config", "check"],
        &["register"],
        &["subscribe"],
        &["list"],
        &["links"],
        &["peers"],
        &["tls", "ca"],
        &["tls", "cert"],
        &["dev"],
        &["bench"],
    ] {
        let text = help(args);
        assert!(text.contains("Usage: catalogue"), "{args:?}: {text}");
    }
}
