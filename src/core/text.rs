//! Text newtypes parsed at the edge: cleaned user text and user references.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Bidirectional embedding, override and isolate controls: they can make text display in an
/// order other than the one it is read in.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Replace control characters (including newlines, tabs and bidirectional controls) with
/// spaces and collapse runs of whitespace, so user text is one line of printable characters.
pub fn clean_text(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut last_space = false;
    for c in input.chars() {
        let c = if c.is_control() || c.is_whitespace() || is_bidi_control(c) {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
        } else {
            out.push(c);
            last_space = false;
        }
    }
    out
}

/// The first line of `text`, at most `max_chars` characters (an error for a log line or a
/// timeline entry).
pub fn first_line(text: &str, max_chars: usize) -> String {
    text.lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(max_chars)
        .collect()
}

/// A chat user: a Slack/Discord id or a console name. Parsed from `alice`, `@alice`,
/// `<@U123>` or `<@U123|alice>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserRef(String);

/// The text was not a user name or mention.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a user; give a name like @alice or a mention")]
pub struct InvalidUser(pub String);

impl UserRef {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(text: &str) -> Result<UserRef, InvalidUser> {
        let t = text.trim();
        let inner = match t.strip_prefix("<@").and_then(|s| s.strip_suffix('>')) {
            Some(mention) => mention.split('|').next().unwrap_or(""),
            None => t.strip_prefix('@').unwrap_or(t),
        };
        let valid = !inner.is_empty()
            && inner.chars().count() <= Self::MAX_CHARS
            && inner
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'))
            && !matches!(
                inner.to_ascii_lowercase().as_str(),
                "channel" | "here" | "everyone"
            );
        if valid {
            Ok(UserRef(inner.to_string()))
        } else {
            Err(InvalidUser(t.chars().take(40).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_control_characters() {
        assert_eq!(clean_text("a\u{0}b\n\nc\t d\u{1b}"), "a b c d ");
        assert_eq!(clean_text("evil\u{202E}txt.exe"), "evil txt.exe");
        assert_eq!(clean_text(""), "");
    }

    #[test]
    fn parses_users() {
        assert_eq!(UserRef::parse("@alice").unwrap().as_str(), "alice");
        assert_eq!(UserRef::parse("<@U1|alice>").unwrap().as_str(), "U1");
        assert_eq!(
            UserRef::parse("first.last-2").unwrap().as_str(),
            "first.last-2"
        );
        for bad in [
            "",
            "@",
            "a b",
            "<!channel>",
            "@here",
            "everyone",
            "a<b",
            &"x".repeat(65),
        ] {
            assert!(UserRef::parse(bad).is_err(), "{bad:?}");
        }
    }
}
