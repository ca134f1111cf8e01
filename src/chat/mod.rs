//! Chat adapters. Each knows one platform; all deliver the same chat-neutral effects.

pub mod console;
pub mod discord;
pub mod slack;
pub mod split;

use crate::core::command::Command;
use crate::store::OutboxItem;
use async_trait::async_trait;
use chrono::Duration;

/// Why a delivery failed, and whether to try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Rate-limited, a 5xx or a timeout: try again, after `after` if the platform said.
    #[error("temporary failure: {reason}")]
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// The platform refused the request for good (a 4xx other than 429).
    #[error("permanent failure: {reason}")]
    Permanent { reason: String },
}

/// What a delivery produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Done; nothing to report.
    Done,
    /// PagerDuty said who is on call for `target` (to be mentioned in the channel).
    OnCall { target: String, names: Vec<String> },
}

/// Something that performs the outbox effects of one destination: a chat platform, or
/// PagerDuty.
#[async_trait]
pub trait Sink: Send + Sync {
    /// The outbox destination it serves (`console`, `slack`, `discord`, `pagerduty`).
    fn destination(&self) -> &'static str;
    async fn deliver(&self, item: &OutboxItem) -> Result<Delivered, DeliveryError>;
}

/// `chat_refs` key of an incident channel's platform id (by channel name).
pub fn channel_key(name: &str) -> String {
    format!("channel:{name}")
}

/// `chat_refs` key of the incident channel a platform channel id belongs to.
pub fn channel_id_key(id: &str) -> String {
    format!("channel-id:{id}")
}

/// `chat_refs` key of the message kept in a slot of an incident channel (`<channel id>
/// <message id>`).
pub fn slot_key(name: &str, slot: crate::core::Slot) -> String {
    format!("slot:{name}:{}", slot.as_str())
}

/// `chat_refs` key of what an outbox row posted (so a retried row does not post again).
pub fn posted_key(row: i64) -> String {
    format!("outbox:{row}")
}

/// A store failure during a delivery: try again.
pub fn store_error(error: crate::store::StoreError) -> DeliveryError {
    DeliveryError::Retry {
        after: None,
        reason: format!("store: {error}"),
    }
}

/// Commands that change an incident: only people allowed to act may use them.
pub fn changes_an_incident(command: &Command) -> bool {
    !matches!(
        command,
        Command::Declare { .. } | Command::Timeline | Command::List { .. } | Command::Help { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::command;

    #[test]
    fn reading_commands_are_open_to_everyone() {
        for text in ["declare x", "list", "help", "timeline"] {
            assert!(
                !changes_an_incident(&command::parse(text).unwrap()),
                "{text}"
            );
        }
        for text in [
            "ack",
            "resolve",
            "sev P0",
            "status identified",
            "update x",
            "escalate",
        ] {
            assert!(
                changes_an_incident(&command::parse(text).unwrap()),
                "{text}"
            );
        }
    }
}
