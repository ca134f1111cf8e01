//! Slack: request signatures, Block Kit rendering (`blocks`), Web API calls through
//! slack-morphism (`api`), the outbox sink (`sink`) and the HTTP handlers for slash commands,
//! button presses and events (`inbound`). Only this module knows Slack's formats.

pub mod api;
pub mod blocks;
pub mod inbound;
pub mod sink;
pub mod socket;

pub use api::SlackApi;
pub use inbound::SlackInbound;
pub use sink::SlackSink;

use crate::config::Secret;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Requests older (or newer) than this are refused: Slack's replay window.
pub const MAX_SIGNATURE_AGE_SECONDS: i64 = 300;

/// Why a request's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("X-Slack-Request-Timestamp is not a number")]
    BadTimestamp,
    #[error("the request is more than 5 minutes old (or from the future)")]
    Stale,
    #[error("bad signature")]
    Bad,
}

/// `X-Slack-Signature` for `body` sent at `timestamp`: `v0=` and the hex HMAC-SHA256 of
/// `v0:{timestamp}:{body}` under the signing secret.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    format!(
        "v0={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

fn mac(secret: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac
}

/// Check a request from Slack: the timestamp within five minutes of `now` and the signature,
/// compared in constant time, over the raw body.
pub fn verify(
    secret: &Secret,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let timestamp = timestamp.ok_or(SignatureError::Missing("X-Slack-Request-Timestamp"))?;
    let signature = signature.ok_or(SignatureError::Missing("X-Slack-Signature"))?;
    let sent: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if now.timestamp().abs_diff(sent) > MAX_SIGNATURE_AGE_SECONDS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let expected = signature
        .trim()
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(SignatureError::Bad)?;
    mac(secret.expose(), timestamp, body)
        .verify_slice(&expected)
        .map_err(|_| SignatureError::Bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// The example of Slack's "Verifying requests from Slack" page.
    const DOC_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const DOC_TIMESTAMP: &str = "1531420618";
    const DOC_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const DOC_SIGNATURE: &str =
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn at(ts: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(ts, 0).unwrap()
    }

    #[test]
    fn slacks_documented_example_verifies() {
        assert_eq!(
            sign(DOC_SECRET, DOC_TIMESTAMP, DOC_BODY.as_bytes()),
            DOC_SIGNATURE
        );
        let secret = Secret::new(DOC_SECRET);
        let now = at(1_531_420_618 + 30);
        assert_eq!(
            verify(
                &secret,
                Some(DOC_TIMESTAMP),
                Some(DOC_SIGNATURE),
                DOC_BODY.as_bytes(),
                now
            ),
            Ok(())
        );
    }

    #[test]
    fn stale_altered_missing_and_wrong_are_refused() {
        let secret = Secret::new(DOC_SECRET);
        let body = DOC_BODY.as_bytes();
        let sig = Some(DOC_SIGNATURE);
        let ts = Some(DOC_TIMESTAMP);
        let sent = 1_531_420_618;
        assert_eq!(
            verify(&secret, ts, sig, body, at(sent + 301)),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(&secret, ts, sig, body, at(sent - 301)),
            Err(SignatureError::Stale)
        );
        let altered = DOC_BODY.replace("roadrunner", "coyote");
        assert_eq!(
            verify(&secret, ts, sig, altered.as_bytes(), at(sent)),
            Err(SignatureError::Bad)
        );
        assert_eq!(
            verify(&Secret::new("other"), ts, sig, body, at(sent)),
            Err(SignatureError::Bad)
        );
        assert_eq!(
            verify(&secret, None, sig, body, at(sent)),
            Err(SignatureError::Missing("X-Slack-Request-Timestamp"))
        );
        assert_eq!(
            verify(&secret, ts, None, body, at(sent)),
            Err(SignatureError::Missing("X-Slack-Signature"))
        );
        assert_eq!(
            verify(&secret, Some("soon"), sig, body, at(sent)),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            verify(&secret, ts, Some("v0=zz"), body, at(sent)),
            Err(SignatureError::Bad)
        );
        assert_eq!(
            verify(&secret, Some("-9223372036854775808"), sig, body, at(sent)),
            Err(SignatureError::Stale)
        );
    }

    /// The same answer as slack-morphism's own verifier, for a fresh request.
    #[test]
    fn agrees_with_slack_morphism() {
        use slack_morphism::prelude::SlackSigningSecret;
        use slack_morphism::signature_verifier::SlackEventSignatureVerifier;
        let now = Utc::now();
        let ts = now.timestamp().to_string();
        let body = "payload=%7B%7D";
        let signature = sign("s3cret", &ts, body.as_bytes());
        let theirs = SlackEventSignatureVerifier::new(&SlackSigningSecret::new("s3cret".into()));
        assert!(theirs.verify(&signature, body, &ts).is_ok());
        assert_eq!(
            verify(
                &Secret::new("s3cret"),
                Some(&ts),
                Some(&signature),
                body.as_bytes(),
                now
            ),
            Ok(())
        );
    }
}
