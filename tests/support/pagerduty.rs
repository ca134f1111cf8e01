//! A fake PagerDuty over real HTTP: the Events API v2 (`POST /v2/enqueue`) and the REST
//! endpoints warroom uses, validating requests as PagerDuty documents them, keeping state
//! (incidents by routing key and dedup key), recording every request, and injecting faults.

#![allow(dead_code)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const API_TOKEN: &str = "test-api-token";
pub const FROM: &str = "warroom-bot@example.com";
pub const REQUESTER_ID: &str = "PREQUESTER";

/// One request as received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
}

/// What the next request gets instead of a normal answer.
#[derive(Clone, Debug)]
pub enum Fault {
    /// This status, with `Retry-After` when given.
    Status(u16, Option<u64>),
    /// No answer for this long.
    Hang(Duration),
}

#[derive(Default)]
pub struct FakeState {
    pub requests: Vec<Recorded>,
    pub faults: VecDeque<Fault>,
    /// (routing key, dedup key) → status of the alert/incident.
    pub incidents: HashMap<(String, String), String>,
    /// REST incidents by id: (status, incident_key).
    pub rest_incidents: HashMap<String, (String, Option<String>)>,
    /// Schedule id → on-call user ids.
    pub on_call: HashMap<String, Vec<String>>,
    /// Events API events that were accepted (202), in order.
    pub accepted: Vec<Value>,
}

pub struct FakePagerDuty {
    pub url: String,
    pub state: Arc<Mutex<FakeState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakePagerDuty {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakePagerDuty {
    pub async fn start() -> FakePagerDuty {
        let state = Arc::new(Mutex::new(FakeState::default()));
        let app = Router::new()
            .route("/v2/enqueue", post(enqueue))
            .route(
                "/incidents/{id}/responder_requests",
                post(responder_requests),
            )
            .route("/{*rest}", any(rest))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakePagerDuty { url, state, task }
    }

    pub fn events_url(&self) -> String {
        format!("{}/v2/enqueue", self.url)
    }

    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state.lock().unwrap().faults.extend(faults);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Events API requests with this action, in order.
    pub fn events(&self, action: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/v2/enqueue" && r.body["event_action"] == action)
            .map(|r| r.body)
            .collect()
    }

    /// Accepted Events API events with this action, in order.
    pub fn accepted(&self, action: &str) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .accepted
            .iter()
            .filter(|e| e["event_action"] == action)
            .cloned()
            .collect()
    }

    pub fn add_rest_incident(&self, id: &str, incident_key: Option<&str>) {
        self.state.lock().unwrap().rest_incidents.insert(
            id.into(),
            ("triggered".into(), incident_key.map(String::from)),
        );
    }

    pub fn set_on_call(&self, schedule: &str, users: &[&str]) {
        self.state.lock().unwrap().on_call.insert(
            schedule.into(),
            users.iter().map(|u| u.to_string()).collect(),
        );
    }
}

fn record(
    state: &Mutex<FakeState>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<Fault> {
    let mut state = state.lock().unwrap();
    state.requests.push(Recorded {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or("").to_string(),
                )
            })
            .collect(),
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
    });
    state.faults.pop_front()
}

async fn apply_fault(fault: Fault) -> Response {
    match fault {
        Fault::Hang(duration) => {
            tokio::time::sleep(duration).await;
            (StatusCode::GATEWAY_TIMEOUT, "hung").into_response()
        }
        Fault::Status(code, retry_after) => {
            let mut response = (
                StatusCode::from_u16(code).unwrap(),
                axum::Json(json!({ "status": "error", "message": "injected fault" })),
            )
                .into_response();
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", seconds.to_string().parse().unwrap());
            }
            response
        }
    }
}

fn invalid(errors: Vec<&str>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "status": "invalid event", "message": "Event object is invalid", "errors": errors })),
    )
        .into_response()
}

async fn enqueue(
    State(state): State<Arc<Mutex<FakeState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(fault) = record(&state, &method, &uri, &headers, &body) {
        return apply_fault(fault).await;
    }
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return invalid(vec!["body is not JSON"]);
    };
    let mut errors = Vec::new();
    let routing_key = event["routing_key"].as_str().unwrap_or("");
    if routing_key.len() != 32 {
        errors.push("'routing_key' must be 32 characters");
    }
    let action = event["event_action"].as_str().unwrap_or("");
    if !["trigger", "acknowledge", "resolve"].contains(&action) {
        errors.push("'event_action' is invalid");
    }
    let dedup_key = event["dedup_key"].as_str().unwrap_or("");
    if dedup_key.len() > 255 {
        errors.push("'dedup_key' is too long");
    }
    if action == "trigger" {
        let payload = &event["payload"];
        let summary = payload["summary"].as_str().unwrap_or("");
        if summary.is_empty() || summary.len() > 1024 {
            errors.push("'payload.summary' is missing or too long");
        }
        if payload["source"].as_str().unwrap_or("").is_empty() {
            errors.push("'payload.source' is missing");
        }
        if !["critical", "error", "warning", "info"]
            .contains(&payload["severity"].as_str().unwrap_or(""))
        {
            errors.push("'payload.severity' is invalid");
        }
    } else if dedup_key.is_empty() {
        errors.push("'dedup_key' is required to acknowledge or resolve");
    }
    if !errors.is_empty() {
        return invalid(errors);
    }
    let mut state = state.lock().unwrap();
    state.accepted.push(event.clone());
    let key = (routing_key.to_string(), dedup_key.to_string());
    match action {
        "trigger" => {
            state
                .incidents
                .entry(key)
                .or_insert_with(|| "triggered".into());
        }
        "acknowledge" => {
            if let Some(status) = state.incidents.get_mut(&key) {
                *status = "acknowledged".into();
            }
        }
        _ => {
            if let Some(status) = state.incidents.get_mut(&key) {
                *status = "resolved".into();
            }
        }
    }
    (
        StatusCode::ACCEPTED,
        axum::Json(
            json!({ "status": "success", "message": "Event processed", "dedup_key": dedup_key }),
        ),
    )
        .into_response()
}

/// The refusal PagerDuty would send for missing or wrong REST headers, if any.
fn rest_headers_refusal(headers: &HeaderMap) -> Option<Response> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    if get("authorization") != format!("Token token={API_TOKEN}") {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({ "error": { "message": "Unauthorized", "code": 2006 } })),
            )
                .into_response(),
        );
    }
    if get("accept") != "application/vnd.pagerduty+json;version=2" {
        return Some(
            (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": { "message": "Bad Accept header" } })),
            )
                .into_response(),
        );
    }
    None
}

/// The refusal for a missing or unknown `From` header, if any.
fn from_refusal(headers: &HeaderMap) -> Option<Response> {
    if headers.get("from").and_then(|v| v.to_str().ok()) != Some(FROM) {
        return Some(
            (
                StatusCode::BAD_REQUEST,
                axum::Json(
                    json!({ "error": { "message": "Requester User Not Found", "code": 2100 } }),
                ),
            )
                .into_response(),
        );
    }
    None
}

async fn responder_requests(
    State(state): State<Arc<Mutex<FakeState>>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(fault) = record(&state, &method, &uri, &headers, &body) {
        return apply_fault(fault).await;
    }
    if let Some(response) = rest_headers_refusal(&headers).or_else(|| from_refusal(&headers)) {
        return response;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if body["requester_id"] != REQUESTER_ID
        || !body["responder_request_targets"].is_array()
        || body["message"].as_str().is_none()
    {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": { "message": "Invalid Input Provided" } })),
        )
            .into_response();
    }
    if !state.lock().unwrap().rest_incidents.contains_key(&id) {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "error": { "message": "Not Found" } })),
        )
            .into_response();
    }
    axum::Json(json!({ "responder_request": { "incident": { "id": id }, "responder_request_targets": body["responder_request_targets"] } })).into_response()
}

async fn rest(
    State(state): State<Arc<Mutex<FakeState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    if let Some(fault) = record(&state, &method, &uri, &headers, &body) {
        return apply_fault(fault).await;
    }
    if let Some(response) = rest_headers_refusal(&headers) {
        return response;
    }
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let path = uri.path().to_string();
    let mut state = state.lock().unwrap();
    match (method.as_str(), path.as_str()) {
        ("GET", "/incidents") => {
            let key = param("incident_key");
            let incidents: Vec<Value> = state
                .rest_incidents
                .iter()
                .filter(|(_, (_, k))| key.is_none() || k.as_ref() == key.as_ref())
                .map(|(id, (status, k))| json!({ "id": id, "status": status, "incident_key": k }))
                .collect();
            axum::Json(json!({ "incidents": incidents })).into_response()
        }
        ("GET", "/users") => {
            let users = if param("query").as_deref() == Some(FROM) {
                vec![json!({ "id": REQUESTER_ID, "email": FROM })]
            } else {
                vec![]
            };
            axum::Json(json!({ "users": users })).into_response()
        }
        ("GET", "/oncalls") => {
            let target = param("schedule_ids[]")
                .or_else(|| param("escalation_policy_ids[]"))
                .unwrap_or_default();
            // Users are "id" or "id=Display Name".
            let oncalls: Vec<Value> = state
                .on_call
                .get(&target)
                .map(|users| {
                    users
                        .iter()
                        .map(|u| {
                            let (id, name) = u.split_once('=').unwrap_or((u, u));
                            json!({ "user": { "id": id, "summary": name, "type": "user_reference" } })
                        })
                        .collect()
                })
                .unwrap_or_default();
            axum::Json(json!({ "oncalls": oncalls })).into_response()
        }
        ("PUT", p) if p.starts_with("/incidents/") => {
            if let Some(response) = from_refusal(&headers) {
                return response;
            }
            let id = p.trim_start_matches("/incidents/").to_string();
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let status = body["incident"]["status"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if body["incident"]["type"] != "incident_reference"
                || !["acknowledged", "resolved"].contains(&status.as_str())
            {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({ "error": { "message": "Invalid Input Provided" } })),
                )
                    .into_response();
            }
            match state.rest_incidents.get_mut(&id) {
                Some(entry) => {
                    entry.0 = status.clone();
                    axum::Json(json!({ "incident": { "id": id, "status": status } }))
                        .into_response()
                }
                None => (
                    StatusCode::NOT_FOUND,
                    axum::Json(json!({ "error": { "message": "Not Found" } })),
                )
                    .into_response(),
            }
        }
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "error": { "message": "Not Found" } })),
        )
            .into_response(),
    }
}
