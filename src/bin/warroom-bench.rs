//! `warroom-bench timers`: schedule many timers on PostgreSQL, due over a window, fire them
//! with several scheduler processes, and report firing lateness and duplicates.
//!
//! `cargo run --release --bin warroom-bench -- timers --timers 100000 --spread 60s --schedulers 2`

use anyhow::{Context, bail};
use chrono::{Duration, Utc};
use clap::{Parser, Subcommand};
use std::sync::Arc;
use tokio_postgres::NoTls;
use warroom::app::App;
use warroom::app::clock::SystemClock;
use warroom::app::runner::{Heartbeat, scheduler_loop};
use warroom::store::Store;
use warroom::store::postgres::PostgresStore;

#[derive(Parser)]
#[command(about = "warroom benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Timer firing lateness with several schedulers on one PostgreSQL.
    Timers {
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
        database_url: String,
        /// How many timers.
        #[arg(long, default_value_t = 100_000)]
        timers: i64,
        /// Over how long they come due.
        #[arg(long, default_value = "60s")]
        spread: humantime::Duration,
        /// How many scheduler processes.
        #[arg(long, default_value_t = 2)]
        schedulers: usize,
        /// Keep the benchmark schema afterwards.
        #[arg(long)]
        keep: bool,
    },
    /// (internal) One scheduler process.
    Worker {
        #[arg(long)]
        database_url: String,
        #[arg(long)]
        schema: String,
        #[arg(long)]
        timers: i64,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match cli.command {
            Command::Timers {
                database_url,
                timers,
                spread,
                schedulers,
                keep,
            } => bench(&database_url, timers, *spread, schedulers, keep).await,
            Command::Worker {
                database_url,
                schema,
                timers,
            } => worker(&database_url, &schema, timers).await,
        }
    })
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    tokio::spawn(connection);
    Ok(client)
}

fn policy() -> anyhow::Result<warroom::core::Policy> {
    let mut policy = warroom::config::load(None)?.policy;
    // Only the status reminders fire: one timer per incident.
    policy.escalation.clear();
    for severity in &mut policy.severities {
        severity.respond_within = Duration::days(30);
    }
    Ok(policy)
}

async fn bench(
    url: &str,
    count: i64,
    spread: std::time::Duration,
    schedulers: usize,
    keep: bool,
) -> anyhow::Result<()> {
    if count < 1 || schedulers < 1 {
        bail!("--timers and --schedulers must be at least 1");
    }
    let schema = format!("bench_{}", std::process::id());
    let admin = connect(url).await?;
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await?;
    let store = PostgresStore::connect(url, Some(&schema), 4).await?;
    store.ping().await?;
    let scoped = connect(&format!("{url}?options=-csearch_path%3D{schema}")).await?;

    // Incidents and one status reminder each (timer ids 1..=count), due evenly over the window
    // from `start`.
    let start = Utc::now() + Duration::seconds(5);
    let spread_ms = i64::try_from(spread.as_millis()).unwrap_or(i64::MAX);
    println!("inserting {count} incidents and timers into schema {schema} ...");
    scoped
        .execute(
            "INSERT INTO incidents (number, title, severity, status, platform, channel, commander, declared_by,
                declared_at, last_update_at, escalation_generation, reminder_generation, version)
             SELECT n, 'bench ' || n, 'P2', 'investigating', 'console', 'bench-' || n, 'bench', 'bench',
                    $1, $1, 0, 0, 1 FROM generate_series(1, $2::bigint) AS n",
            &[&start, &count],
        )
        .await?;
    scoped
        .execute(
            "INSERT INTO timers (incident, kind, step, due_at, fence, created_at)
             SELECT n, 'status_reminder', 0, $1::timestamptz + (n - 1) * ($3::bigint * interval '1 millisecond') / $2::bigint, 0, now()
             FROM generate_series(1, $2::bigint) AS n",
            &[&start, &count, &spread_ms],
        )
        .await?;
    scoped
        .execute("SELECT setval('incident_numbers', $1)", &[&count])
        .await?;
    scoped.batch_execute("ANALYZE").await?;

    println!(
        "starting {schedulers} scheduler processes; timers come due from +5s over {}",
        humantime::format_duration(spread)
    );
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for _ in 0..schedulers {
        children.push(
            tokio::process::Command::new(&exe)
                .args([
                    "worker",
                    "--database-url",
                    url,
                    "--schema",
                    &schema,
                    "--timers",
                    &count.to_string(),
                ])
                .spawn()?,
        );
    }
    for mut child in children {
        let status = child.wait().await?;
        if !status.success() {
            bail!("a scheduler process failed: {status}");
        }
    }

    let row = scoped
        .query_one(
            "SELECT count(*),
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM fired_at - due_at)),
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM fired_at - due_at)),
                    max(extract(epoch FROM fired_at - due_at))::float8
             FROM timers WHERE id <= $1 AND state = 'fired'",
            &[&count],
        )
        .await?;
    let fired: i64 = row.get(0);
    let (p50, p99, max): (f64, f64, f64) = (row.get(1), row.get(2), row.get(3));
    let duplicates: i64 = scoped
        .query_one(
            "SELECT count(*) FROM (SELECT incident FROM timeline_events WHERE kind = 'reminder_sent'
             GROUP BY incident HAVING count(*) > 1) AS twice",
            &[],
        )
        .await?
        .get(0);
    let sent: i64 = scoped
        .query_one(
            "SELECT count(*) FROM timeline_events WHERE kind = 'reminder_sent'",
            &[],
        )
        .await?
        .get(0);
    println!(
        "timers: {count}   fired: {fired}   reminders sent: {sent}   fired more than once: {duplicates}"
    );
    println!(
        "firing lateness: p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
        p50 * 1e3,
        p99 * 1e3,
        max * 1e3
    );
    if !keep {
        admin
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await?;
    }
    if fired != count || duplicates != 0 || sent != count {
        bail!(
            "exactly-once violated: {fired} fired, {sent} sent, {duplicates} incidents more than once"
        );
    }
    Ok(())
}

async fn worker(url: &str, schema: &str, count: i64) -> anyhow::Result<()> {
    let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(url, Some(schema), 16).await?);
    let app = Arc::new(App::new(
        store.clone(),
        policy()?,
        Arc::new(SystemClock),
        Duration::seconds(30),
    ));
    store.watch(app.timers_changed.clone(), app.outbox_changed.clone());
    let heartbeat = Arc::new(Heartbeat::default());
    let task = tokio::spawn(scheduler_loop(
        app,
        heartbeat,
        std::time::Duration::from_millis(50),
    ));
    let check = connect(&format!("{url}?options=-csearch_path%3D{schema}")).await?;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let pending: i64 = check
            .query_one(
                "SELECT count(*) FROM timers WHERE id <= $1 AND state = 'pending'",
                &[&count],
            )
            .await?
            .get(0);
        if pending == 0 {
            break;
        }
    }
    task.abort();
    Ok(())
}
