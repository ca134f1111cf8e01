//! Playbooks: named, ordered runbook steps loaded from `playbooks/*.yaml`, their typed
//! parameters, the lint that reports every problem with file and line, and the rendering of a
//! step into a checked [`Action`].
//!
//! A step's arguments are handlebars templates rendered in strict mode (no HTML escaping) with
//! the bound parameters and the incident (`{{incident.key}}`, `{{incident.severity}}`,
//! `{{incident.title}}`). The rendered values then go through [`Action::new`], so a playbook can
//! never produce an argument a chat command could not: `namespace=../kube-system` is refused
//! whichever way it arrives.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use handlebars::{Handlebars, RenderError, RenderErrorReason, Template};
use serde::Deserialize;
use serde_json::json;
use serde_norway::Value as Yaml;

use crate::core::Severity;
use crate::core::command::{MAX_TEXT_CHARS, MAX_TITLE_CHARS};
use crate::runbook::action::{Action, ActionKind, check_argument, valid_label};

/// A step's timeout when it names none.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// The shortest timeout a step may set.
pub const MIN_STEP_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest timeout a step may set.
pub const MAX_STEP_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// The longest parameter value accepted (from chat or as a default).
pub const MAX_VALUE_CHARS: usize = MAX_TITLE_CHARS;
/// The longest parameter or step name.
const MAX_NAME_CHARS: usize = 63;
/// The largest count in a pattern's `{n,m}`, and the longest pattern.
const MAX_PATTERN_REPEAT: usize = 1_000;
const MAX_PATTERN_CHARS: usize = 200;

/// Names a parameter may not have: the incident context and handlebars' built-in helpers.
const RESERVED_PARAMETER_NAMES: [&str; 19] = [
    "incident", "this", "if", "unless", "each", "with", "lookup", "raw", "log", "eq", "ne", "gt",
    "gte", "lt", "lte", "and", "or", "not", "len",
];

/// The shipped playbooks, compiled in.
const BUILTIN: [(&str, &str); 7] = [
    (
        "playbooks/api-not-responding.yaml",
        include_str!("../../playbooks/api-not-responding.yaml"),
    ),
    (
        "playbooks/database-connection-issues.yaml",
        include_str!("../../playbooks/database-connection-issues.yaml"),
    ),
    (
        "playbooks/high-memory-usage.yaml",
        include_str!("../../playbooks/high-memory-usage.yaml"),
    ),
    (
        "playbooks/restart-api.yaml",
        include_str!("../../playbooks/restart-api.yaml"),
    ),
    (
        "playbooks/scale-api.yaml",
        include_str!("../../playbooks/scale-api.yaml"),
    ),
    (
        "playbooks/scale-workers.yaml",
        include_str!("../../playbooks/scale-workers.yaml"),
    ),
    (
        "playbooks/system-health-check.yaml",
        include_str!("../../playbooks/system-health-check.yaml"),
    ),
];

/// A checked playbook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Playbook {
    pub name: String,
    pub description: String,
    /// Words and phrases that suggest this playbook (from `applies_to.symptoms`).
    pub symptoms: Vec<String>,
    /// Severities it is meant for; empty means any.
    pub severities: Vec<Severity>,
    pub parameters: Vec<Parameter>,
    pub steps: Vec<Step>,
    /// The file it came from (`playbooks/scale-api.yaml`).
    pub file: String,
}

/// A typed parameter of a playbook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parameter {
    pub name: String,
    pub kind: ParamKind,
    /// The value when none is given; a parameter without one is required.
    pub default: Option<String>,
    pub description: String,
}

/// A parameter's type and constraints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// Text; `pattern` must match the whole value (see [`pattern_matches`] for the subset).
    String { pattern: Option<String> },
    /// A whole number, optionally bounded (inclusive).
    Integer { min: Option<i64>, max: Option<i64> },
    /// `true` or `false` (also `yes`, `no`); bound as `true` or `false`.
    Boolean,
    /// One of a fixed list of values.
    Enum { values: Vec<String> },
}

/// One step: an action whose arguments are templates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub name: String,
    pub action: ActionKind,
    /// Argument name → handlebars template.
    pub args: BTreeMap<String, String>,
    /// Whether the step waits for a confirmation (always true for mutating actions).
    pub confirm: bool,
    pub timeout: Duration,
    /// `on_failure: continue`: a failed step does not stop the playbook.
    pub continue_on_failure: bool,
}

/// A problem found while loading a playbook, shown as `file:line: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaybookProblem {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for PlaybookProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for PlaybookProblem {}

/// A loaded set of playbooks, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Playbooks {
    by_name: BTreeMap<String, Playbook>,
}

static BUILTIN_PLAYBOOKS: LazyLock<Playbooks> = LazyLock::new(|| {
    let sources = BUILTIN
        .iter()
        .map(|(file, text)| (file.to_string(), text.to_string()));
    Playbooks::from_sources(sources, Vec::new()).unwrap_or_else(|problems| {
        let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
        panic!("the built-in playbooks are broken:\n{}", listed.join("\n"))
    })
});

impl Playbooks {
    /// Load and lint every `*.yaml` (or `*.yml`) file in `dir`. Every problem in every file is
    /// reported.
    pub fn load_dir(dir: &Path) -> Result<Playbooks, Vec<PlaybookProblem>> {
        let folder_problem = |message: String| PlaybookProblem {
            file: dir.display().to_string(),
            line: None,
            message,
        };
        let entries = std::fs::read_dir(dir).map_err(|e| {
            vec![folder_problem(format!(
                "cannot read the playbooks folder: {e}"
            ))]
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                let hidden = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'));
                let yaml = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| e == "yaml" || e == "yml");
                !hidden && yaml && path.is_file()
            })
            .collect();
        paths.sort();
        let mut problems = Vec::new();
        let mut sources = Vec::new();
        for path in paths {
            match std::fs::read_to_string(&path) {
                Ok(text) => sources.push((path.display().to_string(), text)),
                Err(e) => problems.push(PlaybookProblem {
                    file: path.display().to_string(),
                    line: None,
                    message: format!("cannot read: {e}"),
                }),
            }
        }
        Playbooks::from_sources(sources, problems)
    }

    /// The shipped playbooks (`playbooks/*.yaml`, compiled in).
    ///
    /// # Panics
    /// If a shipped playbook does not lint clean (a test makes sure they do).
    pub fn builtin() -> Playbooks {
        BUILTIN_PLAYBOOKS.clone()
    }

    /// The playbooks of `dir` when given (they replace the built-in set), else the built-in ones.
    pub fn load(dir: Option<&Path>) -> Result<Playbooks, Vec<PlaybookProblem>> {
        match dir {
            Some(dir) => Playbooks::load_dir(dir),
            None => Ok(Playbooks::builtin()),
        }
    }

    /// Load and lint playbook files given as `(file name, text)` pairs, as `load_dir` does with
    /// the files of a folder.
    pub fn from_texts(
        sources: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Playbooks, Vec<PlaybookProblem>> {
        Playbooks::from_sources(sources, Vec::new())
    }

    /// Lint `(file, text)` pairs into a set; `problems` are ones already found.
    fn from_sources(
        sources: impl IntoIterator<Item = (String, String)>,
        mut problems: Vec<PlaybookProblem>,
    ) -> Result<Playbooks, Vec<PlaybookProblem>> {
        let mut by_name: BTreeMap<String, Playbook> = BTreeMap::new();
        for (file, text) in sources {
            match lint(&file, &text) {
                Ok(playbook) => {
                    if let Some(first) = by_name.get(&playbook.name) {
                        problems.push(PlaybookProblem {
                            line: Locator::new(&text).top("name"),
                            message: format!(
                                "a playbook named `{}` is already defined in {}",
                                playbook.name, first.file
                            ),
                            file,
                        });
                    } else {
                        by_name.insert(playbook.name.clone(), playbook);
                    }
                }
                Err(found) => problems.extend(found),
            }
        }
        if problems.is_empty() {
            Ok(Playbooks { by_name })
        } else {
            Err(problems)
        }
    }

    pub fn get(&self, name: &str) -> Option<&Playbook> {
        self.by_name.get(name)
    }

    /// The playbook called `name`, or a message for chat that lists the known ones.
    pub fn find(&self, name: &str) -> Result<&Playbook, String> {
        self.get(name).ok_or_else(|| {
            let shown: String = name.chars().take(40).collect();
            if self.by_name.is_empty() {
                format!("there is no playbook `{shown}`; no playbooks are loaded")
            } else {
                format!(
                    "there is no playbook `{shown}`; known playbooks: {}",
                    self.names().join(", ")
                )
            }
        })
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }

    /// Every playbook, sorted by name.
    pub fn all(&self) -> impl Iterator<Item = &Playbook> {
        self.by_name.values()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// The incident part of a template's context: `{{incident.key}}`, `{{incident.severity}}`,
/// `{{incident.title}}`.
pub fn incident_context(key: &str, severity: Severity, title: &str) -> serde_json::Value {
    json!({ "key": key, "severity": severity.to_string(), "title": title })
}

impl Playbook {
    /// Bind `key=value` arguments typed in chat to the parameters: defaults fill in what is not
    /// given; unknown keys, missing required values and values that break a parameter's type or
    /// constraints are refused with a message that names the parameter and lists them all.
    pub fn bind(
        &self,
        given: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut errors = Vec::new();
        for key in given.keys() {
            if !self.parameters.iter().any(|p| &p.name == key) {
                let shown: String = key.chars().take(40).collect();
                errors.push(format!("{} has no parameter `{shown}`", self.name));
            }
        }
        let mut bound = BTreeMap::new();
        for parameter in &self.parameters {
            match given.get(&parameter.name).or(parameter.default.as_ref()) {
                None => errors.push(format!(
                    "{} needs {}=… ({})",
                    self.name,
                    parameter.name,
                    parameter.kind.describe()
                )),
                Some(value) => match parameter.check(value) {
                    Ok(value) => {
                        bound.insert(parameter.name.clone(), value);
                    }
                    Err(e) => errors.push(e),
                },
            }
        }
        if errors.is_empty() {
            Ok(bound)
        } else {
            Err(format!("{}. {}", errors.join("; "), self.parameters_help()))
        }
    }

    /// One line listing the parameters with their types and defaults, for chat.
    pub fn parameters_help(&self) -> String {
        if self.parameters.is_empty() {
            return format!("{} takes no parameters", self.name);
        }
        let listed: Vec<String> = self.parameters.iter().map(Parameter::describe).collect();
        format!("{} takes: {}", self.name, listed.join(", "))
    }

    /// `run scale-api [replicas=N] [namespace=NAME]`.
    pub fn usage(&self) -> String {
        let mut parts = vec![format!("run {}", self.name)];
        for parameter in &self.parameters {
            let placeholder = match &parameter.kind {
                ParamKind::Integer { .. } => "N".to_string(),
                ParamKind::Boolean => "true|false".to_string(),
                ParamKind::Enum { values } => values.join("|"),
                ParamKind::String { .. } => "TEXT".to_string(),
            };
            if parameter.default.is_some() {
                parts.push(format!("[{}={placeholder}]", parameter.name));
            } else {
                parts.push(format!("{}={placeholder}", parameter.name));
            }
        }
        parts.join(" ")
    }

    /// Render step `index`'s arguments with the bound parameters (from [`Playbook::bind`]) and
    /// the incident (see [`incident_context`]), then check them as any action's arguments are.
    pub fn action(
        &self,
        index: usize,
        params: &BTreeMap<String, String>,
        incident: &serde_json::Value,
    ) -> Result<Action, String> {
        let step = self.steps.get(index).ok_or_else(|| {
            format!(
                "{} has no step {}; it has {}",
                self.name,
                index + 1,
                self.steps.len()
            )
        })?;
        let context = self.context(params, incident);
        let mut args = BTreeMap::new();
        for (name, template) in &step.args {
            let value = render(template, &context).map_err(|e| {
                format!(
                    "{} step {} ({}): argument `{name}`: {e}",
                    self.name,
                    index + 1,
                    step.name
                )
            })?;
            args.insert(name.clone(), value);
        }
        Action::new(step.action, args)
            .map_err(|e| format!("{} step {} ({}): {e}", self.name, index + 1, step.name))
    }

    /// The template context: the declared parameters (typed) and the incident.
    fn context(
        &self,
        params: &BTreeMap<String, String>,
        incident: &serde_json::Value,
    ) -> serde_json::Value {
        let mut context = serde_json::Map::new();
        for parameter in &self.parameters {
            if let Some(value) = params.get(&parameter.name) {
                context.insert(parameter.name.clone(), parameter.kind.typed(value));
            }
        }
        context.insert("incident".into(), incident.clone());
        serde_json::Value::Object(context)
    }
}

impl Parameter {
    /// Check one value against the type and constraints; returns it normalized.
    pub fn check(&self, value: &str) -> Result<String, String> {
        let name = &self.name;
        let shown: String = value.chars().take(60).collect();
        if value.chars().count() > MAX_VALUE_CHARS {
            return Err(format!(
                "`{name}` is longer than {MAX_VALUE_CHARS} characters"
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(format!("`{name}` must not contain control characters"));
        }
        match &self.kind {
            ParamKind::String { pattern } => match pattern {
                Some(pattern) if !pattern_matches(pattern, value)? => Err(format!(
                    "`{name}` must match the pattern `{pattern}`, not `{shown}`"
                )),
                _ => Ok(value.to_string()),
            },
            ParamKind::Integer { min, max } => {
                let Ok(n) = value.parse::<i64>() else {
                    return Err(format!("`{name}` must be a whole number, not `{shown}`"));
                };
                let in_range = min.is_none_or(|min| n >= min) && max.is_none_or(|max| n <= max);
                if in_range {
                    Ok(n.to_string())
                } else {
                    Err(format!(
                        "`{name}` must be {}, not {n}",
                        range_text(*min, *max)
                    ))
                }
            }
            ParamKind::Boolean => match value.to_ascii_lowercase().as_str() {
                "true" | "yes" => Ok("true".into()),
                "false" | "no" => Ok("false".into()),
                _ => Err(format!("`{name}` must be true or false, not `{shown}`")),
            },
            ParamKind::Enum { values } => {
                if values.iter().any(|v| v == value) {
                    Ok(value.to_string())
                } else {
                    Err(format!(
                        "`{name}` must be one of {}, not `{shown}`",
                        values.join(", ")
                    ))
                }
            }
        }
    }

    /// `replicas (integer 3–10, default 5)`.
    pub fn describe(&self) -> String {
        match &self.default {
            Some(default) => format!(
                "{} ({}, default {default})",
                self.name,
                self.kind.describe()
            ),
            None => format!("{} ({}, required)", self.name, self.kind.describe()),
        }
    }
}

fn range_text(min: Option<i64>, max: Option<i64>) -> String {
    match (min, max) {
        (Some(min), Some(max)) => format!("between {min} and {max}"),
        (Some(min), None) => format!("at least {min}"),
        (None, Some(max)) => format!("at most {max}"),
        (None, None) => "a whole number".into(),
    }
}

impl ParamKind {
    /// `integer 3–10`, `one of fast|safe`, `string matching [a-z]+`.
    pub fn describe(&self) -> String {
        match self {
            ParamKind::String { pattern: None } => "string".into(),
            ParamKind::String { pattern: Some(p) } => format!("string matching `{p}`"),
            ParamKind::Integer { min, max } => match (min, max) {
                (Some(min), Some(max)) => format!("integer {min}–{max}"),
                (Some(min), None) => format!("integer ≥ {min}"),
                (None, Some(max)) => format!("integer ≤ {max}"),
                (None, None) => "integer".into(),
            },
            ParamKind::Boolean => "true|false".into(),
            ParamKind::Enum { values } => format!("one of {}", values.join("|")),
        }
    }

    /// The value as templates see it: integers as numbers, booleans as booleans (so that
    /// `{{#if flag}}` works), the rest as text.
    fn typed(&self, value: &str) -> serde_json::Value {
        match self {
            ParamKind::Integer { .. } => value
                .parse::<i64>()
                .map_or_else(|_| json!(value), |n| json!(n)),
            ParamKind::Boolean => match value {
                "true" => json!(true),
                "false" => json!(false),
                _ => json!(value),
            },
            _ => json!(value),
        }
    }
}

/// Parse the `key=value` words typed after a playbook's name. A value may be quoted with `"…"`
/// (or `“…”`) to hold spaces; `\"` and `\\` escape inside quotes.
pub fn parse_arguments(words: &str) -> Result<BTreeMap<String, String>, String> {
    let mut args = BTreeMap::new();
    let mut chars = words.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(args);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        let shown: String = key.chars().take(40).collect();
        if chars.next_if_eq(&'=').is_none() {
            return Err(format!(
                "`{shown}` is not a key=value argument; write e.g. replicas=5 (quote values with spaces: title=\"a b\")"
            ));
        }
        if key.is_empty() {
            return Err("an argument has no name before `=`; write e.g. replicas=5".into());
        }
        if !key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            return Err(format!(
                "`{shown}` is not a parameter name (lowercase letters, digits, `_`)"
            ));
        }
        let mut value = String::new();
        match chars.peek() {
            Some('"' | '“' | '”') => {
                chars.next();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '"' | '”' | '“' => {
                            closed = true;
                            break;
                        }
                        '\\' => match chars.next() {
                            Some(escaped @ ('"' | '\\')) => value.push(escaped),
                            Some(other) => {
                                value.push('\\');
                                value.push(other);
                            }
                            None => value.push('\\'),
                        },
                        c => value.push(c),
                    }
                }
                if !closed {
                    return Err(format!("the value of `{shown}` has no closing quote"));
                }
                if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                    return Err(format!(
                        "put a space after the closing quote of `{shown}`'s value"
                    ));
                }
            }
            _ => {
                while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                    value.push(c);
                }
                if value.is_empty() {
                    return Err(format!(
                        "`{shown}=` has no value; write {shown}=VALUE (or {shown}=\"\" for an empty one)"
                    ));
                }
            }
        }
        if args.insert(key, value).is_some() {
            return Err(format!("`{shown}` is given twice"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Templates

static TEMPLATES: LazyLock<Handlebars<'static>> = LazyLock::new(|| {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    registry.register_escape_fn(handlebars::no_escape);
    registry
});

fn render(template: &str, context: &serde_json::Value) -> Result<String, String> {
    TEMPLATES
        .render_template(template, context)
        .map_err(|e| render_error_text(&e))
}

fn render_error_text(e: &RenderError) -> String {
    match e.reason() {
        RenderErrorReason::MissingVariable(Some(path)) => format!("`{path}` has no value"),
        RenderErrorReason::MissingVariable(None) => "a value the template names is missing".into(),
        RenderErrorReason::TemplateError(e) => format!("template error: {}", e.reason()),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Patterns

/// Whether `pattern` matches the whole of `text`; `Err` if the pattern is not valid.
///
/// The subset supported (no regex crate): literal characters; `.` (any character); `\` followed
/// by a punctuation character (that character literally), `\d` (a digit), `\w` (an ASCII letter,
/// digit or `_`); character classes `[...]` with ranges (`a-z`), `^` negation, and `-` literal
/// first or last; each optionally followed by one quantifier `*`, `+`, `?`, `{n}`, `{n,}` or
/// `{n,m}` (at most 1000). The match is always of the whole value. Groups, alternation (`|`) and
/// anchors (`^`, `$`) are not supported and are reported as errors.
pub fn pattern_matches(pattern: &str, text: &str) -> Result<bool, String> {
    Ok(Pattern::parse(pattern)?.matches(text))
}

#[derive(Debug)]
struct Pattern {
    pieces: Vec<Piece>,
}

#[derive(Debug)]
struct Piece {
    atom: Atom,
    min: usize,
    max: usize,
}

#[derive(Debug)]
enum Atom {
    Any,
    Char(char),
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Atom {
    fn matches(&self, c: char) -> bool {
        match self {
            Atom::Any => true,
            Atom::Char(x) => *x == c,
            Atom::Class { negated, ranges } => {
                ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
            }
        }
    }
}

const DIGITS: [(char, char); 1] = [('0', '9')];
const WORD: [(char, char); 4] = [('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')];

impl Pattern {
    fn parse(text: &str) -> Result<Pattern, String> {
        let unsupported = |c: char| {
            format!(
                "`{c}` is not supported in patterns (supported: literal characters, `.`, `\\`-escapes, [classes] with ranges, and * + ? {{n,m}}); escape it as `\\{c}` to match it literally"
            )
        };
        if text.chars().count() > MAX_PATTERN_CHARS {
            return Err(format!(
                "a pattern is at most {MAX_PATTERN_CHARS} characters"
            ));
        }
        let chars: Vec<char> = text.chars().collect();
        let mut pieces = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let atom = match chars[i] {
                '\\' => {
                    i += 1;
                    match chars.get(i) {
                        Some('d') => Atom::Class {
                            negated: false,
                            ranges: DIGITS.to_vec(),
                        },
                        Some('w') => Atom::Class {
                            negated: false,
                            ranges: WORD.to_vec(),
                        },
                        Some(c) if !c.is_alphanumeric() => Atom::Char(*c),
                        Some(c) => {
                            return Err(format!(
                                "`\\{c}` is not supported in patterns (only \\d, \\w and escaped punctuation)"
                            ));
                        }
                        None => return Err("the pattern ends with a lone `\\`".into()),
                    }
                }
                '[' => {
                    let (atom, next) = parse_class(&chars, i)?;
                    i = next - 1;
                    atom
                }
                '.' => Atom::Any,
                '*' | '+' | '?' | '{' => {
                    return Err(format!("`{}` has nothing to repeat", chars[i]));
                }
                c @ ('(' | ')' | '|' | '^' | '$' | ']' | '}') => return Err(unsupported(c)),
                c => Atom::Char(c),
            };
            i += 1;
            let (min, max) = match chars.get(i) {
                Some('*') => (0, usize::MAX),
                Some('+') => (1, usize::MAX),
                Some('?') => (0, 1),
                Some('{') => {
                    let close = chars[i..]
                        .iter()
                        .position(|c| *c == '}')
                        .map(|p| i + p)
                        .ok_or("a `{` in the pattern has no closing `}`")?;
                    let inside: String = chars[i + 1..close].iter().collect();
                    let bounds = parse_repeat(&inside)?;
                    i = close;
                    bounds
                }
                _ => {
                    pieces.push(Piece {
                        atom,
                        min: 1,
                        max: 1,
                    });
                    continue;
                }
            };
            // `i` is at the quantifier's last character.
            i += 1;
            if let Some(c @ ('*' | '+' | '?' | '{')) = chars.get(i) {
                return Err(format!(
                    "`{c}` follows another quantifier; only one is allowed"
                ));
            }
            pieces.push(Piece { atom, min, max });
        }
        Ok(Pattern { pieces })
    }

    fn matches(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let n = chars.len();
        // The set of positions reachable after each piece: linear in pieces, quadratic in text.
        let mut reachable = vec![false; n + 1];
        reachable[0] = true;
        for piece in &self.pieces {
            let mut next = vec![false; n + 1];
            for start in (0..=n).filter(|&s| reachable[s]) {
                let mut count = 0;
                let mut pos = start;
                loop {
                    if count >= piece.min {
                        next[pos] = true;
                    }
                    if count == piece.max || pos == n || !piece.atom.matches(chars[pos]) {
                        break;
                    }
                    pos += 1;
                    count += 1;
                }
            }
            reachable = next;
        }
        reachable[n]
    }
}

/// Parse `[...]` starting at `chars[start] == '['`; returns the class and the index after `]`.
fn parse_class(chars: &[char], start: usize) -> Result<(Atom, usize), String> {
    let mut i = start + 1;
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let first = i;
    loop {
        let c = match chars.get(i) {
            None => return Err("a `[` in the pattern has no closing `]`".into()),
            Some(']') => break,
            Some('\\') => {
                i += 1;
                match chars.get(i) {
                    Some('d') => {
                        ranges.extend(DIGITS);
                        i += 1;
                        continue;
                    }
                    Some('w') => {
                        ranges.extend(WORD);
                        i += 1;
                        continue;
                    }
                    Some(c) => *c,
                    None => return Err("a `[` in the pattern has no closing `]`".into()),
                }
            }
            Some('-') if i != first && chars.get(i + 1).is_some_and(|c| *c != ']') => {
                return Err(
                    "a `-` in a [class] must be part of a range like a-z, or come first or last"
                        .into(),
                );
            }
            Some(c) => *c,
        };
        i += 1;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
            let hi = chars[i + 1];
            if hi < c {
                return Err(format!("the range `{c}-{hi}` in the pattern is backwards"));
            }
            ranges.push((c, hi));
            i += 2;
        } else {
            ranges.push((c, c));
        }
    }
    if ranges.is_empty() {
        return Err("an empty `[]` in the pattern matches nothing".into());
    }
    Ok((Atom::Class { negated, ranges }, i + 1))
}

/// `n`, `n,` or `n,m` (the inside of `{...}`).
fn parse_repeat(inside: &str) -> Result<(usize, usize), String> {
    let number = |text: &str| -> Result<usize, String> {
        text.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= MAX_PATTERN_REPEAT)
            .ok_or_else(|| {
                format!("`{{{inside}}}` in the pattern needs counts from 0 to {MAX_PATTERN_REPEAT}")
            })
    };
    let (min, max) = match inside.split_once(',') {
        None => {
            let n = number(inside)?;
            (n, n)
        }
        Some((min, max)) if max.trim().is_empty() => (number(min)?, usize::MAX),
        Some((min, max)) => (number(min)?, number(max)?),
    };
    if min > max {
        return Err(format!(
            "`{{{inside}}}` in the pattern has its minimum above its maximum"
        ));
    }
    Ok((min, max))
}

// ---------------------------------------------------------------------------------------------
// Lint

/// A playbook file as written: loosely typed so that the lint can say precisely what is wrong.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlaybook {
    name: Option<String>,
    description: Option<String>,
    applies_to: Option<RawAppliesTo>,
    #[serde(default)]
    parameters: Vec<RawParameter>,
    steps: Option<Vec<RawStep>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAppliesTo {
    #[serde(default)]
    symptoms: Vec<String>,
    #[serde(default)]
    severities: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParameter {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    default: Option<Yaml>,
    min: Option<i64>,
    max: Option<i64>,
    pattern: Option<String>,
    values: Option<Vec<Yaml>>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: Option<String>,
    action: Option<String>,
    #[serde(default)]
    args: BTreeMap<String, Yaml>,
    confirm: Option<bool>,
    timeout: Option<Yaml>,
    on_failure: Option<String>,
}

/// A scalar's text (`5`, `true`, `text`); `None` for null, lists and maps.
fn scalar_text(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The incident used to check templates.
fn sample_incident() -> serde_json::Value {
    incident_context("INC-1", Severity::P1, "Sample incident")
}

struct Lint<'a> {
    file: &'a str,
    at: Locator<'a>,
    problems: Vec<PlaybookProblem>,
}

impl Lint<'_> {
    fn add(&mut self, line: Option<usize>, message: impl Into<String>) {
        self.problems.push(PlaybookProblem {
            file: self.file.to_string(),
            line,
            message: message.into(),
        });
    }
}

/// Parse and check one playbook file; every problem found is returned.
fn lint(file: &str, text: &str) -> Result<Playbook, Vec<PlaybookProblem>> {
    let whole_file = |line: Option<usize>, message: String| {
        vec![PlaybookProblem {
            file: file.to_string(),
            line,
            message,
        }]
    };
    if text.trim().is_empty() {
        return Err(whole_file(
            None,
            "the file is empty; a playbook needs name, description and steps".into(),
        ));
    }
    let raw: RawPlaybook = serde_norway::from_str(text)
        .map_err(|e| whole_file(e.location().map(|l| l.line()), yaml_error_text(&e)))?;
    let mut lint = Lint {
        file,
        at: Locator::new(text),
        problems: Vec::new(),
    };

    let name = lint_name(&mut lint, raw.name);
    let description = match raw.description.map(|d| d.trim().to_string()) {
        None => {
            lint.add(None, "missing `description`: say what the playbook is for");
            String::new()
        }
        Some(d) if d.is_empty() => {
            lint.add(lint.at.top("description"), "`description` is empty");
            d
        }
        Some(d) if d.chars().count() > MAX_TEXT_CHARS => {
            lint.add(
                lint.at.top("description"),
                format!("`description` is longer than {MAX_TEXT_CHARS} characters"),
            );
            d
        }
        Some(d) => d,
    };
    let (symptoms, severities) = lint_applies_to(&mut lint, raw.applies_to);
    let (parameters, parameter_names, parameters_ok) = lint_parameters(&mut lint, raw.parameters);
    let steps = match raw.steps {
        None => {
            lint.add(None, "missing `steps`: a playbook needs at least one step");
            Vec::new()
        }
        Some(steps) if steps.is_empty() => {
            lint.add(
                lint.at.top("steps"),
                "`steps` is empty: a playbook needs at least one step",
            );
            Vec::new()
        }
        Some(steps) => {
            let defaults = parameters_ok.then_some(&parameters);
            lint_steps(&mut lint, steps, &parameter_names, defaults)
        }
    };
    if lint.problems.is_empty() {
        Ok(Playbook {
            name,
            description,
            symptoms,
            severities,
            parameters,
            steps,
            file: file.to_string(),
        })
    } else {
        Err(lint.problems)
    }
}

/// serde_norway's message without its ` at line N column M` (the problem carries the line).
fn yaml_error_text(e: &serde_norway::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" at line ") {
        Some(at) if text[at..].contains(" column ") => text[..at].to_string(),
        _ => text,
    };
    format!("not a valid playbook: {text}")
}

fn lint_name(lint: &mut Lint<'_>, name: Option<String>) -> String {
    let Some(name) = name else {
        lint.add(
            None,
            "missing `name`: the playbook's name, the same as its file name",
        );
        return String::new();
    };
    let line = lint.at.top("name");
    if !valid_label(&name) {
        lint.add(
            line,
            format!(
                "`{}` is not a valid playbook name: use lowercase letters, digits and `-` (like scale-api), at most 63",
                name.chars().take(60).collect::<String>()
            ),
        );
    }
    let stem = Path::new(lint.file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if stem != name {
        lint.add(
            line,
            format!(
                "the playbook is named `{name}` but its file is `{stem}`; they must be the same"
            ),
        );
    }
    name
}

fn lint_applies_to(
    lint: &mut Lint<'_>,
    applies_to: Option<RawAppliesTo>,
) -> (Vec<String>, Vec<Severity>) {
    let Some(applies_to) = applies_to else {
        return (Vec::new(), Vec::new());
    };
    let block = lint.at.top_block("applies_to");
    let symptoms_line = block.and_then(|b| lint.at.key_in(b, "symptoms", None));
    let mut symptoms = Vec::new();
    for symptom in applies_to.symptoms {
        let symptom = symptom.trim().to_string();
        if symptom.is_empty() || symptom.chars().count() > MAX_TITLE_CHARS {
            lint.add(
                symptoms_line,
                format!("a symptom must be 1 to {MAX_TITLE_CHARS} characters"),
            );
        } else {
            symptoms.push(symptom);
        }
    }
    let severities_line = block.and_then(|b| lint.at.key_in(b, "severities", None));
    let mut severities = Vec::new();
    for text in applies_to.severities {
        match text.parse::<Severity>() {
            Ok(severity) if severities.contains(&severity) => {
                lint.add(
                    severities_line,
                    format!("severity {severity} is listed twice"),
                );
            }
            Ok(severity) => severities.push(severity),
            Err(e) => lint.add(severities_line, e.to_string()),
        }
    }
    severities.sort();
    (symptoms, severities)
}

/// Check the parameters; returns them, every declared name (even of broken ones), and whether
/// all were fine (only then are steps rendered with the defaults).
fn lint_parameters(
    lint: &mut Lint<'_>,
    raw: Vec<RawParameter>,
) -> (Vec<Parameter>, BTreeSet<String>, bool) {
    let items = lint.at.items("parameters");
    let before = lint.problems.len();
    let mut parameters = Vec::new();
    let mut names = BTreeSet::new();
    for (i, raw) in raw.into_iter().enumerate() {
        let item = items.get(i).copied();
        let item_line = item
            .map(|(start, _)| start + 1)
            .or_else(|| lint.at.top("parameters"));
        let key_line = |lint: &Lint<'_>, key: &str| {
            item.and_then(|range| lint.at.key_in(range, key, lint.at.item_column(range)))
                .or(item_line)
        };
        let Some(name) = raw.name else {
            lint.add(item_line, format!("parameter {} has no `name`", i + 1));
            continue;
        };
        let name_ok = !name.is_empty()
            && name.len() <= MAX_NAME_CHARS
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !name_ok {
            lint.add(
                item_line,
                format!(
                    "`{}` is not a valid parameter name: a lowercase letter, then lowercase letters, digits or `_`",
                    name.chars().take(60).collect::<String>()
                ),
            );
        } else if RESERVED_PARAMETER_NAMES.contains(&name.as_str()) {
            lint.add(
                item_line,
                format!("`{name}` is reserved and cannot name a parameter"),
            );
        }
        if !names.insert(name.clone()) {
            lint.add(item_line, format!("parameter `{name}` is defined twice"));
        }
        let misplaced = |lint: &mut Lint<'_>, key: &str, present: bool, owner: &str| {
            if present {
                let line = key_line(lint, key);
                lint.add(
                    line,
                    format!("parameter `{name}`: `{key}` is only for {owner} parameters"),
                );
            }
        };
        let problems_before_kind = lint.problems.len();
        let kind = match raw.kind.as_deref() {
            None => {
                lint.add(
                    item_line,
                    format!("parameter `{name}` has no `type`: string, integer, boolean or enum"),
                );
                None
            }
            Some("string") => {
                misplaced(lint, "min", raw.min.is_some(), "integer");
                misplaced(lint, "max", raw.max.is_some(), "integer");
                misplaced(lint, "values", raw.values.is_some(), "enum");
                if let Some(pattern) = &raw.pattern
                    && let Err(e) = Pattern::parse(pattern)
                {
                    let line = key_line(lint, "pattern");
                    lint.add(line, format!("parameter `{name}`: bad pattern: {e}"));
                }
                Some(ParamKind::String {
                    pattern: raw.pattern.clone(),
                })
            }
            Some("integer") => {
                misplaced(lint, "pattern", raw.pattern.is_some(), "string");
                misplaced(lint, "values", raw.values.is_some(), "enum");
                if let (Some(min), Some(max)) = (raw.min, raw.max)
                    && min > max
                {
                    let line = key_line(lint, "min");
                    lint.add(
                        line,
                        format!("parameter `{name}`: min {min} is above max {max}"),
                    );
                }
                Some(ParamKind::Integer {
                    min: raw.min,
                    max: raw.max,
                })
            }
            Some("boolean") => {
                misplaced(lint, "min", raw.min.is_some(), "integer");
                misplaced(lint, "max", raw.max.is_some(), "integer");
                misplaced(lint, "pattern", raw.pattern.is_some(), "string");
                misplaced(lint, "values", raw.values.is_some(), "enum");
                Some(ParamKind::Boolean)
            }
            Some("enum") => {
                misplaced(lint, "min", raw.min.is_some(), "integer");
                misplaced(lint, "max", raw.max.is_some(), "integer");
                misplaced(lint, "pattern", raw.pattern.is_some(), "string");
                let mut values = Vec::new();
                let values_line = key_line(lint, "values");
                for value in raw.values.iter().flatten() {
                    match scalar_text(value) {
                        Some(v) if v.is_empty() || v.chars().count() > MAX_VALUE_CHARS => lint.add(
                            values_line,
                            format!("parameter `{name}`: enum values must be 1 to {MAX_VALUE_CHARS} characters"),
                        ),
                        Some(v) if values.contains(&v) => {
                            lint.add(values_line, format!("parameter `{name}`: value `{v}` is listed twice"));
                        }
                        Some(v) => values.push(v),
                        None => lint.add(
                            values_line,
                            format!("parameter `{name}`: enum values must be single values"),
                        ),
                    }
                }
                if raw.values.as_ref().is_none_or(Vec::is_empty) {
                    lint.add(
                        values_line,
                        format!("parameter `{name}` is an enum but lists no `values`"),
                    );
                }
                Some(ParamKind::Enum { values })
            }
            Some(other) => {
                let line = key_line(lint, "type");
                lint.add(
                    line,
                    format!(
                        "parameter `{name}`: unknown type `{}`; use string, integer, boolean or enum",
                        other.chars().take(40).collect::<String>()
                    ),
                );
                None
            }
        };
        let Some(kind) = kind else { continue };
        // A default is only checked against constraints that are themselves sound.
        let constraints_ok = lint.problems.len() == problems_before_kind;
        let default = match &raw.default {
            None => None,
            Some(value) => match scalar_text(value) {
                Some(text) => Some(text),
                None => {
                    let line = key_line(lint, "default");
                    lint.add(
                        line,
                        format!("parameter `{name}`: `default` must be a single value"),
                    );
                    None
                }
            },
        };
        let mut parameter = Parameter {
            name: name.clone(),
            kind,
            default,
            description: raw.description.unwrap_or_default().trim().to_string(),
        };
        if let Some(default) = &parameter.default
            && constraints_ok
        {
            match parameter.check(default) {
                Ok(normalized) => parameter.default = Some(normalized),
                Err(e) => {
                    let line = key_line(lint, "default");
                    lint.add(
                        line,
                        format!("the default of parameter `{name}` is invalid: {e}"),
                    );
                }
            }
        }
        parameters.push(parameter);
    }
    let ok = lint.problems.len() == before;
    (parameters, names, ok)
}

fn lint_steps(
    lint: &mut Lint<'_>,
    raw: Vec<RawStep>,
    parameter_names: &BTreeSet<String>,
    parameters: Option<&Vec<Parameter>>,
) -> Vec<Step> {
    let items = lint.at.items("steps");
    let mut steps = Vec::new();
    let mut step_names = BTreeSet::new();
    // Every declared parameter has a value here (a sample when it has no default), so that a
    // strict-mode failure means the template names something that does not exist.
    let mut full_context = serde_json::Map::new();
    for name in parameter_names {
        full_context.insert(name.clone(), json!("sample"));
    }
    // Only the defaults: what a step renders to when run with no arguments.
    let mut defaults_context = serde_json::Map::new();
    for parameter in parameters.into_iter().flatten() {
        if let Some(default) = &parameter.default {
            let typed = parameter.kind.typed(default);
            full_context.insert(parameter.name.clone(), typed.clone());
            defaults_context.insert(parameter.name.clone(), typed);
        }
    }
    full_context.insert("incident".into(), sample_incident());
    defaults_context.insert("incident".into(), sample_incident());
    let full_context = serde_json::Value::Object(full_context);
    let defaults_context = serde_json::Value::Object(defaults_context);
    let known_names = if parameter_names.is_empty() {
        "it has no parameters".to_string()
    } else {
        format!(
            "its parameters: {}",
            parameter_names
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )
    };

    for (i, raw) in raw.into_iter().enumerate() {
        let before = lint.problems.len();
        let number = i + 1;
        let item = items.get(i).copied();
        let item_line = item
            .map(|(start, _)| start + 1)
            .or_else(|| lint.at.top("steps"));
        let key_line = |lint: &Lint<'_>, key: &str| {
            item.and_then(|range| lint.at.key_in(range, key, lint.at.item_column(range)))
                .or(item_line)
        };
        let args_block = item.and_then(|range| {
            let line = lint.at.key_in(range, "args", lint.at.item_column(range))?;
            Some((line, lint.at.block_after(line - 1, range.1)))
        });
        let arg_line = |lint: &Lint<'_>, arg: &str| match args_block {
            Some((line, block)) => lint
                .at
                .key_in((line - 1, line), arg, None)
                .or_else(|| lint.at.key_in(block, arg, None))
                .or(Some(line)),
            None => key_line(lint, "args"),
        };

        let name = match raw.name.map(|n| n.trim().to_string()) {
            None => {
                lint.add(item_line, format!("step {number} has no `name`"));
                format!("step {number}")
            }
            Some(n) if n.is_empty() || n.chars().count() > MAX_TITLE_CHARS => {
                lint.add(
                    item_line,
                    format!("step {number}: a name must be 1 to {MAX_TITLE_CHARS} characters"),
                );
                n
            }
            Some(n) => {
                if !step_names.insert(n.clone()) {
                    lint.add(
                        item_line,
                        format!("step {number}: the step name `{n}` is used twice"),
                    );
                }
                n
            }
        };
        let label = format!("step {number} ({name})");

        let action = match raw.action.as_deref() {
            None => {
                lint.add(item_line, format!("{label} has no `action`"));
                None
            }
            Some(text) => {
                let kind = ActionKind::parse(text);
                if kind.is_none() {
                    let known: Vec<&str> = ActionKind::ALL.iter().map(|k| k.as_str()).collect();
                    let line = key_line(lint, "action");
                    lint.add(
                        line,
                        format!(
                            "{label}: unknown action `{}`; known actions: {}",
                            text.chars().take(40).collect::<String>(),
                            known.join(", ")
                        ),
                    );
                }
                kind
            }
        };

        let mut args = BTreeMap::new();
        for (arg, value) in &raw.args {
            match scalar_text(value) {
                Some(text) => {
                    args.insert(arg.clone(), text);
                }
                None => {
                    let line = arg_line(lint, arg);
                    lint.add(line, format!("{label}: argument `{arg}` must be a single value (quote templates: \"{{{{name}}}}\")"));
                }
            }
        }
        let mut args_ok = args.len() == raw.args.len();
        if let Some(kind) = action {
            let (required, optional) = kind.arguments();
            for arg in args.keys() {
                if !required.contains(&arg.as_str()) && !optional.contains(&arg.as_str()) {
                    args_ok = false;
                    let line = arg_line(lint, arg);
                    lint.add(
                        line,
                        format!(
                            "{label}: {kind} has no argument `{}`; usage: {}",
                            arg.chars().take(40).collect::<String>(),
                            kind.usage()
                        ),
                    );
                }
            }
            for arg in required {
                if !args.contains_key(*arg) {
                    args_ok = false;
                    let line = args_block
                        .map(|(line, _)| line)
                        .or_else(|| key_line(lint, "action"));
                    lint.add(
                        line,
                        format!("{label}: {kind} needs {arg}=…; usage: {}", kind.usage()),
                    );
                }
            }
        }

        // Templates: syntax, then the names they use.
        let mut templates_ok = true;
        for (arg, template) in &args {
            if let Err(e) = Template::compile(template) {
                templates_ok = false;
                let line = arg_line(lint, arg);
                lint.add(
                    line,
                    format!("{label}: argument `{arg}`: template error: {}", e.reason()),
                );
                continue;
            }
            if let Err(e) = TEMPLATES.render_template(template, &full_context) {
                templates_ok = false;
                let line = arg_line(lint, arg);
                let message = match e.reason() {
                    RenderErrorReason::MissingVariable(Some(path)) => format!(
                        "{label}: argument `{arg}` names `{path}`, which is not a parameter of this playbook ({known_names}) nor incident.key, incident.severity or incident.title"
                    ),
                    _ => format!("{label}: argument `{arg}`: {}", render_error_text(&e)),
                };
                lint.add(line, message);
            }
        }

        // With the defaults and a sample incident, the arguments must make a valid action.
        if let Some(kind) = action
            && args_ok
            && templates_ok
            && parameters.is_some()
        {
            let rendered: Option<BTreeMap<String, String>> = args
                .iter()
                .map(|(arg, template)| {
                    render(template, &defaults_context)
                        .ok()
                        .map(|v| (arg.clone(), v))
                })
                .collect();
            // `None`: a step uses a parameter without a default; it is checked when run.
            if let Some(rendered) = rendered {
                let mut each_ok = true;
                for (arg, value) in &rendered {
                    if let Err(e) = check_argument(arg, value) {
                        each_ok = false;
                        let line = arg_line(lint, arg);
                        lint.add(line, format!("{label}: with the defaults, argument `{arg}` renders to an invalid value: {e}"));
                    }
                }
                if each_ok && let Err(e) = Action::new(kind, rendered) {
                    let line = key_line(lint, "action");
                    lint.add(
                        line,
                        format!("{label}: with the defaults, the step is not a valid action: {e}"),
                    );
                }
            }
        }

        if raw.confirm == Some(true) && action.is_some_and(|a| !a.mutating()) {
            let line = key_line(lint, "confirm");
            lint.add(
                line,
                format!(
                    "{label}: `confirm: true` applies to changes only: {} reads the cluster and runs at once",
                    action.map(ActionKind::as_str).unwrap_or_default()
                ),
            );
        }
        if raw.confirm == Some(false) && action.is_some_and(ActionKind::mutating) {
            let line = key_line(lint, "confirm");
            lint.add(
                line,
                format!(
                    "{label}: `confirm: false` is not allowed: {} changes the cluster, so it always asks for confirmation",
                    action.map(ActionKind::as_str).unwrap_or_default()
                ),
            );
        }

        let timeout = match &raw.timeout {
            None => DEFAULT_STEP_TIMEOUT,
            Some(value) => {
                let parsed = match value {
                    Yaml::String(text) => humantime::parse_duration(text.trim()).map_err(|e| {
                        format!("`{text}` is not a duration ({e}); write e.g. 10s, 2m")
                    }),
                    other => Err(format!(
                        "`{}` is not a duration; write it with a unit, e.g. 10s, 2m",
                        scalar_text(other).unwrap_or_else(|| "this".into())
                    )),
                };
                match parsed {
                    Ok(d) if (MIN_STEP_TIMEOUT..=MAX_STEP_TIMEOUT).contains(&d) => d,
                    Ok(d) => {
                        let line = key_line(lint, "timeout");
                        lint.add(
                            line,
                            format!(
                                "{label}: timeout {} is out of range; use 1s to 5m",
                                humantime::format_duration(d)
                            ),
                        );
                        DEFAULT_STEP_TIMEOUT
                    }
                    Err(e) => {
                        let line = key_line(lint, "timeout");
                        lint.add(line, format!("{label}: timeout {e}"));
                        DEFAULT_STEP_TIMEOUT
                    }
                }
            }
        };

        let continue_on_failure = match raw.on_failure.as_deref() {
            None | Some("stop") => false,
            Some("continue") => true,
            Some(other) => {
                let line = key_line(lint, "on_failure");
                lint.add(
                    line,
                    format!(
                        "{label}: on_failure must be `stop` or `continue`, not `{}`",
                        other.chars().take(40).collect::<String>()
                    ),
                );
                false
            }
        };

        if let Some(kind) = action
            && lint.problems.len() == before
        {
            steps.push(Step {
                name,
                action: kind,
                args,
                confirm: raw.confirm.unwrap_or(false) || kind.mutating(),
                timeout,
                continue_on_failure,
            });
        }
    }
    steps
}

/// Finds the lines of keys in a playbook's text, for problems found after parsing. It knows
/// the shape of a playbook (top-level keys, lists of mappings under them), in block or flow style.
struct Locator<'a> {
    lines: Vec<&'a str>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// The column where a line's key starts (after indentation and `- ` markers) and the rest.
fn key_start(line: &str) -> (usize, &str) {
    let mut rest = line.trim_start_matches(' ');
    while let Some(after) = rest.strip_prefix('-') {
        if after.is_empty() || after.starts_with(' ') {
            rest = after.trim_start_matches(' ');
        } else {
            break;
        }
    }
    (line.len() - rest.len(), rest)
}

fn starts_with_key(text: &str, key: &str) -> bool {
    let text = text.strip_prefix(['"', '\'']).unwrap_or(text);
    text.strip_prefix(key).is_some_and(|rest| {
        let rest = rest.strip_prefix(['"', '\'']).unwrap_or(rest);
        rest.trim_start_matches(' ').starts_with(':')
    })
}

/// `{ namespace: x, deployment: y }` contains key `deployment`.
fn flow_has_key(line: &str, key: &str) -> bool {
    line.match_indices(key).any(|(at, _)| {
        let before = line[..at].trim_end_matches(['"', '\'']).trim_end();
        let after = line[at + key.len()..]
            .trim_start_matches(['"', '\''])
            .trim_start();
        (before.ends_with('{') || before.ends_with(',')) && after.starts_with(':')
    })
}

impl<'a> Locator<'a> {
    fn new(text: &'a str) -> Self {
        Locator {
            lines: text.lines().collect(),
        }
    }

    /// The 1-based line of a top-level `key:`.
    fn top(&self, key: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|line| {
                indent(line) == 0 && !line.starts_with('-') && starts_with_key(line, key)
            })
            .map(|i| i + 1)
    }

    /// The lines (0-based, end exclusive) under a top-level key.
    fn top_block(&self, key: &str) -> Option<(usize, usize)> {
        let start = self.top(key)?;
        let mut end = start;
        while end < self.lines.len() {
            let line = self.lines[end];
            if !is_blank(line) && indent(line) == 0 && !line.starts_with('-') {
                break;
            }
            end += 1;
        }
        Some((start, end))
    }

    /// The lines after 0-based line `index` indented deeper than its key, up to `limit`.
    fn block_after(&self, index: usize, limit: usize) -> (usize, usize) {
        let column = key_start(self.lines[index]).0;
        let mut end = index + 1;
        while end < limit {
            let line = self.lines[end];
            if !is_blank(line) && indent(line) <= column {
                break;
            }
            end += 1;
        }
        (index + 1, end)
    }

    /// The line ranges of the items of the list under a top-level key.
    fn items(&self, key: &str) -> Vec<(usize, usize)> {
        let Some((start, end)) = self.top_block(key) else {
            return Vec::new();
        };
        let is_item = |line: &str| {
            let t = line.trim_start_matches(' ');
            t == "-" || t.starts_with("- ")
        };
        let Some(item_indent) = (start..end)
            .map(|i| self.lines[i])
            .find(|line| !is_blank(line) && is_item(line))
            .map(indent)
        else {
            return Vec::new();
        };
        let starts: Vec<usize> = (start..end)
            .filter(|&i| indent(self.lines[i]) == item_indent && is_item(self.lines[i]))
            .collect();
        starts
            .iter()
            .enumerate()
            .map(|(n, &s)| (s, starts.get(n + 1).copied().unwrap_or(end)))
            .collect()
    }

    /// The column of the keys of a list item (`- name: x` / `  action: y`).
    fn item_column(&self, (start, end): (usize, usize)) -> Option<usize> {
        (start..end)
            .map(|i| key_start(self.lines[i]))
            .find(|(_, rest)| !rest.is_empty() && !rest.starts_with('#'))
            .map(|(column, _)| column)
    }

    /// The 1-based line of `key:` in the range: a block key (at `column`, when given), else a
    /// key inside a flow mapping.
    fn key_in(
        &self,
        (start, end): (usize, usize),
        key: &str,
        column: Option<usize>,
    ) -> Option<usize> {
        let end = end.min(self.lines.len());
        (start..end)
            .find(|&i| {
                let (at, rest) = key_start(self.lines[i]);
                column.is_none_or(|c| c == at) && starts_with_key(rest, key)
            })
            .or_else(|| (start..end).find(|&i| flow_has_key(self.lines[i], key)))
            .map(|i| i + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const SCALE: &str = r#"name: scale-api
description: Scale the API.
applies_to:
  symptoms: ["slow responses", "cpu"]
  severities: [P0, P1, P2]
parameters:
  - name: replicas
    type: integer
    default: 5
    min: 3
    max: 10
    description: Target replica count
  - name: namespace
    type: string
    default: stock-analysis-system
    pattern: "[a-z0-9-]+"
  - name: mode
    type: enum
    values: [fast, safe]
    default: safe
  - name: dry
    type: boolean
    default: false
  - name: reason
    type: string
steps:
  - name: Current pods
    action: pods
    args: { namespace: "{{namespace}}", deployment: stock-analysis-api }
    timeout: 10s
    on_failure: continue
  - name: Scale the API
    action: scale
    args:
      namespace: "{{namespace}}"
      deployment: stock-analysis-api
      replicas: "{{replicas}}"
"#;

    fn scale() -> Playbook {
        lint("playbooks/scale-api.yaml", SCALE).unwrap_or_else(|p| panic!("{p:?}"))
    }

    #[test]
    fn a_good_playbook_loads() {
        let playbook = scale();
        assert_eq!(
            playbook.severities,
            vec![Severity::P0, Severity::P1, Severity::P2]
        );
        assert_eq!(playbook.parameters.len(), 5);
        assert_eq!(playbook.parameters[3].default.as_deref(), Some("false"));
        let pods = &playbook.steps[0];
        assert_eq!(pods.action, ActionKind::Pods);
        assert_eq!(pods.timeout, Duration::from_secs(10));
        assert!(pods.continue_on_failure && !pods.confirm);
        let scale = &playbook.steps[1];
        assert!(scale.confirm && !scale.continue_on_failure);
        assert_eq!(scale.timeout, DEFAULT_STEP_TIMEOUT);
        assert_eq!(scale.args["replicas"], "{{replicas}}");
        assert_eq!(
            playbook.usage(),
            "run scale-api [replicas=N] [namespace=TEXT] [mode=fast|safe] [dry=true|false] reason=TEXT"
        );
    }

    #[test]
    fn bind_fills_defaults_and_checks_values() {
        let playbook = scale();
        let bound = playbook
            .bind(&map(&[
                ("reason", "load"),
                ("replicas", "7"),
                ("dry", "YES"),
            ]))
            .unwrap();
        assert_eq!(
            bound,
            map(&[
                ("dry", "true"),
                ("mode", "safe"),
                ("namespace", "stock-analysis-system"),
                ("reason", "load"),
                ("replicas", "7"),
            ])
        );
        for (given, complaint) in [
            (
                map(&[("reason", "x"), ("replica", "7")]),
                "scale-api has no parameter `replica`",
            ),
            (map(&[]), "scale-api needs reason=… (string)"),
            (
                map(&[("reason", "x"), ("replicas", "five")]),
                "`replicas` must be a whole number, not `five`",
            ),
            (
                map(&[("reason", "x"), ("replicas", "11")]),
                "`replicas` must be between 3 and 10, not 11",
            ),
            (
                map(&[("reason", "x"), ("replicas", "-1")]),
                "`replicas` must be between 3 and 10, not -1",
            ),
            (
                map(&[("reason", "x"), ("mode", "yolo")]),
                "`mode` must be one of fast, safe, not `yolo`",
            ),
            (
                map(&[("reason", "x"), ("dry", "maybe")]),
                "`dry` must be true or false",
            ),
            (
                map(&[("reason", "x"), ("namespace", "Kube_System")]),
                "`namespace` must match the pattern `[a-z0-9-]+`, not `Kube_System`",
            ),
            (map(&[("reason", "x\u{7}")]), "control characters"),
            (
                map(&[("reason", &"x".repeat(MAX_VALUE_CHARS + 1))]),
                "longer than",
            ),
        ] {
            let err = playbook.bind(&given).unwrap_err();
            assert!(err.contains(complaint), "{err}");
            // The message lists the parameters with their types and defaults.
            assert!(
                err.contains("scale-api takes: replicas (integer 3–10, default 5), namespace (string matching `[a-z0-9-]+`, default stock-analysis-system), mode (one of fast|safe, default safe), dry (true|false, default false), reason (string, required)"),
                "{err}"
            );
        }
    }

    #[test]
    fn steps_render_into_checked_actions() {
        let playbook = scale();
        let incident = incident_context("INC-7", Severity::P1, "API down");
        let bound = playbook.bind(&map(&[("reason", "x")])).unwrap();
        let action = playbook.action(1, &bound, &incident).unwrap();
        assert_eq!(
            action.describe(),
            "scale deployment=stock-analysis-api namespace=stock-analysis-system replicas=5"
        );
        assert!(
            playbook
                .action(5, &bound, &incident)
                .unwrap_err()
                .contains("has no step 6")
        );
        // An injection that gets past a parameter's own checks still meets the action's.
        let mut loose = playbook.clone();
        loose.parameters[1].kind = ParamKind::String { pattern: None };
        let bound = loose
            .bind(&map(&[("reason", "x"), ("namespace", "../kube-system")]))
            .unwrap();
        let err = loose.action(0, &bound, &incident).unwrap_err();
        assert!(
            err.contains("`../kube-system` is not a valid namespace"),
            "{err}"
        );
        // Values are not HTML-escaped, and a missing value is an error, not an empty string.
        let mut echo = playbook.clone();
        echo.steps[0].args = map(&[("selector", "app={{reason}}")]);
        let bound = echo.bind(&map(&[("reason", "a&b")])).unwrap();
        let err = echo.action(0, &bound, &incident).unwrap_err();
        assert!(err.contains("`app=a&b` is not a valid selector"), "{err}");
        let err = echo.action(0, &BTreeMap::new(), &incident).unwrap_err();
        assert!(err.contains("`reason` has no value"), "{err}");
    }

    #[test]
    fn arguments_are_parsed_from_chat() {
        assert_eq!(parse_arguments("").unwrap(), BTreeMap::new());
        assert_eq!(
            parse_arguments("  replicas=7 note=\"two words\"  ns=a=b empty=\"\" q=“curly quotes”")
                .unwrap(),
            map(&[
                ("empty", ""),
                ("note", "two words"),
                ("ns", "a=b"),
                ("q", "curly quotes"),
                ("replicas", "7"),
            ])
        );
        assert_eq!(
            parse_arguments(r#"t="say \"hi\" \\ ok""#).unwrap(),
            map(&[("t", r#"say "hi" \ ok"#)])
        );
        for (words, complaint) in [
            ("replicas", "`replicas` is not a key=value argument"),
            ("replicas 7", "`replicas` is not a key=value argument"),
            ("=7", "no name before `=`"),
            ("replicas=", "`replicas=` has no value"),
            ("t=\"open", "no closing quote"),
            ("t=\"a\"b", "space after the closing quote"),
            ("a=1 a=2", "`a` is given twice"),
            ("Replicas=1", "not a parameter name"),
        ] {
            let err = parse_arguments(words).unwrap_err();
            assert!(err.contains(complaint), "{words}: {err}");
        }
    }

    #[test]
    fn patterns_support_a_small_subset() {
        for (pattern, text, expected) in [
            ("[a-z0-9-]+", "stock-analysis", true),
            ("[a-z0-9-]+", "Stock", false),
            ("[a-z0-9-]+", "", false),
            ("[a-z]*", "", true),
            ("ab?c", "ac", true),
            ("ab?c", "abbc", false),
            ("a{2,3}", "aaa", true),
            ("a{2,3}", "aaaa", false),
            ("a{2}", "aa", true),
            ("a{2,}x", "aaaaax", true),
            ("v\\d+\\.\\d+", "v1.25", true),
            ("v\\d+\\.\\d+", "v1x25", false),
            ("[^/.]+", "kube-system", true),
            ("[^/.]+", "../kube-system", false),
            (".*-api", "stock-analysis-api", true),
            ("\\w+", "snake_case9", true),
            ("[a-z]*[a-z]*[a-z]*[a-z]*[a-z]*!", &"a".repeat(200), false),
        ] {
            assert_eq!(
                pattern_matches(pattern, text),
                Ok(expected),
                "{pattern} ~ {text}"
            );
        }
        for (pattern, complaint) in [
            ("(a|b)", "`(` is not supported"),
            ("a|b", "`|` is not supported"),
            ("^a", "`^` is not supported"),
            ("+a", "nothing to repeat"),
            ("a**", "follows another quantifier"),
            ("[a-", "no closing `]`"),
            ("[z-a]", "backwards"),
            ("[]", "an empty `[]`"),
            ("a{3,1}", "minimum above its maximum"),
            ("a{x}", "needs counts"),
            ("a{2", "no closing `}`"),
            ("\\q", "`\\q` is not supported"),
        ] {
            let err = pattern_matches(pattern, "a").unwrap_err();
            assert!(err.contains(complaint), "{pattern}: {err}");
        }
    }

    /// Lint `text` as `playbooks/<stem>.yaml` and return its problems.
    fn problems(stem: &str, text: &str) -> Vec<PlaybookProblem> {
        lint(&format!("playbooks/{stem}.yaml"), text).expect_err("should not lint clean")
    }

    /// The 1-based line of the first line containing `needle`.
    fn line_of(text: &str, needle: &str) -> usize {
        text.lines().position(|l| l.contains(needle)).expect(needle) + 1
    }

    /// `SCALE` with `from` replaced by `to` (which must occur).
    fn edited(from: &str, to: &str) -> String {
        assert!(SCALE.contains(from), "{from}");
        SCALE.replacen(from, to, 1)
    }

    /// The 1-based line of the last line containing `needle`.
    fn last_line_of(text: &str, needle: &str) -> usize {
        let lines: Vec<&str> = text.lines().collect();
        lines
            .iter()
            .rposition(|l| l.contains(needle))
            .expect(needle)
            + 1
    }

    /// Exactly one problem, containing `message`, on the first line containing `marker`.
    fn assert_one(text: &str, message: &str, marker: &str) {
        assert_one_at(text, message, line_of(text, marker));
    }

    fn assert_one_at(text: &str, message: &str, line: usize) {
        let found = problems("scale-api", text);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].message.contains(message), "{}", found[0]);
        assert_eq!(found[0].line, Some(line), "{}\n{text}", found[0]);
        assert_eq!(found[0].file, "playbooks/scale-api.yaml");
    }

    #[test]
    fn lint_reports_yaml_and_shape_problems() {
        let text = edited("    type: enum\n", "    type: enum: bad\n");
        assert_one(
            &text,
            "not a valid playbook: mapping values are not allowed",
            "enum: bad",
        );
        assert!(
            !problems("scale-api", &text)[0]
                .message
                .contains(" at line ")
        );

        let text = edited("    timeout: 10s\n", "    timeout: 10s\n    retries: 3\n");
        assert_one(&text, "unknown field `retries`", "retries: 3");
        let text = edited("  - name: dry\n", "  - name: dry\n    color: red\n");
        assert_one(&text, "unknown field `color`", "color: red");

        let text = edited("name: scale-api\n", "");
        let found = problems("scale-api", &text);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].message.contains("missing `name`"), "{}", found[0]);
        let text = edited("description: Scale the API.\n", "");
        assert!(
            problems("scale-api", &text)[0]
                .message
                .contains("missing `description`")
        );
        let at = SCALE.find("steps:").unwrap();
        let found = problems("scale-api", &SCALE[..at]);
        assert!(found[0].message.contains("missing `steps`"), "{found:?}");
        let text = format!("{}steps: []\n", &SCALE[..at]);
        assert_one(&text, "`steps` is empty", "steps: []");
        assert!(
            problems("scale-api", "  \n")[0]
                .message
                .contains("the file is empty")
        );
    }

    #[test]
    fn lint_reports_names() {
        let found = problems("scale-apis", SCALE);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0]
                .message
                .contains("named `scale-api` but its file is `scale-apis`")
        );
        assert_eq!(found[0].line, Some(1));
        let text = edited("name: scale-api", "name: Scale_API");
        let found = problems("Scale_API", &text);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].message.contains("not a valid playbook name"),
            "{}",
            found[0]
        );
        assert_eq!(found[0].line, Some(1));

        let text = edited("  - name: dry\n", "  - name: mode\n");
        assert_one_at(
            &text,
            "parameter `mode` is defined twice",
            last_line_of(&text, "name: mode"),
        );
        let text = edited("  - name: Scale the API", "  - name: Current pods");
        assert_one_at(
            &text,
            "the step name `Current pods` is used twice",
            last_line_of(&text, "Current pods"),
        );
        let text = edited("  - name: reason", "  - name: Reason");
        assert_one(&text, "not a valid parameter name", "name: Reason");
        let text = edited("  - name: reason", "  - name: incident");
        assert_one(&text, "`incident` is reserved", "name: incident");
    }

    #[test]
    fn lint_reports_steps() {
        let text = edited("action: pods", "action: shell");
        assert_one(
            &text,
            "step 1 (Current pods): unknown action `shell`; known actions: pods, events, logs, top, rollout_status, endpoints, nodes, probe, scale, restart, delete_pod",
            "action: shell",
        );
        let text = edited(
            "      deployment: stock-analysis-api\n",
            "      deployment: stock-analysis-api\n      force: \"yes\"\n",
        );
        assert_one(
            &text,
            "scale has no argument `force`; usage: scale deployment=NAME replicas=N [namespace=NAME]",
            "force:",
        );
        let text = edited("      replicas: \"{{replicas}}\"\n", "");
        assert_one_at(
            &text,
            "step 2 (Scale the API): scale needs replicas=…",
            last_line_of(&text, "    args:"),
        );
        let text = edited(
            "{ namespace: \"{{namespace}}\", deployment: stock-analysis-api }",
            "{ namespace: \"{{namespace}}\", deployment: api, selector: app=api }",
        );
        assert_one(
            &text,
            "pods takes deployment=… or selector=…, not both",
            "action: pods",
        );
        let text = edited(
            "      replicas: \"{{replicas}}\"\n",
            "      replicas: \"{{replicas}}\"\n    confirm: false\n",
        );
        assert_one(
            &text,
            "`confirm: false` is not allowed: scale changes the cluster",
            "confirm: false",
        );
        let text = edited(
            "    timeout: 10s\n",
            "    timeout: 10s\n    confirm: true\n",
        );
        assert_one(
            &text,
            "`confirm: true` applies to changes only: pods reads the cluster",
            "confirm: true",
        );
        let text = edited("timeout: 10s", "timeout: soon");
        assert_one(&text, "timeout `soon` is not a duration", "timeout: soon");
        let text = edited("timeout: 10s", "timeout: 10");
        assert_one(
            &text,
            "timeout `10` is not a duration; write it with a unit",
            "timeout: 10",
        );
        let text = edited("timeout: 10s", "timeout: 10m");
        assert_one(
            &text,
            "timeout 10m is out of range; use 1s to 5m",
            "timeout: 10m",
        );
        let text = edited("timeout: 10s", "timeout: 500ms");
        assert_one(&text, "timeout 500ms is out of range", "timeout: 500ms");
        let text = edited("on_failure: continue", "on_failure: retry");
        assert_one(
            &text,
            "on_failure must be `stop` or `continue`, not `retry`",
            "on_failure: retry",
        );
    }

    #[test]
    fn lint_reports_templates() {
        let text = edited("replicas: \"{{replicas}}\"", "replicas: \"{{replicas\"");
        assert_one(
            &text,
            "argument `replicas`: template error",
            "replicas: \"{{replicas\"",
        );
        let text = edited(
            "replicas: \"{{replicas}}\"",
            "replicas: \"{{replica_count}}\"",
        );
        assert_one(
            &text,
            "argument `replicas` names `replica_count`, which is not a parameter of this playbook (its parameters: dry, mode, namespace, reason, replicas)",
            "{{replica_count}}",
        );
        let text = edited(
            "replicas: \"{{replicas}}\"",
            "replicas: \"{{incident.channel}}\"",
        );
        assert_one(&text, "names `incident.channel`", "{{incident.channel}}");
        // Incident values are fine by name, but this one renders to an invalid deployment.
        let text = edited(
            "      deployment: stock-analysis-api\n",
            "      deployment: \"{{incident.key}}\"\n",
        );
        assert_one(
            &text,
            "with the defaults, argument `deployment` renders to an invalid value: `INC-1` is not a valid deployment",
            "{{incident.key}}",
        );
        // Flow style: the line of the args mapping.
        let text = edited(
            "deployment: stock-analysis-api }",
            "deployment: \"{{mode}}-\" }",
        );
        assert_one(&text, "`safe-` is not a valid deployment", "{{mode}}-");
        // A required parameter (no default) is checked by name only; running checks the rest.
        let text = edited(
            "deployment: stock-analysis-api }",
            "deployment: \"{{reason}}\" }",
        );
        assert!(lint("playbooks/scale-api.yaml", &text).is_ok());
    }

    #[test]
    fn lint_reports_parameters_and_severities() {
        let text = edited("    default: 5\n", "    default: 50\n");
        assert_one(
            &text,
            "the default of parameter `replicas` is invalid: `replicas` must be between 3 and 10, not 50",
            "default: 50",
        );
        let text = edited("    default: safe\n", "    default: slow\n");
        assert_one(
            &text,
            "the default of parameter `mode` is invalid",
            "default: slow",
        );
        let text = edited(
            "    default: stock-analysis-system\n",
            "    default: Stock\n",
        );
        assert_one(&text, "must match the pattern", "default: Stock");
        let text = edited("    default: false\n", "    default: perhaps\n");
        assert_one(&text, "must be true or false", "default: perhaps");
        let text = edited("    min: 3\n", "    min: 30\n");
        assert_one(&text, "min 30 is above max 10", "min: 30");
        let text = edited("    pattern: \"[a-z0-9-]+\"\n", "    pattern: \"(a|b)+\"\n");
        assert_one(
            &text,
            "bad pattern: `(` is not supported",
            "pattern: \"(a|b)+\"",
        );
        let text = edited("    type: enum\n", "    type: choice\n");
        assert_one(&text, "unknown type `choice`", "type: choice");
        let text = edited("    values: [fast, safe]\n", "");
        let found = problems("scale-api", &text);
        assert!(
            found
                .iter()
                .any(|p| p.message.contains("lists no `values`")),
            "{found:?}"
        );
        let text = edited("    type: boolean\n", "    type: boolean\n    min: 1\n");
        assert_one(&text, "`min` is only for integer parameters", "min: 1");
        let text = edited("severities: [P0, P1, P2]", "severities: [P0, P5]");
        assert_one(&text, "`P5` is not a severity", "severities:");
    }

    #[test]
    fn every_problem_is_reported() {
        let text = SCALE
            .replace("action: pods", "action: shell")
            .replace("timeout: 10s", "timeout: never")
            .replace("default: 5\n", "default: 99\n")
            .replace("severities: [P0, P1, P2]", "severities: [P9]");
        assert_eq!(
            problems("scale-api", &text).len(),
            4,
            "{:#?}",
            problems("scale-api", &text)
        );
    }

    #[test]
    fn sets_report_duplicates_and_unknown_names() {
        let sources = [
            ("a/scale-api.yaml".to_string(), SCALE.to_string()),
            ("b/scale-api.yml".to_string(), SCALE.to_string()),
        ];
        let found = Playbooks::from_sources(sources, Vec::new()).unwrap_err();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].to_string(),
            "b/scale-api.yml:1: a playbook named `scale-api` is already defined in a/scale-api.yaml"
        );
        let set = Playbooks::builtin();
        assert!(set.find("scale-api").is_ok());
        let err = set.find("scale-everything").unwrap_err();
        assert!(
            err.contains("known playbooks: api-not-responding, database-connection-issues"),
            "{err}"
        );
    }
}
