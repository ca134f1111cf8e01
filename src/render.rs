//! Handlebars registries, one per platform, each with its own escaping of user text.
//!
//! Templates are the files in `templates/` (built in), optionally replaced by files in the
//! configured `templates.dir` (`<dir>/<platform>/<name>.hbs` first, then `<dir>/<name>.hbs`).
//! Strict mode: a template that names a missing value fails instead of printing nothing.

use crate::core::Platform;
use crate::core::message::{
    Button, ButtonAction, ButtonStyle, ConfirmDialog, Message, Section, TemplateName, Visibility,
};
use handlebars::Handlebars;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The built-in templates, compiled into the binary.
fn builtin(name: TemplateName) -> &'static str {
    match name {
        TemplateName::IncidentAlert => include_str!("../templates/incident_alert.hbs"),
        TemplateName::IncidentResolved => include_str!("../templates/incident_resolved.hbs"),
        TemplateName::IncidentAnnouncement => {
            include_str!("../templates/incident_announcement.hbs")
        }
        TemplateName::Declared => include_str!("../templates/declared.hbs"),
        TemplateName::StatusChange => include_str!("../templates/status_change.hbs"),
        TemplateName::StatusUpdate => include_str!("../templates/status_update.hbs"),
        TemplateName::StatusReminder => include_str!("../templates/status_reminder.hbs"),
        TemplateName::Help => include_str!("../templates/help.hbs"),
        TemplateName::Timeline => include_str!("../templates/timeline.hbs"),
        TemplateName::IncidentList => include_str!("../templates/incident_list.hbs"),
        TemplateName::Usage => include_str!("../templates/usage.hbs"),
        TemplateName::Notice => include_str!("../templates/notice.hbs"),
        TemplateName::Escalation => include_str!("../templates/escalation.hbs"),
        TemplateName::ResponseBreach => include_str!("../templates/response_breach.hbs"),
        TemplateName::PostmortemReminder => include_str!("../templates/postmortem_reminder.hbs"),
        TemplateName::DeliveryFailed => include_str!("../templates/delivery_failed.hbs"),
        TemplateName::OnCall => include_str!("../templates/on_call.hbs"),
        TemplateName::Summary => include_str!("../templates/summary.hbs"),
        TemplateName::RunbookOutput => include_str!("../templates/runbook_output.hbs"),
        TemplateName::ChangeProposed => include_str!("../templates/change_proposed.hbs"),
        TemplateName::ChangeResult => include_str!("../templates/change_result.hbs"),
        TemplateName::PlaybookList => include_str!("../templates/playbook_list.hbs"),
        TemplateName::Stats => include_str!("../templates/stats.hbs"),
        TemplateName::Postmortem => include_str!("../templates/postmortem.md.hbs"),
        TemplateName::Maintenance => include_str!("../templates/maintenance.hbs"),
    }
}

pub const PLATFORMS: [Platform; 3] = [Platform::Console, Platform::Slack, Platform::Discord];

const ZWSP: char = '\u{200B}';

/// Break `@channel`, `@here`, `@everyone` (and `!channel` etc. inside `<…>`) so no platform
/// turns user text into a mass mention; the text still reads the same.
fn defang_mass_mentions(text: String) -> String {
    // Most text has no `@` or `!` at all, and is kept as it is.
    if !text.bytes().any(|b| b == b'@' || b == b'!') {
        return text;
    }
    // ASCII lowercasing keeps every byte where it was, so offsets in `lower` are offsets in
    // `text`, and a lead byte (`@`, `!`) is always a character boundary.
    let lower = text.to_ascii_lowercase();
    let leads: Vec<usize> = lower
        .bytes()
        .enumerate()
        .filter(|&(at, lead)| {
            (lead == b'@' || lead == b'!')
                && ["channel", "here", "everyone"]
                    .iter()
                    .any(|word| lower[at + 1..].starts_with(word))
        })
        .map(|(at, _)| at)
        .collect();
    if leads.is_empty() {
        return text;
    }
    let mut out = String::with_capacity(text.len() + leads.len() * ZWSP.len_utf8());
    let mut last = 0;
    for at in leads {
        out.push_str(&text[last..=at]);
        out.push(ZWSP);
        last = at + 1;
    }
    out.push_str(&text[last..]);
    out
}

/// Control characters (but newlines) and bidirectional overrides: shown as a space.
fn unprintable(c: char) -> bool {
    (c.is_control() && c != '\n') || crate::core::text::is_bidi_control(c)
}

/// Console: printable text, no mass mentions, no bidirectional overrides.
pub fn escape_console(text: &str) -> String {
    let printable = if text.chars().any(unprintable) {
        text.chars()
            .map(|c| if unprintable(c) { ' ' } else { c })
            .collect()
    } else {
        text.to_string()
    };
    defang_mass_mentions(printable)
}

/// Slack mrkdwn: `&`, `<`, `>` become entities (so `<!channel>` is inert), and `@channel`
/// style words are broken. One pass: every value of every template goes through here.
pub fn escape_slack(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if unprintable(c) => out.push(' '),
            c => out.push(c),
        }
    }
    defang_mass_mentions(out)
}

/// Discord markdown: no `@everyone`/`@here`, no `<@…>`/`<#…>` mention syntax, and no masked
/// links (`[text](url)` would show a harmless-looking text for any URL).
pub fn escape_discord(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let console = escape_console(text);
    let mut chars = console.chars().peekable();
    while let Some(c) = chars.next() {
        if matches!(c, '[' | ']') {
            out.push('\\');
        }
        out.push(c);
        if c == '<' && matches!(chars.peek(), Some('@' | '#' | '!' | ':' | 'a' | 't')) {
            out.push(ZWSP);
        }
    }
    out
}

/// Whether `id` looks like a Slack id with one of `prefixes` (`U…`, `W…`, `S…`).
pub fn slack_id(id: &str, prefixes: &[char]) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| prefixes.contains(&c))
        && id.len() >= 3
        && id.len() <= 24
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// A person or group named in a message, for a platform. `who` is a user reference with or
/// without `@` (`@alice`, `U024BE7LH`), a configured chat mention (`slack:S0614TZR7`), or any
/// other text (an actor such as "Jane (PagerDuty)"), which is escaped like user text.
///
/// On Slack, user ids become `<@U…>` and user-group ids `<!subteam^S…>`; on Discord, user ids
/// become `<@…>` and configured roles (`discord:role:ID`) `<@&ID>`; so people are notified.
/// Nothing a user typed can become a mass mention, because only ids of that exact shape are
/// turned into markup (and Discord messages also carry an explicit `allowed_mentions`).
pub fn mention(platform: Platform, who: &str) -> String {
    let bare = who.strip_prefix('@').unwrap_or(who);
    let (scope, id) = match bare.split_once(':') {
        Some((scope, id)) if matches!(scope, "slack" | "discord") => (Some(scope), id),
        _ => (None, bare),
    };
    let user = crate::core::UserRef::parse(id).is_ok();
    match platform {
        Platform::Slack if user && slack_id(id, &['U', 'W']) => format!("<@{id}>"),
        // A user group pings many people: only a group named in configuration (`slack:S…`)
        // becomes one, never text someone typed.
        Platform::Slack if user && scope == Some("slack") && slack_id(id, &['S']) => {
            format!("<!subteam^{id}>")
        }
        // Discord: a user id (snowflake) becomes `<@id>`; a role pings many people, so only a
        // role named in configuration (`discord:role:ID`) becomes `<@&ID>`.
        Platform::Discord if user && crate::config::discord_id(id).is_some() => format!("<@{id}>"),
        Platform::Discord if scope == Some("discord") => {
            match id.strip_prefix("role:").and_then(crate::config::discord_id) {
                Some(role) => format!("<@&{role}>"),
                None => escape(platform, who),
            }
        }
        _ if user && scope.is_none_or(|s| s == platform.as_str()) => {
            escape(platform, &format!("@{id}"))
        }
        _ => escape(platform, who),
    }
}

/// Who did something, as the timeline and status messages name them: `@alice` (a user, shown
/// as a mention) or any other text such as `warroom` or `Jane (PagerDuty)` (escaped).
pub fn who(platform: Platform, actor: &str) -> String {
    if actor.starts_with('@') {
        mention(platform, actor)
    } else {
        escape(platform, actor)
    }
}

/// `{{mention user}}` (see [`mention`]), `{{who actor}}` (see [`who`]) and `{{code text}}`
/// (text inside a code block, see [`code_escape_fn`]).
fn register_mention(registry: &mut Handlebars<'static>, platform: Platform) {
    register_text_helper(registry, "mention", move |text| mention(platform, text));
    register_text_helper(registry, "who", move |text| who(platform, text));
    register_text_helper(registry, "code", code_escape_fn(platform));
}

fn register_text_helper(
    registry: &mut Handlebars<'static>,
    name: &'static str,
    render: impl Fn(&str) -> String + Send + Sync + 'static,
) {
    registry.register_helper(
        name,
        Box::new(
            move |h: &handlebars::Helper,
                  _: &Handlebars,
                  _: &handlebars::Context,
                  _: &mut handlebars::RenderContext,
                  out: &mut dyn handlebars::Output|
                  -> handlebars::HelperResult {
                let value =
                    h.param(0)
                        .ok_or(handlebars::RenderErrorReason::ParamNotFoundForIndex(
                            name, 0,
                        ))?;
                let text = match value.value() {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => return Ok(()),
                    other => other.to_string(),
                };
                out.write(&render(&text))?;
                Ok(())
            },
        ),
    );
}

/// Escape plain text (a channel topic, a button label) for a platform: the same escaping as
/// template values get.
pub fn escape(platform: Platform, text: &str) -> String {
    escape_fn(platform)(text)
}

fn escape_fn(platform: Platform) -> fn(&str) -> String {
    match platform {
        Platform::Console => escape_console,
        Platform::Slack => escape_slack,
        Platform::Discord => escape_discord,
    }
}

/// Escaping for text inside a code block: Slack still needs its entities (it shows them as
/// the characters), but Discord shows a code block's text as it is, so the backslashes and
/// zero-width spaces that keep Discord markdown inert would show (`\[ERROR\]`) and break
/// copying; no markup or mention works there. Mass mentions are broken everywhere.
fn code_escape_fn(platform: Platform) -> fn(&str) -> String {
    match platform {
        Platform::Console | Platform::Discord => escape_console,
        Platform::Slack => escape_slack,
    }
}

/// A template that failed to load or render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateProblem {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for TemplateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Rendering failed (a template referred to a value the message does not have).
#[derive(Debug, thiserror::Error)]
#[error("rendering template {template}: {source}")]
pub struct RenderError {
    pub template: &'static str,
    #[source]
    pub source: handlebars::RenderError,
}

/// A message rendered for one platform.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedMessage {
    pub visibility: Visibility,
    pub blocks: Vec<RenderedBlock>,
    pub buttons: Vec<RenderedButton>,
}

impl RenderedMessage {
    /// All text blocks and fields as plain lines (console, fallbacks, notifications).
    pub fn plain_text(&self) -> String {
        self.joined(" · ", "\n")
    }

    /// All text blocks and fields as a document (a shared file): blocks apart as paragraphs,
    /// each field on a line of its own.
    pub fn document_text(&self) -> String {
        self.joined("\n", "\n\n")
    }

    fn joined(&self, between_fields: &str, between_blocks: &str) -> String {
        let parts: Vec<String> = self
            .blocks
            .iter()
            .map(|block| match block {
                RenderedBlock::Text(text) => text.clone(),
                RenderedBlock::Fields(fields) => fields
                    .iter()
                    .map(|(label, value)| format!("{label}: {value}"))
                    .collect::<Vec<_>>()
                    .join(between_fields),
            })
            .collect();
        parts.join(between_blocks)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum RenderedBlock {
    Text(String),
    Fields(Vec<(String, String)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct RenderedButton {
    pub label: String,
    pub style: ButtonStyle,
    pub action: ButtonAction,
    pub confirm: Option<ConfirmDialog>,
}

/// Two handlebars registries per platform: one for messages, and one for documents posted
/// inside a code block (`"fenced": true`, see `views::as_code_block`), whose values are
/// escaped as code.
pub struct Renderer {
    registries: HashMap<(Platform, bool), Handlebars<'static>>,
}

impl fmt::Debug for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renderer").finish_non_exhaustive()
    }
}

impl Renderer {
    /// Load the built-in templates, replaced by any found in `override_dir`. Every problem in
    /// every template is reported.
    pub fn load(override_dir: Option<&Path>) -> Result<Renderer, Vec<TemplateProblem>> {
        let mut problems = Vec::new();
        if let Some(dir) = override_dir
            && !dir.is_dir()
        {
            problems.push(TemplateProblem {
                file: dir.display().to_string(),
                line: None,
                message: "templates.dir is not a folder".into(),
            });
        }
        let mut registries = HashMap::new();
        for (platform, fenced) in PLATFORMS
            .into_iter()
            .flat_map(|platform| [(platform, false), (platform, true)])
        {
            let mut registry = Handlebars::new();
            registry.set_strict_mode(true);
            registry.register_escape_fn(if fenced {
                code_escape_fn(platform)
            } else {
                escape_fn(platform)
            });
            register_mention(&mut registry, platform);
            for name in TemplateName::ALL {
                let (file, source) = match template_source(override_dir, platform, name) {
                    Ok(found) => found,
                    Err(problem) => {
                        if !problems.contains(&problem) {
                            problems.push(problem);
                        }
                        continue;
                    }
                };
                if let Err(e) = registry.register_template_string(name.file_stem(), source) {
                    let problem = TemplateProblem {
                        file,
                        line: e.pos().map(|(line, _)| line),
                        message: e.reason().to_string(),
                    };
                    if !problems.contains(&problem) {
                        problems.push(problem);
                    }
                }
            }
            registries.insert((platform, fenced), registry);
        }
        if problems.is_empty() {
            Ok(Renderer { registries })
        } else {
            Err(problems)
        }
    }

    /// Render a message for a platform.
    pub fn render(
        &self,
        platform: Platform,
        message: &Message,
    ) -> Result<RenderedMessage, RenderError> {
        let escape = escape_fn(platform);
        let mut blocks = Vec::new();
        for section in &message.sections {
            match section {
                Section::Text { template, data } => {
                    let fenced = data.get("fenced") == Some(&serde_json::Value::Bool(true));
                    let text = self.registries[&(platform, fenced)]
                        .render(template.file_stem(), data)
                        .map_err(|source| RenderError {
                            template: template.file_stem(),
                            source,
                        })?;
                    blocks.push(RenderedBlock::Text(text.trim_end().to_string()));
                }
                Section::Fields { fields } => blocks.push(RenderedBlock::Fields(
                    fields
                        .iter()
                        .map(|f| (escape(&f.label), field_value(platform, &f.value)))
                        .collect(),
                )),
            }
        }
        let buttons = message
            .buttons
            .iter()
            .map(|b: &Button| RenderedButton {
                label: escape(&b.label),
                style: b.style,
                action: b.action.clone(),
                confirm: b.confirm.as_ref().map(|c| ConfirmDialog {
                    title: escape(&c.title),
                    text: escape(&c.text),
                    confirm: escape(&c.confirm),
                    deny: escape(&c.deny),
                }),
            })
            .collect();
        Ok(RenderedMessage {
            visibility: message.visibility,
            blocks,
            buttons,
        })
    }

    /// Render every sample message on every platform: the strict-mode check that each template
    /// only names values its message provides. Used by `warroom check`.
    pub fn check_samples(&self, samples: &[Message]) -> Vec<TemplateProblem> {
        let mut problems = Vec::new();
        for platform in PLATFORMS {
            for message in samples {
                if let Err(e) = self.render(platform, message) {
                    let problem = TemplateProblem {
                        file: format!("{}.hbs", e.template),
                        line: e.source.line_no,
                        message: e.source.to_string(),
                    };
                    if !problems.contains(&problem) {
                        problems.push(problem);
                    }
                }
            }
        }
        problems
    }
}

/// A field's value: a lone `@user` is a mention, anything else escaped text.
fn field_value(platform: Platform, value: &str) -> String {
    match value.strip_prefix('@') {
        Some(user) if crate::core::UserRef::parse(user).is_ok() => mention(platform, value),
        _ => escape(platform, value),
    }
}

fn template_source(
    dir: Option<&Path>,
    platform: Platform,
    name: TemplateName,
) -> Result<(String, String), TemplateProblem> {
    let file = format!("{}.hbs", name.file_stem());
    if let Some(dir) = dir {
        let candidates: [PathBuf; 2] = [dir.join(platform.as_str()).join(&file), dir.join(&file)];
        for path in candidates {
            if path.is_file() {
                let text = std::fs::read_to_string(&path).map_err(|e| TemplateProblem {
                    file: path.display().to_string(),
                    line: None,
                    message: format!("cannot read: {e}"),
                })?;
                return Ok((path.display().to_string(), text));
            }
        }
    }
    Ok((
        format!("templates/{file} (built in)"),
        builtin(name).to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_keeps_lines_and_a_document_keeps_paragraphs() {
        let message = RenderedMessage {
            visibility: Visibility::InChannel,
            blocks: vec![
                RenderedBlock::Text("# Title".into()),
                RenderedBlock::Fields(vec![
                    ("Severity".into(), "P1".into()),
                    ("Status".into(), "open".into()),
                ]),
                RenderedBlock::Text("Body".into()),
            ],
            buttons: Vec::new(),
        };
        assert_eq!(
            message.plain_text(),
            "# Title\nSeverity: P1 · Status: open\nBody"
        );
        assert_eq!(
            message.document_text(),
            "# Title\n\nSeverity: P1\nStatus: open\n\nBody"
        );
    }

    #[test]
    fn mass_mentions_get_a_zero_width_space_after_the_lead_and_nothing_else_changes() {
        assert_eq!(
            defang_mass_mentions("é@@here !CHANNEL x@everyone-y @heres @hero ! here".into()),
            "é@@\u{200B}here !\u{200B}CHANNEL x@\u{200B}everyone-y @\u{200B}heres @hero ! here"
        );
        assert_eq!(
            defang_mass_mentions("no leads at all".into()),
            "no leads at all"
        );
        assert_eq!(defang_mass_mentions("trailing @".into()), "trailing @");
    }

    #[test]
    fn slack_escaping_neutralises_markup_and_mass_mentions() {
        assert_eq!(escape_slack("a & b <c>"), "a &amp; b &lt;c&gt;");
        let out = escape_slack("<!channel> and @here and @Everyone");
        assert!(
            !out.contains("<!channel>") && !out.contains("@here") && !out.contains("@Everyone"),
            "{out}"
        );
        assert!(out.contains("&lt;!\u{200B}channel&gt;"), "{out}");
    }

    #[test]
    fn mentions_per_platform() {
        assert_eq!(mention(Platform::Slack, "@U024BE7LH"), "<@U024BE7LH>");
        assert_eq!(
            mention(Platform::Slack, "slack:S0614TZR7"),
            "<!subteam^S0614TZR7>"
        );
        assert_eq!(mention(Platform::Slack, "alice"), "@alice");
        assert_eq!(mention(Platform::Console, "U024BE7LH"), "@U024BE7LH");
        // A configured Slack mention is not shown on another platform as markup.
        assert_eq!(mention(Platform::Console, "slack:U1X"), "slack:U1X");
        // User text never becomes markup or a mass mention.
        for evil in [
            "<!channel>",
            "@here",
            "here.",
            "@everyone-x",
            "channel_",
            "U1<!here>",
            "!subteam^S1",
            "@U1|x",
        ] {
            let out = mention(Platform::Slack, evil);
            assert!(
                !out.contains("<!") && !out.contains("@here"),
                "{evil} -> {out}"
            );
        }
        assert_eq!(
            mention(Platform::Slack, "Jane <x> (PagerDuty)"),
            "Jane &lt;x&gt; (PagerDuty)"
        );
    }

    #[test]
    fn discord_mentions_users_and_only_configured_roles() {
        let user = "80351110224678912";
        assert_eq!(mention(Platform::Discord, user), format!("<@{user}>"));
        assert_eq!(
            mention(Platform::Discord, &format!("@{user}")),
            format!("<@{user}>")
        );
        assert_eq!(
            mention(Platform::Discord, &format!("discord:{user}")),
            format!("<@{user}>")
        );
        assert_eq!(
            mention(Platform::Discord, &format!("discord:role:{user}")),
            format!("<@&{user}>")
        );
        // A role a user typed is not a ping; neither is a Slack id or a short number.
        assert!(!mention(Platform::Discord, &format!("role:{user}")).contains("<@"));
        assert_eq!(mention(Platform::Discord, "slack:U1X"), "slack:U1X");
        assert_eq!(mention(Platform::Discord, "12345"), "@12345");
        for evil in ["@everyone", "@here", "<@&1234567890123456789>", "<@!x>"] {
            let out = mention(Platform::Discord, evil);
            assert!(
                !out.contains("@everyone") && !out.contains("@here") && !out.contains("<@&"),
                "{evil} -> {out}"
            );
        }
    }

    #[test]
    fn console_and_discord_escaping() {
        assert_eq!(escape_console("a\u{7}b"), "a b");
        assert_eq!(escape_console("<!here>"), "<!\u{200B}here>");
        let d = escape_discord("@everyone <@123> <#9>");
        assert!(
            !d.contains("@everyone") && !d.contains("<@1") && !d.contains("<#9"),
            "{d}"
        );
        assert_eq!(
            escape_discord("[login](https://evil)"),
            "\\[login\\](https://evil)"
        );
        assert_eq!(escape_console("abc\u{202E}def"), "abc def");
    }

    #[test]
    fn builtins_load_and_a_broken_override_is_reported_with_its_line() {
        Renderer::load(None).expect("built-in templates load");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("notice.hbs"),
            "line one\n{{#if text}}\nunclosed\n",
        )
        .unwrap();
        let problems = Renderer::load(Some(dir.path())).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].file.ends_with("notice.hbs"));
        assert!(problems[0].line.is_some(), "{problems:?}");
    }

    #[test]
    fn strict_mode_reports_missing_values() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notice.hbs"), "{{text}} {{no_such_value}}").unwrap();
        let renderer = Renderer::load(Some(dir.path())).unwrap();
        let problems = renderer.check_samples(&[Message::notice(Visibility::Ephemeral, "hi")]);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].message.contains("no_such_value"),
            "{problems:?}"
        );
    }
}
