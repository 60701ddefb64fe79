//! The loop that runs one endpoint's active health checks (the protocol and
//! the thresholds are `health.rs`'s): Watch while the backend has it, Check
//! every interval when it has only that, nothing when it has neither. It
//! holds the endpoint only weakly between checks, and is aborted when the
//! endpoint is removed.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use h2::client::SendRequest;

use super::EndpointConnection;
use crate::health::{self, Answer, Health, HealthCheckSettings, HealthTracker, RpcError};

/// Which RPC the backend answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Watch,
    Check,
}

/// Runs the checks of `endpoint` until it is gone, or its backend turns
/// out to have no health service.
pub(super) async fn run(endpoint: Weak<EndpointConnection>, settings: HealthCheckSettings) {
    let mut tracker = HealthTracker::new(&settings);
    let mut mode = Mode::Watch;
    loop {
        let Some(send) = wait_for_connection(&endpoint, &settings).await else {
            return;
        };
        let Some(ep) = endpoint.upgrade() else {
            return;
        };
        let authority = ep.addr.to_string();
        let unimplemented = match mode {
            Mode::Watch => watch(&ep, &send, &authority, &settings, &mut tracker).await,
            Mode::Check => check(&ep, &send, &authority, &settings, &mut tracker).await,
        };
        if unimplemented {
            if mode == Mode::Watch {
                tracing::debug!(upstream = %ep.upstream, endpoint = %ep.addr, "the backend has no health Watch: checking every {:?}", settings.interval);
                mode = Mode::Check;
                continue;
            }
            tracing::warn!(
                upstream = %ep.upstream, endpoint = %ep.addr,
                "the backend has no grpc.health.v1 service (UNIMPLEMENTED): health checks off for this endpoint, which takes calls"
            );
            ep.set_health(Health::Unchecked);
            return;
        }
        drop(ep);
        tokio::time::sleep(settings.interval).await;
    }
}

/// A connection of the endpoint to check on, waiting (an interval at a
/// time) for one; `None` once the endpoint is gone.
async fn wait_for_connection(
    endpoint: &Weak<EndpointConnection>,
    settings: &HealthCheckSettings,
) -> Option<SendRequest<Bytes>> {
    loop {
        let ep = endpoint.upgrade()?;
        if let Some(send) = ep.usable_send() {
            return Some(send);
        }
        let connected = ep.connected.clone();
        drop(ep);
        tokio::select! {
            () = connected.notified() => {}
            () = tokio::time::sleep(settings.interval) => {}
        }
    }
}

/// Follows a Watch until it breaks. Returns whether the backend lacks it.
async fn watch(
    ep: &Arc<EndpointConnection>,
    send: &SendRequest<Bytes>,
    authority: &str,
    settings: &HealthCheckSettings,
    tracker: &mut HealthTracker,
) -> bool {
    let first = async {
        let mut stream = health::watch(send, authority, &settings.service).await?;
        let answer = stream.next().await?;
        Ok::<_, RpcError>((stream, answer))
    };
    let (mut stream, answer) = match tokio::time::timeout(settings.timeout, first).await {
        Ok(Ok(opened)) => opened,
        Ok(Err(RpcError::Unimplemented)) => return true,
        Ok(Err(RpcError::Failed(why))) => {
            apply(ep, tracker, Answer::Failed(why));
            return false;
        }
        Err(_) => {
            let why = format!("no answer to Watch within {:?}", settings.timeout);
            apply(ep, tracker, Answer::Failed(why));
            return false;
        }
    };
    apply(ep, tracker, answer);
    loop {
        match stream.next().await {
            Ok(answer) => apply(ep, tracker, answer),
            Err(RpcError::Unimplemented) => return true,
            Err(RpcError::Failed(why)) => {
                apply(ep, tracker, Answer::Failed(why));
                return false;
            }
        }
    }
}

/// One Check. Returns whether the backend lacks it.
async fn check(
    ep: &Arc<EndpointConnection>,
    send: &SendRequest<Bytes>,
    authority: &str,
    settings: &HealthCheckSettings,
    tracker: &mut HealthTracker,
) -> bool {
    match health::check(send, authority, &settings.service, settings.timeout).await {
        Ok(answer) => apply(ep, tracker, answer),
        Err(RpcError::Unimplemented) => return true,
        Err(RpcError::Failed(why)) => apply(ep, tracker, Answer::Failed(why)),
    }
    false
}

/// Counts `answer`; a change of health goes to the endpoint, and the log.
fn apply(ep: &EndpointConnection, tracker: &mut HealthTracker, answer: Answer) {
    let Some(health) = tracker.on(&answer) else {
        return;
    };
    let why = match &answer {
        Answer::Serving => "SERVING".to_string(),
        Answer::NotServing(status) => status.clone(),
        Answer::Failed(why) => why.clone(),
    };
    match health {
        Health::NotServing => tracing::warn!(
            upstream = %ep.upstream, endpoint = %ep.addr,
            "health check: not serving ({why}): no new calls until it serves"
        ),
        _ => tracing::info!(upstream = %ep.upstream, endpoint = %ep.addr, "health check: {health}"),
    }
    ep.set_health(health);
}
