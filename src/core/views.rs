//! The messages warroom posts: which template, with which data, with which buttons.

use super::command::{CommandName, ParseError};
use super::escalation::EscalationStep;
use super::incident::{Actor, Incident, TimelineEvent};
use super::message::{
    Button, ButtonAction, ButtonStyle, ConfirmDialog, Field, Message, Section, TemplateName,
    Visibility,
};
use super::{Policy, UserRef, human_duration};
use chrono::{DateTime, Utc};
use serde_json::json;

/// How timestamps appear in chat.
pub fn format_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The channel topic: severity, status, commander.
pub fn topic(incident: &Incident) -> String {
    format!(
        "{} {} | {} | commander @{} | {}",
        incident.key, incident.severity, incident.status, incident.commander, incident.title
    )
}

/// The "INCIDENT ALERT" message posted (and pinned) in the incident channel.
pub fn alert(policy: &Policy, incident: &Incident, reason: &str, details: &[String]) -> Message {
    let sev = policy.severity(incident.severity);
    Message::from_template(
        Visibility::InChannel,
        TemplateName::IncidentAlert,
        json!({
            "key": incident.key.to_string(),
            "severity": incident.severity.to_string(),
            "severity_name": sev.name,
            "title": incident.title,
            "status": "Investigating",
            "impact": format!("{} {}: {}", incident.severity, sev.name, sev.meaning),
            "started": format_time(incident.declared_at),
            "description": incident.title,
            "commander": incident.commander.to_string(),
            "update_every": human_duration(sev.status_update_every),
            "respond_within": human_duration(sev.respond_within),
            "severity_reason": reason,
            "monitoring": details,
        }),
    )
}

/// The step's mentions that mean something on the incident's platform: plain names on every
/// platform, `slack:…` only on Slack, `discord:…` only on Discord.
fn mentions_for(step: &EscalationStep, platform: super::Platform) -> Vec<String> {
    step.mention
        .iter()
        .filter(|m| match m.split_once(':') {
            Some((scope, _)) => scope == platform.as_str(),
            None => true,
        })
        .cloned()
        .collect()
}

/// The pinned summary of the incident channel, edited in place as the incident changes: what
/// it is, who leads it, who acknowledged, and the buttons that still apply.
pub fn summary(policy: &Policy, incident: &Incident) -> Message {
    let sev = policy.severity(incident.severity);
    let resolved = incident.resolved_at.map(format_time);
    let duration = incident
        .resolved_at
        .map(|at| human_duration(at - incident.declared_at));
    let buttons = incident_buttons(incident)
        .into_iter()
        .filter(|b| match b.action {
            ButtonAction::Acknowledge { .. } => {
                incident.status.is_open() && incident.acknowledged_at.is_none()
            }
            ButtonAction::Resolve { .. } => incident.status.is_open(),
            _ => false,
        })
        .collect();
    Message::from_template(
        Visibility::InChannel,
        TemplateName::Summary,
        json!({
            "key": incident.key.to_string(),
            "severity": incident.severity.to_string(),
            "severity_name": sev.name,
            "status": incident.status.to_string(),
            "title": incident.title,
            "commander": incident.commander.to_string(),
            "declared_by": incident.declared_by.to_string(),
            "declared": format_time(incident.declared_at),
            "respond_within": human_duration(sev.respond_within),
            "acknowledged_by": incident.acknowledged_by.as_ref().map(ToString::to_string),
            "acknowledged": incident.acknowledged_at.map(format_time),
            "resolved": resolved,
            "duration": duration,
            "root_cause": incident.root_cause,
        }),
    )
    .with_buttons(buttons)
}

/// Acknowledge and Resolve, with a confirmation before resolving.
pub fn incident_buttons(incident: &Incident) -> Vec<Button> {
    vec![
        Button {
            label: "Acknowledge".into(),
            style: ButtonStyle::Primary,
            action: ButtonAction::Acknowledge {
                incident: incident.key,
            },
            confirm: None,
        },
        Button {
            label: "Resolve".into(),
            style: ButtonStyle::Danger,
            action: ButtonAction::Resolve {
                incident: incident.key,
            },
            confirm: Some(ConfirmDialog {
                title: format!("Resolve {}?", incident.key),
                text: format!(
                    "This marks {} as resolved. To record the root cause, use `/incident resolve <root cause>` instead.",
                    incident.key
                ),
                confirm: "Resolve".into(),
                deny: "Cancel".into(),
            }),
        },
    ]
}

/// The announcement of a declared or resolved incident in the incidents channel.
pub fn announcement(incident: &Incident, actor: &Actor) -> Message {
    Message::from_template(
        Visibility::InChannel,
        TemplateName::IncidentAnnouncement,
        json!({
            "key": incident.key.to_string(),
            "severity": incident.severity.to_string(),
            "title": incident.title,
            "channel": incident.channel.to_string(),
            "actor": actor.to_string(),
            "resolved": !incident.status.is_open(),
            "duration": incident.resolved_at.map(|r| human_duration(r - incident.declared_at)),
        }),
    )
}

/// The direct answer to whoever declared.
pub fn declared_reply(incident: &Incident, reason: &str) -> Message {
    Message::from_template(
        Visibility::Ephemeral,
        TemplateName::Declared,
        json!({
            "key": incident.key.to_string(),
            "channel": incident.channel.to_string(),
            "severity": incident.severity.to_string(),
            "severity_reason": reason,
        }),
    )
}

/// The "INCIDENT RESOLVED" message.
pub fn resolved(policy: &Policy, incident: &Incident) -> Message {
    let resolved_at = incident.resolved_at.unwrap_or(incident.declared_at);
    Message::from_template(
        Visibility::InChannel,
        TemplateName::IncidentResolved,
        json!({
            "key": incident.key.to_string(),
            "severity": incident.severity.to_string(),
            "title": incident.title,
            "duration": human_duration(resolved_at - incident.declared_at),
            "root_cause": incident.root_cause.clone().unwrap_or_else(|| "not yet stated".into()),
            "postmortem_within": human_duration(policy.postmortem_due),
        }),
    )
}

/// A change of state (ack, severity, status, commander) with the current summary fields.
pub fn status_change(incident: &Incident, actor: &Actor, change: String) -> Message {
    Message::from_template(
        Visibility::InChannel,
        TemplateName::StatusChange,
        json!({ "key": incident.key.to_string(), "actor": actor.to_string(), "change": change }),
    )
    .with_fields(summary_fields(incident))
}

fn summary_fields(incident: &Incident) -> Vec<Field> {
    vec![
        Field {
            label: "Severity".into(),
            value: incident.severity.to_string(),
        },
        Field {
            label: "Status".into(),
            value: incident.status.to_string(),
        },
        Field {
            label: "Commander".into(),
            value: format!("@{}", incident.commander),
        },
    ]
}

/// A status update someone posted.
pub fn status_update(policy: &Policy, incident: &Incident, actor: &Actor, text: &str) -> Message {
    let every = policy.severity(incident.severity).status_update_every;
    Message::from_template(
        Visibility::InChannel,
        TemplateName::StatusUpdate,
        json!({
            "key": incident.key.to_string(),
            "actor": actor.to_string(),
            "text": text,
            "status": incident.status.to_string(),
            "next_due": format_time(incident.last_update_at + every),
        }),
    )
}

/// "No status update for 30 minutes."
pub fn status_reminder(incident: &Incident, since: &str, late: Option<String>) -> Message {
    Message::from_template(
        Visibility::InChannel,
        TemplateName::StatusReminder,
        json!({
            "key": incident.key.to_string(),
            "commander": incident.commander.to_string(),
            "since": since,
            "late": late,
        }),
    )
}

/// An escalation step fired (by its timer, a breach, or `escalate`).
#[allow(clippy::too_many_arguments)]
pub fn escalation(
    incident: &Incident,
    index: usize,
    step: &EscalationStep,
    paged: &[String],
    notes: &[String],
    late: Option<String>,
    actor: &Actor,
    why: &str,
) -> Message {
    Message::from_template(
        Visibility::InChannel,
        TemplateName::Escalation,
        json!({
            "key": incident.key.to_string(),
            "severity": incident.severity.to_string(),
            "step": index + 1,
            "name": step.name,
            "why": why,
            "actor": actor.to_string(),
            "paged": paged,
            "mentions": mentions_for(step, incident.platform),
            "notes": notes,
            "late": late,
        }),
    )
    .with_buttons(incident_buttons(incident))
}

/// Nobody acknowledged within the response target.
pub fn response_breach(
    incident: &Incident,
    target: chrono::Duration,
    next: Option<&str>,
) -> Message {
    Message::from_template(
        Visibility::InChannel,
        TemplateName::ResponseBreach,
        json!({
            "key": incident.key.to_string(),
            "severity": incident.severity.to_string(),
            "target": human_duration(target),
            "next": next,
        }),
    )
}

/// "The postmortem is due."
pub fn postmortem_reminder(
    incident: &Incident,
    after: chrono::Duration,
    due_at: DateTime<Utc>,
) -> Message {
    Message::from_template(
        Visibility::InChannel,
        TemplateName::PostmortemReminder,
        json!({
            "key": incident.key.to_string(),
            "title": incident.title,
            "after": human_duration(after),
            "due": format_time(due_at),
            "commander": incident.commander.to_string(),
        }),
    )
}

/// Who is on call, as PagerDuty said.
pub fn on_call(incident: &Incident, target: &str, names: &[String], ask_to_ack: bool) -> Message {
    Message::from_template(
        Visibility::InChannel,
        TemplateName::OnCall,
        json!({ "key": incident.key.to_string(), "target": target, "names": names, "ask_to_ack": ask_to_ack }),
    )
}

/// An outbound call failed for good.
pub fn delivery_failed(incident: &Incident, what: &str, reason: &str) -> Message {
    Message::from_template(
        Visibility::InChannel,
        TemplateName::DeliveryFailed,
        json!({ "key": incident.key.to_string(), "what": what, "reason": reason }),
    )
}

/// `help` and `help <command>`.
pub fn help(topic: Option<CommandName>) -> Message {
    let commands: Vec<_> = match topic {
        Some(name) => vec![name],
        None => CommandName::ALL.to_vec(),
    }
    .into_iter()
    .map(|c| json!({ "usage": c.usage(), "summary": c.summary() }))
    .collect();
    Message::from_template(
        Visibility::Ephemeral,
        TemplateName::Help,
        json!({ "commands": commands, "single": topic.is_some() }),
    )
}

/// A parse error with its usage.
pub fn usage(error: &ParseError) -> Message {
    Message::from_template(
        Visibility::Ephemeral,
        TemplateName::Usage,
        json!({ "problem": error.problem, "usage": error.usage() }),
    )
}

/// Every event of an incident.
pub fn timeline(incident: &Incident, events: &[TimelineEvent]) -> Message {
    let rows: Vec<_> = events
        .iter()
        .map(|e| {
            json!({
                "at": format_time(e.at),
                "offset": human_duration(e.at - incident.declared_at),
                "actor": e.actor.to_string(),
                "text": e.kind.describe(),
            })
        })
        .collect();
    Message::from_template(
        Visibility::Ephemeral,
        TemplateName::Timeline,
        json!({ "key": incident.key.to_string(), "title": incident.title, "events": rows }),
    )
}

/// `list` (open incidents) and `list --all`.
pub fn incident_list(incidents: &[Incident], all: bool, now: DateTime<Utc>) -> Message {
    let rows: Vec<_> = incidents
        .iter()
        .map(|i| {
            json!({
                "key": i.key.to_string(),
                "severity": i.severity.to_string(),
                "status": i.status.to_string(),
                "title": i.title,
                "channel": i.channel.to_string(),
                "age": human_duration(i.resolved_at.unwrap_or(now) - i.declared_at),
                "open": i.status.is_open(),
            })
        })
        .collect();
    Message::from_template(
        Visibility::Ephemeral,
        TemplateName::IncidentList,
        json!({ "incidents": rows, "all": all }),
    )
}

/// A command that needs an incident was typed outside an incident channel.
pub fn not_in_incident_channel(
    command: CommandName,
    open: &[Incident],
    now: DateTime<Utc>,
) -> Message {
    let mut message = incident_list(open, false, now);
    message.sections.insert(
        0,
        super::message::Section::Text {
            template: TemplateName::Notice,
            data: json!({ "text": format!(
                "`{command}` acts on the incident of the channel it is typed in, and this is not an incident channel. Type it in one of these channels:"
            ) }),
        },
    );
    message
}

/// A refusal that changes nothing (resolve twice, ack a resolved incident, ...).
pub fn refusal(text: String) -> Message {
    Message::notice(Visibility::Ephemeral, text)
}

/// A short notice for everyone in the channel.
pub fn notice_in_channel(text: String) -> Message {
    Message::notice(Visibility::InChannel, text)
}

/// At most this many timeline entries go into a postmortem draft; `timeline` shows the rest.
pub const POSTMORTEM_TIMELINE_LIMIT: usize = 100;

/// The postmortem draft (`postmortem`), from the incident and its whole timeline: summary,
/// severity history, detection, times to acknowledge and resolve, paging, runbook actions,
/// status updates, the timeline, and the sections a person fills in.
pub fn postmortem_draft(
    policy: &Policy,
    incident: &Incident,
    timeline: &[TimelineEvent],
    now: DateTime<Utc>,
) -> Message {
    use super::incident::EventKind as K;
    let row = |e: &TimelineEvent, text: String| {
        json!({
            "at": format_time(e.at),
            "offset": human_duration(e.at - incident.declared_at),
            "by": e.actor.to_string(),
            "text": text,
        })
    };
    let mut severity_history = Vec::new();
    let mut paging = Vec::new();
    let mut actions = Vec::new();
    let mut updates = Vec::new();
    let mut detection = format!("Declared in chat by @{}.", incident.declared_by);
    let mut suppressed = None;
    for e in timeline {
        match &e.kind {
            K::Declared {
                severity, reason, ..
            } => {
                severity_history.push(row(
                    e,
                    format!("at declaration: {}", reason.explain(*severity)),
                ));
                detection = match &e.actor {
                    Actor::Monitoring(source) => format!(
                        "Opened by {source} from alert group {}.",
                        incident.alert_group.as_deref().unwrap_or("(unknown)")
                    ),
                    Actor::PagerDuty(agent) => {
                        format!("Opened from PagerDuty (triggered by {agent}).")
                    }
                    Actor::User(user) => format!("Declared in chat by @{user}."),
                    Actor::System => "Declared by warroom.".to_string(),
                };
            }
            K::SeverityChanged { from, to } => {
                severity_history.push(row(e, format!("{from} → {to} by {}", e.actor)));
            }
            K::Escalated { .. }
            | K::Paged { .. }
            | K::OnCall { .. }
            | K::ResponseTargetBreached { .. }
            | K::Acknowledged
            | K::PagingResumed { .. }
            | K::PageWithdrawn { .. }
            | K::DeliveryFailed { .. }
            | K::PagingSuppressed { .. } => {
                if matches!(e.kind, K::PagingSuppressed { .. }) {
                    suppressed = Some(e.kind.describe());
                }
                paging.push(row(e, e.kind.describe()));
            }
            K::RunbookRan { .. }
            | K::ChangeApplied { .. }
            | K::ChangeRefused { .. }
            | K::ChangeDropped { .. } => actions.push(row(e, e.kind.describe())),
            K::StatusUpdate { text } => updates.push(row(e, text.clone())),
            K::StatusChanged { from, to } => updates.push(row(e, format!("status {from} → {to}"))),
            _ => {}
        }
    }
    let sev = policy.severity(incident.severity);
    let acknowledged = incident.acknowledged_at.map(|at| {
        json!({
            "at": format_time(at),
            "by": incident.acknowledged_by.as_ref().map(|u| format!("@{u}")).unwrap_or_else(|| "PagerDuty".to_string()),
            "after": human_duration(at - incident.declared_at),
        })
    });
    // The target that applied is the one of the severity in force when the incident was
    // acknowledged (or now, if it never was); whether it was missed is what the timeline
    // recorded when the target passed.
    let judged_at = incident
        .acknowledged_at
        .or(incident.resolved_at)
        .unwrap_or(now);
    let severity_then = timeline.iter().filter(|e| e.at <= judged_at).fold(
        incident.severity,
        |severity, e| match &e.kind {
            K::Declared { severity, .. } => *severity,
            K::SeverityChanged { to, .. } => *to,
            _ => severity,
        },
    );
    let breached = timeline.iter().find_map(|e| match e.kind {
        K::ResponseTargetBreached { target_seconds } => Some(target_seconds),
        _ => None,
    });
    let target_missed = breached.is_some();
    let respond_within = breached
        .map(chrono::Duration::seconds)
        .unwrap_or(policy.severity(severity_then).respond_within);
    let shown = timeline.len().min(POSTMORTEM_TIMELINE_LIMIT);
    let mut data = json!({
            "fenced": false,
            "key": incident.key.to_string(),
            "title": incident.title,
            "severity": incident.severity.to_string(),
            "severity_name": sev.name,
            "status": incident.status.to_string(),
            "declared_at": format_time(incident.declared_at),
            "detection": detection,
            "suppressed": suppressed,
            "acknowledged": acknowledged,
            "resolved_at": incident.resolved_at.map(format_time),
            "time_to_resolve": incident.resolved_at.map(|at| human_duration(at - incident.declared_at)),
            "open_for": human_duration(now - incident.declared_at),
            "respond_within": human_duration(respond_within),
            "target_severity": severity_then.to_string(),
            "target_missed": target_missed,
            "commander": format!("@{}", incident.commander),
            "root_cause": incident.root_cause,
            "alerts": incident.alerts.iter().map(|a| json!({
                "state": if a.firing { "firing" } else { "resolved" },
                "text": a.text,
            })).collect::<Vec<_>>(),
            "severity_history": severity_history,
            "paging": paging,
            "actions": actions,
            "updates": updates,
            "timeline": timeline[..shown].iter().map(|e| row(e, e.kind.describe())).collect::<Vec<_>>(),
            "more": timeline.len() - shown,
            "postmortem_due": incident.resolved_at.map(|at| format_time(at + policy.postmortem_due)),
    });
    unfence(&mut data);
    Message::from_template(Visibility::InChannel, TemplateName::Postmortem, data)
}

/// A document (`Effect::Upload`) as a message of its own: its text in a code block, for the
/// platforms that post it rather than upload it.
pub fn as_code_block(document: &Message) -> Message {
    let mut message = document.clone();
    for section in &mut message.sections {
        if let Section::Text { data, .. } = section
            && data.get("fenced").is_some()
        {
            data["fenced"] = json!(true);
        }
    }
    message
}

/// The draft may be posted inside a code block: a fence typed into a title, an update or an
/// alert must not end it early.
fn unfence(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) if text.contains("```") => {
            *text = text.replace("```", "'''");
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(unfence),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(unfence),
        _ => {}
    }
}

/// The start of a maintenance window, for the incidents channel.
pub fn maintenance_started(
    policy: &Policy,
    name: &str,
    until: DateTime<Utc>,
    by: Option<&UserRef>,
) -> Message {
    Message::from_template(
        Visibility::InChannel,
        TemplateName::Maintenance,
        json!({
            "started": true,
            "name": name,
            "until": format_time(until),
            "by": by.map(|u| u.to_string()),
            "threshold": policy.maintenance_pages_from.to_string(),
        }),
    )
}

/// The end of a maintenance window, for the incidents channel.
/// The end of a maintenance window; `others` are the windows still in force.
pub fn maintenance_ended(name: &str, by: Option<&UserRef>, others: &[String]) -> Message {
    Message::from_template(
        Visibility::InChannel,
        TemplateName::Maintenance,
        json!({
            "ended": true,
            "name": name,
            "by": by.map(|u| u.to_string()),
            "others": others,
        }),
    )
}

/// `maintenance`: the windows in force and the next occurrence of each recurring one.
pub fn maintenance_list(
    policy: &Policy,
    active: &[super::maintenance::Occurrence],
    scheduled: &[(String, super::maintenance::Occurrence)],
) -> Message {
    let window = |o: &super::maintenance::Occurrence| json!({ "name": o.name, "starts": format_time(o.starts_at), "ends": format_time(o.ends_at) });
    Message::from_template(
        Visibility::Ephemeral,
        TemplateName::Maintenance,
        json!({
            "listing": true,
            "active": active.iter().map(window).collect::<Vec<_>>(),
            "scheduled": scheduled.iter().map(|(every, o)| {
                let mut w = window(o);
                w["every"] = json!(every);
                w
            }).collect::<Vec<_>>(),
            "threshold": policy.maintenance_pages_from.to_string(),
        }),
    )
}

/// One message of every template, built from a sample incident: `warroom check` renders them
/// all on every platform, and the snapshot tests pin their text.
pub fn samples(policy: &Policy, now: DateTime<Utc>) -> Vec<Message> {
    use super::command::parse;
    use super::decide::{DeclareRequest, apply, declare, fire_timer};
    use super::{ChannelName, Effect, IncidentKey, Platform, TimerKind, UserRef};

    let alice = UserRef::parse("alice").expect("valid sample user");
    let declared = declare(
        policy,
        DeclareRequest {
            key: IncidentKey(42),
            title: "API returning 503s".into(),
            severity: None,
            actor: alice.clone(),
            platform: Platform::Console,
            channel: ChannelName::parse("inc-20261128-api-returning-503s")
                .expect("valid sample channel"),
            now,
            from_pagerduty: None,
        },
    );
    let mut messages: Vec<Message> = Vec::new();
    let mut take = |effects: &[Effect]| {
        for effect in effects {
            if let Effect::Post { message, .. } = effect {
                messages.push(message.clone());
            }
        }
    };
    take(&declared.effects);
    // The first escalation step and a response-target breach, if the policy has steps.
    if let Some(fired) = fire_timer(
        policy,
        &declared.incident,
        TimerKind::EscalationStep { step: 0 },
        now,
        0,
        now,
    ) {
        take(&fired.effects);
    }
    let breach_at = now + policy.severity(declared.incident.severity).respond_within;
    if let Some(breach) = fire_timer(
        policy,
        &declared.incident,
        TimerKind::ResponseTarget,
        breach_at,
        0,
        breach_at,
    ) {
        take(&breach.effects);
    }
    let later = now + chrono::Duration::minutes(12);
    let acked = apply(
        policy,
        &declared.incident,
        &alice,
        &super::Command::Ack,
        later,
    )
    .expect("sample ack");
    take(&acked.effects);
    let updated = apply(
        policy,
        &acked.incident,
        &alice,
        &super::Command::Update("Rolled back the 14:02 deploy & restarted <db-1> @here, see [runbook](https://example.com)".into()),
        later,
    )
    .expect("sample update");
    take(&updated.effects);
    let reminder = fire_timer(
        policy,
        &updated.incident,
        TimerKind::StatusReminder,
        later,
        updated.incident.reminder_generation,
        later + chrono::Duration::hours(1),
    )
    .expect("sample reminder");
    take(&reminder.effects);
    let resolved = apply(
        policy,
        &updated.incident,
        &alice,
        &super::Command::Resolve {
            root_cause: Some("bad config push".into()),
        },
        later,
    )
    .expect("sample resolve");
    take(&resolved.effects);
    if let Some(postmortem) = fire_timer(
        policy,
        &resolved.incident,
        TimerKind::PostmortemReminder { reminder: 0 },
        later + chrono::Duration::hours(24),
        resolved.incident.escalation_generation,
        later + chrono::Duration::hours(24),
    ) {
        take(&postmortem.effects);
    }
    let on_call = super::decide::on_call_found(
        &resolved.incident,
        "schedule:PSCHED",
        &["Jane Doe".into()],
        later,
    );
    take(&on_call.effects);
    let failed = super::decide::delivery_failed(
        &resolved.incident,
        "page PagerDuty service oncall",
        "PagerDuty answered 400 Bad Request",
        later,
    );
    take(&failed.effects);
    let events = [
        declared.events.clone(),
        acked.events.clone(),
        updated.events.clone(),
        resolved.events.clone(),
    ]
    .concat();
    messages.extend(declared.reply);
    messages.push(timeline(&resolved.incident, &events));
    messages.push(incident_list(
        &[updated.incident.clone(), resolved.incident.clone()],
        true,
        later,
    ));
    messages.push(incident_list(&[], false, later));
    messages.push(help(None));
    messages.push(help(Some(CommandName::Declare)));
    messages.push(usage(&parse("sev P7").expect_err("sample error")));
    messages.push(not_in_incident_channel(
        CommandName::Ack,
        std::slice::from_ref(&updated.incident),
        later,
    ));
    let olivia = Actor::User(UserRef::parse("olivia").expect("valid sample user"));
    messages.push(runbook_output(
        &updated.incident,
        &olivia,
        "pods deployment=stock-analysis-api namespace=stock-analysis-system",
        Some("Current pods"),
        true,
        "NAME                              READY  STATUS   RESTARTS  AGE\nstock-analysis-api-7d9f8-abcde     1/1    Running  0         5m",
    ));
    messages.push(change_proposed(
        &updated.incident,
        &olivia,
        ChangeView {
            request: 7,
            action: "scale deployment=stock-analysis-api namespace=stock-analysis-system replicas=5",
            change: "stock-analysis-api in stock-analysis-system: 3 → 5 replicas",
            bounds: Some((3, 10)),
            prior: "3 replicas",
            expires: later + chrono::Duration::minutes(5),
            who_may: "roles: operators",
        },
    ));
    messages.push(change_result(
        &updated.incident,
        ChangeOutcome {
            request: 7,
            action: "scale deployment=stock-analysis-api namespace=stock-analysis-system replicas=5",
            confirmed_by: &UserRef::parse("bob").expect("valid sample user"),
            ok: true,
            outcome: "stock-analysis-api in stock-analysis-system: 3 → 5 replicas",
            prior: Some("3 replicas"),
            undo: true,
        },
    ));
    messages.push(stats(&super::stats::compute(
        policy,
        super::stats::DEFAULT_DAYS,
        now - chrono::Duration::days(super::stats::DEFAULT_DAYS),
        std::slice::from_ref(&resolved.incident),
        &[],
    )));
    let mut history = [
        declared.events.clone(),
        acked.events.clone(),
        updated.events.clone(),
        on_call.events.clone(),
        resolved.events.clone(),
    ]
    .concat();
    history.push(TimelineEvent {
        at: later,
        actor: olivia.clone(),
        kind: super::EventKind::RunbookRan {
            action: "pods deployment=stock-analysis-api".into(),
            ok: true,
            outcome: "3 pods, all Running".into(),
        },
    });
    let draft = postmortem_draft(
        policy,
        &resolved.incident,
        &history,
        later + chrono::Duration::hours(1),
    );
    // As a document (a Slack snippet, the console) and as a message (Discord).
    messages.push(as_code_block(&draft));
    messages.push(draft);
    let window = super::maintenance::Occurrence {
        id: "adhoc:sample".into(),
        name: "database upgrade".into(),
        starts_at: later,
        ends_at: later + chrono::Duration::hours(2),
    };
    messages.push(maintenance_started(
        policy,
        &window.name,
        window.ends_at,
        Some(&UserRef::parse("olivia").expect("valid sample user")),
    ));
    messages.push(maintenance_ended(&window.name, None, &[]));
    messages.push(maintenance_ended(
        &window.name,
        Some(&UserRef::parse("olivia").expect("valid sample user")),
        &["monthly maintenance".to_string()],
    ));
    messages.push(maintenance_list(
        policy,
        std::slice::from_ref(&window),
        &[(
            "the first Sunday of each month, 02:00–06:00 UTC".into(),
            super::maintenance::Occurrence {
                id: "recurring:monthly maintenance:2026-12-06T02:00:00Z".into(),
                name: "monthly maintenance".into(),
                starts_at: later + chrono::Duration::days(7),
                ends_at: later + chrono::Duration::days(7) + chrono::Duration::hours(4),
            },
        )],
    ));
    messages.push(playbook_list(&[
        (
            "scale-api".to_string(),
            "Scale the API deployment within its bounds.".to_string(),
            "replicas (integer, default 5)".to_string(),
        ),
        (
            "system-health-check".to_string(),
            "Nodes, pods, endpoints, events and a health probe.".to_string(),
            String::new(),
        ),
    ]));
    messages
}

/// `stats`: the figures of a period, for the person who asked.
pub fn stats(stats: &super::stats::Stats) -> Message {
    let by = |counts: &[(super::Severity, usize)]| -> Vec<serde_json::Value> {
        counts
            .iter()
            .map(|(severity, count)| json!({ "severity": severity.to_string(), "count": count }))
            .collect()
    };
    let duration = |d: Option<chrono::Duration>| d.map(human_duration).unwrap_or_default();
    Message::from_template(
        Visibility::Ephemeral,
        TemplateName::Stats,
        json!({
            "period": if stats.days == 1 { "day".to_string() } else { format!("{} days", stats.days) },
            "since": stats.since.format("%Y-%m-%d %H:%M UTC").to_string(),
            "total": stats.total,
            "open": stats.open,
            "severities": by(&stats.by_severity),
            "acknowledged": stats.acknowledge.count,
            "ack_mean": duration(stats.acknowledge.mean),
            "ack_p90": duration(stats.acknowledge.p90),
            "resolved": stats.resolve.count,
            "resolve_mean": duration(stats.resolve.mean),
            "resolve_p90": duration(stats.resolve.p90),
            "breached": stats.breaches.iter().map(|(_, n)| n).sum::<usize>(),
            "breaches": by(&stats.breaches),
            "steps": stats.escalations.iter().map(|s| json!({ "name": s.name, "count": s.incidents })).collect::<Vec<_>>(),
            "truncated": stats.truncated,
            "limit": super::stats::MAX_INCIDENTS,
        }),
    )
}

/// Output of a runbook action, posted in the incident channel (already redacted and cut).
pub fn runbook_output(
    incident: &Incident,
    actor: &Actor,
    action: &str,
    step: Option<&str>,
    ok: bool,
    output: &str,
) -> Message {
    Message::from_template(
        Visibility::InChannel,
        TemplateName::RunbookOutput,
        json!({
            "key": incident.key.to_string(),
            "actor": actor.to_string(),
            "action": action,
            "step": step,
            "ok": ok,
            // A code block must not be closed early by the output itself.
            "output": output.replace("```", "\u{2035}\u{2035}\u{2035}"),
        }),
    )
}

/// What a change proposal shows.
pub struct ChangeView<'a> {
    pub request: i64,
    pub action: &'a str,
    pub change: &'a str,
    pub bounds: Option<(i32, i32)>,
    pub prior: &'a str,
    pub expires: DateTime<Utc>,
    pub who_may: &'a str,
}

/// A change that passed its dry run, with Confirm and Cancel.
pub fn change_proposed(incident: &Incident, actor: &Actor, view: ChangeView<'_>) -> Message {
    Message::from_template(
        Visibility::InChannel,
        TemplateName::ChangeProposed,
        json!({
            "key": incident.key.to_string(),
            "actor": actor.to_string(),
            "request": view.request,
            "action": view.action,
            "change": view.change,
            "bounds": view.bounds.map(|(min, max)| format!("{min}–{max}")),
            "prior": view.prior,
            "expires": format_time(view.expires),
            "who_may": view.who_may,
        }),
    )
    .with_buttons(vec![
        Button {
            label: "Confirm".into(),
            style: ButtonStyle::Primary,
            action: ButtonAction::Confirm {
                request: view.request,
            },
            confirm: Some(ConfirmDialog {
                title: format!("Apply change #{}?", view.request),
                text: view.change.to_string(),
                confirm: "Apply".into(),
                deny: "Not yet".into(),
            }),
        },
        Button {
            label: "Cancel".into(),
            style: ButtonStyle::Default,
            action: ButtonAction::Cancel {
                request: view.request,
            },
            confirm: None,
        },
    ])
}

/// What a confirmed change did.
pub struct ChangeOutcome<'a> {
    pub request: i64,
    pub action: &'a str,
    pub confirmed_by: &'a UserRef,
    pub ok: bool,
    pub outcome: &'a str,
    pub prior: Option<&'a str>,
    /// Offer Undo (a scale that worked).
    pub undo: bool,
}

/// The result of a confirmed change, with Undo when it can be undone.
pub fn change_result(incident: &Incident, view: ChangeOutcome<'_>) -> Message {
    let message = Message::from_template(
        Visibility::InChannel,
        TemplateName::ChangeResult,
        json!({
            "key": incident.key.to_string(),
            "request": view.request,
            "action": view.action,
            "confirmed_by": view.confirmed_by.to_string(),
            "ok": view.ok,
            "outcome": view.outcome,
            "prior": view.prior,
        }),
    );
    if view.ok && view.undo {
        message.with_buttons(vec![Button {
            label: "Undo".into(),
            style: ButtonStyle::Default,
            action: ButtonAction::Undo {
                request: view.request,
            },
            confirm: None,
        }])
    } else {
        message
    }
}

/// The playbooks: (name, description, parameters).
pub fn playbook_list(playbooks: &[(String, String, String)]) -> Message {
    let entries: Vec<serde_json::Value> = playbooks
        .iter()
        .map(|(name, description, parameters)| {
            json!({ "name": name, "description": description, "parameters": parameters })
        })
        .collect();
    Message::from_template(
        Visibility::Ephemeral,
        TemplateName::PlaybookList,
        json!({ "playbooks": entries }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::{Section, TemplateName};

    #[test]
    fn samples_cover_every_template() {
        let policy = crate::core::decide::tests::policy();
        let samples = samples(&policy, chrono::Utc::now());
        for name in TemplateName::ALL {
            assert!(
                samples.iter().any(|m| m
                    .sections
                    .iter()
                    .any(|s| matches!(s, Section::Text { template, .. } if *template == name))),
                "no sample renders {name:?}"
            );
        }
    }
}
