//! The pure domain: command grammar, severity, incident state machine, channel names,
//! messages and effects. No I/O, no clock reads, no async: `now` is always an argument.

pub mod channel;
pub mod command;
pub mod decide;
pub mod escalation;
pub mod incident;
pub mod maintenance;
pub mod message;
pub mod severity;
pub mod stats;
pub mod text;
pub mod views;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

pub use channel::ChannelName;
pub use command::{Command, CommandName, ParseError};
pub use escalation::{EscalationStep, PageTarget, StopWhen};
pub use incident::{
    Actor, EventKind, Incident, IncidentKey, MonitoredAlert, Platform, Status, TimelineEvent,
};
pub use message::Message;
pub use severity::{ClassificationRules, Severity, SeverityReason};
pub use text::UserRef;

/// What the configuration says about one severity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeverityPolicy {
    /// e.g. "Critical".
    pub name: String,
    /// e.g. "complete outage, data corruption or loss, security breach".
    pub meaning: String,
    /// Time to acknowledge.
    pub respond_within: Duration,
    /// How often a status update is due while the incident is open.
    pub status_update_every: Duration,
}

/// The part of the validated configuration the core decides with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Indexed by `Severity::index()`.
    pub severities: [SeverityPolicy; 4],
    pub classification: ClassificationRules,
    /// First word of incident channel names (`inc`).
    pub channel_prefix: String,
    /// Channel where new and resolved incidents are announced.
    pub announce_channel: String,
    /// A postmortem is due this long after resolution.
    pub postmortem_due: Duration,
    /// Reminders about the postmortem, this long after resolution.
    pub postmortem_reminders: Vec<Duration>,
    /// The escalation steps, ordered by their offset.
    pub escalation: Vec<EscalationStep>,
    /// PagerDuty services that have a routing key: only these can be paged.
    pub pagerduty_services: BTreeSet<String>,
    /// Whether the PagerDuty REST API is configured (token and From address): needed to
    /// acknowledge or resolve PagerDuty incidents by id and to request responders.
    pub pagerduty_rest: bool,
    /// A reminder this much later than its due time says how late it is.
    pub lateness_note_after: Duration,
    /// During a maintenance window, incidents that alerts open at this severity or above
    /// still page; those below do not.
    pub maintenance_pages_from: Severity,
}

impl Policy {
    pub fn severity(&self, severity: Severity) -> &SeverityPolicy {
        &self.severities[severity.index()]
    }
}

/// Where a message goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum ChannelTarget {
    /// The incident's own channel.
    Incident(ChannelName),
    /// A configured channel such as the incidents announcement channel.
    Named(String),
}

impl ChannelTarget {
    pub fn name(&self) -> &str {
        match self {
            ChannelTarget::Incident(c) => c.as_str(),
            ChannelTarget::Named(n) => n,
        }
    }
}

/// An outbound action the core decided; the app stores it in the outbox and dispatches it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    CreateChannel {
        channel: ChannelName,
        topic: String,
        invite: Vec<UserRef>,
    },
    Post {
        channel: ChannelTarget,
        message: Message,
        pin: bool,
        /// A message kept up to date later (`Effect::Update`) is posted into a slot.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slot: Option<Slot>,
    },
    /// Replace the message in `slot` of the incident channel (Slack `chat.update`, a Discord
    /// edit); the console prints it again.
    Update {
        channel: ChannelName,
        slot: Slot,
        message: Message,
    },
    SetTopic {
        channel: ChannelName,
        topic: String,
    },
    /// Bring people into the incident channel (a new commander, say).
    Invite {
        channel: ChannelName,
        users: Vec<UserRef>,
    },
    /// A call to PagerDuty.
    PagerDuty {
        action: PagerDutyAction,
    },
    /// A document for the incident channel (the postmortem draft): a Markdown snippet file on
    /// Slack, the message in a code block elsewhere. `message` renders the document itself.
    Upload {
        channel: ChannelName,
        filename: String,
        title: String,
        message: Message,
    },
}

impl Effect {
    /// Who delivers it: the incident's chat platform, or PagerDuty.
    pub fn destination(&self, platform: Platform) -> &'static str {
        match self {
            Effect::PagerDuty { .. } => PAGERDUTY,
            _ => platform.as_str(),
        }
    }

    /// Whether it goes before cosmetic work when a platform's queue is long: pages, channel
    /// creation, alerts and escalations are urgent; topics, summary edits and other posts are
    /// not. (Each incident's own effects still go in order.)
    pub fn urgent(&self) -> bool {
        use message::TemplateName as T;
        match self {
            Effect::PagerDuty { .. } | Effect::CreateChannel { .. } | Effect::Invite { .. } => true,
            Effect::Post { message, .. } => message.sections.iter().any(|s| {
                matches!(
                    s,
                    message::Section::Text {
                        template: T::IncidentAlert
                            | T::Escalation
                            | T::ResponseBreach
                            | T::OnCall
                            | T::DeliveryFailed,
                        ..
                    }
                )
            }),
            Effect::SetTopic { .. } | Effect::Update { .. } | Effect::Upload { .. } => false,
        }
    }
}

/// A message of the incident channel that is edited in place as the incident changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    /// The pinned summary: severity, status, commander, who acknowledged, and the buttons.
    Summary,
}

impl Slot {
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::Summary => "summary",
        }
    }
}

/// The outbox destination of PagerDuty calls.
pub const PAGERDUTY: &str = "pagerduty";

/// PagerDuty's severities for the Events API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PagerDutySeverity {
    Critical,
    Error,
    Warning,
    Info,
}

impl PagerDutySeverity {
    /// P0 critical, P1 error, P2 warning, P3 info.
    pub fn of(severity: Severity) -> PagerDutySeverity {
        match severity {
            Severity::P0 => PagerDutySeverity::Critical,
            Severity::P1 => PagerDutySeverity::Error,
            Severity::P2 => PagerDutySeverity::Warning,
            Severity::P3 => PagerDutySeverity::Info,
        }
    }
}

/// One PagerDuty call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum PagerDutyAction {
    /// Events API v2 `trigger` on a service's routing key; `dedup_key` is the incident key.
    Trigger {
        service: String,
        dedup_key: String,
        summary: String,
        severity: PagerDutySeverity,
        /// An escalation step's page is withdrawn, not sent, if the incident reaches this
        /// state while the page waits in the outbox (PagerDuty failing, or rate limiting).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unless: Option<StopWhen>,
    },
    /// Events API v2 `acknowledge`.
    Acknowledge { service: String, dedup_key: String },
    /// Events API v2 `resolve`.
    Resolve { service: String, dedup_key: String },
    /// REST `PUT /incidents/{id}` to `acknowledged` or `resolved`.
    SetIncidentStatus { incident_id: String, status: Status },
    /// REST look-up of who is on call for a schedule or escalation policy; the names found are
    /// then posted in the incident channel.
    LookUpOnCall { target: PageTarget },
    /// REST responder request on the PagerDuty incident (found by id, or by the incident key
    /// as `incident_key`), for users, escalation policies and schedules' on-call users.
    RequestResponders {
        incident_id: Option<String>,
        incident_key: String,
        targets: Vec<PageTarget>,
        message: String,
        /// As for `Trigger`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unless: Option<StopWhen>,
    },
}

impl PagerDutyAction {
    /// The state of the incident in which this page is no longer wanted (an escalation
    /// step's `until`), if any.
    pub fn withdrawn_when(&self) -> Option<StopWhen> {
        match self {
            PagerDutyAction::Trigger { unless, .. }
            | PagerDutyAction::RequestResponders { unless, .. } => *unless,
            _ => None,
        }
    }
}

/// Kinds of durable timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    /// "No status update for 30 minutes."
    StatusReminder,
    /// Escalation step `step` of the policy.
    EscalationStep { step: usize },
    /// The severity's response target: fires a breach if nobody acknowledged.
    ResponseTarget,
    /// Postmortem reminder `reminder` of the policy, after resolution.
    PostmortemReminder { reminder: usize },
    /// Runbook change request `request` expires unless confirmed (the runbook engine handles
    /// it; the core only schedules it).
    ChangeExpiry { request: i64 },
    /// Runbook change request `request` was confirmed and is being applied: if it is still
    /// "running" when this fires, the process applying it stopped; settle it from the cluster.
    ChangeSettle { request: i64 },
}

impl TimerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TimerKind::StatusReminder => "status_reminder",
            TimerKind::EscalationStep { .. } => "escalation_step",
            TimerKind::ResponseTarget => "response_target",
            TimerKind::PostmortemReminder { .. } => "postmortem_reminder",
            TimerKind::ChangeExpiry { .. } => "change_expiry",
            TimerKind::ChangeSettle { .. } => "change_settle",
        }
    }

    /// The step or reminder number stored beside the kind.
    pub fn index(self) -> i64 {
        match self {
            TimerKind::EscalationStep { step } => step as i64,
            TimerKind::PostmortemReminder { reminder } => reminder as i64,
            TimerKind::ChangeExpiry { request } | TimerKind::ChangeSettle { request } => request,
            _ => 0,
        }
    }

    pub fn parse(text: &str, index: i64) -> Option<TimerKind> {
        match text {
            "change_expiry" => return Some(TimerKind::ChangeExpiry { request: index }),
            "change_settle" => return Some(TimerKind::ChangeSettle { request: index }),
            _ => {}
        }
        let index = usize::try_from(index).ok()?;
        match text {
            "status_reminder" => Some(TimerKind::StatusReminder),
            "escalation_step" => Some(TimerKind::EscalationStep { step: index }),
            "response_target" => Some(TimerKind::ResponseTarget),
            "postmortem_reminder" => Some(TimerKind::PostmortemReminder { reminder: index }),
            _ => None,
        }
    }
}

/// A timer the core wants: fire `kind` at `due_at` unless the fence has moved on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerRequest {
    pub kind: TimerKind,
    pub due_at: DateTime<Utc>,
    /// The incident's generation for this kind when the timer was planned.
    pub fence: i64,
}

/// Everything one input changes: the new incident state, what to record, what to do.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub incident: Incident,
    pub events: Vec<TimelineEvent>,
    pub effects: Vec<Effect>,
    pub timers: Vec<TimerRequest>,
    /// The direct answer to the person who acted, if any.
    pub reply: Option<Message>,
}

/// "1h 5m", "45m", "30s", "48h", "3d 2h": days only from 72 hours on, so that targets such
/// as "24h" and "48h" read as people write them.
pub fn human_duration(duration: Duration) -> String {
    let secs = duration.num_seconds().max(0);
    let days = if secs >= 72 * 3_600 { secs / 86_400 } else { 0 };
    let (d, h, m, s) = (
        days,
        (secs - days * 86_400) / 3_600,
        secs % 3_600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

impl PagerDutyAction {
    /// What the call does, for people: "page PagerDuty service oncall".
    pub fn describe(&self) -> String {
        match self {
            PagerDutyAction::Trigger { service, .. } => format!("page PagerDuty service {service}"),
            PagerDutyAction::Acknowledge { service, .. } => {
                format!("acknowledge in PagerDuty (service {service})")
            }
            PagerDutyAction::Resolve { service, .. } => {
                format!("resolve in PagerDuty (service {service})")
            }
            PagerDutyAction::SetIncidentStatus {
                incident_id,
                status,
            } => format!("set PagerDuty incident {incident_id} to {status}"),
            PagerDutyAction::LookUpOnCall { target } => {
                format!("look up who is on call for {target} in PagerDuty")
            }
            PagerDutyAction::RequestResponders { targets, .. } => {
                let targets: Vec<String> = targets.iter().map(ToString::to_string).collect();
                format!("request PagerDuty responders {}", targets.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(Duration::seconds(5)), "5s");
        assert_eq!(human_duration(Duration::minutes(45)), "45m");
        assert_eq!(human_duration(Duration::minutes(60)), "1h");
        assert_eq!(human_duration(Duration::minutes(65)), "1h 5m");
        assert_eq!(human_duration(Duration::hours(51)), "51h");
        assert_eq!(human_duration(Duration::hours(48)), "48h");
        assert_eq!(human_duration(Duration::hours(75)), "3d 3h");
        assert_eq!(human_duration(Duration::hours(96)), "4d");
        assert_eq!(human_duration(Duration::seconds(-3)), "0s");
    }
}
