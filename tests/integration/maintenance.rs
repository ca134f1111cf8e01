//! Maintenance windows under a virtual clock, on both stores: the configured recurring window
//! (first Sunday of the month, across the end of 2026) and a monthly window spanning a month
//! end are announced exactly once when they start and end; during a window, alert incidents
//! below `maintenance.pages_from` are recorded and announced but not paged, while critical
//! alerts and incidents declared by people still page; windows started and ended from chat.

use crate::support::TestDb;
use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use std::io::Write;
use std::sync::{Arc, Mutex};
use warroom::alertmanager::Notification;
use warroom::app::alerts::{AlertIntake, AlertOutcome, Maintenance};
use warroom::app::clock::{Clock, VirtualClock};
use warroom::app::{App, Origin};
use warroom::chat::console::ConsoleSink;
use warroom::chat::{Delivered, DeliveryError, Sink};
use warroom::config::Config;
use warroom::core::{EventKind, IncidentKey, Platform, Severity, UserRef};
use warroom::render::Renderer;
use warroom::store::{NO_INCIDENT, OutboxItem, Store};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

/// What the console sink prints, kept for the test to read.
#[derive(Clone, Default)]
struct Screen(Arc<Mutex<Vec<u8>>>);

impl Write for Screen {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Screen {
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn since(&self, from: usize) -> String {
        String::from_utf8(self.0.lock().unwrap()[from..].to_vec()).unwrap()
    }
}

/// The console sink, remembering which incident each delivered row belonged to and what the
/// console printed for it.
struct Console {
    sink: ConsoleSink,
    screen: Screen,
    rows: Mutex<Vec<(IncidentKey, String)>>,
}

impl Console {
    fn new() -> Console {
        let screen = Screen::default();
        let output: warroom::chat::console::Output = Arc::new(Mutex::new(Box::new(screen.clone())));
        Console {
            sink: ConsoleSink::new(Arc::new(Renderer::load(None).unwrap()), output),
            screen,
            rows: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl Sink for Console {
    fn destination(&self) -> &'static str {
        self.sink.destination()
    }
    async fn deliver(&self, item: &OutboxItem) -> Result<Delivered, DeliveryError> {
        let before = self.screen.len();
        let delivered = self.sink.deliver(item).await;
        let printed = self.screen.since(before);
        self.rows.lock().unwrap().push((item.incident, printed));
        delivered
    }
}

/// One replica: the app on its own store connection, with the configured windows and the
/// default alert intake, announcing on the console.
fn replica(store: Arc<dyn Store>, config: &Config, clock: Arc<VirtualClock>) -> App {
    App::new(store, config.policy.clone(), clock, Duration::seconds(60))
        .with_alerts(AlertIntake {
            source: config.alertmanager.source.clone(),
            open_on: Platform::Console,
            auto_resolve: config.alertmanager.auto_resolve,
            rules: config.alertmanager.severity.clone(),
        })
        .with_maintenance(Maintenance {
            windows: config.maintenance_windows.clone(),
            announce_on: vec![Platform::Console],
        })
}

struct Rig {
    config: Config,
    clock: Arc<VirtualClock>,
    app: App,
    console: Console,
    /// Rows of `console.rows` already returned by `delivered`.
    seen: Mutex<usize>,
}

impl Rig {
    async fn new(db: &TestDb, start: DateTime<Utc>) -> Rig {
        Rig::with_config(db, start, warroom::config::load(None).unwrap()).await
    }

    async fn with_config(db: &TestDb, start: DateTime<Utc>, config: Config) -> Rig {
        let clock = Arc::new(VirtualClock::starting_at(start));
        let app = replica(db.open().await, &config, clock.clone());
        Rig {
            config,
            clock,
            app,
            console: Console::new(),
            seen: Mutex::new(0),
        }
    }

    /// Another replica on the same database and clock.
    async fn other_replica(&self, db: &TestDb) -> App {
        replica(db.open().await, &self.config, self.clock.clone())
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Move the clock to `at` and run a scheduler pass (which announces windows first).
    async fn at(&self, at: DateTime<Utc>) {
        let now = self.clock.now();
        assert!(at >= now, "the clock only moves forward: {at} < {now}");
        self.clock.advance(at - now);
        self.app.run_due_timers().await.unwrap();
    }

    /// Deliver the console outbox; the rows delivered since the last call, as
    /// (incident, console text).
    async fn delivered(&self) -> Vec<(IncidentKey, String)> {
        self.app.dispatch_outbox(&self.console).await.unwrap();
        let rows = self.console.rows.lock().unwrap();
        let mut seen = self.seen.lock().unwrap();
        let new = rows[*seen..].to_vec();
        *seen = rows.len();
        new
    }

    /// The maintenance announcements delivered since the last `delivered`.
    async fn announcements(&self) -> Vec<String> {
        announcements(&self.delivered().await)
    }

    /// Type `text` in `channel` as `who`; the direct answer as console text.
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
            .map(|m| {
                Renderer::load(None)
                    .unwrap()
                    .render(Platform::Console, &m)
                    .unwrap()
                    .plain_text()
            })
            .unwrap_or_default()
    }

    /// Declare as a person; the new incident.
    async fn declare(&self, who: &str, text: &str) -> IncidentKey {
        let reply = self.say("general", who, text).await;
        assert!(reply.contains("Declared INC-"), "{reply}");
        self.app.store.incidents(false, 1).await.unwrap()[0].key
    }

    /// Feed a firing alert group; the incident it opened.
    async fn alert(&self, group: &str, name: &str, severity: &str) -> IncidentKey {
        let notification = notification(group, name, severity, self.now());
        match self.app.handle_alerts(&notification).await.unwrap() {
            AlertOutcome::Opened(key) => key,
            other => panic!("{group}: expected a new incident, got {other:?}"),
        }
    }

    async fn events(&self, key: IncidentKey) -> Vec<EventKind> {
        crate::support::event_kinds(&*self.app.store, key).await
    }

    async fn count(&self, key: IncidentKey, kind: &str) -> usize {
        crate::support::count_events(&*self.app.store, key, kind).await
    }

    /// The escalation steps reached by `key` (each an `escalated` event, i.e. a page).
    async fn escalations(&self, key: IncidentKey) -> Vec<String> {
        self.events(key)
            .await
            .into_iter()
            .filter_map(|e| match e {
                EventKind::Escalated { name, .. } => Some(name),
                _ => None,
            })
            .collect()
    }

    async fn in_force(&self) -> Vec<String> {
        self.app
            .maintenance_in_force(self.now())
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.id)
            .collect()
    }
}

/// The maintenance announcements among delivered rows: rows of no incident.
fn announcements(rows: &[(IncidentKey, String)]) -> Vec<String> {
    rows.iter()
        .filter(|(incident, _)| *incident == NO_INCIDENT)
        .map(|(_, text)| text.clone())
        .collect()
}

/// A firing Alertmanager group of one alert (webhook payload version 4).
fn notification(group: &str, name: &str, severity: &str, at: DateTime<Utc>) -> Notification {
    let body = serde_json::json!({
        "version": "4",
        "groupKey": group,
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "warroom",
        "groupLabels": {"alertname": name},
        "commonLabels": {"alertname": name, "severity": severity, "instance": "db-1"},
        "commonAnnotations": {"summary": format!("{name} on db-1")},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": name, "severity": severity, "instance": "db-1"},
            "annotations": {"summary": format!("{name} on db-1")},
            "startsAt": at.to_rfc3339(),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": format!("fp-{group}"),
        }],
    });
    warroom::alertmanager::parse(body.to_string().as_bytes()).unwrap()
}

const STARTED: &str = "Maintenance window started";
const ENDED: &str = "Maintenance window ended";

pub async fn the_first_sunday_window_is_announced_once_across_the_year_end(db: &TestDb) {
    // Sunday 27 December 2026: a Sunday, but not the first of its month.
    let rig = Rig::new(db, utc(2026, 12, 27, 0, 0)).await;
    let windows = &rig.config.maintenance_windows;
    assert_eq!(windows.len(), 1, "{windows:?}");
    assert_eq!(windows[0].name, "monthly maintenance");
    assert_eq!(
        windows[0].describe(),
        "the first Sunday of each month, 02:00–06:00 UTC"
    );
    let shown = rig.say("general", "alice", "maintenance").await;
    assert!(
        shown.contains("No maintenance window is in force"),
        "{shown}"
    );
    assert!(
        shown.contains(
            "monthly maintenance (the first Sunday of each month, 02:00–06:00 UTC), next 2027-01-03 02:00 UTC – 2027-01-03 06:00 UTC"
        ),
        "{shown}"
    );

    // Every six hours through the end of the year and the first two days of 2027 (the
    // December window, on the 6th, is long over): nothing to announce.
    let mut at = utc(2026, 12, 27, 3, 0);
    while at < utc(2027, 1, 3, 2, 0) {
        rig.at(at).await;
        assert!(rig.in_force().await.is_empty(), "{at}");
        at += Duration::hours(6);
    }
    rig.at(utc(2027, 1, 3, 1, 59)).await;
    assert!(rig.in_force().await.is_empty());
    assert_eq!(rig.announcements().await, Vec::<String>::new());

    // Sunday 3 January 2027, 02:00: the window opens. Announced once, however many passes
    // and replicas look.
    rig.at(utc(2027, 1, 3, 2, 0)).await;
    rig.app.run_due_timers().await.unwrap();
    let other = rig.other_replica(db).await;
    other.run_due_timers().await.unwrap();
    assert_eq!(other.run_maintenance(rig.now()).await.unwrap(), 0);
    assert_eq!(
        rig.in_force().await,
        ["recurring:monthly maintenance:2027-01-03T02:00:00Z"]
    );
    let started = rig.announcements().await;
    assert_eq!(started.len(), 1, "{started:?}");
    assert!(
        started[0].contains(&format!(
            "[#incidents] 🛠️ {STARTED}: monthly maintenance, until 2027-01-03 06:00 UTC."
        )),
        "{started:?}"
    );
    assert!(
        started[0].contains(
            "Incidents opened by alerts below P1 are recorded and announced but not paged"
        ),
        "{started:?}"
    );
    // The other replica delivers nothing more either.
    assert_eq!(other.dispatch_outbox(&rig.console).await.unwrap(), 0);

    // Inside: nothing new.
    for at in [utc(2027, 1, 3, 4, 0), utc(2027, 1, 3, 5, 59)] {
        rig.at(at).await;
        assert_eq!(rig.in_force().await.len(), 1, "{at}");
    }
    assert_eq!(rig.announcements().await, Vec::<String>::new());

    // 06:00: it closes. Two replicas at the same moment: one announcement.
    let now = rig.clock.advance(utc(2027, 1, 3, 6, 0) - rig.now());
    let (a, b) = tokio::join!(rig.app.run_maintenance(now), other.run_maintenance(now));
    assert_eq!(
        a.unwrap() + b.unwrap(),
        1,
        "exactly one replica announces the end"
    );
    rig.app.run_due_timers().await.unwrap();
    other.run_due_timers().await.unwrap();
    assert!(rig.in_force().await.is_empty());
    let ended = rig.announcements().await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert!(
        ended[0].contains(&format!(
            "[#incidents] ✅ {ENDED}: monthly maintenance. Alerts page as usual."
        )),
        "{ended:?}"
    );

    // Outside: the rest of Sunday, the second Sunday of January, and (warroom down through
    // the whole of it) February's window: nothing is announced late.
    for at in [
        utc(2027, 1, 3, 12, 0),
        utc(2027, 1, 10, 3, 0),
        utc(2027, 2, 8, 0, 0),
    ] {
        rig.at(at).await;
        assert!(rig.in_force().await.is_empty(), "{at}");
    }
    assert_eq!(rig.announcements().await, Vec::<String>::new());
}

pub async fn a_monthly_window_spans_the_month_end(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warroom.toml");
    std::fs::write(
        &path,
        r#"
[maintenance]
pages_from = "P1"

[[maintenance.windows]]
name = "storage migration"
every = "last saturday"
start = "20:00"
duration = "2d"
"#,
    )
    .unwrap();
    let config = warroom::config::load(Some(&path)).unwrap();
    assert_eq!(
        config
            .maintenance_windows
            .iter()
            .map(|w| w.describe())
            .collect::<Vec<_>>(),
        ["the last Saturday of each month, 20:00–20:00 UTC (+2 days)"]
    );
    // Saturday 31 October 2026 is the last Saturday of October.
    let rig = Rig::with_config(db, utc(2026, 10, 31, 19, 0), config).await;
    rig.at(utc(2026, 10, 31, 19, 59)).await;
    assert!(rig.in_force().await.is_empty());
    assert_eq!(rig.announcements().await, Vec::<String>::new());

    rig.at(utc(2026, 10, 31, 20, 0)).await;
    let id = "recurring:storage migration:2026-10-31T20:00:00Z";
    assert_eq!(rig.in_force().await, [id]);
    let started = rig.announcements().await;
    assert_eq!(started.len(), 1, "{started:?}");
    assert!(
        started[0].contains(&format!(
            "{STARTED}: storage migration, until 2026-11-02 20:00 UTC."
        )),
        "{started:?}"
    );

    // Across the month boundary: still in force, still not re-announced, and a warning alert
    // on 1 November is held back by it.
    for at in [
        utc(2026, 10, 31, 23, 59),
        utc(2026, 11, 1, 0, 0),
        utc(2026, 11, 1, 12, 0),
    ] {
        rig.at(at).await;
        assert_eq!(rig.in_force().await, [id], "{at}");
    }
    let lag = rig
        .alert(
            "{}:{alertname=\"ReplicationLag\"}",
            "ReplicationLag",
            "warning",
        )
        .await;
    rig.app.run_due_timers().await.unwrap();
    assert_eq!(rig.count(lag, "paging_suppressed").await, 1);
    assert_eq!(rig.escalations(lag).await, Vec::<String>::new());
    rig.at(utc(2026, 11, 2, 19, 59)).await;
    assert_eq!(rig.in_force().await, [id]);
    assert_eq!(rig.announcements().await, Vec::<String>::new());

    rig.at(utc(2026, 11, 2, 20, 0)).await;
    rig.app.run_due_timers().await.unwrap();
    assert!(rig.in_force().await.is_empty());
    let ended = rig.announcements().await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert!(
        ended[0].contains(&format!("{ENDED}: storage migration.")),
        "{ended:?}"
    );
    // The next one is November's last Saturday, the 28th.
    rig.at(utc(2026, 11, 28, 19, 59)).await;
    assert!(rig.in_force().await.is_empty());
    rig.at(utc(2026, 11, 28, 20, 0)).await;
    assert_eq!(
        rig.in_force().await,
        ["recurring:storage migration:2026-11-28T20:00:00Z"]
    );
    assert_eq!(rig.announcements().await.len(), 1);
}

pub async fn only_alerts_below_the_threshold_are_held_back_during_a_window(db: &TestDb) {
    // Sunday 6 December 2026, the first Sunday: the window runs 02:00–06:00.
    let rig = Rig::new(db, utc(2026, 12, 6, 1, 30)).await;
    assert_eq!(rig.config.policy.maintenance_pages_from, Severity::P1);
    rig.at(utc(2026, 12, 6, 2, 0)).await;
    assert_eq!(rig.announcements().await.len(), 1);
    rig.at(utc(2026, 12, 6, 2, 30)).await;

    // A warning: P2, below the threshold. Recorded and announced, not paged.
    let warning = rig
        .alert(
            "{}:{alertname=\"ReplicationLag\"}",
            "ReplicationLag",
            "warning",
        )
        .await;
    rig.app.run_due_timers().await.unwrap();
    let incident = rig.app.store.incident(warning).await.unwrap().unwrap();
    assert_eq!(incident.severity, Severity::P2);
    assert!(incident.status.is_open());
    let suppressed: Vec<EventKind> = rig
        .events(warning)
        .await
        .into_iter()
        .filter(|e| e.name() == "paging_suppressed")
        .collect();
    assert_eq!(
        suppressed,
        [EventKind::PagingSuppressed {
            window: "monthly maintenance".into(),
            until: utc(2026, 12, 6, 6, 0),
        }]
    );
    assert_eq!(rig.escalations(warning).await, Vec::<String>::new());
    // Its only timer is the status-update reminder: no escalation step at +0.
    assert_eq!(
        rig.app.store.next_timer_due().await.unwrap(),
        Some(rig.now() + Duration::minutes(30))
    );
    let rows = rig.delivered().await;
    let channel = incident.channel.to_string();
    let text = |key: IncidentKey| {
        rows.iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, t)| t.as_str())
            .collect::<String>()
    };
    let posted = text(warning);
    assert!(
        posted.contains(&format!(
            "[#incidents] 🚨 {warning} (P2) declared by Alertmanager"
        )),
        "announced:\n{posted}"
    );
    assert!(
        posted.contains(&format!(
            "[#{channel}] 🛠️ Not paged: the maintenance window \"monthly maintenance\" is in force until 2026-12-06 06:00 UTC and alerts below P1 do not page during it."
        )),
        "{posted}"
    );
    assert!(!posted.contains("escalation step"), "{posted}");

    // A critical alert: P1, at the threshold. Paged.
    let critical = rig
        .alert("{}:{alertname=\"PrimaryDown\"}", "PrimaryDown", "critical")
        .await;
    rig.app.run_due_timers().await.unwrap();
    assert_eq!(
        rig.app
            .store
            .incident(critical)
            .await
            .unwrap()
            .unwrap()
            .severity,
        Severity::P1
    );
    assert_eq!(rig.escalations(critical).await, ["On-call engineer"]);
    assert_eq!(rig.count(critical, "paging_suppressed").await, 0);

    // A person declares a P3: always paged.
    let declared = rig.declare("alice", "declare DB down --sev P3").await;
    rig.app.run_due_timers().await.unwrap();
    assert_eq!(
        rig.app
            .store
            .incident(declared)
            .await
            .unwrap()
            .unwrap()
            .severity,
        Severity::P3
    );
    assert_eq!(rig.escalations(declared).await, ["On-call engineer"]);
    assert_eq!(rig.count(declared, "paging_suppressed").await, 0);
    let rows = rig.delivered().await;
    let posted: String = rows.iter().map(|(_, t)| t.as_str()).collect();
    assert!(
        posted.contains(&format!(
            "📟 {critical} escalation step 1: On-call engineer"
        )),
        "{posted}"
    );
    assert!(
        posted.contains(&format!(
            "📟 {declared} escalation step 1: On-call engineer"
        )),
        "{posted}"
    );

    // Through the window's end: nothing for the warning's incident while the window is in
    // force; when it ends (06:00) and the incident is still open and unacknowledged, its
    // escalation starts, timed from then (on-call at once, DevOps lead 30 minutes later,
    // engineering manager after an hour), not from its declaration hours before.
    let mut at = utc(2026, 12, 6, 3, 0);
    while at <= utc(2026, 12, 6, 7, 0) {
        rig.at(at).await;
        assert_eq!(
            rig.in_force().await.is_empty(),
            at >= utc(2026, 12, 6, 6, 0),
            "{at}"
        );
        if at < utc(2026, 12, 6, 6, 0) {
            assert_eq!(rig.escalations(warning).await, Vec::<String>::new(), "{at}");
        }
        at += Duration::minutes(30);
    }
    assert_eq!(rig.count(warning, "paging_resumed").await, 1);
    assert_eq!(
        rig.escalations(warning).await,
        ["On-call engineer", "DevOps lead", "Engineering manager"]
    );
    let steps: Vec<_> = rig
        .app
        .store
        .timeline(warning)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::Escalated { .. }))
        .map(|e| e.at)
        .collect();
    assert_eq!(
        steps,
        [
            utc(2026, 12, 6, 6, 0),
            utc(2026, 12, 6, 6, 30),
            utc(2026, 12, 6, 7, 0)
        ]
    );
    // Its P2 response target (4h) counts from 06:00 too: not breached by 07:00.
    assert_eq!(rig.count(warning, "response_target_breached").await, 0);
    assert!(
        rig.count(warning, "reminder_sent").await >= 8,
        "reminders went on"
    );
    assert!(rig.escalations(critical).await.len() >= 3);

    // Outside the window, a warning pages like anything else.
    let later = rig
        .alert("{}:{alertname=\"DiskFilling\"}", "DiskFilling", "warning")
        .await;
    rig.app.run_due_timers().await.unwrap();
    assert_eq!(
        rig.app
            .store
            .incident(later)
            .await
            .unwrap()
            .unwrap()
            .severity,
        Severity::P2
    );
    assert_eq!(rig.escalations(later).await, ["On-call engineer"]);
    assert_eq!(rig.count(later, "paging_suppressed").await, 0);
}

pub async fn a_window_started_and_ended_from_chat(db: &TestDb) {
    // Saturday 28 November 2026: no recurring window.
    let rig = Rig::new(db, utc(2026, 11, 28, 10, 0)).await;
    rig.app.run_due_timers().await.unwrap();
    let nothing = rig.say("general", "alice", "maintenance end").await;
    assert!(
        nothing.contains("No maintenance window is in force."),
        "{nothing}"
    );
    assert_eq!(rig.announcements().await, Vec::<String>::new());

    let reply = rig
        .say("general", "alice", "maintenance start 2h database upgrade")
        .await;
    assert!(
        reply.contains(
            "Maintenance window \"database upgrade\" started; it ends at 2026-11-28 12:00 UTC"
        ),
        "{reply}"
    );
    // The scheduler does not announce it again.
    rig.app.run_due_timers().await.unwrap();
    rig.app.run_due_timers().await.unwrap();
    let started = rig.announcements().await;
    assert_eq!(started.len(), 1, "{started:?}");
    assert!(
        started[0].contains(&format!(
            "[#incidents] 🛠️ {STARTED}: database upgrade (started by @alice), until 2026-11-28 12:00 UTC."
        )),
        "{started:?}"
    );
    let shown = rig.say("random", "carol", "maintenance").await;
    assert!(shown.contains("Maintenance in force:"), "{shown}");
    assert!(
        shown.contains("database upgrade, 2026-11-28 10:00 UTC – 2026-11-28 12:00 UTC"),
        "{shown}"
    );

    // Only one window from chat at a time.
    rig.clock.advance(Duration::minutes(10));
    let refused = rig
        .say("general", "bob", "maintenance start 1h cache flush")
        .await;
    assert!(
        refused.contains("\"database upgrade\" is in force until 2026-11-28 12:00 UTC"),
        "{refused}"
    );
    assert!(refused.contains("maintenance end"), "{refused}");
    assert_eq!(rig.announcements().await, Vec::<String>::new());

    // It holds back a warning.
    let held = rig
        .alert(
            "{}:{alertname=\"ReplicationLag\"}",
            "ReplicationLag",
            "warning",
        )
        .await;
    rig.app.run_due_timers().await.unwrap();
    assert_eq!(
        rig.events(held)
            .await
            .into_iter()
            .filter(|e| e.name() == "paging_suppressed")
            .collect::<Vec<_>>(),
        [EventKind::PagingSuppressed {
            window: "database upgrade".into(),
            until: utc(2026, 11, 28, 12, 0),
        }]
    );
    assert_eq!(rig.escalations(held).await, Vec::<String>::new());

    // Ended from an incident channel, by someone else: announced once, and alerts page again.
    rig.clock.advance(Duration::minutes(20));
    let channel = rig.app.store.incident(held).await.unwrap().unwrap().channel;
    let reply = rig.say(channel.as_str(), "bob", "maintenance end").await;
    assert!(
        reply.contains("Ended maintenance: \"database upgrade\"."),
        "{reply}"
    );
    let again = rig.say("general", "alice", "maintenance end").await;
    assert!(
        again.contains("No maintenance window is in force."),
        "{again}"
    );
    rig.app.run_due_timers().await.unwrap();
    let ended = rig.announcements().await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert!(
        ended[0].contains(&format!(
            "[#incidents] ✅ {ENDED}: database upgrade (ended by @bob). Alerts page as usual."
        )),
        "{ended:?}"
    );
    assert!(rig.in_force().await.is_empty());
    let shown = rig.say("general", "carol", "maintenance").await;
    assert!(
        shown.contains("No maintenance window is in force"),
        "{shown}"
    );
    let paged = rig
        .alert("{}:{alertname=\"DiskFilling\"}", "DiskFilling", "warning")
        .await;
    rig.app.run_due_timers().await.unwrap();
    assert_eq!(rig.escalations(paged).await, ["On-call engineer"]);
    assert_eq!(rig.count(paged, "paging_suppressed").await, 0);
    // Its planned end passes: nothing more to announce.
    rig.at(utc(2026, 11, 28, 12, 0)).await;
    rig.at(utc(2026, 11, 28, 12, 30)).await;
    assert_eq!(rig.announcements().await, Vec::<String>::new());

    // A window that simply runs out is announced as ended once, by the scheduler.
    let reply = rig
        .say("general", "alice", "maintenance start 30m cache flush")
        .await;
    assert!(reply.contains("it ends at 2026-11-28 13:00 UTC"), "{reply}");
    assert_eq!(rig.announcements().await.len(), 1);
    rig.at(utc(2026, 11, 28, 12, 59)).await;
    assert_eq!(rig.in_force().await.len(), 1);
    assert_eq!(rig.announcements().await, Vec::<String>::new());
    rig.at(utc(2026, 11, 28, 13, 0)).await;
    rig.app.run_due_timers().await.unwrap();
    let other = rig.other_replica(db).await;
    other.run_due_timers().await.unwrap();
    assert_eq!(other.run_maintenance(rig.now()).await.unwrap(), 0);
    assert!(rig.in_force().await.is_empty());
    let ended = rig.announcements().await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert!(
        ended[0].contains(&format!(
            "[#incidents] ✅ {ENDED}: cache flush. Alerts page as usual."
        )),
        "{ended:?}"
    );
    rig.at(utc(2026, 11, 28, 18, 0)).await;
    assert_eq!(rig.announcements().await, Vec::<String>::new());
}

pub async fn ending_a_recurring_occurrence_early(db: &TestDb) {
    let rig = Rig::new(db, utc(2026, 12, 6, 1, 0)).await;
    rig.at(utc(2026, 12, 6, 2, 0)).await;
    assert_eq!(rig.in_force().await.len(), 1);
    assert_eq!(rig.announcements().await.len(), 1);

    rig.clock.advance(Duration::hours(1));
    let reply = rig.say("general", "alice", "maintenance end").await;
    assert!(
        reply.contains("Ended maintenance: \"monthly maintenance\"."),
        "{reply}"
    );
    assert!(rig.in_force().await.is_empty());
    let ended = rig.announcements().await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert!(
        ended[0].contains(&format!(
            "{ENDED}: monthly maintenance (ended by @alice). Alerts page as usual."
        )),
        "{ended:?}"
    );

    // The rest of the occurrence, its planned end and after: the scheduler (any replica)
    // neither re-announces its start nor announces its end again, and alerts page.
    let other = rig.other_replica(db).await;
    for at in [
        utc(2026, 12, 6, 3, 0),
        utc(2026, 12, 6, 3, 30),
        utc(2026, 12, 6, 5, 59),
        utc(2026, 12, 6, 6, 0),
        utc(2026, 12, 6, 9, 0),
    ] {
        rig.at(at).await;
        other.run_due_timers().await.unwrap();
        assert!(rig.in_force().await.is_empty(), "{at}");
        if at == utc(2026, 12, 6, 3, 30) {
            let shown = rig.say("general", "carol", "maintenance").await;
            assert!(
                shown.contains("No maintenance window is in force"),
                "{shown}"
            );
            assert!(
                shown.contains("next 2027-01-03 02:00 UTC – 2027-01-03 06:00 UTC"),
                "{shown}"
            );
            let warning = rig
                .alert(
                    "{}:{alertname=\"ReplicationLag\"}",
                    "ReplicationLag",
                    "warning",
                )
                .await;
            rig.app.run_due_timers().await.unwrap();
            assert_eq!(rig.escalations(warning).await, ["On-call engineer"]);
            assert_eq!(rig.count(warning, "paging_suppressed").await, 0);
        }
    }
    assert_eq!(rig.announcements().await, Vec::<String>::new());

    // January's occurrence is not affected: it starts and ends as usual.
    rig.at(utc(2027, 1, 3, 2, 0)).await;
    assert_eq!(
        rig.in_force().await,
        ["recurring:monthly maintenance:2027-01-03T02:00:00Z"]
    );
    let started = rig.announcements().await;
    assert_eq!(started.len(), 1, "{started:?}");
    assert!(started[0].contains(STARTED), "{started:?}");

    // Ended before any scheduler pass announced its start (same instant as it opened, on
    // February's occurrence): the start is never announced afterwards.
    rig.at(utc(2027, 1, 3, 6, 0)).await;
    assert_eq!(rig.announcements().await.len(), 1);
    let feb = utc(2027, 2, 7, 2, 0);
    rig.clock.advance(feb - rig.now());
    assert_eq!(
        rig.in_force().await,
        ["recurring:monthly maintenance:2027-02-07T02:00:00Z"]
    );
    let reply = rig.say("general", "alice", "maintenance end").await;
    assert!(
        reply.contains("Ended maintenance: \"monthly maintenance\"."),
        "{reply}"
    );
    for at in [feb, feb + Duration::hours(1), feb + Duration::hours(4)] {
        rig.at(at).await;
        assert!(rig.in_force().await.is_empty(), "{at}");
    }
    // Only the end, by the person who ended it: no start announced afterwards.
    let after = rig.announcements().await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(
        after[0].contains(&format!("{ENDED}: monthly maintenance (ended by @alice).")),
        "{after:?}"
    );
}

/// Writes a configuration file with one recurring window; loads it.
fn config_with_window(dir: &tempfile::TempDir, every: &str, start: &str, duration: &str) -> Config {
    let path = dir.path().join("warroom.toml");
    std::fs::write(
        &path,
        format!(
            "[[maintenance.windows]]\nname = \"nightly\"\nevery = \"{every}\"\nstart = \"{start}\"\nduration = \"{duration}\"\n"
        ),
    )
    .unwrap();
    warroom::config::load(Some(&path)).unwrap()
}

pub async fn back_to_back_occurrences_end_before_the_next_starts(db: &TestDb) {
    // A daily window of a whole day: each occurrence ends as the next starts.
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_window(&dir, "day", "06:00", "24h");
    let rig = Rig::with_config(db, utc(2026, 12, 30, 5, 0), config).await;
    rig.at(utc(2026, 12, 30, 6, 0)).await;
    let first = rig.announcements().await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(
        first[0].contains(&format!("{STARTED}: nightly, until 2026-12-31 06:00 UTC.")),
        "{first:?}"
    );
    rig.at(utc(2026, 12, 31, 6, 0)).await;
    assert_eq!(
        rig.in_force().await,
        ["recurring:nightly:2026-12-31T06:00:00Z"]
    );
    // In the channel, the last word must be that a window is in force, not that alerts page
    // as usual: the end of the old occurrence comes before the start of the new one.
    let edges = rig.announcements().await;
    assert_eq!(edges.len(), 2, "{edges:?}");
    assert!(
        edges[0].contains(&format!("{ENDED}: nightly.")),
        "{edges:?}"
    );
    assert!(
        edges[1].contains(&format!("{STARTED}: nightly, until 2027-01-01 06:00 UTC.")),
        "{edges:?}"
    );
}

pub async fn a_window_from_chat_can_be_started_again_at_once(db: &TestDb) {
    // The console's virtual clock stands still between commands: start, end and start again
    // at the same instant.
    let rig = Rig::new(db, utc(2026, 11, 28, 10, 0)).await;
    rig.say("general", "alice", "maintenance start 1h database upgrade")
        .await;
    let ended = rig.say("general", "alice", "maintenance end").await;
    assert!(ended.contains("Ended maintenance"), "{ended}");
    let reply = rig
        .say(
            "general",
            "alice",
            "maintenance start 2h database upgrade, second try",
        )
        .await;
    assert!(reply.contains("started"), "{reply}");
    // What the reply says must be true: the second window is in force and announced.
    assert_eq!(
        rig.in_force().await.len(),
        1,
        "the reply said the window started, but none is in force: {reply}"
    );
    let announced = rig.announcements().await;
    assert_eq!(announced.len(), 3, "{announced:?}");
    assert!(
        announced[2].contains(&format!("{STARTED}: database upgrade, second try")),
        "{announced:?}"
    );
}

on_both_stores!(
    the_first_sunday_window_is_announced_once_across_the_year_end,
    a_monthly_window_spans_the_month_end,
    only_alerts_below_the_threshold_are_held_back_during_a_window,
    a_window_started_and_ended_from_chat,
    ending_a_recurring_occurrence_early,
    back_to_back_occurrences_end_before_the_next_starts,
    a_window_from_chat_can_be_started_again_at_once,
);
