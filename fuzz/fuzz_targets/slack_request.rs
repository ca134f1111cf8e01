//! A Slack request: the v0 signature check on any timestamp, signature and body (never a
//! panic; a correctly signed body passes, the same body one byte changed does not), then the
//! body as a slash command form, its `text` through the command parser.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use warroom::chat::slack::{sign, verify};
use warroom::config::Secret;

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

fuzz_target!(|data: &[u8]| {
    let (timestamp, signature, body) = common::split(data);
    let secret = Secret::new(SECRET);
    let now = common::now();
    let _ = verify(&secret, Some(&timestamp), Some(&signature), body, now);

    let sent = now.timestamp().to_string();
    let good = sign(SECRET, &sent, body);
    assert_eq!(verify(&secret, Some(&sent), Some(&good), body, now), Ok(()));
    let mut changed = body.to_vec();
    match changed.first_mut() {
        Some(first) => *first ^= 1,
        None => changed.push(b'x'),
    }
    assert!(verify(&secret, Some(&sent), Some(&good), &changed, now).is_err());

    if let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        && let Some((_, text)) = form.iter().find(|(key, _)| key == "text")
        && let Err(error) = warroom::core::command::parse(text)
    {
        assert!(!error.to_string().is_empty());
    }
});
