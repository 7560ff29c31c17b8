//! Every shape error of a request, and replies both ways.

use prost::Message;

use super::*;

fn msg(op: Tag) -> XlRegMsg {
    XlRegMsg {
        op: Some(op as i32),
        ..Default::default()
    }
}

#[test]
fn ops_are_required_and_known() {
    assert_eq!(
        parse_request(XlRegMsg::default()),
        Err(ProtocolError::MissingOp)
    );
    let unknown = XlRegMsg {
        op: Some(99),
        ..Default::default()
    };
    assert_eq!(parse_request(unknown), Err(ProtocolError::UnknownOp(99)));
    for op in [
        Tag::RegCredRequest,
        Tag::RegCredReply,
        Tag::ClientOk,
        Tag::CreateReply,
        Tag::JoinReply,
        Tag::ClusterMembers,
        Tag::Ack,
        Tag::Error,
    ] {
        assert!(
            matches!(parse_request(msg(op)), Err(ProtocolError::Unexpected(_))),
            "{op:?}"
        );
    }
}

#[test]
fn short_salts_are_errors_in_any_message() {
    for len in 0..8 {
        let m = XlRegMsg {
            salt1: Some(vec![0; len]),
            ..msg(Tag::Bye)
        };
        assert_eq!(
            parse_request(m),
            Err(ProtocolError::ShortSalt {
                field: "Salt1",
                len
            })
        );
        let m = XlRegMsg {
            salt2: Some(vec![0; len]),
            ..msg(Tag::GetCluster)
        };
        assert_eq!(
            parse_request(m),
            Err(ProtocolError::ShortSalt {
                field: "Salt2",
                len
            })
        );
    }
    let long_enough = XlRegMsg {
        salt2: Some(vec![0; 8]),
        ..msg(Tag::Bye)
    };
    assert_eq!(parse_request(long_enough), Ok(Request::Bye));
}

#[test]
fn client_forms() {
    let token = Token {
        name: Some("tok".into()),
        ..Default::default()
    };
    // new: ClientName wins over the token's Name
    let new = XlRegMsg {
        client_name: Some("n".into()),
        client_specs: Some(token.clone()),
        dig_sig: Some(vec![1]),
        ..msg(Tag::Client)
    };
    assert!(matches!(
        parse_request(new.clone()),
        Ok(Request::NewClient { name, .. }) if name == "n"
    ));
    let from_token = XlRegMsg {
        client_name: None,
        ..new.clone()
    };
    assert!(matches!(
        parse_request(from_token),
        Ok(Request::NewClient { name, .. }) if name == "tok"
    ));
    let nameless = XlRegMsg {
        client_name: None,
        client_specs: Some(Token::default()),
        ..new.clone()
    };
    assert!(matches!(
        parse_request(nameless),
        Err(ProtocolError::Missing {
            field: "ClientName",
            ..
        })
    ));
    let unsigned = XlRegMsg {
        dig_sig: None,
        ..new.clone()
    };
    assert!(matches!(
        parse_request(unsigned),
        Err(ProtocolError::Missing {
            field: "DigSig",
            ..
        })
    ));
    let empty = XlRegMsg {
        dig_sig: Some(vec![1]),
        ..msg(Tag::Client)
    };
    assert!(matches!(
        parse_request(empty),
        Err(ProtocolError::Missing {
            field: "ClientSpecs or ClientID",
            ..
        })
    ));
    // returning: needs Salt2; may carry a token update
    let returning = XlRegMsg {
        client_id: Some(vec![7; 32]),
        salt2: Some(vec![8; 8]),
        dig_sig: Some(vec![1]),
        client_specs: Some(token),
        ..msg(Tag::Client)
    };
    assert!(matches!(
        parse_request(returning.clone()),
        Ok(Request::ReturningClient {
            update: Some(_),
            ..
        })
    ));
    let saltless = XlRegMsg {
        salt2: None,
        ..returning
    };
    assert!(matches!(
        parse_request(saltless),
        Err(ProtocolError::Missing { field: "Salt2", .. })
    ));
}

#[test]
fn create_forms() {
    let create = XlRegMsg {
        cluster_name: Some("c".into()),
        cluster_size: Some(100),
        ..msg(Tag::Create)
    };
    assert_eq!(
        parse_request(create.clone()),
        Ok(Request::Create {
            name: "c".into(),
            size: 100,
            endpoints: 1
        })
    );
    for bad in [0, 3, 64] {
        let m = XlRegMsg {
            end_point_count: Some(bad),
            ..create.clone()
        };
        assert_eq!(parse_request(m), Err(ProtocolError::EndpointCount(bad)));
    }
    let m = XlRegMsg {
        end_point_count: Some(2),
        ..create.clone()
    };
    assert!(matches!(
        parse_request(m),
        Ok(Request::Create { endpoints: 2, .. })
    ));
    let sizeless = XlRegMsg {
        cluster_size: None,
        ..create.clone()
    };
    assert!(matches!(
        parse_request(sizeless),
        Err(ProtocolError::Missing {
            field: "ClusterSize",
            ..
        })
    ));
    let nameless = XlRegMsg {
        cluster_name: None,
        ..create
    };
    assert!(matches!(
        parse_request(nameless),
        Err(ProtocolError::Missing {
            field: "ClusterName",
            ..
        })
    ));
}

#[test]
fn join_and_get_forms() {
    assert!(matches!(
        parse_request(msg(Tag::Join)),
        Err(ProtocolError::Missing { .. })
    ));
    let join = XlRegMsg {
        cluster_id: Some(vec![1; 32]),
        ..msg(Tag::Join)
    };
    assert!(matches!(parse_request(join), Ok(Request::Join(r)) if r.id.is_some()));
    assert_eq!(
        parse_request(msg(Tag::GetCluster)),
        Ok(Request::GetCluster {
            cluster: ClusterRef::default(),
            which: u64::MAX
        })
    );
    let get = XlRegMsg {
        which: Some(0b101),
        ..msg(Tag::GetCluster)
    };
    assert!(matches!(
        parse_request(get),
        Ok(Request::GetCluster { which: 0b101, .. })
    ));
}

#[test]
fn replies_round_trip() {
    let info = ClusterInfo {
        id: vec![3; 32],
        name: "c".into(),
        size: 5,
        endpoints: 2,
        attrs: 0,
        creator: None,
    };
    let replies = [
        Reply::ClientOk {
            name: "n-2".into(),
            id: vec![1; 32],
            attrs: 6,
        },
        Reply::CreateReply(info.clone()),
        Reply::JoinReply(info.clone()),
        Reply::Members {
            cluster: info,
            which: 0b11,
            tokens: vec![Token::default(), Token::default()],
        },
        Reply::Ack,
        Reply::Error("no".into()),
    ];
    for reply in replies {
        assert_eq!(Reply::from_msg(reply.to_msg()), Ok(reply.clone()));
    }
    assert!(matches!(
        Reply::from_msg(msg(Tag::Join)),
        Err(ProtocolError::Unexpected("Join"))
    ));
}

#[test]
fn creators_travel_as_extension_fields_only_to_clients_that_asked() {
    let info = ClusterInfo {
        id: vec![3; 32],
        name: "c".into(),
        size: 5,
        endpoints: 1,
        attrs: 0,
        creator: Some(Creator {
            name: "node-a".into(),
            key: [7; 32],
        }),
    };
    let without = ClusterInfo {
        creator: None,
        ..info.clone()
    };
    for reply in [
        Reply::CreateReply(info.clone()),
        Reply::JoinReply(info.clone()),
        Reply::Members {
            cluster: info.clone(),
            which: 0,
            tokens: vec![],
        },
    ] {
        // a client that announced Extensions gets the creator back
        let ext = reply.to_envelope(true);
        assert_eq!(ext.ext.creator_name.as_deref(), Some("node-a"));
        assert_eq!(Reply::from_envelope(ext.clone()), Ok(reply.clone()));
        // a seed client gets exactly the seed's message
        let seed = reply.to_envelope(false);
        assert_eq!(seed.ext, Default::default());
        assert_eq!(seed.encode_to_vec(), reply.to_msg().encode_to_vec());
        let read = Reply::from_envelope(seed).expect("reads");
        assert!(matches!(
            read,
            Reply::CreateReply(ref c) | Reply::JoinReply(ref c) | Reply::Members { cluster: ref c, .. }
                if *c == without
        ));
    }
    // a creator key of the wrong length is no creator
    let mut env = Reply::CreateReply(info).to_envelope(true);
    env.ext.creator_key = Some(vec![7; 31]);
    assert!(matches!(
        Reply::from_envelope(env),
        Ok(Reply::CreateReply(ClusterInfo { creator: None, .. }))
    ));
}

#[test]
fn the_admission_proof_reaches_the_request() {
    let env = Envelope {
        msg: XlRegMsg {
            client_name: Some("n".into()),
            client_specs: Some(Token::default()),
            dig_sig: Some(vec![1]),
            ..msg(Tag::Client)
        },
        ext: catalogue_proto::regext::XlRegExt {
            admit_proof: Some(vec![9; 32]),
            ..Default::default()
        },
    };
    assert!(matches!(
        parse_request(env),
        Ok(Request::NewClient { proof: Some(p), .. }) if p == vec![9; 32]
    ));
}
