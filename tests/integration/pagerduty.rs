//! PagerDuty end to end against the fake PagerDuty server: pages, acknowledgements and
//! resolutions with the documented bodies and headers, retries, permanent failures, REST calls,
//! webhooks, and escalation across downtime and replicas.

use crate::support::pagerduty::{API_TOKEN, FROM, FakePagerDuty, Fault, REQUESTER_ID};
use crate::support::{PgSchema, TestDb};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{Duration, TimeZone, Utc};
use std::io::Write;
use std::sync::Arc;
use tower::ServiceExt;
use warroom::app::clock::{Clock, VirtualClock};
use warroom::app::{App, Origin};
use warroom::config::Config;
use warroom::core::{EventKind, Platform, UserRef};
use warroom::pagerduty::{PagerDutyClient, sign};
use warroom::store::Store;

pub const SECRET: &str = "webhook-secret-one";

/// A 32-character routing key for a service name.
pub fn routing_key(service: &str) -> String {
    format!("{:0<32}", service.replace('_', ""))
}

/// A configuration file pointing every PagerDuty URL at the fake, with all four services and
/// the REST API configured. `extra` is appended.
pub fn config_text(fake_url: &str, extra: &str) -> String {
    format!(
        r#"
[pagerduty]
events_url = "{fake_url}/v2/enqueue"
api_url = "{fake_url}"
api_token = "{API_TOKEN}"
from_email = "{FROM}"
webhook_secrets = ["{SECRET}"]
timeout = "1s"

[pagerduty.routing_keys]
oncall = "{}"
devops_lead = "{}"
engineering_manager = "{}"
cto = "{}"

[pagerduty.priorities]
P1 = "P0"
{extra}"#,
        routing_key("oncall"),
        routing_key("devops_lead"),
        routing_key("engineering_manager"),
        routing_key("cto"),
    )
}

pub fn write_config(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("warroom.toml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path
}

fn config(fake: &FakePagerDuty) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &config_text(&fake.url, ""));
    warroom::config::load(Some(&path)).unwrap()
}

struct Setup {
    app: App,
    client: PagerDutyClient,
    clock: Arc<VirtualClock>,
    store: Arc<dyn Store>,
    config: Config,
}

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap()
}

fn setup(store: Arc<dyn Store>, fake: &FakePagerDuty) -> Setup {
    let config = config(fake);
    let clock = Arc::new(VirtualClock::starting_at(t0()));
    let app = App::new(
        store.clone(),
        config.policy.clone(),
        clock.clone(),
        Duration::seconds(60),
    );
    let client = PagerDutyClient::new(config.pagerduty.clone()).unwrap();
    Setup {
        app,
        client,
        clock,
        store,
        config,
    }
}

fn origin(channel: &str, user: &str) -> Origin {
    Origin {
        platform: Platform::Console,
        channel: channel.into(),
        actor: UserRef::parse(user).unwrap(),
        request: None,
    }
}

const CHANNEL: &str = "inc-20261128-payments-down";

impl Setup {
    /// Type `text` after `/incident` in `channel` as `user`; returns the direct reply.
    async fn say(&self, channel: &str, user: &str, text: &str) -> Option<warroom::core::Message> {
        self.app.handle_command(&origin(channel, user), text).await
    }

    /// Declare the P0 "Payments down" (channel `CHANNEL`) in #general as alice.
    async fn declare_p0(&self) {
        self.say("general", "alice", "declare Payments down --sev P0")
            .await
            .expect("declared");
    }

    /// Fire due timers and make the PagerDuty calls, as a scheduler pass would.
    async fn pass(&self) {
        self.app.run_due_timers().await.unwrap();
        self.app.dispatch_outbox(&self.client).await.unwrap();
    }

    async fn events(&self, kind: &str) -> Vec<EventKind> {
        let incident = self
            .store
            .incident_by_channel(CHANNEL)
            .await
            .unwrap()
            .unwrap();
        self.store
            .timeline(incident.key)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .filter(|k| k.name() == kind)
            .collect()
    }
}

fn services(fake: &FakePagerDuty, action: &str) -> Vec<String> {
    fake.events(action)
        .iter()
        .map(|e| {
            let key = e["routing_key"].as_str().unwrap();
            ["oncall", "devops_lead", "engineering_manager", "cto"]
                .into_iter()
                .find(|s| routing_key(s) == key)
                .unwrap_or("?")
                .to_string()
        })
        .collect()
}

pub async fn a_p0_escalates_step_by_step_until_acknowledged(db: &TestDb) {
    let fake = FakePagerDuty::start().await;
    let s = setup(db.open().await, &fake);
    s.declare_p0().await;
    s.pass().await;
    let triggers = fake.events("trigger");
    assert_eq!(triggers.len(), 1);
    let trigger = &triggers[0];
    assert_eq!(trigger["routing_key"], routing_key("oncall"));
    assert_eq!(trigger["dedup_key"], "INC-1");
    assert_eq!(trigger["payload"]["source"], "warroom");
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(
        trigger["payload"]["summary"],
        "[INC-1] P0 Payments down — escalation step 1: On-call engineer"
    );
    let headers = &fake.requests()[0].headers;
    assert_eq!(headers["content-type"], "application/json");

    // +15m: the response target is breached: announced, and the DevOps lead is paged at once.
    s.clock.advance(Duration::minutes(16));
    s.pass().await;
    assert_eq!(services(&fake, "trigger"), ["oncall", "devops_lead"]);
    assert_eq!(s.events("response_target_breached").await.len(), 1);
    // +30m: that step's own timer is now a no-op.
    s.clock.advance(Duration::minutes(15));
    s.pass().await;
    assert_eq!(services(&fake, "trigger"), ["oncall", "devops_lead"]);
    // +1h: the engineering manager.
    s.clock.advance(Duration::minutes(30));
    s.pass().await;
    assert_eq!(
        services(&fake, "trigger"),
        ["oncall", "devops_lead", "engineering_manager"]
    );
    // An ack in chat stops it all and acknowledges every paged service in PagerDuty.
    assert!(s.say(CHANNEL, "bob", "ack").await.is_none());
    s.pass().await;
    assert_eq!(
        services(&fake, "acknowledge"),
        ["oncall", "devops_lead", "engineering_manager"]
    );
    assert!(
        fake.events("acknowledge")
            .iter()
            .all(|e| e["dedup_key"] == "INC-1" && e.get("payload").is_none())
    );
    s.clock.advance(Duration::hours(3));
    s.pass().await;
    assert_eq!(
        services(&fake, "trigger").len(),
        3,
        "the CTO is never paged once acknowledged"
    );
    assert!(s.say(CHANNEL, "bob", "resolve fixed").await.is_none());
    s.pass().await;
    assert_eq!(
        services(&fake, "resolve"),
        ["oncall", "devops_lead", "engineering_manager"]
    );
    s.pass().await;
    assert_eq!(fake.requests().len(), 9, "nothing is sent twice");
}

pub async fn a_p0_reaches_the_cto_and_a_p2_never_does(db: &TestDb) {
    let fake = FakePagerDuty::start().await;
    let s = setup(db.open().await, &fake);
    s.declare_p0().await;
    s.say("general", "alice", "declare Report export slow --sev P2")
        .await
        .unwrap();
    for _ in 0..6 {
        s.clock.advance(Duration::minutes(30));
        s.pass().await;
    }
    let keys: Vec<(String, String)> = fake
        .events("trigger")
        .iter()
        .map(|e| {
            (
                e["dedup_key"].as_str().unwrap().to_string(),
                e["routing_key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(keys.contains(&("INC-1".into(), routing_key("cto"))));
    assert!(
        !keys.contains(&("INC-2".into(), routing_key("cto"))),
        "the CTO step is P0 only"
    );
    assert_eq!(keys.iter().filter(|(k, _)| k == "INC-1").count(), 4);
    assert_eq!(keys.iter().filter(|(k, _)| k == "INC-2").count(), 3);
}

pub async fn retries_honour_retry_after_and_stop(db: &TestDb) {
    let fake = FakePagerDuty::start().await;
    let s = setup(db.open().await, &fake);
    fake.fail_next([Fault::Status(429, Some(7))]);
    s.declare_p0().await;
    s.pass().await;
    assert_eq!(fake.requests().len(), 1);
    s.clock.advance(Duration::seconds(6));
    s.pass().await;
    assert_eq!(fake.requests().len(), 1, "Retry-After: 7 is honoured");
    fake.fail_next([
        Fault::Status(500, None),
        Fault::Hang(std::time::Duration::from_secs(3)),
    ]);
    s.clock.advance(Duration::seconds(2));
    s.pass().await;
    assert_eq!(fake.requests().len(), 2, "a 500 is retried later");
    s.clock.advance(Duration::seconds(10));
    s.pass().await;
    assert_eq!(
        fake.requests().len(),
        3,
        "a hung request times out and is retried later"
    );
    s.clock.advance(Duration::seconds(60));
    s.pass().await;
    assert_eq!(fake.requests().len(), 4);
    assert_eq!(
        fake.state.lock().unwrap().incidents.len(),
        1,
        "the fourth attempt paged"
    );
    for _ in 0..3 {
        s.clock.advance(Duration::seconds(60));
        s.pass().await;
    }
    assert_eq!(fake.requests().len(), 4, "and nothing more is sent");
    let counts = s.store.outbox_counts().await.unwrap();
    assert_eq!(counts.failed, 0);
}

pub async fn a_refused_page_is_reported_in_the_channel(db: &TestDb) {
    let fake = FakePagerDuty::start().await;
    let s = setup(db.open().await, &fake);
    fake.fail_next([Fault::Status(400, None)]);
    s.declare_p0().await;
    s.pass().await;
    let failed = s.events("delivery_failed").await;
    assert!(
        matches!(&failed[..], [EventKind::DeliveryFailed { what, reason }] if what == "page PagerDuty service oncall" && reason.contains("400")),
        "{failed:?}"
    );
    assert_eq!(s.store.outbox_counts().await.unwrap().failed, 1);
    s.clock.advance(Duration::minutes(5));
    s.pass().await;
    assert_eq!(
        fake.requests().len(),
        1,
        "a permanent failure is not retried"
    );
}

pub async fn a_call_that_keeps_failing_is_given_up_after_ten_attempts_and_reported(db: &TestDb) {
    let fake = FakePagerDuty::start().await;
    let s = setup(db.open().await, &fake);
    fake.fail_next((0..10).map(|_| Fault::Status(503, None)));
    s.declare_p0().await;
    // Just past each backoff (2 s doubling to 256 s). Other steps may page meanwhile; only the
    // on-call service's page keeps failing.
    s.pass().await;
    for backoff in [2, 4, 8, 16, 32, 64, 128, 256, 256, 256] {
        s.clock.advance(Duration::seconds(backoff + 1));
        s.pass().await;
    }
    let oncall = fake
        .events("trigger")
        .iter()
        .filter(|e| e["routing_key"] == routing_key("oncall"))
        .count();
    assert_eq!(oncall, 10, "ten attempts, then no more");
    assert!(
        fake.accepted("trigger")
            .iter()
            .all(|e| e["routing_key"] != routing_key("oncall"))
    );
    assert_eq!(s.store.outbox_counts().await.unwrap().failed, 1);
    let failed = s.events("delivery_failed").await;
    assert!(
        matches!(&failed[..], [EventKind::DeliveryFailed { what, reason }] if what == "page PagerDuty service oncall" && reason.contains("503")),
        "{failed:?}"
    );
}

/// warroom's HTTP router with PagerDuty webhooks on, over `s`'s store and clock.
struct Webhooks {
    deps: warroom::http::HttpDeps,
}

impl Webhooks {
    fn new(s: &Setup) -> Webhooks {
        let app = Arc::new(App::new(
            s.store.clone(),
            s.config.policy.clone(),
            s.clock.clone(),
            Duration::seconds(60),
        ));
        let deps = warroom::http::HttpDeps {
            alertmanager: None,
            slack: None,
            discord: None,
            metrics: app.metrics.clone(),
            store: s.store.clone(),
            scheduler: Arc::new(warroom::http::Heartbeat::default()),
            stall_after: Duration::seconds(20),
            pagerduty: Some(warroom::http::PagerDutyWebhook {
                app: app.clone(),
                secrets: vec![
                    warroom::config::Secret::new("rotated-out"),
                    warroom::config::Secret::new(SECRET),
                ],
                priorities: s.config.pagerduty.priorities.clone(),
                open_incidents_on: Platform::Console,
            }),
        };
        Webhooks { deps }
    }

    /// POST a body with the given signature header (none: no header).
    async fn post(&self, body: String, signature: Option<String>) -> StatusCode {
        let mut request =
            Request::post("/pagerduty/webhook").header("content-type", "application/json");
        if let Some(signature) = signature {
            request = request.header("x-pagerduty-signature", signature);
        }
        let response = warroom::http::router(self.deps.clone())
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        response.status()
    }

    /// POST a body signed with the configured secret.
    async fn send(&self, body: &str) -> StatusCode {
        self.post(body.to_string(), Some(sign(SECRET, body.as_bytes())))
            .await
    }
}

/// A v3 webhook body about `incident`, as PagerDuty sends it at `at`.
fn webhook_at(
    id: &str,
    kind: &str,
    incident: &str,
    key: Option<&str>,
    priority: Option<&str>,
    at: chrono::DateTime<Utc>,
) -> String {
    serde_json::json!({ "event": {
        "id": id, "event_type": kind, "resource_type": "incident", "occurred_at": at.to_rfc3339(),
        "agent": { "summary": "Jane Doe", "type": "user_reference" },
        "data": { "id": incident, "type": "incident", "incident_key": key, "title": "Checkout down in EU",
                  "urgency": "high", "priority": priority.map(|p| serde_json::json!({ "summary": p })) }
    }})
    .to_string()
}

pub async fn webhooks_open_link_acknowledge_and_resolve_once(db: &TestDb) {
    let fake = FakePagerDuty::start().await;
    let s = setup(db.open().await, &fake);
    let hooks = Webhooks::new(&s);
    let post = |body: String, signature: Option<String>| hooks.post(body, signature);
    let event =
        |id: &str, kind: &str, incident: &str, key: Option<&str>, priority: Option<&str>| {
            webhook_at(id, kind, incident, key, priority, t0())
        };

    // Signatures: missing, bad, good, and a second signature during rotation.
    let opened = event("E1", "incident.triggered", "PEXT1", None, None);
    assert_eq!(post(opened.clone(), None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        post(opened.clone(), Some(sign("wrong", opened.as_bytes()))).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(opened.clone(), Some("v1=nothex".into())).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        s.store.incidents(true, 10).await.unwrap().is_empty(),
        "nothing was applied"
    );
    let rotated = format!(
        "{},{}",
        sign("some-other-secret", opened.as_bytes()),
        sign(SECRET, opened.as_bytes())
    );
    assert_eq!(post(opened.clone(), Some(rotated)).await, StatusCode::OK);
    // PagerDuty retries the same delivery: a no-op.
    assert_eq!(
        post(opened.clone(), Some(sign(SECRET, opened.as_bytes()))).await,
        StatusCode::OK
    );
    let incidents = s.store.incidents(true, 10).await.unwrap();
    assert_eq!(incidents.len(), 1, "one incident, opened once");
    let incident = &incidents[0];
    assert_eq!(incident.pagerduty_incident_id.as_deref(), Some("PEXT1"));
    assert_eq!(incident.title, "Checkout down in EU");
    assert!(incident.channel.as_str().ends_with("-checkout-down-in-eu"));

    // Its escalation mentions people but does not trigger PagerDuty again: PagerDuty owns it.
    s.pass().await;
    assert!(fake.events("trigger").is_empty(), "{:?}", fake.requests());

    // A priority change maps to a severity; an acknowledgement stops the timers.
    let priority = event("E2", "incident.priority_updated", "PEXT1", None, Some("P1"));
    assert_eq!(
        post(priority.clone(), Some(sign(SECRET, priority.as_bytes()))).await,
        StatusCode::OK
    );
    assert_eq!(
        s.store
            .incident(incident.key)
            .await
            .unwrap()
            .unwrap()
            .severity,
        warroom::core::Severity::P0
    );
    let ack = event("E3", "incident.acknowledged", "PEXT1", None, None);
    assert_eq!(
        post(ack.clone(), Some(sign(SECRET, ack.as_bytes()))).await,
        StatusCode::OK
    );
    let acked = s.store.incident(incident.key).await.unwrap().unwrap();
    assert!(acked.acknowledged_at.is_some());
    let pending_steps = s.app.run_due_timers().await.unwrap();
    s.clock.advance(Duration::hours(3));
    let after = s.app.run_due_timers().await.unwrap();
    let timeline = s.store.timeline(incident.key).await.unwrap();
    let escalations = timeline
        .iter()
        .filter(|e| e.kind.name() == "escalated")
        .count();
    assert_eq!(
        escalations, 1,
        "only the first step ran: the ack stopped the rest ({pending_steps}, {after})"
    );
    assert!(
        timeline
            .iter()
            .any(|e| e.actor == warroom::core::Actor::PagerDuty("Jane Doe".into()))
    );
    s.pass().await;
    assert!(
        fake.requests().iter().all(|r| r.method != "PUT"),
        "PagerDuty's own ack is not sent back"
    );

    // A resolution from PagerDuty resolves; a duplicate delivery changes nothing.
    let resolved = event("E4", "incident.resolved", "PEXT1", None, None);
    for _ in 0..2 {
        assert_eq!(
            post(resolved.clone(), Some(sign(SECRET, resolved.as_bytes()))).await,
            StatusCode::OK
        );
    }
    let timeline = s.store.timeline(incident.key).await.unwrap();
    assert_eq!(
        timeline
            .iter()
            .filter(|e| e.kind.name() == "resolved")
            .count(),
        1
    );

    // PagerDuty's own copy of a page warroom sent (incident_key INC-2) opens nothing, and the
    // escalation of INC-2 goes on paging services.
    s.say("general", "alice", "declare Payments down --sev P1")
        .await
        .unwrap();
    s.pass().await;
    let echo = event("E5", "incident.triggered", "PECHO", Some("INC-2"), None);
    assert_eq!(
        post(echo.clone(), Some(sign(SECRET, echo.as_bytes()))).await,
        StatusCode::OK
    );
    assert_eq!(s.store.incidents(true, 10).await.unwrap().len(), 2);
    assert!(
        s.store
            .incident_by_pagerduty_id("PECHO")
            .await
            .unwrap()
            .is_none()
    );
    s.clock.advance(Duration::minutes(31));
    s.pass().await;
    let for_inc2 = |action: &str| -> Vec<String> {
        fake.events(action)
            .iter()
            .filter(|e| e["dedup_key"] == "INC-2")
            .map(|e| e["routing_key"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        for_inc2("trigger"),
        [routing_key("oncall"), routing_key("devops_lead")]
    );
    // An ack from PagerDuty on one service's incident acknowledges the others too.
    let ack2 = event("E8", "incident.acknowledged", "PECHO", Some("INC-2"), None);
    assert_eq!(
        post(ack2.clone(), Some(sign(SECRET, ack2.as_bytes()))).await,
        StatusCode::OK
    );
    s.pass().await;
    assert_eq!(
        for_inc2("acknowledge"),
        [routing_key("oncall"), routing_key("devops_lead")]
    );

    // Other signed events are accepted and ignored (PagerDuty disables subscriptions that keep
    // refusing); a handled event without its incident, and oversized bodies, are refused.
    let responder = r#"{"event":{"id":"E6","event_type":"incident.responder.added","resource_type":"incident","data":{"incident":{"id":"PEXT1"}}}}"#.to_string();
    assert_eq!(
        post(responder.clone(), Some(sign(SECRET, responder.as_bytes()))).await,
        StatusCode::OK
    );
    let junk =
        r#"{"event":{"id":"E7","event_type":"incident.resolved","resource_type":"incident"}}"#
            .to_string();
    assert_eq!(
        post(junk.clone(), Some(sign(SECRET, junk.as_bytes()))).await,
        StatusCode::BAD_REQUEST
    );
    let huge = "x".repeat(warroom::http::MAX_WEBHOOK_BYTES + 1);
    assert_eq!(
        post(huge.clone(), Some(sign(SECRET, huge.as_bytes()))).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

pub async fn webhooks_out_of_order_or_doubled_open_one_incident_and_lose_nothing(db: &TestDb) {
    let fake = FakePagerDuty::start().await;
    let s = setup(db.open().await, &fake);
    let hooks = Webhooks::new(&s);
    let now = t0();
    // The acknowledgement overtook the trigger: PagerDuty is asked to send it again, and it is
    // not remembered as handled.
    let ack = webhook_at("E21", "incident.acknowledged", "PLATE1", None, None, now);
    assert_eq!(hooks.send(&ack).await, StatusCode::SERVICE_UNAVAILABLE);
    assert!(s.store.incidents(true, 10).await.unwrap().is_empty());

    // Two copies of the trigger (two subscriptions) arrive together: one incident.
    let copy = |id| webhook_at(id, "incident.triggered", "PLATE1", None, None, now);
    let (first, second) = (copy("E22"), copy("E23"));
    let (a, b) = tokio::join!(hooks.send(&first), hooks.send(&second));
    assert_eq!((a, b), (StatusCode::OK, StatusCode::OK));
    let incidents = s.store.incidents(true, 10).await.unwrap();
    assert_eq!(incidents.len(), 1, "{incidents:?}");

    // PagerDuty's retry of the acknowledgement now lands, once.
    s.clock.advance(Duration::seconds(30));
    assert_eq!(hooks.send(&ack).await, StatusCode::OK);
    let incident = s.store.incident(incidents[0].key).await.unwrap().unwrap();
    assert!(incident.acknowledged_at.is_some());
    assert_eq!(hooks.send(&ack).await, StatusCode::OK);
    let acks = s
        .store
        .timeline(incident.key)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind.name() == "acknowledged")
        .count();
    assert_eq!(acks, 1);

    // An old event about an incident warroom never opened is accepted and dropped: no retries
    // for ever.
    let old = webhook_at(
        "E24",
        "incident.resolved",
        "PNEVER",
        None,
        None,
        now - Duration::hours(1),
    );
    assert_eq!(hooks.send(&old).await, StatusCode::OK);
    // Nor one that claims to come from the future.
    let ahead = webhook_at(
        "E26",
        "incident.resolved",
        "PNEVER",
        None,
        None,
        s.clock.now() + Duration::hours(1),
    );
    assert_eq!(hooks.send(&ahead).await, StatusCode::OK);
    // Nor is PagerDuty asked to retry events about warroom's own pages it does not have.
    let foreign = webhook_at(
        "E25",
        "incident.acknowledged",
        "PFOREIGN",
        Some("INC-99"),
        None,
        s.clock.now(),
    );
    assert_eq!(hooks.send(&foreign).await, StatusCode::OK);
    assert_eq!(s.store.incidents(true, 10).await.unwrap().len(), 1);
}

pub async fn rest_calls_carry_the_documented_headers_and_bodies(db: &TestDb) {
    let fake = FakePagerDuty::start().await;
    let s = setup(db.open().await, &fake);
    fake.add_rest_incident("PREST1", Some("INC-1"));
    fake.set_on_call("PSCHED", &["PONCALL1", "PONCALL2"]);
    s.say("general", "alice", "declare Payments down --sev P1")
        .await
        .unwrap();
    s.pass().await;
    for target in ["user:PUSER9", "escalation_policy:PEP1", "schedule:PSCHED"] {
        assert!(
            s.say(CHANNEL, "bob", &format!("page {target}"))
                .await
                .is_none()
        );
    }
    s.pass().await;
    let requests = fake.requests();
    let responder: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/incidents/PREST1/responder_requests")
        .collect();
    assert_eq!(responder.len(), 3, "{requests:#?}");
    for r in &responder {
        assert_eq!(
            r.headers["authorization"],
            format!("Token token={API_TOKEN}")
        );
        assert_eq!(
            r.headers["accept"],
            "application/vnd.pagerduty+json;version=2"
        );
        assert_eq!(r.headers["from"], FROM);
        assert_eq!(r.body["requester_id"], REQUESTER_ID);
    }
    let targets = |i: usize| responder[i].body["responder_request_targets"].clone();
    assert_eq!(
        targets(0),
        serde_json::json!([{ "responder_request_target": { "id": "PUSER9", "type": "user_reference" } }])
    );
    assert_eq!(
        targets(1),
        serde_json::json!([{ "responder_request_target": { "id": "PEP1", "type": "escalation_policy_reference" } }])
    );
    assert_eq!(
        targets(2),
        serde_json::json!([
            { "responder_request_target": { "id": "PONCALL1", "type": "user_reference" } },
            { "responder_request_target": { "id": "PONCALL2", "type": "user_reference" } }
        ])
    );
    assert!(
        requests
            .iter()
            .any(|r| r.path == "/incidents" && r.query == "incident_key=INC-1")
    );
    assert_eq!(
        requests.iter().filter(|r| r.path == "/users").count(),
        1,
        "the requester is looked up once"
    );

    // An incident PagerDuty opened is acknowledged by id through the REST API.
    let event = warroom::pagerduty::WebhookEvent {
        id: "E1".into(),
        event_type: "incident.triggered".into(),
        incident_id: "PREST2".into(),
        incident_key: None,
        title: "Queue stuck".into(),
        urgency: Some("high".into()),
        priority: None,
        agent: "PagerDuty".into(),
        occurred_at: None,
    };
    fake.add_rest_incident("PREST2", None);
    s.app
        .handle_pagerduty(&event, &Default::default(), Platform::Console)
        .await
        .unwrap();
    let channel = s
        .store
        .incident_by_pagerduty_id("PREST2")
        .await
        .unwrap()
        .unwrap()
        .channel;
    assert!(s.say(channel.as_str(), "bob", "ack").await.is_none());
    s.pass().await;
    let put = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .expect("a PUT");
    assert_eq!(put.path, "/incidents/PREST2");
    assert_eq!(
        put.body,
        serde_json::json!({ "incident": { "type": "incident_reference", "status": "acknowledged" } })
    );
    assert_eq!(put.headers["from"], FROM);
    assert_eq!(
        fake.state.lock().unwrap().rest_incidents["PREST2"].0,
        "acknowledged"
    );
}

pub async fn overdue_escalation_fires_once_after_downtime(db: &TestDb) {
    let fake = FakePagerDuty::start().await;
    let first = setup(db.open().await, &fake);
    first
        .app
        .handle_command(
            &origin("general", "alice"),
            "declare Payments down --sev P0",
        )
        .await
        .unwrap();
    // The process stops before any timer runs and comes back three hours later.
    first.clock.advance(Duration::hours(3));
    let restarted = App::new(
        db.open().await,
        first.config.policy.clone(),
        first.clock.clone(),
        Duration::seconds(60),
    );
    restarted.run_due_timers().await.unwrap();
    assert_eq!(
        restarted.run_due_timers().await.unwrap(),
        0,
        "everything overdue fired once"
    );
    restarted.dispatch_outbox(&first.client).await.unwrap();
    assert_eq!(
        services(&fake, "trigger"),
        ["oncall", "devops_lead", "engineering_manager", "cto"]
    );
    let escalated = first.events("escalated").await;
    assert_eq!(escalated.len(), 4);
    assert!(escalated.iter().any(|e| matches!(e, EventKind::Escalated { late_by_seconds, .. } if *late_by_seconds >= 3 * 3600)), "{escalated:?}");
}

pub async fn a_step_mentions_who_is_on_call(db: &TestDb) {
    let fake = FakePagerDuty::start().await;
    fake.set_on_call("PSCHED", &["PU1=Jane Doe", "PU2=Raj <@here>"]);
    let steps = r#"
[[escalation.steps]]
name = "On-call engineer"
after = "0m"
page = ["service:oncall"]
mention = ["oncall", "schedule:PSCHED", "escalation_policy:PEMPTY"]
"#;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &config_text(&fake.url, steps));
    let config = warroom::config::load(Some(&path)).unwrap();
    let clock = Arc::new(VirtualClock::starting_at(t0()));
    let store = db.open().await;
    let app = App::new(
        store.clone(),
        config.policy.clone(),
        clock,
        Duration::seconds(60),
    );
    let client = PagerDutyClient::new(config.pagerduty.clone()).unwrap();
    app.handle_command(
        &origin("general", "alice"),
        "declare Payments down --sev P0",
    )
    .await
    .unwrap();
    app.run_due_timers().await.unwrap();
    app.dispatch_outbox(&client).await.unwrap();
    let lookups: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/oncalls")
        .map(|r| r.query.clone())
        .collect();
    assert_eq!(lookups.len(), 2, "{lookups:?}");
    assert!(
        lookups
            .iter()
            .any(|q| q.contains("schedule_ids%5B%5D=PSCHED") && q.contains("earliest=true")),
        "{lookups:?}"
    );
    let incident = store.incident_by_channel(CHANNEL).await.unwrap().unwrap();
    let timeline = store.timeline(incident.key).await.unwrap();
    assert!(
        timeline.iter().any(|e| matches!(&e.kind, EventKind::OnCall { target, names } if target == "schedule:PSCHED" && names == &["Jane Doe".to_string(), "Raj <@here>".to_string()])),
        "{timeline:?}"
    );
    // Nobody on call for the escalation policy: said in the channel, not silently dropped.
    assert!(timeline.iter().any(|e| matches!(&e.kind, EventKind::DeliveryFailed { reason, .. } if reason.contains("nobody is on call for escalation_policy:PEMPTY"))));
    // The names reach the channel, escaped like any other text.
    let sink = crate::app::RecordingSink::default();
    app.dispatch_outbox(&sink).await.unwrap();
    let on_call = sink
        .delivered
        .lock()
        .unwrap()
        .iter()
        .find_map(|e| match e {
            warroom::core::Effect::Post { message, .. }
                if serde_json::to_string(message)
                    .unwrap()
                    .contains("\"on_call\"") =>
            {
                Some(message.clone())
            }
            _ => None,
        })
        .expect("the on-call mention was posted");
    let renderer = warroom::render::Renderer::load(None).unwrap();
    let slack = renderer
        .render(Platform::Slack, &on_call)
        .unwrap()
        .plain_text();
    assert!(
        slack.contains(
            "on call for schedule:PSCHED in PagerDuty: Jane Doe, Raj &lt;@\u{200B}here&gt;"
        ),
        "{slack}"
    );
}

/// The notices `app` has queued for the incident channel, rendered for Slack, delivered to a
/// recording sink.
async fn channel_text(app: &App) -> String {
    let sink = crate::app::RecordingSink::default();
    app.dispatch_outbox(&sink).await.unwrap();
    let delivered = sink.delivered.lock().unwrap().clone();
    crate::support::rendered_posts(&delivered, Platform::Slack, "\n")
}

pub async fn a_page_still_waiting_for_pagerduty_is_withdrawn_by_the_ack(db: &TestDb) {
    let fake = FakePagerDuty::start().await;
    let s = setup(db.open().await, &fake);
    fake.fail_next([Fault::Status(503, None)]);
    s.declare_p0().await;
    s.pass().await;
    assert_eq!(fake.requests().len(), 1, "the page failed and waits");
    assert!(s.say(CHANNEL, "bob", "ack").await.is_none());
    s.clock.advance(Duration::seconds(3));
    s.pass().await;
    assert!(
        fake.accepted("trigger").is_empty(),
        "nobody is paged for an incident already acknowledged"
    );
    assert_eq!(services(&fake, "acknowledge"), ["oncall"]);
    let withdrawn = s.events("page_withdrawn").await;
    assert!(
        matches!(&withdrawn[..], [EventKind::PageWithdrawn { what, why }] if what == "page PagerDuty service oncall" && why.contains("acknowledged")),
        "{withdrawn:?}"
    );
    let said = channel_text(&s.app).await;
    assert!(
        said.contains("INC-1: did not page PagerDuty service oncall: it was acknowledged"),
        "{said}"
    );
    let counts = s.store.outbox_counts().await.unwrap();
    assert_eq!((counts.pending, counts.failed), (0, 0));
    s.clock.advance(Duration::hours(3));
    s.pass().await;
    assert_eq!(fake.requests().len(), 2, "and no later step pages");
}

pub async fn a_step_paging_until_resolved_is_withdrawn_only_by_the_resolution(db: &TestDb) {
    let fake = FakePagerDuty::start().await;
    let steps = r#"
[[escalation.steps]]
name = "On-call engineer"
after = "0m"
page = ["service:oncall"]
until = "resolved"
"#;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &config_text(&fake.url, steps));
    let config = warroom::config::load(Some(&path)).unwrap();
    let mut s = setup(db.open().await, &fake);
    s.app = App::new(
        s.store.clone(),
        config.policy.clone(),
        s.clock.clone(),
        Duration::seconds(60),
    );
    fake.fail_next([Fault::Status(503, None), Fault::Status(503, None)]);
    s.declare_p0().await;
    s.say("general", "alice", "declare Search down --sev P0")
        .await
        .unwrap();
    s.pass().await;
    assert_eq!(fake.requests().len(), 2, "both pages failed and wait");
    assert!(s.say(CHANNEL, "bob", "ack").await.is_none());
    assert!(
        s.say("inc-20261128-search-down", "bob", "resolve fixed")
            .await
            .is_none()
    );
    s.clock.advance(Duration::seconds(3));
    s.pass().await;
    let paged: Vec<String> = fake
        .accepted("trigger")
        .iter()
        .map(|e| e["dedup_key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        paged,
        ["INC-1"],
        "the acknowledged incident's step still pages; the resolved one's does not"
    );
    assert!(s.events("page_withdrawn").await.is_empty());
    let search = s
        .store
        .incident_by_channel("inc-20261128-search-down")
        .await
        .unwrap()
        .unwrap();
    let withdrawn: Vec<EventKind> = crate::support::event_kinds(&*s.store, search.key)
        .await
        .into_iter()
        .filter(|k| k.name() == "page_withdrawn")
        .collect();
    assert!(
        matches!(&withdrawn[..], [EventKind::PageWithdrawn { why, .. }] if why.contains("resolved")),
        "{withdrawn:?}"
    );
}

pub async fn a_person_escalating_an_acknowledged_incident_still_pages(db: &TestDb) {
    let fake = FakePagerDuty::start().await;
    let s = setup(db.open().await, &fake);
    s.declare_p0().await;
    s.pass().await;
    assert!(s.say(CHANNEL, "bob", "ack").await.is_none());
    s.pass().await;
    fake.fail_next([Fault::Status(503, None)]);
    s.say(CHANNEL, "bob", "escalate").await;
    s.pass().await;
    s.clock.advance(Duration::seconds(3));
    s.pass().await;
    let paged: Vec<bool> = fake
        .accepted("trigger")
        .iter()
        .map(|e| e["routing_key"] == routing_key("devops_lead"))
        .collect();
    assert_eq!(
        paged,
        [false, true],
        "the on-call, then the DevOps lead a person asked for, after the retry"
    );
    assert!(s.events("page_withdrawn").await.is_empty());
}

on_both_stores!(
    a_step_mentions_who_is_on_call,
    a_person_escalating_an_acknowledged_incident_still_pages,
    a_page_still_waiting_for_pagerduty_is_withdrawn_by_the_ack,
    a_step_paging_until_resolved_is_withdrawn_only_by_the_resolution,
    a_p0_escalates_step_by_step_until_acknowledged,
    a_p0_reaches_the_cto_and_a_p2_never_does,
    retries_honour_retry_after_and_stop,
    a_refused_page_is_reported_in_the_channel,
    a_call_that_keeps_failing_is_given_up_after_ten_attempts_and_reported,
    webhooks_open_link_acknowledge_and_resolve_once,
    webhooks_out_of_order_or_doubled_open_one_incident_and_lose_nothing,
    rest_calls_carry_the_documented_headers_and_bodies,
    overdue_escalation_fires_once_after_downtime,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_fire_a_thousand_due_timers_exactly_once_on_postgres() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let db = TestDb::Postgres(schema);
    let store = db.open().await;
    let mut policy = warroom::config::load(None).unwrap().policy;
    policy.escalation.clear();
    for severity in &mut policy.severities {
        severity.respond_within = Duration::days(30);
    }
    // 1,000 incidents, each with its status reminder due at +30m.
    for n in 1..=1_000i64 {
        let key = store.allocate_incident_key().await.unwrap();
        let decision = warroom::core::decide::declare(
            &policy,
            warroom::core::decide::DeclareRequest {
                key,
                title: format!("incident {n}"),
                severity: None,
                actor: UserRef::parse("alice").unwrap(),
                platform: Platform::Console,
                channel: warroom::core::ChannelName::parse(&format!("inc-20261128-n{n}")).unwrap(),
                now: t0(),
                from_pagerduty: None,
            },
        );
        store
            .commit(warroom::store::Change {
                // Only the timers matter here: no chat or PagerDuty calls are queued.
                outbox: &[],
                ..warroom::store::Change::new(&decision, None, t0())
            })
            .await
            .unwrap();
    }
    let clock = Arc::new(VirtualClock::starting_at(t0() + Duration::minutes(31)));
    let a = App::new(
        db.open().await,
        policy.clone(),
        clock.clone(),
        Duration::seconds(60),
    );
    let b = App::new(db.open().await, policy, clock, Duration::seconds(60));
    let (fa, fb) = tokio::join!(a.run_due_timers(), b.run_due_timers());
    let (fa, fb) = (fa.unwrap(), fb.unwrap());
    assert_eq!(fa + fb, 1_000, "a fired {fa}, b fired {fb}");
    let mut fired = 0;
    for n in 1..=1_000i64 {
        let timeline = store.timeline(warroom::core::IncidentKey(n)).await.unwrap();
        let reminders = timeline
            .iter()
            .filter(|e| e.kind.name() == "reminder_sent")
            .count();
        assert_eq!(reminders, 1, "INC-{n} got {reminders} reminders");
        fired += reminders;
    }
    assert_eq!(fired, 1_000);
    db.cleanup().await;
}
