//! Block Kit: a rendered chat-neutral message as Slack blocks, within Slack's limits.
//!
//! Text sections become `section` blocks of mrkdwn (already escaped by the Slack renderer),
//! fields become a `section` with `fields`, buttons an `actions` block whose values carry the
//! button's action as JSON. A message longer than Slack allows is cut at a line boundary with
//! a note saying how much was left out.

use crate::core::message::{ButtonAction, ButtonStyle, Visibility};
use crate::render::{RenderedBlock, RenderedMessage};
use serde_json::{Value, json};

/// Characters in one section's text (Slack: 3,000).
pub const SECTION_TEXT_LIMIT: usize = 3_000;
/// Characters in one field (Slack: 2,000).
pub const FIELD_TEXT_LIMIT: usize = 2_000;
/// Fields in one section (Slack: 10).
pub const MAX_FIELDS: usize = 10;
/// Blocks in one message (Slack: 50).
pub const MAX_BLOCKS: usize = 50;
/// Characters of the notification fallback `text` (Slack truncates beyond 40,000; 4,000 keeps
/// notifications readable).
pub const FALLBACK_TEXT_LIMIT: usize = 4_000;
/// Characters of a button label (Slack: 75).
const BUTTON_LABEL_LIMIT: usize = 75;

/// The `text` and `blocks` of a message, as `chat.postMessage`, `chat.update`, a slash-command
/// reply and a `response_url` post take them.
#[derive(Clone, Debug, PartialEq)]
pub struct SlackContent {
    pub text: String,
    pub blocks: Vec<Value>,
    pub ephemeral: bool,
}

impl SlackContent {
    /// The JSON of a reply: `response_type`, `text`, `blocks`.
    pub fn reply_json(&self) -> Value {
        json!({
            "response_type": if self.ephemeral { "ephemeral" } else { "in_channel" },
            "text": self.text,
            "blocks": self.blocks,
        })
    }
}

/// Cut `text` to at most `limit` characters with a note saying how much was left out.
pub fn truncate(text: &str, limit: usize) -> String {
    crate::chat::split::truncate(text, limit, "Slack")
}

/// Split a long text into section-sized pieces (see [`crate::chat::split::pieces`]).
fn pieces(text: &str) -> Vec<String> {
    crate::chat::split::pieces(text, SECTION_TEXT_LIMIT, "Slack")
}

fn plain(text: &str, limit: usize) -> Value {
    json!({ "type": "plain_text", "text": crate::chat::split::ellipsis(text, limit), "emoji": true })
}

/// The `action_id` of a button: one per kind, so that a message's ids are unique.
pub fn action_id(action: &ButtonAction) -> &'static str {
    match action {
        ButtonAction::Acknowledge { .. } => "warroom_acknowledge",
        ButtonAction::Resolve { .. } => "warroom_resolve",
        ButtonAction::Confirm { .. } => "warroom_confirm",
        ButtonAction::Cancel { .. } => "warroom_cancel",
        ButtonAction::Undo { .. } => "warroom_undo",
    }
}

/// Block Kit for a message rendered for Slack.
pub fn content(message: &RenderedMessage) -> SlackContent {
    let mut blocks: Vec<Value> = Vec::new();
    for block in &message.blocks {
        match block {
            RenderedBlock::Text(text) if text.trim().is_empty() => {}
            RenderedBlock::Text(text) => {
                for piece in pieces(text) {
                    blocks.push(json!({
                        "type": "section",
                        "text": { "type": "mrkdwn", "text": piece },
                    }));
                }
            }
            RenderedBlock::Fields(fields) => {
                for chunk in fields.chunks(MAX_FIELDS) {
                    let fields: Vec<Value> = chunk
                        .iter()
                        .map(|(label, value)| {
                            json!({
                                "type": "mrkdwn",
                                "text": truncate(&format!("*{label}*\n{value}"), FIELD_TEXT_LIMIT),
                            })
                        })
                        .collect();
                    blocks.push(json!({ "type": "section", "fields": fields }));
                }
            }
        }
    }
    let buttons: Vec<Value> = message
        .buttons
        .iter()
        .map(|button| {
            let mut element = json!({
                "type": "button",
                "text": plain(&button.label, BUTTON_LABEL_LIMIT),
                "action_id": action_id(&button.action),
                "value": serde_json::to_string(&button.action).expect("actions serialize"),
            });
            match button.style {
                ButtonStyle::Primary => element["style"] = json!("primary"),
                ButtonStyle::Danger => element["style"] = json!("danger"),
                ButtonStyle::Default => {}
            }
            if let Some(confirm) = &button.confirm {
                element["confirm"] = json!({
                    "title": plain(&confirm.title, 100),
                    "text": { "type": "mrkdwn", "text": truncate(&confirm.text, 300) },
                    "confirm": plain(&confirm.confirm, 30),
                    "deny": plain(&confirm.deny, 30),
                });
                if button.style == ButtonStyle::Danger {
                    element["confirm"]["style"] = json!("danger");
                }
            }
            element
        })
        .collect();
    let room = if buttons.is_empty() {
        MAX_BLOCKS
    } else {
        MAX_BLOCKS - 1
    };
    if blocks.len() > room {
        let dropped = blocks.len() - (room - 1);
        blocks.truncate(room - 1);
        blocks.push(json!({
            "type": "context",
            "elements": [{ "type": "mrkdwn", "text": format!("_… {dropped} more sections not shown (Slack's limit)._") }],
        }));
    }
    if !buttons.is_empty() {
        blocks.push(json!({ "type": "actions", "elements": buttons }));
    }
    SlackContent {
        text: truncate(&message.plain_text(), FALLBACK_TEXT_LIMIT),
        blocks,
        ephemeral: message.visibility == Visibility::Ephemeral,
    }
}

/// Turn `#name` of an incident channel into a channel link `<#C123>`.
pub fn link_channel(content: &mut SlackContent, name: &str, id: &str) {
    let needle = format!("#{name}");
    let link = format!("<#{id}>");
    fn walk(value: &mut Value, needle: &str, link: &str) {
        match value {
            Value::String(s) if s.contains(needle) => *s = link_words(s, needle, link),
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, needle, link)),
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    // Only displayed mrkdwn text: never button values or ids.
                    if key != "value" && key != "action_id" {
                        walk(v, needle, link);
                    }
                }
            }
            _ => {}
        }
    }
    for block in &mut content.blocks {
        walk(block, &needle, &link);
    }
}

/// Replace `needle` where it is a whole channel name (not a prefix of a longer one).
fn link_words(text: &str, needle: &str, link: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(needle) {
        let after = &rest[at + needle.len()..];
        let whole = !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        out.push_str(&rest[..at]);
        out.push_str(if whole { link } else { needle });
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::RenderedButton;

    fn text(t: &str) -> RenderedMessage {
        RenderedMessage {
            visibility: Visibility::InChannel,
            blocks: vec![RenderedBlock::Text(t.into())],
            buttons: Vec::new(),
        }
    }

    #[test]
    fn long_text_is_split_then_cut_with_a_note() {
        let line = "x".repeat(100);
        let long = vec![line.as_str(); 3_000].join("\n");
        let c = content(&text(&long));
        assert_eq!(c.blocks.len(), MAX_BLOCKS);
        for block in &c.blocks[..MAX_BLOCKS - 1] {
            let t = block["text"]["text"].as_str().unwrap();
            assert!(t.chars().count() <= SECTION_TEXT_LIMIT);
        }
        let last = c.blocks.last().unwrap().to_string();
        assert!(last.contains("more sections not shown"), "{last}");
        assert!(c.text.chars().count() <= FALLBACK_TEXT_LIMIT + 80);
        assert!(c.text.contains("more characters not shown"));
    }

    #[test]
    fn a_code_block_split_over_sections_stays_a_code_block() {
        let body = vec!["*not bold* _not italic_ <x>"; 400].join("\n");
        let c = content(&text(&format!("output:\n```\n{body}\n```")));
        assert!(c.blocks.len() > 2);
        for block in &c.blocks {
            let t = block["text"]["text"].as_str().unwrap();
            assert_eq!(t.matches("```").count() % 2, 0, "balanced fences: {t}");
            assert!(t.chars().count() <= SECTION_TEXT_LIMIT);
        }
    }

    #[test]
    fn a_cut_never_splits_an_entity() {
        let t = format!("{}&amp;", "a".repeat(SECTION_TEXT_LIMIT - 62));
        let cut = truncate(&format!("{t}{}", "b".repeat(100)), SECTION_TEXT_LIMIT);
        assert!(!cut.contains("&am\n") && !cut.ends_with('&'), "{cut}");
    }

    #[test]
    fn buttons_carry_their_action_and_confirm() {
        let key: crate::core::IncidentKey = "INC-7".parse().unwrap();
        let message = RenderedMessage {
            visibility: Visibility::Ephemeral,
            blocks: vec![],
            buttons: vec![RenderedButton {
                label: "Resolve".into(),
                style: ButtonStyle::Danger,
                action: ButtonAction::Resolve { incident: key },
                confirm: Some(crate::core::message::ConfirmDialog {
                    title: "Resolve INC-7?".into(),
                    text: "Sure?".into(),
                    confirm: "Resolve".into(),
                    deny: "Cancel".into(),
                }),
            }],
        };
        let c = content(&message);
        let button = &c.blocks[0]["elements"][0];
        assert_eq!(button["action_id"], "warroom_resolve");
        let action: ButtonAction = serde_json::from_str(button["value"].as_str().unwrap()).unwrap();
        assert_eq!(action, ButtonAction::Resolve { incident: key });
        assert_eq!(button["confirm"]["style"], "danger");
        assert!(c.ephemeral);
    }

    #[test]
    fn channel_names_become_links_only_where_whole() {
        let mut c = content(&text("join #inc-1-db and #inc-1-db-2"));
        link_channel(&mut c, "inc-1-db", "C9");
        assert_eq!(c.blocks[0]["text"]["text"], "join <#C9> and #inc-1-db-2");
    }
}
