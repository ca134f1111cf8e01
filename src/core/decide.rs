//! The incident state machine: given the current state, an input and `now`, decide the new
//! state, the timeline events, the effects and the timers. Pure.

use super::command::Command;
use super::incident::{Actor, EventKind, Incident, IncidentKey, Platform, Status, TimelineEvent};
use super::message::Message;
use super::severity::{Severity, SeverityReason};
use super::text::UserRef;
use super::{
    ChannelName, ChannelTarget, Decision, Effect, Policy, TimerKind, TimerRequest, human_duration,
    views,
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

/// Declare a new incident.
pub fn declare(policy: &Policy, request: DeclareRequest) -> Decision {
    let (severity, reason) = classify(policy, &request.title, request.severity);
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
        version: 0,
    };
    let actor = Actor::User(request.actor.clone());
    let why = reason_sentence(severity, &reason);
    let effects = vec![
        Effect::CreateChannel {
            channel: incident.channel.clone(),
            topic: views::topic(&incident),
            invite: vec![request.actor.clone()],
        },
        Effect::Post {
            channel: ChannelTarget::Incident(incident.channel.clone()),
            message: views::alert(policy, &incident, &why),
            pin: true,
        },
        Effect::Post {
            channel: ChannelTarget::Named(policy.announce_channel.clone()),
            message: views::announcement(&incident, &actor),
            pin: false,
        },
    ];
    let every = policy.severity(severity).status_update_every;
    Decision {
        reply: Some(views::declared_reply(&incident, &why)),
        events: vec![TimelineEvent {
            at: now,
            actor,
            kind: EventKind::Declared {
                title: request.title,
                severity,
                reason,
            },
        }],
        effects,
        timers: vec![TimerRequest {
            kind: TimerKind::StatusReminder,
            due_at: now + every,
            fence: incident.reminder_generation,
        }],
        incident,
    }
}

/// Why an input changed nothing; shown to the person who sent it.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal(pub Message);

fn refuse(text: String) -> Refusal {
    Refusal(views::refusal(text))
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
    let mut next = current.clone();
    let mut events = Vec::new();
    let mut effects = Vec::new();
    let mut timers = Vec::new();
    let event = |kind| TimelineEvent {
        at: now,
        actor: who.clone(),
        kind,
    };
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
            acknowledge(&mut next, actor, now, &mut events, &who);
            if next.status == Status::Investigating {
                next.status = Status::Acknowledged;
            }
            let target = policy.severity(current.severity).respond_within;
            let took = now - current.declared_at;
            let verdict = if took <= target {
                format!("within the {} target", human_duration(target))
            } else {
                format!("past the {} target", human_duration(target))
            };
            effects.push(post_change(
                &next,
                &who,
                format!(
                    "acknowledged {} after declaration ({verdict})",
                    human_duration(took)
                ),
            ));
        }
        Command::Sev(severity) => {
            if *severity == current.severity {
                return Err(refuse(format!("{key} is already {severity}.")));
            }
            next.severity = *severity;
            next.escalation_generation += 1;
            events.push(event(EventKind::SeverityChanged {
                from: current.severity,
                to: *severity,
            }));
            let sev = policy.severity(*severity);
            effects.push(post_change(
                &next,
                &who,
                format!(
                    "changed severity {} → {severity} ({}); respond within {}, updates every {}",
                    current.severity,
                    sev.name,
                    human_duration(sev.respond_within),
                    human_duration(sev.status_update_every)
                ),
            ));
            // A new cadence re-plans the next status-update reminder from the last update.
            if sev.status_update_every != policy.severity(current.severity).status_update_every {
                next.reminder_generation += 1;
                timers.push(TimerRequest {
                    kind: TimerKind::StatusReminder,
                    due_at: (current.last_update_at + sev.status_update_every).max(now),
                    fence: next.reminder_generation,
                });
            }
        }
        Command::Commander(user) => {
            if *user == current.commander {
                return Err(refuse(format!(
                    "@{user} is already the commander of {key}."
                )));
            }
            next.commander = user.clone();
            events.push(event(EventKind::CommanderAssigned {
                from: current.commander.clone(),
                to: user.clone(),
            }));
            effects.push(post_change(
                &next,
                &who,
                format!("made @{user} incident commander"),
            ));
        }
        Command::Status(status) => {
            if *status == current.status {
                return Err(refuse(format!("{key} is already {status}.")));
            }
            if current.acknowledged_at.is_none() && *status != Status::Investigating {
                // Moving the incident on means someone is on it.
                acknowledge(&mut next, actor, now, &mut events, &who);
            }
            next.status = *status;
            events.push(event(EventKind::StatusChanged {
                from: current.status,
                to: *status,
            }));
            effects.push(post_change(
                &next,
                &who,
                format!("moved status {} → {status}", current.status),
            ));
        }
        Command::Update(text) => {
            next.last_update_at = now;
            next.reminder_generation += 1;
            events.push(event(EventKind::StatusUpdate { text: text.clone() }));
            effects.push(Effect::Post {
                channel: ChannelTarget::Incident(next.channel.clone()),
                message: views::status_update(policy, &next, &who, text),
                pin: false,
            });
            timers.push(TimerRequest {
                kind: TimerKind::StatusReminder,
                due_at: now + policy.severity(next.severity).status_update_every,
                fence: next.reminder_generation,
            });
        }
        Command::Resolve { root_cause } => {
            next.status = Status::Resolved;
            next.resolved_at = Some(now);
            next.root_cause = root_cause.clone();
            next.escalation_generation += 1;
            next.reminder_generation += 1;
            events.push(event(EventKind::Resolved {
                root_cause: root_cause.clone(),
            }));
            effects.push(Effect::Post {
                channel: ChannelTarget::Incident(next.channel.clone()),
                message: views::resolved(policy, &next),
                pin: false,
            });
            effects.push(Effect::Post {
                channel: ChannelTarget::Named(policy.announce_channel.clone()),
                message: views::announcement(&next, &who),
                pin: false,
            });
        }
        Command::Declare { .. }
        | Command::Timeline
        | Command::List { .. }
        | Command::Help { .. } => {
            return Err(refuse(
                "That command does not change an incident.".to_string(),
            ));
        }
    }
    let topic = views::topic(&next);
    if topic != views::topic(current) {
        effects.push(Effect::SetTopic {
            channel: next.channel.clone(),
            topic,
        });
    }
    Ok(Decision {
        incident: next,
        events,
        effects,
        timers,
        reply: None,
    })
}

fn acknowledge(
    next: &mut Incident,
    actor: &UserRef,
    now: DateTime<Utc>,
    events: &mut Vec<TimelineEvent>,
    who: &Actor,
) {
    next.acknowledged_at = Some(now);
    next.acknowledged_by = Some(actor.clone());
    next.escalation_generation += 1;
    events.push(TimelineEvent {
        at: now,
        actor: who.clone(),
        kind: EventKind::Acknowledged,
    });
}

fn post_change(incident: &Incident, who: &Actor, change: String) -> Effect {
    Effect::Post {
        channel: ChannelTarget::Incident(incident.channel.clone()),
        message: views::status_change(incident, who, change),
        pin: false,
    }
}

/// A durable timer came due. Returns `None` when it is stale (its fence has moved on, or
/// the incident is resolved): a stale timer does nothing.
pub fn fire_timer(
    policy: &Policy,
    current: &Incident,
    kind: TimerKind,
    due_at: DateTime<Utc>,
    fence: i64,
    now: DateTime<Utc>,
) -> Option<Decision> {
    match kind {
        TimerKind::StatusReminder => {
            if !current.status.is_open() || fence != current.reminder_generation {
                return None;
            }
            let late_by = now - due_at;
            let late = (late_by >= policy.lateness_note_after).then(|| {
                format!(
                    "This reminder is {} late: warroom was not running when it was due.",
                    human_duration(late_by)
                )
            });
            let since = human_duration(now - current.last_update_at);
            let every = policy.severity(current.severity).status_update_every;
            Some(Decision {
                incident: current.clone(),
                events: vec![TimelineEvent {
                    at: now,
                    actor: Actor::System,
                    kind: EventKind::ReminderSent {
                        late_by_seconds: late_by.num_seconds().max(0),
                    },
                }],
                effects: vec![Effect::Post {
                    channel: ChannelTarget::Incident(current.channel.clone()),
                    message: views::status_reminder(current, &since, late),
                    pin: false,
                }],
                timers: vec![TimerRequest {
                    kind,
                    // The next reminder keeps the cadence, but never lands in the past.
                    due_at: (due_at + every).max(now + every / 2),
                    fence,
                }],
                reply: None,
            })
        }
    }
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
            lateness_note_after: Duration::minutes(1),
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
            },
        )
    }

    fn kinds(events: &[TimelineEvent]) -> Vec<&'static str> {
        events.iter().map(|e| e.kind.name()).collect()
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
            matches!(&d.effects[1], Effect::Post { pin: true, message, .. } if message.buttons.len() == 2)
        );
        assert!(
            matches!(&d.effects[2], Effect::Post { channel: ChannelTarget::Named(n), .. } if n == "incidents")
        );
        assert_eq!(
            d.timers,
            vec![TimerRequest {
                kind: TimerKind::StatusReminder,
                due_at: t0() + Duration::minutes(30),
                fence: 0
            }]
        );
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
        assert!(same.timers.is_empty(), "same cadence, same plan");
        let now = t0() + Duration::minutes(5);
        let faster = apply(&p, &inc, &user("bob"), &Command::Sev(Severity::P0), now).unwrap();
        assert_eq!(
            faster.timers,
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
            late.timers[0].due_at,
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
