//! `hush run --watch`: keeps the program running with current secrets. It subscribes to the scope's events
//! before reading the secrets (so no change slips between the two), and when a change arrives reads them again
//! and, if any value differs, restarts the program (SIGTERM, a grace period, SIGKILL) or sends it the chosen
//! signal. A dropped subscription is resumed from the last event seen, with backoff.

use std::time::Duration;

use tokio::{process::Child, sync::mpsc};

use super::{
    event_follower::{Followed, Follower},
    run_command::{RunArgs, Secrets},
};
use crate::pb;

/// Changes arriving this close together cause one restart.
const SETTLE: Duration = Duration::from_millis(100);

/// What the subscription tells the main loop.
enum Watched {
    /// Something in the scope changed (or may have, after a reconnect).
    Changed,
    /// The subscription cannot go on (permission, project gone): the reason.
    Failed(String),
}

/// Runs the program, restarting it (or signalling it) when the scope's secrets change; returns its exit code
/// once it exits on its own or after a signal hush passed on.
pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let (tx, mut changes) = mpsc::channel(16);
    // Subscribed (the first call answered) before the secrets are read.
    let mut follower = Follower::start(args.scope.folder.target.clone(), subscribe_request(&args)).await?;
    let mut secrets: Secrets = super::run_command::fetch(&args.scope).await?;
    tokio::spawn(async move {
        loop {
            let watched = match follower.next().await {
                Ok(Followed::Event(_) | Followed::Resumed) => Watched::Changed,
                Err(reason) => Watched::Failed(reason),
            };
            let failed = matches!(watched, Watched::Failed(_));
            if tx.send(watched).await.is_err() || failed {
                return;
            }
        }
    });
    let mut child = super::run_command::start(&args, &secrets)?;
    let mut signals = super::run_command::PassedSignals::new()?;
    loop {
        tokio::select! {
            status = child.wait() => return Ok(super::run_command::exit_code(status?)),
            passed = signals.next() => super::run_command::pass_on(&child, passed),
            change = changes.recv() => match change {
                Some(Watched::Changed) => {
                    tokio::time::sleep(SETTLE).await;
                    while let Ok(Watched::Changed) = changes.try_recv() {}
                    let current = match super::run_command::fetch(&args.scope).await {
                        Ok(current) => current,
                        Err(error) => {
                            eprintln!("hush: reading the secrets after a change failed ({error:#}); the program keeps running");
                            continue;
                        }
                    };
                    if current == secrets {
                        continue;
                    }
                    secrets = current;
                    match args.watch_signal {
                        Some(signal) => {
                            eprintln!("hush: secrets changed; sending SIG{} to the program", signal.name());
                            super::run_command::pass_on(&child, signal.rustix());
                        }
                        None => {
                            eprintln!("hush: secrets changed; restarting the program");
                            stop(&mut child, args.grace).await?;
                            child = super::run_command::start(&args, &secrets)?;
                        }
                    }
                }
                Some(Watched::Failed(reason)) => {
                    stop(&mut child, args.grace).await?;
                    anyhow::bail!("watching for changes failed: {reason}");
                }
                None => anyhow::bail!("watching for changes stopped"),
            },
        }
    }
}

/// What to subscribe to: the folder's environment and path (its subtree with --recursive); the whole project
/// with --include-imports, since imports may come from anywhere in it.
fn subscribe_request(args: &RunArgs) -> pb::SubscribeRequest {
    let folder = &args.scope.folder;
    let conditions = if args.scope.include_imports {
        None
    } else {
        let path = folder.path.trim_end_matches('/');
        let glob = match (args.scope.recursive, path.is_empty()) {
            (true, true) => "/**".to_owned(),
            (true, false) => format!("{path}/**"),
            (false, true) => "/".to_owned(),
            (false, false) => path.to_owned(),
        };
        Some(pb::EventConditions { environment_slug: folder.environment.clone(), secret_path: glob })
    };
    let registrations =
        ["secret:*"].iter().map(|t| pb::Registration { event_type: (*t).into(), conditions: conditions.clone() });
    pb::SubscribeRequest {
        project_id: folder.project.clone(),
        registrations: registrations.collect(),
        resume_after: None,
    }
}

/// Stops the program: SIGTERM, then SIGKILL after `grace`.
async fn stop(child: &mut Child, grace: Duration) -> anyhow::Result<()> {
    super::run_command::pass_on(child, rustix::process::Signal::TERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        child.kill().await?;
    }
    Ok(())
}
