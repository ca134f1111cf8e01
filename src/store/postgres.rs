//! The shared store: PostgreSQL through tokio-postgres and a deadpool connection pool, for one
//! or several replicas. Timers and outbox rows are claimed with `FOR UPDATE SKIP LOCKED` and a
//! lease, so two replicas never take the same row at the same time.

use super::{
    Change, HealthCounts, INCIDENT_COLUMNS, IncidentRow, MaintenanceWindow, NO_INCIDENT,
    OutboxCounts, OutboxItem, RunbookRequest, SCHEMA_VERSION, Store, StoreError, StoreResult,
    Timer, WindowEdge, actor_column, alerts_column, effect_from_json, event_from_columns,
    idempotency_key, paged_services_column, timer_kind, urgent_in_line, urgent_platforms,
};
use crate::core::{Effect, Incident, IncidentKey, TimelineEvent};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Writes a new incident; nothing if its channel is taken (the caller picks another name).
static INSERT_INCIDENT_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO incidents ({INCIDENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26) \
         ON CONFLICT (channel) DO NOTHING"
    )
});

/// The incidents whose channel starts with `$1` (`$2`: `$1` followed by U+10FFFF): a
/// byte-order range along `incidents_channel_prefix`, then the exact test. U+10FFFF is the
/// greatest UTF-8 sequence, so every name that starts with the prefix sorts below it.
const CHANNELS_WITH_PREFIX: &str = "FROM incidents WHERE channel ~>=~ $1 AND channel ~<~ $2 \
     AND left(channel, length($1)) = $1";

/// Rewrites an incident only if its stored version is still the one it was read at ($27).
const UPDATE_INCIDENT_SQL: &str = "UPDATE incidents SET title = $2, severity = $3, status = $4, platform = $5, channel = $6, \
     commander = $7, declared_by = $8, declared_at = $9, acknowledged_at = $10, \
     acknowledged_by = $11, resolved_at = $12, root_cause = $13, last_update_at = $14, \
     escalation_generation = $15, reminder_generation = $16, version = $17, \
     escalation_level = $18, paged_services = $19, pagerduty_incident_id = $20, \
     alert_group = $21, alerts = $22, postmortem_url = $23, \
     paging_held = $24, escalation_from = $25, response_breached_at = $26 \
     WHERE number = $1 AND version = $27";

const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE SEQUENCE incident_numbers;
CREATE TABLE incidents (
    number BIGINT PRIMARY KEY,
    title TEXT NOT NULL,
    severity TEXT NOT NULL,
    status TEXT NOT NULL,
    platform TEXT NOT NULL,
    channel TEXT NOT NULL UNIQUE,
    commander TEXT NOT NULL,
    declared_by TEXT NOT NULL,
    declared_at TIMESTAMPTZ NOT NULL,
    acknowledged_at TIMESTAMPTZ,
    acknowledged_by TEXT,
    resolved_at TIMESTAMPTZ,
    root_cause TEXT,
    last_update_at TIMESTAMPTZ NOT NULL,
    escalation_generation BIGINT NOT NULL,
    reminder_generation BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE INDEX incidents_open ON incidents (number) WHERE status <> 'resolved';
CREATE TABLE timeline_events (
    id BIGSERIAL PRIMARY KEY,
    incident BIGINT NOT NULL REFERENCES incidents (number),
    at TIMESTAMPTZ NOT NULL,
    actor TEXT,
    kind TEXT NOT NULL,
    detail JSONB NOT NULL
);
CREATE INDEX timeline_events_incident ON timeline_events (incident, id);
CREATE TABLE timers (
    id BIGSERIAL PRIMARY KEY,
    incident BIGINT NOT NULL REFERENCES incidents (number),
    kind TEXT NOT NULL,
    due_at TIMESTAMPTZ NOT NULL,
    fence BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    lease_owner TEXT,
    lease_until TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    fired_at TIMESTAMPTZ
);
CREATE INDEX timers_pending ON timers (due_at) WHERE state = 'pending';
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    incident BIGINT NOT NULL REFERENCES incidents (number),
    platform TEXT NOT NULL,
    effect JSONB NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    lease_owner TEXT,
    lease_until TIMESTAMPTZ,
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    done_at TIMESTAMPTZ
);
CREATE INDEX outbox_ready ON outbox (platform, next_attempt_at) WHERE state = 'pending';
"#,
    ),
    (
        2,
        r#"
ALTER TABLE incidents ADD COLUMN escalation_level BIGINT NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN paged_services TEXT NOT NULL DEFAULT '[]';
ALTER TABLE incidents ADD COLUMN pagerduty_incident_id TEXT;
CREATE UNIQUE INDEX incidents_pagerduty ON incidents (pagerduty_incident_id);
ALTER TABLE timers ADD COLUMN step BIGINT NOT NULL DEFAULT 0;
CREATE INDEX timers_incident_pending ON timers (incident, kind) WHERE state = 'pending';
CREATE INDEX outbox_incident_pending ON outbox (incident, platform, id) WHERE state = 'pending';
CREATE TABLE inbound_events (
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, id)
);
"#,
    ),
    (
        3,
        r#"
ALTER TABLE outbox ADD COLUMN urgent BOOLEAN NOT NULL DEFAULT false;
CREATE TABLE chat_refs (
    platform TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, key)
);
"#,
    ),
    (
        4,
        r#"
CREATE TABLE runbook_requests (
    id BIGSERIAL PRIMARY KEY,
    incident BIGINT NOT NULL REFERENCES incidents (number),
    body JSONB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    decided_by TEXT,
    decided_at TIMESTAMPTZ
);
CREATE INDEX runbook_requests_incident ON runbook_requests (incident, id);
"#,
    ),
    (
        5,
        r#"
CREATE INDEX outbox_heads ON outbox (platform, incident, id) WHERE state = 'pending';
CREATE INDEX incidents_channel_prefix ON incidents (channel text_pattern_ops);
"#,
    ),
    (
        6,
        r#"
ALTER TABLE incidents ADD COLUMN alert_group TEXT;
ALTER TABLE incidents ADD COLUMN alerts TEXT NOT NULL DEFAULT '[]';
ALTER TABLE incidents ADD COLUMN postmortem_url TEXT;
ALTER TABLE incidents ADD COLUMN paging_held TEXT;
ALTER TABLE incidents ADD COLUMN escalation_from TIMESTAMPTZ;
CREATE UNIQUE INDEX incidents_open_alert_group ON incidents (alert_group) WHERE status <> 'resolved';
CREATE INDEX incidents_alert_group ON incidents (alert_group, number);
CREATE INDEX incidents_paging_held ON incidents (number) WHERE paging_held IS NOT NULL;
ALTER TABLE outbox DROP CONSTRAINT IF EXISTS outbox_incident_fkey;
CREATE TABLE maintenance_windows (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    starts_at TIMESTAMPTZ NOT NULL,
    ends_at TIMESTAMPTZ NOT NULL,
    started_by TEXT,
    ended_by TEXT,
    start_announced BOOLEAN NOT NULL DEFAULT false,
    end_announced BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX maintenance_windows_end ON maintenance_windows (ends_at);
"#,
    ),
    (
        7,
        // A change is one statement (`commit`); a failed check that must undo what the
        // statement wrote (a duplicate inbound event, a lost lease) calls this, and the error
        // undoes the whole statement. VOLATILE, so that it is never called while planning. `timers_next`: the scheduler's next wake-up (`next_timer_due`) is the
        // first entry of an index instead of a scan of every pending timer.
        r#"
CREATE FUNCTION warroom_refuse(what TEXT) RETURNS BIGINT LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION 'warroom refused the change: %', what USING ERRCODE = 'WR001';
END
$$;
CREATE INDEX timers_next ON timers ((GREATEST(due_at, COALESCE(lease_until, due_at)))) WHERE state = 'pending';
"#,
    ),
    (
        8,
        // `outbox_claim`: a claim first walks pending rows urgent first, then oldest
        // (CLAIM_OUTBOX_WALK). Nothing reads `outbox_ready` (a plan made without statistics
        // could look each head up through it, reading every pending row of the platform each
        // time), and `outbox_incident_pending` repeats `outbox_heads` in another column order.
        // A row that holds back an urgent row of its incident is urgent too
        // (`urgent_in_line`); rows written before that rule get it here.
        r#"
CREATE INDEX outbox_claim ON outbox (platform, urgent DESC, id) WHERE state = 'pending';
DROP INDEX outbox_ready;
DROP INDEX outbox_incident_pending;
UPDATE outbox AS row SET urgent = true
 WHERE row.state = 'pending' AND NOT row.urgent
   AND EXISTS (SELECT 1 FROM outbox AS later
                WHERE later.state = 'pending' AND later.urgent AND later.platform = row.platform
                  AND later.incident = row.incident AND later.id > row.id);
"#,
    ),
    (
        9,
        // `response_breached_at`: a breach is announced once per incident. Open incidents
        // that breached before take the time of their first breach from their timeline.
        r#"
ALTER TABLE incidents ADD COLUMN response_breached_at TIMESTAMPTZ;
UPDATE incidents SET response_breached_at =
       (SELECT min(at) FROM timeline_events
         WHERE timeline_events.incident = incidents.number AND kind = 'response_target_breached')
 WHERE status <> 'resolved';
"#,
    ),
];

/// The `SET` item that puts a row (`head`) back urgent when a pending row of its incident and
/// platform behind it is urgent (`urgent_in_line`): for rows that were out on a lease when a
/// change raised the rows around them (`outbox_failed`, `release_leases`).
macro_rules! urgent_if_holding_back {
    () => {
        "urgent = head.urgent OR EXISTS (SELECT 1 FROM outbox AS later WHERE later.state = 'pending' AND later.urgent \
         AND later.incident = head.incident AND later.platform = head.platform AND later.id > head.id)"
    };
}

/// What a change's statement answers when its incident was not written (a stale version, a
/// taken channel); 0 when the change was written.
const NOT_WRITTEN: i64 = 1;

/// The SQLSTATE `warroom_refuse` raises.
const REFUSED: &str = "WR001";

/// What a change's statement refused (`warroom_refuse`'s argument), if that is the error.
fn refusal(error: &tokio_postgres::Error) -> Option<&str> {
    let db = error.as_db_error()?;
    if db.code().code() != REFUSED {
        return None;
    }
    db.message().rsplit(": ").next()
}

/// A statement's parameters, numbered as they are added.
struct Params<'a>(Vec<&'a (dyn ToSql + Sync)>);

impl<'a> Params<'a> {
    /// Add a parameter; its placeholder (`$n`).
    fn add(&mut self, value: &'a (dyn ToSql + Sync)) -> String {
        self.0.push(value);
        format!("${}", self.0.len())
    }
}

/// NOTIFY channels: a commit planned timers, or wrote outbox rows.
const TIMERS_CHANNEL: &str = "warroom_timers";
const OUTBOX_CHANNEL: &str = "warroom_outbox";

/// Arbitrary constant for `pg_advisory_xact_lock`: one migrator at a time.
const MIGRATION_LOCK: i64 = 0x7761_7272_6f6f_6d31;

/// The error and its causes, e.g. "db error: database \"nope\" does not exist": the top-level
/// message of tokio-postgres alone says too little to act on.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let more = inner.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = inner.source();
    }
    text
}

fn db_error(e: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(with_causes(&e))
}

/// The value of a chat ref, read on a connection the caller holds.
async fn read_chat_ref(
    client: &deadpool_postgres::Client,
    platform: &str,
    key: &str,
) -> StoreResult<Option<String>> {
    let statement = client
        .prepare_cached("SELECT value FROM chat_refs WHERE platform = $1 AND key = $2")
        .await
        .map_err(db_error)?;
    let row = client
        .query_opt(&statement, &[&platform, &key])
        .await
        .map_err(db_error)?;
    Ok(row.map(|r| r.get(0)))
}

/// An error writing an incident row: a second incident for one PagerDuty incident (two
/// replicas opening it from two copies of its webhook) is a conflict, re-decided by the loser.
fn incident_write_error(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db)
            if *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION
                && db.constraint() == Some("incidents_pagerduty") =>
        {
            StoreError::Conflict("an incident for this PagerDuty incident".to_string())
        }
        Some(db)
            if *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION
                && db.constraint() == Some("incidents_open_alert_group") =>
        {
            StoreError::Conflict("an open incident for this alert group".to_string())
        }
        _ => db_error(e),
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(with_causes(&e))
}

fn incident_from_row(row: &Row) -> StoreResult<Incident> {
    let get = || -> Result<IncidentRow, tokio_postgres::Error> {
        Ok(IncidentRow {
            number: row.try_get(0)?,
            title: row.try_get(1)?,
            severity: row.try_get(2)?,
            status: row.try_get(3)?,
            platform: row.try_get(4)?,
            channel: row.try_get(5)?,
            commander: row.try_get(6)?,
            declared_by: row.try_get(7)?,
            declared_at: row.try_get(8)?,
            acknowledged_at: row.try_get(9)?,
            acknowledged_by: row.try_get(10)?,
            resolved_at: row.try_get(11)?,
            root_cause: row.try_get(12)?,
            last_update_at: row.try_get(13)?,
            escalation_generation: row.try_get(14)?,
            reminder_generation: row.try_get(15)?,
            version: row.try_get(16)?,
            escalation_level: row.try_get(17)?,
            paged_services: row.try_get(18)?,
            pagerduty_incident_id: row.try_get(19)?,
            alert_group: row.try_get(20)?,
            alerts: row.try_get(21)?,
            postmortem_url: row.try_get(22)?,
            paging_held: row.try_get(23)?,
            escalation_from: row.try_get(24)?,
            response_breached_at: row.try_get(25)?,
        })
    };
    get()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?
        .into_incident()
}

/// The PostgreSQL implementation of [`Store`].
pub struct PostgresStore {
    pool: Pool,
    /// For the LISTEN connection of `watch`, which must not come from the pool.
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
}

impl PostgresStore {
    /// Connect, create `schema` if given, and apply pending migrations.
    pub async fn connect(
        url: &str,
        schema: Option<&str>,
        pool_size: usize,
    ) -> StoreResult<PostgresStore> {
        let tls = super::postgres_tls::parse(url)
            .map_err(|e| StoreError::Unavailable(format!("the database URL is not valid: {e}")))?;
        let (mut config, connector) = tls.config().map_err(StoreError::Unavailable)?;
        config.connect_timeout(Duration::from_secs(5));
        if let Some(schema) = schema {
            config.options(format!("-c search_path={schema}"));
        }
        if tls.mode == super::postgres_tls::SslMode::Prefer {
            config = prefer_fallback(config, &connector).await;
        }
        let manager = Manager::from_config(
            config.clone(),
            connector.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let store = PostgresStore {
            pool,
            config,
            tls: connector,
        };
        store.migrate(schema).await?;
        let encryption = match store.tls_version().await? {
            Some(version) => version,
            None => "none".to_string(),
        };
        let checked = match tls.mode {
            _ if encryption == "none" => "no TLS",
            super::postgres_tls::SslMode::VerifyFull => "certificate and host name checked",
            _ if tls.roots.is_some() => "certificate checked, host name not",
            _ => "certificate not checked",
        };
        tracing::info!(tls = %encryption, checked, "connected to PostgreSQL");
        Ok(store)
    }

    /// The TLS version of a connection of the pool (`TLSv1.3`, say), or `None` when it is not
    /// encrypted.
    pub async fn tls_version(&self) -> StoreResult<Option<String>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let row = client
            .query_opt(
                "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl",
                &[],
            )
            .await
            .map_err(db_error)?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn migrate(&self, schema: Option<&str>) -> StoreResult<()> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(db_error)?;
        // One migrator at a time, schema creation included: two replicas starting together
        // would otherwise race on CREATE SCHEMA IF NOT EXISTS.
        tx.execute(
            &tx.prepare_cached("SELECT pg_advisory_xact_lock($1)")
                .await
                .map_err(db_error)?,
            &[&MIGRATION_LOCK],
        )
        .await
        .map_err(db_error)?;
        if let Some(schema) = schema {
            // The name was validated as a plain identifier by the configuration.
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .await
                .map_err(db_error)?;
        }
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .map_err(db_error)?;
        let current: i64 = tx
            .query_one(
                &tx.prepare_cached("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                    .await
                    .map_err(db_error)?,
                &[],
            )
            .await
            .map_err(db_error)?
            .get(0);
        if current > SCHEMA_VERSION {
            return Err(StoreError::Migration(format!(
                "the database is at schema version {current}, newer than this warroom ({SCHEMA_VERSION}); upgrade warroom"
            )));
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            tx.batch_execute(sql)
                .await
                .map_err(|e| StoreError::Migration(format!("version {version}: {e}")))?;
            tx.execute(
                &tx.prepare_cached("INSERT INTO schema_migrations (version) VALUES ($1)")
                    .await
                    .map_err(db_error)?,
                &[version],
            )
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn incident_where(
        &self,
        clause: &str,
        param: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> StoreResult<Option<Incident>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .query_opt(
                &client
                    .prepare_cached(&format!(
                        "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE {clause}"
                    ))
                    .await
                    .map_err(db_error)?,
                &[param],
            )
            .await
            .map_err(db_error)?
            .as_ref()
            .map(incident_from_row)
            .transpose()
    }

    async fn close_leased(
        &self,
        sql: &str,
        id: i64,
        owner: &str,
        extra: &(dyn tokio_postgres::types::ToSql + Sync),
        what: &str,
    ) -> StoreResult<()> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let n = client
            .execute(
                &client.prepare_cached(sql).await.map_err(db_error)?,
                &[&id, &owner, extra],
            )
            .await
            .map_err(db_error)?;
        if n == 1 {
            Ok(())
        } else {
            Err(StoreError::LeaseLost(format!("{what} {id}")))
        }
    }
}

/// Claim the first pending row of each incident for one destination (its head: rows of an
/// incident go out in decision order), most urgent first, when it is due and not leased.
///
/// First a short walk: the first `claim_window(limit)` due, unleased rows along
/// `outbox_claim` (urgent first, then oldest), of which those that are the first pending row
/// of their incident and destination (a scalar sub-select, one `outbox_heads` look-up each).
/// In a backlog of many incidents that fills the limit at a cost of about the window, not the
/// backlog: the heads come first in that order, since a row that holds back an urgent row is
/// mostly urgent itself (`urgent_in_line`). A window that was not full held every due,
/// unleased row, so a short claim is then complete. When a full window did not fill the
/// claim (rows waiting behind heads that are out crowded it), the rest of the limit comes
/// from `CLAIM_OUTBOX_ALL`, which reads every pending row of the destination once, as every
/// claim did before: such a claim costs that plus the window's look-ups (while many heads are
/// out or backing off, rows written behind them since are due and crowd the window), and no
/// head is left behind a full window.
///
/// Both statements are planned at every claim (unnamed, with their parameters' values:
/// `claim_outbox`), so no plan made while the table was nearly empty is kept for a backlog. (A
/// correlated `NOT EXISTS` was once planned as a nested loop over all pending rows when the
/// table had no statistics, quadratic in the backlog.) Rows another process holds are skipped
/// (`SKIP LOCKED`), so replicas work through a backlog side by side; a head delivered,
/// leased, or failed and put back to wait for its retry since it was read is dropped by the
/// re-check under the row lock.
const CLAIM_OUTBOX_WALK: &str = "WITH candidate AS MATERIALIZED (
        SELECT id, incident FROM outbox
         WHERE state = 'pending' AND platform = $3
           AND next_attempt_at <= $4 AND (lease_until IS NULL OR lease_until < $4)
         ORDER BY urgent DESC, id LIMIT $6),
     claimed AS (
        UPDATE outbox SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 WHERE id IN (
            SELECT id FROM outbox WHERE id IN (
                SELECT candidate.id FROM candidate
                 WHERE candidate.id = (SELECT head.id FROM outbox AS head
                                        WHERE head.state = 'pending' AND head.platform = $3
                                          AND head.incident = candidate.incident
                                        ORDER BY head.id LIMIT 1))
              AND state = 'pending' AND next_attempt_at <= $4
              AND (lease_until IS NULL OR lease_until < $4)
            ORDER BY urgent DESC, id LIMIT $5
            FOR UPDATE SKIP LOCKED)
         RETURNING id, incident, effect::text AS effect, idempotency_key, attempts, urgent)
     SELECT id, incident, effect, idempotency_key, attempts, urgent, NULL::bigint FROM claimed
     UNION ALL
     SELECT NULL, NULL, NULL, NULL, NULL, NULL, (SELECT count(*) FROM candidate)";

/// The rest of a claim the walk could not fill (`CLAIM_OUTBOX_WALK`): the heads from one
/// ordered pass over the pending rows of the destination (`DISTINCT ON` along `outbox_heads`),
/// whatever the planner knows.
const CLAIM_OUTBOX_ALL: &str =
    "UPDATE outbox SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 WHERE id IN (
        SELECT id FROM outbox WHERE id IN (
            SELECT id FROM (
                SELECT DISTINCT ON (incident) id, next_attempt_at, lease_until FROM outbox
                 WHERE state = 'pending' AND platform = $3 ORDER BY incident, id
            ) AS heads
             WHERE next_attempt_at <= $4 AND (lease_until IS NULL OR lease_until < $4))
          AND state = 'pending' AND next_attempt_at <= $4
          AND (lease_until IS NULL OR lease_until < $4)
        ORDER BY urgent DESC, id LIMIT $5
        FOR UPDATE SKIP LOCKED)
     RETURNING id, incident, effect::text, idempotency_key, attempts, urgent";

/// How many due rows the walk of a claim of `limit` looks at (`CLAIM_OUTBOX_WALK`).
fn claim_window(limit: i64) -> i64 {
    limit.saturating_mul(4).saturating_add(16)
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn close(&self) {
        self.pool.close();
    }

    async fn ping(&self) -> StoreResult<()> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let version: i64 = client
            .query_one(
                &client
                    .prepare_cached("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                    .await
                    .map_err(db_error)?,
                &[],
            )
            .await
            .map_err(db_error)?
            .get(0);
        if version == SCHEMA_VERSION {
            Ok(())
        } else {
            Err(StoreError::Migration(format!(
                "schema version {version}, expected {SCHEMA_VERSION}"
            )))
        }
    }

    async fn allocate_incident_key(&self) -> StoreResult<IncidentKey> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let n: i64 = client
            .query_one(
                &client
                    .prepare_cached("SELECT nextval('incident_numbers')")
                    .await
                    .map_err(db_error)?,
                &[],
            )
            .await
            .map_err(db_error)?
            .get(0);
        Ok(IncidentKey(n))
    }

    async fn channel_names_with_prefix(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let rows = client
            .query(
                &client
                    .prepare_cached(&format!("SELECT channel {CHANNELS_WITH_PREFIX}"))
                    .await
                    .map_err(db_error)?,
                &[&prefix, &format!("{prefix}\u{10FFFF}")],
            )
            .await
            .map_err(db_error)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn allocate_incident_key_with_names(
        &self,
        prefix: &str,
    ) -> StoreResult<(IncidentKey, Vec<String>)> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let row = client
            .query_one(
                &client
                    .prepare_cached(&format!(
                        "SELECT nextval('incident_numbers'), ARRAY(SELECT channel {CHANNELS_WITH_PREFIX})"
                    ))
                    .await
                    .map_err(db_error)?,
                &[&prefix, &format!("{prefix}\u{10FFFF}")],
            )
            .await
            .map_err(db_error)?;
        Ok((IncidentKey(row.get(0)), row.get(1)))
    }

    async fn incident(&self, key: IncidentKey) -> StoreResult<Option<Incident>> {
        self.incident_where("number = $1", &key.0).await
    }

    async fn incident_by_channel(&self, channel: &str) -> StoreResult<Option<Incident>> {
        self.incident_where("channel = $1", &channel).await
    }

    async fn incident_by_pagerduty_id(&self, id: &str) -> StoreResult<Option<Incident>> {
        self.incident_where("pagerduty_incident_id = $1", &id).await
    }

    async fn prune_inbound_events(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let events = client
            .execute(
                "DELETE FROM inbound_events WHERE received_at < $1",
                &[&before],
            )
            .await
            .map_err(db_error)?;
        let notes = client
            .execute(
                "DELETE FROM chat_refs WHERE key LIKE 'outbox:%' AND updated_at < $1",
                &[&before],
            )
            .await
            .map_err(db_error)?;
        Ok(events + notes)
    }

    async fn record_inbound_event(
        &self,
        source: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let inserted = client
            .execute(&client.prepare_cached("INSERT INTO inbound_events (source, id, received_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING").await.map_err(db_error)?,
                &[&source, &id, &now],
            )
            .await
            .map_err(db_error)?;
        Ok(inserted == 1)
    }

    async fn insert_runbook_request(
        &self,
        incident: IncidentKey,
        body: &serde_json::Value,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<i64> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let row = client
            .query_one(
                &client
                    .prepare_cached(
                        "WITH request AS (INSERT INTO runbook_requests (incident, body, created_at, expires_at) \
                         VALUES ($1, $2, $3, $4) RETURNING id), \
                         expiry AS (INSERT INTO timers (incident, kind, step, due_at, fence, created_at) \
                         SELECT $1, 'change_expiry', id, $4, 0, $3 FROM request) \
                         SELECT id FROM request",
                    )
                    .await
                    .map_err(db_error)?,
                &[&incident.0, body, &now, &expires_at],
            )
            .await
            .map_err(db_error)?;
        Ok(row.get(0))
    }

    async fn runbook_request(&self, id: i64) -> StoreResult<Option<RunbookRequest>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let row = client
            .query_opt(
                &client
                    .prepare_cached(
                        "SELECT incident, body, state, created_at, expires_at, decided_by FROM runbook_requests WHERE id = $1",
                    )
                    .await
                    .map_err(db_error)?,
                &[&id],
            )
            .await
            .map_err(db_error)?;
        Ok(row.map(|r| RunbookRequest {
            id,
            incident: IncidentKey(r.get(0)),
            body: r.get(1),
            state: r.get(2),
            created_at: r.get(3),
            expires_at: r.get(4),
            decided_by: r.get(5),
        }))
    }

    async fn transition_runbook_request(
        &self,
        id: i64,
        from: &str,
        to: &str,
        by: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let n = client
            .execute(
                &client
                    .prepare_cached(
                        "UPDATE runbook_requests SET state = $3, decided_by = COALESCE($4, decided_by), decided_at = $5 \
                         WHERE id = $1 AND state = $2",
                    )
                    .await
                    .map_err(db_error)?,
                &[&id, &from, &to, &by, &now],
            )
            .await
            .map_err(db_error)?;
        Ok(n == 1)
    }

    async fn chat_ref(&self, platform: &str, key: &str) -> StoreResult<Option<String>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        read_chat_ref(&client, platform, key).await
    }

    async fn set_chat_ref(&self, platform: &str, key: &str, value: &str) -> StoreResult<()> {
        self.set_chat_refs(platform, &[(key, value)]).await
    }

    async fn set_chat_refs(&self, platform: &str, refs: &[(&str, &str)]) -> StoreResult<()> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let keys: Vec<&str> = refs.iter().map(|(key, _)| *key).collect();
        let values: Vec<&str> = refs.iter().map(|(_, value)| *value).collect();
        client
            .execute(
                &client
                    .prepare_cached(
                        "INSERT INTO chat_refs (platform, key, value) \
                         SELECT $1, key, value FROM UNNEST($2::text[], $3::text[]) AS ref (key, value) \
                         ON CONFLICT (platform, key) DO UPDATE SET value = excluded.value, updated_at = now()",
                    )
                    .await
                    .map_err(db_error)?,
                &[&platform, &keys, &values],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn claim_chat_ref(&self, platform: &str, key: &str, value: &str) -> StoreResult<String> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let inserted = client
            .query_opt(
                &client
                    .prepare_cached(
                        "INSERT INTO chat_refs (platform, key, value) VALUES ($1, $2, $3) \
                         ON CONFLICT (platform, key) DO NOTHING RETURNING value",
                    )
                    .await
                    .map_err(db_error)?,
                &[&platform, &key, &value],
            )
            .await
            .map_err(db_error)?;
        if let Some(row) = inserted {
            return Ok(row.get(0));
        }
        // Something was recorded first. A second statement: after an insert that lost to a
        // concurrent one (and waited for it), only a new snapshot sees the winner's row. Read
        // on the same connection: asking the pool for a second one while holding this one
        // would deadlock once every connection is held by a claim.
        read_chat_ref(&client, platform, key)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("chat ref {platform}/{key} vanished")))
    }

    async fn latest_incident_by_alert_group(
        &self,
        group_key: &str,
    ) -> StoreResult<Option<Incident>> {
        self.incident_where("alert_group = $1 ORDER BY number DESC LIMIT 1", &group_key)
            .await
    }

    async fn held_incidents(&self) -> StoreResult<Vec<Incident>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .query(
                &client
                    .prepare_cached(&format!(
                        "SELECT {INCIDENT_COLUMNS} FROM incidents \
                         WHERE paging_held IS NOT NULL AND status <> 'resolved' ORDER BY number"
                    ))
                    .await
                    .map_err(db_error)?,
                &[],
            )
            .await
            .map_err(db_error)?
            .iter()
            .map(incident_from_row)
            .collect()
    }

    async fn maintenance_windows(
        &self,
        after: DateTime<Utc>,
    ) -> StoreResult<Vec<MaintenanceWindow>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "SELECT id, name, starts_at, ends_at, started_by, ended_by, start_announced, end_announced \
                         FROM maintenance_windows WHERE ends_at > $1 ORDER BY starts_at, id",
                    )
                    .await
                    .map_err(db_error)?,
                &[&after],
            )
            .await
            .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                Ok(MaintenanceWindow {
                    id: row.try_get(0)?,
                    name: row.try_get(1)?,
                    starts_at: row.try_get(2)?,
                    ends_at: row.try_get(3)?,
                    started_by: row.try_get(4)?,
                    ended_by: row.try_get(5)?,
                    start_announced: row.try_get(6)?,
                    end_announced: row.try_get(7)?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    async fn announce_maintenance(
        &self,
        window: &MaintenanceWindow,
        edge: WindowEdge,
        notices: &[(String, Effect)],
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(db_error)?;
        tx.execute(
            "INSERT INTO maintenance_windows (id, name, starts_at, ends_at, started_by) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO NOTHING",
            &[&window.id, &window.name, &window.starts_at, &window.ends_at, &window.started_by],
        )
        .await
        .map_err(db_error)?;
        let marked = match edge {
            WindowEdge::Start => {
                tx.execute(
                    "UPDATE maintenance_windows SET start_announced = true WHERE id = $1 AND NOT start_announced",
                    &[&window.id],
                )
                .await
            }
            WindowEdge::End if window.ended_by.is_some() => {
                tx.execute(
                    "UPDATE maintenance_windows SET end_announced = true, ends_at = $2, ended_by = $3 WHERE id = $1 AND NOT end_announced",
                    &[&window.id, &window.ends_at, &window.ended_by],
                )
                .await
            }
            WindowEdge::End => {
                tx.execute(
                    "UPDATE maintenance_windows SET end_announced = true WHERE id = $1 AND NOT end_announced",
                    &[&window.id],
                )
                .await
            }
        }
        .map_err(db_error)?;
        if marked != 1 {
            return Ok(false);
        }
        let in_line: Vec<(&str, bool)> = notices
            .iter()
            .map(|(destination, effect)| (destination.as_str(), effect.urgent()))
            .collect();
        // (Notices are not urgent today; rows already pending for them are not raised.)
        let urgent = urgent_in_line(&in_line);
        for (index, (destination, effect)) in notices.iter().enumerate() {
            let effect_value = serde_json::to_value(effect).expect("effects serialize");
            let key = format!("maintenance/{}/{}/{index}", window.id, edge.as_str());
            tx.execute(
                "INSERT INTO outbox (incident, platform, effect, idempotency_key, next_attempt_at, created_at, urgent) \
                 VALUES ($1, $2, $3, $4, $5, $5, $6)",
                &[&NO_INCIDENT.0, destination, &effect_value, &key, &now, &urgent[index]],
            )
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        if !notices.is_empty()
            && let Err(e) = client
                .batch_execute(&format!("NOTIFY {OUTBOX_CHANNEL}"))
                .await
        {
            tracing::warn!(error = %e, "could not notify the dispatchers of maintenance notices");
        }
        Ok(true)
    }

    async fn incidents(&self, include_resolved: bool, limit: i64) -> StoreResult<Vec<Incident>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let filter = if include_resolved {
            ""
        } else {
            "WHERE status <> 'resolved'"
        };
        client
            .query(&client.prepare_cached(&format!("SELECT {INCIDENT_COLUMNS} FROM incidents {filter} ORDER BY number DESC LIMIT $1")).await.map_err(db_error)?, &[&limit])
            .await
            .map_err(db_error)?
            .iter()
            .map(incident_from_row)
            .collect()
    }

    async fn timeline(&self, key: IncidentKey) -> StoreResult<Vec<TimelineEvent>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .query(&client.prepare_cached("SELECT at, actor, detail::text FROM timeline_events WHERE incident = $1 ORDER BY id").await.map_err(db_error)?, &[&key.0])
            .await
            .map_err(db_error)?
            .iter()
            .map(|r| event_from_columns(r.get(0), r.get(1), r.get::<_, &str>(2)))
            .collect()
    }

    async fn incidents_declared_since(
        &self,
        since: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<Incident>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .query(&client.prepare_cached(&format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE declared_at >= $1 ORDER BY number LIMIT $2")).await.map_err(db_error)?, &[&since, &limit])
            .await
            .map_err(db_error)?
            .iter()
            .map(incident_from_row)
            .collect()
    }

    async fn events_of_incidents_since(
        &self,
        since: DateTime<Utc>,
        kinds: &[&str],
    ) -> StoreResult<Vec<(IncidentKey, TimelineEvent)>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .query(&client.prepare_cached("SELECT e.incident, e.at, e.actor, e.detail::text FROM timeline_events AS e \
                 JOIN incidents AS i ON i.number = e.incident \
                 WHERE i.declared_at >= $1 AND e.kind = ANY($2) ORDER BY e.id").await.map_err(db_error)?, &[&since, &kinds])
            .await
            .map_err(db_error)?
            .iter()
            .map(|r| {
                let event = event_from_columns(r.get(1), r.get(2), r.get::<_, &str>(3))?;
                Ok((IncidentKey(r.get(0)), event))
            })
            .collect()
    }

    async fn commit(&self, change: Change<'_>) -> StoreResult<i64> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let i = change.incident;
        let version = change.expected_version.map_or(1, |v| v + 1);
        let severity = i.severity.to_string();
        let acknowledged_by = i.acknowledged_by.as_ref().map(|u| u.as_str());
        let paged_services = paged_services_column(i);
        let alerts = alerts_column(i);
        let details: Vec<serde_json::Value> = change
            .events
            .iter()
            .map(|event| serde_json::to_value(&event.kind).expect("timeline events serialize"))
            .collect();
        let actors: Vec<Option<String>> = change
            .events
            .iter()
            .map(|event| actor_column(&event.actor))
            .collect();
        let event_kinds: Vec<&str> = change.events.iter().map(|e| e.kind.name()).collect();
        let event_times: Vec<DateTime<Utc>> = change.events.iter().map(|e| e.at).collect();
        let timer_kinds: Vec<&str> = change.timers.iter().map(|t| t.kind.as_str()).collect();
        let timer_steps: Vec<i64> = change.timers.iter().map(|t| t.kind.index()).collect();
        let timer_due: Vec<DateTime<Utc>> = change.timers.iter().map(|t| t.due_at).collect();
        let timer_fences: Vec<i64> = change.timers.iter().map(|t| t.fence).collect();
        // Written one by one, a timer would be superseded by a later timer of its kind in the
        // same change with a greater fence; written together, it starts out superseded.
        let timer_states: Vec<&str> = change
            .timers
            .iter()
            .enumerate()
            .map(|(n, timer)| {
                let overtaken = change.timers[n + 1..].iter().any(|later| {
                    later.kind.as_str() == timer.kind.as_str() && later.fence > timer.fence
                });
                if overtaken { "superseded" } else { "pending" }
            })
            .collect();
        let mut platforms = Vec::with_capacity(change.outbox.len());
        let mut effects = Vec::with_capacity(change.outbox.len());
        let mut keys = Vec::with_capacity(change.outbox.len());
        let mut own_urgency = Vec::with_capacity(change.outbox.len());
        for (index, effect) in change.outbox.iter().enumerate() {
            platforms.push(effect.destination(i.platform).to_string());
            effects.push(serde_json::to_value(effect).expect("effects serialize"));
            keys.push(idempotency_key(i.key, version, index));
            own_urgency.push(effect.urgent());
        }
        let in_line: Vec<(&str, bool)> = platforms
            .iter()
            .map(String::as_str)
            .zip(own_urgency.iter().copied())
            .collect();
        let urgent = urgent_in_line(&in_line);
        let raised_platforms = urgent_platforms(&in_line);

        // The whole change is one statement: the incident row first, and every other part
        // only once it is written (each waits on `WRITTEN`, so the incident's row lock is
        // always taken first, as by a transaction that wrote it first). A statement is its
        // own transaction: no BEGIN and COMMIT round trips, one plan, one answer. The final
        // SELECT checks, in order, that the incident was written at its version (if not,
        // nothing else was written either: it answers 1, the usual refusal, which is no
        // error), then that the inbound event was new and the leases were held: a failure
        // there raises `warroom_refuse`, and PostgreSQL undoes the whole statement. The
        // first failure in that order is the one reported. The statement's text depends
        // only on which parts the change has: each shape is prepared once per connection.
        const WRITTEN: &str = "(SELECT count(*) FROM incident) = 1";
        let row: [&(dyn ToSql + Sync); 26] = [
            &i.key.0,
            &i.title,
            &severity,
            &i.status.as_str(),
            &i.platform.as_str(),
            &i.channel.as_str(),
            &i.commander.as_str(),
            &i.declared_by.as_str(),
            &i.declared_at,
            &i.acknowledged_at,
            &acknowledged_by,
            &i.resolved_at,
            &i.root_cause,
            &i.last_update_at,
            &i.escalation_generation,
            &i.reminder_generation,
            &version,
            &i.escalation_level,
            &paged_services,
            &i.pagerduty_incident_id,
            &i.alert_group,
            &alerts,
            &i.postmortem_url,
            &i.paging_held,
            &i.escalation_from,
            &i.response_breached_at,
        ];
        let mut values = Params(row.to_vec());
        let mut sql = String::with_capacity(2048);
        sql.push_str("WITH incident AS (");
        match &change.expected_version {
            None => sql.push_str(&INSERT_INCIDENT_SQL),
            Some(expected) => {
                // UPDATE_INCIDENT_SQL's $27.
                values.add(expected);
                sql.push_str(UPDATE_INCIDENT_SQL);
            }
        }
        sql.push_str(" RETURNING number)");
        // `now` is a parameter only if a part uses it: PostgreSQL refuses a parameter whose
        // type nothing in the statement tells.
        let uses_now = change.inbound_event.is_some()
            || change.fired_timer.is_some()
            || change.delivered_outbox.is_some()
            || !change.timers.is_empty()
            || !change.outbox.is_empty();
        let now = if uses_now {
            values.add(&change.now)
        } else {
            String::new()
        };
        // What the final SELECT checks, in order: the CTE's name and what its failure means.
        let mut checks: Vec<(&str, &str)> = Vec::new();
        if let Some((source, id)) = &change.inbound_event {
            let (source, id) = (values.add(source), values.add(id));
            sql.push_str(&format!(
                ", inbound AS (INSERT INTO inbound_events (source, id, received_at) \
                 SELECT {source}::text, {id}::text, {now}::timestamptz WHERE {WRITTEN} \
                 ON CONFLICT DO NOTHING RETURNING 1)"
            ));
            checks.push(("inbound", "inbound"));
        }
        let mut fired_id = None;
        if let Some((id, owner)) = &change.fired_timer {
            let (id, owner) = (values.add(id), values.add(owner));
            sql.push_str(&format!(
                ", fired AS (UPDATE timers SET state = 'fired', fired_at = {now}::timestamptz, \
                 lease_owner = NULL, lease_until = NULL \
                 WHERE id = {id}::bigint AND lease_owner = {owner}::text AND state = 'pending' \
                 AND {WRITTEN} RETURNING 1)"
            ));
            checks.push(("fired", "fired"));
            fired_id = Some(id);
        }
        if let Some((id, owner)) = &change.delivered_outbox {
            let (id, owner) = (values.add(id), values.add(owner));
            sql.push_str(&format!(
                ", delivered AS (UPDATE outbox SET state = 'delivered', done_at = {now}::timestamptz, \
                 lease_owner = NULL, lease_until = NULL \
                 WHERE id = {id}::bigint AND lease_owner = {owner}::text AND state = 'pending' \
                 AND {WRITTEN} RETURNING 1)"
            ));
            checks.push(("delivered", "outbox"));
        }
        if let Some((id, owner, reason)) = &change.failed_outbox {
            let (id, owner, reason) = (values.add(id), values.add(owner), values.add(reason));
            sql.push_str(&format!(
                ", failed AS (UPDATE outbox SET state = 'failed', last_error = {reason}::text, \
                 lease_owner = NULL, lease_until = NULL \
                 WHERE id = {id}::bigint AND lease_owner = {owner}::text AND state = 'pending' \
                 AND {WRITTEN} RETURNING 1)"
            ));
            checks.push(("failed", "outbox"));
        }
        if !change.events.is_empty() {
            let (at, actor, kind, detail) = (
                values.add(&event_times),
                values.add(&actors),
                values.add(&event_kinds),
                values.add(&details),
            );
            // Ids are taken in decision order (`ORDER BY n`).
            sql.push_str(&format!(
                ", events AS (INSERT INTO timeline_events (incident, at, actor, kind, detail) \
                 SELECT $1, at, actor, kind, detail \
                 FROM UNNEST({at}::timestamptz[], {actor}::text[], {kind}::text[], {detail}::jsonb[]) \
                 WITH ORDINALITY AS row (at, actor, kind, detail, n) WHERE {WRITTEN} ORDER BY n)"
            ));
        }
        // A new incident has no timers to supersede. The timer this change fires is left to
        // `fired`: one statement must not update a row twice.
        if change.expected_version.is_some() && !change.timers.is_empty() {
            let (kind, fence) = (values.add(&timer_kinds), values.add(&timer_fences));
            let not_fired = fired_id
                .map(|id| format!(" AND timers.id <> {id}::bigint"))
                .unwrap_or_default();
            sql.push_str(&format!(
                ", superseded AS (UPDATE timers SET state = 'superseded' \
                 FROM UNNEST({kind}::text[], {fence}::bigint[]) AS newer (kind, fence) \
                 WHERE timers.incident = $1 AND timers.kind = newer.kind AND timers.fence < newer.fence \
                 AND timers.state = 'pending'{not_fired} AND {WRITTEN})"
            ));
        }
        if !change.timers.is_empty() {
            let (kind, step, due, fence, state) = (
                values.add(&timer_kinds),
                values.add(&timer_steps),
                values.add(&timer_due),
                values.add(&timer_fences),
                values.add(&timer_states),
            );
            sql.push_str(&format!(
                ", timers_planned AS (INSERT INTO timers (incident, kind, step, due_at, fence, created_at, state) \
                 SELECT $1, kind, step, due_at, fence, {now}::timestamptz, state \
                 FROM UNNEST({kind}::text[], {step}::bigint[], {due}::timestamptz[], {fence}::bigint[], {state}::text[]) \
                 WITH ORDINALITY AS row (kind, step, due_at, fence, state, n) WHERE {WRITTEN} ORDER BY n)"
            ));
        }
        if !raised_platforms.is_empty() {
            // Before the rows below are inserted (a CTE does not see its siblings' rows): the
            // incident's rows already pending on those platforms now hold an urgent row back.
            // Not a row out on a lease: a dispatcher is recording its outcome or soon will, and
            // putting it back (`outbox_failed`, `release_leases`) raises it if a row behind it
            // is urgent. That misses a row put back while this statement runs (its check does
            // not see the uncommitted rows) and a lease left to expire by a crash: such a head
            // keeps its own urgency, which changes when it goes, never whether or in what order.
            // (Both this and `outbox_failed` lock an incident's rows in id order.)
            let raised = values.add(&raised_platforms);
            sql.push_str(&format!(
                ", raised AS (UPDATE outbox SET urgent = true WHERE state = 'pending' AND NOT urgent \
                 AND lease_owner IS NULL AND incident = $1 AND platform = ANY({raised}::text[]) AND {WRITTEN})"
            ));
        }
        if !change.outbox.is_empty() {
            let (platform, effect, key, urgent) = (
                values.add(&platforms),
                values.add(&effects),
                values.add(&keys),
                values.add(&urgent),
            );
            sql.push_str(&format!(
                ", outbox_rows AS (INSERT INTO outbox (incident, platform, effect, idempotency_key, next_attempt_at, created_at, urgent) \
                 SELECT $1, platform, effect, key, {now}::timestamptz, {now}::timestamptz, urgent \
                 FROM UNNEST({platform}::text[], {effect}::jsonb[], {key}::text[], {urgent}::bool[]) \
                 WITH ORDINALITY AS row (platform, effect, key, urgent, n) WHERE {WRITTEN} ORDER BY n)"
            ));
        }
        sql.push_str(&format!(
            " SELECT CASE WHEN NOT {WRITTEN} THEN {NOT_WRITTEN}::bigint"
        ));
        for (cte, refusal) in &checks {
            sql.push_str(&format!(
                " WHEN (SELECT count(*) FROM {cte}) <> 1 THEN warroom_refuse('{refusal}')"
            ));
        }
        sql.push_str(" ELSE 0::bigint END");

        let statement = client.prepare_cached(&sql).await.map_err(db_error)?;
        let answer: i64 = client
            .query_one(&statement, &values.0)
            .await
            .map_err(|error| match refusal(&error) {
                Some("inbound") => {
                    let (source, id) = change.inbound_event.unwrap_or_default();
                    StoreError::Duplicate(format!("{source}/{id}"))
                }
                Some("fired") => StoreError::LeaseLost(format!(
                    "timer {}",
                    change.fired_timer.map_or(0, |(id, _)| id)
                )),
                Some("outbox") => StoreError::LeaseLost(format!(
                    "outbox row {}",
                    change
                        .delivered_outbox
                        .map(|(id, _)| id)
                        .or(change.failed_outbox.map(|(id, _, _)| id))
                        .unwrap_or_default()
                )),
                _ => incident_write_error(error),
            })?
            .get(0);
        if answer == NOT_WRITTEN {
            return Err(match change.expected_version {
                None => StoreError::ChannelTaken(i.channel.to_string()),
                Some(_) => StoreError::Conflict(i.key.to_string()),
            });
        }
        // Listeners are told after the commit, in a transaction of its own: a NOTIFY inside
        // the change would hold PostgreSQL's notification lock through the commit's WAL
        // flush, one committing transaction at a time. A notification lost to a crash right
        // here only delays the work until the listeners' next poll. The caller does not wait
        // for it: the change is committed, and the connection goes back to the pool once the
        // notification is sent.
        // The outbox's notifications say for which destination (one each), so that only its
        // dispatchers wake.
        let mut channels: Vec<&'static str> = Vec::new();
        let mut payloads: Vec<String> = Vec::new();
        if !change.timers.is_empty() {
            channels.push(TIMERS_CHANNEL);
            payloads.push(String::new());
        }
        for destination in super::destinations(change.outbox, i.platform) {
            channels.push(OUTBOX_CHANNEL);
            payloads.push(destination.to_string());
        }
        if !channels.is_empty() {
            tokio::spawn(async move {
                let notified = async {
                    let statement = client
                        .prepare_cached(
                            "SELECT pg_notify(channel, payload) \
                             FROM UNNEST($1::text[], $2::text[]) AS note (channel, payload)",
                        )
                        .await?;
                    client.execute(&statement, &[&channels, &payloads]).await
                }
                .await;
                if let Err(error) = notified {
                    tracing::warn!(error = %with_causes(&error), "committed, but could not notify the other replicas; they will find the work on their next poll");
                }
            });
        }
        Ok(version)
    }

    async fn claim_due_timers(
        &self,
        now: DateTime<Utc>,
        owner: &str,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<Timer>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "UPDATE timers SET lease_owner = $1, lease_until = $2 WHERE id IN (
                    SELECT id FROM timers WHERE state = 'pending' AND due_at <= $3
                      AND (lease_until IS NULL OR lease_until < $3)
                    ORDER BY due_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)
                 RETURNING id, incident, kind, due_at, fence, step",
                    )
                    .await
                    .map_err(db_error)?,
                &[&owner, &lease_until, &now, &limit],
            )
            .await
            .map_err(db_error)?;
        let mut timers = rows
            .iter()
            .map(|r| {
                Ok(Timer {
                    id: r.get(0),
                    incident: IncidentKey(r.get(1)),
                    kind: timer_kind(r.get::<_, &str>(2), r.get(5))?,
                    due_at: r.get(3),
                    fence: r.get(4),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        timers.sort_by_key(|t| (t.due_at, t.id));
        Ok(timers)
    }

    async fn discard_timer(&self, id: i64, owner: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.close_leased(
            "UPDATE timers SET state = 'stale', fired_at = $3, lease_owner = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_owner = $2 AND state = 'pending'",
            id, owner, &now, "timer",
        )
        .await
    }

    async fn next_timer_due(&self) -> StoreResult<Option<DateTime<Utc>>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        Ok(client
            .query_one(
                &client
                    .prepare_cached("SELECT MIN(GREATEST(due_at, COALESCE(lease_until, due_at))) FROM timers WHERE state = 'pending'")
                    .await
                    .map_err(db_error)?,
                &[],
            )
            .await
            .map_err(db_error)?
            .get(0))
    }

    async fn claim_outbox(
        &self,
        destination: &str,
        now: DateTime<Utc>,
        owner: &str,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<OutboxItem>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        // Not prepared statements: planned afresh at each claim, for the table as it is now.
        let claim = |sql: &'static str, limit: i64| {
            let (client, owner, destination) = (&client, owner, destination);
            async move {
                let window = claim_window(limit);
                let params: [(&(dyn ToSql + Sync), Type); 6] = [
                    (&owner, Type::TEXT),
                    (&lease_until, Type::TIMESTAMPTZ),
                    (&destination, Type::TEXT),
                    (&now, Type::TIMESTAMPTZ),
                    (&limit, Type::INT8),
                    (&window, Type::INT8),
                ];
                // The walk also takes its window ($6).
                let used = if sql == CLAIM_OUTBOX_WALK { 6 } else { 5 };
                client
                    .query_typed(sql, &params[..used])
                    .await
                    .map_err(db_error)
            }
        };
        // The walk's rows, and one row without an id that says how many due rows its window
        // held.
        let (counted, mut rows): (Vec<Row>, Vec<Row>) = claim(CLAIM_OUTBOX_WALK, limit)
            .await?
            .into_iter()
            .partition(|row| row.get::<_, Option<i64>>(0).is_none());
        let seen: i64 = counted
            .first()
            .and_then(|row| row.get::<_, Option<i64>>(6))
            .ok_or_else(|| {
                StoreError::Corrupt("the claim's walk did not count its window".into())
            })?;
        let short = limit - rows.len() as i64;
        // A window that was not full held every due, unleased row: nothing is left to find.
        if short > 0 && seen == claim_window(limit) {
            rows.extend(claim(CLAIM_OUTBOX_ALL, short).await?);
        }
        let mut items = rows
            .iter()
            .map(|r| {
                Ok((
                    !r.get::<_, bool>(5),
                    OutboxItem {
                        id: r.get(0),
                        incident: IncidentKey(r.get(1)),
                        destination: destination.to_string(),
                        effect: effect_from_json(r.get::<_, &str>(2))?,
                        idempotency_key: r.get(3),
                        attempts: r.get(4),
                    },
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        // Urgent (as stored: raised rows too) first, then oldest.
        items.sort_by_key(|(not_urgent, item)| (*not_urgent, item.id));
        Ok(items.into_iter().map(|(_, item)| item).collect())
    }

    async fn renew_outbox_lease(
        &self,
        id: i64,
        owner: &str,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let n = client
            .execute(
                &client
                    .prepare_cached("UPDATE outbox SET lease_until = $3 WHERE id = $1 AND lease_owner = $2 AND state = 'pending'")
                    .await
                    .map_err(db_error)?,
                &[&id, &owner, &lease_until],
            )
            .await
            .map_err(db_error)?;
        Ok(n == 1)
    }

    async fn outbox_delivered(&self, id: i64, owner: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.close_leased(
            "UPDATE outbox SET state = 'delivered', done_at = $3, lease_owner = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_owner = $2 AND state = 'pending'",
            id, owner, &now, "outbox row",
        )
        .await
    }

    async fn outbox_delivered_keeping(
        &self,
        id: i64,
        owner: &str,
        now: DateTime<Utc>,
        platform: &str,
        key: &str,
        value: &str,
    ) -> StoreResult<()> {
        let client = self.pool.get().await.map_err(pool_error)?;
        // One statement: the ref is written whatever the row's update finds.
        let n = client
            .execute(
                &client
                    .prepare_cached(
                        "WITH kept AS (INSERT INTO chat_refs (platform, key, value) VALUES ($4, $5, $6) \
                         ON CONFLICT (platform, key) DO UPDATE SET value = excluded.value, updated_at = now()) \
                         UPDATE outbox SET state = 'delivered', done_at = $3, lease_owner = NULL, lease_until = NULL \
                         WHERE id = $1 AND lease_owner = $2 AND state = 'pending'",
                    )
                    .await
                    .map_err(db_error)?,
                &[&id, &owner, &now, &platform, &key, &value],
            )
            .await
            .map_err(db_error)?;
        match n {
            1 => Ok(()),
            _ => Err(StoreError::LeaseLost(format!("outbox row {id}"))),
        }
    }

    async fn outbox_failed(
        &self,
        id: i64,
        owner: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let n = match retry_at {
            // The rows behind it wait for its next attempt too, so a claim passes them over on
            // `next_attempt_at` alone (CLAIM_OUTBOX_WALK) while their head backs off. It is urgent
            // when one of them is (a change that came while it was out could not raise it).
            Some(at) => client.query_one(&client.prepare_cached(concat!(
                "WITH failed AS (UPDATE outbox AS head SET last_error = $3, next_attempt_at = $4, lease_owner = NULL, lease_until = NULL, ",
                urgent_if_holding_back!(),
                " WHERE head.id = $1 AND head.lease_owner = $2 AND head.state = 'pending' RETURNING head.incident, head.platform), \
                 behind AS (UPDATE outbox AS later SET next_attempt_at = $4 FROM failed \
                 WHERE later.state = 'pending' AND later.incident = failed.incident AND later.platform = failed.platform \
                 AND later.id > $1 AND later.next_attempt_at < $4) \
                 SELECT count(*)::bigint FROM failed")).await.map_err(db_error)?,
                &[&id, &owner, &error, &at],
            ).await.map(|row| row.get::<_, i64>(0) as u64),
            None => client.execute(&client.prepare_cached("UPDATE outbox SET state = 'failed', last_error = $3, lease_owner = NULL, lease_until = NULL \
                 WHERE id = $1 AND lease_owner = $2 AND state = 'pending'").await.map_err(db_error)?,
                &[&id, &owner, &error],
            ).await,
        }
        .map_err(db_error)?;
        if n == 1 {
            Ok(())
        } else {
            Err(StoreError::LeaseLost(format!("outbox row {id}")))
        }
    }

    fn watch(&self, timers: Arc<super::wake::Signal>, outbox: Arc<super::wake::OutboxSignals>) {
        let config = self.config.clone();
        let tls = self.tls.clone();
        tokio::spawn(async move {
            loop {
                if let Err(error) = listen(&config, tls.clone(), &timers, &outbox).await {
                    tracing::warn!(error = %with_causes(&error), "LISTEN connection lost; polling until it is back");
                }
                // What is committed until LISTEN is back is found by the loops' polls, and
                // then by the wake-up `listen` gives once it listens again.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    async fn outbox_counts(&self) -> StoreResult<OutboxCounts> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let row = client
            .query_one(&client.prepare_cached("SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'failed'), count(*) FILTER (WHERE state = 'delivered') FROM outbox").await.map_err(db_error)?,
                &[],
            )
            .await
            .map_err(db_error)?;
        Ok(OutboxCounts {
            pending: row.get(0),
            failed: row.get(1),
            delivered: row.get(2),
        })
    }

    async fn health_counts(&self) -> StoreResult<HealthCounts> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let severities = client
            .query(
                &client
                    .prepare_cached("SELECT severity, count(*) FROM incidents WHERE resolved_at IS NULL GROUP BY severity ORDER BY severity")
                    .await
                    .map_err(db_error)?,
                &[],
            )
            .await
            .map_err(db_error)?;
        let row = client
            .query_one(
                &client
                    .prepare_cached(
                        "SELECT (SELECT count(*) FROM timers WHERE state = 'pending'), \
                     count(*) FILTER (WHERE state = 'pending' AND (attempts = 0 OR lease_owner IS NOT NULL)), \
                     count(*) FILTER (WHERE state = 'pending' AND attempts > 0 AND lease_owner IS NULL), \
                     count(*) FILTER (WHERE state = 'failed') FROM outbox WHERE state IN ('pending', 'failed')",
                    )
                    .await
                    .map_err(db_error)?,
                &[],
            )
            .await
            .map_err(db_error)?;
        Ok(HealthCounts {
            open_by_severity: severities.iter().map(|r| (r.get(0), r.get(1))).collect(),
            timers_pending: row.get(0),
            outbox_pending: row.get(1),
            outbox_retrying: row.get(2),
            outbox_failed: row.get(3),
        })
    }

    async fn release_leases(&self, owner: &str) -> StoreResult<(u64, u64)> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let timers = client
            .execute(
                "UPDATE timers SET lease_owner = NULL, lease_until = NULL WHERE state = 'pending' AND lease_owner = $1",
                &[&owner],
            )
            .await
            .map_err(db_error)?;
        let rows = client
            .execute(
                concat!(
                    "UPDATE outbox AS head SET lease_owner = NULL, lease_until = NULL, ",
                    urgent_if_holding_back!(),
                    " WHERE head.state = 'pending' AND head.lease_owner = $1"
                ),
                &[&owner],
            )
            .await
            .map_err(db_error)?;
        Ok((timers, rows))
    }
}

/// libpq's `prefer` goes on without TLS when the TLS handshake fails (a server whose TLS
/// rustls cannot speak, a URL with `hostaddr` and no host name to check); tokio-postgres's
/// only when the server offers no TLS. So try once: if TLS fails where a plain connection
/// works, use plain connections, and say so.
async fn prefer_fallback(
    config: tokio_postgres::Config,
    tls: &MakeRustlsConnect,
) -> tokio_postgres::Config {
    let tls_error = match config.connect(tls.clone()).await {
        Ok((client, connection)) => {
            close_probe(client, connection).await;
            return config;
        }
        Err(error) => error,
    };
    let mut plain = config.clone();
    plain.ssl_mode(tokio_postgres::config::SslMode::Disable);
    match plain.connect(tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            close_probe(client, connection).await;
            tracing::warn!(error = %with_causes(&tls_error), "TLS to PostgreSQL failed; connecting without it, as sslmode=prefer (the default) allows. Set sslmode=require or verify-full to refuse that");
            plain
        }
        // Neither works: the pool will report the TLS attempt's error.
        Err(_) => config,
    }
}

/// Close a probe connection: it says goodbye (Terminate) once its client is gone.
async fn close_probe(
    client: tokio_postgres::Client,
    connection: impl std::future::Future<Output = Result<(), tokio_postgres::Error>>,
) {
    drop(client);
    if let Err(error) = connection.await {
        tracing::debug!(error = %with_causes(&error), "closing a probe connection");
    }
}

/// Hold one connection that LISTENs to both channels and turn notifications into wake-ups.
/// Returns when the connection fails.
async fn listen(
    config: &tokio_postgres::Config,
    tls: MakeRustlsConnect,
    timers: &super::wake::Signal,
    outbox: &super::wake::OutboxSignals,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls).await?;
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(note))) => {
                    let note = (note.channel().to_string(), note.payload().to_string());
                    if sender.send(note).is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error),
                None => return Ok(()),
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {TIMERS_CHANNEL}; LISTEN {OUTBOX_CHANNEL}"))
        .await?;
    // Work committed while this connection was not yet listening was notified to nobody.
    timers.raise();
    outbox.raise_all();
    while let Some((channel, payload)) = receiver.recv().await {
        match (channel.as_str(), payload.as_str()) {
            (TIMERS_CHANNEL, _) => timers.raise(),
            // A replica of a version whose notifications name no destination.
            (OUTBOX_CHANNEL, "") => outbox.raise_all(),
            (OUTBOX_CHANNEL, destination) => outbox.raise(destination),
            _ => {}
        }
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
