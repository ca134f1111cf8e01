//! A fake Discord REST API (v10) over real HTTP, for the Discord adapter's integration tests.
//!
//! serenity reaches it through its proxy setting: with
//! `HttpBuilder::new(BOT_TOKEN).proxy(fake.url()).ratelimiter_disabled(true)`, serenity replaces
//! `https://discord.com` in each URL by the proxy, so requests arrive as
//! `http://127.0.0.1:PORT/api/v10/...`. The fake serves the routes warroom uses (see [`route`]),
//! answering as Discord does: JSON bodies that serenity's model types deserialize, `204` with no
//! body where Discord sends none, and errors as `{"message", "code"}` (with a nested `errors`
//! object for 50035 "Invalid Form Body", which serenity flattens into dotted paths). Every
//! request needs `Authorization: Bot {BOT_TOKEN}` (serenity adds the `Bot ` prefix).
//!
//! It keeps state (guilds, channels with their permission overwrites, messages, pins,
//! interaction responses, application commands), records every call, and injects faults per
//! route ([`FakeDiscord::fail`]).
//!
//! Mentions: for every message it works out who Discord would notify, from the content's
//! `<@id>`, `<@!id>`, `<@&id>`, `@everyone` and `@here` and the request's `allowed_mentions`
//! ([`Posted::pinged_users`], [`Posted::pinged_roles`], [`Posted::mass_mention`]), and answers
//! `mentions`, `mention_roles` and `mention_everyone` to match. Permissions (MENTION_EVERYONE,
//! roles' "mentionable" setting) are not modelled: the bot may mention anything.
//!
//! Interactions arrive at warroom's HTTP endpoint, not here; the test sends them itself (signed
//! with [`sign_interaction`]). warroom answers the first response in the HTTP reply, and edits
//! it (`PATCH /webhooks/{app}/{token}/messages/@original`) or adds follow-ups
//! (`POST /webhooks/{app}/{token}`) here; [`FakeDiscord::interaction_messages`] lists those
//! per token. Any token is accepted; one from [`FakeDiscord::interaction_token`] puts its
//! messages in a channel of the test's choosing, others in [`INTERACTION_CHANNEL_ID`].
//!
//! Not modelled: file uploads (multipart bodies get a 400), threads, reactions, roles and
//! members (besides [`FakeDiscord::unknown_user`]), components v2, the newer
//! `/channels/{id}/messages/pins` routes.

#![allow(dead_code)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Display;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The bot token; serenity sends it as `Authorization: Bot {BOT_TOKEN}`.
pub const BOT_TOKEN: &str = "fake-discord-bot-token.warroom";
/// The bot's user id. It differs from [`APP_ID`] (on Discord they are often equal) so that a
/// mix-up between them shows.
pub const BOT_USER_ID: u64 = 1_100_000_000_000_000_001;
/// The bot's user name.
pub const BOT_NAME: &str = "warroom";
/// The application id; webhook and command routes must name it.
pub const APP_ID: u64 = 1_100_000_000_000_000_002;
/// The guild [`FakeDiscord::start`] creates.
pub const GUILD_ID: u64 = 1_100_000_000_000_000_003;
/// The channel of interaction messages whose token did not come from
/// [`FakeDiscord::interaction_token`]; not a channel of any guild.
pub const INTERACTION_CHANNEL_ID: u64 = 1_100_000_000_000_000_004;

/// Channel types.
pub const TEXT: u8 = 0;
pub const VOICE: u8 = 2;
pub const CATEGORY: u8 = 4;
pub const ANNOUNCEMENT: u8 = 5;
pub const STAGE: u8 = 13;
pub const FORUM: u8 = 15;
const CHANNEL_TYPES: [u8; 6] = [TEXT, VOICE, CATEGORY, ANNOUNCEMENT, STAGE, FORUM];

/// Message flags.
pub const SUPPRESS_EMBEDS: u64 = 1 << 2;
pub const EPHEMERAL: u64 = 1 << 6;
pub const SUPPRESS_NOTIFICATIONS: u64 = 1 << 12;
/// The flags a bot may set on a channel message (Discord ignores the others).
const CHANNEL_MESSAGE_FLAGS: u64 = SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS;
/// The flags an interaction response or follow-up may set.
const INTERACTION_MESSAGE_FLAGS: u64 = CHANNEL_MESSAGE_FLAGS | EPHEMERAL;

/// Discord's limits.
pub const MAX_CHANNEL_NAME: usize = 100;
pub const MAX_TOPIC: usize = 1024;
pub const MAX_CONTENT: usize = 2000;
pub const MAX_ACTION_ROWS: usize = 5;
pub const MAX_ROW_COMPONENTS: usize = 5;
pub const MAX_CUSTOM_ID: usize = 100;
pub const MAX_BUTTON_LABEL: usize = 80;
pub const MAX_SELECT_OPTIONS: usize = 25;
pub const MAX_EMBEDS: usize = 10;
pub const MAX_ALLOWED_MENTION_IDS: usize = 100;
pub const MAX_PINS: usize = 50;
pub const MAX_GUILD_CHANNELS: usize = 500;
pub const MAX_CATEGORY_CHANNELS: usize = 50;
/// Chat input commands per scope (global, or one guild).
pub const MAX_COMMANDS: usize = 100;
pub const MAX_COMMAND_NAME: usize = 32;
pub const MAX_COMMAND_DESCRIPTION: usize = 100;
pub const MAX_OPTIONS: usize = 25;
pub const MAX_CHOICES: usize = 25;

/// The first id the fake hands out; each later one is one millisecond of snowflake time later
/// (ids are real snowflakes: `timestamp` fields agree with `id >> 22`).
const FIRST_SNOWFLAKE: u64 = 1_200_000_000_000_000_000;
const SNOWFLAKE_STEP: u64 = 1 << 22;
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// The routes the fake serves, as `"METHOD /path/{param}"`: the keys of [`FakeDiscord::fail`],
/// [`FakeDiscord::calls_to`] and [`Call::route`].
pub mod route {
    pub const GET_CURRENT_USER: &str = "GET /users/@me";
    pub const GET_GUILD_CHANNELS: &str = "GET /guilds/{guild_id}/channels";
    pub const CREATE_GUILD_CHANNEL: &str = "POST /guilds/{guild_id}/channels";
    pub const GET_CHANNEL: &str = "GET /channels/{channel_id}";
    pub const EDIT_CHANNEL: &str = "PATCH /channels/{channel_id}";
    pub const CREATE_MESSAGE: &str = "POST /channels/{channel_id}/messages";
    pub const GET_MESSAGE: &str = "GET /channels/{channel_id}/messages/{message_id}";
    pub const EDIT_MESSAGE: &str = "PATCH /channels/{channel_id}/messages/{message_id}";
    pub const GET_PINS: &str = "GET /channels/{channel_id}/pins";
    pub const PIN_MESSAGE: &str = "PUT /channels/{channel_id}/pins/{message_id}";
    pub const EDIT_PERMISSIONS: &str = "PUT /channels/{channel_id}/permissions/{overwrite_id}";
    pub const EDIT_ORIGINAL_RESPONSE: &str =
        "PATCH /webhooks/{application_id}/{interaction_token}/messages/@original";
    pub const CREATE_FOLLOWUP: &str = "POST /webhooks/{application_id}/{interaction_token}";
    pub const GET_GLOBAL_COMMANDS: &str = "GET /applications/{application_id}/commands";
    pub const OVERWRITE_GLOBAL_COMMANDS: &str = "PUT /applications/{application_id}/commands";
    pub const GET_GUILD_COMMANDS: &str =
        "GET /applications/{application_id}/guilds/{guild_id}/commands";
    pub const OVERWRITE_GUILD_COMMANDS: &str =
        "PUT /applications/{application_id}/guilds/{guild_id}/commands";

    pub const ALL: [&str; 17] = [
        GET_CURRENT_USER,
        GET_GUILD_CHANNELS,
        CREATE_GUILD_CHANNEL,
        GET_CHANNEL,
        EDIT_CHANNEL,
        CREATE_MESSAGE,
        GET_MESSAGE,
        EDIT_MESSAGE,
        GET_PINS,
        PIN_MESSAGE,
        EDIT_PERMISSIONS,
        EDIT_ORIGINAL_RESPONSE,
        CREATE_FOLLOWUP,
        GET_GLOBAL_COMMANDS,
        OVERWRITE_GLOBAL_COMMANDS,
        GET_GUILD_COMMANDS,
        OVERWRITE_GUILD_COMMANDS,
    ];
}

/// One request as received (faulted and refused ones included).
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    /// The path after `/api/v10`, e.g. `/channels/123/messages`, without the query string.
    pub path: String,
    /// The route (a [`route`] constant); `None` for a path or method the fake does not serve.
    pub route: Option<&'static str>,
    /// The JSON body; `Null` when there is none or it is not JSON.
    pub body: Value,
    /// Whether it carried `Authorization: Bot {BOT_TOKEN}`.
    pub authorized: bool,
    /// `X-Audit-Log-Reason`, percent-decoded.
    pub audit_log_reason: Option<String>,
}

/// A guild channel (categories included).
#[derive(Clone, Debug, PartialEq)]
pub struct Channel {
    pub id: String,
    pub guild_id: String,
    /// As Discord stores it: text, announcement and forum channel names are lowercased, with
    /// whitespace turned into `-`.
    pub name: String,
    /// [`TEXT`], [`CATEGORY`], ...
    pub kind: u8,
    pub topic: Option<String>,
    pub parent_id: Option<String>,
    pub overwrites: Vec<Overwrite>,
}

/// A permission overwrite on a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overwrite {
    /// A role id (the guild id is `@everyone`) or a user id.
    pub id: String,
    /// 0 role, 1 member.
    pub kind: u8,
    pub allow: u64,
    pub deny: u64,
}

/// A message the bot sent, as it stands (or, in [`FakeDiscord::interaction_messages`], as it
/// stood after one request).
#[derive(Clone, Debug, PartialEq)]
pub struct Posted {
    pub id: String,
    pub channel_id: String,
    pub content: String,
    /// The action rows as sent (a JSON array, empty when there are none).
    pub components: Value,
    /// The embeds as sent (a JSON array, empty when there are none).
    pub embeds: Value,
    /// The `allowed_mentions` in effect: the request's, or for an edit without one the
    /// message's earlier one; `None` when none was ever given (everything may ping).
    pub allowed_mentions: Option<Value>,
    /// The users the content mentions that the allowed mentions let through, in order of first
    /// mention. Discord does not push a notification for a mention an edit adds, but it still
    /// records and highlights it, so the fake counts edits like new messages.
    pub pinged_users: Vec<String>,
    /// The roles the content mentions that the allowed mentions let through.
    pub pinged_roles: Vec<String>,
    /// `@everyone` or `@here` in the content, and allowed.
    pub mass_mention: bool,
    /// Whether it has been edited (for an interaction's original response: edited again after
    /// the first `PATCH @original`).
    pub edited: bool,
    /// The message flags kept (Discord drops those a bot may not set).
    pub flags: u64,
    /// Whether it is an interaction's original response (`@original`).
    pub original: bool,
}

/// What the next request to a route gets instead of (or before) its answer.
#[derive(Clone, Debug)]
pub enum Fault {
    /// HTTP 429 `{"message": "You are being rate limited.", "retry_after": X, "global": false}`
    /// with `Retry-After` (whole seconds, rounded up) and the `X-RateLimit-*` headers.
    RateLimited { retry_after_secs: f64 },
    /// This 5xx status, with `{"message": "500: Internal Server Error", "code": 0}`.
    ServerError(u16),
    /// Wait this long (or until the fake is dropped), then answer as usual.
    Hang(Duration),
    /// This status with `{"message", "code"}`, e.g. 403, 50013, "Missing Permissions".
    Error {
        status: u16,
        code: i64,
        message: String,
    },
}

struct ChannelState {
    info: Channel,
    position: u16,
    last_message_id: Option<String>,
    /// Pinned message ids, in pinning order.
    pins: Vec<String>,
}

#[derive(Clone, PartialEq)]
enum Source {
    /// `POST /channels/{id}/messages`.
    Channel,
    /// An interaction's original response or a follow-up.
    Interaction { token: String },
}

struct MessageState {
    posted: Posted,
    source: Source,
    /// The snowflake whose time is the `edited_timestamp`.
    edited_at: Option<u64>,
    /// The message type: 0 default, 20 chat input command (an interaction's original response).
    kind: u8,
}

#[derive(Default)]
struct FakeState {
    calls: Vec<Call>,
    faults: HashMap<&'static str, VecDeque<Fault>>,
    delay: Option<Duration>,
    guilds: Vec<String>,
    channels: Vec<ChannelState>,
    messages: Vec<MessageState>,
    /// Per interaction token, a snapshot of the message after each accepted request.
    interactions: HashMap<String, Vec<Posted>>,
    /// The channel of each token handed out by `interaction_token`.
    interaction_channels: HashMap<String, String>,
    /// Application commands per guild (`None`: global), as last answered.
    commands: HashMap<Option<String>, Vec<Value>>,
    unknown_users: HashSet<String>,
    ids_issued: u64,
    tokens_issued: u64,
}

impl FakeState {
    fn next_id(&mut self) -> u64 {
        let id = FIRST_SNOWFLAKE + self.ids_issued * SNOWFLAKE_STEP;
        self.ids_issued += 1;
        id
    }

    fn next_snowflake(&mut self) -> String {
        self.next_id().to_string()
    }

    fn has_guild(&self, guild: &str) -> bool {
        self.guilds.iter().any(|g| g == guild)
    }

    fn find_channel(&self, id: &str) -> Option<usize> {
        self.channels.iter().position(|c| c.info.id == id)
    }

    fn find_message(&self, channel_id: &str, id: &str) -> Option<usize> {
        self.messages
            .iter()
            .position(|m| m.posted.channel_id == channel_id && m.posted.id == id)
    }

    fn find_original(&self, token: &str) -> Option<usize> {
        self.messages.iter().position(|m| {
            m.posted.original
                && m.source
                    == Source::Interaction {
                        token: token.into(),
                    }
        })
    }

    /// A new channel, as given (validated and normalized by the caller).
    fn new_channel(
        &mut self,
        guild: &str,
        name: String,
        kind: u8,
        topic: Option<String>,
        parent_id: Option<String>,
        overwrites: Vec<Overwrite>,
    ) -> usize {
        let id = self.next_snowflake();
        let position = self
            .channels
            .iter()
            .filter(|c| c.info.guild_id == guild)
            .count() as u16;
        self.channels.push(ChannelState {
            info: Channel {
                id,
                guild_id: guild.to_string(),
                name,
                kind,
                topic,
                parent_id,
                overwrites,
            },
            position,
            last_message_id: None,
            pins: Vec::new(),
        });
        self.channels.len() - 1
    }
}

pub struct FakeDiscord {
    url: String,
    state: Arc<Mutex<FakeState>>,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        // Hanging requests stop waiting and end, so their connections close.
        let _ = self.shutdown.send(true);
        self.task.abort();
    }
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<FakeState>>,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl FakeDiscord {
    /// Serve on `127.0.0.1` (a free port), with one guild, [`GUILD_ID`], and no channels.
    pub async fn start() -> FakeDiscord {
        let state = Arc::new(Mutex::new(FakeState {
            guilds: vec![GUILD_ID.to_string()],
            ..FakeState::default()
        }));
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let shared = Shared {
            state: state.clone(),
            shutdown: shutdown_rx,
        };
        let app = Router::new().fallback(api).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeDiscord {
            url,
            state,
            shutdown,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`, for serenity's `HttpBuilder::proxy`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every request, in order, faulted and refused ones included.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The bodies of the requests to one route (a [`route`] constant), in order.
    pub fn calls_to(&self, route: &str) -> Vec<Value> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.route == Some(route))
            .map(|c| c.body.clone())
            .collect()
    }

    /// The next request to `route` (a [`route`] constant) gets `fault`; several calls queue
    /// several faults, used in order. Faults come before the token check.
    pub fn fail(&self, route: &str, fault: Fault) {
        let Some(key) = route::ALL.iter().find(|r| **r == route) else {
            panic!(
                "FakeDiscord::fail: no route {route:?}; the routes are {:?}",
                route::ALL
            );
        };
        self.lock().faults.entry(key).or_default().push_back(fault);
    }

    /// While `Some`, every request waits this long before it is answered.
    pub fn slow_everything(&self, delay: Option<Duration>) {
        self.lock().delay = delay;
    }

    /// From now on, a member permission overwrite for this user fails with 404 Unknown User,
    /// and mentions of the user notify nobody.
    pub fn unknown_user(&self, id: impl Display) {
        self.lock().unknown_users.insert(id.to_string());
    }

    /// Add a guild (no channels).
    pub fn add_guild(&self, id: impl Display) {
        let mut state = self.lock();
        let id = id.to_string();
        assert!(!state.has_guild(&id), "FakeDiscord::add_guild: {id} exists");
        state.guilds.push(id);
    }

    /// A category that exists before the test. Returns its id.
    pub fn add_category(&self, guild: impl Display, name: &str) -> String {
        let mut state = self.lock();
        let guild = guild.to_string();
        assert!(
            state.has_guild(&guild),
            "FakeDiscord::add_category: no guild {guild}"
        );
        let i = state.new_channel(&guild, name.to_string(), CATEGORY, None, None, vec![]);
        state.channels[i].info.id.clone()
    }

    /// A text channel that exists before the test, in a category or not; its name is
    /// normalized as Discord does. Returns its id.
    pub fn add_channel(&self, guild: impl Display, name: &str, parent: Option<&str>) -> String {
        let mut state = self.lock();
        let guild = guild.to_string();
        assert!(
            state.has_guild(&guild),
            "FakeDiscord::add_channel: no guild {guild}"
        );
        if let Some(parent) = parent {
            assert!(
                state.channels.iter().any(|c| c.info.id == parent
                    && c.info.guild_id == guild
                    && c.info.kind == CATEGORY),
                "FakeDiscord::add_channel: no category {parent} in guild {guild}"
            );
        }
        let i = state.new_channel(
            &guild,
            normalize_name(name, TEXT),
            TEXT,
            None,
            parent.map(str::to_string),
            vec![],
        );
        state.channels[i].info.id.clone()
    }

    /// The channels of a guild (categories included), in creation order.
    pub fn channels(&self, guild: impl Display) -> Vec<Channel> {
        let guild = guild.to_string();
        self.lock()
            .channels
            .iter()
            .filter(|c| c.info.guild_id == guild)
            .map(|c| c.info.clone())
            .collect()
    }

    pub fn channel(&self, id: impl Display) -> Option<Channel> {
        let state = self.lock();
        state
            .find_channel(&id.to_string())
            .map(|i| state.channels[i].info.clone())
    }

    /// The first channel of a guild with this (stored) name.
    pub fn channel_named(&self, guild: impl Display, name: &str) -> Option<Channel> {
        let guild = guild.to_string();
        self.lock()
            .channels
            .iter()
            .find(|c| c.info.guild_id == guild && c.info.name == name)
            .map(|c| c.info.clone())
    }

    /// The messages sent to a channel with `POST /channels/{id}/messages`, in order, as edited
    /// (interaction messages are in [`FakeDiscord::interaction_messages`]).
    pub fn messages(&self, channel_id: impl Display) -> Vec<Posted> {
        let channel_id = channel_id.to_string();
        self.lock()
            .messages
            .iter()
            .filter(|m| m.source == Source::Channel && m.posted.channel_id == channel_id)
            .map(|m| m.posted.clone())
            .collect()
    }

    /// The ids of the messages pinned in a channel, in pinning order.
    pub fn pins(&self, channel_id: impl Display) -> Vec<String> {
        let state = self.lock();
        state
            .find_channel(&channel_id.to_string())
            .map(|i| state.channels[i].pins.clone())
            .unwrap_or_default()
    }

    /// A new interaction token whose original response and follow-ups are messages of
    /// `channel_id` (for the interaction payloads the test sends).
    pub fn interaction_token(&self, channel_id: impl Display) -> String {
        let mut state = self.lock();
        state.tokens_issued += 1;
        let token = format!("fake-interaction-token-{}", state.tokens_issued);
        state
            .interaction_channels
            .insert(token.clone(), channel_id.to_string());
        token
    }

    /// What the user saw for an interaction: one entry per accepted `PATCH @original` (the
    /// original response as it stood after it, [`Posted::original`] set) or follow-up, in
    /// order.
    pub fn interaction_messages(&self, token: &str) -> Vec<Posted> {
        self.lock()
            .interactions
            .get(token)
            .cloned()
            .unwrap_or_default()
    }

    /// The application commands of a guild (`None`: the global ones), as last answered.
    pub fn commands(&self, guild: Option<&str>) -> Vec<Value> {
        self.lock()
            .commands
            .get(&guild.map(str::to_string))
            .cloned()
            .unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------
// Interaction signatures

/// The fixed Ed25519 key the test "Discord" signs interactions with.
fn signing_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])
}

/// The application's public key, hex-encoded as the Developer Portal shows it (what warroom
/// is configured with).
pub fn public_key_hex() -> String {
    hex::encode(signing_key().verifying_key().to_bytes())
}

/// The `X-Signature-Ed25519` header Discord sends with an interaction: the hex-encoded
/// signature of `timestamp ‖ body` (`timestamp` is the `X-Signature-Timestamp` header).
pub fn sign_interaction(timestamp: &str, body: &[u8]) -> String {
    use ed25519_dalek::Signer;
    let mut message = timestamp.as_bytes().to_vec();
    message.extend_from_slice(body);
    hex::encode(signing_key().sign(&message).to_bytes())
}

// ---------------------------------------------------------------------------------------
// Routing

/// A request the fake serves, with its path parameters.
enum Endpoint {
    CurrentUser,
    GuildChannels { guild: String },
    CreateChannel { guild: String },
    GetChannel { channel: String },
    EditChannel { channel: String },
    CreateMessage { channel: String },
    GetMessage { channel: String, message: String },
    EditMessage { channel: String, message: String },
    Pins { channel: String },
    Pin { channel: String, message: String },
    EditPermissions { channel: String, target: String },
    EditOriginal { app: String, token: String },
    Followup { app: String, token: String },
    Commands { app: String, guild: Option<String> },
    OverwriteCommands { app: String, guild: Option<String> },
}

fn match_route(method: &str, segments: &[&str]) -> Option<(&'static str, Endpoint)> {
    use Endpoint::*;
    let s = |text: &&str| text.to_string();
    Some(match (method, segments) {
        ("GET", ["users", "@me"]) => (route::GET_CURRENT_USER, CurrentUser),
        ("GET", ["guilds", g, "channels"]) => {
            (route::GET_GUILD_CHANNELS, GuildChannels { guild: s(g) })
        }
        ("POST", ["guilds", g, "channels"]) => {
            (route::CREATE_GUILD_CHANNEL, CreateChannel { guild: s(g) })
        }
        ("GET", ["channels", c]) => (route::GET_CHANNEL, GetChannel { channel: s(c) }),
        ("PATCH", ["channels", c]) => (route::EDIT_CHANNEL, EditChannel { channel: s(c) }),
        ("POST", ["channels", c, "messages"]) => {
            (route::CREATE_MESSAGE, CreateMessage { channel: s(c) })
        }
        ("GET", ["channels", c, "messages", m]) => (
            route::GET_MESSAGE,
            GetMessage {
                channel: s(c),
                message: s(m),
            },
        ),
        ("PATCH", ["channels", c, "messages", m]) => (
            route::EDIT_MESSAGE,
            EditMessage {
                channel: s(c),
                message: s(m),
            },
        ),
        ("GET", ["channels", c, "pins"]) => (route::GET_PINS, Pins { channel: s(c) }),
        ("PUT", ["channels", c, "pins", m]) => (
            route::PIN_MESSAGE,
            Pin {
                channel: s(c),
                message: s(m),
            },
        ),
        ("PUT", ["channels", c, "permissions", t]) => (
            route::EDIT_PERMISSIONS,
            EditPermissions {
                channel: s(c),
                target: s(t),
            },
        ),
        ("PATCH", ["webhooks", a, t, "messages", "@original"]) => (
            route::EDIT_ORIGINAL_RESPONSE,
            EditOriginal {
                app: s(a),
                token: s(t),
            },
        ),
        ("POST", ["webhooks", a, t]) => (
            route::CREATE_FOLLOWUP,
            Followup {
                app: s(a),
                token: s(t),
            },
        ),
        ("GET", ["applications", a, "commands"]) => (
            route::GET_GLOBAL_COMMANDS,
            Commands {
                app: s(a),
                guild: None,
            },
        ),
        ("PUT", ["applications", a, "commands"]) => (
            route::OVERWRITE_GLOBAL_COMMANDS,
            OverwriteCommands {
                app: s(a),
                guild: None,
            },
        ),
        ("GET", ["applications", a, "guilds", g, "commands"]) => (
            route::GET_GUILD_COMMANDS,
            Commands {
                app: s(a),
                guild: Some(s(g)),
            },
        ),
        ("PUT", ["applications", a, "guilds", g, "commands"]) => (
            route::OVERWRITE_GUILD_COMMANDS,
            OverwriteCommands {
                app: s(a),
                guild: Some(s(g)),
            },
        ),
        _ => return None,
    })
}

/// Wait `delay`; `false` if the fake was dropped meanwhile.
async fn pause(delay: Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = shutdown.wait_for(|down| *down) => false,
    }
}

fn shutting_down() -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, 0, "fake Discord shut down").into_response()
}

async fn api(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(path) = uri.path().strip_prefix("/api/v10") else {
        return error(StatusCode::NOT_FOUND, 0, "404: Not Found").into_response();
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let matched = match_route(method.as_str(), &segments);
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(format!("Bot {BOT_TOKEN}").as_str());
    let body = parse_body(&headers, &body);

    let (fault, delay) = {
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.calls.push(Call {
            method: method.to_string(),
            path: path.to_string(),
            route: matched.as_ref().map(|(key, _)| *key),
            body: body.as_ref().ok().cloned().flatten().unwrap_or(Value::Null),
            authorized,
            audit_log_reason: headers
                .get("x-audit-log-reason")
                .and_then(|v| v.to_str().ok())
                .map(percent_decode),
        });
        let fault = matched
            .as_ref()
            .and_then(|(key, _)| state.faults.get_mut(key))
            .and_then(|queue| queue.pop_front());
        (fault, state.delay)
    };
    if let Some(delay) = delay {
        if !pause(delay, shared.shutdown.clone()).await {
            return shutting_down();
        }
    }

    let Some((route, endpoint)) = matched else {
        let served = ["GET", "POST", "PUT", "PATCH", "DELETE"]
            .iter()
            .any(|m| match_route(m, &segments).is_some());
        let refusal = if served {
            error(StatusCode::METHOD_NOT_ALLOWED, 0, "405: Method Not Allowed")
        } else {
            error(StatusCode::NOT_FOUND, 0, "404: Not Found")
        };
        return refusal.into_response();
    };
    match fault {
        Some(Fault::Hang(delay)) if !pause(delay, shared.shutdown.clone()).await => {
            return shutting_down();
        }
        Some(Fault::Hang(_)) | None => {}
        Some(fault) => return fault_response(fault, route),
    }
    if !authorized {
        return error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized").into_response();
    }
    let body = match body {
        Ok(body) => body,
        Err(refusal) => return refusal.into_response(),
    };

    let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    dispatch(&mut state, endpoint, body).unwrap_or_else(IntoResponse::into_response)
}

/// An answer or an error answer: handlers use `?` on validation.
type Reply = Result<Response, Refusal>;

fn dispatch(state: &mut FakeState, endpoint: Endpoint, body: Option<Value>) -> Reply {
    use Endpoint::*;
    match endpoint {
        CurrentUser => Ok(ok(current_user_json())),
        GuildChannels { guild } => guild_channels(state, &guild),
        CreateChannel { guild } => create_channel(state, &guild, object(body)?),
        GetChannel { channel } => {
            let i = channel_index(state, &channel)?;
            Ok(ok(channel_json(&state.channels[i])))
        }
        EditChannel { channel } => edit_channel(state, &channel, object(body)?),
        CreateMessage { channel } => create_message(state, &channel, object(body)?),
        GetMessage { channel, message } => {
            channel_index(state, &channel)?;
            let m = message_index(state, &channel, &message)?;
            Ok(ok(message_json(state, m)))
        }
        EditMessage { channel, message } => edit_message(state, &channel, &message, object(body)?),
        Pins { channel } => pins(state, &channel),
        Pin { channel, message } => pin(state, &channel, &message),
        EditPermissions { channel, target } => {
            edit_permissions(state, &channel, &target, object(body)?)
        }
        EditOriginal { app, token } => {
            check_webhook_app(&app)?;
            edit_original(state, &token, object(body)?)
        }
        Followup { app, token } => {
            check_webhook_app(&app)?;
            followup(state, &token, object(body)?)
        }
        Commands { app, guild } => {
            check_command_scope(state, &app, guild.as_deref())?;
            Ok(ok(Value::Array(
                state.commands.get(&guild).cloned().unwrap_or_default(),
            )))
        }
        OverwriteCommands { app, guild } => {
            check_command_scope(state, &app, guild.as_deref())?;
            overwrite_commands(state, guild, body)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Requests

/// The JSON body: `Ok(None)` when empty; a 400 for a multipart body (file uploads are not
/// modelled) or invalid JSON.
fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<Option<Value>, Refusal> {
    if body.is_empty() {
        return Ok(None);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("multipart/") {
        return Err(error(
            StatusCode::BAD_REQUEST,
            0,
            "fake Discord: multipart bodies (file uploads) are not supported",
        ));
    }
    serde_json::from_slice(body).map(Some).map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            50109,
            "The request body contains invalid JSON.",
        )
    })
}

/// An object body; no body is an empty object.
fn object(body: Option<Value>) -> Result<Map<String, Value>, Refusal> {
    match body {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(_) => Err(invalid_form(
            vec![],
            "DICT_TYPE_CONVERT",
            "Only dictionaries may be used in a DictType",
        )),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A path of field names and array indexes, outermost first, for [`invalid_form`].
macro_rules! path {
    ($($part:expr),* $(,)?) => { vec![$($part.to_string()),*] };
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

fn is_snowflake(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 20
        && text.bytes().all(|b| b.is_ascii_digit())
        && text.parse::<u64>().is_ok()
}

/// A snowflake given as a string or a number.
fn snowflake(value: &Value, path: Vec<String>) -> Result<String, Refusal> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_u64() => n.to_string(),
        other => other.to_string(),
    };
    if is_snowflake(&text) {
        Ok(text)
    } else {
        Err(invalid_form(
            path,
            "NUMBER_TYPE_COERCE",
            format!("Value \"{text}\" is not snowflake."),
        ))
    }
}

/// A permission bit set given as a string of an integer (as Discord sends them) or a number.
fn permission_bits(value: Option<&Value>, path: Vec<String>) -> Result<u64, Refusal> {
    match value {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) if n.is_u64() => Ok(n.as_u64().unwrap()),
        Some(Value::String(s)) if s.parse::<u64>().is_ok() => Ok(s.parse().unwrap()),
        Some(other) => Err(invalid_form(
            path,
            "NUMBER_TYPE_COERCE",
            format!(
                "Value \"{}\" is not int.",
                other.as_str().unwrap_or(&other.to_string())
            ),
        )),
    }
}

/// A string field: `None` when absent, `Some(None)` when null.
fn string_field(
    map: &Map<String, Value>,
    key: &str,
    path: Vec<String>,
) -> Result<Option<Option<String>>, Refusal> {
    match map.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(other) => Err(invalid_form(
            path,
            "BASE_TYPE_STRING",
            format!("Could not interpret \"{other}\" as string."),
        )),
    }
}

/// An integer field; `None` when absent or null.
fn int_field(
    map: &Map<String, Value>,
    key: &str,
    path: Vec<String>,
) -> Result<Option<u64>, Refusal> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_u64() => Ok(n.as_u64()),
        Some(other) => Err(invalid_form(
            path,
            "NUMBER_TYPE_COERCE",
            format!("Value \"{other}\" is not int."),
        )),
    }
}

/// An array field: `None` when absent, `Some(None)` when null.
fn array_field(
    map: &Map<String, Value>,
    key: &str,
    path: Vec<String>,
) -> Result<Option<Option<Vec<Value>>>, Refusal> {
    match map.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::Array(items)) => Ok(Some(Some(items.clone()))),
        Some(_) => Err(invalid_form(
            path,
            "LIST_TYPE_CONVERT",
            "Only iterables may be used in a ListType",
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Responses

fn ok(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn created(body: Value) -> Response {
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// A refused request: a status and Discord's error body.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    body: Value,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

/// Discord's error body, `{"message", "code"}`.
fn error(status: StatusCode, code: i64, message: &str) -> Refusal {
    Refusal {
        status,
        body: json!({ "message": message, "code": code }),
    }
}

/// 400 "Invalid Form Body" (50035) with one error at `path` (field names and array indexes,
/// outermost first; empty for the body itself), nested as Discord nests them.
fn invalid_form(path: Vec<String>, code: &str, message: impl Into<String>) -> Refusal {
    let mut errors = json!({ "_errors": [{ "code": code, "message": message.into() }] });
    for key in path.into_iter().rev() {
        let mut outer = Map::new();
        outer.insert(key, errors);
        errors = Value::Object(outer);
    }
    Refusal {
        status: StatusCode::BAD_REQUEST,
        body: json!({ "message": "Invalid Form Body", "code": 50035, "errors": errors }),
    }
}

fn unknown_channel() -> Refusal {
    error(StatusCode::NOT_FOUND, 10003, "Unknown Channel")
}

fn unknown_message() -> Refusal {
    error(StatusCode::NOT_FOUND, 10008, "Unknown Message")
}

fn fault_response(fault: Fault, route: &str) -> Response {
    match fault {
        Fault::RateLimited { retry_after_secs } => {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(json!({
                    "message": "You are being rate limited.",
                    "retry_after": retry_after_secs,
                    "global": false,
                })),
            )
                .into_response();
            let reset = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64()
                + retry_after_secs;
            let headers = response.headers_mut();
            let mut set = |name: &'static str, value: String| {
                headers.insert(name, HeaderValue::from_str(&value).unwrap());
            };
            set("retry-after", (retry_after_secs.ceil() as u64).to_string());
            set("x-ratelimit-limit", "5".into());
            set("x-ratelimit-remaining", "0".into());
            set("x-ratelimit-reset", format!("{reset:.3}"));
            set("x-ratelimit-reset-after", format!("{retry_after_secs:.3}"));
            set("x-ratelimit-bucket", bucket(route));
            set("x-ratelimit-scope", "user".into());
            response
        }
        Fault::ServerError(status) => {
            let status = StatusCode::from_u16(status).unwrap();
            let message = format!(
                "{}: {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("Server Error")
            );
            error(status, 0, &message).into_response()
        }
        Fault::Error {
            status,
            code,
            message,
        } => error(StatusCode::from_u16(status).unwrap(), code, &message).into_response(),
        Fault::Hang(_) => unreachable!("hangs wait, then answer"),
    }
}

/// A stable, opaque rate limit bucket name for a route (Discord's are hashes).
fn bucket(route: &str) -> String {
    // FNV-1a.
    let hash = route.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// A snowflake's time, as Discord writes timestamps.
fn timestamp(id: u64) -> String {
    let millis = (id >> 22) + DISCORD_EPOCH_MS;
    chrono::DateTime::from_timestamp_millis(millis as i64)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string()
}

fn current_user_json() -> Value {
    json!({
        "id": BOT_USER_ID.to_string(),
        "username": BOT_NAME,
        "discriminator": "0000",
        "global_name": null,
        "avatar": null,
        "banner": null,
        "accent_color": null,
        "bot": true,
        "system": false,
        "mfa_enabled": false,
        "locale": "en-US",
        "verified": true,
        "email": null,
        "flags": 0,
        "public_flags": 0,
    })
}

/// A user as a message's `author` or `mentions` entry.
fn user_json(id: &str) -> Value {
    if id == BOT_USER_ID.to_string() {
        json!({
            "id": id,
            "username": BOT_NAME,
            "discriminator": "0000",
            "global_name": null,
            "avatar": null,
            "bot": true,
            "public_flags": 0,
        })
    } else {
        json!({
            "id": id,
            "username": format!("user{id}"),
            "discriminator": "0",
            "global_name": null,
            "avatar": null,
            "public_flags": 0,
        })
    }
}

fn overwrite_json(o: &Overwrite) -> Value {
    json!({
        "id": o.id,
        "type": o.kind,
        "allow": o.allow.to_string(),
        "deny": o.deny.to_string(),
    })
}

fn channel_json(c: &ChannelState) -> Value {
    let info = &c.info;
    let mut channel = json!({
        "id": info.id,
        "type": info.kind,
        "guild_id": info.guild_id,
        "name": info.name,
        "position": c.position,
        "flags": 0,
        "parent_id": info.parent_id,
        "permission_overwrites": info.overwrites.iter().map(overwrite_json).collect::<Vec<_>>(),
        "nsfw": false,
    });
    match info.kind {
        CATEGORY => {}
        VOICE | STAGE => {
            channel["bitrate"] = json!(64000);
            channel["user_limit"] = json!(0);
            channel["rtc_region"] = Value::Null;
            channel["last_message_id"] = json!(c.last_message_id);
            channel["rate_limit_per_user"] = json!(0);
        }
        _ => {
            channel["topic"] = json!(info.topic);
            channel["last_message_id"] = json!(c.last_message_id);
            channel["rate_limit_per_user"] = json!(0);
        }
    }
    channel
}

fn message_json(state: &FakeState, m: usize) -> Value {
    let m = &state.messages[m];
    let p = &m.posted;
    let pinned = state
        .find_channel(&p.channel_id)
        .is_some_and(|c| state.channels[c].pins.contains(&p.id));
    let mut message = json!({
        "id": p.id,
        "channel_id": p.channel_id,
        "author": user_json(&BOT_USER_ID.to_string()),
        "content": p.content,
        "timestamp": timestamp(p.id.parse().unwrap()),
        "edited_timestamp": m.edited_at.map(timestamp),
        "tts": false,
        "mention_everyone": p.mass_mention,
        "mentions": p.pinged_users.iter().map(|u| user_json(u)).collect::<Vec<_>>(),
        "mention_roles": p.pinged_roles,
        "attachments": [],
        "embeds": p.embeds,
        "components": p.components,
        "pinned": pinned,
        "type": m.kind,
        "flags": p.flags,
    });
    if matches!(m.source, Source::Interaction { .. }) {
        message["webhook_id"] = json!(APP_ID.to_string());
        message["application_id"] = json!(APP_ID.to_string());
    }
    message
}

// ---------------------------------------------------------------------------------------
// Channels

fn channel_index(state: &FakeState, id: &str) -> Result<usize, Refusal> {
    state.find_channel(id).ok_or_else(unknown_channel)
}

/// Discord's rule: text-like channel names are lowercased, whitespace becomes `-`.
fn normalize_name(name: &str, kind: u8) -> String {
    match kind {
        TEXT | ANNOUNCEMENT | FORUM => name
            .chars()
            .map(|c| if c.is_whitespace() { '-' } else { c })
            .collect::<String>()
            .to_lowercase(),
        _ => name.to_string(),
    }
}

fn check_name(name: Option<Option<String>>, required: bool) -> Result<Option<String>, Refusal> {
    match name {
        None | Some(None) if required => Err(invalid_form(
            path!["name"],
            "BASE_TYPE_REQUIRED",
            "This field is required",
        )),
        None | Some(None) => Ok(None),
        Some(Some(name)) if !(1..=MAX_CHANNEL_NAME).contains(&chars(&name)) => Err(invalid_form(
            path!["name"],
            "BASE_TYPE_BAD_LENGTH",
            format!("Must be between 1 and {MAX_CHANNEL_NAME} in length."),
        )),
        Some(Some(name)) => Ok(Some(name)),
    }
}

fn check_topic(topic: &Option<String>) -> Result<(), Refusal> {
    match topic {
        Some(topic) if chars(topic) > MAX_TOPIC => Err(invalid_form(
            path!["topic"],
            "BASE_TYPE_MAX_LENGTH",
            format!("Must be {MAX_TOPIC} or fewer in length."),
        )),
        _ => Ok(()),
    }
}

/// A channel's new parent: an existing category of the guild with room for one more channel
/// (`channel` is the one moving, if it exists).
fn check_parent(
    state: &FakeState,
    guild: &str,
    kind: u8,
    parent: &str,
    channel: Option<&str>,
) -> Result<(), Refusal> {
    if kind == CATEGORY {
        return Err(invalid_form(
            path!["parent_id"],
            "CHANNEL_PARENT_INVALID_TYPE",
            "Categories cannot have subcategories",
        ));
    }
    let is_category = state
        .channels
        .iter()
        .any(|c| c.info.id == parent && c.info.guild_id == guild && c.info.kind == CATEGORY);
    if !is_category {
        return Err(invalid_form(
            path!["parent_id"],
            "CHANNEL_PARENT_INVALID",
            "Category does not exist",
        ));
    }
    let children = state
        .channels
        .iter()
        .filter(|c| {
            c.info.parent_id.as_deref() == Some(parent) && Some(c.info.id.as_str()) != channel
        })
        .count();
    if children >= MAX_CATEGORY_CHANNELS {
        return Err(invalid_form(
            path!["parent_id"],
            "CHANNEL_PARENT_MAX_CHANNELS",
            format!("Maximum number of channels in category reached ({MAX_CATEGORY_CHANNELS})"),
        ));
    }
    Ok(())
}

/// `permission_overwrites` of a channel create or edit.
fn overwrites_field(state: &FakeState, items: Vec<Value>) -> Result<Vec<Overwrite>, Refusal> {
    let mut overwrites: Vec<Overwrite> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(map) = item else {
            return Err(invalid_form(
                path!["permission_overwrites", i],
                "DICT_TYPE_CONVERT",
                "Only dictionaries may be used in a DictType",
            ));
        };
        let id = match map.get("id") {
            Some(id) => snowflake(id, path!["permission_overwrites", i, "id"])?,
            None => {
                return Err(invalid_form(
                    path!["permission_overwrites", i, "id"],
                    "BASE_TYPE_REQUIRED",
                    "This field is required",
                ));
            }
        };
        let kind = overwrite_kind(map, path!["permission_overwrites", i, "type"])?;
        let overwrite = Overwrite {
            kind,
            allow: permission_bits(map.get("allow"), path!["permission_overwrites", i, "allow"])?,
            deny: permission_bits(map.get("deny"), path!["permission_overwrites", i, "deny"])?,
            id,
        };
        if overwrite.kind == 1 && state.unknown_users.contains(&overwrite.id) {
            return Err(error(StatusCode::NOT_FOUND, 10013, "Unknown User"));
        }
        overwrites.retain(|o| o.id != overwrite.id);
        overwrites.push(overwrite);
    }
    Ok(overwrites)
}

fn overwrite_kind(map: &Map<String, Value>, path: Vec<String>) -> Result<u8, Refusal> {
    match map.get("type") {
        Some(Value::Number(n)) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => {
            Ok(n.as_u64().unwrap() as u8)
        }
        None | Some(Value::Null) => Err(invalid_form(
            path,
            "BASE_TYPE_REQUIRED",
            "This field is required",
        )),
        Some(_) => Err(invalid_form(
            path,
            "BASE_TYPE_CHOICES",
            "Value must be one of {0, 1}.",
        )),
    }
}

fn guild_channels(state: &mut FakeState, guild: &str) -> Reply {
    if !state.has_guild(guild) {
        return Err(error(StatusCode::NOT_FOUND, 10004, "Unknown Guild"));
    }
    Ok(ok(Value::Array(
        state
            .channels
            .iter()
            .filter(|c| c.info.guild_id == guild)
            .map(channel_json)
            .collect(),
    )))
}

fn create_channel(state: &mut FakeState, guild: &str, body: Map<String, Value>) -> Reply {
    if !state.has_guild(guild) {
        return Err(error(StatusCode::NOT_FOUND, 10004, "Unknown Guild"));
    }
    let kind = match int_field(&body, "type", path!["type"])?.map(u8::try_from) {
        None => TEXT,
        Some(Ok(kind)) if CHANNEL_TYPES.contains(&kind) => kind,
        Some(_) => {
            return Err(invalid_form(
                path!["type"],
                "BASE_TYPE_CHOICES",
                format!("Value must be one of {CHANNEL_TYPES:?}."),
            ));
        }
    };
    let name = check_name(string_field(&body, "name", path!["name"])?, true)?.unwrap();
    let topic = string_field(&body, "topic", path!["topic"])?.flatten();
    check_topic(&topic)?;
    let parent_id = match body.get("parent_id") {
        None | Some(Value::Null) => None,
        Some(parent) => {
            let parent = snowflake(parent, path!["parent_id"])?;
            check_parent(state, guild, kind, &parent, None)?;
            Some(parent)
        }
    };
    let overwrites = match array_field(
        &body,
        "permission_overwrites",
        path!["permission_overwrites"],
    )? {
        Some(Some(items)) => overwrites_field(state, items)?,
        _ => vec![],
    };
    let in_guild = state
        .channels
        .iter()
        .filter(|c| c.info.guild_id == guild)
        .count();
    if in_guild >= MAX_GUILD_CHANNELS {
        return Err(error(
            StatusCode::BAD_REQUEST,
            30013,
            &format!("Maximum number of guild channels reached ({MAX_GUILD_CHANNELS})"),
        ));
    }
    // Only text-like channels have a topic.
    let topic = if matches!(kind, TEXT | ANNOUNCEMENT | FORUM) {
        topic.filter(|t| !t.is_empty())
    } else {
        None
    };
    let i = state.new_channel(
        guild,
        normalize_name(&name, kind),
        kind,
        topic,
        parent_id,
        overwrites,
    );
    Ok(created(channel_json(&state.channels[i])))
}

fn edit_channel(state: &mut FakeState, id: &str, body: Map<String, Value>) -> Reply {
    let i = channel_index(state, id)?;
    let (guild, kind) = (
        state.channels[i].info.guild_id.clone(),
        state.channels[i].info.kind,
    );
    let name = check_name(string_field(&body, "name", path!["name"])?, false)?;
    let topic = string_field(&body, "topic", path!["topic"])?;
    if let Some(topic) = &topic {
        check_topic(topic)?;
    }
    let parent_id = match body.get("parent_id") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(parent) => {
            let parent = snowflake(parent, path!["parent_id"])?;
            check_parent(state, &guild, kind, &parent, Some(id))?;
            Some(Some(parent))
        }
    };
    let overwrites = match array_field(
        &body,
        "permission_overwrites",
        path!["permission_overwrites"],
    )? {
        None => None,
        Some(items) => Some(overwrites_field(state, items.unwrap_or_default())?),
    };
    let channel = &mut state.channels[i].info;
    if let Some(name) = name {
        channel.name = normalize_name(&name, kind);
    }
    if let Some(topic) = topic {
        if matches!(kind, TEXT | ANNOUNCEMENT | FORUM) {
            channel.topic = topic.filter(|t| !t.is_empty());
        }
    }
    if let Some(parent_id) = parent_id {
        channel.parent_id = parent_id;
    }
    if let Some(overwrites) = overwrites {
        channel.overwrites = overwrites;
    }
    Ok(ok(channel_json(&state.channels[i])))
}

fn edit_permissions(
    state: &mut FakeState,
    channel: &str,
    target: &str,
    body: Map<String, Value>,
) -> Reply {
    let i = channel_index(state, channel)?;
    if !is_snowflake(target) {
        return Err(error(StatusCode::NOT_FOUND, 0, "404: Not Found"));
    }
    let overwrite = Overwrite {
        id: target.to_string(),
        kind: overwrite_kind(&body, path!["type"])?,
        allow: permission_bits(body.get("allow"), path!["allow"])?,
        deny: permission_bits(body.get("deny"), path!["deny"])?,
    };
    if overwrite.kind == 1 && state.unknown_users.contains(target) {
        return Err(error(StatusCode::NOT_FOUND, 10013, "Unknown User"));
    }
    let overwrites = &mut state.channels[i].info.overwrites;
    match overwrites.iter_mut().find(|o| o.id == target) {
        Some(existing) => *existing = overwrite,
        None => overwrites.push(overwrite),
    }
    Ok(no_content())
}

// ---------------------------------------------------------------------------------------
// Messages

/// The message fields of a create or edit body; `None` when a field is absent (null counts
/// as given and empty, except for `allowed_mentions` where null is "not given").
#[derive(Default)]
struct MessageFields {
    content: Option<String>,
    components: Option<Vec<Value>>,
    embeds: Option<Vec<Value>>,
    flags: Option<u64>,
    allowed_mentions: Option<Value>,
    /// Attachments, stickers or a poll: not modelled, but they make a message non-empty.
    other_content: bool,
}

fn message_fields(body: &Map<String, Value>) -> Result<MessageFields, Refusal> {
    let content = string_field(body, "content", path!["content"])?.map(Option::unwrap_or_default);
    if let Some(content) = &content {
        if chars(content) > MAX_CONTENT {
            return Err(invalid_form(
                path!["content"],
                "BASE_TYPE_MAX_LENGTH",
                format!("Must be {MAX_CONTENT} or fewer in length."),
            ));
        }
    }
    let components =
        array_field(body, "components", path!["components"])?.map(Option::unwrap_or_default);
    if let Some(rows) = &components {
        check_components(rows)?;
    }
    let embeds = array_field(body, "embeds", path!["embeds"])?.map(Option::unwrap_or_default);
    let embeds = match embeds {
        Some(embeds) => Some(check_embeds(embeds)?),
        None => None,
    };
    let flags = int_field(body, "flags", path!["flags"])?;
    let allowed_mentions = match body.get("allowed_mentions") {
        None | Some(Value::Null) => None,
        Some(value) => {
            AllowedMentions::parse(value)?;
            Some(value.clone())
        }
    };
    let nonempty_list = |key: &str| {
        body.get(key)
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    };
    let other_content = nonempty_list("attachments")
        || nonempty_list("sticker_ids")
        || body.get("poll").is_some_and(|p| !p.is_null());
    Ok(MessageFields {
        content,
        components,
        embeds,
        flags,
        allowed_mentions,
        other_content,
    })
}

fn check_components(rows: &[Value]) -> Result<(), Refusal> {
    if rows.len() > MAX_ACTION_ROWS {
        return Err(invalid_form(
            path!["components"],
            "BASE_TYPE_MAX_LENGTH",
            format!("Must be {MAX_ACTION_ROWS} or fewer in length."),
        ));
    }
    let mut custom_ids = HashSet::new();
    for (i, row) in rows.iter().enumerate() {
        if row["type"].as_u64() != Some(1) {
            return Err(invalid_form(
                path!["components", i, "type"],
                "UNION_TYPE_CHOICES",
                "Value of field \"type\" must be one of (1,).",
            ));
        }
        let Some(children) = row["components"].as_array() else {
            return Err(invalid_form(
                path!["components", i, "components"],
                "BASE_TYPE_REQUIRED",
                "This field is required",
            ));
        };
        if children.is_empty() || children.len() > MAX_ROW_COMPONENTS {
            return Err(invalid_form(
                path!["components", i, "components"],
                "BASE_TYPE_BAD_LENGTH",
                format!("Must be between 1 and {MAX_ROW_COMPONENTS} in length."),
            ));
        }
        for (j, component) in children.iter().enumerate() {
            let at = |field: &str| path!["components", i, "components", j, field];
            let custom_id = match component["type"].as_u64() {
                Some(2) => check_button(component, &at)?,
                Some(3 | 5 | 6 | 7 | 8) => {
                    if children.len() > 1 {
                        return Err(invalid_form(
                            path!["components", i, "components"],
                            "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                            "The specified component exceeds the maximum width",
                        ));
                    }
                    check_select(component, &at)?
                }
                _ => {
                    return Err(invalid_form(
                        at("type"),
                        "UNION_TYPE_CHOICES",
                        "Value of field \"type\" must be one of (2, 3, 5, 6, 7, 8).",
                    ));
                }
            };
            if let Some(custom_id) = custom_id {
                if !custom_ids.insert(custom_id) {
                    return Err(invalid_form(
                        at("custom_id"),
                        "COMPONENT_CUSTOM_ID_DUPLICATED",
                        "Component custom id cannot be duplicated",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A component's `custom_id`: required, 1–100 characters.
fn check_custom_id(component: &Value, at: &dyn Fn(&str) -> Vec<String>) -> Result<String, Refusal> {
    match component["custom_id"].as_str() {
        None => Err(invalid_form(
            at("custom_id"),
            "BASE_TYPE_REQUIRED",
            "This field is required",
        )),
        Some(id) if !(1..=MAX_CUSTOM_ID).contains(&chars(id)) => Err(invalid_form(
            at("custom_id"),
            "BASE_TYPE_BAD_LENGTH",
            format!("Must be between 1 and {MAX_CUSTOM_ID} in length."),
        )),
        Some(id) => Ok(id.to_string()),
    }
}

/// A button; returns its custom id (none for link and premium buttons).
fn check_button(
    button: &Value,
    at: &dyn Fn(&str) -> Vec<String>,
) -> Result<Option<String>, Refusal> {
    let style = button["style"].as_u64();
    if !matches!(style, Some(1..=6)) {
        return Err(invalid_form(
            at("style"),
            "BASE_TYPE_CHOICES",
            "Value must be one of (1, 2, 3, 4, 5, 6).",
        ));
    }
    if let Some(label) = button.get("label").filter(|l| !l.is_null()) {
        if label.as_str().is_none_or(|l| chars(l) > MAX_BUTTON_LABEL) {
            return Err(invalid_form(
                at("label"),
                "BASE_TYPE_MAX_LENGTH",
                format!("Must be {MAX_BUTTON_LABEL} or fewer in length."),
            ));
        }
    }
    let has = |key: &str| button.get(key).is_some_and(|v| !v.is_null());
    match style {
        // Link: a URL, no custom id.
        Some(5) => {
            if !has("url") {
                return Err(invalid_form(
                    at("url"),
                    "BASE_TYPE_REQUIRED",
                    "This field is required",
                ));
            }
            if has("custom_id") {
                return Err(invalid_form(
                    at("custom_id"),
                    "BUTTON_COMPONENT_CUSTOM_ID_NOT_ALLOWED",
                    "A link button cannot have a custom id",
                ));
            }
            Ok(None)
        }
        // Premium: a SKU.
        Some(6) => {
            if !has("sku_id") {
                return Err(invalid_form(
                    at("sku_id"),
                    "BASE_TYPE_REQUIRED",
                    "This field is required",
                ));
            }
            Ok(None)
        }
        _ => {
            if !has("label") && !has("emoji") {
                return Err(invalid_form(
                    at("label"),
                    "BUTTON_COMPONENT_LABEL_OR_EMOJI_REQUIRED",
                    "A button needs a label or an emoji",
                ));
            }
            check_custom_id(button, at).map(Some)
        }
    }
}

/// A select menu; returns its custom id.
fn check_select(
    select: &Value,
    at: &dyn Fn(&str) -> Vec<String>,
) -> Result<Option<String>, Refusal> {
    let custom_id = check_custom_id(select, at)?;
    if select["type"].as_u64() == Some(3) {
        let count = select["options"].as_array().map_or(0, Vec::len);
        if !(1..=MAX_SELECT_OPTIONS).contains(&count) {
            return Err(invalid_form(
                at("options"),
                "BASE_TYPE_BAD_LENGTH",
                format!("Must be between 1 and {MAX_SELECT_OPTIONS} in length."),
            ));
        }
    }
    if select["placeholder"]
        .as_str()
        .is_some_and(|p| chars(p) > 150)
    {
        return Err(invalid_form(
            at("placeholder"),
            "BASE_TYPE_MAX_LENGTH",
            "Must be 150 or fewer in length.",
        ));
    }
    Ok(Some(custom_id))
}

/// At most ten embeds, each with a title of at most 256 characters and a description of at
/// most 4096; `type` defaults to `rich`, as Discord answers.
fn check_embeds(embeds: Vec<Value>) -> Result<Vec<Value>, Refusal> {
    if embeds.len() > MAX_EMBEDS {
        return Err(invalid_form(
            path!["embeds"],
            "BASE_TYPE_MAX_LENGTH",
            format!("Must be {MAX_EMBEDS} or fewer in length."),
        ));
    }
    embeds
        .into_iter()
        .enumerate()
        .map(|(i, mut embed)| {
            for (field, max) in [("title", 256), ("description", 4096)] {
                if embed[field].as_str().is_some_and(|t| chars(t) > max) {
                    return Err(invalid_form(
                        path!["embeds", i, field],
                        "BASE_TYPE_MAX_LENGTH",
                        format!("Must be {max} or fewer in length."),
                    ));
                }
            }
            match &mut embed {
                Value::Object(map) => {
                    map.entry("type").or_insert_with(|| json!("rich"));
                    Ok(embed)
                }
                _ => Err(invalid_form(
                    path!["embeds", i],
                    "DICT_TYPE_CONVERT",
                    "Only dictionaries may be used in a DictType",
                )),
            }
        })
        .collect()
}

/// `allowed_mentions`, validated.
struct AllowedMentions {
    parse_users: bool,
    parse_roles: bool,
    parse_everyone: bool,
    users: Vec<String>,
    roles: Vec<String>,
}

impl AllowedMentions {
    /// No `allowed_mentions`: every mention in the content counts.
    fn everything() -> AllowedMentions {
        AllowedMentions {
            parse_users: true,
            parse_roles: true,
            parse_everyone: true,
            users: vec![],
            roles: vec![],
        }
    }

    fn parse(value: &Value) -> Result<AllowedMentions, Refusal> {
        let Value::Object(map) = value else {
            return Err(invalid_form(
                path!["allowed_mentions"],
                "DICT_TYPE_CONVERT",
                "Only dictionaries may be used in a DictType",
            ));
        };
        let mut allowed = AllowedMentions {
            parse_users: false,
            parse_roles: false,
            parse_everyone: false,
            users: vec![],
            roles: vec![],
        };
        for (k, kind) in array_field(map, "parse", path!["allowed_mentions", "parse"])?
            .flatten()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            match kind.as_str() {
                Some("users") => allowed.parse_users = true,
                Some("roles") => allowed.parse_roles = true,
                Some("everyone") => allowed.parse_everyone = true,
                _ => {
                    return Err(invalid_form(
                        path!["allowed_mentions", "parse", k],
                        "BASE_TYPE_CHOICES",
                        "Value must be one of ('roles', 'users', 'everyone').",
                    ));
                }
            }
        }
        for (key, parsed, ids) in [
            ("users", allowed.parse_users, &mut allowed.users),
            ("roles", allowed.parse_roles, &mut allowed.roles),
        ] {
            let items = array_field(map, key, path!["allowed_mentions", key])?
                .flatten()
                .unwrap_or_default();
            if items.len() > MAX_ALLOWED_MENTION_IDS {
                return Err(invalid_form(
                    path!["allowed_mentions", key],
                    "BASE_TYPE_MAX_LENGTH",
                    format!("Must be {MAX_ALLOWED_MENTION_IDS} or fewer in length."),
                ));
            }
            for (k, item) in items.iter().enumerate() {
                ids.push(snowflake(item, path!["allowed_mentions", key, k])?);
            }
            // An empty list next to "users" in `parse` is fine (serenity always sends both).
            if parsed && !ids.is_empty() {
                return Err(invalid_form(
                    path!["allowed_mentions"],
                    "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                    format!("parse:[\"{key}\"] and {key}: [ids...] are mutually exclusive."),
                ));
            }
        }
        Ok(allowed)
    }
}

/// The mentions in a message's content.
#[derive(Default)]
struct Mentions {
    users: Vec<String>,
    roles: Vec<String>,
    everyone: bool,
}

/// `<@id>`, `<@!id>` and `<@&id>` (in order of first appearance), and `@everyone` or `@here`.
fn parse_mentions(content: &str) -> Mentions {
    let mut mentions = Mentions {
        everyone: content.contains("@everyone") || content.contains("@here"),
        ..Mentions::default()
    };
    let mut rest = content;
    while let Some(start) = rest.find("<@") {
        rest = &rest[start + 2..];
        let (role, after) = match rest.as_bytes().first() {
            Some(b'&') => (true, &rest[1..]),
            Some(b'!') => (false, &rest[1..]),
            _ => (false, rest),
        };
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || !after[digits..].starts_with('>') || !is_snowflake(&after[..digits]) {
            continue;
        }
        let id = after[..digits].to_string();
        let list = if role {
            &mut mentions.roles
        } else {
            &mut mentions.users
        };
        if !list.contains(&id) {
            list.push(id);
        }
        rest = &after[digits + 1..];
    }
    mentions
}

/// Who a message with this content and `allowed_mentions` pings.
fn pings(
    content: &str,
    allowed_mentions: Option<&Value>,
    unknown_users: &HashSet<String>,
) -> Mentions {
    let allowed = match allowed_mentions {
        // Validated when the request was read.
        Some(value) => {
            AllowedMentions::parse(value).unwrap_or_else(|_| AllowedMentions::everything())
        }
        None => AllowedMentions::everything(),
    };
    let mentioned = parse_mentions(content);
    Mentions {
        users: mentioned
            .users
            .into_iter()
            .filter(|u| allowed.parse_users || allowed.users.contains(u))
            .filter(|u| !unknown_users.contains(u))
            .collect(),
        roles: mentioned
            .roles
            .into_iter()
            .filter(|r| allowed.parse_roles || allowed.roles.contains(r))
            .collect(),
        everyone: mentioned.everyone && allowed.parse_everyone,
    }
}

/// Refresh a message's pings from its content and allowed mentions.
fn refresh_pings(posted: &mut Posted, unknown_users: &HashSet<String>) {
    let pinged = pings(
        &posted.content,
        posted.allowed_mentions.as_ref(),
        unknown_users,
    );
    posted.pinged_users = pinged.users;
    posted.pinged_roles = pinged.roles;
    posted.mass_mention = pinged.everyone;
}

fn is_empty(posted: &Posted, other_content: bool) -> bool {
    posted.content.trim().is_empty()
        && posted.components.as_array().is_none_or(Vec::is_empty)
        && posted.embeds.as_array().is_none_or(Vec::is_empty)
        && !other_content
}

fn empty_message() -> Refusal {
    error(
        StatusCode::BAD_REQUEST,
        50006,
        "Cannot send an empty message",
    )
}

/// A new message (not yet stored) from a create body.
fn new_posted(
    state: &mut FakeState,
    channel_id: &str,
    fields: MessageFields,
    allowed_flags: u64,
) -> Result<Posted, Refusal> {
    let mut posted = Posted {
        id: String::new(),
        channel_id: channel_id.to_string(),
        content: fields.content.unwrap_or_default(),
        components: Value::Array(fields.components.unwrap_or_default()),
        embeds: Value::Array(fields.embeds.unwrap_or_default()),
        allowed_mentions: fields.allowed_mentions,
        pinged_users: vec![],
        pinged_roles: vec![],
        mass_mention: false,
        edited: false,
        flags: fields.flags.unwrap_or(0) & allowed_flags,
        original: false,
    };
    if is_empty(&posted, fields.other_content) {
        return Err(empty_message());
    }
    refresh_pings(&mut posted, &state.unknown_users);
    posted.id = state.next_snowflake();
    Ok(posted)
}

/// Apply an edit body to a message; only `SUPPRESS_EMBEDS` can change among the flags.
fn apply_edit(
    posted: &Posted,
    fields: MessageFields,
    unknown_users: &HashSet<String>,
) -> Result<Posted, Refusal> {
    let mut edited = posted.clone();
    if let Some(content) = fields.content {
        edited.content = content;
    }
    if let Some(components) = fields.components {
        edited.components = Value::Array(components);
    }
    if let Some(embeds) = fields.embeds {
        edited.embeds = Value::Array(embeds);
    }
    if let Some(flags) = fields.flags {
        edited.flags = (edited.flags & !SUPPRESS_EMBEDS) | (flags & SUPPRESS_EMBEDS);
    }
    if fields.allowed_mentions.is_some() {
        edited.allowed_mentions = fields.allowed_mentions;
    }
    if is_empty(&edited, fields.other_content) {
        return Err(empty_message());
    }
    refresh_pings(&mut edited, unknown_users);
    edited.edited = true;
    Ok(edited)
}

fn message_index(state: &FakeState, channel: &str, id: &str) -> Result<usize, Refusal> {
    match state.find_message(channel, id) {
        Some(m) if state.messages[m].posted.flags & EPHEMERAL == 0 => Ok(m),
        _ => Err(unknown_message()),
    }
}

fn create_message(state: &mut FakeState, channel: &str, body: Map<String, Value>) -> Reply {
    let c = channel_index(state, channel)?;
    if state.channels[c].info.kind == CATEGORY {
        return Err(error(
            StatusCode::BAD_REQUEST,
            50008,
            "Cannot send messages in a non-text channel",
        ));
    }
    let fields = message_fields(&body)?;
    let posted = new_posted(state, channel, fields, CHANNEL_MESSAGE_FLAGS)?;
    state.channels[c].last_message_id = Some(posted.id.clone());
    state.messages.push(MessageState {
        posted,
        source: Source::Channel,
        edited_at: None,
        kind: 0,
    });
    Ok(ok(message_json(state, state.messages.len() - 1)))
}

fn edit_message(state: &mut FakeState, channel: &str, id: &str, body: Map<String, Value>) -> Reply {
    channel_index(state, channel)?;
    let m = message_index(state, channel, id)?;
    let fields = message_fields(&body)?;
    let edited = apply_edit(&state.messages[m].posted, fields, &state.unknown_users)?;
    let edited_at = state.next_id();
    let message = &mut state.messages[m];
    message.posted = edited;
    message.edited_at = Some(edited_at);
    Ok(ok(message_json(state, m)))
}

fn pins(state: &mut FakeState, channel: &str) -> Reply {
    let c = channel_index(state, channel)?;
    // Most recently pinned first.
    let pinned: Vec<Value> = state.channels[c]
        .pins
        .iter()
        .rev()
        .filter_map(|id| state.find_message(channel, id))
        .map(|m| message_json(state, m))
        .collect();
    Ok(ok(Value::Array(pinned)))
}

fn pin(state: &mut FakeState, channel: &str, id: &str) -> Reply {
    let c = channel_index(state, channel)?;
    message_index(state, channel, id)?;
    let pins = &mut state.channels[c].pins;
    if pins.iter().any(|p| p == id) {
        return Ok(no_content());
    }
    if pins.len() >= MAX_PINS {
        return Err(error(
            StatusCode::BAD_REQUEST,
            30003,
            &format!("Maximum number of pins reached ({MAX_PINS})"),
        ));
    }
    pins.push(id.to_string());
    Ok(no_content())
}

// ---------------------------------------------------------------------------------------
// Interaction webhooks

fn check_webhook_app(app: &str) -> Result<(), Refusal> {
    if app == APP_ID.to_string() {
        Ok(())
    } else {
        Err(error(StatusCode::NOT_FOUND, 10015, "Unknown Webhook"))
    }
}

fn interaction_channel(state: &FakeState, token: &str) -> String {
    state
        .interaction_channels
        .get(token)
        .cloned()
        .unwrap_or_else(|| INTERACTION_CHANNEL_ID.to_string())
}

fn record_interaction(state: &mut FakeState, token: &str, m: usize) {
    let snapshot = state.messages[m].posted.clone();
    state
        .interactions
        .entry(token.to_string())
        .or_default()
        .push(snapshot);
}

/// `PATCH @original`: the first one makes the original response (the fake does not see the
/// interaction's HTTP reply), later ones edit it.
fn edit_original(state: &mut FakeState, token: &str, body: Map<String, Value>) -> Reply {
    let fields = message_fields(&body)?;
    let m = match state.find_original(token) {
        Some(m) => {
            let edited = apply_edit(&state.messages[m].posted, fields, &state.unknown_users)?;
            let edited_at = state.next_id();
            let message = &mut state.messages[m];
            message.posted = edited;
            message.edited_at = Some(edited_at);
            m
        }
        None => {
            let channel = interaction_channel(state, token);
            let mut posted = new_posted(state, &channel, fields, INTERACTION_MESSAGE_FLAGS)?;
            posted.original = true;
            state.messages.push(MessageState {
                posted,
                source: Source::Interaction {
                    token: token.to_string(),
                },
                edited_at: None,
                kind: 20,
            });
            state.messages.len() - 1
        }
    };
    record_interaction(state, token, m);
    Ok(ok(message_json(state, m)))
}

fn followup(state: &mut FakeState, token: &str, body: Map<String, Value>) -> Reply {
    let fields = message_fields(&body)?;
    let channel = interaction_channel(state, token);
    let posted = new_posted(state, &channel, fields, INTERACTION_MESSAGE_FLAGS)?;
    state.messages.push(MessageState {
        posted,
        source: Source::Interaction {
            token: token.to_string(),
        },
        edited_at: None,
        kind: 0,
    });
    let m = state.messages.len() - 1;
    record_interaction(state, token, m);
    Ok(ok(message_json(state, m)))
}

// ---------------------------------------------------------------------------------------
// Application commands

/// The application must be ours, and a guild one the fake knows.
fn check_command_scope(state: &FakeState, app: &str, guild: Option<&str>) -> Result<(), Refusal> {
    let known_guild = guild.is_none_or(|g| state.has_guild(g));
    if app == APP_ID.to_string() && known_guild {
        Ok(())
    } else {
        Err(error(StatusCode::FORBIDDEN, 50001, "Missing Access"))
    }
}

/// A chat input command's or an option's name: 1–32 lowercase letters, digits, `-` and `_`.
fn valid_command_name(name: &str) -> bool {
    (1..=MAX_COMMAND_NAME).contains(&chars(name))
        && name
            .chars()
            .all(|c| c == '-' || c == '_' || c.is_alphanumeric())
        && name.to_lowercase() == name
}

fn check_description(map: &Map<String, Value>, path: Vec<String>) -> Result<String, Refusal> {
    let description = map.get("description").and_then(Value::as_str).unwrap_or("");
    if !(1..=MAX_COMMAND_DESCRIPTION).contains(&chars(description)) {
        let mut path = path;
        path.push("description".into());
        return Err(invalid_form(
            path,
            "BASE_TYPE_BAD_LENGTH",
            format!("Must be between 1 and {MAX_COMMAND_DESCRIPTION} in length."),
        ));
    }
    Ok(description.to_string())
}

/// Where a list of options sits: what it may hold.
#[derive(Clone, Copy, PartialEq)]
enum OptionLevel {
    /// A command's own options: sub-commands and groups, or plain options, not both.
    Command,
    /// A sub-command group's: sub-commands only.
    Group,
    /// A sub-command's: plain options only.
    Subcommand,
}

/// Validate a list of options; returns them with nulls and empty lists dropped, as Discord
/// answers them.
fn check_options(
    options: &[Value],
    path: Vec<String>,
    level: OptionLevel,
) -> Result<Vec<Value>, Refusal> {
    let at = |more: Vec<String>| {
        let mut p = path.clone();
        p.extend(more);
        p
    };
    if options.len() > MAX_OPTIONS {
        return Err(invalid_form(
            path.clone(),
            "BASE_TYPE_MAX_LENGTH",
            format!("Must be {MAX_OPTIONS} or fewer in length."),
        ));
    }
    let mut names = HashSet::new();
    let mut seen_optional = false;
    let mut cleaned = Vec::new();
    let is_sub = |o: &Value| matches!(o["type"].as_u64(), Some(1 | 2));
    if level == OptionLevel::Command && options.iter().any(is_sub) && !options.iter().all(is_sub) {
        return Err(invalid_form(
            path.clone(),
            "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
            "Sub-command and sub-command group option types are mutually exclusive to all other types",
        ));
    }
    for (k, option) in options.iter().enumerate() {
        let Value::Object(map) = option else {
            return Err(invalid_form(
                at(path![k]),
                "DICT_TYPE_CONVERT",
                "Only dictionaries may be used in a DictType",
            ));
        };
        let kind = map.get("type").and_then(Value::as_u64);
        let kind_ok = match (level, kind) {
            (_, None) => false,
            (OptionLevel::Command, Some(1..=11)) => true,
            (OptionLevel::Group, Some(1)) => true,
            (OptionLevel::Subcommand, Some(3..=11)) => true,
            _ => false,
        };
        if !kind_ok {
            return Err(invalid_form(
                at(path![k, "type"]),
                "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
                "Invalid option type here",
            ));
        }
        let name = map.get("name").and_then(Value::as_str).unwrap_or("");
        if !valid_command_name(name) {
            return Err(invalid_form(
                at(path![k, "name"]),
                "APPLICATION_COMMAND_INVALID_NAME",
                "Command name is invalid",
            ));
        }
        if !names.insert(name.to_string()) {
            return Err(invalid_form(
                at(path![k, "name"]),
                "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                "Option names must be unique",
            ));
        }
        check_description(map, at(path![k]))?;
        let required = map
            .get("required")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if required && seen_optional {
            return Err(invalid_form(
                at(path![k, "required"]),
                "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                "Required options must be placed before non-required options",
            ));
        }
        seen_optional |= !required && !matches!(kind, Some(1 | 2));
        let choices = map
            .get("choices")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        if choices.len() > MAX_CHOICES {
            return Err(invalid_form(
                at(path![k, "choices"]),
                "BASE_TYPE_MAX_LENGTH",
                format!("Must be {MAX_CHOICES} or fewer in length."),
            ));
        }
        for (c, choice) in choices.iter().enumerate() {
            if !choice["name"]
                .as_str()
                .is_some_and(|n| (1..=100).contains(&chars(n)))
            {
                return Err(invalid_form(
                    at(path![k, "choices", c, "name"]),
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                ));
            }
            if choice.get("value").is_none_or(Value::is_null) {
                return Err(invalid_form(
                    at(path![k, "choices", c, "value"]),
                    "BASE_TYPE_REQUIRED",
                    "This field is required",
                ));
            }
        }
        let mut kept = without_nulls(map);
        if let Some(nested) = map.get("options").and_then(Value::as_array) {
            let nested_level = match kind {
                Some(2) => OptionLevel::Group,
                Some(1) => OptionLevel::Subcommand,
                _ => {
                    if nested.is_empty() {
                        OptionLevel::Subcommand
                    } else {
                        return Err(invalid_form(
                            at(path![k, "options"]),
                            "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
                            "Only sub-commands and groups have options",
                        ));
                    }
                }
            };
            let nested = check_options(nested, at(path![k, "options"]), nested_level)?;
            if nested.is_empty() {
                kept.remove("options");
            } else {
                kept.insert("options".into(), Value::Array(nested));
            }
        }
        cleaned.push(Value::Object(kept));
    }
    Ok(cleaned)
}

/// An object without its null fields and empty lists.
fn without_nulls(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(_, v)| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn overwrite_commands(state: &mut FakeState, guild: Option<String>, body: Option<Value>) -> Reply {
    let Some(Value::Array(commands)) = body else {
        return Err(invalid_form(
            vec![],
            "LIST_TYPE_CONVERT",
            "Only iterables may be used in a ListType",
        ));
    };
    let previous = state.commands.get(&guild).cloned().unwrap_or_default();
    let mut answered: Vec<Value> = Vec::new();
    let mut chat_input = 0;
    for (i, command) in commands.iter().enumerate() {
        let Value::Object(map) = command else {
            return Err(invalid_form(
                path![i],
                "DICT_TYPE_CONVERT",
                "Only dictionaries may be used in a DictType",
            ));
        };
        let kind = match int_field(map, "type", path![i, "type"])? {
            None => 1,
            Some(kind @ 1..=3) => kind,
            Some(_) => {
                return Err(invalid_form(
                    path![i, "type"],
                    "BASE_TYPE_CHOICES",
                    "Value must be one of {1, 2, 3}.",
                ));
            }
        };
        let name = map.get("name").and_then(Value::as_str).unwrap_or("");
        // Chat input names follow the option rule; user and message commands may have
        // capitals and spaces.
        let name_ok = if kind == 1 {
            valid_command_name(name)
        } else {
            (1..=MAX_COMMAND_NAME).contains(&chars(name))
        };
        if !name_ok {
            return Err(invalid_form(
                path![i, "name"],
                "APPLICATION_COMMAND_INVALID_NAME",
                "Command name is invalid",
            ));
        }
        if answered
            .iter()
            .any(|c| c["name"] == name && c["type"] == kind)
        {
            return Err(invalid_form(
                path![i, "name"],
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                "Application command names must be unique",
            ));
        }
        let description = if kind == 1 {
            chat_input += 1;
            check_description(map, path![i])?
        } else {
            String::new()
        };
        let options = match map.get("options").and_then(Value::as_array) {
            Some(options) if kind == 1 => {
                check_options(options, path![i, "options"], OptionLevel::Command)?
            }
            _ => vec![],
        };
        let default_member_permissions = match map.get("default_member_permissions") {
            None | Some(Value::Null) => Value::Null,
            value => {
                json!(permission_bits(value, path![i, "default_member_permissions"])?.to_string())
            }
        };
        let mut definition = json!({
            "application_id": APP_ID.to_string(),
            "type": kind,
            "name": name,
            "description": description,
            "default_member_permissions": default_member_permissions,
            "nsfw": map.get("nsfw").and_then(Value::as_bool).unwrap_or(false),
        });
        if !options.is_empty() {
            definition["options"] = Value::Array(options);
        }
        match &guild {
            Some(guild) => definition["guild_id"] = json!(guild),
            None => {
                definition["dm_permission"] = json!(
                    map.get("dm_permission")
                        .and_then(Value::as_bool)
                        .unwrap_or(true)
                );
            }
        }
        // The same name and type keep their id, and their version unless they changed.
        let before = previous
            .iter()
            .find(|c| c["name"] == name && c["type"] == kind);
        let unchanged = before.is_some_and(|before| {
            let mut before = before.clone();
            let map = before.as_object_mut().unwrap();
            map.remove("id");
            map.remove("version");
            before == definition
        });
        let id = match before {
            Some(before) => before["id"].clone(),
            None => json!(state.next_snowflake()),
        };
        let version = match before {
            Some(before) if unchanged => before["version"].clone(),
            _ => json!(state.next_snowflake()),
        };
        definition["id"] = id;
        definition["version"] = version;
        answered.push(definition);
    }
    if chat_input > MAX_COMMANDS {
        return Err(invalid_form(
            vec![],
            "BASE_TYPE_MAX_LENGTH",
            format!("Must be {MAX_COMMANDS} or fewer in length."),
        ));
    }
    state.commands.insert(guild, answered.clone());
    Ok(ok(Value::Array(answered)))
}
