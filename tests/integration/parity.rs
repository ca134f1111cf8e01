//! The end-to-end scenarios of the chat-neutral model, written once and run against every
//! adapter: the console (in process, its sink printing to a buffer), Slack (signed requests
//! to warroom's endpoints, the fake Slack) and Discord (signed interactions, the fake
//! Discord). Each adapter is driven through the [`Chat`] trait: what a person types or
//! presses, and what the incident channel, the announcements, the topic and PagerDuty show.

use crate::discord::{self, Discord};
use crate::slack::Slack;
use crate::support::TestDb;
use crate::support::pagerduty::FakePagerDuty;
use async_trait::async_trait;
use chrono::Duration;
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};
use warroom::app::clock::VirtualClock;
use warroom::app::{App, Origin};
use warroom::chat::console::ConsoleSink;
use warroom::chat::{Delivered, DeliveryError, Sink};
use warroom::core::message::ButtonAction;
use warroom::core::{Effect, Platform, UserRef};
use warroom::pagerduty::PagerDutyClient;
use warroom::render::Renderer;
use warroom::store::{OutboxItem, Store};

/// The people in the scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Person {
    Declarer,
    /// Configured as a responder on Slack and Discord.
    Responder,
    Lead,
}

/// One chat adapter, as a person uses it and as the scenarios observe it.
#[async_trait]
pub trait Chat: Send + Sync {
    fn name(&self) -> &'static str;
    /// The person's id on the platform (what the store records as the actor).
    fn id(&self, who: Person) -> String;
    /// How a mention of the person is written in a message.
    fn mention(&self, who: Person) -> String {
        format!("<@{}>", self.id(who))
    }
    /// `/incident declare <title>` in an ordinary channel; the answer the person sees.
    async fn declare(&self, who: Person, title: &str) -> String;
    /// `/incident <text>` typed in the incident channel; the answer the person sees (empty
    /// when the work was said in the channel).
    async fn command(&self, who: Person, text: &str) -> String;
    /// Press the `acknowledge` or `resolve` button of the newest incident-channel message that
    /// has it (answering "are you sure?" where the platform asks), and wait for the work.
    async fn press(&self, who: Person, action: &str);
    /// Fire due timers and deliver the outbox (chat and PagerDuty), as the loops would.
    async fn pass(&self);
    fn clock(&self) -> &VirtualClock;
    fn store(&self) -> Arc<dyn Store>;
    fn pd(&self) -> &FakePagerDuty;
    /// The messages of the incident channel as they stand now (edits applied).
    fn channel_messages(&self) -> Vec<String>;
    /// The messages of the incidents (announcement) channel.
    fn announcements(&self) -> Vec<String>;
    fn topic(&self) -> String;
    /// How many messages of the incident channel are pinned.
    fn pinned(&self) -> usize;
    /// The incident summary as it stands now.
    fn summary(&self) -> String;
    /// Messages (any channel) that would notify everyone: `@here`, `@channel`, `@everyone`.
    fn mass_mentions(&self) -> Vec<String>;
    /// The documents shared in the incident channel (the postmortem draft), each as one text:
    /// files on Slack, what was printed or posted for them elsewhere.
    fn documents(&self) -> Vec<String>;
}

// ---------------------------------------------------------------------------------------
// The console adapter: the console sink printing into a buffer, one record per delivery.

/// A `Write` into a shared buffer.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What one delivery printed, and in which channel.
#[derive(Clone, Debug)]
struct Printed {
    channel: String,
    effect: &'static str,
    text: String,
}

/// The console sink, with what each delivery printed recorded separately.
struct RecordingConsole {
    inner: ConsoleSink,
    buffer: Buffer,
    printed: Mutex<Vec<Printed>>,
}

#[async_trait]
impl Sink for RecordingConsole {
    fn destination(&self) -> &'static str {
        self.inner.destination()
    }

    async fn deliver(&self, item: &OutboxItem) -> Result<Delivered, DeliveryError> {
        let before = self.buffer.0.lock().unwrap().len();
        let delivered = self.inner.deliver(item).await;
        let chunk = String::from_utf8(self.buffer.0.lock().unwrap()[before..].to_vec()).unwrap();
        let (channel, effect) = match &item.effect {
            Effect::CreateChannel { channel, .. } => (channel.to_string(), "create"),
            Effect::Post { channel, .. } => (channel.name().to_string(), "post"),
            Effect::Update { channel, .. } => (channel.to_string(), "update"),
            Effect::SetTopic { channel, .. } => (channel.to_string(), "topic"),
            Effect::Invite { channel, .. } => (channel.to_string(), "invite"),
            Effect::PagerDuty { .. } => (String::new(), "pagerduty"),
            Effect::Upload { channel, .. } => (channel.to_string(), "upload"),
        };
        let prefix = format!("[#{channel}] ");
        let text = chunk
            .lines()
            .map(|l| l.strip_prefix(&prefix).unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        self.printed.lock().unwrap().push(Printed {
            channel,
            effect,
            text,
        });
        delivered
    }
}

pub struct Console {
    app: Arc<App>,
    clock: Arc<VirtualClock>,
    store: Arc<dyn Store>,
    pd: FakePagerDuty,
    pagerduty: PagerDutyClient,
    sink: RecordingConsole,
    renderer: Arc<Renderer>,
    announce: String,
}

impl Console {
    pub async fn start(db: &TestDb) -> Console {
        let pd = FakePagerDuty::start().await;
        let dir = tempfile::tempdir().unwrap();
        let text = crate::pagerduty::config_text(&pd.url, "");
        let config =
            warroom::config::load(Some(&crate::pagerduty::write_config(dir.path(), &text)))
                .unwrap();
        let store = db.open().await;
        let clock = Arc::new(VirtualClock::starting_at(chrono::Utc::now()));
        let app = Arc::new(App::new(
            store.clone(),
            config.policy.clone(),
            clock.clone(),
            Duration::seconds(60),
        ));
        let renderer = Arc::new(Renderer::load(None).unwrap());
        let buffer = Buffer::default();
        let output: warroom::chat::console::Output = Arc::new(Mutex::new(Box::new(buffer.clone())));
        Console {
            app,
            clock,
            store,
            pagerduty: PagerDutyClient::new(config.pagerduty.clone()).unwrap(),
            pd,
            sink: RecordingConsole {
                inner: ConsoleSink::new(renderer.clone(), output),
                buffer,
                printed: Mutex::new(Vec::new()),
            },
            renderer,
            announce: config.policy.announce_channel.clone(),
        }
    }

    fn user(&self, who: Person) -> UserRef {
        UserRef::parse(&self.id(who)).unwrap()
    }

    fn render(&self, reply: Option<warroom::core::message::Message>) -> String {
        reply
            .map(|m| {
                self.renderer
                    .render(Platform::Console, &m)
                    .unwrap()
                    .plain_text()
            })
            .unwrap_or_default()
    }

    async fn incident_channel(&self) -> String {
        let open = self.store.incidents(true, 5).await.unwrap();
        open[0].channel.to_string()
    }

    /// What was printed in the incident channel.
    fn printed_in_incident_channel(&self) -> Vec<Printed> {
        self.sink
            .printed
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.channel.starts_with("inc-"))
            .cloned()
            .collect()
    }
}

#[async_trait]
impl Chat for Console {
    fn name(&self) -> &'static str {
        "console"
    }
    fn id(&self, who: Person) -> String {
        match who {
            Person::Declarer => "alice",
            Person::Responder => "bob",
            Person::Lead => "carol",
        }
        .to_string()
    }
    fn mention(&self, who: Person) -> String {
        format!("@{}", self.id(who))
    }
    async fn declare(&self, who: Person, title: &str) -> String {
        let origin = Origin {
            platform: Platform::Console,
            channel: "general".into(),
            actor: self.user(who),
            request: None,
        };
        let reply = self
            .app
            .handle_command(&origin, &format!("declare {title}"))
            .await;
        self.render(reply)
    }
    async fn command(&self, who: Person, text: &str) -> String {
        let origin = Origin {
            platform: Platform::Console,
            channel: self.incident_channel().await,
            actor: self.user(who),
            request: None,
        };
        let reply = self.app.handle_command(&origin, text).await;
        self.render(reply)
    }
    async fn press(&self, who: Person, action: &str) {
        // The console shows buttons as `buttons: [1] Acknowledge …` under a message, and
        // `:click N` sends the button's action: the same here.
        let label = match action {
            "acknowledge" => "Acknowledge",
            "resolve" => "Resolve",
            other => panic!("no {other} button in the scenarios"),
        };
        assert!(
            self.printed_in_incident_channel()
                .iter()
                .rev()
                .find(|p| p.text.contains("buttons:"))
                .is_some_and(|p| p.text.contains(label)),
            "no {label} button shown"
        );
        let incident = self.store.incidents(true, 5).await.unwrap().remove(0);
        let button = match action {
            "acknowledge" => ButtonAction::Acknowledge {
                incident: incident.key,
            },
            _ => ButtonAction::Resolve {
                incident: incident.key,
            },
        };
        let origin = Origin {
            platform: Platform::Console,
            channel: incident.channel.to_string(),
            actor: self.user(who),
            request: None,
        };
        let reply = self.app.handle_button(&origin, &button).await;
        assert!(reply.is_none(), "{}", self.render(reply));
    }
    async fn pass(&self) {
        self.app.run_due_timers().await.unwrap();
        for _ in 0..10 {
            let console = self.app.dispatch_outbox(&self.sink).await.unwrap();
            let pd = self.app.dispatch_outbox(&self.pagerduty).await.unwrap();
            if console + pd == 0 {
                break;
            }
        }
    }
    fn clock(&self) -> &VirtualClock {
        &self.clock
    }
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
    fn pd(&self) -> &FakePagerDuty {
        &self.pd
    }
    fn channel_messages(&self) -> Vec<String> {
        self.printed_in_incident_channel()
            .into_iter()
            .filter(|p| p.effect == "post" || p.effect == "update")
            .map(|p| p.text)
            .collect()
    }
    fn documents(&self) -> Vec<String> {
        self.printed_in_incident_channel()
            .into_iter()
            .filter(|p| p.effect == "upload")
            .map(|p| p.text)
            .collect()
    }
    fn announcements(&self) -> Vec<String> {
        self.sink
            .printed
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.channel == self.announce && p.effect == "post")
            .map(|p| p.text.clone())
            .collect()
    }
    fn topic(&self) -> String {
        self.printed_in_incident_channel()
            .iter()
            .rev()
            .find_map(|p| {
                p.text
                    .split_once("topic: ")
                    .map(|(_, topic)| topic.to_string())
            })
            .unwrap_or_default()
    }
    fn pinned(&self) -> usize {
        self.printed_in_incident_channel()
            .iter()
            .filter(|p| p.text.contains("* message pinned"))
            .count()
    }
    fn summary(&self) -> String {
        self.printed_in_incident_channel()
            .into_iter()
            .rev()
            .find(|p| p.text.contains("📋"))
            .map(|p| p.text)
            .unwrap_or_default()
    }
    fn mass_mentions(&self) -> Vec<String> {
        self.sink
            .printed
            .lock()
            .unwrap()
            .iter()
            .filter(|p| {
                let lower = p.text.to_lowercase();
                ["@here", "@channel", "@everyone"]
                    .iter()
                    .any(|m| lower.contains(m))
            })
            .map(|p| p.text.clone())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// Slack.

const SLACK_DECLARER: &str = "U0DECLARER";
const SLACK_LEAD: &str = "U0LEAD";

fn slack_text(message: &crate::support::slack::Posted) -> String {
    // The blocks carry the text as people see it; the fallback text is for notifications.
    let mut text = String::new();
    for block in message.blocks.as_array().into_iter().flatten() {
        if let Some(t) = block["text"]["text"].as_str() {
            text.push_str(t);
            text.push('\n');
        }
        for field in block["fields"].as_array().into_iter().flatten() {
            text.push_str(field["text"].as_str().unwrap_or_default());
            text.push('\n');
        }
        for element in block["elements"].as_array().into_iter().flatten() {
            if let Some(t) = element["text"].as_str() {
                text.push_str(t);
                text.push('\n');
            }
        }
    }
    text
}

#[async_trait]
impl Chat for Slack {
    fn name(&self) -> &'static str {
        "slack"
    }
    fn id(&self, who: Person) -> String {
        match who {
            Person::Declarer => SLACK_DECLARER,
            Person::Responder => "U0RESPONDER",
            Person::Lead => SLACK_LEAD,
        }
        .to_string()
    }
    async fn declare(&self, who: Person, title: &str) -> String {
        let reply = Slack::command(
            self,
            &self.id(who),
            &self.general,
            &format!("declare {title}"),
        )
        .await;
        reply["text"].as_str().unwrap_or_default().to_string()
    }
    async fn command(&self, who: Person, text: &str) -> String {
        let channel = self.incident_channel().id;
        let reply = Slack::command(self, &self.id(who), &channel, text).await;
        reply["text"].as_str().unwrap_or_default().to_string()
    }
    async fn press(&self, who: Person, action: &str) {
        let channel = self.incident_channel().id;
        let action_id = format!("warroom_{action}");
        let message = self
            .fake
            .messages(&channel)
            .into_iter()
            .rev()
            .find(|m| m.blocks.to_string().contains(&action_id))
            .unwrap_or_else(|| panic!("no {action_id} button"));
        let before = self.store.incidents(true, 5).await.unwrap().remove(0);
        // Slack shows Resolve's confirmation dialog itself and sends the press once confirmed.
        self.click(&self.id(who), &channel, &message, &action_id, "press")
            .await;
        for _ in 0..200 {
            let now = self.store.incident(before.key).await.unwrap().unwrap();
            if now.status != before.status {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("pressing {action_id} changed nothing");
    }
    async fn pass(&self) {
        Slack::pass(self).await
    }
    fn clock(&self) -> &VirtualClock {
        &self.clock
    }
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
    fn pd(&self) -> &FakePagerDuty {
        &self.pd
    }
    fn channel_messages(&self) -> Vec<String> {
        let channel = self.incident_channel().id;
        self.fake
            .messages(&channel)
            .iter()
            .map(slack_text)
            .collect()
    }
    fn documents(&self) -> Vec<String> {
        let channel = self.incident_channel().id;
        self.fake
            .files(&channel)
            .into_iter()
            .map(|f| f.content)
            .collect()
    }
    fn announcements(&self) -> Vec<String> {
        self.fake
            .messages(&self.incidents)
            .iter()
            .map(slack_text)
            .collect()
    }
    fn topic(&self) -> String {
        self.incident_channel().topic
    }
    fn pinned(&self) -> usize {
        self.fake.pins(&self.incident_channel().id).len()
    }
    fn summary(&self) -> String {
        slack_text(&Slack::summary(self, &self.incident_channel().id))
    }
    fn mass_mentions(&self) -> Vec<String> {
        let mut channels = vec![self.incidents.clone(), self.general.clone()];
        channels.extend(self.fake.channels().into_iter().map(|c| c.id));
        channels
            .iter()
            .flat_map(|c| self.fake.messages(c))
            .map(|m| format!("{}{}", m.text.clone().unwrap_or_default(), m.blocks))
            .filter(|text| {
                [
                    "<!here",
                    "<!channel",
                    "<!everyone",
                    "@here",
                    "@channel",
                    "@everyone",
                ]
                .iter()
                .any(|m| text.contains(m))
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// Discord.

/// Typed command text as a Discord invocation: the sub-command and its first option.
fn discord_options(text: &str) -> (String, Value) {
    let (sub, rest) = text.split_once(' ').unwrap_or((text, ""));
    // `postmortem done <link>`: the link is the `done` option.
    let rest = match sub {
        "postmortem" => rest.strip_prefix("done ").unwrap_or(rest),
        _ => rest,
    };
    let option = match sub {
        "postmortem" => Some(("done", 3)),
        "status" => Some(("status", 3)),
        "update" => Some(("text", 3)),
        "resolve" => Some(("root_cause", 3)),
        "sev" => Some(("severity", 3)),
        "commander" => Some(("user", 6)),
        _ => None,
    };
    let options = match option {
        Some((name, kind)) if !rest.is_empty() => {
            json!([{ "name": name, "type": kind, "value": rest.trim() }])
        }
        _ => json!([]),
    };
    (sub.to_string(), options)
}

/// The text a Discord user saw: the reply itself, or the deferred answer.
async fn discord_answer(d: &Discord, reply: &Value, token: &str) -> String {
    if reply["type"] == 4 {
        return reply["data"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string();
    }
    d.answer(token).await.content
}

#[async_trait]
impl Chat for Discord {
    fn name(&self) -> &'static str {
        "discord"
    }
    fn id(&self, who: Person) -> String {
        match who {
            Person::Declarer => discord::DECLARER,
            Person::Responder => discord::RESPONDER,
            Person::Lead => discord::LEAD,
        }
        .to_string()
    }
    async fn declare(&self, who: Person, title: &str) -> String {
        let options = json!([{ "name": "title", "type": 3, "value": title }]);
        let (reply, token) = self
            .invoke(
                discord::user(&self.id(who)),
                &self.general.clone(),
                "declare",
                options,
            )
            .await;
        discord_answer(self, &reply, &token).await
    }
    async fn command(&self, who: Person, text: &str) -> String {
        let channel = self.incident_channel().id;
        let (sub, options) = discord_options(text);
        let (reply, token) = self
            .invoke(discord::user(&self.id(who)), &channel, &sub, options)
            .await;
        discord_answer(self, &reply, &token).await
    }
    async fn press(&self, who: Person, action: &str) {
        let channel = self.incident_channel().id;
        let message = self.newest_with_button(&channel, action);
        let id = self.id(who);
        let answer = self
            .press_through(discord::user(&id), &message, action)
            .await;
        assert!(answer.content.contains('✓'), "{}", answer.content);
    }
    async fn pass(&self) {
        Discord::pass(self).await
    }
    fn clock(&self) -> &VirtualClock {
        &self.clock
    }
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
    fn pd(&self) -> &FakePagerDuty {
        &self.pd
    }
    fn channel_messages(&self) -> Vec<String> {
        let channel = self.incident_channel().id;
        self.fake
            .messages(&channel)
            .into_iter()
            .map(|m| m.content)
            .collect()
    }
    fn documents(&self) -> Vec<String> {
        // Discord gets a document as code-block messages: the pieces of one, in order.
        let pieces: Vec<String> = self
            .channel_messages()
            .into_iter()
            .filter(|m| m.starts_with("```"))
            .collect();
        if pieces.is_empty() {
            Vec::new()
        } else {
            vec![pieces.join("\n")]
        }
    }
    fn announcements(&self) -> Vec<String> {
        self.fake
            .messages(&self.incidents)
            .into_iter()
            .map(|m| m.content)
            .collect()
    }
    fn topic(&self) -> String {
        self.incident_channel().topic.unwrap_or_default()
    }
    fn pinned(&self) -> usize {
        self.fake.pins(self.incident_channel().id).len()
    }
    fn summary(&self) -> String {
        Discord::summary(self, &self.incident_channel().id).content
    }
    fn mass_mentions(&self) -> Vec<String> {
        self.fake
            .channels(crate::support::discord::GUILD_ID)
            .iter()
            .flat_map(|c| self.fake.messages(&c.id))
            .filter(|m| {
                // What Discord would notify, and what would if `allowed_mentions` were lost.
                m.mass_mention || m.content.contains("@everyone") || m.content.contains("@here")
            })
            .map(|m| m.content)
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// The scenarios.

fn any_contains(messages: &[String], needle: &str) -> bool {
    messages.iter().any(|m| m.contains(needle))
}

/// Declare, acknowledge with the button, post status and an update, resolve: every step
/// shows in the channel, the topic and the summary, and PagerDuty follows.
pub async fn an_incident_from_declaration_to_resolution(chat: &dyn Chat) {
    let name = chat.name();
    let reply = chat.declare(Person::Declarer, "API returning 503s").await;
    assert!(reply.contains("Declared INC-1"), "{name}: {reply}");
    chat.pass().await;

    let messages = chat.channel_messages();
    let alert = messages
        .iter()
        .find(|m| m.contains("INCIDENT ALERT - P1"))
        .unwrap_or_else(|| panic!("{name}: no alert in {messages:#?}"));
    assert!(
        alert.contains(&chat.mention(Person::Declarer)),
        "{name}: {alert}"
    );
    assert!(chat.pinned() >= 2, "{name}: alert and summary pinned");
    assert!(chat.summary().contains("📋"), "{name}");
    assert!(
        chat.topic().contains("INC-1 P1 | investigating"),
        "{name}: {}",
        chat.topic()
    );
    let announcements = chat.announcements();
    assert_eq!(announcements.len(), 1, "{name}: {announcements:#?}");
    assert!(
        announcements[0].contains("INC-1 (P1) declared by"),
        "{name}: {announcements:?}"
    );
    assert_eq!(chat.pd().accepted("trigger").len(), 1, "{name}: paged once");

    chat.press(Person::Lead, "acknowledge").await;
    chat.pass().await;
    let incident = chat.store().incidents(false, 5).await.unwrap().remove(0);
    assert_eq!(
        incident
            .acknowledged_by
            .as_ref()
            .map(|u| u.as_str().to_string()),
        Some(chat.id(Person::Lead)),
        "{name}"
    );
    assert_eq!(
        chat.pd().accepted("acknowledge").len(),
        1,
        "{name}: acknowledged in PagerDuty"
    );
    let summary = chat.summary();
    assert!(
        summary.contains(&chat.mention(Person::Lead)),
        "{name}: {summary}"
    );
    assert!(
        chat.topic().contains("acknowledged"),
        "{name}: {}",
        chat.topic()
    );

    chat.command(Person::Lead, "status identified").await;
    chat.command(Person::Lead, "update Failover to the replica is done")
        .await;
    chat.pass().await;
    assert!(
        chat.topic().contains("identified"),
        "{name}: {}",
        chat.topic()
    );
    assert!(
        any_contains(&chat.channel_messages(), "Failover to the replica is done"),
        "{name}"
    );

    chat.command(Person::Lead, "resolve expired certificate")
        .await;
    chat.pass().await;
    assert!(
        any_contains(&chat.channel_messages(), "INCIDENT RESOLVED - P1"),
        "{name}: {:#?}",
        chat.channel_messages()
    );
    assert!(
        chat.topic().contains("resolved"),
        "{name}: {}",
        chat.topic()
    );
    assert_eq!(
        chat.announcements().len(),
        2,
        "{name}: declared and resolved announced"
    );
    assert_eq!(chat.pd().accepted("resolve").len(), 1, "{name}");
    assert!(
        chat.store().incidents(false, 5).await.unwrap().is_empty(),
        "{name}"
    );
}

/// Unacknowledged, the escalation climbs a step every interval and pages each step's target
/// once; an acknowledgement stops it, and passes without time passing page nobody again.
pub async fn escalation_climbs_until_acknowledged_and_never_pages_twice(chat: &dyn Chat) {
    let name = chat.name();
    chat.declare(Person::Declarer, "Payments failing").await;
    chat.pass().await;
    chat.pass().await;
    assert_eq!(chat.pd().accepted("trigger").len(), 1, "{name}");
    assert!(
        any_contains(&chat.channel_messages(), "escalation step 1"),
        "{name}"
    );

    chat.clock().advance(Duration::minutes(31));
    chat.pass().await;
    chat.pass().await;
    assert!(
        any_contains(&chat.channel_messages(), "escalation step 2"),
        "{name}: {:#?}",
        chat.channel_messages()
    );
    assert!(
        any_contains(&chat.channel_messages(), "@devops-lead"),
        "{name}"
    );
    assert_eq!(
        chat.pd().accepted("trigger").len(),
        2,
        "{name}: step 2 paged once"
    );

    chat.command(Person::Responder, "ack").await;
    chat.pass().await;
    chat.clock().advance(Duration::hours(3));
    chat.pass().await;
    assert!(
        !any_contains(&chat.channel_messages(), "escalation step 3"),
        "{name}: the acknowledgement stopped the escalation"
    );
    assert_eq!(chat.pd().accepted("trigger").len(), 2, "{name}");
    // Acknowledged on each service paged (the Events API needs the trigger's routing key).
    assert_eq!(chat.pd().accepted("acknowledge").len(), 2, "{name}");
}

/// What people type is shown as they typed it and never notifies everyone.
pub async fn user_text_never_mass_mentions(chat: &dyn Chat) {
    let name = chat.name();
    chat.declare(Person::Declarer, "DB down @here <!channel> @everyone & <b>")
        .await;
    chat.pass().await;
    chat.command(Person::Declarer, "update still down @channel @here")
        .await;
    chat.pass().await;
    assert!(
        chat.mass_mentions().is_empty(),
        "{name}: {:#?}",
        chat.mass_mentions()
    );
    assert!(
        any_contains(&chat.channel_messages(), "still down"),
        "{name}"
    );
}

/// The timeline answers with every event, in order, with who did it.
pub async fn the_timeline_tells_the_story(chat: &dyn Chat) {
    let name = chat.name();
    chat.declare(Person::Declarer, "Login errors").await;
    chat.pass().await;
    chat.command(Person::Lead, "ack").await;
    chat.command(Person::Lead, "update Rolled back the release")
        .await;
    let timeline = chat.command(Person::Lead, "timeline").await;
    let declared = timeline
        .find("eclared")
        .unwrap_or_else(|| panic!("{name}: {timeline}"));
    let acknowledged = timeline
        .find("cknowledged")
        .unwrap_or_else(|| panic!("{name}: {timeline}"));
    let update = timeline
        .find("Rolled back the release")
        .unwrap_or_else(|| panic!("{name}: {timeline}"));
    assert!(
        declared < acknowledged && acknowledged < update,
        "{name}: {timeline}"
    );
}

pub async fn the_postmortem_draft_is_shared_in_the_channel(chat: &dyn Chat) {
    let name = chat.name();
    chat.declare(Person::Declarer, "Checkout errors").await;
    chat.pass().await;
    chat.command(Person::Lead, "update Rolled back the release")
        .await;
    chat.command(Person::Lead, "resolve expired certificate")
        .await;
    chat.pass().await;
    assert!(chat.documents().is_empty(), "{name}");
    chat.command(Person::Lead, "postmortem").await;
    chat.pass().await;
    let documents = chat.documents();
    assert_eq!(documents.len(), 1, "{name}: {documents:?}");
    let draft = &documents[0];
    for part in [
        "# Postmortem: INC-1 — Checkout errors",
        "- Root cause given at resolution: expired certificate",
        "Rolled back the release",
        "## Preventive measures",
        "## Runbook updates",
    ] {
        assert!(draft.contains(part), "{name}: {part} in {draft}");
    }
    let done = chat
        .command(
            Person::Lead,
            "postmortem done https://wiki.example.com/pm/1",
        )
        .await;
    chat.pass().await;
    assert!(
        chat.channel_messages()
            .iter()
            .any(|m| m.contains("is done: https://wiki.example.com/pm/1")),
        "{name}: {done} {:?}",
        chat.channel_messages()
    );
    assert_eq!(chat.mass_mentions(), Vec::<String>::new(), "{name}");
}

/// One test per scenario and adapter, on SQLite; the first scenario also on PostgreSQL.
macro_rules! on_every_adapter {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                use crate::support::TestDb;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn console() {
                    let db = TestDb::sqlite();
                    let chat = super::Console::start(&db).await;
                    super::$scenario(&chat).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn slack() {
                    let db = TestDb::sqlite();
                    let chat = crate::slack::Slack::start(&db).await;
                    super::$scenario(&chat).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn discord() {
                    let db = TestDb::sqlite();
                    let chat = crate::discord::Discord::start(&db).await;
                    super::$scenario(&chat).await;
                }
            }
        )*
    };
}

on_every_adapter!(
    an_incident_from_declaration_to_resolution,
    escalation_climbs_until_acknowledged_and_never_pages_twice,
    user_text_never_mass_mentions,
    the_timeline_tells_the_story,
    the_postmortem_draft_is_shared_in_the_channel,
);

mod postgres {
    use crate::support::{PgSchema, TestDb};

    async fn each(run: impl AsyncFn(&TestDb)) {
        let Some(schema) = PgSchema::create().await else {
            return;
        };
        let db = TestDb::Postgres(schema);
        run(&db).await;
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_incident_from_declaration_to_resolution_on_every_adapter() {
        each(async |db| {
            super::an_incident_from_declaration_to_resolution(&super::Console::start(db).await)
                .await
        })
        .await;
        each(async |db| {
            super::an_incident_from_declaration_to_resolution(&crate::slack::Slack::start(db).await)
                .await
        })
        .await;
        each(async |db| {
            super::an_incident_from_declaration_to_resolution(
                &crate::discord::Discord::start(db).await,
            )
            .await
        })
        .await;
    }
}
