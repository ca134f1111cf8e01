//! Slack end to end: signed requests to `warroom serve`'s Slack endpoints over real HTTP, and
//! warroom's Web API client pointed at the fake Slack server (`support::slack`), with the fake
//! PagerDuty for the acknowledgement path.

use crate::pagerduty::{config_text, write_config};
use crate::support::TestDb;
use crate::support::pagerduty::FakePagerDuty;
use crate::support::slack::{BOT_TOKEN, BOT_USER, FakeSlack, Fault, Posted};
use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use warroom::app::clock::{Clock, VirtualClock};
use warroom::app::{App, SLACK_REQUESTS_SOURCE};
use warroom::chat::slack::{SlackApi, SlackInbound, SlackSink, sign};
use warroom::core::Status;
use warroom::pagerduty::PagerDutyClient;
use warroom::render::Renderer;
use warroom::store::Store;

pub const SIGNING_SECRET: &str = "slack-signing-secret-for-tests";
const DECLARER: &str = "U0DECLARER";
const RESPONDER: &str = "U0RESPONDER";
const LEAD: &str = "U0LEAD";

pub struct Slack {
    pub fake: FakeSlack,
    pub pd: FakePagerDuty,
    pub app: Arc<App>,
    pub clock: Arc<VirtualClock>,
    pub store: Arc<dyn Store>,
    pub sink: SlackSink,
    pub pagerduty: PagerDutyClient,
    pub base: String,
    /// The fake's id of the incidents (announcement) channel.
    pub incidents: String,
    /// The fake's id of an ordinary channel people type in.
    pub general: String,
    pub inbound: Arc<SlackInbound>,
    http: reqwest::Client,
}

/// The `[slack]` section pointing at the fake.
fn slack_section(fake: &FakeSlack, incidents: &str, extra: &str) -> String {
    format!(
        r#"
[slack]
signing_secret = "{SIGNING_SECRET}"
bot_token = "{BOT_TOKEN}"
incidents_channel = "{incidents}"
api_url = "{}"
timeout = "2s"
responders = ["{RESPONDER}"]
{extra}
"#,
        fake.api_url()
    )
}

impl Slack {
    pub async fn start(db: &TestDb) -> Slack {
        Slack::with(db, "", "").await
    }

    /// `slack_extra` goes into `[slack]`, `extra` after it (other sections).
    pub async fn with(db: &TestDb, slack_extra: &str, extra: &str) -> Slack {
        Slack::build(
            db,
            slack_extra,
            extra,
            warroom::chat::slack::inbound::REPLY_WITHIN,
        )
        .await
    }

    pub async fn build(
        db: &TestDb,
        slack_extra: &str,
        extra: &str,
        reply_within: std::time::Duration,
    ) -> Slack {
        let fake = FakeSlack::start().await;
        let general = fake.add_channel("general", "U0ADMIN");
        let pd = FakePagerDuty::start().await;
        let incidents = fake.add_channel("incidents", "U0ADMIN");
        let text = format!(
            "{}{}",
            config_text(&pd.url, ""),
            slack_section(&fake, &incidents, slack_extra)
        ) + extra;
        let dir = tempfile::tempdir().unwrap();
        let config = warroom::config::load(Some(&write_config(dir.path(), &text))).unwrap();
        let slack_config = config.slack.clone().expect("slack configured");
        let store = db.open().await;
        let clock = Arc::new(VirtualClock::starting_at(chrono::Utc::now()));
        let app = Arc::new(App::new(
            store.clone(),
            config.policy.clone(),
            clock.clone(),
            Duration::seconds(60),
        ));
        let api = Arc::new(SlackApi::new(&slack_config).unwrap());
        let renderer = Arc::new(Renderer::load(None).unwrap());
        let sink = SlackSink::new(
            api.clone(),
            store.clone(),
            renderer.clone(),
            slack_config.clone(),
            config.policy.announce_channel.clone(),
        );
        let inbound = Arc::new(SlackInbound {
            app: app.clone(),
            refs: warroom::chat::ChatRefs::new(store.clone(), "slack"),
            api,
            renderer,
            config: slack_config,
            reply_within,
        });
        let router = warroom::http::router(warroom::http::HttpDeps {
            alertmanager: None,
            store: store.clone(),
            scheduler: Arc::new(warroom::http::Heartbeat::default()),
            stall_after: Duration::seconds(20),
            pagerduty: None,
            slack: Some(inbound.clone()),
            discord: None,
            metrics: app.metrics.clone(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let pagerduty = PagerDutyClient::new(config.pagerduty.clone()).unwrap();
        Slack {
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
            inbound,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    /// POST `body` to `path`, signed now (by the app's clock).
    pub async fn signed(&self, path: &str, content_type: &str, body: String) -> reqwest::Response {
        let ts = self.clock.now().timestamp().to_string();
        self.send(
            path,
            content_type,
            &body,
            Some(&ts),
            Some(&sign(SIGNING_SECRET, &ts, body.as_bytes())),
            &[],
        )
        .await
    }

    pub async fn send(
        &self,
        path: &str,
        content_type: &str,
        body: &str,
        timestamp: Option<&str>,
        signature: Option<&str>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body.to_string());
        if let Some(ts) = timestamp {
            request = request.header("x-slack-request-timestamp", ts);
        }
        if let Some(sig) = signature {
            request = request.header("x-slack-signature", sig);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// The form body Slack sends for `/incident <text>`.
    pub fn command_body(&self, user: &str, channel: &str, text: &str, response: &str) -> String {
        serde_urlencoded::to_string([
            ("token", "deprecated-verification-token"),
            ("team_id", "T0TEST"),
            ("team_domain", "example"),
            ("channel_id", channel),
            ("channel_name", "whatever"),
            ("user_id", user),
            ("user_name", "someone"),
            ("command", "/incident"),
            ("text", text),
            ("api_app_id", "A0TEST"),
            ("response_url", &self.fake.response_url(response)),
            ("trigger_id", &trigger_id()),
        ])
        .unwrap()
    }

    /// Type `/incident <text>` as `user` in `channel`; the HTTP reply.
    pub async fn command(&self, user: &str, channel: &str, text: &str) -> Value {
        let response = self
            .signed(
                "/slack/commands",
                "application/x-www-form-urlencoded",
                self.command_body(user, channel, text, "cmd"),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// Press the button `action_id` of `message` as `user` in `channel`, with the payload
    /// Slack sends (the message itself included); answers go to `response_url(id)`.
    pub async fn click(
        &self,
        user: &str,
        channel: &str,
        message: &Posted,
        action_id: &str,
        id: &str,
    ) -> StatusCode {
        let body = self.click_body(user, channel, message, action_id, id);
        self.signed(
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            body,
        )
        .await
        .status()
    }

    /// The form body Slack sends for a press of `action_id` (see `click`).
    pub fn click_body(
        &self,
        user: &str,
        channel: &str,
        message: &Posted,
        action_id: &str,
        id: &str,
    ) -> String {
        let button = button(message, action_id);
        let payload = json!({
            "type": "block_actions",
            "user": { "id": user, "username": "someone", "team_id": "T0TEST" },
            "api_app_id": "A0TEST",
            "team": { "id": "T0TEST", "domain": "example" },
            "channel": { "id": channel, "name": "whatever" },
            "container": {
                "type": "message", "message_ts": message.ts, "channel_id": channel,
                "is_ephemeral": false,
            },
            "message": {
                "type": "message", "ts": message.ts, "bot_id": "B0TEST",
                "text": message.text, "blocks": message.blocks,
            },
            "trigger_id": trigger_id(),
            "response_url": self.fake.response_url(id),
            "actions": [{
                "type": "button",
                "action_id": button["action_id"],
                "block_id": "b1",
                "value": button["value"],
                "text": button["text"],
                "action_ts": "1700000000.1",
            }],
        });
        serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap()
    }

    /// Fire due timers and deliver everything to Slack and PagerDuty, as the loops would.
    pub async fn pass(&self) {
        self.app.run_due_timers().await.unwrap();
        for _ in 0..10 {
            let slack = self.app.dispatch_outbox(&self.sink).await.unwrap();
            let pd = self.app.dispatch_outbox(&self.pagerduty).await.unwrap();
            if slack + pd == 0 {
                break;
            }
        }
    }

    /// The incident channel in the fake (the one whose name starts with `inc-`).
    pub fn incident_channel(&self) -> crate::support::slack::Channel {
        let channels: Vec<_> = self
            .fake
            .channels()
            .into_iter()
            .filter(|c| c.name.starts_with("inc-"))
            .collect();
        assert_eq!(channels.len(), 1, "{channels:?}");
        channels.into_iter().next().unwrap()
    }

    /// The pinned summary: the message with buttons (or the last one edited) in `channel`.
    pub fn summary(&self, channel: &str) -> Posted {
        self.fake
            .messages(channel)
            .into_iter()
            .find(|m| m.blocks.to_string().contains("📋"))
            .expect("summary posted")
    }

    /// Wait for the (only) incident to be acknowledged: a button's work runs after the reply.
    pub async fn acknowledged(&self) {
        for _ in 0..200 {
            let open = self.store.incidents(false, 5).await.unwrap();
            if open.iter().any(|i| i.acknowledged_at.is_some()) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the incident was not acknowledged");
    }

    /// Wait (up to 10 s) for `ready` to hold: answers to clicks come from a spawned task.
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

/// The button with `action_id` in a message's blocks.
pub fn button(message: &Posted, action_id: &str) -> Value {
    message
        .blocks
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["elements"].as_array())
        .flatten()
        .find(|e| e["action_id"] == action_id)
        .cloned()
        .unwrap_or_else(|| panic!("no {action_id} button in {}", message.blocks))
}

/// A new trigger id, as Slack gives every slash command and button press its own.
fn trigger_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{n}.47445629121.{n:032x}")
}

fn text_of(message: &Posted) -> String {
    message.blocks.to_string()
}

pub async fn declaring_opens_a_channel_with_everything_in_it(db: &TestDb) {
    let s = Slack::start(db).await;
    let reply = s
        .command(DECLARER, &s.general, "declare API returning 503s")
        .await;
    assert_eq!(reply["response_type"], "ephemeral");
    assert!(
        reply["text"].as_str().unwrap().contains("Declared INC-1"),
        "{reply}"
    );
    s.pass().await;

    let channel = s.incident_channel();
    assert!(channel.name.starts_with("inc-") && channel.name.ends_with("-api-returning-503s"));
    assert_eq!(channel.creator, BOT_USER);
    assert!(
        channel.members.contains(&DECLARER.to_string()),
        "{channel:?}"
    );
    assert!(
        channel.members.contains(&RESPONDER.to_string()),
        "{channel:?}"
    );
    assert!(
        channel.topic.contains("INC-1 P1 | investigating"),
        "{}",
        channel.topic
    );

    let messages = s.fake.messages(&channel.id);
    let alert = messages
        .iter()
        .find(|m| text_of(m).contains("INCIDENT ALERT - P1"))
        .expect("alert posted");
    assert!(
        text_of(alert).contains(&format!("<@{DECLARER}>")),
        "commander is a mention"
    );
    let pins = s.fake.pins(&channel.id);
    assert!(pins.contains(&alert.ts), "alert pinned");
    let summary = s.summary(&channel.id);
    assert!(pins.contains(&summary.ts), "summary pinned");
    button(&summary, "warroom_acknowledge");
    button(&summary, "warroom_resolve");

    let announcement = s.fake.messages(&s.incidents);
    assert_eq!(announcement.len(), 1);
    let text = text_of(&announcement[0]);
    assert!(text.contains("INC-1 (P1) declared by"), "{text}");
    assert!(
        text.contains(&format!("<#{}>", channel.id)),
        "links the channel: {text}"
    );
    // What a row posted is kept (for a retry to find), the announcement's with its row's
    // delivered mark, as nothing follows it.
    let mut kept = Vec::new();
    for row in 1..=20 {
        if let Some(ts) = s
            .store
            .chat_ref("slack", &warroom::chat::posted_key(row))
            .await
            .unwrap()
        {
            kept.push(ts);
        }
    }
    assert!(kept.contains(&announcement[0].ts), "{kept:?}");
    assert!(kept.contains(&alert.ts), "{kept:?}");

    // The escalation's first step paged the on-call service in PagerDuty.
    assert_eq!(s.pd.accepted("trigger").len(), 1);
    // Every call was authenticated with the bot token.
    assert!(
        s.fake
            .calls()
            .iter()
            .any(|c| c.method == "conversations.create")
    );
}

pub async fn buttons_and_commands_keep_topic_and_summary_current(db: &TestDb) {
    let s = Slack::start(db).await;
    s.command(DECLARER, &s.general, "declare API returning 503s")
        .await;
    s.pass().await;
    let channel = s.incident_channel();

    // Acknowledge with the escalation message's button: PagerDuty is told, the pressed
    // message says who acted, the summary shows who, the topic follows.
    let escalation = s
        .fake
        .messages(&channel.id)
        .into_iter()
        .find(|m| text_of(m).contains("escalation step 1"))
        .expect("escalation posted");
    assert_eq!(
        s.click(
            LEAD,
            &channel.id,
            &escalation,
            "warroom_acknowledge",
            "click-ack"
        )
        .await,
        StatusCode::OK
    );
    s.acknowledged().await;
    s.eventually("the pressed message to say who acted", || {
        s.fake
            .messages(&channel.id)
            .iter()
            .any(|m| m.ts == escalation.ts && m.edits == 1)
    })
    .await;
    let pressed = s
        .fake
        .messages(&channel.id)
        .into_iter()
        .find(|m| m.ts == escalation.ts)
        .unwrap();
    assert!(
        text_of(&pressed).contains(&format!("Acknowledged by <@{LEAD}>")),
        "{}",
        text_of(&pressed)
    );
    assert!(
        !text_of(&pressed).contains("\"actions\""),
        "its buttons are gone"
    );
    assert!(
        text_of(&pressed).contains("escalation step 1"),
        "its text stays"
    );
    s.pass().await;
    let incident = s
        .store
        .incident_by_channel(
            &s.store.incidents(false, 5).await.unwrap()[0]
                .channel
                .to_string(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(incident.status, Status::Acknowledged);
    assert_eq!(incident.acknowledged_by.as_ref().unwrap().as_str(), LEAD);
    assert_eq!(
        s.pd.accepted("acknowledge").len(),
        1,
        "acknowledged in PagerDuty"
    );
    let summary = s.summary(&channel.id);
    assert_eq!(summary.edits, 1, "edited in place, not posted again");
    assert!(
        text_of(&summary).contains(&format!("Acknowledged by <@{LEAD}>")),
        "{}",
        text_of(&summary)
    );
    assert!(
        !text_of(&summary).contains("warroom_acknowledge"),
        "spent button removed"
    );
    assert!(
        s.fake
            .channel_named(&channel.name)
            .unwrap()
            .topic
            .contains("acknowledged")
    );

    // Severity and status from the channel change topic and summary.
    s.command(LEAD, &channel.id, "sev P0").await;
    s.command(LEAD, &channel.id, "status identified").await;
    s.pass().await;
    let topic = s.fake.channel_named(&channel.name).unwrap().topic;
    assert!(topic.contains("INC-1 P0 | identified"), "{topic}");
    let summary = s.summary(&channel.id);
    assert_eq!(summary.edits, 3);
    assert!(
        s.summary(&channel.id)
            .blocks
            .to_string()
            .contains("warroom_resolve")
    );
    assert!(
        text_of(&summary).contains("P0 Critical · identified"),
        "{}",
        text_of(&summary)
    );

    // A new commander is invited and named in the topic as a mention.
    s.command(LEAD, &channel.id, "commander <@U0NEWLEAD|newlead>")
        .await;
    s.pass().await;
    let now = s.fake.channel_named(&channel.name).unwrap();
    assert!(now.members.contains(&"U0NEWLEAD".to_string()), "{now:?}");
    assert!(
        now.topic.contains("commander <@U0NEWLEAD>"),
        "{}",
        now.topic
    );

    // Resolve: the resolution template, the announcement, a summary without buttons.
    let reply = s
        .command(LEAD, &channel.id, "resolve expired certificate")
        .await;
    assert!(reply.get("text").is_some());
    s.pass().await;
    let messages = s.fake.messages(&channel.id);
    assert!(
        messages
            .iter()
            .any(|m| text_of(m).contains("INCIDENT RESOLVED - P0"))
    );
    let summary = s.summary(&channel.id);
    assert!(
        !text_of(&summary).contains("\"actions\""),
        "no buttons once resolved"
    );
    assert!(
        s.fake
            .channel_named(&channel.name)
            .unwrap()
            .topic
            .contains("resolved")
    );
    assert_eq!(
        s.fake.messages(&s.incidents).len(),
        2,
        "declared and resolved announced"
    );
    assert_eq!(s.pd.accepted("resolve").len(), 1);
}

pub async fn bad_signatures_are_refused_and_store_nothing(db: &TestDb) {
    let s = Slack::start(db).await;
    let body = s.command_body(DECLARER, &s.general, "declare Should not exist", "x");
    let now = s.clock.now().timestamp();
    let ts = now.to_string();
    let good = sign(SIGNING_SECRET, &ts, body.as_bytes());
    let stale_ts = (now - 6 * 60).to_string();
    let stale = sign(SIGNING_SECRET, &stale_ts, body.as_bytes());
    let wrong = sign("another-secret", &ts, body.as_bytes());
    let altered = body.replace("Should+not+exist", "Altered");
    let form = "application/x-www-form-urlencoded";
    for (what, body, ts, sig) in [
        (
            "wrong secret",
            body.as_str(),
            Some(ts.as_str()),
            Some(wrong.as_str()),
        ),
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
            "garbage",
            body.as_str(),
            Some(ts.as_str()),
            Some("v0=nothex"),
        ),
    ] {
        for path in ["/slack/commands", "/slack/interactions", "/slack/events"] {
            let response = s.send(path, form, body, ts, sig, &[]).await;
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{what} on {path}"
            );
        }
    }
    assert!(s.store.incidents(true, 10).await.unwrap().is_empty());
    assert!(s.fake.calls().is_empty(), "nothing reached Slack");
    // The same request, well signed, is accepted.
    let response = s
        .send("/slack/commands", form, &body, Some(&ts), Some(&good), &[])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(s.store.incidents(true, 10).await.unwrap().len(), 1);
    // An oversized body is refused before anything else.
    let huge = "x".repeat(300 * 1024);
    let response = s.signed("/slack/commands", form, huge).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

pub async fn the_reply_comes_in_time_even_when_slack_hangs(db: &TestDb) {
    let s = Slack::start(db).await;
    s.fake.hang_everything(true);
    let started = std::time::Instant::now();
    let reply = s
        .command(DECLARER, &s.general, "declare Queue backlog growing")
        .await;
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(3),
        "replied after {took:?}"
    );
    assert!(
        reply["text"].as_str().unwrap().contains("Declared INC-1"),
        "{reply}"
    );
    // The incident is stored; its channel waits in the outbox for Slack to answer again.
    assert_eq!(s.store.incidents(false, 5).await.unwrap().len(), 1);
    assert!(s.store.outbox_counts().await.unwrap().pending >= 4);
}

/// Slack is asked (a user-group check) on the way to this answer, and hangs: the answer
/// still comes in time, saying what could not be checked.
pub async fn a_hanging_membership_check_does_not_hold_the_reply(db: &TestDb) {
    let s = Slack::with(db, "allowed_groups = [\"S0ONCALL\"]", "").await;
    s.command(DECLARER, &s.general, "declare Disk full").await;
    s.pass().await;
    let channel = s.incident_channel();
    s.fake.hang_everything(true);
    let started = std::time::Instant::now();
    let reply = s.command("U0STRANGER", &channel.id, "ack").await;
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(3),
        "replied after {took:?}"
    );
    assert!(
        reply
            .to_string()
            .contains("did not answer a group-membership check"),
        "{reply}"
    );
    assert!(
        s.store.incidents(false, 5).await.unwrap()[0]
            .acknowledged_at
            .is_none()
    );
}

pub async fn one_refused_invitation_does_not_keep_the_others_out(db: &TestDb) {
    let s = Slack::start(db).await;
    s.fake.fail_next(
        "conversations.invite",
        Fault::SlackError("user_disabled".into()),
    );
    s.command(DECLARER, &s.general, "declare Disk full").await;
    s.pass().await;
    let channel = s.incident_channel();
    assert!(
        channel.members.contains(&RESPONDER.to_string()),
        "{channel:?}"
    );
    let notice = s
        .fake
        .messages(&channel.id)
        .into_iter()
        .find(|m| text_of(m).contains("could not invite"))
        .expect("the refusal is said in the channel");
    assert!(
        text_of(&notice).contains(&format!("<@{DECLARER}> (user_disabled)")),
        "{}",
        text_of(&notice)
    );
    let counts = s.store.outbox_counts().await.unwrap();
    assert_eq!((counts.pending, counts.failed), (0, 0));
}

/// A timeline longer than a Slack section is split into sections within Slack's limits, and
/// what does not fit in a message is cut with a note.
pub async fn long_answers_fit_slacks_limits(db: &TestDb) {
    let s = Slack::start(db).await;
    s.command(DECLARER, &s.general, "declare Disk full").await;
    s.pass().await;
    let channel = s.incident_channel();
    let update = format!(
        "update {}",
        "checked the volume & rotated logs; ".repeat(50)
    );
    for _ in 0..40 {
        s.command(DECLARER, &channel.id, &update).await;
    }
    let reply = s.command(DECLARER, &channel.id, "timeline").await;
    let blocks = reply["blocks"].as_array().unwrap();
    assert!(blocks.len() > 2 && blocks.len() <= 50, "{}", blocks.len());
    for block in blocks {
        let text = block["text"]["text"].as_str().unwrap_or_default();
        assert!(text.chars().count() <= 3_000, "{}", text.chars().count());
    }
    let all = reply.to_string();
    assert!(
        all.contains("not shown (Slack's limit)"),
        "a note says what was cut"
    );
    assert!(reply["text"].as_str().unwrap().chars().count() <= 4_100);
}

pub async fn slow_answers_follow_through_the_response_url(db: &TestDb) {
    // No time at all for the answer to go in the reply: it must follow through response_url.
    let s = Slack::build(db, "", "", std::time::Duration::ZERO).await;
    let reply = s
        .command(DECLARER, &s.general, "declare Cache evictions")
        .await;
    assert_eq!(reply["response_type"], "ephemeral");
    assert!(
        reply["text"].as_str().unwrap().contains("Working on it"),
        "{reply}"
    );
    s.eventually("the late answer", || !s.fake.responses("cmd").is_empty())
        .await;
    let late = s.fake.responses("cmd")[0].to_string();
    assert!(late.contains("Declared INC-1"), "{late}");
    assert_eq!(s.store.incidents(false, 5).await.unwrap().len(), 1);
}

pub async fn retried_events_and_double_clicks_change_things_once(db: &TestDb) {
    let s = Slack::start(db).await;
    // URL verification.
    let challenge = json!({ "type": "url_verification", "token": "t", "challenge": "c-123" });
    let response = s
        .signed("/slack/events", "application/json", challenge.to_string())
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap()["challenge"],
        "c-123"
    );

    // An app mention that declares, delivered three times (Slack's retries).
    let event = json!({
        "type": "event_callback",
        "team_id": "T0TEST",
        "api_app_id": "A0TEST",
        "event_id": "Ev0MENTION1",
        "event_time": 1_700_000_000,
        "event": {
            "type": "app_mention",
            "user": DECLARER,
            "text": format!("<@{BOT_USER}> declare Login page down"),
            "ts": "1700000000.000200",
            "channel": &s.general,
            "event_ts": "1700000000.000200",
        },
    })
    .to_string();
    for retry in ["", "1", "2"] {
        let ts = s.clock.now().timestamp().to_string();
        let sig = sign(SIGNING_SECRET, &ts, event.as_bytes());
        let headers: Vec<(&str, &str)> = if retry.is_empty() {
            vec![]
        } else {
            vec![
                ("x-slack-retry-num", retry),
                ("x-slack-retry-reason", "http_timeout"),
            ]
        };
        let response = s
            .send(
                "/slack/events",
                "application/json",
                &event,
                Some(&ts),
                Some(&sig),
                &headers,
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    s.eventually("the mention's answer", || !s.fake.ephemerals().is_empty())
        .await;
    assert_eq!(
        s.store.incidents(true, 10).await.unwrap().len(),
        1,
        "one incident"
    );
    assert_eq!(s.fake.ephemerals().len(), 1, "one answer");
    s.pass().await;
    assert_eq!(
        s.fake.calls_to("conversations.create").len(),
        1,
        "one channel"
    );

    // Two presses of Resolve at once resolve once.
    let channel = s.incident_channel();
    let summary = s.summary(&channel.id);
    let (a, b) = tokio::join!(
        s.click(DECLARER, &channel.id, &summary, "warroom_resolve", "r1"),
        s.click(DECLARER, &channel.id, &summary, "warroom_resolve", "r2")
    );
    assert_eq!((a, b), (StatusCode::OK, StatusCode::OK));
    // The press that lost is told; the one that won shows in the channel.
    s.eventually("the second press's answer", || {
        s.fake.responses("r1").len() + s.fake.responses("r2").len() == 1
    })
    .await;
    s.pass().await;
    let resolved: Vec<_> = s
        .fake
        .messages(&channel.id)
        .into_iter()
        .filter(|m| text_of(m).contains("INCIDENT RESOLVED"))
        .collect();
    assert_eq!(resolved.len(), 1, "resolved once");
    let answers = format!("{:?}{:?}", s.fake.responses("r1"), s.fake.responses("r2"));
    assert!(
        answers.contains("was resolved at"),
        "the second press is told: {answers}"
    );
}

/// A signed slash command or button press sent again (a captured request replayed inside
/// the 5-minute window) is acted on once; commands that only read answer every time.
pub async fn replayed_requests_are_acted_on_once(db: &TestDb) {
    let s = Slack::start(db).await;
    let form = "application/x-www-form-urlencoded";
    let send_twice = |body: String, path: &'static str| {
        let ts = s.clock.now().timestamp().to_string();
        let sig = sign(SIGNING_SECRET, &ts, body.as_bytes());
        let s = &s;
        async move {
            let mut answers = Vec::new();
            for _ in 0..2 {
                let response = s.send(path, form, &body, Some(&ts), Some(&sig), &[]).await;
                assert_eq!(response.status(), StatusCode::OK);
                answers.push(response.text().await.unwrap());
            }
            answers
        }
    };
    let declare = s.command_body(
        DECLARER,
        &s.general,
        "declare Replayed checkout errors",
        "d",
    );
    let answers = send_twice(declare, "/slack/commands").await;
    assert!(!answers[0].contains("already handled"), "{answers:?}");
    assert!(answers[1].contains("already handled"), "{answers:?}");
    assert_eq!(
        s.store.incidents(true, 10).await.unwrap().len(),
        1,
        "one incident"
    );

    // A read answers each time.
    let list = s.command_body(DECLARER, &s.general, "list", "l");
    for answer in send_twice(list, "/slack/commands").await {
        assert!(answer.contains("Replayed checkout errors"), "{answer}");
    }

    // An update in the incident channel, sent twice: recorded once.
    s.pass().await;
    let channel = s.incident_channel();
    let update = s.command_body(DECLARER, &channel.id, "update rolled back the deploy", "u");
    let answers = send_twice(update, "/slack/commands").await;
    assert!(answers[1].contains("already handled"), "{answers:?}");
    let incident = s.store.incidents(true, 10).await.unwrap().remove(0);
    let updates = |events: Vec<warroom::core::TimelineEvent>| {
        events
            .iter()
            .filter(|e| matches!(&e.kind, warroom::core::EventKind::StatusUpdate { text } if text.contains("rolled back")))
            .count()
    };
    assert_eq!(updates(s.store.timeline(incident.key).await.unwrap()), 1);

    // The same press of Acknowledge twice acknowledges once. (A second acknowledgement is
    // refused by the decision anyway, so the press's trigger id is checked too: the
    // acknowledgement recorded it.)
    let summary = s.summary(&channel.id);
    let press = s.click_body(DECLARER, &channel.id, &summary, "warroom_acknowledge", "a1");
    let payload: serde_json::Value = serde_json::from_str(
        &serde_urlencoded::from_str::<Vec<(String, String)>>(&press).unwrap()[0].1,
    )
    .unwrap();
    let trigger = format!("trigger:{}", payload["trigger_id"].as_str().unwrap());
    send_twice(press, "/slack/interactions").await;
    s.acknowledged().await;
    s.pass().await;
    let acks = s
        .store
        .timeline(incident.key)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.kind, warroom::core::EventKind::Acknowledged))
        .count();
    assert_eq!(acks, 1);
    assert!(
        !s.store
            .record_inbound_event(SLACK_REQUESTS_SOURCE, &trigger, s.clock.now())
            .await
            .unwrap(),
        "the press was recorded with its acknowledgement"
    );
}

pub async fn only_allowed_people_press_buttons(db: &TestDb) {
    let s = Slack::with(
        db,
        &format!("allowed_users = [\"{LEAD}\"]\nallowed_groups = [\"S0ONCALL\"]"),
        "",
    )
    .await;
    s.fake.set_usergroup("S0ONCALL", &["U0ONCALL"]);
    s.command(DECLARER, &s.general, "declare API returning 503s")
        .await;
    s.pass().await;
    let channel = s.incident_channel();
    let summary = s.summary(&channel.id);

    s.click(
        "U0STRANGER",
        &channel.id,
        &summary,
        "warroom_acknowledge",
        "stranger",
    )
    .await;
    s.eventually("the refusal", || !s.fake.responses("stranger").is_empty())
        .await;
    let refusal = s.fake.responses("stranger")[0].to_string();
    assert!(
        refusal.contains("Only the incident's responders"),
        "{refusal}"
    );
    let incident = &s.store.incidents(false, 5).await.unwrap()[0];
    assert_eq!(incident.status, Status::Investigating, "nothing changed");
    // Typed commands are held to the same rule; reading is open.
    let reply = s.command("U0STRANGER", &channel.id, "ack").await;
    assert!(
        reply.to_string().contains("Only the incident's responders"),
        "{reply}"
    );
    let reply = s.command("U0STRANGER", &channel.id, "timeline").await;
    assert!(reply.to_string().contains("Timeline of INC-1"), "{reply}");
    // A maintenance window is a change: in an incident channel its declarer and commander
    // may start one; elsewhere only the allowed people may.
    let reply = s
        .command(DECLARER, &s.general, "maintenance start 1h deploy")
        .await;
    assert!(
        reply.to_string().contains("Only the incident's responders"),
        "{reply}"
    );
    let reply = s
        .command(DECLARER, &channel.id, "maintenance start 1h deploy")
        .await;
    assert!(
        reply["text"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Maintenance window \"deploy\" started"),
        "{reply}"
    );

    // A member of an allowed group may.
    s.click(
        "U0ONCALL",
        &channel.id,
        &summary,
        "warroom_acknowledge",
        "member",
    )
    .await;
    s.acknowledged().await;
}

pub async fn rate_limits_and_errors_are_retried_without_duplicates(db: &TestDb) {
    let s = Slack::start(db).await;
    s.fake.fail_next("conversations.create", Fault::ServerError);
    s.fake.fail_next(
        "pins.add",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    for title in ["Search down", "Checkout slow", "Login errors"] {
        s.command(DECLARER, &s.general, &format!("declare {title}"))
            .await;
    }
    for _ in 0..6 {
        s.pass().await;
        s.clock.advance(Duration::seconds(5));
    }
    let channels: Vec<_> = s
        .fake
        .channels()
        .into_iter()
        .filter(|c| c.name.starts_with("inc-"))
        .collect();
    assert_eq!(channels.len(), 3, "a burst queues rather than failing");
    for channel in &channels {
        let alerts = s
            .fake
            .messages(&channel.id)
            .into_iter()
            .filter(|m| text_of(m).contains("INCIDENT ALERT"))
            .count();
        assert_eq!(
            alerts, 1,
            "the pin's retry did not post again in {}",
            channel.name
        );
        assert_eq!(s.fake.pins(&channel.id).len(), 2);
    }
    let counts = s.store.outbox_counts().await.unwrap();
    assert_eq!((counts.pending, counts.failed), (0, 0));
    // While pins.add waited out its Retry-After, other methods went on.
    // (Other incidents' pins may have been in flight beside it: the retry of the same pin is
    // the one that waited.)
    let calls = s.fake.calls();
    let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    let limited = methods.iter().position(|m| *m == "pins.add").unwrap();
    let retried = limited
        + 1
        + calls[limited + 1..]
            .iter()
            .position(|c| c.method == "pins.add" && c.body == calls[limited].body)
            .unwrap();
    assert!(
        methods[limited..retried].iter().any(|m| *m != "pins.add"),
        "{methods:?}"
    );
}

pub async fn the_postmortem_draft_is_shared_as_a_markdown_snippet_once(db: &TestDb) {
    let s = Slack::start(db).await;
    s.command(
        DECLARER,
        &s.general,
        "declare Checkout & <payments> down @here",
    )
    .await;
    s.pass().await;
    let channel = s
        .fake
        .channels()
        .into_iter()
        .find(|c| c.name.starts_with("inc-"))
        .expect("the incident channel");
    s.command(DECLARER, &channel.id, "resolve expired certificate")
        .await;
    // The share fails once; its retry uploads again and shares one file.
    s.fake
        .fail_next("files.completeUploadExternal", Fault::ServerError);
    s.command(DECLARER, &channel.id, "postmortem").await;
    for _ in 0..3 {
        s.pass().await;
        s.clock.advance(Duration::seconds(5));
    }
    let files = s.fake.files(&channel.id);
    assert_eq!(files.len(), 1, "{files:?}");
    let file = &files[0];
    assert_eq!(file.filename, "INC-1-postmortem-draft.md");
    assert_eq!(file.snippet_type.as_deref(), Some("markdown"));
    assert!(
        file.title.starts_with("Postmortem draft: INC-1"),
        "{}",
        file.title
    );
    // A file is plain Markdown: no code fence, no Slack entities, but no mass mention either.
    assert!(
        file.content
            .starts_with("# Postmortem: INC-1 — Checkout & <payments> down"),
        "{}",
        file.content
    );
    assert!(!file.content.contains("```"), "{}", file.content);
    assert!(!file.content.contains("&amp;"), "{}", file.content);
    assert!(!file.content.contains("@here"), "{}", file.content);
    assert!(file.content.contains("## Root cause"), "{}", file.content);
    // Nothing was posted as a message instead.
    assert!(
        s.fake
            .messages(&channel.id)
            .iter()
            .all(|m| !text_of(m).contains("# Postmortem")),
    );
    let counts = s.store.outbox_counts().await.unwrap();
    assert_eq!((counts.pending, counts.failed), (0, 0));
    let calls = s.fake.calls();
    let completes = calls
        .iter()
        .filter(|c| c.method == "files.completeUploadExternal")
        .count();
    assert_eq!(completes, 2, "one failed, one shared");
}

pub async fn taken_names_get_a_suffix_and_our_own_channel_is_adopted(db: &TestDb) {
    let s = Slack::start(db).await;
    s.command(DECLARER, &s.general, "declare Search down").await;
    let incident = &s.store.incidents(false, 5).await.unwrap()[0];
    let name = incident.channel.to_string();
    // Someone else already has the name.
    s.fake.add_channel(&name, "U0SOMEONE");
    s.pass().await;
    let ours = s
        .fake
        .channel_named(&format!("{name}-2"))
        .expect("suffixed");
    assert!(ours.members.contains(&DECLARER.to_string()));
    assert!(
        s.fake
            .messages(&ours.id)
            .iter()
            .any(|m| text_of(m).contains("INCIDENT ALERT"))
    );

    // A channel warroom created on an attempt whose answer was lost is adopted, not doubled.
    s.command(DECLARER, &s.general, "declare Checkout slow")
        .await;
    let second = s
        .store
        .incidents(false, 5)
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.title == "Checkout slow")
        .unwrap();
    let lost = s.fake.add_channel(second.channel.as_str(), BOT_USER);
    s.pass().await;
    assert!(
        s.fake
            .channel_named(&format!("{}-2", second.channel))
            .is_none()
    );
    assert!(
        s.fake
            .messages(&lost)
            .iter()
            .any(|m| text_of(m).contains("INCIDENT ALERT"))
    );

    // A channel warroom made for another incident, under a name that incident reserved, is
    // not adopted even before its id is recorded (its creation in flight on another replica).
    s.command(DECLARER, &s.general, "declare Login errors")
        .await;
    let login = s
        .store
        .incidents(false, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.title == "Login errors")
        .unwrap();
    let theirs = s.fake.add_channel(login.channel.as_str(), BOT_USER);
    s.store
        .set_chat_ref(
            "slack",
            &format!("name:{}", login.channel),
            "inc-20261128-other-incident",
        )
        .await
        .unwrap();
    s.pass().await;
    assert!(
        s.fake
            .messages(&theirs)
            .iter()
            .all(|m| !text_of(m).contains("INCIDENT ALERT")),
        "the other incident's channel was left alone"
    );
    let ours = s
        .fake
        .channel_named(&format!("{}-2", login.channel))
        .expect("a suffixed channel of its own");
    assert!(
        s.fake
            .messages(&ours.id)
            .iter()
            .any(|m| text_of(m).contains("INCIDENT ALERT"))
    );

    // Two incidents whose names meet (one's suffixed name is the other's own name), created in
    // the same dispatch pass, get a channel each.
    s.command(DECLARER, &s.general, "declare Payments down")
        .await;
    s.command(DECLARER, &s.general, "declare Payments down 2")
        .await;
    let payments = s
        .store
        .incidents(false, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.title == "Payments down")
        .unwrap();
    s.fake.add_channel(payments.channel.as_str(), "U0SOMEONE");
    s.pass().await;
    let alerts: Vec<usize> = s
        .fake
        .channels()
        .iter()
        .filter(|c| c.name.contains("payments-down"))
        .map(|c| {
            s.fake
                .messages(&c.id)
                .iter()
                .filter(|m| text_of(m).contains("INCIDENT ALERT"))
                .count()
        })
        .collect();
    assert_eq!(
        alerts,
        [0, 1, 1],
        "the foreign channel, then one channel each"
    );
}

pub async fn escalations_mention_configured_people_and_user_text_is_inert(db: &TestDb) {
    let steps = format!(
        r#"
[[escalation.steps]]
name = "On-call engineer"
after = "0m"
page = ["service:oncall"]
mention = ["slack:{LEAD}", "slack:S0OPS", "oncall"]
"#
    );
    let s = Slack::with(db, "", &steps).await;
    s.command(
        DECLARER,
        &s.general,
        "declare <!channel> @here &amp; <@U0VICTIM> outage",
    )
    .await;
    s.pass().await;
    let channel = s.incident_channel();
    let all: String = s.fake.messages(&channel.id).iter().map(text_of).collect();
    assert!(all.contains(&format!("<@{LEAD}>")), "{all}");
    assert!(all.contains("<!subteam^S0OPS>"), "{all}");
    assert!(all.contains("@oncall"), "{all}");
    let announced: String = s.fake.messages(&s.incidents).iter().map(text_of).collect();
    for text in [&all, &announced] {
        assert!(
            !text.contains("<!channel>") && !text.contains("<!here>"),
            "{text}"
        );
        assert!(!text.contains("@here"), "{text}");
        assert!(!text.contains("<@U0VICTIM>"), "{text}");
        assert!(text.contains("&lt;!"), "escaped: {text}");
    }
}

pub async fn socket_mode_works_without_a_public_url(db: &TestDb) {
    use crate::support::slack::APP_TOKEN;
    let s = Slack::with(
        db,
        &format!("mode = \"socket\"\napp_token = \"{APP_TOKEN}\""),
        "",
    )
    .await;
    let listener = warroom::chat::slack::socket::start(s.inbound.clone())
        .await
        .expect("connects");
    s.eventually("a Socket Mode connection", || {
        s.fake.socket_connections() > 0
    })
    .await;
    s.inbound.api.identity().await.unwrap();
    let command = |envelope: &str, team: &str, text: &str| {
        json!({
            "envelope_id": envelope,
            "type": "slash_commands",
            "accepts_response_payload": true,
            "payload": {
                "token": "deprecated", "team_id": team, "team_domain": "example",
                "channel_id": s.general, "channel_name": "general",
                "user_id": DECLARER, "user_name": "someone", "command": "/incident",
                "text": text, "api_app_id": "A0TEST",
                "response_url": s.fake.response_url("socket-cmd"), "trigger_id": trigger_id(),
            },
        })
    };
    let ack_of = |envelope: &str| {
        s.fake
            .socket_acks()
            .into_iter()
            .find(|a| a["envelope_id"] == envelope)
    };

    // A command from a workspace warroom does not serve is refused.
    s.fake.socket_send(command(
        "env-elsewhere",
        "T0OTHER",
        "declare From elsewhere",
    ));
    s.eventually("the refusal", || ack_of("env-elsewhere").is_some())
        .await;
    let refused = ack_of("env-elsewhere").unwrap();
    assert!(
        refused["payload"]
            .to_string()
            .contains("does not serve this Slack workspace"),
        "{refused}"
    );

    // A slash command: the acknowledgement carries the answer.
    s.fake.socket_send(command(
        "env-command",
        "T0TEST",
        "declare Socket &lt;outage&gt;",
    ));
    s.eventually("the command's acknowledgement", || {
        ack_of("env-command").is_some()
    })
    .await;
    let ack = ack_of("env-command").unwrap();
    assert!(
        ack["payload"].to_string().contains("Declared INC-1"),
        "{ack}"
    );
    assert_eq!(ack["payload"]["response_type"], "ephemeral");
    s.pass().await;
    let channel = s.incident_channel();
    assert_eq!(
        s.store.incidents(false, 5).await.unwrap()[0].title,
        "Socket <outage>"
    );

    // A button press.
    let ack_button = button(&s.summary(&channel.id), "warroom_acknowledge");
    s.fake.socket_send(json!({
        "envelope_id": "env-button",
        "type": "interactive",
        "accepts_response_payload": false,
        "payload": {
            "type": "block_actions",
            "user": { "id": LEAD, "username": "lead", "team_id": "T0TEST" },
            "api_app_id": "A0TEST",
            "team": { "id": "T0TEST", "domain": "example" },
            "channel": { "id": channel.id, "name": channel.name },
            "container": { "type": "message", "message_ts": "1700000000.000200", "channel_id": channel.id, "is_ephemeral": false },
            "trigger_id": trigger_id(),
            "response_url": s.fake.response_url("socket-click"),
            "actions": [{
                "type": "button", "action_id": ack_button["action_id"], "block_id": "b1",
                "value": ack_button["value"], "action_ts": "1700000000.1",
                "text": { "type": "plain_text", "text": "Acknowledge" },
            }],
        },
    }));
    s.acknowledged().await;

    // An app mention, delivered twice: handled once.
    let mention = json!({
        "type": "event_callback", "team_id": "T0TEST", "api_app_id": "A0TEST",
        "event_id": "Ev0SOCKET", "event_time": 1_700_000_000,
        "event": {
            "type": "app_mention", "user": LEAD,
            "text": format!("<@{BOT_USER}> status identified"),
            "ts": "1700000000.000300", "channel": channel.id, "event_ts": "1700000000.000300",
        },
    });
    for envelope in ["env-event-1", "env-event-2"] {
        s.fake.socket_send(json!({
            "envelope_id": envelope, "type": "events_api",
            "accepts_response_payload": false, "retry_attempt": 0, "retry_reason": "",
            "payload": mention,
        }));
    }
    s.eventually("both event acknowledgements", || {
        s.fake
            .socket_acks()
            .iter()
            .filter(|a| {
                a["envelope_id"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("env-event")
            })
            .count()
            == 2
    })
    .await;
    for _ in 0..100 {
        if s.store.incidents(false, 5).await.unwrap()[0].status == Status::Identified {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let incident = &s.store.incidents(false, 5).await.unwrap()[0];
    assert_eq!(incident.status, Status::Identified);
    let timeline = s.store.timeline(incident.key).await.unwrap();
    let changes = timeline
        .iter()
        .filter(|e| e.kind.name() == "status_changed")
        .count();
    assert_eq!(
        changes, 1,
        "the repeated event changed nothing: {timeline:?}"
    );
    listener.shutdown().await;
}

/// A Slack app installed in several workspaces has one signing secret for all: warroom serves
/// only the bot token's own workspace (or those in `slack.workspaces`), and a well-signed
/// request from another changes nothing.
async fn requests_from_another_workspace_are_refused(db: &TestDb) {
    let s = Slack::start(db).await;
    s.inbound.api.identity().await.unwrap();
    let form = "application/x-www-form-urlencoded";
    let elsewhere = |body: String| body.replace("T0TEST", "T0OTHER");
    let response = s
        .signed(
            "/slack/commands",
            form,
            elsewhere(s.command_body(DECLARER, &s.general, "declare From elsewhere", "x")),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let reply = response.json::<Value>().await.unwrap();
    assert_eq!(reply["response_type"], "ephemeral");
    assert!(
        reply
            .to_string()
            .contains("does not serve this Slack workspace"),
        "{reply}"
    );
    let mention = |event_id: &str, title: &str| {
        json!({
            "type": "event_callback", "team_id": "T0OTHER", "api_app_id": "A0TEST",
            "event_id": event_id, "event_time": 1_700_000_000,
            "event": {
                "type": "app_mention", "user": DECLARER, "channel": &s.general,
                "text": format!("<@{BOT_USER}> declare {title}"),
                "ts": "1700000000.000200", "event_ts": "1700000000.000200",
            },
        })
    };
    let response = s
        .signed(
            "/slack/events",
            "application/json",
            mention("Ev0ELSEWHERE", "Mentioned elsewhere").to_string(),
        )
        .await;
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "ignored");
    // Answers to mentions and presses come from spawned tasks: let them finish.
    let settle = || async {
        s.app.tasks.close();
        s.app.tasks.wait().await;
        s.app.tasks.reopen();
    };
    settle().await;
    assert!(s.store.incidents(true, 10).await.unwrap().is_empty());

    // In a channel shared with another organisation the outer team_id is the host's; the
    // installation's own workspace is in `authorizations`.
    let mut shared = mention("Ev0SHARED", "Mentioned in a shared channel");
    shared["authorizations"] =
        json!([{ "team_id": "T0TEST", "user_id": BOT_USER, "is_bot": true }]);
    let response = s
        .signed("/slack/events", "application/json", shared.to_string())
        .await;
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "ok");
    settle().await;
    let declared = s.store.incidents(true, 10).await.unwrap();
    assert_eq!(declared.len(), 1);
    assert_eq!(declared[0].title, "Mentioned in a shared channel");

    // A button pressed from elsewhere changes nothing.
    s.pass().await;
    let channel = s.incident_channel();
    let summary = s.summary(&channel.id);
    let body = elsewhere(s.click_body(
        "U0FOREIGN",
        &channel.id,
        &summary,
        "warroom_acknowledge",
        "elsewhere",
    ));
    let response = s.signed("/slack/interactions", form, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    settle().await;
    assert!(
        s.store.incidents(false, 5).await.unwrap()[0]
            .acknowledged_at
            .is_none()
    );
    assert!(s.fake.responses("elsewhere").is_empty());

    // With slack.workspaces set, that list is what is served.
    let listed = Slack::with(db, "workspaces = [\"T0OTHER\"]", "").await;
    let reply = listed
        .command(DECLARER, &listed.general, "declare Not listed")
        .await;
    assert!(
        reply
            .to_string()
            .contains("does not serve this Slack workspace"),
        "{reply}"
    );
    let response = listed
        .signed(
            "/slack/commands",
            form,
            elsewhere(listed.command_body(DECLARER, &listed.general, "declare Listed", "x")),
        )
        .await;
    assert!(
        response
            .json::<Value>()
            .await
            .unwrap()
            .to_string()
            .contains("INC-"),
        "a listed workspace is served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_from_another_workspace_are_refused_sqlite() {
    requests_from_another_workspace_are_refused(&TestDb::sqlite()).await;
}

on_both_stores!(
    declaring_opens_a_channel_with_everything_in_it,
    buttons_and_commands_keep_topic_and_summary_current,
    bad_signatures_are_refused_and_store_nothing,
    retried_events_and_double_clicks_change_things_once,
    replayed_requests_are_acted_on_once,
    the_postmortem_draft_is_shared_as_a_markdown_snippet_once,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_membership_check_does_not_hold_the_reply_sqlite() {
    a_hanging_membership_check_does_not_hold_the_reply(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refused_invitation_does_not_keep_the_others_out_sqlite() {
    one_refused_invitation_does_not_keep_the_others_out(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_answers_fit_slacks_limits_sqlite() {
    long_answers_fit_slacks_limits(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_mode_works_without_a_public_url_sqlite() {
    socket_mode_works_without_a_public_url(&TestDb::sqlite()).await;
}

/// The declarer is not refused as a stranger when the store cannot be read: the answer says
/// the store is down, and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_during_the_permission_check_is_said_not_refused_sqlite() {
    let db = TestDb::sqlite();
    let s = Slack::with(&db, &format!("allowed_users = [\"{LEAD}\"]"), "").await;
    s.command(DECLARER, &s.general, "declare API returning 503s")
        .await;
    s.pass().await;
    let channel = s.incident_channel();
    let summary = s.summary(&channel.id);
    let TestDb::Sqlite(dir) = &db else {
        unreachable!()
    };
    let file = rusqlite::Connection::open(dir.path().join("warroom.db")).unwrap();
    file.execute_batch("ALTER TABLE incidents RENAME TO incidents_away")
        .unwrap();

    let reply = s.command(DECLARER, &channel.id, "ack").await.to_string();
    assert!(reply.contains("cannot reach its store"), "{reply}");
    assert!(!reply.contains("Only the incident's responders"), "{reply}");
    s.click(
        DECLARER,
        &channel.id,
        &summary,
        "warroom_acknowledge",
        "down",
    )
    .await;
    s.eventually("the answer", || !s.fake.responses("down").is_empty())
        .await;
    let answer = s.fake.responses("down")[0].to_string();
    assert!(answer.contains("cannot reach its store"), "{answer}");

    file.execute_batch("ALTER TABLE incidents_away RENAME TO incidents")
        .unwrap();
    let incident = &s.store.incidents(false, 5).await.unwrap()[0];
    assert!(incident.acknowledged_at.is_none(), "nothing changed");
    s.command(DECLARER, &channel.id, "ack").await;
    let incident = &s.store.incidents(false, 5).await.unwrap()[0];
    assert!(incident.acknowledged_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reply_comes_in_time_even_when_slack_hangs_sqlite() {
    the_reply_comes_in_time_even_when_slack_hangs(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answers_follow_through_the_response_url_sqlite() {
    slow_answers_follow_through_the_response_url(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_people_press_buttons_sqlite() {
    only_allowed_people_press_buttons(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_errors_are_retried_without_duplicates_sqlite() {
    rate_limits_and_errors_are_retried_without_duplicates(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_names_get_a_suffix_and_our_own_channel_is_adopted_sqlite() {
    taken_names_get_a_suffix_and_our_own_channel_is_adopted(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalations_mention_configured_people_and_user_text_is_inert_sqlite() {
    escalations_mention_configured_people_and_user_text_is_inert(&TestDb::sqlite()).await;
}

/// Block Kit of every message template, as Slack receives it.
#[test]
fn block_kit_of_every_template() {
    use chrono::TimeZone;
    let policy = warroom::config::load(None).unwrap().policy;
    let now = chrono::Utc
        .with_ymd_and_hms(2026, 11, 28, 14, 7, 0)
        .unwrap();
    let renderer = Renderer::load(None).unwrap();
    let messages = warroom::core::views::samples(&policy, now);
    let mut seen = std::collections::BTreeSet::new();
    let rendered: Vec<Value> = messages
        .iter()
        .map(|m| {
            for section in &m.sections {
                if let warroom::core::message::Section::Text { template, .. } = section {
                    seen.insert(template.file_stem());
                }
            }
            let content = warroom::chat::slack::blocks::content(
                &renderer.render(warroom::core::Platform::Slack, m).unwrap(),
            );
            content.reply_json()
        })
        .collect();
    let all: std::collections::BTreeSet<_> = warroom::core::message::TemplateName::ALL
        .iter()
        .map(|t| t.file_stem())
        .collect();
    assert_eq!(seen, all, "every template has a sample");
    insta::assert_snapshot!(serde_json::to_string_pretty(&rendered).unwrap());
}
