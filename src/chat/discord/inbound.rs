//! `POST /discord/interactions`: Discord's HTTP interactions endpoint.
//!
//! Every request is verified (Ed25519 over timestamp and body, five-minute window) before
//! anything is read from it. PING is answered with PONG. `/incident` invocations are turned into
//! the same command text as Slack's and the console's; the answer is returned in the HTTP
//! reply when it is ready within two seconds, otherwise the reply defers (Discord: 3 s) and the
//! answer replaces the deferral through the interaction's webhook (its token lasts 15 minutes).
//! Buttons are deferred at once and their result follows the same way; a pressed message loses
//! its buttons and says who acted.

use super::api::{DiscordApi, codes};
use super::commands;
use super::content::{self, EPHEMERAL};
use crate::app::{App, Origin};
use crate::chat::split::ellipsis;
use crate::chat::{ChatRefs, changes_an_incident, store_unavailable as unavailable};
use crate::config::DiscordConfig;
use crate::core::command;
use crate::core::message::{ButtonAction, Message};
use crate::core::{Incident, Platform, Slot, UserRef, views};
use crate::render::Renderer;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use serde_json::{Value, json};
use serenity::interactions_endpoint::Verifier;
use std::sync::Arc;
use std::time::Duration;

/// A command's answer is returned in the HTTP reply when it is ready this soon; otherwise the
/// reply defers and the answer follows (Discord: 3 s).
pub const REPLY_WITHIN: Duration = Duration::from_millis(2_000);
/// Largest request accepted (an interaction with the pressed message is a few kilobytes).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Inbound event source name of interaction ids in the store.
const INTERACTIONS_SOURCE: &str = "discord-interaction";
/// Interaction types (Discord's numbers).
const PING: u64 = 1;
const APPLICATION_COMMAND: u64 = 2;
const MESSAGE_COMPONENT: u64 = 3;
const AUTOCOMPLETE: u64 = 4;
/// Interaction response types.
const PONG: u64 = 1;
const CHANNEL_MESSAGE: u64 = 4;
const DEFERRED_CHANNEL_MESSAGE: u64 = 5;
const DEFERRED_UPDATE_MESSAGE: u64 = 6;
const UPDATE_MESSAGE: u64 = 7;
const AUTOCOMPLETE_RESULT: u64 = 8;

/// What the Discord endpoint needs.
pub struct DiscordInbound {
    pub app: Arc<App>,
    /// This platform's ids in the store (one per process: it keeps what never changes).
    pub refs: ChatRefs,
    pub api: Arc<DiscordApi>,
    pub renderer: Arc<Renderer>,
    pub config: DiscordConfig,
    pub verifier: Verifier,
    /// How long an answer may take to be returned in the reply itself (normally
    /// [`REPLY_WITHIN`]).
    pub reply_within: Duration,
}

pub fn routes(state: Arc<DiscordInbound>) -> Router {
    Router::new()
        .route("/discord/interactions", post(interactions))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

fn refuse(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "error": text }))).into_response()
}

/// An ephemeral plain answer (no mentions).
fn ephemeral(text: &str) -> Value {
    json!({
        "content": text,
        "flags": EPHEMERAL,
        "allowed_mentions": { "parse": [] },
    })
}

fn respond(kind: u64, data: Option<Value>) -> Response {
    let mut body = json!({ "type": kind });
    if let Some(data) = data {
        body["data"] = data;
    }
    Json(body).into_response()
}

/// Who sent an interaction, from where.
#[derive(Clone, Debug)]
pub struct Sender {
    pub user: String,
    pub roles: Vec<String>,
    pub channel: String,
    pub token: String,
}

impl Sender {
    fn of(interaction: &Value) -> Sender {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let member = &interaction["member"];
        let user = if member.is_object() {
            text(&member["user"]["id"])
        } else {
            text(&interaction["user"]["id"])
        };
        let channel = match interaction["channel_id"].as_str() {
            Some(id) => id.to_string(),
            None => text(&interaction["channel"]["id"]),
        };
        Sender {
            user,
            roles: member["roles"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter_map(|r| r.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            channel,
            token: text(&interaction["token"]),
        }
    }
}

impl DiscordInbound {
    /// A message rendered for Discord.
    fn content(&self, message: &Message) -> content::DiscordContent {
        match self.renderer.render(Platform::Discord, message) {
            Ok(rendered) => content::content(&rendered, None),
            Err(error) => {
                tracing::error!(%error, "cannot render a reply");
                content::DiscordContent {
                    pieces: vec![
                        "warroom could not render its answer; the error is in its log.".into(),
                    ],
                    components: Vec::new(),
                    ephemeral: true,
                }
            }
        }
    }

    /// The incident channel a Discord channel id belongs to, or the id itself.
    async fn channel_name(&self, channel_id: &str) -> Result<String, Message> {
        crate::chat::channel_name(&self.refs, channel_id).await
    }

    /// `None` when the sender may change `incident`; otherwise the refusal to show them.
    ///
    /// With `discord.allowed_users` and `discord.allowed_roles` both empty, everyone may.
    /// Otherwise: the incident's declarer and commander, `discord.responders`, the allowed
    /// users, members with an allowed role, and the users and roles the escalation mentions.
    pub fn refusal(&self, sender: &Sender, incident: Option<&Incident>) -> Option<Message> {
        let config = &self.config;
        if config.allowed_users.is_empty() && config.allowed_roles.is_empty() {
            return None;
        }
        let mut users: Vec<String> = config
            .allowed_users
            .iter()
            .chain(&config.responders)
            .map(u64::to_string)
            .collect();
        let mut roles: Vec<String> = config.allowed_roles.iter().map(u64::to_string).collect();
        for step in &self.app.policy.escalation {
            for mention in &step.mention {
                if let Some(role) = mention.strip_prefix("discord:role:") {
                    roles.push(role.to_string());
                } else if let Some(user) = mention.strip_prefix("discord:") {
                    users.push(user.to_string());
                }
            }
        }
        let listed = users.contains(&sender.user);
        let in_role = sender.roles.iter().any(|r| roles.contains(r));
        let involved = incident.is_some_and(|i| {
            i.commander.as_str() == sender.user || i.declared_by.as_str() == sender.user
        });
        if listed || in_role || involved {
            return None;
        }
        let mut text = "Only the incident's responders can do that: the declarer, the commander, discord.responders, the people and roles in discord.allowed_users and discord.allowed_roles, and those the escalation calls on.".to_string();
        if let Some(incident) = incident {
            text.push_str(&format!(
                " Ask {} (commander of {}).",
                crate::render::mention(Platform::Discord, incident.commander.as_str()),
                incident.key
            ));
        }
        Some(views::refusal(text))
    }

    fn actor(&self, sender: &Sender) -> Result<UserRef, Message> {
        UserRef::parse(&sender.user).map_err(|_| {
            views::refusal(format!(
                "`{}` is not a Discord user id.",
                crate::render::escape(Platform::Discord, &sender.user)
            ))
        })
    }

    /// Run a command typed by `sender`.
    pub async fn command(&self, sender: &Sender, text: &str) -> Option<Message> {
        let actor = match self.actor(sender) {
            Ok(actor) => actor,
            Err(refusal) => return Some(refusal),
        };
        let parsed = command::parse(text).ok();
        let channel = match crate::chat::command_channel(
            &self.refs,
            &sender.channel,
            parsed.as_ref(),
        )
        .await
        {
            Ok(channel) => channel,
            Err(message) => return Some(message),
        };
        if let Some(parsed) = parsed
            && changes_an_incident(&parsed)
        {
            let incident = match self.app.store.incident_by_channel(&channel).await {
                Ok(incident) => incident,
                Err(error) => {
                    tracing::error!(%error, "cannot read the incident");
                    return Some(unavailable());
                }
            };
            if let Some(refusal) = self.refusal(sender, incident.as_ref()) {
                self.app.metrics.command(parsed.name().name(), "refused");
                return Some(refusal);
            }
        }
        let origin = Origin {
            platform: Platform::Discord,
            channel,
            actor,
            request: None,
        };
        self.app.handle_command(&origin, text).await
    }

    /// The refusal for a button press, if the sender may not press it. Acknowledge and
    /// Resolve follow the incident permissions above; runbook buttons (Confirm, Cancel, Undo)
    /// are checked by the runbook guard's roles.
    async fn button_refusal(&self, sender: &Sender, action: &ButtonAction) -> Option<Message> {
        if let ButtonAction::Acknowledge { incident } | ButtonAction::Resolve { incident } = action
        {
            return match self.app.store.incident(*incident).await {
                Ok(incident) => self.refusal(sender, incident.as_ref()),
                Err(error) => {
                    tracing::error!(%error, "cannot read the incident");
                    Some(unavailable())
                }
            };
        }
        None
    }

    /// A button press.
    pub async fn button(&self, sender: &Sender, action: &ButtonAction) -> Option<Message> {
        let actor = match self.actor(sender) {
            Ok(actor) => actor,
            Err(refusal) => return Some(refusal),
        };
        if let Some(refusal) = self.button_refusal(sender, action).await {
            return Some(refusal);
        }
        let channel = match self.channel_name(&sender.channel).await {
            Ok(channel) => channel,
            Err(message) => return Some(message),
        };
        let origin = Origin {
            platform: Platform::Discord,
            channel,
            actor,
            request: None,
        };
        self.app.handle_button(&origin, action).await
    }

    /// Replace a deferred answer with `data`. Discord may not know of the deferral for a
    /// moment after the reply that made it; an unknown webhook or message is tried again.
    async fn answer_later(&self, token: &str, data: &Value) {
        let mut wait = Duration::from_millis(250);
        for attempt in 1..=4 {
            match self.api.edit_original(token, data).await {
                Ok(()) => return,
                Err(error)
                    if attempt < 4
                        && matches!(
                            error.code(),
                            Some(codes::UNKNOWN_WEBHOOK | codes::UNKNOWN_MESSAGE)
                        ) =>
                {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(error) => {
                    tracing::warn!(%error, "could not send an answer to a Discord user");
                    return;
                }
            }
        }
    }

    /// Answer an `/incident` invocation: the answer itself when it is ready within
    /// `reply_within`, otherwise a deferral now and the answer when it is ready.
    pub async fn answer_command(self: &Arc<Self>, sender: Sender, text: String) -> Response {
        let worker = self.clone();
        let (who, typed) = (sender.clone(), text.clone());
        let mut work = self
            .app
            .tasks
            .spawn(async move { worker.command(&who, &typed).await });
        let receipt = ephemeral(&format!(
            "✓ /incident {}",
            crate::render::escape(Platform::Discord, &ellipsis(&text, 200))
        ));
        match crate::chat::ready_within(self.reply_within, &mut work).await {
            Ok(Ok(Some(reply))) => respond(CHANNEL_MESSAGE, Some(self.content(&reply).reply())),
            // Done, and said in the channel: a short receipt so the person sees it was taken.
            Ok(Ok(None)) => respond(CHANNEL_MESSAGE, Some(receipt)),
            Ok(Err(error)) => {
                tracing::error!(%error, "a command failed");
                respond(
                    CHANNEL_MESSAGE,
                    Some(ephemeral(
                        "warroom failed to handle that command; the error is in its log.",
                    )),
                )
            }
            Err(_) => {
                let later = self.clone();
                let token = sender.token.clone();
                self.app.tasks.spawn(async move {
                    let data = match work.await {
                        Ok(Some(reply)) => later.content(&reply).single(),
                        Ok(None) => receipt,
                        Err(error) => {
                            tracing::error!(%error, "a command failed");
                            ephemeral(
                                "warroom failed to handle that command; the error is in its log.",
                            )
                        }
                    };
                    later.answer_later(&token, &data).await;
                });
                respond(
                    DEFERRED_CHANNEL_MESSAGE,
                    Some(json!({ "flags": EPHEMERAL })),
                )
            }
        }
    }

    /// A button was pressed.
    ///
    /// A button that asks first answers with an ephemeral "are you sure?" whose own button
    /// acts. Otherwise the press is handled: its result is the reply when ready within
    /// `reply_within`, else the reply defers and the result follows. Pressing the question's
    /// button replaces the question (so it cannot be pressed twice). When the action worked,
    /// the message whose button was pressed (or which asked the question) loses its buttons
    /// and says who acted, unless it is the summary, which the outbox edits.
    pub async fn press(self: &Arc<Self>, sender: Sender, interaction: &Value) -> Response {
        let custom_id = interaction["data"]["custom_id"]
            .as_str()
            .unwrap_or_default();
        let Some(pressed) = content::parse_custom_id(custom_id) else {
            if custom_id.starts_with("warroom") {
                return respond(
                    CHANNEL_MESSAGE,
                    Some(ephemeral(
                        "This button is from an older version of warroom and no longer works; use /incident instead.",
                    )),
                );
            }
            // Not warroom's button: acknowledge and change nothing.
            return respond(DEFERRED_UPDATE_MESSAGE, None);
        };
        let message = &interaction["message"];
        let message_id = message["id"].as_str().unwrap_or_default().to_string();
        let action = pressed.action.clone();
        if pressed.asks_first {
            if let Some(refusal) = self.button_refusal(&sender, &action).await {
                return respond(CHANNEL_MESSAGE, Some(self.content(&refusal).reply()));
            }
            let label = pressed_label(message, custom_id).unwrap_or_else(|| "Go ahead".into());
            return respond(
                CHANNEL_MESSAGE,
                Some(content::confirmation(
                    &question(&action),
                    &format!("Yes, {}", label.to_lowercase()),
                    &action,
                    &message_id,
                )),
            );
        }
        // The message to mark once the action worked.
        let mark = match &pressed.asked_from {
            Some(asked_from) => Some(Marked {
                channel_id: sender.channel.clone(),
                id: asked_from.clone(),
                content: None,
            }),
            None => Marked::of(message),
        };
        let from_question = pressed.asked_from.is_some();
        let worker = self.clone();
        let who = sender.clone();
        let mut work = self.app.tasks.spawn(async move {
            let reply = worker.button(&who, &action).await;
            match reply {
                Some(reply) => worker.content(&reply).reply(),
                None => {
                    if let Some(mark) = mark {
                        worker.mark_pressed(&mark, &action, &who.user).await;
                    }
                    ephemeral(&format!("{} ✓", done(&action)))
                }
            }
        });
        let failed = || ephemeral("warroom failed to handle that button; the error is in its log.");
        match crate::chat::ready_within(self.reply_within, &mut work).await {
            Ok(result) => {
                let mut data = result.unwrap_or_else(|error| {
                    tracing::error!(%error, "a button press failed");
                    failed()
                });
                if from_question {
                    // Replace the question: its button is spent.
                    data["components"] = json!([]);
                    respond(UPDATE_MESSAGE, Some(data))
                } else {
                    respond(CHANNEL_MESSAGE, Some(data))
                }
            }
            Err(_) => {
                let later = self.clone();
                let token = sender.token.clone();
                self.app.tasks.spawn(async move {
                    let mut data = work.await.unwrap_or_else(|error| {
                        tracing::error!(%error, "a button press failed");
                        failed()
                    });
                    if from_question {
                        data["components"] = json!([]);
                    }
                    later.answer_later(&token, &data).await;
                });
                if from_question {
                    respond(DEFERRED_UPDATE_MESSAGE, None)
                } else {
                    respond(
                        DEFERRED_CHANNEL_MESSAGE,
                        Some(json!({ "flags": EPHEMERAL })),
                    )
                }
            }
        }
    }

    /// Replace the buttons of a message with who acted ("✅ Acknowledged by @bob").
    async fn mark_pressed(&self, mark: &Marked, action: &ButtonAction, user: &str) {
        let summary = match self.channel_name(&mark.channel_id).await {
            Ok(name) => self.refs.slot(&name, Slot::Summary).await.ok().flatten(),
            Err(_) => None,
        };
        if summary == Some((mark.channel_id.clone(), mark.id.clone())) {
            return;
        }
        let content = match &mark.content {
            Some(content) => content.clone(),
            None => match self.api.message_content(&mark.channel_id, &mark.id).await {
                Ok(content) => content,
                Err(error) => {
                    tracing::warn!(%error, "could not read a pressed message");
                    return;
                }
            },
        };
        let text = format!(
            "{content}\n{} by {}",
            done(action),
            crate::render::mention(Platform::Discord, user)
        );
        let body = content::body(
            &crate::chat::split::truncate(&text, content::CONTENT_LIMIT, "Discord"),
            &[],
        );
        if let Err(error) = self.api.edit(&mark.channel_id, &mark.id, &body).await {
            tracing::warn!(%error, "could not mark a pressed message");
        }
    }
}

/// The question a button that asks first puts.
fn question(action: &ButtonAction) -> String {
    match action {
        ButtonAction::Acknowledge { incident } => format!("**Acknowledge {incident}?**"),
        ButtonAction::Resolve { incident } => format!(
            "**Resolve {incident}?** This stops its escalation and reminders and announces the resolution."
        ),
        ButtonAction::Confirm { request } => format!("**Apply change #{request} now?**"),
        ButtonAction::Cancel { request } => format!("**Cancel change #{request}?**"),
        ButtonAction::Undo { request } => format!("**Undo change #{request}?**"),
    }
}

fn done(action: &ButtonAction) -> &'static str {
    match action {
        ButtonAction::Acknowledge { .. } => "✅ Acknowledged",
        ButtonAction::Resolve { .. } => "✅ Resolved",
        ButtonAction::Confirm { .. } => "✅ Confirmed",
        ButtonAction::Cancel { .. } => "🚫 Cancelled",
        ButtonAction::Undo { .. } => "↩️ Undo requested",
    }
}

/// The label of the button with `custom_id` in a message's components.
fn pressed_label(message: &Value, custom_id: &str) -> Option<String> {
    message["components"]
        .as_array()?
        .iter()
        .filter_map(|row| row["components"].as_array())
        .flatten()
        .find(|b| b["custom_id"] == custom_id)
        .and_then(|b| b["label"].as_str())
        .map(String::from)
}

/// A message to mark as done after its button worked: the pressed message as Discord sent it
/// (unless it is ephemeral), or the one that asked a question (its content read when needed).
#[derive(Clone, Debug)]
struct Marked {
    channel_id: String,
    id: String,
    content: Option<String>,
}

impl Marked {
    fn of(message: &Value) -> Option<Marked> {
        let flags = message["flags"].as_u64().unwrap_or(0);
        if flags & EPHEMERAL != 0 {
            return None;
        }
        Some(Marked {
            channel_id: message["channel_id"].as_str()?.to_string(),
            id: message["id"].as_str()?.to_string(),
            content: Some(message["content"].as_str().unwrap_or_default().to_string()),
        })
    }
}

async fn interactions(
    State(discord): State<Arc<DiscordInbound>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(error) = super::verify(
        &discord.verifier,
        header("x-signature-timestamp"),
        header("x-signature-ed25519"),
        &body,
        discord.app.clock.now(),
    ) {
        tracing::warn!(%error, "Discord interaction refused");
        return refuse(StatusCode::UNAUTHORIZED, &error.to_string());
    }
    let Ok(interaction) = serde_json::from_slice::<Value>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "not JSON");
    };
    let kind = interaction["type"].as_u64().unwrap_or(0);
    if kind == PING {
        return respond(PONG, None);
    }
    if kind == AUTOCOMPLETE {
        return respond(AUTOCOMPLETE_RESULT, Some(json!({ "choices": [] })));
    }
    let sender = Sender::of(&interaction);
    if interaction["guild_id"].as_str() != Some(discord.config.guild_id.to_string().as_str()) {
        return respond(
            CHANNEL_MESSAGE,
            Some(ephemeral(
                "warroom works in its Discord server's channels; use /incident there.",
            )),
        );
    }
    // Discord never sends an interaction twice; one seen before is a replay of a captured
    // request (within the signature's five minutes) and changes nothing.
    if matches!(kind, APPLICATION_COMMAND | MESSAGE_COMPONENT) {
        let id = interaction["id"].as_str().unwrap_or_default();
        if id.is_empty() {
            return refuse(StatusCode::BAD_REQUEST, "interaction without id");
        }
        match discord
            .app
            .store
            .record_inbound_event(INTERACTIONS_SOURCE, id, discord.app.clock.now())
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(interaction = id, "Discord interaction seen before; ignored");
                return respond(
                    CHANNEL_MESSAGE,
                    Some(ephemeral("This interaction was already handled.")),
                );
            }
            Err(error) => {
                tracing::error!(%error, "cannot record a Discord interaction");
                return refuse(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable");
            }
        }
    }
    match kind {
        APPLICATION_COMMAND => match commands::command_text(&interaction["data"]) {
            Ok(text) => discord.answer_command(sender, text).await,
            Err(error) => {
                let text = format!("{error} Try `/incident help`.");
                respond(CHANNEL_MESSAGE, Some(ephemeral(&text)))
            }
        },
        MESSAGE_COMPONENT => discord.press(sender, &interaction).await,
        _ => respond(
            CHANNEL_MESSAGE,
            Some(ephemeral(
                "warroom does not handle this kind of interaction.",
            )),
        ),
    }
}
