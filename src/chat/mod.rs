//! Chat adapters. Each knows one platform; all deliver the same chat-neutral effects.

pub mod console;
pub mod slack;

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
