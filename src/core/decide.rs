//! The incident state machine: given the current state, an input and `now`, decide the new
//! state, the timeline events, the effects and the timers. Pure.

use super::command::Command;
use super::escalation::{self, PageTarget, StopWhen};
use super::incident::{
    Actor, EventKind, Incident, IncidentKey, MonitoredAlert, Platform, Status, TimelineEvent,
};
use super::message::Message;
use super::severity::{Severity, SeverityReason};
use super::text::UserRef;
use super::{
    ChannelName, ChannelTarget, Decision, Effect, PagerDutyAction, PagerDutySeverity, Policy, Slot,
    TimerKind, TimerRequest, human_duration, views,
};
use chrono::{DateTime, Utc};

/// Everything needed to declare an incident; the app supplies the number and a free channel.
#[derive(Clone, Debug)]
pub struct DeclareRequest {
    pub key: IncidentKey,
    pub title: String,
    pub severity: Option<Severity>,
    pub actor: UserRef,
    pub platform: Platform,
    pub channel: ChannelName,
    pub now: DateTime<Utc>,
    /// Set when PagerDuty opened the incident (webhook `incident.triggered`).
    pub from_pagerduty: Option<PagerDutyOrigin>,
}

/// A PagerDuty incident that opened a warroom incident.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PagerDutyOrigin {
    pub incident_id: String,
    /// Who or what triggered it, as PagerDuty names them.
    pub agent: String,
}

/// The severity a declaration gets, and why.
pub fn classify(
    policy: &Policy,
    title: &str,
    explicit: Option<Severity>,
) -> (Severity, SeverityReason) {
    match explicit {
        Some(sev) => (sev, SeverityReason::Explicit),
        None => policy.classification.classify(title),
    }
}

fn reason_sentence(severity: Severity, reason: &SeverityReason) -> String {
    let other = if severity == Severity::P0 { "P1" } else { "P0" };
    format!(
        "Severity {}. Change it with `/incident sev {other}` (P0–P3).",
        reason.explain(severity)
    )
}

/// An Alertmanager group that opens an incident.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertOrigin {
    /// The monitoring system, as named in the timeline (`Alertmanager`).
    pub source: String,
    pub group_key: String,
    /// The group's alerts as reported.
    pub alerts: Vec<MonitoredAlert>,
    /// The alerts' descriptions, for the alert message.
    pub details: Vec<String>,
    /// The severity the alerts' labels map to, and those labels (`severity=critical`).
    pub severity: Severity,
    pub labels: String,
    /// A maintenance window that holds paging back (its name and end), when one is in force
    /// and the severity is below the one that pages during maintenance.
    pub hold_paging: Option<(String, DateTime<Utc>)>,
}

/// Declare a new incident: channel, alert, announcement, and the escalation plan (its first
/// step, at +0, fires as soon as the scheduler runs).
pub fn declare(policy: &Policy, request: DeclareRequest) -> Decision {
    declare_with(policy, request, None)
}

/// Declare the incident an alert group opens: as `declare`, with the alerts in the alert
/// message and the timeline, the group linked, and no paging while `hold_paging` says so.
pub fn declare_from_alerts(
    policy: &Policy,
    request: DeclareRequest,
    origin: &AlertOrigin,
) -> Decision {
    declare_with(policy, request, Some(origin))
}

fn declare_with(
    policy: &Policy,
    request: DeclareRequest,
    alerts: Option<&AlertOrigin>,
) -> Decision {
    let (severity, reason) = match alerts {
        Some(origin) => (
            origin.severity,
            SeverityReason::Alert {
                labels: origin.labels.clone(),
            },
        ),
        None => classify(policy, &request.title, request.severity),
    };
    let now = request.now;
    let incident = Incident {
        key: request.key,
        title: request.title.clone(),
        severity,
        status: Status::Investigating,
        platform: request.platform,
        channel: request.channel.clone(),
        commander: request.actor.clone(),
        declared_by: request.actor.clone(),
        declared_at: now,
        acknowledged_at: None,
        acknowledged_by: None,
        resolved_at: None,
        root_cause: None,
        last_update_at: now,
        escalation_generation: 0,
        reminder_generation: 0,
        escalation_level: 0,
        paged_services: Vec::new(),
        pagerduty_incident_id: request
            .from_pagerduty
            .as_ref()
            .map(|o| o.incident_id.clone()),
        alert_group: alerts.map(|a| a.group_key.clone()),
        alerts: alerts.map(|a| a.alerts.clone()).unwrap_or_default(),
        postmortem_url: None,
        paging_held: alerts
            .and_then(|a| a.hold_paging.as_ref())
            .map(|(window, _)| window.clone()),
        escalation_from: None,
        response_breached_at: None,
        version: 0,
    };
    let actor = match (&request.from_pagerduty, alerts) {
        (Some(origin), _) => Actor::PagerDuty(origin.agent.clone()),
        (None, Some(origin)) => Actor::Monitoring(origin.source.clone()),
        (None, None) => Actor::User(request.actor.clone()),
    };
    let details: &[String] = alerts.map(|a| a.details.as_slice()).unwrap_or_default();
    let why = reason_sentence(severity, &reason);
    let effects = vec![
        Effect::CreateChannel {
            channel: incident.channel.clone(),
            topic: views::topic(&incident),
            invite: if alerts.is_some() {
                Vec::new()
            } else {
                vec![request.actor.clone()]
            },
        },
        Effect::Post {
            channel: ChannelTarget::Incident(incident.channel.clone()),
            message: views::alert(policy, &incident, &why, details),
            pin: true,
            slot: None,
        },
        Effect::Post {
            channel: ChannelTarget::Incident(incident.channel.clone()),
            message: views::summary(policy, &incident),
            pin: true,
            slot: Some(Slot::Summary),
        },
        Effect::Post {
            channel: ChannelTarget::Named(policy.announce_channel.clone()),
            message: views::announcement(&incident, &actor),
            pin: false,
            slot: None,
        },
    ];
    let mut events = vec![TimelineEvent {
        at: now,
        actor: actor.clone(),
        kind: EventKind::Declared {
            title: request.title,
            severity,
            reason,
        },
    }];
    if let Some(origin) = &request.from_pagerduty {
        events.push(TimelineEvent {
            at: now,
            actor: actor.clone(),
            kind: EventKind::PagerDutyLinked {
                incident_id: origin.incident_id.clone(),
            },
        });
    }
    let mut effects = effects;
    let every = policy.severity(severity).status_update_every;
    let mut timers = vec![TimerRequest {
        kind: TimerKind::StatusReminder,
        due_at: now + every,
        fence: incident.reminder_generation,
    }];
    if let Some(origin) = alerts {
        for alert in &origin.alerts {
            events.push(TimelineEvent {
                at: now,
                actor: actor.clone(),
                kind: alert_event(alert),
            });
        }
    }
    match alerts.and_then(|a| a.hold_paging.as_ref()) {
        Some((window, until)) => {
            events.push(TimelineEvent {
                at: now,
                actor: Actor::System,
                kind: EventKind::PagingSuppressed {
                    window: window.clone(),
                    until: *until,
                },
            });
            effects.push(Effect::Post {
                channel: ChannelTarget::Incident(incident.channel.clone()),
                message: views::notice_in_channel(format!(
                    "🛠️ Not paged: the maintenance window \"{window}\" is in force until {} and alerts below {} do not page during it. `/incident escalate` pages now, and any severity change starts the escalation.",
                    views::format_time(*until),
                    policy.maintenance_pages_from,
                )),
                pin: false,
                slot: None,
            });
        }
        None => timers.extend(escalation::plan(policy, &incident, now)),
    }
    Decision {
        reply: Some(views::declared_reply(&incident, &why)),
        events,
        effects,
        timers,
        incident,
    }
}

fn alert_event(alert: &MonitoredAlert) -> EventKind {
    if alert.firing {
        EventKind::AlertFiring {
            fingerprint: alert.fingerprint.clone(),
            text: alert.text.clone(),
        }
    } else {
        EventKind::AlertResolved {
            fingerprint: alert.fingerprint.clone(),
            text: alert.text.clone(),
        }
    }
}

/// At most this many alerts are listed in one message about a group's alerts.
const ALERT_LINES: usize = 10;
/// At most this many of its group's alerts are kept on an incident.
pub const MAX_KEPT_ALERTS: usize = 1_000;

/// What a notification of the group an open incident follows changes: alerts that are new
/// or fired again and alerts that resolved become timeline entries and one message in the
/// channel (never a page). A report older than what is recorded (an earlier firing episode,
/// a repeat overtaken by a later notification) changes nothing. A firing alert that maps to
/// a higher severity raises the incident's (and, if that reaches the paging threshold,
/// releases paging a maintenance window held back). When every alert has resolved
/// (`group_resolved`: Alertmanager says the whole group has, so alerts it no longer lists
/// resolved too), "monitoring reports resolved" is posted and, if `auto_resolve` and no
/// person has taken the incident over, it is resolved. `None` when nothing changed
/// (Alertmanager repeats a group every `repeat_interval`).
pub fn alerts_reported(
    policy: &Policy,
    current: &Incident,
    source: &str,
    reported: &[MonitoredAlert],
    group_resolved: bool,
    auto_resolve: bool,
    now: DateTime<Utc>,
) -> Option<Decision> {
    if !current.status.is_open() {
        return None;
    }
    let who = Actor::Monitoring(source.to_string());
    let mut draft = Draft::new(current, now);
    let mut changed_alerts: Vec<MonitoredAlert> = Vec::new();
    for alert in reported {
        let known = draft
            .next
            .alerts
            .iter_mut()
            .find(|a| a.fingerprint == alert.fingerprint);
        let changed = match known {
            None => {
                draft.next.alerts.push(alert.clone());
                true
            }
            Some(known) => {
                let newer = alert.starts_at > known.starts_at;
                let same = alert.starts_at == known.starts_at;
                match (known.firing, alert.firing) {
                    // Still firing; a later start (it flapped between notifications) is kept.
                    (true, true) => {
                        if newer {
                            known.starts_at = alert.starts_at;
                        }
                        false
                    }
                    // Fired again: a new episode. The same episode reported firing after its
                    // resolution is a stale copy.
                    (false, true) if newer => {
                        *known = alert.clone();
                        true
                    }
                    // Resolved: this episode (or a later one) ended.
                    (true, false) if newer || same => {
                        *known = alert.clone();
                        true
                    }
                    _ => false,
                }
            }
        };
        if changed {
            draft.event(&who, alert_event(alert));
            changed_alerts.push(alert.clone());
        }
    }
    if group_resolved {
        // Alertmanager reports the group resolved: alerts recorded as firing that it no
        // longer lists resolved too (their own notification may have been lost).
        for known in draft.next.alerts.iter_mut() {
            if known.firing && !reported.iter().any(|r| r.fingerprint == known.fingerprint) {
                known.firing = false;
                let resolved = known.clone();
                draft.events.push(TimelineEvent {
                    at: now,
                    actor: who.clone(),
                    kind: alert_event(&resolved),
                });
                changed_alerts.push(resolved);
            }
        }
    }
    if changed_alerts.is_empty() {
        return None;
    }
    // The incident keeps at most `MAX_KEPT_ALERTS`: resolved ones go first, oldest first
    // (the timeline keeps every one).
    while draft.next.alerts.len() > MAX_KEPT_ALERTS {
        let drop = draft
            .next
            .alerts
            .iter()
            .position(|a| !a.firing)
            .unwrap_or(0);
        draft.next.alerts.remove(drop);
    }
    let mut lines: Vec<String> = changed_alerts
        .iter()
        .take(ALERT_LINES)
        .map(|alert| {
            format!(
                "{} {}",
                if alert.firing {
                    "🔥 firing:"
                } else {
                    "✅ resolved:"
                },
                alert.text
            )
        })
        .collect();
    if changed_alerts.len() > ALERT_LINES {
        lines.push(format!(
            "… and {} more (`/incident timeline` lists them all)",
            changed_alerts.len() - ALERT_LINES
        ));
    }
    let all_resolved = draft.next.alerts_all_resolved();
    let mut text = format!(
        "📟 {source} reports on {}:\n{}",
        current.key,
        lines.join("\n")
    );
    if all_resolved {
        draft.event(&who, EventKind::MonitoringResolved);
        text.push_str("\nMonitoring reports resolved: every alert of the group has resolved.");
        if !auto_resolve {
            text.push_str(" Resolve the incident with `/incident resolve [root cause]` when you are satisfied.");
        } else if current.taken_over() {
            text.push_str(" A person has taken this incident over, so it stays open until a person resolves it with `/incident resolve`.");
        }
    }
    draft.post(views::notice_in_channel(text));
    if all_resolved && auto_resolve && !current.taken_over() {
        resolve(policy, &mut draft, current, &who, None, Source::Chat);
        return Some(draft.finish(Some(policy), current, None));
    }
    // A more severe alert raises the incident's severity (never lowers it).
    let worst = draft
        .next
        .alerts
        .iter()
        .filter(|a| a.firing)
        .filter_map(|a| a.severity)
        .min();
    if let Some(worst) = worst
        && worst < current.severity
    {
        draft.keep_hold = true;
        change_severity(policy, &mut draft, current, &who, worst);
        if current.paging_held.is_some() && draft.next.paging_held.is_none() {
            draft.event(
                &Actor::System,
                EventKind::PagingResumed {
                    reason: format!(
                        "an alert raised it to {worst}, which pages during maintenance"
                    ),
                },
            );
            draft.post(views::notice_in_channel(format!(
                "📟 {} is now {worst}, which pages even during maintenance: paging starts now.",
                current.key
            )));
        }
    }
    Some(draft.finish(Some(policy), current, None))
}

/// A maintenance window that held back an incident's paging has ended (and no other window
/// is in force): start its escalation now, timed from now. `None` if nothing is held.
pub fn release_paging(policy: &Policy, current: &Incident, now: DateTime<Utc>) -> Option<Decision> {
    let window = current.paging_held.as_deref()?;
    if !current.status.is_open() {
        return None;
    }
    let mut draft = Draft::new(current, now);
    draft.replan_escalation(policy);
    draft.event(
        &Actor::System,
        EventKind::PagingResumed {
            reason: format!("the maintenance window \"{window}\" ended"),
        },
    );
    let text = if current.acknowledged_at.is_some() {
        format!(
            "🛠️ The maintenance window \"{window}\" ended; {} was acknowledged, so its escalation stays stopped.",
            current.key
        )
    } else {
        format!(
            "🛠️ The maintenance window \"{window}\" ended and {} is still open and unacknowledged: paging starts now.",
            current.key
        )
    };
    draft.post(views::notice_in_channel(text));
    Some(draft.finish(Some(policy), current, None))
}

/// Why an input changed nothing; shown to the person who sent it.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal(pub Message);

fn refuse(text: String) -> Refusal {
    Refusal(views::refusal(text))
}

/// Work in progress on one decision.
struct Draft {
    next: Incident,
    events: Vec<TimelineEvent>,
    effects: Vec<Effect>,
    timers: Vec<TimerRequest>,
    now: DateTime<Utc>,
    /// Monitoring changed the severity: a maintenance window's hold stays unless the new
    /// severity pages during maintenance. (A person's change always releases it.)
    keep_hold: bool,
}

impl Draft {
    fn new(current: &Incident, now: DateTime<Utc>) -> Draft {
        Draft {
            next: current.clone(),
            events: Vec::new(),
            effects: Vec::new(),
            timers: Vec::new(),
            now,
            keep_hold: false,
        }
    }

    fn event(&mut self, actor: &Actor, kind: EventKind) {
        self.events.push(TimelineEvent {
            at: self.now,
            actor: actor.clone(),
            kind,
        });
    }

    fn post(&mut self, message: Message) {
        self.effects.push(Effect::Post {
            channel: ChannelTarget::Incident(self.next.channel.clone()),
            message,
            pin: false,
            slot: None,
        });
    }

    /// Bump the escalation fence and plan what is left of the escalation.
    fn replan_escalation(&mut self, policy: &Policy) {
        self.next.escalation_generation += 1;
        if self.next.paging_held.is_some() {
            if self.keep_hold && self.next.severity > policy.maintenance_pages_from {
                return;
            }
            self.release_hold();
        }
        self.timers
            .extend(escalation::plan(policy, &self.next, self.now));
    }

    /// Paging held back by a maintenance window starts now: the escalation is timed from now.
    fn release_hold(&mut self) {
        if self.next.paging_held.take().is_some() {
            self.next.escalation_from = Some(self.now);
        }
    }

    /// The decision, with an edit of the pinned summary and a new topic if they changed.
    /// (`policy` is `None` for inputs that cannot change the summary.)
    fn finish(
        mut self,
        policy: Option<&Policy>,
        current: &Incident,
        reply: Option<Message>,
    ) -> Decision {
        if let Some(policy) = policy {
            let summary = views::summary(policy, &self.next);
            if summary != views::summary(policy, current) {
                self.effects.push(Effect::Update {
                    channel: self.next.channel.clone(),
                    slot: Slot::Summary,
                    message: summary,
                });
            }
        }
        let topic = views::topic(&self.next);
        if topic != views::topic(current) {
            self.effects.push(Effect::SetTopic {
                channel: self.next.channel.clone(),
                topic,
            });
        }
        Decision {
            incident: self.next,
            events: self.events,
            effects: self.effects,
            timers: self.timers,
            reply,
        }
    }
}

/// Where an acknowledgement or resolution came from: chat (tell PagerDuty too) or PagerDuty
/// itself (do not echo it back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Chat,
    PagerDuty,
}

/// The PagerDuty calls that mirror an acknowledgement or resolution, and a note for the channel
/// when PagerDuty could not be told. Every service warroom paged gets an Events API call (a
/// repeat is harmless: PagerDuty deduplicates by key); the incident PagerDuty opened is
/// updated by id through the REST API, unless the change came from PagerDuty itself.
fn mirror_to_pagerduty(
    policy: &Policy,
    incident: &Incident,
    status: Status,
    source: Source,
) -> (Vec<Effect>, Option<String>) {
    let key = incident.key.to_string();
    let mut effects: Vec<Effect> = incident
        .paged_services
        .iter()
        .map(|service| {
            let (service, dedup_key) = (service.clone(), key.clone());
            Effect::PagerDuty {
                action: if status == Status::Resolved {
                    PagerDutyAction::Resolve { service, dedup_key }
                } else {
                    PagerDutyAction::Acknowledge { service, dedup_key }
                },
            }
        })
        .collect();
    let mut note = None;
    if let (Some(id), Source::Chat) = (&incident.pagerduty_incident_id, source) {
        if policy.pagerduty_rest {
            effects.push(Effect::PagerDuty {
                action: PagerDutyAction::SetIncidentStatus {
                    incident_id: id.clone(),
                    status,
                },
            });
        } else {
            note = Some(format!(
                "PagerDuty incident {id} was not updated: the PagerDuty REST API is not configured (pagerduty.api_token and pagerduty.from_email); update it in PagerDuty."
            ));
        }
    }
    (effects, note)
}

fn acknowledge(
    policy: &Policy,
    draft: &mut Draft,
    current: &Incident,
    who: &Actor,
    source: Source,
) {
    draft.next.acknowledged_at = Some(draft.now);
    draft.next.acknowledged_by = match who {
        Actor::User(user) => Some(user.clone()),
        _ => None,
    };
    if draft.next.status == Status::Investigating {
        draft.next.status = Status::Acknowledged;
    }
    draft.event(who, EventKind::Acknowledged);
    draft.replan_escalation(policy);
    let target = policy.severity(current.severity).respond_within;
    let took = draft.now - current.declared_at;
    let verdict = if took <= target {
        format!("within the {} target", human_duration(target))
    } else {
        format!("past the {} target", human_duration(target))
    };
    let mut change = format!(
        "acknowledged {} after declaration ({verdict}); escalation stopped",
        human_duration(took)
    );
    if source == Source::PagerDuty {
        change.push_str(" (in PagerDuty)");
    }
    let (effects, note) = mirror_to_pagerduty(policy, current, Status::Acknowledged, source);
    if !effects.is_empty() {
        change.push_str("; acknowledging in PagerDuty");
    }
    draft.effects.extend(effects);
    if let Some(note) = note {
        change.push_str(&format!(". {note}"));
    }
    let message = views::status_change(&draft.next, who, change);
    draft.post(message);
}

fn resolve(
    policy: &Policy,
    draft: &mut Draft,
    current: &Incident,
    who: &Actor,
    root_cause: Option<String>,
    source: Source,
) {
    let now = draft.now;
    draft.next.status = Status::Resolved;
    draft.next.resolved_at = Some(now);
    draft.next.root_cause = root_cause.clone();
    draft.next.escalation_generation += 1;
    draft.next.reminder_generation += 1;
    draft.event(who, EventKind::Resolved { root_cause });
    let message = views::resolved(policy, &draft.next);
    draft.post(message);
    let (effects, note) = mirror_to_pagerduty(policy, current, Status::Resolved, source);
    draft.effects.extend(effects);
    if let Some(note) = note {
        let message = views::refusal(note);
        draft.post(Message {
            visibility: super::message::Visibility::InChannel,
            ..message
        });
    }
    draft.effects.push(Effect::Post {
        channel: ChannelTarget::Named(policy.announce_channel.clone()),
        message: views::announcement(&draft.next, who),
        pin: false,
        slot: None,
    });
    // Everything stops except the postmortem reminders.
    let fence = draft.next.escalation_generation;
    for (reminder, after) in policy.postmortem_reminders.iter().enumerate() {
        draft.timers.push(TimerRequest {
            kind: TimerKind::PostmortemReminder { reminder },
            due_at: now + *after,
            fence,
        });
    }
}

fn change_severity(
    policy: &Policy,
    draft: &mut Draft,
    current: &Incident,
    who: &Actor,
    severity: Severity,
) {
    draft.next.severity = severity;
    draft.event(
        who,
        EventKind::SeverityChanged {
            from: current.severity,
            to: severity,
        },
    );
    // The remaining steps and the response target are re-planned from the declaration.
    draft.replan_escalation(policy);
    let sev = policy.severity(severity);
    let message = views::status_change(
        &draft.next,
        who,
        format!(
            "changed severity {} → {severity} ({}); respond within {}, updates every {}",
            current.severity,
            sev.name,
            human_duration(sev.respond_within),
            human_duration(sev.status_update_every)
        ),
    );
    draft.post(message);
    // A new cadence re-plans the next status-update reminder from the last update.
    if sev.status_update_every != policy.severity(current.severity).status_update_every {
        draft.next.reminder_generation += 1;
        draft.timers.push(TimerRequest {
            kind: TimerKind::StatusReminder,
            due_at: (current.last_update_at + sev.status_update_every).max(draft.now),
            fence: draft.next.reminder_generation,
        });
    }
}

/// The PagerDuty calls for paging `target`, or why it cannot be paged. `unless` is the state
/// in which the page is withdrawn if it has not gone out by then (an escalation step's
/// `until`); a page asked for by a person has none.
fn page_effect(
    policy: &Policy,
    incident: &Incident,
    target: &PageTarget,
    why: &str,
    unless: Option<StopWhen>,
) -> Result<Effect, String> {
    match target {
        PageTarget::Service(name) => {
            if !policy.pagerduty_services.contains(name) {
                return Err(format!(
                    "{target} was not paged: pagerduty.routing_keys.{name} is not configured"
                ));
            }
            Ok(Effect::PagerDuty {
                action: PagerDutyAction::Trigger {
                    service: name.clone(),
                    dedup_key: incident.key.to_string(),
                    summary: super::command::truncate_chars(
                        &format!(
                            "[{}] {} {} — {why}",
                            incident.key, incident.severity, incident.title
                        ),
                        1024,
                    ),
                    severity: PagerDutySeverity::of(incident.severity),
                    unless,
                },
            })
        }
        PageTarget::User(_) | PageTarget::EscalationPolicy(_) | PageTarget::Schedule(_) => {
            if !policy.pagerduty_rest {
                return Err(format!(
                    "{target} was not paged: the PagerDuty REST API is not configured (pagerduty.api_token and pagerduty.from_email)"
                ));
            }
            Ok(Effect::PagerDuty {
                action: PagerDutyAction::RequestResponders {
                    incident_id: incident.pagerduty_incident_id.clone(),
                    incident_key: incident.key.to_string(),
                    targets: vec![target.clone()],
                    message: format!(
                        "{} {} {}: {why}",
                        incident.key, incident.severity, incident.title
                    ),
                    unless,
                },
            })
        }
    }
}

/// Fire escalation step `index`: page its targets, mention its people, move the level on.
/// A step fired on its own (its timer, a breach) pages `until` the step's state, and the page
/// is withdrawn if the incident gets there before PagerDuty takes it; one a person fired with
/// `escalate` (`by_person`) always goes out, acknowledged or not.
fn fire_step(
    policy: &Policy,
    draft: &mut Draft,
    index: usize,
    late_by: chrono::Duration,
    who: &Actor,
    why: &str,
    by_person: bool,
) {
    let Some(step) = policy.escalation.get(index) else {
        return;
    };
    let mut paged = Vec::new();
    let mut notes = Vec::new();
    for target in &step.page {
        if let (PageTarget::Service(_), Some(id)) = (target, &draft.next.pagerduty_incident_id) {
            notes.push(format!(
                "{target} not triggered: PagerDuty incident {id} opened this incident and PagerDuty escalates it"
            ));
            continue;
        }
        match page_effect(
            policy,
            &draft.next,
            target,
            &format!("escalation step {}: {}", index + 1, step.name),
            (!by_person).then_some(step.until),
        ) {
            Ok(effect) => {
                if let PageTarget::Service(name) = target
                    && !draft.next.paged_services.contains(name)
                {
                    draft.next.paged_services.push(name.clone());
                }
                paged.push(target.to_string());
                draft.effects.push(effect);
            }
            Err(note) => notes.push(note),
        }
    }
    for target in &step.mention_on_call {
        if policy.pagerduty_rest {
            draft.effects.push(Effect::PagerDuty {
                action: PagerDutyAction::LookUpOnCall {
                    target: target.clone(),
                },
            });
        } else {
            notes.push(format!(
                "who is on call for {target} was not looked up: the PagerDuty REST API is not configured"
            ));
        }
    }
    draft.next.escalation_level = index as i64 + 1;
    let late = (late_by >= policy.lateness_note_after).then(|| {
        format!(
            "This step is {} later than planned (warroom was down, busy, or another process held it).",
            human_duration(late_by)
        )
    });
    let message = views::escalation(&draft.next, index, step, &paged, &notes, late, who, why);
    draft.post(message);
    draft.event(
        who,
        EventKind::Escalated {
            step: index,
            name: step.name.clone(),
            paged,
            mentioned: step
                .mention
                .iter()
                .cloned()
                .chain(
                    step.mention_on_call
                        .iter()
                        .map(|t| format!("on call for {t}")),
                )
                .collect(),
            late_by_seconds: late_by.num_seconds().max(0),
        },
    );
}

/// Apply a command typed in (or a button pressed on) an incident. Commands that do not act on
/// an incident (`declare`, `list`, `help`, `timeline`) are refused: the app answers them.
pub fn apply(
    policy: &Policy,
    current: &Incident,
    actor: &UserRef,
    command: &Command,
    now: DateTime<Utc>,
) -> Result<Decision, Refusal> {
    let key = current.key;
    if !current.status.is_open() {
        let when = current
            .resolved_at
            .map(views::format_time)
            .unwrap_or_default();
        return Err(refuse(format!(
            "{key} was resolved at {when}; it cannot be changed. Declare a new incident with `/incident declare <title>` if the problem is back."
        )));
    }
    let who = Actor::User(actor.clone());
    let mut draft = Draft::new(current, now);
    match command {
        Command::Ack => {
            if let Some(at) = current.acknowledged_at {
                let by = current
                    .acknowledged_by
                    .as_ref()
                    .map(|u| format!(" by @{u}"))
                    .unwrap_or_default();
                return Err(refuse(format!(
                    "{key} was already acknowledged{by} at {}.",
                    views::format_time(at)
                )));
            }
            acknowledge(policy, &mut draft, current, &who, Source::Chat);
        }
        Command::Sev(severity) => {
            if *severity == current.severity {
                return Err(refuse(format!("{key} is already {severity}.")));
            }
            change_severity(policy, &mut draft, current, &who, *severity);
        }
        Command::Commander(user) => {
            if *user == current.commander {
                return Err(refuse(format!(
                    "@{user} is already the commander of {key}."
                )));
            }
            draft.next.commander = user.clone();
            draft.effects.push(Effect::Invite {
                channel: current.channel.clone(),
                users: vec![user.clone()],
            });
            draft.event(
                &who,
                EventKind::CommanderAssigned {
                    from: current.commander.clone(),
                    to: user.clone(),
                },
            );
            let message = views::status_change(
                &draft.next,
                &who,
                format!("made @{user} incident commander"),
            );
            draft.post(message);
        }
        Command::Status(status) => {
            if *status == current.status {
                return Err(refuse(format!("{key} is already {status}.")));
            }
            if current.acknowledged_at.is_none() && *status != Status::Investigating {
                // Moving the incident on means someone is on it.
                acknowledge(policy, &mut draft, current, &who, Source::Chat);
            }
            draft.next.status = *status;
            draft.event(
                &who,
                EventKind::StatusChanged {
                    from: current.status,
                    to: *status,
                },
            );
            let message = views::status_change(
                &draft.next,
                &who,
                format!("moved status {} → {status}", current.status),
            );
            draft.post(message);
        }
        Command::Update(text) => {
            draft.next.last_update_at = now;
            draft.next.reminder_generation += 1;
            draft.event(&who, EventKind::StatusUpdate { text: text.clone() });
            let message = views::status_update(policy, &draft.next, &who, text);
            draft.post(message);
            draft.timers.push(TimerRequest {
                kind: TimerKind::StatusReminder,
                due_at: now + policy.severity(draft.next.severity).status_update_every,
                fence: draft.next.reminder_generation,
            });
        }
        Command::Resolve { root_cause } => {
            resolve(
                policy,
                &mut draft,
                current,
                &who,
                root_cause.clone(),
                Source::Chat,
            );
        }
        Command::Page(target) => {
            let effect = page_effect(policy, current, target, &format!("paged by @{actor}"), None)
                .map_err(|why| refuse(format!("{why}.")))?;
            if let PageTarget::Service(name) = target
                && !draft.next.paged_services.contains(name)
            {
                draft.next.paged_services.push(name.clone());
            }
            draft.effects.push(effect);
            draft.event(
                &who,
                EventKind::Paged {
                    target: target.to_string(),
                },
            );
            let message = views::status_change(
                &draft.next,
                &who,
                format!("paged {target} through PagerDuty"),
            );
            draft.post(message);
        }
        Command::Escalate => {
            let Some(next) = escalation::next_step(policy, current) else {
                return Err(refuse(format!(
                    "{key} has no further escalation steps for {}.",
                    current.severity
                )));
            };
            // Paging a maintenance window held back starts here: the rest of the escalation
            // is planned from now.
            let held = current.paging_held.is_some();
            draft.release_hold();
            fire_step(
                policy,
                &mut draft,
                next,
                chrono::Duration::zero(),
                &who,
                &format!("escalated by @{actor}"),
                true,
            );
            if held {
                draft.replan_escalation(policy);
            }
        }
        Command::Postmortem { .. } => {
            return Err(refuse(
                "Postmortems are decided by `postmortem_draft` and `postmortem_done`.".to_string(),
            ));
        }
        Command::Declare { .. }
        | Command::Timeline
        | Command::List { .. }
        | Command::Stats { .. }
        | Command::Maintenance(_)
        | Command::Help { .. } => {
            return Err(refuse(
                "That command does not change an incident.".to_string(),
            ));
        }
        // Runbook commands talk to a cluster: the app runs them and records what happened
        // with `runbook_note`.
        Command::Playbooks
        | Command::Run { .. }
        | Command::Diag { .. }
        | Command::Scale { .. }
        | Command::Restart { .. }
        | Command::Confirm(_)
        | Command::Cancel(_)
        | Command::Undo(_) => {
            return Err(refuse(
                "Runbook commands are run by warroom's runbook engine, not the incident state machine.".to_string(),
            ));
        }
    }
    Ok(draft.finish(Some(policy), current, None))
}

/// `postmortem`: post the draft, built from the incident and its whole timeline, in the
/// channel (any time: an open incident gets a draft of what happened so far).
pub fn postmortem_draft(
    policy: &Policy,
    current: &Incident,
    timeline: &[TimelineEvent],
    actor: &UserRef,
    now: DateTime<Utc>,
) -> Decision {
    let mut draft = Draft::new(current, now);
    draft.event(&Actor::User(actor.clone()), EventKind::PostmortemDrafted);
    draft.effects.push(Effect::Upload {
        channel: current.channel.clone(),
        filename: format!("{}-postmortem-draft.md", current.key),
        title: format!("Postmortem draft: {} {}", current.key, current.title),
        message: views::postmortem_draft(policy, current, timeline, now),
    });
    let reply = views::refusal(format!(
        "Posted the postmortem draft of {}. When the finished one is written, record it with `/incident postmortem done <link>`.",
        current.key
    ));
    draft.finish(None, current, Some(reply))
}

/// `postmortem done <link>`: record where the finished postmortem is; its reminders stop.
pub fn postmortem_done(
    current: &Incident,
    actor: &UserRef,
    url: &str,
    now: DateTime<Utc>,
) -> Result<Decision, Refusal> {
    let key = current.key;
    if current.status.is_open() {
        return Err(refuse(format!(
            "{key} is still open; resolve it first, then record its postmortem."
        )));
    }
    if current.postmortem_url.as_deref() == Some(url) {
        return Err(refuse(format!(
            "The postmortem of {key} is already recorded at {url}."
        )));
    }
    let mut draft = Draft::new(current, now);
    draft.next.postmortem_url = Some(url.to_string());
    draft.event(
        &Actor::User(actor.clone()),
        EventKind::PostmortemDone {
            url: url.to_string(),
        },
    );
    let replaced = current
        .postmortem_url
        .as_ref()
        .map(|old| format!(" (it was {old})"))
        .unwrap_or_default();
    draft.post(views::notice_in_channel(format!(
        "📝 The postmortem of {key} is done: {url}{replaced}. Recorded by @{actor}; no more reminders."
    )));
    Ok(draft.finish(None, current, None))
}

/// Record what the runbook engine did (it talks to the cluster; the core only records): the
/// events in the timeline and the messages in the incident channel.
pub fn runbook_note(
    incident: &Incident,
    actor: &Actor,
    events: Vec<EventKind>,
    posts: Vec<Message>,
    timers: Vec<TimerRequest>,
    now: DateTime<Utc>,
) -> Decision {
    let mut draft = Draft::new(incident, now);
    for kind in events {
        draft.event(actor, kind);
    }
    for message in posts {
        draft.post(message);
    }
    draft.timers.extend(timers);
    draft.finish(None, incident, None)
}

/// A durable timer came due. Returns `None` when it is stale (its fence has moved on, the step
/// already fired, or the incident's state stops it): a stale timer does nothing.
pub fn fire_timer(
    policy: &Policy,
    current: &Incident,
    kind: TimerKind,
    due_at: DateTime<Utc>,
    fence: i64,
    now: DateTime<Utc>,
) -> Option<Decision> {
    let late_by = now - due_at;
    let mut draft = Draft::new(current, now);
    match kind {
        TimerKind::StatusReminder => {
            if !current.status.is_open() || fence != current.reminder_generation {
                return None;
            }
            let late = (late_by >= policy.lateness_note_after).then(|| {
                format!(
                    "This reminder is {} late: warroom was not running when it was due.",
                    human_duration(late_by)
                )
            });
            let since = human_duration(now - current.last_update_at);
            let every = policy.severity(current.severity).status_update_every;
            draft.event(
                &Actor::System,
                EventKind::ReminderSent {
                    late_by_seconds: late_by.num_seconds().max(0),
                },
            );
            draft.post(views::status_reminder(current, &since, late));
            draft.timers.push(TimerRequest {
                kind,
                // The next reminder keeps the cadence, but never lands in the past.
                due_at: (due_at + every).max(now + every / 2),
                fence,
            });
        }
        TimerKind::EscalationStep { step } => {
            let live = current.status.is_open()
                && fence == current.escalation_generation
                && step as i64 >= current.escalation_level
                && policy
                    .escalation
                    .get(step)
                    .is_some_and(|s| s.applies_to(current.severity) && !s.stopped_by(current));
            if !live {
                return None;
            }
            let why = if current.acknowledged_at.is_some() {
                "not resolved".to_string()
            } else {
                format!(
                    "not acknowledged after {}",
                    human_duration(now - current.declared_at)
                )
            };
            // Earlier steps whose timers another replica holds, or has not fired yet, go first:
            // a step is never skipped because a later one got there first.
            let level = usize::try_from(current.escalation_level).unwrap_or(0);
            for index in level..=step {
                let due = policy.escalation[index].applies_to(current.severity)
                    && !policy.escalation[index].stopped_by(&draft.next);
                if due {
                    // The timer's own step is as late as its timer; an earlier step is as late
                    // as its planned time (the escalation's start + offset).
                    let late = if index == step {
                        late_by
                    } else {
                        now - (current.escalation_start() + policy.escalation[index].after)
                    };
                    fire_step(policy, &mut draft, index, late, &Actor::System, &why, false);
                }
            }
        }
        TimerKind::ResponseTarget => {
            if !current.status.is_open()
                || fence != current.escalation_generation
                || current.acknowledged_at.is_some()
                || current.response_breached_at.is_some()
            {
                return None;
            }
            draft.next.response_breached_at = Some(now);
            let target = policy.severity(current.severity).respond_within;
            draft.event(
                &Actor::System,
                EventKind::ResponseTargetBreached {
                    target_seconds: target.num_seconds(),
                },
            );
            let next = escalation::next_step(policy, current);
            draft.post(views::response_breach(
                current,
                target,
                next.map(|i| policy.escalation[i].name.as_str()),
            ));
            if let Some(next) = next {
                fire_step(
                    policy,
                    &mut draft,
                    next,
                    chrono::Duration::zero(),
                    &Actor::System,
                    "response target breached",
                    false,
                );
            }
        }
        TimerKind::PostmortemReminder { reminder } => {
            let after = *policy.postmortem_reminders.get(reminder)?;
            if current.status != Status::Resolved || current.postmortem_url.is_some() {
                return None;
            }
            draft.event(
                &Actor::System,
                EventKind::PostmortemReminder {
                    after_seconds: after.num_seconds(),
                },
            );
            let resolved_at = current.resolved_at.unwrap_or(due_at - after);
            draft.post(views::postmortem_reminder(
                current,
                after,
                resolved_at + policy.postmortem_due,
            ));
        }
        // The runbook engine expires changes; the state machine has nothing to do.
        TimerKind::ChangeExpiry { .. } | TimerKind::ChangeSettle { .. } => return None,
    }
    Some(draft.finish(Some(policy), current, None))
}

/// What PagerDuty said about an incident (a v3 webhook), parsed at the edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PagerDutyChange {
    /// `incident.acknowledged`.
    Acknowledged,
    /// `incident.resolved`.
    Resolved,
    /// `incident.priority_updated`, mapped to a severity by configuration.
    Severity(Severity),
}

/// Apply a change reported by PagerDuty. `None` when it changes nothing (an echo of warroom's
/// own action, or a repeat): PagerDuty is never told what it just told warroom.
pub fn pagerduty_change(
    policy: &Policy,
    current: &Incident,
    change: &PagerDutyChange,
    agent: &str,
    now: DateTime<Utc>,
) -> Option<Decision> {
    let who = Actor::PagerDuty(agent.to_string());
    let mut draft = Draft::new(current, now);
    match change {
        _ if !current.status.is_open() => return None,
        PagerDutyChange::Acknowledged => {
            if current.acknowledged_at.is_some() {
                return None;
            }
            acknowledge(policy, &mut draft, current, &who, Source::PagerDuty);
        }
        PagerDutyChange::Resolved => {
            resolve(policy, &mut draft, current, &who, None, Source::PagerDuty);
        }
        PagerDutyChange::Severity(severity) => {
            if *severity == current.severity {
                return None;
            }
            change_severity(policy, &mut draft, current, &who, *severity);
        }
    }
    Some(draft.finish(Some(policy), current, None))
}

/// PagerDuty said who is on call for `target`: mention them in the channel.
pub fn on_call_found(
    current: &Incident,
    target: &str,
    names: &[String],
    now: DateTime<Utc>,
) -> Decision {
    let mut draft = Draft::new(current, now);
    draft.event(
        &Actor::System,
        EventKind::OnCall {
            target: target.to_string(),
            names: names.to_vec(),
        },
    );
    let ask = current.status.is_open() && current.acknowledged_at.is_none();
    draft.post(views::on_call(current, target, names, ask));
    draft.finish(None, current, None)
}

/// An outbound call was refused for good: record it and say so in the channel, so that a
/// person does by hand what warroom could not.
pub fn delivery_failed(
    current: &Incident,
    what: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Decision {
    let mut draft = Draft::new(current, now);
    draft.event(
        &Actor::System,
        EventKind::DeliveryFailed {
            what: what.to_string(),
            reason: reason.to_string(),
        },
    );
    draft.post(views::delivery_failed(current, what, reason));
    draft.finish(None, current, None)
}

/// A page an escalation step queued was withdrawn before it went out: the incident reached
/// `state` (the step's `until`) while the page waited for PagerDuty. Recorded and said in the
/// channel, so nobody counts on a page that was never sent.
pub fn page_withdrawn(
    current: &Incident,
    what: &str,
    state: StopWhen,
    now: DateTime<Utc>,
) -> Decision {
    let why = match state {
        StopWhen::Acknowledged if current.status.is_open() => "acknowledged",
        StopWhen::Acknowledged | StopWhen::Resolved => "resolved",
    };
    let mut draft = Draft::new(current, now);
    draft.event(
        &Actor::System,
        EventKind::PageWithdrawn {
            what: what.to_string(),
            why: format!("the incident was {why} before PagerDuty took the page"),
        },
    );
    draft.post(views::notice_in_channel(format!(
        "🔕 {}: did not {what}: it was {why} while the page waited for PagerDuty.",
        current.key
    )));
    draft.finish(None, current, None)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::severity::{ClassificationRule, ClassificationRules};
    use crate::core::{SeverityPolicy, TimelineEvent};
    use chrono::{Duration, TimeZone};

    pub fn policy() -> Policy {
        let sev = |name: &str, minutes| SeverityPolicy {
            name: name.into(),
            meaning: format!("{name} meaning"),
            respond_within: Duration::minutes(minutes),
            status_update_every: Duration::minutes(30),
        };
        Policy {
            severities: [
                sev("Critical", 15),
                sev("High", 60),
                sev("Medium", 240),
                sev("Low", 1440),
            ],
            classification: ClassificationRules {
                rules: vec![ClassificationRule {
                    severity: Severity::P0,
                    keywords: vec!["down".into()],
                }],
                default: Severity::P2,
            },
            channel_prefix: "inc".into(),
            announce_channel: "incidents".into(),
            postmortem_due: Duration::hours(48),
            postmortem_reminders: vec![Duration::hours(24), Duration::hours(48)],
            escalation: vec![
                step("On-call engineer", 0, &Severity::ALL, "oncall"),
                step("DevOps lead", 30, &Severity::ALL, "devops_lead"),
                step(
                    "Engineering manager",
                    60,
                    &Severity::ALL,
                    "engineering_manager",
                ),
                step("CTO", 120, &[Severity::P0], "cto"),
            ],
            pagerduty_services: ["oncall", "devops_lead", "engineering_manager", "cto"]
                .into_iter()
                .map(String::from)
                .collect(),
            pagerduty_rest: true,
            lateness_note_after: Duration::minutes(1),
            maintenance_pages_from: Severity::P1,
        }
    }

    fn step(
        name: &str,
        minutes: i64,
        severities: &[Severity],
        service: &str,
    ) -> crate::core::EscalationStep {
        crate::core::EscalationStep {
            name: name.into(),
            after: Duration::minutes(minutes),
            severities: severities.to_vec(),
            page: vec![PageTarget::Service(service.into())],
            mention: vec![service.replace('_', "-")],
            mention_on_call: Vec::new(),
            until: crate::core::StopWhen::Acknowledged,
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap()
    }

    fn user(name: &str) -> UserRef {
        UserRef::parse(name).unwrap()
    }

    fn declared(title: &str, severity: Option<Severity>) -> Decision {
        declare(
            &policy(),
            DeclareRequest {
                key: IncidentKey(1),
                title: title.into(),
                severity,
                actor: user("alice"),
                platform: Platform::Console,
                channel: ChannelName::parse("inc-20261128-db-down").unwrap(),
                now: t0(),
                from_pagerduty: None,
            },
        )
    }

    fn escalation_timers(d: &Decision) -> Vec<(TimerKind, i64)> {
        d.timers
            .iter()
            .filter(|t| t.kind != TimerKind::StatusReminder)
            .map(|t| (t.kind, (t.due_at - t0()).num_minutes()))
            .collect()
    }

    fn step_timer(step: usize) -> TimerKind {
        TimerKind::EscalationStep { step }
    }

    fn monitored(
        fingerprint: &str,
        firing: bool,
        starts: i64,
        severity: Severity,
    ) -> MonitoredAlert {
        MonitoredAlert {
            fingerprint: fingerprint.into(),
            name: "HighErrorRate".into(),
            firing,
            text: format!("HighErrorRate ({fingerprint})"),
            starts_at: Some(t0() + Duration::minutes(starts)),
            severity: Some(severity),
        }
    }

    /// A P2 incident opened by alerts at t0, its paging held back by a window until t0 + 4h.
    fn held() -> Incident {
        let d = declare_from_alerts(
            &policy(),
            DeclareRequest {
                key: IncidentKey(3),
                title: "Memory high".into(),
                severity: None,
                actor: user("alertmanager"),
                platform: Platform::Console,
                channel: ChannelName::parse("inc-20261128-memory-high").unwrap(),
                now: t0(),
                from_pagerduty: None,
            },
            &AlertOrigin {
                source: "Alertmanager".into(),
                group_key: "g".into(),
                alerts: vec![monitored("a", true, -5, Severity::P2)],
                details: Vec::new(),
                severity: Severity::P2,
                labels: "severity=warning".into(),
                hold_paging: Some(("monthly".into(), t0() + Duration::hours(4))),
            },
        );
        assert_eq!(escalation_timers(&d), []);
        assert_eq!(d.incident.paging_held.as_deref(), Some("monthly"));
        d.incident
    }

    #[test]
    fn a_held_incident_starts_paging_from_its_release() {
        let incident = held();
        let later = t0() + Duration::hours(4);
        let released = release_paging(&policy(), &incident, later).unwrap();
        assert_eq!(released.incident.paging_held, None);
        assert_eq!(released.incident.escalation_from, Some(later));
        // Timed from the release: on-call now, DevOps lead +30m, manager +1h; the target +4h.
        assert_eq!(
            escalation_timers(&released),
            [
                (step_timer(0), 240),
                (step_timer(1), 270),
                (step_timer(2), 300),
                (TimerKind::ResponseTarget, 480),
            ]
        );
        assert_eq!(kinds(&released.events), ["paging_resumed"]);
        assert!(release_paging(&policy(), &released.incident, later).is_none());
    }

    #[test]
    fn a_person_escalating_a_held_incident_plans_the_rest_from_then() {
        let incident = held();
        let later = t0() + Duration::hours(1);
        let d = apply(
            &policy(),
            &incident,
            &user("bob"),
            &Command::Escalate,
            later,
        )
        .unwrap();
        assert_eq!(d.incident.paging_held, None);
        assert_eq!(d.incident.escalation_level, 1);
        assert_eq!(pagerduty_calls(&d).len(), 1, "the on-call is paged now");
        assert_eq!(
            escalation_timers(&d),
            [
                (step_timer(1), 90),
                (step_timer(2), 120),
                (TimerKind::ResponseTarget, 300),
            ]
        );
        // A person's severity change releases it too (even to a severity below the threshold).
        let d = apply(
            &policy(),
            &incident,
            &user("bob"),
            &Command::Sev(Severity::P3),
            later,
        )
        .unwrap();
        assert_eq!(d.incident.paging_held, None);
        assert!(escalation_timers(&d).contains(&(step_timer(0), 60)));
    }

    #[test]
    fn a_more_severe_alert_raises_the_severity_and_pages_only_at_the_threshold() {
        let incident = held();
        let p = policy();
        let at = t0() + Duration::minutes(10);
        // Another warning: recorded, still held.
        let d = alerts_reported(
            &p,
            &incident,
            "Alertmanager",
            &[
                monitored("a", true, -5, Severity::P2),
                monitored("b", true, 8, Severity::P2),
            ],
            false,
            true,
            at,
        )
        .unwrap();
        assert_eq!(d.incident.severity, Severity::P2);
        assert_eq!(d.incident.paging_held.as_deref(), Some("monthly"));
        assert_eq!(escalation_timers(&d), []);
        // A critical one: P1 pages during maintenance, so paging starts.
        let incident = Incident {
            version: 2,
            ..d.incident
        };
        let d = alerts_reported(
            &p,
            &incident,
            "Alertmanager",
            &[monitored("c", true, 9, Severity::P1)],
            false,
            true,
            at,
        )
        .unwrap();
        assert_eq!(d.incident.severity, Severity::P1);
        assert_eq!(d.incident.paging_held, None);
        assert!(escalation_timers(&d).contains(&(step_timer(0), 10)));
        assert_eq!(
            kinds(&d.events),
            ["alert_firing", "severity_changed", "paging_resumed"]
        );
    }

    #[test]
    fn stale_and_lost_notifications_do_not_keep_an_incident_open() {
        let p = policy();
        let mut incident = held();
        incident.paging_held = None;
        let at = t0() + Duration::minutes(10);
        let a = monitored("a", true, -5, Severity::P2);
        let b = monitored("b", true, 1, Severity::P2);
        let d = alerts_reported(
            &p,
            &incident,
            "Alertmanager",
            &[a.clone(), b.clone()],
            false,
            true,
            at,
        )
        .unwrap();
        let incident = d.incident;
        // `a` resolves; then a stale copy of an earlier notification says it fires (same
        // episode): nothing changes.
        let a_resolved = MonitoredAlert {
            firing: false,
            ..a.clone()
        };
        let d = alerts_reported(
            &p,
            &incident,
            "Alertmanager",
            &[a_resolved, b.clone()],
            false,
            true,
            at,
        )
        .unwrap();
        let incident = d.incident;
        assert!(
            alerts_reported(
                &p,
                &incident,
                "Alertmanager",
                &[a.clone(), b.clone()],
                false,
                true,
                at
            )
            .is_none()
        );
        // A resolution of an older episode of `b` does not resolve the current one.
        let b_old = MonitoredAlert {
            firing: false,
            starts_at: Some(t0() - Duration::hours(1)),
            ..b.clone()
        };
        assert!(
            alerts_reported(&p, &incident, "Alertmanager", &[b_old], false, true, at).is_none()
        );
        // `b`'s own resolution was lost; Alertmanager then reports the group resolved without
        // listing it: the group is resolved, and so is the incident.
        let c = monitored("c", false, 2, Severity::P2);
        let d = alerts_reported(&p, &incident, "Alertmanager", &[c], true, true, at).unwrap();
        assert_eq!(d.incident.status, Status::Resolved);
        assert!(d.incident.alerts.iter().all(|a| !a.firing));
    }

    #[test]
    fn a_typed_fence_cannot_end_the_postmortem_drafts_code_block() {
        let d = declared("```rm -rf``` down", None);
        let updated = apply(
            &policy(),
            &d.incident,
            &user("alice"),
            &Command::Update("see ```log``` @here".into()),
            t0(),
        )
        .unwrap();
        let events = [d.events.clone(), updated.events.clone()].concat();
        let draft = postmortem_draft(&policy(), &updated.incident, &events, &user("bob"), t0());
        let Effect::Upload { message, .. } = &draft.effects[0] else {
            panic!("{:?}", draft.effects);
        };
        let data = serde_json::to_string(message).unwrap();
        assert!(!data.contains("```"), "{data}");
        assert!(data.contains("'''log'''"), "{data}");
        assert_eq!(kinds(&draft.events), ["postmortem_drafted"]);
    }

    #[test]
    fn an_incident_keeps_at_most_a_thousand_alerts_dropping_resolved_ones_first() {
        let p = policy();
        let mut incident = held();
        incident.paging_held = None;
        incident.alerts = (0..MAX_KEPT_ALERTS)
            .map(|i| monitored(&format!("old{i}"), i % 2 == 0, 0, Severity::P2))
            .collect();
        let new: Vec<MonitoredAlert> = (0..10)
            .map(|i| monitored(&format!("new{i}"), true, 1, Severity::P2))
            .collect();
        let d = alerts_reported(&p, &incident, "Alertmanager", &new, false, true, t0()).unwrap();
        assert_eq!(d.incident.alerts.len(), MAX_KEPT_ALERTS);
        assert!(d.incident.alerts.iter().any(|a| a.fingerprint == "new9"));
        // The ten dropped were the oldest resolved ones.
        let firing = d.incident.alerts.iter().filter(|a| a.firing).count();
        assert_eq!(firing, MAX_KEPT_ALERTS / 2 + 10);
        assert!(!d.incident.alerts.iter().any(|a| a.fingerprint == "old1"));
    }

    #[test]
    fn a_message_about_many_alerts_lists_ten() {
        let p = policy();
        let mut incident = held();
        incident.paging_held = None;
        let many: Vec<MonitoredAlert> = (0..25)
            .map(|i| monitored(&format!("x{i}"), true, i, Severity::P2))
            .collect();
        let d = alerts_reported(&p, &incident, "Alertmanager", &many, false, true, t0()).unwrap();
        assert_eq!(d.events.len(), 25, "each is a timeline entry");
        let Effect::Post { message, .. } = &d.effects[0] else {
            panic!("{:?}", d.effects);
        };
        let text = serde_json::to_string(message).unwrap();
        assert!(text.contains("… and 15 more"), "{text}");
        assert!(!text.contains("(x10)"), "{text}");
    }

    fn pagerduty_calls(d: &Decision) -> Vec<PagerDutyAction> {
        d.effects
            .iter()
            .filter_map(|e| match e {
                Effect::PagerDuty { action } => Some(action.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn each_severity_gets_its_plan() {
        let p0 = declared("DB down", Some(Severity::P0));
        assert_eq!(
            escalation_timers(&p0),
            [
                (step_timer(0), 0),
                (step_timer(1), 30),
                (step_timer(2), 60),
                (step_timer(3), 120),
                (TimerKind::ResponseTarget, 15)
            ]
        );
        let p2 = declared("DB down", Some(Severity::P2));
        assert_eq!(
            escalation_timers(&p2),
            [
                (step_timer(0), 0),
                (step_timer(1), 30),
                (step_timer(2), 60),
                (TimerKind::ResponseTarget, 240)
            ],
            "the CTO step is P0 only"
        );
        assert!(p0.timers.iter().all(|t| t.fence == 0));
    }

    #[test]
    fn steps_page_mention_and_move_the_level_on() {
        let p = policy();
        let inc = declared("DB down", Some(Severity::P0)).incident;
        let first = fire_timer(&p, &inc, step_timer(0), t0(), 0, t0()).unwrap();
        assert_eq!(first.incident.escalation_level, 1);
        assert_eq!(first.incident.paged_services, ["oncall"]);
        assert_eq!(
            pagerduty_calls(&first),
            [PagerDutyAction::Trigger {
                service: "oncall".into(),
                dedup_key: "INC-1".into(),
                summary: "[INC-1] P0 DB down — escalation step 1: On-call engineer".into(),
                severity: crate::core::PagerDutySeverity::Critical,
                unless: Some(StopWhen::Acknowledged),
            }]
        );
        let text = serde_json::to_string(&first.effects).unwrap();
        assert!(text.contains("\"mentions\":[\"oncall\"]"), "{text}");
        assert_eq!(kinds(&first.events), ["escalated"]);
        // A step fires once: its timer is stale once the level has moved past it.
        assert!(fire_timer(&p, &first.incident, step_timer(0), t0(), 0, t0()).is_none());
        let second = fire_timer(
            &p,
            &first.incident,
            step_timer(1),
            t0() + Duration::minutes(30),
            0,
            t0() + Duration::minutes(30),
        )
        .unwrap();
        assert_eq!(second.incident.paged_services, ["oncall", "devops_lead"]);
    }

    #[test]
    fn an_unconfigured_service_is_not_paged_and_the_channel_is_told() {
        let mut p = policy();
        p.pagerduty_services.remove("devops_lead");
        let inc = declared("DB down", Some(Severity::P0)).incident;
        let d = fire_timer(
            &p,
            &inc,
            step_timer(1),
            t0() + Duration::minutes(30),
            0,
            t0() + Duration::minutes(30),
        )
        .unwrap();
        assert!(!pagerduty_calls(&d).iter().any(
            |c| matches!(c, PagerDutyAction::Trigger { service, .. } if service == "devops_lead")
        ));
        let text = serde_json::to_string(&d.effects).unwrap();
        assert!(text.contains("service:devops_lead was not paged: pagerduty.routing_keys.devops_lead is not configured"), "{text}");
    }

    #[test]
    fn ack_stops_the_escalation_and_acknowledges_in_pagerduty() {
        let p = policy();
        let inc = declared("DB down", Some(Severity::P0)).incident;
        let paged = fire_timer(&p, &inc, step_timer(0), t0(), 0, t0())
            .unwrap()
            .incident;
        let acked = apply(
            &p,
            &paged,
            &user("bob"),
            &Command::Ack,
            t0() + Duration::minutes(5),
        )
        .unwrap();
        assert!(
            escalation_timers(&acked).is_empty(),
            "nothing left to plan: every step stops at acknowledgement"
        );
        assert_eq!(
            pagerduty_calls(&acked),
            [PagerDutyAction::Acknowledge {
                service: "oncall".into(),
                dedup_key: "INC-1".into()
            }]
        );
        let inc = acked.incident;
        for (kind, at) in [
            (step_timer(1), 30),
            (step_timer(3), 120),
            (TimerKind::ResponseTarget, 15),
        ] {
            let at = t0() + Duration::minutes(at);
            assert!(
                fire_timer(&p, &inc, kind, at, 0, at).is_none(),
                "{kind:?} is stale after ack"
            );
        }
    }

    #[test]
    fn a_step_looks_up_who_is_on_call_and_the_answer_is_mentioned() {
        let mut p = policy();
        p.escalation[1].mention_on_call = vec![PageTarget::Schedule("PSCHED".into())];
        let inc = declared("DB down", Some(Severity::P0)).incident;
        let inc = fire_timer(&p, &inc, step_timer(0), t0(), 0, t0())
            .unwrap()
            .incident;
        let at = t0() + Duration::minutes(30);
        let d = fire_timer(&p, &inc, step_timer(1), at, 0, at).unwrap();
        assert!(
            pagerduty_calls(&d).contains(&PagerDutyAction::LookUpOnCall {
                target: PageTarget::Schedule("PSCHED".into())
            })
        );
        let found = on_call_found(
            &d.incident,
            "schedule:PSCHED",
            &["Jane Doe".into(), "Raj".into()],
            at,
        );
        assert_eq!(kinds(&found.events), ["on_call"]);
        let text = serde_json::to_string(&found.effects).unwrap();
        assert!(
            text.contains("Jane Doe") && text.contains("schedule:PSCHED"),
            "{text}"
        );
        p.pagerduty_rest = false;
        let d = fire_timer(&p, &inc, step_timer(1), at, 0, at).unwrap();
        assert!(
            serde_json::to_string(&d.effects)
                .unwrap()
                .contains("was not looked up")
        );
    }

    #[test]
    fn a_step_until_resolved_survives_the_ack() {
        let mut p = policy();
        p.escalation[2].until = crate::core::StopWhen::Resolved;
        let inc = declared("DB down", Some(Severity::P0)).incident;
        let acked = apply(
            &p,
            &inc,
            &user("bob"),
            &Command::Ack,
            t0() + Duration::minutes(5),
        )
        .unwrap();
        assert_eq!(escalation_timers(&acked), [(step_timer(2), 60)]);
        assert_eq!(acked.timers[0].fence, 1);
    }

    #[test]
    fn severity_change_replans_from_the_declaration() {
        let p = policy();
        let mut inc = declared("DB down", Some(Severity::P2)).incident;
        for (step, minutes) in [(0, 0), (1, 30)] {
            let at = t0() + Duration::minutes(minutes);
            inc = fire_timer(&p, &inc, step_timer(step), at, 0, at)
                .unwrap()
                .incident;
        }
        let now = t0() + Duration::minutes(45);
        let d = apply(&p, &inc, &user("bob"), &Command::Sev(Severity::P0), now).unwrap();
        assert_eq!(
            escalation_timers(&d),
            [
                (step_timer(2), 60),
                (step_timer(3), 120),
                (TimerKind::ResponseTarget, 45)
            ],
            "steps already taken stay taken; the P0 target (15m) has passed, so it is checked now"
        );
        assert!(
            d.timers
                .iter()
                .filter(|t| t.kind != TimerKind::StatusReminder)
                .all(|t| t.fence == 1)
        );
        assert!(
            fire_timer(
                &p,
                &d.incident,
                step_timer(2),
                t0() + Duration::minutes(60),
                0,
                now
            )
            .is_none(),
            "old plan is stale"
        );
    }

    /// A P0 whose first step fired at its declaration, and its response target breached at
    /// +15m: the incident before the breach, and the breach.
    fn p0_breach(p: &Policy) -> (Incident, Decision) {
        let inc = declared("DB down", Some(Severity::P0)).incident;
        let inc = fire_timer(p, &inc, step_timer(0), t0(), 0, t0())
            .unwrap()
            .incident;
        let at = t0() + Duration::minutes(15);
        let d = fire_timer(p, &inc, TimerKind::ResponseTarget, at, 0, at).unwrap();
        (inc, d)
    }

    #[test]
    fn a_response_target_breach_is_announced_and_escalates_at_once() {
        let p = policy();
        let (inc, d) = p0_breach(&p);
        let at = t0() + Duration::minutes(15);
        assert_eq!(kinds(&d.events), ["response_target_breached", "escalated"]);
        assert_eq!(
            d.incident.escalation_level, 2,
            "the DevOps lead is paged now, not at +30m"
        );
        let text = serde_json::to_string(&d.effects).unwrap();
        assert!(
            text.contains("\"target\":\"15m\"") && text.contains("DevOps lead"),
            "{text}"
        );
        // The +30m timer for that step is then a no-op.
        let later = t0() + Duration::minutes(30);
        assert!(fire_timer(&p, &d.incident, step_timer(1), later, 0, later).is_none());
        let acked = apply(&p, &inc, &user("bob"), &Command::Ack, at)
            .unwrap()
            .incident;
        assert!(
            fire_timer(&p, &acked, TimerKind::ResponseTarget, at, 0, at).is_none(),
            "no breach once acknowledged"
        );
    }

    #[test]
    fn a_breach_is_announced_once_however_often_the_severity_changes_after_it() {
        let p = policy();
        let breached = p0_breach(&p).1.incident;
        let at = t0() + Duration::minutes(15);
        assert_eq!(breached.response_breached_at, Some(at));
        assert_eq!(breached.escalation_level, 2, "the DevOps lead was paged");
        // PagerDuty lowers the priority and raises it back: the P0 target has passed again,
        // but it was breached already, and nobody more is paged for it.
        let mut inc = breached;
        for (minutes, severity) in [(20, Severity::P1), (22, Severity::P0)] {
            let now = t0() + Duration::minutes(minutes);
            let d = apply(&p, &inc, &user("bob"), &Command::Sev(severity), now).unwrap();
            assert!(
                d.timers.iter().all(|t| t.kind != TimerKind::ResponseTarget),
                "{:?}",
                escalation_timers(&d)
            );
            inc = d.incident;
        }
        let now = t0() + Duration::minutes(22);
        assert!(
            fire_timer(
                &p,
                &inc,
                TimerKind::ResponseTarget,
                now,
                inc.escalation_generation,
                now
            )
            .is_none(),
            "a check planned before the breach was recorded does nothing"
        );
        assert_eq!(inc.escalation_level, 2, "the manager is still due at 1h");
    }

    #[test]
    fn resolve_cancels_everything_but_the_postmortem_reminders() {
        let p = policy();
        let inc = declared("DB down", Some(Severity::P0)).incident;
        let inc = fire_timer(&p, &inc, step_timer(0), t0(), 0, t0())
            .unwrap()
            .incident;
        let at = t0() + Duration::minutes(10);
        let d = apply(
            &p,
            &inc,
            &user("bob"),
            &Command::Resolve { root_cause: None },
            at,
        )
        .unwrap();
        assert_eq!(
            pagerduty_calls(&d),
            [PagerDutyAction::Resolve {
                service: "oncall".into(),
                dedup_key: "INC-1".into()
            }]
        );
        assert_eq!(
            d.timers
                .iter()
                .map(|t| (t.kind, t.due_at - at))
                .collect::<Vec<_>>(),
            [
                (
                    TimerKind::PostmortemReminder { reminder: 0 },
                    Duration::hours(24)
                ),
                (
                    TimerKind::PostmortemReminder { reminder: 1 },
                    Duration::hours(48)
                )
            ]
        );
        let resolved = d.incident;
        for kind in [
            step_timer(1),
            step_timer(3),
            TimerKind::ResponseTarget,
            TimerKind::StatusReminder,
        ] {
            assert!(
                fire_timer(&p, &resolved, kind, at, 0, at).is_none(),
                "{kind:?}"
            );
        }
        let reminder = fire_timer(
            &p,
            &resolved,
            TimerKind::PostmortemReminder { reminder: 0 },
            at + Duration::hours(24),
            resolved.escalation_generation,
            at + Duration::hours(24),
        )
        .unwrap();
        assert_eq!(kinds(&reminder.events), ["postmortem_reminder"]);
        assert!(
            serde_json::to_string(&reminder.effects)
                .unwrap()
                .contains("resolved 24h ago")
                || serde_json::to_string(&reminder.effects)
                    .unwrap()
                    .contains("\"after\":\"24h\"")
        );
    }

    #[test]
    fn page_and_escalate_commands() {
        let p = policy();
        let inc = declared("DB down", Some(Severity::P2)).incident;
        let paged = apply(
            &p,
            &inc,
            &user("bob"),
            &Command::Page(PageTarget::User("PUSER1".into())),
            t0(),
        )
        .unwrap();
        assert!(
            matches!(&pagerduty_calls(&paged)[..], [PagerDutyAction::RequestResponders { incident_key, targets, unless: None, .. }] if incident_key == "INC-1" && targets == &[PageTarget::User("PUSER1".into())]),
            "a page a person asked for is never withdrawn"
        );
        assert_eq!(kinds(&paged.events), ["paged"]);
        let mut no_rest = p.clone();
        no_rest.pagerduty_rest = false;
        let refused = apply(
            &no_rest,
            &inc,
            &user("bob"),
            &Command::Page(PageTarget::User("PUSER1".into())),
            t0(),
        )
        .unwrap_err();
        assert!(format!("{refused:?}").contains("REST API is not configured"));
        let refused = apply(
            &p,
            &inc,
            &user("bob"),
            &Command::Page(PageTarget::Service("nope".into())),
            t0(),
        )
        .unwrap_err();
        assert!(format!("{refused:?}").contains("pagerduty.routing_keys.nope is not configured"));

        let mut inc = inc;
        for expected in [1, 2, 3] {
            let d = apply(&p, &inc, &user("bob"), &Command::Escalate, t0()).unwrap();
            assert_eq!(d.incident.escalation_level, expected);
            inc = d.incident;
        }
        let done = apply(&p, &inc, &user("bob"), &Command::Escalate, t0()).unwrap_err();
        assert!(
            format!("{done:?}").contains("no further escalation steps for P2"),
            "the CTO step is P0 only"
        );
    }

    #[test]
    fn pagerduty_changes_are_applied_once_and_never_echoed_back() {
        let p = policy();
        let inc = declared("DB down", Some(Severity::P0)).incident;
        let inc = fire_timer(&p, &inc, step_timer(0), t0(), 0, t0())
            .unwrap()
            .incident;
        let acked =
            pagerduty_change(&p, &inc, &PagerDutyChange::Acknowledged, "Jane Doe", t0()).unwrap();
        assert_eq!(
            pagerduty_calls(&acked),
            [PagerDutyAction::Acknowledge {
                service: "oncall".into(),
                dedup_key: "INC-1".into()
            }],
            "every paged service is acknowledged (a repeat for the one that reported it is harmless)"
        );
        assert!(acked.incident.acknowledged_at.is_some());
        assert_eq!(acked.events[0].actor, Actor::PagerDuty("Jane Doe".into()));
        assert!(
            pagerduty_change(
                &p,
                &acked.incident,
                &PagerDutyChange::Acknowledged,
                "Jane Doe",
                t0()
            )
            .is_none(),
            "a repeat changes nothing"
        );
        // An ack made in chat comes back from PagerDuty as an echo: nothing happens twice.
        let chat_ack = apply(&p, &inc, &user("bob"), &Command::Ack, t0())
            .unwrap()
            .incident;
        assert!(
            pagerduty_change(&p, &chat_ack, &PagerDutyChange::Acknowledged, "bob", t0()).is_none()
        );
        let sev = pagerduty_change(
            &p,
            &inc,
            &PagerDutyChange::Severity(Severity::P1),
            "Jane",
            t0(),
        )
        .unwrap();
        assert_eq!(sev.incident.severity, Severity::P1);
        // An incident PagerDuty opened: a resolution from PagerDuty is not sent back by id, but
        // the services warroom paged are resolved too; a chat ack updates it by id (REST).
        let mut opened = inc.clone();
        opened.pagerduty_incident_id = Some("PXYZ".into());
        let resolved =
            pagerduty_change(&p, &opened, &PagerDutyChange::Resolved, "Jane", t0()).unwrap();
        assert_eq!(
            pagerduty_calls(&resolved),
            [PagerDutyAction::Resolve {
                service: "oncall".into(),
                dedup_key: "INC-1".into()
            }]
        );
        assert!(
            pagerduty_change(
                &p,
                &resolved.incident,
                &PagerDutyChange::Resolved,
                "Jane",
                t0()
            )
            .is_none()
        );
        let chat = apply(&p, &opened, &user("bob"), &Command::Ack, t0()).unwrap();
        assert!(
            pagerduty_calls(&chat).contains(&PagerDutyAction::SetIncidentStatus {
                incident_id: "PXYZ".into(),
                status: Status::Acknowledged
            })
        );
    }

    fn kinds(events: &[TimelineEvent]) -> Vec<&'static str> {
        events.iter().map(|e| e.kind.name()).collect()
    }

    #[test]
    fn a_later_step_firing_first_fires_the_earlier_ones_before_it() {
        // Another replica holds step 1's timer; step 2's comes due and fires first.
        let p = policy();
        let inc = declared("DB down", Some(Severity::P0)).incident;
        let at = t0() + Duration::minutes(31);
        let d = fire_timer(&p, &inc, step_timer(1), at, 0, at).unwrap();
        assert_eq!(kinds(&d.events), ["escalated", "escalated"]);
        assert_eq!(
            d.incident.paged_services,
            ["oncall", "devops_lead"],
            "no step is skipped"
        );
        assert!(
            fire_timer(&p, &d.incident, step_timer(0), t0(), 0, at).is_none(),
            "and none fires twice"
        );
    }

    #[test]
    fn the_summary_is_edited_when_the_incident_changes_and_loses_spent_buttons() {
        let policy = policy();
        let d = declared("DB down", None);
        let acked = apply(&policy, &d.incident, &user("bob"), &Command::Ack, t0()).unwrap();
        let update = acked
            .effects
            .iter()
            .find_map(|e| match e {
                Effect::Update {
                    slot: Slot::Summary,
                    message,
                    ..
                } => Some(message),
                _ => None,
            })
            .expect("summary edited");
        assert_eq!(update.buttons.len(), 1, "only Resolve is left");
        let text = serde_json::to_string(update).unwrap();
        assert!(text.contains("\"acknowledged_by\":\"bob\""), "{text}");
        // An update that changes nothing on the summary does not edit it.
        let noted = apply(
            &policy,
            &acked.incident,
            &user("bob"),
            &Command::Update("looking".into()),
            t0(),
        )
        .unwrap();
        assert!(
            !noted
                .effects
                .iter()
                .any(|e| matches!(e, Effect::Update { .. }))
        );
    }

    #[test]
    fn declare_creates_channel_alert_announcement_and_reminder() {
        let d = declared("DB down", None);
        assert_eq!(d.incident.severity, Severity::P0);
        assert_eq!(d.incident.status, Status::Investigating);
        assert_eq!(d.incident.commander, user("alice"));
        assert_eq!(kinds(&d.events), ["declared"]);
        assert!(matches!(d.effects[0], Effect::CreateChannel { .. }));
        assert!(
            matches!(&d.effects[1], Effect::Post { pin: true, slot: None, message, .. } if message.buttons.is_empty())
        );
        assert!(
            matches!(&d.effects[2], Effect::Post { pin: true, slot: Some(Slot::Summary), message, .. } if message.buttons.len() == 2)
        );
        assert!(
            matches!(&d.effects[3], Effect::Post { channel: ChannelTarget::Named(n), .. } if n == "incidents")
        );
        let reminder = TimerRequest {
            kind: TimerKind::StatusReminder,
            due_at: t0() + Duration::minutes(30),
            fence: 0,
        };
        assert_eq!(d.timers[0], reminder);
        let reply = serde_json::to_string(&d.reply).unwrap();
        assert!(reply.contains("because the title mentions"), "{reply}");
        assert!(reply.contains("/incident sev P1"), "{reply}");
    }

    #[test]
    fn explicit_and_default_severity_are_explained() {
        let d = declared("something odd", Some(Severity::P3));
        assert_eq!(d.incident.severity, Severity::P3);
        assert!(
            serde_json::to_string(&d.reply)
                .unwrap()
                .contains("given with --sev")
        );
        let d = declared("something odd", None);
        assert_eq!(d.incident.severity, Severity::P2);
        assert!(serde_json::to_string(&d.reply).unwrap().contains("default"));
    }

    #[test]
    fn full_lifecycle() {
        let p = policy();
        let mut inc = declared("DB down", None).incident;
        let bob = user("bob");
        let steps: Vec<(Command, Status)> = vec![
            (Command::Ack, Status::Acknowledged),
            (Command::Sev(Severity::P1), Status::Acknowledged),
            (Command::Commander(user("carol")), Status::Acknowledged),
            (Command::Status(Status::Identified), Status::Identified),
            (Command::Update("failover done".into()), Status::Identified),
            (Command::Status(Status::Monitoring), Status::Monitoring),
            (
                Command::Resolve {
                    root_cause: Some("disk full".into()),
                },
                Status::Resolved,
            ),
        ];
        let mut generation = inc.escalation_generation;
        for (i, (command, status)) in steps.into_iter().enumerate() {
            let now = t0() + Duration::minutes(5 * (i as i64 + 1));
            let d = apply(&p, &inc, &bob, &command, now)
                .unwrap_or_else(|r| panic!("{command:?}: {r:?}"));
            assert_eq!(d.incident.status, status, "{command:?}");
            assert!(!d.events.is_empty());
            let topic_changed = !matches!(command, Command::Update(_));
            assert_eq!(
                d.effects
                    .iter()
                    .any(|e| matches!(e, Effect::SetTopic { .. })),
                topic_changed,
                "{command:?}"
            );
            inc = d.incident;
            if matches!(
                command,
                Command::Ack | Command::Sev(_) | Command::Resolve { .. }
            ) {
                assert!(
                    inc.escalation_generation > generation,
                    "{command:?} must bump the fence"
                );
            }
            generation = inc.escalation_generation;
        }
        assert_eq!(inc.acknowledged_by, Some(bob));
        assert_eq!(inc.commander, user("carol"));
        assert_eq!(inc.root_cause.as_deref(), Some("disk full"));
        assert_eq!(inc.resolved_at, Some(t0() + Duration::minutes(35)));
    }

    #[test]
    fn invalid_transitions_change_nothing() {
        let p = policy();
        let inc = declared("DB down", None).incident;
        let bob = user("bob");
        let acked = apply(&p, &inc, &bob, &Command::Ack, t0()).unwrap().incident;
        let again = apply(&p, &acked, &bob, &Command::Ack, t0()).unwrap_err();
        assert!(format!("{again:?}").contains("already acknowledged by @bob"));
        assert!(apply(&p, &acked, &bob, &Command::Sev(Severity::P0), t0()).is_err());
        assert!(apply(&p, &acked, &bob, &Command::Commander(user("alice")), t0()).is_err());
        assert!(
            apply(
                &p,
                &acked,
                &bob,
                &Command::Status(Status::Acknowledged),
                t0()
            )
            .is_err()
        );
        let resolved = apply(
            &p,
            &acked,
            &bob,
            &Command::Resolve { root_cause: None },
            t0(),
        )
        .unwrap()
        .incident;
        for command in [
            Command::Ack,
            Command::Resolve { root_cause: None },
            Command::Sev(Severity::P3),
            Command::Update("x".into()),
        ] {
            let refusal = apply(&p, &resolved, &bob, &command, t0()).unwrap_err();
            assert!(
                format!("{refusal:?}").contains("was resolved at"),
                "{command:?}"
            );
        }
        assert!(apply(&p, &inc, &bob, &Command::List { all: true }, t0()).is_err());
    }

    #[test]
    fn severity_change_replans_the_reminder_when_the_cadence_differs() {
        let mut p = policy();
        p.severities[0].status_update_every = Duration::minutes(15);
        let inc = declared("DB down", Some(Severity::P2)).incident;
        let same = apply(&p, &inc, &user("bob"), &Command::Sev(Severity::P1), t0()).unwrap();
        assert!(
            !same
                .timers
                .iter()
                .any(|t| t.kind == TimerKind::StatusReminder),
            "same cadence, same reminder"
        );
        let now = t0() + Duration::minutes(5);
        let faster = apply(&p, &inc, &user("bob"), &Command::Sev(Severity::P0), now).unwrap();
        assert_eq!(
            faster
                .timers
                .iter()
                .filter(|t| t.kind == TimerKind::StatusReminder)
                .cloned()
                .collect::<Vec<_>>(),
            vec![TimerRequest {
                kind: TimerKind::StatusReminder,
                due_at: t0() + Duration::minutes(15),
                fence: 1
            }]
        );
        assert!(
            fire_timer(
                &p,
                &faster.incident,
                TimerKind::StatusReminder,
                t0() + Duration::minutes(30),
                0,
                now
            )
            .is_none(),
            "the old plan is stale"
        );
        let late = apply(
            &p,
            &inc,
            &user("bob"),
            &Command::Sev(Severity::P0),
            t0() + Duration::hours(1),
        )
        .unwrap();
        assert_eq!(
            late.timers
                .iter()
                .find(|t| t.kind == TimerKind::StatusReminder)
                .unwrap()
                .due_at,
            t0() + Duration::hours(1),
            "overdue at the new cadence: due now"
        );
    }

    #[test]
    fn status_change_before_ack_acknowledges() {
        let p = policy();
        let inc = declared("DB down", None).incident;
        let d = apply(
            &p,
            &inc,
            &user("bob"),
            &Command::Status(Status::Identified),
            t0(),
        )
        .unwrap();
        assert_eq!(kinds(&d.events), ["acknowledged", "status_changed"]);
        assert!(d.incident.acknowledged_at.is_some());
    }

    #[test]
    fn reminders_fire_once_per_fence_and_say_when_late() {
        let p = policy();
        let inc = declared("DB down", None).incident;
        let due = t0() + Duration::minutes(30);
        let d = fire_timer(&p, &inc, TimerKind::StatusReminder, due, 0, due).unwrap();
        assert_eq!(d.timers[0].due_at, due + Duration::minutes(30));
        assert!(
            serde_json::to_string(&d.effects)
                .unwrap()
                .contains("\"late\":null")
        );
        let late = fire_timer(
            &p,
            &inc,
            TimerKind::StatusReminder,
            due,
            0,
            due + Duration::hours(2),
        )
        .unwrap();
        assert!(
            serde_json::to_string(&late.effects)
                .unwrap()
                .contains("2h late")
        );
        assert!(late.timers[0].due_at > due + Duration::hours(2));
        // An update moves the fence: the old reminder is stale.
        let updated = apply(&p, &inc, &user("bob"), &Command::Update("x".into()), t0())
            .unwrap()
            .incident;
        assert!(fire_timer(&p, &updated, TimerKind::StatusReminder, due, 0, due).is_none());
        let resolved = apply(
            &p,
            &updated,
            &user("bob"),
            &Command::Resolve { root_cause: None },
            t0(),
        )
        .unwrap()
        .incident;
        assert!(
            fire_timer(
                &p,
                &resolved,
                TimerKind::StatusReminder,
                due,
                resolved.reminder_generation,
                due
            )
            .is_none()
        );
    }
}
