//! Orchestration: the only place that sequences I/O. Load state, ask the core, write the
//! decision (state, events, timers, outbox) in one transaction, then dispatch.

pub mod alerts;
pub mod clock;
pub mod runbook;
pub mod runner;

use crate::chat::{Delivered, DeliveryError, Sink};
use crate::core::command::{self, Command};
use crate::core::decide::{self, DeclareRequest, Refusal};
use crate::core::message::{ButtonAction, Message, Visibility};
use crate::core::{Decision, Incident, Platform, Policy, UserRef, channel, views};
use crate::store::wake::{OutboxSignals, Signal};
use crate::store::{Change, Store, StoreError, Timer};
use chrono::Duration;
use clock::Clock;
use futures_util::stream::{self, StreamExt};
use std::sync::Arc;
use tracing::Instrument;

/// How many times a command is re-decided when another writer got there first.
const CONFLICT_RETRIES: usize = 5;
/// How many incidents' timers one scheduler pass fires at the same time.
const TIMER_CONCURRENCY: usize = 16;
/// How many incidents' outbox rows one dispatcher delivers at the same time.
const OUTBOX_CONCURRENCY: usize = 8;
/// An outbox row that failed this many times is given up and reported.
const MAX_DELIVERY_ATTEMPTS: i32 = 10;
/// How long after it happened an acknowledgement, resolution or priority change of a
/// PagerDuty incident warroom has not opened is sent back for a retry (its `triggered` may be
/// late), rather than dropped.
const PAGERDUTY_REORDER: Duration = Duration::minutes(5);
/// What `handle_pagerduty` answers for an event that came before its incident: PagerDuty is
/// asked to send it again.
pub const PAGERDUTY_NOT_YET: &str = "not yet";
/// How often, at most, the scheduler looks for maintenance windows that started or ended.
const MAINTENANCE_CHECK_EVERY: Duration = Duration::seconds(15);
/// How many open incidents `list` and the "not an incident channel" answer show.
const LIST_LIMIT: i64 = 50;

/// Where a command came from.
#[derive(Clone, Debug)]
pub struct Origin {
    pub platform: Platform,
    /// The channel it was typed in.
    pub channel: String,
    pub actor: UserRef,
    /// A request that must be acted on once (a Slack slash command or button press, by its
    /// `trigger_id`, or its signature without one): recorded as an inbound event with the
    /// change it makes, so a replay of it changes nothing and is answered "already handled".
    pub request: Option<String>,
}

/// Source name of Slack requests (slash commands and button presses, by `trigger_id`) in the
/// inbound-event log.
pub const SLACK_REQUESTS_SOURCE: &str = "slack-request";

/// The running application: store, policy, clock and this replica's identity.
pub struct App {
    pub store: Arc<dyn Store>,
    pub policy: Policy,
    pub clock: Arc<dyn Clock>,
    /// Names this replica in leases.
    pub owner: String,
    pub lease: Duration,
    /// Raised when a timer is planned, so the scheduler can sleep less.
    pub timers_changed: Arc<Signal>,
    /// Raised for a destination when outbox rows are written for it, so its dispatcher
    /// delivers at once.
    pub outbox_changed: Arc<OutboxSignals>,
    /// Diagnostics, playbooks and changes; `None` until `with_runbooks`.
    pub runbooks: Option<Arc<runbook::Runbooks>>,
    /// What `/metrics` exports.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Set on shutdown: the loops stop claiming work and finish what they hold.
    stopping: std::sync::atomic::AtomicBool,
    /// Work the chat adapters run after answering a request (a slow command, a button press):
    /// shutdown waits for it.
    pub tasks: tokio_util::task::TaskTracker,
    /// How Alertmanager notifications become incidents; `None` until `with_alerts`.
    pub alerts: Option<alerts::AlertIntake>,
    /// Recurring maintenance windows and where windows are announced.
    pub maintenance: alerts::Maintenance,
    /// When (clock milliseconds) the scheduler last looked for maintenance windows' edges.
    maintenance_checked: std::sync::atomic::AtomicI64,
}

/// A lease lost to another replica is not an error for this pass: that replica now owns the
/// row and will finish it. Anything else is.
fn unless_lease_lost(result: Result<(), StoreError>) -> Result<(), StoreError> {
    match result {
        Err(StoreError::LeaseLost(what)) => {
            tracing::warn!(%what, "another replica took over; leaving it to them");
            Ok(())
        }
        other => other,
    }
}

/// The first free channel name from `base`, given the names in use that start with it.
fn pick_channel_name(base: &str, taken: &[String]) -> crate::core::ChannelName {
    channel::free_channel_name(base, |n| taken.iter().any(|t| t == n))
}

/// The answer to a signed request sent again (see `Origin::request`).
fn already_handled() -> Message {
    tracing::warn!("a signed request was sent again; it was not acted on twice");
    Message::notice(
        Visibility::Ephemeral,
        "This request was already handled: a signed request is acted on once.".to_string(),
    )
}

fn unavailable(error: &StoreError) -> Message {
    tracing::error!(%error, "store error while handling a request");
    Message::notice(
        Visibility::Ephemeral,
        format!(
            "warroom could not save or read incidents ({error}). Nothing was changed; please try again in a moment."
        ),
    )
}

impl App {
    pub fn new(
        store: Arc<dyn Store>,
        policy: Policy,
        clock: Arc<dyn Clock>,
        lease: Duration,
    ) -> App {
        let metrics = crate::metrics::Metrics::new();
        metrics.expect_commands();
        App {
            store,
            policy,
            clock,
            owner: replica_id(),
            lease,
            timers_changed: Arc::new(Signal::default()),
            outbox_changed: Arc::new(OutboxSignals::default()),
            runbooks: None,
            metrics: Arc::new(metrics),
            stopping: std::sync::atomic::AtomicBool::new(false),
            tasks: tokio_util::task::TaskTracker::new(),
            alerts: None,
            maintenance: alerts::Maintenance::default(),
            maintenance_checked: std::sync::atomic::AtomicI64::new(i64::MIN),
        }
    }

    /// Stop: the scheduler and dispatchers finish the timer or row in hand, claim nothing
    /// more, and return (sleeping loops are woken to see it).
    pub fn stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.timers_changed.raise();
        self.outbox_changed.raise_all();
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The app with the runbook engine.
    pub fn with_runbooks(mut self, runbooks: runbook::Runbooks) -> App {
        self.metrics.expect_kubernetes_calls();
        self.runbooks = Some(Arc::new(runbooks));
        self
    }

    /// Handle the text typed after `/incident`. Returns the direct answer to the person, if
    /// any; everything posted to channels goes through the outbox.
    pub async fn handle_command(&self, origin: &Origin, text: &str) -> Option<Message> {
        let command = match command::parse(text) {
            Ok(command) => command,
            Err(error) => {
                let name = error.command.map_or("unknown", |c| c.name());
                self.metrics.command(name, "invalid");
                return Some(views::usage(&error));
            }
        };
        let name = command.name().name();
        let span = tracing::info_span!(
            "command",
            command = name,
            platform = origin.platform.as_str(),
            channel = %origin.channel,
            incident = tracing::field::Empty,
        );
        async {
            let result = self.run_command(origin, command).await;
            self.answered(name, result)
        }
        .instrument(span)
        .await
    }

    /// The answer to command `name` that ended with `result`, counted by outcome.
    fn answered(&self, name: &str, result: Result<Option<Message>, StoreError>) -> Option<Message> {
        let (outcome, reply) = match result {
            Ok(reply) => ("ok", reply),
            Err(StoreError::Duplicate(_)) => ("duplicate", Some(already_handled())),
            Err(error) => ("error", Some(unavailable(&error))),
        };
        self.metrics.command(name, outcome);
        reply
    }

    /// A button was pressed.
    pub async fn handle_button(&self, origin: &Origin, action: &ButtonAction) -> Option<Message> {
        let (key, command) = match action {
            ButtonAction::Acknowledge { incident } => (Some(*incident), Command::Ack),
            ButtonAction::Resolve { incident } => {
                (Some(*incident), Command::Resolve { root_cause: None })
            }
            ButtonAction::Confirm { request } => (None, Command::Confirm(*request)),
            ButtonAction::Cancel { request } => (None, Command::Cancel(*request)),
            ButtonAction::Undo { request } => (None, Command::Undo(*request)),
        };
        let (key, command) = match (key, command) {
            (Some(key), command) => (key, command),
            (None, runbook) => {
                return match self.first_time(origin).await {
                    Ok(()) => self.runbook_button(origin, runbook).await,
                    // runbook_button counts the outcomes of what it runs.
                    refused => self.answered(runbook.name().name(), refused.map(|()| None)),
                };
            }
        };
        let name = command.name().name();
        let span = tracing::info_span!(
            "button",
            command = name,
            incident = %key,
            platform = origin.platform.as_str(),
        );
        async {
            let result = match self.store.incident(key).await {
                Ok(Some(incident)) => self.apply_with_retry(incident, origin, &command).await,
                Ok(None) => Ok(Some(views::refusal(format!("{key} does not exist.")))),
                Err(error) => Err(error),
            };
            self.answered(name, result)
        }
        .instrument(span)
        .await
    }

    async fn run_command(
        &self,
        origin: &Origin,
        command: Command,
    ) -> Result<Option<Message>, StoreError> {
        let now = self.clock.now();
        match command {
            Command::Help { topic } => Ok(Some(views::help(topic))),
            Command::List { all } => {
                let incidents = self.store.incidents(all, LIST_LIMIT).await?;
                Ok(Some(views::incident_list(&incidents, all, now)))
            }
            Command::Stats { days } => {
                use crate::core::stats;
                let since = now - Duration::days(days);
                let incidents = self
                    .store
                    .incidents_declared_since(since, stats::MAX_INCIDENTS)
                    .await?;
                let events = self
                    .store
                    .events_of_incidents_since(since, &stats::EVENT_KINDS)
                    .await?;
                let figures = stats::compute(&self.policy, days, since, &incidents, &events);
                Ok(Some(views::stats(&figures)))
            }
            Command::Declare { title, severity } => {
                self.declare(origin, title, severity).await.map(Some)
            }
            Command::Maintenance(maintenance) => {
                if maintenance != crate::core::command::MaintenanceCommand::Show {
                    self.first_time(origin).await?;
                }
                self.maintenance_command(origin, &maintenance)
                    .await
                    .map(Some)
            }
            Command::Playbooks => self.runbook_command(origin, None, command).await,
            runbook @ (Command::Run { .. }
            | Command::Diag { .. }
            | Command::Scale { .. }
            | Command::Restart { .. }
            | Command::Confirm(_)
            | Command::Cancel(_)
            | Command::Undo(_)) => {
                let incident = self.store.incident_by_channel(&origin.channel).await?;
                if incident.is_none() {
                    let open = self.store.incidents(false, LIST_LIMIT).await?;
                    return Ok(Some(views::not_in_incident_channel(
                        runbook.name(),
                        &open,
                        now,
                    )));
                }
                if !runbook.name().only_reads() {
                    self.first_time(origin).await?;
                }
                self.runbook_command(origin, incident, runbook).await
            }
            other => {
                let name = other.name();
                let Some(incident) = self.store.incident_by_channel(&origin.channel).await? else {
                    let open = self.store.incidents(false, LIST_LIMIT).await?;
                    return Ok(Some(views::not_in_incident_channel(name, &open, now)));
                };
                if other == Command::Timeline {
                    let events = self.store.timeline(incident.key).await?;
                    return Ok(Some(views::timeline(&incident, &events)));
                }
                self.apply_with_retry(incident, origin, &other).await
            }
        }
    }

    /// Record `origin`'s signed request, if it has one, before a command that does not write
    /// it with a change of its own (runbook actions, maintenance): `Duplicate` if it was
    /// acted on before.
    async fn first_time(&self, origin: &Origin) -> Result<(), StoreError> {
        let Some(request) = &origin.request else {
            return Ok(());
        };
        if self
            .store
            .record_inbound_event(SLACK_REQUESTS_SOURCE, request, self.clock.now())
            .await?
        {
            Ok(())
        } else {
            Err(StoreError::Duplicate("a signed request".into()))
        }
    }

    /// The inbound event a change made for `origin` records (its signed request, if any).
    fn request_event(origin: &Origin) -> Option<(&'static str, &str)> {
        origin
            .request
            .as_deref()
            .map(|request| (SLACK_REQUESTS_SOURCE, request))
    }

    async fn declare(
        &self,
        origin: &Origin,
        title: String,
        severity: Option<crate::core::Severity>,
    ) -> Result<Message, StoreError> {
        // The number and the names in use are asked for at once: neither depends on the
        // other.
        let mut now = self.clock.now();
        let base = self.channel_base(&title, now);
        let (key, taken) = self.store.allocate_incident_key_with_names(&base).await?;
        let mut first_name = Some(pick_channel_name(&base, &taken));
        for _ in 0..CONFLICT_RETRIES {
            let name = match first_name.take() {
                Some(name) => name,
                None => {
                    now = self.clock.now();
                    self.free_channel_name(&title, now).await?
                }
            };
            let decision = decide::declare(
                &self.policy,
                DeclareRequest {
                    key,
                    title: title.clone(),
                    severity,
                    actor: origin.actor.clone(),
                    platform: origin.platform,
                    channel: name,
                    now,
                    from_pagerduty: None,
                },
            );
            let change = Change {
                inbound_event: App::request_event(origin),
                ..Change::new(&decision, None, now)
            };
            match self.commit(change).await {
                Ok(()) => {
                    tracing::info!(incident = %key, severity = %decision.incident.severity, channel = %decision.incident.channel, "incident declared");
                    return Ok(decision.reply.unwrap_or_else(|| {
                        Message::notice(Visibility::Ephemeral, format!("Declared {key}."))
                    }));
                }
                // Another replica took the name between our read and our write: pick again.
                Err(StoreError::ChannelTaken(_)) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(StoreError::Conflict(key.to_string()))
    }

    async fn apply_with_retry(
        &self,
        mut incident: Incident,
        origin: &Origin,
        command: &Command,
    ) -> Result<Option<Message>, StoreError> {
        let actor = &origin.actor;
        tracing::Span::current().record("incident", tracing::field::display(incident.key));
        for _ in 0..CONFLICT_RETRIES {
            let now = self.clock.now();
            let decided = match command {
                Command::Postmortem { done: None } => {
                    let timeline = self.store.timeline(incident.key).await?;
                    Ok(decide::postmortem_draft(
                        &self.policy,
                        &incident,
                        &timeline,
                        actor,
                        now,
                    ))
                }
                Command::Postmortem { done: Some(url) } => {
                    decide::postmortem_done(&incident, actor, url, now)
                }
                _ => decide::apply(&self.policy, &incident, actor, command, now),
            };
            let decision = match decided {
                Ok(decision) => decision,
                Err(Refusal(message)) => return Ok(Some(message)),
            };
            match self
                .commit(Change {
                    inbound_event: App::request_event(origin),
                    ..Change::new(&decision, Some(incident.version), self.clock.now())
                })
                .await
            {
                Ok(()) => {
                    tracing::info!(incident = %incident.key, command = %command.name(), actor = %actor, "incident changed");
                    return Ok(decision.reply);
                }
                Err(StoreError::Conflict(_)) => {
                    incident = match self.store.incident(incident.key).await? {
                        Some(fresh) => fresh,
                        None => return Err(StoreError::Conflict(incident.key.to_string())),
                    };
                }
                Err(other) => return Err(other),
            }
        }
        Err(StoreError::Conflict(incident.key.to_string()))
    }

    /// Commit a change, then wake the scheduler if it planned timers and the dispatcher of
    /// each destination it wrote outbox rows for.
    async fn commit(&self, change: Change<'_>) -> Result<(), StoreError> {
        let planned = !change.timers.is_empty();
        let platform = change.incident.platform;
        let outbox = change.outbox;
        self.store.commit(change).await?;
        if planned {
            self.timers_changed.raise();
        }
        for destination in crate::store::destinations(outbox, platform) {
            self.outbox_changed.raise(destination);
        }
        Ok(())
    }

    /// A channel name for `title` that no incident uses yet.
    async fn free_channel_name(
        &self,
        title: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<crate::core::ChannelName, StoreError> {
        let base = self.channel_base(title, now);
        let taken = self.store.channel_names_with_prefix(&base).await?;
        Ok(pick_channel_name(&base, &taken))
    }

    /// What an incident channel declared now about `title` is called, before any suffix.
    fn channel_base(&self, title: &str, now: chrono::DateTime<chrono::Utc>) -> String {
        channel::channel_base(&self.policy.channel_prefix, now.date_naive(), title)
    }

    /// Fire every timer due now. Each fires in its own transaction with the change it causes;
    /// a stale one (its fence moved on) is closed without effect. Returns how many fired.
    pub async fn run_due_timers(&self) -> Result<usize, StoreError> {
        self.run_due_timers_with(&|| {}).await
    }

    /// `run_due_timers`, calling `progress` after each claimed batch has been fired: a long
    /// backlog is work going on, not a stalled scheduler.
    pub async fn run_due_timers_with(
        &self,
        progress: &(dyn Fn() + Sync),
    ) -> Result<usize, StoreError> {
        let mut fired = 0;
        // Window edges are minutes apart: a busy scheduler (woken by every planned timer)
        // looks for them at most every `MAINTENANCE_CHECK_EVERY`.
        let now = self.clock.now();
        let last = self
            .maintenance_checked
            .load(std::sync::atomic::Ordering::Relaxed);
        if last == i64::MIN
            || now.timestamp_millis() - last >= MAINTENANCE_CHECK_EVERY.num_milliseconds()
        {
            self.maintenance_checked
                .store(now.timestamp_millis(), std::sync::atomic::Ordering::Relaxed);
            if let Err(error) = self.run_maintenance(now).await {
                tracing::warn!(%error, "could not announce maintenance windows; will try again");
            }
        }
        loop {
            let now = self.clock.now();
            let timers = self
                .store
                .claim_due_timers(now, &self.owner, now + self.lease, 100)
                .await?;
            if timers.is_empty() {
                return Ok(fired);
            }
            // Incidents in parallel (their commits share the database's group commit); each
            // incident's timers in due order, so no step overtakes an earlier one.
            let mut by_incident: Vec<Vec<Timer>> = Vec::new();
            for timer in timers {
                match by_incident
                    .iter_mut()
                    .find(|group| group[0].incident == timer.incident)
                {
                    Some(group) => group.push(timer),
                    None => by_incident.push(vec![timer]),
                }
            }
            // Every incident's timers run even when another incident's meet a store error
            // (a row that cannot be read, conflicts that do not end): one incident must not
            // hold back the others' escalations until the leases run out. The first error is
            // reported once the batch is done.
            let outcomes: Vec<(usize, Option<StoreError>)> = stream::iter(by_incident)
                .map(|group| async move {
                    let mut fired = 0;
                    for timer in group {
                        // Shutting down: timers not yet started are released for another
                        // replica.
                        if self.is_stopping() {
                            break;
                        }
                        let span = tracing::info_span!(
                            "timer",
                            incident = %timer.incident,
                            kind = timer.kind.as_str(),
                        );
                        match self.fire_one(&timer).instrument(span).await {
                            Ok(true) => fired += 1,
                            Ok(false) => {}
                            // The incident's later timers stay claimed and wait with this one
                            // for the lease to run out: none overtakes it.
                            Err(error) => return (fired, Some(error)),
                        }
                    }
                    (fired, None)
                })
                .buffer_unordered(TIMER_CONCURRENCY)
                .collect()
                .await;
            fired += outcomes.iter().map(|(fired, _)| fired).sum::<usize>();
            if let Some(error) = outcomes.into_iter().find_map(|(_, error)| error) {
                return Err(error);
            }
            progress();
            if self.is_stopping() {
                return Ok(fired);
            }
        }
    }

    /// Fire one claimed timer in its own transaction (or close it if stale). `true` if it fired.
    async fn fire_one(&self, timer: &Timer) -> Result<bool, StoreError> {
        match timer.kind {
            crate::core::TimerKind::ChangeExpiry { request } => {
                return self.expire_change(timer, request).await;
            }
            crate::core::TimerKind::ChangeSettle { request } => {
                return self.settle_change(timer, request).await;
            }
            _ => {}
        }
        for _ in 0..CONFLICT_RETRIES {
            let now = self.clock.now();
            let Some(incident) = self.store.incident(timer.incident).await? else {
                unless_lease_lost(self.store.discard_timer(timer.id, &self.owner, now).await)?;
                return Ok(false);
            };
            let Some(decision) = decide::fire_timer(
                &self.policy,
                &incident,
                timer.kind,
                timer.due_at,
                timer.fence,
                now,
            ) else {
                unless_lease_lost(self.store.discard_timer(timer.id, &self.owner, now).await)?;
                return Ok(false);
            };
            match self
                .commit(Change {
                    fired_timer: Some((timer.id, self.owner.as_str())),
                    ..Change::new(&decision, Some(incident.version), now)
                })
                .await
            {
                Ok(()) => {
                    let late = (now - timer.due_at).num_milliseconds().max(0) as f64 / 1000.0;
                    self.metrics.timer_lateness.observe(late);
                    tracing::info!(incident = %incident.key, timer = timer.kind.as_str(), late_seconds = (now - timer.due_at).num_seconds(), "timer fired");
                    return Ok(true);
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(lost @ StoreError::LeaseLost(_)) => {
                    unless_lease_lost(Err(lost))?;
                    return Ok(false);
                }
                Err(other) => return Err(other),
            }
        }
        tracing::warn!(
            timer = timer.id,
            "timer kept conflicting; it will be retried when its lease expires"
        );
        Ok(false)
    }

    /// Deliver pending outbox rows of `sink`'s platform, each incident's in order. Returns how
    /// many were delivered. A failed row is retried with exponential backoff (2 s doubling to
    /// 256 s) or after the platform's Retry-After, and given up after
    /// `MAX_DELIVERY_ATTEMPTS` or on a permanent error.
    pub async fn dispatch_outbox(&self, sink: &dyn Sink) -> Result<usize, StoreError> {
        let mut delivered = 0;
        loop {
            let now = self.clock.now();
            // One row per incident (its head): the batch can go out in parallel without any
            // incident's rows overtaking each other.
            let claimed_until = now + self.lease;
            let items = self
                .store
                .claim_outbox(sink.destination(), now, &self.owner, claimed_until, 100)
                .await?;
            if items.is_empty() {
                return Ok(delivered);
            }
            let claimed = items.len();
            // Every started delivery runs to its end even when another one meets a store
            // error: a delivery cut off mid-request could have been sent and not recorded.
            let results: Vec<Result<Sent, StoreError>> = stream::iter(items)
                .map(|item| self.deliver_one(sink, item, claimed_until))
                .buffer_unordered(OUTBOX_CONCURRENCY)
                .collect()
                .await;
            let sent = results.into_iter().collect::<Result<Vec<Sent>, _>>()?;
            delivered += sent.iter().filter(|s| **s == Sent::Delivered).count();
            let retry_later = sent.iter().filter(|s| **s == Sent::RetryLater).count();
            if retry_later == claimed || self.is_stopping() {
                return Ok(delivered);
            }
        }
    }

    /// Deliver one claimed outbox row, leased until `claimed_until`, and record what happened
    /// to it.
    async fn deliver_one(
        &self,
        sink: &dyn Sink,
        item: crate::store::OutboxItem,
        claimed_until: chrono::DateTime<chrono::Utc>,
    ) -> Result<Sent, StoreError> {
        // Shutting down: the rows not yet started are released for another replica.
        if self.is_stopping() {
            return Ok(Sent::NotStarted);
        }
        // Every delivery starts with nearly a whole lease (at least 19/20 of it), so that a
        // slow batch cannot let another process take (and send again) rows this one is
        // about to send. A row taken up soon after its claim still has that; a later one
        // renews its lease first.
        let now = self.clock.now();
        if claimed_until - now < self.lease - self.lease / 20 {
            let renewed = self
                .store
                .renew_outbox_lease(item.id, &self.owner, now + self.lease)
                .await?;
            if !renewed {
                tracing::warn!(incident = %item.incident, row = item.id, "lease lost before delivery; leaving the row to its new owner");
                return Ok(Sent::NotStarted);
            }
        }
        // An escalation step's page that waited (PagerDuty failing or rate limiting, or a
        // backlog) while the incident reached the step's `until` is withdrawn, not sent.
        if let crate::core::Effect::PagerDuty { action } = &item.effect
            && let Some(state) = action.withdrawn_when()
            && let Some(incident) = self.store.incident(item.incident).await?
            && state.met_by(&incident)
        {
            let what = action.describe();
            let withdrawn = self
                .close_with(&item, None, |incident, now| {
                    decide::page_withdrawn(incident, &what, state, now)
                })
                .await;
            if withdrawn.is_ok() {
                tracing::info!(incident = %item.incident, row = item.id, "page withdrawn: the incident reached the step's `until` first");
                self.metrics.delivery(sink.destination(), "withdrawn");
            }
            unless_lease_lost(self.retry_on_conflict(&item, withdrawn).await)?;
            return Ok(Sent::Withdrawn);
        }
        let span = tracing::info_span!(
            "deliver",
            incident = %item.incident,
            destination = sink.destination(),
            row = item.id,
        );
        let result = sink.deliver(&item).instrument(span).await;
        let sent = match &result {
            Ok(_) => Sent::Delivered,
            Err(DeliveryError::Retry { .. }) if item.attempts < MAX_DELIVERY_ATTEMPTS => {
                Sent::RetryLater
            }
            Err(_) => Sent::GivenUp,
        };
        self.metrics.delivery(
            sink.destination(),
            match sent {
                Sent::Delivered => "ok",
                Sent::RetryLater => "retry",
                Sent::GivenUp | Sent::NotStarted => "failed",
                // Counted where it is closed, before any delivery is tried.
                Sent::Withdrawn => "withdrawn",
            },
        );
        let outcome = match result {
            Ok(Delivered::Done) => {
                self.store
                    .outbox_delivered(item.id, &self.owner, self.clock.now())
                    .await
            }
            Ok(Delivered::Posted { key, value }) => {
                self.store
                    .outbox_delivered_keeping(
                        item.id,
                        &self.owner,
                        self.clock.now(),
                        sink.destination(),
                        &key,
                        &value,
                    )
                    .await
            }
            Ok(Delivered::OnCall { target, names }) => {
                let recorded = self.record_on_call(&item, &target, &names).await;
                self.retry_on_conflict(&item, recorded).await
            }
            Err(DeliveryError::Retry { after, reason })
                if item.attempts < MAX_DELIVERY_ATTEMPTS =>
            {
                let backoff = Duration::seconds(1_i64 << item.attempts.clamp(1, 8));
                let wait = after.unwrap_or(backoff).max(Duration::seconds(1));
                tracing::warn!(incident = %item.incident, attempt = item.attempts, %reason, "delivery failed; will retry");
                let retry_at = self.clock.now() + wait;
                self.store
                    .outbox_failed(item.id, &self.owner, &reason, Some(retry_at))
                    .await
            }
            Err(DeliveryError::Retry { reason, .. } | DeliveryError::Permanent { reason }) => {
                tracing::error!(incident = %item.incident, attempt = item.attempts, %reason, "delivery failed for good");
                match &item.effect {
                    // A page that did not happen must not go unnoticed: give up on the
                    // row and say so in the incident channel, in one transaction.
                    crate::core::Effect::PagerDuty { action } => {
                        self.give_up_and_report(&item, &action.describe(), &reason)
                            .await
                    }
                    // A chat post that failed is only logged: a report would go to the
                    // same place.
                    _ => {
                        self.store
                            .outbox_failed(item.id, &self.owner, &reason, None)
                            .await
                    }
                }
            }
        };
        unless_lease_lost(outcome)?;
        Ok(sent)
    }
}

/// What became of one claimed outbox row in a dispatch pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    Delivered,
    /// Failed, and due again later.
    RetryLater,
    /// Failed for good (permanently, or too many times).
    GivenUp,
    /// Left alone: shutting down, or the lease went to another replica.
    NotStarted,
    /// Not sent: a page no longer wanted (`decide::page_withdrawn`).
    Withdrawn,
}

impl App {
    /// A row whose consequence kept conflicting with other writers is retried shortly rather
    /// than stopping the whole pass.
    async fn retry_on_conflict(
        &self,
        item: &crate::store::OutboxItem,
        result: Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        match result {
            Err(StoreError::Conflict(what)) => {
                let retry_at = self.clock.now() + Duration::seconds(5);
                self.store
                    .outbox_failed(
                        item.id,
                        &self.owner,
                        &format!("{what} kept changing; will retry"),
                        Some(retry_at),
                    )
                    .await
            }
            other => other,
        }
    }

    /// Mention who is on call, recorded with the look-up's delivery in one transaction.
    async fn record_on_call(
        &self,
        item: &crate::store::OutboxItem,
        target: &str,
        names: &[String],
    ) -> Result<(), StoreError> {
        self.close_with(item, None, |incident, now| {
            decide::on_call_found(incident, target, names, now)
        })
        .await
    }

    /// Give up on an outbox row and record the failure in the incident's timeline and channel,
    /// in one transaction: the report cannot be lost between the two.
    async fn give_up_and_report(
        &self,
        item: &crate::store::OutboxItem,
        what: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.close_with(item, Some(reason), |incident, now| {
            decide::delivery_failed(incident, what, reason, now)
        })
        .await
    }

    /// Close a claimed outbox row (delivered, or failed with `failure`) in the same transaction
    /// as the decision `decide` makes about it.
    async fn close_with(
        &self,
        item: &crate::store::OutboxItem,
        failure: Option<&str>,
        decide: impl Fn(&Incident, chrono::DateTime<chrono::Utc>) -> Decision,
    ) -> Result<(), StoreError> {
        for _ in 0..CONFLICT_RETRIES {
            let now = self.clock.now();
            let Some(incident) = self.store.incident(item.incident).await? else {
                return match failure {
                    Some(reason) => {
                        self.store
                            .outbox_failed(item.id, &self.owner, reason, None)
                            .await
                    }
                    None => self.store.outbox_delivered(item.id, &self.owner, now).await,
                };
            };
            let decision = decide(&incident, now);
            let owner = self.owner.as_str();
            let result = self
                .commit(Change {
                    delivered_outbox: failure.is_none().then_some((item.id, owner)),
                    failed_outbox: failure.map(|reason| (item.id, owner, reason)),
                    ..Change::new(&decision, Some(incident.version), now)
                })
                .await;
            match result {
                Err(StoreError::Conflict(_)) => continue,
                other => return other,
            }
        }
        Err(StoreError::Conflict(item.incident.to_string()))
    }

    /// Handle a verified PagerDuty v3 webhook event, exactly once per event id. Returns what
    /// happened, for the log and the HTTP answer.
    ///
    /// The warroom incident is the one PagerDuty opened (found by PagerDuty's incident id), or
    /// the one warroom paged for (PagerDuty's `incident_key` is warroom's dedup key, `INC-n`).
    pub async fn handle_pagerduty(
        &self,
        event: &crate::pagerduty::WebhookEvent,
        priorities: &std::collections::BTreeMap<String, crate::core::Severity>,
        open_on: Platform,
    ) -> Result<&'static str, StoreError> {
        let span = tracing::info_span!(
            "pagerduty_event",
            event = %event.id,
            pagerduty_incident = %event.incident_id,
            incident = tracing::field::Empty,
        );
        self.apply_pagerduty(event, priorities, open_on)
            .instrument(span)
            .await
    }

    async fn apply_pagerduty(
        &self,
        event: &crate::pagerduty::WebhookEvent,
        priorities: &std::collections::BTreeMap<String, crate::core::Severity>,
        open_on: Platform,
    ) -> Result<&'static str, StoreError> {
        use crate::core::decide::{PagerDutyChange, PagerDutyOrigin, pagerduty_change};
        let source = crate::store::PAGERDUTY_SOURCE;
        let own_key = event
            .incident_key
            .as_deref()
            .filter(|k| k.starts_with("INC-"))
            .and_then(|k| k.parse::<crate::core::IncidentKey>().ok());
        // Only an incident for which warroom paged a service can have a PagerDuty copy under
        // its key: another tool's "INC-" keys must not touch it.
        let ours = |incident: Option<Incident>| incident.filter(|i| !i.paged_services.is_empty());
        for _ in 0..CONFLICT_RETRIES {
            let now = self.clock.now();
            let incident = match self
                .store
                .incident_by_pagerduty_id(&event.incident_id)
                .await?
            {
                Some(incident) => Some(incident),
                None => match own_key {
                    Some(key) => ours(self.store.incident(key).await?),
                    None => None,
                },
            };
            if let Some(incident) = &incident {
                tracing::Span::current().record("incident", tracing::field::display(incident.key));
            }
            let (decision, expected) = match (incident, event.event_type.as_str()) {
                (Some(_), "incident.triggered") => {
                    // PagerDuty's copy of a page warroom sent (or a repeat): nothing to do.
                    return self
                        .ignore(source, &event.id, "warroom already has this incident")
                        .await;
                }
                (None, "incident.triggered") => {
                    // PagerDuty opened an incident warroom does not have: declare it.
                    let key = self.store.allocate_incident_key().await?;
                    tracing::Span::current().record("incident", tracing::field::display(key));
                    let title = if event.title.is_empty() {
                        format!("PagerDuty incident {}", event.incident_id)
                    } else {
                        event.title.clone()
                    };
                    let severity = match event.priority.as_ref().and_then(|p| priorities.get(p)) {
                        Some(severity) => Some(*severity),
                        None if event.urgency.as_deref() == Some("low") => {
                            Some(crate::core::Severity::P3)
                        }
                        None => None,
                    };
                    let name = self.free_channel_name(&title, now).await?;
                    let decision = decide::declare(
                        &self.policy,
                        DeclareRequest {
                            key,
                            title,
                            severity,
                            actor: UserRef::parse("pagerduty").expect("valid user name"),
                            platform: open_on,
                            channel: name,
                            now,
                            from_pagerduty: Some(PagerDutyOrigin {
                                incident_id: event.incident_id.clone(),
                                agent: event.agent.clone(),
                            }),
                        },
                    );
                    (decision, None)
                }
                (Some(incident), kind) => {
                    let change = match kind {
                        "incident.acknowledged" => PagerDutyChange::Acknowledged,
                        "incident.resolved" => PagerDutyChange::Resolved,
                        "incident.priority_updated" => {
                            match event.priority.as_ref().and_then(|p| priorities.get(p)) {
                                Some(severity) => PagerDutyChange::Severity(*severity),
                                None => {
                                    return self
                                        .ignore(source, &event.id, "priority not mapped")
                                        .await;
                                }
                            }
                        }
                        _ => {
                            return self
                                .ignore(source, &event.id, "event type not handled")
                                .await;
                        }
                    };
                    match pagerduty_change(&self.policy, &incident, &change, &event.agent, now) {
                        Some(decision) => (decision, Some(incident.version)),
                        None => return self.ignore(source, &event.id, "nothing to change").await,
                    }
                }
                (
                    None,
                    "incident.acknowledged" | "incident.resolved" | "incident.priority_updated",
                ) if own_key.is_none()
                    && event
                        .occurred_at
                        // (A time ahead of this clock by more than a little skew is not
                        // trusted to end the retries.)
                        .is_some_and(|at| {
                            now - at <= PAGERDUTY_REORDER && at - now <= Duration::minutes(1)
                        }) =>
                {
                    // PagerDuty does not keep its webhooks in order: the `triggered` that opens
                    // this incident may still be on its way (or in flight on another replica).
                    // Not recorded, so PagerDuty's retry is applied once warroom has it.
                    tracing::info!(event = %event.id, "PagerDuty event for an incident warroom has not opened yet; asking for a retry");
                    return Ok(PAGERDUTY_NOT_YET);
                }
                (None, _) => {
                    return self
                        .ignore(source, &event.id, "no warroom incident for it")
                        .await;
                }
            };
            let result = self
                .commit(Change {
                    inbound_event: Some((source, &event.id)),
                    ..Change::new(&decision, expected, now)
                })
                .await;
            match result {
                Ok(()) => {
                    tracing::info!(incident = %decision.incident.key, event = %event.event_type, pagerduty_incident = %event.incident_id, "PagerDuty event applied");
                    return Ok("applied");
                }
                Err(StoreError::Duplicate(_)) => return Ok("duplicate"),
                Err(StoreError::Conflict(_) | StoreError::ChannelTaken(_)) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(StoreError::Conflict(event.incident_id.clone()))
    }

    async fn ignore(
        &self,
        source: &str,
        id: &str,
        why: &'static str,
    ) -> Result<&'static str, StoreError> {
        if self
            .store
            .record_inbound_event(source, id, self.clock.now())
            .await?
        {
            tracing::info!(event = %id, %why, "PagerDuty event changes nothing");
            Ok("ignored")
        } else {
            Ok("duplicate")
        }
    }
}

/// A name for this process in leases: host, pid and a random part.
fn replica_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "warroom".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{host}-{}-{nanos:08x}", std::process::id())
}
