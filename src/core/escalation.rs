//! Escalation policy: steps planned from the declaration time, the response-target check, and
//! the plan as a timeline (`warroom simulate`).

use super::incident::{Incident, Status};
use super::severity::Severity;
use super::{Policy, TimerKind, TimerRequest, human_duration};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a step pages.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum PageTarget {
    /// A PagerDuty service, by the name its routing key is configured under
    /// (`[pagerduty.routing_keys]`): an Events API v2 trigger.
    Service(String),
    /// A PagerDuty user, by id: a responder request on the PagerDuty incident.
    User(String),
    /// A PagerDuty escalation policy, by id: a responder request.
    EscalationPolicy(String),
    /// A PagerDuty schedule, by id: whoever is on call is requested as a responder.
    Schedule(String),
}

impl PageTarget {
    /// `service:oncall`, `user:PABC123`, `escalation_policy:P1`, `schedule:P2`; a bare name is
    /// a service.
    pub fn parse(text: &str) -> Result<PageTarget, String> {
        let text = text.trim();
        let (kind, id) = text.split_once(':').unwrap_or(("service", text));
        let valid = !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(format!(
                "`{}` is not a page target; use service:NAME, user:ID, escalation_policy:ID or schedule:ID",
                text.chars().take(60).collect::<String>()
            ));
        }
        let id = id.to_string();
        match kind.to_ascii_lowercase().as_str() {
            "service" => Ok(PageTarget::Service(id.to_ascii_lowercase())),
            "user" => Ok(PageTarget::User(id)),
            "escalation_policy" | "policy" => Ok(PageTarget::EscalationPolicy(id)),
            "schedule" => Ok(PageTarget::Schedule(id)),
            other => Err(format!(
                "`{}` is not a kind of page target; use service, user, escalation_policy or schedule",
                crate::core::command::truncate_chars(other, 40)
            )),
        }
    }
}

impl fmt::Display for PageTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageTarget::Service(name) => write!(f, "service:{name}"),
            PageTarget::User(id) => write!(f, "user:{id}"),
            PageTarget::EscalationPolicy(id) => write!(f, "escalation_policy:{id}"),
            PageTarget::Schedule(id) => write!(f, "schedule:{id}"),
        }
    }
}

/// What stops a step from firing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopWhen {
    Acknowledged,
    Resolved,
}

impl StopWhen {
    /// Whether the incident has reached this state.
    pub fn met_by(self, incident: &Incident) -> bool {
        match self {
            StopWhen::Acknowledged => {
                incident.acknowledged_at.is_some() || !incident.status.is_open()
            }
            StopWhen::Resolved => !incident.status.is_open(),
        }
    }
}

/// One step of the escalation policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscalationStep {
    pub name: String,
    /// Offset from the declaration.
    pub after: Duration,
    pub severities: Vec<Severity>,
    pub page: Vec<PageTarget>,
    /// Chat users or groups to mention.
    pub mention: Vec<String>,
    /// PagerDuty schedules or escalation policies whose on-call people are looked up and
    /// mentioned by name.
    pub mention_on_call: Vec<PageTarget>,
    pub until: StopWhen,
}

impl EscalationStep {
    pub fn applies_to(&self, severity: Severity) -> bool {
        self.severities.contains(&severity)
    }

    /// Whether the incident's state stops this step.
    pub fn stopped_by(&self, incident: &Incident) -> bool {
        self.until.met_by(incident)
    }
}

/// The escalation timers still ahead for an incident: every step from its current level that
/// applies to its severity and is not stopped, due at declaration + offset (or now, if that has
/// passed), and the response-target check while unacknowledged and not yet breached. Fenced by the incident's
/// escalation generation.
pub fn plan(policy: &Policy, incident: &Incident, now: DateTime<Utc>) -> Vec<TimerRequest> {
    if incident.status == Status::Resolved {
        return Vec::new();
    }
    let fence = incident.escalation_generation;
    let mut timers: Vec<TimerRequest> = policy
        .escalation
        .iter()
        .enumerate()
        .skip(usize::try_from(incident.escalation_level).unwrap_or(0))
        .filter(|(_, step)| step.applies_to(incident.severity) && !step.stopped_by(incident))
        .map(|(index, step)| TimerRequest {
            kind: TimerKind::EscalationStep { step: index },
            due_at: (incident.escalation_start() + step.after).max(now),
            fence,
        })
        .collect();
    // Once per incident: a severity change after a breach does not announce another.
    if incident.acknowledged_at.is_none() && incident.response_breached_at.is_none() {
        timers.push(TimerRequest {
            kind: TimerKind::ResponseTarget,
            due_at: (incident.escalation_start()
                + policy.severity(incident.severity).respond_within)
                .max(now),
            fence,
        });
    }
    timers
}

/// The next step at or after the incident's level that applies to its severity, ignoring
/// stop conditions (for `escalate` and response-target breaches).
pub fn next_step(policy: &Policy, incident: &Incident) -> Option<usize> {
    policy
        .escalation
        .iter()
        .enumerate()
        .skip(usize::try_from(incident.escalation_level).unwrap_or(0))
        .find(|(_, step)| step.applies_to(incident.severity))
        .map(|(index, _)| index)
}

/// The plan for a severity as timeline lines, for `warroom simulate`.
pub fn simulate(policy: &Policy, severity: Severity) -> Vec<String> {
    let sev = policy.severity(severity);
    let mut rows: Vec<(Duration, String)> = Vec::new();
    for (index, step) in policy.escalation.iter().enumerate() {
        if !step.applies_to(severity) {
            continue;
        }
        let pages: Vec<String> = step
            .page
            .iter()
            .map(|target| match target {
                PageTarget::Service(name) if !policy.pagerduty_services.contains(name) => {
                    format!("page {target} (NOT CONFIGURED: pagerduty.routing_keys.{name} is empty, so nobody is paged)")
                }
                other => format!("page {other}"),
            })
            .collect();
        let mentions: Vec<String> = step
            .mention
            .iter()
            .map(|m| format!("mention @{m}"))
            .chain(
                step.mention_on_call
                    .iter()
                    .map(|t| format!("mention whoever is on call for {t}")),
            )
            .collect();
        let until = match step.until {
            StopWhen::Acknowledged => "until acknowledged",
            StopWhen::Resolved => "until resolved",
        };
        rows.push((
            step.after,
            format!(
                "step {}: {} — {} [{until}]",
                index + 1,
                step.name,
                [pages, mentions].concat().join("; ")
            ),
        ));
    }
    rows.push((
        sev.respond_within,
        format!(
            "response target ({}): if nobody has acknowledged, announce the breach and escalate to the next step at once",
            human_duration(sev.respond_within)
        ),
    ));
    rows.push((
        sev.status_update_every,
        format!(
            "status-update reminder, then every {} while open (an update resets it)",
            human_duration(sev.status_update_every)
        ),
    ));
    rows.sort_by_key(|(at, _)| *at);
    let mut lines = vec![format!(
        "Escalation plan for {severity} ({}), from the declaration until acknowledged or resolved:",
        sev.name
    )];
    lines.extend(
        rows.into_iter()
            .map(|(at, text)| format!("{:>7}  {text}", format!("+{}", offset(at)))),
    );
    let reminders: Vec<String> = policy
        .postmortem_reminders
        .iter()
        .map(|d| format!("+{}", human_duration(*d)))
        .collect();
    lines.push(format!(
        "After resolution: postmortem reminders at {} (the postmortem is due within {}).",
        reminders.join(" and "),
        human_duration(policy.postmortem_due)
    ));
    lines
}

fn offset(duration: Duration) -> String {
    if duration.is_zero() {
        "0m".to_string()
    } else {
        human_duration(duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_targets_parse() {
        assert_eq!(
            PageTarget::parse("oncall"),
            Ok(PageTarget::Service("oncall".into()))
        );
        assert_eq!(
            PageTarget::parse("service:DevOps-Lead"),
            Ok(PageTarget::Service("devops-lead".into()))
        );
        assert_eq!(
            PageTarget::parse("user:PABC123"),
            Ok(PageTarget::User("PABC123".into()))
        );
        assert_eq!(
            PageTarget::parse("escalation_policy:P1"),
            Ok(PageTarget::EscalationPolicy("P1".into()))
        );
        assert_eq!(
            PageTarget::parse("schedule:PSCHED"),
            Ok(PageTarget::Schedule("PSCHED".into()))
        );
        for bad in ["", "user:", "team:x", "service:a b", "<!here>"] {
            assert!(PageTarget::parse(bad).is_err(), "{bad:?}");
        }
        let target = PageTarget::parse("user:PABC123").unwrap();
        assert_eq!(PageTarget::parse(&target.to_string()), Ok(target));
    }
}
