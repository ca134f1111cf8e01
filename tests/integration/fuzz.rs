//! Property-based ("fuzz") tests, with proptest, of everything that reads untrusted input:
//! the command parser, Slack and Discord request signatures, Discord invocations, button ids and
//! mentions, Slack and Discord escaping, PagerDuty webhooks and playbook files.
//! Coverage-guided fuzzing of the same inputs is in `fuzz/` (cargo-fuzz, `fuzz/run`); these
//! properties run with every `cargo test`.
//!
//! By default every property runs 64 cases, so the module takes a few seconds in CI:
//!
//! ```text
//! cargo test --test integration fuzz
//! ```
//!
//! For a longer run, set proptest's own `PROPTEST_CASES` (it then replaces the 64):
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test --test integration fuzz
//! ```
//!
//! In a debug build the Discord (Ed25519) properties cost about 40 ms a case and set the pace
//! of long runs: 5,000 cases take about three minutes.
//!
//! A failure prints the minimal input proptest shrank to; nothing is written to disk (no
//! `proptest-regressions` files).
//! `PROPTEST_RNG_SEED=<n>` makes a run reproducible.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Value, json};

use warroom::chat::discord::commands::{InvocationError, command_text};
use warroom::chat::discord::content::{
    ACT, ASK, Pressed, allowed_mentions, confirmation, custom_id, parse_custom_id,
};
use warroom::config::Secret;
use warroom::core::command::{Command, CommandName, MAX_TEXT_CHARS, MAX_TITLE_CHARS, parse};
use warroom::core::message::ButtonAction;
use warroom::core::text::clean_text;
use warroom::core::{IncidentKey, PageTarget, Platform, Severity, Status, UserRef};
use warroom::render::escape;
use warroom::runbook::action::ActionKind;
use warroom::runbook::playbook::{ParamKind, PlaybookProblem, Playbooks, incident_context};

use crate::support::discord::{public_key_hex, sign_interaction};

/// Cases per property when `PROPTEST_CASES` is not set.
const CI_CASES: u32 = 64;

/// The seed of the short run, so that `cargo test` gives the same cases every time.
const CI_SEED: u64 = 20261129;

/// proptest's defaults (which read `PROPTEST_CASES` and the other `PROPTEST_*` variables), with
/// no regression files. Without `PROPTEST_CASES`: 64 cases from a fixed seed (unless
/// `PROPTEST_RNG_SEED` says otherwise), so a test run never fails on a case it did not fail on
/// before; a longer run explores with random seeds.
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CI_CASES;
        if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
            config.rng_seed = proptest::test_runner::RngSeed::Fixed(CI_SEED);
        }
    }
    config.failure_persistence = None;
    config
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 0).unwrap()
}

/// A request timestamp: any second from 1970 to 2096.
fn unix_seconds() -> impl Strategy<Value = i64> {
    0i64..4_000_000_000
}

/// A signing secret. Printable, because HMAC pads a key with zero bytes: `k` and `k\0` are the
/// same key, which is HMAC's nature and not a flaw of warroom. Up to 100 bytes, so that keys
/// longer than SHA-256's 64-byte block (which HMAC hashes first) are covered.
fn secret() -> impl Strategy<Value = String> {
    "[ -~]{1,100}"
}

/// `bytes` with byte `index` (modulo the length) changed.
fn flipped(bytes: &[u8], index: usize, flip: u8) -> Vec<u8> {
    let mut changed = bytes.to_vec();
    let i = index % changed.len();
    changed[i] ^= flip;
    changed
}

/// A clock this many seconds away from the request, beyond the five-minute window.
fn outside_window() -> impl Strategy<Value = i64> {
    prop_oneof![-1_000_000_000i64..=-301, 301i64..=1_000_000_000]
}

// ---------------------------------------------------------------------------------------------
// 1. The command parser

/// Words and marks the command language gives meaning to, and characters it must survive.
const FRAGMENTS: &[&str] = &[
    "declare",
    "open",
    "/incident",
    "/INCIDENT",
    "--sev",
    "--sev=",
    "--severity",
    "P0",
    "p3",
    "P7",
    "\"",
    "'",
    "“",
    "”",
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "\u{0}",
    "\u{7}",
    "\u{1b}[31m",
    "\u{202E}",
    "\u{2066}",
    "\u{200B}",
    "\u{3000}",
    "\u{FEFF}",
    "\u{85}",
    "<@U123ABC|bob>",
    "<!here>",
    "@everyone",
    "@alice",
    "#12",
    "12",
    "-3",
    "0",
    "9223372036854775808",
    "namespace=",
    "namespace=prod",
    "=",
    "key=value",
    "title=\"a b\"",
    "service:",
    "user:PABC",
    "team:x",
    "escalation_policy:P1",
    ":",
    "é",
    "中文",
    "🔥",
    "ß",
    "İ",
    "\\",
    "all",
    "--all",
    "resolved",
    "investigating",
];

fn command_names() -> impl Strategy<Value = CommandName> {
    select(CommandName::ALL.to_vec())
}

fn fragment() -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(FRAGMENTS).prop_map(str::to_string),
        2 => command_names().prop_map(|n| n.name().to_string()),
        2 => "\\PC{1,12}",
        1 => any::<char>().prop_map(String::from),
        1 => (1usize..300).prop_map(|n| "x".repeat(n)),
    ]
    .boxed()
}

/// Arbitrary text: command-shaped, any printable string, any characters at all (control
/// characters and lone marks included), and long input (up to 10,000 characters).
fn arbitrary_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => vec(fragment(), 0..24).prop_map(|parts| parts.concat()),
        2 => any::<String>(),
        1 => vec(any::<char>(), 0..200).prop_map(String::from_iter),
        1 => vec(any::<char>(), 0..10_000).prop_map(String::from_iter),
        1 => (command_names(), vec(fragment(), 0..400))
            .prop_map(|(name, parts)| format!("{name} {}", parts.concat())),
    ]
}

/// The command word the parser looks up in `text`: the first word after an optional
/// `/incident`, in the text as the parser cleans it.
fn typed_command_word(text: &str) -> String {
    let cleaned = clean_text(text);
    let mut words = cleaned.split_whitespace();
    let first = words.next().unwrap_or("");
    let word = if first.eq_ignore_ascii_case("/incident") {
        words.next().unwrap_or("")
    } else {
        first
    };
    word.to_string()
}

/// Separators between words: the parser cleans control characters, bidirectional controls and
/// any whitespace to one space.
fn separator() -> impl Strategy<Value = &'static str> {
    select(vec![
        " ", "  ", "\t", "\n", "\r\n", " \u{0} ", "\u{7}", "\u{202E}", "\u{3000}", "\u{85}",
    ])
}

/// A word of free text: no whitespace, control characters or quote marks, and not a `--sev`
/// flag.
fn plain_word() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9éüß中🔥.,:;!?#@()/_+=*<>&-]{1,12}"
        .prop_filter("not a --sev flag", |w| !w.starts_with("--sev"))
}

/// Words joined by arbitrary separators, and the same words as the parser returns them (joined
/// by single spaces).
fn plain_words(max: usize) -> impl Strategy<Value = (String, String)> {
    vec((plain_word(), separator()), 1..=max).prop_map(|words| {
        let mut typed = String::new();
        for (i, (word, sep)) in words.iter().enumerate() {
            if i > 0 {
                typed.push_str(sep);
            }
            typed.push_str(word);
        }
        let parsed: Vec<&str> = words.iter().map(|(w, _)| w.as_str()).collect();
        (typed, parsed.join(" "))
    })
}

/// A Kubernetes name.
fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?"
}

/// A word spelled in a random ASCII case.
fn any_case(word: &'static str) -> impl Strategy<Value = String> {
    vec(any::<bool>(), word.len()).prop_map(move |upper| {
        word.chars()
            .zip(upper)
            .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

fn severity() -> impl Strategy<Value = Severity> {
    select(Severity::ALL.to_vec())
}

/// `--sev P1`, `--sev=p1`, `--severity P1`, with any separator.
fn sev_flag() -> impl Strategy<Value = (String, Severity)> {
    (severity(), separator(), 0..3usize, any::<bool>()).prop_map(|(sev, sep, form, lower)| {
        let value = if lower {
            sev.to_string().to_lowercase()
        } else {
            sev.to_string()
        };
        let text = match form {
            0 => format!("--sev{sep}{value}"),
            1 => format!("--sev={value}"),
            _ => format!("--severity{sep}{value}"),
        };
        (text, sev)
    })
}

/// Free text in quotes: anything but the closing quote mark.
fn quoted_title() -> impl Strategy<Value = (String, String)> {
    (
        select(vec![('"', '"'), ('\'', '\''), ('“', '”')]),
        vec(fragment(), 1..8),
    )
        .prop_filter_map(
            "a title of 1 to 200 characters",
            |((open, close), parts)| {
                let inner = parts.concat().replace(close, "");
                let title = clean_text(&inner).trim().to_string();
                let count = title.chars().count();
                (count > 0 && count <= MAX_TITLE_CHARS)
                    .then(|| (format!("{open}{inner}{close}"), title))
            },
        )
}

/// Whether the inside of `quoted` (a text in one pair of quote marks) holds either mark of its
/// pair, as `“a “b”` does: only curly quotes can, since the closing mark is never inside.
fn quoted_inside_holds_its_marks(quoted: &str) -> bool {
    let mut chars = quoted.chars();
    let (Some(open), Some(close)) = (chars.next(), chars.next_back()) else {
        return false;
    };
    let inner: String = chars.collect();
    inner.contains(open) || inner.contains(close)
}

/// A command as a person types it, and what it must parse to.
fn valid_command() -> BoxedStrategy<(String, Command)> {
    let declare = (
        any_case("declare"),
        any::<bool>(),
        separator(),
        plain_words(8),
        proptest::option::of(sev_flag()),
        any::<bool>(),
    )
        .prop_map(|(word, open, sep, (typed, title), sev, sev_first)| {
            let word = if open { "open".to_string() } else { word };
            let text = match (&sev, sev_first) {
                (None, _) => format!("{word}{sep}{typed}"),
                (Some((flag, _)), true) => format!("{word}{sep}{flag}{sep}{typed}"),
                (Some((flag, _)), false) => format!("{word}{sep}{typed}{sep}{flag}"),
            };
            (
                text,
                Command::Declare {
                    title,
                    severity: sev.map(|(_, s)| s),
                },
            )
        });
    let declare_quoted = (
        quoted_title(),
        proptest::option::of(sev_flag()),
        separator(),
    )
        .prop_map(|((quoted, title), sev, sep)| {
            let text = match &sev {
                Some((flag, _)) => format!("declare{sep}{quoted}{sep}{flag}"),
                None => format!("declare{sep}{quoted}"),
            };
            (
                text,
                Command::Declare {
                    title,
                    severity: sev.map(|(_, s)| s),
                },
            )
        });
    let sev = (
        select(vec!["sev", "severity", "SEV"]),
        separator(),
        severity(),
    )
        .prop_map(|(word, sep, sev)| (format!("{word}{sep}{sev}"), Command::Sev(sev)));
    let status = (
        select(vec![
            ("investigating", Status::Investigating),
            ("identified", Status::Identified),
            ("monitoring", Status::Monitoring),
        ]),
        separator(),
        any::<bool>(),
    )
        .prop_map(|((word, status), sep, upper)| {
            let word = if upper {
                word.to_uppercase()
            } else {
                word.to_string()
            };
            (format!("status{sep}{word}"), Command::Status(status))
        });
    let update = (separator(), plain_words(30))
        .prop_map(|(sep, (typed, text))| (format!("update{sep}{typed}"), Command::Update(text)));
    // Quotes around the whole text are dropped only when no quote mark of the pair is inside
    // (`“a “b” c”` is kept whole, like `"API" fell after "rollback"`).
    let update_quoted = (separator(), quoted_title()).prop_map(|(sep, (quoted, title))| {
        let text = if quoted_inside_holds_its_marks(&quoted) {
            clean_text(&quoted).trim().to_string()
        } else {
            title
        };
        (format!("update{sep}{quoted}"), Command::Update(text))
    });
    let resolve =
        (separator(), proptest::option::of(plain_words(20))).prop_map(|(sep, cause)| match cause {
            Some((typed, cause)) => (
                format!("resolve{sep}{typed}"),
                Command::Resolve {
                    root_cause: Some(cause),
                },
            ),
            None => ("resolve".to_string(), Command::Resolve { root_cause: None }),
        });
    let scale = (
        separator(),
        label(),
        "[0-9a-z+-]{1,10}",
        proptest::option::of(label()),
    )
        .prop_map(|(sep, deployment, replicas, namespace)| {
            let mut text = format!("scale{sep}{deployment}{sep}{replicas}");
            if let Some(ns) = &namespace {
                text.push_str(&format!("{sep}namespace={ns}"));
            }
            (
                text,
                Command::Scale {
                    deployment,
                    replicas,
                    namespace,
                },
            )
        });
    let restart = (separator(), label(), proptest::option::of(label())).prop_map(
        |(sep, deployment, namespace)| {
            let mut text = format!("restart{sep}{deployment}");
            if let Some(ns) = &namespace {
                text.push_str(&format!("{sep}namespace={ns}"));
            }
            (
                text,
                Command::Restart {
                    deployment,
                    namespace,
                },
            )
        },
    );
    let request = (0..3usize, separator(), any::<bool>(), 1i64..=i64::MAX).prop_map(
        |(which, sep, hash, n)| {
            let hash = if hash { "#" } else { "" };
            let (word, command) = match which {
                0 => ("confirm", Command::Confirm(n)),
                1 => ("cancel", Command::Cancel(n)),
                _ => ("undo", Command::Undo(n)),
            };
            (format!("{word}{sep}{hash}{n}"), command)
        },
    );
    let commander = (
        select(vec!["commander", "assign"]),
        separator(),
        "[A-Za-z0-9][A-Za-z0-9._-]{0,30}",
        0..3usize,
    )
        .prop_filter_map("not a mass mention", |(word, sep, user, form)| {
            let written = match form {
                0 => user.clone(),
                1 => format!("@{user}"),
                _ => format!("<@{user}|someone>"),
            };
            let user = UserRef::parse(&user).ok()?;
            Some((format!("{word}{sep}{written}"), Command::Commander(user)))
        });
    let page = (separator(), page_target())
        .prop_map(|(sep, (text, target))| (format!("page{sep}{text}"), Command::Page(target)));
    let list = select(vec![
        ("list", Command::List { all: false }),
        ("list --all", Command::List { all: true }),
        ("list all", Command::List { all: true }),
    ])
    .prop_map(|(text, command)| (text.to_string(), command));
    let help =
        (separator(), proptest::option::of(command_names())).prop_map(|(sep, topic)| match topic {
            Some(topic) => (
                format!("help{sep}{topic}"),
                Command::Help { topic: Some(topic) },
            ),
            None => ("help".to_string(), Command::Help { topic: None }),
        });
    let run = (any::<bool>(), separator(), label(), arguments()).prop_map(
        |(diag, sep, name, (typed, args))| {
            let word = if diag { "diag" } else { "run" };
            let text = format!("{word}{sep}{name}{sep}{typed}");
            let command = if diag {
                Command::Diag { action: name, args }
            } else {
                Command::Run {
                    playbook: name,
                    args,
                }
            };
            (text, command)
        },
    );
    let bare = select(vec![
        ("ack", Command::Ack),
        ("acknowledge", Command::Ack),
        ("timeline", Command::Timeline),
        ("escalate", Command::Escalate),
        ("playbooks", Command::Playbooks),
    ])
    .prop_map(|(text, command)| (text.to_string(), command));
    let command = prop_oneof![
        declare,
        declare_quoted,
        sev,
        status,
        update,
        update_quoted,
        resolve,
        scale,
        restart,
        request,
        commander,
        page,
        list,
        help,
        run,
        bare,
    ];
    // Optionally after `/incident`, and with blank space around.
    (
        select(vec!["", "/incident ", "/INCIDENT\t"]),
        command,
        select(vec!["", " ", "\n", "\t "]),
    )
        .prop_map(|(prefix, (text, command), blank)| {
            (format!("{blank}{prefix}{text}{blank}"), command)
        })
        .boxed()
}

/// A page target as typed, and what it means.
fn page_target() -> impl Strategy<Value = (String, PageTarget)> {
    (0..5usize, "[A-Za-z0-9._-]{1,64}", any::<bool>()).prop_map(|(kind, id, upper)| {
        let word = |w: &str| if upper { w.to_uppercase() } else { w.into() };
        match kind {
            0 => (id.clone(), PageTarget::Service(id.to_ascii_lowercase())),
            1 => (
                format!("{}:{id}", word("service")),
                PageTarget::Service(id.to_ascii_lowercase()),
            ),
            2 => (format!("{}:{id}", word("user")), PageTarget::User(id)),
            3 => (
                format!(
                    "{}:{id}",
                    word(if upper { "policy" } else { "escalation_policy" })
                ),
                PageTarget::EscalationPolicy(id),
            ),
            _ => (
                format!("{}:{id}", word("schedule")),
                PageTarget::Schedule(id),
            ),
        }
    })
}

/// `key=value …` arguments of run and diag (values may be quoted), and the text the parser keeps.
fn arguments() -> impl Strategy<Value = (String, String)> {
    vec(
        (
            "[a-z][a-z0-9_]{0,10}",
            prop_oneof!["[a-z0-9.-]{1,10}", "\"[a-z0-9 é]{0,10}\""],
            separator(),
        ),
        0..5,
    )
    .prop_map(|pairs| {
        let typed: Vec<String> = pairs
            .iter()
            .map(|(k, v, sep)| format!("{k}={v}{sep}"))
            .collect();
        let typed = typed.concat();
        let kept = clean_text(&typed).trim().to_string();
        (typed, kept)
    })
}

proptest! {
    #![proptest_config(config())]

    /// Any text parses or is refused; never a panic. A parsed command is the one whose name (or
    /// alias) was typed first and is listed in help with a usage line starting with that name;
    /// a refusal says what was wrong and shows the usage lines.
    #[test]
    fn fuzz_parse_never_panics_and_answers_with_usage(text in arbitrary_text()) {
        match parse(&text) {
            Ok(command) => {
                let name = command.name();
                prop_assert!(CommandName::ALL.contains(&name));
                prop_assert!(name.usage().starts_with(name.name()), "{}", name.usage());
                prop_assert_eq!(CommandName::lookup(&typed_command_word(&text)), Some(name));
            }
            Err(e) => {
                prop_assert!(!e.problem.trim().is_empty(), "{:?}", e);
                let usage = e.usage();
                prop_assert!(!usage.is_empty());
                prop_assert!(usage.iter().all(|line| !line.trim().is_empty()));
                if let Some(name) = e.command {
                    prop_assert_eq!(usage, vec![name.usage()]);
                } else {
                    prop_assert_eq!(usage.len(), CommandName::ALL.len());
                }
                prop_assert!(e.to_string().contains("Usage: /incident "), "{}", e);
            }
        }
    }

    /// Well-formed commands (any spelling of the command word, any whitespace and control
    /// characters between words, `/incident` or not) parse to the command meant.
    #[test]
    fn fuzz_parse_valid_commands((text, expected) in valid_command()) {
        prop_assert_eq!(parse(&text), Ok(expected), "{:?}", text);
    }

    /// The problem of a refusal quotes at most a short piece of what was typed: it is posted
    /// back to chat, and the parser cuts every other quote of user text to 20 to 60 characters.
    #[test]
    fn fuzz_parse_errors_quote_little_of_the_input(
        long in "[a-zA-Z0-9]{200,2000}",
        short in "[a-z0-9]{1,8}",
        separator in 0..3usize,
    ) {
        let sep = [" ", "\t", "\n"][separator];
        // Every command, with the long word alone or joined to a short one by each mark the
        // language gives meaning to.
        let mut words = vec![long.clone()];
        for mark in [":", "=", "#", "@", "<@", ">", "\"", "'", "--sev=", "namespace="] {
            words.push(format!("{long}{mark}{short}"));
            words.push(format!("{short}{mark}{long}"));
            words.push(format!("{mark}{long}"));
            words.push(format!("{long}{mark}"));
        }
        for name in CommandName::ALL {
            for word in &words {
                let text = format!("{name}{sep}{word}");
                if let Err(e) = parse(&text) {
                    prop_assert!(
                        e.problem.chars().count() <= 250,
                        "{:?}… answers a problem of {} characters: {:.100}…",
                        text.chars().take(60).collect::<String>(),
                        e.problem.chars().count(),
                        e.problem
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Slack request signatures

mod slack_signatures {
    use super::*;
    use warroom::chat::slack::{SignatureError, sign, verify};

    proptest! {
        #![proptest_config(config())]

        /// A request signed with the secret verifies for any body, at any clock within five
        /// minutes of its timestamp.
        #[test]
        fn fuzz_slack_signed_requests_verify(
            secret in secret(),
            body in vec(any::<u8>(), 0..2_000),
            sent in unix_seconds(),
            skew in -300i64..=300,
        ) {
            let ts = sent.to_string();
            let signature = sign(&secret, &ts, &body);
            prop_assert_eq!(
                verify(&Secret::new(secret), Some(&ts), Some(&signature), &body, at(sent + skew)),
                Ok(())
            );
        }

        /// Any changed byte of the body, a changed timestamp, any other secret, or a clock more
        /// than five minutes away is refused.
        #[test]
        fn fuzz_slack_tampered_requests_are_refused(
            secret in secret(),
            other in secret(),
            body in vec(any::<u8>(), 1..2_000),
            index in any::<usize>(),
            flip in 1u8..=255,
            sent in unix_seconds(),
            skew in -300i64..=300,
            shift in prop_oneof![-300i64..=-1, 1i64..=300],
            away in outside_window(),
        ) {
            let ts = sent.to_string();
            let signature = sign(&secret, &ts, &body);
            let key = Secret::new(secret.clone());
            let now = at(sent + skew);
            prop_assert_eq!(
                verify(&key, Some(&ts), Some(&signature), &flipped(&body, index, flip), now),
                Err(SignatureError::Bad)
            );
            let moved = (sent + shift).to_string();
            prop_assert_eq!(
                verify(&key, Some(&moved), Some(&signature), &body, at(sent + shift)),
                Err(SignatureError::Bad)
            );
            if other != secret {
                prop_assert_eq!(
                    verify(&Secret::new(other), Some(&ts), Some(&signature), &body, now),
                    Err(SignatureError::Bad)
                );
            }
            prop_assert_eq!(
                verify(&key, Some(&ts), Some(&signature), &body, at(sent + away)),
                Err(SignatureError::Stale)
            );
        }

        /// Arbitrary headers, bodies and clocks never panic, and only the right signature of a
        /// timestamp within the window verifies.
        #[test]
        fn fuzz_slack_arbitrary_headers_never_panic(
            secret in secret(),
            timestamp in proptest::option::of(prop_oneof![
                any::<String>(),
                any::<i64>().prop_map(|n| n.to_string()),
                Just(i64::MIN.to_string()),
                Just(format!("{}0", u64::MAX)),
                unix_seconds().prop_map(|n| format!(" {n}\t")),
            ]),
            signature in proptest::option::of(prop_oneof![
                any::<String>(),
                vec(any::<u8>(), 0..40).prop_map(|b| format!("v0={}", hex::encode(b))),
                "v0=[0-9a-fA-F]{0,70}",
                "(v0=)?[ -~]{0,70}",
            ]),
            body in vec(any::<u8>(), 0..500),
            now in -8_000_000_000_000i64..8_000_000_000_000,
        ) {
            let result = verify(
                &Secret::new(secret.clone()),
                timestamp.as_deref(),
                signature.as_deref(),
                &body,
                at(now),
            );
            if result.is_ok() {
                let ts = timestamp.unwrap();
                let good = sign(&secret, &ts, &body);
                prop_assert_eq!(
                    signature.unwrap().trim().to_ascii_lowercase(),
                    good,
                    "a signature other than the right one verified"
                );
                prop_assert!(ts.trim().parse::<i64>().is_ok_and(|t| now.abs_diff(t) <= 300));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Discord interaction signatures

mod discord_signatures {
    use super::*;
    use warroom::chat::discord::{SignatureError, verifier, verify};

    /// The verifier of the test application's key (made once: Ed25519 is slow in debug builds).
    fn key() -> &'static serenity::interactions_endpoint::Verifier {
        static KEY: std::sync::LazyLock<serenity::interactions_endpoint::Verifier> =
            std::sync::LazyLock::new(|| {
                verifier(&public_key_hex()).expect("the test key is a valid Ed25519 key")
            });
        &KEY
    }

    proptest! {
        #![proptest_config(config())]

        /// An interaction signed with the application's key verifies within five minutes.
        #[test]
        fn fuzz_discord_signed_interactions_verify(
            body in vec(any::<u8>(), 0..2_000),
            sent in unix_seconds(),
            skew in -300i64..=300,
        ) {
            let ts = sent.to_string();
            let signature = sign_interaction(&ts, &body);
            prop_assert_eq!(
                verify(key(), Some(&ts), Some(&signature), &body, at(sent + skew)),
                Ok(())
            );
        }

        /// Any changed byte of the body, a changed timestamp (even one that reads as the same
        /// number) or a clock more than five minutes away is refused.
        #[test]
        fn fuzz_discord_tampered_interactions_are_refused(
            body in vec(any::<u8>(), 1..2_000),
            index in any::<usize>(),
            flip in 1u8..=255,
            sent in unix_seconds(),
            skew in -300i64..=300,
            shift in prop_oneof![-300i64..=-1, 1i64..=300],
            away in outside_window(),
        ) {
            let ts = sent.to_string();
            let signature = sign_interaction(&ts, &body);
            let now = at(sent + skew);
            prop_assert_eq!(
                verify(key(), Some(&ts), Some(&signature), &flipped(&body, index, flip), now),
                Err(SignatureError::Bad)
            );
            let moved = (sent + shift).to_string();
            prop_assert_eq!(
                verify(key(), Some(&moved), Some(&signature), &body, at(sent + shift)),
                Err(SignatureError::Bad)
            );
            let padded = format!("0{ts}");
            prop_assert_eq!(
                verify(key(), Some(&padded), Some(&signature), &body, now),
                Err(SignatureError::Bad)
            );
            prop_assert_eq!(
                verify(key(), Some(&ts), Some(&signature), &body, at(sent + away)),
                Err(SignatureError::Stale)
            );
        }

        /// Arbitrary (hex or not) signatures and timestamps never panic and never verify.
        #[test]
        fn fuzz_discord_arbitrary_headers_never_panic(
            timestamp in proptest::option::of(prop_oneof![
                any::<String>(),
                any::<i64>().prop_map(|n| n.to_string()),
                unix_seconds().prop_map(|n| n.to_string()),
            ]),
            signature in proptest::option::of(prop_oneof![
                any::<String>(),
                vec(any::<u8>(), 64).prop_map(hex::encode),
                vec(any::<u8>(), 0..80).prop_map(hex::encode),
                "[0-9a-fA-F+-]{128}",
                "[ -~é]{126,130}",
            ]),
            body in vec(any::<u8>(), 0..500),
            now in -8_000_000_000_000i64..8_000_000_000_000,
        ) {
            let result = verify(key(), timestamp.as_deref(), signature.as_deref(), &body, at(now));
            prop_assert!(result.is_err(), "{:?} {:?} verified", timestamp, signature);
        }

        /// Any configured public key text never panics; only 64 hex digits make a verifier.
        #[test]
        fn fuzz_discord_verifier_from_any_text(
            text in prop_oneof![
                any::<String>(),
                vec(any::<u8>(), 0..40).prop_map(hex::encode),
                "[0-9a-fA-F]{64}",
            ],
        ) {
            if verifier(&text).is_some() {
                prop_assert!(text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()), "{}", text);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Discord payloads: invocations, button ids, mentions

/// The names of every option of every sub-command.
const OPTION_NAMES: &[&str] = &[
    "title",
    "severity",
    "user",
    "status",
    "text",
    "root_cause",
    "all",
    "command",
    "target",
    "playbook",
    "arguments",
    "action",
    "deployment",
    "replicas",
    "namespace",
    "request",
];

const JSON_WORDS: &[&str] = &[
    "incident",
    "declare",
    "scale",
    "help",
    "name",
    "options",
    "value",
    "P1",
    "true",
    " --sev P0 ",
    "\"",
    "“",
    "”",
    "'",
    "",
    "\u{0}",
    "80351110224678912",
];

fn json_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        select(JSON_WORDS).prop_map(Value::from),
        select(OPTION_NAMES).prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ]
    .boxed()
}

fn json_key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(vec!["name", "options", "value", "type"]).prop_map(str::to_string),
        1 => any::<String>(),
    ]
    .boxed()
}

/// Any JSON, nested up to five levels.
fn json_value() -> BoxedStrategy<Value> {
    json_leaf()
        .prop_recursive(5, 96, 8, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(Value::Array),
                vec((json_key(), inner), 0..6)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
        .boxed()
}

/// JSON shaped like an `/incident` invocation, with arbitrary names and values in it.
fn invocation_like() -> BoxedStrategy<Value> {
    let name = prop_oneof![
        3 => Just(json!("incident")),
        1 => json_value(),
    ];
    let sub_name = prop_oneof![
        3 => command_names().prop_map(|n| json!(n.name())),
        1 => json_value(),
    ];
    let option = (
        prop_oneof![3 => select(OPTION_NAMES).prop_map(Value::from), 1 => json_value()],
        json_value(),
    )
        .prop_map(|(name, value)| json!({ "name": name, "type": 3, "value": value }));
    let sub = (
        sub_name,
        prop_oneof![vec(option, 0..5).prop_map(Value::Array), json_value()],
    )
        .prop_map(|(name, options)| json!({ "name": name, "type": 1, "options": options }));
    (
        name,
        prop_oneof![vec(sub, 0..3).prop_map(Value::Array), json_value()],
    )
        .prop_map(|(name, options)| json!({ "name": name, "type": 1, "options": options }))
        .boxed()
}

/// An `/incident <sub>` invocation with these options (in the order given).
fn invocation(sub: &str, options: Vec<(&str, Value)>) -> Value {
    let options: Vec<Value> = options
        .into_iter()
        .map(|(name, value)| json!({ "name": name, "type": 3, "value": value }))
        .collect();
    json!({
        "name": "incident",
        "type": 1,
        "options": [{ "name": sub, "type": 1, "options": options }],
    })
}

/// Pieces of titles and updates that could confuse the command text: quote marks of every
/// kind, `--sev`, control characters, mentions, unicode.
const TEXT_BITS: &[&str] = &[
    "API",
    "returning",
    "503s",
    "Users see",
    "\"503\"",
    "\"",
    "'",
    "it's",
    "“",
    "”",
    "“again”",
    "--sev",
    "--sev P0",
    "--sev=P1",
    "--severity",
    "P3",
    " ",
    "  ",
    "\t",
    "\n",
    "é",
    "中文",
    "🔥",
    "\u{200B}",
    "\u{0}",
    "\u{202E}",
    "<@123>",
    "@here",
    "\\",
    "''",
    "\"\"",
    "namespace=x",
    "#12",
];

fn nasty_text() -> impl Strategy<Value = String> {
    vec(
        prop_oneof![
            3 => select(TEXT_BITS).prop_map(str::to_string),
            1 => "[a-zA-Z0-9]{1,8}",
            1 => "\\PC{1,4}",
        ],
        1..12,
    )
    .prop_map(|parts| parts.concat())
}

/// The title a Discord title option becomes: cleaned like any command text; with all three
/// closing marks in it, its `”` become `"` (see `commands::quoted`).
fn expected_title(raw: &str) -> String {
    let t = raw.trim();
    let t = if t.contains('"') && t.contains('\'') && t.contains('”') {
        t.replace('”', "\"")
    } else {
        t.to_string()
    };
    clean_text(&t).trim().to_string()
}

/// Whether the parser's `strip_quotes` would take `text` (already cleaned and trimmed) for a
/// quoted text.
fn wrapped_in_quotes(text: &str) -> bool {
    [('"', '"'), ('\'', '\''), ('“', '”')]
        .iter()
        .any(|(open, close)| {
            text.strip_prefix(*open)
                .is_some_and(|rest| rest.ends_with(*close))
        })
}

/// Free text for an update or a root cause, and the text the command must carry. Texts wrapped
/// in quote marks are left to `fuzz_discord_quoted_free_text_stays_the_text`.
fn free_text() -> impl Strategy<Value = (String, String)> {
    nasty_text().prop_filter_map("1 to 2000 characters, not wrapped in quotes", |raw| {
        let kept = clean_text(&raw).trim().to_string();
        let count = kept.chars().count();
        (count > 0 && count <= MAX_TEXT_CHARS && !wrapped_in_quotes(&kept)).then_some((raw, kept))
    })
}

/// A valid Discord invocation of each sub-command, and the command it must parse to.
fn discord_invocation() -> BoxedStrategy<(Value, Command)> {
    let declare = (nasty_text(), proptest::option::of(severity())).prop_filter_map(
        "a title of 1 to 200 characters",
        |(raw, sev)| {
            let title = expected_title(&raw);
            let count = title.chars().count();
            if count == 0 || count > MAX_TITLE_CHARS {
                return None;
            }
            let mut options = vec![("title", json!(raw))];
            if let Some(sev) = sev {
                options.push(("severity", json!(sev.to_string())));
            }
            Some((
                options,
                Command::Declare {
                    title,
                    severity: sev,
                },
                "declare",
            ))
        },
    );
    let sev = severity().prop_map(|sev| {
        (
            vec![("severity", json!(sev.to_string()))],
            Command::Sev(sev),
            "sev",
        )
    });
    let commander = (10_000_000_000_000_000u64..=u64::MAX).prop_map(|id| {
        (
            vec![("user", json!(id.to_string()))],
            Command::Commander(UserRef::parse(&id.to_string()).unwrap()),
            "commander",
        )
    });
    let status = select(vec![
        ("investigating", Status::Investigating),
        ("identified", Status::Identified),
        ("monitoring", Status::Monitoring),
    ])
    .prop_map(|(word, status)| {
        (
            vec![("status", json!(word))],
            Command::Status(status),
            "status",
        )
    });
    let update = free_text()
        .prop_map(|(raw, text)| (vec![("text", json!(raw))], Command::Update(text), "update"));
    let resolve = proptest::option::of(free_text()).prop_map(|cause| match cause {
        Some((raw, cause)) => (
            vec![("root_cause", json!(raw))],
            Command::Resolve {
                root_cause: Some(cause),
            },
            "resolve",
        ),
        None => (Vec::new(), Command::Resolve { root_cause: None }, "resolve"),
    });
    let list = proptest::option::of(any::<bool>()).prop_map(|all| {
        let options = all.map(|a| vec![("all", json!(a))]).unwrap_or_default();
        (
            options,
            Command::List {
                all: all.unwrap_or(false),
            },
            "list",
        )
    });
    let help = proptest::option::of(command_names()).prop_map(|topic| {
        let options = topic
            .map(|t| vec![("command", json!(t.name()))])
            .unwrap_or_default();
        (options, Command::Help { topic }, "help")
    });
    let page = page_target()
        .prop_map(|(text, target)| (vec![("target", json!(text))], Command::Page(target), "page"));
    let run = (any::<bool>(), label(), proptest::option::of(arguments())).prop_map(
        |(diag, name, args)| {
            let (kept, mut options) = match &args {
                Some((typed, kept)) => (kept.clone(), vec![("arguments", json!(typed))]),
                None => (String::new(), Vec::new()),
            };
            if diag {
                options.push(("action", json!(name)));
                (
                    options,
                    Command::Diag {
                        action: name,
                        args: kept,
                    },
                    "diag",
                )
            } else {
                options.push(("playbook", json!(name)));
                (
                    options,
                    Command::Run {
                        playbook: name,
                        args: kept,
                    },
                    "run",
                )
            }
        },
    );
    let scale = (label(), 0i64..=1_000_000, proptest::option::of(label())).prop_map(
        |(deployment, replicas, namespace)| {
            let mut options = vec![
                ("deployment", json!(deployment)),
                ("replicas", json!(replicas)),
            ];
            if let Some(ns) = &namespace {
                options.push(("namespace", json!(ns)));
            }
            (
                options,
                Command::Scale {
                    deployment,
                    replicas: replicas.to_string(),
                    namespace,
                },
                "scale",
            )
        },
    );
    let restart = (label(), proptest::option::of(label())).prop_map(|(deployment, namespace)| {
        let mut options = vec![("deployment", json!(deployment))];
        if let Some(ns) = &namespace {
            options.push(("namespace", json!(ns)));
        }
        (
            options,
            Command::Restart {
                deployment,
                namespace,
            },
            "restart",
        )
    });
    let request = (0..3usize, 1i64..=i64::MAX).prop_map(|(which, n)| {
        let (sub, command) = match which {
            0 => ("confirm", Command::Confirm(n)),
            1 => ("cancel", Command::Cancel(n)),
            _ => ("undo", Command::Undo(n)),
        };
        (vec![("request", json!(n))], command, sub)
    });
    let bare = select(vec![
        ("ack", Command::Ack),
        ("timeline", Command::Timeline),
        ("escalate", Command::Escalate),
        ("playbooks", Command::Playbooks),
    ])
    .prop_map(|(sub, command)| (Vec::new(), command, sub));
    prop_oneof![
        declare, sev, commander, status, update, resolve, list, help, page, run, scale, restart,
        request, bare,
    ]
    // Discord sends the options in any order.
    .prop_flat_map(|(options, command, sub)| {
        (Just(options).prop_shuffle(), Just(command), Just(sub))
    })
    .prop_map(|(options, command, sub)| (invocation(sub, options), command))
    .boxed()
}

proptest! {
    #![proptest_config(config())]

    /// Any JSON as an interaction's `data` never panics; the text of an `/incident` invocation
    /// starts with the sub-command's name (`help` when none is given) and parses or is refused.
    #[test]
    fn fuzz_discord_command_text_of_any_json(
        data in prop_oneof![json_value(), invocation_like()],
    ) {
        match command_text(&data) {
            Ok(text) => {
                prop_assert_eq!(data["name"].as_str(), Some("incident"));
                let expected = match data["options"].as_array().and_then(|o| o.first()) {
                    None => "help",
                    Some(sub) => sub["name"].as_str().unwrap_or_default(),
                };
                prop_assert_eq!(text.split(' ').next(), Some(expected), "{:?}", text);
                if let Ok(command) = parse(&text) {
                    prop_assert_eq!(command.name().name(), expected);
                }
            }
            Err(InvocationError::UnknownCommand(_)) => {
                prop_assert_ne!(data["name"].as_str(), Some("incident"));
            }
            Err(InvocationError::UnknownSubcommand(_)) => {
                let sub = &data["options"][0]["name"];
                prop_assert!(
                    !CommandName::ALL.iter().any(|c| sub.as_str() == Some(c.name())),
                    "{} refused", sub
                );
            }
        }
    }

    /// Every sub-command invoked with valid options becomes text that parses to the command
    /// meant; titles stay titles whatever they contain (quotes, `--sev`, unicode).
    #[test]
    fn fuzz_discord_invocations_parse_to_the_command_meant(
        (data, expected) in discord_invocation(),
    ) {
        let text = command_text(&data).unwrap();
        prop_assert_eq!(parse(&text), Ok(expected), "{:?}", text);
    }

    /// An update or root cause typed into its Discord option is the text posted, whatever quote
    /// marks it starts and ends with (at most, a text that is one quoted span may lose its
    /// quotes, as on Slack).
    #[test]
    fn fuzz_discord_quoted_free_text_stays_the_text(
        marks in select(vec![('"', '"'), ('\'', '\''), ('“', '”')]),
        inner in nasty_text(),
        resolve in any::<bool>(),
    ) {
        let (open, close) = marks;
        let raw = format!("{open}{inner}{close}");
        let kept = clean_text(&raw).trim().to_string();
        // A text of one quoted span (no other closing mark in it) may lose its quotes.
        let unquoted = kept
            .strip_prefix(open)
            .and_then(|rest| rest.strip_suffix(close))
            .filter(|inner| !inner.contains(close))
            .map(|inner| inner.trim().to_string());
        let (sub, option) = if resolve { ("resolve", "root_cause") } else { ("update", "text") };
        let text = command_text(&invocation(sub, vec![(option, json!(raw))])).unwrap();
        let parsed = parse(&text);
        let carried = match &parsed {
            Ok(Command::Update(text)) => Some(text.clone()),
            Ok(Command::Resolve { root_cause }) => Some(root_cause.clone().unwrap_or_default()),
            _ => None,
        };
        let fine = carried.as_deref() == Some(kept.as_str())
            || unquoted.as_ref().is_some_and(|u| {
                carried.as_ref() == Some(u) || (u.is_empty() && parsed.is_err())
            });
        prop_assert!(fine, "{:?} was posted as {:?}", raw, parsed);
    }

    /// Any `custom_id` never panics; what reads back as warroom's came with its prefix, and
    /// an "asked from" message id is a real Discord id at the end.
    #[test]
    fn fuzz_discord_parse_custom_id_of_any_text(
        text in prop_oneof![
            any::<String>(),
            (select(vec![ACT, ASK, "warroom", ""]), json_value(), proptest::option::of(any::<String>()))
                .prop_map(|(prefix, json, from)| match from {
                    Some(from) => format!("{prefix}{json}@{from}"),
                    None => format!("{prefix}{json}"),
                }),
            (select(vec![ACT, ASK]), button_action(), "@?[0-9@]{0,24}")
                .prop_map(|(prefix, action, tail)| {
                    format!("{prefix}{}{tail}", serde_json::to_string(&action).unwrap())
                }),
        ],
    ) {
        if let Some(pressed) = parse_custom_id(&text) {
            prop_assert!(text.starts_with(ACT) || text.starts_with(ASK), "{}", text);
            prop_assert_eq!(pressed.asks_first, text.starts_with(ASK));
            if let Some(from) = &pressed.asked_from {
                prop_assert!(warroom::config::discord_id(from).is_some(), "{}", from);
                let suffix = format!("@{from}");
                prop_assert!(text.ends_with(&suffix), "{}", text);
            }
        }
    }

    /// Every button's `custom_id` reads back to its action, fits Discord's 100 characters, and
    /// keeps the message an "are you sure?" came from.
    #[test]
    fn fuzz_discord_custom_ids_round_trip(
        action in button_action(),
        asks_first in any::<bool>(),
        from in 10_000_000_000_000_000u64..=u64::MAX,
    ) {
        let id = custom_id(&action, asks_first);
        prop_assert!(id.chars().count() <= 100, "{}", id);
        prop_assert_eq!(
            parse_custom_id(&id),
            Some(Pressed { action: action.clone(), asks_first, asked_from: None })
        );
        let question = confirmation("Sure?", "Yes", &action, &from.to_string());
        let asking = question["components"][0]["components"][0]["custom_id"].as_str().unwrap();
        prop_assert!(asking.chars().count() <= 100, "{}", asking);
        prop_assert_eq!(
            parse_custom_id(asking),
            Some(Pressed { action, asks_first: false, asked_from: Some(from.to_string()) })
        );
    }

    /// `allowed_mentions` never sets `parse` (so `@everyone`, `@here` and roles typed by
    /// someone never ping), lists a user or role only if the text mentions it as `<@id>`,
    /// `<@!id>` or `<@&id>`, and lists every such mention.
    #[test]
    fn fuzz_discord_allowed_mentions_list_only_mentions(tokens in vec(mention_token(), 0..30)) {
        let text: String = tokens.iter().map(|t| t.text.as_str()).collect();
        let allowed = allowed_mentions(&text);
        prop_assert_eq!(&allowed["parse"], &json!([]));
        let listed = |key: &str| -> Vec<String> {
            allowed[key].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
        };
        let (users, roles) = (listed("users"), listed("roles"));
        for (ids, role) in [(&users, false), (&roles, true)] {
            let mut unique = ids.clone();
            unique.sort();
            unique.dedup();
            prop_assert_eq!(unique.len(), ids.len(), "listed twice: {:?}", ids);
            prop_assert!(ids.len() <= 100);
            for id in ids {
                prop_assert!(
                    mentioned(&text, id, role),
                    "{} listed but not mentioned in {:?}", id, text
                );
            }
        }
        for token in &tokens {
            if let Some((id, role)) = &token.mention {
                let list = if *role { &roles } else { &users };
                prop_assert!(list.contains(id), "{:?} not listed in {:?}", token.text, allowed);
            }
        }
    }

    /// User text escaped for Discord never mass-mentions nor mentions anyone: no `@everyone`,
    /// no `@here` (in any case), no `<@`; and no mention is allowed to ping in it.
    #[test]
    fn fuzz_discord_escaped_text_mentions_nobody(
        text in prop_oneof![
            arbitrary_text(),
            vec(mention_token(), 0..20).prop_map(|t| t.into_iter().map(|t| t.text).collect()),
        ],
    ) {
        let out = escape(Platform::Discord, &text);
        let lower = out.to_ascii_lowercase();
        prop_assert!(!lower.contains("@everyone"), "{:?} → {:?}", text, out);
        prop_assert!(!lower.contains("@here"), "{:?} → {:?}", text, out);
        prop_assert!(!out.contains("<@"), "{:?} → {:?}", text, out);
        let allowed = allowed_mentions(&out);
        prop_assert_eq!(allowed, json!({ "parse": [], "users": [], "roles": [] }));
    }
}

fn button_action() -> impl Strategy<Value = ButtonAction> {
    (0..5usize, any::<i64>()).prop_map(|(which, n)| match which {
        0 => ButtonAction::Acknowledge {
            incident: IncidentKey(n),
        },
        1 => ButtonAction::Resolve {
            incident: IncidentKey(n),
        },
        2 => ButtonAction::Confirm { request: n },
        3 => ButtonAction::Cancel { request: n },
        _ => ButtonAction::Undo { request: n },
    })
}

/// A piece of message text: a mention (user, nickname or role; of an id, or of a number that
/// is no Discord id) or noise around mentions.
#[derive(Clone, Debug)]
struct MentionToken {
    text: String,
    /// The id a valid mention must list, and whether it is a role.
    mention: Option<(String, bool)>,
}

fn mention_token() -> impl Strategy<Value = MentionToken> {
    let id = prop_oneof![
        // Discord ids: 17 to 20 digits.
        10_000_000_000_000_000u64..=u64::MAX,
        // Numbers too short to be ids.
        0u64..10_000_000_000_000_000,
    ];
    let mention = (id, select(vec!["<@", "<@!", "<@&"]), "0{0,3}").prop_map(|(id, open, zeros)| {
        let digits = format!("{zeros}{id}");
        let valid = (17..=20).contains(&digits.len()) && id > 0;
        MentionToken {
            text: format!("{open}{digits}>"),
            mention: valid.then(|| (id.to_string(), open == "<@&")),
        }
    });
    let noise = prop_oneof![
        select(vec![
            "<@",
            "<@!",
            "<@&",
            "<",
            "@",
            ">",
            "&",
            "!",
            "@everyone",
            "@here",
            "<#1>",
            " ",
            "\n",
            "<@<@",
            "<@&!",
            "\u{200B}",
            "é",
        ])
        .prop_map(str::to_string),
        "[0-9]{1,3}",
        "\\PC{1,6}",
    ]
    .prop_map(|text| MentionToken {
        text,
        mention: None,
    });
    prop_oneof![mention, noise]
}

/// Whether `text` mentions `id` (zeros in front allowed, as the same number) as a user
/// (`<@id>`, `<@!id>`) or a role (`<@&id>`).
fn mentioned(text: &str, id: &str, role: bool) -> bool {
    text.match_indices("<@").any(|(at, _)| {
        let after = &text[at + 2..];
        let after = if role {
            match after.strip_prefix('&') {
                Some(rest) => rest,
                None => return false,
            }
        } else {
            after.strip_prefix('!').unwrap_or(after)
        };
        after
            .trim_start_matches('0')
            .strip_prefix(id)
            .is_some_and(|rest| rest.starts_with('>'))
    })
}

// ---------------------------------------------------------------------------------------------
// 5. Slack escaping

proptest! {
    #![proptest_config(config())]

    /// User text escaped for Slack has no markup left: no `<` or `>` (only their entities), so
    /// no `<!here>`, `<@U…>` or links; every `&` starts an entity; and no `@here`, `@channel`
    /// or `@everyone` in any case.
    #[test]
    fn fuzz_slack_escaped_text_has_no_markup(
        text in prop_oneof![
            arbitrary_text(),
            vec(
                select(vec![
                    "<!here>", "<!channel>", "<!everyone>", "<@U123>", "<#C1|x>", "<https://x|y>",
                    "@here", "@Channel", "@EVERYONE", "&lt;", "&gt;", "&amp;", "&", "<", ">",
                    "!", "@", "here", "\u{0}", "\u{202E}", "é",
                ]),
                0..20,
            ).prop_map(|parts| parts.concat()),
        ],
    ) {
        let out = escape(Platform::Slack, &text);
        prop_assert!(!out.contains('<') && !out.contains('>'), "{:?} → {:?}", text, out);
        prop_assert!(!out.contains("<!"));
        for (at, _) in out.match_indices('&') {
            let rest = &out[at..];
            prop_assert!(
                rest.starts_with("&amp;") || rest.starts_with("&lt;") || rest.starts_with("&gt;"),
                "{:?} → {:?}", text, out
            );
        }
        let lower = out.to_ascii_lowercase();
        for mass in ["@here", "@channel", "@everyone"] {
            prop_assert!(!lower.contains(mass), "{:?} → {:?}", text, out);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 6. PagerDuty webhooks

mod pagerduty_webhooks {
    use super::*;
    use warroom::pagerduty::{HANDLED_EVENTS, parse_webhook, sign, signature_valid};

    /// A `X-PagerDuty-Signature` header: the good signature among others, in any order.
    fn header_with(good: String, others: Vec<String>, spaces: bool) -> String {
        let mut parts = others;
        let at = good.len() % (parts.len() + 1);
        parts.insert(at, good);
        parts.join(if spaces { ", " } else { "," })
    }

    fn other_signatures() -> impl Strategy<Value = Vec<String>> {
        vec(
            prop_oneof![
                vec(any::<u8>(), 32).prop_map(|b| format!("v1={}", hex::encode(b))),
                "v1=[0-9a-z]{0,70}",
                "v0=[0-9a-f]{64}",
                "[ -+--~]{0,20}",
            ],
            0..4,
        )
    }

    /// A v3 incident event.
    fn incident_event() -> impl Strategy<Value = (Value, String, String, String, String)> {
        (
            "[A-Z0-9]{1,20}",
            select(HANDLED_EVENTS.to_vec()),
            "[A-Z0-9]{1,20}",
            nasty_text(),
            proptest::option::of(nasty_text()),
        )
            .prop_map(|(id, event_type, incident, title, agent)| {
                let mut event = json!({
                    "event": {
                        "id": id,
                        "event_type": event_type,
                        "resource_type": "incident",
                        "occurred_at": "2026-11-28T10:00:00Z",
                        "data": { "id": incident, "type": "incident", "title": title,
                                  "incident_key": "INC-7", "urgency": "high",
                                  "priority": { "summary": "P1" } },
                    }
                });
                if let Some(agent) = &agent {
                    event["event"]["agent"] = json!({ "summary": agent, "type": "user_reference" });
                }
                let clean = |t: &str| clean_text(t).trim().chars().take(200).collect::<String>();
                let agent = agent
                    .map(|a| clean(&a))
                    .filter(|a| !a.is_empty())
                    .unwrap_or_else(|| "PagerDuty".into());
                (event, id, incident, clean(&title), agent)
            })
    }

    proptest! {
        #![proptest_config(config())]

        /// A body signed with any of the configured secrets verifies, whatever other signatures
        /// the header lists beside it.
        #[test]
        fn fuzz_pagerduty_signed_webhooks_verify(
            secrets in vec(secret(), 1..4),
            which in any::<usize>(),
            body in vec(any::<u8>(), 0..2_000),
            others in other_signatures(),
            spaces in any::<bool>(),
        ) {
            let secret = &secrets[which % secrets.len()];
            let header = header_with(sign(secret, &body), others, spaces);
            let configured: Vec<Secret> = secrets.iter().cloned().map(Secret::new).collect();
            prop_assert!(signature_valid(&configured, &header, &body), "{}", header);
        }

        /// Any changed byte of the body, or a signature under a secret that is not configured,
        /// is refused.
        #[test]
        fn fuzz_pagerduty_tampered_webhooks_are_refused(
            secrets in vec(secret(), 1..4),
            other in secret(),
            body in vec(any::<u8>(), 1..2_000),
            index in any::<usize>(),
            flip in 1u8..=255,
            others in other_signatures(),
        ) {
            let configured: Vec<Secret> = secrets.iter().cloned().map(Secret::new).collect();
            let header = header_with(sign(&secrets[0], &body), others.clone(), false);
            prop_assert!(!signature_valid(&configured, &header, &flipped(&body, index, flip)));
            if !secrets.contains(&other) {
                let header = header_with(sign(&other, &body), others, false);
                prop_assert!(!signature_valid(&configured, &header, &body), "{}", header);
            }
        }

        /// Arbitrary headers and bodies never panic and never verify.
        #[test]
        fn fuzz_pagerduty_arbitrary_signatures_never_panic(
            secrets in vec(secret(), 0..3),
            header in prop_oneof![
                any::<String>(),
                other_signatures().prop_map(|s| s.join(",")),
                vec(any::<char>(), 0..2_000).prop_map(String::from_iter),
            ],
            body in vec(any::<u8>(), 0..500),
        ) {
            let configured: Vec<Secret> = secrets.into_iter().map(Secret::new).collect();
            prop_assert!(!signature_valid(&configured, &header, &body), "{}", header);
        }

        /// Any body parses or is refused, never a panic; an event warroom acts on is a handled
        /// incident event with its texts cleaned and bounded.
        #[test]
        fn fuzz_pagerduty_parse_any_webhook(
            body in prop_oneof![
                vec(any::<u8>(), 0..1_000),
                json_value().prop_map(|v| v.to_string().into_bytes()),
                (json_value(), select(HANDLED_EVENTS.to_vec()), json_value(), json_value())
                    .prop_map(|(id, event_type, data, agent)| json!({
                        "event": { "id": id, "event_type": event_type, "resource_type": "incident",
                                   "data": data, "agent": agent }
                    }).to_string().into_bytes()),
                incident_event().prop_map(|(event, ..)| event.to_string().into_bytes()),
            ],
        ) {
            if let Ok(Some(event)) = parse_webhook(&body) {
                prop_assert!(HANDLED_EVENTS.contains(&event.event_type.as_str()));
                prop_assert!(event.id.chars().count() <= 200);
                prop_assert!(event.incident_id.chars().count() <= 100);
                for text in [&event.title, &event.agent] {
                    prop_assert!(text.chars().count() <= 200);
                    prop_assert!(!text.chars().any(char::is_control), "{:?}", text);
                    prop_assert!(!text.starts_with(char::is_whitespace), "{:?}", text);
                }
                prop_assert!(!event.agent.is_empty());
            }
        }

        /// A well-formed incident event reads back with its fields.
        #[test]
        fn fuzz_pagerduty_incident_events_read_back(
            (event, id, incident, title, agent) in incident_event(),
        ) {
            let body = event.to_string();
            let parsed = parse_webhook(body.as_bytes()).unwrap().unwrap();
            prop_assert_eq!(parsed.id, id);
            prop_assert_eq!(parsed.event_type.as_str(), event["event"]["event_type"].as_str().unwrap());
            prop_assert_eq!(parsed.incident_id, incident);
            prop_assert_eq!(parsed.title, title);
            prop_assert_eq!(parsed.agent, agent);
            prop_assert_eq!(parsed.incident_key.as_deref(), Some("INC-7"));
            prop_assert_eq!(parsed.priority.as_deref(), Some("P1"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Playbook files

mod playbook_files {
    use super::*;

    /// A well-formed playbook `x`: what it says, to compare with what is loaded.
    #[derive(Clone, Debug)]
    struct Good {
        description: String,
        symptoms: Vec<String>,
        severities: Vec<Severity>,
        /// min, default, max of the integer parameter `replicas`.
        replicas: (i64, i64, i64),
        namespace: String,
        steps: Vec<GoodStep>,
    }

    #[derive(Clone, Debug)]
    struct GoodStep {
        name: String,
        action: ActionKind,
        confirm: bool,
        timeout_seconds: Option<u64>,
        on_failure: Option<&'static str>,
        flow: bool,
    }

    /// A YAML double-quoted string (JSON's is one).
    fn quoted(text: &str) -> String {
        serde_json::to_string(text).unwrap()
    }

    fn step_args(action: ActionKind) -> Vec<(&'static str, &'static str)> {
        match action {
            ActionKind::Pods => vec![("namespace", "{{namespace}}"), ("deployment", "api")],
            ActionKind::RolloutStatus => {
                vec![("deployment", "api"), ("namespace", "{{namespace}}")]
            }
            ActionKind::Scale => vec![
                ("deployment", "api"),
                ("replicas", "{{replicas}}"),
                ("namespace", "{{namespace}}"),
            ],
            ActionKind::Events => vec![("namespace", "{{namespace}}"), ("limit", "50")],
            _ => Vec::new(),
        }
    }

    impl Good {
        fn yaml(&self) -> String {
            let mut y = String::from("# generated\nname: x\n");
            y.push_str(&format!("description: {}\n", quoted(&self.description)));
            if !self.symptoms.is_empty() || !self.severities.is_empty() {
                let symptoms: Vec<String> = self.symptoms.iter().map(|s| quoted(s)).collect();
                let severities: Vec<String> =
                    self.severities.iter().map(ToString::to_string).collect();
                y.push_str(&format!(
                    "applies_to:\n  symptoms: [{}]\n  severities: [{}]\n",
                    symptoms.join(", "),
                    severities.join(", ")
                ));
            }
            let (min, default, max) = self.replicas;
            y.push_str(&format!(
                "parameters:\n  - name: replicas\n    type: integer\n    default: {default}\n    min: {min}\n    max: {max}\n    description: Target replica count\n  - name: namespace\n    type: string\n    default: {}\n    pattern: \"[a-z0-9][a-z0-9-]{{0,62}}\"\n",
                quoted(&self.namespace)
            ));
            y.push_str("steps:\n");
            for step in &self.steps {
                y.push_str(&format!(
                    "  - name: {}\n    action: {}\n",
                    quoted(&step.name),
                    step.action
                ));
                let args = step_args(step.action);
                if !args.is_empty() {
                    if step.flow {
                        let pairs: Vec<String> = args
                            .iter()
                            .map(|(k, v)| format!("{k}: {}", quoted(v)))
                            .collect();
                        y.push_str(&format!("    args: {{ {} }}\n", pairs.join(", ")));
                    } else {
                        y.push_str("    args:\n");
                        for (k, v) in args {
                            y.push_str(&format!("      {k}: {}\n", quoted(v)));
                        }
                    }
                }
                if step.confirm {
                    y.push_str("    confirm: true\n");
                }
                if let Some(seconds) = step.timeout_seconds {
                    y.push_str(&format!("    timeout: {seconds}s\n"));
                }
                if let Some(on_failure) = step.on_failure {
                    y.push_str(&format!("    on_failure: {on_failure}\n"));
                }
            }
            y
        }
    }

    fn yaml_safe_text(max: usize) -> impl Strategy<Value = String> {
        proptest::string::string_regex(&format!(
            "[a-zA-Z0-9 .,:;!?#@&*'\"/\\\\()é中🔥-]{{1,{max}}}"
        ))
        .unwrap()
        .prop_filter("not blank", |t| !t.trim().is_empty())
    }

    fn good_playbook() -> impl Strategy<Value = Good> {
        let step = (
            yaml_safe_text(30),
            select(vec![
                ActionKind::Pods,
                ActionKind::Nodes,
                ActionKind::RolloutStatus,
                ActionKind::Scale,
                ActionKind::Events,
            ]),
            any::<bool>(),
            proptest::option::of(1u64..=300),
            proptest::option::of(select(vec!["stop", "continue"])),
            any::<bool>(),
        )
            .prop_map(
                |(name, action, confirm, timeout_seconds, on_failure, flow)| GoodStep {
                    name,
                    action,
                    // `confirm: true` is only for changes.
                    confirm: confirm && action.mutating(),
                    timeout_seconds,
                    on_failure,
                    flow,
                },
            );
        (
            yaml_safe_text(300),
            vec(yaml_safe_text(40), 0..4),
            proptest::sample::subsequence(Severity::ALL.to_vec(), 0..=4),
            (0i64..=1_000, 0i64..=1_000, 0i64..=1_000),
            label(),
            vec(step, 1..5),
        )
            .prop_map(
                |(description, symptoms, severities, (a, b, c), namespace, mut steps)| {
                    let mut bounds = [a, b, c];
                    bounds.sort();
                    // Step names are unique.
                    for (i, step) in steps.iter_mut().enumerate() {
                        step.name = format!("{} {}", i + 1, step.name.trim());
                    }
                    Good {
                        description,
                        symptoms,
                        severities,
                        replicas: (bounds[0], bounds[1], bounds[2]),
                        namespace,
                        steps,
                    }
                },
            )
    }

    /// Lines of playbook YAML, good and bad: every key, wrong types, broken patterns and
    /// templates, huge durations, YAML oddities.
    const LINES: &[&str] = &[
        "name: x",
        "name: y",
        "name: X_1",
        "name: [x]",
        "description: d",
        "description: \"\"",
        "description:",
        "applies_to:",
        "  symptoms: [a, \"\", b]",
        "  severities: [P0, P0, P9]",
        "  severities: P1",
        "parameters:",
        "parameters: []",
        "  - name: n",
        "  - name: incident",
        "  - name: 9lives",
        "    type: enum",
        "    type: integer",
        "    type: string",
        "    type: boolean",
        "    type: float",
        "    values: [a, a, [b], \"\"]",
        "    default: {a: 1}",
        "    default: yes",
        "    default: 99999999999999999999",
        "    pattern: \"[z-a]\"",
        "    pattern: \"a{3,1}\"",
        "    pattern: \"a{1001}\"",
        "    pattern: \"(a|b)\"",
        "    pattern: \"[a-\"",
        "    pattern: \"\\\\\"",
        "    pattern: \"a**\"",
        "    pattern: \"[]]\"",
        "    min: 9",
        "    max: -9",
        "    min: 9223372036854775808",
        "steps:",
        "steps: []",
        "  - name: s",
        "  - name: s",
        "  -",
        "    action: scale",
        "    action: nodes",
        "    action: Delete-Pod",
        "    action: frobnicate",
        "    args: { deployment: \"{{nope}}\" }",
        "    args: { deployment: api, replicas: \"{{n}}\", namespace: \"{{incident.key}}\" }",
        "    args: { target: \"{{#each incident}}{{@key}}{{/each}}\" }",
        "    args: { target: \"{{> x}}\" }",
        "    args: { target: \"{{#if}}\" }",
        "    args: { target: \"{{{{raw}}}}{{/raw}}\" }",
        "    args: { target: \"{{#*inline \\\"a\\\"}}{{> a}}{{/inline}}{{> a}}\" }",
        "    args: { timeout: 99999999999999999999h, target: x }",
        "    args:",
        "      deployment: [a]",
        "      pod: \"a..b\"",
        "      selector: \"a=b,=c\"",
        "      object: \"Pod/\"",
        "    timeout: 99999999999999999999h",
        "    timeout: 18446744073709551615s",
        "    timeout: 1y 2mon 3w",
        "    timeout: -1s",
        "    timeout: 10",
        "    timeout: [1s]",
        "    confirm: false",
        "    confirm: maybe",
        "    on_failure: maybe",
        "    unknown: key",
        "- ",
        "---",
        "...",
        "&a [*a, *a]",
        "x: &a [*a]",
        "? complex",
        "!!binary aGk=",
        "!!python/object:os.system x",
        "\t- tab",
        "#",
        "'",
        "\"",
        "{",
        "[",
        "}",
        "]",
        "key: |",
        "  block",
        "x: *undefined",
        "<<: *a",
        "%YAML 1.2",
        "\u{FEFF}name: x",
        "name: x\r",
    ];

    /// An edit of a playbook's text.
    #[derive(Clone, Debug)]
    enum Edit {
        Delete(usize),
        Duplicate(usize),
        Insert(usize, String),
        Indent(usize, &'static str),
        Replace(usize, char),
        Truncate(usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let line = prop_oneof![
            3 => select(LINES).prop_map(str::to_string),
            1 => any::<String>(),
        ];
        prop_oneof![
            any::<usize>().prop_map(Edit::Delete),
            any::<usize>().prop_map(Edit::Duplicate),
            (any::<usize>(), line).prop_map(|(i, l)| Edit::Insert(i, l)),
            (any::<usize>(), select(vec!["  ", "\t", " ", "- "]))
                .prop_map(|(i, s)| Edit::Indent(i, s)),
            (any::<usize>(), any::<char>()).prop_map(|(i, c)| Edit::Replace(i, c)),
            any::<usize>().prop_map(Edit::Truncate),
        ]
    }

    fn apply(text: &str, edit: &Edit) -> String {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let n = lines.len().max(1);
        match edit {
            Edit::Delete(i) if !lines.is_empty() => {
                lines.remove(i % n);
            }
            Edit::Duplicate(i) if !lines.is_empty() => {
                let line = lines[i % n].clone();
                lines.insert(i % n, line);
            }
            Edit::Insert(i, line) => lines.insert(i % (lines.len() + 1), line.clone()),
            Edit::Indent(i, prefix) if !lines.is_empty() => {
                lines[i % n].insert_str(0, prefix);
            }
            Edit::Replace(i, c) => {
                let chars: Vec<char> = text.chars().collect();
                if chars.is_empty() {
                    return c.to_string();
                }
                let mut chars = chars;
                let at = i % chars.len();
                chars[at] = *c;
                return chars.into_iter().collect();
            }
            Edit::Truncate(i) => {
                return text.chars().take(i % (text.chars().count() + 1)).collect();
            }
            _ => {}
        }
        lines.join("\n")
    }

    /// Playbook-like text: a well-formed playbook with edits, or lines of the grammar in any
    /// order, or anything.
    fn playbook_text() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => (good_playbook(), vec(edit(), 1..6)).prop_map(|(good, edits)| {
                edits.iter().fold(good.yaml(), |text, e| apply(&text, e))
            }),
            2 => vec(
                prop_oneof![4 => select(LINES).prop_map(str::to_string), 1 => "\\PC{0,30}"],
                0..40,
            ).prop_map(|lines| lines.join("\n")),
            1 => any::<String>(),
            1 => vec(any::<u8>(), 0..300).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        ]
    }

    type Loaded = Result<Playbooks, Vec<PlaybookProblem>>;

    /// Load a folder holding `text` as `x.yaml` (the folder lives as long as the `TempDir`).
    fn load(text: &str) -> (tempfile::TempDir, Loaded) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.yaml"), text).unwrap();
        let loaded = Playbooks::load(Some(dir.path()));
        (dir, loaded)
    }

    proptest! {
        #![proptest_config(config())]

        /// Any text in `x.yaml` loads or is refused, never a panic. A load is the playbook `x`
        /// from that file; a refusal names the file for every problem, with a line in it.
        #[test]
        fn fuzz_playbook_any_text_loads_or_reports_problems(text in playbook_text()) {
            let (dir, loaded) = load(&text);
            let file = dir.path().join("x.yaml").display().to_string();
            match loaded {
                Ok(playbooks) => {
                    prop_assert_eq!(playbooks.names(), vec!["x"]);
                    let playbook = playbooks.get("x").unwrap();
                    prop_assert_eq!(&playbook.file, &file);
                    prop_assert!(!playbook.description.is_empty());
                    prop_assert!(!playbook.steps.is_empty());
                }
                Err(problems) => {
                    prop_assert!(!problems.is_empty());
                    // Lines as YAML counts them: `\n`, `\r\n` or a lone `\r` ends one.
                    let lines = text.replace("\r\n", "\n").matches(['\n', '\r']).count() + 1;
                    for problem in &problems {
                        prop_assert_eq!(&problem.file, &file);
                        prop_assert!(!problem.message.trim().is_empty(), "{:?}", problem);
                        if let Some(line) = problem.line {
                            prop_assert!(line >= 1 && line <= lines + 1, "{} of {} lines: {}", line, lines, problem);
                        }
                    }
                }
            }
        }

        /// A well-formed playbook loads with everything it says, and every step renders to a
        /// valid action with the defaults.
        #[test]
        fn fuzz_playbook_well_formed_loads_as_written(good in good_playbook()) {
            let text = good.yaml();
            let (_dir, loaded) = load(&text);
            let playbooks = match loaded {
                Ok(p) => p,
                Err(problems) => {
                    let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
                    return Err(TestCaseError::fail(format!("{}\n---\n{text}", listed.join("\n"))));
                }
            };
            let playbook = playbooks.get("x").unwrap();
            prop_assert_eq!(&playbook.description, good.description.trim());
            let symptoms: Vec<String> = good.symptoms.iter().map(|s| s.trim().to_string()).collect();
            prop_assert_eq!(&playbook.symptoms, &symptoms);
            prop_assert_eq!(&playbook.severities, &good.severities);
            let (min, default, max) = good.replicas;
            prop_assert_eq!(&playbook.parameters[0].kind, &ParamKind::Integer { min: Some(min), max: Some(max) });
            prop_assert_eq!(playbook.parameters[0].default.clone(), Some(default.to_string()));
            prop_assert_eq!(playbook.parameters[1].default.clone(), Some(good.namespace.clone()));
            prop_assert_eq!(playbook.steps.len(), good.steps.len());
            let bound = playbook.bind(&BTreeMap::new()).map_err(TestCaseError::fail)?;
            let incident = incident_context("INC-1", Severity::P1, "t");
            for (i, (step, want)) in playbook.steps.iter().zip(&good.steps).enumerate() {
                prop_assert_eq!(&step.name, &want.name);
                prop_assert_eq!(step.action, want.action);
                prop_assert_eq!(step.confirm, want.action.mutating());
                prop_assert_eq!(step.timeout.as_secs(), want.timeout_seconds.unwrap_or(30));
                prop_assert_eq!(step.continue_on_failure, want.on_failure == Some("continue"));
                let action = playbook.action(i, &bound, &incident).map_err(TestCaseError::fail)?;
                prop_assert_eq!(action.kind, want.action);
                if let Some(ns) = action.arg("namespace") {
                    prop_assert_eq!(ns, good.namespace.as_str());
                }
                if let Some(replicas) = action.arg("replicas") {
                    prop_assert_eq!(replicas, default.to_string());
                }
            }
        }
    }
}
