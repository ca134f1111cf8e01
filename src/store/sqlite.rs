//! The embedded store: one SQLite file (rusqlite, bundled), WAL mode. The default, so that
//! warroom runs on a machine with nothing else installed. Several processes may share the file;
//! writes take SQLite's write lock (`BEGIN IMMEDIATE`), so claims cannot overlap.

use super::{
    Change, HealthCounts, INCIDENT_COLUMNS, IncidentRow, MaintenanceWindow, NO_INCIDENT,
    OutboxCounts, OutboxItem, RunbookRequest, SCHEMA_VERSION, Store, StoreError, StoreResult,
    Timer, WindowEdge, actor_column, alerts_column, effect_from_json, effect_json, event_detail,
    event_from_columns, idempotency_key, paged_services_column, timer_kind, urgent_in_line,
    urgent_platforms,
};
use crate::core::{Effect, Incident, IncidentKey, TimelineEvent};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use std::path::Path;
use std::sync::{Arc, Mutex};

const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE incident_numbers (id INTEGER PRIMARY KEY CHECK (id = 1), last INTEGER NOT NULL);
INSERT INTO incident_numbers (id, last) VALUES (1, 0);
CREATE TABLE incidents (
    number INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    severity TEXT NOT NULL,
    status TEXT NOT NULL,
    platform TEXT NOT NULL,
    channel TEXT NOT NULL UNIQUE,
    commander TEXT NOT NULL,
    declared_by TEXT NOT NULL,
    declared_at TEXT NOT NULL,
    acknowledged_at TEXT,
    acknowledged_by TEXT,
    resolved_at TEXT,
    root_cause TEXT,
    last_update_at TEXT NOT NULL,
    escalation_generation INTEGER NOT NULL,
    reminder_generation INTEGER NOT NULL,
    version INTEGER NOT NULL
);
CREATE INDEX incidents_status ON incidents (status);
CREATE TABLE timeline_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident INTEGER NOT NULL REFERENCES incidents (number),
    at TEXT NOT NULL,
    actor TEXT,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX timeline_events_incident ON timeline_events (incident, id);
CREATE TABLE timers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident INTEGER NOT NULL REFERENCES incidents (number),
    kind TEXT NOT NULL,
    due_at TEXT NOT NULL,
    fence INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    lease_owner TEXT,
    lease_until TEXT,
    created_at TEXT NOT NULL,
    fired_at TEXT
);
CREATE INDEX timers_pending ON timers (state, due_at);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident INTEGER NOT NULL REFERENCES incidents (number),
    platform TEXT NOT NULL,
    effect TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    lease_owner TEXT,
    lease_until TEXT,
    last_error TEXT,
    created_at TEXT NOT NULL,
    done_at TEXT
);
CREATE INDEX outbox_ready ON outbox (state, platform, next_attempt_at);
"#,
    ),
    (
        2,
        r#"
ALTER TABLE incidents ADD COLUMN escalation_level INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN paged_services TEXT NOT NULL DEFAULT '[]';
ALTER TABLE incidents ADD COLUMN pagerduty_incident_id TEXT;
CREATE UNIQUE INDEX incidents_pagerduty ON incidents (pagerduty_incident_id);
ALTER TABLE timers ADD COLUMN step INTEGER NOT NULL DEFAULT 0;
CREATE INDEX timers_incident_pending ON timers (incident, kind, state);
CREATE INDEX outbox_incident_pending ON outbox (incident, platform, state, id);
CREATE TABLE inbound_events (
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (source, id)
);
"#,
    ),
    (
        3,
        r#"
ALTER TABLE outbox ADD COLUMN urgent INTEGER NOT NULL DEFAULT 0;
CREATE TABLE chat_refs (
    platform TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (platform, key)
);
"#,
    ),
    (
        4,
        r#"
CREATE TABLE runbook_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident INTEGER NOT NULL REFERENCES incidents (number),
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    decided_by TEXT,
    decided_at TEXT
);
CREATE INDEX runbook_requests_incident ON runbook_requests (incident, id);
"#,
    ),
    (
        5,
        r#"
CREATE INDEX outbox_heads ON outbox (platform, incident, id) WHERE state = 'pending';
"#,
    ),
    (
        6,
        r#"
ALTER TABLE incidents ADD COLUMN alert_group TEXT;
ALTER TABLE incidents ADD COLUMN alerts TEXT NOT NULL DEFAULT '[]';
ALTER TABLE incidents ADD COLUMN postmortem_url TEXT;
ALTER TABLE incidents ADD COLUMN paging_held TEXT;
ALTER TABLE incidents ADD COLUMN escalation_from TEXT;
CREATE UNIQUE INDEX incidents_open_alert_group ON incidents (alert_group) WHERE status <> 'resolved';
CREATE INDEX incidents_alert_group ON incidents (alert_group, number);
CREATE INDEX incidents_paging_held ON incidents (number) WHERE paging_held IS NOT NULL;
CREATE TABLE outbox_v6 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident INTEGER NOT NULL,
    platform TEXT NOT NULL,
    effect TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    lease_owner TEXT,
    lease_until TEXT,
    last_error TEXT,
    created_at TEXT NOT NULL,
    done_at TEXT,
    urgent INTEGER NOT NULL DEFAULT 0
);
INSERT INTO outbox_v6 (id, incident, platform, effect, idempotency_key, state, attempts, next_attempt_at, lease_owner, lease_until, last_error, created_at, done_at, urgent)
    SELECT id, incident, platform, effect, idempotency_key, state, attempts, next_attempt_at, lease_owner, lease_until, last_error, created_at, done_at, urgent FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v6 RENAME TO outbox;
CREATE INDEX outbox_ready ON outbox (state, platform, next_attempt_at);
CREATE INDEX outbox_incident_pending ON outbox (incident, platform, state, id);
CREATE INDEX outbox_heads ON outbox (platform, incident, id) WHERE state = 'pending';
CREATE TABLE maintenance_windows (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    started_by TEXT,
    ended_by TEXT,
    start_announced INTEGER NOT NULL DEFAULT 0,
    end_announced INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX maintenance_windows_end ON maintenance_windows (ends_at);
"#,
    ),
    (
        7,
        // PostgreSQL's version 7 adds the function its one-statement commit raises a refusal
        // with, and an index for the next timer due. A SQLite change is a transaction whose
        // checks run in warroom, and a single process's timers are few: nothing to add, the
        // number keeps the two backends' versions in step.
        "-- nothing",
    ),
    (
        8,
        // A row that holds back an urgent row of its incident is urgent too (`urgent_in_line`);
        // rows written before that rule get it here. (PostgreSQL also adds the index its claim
        // reads; this backend's claim is unchanged.)
        "UPDATE outbox SET urgent = 1 WHERE state = 'pending' AND urgent = 0 \
           AND EXISTS (SELECT 1 FROM outbox AS later WHERE later.state = 'pending' AND later.urgent = 1 \
                         AND later.platform = outbox.platform AND later.incident = outbox.incident \
                         AND later.id > outbox.id);",
    ),
    (
        9,
        // A breach is announced once per incident; open incidents that breached before take
        // the time of their first breach from their timeline.
        "ALTER TABLE incidents ADD COLUMN response_breached_at TEXT; \
         UPDATE incidents SET response_breached_at = \
           (SELECT min(at) FROM timeline_events \
             WHERE timeline_events.incident = incidents.number AND kind = 'response_target_breached') \
          WHERE status <> 'resolved';",
    ),
];

/// Fixed-width UTC text so that string order is time order.
fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(text: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
}

fn opt_ts(text: Option<String>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    text.as_deref().map(parse_ts).transpose()
}

/// An error writing an incident row: a second incident for one PagerDuty incident (two
/// requests opening it from two copies of its webhook) is a conflict, re-decided by the loser.
fn incident_write_error(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(failure, Some(message))
            if failure.code == rusqlite::ErrorCode::ConstraintViolation
                && message.contains("incidents.pagerduty_incident_id") =>
        {
            StoreError::Conflict("an incident for this PagerDuty incident".to_string())
        }
        rusqlite::Error::SqliteFailure(failure, Some(message))
            if failure.code == rusqlite::ErrorCode::ConstraintViolation
                && message.contains("incidents.alert_group") =>
        {
            StoreError::Conflict("an open incident for this alert group".to_string())
        }
        _ => db_error(e),
    }
}

fn db_error(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::FromSqlConversionFailure(..) | rusqlite::Error::InvalidColumnType(..) => {
            StoreError::Corrupt(e.to_string())
        }
        other => StoreError::Unavailable(other.to_string()),
    }
}

fn incident_from_row(row: &Row<'_>) -> rusqlite::Result<IncidentRow> {
    Ok(IncidentRow {
        number: row.get(0)?,
        title: row.get(1)?,
        severity: row.get(2)?,
        status: row.get(3)?,
        platform: row.get(4)?,
        channel: row.get(5)?,
        commander: row.get(6)?,
        declared_by: row.get(7)?,
        declared_at: parse_ts(&row.get::<_, String>(8)?)?,
        acknowledged_at: opt_ts(row.get(9)?)?,
        acknowledged_by: row.get(10)?,
        resolved_at: opt_ts(row.get(11)?)?,
        root_cause: row.get(12)?,
        last_update_at: parse_ts(&row.get::<_, String>(13)?)?,
        escalation_generation: row.get(14)?,
        reminder_generation: row.get(15)?,
        version: row.get(16)?,
        escalation_level: row.get(17)?,
        paged_services: row.get(18)?,
        pagerduty_incident_id: row.get(19)?,
        alert_group: row.get(20)?,
        alerts: row.get(21)?,
        postmortem_url: row.get(22)?,
        paging_held: row.get(23)?,
        escalation_from: opt_ts(row.get(24)?)?,
        response_breached_at: opt_ts(row.get(25)?)?,
    })
}

/// The SQLite implementation of [`Store`].
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Open (creating if needed) the file at `path` and migrate it.
    pub async fn open(path: &Path) -> StoreResult<SqliteStore> {
        let path = path.to_path_buf();
        let connection = tokio::task::spawn_blocking(move || -> StoreResult<Connection> {
            let mut conn = Connection::open(&path).map_err(|e| {
                StoreError::Unavailable(format!("cannot open {}: {e}", path.display()))
            })?;
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .map_err(db_error)?;
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(db_error)?;
            conn.pragma_update(None, "foreign_keys", "ON")
                .map_err(db_error)?;
            migrate(&mut conn)?;
            Ok(conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))??;
        Ok(SqliteStore {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = connection.lock().map_err(|_| {
                StoreError::Unavailable("the SQLite connection was poisoned".into())
            })?;
            work(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    )
    .map_err(db_error)?;
    let current: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(db_error)?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::Migration(format!(
            "the database is at schema version {current}, newer than this warroom ({SCHEMA_VERSION}); upgrade warroom"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.execute_batch(sql)
            .map_err(|e| StoreError::Migration(format!("version {version}: {e}")))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![version, ts(Utc::now())],
        )
        .map_err(db_error)?;
    }
    tx.commit().map_err(db_error)
}

fn select_incident(
    conn: &Connection,
    clause: &str,
    param: &dyn rusqlite::ToSql,
) -> StoreResult<Option<Incident>> {
    conn.query_row(
        &format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE {clause}"),
        [param],
        incident_from_row,
    )
    .optional()
    .map_err(db_error)?
    .map(IncidentRow::into_incident)
    .transpose()
}

/// The incidents `SELECT … FROM incidents <rest>` finds.
fn select_incidents(
    conn: &Connection,
    rest: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Vec<Incident>> {
    let mut statement = conn
        .prepare_cached(&format!("SELECT {INCIDENT_COLUMNS} FROM incidents {rest}"))
        .map_err(db_error)?;
    let rows = statement
        .query_map(params, incident_from_row)
        .map_err(db_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_error)?;
    rows.into_iter().map(IncidentRow::into_incident).collect()
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.with(|conn| {
            let version: i64 = conn
                .query_row(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                    [],
                    |r| r.get(0),
                )
                .map_err(db_error)?;
            if version == SCHEMA_VERSION {
                Ok(())
            } else {
                Err(StoreError::Migration(format!(
                    "schema version {version}, expected {SCHEMA_VERSION}"
                )))
            }
        })
        .await
    }

    async fn allocate_incident_key(&self) -> StoreResult<IncidentKey> {
        self.with(|conn| {
            let n: i64 = conn
                .query_row(
                    "UPDATE incident_numbers SET last = last + 1 WHERE id = 1 RETURNING last",
                    [],
                    |r| r.get(0),
                )
                .map_err(db_error)?;
            Ok(IncidentKey(n))
        })
        .await
    }

    async fn channel_names_with_prefix(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let prefix = prefix.to_string();
        self.with(move |conn| {
            let mut stmt = conn
                .prepare("SELECT channel FROM incidents WHERE substr(channel, 1, length(?1)) = ?1")
                .map_err(db_error)?;
            let names = stmt
                .query_map([&prefix], |r| r.get(0))
                .map_err(db_error)?
                .collect::<Result<Vec<String>, _>>()
                .map_err(db_error)?;
            Ok(names)
        })
        .await
    }

    async fn incident(&self, key: IncidentKey) -> StoreResult<Option<Incident>> {
        self.with(move |conn| select_incident(conn, "number = ?1", &key.0))
            .await
    }

    async fn incident_by_channel(&self, channel: &str) -> StoreResult<Option<Incident>> {
        let channel = channel.to_string();
        self.with(move |conn| select_incident(conn, "channel = ?1", &channel))
            .await
    }

    async fn incident_by_pagerduty_id(&self, id: &str) -> StoreResult<Option<Incident>> {
        let id = id.to_string();
        self.with(move |conn| select_incident(conn, "pagerduty_incident_id = ?1", &id))
            .await
    }

    async fn prune_inbound_events(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.with(move |conn| {
            let events = conn
                .execute(
                    "DELETE FROM inbound_events WHERE received_at < ?1",
                    params![ts(before)],
                )
                .map_err(db_error)?;
            let notes = conn
                .execute(
                    "DELETE FROM chat_refs WHERE key LIKE 'outbox:%' AND updated_at < ?1",
                    params![ts(before)],
                )
                .map_err(db_error)?;
            Ok((events + notes) as u64)
        })
        .await
    }

    async fn record_inbound_event(
        &self,
        source: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (source, id) = (source.to_string(), id.to_string());
        self.with(move |conn| {
            let inserted = conn
                .execute(
                    "INSERT INTO inbound_events (source, id, received_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                    params![source, id, ts(now)],
                )
                .map_err(db_error)?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn insert_runbook_request(
        &self,
        incident: IncidentKey,
        body: &serde_json::Value,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<i64> {
        let body = body.to_string();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_error)?;
            tx.execute(
                "INSERT INTO runbook_requests (incident, body, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![incident.0, body, ts(now), ts(expires_at)],
            )
            .map_err(db_error)?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO timers (incident, kind, step, due_at, fence, created_at) VALUES (?1, 'change_expiry', ?2, ?3, 0, ?4)",
                params![incident.0, id, ts(expires_at), ts(now)],
            )
            .map_err(db_error)?;
            tx.commit().map_err(db_error)?;
            Ok(id)
        })
        .await
    }

    async fn runbook_request(&self, id: i64) -> StoreResult<Option<RunbookRequest>> {
        self.with(move |conn| {
            let row = conn
                .query_row(
                    "SELECT incident, body, state, created_at, expires_at, decided_by FROM runbook_requests WHERE id = ?1",
                    params![id],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, String>(4)?,
                            r.get::<_, Option<String>>(5)?,
                        ))
                    },
                )
                .optional()
                .map_err(db_error)?;
            let Some((incident, body, state, created, expires, decided_by)) = row else {
                return Ok(None);
            };
            Ok(Some(RunbookRequest {
                id,
                incident: IncidentKey(incident),
                body: serde_json::from_str(&body)
                    .map_err(|e| StoreError::Corrupt(format!("runbook request {id}: {e}")))?,
                state,
                created_at: parse_ts(&created).map_err(db_error)?,
                expires_at: parse_ts(&expires).map_err(db_error)?,
                decided_by,
            }))
        })
        .await
    }

    async fn transition_runbook_request(
        &self,
        id: i64,
        from: &str,
        to: &str,
        by: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (from, to, by) = (from.to_string(), to.to_string(), by.map(String::from));
        self.with(move |conn| {
            let n = conn
                .execute(
                    "UPDATE runbook_requests SET state = ?3, decided_by = COALESCE(?4, decided_by), decided_at = ?5 \
                     WHERE id = ?1 AND state = ?2",
                    params![id, from, to, by, ts(now)],
                )
                .map_err(db_error)?;
            Ok(n == 1)
        })
        .await
    }

    async fn chat_ref(&self, platform: &str, key: &str) -> StoreResult<Option<String>> {
        let (platform, key) = (platform.to_string(), key.to_string());
        self.with(move |conn| {
            conn.query_row(
                "SELECT value FROM chat_refs WHERE platform = ?1 AND key = ?2",
                params![platform, key],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(db_error)
        })
        .await
    }

    async fn set_chat_ref(&self, platform: &str, key: &str, value: &str) -> StoreResult<()> {
        let (platform, key, value) = (platform.to_string(), key.to_string(), value.to_string());
        let now = ts(Utc::now());
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO chat_refs (platform, key, value, updated_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (platform, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                params![platform, key, value, now],
            )
            .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn claim_chat_ref(&self, platform: &str, key: &str, value: &str) -> StoreResult<String> {
        let (platform, key, value) = (platform.to_string(), key.to_string(), value.to_string());
        let now = ts(Utc::now());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_error)?;
            tx.execute(
                "INSERT INTO chat_refs (platform, key, value, updated_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (platform, key) DO NOTHING",
                params![platform, key, value, now],
            )
            .map_err(db_error)?;
            let held: String = tx
                .query_row(
                    "SELECT value FROM chat_refs WHERE platform = ?1 AND key = ?2",
                    params![platform, key],
                    |r| r.get(0),
                )
                .map_err(db_error)?;
            tx.commit().map_err(db_error)?;
            Ok(held)
        })
        .await
    }

    async fn latest_incident_by_alert_group(
        &self,
        group_key: &str,
    ) -> StoreResult<Option<Incident>> {
        let group_key = group_key.to_string();
        self.with(move |conn| {
            select_incident(
                conn,
                "alert_group = ?1 ORDER BY number DESC LIMIT 1",
                &group_key,
            )
        })
        .await
    }

    async fn held_incidents(&self) -> StoreResult<Vec<Incident>> {
        self.with(move |conn| {
            select_incidents(
                conn,
                "WHERE paging_held IS NOT NULL AND status <> 'resolved' ORDER BY number",
                [],
            )
        })
        .await
    }

    async fn maintenance_windows(
        &self,
        after: DateTime<Utc>,
    ) -> StoreResult<Vec<MaintenanceWindow>> {
        let after = ts(after);
        self.with(move |conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT id, name, starts_at, ends_at, started_by, ended_by, start_announced, end_announced \
                     FROM maintenance_windows WHERE ends_at > ?1 ORDER BY starts_at, id",
                )
                .map_err(db_error)?;
            let rows = statement
                .query_map([after], |row| {
                    Ok(MaintenanceWindow {
                        id: row.get(0)?,
                        name: row.get(1)?,
                        starts_at: parse_ts(&row.get::<_, String>(2)?)?,
                        ends_at: parse_ts(&row.get::<_, String>(3)?)?,
                        started_by: row.get(4)?,
                        ended_by: row.get(5)?,
                        start_announced: row.get(6)?,
                        end_announced: row.get(7)?,
                    })
                })
                .map_err(db_error)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_error)
        })
        .await
    }

    async fn announce_maintenance(
        &self,
        window: &MaintenanceWindow,
        edge: WindowEdge,
        notices: &[(String, Effect)],
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let window = window.clone();
        let in_line: Vec<(&str, bool)> = notices
            .iter()
            .map(|(destination, effect)| (destination.as_str(), effect.urgent()))
            .collect();
        // (Notices are not urgent today; rows already pending for them are not raised.)
        let notices: Vec<(String, String, bool)> = notices
            .iter()
            .zip(urgent_in_line(&in_line))
            .map(|((destination, effect), urgent)| {
                (destination.clone(), effect_json(effect), urgent)
            })
            .collect();
        let now = ts(now);
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_error)?;
            tx.execute(
                "INSERT INTO maintenance_windows (id, name, starts_at, ends_at, started_by) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (id) DO NOTHING",
                params![window.id, window.name, ts(window.starts_at), ts(window.ends_at), window.started_by],
            )
            .map_err(db_error)?;
            let marked = match edge {
                WindowEdge::Start => tx.execute(
                    "UPDATE maintenance_windows SET start_announced = 1 WHERE id = ?1 AND start_announced = 0",
                    [&window.id],
                ),
                WindowEdge::End if window.ended_by.is_some() => tx.execute(
                    "UPDATE maintenance_windows SET end_announced = 1, ends_at = ?2, ended_by = ?3 WHERE id = ?1 AND end_announced = 0",
                    params![window.id, ts(window.ends_at), window.ended_by],
                ),
                WindowEdge::End => tx.execute(
                    "UPDATE maintenance_windows SET end_announced = 1 WHERE id = ?1 AND end_announced = 0",
                    [&window.id],
                ),
            }
            .map_err(db_error)?;
            if marked != 1 {
                return Ok(false);
            }
            for (index, (destination, effect, urgent)) in notices.iter().enumerate() {
                tx.execute(
                    "INSERT INTO outbox (incident, platform, effect, idempotency_key, next_attempt_at, created_at, urgent) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
                    params![
                        NO_INCIDENT.0,
                        destination,
                        effect,
                        format!("maintenance/{}/{}/{index}", window.id, edge.as_str()),
                        now,
                        urgent
                    ],
                )
                .map_err(db_error)?;
            }
            tx.commit().map_err(db_error)?;
            Ok(true)
        })
        .await
    }

    async fn incidents(&self, include_resolved: bool, limit: i64) -> StoreResult<Vec<Incident>> {
        self.with(move |conn| {
            let filter = if include_resolved {
                ""
            } else {
                "WHERE status <> 'resolved'"
            };
            select_incidents(
                conn,
                &format!("{filter} ORDER BY number DESC LIMIT ?1"),
                [limit],
            )
        })
        .await
    }

    async fn timeline(&self, key: IncidentKey) -> StoreResult<Vec<TimelineEvent>> {
        self.with(move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT at, actor, detail FROM timeline_events WHERE incident = ?1 ORDER BY id",
                )
                .map_err(db_error)?;
            let rows = stmt
                .query_map([key.0], |r| {
                    Ok((
                        parse_ts(&r.get::<_, String>(0)?)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .map_err(db_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db_error)?;
            rows.into_iter()
                .map(|(at, actor, detail)| event_from_columns(at, actor, &detail))
                .collect()
        })
        .await
    }

    async fn incidents_declared_since(
        &self,
        since: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<Incident>> {
        self.with(move |conn| {
            select_incidents(
                conn,
                "WHERE declared_at >= ?1 ORDER BY number LIMIT ?2",
                params![ts(since), limit],
            )
        })
        .await
    }

    async fn events_of_incidents_since(
        &self,
        since: DateTime<Utc>,
        kinds: &[&str],
    ) -> StoreResult<Vec<(IncidentKey, TimelineEvent)>> {
        let kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
        self.with(move |conn| {
            let marks = vec!["?"; kinds.len()].join(", ");
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT e.incident, e.at, e.actor, e.detail FROM timeline_events AS e \
                     JOIN incidents AS i ON i.number = e.incident \
                     WHERE i.declared_at >= ? AND e.kind IN ({marks}) ORDER BY e.id"
                ))
                .map_err(db_error)?;
            let since = ts(since);
            let params = std::iter::once(&since as &dyn rusqlite::ToSql)
                .chain(kinds.iter().map(|k| k as &dyn rusqlite::ToSql));
            let rows = stmt
                .query_map(rusqlite::params_from_iter(params), |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        parse_ts(&r.get::<_, String>(1)?)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })
                .map_err(db_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db_error)?;
            rows.into_iter()
                .map(|(incident, at, actor, detail)| {
                    Ok((
                        IncidentKey(incident),
                        event_from_columns(at, actor, &detail)?,
                    ))
                })
                .collect()
        })
        .await
    }

    async fn commit(&self, change: Change<'_>) -> StoreResult<i64> {
        let incident = change.incident.clone();
        let expected = change.expected_version;
        let events = change.events.to_vec();
        let timers = change.timers.to_vec();
        let in_line: Vec<(&str, bool)> = change
            .outbox
            .iter()
            .map(|e| (e.destination(change.incident.platform), e.urgent()))
            .collect();
        let raised_platforms = urgent_platforms(&in_line);
        let outbox: Vec<(String, &'static str, bool)> = change
            .outbox
            .iter()
            .zip(urgent_in_line(&in_line))
            .map(|(e, urgent)| {
                (
                    effect_json(e),
                    e.destination(change.incident.platform),
                    urgent,
                )
            })
            .collect();
        let inbound = change
            .inbound_event
            .map(|(source, id)| (source.to_string(), id.to_string()));
        let fired = change
            .fired_timer
            .map(|(id, owner)| (id, owner.to_string()));
        let delivered = change
            .delivered_outbox
            .map(|(id, owner)| (id, owner.to_string()));
        let failed = change
            .failed_outbox
            .map(|(id, owner, reason)| (id, owner.to_string(), reason.to_string()));
        let now = ts(change.now);
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_error)?;
            let i = &incident;
            let version = expected.map_or(1, |v| v + 1);
            let owned = (
                i.severity.to_string(),
                ts(i.declared_at),
                i.acknowledged_at.map(ts),
                i.resolved_at.map(ts),
                ts(i.last_update_at),
                paged_services_column(i),
                alerts_column(i),
                i.escalation_from.map(ts),
                i.response_breached_at.map(ts),
            );
            let values = params![
                i.key.0,
                i.title,
                owned.0,
                i.status.as_str(),
                i.platform.as_str(),
                i.channel.as_str(),
                i.commander.as_str(),
                i.declared_by.as_str(),
                owned.1,
                owned.2,
                i.acknowledged_by.as_ref().map(|u| u.as_str()),
                owned.3,
                i.root_cause,
                owned.4,
                i.escalation_generation,
                i.reminder_generation,
                version,
                i.escalation_level,
                owned.5,
                i.pagerduty_incident_id,
                i.alert_group,
                owned.6,
                i.postmortem_url,
                i.paging_held,
                owned.7,
                owned.8,
            ];
            match expected {
                None => {
                    let taken: bool = tx
                        .query_row("SELECT EXISTS (SELECT 1 FROM incidents WHERE channel = ?1)", [i.channel.as_str()], |r| r.get(0))
                        .map_err(db_error)?;
                    if taken {
                        return Err(StoreError::ChannelTaken(i.channel.to_string()));
                    }
                    tx.execute(
                        &format!("INSERT INTO incidents ({INCIDENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)"),
                        values,
                    )
                    .map_err(incident_write_error)?;
                }
                Some(expected) => {
                    let updated = tx
                        .execute(
                            "UPDATE incidents SET title = ?2, severity = ?3, status = ?4, platform = ?5, channel = ?6, \
                             commander = ?7, declared_by = ?8, declared_at = ?9, acknowledged_at = ?10, \
                             acknowledged_by = ?11, resolved_at = ?12, root_cause = ?13, last_update_at = ?14, \
                             escalation_generation = ?15, reminder_generation = ?16, version = ?17, \
                             escalation_level = ?18, paged_services = ?19, pagerduty_incident_id = ?20, \
                             alert_group = ?21, alerts = ?22, postmortem_url = ?23, \
                             paging_held = ?24, escalation_from = ?25, response_breached_at = ?26 \
                             WHERE number = ?1 AND version = ?27",
                            rusqlite::params_from_iter(values.iter().copied().chain([&expected as &dyn rusqlite::ToSql])),
                        )
                        .map_err(incident_write_error)?;
                    if updated != 1 {
                        return Err(StoreError::Conflict(i.key.to_string()));
                    }
                }
            }
            if let Some((source, id)) = &inbound {
                let inserted = tx
                    .execute(
                        "INSERT INTO inbound_events (source, id, received_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                        params![source, id, now],
                    )
                    .map_err(db_error)?;
                if inserted != 1 {
                    return Err(StoreError::Duplicate(format!("{source}/{id}")));
                }
            }
            for event in &events {
                tx.execute(
                    "INSERT INTO timeline_events (incident, at, actor, kind, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![i.key.0, ts(event.at), actor_column(&event.actor), event.kind.name(), event_detail(&event.kind)],
                )
                .map_err(db_error)?;
            }
            if let Some((id, owner)) = &fired {
                let closed = tx
                    .execute(
                        "UPDATE timers SET state = 'fired', fired_at = ?3, lease_owner = NULL, lease_until = NULL \
                         WHERE id = ?1 AND lease_owner = ?2 AND state = 'pending'",
                        params![id, owner, now],
                    )
                    .map_err(db_error)?;
                if closed != 1 {
                    return Err(StoreError::LeaseLost(format!("timer {id}")));
                }
            }
            if let Some((id, owner)) = &delivered {
                let closed = tx
                    .execute(
                        "UPDATE outbox SET state = 'delivered', done_at = ?3, lease_owner = NULL, lease_until = NULL \
                         WHERE id = ?1 AND lease_owner = ?2 AND state = 'pending'",
                        params![id, owner, now],
                    )
                    .map_err(db_error)?;
                if closed != 1 {
                    return Err(StoreError::LeaseLost(format!("outbox row {id}")));
                }
            }
            if let Some((id, owner, reason)) = &failed {
                let closed = tx
                    .execute(
                        "UPDATE outbox SET state = 'failed', last_error = ?3, lease_owner = NULL, lease_until = NULL \
                         WHERE id = ?1 AND lease_owner = ?2 AND state = 'pending'",
                        params![id, owner, reason],
                    )
                    .map_err(db_error)?;
                if closed != 1 {
                    return Err(StoreError::LeaseLost(format!("outbox row {id}")));
                }
            }
            for timer in &timers {
                // A newer plan of the same kind supersedes older pending ones.
                tx.execute(
                    "UPDATE timers SET state = 'superseded' WHERE incident = ?1 AND kind = ?2 AND fence < ?3 AND state = 'pending'",
                    params![i.key.0, timer.kind.as_str(), timer.fence],
                )
                .map_err(db_error)?;
                tx.execute(
                    "INSERT INTO timers (incident, kind, step, due_at, fence, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![i.key.0, timer.kind.as_str(), timer.kind.index(), ts(timer.due_at), timer.fence, now],
                )
                .map_err(db_error)?;
            }
            // The incident's rows already pending now hold an urgent row back.
            for platform in &raised_platforms {
                tx.execute(
                    "UPDATE outbox SET urgent = 1 WHERE state = 'pending' AND urgent = 0 AND incident = ?1 AND platform = ?2",
                    params![i.key.0, platform],
                )
                .map_err(db_error)?;
            }
            for (index, (effect, destination, urgent)) in outbox.iter().enumerate() {
                tx.execute(
                    "INSERT INTO outbox (incident, platform, effect, idempotency_key, next_attempt_at, created_at, urgent) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
                    params![i.key.0, destination, effect, idempotency_key(i.key, version, index), now, urgent],
                )
                .map_err(db_error)?;
            }
            tx.commit().map_err(db_error)?;
            Ok(version)
        })
        .await
    }

    async fn claim_due_timers(
        &self,
        now: DateTime<Utc>,
        owner: &str,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<Timer>> {
        let owner = owner.to_string();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_error)?;
            let rows = {
                let mut stmt = tx
                    .prepare(
                        "UPDATE timers SET lease_owner = ?1, lease_until = ?2 WHERE id IN (
                            SELECT id FROM timers WHERE state = 'pending' AND due_at <= ?3
                              AND (lease_until IS NULL OR lease_until < ?3)
                            ORDER BY due_at, id LIMIT ?4)
                         RETURNING id, incident, kind, due_at, fence, step",
                    )
                    .map_err(db_error)?;
                stmt.query_map(params![owner, ts(lease_until), ts(now), limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        parse_ts(&r.get::<_, String>(3)?)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                })
                .map_err(db_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db_error)?
            };
            tx.commit().map_err(db_error)?;
            let mut timers = rows
                .into_iter()
                .map(|(id, incident, kind, due_at, fence, step)| {
                    Ok(Timer {
                        id,
                        incident: IncidentKey(incident),
                        kind: timer_kind(&kind, step)?,
                        due_at,
                        fence,
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?;
            timers.sort_by_key(|t| (t.due_at, t.id));
            Ok(timers)
        })
        .await
    }

    async fn discard_timer(&self, id: i64, owner: &str, now: DateTime<Utc>) -> StoreResult<()> {
        let owner = owner.to_string();
        self.with(move |conn| {
            let n = conn
                .execute(
                    "UPDATE timers SET state = 'stale', fired_at = ?3, lease_owner = NULL, lease_until = NULL \
                     WHERE id = ?1 AND lease_owner = ?2 AND state = 'pending'",
                    params![id, owner, ts(now)],
                )
                .map_err(db_error)?;
            if n == 1 { Ok(()) } else { Err(StoreError::LeaseLost(format!("timer {id}"))) }
        })
        .await
    }

    async fn next_timer_due(&self) -> StoreResult<Option<DateTime<Utc>>> {
        self.with(|conn| {
            let next: Option<String> = conn
                .query_row(
                    "SELECT MIN(MAX(due_at, COALESCE(lease_until, due_at))) FROM timers WHERE state = 'pending'",
                    [],
                    |r| r.get(0),
                )
                .map_err(db_error)?;
            opt_ts(next).map_err(db_error)
        })
        .await
    }

    async fn claim_outbox(
        &self,
        destination: &str,
        now: DateTime<Utc>,
        owner: &str,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<OutboxItem>> {
        let owner = owner.to_string();
        let destination = destination.to_string();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_error)?;
            let rows = {
                let mut stmt = tx
                    .prepare(
                        "UPDATE outbox SET lease_owner = ?1, lease_until = ?2, attempts = attempts + 1 WHERE id IN (
                            SELECT head.id FROM outbox AS head
                              JOIN (SELECT MIN(id) AS id FROM outbox WHERE state = 'pending' AND platform = ?3 GROUP BY incident) AS first
                                ON head.id = first.id
                             WHERE head.next_attempt_at <= ?4 AND (head.lease_until IS NULL OR head.lease_until < ?4)
                            ORDER BY head.urgent DESC, head.id LIMIT ?5)
                         RETURNING id, incident, effect, idempotency_key, attempts, urgent",
                    )
                    .map_err(db_error)?;
                stmt.query_map(params![owner, ts(lease_until), destination, ts(now), limit], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?, r.get::<_, i32>(4)?, r.get::<_, bool>(5)?))
                })
                .map_err(db_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db_error)?
            };
            tx.commit().map_err(db_error)?;
            let mut items = rows
                .into_iter()
                .map(|(id, incident, effect, idempotency_key, attempts, urgent)| {
                    Ok((!urgent, OutboxItem { id, incident: IncidentKey(incident), destination: destination.clone(), effect: effect_from_json(&effect)?, idempotency_key, attempts }))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            // Urgent (as stored: raised rows too) first, then oldest.
            items.sort_by_key(|(not_urgent, item)| (*not_urgent, item.id));
            Ok(items.into_iter().map(|(_, item)| item).collect())
        })
        .await
    }

    async fn renew_outbox_lease(
        &self,
        id: i64,
        owner: &str,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let owner = owner.to_string();
        self.with(move |conn| {
            let n = conn
                .execute(
                    "UPDATE outbox SET lease_until = ?3 WHERE id = ?1 AND lease_owner = ?2 AND state = 'pending'",
                    params![id, owner, ts(lease_until)],
                )
                .map_err(db_error)?;
            Ok(n == 1)
        })
        .await
    }

    async fn outbox_delivered(&self, id: i64, owner: &str, now: DateTime<Utc>) -> StoreResult<()> {
        let owner = owner.to_string();
        self.with(move |conn| {
            let n = conn
                .execute(
                    "UPDATE outbox SET state = 'delivered', done_at = ?3, lease_owner = NULL, lease_until = NULL \
                     WHERE id = ?1 AND lease_owner = ?2 AND state = 'pending'",
                    params![id, owner, ts(now)],
                )
                .map_err(db_error)?;
            if n == 1 { Ok(()) } else { Err(StoreError::LeaseLost(format!("outbox row {id}"))) }
        })
        .await
    }

    async fn outbox_failed(
        &self,
        id: i64,
        owner: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        let owner = owner.to_string();
        let error = error.to_string();
        self.with(move |conn| {
            let n = match retry_at {
                Some(at) => conn.execute(
                    "UPDATE outbox SET last_error = ?3, next_attempt_at = ?4, lease_owner = NULL, lease_until = NULL \
                     WHERE id = ?1 AND lease_owner = ?2 AND state = 'pending'",
                    params![id, owner, error, ts(at)],
                ),
                None => conn.execute(
                    "UPDATE outbox SET state = 'failed', last_error = ?3, lease_owner = NULL, lease_until = NULL \
                     WHERE id = ?1 AND lease_owner = ?2 AND state = 'pending'",
                    params![id, owner, error],
                ),
            }
            .map_err(db_error)?;
            if n == 1 { Ok(()) } else { Err(StoreError::LeaseLost(format!("outbox row {id}"))) }
        })
        .await
    }

    async fn health_counts(&self) -> StoreResult<HealthCounts> {
        self.with(|conn| {
            let mut statement = conn
                .prepare("SELECT severity, count(*) FROM incidents WHERE resolved_at IS NULL GROUP BY severity ORDER BY severity")
                .map_err(db_error)?;
            let open_by_severity = statement
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(db_error)?
                .collect::<Result<Vec<(String, i64)>, _>>()
                .map_err(db_error)?;
            conn.query_row(
                "SELECT (SELECT count(*) FROM timers WHERE state = 'pending'), \
                 COALESCE(SUM(state = 'pending' AND (attempts = 0 OR lease_owner IS NOT NULL)), 0), \
                 COALESCE(SUM(state = 'pending' AND attempts > 0 AND lease_owner IS NULL), 0), \
                 COALESCE(SUM(state = 'failed'), 0) FROM outbox WHERE state IN ('pending', 'failed')",
                [],
                |r| {
                    Ok(HealthCounts {
                        open_by_severity: open_by_severity.clone(),
                        timers_pending: r.get(0)?,
                        outbox_pending: r.get(1)?,
                        outbox_retrying: r.get(2)?,
                        outbox_failed: r.get(3)?,
                    })
                },
            )
            .map_err(db_error)
        })
        .await
    }

    async fn release_leases(&self, owner: &str) -> StoreResult<(u64, u64)> {
        let owner = owner.to_string();
        self.with(move |conn| {
            let timers = conn
                .execute(
                    "UPDATE timers SET lease_owner = NULL, lease_until = NULL WHERE state = 'pending' AND lease_owner = ?1",
                    [&owner],
                )
                .map_err(db_error)?;
            let rows = conn
                .execute(
                    "UPDATE outbox SET lease_owner = NULL, lease_until = NULL \
                     WHERE state = 'pending' AND lease_owner = ?1",
                    [&owner],
                )
                .map_err(db_error)?;
            Ok((timers as u64, rows as u64))
        })
        .await
    }

    async fn outbox_counts(&self) -> StoreResult<OutboxCounts> {
        self.with(|conn| {
            conn.query_row(
                "SELECT COALESCE(SUM(state = 'pending'), 0), COALESCE(SUM(state = 'failed'), 0), COALESCE(SUM(state = 'delivered'), 0) FROM outbox",
                [],
                |r| Ok(OutboxCounts { pending: r.get(0)?, failed: r.get(1)?, delivered: r.get(2)? }),
            )
            .map_err(db_error)
        })
        .await
    }
}
