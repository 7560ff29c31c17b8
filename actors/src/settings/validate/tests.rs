//! Tests of settings validation against the built-in defaults.

use super::*;
use crate::settings::{PeerSettings, Settings};

fn defaults() -> Settings {
    toml::from_str(include_str!("../../../../config/default.toml")).expect("defaults parse")
}

/// Debug mode where it may run: loopback listeners, not production.
fn debug_on_loopback(s: &mut Settings) {
    s.node.debug = true;
    s.node.environment = "dev".into();
    s.listen.peer = "127.0.0.1:7481".into();
}

fn keys(s: &Settings) -> Vec<String> {
    s.validate().into_iter().map(|p| p.key).collect()
}

#[test]
fn built_in_defaults_are_valid() {
    assert_eq!(defaults().validate(), vec![]);
}

#[test]
fn bad_addresses_name_their_key() {
    let mut s = defaults();
    s.listen.client = "localhost".into();
    s.metrics.listen = "127.0.0.1:99999".into();
    assert_eq!(keys(&s), ["listen.client", "metrics.listen"]);
}

#[test]
fn tls_files_go_together() {
    let mut s = defaults();
    s.tls.ca = "/etc/catalogue/ca.pem".into();
    assert_eq!(keys(&s), ["tls.cert", "tls.key"]);
}

#[test]
fn peers_need_tls_unless_debug() {
    let mut s = defaults();
    s.node.name = "a".into();
    s.peers.push(PeerSettings {
        name: "b".into(),
        address: "b.example:7481".into(),
    });
    assert_eq!(keys(&s), ["tls.ca"]);
    debug_on_loopback(&mut s);
    assert_eq!(keys(&s), Vec::<String>::new());
}

#[test]
fn debug_mode_only_on_loopback_and_outside_production() {
    let mut s = defaults();
    s.node.debug = true;
    // The defaults: peer listener on 0.0.0.0, environment production.
    assert_eq!(keys(&s), ["listen.peer", "node.debug"]);
    s.listen.client = "10.0.0.1:7480".into();
    assert_eq!(keys(&s), ["listen.peer", "listen.client", "node.debug"]);
    debug_on_loopback(&mut s);
    s.listen.client = "[::1]:7480".into();
    assert_eq!(keys(&s), Vec::<String>::new());
}

#[test]
fn peers_are_unique_and_not_ourselves() {
    let mut s = defaults();
    debug_on_loopback(&mut s);
    s.node.name = "a".into();
    for (name, address) in [
        ("b", "10.0.0.2:7481"),
        ("b", "10.0.0.3:7481"),
        ("a", "x:1"),
        ("c", "nope"),
    ] {
        s.peers.push(PeerSettings {
            name: name.into(),
            address: address.into(),
        });
    }
    assert_eq!(
        keys(&s),
        ["peers[1].name", "peers[2].name", "peers[3].address"]
    );
}

#[test]
fn ranges_and_relations() {
    let mut s = defaults();
    s.limits.max_frame_bytes = 100;
    s.sync.retry_initial = Duration::from_secs(60);
    s.xlreg.cluster.size = 65;
    s.xlreg.cluster.endpoints = 0;
    assert_eq!(
        keys(&s),
        [
            "limits.max_frame_bytes",
            "sync.retry_max",
            "xlreg.cluster.size",
            "xlreg.cluster.endpoints"
        ]
    );
    s.limits.max_frame_bytes = 2048;
    s.limits.max_uri_bytes = 4096;
    assert!(keys(&s).contains(&"limits.max_uri_bytes".to_string()));
    s.limits.max_frame_bytes = 100;
    let problem = s.validate().remove(0);
    assert_eq!(
        problem.to_string(),
        "limits.max_frame_bytes: 100 is out of range 1024..=1073741824"
    );
}

#[test]
fn busy_polling_is_at_most_ten_milliseconds() {
    let mut s = defaults();
    assert_eq!(s.node.busy_poll, Duration::from_micros(50));
    s.node.busy_poll = Duration::ZERO;
    assert_eq!(keys(&s), Vec::<String>::new());
    s.node.busy_poll = Duration::from_secs(1);
    assert_eq!(
        s.validate().remove(0).to_string(),
        "node.busy_poll: 1s is longer than 10ms"
    );
}

#[test]
fn socket_path_must_fit_sun_path() {
    let mut s = defaults();
    s.listen.socket = format!("/{}", "s".repeat(200));
    assert_eq!(keys(&s), ["listen.socket"]);
    s.listen.socket = "relative.sock".into();
    assert_eq!(keys(&s), ["listen.socket"]);
}

#[test]
fn xlreg_client_needs_key_and_cluster() {
    let mut s = defaults();
    debug_on_loopback(&mut s);
    s.xlreg.server = "registry.example:7482".into();
    assert_eq!(keys(&s), ["xlreg.server_key", "xlreg.cluster.name"]);
}

#[test]
fn input_and_subscription_limits_are_checked() {
    let mut s = defaults();
    s.limits.max_frame_bytes = 65536;
    s.limits.handshake_frame_bytes = 512;
    s.limits.frame_read_timeout = Duration::ZERO;
    s.limits.input_buffer_bytes = 65536;
    s.limits.subscriptions_per_uid = 0;
    s.limits.regex_memory_bytes = 1;
    assert_eq!(
        keys(&s),
        [
            "limits.handshake_frame_bytes",
            "limits.frame_read_timeout",
            "limits.input_buffer_bytes",
            "limits.subscriptions_per_uid",
            "limits.regex_memory_bytes",
        ]
    );
    let problems = s.validate();
    assert!(
        problems[2].problem.contains("one whole frame"),
        "{}",
        problems[2]
    );
    // Above max_frame_bytes is allowed: the smaller of the two applies.
    s.limits.handshake_frame_bytes = 1 << 20;
    s.limits.frame_read_timeout = Duration::from_millis(100);
    s.limits.input_buffer_bytes = 65540;
    s.limits.subscriptions_per_uid = 1;
    s.limits.regex_memory_bytes = 64 << 10;
    assert_eq!(keys(&s), Vec::<String>::new());
}

#[test]
fn xlreg_bounds_name_their_keys() {
    let mut s = defaults();
    s.xlreg.idle_timeout = std::time::Duration::from_secs(5);
    s.xlreg.sessions_burst = 0;
    s.xlreg.max_clients = 0;
    s.xlreg.max_clusters_per_client = s.xlreg.max_clusters + 1;
    s.xlreg.client_ttl = std::time::Duration::ZERO;
    s.xlreg.admit.keys = vec!["sha256:1234".into(), String::new(), "/etc/key.pem".into()];
    s.xlreg.cluster.creator = "bad name".into();
    assert_eq!(
        keys(&s),
        [
            "xlreg.idle_timeout",
            "xlreg.sessions_burst",
            "xlreg.max_clients",
            "xlreg.max_clusters_per_client",
            "xlreg.client_ttl",
            "xlreg.admit.keys[0]",
            "xlreg.admit.keys[1]",
            "xlreg.cluster.creator",
        ]
    );
    let mut s = defaults();
    s.xlreg.cluster.creator = format!("sha256:{}", "ab".repeat(32));
    s.xlreg.admit.keys = vec![s.xlreg.cluster.creator.clone()];
    s.xlreg.sessions_per_source = 0;
    s.xlreg.max_connections_per_source = 0;
    assert_eq!(keys(&s), Vec::<String>::new(), "0 means no limit");
}

#[test]
fn serving_an_open_registry_in_production_is_a_warning() {
    let warned =
        |s: &Settings| -> Vec<String> { s.warnings().into_iter().map(|p| p.key).collect() };
    let mut s = defaults();
    assert!(warned(&s).is_empty(), "nothing served, nothing joined");
    s.xlreg.serve = true;
    assert_eq!(warned(&s), ["xlreg.admit"]);
    assert!(s.validate().is_empty(), "a warning, not an error");
    s.xlreg.admit.secret_file = "/etc/catalogue/xlreg.secret".into();
    assert!(warned(&s).is_empty());
    s.xlreg.admit.secret_file.clear();
    s.node.environment = "staging".into();
    assert!(warned(&s).is_empty(), "only production");
    // joining a cluster without naming its creator
    let mut s = defaults();
    s.xlreg.server = "reg.example:7482".into();
    s.xlreg.server_key = "/etc/catalogue/registry.pub".into();
    s.xlreg.cluster.name = "prod".into();
    assert_eq!(warned(&s), ["xlreg.cluster.creator"]);
    s.xlreg.cluster.creator = "node-a".into();
    assert!(warned(&s).is_empty());
}

#[test]
fn work_and_connection_limits_are_checked() {
    let mut s = defaults();
    s.limits.requests_in_flight = 0;
    s.limits.connections_tcp = 0;
    s.limits.connections_unix = 0;
    s.limits.idle_timeout = Duration::from_millis(10);
    s.limits.handshakes_in_progress = 4;
    s.limits.handshakes_in_progress_per_address = 5;
    assert_eq!(
        keys(&s),
        [
            "limits.requests_in_flight",
            "limits.connections_tcp",
            "limits.connections_unix",
            "limits.idle_timeout",
            "limits.handshakes_in_progress_per_address",
        ]
    );
    s.limits.handshakes_in_progress_per_address = 4;
    s.limits.requests_in_flight = 1;
    s.limits.connections_tcp = 1;
    s.limits.connections_unix = 1;
    s.limits.idle_timeout = Duration::from_millis(100);
    assert_eq!(s.validate(), vec![]);
}

#[test]
fn client_tls_needs_certificates_and_a_client_port() {
    let mut s = defaults();
    assert_eq!(keys(&s), Vec::<String>::new());
    s.listen.client_tls = crate::settings::ClientTls::Mutual;
    assert_eq!(keys(&s), ["listen.client_tls"]);
    s.tls.ca = "/etc/catalogue/tls/ca.pem".into();
    s.tls.cert = "/etc/catalogue/tls/a.pem".into();
    s.tls.key = "/etc/catalogue/tls/a.key".into();
    assert_eq!(keys(&s), Vec::<String>::new());
    s.listen.client = String::new();
    assert_eq!(keys(&s), ["listen.client_tls"]);
}

/// `[[services]]` tables parsed as an operator writes them.
fn with_services(toml_text: &str) -> Settings {
    let mut s = defaults();
    #[derive(serde::Deserialize)]
    struct Only {
        services: Vec<crate::settings::ServiceDefinition>,
    }
    let only: Only = toml::from_str(toml_text).expect("test TOML parses");
    s.services = only.services;
    s
}

#[test]
fn service_definitions_are_validated_by_key() {
    let s = with_services(
        r#"
        [[services]]
        uri = "tcp://db:5432"
        attrs = { role = "primary" }
        check = { tcp = "127.0.0.1:5432" }
        [[services]]
        uri = "not a uri"
        [[services]]
        uri = "tcp://db:5432"
        [[services]]
        uri = "http://web:80"
        attrs = { "bad key" = "v" }
        check = { http = "ftp://web/health" }
        [[services]]
        uri = "tcp://x:1"
        check = { tcp = "x:1", exec = ["true"] }
        [[services]]
        uri = "tcp://y:1"
        check = { exec = [], interval = "1s", timeout = "2s", failures = 0, successes = 0 }
        [[services]]
        uri = "tcp://z:1"
        check = { tcp = "nohostport", interval = "0s" }
        "#,
    );
    assert_eq!(
        keys(&s),
        [
            "services[1].uri",
            "services[2].uri",
            "services[3].attrs",
            "services[3].check.http",
            "services[4].check",
            "services[5].check.exec",
            "services[5].check.timeout",
            "services[5].check.failures",
            "services[5].check.successes",
            "services[6].check.tcp",
            "services[6].check.interval",
            "services[6].check.timeout",
        ]
    );
    let twice = s
        .validate()
        .into_iter()
        .find(|p| p.key == "services[2].uri")
        .map(|p| p.problem);
    assert_eq!(twice.as_deref(), Some("\"tcp://db:5432\" is defined twice"));
}

#[test]
fn good_service_definitions_pass_with_check_defaults() {
    let s = with_services(
        r#"
        [[services]]
        uri = "tcp://db:5432"
        [[services]]
        uri = "http://web:8080"
        check = { http = "http://127.0.0.1:8080/health", interval = "5s", timeout = "1s" }
        [[services]]
        uri = "https://api:8443"
        check = { http = "https://api.example:8443/ready" }
        [[services]]
        uri = "unix:/run/app.sock"
        check = { exec = ["/bin/true"], failures = 2, successes = 2 }
        "#,
    );
    assert_eq!(s.validate(), vec![]);
    let check = s.services[3].check.as_ref().expect("parsed");
    assert_eq!(check.interval, Duration::from_secs(10));
    assert_eq!(check.timeout, Duration::from_secs(2));
}

#[test]
fn listeners_on_one_port_collide_and_the_registry_has_its_own_by_default() {
    let mut s = defaults();
    s.xlreg.serve = true;
    assert_eq!(
        keys(&s),
        Vec::<String>::new(),
        "defaults with the registry on"
    );
    // Every address and a loopback one on the same port collide...
    s.xlreg.listen = "0.0.0.0:7482".into();
    s.http.listen = "127.0.0.1:7482".into();
    assert_eq!(keys(&s), ["xlreg.listen"]);
    let problem = s.validate().remove(0).problem;
    assert!(problem.contains("http.listen"), "{problem}");
    // ...two addresses on one port do not, and port 0 never does.
    s.xlreg.listen = "127.0.0.2:7482".into();
    assert_eq!(keys(&s), Vec::<String>::new());
    s.metrics.listen = "127.0.0.1:0".into();
    s.http.listen = "127.0.0.1:0".into();
    assert_eq!(keys(&s), Vec::<String>::new());
    s.listen.client = "127.0.0.1:7481".into();
    s.listen.peer = "0.0.0.0:7481".into();
    assert_eq!(keys(&s), ["listen.peer"]);
}
