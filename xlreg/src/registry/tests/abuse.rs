//! The registry's bounds against abuse (issue 14): admission control, the
//! cap on clusters per client, clients and clusters forgotten past the
//! client TTL, and renaming without walking the taken names.

use std::time::Duration;

use super::*;
use crate::{
    admission::{Admission, AdmissionError},
    ext::admission_proof,
    keys,
    test_support::client_key,
};

const T0: u64 = 1_000_000;
const TTL: u64 = 600;

fn limits() -> Limits {
    Limits {
        client_ttl: Duration::from_secs(TTL),
        ..Limits::default()
    }
}

/// Plans `request` at `now` and applies it; the reply.
fn run_at(
    reg: &mut Registry,
    session: &mut SessionContext,
    request: Request,
    now: u64,
) -> Result<Reply, RegistryError> {
    let planned = reg.plan_at(session, &request, now)?;
    if let Some(change) = &planned.change {
        reg.apply(change).expect("apply");
    }
    if planned.client.is_some() {
        session.client = planned.client;
    }
    if planned.cluster.is_some() {
        session.cluster = planned.cluster;
    }
    Ok(planned.reply)
}

fn client_at(reg: &mut Registry, key: usize, name: &str, now: u64) -> SessionContext {
    let mut s = ctx();
    run_at(reg, &mut s, new_client(key, name, &["h:1"]), now).expect("registers");
    s
}

/// Applies what expired at `now`; how many clients and clusters went.
fn sweep(reg: &mut Registry, now: u64) -> (usize, usize) {
    let expired = reg.expired(now);
    let clients = expired
        .iter()
        .filter(|c| matches!(c, Change::ForgetClient(_)))
        .count();
    for change in &expired {
        reg.apply(change).expect("forget");
    }
    (clients, expired.len() - clients)
}

fn fingerprint(key: usize) -> keys::Fingerprint {
    keys::fingerprint(
        &client_key(key)
            .public_key()
            .and_then(|k| k.to_der())
            .expect("der"),
    )
}

fn with_proof(mut request: Request, proof: Option<Vec<u8>>) -> Request {
    match &mut request {
        Request::NewClient { proof: p, .. } | Request::ReturningClient { proof: p, .. } => {
            *p = proof
        }
        _ => {}
    }
    request
}

#[test]
fn clients_that_never_join_or_create_expire_after_the_ttl() {
    let mut reg = Registry::new(limits());
    let mut member = client_at(&mut reg, 0, "member", T0);
    run_at(&mut reg, &mut member, create("c", 3, 1), T0).expect("create");
    run_at(&mut reg, &mut member, join("c"), T0).expect("join");
    client_at(&mut reg, 1, "idle", T0);
    client_at(&mut reg, 2, "late", T0 + 100);
    assert_eq!(sweep(&mut reg, T0 + TTL - 1), (0, 0), "not yet");
    assert_eq!(sweep(&mut reg, T0 + TTL), (1, 0), "idle went, member stays");
    assert_eq!(reg.client_count(), 2);
    assert_eq!(sweep(&mut reg, T0 + TTL + 100), (1, 0), "late went");
    assert_eq!(reg.client_count(), 1);
    // a forgotten client's name is free again, its ID unknown
    let mut s = ctx();
    let Reply::ClientOk { name, .. } =
        run_at(&mut reg, &mut s, new_client(1, "idle", &[]), T0 + 2000).expect("again")
    else {
        panic!()
    };
    assert_eq!(name, "idle");
}

#[test]
fn a_cluster_nobody_joins_expires_and_then_its_creator() {
    let mut reg = Registry::new(limits());
    let mut admin = client_at(&mut reg, 0, "admin", T0);
    run_at(&mut reg, &mut admin, create("empty", 3, 1), T0 + 10).expect("create");
    run_at(&mut reg, &mut admin, create("used", 3, 1), T0 + 10).expect("create");
    let mut m = client_at(&mut reg, 1, "m", T0 + 10);
    run_at(&mut reg, &mut m, join("used"), T0 + 10).expect("join");
    // the creator of a live cluster stays, even past its own TTL
    assert_eq!(sweep(&mut reg, T0 + TTL), (0, 0));
    // "empty" goes a TTL after its creation; admin still created "used"
    assert_eq!(sweep(&mut reg, T0 + 10 + TTL), (0, 1));
    assert_eq!(reg.cluster_count(), 1);
    assert!(reg.has_client(admin.client.as_deref().expect("id")));
    // a cluster with members never expires, nor do its members
    assert_eq!(sweep(&mut reg, T0 + 100 * TTL), (0, 0));
    // a creator whose only cluster expires goes with it in one sweep
    let mut lone = client_at(&mut reg, 2, "lone", T0 + 200 * TTL);
    run_at(&mut reg, &mut lone, create("nobody", 2, 1), T0 + 200 * TTL).expect("create");
    assert_eq!(sweep(&mut reg, T0 + 201 * TTL), (1, 1));
}

#[test]
fn expiry_survives_a_snapshot() {
    let mut reg = Registry::new(limits());
    client_at(&mut reg, 0, "a", T0);
    let mut copy = Registry::new(limits());
    for change in reg.snapshot() {
        copy.apply(&change).expect("replay");
    }
    assert_eq!(copy.expired(T0 + TTL - 1), vec![]);
    assert_eq!(
        copy.expired(T0 + TTL).len(),
        1,
        "the registration time was kept"
    );
}

#[test]
fn a_full_registry_is_full_until_the_ttl_frees_it() {
    let mut reg = Registry::new(Limits {
        max_clients: 3,
        ..limits()
    });
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        client_at(&mut reg, i, name, T0);
    }
    assert!(matches!(
        reg.plan_at(&ctx(), &new_client(3, "d", &[]), T0 + 1),
        Err(RegistryError::Full("clients"))
    ));
    sweep(&mut reg, T0 + TTL);
    run_at(&mut reg, &mut ctx(), new_client(3, "d", &[]), T0 + TTL).expect("room again");
}

#[test]
fn clusters_per_client_are_capped() {
    let mut reg = Registry::new(Limits {
        max_clusters_per_client: 2,
        ..limits()
    });
    let mut a = client_at(&mut reg, 0, "a", T0);
    run_at(&mut reg, &mut a, create("one", 2, 1), T0).expect("one");
    run_at(&mut reg, &mut a, create("two", 2, 1), T0).expect("two");
    let refused = reg
        .plan_at(&a, &create("three", 2, 1), T0)
        .expect_err("capped");
    assert!(matches!(refused, RegistryError::TooManyClusters { max: 2 }));
    assert_eq!(refused.reason(), "clusters_per_client");
    // finding an existing cluster is not creating one
    run_at(&mut reg, &mut a, create("one", 2, 1), T0).expect("existing");
    // another client has its own count
    let mut b = client_at(&mut reg, 1, "b", T0);
    run_at(&mut reg, &mut b, create("three", 2, 1), T0).expect("b's first");
    // once one of a's clusters expires, a may create again
    run_at(&mut reg, &mut b, join("one"), T0).expect("join");
    sweep(&mut reg, T0 + TTL);
    run_at(&mut reg, &mut a, create("four", 2, 1), T0 + TTL).expect("room again");
}

#[test]
fn replies_name_the_creator() {
    let mut reg = Registry::new(limits());
    let mut a = client_at(&mut reg, 0, "node-a", T0);
    let Reply::CreateReply(info) = run_at(&mut reg, &mut a, create("c", 3, 1), T0).expect("c")
    else {
        panic!()
    };
    let expected = Some(Creator {
        name: "node-a".into(),
        key: fingerprint(0),
    });
    assert_eq!(info.creator, expected);
    let mut b = client_at(&mut reg, 1, "node-b", T0);
    for request in [create("c", 3, 1), join("c"), get(u64::MAX)] {
        let reply = run_at(&mut reg, &mut b, request, T0).expect("ok");
        let (Reply::CreateReply(c) | Reply::JoinReply(c) | Reply::Members { cluster: c, .. }) =
            reply
        else {
            panic!("{reply:?}")
        };
        assert_eq!(c.creator, expected);
    }
}

#[test]
fn renaming_starts_from_the_index_not_from_two() {
    let mut reg = Registry::new(limits());
    client_at(&mut reg, 0, "n", T0);
    for expected in ["n-2", "n-3", "n-4"] {
        let Reply::ClientOk { name, .. } =
            run_at(&mut reg, &mut ctx(), new_client(0, "n", &[]), T0).expect("ok")
        else {
            panic!()
        };
        assert_eq!(name, expected);
    }
    assert_eq!(reg.name_suffix.get("n"), Some(&5), "the index moved on");
    // a name proposed with a suffix moves the index past it
    run_at(&mut reg, &mut ctx(), new_client(1, "n-40", &[]), T0).expect("ok");
    let Reply::ClientOk { name, .. } =
        run_at(&mut reg, &mut ctx(), new_client(1, "n", &[]), T0).expect("ok")
    else {
        panic!()
    };
    assert_eq!(name, "n-41");
    // the index is rebuilt from the names when the log is replayed
    let mut copy = Registry::new(limits());
    for change in reg.snapshot() {
        copy.apply(&change).expect("replay");
    }
    assert_eq!(copy.unique_name("n"), "n-42");
    // names that only look like suffixes
    for name in ["n-0", "n-01", "n-1", "-3", "n-"] {
        assert_eq!(split_suffix(name), None, "{name}");
    }
    assert_eq!(split_suffix("a-b-7"), Some(("a-b", 7)));
}

#[test]
fn renaming_takes_the_index_not_the_first_free_name() {
    // 5,000 clients all proposing the same name. The walk this replaces
    // looked at same-2, same-3, ... for each one (12.5 million lookups in
    // all) and gave the first free name; the index gives the next suffix
    // at once, and never goes back to a freed one.
    let mut reg = Registry::new(Limits {
        max_clients: 10_000,
        ..limits()
    });
    let token = token_with(0, "same", 0, &[]);
    let put_named = |reg: &mut Registry, i: u32| {
        let mut t = token.clone();
        t.name = Some(reg.unique_name("same"));
        let mut id = vec![0u8; 32];
        id[..4].copy_from_slice(&i.to_be_bytes());
        t.id = Some(id.clone());
        reg.apply(&Change::PutClient {
            token: t,
            registered: T0,
        })
        .expect("put");
        id
    };
    let ids: Vec<Vec<u8>> = (0u32..5000).map(|i| put_named(&mut reg, i)).collect();
    assert_eq!(reg.client_count(), 5000);
    assert_eq!(reg.unique_name("same"), "same-5001");
    // same-2500 is forgotten: a walk would hand it out again (and walk
    // 2,499 names to find it); the index moves on
    reg.apply(&Change::ForgetClient(ids[2499].clone()))
        .expect("forget");
    assert!(!reg.client_names.contains_key("same-2500"));
    assert_eq!(reg.unique_name("same"), "same-5001");
}

#[test]
fn admission_by_key_refuses_unlisted_keys_before_anything_else() {
    let mut reg = Registry::new(limits());
    reg.set_admission(Admission::new(Some([fingerprint(0)].into()), None));
    run_at(&mut reg, &mut ctx(), new_client(0, "listed", &[]), T0).expect("listed");
    let refused = reg
        .plan_at(&ctx(), &new_client(1, "stranger", &[]), T0)
        .expect_err("not listed");
    assert!(matches!(
        refused,
        RegistryError::NotAdmitted(AdmissionError::KeyNotListed(_))
    ));
    assert_eq!(refused.reason(), "not_admitted");
    assert_eq!(reg.client_count(), 1, "nothing registered");
}

#[test]
fn admission_by_secret_wants_this_sessions_proof() {
    const SECRET: &[u8] = b"the cluster's shared secret";
    let mut reg = Registry::new(limits());
    reg.set_admission(Admission::new(None, Some(SECRET.to_vec())));
    let proof = admission_proof(SECRET, &SALT2).expect("hmac").to_vec();
    assert!(matches!(
        reg.plan_at(&ctx(), &new_client(0, "a", &[]), T0),
        Err(RegistryError::NotAdmitted(AdmissionError::ProofMissing))
    ));
    let wrong = admission_proof(b"not the cluster's secret", &SALT2)
        .expect("hmac")
        .to_vec();
    assert!(matches!(
        reg.plan_at(
            &ctx(),
            &with_proof(new_client(0, "a", &[]), Some(wrong)),
            T0
        ),
        Err(RegistryError::NotAdmitted(AdmissionError::ProofWrong))
    ));
    let mut s = ctx();
    let Reply::ClientOk { id, .. } = run_at(
        &mut reg,
        &mut s,
        with_proof(new_client(0, "a", &[]), Some(proof.clone())),
        T0,
    )
    .expect("admitted") else {
        panic!()
    };
    // a returning client proves it again, in its own session
    assert!(matches!(
        reg.plan_at(&ctx(), &returning_client(0, &id, &SALT2, None), T0),
        Err(RegistryError::NotAdmitted(AdmissionError::ProofMissing))
    ));
    reg.plan_at(
        &ctx(),
        &with_proof(returning_client(0, &id, &SALT2, None), Some(proof)),
        T0,
    )
    .expect("returning, with proof");
}

#[test]
fn a_returning_client_whose_key_was_dropped_from_the_list_is_refused() {
    let mut reg = Registry::new(limits());
    let mut s = ctx();
    let Reply::ClientOk { id, .. } =
        run_at(&mut reg, &mut s, new_client(1, "b", &[]), T0).expect("open registry")
    else {
        panic!()
    };
    reg.set_admission(Admission::new(Some([fingerprint(0)].into()), None));
    assert!(matches!(
        reg.plan_at(&ctx(), &returning_client(1, &id, &SALT2, None), T0),
        Err(RegistryError::NotAdmitted(_))
    ));
}
