//! `catalogue register URI`: registers a service and keeps it registered
//! while the command runs. When the node goes away (a restart, an upgrade)
//! it connects again and registers the service again, so the service is
//! gone only for about as long as the node's restart; Ctrl-C (or SIGTERM)
//! unregisters it and exits. It gives up only on what retrying cannot mend
//! (the node refuses the registration, another environment, an untrusted
//! socket).
//!
//! With a health check (`--check-tcp|http|exec`) the command runs the
//! check itself, with the node's own check code and rules
//! (`catalogue_actors::definitions`): the service is registered once the
//! check has passed `--check-successes` times in a row, with the attribute
//! `check = "passing"`, and unregistered (the connection stays) after
//! `--check-failures` failures in a row, until it passes again.

use std::collections::BTreeMap;

use catalogue_actors::{
    definitions::{
        health::{CheckState, Status, mark_passing},
        probe,
    },
    settings::{CheckKind, CheckSettings, check_problems},
};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::{Exit, client};
use crate::{
    cli::{CheckArgs, ClientArgs},
    client::{ConnectOptions, KeeperEvent, Registration, keep_registered},
};

/// Runs the command.
pub fn run(uri: &str, attrs: &[(String, String)], check: &CheckArgs, args: &ClientArgs) -> Exit {
    let mut attrs: BTreeMap<String, String> = attrs.iter().cloned().collect();
    let check = match check.settings() {
        None => None,
        Some(settings) => match validated(&settings) {
            Ok(kind) => {
                mark_passing(&mut attrs);
                Some((kind, settings))
            }
            Err(exit) => return exit,
        },
    };
    let options = client::options(args);
    let services = vec![(uri.to_string(), attrs)];
    client::block_on(async move {
        let (interrupt, interrupted) = watch::channel(false);
        tokio::spawn(async move {
            client::interrupted().await;
            let _ = interrupt.send(true);
        });
        let result = match check {
            None => register(&options, &services, wait_true(interrupted)).await,
            Some((kind, settings)) => {
                checked(&options, &services, kind, &settings, interrupted).await
            }
        };
        match result {
            Ok(()) => {
                info!(uri, "unregistered");
                Exit::Ok
            }
            Err(e) => client::fail(&e),
        }
    })
}

/// The check's kind, or the exit after printing each problem under the
/// flag that set it.
fn validated(settings: &CheckSettings) -> Result<CheckKind, Exit> {
    let problems = check_problems(settings, "check");
    for p in &problems {
        let flag = |text: &str| text.replace("check.", "--check-");
        eprintln!("error: {}: {}", flag(&p.key), flag(&p.problem));
    }
    match settings.kind() {
        Some(kind) if problems.is_empty() => Ok(kind),
        _ => Err(Exit::Config),
    }
}

/// Keeps `services` registered until `stop`.
async fn register(
    options: &ConnectOptions,
    services: &[Registration],
    stop: impl Future<Output = ()>,
) -> Result<(), crate::client::ClientError> {
    let uri = services.first().map_or("", |(uri, _)| uri.as_str());
    let report = |event: KeeperEvent| match event {
        KeeperEvent::Registered { node } => {
            info!(uri, %node, "registered; Ctrl-C to unregister");
        }
        KeeperEvent::Lost { error, retry_in } => {
            warn!(uri, %error, ?retry_in, "the node is gone; registering again once it is back");
        }
    };
    keep_registered(options, services, report, stop).await
}

/// Registers `services` while the check passes, until interrupted.
async fn checked(
    options: &ConnectOptions,
    services: &[Registration],
    kind: CheckKind,
    settings: &CheckSettings,
    interrupted: watch::Receiver<bool>,
) -> Result<(), crate::client::ClientError> {
    let (report, status) = watch::channel(Status::Failing);
    let runs = tokio::spawn(run_checks(kind, settings.clone(), report));
    info!("the service is registered once its check passes");
    let result = async {
        loop {
            let mut passing = status.clone();
            tokio::select! {
                () = wait_true(interrupted.clone()) => return Ok(()),
                _ = passing.wait_for(|s| *s == Status::Passing) => {}
            }
            let mut failing = status.clone();
            let stop = async {
                tokio::select! {
                    () = wait_true(interrupted.clone()) => {}
                    _ = failing.wait_for(|s| *s == Status::Failing) => {}
                }
            };
            register(options, services, stop).await?;
            if *interrupted.borrow() {
                return Ok(());
            }
            info!("service withdrawn while its check fails");
        }
    }
    .await;
    runs.abort();
    result
}

/// Runs the check every interval and reports each change of status.
async fn run_checks(kind: CheckKind, settings: CheckSettings, report: watch::Sender<Status>) {
    let mut state = CheckState::new(settings.failures, settings.successes);
    let mut ticks = tokio::time::interval(settings.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let result = probe::run(&kind, settings.timeout).await;
        if let Err(e) = &result {
            debug!(error = %e, "check failed");
        }
        match (state.record(result.is_ok()), result) {
            (Some(Status::Passing), _) => {
                info!(check = "passing", "check passing");
                let _ = report.send(Status::Passing);
            }
            (Some(Status::Failing), result) => {
                let error = result.err().map(|e| e.to_string()).unwrap_or_default();
                warn!(check = "failing", %error, "check failing; unregistering the service");
                let _ = report.send(Status::Failing);
            }
            (None, _) => {}
        }
    }
}

/// Resolves once `flag` is true (or its sender is gone).
async fn wait_true(mut flag: watch::Receiver<bool>) {
    let _ = flag.wait_for(|v| *v).await;
}
