//! Every rule of the registry and every error path of the seed, without
//! sockets.

use super::*;
use crate::test_support::{new_client, returning_client, token_with};

mod abuse;

const SALT2: [u8; 8] = [0x5A; 8];

fn ctx() -> SessionContext {
    SessionContext {
        client: None,
        cluster: None,
        salt2: SALT2,
    }
}

/// A client put straight into the state, registered at time 0.
fn put(token: Token) -> Change {
    Change::PutClient {
        token,
        registered: 0,
    }
}

/// Plans and applies `request` in `session`, updating it like a session
/// would; returns the reply.
fn run(
    reg: &mut Registry,
    session: &mut SessionContext,
    request: Request,
) -> Result<Reply, RegistryError> {
    let planned = reg.plan(session, &request)?;
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

/// A session identified as a new client `name` (client key `key`).
fn client(reg: &mut Registry, key: usize, name: &str, ends: &[&str]) -> SessionContext {
    let mut s = ctx();
    run(reg, &mut s, new_client(key, name, ends)).expect("registers");
    s
}

fn create(name: &str, size: u32, endpoints: u32) -> Request {
    Request::Create {
        name: name.into(),
        size,
        endpoints,
    }
}

fn join(name: &str) -> Request {
    Request::Join(ClusterRef {
        id: None,
        name: Some(name.into()),
    })
}

fn get(which: u64) -> Request {
    Request::GetCluster {
        cluster: ClusterRef::default(),
        which,
    }
}

fn names(reply: &Reply) -> (u64, Vec<String>) {
    match reply {
        Reply::Members { which, tokens, .. } => (
            *which,
            tokens
                .iter()
                .map(|t| t.name.clone().unwrap_or_default())
                .collect(),
        ),
        other => panic!("not members: {other:?}"),
    }
}

#[test]
fn a_new_client_gets_an_id_and_keeps_its_attrs() {
    let mut reg = Registry::default();
    let mut s = ctx();
    let mut request = new_client(0, "alpha", &["h:1"]);
    if let Request::NewClient {
        token, signature, ..
    } = &mut request
    {
        token.attrs = Some(0x42);
        *signature = token::sign(
            crate::test_support::client_key(0),
            &token::signed_bytes(token),
        )
        .expect("sign");
    }
    let reply = run(&mut reg, &mut s, request).expect("ok");
    let Reply::ClientOk { name, id, attrs } = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(name, "alpha");
    assert_eq!(id.len(), ID_LEN);
    assert_eq!(attrs, 0x42);
    assert_eq!(s.client, Some(id));
    assert_eq!(reg.client_count(), 1);
}

#[test]
fn names_are_uniquified_and_ids_assigned_when_taken() {
    let mut reg = Registry::default();
    client(&mut reg, 0, "alpha", &[]);
    let mut s = ctx();
    let Reply::ClientOk { name, .. } =
        run(&mut reg, &mut s, new_client(1, "alpha", &[])).expect("ok")
    else {
        panic!()
    };
    assert_eq!(name, "alpha-2");
    let Reply::ClientOk { name, .. } =
        run(&mut reg, &mut ctx(), new_client(0, "alpha", &[])).expect("ok")
    else {
        panic!()
    };
    assert_eq!(name, "alpha-3");

    // a proposed 20-byte ID is used when free, replaced when taken
    let proposing = |reg: &mut Registry, name: &str| {
        let mut token = token_with(2, name, 0, &[]);
        token.id = Some(vec![0xAA; 20]);
        let signature = token::sign(
            crate::test_support::client_key(2),
            &token::signed_bytes(&token),
        )
        .expect("sign");
        let request = Request::NewClient {
            name: name.into(),
            token,
            signature,
            proof: None,
        };
        match run(reg, &mut ctx(), request).expect("ok") {
            Reply::ClientOk { id, .. } => id,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(proposing(&mut reg, "beta"), vec![0xAA; 20]);
    let second = proposing(&mut reg, "gamma");
    assert_ne!(second, vec![0xAA; 20]);
    assert_eq!(second.len(), ID_LEN);
}

#[test]
fn bad_new_clients_are_refused() {
    let reg = Registry::default();
    // signature over something else
    let mut request = new_client(0, "alpha", &[]);
    if let Request::NewClient { signature, .. } = &mut request {
        signature[10] ^= 1;
    }
    assert!(matches!(
        reg.plan(&ctx(), &request),
        Err(RegistryError::Token(TokenError::BadSignature))
    ));
    // signed by another key than the token's SigKey
    let mut request = new_client(0, "alpha", &[]);
    if let (
        Request::NewClient { signature, .. },
        Request::NewClient {
            signature: other, ..
        },
    ) = (&mut request, new_client(1, "alpha", &[]))
    {
        *signature = other;
    }
    assert!(matches!(
        reg.plan(&ctx(), &request),
        Err(RegistryError::Token(TokenError::BadSignature))
    ));
    // ClientName differs from the token's Name
    let mut request = new_client(0, "alpha", &[]);
    if let Request::NewClient { name, .. } = &mut request {
        *name = "beta".into();
    }
    assert!(matches!(
        reg.plan(&ctx(), &request),
        Err(RegistryError::NameMismatch { .. })
    ));
    // a bad name
    assert!(matches!(
        reg.plan(&ctx(), &new_client(0, "bad\nname", &[])),
        Err(RegistryError::Token(TokenError::BadName(_)))
    ));
}

fn registered(reg: &mut Registry, key: usize, name: &str, ends: &[&str]) -> Vec<u8> {
    client(reg, key, name, ends).client.expect("identified")
}

#[test]
fn returning_clients_sign_this_sessions_salt2() {
    let mut reg = Registry::default();
    let id = registered(&mut reg, 0, "alpha", &["h:1"]);
    let mut s = ctx();
    let reply = run(&mut reg, &mut s, returning_client(0, &id, &SALT2, None)).expect("ok");
    assert_eq!(
        reply,
        Reply::ClientOk {
            name: "alpha".into(),
            id: id.clone(),
            attrs: 0
        }
    );
    assert_eq!(s.client, Some(id.clone()));
    // another session's salt2
    assert!(matches!(
        reg.plan(&ctx(), &returning_client(0, &id, &[0x11; 8], None)),
        Err(RegistryError::SaltMismatch)
    ));
    // another key
    assert!(matches!(
        reg.plan(&ctx(), &returning_client(1, &id, &SALT2, None)),
        Err(RegistryError::Token(TokenError::BadSignature))
    ));
    // unknown ID
    assert!(matches!(
        reg.plan(&ctx(), &returning_client(0, &[9; 32], &SALT2, None)),
        Err(RegistryError::UnknownClient)
    ));
}

#[test]
fn returning_clients_may_update_their_endpoints_only() {
    let mut reg = Registry::default();
    let id = registered(&mut reg, 0, "alpha", &["h:1"]);
    let mut update = token_with(0, "alpha", 0, &["h:2"]);
    let planned = reg
        .plan(
            &ctx(),
            &returning_client(0, &id, &SALT2, Some(update.clone())),
        )
        .expect("ok");
    let Some(Change::PutClient { token, .. }) = &planned.change else {
        panic!("{planned:?}")
    };
    assert_eq!(token.my_ends, vec!["h:2".to_string()]);
    assert_eq!(token.id.as_deref(), Some(&id[..]));
    // the same token again changes nothing
    let same = token_with(0, "alpha", 0, &["h:1"]);
    let planned = reg
        .plan(&ctx(), &returning_client(0, &id, &SALT2, Some(same)))
        .expect("ok");
    assert_eq!(planned.change, None);
    // a rename, another ID, another signing key
    update.name = Some("omega".into());
    assert!(matches!(
        reg.plan(
            &ctx(),
            &returning_client(0, &id, &SALT2, Some(update.clone()))
        ),
        Err(RegistryError::Immutable("name"))
    ));
    update.name = None;
    update.id = Some(vec![1; 32]);
    assert!(matches!(
        reg.plan(
            &ctx(),
            &returning_client(0, &id, &SALT2, Some(update.clone()))
        ),
        Err(RegistryError::Immutable("ID"))
    ));
    let other_key = token_with(1, "alpha", 0, &["h:2"]);
    assert!(matches!(
        reg.plan(&ctx(), &returning_client(0, &id, &SALT2, Some(other_key))),
        Err(RegistryError::Immutable("signing key"))
    ));
    // a member of a one-endpoint cluster may not drop its endpoint
    let mut s = client(&mut reg, 1, "creator", &["c:1"]);
    run(&mut reg, &mut s, create("one", 3, 1)).expect("create");
    let mut member = ctx();
    run(
        &mut reg,
        &mut member,
        returning_client(0, &id, &SALT2, None),
    )
    .expect("back");
    run(&mut reg, &mut member, join("one")).expect("join");
    let none = token_with(0, "alpha", 0, &[]);
    assert!(matches!(
        reg.plan(&ctx(), &returning_client(0, &id, &SALT2, Some(none))),
        Err(RegistryError::UpdateEnds {
            needs: 1,
            has: 0,
            ..
        })
    ));
}

#[test]
fn create_clamps_the_size_and_returns_existing_clusters_unchanged() {
    let mut reg = Registry::default();
    let mut s = client(&mut reg, 0, "alpha", &["h:1"]);
    for (asked, got) in [
        (0, 2),
        (1, 2),
        (2, 2),
        (5, 5),
        (64, 64),
        (65, 64),
        (u32::MAX, 64),
    ] {
        let name = format!("c{asked}");
        let Reply::CreateReply(info) = run(&mut reg, &mut s, create(&name, asked, 1)).expect("ok")
        else {
            panic!()
        };
        assert_eq!(info.size, got, "asked {asked}");
        assert_eq!(info.id.len(), ID_LEN);
        assert_eq!(s.cluster.as_ref(), Some(&info.id));
    }
    let Reply::CreateReply(first) = run(&mut reg, &mut s, create("same", 3, 2)).expect("ok") else {
        panic!()
    };
    let mut other = client(&mut reg, 1, "beta", &[]);
    let planned = reg.plan(&other, &create("same", 10, 1)).expect("ok");
    assert_eq!(planned.change, None);
    assert_eq!(planned.reply, Reply::CreateReply(first.clone()));
    run(&mut reg, &mut other, create("same", 10, 1)).expect("ok");
    assert_eq!(other.cluster, Some(first.id));
    assert!(matches!(
        reg.plan(&s, &create("bad\u{7}", 3, 1)),
        Err(RegistryError::Token(TokenError::BadName(_)))
    ));
    assert!(matches!(
        reg.plan(&ctx(), &create("x", 3, 1)),
        Err(RegistryError::NotIdentified)
    ));
}

#[test]
fn a_full_cluster_refuses_a_join_and_joining_twice_keeps_one_slot() {
    let mut reg = Registry::default();
    let mut a = client(&mut reg, 0, "a", &["a:1"]);
    run(&mut reg, &mut a, create("pair", 2, 1)).expect("create");
    run(&mut reg, &mut a, join("pair")).expect("a joins");
    // twice: same reply, no change
    let again = reg.plan(&a, &join("pair")).expect("again");
    assert_eq!(again.change, None);
    assert!(matches!(again.reply, Reply::JoinReply(_)));
    let mut b = client(&mut reg, 1, "b", &["b:1"]);
    run(&mut reg, &mut b, join("pair")).expect("b joins");
    let mut c = client(&mut reg, 2, "c", &["c:1"]);
    let refused = reg.plan(&c, &join("pair"));
    assert!(
        matches!(&refused, Err(RegistryError::ClusterFull { size: 2, .. })),
        "{refused:?}"
    );
    assert_eq!(
        refused.map(|_| ()).unwrap_err().to_string(),
        "cluster \"pair\" is full (2 members)"
    );
    // members still a then b
    let members = run(
        &mut reg,
        &mut c,
        Request::GetCluster {
            cluster: ClusterRef {
                id: None,
                name: Some("pair".into()),
            },
            which: u64::MAX,
        },
    )
    .expect("get");
    assert_eq!(names(&members), (0b11, vec!["a".into(), "b".into()]));
}

#[test]
fn join_checks_endpoints_and_cluster_references() {
    let mut reg = Registry::default();
    let mut a = client(&mut reg, 0, "a", &["a:1"]);
    let Reply::CreateReply(two) = run(&mut reg, &mut a, create("two", 3, 2)).expect("create")
    else {
        panic!()
    };
    assert!(matches!(
        reg.plan(&a, &join("two")),
        Err(RegistryError::Endpoints {
            needs: 2,
            has: 1,
            ..
        })
    ));
    let b = client(&mut reg, 1, "b", &["b:1", "b:2"]);
    let by_id = Request::Join(ClusterRef {
        id: Some(two.id.clone()),
        name: None,
    });
    assert!(reg.plan(&b, &by_id).expect("by id").change.is_some());
    let both = Request::Join(ClusterRef {
        id: Some(two.id.clone()),
        name: Some("two".into()),
    });
    reg.plan(&b, &both).expect("consistent");
    let mismatch = Request::Join(ClusterRef {
        id: Some(two.id),
        name: Some("other".into()),
    });
    assert!(matches!(
        reg.plan(&b, &mismatch),
        Err(RegistryError::ClusterMismatch)
    ));
    assert!(matches!(
        reg.plan(&b, &join("nope")),
        Err(RegistryError::NoSuchCluster)
    ));
    let unknown_id = Request::Join(ClusterRef {
        id: Some(vec![0; 32]),
        name: None,
    });
    assert!(matches!(
        reg.plan(&b, &unknown_id),
        Err(RegistryError::NoSuchCluster)
    ));
    assert!(matches!(
        reg.plan(&ctx(), &join("two")),
        Err(RegistryError::NotIdentified)
    ));
}

#[test]
fn which_selects_members_in_join_order_and_tokens_come_in_bit_order() {
    let mut reg = Registry::default();
    let mut s = client(&mut reg, 0, "m0", &["e:0"]);
    run(&mut reg, &mut s, create("five", 5, 1)).expect("create");
    // an empty cluster: Which 0
    assert_eq!(
        names(&run(&mut reg, &mut s, get(u64::MAX)).expect("get")),
        (0, vec![])
    );
    run(&mut reg, &mut s, join("five")).expect("join");
    for (i, key) in [(1, 1), (2, 2), (3, 3)] {
        let mut m = client(&mut reg, key, &format!("m{i}"), &[&format!("e:{i}")]);
        run(&mut reg, &mut m, join("five")).expect("join");
    }
    let all = |r: &Reply| names(r);
    assert_eq!(
        all(&run(&mut reg, &mut s, get(u64::MAX)).expect("get")),
        (
            0b1111,
            vec!["m0".into(), "m1".into(), "m2".into(), "m3".into()]
        )
    );
    assert_eq!(
        all(&run(&mut reg, &mut s, get(0b1010)).expect("get")),
        (0b1010, vec!["m1".into(), "m3".into()])
    );
    assert_eq!(
        all(&run(&mut reg, &mut s, get(0b1001)).expect("get")),
        (0b1001, vec!["m0".into(), "m3".into()])
    );
    // bits of members not yet defined are dropped from Which
    assert_eq!(
        all(&run(&mut reg, &mut s, get(0b11_0100)).expect("get")),
        (0b100, vec!["m2".into()])
    );
    assert_eq!(
        all(&run(&mut reg, &mut s, get(1 << 63)).expect("get")),
        (0, vec![])
    );
    assert_eq!(
        all(&run(&mut reg, &mut s, get(0)).expect("get")),
        (0, vec![])
    );
    // tokens carry name, ID, keys and endpoints, never a signature
    let Reply::Members {
        tokens, cluster, ..
    } = run(&mut reg, &mut s, get(0b10)).expect("get")
    else {
        panic!()
    };
    assert_eq!(cluster.size, 5);
    assert_eq!(tokens[0].my_ends, vec!["e:1".to_string()]);
    assert_eq!(tokens[0].id.as_ref().map(Vec::len), Some(ID_LEN));
    assert!(tokens[0].sig_key.is_some() && tokens[0].comms_key.is_some());
    assert!(tokens[0].dig_sig.is_none());
}

#[test]
fn get_cluster_finds_the_cluster_by_id_name_or_session() {
    let mut reg = Registry::default();
    let mut s = client(&mut reg, 0, "a", &["e"]);
    assert!(matches!(
        reg.plan(&s, &get(u64::MAX)),
        Err(RegistryError::NoCluster)
    ));
    let Reply::CreateReply(info) = run(&mut reg, &mut s, create("c", 3, 1)).expect("create") else {
        panic!()
    };
    let fresh = client(&mut reg, 1, "b", &["e"]);
    let by_id = Request::GetCluster {
        cluster: ClusterRef {
            id: Some(info.id.clone()),
            name: None,
        },
        which: u64::MAX,
    };
    assert!(matches!(
        reg.plan(&fresh, &by_id).expect("by id").reply,
        Reply::Members { .. }
    ));
    let by_name = Request::GetCluster {
        cluster: ClusterRef {
            id: None,
            name: Some("c".into()),
        },
        which: u64::MAX,
    };
    assert!(matches!(
        reg.plan(&fresh, &by_name).expect("by name").reply,
        Reply::Members { .. }
    ));
    let unknown = Request::GetCluster {
        cluster: ClusterRef {
            id: Some(vec![1; 32]),
            name: None,
        },
        which: u64::MAX,
    };
    assert!(matches!(
        reg.plan(&fresh, &unknown),
        Err(RegistryError::NoSuchCluster)
    ));
    assert!(matches!(
        reg.plan(&ctx(), &by_name),
        Err(RegistryError::NotIdentified)
    ));
}

#[test]
fn every_member_fits_one_reply_at_the_largest_legal_sizes() {
    use crate::{
        frame::{MAX_REPLY_FRAME_LEN, MAX_REPLY_MESSAGE_LEN, MAX_REQUEST_FRAME_LEN, Role},
        token::{MAX_END_LEN, MAX_KEY_DER_LEN, MAX_NAME_LEN},
    };
    let mut reg = Registry::default();
    let creator = "c".repeat(MAX_NAME_LEN);
    let mut s = client(&mut reg, 0, &creator, &["e"]);
    let cluster = "k".repeat(MAX_NAME_LEN);
    let Reply::CreateReply(info) = run(&mut reg, &mut s, create(&cluster, 64, 2)).expect("create")
    else {
        panic!()
    };
    // 64 members whose every field is as long as a token may have it, put
    // straight into the state: the signing key is of the largest size
    // accepted (8192 bits; the registry reads it), the comms key bytes as
    // long as a key's DER may be
    let largest_key =
        crate::keys::PublicKey::from_pem(include_bytes!("tests/test-only-8192-bit-public-key.pem"))
            .and_then(|k| k.to_der())
            .expect("8192-bit key");
    for i in 0..64u8 {
        let end = |c: char| format!("{i:02}{}", c.to_string().repeat(MAX_END_LEN - 2));
        let mut token = token_with(
            0,
            &format!("{i:02}{}", "m".repeat(MAX_NAME_LEN - 2)),
            0,
            &[],
        );
        token.attrs = Some(u64::MAX);
        token.id = Some(vec![i; 32]);
        token.comms_key = Some(vec![i; MAX_KEY_DER_LEN]);
        token.sig_key = Some(largest_key.clone());
        token.my_ends = vec![end('a'), end('b')];
        reg.apply(&put(token)).expect("client");
        reg.apply(&Change::AddMember {
            cluster: info.id.clone(),
            client: vec![i; 32],
            slot: None,
        })
        .expect("member");
    }
    let reply = run(&mut reg, &mut s, get(u64::MAX)).expect("get");
    let Reply::Members { which, tokens, .. } = &reply else {
        panic!()
    };
    assert_eq!(*which, u64::MAX, "every member");
    assert_eq!(tokens.len(), 64);
    assert!(tokens.iter().all(|t| t.dig_sig.is_none()));
    // the encoding is within the derived bound, far above the request
    // limit (the old 64 KiB cap let 13 of these through)
    let plain = reply.to_envelope(true).encode_to_vec();
    assert!(plain.len() <= MAX_REPLY_MESSAGE_LEN, "{}", plain.len());
    assert!(plain.len() > 3 * MAX_REQUEST_FRAME_LEN, "{}", plain.len());
    // and it travels in one frame of either version
    for scheme in [crate::version::Scheme::V1, crate::version::Scheme::V2] {
        let keys = crate::crypto::SessionKeys::derive(scheme, &[1; 32], &[2; 16], &[3; 8], &[4; 8])
            .expect("keys");
        let frame = keys.sealer(Role::Server).seal(&plain).expect("seals");
        assert!(frame.len() - 4 <= MAX_REPLY_FRAME_LEN);
        let opened = keys.opener(Role::Client).open(&frame[4..]).expect("opens");
        assert_eq!(opened, plain);
    }
    // asking for some gets exactly those
    let (which, names) = names(&run(&mut reg, &mut s, get(0b101 << 61)).expect("get"));
    assert_eq!(which, 0b101 << 61);
    assert_eq!(names.len(), 2);
    assert!(
        names[0].starts_with("61") && names[1].starts_with("63"),
        "{names:?}"
    );
}

#[test]
fn limits_bound_clients_and_clusters() {
    let mut reg = Registry::new(Limits {
        max_clients: 1,
        max_clusters: 1,
        ..Limits::default()
    });
    let mut s = client(&mut reg, 0, "only", &["e"]);
    assert!(matches!(
        reg.plan(&ctx(), &new_client(1, "second", &[])),
        Err(RegistryError::Full("clients"))
    ));
    run(&mut reg, &mut s, create("one", 2, 1)).expect("create");
    assert!(matches!(
        reg.plan(&s, &create("two", 2, 1)),
        Err(RegistryError::Full("clusters"))
    ));
    // an existing cluster is still returned
    reg.plan(&s, &create("one", 2, 1)).expect("existing");
}

#[test]
fn a_snapshot_rebuilds_the_same_registry() {
    let mut reg = Registry::default();
    let mut a = client(&mut reg, 0, "a", &["a:1"]);
    run(&mut reg, &mut a, create("c1", 4, 1)).expect("create");
    let mut b = client(&mut reg, 1, "b", &["b:1"]);
    run(&mut reg, &mut b, create("c2", 4, 1)).expect("create");
    run(&mut reg, &mut b, join("c1")).expect("join");
    run(&mut reg, &mut a, join("c1")).expect("join");
    run(&mut reg, &mut a, join("c2")).expect("join");
    let mut copy = Registry::default();
    for change in reg.snapshot() {
        copy.apply(&change).expect("replay");
    }
    assert_eq!(copy.client_count(), 2);
    assert_eq!(copy.cluster_count(), 2);
    for name in ["c1", "c2"] {
        assert_eq!(reg.members_of(name), copy.members_of(name), "{name}");
    }
    let order: Vec<_> = copy
        .members_of("c1")
        .expect("c1")
        .iter()
        .map(|t| t.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(order, vec!["b", "a"]);
}

#[test]
fn inconsistent_changes_are_refused() {
    let mut reg = Registry::default();
    let mut token = token_with(0, "a", 0, &[]);
    token.id = Some(vec![1; 32]);
    reg.apply(&put(token.clone())).expect("client");
    let mut renamed = token.clone();
    renamed.name = Some("z".into());
    assert!(matches!(
        reg.apply(&put(renamed)),
        Err(RegistryError::Inconsistent(_))
    ));
    let mut thief = token.clone();
    thief.id = Some(vec![2; 32]);
    assert!(matches!(
        reg.apply(&put(thief)),
        Err(RegistryError::Inconsistent(_))
    ));
    assert!(matches!(
        reg.apply(&Change::AddMember {
            cluster: vec![3; 32],
            client: vec![1; 32],
            slot: None,
        }),
        Err(RegistryError::Inconsistent(_))
    ));
    let info = ClusterInfo {
        id: vec![3; 32],
        name: "c".into(),
        size: 2,
        endpoints: 1,
        attrs: 0,
        creator: None,
    };
    let created = |info: ClusterInfo, creator: Option<Vec<u8>>| Change::CreateCluster {
        info,
        creator,
        created: 0,
    };
    assert!(
        matches!(
            reg.apply(&created(info.clone(), Some(vec![9; 32]))),
            Err(RegistryError::Inconsistent(_))
        ),
        "created by no client"
    );
    reg.apply(&created(info.clone(), Some(vec![1; 32])))
        .expect("cluster");
    assert!(matches!(
        reg.apply(&created(info, None)),
        Err(RegistryError::Inconsistent(_))
    ));
    // forgetting: a client that created a live cluster, a cluster that
    // does not exist, a client that does not exist
    for change in [
        Change::ForgetClient(vec![1; 32]),
        Change::ForgetCluster(vec![8; 32]),
        Change::ForgetClient(vec![8; 32]),
    ] {
        assert!(
            matches!(reg.apply(&change), Err(RegistryError::Inconsistent(_))),
            "{change:?}"
        );
    }
    assert!(matches!(
        reg.apply(&Change::AddMember {
            cluster: vec![3; 32],
            client: vec![9; 32],
            slot: None,
        }),
        Err(RegistryError::Inconsistent(_))
    ));
}

fn leave(reg: &Registry, s: &SessionContext, key: usize, cluster: &str) -> Request {
    let id = s.client.clone().expect("identified");
    let cluster_id = reg
        .resolve(&ClusterRef {
            id: None,
            name: Some(cluster.into()),
        })
        .expect("cluster")
        .info
        .id
        .clone();
    let signed = crate::ext::leave_signed_bytes(&id, &cluster_id, &s.salt2);
    Request::Leave {
        cluster: ClusterRef {
            id: None,
            name: Some(cluster.into()),
        },
        signature: token::sign(crate::test_support::client_key(key), &signed).expect("sign"),
    }
}

#[test]
fn a_member_leaves_and_its_slot_is_the_next_join() {
    let mut reg = Registry::default();
    let mut a = client(&mut reg, 0, "a", &["a:1"]);
    let mut b = client(&mut reg, 1, "b", &["b:1"]);
    let mut c = client(&mut reg, 2, "c", &["c:1"]);
    run(&mut reg, &mut a, create("trio", 2, 1)).expect("create");
    run(&mut reg, &mut a, join("trio")).expect("a joins");
    run(&mut reg, &mut b, join("trio")).expect("b joins");
    assert!(matches!(
        run(&mut reg, &mut c, join("trio")),
        Err(RegistryError::ClusterFull { .. })
    ));
    // a signature over another session's salt2, or by another key: refused
    let mut other = leave(&reg, &a, 0, "trio");
    if let Request::Leave { signature, .. } = &mut other {
        let id = a.client.clone().expect("id");
        let cid = reg
            .clusters
            .values()
            .next()
            .expect("cluster")
            .info
            .id
            .clone();
        *signature = token::sign(
            crate::test_support::client_key(0),
            &crate::ext::leave_signed_bytes(&id, &cid, &[0; 8]),
        )
        .expect("sign");
    }
    assert!(matches!(
        run(&mut reg, &mut a, other),
        Err(RegistryError::Token(_))
    ));
    assert!(matches!(
        {
            let r = leave(&reg, &a, 1, "trio");
            run(&mut reg, &mut a, r)
        },
        Err(RegistryError::Token(_))
    ));
    // a leaves: slot 0 is free, b keeps slot 1
    let left = {
        let r = leave(&reg, &a, 0, "trio");
        run(&mut reg, &mut a, r)
    }
    .expect("leaves");
    assert!(matches!(left, Reply::Left { which: 1, .. }), "{left:?}");
    assert_eq!(
        names(&run(&mut reg, &mut b, get(u64::MAX)).expect("get")),
        (0b10, vec!["b".into()])
    );
    // leaving again: not a member
    assert!(matches!(
        {
            let r = leave(&reg, &a, 0, "trio");
            run(&mut reg, &mut a, r)
        },
        Err(RegistryError::NotMember { .. })
    ));
    // c takes slot 0
    run(&mut reg, &mut c, join("trio")).expect("c joins the freed slot");
    assert_eq!(
        names(&run(&mut reg, &mut b, get(u64::MAX)).expect("get")),
        (0b11, vec!["c".into(), "b".into()])
    );
    // the snapshot keeps the slots
    let mut replayed = Registry::default();
    for change in reg.snapshot() {
        replayed.apply(&change).expect("replays");
    }
    let mut r = b.clone();
    assert_eq!(
        names(&run(&mut replayed, &mut r, get(u64::MAX)).expect("get")),
        (0b11, vec!["c".into(), "b".into()])
    );
}

#[test]
fn the_operator_removes_members_and_resizes_clusters() {
    let mut reg = Registry::default();
    let mut a = client(&mut reg, 0, "a", &["a:1"]);
    let mut b = client(&mut reg, 1, "b", &["b:1"]);
    let mut c = client(&mut reg, 2, "c", &["c:1"]);
    run(&mut reg, &mut a, create("trio", 2, 1)).expect("create");
    run(&mut reg, &mut a, join("trio")).expect("a joins");
    run(&mut reg, &mut b, join("trio")).expect("b joins");
    let remove = |member: &str| AdminRequest::RemoveMember {
        cluster: "trio".into(),
        member: member.into(),
    };
    let resize = |size| AdminRequest::SetSize {
        cluster: "trio".into(),
        size,
    };
    // b holds slot 1: the size cannot go below 2, nor outside 2..=64
    for size in [1, 65] {
        assert!(matches!(
            reg.plan_admin(&resize(size)),
            Err(RegistryError::BadSize { .. })
        ));
    }
    let (change, said) = reg.plan_admin(&resize(3)).expect("grows");
    assert!(said.contains("now has size 3"), "{said}");
    reg.apply(&change).expect("applies");
    run(&mut reg, &mut c, join("trio")).expect("c joins slot 2");
    assert!(matches!(
        reg.plan_admin(&resize(2)),
        Err(RegistryError::BadSize { needed: 3, .. })
    ));
    // remove by name, and by hex ID
    assert!(matches!(
        reg.plan_admin(&remove("nobody")),
        Err(RegistryError::NoSuchClient(_))
    ));
    let (change, said) = reg.plan_admin(&remove("c")).expect("removes c");
    assert!(said.contains("slot 2 is free"), "{said}");
    reg.apply(&change).expect("applies");
    let a_hex = crate::identity::to_hex(a.client.as_deref().expect("id"));
    let (change, _) = reg.plan_admin(&remove(&a_hex)).expect("removes a");
    reg.apply(&change).expect("applies");
    assert!(matches!(
        reg.plan_admin(&remove("a")),
        Err(RegistryError::NotMember { .. })
    ));
    assert_eq!(
        names(&run(&mut reg, &mut b, get(u64::MAX)).expect("get")),
        (0b10, vec!["b".into()])
    );
    // now it may shrink back to 2; a rejoins slot 0
    let (change, _) = reg.plan_admin(&resize(2)).expect("shrinks");
    reg.apply(&change).expect("applies");
    let Reply::JoinReply(info) = run(&mut reg, &mut a, join("trio")).expect("a rejoins") else {
        panic!()
    };
    assert_eq!(info.size, 2);
    assert!(matches!(
        run(&mut reg, &mut c, join("trio")),
        Err(RegistryError::ClusterFull { .. })
    ));
}
