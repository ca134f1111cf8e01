//! `POST /slack/commands`, `/slack/interactions` and `/slack/events`.
//!
//! Every request is verified (signing secret, five-minute window) before anything is read from
//! it. Slack wants an answer within 3 seconds: a command's answer is returned directly when it
//! is ready within two, and otherwise sent through the command's `response_url` when it is.
//! Button presses are answered at once and their result is sent through `response_url`.
//! Events are acknowledged at once and deduplicated by event id (Slack retries them).

use super::api::SlackApi;
use super::blocks;
use crate::app::{App, Origin};
use crate::chat::ChatRefs;
use crate::chat::changes_an_incident;
use crate::config::SlackConfig;
use crate::core::command;
use crate::core::message::{ButtonAction, Message};
use crate::core::{Incident, Platform, UserRef, views};
use crate::render::Renderer;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// A command's answer is returned in the HTTP reply when it is ready this soon; otherwise the
/// reply says "working on it" and the answer follows through `response_url` (Slack: 3 s).
pub const REPLY_WITHIN: Duration = Duration::from_millis(2_000);
/// Largest request accepted (an interaction payload carries the whole message).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// How long a group-membership check may take before the answer is "not allowed".
const MEMBERSHIP_CHECK: Duration = Duration::from_secs(1);
/// Inbound event source name in the store.
const EVENTS_SOURCE: &str = "slack";

/// What the Slack endpoints need.
pub struct SlackInbound {
    pub app: Arc<App>,
    /// This platform's ids in the store (one per process: it keeps what never changes).
    pub refs: ChatRefs,
    pub api: Arc<SlackApi>,
    pub renderer: Arc<Renderer>,
    pub config: SlackConfig,
    /// How long a command's answer may take to be returned in the reply itself (normally
    /// [`REPLY_WITHIN`]).
    pub reply_within: Duration,
}

/// Whether warroom serves a request from workspace `team_id` (of organisation
/// `enterprise_id`, when the request names one). A Slack app installed in several workspaces
/// signs all their requests with the same secret, so the workspace is checked too: against
/// `listed` (`slack.workspaces`) when set; otherwise against the bot token's own, `own`, once
/// `auth.test` has told it (until then every signed request is served). The token of an
/// organisation-wide install (Enterprise Grid) names the organisation (`E…`), not a
/// workspace: then a request is served unless it names another organisation (Socket Mode's
/// commands and events name none).
pub fn serves(
    listed: &[String],
    own: Option<&str>,
    team_id: &str,
    enterprise_id: Option<&str>,
) -> bool {
    if !listed.is_empty() {
        return listed.iter().any(|w| w == team_id);
    }
    match own {
        None => true,
        Some(org) if org.starts_with('E') => enterprise_id.is_none_or(|e| e.is_empty() || e == org),
        Some(own) => own == team_id,
    }
}

/// The answer to a slash command from a workspace warroom does not serve.
pub const OTHER_WORKSPACE: &str =
    "This warroom does not serve this Slack workspace; nothing was done.";

pub fn routes(state: Arc<SlackInbound>) -> Router {
    Router::new()
        .route("/slack/commands", post(commands))
        .route("/slack/interactions", post(interactions))
        .route("/slack/events", post(events))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

fn refuse(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "error": text }))).into_response()
}

/// Slack escapes `&`, `<` and `>` in the text it sends.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

impl SlackInbound {
    /// Whether a signed request from workspace `team_id` (of organisation `enterprise_id`,
    /// when the request says) comes from one warroom does not serve (`serves`); logged.
    pub fn foreign_workspace(&self, team_id: &str, enterprise_id: Option<&str>) -> bool {
        let foreign = !serves(
            &self.config.workspaces,
            self.api.known_workspace(),
            team_id,
            enterprise_id,
        );
        if foreign {
            tracing::warn!(
                team = %team_id.chars().take(40).collect::<String>(),
                "Slack request from a workspace warroom does not serve; refused"
            );
        }
        foreign
    }

    /// `None` when the request is Slack's; otherwise the 401 to answer.
    fn unverified(&self, headers: &HeaderMap, body: &[u8]) -> Option<Response> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let error = super::verify(
            &self.config.signing_secret,
            header("x-slack-request-timestamp"),
            header("x-slack-signature"),
            body,
            self.app.clock.now(),
        )
        .err()?;
        tracing::warn!(%error, "Slack request refused");
        Some(refuse(StatusCode::UNAUTHORIZED, &error.to_string()))
    }

    /// A message rendered for Slack.
    fn content(&self, message: &Message) -> blocks::SlackContent {
        match self.renderer.render(Platform::Slack, message) {
            Ok(rendered) => blocks::content(&rendered),
            Err(error) => {
                tracing::error!(%error, "cannot render a reply");
                blocks::SlackContent {
                    text: "warroom could not render its answer; the error is in its log.".into(),
                    blocks: Vec::new(),
                    ephemeral: true,
                }
            }
        }
    }

    /// The incident channel a Slack channel id belongs to, or the id itself.
    async fn channel_name(&self, channel_id: &str) -> Result<String, Message> {
        crate::chat::channel_name(&self.refs, channel_id).await
    }

    /// Slack ids the escalation steps mention (`slack:U…` users, `slack:S…` groups): the
    /// people called on to acknowledge may always do so.
    fn escalation_mentions(&self) -> (Vec<String>, Vec<String>) {
        let mut users = Vec::new();
        let mut groups = Vec::new();
        for step in &self.app.policy.escalation {
            for mention in &step.mention {
                if let Some(id) = mention.strip_prefix("slack:") {
                    if id.starts_with('S') {
                        groups.push(id.to_string());
                    } else {
                        users.push(id.to_string());
                    }
                }
            }
        }
        (users, groups)
    }

    /// `None` when `user` may change `incident`; otherwise the refusal to show them.
    ///
    /// With `slack.allowed_users` and `slack.allowed_groups` both empty, everyone may. Otherwise:
    /// the incident's declarer and commander, `slack.responders`, the allowed users, members of
    /// the allowed groups, and the users and groups the escalation steps mention.
    pub async fn refusal(&self, user: &UserRef, incident: Option<&Incident>) -> Option<Message> {
        let config = &self.config;
        if config.allowed_users.is_empty() && config.allowed_groups.is_empty() {
            return None;
        }
        let (step_users, step_groups) = self.escalation_mentions();
        let listed = config
            .allowed_users
            .iter()
            .chain(&config.responders)
            .chain(&step_users)
            .any(|u| u == user.as_str());
        if listed || incident.is_some_and(|i| i.commander == *user || i.declared_by == *user) {
            return None;
        }
        let mut unchecked = Vec::new();
        for group in config.allowed_groups.iter().chain(&step_groups) {
            match tokio::time::timeout(MEMBERSHIP_CHECK, self.api.group_members(group)).await {
                Ok(Ok(members)) if members.iter().any(|m| m == user.as_str()) => return None,
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, group, "cannot check a user group");
                    unchecked.push(group.clone());
                }
                Err(_) => {
                    tracing::warn!(group, "user group check timed out");
                    unchecked.push(group.clone());
                }
            }
        }
        let mut text = "Only the incident's responders can do that: the declarer, the commander, slack.responders, the people and groups in slack.allowed_users and slack.allowed_groups, and those the escalation calls on.".to_string();
        if let Some(incident) = incident {
            text.push_str(&format!(
                " Ask @{} (commander of {}).",
                incident.commander, incident.key
            ));
        }
        if !unchecked.is_empty() {
            text.push_str(" (Slack did not answer a group-membership check; try again shortly.)");
        }
        Some(views::refusal(text))
    }

    /// Run a command typed in `channel_id` by `user_id`; `request` names it to be acted on
    /// once (`Origin::request`).
    pub async fn command(
        &self,
        channel_id: &str,
        user_id: &str,
        text: &str,
        request: Option<String>,
    ) -> Option<Message> {
        let Ok(actor) = UserRef::parse(user_id) else {
            return Some(views::refusal(format!(
                "`{user_id}` is not a Slack user id."
            )));
        };
        let parsed = command::parse(text).ok();
        let channel =
            match crate::chat::command_channel(&self.refs, channel_id, parsed.as_ref()).await {
                Ok(channel) => channel,
                Err(message) => return Some(message),
            };
        if let Some(parsed) = parsed
            && changes_an_incident(&parsed)
        {
            // Without the incident the declarer and commander cannot be told apart from
            // anyone else: say the store is down rather than refuse them.
            let incident = match self.app.store.incident_by_channel(&channel).await {
                Ok(incident) => incident,
                Err(error) => {
                    tracing::error!(%error, "cannot read the incident");
                    return Some(crate::chat::store_unavailable());
                }
            };
            if let Some(refusal) = self.refusal(&actor, incident.as_ref()).await {
                self.app.metrics.command(parsed.name().name(), "refused");
                return Some(refusal);
            }
        }
        let origin = Origin {
            platform: Platform::Slack,
            channel,
            actor,
            request,
        };
        self.app.handle_command(&origin, text).await
    }

    /// A button press by `user_id` in `channel_id`.
    pub async fn button(
        &self,
        channel_id: &str,
        user_id: &str,
        action: &ButtonAction,
        request: Option<String>,
    ) -> Option<Message> {
        let Ok(actor) = UserRef::parse(user_id) else {
            return Some(views::refusal(format!(
                "`{user_id}` is not a Slack user id."
            )));
        };
        // Acknowledge and Resolve follow Slack's incident permissions; runbook buttons
        // (Confirm, Cancel, Undo) are checked by the runbook guard's roles.
        if let ButtonAction::Acknowledge { incident } | ButtonAction::Resolve { incident } = action
        {
            let incident = match self.app.store.incident(*incident).await {
                Ok(incident) => incident,
                Err(error) => {
                    tracing::error!(%error, "cannot read the incident");
                    return Some(crate::chat::store_unavailable());
                }
            };
            if let Some(refusal) = self.refusal(&actor, incident.as_ref()).await {
                return Some(refusal);
            }
        }
        let channel = match self.channel_name(channel_id).await {
            Ok(channel) => channel,
            Err(message) => return Some(message),
        };
        let origin = Origin {
            platform: Platform::Slack,
            channel,
            actor,
            request,
        };
        self.app.handle_button(&origin, action).await
    }

    /// Send a late answer through `response_url`, or as an ephemeral message when there is
    /// none.
    async fn answer_later(
        &self,
        response_url: &str,
        channel_id: &str,
        user_id: &str,
        message: &Message,
    ) {
        let content = self.content(message);
        let sent = if response_url.is_empty() {
            self.api
                .post_ephemeral(channel_id, user_id, &content.text, &content.blocks)
                .await
        } else {
            self.api
                .respond(response_url, &content.text, &content.blocks)
                .await
        };
        if let Err(error) = sent {
            tracing::warn!(%error, "could not send an answer to a Slack user");
        }
    }
}

impl SlackInbound {
    /// Answer a slash command: the answer itself when it is ready within `reply_within`,
    /// otherwise "working on it" now and the answer through `response_url` when it is ready.
    /// `text` is as Slack sent it (with `&`, `<`, `>` escaped).
    pub async fn answer_command(
        self: &Arc<Self>,
        channel_id: String,
        user_id: String,
        text: String,
        response_url: String,
        request: Option<String>,
    ) -> blocks::SlackContent {
        let plain = unescape(&text);
        let worker = self.clone();
        let (channel, user) = (channel_id.clone(), user_id.clone());
        let typed = plain.clone();
        let mut work = self
            .app
            .tasks
            .spawn(async move { worker.command(&channel, &user, &typed, request).await });
        let notice = |text: String| blocks::SlackContent {
            text,
            blocks: Vec::new(),
            ephemeral: true,
        };
        match crate::chat::ready_within(self.reply_within, &mut work).await {
            Ok(Ok(Some(reply))) => self.content(&reply),
            // Done, and said in the channel: a short receipt so the person sees it was taken.
            Ok(Ok(None)) => notice(format!(
                "✓ /incident {}",
                crate::render::escape(Platform::Slack, &blocks::truncate(&plain, 200))
            )),
            Ok(Err(error)) => {
                tracing::error!(%error, "a slash command failed");
                notice("warroom failed to handle that command; the error is in its log.".into())
            }
            Err(_) => {
                let later = self.clone();
                self.app.tasks.spawn(async move {
                    match work.await {
                        Ok(Some(reply)) => {
                            later
                                .answer_later(&response_url, &channel_id, &user_id, &reply)
                                .await
                        }
                        Ok(None) => {}
                        Err(error) => tracing::error!(%error, "a slash command failed"),
                    }
                });
                notice("⏳ Working on it; the answer will follow here.".into())
            }
        }
    }

    /// A button was pressed: handled after the caller has answered Slack, with any answer
    /// sent through `response_url`. When it worked, the pressed message (unless it is the
    /// summary, which the outbox edits) loses its buttons and says who acted. Buttons that
    /// are not warroom's are ignored. `button` is the pressed button's `action_id` and
    /// `value`; `request` names the press to be acted on once (`Origin::request`).
    pub fn press(
        self: &Arc<Self>,
        channel_id: String,
        user_id: String,
        (action_id, value): (&str, Option<&str>),
        response_url: String,
        pressed: Option<PressedMessage>,
        request: Option<String>,
    ) {
        if !action_id.starts_with("warroom_") {
            return;
        }
        let action = value.and_then(|v| serde_json::from_str::<ButtonAction>(v).ok());
        let slack = self.clone();
        self.app.tasks.spawn(async move {
            let reply = match &action {
                Some(action) => slack.button(&channel_id, &user_id, action, request).await,
                None => Some(views::refusal(
                    "This button is from an older version of warroom and no longer works; use /incident instead.".to_string(),
                )),
            };
            match (reply, &action, pressed) {
                (Some(reply), _, _) => {
                    slack
                        .answer_later(&response_url, &channel_id, &user_id, &reply)
                        .await
                }
                (None, Some(action), Some(pressed)) => {
                    slack.mark_pressed(&pressed, action, &user_id).await
                }
                _ => {}
            }
        });
    }

    /// Replace the buttons of a pressed message with who acted ("✅ Acknowledged by @bob").
    async fn mark_pressed(&self, pressed: &PressedMessage, action: &ButtonAction, user_id: &str) {
        let summary = match self.channel_name(&pressed.channel_id).await {
            Ok(name) => self
                .refs
                .slot(&name, crate::core::Slot::Summary)
                .await
                .ok()
                .flatten(),
            Err(_) => None,
        };
        if summary == Some((pressed.channel_id.clone(), pressed.ts.clone())) {
            return;
        }
        let done = match action {
            ButtonAction::Acknowledge { .. } => "✅ Acknowledged",
            ButtonAction::Resolve { .. } => "✅ Resolved",
            ButtonAction::Confirm { .. } => "✅ Confirmed",
            ButtonAction::Cancel { .. } => "🚫 Cancelled",
            ButtonAction::Undo { .. } => "↩️ Undo requested",
        };
        let mut blocks: Vec<Value> = pressed
            .blocks
            .iter()
            .filter(|b| b["type"] != "actions")
            .cloned()
            .collect();
        blocks.push(json!({
            "type": "context",
            "elements": [{
                "type": "mrkdwn",
                "text": format!("{done} by {}", crate::render::mention(Platform::Slack, user_id)),
            }],
        }));
        if let Err(error) = self
            .api
            .update(&pressed.channel_id, &pressed.ts, &pressed.text, &blocks)
            .await
        {
            tracing::warn!(%error, "could not mark a pressed message");
        }
    }

    /// An Events API event: `Ok(false)` if its id was seen before (a retry). An `app_mention`
    /// (`user`, `channel`, text) is run as a command after the caller has answered, with the
    /// answer as an ephemeral message.
    pub async fn event(
        self: &Arc<Self>,
        event_id: &str,
        mention: Option<(String, String, String)>,
    ) -> Result<bool, crate::store::StoreError> {
        if !self
            .app
            .store
            .record_inbound_event(EVENTS_SOURCE, event_id, self.app.clock.now())
            .await?
        {
            return Ok(false);
        }
        if let Some((user, channel, text)) = mention {
            let text = mention_text(&text);
            let slack = self.clone();
            self.app.tasks.spawn(async move {
                if let Some(reply) = slack.command(&channel, &user, &text, None).await {
                    slack.answer_later("", &channel, &user, &reply).await;
                }
            });
        }
        Ok(true)
    }
}

/// The message whose button was pressed, as Slack sent it back.
#[derive(Clone, Debug)]
pub struct PressedMessage {
    pub channel_id: String,
    pub ts: String,
    pub text: String,
    pub blocks: Vec<Value>,
}

#[derive(Deserialize)]
struct SlashCommand {
    #[serde(default)]
    team_id: String,
    enterprise_id: Option<String>,
    #[serde(default)]
    text: String,
    user_id: String,
    channel_id: String,
    #[serde(default)]
    response_url: String,
    trigger_id: Option<String>,
}

/// The request key of a `trigger_id`; `None` for an empty one (which would name every
/// request without one).
pub fn trigger_key(trigger_id: &str) -> Option<String> {
    (!trigger_id.is_empty()).then(|| format!("trigger:{trigger_id}"))
}

/// What names a signed slash command or button press to be acted on once
/// (`Origin::request`): its `trigger_id`, which Slack gives each one (the body carrying it is
/// signed), or, without one, its signature.
fn request_key(trigger_id: Option<&str>, headers: &HeaderMap) -> String {
    match trigger_id.and_then(trigger_key) {
        Some(key) => key,
        None => format!(
            "signature:{}",
            headers
                .get("x-slack-signature")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        ),
    }
}

async fn commands(
    State(slack): State<Arc<SlackInbound>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = slack.unverified(&headers, &body) {
        return refused;
    }
    let Ok(form) = serde_urlencoded::from_bytes::<SlashCommand>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "not a slash command");
    };
    if slack.foreign_workspace(&form.team_id, form.enterprise_id.as_deref()) {
        let refused = slack.content(&views::refusal(OTHER_WORKSPACE.to_string()));
        return Json(refused.reply_json()).into_response();
    }
    let answer = slack
        .answer_command(
            form.channel_id,
            form.user_id,
            form.text,
            form.response_url,
            Some(request_key(form.trigger_id.as_deref(), &headers)),
        )
        .await;
    Json(answer.reply_json()).into_response()
}

#[derive(Deserialize)]
struct InteractionForm {
    payload: String,
}

async fn interactions(
    State(slack): State<Arc<SlackInbound>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = slack.unverified(&headers, &body) {
        return refused;
    }
    let Some(payload) = serde_urlencoded::from_bytes::<InteractionForm>(&body)
        .ok()
        .and_then(|form| serde_json::from_str::<Value>(&form.payload).ok())
    else {
        return refuse(StatusCode::BAD_REQUEST, "not an interaction payload");
    };
    if payload["type"] != "block_actions"
        || slack.foreign_workspace(
            payload["team"]["id"].as_str().unwrap_or_default(),
            payload["enterprise"]["id"]
                .as_str()
                .or(payload["team"]["enterprise_id"].as_str()),
        )
    {
        return StatusCode::OK.into_response();
    }
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let Some(pressed) = payload["actions"].as_array().and_then(|a| a.first()) else {
        return refuse(StatusCode::BAD_REQUEST, "no action in the payload");
    };
    let message = (payload["container"]["type"] == "message"
        && payload["message"]["blocks"].is_array())
    .then(|| PressedMessage {
        channel_id: text(&payload["container"]["channel_id"]),
        ts: text(&payload["container"]["message_ts"]),
        text: text(&payload["message"]["text"]),
        blocks: payload["message"]["blocks"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    });
    slack.press(
        text(&payload["channel"]["id"]),
        text(&payload["user"]["id"]),
        (
            pressed["action_id"].as_str().unwrap_or_default(),
            pressed["value"].as_str(),
        ),
        text(&payload["response_url"]),
        message,
        Some(request_key(payload["trigger_id"].as_str(), &headers)),
    );
    StatusCode::OK.into_response()
}

/// The text of an `app_mention` after the leading mention of the bot.
fn mention_text(text: &str) -> String {
    let mut rest = text.trim_start();
    while let Some(after) = rest.strip_prefix("<@")
        && let Some(end) = after.find('>')
    {
        rest = after[end + 1..].trim_start();
    }
    unescape(rest)
}

async fn events(
    State(slack): State<Arc<SlackInbound>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = slack.unverified(&headers, &body) {
        return refused;
    }
    let Ok(envelope) = serde_json::from_slice::<Value>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "not JSON");
    };
    match envelope["type"].as_str() {
        Some("url_verification") => {
            Json(json!({ "challenge": envelope["challenge"] })).into_response()
        }
        Some("event_callback") => {
            let Some(event_id) = envelope["event_id"].as_str() else {
                return refuse(StatusCode::BAD_REQUEST, "event_callback without event_id");
            };
            // The installation's workspace: in a channel shared with another organisation
            // the outer `team_id` names the workspace that hosts the channel.
            let team = envelope["authorizations"][0]["team_id"]
                .as_str()
                .or(envelope["team_id"].as_str())
                .unwrap_or_default();
            let enterprise = envelope["authorizations"][0]["enterprise_id"]
                .as_str()
                .or(envelope["enterprise_id"].as_str());
            if slack.foreign_workspace(team, enterprise) {
                return Json(json!({ "status": "ignored" })).into_response();
            }
            let event = &envelope["event"];
            let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
            let mention =
                (event["type"] == "app_mention" && event.get("bot_id").is_none()).then(|| {
                    (
                        text(&event["user"]),
                        text(&event["channel"]),
                        text(&event["text"]),
                    )
                });
            match slack.event(event_id, mention).await {
                Ok(true) => Json(json!({ "status": "ok" })).into_response(),
                Ok(false) => {
                    let retry = headers
                        .get("x-slack-retry-num")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("0");
                    tracing::info!(event = event_id, retry, "Slack event seen before; ignored");
                    (
                        StatusCode::OK,
                        [("x-slack-no-retry", "1")],
                        Json(json!({ "status": "duplicate" })),
                    )
                        .into_response()
                }
                Err(error) => {
                    // Slack retries; the event is not lost.
                    tracing::error!(%error, event = event_id, "cannot record a Slack event");
                    refuse(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable")
                }
            }
        }
        _ => Json(json!({ "status": "ignored" })).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_workspaces_served_are_served() {
        let listed = vec!["T0ONE".to_string(), "T0TWO".to_string()];
        // Listed: exactly those, whatever the token's own.
        assert!(serves(&listed, Some("T0OWN"), "T0TWO", None));
        assert!(!serves(&listed, Some("T0OWN"), "T0OWN", None));
        // None listed: the token's own workspace, once known.
        assert!(serves(&[], None, "T0ANY", None), "not known yet");
        assert!(serves(&[], Some("T0OWN"), "T0OWN", None));
        assert!(!serves(&[], Some("T0OWN"), "T0OTHER", Some("E0ORG")));
        // An org-wide install: its organisation's workspaces, or a request that names none.
        assert!(serves(&[], Some("E0ORG"), "T0ANY", Some("E0ORG")));
        assert!(serves(&[], Some("E0ORG"), "T0ANY", None));
        assert!(serves(&[], Some("E0ORG"), "T0ANY", Some("")));
        assert!(!serves(&[], Some("E0ORG"), "T0ANY", Some("E0ELSE")));
    }

    #[test]
    fn mention_text_drops_the_bot_mention_and_unescapes() {
        assert_eq!(
            mention_text("<@U0BOT> status identified"),
            "status identified"
        );
        assert_eq!(
            mention_text("<@U0BOT>   update a &amp; b &lt;x&gt;"),
            "update a & b <x>"
        );
        assert_eq!(mention_text("help"), "help");
    }
}
