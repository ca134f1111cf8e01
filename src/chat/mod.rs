//! Chat adapters. Each knows one platform; all deliver the same chat-neutral effects.

pub mod console;
pub mod discord;
pub mod slack;
pub mod split;

use crate::core::Slot;
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
#[must_use = "a post that ended its row must be kept with the row's delivered mark"]
pub enum Delivered {
    /// Done; nothing to report.
    Done,
    /// Done by a post as the row's last step: its id (`value`) is kept in `chat_refs` under
    /// `key` (the sink's platform) with the row's delivered mark, not in a write of its own.
    Posted { key: String, value: String },
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

/// A chat platform's ids in the store (`chat_refs`), under the keys every chat sink uses:
/// `channel:<name>` (an incident channel's platform id), `channel-id:<id>` (the incident
/// channel an id belongs to), `name:<platform name>` (the incident channel that reserved a
/// platform channel name), `slot:<name>:<slot>` (`<channel id> <message id>` of a message
/// kept current, such as the summary) and `outbox:<row>[…]` (what a row posted, so that a
/// retried row does not post again).
#[derive(Clone)]
pub struct ChatRefs {
    pub store: std::sync::Arc<dyn crate::store::Store>,
    /// The platform (`slack`, `discord`).
    pub platform: &'static str,
    known: std::sync::Arc<std::sync::Mutex<Known>>,
}

/// What `ChatRefs` keeps of what it read or recorded: only what never changes once it
/// exists (an incident's channel name, and that channel's platform id, recorded once; a
/// platform id is never another channel's), so every replica may keep it; what does not exist
/// yet is not kept. Nearly every delivery and every command asks.
#[derive(Default)]
struct Known {
    /// `channel:<name>`: incident channel name → platform id.
    channels: std::collections::HashMap<String, String>,
    /// `channel-id:<id>`: platform id → incident channel name.
    owners: std::collections::HashMap<String, String>,
    /// Incident → (channel name, platform id), once the channel exists.
    incidents: std::collections::HashMap<crate::core::IncidentKey, (String, String)>,
}

/// How many entries `Known` keeps of each kind before it forgets them all and starts again
/// (a few megabytes at most).
const KNOWN_LIMIT: usize = 10_000;

impl Known {
    fn channel(&mut self, name: &str, id: &str) {
        keep(&mut self.channels, name, id);
        keep(&mut self.owners, id, name);
    }
}

fn keep(map: &mut std::collections::HashMap<String, String>, key: &str, value: &str) {
    if map.len() >= KNOWN_LIMIT {
        map.clear();
    }
    map.insert(key.to_string(), value.to_string());
}

impl ChatRefs {
    pub fn new(store: std::sync::Arc<dyn crate::store::Store>, platform: &'static str) -> ChatRefs {
        ChatRefs {
            store,
            platform,
            known: Default::default(),
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn get(&self, key: &str) -> Result<Option<String>, DeliveryError> {
        self.store
            .chat_ref(self.platform, key)
            .await
            .map_err(store_error)
    }

    async fn set(&self, key: &str, value: &str) -> Result<(), DeliveryError> {
        self.store
            .set_chat_ref(self.platform, key, value)
            .await
            .map_err(store_error)
    }

    /// The platform id of an incident channel, if it was created.
    pub async fn channel(&self, name: &str) -> Result<Option<String>, DeliveryError> {
        if let Some(id) = self.known().channels.get(name) {
            return Ok(Some(id.clone()));
        }
        let id = self.get(&format!("channel:{name}")).await?;
        if let Some(id) = &id {
            self.known().channel(name, id);
        }
        Ok(id)
    }

    /// The platform id of the channel `item` (a `CreateChannel` row) created on an earlier
    /// attempt: a channel is created by its incident's one `CreateChannel` row only.
    pub async fn created_before(
        &self,
        item: &crate::store::OutboxItem,
        name: &str,
    ) -> Result<Option<String>, DeliveryError> {
        if !item.retried() {
            return Ok(None);
        }
        self.channel(name).await
    }

    /// An incident's channel name and platform id (to link the channel in a message), once
    /// the channel exists; `None` before that, or for an incident not in the store.
    pub async fn incident_channel(
        &self,
        incident: crate::core::IncidentKey,
    ) -> Result<Option<(String, String)>, DeliveryError> {
        if let Some(link) = self.known().incidents.get(&incident) {
            return Ok(Some(link.clone()));
        }
        let Some(found) = self.store.incident(incident).await.map_err(store_error)? else {
            return Ok(None);
        };
        let name = found.channel.to_string();
        let Some(id) = self.channel(&name).await? else {
            return Ok(None);
        };
        let mut known = self.known();
        if known.incidents.len() >= KNOWN_LIMIT {
            known.incidents.clear();
        }
        known.incidents.insert(incident, (name.clone(), id.clone()));
        Ok(Some((name, id)))
    }

    /// The platform id of an incident channel created earlier (`label`: the platform's name
    /// for people).
    pub async fn existing_channel(&self, name: &str, label: &str) -> Result<String, DeliveryError> {
        self.channel(name)
            .await?
            .ok_or_else(|| DeliveryError::Permanent {
                reason: format!("#{name} was never created in {label}"),
            })
    }

    /// The incident channel a platform channel id belongs to, if any.
    pub async fn owner(&self, channel_id: &str) -> Result<Option<String>, DeliveryError> {
        if let Some(name) = self.known().owners.get(channel_id) {
            return Ok(Some(name.clone()));
        }
        let name = self.get(&format!("channel-id:{channel_id}")).await?;
        if let Some(name) = &name {
            keep(&mut self.known().owners, channel_id, name);
        }
        Ok(name)
    }

    /// Reserve a platform channel name for the incident channel `name`: `true` if it is
    /// this incident's (now, or from an earlier attempt), `false` if another incident holds
    /// it. Reserved before the platform channel is created, so that a channel of that name
    /// made by warroom and not yet recorded can only be this incident's own.
    pub async fn reserve_name(&self, candidate: &str, name: &str) -> Result<bool, DeliveryError> {
        let holder = self
            .store
            .claim_chat_ref(self.platform, &format!("name:{candidate}"), name)
            .await
            .map_err(store_error)?;
        Ok(holder == name)
    }

    /// Record an incident channel's id, both ways.
    pub async fn record_channel(&self, name: &str, channel_id: &str) -> Result<(), DeliveryError> {
        self.store
            .set_chat_refs(
                self.platform,
                &[
                    (&format!("channel-id:{channel_id}"), name),
                    (&format!("channel:{name}"), channel_id),
                ],
            )
            .await
            .map_err(store_error)?;
        self.known().channel(name, channel_id);
        Ok(())
    }

    /// The id recorded under `key` (what `item` posted), or `post()`'s, recorded: a retried
    /// row reuses what an earlier attempt posted.
    pub async fn once<F>(
        &self,
        item: &crate::store::OutboxItem,
        key: &str,
        post: F,
    ) -> Result<String, DeliveryError>
    where
        F: std::future::Future<Output = Result<String, DeliveryError>>,
    {
        if let Some(id) = self.posted_before(item, key).await? {
            return Ok(id);
        }
        let id = post.await?;
        self.set(key, &id).await?;
        Ok(id)
    }

    /// What an earlier attempt of `item` posted under `key`.
    async fn posted_before(
        &self,
        item: &crate::store::OutboxItem,
        key: &str,
    ) -> Result<Option<String>, DeliveryError> {
        if !item.retried() {
            return Ok(None);
        }
        self.get(key).await
    }

    /// `once` for a post that is the row's last step: nothing follows it that could fail, so
    /// what it posted is kept with the row's delivered mark (`Delivered::Posted`), in the same
    /// write. A retried row whose post was kept is done.
    pub async fn once_as_last_step<F>(
        &self,
        item: &crate::store::OutboxItem,
        key: &str,
        post: F,
    ) -> Result<Delivered, DeliveryError>
    where
        F: std::future::Future<Output = Result<String, DeliveryError>>,
    {
        if self.posted_before(item, key).await?.is_some() {
            return Ok(Delivered::Done);
        }
        Ok(Delivered::Posted {
            key: key.to_string(),
            value: post.await?,
        })
    }

    /// The channel and message id kept in an incident channel's slot.
    pub async fn slot(
        &self,
        name: &str,
        slot: Slot,
    ) -> Result<Option<(String, String)>, DeliveryError> {
        Ok(self.get(&slot_key(name, slot)).await?.and_then(|s| {
            s.split_once(' ')
                .map(|(c, m)| (c.to_string(), m.to_string()))
        }))
    }

    pub async fn set_slot(
        &self,
        name: &str,
        slot: Slot,
        channel_id: &str,
        message_id: &str,
    ) -> Result<(), DeliveryError> {
        self.set(&slot_key(name, slot), &format!("{channel_id} {message_id}"))
            .await
    }
}

/// The incident channel a platform channel id belongs to, or the id itself (a channel that is
/// no incident's); a store failure is the answer to give.
pub async fn channel_name(
    refs: &ChatRefs,
    channel_id: &str,
) -> Result<String, crate::core::message::Message> {
    match refs.owner(channel_id).await {
        Ok(name) => Ok(name.unwrap_or_else(|| channel_id.to_string())),
        Err(error) => {
            tracing::error!(%error, platform = refs.platform, "cannot read channel ids");
            Err(store_unavailable())
        }
    }
}

/// The answer when the store cannot be read while handling a request.
pub fn store_unavailable() -> crate::core::message::Message {
    crate::core::message::Message::notice(
        crate::core::message::Visibility::Ephemeral,
        "warroom cannot reach its store right now; nothing was changed. Please try again in a moment.",
    )
}

fn slot_key(name: &str, slot: Slot) -> String {
    format!("slot:{name}:{}", slot.as_str())
}

/// `chat_refs` key of what an outbox row posted.
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

/// The answer was not ready in time: defer, and send it when it is.
#[derive(Debug, PartialEq, Eq)]
pub struct Late;

/// `work`'s output if it is ready within `within`, else `Late`. With no time at all it is
/// always late, however fast the work (which may be done already on another thread).
pub async fn ready_within<F>(within: std::time::Duration, work: &mut F) -> Result<F::Output, Late>
where
    F: std::future::Future + Unpin,
{
    if within.is_zero() {
        return Err(Late);
    }
    tokio::time::timeout(within, work).await.map_err(|_| Late)
}

/// Whether a command acts on the channel it is typed in (an incident's, found from the
/// platform's channel id). Those that do not (and text that is no command) are answered
/// without asking the store which channel that is.
pub fn concerns_its_channel(command: &Command) -> bool {
    match command {
        Command::Declare { .. }
        | Command::List { .. }
        | Command::Stats { .. }
        | Command::Help { .. }
        | Command::Maintenance(_) => false,
        Command::Ack
        | Command::Sev(_)
        | Command::Commander(_)
        | Command::Status(_)
        | Command::Update(_)
        | Command::Resolve { .. }
        | Command::Timeline
        | Command::Page(_)
        | Command::Escalate
        | Command::Playbooks
        | Command::Run { .. }
        | Command::Diag { .. }
        | Command::Scale { .. }
        | Command::Restart { .. }
        | Command::Confirm(_)
        | Command::Cancel(_)
        | Command::Undo(_)
        | Command::Postmortem { .. } => true,
    }
}

/// The channel a command typed in `channel_id` comes from: its incident channel's name, or
/// the id itself where that is no incident's or the command does not concern its channel
/// and changes nothing (a change is checked against the incident of the channel it is typed
/// in: its commander and declarer may act there).
pub async fn command_channel(
    refs: &ChatRefs,
    channel_id: &str,
    command: Option<&Command>,
) -> Result<String, crate::core::message::Message> {
    match command {
        Some(command) if concerns_its_channel(command) || changes_an_incident(command) => {
            channel_name(refs, channel_id).await
        }
        _ => Ok(channel_id.to_string()),
    }
}

/// Commands that change an incident: only people allowed to act may use them.
pub fn changes_an_incident(command: &Command) -> bool {
    !matches!(
        command,
        Command::Declare { .. }
            | Command::Timeline
            | Command::List { .. }
            | Command::Stats { .. }
            | Command::Maintenance(crate::core::command::MaintenanceCommand::Show)
            | Command::Help { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::command;

    #[tokio::test]
    async fn an_answer_is_given_only_while_there_is_time() {
        let zero = std::time::Duration::ZERO;
        assert_eq!(
            ready_within(zero, &mut std::future::ready(1)).await,
            Err(Late)
        );
        let second = std::time::Duration::from_secs(1);
        assert_eq!(
            ready_within(second, &mut std::future::ready(1)).await,
            Ok(1)
        );
        assert_eq!(
            ready_within(
                std::time::Duration::from_millis(1),
                &mut std::future::pending::<()>()
            )
            .await,
            Err(Late)
        );
    }

    #[test]
    fn only_commands_about_an_incident_channel_ask_which_one_it_is() {
        for text in [
            "declare API down",
            "list --all",
            "stats --days 7",
            "help",
            "maintenance",
            "maintenance start 1h deploy",
        ] {
            assert!(
                !concerns_its_channel(&command::parse(text).unwrap()),
                "{text}"
            );
        }
        for text in [
            "update still down",
            "ack",
            "timeline",
            "resolve",
            "run pods",
            "playbooks",
            "postmortem",
            "confirm 3",
        ] {
            assert!(
                concerns_its_channel(&command::parse(text).unwrap()),
                "{text}"
            );
        }
    }

    #[test]
    fn reading_commands_are_open_to_everyone() {
        for text in [
            "declare x",
            "list",
            "help",
            "timeline",
            "stats --days 7",
            "maintenance",
        ] {
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
            "postmortem",
            "postmortem done https://wiki.example.com/pm/1",
            "maintenance start 2h patching",
            "maintenance end",
        ] {
            assert!(
                changes_an_incident(&command::parse(text).unwrap()),
                "{text}"
            );
        }
    }
}
