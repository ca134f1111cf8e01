//! A rendered chat-neutral message as Discord message bodies, within Discord's limits.
//!
//! Text sections and fields become the message `content` (markdown, already escaped by the
//! Discord renderer), buttons an action row of button components whose `custom_id` carries the
//! button's action as JSON. A text longer than 2,000 characters is split into several messages
//! (code blocks kept closed in each) or, where one message must do, cut with a note. Every body
//! carries an explicit `allowed_mentions` that lists exactly the users and roles warroom
//! rendered as mentions, so nothing else (`@everyone`, `@here`, a role typed by someone) pings.

use crate::chat::split::ellipsis;
use crate::core::message::{ButtonAction, ButtonStyle, Visibility};
use crate::render::{RenderedBlock, RenderedMessage};
use serde_json::{Value, json};

/// Characters in one message's content (Discord: 2,000).
pub const CONTENT_LIMIT: usize = 2_000;
/// Messages one post may be split into before the rest is cut.
pub const MAX_PIECES: usize = 5;
/// Characters of a button label (Discord: 80).
const LABEL_LIMIT: usize = 80;
/// Buttons in one action row (Discord: 5), and rows in one message (Discord: 5).
const ROW_BUTTONS: usize = 5;
const MAX_ROWS: usize = 5;
/// Users or roles one `allowed_mentions` may list (Discord: 100 each).
const MAX_ALLOWED: usize = 100;
/// `flags` of an ephemeral interaction response (only the person who asked sees it).
pub const EPHEMERAL: u64 = 1 << 6;

/// `custom_id` prefix of a button that acts when pressed.
pub const ACT: &str = "warroom:";
/// `custom_id` prefix of a button that first asks "are you sure?" (Discord buttons have no
/// confirmation dialog of their own).
pub const ASK: &str = "warroom?:";

/// A message for Discord: its content split into pieces of at most 2,000 characters, and the
/// action rows that go with the last piece.
#[derive(Clone, Debug, PartialEq)]
pub struct DiscordContent {
    pub pieces: Vec<String>,
    pub components: Vec<Value>,
    pub ephemeral: bool,
}

impl DiscordContent {
    /// The whole message as one body, cut to the limit: for edits, replies and messages that
    /// are kept in a slot.
    pub fn single(&self) -> Value {
        let joined = self.pieces.join("\n");
        body(
            &crate::chat::split::truncate(&joined, CONTENT_LIMIT, "Discord"),
            &self.components,
        )
    }

    /// One body per piece, the components on the last one.
    pub fn bodies(&self) -> Vec<Value> {
        let last = self.pieces.len().saturating_sub(1);
        self.pieces
            .iter()
            .enumerate()
            .map(|(i, piece)| {
                let components = if i == last { &self.components[..] } else { &[] };
                body(piece, components)
            })
            .collect()
    }

    /// The `data` of an interaction response (type 4) or a follow-up: the single body, with
    /// the ephemeral flag when the message is for the asker only.
    pub fn reply(&self) -> Value {
        let mut data = self.single();
        if self.ephemeral {
            data["flags"] = json!(EPHEMERAL);
        }
        data
    }
}

/// A message body: content, components and the mentions allowed to notify.
pub fn body(content: &str, components: &[Value]) -> Value {
    let content = if content.trim().is_empty() && components.is_empty() {
        "\u{200B}"
    } else {
        content
    };
    json!({
        "content": content,
        "components": components,
        "allowed_mentions": allowed_mentions(content),
    })
}

/// `allowed_mentions` naming exactly the `<@id>` users and `<@&id>` roles in `content`, which
/// only warroom's own mention rendering produces (user text is escaped); no `parse`, so
/// `@everyone`, `@here` and anything else never notify.
pub fn allowed_mentions(content: &str) -> Value {
    let mut users: Vec<String> = Vec::new();
    let mut roles: Vec<String> = Vec::new();
    let mut rest = content;
    while let Some(start) = rest.find("<@") {
        let after = &rest[start + 2..];
        let (list, digits) = match after.strip_prefix('&') {
            Some(role) => (&mut roles, role),
            None => (&mut users, after.strip_prefix('!').unwrap_or(after)),
        };
        if let Some(end) = digits.find('>')
            && let Some(id) = crate::config::discord_id(&digits[..end])
            && list.len() < MAX_ALLOWED
            && !list.contains(&id.to_string())
        {
            list.push(id.to_string());
        }
        rest = after;
    }
    json!({ "parse": [], "users": users, "roles": roles })
}

/// The `custom_id` of a button: what it does, and whether it asks first.
pub fn custom_id(action: &ButtonAction, asks_first: bool) -> String {
    let json = serde_json::to_string(action).unwrap_or_default();
    format!("{}{json}", if asks_first { ASK } else { ACT })
}

/// A pressed button's `custom_id` read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pressed {
    pub action: ButtonAction,
    /// The button asks "are you sure?" before acting.
    pub asks_first: bool,
    /// For the button of an "are you sure?" question: the message whose button asked, to be
    /// marked as done once the action worked.
    pub asked_from: Option<String>,
}

/// A pressed button's `custom_id` read back; `None` for buttons that are not warroom's (or
/// from an incompatible version).
pub fn parse_custom_id(custom_id: &str) -> Option<Pressed> {
    let (rest, asks_first) = match custom_id.strip_prefix(ASK) {
        Some(rest) => (rest, true),
        None => (custom_id.strip_prefix(ACT)?, false),
    };
    // JSON never contains `@` here: an action is a tag and numbers.
    let (json, asked_from) = match rest.rsplit_once('@') {
        Some((json, id)) => (json, Some(id.to_string())),
        None => (rest, None),
    };
    let action = serde_json::from_str(json).ok()?;
    Some(Pressed {
        action,
        asks_first,
        asked_from: asked_from.filter(|id| crate::config::discord_id(id).is_some()),
    })
}

fn button(text: &str, style: ButtonStyle, custom_id: String) -> Value {
    let style = match style {
        ButtonStyle::Primary => 1,
        ButtonStyle::Default => 2,
        ButtonStyle::Danger => 4,
    };
    json!({ "type": 2, "style": style, "label": ellipsis(text, LABEL_LIMIT), "custom_id": custom_id })
}

/// Action rows for buttons, five to a row.
fn rows(buttons: Vec<Value>) -> Vec<Value> {
    buttons
        .chunks(ROW_BUTTONS)
        .take(MAX_ROWS)
        .map(|row| json!({ "type": 1, "components": row }))
        .collect()
}

/// The "are you sure?" a button that asks first shows, as an ephemeral reply whose one button
/// acts. `from` is the message whose button asked (marked as done once the action worked).
pub fn confirmation(question: &str, confirm: &str, action: &ButtonAction, from: &str) -> Value {
    let id = format!("{}@{from}", custom_id(action, false));
    let mut data = body(
        &crate::chat::split::truncate(question, CONTENT_LIMIT, "Discord"),
        &rows(vec![button(confirm, ButtonStyle::Danger, id)]),
    );
    data["flags"] = json!(EPHEMERAL);
    data
}

/// Discord content for a message rendered for Discord. `link` is an incident channel's name
/// and id: `#name` in the text becomes a channel link (before the text is split, so that the
/// pieces stay within the limit).
pub fn content(message: &RenderedMessage, link: Option<(&str, &str)>) -> DiscordContent {
    let mut parts: Vec<String> = Vec::new();
    for block in &message.blocks {
        match block {
            RenderedBlock::Text(text) if text.trim().is_empty() => {}
            RenderedBlock::Text(text) => parts.push(text.clone()),
            RenderedBlock::Fields(fields) => parts.push(
                fields
                    .iter()
                    .map(|(label, value)| format!("**{label}:** {value}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        }
    }
    let mut text = parts.join("\n");
    if let Some((name, id)) = link {
        text = text.replace(&format!("#{name}"), &format!("<#{id}>"));
    }
    let mut pieces = crate::chat::split::pieces(&text, CONTENT_LIMIT, "Discord");
    if pieces.len() > MAX_PIECES {
        let left: usize = pieces[MAX_PIECES - 1..]
            .iter()
            .map(|p| p.chars().count())
            .sum();
        pieces.truncate(MAX_PIECES - 1);
        pieces.push(format!(
            "_… {left} more characters not shown (warroom posts at most {MAX_PIECES} messages at once)._"
        ));
    }
    let buttons = message
        .buttons
        .iter()
        .map(|b| button(&b.label, b.style, custom_id(&b.action, b.confirm.is_some())))
        .collect();
    DiscordContent {
        pieces,
        components: rows(buttons),
        ephemeral: message.visibility == Visibility::Ephemeral,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::IncidentKey;

    #[test]
    fn allowed_mentions_lists_only_rendered_mentions() {
        let allowed = allowed_mentions(
            "<@80351110224678912> and <@&80351110224678913>, @everyone, <\u{200B}@80351110224678914>, <@12>",
        );
        assert_eq!(
            allowed,
            json!({
                "parse": [],
                "users": ["80351110224678912"],
                "roles": ["80351110224678913"],
            })
        );
    }

    #[test]
    fn custom_ids_round_trip_and_fit() {
        for action in [
            ButtonAction::Acknowledge {
                incident: IncidentKey(123_456),
            },
            ButtonAction::Confirm { request: i64::MAX },
            ButtonAction::Undo { request: 1 },
        ] {
            for asks_first in [false, true] {
                let id = custom_id(&action, asks_first);
                assert!(id.len() <= 100, "{id}");
                assert_eq!(
                    parse_custom_id(&id),
                    Some(Pressed {
                        action: action.clone(),
                        asks_first,
                        asked_from: None
                    })
                );
            }
            let question = confirmation("Sure?", "Yes", &action, "1100000000000000999");
            let id = question["components"][0]["components"][0]["custom_id"]
                .as_str()
                .unwrap();
            assert!(id.len() <= 100, "{id}");
            let pressed = parse_custom_id(id).unwrap();
            assert_eq!(pressed.asked_from.as_deref(), Some("1100000000000000999"));
            assert!(!pressed.asks_first);
        }
        assert_eq!(parse_custom_id("someone-else:{}"), None);
    }

    #[test]
    fn long_text_is_split_and_bounded() {
        let message = RenderedMessage {
            visibility: Visibility::InChannel,
            blocks: vec![RenderedBlock::Text("line\n".repeat(5_000))],
            buttons: Vec::new(),
        };
        let content = content(&message, None);
        assert_eq!(content.pieces.len(), MAX_PIECES);
        for body in content.bodies() {
            assert!(body["content"].as_str().unwrap().chars().count() <= CONTENT_LIMIT);
        }
        assert!(
            content.single()["content"]
                .as_str()
                .unwrap()
                .chars()
                .count()
                <= CONTENT_LIMIT
        );
    }
}
