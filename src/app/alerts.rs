//! Monitoring intake and maintenance windows: Alertmanager notifications open, join and
//! (where configured) resolve incidents; maintenance windows, recurring from configuration
//! or started from chat, hold back the paging of low-severity alert incidents and are
//! announced when they start and end.

use super::{App, CONFLICT_RETRIES, Origin};
use crate::alertmanager::{AlertStatus, Notification, SeverityRules};
use crate::core::command::MaintenanceCommand;
use crate::core::decide::{self, AlertOrigin, DeclareRequest};
use crate::core::maintenance::{Occurrence, RecurringWindow, active_at};
use crate::core::message::{Message, Visibility};
use crate::core::{
    ChannelTarget, Effect, IncidentKey, MonitoredAlert, Platform, Status, UserRef, views,
};
use crate::store::{Change, MaintenanceWindow, StoreError, WindowEdge};
use chrono::{DateTime, Duration, Utc};
use tracing::Instrument;

/// Numbers this process's windows started from chat (with its replica name, unique).
static AD_HOC: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// How far back maintenance windows are read: longer than the longest window.
const WINDOW_LOOKBACK: Duration = Duration::days(crate::core::maintenance::MAX_WINDOW_DAYS + 1);
/// At most this many alert descriptions go into an incident's alert message.
const DETAIL_LINES: usize = 10;
/// At most this many characters of one alert's line in the alert message.
const DETAIL_CHARS: usize = 500;
/// At most this many characters of a label's value in the severity's reason.
const LABEL_CHARS: usize = 100;
/// The user name incidents opened by alerts are declared by (and commanded by, until a
/// person takes over).
const MONITORING_USER: &str = "alertmanager";

/// How alerts become incidents (`[alertmanager]`).
#[derive(Clone, Debug)]
pub struct AlertIntake {
    /// How the timeline names the monitoring system (`Alertmanager`).
    pub source: String,
    pub open_on: Platform,
    pub auto_resolve: bool,
    pub rules: SeverityRules,
}

/// Maintenance windows: the configured recurring ones, and where their start and end are
/// announced (the incidents channel of each chat platform warroom serves).
#[derive(Clone, Debug)]
pub struct Maintenance {
    pub windows: Vec<RecurringWindow>,
    pub announce_on: Vec<Platform>,
}

impl Default for Maintenance {
    fn default() -> Self {
        Maintenance {
            windows: Vec::new(),
            announce_on: vec![Platform::Console],
        }
    }
}

/// What a notification did, for the log and the HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertOutcome {
    Opened(IncidentKey),
    Updated(IncidentKey),
    Resolved(IncidentKey),
    /// Nothing new (a repeat), or nothing to act on; why.
    Unchanged(String),
}

fn monitored(alert: &crate::alertmanager::Alert, rules: &SeverityRules) -> MonitoredAlert {
    MonitoredAlert {
        fingerprint: alert.fingerprint.clone(),
        name: alert.name.clone(),
        firing: alert.status == AlertStatus::Firing,
        text: alert.describe(),
        starts_at: Some(alert.starts_at),
        severity: Some(rules.severity_of(&alert.labels)),
    }
}

fn window_occurrence(window: &MaintenanceWindow) -> Occurrence {
    Occurrence {
        id: window.id.clone(),
        name: window.name.clone(),
        starts_at: window.starts_at,
        ends_at: window.ends_at,
    }
}

/// The windows in force at `now`: occurrences of the recurring windows that were not ended
/// early, and the windows started from chat.
pub fn in_force(
    recurring: &[RecurringWindow],
    stored: &[MaintenanceWindow],
    now: DateTime<Utc>,
) -> Vec<Occurrence> {
    let ad_hoc: Vec<Occurrence> = stored
        .iter()
        .filter(|w| w.id.starts_with("adhoc:"))
        .map(window_occurrence)
        .collect();
    active_at(recurring, &ad_hoc, now)
        .into_iter()
        .filter(|o| {
            !stored
                .iter()
                .any(|w| w.id == o.id && w.ended_by.is_some() && w.ends_at <= now)
        })
        .collect()
}

impl App {
    /// Set the monitoring intake.
    pub fn with_alerts(mut self, intake: AlertIntake) -> App {
        self.alerts = Some(intake);
        self
    }

    /// Set the recurring maintenance windows and where windows are announced.
    pub fn with_maintenance(mut self, maintenance: Maintenance) -> App {
        self.maintenance = maintenance;
        self
    }

    /// Apply an Alertmanager notification (already authenticated and parsed).
    pub async fn handle_alerts(
        &self,
        notification: &Notification,
    ) -> Result<AlertOutcome, StoreError> {
        let Some(intake) = self.alerts.clone() else {
            return Ok(AlertOutcome::Unchanged(
                "alert intake is not configured".into(),
            ));
        };
        let span = tracing::info_span!(
            "alerts",
            group = %crate::chat::split::ellipsis(&notification.group_key, 120),
            status = notification.status.as_str(),
            alerts = notification.alerts.len(),
            incident = tracing::field::Empty,
        );
        self.apply_alerts(notification, &intake)
            .instrument(span)
            .await
    }

    async fn apply_alerts(
        &self,
        notification: &Notification,
        intake: &AlertIntake,
    ) -> Result<AlertOutcome, StoreError> {
        let reported: Vec<MonitoredAlert> = notification
            .alerts
            .iter()
            .map(|alert| monitored(alert, &intake.rules))
            .collect();
        let group = notification.group_id();
        let group_resolved =
            notification.status == AlertStatus::Resolved && notification.truncated_alerts == 0;
        let mut key = None;
        for _ in 0..CONFLICT_RETRIES {
            let now = self.clock.now();
            let latest = self.store.latest_incident_by_alert_group(&group).await?;
            if let Some(incident) = &latest {
                tracing::Span::current().record("incident", tracing::field::display(incident.key));
            }
            match latest {
                Some(incident) if incident.status.is_open() => {
                    let Some(decision) = decide::alerts_reported(
                        &self.policy,
                        &incident,
                        &intake.source,
                        &reported,
                        group_resolved,
                        intake.auto_resolve,
                        now,
                    ) else {
                        return Ok(AlertOutcome::Unchanged(format!(
                            "nothing new for {}",
                            incident.key
                        )));
                    };
                    match self
                        .commit(Change::new(&decision, Some(incident.version), now))
                        .await
                    {
                        Ok(()) => {
                            let resolved = decision.incident.status == Status::Resolved;
                            tracing::info!(incident = %incident.key, resolved, "alerts reported");
                            return Ok(if resolved {
                                AlertOutcome::Resolved(incident.key)
                            } else {
                                AlertOutcome::Updated(incident.key)
                            });
                        }
                        Err(StoreError::Conflict(_)) => continue,
                        Err(other) => return Err(other),
                    }
                }
                latest => {
                    let firing: Vec<&crate::alertmanager::Alert> = notification
                        .firing()
                        .filter(|alert| match &latest {
                            // The group's last incident was resolved: only an alert that is new
                            // to it, or a new firing episode of one of its alerts (a later
                            // `startsAt`, Alertmanager's own clock), opens another.
                            Some(previous) => previous
                                .alerts
                                .iter()
                                .find(|a| a.fingerprint == alert.fingerprint)
                                .is_none_or(|known| {
                                    known.starts_at.is_none_or(|at| alert.starts_at > at)
                                }),
                            None => true,
                        })
                        .collect();
                    if firing.is_empty() {
                        return Ok(AlertOutcome::Unchanged(match latest {
                            Some(previous) => format!(
                                "{} was resolved; these alerts were part of it",
                                previous.key
                            ),
                            None => "no open incident and nothing firing".into(),
                        }));
                    }
                    let key = match key {
                        Some(key) => key,
                        None => {
                            let fresh = self.store.allocate_incident_key().await?;
                            key = Some(fresh);
                            fresh
                        }
                    };
                    tracing::Span::current().record("incident", tracing::field::display(key));
                    let decision = self
                        .alert_declaration(notification, intake, &firing, &reported, key, now)
                        .await?;
                    match self.commit(Change::new(&decision, None, now)).await {
                        Ok(()) => {
                            tracing::info!(incident = %key, severity = %decision.incident.severity, "incident opened by alerts");
                            return Ok(AlertOutcome::Opened(key));
                        }
                        // A channel name or the group taken by another writer (another
                        // replica opening the same group): look again.
                        Err(StoreError::ChannelTaken(_) | StoreError::Conflict(_)) => continue,
                        Err(other) => return Err(other),
                    }
                }
            }
        }
        Err(StoreError::Conflict(notification.group_key.clone()))
    }

    async fn alert_declaration(
        &self,
        notification: &Notification,
        intake: &AlertIntake,
        firing: &[&crate::alertmanager::Alert],
        reported: &[MonitoredAlert],
        key: IncidentKey,
        now: DateTime<Utc>,
    ) -> Result<crate::core::Decision, StoreError> {
        let lead = firing
            .iter()
            .min_by_key(|a| intake.rules.severity_of(&a.labels))
            .expect("at least one firing alert");
        let severity = intake.rules.severity_of(&lead.labels);
        // Label values are the sender's text, like the annotations: one line, and short.
        let labels = ["severity", "alertname", "category"]
            .iter()
            .filter_map(|name| {
                lead.labels.get(*name).map(|value| {
                    let value = crate::core::text::clean_text(value);
                    format!(
                        "{name}={}",
                        crate::chat::split::ellipsis(value.trim(), LABEL_CHARS)
                    )
                })
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut details: Vec<String> = firing
            .iter()
            .take(DETAIL_LINES)
            .map(|a| match (a.summary(), a.description()) {
                // `describe` ends with the summary; the description adds to it. (Without a
                // summary, `describe` already ends with the description.)
                (Some(_), Some(description)) => crate::chat::split::ellipsis(
                    &format!(
                        "{} — {}",
                        a.describe(),
                        crate::core::text::clean_text(description).trim()
                    ),
                    DETAIL_CHARS,
                ),
                _ => a.describe(),
            })
            .collect();
        if firing.len() > DETAIL_LINES {
            details.push(format!("… and {} more", firing.len() - DETAIL_LINES));
        }
        if notification.truncated_alerts > 0 {
            details.push(format!(
                "({} more alerts were left out by Alertmanager)",
                notification.truncated_alerts
            ));
        }
        let hold_paging = if severity.index() > self.policy.maintenance_pages_from.index() {
            self.maintenance_in_force(now)
                .await?
                .into_iter()
                .max_by_key(|o| o.ends_at)
                .map(|o| (o.name, o.ends_at))
        } else {
            None
        };
        let title = notification.title();
        let channel = self.free_channel_name(&title, now).await?;
        Ok(decide::declare_from_alerts(
            &self.policy,
            DeclareRequest {
                key,
                title,
                severity: None,
                actor: UserRef::parse(MONITORING_USER).expect("valid user name"),
                platform: intake.open_on,
                channel,
                now,
                from_pagerduty: None,
            },
            &AlertOrigin {
                source: intake.source.clone(),
                group_key: notification.group_id(),
                alerts: reported.to_vec(),
                details,
                severity,
                labels,
                hold_paging,
            },
        ))
    }

    /// The maintenance windows in force at `now`.
    pub async fn maintenance_in_force(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<Occurrence>, StoreError> {
        let stored = self
            .store
            .maintenance_windows(now - WINDOW_LOOKBACK)
            .await?;
        Ok(in_force(&self.maintenance.windows, &stored, now))
    }

    /// The announcement of a window's start or end, for each chat platform served.
    fn window_notices(&self, message: &Message) -> Vec<(String, Effect)> {
        self.maintenance
            .announce_on
            .iter()
            .map(|platform| {
                (
                    platform.as_str().to_string(),
                    Effect::Post {
                        channel: ChannelTarget::Named(self.policy.announce_channel.clone()),
                        message: message.clone(),
                        pin: false,
                        slot: None,
                    },
                )
            })
            .collect()
    }

    /// Announce the windows that started or ended by `now` and were not announced yet
    /// (exactly once across replicas: the store marks each edge). Ends go first, so that
    /// back-to-back windows read "ended", then "started". Run by the scheduler.
    pub async fn run_maintenance(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let stored = self
            .store
            .maintenance_windows(now - WINDOW_LOOKBACK)
            .await?;
        let recorded = |id: &str| stored.iter().find(|w| w.id == id);
        let in_force_now = in_force(&self.maintenance.windows, &stored, now);
        let others = |id: &str| -> Vec<String> {
            in_force_now
                .iter()
                .filter(|o| o.id != id)
                .map(|o| o.name.clone())
                .collect()
        };
        let mut ended: Vec<&MaintenanceWindow> = self
            .maintenance
            .windows
            .iter()
            .filter_map(|window| window.last_ended_by(now))
            .filter_map(|occurrence| recorded(&occurrence.id))
            .collect();
        ended.extend(
            stored
                .iter()
                .filter(|w| w.id.starts_with("adhoc:") && w.ends_at <= now),
        );
        let mut announced = 0;
        for w in ended {
            if w.start_announced && !w.end_announced {
                let message = views::maintenance_ended(&w.name, None, &others(&w.id));
                announced += self.announce(w, WindowEdge::End, &message, now).await?;
            }
        }
        // No window in force any more: paging held back during one starts now (also
        // after a crash between announcing an end and releasing, on the next pass).
        if in_force_now.is_empty() {
            announced += self.release_held_paging(now).await?;
        }
        for window in &self.maintenance.windows {
            let Some(occurrence) = window.occurrence_at(now) else {
                continue;
            };
            let due = match recorded(&occurrence.id) {
                None => true,
                Some(w) => !w.start_announced && w.ends_at > now,
            };
            if due {
                let row = MaintenanceWindow {
                    id: occurrence.id.clone(),
                    name: occurrence.name.clone(),
                    starts_at: occurrence.starts_at,
                    ends_at: occurrence.ends_at,
                    started_by: None,
                    ended_by: None,
                    start_announced: false,
                    end_announced: false,
                };
                let message = views::maintenance_started(
                    &self.policy,
                    &occurrence.name,
                    occurrence.ends_at,
                    None,
                );
                announced += self
                    .announce(&row, WindowEdge::Start, &message, now)
                    .await?;
            }
        }
        Ok(announced)
    }

    /// Start the escalation of open incidents whose paging a window held back.
    async fn release_held_paging(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut released = 0;
        for held in self.store.held_incidents().await? {
            let mut incident = held;
            for _ in 0..CONFLICT_RETRIES {
                let Some(decision) = decide::release_paging(&self.policy, &incident, now) else {
                    break;
                };
                match self
                    .commit(Change::new(&decision, Some(incident.version), now))
                    .await
                {
                    Ok(()) => {
                        tracing::info!(incident = %incident.key, "paging held back by maintenance starts");
                        released += 1;
                        break;
                    }
                    Err(StoreError::Conflict(_)) => {
                        match self.store.incident(incident.key).await? {
                            Some(fresh) => incident = fresh,
                            None => break,
                        }
                    }
                    Err(other) => return Err(other),
                }
            }
        }
        Ok(released)
    }

    async fn announce(
        &self,
        window: &MaintenanceWindow,
        edge: WindowEdge,
        message: &Message,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let notices = self.window_notices(message);
        let done = self
            .store
            .announce_maintenance(window, edge, &notices, now)
            .await?;
        if done {
            tracing::info!(window = %window.id, edge = edge.as_str(), "maintenance window announced");
            self.outbox_changed.raise_all();
        }
        Ok(usize::from(done))
    }

    /// `maintenance`, `maintenance start <duration> <reason>`, `maintenance end`.
    pub(super) async fn maintenance_command(
        &self,
        origin: &Origin,
        command: &MaintenanceCommand,
    ) -> Result<Message, StoreError> {
        let now = self.clock.now();
        let in_force = self.maintenance_in_force(now).await?;
        match command {
            MaintenanceCommand::Show => {
                let scheduled: Vec<(String, Occurrence)> = self
                    .maintenance
                    .windows
                    .iter()
                    .map(|w| (w.describe(), w.next_after(now)))
                    .collect();
                Ok(views::maintenance_list(&self.policy, &in_force, &scheduled))
            }
            MaintenanceCommand::Start { minutes, reason } => {
                if let Some(open) = in_force.iter().find(|o| o.id.starts_with("adhoc:")) {
                    return Ok(views::refusal(format!(
                        "The maintenance window \"{}\" is in force until {}; end it with `/incident maintenance end` first.",
                        open.name,
                        views::format_time(open.ends_at)
                    )));
                }
                let ends_at = now + Duration::minutes(*minutes);
                let window = MaintenanceWindow {
                    // Unique even for two starts in one millisecond: this replica's name
                    // and a counter of its own.
                    id: format!(
                        "adhoc:{}:{}:{}:{}",
                        now.format("%Y%m%dT%H%M%S%.3fZ"),
                        origin.actor,
                        self.owner,
                        AD_HOC.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    ),
                    name: reason.clone(),
                    starts_at: now,
                    ends_at,
                    started_by: Some(origin.actor.to_string()),
                    ended_by: None,
                    start_announced: false,
                    end_announced: false,
                };
                let message =
                    views::maintenance_started(&self.policy, reason, ends_at, Some(&origin.actor));
                if self
                    .announce(&window, WindowEdge::Start, &message, now)
                    .await?
                    == 0
                {
                    return Err(StoreError::Conflict(format!(
                        "maintenance window {} already recorded",
                        window.id
                    )));
                }
                Ok(Message::notice(
                    Visibility::Ephemeral,
                    format!(
                        "Maintenance window \"{reason}\" started; it ends at {} (or with `/incident maintenance end`).",
                        views::format_time(ends_at)
                    ),
                ))
            }
            MaintenanceCommand::End => {
                if in_force.is_empty() {
                    return Ok(views::refusal(
                        "No maintenance window is in force.".to_string(),
                    ));
                }
                let mut names = Vec::new();
                for occurrence in &in_force {
                    let window = MaintenanceWindow {
                        id: occurrence.id.clone(),
                        name: occurrence.name.clone(),
                        starts_at: occurrence.starts_at,
                        ends_at: now,
                        started_by: None,
                        ended_by: Some(origin.actor.to_string()),
                        start_announced: false,
                        end_announced: false,
                    };
                    let others: Vec<String> = in_force
                        .iter()
                        .filter(|o| o.id != occurrence.id)
                        .map(|o| o.name.clone())
                        .collect();
                    let message =
                        views::maintenance_ended(&occurrence.name, Some(&origin.actor), &others);
                    if self
                        .announce(&window, WindowEdge::End, &message, now)
                        .await?
                        == 1
                    {
                        names.push(format!("\"{}\"", occurrence.name));
                    }
                }
                if self.maintenance_in_force(now).await?.is_empty() {
                    self.release_held_paging(now).await?;
                }
                Ok(Message::notice(
                    Visibility::Ephemeral,
                    if names.is_empty() {
                        "The maintenance window was already ended.".to_string()
                    } else {
                        format!("Ended maintenance: {}.", names.join(", "))
                    },
                ))
            }
        }
    }
}
