//! Delivers the outbox to Discord: incident channels in the configured category, topics,
//! responders' access, posts (split at 2,000 characters), pins, and the summary kept current
//! by editing its message.
//!
//! Discord's ids are kept in the store (`chat_refs`) under the same keys as Slack's:
//! `channel:<name>`, `channel-id:<id>`, `slot:<name>:summary` and `outbox:<row>` (with `:<n>`
//! for the n-th piece of a split post), so a retried row never posts a piece twice.

use super::DISCORD;
use super::api::{ApiError, DiscordApi, GuildChannelInfo, codes};
use super::content::{self, DiscordContent};
use crate::chat::split::ellipsis;
use crate::chat::{ChatRefs, Delivered, DeliveryError, Sink, posted_key, store_error};
use crate::config::DiscordConfig;
use crate::core::{ChannelName, ChannelTarget, Effect, Incident, Message, Platform, Slot};
use crate::render::{self, Renderer};
use crate::store::{OutboxItem, Store};
use async_trait::async_trait;
use std::sync::{Arc, Mutex};

/// Discord's limit on a channel topic, in characters.
pub const TOPIC_LIMIT: usize = 1_024;
/// Channel types.
const TEXT: u8 = 0;
const CATEGORY: u8 = 4;

/// The channel topic of an incident for Discord: key, severity, status, the commander as a
/// mention (topics do not notify), and the title escaped like user text.
pub fn discord_topic(incident: &Incident) -> String {
    let topic = format!(
        "{} {} | {} | commander {} | {}",
        incident.key,
        incident.severity,
        incident.status,
        render::mention(Platform::Discord, incident.commander.as_str()),
        render::escape(Platform::Discord, &incident.title)
    );
    ellipsis(&topic, TOPIC_LIMIT)
}

/// Whether `id` is a Discord user id (only those can be given access or mentioned).
fn is_user_id(id: &str) -> bool {
    crate::config::discord_id(id).is_some()
}

/// The outbox sink for Discord.
pub struct DiscordSink {
    api: Arc<DiscordApi>,
    store: Arc<dyn Store>,
    refs: ChatRefs,
    renderer: Arc<Renderer>,
    config: DiscordConfig,
    /// `incidents.announce_channel`: posts there go to `discord.incidents_channel`.
    announce_channel: String,
    /// Ids found by name (the category, the incidents channel), looked up once.
    found: Mutex<std::collections::HashMap<String, String>>,
}

impl DiscordSink {
    pub fn new(
        api: Arc<DiscordApi>,
        store: Arc<dyn Store>,
        renderer: Arc<Renderer>,
        config: DiscordConfig,
        announce_channel: String,
    ) -> DiscordSink {
        DiscordSink {
            api,
            refs: ChatRefs::new(store.clone(), DISCORD),
            store,
            renderer,
            config,
            announce_channel,
            found: Mutex::new(Default::default()),
        }
    }

    /// The id of a channel given by id or by name (of the given type), looked up once.
    async fn by_id_or_name(&self, given: &str, kind: u8) -> Result<String, DeliveryError> {
        if crate::config::discord_id(given).is_some() {
            return Ok(given.to_string());
        }
        let key = format!("{kind}:{given}");
        if let Some(id) = self
            .found
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(id.clone());
        }
        let channels = self.api.channels().await?;
        let found = channels
            .iter()
            .find(|c| c.kind == kind && c.name.eq_ignore_ascii_case(given))
            .ok_or_else(|| DeliveryError::Permanent {
                reason: format!(
                    "Discord has no {} named `{given}` in the server; create it or give its id",
                    if kind == CATEGORY {
                        "category"
                    } else {
                        "text channel"
                    }
                ),
            })?;
        self.found
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, found.id.clone());
        Ok(found.id.clone())
    }

    /// The Discord id of an incident channel created earlier.
    async fn incident_channel(&self, name: &ChannelName) -> Result<String, DeliveryError> {
        self.refs.existing_channel(name.as_str(), "Discord").await
    }

    /// Create the incident channel in the category, or adopt the one an earlier attempt
    /// created (a text channel of that name in the category that no other incident uses): a
    /// crash between Discord's answer and the record must not leave two channels.
    async fn create_channel(
        &self,
        name: &ChannelName,
        topic: &str,
    ) -> Result<String, DeliveryError> {
        let parent = match self.config.category.as_str() {
            "" => None,
            category => Some(self.by_id_or_name(category, CATEGORY).await?),
        };
        let existing: Vec<GuildChannelInfo> = self.api.channels().await?;
        let mut adopted = None;
        for channel in existing
            .iter()
            .filter(|c| c.kind == TEXT && c.name == name.as_str() && c.parent == parent)
        {
            let owner = self.refs.owner(&channel.id).await?;
            if owner.as_deref().is_none_or(|o| o == name.as_str()) {
                tracing::info!(channel = %name, "found the channel an earlier attempt created");
                adopted = Some(channel.id.clone());
                break;
            }
        }
        let id = match adopted {
            Some(id) => {
                self.api.set_topic(&id, topic).await?;
                id
            }
            None => {
                self.api
                    .create_channel(name.as_str(), topic, parent.as_deref())
                    .await?
            }
        };
        self.refs.record_channel(name.as_str(), &id).await?;
        Ok(id)
    }

    /// The topic from the incident's current state (the effect's text if it cannot be read).
    async fn topic(&self, item: &OutboxItem, fallback: &str) -> Result<String, DeliveryError> {
        Ok(
            match self
                .store
                .incident(item.incident)
                .await
                .map_err(store_error)?
            {
                Some(incident) => discord_topic(&incident),
                None => ellipsis(&render::escape(Platform::Discord, fallback), TOPIC_LIMIT),
            },
        )
    }

    /// Give each user access to the channel on their own, so one unknown id does not keep the
    /// others out; then mention them there (which notifies them), naming those Discord
    /// refused for someone to add by hand.
    async fn invite(
        &self,
        item: &OutboxItem,
        channel_id: &str,
        users: &[String],
    ) -> Result<(), DeliveryError> {
        if users.is_empty() {
            return Ok(());
        }
        let mut added = Vec::new();
        let mut refused = Vec::new();
        for user in users {
            match self.api.grant(channel_id, user).await {
                Ok(()) => added.push(render::mention(Platform::Discord, user)),
                Err(error @ ApiError::Refused { .. }) => {
                    tracing::warn!(user, %error, "Discord refused access for a responder");
                    refused.push(format!(
                        "{} ({})",
                        render::mention(Platform::Discord, user),
                        if matches!(
                            error.code(),
                            Some(codes::UNKNOWN_MEMBER | codes::UNKNOWN_USER)
                        ) {
                            "not a member of this server"
                        } else {
                            "refused"
                        }
                    ));
                }
                Err(temporary) => return Err(temporary.into()),
            }
        }
        let mut text = String::new();
        if !added.is_empty() {
            text.push_str(&format!("👋 Responders: {}", added.join(" ")));
        }
        if !refused.is_empty() {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&format!(
                "⚠️ warroom could not give {} access to this channel; please add them by hand.",
                refused.join(", ")
            ));
        }
        let body = content::body(&text, &[]);
        self.refs
            .once(item, &format!("{}:invite", posted_key(item.id)), async {
                Ok(self.api.post(channel_id, &body).await?)
            })
            .await?;
        Ok(())
    }

    /// Where a post goes: the incident channel's id, or the incidents channel.
    async fn target(&self, target: &ChannelTarget) -> Result<String, DeliveryError> {
        match target {
            ChannelTarget::Incident(name) => self.incident_channel(name).await,
            ChannelTarget::Named(name) if *name == self.announce_channel => {
                self.by_id_or_name(&self.config.incidents_channel, TEXT)
                    .await
            }
            ChannelTarget::Named(name) => self.by_id_or_name(name, TEXT).await,
        }
    }

    /// Render for Discord, with the incident's channel name turned into a link.
    async fn content(
        &self,
        item: &OutboxItem,
        message: &Message,
    ) -> Result<DiscordContent, DeliveryError> {
        let rendered = self
            .renderer
            .render(Platform::Discord, message)
            .map_err(|e| DeliveryError::Permanent {
                reason: e.to_string(),
            })?;
        let link = self.refs.incident_channel(item.incident).await?;
        let content = content::content(
            &rendered,
            link.as_ref().map(|(name, id)| (name.as_str(), id.as_str())),
        );
        Ok(content)
    }

    /// Post a message: one Discord message, or several for a long text (a slotted message is
    /// always one, cut to the limit, so that it can be edited). Each piece posted is recorded
    /// before the next, so a retry carries on where it stopped. The first piece is pinned.
    async fn post(
        &self,
        item: &OutboxItem,
        channel: &ChannelTarget,
        message: &Message,
        pin: bool,
        slot: Option<Slot>,
    ) -> Result<Delivered, DeliveryError> {
        let channel_id = self.target(channel).await?;
        let content = self.content(item, message).await?;
        let bodies = if slot.is_some() {
            vec![content.single()]
        } else {
            content.bodies()
        };
        let mut first = None;
        for (i, body) in bodies.iter().enumerate() {
            let key = if i == 0 {
                posted_key(item.id)
            } else {
                format!("{}:{i}", posted_key(item.id))
            };
            let send = async { Ok(self.api.post(&channel_id, body).await?) };
            // The last piece of a post that is neither pinned nor kept in a slot ends the row.
            if i + 1 == bodies.len() && !pin && slot.is_none() {
                return self.refs.once_as_last_step(item, &key, send).await;
            }
            let id = self.refs.once(item, &key, send).await?;
            first.get_or_insert(id);
        }
        let Some(first) = first else {
            return Ok(Delivered::Done);
        };
        // Pin before recording the slot: a retry after a failed pin finds no slot, comes back
        // here, reuses the post and pins it.
        if pin {
            match self.api.pin(&channel_id, &first).await {
                Ok(()) => {}
                // A pin is a convenience: a bot without Pin Messages, or a channel at Discord's
                // 50 pins, must not fail the alert or lose the summary's slot.
                Err(error @ ApiError::Refused { .. }) => {
                    tracing::warn!(%error, "Discord refused to pin a message; it stays unpinned");
                }
                Err(temporary) => return Err(temporary.into()),
            }
        }
        if let (Some(slot), ChannelTarget::Incident(name)) = (slot, channel) {
            self.refs
                .set_slot(name.as_str(), slot, &channel_id, &first)
                .await?;
        }
        Ok(Delivered::Done)
    }

    /// Edit the slot's message; post it anew if it is gone (or was never posted).
    async fn update(
        &self,
        item: &OutboxItem,
        channel: &ChannelName,
        slot: Slot,
        message: &Message,
    ) -> Result<Delivered, DeliveryError> {
        if let Some((channel_id, message_id)) = self.refs.slot(channel.as_str(), slot).await? {
            let content = self.content(item, message).await?;
            match self
                .api
                .edit(&channel_id, &message_id, &content.single())
                .await
            {
                Err(e) if e.code() == Some(codes::UNKNOWN_MESSAGE) => {
                    tracing::warn!(%channel, "summary message gone; posting it again");
                }
                other => return other.map(|()| Delivered::Done).map_err(DeliveryError::from),
            }
        }
        self.post(
            item,
            &ChannelTarget::Incident(channel.clone()),
            message,
            true,
            Some(slot),
        )
        .await
    }
}

#[async_trait]
impl Sink for DiscordSink {
    fn destination(&self) -> &'static str {
        DISCORD
    }

    async fn deliver(&self, item: &OutboxItem) -> Result<Delivered, DeliveryError> {
        match &item.effect {
            Effect::CreateChannel {
                channel,
                topic,
                invite,
            } => {
                let topic = self.topic(item, topic).await?;
                let id = match self.refs.created_before(item, channel.as_str()).await? {
                    Some(id) => {
                        self.api.set_topic(&id, &topic).await?;
                        id
                    }
                    None => self.create_channel(channel, &topic).await?,
                };
                let mut users: Vec<String> = invite
                    .iter()
                    .map(|u| u.as_str().to_string())
                    .filter(|u| is_user_id(u))
                    .collect();
                for responder in &self.config.responders {
                    let responder = responder.to_string();
                    if !users.contains(&responder) {
                        users.push(responder);
                    }
                }
                self.invite(item, &id, &users).await?;
                Ok(Delivered::Done)
            }
            Effect::Post {
                channel,
                message,
                pin,
                slot,
            } => self.post(item, channel, message, *pin, *slot).await,
            // Discord gets the document as a message in a code block (split at 2,000
            // characters with the block kept closed).
            Effect::Upload {
                channel, message, ..
            } => {
                let target = crate::core::ChannelTarget::Incident(channel.clone());
                let message = crate::core::views::as_code_block(message);
                self.post(item, &target, &message, false, None).await
            }
            Effect::Update {
                channel,
                slot,
                message,
            } => self.update(item, channel, *slot, message).await,
            Effect::SetTopic { channel, topic } => {
                let id = self.incident_channel(channel).await?;
                let topic = self.topic(item, topic).await?;
                self.api.set_topic(&id, &topic).await?;
                Ok(Delivered::Done)
            }
            Effect::Invite { channel, users } => {
                let id = self.incident_channel(channel).await?;
                let users: Vec<String> = users
                    .iter()
                    .map(|u| u.as_str().to_string())
                    .filter(|u| is_user_id(u))
                    .collect();
                self.invite(item, &id, &users).await?;
                Ok(Delivered::Done)
            }
            Effect::PagerDuty { action } => Err(DeliveryError::Permanent {
                reason: format!("Discord cannot {}", action.describe()),
            }),
        }
    }
}
