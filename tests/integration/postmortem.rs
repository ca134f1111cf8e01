//! Postmortems: the draft of a scripted incident (escalations, runbook actions, updates)
//! under a virtual clock, pinned by a snapshot; `postmortem done <link>` and the reminders it
//! stops.

use crate::support::TestDb;
use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use std::sync::{Arc, Mutex};
use warroom::app::clock::{Clock, VirtualClock};
use warroom::app::runbook::Runbooks;
use warroom::app::{App, Origin};
use warroom::chat::{Delivered, DeliveryError, Sink};
use warroom::core::message::{Section, TemplateName};
use warroom::core::{Effect, EventKind, IncidentKey, Message, Platform, Policy, UserRef};
use warroom::render::{RenderedBlock, Renderer};
use warroom::runbook::guard::Guard;
use warroom::runbook::kube::Cluster;
use warroom::runbook::playbook::Playbooks;
use warroom::store::OutboxItem;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

/// Records every chat message delivered, with its incident.
#[derive(Default)]
struct Recorder {
    posts: Mutex<Vec<(IncidentKey, Message)>>,
}

#[async_trait]
impl Sink for Recorder {
    fn destination(&self) -> &'static str {
        "console"
    }
    async fn deliver(&self, item: &OutboxItem) -> Result<Delivered, DeliveryError> {
        // A document (the postmortem draft) counts as a post of its message.
        if let Effect::Post { message, .. } | Effect::Upload { message, .. } = &item.effect {
            self.posts
                .lock()
                .unwrap()
                .push((item.incident, message.clone()));
        }
        Ok(Delivered::Done)
    }
}

fn render(message: &Message) -> String {
    let rendered = Renderer::load(None)
        .unwrap()
        .render(Platform::Console, message)
        .unwrap();
    rendered
        .blocks
        .iter()
        .map(|b| match b {
            RenderedBlock::Text(t) => t.clone(),
            RenderedBlock::Fields(f) => f
                .iter()
                .map(|(label, value)| format!("[{label}] {value}"))
                .collect::<Vec<_>>()
                .join("\n"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_postmortem(message: &Message) -> bool {
    message.sections.iter().any(|s| {
        matches!(
            s,
            Section::Text {
                template: TemplateName::Postmortem,
                ..
            }
        )
    })
}

struct Rig {
    app: App,
    clock: Arc<VirtualClock>,
    recorder: Recorder,
}

impl Rig {
    fn new(app: App, clock: Arc<VirtualClock>) -> Rig {
        Rig {
            app,
            clock,
            recorder: Recorder::default(),
        }
    }

    /// Type `text` in `channel` as `who`; the direct answer as console text ("" for none).
    async fn say(&self, channel: &str, who: &str, text: &str) -> String {
        let origin = Origin {
            platform: Platform::Console,
            channel: channel.into(),
            actor: UserRef::parse(who).unwrap(),
            request: None,
        };
        self.app
            .handle_command(&origin, text)
            .await
            .map(|m| render(&m))
            .unwrap_or_default()
    }

    /// Declare from #general; the incident's key and channel.
    async fn declare(&self, who: &str, text: &str) -> (IncidentKey, String) {
        let reply = self.say("general", who, text).await;
        assert!(reply.contains("Declared INC-"), "{reply}");
        let incident = &self.app.store.incidents(false, 1).await.unwrap()[0];
        (incident.key, incident.channel.to_string())
    }

    /// Move the clock to `at` and fire what is due.
    async fn at(&self, at: DateTime<Utc>) {
        let now = self.clock.now();
        assert!(at >= now, "{at} < {now}");
        self.clock.advance(at - now);
        self.app.run_due_timers().await.unwrap();
    }

    /// Deliver the chat outbox; every message delivered so far, with its incident.
    async fn posts(&self) -> Vec<(IncidentKey, Message)> {
        self.app.dispatch_outbox(&self.recorder).await.unwrap();
        self.recorder.posts.lock().unwrap().clone()
    }

    /// The rendered text of everything delivered to `key`'s rows.
    async fn posted_for(&self, key: IncidentKey) -> Vec<String> {
        self.posts()
            .await
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, m)| render(m))
            .collect()
    }

    async fn events(&self, key: IncidentKey) -> Vec<EventKind> {
        crate::support::event_kinds(&*self.app.store, key).await
    }

    async fn count(&self, key: IncidentKey, kind: &str) -> usize {
        crate::support::count_events(&*self.app.store, key, kind).await
    }
}

/// The default policy, with routing keys for every service the default steps page, so that
/// the escalation steps page (into the outbox; nothing delivers PagerDuty rows here).
fn paging_policy() -> Policy {
    let mut policy = warroom::config::load(None).unwrap().policy;
    policy.pagerduty_services = ["oncall", "devops_lead", "engineering_manager", "cto"]
        .into_iter()
        .map(String::from)
        .collect();
    policy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postmortem_draft_of_a_scripted_incident() {
    let db = TestDb::sqlite();
    let (fake, health, _health_task) = crate::runbooks::cluster().await;
    let config = crate::runbooks::runbook_config(&fake, &health);
    let runbooks = Runbooks {
        cluster: Some(Cluster::new(fake.client(), config.probes.clone())),
        guard: Guard::new(config),
        playbooks: Playbooks::builtin(),
        directory: None,
    };
    let t0 = utc(2026, 11, 28, 14, 0);
    let clock = Arc::new(VirtualClock::starting_at(t0));
    let app = App::new(
        db.open().await,
        paging_policy(),
        clock.clone(),
        Duration::seconds(60),
    )
    .with_runbooks(runbooks);
    let rig = Rig::new(app, clock);
    let at = |minutes: i64| t0 + Duration::minutes(minutes);

    let (key, channel) = rig
        .declare(
            "alice",
            "declare Stock analysis API returning 503s --sev P1",
        )
        .await;
    assert_eq!(channel, "inc-20261128-stock-analysis-api-returning-503s");
    // The first step fires at once, the DevOps lead's at +30m (run at +31m).
    rig.at(at(0)).await;
    rig.at(at(31)).await;
    let steps: Vec<(usize, Vec<String>)> = rig
        .events(key)
        .await
        .into_iter()
        .filter_map(|e| match e {
            EventKind::Escalated { step, paged, .. } => Some((step, paged)),
            _ => None,
        })
        .collect();
    assert_eq!(
        steps,
        [
            (0, vec!["service:oncall".to_string()]),
            (1, vec!["service:devops_lead".to_string()])
        ]
    );

    rig.at(at(33)).await;
    let say = |who: &'static str, text: &'static str| {
        let channel = channel.clone();
        let rig = &rig;
        async move { rig.say(&channel, who, text).await }
    };
    say(
        "alice",
        "update Error rate at 40% on the quotes endpoint; suspecting the 13:50 config push",
    )
    .await;
    rig.at(at(35)).await;
    say("alice", "status identified").await;
    rig.at(at(38)).await;
    // Moving on from `investigating` acknowledged it already.
    let ack = say("bob", "ack").await;
    assert!(
        ack.contains(&format!(
            "{key} was already acknowledged by @alice at 2026-11-28 14:35 UTC"
        )),
        "{ack}"
    );
    rig.at(at(40)).await;
    let diag = say("olivia", "diag endpoints service=stock-analysis-api").await;
    assert!(diag.is_empty(), "{diag}");
    rig.at(at(41)).await;
    let refused = say("olivia", "scale stock-analysis-api 11").await;
    assert!(refused.contains("outside the bounds"), "{refused}");
    rig.at(at(45)).await;
    say("alice", "sev P0").await;
    rig.at(at(50)).await;
    say(
        "alice",
        "update Rolled back the config push; error rate back to 0.1%",
    )
    .await;
    rig.at(at(55)).await;
    say("alice", "resolve bad config push").await;
    rig.at(at(60)).await;
    let reply = say("alice", "postmortem").await;
    assert!(
        reply.contains(&format!("Posted the postmortem draft of {key}")),
        "{reply}"
    );
    assert!(reply.contains("postmortem done <link>"), "{reply}");
    assert_eq!(rig.count(key, "postmortem_drafted").await, 1);
    for kind in ["runbook_ran", "change_refused", "severity_changed"] {
        assert_eq!(rig.count(key, kind).await, 1, "{kind}");
    }

    let drafts: Vec<Message> = rig
        .posts()
        .await
        .into_iter()
        .filter(|(k, m)| *k == key && is_postmortem(m))
        .map(|(_, m)| m)
        .collect();
    assert_eq!(drafts.len(), 1, "one draft, posted in the channel");
    assert_eq!(
        drafts[0].visibility,
        warroom::core::message::Visibility::InChannel
    );
    let draft = render(&drafts[0]);
    for line in [
        "# Postmortem: INC-1 — Stock analysis API returning 503s",
        "- Severity: P0 (Critical)",
        "- Detection: Declared in chat by @alice.",
        "- Acknowledged: 2026-11-28 14:35 UTC by @alice, 35m after it was declared",
        "- Resolved: 2026-11-28 14:55 UTC, 55m after it was declared",
        "- Root cause given at resolution: bad config push",
        "- Postmortem due: 2026-11-30 14:55 UTC",
        "- 2026-11-28 14:45 UTC (+45m): P1 → P0 by @alice",
        "(+0s) warroom: escalated to step 1 (On-call engineer); paged service:oncall",
        "(+31m) warroom: escalated to step 2 (DevOps lead); paged service:devops_lead",
        "(+35m) @alice: acknowledged",
        "(+40m) @olivia: ran endpoints namespace=stock-analysis-system service=stock-analysis-api: service stock-analysis-api in stock-analysis-system: 2 ready",
        "(+41m) @olivia: refused scale deployment=stock-analysis-api replicas=11: 11 replicas is outside the bounds",
        "(+33m) @alice: Error rate at 40% on the quotes endpoint",
        "(+35m) @alice: status investigating → identified",
        "(+50m) @alice: Rolled back the config push",
        "## Root cause",
        "## Preventive measures",
        "## Runbook updates",
    ] {
        assert!(draft.contains(line), "{line:?} not in:\n{draft}");
    }
    insta::assert_snapshot!("postmortem_draft", draft);
}

/// A P1 acknowledged within its 1 h target, raised to P0 only afterwards: the draft must not
/// call the response target missed against the 15 m target of a severity it did not have when
/// it was acknowledged (the timeline has no breach, and `stats` counts none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drafts_response_target_is_the_one_in_force_when_acknowledged() {
    let db = TestDb::sqlite();
    let t0 = utc(2026, 11, 28, 14, 0);
    let clock = Arc::new(VirtualClock::starting_at(t0));
    let app = App::new(
        db.open().await,
        warroom::config::load(None).unwrap().policy,
        clock.clone(),
        Duration::seconds(60),
    );
    let rig = Rig::new(app, clock);
    let (key, channel) = rig.declare("alice", "declare Checkout slow --sev P1").await;
    rig.at(t0 + Duration::minutes(35)).await;
    rig.say(&channel, "bob", "ack").await;
    rig.at(t0 + Duration::minutes(45)).await;
    rig.say(&channel, "alice", "sev P0").await;
    rig.at(t0 + Duration::minutes(55)).await;
    rig.say(&channel, "alice", "resolve").await;
    rig.say(&channel, "alice", "postmortem").await;
    assert_eq!(rig.count(key, "response_target_breached").await, 0);
    let stats = rig.say("general", "alice", "stats").await;
    assert!(
        stats.contains("Response targets missed: 0"),
        "stats counts no miss: {stats}"
    );
    let draft = rig
        .posts()
        .await
        .into_iter()
        .find(|(k, m)| *k == key && is_postmortem(m))
        .map(|(_, m)| render(&m))
        .expect("a draft was posted");
    assert!(
        draft.contains("- Acknowledged: 2026-11-28 14:35 UTC by @bob, 35m after it was declared"),
        "{draft}"
    );
    assert!(
        draft.contains("- Response target: acknowledge within 1h (P1), met"),
        "acknowledged after 35m as a P1 (target 1h); the P0 target of 15m did not apply yet:\n{draft}"
    );
}

pub async fn postmortem_done_stops_the_reminders(db: &TestDb) {
    let clock = Arc::new(VirtualClock::starting_at(utc(2026, 11, 28, 10, 0)));
    let app = App::new(
        db.open().await,
        warroom::config::load(None).unwrap().policy,
        clock.clone(),
        Duration::seconds(60),
    );
    let rig = Rig::new(app, clock);
    let (done, done_channel) = rig
        .declare("alice", "declare Payments API errors --sev P2")
        .await;
    let (control, control_channel) = rig.declare("bob", "declare Search slow --sev P3").await;
    rig.app.run_due_timers().await.unwrap();
    let url = "https://wiki.example.com/pm/1";

    // Not before resolution.
    let early = rig
        .say(&done_channel, "alice", &format!("postmortem done {url}"))
        .await;
    assert!(
        early.contains(&format!("{done} is still open; resolve it first")),
        "{early}"
    );
    // Bad links: usage help.
    for (text, problem) in [
        (
            "postmortem done wiki/pm/1",
            "`wiki/pm/1` is not an http(s) link.",
        ),
        (
            "postmortem done ftp://wiki.example.com/pm/1",
            "is not an http(s) link.",
        ),
        ("postmortem done", "Give its link"),
        ("postmortem finished", "not an option of postmortem"),
    ] {
        let reply = rig.say(&done_channel, "alice", text).await;
        assert!(reply.contains(problem), "{text}: {reply}");
        assert!(reply.contains("Usage:"), "{text}: {reply}");
        assert!(
            reply.contains("/incident postmortem [done <link>]"),
            "{text}: {reply}"
        );
    }
    // Not in an incident channel.
    let elsewhere = rig
        .say("general", "alice", &format!("postmortem done {url}"))
        .await;
    assert!(
        elsewhere.contains("this is not an incident channel"),
        "{elsewhere}"
    );
    let incident = rig.app.store.incident(done).await.unwrap().unwrap();
    assert_eq!(incident.postmortem_url, None);
    assert_eq!(rig.count(done, "postmortem_done").await, 0);

    // Resolved ten minutes apart, so that each one's reminders have a time of their own.
    let resolved = utc(2026, 11, 28, 10, 10);
    rig.at(resolved).await;
    rig.say(&done_channel, "alice", "resolve expired certificate")
        .await;
    rig.at(resolved + Duration::minutes(10)).await;
    rig.say(&control_channel, "bob", "resolve").await;
    let reply = rig
        .say(&done_channel, "alice", &format!("postmortem done {url}"))
        .await;
    assert_eq!(reply, "", "the channel is told, not only the person");
    let incident = rig.app.store.incident(done).await.unwrap().unwrap();
    assert_eq!(incident.postmortem_url.as_deref(), Some(url));
    assert_eq!(
        rig.events(done)
            .await
            .into_iter()
            .filter(|e| e.name() == "postmortem_done")
            .collect::<Vec<_>>(),
        [EventKind::PostmortemDone { url: url.into() }]
    );
    let again = rig
        .say(&done_channel, "alice", &format!("postmortem done {url}"))
        .await;
    assert!(again.contains("already recorded"), "{again}");
    let posted = rig.posted_for(done).await.join("\n");
    assert!(
        posted.contains(&format!(
            "📝 The postmortem of {done} is done: {url}. Recorded by @alice; no more reminders."
        )),
        "{posted}"
    );

    // 24 h after the first resolution: its reminder is due, fires, and posts nothing.
    rig.at(resolved + Duration::hours(24) - Duration::minutes(1))
        .await;
    assert_eq!(
        rig.app.store.next_timer_due().await.unwrap(),
        Some(resolved + Duration::hours(24)),
        "the 24 h reminder of {done} is pending"
    );
    rig.at(resolved + Duration::hours(24)).await;
    assert_eq!(
        rig.app.store.next_timer_due().await.unwrap(),
        Some(resolved + Duration::hours(24) + Duration::minutes(10)),
        "it fired; the control's is next"
    );
    rig.at(resolved + Duration::hours(24) + Duration::minutes(10))
        .await;
    rig.at(resolved + Duration::hours(48)).await;
    rig.at(resolved + Duration::hours(48) + Duration::minutes(10))
        .await;
    assert_eq!(
        rig.app.store.next_timer_due().await.unwrap(),
        None,
        "every reminder timer fired"
    );

    assert_eq!(rig.count(done, "postmortem_reminder").await, 0);
    let posted = rig.posted_for(done).await;
    assert!(
        posted.iter().all(|p| !p.contains("postmortem is due")),
        "{posted:?}"
    );
    // The control, without `done`: both reminders, in its channel.
    assert_eq!(
        rig.events(control)
            .await
            .into_iter()
            .filter(|e| e.name() == "postmortem_reminder")
            .collect::<Vec<_>>(),
        [
            EventKind::PostmortemReminder {
                after_seconds: 24 * 3600
            },
            EventKind::PostmortemReminder {
                after_seconds: 48 * 3600
            },
        ]
    );
    let reminders: Vec<String> = rig
        .posted_for(control)
        .await
        .into_iter()
        .filter(|p| p.contains("postmortem is due"))
        .collect();
    assert_eq!(reminders.len(), 2, "{reminders:?}");
    assert!(
        reminders[0].contains(&format!(
            "📝 {control} (Search slow) was resolved 24h ago. @bob, the postmortem is due by 2026-11-30 10:20 UTC"
        )),
        "{reminders:?}"
    );
    assert!(
        reminders[1].contains("was resolved 48h ago"),
        "{reminders:?}"
    );
}

on_both_stores!(postmortem_done_stops_the_reminders);
