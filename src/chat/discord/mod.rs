//! Discord: interaction signatures (Ed25519, with a replay window), message content within
//! Discord's limits (`content`), REST calls through serenity's HTTP client (`api`), the
//! `/incident` application command (`commands`), the outbox sink (`sink`) and the HTTP handler
//! of the interactions endpoint (`inbound`). Only this module knows Discord's formats.

pub mod api;
pub mod commands;
pub mod content;
pub mod inbound;
pub mod sink;

pub use api::DiscordApi;
pub use inbound::DiscordInbound;
pub use sink::DiscordSink;

use chrono::{DateTime, Utc};
use serenity::interactions_endpoint::Verifier;

/// Outbox destination and `chat_refs` platform name.
pub const DISCORD: &str = "discord";

/// Interactions older (or newer) than this are refused. serenity's verifier checks only the
/// signature, so a captured request could otherwise be replayed for ever.
pub const MAX_SIGNATURE_AGE_SECONDS: i64 = 300;

/// Why an interaction's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("X-Signature-Timestamp is not a number")]
    BadTimestamp,
    #[error("the request is more than 5 minutes old (or from the future)")]
    Stale,
    #[error("bad signature")]
    Bad,
}

/// The verifier for the application's public key (64 hex digits; checked by the
/// configuration).
pub fn verifier(public_key: &str) -> Option<Verifier> {
    let bytes: [u8; 32] = hex::decode(public_key).ok()?.try_into().ok()?;
    Verifier::try_new(bytes).ok()
}

/// Check an interaction from Discord: the Ed25519 signature over `timestamp ‖ body`, and the
/// timestamp within five minutes of `now`.
pub fn verify(
    verifier: &Verifier,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let timestamp = timestamp.ok_or(SignatureError::Missing("X-Signature-Timestamp"))?;
    let signature = signature.ok_or(SignatureError::Missing("X-Signature-Ed25519"))?;
    let sent: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    verifier
        .verify(signature.trim(), timestamp, body)
        .map_err(|()| SignatureError::Bad)?;
    if now.timestamp().abs_diff(sent) > MAX_SIGNATURE_AGE_SECONDS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    Ok(())
}
