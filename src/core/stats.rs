//! `stats [--days N]`: what the incidents declared in a period say about the response —
//! how many by severity, how long acknowledging and resolving took, how often a response
//! target was missed, and how far escalations went.

use super::Policy;
use super::incident::{EventKind, Incident, IncidentKey, TimelineEvent};
use super::severity::Severity;
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// Days `stats` looks back when not told.
pub const DEFAULT_DAYS: i64 = 30;
/// The longest period `stats` accepts, in days.
pub const MAX_DAYS: i64 = 365;
/// The most incidents one `stats` reads; a period with more says so.
pub const MAX_INCIDENTS: i64 = 10_000;

/// The timeline events `stats` reads besides the incidents themselves.
pub const EVENT_KINDS: [&str; 2] = ["escalated", "response_target_breached"];

/// Mean and 90th percentile of some durations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spread {
    pub count: usize,
    pub mean: Option<Duration>,
    /// Nearest rank: the smallest duration at least 90 % of them do not exceed.
    pub p90: Option<Duration>,
}

impl Spread {
    fn of(mut durations: Vec<Duration>) -> Spread {
        durations.sort();
        let count = durations.len();
        if count == 0 {
            return Spread {
                count,
                mean: None,
                p90: None,
            };
        }
        let total: i64 = durations.iter().map(Duration::num_seconds).sum();
        let rank = (count * 9).div_ceil(10);
        Spread {
            count,
            mean: Some(Duration::seconds(total / count as i64)),
            p90: Some(durations[rank - 1]),
        }
    }
}

/// How many incidents reached one escalation step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepReached {
    /// The step's position in `[[escalation]]` (0 first).
    pub step: usize,
    pub name: String,
    pub incidents: usize,
}

/// The statistics of the incidents declared since `since`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    pub days: i64,
    pub since: DateTime<Utc>,
    /// Incidents declared in the period.
    pub total: usize,
    /// Of them, still open.
    pub open: usize,
    /// Count by (current) severity, every severity listed.
    pub by_severity: Vec<(Severity, usize)>,
    /// From declaration to acknowledgement, of those acknowledged.
    pub acknowledge: Spread,
    /// From declaration to resolution, of those resolved.
    pub resolve: Spread,
    /// Incidents whose response target passed without an acknowledgement, by the severity
    /// the incident has now; every severity listed.
    pub breaches: Vec<(Severity, usize)>,
    /// Every configured step, and any other step the events name, in step order.
    pub escalations: Vec<StepReached>,
    /// Whether the period held more incidents than one `stats` reads.
    pub truncated: bool,
}

/// Statistics of `incidents` (those declared since `since`) and their `events` (at least the
/// kinds in `EVENT_KINDS`).
pub fn compute(
    policy: &Policy,
    days: i64,
    since: DateTime<Utc>,
    incidents: &[Incident],
    events: &[(IncidentKey, TimelineEvent)],
) -> Stats {
    let severity_of: BTreeMap<IncidentKey, Severity> =
        incidents.iter().map(|i| (i.key, i.severity)).collect();
    let count_by = |keys: &BTreeSet<IncidentKey>| -> Vec<(Severity, usize)> {
        Severity::ALL
            .iter()
            .map(|s| {
                let n = keys
                    .iter()
                    .filter(|k| severity_of.get(k) == Some(s))
                    .count();
                (*s, n)
            })
            .collect()
    };
    let all: BTreeSet<IncidentKey> = severity_of.keys().copied().collect();
    let mut breached = BTreeSet::new();
    let mut reached: BTreeMap<usize, (String, BTreeSet<IncidentKey>)> = policy
        .escalation
        .iter()
        .enumerate()
        .map(|(step, s)| (step, (s.name.clone(), BTreeSet::new())))
        .collect();
    for (key, event) in events {
        if !severity_of.contains_key(key) {
            continue;
        }
        match &event.kind {
            EventKind::ResponseTargetBreached { .. } => {
                breached.insert(*key);
            }
            EventKind::Escalated { step, name, .. } => {
                reached
                    .entry(*step)
                    .or_insert_with(|| (name.clone(), BTreeSet::new()))
                    .1
                    .insert(*key);
            }
            _ => {}
        }
    }
    Stats {
        days,
        since,
        total: incidents.len(),
        open: incidents.iter().filter(|i| i.status.is_open()).count(),
        by_severity: count_by(&all),
        acknowledge: Spread::of(
            incidents
                .iter()
                .filter_map(|i| Some(i.acknowledged_at? - i.declared_at))
                .collect(),
        ),
        resolve: Spread::of(
            incidents
                .iter()
                .filter_map(|i| Some(i.resolved_at? - i.declared_at))
                .collect(),
        ),
        breaches: count_by(&breached),
        escalations: reached
            .into_iter()
            .map(|(step, (name, keys))| StepReached {
                step,
                name,
                incidents: keys.len(),
            })
            .collect(),
        truncated: incidents.len() as i64 >= MAX_INCIDENTS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::decide::tests::policy;
    use crate::core::decide::{self, DeclareRequest};
    use crate::core::incident::Actor;
    use crate::core::text::UserRef;
    use crate::core::{ChannelName, Platform};
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
    }

    fn incident(n: i64, severity: Severity, ack: Option<i64>, resolve: Option<i64>) -> Incident {
        let declared = decide::declare(
            &policy(),
            DeclareRequest {
                key: IncidentKey(n),
                title: format!("Incident {n}"),
                severity: Some(severity),
                actor: UserRef::parse("alice").unwrap(),
                platform: Platform::Console,
                channel: ChannelName::parse(&format!("inc-{n}")).unwrap(),
                now: t0() + Duration::hours(n),
                from_pagerduty: None,
            },
        );
        let mut i = declared.incident;
        i.acknowledged_at = ack.map(|m| i.declared_at + Duration::minutes(m));
        if let Some(m) = resolve {
            i.resolved_at = Some(i.declared_at + Duration::minutes(m));
            i.status = crate::core::Status::Resolved;
        }
        i
    }

    fn event(n: i64, kind: EventKind) -> (IncidentKey, TimelineEvent) {
        (
            IncidentKey(n),
            TimelineEvent {
                at: t0(),
                actor: Actor::System,
                kind,
            },
        )
    }

    fn escalated(n: i64, step: usize, name: &str) -> (IncidentKey, TimelineEvent) {
        event(
            n,
            EventKind::Escalated {
                step,
                name: name.into(),
                paged: vec![],
                mentioned: vec![],
                late_by_seconds: 0,
            },
        )
    }

    #[test]
    fn an_empty_period_has_no_means() {
        let stats = compute(&policy(), 30, t0(), &[], &[]);
        assert_eq!(stats.total, 0);
        assert_eq!(stats.acknowledge.mean, None);
        assert_eq!(stats.resolve.p90, None);
        assert!(stats.by_severity.iter().all(|(_, n)| *n == 0));
        assert_eq!(stats.by_severity.len(), 4);
        let names: Vec<_> = stats.escalations.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            policy()
                .escalation
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            "every configured step is listed, reached or not"
        );
    }

    #[test]
    fn counts_means_percentiles_breaches_and_steps() {
        // Ten incidents acknowledged after 1..=10 minutes; the odd ones resolved after
        // 60 minutes more than their number; one P0 never acknowledged and still open.
        let mut incidents: Vec<Incident> = (1..=10)
            .map(|n| {
                let severity = if n <= 2 { Severity::P1 } else { Severity::P2 };
                incident(n, severity, Some(n), (n % 2 == 1).then_some(60 + n))
            })
            .collect();
        incidents.push(incident(11, Severity::P0, None, None));
        let events = vec![
            event(
                11,
                EventKind::ResponseTargetBreached {
                    target_seconds: 300,
                },
            ),
            event(
                2,
                EventKind::ResponseTargetBreached {
                    target_seconds: 900,
                },
            ),
            escalated(11, 0, "on-call"),
            escalated(11, 1, "devops lead"),
            escalated(2, 0, "on-call"),
            // A repeat of a step for one incident counts once.
            escalated(2, 0, "on-call"),
            // Events of incidents outside the period are ignored.
            escalated(99, 3, "cto"),
            // A step no longer configured is still reported.
            escalated(11, 7, "retired step"),
        ];
        // The kinds the store is asked for are the names of the events read here.
        assert!(
            events
                .iter()
                .all(|(_, e)| EVENT_KINDS.contains(&e.kind.name()))
        );
        let stats = compute(&policy(), 30, t0(), &incidents, &events);
        assert_eq!(stats.total, 11);
        assert_eq!(stats.open, 6, "the five even ones and the P0");
        assert_eq!(
            stats.by_severity,
            vec![
                (Severity::P0, 1),
                (Severity::P1, 2),
                (Severity::P2, 8),
                (Severity::P3, 0)
            ]
        );
        assert_eq!(
            stats.acknowledge,
            Spread {
                count: 10,
                // 55 minutes over 10, in whole seconds.
                mean: Some(Duration::seconds(330)),
                p90: Some(Duration::minutes(9)),
            }
        );
        // Resolved after 61, 63, 65, 67, 69 minutes.
        assert_eq!(
            stats.resolve,
            Spread {
                count: 5,
                mean: Some(Duration::minutes(65)),
                p90: Some(Duration::minutes(69)),
            }
        );
        assert_eq!(
            stats.breaches,
            vec![
                (Severity::P0, 1),
                (Severity::P1, 1),
                (Severity::P2, 0),
                (Severity::P3, 0)
            ]
        );
        let reached: Vec<(usize, usize)> = stats
            .escalations
            .iter()
            .map(|s| (s.step, s.incidents))
            .collect();
        let configured = policy().escalation.len();
        let mut expected = vec![(0, 2), (1, 1)];
        expected.extend((2..configured).map(|step| (step, 0)));
        expected.push((7, 1));
        assert_eq!(reached, expected);
        assert_eq!(stats.escalations.last().unwrap().name, "retired step");
        assert!(!stats.truncated);
    }

    #[test]
    fn the_90th_percentile_is_the_nearest_rank() {
        let minutes = |ms: &[i64]| Spread::of(ms.iter().map(|m| Duration::minutes(*m)).collect());
        assert_eq!(minutes(&[7]).p90, Some(Duration::minutes(7)));
        assert_eq!(minutes(&[1, 2]).p90, Some(Duration::minutes(2)));
        let eleven: Vec<i64> = (1..=11).collect();
        assert_eq!(minutes(&eleven).p90, Some(Duration::minutes(10)));
        let twenty: Vec<i64> = (1..=20).rev().collect();
        assert_eq!(minutes(&twenty).p90, Some(Duration::minutes(18)));
    }
}
