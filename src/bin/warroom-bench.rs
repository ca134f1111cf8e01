//! `warroom-bench`: benchmarks of warroom on PostgreSQL. Each prints a table of its figures
//! and exits non-zero when its correctness check fails.
//!
//! - `timers`: many timers on PostgreSQL, due over a window, fired by several scheduler
//!   processes; firing lateness and duplicates.
//! - `slash`: signed Slack slash commands against a real `warroom serve` (Slack's Web API
//!   stubbed in this process): throughput and latency of a read (`list`) and two writes
//!   (`declare`, `update`), beside a bare axum handler as the floor.
//! - `webhooks`: a storm of signed PagerDuty v3 webhooks, with redeliveries and a mix of event
//!   types, against `warroom serve`; every event recorded once, one incident per PagerDuty
//!   incident.
//! - `memory`: resident memory of `warroom serve`: idle, with many incidents stored, and after
//!   serving `list` and `timeline` requests.
//! - `startup`: time from spawning `warroom serve` to its first ready `/readyz`, on a migrated
//!   and on a fresh schema.
//!
//! The benchmarks of `warroom serve` start the `warroom` binary that sits beside this one, so
//! build both: `cargo build --release --bins`, then for example
//! `target/release/warroom-bench slash --requests 5000 --concurrency 16`.
//!
//! `cargo run --release --bin warroom-bench -- timers --timers 100000 --spread 60s --schedulers 2`

use anyhow::{Context, anyhow, bail, ensure};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Json;
use chrono::{Duration, Utc};
use clap::{Args, Parser, Subcommand};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration as StdDuration, Instant};
use warroom::app::App;
use warroom::app::clock::SystemClock;
use warroom::app::runner::{Heartbeat, scheduler_loop};
use warroom::core::decide::{DeclareRequest, apply, declare};
use warroom::core::{ChannelName, Command as IncidentCommand, Platform, Policy, UserRef};
use warroom::store::postgres::PostgresStore;
use warroom::store::{Change, Store};

/// The PostgreSQL every benchmark uses unless told otherwise: on this machine, over loopback,
/// so without TLS (warroom's own default, `prefer`, would encrypt; the README gives its cost).
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable";

#[derive(Parser)]
#[command(about = "warroom benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where a benchmark of `warroom serve` keeps its data.
#[derive(Args)]
struct Database {
    #[arg(long, default_value = DEFAULT_DATABASE_URL)]
    database_url: String,
    /// Keep the benchmark schema afterwards.
    #[arg(long)]
    keep: bool,
    /// Run ANALYZE on the benchmark schema's tables this often while warroom runs (e.g.
    /// `10s`), standing in for autovacuum on a server that has it off.
    #[arg(long)]
    analyze_every: Option<humantime::Duration>,
}

#[derive(Subcommand)]
enum Command {
    /// Timer firing lateness with several schedulers on one PostgreSQL.
    Timers {
        #[arg(long, default_value = DEFAULT_DATABASE_URL)]
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
    /// Slash-command throughput and latency against `warroom serve` with Slack on.
    Slash {
        #[command(flatten)]
        database: Database,
        /// Requests per path.
        #[arg(long, default_value_t = 5000)]
        requests: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Incidents declared first, in whose channels the `update` path types.
        #[arg(long, default_value_t = 50)]
        incidents: usize,
        /// How long to wait, after each write path, for the outbox to drain before the next.
        #[arg(long, default_value = "300s")]
        drain_within: humantime::Duration,
    },
    /// A storm of signed PagerDuty webhooks against `warroom serve`.
    Webhooks {
        #[command(flatten)]
        database: Database,
        /// Webhook deliveries in all, redeliveries included.
        #[arg(long, default_value_t = 10_000)]
        deliveries: usize,
        /// How many PagerDuty incidents they are about.
        #[arg(long, default_value_t = 100)]
        incidents: usize,
        /// Deliveries in flight at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Resident memory of `warroom serve`: idle, with many incidents stored, after requests.
    Memory {
        #[command(flatten)]
        database: Database,
        /// Incidents stored.
        #[arg(long, default_value_t = 10_000)]
        incidents: usize,
        /// How many of them stay open (the others are resolved).
        #[arg(long, default_value_t = 1_000)]
        open: usize,
        /// `list` requests, and as many `timeline` requests.
        #[arg(long, default_value_t = 300)]
        requests: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Time from spawning `warroom serve` to its first ready `/readyz`.
    Startup {
        #[command(flatten)]
        database: Database,
        /// Starts on each kind of schema (migrated beforehand, fresh).
        #[arg(long, default_value_t = 10)]
        runs: usize,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    warroom::tls::init();
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
            Command::Slash {
                database,
                requests,
                concurrency,
                incidents,
                drain_within,
            } => slash(database, requests, concurrency, incidents, *drain_within).await,
            Command::Webhooks {
                database,
                deliveries,
                incidents,
                concurrency,
            } => webhooks(database, deliveries, incidents, concurrency).await,
            Command::Memory {
                database,
                incidents,
                open,
                requests,
                concurrency,
            } => memory(database, incidents, open, requests, concurrency).await,
            Command::Startup { database, runs } => startup(database, runs).await,
        }
    })
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (config, tls) = database_config(url)?;
    let (client, connection) = config
        .connect(tls)
        .await
        .context("connecting to PostgreSQL")?;
    tokio::spawn(connection);
    Ok(client)
}

/// `url` with `schema` as its connections' search path.
fn with_search_path(url: &str, schema: &str) -> String {
    let joiner = if url.contains('?') { '&' } else { '?' };
    format!("{url}{joiner}options=-csearch_path%3D{schema}")
}

/// The connection settings and TLS connector of a database URL, with its `sslmode` and
/// `sslrootcert` read as warroom reads them.
fn database_config(
    url: &str,
) -> anyhow::Result<(
    tokio_postgres::Config,
    tokio_postgres_rustls::MakeRustlsConnect,
)> {
    warroom::store::postgres_tls::parse(url)
        .and_then(|tls| tls.config())
        .map_err(anyhow::Error::msg)
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
    let scoped = connect(&with_search_path(url, &schema)).await?;

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
    let check = connect(&with_search_path(url, schema)).await?;
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

// ---------------------------------------------------------------------------------------
// Shared by the benchmarks of `warroom serve`

/// The `warroom` binary beside this one (the same build).
fn warroom_binary() -> anyhow::Result<PathBuf> {
    let path = std::env::current_exe()?.with_file_name("warroom");
    ensure!(
        path.exists(),
        "{} not found: build it with `cargo build --release --bins`",
        path.display()
    );
    Ok(path)
}

/// An HTTP client for the local servers: keep-alive with up to `connections` idle
/// connections, and no proxy (one set in the environment would otherwise carry the
/// benchmark's requests).
fn local_client(connections: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(connections)
        .timeout(StdDuration::from_secs(30))
        .build()?)
}

/// Where the `warroom serve` children of a benchmark write their logs.
fn log_path(what: &str) -> PathBuf {
    std::env::temp_dir().join(format!("warroom-bench-{what}-{}.log", std::process::id()))
}

/// A `warroom serve` child listening on a free port, its log appended to a file. Killed when
/// dropped.
struct Serve {
    child: tokio::process::Child,
    pid: u32,
    base: String,
    log: PathBuf,
}

impl Serve {
    /// Spawn `warroom serve` with `env`, listening on a free port.
    fn spawn(env: &[(String, String)], log: &Path) -> anyhow::Result<Serve> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let child = tokio::process::Command::new(warroom_binary()?)
            .arg("serve")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("WARROOM_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .context("starting warroom serve")?;
        let pid = child.id().context("warroom serve has no process id")?;
        Ok(Serve {
            child,
            pid,
            base: format!("http://127.0.0.1:{port}"),
            log: log.to_path_buf(),
        })
    }

    /// Spawn `warroom serve` and wait until it is ready.
    async fn start(env: &[(String, String)], log: &Path) -> anyhow::Result<Serve> {
        let mut serve = Serve::spawn(env, log)?;
        serve
            .wait_ready(&local_client(1)?, StdDuration::from_millis(20))
            .await?;
        println!(
            "warroom serve (pid {}) is ready at {}; its log: {}",
            serve.pid,
            serve.base,
            log.display()
        );
        Ok(serve)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Poll `/readyz` every `poll` until it answers 200; give up after a minute or if the
    /// process exits.
    async fn wait_ready(
        &mut self,
        client: &reqwest::Client,
        poll: StdDuration,
    ) -> anyhow::Result<()> {
        let url = self.url("/readyz");
        let deadline = Instant::now() + StdDuration::from_secs(60);
        loop {
            if let Ok(response) = client
                .get(&url)
                .timeout(StdDuration::from_secs(1))
                .send()
                .await
                && response.status() == reqwest::StatusCode::OK
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "warroom serve exited ({status}) before it was ready; see {}",
                    self.log.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "warroom serve was not ready within a minute; see {}",
                    self.log.display()
                );
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Resident memory now and at its peak (`VmRSS`, `VmHWM` of `/proc/<pid>/status`), MiB.
    fn memory(&self) -> anyhow::Result<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .context("reading the process status of warroom serve")?;
        let field = |name: &str| -> anyhow::Result<f64> {
            let kib: f64 = status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .with_context(|| format!("no {name} in /proc/{}/status", self.pid))?;
            Ok(kib / 1024.0)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Kill the process (SIGKILL) and reap it.
    async fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("stopping warroom serve")
    }
}

/// A schema of its own for one run (`bench_<what>_<pid>_<n>`), created and migrated by
/// warroom itself; dropped by `finish` unless kept.
struct BenchSchema {
    url: String,
    name: String,
    admin: tokio_postgres::Client,
    analyze_every: Option<StdDuration>,
}

/// Runs ANALYZE on a schema's tables every so often; stops when dropped.
struct Analyzer(tokio::task::JoinHandle<()>);

impl Drop for Analyzer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl BenchSchema {
    async fn new(db: &Database, what: &str) -> anyhow::Result<BenchSchema> {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "bench_{what}_{}_{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        );
        Ok(BenchSchema {
            url: db.database_url.clone(),
            name,
            admin: connect(&db.database_url).await?,
            analyze_every: db.analyze_every.map(Into::into),
        })
    }

    /// With `--analyze-every`, ANALYZE warroom's tables that often from now on (they must
    /// exist: call this once warroom has migrated the schema), as autovacuum would.
    async fn start_analyzer(&self) -> anyhow::Result<Option<Analyzer>> {
        let Some(every) = self.analyze_every else {
            return Ok(None);
        };
        let client = self.client().await?;
        println!(
            "analyzing the schema's tables every {} (standing in for autovacuum)",
            humantime::format_duration(every)
        );
        Ok(Some(Analyzer(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(error) = client
                    .batch_execute(
                        "ANALYZE incidents, timeline_events, timers, outbox, inbound_events, chat_refs",
                    )
                    .await
                {
                    eprintln!("ANALYZE failed: {error}");
                }
            }
        }))))
    }

    /// The environment of a `warroom serve` on this schema.
    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("WARROOM_DATABASE__URL".into(), self.url.clone()),
            ("WARROOM_DATABASE__SCHEMA".into(), self.name.clone()),
        ]
    }

    /// A connection whose search path is this schema.
    async fn client(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (mut config, tls) = database_config(&self.url)?;
        config.options(format!("-c search_path={}", self.name));
        let (client, connection) = config
            .connect(tls)
            .await
            .context("connecting to PostgreSQL")?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// warroom's store on this schema (creating and migrating it if needed).
    async fn store(&self, pool_size: usize) -> anyhow::Result<PostgresStore> {
        Ok(PostgresStore::connect(&self.url, Some(&self.name), pool_size).await?)
    }

    /// Drop the schema, unless it is to be kept.
    async fn finish(self, keep: bool) -> anyhow::Result<()> {
        if keep {
            println!("schema {} kept", self.name);
            return Ok(());
        }
        self.admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
            .await
            .with_context(|| format!("dropping schema {}", self.name))
    }
}

/// The load average now (1, 5 and 15 minutes).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

/// Linux reports CPU times in `/proc` in ticks of 1/100 s (USER_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time used so far, in seconds: by one process (user and system), by this process, and
/// by the whole machine (all cores, busy).
#[derive(Clone, Copy)]
struct CpuTimes {
    serve: f64,
    bench: f64,
    machine: f64,
    at: Instant,
}

/// The user and system time of a process (`/proc/<pid>/stat`, fields 14 and 15), seconds.
fn process_cpu(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((ticks(11) + ticks(12)) / TICKS_PER_SECOND)
}

fn cpu_times(serve_pid: u32) -> anyhow::Result<CpuTimes> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let all: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …: busy is all but idle and iowait.
    let busy = all.iter().sum::<f64>() - all.get(3).unwrap_or(&0.0) - all.get(4).unwrap_or(&0.0);
    Ok(CpuTimes {
        serve: process_cpu(&serve_pid.to_string())?,
        bench: process_cpu("self")?,
        machine: busy / TICKS_PER_SECOND,
        at: Instant::now(),
    })
}

/// Where the machine's CPU went between two readings, as shares of all its cores.
#[derive(Clone, Copy)]
struct CpuShare {
    serve: f64,
    bench: f64,
    /// Everything else busy: PostgreSQL, mostly (and any other work on the machine).
    rest: f64,
    idle: f64,
}

fn cpu_share(before: CpuTimes, after: CpuTimes) -> CpuShare {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let capacity = (after.at - before.at).as_secs_f64() * cores;
    let serve = (after.serve - before.serve) / capacity;
    let bench = (after.bench - before.bench) / capacity;
    let busy = (after.machine - before.machine) / capacity;
    CpuShare {
        serve,
        bench,
        rest: (busy - serve - bench).max(0.0),
        idle: (1.0 - busy).max(0.0),
    }
}

/// Print the machine the figures come from, and the load on it before the run.
async fn print_machine(admin: &tokio_postgres::Client) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| {
            line.strip_prefix("model name")
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let postgres: String = admin.query_one("SHOW server_version", &[]).await?.get(0);
    let autovacuum: String = admin.query_one("SHOW autovacuum", &[]).await?.get(0);
    println!(
        "machine: {cores} cores ({model}), {memory_gib:.1} GiB, PostgreSQL {postgres} on the same machine \
         (autovacuum {autovacuum}); load average {} before the run",
        load_average()
    );
    Ok(())
}

/// How one request went.
#[derive(Clone, Debug)]
enum Outcome {
    Ok,
    /// Answered "working on it": the answer itself followed through `response_url`.
    Late,
    Error(String),
}

/// One request: how long until its answer was read, and how it went.
struct Sample {
    latency: StdDuration,
    outcome: Outcome,
}

/// Run `request(0)` … `request(count - 1)` with `concurrency` workers, each taking the next
/// index as soon as its previous request is answered. Every result, and the elapsed time.
async fn drive<T, F, Fut>(
    count: usize,
    concurrency: usize,
    request: F,
) -> anyhow::Result<(Vec<T>, StdDuration)>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (request, next) = (request.clone(), next.clone());
            tokio::spawn(async move {
                let mut results = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return results;
                    }
                    results.push(request(i).await);
                }
            })
        })
        .collect();
    let mut results = Vec::with_capacity(count);
    for worker in workers {
        results.extend(worker.await.context("a load worker panicked")?);
    }
    Ok((results, started.elapsed()))
}

/// p50, p99 and max of a set of latencies (nearest rank).
#[derive(Clone, Copy, Default)]
struct Latency {
    p50: StdDuration,
    p99: StdDuration,
    max: StdDuration,
}

fn latency(mut samples: Vec<StdDuration>) -> Latency {
    if samples.is_empty() {
        return Latency::default();
    }
    samples.sort_unstable();
    let rank =
        |p: f64| samples[((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1];
    Latency {
        p50: rank(0.50),
        p99: rank(0.99),
        max: samples[samples.len() - 1],
    }
}

fn ms(duration: StdDuration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1e3)
}

/// One row of a table of request paths.
struct PathResult {
    path: String,
    requests: usize,
    errors: usize,
    late: usize,
    per_second: f64,
    latency: Latency,
    first_error: Option<String>,
    /// Where the CPU went while the path ran (when measured), and warroom's CPU time per
    /// request.
    cpu: Option<(CpuShare, StdDuration)>,
}

impl PathResult {
    fn new(path: &str, samples: &[Sample], elapsed: StdDuration) -> PathResult {
        let errors: Vec<&String> = samples
            .iter()
            .filter_map(|s| match &s.outcome {
                Outcome::Error(e) => Some(e),
                _ => None,
            })
            .collect();
        PathResult {
            path: path.to_string(),
            requests: samples.len(),
            errors: errors.len(),
            late: samples
                .iter()
                .filter(|s| matches!(s.outcome, Outcome::Late))
                .count(),
            per_second: samples.len() as f64 / elapsed.as_secs_f64(),
            latency: latency(samples.iter().map(|s| s.latency).collect()),
            first_error: errors.first().map(|e| e.to_string()),
            cpu: None,
        }
    }

    /// With the CPU readings taken before and after the path (kept only when the path ran
    /// for a second or more: `/proc` counts CPU time in 10 ms ticks).
    fn with_cpu(mut self, before: CpuTimes, after: CpuTimes) -> PathResult {
        if after.at - before.at < StdDuration::from_secs(1) {
            return self;
        }
        let per_request = (after.serve - before.serve) / self.requests.max(1) as f64;
        self.cpu = Some((
            cpu_share(before, after),
            StdDuration::from_secs_f64(per_request.max(0.0)),
        ));
        self
    }

    /// Requests that did what they asked (answered in time or later).
    fn succeeded(&self) -> usize {
        self.requests - self.errors
    }
}

fn print_path_header() {
    println!(
        "{:<28} {:>8} {:>7} {:>5} {:>9} {:>10} {:>10} {:>10}",
        "path", "requests", "errors", "late", "req/s", "p50", "p99", "max"
    );
}

fn print_path(row: &PathResult) {
    println!(
        "{:<28} {:>8} {:>7} {:>5} {:>9.1} {:>10} {:>10} {:>10}",
        row.path,
        row.requests,
        row.errors,
        row.late,
        row.per_second,
        ms(row.latency.p50),
        ms(row.latency.p99),
        ms(row.latency.max)
    );
}

fn print_paths(rows: &[PathResult]) {
    print_path_header();
    for row in rows {
        print_path(row);
    }
    if rows.iter().any(|row| row.cpu.is_some()) {
        println!(
            "{:<28} {:>14} {:>12} {:>12} {:>16} {:>8}",
            "CPU, share of all cores",
            "warroom serve",
            "per request",
            "bench",
            "rest (PostgreSQL)",
            "idle"
        );
        let percent = |share: f64| format!("{:.0} %", share * 100.0);
        for row in rows {
            if let Some((share, per_request)) = &row.cpu {
                println!(
                    "{:<28} {:>14} {:>12} {:>12} {:>16} {:>8}",
                    row.path,
                    percent(share.serve),
                    ms(*per_request),
                    percent(share.bench),
                    percent(share.rest),
                    percent(share.idle)
                );
            }
        }
    }
    for row in rows {
        if let Some(error) = &row.first_error {
            println!("first error of {}: {error}", row.path);
        }
    }
}

/// Say whether a path's p99 meets its goal.
fn goal(row: &PathResult, within: StdDuration) -> bool {
    let met = row.latency.p99 < within;
    println!(
        "goal p99 < {} for {}: {} (p99 {})",
        ms(within),
        row.path,
        if met { "met" } else { "MISSED" },
        ms(row.latency.p99)
    );
    met
}

/// How the outbox drained after a burst of writes.
enum Drain {
    /// Nothing left pending after this long.
    Done(StdDuration),
    /// Still this many rows pending when the wait gave up.
    Stuck { pending: i64, after: StdDuration },
}

impl std::fmt::Display for Drain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drain::Done(after) => write!(f, "drained in {:.1} s", after.as_secs_f64()),
            Drain::Stuck { pending, after } => write!(
                f,
                "NOT drained: {pending} rows still pending after {:.0} s",
                after.as_secs_f64()
            ),
        }
    }
}

/// Wait until no outbox row is pending, at most `within`.
async fn wait_drained(db: &tokio_postgres::Client, within: StdDuration) -> anyhow::Result<Drain> {
    let started = Instant::now();
    loop {
        let pending: i64 = db
            .query_one("SELECT count(*) FROM outbox WHERE state = 'pending'", &[])
            .await?
            .get(0);
        if pending == 0 {
            return Ok(Drain::Done(started.elapsed()));
        }
        if started.elapsed() > within {
            return Ok(Drain::Stuck {
                pending,
                after: started.elapsed(),
            });
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
}

async fn count(db: &tokio_postgres::Client, sql: &str) -> anyhow::Result<i64> {
    Ok(db.query_one(sql, &[]).await?.get(0))
}

// ---------------------------------------------------------------------------------------
// A stand-in for Slack's Web API, and the bare handler

/// The signing secret of the benchmark's Slack app.
const SIGNING_SECRET: &str = "bench-signing-secret";
/// warroom's own Slack user, as `auth.test` reports it.
const STUB_BOT_USER: &str = "UBENCHBOT";

/// Slack over HTTP with its Web API at the stub, announcements to a stub channel. No
/// PagerDuty routing key is configured, so nobody is paged.
fn slack_env(stub_url: &str) -> Vec<(String, String)> {
    [
        ("WARROOM_SLACK__SIGNING_SECRET", SIGNING_SECRET.to_string()),
        ("WARROOM_SLACK__BOT_TOKEN", "xoxb-bench".to_string()),
        ("WARROOM_SLACK__API_URL", format!("{stub_url}/api")),
        (
            "WARROOM_SLACK__INCIDENTS_CHANNEL",
            "CBENCHINCIDENTS".to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// What the stub counts.
#[derive(Default)]
struct Stub {
    channels: AtomicU64,
    messages: AtomicU64,
    calls: AtomicU64,
}

/// Serve, on a free port, a stub of Slack's Web API (`/api/<method>`) that answers every
/// method `ok` (so the outbox drains and adds no retries), `response_url`s
/// (`/response/<id>`), and the bare handler (`/bare`). Its base URL.
async fn start_stub() -> anyhow::Result<(String, Arc<Stub>)> {
    let stub = Arc::new(Stub::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let router = axum::Router::new()
        .route("/bare", axum::routing::post(bare))
        .route("/response/{id}", axum::routing::post(|| async { "ok" }))
        .fallback(slack_method)
        .with_state(stub.clone());
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            eprintln!("the Slack stub stopped: {error}");
        }
    });
    Ok((url, stub))
}

/// The floor: an axum handler that reads the form body and answers a small JSON; no
/// signature check, no store, no templates.
async fn bare(body: Bytes) -> Json<Value> {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    Json(json!({
        "response_type": "ephemeral",
        "text": format!("ok: {}", form.get("text").map_or("", String::as_str)),
    }))
}

/// A call's parameters: the query string, then a JSON or form body over it.
fn parameters(uri: &Uri, body: &[u8]) -> Map<String, Value> {
    let pairs = |text: &[u8]| {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(text)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
    };
    let mut params: Map<String, Value> = pairs(uri.query().unwrap_or("").as_bytes()).collect();
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => params.extend(fields),
        _ => params.extend(pairs(body)),
    }
    params
}

/// A public channel as `conversations.*` return it (the fields slack-morphism reads).
fn channel_json(id: &str, name: &str) -> Value {
    json!({
        "id": id, "name": name, "name_normalized": name, "created": 1_700_000_000,
        "creator": STUB_BOT_USER, "is_channel": true, "is_group": false, "is_im": false,
        "is_mpim": false, "is_private": false, "is_archived": false, "is_general": false,
        "is_shared": false, "is_ext_shared": false, "is_org_shared": false, "is_member": true,
        "unlinked": 0, "topic": { "value": "", "creator": "", "last_set": 0 },
        "purpose": { "value": "", "creator": "", "last_set": 0 }, "previous_names": [],
        "num_members": 2,
    })
}

/// Any Web API method: a plausible `ok` answer in the shape slack-morphism reads. Channels
/// get fresh ids, messages fresh timestamps.
async fn slack_method(State(stub): State<Arc<Stub>>, uri: Uri, body: Bytes) -> Json<Value> {
    stub.calls.fetch_add(1, Ordering::Relaxed);
    // slack-morphism joins the API URL and the method with a `/`.
    let path = uri.path().trim_start_matches('/');
    let method = path
        .strip_prefix("api")
        .unwrap_or(path)
        .trim_start_matches('/');
    let params = parameters(&uri, &body);
    let param = |key: &str| {
        params
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let next_ts = || {
        let n = stub.messages.fetch_add(1, Ordering::Relaxed) + 1;
        format!("1700000000.{n:06}")
    };
    let mut answer = match method {
        "auth.test" => json!({
            "url": "https://warroom-bench.slack.com/", "team": "Bench", "user": "warroom",
            "team_id": "TBENCH", "user_id": STUB_BOT_USER, "bot_id": "BBENCH",
        }),
        "conversations.create" => {
            let n = stub.channels.fetch_add(1, Ordering::Relaxed) + 1;
            json!({ "channel": channel_json(&format!("CB{n:08}"), &param("name")) })
        }
        "conversations.invite" | "conversations.info" | "conversations.join" => {
            json!({ "channel": channel_json(&param("channel"), "bench") })
        }
        "conversations.setTopic" => json!({ "topic": param("topic") }),
        "conversations.list" => {
            json!({ "channels": [], "response_metadata": { "next_cursor": "" } })
        }
        "chat.postMessage" => {
            let ts = next_ts();
            json!({
                "channel": param("channel"), "ts": ts,
                "message": { "type": "message", "text": param("text"), "user": STUB_BOT_USER,
                             "bot_id": "BBENCH", "ts": ts, "team": "TBENCH" },
            })
        }
        "chat.update" => json!({
            "channel": param("channel"), "ts": param("ts"), "text": param("text"),
            "message": { "text": param("text"), "user": STUB_BOT_USER, "bot_id": "BBENCH" },
        }),
        "chat.postEphemeral" => json!({ "message_ts": next_ts() }),
        "usergroups.users.list" => json!({ "users": [] }),
        // pins.add and anything else.
        _ => json!({}),
    };
    answer["ok"] = json!(true);
    Json(answer)
}

/// Sends signed `/incident` commands as Slack does.
struct SlashClient {
    http: reqwest::Client,
    /// Where the commands go (`/slack/commands`, or the bare handler).
    url: String,
    response_url: String,
}

impl SlashClient {
    /// `/incident <text>` typed by `user` in `channel`; the answer must contain `expect`.
    /// Signing happens before the clock starts.
    async fn command(&self, user: &str, channel: &str, text: &str, expect: &str) -> Sample {
        // The fields Slack sends (as in tests/integration/slack.rs), with a trigger id of
        // its own: warroom acts on a signed request once.
        static TRIGGERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let trigger = TRIGGERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let trigger_id = format!("{trigger}.1.{trigger:032x}");
        let body = serde_urlencoded::to_string([
            ("token", "deprecated-verification-token"),
            ("team_id", "TBENCH"),
            ("team_domain", "bench"),
            ("channel_id", channel),
            ("channel_name", "whatever"),
            ("user_id", user),
            ("user_name", "someone"),
            ("command", "/incident"),
            ("text", text),
            ("api_app_id", "ABENCH"),
            ("response_url", &self.response_url),
            ("trigger_id", &trigger_id),
        ])
        .expect("form fields encode");
        let timestamp = Utc::now().timestamp().to_string();
        let signature = warroom::chat::slack::sign(SIGNING_SECRET, &timestamp, body.as_bytes());
        let started = Instant::now();
        let answer = async {
            let response = self
                .http
                .post(&self.url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-slack-request-timestamp", &timestamp)
                .header("x-slack-signature", &signature)
                .body(body)
                .send()
                .await?;
            let status = response.status();
            Ok::<_, reqwest::Error>((status, response.text().await?))
        }
        .await;
        Sample {
            latency: started.elapsed(),
            outcome: judge(answer, expect),
        }
    }
}

/// Whether the answer to a slash command is the one expected.
fn judge(answer: Result<(reqwest::StatusCode, String), reqwest::Error>, expect: &str) -> Outcome {
    let (status, body) = match answer {
        Ok(answer) => answer,
        Err(error) => return Outcome::Error(format!("no answer: {error}")),
    };
    let cut = |text: &str| text.chars().take(200).collect::<String>();
    if !status.is_success() {
        return Outcome::Error(format!("HTTP {status}: {}", cut(&body)));
    }
    let text = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["text"].as_str().map(str::to_string))
        .unwrap_or_default();
    if text.starts_with('⏳') {
        Outcome::Late
    } else if text.contains(expect) {
        Outcome::Ok
    } else {
        Outcome::Error(format!("unexpected answer: {}", cut(&text)))
    }
}

/// A Slack user id for request `i` (sixteen people take turns).
fn slack_user(i: usize) -> String {
    format!("UBENCH{:02}", i % 16)
}

/// The channel `declare`, `list` and the bare handler are typed in (no incident's).
const GENERAL: &str = "CBENCHGENERAL";

// ---------------------------------------------------------------------------------------
// slash

async fn slash(
    db: Database,
    requests: usize,
    concurrency: usize,
    incidents: usize,
    drain_within: StdDuration,
) -> anyhow::Result<()> {
    ensure!(
        requests >= 1 && concurrency >= 1 && incidents >= 1,
        "--requests, --concurrency and --incidents must be at least 1"
    );
    let schema = BenchSchema::new(&db, "slash").await?;
    print_machine(&schema.admin).await?;
    let result = slash_run(&schema, requests, concurrency, incidents, drain_within).await;
    schema.finish(db.keep).await?;
    result
}

async fn slash_run(
    schema: &BenchSchema,
    requests: usize,
    concurrency: usize,
    incidents: usize,
    drain_within: StdDuration,
) -> anyhow::Result<()> {
    let (stub_url, stub) = start_stub().await?;
    let mut env = schema.env();
    env.extend(slack_env(&stub_url));
    let serve = Serve::start(&env, &log_path("slash")).await?;
    let _analyzer = schema.start_analyzer().await?;
    let db = schema.client().await?;
    let http = local_client(concurrency)?;
    let client = Arc::new(SlashClient {
        http: http.clone(),
        url: serve.url("/slack/commands"),
        response_url: format!("{stub_url}/response/bench"),
    });
    let send = |text: fn(usize) -> String, channels: Arc<Vec<String>>, expect: &'static str| {
        let client = client.clone();
        move |i: usize| {
            let (client, channels) = (client.clone(), channels.clone());
            async move {
                let channel = &channels[i % channels.len()];
                client
                    .command(&slack_user(i), channel, &text(i), expect)
                    .await
            }
        }
    };
    let general = Arc::new(vec![GENERAL.to_string()]);

    // The incidents the `update` path types in: declared through Slack like any other, their
    // channels created by warroom's Slack sink against the stub; their ids read back from
    // `chat_refs` (`channel:<name>` → id).
    println!("declaring {incidents} incidents for the update path ...");
    let (setup, _) = drive(
        incidents,
        concurrency,
        send(
            |i| format!("declare Bench target incident {i}"),
            general.clone(),
            "Declared",
        ),
    )
    .await?;
    if let Some(error) = setup.iter().find_map(|s| match &s.outcome {
        Outcome::Error(e) => Some(e),
        _ => None,
    }) {
        bail!("declaring the incidents of the update path failed: {error}");
    }
    if let stuck @ Drain::Stuck { .. } = wait_drained(&db, drain_within).await? {
        bail!("the outbox of the update path's incidents was {stuck}");
    }
    let channels: Vec<String> = db
        .query(
            "SELECT value FROM chat_refs WHERE platform = 'slack' AND key LIKE 'channel:%' ORDER BY key",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    ensure!(
        channels.len() == incidents,
        "{} incident channels were created, not {incidents}",
        channels.len()
    );
    let channels = Arc::new(channels);

    // Warm-up, not measured: the client's connections, warroom's pool and statement caches.
    let list = |_: usize| "list".to_string();
    drive(
        concurrency * 8,
        concurrency,
        send(list, general.clone(), "Open incidents"),
    )
    .await?;

    println!(
        "{requests} requests per path, {concurrency} at a time, over keep-alive connections ..."
    );
    println!();
    print_path_header();
    let mut rows = Vec::new();
    let mut measure = |path: &str, samples: Vec<Sample>, elapsed, before| -> anyhow::Result<()> {
        let row = PathResult::new(path, &samples, elapsed).with_cpu(before, cpu_times(serve.pid)?);
        print_path(&row);
        rows.push(row);
        Ok(())
    };
    let before = cpu_times(serve.pid)?;
    let (samples, elapsed) = drive(
        requests,
        concurrency,
        send(list, general.clone(), "Open incidents"),
    )
    .await?;
    measure("read: list", samples, elapsed, before)?;

    let before = cpu_times(serve.pid)?;
    let (samples, elapsed) = drive(
        requests,
        concurrency,
        send(
            |i| format!("declare Bench slash incident {i}"),
            general.clone(),
            "Declared",
        ),
    )
    .await?;
    measure("write: declare <title>", samples, elapsed, before)?;
    // The channels, alerts, topics and announcements of the new incidents go out after the
    // answers; let them finish before the next path (if they do within `drain_within`;
    // otherwise the next paths run beside what is left).
    let after_declare = wait_drained(&db, drain_within).await?;
    println!("outbox after the declare path: {after_declare}");

    let before = cpu_times(serve.pid)?;
    let (samples, elapsed) = drive(
        requests,
        concurrency,
        send(
            |i| format!("update bench status update {i}"),
            channels.clone(),
            "✓",
        ),
    )
    .await?;
    measure("write: update <text>", samples, elapsed, before)?;
    let after_update = wait_drained(&db, drain_within).await?;
    println!("outbox after the update path: {after_update}");

    // The floor: the same client, signed bodies and concurrency against a bare axum handler
    // in this process.
    let bare = Arc::new(SlashClient {
        http: http.clone(),
        url: format!("{stub_url}/bare"),
        response_url: format!("{stub_url}/response/bench"),
    });
    let bare_send = move |i: usize| {
        let bare = bare.clone();
        async move {
            bare.command(&slack_user(i), GENERAL, "list", "ok: list")
                .await
        }
    };
    drive(concurrency * 8, concurrency, bare_send.clone()).await?;
    let before = cpu_times(serve.pid)?;
    let (samples, elapsed) = drive(requests, concurrency, bare_send).await?;
    measure("floor: bare axum handler", samples, elapsed, before)?;

    println!();
    print_paths(&rows);
    println!(
        "outbox: {after_declare} after the declare path, {after_update} after the update path; \
         the stub answered {} Slack Web API calls; load average {} after the run",
        stub.calls.load(Ordering::Relaxed),
        load_average()
    );
    goal(&rows[0], StdDuration::from_millis(10));
    goal(&rows[1], StdDuration::from_millis(25));
    goal(&rows[2], StdDuration::from_millis(25));

    // Correctness: every answer as expected, and the store holds what the answers said.
    let stored_incidents = count(&db, "SELECT count(*) FROM incidents").await?;
    let stored_updates = count(
        &db,
        "SELECT count(*) FROM timeline_events WHERE kind = 'status_update'",
    )
    .await?;
    let failed_rows = count(&db, "SELECT count(*) FROM outbox WHERE state = 'failed'").await?;
    let expected_incidents = (incidents + rows[1].succeeded()) as i64;
    let expected_updates = rows[2].succeeded() as i64;
    println!(
        "store: {stored_incidents} incidents (expected {expected_incidents}), {stored_updates} status \
         updates (expected {expected_updates}), {failed_rows} outbox rows given up"
    );
    serve.stop().await?;
    let errors: usize = rows.iter().map(|r| r.errors).sum();
    let stuck = [&after_declare, &after_update]
        .iter()
        .any(|drain| matches!(drain, Drain::Stuck { .. }));
    if errors > 0
        || stored_incidents != expected_incidents
        || stored_updates != expected_updates
        || failed_rows != 0
        || stuck
    {
        bail!("the slash benchmark's correctness check failed (see above)");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// webhooks

/// The secret of the benchmark's webhook subscription.
const WEBHOOK_SECRET: &str = "bench-webhook-secret";

/// Incident events PagerDuty sends between `triggered` and `resolved`, with how often each
/// appears in the storm. warroom acts on `acknowledged` and `priority_updated` (and records
/// their ids); it answers the others 200 and records nothing.
const MIDDLE_EVENTS: [(&str, u64); 9] = [
    ("incident.annotated", 30),
    ("incident.acknowledged", 15),
    ("incident.priority_updated", 15),
    ("incident.unacknowledged", 8),
    ("incident.escalated", 8),
    ("incident.reassigned", 8),
    ("incident.responder.added", 6),
    ("incident.status_update_published", 6),
    ("incident.delegated", 4),
];

/// A small deterministic generator (xorshift64*), so that every run sends the same storm.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One webhook delivery (several deliveries may carry the same event).
struct Delivery {
    event_id: String,
    event_type: &'static str,
    body: String,
}

/// A v3 webhook body: PagerDuty's envelope around an incident (or, for `annotated`, a note
/// on it).
fn webhook_body(event_id: &str, event_type: &str, incident: usize, sequence: usize) -> String {
    let id = format!("PBENCH{incident:04}");
    let priority = (event_type == "incident.priority_updated").then(|| {
        let name = if sequence % 2 == 0 { "P1" } else { "P2" };
        json!({ "id": format!("PPRIO{name}"), "type": "priority_reference", "summary": name })
    });
    let status = match event_type {
        "incident.acknowledged" => "acknowledged",
        "incident.resolved" => "resolved",
        _ => "triggered",
    };
    let data = if event_type == "incident.annotated" {
        json!({
            "id": format!("NBENCH{incident:04}{sequence:04}"), "type": "incident_note",
            "content": "Bench note: looking at the dashboards.",
            "incident": { "id": id, "type": "incident_reference" },
        })
    } else {
        json!({
            "id": id, "type": "incident", "number": incident + 1, "status": status,
            "self": format!("https://api.pagerduty.com/incidents/{id}"),
            "html_url": format!("https://bench.pagerduty.com/incidents/{id}"),
            "incident_key": format!("bench-{id}"),
            "title": format!("Bench PagerDuty incident {incident}: checkout latency"),
            "urgency": "high", "priority": priority,
            "service": { "id": "PSERVICE", "type": "service_reference", "summary": "Checkout" },
        })
    };
    json!({ "event": {
        "id": event_id, "event_type": event_type, "resource_type": "incident",
        "occurred_at": Utc::now().to_rfc3339(),
        "agent": { "id": "PUSERBENCH", "type": "user_reference", "summary": "Bench Responder" },
        "client": null, "data": data,
    }})
    .to_string()
}

/// The storm: for each PagerDuty incident, `triggered`, a mix of other events and
/// `resolved` last, one delivery in ten being a redelivery of an event sent before. Every
/// `triggered` is sent twice back to back (the two race); after those, incidents take turns,
/// each one's events in order.
fn webhook_storm(incidents: usize, per_incident: usize) -> Vec<Arc<Delivery>> {
    let mut random = Xorshift(0x5EED_CAFE_F00D_BEEF);
    let weights: u64 = MIDDLE_EVENTS.iter().map(|(_, w)| w).sum();
    let redeliveries = (per_incident / 10).max(1);
    let distinct = per_incident - redeliveries;
    let mut first = Vec::new();
    let mut queues: Vec<Vec<Arc<Delivery>>> = Vec::new();
    for incident in 0..incidents {
        let events: Vec<Arc<Delivery>> = (0..distinct)
            .map(|sequence| {
                let event_type = if sequence == 0 {
                    "incident.triggered"
                } else if sequence == distinct - 1 {
                    "incident.resolved"
                } else {
                    let mut pick = random.next() % weights;
                    MIDDLE_EVENTS
                        .iter()
                        .find(|(_, weight)| {
                            let hit = pick < *weight;
                            pick = pick.saturating_sub(*weight);
                            hit
                        })
                        .map_or("incident.annotated", |(name, _)| *name)
                };
                let event_id = format!("EBENCH{incident:04}{sequence:04}");
                let body = webhook_body(&event_id, event_type, incident, sequence);
                Arc::new(Delivery {
                    event_id,
                    event_type,
                    body,
                })
            })
            .collect();
        first.push(events[0].clone());
        first.push(events[0].clone());
        // The other redeliveries: an event sent again some time after its first delivery.
        let mut queue = events[1..].to_vec();
        for _ in 1..redeliveries {
            let original = random.below(queue.len());
            let again = original + 1 + random.below(queue.len() - original);
            let copy = queue[original].clone();
            queue.insert(again, copy);
        }
        queues.push(queue);
    }
    let mut storm = first;
    let longest = queues.iter().map(Vec::len).max().unwrap_or(0);
    for turn in 0..longest {
        storm.extend(queues.iter().filter_map(|queue| queue.get(turn).cloned()));
    }
    storm
}

/// How one delivery went, counting PagerDuty-style retries.
struct WebhookResult {
    /// Each attempt's time to answer.
    latencies: Vec<StdDuration>,
    /// Attempts answered with anything but a 2xx, and why.
    refused: Vec<String>,
    /// warroom's word for the accepted attempt (`applied`, `ignored`, `duplicate`); `None`
    /// if no attempt was accepted.
    answer: Option<String>,
}

/// Deliver a webhook as PagerDuty does: signed, and tried again (up to five times, after a
/// short pause) while the answer is not a 2xx.
async fn deliver(http: &reqwest::Client, url: &str, delivery: &Delivery) -> WebhookResult {
    let signature = warroom::pagerduty::sign(WEBHOOK_SECRET, delivery.body.as_bytes());
    let mut result = WebhookResult {
        latencies: Vec::new(),
        refused: Vec::new(),
        answer: None,
    };
    for _ in 0..5 {
        let started = Instant::now();
        let answer = async {
            let response = http
                .post(url)
                .header("content-type", "application/json")
                .header("x-pagerduty-signature", &signature)
                .header("x-webhook-id", format!("delivery-{}", delivery.event_id))
                .body(delivery.body.clone())
                .send()
                .await?;
            let status = response.status();
            Ok::<_, reqwest::Error>((status, response.text().await?))
        }
        .await;
        result.latencies.push(started.elapsed());
        match answer {
            Ok((status, body)) if status.is_success() => {
                let said = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v["status"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "?".into());
                result.answer = Some(said);
                return result;
            }
            Ok((status, body)) => result.refused.push(format!(
                "{} {}: HTTP {status} {}",
                delivery.event_type,
                delivery.event_id,
                body.chars().take(200).collect::<String>()
            )),
            Err(error) => result.refused.push(format!(
                "{} {}: {error}",
                delivery.event_type, delivery.event_id
            )),
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    result
}

async fn webhooks(
    db: Database,
    deliveries: usize,
    incidents: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    ensure!(
        incidents >= 1 && concurrency >= 1 && deliveries >= incidents * 5,
        "--incidents and --concurrency must be at least 1, --deliveries at least 5 per incident"
    );
    let schema = BenchSchema::new(&db, "webhooks").await?;
    print_machine(&schema.admin).await?;
    let result = webhooks_run(&schema, deliveries, incidents, concurrency).await;
    schema.finish(db.keep).await?;
    result
}

async fn webhooks_run(
    schema: &BenchSchema,
    deliveries: usize,
    incidents: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    // PagerDuty priorities P1 and P2 map to the severities of the same name, so that
    // `priority_updated` changes the severity (and re-plans the escalation).
    let config = tempfile::Builder::new()
        .prefix("warroom-bench-")
        .suffix(".toml")
        .tempfile()?;
    std::fs::write(
        config.path(),
        "[pagerduty.priorities]\nP1 = \"P1\"\nP2 = \"P2\"\n",
    )?;
    let mut env = schema.env();
    env.push((
        "WARROOM_PAGERDUTY__WEBHOOK_SECRETS".into(),
        format!("[\"{WEBHOOK_SECRET}\"]"),
    ));
    env.push(("WARROOM_CONFIG".into(), config.path().display().to_string()));
    let serve = Serve::start(&env, &log_path("webhooks")).await?;
    let _analyzer = schema.start_analyzer().await?;
    let db = schema.client().await?;

    let storm = Arc::new(webhook_storm(incidents, deliveries / incidents));
    let distinct: HashSet<&str> = storm.iter().map(|d| d.event_id.as_str()).collect();
    let handled: HashSet<String> = storm
        .iter()
        .filter(|d| warroom::pagerduty::HANDLED_EVENTS.contains(&d.event_type))
        .map(|d| d.event_id.clone())
        .collect();
    let mut types: BTreeMap<&str, usize> = BTreeMap::new();
    for delivery in storm.iter() {
        *types.entry(delivery.event_type).or_default() += 1;
    }
    println!(
        "{} deliveries of {} distinct events ({} that warroom acts on) about {incidents} PagerDuty \
         incidents, {concurrency} at a time ...",
        storm.len(),
        distinct.len(),
        handled.len()
    );

    let http = local_client(concurrency)?;
    let url = serve.url("/pagerduty/webhook");
    let sent = storm.clone();
    let before = cpu_times(serve.pid)?;
    let (results, elapsed) = drive(storm.len(), concurrency, move |i| {
        let (http, url, storm) = (http.clone(), url.clone(), sent.clone());
        async move { deliver(&http, &url, &storm[i]).await }
    })
    .await?;
    let cpu = cpu_share(before, cpu_times(serve.pid)?);

    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    for result in &results {
        let answer = result
            .answer
            .clone()
            .unwrap_or_else(|| "never accepted".into());
        *answers.entry(answer).or_default() += 1;
    }
    let refused: Vec<&String> = results.iter().flat_map(|r| &r.refused).collect();
    let lost = results.iter().filter(|r| r.answer.is_none()).count();
    let times = latency(results.iter().flat_map(|r| r.latencies.clone()).collect());

    // What the store holds.
    let recorded: HashSet<String> = db
        .query(
            "SELECT id FROM inbound_events WHERE source = 'pagerduty'",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let missing = handled.difference(&recorded).count();
    let unexpected = recorded.difference(&handled).count();
    let opened: Vec<(String, i64)> = db
        .query(
            "SELECT pagerduty_incident_id, count(*) FROM incidents GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|row| {
            (
                row.get::<_, Option<String>>(0).unwrap_or_default(),
                row.get(1),
            )
        })
        .collect();
    let expected_ids: HashSet<String> = (0..incidents).map(|i| format!("PBENCH{i:04}")).collect();
    let opened_once = opened
        .iter()
        .filter(|(id, n)| expected_ids.contains(id) && *n == 1)
        .count();
    let stored_incidents: i64 = opened.iter().map(|(_, n)| n).sum();
    let declared = count(
        &db,
        "SELECT count(*) FROM timeline_events WHERE kind = 'declared'",
    )
    .await?;
    let resolved = count(
        &db,
        "SELECT count(*) FROM incidents WHERE status = 'resolved'",
    )
    .await?;

    println!();
    println!("event types sent (deliveries):");
    for (event_type, n) in &types {
        println!("  {event_type:<36} {n:>6}");
    }
    println!(
        "{:<12} {:>8} {:>9} {:>10} {:>10} {:>10} {:>10}",
        "deliveries", "elapsed", "per s", "p50", "p99", "max", "concurrency"
    );
    println!(
        "{:<12} {:>8} {:>9.1} {:>10} {:>10} {:>10} {:>10}",
        storm.len(),
        format!("{:.2} s", elapsed.as_secs_f64()),
        storm.len() as f64 / elapsed.as_secs_f64(),
        ms(times.p50),
        ms(times.p99),
        ms(times.max),
        concurrency
    );
    let answers = answers
        .iter()
        .map(|(answer, n)| format!("{answer} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "CPU during the storm, share of all cores: warroom serve {:.0} %, bench {:.0} %, \
         rest (PostgreSQL) {:.0} %, idle {:.0} %",
        cpu.serve * 100.0,
        cpu.bench * 100.0,
        cpu.rest * 100.0,
        cpu.idle * 100.0
    );
    println!(
        "answers: {answers}; attempts refused (then retried, as PagerDuty does): {}",
        refused.len()
    );
    if let Some(first) = refused.first() {
        println!("first refusal: {first}");
    }
    let checks = [
        ("deliveries never accepted", 0, lost as i64),
        (
            "event ids warroom acts on, recorded",
            handled.len() as i64,
            (handled.len() - missing) as i64,
        ),
        ("other event ids recorded", 0, unexpected as i64),
        (
            "PagerDuty incidents with exactly one warroom incident",
            incidents as i64,
            opened_once as i64,
        ),
        (
            "warroom incidents in all",
            incidents as i64,
            stored_incidents,
        ),
        ("'declared' timeline events", incidents as i64, declared),
        (
            "incidents resolved (resolved is each one's last event)",
            incidents as i64,
            resolved,
        ),
    ];
    println!("{:<56} {:>9} {:>9}", "check", "expected", "found");
    let mut failed = false;
    for (check, expected, found) in checks {
        let mark = if expected == found { "" } else { "  FAILED" };
        failed |= expected != found;
        println!("{check:<56} {expected:>9} {found:>9}{mark}");
    }
    let met = elapsed < StdDuration::from_secs(60);
    println!(
        "goal: the storm handled within a minute: {} ({:.2} s); load average {} after the run",
        if met { "met" } else { "MISSED" },
        elapsed.as_secs_f64(),
        load_average()
    );
    serve.stop().await?;
    if failed {
        bail!("the webhooks benchmark's correctness check failed (see above)");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// memory

/// Store incident `n` through the core, as a console incident (its messages wait in the
/// outbox for a console, so `serve` does not deliver them), resolved too when `resolve`.
/// Its channel name.
async fn store_incident(
    store: &dyn Store,
    policy: &Policy,
    n: usize,
    resolve: bool,
) -> anyhow::Result<String> {
    let actor = UserRef::parse("bench").map_err(|e| anyhow!("{e}"))?;
    let key = store.allocate_incident_key().await?;
    let channel = ChannelName::parse(&format!("inc-bench-{n}")).context("a channel name")?;
    let now = Utc::now();
    let mut decision = declare(
        policy,
        DeclareRequest {
            key,
            title: format!("Bench stored incident {n}"),
            severity: None,
            actor: actor.clone(),
            platform: Platform::Console,
            channel: channel.clone(),
            now,
            from_pagerduty: None,
        },
    );
    decision.incident.version = store.commit(Change::new(&decision, None, now)).await?;
    if resolve {
        let command = IncidentCommand::Resolve {
            root_cause: Some("bench".into()),
        };
        let resolved = apply(policy, &decision.incident, &actor, &command, now)
            .map_err(|refusal| anyhow!("resolving was refused: {:?}", refusal.0))?;
        store
            .commit(Change::new(&resolved, Some(decision.incident.version), now))
            .await?;
    }
    Ok(channel.to_string())
}

/// Give the process time to settle (timers, dispatchers, allocator) before a reading.
async fn settle() {
    tokio::time::sleep(StdDuration::from_secs(3)).await;
}

async fn memory(
    db: Database,
    incidents: usize,
    open: usize,
    requests: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    ensure!(
        open >= 1 && open <= incidents && concurrency >= 1,
        "--open must be between 1 and --incidents, --concurrency at least 1"
    );
    let schema = BenchSchema::new(&db, "memory").await?;
    print_machine(&schema.admin).await?;
    let result = memory_run(&schema, incidents, open, requests, concurrency).await;
    schema.finish(db.keep).await?;
    result
}

async fn memory_run(
    schema: &BenchSchema,
    incidents: usize,
    open: usize,
    requests: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let (stub_url, _stub) = start_stub().await?;
    let mut env = schema.env();
    env.extend(slack_env(&stub_url));
    let serve = Serve::start(&env, &log_path("memory")).await?;
    let _analyzer = schema.start_analyzer().await?;
    let mut readings = Vec::new();
    settle().await;
    readings.push(("idle after start, empty store".to_string(), serve.memory()?));

    // The incidents, written by this process through the store API. The escalation steps
    // are left out of the policy (as for `timers`), so no timer comes due while measuring.
    let store = Arc::new(schema.store(16).await?);
    let policy = Arc::new(policy()?);
    // Every `every`-th incident stays open, `open` of them; the others are resolved.
    let every = incidents / open;
    let stays_open = move |n: usize| n % every == 0 && n / every < open;
    let started = Instant::now();
    let stored: Vec<(usize, String)> = stream::iter(0..incidents)
        .map(|n| {
            let (store, policy) = (store.clone(), policy.clone());
            async move {
                let channel = store_incident(&*store, &policy, n, !stays_open(n)).await?;
                Ok::<_, anyhow::Error>((n, channel))
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    let open_channels: Vec<String> = stored
        .iter()
        .filter(|(n, _)| stays_open(*n))
        .map(|(_, channel)| channel.clone())
        .collect();
    println!(
        "stored {incidents} incidents ({} open) in {:.1} s",
        open_channels.len(),
        started.elapsed().as_secs_f64()
    );
    settle().await;
    readings.push((
        format!(
            "idle, {incidents} incidents stored ({} open)",
            open_channels.len()
        ),
        serve.memory()?,
    ));

    // `timeline` is typed in incident channels: give 100 open incidents a Slack channel id
    // and twenty status updates each, so each timeline has something to show.
    let mapped: Vec<String> = open_channels.iter().take(100).cloned().collect();
    for (k, channel) in mapped.iter().enumerate() {
        store
            .set_chat_ref("slack", &format!("channel-id:CMEM{k:04}"), channel)
            .await?;
    }
    stream::iter(mapped.clone())
        .map(|channel| {
            let (store, policy) = (store.clone(), policy.clone());
            async move {
                let actor = UserRef::parse("bench").map_err(|e| anyhow!("{e}"))?;
                for update in 0..20 {
                    let incident = store
                        .incident_by_channel(&channel)
                        .await?
                        .context("a stored incident")?;
                    let now = Utc::now();
                    let command = IncidentCommand::Update(format!("bench update {update}"));
                    let decision = apply(&policy, &incident, &actor, &command, now)
                        .map_err(|refusal| anyhow!("update refused: {:?}", refusal.0))?;
                    store
                        .commit(Change::new(&decision, Some(incident.version), now))
                        .await?;
                }
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;

    let client = Arc::new(SlashClient {
        http: local_client(concurrency)?,
        url: serve.url("/slack/commands"),
        response_url: format!("{stub_url}/response/bench"),
    });
    let mapped_count = mapped.len();
    let (samples, elapsed) = drive(requests * 2, concurrency, move |i| {
        let client = client.clone();
        async move {
            if i % 2 == 0 {
                client
                    .command(&slack_user(i), GENERAL, "list", "Open incidents")
                    .await
            } else {
                let channel = format!("CMEM{:04}", (i / 2) % mapped_count);
                client
                    .command(&slack_user(i), &channel, "timeline", "Timeline of")
                    .await
            }
        }
    })
    .await?;
    let served = PathResult::new("list and timeline", &samples, elapsed);
    settle().await;
    readings.push((
        format!("after {requests} list and {requests} timeline requests"),
        serve.memory()?,
    ));

    println!();
    println!("{:<56} {:>10} {:>10}", "warroom serve", "VmRSS", "VmHWM");
    for (stage, (rss, peak)) in &readings {
        println!(
            "{stage:<56} {:>10} {:>10}",
            format!("{rss:.1} MiB"),
            format!("{peak:.1} MiB")
        );
    }
    print_paths(std::slice::from_ref(&served));
    println!("load average {} after the run", load_average());
    serve.stop().await?;
    if served.errors > 0 {
        bail!("{} requests failed", served.errors);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// startup

/// Spawn `warroom serve` and poll `/readyz` every 5 ms: the time from spawning to the first
/// 200.
async fn time_to_ready(
    env: &[(String, String)],
    log: &Path,
    client: &reqwest::Client,
) -> anyhow::Result<StdDuration> {
    let started = Instant::now();
    let mut serve = Serve::spawn(env, log)?;
    serve
        .wait_ready(client, StdDuration::from_millis(5))
        .await?;
    let ready = started.elapsed();
    serve.stop().await?;
    Ok(ready)
}

async fn startup(db: Database, runs: usize) -> anyhow::Result<()> {
    ensure!(runs >= 1, "--runs must be at least 1");
    let log = log_path("startup");
    let client = local_client(1)?;

    // A schema migrated beforehand, as after the first start.
    let migrated = BenchSchema::new(&db, "startup").await?;
    print_machine(&migrated.admin).await?;
    println!(
        "starting warroom serve {runs} times on a migrated schema, then {runs} times on a fresh one; its log: {}",
        log.display()
    );
    let result = async {
        drop(migrated.store(1).await?);
        let mut times = Vec::new();
        for _ in 0..runs {
            times.push(time_to_ready(&migrated.env(), &log, &client).await?);
        }
        Ok::<_, anyhow::Error>(times)
    }
    .await;
    migrated.finish(db.keep).await?;
    let on_migrated = result?;

    // A schema that does not exist yet: warroom creates and migrates it.
    let mut on_fresh = Vec::new();
    for _ in 0..runs {
        let fresh = BenchSchema::new(&db, "startup").await?;
        let result = time_to_ready(&fresh.env(), &log, &client).await;
        fresh.finish(db.keep).await?;
        on_fresh.push(result?);
    }

    println!();
    println!(
        "{:<22} {:>5} {:>10} {:>10} {:>10}",
        "schema", "runs", "min", "median", "max"
    );
    for (schema, mut times) in [("migrated", on_migrated), ("fresh (migrates)", on_fresh)] {
        times.sort_unstable();
        let n = times.len();
        let median = if n % 2 == 1 {
            times[n / 2]
        } else {
            (times[n / 2 - 1] + times[n / 2]) / 2
        };
        println!(
            "{schema:<22} {n:>5} {:>10} {:>10} {:>10}",
            ms(times[0]),
            ms(median),
            ms(times[n - 1])
        );
    }
    println!("load average {} after the run", load_average());
    Ok(())
}
