//! Tests of configuration layering: precedence of every layer, and error
//! messages that name the key and the layer that set it.

use std::{collections::HashMap, io::Write, path::PathBuf};

use tempfile::NamedTempFile;

use super::*;

fn file(text: &str) -> NamedTempFile {
    let mut f = NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    f
}

fn layers() -> Layers {
    Layers {
        defaults: DEFAULT_TOML.to_string(),
        system_file: None,
        files: vec![],
        env: HashMap::new(),
        flags: vec![],
    }
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn problems(result: Result<Loaded, LoadError>) -> Vec<String> {
    match result {
        Err(LoadError::Invalid(p)) => p.iter().map(ToString::to_string).collect(),
        Err(other) => panic!("expected invalid settings, got {other}"),
        Ok(_) => panic!("expected invalid settings, got valid ones"),
    }
}

#[test]
fn each_layer_overrides_the_one_before_and_removing_it_reveals_it() {
    let system = file("[node]\nenvironment = \"from-system\"\n");
    let first = file("[node]\nenvironment = \"from-first\"\n");
    let second = file("[node]\nenvironment = \"from-second\"\n");
    let mut l = layers();
    l.system_file = Some(system.path().to_path_buf());
    l.files = vec![first.path().to_path_buf(), second.path().to_path_buf()];
    l.env = env(&[
        ("CATALOGUE__NODE__ENVIRONMENT", "from-env"),
        ("PATH", "/bin"),
    ]);
    l.flags = vec![("node.environment".into(), "from-flag".into())];

    let expect = |l: &Layers, value: &str, source: &str| {
        let loaded = l.load().expect("valid");
        assert_eq!(loaded.settings.node.environment, value);
        assert_eq!(loaded.source_of("node.environment"), source);
    };
    expect(&l, "from-flag", "command-line flag --set node.environment");
    l.flags.clear();
    expect(
        &l,
        "from-env",
        "environment variable CATALOGUE__NODE__ENVIRONMENT",
    );
    l.env.clear();
    expect(&l, "from-second", &second.path().display().to_string());
    l.files.pop();
    expect(&l, "from-first", &first.path().display().to_string());
    l.files.pop();
    expect(&l, "from-system", &system.path().display().to_string());
    l.system_file = None;
    expect(&l, "production", "built-in defaults");
}

#[test]
fn a_file_overrides_only_the_keys_it_sets() {
    let f = file("[limits]\nsubscription_queue = 128\n");
    let mut l = layers();
    l.files = vec![f.path().to_path_buf()];
    let s = l.load().expect("valid").settings;
    assert_eq!(s.limits.subscription_queue, 128);
    assert_eq!(s.limits.max_frame_bytes, 4 * 1024 * 1024, "default kept");
}

#[test]
fn environment_values_are_typed_by_the_settings() {
    let mut l = layers();
    l.env = env(&[
        ("CATALOGUE__LIMITS__MAX_FRAME_BYTES", "65536"),
        ("CATALOGUE__NODE__DEBUG", "true"),
        // (Debug mode only on loopback and outside production.)
        ("CATALOGUE__NODE__ENVIRONMENT", "dev"),
        ("CATALOGUE__LISTEN__PEER", "127.0.0.1:7481"),
        ("CATALOGUE__SYNC__TOMBSTONE_TTL", "90s"),
        ("CATALOGUE__REGISTER__ALLOWED_UIDS", "0,1000"),
        ("CATALOGUE__NODE__DATA_DIR", "/srv/catalogue"),
    ]);
    let s = l.load().expect("valid").settings;
    assert_eq!(s.limits.max_frame_bytes, 65536);
    assert!(s.node.debug);
    assert_eq!(s.sync.tombstone_ttl, std::time::Duration::from_secs(90));
    assert_eq!(s.register.allowed_uids, vec![0, 1000]);
    assert_eq!(s.node.data_dir, PathBuf::from("/srv/catalogue"));
}

#[test]
fn flags_take_toml_values_or_strings() {
    let mut l = layers();
    l.flags = vec![
        ("limits.max_frame_bytes".into(), "8192".into()),
        ("node.name".into(), "node-7".into()),
        ("register.allowed_gids".into(), "[10, 20]".into()),
        (
            "peers".into(),
            r#"[{name = "b", address = "127.0.0.1:9"}]"#.into(),
        ),
        ("node.debug".into(), "true".into()),
        // (Debug mode only on loopback and outside production.)
        ("node.environment".into(), "dev".into()),
        ("listen.peer".into(), "127.0.0.1:7481".into()),
        ("limits.subscription_queue".into(), "100".into()),
        ("limits.subscription_queue".into(), "200".into()),
    ];
    let s = l.load().expect("valid").settings;
    assert_eq!(s.limits.max_frame_bytes, 8192);
    assert_eq!(s.node.name, "node-7");
    assert_eq!(s.register.allowed_gids, vec![10, 20]);
    assert_eq!(s.peers.len(), 1);
    assert_eq!(s.peers[0].address, "127.0.0.1:9");
    assert_eq!(s.limits.subscription_queue, 200, "the later flag wins");
}

#[test]
fn a_malformed_flag_key_is_refused() {
    let mut l = layers();
    l.flags = vec![("node.name = \"x\"\nnode.debug".into(), "true".into())];
    assert!(matches!(l.load(), Err(LoadError::Syntax { .. })));
}

#[test]
fn an_invalid_value_names_key_and_file() {
    let f = file("[limits]\nmax_frame_bytes = 10\n");
    let mut l = layers();
    l.files = vec![f.path().to_path_buf()];
    let p = problems(l.load());
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("limits.max_frame_bytes: 10 is out of range"),
        "{p:?}"
    );
    assert!(
        p[0].ends_with(&format!("(set in {})", f.path().display())),
        "{p:?}"
    );
}

#[test]
fn an_invalid_value_from_the_environment_names_the_variable() {
    let mut l = layers();
    l.env = env(&[("CATALOGUE__LISTEN__CLIENT", "nowhere")]);
    let p = problems(l.load());
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("listen.client: "), "{p:?}");
    assert!(
        p[0].ends_with("(set in environment variable CATALOGUE__LISTEN__CLIENT)"),
        "{p:?}"
    );
}

#[test]
fn a_wrong_type_names_key_and_file() {
    let f = file("[limits]\nmax_frame_bytes = \"big\"\n");
    let mut l = layers();
    l.files = vec![f.path().to_path_buf()];
    let p = problems(l.load());
    assert!(p[0].starts_with("limits.max_frame_bytes: invalid"), "{p:?}");
    assert!(
        p[0].ends_with(&format!("(set in {})", f.path().display())),
        "{p:?}"
    );
}

#[test]
fn an_unknown_key_is_refused_with_its_file() {
    let f = file("[limits]\nmax_frame_byte = 100\n");
    let mut l = layers();
    l.files = vec![f.path().to_path_buf()];
    let p = problems(l.load());
    assert!(p[0].contains("max_frame_byte"), "{p:?}");
    assert!(p[0].contains("unknown field"), "{p:?}");
    assert!(
        p[0].ends_with(&format!("(set in {})", f.path().display())),
        "{p:?}"
    );
}

#[test]
fn a_missing_config_file_is_an_error() {
    let mut l = layers();
    l.files = vec![PathBuf::from("/nonexistent/catalogue.toml")];
    assert!(matches!(l.load(), Err(LoadError::Unreadable { .. })));
}

#[test]
fn a_file_with_bad_syntax_is_an_error_naming_it() {
    let f = file("[limits\n");
    let mut l = layers();
    l.files = vec![f.path().to_path_buf()];
    match l.load() {
        Err(LoadError::Syntax { origin, .. }) => assert_eq!(origin, f.path().display().to_string()),
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn an_empty_node_name_becomes_the_host_name() {
    let loaded = layers().load().expect("valid");
    assert!(!loaded.settings.node.name.is_empty());
    assert_eq!(loaded.source_of("node.name"), "the host name");
}

#[test]
fn env_var_names_follow_the_keys() {
    assert_eq!(
        env_var_name("sync.tombstone_ttl"),
        "CATALOGUE__SYNC__TOMBSTONE_TTL"
    );
    assert_eq!(
        env_var_name("xlreg.cluster.size"),
        "CATALOGUE__XLREG__CLUSTER__SIZE"
    );
}
