//! Severity levels P0–P3 and the classification of a title into one of them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How bad an incident is. `P0` is the worst. Ordered so that `P0 < P3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    P0,
    P1,
    P2,
    P3,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Severity::P0, Severity::P1, Severity::P2, Severity::P3];

    /// Index 0..=3, used to address per-severity configuration.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P{}", self.index())
    }
}

/// The text was not one of `P0`, `P1`, `P2`, `P3`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a severity; use one of P0, P1, P2, P3 (P0 is the most severe)")]
pub struct InvalidSeverity(pub String);

impl FromStr for Severity {
    type Err = InvalidSeverity;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_uppercase().as_str() {
            "P0" => Ok(Severity::P0),
            "P1" => Ok(Severity::P1),
            "P2" => Ok(Severity::P2),
            "P3" => Ok(Severity::P3),
            _ => Err(InvalidSeverity(text.chars().take(40).collect())),
        }
    }
}

/// One classification rule: any of `keywords` in a title suggests `severity`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassificationRule {
    pub severity: Severity,
    /// Lowercase phrases of one or more words.
    pub keywords: Vec<String>,
}

/// The rules that turn a title into a severity when `--sev` is not given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassificationRules {
    pub rules: Vec<ClassificationRule>,
    pub default: Severity,
}

/// Why an incident got its severity; shown to people so they can disagree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeverityReason {
    /// The declarer passed `--sev`.
    Explicit,
    /// A rule's keyword matched the title.
    Keyword { keyword: String },
    /// No rule matched; the configured default applies.
    Default,
    /// Monitoring's alert labels mapped to it (`severity=critical, alertname=DatabaseDown`).
    Alert { labels: String },
}

impl SeverityReason {
    /// A sentence for chat, e.g. "the title mentions \"outage\"".
    pub fn explain(&self, severity: Severity) -> String {
        match self {
            SeverityReason::Explicit => format!("{severity} was given with --sev"),
            SeverityReason::Keyword { keyword } => {
                format!("{severity} because the title mentions \"{keyword}\"")
            }
            SeverityReason::Default => {
                format!("{severity} is the default: no classification rule matched the title")
            }
            SeverityReason::Alert { labels } => {
                format!("{severity} from the alert's labels ({labels})")
            }
        }
    }
}

/// Lowercase alphanumeric words of `text`.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

/// A keyword word matches a title word when equal, or when the title word is its plural.
fn word_matches(keyword_word: &str, title_word: &str) -> bool {
    title_word == keyword_word
        || title_word
            .strip_suffix('s')
            .is_some_and(|stem| stem == keyword_word)
        || title_word
            .strip_suffix("es")
            .is_some_and(|stem| stem == keyword_word)
}

fn phrase_in(phrase: &[String], title: &[String]) -> bool {
    !phrase.is_empty()
        && title.len() >= phrase.len()
        && title
            .windows(phrase.len())
            .any(|window| window.iter().zip(phrase).all(|(t, k)| word_matches(k, t)))
}

impl ClassificationRules {
    /// Classify a title. The longest matching phrase wins (so "partial outage" beats
    /// "outage"); between equally long phrases the more severe rule wins.
    pub fn classify(&self, title: &str) -> (Severity, SeverityReason) {
        let title_words = words(title);
        let mut best: Option<(usize, Severity, &str)> = None;
        for rule in &self.rules {
            for keyword in &rule.keywords {
                let phrase = words(keyword);
                if !phrase_in(&phrase, &title_words) {
                    continue;
                }
                let better = match best {
                    None => true,
                    Some((len, sev, _)) => {
                        phrase.len() > len || (phrase.len() == len && rule.severity < sev)
                    }
                };
                if better {
                    best = Some((phrase.len(), rule.severity, keyword));
                }
            }
        }
        match best {
            Some((_, severity, keyword)) => (
                severity,
                SeverityReason::Keyword {
                    keyword: keyword.to_string(),
                },
            ),
            None => (self.default, SeverityReason::Default),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> ClassificationRules {
        let rule = |severity, keywords: &[&str]| ClassificationRule {
            severity,
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
        };
        ClassificationRules {
            rules: vec![
                rule(
                    Severity::P0,
                    &["outage", "down", "data loss", "corruption", "breach"],
                ),
                rule(
                    Severity::P1,
                    &["partial outage", "degraded", "slow", "error", "503"],
                ),
                rule(Severity::P2, &["minor"]),
                rule(Severity::P3, &["cosmetic", "typo"]),
            ],
            default: Severity::P2,
        }
    }

    #[test]
    fn parses_and_prints_severities() {
        for sev in Severity::ALL {
            assert_eq!(sev.to_string().parse::<Severity>(), Ok(sev));
        }
        assert_eq!("p1".parse::<Severity>(), Ok(Severity::P1));
        assert!(
            "P7".parse::<Severity>()
                .unwrap_err()
                .to_string()
                .contains("P7")
        );
        assert!("".parse::<Severity>().is_err());
        assert!(Severity::P0 < Severity::P3);
    }

    #[test]
    fn classifies_by_keyword() {
        let r = rules();
        assert_eq!(r.classify("Checkout is DOWN").0, Severity::P0);
        assert_eq!(r.classify("customer data loss in EU").0, Severity::P0);
        assert_eq!(r.classify("API returning 503s").0, Severity::P1);
        assert_eq!(r.classify("Search errors on mobile").0, Severity::P1);
        assert_eq!(r.classify("minor glitch in export").0, Severity::P2);
        assert_eq!(r.classify("Typo on pricing page").0, Severity::P3);
    }

    #[test]
    fn longest_phrase_wins_over_shorter_more_severe() {
        let (sev, reason) = rules().classify("Partial outage of EU region");
        assert_eq!(sev, Severity::P1);
        assert_eq!(
            reason,
            SeverityReason::Keyword {
                keyword: "partial outage".into()
            }
        );
    }

    #[test]
    fn equal_length_prefers_more_severe() {
        assert_eq!(rules().classify("slow and down").0, Severity::P0);
    }

    #[test]
    fn words_inside_other_words_do_not_match() {
        // "download" contains "down" but is not the word "down".
        assert_eq!(
            rules().classify("download button misaligned"),
            (Severity::P2, SeverityReason::Default)
        );
    }

    #[test]
    fn unmatched_title_uses_default_and_says_so() {
        let (sev, reason) = rules().classify("something odd");
        assert_eq!(sev, Severity::P2);
        assert!(reason.explain(sev).contains("default"));
    }
}
