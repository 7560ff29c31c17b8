//! The layered configuration through the real binary: precedence of the
//! defaults, two --config files, an environment variable and a flag, and
//! `config check` reporting the key and the layer that set it.

use std::{io::Write, process::Command};

use catalogue_integration_tests::catalogue_bin;
use tempfile::NamedTempFile;

fn file(text: &str) -> NamedTempFile {
    let mut f = NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    f
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn catalogue(args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = Command::new(catalogue_bin())
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run catalogue");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn shown_queue(args: &[&str], env: &[(&str, &str)]) -> i64 {
    let mut all = vec!["config", "show"];
    all.extend_from_slice(args);
    let run = catalogue(&all, env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let table: toml::Table = toml::from_str(&run.stdout).expect("config show prints TOML");
    table["limits"]["subscription_queue"]
        .as_integer()
        .expect("an integer")
}

#[test]
fn later_layers_win_and_removing_one_reveals_the_one_below() {
    let first = file("[limits]\nsubscription_queue = 111\n");
    let second = file("[limits]\nsubscription_queue = 222\n");
    let f1 = first.path().to_str().expect("utf-8 path");
    let f2 = second.path().to_str().expect("utf-8 path");
    let env = [("CATALOGUE__LIMITS__SUBSCRIPTION_QUEUE", "333")];
    let flag = ["--set", "limits.subscription_queue=444"];

    let all: Vec<&str> = ["--config", f1, "--config", f2]
        .into_iter()
        .chain(flag)
        .collect();
    assert_eq!(shown_queue(&all, &env), 444);
    assert_eq!(shown_queue(&["--config", f1, "--config", f2], &env), 333);
    assert_eq!(shown_queue(&["--config", f1, "--config", f2], &[]), 222);
    assert_eq!(shown_queue(&["--config", f1], &[]), 111);
    assert_eq!(shown_queue(&[], &[]), 4096, "built-in default");
}

#[test]
fn check_names_key_problem_and_source_and_exits_2() {
    let bad = file("[limits]\nsubscription_queue = 1\n");
    let path = bad.path().to_str().expect("utf-8 path");
    let run = catalogue(
        &["config", "check", "--config", path],
        &[("CATALOGUE__SYNC__RETRY_MAX", "1ms")],
    );
    assert_eq!(run.code, 2);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!("error: limits.subscription_queue: 1 is out of range 16..=16777216 (set in {path})"),
            "error: sync.retry_max: 1ms is shorter than sync.retry_initial (200ms) (set in environment variable CATALOGUE__SYNC__RETRY_MAX)".to_string(),
        ]
    );
}

#[test]
fn check_passes_on_the_defaults() {
    let run = catalogue(&["config", "check"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("configuration is valid"),
        "{}",
        run.stdout
    );
}

/// Debug mode (plaintext, unauthenticated peer links) is refused where
/// others can reach it and in production: the defaults listen for peers on
/// 0.0.0.0 in environment "production".
#[test]
fn check_refuses_debug_mode_off_loopback_or_in_production() {
    let run = catalogue(&["config", "check", "--debug"], &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let keys: Vec<&str> = run
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("error: "))
        .filter_map(|l| l.split(':').next())
        .collect();
    assert_eq!(keys, ["listen.peer", "node.debug"], "{}", run.stderr);
    let run = catalogue(
        &[
            "config",
            "check",
            "--debug",
            "--environment",
            "dev",
            "--set",
            "listen.peer=127.0.0.1:7481",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn a_missing_config_file_exits_2_naming_it() {
    let run = catalogue(&["config", "check", "--config", "/nonexistent/x.toml"], &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .starts_with("error: /nonexistent/x.toml: cannot read"),
        "{}",
        run.stderr
    );
}

#[test]
fn serve_with_invalid_settings_exits_2_before_listening() {
    let run = catalogue(&["serve", "--set", "listen.client=nowhere"], &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("error: listen.client:"),
        "{}",
        run.stderr
    );
}

#[test]
fn check_warns_about_a_registry_served_without_admission_in_production() {
    let open = catalogue(&["config", "check", "--set", "xlreg.serve=true"], &[]);
    assert_eq!(open.code, 0, "a warning, not an error: {}", open.stderr);
    assert!(
        open.stderr
            .contains("warning: xlreg.admit: the registry is served (xlreg.serve = true) without admission control"),
        "{}",
        open.stderr
    );
    for closed in [
        vec![
            "--set",
            "xlreg.serve=true",
            "--set",
            "xlreg.admit.secret_file=/etc/catalogue/xlreg.secret",
        ],
        vec!["--set", "xlreg.serve=true", "--environment", "staging"],
    ] {
        let mut args = vec!["config", "check"];
        args.extend(closed);
        let run = catalogue(&args, &[]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(!run.stderr.contains("warning"), "{args:?}: {}", run.stderr);
    }
}

/// The `error:` lines of a run.
fn errors(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect()
}

#[test]
fn check_reports_every_type_error_with_the_valid_values_and_the_duration_syntax() {
    let run = catalogue(
        &[
            "config",
            "check",
            "--set",
            "limits.overflow_policy=foo",
            "--set",
            "sync.tombstone_ttl=5x",
            "--set",
            "limits.max_frame_bytes=abc",
        ],
        &[],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    let errors = errors(&run);
    assert_eq!(errors.len(), 3, "{}", run.stderr);
    let line = |key: &str| {
        errors
            .iter()
            .find(|l| l.starts_with(&format!("error: {key}: ")))
            .unwrap_or_else(|| panic!("no error for {key} in {}", run.stderr))
            .to_string()
    };
    let policy = line("limits.overflow_policy");
    assert!(
        policy.contains("foo") && policy.contains("expected `resnapshot` or `drop`"),
        "{policy}"
    );
    let ttl = line("sync.tombstone_ttl");
    assert!(
        ttl.contains("\"5x\"") && ttl.contains("e.g. 500ms, 30s, 5m"),
        "{ttl}"
    );
    assert!(line("limits.max_frame_bytes").contains("expected an integer"));
}

#[test]
fn check_accepts_only_real_booleans() {
    let run = catalogue(&["config", "check", "--set", "node.debug=yes"], &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        errors(&run).contains(
            &"error: node.debug: expected a boolean, true or false, got \"yes\" (set in command-line flag --set node.debug)"
        ),
        "{}",
        run.stderr
    );
    // An environment variable is a string: "false" is a boolean.
    let run = catalogue(&["config", "check"], &[("CATALOGUE__NODE__DEBUG", "false")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn check_refuses_missing_tls_files_and_an_unusable_data_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = file("not checked here\n");
    let cert = cert.path().to_str().expect("utf-8 path");
    let missing = dir.path().join("ca.pem");
    let missing = missing.to_str().expect("utf-8 path");
    // A data_dir below a regular file can be neither used nor created.
    let data_dir = format!("{cert}/data");
    let run = catalogue(
        &[
            "config",
            "check",
            "--set",
            &format!("tls.ca={missing}"),
            "--set",
            &format!("tls.cert={cert}"),
            "--set",
            &format!("tls.key={cert}"),
            "--set",
            &format!("node.data_dir={data_dir}"),
        ],
        &[],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    let errors = errors(&run);
    assert_eq!(errors.len(), 2, "{}", run.stderr);
    assert!(
        errors[0].starts_with(&format!("error: tls.ca: cannot read {missing}: ")),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with(&format!(
            "error: node.data_dir: {data_dir} does not exist and cannot be created"
        )),
        "{}",
        errors[1]
    );
}

#[test]
fn check_refuses_two_listeners_on_one_port() {
    let run = catalogue(
        &[
            "config",
            "check",
            "--set",
            "xlreg.serve=true",
            "--set",
            "xlreg.listen=0.0.0.0:7480",
        ],
        &[],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("error: xlreg.listen: 0.0.0.0:7480 collides with listen.client"),
        "{}",
        run.stderr
    );
    // The registry on by default ports is fine.
    let run = catalogue(&["config", "check", "--set", "xlreg.serve=true"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}
