//! The xlReg registry hosted by a real `catalogue serve`, driven by the real
//! `catalogue xlreg` commands: keys made on first start, clusters created,
//! joined and listed, a full cluster refusing a join, and every
//! acknowledged join surviving a SIGKILL of the server.

use std::{
    collections::HashSet,
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use catalogue_integration_tests::{Cli, CliOutput, DEADLINE, Daemon};
use serde_json::Value;

/// Time allowed for one `catalogue xlreg` command.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// A daemon hosting the registry on a free port, with its data in `data`.
fn registry(data: &Path) -> (Daemon, String) {
    let mut daemon = Daemon::builder()
        .set("node.data_dir", &data.display().to_string())
        .xlreg_registry()
        .start()
        .expect("daemon starts");
    let line = daemon
        .wait_log(DEADLINE, |l| l["message"] == "xlReg registry listening")
        .expect("registry listening");
    let address = line["address"].as_str().expect("address").to_string();
    (daemon, address)
}

/// `catalogue xlreg ARGS... --server ADDR --server-key KEY --identity-dir DIR --name NAME`.
fn xlreg(args: &[&str], server: &str, key: &Path, identity: &Path, name: &str) -> CliOutput {
    let mut all: Vec<String> = vec!["xlreg".into()];
    all.extend(args.iter().map(|a| a.to_string()));
    all.extend([
        "--server".into(),
        server.into(),
        "--server-key".into(),
        key.display().to_string(),
        "--identity-dir".into(),
        identity.display().to_string(),
        "--name".into(),
        name.into(),
    ]);
    Cli::new(all)
        .output(COMMAND_DEADLINE)
        .expect("command runs")
}

fn print_pubkey(data_dir: &Path) -> CliOutput {
    let dir = data_dir.display().to_string();
    Cli::new(["xlreg", "pubkey", "--data-dir", &dir])
        .output(COMMAND_DEADLINE)
        .expect("pubkey runs")
}

fn members(server: &str, key: &Path, identity: &Path, cluster: &str) -> Value {
    let out = xlreg(
        &["members", cluster, "--json"],
        server,
        key,
        identity,
        "reader",
    );
    assert_eq!(out.code, 0, "members: {}", out.stderr);
    serde_json::from_str(&out.stdout).expect("members JSON")
}

fn member_names(members: &Value) -> Vec<String> {
    members["members"]
        .as_array()
        .expect("members array")
        .iter()
        .map(|m| m["name"].as_str().expect("name").to_string())
        .collect()
}

#[test]
fn serve_hosts_the_registry_and_the_cli_uses_it() {
    let data = tempfile::tempdir().expect("tempdir");
    let (_daemon, server) = registry(data.path());
    // keys made on first start, the private one mode 0600
    let key_file = data.path().join("xlreg/registry.key");
    let mode = fs::metadata(&key_file).expect("key").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let pubkey = print_pubkey(data.path());
    assert_eq!(pubkey.code, 0, "{}", pubkey.stderr);
    assert!(pubkey.stdout.starts_with("-----BEGIN PUBLIC KEY-----"));
    let key = data.path().join("xlreg/registry.pub");
    assert_eq!(
        fs::read_to_string(&key).expect("pub").trim(),
        pubkey.stdout.trim()
    );

    let ids = tempfile::tempdir().expect("tempdir");
    let id = |n: &str| ids.path().join(n);
    let out = xlreg(
        &["create", "trio", "--size", "2"],
        &server,
        &key,
        &id("admin"),
        "admin",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("cluster trio id "), "{}", out.stdout);
    assert!(out.stdout.contains(" size 2 "), "{}", out.stdout);
    let out = xlreg(
        &["join", "trio", "--endpoint", "127.0.0.1:7001"],
        &server,
        &key,
        &id("a"),
        "node-a",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    // a seed (v1) client joins too
    let out = xlreg(
        &[
            "join",
            "trio",
            "--endpoint",
            "127.0.0.1:7002",
            "--protocol",
            "1",
        ],
        &server,
        &key,
        &id("b"),
        "node-b",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    // joining again keeps one slot
    let out = xlreg(
        &["join", "trio", "--endpoint", "127.0.0.1:7001"],
        &server,
        &key,
        &id("a"),
        "node-a",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    // the cluster is full: refused, exit 4
    let out = xlreg(
        &["join", "trio", "--endpoint", "127.0.0.1:7003"],
        &server,
        &key,
        &id("c"),
        "node-c",
    );
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stderr.contains("is full"), "{}", out.stderr);

    let listed = members(&server, &key, &id("admin"), "trio");
    assert_eq!(member_names(&listed), ["node-a", "node-b"]);
    assert_eq!(listed["size"], 2);
    assert_eq!(listed["which"], 3);
    assert_eq!(listed["members"][1]["endpoints"][0], "127.0.0.1:7002");
    assert_eq!(listed["members"][0]["index"], 0);

    // creating it again with another size: the cluster as it is, and a
    // warning that the size asked for was not applied
    let out = xlreg(
        &["create", "trio", "--size", "5"],
        &server,
        &key,
        &id("admin"),
        "admin",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains(" size 2 endpoints 1 members 2 free 0"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("already exists with size 2"),
        "{}",
        out.stderr
    );
    // the same size: no warning
    let out = xlreg(
        &["create", "trio", "--size", "2"],
        &server,
        &key,
        &id("admin"),
        "admin",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("already exists"), "{}", out.stderr);
    // members shows the free slots
    let out = xlreg(
        &["create", "quad", "--size", "4"],
        &server,
        &key,
        &id("admin"),
        "admin",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(" members 0 free 4"), "{}", out.stdout);
    let out = xlreg(
        &["join", "quad", "--endpoint", "127.0.0.1:7001"],
        &server,
        &key,
        &id("a"),
        "node-a",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = xlreg(&["members", "quad"], &server, &key, &id("admin"), "admin");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert!(
        lines[0].starts_with("0 node-a 127.0.0.1:7001 "),
        "{}",
        out.stdout
    );
    assert_eq!(lines[1..], ["1 (free)", "2 (free)", "3 (free)"]);
    assert_eq!(
        members(&server, &key, &id("admin"), "quad")["free"],
        serde_json::json!([1, 2, 3])
    );

    // an unknown cluster is refused
    let out = xlreg(&["members", "nope"], &server, &key, &id("admin"), "admin");
    assert_eq!(out.code, 4, "{}", out.stderr);
    // a wrong registry key: the handshake fails, exit 1
    let other = tempfile::tempdir().expect("tempdir");
    let wrong = print_pubkey(other.path());
    let wrong_key = other.path().join("wrong.pub");
    fs::write(&wrong_key, wrong.stdout).expect("write");
    let out = xlreg(
        &["members", "trio"],
        &server,
        &wrong_key,
        &id("admin"),
        "admin",
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
}

/// Copies the keys (not the registered ID) of identity `from` into a new
/// identity directory, so that a new client registers without making keys.
fn identity_from(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    fs::set_permissions(to, fs::Permissions::from_mode(0o700)).expect("chmod");
    for file in ["sig.key", "comms.key"] {
        fs::copy(from.join(file), to.join(file)).expect("copy key");
    }
}

#[test]
fn every_acknowledged_join_survives_a_sigkill() {
    const WORKERS: usize = 3;
    const ACKED_BEFORE_KILL: usize = 12;

    let data = tempfile::tempdir().expect("tempdir");
    let (mut daemon, server) = registry(data.path());
    let key = data.path().join("xlreg/registry.pub");
    let ids = tempfile::tempdir().expect("tempdir");
    let admin = ids.path().join("admin");
    let out = xlreg(
        &["create", "big", "--size", "64"],
        &server,
        &key,
        &admin,
        "admin",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);

    // A stream of joins, each a new client, from several workers at once.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let killed = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Result<(), String>>();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (acked, killed, tx) = (acked.clone(), killed.clone(), tx.clone());
            let (server, key, admin) = (server.clone(), key.clone(), admin.clone());
            let root: PathBuf = ids.path().to_path_buf();
            thread::spawn(move || {
                for i in 0.. {
                    if killed.load(Ordering::SeqCst) {
                        return;
                    }
                    let name = format!("w{w}-{i}");
                    let dir = root.join(&name);
                    identity_from(&admin, &dir);
                    let endpoint = format!("127.0.0.1:{}", 10_000 + w * 1000 + i);
                    let out = xlreg(
                        &["join", "big", "--endpoint", &endpoint],
                        &server,
                        &key,
                        &dir,
                        &name,
                    );
                    // Exit 0 comes only after the JoinReply (a failed Bye
                    // after it is just a warning).
                    if out.code == 0 {
                        assert!(out.stdout.contains("joined big"), "{}", out.stdout);
                        acked.lock().expect("lock").push(name);
                        let _ = tx.send(Ok(()));
                    } else if killed.load(Ordering::SeqCst) {
                        return;
                    } else {
                        let _ = tx.send(Err(format!("{name}: exit {}: {}", out.code, out.stderr)));
                        return;
                    }
                }
            })
        })
        .collect();
    drop(tx);

    let end = Instant::now() + Duration::from_secs(120);
    let mut seen = 0;
    while seen < ACKED_BEFORE_KILL {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Ok(())) => seen += 1,
            Ok(Err(e)) => panic!("a join failed before the kill: {e}"),
            Err(e) => panic!("only {seen} joins acknowledged: {e}"),
        }
    }
    killed.store(true, Ordering::SeqCst);
    daemon.signal(libc::SIGKILL).expect("SIGKILL");
    let status = daemon.wait_exit(DEADLINE).expect("dies");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    for worker in workers {
        worker.join().expect("worker");
    }
    let acked: Vec<String> = acked.lock().expect("lock").clone();
    assert!(acked.len() >= ACKED_BEFORE_KILL);

    // Restart on the same data directory: same key, every acked join there.
    let (mut again, server) = registry(data.path());
    let loaded = again
        .wait_log(DEADLINE, |l| l["message"] == "xlReg registry loaded")
        .expect("loaded");
    assert!(loaded["records"].as_u64().unwrap_or(0) as usize > acked.len());
    assert!(
        again
            .logged()
            .iter()
            .all(|l| l["message"] != "xlReg: generated the registry key"),
        "the key was kept"
    );
    let listed = members(&server, &key, &admin, "big");
    let names = member_names(&listed);
    eprintln!(
        "{} joins acknowledged before the SIGKILL, {} members after the restart",
        acked.len(),
        names.len()
    );
    let present: HashSet<&String> = names.iter().collect();
    assert_eq!(present.len(), names.len(), "one slot per member: {names:?}");
    for name in &acked {
        assert!(
            present.contains(name),
            "{name} was acknowledged but is gone: {names:?}"
        );
    }
    // join order is kept: each worker's members appear in the order it made them
    for w in 0..WORKERS {
        let mine: Vec<usize> = names
            .iter()
            .filter_map(|n| n.strip_prefix(&format!("w{w}-")))
            .map(|i| i.parse().expect("index"))
            .collect();
        assert!(mine.windows(2).all(|p| p[0] < p[1]), "worker {w}: {mine:?}");
    }
}
