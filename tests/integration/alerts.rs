//! Alertmanager intake end to end: firing, grouped, repeated, resolved and malformed
//! notifications through `POST /alertmanager/webhook`, against the fake PagerDuty, on both
//! stores and through a real `warroom serve`: one incident per group, severities from the
//! label rules, the auto-resolve rules, and nothing paged twice.

use crate::app::RecordingSink;
use crate::pagerduty::{config_text, routing_key, write_config};
use crate::support::pagerduty::FakePagerDuty;
use crate::support::{PgSchema, TestDb};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use tower::ServiceExt;
use warroom::app::alerts::{AlertIntake, Maintenance};
use warroom::app::clock::{Clock, VirtualClock};
use warroom::app::{App, Origin};
use warroom::config::{Config, Secret};
use warroom::core::{
    Actor, EventKind, Incident, IncidentKey, Platform, Severity, Status, TimelineEvent, UserRef,
};
use warroom::http::{AlertmanagerWebhook, Heartbeat, HttpDeps};
use warroom::pagerduty::PagerDutyClient;
use warroom::store::Store;

/// The bearer token Alertmanager is configured with (`http_config.authorization`).
const TOKEN: &str = "am-0b7e3c91d54f4a2c8e6f";

/// A Saturday, outside the default monthly maintenance window (first Sunday, 02:00–06:00).
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap()
}

// --- Alertmanager payloads ----------------------------------------------------------------

/// One alert as Alertmanager reports it.
#[derive(Clone, Debug)]
struct Alert {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: DateTime<Utc>,
    /// Set once the alert has resolved.
    ends_at: Option<DateTime<Utc>>,
}

/// A firing alert `name` of `severity` (no `severity` label when empty) on `instance`,
/// started five minutes before [`t0`], with a summary and a description.
fn alert(name: &str, severity: &str, instance: &str) -> Alert {
    let mut labels = BTreeMap::from([
        ("alertname".to_string(), name.to_string()),
        ("instance".to_string(), instance.to_string()),
        ("job".to_string(), "checkout-api".to_string()),
    ]);
    if !severity.is_empty() {
        labels.insert("severity".into(), severity.into());
    }
    Alert {
        labels,
        annotations: BTreeMap::from([
            ("summary".to_string(), format!("{name} on checkout-api")),
            (
                "description".to_string(),
                format!("{name} has been firing on {instance} for more than 5 minutes."),
            ),
        ]),
        starts_at: t0() - Duration::minutes(5),
        ends_at: None,
    }
}

impl Alert {
    fn label(mut self, name: &str, value: &str) -> Alert {
        self.labels.insert(name.into(), value.into());
        self
    }

    fn summary(mut self, text: &str) -> Alert {
        self.annotations.insert("summary".into(), text.into());
        self
    }

    fn description(mut self, text: &str) -> Alert {
        self.annotations.insert("description".into(), text.into());
        self
    }

    fn started(mut self, at: DateTime<Utc>) -> Alert {
        self.starts_at = at;
        self
    }

    /// The same alert, resolved at `at`.
    fn resolved(mut self, at: DateTime<Utc>) -> Alert {
        self.ends_at = Some(at);
        self
    }

    fn firing(&self) -> bool {
        self.ends_at.is_none()
    }

    fn name(&self) -> &str {
        &self.labels["alertname"]
    }

    /// Alertmanager's fingerprint: a 64-bit hash of the labels, in hex (FNV-1a here).
    fn fingerprint(&self) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for (name, value) in &self.labels {
            for byte in name
                .bytes()
                .chain([0xff])
                .chain(value.bytes())
                .chain([0xff])
            {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{hash:016x}")
    }

    fn json(&self) -> Value {
        json!({
            "status": if self.firing() { "firing" } else { "resolved" },
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": time(self.starts_at),
            // Go's zero time while the alert fires.
            "endsAt": self.ends_at.map_or("0001-01-01T00:00:00Z".to_string(), time),
            "generatorURL": format!(
                "http://prometheus.monitoring.svc:9090/graph?g0.expr=ALERTS%7Balertname%3D%22{}%22%7D&g0.tab=1",
                self.name()
            ),
            "fingerprint": self.fingerprint(),
        })
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One notification of an alert group, grouped by `by` (the route's `group_by`).
#[derive(Clone, Debug)]
struct Group {
    by: Vec<String>,
    alerts: Vec<Alert>,
}

/// A group of `alerts` by `alertname`, Alertmanager's usual `group_by`.
fn group(alerts: Vec<Alert>) -> Group {
    group_by(&["alertname"], alerts)
}

fn group_by(by: &[&str], alerts: Vec<Alert>) -> Group {
    assert!(!alerts.is_empty());
    Group {
        by: by.iter().map(|s| s.to_string()).collect(),
        alerts,
    }
}

/// The labels or annotations every alert shares, with the same value.
fn common(maps: Vec<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    let mut shared = maps[0].clone();
    shared.retain(|name, value| maps.iter().all(|m| m.get(name) == Some(value)));
    shared
}

impl Group {
    fn labels(&self) -> BTreeMap<String, String> {
        self.by
            .iter()
            .filter_map(|name| {
                let value = self.alerts[0].labels.get(name)?;
                Some((name.clone(), value.clone()))
            })
            .collect()
    }

    /// `{}:{alertname="HighErrorRate"}`: the root route's matchers, then the group labels.
    fn key(&self) -> String {
        let labels: Vec<String> = self
            .labels()
            .iter()
            .map(|(name, value)| format!("{name}={value:?}"))
            .collect();
        format!("{{}}:{{{}}}", labels.join(", "))
    }

    /// The same group with every alert resolved at `at`.
    fn all_resolved(&self, at: DateTime<Utc>) -> Group {
        Group {
            by: self.by.clone(),
            alerts: self
                .alerts
                .iter()
                .cloned()
                .map(|a| a.resolved(at))
                .collect(),
        }
    }

    fn json(&self) -> Value {
        json!({
            "version": "4",
            "groupKey": self.key(),
            "truncatedAlerts": 0,
            "status": if self.alerts.iter().any(Alert::firing) { "firing" } else { "resolved" },
            "receiver": "warroom",
            "groupLabels": self.labels(),
            "commonLabels": common(self.alerts.iter().map(|a| &a.labels).collect()),
            "commonAnnotations": common(self.alerts.iter().map(|a| &a.annotations).collect()),
            "externalURL": "http://alertmanager.monitoring.svc:9093",
            "alerts": self.alerts.iter().map(Alert::json).collect::<Vec<_>>(),
        })
    }

    fn body(&self) -> String {
        self.json().to_string()
    }
}

// --- warroom with alert intake ------------------------------------------------------------

/// The configuration the tests run with: PagerDuty at the fake, the defaults otherwise
/// (severity rules, escalation, maintenance), plus `extra`.
fn config(fake: &FakePagerDuty, extra: &str) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &config_text(&fake.url, extra));
    warroom::config::load(Some(&path)).unwrap()
}

/// An App as `warroom serve` builds it: alert intake and maintenance from the configuration.
fn app(store: Arc<dyn Store>, config: &Config, clock: Arc<VirtualClock>) -> Arc<App> {
    Arc::new(
        App::new(store, config.policy.clone(), clock, Duration::seconds(60))
            .with_alerts(AlertIntake {
                source: config.alertmanager.source.clone(),
                open_on: config.alertmanager.open_incidents_on,
                auto_resolve: config.alertmanager.auto_resolve,
                rules: config.alertmanager.severity.clone(),
            })
            .with_maintenance(Maintenance {
                windows: config.maintenance_windows.clone(),
                announce_on: vec![Platform::Console],
            }),
    )
}

/// The router of `warroom serve` with Alertmanager intake on `app` (`None`: not enabled).
fn deps(store: Arc<dyn Store>, app: Option<Arc<App>>) -> HttpDeps {
    HttpDeps {
        store,
        scheduler: Arc::new(Heartbeat::default()),
        stall_after: Duration::seconds(20),
        pagerduty: None,
        slack: None,
        discord: None,
        metrics: Arc::new(warroom::metrics::Metrics::new()),
        alertmanager: app.map(|app| AlertmanagerWebhook {
            app,
            token: Secret::new(TOKEN),
        }),
    }
}

/// POST `body` to `/alertmanager/webhook` with this `Authorization` header (none: no header);
/// the status and the JSON answer (`null` when the answer is not JSON).
async fn post_to(deps: &HttpDeps, body: Body, authorization: Option<&str>) -> (StatusCode, Value) {
    let mut request =
        Request::post("/alertmanager/webhook").header("content-type", "application/json");
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let response = warroom::http::router(deps.clone())
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// warroom with alert intake over one store, a virtual clock, the fake PagerDuty, and a chat
/// sink that records what is posted.
struct Intake {
    app: Arc<App>,
    deps: HttpDeps,
    client: PagerDutyClient,
    clock: Arc<VirtualClock>,
    store: Arc<dyn Store>,
    fake: FakePagerDuty,
    chat: RecordingSink,
}

impl Intake {
    async fn start(db: &TestDb, extra: &str) -> Intake {
        let fake = FakePagerDuty::start().await;
        let config = config(&fake, extra);
        let clock = Arc::new(VirtualClock::starting_at(t0()));
        let store = db.open().await;
        let app = app(store.clone(), &config, clock.clone());
        Intake {
            deps: deps(store.clone(), Some(app.clone())),
            client: PagerDutyClient::new(config.pagerduty.clone()).unwrap(),
            app,
            clock,
            store,
            fake,
            chat: RecordingSink::default(),
        }
    }

    async fn post(
        &self,
        body: impl Into<Body>,
        authorization: Option<&str>,
    ) -> (StatusCode, Value) {
        post_to(&self.deps, body.into(), authorization).await
    }

    /// Deliver `group` as Alertmanager does; the answer's `status` and `detail`.
    async fn notify(&self, group: &Group) -> (String, String) {
        let (status, answer) = self.post(group.body(), Some(&bearer())).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        (
            answer["status"].as_str().unwrap().to_string(),
            answer["detail"].as_str().unwrap().to_string(),
        )
    }

    /// Fire due timers and make the PagerDuty calls, as a scheduler pass would.
    async fn pass(&self) {
        self.app.run_due_timers().await.unwrap();
        self.app.dispatch_outbox(&self.client).await.unwrap();
    }

    async fn incidents(&self) -> Vec<Incident> {
        self.store.incidents(true, 100).await.unwrap()
    }

    async fn incident(&self, key: &str) -> Incident {
        let key = IncidentKey(key.trim_start_matches("INC-").parse().unwrap());
        self.store.incident(key).await.unwrap().unwrap()
    }

    async fn timeline(&self, incident: &Incident) -> Vec<TimelineEvent> {
        self.store.timeline(incident.key).await.unwrap()
    }

    /// The kinds of `incident`'s timeline events, in order.
    async fn kinds(&self, incident: &Incident) -> Vec<&'static str> {
        self.timeline(incident)
            .await
            .iter()
            .map(|e| e.kind.name())
            .collect()
    }

    /// Type `text` after `/incident` in `channel` as `user`.
    async fn say(&self, channel: &str, user: &str, text: &str) {
        let origin = Origin {
            platform: Platform::Console,
            channel: channel.into(),
            actor: UserRef::parse(user).unwrap(),
            request: None,
        };
        self.app.handle_command(&origin, text).await;
    }

    /// Accepted PagerDuty events of `action` for `incident` (its dedup key), by service.
    fn paged(&self, action: &str, incident: &Incident) -> Vec<String> {
        self.fake
            .accepted(action)
            .iter()
            .filter(|e| e["dedup_key"] == incident.key.to_string())
            .map(|e| service_of(&e["routing_key"]))
            .collect()
    }

    /// Every chat message posted so far, rendered as the console shows it.
    async fn chat(&self) -> String {
        self.app.dispatch_outbox(&self.chat).await.unwrap();
        let delivered = self.chat.delivered.lock().unwrap().clone();
        crate::support::rendered_posts(&delivered, Platform::Console, "\n---\n")
    }

    fn posts(&self) -> usize {
        self.chat.delivered.lock().unwrap().len()
    }
}

fn service_of(routing: &Value) -> String {
    ["oncall", "devops_lead", "engineering_manager", "cto"]
        .into_iter()
        .find(|s| routing == &Value::from(routing_key(s)))
        .unwrap_or("?")
        .to_string()
}

fn count(kinds: &[&str], kind: &str) -> usize {
    kinds.iter().filter(|k| **k == kind).count()
}

fn monitoring() -> Actor {
    Actor::Monitoring("Alertmanager".into())
}

// --- firing -------------------------------------------------------------------------------

async fn a_firing_group_opens_one_incident_with_its_severity_and_pages_the_on_call_once(
    db: &TestDb,
) {
    let w = Intake::start(db, "").await;
    let firing = group(vec![
        alert("HighErrorRate", "critical", "10.0.0.1:9090")
            .summary("High error rate on checkout-api")
            .description("5xx ratio is 12.4% on 10.0.0.1:9090 (threshold 5%)."),
        alert("HighErrorRate", "critical", "10.0.0.2:9090")
            .summary("High error rate on checkout-api")
            .description("5xx ratio is 9.8% on 10.0.0.2:9090 (threshold 5%)."),
    ]);
    assert_eq!(
        w.notify(&firing).await,
        ("opened".to_string(), "INC-1".to_string())
    );

    let incidents = w.incidents().await;
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let incident = &incidents[0];
    assert_eq!(incident.severity, Severity::P1);
    assert_eq!(incident.title, "High error rate on checkout-api");
    assert_eq!(incident.status, Status::Investigating);
    assert_eq!(incident.platform, Platform::Console);
    assert_eq!(
        incident.alert_group.as_deref(),
        Some(r#"{}:{alertname="HighErrorRate"}"#)
    );
    assert_eq!(incident.declared_by.to_string(), "alertmanager");
    let fingerprints: Vec<&str> = incident
        .alerts
        .iter()
        .map(|a| a.fingerprint.as_str())
        .collect();
    assert_eq!(
        fingerprints,
        [
            firing.alerts[0].fingerprint(),
            firing.alerts[1].fingerprint()
        ]
    );
    assert!(incident.alerts.iter().all(|a| a.firing));
    assert_eq!(
        w.store
            .latest_incident_by_alert_group(&firing.key())
            .await
            .unwrap()
            .map(|i| i.key),
        Some(incident.key)
    );

    let timeline = w.timeline(incident).await;
    assert!(
        matches!(&timeline[0].kind, EventKind::Declared { title, severity: Severity::P1, .. } if title == "High error rate on checkout-api"),
        "{timeline:?}"
    );
    assert_eq!(timeline[0].actor, monitoring());
    let firing_events: Vec<&str> = timeline
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::AlertFiring { fingerprint, .. } => Some(fingerprint.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(firing_events, fingerprints);

    // The alert message carries each alert's description and why the severity is P1.
    let chat = w.chat().await;
    assert!(chat.contains("INCIDENT ALERT - P1"), "{chat}");
    assert!(chat.contains("Reported by monitoring:"), "{chat}");
    assert!(
        chat.contains("5xx ratio is 12.4% on 10.0.0.1:9090 (threshold 5%)."),
        "{chat}"
    );
    assert!(
        chat.contains("5xx ratio is 9.8% on 10.0.0.2:9090 (threshold 5%)."),
        "{chat}"
    );
    assert!(chat.contains("severity=critical"), "{chat}");

    // The first escalation step pages the on-call, once, however often the scheduler runs.
    w.pass().await;
    w.pass().await;
    assert_eq!(w.paged("trigger", incident), ["oncall"]);
    let triggers = w.fake.accepted("trigger");
    assert_eq!(triggers.len(), 1, "{triggers:?}");
    assert_eq!(triggers[0]["payload"]["severity"], "error");
    let summary = triggers[0]["payload"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("[INC-1] P1 High error rate on checkout-api"),
        "{summary}"
    );
    assert_eq!(count(&w.kinds(incident).await, "escalated"), 1);
}

/// Each group gets the severity of the first matching default rule, its most severe firing
/// alert deciding; every incident is paged once.
async fn severities_follow_the_label_rules_and_each_incident_is_paged_once(db: &TestDb) {
    let w = Intake::start(db, "").await;
    let by_severity = ["alertname", "severity"];
    let cases: Vec<(Group, Severity)> = vec![
        (
            group(vec![alert("HighErrorRate", "critical", "10.0.0.1:9090")]),
            Severity::P1,
        ),
        (
            group(vec![alert("DatabaseDown", "critical", "db-0:5432")]),
            Severity::P0,
        ),
        (
            group(vec![alert("HighMemoryUsage", "warning", "10.0.0.3:9100")]),
            Severity::P2,
        ),
        (
            group_by(
                &by_severity,
                vec![
                    alert("HighFailedLogins", "warning", "auth-0:8080")
                        .label("category", "security"),
                ],
            ),
            Severity::P2,
        ),
        (
            group_by(
                &by_severity,
                vec![
                    alert("HighFailedLogins", "critical", "auth-1:8080")
                        .label("category", "security"),
                ],
            ),
            Severity::P0,
        ),
        (
            group(vec![alert("CertificateExpiresSoon", "info", "lb-0:443")]),
            Severity::P3,
        ),
        // No severity label: the fallback.
        (
            group(vec![alert("BackupJobLate", "", "backup-0:9100")]),
            Severity::P2,
        ),
        // A warning and a critical alert in one group: the most severe.
        (
            group(vec![
                alert("QueueBacklog", "warning", "mq-0:15692"),
                alert("QueueBacklog", "critical", "mq-1:15692"),
            ]),
            Severity::P1,
        ),
        // A resolved critical alert does not count while a warning fires.
        (
            group(vec![
                alert("DiskFillingUp", "critical", "node-1:9100").resolved(t0()),
                alert("DiskFillingUp", "warning", "node-2:9100"),
            ]),
            Severity::P2,
        ),
    ];
    for (n, (group, severity)) in cases.iter().enumerate() {
        let (status, key) = w.notify(group).await;
        assert_eq!(status, "opened", "{}", group.key());
        let incident = w.incident(&key).await;
        assert_eq!(
            incident.severity,
            *severity,
            "{} ({:?})",
            group.key(),
            group.alerts[0].labels
        );
        assert_eq!(incident.alert_group, Some(group.key()));
        assert_eq!(
            incident.title,
            format!("{} on checkout-api", group.alerts[0].name())
        );
        assert_eq!(w.incidents().await.len(), n + 1);
    }
    w.pass().await;
    w.pass().await;
    let incidents = w.incidents().await;
    for incident in &incidents {
        assert_eq!(
            w.paged("trigger", incident),
            ["oncall"],
            "{} ({})",
            incident.key,
            incident.severity
        );
    }
    assert_eq!(w.fake.accepted("trigger").len(), cases.len());
}

/// The title is the common summary, else the first firing alert's summary, else the alert
/// names; one line of at most 200 characters.
async fn the_title_comes_from_the_summary_else_the_alert_names(db: &TestDb) {
    let w = Intake::start(db, "").await;
    let title_of = async |group: Group| {
        let (status, key) = w.notify(&group).await;
        assert_eq!(status, "opened", "{}", group.key());
        w.incident(&key).await.title
    };
    // No common summary: the first firing alert's.
    let title = title_of(group(vec![
        alert("HighLatency", "warning", "10.0.0.1:9090")
            .summary("p99 latency above 2s on checkout-api")
            .resolved(t0()),
        alert("HighLatency", "warning", "10.0.0.2:9090")
            .summary("p99 latency above 1s on cart-api"),
    ]))
    .await;
    assert_eq!(title, "p99 latency above 1s on cart-api");
    // No summary at all: the alert names.
    let unnamed = |name: &str, instance: &str| {
        let mut a = alert(name, "warning", instance);
        a.annotations.remove("summary");
        a.label("team", "storefront")
    };
    let title = title_of(group_by(
        &["team"],
        vec![
            unnamed("KubePodCrashLooping", "10.1.0.1:8080"),
            unnamed("KubePodNotReady", "10.1.0.2:8080"),
            unnamed("KubePodCrashLooping", "10.1.0.3:8080"),
            unnamed("KubeDeploymentReplicasMismatch", "10.1.0.4:8080"),
        ],
    ))
    .await;
    assert_eq!(title, "KubePodCrashLooping and 2 more");
    // A summary over several lines and too long: one line, cut with "…".
    let long = format!("Disk almost full\non {}", "node-1 ".repeat(60));
    let title = title_of(group(vec![
        alert("DiskFull", "critical", "node-1:9100").summary(&long),
    ]))
    .await;
    assert_eq!(title.chars().count(), 200, "{title}");
    assert!(title.starts_with("Disk almost full"), "{title}");
    assert!(title.ends_with('…'), "{title}");
    assert!(!title.contains('\n'), "{title}");
}

// --- grouped and repeated -----------------------------------------------------------------

async fn a_later_notification_with_one_more_alert_joins_the_incident_without_paging_again(
    db: &TestDb,
) {
    let w = Intake::start(db, "").await;
    let first = alert("HighErrorRate", "critical", "10.0.0.1:9090");
    let second = alert("HighErrorRate", "critical", "10.0.0.2:9090")
        .started(t0() + Duration::minutes(3))
        .summary("High error rate on checkout-api (eu-west-1b)");
    assert_eq!(w.notify(&group(vec![first.clone()])).await.0, "opened");
    w.pass().await;
    let incident = &w.incidents().await[0];
    assert_eq!(w.paged("trigger", incident), ["oncall"]);
    let posts = w.chat().await.matches("\n---\n").count();

    // Five minutes later (group_interval), the group has grown by one alert.
    w.clock.advance(Duration::minutes(5));
    let grown = group(vec![first.clone(), second.clone()]);
    assert_eq!(
        w.notify(&grown).await,
        ("updated".to_string(), incident.key.to_string())
    );
    assert_eq!(w.incidents().await.len(), 1, "no second incident");
    let joined = w.incident(&incident.key.to_string()).await;
    assert_eq!(joined.alerts.len(), 2);
    assert_eq!(joined.alerts[1].fingerprint, second.fingerprint());
    assert_eq!(joined.severity, Severity::P1);
    assert_eq!(joined.status, Status::Investigating);
    let timeline = w.timeline(&joined).await;
    let joined_event = timeline.last().unwrap();
    assert!(
        matches!(&joined_event.kind, EventKind::AlertFiring { fingerprint, text } if *fingerprint == second.fingerprint() && text.contains("eu-west-1b")),
        "{timeline:?}"
    );
    assert_eq!(joined_event.actor, monitoring());
    assert_eq!(joined_event.at, t0() + Duration::minutes(5));
    assert_eq!(count(&w.kinds(&joined).await, "alert_firing"), 2);

    // One message in the channel says so; nobody is paged again.
    let chat = w.chat().await;
    assert_eq!(chat.matches("\n---\n").count(), posts + 1, "{chat}");
    let last = chat.rsplit("\n---\n").next().unwrap();
    assert!(last.contains("Alertmanager reports on INC-1"), "{last}");
    assert!(last.contains("firing:"), "{last}");
    assert!(last.contains("eu-west-1b"), "{last}");
    w.pass().await;
    w.pass().await;
    assert_eq!(w.fake.accepted("trigger").len(), 1);
    assert_eq!(count(&w.kinds(&joined).await, "escalated"), 1);

    // The grown group repeated: nothing more.
    w.clock.advance(Duration::minutes(5));
    assert_eq!(w.notify(&grown).await.0, "unchanged");
    assert_eq!(w.timeline(&joined).await.len(), timeline.len());
}

async fn the_same_notification_three_times_opens_one_incident_and_pages_once(db: &TestDb) {
    let w = Intake::start(db, "").await;
    let firing = group(vec![
        alert("HighErrorRate", "critical", "10.0.0.1:9090"),
        alert("HighErrorRate", "critical", "10.0.0.2:9090"),
    ]);
    assert_eq!(w.notify(&firing).await.0, "opened");
    w.pass().await;
    let incident = w.incidents().await.remove(0);
    let timeline = w.timeline(&incident).await;
    w.chat().await;
    let posts = w.posts();
    for _ in 0..2 {
        // Alertmanager's repeat_interval, or a retry after a lost answer.
        w.clock.advance(Duration::minutes(4));
        let (status, detail) = w.notify(&firing).await;
        assert_eq!(status, "unchanged");
        assert!(detail.contains("INC-1"), "{detail}");
        w.pass().await;
    }
    assert_eq!(w.incidents().await.len(), 1);
    let after = w.incident("INC-1").await;
    assert_eq!(
        after.version, incident.version,
        "the incident was not written"
    );
    assert_eq!(w.timeline(&after).await, timeline, "no timeline events");
    w.chat().await;
    assert_eq!(w.posts(), posts, "nothing posted");
    assert_eq!(w.paged("trigger", &after), ["oncall"]);
    assert_eq!(w.fake.accepted("trigger").len(), 1);
}

// --- resolved -----------------------------------------------------------------------------

async fn when_every_alert_resolves_monitoring_resolves_the_incident_and_its_page(db: &TestDb) {
    let w = Intake::start(db, "").await;
    let a = alert("HighErrorRate", "critical", "10.0.0.1:9090");
    let b = alert("HighErrorRate", "critical", "10.0.0.2:9090");
    assert_eq!(
        w.notify(&group(vec![a.clone(), b.clone()])).await.0,
        "opened"
    );
    w.pass().await;
    let incident = w.incidents().await.remove(0);
    assert_eq!(w.paged("trigger", &incident), ["oncall"]);

    // One alert resolves: the group still fires, the incident stays open.
    w.clock.advance(Duration::minutes(5));
    let partly = group(vec![a.clone().resolved(w.clock.now()), b.clone()]);
    assert_eq!(partly.json()["status"], "firing");
    assert_eq!(w.notify(&partly).await.0, "updated");
    let open = w.incident("INC-1").await;
    assert!(open.status.is_open());
    let kinds = w.kinds(&open).await;
    assert_eq!(count(&kinds, "alert_resolved"), 1);
    assert_eq!(count(&kinds, "monitoring_resolved"), 0);
    assert!(w.chat().await.contains("resolved:"));

    // It fires again: recorded, not paged.
    w.clock.advance(Duration::minutes(5));
    let refired = a.clone().started(w.clock.now() - Duration::minutes(1));
    let again = group(vec![refired.clone(), b.clone()]);
    assert_eq!(w.notify(&again).await.0, "updated");
    assert_eq!(count(&w.kinds(&open).await, "alert_firing"), 3);
    w.pass().await;
    assert_eq!(w.fake.accepted("trigger").len(), 1);

    // Every alert resolved: monitoring resolves the incident, and its page in PagerDuty.
    w.clock.advance(Duration::minutes(5));
    let resolved_at = w.clock.now();
    // (The resolved notification carries the episode that fired last.)
    let resolved = group(vec![refired.clone(), b.clone()]).all_resolved(resolved_at);
    assert_eq!(resolved.json()["status"], "resolved");
    assert_eq!(
        w.notify(&resolved).await,
        ("resolved".to_string(), "INC-1".to_string())
    );
    let done = w.incident("INC-1").await;
    assert_eq!(done.status, Status::Resolved);
    assert_eq!(done.resolved_at, Some(resolved_at));
    assert!(done.alerts.iter().all(|a| !a.firing));
    let timeline = w.timeline(&done).await;
    let tail: Vec<(&str, &Actor)> = timeline
        .iter()
        .rev()
        .take(4)
        .rev()
        .map(|e| (e.kind.name(), &e.actor))
        .collect();
    assert_eq!(
        tail,
        [
            ("alert_resolved", &monitoring()),
            ("alert_resolved", &monitoring()),
            ("monitoring_resolved", &monitoring()),
            ("resolved", &monitoring()),
        ]
    );
    let chat = w.chat().await;
    assert!(chat.contains("Monitoring reports resolved"), "{chat}");
    w.pass().await;
    assert_eq!(w.paged("resolve", &done), ["oncall"]);
    assert_eq!(w.fake.accepted("trigger").len(), 1);

    // Alertmanager repeats the resolved notification, and a retried firing notification of
    // before the resolution arrives late: nothing changes.
    w.clock.advance(Duration::minutes(5));
    assert_eq!(w.notify(&resolved).await.0, "unchanged");
    let (status, detail) = w.notify(&again).await;
    assert_eq!(status, "unchanged");
    assert!(detail.contains("INC-1 was resolved"), "{detail}");
    w.pass().await;
    assert_eq!(w.timeline(&done).await, timeline);
    assert_eq!(w.fake.accepted("resolve").len(), 1);
    assert_eq!(w.fake.accepted("trigger").len(), 1);
    assert_eq!(w.incidents().await.len(), 1);
}

async fn a_resolved_notification_of_an_unknown_group_opens_nothing(db: &TestDb) {
    let w = Intake::start(db, "").await;
    let resolved = group(vec![alert("HighErrorRate", "critical", "10.0.0.1:9090")])
        .all_resolved(t0() - Duration::minutes(1));
    let (status, detail) = w.notify(&resolved).await;
    assert_eq!(status, "unchanged");
    assert_eq!(detail, "no open incident and nothing firing");
    nothing_stored(&w).await;
}

/// Open an alert incident and page it; its channel.
async fn opened_and_paged(w: &Intake, firing: &Group) -> String {
    assert_eq!(w.notify(firing).await.0, "opened");
    w.pass().await;
    let incident = w.incidents().await.remove(0);
    assert_eq!(w.paged("trigger", &incident), ["oncall"]);
    incident.channel.to_string()
}

/// The alerts resolve; the incident stays open, and the chat says why (`why`).
async fn resolved_alerts_leave_it_open(w: &Intake, firing: &Group, why: &str) {
    w.clock.advance(Duration::minutes(10));
    let resolved = firing.all_resolved(w.clock.now());
    assert_eq!(
        w.notify(&resolved).await,
        ("updated".to_string(), "INC-1".to_string())
    );
    let incident = w.incident("INC-1").await;
    assert!(incident.status.is_open(), "{:?}", incident.status);
    assert_eq!(incident.resolved_at, None);
    let kinds = w.kinds(&incident).await;
    assert_eq!(count(&kinds, "monitoring_resolved"), 1, "{kinds:?}");
    assert_eq!(count(&kinds, "resolved"), 0, "{kinds:?}");
    let chat = w.chat().await;
    let last = chat.rsplit("\n---\n").next().unwrap();
    assert!(last.contains("Monitoring reports resolved"), "{last}");
    assert!(last.contains(why), "{last}");
    w.pass().await;
    assert!(w.fake.accepted("resolve").is_empty());
    // A repeat changes nothing either.
    assert_eq!(w.notify(&resolved).await.0, "unchanged");
}

async fn an_acknowledged_incident_stays_open_when_its_alerts_resolve(db: &TestDb) {
    let w = Intake::start(db, "").await;
    let firing = group(vec![alert("HighErrorRate", "critical", "10.0.0.1:9090")]);
    let channel = opened_and_paged(&w, &firing).await;
    w.clock.advance(Duration::minutes(2));
    w.say(&channel, "bob", "ack").await;
    let acked = w.incident("INC-1").await;
    assert!(acked.acknowledged_at.is_some());
    w.pass().await;
    assert_eq!(w.paged("acknowledge", &acked), ["oncall"]);
    resolved_alerts_leave_it_open(&w, &firing, "A person has taken this incident over").await;
    // The person resolves it.
    w.say(&channel, "bob", "resolve bad deploy rolled back")
        .await;
    let incident = w.incident("INC-1").await;
    assert_eq!(incident.status, Status::Resolved);
    let resolution = w.timeline(&incident).await;
    let resolution = resolution
        .iter()
        .rfind(|e| e.kind.name() == "resolved")
        .unwrap();
    assert_eq!(
        resolution.actor,
        Actor::User(UserRef::parse("bob").unwrap())
    );
    w.pass().await;
    assert_eq!(w.paged("resolve", &incident), ["oncall"]);
    assert_eq!(w.fake.accepted("trigger").len(), 1);
}

async fn an_incident_with_a_new_commander_stays_open_when_its_alerts_resolve(db: &TestDb) {
    let w = Intake::start(db, "").await;
    let firing = group(vec![alert("HighErrorRate", "critical", "10.0.0.1:9090")]);
    let channel = opened_and_paged(&w, &firing).await;
    w.say(&channel, "alice", "commander @bob").await;
    let incident = w.incident("INC-1").await;
    assert_eq!(incident.commander.to_string(), "bob");
    assert_eq!(incident.acknowledged_at, None);
    resolved_alerts_leave_it_open(&w, &firing, "A person has taken this incident over").await;
}

async fn without_auto_resolve_the_incident_stays_open_when_its_alerts_resolve(db: &TestDb) {
    let w = Intake::start(db, "\n[alertmanager]\nauto_resolve = false\n").await;
    let firing = group(vec![alert("HighErrorRate", "critical", "10.0.0.1:9090")]);
    opened_and_paged(&w, &firing).await;
    resolved_alerts_leave_it_open(&w, &firing, "Resolve the incident with").await;
}

async fn after_a_person_resolves_only_a_new_or_refired_alert_opens_another_incident(db: &TestDb) {
    let w = Intake::start(db, "").await;
    let a = alert("HighErrorRate", "critical", "10.0.0.1:9090");
    let firing = group(vec![a.clone()]);
    let channel = opened_and_paged(&w, &firing).await;
    w.clock.advance(Duration::minutes(10));
    w.say(&channel, "bob", "resolve upstream fixed").await;
    let resolved_at = w.clock.now();
    assert_eq!(w.incident("INC-1").await.status, Status::Resolved);

    // Alertmanager keeps repeating the still-firing alert: it was part of INC-1.
    for _ in 0..2 {
        w.clock.advance(Duration::minutes(4));
        let (status, detail) = w.notify(&firing).await;
        assert_eq!(status, "unchanged");
        assert!(detail.contains("INC-1 was resolved"), "{detail}");
    }
    w.pass().await;
    assert_eq!(w.incidents().await.len(), 1);
    assert_eq!(w.fake.accepted("trigger").len(), 1);

    // An alert new to the group opens another incident, paged once.
    w.clock.advance(Duration::minutes(1));
    let b = alert("HighErrorRate", "critical", "10.0.0.7:9090");
    assert_eq!(
        w.notify(&group(vec![a.clone(), b.clone()])).await,
        ("opened".to_string(), "INC-2".to_string())
    );
    let second = w.incident("INC-2").await;
    assert_eq!(second.alert_group, Some(firing.key()));
    w.pass().await;
    assert_eq!(w.paged("trigger", &second), ["oncall"]);
    w.say(second.channel.as_str(), "bob", "resolve same upstream")
        .await;
    let second_resolved_at = w.clock.now();
    assert!(second_resolved_at > resolved_at);

    // The first alert firing again after that resolution (a later startsAt) opens a third.
    w.clock.advance(Duration::minutes(3));
    let refired = group(vec![
        a.clone().started(w.clock.now() - Duration::minutes(1)),
        b.clone(),
    ]);
    assert_eq!(
        w.notify(&refired).await,
        ("opened".to_string(), "INC-3".to_string())
    );
    let third = w.incident("INC-3").await;
    assert_eq!(third.status, Status::Investigating);
    w.pass().await;
    assert_eq!(w.paged("trigger", &third), ["oncall"]);
    assert_eq!(w.fake.accepted("trigger").len(), 3);
    // And that is repeated: joins, no fourth.
    assert_eq!(w.notify(&refired).await.0, "unchanged");
    assert_eq!(w.incidents().await.len(), 3);
}

// --- refused ------------------------------------------------------------------------------

/// Nothing was stored: no incident, no chat message or page queued.
async fn nothing_stored(w: &Intake) {
    assert!(w.incidents().await.is_empty());
    let outbox = w.store.outbox_counts().await.unwrap();
    assert_eq!(
        (outbox.pending, outbox.delivered, outbox.failed),
        (0, 0, 0),
        "{outbox:?}"
    );
}

async fn malformed_notifications_are_refused_with_the_problem_and_store_nothing(db: &TestDb) {
    let w = Intake::start(db, "").await;
    let valid = group(vec![alert("HighErrorRate", "critical", "10.0.0.1:9090")]);
    let edited = |edit: &dyn Fn(&mut Value)| {
        let mut value = valid.json();
        edit(&mut value);
        value.to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        (valid.body()[..40].to_string(), "invalid JSON: "),
        ("alerts: []".to_string(), "invalid JSON: "),
        (
            edited(&|v| v["version"] = json!("3")),
            "unsupported payload version \"3\"",
        ),
        (
            edited(&|v| v["alerts"] = json!([])),
            "the notification has no alerts",
        ),
        (
            edited(&|v| {
                v["alerts"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("fingerprint");
            }),
            "alert 1 has no fingerprint",
        ),
        (
            edited(&|v| v["alerts"][0]["startsAt"] = json!("five minutes ago")),
            "startsAt \"five minutes ago\" is not an RFC 3339 time",
        ),
        (
            edited(&|v| v["status"] = json!("pending")),
            "unknown status \"pending\"",
        ),
        (edited(&|v| v["groupKey"] = json!("")), "groupKey is empty"),
        (
            edited(&|v| v["alerts"] = json!({"status": "firing"})),
            "not an Alertmanager webhook payload",
        ),
    ];
    for (body, problem) in cases {
        let (status, answer) = w.post(body.clone(), Some(&bearer())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let said = answer["status"].as_str().unwrap();
        assert!(said.contains(problem), "{body}: {said:?} lacks {problem:?}");
    }
    nothing_stored(&w).await;
    assert!(
        w.store
            .latest_incident_by_alert_group(&valid.key())
            .await
            .unwrap()
            .is_none()
    );
    // The same, well formed, is accepted.
    assert_eq!(w.notify(&valid).await.0, "opened");
}

async fn notifications_without_the_right_bearer_token_are_refused_and_store_nothing(db: &TestDb) {
    let w = Intake::start(db, "").await;
    let body = group(vec![alert("DatabaseDown", "critical", "db-0:5432")]).body();
    let basic = format!(
        "Basic {}",
        "YWxlcnRtYW5hZ2VyOmFtLTBiN2UzYzkxZDU0ZjRhMmM4ZTZm"
    );
    let wrong = [
        None,
        Some("Bearer am-0b7e3c91d54f4a2c8e6e".to_string()),
        Some(format!("Bearer {}", TOKEN.to_uppercase())),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Bearer  {TOKEN}")),
        Some(format!("Token {TOKEN}")),
        Some(basic),
        Some(TOKEN.to_string()),
        Some("Bearer".to_string()),
        Some("Bearer ".to_string()),
    ];
    for authorization in &wrong {
        let (status, answer) = w.post(body.clone(), authorization.as_deref()).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{authorization:?}: {answer}"
        );
        assert_eq!(answer["status"], "missing or wrong bearer token");
    }
    // A malformed body with a wrong token is refused for the token, not parsed.
    let (status, _) = w.post("{", Some("Bearer nope")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    nothing_stored(&w).await;

    // The scheme in any case is accepted, as RFC 9110 says.
    let (status, answer) = w.post(body, Some(&format!("bearer {TOKEN}"))).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (StatusCode::OK, Some("opened"))
    );
}

#[tokio::test]
async fn an_empty_configured_token_refuses_every_notification() {
    let (store, _dir) = crate::support::sqlite_store().await;
    let fake = FakePagerDuty::start().await;
    let config = config(&fake, "");
    assert!(!config.alertmanager.enabled(), "no token by default");
    let clock = Arc::new(VirtualClock::starting_at(t0()));
    let mut deps = deps(store.clone(), Some(app(store.clone(), &config, clock)));
    deps.alertmanager.as_mut().unwrap().token = config.alertmanager.token.clone();
    let body = group(vec![alert("DatabaseDown", "critical", "db-0:5432")]).body();
    for authorization in [None, Some("Bearer "), Some("Bearer x")] {
        let (status, _) = post_to(&deps, Body::from(body.clone()), authorization).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization:?}");
    }
    assert!(store.incidents(true, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_endpoint_is_not_found_when_alert_intake_is_not_enabled() {
    let (store, _dir) = crate::support::sqlite_store().await;
    let deps = deps(store.clone(), None);
    let body = group(vec![alert("DatabaseDown", "critical", "db-0:5432")]).body();
    let (status, answer) = post_to(&deps, Body::from(body), Some(&bearer())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["status"], "Alertmanager intake is not enabled");
    assert!(store.incidents(true, 10).await.unwrap().is_empty());
}

async fn an_oversized_notification_is_refused_and_stores_nothing(db: &TestDb) {
    let w = Intake::start(db, "").await;
    let huge = "x".repeat(warroom::http::MAX_ALERTMANAGER_BYTES);
    let oversized = group(vec![
        alert("HighErrorRate", "critical", "10.0.0.1:9090").description(&huge),
    ]);
    let body = oversized.body();
    assert!(body.len() > warroom::http::MAX_ALERTMANAGER_BYTES);
    // Without the token the answer is 401: the token is checked before the body is read.
    let (status, _) = w.post(body.clone(), Some("Bearer nope")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = w.post(body, Some(&bearer())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    nothing_stored(&w).await;

    // A thousand alerts, Alertmanager's usual most, fit.
    let thousand = group(
        (0..1000)
            .map(|n| {
                alert(
                    "HighErrorRate",
                    "critical",
                    &format!("10.0.{}.{}:9090", n / 250, n % 250),
                )
            })
            .collect(),
    );
    let body = thousand.body();
    assert!(body.len() < warroom::http::MAX_ALERTMANAGER_BYTES);
    assert_eq!(w.notify(&thousand).await.0, "opened");
    assert_eq!(w.incidents().await[0].alerts.len(), 1000);
    let chat = w.chat().await;
    assert!(chat.contains("… and 990 more"), "{chat}");
    // Alertmanager's max_alerts left some out: said so.
    let mut truncated = group(vec![alert("DatabaseDown", "critical", "db-0:5432")]).json();
    truncated["truncatedAlerts"] = json!(37);
    let (status, answer) = w.post(truncated.to_string(), Some(&bearer())).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (StatusCode::OK, Some("opened"))
    );
    let chat = w.chat().await;
    assert!(
        chat.contains("(37 more alerts were left out by Alertmanager)"),
        "{chat}"
    );
}

// --- concurrency --------------------------------------------------------------------------

/// Alertmanager in HA runs several instances that each notify: eight copies of one firing
/// notification at once, through two replicas (two Apps, two stores, one database).
async fn concurrent_copies_of_a_firing_notification_open_one_incident_and_page_once(db: &TestDb) {
    let w = Intake::start(db, "").await;
    let config = config(&w.fake, "");
    let other_store = db.open().await;
    let other = app(other_store.clone(), &config, w.clock.clone());
    let replicas = [
        w.deps.clone(),
        deps(other_store.clone(), Some(other.clone())),
    ];
    let firing = group(vec![
        alert("DatabaseDown", "critical", "db-0:5432"),
        alert("DatabaseDown", "critical", "db-1:5432"),
    ]);
    let requests = (0..8).map(|n| {
        let deps = replicas[n % 2].clone();
        let body = firing.body();
        tokio::spawn(async move { post_to(&deps, Body::from(body), Some(&bearer())).await })
    });
    let answers: Vec<(StatusCode, Value)> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut statuses: Vec<String> = answers
        .iter()
        .map(|(status, answer)| {
            assert_eq!(*status, StatusCode::OK, "{answers:?}");
            answer["status"].as_str().unwrap().to_string()
        })
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            "opened",
            "unchanged",
            "unchanged",
            "unchanged",
            "unchanged",
            "unchanged",
            "unchanged",
            "unchanged"
        ],
        "{answers:?}"
    );
    let incidents = w.incidents().await;
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let incident = &incidents[0];
    let opened = answers
        .iter()
        .find(|(_, a)| a["status"] == "opened")
        .unwrap();
    // (Losers of the race may have drawn incident numbers first: the key need not be INC-1.)
    assert_eq!(opened.1["detail"], incident.key.to_string());
    assert_eq!(incident.severity, Severity::P0);
    let kinds = w.kinds(incident).await;
    assert_eq!(count(&kinds, "declared"), 1, "{kinds:?}");
    assert_eq!(count(&kinds, "alert_firing"), 2, "{kinds:?}");

    // Both replicas' schedulers run: one page.
    let (a, b) = tokio::join!(w.app.run_due_timers(), other.run_due_timers());
    a.unwrap();
    b.unwrap();
    let (a, b) = tokio::join!(
        w.app.dispatch_outbox(&w.client),
        other.dispatch_outbox(&w.client)
    );
    a.unwrap();
    b.unwrap();
    w.pass().await;
    assert_eq!(w.paged("trigger", incident), ["oncall"]);
    assert_eq!(w.fake.accepted("trigger").len(), 1);

    // Two notifications, each with an alert new to the group, cross: both are recorded.
    w.clock.advance(Duration::minutes(5));
    let [first, second] = [
        group(vec![
            firing.alerts[0].clone(),
            firing.alerts[1].clone(),
            alert("DatabaseDown", "critical", "db-2:5432"),
        ]),
        group(vec![
            firing.alerts[0].clone(),
            firing.alerts[1].clone(),
            alert("DatabaseDown", "critical", "db-3:5432"),
        ]),
    ];
    let token = bearer();
    let (a, b) = tokio::join!(
        post_to(&replicas[0], Body::from(first.body()), Some(&token)),
        post_to(&replicas[1], Body::from(second.body()), Some(&token)),
    );
    assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK), "{a:?} {b:?}");
    assert_eq!(
        (a.1["status"].as_str(), b.1["status"].as_str()),
        (Some("updated"), Some("updated"))
    );
    let joined = w.incident(&incident.key.to_string()).await;
    let mut fingerprints: Vec<&str> = joined
        .alerts
        .iter()
        .map(|a| a.fingerprint.as_str())
        .collect();
    fingerprints.sort();
    let mut expected = vec![
        firing.alerts[0].fingerprint(),
        firing.alerts[1].fingerprint(),
        first.alerts[2].fingerprint(),
        second.alerts[2].fingerprint(),
    ];
    expected.sort();
    assert_eq!(fingerprints, expected);
    assert_eq!(count(&w.kinds(&joined).await, "alert_firing"), 4);

    // Copies of the resolved notification at once: resolved once, the page resolved once.
    w.clock.advance(Duration::minutes(5));
    let resolved = group(joined_alerts(&first, &second)).all_resolved(w.clock.now());
    let requests = (0..8).map(|n| {
        let deps = replicas[n % 2].clone();
        let body = resolved.body();
        tokio::spawn(async move { post_to(&deps, Body::from(body), Some(&bearer())).await })
    });
    let mut statuses: Vec<String> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(|answer| {
            let (status, answer) = answer.unwrap();
            assert_eq!(status, StatusCode::OK, "{answer}");
            answer["status"].as_str().unwrap().to_string()
        })
        .collect();
    statuses.sort();
    assert_eq!(statuses[0], "resolved", "{statuses:?}");
    assert!(
        statuses[1..].iter().all(|s| s == "unchanged"),
        "{statuses:?}"
    );
    let done = w.incident(&incident.key.to_string()).await;
    assert_eq!(done.status, Status::Resolved);
    let kinds = w.kinds(&done).await;
    assert_eq!(count(&kinds, "resolved"), 1, "{kinds:?}");
    assert_eq!(count(&kinds, "monitoring_resolved"), 1, "{kinds:?}");
    let (a, b) = tokio::join!(
        w.app.dispatch_outbox(&w.client),
        other.dispatch_outbox(&w.client)
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(w.paged("resolve", &done), ["oncall"]);
    assert_eq!(w.fake.accepted("trigger").len(), 1);
}

/// The alerts of two notifications of one group, each alert once.
fn joined_alerts(first: &Group, second: &Group) -> Vec<Alert> {
    let mut alerts = first.alerts.clone();
    for alert in &second.alerts {
        if !alerts
            .iter()
            .any(|a| a.fingerprint() == alert.fingerprint())
        {
            alerts.push(alert.clone());
        }
    }
    alerts
}

// --- store outage -------------------------------------------------------------------------

/// While the database is unreachable the answer is 503, which Alertmanager retries; the
/// retry after it is back opens the incident, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_answers_503_and_the_retry_opens_the_incident() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let url = url::Url::parse(&schema.url).unwrap();
    let host = match url.host_str().unwrap_or("127.0.0.1") {
        "localhost" => "127.0.0.1",
        host => host,
    };
    let target = format!("{host}:{}", url.port().unwrap_or(5432))
        .parse()
        .unwrap();
    let proxy = crate::support::proxy::Proxy::start(target).await;
    let mut through_proxy = url.clone();
    through_proxy.set_host(Some("127.0.0.1")).unwrap();
    through_proxy.set_port(Some(proxy.port)).unwrap();
    let store: Arc<dyn Store> = Arc::new(
        warroom::store::postgres::PostgresStore::connect(
            through_proxy.as_str(),
            Some(&schema.schema),
            2,
        )
        .await
        .unwrap(),
    );
    let fake = FakePagerDuty::start().await;
    let config = config(&fake, "");
    let clock = Arc::new(VirtualClock::starting_at(t0()));
    let deps = deps(store.clone(), Some(app(store, &config, clock)));
    let firing = group(vec![alert("DatabaseDown", "critical", "db-0:5432")]);

    proxy.cut();
    let (status, answer) = post_to(&deps, Body::from(firing.body()), Some(&bearer())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["status"], "temporarily unavailable");
    proxy.restore();
    let (status, answer) = post_to(&deps, Body::from(firing.body()), Some(&bearer())).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "opened", "{answer}");
    let (_, answer) = post_to(&deps, Body::from(firing.body()), Some(&bearer())).await;
    assert_eq!(answer["status"], "unchanged", "{answer}");
    let direct = schema.store().await;
    assert_eq!(direct.incidents(true, 10).await.unwrap().len(), 1);
    schema.cleanup().await;
}

// --- maintenance --------------------------------------------------------------------------

async fn during_maintenance_a_warning_alert_is_not_paged_but_a_critical_one_is(db: &TestDb) {
    let w = Intake::start(db, "").await;
    w.say("general", "alice", "maintenance start 2h Database upgrade")
        .await;
    w.clock.advance(Duration::minutes(1));
    let warning = group(vec![alert("HighMemoryUsage", "warning", "10.0.0.3:9100")]);
    let (status, key) = w.notify(&warning).await;
    assert_eq!(status, "opened");
    let held = w.incident(&key).await;
    assert_eq!(held.severity, Severity::P2);
    let kinds = w.kinds(&held).await;
    assert_eq!(count(&kinds, "paging_suppressed"), 1, "{kinds:?}");
    let critical = group(vec![alert("HighErrorRate", "critical", "10.0.0.1:9090")]);
    let (status, key) = w.notify(&critical).await;
    assert_eq!(status, "opened");
    let paged = w.incident(&key).await;
    assert_eq!(paged.severity, Severity::P1);
    assert_eq!(count(&w.kinds(&paged).await, "paging_suppressed"), 0);
    w.pass().await;
    w.pass().await;
    assert!(w.paged("trigger", &held).is_empty());
    assert_eq!(w.paged("trigger", &paged), ["oncall"]);
    let chat = w.chat().await;
    assert!(
        chat.contains("Not paged: the maintenance window \"Database upgrade\""),
        "{chat}"
    );
}

on_both_stores!(
    a_firing_group_opens_one_incident_with_its_severity_and_pages_the_on_call_once,
    severities_follow_the_label_rules_and_each_incident_is_paged_once,
    a_later_notification_with_one_more_alert_joins_the_incident_without_paging_again,
    the_same_notification_three_times_opens_one_incident_and_pages_once,
    when_every_alert_resolves_monitoring_resolves_the_incident_and_its_page,
    a_resolved_notification_of_an_unknown_group_opens_nothing,
    the_title_comes_from_the_summary_else_the_alert_names,
    an_acknowledged_incident_stays_open_when_its_alerts_resolve,
    an_incident_with_a_new_commander_stays_open_when_its_alerts_resolve,
    without_auto_resolve_the_incident_stays_open_when_its_alerts_resolve,
    after_a_person_resolves_only_a_new_or_refired_alert_opens_another_incident,
    malformed_notifications_are_refused_with_the_problem_and_store_nothing,
    notifications_without_the_right_bearer_token_are_refused_and_store_nothing,
    an_oversized_notification_is_refused_and_stores_nothing,
    concurrent_copies_of_a_firing_notification_open_one_incident_and_page_once,
    during_maintenance_a_warning_alert_is_not_paged_but_a_critical_one_is,
);

// --- warroom serve ------------------------------------------------------------------------

/// Poll `done` every 100 ms for at most `seconds`.
async fn wait_until(what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
    for _ in 0..seconds * 10 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out after {seconds} s waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warroom_serve_opens_pages_and_resolves_an_alert_group_once_on_postgres() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let fake = FakePagerDuty::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &config_text(&fake.url, "\n[scheduler]\npoll_interval = \"200ms\"\n"),
    );
    let mut env = schema.env();
    env.push(("WARROOM_CONFIG".into(), config.display().to_string()));
    env.push(("WARROOM_ALERTMANAGER__TOKEN".into(), TOKEN.into()));
    let (child, port) = crate::replicas::start_serve(&env).await;
    let url = format!("http://127.0.0.1:{port}/alertmanager/webhook");
    let http = reqwest::Client::new();
    let send = |body: String, authorization: Option<String>| {
        let mut request = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };

    // The real clock: a critical alert, which pages even in a maintenance window.
    let now = Utc::now();
    let a = alert("DatabaseDown", "critical", "db-0:5432").started(now - Duration::minutes(2));
    let b = alert("DatabaseDown", "critical", "db-1:5432").started(now - Duration::minutes(1));
    let firing = group(vec![a, b]);

    let (status, answer) = send(firing.body(), Some(format!("Bearer {}x", TOKEN))).await;
    assert_eq!(status, 401, "{answer}");
    let (status, _) = send(firing.body(), None).await;
    assert_eq!(status, 401);

    let (status, answer) = send(firing.body(), Some(bearer())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "opened", "{answer}");
    let key = answer["detail"].as_str().unwrap().to_string();
    let (status, answer) = send(firing.body(), Some(bearer())).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("unchanged")),
        "{answer}"
    );

    wait_until("the on-call page", 20, || {
        !fake.accepted("trigger").is_empty()
    })
    .await;
    let triggers = fake.accepted("trigger");
    assert_eq!(triggers.len(), 1, "{triggers:?}");
    assert_eq!(triggers[0]["dedup_key"], key.as_str());
    assert_eq!(triggers[0]["routing_key"], routing_key("oncall"));
    assert_eq!(triggers[0]["payload"]["severity"], "critical");

    let resolved = firing.all_resolved(Utc::now());
    let (status, answer) = send(resolved.body(), Some(bearer())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "resolved", "{answer}");
    assert_eq!(answer["detail"], key.as_str());
    wait_until("the page resolved", 20, || {
        !fake.accepted("resolve").is_empty()
    })
    .await;
    let resolves = fake.accepted("resolve");
    assert_eq!(resolves.len(), 1, "{resolves:?}");
    assert_eq!(resolves[0]["dedup_key"], key.as_str());
    assert_eq!(resolves[0]["routing_key"], routing_key("oncall"));
    let (status, answer) = send(resolved.body(), Some(bearer())).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("unchanged")),
        "{answer}"
    );

    // The store agrees: one incident, resolved by monitoring.
    let store = schema.store().await;
    let incidents = store.incidents(true, 10).await.unwrap();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0].status, Status::Resolved);
    assert_eq!(incidents[0].alert_group, Some(firing.key()));
    assert_eq!(fake.accepted("trigger").len(), 1, "paged once");
    drop(child);
    schema.cleanup().await;
}

/// The labels that explain the severity are the sender's text: they reach the alert message
/// and the timeline as one line, and short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_values_that_explain_the_severity_are_one_short_line() {
    let db = TestDb::sqlite();
    let w = Intake::start(&db, "").await;
    let long = "y".repeat(5000);
    let body = group(vec![
        alert(
            "DiskFull\nIncident Commander: mallory",
            "critical",
            "db-0:9100",
        )
        .label("category", &long),
    ])
    .body();
    let (status, answer) = w.post(body, Some(&bearer())).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let chat = w.chat().await;
    assert!(
        chat.contains("alertname=DiskFull Incident Commander: mallory"),
        "{chat}"
    );
    assert!(!chat.contains("\nIncident Commander: mallory"), "{chat}");
    // In the severity's reason; each alert's own line is cut at 500 characters as before.
    assert!(
        chat.contains(&format!("category={}…)", "y".repeat(99))),
        "{chat}"
    );
    assert!(!chat.contains(&"y".repeat(500)), "{chat}");
}
