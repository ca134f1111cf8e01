//! Discord end to end: signed interactions to `warroom serve`'s `/discord/interactions` over
//! real HTTP, and warroom's serenity client pointed at the fake Discord (`support::discord`),
//! with the fake PagerDuty for the acknowledgement path.

use crate::pagerduty::{config_text, write_config};
use crate::support::TestDb;
use crate::support::discord::{
    self as fake, APP_ID, BOT_TOKEN, FakeDiscord, Fault, GUILD_ID, Posted, route,
};
use crate::support::pagerduty::FakePagerDuty;
use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use warroom::app::App;
use warroom::app::clock::{Clock, VirtualClock};
use warroom::chat::Delivered;
use warroom::chat::discord::{DiscordApi, DiscordInbound, DiscordSink};
use warroom::core::Status;
use warroom::pagerduty::PagerDutyClient;
use warroom::render::Renderer;
use warroom::store::Store;

pub const DECLARER: &str = "1100000000000000101";
pub const RESPONDER: &str = "1100000000000000102";
pub const LEAD: &str = "1100000000000000103";
pub const STRANGER: &str = "1100000000000000104";
pub const ONCALL_ROLE: &str = "1100000000000000201";

pub struct Discord {
    pub fake: FakeDiscord,
    pub pd: FakePagerDuty,
    pub app: Arc<App>,
    pub clock: Arc<VirtualClock>,
    pub store: Arc<dyn Store>,
    pub sink: DiscordSink,
    pub pagerduty: PagerDutyClient,
    pub base: String,
    /// The fake's id of the incidents (announcement) channel.
    pub incidents: String,
    /// The fake's id of an ordinary channel people type in.
    pub general: String,
    /// The category incident channels go in.
    pub category: String,
    http: reqwest::Client,
}

/// The `[discord]` section pointing at the fake.
pub fn discord_section(fake: &FakeDiscord, extra: &str) -> String {
    format!(
        r#"
[discord]
public_key = "{}"
bot_token = "{BOT_TOKEN}"
application_id = "{APP_ID}"
guild_id = "{GUILD_ID}"
incidents_channel = "incidents"
category = "Incidents"
api_url = "{}"
timeout = "2s"
responders = ["{RESPONDER}"]
{extra}
"#,
        fake::public_key_hex(),
        fake.url()
    )
}

/// Which user an interaction comes from, and with which roles.
#[derive(Clone, Copy)]
pub struct As<'a> {
    pub user: &'a str,
    pub roles: &'a [&'a str],
}

pub const fn user(id: &str) -> As<'_> {
    As {
        user: id,
        roles: &[],
    }
}

impl Discord {
    pub async fn start(db: &TestDb) -> Discord {
        Discord::with(db, "", "").await
    }

    /// `discord_extra` goes into `[discord]`, `extra` after it (other sections).
    pub async fn with(db: &TestDb, discord_extra: &str, extra: &str) -> Discord {
        Discord::build(
            db,
            discord_extra,
            extra,
            warroom::chat::discord::inbound::REPLY_WITHIN,
        )
        .await
    }

    pub async fn build(
        db: &TestDb,
        discord_extra: &str,
        extra: &str,
        reply_within: std::time::Duration,
    ) -> Discord {
        Discord::build_with(db, discord_extra, extra, reply_within, None).await
    }

    /// With a runbook engine (a cluster, roles) when given.
    pub async fn build_with(
        db: &TestDb,
        discord_extra: &str,
        extra: &str,
        reply_within: std::time::Duration,
        runbooks: Option<warroom::app::runbook::Runbooks>,
    ) -> Discord {
        let fake = FakeDiscord::start().await;
        let general = fake.add_channel(GUILD_ID, "general", None);
        let incidents = fake.add_channel(GUILD_ID, "incidents", None);
        let category = fake.add_category(GUILD_ID, "Incidents");
        let pd = FakePagerDuty::start().await;
        let text = format!(
            "{}{}",
            config_text(&pd.url, ""),
            discord_section(&fake, discord_extra)
        ) + extra;
        let dir = tempfile::tempdir().unwrap();
        let config = warroom::config::load(Some(&write_config(dir.path(), &text))).unwrap();
        let discord_config = config.discord.clone().expect("discord configured");
        let store = db.open().await;
        let clock = Arc::new(VirtualClock::starting_at(chrono::Utc::now()));
        let mut app = App::new(
            store.clone(),
            config.policy.clone(),
            clock.clone(),
            Duration::seconds(60),
        );
        if let Some(runbooks) = runbooks {
            app = app.with_runbooks(runbooks);
        }
        let app = Arc::new(app);
        let api = Arc::new(DiscordApi::new(&discord_config));
        let renderer = Arc::new(Renderer::load(None).unwrap());
        let sink = DiscordSink::new(
            api.clone(),
            store.clone(),
            renderer.clone(),
            discord_config.clone(),
            config.policy.announce_channel.clone(),
        );
        let inbound = Arc::new(DiscordInbound {
            app: app.clone(),
            refs: warroom::chat::ChatRefs::new(store.clone(), "discord"),
            api,
            renderer,
            verifier: warroom::chat::discord::verifier(&discord_config.public_key).unwrap(),
            config: discord_config,
            reply_within,
        });
        let router = warroom::http::router(warroom::http::HttpDeps {
            alertmanager: None,
            store: store.clone(),
            scheduler: Arc::new(warroom::http::Heartbeat::default()),
            stall_after: Duration::seconds(20),
            pagerduty: None,
            slack: None,
            discord: Some(inbound.clone()),
            metrics: app.metrics.clone(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let pagerduty = PagerDutyClient::new(config.pagerduty.clone()).unwrap();
        Discord {
            fake,
            pd,
            app,
            clock,
            store,
            sink,
            pagerduty,
            base,
            incidents,
            general,
            category,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    /// POST an interaction body with the given headers.
    pub async fn send(
        &self,
        body: &str,
        timestamp: Option<&str>,
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/discord/interactions", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(ts) = timestamp {
            request = request.header("x-signature-timestamp", ts);
        }
        if let Some(sig) = signature {
            request = request.header("x-signature-ed25519", sig);
        }
        request.send().await.unwrap()
    }

    /// POST an interaction signed now (by the app's clock); the reply's JSON.
    pub async fn signed(&self, interaction: &Value) -> Value {
        let body = interaction.to_string();
        let ts = self.clock.now().timestamp().to_string();
        let response = self
            .send(
                &body,
                Some(&ts),
                Some(&fake::sign_interaction(&ts, body.as_bytes())),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// The envelope Discord sends for any interaction in `channel` by `who`.
    pub fn interaction(&self, kind: u8, who: As<'_>, channel: &str, token: &str) -> Value {
        static NEXT: std::sync::atomic::AtomicU64 =
            std::sync::atomic::AtomicU64::new(1_300_000_000_000_000_001);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        json!({
            "id": id.to_string(),
            "application_id": APP_ID.to_string(),
            "type": kind,
            "token": token,
            "version": 1,
            "guild_id": GUILD_ID.to_string(),
            "channel_id": channel,
            "channel": { "id": channel, "type": 0 },
            "member": {
                "user": {
                    "id": who.user, "username": "someone", "discriminator": "0",
                    "global_name": null, "avatar": null,
                },
                "roles": who.roles,
                "permissions": "0",
                "joined_at": "2026-01-01T00:00:00+00:00",
                "deaf": false, "mute": false, "flags": 0,
            },
            "locale": "en-US",
            "guild_locale": "en-US",
            "app_permissions": "0",
            "entitlements": [],
        })
    }

    /// `/incident <sub> options…` as `who` in `channel`: the reply's JSON and the token (for
    /// a deferred answer).
    pub async fn invoke(
        &self,
        who: As<'_>,
        channel: &str,
        sub: &str,
        options: Value,
    ) -> (Value, String) {
        let token = self.fake.interaction_token(channel);
        let mut interaction = self.interaction(2, who, channel, &token);
        interaction["data"] = json!({
            "id": "1300000000000000002",
            "name": "incident",
            "type": 1,
            "guild_id": GUILD_ID.to_string(),
            "options": [{ "name": sub, "type": 1, "options": options }],
        });
        (self.signed(&interaction).await, token)
    }

    /// `/incident declare title:<title>` in #general.
    pub async fn declare(&self, who: As<'_>, title: &str) -> Value {
        self.invoke(
            who,
            &self.general.clone(),
            "declare",
            json!([{ "name": "title", "type": 3, "value": title }]),
        )
        .await
        .0
    }

    /// Press the button whose `custom_id` starts with the action's JSON tag (e.g.
    /// `"acknowledge"`) on `message`, as `who`: the reply's JSON and the token.
    pub async fn click(&self, who: As<'_>, message: &Posted, action: &str) -> (Value, String) {
        let button = button(message, action);
        self.press(who, message, button["custom_id"].as_str().unwrap())
            .await
    }

    pub async fn press(&self, who: As<'_>, message: &Posted, custom_id: &str) -> (Value, String) {
        let token = self.fake.interaction_token(&message.channel_id);
        let mut interaction = self.interaction(3, who, &message.channel_id, &token);
        interaction["data"] = json!({ "custom_id": custom_id, "component_type": 2 });
        interaction["message"] = json!({
            "id": message.id,
            "channel_id": message.channel_id,
            "content": message.content,
            "components": message.components,
            "flags": message.flags,
            "author": { "id": fake::BOT_USER_ID.to_string(), "username": "warroom", "bot": true },
        });
        (self.signed(&interaction).await, token)
    }

    /// Fire due timers and deliver everything to Discord and PagerDuty, as the loops would.
    pub async fn pass(&self) {
        self.app.run_due_timers().await.unwrap();
        for _ in 0..10 {
            let discord = self.app.dispatch_outbox(&self.sink).await.unwrap();
            let pd = self.app.dispatch_outbox(&self.pagerduty).await.unwrap();
            if discord + pd == 0 {
                break;
            }
        }
    }

    /// The incident channel in the fake (the one whose name starts with `inc-`).
    pub fn incident_channel(&self) -> fake::Channel {
        let channels: Vec<_> = self
            .fake
            .channels(GUILD_ID)
            .into_iter()
            .filter(|c| c.name.starts_with("inc-"))
            .collect();
        assert_eq!(channels.len(), 1, "{channels:?}");
        channels.into_iter().next().unwrap()
    }

    /// The summary in `channel`: the message with 📋.
    pub fn summary(&self, channel: &str) -> Posted {
        self.fake
            .messages(channel)
            .into_iter()
            .find(|m| m.content.contains("📋"))
            .expect("summary posted")
    }

    /// The last thing an interaction's user saw (after a deferral, once it arrived).
    pub async fn answer(&self, token: &str) -> Posted {
        for _ in 0..200 {
            if let Some(last) = self.fake.interaction_messages(token).pop() {
                return last;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no answer arrived for interaction {token}");
    }

    /// What the person saw after an interaction: the reply itself (types 4 and 7), or the
    /// answer that replaced a deferral (types 5 and 6).
    pub async fn outcome(&self, reply: &Value, token: &str) -> Posted {
        match reply["type"].as_u64() {
            Some(4 | 7) => Posted {
                id: String::new(),
                channel_id: String::new(),
                content: reply["data"]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                components: reply["data"]["components"].clone(),
                embeds: json!([]),
                allowed_mentions: Some(reply["data"]["allowed_mentions"].clone()),
                pinged_users: Vec::new(),
                pinged_roles: Vec::new(),
                mass_mention: false,
                edited: false,
                flags: reply["data"]["flags"].as_u64().unwrap_or(0),
                original: true,
            },
            Some(5 | 6) => self.answer(token).await,
            _ => panic!("not an answer: {reply}"),
        }
    }

    /// The newest message in `channel` with a button whose action is `action`.
    pub fn newest_with_button(&self, channel: &str, action: &str) -> Posted {
        self.fake
            .messages(channel)
            .into_iter()
            .rev()
            .find(|m| {
                m.components
                    .to_string()
                    .contains(&format!("\\\"action\\\":\\\"{action}\\\""))
            })
            .unwrap_or_else(|| panic!("no message in {channel} with a {action} button"))
    }

    /// Press a button of `message` as `who`, answering "are you sure?" with yes where it asks;
    /// what the person saw in the end.
    pub async fn press_through(&self, who: As<'_>, message: &Posted, action: &str) -> Posted {
        let (reply, token) = self.click(who, message, action).await;
        let mut answer = self.outcome(&reply, &token).await;
        if let Some(yes) = answer.components[0]["components"][0]["custom_id"].as_str() {
            // The question is an ephemeral message in the same channel.
            let yes = yes.to_string();
            answer.id = "1300000000000009999".into();
            answer.channel_id = message.channel_id.clone();
            let (reply, token) = self.press(who, &answer, &yes).await;
            answer = self.outcome(&reply, &token).await;
        }
        answer
    }

    /// Wait (up to 10 s) for `ready` to hold: button work runs after the reply.
    pub async fn eventually(&self, what: &str, ready: impl Fn() -> bool) {
        for _ in 0..200 {
            if ready() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}");
    }
}

/// The button whose action (the JSON after `warroom:` or `warroom?:`) is `action` in a
/// message's components.
pub fn button(message: &Posted, action: &str) -> Value {
    message
        .components
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|row| row["components"].as_array())
        .flatten()
        .find(|b| {
            b["custom_id"]
                .as_str()
                .is_some_and(|id| id.contains(&format!("\"action\":\"{action}\"")))
        })
        .cloned()
        .unwrap_or_else(|| panic!("no {action} button in {}", message.components))
}

/// The reply's content (type 4), or `None` for a deferral (type 5).
fn content(reply: &Value) -> Option<String> {
    (reply["type"] == 4).then(|| reply["data"]["content"].as_str().unwrap().to_string())
}

pub async fn declaring_opens_a_channel_in_the_category_with_everything_in_it(db: &TestDb) {
    let d = Discord::start(db).await;
    let reply = d.declare(user(DECLARER), "API returning 503s").await;
    let text = content(&reply).expect("answered at once");
    assert!(text.contains("Declared INC-1"), "{reply}");
    assert_eq!(reply["data"]["flags"], 64, "only the declarer sees it");
    d.pass().await;

    let channel = d.incident_channel();
    assert!(channel.name.ends_with("-api-returning-503s"), "{channel:?}");
    assert_eq!(channel.parent_id.as_deref(), Some(d.category.as_str()));
    let topic = channel.topic.clone().unwrap();
    assert!(topic.contains("INC-1 P1 | investigating"), "{topic}");
    assert!(
        topic.contains(&format!("commander <@{DECLARER}>")),
        "{topic}"
    );
    // The declarer and the configured responder were given access, and were mentioned.
    for who in [DECLARER, RESPONDER] {
        assert!(
            channel
                .overwrites
                .iter()
                .any(|o| o.id == who && o.kind == 1),
            "{who}: {:?}",
            channel.overwrites
        );
    }
    let messages = d.fake.messages(&channel.id);
    let alert = messages
        .iter()
        .find(|m| m.content.contains("INCIDENT ALERT - P1"))
        .expect("alert posted");
    assert!(alert.content.contains(&format!("<@{DECLARER}>")));
    let pins = d.fake.pins(&channel.id);
    assert!(pins.contains(&alert.id), "alert pinned");
    let summary = d.summary(&channel.id);
    assert!(pins.contains(&summary.id), "summary pinned");
    button(&summary, "acknowledge");
    button(&summary, "resolve");
    let welcome = messages
        .iter()
        .find(|m| m.content.contains("Responders:"))
        .expect("responders mentioned");
    assert!(welcome.pinged_users.contains(&RESPONDER.to_string()));

    let announcements = d.fake.messages(&d.incidents);
    assert_eq!(announcements.len(), 1);
    assert!(
        announcements[0].content.contains("INC-1 (P1) declared by"),
        "{}",
        announcements[0].content
    );
    assert!(
        announcements[0]
            .content
            .contains(&format!("<#{}>", channel.id)),
        "links the channel: {}",
        announcements[0].content
    );
    assert_eq!(d.pd.accepted("trigger").len(), 1);
    assert!(d.fake.calls().iter().all(|c| c.authorized));
    for message in d.fake.messages(&channel.id) {
        assert!(!message.mass_mention && message.content.chars().count() <= 2_000);
    }
}

pub async fn buttons_and_commands_keep_topic_and_summary_current(db: &TestDb) {
    let d = Discord::start(db).await;
    d.declare(user(DECLARER), "API returning 503s").await;
    d.pass().await;
    let channel = d.incident_channel();
    let escalation = d
        .fake
        .messages(&channel.id)
        .into_iter()
        .find(|m| m.content.contains("escalation step 1"))
        .expect("escalation posted");

    // Acknowledge: answered at once (for the presser only), the pressed message marked.
    let (reply, token) = d.click(user(LEAD), &escalation, "acknowledge").await;
    assert_eq!(reply["type"], 4, "{reply}");
    let answer = d.outcome(&reply, &token).await;
    assert_eq!(answer.flags, 64);
    assert!(
        answer.content.contains("Acknowledged ✓"),
        "{}",
        answer.content
    );
    d.eventually("the pressed message to say who acted", || {
        d.fake
            .messages(&channel.id)
            .iter()
            .any(|m| m.id == escalation.id && m.edited)
    })
    .await;
    let pressed = d
        .fake
        .messages(&channel.id)
        .into_iter()
        .find(|m| m.id == escalation.id)
        .unwrap();
    assert!(
        pressed
            .content
            .contains(&format!("Acknowledged by <@{LEAD}>")),
        "{}",
        pressed.content
    );
    assert_eq!(pressed.components, json!([]), "its buttons are gone");
    d.pass().await;
    let incident = d.store.incidents(false, 5).await.unwrap().remove(0);
    assert_eq!(incident.status, Status::Acknowledged);
    assert_eq!(incident.acknowledged_by.as_ref().unwrap().as_str(), LEAD);
    assert_eq!(d.pd.accepted("acknowledge").len(), 1);
    let summary = d.summary(&channel.id);
    assert!(summary.edited, "edited in place");
    assert!(
        summary.content.contains(&format!("<@{LEAD}>")),
        "{}",
        summary.content
    );
    assert!(
        !summary.components.to_string().contains("acknowledge"),
        "spent button removed"
    );
    let topic = || d.fake.channel(&channel.id).unwrap().topic.unwrap();
    assert!(topic().contains("acknowledged"), "{}", topic());

    // Sub-commands with typed options change topic and summary.
    let sev = json!([{ "name": "severity", "type": 3, "value": "P0" }]);
    d.invoke(user(LEAD), &channel.id, "sev", sev).await;
    let status = json!([{ "name": "status", "type": 3, "value": "identified" }]);
    d.invoke(user(LEAD), &channel.id, "status", status).await;
    d.pass().await;
    assert!(topic().contains("INC-1 P0 | identified"), "{}", topic());
    assert!(d.summary(&channel.id).content.contains("identified"));

    // A new commander (a USER option) is given access and named in the topic.
    let who = json!([{ "name": "user", "type": 6, "value": RESPONDER }]);
    d.invoke(user(LEAD), &channel.id, "commander", who).await;
    d.pass().await;
    assert!(
        topic().contains(&format!("commander <@{RESPONDER}>")),
        "{}",
        topic()
    );

    // Resolve from the summary's button: it asks first, then acts.
    let summary = d.summary(&channel.id);
    let (ask, _) = d.click(user(LEAD), &summary, "resolve").await;
    assert_eq!(ask["type"], 4);
    assert_eq!(
        ask["data"]["flags"], 64,
        "the question is for the presser only"
    );
    let confirm = ask["data"]["components"][0]["components"][0]["custom_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(confirm.starts_with("warroom:"), "{confirm}");
    assert!(
        d.store.incidents(false, 5).await.unwrap().len() == 1,
        "asking resolved nothing"
    );
    // The question is an ephemeral message; pressing its button replaces it with the result
    // (so it cannot be pressed twice), and the message that asked is marked.
    let mut question = d.outcome(&ask, "").await;
    question.id = "1300000000000009999".into();
    question.channel_id = channel.id.clone();
    let (reply, token) = d.press(user(LEAD), &question, &confirm).await;
    assert_eq!(reply["type"], 7, "{reply}");
    assert_eq!(reply["data"]["components"], json!([]));
    let answer = d.outcome(&reply, &token).await;
    assert!(answer.content.contains("Resolved ✓"), "{}", answer.content);
    d.pass().await;
    assert!(d.store.incidents(false, 5).await.unwrap().is_empty());
    assert!(
        d.fake
            .messages(&channel.id)
            .iter()
            .any(|m| m.content.contains("INCIDENT RESOLVED - P0"))
    );
    assert!(topic().contains("resolved"), "{}", topic());
    assert_eq!(d.fake.messages(&d.incidents).len(), 2);
    assert_eq!(d.pd.accepted("resolve").len(), 1);
}

pub async fn signatures_are_checked_and_ping_is_answered(db: &TestDb) {
    let d = Discord::start(db).await;
    let token = d.fake.interaction_token(&d.general);
    let mut interaction = d.interaction(2, user(DECLARER), &d.general, &token);
    interaction["data"] = json!({
        "id": "1", "name": "incident", "type": 1,
        "options": [{ "name": "declare", "type": 1, "options": [
            { "name": "title", "type": 3, "value": "Should not exist" }
        ]}],
    });
    let body = interaction.to_string();
    let now = d.clock.now().timestamp();
    let ts = now.to_string();
    let good = fake::sign_interaction(&ts, body.as_bytes());
    let stale_ts = (now - 6 * 60).to_string();
    let stale = fake::sign_interaction(&stale_ts, body.as_bytes());
    let altered = body.replace("Should not exist", "Altered");
    let zeros = "0".repeat(128);
    for (what, body, ts, sig) in [
        (
            "stale",
            body.as_str(),
            Some(stale_ts.as_str()),
            Some(stale.as_str()),
        ),
        ("no signature", body.as_str(), Some(ts.as_str()), None),
        ("no timestamp", body.as_str(), None, Some(good.as_str())),
        (
            "body altered",
            altered.as_str(),
            Some(ts.as_str()),
            Some(good.as_str()),
        ),
        (
            "bad signature",
            body.as_str(),
            Some(ts.as_str()),
            Some(zeros.as_str()),
        ),
        ("not hex", body.as_str(), Some(ts.as_str()), Some("xyz")),
    ] {
        let response = d.send(body, ts, sig).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
    }
    assert!(d.store.incidents(true, 10).await.unwrap().is_empty());
    assert!(d.fake.calls().is_empty(), "nothing reached Discord");
    // Well signed, it is accepted.
    let response = d.send(&body, Some(&ts), Some(&good)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(d.store.incidents(true, 10).await.unwrap().len(), 1);

    // PING gets PONG (Discord checks this when the endpoint URL is saved).
    let ping = json!({ "id": "2", "application_id": APP_ID.to_string(), "type": 1, "token": "t", "version": 1 });
    assert_eq!(d.signed(&ping).await, json!({ "type": 1 }));

    // An oversized body is refused.
    let huge = "x".repeat(300 * 1024);
    let ts = d.clock.now().timestamp().to_string();
    let sig = fake::sign_interaction(&ts, huge.as_bytes());
    let response = d.send(&huge, Some(&ts), Some(&sig)).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

pub async fn unknown_commands_and_bad_options_get_help(db: &TestDb) {
    let d = Discord::start(db).await;
    let token = d.fake.interaction_token(&d.general);
    let mut interaction = d.interaction(2, user(DECLARER), &d.general, &token);
    interaction["data"] = json!({ "id": "1", "name": "deploy", "type": 1 });
    let reply = d.signed(&interaction).await;
    let text = content(&reply).unwrap();
    assert!(text.contains("/deploy is not a warroom command"), "{text}");
    assert_eq!(reply["data"]["flags"], 64);

    let (reply, _) = d
        .invoke(user(DECLARER), &d.general.clone(), "reboot", json!([]))
        .await;
    assert!(
        content(&reply)
            .unwrap()
            .contains("/incident reboot is not a warroom sub-command")
    );

    // A sub-command without its required option: the parser's usage help.
    let (reply, _) = d
        .invoke(user(DECLARER), &d.general.clone(), "sev", json!([]))
        .await;
    let text = content(&reply).unwrap();
    assert!(text.contains("sev <P0|P1|P2|P3>"), "{text}");
    // A command about an incident typed outside any incident channel says so.
    let (reply, _) = d
        .invoke(user(DECLARER), &d.general.clone(), "ack", json!([]))
        .await;
    let text = content(&reply).unwrap();
    assert!(text.contains("this is not an incident channel"), "{text}");
    assert!(d.store.incidents(true, 10).await.unwrap().is_empty());
}

pub async fn only_allowed_people_press_buttons(db: &TestDb) {
    let d = Discord::with(db, &format!("allowed_roles = [\"{ONCALL_ROLE}\"]"), "").await;
    d.declare(user(DECLARER), "Checkout failing").await;
    d.pass().await;
    let channel = d.incident_channel();
    let summary = d.summary(&channel.id);

    // A stranger: refused (for the presser only), nothing changes, the message keeps its
    // buttons.
    let (reply, token) = d.click(user(STRANGER), &summary, "acknowledge").await;
    let answer = d.outcome(&reply, &token).await;
    assert!(
        answer.content.contains("Only the incident's responders"),
        "{}",
        answer.content
    );
    assert_eq!(answer.flags & 64, 64, "the refusal is for the presser only");
    assert_eq!(d.summary(&channel.id).components, summary.components);
    assert!(!d.summary(&channel.id).edited);
    // The refusal to resolve comes before the question.
    let (reply, _) = d.click(user(STRANGER), &summary, "resolve").await;
    assert!(
        content(&reply)
            .unwrap()
            .contains("Only the incident's responders")
    );
    // Typed commands are refused the same way.
    let (reply, _) = d
        .invoke(user(STRANGER), &channel.id, "ack", json!([]))
        .await;
    assert!(
        content(&reply)
            .unwrap()
            .contains("Only the incident's responders")
    );
    assert!(
        d.store.incidents(false, 5).await.unwrap()[0]
            .acknowledged_at
            .is_none()
    );

    // Someone with the on-call role may.
    let (reply, token) = d
        .click(
            As {
                user: STRANGER,
                roles: &[ONCALL_ROLE],
            },
            &summary,
            "acknowledge",
        )
        .await;
    let answer = d.outcome(&reply, &token).await;
    assert!(
        answer.content.contains("Acknowledged"),
        "{}",
        answer.content
    );
    assert!(
        d.store.incidents(false, 5).await.unwrap()[0]
            .acknowledged_at
            .is_some()
    );
    // So may the declarer and a configured responder, without the role.
    let status = json!([{ "name": "status", "type": 3, "value": "identified" }]);
    let (reply, _) = d
        .invoke(user(DECLARER), &channel.id, "status", status)
        .await;
    assert!(
        !reply.to_string().contains("Only the incident's responders"),
        "{reply}"
    );
    let update = json!([{ "name": "text", "type": 3, "value": "Rolled back" }]);
    let (reply, _) = d
        .invoke(user(RESPONDER), &channel.id, "update", update)
        .await;
    assert!(
        !reply.to_string().contains("Only the incident's responders"),
        "{reply}"
    );
    let incident = d.store.incidents(false, 5).await.unwrap().remove(0);
    assert_eq!(incident.status, Status::Identified);
    d.pass().await;
    assert!(
        d.fake
            .messages(&channel.id)
            .iter()
            .any(|m| m.content.contains("Rolled back"))
    );
}

/// A captured interaction sent again (within the signature's five minutes) changes nothing.
pub async fn replayed_interactions_change_nothing(db: &TestDb) {
    let d = Discord::start(db).await;
    let token = d.fake.interaction_token(&d.general);
    let mut interaction = d.interaction(2, user(DECLARER), &d.general, &token);
    interaction["data"] = json!({
        "id": "1", "name": "incident", "type": 1,
        "options": [{ "name": "declare", "type": 1, "options": [
            { "name": "title", "type": 3, "value": "Replayed" }
        ]}],
    });
    let first = d.signed(&interaction).await;
    assert!(first.to_string().contains("Declared INC-1"), "{first}");
    let again = d.signed(&interaction).await;
    assert!(again.to_string().contains("already handled"), "{again}");
    assert_eq!(d.store.incidents(true, 10).await.unwrap().len(), 1);
}

/// A bot that may not pin (no Pin Messages permission) still posts the alert and keeps the
/// summary current by editing it.
pub async fn a_refused_pin_loses_nothing(db: &TestDb) {
    let d = Discord::start(db).await;
    for _ in 0..2 {
        d.fake.fail(
            route::PIN_MESSAGE,
            Fault::Error {
                status: 403,
                code: 50013,
                message: "Missing Permissions".into(),
            },
        );
    }
    d.declare(user(DECLARER), "Search is slow").await;
    d.pass().await;
    let channel = d.incident_channel();
    assert!(d.fake.pins(&channel.id).is_empty());
    let counts = d.store.outbox_counts().await.unwrap();
    assert_eq!((counts.pending, counts.failed), (0, 0), "nothing failed");
    let ack = json!([]);
    d.invoke(user(DECLARER), &channel.id, "ack", ack).await;
    d.pass().await;
    let summaries: Vec<_> = d
        .fake
        .messages(&channel.id)
        .into_iter()
        .filter(|m| m.content.contains("📋"))
        .collect();
    assert_eq!(summaries.len(), 1, "edited, not posted again");
    assert!(summaries[0].edited);
}

/// A post longer than 2,000 characters is split over several messages, each within the limit
/// and with code blocks closed; a retried row does not post a piece twice.
pub async fn long_posts_are_split_within_the_limit(db: &TestDb) {
    let d = Discord::start(db).await;
    d.declare(user(DECLARER), "Disk full").await;
    d.pass().await;
    let channel = d.incident_channel();
    let incident = d.store.incidents(false, 5).await.unwrap().remove(0);
    let output = format!(
        "```\n{}```",
        "kubelet: disk pressure on node-7\n".repeat(150)
    );
    let item = warroom::store::OutboxItem {
        id: 999_001,
        incident: incident.key,
        destination: "discord".into(),
        effect: warroom::core::Effect::Post {
            channel: warroom::core::ChannelTarget::Incident(incident.channel.clone()),
            message: warroom::core::message::Message::notice(
                warroom::core::message::Visibility::InChannel,
                output,
            ),
            pin: false,
            slot: None,
        },
        idempotency_key: "test-long-post".into(),
        attempts: 1,
    };
    let before = d.fake.messages(&channel.id).len();
    // The first piece goes out, the second is refused for now: the row is retried (its
    // second claim) and carries on from there.
    d.fake.fail(
        route::CREATE_MESSAGE,
        Fault::Hang(std::time::Duration::ZERO),
    );
    d.fake.fail(route::CREATE_MESSAGE, Fault::ServerError(502));
    use warroom::chat::Sink;
    let first = d.sink.deliver(&item).await;
    assert!(first.is_err(), "{first:?}");
    assert_eq!(
        d.fake.messages(&channel.id).len(),
        before + 1,
        "one piece out"
    );
    let retried = warroom::store::OutboxItem {
        attempts: 2,
        ..item.clone()
    };
    // The last piece ends the row: what it posted goes back to be kept with the row's
    // delivered mark.
    let done = d.sink.deliver(&retried).await.unwrap();
    assert!(
        matches!(&done, Delivered::Posted { key, .. } if key.starts_with("outbox:999001")),
        "{done:?}"
    );
    let pieces: Vec<_> = d.fake.messages(&channel.id).split_off(before);
    assert!(pieces.len() >= 3, "{}", pieces.len());
    for piece in &pieces {
        assert!(
            piece.content.chars().count() <= 2_000,
            "{}",
            piece.content.len()
        );
        assert_eq!(
            piece.content.matches("```").count() % 2,
            0,
            "{}",
            piece.content
        );
    }
    let lines: usize = pieces
        .iter()
        .map(|p| p.content.matches("disk pressure").count())
        .sum();
    assert_eq!(lines, 150, "every line once");

    // A document shared in the channel is posted the same way, and so is kept the same way.
    let upload = warroom::store::OutboxItem {
        id: 999_002,
        effect: warroom::core::Effect::Upload {
            channel: incident.channel.clone(),
            filename: "postmortem.md".into(),
            title: "Postmortem".into(),
            message: warroom::core::message::Message::notice(
                warroom::core::message::Visibility::InChannel,
                "What happened",
            ),
        },
        ..item.clone()
    };
    let done = d.sink.deliver(&upload).await.unwrap();
    assert!(
        matches!(&done, Delivered::Posted { key, .. } if key.starts_with("outbox:999002")),
        "{done:?}"
    );
}

pub async fn slow_answers_are_deferred_and_follow(db: &TestDb) {
    // No time at all to answer in the reply: every answer is deferred.
    let d = Discord::build(db, "", "", std::time::Duration::ZERO).await;
    let title = json!([{ "name": "title", "type": 3, "value": "Queue backlog growing" }]);
    let (reply, token) = d
        .invoke(user(DECLARER), &d.general.clone(), "declare", title)
        .await;
    assert_eq!(reply, json!({ "type": 5, "data": { "flags": 64 } }));
    // The answer replaces the deferral through the interaction's webhook.
    let answer = d.answer(&token).await;
    assert!(answer.original, "edits @original");
    assert!(
        answer.content.contains("Declared INC-1"),
        "{}",
        answer.content
    );
    assert_eq!(d.store.incidents(false, 5).await.unwrap().len(), 1);

    // A slow button press is deferred too, and its answer follows.
    d.pass().await;
    let channel = d.incident_channel();
    let summary = d.summary(&channel.id);
    let (reply, token) = d.click(user(DECLARER), &summary, "acknowledge").await;
    assert_eq!(reply, json!({ "type": 5, "data": { "flags": 64 } }));
    let answer = d.answer(&token).await;
    assert!(
        answer.content.contains("Acknowledged ✓"),
        "{}",
        answer.content
    );
}

pub async fn escalations_ping_configured_people_and_user_text_never_does(db: &TestDb) {
    let extra = format!(
        r#"
[[escalation.steps]]
name = "On-call"
after = "0m"
page = ["service:oncall"]
mention = ["discord:{LEAD}"]

[[escalation.steps]]
name = "On-call role"
after = "30m"
mention = ["discord:role:{ONCALL_ROLE}"]
"#
    );
    let d = Discord::with(db, "", &extra).await;
    let title = format!(
        "DB down @everyone @here <@&{ONCALL_ROLE}> <@{STRANGER}> [click](https://evil.example)"
    );
    d.declare(user(DECLARER), &title).await;
    d.pass().await;
    let channel = d.incident_channel();
    let step1 = d
        .fake
        .messages(&channel.id)
        .into_iter()
        .find(|m| m.content.contains("escalation step 1"))
        .unwrap();
    assert_eq!(
        step1.pinged_users,
        vec![LEAD.to_string()],
        "{}",
        step1.content
    );
    d.clock.advance(Duration::minutes(31));
    d.pass().await;
    let step2 = d
        .fake
        .messages(&channel.id)
        .into_iter()
        .find(|m| m.content.contains("escalation step 2"))
        .expect("second step");
    assert_eq!(
        step2.pinged_roles,
        vec![ONCALL_ROLE.to_string()],
        "{}",
        step2.content
    );
    // Nothing the declarer typed pinged anyone, anywhere.
    for message in d
        .fake
        .messages(&channel.id)
        .into_iter()
        .chain(d.fake.messages(&d.incidents))
    {
        assert!(!message.mass_mention, "{}", message.content);
        assert!(
            !message.pinged_users.contains(&STRANGER.to_string()),
            "{}",
            message.content
        );
        if !message.content.contains("escalation step 2") {
            assert!(message.pinged_roles.is_empty(), "{}", message.content);
        }
        assert!(
            !message.content.contains("[click]("),
            "no masked link: {}",
            message.content
        );
    }
    let topic = d.fake.channel(&channel.id).unwrap().topic.unwrap();
    assert!(
        !topic.contains("@everyone") && !topic.contains("@here"),
        "{topic}"
    );
}

pub async fn long_answers_fit_discords_limit(db: &TestDb) {
    let d = Discord::start(db).await;
    d.declare(user(DECLARER), "Disk full").await;
    d.pass().await;
    let channel = d.incident_channel();
    for i in 0..40 {
        let update = json!([{ "name": "text", "type": 3, "value": format!("update {i}: {}", "detail ".repeat(40)) }]);
        d.invoke(user(DECLARER), &channel.id, "update", update)
            .await;
    }
    d.pass().await;
    let (reply, _) = d
        .invoke(user(DECLARER), &channel.id, "timeline", json!([]))
        .await;
    let text = content(&reply).unwrap();
    assert!(text.chars().count() <= 2_000, "{}", text.chars().count());
    assert!(text.contains("Discord's limit"), "says it was cut");
    for message in d.fake.messages(&channel.id) {
        assert!(message.content.chars().count() <= 2_000);
    }
}

pub async fn rate_limits_and_errors_are_retried_without_duplicates(db: &TestDb) {
    let d = Discord::start(db).await;
    d.fake.fail(
        route::CREATE_MESSAGE,
        Fault::RateLimited {
            retry_after_secs: 0.2,
        },
    );
    d.fake.fail(route::PIN_MESSAGE, Fault::ServerError(502));
    d.fake
        .fail(route::CREATE_GUILD_CHANNEL, Fault::ServerError(500));
    d.declare(user(DECLARER), "Payments timing out").await;
    for _ in 0..6 {
        d.clock.advance(Duration::minutes(2));
        d.pass().await;
    }
    let channel = d.incident_channel();
    let messages = d.fake.messages(&channel.id);
    let alerts = messages
        .iter()
        .filter(|m| m.content.contains("INCIDENT ALERT"))
        .count();
    assert_eq!(alerts, 1, "{messages:?}");
    assert_eq!(
        messages.iter().filter(|m| m.content.contains("📋")).count(),
        1
    );
    let pins = d.fake.pins(&channel.id);
    assert_eq!(pins.len(), 2, "alert and summary pinned once each");
    let counts = d.store.outbox_counts().await.unwrap();
    assert_eq!((counts.pending, counts.failed), (0, 0));
}

pub async fn a_channel_an_earlier_attempt_created_is_adopted(db: &TestDb) {
    let d = Discord::start(db).await;
    d.declare(user(DECLARER), "Cache cold").await;
    // The channel exists in Discord (an attempt that crashed before recording its id).
    let incident = d.store.incidents(false, 5).await.unwrap().remove(0);
    let name = incident.channel.to_string();
    let existing = d.fake.add_channel(GUILD_ID, &name, Some(&d.category));
    d.pass().await;
    let channel = d.incident_channel();
    assert_eq!(channel.id, existing, "no second channel");
    assert!(channel.topic.unwrap().contains("INC-1"));
}

pub async fn register_commands_creates_and_then_reports_up_to_date(_db: &TestDb) {
    let fake = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &discord_section(&fake, ""));
    let run = move |global: bool| {
        let mut command = crate::console::warroom();
        command
            .arg("--config")
            .arg(&path)
            .args(["discord", "register-commands"]);
        if global {
            command.arg("--global");
        }
        command.output().unwrap()
    };
    let first = tokio::task::spawn_blocking(move || (run(false), run(false), run(true)))
        .await
        .unwrap();
    for output in [&first.0, &first.1, &first.2] {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let out = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out(&first.0).contains("added    /incident"),
        "{}",
        out(&first.0)
    );
    assert!(out(&first.1).contains("up to date"), "{}", out(&first.1));
    assert!(
        out(&first.2).contains("registered globally"),
        "{}",
        out(&first.2)
    );
    let guild = fake.commands(Some(&GUILD_ID.to_string()));
    assert_eq!(guild.len(), 1);
    let subs: Vec<&str> = guild[0]["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    for wanted in ["declare", "ack", "resolve", "status", "scale", "confirm"] {
        assert!(subs.contains(&wanted), "{subs:?}");
    }
    assert_eq!(fake.commands(None).len(), 1);
}

/// The real `warroom serve` with `[discord]` set from the environment: it mounts
/// `/discord/interactions`, answers Discord's PING, and its own dispatcher creates the
/// incident channel in the fake.
pub async fn serve_answers_discord_and_delivers_to_it(_db: &TestDb) {
    let fake = FakeDiscord::start().await;
    fake.add_channel(GUILD_ID, "incidents", None);
    let general = fake.add_channel(GUILD_ID, "general", None);
    let category = fake.add_category(GUILD_ID, "Incidents");
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(String, String)> = [
        (
            "WARROOM_DATABASE__PATH",
            dir.path().join("serve.db").display().to_string(),
        ),
        ("WARROOM_SCHEDULER__POLL_INTERVAL", "100ms".into()),
        ("WARROOM_DISCORD__PUBLIC_KEY", fake::public_key_hex()),
        ("WARROOM_DISCORD__BOT_TOKEN", BOT_TOKEN.into()),
        ("WARROOM_DISCORD__APPLICATION_ID", APP_ID.to_string()),
        ("WARROOM_DISCORD__GUILD_ID", GUILD_ID.to_string()),
        ("WARROOM_DISCORD__CATEGORY", category.clone()),
        ("WARROOM_DISCORD__API_URL", fake.url()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let (_child, port) = crate::replicas::start_serve(&env).await;
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let post = |body: Value| {
        let body = body.to_string();
        let ts = chrono::Utc::now().timestamp().to_string();
        let signature = fake::sign_interaction(&ts, body.as_bytes());
        client
            .post(format!("{base}/discord/interactions"))
            .header("content-type", "application/json")
            .header("x-signature-timestamp", ts)
            .header("x-signature-ed25519", signature)
            .body(body)
            .send()
    };
    let pong = post(json!({ "id": "1", "application_id": APP_ID.to_string(), "type": 1, "token": "t", "version": 1 }))
        .await
        .unwrap();
    assert_eq!(pong.status(), StatusCode::OK);
    assert_eq!(pong.json::<Value>().await.unwrap(), json!({ "type": 1 }));
    let declare = json!({
        "id": "2", "application_id": APP_ID.to_string(), "type": 2, "token": "tok", "version": 1,
        "guild_id": GUILD_ID.to_string(), "channel_id": general,
        "member": { "user": { "id": DECLARER, "username": "someone" }, "roles": [] },
        "data": { "id": "3", "name": "incident", "type": 1, "options": [
            { "name": "declare", "type": 1, "options": [
                { "name": "title", "type": 3, "value": "Checkout failing" }
            ]}
        ]},
    });
    let reply: Value = post(declare).await.unwrap().json().await.unwrap();
    assert!(reply.to_string().contains("Declared INC-1"), "{reply}");
    let mut created = None;
    for _ in 0..100 {
        created = fake
            .channels(GUILD_ID)
            .into_iter()
            .find(|c| c.name.starts_with("inc-") && !fake.messages(&c.id).is_empty());
        if created.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let channel = created.expect("serve's dispatcher created the channel and posted in it");
    assert_eq!(channel.parent_id.as_deref(), Some(category.as_str()));
}

/// Runbook changes from Discord: `/incident scale` proposes, the Confirm button (after its
/// question) applies, Cancel cancels, and someone without a runbook role is refused.
pub async fn runbook_changes_are_confirmed_and_cancelled_with_buttons(db: &TestDb) {
    use crate::runbooks::{cluster, runbook_config};
    let (kube, health, _task) = cluster().await;
    let mut config = runbook_config(&kube, &health);
    config
        .roles
        .iter_mut()
        .find(|r| r.name == "operators")
        .unwrap()
        .users = vec![warroom::core::UserRef::parse(LEAD).unwrap()];
    let runbooks = warroom::app::runbook::Runbooks {
        cluster: Some(warroom::runbook::kube::Cluster::new(
            kube.client(),
            config.probes.clone(),
        )),
        guard: warroom::runbook::guard::Guard::new(config),
        playbooks: warroom::runbook::playbook::Playbooks::builtin(),
        directory: None,
    };
    let d = Discord::build_with(
        db,
        "",
        "",
        warroom::chat::discord::inbound::REPLY_WITHIN,
        Some(runbooks),
    )
    .await;
    d.declare(user(DECLARER), "API returning 503s").await;
    d.pass().await;
    let channel = d.incident_channel();
    let scale = |replicas: i64| {
        json!([
            { "name": "deployment", "type": 3, "value": "stock-analysis-api" },
            { "name": "replicas", "type": 4, "value": replicas },
        ])
    };
    d.invoke(user(LEAD), &channel.id, "scale", scale(5)).await;
    d.pass().await;
    let proposal = d.newest_with_button(&channel.id, "confirm");
    assert!(
        proposal.content.contains("3 → 5 replicas"),
        "{}",
        proposal.content
    );
    assert_eq!(
        kube.deployment_replicas("stock-analysis-system", "stock-analysis-api"),
        Some(3)
    );

    // Someone without the role: refused, nothing applied.
    let answer = d.press_through(user(STRANGER), &proposal, "confirm").await;
    assert!(!answer.content.contains('✓'), "{}", answer.content);
    assert_eq!(
        kube.deployment_replicas("stock-analysis-system", "stock-analysis-api"),
        Some(3)
    );

    // The operator confirms: applied, and the proposal is marked.
    let answer = d.press_through(user(LEAD), &proposal, "confirm").await;
    assert!(answer.content.contains("Confirmed ✓"), "{}", answer.content);
    assert_eq!(
        kube.deployment_replicas("stock-analysis-system", "stock-analysis-api"),
        Some(5)
    );
    d.eventually("the proposal to say who confirmed", || {
        d.fake
            .messages(&channel.id)
            .iter()
            .any(|m| m.id == proposal.id && m.content.contains(&format!("Confirmed by <@{LEAD}>")))
    })
    .await;

    // A second proposal, cancelled with its button.
    d.invoke(user(LEAD), &channel.id, "scale", scale(4)).await;
    d.pass().await;
    let second = d.newest_with_button(&channel.id, "cancel");
    let answer = d.press_through(user(LEAD), &second, "cancel").await;
    assert!(answer.content.contains("Cancelled ✓"), "{}", answer.content);
    assert_eq!(
        kube.deployment_replicas("stock-analysis-system", "stock-analysis-api"),
        Some(5)
    );
}

on_both_stores!(
    declaring_opens_a_channel_in_the_category_with_everything_in_it,
    buttons_and_commands_keep_topic_and_summary_current,
    signatures_are_checked_and_ping_is_answered,
);

mod sqlite_only {
    use crate::support::TestDb;

    macro_rules! sqlite {
        ($($name:ident),* $(,)?) => {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&TestDb::sqlite()).await;
                }
            )*
        };
    }

    sqlite!(
        unknown_commands_and_bad_options_get_help,
        only_allowed_people_press_buttons,
        slow_answers_are_deferred_and_follow,
        escalations_ping_configured_people_and_user_text_never_does,
        long_answers_fit_discords_limit,
        rate_limits_and_errors_are_retried_without_duplicates,
        a_channel_an_earlier_attempt_created_is_adopted,
        register_commands_creates_and_then_reports_up_to_date,
        serve_answers_discord_and_delivers_to_it,
        replayed_interactions_change_nothing,
        a_refused_pin_loses_nothing,
        long_posts_are_split_within_the_limit,
        runbook_changes_are_confirmed_and_cancelled_with_buttons,
    );
}
