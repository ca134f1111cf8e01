//! The HTTP edge of `warroom serve`: health, readiness, PagerDuty webhooks and (when Slack is
//! configured) Slack's and Discord's endpoints.

use crate::app::App;
use crate::config::Secret;
use crate::core::{Platform, Severity};
use crate::store::Store;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

pub use crate::app::runner::Heartbeat;

/// What the router needs.
#[derive(Clone)]
pub struct HttpDeps {
    pub store: Arc<dyn Store>,
    pub scheduler: Arc<Heartbeat>,
    /// The scheduler counts as stalled when its last pass is older than this.
    pub stall_after: chrono::Duration,
    pub pagerduty: Option<PagerDutyWebhook>,
    /// Slack's endpoints, when Slack is configured.
    pub slack: Option<Arc<crate::chat::slack::SlackInbound>>,
    /// Discord's interactions endpoint, when Discord is configured.
    pub discord: Option<Arc<crate::chat::discord::DiscordInbound>>,
    /// What `/metrics` exports (the app's).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// `POST /alertmanager/webhook`, when alert intake is configured.
    pub alertmanager: Option<AlertmanagerWebhook>,
}

/// What `POST /alertmanager/webhook` needs.
#[derive(Clone)]
pub struct AlertmanagerWebhook {
    pub app: Arc<App>,
    /// The bearer token Alertmanager sends (`http_config.authorization`).
    pub token: Secret,
}

/// Largest Alertmanager notification accepted (thousands of alerts; more than 1,000 are cut).
pub const MAX_ALERTMANAGER_BYTES: usize = 16 * 1024 * 1024;

/// What `POST /pagerduty/webhook` needs.
#[derive(Clone)]
pub struct PagerDutyWebhook {
    pub app: Arc<App>,
    pub secrets: Vec<Secret>,
    pub priorities: BTreeMap<String, Severity>,
    pub open_incidents_on: Platform,
}

/// Largest webhook body accepted; PagerDuty's are a few kilobytes.
pub const MAX_WEBHOOK_BYTES: usize = 256 * 1024;

pub fn router(deps: HttpDeps) -> Router {
    let slack = deps.slack.clone();
    let discord = deps.discord.clone();
    let metrics = deps.metrics.clone();
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route(
            "/pagerduty/webhook",
            post(pagerduty_webhook).layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES)),
        )
        .route(
            "/alertmanager/webhook",
            post(alertmanager_webhook).layer(DefaultBodyLimit::max(MAX_ALERTMANAGER_BYTES)),
        )
        .with_state(deps);
    let router = match slack {
        Some(slack) => router.merge(crate::chat::slack::inbound::routes(slack)),
        None => router,
    };
    let router = match discord {
        Some(discord) => router.merge(crate::chat::discord::inbound::routes(discord)),
        None => router,
    };
    router.route_layer(axum::middleware::from_fn_with_state(metrics, track))
}

/// Count every request by route and status, and time it.
async fn track(
    State(metrics): State<Arc<crate::metrics::Metrics>>,
    route: Option<axum::extract::MatchedPath>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = route.map_or("unmatched".to_string(), |r| r.as_str().to_string());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    metrics
        .http_duration
        .get_or_create(&crate::metrics::RouteLabels {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests
        .get_or_create(&crate::metrics::HttpLabels {
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

fn answer(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "status": text }))).into_response()
}

/// PagerDuty v3 webhooks: verify the signature over the raw body, then apply the event once.
async fn pagerduty_webhook(
    State(deps): State<HttpDeps>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(pd) = &deps.pagerduty else {
        return answer(StatusCode::NOT_FOUND, "PagerDuty webhooks are not enabled");
    };
    if pd.secrets.is_empty() {
        return answer(
            StatusCode::UNAUTHORIZED,
            "no webhook secret is configured (pagerduty.webhook_secrets)",
        );
    }
    let Some(signature) = headers
        .get("x-pagerduty-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return answer(StatusCode::UNAUTHORIZED, "missing X-PagerDuty-Signature");
    };
    if !crate::pagerduty::signature_valid(&pd.secrets, signature, &body) {
        tracing::warn!("PagerDuty webhook with a bad signature refused");
        return answer(StatusCode::UNAUTHORIZED, "bad signature");
    }
    let event = match crate::pagerduty::parse_webhook(&body) {
        Ok(Some(event)) => event,
        Ok(None) => return answer(StatusCode::OK, "ignored"),
        Err(problem) => return answer(StatusCode::BAD_REQUEST, &problem),
    };
    match pd
        .app
        .handle_pagerduty(&event, &pd.priorities, pd.open_incidents_on)
        .await
    {
        // PagerDuty retries 5xx; a 409 or 425 would be dropped.
        Ok(crate::app::PAGERDUTY_NOT_YET) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "the incident this event is about has not been opened yet; send it again",
        ),
        Ok(what) => answer(StatusCode::OK, what),
        Err(error) => {
            tracing::error!(%error, event = %event.id, "PagerDuty webhook not applied; PagerDuty will retry");
            answer(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable")
        }
    }
}

/// Alertmanager notifications (webhook payload version 4): check the bearer token, then open,
/// join or resolve the group's incident. Alertmanager retries a 5xx, not a 4xx. The token is
/// in a header, so it is checked before the body (up to `MAX_ALERTMANAGER_BYTES`) is read: a
/// caller without it gets its answer without warroom buffering what it sent.
async fn alertmanager_webhook(
    State(deps): State<HttpDeps>,
    request: axum::extract::Request,
) -> Response {
    let Some(am) = &deps.alertmanager else {
        return answer(StatusCode::NOT_FOUND, "Alertmanager intake is not enabled");
    };
    let header = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !crate::alertmanager::bearer_ok(header, am.token.expose()) {
        tracing::warn!("Alertmanager notification with a missing or wrong token refused");
        return answer(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    // Limited by the route's `DefaultBodyLimit`: 413 past it.
    let body = match <Bytes as axum::extract::FromRequest<()>>::from_request(request, &()).await {
        Ok(body) => body,
        Err(rejection) => return rejection.into_response(),
    };
    let notification = match crate::alertmanager::parse(&body) {
        Ok(notification) => notification,
        Err(problem) => {
            tracing::warn!(%problem, "Alertmanager notification refused");
            return answer(StatusCode::BAD_REQUEST, &problem);
        }
    };
    match am.app.handle_alerts(&notification).await {
        Ok(outcome) => {
            let (status, text) = match outcome {
                crate::app::alerts::AlertOutcome::Opened(key) => ("opened", key.to_string()),
                crate::app::alerts::AlertOutcome::Updated(key) => ("updated", key.to_string()),
                crate::app::alerts::AlertOutcome::Resolved(key) => ("resolved", key.to_string()),
                crate::app::alerts::AlertOutcome::Unchanged(why) => ("unchanged", why),
            };
            (
                StatusCode::OK,
                Json(json!({ "status": status, "detail": text })),
            )
                .into_response()
        }
        Err(error) => {
            tracing::error!(%error, "Alertmanager notification not applied; Alertmanager will retry");
            answer(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable")
        }
    }
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// How long `/readyz` and `/metrics` wait for the store.
const STORE_READ_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What keeps this replica from being ready (none: ready), and how long ago the scheduler
/// last completed a pass.
async fn readiness(deps: &HttpDeps) -> (Vec<String>, Option<f64>) {
    let store = match tokio::time::timeout(STORE_READ_LIMIT, deps.store.ping()).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {STORE_READ_LIMIT:?}")),
    };
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
    (problems, lag)
}

async fn readyz(State(deps): State<HttpDeps>) -> impl IntoResponse {
    let (problems, lag) = readiness(&deps).await;
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

/// `/metrics`: the counters as they stand, and the gauges read now.
async fn metrics_text(State(deps): State<HttpDeps>) -> Response {
    let (problems, lag) = readiness(&deps).await;
    let metrics = &deps.metrics;
    metrics.ready.set(i64::from(problems.is_empty()));
    // No pass yet reads as infinitely late, not as healthy.
    metrics.scheduler_lag.set(lag.unwrap_or(f64::INFINITY));
    // A hanging store must not hang the scrape: the lag and readiness are what matter then.
    match tokio::time::timeout(STORE_READ_LIMIT, deps.store.health_counts()).await {
        Ok(Ok(counts)) => metrics.set_store_counts(&counts),
        Ok(Err(error)) => tracing::warn!(%error, "cannot read store counts for /metrics"),
        Err(_) => tracing::warn!("store counts for /metrics timed out"),
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::CONTENT_TYPE,
        )],
        metrics.encode(),
    )
        .into_response()
}
