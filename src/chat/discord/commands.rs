//! The `/incident` application command: its definition (a sub-command per command of the
//! chat language, with typed options and choices so Discord's UI helps), the translation of an
//! invocation back into the same command text Slack and the console use, and the comparison
//! `warroom discord register-commands` prints.

use crate::chat::split::ellipsis;
use crate::core::command::CommandName;
use serde_json::{Value, json};

/// The name of the one top-level command.
pub const COMMAND: &str = "incident";

/// Discord's option types used here.
const SUB_COMMAND: u8 = 1;
const STRING: u8 = 3;
const INTEGER: u8 = 4;
const BOOLEAN: u8 = 5;
const USER: u8 = 6;

/// How an option's value is written in the command text.
#[derive(Clone, Copy)]
enum Written {
    /// As it is.
    Plain,
    /// `prefix` then the value (`--sev=P1`, `namespace=web`).
    Prefixed(&'static str),
    /// The flag when true, nothing when false.
    Flag(&'static str),
    /// A user mention `<@id>`.
    Mention,
}

struct Opt {
    name: &'static str,
    description: &'static str,
    kind: u8,
    required: bool,
    choices: &'static [&'static str],
    written: Written,
}

const fn opt(name: &'static str, description: &'static str, kind: u8, required: bool) -> Opt {
    Opt {
        name,
        description,
        kind,
        required,
        choices: &[],
        written: Written::Plain,
    }
}

const SEVERITIES: &[&str] = &["P0", "P1", "P2", "P3"];

/// The options of each sub-command, in the order the command text takes them.
fn options(name: CommandName) -> Vec<Opt> {
    let text = |name, description, required| opt(name, description, STRING, required);
    let namespace = Opt {
        written: Written::Prefixed("namespace="),
        ..text(
            "namespace",
            "Kubernetes namespace (default: the configured one)",
            false,
        )
    };
    let request = || {
        opt(
            "request",
            "The request number warroom showed",
            INTEGER,
            true,
        )
    };
    match name {
        CommandName::Declare => vec![
            text("title", "What is wrong, in a line", true),
            Opt {
                choices: SEVERITIES,
                written: Written::Prefixed("--sev="),
                ..text(
                    "severity",
                    "P0 critical … P3 low (default: classified from the title)",
                    false,
                )
            },
        ],
        CommandName::Sev => vec![Opt {
            choices: SEVERITIES,
            ..text("severity", "The new severity", true)
        }],
        CommandName::Commander => vec![Opt {
            written: Written::Mention,
            ..opt("user", "The new incident commander", USER, true)
        }],
        CommandName::Status => vec![Opt {
            choices: &["investigating", "identified", "monitoring"],
            ..text("status", "Where the response stands", true)
        }],
        CommandName::Update => vec![text("text", "The status update", true)],
        CommandName::Resolve => vec![text("root_cause", "The root cause, if known", false)],
        CommandName::List => vec![Opt {
            written: Written::Flag("--all"),
            ..opt("all", "Include resolved incidents", BOOLEAN, false)
        }],
        CommandName::Help => vec![Opt {
            choices: HELP_TOPICS,
            ..text("command", "A command to explain", false)
        }],
        CommandName::Page => vec![text(
            "target",
            "service:NAME, user:ID, escalation_policy:ID or schedule:ID",
            true,
        )],
        CommandName::Run => vec![
            text("playbook", "The playbook (see /incident playbooks)", true),
            text("arguments", "key=value … for its parameters", false),
        ],
        CommandName::Diag => vec![
            Opt {
                choices: &[
                    "pods",
                    "events",
                    "logs",
                    "top",
                    "rollout_status",
                    "endpoints",
                    "nodes",
                    "probe",
                ],
                ..text("action", "The read-only diagnostic", true)
            },
            text("arguments", "key=value … (deployment=…, lines=…)", false),
        ],
        CommandName::Scale => vec![
            text("deployment", "The deployment to scale", true),
            opt("replicas", "The new replica count", INTEGER, true),
            namespace,
        ],
        CommandName::Restart => vec![
            text("deployment", "The deployment to restart", true),
            namespace,
        ],
        CommandName::Confirm | CommandName::Cancel | CommandName::Undo => vec![request()],
        CommandName::Stats => vec![Opt {
            written: Written::Prefixed("--days="),
            ..opt(
                "days",
                "How many days back (default 30, at most 365)",
                INTEGER,
                false,
            )
        }],
        CommandName::Postmortem => vec![Opt {
            written: Written::Prefixed("done "),
            ..text(
                "done",
                "The finished postmortem's link: records it and stops the reminders",
                false,
            )
        }],
        CommandName::Maintenance => vec![
            Opt {
                choices: &["show", "start", "end"],
                ..text("action", "Show, start or end a maintenance window", false)
            },
            text("duration", "How long, for start (e.g. 2h, 90m)", false),
            text("reason", "Why, for start", false),
        ],
        CommandName::Ack
        | CommandName::Timeline
        | CommandName::Escalate
        | CommandName::Playbooks => Vec::new(),
    }
}

/// Command names `help` can explain (Discord allows 25 choices).
const HELP_TOPICS: &[&str] = &[
    "declare",
    "ack",
    "sev",
    "commander",
    "status",
    "update",
    "resolve",
    "timeline",
    "list",
    "help",
    "page",
    "escalate",
    "playbooks",
    "run",
    "diag",
    "scale",
    "restart",
    "confirm",
    "cancel",
    "undo",
    "stats",
    "postmortem",
    "maintenance",
];

/// The application commands warroom registers: `/incident` with a sub-command per command.
pub fn definitions() -> Value {
    let subcommands: Vec<Value> = CommandName::ALL
        .iter()
        .map(|name| {
            let options: Vec<Value> = options(*name)
                .iter()
                .map(|o| {
                    let mut option = json!({
                        "type": o.kind,
                        "name": o.name,
                        "description": ellipsis(o.description, 100),
                        "required": o.required,
                    });
                    if !o.choices.is_empty() {
                        option["choices"] = o
                            .choices
                            .iter()
                            .map(|c| json!({ "name": c, "value": c }))
                            .collect();
                    }
                    if o.kind == INTEGER {
                        option["min_value"] = json!(0);
                    }
                    option
                })
                .collect();
            json!({
                "type": SUB_COMMAND,
                "name": name.name(),
                "description": ellipsis(name.summary(), 100),
                "options": options,
            })
        })
        .collect();
    json!([{
        "name": COMMAND,
        "type": 1,
        "description": "Declare and run incidents: /incident declare, ack, status, resolve, …",
        "dm_permission": false,
        "options": subcommands,
    }])
}

/// Why an invocation could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvocationError {
    #[error("/{0} is not a warroom command; warroom answers /incident.")]
    UnknownCommand(String),
    #[error("/incident {0} is not a warroom sub-command.")]
    UnknownSubcommand(String),
}

/// The command text of an `/incident` invocation (`data` of an APPLICATION_COMMAND
/// interaction), e.g. `declare "API returning 503s" --sev=P1`: the same language as Slack and
/// the console, parsed by the same parser. A missing option is left out, so the parser's own
/// usage help answers.
pub fn command_text(data: &Value) -> Result<String, InvocationError> {
    let name = data["name"].as_str().unwrap_or_default();
    if name != COMMAND {
        return Err(InvocationError::UnknownCommand(ellipsis(name, 40)));
    }
    let Some(sub) = data["options"].as_array().and_then(|o| o.first()) else {
        return Ok("help".into());
    };
    let sub_name = sub["name"].as_str().unwrap_or_default();
    let Some(command) = CommandName::ALL
        .iter()
        .find(|c| c.name() == sub_name)
        .copied()
    else {
        return Err(InvocationError::UnknownSubcommand(ellipsis(sub_name, 40)));
    };
    let given = sub["options"].as_array().cloned().unwrap_or_default();
    let value_of = |option: &str| {
        given
            .iter()
            .find(|g| g["name"] == option)
            .map(|g| g["value"].clone())
    };
    let mut words = vec![command.name().to_string()];
    for option in options(command) {
        let Some(value) = value_of(option.name) else {
            continue;
        };
        let text = match &value {
            Value::String(s) => s.trim().to_string(),
            Value::Bool(_) | Value::Number(_) => value.to_string(),
            _ => continue,
        };
        let word = match option.written {
            // A title is quoted so that anything in it (`--sev` too) stays the title.
            Written::Plain if command == CommandName::Declare => quoted(&text),
            Written::Plain => text,
            Written::Prefixed(prefix) => format!("{prefix}{text}"),
            Written::Flag(flag) if value == Value::Bool(true) => flag.to_string(),
            Written::Flag(_) => continue,
            Written::Mention => format!("<@{text}>"),
        };
        if !word.is_empty() {
            words.push(word);
        }
    }
    Ok(words.join(" "))
}

/// `text` in quotes the command parser takes whole: the first pair of `"…"`, `'…'` and `“…”`
/// whose closing mark the text does not contain (with all three in it, its `”` become `"`).
fn quoted(text: &str) -> String {
    for (open, close) in [('"', '"'), ('\'', '\''), ('“', '”')] {
        if !text.contains(close) {
            return format!("{open}{text}{close}");
        }
    }
    format!("“{}”", text.replace('”', "\""))
}

/// What registering `wanted` over `existing` changes, one line per command: added, changed,
/// removed or unchanged.
pub fn changes(existing: &[Value], wanted: &Value) -> Vec<String> {
    let wanted = wanted.as_array().cloned().unwrap_or_default();
    let mut lines = Vec::new();
    for command in &wanted {
        let name = command["name"].as_str().unwrap_or_default();
        match existing.iter().find(|e| e["name"] == name) {
            None => lines.push(format!("added    /{name}")),
            Some(old) if same(old, command) => lines.push(format!("unchanged /{name}")),
            Some(_) => lines.push(format!("changed  /{name}")),
        }
    }
    for old in existing {
        let name = old["name"].as_str().unwrap_or_default();
        if !wanted.iter().any(|w| w["name"] == name) {
            lines.push(format!("removed  /{name}"));
        }
    }
    lines
}

/// Whether a registered command already matches a definition: the description and the
/// options' names, types, descriptions, required flags and choices.
fn same(registered: &Value, wanted: &Value) -> bool {
    fn shape(options: &Value) -> Vec<Value> {
        options
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|o| {
                        json!({
                            "type": o["type"],
                            "name": o["name"],
                            "description": o["description"],
                            "required": o["required"].as_bool().unwrap_or(false),
                            "choices": o["choices"].as_array().cloned().unwrap_or_default().iter().map(|c| json!([c["name"], c["value"]])).collect::<Vec<_>>(),
                            "min_value": o["min_value"],
                            "options": shape(&o["options"]),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
    registered["description"] == wanted["description"]
        // Guild commands carry no `dm_permission`.
        && registered["dm_permission"]
            .as_bool()
            .is_none_or(|dm| dm == wanted["dm_permission"].as_bool().unwrap_or(true))
        && shape(&registered["options"]) == shape(&wanted["options"])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::command::{Command, parse};

    fn invocation(sub: &str, options: Value) -> Value {
        json!({
            "name": "incident",
            "type": 1,
            "options": [{ "name": sub, "type": 1, "options": options }],
        })
    }

    #[test]
    fn definitions_fit_discords_limits() {
        let defs = definitions();
        let subs = defs[0]["options"].as_array().unwrap();
        assert_eq!(subs.len(), CommandName::ALL.len());
        assert!(subs.len() <= 25);
        for sub in subs {
            let name = sub["name"].as_str().unwrap();
            assert!(name.len() <= 32 && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            assert!(sub["description"].as_str().unwrap().chars().count() <= 100);
            for option in sub["options"].as_array().unwrap() {
                assert!(option["description"].as_str().unwrap().chars().count() <= 100);
                assert!(option["choices"].as_array().is_none_or(|c| c.len() <= 25));
            }
        }
    }

    #[test]
    fn invocations_become_the_same_command_language() {
        let text = command_text(&invocation(
            "declare",
            json!([{"name":"title","type":3,"value":"API --sev P3 503s"},{"name":"severity","type":3,"value":"P0"}]),
        ))
        .unwrap();
        assert_eq!(
            parse(&text).unwrap(),
            Command::Declare {
                title: "API --sev P3 503s".into(),
                severity: Some(crate::core::Severity::P0),
            }
        );
        for title in [
            "Users see \"503\" --sev P0",
            "\"Login\" fails",
            "it's \"down\" “again”",
        ] {
            let text = command_text(&invocation(
                "declare",
                json!([{"name":"title","type":3,"value":title},{"name":"severity","type":3,"value":"P2"}]),
            ))
            .unwrap();
            match parse(&text).unwrap() {
                Command::Declare {
                    title: parsed,
                    severity,
                } => {
                    assert_eq!(severity, Some(crate::core::Severity::P2), "{text}");
                    assert_eq!(
                        parsed.replace('”', "\""),
                        title.replace('”', "\""),
                        "{text}"
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        let text = command_text(&invocation(
            "scale",
            json!([{"name":"deployment","type":3,"value":"web"},{"name":"replicas","type":4,"value":5},{"name":"namespace","type":3,"value":"prod"}]),
        ))
        .unwrap();
        assert_eq!(text, "scale web 5 namespace=prod");
        let text = command_text(&invocation(
            "commander",
            json!([{"name":"user","type":6,"value":"80351110224678912"}]),
        ))
        .unwrap();
        assert!(
            matches!(parse(&text).unwrap(), Command::Commander(u) if u.as_str() == "80351110224678912")
        );
        assert_eq!(
            command_text(&invocation(
                "list",
                json!([{"name":"all","type":5,"value":true}])
            ))
            .unwrap(),
            "list --all"
        );
        assert_eq!(command_text(&invocation("ack", json!([]))).unwrap(), "ack");
        let text = command_text(&invocation(
            "maintenance",
            json!([{"name":"action","type":3,"value":"start"},{"name":"duration","type":3,"value":"2h"},{"name":"reason","type":3,"value":"database upgrade"}]),
        ))
        .unwrap();
        assert_eq!(
            parse(&text).unwrap(),
            Command::Maintenance(crate::core::command::MaintenanceCommand::Start {
                minutes: 120,
                reason: "database upgrade".into()
            })
        );
        let text = command_text(&invocation(
            "postmortem",
            json!([{"name":"done","type":3,"value":"https://wiki.example.com/pm/7"}]),
        ))
        .unwrap();
        assert_eq!(
            parse(&text).unwrap(),
            Command::Postmortem {
                done: Some("https://wiki.example.com/pm/7".into())
            }
        );
        assert_eq!(
            parse(&command_text(&invocation("postmortem", json!([]))).unwrap()).unwrap(),
            Command::Postmortem { done: None }
        );
        // A missing required option reaches the parser, whose usage help answers.
        assert!(parse(&command_text(&invocation("sev", json!([]))).unwrap()).is_err());
        assert!(matches!(
            command_text(&json!({"name":"deploy"})),
            Err(InvocationError::UnknownCommand(_))
        ));
        assert!(matches!(
            command_text(&invocation("reboot", json!([]))),
            Err(InvocationError::UnknownSubcommand(_))
        ));
    }

    #[test]
    fn changes_say_what_registering_does() {
        let wanted = definitions();
        assert_eq!(changes(&[], &wanted), vec!["added    /incident"]);
        let registered = wanted[0].clone();
        assert_eq!(
            changes(std::slice::from_ref(&registered), &wanted),
            vec!["unchanged /incident"]
        );
        let mut old = registered.clone();
        old["description"] = json!("older");
        let stale = json!({"name": "oldcmd", "description": "x"});
        assert_eq!(
            changes(&[old, stale], &wanted),
            vec!["changed  /incident", "removed  /oldcmd"]
        );
    }
}
