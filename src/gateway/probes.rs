//! `GET /healthz` and `GET /readyz` for load balancers and orchestrators, over plain HTTP/1.1 with a short
//! JSON body. Liveness says only that the process answers; readiness says whether this instance can serve
//! requests now, so a balancer sends traffic elsewhere while its database is unreachable.

use std::{future::Future, time::Duration};

use axum::{Json, extract::State, response::IntoResponse};
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::GatewayState;

/// Bound of each readiness check: a probe must answer before the prober gives up (Kubernetes: 1 s default
/// timeout is often raised; 2 s keeps a hung database from hanging the probe).
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "alive" }))
}

/// The outcome of one check within [`CHECK_TIMEOUT`]: `Ok` or a short reason safe to show anyone.
async fn check<E: std::fmt::Display>(
    name: &str,
    failed: &'static str,
    run: impl Future<Output = Result<bool, E>>,
) -> Result<(), &'static str> {
    match tokio::time::timeout(CHECK_TIMEOUT, run).await {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err(failed),
        Ok(Err(error)) => {
            tracing::warn!(check = name, %error, "readiness check failed");
            Err("unreachable")
        }
        Err(_) => Err("timed out"),
    }
}

/// `GET /readyz`: 200 when the database answers, every migration is applied, the root key opens the stored
/// key check and the event tailer runs; 503 naming what is not.
pub async fn readyz(State(state): State<GatewayState>) -> impl IntoResponse {
    let store = &state.store;
    let vault = &state.vault;
    let (database, migrations, root_key) = tokio::join!(
        check("database", "unreachable", async { store.conn().ping().await.map(|()| true) }),
        check("migrations", "pending", store.migrations_applied()),
        // The start refused a key that does not match; this re-reads the stored check on every probe (one row)
        // because a rotation by another process while this instance runs makes its key stale.
        check("root_key", "does not match the data", vault.root_key_matches_data()),
    );
    let tailer = if state.events.tailing() { Ok(()) } else { Err("stopped") };
    let mut checks = Map::new();
    let mut ready = true;
    for (name, outcome) in
        [("database", database), ("migrations", migrations), ("root_key", root_key), ("event_tailer", tailer)]
    {
        ready &= outcome.is_ok();
        checks.insert(name.to_owned(), Value::from(outcome.err().unwrap_or("ok")));
    }
    let (status, word) = if ready { (StatusCode::OK, "ready") } else { (StatusCode::SERVICE_UNAVAILABLE, "unready") };
    (status, Json(json!({ "status": word, "checks": checks })))
}
