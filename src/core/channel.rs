//! Incident channel names: `<prefix>-<yyyymmdd>-<slug>`, valid on Slack and Discord.
//!
//! Rules (Slack's, the stricter): lowercase `a-z`, digits, `-` and `_`; at most 80 characters.
//! Collisions get a numeric suffix (`-2`, `-3`, ...) that still fits in 80 characters.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Slack's limit for channel names.
pub const MAX_CHANNEL_CHARS: usize = 80;

/// A channel name that satisfies the rules above.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChannelName(String);

impl ChannelName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Accept a name only if it already satisfies the rules.
    pub fn parse(name: &str) -> Option<ChannelName> {
        let valid = !name.is_empty()
            && name.len() <= MAX_CHANNEL_CHARS
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        valid.then(|| ChannelName(name.to_string()))
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lowercase ASCII slug of a title: transliterated, words joined by `-`, at most `max` bytes,
/// never ending in `-`. `fallback` when nothing is left (a title of only punctuation).
pub fn slugify(title: &str, max: usize, fallback: &str) -> String {
    let ascii = deunicode::deunicode(title).to_ascii_lowercase();
    let mut slug = String::new();
    for word in ascii
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let needed = word.len() + usize::from(!slug.is_empty());
        if slug.len() + needed > max {
            if slug.is_empty() {
                slug.push_str(&word[..max.min(word.len())]);
            }
            break;
        }
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.push_str(word);
    }
    if slug.is_empty() {
        fallback.to_string()
    } else {
        slug
    }
}

/// The stem of an incident channel name before collision handling:
/// `<prefix>-<yyyymmdd>-<slug>`.
pub fn channel_base(prefix: &str, date: NaiveDate, title: &str) -> String {
    let prefix = slugify(prefix, 20, "inc");
    let head = format!("{prefix}-{}", date.format("%Y%m%d"));
    // Leave room for "-" and a collision suffix such as "-99".
    let room = MAX_CHANNEL_CHARS - head.len() - 1 - 4;
    format!("{head}-{}", slugify(title, room, "incident"))
}

/// The first free channel name for `base`: `base` itself, then `base-2`, `base-3`, ...
/// `taken` says whether a name is already used.
pub fn free_channel_name(base: &str, taken: impl Fn(&str) -> bool) -> ChannelName {
    let mut n: u32 = 1;
    loop {
        let candidate = if n == 1 {
            base.to_string()
        } else {
            let suffix = format!("-{n}");
            let keep = MAX_CHANNEL_CHARS
                .saturating_sub(suffix.len())
                .min(base.len());
            format!("{}{suffix}", base[..keep].trim_end_matches('-'))
        };
        if !taken(&candidate) {
            return ChannelName::parse(&candidate).expect("channel names are built valid");
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
    }

    #[test]
    fn example_from_the_issue() {
        assert_eq!(
            channel_base("inc", date(), "API returning 503s"),
            "inc-20261128-api-returning-503s"
        );
    }

    #[test]
    fn punctuation_only_and_unicode_titles() {
        assert_eq!(
            channel_base("inc", date(), "!!! ??? ..."),
            "inc-20261128-incident"
        );
        assert_eq!(
            channel_base("inc", date(), "Zahlungsausfall: Über 50% Fehler"),
            "inc-20261128-zahlungsausfall-uber-50-fehler"
        );
        assert_eq!(
            channel_base("inc", date(), "<!channel> DB"),
            "inc-20261128-channel-db"
        );
    }

    #[test]
    fn long_titles_fit_with_room_for_a_suffix() {
        let base = channel_base("inc", date(), &"word ".repeat(500));
        assert!(base.len() <= MAX_CHANNEL_CHARS - 4, "{}", base.len());
        assert!(!base.ends_with('-'));
        let one_long_word = channel_base("inc", date(), &"x".repeat(10_000));
        assert!(one_long_word.len() <= MAX_CHANNEL_CHARS);
        assert!(ChannelName::parse(&one_long_word).is_some());
    }

    #[test]
    fn collisions_get_suffixes() {
        let mut taken: HashSet<String> = HashSet::new();
        let base = channel_base("inc", date(), "db down");
        for expected in [
            "inc-20261128-db-down",
            "inc-20261128-db-down-2",
            "inc-20261128-db-down-3",
        ] {
            let name = free_channel_name(&base, |n| taken.contains(n));
            assert_eq!(name.as_str(), expected);
            taken.insert(name.to_string());
        }
    }

    #[test]
    fn suffix_never_exceeds_the_limit() {
        let base = "a".repeat(MAX_CHANNEL_CHARS);
        let name = free_channel_name(&base, |n| n.len() == MAX_CHANNEL_CHARS && !n.contains('-'));
        assert_eq!(name.as_str().len(), MAX_CHANNEL_CHARS);
        assert!(name.as_str().ends_with("-2"));
    }

    #[test]
    fn only_valid_names_parse() {
        assert!(ChannelName::parse("inc-1_a").is_some());
        for bad in ["", "Inc", "a b", "a.b", &"a".repeat(81)] {
            assert!(ChannelName::parse(bad).is_none(), "{bad:?}");
        }
    }
}
