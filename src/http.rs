//! The HTTP edge of `warroom serve`: health and readiness for now; the Slack, Discord,
//! PagerDuty and metrics endpoints join this router as they are built.

use crate::store::Store;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// The scheduler loop's heartbeat: when it last completed a pass.
#[derive(Debug, Default)]
pub struct Heartbeat {
    last_millis: AtomicI64,
}

impl Heartbeat {
    pub fn beat(&self, at: DateTime<Utc>) {
        self.last_millis
            .store(at.timestamp_millis(), Ordering::Relaxed);
    }

    pub fn last(&self) -> Option<DateTime<Utc>> {
        match self.last_millis.load(Ordering::Relaxed) {
            0 => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }
}

/// What the router needs.
#[derive(Clone)]
pub struct HttpDeps {
    pub store: Arc<dyn Store>,
    pub scheduler: Arc<Heartbeat>,
    /// The scheduler counts as stalled when its last pass is older than this.
    pub stall_after: chrono::Duration,
}

pub fn router(deps: HttpDeps) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(deps)
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(deps): State<HttpDeps>) -> impl IntoResponse {
    let store = deps.store.ping().await;
    let now = Utc::now();
    let lag = deps
        .scheduler
        .last()
        .map(|last| (now - last).num_milliseconds() as f64 / 1000.0);
    let scheduler_ok =
        lag.is_some_and(|lag| lag <= deps.stall_after.num_milliseconds() as f64 / 1000.0);
    let mut problems = Vec::new();
    if let Err(e) = &store {
        problems.push(format!("store: {e}"));
    }
    match lag {
        None => problems.push("scheduler: has not completed a pass yet".to_string()),
        Some(lag) if !scheduler_ok => problems.push(format!("scheduler: last pass {lag:.1}s ago")),
        _ => {}
    }
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if problems.is_empty() { "ready" } else { "not ready" },
        "store": deps.store.backend(),
        "scheduler_seconds_since_last_pass": lag,
        "problems": problems,
    });
    (status, Json(body))
}
