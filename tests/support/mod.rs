//! Shared test support: PostgreSQL schemas per test, SQLite stores in temporary folders.
//!
//! PostgreSQL: `WARROOM_TEST_DATABASE_URL` names the server (default
//! `postgres://postgres@127.0.0.1:5432/test`). When that variable is set, or `CI` is set, an
//! unreachable server fails the test; otherwise the PostgreSQL variant prints why it did not
//! run and returns.

#![allow(dead_code)]

pub mod discord;
pub mod kube;
pub mod pagerduty;
pub mod proxy;
pub mod slack;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use warroom::store::Store;
use warroom::store::postgres::PostgresStore;
use warroom::store::sqlite::SqliteStore;

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn postgres_url() -> (String, bool) {
    match std::env::var("WARROOM_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => (url, true),
        _ => (
            DEFAULT_POSTGRES_URL.to_string(),
            std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false"),
        ),
    }
}

/// A unique schema name for one test.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A PostgreSQL schema of its own for one test; dropped by `cleanup`. While it lives, a
/// connection of its own holds an advisory lock named after the schema: the lock goes with
/// the process, however it ends, and marks the schema as in use to any other test run.
pub struct PgSchema {
    pub url: String,
    pub schema: String,
    _in_use: tokio_postgres::Client,
}

/// The advisory lock key of a test schema (`PgSchema`).
const LOCK_KEY: &str = "SELECT hashtext($1)::bigint";

/// Drop, once per process, the test schemas no process holds (`PgSchema`): a test that panics
/// skips its cleanup, and with autovacuum off (as on the development machine) every schema
/// left behind bloats the database's catalogs run after run. A schema whose lock another
/// session holds, from any machine or container, is in use and kept.
async fn sweep_leftovers(client: &tokio_postgres::Client) {
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if SWEPT.swap(true, Ordering::SeqCst) {
        return;
    }
    let rows = match client
        .query(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'wrt\\_%'",
            &[],
        )
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("leftover test schemas not swept: {e}");
            return;
        }
    };
    for row in rows {
        let name: String = row.get(0);
        let swept = async {
            let free: bool = client
                .query_one(
                    &format!("SELECT pg_try_advisory_lock(({LOCK_KEY}))"),
                    &[&name],
                )
                .await?
                .get(0);
            if free {
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .await?;
                client
                    .execute(
                        &format!("SELECT pg_advisory_unlock(({LOCK_KEY}))"),
                        &[&name],
                    )
                    .await?;
            }
            Ok::<(), tokio_postgres::Error>(())
        };
        if let Err(e) = swept.await {
            eprintln!("leftover test schema {name} not dropped: {e}");
        }
    }
}

impl PgSchema {
    /// `None` (after saying why) when PostgreSQL is not required and not reachable.
    pub async fn create() -> Option<PgSchema> {
        let (url, required) = postgres_url();
        match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                sweep_leftovers(&client).await;
                let schema = unique_name("wrt");
                // Locked before it exists, so no sweep ever finds it free.
                client
                    .execute(
                        &format!("SELECT pg_advisory_lock(({LOCK_KEY}))"),
                        &[&schema],
                    )
                    .await
                    .expect("lock the test schema");
                client
                    .batch_execute(&format!("CREATE SCHEMA {schema}"))
                    .await
                    .expect("create test schema");
                Some(PgSchema {
                    url,
                    schema,
                    _in_use: client,
                })
            }
            Err(e) if required => panic!(
                "PostgreSQL is required here (CI or WARROOM_TEST_DATABASE_URL is set) but {url} is unreachable: {e}"
            ),
            Err(e) => {
                eprintln!(
                    "PostgreSQL test not run: {url} is unreachable ({e}); set WARROOM_TEST_DATABASE_URL or CI to make this a failure"
                );
                None
            }
        }
    }

    pub async fn store(&self) -> Arc<dyn Store> {
        Arc::new(
            PostgresStore::connect(&self.url, Some(&self.schema), 4)
                .await
                .expect("connect to the test schema"),
        )
    }

    /// Environment for a `warroom` child process using this schema.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("WARROOM_DATABASE__URL".into(), self.url.clone()),
            ("WARROOM_DATABASE__SCHEMA".into(), self.schema.clone()),
        ]
    }

    pub async fn cleanup(self) {
        if let Ok((client, connection)) =
            tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await
        {
            let task = tokio::spawn(connection);
            let _ = client
                .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
                .await;
            drop(client);
            let _ = task.await;
        }
    }
}

/// An SQLite store in a temporary folder, kept as long as the folder is.
pub async fn sqlite_store() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("warroom.db"))
        .await
        .unwrap();
    (Arc::new(store), dir)
}

/// A database for one test; `open` gives a new store on it each time (a separate SQLite
/// connection to the same file, or a separate PostgreSQL pool), as separate replicas would have.
pub enum TestDb {
    Sqlite(tempfile::TempDir),
    Postgres(PgSchema),
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        TestDb::Sqlite(tempfile::tempdir().unwrap())
    }

    pub async fn open(&self) -> Arc<dyn Store> {
        match self {
            TestDb::Sqlite(dir) => Arc::new(
                SqliteStore::open(&dir.path().join("warroom.db"))
                    .await
                    .unwrap(),
            ),
            TestDb::Postgres(schema) => schema.store().await,
        }
    }

    pub async fn cleanup(self) {
        if let TestDb::Postgres(schema) = self {
            schema.cleanup().await;
        }
    }
}

/// Generate a `sqlite` and a `postgres` module, each with one `#[tokio::test]` per named
/// `async fn(&TestDb)` of the calling module.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = crate::support::TestDb::sqlite();
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(schema) = crate::support::PgSchema::create().await else { return };
                    let db = crate::support::TestDb::Postgres(schema);
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

/// The kinds of an incident's timeline events, oldest first.
/// The chat posts among `effects`, rendered for `platform` as plain text and joined with
/// `separator`.
pub fn rendered_posts(
    effects: &[warroom::core::Effect],
    platform: warroom::core::Platform,
    separator: &str,
) -> String {
    let renderer = warroom::render::Renderer::load(None).unwrap();
    effects
        .iter()
        .filter_map(|effect| match effect {
            warroom::core::Effect::Post { message, .. } => {
                Some(renderer.render(platform, message).unwrap().plain_text())
            }
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(separator)
}

pub async fn event_kinds(
    store: &dyn warroom::store::Store,
    key: warroom::core::IncidentKey,
) -> Vec<warroom::core::EventKind> {
    store
        .timeline(key)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// How many of an incident's timeline events are of `kind` (`EventKind::name`).
pub async fn count_events(
    store: &dyn warroom::store::Store,
    key: warroom::core::IncidentKey,
    kind: &str,
) -> usize {
    event_kinds(store, key)
        .await
        .iter()
        .filter(|e| e.name() == kind)
        .count()
}
