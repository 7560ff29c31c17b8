//! The record layout, replay, torn tails, corruption and compaction.

use std::fs;

use super::*;
use crate::{
    protocol::ClusterInfo,
    test_support::{hex, token_with},
};

use catalogue_proto::reg::XlRegMsg;

/// When the test clients register and clusters are made: far enough ahead
/// that nothing expires in tests that do not ask for it.
const T0: u64 = 4_000_000_000;

fn client(i: u8) -> Change {
    let mut token = token_with(0, &format!("c{i}"), 0, &["e"]);
    token.id = Some(vec![i; 32]);
    Change::PutClient {
        token,
        registered: T0,
    }
}

fn cluster(i: u8, size: u32) -> Change {
    Change::CreateCluster {
        info: ClusterInfo {
            id: vec![0xC0 + i; 32],
            name: format!("cluster{i}"),
            size,
            endpoints: 1,
            attrs: 0,
            creator: None,
        },
        creator: None,
        created: T0,
    }
}

fn member(cluster: u8, client: u8) -> Change {
    Change::AddMember {
        cluster: vec![0xC0 + cluster; 32],
        client: vec![client; 32],
        slot: None,
    }
}

fn names(reg: &Registry, cluster: &str) -> Vec<String> {
    reg.members_of(cluster)
        .unwrap_or_default()
        .iter()
        .map(|t| t.name.clone().unwrap_or_default())
        .collect()
}

#[test]
fn record_known_answer() {
    // a join record without a slot (as written before slots could be
    // freed) still reads
    let change = Change::AddMember {
        cluster: vec![1, 1],
        client: vec![2, 2],
        slot: None,
    };
    assert_eq!(
        record(&change),
        hex("0000000a08074a0202026a020101cf95e5ae19b68b59")
    );
    assert_eq!(decode_change(&hex("08074a0202026a020101"), 0), Ok(change));
}

#[test]
fn every_change_round_trips() {
    let created_by = Change::CreateCluster {
        info: ClusterInfo {
            id: vec![0xC9; 32],
            name: "mine".into(),
            size: 2,
            endpoints: 2,
            attrs: 0,
            creator: None,
        },
        creator: Some(vec![1; 32]),
        created: 77,
    };
    for change in [
        client(1),
        cluster(1, 5),
        created_by,
        member(1, 1),
        Change::AddMember {
            cluster: vec![0xC1; 32],
            client: vec![2; 32],
            slot: Some(5),
        },
        Change::RemoveMember {
            cluster: vec![0xC1; 32],
            client: vec![2; 32],
        },
        Change::SetSize {
            cluster: vec![0xC1; 32],
            size: 9,
        },
        Change::ForgetCluster(vec![0xC1; 32]),
        Change::ForgetClient(vec![1; 32]),
    ] {
        assert_eq!(
            decode_change(&encode_change(&change), 5),
            Ok(change.clone())
        );
    }
    assert!(decode_change(&hex("080b"), 0).is_err(), "Bye of nothing");
    assert!(decode_change(&hex("0807"), 0).is_err());
    assert!(decode_change(&hex("ff"), 0).is_err());
}

#[test]
fn records_written_before_times_were_kept_get_the_replay_time() {
    // Op=Client with ClientSpecs, no extension fields: the old layout
    let Change::PutClient { token, .. } = client(1) else {
        panic!()
    };
    let old = XlRegMsg {
        op: Some(Tag::Client as i32),
        client_specs: Some(token.clone()),
        ..Default::default()
    };
    assert_eq!(
        decode_change(&prost::Message::encode_to_vec(&old), 1234),
        Ok(Change::PutClient {
            token,
            registered: 1234
        })
    );
}

#[test]
fn a_restart_forgets_what_outlived_the_ttl() {
    let limits = Limits {
        client_ttl: std::time::Duration::from_secs(600),
        ..Limits::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _, _) = Store::open_at(dir.path(), limits, T0).expect("open");
    // c1 and c2 in cluster1; c3 in nothing; cluster2 empty
    for change in [
        client(1),
        client(2),
        client(3),
        cluster(1, 3),
        cluster(2, 3),
        member(1, 1),
        member(1, 2),
    ] {
        store.append(&change).expect("append");
    }
    drop(store);
    let (_, reg, report) = Store::open_at(dir.path(), limits, T0 + 599).expect("reopen");
    assert_eq!(
        (report.expired, reg.client_count(), reg.cluster_count()),
        (0, 3, 2)
    );
    let (_, reg, report) = Store::open_at(dir.path(), limits, T0 + 600).expect("reopen");
    assert_eq!(report.expired, 2, "cluster2 and c3");
    assert_eq!((reg.client_count(), reg.cluster_count()), (2, 1));
    assert_eq!(names(&reg, "cluster1"), vec!["c1", "c2"]);
    // and the log on disk no longer holds them
    let (_, reg, report) = Store::open_at(dir.path(), limits, T0).expect("reopen");
    assert_eq!(report.records, 5, "two clients, one cluster, two members");
    assert_eq!(reg.client_count(), 2);
}

#[test]
fn a_new_store_starts_empty_with_the_magic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, reg, report) = Store::open(dir.path(), Limits::default()).expect("open");
    assert_eq!(report, OpenReport::default());
    assert_eq!(reg.client_count(), 0);
    assert_eq!(fs::read(store.path()).expect("read"), MAGIC.to_vec());
}

fn filled(dir: &std::path::Path) {
    let (mut store, _, _) = Store::open(dir, Limits::default()).expect("open");
    for change in [
        client(1),
        client(2),
        cluster(1, 3),
        member(1, 2),
        member(1, 1),
    ] {
        store.append(&change).expect("append");
    }
}

#[test]
fn changes_survive_a_reopen_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    filled(dir.path());
    let (_, reg, report) = Store::open(dir.path(), Limits::default()).expect("reopen");
    assert_eq!(report.records, 5);
    assert_eq!(report.dropped_bytes, 0);
    assert_eq!(names(&reg, "cluster1"), vec!["c2", "c1"]);
    // the compacted log reads back the same
    let (_, again, report) = Store::open(dir.path(), Limits::default()).expect("reopen");
    assert_eq!(report.records, 5);
    assert_eq!(names(&again, "cluster1"), vec!["c2", "c1"]);
}

#[test]
fn written_records_count_and_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _, _) = Store::open(dir.path(), Limits::default()).expect("open");
    assert_eq!(store.write(&client(1)).expect("write"), 1);
    assert_eq!(store.write(&client(2)).expect("write"), 2);
    store
        .sync_handle()
        .expect("handle")
        .sync_data()
        .expect("sync");
    drop(store);
    let (_, reg, _) = Store::open(dir.path(), Limits::default()).expect("reopen");
    assert_eq!(reg.client_count(), 2);
}

#[test]
fn compaction_drops_repeated_client_updates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _, _) = Store::open(dir.path(), Limits::default()).expect("open");
    for _ in 0..10 {
        store.append(&client(1)).expect("append");
    }
    drop(store);
    let (_, reg, report) = Store::open(dir.path(), Limits::default()).expect("reopen");
    assert_eq!(report.records, 10);
    assert_eq!(reg.client_count(), 1);
    let len = fs::metadata(dir.path().join(LOG_FILE)).expect("meta").len() as usize;
    assert_eq!(len, MAGIC.len() + record(&client(1)).len());
}

#[test]
fn a_torn_last_record_is_dropped() {
    let whole = record(&member(1, 1));
    for cut in [1, 3, 4, whole.len() / 2, whole.len() - 1] {
        let dir = tempfile::tempdir().expect("tempdir");
        filled(dir.path());
        let path = dir.path().join(LOG_FILE);
        let mut bytes = fs::read(&path).expect("read");
        bytes.extend_from_slice(&whole[..cut]);
        fs::write(&path, &bytes).expect("write");
        let (_, reg, report) = Store::open(dir.path(), Limits::default()).expect("reopen");
        assert_eq!(report.dropped_bytes, cut, "cut {cut}");
        assert_eq!(names(&reg, "cluster1"), vec!["c2", "c1"]);
        // compacted: the torn bytes are gone
        let (_, _, report) = Store::open(dir.path(), Limits::default()).expect("reopen");
        assert_eq!(report.dropped_bytes, 0);
    }
    // a whole last record with a bad check is torn too
    let dir = tempfile::tempdir().expect("tempdir");
    filled(dir.path());
    let path = dir.path().join(LOG_FILE);
    let mut bytes = fs::read(&path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&path, &bytes).expect("write");
    let (_, reg, report) = Store::open(dir.path(), Limits::default()).expect("reopen");
    assert!(report.dropped_bytes > 0);
    assert_eq!(names(&reg, "cluster1"), vec!["c2"]);
}

#[test]
fn corruption_before_the_end_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    filled(dir.path());
    let path = dir.path().join(LOG_FILE);
    let mut bytes = fs::read(&path).expect("read");
    bytes[MAGIC.len() + 10] ^= 0x40;
    fs::write(&path, &bytes).expect("write");
    assert!(matches!(
        Store::open(dir.path(), Limits::default()),
        Err(StoreError::Corrupt { offset: 8, .. })
    ));
    // the log is left as it was for the operator
    assert_eq!(fs::read(&path).expect("read"), bytes);
}

#[test]
fn a_record_that_does_not_fit_the_state_is_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(LOG_FILE);
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&record(&member(1, 1)));
    fs::write(&path, &bytes).expect("write");
    assert!(matches!(
        Store::open(dir.path(), Limits::default()),
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn other_files_are_not_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join(LOG_FILE), b"hello world").expect("write");
    assert!(matches!(
        Store::open(dir.path(), Limits::default()),
        Err(StoreError::NotALog { .. })
    ));
}

#[test]
fn a_failed_write_poisons_the_store() {
    let file = OpenOptions::new()
        .append(true)
        .open("/dev/full")
        .expect("/dev/full");
    let mut store = Store {
        path: PathBuf::from("/dev/full"),
        file,
        poisoned: false,
        written: 0,
    };
    assert!(matches!(
        store.write(&client(1)),
        Err(StoreError::Io { .. })
    ));
    assert!(matches!(store.write(&client(1)), Err(StoreError::Poisoned)));
    assert!(matches!(
        store.append(&client(1)),
        Err(StoreError::Poisoned)
    ));
    assert_eq!(store.written(), 0);
}
