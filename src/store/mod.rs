//! The durable store: incidents, timeline events, timers and the outbox, behind one trait
//! with two implementations (embedded SQLite, shared PostgreSQL) that pass one contract suite.
//!
//! Invariant: a state change, its timeline events, the timers it plans and the outbound
//! effects it decides are written in one transaction (`Store::commit`), or not at all.

pub mod postgres;
pub mod postgres_tls;
pub mod sqlite;
pub mod wake;

use crate::config::{Config, DatabaseTarget};
use crate::core::{
    Actor, Decision, Effect, EventKind, Incident, IncidentKey, Platform, Severity, Status,
    TimelineEvent, TimerKind, TimerRequest, UserRef,
};

/// Source name of PagerDuty webhook events in the inbound-event log.
pub const PAGERDUTY_SOURCE: &str = "pagerduty";
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Errors from the store, worded for the person who will read them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone else changed the incident first (optimistic concurrency); reload and retry.
    #[error("{0} was changed by someone else at the same moment; try again")]
    Conflict(String),
    /// The channel name is already used by another incident.
    #[error("the channel name {0} is already taken")]
    ChannelTaken(String),
    /// The inbound event (a webhook delivery) was already processed.
    #[error("event {0} was already processed")]
    Duplicate(String),
    /// A claimed timer or outbox row is no longer ours (its lease expired and another replica
    /// took it).
    #[error("lost the lease on {0}")]
    LeaseLost(String),
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    #[error("database schema: {0}")]
    Migration(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A durable timer as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timer {
    pub id: i64,
    pub incident: IncidentKey,
    pub kind: TimerKind,
    pub due_at: DateTime<Utc>,
    pub fence: i64,
}

/// An outbound effect waiting to be delivered.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxItem {
    pub id: i64,
    pub incident: IncidentKey,
    /// Who delivers it: a chat platform's name, or `pagerduty`.
    pub destination: String,
    pub effect: Effect,
    /// Unique per decided effect: lets remote calls be made idempotent.
    pub idempotency_key: String,
    /// Claims so far, this one included: every claim counts one.
    pub attempts: i32,
}

impl OutboxItem {
    /// Whether an earlier claim of this row may have done part of its work (posted, created
    /// a channel). On a first attempt there was none, so there is nothing to look for.
    pub fn retried(&self) -> bool {
        self.attempts > 1
    }
}

/// A maintenance window as recorded: one started from chat, or an occurrence of a
/// configured recurring window once its start was announced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaintenanceWindow {
    /// `adhoc:<…>` or `recurring:<name>:<start>` (see `core::maintenance::Occurrence`).
    pub id: String,
    /// The reason given, or the configured window's name.
    pub name: String,
    pub starts_at: DateTime<Utc>,
    /// The planned end, or when it was ended early.
    pub ends_at: DateTime<Utc>,
    pub started_by: Option<String>,
    pub ended_by: Option<String>,
    pub start_announced: bool,
    pub end_announced: bool,
}

/// Which edge of a maintenance window is announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowEdge {
    Start,
    End,
}

impl WindowEdge {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowEdge::Start => "start",
            WindowEdge::End => "end",
        }
    }
}

/// The incident number of outbox rows that belong to no incident (maintenance
/// announcements); no incident has it.
pub const NO_INCIDENT: IncidentKey = IncidentKey(0);

/// A runbook action waiting for (or past) its confirmation. The body is the app's own record
/// (the action, who asked, the preview, the state it is bound to); the store keeps the state
/// machine: pending → running → done | failed, or pending → cancelled | expired.
#[derive(Clone, Debug, PartialEq)]
pub struct RunbookRequest {
    pub id: i64,
    pub incident: IncidentKey,
    pub body: serde_json::Value,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub decided_by: Option<String>,
}

/// Counts by outbox state, for health and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub pending: i64,
    pub failed: i64,
    pub delivered: i64,
}

/// Counts for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthCounts {
    /// Open (unresolved) incidents per severity name (`P0` …); severities without any are
    /// absent.
    pub open_by_severity: Vec<(String, i64)>,
    pub timers_pending: i64,
    /// Pending rows not tried yet, or being delivered now.
    pub outbox_pending: i64,
    /// Pending rows waiting for a retry after a failed attempt.
    pub outbox_retrying: i64,
    pub outbox_failed: i64,
}

/// One atomic change: the incident's new state, what happened, what to plan, what to send.
#[derive(Clone, Debug)]
pub struct Change<'a> {
    pub incident: &'a Incident,
    /// `None` inserts a new incident; `Some(v)` updates it only if its stored version is `v`.
    pub expected_version: Option<i64>,
    pub events: &'a [TimelineEvent],
    pub timers: &'a [TimerRequest],
    pub outbox: &'a [Effect],
    /// The timer this change fires: marked fired in the same transaction, only if still
    /// leased by this owner.
    pub fired_timer: Option<(i64, &'a str)>,
    /// An outbox row whose delivery this change records (id, owner): marked delivered in the
    /// same transaction, only if still leased by this owner.
    pub delivered_outbox: Option<(i64, &'a str)>,
    /// An outbox row given up for good in this change (id, owner, reason): marked failed in the
    /// same transaction that reports it, only if still leased by this owner.
    pub failed_outbox: Option<(i64, &'a str, &'a str)>,
    /// The inbound event (source, id) this change handles: recorded in the same transaction,
    /// and the whole change is refused as `Duplicate` if it was seen before.
    pub inbound_event: Option<(&'a str, &'a str)>,
    pub now: DateTime<Utc>,
}

impl<'a> Change<'a> {
    /// The change a decision makes, with nothing fired, closed or received alongside it; set
    /// those fields with struct update syntax where they apply.
    pub fn new(
        decision: &'a Decision,
        expected_version: Option<i64>,
        now: DateTime<Utc>,
    ) -> Change<'a> {
        Change {
            incident: &decision.incident,
            expected_version,
            events: &decision.events,
            timers: &decision.timers,
            outbox: &decision.effects,
            fired_timer: None,
            delivered_outbox: None,
            failed_outbox: None,
            inbound_event: None,
            now,
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync {
    /// "sqlite" or "postgres".
    fn backend(&self) -> &'static str;

    /// Close the connections (on shutdown). The store answers errors afterwards.
    fn close(&self) {}

    /// Reachable and migrated to the latest schema (readiness).
    async fn ping(&self) -> StoreResult<()>;

    /// A fresh incident number; never handed out twice, gaps allowed.
    async fn allocate_incident_key(&self) -> StoreResult<IncidentKey>;

    /// Channel names in use that start with `prefix`.
    async fn channel_names_with_prefix(&self, prefix: &str) -> StoreResult<Vec<String>>;

    /// `allocate_incident_key` and `channel_names_with_prefix` at once (what a declaration
    /// asks first), in one round trip where the store can.
    async fn allocate_incident_key_with_names(
        &self,
        prefix: &str,
    ) -> StoreResult<(IncidentKey, Vec<String>)> {
        let key = self.allocate_incident_key().await?;
        Ok((key, self.channel_names_with_prefix(prefix).await?))
    }

    async fn incident(&self, key: IncidentKey) -> StoreResult<Option<Incident>>;

    async fn incident_by_channel(&self, channel: &str) -> StoreResult<Option<Incident>>;

    async fn incident_by_pagerduty_id(&self, id: &str) -> StoreResult<Option<Incident>>;

    /// Forget inbound event ids received before `before` (a redelivery that late is not
    /// expected), and the chat platforms' per-row delivery notes (`outbox:<id>` chat refs) of
    /// the same age; returns how many were removed.
    async fn prune_inbound_events(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    /// Record an inbound event that changes nothing; `false` if it was seen before.
    async fn record_inbound_event(
        &self,
        source: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Record a runbook action awaiting confirmation, with the `change_expiry` timer (fence
    /// 0, due at `expires_at`) that closes it if nobody decides it; its id. One transaction:
    /// a request is never left without what expires it.
    async fn insert_runbook_request(
        &self,
        incident: IncidentKey,
        body: &serde_json::Value,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<i64>;

    async fn runbook_request(&self, id: i64) -> StoreResult<Option<RunbookRequest>>;

    /// Move a request from state `from` to `to` (by whom, when); `false` if it was not in
    /// `from` any more (someone else decided first).
    async fn transition_runbook_request(
        &self,
        id: i64,
        from: &str,
        to: &str,
        by: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// A chat platform's reference recorded under `key` (the Slack channel id of an incident
    /// channel, the timestamp of a pinned summary message), if any.
    async fn chat_ref(&self, platform: &str, key: &str) -> StoreResult<Option<String>>;

    /// Record a chat platform's reference under `key`, replacing an earlier one.
    async fn set_chat_ref(&self, platform: &str, key: &str, value: &str) -> StoreResult<()>;

    /// `set_chat_ref` for each (key, value); the keys must differ. PostgreSQL writes them in
    /// one statement (all or none); the default writes them one by one.
    async fn set_chat_refs(&self, platform: &str, refs: &[(&str, &str)]) -> StoreResult<()> {
        for (key, value) in refs {
            self.set_chat_ref(platform, key, value).await?;
        }
        Ok(())
    }

    /// Record `value` under `key` unless something is recorded there already; returns what
    /// is recorded now (`value`, or the earlier one). The first of several writers wins.
    async fn claim_chat_ref(&self, platform: &str, key: &str, value: &str) -> StoreResult<String>;

    /// The newest incident following the Alertmanager group `group_key` (open or not), if any.
    async fn latest_incident_by_alert_group(
        &self,
        group_key: &str,
    ) -> StoreResult<Option<Incident>>;

    /// Open incidents whose paging a maintenance window holds back.
    async fn held_incidents(&self) -> StoreResult<Vec<Incident>>;

    /// Maintenance windows recorded that end after `after`, oldest start first.
    async fn maintenance_windows(
        &self,
        after: DateTime<Utc>,
    ) -> StoreResult<Vec<MaintenanceWindow>>;

    /// Announce an edge of a maintenance window, exactly once across processes: in one
    /// transaction, record the window if it is new (`window` as given), apply an early end
    /// (for `End` with `window.ended_by` set: `ends_at` and `ended_by` as given), mark the
    /// edge announced, and queue `notices` (destination, effect) in the outbox under no
    /// incident. `false`, with nothing written, if that edge was announced before.
    async fn announce_maintenance(
        &self,
        window: &MaintenanceWindow,
        edge: WindowEdge,
        notices: &[(String, Effect)],
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Newest first; open ones only unless `include_resolved`.
    async fn incidents(&self, include_resolved: bool, limit: i64) -> StoreResult<Vec<Incident>>;

    /// Oldest first.
    async fn timeline(&self, key: IncidentKey) -> StoreResult<Vec<TimelineEvent>>;

    /// Incidents declared at or after `since`, oldest first, at most `limit` (for `stats`).
    async fn incidents_declared_since(
        &self,
        since: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<Incident>>;

    /// The timeline events of the given kinds (`EventKind::name`) of the incidents declared at
    /// or after `since`, in the order they were written (for `stats`).
    async fn events_of_incidents_since(
        &self,
        since: DateTime<Utc>,
        kinds: &[&str],
    ) -> StoreResult<Vec<(IncidentKey, TimelineEvent)>>;

    /// Write a change atomically; returns the incident's new version.
    async fn commit(&self, change: Change<'_>) -> StoreResult<i64>;

    /// Claim up to `limit` pending timers due at `now`, leasing them to `owner` until
    /// `lease_until`. A timer leased by someone else is skipped until its lease expires.
    async fn claim_due_timers(
        &self,
        now: DateTime<Utc>,
        owner: &str,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<Timer>>;

    /// Close a claimed timer that turned out to be stale (nothing to change).
    async fn discard_timer(&self, id: i64, owner: &str, now: DateTime<Utc>) -> StoreResult<()>;

    /// When the next pending timer can be claimed: its due time, or the end of the lease
    /// another process holds on it.
    async fn next_timer_due(&self) -> StoreResult<Option<DateTime<Utc>>>;

    /// Claim up to `limit` deliverable outbox rows of one destination (a chat platform's name
    /// or `pagerduty`), oldest first. Only the oldest pending row of each incident for that
    /// destination can be claimed, so an incident's effects reach each destination in the
    /// order they were decided (a channel exists before posts to it), and a row waiting for a
    /// retry holds back the rows after it; destinations do not wait for each other.
    async fn claim_outbox(
        &self,
        destination: &str,
        now: DateTime<Utc>,
        owner: &str,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<OutboxItem>>;

    /// Extend this owner's lease on a claimed row just before delivering it; `false` if the
    /// row is no longer ours (its lease expired and another process took it).
    async fn renew_outbox_lease(
        &self,
        id: i64,
        owner: &str,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// The remote side accepted the row; it is never sent again.
    async fn outbox_delivered(&self, id: i64, owner: &str, now: DateTime<Utc>) -> StoreResult<()>;

    /// `outbox_delivered`, keeping `value` under `key` in `platform`'s chat refs at once
    /// (what the row posted). The ref is kept even when the lease was lost (`LeaseLost`): the
    /// row's next owner must find what was posted.
    async fn outbox_delivered_keeping(
        &self,
        id: i64,
        owner: &str,
        now: DateTime<Utc>,
        platform: &str,
        key: &str,
        value: &str,
    ) -> StoreResult<()> {
        self.set_chat_ref(platform, key, value).await?;
        self.outbox_delivered(id, owner, now).await
    }

    /// Delivery failed: retry at `retry_at`, or give up for good when `None`.
    async fn outbox_failed(
        &self,
        id: i64,
        owner: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()>;

    async fn outbox_counts(&self) -> StoreResult<OutboxCounts>;

    /// What `/metrics` reports about the store: open incidents by severity, pending timers,
    /// outbox rows by state.
    async fn health_counts(&self) -> StoreResult<HealthCounts>;

    /// Give up `owner`'s leases on timers and outbox rows it claimed but did not finish (on
    /// shutdown), so another replica takes them at once instead of when the lease expires. A
    /// row's claim stays counted as an attempt (it may have been sent before the process
    /// stopped). Returns how many timers and rows were released.
    async fn release_leases(&self, owner: &str) -> StoreResult<(u64, u64)>;

    /// Raise `timers` when any process commits a new timer and `outbox`'s signal of a
    /// destination when it commits outbox rows for it, so a sleeping scheduler or dispatcher
    /// starts at once instead of at its next poll. PostgreSQL does this with LISTEN/NOTIFY;
    /// SQLite has no such channel, and polling does.
    fn watch(&self, timers: Arc<wake::Signal>, outbox: Arc<wake::OutboxSignals>) {
        let _ = (timers, outbox);
    }
}

/// Open the configured store and apply pending migrations.
pub async fn open(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    open_target(&config.database).await
}

pub async fn open_target(target: &DatabaseTarget) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match target {
        DatabaseTarget::Sqlite { path } => Arc::new(sqlite::SqliteStore::open(path).await?),
        DatabaseTarget::Postgres {
            url,
            schema,
            pool_size,
        } => Arc::new(
            postgres::PostgresStore::connect(url.expose(), schema.as_deref(), *pool_size).await?,
        ),
    })
}

/// An incident row as text and numbers, before parsing into domain types; shared by both
/// backends so the parsing lives in one place.
pub(crate) struct IncidentRow {
    pub number: i64,
    pub title: String,
    pub severity: String,
    pub status: String,
    pub platform: String,
    pub channel: String,
    pub commander: String,
    pub declared_by: String,
    pub declared_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub root_cause: Option<String>,
    pub last_update_at: DateTime<Utc>,
    pub escalation_generation: i64,
    pub reminder_generation: i64,
    pub version: i64,
    pub escalation_level: i64,
    /// JSON array of service names.
    pub paged_services: String,
    pub pagerduty_incident_id: Option<String>,
    pub alert_group: Option<String>,
    /// JSON array of `MonitoredAlert`.
    pub alerts: String,
    pub postmortem_url: Option<String>,
    pub paging_held: Option<String>,
    pub escalation_from: Option<DateTime<Utc>>,
    pub response_breached_at: Option<DateTime<Utc>>,
}

/// Column list matching `IncidentRow`'s field order.
pub(crate) const INCIDENT_COLUMNS: &str = "number, title, severity, status, platform, channel, \
    commander, declared_by, declared_at, acknowledged_at, acknowledged_by, resolved_at, \
    root_cause, last_update_at, escalation_generation, reminder_generation, version, \
    escalation_level, paged_services, pagerduty_incident_id, alert_group, alerts, postmortem_url, \
    paging_held, escalation_from, response_breached_at";

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} `{value}`"))
}

fn user(value: &str) -> StoreResult<UserRef> {
    UserRef::parse(value).map_err(|_| corrupt("user", value))
}

impl IncidentRow {
    pub fn into_incident(self) -> StoreResult<Incident> {
        Ok(Incident {
            key: IncidentKey(self.number),
            severity: self
                .severity
                .parse::<Severity>()
                .map_err(|_| corrupt("severity", &self.severity))?,
            status: self
                .status
                .parse::<Status>()
                .map_err(|_| corrupt("status", &self.status))?,
            platform: self
                .platform
                .parse::<Platform>()
                .map_err(|_| corrupt("platform", &self.platform))?,
            channel: crate::core::ChannelName::parse(&self.channel)
                .ok_or_else(|| corrupt("channel", &self.channel))?,
            commander: user(&self.commander)?,
            declared_by: user(&self.declared_by)?,
            acknowledged_by: self.acknowledged_by.as_deref().map(user).transpose()?,
            title: self.title,
            declared_at: self.declared_at,
            acknowledged_at: self.acknowledged_at,
            resolved_at: self.resolved_at,
            root_cause: self.root_cause,
            last_update_at: self.last_update_at,
            escalation_generation: self.escalation_generation,
            reminder_generation: self.reminder_generation,
            version: self.version,
            escalation_level: self.escalation_level,
            paged_services: serde_json::from_str(&self.paged_services)
                .map_err(|_| corrupt("paged services", &self.paged_services))?,
            pagerduty_incident_id: self.pagerduty_incident_id,
            alerts: serde_json::from_str(&self.alerts)
                .map_err(|_| corrupt("alerts", &self.alerts))?,
            alert_group: self.alert_group,
            postmortem_url: self.postmortem_url,
            paging_held: self.paging_held,
            escalation_from: self.escalation_from,
            response_breached_at: self.response_breached_at,
        })
    }
}

/// Prefix of PagerDuty actors in the actor column (user names cannot contain `:`).
const PAGERDUTY_ACTOR: &str = "pagerduty:";
/// Prefix of monitoring actors (`monitoring:Alertmanager`).
const MONITORING_ACTOR: &str = "monitoring:";

/// The stored form of an actor: the user name, `pagerduty:<name>`, or NULL for warroom itself.
pub(crate) fn actor_column(actor: &Actor) -> Option<String> {
    match actor {
        Actor::User(u) => Some(u.as_str().to_string()),
        Actor::PagerDuty(name) => Some(format!("{PAGERDUTY_ACTOR}{name}")),
        Actor::Monitoring(name) => Some(format!("{MONITORING_ACTOR}{name}")),
        Actor::System => None,
    }
}

/// The stored JSON of an incident's monitored alerts.
pub(crate) fn alerts_column(incident: &Incident) -> String {
    serde_json::to_string(&incident.alerts).expect("alerts serialize")
}

/// The stored JSON of an incident's paged services.
pub(crate) fn paged_services_column(incident: &Incident) -> String {
    serde_json::to_string(&incident.paged_services).expect("strings serialize")
}

pub(crate) fn event_from_columns(
    at: DateTime<Utc>,
    actor: Option<String>,
    detail: &str,
) -> StoreResult<TimelineEvent> {
    let kind: EventKind = serde_json::from_str(detail)
        .map_err(|e| StoreError::Corrupt(format!("timeline event: {e}")))?;
    let actor = match actor {
        Some(name) => match name.strip_prefix(PAGERDUTY_ACTOR) {
            Some(agent) => Actor::PagerDuty(agent.to_string()),
            None => match name.strip_prefix(MONITORING_ACTOR) {
                Some(source) => Actor::Monitoring(source.to_string()),
                None => Actor::User(user(&name)?),
            },
        },
        None => Actor::System,
    };
    Ok(TimelineEvent { at, actor, kind })
}

pub(crate) fn event_detail(kind: &EventKind) -> String {
    serde_json::to_string(kind).expect("timeline events serialize")
}

pub(crate) fn effect_json(effect: &Effect) -> String {
    serde_json::to_string(effect).expect("effects serialize")
}

pub(crate) fn effect_from_json(text: &str) -> StoreResult<Effect> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("outbox effect: {e}")))
}

pub(crate) fn timer_kind(text: &str, index: i64) -> StoreResult<TimerKind> {
    TimerKind::parse(text, index).ok_or_else(|| corrupt("timer kind", &format!("{text}/{index}")))
}

/// Idempotency key of the `index`-th effect decided by the change that took `incident` to
/// `version`: unique, and the same on every retry of that delivery.
pub(crate) fn idempotency_key(incident: IncidentKey, version: i64, index: usize) -> String {
    format!("{incident}/v{version}/{index}")
}

/// The urgent flag of each outbox row a change writes, given each row's platform and whether
/// its own effect is urgent: a row is also urgent when an urgent row of the same platform
/// comes after it, since an incident's rows go out in order and it would hold that row back
/// (a new channel's topic before its alert). The stores raise the incident's rows already
/// pending on that platform in the same way (`UPDATE ... SET urgent`), so that a claim taking
/// urgent heads of line first does not leave an urgent row waiting behind a cosmetic one. (On
/// PostgreSQL a row out on a lease is left alone and raised when it is put back; a row put
/// back while the change is being written, or left to a lease that expires after a crash,
/// keeps its own urgency: see `commit` there. Notices not tied to an incident, which are not
/// urgent today, do not raise the rows before them.)
pub(crate) fn urgent_in_line(rows: &[(&str, bool)]) -> Vec<bool> {
    let mut urgent_behind: Vec<&str> = Vec::new();
    let mut flags: Vec<bool> = rows
        .iter()
        .rev()
        .map(|(platform, urgent)| {
            if *urgent && !urgent_behind.contains(platform) {
                urgent_behind.push(platform);
            }
            urgent_behind.contains(platform)
        })
        .collect();
    flags.reverse();
    flags
}

/// The platforms among `rows` (platform, stored urgent flag) with an urgent row: those whose
/// pending rows of the incident are raised to urgent.
pub(crate) fn urgent_platforms(rows: &[(&str, bool)]) -> Vec<String> {
    let mut platforms: Vec<String> = Vec::new();
    for (platform, urgent) in rows {
        if *urgent && !platforms.iter().any(|p| p == platform) {
            platforms.push(platform.to_string());
        }
    }
    platforms
}

/// The destinations of a change's outbox rows (`effect.destination`), each once, in order:
/// whose dispatchers the change wakes.
pub fn destinations(outbox: &[Effect], platform: Platform) -> Vec<&'static str> {
    let mut destinations: Vec<&'static str> = Vec::new();
    for effect in outbox {
        let destination = effect.destination(platform);
        if !destinations.contains(&destination) {
            destinations.push(destination);
        }
    }
    destinations
}

/// Latest schema version; both backends keep their migrations in step.
pub const SCHEMA_VERSION: i64 = 9;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_before_an_urgent_row_of_their_platform_are_urgent() {
        let rows = [
            ("slack", true),    // channel
            ("slack", false),   // topic, before the alert
            ("discord", false), // another platform's row: not held back by Slack's alert
            ("slack", true),    // alert
            ("slack", false),   // pin, after it
        ];
        assert_eq!(urgent_in_line(&rows), [true, true, false, true, false]);
        assert_eq!(
            urgent_platforms(&[("slack", true), ("discord", false), ("slack", true)]),
            ["slack"]
        );
        assert!(urgent_in_line(&[]).is_empty());
        assert!(urgent_platforms(&[("slack", false)]).is_empty());
    }
}
