//! Configuration in two stages: raw TOML (built-in defaults, the user's file, `WARROOM_*`
//! environment overrides), then a validated [`Config`] with typed values.

use crate::core::severity::{ClassificationRule, ClassificationRules, Severity};
use crate::core::{Policy, SeverityPolicy, human_duration as human};
use chrono::Duration;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The documented example file, which is also the built-in defaults.
pub const DEFAULTS_TOML: &str = include_str!("../warroom.example.toml");
/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "WARROOM_";

/// A value that must never be printed (database URLs with passwords, tokens, secrets).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        text(deserializer).map(Secret)
    }
}

/// A string key that also accepts a number or boolean, as environment overrides such as
/// `WARROOM_INCIDENTS__CHANNEL_PREFIX=2024` arrive typed.
fn text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Lenient {
        Text(String),
        Integer(i64),
        Unsigned(u64),
        Float(f64),
        Bool(bool),
    }
    Ok(match Lenient::deserialize(deserializer)? {
        Lenient::Text(s) => s,
        Lenient::Integer(n) => n.to_string(),
        Lenient::Unsigned(n) => n.to_string(),
        Lenient::Float(n) => n.to_string(),
        Lenient::Bool(b) => b.to_string(),
    })
}

/// A list of secrets, or one given alone (`WARROOM_PAGERDUTY__WEBHOOK_SECRETS=<secret>` from
/// a Kubernetes Secret): one empty text is none.
fn one_or_more_secrets<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Secret>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMore {
        One(Secret),
        More(Vec<Secret>),
    }
    Ok(match OneOrMore::deserialize(deserializer)? {
        OneOrMore::One(one) if one.expose().trim().is_empty() => Vec::new(),
        OneOrMore::One(one) => vec![one],
        OneOrMore::More(more) => more,
    })
}

/// figment's account of a problem without the value it found: a value in the wrong place can
/// be a secret (a routing key given where a table is expected), and the account is printed and
/// logged.
fn without_value(kind: &figment::error::Kind) -> String {
    use figment::error::{Actual, Kind};
    let found = |actual: &Actual| match actual {
        Actual::Bool(_) => "a boolean".to_string(),
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer".to_string(),
        Actual::Float(_) => "a number".to_string(),
        Actual::Char(_) | Actual::Str(_) | Actual::Other(_) => "text".to_string(),
        Actual::Bytes(_) => "bytes".to_string(),
        other => other.to_string(),
    };
    match kind {
        Kind::InvalidType(actual, expected) => {
            format!("invalid type: found {}, expected {expected}", found(actual))
        }
        Kind::InvalidValue(actual, expected) => {
            format!(
                "invalid value: found {}, expected {expected}",
                found(actual)
            )
        }
        Kind::Unsupported(actual) => format!("unsupported type: {}", found(actual)),
        Kind::UnsupportedKey(actual, expected) => {
            format!(
                "unsupported key type: found {}, need {expected}",
                found(actual)
            )
        }
        other => other.to_string(),
    }
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "\"[redacted]\""
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    database: RawDatabase,
    incidents: RawIncidents,
    scheduler: RawScheduler,
    templates: RawTemplates,
    severities: RawSeverities,
    classification: RawClassification,
    escalation: RawEscalation,
    pagerduty: RawPagerDuty,
    slack: RawSlack,
    discord: RawDiscord,
    runbooks: RawRunbooks,
    alertmanager: RawAlertmanager,
    maintenance: RawMaintenance,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertmanager {
    token: Secret,
    #[serde(deserialize_with = "text")]
    open_incidents_on: String,
    auto_resolve: bool,
    #[serde(deserialize_with = "text")]
    source: String,
    #[serde(deserialize_with = "text")]
    fallback_severity: String,
    severity_rules: Vec<crate::alertmanager::SeverityRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaintenance {
    #[serde(deserialize_with = "text")]
    pages_from: String,
    windows: Vec<RawWindow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    #[serde(deserialize_with = "text")]
    name: String,
    #[serde(deserialize_with = "text")]
    every: String,
    #[serde(deserialize_with = "text")]
    start: String,
    #[serde(deserialize_with = "text")]
    duration: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunbooks {
    #[serde(deserialize_with = "text")]
    cluster: String,
    #[serde(deserialize_with = "text")]
    context: String,
    namespaces: Vec<String>,
    #[serde(deserialize_with = "text")]
    default_namespace: String,
    #[serde(deserialize_with = "text")]
    confirm_within: String,
    p0_second_person: bool,
    #[serde(deserialize_with = "text")]
    timeout: String,
    #[serde(deserialize_with = "text")]
    playbooks_dir: String,
    bounds: std::collections::BTreeMap<String, RawBounds>,
    probes: std::collections::BTreeMap<String, String>,
    roles: Vec<RawRole>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBounds {
    min: i64,
    max: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    #[serde(deserialize_with = "text")]
    name: String,
    #[serde(default)]
    everyone: bool,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    actions: Vec<String>,
    #[serde(default)]
    namespaces: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    #[serde(deserialize_with = "text")]
    mode: String,
    signing_secret: Secret,
    bot_token: Secret,
    app_token: Secret,
    #[serde(deserialize_with = "text")]
    incidents_channel: String,
    #[serde(deserialize_with = "text")]
    api_url: String,
    #[serde(deserialize_with = "text")]
    timeout: String,
    responders: Vec<String>,
    allowed_users: Vec<String>,
    allowed_groups: Vec<String>,
    workspaces: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscord {
    #[serde(deserialize_with = "text")]
    public_key: String,
    bot_token: Secret,
    #[serde(deserialize_with = "text")]
    application_id: String,
    #[serde(deserialize_with = "text")]
    guild_id: String,
    #[serde(deserialize_with = "text")]
    incidents_channel: String,
    #[serde(deserialize_with = "text")]
    category: String,
    #[serde(deserialize_with = "text")]
    api_url: String,
    #[serde(deserialize_with = "text")]
    timeout: String,
    responders: Vec<String>,
    allowed_users: Vec<String>,
    allowed_roles: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalation {
    steps: Vec<RawStep>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    #[serde(deserialize_with = "text")]
    name: String,
    #[serde(deserialize_with = "text")]
    after: String,
    #[serde(default)]
    severities: Option<Vec<String>>,
    #[serde(default)]
    page: Vec<String>,
    #[serde(default)]
    mention: Vec<String>,
    #[serde(default)]
    until: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPagerDuty {
    #[serde(deserialize_with = "text")]
    events_url: String,
    #[serde(deserialize_with = "text")]
    api_url: String,
    api_token: Secret,
    #[serde(deserialize_with = "text")]
    from_email: String,
    #[serde(deserialize_with = "one_or_more_secrets")]
    webhook_secrets: Vec<Secret>,
    #[serde(deserialize_with = "text")]
    source: String,
    #[serde(deserialize_with = "text")]
    timeout: String,
    #[serde(deserialize_with = "text")]
    open_incidents_on: String,
    routing_keys: std::collections::BTreeMap<String, Secret>,
    priorities: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(deserialize_with = "text")]
    listen: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Secret,
    #[serde(deserialize_with = "text")]
    path: String,
    #[serde(deserialize_with = "text")]
    schema: String,
    pool_size: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIncidents {
    #[serde(deserialize_with = "text")]
    channel_prefix: String,
    #[serde(deserialize_with = "text")]
    announce_channel: String,
    #[serde(deserialize_with = "text")]
    postmortem_due: String,
    postmortem_reminders: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScheduler {
    #[serde(deserialize_with = "text")]
    poll_interval: String,
    #[serde(deserialize_with = "text")]
    lease: String,
    #[serde(deserialize_with = "text")]
    lateness_note_after: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplates {
    #[serde(deserialize_with = "text")]
    dir: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeverities {
    p0: RawSeverity,
    p1: RawSeverity,
    p2: RawSeverity,
    p3: RawSeverity,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeverity {
    #[serde(deserialize_with = "text")]
    name: String,
    #[serde(deserialize_with = "text")]
    meaning: String,
    #[serde(deserialize_with = "text")]
    respond_within: String,
    #[serde(deserialize_with = "text")]
    status_update_every: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClassification {
    #[serde(deserialize_with = "text")]
    default: String,
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(deserialize_with = "text")]
    severity: String,
    keywords: Vec<String>,
}

/// Where incidents are stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// The embedded store in this file.
    Sqlite { path: PathBuf },
    /// A shared PostgreSQL database.
    Postgres {
        url: Secret,
        schema: Option<String>,
        pool_size: usize,
    },
}

impl DatabaseTarget {
    /// `postgres://…` or `postgresql://…` selects PostgreSQL; `sqlite:PATH` or a plain path
    /// selects SQLite.
    pub fn from_url(url: &str, pool_size: usize) -> Result<DatabaseTarget, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // sslmode and sslrootcert are checked now (the root file is read on connecting).
            crate::store::postgres_tls::parse(url)?;
            Ok(DatabaseTarget::Postgres {
                url: Secret::new(url),
                schema: None,
                pool_size,
            })
        } else if let Some(path) = url
            .strip_prefix("sqlite://")
            .or(url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err("a sqlite: URL needs a file path, e.g. sqlite:warroom.db".into());
            }
            Ok(DatabaseTarget::Sqlite { path: path.into() })
        } else {
            Err("the database URL must start with postgres://, postgresql:// or sqlite:".into())
        }
    }
}

#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    pub poll_interval: std::time::Duration,
    pub lease: Duration,
}

/// How to reach PagerDuty.
#[derive(Clone, Debug)]
pub struct PagerDutyConfig {
    pub events_url: String,
    pub api_url: String,
    pub api_token: Secret,
    pub from_email: String,
    pub webhook_secrets: Vec<Secret>,
    pub source: String,
    pub timeout: std::time::Duration,
    /// Service name → routing key, for configured services only.
    pub routing_keys: std::collections::BTreeMap<String, Secret>,
    /// PagerDuty priority name → severity.
    pub priorities: std::collections::BTreeMap<String, crate::core::Severity>,
    /// Chat platform of incidents PagerDuty opens.
    pub open_incidents_on: crate::core::Platform,
}

impl PagerDutyConfig {
    /// Whether any service can be paged (the outbox has something to deliver to).
    pub fn events_enabled(&self) -> bool {
        !self.routing_keys.is_empty()
    }

    /// Whether the REST API can be used.
    pub fn rest_enabled(&self) -> bool {
        !self.api_token.expose().is_empty() && !self.from_email.is_empty()
    }
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub database: DatabaseTarget,
    /// `database.schema` and `database.pool_size`, kept for a PostgreSQL URL given on the
    /// command line (`--database-url`) when the configuration itself names none.
    pub postgres_schema: Option<String>,
    pub postgres_pool_size: usize,
    pub policy: Policy,
    pub scheduler: SchedulerConfig,
    pub templates_dir: Option<PathBuf>,
    pub pagerduty: PagerDutyConfig,
    /// `None` when Slack is not configured (no bot token and signing secret).
    pub slack: Option<SlackConfig>,
    /// `None` when Discord is not configured (no bot token and public key).
    pub discord: Option<DiscordConfig>,
    pub runbooks: crate::runbook::guard::RunbookConfig,
    pub alertmanager: AlertmanagerConfig,
    /// Recurring maintenance windows (UTC).
    pub maintenance_windows: Vec<crate::core::maintenance::RecurringWindow>,
}

/// The `[alertmanager]` section: intake of Alertmanager notifications.
#[derive(Clone, Debug)]
pub struct AlertmanagerConfig {
    /// The bearer token Alertmanager sends; empty: `/alertmanager/webhook` refuses everything.
    pub token: Secret,
    /// The chat platform of incidents that alerts open.
    pub open_incidents_on: crate::core::Platform,
    /// Resolve an incident once every alert of its group has resolved, unless a person took
    /// it over.
    pub auto_resolve: bool,
    /// How the timeline names the monitoring system.
    pub source: String,
    pub severity: crate::alertmanager::SeverityRules,
}

impl AlertmanagerConfig {
    pub fn enabled(&self) -> bool {
        !self.token.expose().is_empty()
    }
}

/// How Slack reaches warroom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlackMode {
    /// Slack sends requests to `/slack/*` (a public URL), signed with the signing secret.
    Http,
    /// warroom opens a WebSocket to Slack with the app-level token (no public URL needed).
    Socket,
}

impl SlackMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SlackMode::Http => "http",
            SlackMode::Socket => "socket",
        }
    }
}

/// The `[slack]` section, when Slack is enabled.
#[derive(Clone, Debug)]
pub struct SlackConfig {
    pub mode: SlackMode,
    /// Empty in Socket Mode when not set (then `/slack/*` is not served).
    pub signing_secret: Secret,
    pub bot_token: Secret,
    /// App-level token (`xapp-…`) for Socket Mode.
    pub app_token: Secret,
    /// Where incidents are announced: a channel id (`C…`) or name.
    pub incidents_channel: String,
    /// Base URL of the Web API (`https://slack.com/api`); the method name follows a `/`.
    pub api_url: String,
    /// Timeout of one Web API call.
    pub timeout: std::time::Duration,
    /// User ids invited to every incident channel.
    pub responders: Vec<String>,
    /// Who may press buttons and change incidents: these user ids, members of these user
    /// groups, and each incident's declarer and commander. Both empty: everyone.
    pub allowed_users: Vec<String>,
    pub allowed_groups: Vec<String>,
    /// The workspaces (team ids, `T…`) whose requests are served; empty: the bot token's
    /// own, as `auth.test` tells it.
    pub workspaces: Vec<String>,
}

/// The `[discord]` section, when Discord is enabled.
#[derive(Clone, Debug)]
pub struct DiscordConfig {
    /// The application's Ed25519 public key (64 hex digits): verifies interactions.
    pub public_key: String,
    pub bot_token: Secret,
    pub application_id: u64,
    /// The server (guild) incidents live in.
    pub guild_id: u64,
    /// Where incidents are announced: a channel id, or the name of a text channel.
    pub incidents_channel: String,
    /// The category incident channels are created in: an id, a name, or empty (none).
    pub category: String,
    /// Base URL of the API (`https://discord.com`). Anything else is treated as a proxy or a
    /// test server: serenity's ratelimiter is then turned off, since it ignores proxies.
    pub api_url: String,
    /// Timeout of one API call.
    pub timeout: std::time::Duration,
    /// User ids given access to, and mentioned in, every incident channel.
    pub responders: Vec<u64>,
    /// Who may press buttons and change incidents: these user ids, members with these role
    /// ids, and each incident's declarer and commander. Both empty: everyone.
    pub allowed_users: Vec<u64>,
    pub allowed_roles: Vec<u64>,
}

impl DiscordConfig {
    /// Whether requests go to Discord itself (`https://discord.com`, however written), not to a
    /// proxy or a test server.
    pub fn is_discord(&self) -> bool {
        url::Url::parse(&self.api_url).is_ok_and(|url| {
            url.scheme() == "https" && url.host_str() == Some("discord.com") && url.port().is_none()
        })
    }
}

/// Whether `text` is a Discord id (a snowflake: 17 to 20 digits).
pub fn discord_id(text: &str) -> Option<u64> {
    (text.len() >= 17 && text.len() <= 20 && text.chars().all(|c| c.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
        .filter(|id| *id > 0)
}

/// One problem with the configuration: where, which key, what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// `file:line`, `file`, or `environment variable WARROOM_…`.
    pub location: Option<String>,
    /// Dotted key, e.g. `severities.p0.respond_within`; empty for a syntax error.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// All problems found; loading reports every one, not just the first.
#[derive(Clone, Debug, thiserror::Error)]
pub struct ConfigError(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid configuration:")?;
        for problem in &self.0 {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

/// Load the configuration: defaults, then `file` (if any), then the environment.
pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
    load_with_env(file, Env::prefixed(ENV_PREFIX))
}

fn env_provider(env: Env) -> EnvText {
    // Only sectioned keys (WARROOM_SECTION__KEY) are configuration; other WARROOM_ variables
    // (such as WARROOM_TEST_DATABASE_URL) are not.
    EnvText(env.filter(|key| key.as_str().contains("__")).split("__"))
}

/// The environment's overrides as figment's `Env` reads them, except that a value that reads
/// as a number or a boolean stays the text it was written as: `Env` would make a channel
/// prefix `007` or a token `0123` (digits that fit a 64-bit number) the number they spell,
/// and lose the leading zeros.
/// [`load_with_env`] extracts leniently, so text still becomes a number or a boolean where a
/// key wants one. Arrays and tables (`[a, b]`, `{k = v}`) are parsed as `Env` parses them.
struct EnvText(Env);

impl figment::Provider for EnvText {
    fn metadata(&self) -> figment::Metadata {
        self.0.metadata()
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        use figment::value::Value;
        let mut figment = Figment::new();
        for (key, raw) in self.0.iter() {
            let Ok(parsed) = raw.parse::<Value>();
            let value = match parsed {
                Value::Num(..) | Value::Bool(..) => Value::from(raw),
                value => value,
            };
            figment = figment.merge(figment::providers::Serialized::default(key.as_str(), value));
        }
        figment.data()
    }
}

fn load_with_env(file: Option<&Path>, env: Env) -> Result<Config, ConfigError> {
    let mut figment = Figment::from(Toml::string(DEFAULTS_TOML));
    let mut text = None;
    if let Some(path) = file {
        let content = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(vec![ConfigProblem {
                location: Some(path.display().to_string()),
                key: String::new(),
                message: format!("cannot read the configuration file: {e}"),
            }])
        })?;
        if let Err(e) = toml::from_str::<toml::Table>(&content) {
            let line = e.span().map(|s| line_of_offset(&content, s.start));
            return Err(ConfigError(vec![ConfigProblem {
                location: Some(file_location(path, line)),
                key: String::new(),
                message: format!("not valid TOML: {}", e.message()),
            }]));
        }
        figment = figment.merge(Toml::string(&content));
        text = Some((path, content));
    }
    figment = figment.merge(env_provider(env));
    let locate = |key: &[String]| -> Option<String> {
        if let Some(var) = env_var_for(key) {
            return Some(format!("environment variable {var}"));
        }
        let (path, content) = text.as_ref()?;
        let line = line_of_key(content, key);
        line.map(|l| file_location(path, Some(l)))
    };
    let raw: RawConfig = figment.extract_lossy().map_err(|errors| {
        ConfigError(
            errors
                .into_iter()
                .map(|e| ConfigProblem {
                    location: locate(&e.path),
                    key: e.path.join("."),
                    message: without_value(&e.kind),
                })
                .collect(),
        )
    })?;
    validate(raw, &locate)
}

fn file_location(path: &Path, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{}:{line}", path.display()),
        None => path.display().to_string(),
    }
}

/// The environment variable that set `key`, if one did.
fn env_var_for(key: &[String]) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let name = format!("{ENV_PREFIX}{}", key.join("__").to_ascii_uppercase());
    std::env::var_os(&name).map(|_| name)
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The 1-based line where a dotted key is set in a TOML file: tracks `[table]` and
/// `[[array]]` headers and finds `key =` under the right one. Good enough to point a person
/// at the line; `None` when the key is not written in the file.
fn line_of_key(text: &str, key: &[String]) -> Option<usize> {
    // Array indices (e.g. classification.rules.1.severity) are dropped: point at the key
    // under the array's table header.
    let key: Vec<&str> = key
        .iter()
        .map(String::as_str)
        .filter(|k| k.parse::<usize>().is_err())
        .collect();
    let (last, table) = key.split_last()?;
    let mut current: Vec<String> = Vec::new();
    let mut table_line = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_start_matches('[');
            let name = header.split(']').next().unwrap_or("");
            current = name
                .split('.')
                .map(|p| p.trim().trim_matches('"').to_string())
                .collect();
            if current == key {
                table_line = Some(i + 1);
            }
            continue;
        }
        if let Some((lhs, _)) = line.split_once('=') {
            let lhs: Vec<String> = lhs
                .split('.')
                .map(|p| p.trim().trim_matches('"').to_string())
                .collect();
            let full: Vec<&str> = current
                .iter()
                .map(String::as_str)
                .chain(lhs.iter().map(String::as_str))
                .collect();
            if full == key
                || (full.len() == table.len() + 1
                    && full[..table.len()] == *table
                    && full[table.len()] == *last)
            {
                return Some(i + 1);
            }
        }
    }
    table_line
}

fn validate(
    raw: RawConfig,
    locate: &dyn Fn(&[String]) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    let mut problem = |key: &str, message: String| {
        let path: Vec<String> = key.split('.').map(String::from).collect();
        problems.push(ConfigProblem {
            location: locate(&path),
            key: key.to_string(),
            message,
        });
    };
    // Every duration has a sane range: a typo such as "1ms" or "300000y" must not turn into
    // a reminder storm or an overflow.
    let duration = |key: &str,
                    text: &str,
                    (min, max): (Duration, Duration),
                    problem: &mut dyn FnMut(&str, String)| {
        match humantime::parse_duration(text) {
            Ok(d) => {
                let d = Duration::from_std(d).unwrap_or(Duration::MAX);
                if d < min || d > max {
                    problem(
                        key,
                        format!(
                            "`{text}` is out of range; use between {} and {}",
                            human(min),
                            human(max)
                        ),
                    );
                    min
                } else {
                    d
                }
            }
            Err(e) => {
                problem(
                    key,
                    format!("`{text}` is not a duration ({e}); write e.g. \"30m\" or \"1h 30m\""),
                );
                min
            }
        }
    };
    let (minutes, hours, days) = (Duration::minutes, Duration::hours, Duration::days);

    let listen = raw.server.listen.parse::<SocketAddr>().unwrap_or_else(|e| {
        problem(
            "server.listen",
            format!(
                "`{}` is not an address like 127.0.0.1:8080 ({e})",
                raw.server.listen
            ),
        );
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });

    let pool_size = match usize::try_from(raw.database.pool_size) {
        Ok(n) if (1..=256).contains(&n) => n,
        _ => {
            problem(
                "database.pool_size",
                format!("must be between 1 and 256, not {}", raw.database.pool_size),
            );
            1
        }
    };
    let schema = raw.database.schema.trim();
    if !schema.is_empty() && !valid_identifier(schema) {
        problem(
            "database.schema",
            format!("`{schema}` is not a plain identifier (letters, digits, _)"),
        );
    }
    let postgres_schema = (!schema.is_empty()).then(|| schema.to_string());
    let database = if raw.database.url.expose().is_empty() {
        if raw.database.path.trim().is_empty() {
            problem(
                "database.path",
                "must name a file when database.url is empty".into(),
            );
        }
        DatabaseTarget::Sqlite {
            path: raw.database.path.clone().into(),
        }
    } else {
        match DatabaseTarget::from_url(raw.database.url.expose(), pool_size) {
            Ok(DatabaseTarget::Postgres { url, pool_size, .. }) => DatabaseTarget::Postgres {
                url,
                schema: postgres_schema.clone(),
                pool_size,
            },
            Ok(other) => other,
            Err(e) => {
                problem("database.url", e);
                DatabaseTarget::Sqlite {
                    path: raw.database.path.clone().into(),
                }
            }
        }
    };

    let severity_policy =
        |name: &str, raw: &RawSeverity, problem: &mut dyn FnMut(&str, String)| SeverityPolicy {
            name: raw.name.clone(),
            meaning: raw.meaning.clone(),
            respond_within: duration(
                &format!("severities.{name}.respond_within"),
                &raw.respond_within,
                (minutes(1), days(30)),
                problem,
            ),
            status_update_every: duration(
                &format!("severities.{name}.status_update_every"),
                &raw.status_update_every,
                (minutes(1), days(7)),
                problem,
            ),
        };
    let severities = [
        severity_policy("p0", &raw.severities.p0, &mut problem),
        severity_policy("p1", &raw.severities.p1, &mut problem),
        severity_policy("p2", &raw.severities.p2, &mut problem),
        severity_policy("p3", &raw.severities.p3, &mut problem),
    ];

    let default = raw
        .classification
        .default
        .parse::<Severity>()
        .unwrap_or_else(|e| {
            problem("classification.default", e.to_string());
            Severity::P2
        });
    let mut rules = Vec::new();
    for (i, rule) in raw.classification.rules.iter().enumerate() {
        let severity = match rule.severity.parse::<Severity>() {
            Ok(s) => s,
            Err(e) => {
                problem(&format!("classification.rules.{i}.severity"), e.to_string());
                continue;
            }
        };
        let keywords: Vec<String> = rule
            .keywords
            .iter()
            .map(|k| k.trim().to_lowercase())
            .collect();
        if let Some(empty) = keywords
            .iter()
            .position(|k| !k.chars().any(char::is_alphanumeric))
        {
            problem(
                &format!("classification.rules.{i}.keywords"),
                format!("keyword {} has no letters or digits", empty + 1),
            );
        }
        rules.push(ClassificationRule { severity, keywords });
    }

    if !raw
        .incidents
        .channel_prefix
        .chars()
        .any(|c| c.is_ascii_alphanumeric())
    {
        problem(
            "incidents.channel_prefix",
            "needs at least one letter or digit".into(),
        );
    }
    if raw.incidents.announce_channel.trim().is_empty() {
        problem("incidents.announce_channel", "must name a channel".into());
    }
    let postmortem_due = duration(
        "incidents.postmortem_due",
        &raw.incidents.postmortem_due,
        (hours(1), days(30)),
        &mut problem,
    );
    let poll_interval = duration(
        "scheduler.poll_interval",
        &raw.scheduler.poll_interval,
        (Duration::milliseconds(100), minutes(5)),
        &mut problem,
    );
    let lease = duration(
        "scheduler.lease",
        &raw.scheduler.lease,
        (Duration::seconds(5), hours(1)),
        &mut problem,
    );
    let lateness_note_after = duration(
        "scheduler.lateness_note_after",
        &raw.scheduler.lateness_note_after,
        (Duration::seconds(1), days(1)),
        &mut problem,
    );

    let postmortem_reminders: Vec<Duration> = raw
        .incidents
        .postmortem_reminders
        .iter()
        .enumerate()
        .map(|(i, text)| {
            duration(
                &format!("incidents.postmortem_reminders.{i}"),
                text,
                (minutes(1), days(30)),
                &mut problem,
            )
        })
        .collect();

    // PagerDuty.
    let pd = &raw.pagerduty;
    for (key, url) in [
        ("pagerduty.events_url", &pd.events_url),
        ("pagerduty.api_url", &pd.api_url),
    ] {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            problem(key, format!("`{url}` is not an http(s) URL"));
        }
    }
    let mut routing_keys = std::collections::BTreeMap::new();
    for (name, key) in &pd.routing_keys {
        let value = key.expose().trim();
        if value.is_empty() {
            continue;
        }
        if value.len() != 32 || !value.chars().all(|c| c.is_ascii_alphanumeric()) {
            problem(
                &format!("pagerduty.routing_keys.{name}"),
                "must be a 32-character PagerDuty integration key".into(),
            );
        }
        routing_keys.insert(name.to_ascii_lowercase(), Secret::new(value));
    }
    let mut priorities = std::collections::BTreeMap::new();
    for (name, severity) in &pd.priorities {
        match severity.parse::<Severity>() {
            Ok(sev) => {
                priorities.insert(name.clone(), sev);
            }
            Err(e) => problem(&format!("pagerduty.priorities.{name}"), e.to_string()),
        }
    }
    let open_incidents_on = pd
        .open_incidents_on
        .parse::<crate::core::Platform>()
        .unwrap_or_else(|e| {
            problem(
                "pagerduty.open_incidents_on",
                format!("{e}; use console, slack or discord"),
            );
            crate::core::Platform::Console
        });
    if !pd.from_email.is_empty() && !pd.from_email.contains('@') {
        problem(
            "pagerduty.from_email",
            format!("`{}` is not an email address", pd.from_email),
        );
    }
    let pd_timeout = duration(
        "pagerduty.timeout",
        &pd.timeout,
        (Duration::seconds(1), minutes(2)),
        &mut problem,
    );

    // Slack.
    let sl = &raw.slack;
    let slack_timeout = duration(
        "slack.timeout",
        &sl.timeout,
        (Duration::seconds(1), minutes(1)),
        &mut problem,
    );
    let slack_mode = match sl.mode.trim() {
        "http" => SlackMode::Http,
        "socket" => SlackMode::Socket,
        other => {
            problem("slack.mode", format!("`{other}` is not http or socket"));
            SlackMode::Http
        }
    };
    let set = |secret: &Secret| !secret.expose().trim().is_empty();
    let slack_enabled = set(&sl.bot_token) || set(&sl.signing_secret) || set(&sl.app_token);
    if slack_enabled {
        // What each mode needs: the bot token always; the signing secret to verify requests
        // over HTTP; the app-level token to open Socket Mode connections.
        let needed: &[(&str, &Secret)] = match slack_mode {
            SlackMode::Http => &[
                ("slack.bot_token", &sl.bot_token),
                ("slack.signing_secret", &sl.signing_secret),
            ],
            SlackMode::Socket => &[
                ("slack.bot_token", &sl.bot_token),
                ("slack.app_token", &sl.app_token),
            ],
        };
        for (key, value) in needed {
            if !set(value) {
                problem(
                    key,
                    format!(
                        "is needed for Slack in {} mode (set it, or clear the other Slack secrets to turn Slack off)",
                        slack_mode.as_str()
                    ),
                );
            }
        }
        if set(&sl.bot_token) && !sl.bot_token.expose().trim().starts_with("xoxb-") {
            problem(
                "slack.bot_token",
                "must be a bot token (it starts with xoxb-)".into(),
            );
        }
        if set(&sl.app_token) && !sl.app_token.expose().trim().starts_with("xapp-") {
            problem(
                "slack.app_token",
                "must be an app-level token with connections:write (it starts with xapp-)".into(),
            );
        }
    }
    if !(sl.api_url.starts_with("https://") || sl.api_url.starts_with("http://")) {
        problem(
            "slack.api_url",
            format!("`{}` is not an http(s) URL", sl.api_url),
        );
    }
    let slack_ids = |key: &str,
                     ids: &[String],
                     kinds: &str,
                     problem: &mut dyn FnMut(&str, String)| {
        let prefixes: Vec<char> = kinds.chars().collect();
        for id in ids {
            if !crate::render::slack_id(id, &prefixes) {
                problem(
                    key,
                    format!(
                        "`{}` is not a Slack id starting with one of {kinds} (find it in the profile or user group menu: Copy member ID)",
                        id.chars().take(40).collect::<String>()
                    ),
                );
            }
        }
    };
    if open_incidents_on == crate::core::Platform::Slack && !slack_enabled {
        problem(
            "pagerduty.open_incidents_on",
            "is slack, but Slack is not configured (slack.bot_token and slack.signing_secret)"
                .into(),
        );
    }
    slack_ids("slack.responders", &sl.responders, "UW", &mut problem);
    slack_ids("slack.allowed_users", &sl.allowed_users, "UW", &mut problem);
    slack_ids(
        "slack.allowed_groups",
        &sl.allowed_groups,
        "S",
        &mut problem,
    );
    slack_ids("slack.workspaces", &sl.workspaces, "T", &mut problem);

    // Discord.
    let dc = &raw.discord;
    let discord_timeout = duration(
        "discord.timeout",
        &dc.timeout,
        (Duration::seconds(1), minutes(1)),
        &mut problem,
    );
    let discord_enabled = set(&dc.bot_token) || !dc.public_key.trim().is_empty();
    let discord_ids = |key: &str, ids: &[String], problem: &mut dyn FnMut(&str, String)| {
        ids.iter()
            .filter_map(|id| {
                let parsed = discord_id(id.trim());
                if parsed.is_none() {
                    problem(
                        key,
                        format!(
                            "`{}` is not a Discord id (17 to 20 digits; turn on Developer Mode and use Copy ID)",
                            id.chars().take(40).collect::<String>()
                        ),
                    );
                }
                parsed
            })
            .collect::<Vec<u64>>()
    };
    let discord_responders = discord_ids("discord.responders", &dc.responders, &mut problem);
    let discord_users = discord_ids("discord.allowed_users", &dc.allowed_users, &mut problem);
    let discord_roles = discord_ids("discord.allowed_roles", &dc.allowed_roles, &mut problem);
    let mut application_id = 0;
    let mut guild_id = 0;
    if discord_enabled {
        if !set(&dc.bot_token) {
            problem(
                "discord.bot_token",
                "is needed for Discord (set it, or clear discord.public_key to turn Discord off)"
                    .into(),
            );
        }
        let key = dc.public_key.trim();
        let valid_key = hex::decode(key)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .is_some_and(|bytes| serenity::interactions_endpoint::Verifier::try_new(bytes).is_ok());
        if !valid_key {
            problem(
                "discord.public_key",
                "must be the application's public key: 64 hex digits (General Information page)"
                    .into(),
            );
        }
        for (field, raw_id, slot) in [
            (
                "discord.application_id",
                &dc.application_id,
                &mut application_id,
            ),
            ("discord.guild_id", &dc.guild_id, &mut guild_id),
        ] {
            match discord_id(raw_id.trim()) {
                Some(id) => *slot = id,
                None => problem(
                    field,
                    format!(
                        "`{}` is not a Discord id (17 to 20 digits)",
                        raw_id.chars().take(40).collect::<String>()
                    ),
                ),
            }
        }
        if dc
            .incidents_channel
            .trim()
            .trim_start_matches('#')
            .is_empty()
            && announce_channel_name(&raw.incidents.announce_channel).is_empty()
        {
            problem(
                "discord.incidents_channel",
                "is needed for Discord: the channel id or name incidents are announced in".into(),
            );
        }
    }
    if !(dc.api_url.starts_with("https://") || dc.api_url.starts_with("http://")) {
        problem(
            "discord.api_url",
            format!("`{}` is not an http(s) URL", dc.api_url),
        );
    }
    if open_incidents_on == crate::core::Platform::Discord && !discord_enabled {
        problem(
            "pagerduty.open_incidents_on",
            "is discord, but Discord is not configured (discord.bot_token and discord.public_key)"
                .into(),
        );
    }

    // Escalation steps.
    let mut escalation = Vec::new();
    for (i, step) in raw.escalation.steps.iter().enumerate() {
        let key = |field: &str| format!("escalation.steps.{i}.{field}");
        let after = duration(
            &key("after"),
            &step.after,
            (Duration::zero(), days(30)),
            &mut problem,
        );
        let severities = match &step.severities {
            None => Severity::ALL.to_vec(),
            Some(list) => list
                .iter()
                .filter_map(|s| match s.parse::<Severity>() {
                    Ok(sev) => Some(sev),
                    Err(e) => {
                        problem(&key("severities"), e.to_string());
                        None
                    }
                })
                .collect(),
        };
        let mut page = Vec::new();
        for target in &step.page {
            match crate::core::PageTarget::parse(target) {
                Ok(crate::core::PageTarget::Service(name))
                    if !pd
                        .routing_keys
                        .keys()
                        .any(|k| k.eq_ignore_ascii_case(&name)) =>
                {
                    problem(
                        &key("page"),
                        format!("service `{name}` has no entry in [pagerduty.routing_keys]"),
                    );
                }
                Ok(target) => page.push(target),
                Err(e) => problem(&key("page"), e),
            }
        }
        let mut mention = Vec::new();
        let mut mention_on_call = Vec::new();
        for name in &step.mention {
            if let Some((scope @ ("slack" | "discord"), id)) = name.split_once(':') {
                let valid = if scope == "discord" {
                    discord_id(id.strip_prefix("role:").unwrap_or(id)).is_some()
                } else {
                    !id.is_empty()
                        && id.len() <= 32
                        && id.chars().all(|c| c.is_ascii_alphanumeric())
                };
                if valid {
                    mention.push(format!("{scope}:{id}"));
                } else {
                    problem(
                        &key("mention"),
                        format!(
                            "`{}` is not a {scope} id (e.g. slack:U024BE7LH for a user, slack:S0614TZR7 for a user group, discord:80351110224678912 for a user, discord:role:80351110224678913 for a role)",
                            name.chars().take(40).collect::<String>()
                        ),
                    );
                }
                continue;
            }
            if name.contains(':') {
                match crate::core::PageTarget::parse(name) {
                    Ok(
                        target @ (crate::core::PageTarget::Schedule(_)
                        | crate::core::PageTarget::EscalationPolicy(_)),
                    ) => mention_on_call.push(target),
                    Ok(other) => problem(
                        &key("mention"),
                        format!(
                            "`{other}` cannot be mentioned; use a chat user or group, schedule:ID or escalation_policy:ID"
                        ),
                    ),
                    Err(e) => problem(&key("mention"), e),
                }
                continue;
            }
            match crate::core::UserRef::parse(name) {
                Ok(user) => mention.push(user.to_string()),
                Err(e) => problem(&key("mention"), e.to_string()),
            }
        }
        let until = match step.until.as_deref().unwrap_or("acknowledged") {
            "acknowledged" => crate::core::StopWhen::Acknowledged,
            "resolved" => crate::core::StopWhen::Resolved,
            other => {
                problem(
                    &key("until"),
                    format!("`{other}` is not acknowledged or resolved"),
                );
                crate::core::StopWhen::Acknowledged
            }
        };
        if step.name.trim().is_empty() {
            problem(&key("name"), "a step needs a name".into());
        }
        escalation.push(crate::core::EscalationStep {
            name: step.name.trim().to_string(),
            after,
            severities,
            page,
            mention,
            mention_on_call,
            until,
        });
    }
    escalation.sort_by_key(|step| step.after);
    // Responder requests attach to a PagerDuty incident; warroom creates one only by paging a
    // service with a routing key, so for every severity a step applies to, a service must be
    // paged at that step or before it.
    for (i, step) in escalation.iter().enumerate() {
        let responders = step
            .page
            .iter()
            .any(|t| !matches!(t, crate::core::PageTarget::Service(_)));
        if !responders {
            continue;
        }
        for severity in &step.severities {
            let service_by_then = escalation[..=i].iter().any(|s| {
                s.applies_to(*severity)
                    && s.page.iter().any(|t| matches!(t, crate::core::PageTarget::Service(name) if routing_keys.contains_key(name)))
            });
            if !service_by_then {
                problem(
                    &format!("escalation.steps.{i}.page"),
                    format!(
                        "step \"{}\" requests responders (user, escalation_policy or schedule) for {severity}, which need a PagerDuty incident: page a service with a routing key at this step or an earlier one that applies to {severity}",
                        step.name
                    ),
                );
                break;
            }
        }
    }
    // A delivery must finish within its lease, or another process may send it again; a
    // responder request can take four calls.
    if lease < pd_timeout * 4 {
        problem(
            "scheduler.lease",
            format!(
                "must be at least 4 × pagerduty.timeout ({}), so a PagerDuty call finishes within its lease",
                human(pd_timeout * 4)
            ),
        );
    }
    // Runbooks.
    let rb = &raw.runbooks;
    let runbooks = {
        use crate::runbook::action::{ActionKind, MAX_REPLICAS, valid_label};
        use crate::runbook::guard::{ClusterSource, Role, RunbookConfig};
        let cluster = match rb.cluster.trim() {
            "auto" => ClusterSource::Auto,
            "in-cluster" => ClusterSource::InCluster,
            "kubeconfig" => ClusterSource::Kubeconfig,
            "none" | "" => ClusterSource::None,
            url if url.starts_with("http://") || url.starts_with("https://") => {
                ClusterSource::Url(url.to_string())
            }
            other => {
                problem(
                    "runbooks.cluster",
                    format!(
                        "`{other}` is not auto, in-cluster, kubeconfig, none or an API server URL"
                    ),
                );
                ClusterSource::None
            }
        };
        let mut namespaces = Vec::new();
        for ns in &rb.namespaces {
            if valid_label(ns) {
                namespaces.push(ns.clone());
            } else {
                problem(
                    "runbooks.namespaces",
                    format!(
                        "`{}` is not a namespace name",
                        ns.chars().take(60).collect::<String>()
                    ),
                );
            }
        }
        let default_namespace = rb.default_namespace.trim().to_string();
        if !namespaces.contains(&default_namespace) {
            problem(
                "runbooks.default_namespace",
                format!("`{default_namespace}` is not in runbooks.namespaces"),
            );
        }
        let mut bounds = std::collections::BTreeMap::new();
        for (deployment, b) in &rb.bounds {
            let key = format!("runbooks.bounds.{deployment}");
            if !valid_label(deployment) {
                problem(&key, "is not a deployment name".into());
            } else if b.min < 0 || b.max > i64::from(MAX_REPLICAS) || b.min > b.max {
                problem(
                    &key,
                    format!(
                        "min {} and max {} must satisfy 0 ≤ min ≤ max ≤ {MAX_REPLICAS}",
                        b.min, b.max
                    ),
                );
            } else {
                bounds.insert(deployment.clone(), (b.min as i32, b.max as i32));
            }
        }
        let mut probes = std::collections::BTreeMap::new();
        for (name, url) in &rb.probes {
            let key = format!("runbooks.probes.{name}");
            match url::Url::parse(url) {
                Ok(parsed) if valid_label(name) && matches!(parsed.scheme(), "http" | "https") => {
                    probes.insert(name.clone(), parsed);
                }
                _ => problem(
                    &key,
                    format!("`{url}` is not an http(s) URL (or the name is not a plain name)"),
                ),
            }
        }
        let mut roles = Vec::new();
        for (i, role) in rb.roles.iter().enumerate() {
            let key = |field: &str| format!("runbooks.roles.{i}.{field}");
            let mut actions = Vec::new();
            for action in &role.actions {
                match ActionKind::parse(action) {
                    Some(kind) => actions.push(kind),
                    None => problem(
                        &key("actions"),
                        format!(
                            "`{action}` is not an action; known: {}",
                            ActionKind::ALL.map(ActionKind::as_str).join(", ")
                        ),
                    ),
                }
            }
            for ns in &role.namespaces {
                if !namespaces.contains(ns) {
                    problem(
                        &key("namespaces"),
                        format!("`{ns}` is not in runbooks.namespaces"),
                    );
                }
            }
            let mut users = Vec::new();
            for user in &role.users {
                match crate::core::UserRef::parse(user) {
                    Ok(user) => users.push(user),
                    Err(e) => problem(&key("users"), e.to_string()),
                }
            }
            roles.push(Role {
                name: role.name.clone(),
                everyone: role.everyone,
                users,
                groups: role.groups.clone(),
                actions,
                namespaces: role.namespaces.clone(),
            });
        }
        RunbookConfig {
            cluster,
            context: (!rb.context.trim().is_empty()).then(|| rb.context.trim().to_string()),
            namespaces,
            default_namespace,
            confirm_within: duration(
                "runbooks.confirm_within",
                &rb.confirm_within,
                (Duration::seconds(30), minutes(60)),
                &mut problem,
            ),
            p0_second_person: rb.p0_second_person,
            timeout: duration(
                "runbooks.timeout",
                &rb.timeout,
                (Duration::seconds(1), minutes(5)),
                &mut problem,
            )
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(30)),
            playbooks_dir: (!rb.playbooks_dir.trim().is_empty())
                .then(|| PathBuf::from(rb.playbooks_dir.trim())),
            bounds,
            probes,
            roles,
        }
    };

    // A Slack delivery makes a few calls (create, topic, invites; post, pin).
    if slack_enabled && lease < slack_timeout * 4 {
        problem(
            "scheduler.lease",
            format!(
                "must be at least 4 × slack.timeout ({}), so a Slack delivery finishes within its lease",
                human(slack_timeout * 4)
            ),
        );
    }

    // A Discord delivery makes a few calls too (create, topic, access; post, pin).
    if discord_enabled && lease < discord_timeout * 4 {
        problem(
            "scheduler.lease",
            format!(
                "must be at least 4 × discord.timeout ({}), so a Discord delivery finishes within its lease",
                human(discord_timeout * 4)
            ),
        );
    }

    // Alertmanager and maintenance windows.
    let am = &raw.alertmanager;
    let am_platform = am
        .open_incidents_on
        .parse::<crate::core::Platform>()
        .unwrap_or_else(|e| {
            problem(
                "alertmanager.open_incidents_on",
                format!("{e}; use console, slack or discord"),
            );
            crate::core::Platform::Console
        });
    for (platform, enabled, what) in [
        (
            crate::core::Platform::Slack,
            slack_enabled,
            "Slack is not configured (slack.bot_token and slack.signing_secret)",
        ),
        (
            crate::core::Platform::Discord,
            discord_enabled,
            "Discord is not configured (discord.bot_token and discord.public_key)",
        ),
    ] {
        if am_platform == platform && !enabled {
            problem(
                "alertmanager.open_incidents_on",
                format!("is {}, but {what}", platform.as_str()),
            );
        }
    }
    let fallback_severity = am
        .fallback_severity
        .parse::<Severity>()
        .unwrap_or_else(|e| {
            problem("alertmanager.fallback_severity", e.to_string());
            Severity::P2
        });
    for (i, rule) in am.severity_rules.iter().enumerate() {
        if rule.labels.is_empty() {
            problem(
                &format!("alertmanager.severity_rules.{i}.labels"),
                "name at least one label (fallback_severity covers the rest)".into(),
            );
        }
    }
    if am.source.trim().is_empty() || am.source.contains(':') {
        problem(
            "alertmanager.source",
            "must be a name without `:` (e.g. Alertmanager)".into(),
        );
    }
    let maintenance_pages_from = raw
        .maintenance
        .pages_from
        .parse::<Severity>()
        .unwrap_or_else(|e| {
            problem("maintenance.pages_from", e.to_string());
            Severity::P1
        });
    let mut maintenance_windows = Vec::new();
    for (i, window) in raw.maintenance.windows.iter().enumerate() {
        use crate::core::maintenance::{RecurringWindow, parse_every, parse_time_of_day};
        let key = |field: &str| format!("maintenance.windows.{i}.{field}");
        if window.name.trim().is_empty() || window.name.contains(':') {
            problem(&key("name"), "must be a name without `:`".into());
        }
        if maintenance_windows
            .iter()
            .any(|w: &RecurringWindow| w.name == window.name.trim())
        {
            problem(
                &key("name"),
                format!("`{}` is used twice", window.name.trim()),
            );
        }
        let every = parse_every(&window.every).map_err(|e| problem(&key("every"), e));
        let start = parse_time_of_day(&window.start).map_err(|e| problem(&key("start"), e));
        let length = duration(
            &key("duration"),
            &window.duration,
            (minutes(5), days(crate::core::maintenance::MAX_WINDOW_DAYS)),
            &mut problem,
        );
        if let (Ok(every), Ok(start)) = (every, start) {
            match RecurringWindow::new(window.name.trim().to_string(), every, start, length) {
                Ok(w) => maintenance_windows.push(w),
                Err(e) => problem(&key("duration"), e),
            }
        }
    }
    let alertmanager = AlertmanagerConfig {
        token: Secret::new(am.token.expose().trim()),
        open_incidents_on: am_platform,
        auto_resolve: am.auto_resolve,
        source: am.source.trim().to_string(),
        severity: crate::alertmanager::SeverityRules {
            rules: am.severity_rules.clone(),
            fallback: fallback_severity,
        },
    };
    if !problems.is_empty() {
        return Err(ConfigError(problems));
    }
    let pagerduty = PagerDutyConfig {
        events_url: pd.events_url.clone(),
        api_url: pd.api_url.trim_end_matches('/').to_string(),
        api_token: pd.api_token.clone(),
        from_email: pd.from_email.clone(),
        webhook_secrets: pd
            .webhook_secrets
            .iter()
            .filter(|s| !s.expose().is_empty())
            .cloned()
            .collect(),
        source: pd.source.clone(),
        timeout: pd_timeout
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(10)),
        routing_keys,
        priorities,
        open_incidents_on,
    };
    let announce_channel = announce_channel_name(&raw.incidents.announce_channel);
    Ok(Config {
        alertmanager,
        maintenance_windows,
        listen,
        database,
        postgres_schema,
        postgres_pool_size: pool_size,
        policy: Policy {
            severities,
            classification: ClassificationRules { rules, default },
            channel_prefix: raw.incidents.channel_prefix.trim().to_string(),
            announce_channel: announce_channel.clone(),
            postmortem_due,
            postmortem_reminders,
            escalation,
            pagerduty_services: pagerduty.routing_keys.keys().cloned().collect(),
            pagerduty_rest: pagerduty.rest_enabled(),
            lateness_note_after,
            maintenance_pages_from,
        },
        scheduler: SchedulerConfig {
            poll_interval: poll_interval
                .to_std()
                .unwrap_or(std::time::Duration::from_secs(5)),
            lease,
        },
        pagerduty,
        slack: slack_enabled.then(|| SlackConfig {
            mode: slack_mode,
            signing_secret: Secret::new(sl.signing_secret.expose().trim()),
            bot_token: Secret::new(sl.bot_token.expose().trim()),
            app_token: Secret::new(sl.app_token.expose().trim()),
            incidents_channel: match sl.incidents_channel.trim().trim_start_matches('#') {
                "" => announce_channel.clone(),
                channel => channel.to_string(),
            },
            api_url: sl.api_url.trim().trim_end_matches('/').to_string(),
            timeout: slack_timeout
                .to_std()
                .unwrap_or(std::time::Duration::from_secs(10)),
            responders: sl.responders.clone(),
            allowed_users: sl.allowed_users.clone(),
            allowed_groups: sl.allowed_groups.clone(),
            workspaces: sl.workspaces.clone(),
        }),
        discord: discord_enabled.then(|| DiscordConfig {
            public_key: dc.public_key.trim().to_ascii_lowercase(),
            bot_token: Secret::new(dc.bot_token.expose().trim()),
            application_id,
            guild_id,
            incidents_channel: match dc.incidents_channel.trim().trim_start_matches('#') {
                "" => announce_channel.clone(),
                channel => channel.to_string(),
            },
            category: dc.category.trim().to_string(),
            api_url: dc.api_url.trim().trim_end_matches('/').to_string(),
            timeout: discord_timeout
                .to_std()
                .unwrap_or(std::time::Duration::from_secs(10)),
            responders: discord_responders,
            allowed_users: discord_users,
            allowed_roles: discord_roles,
        }),
        templates_dir: (!raw.templates.dir.trim().is_empty())
            .then(|| PathBuf::from(raw.templates.dir.trim())),
        runbooks,
    })
}

/// `incidents.announce_channel` without spaces or a leading `#`.
fn announce_channel_name(raw: &str) -> String {
    raw.trim().trim_start_matches('#').to_string()
}

fn valid_identifier(text: &str) -> bool {
    text.len() <= 63
        && text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn no_env() -> Env {
        Env::prefixed("WARROOM_UNIT_TEST_NO_SUCH_PREFIX_")
    }

    fn file(content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_are_the_design_defaults() {
        let config = load_with_env(None, no_env()).unwrap();
        let p = &config.policy;
        let mins = |s: Severity| p.severity(s).respond_within.num_minutes();
        assert_eq!(
            [
                mins(Severity::P0),
                mins(Severity::P1),
                mins(Severity::P2),
                mins(Severity::P3)
            ],
            [15, 60, 240, 1440]
        );
        assert!(
            p.severities
                .iter()
                .all(|s| s.status_update_every == Duration::minutes(30))
        );
        assert_eq!(p.postmortem_due, Duration::hours(48));
        assert_eq!(p.classification.default, Severity::P2);
        assert_eq!(
            p.classification.classify("API returning 503s").0,
            Severity::P1
        );
        assert_eq!(
            p.classification.classify("Partial outage in EU").0,
            Severity::P1
        );
        assert_eq!(p.classification.classify("Payments down").0, Severity::P0);
        assert_eq!(
            p.classification.classify("typo on the pricing page").0,
            Severity::P3
        );
        assert_eq!(
            config.database,
            DatabaseTarget::Sqlite {
                path: "warroom.db".into()
            }
        );
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn file_overrides_defaults_and_problems_name_key_and_line() {
        let f = file("[severities.p0]\nrespond_within = \"10m\"\n");
        let config = load_with_env(Some(f.path()), no_env()).unwrap();
        assert_eq!(
            config.policy.severity(Severity::P0).respond_within,
            Duration::minutes(10)
        );
        assert_eq!(config.policy.severity(Severity::P0).name, "Critical");

        let f = file(
            "# comment\n[severities.p1]\nrespond_within = \"soon\"\n[classification]\ndefault = \"P9\"\n",
        );
        let err = load_with_env(Some(f.path()), no_env()).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.0.len(), 2, "{text}");
        assert!(
            text.contains(&format!(
                "{}:3: severities.p1.respond_within: `soon` is not a duration",
                f.path().display()
            )),
            "{text}"
        );
        assert!(
            text.contains(":5: classification.default: `P9` is not a severity"),
            "{text}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_toml_are_reported_with_lines() {
        let f = file("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n");
        let err = load_with_env(Some(f.path()), no_env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "{err}");
        let f = file("[server]\nlisten = \n");
        let err = load_with_env(Some(f.path()), no_env())
            .unwrap_err()
            .to_string();
        assert!(err.contains(":2: not valid TOML"), "{err}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure type, not ours
    fn environment_overrides_every_key() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("WARROOM_DATABASE__URL", "postgres://u:hunter2@localhost/db");
            jail.set_env("WARROOM_SEVERITIES__P3__RESPOND_WITHIN", "2d");
            jail.set_env("WARROOM_TEST_DATABASE_URL", "not configuration");
            let config = load(None).unwrap();
            assert!(
                matches!(&config.database, DatabaseTarget::Postgres { url, .. } if url.expose().contains("hunter2"))
            );
            assert_eq!(
                config.policy.severity(Severity::P3).respond_within,
                Duration::days(2)
            );
            let debug = format!("{config:?}");
            assert!(
                !debug.contains("hunter2"),
                "secrets must not appear in Debug: {debug}"
            );
            assert!(debug.contains("[redacted]"));

            jail.set_env("WARROOM_SEVERITIES__P0__RESPOND_WITHIN", "whenever");
            let err = load(None).unwrap_err().to_string();
            assert!(err.contains("environment variable WARROOM_SEVERITIES__P0__RESPOND_WITHIN: severities.p0.respond_within"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn durations_have_sane_ranges() {
        for (key, value, complaint) in [
            (
                "[severities.p0]\nstatus_update_every",
                "\"1ms\"",
                "out of range; use between 1m and 7d",
            ),
            (
                "[severities.p0]\nstatus_update_every",
                "\"300000y\"",
                "out of range",
            ),
            (
                "[scheduler]\nlease",
                "\"0s\"",
                "out of range; use between 5s and 1h",
            ),
        ] {
            let f = file(&format!("{key} = {value}\n"));
            let err = load_with_env(Some(f.path()), no_env())
                .unwrap_err()
                .to_string();
            assert!(err.contains(complaint), "{key}={value}: {err}");
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure type, not ours
    fn numbers_from_the_environment_are_text_where_text_is_expected() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("WARROOM_INCIDENTS__CHANNEL_PREFIX", "2024");
            jail.set_env("WARROOM_INCIDENTS__ANNOUNCE_CHANNEL", "42");
            let config = load(None).unwrap();
            assert_eq!(config.policy.channel_prefix, "2024");
            assert_eq!(config.policy.announce_channel, "42");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure type, not ours
    fn text_from_the_environment_keeps_its_leading_zeros() {
        // Digits with leading zeros: read as numbers, they would lose the zeros (the key,
        // too long for a 64-bit number, is checked as text in any case).
        let key = "0037141165799031084911491940920288932869124361425304912763764780";
        figment::Jail::expect_with(|jail| {
            jail.set_env("WARROOM_DISCORD__PUBLIC_KEY", key);
            jail.set_env("WARROOM_DISCORD__BOT_TOKEN", "0123");
            jail.set_env("WARROOM_DISCORD__APPLICATION_ID", "80351110224678912");
            jail.set_env("WARROOM_DISCORD__GUILD_ID", "80351110224678913");
            jail.set_env(
                "WARROOM_DISCORD__RESPONDERS",
                r#"["80351110224678914", "80351110224678915"]"#,
            );
            jail.set_env("WARROOM_INCIDENTS__CHANNEL_PREFIX", "007");
            // Numbers and booleans are still read where a key wants one.
            jail.set_env("WARROOM_DATABASE__POOL_SIZE", "3");
            jail.set_env("WARROOM_ALERTMANAGER__AUTO_RESOLVE", "false");
            let config = load(None).unwrap();
            let discord = config.discord.expect("Discord is on");
            assert_eq!(discord.public_key, key);
            assert_eq!(discord.bot_token.expose(), "0123");
            assert_eq!(discord.guild_id, 80351110224678913);
            assert_eq!(discord.responders, [80351110224678914, 80351110224678915]);
            assert_eq!(config.policy.channel_prefix, "007");
            assert_eq!(config.postgres_pool_size, 3);
            assert!(!config.alertmanager.auto_resolve);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure type, not ours
    fn a_secret_in_the_wrong_shape_is_not_repeated_in_the_error() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "WARROOM_PAGERDUTY__ROUTING_KEYS",
                "R0UTINGKEYSECRET0000000000000001",
            );
            let err = load(None).unwrap_err().to_string();
            assert!(
                err.contains("pagerduty.routing_keys: invalid type: found text, expected a map"),
                "{err}"
            );
            assert!(!err.contains("R0UTINGKEYSECRET"), "{err}");
            Ok(())
        });
        // One webhook secret alone is a list of one.
        figment::Jail::expect_with(|jail| {
            jail.set_env("WARROOM_PAGERDUTY__WEBHOOK_SECRETS", "whsec-one");
            let config = load(None).unwrap();
            let secrets: Vec<&str> = config
                .pagerduty
                .webhook_secrets
                .iter()
                .map(Secret::expose)
                .collect();
            assert_eq!(secrets, ["whsec-one"]);
            jail.set_env("WARROOM_PAGERDUTY__WEBHOOK_SECRETS", r#"["a", "b"]"#);
            assert_eq!(load(None).unwrap().pagerduty.webhook_secrets.len(), 2);
            Ok(())
        });
    }

    #[test]
    fn responder_targets_need_a_service_paged_first() {
        let lone =
            file("[[escalation.steps]]\nname = \"Lead\"\nafter = \"0m\"\npage = [\"user:PABC\"]\n");
        let err = load_with_env(Some(lone.path()), no_env())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("escalation.steps.0.page: step \"Lead\" requests responders"),
            "{err}"
        );
        let steps = "[[escalation.steps]]\nname = \"On-call\"\nafter = \"0m\"\nseverities = [\"P0\"]\npage = [\"service:oncall\"]\n\n[[escalation.steps]]\nname = \"Lead\"\nafter = \"30m\"\npage = [\"user:PABC\"]\n";
        let key = "[pagerduty.routing_keys]\noncall = \"R0UTINGKEY0000000000000000000001\"\n";
        let err = load_with_env(Some(file(&format!("{steps}{key}")).path()), no_env())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("for P1"),
            "only P0 pages a service first: {err}"
        );
        let all = steps.replace("severities = [\"P0\"]\n", "");
        let err = load_with_env(Some(file(&all).path()), no_env())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("for P0"),
            "the service has no routing key: {err}"
        );
        assert!(load_with_env(Some(file(&format!("{all}{key}")).path()), no_env()).is_ok());
        let short = file("[scheduler]\nlease = \"10s\"\n");
        let err = load_with_env(Some(short.path()), no_env())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("scheduler.lease: must be at least 4 × pagerduty.timeout (40s)"),
            "{err}"
        );
    }

    #[test]
    fn database_urls() {
        assert!(matches!(
            DatabaseTarget::from_url("postgresql://x/y", 2),
            Ok(DatabaseTarget::Postgres { pool_size: 2, .. })
        ));
        assert_eq!(
            DatabaseTarget::from_url("sqlite:/tmp/a.db", 2),
            Ok(DatabaseTarget::Sqlite {
                path: "/tmp/a.db".into()
            })
        );
        assert!(DatabaseTarget::from_url("mysql://x", 2).is_err());
        assert!(DatabaseTarget::from_url("sqlite:", 2).is_err());
        // TLS parameters are checked with the URL, and the URL (a secret) is not repeated.
        assert!(
            DatabaseTarget::from_url(
                "postgres://u:pw@db/w?sslmode=verify-full&sslrootcert=/ca.pem",
                2
            )
            .is_ok()
        );
        let refused =
            DatabaseTarget::from_url("postgres://u:pw@db/w?sslmode=allow", 2).unwrap_err();
        assert!(
            refused.contains("sslmode=allow") && !refused.contains("pw@db"),
            "{refused}"
        );
    }

    #[test]
    fn slack_is_off_until_both_secrets_are_set_and_its_ids_are_checked() {
        let off = load_with_env(None, no_env()).unwrap();
        assert!(off.slack.is_none());
        let on = load_with_env(
            Some(file("[slack]\nsigning_secret = \"s\"\nbot_token = \"xoxb-1\"\napi_url = \"http://127.0.0.1:9/api/\"\nresponders = [\"U024BE7LH\"]\n").path()),
            no_env(),
        )
        .unwrap()
        .slack
        .expect("on");
        assert_eq!(on.api_url, "http://127.0.0.1:9/api");
        assert_eq!(
            on.incidents_channel, "incidents",
            "defaults to the announce channel"
        );
        for (text, complaint) in [
            ("signing_secret = \"s\"", "slack.bot_token: is needed"),
            ("bot_token = \"xoxb-1\"", "slack.signing_secret: is needed"),
            (
                "mode = \"socket\"\nbot_token = \"xoxb-1\"",
                "slack.app_token: is needed for Slack in socket mode",
            ),
            (
                "mode = \"socket\"\nbot_token = \"xoxb-1\"\napp_token = \"xoxb-2\"",
                "it starts with xapp-",
            ),
            (
                "bot_token = \"xoxp-1\"\nsigning_secret = \"s\"",
                "must be a bot token",
            ),
            ("mode = \"sockets\"", "is not http or socket"),
            (
                "allowed_groups = [\"U1X\"]",
                "is not a Slack id starting with one of S",
            ),
            ("responders = [\"<!here>\"]", "is not a Slack id"),
            (
                "workspaces = [\"U0TEST\"]",
                "slack.workspaces: `U0TEST` is not a Slack id starting with one of T",
            ),
        ] {
            let err = load_with_env(Some(file(&format!("[slack]\n{text}\n")).path()), no_env())
                .unwrap_err()
                .to_string();
            assert!(err.contains(complaint), "{text}: {err}");
        }
        let err = load_with_env(
            Some(file("[pagerduty]\nopen_incidents_on = \"slack\"\n").path()),
            no_env(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("Slack is not configured"), "{err}");
        let err = load_with_env(
            Some(
                file(
                    "[slack]\nsigning_secret = \"s\"\nbot_token = \"xoxb-1\"\ntimeout = \"30s\"\n",
                )
                .path(),
            ),
            no_env(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("4 × slack.timeout"), "{err}");
    }

    #[test]
    fn discord_is_off_until_its_key_or_token_is_set_and_its_ids_are_checked() {
        assert!(load_with_env(None, no_env()).unwrap().discord.is_none());
        let key = "67c6bd767ca099e79efac9fcce4d2022a63bf7dea780e7f3d813f694c1597089";
        let good = format!(
            "public_key = \"{key}\"\nbot_token = \"t\"\napplication_id = \"80351110224678912\"\nguild_id = 80351110224678913\nresponders = [\"80351110224678914\"]\napi_url = \"http://127.0.0.1:9/\"\n"
        );
        let on = load_with_env(Some(file(&format!("[discord]\n{good}")).path()), no_env())
            .unwrap()
            .discord
            .expect("on");
        assert_eq!(on.application_id, 80351110224678912);
        assert_eq!(on.guild_id, 80351110224678913, "a number is read as an id");
        assert_eq!(on.responders, vec![80351110224678914]);
        assert_eq!(on.api_url, "http://127.0.0.1:9");
        assert!(
            !on.is_discord(),
            "a test server: serenity's ratelimiter off"
        );
        assert_eq!(on.incidents_channel, "incidents");
        let default_url = good.replace("api_url = \"http://127.0.0.1:9/\"\n", "");
        let discord = load_with_env(
            Some(file(&format!("[discord]\n{default_url}")).path()),
            no_env(),
        )
        .unwrap()
        .discord
        .unwrap();
        assert!(
            discord.is_discord(),
            "{}: serenity's ratelimiter on",
            discord.api_url
        );
        for (text, complaint) in [
            (
                format!("public_key = \"{key}\""),
                "discord.bot_token: is needed",
            ),
            (
                "bot_token = \"t\"\npublic_key = \"abc\"".to_string(),
                "discord.public_key: must be the application's public key",
            ),
            (
                good.replace("guild_id = 80351110224678913", "guild_id = \"general\""),
                "discord.guild_id: `general` is not a Discord id",
            ),
            (
                format!("{good}allowed_roles = [\"@everyone\"]"),
                "discord.allowed_roles: `@everyone` is not a Discord id",
            ),
        ] {
            let err = load_with_env(Some(file(&format!("[discord]\n{text}\n")).path()), no_env())
                .unwrap_err()
                .to_string();
            assert!(err.contains(complaint), "{text}: {err}");
        }
        let err = load_with_env(
            Some(file("[pagerduty]\nopen_incidents_on = \"discord\"\n").path()),
            no_env(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("Discord is not configured"), "{err}");
        let err = load_with_env(
            Some(file("[[escalation.steps]]\nname = \"x\"\nafter = \"0m\"\nmention = [\"discord:role:12\"]\n").path()),
            no_env(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("is not a discord id"), "{err}");
    }
}
