//! The store contract: every test here runs on SQLite and on PostgreSQL.

use crate::support::{PgSchema, TestDb};
use chrono::{DateTime, Duration, TimeZone, Utc};
use std::collections::HashSet;
use std::sync::Arc;
use warroom::core::decide::{DeclareRequest, apply, declare};
use warroom::core::{
    ChannelName, ChannelTarget, Command, Effect, EventKind, IncidentKey, Message, Platform,
    Severity, Slot, Status, TimerKind, TimerRequest, UserRef, message::Visibility,
};
use warroom::store::{Change, Store, StoreError};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap()
}

fn policy() -> warroom::core::Policy {
    warroom::config::load(None).expect("defaults load").policy
}

fn user(name: &str) -> UserRef {
    UserRef::parse(name).unwrap()
}

/// Declare and store an incident; returns its decision.
async fn declared(store: &dyn Store, title: &str, channel: &str) -> warroom::core::Decision {
    let key = store.allocate_incident_key().await.unwrap();
    let decision = declare(
        &policy(),
        DeclareRequest {
            key,
            title: title.into(),
            severity: None,
            actor: user("alice"),
            platform: Platform::Console,
            channel: ChannelName::parse(channel).unwrap(),
            now: t0(),
            from_pagerduty: None,
        },
    );
    // These tests are about the store: keep the status reminder, drop the escalation plan.
    let mut decision = decision;
    decision
        .timers
        .retain(|t| t.kind == TimerKind::StatusReminder);
    let version = store
        .commit(Change::new(&decision, None, t0()))
        .await
        .unwrap();
    assert_eq!(version, 1);
    decision.incident.version = version;
    decision
}

/// A change of many rows (more statements than PostgreSQL gets in one small batch) is
/// written whole and in order, or, when its version is stale or its channel taken, not at all.
pub async fn a_large_change_is_all_or_nothing_and_in_order(db: &TestDb) {
    let store = db.open().await;
    let d = declared(&*store, "Many updates", "inc-20261128-many-updates").await;
    let now = t0() + Duration::minutes(1);
    let mut big = apply(
        &policy(),
        &d.incident,
        &user("bob"),
        &Command::Update("0".into()),
        now,
    )
    .unwrap();
    let template = big.events[0].clone();
    big.events = (0..45)
        .map(|n| {
            let mut event = template.clone();
            event.kind = EventKind::StatusUpdate {
                text: format!("update {n}"),
            };
            event
        })
        .collect();
    let before = store.timeline(d.incident.key).await.unwrap().len();

    // Stale version: nothing of it is written.
    let stale = store
        .commit(Change::new(&big, Some(d.incident.version + 1), now))
        .await
        .unwrap_err();
    assert!(matches!(stale, StoreError::Conflict(_)), "{stale:?}");
    assert_eq!(store.timeline(d.incident.key).await.unwrap().len(), before);

    store
        .commit(Change::new(&big, Some(d.incident.version), now))
        .await
        .unwrap();
    let texts: Vec<String> = store
        .timeline(d.incident.key)
        .await
        .unwrap()
        .into_iter()
        .skip(before)
        .map(|event| match event.kind {
            EventKind::StatusUpdate { text } => text,
            other => panic!("{other:?}"),
        })
        .collect();
    let expected: Vec<String> = (0..45).map(|n| format!("update {n}")).collect();
    assert_eq!(texts, expected);

    // A new incident whose channel is taken: neither it nor any of its many rows is written.
    let key = store.allocate_incident_key().await.unwrap();
    let mut clash = declare(
        &policy(),
        DeclareRequest {
            key,
            title: "Many updates".into(),
            severity: None,
            actor: user("bob"),
            platform: Platform::Console,
            channel: ChannelName::parse("inc-20261128-many-updates").unwrap(),
            now: t0(),
            from_pagerduty: None,
        },
    );
    clash.events = big.events.clone();
    let pending = store.outbox_counts().await.unwrap().pending;
    let taken = store
        .commit(Change::new(&clash, None, t0()))
        .await
        .unwrap_err();
    assert!(matches!(taken, StoreError::ChannelTaken(_)), "{taken:?}");
    assert_eq!(store.incident(key).await.unwrap(), None);
    assert!(store.timeline(key).await.unwrap().is_empty());
    assert_eq!(store.outbox_counts().await.unwrap().pending, pending);
}

/// A change's timers take effect as if written one by one in order: each supersedes the
/// pending timers of its kind with a lower fence, those stored and those earlier in the
/// same change, and never a later one.
pub async fn timers_of_one_change_supersede_in_order(db: &TestDb) {
    let store = db.open().await;
    let d = declared(&*store, "Fences", "inc-20261128-fences").await;
    let now = t0() + Duration::minutes(1);
    let mut change = apply(
        &policy(),
        &d.incident,
        &user("bob"),
        &Command::Update("fences".into()),
        now,
    )
    .unwrap();
    let reminder = |fence: i64, hours: i64| TimerRequest {
        kind: TimerKind::StatusReminder,
        due_at: t0() + Duration::hours(hours),
        fence,
    };
    let timers = [
        reminder(1, 1),
        reminder(2, 2),
        TimerRequest {
            kind: TimerKind::EscalationStep { step: 1 },
            due_at: t0() + Duration::hours(5),
            fence: 0,
        },
        reminder(4, 4),
        reminder(3, 3),
    ];
    change.timers = timers.to_vec();
    store
        .commit(Change::new(&change, Some(d.incident.version), now))
        .await
        .unwrap();
    let later = t0() + Duration::hours(10);
    let pending: Vec<(TimerKind, i64, DateTime<Utc>)> = store
        .claim_due_timers(later, "a", later + Duration::minutes(5), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.kind, t.fence, t.due_at))
        .collect();
    assert_eq!(
        pending,
        vec![
            (TimerKind::StatusReminder, 3, t0() + Duration::hours(3)),
            (TimerKind::StatusReminder, 4, t0() + Duration::hours(4)),
            (
                TimerKind::EscalationStep { step: 1 },
                0,
                t0() + Duration::hours(5)
            ),
        ],
        "the declared reminder and fences 1 and 2 were superseded; 4 came before 3 and stands"
    );
}

pub async fn stores_and_reads_back_everything(db: &TestDb) {
    let store = db.open().await;
    let d = declared(&*store, "DB down", "inc-20261128-db-down").await;
    let key = d.incident.key;
    let loaded = store.incident(key).await.unwrap().expect("stored");
    assert_eq!(loaded, d.incident);
    assert_eq!(
        store
            .incident_by_channel("inc-20261128-db-down")
            .await
            .unwrap(),
        Some(d.incident.clone())
    );
    assert_eq!(store.incident_by_channel("nope").await.unwrap(), None);
    assert_eq!(store.incident(IncidentKey(9_999)).await.unwrap(), None);
    let timeline = store.timeline(key).await.unwrap();
    assert_eq!(timeline, d.events);
    assert!(matches!(
        timeline[0].kind,
        EventKind::Declared {
            severity: Severity::P0,
            ..
        }
    ));
    assert_eq!(
        store.next_timer_due().await.unwrap(),
        Some(t0() + Duration::minutes(30))
    );
    let counts = store.outbox_counts().await.unwrap();
    assert_eq!(counts.pending, d.effects.len() as i64);
}

/// The response-target check of `incident` fired at `at`, committed: the incident as stored.
async fn breach(
    store: &dyn Store,
    policy: &warroom::core::Policy,
    incident: &warroom::core::Incident,
    at: DateTime<Utc>,
) -> warroom::core::Incident {
    let mut fired = warroom::core::decide::fire_timer(
        policy,
        incident,
        TimerKind::ResponseTarget,
        at,
        incident.escalation_generation,
        at,
    )
    .expect("the check fires");
    fired.incident.version = store
        .commit(Change::new(&fired, Some(incident.version), at))
        .await
        .unwrap();
    fired.incident
}

pub async fn every_field_survives_a_full_lifecycle(db: &TestDb) {
    let store = db.open().await;
    let p = policy();
    let d = declared(&*store, "Checkout errors", "inc-20261128-checkout-errors").await;
    let mut incident = d.incident;
    let bob = user("bob");
    // Nobody acknowledges within the response target.
    let breach_at = t0() + Duration::seconds(30);
    let breached = breach(&*store, &p, &incident, breach_at).await;
    assert_eq!(breached.response_breached_at, Some(breach_at));
    assert_eq!(
        store.incident(incident.key).await.unwrap().unwrap(),
        breached
    );
    incident = breached;
    for (i, command) in [
        Command::Ack,
        Command::Sev(Severity::P0),
        Command::Commander(user("carol")),
        Command::Status(Status::Monitoring),
        Command::Update("it's \"fine\" <now> & 'then' 🔥".into()),
        Command::Resolve {
            root_cause: Some("expired certificate".into()),
        },
    ]
    .into_iter()
    .enumerate()
    {
        let now = t0() + Duration::minutes(i as i64 + 1);
        let mut next = apply(&p, &incident, &bob, &command, now).unwrap();
        let version = store
            .commit(Change::new(&next, Some(incident.version), now))
            .await
            .unwrap();
        next.incident.version = version;
        assert_eq!(
            store.incident(incident.key).await.unwrap().unwrap(),
            next.incident,
            "{command:?}"
        );
        incident = next.incident;
    }
    assert_eq!(incident.status, Status::Resolved);
    assert_eq!(incident.acknowledged_by, Some(bob));
    let timeline = store.timeline(incident.key).await.unwrap();
    let kinds: Vec<_> = timeline.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "declared",
            "response_target_breached",
            "escalated",
            "acknowledged",
            "severity_changed",
            "commander_assigned",
            "status_changed",
            "status_update",
            "resolved"
        ]
    );
    assert!(
        matches!(&timeline[7].kind, EventKind::StatusUpdate { text } if text == "it's \"fine\" <now> & 'then' 🔥")
    );
}

pub async fn a_stale_version_is_a_conflict_and_writes_nothing(db: &TestDb) {
    let store = db.open().await;
    let p = policy();
    let d = declared(&*store, "DB down", "inc-20261128-db-down").await;
    let first = apply(&p, &d.incident, &user("bob"), &Command::Ack, t0()).unwrap();
    store
        .commit(Change::new(&first, Some(1), t0()))
        .await
        .unwrap();
    // A second writer decided from the same version 1.
    let second = apply(
        &p,
        &d.incident,
        &user("carol"),
        &Command::Sev(Severity::P1),
        t0(),
    )
    .unwrap();
    let err = store
        .commit(Change::new(&second, Some(1), t0()))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let stored = store.incident(d.incident.key).await.unwrap().unwrap();
    assert_eq!(stored.severity, Severity::P0);
    assert_eq!(stored.version, 2);
    let kinds: Vec<_> = store
        .timeline(d.incident.key)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind.name())
        .collect();
    assert_eq!(
        kinds,
        ["declared", "acknowledged"],
        "the conflicting change left no events"
    );
}

pub async fn a_taken_channel_is_refused_and_writes_nothing(db: &TestDb) {
    let store = db.open().await;
    declared(&*store, "DB down", "inc-20261128-db-down").await;
    let key = store.allocate_incident_key().await.unwrap();
    let clash = declare(
        &policy(),
        DeclareRequest {
            key,
            title: "DB down again".into(),
            severity: None,
            actor: user("bob"),
            platform: Platform::Console,
            channel: ChannelName::parse("inc-20261128-db-down").unwrap(),
            now: t0(),
            from_pagerduty: None,
        },
    );
    let err = store
        .commit(Change::new(&clash, None, t0()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::ChannelTaken(ref c) if c == "inc-20261128-db-down"),
        "{err:?}"
    );
    assert_eq!(store.incident(key).await.unwrap(), None);
    assert!(store.timeline(key).await.unwrap().is_empty());
    assert_eq!(
        store.outbox_counts().await.unwrap().pending,
        4,
        "only the first incident's effects"
    );
}

pub async fn a_second_incident_for_one_pagerduty_incident_is_a_conflict(db: &TestDb) {
    let store = db.open().await;
    let opened = |key, channel: &str| {
        declare(
            &policy(),
            DeclareRequest {
                key,
                title: "Checkout down".into(),
                severity: None,
                actor: user("pagerduty"),
                platform: Platform::Console,
                channel: ChannelName::parse(channel).unwrap(),
                now: t0(),
                from_pagerduty: Some(warroom::core::decide::PagerDutyOrigin {
                    incident_id: "PABC123".into(),
                    agent: "PagerDuty".into(),
                }),
            },
        )
    };
    let first = store.allocate_incident_key().await.unwrap();
    store
        .commit(Change::new(
            &opened(first, "inc-20261128-checkout-down"),
            None,
            t0(),
        ))
        .await
        .unwrap();
    // Another replica opened it from a second copy of the webhook at the same moment.
    let second = store.allocate_incident_key().await.unwrap();
    let err = store
        .commit(Change::new(
            &opened(second, "inc-20261128-checkout-down-2"),
            None,
            t0(),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.incident(second).await.unwrap(), None);
    assert!(store.timeline(second).await.unwrap().is_empty());
    assert_eq!(
        store
            .incident_by_pagerduty_id("PABC123")
            .await
            .unwrap()
            .map(|i| i.key),
        Some(first)
    );
}

/// The incident an alert group opens, on `channel`, with a firing and a resolved alert.
fn opened_by_alerts(
    key: IncidentKey,
    channel: &str,
    now: DateTime<Utc>,
) -> warroom::core::Decision {
    let alert = |fingerprint: &str, firing| warroom::core::MonitoredAlert {
        fingerprint: fingerprint.into(),
        name: "HighErrorRate".into(),
        firing,
        text: format!("HighErrorRate (service=api, pod={fingerprint}): High error rate & <5xx>"),
        starts_at: Some(t0() - Duration::minutes(5)),
        severity: Some(Severity::P1),
    };
    warroom::core::decide::declare_from_alerts(
        &policy(),
        DeclareRequest {
            key,
            title: "High error rate detected".into(),
            severity: None,
            actor: user("alertmanager"),
            platform: Platform::Console,
            channel: ChannelName::parse(channel).unwrap(),
            now,
            from_pagerduty: None,
        },
        &warroom::core::decide::AlertOrigin {
            source: "Alertmanager".into(),
            group_key: "{}:{alertname=\"HighErrorRate\"}".into(),
            alerts: vec![alert("a1", true), alert("a2", false)],
            details: vec!["Error rate is 0.4 errors per second".into()],
            severity: Severity::P1,
            labels: "severity=critical, alertname=HighErrorRate".into(),
            hold_paging: None,
        },
    )
}

pub async fn an_alert_group_has_one_open_incident_at_a_time(db: &TestDb) {
    let store = db.open().await;
    let group = "{}:{alertname=\"HighErrorRate\"}";
    assert_eq!(
        store.latest_incident_by_alert_group(group).await.unwrap(),
        None
    );
    let first = store.allocate_incident_key().await.unwrap();
    let opened = opened_by_alerts(first, "inc-20261128-high-error-rate", t0());
    let version = store
        .commit(Change::new(&opened, None, t0()))
        .await
        .unwrap();
    let stored = store.incident(first).await.unwrap().unwrap();
    assert_eq!(
        stored,
        warroom::core::Incident {
            version,
            ..opened.incident.clone()
        }
    );
    assert_eq!(stored.alert_group.as_deref(), Some(group));
    assert_eq!(stored.alerts.len(), 2);
    // The monitoring actor survives the actor column.
    let timeline = store.timeline(first).await.unwrap();
    assert_eq!(timeline, opened.events);
    assert_eq!(
        timeline[0].actor,
        warroom::core::Actor::Monitoring("Alertmanager".into())
    );
    assert_eq!(
        store
            .latest_incident_by_alert_group(group)
            .await
            .unwrap()
            .map(|i| i.key),
        Some(first)
    );
    // Another replica opening the same group at the same moment loses.
    let second = store.allocate_incident_key().await.unwrap();
    let err = store
        .commit(Change::new(
            &opened_by_alerts(second, "inc-20261128-high-error-rate-2", t0()),
            None,
            t0(),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.incident(second).await.unwrap(), None);
    // Once resolved, the group may open another, which is then the latest; and the
    // postmortem link is kept.
    let later = t0() + Duration::hours(1);
    let resolved = apply(
        &policy(),
        &stored,
        &user("bob"),
        &Command::Resolve { root_cause: None },
        later,
    )
    .unwrap();
    let version = store
        .commit(Change::new(&resolved, Some(stored.version), later))
        .await
        .unwrap();
    let resolved = warroom::core::Incident {
        version,
        ..resolved.incident
    };
    let done = warroom::core::decide::postmortem_done(
        &resolved,
        &user("bob"),
        "https://wiki.example.com/pm/1",
        later,
    )
    .unwrap();
    store
        .commit(Change::new(&done, Some(resolved.version), later))
        .await
        .unwrap();
    assert_eq!(
        store
            .incident(first)
            .await
            .unwrap()
            .unwrap()
            .postmortem_url
            .as_deref(),
        Some("https://wiki.example.com/pm/1")
    );
    let third = store.allocate_incident_key().await.unwrap();
    store
        .commit(Change::new(
            &opened_by_alerts(third, "inc-20261128-high-error-rate-3", later),
            None,
            later,
        ))
        .await
        .unwrap();
    assert_eq!(
        store
            .latest_incident_by_alert_group(group)
            .await
            .unwrap()
            .map(|i| i.key),
        Some(third)
    );
}

pub async fn maintenance_edges_are_announced_once(db: &TestDb) {
    use warroom::store::{MaintenanceWindow, NO_INCIDENT, WindowEdge};
    let store = db.open().await;
    let window = MaintenanceWindow {
        id: "adhoc:20261128T100000.000Z:olivia".into(),
        name: "database upgrade".into(),
        starts_at: t0(),
        ends_at: t0() + Duration::hours(2),
        started_by: Some("olivia".into()),
        ended_by: None,
        start_announced: false,
        end_announced: false,
    };
    let notice = |text: &str| {
        vec![(
            "console".to_string(),
            Effect::Post {
                channel: ChannelTarget::Named("incidents".into()),
                message: Message::notice(Visibility::InChannel, text),
                pin: false,
                slot: None,
            },
        )]
    };
    // Four processes announce the start at once: one does.
    let started = notice("started");
    let announced = futures_util::future::join_all(
        (0..4).map(|_| store.announce_maintenance(&window, WindowEdge::Start, &started, t0())),
    )
    .await;
    assert_eq!(
        announced
            .into_iter()
            .map(Result::unwrap)
            .filter(|a| *a)
            .count(),
        1
    );
    let listed = store.maintenance_windows(t0()).await.unwrap();
    assert_eq!(
        listed,
        [MaintenanceWindow {
            start_announced: true,
            ..window.clone()
        }]
    );
    // The notice is an outbox row of no incident, delivered like any other.
    let claimed = store
        .claim_outbox("console", t0(), "me", t0() + Duration::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].incident, NO_INCIDENT);
    assert_eq!(claimed[0].effect, notice("started")[0].1);
    store
        .outbox_delivered(claimed[0].id, "me", t0())
        .await
        .unwrap();
    // Ended early by a person: the end and who are recorded, once.
    let early = t0() + Duration::minutes(30);
    let ended = MaintenanceWindow {
        ends_at: early,
        ended_by: Some("bob".into()),
        ..window.clone()
    };
    assert!(
        store
            .announce_maintenance(&ended, WindowEdge::End, &notice("ended"), early)
            .await
            .unwrap()
    );
    assert!(
        !store
            .announce_maintenance(&ended, WindowEdge::End, &notice("ended"), early)
            .await
            .unwrap()
    );
    assert_eq!(
        store.maintenance_windows(t0()).await.unwrap(),
        [MaintenanceWindow {
            start_announced: true,
            end_announced: true,
            ..ended.clone()
        }]
    );
    // Windows that ended before `after` are not listed.
    assert!(store.maintenance_windows(early).await.unwrap().is_empty());
    let claimed = store
        .claim_outbox("console", early, "me", early + Duration::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].effect, notice("ended")[0].1);
}

pub async fn keys_are_unique_under_concurrency(db: &TestDb) {
    let store = db.open().await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.allocate_incident_key().await.unwrap()
        }));
    }
    let mut keys = HashSet::new();
    for task in tasks {
        assert!(
            keys.insert(task.await.unwrap()),
            "a key was handed out twice"
        );
    }
    assert_eq!(keys.len(), 20);
}

pub async fn lists_and_channel_prefixes(db: &TestDb) {
    let store = db.open().await;
    let p = policy();
    let a = declared(&*store, "one", "inc-20261128-db").await;
    declared(&*store, "two", "inc-20261128-db-2").await;
    declared(&*store, "three", "inc-20261128-api").await;
    let resolved = apply(
        &p,
        &a.incident,
        &user("bob"),
        &Command::Resolve { root_cause: None },
        t0(),
    )
    .unwrap();
    store
        .commit(Change::new(&resolved, Some(1), t0()))
        .await
        .unwrap();

    let open: Vec<_> = store
        .incidents(false, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.title)
        .collect();
    assert_eq!(open, ["three", "two"], "open only, newest first");
    let all: Vec<_> = store
        .incidents(true, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.title)
        .collect();
    assert_eq!(all, ["three", "two", "one"]);
    assert_eq!(store.incidents(true, 1).await.unwrap().len(), 1);
    let mut names = store
        .channel_names_with_prefix("inc-20261128-db")
        .await
        .unwrap();
    names.sort();
    assert_eq!(names, ["inc-20261128-db", "inc-20261128-db-2"]);
    // A declaration's first question: a fresh number and the same names, at once.
    let (first, mut with_names) = store
        .allocate_incident_key_with_names("inc-20261128-db")
        .await
        .unwrap();
    with_names.sort();
    assert_eq!(with_names, names);
    let (second, none) = store
        .allocate_incident_key_with_names("inc-20261128-nothing")
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
    assert!(
        first.0 > a.incident.key.0 && second.0 > first.0,
        "{first:?} {second:?}"
    );
    // LIKE wildcards in a prefix are plain characters.
    assert!(
        store
            .channel_names_with_prefix("inc-2026%")
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn timers_are_claimed_once_leased_and_fenced(db: &TestDb) {
    let store = db.open().await;
    let p = policy();
    let d = declared(&*store, "DB down", "inc-20261128-db-down").await;
    let due = t0() + Duration::minutes(30);
    assert!(
        store
            .claim_due_timers(due - Duration::seconds(1), "a", due, 10)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    let claimed = store
        .claim_due_timers(due, "a", due + Duration::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (claimed[0].kind, claimed[0].due_at, claimed[0].fence),
        (TimerKind::StatusReminder, due, 0)
    );
    assert!(
        store
            .claim_due_timers(due, "b", due + Duration::minutes(1), 10)
            .await
            .unwrap()
            .is_empty(),
        "leased to a"
    );
    assert_eq!(
        store.next_timer_due().await.unwrap(),
        Some(due + Duration::minutes(1)),
        "a timer leased to another process can be claimed when its lease ends, not before"
    );
    // The lease expires: b may take it; a has lost it.
    let stolen = store
        .claim_due_timers(
            due + Duration::minutes(2),
            "b",
            due + Duration::minutes(3),
            10,
        )
        .await
        .unwrap();
    assert_eq!(stolen.len(), 1);
    let fired =
        warroom::core::decide::fire_timer(&p, &d.incident, TimerKind::StatusReminder, due, 0, due)
            .unwrap();
    // Stale and late at once: the version is checked first (the caller re-reads, then finds
    // the lease gone).
    let mut stale_and_late = Change::new(&fired, Some(7), due);
    stale_and_late.fired_timer = Some((claimed[0].id, "a"));
    let err = store.commit(stale_and_late).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let mut late = Change::new(&fired, Some(1), due);
    late.fired_timer = Some((claimed[0].id, "a"));
    let err = store.commit(late).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost(_)), "{err:?}");
    assert_eq!(
        store.timeline(d.incident.key).await.unwrap().len(),
        1,
        "the lost-lease change wrote nothing"
    );
    assert_eq!(
        store
            .incident(d.incident.key)
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );
    let mut ok = Change::new(&fired, Some(1), due);
    ok.fired_timer = Some((claimed[0].id, "b"));
    store.commit(ok).await.unwrap();
    assert_eq!(store.timeline(d.incident.key).await.unwrap().len(), 2);
    assert!(
        store
            .claim_due_timers(due + Duration::hours(1), "c", due + Duration::hours(2), 10)
            .await
            .unwrap()
            .iter()
            .all(|t| t.id != claimed[0].id),
        "a fired timer is never claimed again"
    );
    // The reminder planned the next one (due at +30m, but just leased to "c" until +2h, so
    // nobody can take it before then); a newer fence supersedes it.
    assert_eq!(
        store.next_timer_due().await.unwrap(),
        Some(due + Duration::hours(2))
    );
    let superseding = [TimerRequest {
        kind: TimerKind::StatusReminder,
        due_at: due + Duration::hours(5),
        fence: 1,
    }];
    let mut newer = Change::new(&fired, Some(2), due);
    newer.events = &[];
    newer.outbox = &[];
    newer.timers = &superseding;
    store.commit(newer).await.unwrap();
    assert_eq!(
        store.next_timer_due().await.unwrap(),
        Some(due + Duration::hours(5))
    );
    let last = store
        .claim_due_timers(due + Duration::hours(6), "c", due + Duration::hours(7), 10)
        .await
        .unwrap();
    assert_eq!(last.len(), 1);
    assert!(
        store
            .discard_timer(last[0].id, "someone-else", due)
            .await
            .is_err()
    );
    store.discard_timer(last[0].id, "c", due).await.unwrap();
    assert_eq!(store.next_timer_due().await.unwrap(), None);
}

pub async fn concurrent_claims_never_overlap(db: &TestDb) {
    let store = db.open().await;
    for i in 0..12 {
        declared(
            &*store,
            &format!("incident {i}"),
            &format!("inc-20261128-n{i}"),
        )
        .await;
    }
    let due = t0() + Duration::hours(1);
    let mut tasks = Vec::new();
    for owner in ["r1", "r2", "r3", "r4"] {
        // Each replica has its own connection (pool) to the same database.
        let store = db.open().await;
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let batch = store
                    .claim_due_timers(due, owner, due + Duration::minutes(1), 2)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return ids;
                }
                ids.extend(batch.iter().map(|t| t.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        for id in task.await.unwrap() {
            assert!(seen.insert(id), "timer {id} was claimed by two replicas");
        }
    }
    assert_eq!(seen.len(), 12);
}

pub async fn outbox_delivers_each_incident_in_decision_order(db: &TestDb) {
    let store = db.open().await;
    let d = declared(&*store, "DB down", "inc-20261128-db-down").await;
    let now = t0();
    assert!(
        store
            .claim_outbox("slack", now, "a", now + Duration::minutes(1), 10)
            .await
            .unwrap()
            .is_empty(),
        "other platform"
    );
    let mut effects = Vec::new();
    loop {
        let items = store
            .claim_outbox("console", now, "a", now + Duration::minutes(1), 10)
            .await
            .unwrap();
        if items.is_empty() {
            break;
        }
        assert_eq!(
            items.len(),
            1,
            "only the oldest pending row of an incident is claimable"
        );
        assert!(
            store
                .claim_outbox("console", now, "b", now + Duration::minutes(1), 10)
                .await
                .unwrap()
                .is_empty(),
            "the head is leased and holds back the rest"
        );
        store.outbox_delivered(items[0].id, "a", now).await.unwrap();
        effects.push(items[0].effect.clone());
    }
    assert_eq!(effects, d.effects);
}

pub async fn inbound_events_are_remembered_then_pruned(db: &TestDb) {
    let store = db.open().await;
    assert!(
        store
            .record_inbound_event("pagerduty", "E1", t0())
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_inbound_event("pagerduty", "E1", t0())
            .await
            .unwrap(),
        "a redelivery"
    );
    assert!(
        store
            .record_inbound_event("pagerduty", "E2", t0() + Duration::days(10))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .prune_inbound_events(t0() + Duration::days(1))
            .await
            .unwrap(),
        1
    );
    assert!(
        store
            .record_inbound_event("pagerduty", "E1", t0() + Duration::days(40))
            .await
            .unwrap(),
        "forgotten"
    );
    assert!(
        !store
            .record_inbound_event("pagerduty", "E2", t0() + Duration::days(40))
            .await
            .unwrap()
    );
}

/// A change that records an inbound event seen before, or a delivery or failure of an outbox
/// row whose lease is gone, is refused whole: no event, no new version.
pub async fn a_seen_event_or_a_lost_row_lease_refuses_the_whole_change(db: &TestDb) {
    let store = db.open().await;
    let d = declared(&*store, "Refusals", "inc-20261128-refusals").await;
    let key = d.incident.key;
    let now = t0() + Duration::minutes(1);
    let claimed = store
        .claim_outbox("console", now, "a", now + Duration::minutes(1), 1)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    async fn update(store: &dyn Store, key: IncidentKey, version: i64) -> warroom::core::Decision {
        let current = store.incident(key).await.unwrap().unwrap();
        assert_eq!(current.version, version);
        apply(
            &policy(),
            &current,
            &user("bob"),
            &Command::Update(format!("to version {}", version + 1)),
            t0() + Duration::minutes(1),
        )
        .unwrap()
    }
    let events = store.timeline(key).await.unwrap().len();

    let decision = update(&*store, key, 1).await;
    let mut first = Change::new(&decision, Some(1), now);
    first.inbound_event = Some(("pagerduty", "E1"));
    store.commit(first).await.unwrap();

    let decision = update(&*store, key, 2).await;
    let mut again = Change::new(&decision, Some(2), now);
    again.inbound_event = Some(("pagerduty", "E1"));
    let err = store.commit(again).await.unwrap_err();
    assert!(matches!(err, StoreError::Duplicate(_)), "{err:?}");

    let mut delivered = Change::new(&decision, Some(2), now);
    delivered.delivered_outbox = Some((claimed[0].id, "b"));
    let err = store.commit(delivered).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost(_)), "{err:?}");

    let mut failed = Change::new(&decision, Some(2), now);
    failed.failed_outbox = Some((claimed[0].id, "b", "refused"));
    let err = store.commit(failed).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost(_)), "{err:?}");

    assert_eq!(store.incident(key).await.unwrap().unwrap().version, 2);
    assert_eq!(store.timeline(key).await.unwrap().len(), events + 1);
    // The row is still "a"'s: the refused changes did not touch it.
    let mut delivered = Change::new(&decision, Some(2), now);
    delivered.delivered_outbox = Some((claimed[0].id, "a"));
    store.commit(delivered).await.unwrap();
    assert_eq!(store.timeline(key).await.unwrap().len(), events + 2);
}

/// A row delivered by its last post keeps what it posted in the same write; the post is kept
/// even when the row's lease was lost, for the row's next owner to find.
pub async fn a_last_post_is_kept_with_the_delivered_mark(db: &TestDb) {
    let store = db.open().await;
    // Two incidents: a claim takes the first row of each.
    declared(&*store, "DB down", "inc-20261128-db-down").await;
    declared(&*store, "API down", "inc-20261128-api-down").await;
    let now = t0();
    let items = store
        .claim_outbox("console", now, "a", now + Duration::seconds(5), 10)
        .await
        .unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    let (first, second) = (items[0].id, items[1].id);
    store
        .outbox_delivered_keeping(first, "a", now, "slack", "outbox:1", "1700000000.000100")
        .await
        .unwrap();
    assert_eq!(
        store
            .chat_ref("slack", "outbox:1")
            .await
            .unwrap()
            .as_deref(),
        Some("1700000000.000100")
    );
    assert!(
        store
            .outbox_delivered_keeping(first, "a", now, "slack", "outbox:1", "again")
            .await
            .is_err(),
        "a delivered row is not delivered twice"
    );
    // Another owner took the second row: the mark is refused, what was posted is kept.
    let lost = store
        .outbox_delivered_keeping(second, "b", now, "slack", "outbox:2", "1700000000.000200")
        .await
        .unwrap_err();
    assert!(matches!(lost, StoreError::LeaseLost(_)), "{lost:?}");
    assert_eq!(
        store
            .chat_ref("slack", "outbox:2")
            .await
            .unwrap()
            .as_deref(),
        Some("1700000000.000200")
    );
    assert!(
        store
            .renew_outbox_lease(second, "a", now + Duration::minutes(1))
            .await
            .unwrap(),
        "the second row is still a's, pending"
    );
}

/// Many rows delivered at the same moment (as a dispatch pass delivers them) are each
/// recorded, or refused when no longer their owner's, with every post kept, also when two of
/// them keep the same ref.
pub async fn rows_delivered_together_are_each_recorded(db: &TestDb) {
    let store = db.open().await;
    for i in 0..30 {
        declared(
            &*store,
            &format!("incident {i}"),
            &format!("inc-20261128-together-{i}"),
        )
        .await;
    }
    let now = t0();
    let items = store
        .claim_outbox("console", now, "a", now + Duration::minutes(1), 100)
        .await
        .unwrap();
    assert_eq!(items.len(), 30, "one head per incident");
    let pending_before = store.health_counts().await.unwrap().outbox_pending;
    // Every fifth as another owner (its lease lost); every second keeps a post, half of
    // those under one shared key.
    let owner = |i: usize| if i % 5 == 0 { "b" } else { "a" };
    let key = |i: usize| {
        if i % 4 == 0 {
            "outbox:shared".to_string()
        } else {
            format!("outbox:{i}")
        }
    };
    let marks = items.iter().enumerate().map(|(i, item)| {
        let store = store.clone();
        let (id, key) = (item.id, key(i));
        async move {
            if i % 2 == 0 {
                store
                    .outbox_delivered_keeping(id, owner(i), now, "slack", &key, &format!("ts-{i}"))
                    .await
            } else {
                store.outbox_delivered(id, owner(i), now).await
            }
        }
    });
    let results = futures_util::future::join_all(marks).await;
    for (i, result) in results.iter().enumerate() {
        match owner(i) {
            "a" => assert!(result.is_ok(), "row {i}: {result:?}"),
            _ => assert!(
                matches!(result, Err(StoreError::LeaseLost(_))),
                "row {i}: {result:?}"
            ),
        }
    }
    let delivered = (0..30).filter(|i| owner(*i) == "a").count() as i64;
    assert_eq!(
        store.health_counts().await.unwrap().outbox_pending,
        pending_before - delivered
    );
    for (i, item) in items.iter().enumerate() {
        if i % 2 == 0 && i % 4 != 0 {
            assert_eq!(
                store.chat_ref("slack", &key(i)).await.unwrap(),
                Some(format!("ts-{i}")),
                "row {i}'s post is kept, its lease lost or not"
            );
        }
        if owner(i) == "a" {
            assert!(
                store.outbox_delivered(item.id, "a", now).await.is_err(),
                "row {i} is not delivered twice"
            );
        } else {
            assert!(
                store
                    .renew_outbox_lease(item.id, "a", now + Duration::minutes(2))
                    .await
                    .unwrap(),
                "row {i} is still pending and a's"
            );
        }
    }
    let shared = store.chat_ref("slack", "outbox:shared").await.unwrap();
    let given: Vec<String> = (0..30)
        .filter(|i| i % 4 == 0)
        .map(|i| format!("ts-{i}"))
        .collect();
    assert!(
        shared.as_ref().is_some_and(|v| given.contains(v)),
        "{shared:?} is one of the values given"
    );
}

pub async fn a_lease_is_renewed_only_by_its_owner(db: &TestDb) {
    let store = db.open().await;
    declared(&*store, "DB down", "inc-20261128-db-down").await;
    let now = t0();
    let items = store
        .claim_outbox("console", now, "a", now + Duration::seconds(5), 10)
        .await
        .unwrap();
    let id = items[0].id;
    assert!(
        store
            .renew_outbox_lease(id, "a", now + Duration::minutes(1))
            .await
            .unwrap()
    );
    assert!(
        !store
            .renew_outbox_lease(id, "b", now + Duration::minutes(1))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_outbox(
                "console",
                now + Duration::seconds(30),
                "b",
                now + Duration::minutes(2),
                10
            )
            .await
            .unwrap()
            .is_empty(),
        "the renewed lease still holds after the original one would have expired"
    );
    store.outbox_delivered(id, "a", now).await.unwrap();
    assert!(
        !store
            .renew_outbox_lease(id, "a", now + Duration::minutes(1))
            .await
            .unwrap(),
        "delivered rows are done"
    );
}

pub async fn outbox_rows_are_delivered_once_and_retried_with_backoff(db: &TestDb) {
    let store = db.open().await;
    for i in 0..3 {
        declared(
            &*store,
            &format!("incident {i}"),
            &format!("inc-20261128-n{i}"),
        )
        .await;
    }
    let now = t0();
    let items = store
        .claim_outbox("console", now, "a", now + Duration::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(items.len(), 3, "one head per incident");
    assert!(
        items
            .windows(2)
            .all(|w| w[0].id < w[1].id && w[0].incident != w[1].incident)
    );
    assert!(
        items
            .iter()
            .all(|i| i.attempts == 1 && matches!(i.effect, Effect::CreateChannel { .. }))
    );
    let keys: HashSet<_> = items.iter().map(|i| i.idempotency_key.clone()).collect();
    assert_eq!(keys.len(), 3);
    assert!(
        store
            .claim_outbox("console", now, "b", now + Duration::minutes(1), 10)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );

    store.outbox_delivered(items[0].id, "a", now).await.unwrap();
    assert!(
        store.outbox_delivered(items[0].id, "a", now).await.is_err(),
        "delivered once"
    );
    store
        .outbox_failed(
            items[1].id,
            "a",
            "429 rate limited",
            Some(now + Duration::seconds(30)),
        )
        .await
        .unwrap();
    store
        .outbox_failed(items[2].id, "a", "400 channel_not_found", None)
        .await
        .unwrap();
    let counts = store.outbox_counts().await.unwrap();
    assert_eq!(
        (counts.pending, counts.failed, counts.delivered),
        (10, 1, 1)
    );

    // The delivered and the given-up incidents move on; the retrying one waits its turn.
    let next = store
        .claim_outbox(
            "console",
            now + Duration::seconds(29),
            "b",
            now + Duration::minutes(2),
            10,
        )
        .await
        .unwrap();
    let incidents: HashSet<_> = next.iter().map(|i| i.incident).collect();
    assert_eq!(
        incidents,
        HashSet::from([items[0].incident, items[2].incident])
    );
    let retry = store
        .claim_outbox(
            "console",
            now + Duration::seconds(31),
            "c",
            now + Duration::minutes(2),
            10,
        )
        .await
        .unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!((retry[0].id, retry[0].attempts), (items[1].id, 2));
    assert!(
        store.outbox_delivered(retry[0].id, "a", now).await.is_err(),
        "a no longer holds the lease"
    );
    store.outbox_delivered(retry[0].id, "c", now).await.unwrap();
    assert_eq!(store.outbox_counts().await.unwrap().delivered, 2);
}

pub async fn effects_round_trip_exactly(db: &TestDb) {
    let store = db.open().await;
    let mut d = declared(&*store, "x", "inc-20261128-x").await;
    let tricky = Effect::Post {
        channel: ChannelTarget::Named("ops & <friends>".into()),
        message: Message::notice(
            Visibility::Ephemeral,
            "quote \" backslash \\ nul-free ünïcödé",
        ),
        pin: false,
        slot: Some(Slot::Summary),
    };
    d.effects = vec![tricky.clone()];
    d.events.clear();
    d.timers.clear();
    store.commit(Change::new(&d, Some(1), t0())).await.unwrap();
    let mut last = None;
    loop {
        let items = store
            .claim_outbox("console", t0(), "a", t0() + Duration::minutes(1), 10)
            .await
            .unwrap();
        let Some(item) = items.into_iter().next() else {
            break;
        };
        store.outbox_delivered(item.id, "a", t0()).await.unwrap();
        last = Some(item.effect);
    }
    assert_eq!(last, Some(tricky));
}

pub async fn chat_refs_are_kept_and_replaced(db: &TestDb) {
    let store = db.open().await;
    assert_eq!(
        store.chat_ref("slack", "channel:inc-x").await.unwrap(),
        None
    );
    store
        .set_chat_ref("slack", "channel:inc-x", "C0001")
        .await
        .unwrap();
    store
        .set_chat_ref("discord", "channel:inc-x", "9001")
        .await
        .unwrap();
    assert_eq!(
        store.chat_ref("slack", "channel:inc-x").await.unwrap(),
        Some("C0001".into())
    );
    store
        .set_chat_ref("slack", "channel:inc-x", "C0002")
        .await
        .unwrap();
    assert_eq!(
        store.chat_ref("slack", "channel:inc-x").await.unwrap(),
        Some("C0002".into())
    );
    assert_eq!(
        store.chat_ref("discord", "channel:inc-x").await.unwrap(),
        Some("9001".into())
    );
    // Several at once: one replaced, one new, the other platform's left alone.
    store
        .set_chat_refs(
            "slack",
            &[("channel:inc-x", "C0003"), ("channel-id:C0003", "inc-x")],
        )
        .await
        .unwrap();
    assert_eq!(
        store.chat_ref("slack", "channel:inc-x").await.unwrap(),
        Some("C0003".into())
    );
    assert_eq!(
        store.chat_ref("slack", "channel-id:C0003").await.unwrap(),
        Some("inc-x".into())
    );
    assert_eq!(
        store.chat_ref("discord", "channel:inc-x").await.unwrap(),
        Some("9001".into())
    );

    // A claim keeps the first value: here, one of eight replicas claiming at once.
    let mut claims = Vec::new();
    for replica in 0..8 {
        let store = db.open().await;
        claims.push(tokio::spawn(async move {
            store
                .claim_chat_ref("slack", "name:inc-y", &format!("incident-{replica}"))
                .await
                .unwrap()
        }));
    }
    let mut holders = HashSet::new();
    for claim in claims {
        holders.insert(claim.await.unwrap());
    }
    assert_eq!(
        holders.len(),
        1,
        "every claimant sees the one winner: {holders:?}"
    );
    let winner = holders.into_iter().next().unwrap();

    // Many claims at once through one store: more than its pool has connections (four in
    // the tests), each claim holding one; none may wait for a second connection.
    let claims: Vec<_> = (0..16)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .claim_chat_ref("slack", &format!("name:inc-z{n}"), &format!("incident-{n}"))
                    .await
            })
        })
        .collect();
    for (n, claim) in claims.into_iter().enumerate() {
        assert_eq!(claim.await.unwrap().unwrap(), format!("incident-{n}"));
    }

    assert_eq!(
        store
            .claim_chat_ref("slack", "name:inc-y", "incident-late")
            .await
            .unwrap(),
        winner
    );
    assert_eq!(
        store
            .claim_chat_ref("discord", "name:inc-y", "incident-late")
            .await
            .unwrap(),
        "incident-late",
        "per platform"
    );
}

/// Across incidents, urgent rows (pages, alerts, escalations) are claimed before cosmetic
/// ones (topics, summary edits) even when they were written later.
pub async fn urgent_rows_go_first_across_incidents(db: &TestDb) {
    let store = db.open().await;
    let now = t0();
    let mut cosmetic = declared(&*store, "one", "inc-20261128-one").await;
    cosmetic.effects = vec![Effect::SetTopic {
        channel: cosmetic.incident.channel.clone(),
        topic: "t".into(),
    }];
    cosmetic.events.clear();
    cosmetic.timers.clear();
    store
        .commit(Change::new(&cosmetic, Some(cosmetic.incident.version), now))
        .await
        .unwrap();
    // Drain the first incident's declaration rows so only the topic is pending for it.
    let mut drained = 0;
    loop {
        let items = store
            .claim_outbox("console", now, "a", now + Duration::minutes(1), 100)
            .await
            .unwrap();
        let declaration: Vec<_> = items
            .iter()
            .filter(|i| !matches!(i.effect, Effect::SetTopic { .. }))
            .collect();
        if declaration.is_empty() {
            for item in &items {
                store
                    .outbox_failed(item.id, "a", "later", Some(now))
                    .await
                    .unwrap();
            }
            break;
        }
        for item in declaration {
            store.outbox_delivered(item.id, "a", now).await.unwrap();
            drained += 1;
        }
        for item in items
            .iter()
            .filter(|i| matches!(i.effect, Effect::SetTopic { .. }))
        {
            store
                .outbox_failed(item.id, "a", "later", Some(now))
                .await
                .unwrap();
        }
    }
    assert!(drained > 0);
    let urgent = declared(&*store, "two", "inc-20261128-two").await;
    let items = store
        .claim_outbox("console", now, "b", now + Duration::minutes(1), 100)
        .await
        .unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(
        matches!(items[0].effect, Effect::CreateChannel { .. }),
        "the later incident's channel goes first: {items:?}"
    );
    assert_eq!(items[0].incident, urgent.incident.key);
    assert!(matches!(items[1].effect, Effect::SetTopic { .. }));
}

/// Claim and mark delivered every console row pending at `now`, as owner "a".
async fn deliver_everything(store: &dyn Store, now: chrono::DateTime<chrono::Utc>) {
    loop {
        let items = store
            .claim_outbox("console", now, "a", now + Duration::minutes(1), 100)
            .await
            .unwrap();
        if items.is_empty() {
            break;
        }
        for item in items {
            store.outbox_delivered(item.id, "a", now).await.unwrap();
        }
    }
}

/// A head is claimed however many rows of other incidents wait before it in claim order
/// (behind a head that is out): more than a claim looks at first on PostgreSQL.
pub async fn a_head_behind_many_waiting_rows_is_still_claimed(db: &TestDb) {
    let store = db.open().await;
    let now = t0();
    let lease = now + Duration::minutes(1);
    let mut busy = declared(&*store, "busy", "inc-20261128-busy").await;
    deliver_everything(&*store, now).await;
    busy.effects = (0..30)
        .map(|n| Effect::Invite {
            channel: busy.incident.channel.clone(),
            users: vec![user(&format!("user{n}"))],
        })
        .collect();
    busy.events.clear();
    busy.timers.clear();
    store
        .commit(Change::new(&busy, Some(busy.incident.version), now))
        .await
        .unwrap();
    let out = store
        .claim_outbox("console", now, "a", lease, 1)
        .await
        .unwrap();
    assert_eq!(out.len(), 1);
    let other = declared(&*store, "other", "inc-20261128-other").await;
    let claimed = store
        .claim_outbox("console", now, "b", lease, 1)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    assert_eq!(claimed[0].incident, other.incident.key);
    assert!(matches!(claimed[0].effect, Effect::CreateChannel { .. }));
}

/// A row that holds back an urgent row of its incident is claimed as urgent: a topic written
/// before an invitation in the same change, and a topic still pending when a later change
/// writes an invitation. Cosmetic rows of older incidents wait behind both.
pub async fn a_row_holding_back_an_urgent_row_is_urgent(db: &TestDb) {
    let store = db.open().await;
    let now = t0();
    let lease = now + Duration::minutes(1);
    let mut older = declared(&*store, "older", "inc-20261128-older").await;
    let mut later = declared(&*store, "later", "inc-20261128-later").await;
    let mut newer = declared(&*store, "newer", "inc-20261128-newer").await;
    deliver_everything(&*store, now).await;
    let topic = |d: &warroom::core::Decision| Effect::SetTopic {
        channel: d.incident.channel.clone(),
        topic: "t".into(),
    };
    let invite = |d: &warroom::core::Decision| Effect::Invite {
        channel: d.incident.channel.clone(),
        users: vec![user("bob")],
    };
    async fn write(
        store: &dyn Store,
        decision: &mut warroom::core::Decision,
        effects: Vec<Effect>,
        now: chrono::DateTime<chrono::Utc>,
    ) {
        decision.effects = effects;
        decision.events.clear();
        decision.timers.clear();
        let version = store
            .commit(Change::new(decision, Some(decision.incident.version), now))
            .await
            .unwrap();
        decision.incident.version = version;
    }
    let effects = vec![topic(&older)];
    write(&*store, &mut older, effects, now).await;
    let effects = vec![topic(&later)];
    write(&*store, &mut later, effects, now).await;
    let effects = vec![topic(&newer), invite(&newer)];
    write(&*store, &mut newer, effects, now).await;
    let effects = vec![invite(&later)];
    write(&*store, &mut later, effects, now).await;
    let first = store
        .claim_outbox("console", now, "b", lease, 2)
        .await
        .unwrap();
    let mut incidents: Vec<_> = first.iter().map(|i| i.incident).collect();
    incidents.sort();
    assert_eq!(
        incidents,
        [later.incident.key, newer.incident.key],
        "the topics holding back invitations go before the older incident's: {first:?}"
    );
    assert!(
        first
            .iter()
            .all(|i| matches!(i.effect, Effect::SetTopic { .. })),
        "{first:?}"
    );
    for item in &first {
        store.outbox_delivered(item.id, "b", now).await.unwrap();
    }
    let rest = store
        .claim_outbox("console", now, "b", lease, 100)
        .await
        .unwrap();
    assert_eq!(rest.len(), 3, "{rest:?}");
    assert!(
        rest.iter().any(
            |i| i.incident == older.incident.key && matches!(i.effect, Effect::SetTopic { .. })
        ),
        "{rest:?}"
    );
}

pub async fn runbook_requests_change_state_once(db: &TestDb) {
    let store = db.open().await;
    let d = declared(&*store, "DB down", "inc-20261128-db-down").await;
    let body = serde_json::json!({ "action": { "kind": "scale" }, "note": "ünïcödé & <x>" });
    let expires = t0() + Duration::minutes(5);
    let id = store
        .insert_runbook_request(d.incident.key, &body, expires, t0())
        .await
        .unwrap();
    let request = store.runbook_request(id).await.unwrap().expect("stored");
    assert_eq!(
        (
            request.incident,
            request.state.as_str(),
            &request.body,
            request.expires_at
        ),
        (d.incident.key, "pending", &body, expires)
    );
    assert!(store.runbook_request(id + 1000).await.unwrap().is_none());
    // Written with the timer that expires it, due when it expires.
    let due: Vec<_> = store
        .claim_due_timers(expires, "contract", expires + Duration::seconds(30), 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| matches!(t.kind, TimerKind::ChangeExpiry { .. }))
        .map(|t| (t.incident, t.kind, t.due_at, t.fence))
        .collect();
    assert_eq!(
        due,
        vec![(
            d.incident.key,
            TimerKind::ChangeExpiry { request: id },
            expires,
            0
        )]
    );
    // Two confirmations at once: one wins.
    let (a, b) = tokio::join!(
        store.transition_runbook_request(id, "pending", "running", Some("alice"), t0()),
        store.transition_runbook_request(id, "pending", "running", Some("bob"), t0())
    );
    assert!(a.unwrap() ^ b.unwrap(), "exactly one moves it");
    assert!(
        store
            .transition_runbook_request(id, "running", "done", None, t0())
            .await
            .unwrap()
    );
    let request = store.runbook_request(id).await.unwrap().unwrap();
    assert_eq!(request.state, "done");
    assert!(matches!(
        request.decided_by.as_deref(),
        Some("alice" | "bob")
    ));
}

/// What `/metrics` reads, and the leases a stopping replica gives back.
pub async fn health_counts_and_released_leases(db: &TestDb) {
    let store = db.open().await;
    for i in 0..3 {
        declared(
            &*store,
            &format!("incident {i}"),
            &format!("inc-20261128-h{i}"),
        )
        .await;
    }
    let counts = store.health_counts().await.unwrap();
    assert_eq!(counts.open_by_severity, vec![("P2".to_string(), 3)]);
    assert_eq!(counts.timers_pending, 3, "a status reminder each");
    let fresh = counts.outbox_pending;
    assert!(fresh >= 3, "{counts:?}");
    assert_eq!((counts.outbox_retrying, counts.outbox_failed), (0, 0));

    // Replica "a" claims rows and timers, then stops before finishing them.
    let now = t0();
    let late = now + Duration::hours(2);
    let rows = store
        .claim_outbox("console", now, "a", now + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    store
        .outbox_failed(rows[0].id, "a", "503", Some(now))
        .await
        .unwrap();
    let timers = store
        .claim_due_timers(late, "a", late + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(timers.len(), 3);
    let counts = store.health_counts().await.unwrap();
    assert_eq!(counts.outbox_retrying, 1, "{counts:?}");
    assert!(
        store
            .claim_outbox("console", now, "b", now + Duration::minutes(5), 10)
            .await
            .unwrap()
            .len()
            == 1,
        "only the row a gave back by failing it"
    );
    // Another replica's release gives back nothing of a's.
    assert_eq!(store.release_leases("c").await.unwrap(), (0, 0));
    assert_eq!(store.release_leases("a").await.unwrap(), (3, 2));
    // b takes the released rows at once (no waiting for the lease); a's claim stays counted.
    let taken = store
        .claim_outbox("console", now, "b", now + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 2);
    assert!(taken.iter().all(|r| r.attempts == 2), "{taken:?}");
    let timers = store
        .claim_due_timers(late, "b", late + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(timers.len(), 3);
}

on_both_stores!(
    a_large_change_is_all_or_nothing_and_in_order,
    timers_of_one_change_supersede_in_order,
    an_alert_group_has_one_open_incident_at_a_time,
    maintenance_edges_are_announced_once,
    health_counts_and_released_leases,
    runbook_requests_change_state_once,
    chat_refs_are_kept_and_replaced,
    urgent_rows_go_first_across_incidents,
    a_row_holding_back_an_urgent_row_is_urgent,
    a_head_behind_many_waiting_rows_is_still_claimed,
    stores_and_reads_back_everything,
    every_field_survives_a_full_lifecycle,
    a_stale_version_is_a_conflict_and_writes_nothing,
    a_taken_channel_is_refused_and_writes_nothing,
    a_second_incident_for_one_pagerduty_incident_is_a_conflict,
    keys_are_unique_under_concurrency,
    lists_and_channel_prefixes,
    timers_are_claimed_once_leased_and_fenced,
    concurrent_claims_never_overlap,
    outbox_delivers_each_incident_in_decision_order,
    outbox_rows_are_delivered_once_and_retried_with_backoff,
    a_lease_is_renewed_only_by_its_owner,
    a_last_post_is_kept_with_the_delivered_mark,
    rows_delivered_together_are_each_recorded,
    inbound_events_are_remembered_then_pruned,
    a_seen_event_or_a_lost_row_lease_refuses_the_whole_change,
    effects_round_trip_exactly,
);

/// Commit each of `effect_sets` as a change of `d`'s incident, in turn, with the first
/// set's row claimed by "a" before the others are written (the head is out on a lease).
async fn commit_with_the_head_out<const N: usize>(
    store: &dyn Store,
    d: &mut warroom::core::Decision,
    effect_sets: [Vec<Effect>; N],
    now: DateTime<Utc>,
) {
    for (n, effects) in effect_sets.into_iter().enumerate() {
        d.effects = effects;
        d.events.clear();
        d.timers.clear();
        d.incident.version = store
            .commit(Change::new(d, Some(d.incident.version), now))
            .await
            .unwrap();
        if n == 0 {
            let head = store
                .claim_outbox("console", now, "a", now + Duration::minutes(1), 100)
                .await
                .unwrap();
            assert_eq!(head.len(), 1, "{head:?}");
        }
    }
}

/// The pending outbox rows of incident `key` in `schema`, in id order: (id, next attempt,
/// urgent), read with SQL (the store does not say what it stores as urgent).
async fn pending_rows(schema: &PgSchema, key: i64) -> Vec<(i64, DateTime<Utc>, bool)> {
    let (db, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let query = format!(
        "SELECT id, next_attempt_at, urgent FROM {}.outbox WHERE incident = $1 AND state = 'pending' ORDER BY id",
        schema.schema
    );
    db.query(&query, &[&key])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

/// PostgreSQL: a head that was out on a lease when a change wrote an urgent row behind it is
/// put back urgent when its lease is released (a replica stopping), as by a retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_head_is_put_back_urgent_on_postgres() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let store = schema.store().await;
    let now = t0();
    let mut d = declared(&*store, "Released", "inc-20261128-released").await;
    deliver_everything(&*store, now).await;
    let topic = Effect::SetTopic {
        channel: d.incident.channel.clone(),
        topic: "t".into(),
    };
    let invite = Effect::Invite {
        channel: d.incident.channel.clone(),
        users: vec![user("bob")],
    };
    commit_with_the_head_out(&*store, &mut d, [vec![topic], vec![invite]], now).await;
    let key = d.incident.key.0;
    let urgent = || async {
        pending_rows(&schema, key)
            .await
            .into_iter()
            .map(|(_, _, urgent)| urgent)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        urgent().await,
        [false, true],
        "the leased topic is left alone"
    );
    assert_eq!(store.release_leases("a").await.unwrap(), (0, 1));
    assert_eq!(urgent().await, [true, true]);
    schema.cleanup().await;
}

/// Outbox rows as a store before schema 8 left them (each with its own urgency only), for the
/// migration tests: (incident, platform, state, urgent) in id order, and the urgency schema 8
/// must leave each with.
const BEFORE_SCHEMA_8: [(i64, &str, &str, bool, bool); 7] = [
    (1, "slack", "delivered", false, false), // done: left alone
    (1, "slack", "pending", false, true),    // a topic before the alert: raised
    (1, "discord", "pending", false, false), // another platform: left alone
    (1, "slack", "pending", true, true),     // the alert
    (1, "slack", "pending", false, false),   // a pin after it: left alone
    (2, "slack", "pending", false, false),   // another incident: left alone
    (2, "slack", "pending", false, false),
];

/// Schema 8 marks urgent the pending rows written before it that hold an urgent row of their
/// incident and platform back, and nothing else (PostgreSQL; the index changes too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_8_raises_rows_written_before_it_on_postgres() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    drop(schema.store().await);
    let (db, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let s = &schema.schema;
    // Back to schema 7: its indexes, and rows as it wrote them.
    db.batch_execute(&format!(
        "DELETE FROM {s}.schema_migrations WHERE version >= 8;
         ALTER TABLE {s}.incidents DROP COLUMN response_breached_at;
         DROP INDEX {s}.outbox_claim;
         CREATE INDEX outbox_ready ON {s}.outbox (platform, next_attempt_at) WHERE state = 'pending';
         CREATE INDEX outbox_incident_pending ON {s}.outbox (incident, platform, id) WHERE state = 'pending';"
    ))
    .await
    .unwrap();
    for (n, (incident, platform, state, urgent, _)) in BEFORE_SCHEMA_8.iter().enumerate() {
        db.execute(
            &format!(
                "INSERT INTO {s}.outbox (incident, platform, effect, idempotency_key, state, next_attempt_at, created_at, urgent) \
                 VALUES ($1, $2, '{{}}', $3, $4, now(), now(), $5)"
            ),
            &[incident, platform, &format!("before-8/{n}"), state, urgent],
        )
        .await
        .unwrap();
    }
    let store = schema.store().await;
    store.ping().await.unwrap();
    let urgent: Vec<bool> = db
        .query(&format!("SELECT urgent FROM {s}.outbox ORDER BY id"), &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let expected: Vec<bool> = BEFORE_SCHEMA_8.iter().map(|row| row.4).collect();
    assert_eq!(urgent, expected);
    let indexes: Vec<String> = db
        .query(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 AND tablename = 'outbox' ORDER BY indexname",
            &[s],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(indexes.contains(&"outbox_claim".to_string()), "{indexes:?}");
    assert!(indexes.contains(&"outbox_heads".to_string()), "{indexes:?}");
    assert!(
        !indexes.contains(&"outbox_ready".to_string()),
        "{indexes:?}"
    );
    assert!(
        !indexes.contains(&"outbox_incident_pending".to_string()),
        "{indexes:?}"
    );
    schema.cleanup().await;
}

/// The same on SQLite (no index changes there).
#[tokio::test]
async fn schema_8_raises_rows_written_before_it_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warroom.db");
    drop(
        warroom::store::sqlite::SqliteStore::open(&path)
            .await
            .unwrap(),
    );
    {
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(
            "DELETE FROM schema_migrations WHERE version >= 8;
             ALTER TABLE incidents DROP COLUMN response_breached_at;",
        )
        .unwrap();
        for (n, (incident, platform, state, urgent, _)) in BEFORE_SCHEMA_8.iter().enumerate() {
            db.execute(
                "INSERT INTO outbox (incident, platform, effect, idempotency_key, state, next_attempt_at, created_at, urgent) \
                 VALUES (?1, ?2, '{}', ?3, ?4, '2026-11-28T10:00:00.000000Z', '2026-11-28T10:00:00.000000Z', ?5)",
                rusqlite::params![incident, platform, format!("before-8/{n}"), state, urgent],
            )
            .unwrap();
        }
    }
    let store = warroom::store::sqlite::SqliteStore::open(&path)
        .await
        .unwrap();
    store.ping().await.unwrap();
    drop(store);
    let db = rusqlite::Connection::open(&path).unwrap();
    let urgent: Vec<bool> = db
        .prepare("SELECT urgent FROM outbox ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let expected: Vec<bool> = BEFORE_SCHEMA_8.iter().map(|row| row.4).collect();
    assert_eq!(urgent, expected);
}

/// Schema 9 gives the open incidents that breached their response target before it the time
/// of their first breach, so that a severity change does not announce another; resolved and
/// unbreached incidents get none.
async fn schema_9_recalls_earlier_breaches(db: &TestDb, back_to_8: impl AsyncFnOnce()) {
    let store = db.open().await;
    let p = policy();
    let mut keys = Vec::new();
    for (n, title) in ["Breached", "Breached, resolved", "Not breached"]
        .into_iter()
        .enumerate()
    {
        let channel = format!("inc-20261128-schema-9-{n}");
        let d = declared(&*store, title, &channel).await;
        keys.push(d.incident.key);
        if n == 2 {
            continue;
        }
        let mut incident = d.incident;
        for minutes in [20, 40] {
            // The second "breach" stands for one announced again after a severity change,
            // as before schema 9: the first one counts.
            let at = t0() + Duration::minutes(minutes);
            incident.response_breached_at = None;
            incident = breach(&*store, &p, &incident, at).await;
        }
        if n == 1 {
            let at = t0() + Duration::minutes(50);
            let resolve = Command::Resolve { root_cause: None };
            let d = apply(&p, &incident, &user("bob"), &resolve, at).unwrap();
            store
                .commit(Change::new(&d, Some(incident.version), at))
                .await
                .unwrap();
        }
    }
    drop(store);
    back_to_8().await;
    let store = db.open().await;
    let breached: Vec<Option<DateTime<Utc>>> = {
        let mut breached = Vec::new();
        for key in &keys {
            breached.push(
                store
                    .incident(*key)
                    .await
                    .unwrap()
                    .unwrap()
                    .response_breached_at,
            );
        }
        breached
    };
    assert_eq!(
        breached,
        [Some(t0() + Duration::minutes(20)), None, None],
        "the first breach of the open incident only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_9_recalls_earlier_breaches_on_postgres() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let db = TestDb::Postgres(schema);
    let TestDb::Postgres(schema) = &db else {
        unreachable!()
    };
    let (url, s) = (schema.url.clone(), schema.schema.clone());
    schema_9_recalls_earlier_breaches(&db, async || {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "DELETE FROM {s}.schema_migrations WHERE version >= 9;
                 ALTER TABLE {s}.incidents DROP COLUMN response_breached_at;"
            ))
            .await
            .unwrap();
    })
    .await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_9_recalls_earlier_breaches_on_sqlite() {
    let db = TestDb::sqlite();
    let TestDb::Sqlite(dir) = &db else {
        unreachable!()
    };
    let path = dir.path().join("warroom.db");
    schema_9_recalls_earlier_breaches(&db, async || {
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(
                "DELETE FROM schema_migrations WHERE version >= 9;
                 ALTER TABLE incidents DROP COLUMN response_breached_at;",
            )
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn sqlite_data_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warroom.db");
    let store: Arc<dyn Store> = Arc::new(
        warroom::store::sqlite::SqliteStore::open(&path)
            .await
            .unwrap(),
    );
    let d = declared(&*store, "DB down", "inc-20261128-db-down").await;
    drop(store);
    let reopened = warroom::store::sqlite::SqliteStore::open(&path)
        .await
        .unwrap();
    reopened.ping().await.unwrap();
    assert_eq!(
        reopened.incident(d.incident.key).await.unwrap(),
        Some(d.incident)
    );
    assert_eq!(
        reopened.allocate_incident_key().await.unwrap(),
        IncidentKey(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_data_survives_reconnecting_and_migration_is_idempotent() {
    let Some(db) = PgSchema::create().await else {
        return;
    };
    let first = db.store().await;
    let d = declared(&*first, "DB down", "inc-20261128-db-down").await;
    // Two more replicas start at once: both migrate (a no-op) and see the same data.
    let (second, third) = tokio::join!(db.store(), db.store());
    second.ping().await.unwrap();
    third.ping().await.unwrap();
    assert_eq!(
        second.incident(d.incident.key).await.unwrap(),
        Some(d.incident)
    );
    db.cleanup().await;
}

/// While another replica holds some heads locked (its claim is in flight), a claim fills its
/// limit from the heads after them instead of coming back short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_skips_locked_heads_and_still_fills_its_batch_on_postgres() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let store = schema.store().await;
    for i in 0..6 {
        declared(
            &*store,
            &format!("incident {i}"),
            &format!("inc-20261128-l{i}"),
        )
        .await;
    }
    let (mut db, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let other = db.transaction().await.unwrap();
    let locked: Vec<i64> = other
        .query(
            &format!(
                "SELECT id FROM {0}.outbox WHERE id IN (SELECT MIN(id) FROM {0}.outbox GROUP BY incident) \
                 ORDER BY id LIMIT 3 FOR UPDATE",
                schema.schema
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(locked.len(), 3);
    let now = t0() + Duration::minutes(1);
    let claimed = store
        .claim_outbox("console", now, "r2", now + Duration::minutes(1), 3)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3, "three heads were free");
    let incidents: HashSet<_> = claimed.iter().map(|item| item.incident).collect();
    assert_eq!(incidents.len(), 3, "one head per incident");
    assert!(claimed.iter().all(|item| !locked.contains(&item.id)));
    other.rollback().await.unwrap();
    schema.cleanup().await;
}

/// PostgreSQL: rows behind a head that backs off wait for its next attempt too, so a claim
/// passes them over on their due time; the head and then they go out when it comes. A change
/// with an urgent row does not touch the head while it is out (leased); the head is raised to
/// urgent when it is put back for a retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_behind_a_head_that_backs_off_wait_for_it_on_postgres() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let store = schema.store().await;
    let mut d = declared(&*store, "Backing off", "inc-20261128-backing-off").await;
    let now = t0();
    let retry_at = now + Duration::minutes(2);
    deliver_everything(&*store, now).await;
    let topic = Effect::SetTopic {
        channel: d.incident.channel.clone(),
        topic: "t".into(),
    };
    let invite = Effect::Invite {
        channel: d.incident.channel.clone(),
        users: vec![user("bob")],
    };
    // The first topic goes out before the invitation is decided.
    commit_with_the_head_out(
        &*store,
        &mut d,
        [vec![topic.clone()], vec![invite, topic]],
        now,
    )
    .await;
    let key = d.incident.key.0;
    let rows = || pending_rows(&schema, key);
    let before = rows().await;
    assert_eq!(
        before.iter().map(|r| r.2).collect::<Vec<_>>(),
        [false, true, false],
        "the leased topic is left as it was: {before:?}"
    );
    let head_id = before[0].0;
    store
        .outbox_failed(head_id, "a", "rate limited", Some(retry_at))
        .await
        .unwrap();
    let due = rows().await;
    assert_eq!(
        due.iter().map(|r| (r.1, r.2)).collect::<Vec<_>>(),
        [(retry_at, true), (retry_at, true), (retry_at, false)],
        "{due:?}"
    );
    // A lost lease changes nothing, behind the head or on it.
    assert!(matches!(
        store
            .outbox_failed(head_id, "a", "again", Some(retry_at + Duration::hours(1)))
            .await,
        Err(StoreError::LeaseLost(_))
    ));
    assert_eq!(rows().await, due);
    let claimed_at = |at| {
        let store = store.clone();
        async move {
            store
                .claim_outbox("console", at, "b", at + Duration::minutes(1), 100)
                .await
                .unwrap()
                .iter()
                .map(|i| i.id)
                .collect::<Vec<_>>()
        }
    };
    assert!(claimed_at(now + Duration::minutes(1)).await.is_empty());
    assert_eq!(claimed_at(retry_at).await, [head_id]);
    store
        .outbox_delivered(head_id, "b", retry_at)
        .await
        .unwrap();
    assert_eq!(claimed_at(retry_at).await, [due[1].0]);
    schema.cleanup().await;
}

/// A change is one statement on PostgreSQL. A change that fires a timer and plans a newer one
/// of its kind records the fired timer as fired (the statement's supersede leaves it out, so
/// the outcome does not hang on the order PostgreSQL runs the parts in), and supersedes the
/// other pending timer of its kind. A change with nothing but an event, which has no
/// parameter for the time, is written too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fired_timer_stays_fired_beside_newer_timers_of_its_kind_on_postgres() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let store = schema.store().await;
    let d = declared(&*store, "Fired", "inc-20261128-fired").await;
    let key = d.incident.key;
    // A second pending reminder beside the declared one (fence 0, due at +30m).
    let mut extra = d.clone();
    extra.events.clear();
    extra.effects.clear();
    extra.timers = vec![TimerRequest {
        kind: TimerKind::StatusReminder,
        due_at: t0() + Duration::hours(3),
        fence: 0,
    }];
    store
        .commit(Change::new(&extra, Some(1), t0()))
        .await
        .unwrap();
    let due = t0() + Duration::minutes(30);
    let claimed = store
        .claim_due_timers(due, "a", due + Duration::minutes(1), 1)
        .await
        .unwrap();
    assert_eq!((claimed.len(), claimed[0].due_at), (1, due));
    let fired = warroom::core::decide::fire_timer(
        &policy(),
        &extra.incident,
        TimerKind::StatusReminder,
        due,
        0,
        due,
    )
    .unwrap();
    let newer = [TimerRequest {
        kind: TimerKind::StatusReminder,
        due_at: t0() + Duration::hours(5),
        fence: 1,
    }];
    let mut change = Change::new(&fired, Some(2), due);
    change.timers = &newer;
    change.fired_timer = Some((claimed[0].id, "a"));
    store.commit(change).await.unwrap();

    let events_before = store.timeline(key).await.unwrap().len();
    let only_an_event = apply(
        &policy(),
        &fired.incident,
        &user("bob"),
        &Command::Update("just this".into()),
        due,
    )
    .unwrap();
    let mut change = Change::new(&only_an_event, Some(3), due);
    change.timers = &[];
    change.outbox = &[];
    store.commit(change).await.unwrap();
    assert_eq!(store.timeline(key).await.unwrap().len(), events_before + 1);

    let (db, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let states: Vec<(i64, String, bool)> = db
        .query(
            &format!(
                "SELECT fence, state, fired_at IS NOT NULL FROM {}.timers \
                 WHERE incident = $1 AND kind = 'status_reminder' ORDER BY id",
                schema.schema
            ),
            &[&key.0],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(
        states,
        vec![
            (0, "fired".to_string(), true),
            (0, "superseded".to_string(), false),
            (1, "pending".to_string(), false),
        ]
    );
    schema.cleanup().await;
}
