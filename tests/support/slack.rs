//! A fake Slack Web API over real HTTP, for the Slack adapter's integration tests.
//!
//! It serves `{api_url}{method}` for the methods warroom uses, answering as Slack does
//! (`200 {"ok":false,"error":...}` for API errors, `429` with `Retry-After` when rate limited),
//! with bodies that slack-morphism's response types deserialize. It keeps state (channels,
//! members, topics, messages, pins, user groups), records every call, and injects faults.
//! It also serves `response_url`s: `POST /response/{id}`.
//!
//! Requests are read the way Slack reads them: a JSON body (`Content-Type: application/json`),
//! a form body (`application/x-www-form-urlencoded`), and query string parameters (GET).
//! slack-morphism joins its API URL and the method with a `/`; the fake accepts any number of
//! slashes there.
//!
//! Socket Mode: `apps.connections.open` (with the app-level token [`APP_TOKEN`]) answers a
//! `ws://…/socket` URL; a connection there gets Slack's `hello`, then whatever envelopes the
//! test sends with [`FakeSlack::socket_send`], and its acknowledgements are recorded
//! ([`FakeSlack::socket_acks`]).

#![allow(dead_code)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

pub const BOT_TOKEN: &str = "xoxb-test-token";
/// The app-level token Socket Mode connects with.
pub const APP_TOKEN: &str = "xapp-test-token";
pub const BOT_USER: &str = "UWARROOM1";
pub const BOT_ID: &str = "B0TEST";
pub const TEAM_ID: &str = "T0TEST";
/// The user name `auth.test` reports for the bot.
pub const BOT_NAME: &str = "warroom";

/// A response URL accepts this many posts, then answers `404 used_url`.
pub const RESPONSE_URL_USES: usize = 5;
/// Slack's limits.
pub const MAX_CHANNEL_NAME: usize = 80;
pub const MAX_TOPIC: usize = 250;
pub const MAX_TEXT: usize = 40_000;
pub const MAX_BLOCKS: usize = 50;

/// The first message timestamp; each later one is 100µs after the previous.
const FIRST_TS_MICROS: u64 = 1_700_000_000_000_100;
const TS_STEP_MICROS: u64 = 100;
/// `created` of channels made by the fake (unix seconds).
const CREATED: i64 = 1_700_000_000;

/// One Web API call as received (faulted and refused ones included).
#[derive(Clone, Debug)]
pub struct Call {
    /// The method name, e.g. `chat.postMessage`.
    pub method: String,
    /// The JSON body, or the form and query fields as a JSON object of strings (JSON body
    /// fields win over query fields of the same name).
    pub body: Value,
}

#[derive(Clone, Debug)]
pub struct Channel {
    pub id: String,
    pub name: String,
    pub creator: String,
    pub topic: String,
    pub members: Vec<String>,
    pub is_private: bool,
}

/// A message posted with `chat.postMessage`, with every `chat.update` applied.
#[derive(Clone, Debug)]
pub struct Posted {
    /// The channel id (also when it was posted by name).
    pub channel: String,
    pub ts: String,
    pub text: Option<String>,
    /// The blocks as a JSON array (parsed when they were sent as a JSON-encoded string);
    /// `Null` when there are none.
    pub blocks: Value,
    pub thread_ts: Option<String>,
    /// How many successful `chat.update` calls changed it.
    pub edits: usize,
}

/// What the next call to a method gets instead of its answer.
#[derive(Clone, Debug)]
pub enum Fault {
    /// HTTP 429, `Retry-After: N`, `{"ok":false,"error":"ratelimited"}`.
    RateLimited { retry_after_secs: u64 },
    /// HTTP 500 with a plain text body.
    ServerError,
    /// HTTP 200 `{"ok":false,"error":...}`.
    SlackError(String),
    /// No answer at all (until the fake is dropped).
    Hang,
}

struct ChannelState {
    info: Channel,
    created: i64,
    archived: bool,
    topic_creator: String,
    topic_last_set: i64,
}

struct MessageState {
    posted: Posted,
    /// Who posted it: the bot for `chat.postMessage`, anyone for [`FakeSlack::add_message`].
    user: String,
    /// Whether it came from `chat.postMessage` (and so is listed by `messages`).
    from_api: bool,
    attachments: Option<Value>,
}

/// A file shared in a channel (`files.completeUploadExternal`).
#[derive(Clone, Debug, PartialEq)]
pub struct SharedFile {
    pub id: String,
    pub channel: String,
    pub filename: String,
    pub title: String,
    pub snippet_type: Option<String>,
    pub content: String,
}

/// A file announced by `files.getUploadURLExternal`, and its bytes once uploaded.
struct PendingUpload {
    filename: String,
    length: usize,
    snippet_type: Option<String>,
    content: Option<Vec<u8>>,
}

#[derive(Default)]
struct FakeState {
    uploads: HashMap<String, PendingUpload>,
    files: Vec<SharedFile>,
    file_count: u64,
    calls: Vec<Call>,
    faults: HashMap<String, VecDeque<Fault>>,
    hang_everything: bool,
    channels: Vec<ChannelState>,
    messages: Vec<MessageState>,
    ephemerals: Vec<Value>,
    pins: HashMap<String, Vec<String>>,
    responses: HashMap<String, Vec<Value>>,
    usergroups: HashMap<String, Vec<String>>,
    /// The fake's own address, for the Socket Mode URL.
    url: String,
    socket_connections: usize,
    socket_acks: Vec<Value>,
    channel_count: u64,
    ts_count: u64,
}

impl FakeState {
    fn next_ts(&mut self) -> String {
        let micros = FIRST_TS_MICROS + self.ts_count * TS_STEP_MICROS;
        self.ts_count += 1;
        format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
    }

    fn new_channel(&mut self, name: &str, creator: &str, is_private: bool) -> String {
        self.channel_count += 1;
        let id = format!("C{:07}", self.channel_count);
        // The bot is in a channel others made only once it joins or is invited.
        let members = vec![creator.to_string()];
        self.channels.push(ChannelState {
            info: Channel {
                id: id.clone(),
                name: name.to_string(),
                creator: creator.to_string(),
                topic: String::new(),
                members,
                is_private,
            },
            created: CREATED + self.channel_count as i64,
            archived: false,
            topic_creator: String::new(),
            topic_last_set: 0,
        });
        id
    }

    /// A channel by id, or by name with or without `#`.
    fn find_channel(&self, id_or_name: &str) -> Option<usize> {
        let name = id_or_name.strip_prefix('#').unwrap_or(id_or_name);
        self.channels
            .iter()
            .position(|c| c.info.id == id_or_name)
            .or_else(|| self.channels.iter().position(|c| c.info.name == name))
    }

    fn find_channel_by_id(&self, id: &str) -> Option<usize> {
        self.channels.iter().position(|c| c.info.id == id)
    }

    fn find_message(&self, channel_id: &str, ts: &str) -> Option<usize> {
        self.messages
            .iter()
            .position(|m| m.posted.channel == channel_id && m.posted.ts == ts)
    }
}

pub struct FakeSlack {
    pub url: String,
    state: Arc<Mutex<FakeState>>,
    socket: tokio::sync::mpsc::UnboundedSender<String>,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        // Hung requests answer (503) and end, so their connections close.
        let _ = self.shutdown.send(true);
        self.task.abort();
    }
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<FakeState>>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    /// Envelopes for Socket Mode: each goes to one open connection, as Slack does.
    socket: Arc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<String>>>,
}

impl FakeSlack {
    pub async fn start() -> FakeSlack {
        let state = Arc::new(Mutex::new(FakeState::default()));
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let (socket, envelopes) = tokio::sync::mpsc::unbounded_channel();
        let shared = Shared {
            state: state.clone(),
            shutdown: shutdown_rx,
            socket: Arc::new(tokio::sync::Mutex::new(envelopes)),
        };
        let app = Router::new()
            .route("/response/{id}", post(response_url))
            .route("/upload/{id}", post(upload_file))
            .route("/socket", axum::routing::get(socket_mode))
            .fallback(api)
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        state.lock().unwrap().url = url.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeSlack {
            url,
            state,
            socket,
            shutdown,
            task,
        }
    }

    /// `http://127.0.0.1:PORT/api`, for `with_slack_api_url` (which adds `/` and the method).
    pub fn api_url(&self) -> String {
        format!("{}/api", self.url)
    }

    /// How many Socket Mode connections are open.
    pub fn socket_connections(&self) -> usize {
        self.lock().socket_connections
    }

    /// Send an envelope (`{"envelope_id", "type", "payload", "accepts_response_payload"}`)
    /// over one open Socket Mode connection (the next to read).
    pub fn socket_send(&self, envelope: Value) {
        let _ = self.socket.send(envelope.to_string());
    }

    /// Acknowledgements received over Socket Mode (`{"envelope_id", "payload"?}`), in order.
    pub fn socket_acks(&self) -> Vec<Value> {
        self.lock().socket_acks.clone()
    }

    /// `http://127.0.0.1:PORT/response/{id}`.
    pub fn response_url(&self, id: &str) -> String {
        format!("{}/response/{id}", self.url)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every Web API call, in order, faulted and refused ones included.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The bodies of the calls to one method, in order.
    pub fn calls_to(&self, method: &str) -> Vec<Value> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .map(|c| c.body.clone())
            .collect()
    }

    pub fn channels(&self) -> Vec<Channel> {
        self.lock()
            .channels
            .iter()
            .map(|c| c.info.clone())
            .collect()
    }

    pub fn channel_named(&self, name: &str) -> Option<Channel> {
        let name = name.strip_prefix('#').unwrap_or(name);
        self.lock()
            .channels
            .iter()
            .find(|c| c.info.name == name)
            .map(|c| c.info.clone())
    }

    /// A public channel that exists before the test; its creator is its only member (the bot
    /// too when `creator` is [`BOT_USER`]). Returns its id.
    pub fn add_channel(&self, name: &str, creator: &str) -> String {
        let mut state = self.lock();
        assert!(
            state.channels.iter().all(|c| c.info.name != name),
            "FakeSlack::add_channel: a channel named {name} exists"
        );
        state.new_channel(name, creator, false)
    }

    /// Archive a channel: `conversations.list` with `exclude_archived` leaves it out, and
    /// posting or inviting to it fails with `is_archived`.
    pub fn archive_channel(&self, channel_id: &str) {
        let mut state = self.lock();
        let i = state
            .find_channel_by_id(channel_id)
            .unwrap_or_else(|| panic!("FakeSlack::archive_channel: no channel {channel_id}"));
        state.channels[i].archived = true;
    }

    /// Put users in a channel without an API call.
    pub fn add_members(&self, channel_id: &str, users: &[&str]) {
        let mut state = self.lock();
        let i = state
            .find_channel_by_id(channel_id)
            .unwrap_or_else(|| panic!("FakeSlack::add_members: no channel {channel_id}"));
        for user in users {
            if !state.channels[i].info.members.iter().any(|m| m == user) {
                state.channels[i].info.members.push(user.to_string());
            }
        }
    }

    /// A message someone else posted (not listed by `messages`; the bot cannot update it).
    /// Returns its ts.
    pub fn add_message(&self, channel_id: &str, user: &str, text: &str) -> String {
        let mut state = self.lock();
        assert!(
            state.find_channel_by_id(channel_id).is_some(),
            "FakeSlack::add_message: no channel {channel_id}"
        );
        let ts = state.next_ts();
        state.messages.push(MessageState {
            posted: Posted {
                channel: channel_id.to_string(),
                ts: ts.clone(),
                text: Some(text.to_string()),
                blocks: Value::Null,
                thread_ts: None,
                edits: 0,
            },
            user: user.to_string(),
            from_api: false,
            attachments: None,
        });
        ts
    }

    /// Messages posted to a channel (by id) with `chat.postMessage`, in order, as updated.
    pub fn messages(&self, channel_id: &str) -> Vec<Posted> {
        self.lock()
            .messages
            .iter()
            .filter(|m| m.from_api && m.posted.channel == channel_id)
            .map(|m| m.posted.clone())
            .collect()
    }

    /// The files shared in a channel, in order.
    pub fn files(&self, channel_id: &str) -> Vec<SharedFile> {
        self.lock()
            .files
            .iter()
            .filter(|f| f.channel == channel_id)
            .cloned()
            .collect()
    }

    /// The bodies of the successful `chat.postEphemeral` calls, in order.
    pub fn ephemerals(&self) -> Vec<Value> {
        self.lock().ephemerals.clone()
    }

    /// The ts of the messages pinned in a channel, in pinning order.
    pub fn pins(&self, channel_id: &str) -> Vec<String> {
        self.lock()
            .pins
            .get(channel_id)
            .cloned()
            .unwrap_or_default()
    }

    /// The JSON bodies accepted at `response_url(id)`, in order (at most five).
    pub fn responses(&self, id: &str) -> Vec<Value> {
        self.lock().responses.get(id).cloned().unwrap_or_default()
    }

    pub fn set_usergroup(&self, group_id: &str, users: &[&str]) {
        self.lock().usergroups.insert(
            group_id.to_string(),
            users.iter().map(|u| u.to_string()).collect(),
        );
    }

    /// The next call to `method` gets `fault`; several calls queue several faults, used in
    /// order.
    pub fn fail_next(&self, method: &str, fault: Fault) {
        self.lock()
            .faults
            .entry(method.to_string())
            .or_default()
            .push_back(fault);
    }

    /// While on, every Web API call hangs (never answers, even after this is turned off).
    pub fn hang_everything(&self, on: bool) {
        self.lock().hang_everything = on;
    }
}

// ---------------------------------------------------------------------------------------
// Requests

/// Parse `a=1&b=x+y%21` into pairs.
fn parse_urlencoded(text: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = |b: u8| (b as char).to_digit(16);
                    match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                        (Some(high), Some(low)) => {
                            out.push((high * 16 + low) as u8);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The call's parameters: query fields, then body fields (JSON or form) over them.
fn parameters(uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Map<String, Value> {
    let mut params = Map::new();
    for (k, v) in parse_urlencoded(uri.query().unwrap_or("")) {
        params.insert(k, Value::String(v));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "application/json" => {
            if let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) {
                params.extend(fields);
            }
        }
        "application/x-www-form-urlencoded" => {
            for (k, v) in parse_urlencoded(&String::from_utf8_lossy(body)) {
                params.insert(k, Value::String(v));
            }
        }
        _ => {}
    }
    params
}

/// A parameter as a string (numbers and booleans as their text); `None` when absent or null.
fn string_param(params: &Map<String, Value>, key: &str) -> Option<String> {
    match params.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A non-empty string parameter.
fn nonempty_param(params: &Map<String, Value>, key: &str) -> Option<String> {
    string_param(params, key).filter(|s| !s.is_empty())
}

fn bool_param(params: &Map<String, Value>, key: &str) -> bool {
    match params.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        Some(Value::String(s)) => s == "true" || s == "1",
        _ => false,
    }
}

/// A list parameter: a JSON array of strings, or a comma-separated string.
fn list_param(params: &Map<String, Value>, key: &str) -> Vec<String> {
    match params.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(|s| s.trim().to_string()))
            .filter(|s| !s.is_empty())
            .collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        _ => vec![],
    }
}

enum Blocks {
    Absent,
    Given(Vec<Value>),
    Invalid,
}

/// `blocks` as given: a JSON array, or a JSON-encoded string holding one.
fn blocks_param(params: &Map<String, Value>) -> Blocks {
    let value = match params.get("blocks") {
        None | Some(Value::Null) => return Blocks::Absent,
        Some(Value::String(s)) if s.trim().is_empty() => return Blocks::Absent,
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v) => v,
            Err(_) => return Blocks::Invalid,
        },
        Some(v) => v.clone(),
    };
    match value {
        Value::Array(blocks)
            if blocks.len() <= MAX_BLOCKS
                && blocks.iter().all(|b| b["type"].as_str().is_some()) =>
        {
            Blocks::Given(blocks)
        }
        _ => Blocks::Invalid,
    }
}

fn is_user_id(id: &str) -> bool {
    (id.starts_with('U') || id.starts_with('W'))
        && id.len() > 1
        && id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

// ---------------------------------------------------------------------------------------
// Responses

fn ok(fields: Value) -> Response {
    let mut body = json!({ "ok": true });
    if let (Value::Object(body), Value::Object(fields)) = (&mut body, fields) {
        body.extend(fields);
    }
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn error(code: &str) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({ "ok": false, "error": code })),
    )
        .into_response()
}

/// Wait until the fake is dropped, then answer 503 (nobody is listening by then).
async fn hang(mut shutdown: tokio::sync::watch::Receiver<bool>) -> Response {
    let _ = shutdown.wait_for(|down| *down).await;
    (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
}

async fn apply_fault(fault: Fault, shutdown: tokio::sync::watch::Receiver<bool>) -> Response {
    match fault {
        Fault::RateLimited { retry_after_secs } => {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(json!({ "ok": false, "error": "ratelimited" })),
            )
                .into_response();
            response.headers_mut().insert(
                header::RETRY_AFTER,
                retry_after_secs.to_string().parse().unwrap(),
            );
            response
        }
        Fault::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Internal Server Error",
        )
            .into_response(),
        Fault::SlackError(code) => error(&code),
        Fault::Hang => hang(shutdown).await,
    }
}

fn channel_json(c: &ChannelState) -> Value {
    let info = &c.info;
    json!({
        "id": info.id,
        "name": info.name,
        "name_normalized": info.name,
        "created": c.created,
        "creator": info.creator,
        "is_channel": true,
        "is_group": false,
        "is_im": false,
        "is_mpim": false,
        "is_private": info.is_private,
        "is_archived": c.archived,
        "is_general": false,
        "is_shared": false,
        "is_ext_shared": false,
        "is_org_shared": false,
        "is_member": info.members.iter().any(|m| m == BOT_USER),
        "unlinked": 0,
        "topic": { "value": info.topic, "creator": c.topic_creator, "last_set": c.topic_last_set },
        "purpose": { "value": "", "creator": "", "last_set": 0 },
        "previous_names": [],
        "num_members": info.members.len(),
    })
}

fn message_json(m: &MessageState) -> Value {
    let p = &m.posted;
    let mut message = json!({
        "type": "message",
        "text": p.text.clone().unwrap_or_default(),
        "user": m.user,
        "ts": p.ts,
        "team": TEAM_ID,
    });
    if m.user == BOT_USER {
        message["bot_id"] = json!(BOT_ID);
        message["app_id"] = json!("A0TEST");
    }
    if !p.blocks.is_null() {
        message["blocks"] = p.blocks.clone();
    }
    if let Some(attachments) = &m.attachments {
        message["attachments"] = attachments.clone();
    }
    if let Some(thread_ts) = &p.thread_ts {
        message["thread_ts"] = json!(thread_ts);
    }
    message
}

// ---------------------------------------------------------------------------------------
// Handlers

async fn response_url(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let text = |status: StatusCode, body: &'static str| {
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response()
    };
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return text(StatusCode::BAD_REQUEST, "invalid_payload");
    };
    let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    let accepted = state.responses.entry(id).or_default();
    if accepted.len() >= RESPONSE_URL_USES {
        return text(StatusCode::NOT_FOUND, "used_url");
    }
    accepted.push(payload);
    text(StatusCode::OK, "ok")
}

/// A Socket Mode connection: `hello`, then the test's envelopes; acknowledgements recorded.
async fn socket_mode(
    State(shared): State<Shared>,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    upgrade.on_upgrade(move |mut ws| async move {
        use axum::extract::ws::Message;
        shared.state.lock().unwrap_or_else(|e| e.into_inner()).socket_connections += 1;
        let hello = json!({
            "type": "hello",
            "num_connections": 1,
            "debug_info": { "host": "fake-slack", "approximate_connection_time": 18060 },
            "connection_info": { "app_id": "A0TEST" },
        });
        if ws.send(Message::Text(hello.to_string().into())).await.is_ok() {
            loop {
                tokio::select! {
                    envelope = async { shared.socket.lock().await.recv().await } => match envelope {
                        Some(text) => {
                            if ws.send(Message::Text(text.into())).await.is_err() {
                                break;
                            }
                        }
                        None => break,
                    },
                    frame = ws.recv() => match frame {
                        Some(Ok(Message::Text(text))) => {
                            if let Ok(ack) = serde_json::from_str::<Value>(&text) {
                                shared.state.lock().unwrap_or_else(|e| e.into_inner()).socket_acks.push(ack);
                            }
                        }
                        Some(Ok(Message::Ping(data))) => {
                            let _ = ws.send(Message::Pong(data)).await;
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                }
            }
        }
        shared.state.lock().unwrap_or_else(|e| e.into_inner()).socket_connections -= 1;
    })
}

async fn api(State(shared): State<Shared>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path();
    let Some(rest) = path.strip_prefix("/api/") else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let method = rest.trim_start_matches('/').to_string();
    let params = parameters(&uri, &headers, &body);

    let fault = {
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.calls.push(Call {
            method: method.clone(),
            body: Value::Object(params.clone()),
        });
        if state.hang_everything {
            Some(Fault::Hang)
        } else {
            state
                .faults
                .get_mut(&method)
                .and_then(|queue| queue.pop_front())
        }
    };
    if let Some(fault) = fault {
        return apply_fault(fault, shared.shutdown.clone()).await;
    }

    let token = if method == "apps.connections.open" {
        APP_TOKEN
    } else {
        BOT_TOKEN
    };
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(format!("Bearer {token}").as_str());
    if !authorized {
        return error("invalid_auth");
    }

    let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    let state = &mut *state;
    match method.as_str() {
        "apps.connections.open" => ok(json!({
            "url": format!("{}/socket", state.url.replacen("http://", "ws://", 1)),
        })),
        "auth.test" => ok(json!({
            "url": "https://warroom-test.slack.com/",
            "team": "Warroom Test",
            "user": BOT_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "is_enterprise_install": false,
        })),
        "conversations.create" => conversations_create(state, &params),
        "conversations.list" => conversations_list(state, &params),
        "conversations.info" => {
            match nonempty_param(&params, "channel").and_then(|c| state.find_channel_by_id(&c)) {
                Some(i) => ok(json!({ "channel": channel_json(&state.channels[i]) })),
                None => error("channel_not_found"),
            }
        }
        "conversations.join" => {
            match nonempty_param(&params, "channel").and_then(|c| state.find_channel_by_id(&c)) {
                None => error("channel_not_found"),
                Some(i) if state.channels[i].archived => error("is_archived"),
                Some(i) if state.channels[i].info.is_private => {
                    error("method_not_supported_for_channel_type")
                }
                Some(i) => {
                    let channel = &mut state.channels[i];
                    if !channel.info.members.iter().any(|m| m == BOT_USER) {
                        channel.info.members.push(BOT_USER.to_string());
                    }
                    ok(json!({ "channel": channel_json(channel) }))
                }
            }
        }
        "conversations.invite" => conversations_invite(state, &params),
        "conversations.setTopic" => conversations_set_topic(state, &params),
        "chat.postMessage" => chat_post_message(state, &params),
        "chat.update" => chat_update(state, &params),
        "chat.postEphemeral" => chat_post_ephemeral(state, &params),
        "pins.add" => pins_add(state, &params),
        "files.getUploadURLExternal" => files_get_upload_url(state, &params),
        "files.completeUploadExternal" => files_complete_upload(state, &params),
        "usergroups.users.list" => {
            match nonempty_param(&params, "usergroup").and_then(|g| state.usergroups.get(&g)) {
                Some(users) => ok(json!({ "users": users })),
                None => error("no_such_subteam"),
            }
        }
        _ => error("unknown_method"),
    }
}

/// `files.getUploadURLExternal`: `filename` and `length` required; an upload URL on the fake.
fn files_get_upload_url(state: &mut FakeState, params: &Map<String, Value>) -> Response {
    let (Some(filename), Some(length)) = (
        nonempty_param(params, "filename"),
        nonempty_param(params, "length").and_then(|l| l.parse::<usize>().ok()),
    ) else {
        return error("invalid_arguments");
    };
    state.file_count += 1;
    let id = format!("F{:07}", state.file_count);
    state.uploads.insert(
        id.clone(),
        PendingUpload {
            filename,
            length,
            snippet_type: nonempty_param(params, "snippet_type"),
            content: None,
        },
    );
    ok(json!({ "upload_url": format!("{}/upload/{id}", state.url), "file_id": id }))
}

/// The upload URL: the file's bytes, which must be as long as announced. Answers as Slack
/// does, in plain text.
async fn upload_file(
    State(shared): State<Shared>,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: Bytes,
) -> Response {
    let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    state.calls.push(Call {
        method: "upload".into(),
        body: json!({ "file": id, "bytes": body.len() }),
    });
    match state.uploads.get_mut(&id) {
        Some(upload) if upload.length == body.len() => {
            upload.content = Some(body.to_vec());
            (StatusCode::OK, format!("OK - {}", body.len())).into_response()
        }
        Some(_) => (StatusCode::BAD_REQUEST, "length mismatch").into_response(),
        None => (StatusCode::NOT_FOUND, "no such upload").into_response(),
    }
}

/// `files.completeUploadExternal`: every file uploaded, shared in `channel_id` (which the bot
/// must be in).
fn files_complete_upload(state: &mut FakeState, params: &Map<String, Value>) -> Response {
    let files: Vec<(String, String)> = match params.get("files") {
        Some(Value::Array(files)) => files
            .iter()
            .map(|f| {
                (
                    f["id"].as_str().unwrap_or_default().to_string(),
                    f["title"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        Some(Value::String(text)) => serde_json::from_str::<Vec<Value>>(text)
            .unwrap_or_default()
            .iter()
            .map(|f| {
                (
                    f["id"].as_str().unwrap_or_default().to_string(),
                    f["title"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        _ => return error("invalid_arguments"),
    };
    if files.is_empty() {
        return error("invalid_arguments");
    }
    let Some(channel) = nonempty_param(params, "channel_id") else {
        return error("invalid_arguments");
    };
    match state.find_channel_by_id(&channel) {
        None => return error("channel_not_found"),
        Some(i) if !state.channels[i].info.members.iter().any(|m| m == BOT_USER) => {
            return error("not_in_channel");
        }
        Some(_) => {}
    }
    let mut shared = Vec::new();
    for (id, title) in files {
        let Some(upload) = state.uploads.get(&id) else {
            return error("file_not_found");
        };
        let Some(content) = &upload.content else {
            return error("file_upload_incomplete");
        };
        shared.push(SharedFile {
            id: id.clone(),
            channel: channel.clone(),
            filename: upload.filename.clone(),
            title,
            snippet_type: upload.snippet_type.clone(),
            content: String::from_utf8_lossy(content).into_owned(),
        });
    }
    let listed: Vec<Value> = shared
        .iter()
        .map(|f| json!({ "id": f.id, "name": f.filename, "title": f.title }))
        .collect();
    state.files.extend(shared);
    ok(json!({ "files": listed }))
}

fn conversations_create(state: &mut FakeState, params: &Map<String, Value>) -> Response {
    let name = string_param(params, "name").unwrap_or_default();
    if name.is_empty() {
        return error("invalid_name_required");
    }
    if name.chars().count() > MAX_CHANNEL_NAME {
        return error("invalid_name_maxlength");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return error("invalid_name_specials");
    }
    if name.chars().all(|c| c == '-' || c == '_') {
        return error("invalid_name_punctuation");
    }
    if state.channels.iter().any(|c| c.info.name == name) {
        return error("name_taken");
    }
    let id = state.new_channel(&name, BOT_USER, bool_param(params, "is_private"));
    let i = state.find_channel_by_id(&id).unwrap();
    ok(json!({ "channel": channel_json(&state.channels[i]) }))
}

fn conversations_list(state: &mut FakeState, params: &Map<String, Value>) -> Response {
    let limit = match string_param(params, "limit") {
        None => 100,
        Some(text) => match text.parse::<usize>() {
            Ok(0) => 100,
            Ok(n) => n.min(1000),
            Err(_) => return error("invalid_limit"),
        },
    };
    let types = {
        let types = list_param(params, "types");
        if types.is_empty() {
            vec!["public_channel".to_string()]
        } else {
            types
        }
    };
    if types
        .iter()
        .any(|t| !["public_channel", "private_channel", "mpim", "im"].contains(&t.as_str()))
    {
        return error("invalid_types");
    }
    let exclude_archived = bool_param(params, "exclude_archived");
    let visible: Vec<&ChannelState> = state
        .channels
        .iter()
        .filter(|c| !(exclude_archived && c.archived))
        .filter(|c| {
            if c.info.is_private {
                // Private channels are listed only to their members.
                types.iter().any(|t| t == "private_channel")
                    && c.info.members.iter().any(|m| m == BOT_USER)
            } else {
                types.iter().any(|t| t == "public_channel")
            }
        })
        .collect();
    let start = match nonempty_param(params, "cursor") {
        None => 0,
        Some(cursor) => match cursor.strip_prefix("next:") {
            // Ids are zero-padded, so they sort in creation order.
            Some(id) => visible
                .iter()
                .position(|c| c.info.id.as_str() >= id)
                .unwrap_or(visible.len()),
            None => return error("invalid_cursor"),
        },
    };
    let page: Vec<Value> = visible
        .iter()
        .skip(start)
        .take(limit)
        .map(|c| channel_json(c))
        .collect();
    let next_cursor = visible
        .get(start + limit)
        .map(|c| format!("next:{}", c.info.id))
        .unwrap_or_default();
    ok(json!({ "channels": page, "response_metadata": { "next_cursor": next_cursor } }))
}

fn conversations_invite(state: &mut FakeState, params: &Map<String, Value>) -> Response {
    let Some(i) = nonempty_param(params, "channel").and_then(|c| state.find_channel_by_id(&c))
    else {
        return error("channel_not_found");
    };
    let users = list_param(params, "users");
    if users.is_empty() {
        return error("no_user");
    }
    if users.iter().any(|u| !is_user_id(u)) {
        return error("user_not_found");
    }
    if users.iter().any(|u| u == BOT_USER) {
        return error("cant_invite_self");
    }
    let channel = &mut state.channels[i];
    if channel.archived {
        return error("is_archived");
    }
    if users
        .iter()
        .all(|u| channel.info.members.iter().any(|m| m == u))
    {
        return error("already_in_channel");
    }
    for user in users {
        if !channel.info.members.contains(&user) {
            channel.info.members.push(user);
        }
    }
    ok(json!({ "channel": channel_json(channel) }))
}

fn conversations_set_topic(state: &mut FakeState, params: &Map<String, Value>) -> Response {
    let Some(i) = nonempty_param(params, "channel").and_then(|c| state.find_channel_by_id(&c))
    else {
        return error("channel_not_found");
    };
    let topic = string_param(params, "topic").unwrap_or_default();
    if topic.chars().count() > MAX_TOPIC {
        return error("too_long");
    }
    let channel = &mut state.channels[i];
    if channel.archived {
        return error("is_archived");
    }
    channel.info.topic = topic.clone();
    channel.topic_creator = BOT_USER.to_string();
    channel.topic_last_set = CREATED + 1_000;
    ok(json!({ "channel": channel_json(channel), "topic": topic }))
}

/// The content of a post or update: text (`None` if absent), blocks, attachments; or the error.
struct Content {
    text: Option<String>,
    blocks: Option<Vec<Value>>,
    attachments: Option<Value>,
}

fn content(params: &Map<String, Value>) -> Result<Content, &'static str> {
    let text = string_param(params, "text");
    let blocks = match blocks_param(params) {
        Blocks::Absent => None,
        Blocks::Given(blocks) => Some(blocks),
        Blocks::Invalid => return Err("invalid_blocks"),
    };
    let attachments = match params.get("attachments") {
        Some(Value::String(s)) if !s.trim().is_empty() => match serde_json::from_str(s) {
            Ok(v @ Value::Array(_)) => Some(v),
            _ => return Err("invalid_attachments"),
        },
        Some(v @ Value::Array(_)) => Some(v.clone()),
        _ => None,
    };
    if text.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT) {
        return Err("msg_too_long");
    }
    Ok(Content {
        text,
        blocks,
        attachments,
    })
}

impl Content {
    fn is_empty(&self) -> bool {
        self.text.as_deref().unwrap_or("").is_empty()
            && self.blocks.as_ref().is_none_or(|b| b.is_empty())
            && self
                .attachments
                .as_ref()
                .and_then(|a| a.as_array())
                .is_none_or(|a| a.is_empty())
    }
}

fn chat_post_message(state: &mut FakeState, params: &Map<String, Value>) -> Response {
    let Some(i) = nonempty_param(params, "channel").and_then(|c| state.find_channel(&c)) else {
        return error("channel_not_found");
    };
    let content = match content(params) {
        Ok(content) => content,
        Err(code) => return error(code),
    };
    if content.is_empty() {
        return error("no_text");
    }
    if state.channels[i].archived {
        return error("is_archived");
    }
    let channel = state.channels[i].info.id.clone();
    let ts = state.next_ts();
    let message = MessageState {
        posted: Posted {
            channel: channel.clone(),
            ts: ts.clone(),
            text: content.text,
            blocks: content.blocks.map(Value::Array).unwrap_or(Value::Null),
            thread_ts: nonempty_param(params, "thread_ts"),
            edits: 0,
        },
        user: BOT_USER.to_string(),
        from_api: true,
        attachments: content.attachments,
    };
    let json = message_json(&message);
    state.messages.push(message);
    ok(json!({ "channel": channel, "ts": ts, "message": json }))
}

fn chat_update(state: &mut FakeState, params: &Map<String, Value>) -> Response {
    let Some(i) = nonempty_param(params, "channel").and_then(|c| state.find_channel_by_id(&c))
    else {
        return error("channel_not_found");
    };
    let channel = state.channels[i].info.id.clone();
    let Some(m) = nonempty_param(params, "ts").and_then(|ts| state.find_message(&channel, &ts))
    else {
        return error("message_not_found");
    };
    if state.messages[m].user != BOT_USER {
        return error("cant_update_message");
    }
    let content = match content(params) {
        Ok(content) => content,
        Err(code) => return error(code),
    };
    if content.text.is_none() && content.blocks.is_none() && content.attachments.is_none() {
        return error("no_text");
    }
    let edited_ts = state.next_ts();
    let message = &mut state.messages[m];
    if let Some(text) = content.text {
        message.posted.text = Some(text);
    }
    if let Some(blocks) = content.blocks {
        // An empty array removes the blocks.
        message.posted.blocks = if blocks.is_empty() {
            Value::Null
        } else {
            Value::Array(blocks)
        };
    }
    if let Some(attachments) = content.attachments {
        message.attachments = Some(attachments);
    }
    message.posted.edits += 1;
    let mut json = message_json(message);
    json["edited"] = json!({ "user": BOT_USER, "ts": edited_ts });
    let mut body = json!({
        "channel": channel,
        "ts": message.posted.ts,
        "text": message.posted.text.clone().unwrap_or_default(),
        "message": json,
    });
    if let Some(thread_ts) = &message.posted.thread_ts {
        body["thread_ts"] = json!(thread_ts);
    }
    ok(body)
}

fn chat_post_ephemeral(state: &mut FakeState, params: &Map<String, Value>) -> Response {
    let Some(i) = nonempty_param(params, "channel").and_then(|c| state.find_channel(&c)) else {
        return error("channel_not_found");
    };
    match nonempty_param(params, "user") {
        Some(user) if is_user_id(&user) => {}
        _ => return error("user_not_found"),
    }
    let content = match content(params) {
        Ok(content) => content,
        Err(code) => return error(code),
    };
    if content.is_empty() {
        return error("no_text");
    }
    if state.channels[i].archived {
        return error("is_archived");
    }
    let ts = state.next_ts();
    state.ephemerals.push(Value::Object(params.clone()));
    ok(json!({ "message_ts": ts }))
}

fn pins_add(state: &mut FakeState, params: &Map<String, Value>) -> Response {
    let Some(i) = nonempty_param(params, "channel").and_then(|c| state.find_channel_by_id(&c))
    else {
        return error("channel_not_found");
    };
    let channel = state.channels[i].info.id.clone();
    let Some(ts) = nonempty_param(params, "timestamp") else {
        return error("no_item_specified");
    };
    if state.find_message(&channel, &ts).is_none() {
        return error("message_not_found");
    }
    let pins = state.pins.entry(channel).or_default();
    if pins.contains(&ts) {
        return error("already_pinned");
    }
    pins.push(ts);
    ok(json!({}))
}
