//! The state of one registry session after the Hello, as plain code: who
//! the client is, which cluster the session last created or joined, and
//! which requests are allowed when.
//!
//! Order of a session: `Client` first (answered by `ClientOK`); then any
//! number of `Create`, `Join` and `GetCluster`; `Bye` at any time ends it
//! with `Ack`. Anything else is answered with `Error` and the connection is
//! closed; so is any request the registry refuses.
//!
//! A `Client` message that announces `Extensions` (docs/XLREG.md §14) makes
//! the session's cluster replies carry the extension fields
//! ([`SessionState::extensions`]); a seed client's session never sees one.

use super::{
    crypto::Salt,
    ext::{self, Envelope},
    protocol::{ProtocolError, Reply, Request, parse_request},
};

/// What the registry needs to know about the session to run a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionContext {
    /// The identified client, once `ClientOK` was sent.
    pub client: Option<Vec<u8>>,
    /// The cluster of the last `Create` or `Join`.
    pub cluster: Option<Vec<u8>>,
    /// This session's salt2 (a returning client signs it).
    pub salt2: Salt,
}

/// What the session must do with an incoming message.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Ask the registry.
    Execute(Request),
    /// Send this reply, then close.
    ReplyAndClose(Reply),
}

/// One session's state.
#[derive(Debug, Clone)]
pub struct SessionState {
    context: SessionContext,
    closing: bool,
    /// The client announced the extension fields.
    extensions: bool,
}

impl SessionState {
    /// A session whose HelloReply carried `salt2`.
    pub fn new(salt2: Salt) -> SessionState {
        SessionState {
            context: SessionContext {
                client: None,
                cluster: None,
                salt2,
            },
            closing: false,
            extensions: false,
        }
    }

    /// Whether replies may carry extension fields (the client's `Client`
    /// announced `Extensions`).
    pub fn extensions(&self) -> bool {
        self.extensions
    }

    /// The context requests run in.
    pub fn context(&self) -> &SessionContext {
        &self.context
    }

    /// Whether the client has been identified (the handshake is over).
    pub fn identified(&self) -> bool {
        self.context.client.is_some()
    }

    /// Whether the session is closing (a final reply was queued).
    pub fn closing(&self) -> bool {
        self.closing
    }

    /// Decides what to do with `msg`. Once closing, nothing more is done.
    pub fn receive(&mut self, msg: impl Into<Envelope>) -> Option<Next> {
        if self.closing {
            return None;
        }
        let msg = msg.into();
        let announces = msg.ext.extensions.is_some_and(|e| e >= ext::EXTENSIONS);
        let request = match parse_request(msg) {
            Ok(request) => request,
            Err(e) => return Some(self.fail(e.to_string())),
        };
        let allowed = match (&request, self.identified()) {
            (Request::Bye, _) => {
                self.closing = true;
                return Some(Next::ReplyAndClose(Reply::Ack));
            }
            (Request::NewClient { .. } | Request::ReturningClient { .. }, false) => {
                self.extensions = announces;
                Ok(())
            }
            (Request::NewClient { .. } | Request::ReturningClient { .. }, true) => {
                Err(ProtocolError::AlreadyIdentified)
            }
            (_, false) => Err(ProtocolError::NotIdentified),
            (_, true) => Ok(()),
        };
        match allowed {
            Ok(()) => Some(Next::Execute(request)),
            Err(e) => Some(self.fail(e.to_string())),
        }
    }

    /// Records what the registry did: the client identified, the cluster
    /// created or joined.
    pub fn executed(&mut self, client: Option<Vec<u8>>, cluster: Option<Vec<u8>>) {
        if client.is_some() {
            self.context.client = client;
        }
        if cluster.is_some() {
            self.context.cluster = cluster;
        }
    }

    /// The registry refused: answer `Error` and close.
    pub fn fail(&mut self, desc: String) -> Next {
        self.closing = true;
        Next::ReplyAndClose(Reply::Error(desc))
    }
}

#[cfg(test)]
mod tests {
    use catalogue_proto::{
        reg::{
            XlRegMsg,
            xl_reg_msg::{Tag, Token},
        },
        regext::XlRegExt,
    };

    use super::*;

    fn msg(op: Tag) -> XlRegMsg {
        XlRegMsg {
            op: Some(op as i32),
            ..Default::default()
        }
    }

    fn new_client() -> XlRegMsg {
        XlRegMsg {
            client_name: Some("a".into()),
            client_specs: Some(Token::default()),
            dig_sig: Some(vec![1]),
            ..msg(Tag::Client)
        }
    }

    fn join() -> XlRegMsg {
        XlRegMsg {
            cluster_name: Some("c".into()),
            ..msg(Tag::Join)
        }
    }

    #[test]
    fn client_must_come_first() {
        for m in [
            join(),
            msg(Tag::GetCluster),
            XlRegMsg {
                cluster_name: Some("c".into()),
                cluster_size: Some(3),
                ..msg(Tag::Create)
            },
        ] {
            let mut s = SessionState::new([0; 8]);
            assert_eq!(
                s.receive(m),
                Some(Next::ReplyAndClose(Reply::Error(
                    ProtocolError::NotIdentified.to_string()
                )))
            );
            assert!(s.closing());
        }
    }

    #[test]
    fn identified_sessions_run_requests_and_refuse_a_second_client() {
        let mut s = SessionState::new([0; 8]);
        assert!(matches!(
            s.receive(new_client()),
            Some(Next::Execute(Request::NewClient { .. }))
        ));
        s.executed(Some(vec![1; 32]), None);
        assert!(s.identified());
        assert!(matches!(
            s.receive(join()),
            Some(Next::Execute(Request::Join(_)))
        ));
        s.executed(None, Some(vec![2; 32]));
        assert_eq!(s.context().cluster, Some(vec![2; 32]));
        assert_eq!(s.context().client, Some(vec![1; 32]));
        assert_eq!(
            s.receive(new_client()),
            Some(Next::ReplyAndClose(Reply::Error(
                ProtocolError::AlreadyIdentified.to_string()
            )))
        );
        // closing: nothing more
        assert_eq!(s.receive(msg(Tag::Bye)), None);
    }

    #[test]
    fn bye_acks_and_closes_at_any_time() {
        let mut s = SessionState::new([0; 8]);
        assert_eq!(
            s.receive(msg(Tag::Bye)),
            Some(Next::ReplyAndClose(Reply::Ack))
        );
        assert!(s.closing());
        assert_eq!(s.receive(join()), None);
    }

    #[test]
    fn a_client_that_announces_extensions_gets_them() {
        let mut seed = SessionState::new([0; 8]);
        seed.receive(new_client());
        assert!(
            !seed.extensions(),
            "a seed client never gets extension fields"
        );
        let mut ours = SessionState::new([0; 8]);
        ours.receive(Envelope {
            msg: new_client(),
            ext: XlRegExt {
                extensions: Some(ext::EXTENSIONS),
                ..Default::default()
            },
        });
        assert!(ours.extensions());
    }

    #[test]
    fn malformed_messages_close_with_an_error() {
        let mut s = SessionState::new([0; 8]);
        assert!(matches!(
            s.receive(XlRegMsg::default()),
            Some(Next::ReplyAndClose(Reply::Error(_)))
        ));
    }
}
