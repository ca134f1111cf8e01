//! The `/incident` command language: one parser for Slack, Discord and the console.
//!
//! Parsing never panics and never allocates more than a bounded multiple of its input;
//! every error carries the usage line of the command that was meant.

use super::escalation::PageTarget;
use super::incident::Status;
use super::severity::Severity;
use super::text::{UserRef, clean_text};
use std::fmt;

/// Longest title accepted, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest status update or root cause accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 2_000;

/// A command a person typed after `/incident`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Declare {
        title: String,
        severity: Option<Severity>,
    },
    Ack,
    Sev(Severity),
    Commander(UserRef),
    Status(Status),
    Update(String),
    Resolve {
        root_cause: Option<String>,
    },
    Timeline,
    List {
        all: bool,
    },
    Help {
        topic: Option<CommandName>,
    },
    Page(PageTarget),
    Escalate,
    /// List the playbooks.
    Playbooks,
    /// Run a playbook; `args` is the `key=value …` text after its name.
    Run {
        playbook: String,
        args: String,
    },
    /// Run one action; `args` is the `key=value …` text after its name.
    Diag {
        action: String,
        args: String,
    },
    /// Scale a deployment (the count is checked by the runbook guard, not here).
    Scale {
        deployment: String,
        replicas: String,
        namespace: Option<String>,
    },
    /// Rollout restart of a deployment.
    Restart {
        deployment: String,
        namespace: Option<String>,
    },
    /// Confirm, cancel or undo runbook request N.
    Confirm(i64),
    Cancel(i64),
    Undo(i64),
    /// Statistics of the incidents declared in the last `days` days.
    Stats {
        days: i64,
    },
    /// Post the postmortem draft, or (`done`) record where the finished one is.
    Postmortem {
        done: Option<String>,
    },
    /// Start, end or show maintenance windows.
    Maintenance(MaintenanceCommand),
}

/// What `maintenance` was asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MaintenanceCommand {
    /// Show the windows in force and the next scheduled one.
    Show,
    /// Start a window now, for `minutes`, because of `reason`.
    Start { minutes: i64, reason: String },
    /// End the windows in force now.
    End,
}

/// The shortest and longest window `maintenance start` accepts, in minutes.
pub const MAINTENANCE_MINUTES: std::ops::RangeInclusive<i64> =
    5..=super::maintenance::MAX_WINDOW_DAYS * 24 * 60;

impl Command {
    /// Which command this is.
    pub fn name(&self) -> CommandName {
        match self {
            Command::Declare { .. } => CommandName::Declare,
            Command::Ack => CommandName::Ack,
            Command::Sev(_) => CommandName::Sev,
            Command::Commander(_) => CommandName::Commander,
            Command::Status(_) => CommandName::Status,
            Command::Update(_) => CommandName::Update,
            Command::Resolve { .. } => CommandName::Resolve,
            Command::Timeline => CommandName::Timeline,
            Command::List { .. } => CommandName::List,
            Command::Help { .. } => CommandName::Help,
            Command::Page(_) => CommandName::Page,
            Command::Escalate => CommandName::Escalate,
            Command::Playbooks => CommandName::Playbooks,
            Command::Run { .. } => CommandName::Run,
            Command::Diag { .. } => CommandName::Diag,
            Command::Scale { .. } => CommandName::Scale,
            Command::Restart { .. } => CommandName::Restart,
            Command::Confirm(_) => CommandName::Confirm,
            Command::Cancel(_) => CommandName::Cancel,
            Command::Undo(_) => CommandName::Undo,
            Command::Stats { .. } => CommandName::Stats,
            Command::Postmortem { .. } => CommandName::Postmortem,
            Command::Maintenance(_) => CommandName::Maintenance,
        }
    }
}

/// The names of the commands, for help and usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandName {
    Declare,
    Ack,
    Sev,
    Commander,
    Status,
    Update,
    Resolve,
    Timeline,
    List,
    Help,
    Page,
    Escalate,
    Playbooks,
    Run,
    Diag,
    Scale,
    Restart,
    Confirm,
    Cancel,
    Undo,
    Stats,
    Postmortem,
    Maintenance,
}

impl CommandName {
    pub const ALL: [CommandName; 23] = [
        CommandName::Declare,
        CommandName::Ack,
        CommandName::Sev,
        CommandName::Commander,
        CommandName::Status,
        CommandName::Update,
        CommandName::Resolve,
        CommandName::Page,
        CommandName::Escalate,
        CommandName::Timeline,
        CommandName::Postmortem,
        CommandName::List,
        CommandName::Stats,
        CommandName::Maintenance,
        CommandName::Playbooks,
        CommandName::Run,
        CommandName::Diag,
        CommandName::Scale,
        CommandName::Restart,
        CommandName::Confirm,
        CommandName::Cancel,
        CommandName::Undo,
        CommandName::Help,
    ];

    /// Look a command up by name or alias (case-insensitive).
    pub fn lookup(word: &str) -> Option<CommandName> {
        Some(match word.to_ascii_lowercase().as_str() {
            "declare" | "open" => CommandName::Declare,
            "ack" | "acknowledge" => CommandName::Ack,
            "sev" | "severity" => CommandName::Sev,
            "commander" | "assign" => CommandName::Commander,
            "status" => CommandName::Status,
            "update" => CommandName::Update,
            "resolve" => CommandName::Resolve,
            "timeline" => CommandName::Timeline,
            "list" => CommandName::List,
            "help" => CommandName::Help,
            "page" => CommandName::Page,
            "escalate" => CommandName::Escalate,
            "playbooks" => CommandName::Playbooks,
            "run" => CommandName::Run,
            "diag" => CommandName::Diag,
            "scale" => CommandName::Scale,
            "restart" => CommandName::Restart,
            "confirm" => CommandName::Confirm,
            "cancel" => CommandName::Cancel,
            "undo" => CommandName::Undo,
            "stats" => CommandName::Stats,
            "postmortem" => CommandName::Postmortem,
            "maintenance" => CommandName::Maintenance,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            CommandName::Declare => "declare",
            CommandName::Ack => "ack",
            CommandName::Sev => "sev",
            CommandName::Commander => "commander",
            CommandName::Status => "status",
            CommandName::Update => "update",
            CommandName::Resolve => "resolve",
            CommandName::Timeline => "timeline",
            CommandName::List => "list",
            CommandName::Help => "help",
            CommandName::Page => "page",
            CommandName::Escalate => "escalate",
            CommandName::Playbooks => "playbooks",
            CommandName::Run => "run",
            CommandName::Diag => "diag",
            CommandName::Scale => "scale",
            CommandName::Restart => "restart",
            CommandName::Confirm => "confirm",
            CommandName::Cancel => "cancel",
            CommandName::Undo => "undo",
            CommandName::Stats => "stats",
            CommandName::Postmortem => "postmortem",
            CommandName::Maintenance => "maintenance",
        }
    }

    /// The usage line, e.g. `declare <title> [--sev P0|P1|P2|P3]`.
    pub fn usage(self) -> &'static str {
        match self {
            CommandName::Declare => "declare <title> [--sev P0|P1|P2|P3]   (alias: open)",
            CommandName::Ack => "ack",
            CommandName::Sev => "sev <P0|P1|P2|P3>",
            CommandName::Commander => "commander <user>   (alias: assign)",
            CommandName::Status => "status <investigating|identified|monitoring>",
            CommandName::Update => "update <text>",
            CommandName::Resolve => "resolve [root cause]",
            CommandName::Timeline => "timeline",
            CommandName::List => "list [--all]",
            CommandName::Help => "help [command]",
            CommandName::Page => "page <service:NAME|user:ID|escalation_policy:ID|schedule:ID>",
            CommandName::Escalate => "escalate",
            CommandName::Playbooks => "playbooks",
            CommandName::Run => "run <playbook> [key=value ...]",
            CommandName::Diag => {
                "diag <pods|events|logs|top|rollout_status|endpoints|nodes|probe> [key=value ...]"
            }
            CommandName::Scale => "scale <deployment> <replicas> [namespace=NS]",
            CommandName::Restart => "restart <deployment> [namespace=NS]",
            CommandName::Confirm => "confirm <request number>",
            CommandName::Cancel => "cancel <request number>",
            CommandName::Undo => "undo <request number>",
            CommandName::Stats => "stats [--days N]",
            CommandName::Postmortem => "postmortem [done <link>]",
            CommandName::Maintenance => "maintenance [start <duration> <reason> | end]",
        }
    }

    /// One sentence on what the command does.
    pub fn summary(self) -> &'static str {
        match self {
            CommandName::Declare => {
                "Declare a new incident: opens its channel, posts the alert, announces it and starts the escalation."
            }
            CommandName::Ack => "Acknowledge the incident of this channel: stops its escalation.",
            CommandName::Sev => "Change the severity of the incident of this channel.",
            CommandName::Commander => "Make someone the incident commander.",
            CommandName::Status => "Move the incident to investigating, identified or monitoring.",
            CommandName::Update => "Post a status update (resets the status-update reminder).",
            CommandName::Resolve => "Resolve the incident, optionally with the root cause.",
            CommandName::Timeline => "Show every event of the incident with actor and time.",
            CommandName::List => "List open incidents (--all includes resolved ones).",
            CommandName::Help => "Show the commands, or the details of one.",
            CommandName::Page => "Page an extra target through PagerDuty now.",
            CommandName::Escalate => "Jump to the next escalation step now.",
            CommandName::Playbooks => "List the runbook playbooks, with what each is for.",
            CommandName::Run => {
                "Run a playbook's steps; changes wait for a confirmation after a dry run."
            }
            CommandName::Diag => "Run one read-only diagnostic against the cluster.",
            CommandName::Scale => {
                "Scale a deployment within its bounds (dry run, then confirmation)."
            }
            CommandName::Restart => "Rollout restart of a deployment (dry run, then confirmation).",
            CommandName::Confirm => "Confirm a change waiting for confirmation.",
            CommandName::Cancel => "Cancel a change waiting for confirmation.",
            CommandName::Undo => {
                "Scale a deployment back to where a change found it (with confirmation)."
            }
            CommandName::Stats => {
                "Incident statistics of the last N days (30 unless told): counts by severity, time to acknowledge and resolve, missed response targets, escalations."
            }
            CommandName::Postmortem => {
                "Post the postmortem draft from the timeline; `done <link>` records the finished one and stops its reminders."
            }
            CommandName::Maintenance => {
                "Show maintenance windows, start one now (e.g. `start 2h database upgrade`) or end it; during one, low-severity alerts do not page."
            }
        }
    }

    /// Whether the command only reads (so that running it twice changes nothing).
    pub fn only_reads(self) -> bool {
        matches!(
            self,
            CommandName::Help
                | CommandName::List
                | CommandName::Stats
                | CommandName::Timeline
                | CommandName::Playbooks
                | CommandName::Diag
        )
    }

    /// Whether the command acts on the incident of the current channel.
    pub fn needs_incident(self) -> bool {
        !matches!(
            self,
            CommandName::Declare
                | CommandName::List
                | CommandName::Help
                | CommandName::Playbooks
                | CommandName::Stats
                | CommandName::Maintenance
        )
    }
}

impl fmt::Display for CommandName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A command that could not be parsed: what was wrong, and the usage to follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// What was wrong, in one sentence for a person.
    pub problem: String,
    /// The command the person meant, when known.
    pub command: Option<CommandName>,
}

impl ParseError {
    fn new(command: Option<CommandName>, problem: impl Into<String>) -> Self {
        ParseError {
            problem: problem.into(),
            command,
        }
    }

    /// The usage lines to show with the problem.
    pub fn usage(&self) -> Vec<&'static str> {
        match self.command {
            Some(name) => vec![name.usage()],
            None => CommandName::ALL.iter().map(|c| c.usage()).collect(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Usage: ", self.problem)?;
        let usage = self.usage();
        for (i, line) in usage.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "/incident {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

/// Parse the text typed after `/incident` (a leading `/incident` is accepted too).
pub fn parse(input: &str) -> Result<Command, ParseError> {
    let cleaned = clean_text(input);
    let mut rest = cleaned.trim();
    if let Some(after) = strip_word(rest, "/incident") {
        rest = after;
    }
    let (word, args) = split_first_word(rest);
    if word.is_empty() {
        return Err(ParseError::new(None, "No command given."));
    }
    let Some(name) = CommandName::lookup(word) else {
        return Err(ParseError::new(
            None,
            format!("Unknown command `{}`.", truncate_chars(word, 40)),
        ));
    };
    let args = args.trim();
    match name {
        CommandName::Declare => parse_declare(args),
        CommandName::Ack => no_args(name, args, Command::Ack),
        CommandName::Escalate => no_args(name, args, Command::Escalate),
        CommandName::Page => {
            if args.is_empty() {
                return Err(ParseError::new(Some(name), "Whom should warroom page?"));
            }
            PageTarget::parse(one_word(name, args)?)
                .map(Command::Page)
                .map_err(|e| ParseError::new(Some(name), format!("{e}.")))
        }
        CommandName::Timeline => no_args(name, args, Command::Timeline),
        CommandName::Stats => parse_stats(args),
        CommandName::Postmortem => parse_postmortem(args),
        CommandName::Maintenance => parse_maintenance(args),
        CommandName::Playbooks => no_args(name, args, Command::Playbooks),
        CommandName::Run | CommandName::Diag => {
            let (first, rest) = split_first_word(args);
            if first.is_empty() {
                return Err(ParseError::new(
                    Some(name),
                    if name == CommandName::Run {
                        "Which playbook? `/incident playbooks` lists them."
                    } else {
                        "Which diagnostic?"
                    },
                ));
            }
            let rest = bounded_text(name, rest, "arguments")?;
            Ok(if name == CommandName::Run {
                Command::Run {
                    playbook: truncate_chars(first, 80).to_string(),
                    args: rest,
                }
            } else {
                Command::Diag {
                    action: truncate_chars(first, 80).to_string(),
                    args: rest,
                }
            })
        }
        CommandName::Scale | CommandName::Restart => {
            let mut words: Vec<&str> = args.split_whitespace().collect();
            let mut namespace = None;
            if let Some(last) = words.last()
                && let Some(ns) = last.strip_prefix("namespace=")
            {
                namespace = Some(truncate_chars(ns, 80).to_string());
                words.pop();
            }
            match (name, words.as_slice()) {
                (CommandName::Scale, [deployment, replicas]) => Ok(Command::Scale {
                    deployment: truncate_chars(deployment, 80).to_string(),
                    replicas: truncate_chars(replicas, 20).to_string(),
                    namespace,
                }),
                (CommandName::Restart, [deployment]) => Ok(Command::Restart {
                    deployment: truncate_chars(deployment, 80).to_string(),
                    namespace,
                }),
                (CommandName::Scale, _) => Err(ParseError::new(
                    Some(name),
                    "Give a deployment and a replica count, e.g. `scale stock-analysis-api 5`.",
                )),
                _ => Err(ParseError::new(
                    Some(name),
                    "Give one deployment, e.g. `restart stock-analysis-api`.",
                )),
            }
        }
        CommandName::Confirm | CommandName::Cancel | CommandName::Undo => {
            let word = one_word(name, args.trim_start_matches('#'))?;
            let number = word.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                ParseError::new(
                    Some(name),
                    format!(
                        "`{}` is not a request number (they look like #12).",
                        truncate_chars(word, 20)
                    ),
                )
            })?;
            Ok(match name {
                CommandName::Confirm => Command::Confirm(number),
                CommandName::Cancel => Command::Cancel(number),
                _ => Command::Undo(number),
            })
        }
        CommandName::Sev => {
            if args.is_empty() {
                return Err(ParseError::new(Some(name), "Which severity?"));
            }
            one_word(name, args)?
                .parse::<Severity>()
                .map(Command::Sev)
                .map_err(|e| ParseError::new(Some(name), format!("{e}.")))
        }
        CommandName::Commander => {
            if args.is_empty() {
                return Err(ParseError::new(Some(name), "Who should be commander?"));
            }
            UserRef::parse(one_word(name, args)?)
                .map(Command::Commander)
                .map_err(|e| ParseError::new(Some(name), format!("{e}.")))
        }
        CommandName::Status => {
            if args.is_empty() {
                return Err(ParseError::new(Some(name), "Which status?"));
            }
            let word = one_word(name, args)?;
            match word.to_ascii_lowercase().as_str() {
                "investigating" => Ok(Command::Status(Status::Investigating)),
                "identified" => Ok(Command::Status(Status::Identified)),
                "monitoring" => Ok(Command::Status(Status::Monitoring)),
                "resolved" => Err(ParseError::new(
                    Some(name),
                    "To resolve, use `/incident resolve [root cause]`.",
                )),
                _ => Err(ParseError::new(
                    Some(name),
                    format!(
                        "`{}` is not a status; use investigating, identified or monitoring.",
                        truncate_chars(word, 40)
                    ),
                )),
            }
        }
        CommandName::Update => {
            let text = bounded_text(name, args, "update")?;
            if text.is_empty() {
                return Err(ParseError::new(Some(name), "The update has no text."));
            }
            Ok(Command::Update(text))
        }
        CommandName::Resolve => {
            let text = bounded_text(name, args, "root cause")?;
            Ok(Command::Resolve {
                root_cause: (!text.is_empty()).then_some(text),
            })
        }
        CommandName::List => match args {
            "" => Ok(Command::List { all: false }),
            "--all" | "all" => Ok(Command::List { all: true }),
            other => Err(ParseError::new(
                Some(name),
                format!("Unexpected `{}`.", truncate_chars(other, 40)),
            )),
        },
        CommandName::Help => {
            if args.is_empty() {
                return Ok(Command::Help { topic: None });
            }
            let word = one_word(name, args)?;
            match CommandName::lookup(word) {
                Some(topic) => Ok(Command::Help { topic: Some(topic) }),
                None => Err(ParseError::new(
                    None,
                    format!("There is no command `{}`.", truncate_chars(word, 40)),
                )),
            }
        }
    }
}

fn parse_declare(args: &str) -> Result<Command, ParseError> {
    let name = CommandName::Declare;
    // A quoted title is taken whole, so it may contain anything, `--sev` included.
    let (quoted, flags) = match split_quoted(args) {
        Some((title, rest)) => (Some(title), rest),
        None => (None, args),
    };
    let mut severity = None;
    let mut title_words: Vec<&str> = Vec::new();
    let mut words = flags.split_whitespace();
    while let Some(word) = words.next() {
        let value = if let Some(v) = word.strip_prefix("--sev=") {
            Some(v)
        } else if word == "--sev" || word == "--severity" {
            match words.next() {
                Some(v) => Some(v),
                None => {
                    return Err(ParseError::new(Some(name), "--sev needs a value."));
                }
            }
        } else {
            None
        };
        match value {
            Some(v) => {
                if severity.is_some() {
                    return Err(ParseError::new(Some(name), "--sev was given twice."));
                }
                severity = Some(
                    v.parse::<Severity>()
                        .map_err(|e| ParseError::new(Some(name), format!("{e}.")))?,
                );
            }
            None if quoted.is_some() => {
                return Err(ParseError::new(
                    Some(name),
                    format!(
                        "Unexpected `{}` after the quoted title.",
                        truncate_chars(word, 40)
                    ),
                ));
            }
            None => title_words.push(word),
        }
    }
    let joined = title_words.join(" ");
    let title = quoted.unwrap_or_else(|| strip_quotes(&joined)).trim();
    if title.is_empty() {
        return Err(ParseError::new(Some(name), "The incident needs a title."));
    }
    let count = title.chars().count();
    if count > MAX_TITLE_CHARS {
        return Err(ParseError::new(
            Some(name),
            format!(
                "The title is {count} characters long; keep it under {MAX_TITLE_CHARS} and put details in `/incident update`."
            ),
        ));
    }
    Ok(Command::Declare {
        title: title.to_string(),
        severity,
    })
}

/// `stats`, `stats --days 7`, `stats --days=7`.
fn parse_stats(args: &str) -> Result<Command, ParseError> {
    use super::stats::{DEFAULT_DAYS, MAX_DAYS};
    let name = CommandName::Stats;
    if args.is_empty() {
        return Ok(Command::Stats { days: DEFAULT_DAYS });
    }
    let value = match args.split_once('=') {
        Some((flag, value)) if flag.eq_ignore_ascii_case("--days") => value.trim(),
        _ => match strip_word(args, "--days") {
            Some(value) => value,
            None => {
                return Err(ParseError::new(
                    Some(name),
                    format!("`{}` is not an option of stats.", truncate_chars(args, 40)),
                ));
            }
        },
    };
    let value = one_word(name, value)?;
    match value.parse::<i64>() {
        Ok(days) if (1..=MAX_DAYS).contains(&days) => Ok(Command::Stats { days }),
        _ => Err(ParseError::new(
            Some(name),
            format!(
                "`{}` is not a number of days from 1 to {MAX_DAYS}.",
                truncate_chars(value, 20)
            ),
        )),
    }
}

/// `postmortem`, `postmortem done https://…`.
fn parse_postmortem(args: &str) -> Result<Command, ParseError> {
    let name = CommandName::Postmortem;
    if args.is_empty() {
        return Ok(Command::Postmortem { done: None });
    }
    let Some(link) = strip_word(args, "done") else {
        return Err(ParseError::new(
            Some(name),
            format!(
                "`{}` is not an option of postmortem.",
                truncate_chars(args, 40)
            ),
        ));
    };
    let link = strip_quotes(link.trim()).trim();
    if link.is_empty() {
        return Err(ParseError::new(
            Some(name),
            "Where is the postmortem? Give its link, e.g. `postmortem done https://wiki.example.com/pm/42`.",
        ));
    }
    let link = one_word(name, link)?;
    let parsed = url::Url::parse(link).ok().filter(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some() && link.len() <= 500
    });
    match parsed {
        Some(_) => Ok(Command::Postmortem {
            done: Some(link.to_string()),
        }),
        None => Err(ParseError::new(
            Some(name),
            format!("`{}` is not an http(s) link.", truncate_chars(link, 60)),
        )),
    }
}

/// `maintenance`, `maintenance start 2h database upgrade`, `maintenance end`.
fn parse_maintenance(args: &str) -> Result<Command, ParseError> {
    let name = CommandName::Maintenance;
    let (word, rest) = split_first_word(args);
    match word.to_ascii_lowercase().as_str() {
        "" | "show" | "status" if rest.trim().is_empty() => {
            Ok(Command::Maintenance(MaintenanceCommand::Show))
        }
        "end" | "stop" if rest.trim().is_empty() => {
            Ok(Command::Maintenance(MaintenanceCommand::End))
        }
        "start" => {
            let (duration, reason) = split_first_word(rest.trim());
            if duration.is_empty() {
                return Err(ParseError::new(
                    Some(name),
                    "How long? e.g. `maintenance start 2h database upgrade`.",
                ));
            }
            let minutes = humantime::parse_duration(duration)
                .ok()
                .map(|d| (d.as_secs() / 60) as i64)
                .filter(|m| MAINTENANCE_MINUTES.contains(m))
                .ok_or_else(|| {
                    ParseError::new(
                        Some(name),
                        format!(
                            "`{}` is not a duration from 5m to 7d (e.g. 90m, 2h, 1d).",
                            truncate_chars(duration, 20)
                        ),
                    )
                })?;
            let reason = bounded_text(name, reason, "reason")?;
            if reason.is_empty() {
                return Err(ParseError::new(
                    Some(name),
                    "Say why, e.g. `maintenance start 2h database upgrade`.",
                ));
            }
            Ok(Command::Maintenance(MaintenanceCommand::Start {
                minutes,
                reason,
            }))
        }
        _ => Err(ParseError::new(
            Some(name),
            format!(
                "`{}` is not something maintenance does.",
                truncate_chars(args, 40)
            ),
        )),
    }
}

/// `"a b" rest` → `("a b", " rest")` when `text` starts with a quote that is closed.
fn split_quoted(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start();
    for (open, close) in [('"', '"'), ('\'', '\''), ('“', '”')] {
        if let Some(inner) = text.strip_prefix(open) {
            let end = inner.find(close)?;
            return Some((&inner[..end], &inner[end + close.len_utf8()..]));
        }
    }
    None
}

fn bounded_text(name: CommandName, args: &str, what: &str) -> Result<String, ParseError> {
    let text = strip_quotes(args).trim();
    let count = text.chars().count();
    if count > MAX_TEXT_CHARS {
        return Err(ParseError::new(
            Some(name),
            format!("The {what} is {count} characters long; the limit is {MAX_TEXT_CHARS}."),
        ));
    }
    Ok(text.to_string())
}

fn no_args(name: CommandName, args: &str, command: Command) -> Result<Command, ParseError> {
    if args.is_empty() {
        Ok(command)
    } else {
        Err(ParseError::new(
            Some(name),
            format!(
                "`{name}` takes no arguments (got `{}`).",
                truncate_chars(args, 40)
            ),
        ))
    }
}

fn one_word(name: CommandName, args: &str) -> Result<&str, ParseError> {
    let mut parts = args.split_whitespace();
    let first = parts.next().unwrap_or("");
    if parts.next().is_some() {
        return Err(ParseError::new(
            Some(name),
            format!("`{name}` takes one argument."),
        ));
    }
    Ok(first)
}

fn split_first_word(text: &str) -> (&str, &str) {
    match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, ""),
    }
}

fn strip_word<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let (first, rest) = split_first_word(text);
    first
        .eq_ignore_ascii_case(word)
        .then_some(rest.trim_start())
}

/// The text without the quotes around it, when it is one quoted string (`"disk full"`); text
/// that only starts and ends with a quote mark (`"API" fell after "rollback"`) is kept whole.
fn strip_quotes(text: &str) -> &str {
    let t = text.trim();
    for (open, close) in [('"', '"'), ('\'', '\''), ('“', '”')] {
        if let Some(inner) = t.strip_prefix(open).and_then(|s| s.strip_suffix(close))
            && !inner.contains(open)
            && !inner.contains(close)
        {
            return inner;
        }
    }
    t
}

/// At most `max` characters of `text`, with an ellipsis when cut.
pub fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Command {
        parse(text).unwrap_or_else(|e| panic!("{text:?} failed: {e}"))
    }

    fn err(text: &str) -> ParseError {
        parse(text).expect_err(text)
    }

    #[test]
    fn postmortem_and_its_link() {
        assert_eq!(ok("postmortem"), Command::Postmortem { done: None });
        assert_eq!(
            ok("postmortem done https://wiki.example.com/pm/42"),
            Command::Postmortem {
                done: Some("https://wiki.example.com/pm/42".into())
            }
        );
        assert_eq!(
            ok("POSTMORTEM DONE \"http://docs.example.com/x?y=1\""),
            Command::Postmortem {
                done: Some("http://docs.example.com/x?y=1".into())
            }
        );
        for (bad, complaint) in [
            ("postmortem done", "Give its link"),
            ("postmortem done wiki/pm/42", "not an http(s) link"),
            ("postmortem done javascript:alert(1)", "not an http(s) link"),
            ("postmortem done https://a.example.com b", "one"),
            ("postmortem finished", "not an option of postmortem"),
        ] {
            let e = err(bad);
            assert_eq!(e.command, Some(CommandName::Postmortem), "{bad}");
            assert!(e.problem.contains(complaint), "{bad}: {}", e.problem);
        }
    }

    #[test]
    fn maintenance_start_end_and_show() {
        use super::MaintenanceCommand as M;
        assert_eq!(ok("maintenance"), Command::Maintenance(M::Show));
        assert_eq!(ok("maintenance show"), Command::Maintenance(M::Show));
        assert_eq!(ok("maintenance end"), Command::Maintenance(M::End));
        assert_eq!(
            ok("maintenance start 2h database upgrade"),
            Command::Maintenance(M::Start {
                minutes: 120,
                reason: "database upgrade".into()
            })
        );
        assert_eq!(
            ok("maintenance start 90m \"kernel patches\""),
            Command::Maintenance(M::Start {
                minutes: 90,
                reason: "kernel patches".into()
            })
        );
        for (bad, complaint) in [
            ("maintenance start", "How long"),
            ("maintenance start 2h", "Say why"),
            ("maintenance start 1m x", "from 5m to 7d"),
            ("maintenance start 8d x", "from 5m to 7d"),
            ("maintenance start soon x", "from 5m to 7d"),
            ("maintenance end now", "not something maintenance does"),
            ("maintenance pause", "not something maintenance does"),
        ] {
            let e = err(bad);
            assert_eq!(e.command, Some(CommandName::Maintenance), "{bad}");
            assert!(e.problem.contains(complaint), "{bad}: {}", e.problem);
        }
    }

    #[test]
    fn declare_with_and_without_severity() {
        assert_eq!(
            ok("declare API returning 503s"),
            Command::Declare {
                title: "API returning 503s".into(),
                severity: None
            }
        );
        assert_eq!(
            ok("/incident open API down --sev P0"),
            Command::Declare {
                title: "API down".into(),
                severity: Some(Severity::P0)
            }
        );
        assert_eq!(
            ok("declare --sev=p2 Slow search"),
            Command::Declare {
                title: "Slow search".into(),
                severity: Some(Severity::P2)
            }
        );
        assert_eq!(
            ok("declare --sev P1 'Slow search'"),
            Command::Declare {
                title: "Slow search".into(),
                severity: Some(Severity::P1)
            }
        );
        assert_eq!(
            ok("declare \"Fix the --sev flag\" --sev P3"),
            Command::Declare {
                title: "Fix the --sev flag".into(),
                severity: Some(Severity::P3)
            }
        );
        assert_eq!(
            ok("declare “DB down”"),
            Command::Declare {
                title: "DB down".into(),
                severity: None
            }
        );
        assert!(
            err("declare \"DB\" down")
                .problem
                .contains("after the quoted title")
        );
        assert_eq!(
            ok("declare \"unclosed quote"),
            Command::Declare {
                title: "\"unclosed quote".into(),
                severity: None
            }
        );
    }

    #[test]
    fn declare_errors() {
        assert_eq!(err("declare").problem, "The incident needs a title.");
        assert_eq!(err("declare --sev P1").command, Some(CommandName::Declare));
        assert!(err("declare x --sev").problem.contains("needs a value"));
        assert!(
            err("declare x --sev P7")
                .problem
                .contains("`P7` is not a severity")
        );
        assert!(err("declare x --sev P1 --sev P2").problem.contains("twice"));
        let long = format!("declare {}", "a".repeat(10_000));
        let e = err(&long);
        assert!(e.problem.contains("10000 characters"), "{}", e.problem);
        assert!(
            e.to_string().len() < 400,
            "error must not echo the whole title"
        );
    }

    #[test]
    fn simple_commands() {
        assert_eq!(ok("ack"), Command::Ack);
        assert_eq!(ok("ACKNOWLEDGE"), Command::Ack);
        assert_eq!(ok("timeline"), Command::Timeline);
        assert_eq!(ok("escalate"), Command::Escalate);
        assert_eq!(
            ok("page user:PABC"),
            Command::Page(PageTarget::User("PABC".into()))
        );
        assert_eq!(
            ok("page db-oncall"),
            Command::Page(PageTarget::Service("db-oncall".into()))
        );
        assert!(err("page").problem.contains("Whom"));
        assert!(
            err("page team:x")
                .problem
                .contains("not a kind of page target")
        );
        assert!(err("escalate now").problem.contains("takes no arguments"));
        assert_eq!(ok("sev p0"), Command::Sev(Severity::P0));
        assert_eq!(ok("severity P3"), Command::Sev(Severity::P3));
        assert_eq!(ok("list"), Command::List { all: false });
        assert_eq!(ok("list --all"), Command::List { all: true });
        assert_eq!(ok("help"), Command::Help { topic: None });
        assert_eq!(
            ok("help open"),
            Command::Help {
                topic: Some(CommandName::Declare)
            }
        );
        assert_eq!(ok("status identified"), Command::Status(Status::Identified));
        assert_eq!(ok("status Monitoring"), Command::Status(Status::Monitoring));
        assert_eq!(
            ok("status investigating"),
            Command::Status(Status::Investigating)
        );
        assert_eq!(
            ok("update  DB failover done "),
            Command::Update("DB failover done".into())
        );
        // Quotes around the whole text go; a text with a quote mark of the pair inside is kept
        // whole (found by the property tests).
        assert_eq!(
            ok("update “disk full”"),
            Command::Update("disk full".into())
        );
        assert_eq!(ok("update ““”"), Command::Update("““”".into()));
        assert_eq!(ok("stats"), Command::Stats { days: 30 });
        assert_eq!(ok("stats --days 7"), Command::Stats { days: 7 });
        assert_eq!(ok("STATS --DAYS=365"), Command::Stats { days: 365 });
        for bad in [
            "stats --days 0",
            "stats --days 366",
            "stats --days x",
            "stats 7",
            "stats --days",
        ] {
            let e = err(bad);
            assert_eq!(e.command, Some(CommandName::Stats), "{bad}");
        }
        assert_eq!(ok("resolve"), Command::Resolve { root_cause: None });
        assert_eq!(
            ok("resolve bad config push"),
            Command::Resolve {
                root_cause: Some("bad config push".into())
            }
        );
    }

    #[test]
    fn commander_accepts_mentions() {
        assert_eq!(
            ok("commander @alice"),
            Command::Commander(UserRef::parse("alice").unwrap())
        );
        assert_eq!(
            ok("assign <@U123ABC|bob>"),
            Command::Commander(UserRef::parse("U123ABC").unwrap())
        );
        assert!(err("commander").problem.contains("Who"));
        assert!(err("commander a b").problem.contains("one argument"));
        assert!(err("commander <!channel>").command == Some(CommandName::Commander));
    }

    #[test]
    fn every_error_has_usage() {
        for text in [
            "",
            "   ",
            "frobnicate",
            "ack now",
            "sev",
            "sev P7",
            "sev P1 P2",
            "status",
            "status resolved",
            "status sleeping",
            "update",
            "list everything",
            "help nope",
            "timeline x",
            "commander",
        ] {
            let e = err(text);
            assert!(!e.usage().is_empty(), "{text:?}");
            assert!(e.to_string().contains("Usage: /incident "), "{text:?}: {e}");
        }
        assert_eq!(err("").problem, "No command given.");
        assert!(
            err("frobnicate")
                .problem
                .contains("Unknown command `frobnicate`")
        );
        assert_eq!(err("frobnicate").usage().len(), CommandName::ALL.len());
        assert_eq!(err("sev P7").usage(), vec!["sev <P0|P1|P2|P3>"]);
    }

    #[test]
    fn control_characters_are_cleaned() {
        assert_eq!(
            ok("declare DB\u{0}down\u{7}\tnow\r\n"),
            Command::Declare {
                title: "DB down now".into(),
                severity: None
            }
        );
        assert_eq!(err("\u{1b}[31m").command, None);
    }

    #[test]
    fn long_update_is_refused() {
        let e = err(&format!("update {}", "x".repeat(MAX_TEXT_CHARS + 1)));
        assert!(e.problem.contains("the limit is 2000"));
    }

    #[test]
    fn parser_survives_arbitrary_bytes() {
        // A small deterministic fuzz: every prefix of a nasty string parses or errors.
        let nasty = "declare \u{0}\u{ffff}é🔥 --sev\u{200b} P0 \"'“ <!here> @everyone --sev=";
        for end in nasty.char_indices().map(|(i, _)| i) {
            let _ = parse(&nasty[..end]);
        }
        let mut seed: u32 = 7;
        for _ in 0..2_000 {
            let len = (seed % 40) as usize;
            let s: String = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    char::from_u32(seed >> 16 & 0x7ff).unwrap_or('x')
                })
                .collect();
            let _ = parse(&s);
            let _ = parse(&format!("declare {s}"));
        }
    }
}
