//! The incident record, its lifecycle states and its timeline events.

use super::channel::ChannelName;
use super::severity::{Severity, SeverityReason};
use super::text::UserRef;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The human key of an incident, `INC-<n>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IncidentKey(pub i64);

impl fmt::Display for IncidentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "INC-{}", self.0)
    }
}

impl FromStr for IncidentKey {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits = text
            .trim()
            .strip_prefix("INC-")
            .or_else(|| text.trim().strip_prefix("inc-"))
            .unwrap_or(text.trim());
        match digits.parse::<i64>() {
            Ok(n) if n > 0 => Ok(IncidentKey(n)),
            _ => Err(format!("`{text}` is not an incident key like INC-12")),
        }
    }
}

/// Lifecycle: investigating → acknowledged → identified → monitoring → resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Investigating,
    Acknowledged,
    Identified,
    Monitoring,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Investigating => "investigating",
            Status::Acknowledged => "acknowledged",
            Status::Identified => "identified",
            Status::Monitoring => "monitoring",
            Status::Resolved => "resolved",
        }
    }

    pub fn is_open(self) -> bool {
        self != Status::Resolved
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "investigating" => Status::Investigating,
            "acknowledged" => Status::Acknowledged,
            "identified" => Status::Identified,
            "monitoring" => Status::Monitoring,
            "resolved" => Status::Resolved,
            other => return Err(format!("unknown status `{other}`")),
        })
    }
}

/// Which chat platform an incident lives on; routes its outbound messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Console,
    Slack,
    Discord,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Console => "console",
            Platform::Slack => "slack",
            Platform::Discord => "discord",
        }
    }
}

impl FromStr for Platform {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "console" => Platform::Console,
            "slack" => Platform::Slack,
            "discord" => Platform::Discord,
            other => return Err(format!("unknown platform `{other}`")),
        })
    }
}

/// One incident as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incident {
    pub key: IncidentKey,
    pub title: String,
    pub severity: Severity,
    pub status: Status,
    pub platform: Platform,
    pub channel: ChannelName,
    pub commander: UserRef,
    pub declared_by: UserRef,
    pub declared_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<UserRef>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub root_cause: Option<String>,
    pub last_update_at: DateTime<Utc>,
    /// Fencing token for escalation timers: bumped by ack, severity change and resolve.
    pub escalation_generation: i64,
    /// Fencing token for status-update reminders: bumped by every update and by resolve.
    pub reminder_generation: i64,
    /// Index of the next escalation step: steps before it have fired (or were skipped).
    pub escalation_level: i64,
    /// PagerDuty services triggered for this incident (acknowledged and resolved with it).
    pub paged_services: Vec<String>,
    /// The linked PagerDuty incident, when known (from a webhook).
    pub pagerduty_incident_id: Option<String>,
    /// The Alertmanager group (`groupKey`) whose notifications this incident follows.
    pub alert_group: Option<String>,
    /// The alerts of that group seen so far, firing or resolved.
    pub alerts: Vec<MonitoredAlert>,
    /// Where the finished postmortem is (`postmortem done <link>`); its reminders stop.
    pub postmortem_url: Option<String>,
    /// The maintenance window holding back this incident's paging, while it does.
    pub paging_held: Option<String>,
    /// When the escalation's clock started, if not at the declaration (paging held back by a
    /// maintenance window starts it when released).
    pub escalation_from: Option<DateTime<Utc>>,
    /// When the response target was breached, if it was: the breach is announced (and the
    /// next step paged) once, not again when a severity change re-plans the escalation.
    pub response_breached_at: Option<DateTime<Utc>>,
    /// Optimistic-concurrency version; the store bumps it on every write.
    pub version: i64,
}

/// One alert of the monitoring group an incident follows, as last reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitoredAlert {
    /// Alertmanager's fingerprint of the alert's labels.
    pub fingerprint: String,
    /// The `alertname` label.
    pub name: String,
    pub firing: bool,
    /// One line: the alert, its distinguishing labels and its summary.
    pub text: String,
    /// When this firing episode started (Alertmanager's `startsAt`): a report of an older
    /// episode is stale, a newer one is the alert firing again.
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    /// The severity its labels map to.
    #[serde(default)]
    pub severity: Option<Severity>,
}

impl Incident {
    /// Whether a person has taken the incident over: acknowledged it (in chat or PagerDuty),
    /// named a commander other than the one it was opened with, or posted a status update. Monitoring then no
    /// longer resolves it by itself.
    pub fn taken_over(&self) -> bool {
        self.acknowledged_at.is_some()
            || self.commander != self.declared_by
            || self.last_update_at > self.declared_at
    }

    /// When the escalation's clock started: the declaration, or when held-back paging was
    /// released.
    pub fn escalation_start(&self) -> DateTime<Utc> {
        self.escalation_from.unwrap_or(self.declared_at)
    }

    /// Whether every alert it follows has resolved (false when it follows none).
    pub fn alerts_all_resolved(&self) -> bool {
        !self.alerts.is_empty() && self.alerts.iter().all(|a| !a.firing)
    }
}

/// Who did something: a person, or warroom itself (timers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    User(UserRef),
    System,
    /// Someone acting in PagerDuty (the webhook's agent), by display name.
    PagerDuty(String),
    /// A monitoring system reporting alerts (`Alertmanager`).
    Monitoring(String),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::User(u) => write!(f, "@{u}"),
            Actor::System => f.write_str("warroom"),
            Actor::PagerDuty(name) => write!(f, "{name} (PagerDuty)"),
            Actor::Monitoring(name) => write!(f, "{name} (monitoring)"),
        }
    }
}

/// What happened, as recorded in the timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    Declared {
        title: String,
        severity: Severity,
        reason: SeverityReason,
    },
    Acknowledged,
    SeverityChanged {
        from: Severity,
        to: Severity,
    },
    CommanderAssigned {
        from: UserRef,
        to: UserRef,
    },
    StatusChanged {
        from: Status,
        to: Status,
    },
    StatusUpdate {
        text: String,
    },
    Resolved {
        root_cause: Option<String>,
    },
    ReminderSent {
        late_by_seconds: i64,
    },
    /// An escalation step fired.
    Escalated {
        step: usize,
        name: String,
        paged: Vec<String>,
        mentioned: Vec<String>,
        late_by_seconds: i64,
    },
    /// Nobody acknowledged within the severity's response target.
    ResponseTargetBreached {
        target_seconds: i64,
    },
    /// Someone paged an extra target with `page`.
    Paged {
        target: String,
    },
    /// A postmortem reminder was posted.
    PostmortemReminder {
        after_seconds: i64,
    },
    /// The postmortem draft was posted in the channel.
    PostmortemDrafted,
    /// The finished postmortem is at `url`; its reminders stop.
    PostmortemDone {
        url: String,
    },
    /// Monitoring reported an alert of the incident's group firing (new, or again).
    AlertFiring {
        fingerprint: String,
        text: String,
    },
    /// Monitoring reported an alert of the incident's group resolved.
    AlertResolved {
        fingerprint: String,
        text: String,
    },
    /// Every alert of the incident's group has resolved.
    MonitoringResolved,
    /// The incident was not paged: a maintenance window was in force and its severity is
    /// below the one that pages during maintenance.
    PagingSuppressed {
        window: String,
        until: DateTime<Utc>,
    },
    /// Paging held back by a maintenance window started (the window ended, or the severity
    /// reached one that pages during maintenance).
    PagingResumed {
        reason: String,
    },
    /// An outbound call was refused for good.
    DeliveryFailed {
        what: String,
        reason: String,
    },
    /// A page an escalation step queued was not sent: the incident reached the step's
    /// `until` while the page waited for PagerDuty.
    PageWithdrawn {
        what: String,
        why: String,
    },
    /// The incident was linked to a PagerDuty incident.
    PagerDutyLinked {
        incident_id: String,
    },
    /// Who is on call for a PagerDuty schedule or escalation policy, as looked up.
    OnCall {
        target: String,
        names: Vec<String>,
    },
    /// A read-only runbook action ran (a diagnostic or a playbook step).
    RunbookRan {
        action: String,
        ok: bool,
        /// The first line of what it found, or why it failed.
        outcome: String,
    },
    /// A change passed its dry run and waits for confirmation as request `request`.
    ChangeProposed {
        request: i64,
        action: String,
        /// What the dry run said it would do.
        change: String,
        /// The state it is bound to (e.g. "3 replicas").
        prior: String,
        expires_in_seconds: i64,
    },
    /// A change was refused before it ran (dry run failed, not allowed, out of bounds, …).
    ChangeRefused {
        action: String,
        reason: String,
    },
    /// A proposed change was confirmed; it is being applied.
    ChangeConfirmed {
        request: i64,
        action: String,
        confirmed_by: UserRef,
    },
    /// A proposed change was confirmed and ran (or failed when it ran).
    ChangeApplied {
        request: i64,
        action: String,
        confirmed_by: UserRef,
        ok: bool,
        outcome: String,
        prior: String,
    },
    /// A proposed change was cancelled, expired, or found the state changed since its preview.
    ChangeDropped {
        request: i64,
        action: String,
        why: String,
    },
    /// An entry of a kind this version does not know, written by a newer version during a
    /// rolling upgrade: read as such instead of failing the whole timeline. Never written.
    #[serde(other)]
    Unknown,
}

impl EventKind {
    /// A short stable name, stored in its own column for queries.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Declared { .. } => "declared",
            EventKind::Acknowledged => "acknowledged",
            EventKind::SeverityChanged { .. } => "severity_changed",
            EventKind::CommanderAssigned { .. } => "commander_assigned",
            EventKind::StatusChanged { .. } => "status_changed",
            EventKind::StatusUpdate { .. } => "status_update",
            EventKind::Resolved { .. } => "resolved",
            EventKind::ReminderSent { .. } => "reminder_sent",
            EventKind::Escalated { .. } => "escalated",
            EventKind::ResponseTargetBreached { .. } => "response_target_breached",
            EventKind::Paged { .. } => "paged",
            EventKind::PostmortemReminder { .. } => "postmortem_reminder",
            EventKind::PostmortemDrafted => "postmortem_drafted",
            EventKind::PostmortemDone { .. } => "postmortem_done",
            EventKind::AlertFiring { .. } => "alert_firing",
            EventKind::AlertResolved { .. } => "alert_resolved",
            EventKind::MonitoringResolved => "monitoring_resolved",
            EventKind::PagingSuppressed { .. } => "paging_suppressed",
            EventKind::PagingResumed { .. } => "paging_resumed",
            EventKind::DeliveryFailed { .. } => "delivery_failed",
            EventKind::PageWithdrawn { .. } => "page_withdrawn",
            EventKind::PagerDutyLinked { .. } => "pagerduty_linked",
            EventKind::OnCall { .. } => "on_call",
            EventKind::RunbookRan { .. } => "runbook_ran",
            EventKind::ChangeProposed { .. } => "change_proposed",
            EventKind::ChangeRefused { .. } => "change_refused",
            EventKind::ChangeConfirmed { .. } => "change_confirmed",
            EventKind::ChangeApplied { .. } => "change_applied",
            EventKind::ChangeDropped { .. } => "change_dropped",
            EventKind::Unknown => "unknown",
        }
    }

    /// One line for the timeline view.
    pub fn describe(&self) -> String {
        match self {
            EventKind::Declared {
                title,
                severity,
                reason,
            } => format!("declared \"{title}\" ({})", reason.explain(*severity)),
            EventKind::Acknowledged => "acknowledged".to_string(),
            EventKind::SeverityChanged { from, to } => format!("severity {from} → {to}"),
            EventKind::CommanderAssigned { from, to } => format!("commander @{from} → @{to}"),
            EventKind::StatusChanged { from, to } => format!("status {from} → {to}"),
            EventKind::StatusUpdate { text } => format!("update: {text}"),
            EventKind::Resolved { root_cause } => match root_cause {
                Some(cause) => format!("resolved; root cause: {cause}"),
                None => "resolved".to_string(),
            },
            EventKind::ReminderSent { late_by_seconds } if *late_by_seconds >= 60 => format!(
                "status-update reminder sent ({} late)",
                super::human_duration(chrono::Duration::seconds(*late_by_seconds))
            ),
            EventKind::ReminderSent { .. } => "status-update reminder sent".to_string(),
            EventKind::Escalated {
                step,
                name,
                paged,
                mentioned,
                late_by_seconds,
            } => {
                let mut parts = vec![format!("escalated to step {} ({name})", step + 1)];
                if !paged.is_empty() {
                    parts.push(format!("paged {}", paged.join(", ")));
                }
                if !mentioned.is_empty() {
                    let names: Vec<String> = mentioned.iter().map(|m| format!("@{m}")).collect();
                    parts.push(format!("mentioned {}", names.join(", ")));
                }
                if *late_by_seconds >= 60 {
                    parts.push(format!(
                        "{} late",
                        super::human_duration(chrono::Duration::seconds(*late_by_seconds))
                    ));
                }
                parts.join("; ")
            }
            EventKind::ResponseTargetBreached { target_seconds } => format!(
                "response target of {} breached",
                super::human_duration(chrono::Duration::seconds(*target_seconds))
            ),
            EventKind::Paged { target } => format!("paged {target}"),
            EventKind::PostmortemReminder { after_seconds } => format!(
                "postmortem reminder, {} after resolution",
                super::human_duration(chrono::Duration::seconds(*after_seconds))
            ),
            EventKind::PostmortemDrafted => "postmortem draft posted".to_string(),
            EventKind::PostmortemDone { url } => format!("postmortem done: {url}"),
            EventKind::AlertFiring { text, .. } => format!("alert firing: {text}"),
            EventKind::AlertResolved { text, .. } => format!("alert resolved: {text}"),
            EventKind::MonitoringResolved => "monitoring reports every alert resolved".to_string(),
            EventKind::PagingSuppressed { window, until } => format!(
                "not paged: maintenance window \"{window}\" until {}",
                until.format("%Y-%m-%d %H:%M UTC")
            ),
            EventKind::PagingResumed { reason } => format!("paging started: {reason}"),
            EventKind::DeliveryFailed { what, reason } => {
                format!("could not {what}: {reason}")
            }
            EventKind::PageWithdrawn { what, why } => format!("did not {what}: {why}"),
            EventKind::PagerDutyLinked { incident_id } => {
                format!("linked to PagerDuty incident {incident_id}")
            }
            EventKind::OnCall { target, names } => {
                format!("on call for {target}: {}", names.join(", "))
            }
            EventKind::RunbookRan {
                action,
                ok: true,
                outcome,
            } => format!("ran {action}: {outcome}"),
            EventKind::RunbookRan {
                action, outcome, ..
            } => {
                format!("ran {action}; it failed: {outcome}")
            }
            EventKind::ChangeProposed {
                request,
                action,
                change,
                prior,
                ..
            } => format!("proposed #{request}: {action} (dry run: {change}; was {prior})"),
            EventKind::ChangeRefused { action, reason } => {
                format!("refused {action}: {reason}")
            }
            EventKind::ChangeApplied {
                request,
                action,
                confirmed_by,
                ok: true,
                outcome,
                prior,
            } => format!(
                "applied #{request} ({action}), confirmed by @{confirmed_by}: {outcome} (was {prior})"
            ),
            EventKind::ChangeApplied {
                request,
                action,
                confirmed_by,
                outcome,
                ..
            } => format!("#{request} ({action}), confirmed by @{confirmed_by}, failed: {outcome}"),
            EventKind::ChangeDropped {
                request,
                action,
                why,
            } => format!("dropped #{request} ({action}): {why}"),
            EventKind::ChangeConfirmed {
                request,
                action,
                confirmed_by,
            } => format!("confirmed #{request} ({action}) by @{confirmed_by}; applying"),
            EventKind::Unknown => {
                "an entry this version of warroom cannot show (written by a newer one)".to_string()
            }
        }
    }
}

/// One timeline entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineEvent {
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub kind: EventKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeline_entry_of_a_newer_kind_reads_as_unknown() {
        let newer: EventKind =
            serde_json::from_str(r#"{"kind":"from_a_newer_version","detail":"x","n":1}"#).unwrap();
        assert_eq!(newer, EventKind::Unknown);
        assert!(newer.describe().contains("newer one"));
        // Known kinds still read whole, and a known kind with bad fields is still an error.
        let known: EventKind =
            serde_json::from_str(r#"{"kind":"page_withdrawn","what":"page x","why":"y"}"#).unwrap();
        assert_eq!(known.name(), "page_withdrawn");
        assert!(serde_json::from_str::<EventKind>(r#"{"kind":"page_withdrawn"}"#).is_err());
    }

    #[test]
    fn keys_round_trip() {
        assert_eq!(IncidentKey(12).to_string(), "INC-12");
        assert_eq!("INC-12".parse::<IncidentKey>(), Ok(IncidentKey(12)));
        assert_eq!("7".parse::<IncidentKey>(), Ok(IncidentKey(7)));
        assert!("INC-0".parse::<IncidentKey>().is_err());
        assert!("INC-x".parse::<IncidentKey>().is_err());
    }

    #[test]
    fn statuses_and_platforms_round_trip() {
        for s in [
            Status::Investigating,
            Status::Acknowledged,
            Status::Identified,
            Status::Monitoring,
            Status::Resolved,
        ] {
            assert_eq!(s.as_str().parse::<Status>(), Ok(s));
        }
        for p in [Platform::Console, Platform::Slack, Platform::Discord] {
            assert_eq!(p.as_str().parse::<Platform>(), Ok(p));
        }
    }
}
