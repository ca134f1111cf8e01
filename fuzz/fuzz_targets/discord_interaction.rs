//! A Discord interaction: the Ed25519 check on any timestamp, signature and body (a correctly
//! signed body passes, the same body one byte changed does not), then the body as JSON: the
//! command text of its `data` through the command parser, and a component's `custom_id`.

#![no_main]

mod common;

use ed25519_dalek::{Signer, SigningKey};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use warroom::chat::discord::commands::command_text;
use warroom::chat::discord::content::parse_custom_id;
use warroom::chat::discord::{verifier, verify};

static KEY: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::from_bytes(&[7u8; 32]));
static VERIFIER: LazyLock<serenity::interactions_endpoint::Verifier> = LazyLock::new(|| {
    verifier(&hex::encode(KEY.verifying_key().to_bytes())).expect("a valid public key")
});

fuzz_target!(|data: &[u8]| {
    let (timestamp, signature, body) = common::split(data);
    let now = common::now();
    let _ = verify(&VERIFIER, Some(&timestamp), Some(&signature), body, now);

    let sent = now.timestamp().to_string();
    let signed = |body: &[u8]| {
        let mut message = sent.as_bytes().to_vec();
        message.extend_from_slice(body);
        hex::encode(KEY.sign(&message).to_bytes())
    };
    let good = signed(body);
    assert!(verify(&VERIFIER, Some(&sent), Some(&good), body, now).is_ok());
    let mut changed = body.to_vec();
    match changed.first_mut() {
        Some(first) => *first ^= 1,
        None => changed.push(b'x'),
    }
    assert!(verify(&VERIFIER, Some(&sent), Some(&good), &changed, now).is_err());

    if let Ok(interaction) = serde_json::from_slice::<serde_json::Value>(body) {
        let data = interaction.get("data").unwrap_or(&interaction);
        if let Ok(text) = command_text(data) {
            let _ = warroom::core::command::parse(&text);
        }
        if let Some(id) = data.get("custom_id").and_then(|id| id.as_str()) {
            let _ = parse_custom_id(id);
        }
    }
});
