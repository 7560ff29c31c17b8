//! Applying a reloaded configuration (SIGHUP) to a running node without
//! dropping links or client connections: TLS certificate, key and CA for
//! new handshakes (links whose peer is no longer trusted are closed),
//! allowed uids and gids, peers added, removed or changed, and the node's
//! own `[[services]]` (`crate::definitions`). Any other
//! change is reported and ignored: the running value stays until a restart.
//! The log filter is applied by the binary, which owns the subscriber.

use std::{rc::Rc, sync::Arc};

use actix::Addr;
use tracing::{error, info, warn};

use crate::{
    connection::{ClientShared, auth::RegisterPolicy},
    definitions::{Apply, DefinitionKeeper},
    peer::{PeerContext, connector::Connectors, directory::PeerState},
    settings::{
        Settings,
        diff::{changed_keys, reloadable},
    },
    supervisor::{CatalogueSupervisor, DropPeer, RecheckLinks},
    tls::{TlsContexts, TrustAnchors},
};

/// What a reload touches.
pub struct Reloader {
    /// The settings in force.
    pub current: Settings,
    /// Links, TLS contexts, directory.
    pub peers: Rc<PeerContext>,
    /// Client connections' shared state (register policy).
    pub clients: Arc<ClientShared>,
    /// The supervisor.
    pub supervisor: Addr<CatalogueSupervisor>,
    /// The keeper of the node's own services.
    pub definitions: Addr<DefinitionKeeper>,
}

impl Reloader {
    /// Applies what can change of `new`; returns the keys that could not.
    pub fn apply(&mut self, new: Settings, connectors: &mut Connectors) -> Vec<String> {
        let keys = changed_keys(&self.current, &new);
        // Certificates are rotated in place: their files are read again on
        // every reload, changed paths or not.
        if !self.current.node.debug && !new.tls.is_empty() {
            self.reload_tls(&new);
        }
        if keys.is_empty() {
            info!("configuration reloaded: no setting changed");
            return vec![];
        }
        let fixed: Vec<String> = keys.iter().filter(|k| !reloadable(k)).cloned().collect();
        for key in &fixed {
            warn!(%key, "this setting cannot change while the node runs; keeping the running value until a restart");
        }
        if keys.iter().any(|k| k.starts_with("register.")) {
            self.reload_register(&new);
        }
        self.reload_peers(&new, connectors);
        if keys.iter().any(|k| k.starts_with("services")) {
            self.definitions.do_send(Apply {
                definitions: new.services.clone(),
            });
            self.current.services = new.services.clone();
        }
        self.current.log = new.log.clone();
        info!(changed = ?keys, "configuration reloaded");
        fixed
    }

    fn reload_tls(&mut self, new: &Settings) {
        let t = &new.tls;
        let contexts = TlsContexts::from_files(t.ca.as_ref(), t.cert.as_ref(), t.key.as_ref());
        let anchors = TrustAnchors::load(t.ca.as_ref());
        match (contexts, anchors) {
            (Ok(contexts), Ok(anchors)) => {
                self.peers.tls.replace(Some(Arc::new(contexts)));
                self.supervisor.do_send(RecheckLinks {
                    anchors: Arc::new(anchors),
                });
                self.current.tls = new.tls.clone();
                info!(cert = %t.cert, ca = %t.ca, "TLS files reloaded: new handshakes use them");
            }
            (Err(e), _) | (_, Err(e)) => {
                error!(error = %e, "cannot load the new TLS files; keeping the running ones");
            }
        }
    }

    fn reload_register(&mut self, new: &Settings) {
        // node.debug is not reloaded: the running one stands.
        let policy = RegisterPolicy {
            debug: self.current.node.debug,
            ..RegisterPolicy::from(new)
        };
        match self.clients.policy.write() {
            Ok(mut p) => *p = policy,
            Err(poisoned) => *poisoned.into_inner() = policy,
        }
        self.current.register = new.register.clone();
        info!(uids = ?new.register.allowed_uids, gids = ?new.register.allowed_gids, "registration rule reloaded");
    }

    fn reload_peers(&mut self, new: &Settings, connectors: &mut Connectors) {
        let directory = &self.peers.directory;
        for old in &self.current.peers {
            if !new.peers.iter().any(|p| p.name == old.name) {
                info!(peer = %old.name, "peer removed");
                connectors.stop(&old.name);
                directory.remove(&old.name);
                self.supervisor.do_send(DropPeer {
                    peer: old.name.clone(),
                });
            }
        }
        let refused: Vec<String> = directory
            .list()
            .into_iter()
            .filter(|p| p.state == PeerState::Refused)
            .map(|p| p.name)
            .collect();
        for p in &new.peers {
            let known = directory.address(&p.name);
            let changed = known.as_deref() != Some(p.address.as_str());
            if known.is_none() {
                info!(peer = %p.name, address = %p.address, "peer added");
            }
            directory.add(&p.name, &p.address);
            // A changed address, or a peer refused for good under the old
            // configuration, is dialed afresh.
            let redial = changed || refused.contains(&p.name);
            if p.address.is_empty() {
                if redial {
                    connectors.stop(&p.name);
                }
            } else if redial || connectors.address(&p.name).is_none() {
                connectors.start(&p.name, &p.address);
            }
        }
        self.current.peers = new.peers.clone();
    }
}
