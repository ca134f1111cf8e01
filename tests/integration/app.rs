//! The app on a real store with a virtual clock: timers across restarts and replicas, outbox
//! delivery and retries, concurrent commands. Each test runs on SQLite and on PostgreSQL.

use crate::support::TestDb;
use async_trait::async_trait;
use chrono::{Duration, TimeZone, Utc};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use warroom::app::clock::{Clock, VirtualClock};
use warroom::app::{App, Origin};
use warroom::chat::{Delivered, DeliveryError, Sink};
use warroom::core::{ChannelTarget, Effect, EventKind, IncidentKey, Platform, Severity, UserRef};
use warroom::store::{OutboxItem, Store};

/// Records delivered effects; fails deliveries on demand; can let another replica steal the
/// lease of the first delivery of an incident (by moving the clock past it and claiming the
/// row: that incident's head has the lowest id of all pending rows, so it is the one taken).
type Thief = (Arc<dyn Store>, Arc<VirtualClock>, IncidentKey);

#[derive(Default)]
pub struct RecordingSink {
    pub delivered: Mutex<Vec<Effect>>,
    pub failures: Mutex<VecDeque<DeliveryError>>,
    pub steal: Mutex<Option<Thief>>,
}

#[async_trait]
impl Sink for RecordingSink {
    fn destination(&self) -> &'static str {
        "console"
    }
    async fn deliver(&self, item: &OutboxItem) -> Result<Delivered, DeliveryError> {
        if let Some(failure) = self.failures.lock().unwrap().pop_front() {
            return Err(failure);
        }
        let steal = {
            let mut steal = self.steal.lock().unwrap();
            match &*steal {
                Some((_, _, incident)) if *incident == item.incident => steal.take(),
                _ => None,
            }
        };
        if let Some((store, clock, _)) = steal {
            let now = clock.advance(Duration::minutes(2));
            let stolen = store
                .claim_outbox("console", now, "thief", now + Duration::minutes(5), 1)
                .await
                .unwrap();
            assert_eq!(stolen.iter().map(|s| s.id).collect::<Vec<_>>(), [item.id]);
        }
        self.delivered.lock().unwrap().push(item.effect.clone());
        Ok(Delivered::Done)
    }
}

impl RecordingSink {
    fn texts(&self) -> Vec<String> {
        self.delivered
            .lock()
            .unwrap()
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect()
    }
}

/// The default policy without escalation steps, and with response targets out of reach: the
/// tests using it are about reminders, delivery and concurrency. Escalation has its own tests.
fn app(store: Arc<dyn Store>, clock: Arc<VirtualClock>) -> App {
    let mut policy = warroom::config::load(None).unwrap().policy;
    policy.escalation.clear();
    for severity in &mut policy.severities {
        severity.respond_within = Duration::days(30);
    }
    App::new(store, policy, clock, Duration::seconds(60))
}

fn origin(channel: &str, user: &str) -> Origin {
    Origin {
        platform: Platform::Console,
        channel: channel.into(),
        actor: UserRef::parse(user).unwrap(),
        request: None,
    }
}

fn clock() -> Arc<VirtualClock> {
    Arc::new(VirtualClock::starting_at(
        Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap(),
    ))
}

const CHANNEL: &str = "inc-20261128-payments-down";

async fn declare(app: &App) {
    let reply = app
        .handle_command(&origin("general", "alice"), "declare Payments down")
        .await
        .unwrap();
    assert!(serde_json::to_string(&reply).unwrap().contains(CHANNEL));
}

async fn reminders(store: &dyn Store) -> Vec<i64> {
    let incident = store.incident_by_channel(CHANNEL).await.unwrap().unwrap();
    store
        .timeline(incident.key)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::ReminderSent { late_by_seconds } => Some(late_by_seconds),
            _ => None,
        })
        .collect()
}

pub async fn overdue_reminders_fire_once_after_a_restart_and_say_how_late(db: &TestDb) {
    let store = db.open().await;
    let clock = clock();
    declare(&app(store.clone(), clock.clone())).await;
    // warroom is down for two hours; a new process starts on the same store.
    clock.advance(Duration::hours(2));
    let restarted = app(db.open().await, clock.clone());
    assert_eq!(
        restarted.run_due_timers().await.unwrap(),
        1,
        "one overdue reminder, not four"
    );
    assert_eq!(
        restarted.run_due_timers().await.unwrap(),
        0,
        "and only once"
    );
    assert_eq!(reminders(&*store).await, [90 * 60]);
    let sink = RecordingSink::default();
    restarted.dispatch_outbox(&sink).await.unwrap();
    let texts = sink.texts().join("\n");
    assert!(texts.contains("This reminder is 1h 30m late"), "{texts}");
    // The cadence resumes from now, not from the missed slots.
    clock.advance(Duration::minutes(14));
    assert_eq!(restarted.run_due_timers().await.unwrap(), 0);
    clock.advance(Duration::minutes(2));
    assert_eq!(restarted.run_due_timers().await.unwrap(), 1);
}

pub async fn two_replicas_fire_each_reminder_exactly_once(db: &TestDb) {
    let store = db.open().await;
    let clock = clock();
    let a = Arc::new(app(store.clone(), clock.clone()));
    let b = Arc::new(app(db.open().await, clock.clone()));
    declare(&a).await;
    for _ in 0..3 {
        clock.advance(Duration::minutes(31));
        let (fa, fb) = tokio::join!(a.run_due_timers(), b.run_due_timers());
        assert_eq!(fa.unwrap() + fb.unwrap(), 1);
    }
    assert_eq!(reminders(&*store).await.len(), 3);
}

/// A backlog larger than one claim reports progress after each batch (what keeps `/readyz`
/// up while the scheduler works through it).
pub async fn a_long_backlog_reports_progress_batch_by_batch(db: &TestDb) {
    let store = db.open().await;
    let clock = clock();
    let app = app(store.clone(), clock.clone());
    for n in 0..150 {
        app.handle_command(&origin("general", "alice"), &format!("declare Outage {n}"))
            .await
            .unwrap();
    }
    clock.advance(Duration::minutes(31));
    let batches = std::sync::atomic::AtomicUsize::new(0);
    let fired = app
        .run_due_timers_with(&|| {
            batches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .await
        .unwrap();
    assert_eq!(fired, 150, "one status reminder each");
    assert_eq!(batches.into_inner(), 2, "claims of 100");
}

pub async fn an_update_resets_the_reminder_and_resolve_stops_it(db: &TestDb) {
    let store = db.open().await;
    let clock = clock();
    let app = app(store.clone(), clock.clone());
    declare(&app).await;
    clock.advance(Duration::minutes(20));
    assert!(
        app.handle_command(&origin(CHANNEL, "bob"), "update failover started")
            .await
            .is_none()
    );
    clock.advance(Duration::minutes(20));
    assert_eq!(
        app.run_due_timers().await.unwrap(),
        0,
        "40 minutes after declaring, 20 after the update"
    );
    clock.advance(Duration::minutes(11));
    assert_eq!(app.run_due_timers().await.unwrap(), 1);
    assert!(
        app.handle_command(&origin(CHANNEL, "bob"), "resolve")
            .await
            .is_none()
    );
    clock.advance(Duration::hours(3));
    assert_eq!(
        app.run_due_timers().await.unwrap(),
        0,
        "no reminders for a resolved incident"
    );
    let resolved_at = clock.now() - Duration::hours(3);
    assert_eq!(
        store.next_timer_due().await.unwrap(),
        Some(resolved_at + Duration::hours(24)),
        "only the postmortem reminders are left"
    );
}

pub async fn deliveries_keep_order_retry_after_the_platform_says_and_give_up_on_permanent_errors(
    db: &TestDb,
) {
    let store = db.open().await;
    let clock = clock();
    let app = app(store.clone(), clock.clone());
    declare(&app).await;
    let sink = RecordingSink::default();
    sink.failures
        .lock()
        .unwrap()
        .push_back(DeliveryError::Retry {
            after: Some(Duration::seconds(30)),
            reason: "429 ratelimited".into(),
        });
    assert_eq!(
        app.dispatch_outbox(&sink).await.unwrap(),
        0,
        "nothing is posted before the channel exists"
    );
    assert_eq!(store.outbox_counts().await.unwrap().pending, 4);
    clock.advance(Duration::seconds(29));
    assert_eq!(
        app.dispatch_outbox(&sink).await.unwrap(),
        0,
        "Retry-After is honoured"
    );
    clock.advance(Duration::seconds(2));
    assert_eq!(app.dispatch_outbox(&sink).await.unwrap(), 4);
    let delivered = sink.delivered.lock().unwrap().clone();
    assert!(matches!(&delivered[0], Effect::CreateChannel { .. }));
    assert!(matches!(
        &delivered[1],
        Effect::Post {
            channel: ChannelTarget::Incident(_),
            pin: true,
            ..
        }
    ));
    assert!(matches!(
        &delivered[2],
        Effect::Post {
            slot: Some(warroom::core::Slot::Summary),
            pin: true,
            ..
        }
    ));
    assert!(
        matches!(&delivered[3], Effect::Post { channel: ChannelTarget::Named(n), .. } if n == "incidents")
    );
    assert_eq!(
        app.dispatch_outbox(&sink).await.unwrap(),
        0,
        "nothing is sent twice"
    );

    // A permanent refusal is given up, and the incident's later messages still go out.
    app.handle_command(&origin("general", "bob"), "declare Search down")
        .await
        .unwrap();
    sink.failures
        .lock()
        .unwrap()
        .push_back(DeliveryError::Permanent {
            reason: "400 invalid_name".into(),
        });
    assert_eq!(app.dispatch_outbox(&sink).await.unwrap(), 3);
    let counts = store.outbox_counts().await.unwrap();
    assert_eq!((counts.pending, counts.failed, counts.delivered), (0, 1, 7));
}

/// A sink whose deliveries each wait until `width` of them are in flight at once: a dispatcher
/// that sent one row at a time would never get past the first.
struct GatheringSink {
    width: usize,
    in_flight: tokio::sync::watch::Sender<usize>,
    delivered: Mutex<Vec<IncidentKey>>,
}

#[async_trait]
impl Sink for GatheringSink {
    fn destination(&self) -> &'static str {
        "console"
    }
    async fn deliver(&self, item: &OutboxItem) -> Result<Delivered, DeliveryError> {
        let mut gathered = self.in_flight.subscribe();
        self.in_flight.send_modify(|n| *n += 1);
        let _ = gathered.wait_for(|n| *n >= self.width).await;
        self.delivered.lock().unwrap().push(item.incident);
        Ok(Delivered::Done)
    }
}

pub async fn incidents_are_delivered_side_by_side(db: &TestDb) {
    let store = db.open().await;
    let app = app(store.clone(), clock());
    for title in [
        "Payments down",
        "Search down",
        "Login errors",
        "Checkout slow",
    ] {
        app.handle_command(&origin("general", "alice"), &format!("declare {title}"))
            .await
            .unwrap();
    }
    let sink = GatheringSink {
        width: 4,
        in_flight: tokio::sync::watch::Sender::new(0),
        delivered: Mutex::new(Vec::new()),
    };
    // (The time limit only turns a dispatcher that waits forever into a failure.)
    let delivered = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        app.dispatch_outbox(&sink),
    )
    .await
    .expect("the four incidents' first rows were in flight together")
    .unwrap();
    assert_eq!(delivered, 16);
    // Each incident's rows still went out in order, one at a time: the first four deliveries
    // were the four incidents' first rows.
    let order = sink.delivered.lock().unwrap().clone();
    let mut first: Vec<_> = order[..4].to_vec();
    first.sort();
    first.dedup();
    assert_eq!(first.len(), 4, "{order:?}");
    let counts = store.outbox_counts().await.unwrap();
    assert_eq!((counts.pending, counts.delivered), (0, 16));
}

pub async fn a_delivery_that_outlives_its_lease_does_not_stop_the_pass(db: &TestDb) {
    let store = db.open().await;
    let clock = clock();
    let app = app(store.clone(), clock.clone());
    declare(&app).await;
    app.handle_command(&origin("general", "bob"), "declare Search down")
        .await
        .unwrap();
    let first = store
        .incident_by_channel(CHANNEL)
        .await
        .unwrap()
        .unwrap()
        .key;
    // The first incident's first delivery takes longer than the lease; another replica claims
    // the row meanwhile.
    let sink = RecordingSink {
        steal: Mutex::new(Some((store.clone(), clock.clone(), first))),
        ..RecordingSink::default()
    };
    // Delivered: the stolen row (its lease lost), then all of the second incident.
    assert_eq!(
        app.dispatch_outbox(&sink).await.unwrap(),
        5,
        "the pass went on after losing one lease"
    );
    let counts = store.outbox_counts().await.unwrap();
    assert_eq!(
        (counts.pending, counts.delivered),
        (4, 4),
        "the first incident waits for the thief's row"
    );
}

pub async fn concurrent_commands_on_one_incident_both_land(db: &TestDb) {
    let store = db.open().await;
    let clock = clock();
    let a = Arc::new(app(store.clone(), clock.clone()));
    let b = Arc::new(app(db.open().await, clock.clone()));
    declare(&a).await;
    let (bob, carol) = (origin(CHANNEL, "bob"), origin(CHANNEL, "carol"));
    let (ra, rb) = tokio::join!(
        a.handle_command(&bob, "ack"),
        b.handle_command(&carol, "sev P1")
    );
    assert!(ra.is_none() && rb.is_none(), "{ra:?} {rb:?}");
    let incident = store.incident_by_channel(CHANNEL).await.unwrap().unwrap();
    assert_eq!(incident.severity, Severity::P1);
    assert!(incident.acknowledged_at.is_some());
    assert_eq!(incident.version, 3);
    assert_eq!(store.timeline(incident.key).await.unwrap().len(), 3);
}

pub async fn commands_outside_an_incident_channel_list_the_open_incidents(db: &TestDb) {
    let store = db.open().await;
    let app = app(store.clone(), clock());
    declare(&app).await;
    let reply = app
        .handle_command(&origin("general", "bob"), "ack")
        .await
        .unwrap();
    let text = serde_json::to_string(&reply).unwrap();
    assert!(text.contains("not an incident channel"), "{text}");
    assert!(text.contains(CHANNEL), "{text}");
    let incident = store.incident_by_channel(CHANNEL).await.unwrap().unwrap();
    assert!(incident.acknowledged_at.is_none(), "nothing changed");
}

pub async fn a_second_declaration_with_the_same_title_gets_a_suffixed_channel(db: &TestDb) {
    let store = db.open().await;
    let app = app(store.clone(), clock());
    declare(&app).await;
    let reply = app
        .handle_command(&origin("general", "bob"), "declare Payments down!")
        .await
        .unwrap();
    assert!(
        serde_json::to_string(&reply)
            .unwrap()
            .contains("inc-20261128-payments-down-2")
    );
}

/// A sink whose deliveries take a while (a slow platform); says when one started and records
/// what it delivered with its attempt number. With `hang`, a delivery never finishes.
struct SlowSink {
    started: Arc<tokio::sync::Notify>,
    hang: bool,
    delivered: Mutex<Vec<(i64, i32)>>,
}

#[async_trait]
impl Sink for SlowSink {
    fn destination(&self) -> &'static str {
        "console"
    }
    async fn deliver(&self, item: &OutboxItem) -> Result<Delivered, DeliveryError> {
        self.started.notify_one();
        if self.hang {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        self.delivered
            .lock()
            .unwrap()
            .push((item.id, item.attempts));
        Ok(Delivered::Done)
    }
}

/// Start the loops of a replica delivering to `sink`; returns once a delivery has started.
async fn busy_replica(
    db: &TestDb,
    clock: &Arc<VirtualClock>,
    sink: Arc<SlowSink>,
) -> (Arc<App>, Vec<tokio::task::JoinHandle<()>>) {
    let leaving = Arc::new(app(db.open().await, clock.clone()));
    declare(&leaving).await;
    let dispatcher = tokio::spawn(warroom::app::runner::dispatcher_loop(
        leaving.clone(),
        sink.clone(),
        std::time::Duration::from_millis(20),
    ));
    let scheduler = tokio::spawn(warroom::app::runner::scheduler_loop(
        leaving.clone(),
        Arc::new(warroom::http::Heartbeat::default()),
        std::time::Duration::from_millis(20),
    ));
    sink.started.notified().await;
    (leaving, vec![dispatcher, scheduler])
}

/// SIGTERM in the middle of a slow delivery: the row in hand is finished, the rows after it
/// are not started, and another replica delivers them at once, without waiting for the lease.
pub async fn a_stopping_replica_finishes_the_row_in_hand_and_hands_the_rest_over(db: &TestDb) {
    let clock = clock();
    let sink = Arc::new(SlowSink {
        started: Arc::new(tokio::sync::Notify::new()),
        hang: false,
        delivered: Mutex::new(Vec::new()),
    });
    let (leaving, loops) = busy_replica(db, &clock, sink.clone()).await;
    let pending = leaving.store.health_counts().await.unwrap().outbox_pending;
    assert!(pending > 2, "{pending}");
    warroom::app::runner::shut_down(&leaving, loops, std::time::Duration::from_secs(5)).await;
    let finished = sink.delivered.lock().unwrap().clone();
    assert_eq!(
        finished.len(),
        1,
        "the row in hand, and no other: {finished:?}"
    );

    let staying = app(db.open().await, clock.clone());
    let rest = AttemptsSink::default();
    let delivered = staying.dispatch_outbox(&rest).await.unwrap();
    assert_eq!(delivered as i64, pending - 1, "the rest, at once");
}

/// A delivery that never finishes: after the grace period the loops are stopped and the
/// leases released; another replica sends everything at once, the interrupted row counted as
/// an attempt (it may have reached the platform).
pub async fn a_stopping_replica_hands_its_work_over_at_once(db: &TestDb) {
    let clock = clock();
    let sink = Arc::new(SlowSink {
        started: Arc::new(tokio::sync::Notify::new()),
        hang: true,
        delivered: Mutex::new(Vec::new()),
    });
    let (leaving, loops) = busy_replica(db, &clock, sink).await;
    let pending = leaving.store.health_counts().await.unwrap().outbox_pending;
    let peek = db.open().await;
    let now = clock.now();
    assert!(
        peek.claim_outbox("console", now, "peek", now + Duration::seconds(1), 100)
            .await
            .unwrap()
            .is_empty(),
        "leased to the leaving replica"
    );
    warroom::app::runner::shut_down(&leaving, loops, std::time::Duration::from_millis(300)).await;

    let staying = app(db.open().await, clock.clone());
    assert_ne!(staying.owner, leaving.owner);
    let sink = AttemptsSink::default();
    let delivered = staying.dispatch_outbox(&sink).await.unwrap();
    assert_eq!(delivered as i64, pending);
    // The leaving replica held the incident's head row (rows go out in order); its claim
    // counts, the rows behind it get their first try.
    let attempts = sink.0.lock().unwrap().clone();
    assert_eq!(attempts[0], 2, "{attempts:?}");
    assert!(attempts[1..].iter().all(|a| *a == 1), "{attempts:?}");
}

/// The chat refs keep an incident's channel link once the channel exists, and only then: a
/// message delivered before the channel's id is recorded finds it when it is.
pub async fn an_incident_channel_link_is_found_once_the_channel_exists(db: &TestDb) {
    let store = db.open().await;
    let app = app(store.clone(), clock());
    declare(&app).await;
    let key = store
        .incident_by_channel(CHANNEL)
        .await
        .unwrap()
        .unwrap()
        .key;
    let refs = warroom::chat::ChatRefs::new(store.clone(), "slack");
    assert_eq!(
        refs.incident_channel(key).await.unwrap(),
        None,
        "no channel yet"
    );
    assert_eq!(refs.channel(CHANNEL).await.unwrap(), None);
    assert_eq!(
        refs.incident_channel(IncidentKey(key.0 + 100))
            .await
            .unwrap(),
        None,
        "no such incident"
    );

    // Recorded by another replica's sink: not kept as missing here.
    store
        .set_chat_ref("slack", &format!("channel:{CHANNEL}"), "C0INCIDENT")
        .await
        .unwrap();
    let link = Some((CHANNEL.to_string(), "C0INCIDENT".to_string()));
    assert_eq!(refs.incident_channel(key).await.unwrap(), link);
    assert_eq!(refs.incident_channel(key).await.unwrap(), link, "kept");
    assert_eq!(
        refs.channel(CHANNEL).await.unwrap().as_deref(),
        Some("C0INCIDENT")
    );
    // Per platform.
    let discord = warroom::chat::ChatRefs::new(store.clone(), "discord");
    assert_eq!(discord.incident_channel(key).await.unwrap(), None);

    // The incident channel a platform id belongs to (asked by every command): not kept while
    // unknown, kept once found (a platform id is never another channel's).
    assert_eq!(refs.owner("C0OTHER").await.unwrap(), None);
    store
        .set_chat_ref("slack", "channel-id:C0OTHER", "inc-20261128-other")
        .await
        .unwrap();
    assert_eq!(
        refs.owner("C0OTHER").await.unwrap().as_deref(),
        Some("inc-20261128-other")
    );
    store
        .set_chat_ref("slack", "channel-id:C0OTHER", "inc-20261128-changed")
        .await
        .unwrap();
    assert_eq!(
        refs.owner("C0OTHER").await.unwrap().as_deref(),
        Some("inc-20261128-other"),
        "kept"
    );
}

/// A sink that holds every delivery until `release` is notified, counting those started and
/// recording the rows it delivered.
struct HeldSink {
    started: std::sync::atomic::AtomicUsize,
    release: tokio::sync::Semaphore,
    delivered: Mutex<Vec<i64>>,
}

impl Default for HeldSink {
    fn default() -> HeldSink {
        HeldSink {
            started: Default::default(),
            release: tokio::sync::Semaphore::new(0),
            delivered: Default::default(),
        }
    }
}

#[async_trait]
impl Sink for HeldSink {
    fn destination(&self) -> &'static str {
        "console"
    }
    async fn deliver(&self, item: &OutboxItem) -> Result<Delivered, DeliveryError> {
        self.started
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.release.acquire().await.unwrap().forget();
        self.delivered.lock().unwrap().push(item.id);
        Ok(Delivered::Done)
    }
}

/// A claimed batch outlives its lease (its first deliveries hang) and another replica takes
/// the rows over: a row of the batch that had not started yet is not sent by the first
/// replica, whose lease on it is checked again before it starts.
pub async fn a_row_started_after_its_lease_ran_out_is_left_to_its_new_owner(db: &TestDb) {
    let clock = clock();
    let leaving = Arc::new(app(db.open().await, clock.clone()));
    // Nine incidents: nine heads in one claim, one more than are delivered at once.
    for n in 0..9 {
        leaving
            .handle_command(&origin("general", "alice"), &format!("declare Outage {n}"))
            .await
            .unwrap();
    }
    let sink = Arc::new(HeldSink::default());
    let dispatch = tokio::spawn({
        let (leaving, sink) = (leaving.clone(), sink.clone());
        async move { leaving.dispatch_outbox(sink.as_ref()).await }
    });
    while sink.started.load(std::sync::atomic::Ordering::SeqCst) < 8 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    // The lease (60 s) runs out while those eight hang; another replica takes every head.
    clock.advance(Duration::seconds(120));
    let now = clock.now();
    let taken = db
        .open()
        .await
        .claim_outbox("console", now, "other", now + Duration::seconds(60), 100)
        .await
        .unwrap();
    assert_eq!(taken.len(), 9, "every head was the leaving replica's");

    sink.release.add_permits(100);
    dispatch.await.unwrap().unwrap();
    let delivered = sink.delivered.lock().unwrap().clone();
    assert_eq!(
        delivered.len(),
        8,
        "only the eight already in hand went out, not the ninth: {delivered:?}"
    );
    let ninth: Vec<i64> = taken
        .iter()
        .map(|item| item.id)
        .filter(|id| !delivered.contains(id))
        .collect();
    assert_eq!(ninth.len(), 1, "{ninth:?}");
}

/// Records the attempt number of each delivery.
#[derive(Default)]
struct AttemptsSink(Mutex<Vec<i32>>);

#[async_trait]
impl Sink for AttemptsSink {
    fn destination(&self) -> &'static str {
        "console"
    }
    async fn deliver(&self, item: &OutboxItem) -> Result<Delivered, DeliveryError> {
        self.0.lock().unwrap().push(item.attempts);
        Ok(Delivered::Done)
    }
}

on_both_stores!(
    an_incident_channel_link_is_found_once_the_channel_exists,
    a_row_started_after_its_lease_ran_out_is_left_to_its_new_owner,
    a_stopping_replica_hands_its_work_over_at_once,
    a_stopping_replica_finishes_the_row_in_hand_and_hands_the_rest_over,
    overdue_reminders_fire_once_after_a_restart_and_say_how_late,
    two_replicas_fire_each_reminder_exactly_once,
    an_update_resets_the_reminder_and_resolve_stops_it,
    a_long_backlog_reports_progress_batch_by_batch,
    deliveries_keep_order_retry_after_the_platform_says_and_give_up_on_permanent_errors,
    a_delivery_that_outlives_its_lease_does_not_stop_the_pass,
    incidents_are_delivered_side_by_side,
    concurrent_commands_on_one_incident_both_land,
    commands_outside_an_incident_channel_list_the_open_incidents,
    a_second_declaration_with_the_same_title_gets_a_suffixed_channel,
    one_commit_wakes_the_dispatcher_of_every_destination_it_writes_for,
);

/// An app on its own connection to `db`, on the system clock, whose loops the store wakes
/// (on PostgreSQL, by the other replicas' NOTIFYs too).
async fn watching_app(db: &TestDb, policy: warroom::core::Policy) -> Arc<App> {
    let clock: Arc<dyn warroom::app::clock::Clock> = Arc::new(warroom::app::clock::SystemClock);
    let app = Arc::new(App::new(
        db.open().await,
        policy,
        clock,
        Duration::seconds(60),
    ));
    app.store
        .watch(app.timers_changed.clone(), app.outbox_changed.clone());
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_committed_by_another_replica_wakes_a_sleeping_scheduler_on_postgres() {
    let Some(schema) = crate::support::PgSchema::create().await else {
        return;
    };
    let db = TestDb::Postgres(schema);
    let policy = warroom::config::load(None).unwrap().policy;
    let sleeper = watching_app(&db, policy.clone()).await;
    let heartbeat = Arc::new(warroom::app::runner::Heartbeat::default());
    // It polls only once a minute: anything sooner is the NOTIFY.
    let task = tokio::spawn(warroom::app::runner::scheduler_loop(
        sleeper.clone(),
        heartbeat.clone(),
        std::time::Duration::from_secs(60),
    ));
    while heartbeat.last().is_none() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let other = watching_app(&db, policy).await;
    other
        .handle_command(&origin("general", "alice"), "declare Payments down")
        .await
        .unwrap();
    let store = db.open().await;
    let mut escalated = false;
    for _ in 0..50 {
        let incident = store
            .incident_by_channel(&format!(
                "inc-{}-payments-down",
                chrono::Utc::now().format("%Y%m%d")
            ))
            .await
            .unwrap();
        if let Some(incident) = incident
            && store
                .timeline(incident.key)
                .await
                .unwrap()
                .iter()
                .any(|e| e.kind.name() == "escalated")
        {
            escalated = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    task.abort();
    assert!(
        escalated,
        "the sleeping scheduler was not woken by the other replica's commit"
    );
    db.cleanup().await;
}

/// Counts the deliveries of one destination.
struct CountingSink {
    destination: &'static str,
    delivered: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Sink for CountingSink {
    fn destination(&self) -> &'static str {
        self.destination
    }
    async fn deliver(&self, _item: &OutboxItem) -> Result<Delivered, DeliveryError> {
        self.delivered
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Delivered::Done)
    }
}

/// Dispatchers for `console` and `pagerduty` that poll only once a minute, and a P0's first
/// escalation step fired through their own app or, with `other_replica`, through another on
/// the same database. The firing is one commit with rows for both destinations (the page and
/// its note in the channel), and each dispatcher must be woken for its own rows well before
/// its poll.
async fn both_dispatchers_wake(db: &TestDb, other_replica: bool) {
    let mut policy = warroom::config::load(None).unwrap().policy;
    policy.pagerduty_services = ["oncall".to_string()].into();
    let sleeper = watching_app(db, policy.clone()).await;
    let sinks: Vec<Arc<CountingSink>> = ["console", "pagerduty"]
        .into_iter()
        .map(|destination| {
            Arc::new(CountingSink {
                destination,
                delivered: Default::default(),
            })
        })
        .collect();
    let mut loops: Vec<_> = sinks
        .iter()
        .map(|sink| {
            tokio::spawn(warroom::app::runner::dispatcher_loop(
                sleeper.clone(),
                sink.clone(),
                std::time::Duration::from_secs(60),
            ))
        })
        .collect();
    let worker = if other_replica {
        watching_app(db, policy).await
    } else {
        sleeper.clone()
    };
    worker
        .handle_command(
            &origin("general", "alice"),
            "declare Payments down --sev P0",
        )
        .await
        .unwrap();
    let delivered = |sink: &CountingSink| sink.delivered.load(std::sync::atomic::Ordering::SeqCst);
    // The declaration's rows (console only) go out, and both dispatchers sleep again.
    for _ in 0..100 {
        if worker.store.outbox_counts().await.unwrap().pending == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        delivered(&sinks[1]),
        0,
        "nothing paged before the step fires"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before: Vec<usize> = sinks.iter().map(|sink| delivered(sink)).collect();
    // The scheduler fires the first step, due at once.
    let heartbeat = Arc::new(warroom::app::runner::Heartbeat::default());
    loops.push(tokio::spawn(warroom::app::runner::scheduler_loop(
        worker.clone(),
        heartbeat,
        std::time::Duration::from_secs(60),
    )));
    let woken = || {
        sinks
            .iter()
            .zip(&before)
            .all(|(sink, before)| delivered(sink) > *before)
    };
    for _ in 0..100 {
        if woken() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    worker.stop();
    sleeper.stop();
    for task in loops {
        task.await.unwrap();
    }
    for (sink, before) in sinks.iter().zip(&before) {
        assert!(
            delivered(sink) > *before,
            "the {} dispatcher was not woken by the step's commit",
            sink.destination
        );
    }
}

async fn one_commit_wakes_the_dispatcher_of_every_destination_it_writes_for(db: &TestDb) {
    both_dispatchers_wake(db, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_replicas_commit_wakes_the_dispatcher_of_every_destination_on_postgres() {
    let Some(schema) = crate::support::PgSchema::create().await else {
        return;
    };
    let db = TestDb::Postgres(schema);
    both_dispatchers_wake(&db, true).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_whose_timer_meets_a_store_error_does_not_hold_back_the_others() {
    let db = TestDb::sqlite();
    let store = db.open().await;
    let clock = clock();
    let app = app(store.clone(), clock.clone());
    for n in 1..=6 {
        app.handle_command(&origin("general", "alice"), &format!("declare Outage {n}"))
            .await
            .unwrap();
    }
    // INC-1's row can no longer be read: its timer meets a store error every time it fires.
    let TestDb::Sqlite(dir) = &db else {
        unreachable!()
    };
    rusqlite::Connection::open(dir.path().join("warroom.db"))
        .unwrap()
        .execute("UPDATE incidents SET severity = 'P9' WHERE number = 1", [])
        .unwrap();
    clock.advance(Duration::minutes(61));
    let pass = app.run_due_timers().await;
    assert!(
        matches!(pass, Err(warroom::store::StoreError::Corrupt(_))),
        "the error is reported: {pass:?}"
    );
    for number in 2..=6 {
        assert_eq!(
            crate::support::count_events(&*store, IncidentKey(number), "reminder_sent").await,
            1,
            "INC-{number}'s reminder went out all the same"
        );
    }
}
