//! The `warroom` command line: console, serve, check, migrate.

use crate::app::App;
use crate::app::clock::{Clock, SystemClock, VirtualClock};
use crate::app::runner::{self, Heartbeat};
use crate::chat::console::{self, ConsoleOptions, ConsoleSink, Output};
use crate::config::{self, Config, DatabaseTarget};
use crate::core::{UserRef, views};
use crate::http::{self, HttpDeps};
use crate::render::Renderer;
use crate::store;
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

#[derive(Parser, Debug)]
#[command(
    name = "warroom",
    version,
    about = "Incident-response ChatOps bot: declare, escalate, page, and run runbooks from chat."
)]
pub struct Cli {
    /// Configuration file (TOML); see warroom.example.toml. Keys can also be set as WARROOM_<SECTION>__<KEY>.
    #[arg(long, global = true, env = "WARROOM_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Commands,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Commands {
    /// An interactive incident channel in the terminal (also reads piped scripts).
    Console(ConsoleArgs),
    /// Run the long-lived bot: store, timer scheduler, and the HTTP endpoints.
    Serve(DatabaseArgs),
    /// Validate the configuration and templates; print every problem with file and line.
    Check,
    /// Apply the database schema migrations.
    Migrate(DatabaseArgs),
    /// Print the escalation plan of a severity as a timeline, to check a policy.
    Simulate {
        /// The severity to plan for.
        #[arg(long, value_name = "P0|P1|P2|P3")]
        severity: crate::core::Severity,
    },
    /// Playbooks: `warroom playbook lint [--dir DIR]`.
    Playbook {
        #[command(subcommand)]
        command: PlaybookCommand,
    },
    /// Discord: `warroom discord register-commands [--global]`.
    Discord {
        #[command(subcommand)]
        command: DiscordCommand,
    },
}

#[derive(Subcommand, Debug)]
enum DiscordCommand {
    /// Register the /incident application command in discord.guild_id (or globally), and
    /// print what changed.
    RegisterCommands {
        /// Register for every server the application is in (Discord may take up to an hour to
        /// show global changes) instead of discord.guild_id only (immediate).
        #[arg(long)]
        global: bool,
    },
}

#[derive(Subcommand, Debug)]
enum PlaybookCommand {
    /// Check every playbook and print every problem with its file and line.
    Lint {
        /// A folder of playbooks (default: runbooks.playbooks_dir, else the built-in ones).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct DatabaseArgs {
    /// Database URL: postgres://… selects PostgreSQL, sqlite:PATH an SQLite file
    /// (default: database.url / WARROOM_DATABASE__URL, else the SQLite file database.path).
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

#[derive(Args, Debug)]
struct ConsoleArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// SQLite file to use (default: database.path, ./warroom.db).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["ephemeral", "database_url"])]
    db: Option<PathBuf>,
    /// Use a temporary SQLite store that is deleted on exit.
    #[arg(long, conflicts_with = "database_url")]
    ephemeral: bool,
    /// Start a clock that only moves with `:advance DURATION`.
    #[arg(long)]
    virtual_clock: bool,
    /// Who you are in the console.
    #[arg(long = "as", value_name = "USER")]
    user: Option<String>,
    /// The channel you start in.
    #[arg(long, value_name = "NAME", default_value = "general")]
    channel: String,
}

/// Run the command line; the exit code says whether it worked.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(cli: &Cli) {
    let default = match cli.command {
        Commands::Serve(_) => "info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARROOM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default))
        // serenity's request spans name the route, and an interaction's webhook route holds
        // its token: its debug output never reaches warroom's logs.
        .add_directive("serenity=warn".parse().expect("a valid directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Commands::Check => Ok(check(cli.config.as_deref())),
        Commands::Discord {
            command: DiscordCommand::RegisterCommands { global },
        } => {
            let config = config::load(cli.config.as_deref())?;
            register_discord_commands(&config, global).await
        }
        Commands::Playbook {
            command: PlaybookCommand::Lint { dir },
        } => {
            let config = config::load(cli.config.as_deref())?;
            let dir = dir.or(config.runbooks.playbooks_dir.clone());
            match crate::runbook::playbook::Playbooks::load(dir.as_deref()) {
                Ok(playbooks) => {
                    println!(
                        "ok: {} playbooks ({})",
                        playbooks.names().len(),
                        playbooks.names().join(", ")
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(problems) => {
                    for problem in &problems {
                        println!("{problem}");
                    }
                    println!(
                        "{} problem{} found",
                        problems.len(),
                        if problems.len() == 1 { "" } else { "s" }
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Commands::Simulate { severity } => {
            let config = config::load(cli.config.as_deref())?;
            for line in crate::core::escalation::simulate(&config.policy, severity) {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Commands::Migrate(args) => {
            let config = load_config(cli.config.as_deref(), args.database_url.as_deref())?;
            let store = store::open(&config).await?;
            store.ping().await?;
            println!(
                "{}: schema is at version {} ({})",
                store.backend(),
                store::SCHEMA_VERSION,
                describe(&config.database)
            );
            Ok(ExitCode::SUCCESS)
        }
        Commands::Serve(args) => {
            let config = load_config(cli.config.as_deref(), args.database_url.as_deref())?;
            serve(config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Console(args) => {
            let mut config =
                load_config(cli.config.as_deref(), args.database.database_url.as_deref())?;
            let _temp = if args.ephemeral {
                let dir =
                    tempfile::tempdir().context("creating a temporary folder for --ephemeral")?;
                config.database = DatabaseTarget::Sqlite {
                    path: dir.path().join("warroom.db"),
                };
                Some(dir)
            } else {
                if let Some(path) = args.db {
                    config.database = DatabaseTarget::Sqlite { path };
                }
                None
            };
            run_console(config, args.virtual_clock, args.user, args.channel).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load_config(
    file: Option<&std::path::Path>,
    database_url: Option<&str>,
) -> anyhow::Result<Config> {
    let mut config = config::load(file)?;
    if let Some(url) = database_url {
        config.database = match DatabaseTarget::from_url(url, 8).map_err(anyhow::Error::msg)? {
            DatabaseTarget::Postgres { url, .. } => DatabaseTarget::Postgres {
                url,
                schema: config.postgres_schema.clone(),
                pool_size: config.postgres_pool_size,
            },
            sqlite => sqlite,
        };
    }
    Ok(config)
}

fn describe(target: &DatabaseTarget) -> String {
    match target {
        DatabaseTarget::Sqlite { path } => format!("file {}", path.display()),
        DatabaseTarget::Postgres { schema, .. } => match schema {
            Some(schema) => format!("schema {schema}"),
            None => "schema public".to_string(),
        },
    }
}

/// `warroom check`: configuration, then templates, then every template rendered strictly.
fn check(file: Option<&std::path::Path>) -> ExitCode {
    let mut problems: Vec<String> = Vec::new();
    let config = match config::load(file) {
        Ok(config) => Some(config),
        Err(e) => {
            problems.extend(e.0.iter().map(ToString::to_string));
            None
        }
    };
    if let Some(config) = &config {
        match Renderer::load(config.templates_dir.as_deref()) {
            Ok(renderer) => {
                let samples = views::samples(&config.policy, chrono::Utc::now());
                problems.extend(
                    renderer
                        .check_samples(&samples)
                        .iter()
                        .map(ToString::to_string),
                );
            }
            Err(template_problems) => {
                problems.extend(template_problems.iter().map(ToString::to_string))
            }
        }
        if let Err(playbook_problems) =
            crate::runbook::playbook::Playbooks::load(config.runbooks.playbooks_dir.as_deref())
        {
            problems.extend(playbook_problems.iter().map(ToString::to_string));
        }
    }
    if problems.is_empty() {
        println!(
            "ok: configuration, templates and playbooks are valid{}",
            file.map(|f| format!(" ({})", f.display()))
                .unwrap_or_default()
        );
        ExitCode::SUCCESS
    } else {
        for problem in &problems {
            println!("{problem}");
        }
        println!(
            "{} problem{} found",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        ExitCode::FAILURE
    }
}

async fn run_console(
    config: Config,
    virtual_clock: bool,
    user: Option<String>,
    channel: String,
) -> anyhow::Result<()> {
    let user = match user.or_else(|| std::env::var("USER").ok()) {
        Some(name) => UserRef::parse(&name).map_err(|e| anyhow::anyhow!("--as: {e}"))?,
        None => UserRef::parse("responder").expect("valid default user"),
    };
    let channel = channel.trim_start_matches('#').to_string();
    if channel.is_empty() {
        bail!("--channel needs a name");
    }
    let renderer = load_renderer(&config)?;
    let store = store::open(&config).await?;
    let virtual_clock =
        virtual_clock.then(|| Arc::new(VirtualClock::starting_at(chrono::Utc::now())));
    let clock: Arc<dyn Clock> = match &virtual_clock {
        Some(clock) => clock.clone(),
        None => Arc::new(SystemClock),
    };
    let app = App::new(store, config.policy.clone(), clock, config.scheduler.lease)
        .with_runbooks(runbooks(&config, None).await?)
        .with_alerts(alert_intake(&config))
        .with_maintenance(crate::app::alerts::Maintenance {
            windows: config.maintenance_windows.clone(),
            announce_on: vec![crate::core::Platform::Console],
        });
    let output: Output = Arc::new(Mutex::new(Box::new(std::io::stdout())));
    let sink = ConsoleSink::new(renderer, output);
    let options = ConsoleOptions {
        channel,
        user,
        virtual_clock,
        prompt: std::io::stdin().is_terminal(),
        pagerduty: pagerduty_sink(&config)?,
    };
    let input = tokio::io::BufReader::new(tokio::io::stdin());
    console::run(&app, &sink, options, input).await
}

/// The PagerDuty sink, when any part of PagerDuty is configured.
/// The runbook engine: guard, cluster (if any), playbooks.
async fn runbooks(
    config: &Config,
    directory: Option<Arc<dyn crate::app::runbook::Directory>>,
) -> anyhow::Result<crate::app::runbook::Runbooks> {
    let playbooks =
        crate::runbook::playbook::Playbooks::load(config.runbooks.playbooks_dir.as_deref())
            .map_err(|problems| {
                anyhow::anyhow!(
                    "playbooks: {}",
                    problems
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            })?;
    let cluster = crate::runbook::kube::Cluster::connect(&config.runbooks).await?;
    if cluster.is_none() {
        tracing::info!("no Kubernetes cluster configured: runbook commands will say so");
    }
    Ok(crate::app::runbook::Runbooks {
        guard: crate::runbook::guard::Guard::new(config.runbooks.clone()),
        cluster,
        playbooks,
        directory,
    })
}

fn load_renderer(config: &Config) -> anyhow::Result<Arc<Renderer>> {
    Renderer::load(config.templates_dir.as_deref())
        .map(Arc::new)
        .map_err(|problems| {
            anyhow::anyhow!(
                "templates: {}",
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })
}

fn pagerduty_sink(config: &Config) -> anyhow::Result<Option<Arc<dyn crate::chat::Sink>>> {
    let pd = &config.pagerduty;
    if !pd.events_enabled() && !pd.rest_enabled() {
        return Ok(None);
    }
    Ok(Some(Arc::new(crate::pagerduty::PagerDutyClient::new(
        pd.clone(),
    )?)))
}

/// `warroom discord register-commands`: replace the application's commands with warroom's and
/// say what changed.
async fn register_discord_commands(config: &Config, global: bool) -> anyhow::Result<ExitCode> {
    use crate::chat::discord::{DiscordApi, commands};
    let Some(discord) = &config.discord else {
        anyhow::bail!(
            "Discord is not configured: set discord.bot_token, discord.public_key, discord.application_id and discord.guild_id"
        );
    };
    let api = DiscordApi::new(discord);
    let scope = if global {
        "globally".to_string()
    } else {
        format!("in server {}", discord.guild_id)
    };
    let existing = api
        .commands(global)
        .await
        .with_context(|| format!("cannot read the application's commands {scope}"))?;
    let wanted = commands::definitions();
    let changes = commands::changes(&existing, &wanted);
    if changes.iter().all(|c| c.starts_with("unchanged")) {
        println!("up to date {scope}: {}", changes.join(", "));
        return Ok(ExitCode::SUCCESS);
    }
    api.set_commands(global, &wanted)
        .await
        .with_context(|| format!("cannot register the commands {scope}"))?;
    println!("registered {scope}:");
    for change in changes {
        println!("  {change}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let store = store::open(&config).await?;
    tracing::info!(store = store.backend(), database = %describe(&config.database), "store ready");
    let slack_api = match &config.slack {
        Some(slack) => Some(Arc::new(crate::chat::slack::SlackApi::new(slack)?)),
        None => None,
    };
    let discord_api = config
        .discord
        .as_ref()
        .map(|discord| Arc::new(crate::chat::discord::DiscordApi::new(discord)));
    let mut directories: Vec<Arc<dyn crate::app::runbook::Directory>> = Vec::new();
    if let Some(api) = &slack_api {
        directories.push(api.clone());
    }
    if let Some(api) = &discord_api {
        directories.push(api.clone());
    }
    let directory = match directories.len() {
        0 => None,
        1 => directories.pop(),
        _ => Some(Arc::new(crate::app::runbook::Directories(directories))
            as Arc<dyn crate::app::runbook::Directory>),
    };
    let app = Arc::new(
        App::new(
            store.clone(),
            config.policy.clone(),
            Arc::new(SystemClock),
            config.scheduler.lease,
        )
        .with_runbooks(runbooks(&config, directory).await?)
        .with_alerts(alert_intake(&config))
        .with_maintenance(crate::app::alerts::Maintenance {
            windows: config.maintenance_windows.clone(),
            // Where windows are announced: the chat platforms this process delivers to.
            announce_on: [
                config.slack.as_ref().map(|_| crate::core::Platform::Slack),
                config
                    .discord
                    .as_ref()
                    .map(|_| crate::core::Platform::Discord),
            ]
            .into_iter()
            .flatten()
            .collect(),
        }),
    );
    let heartbeat = Arc::new(Heartbeat::default());
    let poll = config.scheduler.poll_interval;
    store.watch(app.timers_changed.clone(), app.outbox_changed.clone());
    let scheduler = tokio::spawn(runner::scheduler_loop(app.clone(), heartbeat.clone(), poll));
    let dispatcher = match pagerduty_sink(&config)? {
        Some(sink) => Some(tokio::spawn(runner::dispatcher_loop(
            app.clone(),
            sink,
            poll,
        ))),
        None => {
            tracing::warn!(
                "PagerDuty is not configured: nobody will be paged (see [pagerduty] in warroom.example.toml)"
            );
            None
        }
    };
    let slack = match (&config.slack, slack_api) {
        (Some(slack), Some(api)) => {
            let renderer = load_renderer(&config)?;
            let sink: Arc<dyn crate::chat::Sink> = Arc::new(crate::chat::slack::SlackSink::new(
                api.clone(),
                store.clone(),
                renderer.clone(),
                slack.clone(),
                config.policy.announce_channel.clone(),
            ));
            let dispatcher = tokio::spawn(runner::dispatcher_loop(app.clone(), sink, poll));
            let inbound = Arc::new(crate::chat::slack::SlackInbound {
                app: app.clone(),
                refs: crate::chat::ChatRefs::new(store.clone(), crate::chat::slack::sink::SLACK),
                api,
                renderer,
                config: slack.clone(),
                reply_within: crate::chat::slack::inbound::REPLY_WITHIN,
            });
            // Learn the bot token's workspace now, so requests from others are refused from
            // the first (`SlackInbound::foreign_workspace`); retried until Slack answers.
            if slack.workspaces.is_empty() {
                let api = inbound.api.clone();
                tokio::spawn(async move {
                    let mut wait = std::time::Duration::from_secs(1);
                    loop {
                        match api.identity().await {
                            Ok((_, team)) if team.starts_with('E') => {
                                tracing::warn!(organisation = %team, "the Slack bot token is an organisation-wide install: requests from every workspace of the organisation are served (in Socket Mode, every request: its commands and events do not name the organisation); list those to serve in slack.workspaces");
                                break;
                            }
                            Ok(_) => break,
                            Err(error) => {
                                tracing::warn!(%error, "Slack auth.test failed; requests from any workspace are served until it answers")
                            }
                        }
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(std::time::Duration::from_secs(60));
                    }
                });
            }
            let socket = match slack.mode {
                crate::config::SlackMode::Http => {
                    tracing::info!(
                        "Slack is on: /slack/commands, /slack/interactions, /slack/events"
                    );
                    None
                }
                crate::config::SlackMode::Socket => {
                    let listener = crate::chat::slack::socket::start(inbound.clone()).await?;
                    tracing::info!("Slack is on in Socket Mode");
                    Some(listener)
                }
            };
            Some((inbound, dispatcher, socket))
        }
        _ => {
            tracing::info!("Slack is not configured (see [slack] in warroom.example.toml)");
            None
        }
    };
    let discord = match (&config.discord, discord_api) {
        (Some(discord), Some(api)) => {
            let renderer = load_renderer(&config)?;
            let sink: Arc<dyn crate::chat::Sink> =
                Arc::new(crate::chat::discord::DiscordSink::new(
                    api.clone(),
                    store.clone(),
                    renderer.clone(),
                    discord.clone(),
                    config.policy.announce_channel.clone(),
                ));
            let dispatcher = tokio::spawn(runner::dispatcher_loop(app.clone(), sink, poll));
            let verifier = crate::chat::discord::verifier(&discord.public_key)
                .context("discord.public_key is not a valid Ed25519 public key")?;
            let inbound = Arc::new(crate::chat::discord::DiscordInbound {
                app: app.clone(),
                refs: crate::chat::ChatRefs::new(store.clone(), crate::chat::discord::DISCORD),
                api,
                renderer,
                config: discord.clone(),
                verifier,
                reply_within: crate::chat::discord::inbound::REPLY_WITHIN,
            });
            tracing::info!("Discord is on: /discord/interactions");
            Some((inbound, dispatcher))
        }
        _ => {
            tracing::info!("Discord is not configured (see [discord] in warroom.example.toml)");
            None
        }
    };
    if config.alertmanager.enabled() {
        tracing::info!(
            open_incidents_on = config.alertmanager.open_incidents_on.as_str(),
            "Alertmanager intake is on: /alertmanager/webhook"
        );
        if config.alertmanager.open_incidents_on == crate::core::Platform::Console {
            tracing::warn!(
                "alertmanager.open_incidents_on is console: incidents that alerts open are recorded and paged, but no chat channel is created for them; set it to slack or discord"
            );
        }
    }
    let deps = HttpDeps {
        // In Socket Mode, Slack does not call warroom: no /slack/* routes.
        slack: slack
            .as_ref()
            .filter(|_| {
                config.slack.as_ref().map(|s| s.mode) == Some(crate::config::SlackMode::Http)
            })
            .map(|(inbound, _, _)| inbound.clone()),
        discord: discord.as_ref().map(|(inbound, _)| inbound.clone()),
        metrics: app.metrics.clone(),
        store,
        scheduler: heartbeat,
        stall_after: chrono::Duration::from_std(poll * 3).unwrap_or(chrono::Duration::seconds(15))
            + chrono::Duration::seconds(10),
        alertmanager: config
            .alertmanager
            .enabled()
            .then(|| http::AlertmanagerWebhook {
                app: app.clone(),
                token: config.alertmanager.token.clone(),
            }),
        pagerduty: Some(http::PagerDutyWebhook {
            app: app.clone(),
            secrets: config.pagerduty.webhook_secrets.clone(),
            priorities: config.pagerduty.priorities.clone(),
            open_incidents_on: config.pagerduty.open_incidents_on,
        }),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(address = %config.listen, "listening");
    // SIGTERM: stop taking requests and stop the loops at the same time; the requests in
    // flight get DRAIN_GRACE, the loops and the work requests started get SHUTDOWN_GRACE; then
    // this replica's leases are released and the pool closed (all within Kubernetes' 30 s).
    let stop = Arc::new(tokio::sync::Notify::new());
    let server_stop = stop.clone();
    let mut server = tokio::spawn(async move {
        axum::serve(listener, http::router(deps))
            .with_graceful_shutdown(async move { server_stop.notified().await })
            .await
    });
    tokio::select! {
        _ = shutdown_signal() => {}
        ended = &mut server => {
            ended.context("the HTTP server task failed")?.context("the HTTP server stopped")?;
            anyhow::bail!("the HTTP server stopped unexpectedly");
        }
    }
    tracing::info!("no longer taking requests; finishing the work in hand");
    stop.notify_one();
    let mut loops = vec![scheduler];
    loops.extend(dispatcher);
    if let Some((_, dispatcher)) = discord {
        loops.push(dispatcher);
    }
    if let Some((_, dispatcher, socket)) = slack {
        if let Some(listener) = socket {
            listener.shutdown().await;
        }
        loops.push(dispatcher);
    }
    let drain = async {
        match tokio::time::timeout(DRAIN_GRACE, &mut server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!(%error, "the HTTP server stopped with an error"),
            Ok(Err(error)) => tracing::warn!(%error, "the HTTP server task failed"),
            Err(_) => {
                tracing::warn!(?DRAIN_GRACE, "requests still open; closing them");
                server.abort();
            }
        }
    };
    tokio::join!(
        drain,
        runner::shut_down(&app, loops, runner::SHUTDOWN_GRACE)
    );
    app.store.close();
    tracing::info!("stopped");
    Ok(())
}

/// How long requests in flight may take to finish after SIGTERM.
const DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}

/// How Alertmanager notifications become incidents, from `[alertmanager]`.
fn alert_intake(config: &Config) -> crate::app::alerts::AlertIntake {
    crate::app::alerts::AlertIntake {
        source: config.alertmanager.source.clone(),
        open_on: config.alertmanager.open_incidents_on,
        auto_resolve: config.alertmanager.auto_resolve,
        rules: config.alertmanager.severity.clone(),
    }
}
