//! Carrying out the driver's [`Effects`]: messages to the current peer
//! links, events to subscriptions, grace timers on the actor's clock, and
//! the metrics that follow from them.

use actix::prelude::*;

use super::{CatalogueSupervisor, SendBatch, SendEntries, SendError};
use crate::{
    peer::link::LinkId,
    sync::driver::{Effects, GraceTimer, Outgoing, To},
};

impl CatalogueSupervisor {
    /// Carries out `fx`. Messages to one peer go to its current link, and
    /// only if that is still link `via` when the effects answer a batch
    /// that came over `via`.
    pub(super) fn execute(&mut self, fx: Effects, via: Option<LinkId>, ctx: &mut Context<Self>) {
        let Effects {
            sends,
            services,
            timers,
            clock_refused,
            refused: _,
            propagation_ms,
        } = fx;
        for (to, what) in sends {
            self.send_to_links(&to, what, via);
        }
        if clock_refused > 0 {
            self.stats.clock_refused.add(clock_refused as u64);
        }
        for ms in propagation_ms {
            self.stats.propagation_ms(ms);
        }
        self.route_services(services);
        self.update_table_gauges();
        for timer in timers {
            self.start_grace(timer, ctx);
        }
    }

    fn send_to_links(&self, to: &To, what: Outgoing, via: Option<LinkId>) {
        let targets = self.peer_links.iter().filter(|(peer, link)| {
            to.includes(peer) && (matches!(to, To::AllBut(_)) || via.is_none_or(|id| id == link.id))
        });
        for (_, link) in targets {
            match &what {
                Outgoing::Changes { entries, marks } => link.addr.do_send(SendEntries {
                    entries: entries.clone(),
                    marks: marks.clone(),
                }),
                Outgoing::Batch(batch) => link.addr.do_send(SendBatch {
                    batch: batch.clone(),
                }),
                Outgoing::Error(error) => link.addr.do_send(SendError {
                    error: error.clone(),
                }),
            }
        }
    }

    fn start_grace(&mut self, timer: GraceTimer, ctx: &mut Context<Self>) {
        ctx.run_later(self.config.unreachable_grace, move |act, ctx| {
            let fx = act.driver.grace_over(&timer);
            act.execute(fx, None, ctx);
        });
    }
}
