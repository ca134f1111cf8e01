//! Delivers the outbox to Slack: incident channels, topics, posts, pins and the summary kept
//! current with `chat.update`.
//!
//! Slack's ids are kept in the store (`chat_refs`): `channel:<name>` is the Slack id of an
//! incident channel, `channel-id:<id>` the incident channel a Slack id belongs to,
//! `slot:<name>:summary` the channel and `ts` of the summary, and `outbox:<row>` the `ts` of a
//! row's post, so that a retried row (its pin failed, say) does not post a second time.

use super::api::{ApiError, SlackApi};
use super::blocks;
use crate::chat::{ChatRefs, Delivered, DeliveryError, Sink, store_error};
use crate::config::SlackConfig;
use crate::core::{ChannelName, ChannelTarget, Effect, Incident, Message, Platform, Slot};
use crate::render::{self, Renderer};
use crate::store::{OutboxItem, Store};
use async_trait::async_trait;
use std::sync::Arc;

pub const SLACK: &str = "slack";

/// How many name suffixes (`-2` … `-9`) are tried when another channel has the name.
const NAME_ATTEMPTS: usize = 9;

/// Whether `id` is a Slack user id (`U…`/`W…`): only those can be invited.
pub fn is_user_id(id: &str) -> bool {
    render::slack_id(id, &['U', 'W'])
}

/// Slack's limit on a channel topic, in characters.
const TOPIC_LIMIT: usize = 250;

/// The channel topic of an incident for Slack: key, severity, status, the commander as a
/// mention, and the title escaped like user text, cut (before escaping, so no entity is split)
/// to Slack's 250 characters.
pub fn slack_topic(incident: &Incident) -> String {
    let prefix = format!(
        "{} {} | {} | commander {} | ",
        incident.key,
        incident.severity,
        incident.status,
        render::mention(Platform::Slack, incident.commander.as_str())
    );
    let room = TOPIC_LIMIT.saturating_sub(prefix.chars().count());
    // Escaped whole (so `@here` in a title is broken like anywhere else), then cut without
    // splitting an entity.
    let title = render::escape(Platform::Slack, &incident.title);
    if title.chars().count() <= room {
        return format!("{prefix}{title}");
    }
    let mut cut: String = title.chars().take(room.saturating_sub(1)).collect();
    if let Some(amp) = cut.rfind('&')
        && !cut[amp..].contains(';')
    {
        cut.truncate(amp);
    }
    format!("{prefix}{cut}…")
}

/// The outbox sink for Slack.
pub struct SlackSink {
    api: Arc<SlackApi>,
    store: Arc<dyn Store>,
    refs: ChatRefs,
    renderer: Arc<Renderer>,
    config: SlackConfig,
    /// `incidents.announce_channel`: posts there go to `slack.incidents_channel`.
    announce_channel: String,
}

impl SlackSink {
    pub fn new(
        api: Arc<SlackApi>,
        store: Arc<dyn Store>,
        renderer: Arc<Renderer>,
        config: SlackConfig,
        announce_channel: String,
    ) -> SlackSink {
        SlackSink {
            api,
            refs: ChatRefs::new(store.clone(), SLACK),
            store,
            renderer,
            config,
            announce_channel,
        }
    }

    /// The Slack id of an incident channel created earlier.
    async fn incident_channel(&self, name: &ChannelName) -> Result<String, DeliveryError> {
        self.refs.existing_channel(name.as_str(), "Slack").await
    }

    /// Create the incident channel, or find the one an earlier attempt created: each candidate
    /// name is reserved for the incident first (`name:<candidate>` in `chat_refs`), and a
    /// `name_taken` for a channel warroom created under this incident's reservation counts as
    /// success; a name someone else took, or another incident reserved, gets a suffix.
    async fn create_channel(&self, name: &ChannelName) -> Result<String, DeliveryError> {
        let me = self.api.bot_user().await?;
        for attempt in 1..=NAME_ATTEMPTS {
            let candidate = if attempt == 1 {
                name.as_str().to_string()
            } else {
                let suffix = format!("-{attempt}");
                let base: String = name.as_str().chars().take(80 - suffix.len()).collect();
                format!("{}{suffix}", base.trim_end_matches('-'))
            };
            // A name another incident reserved is its own, even before its channel exists
            // (its creation may be in flight here or on another replica).
            if !self.refs.reserve_name(&candidate, name.as_str()).await? {
                tracing::info!(channel = %candidate, "Slack channel name reserved by another incident; trying another");
                continue;
            }
            let id = match self.api.create_channel(&candidate).await {
                Ok(id) => id,
                Err(e) if e.code() == Some("name_taken") => {
                    let Some((id, creator)) = self.api.find_channel(&candidate).await? else {
                        continue;
                    };
                    let owner = self.refs.owner(&id).await?;
                    let ours = creator.as_deref() == Some(me.as_str())
                        && owner.as_deref().is_none_or(|o| o == name.as_str());
                    if !ours {
                        tracing::info!(channel = %candidate, "Slack channel name taken; trying another");
                        continue;
                    }
                    tracing::info!(channel = %candidate, "found the channel an earlier attempt created");
                    id
                }
                Err(e) => return Err(e.into()),
            };
            self.refs.record_channel(name.as_str(), &id).await?;
            return Ok(id);
        }
        Err(DeliveryError::Permanent {
            reason: format!("no free Slack channel name for #{name} (tried {NAME_ATTEMPTS})"),
        })
    }

    /// Set the channel topic from the incident's current state (the effect's text if the
    /// incident cannot be read).
    async fn set_topic(
        &self,
        item: &OutboxItem,
        channel_id: &str,
        fallback: &str,
    ) -> Result<(), DeliveryError> {
        let topic = match self
            .store
            .incident(item.incident)
            .await
            .map_err(store_error)?
        {
            Some(incident) => slack_topic(&incident),
            None => blocks::truncate(&render::escape(Platform::Slack, fallback), TOPIC_LIMIT),
        };
        self.api.set_topic(channel_id, &topic).await?;
        Ok(())
    }

    /// Invite each user on their own, so one unknown or deactivated id does not keep the
    /// others out; those Slack refused are named in the channel for someone to add by hand.
    async fn invite(&self, channel_id: &str, users: &[String]) -> Result<(), DeliveryError> {
        let mut refused = Vec::new();
        for user in users {
            match self.api.invite(channel_id, user).await {
                Ok(()) => {}
                Err(ApiError::Refused { code, .. }) => {
                    tracing::warn!(user, %code, "Slack refused an invitation");
                    refused.push(format!(
                        "{} ({code})",
                        render::mention(Platform::Slack, user)
                    ));
                }
                Err(temporary) => return Err(temporary.into()),
            }
        }
        if !refused.is_empty() {
            let text = format!(
                "⚠️ warroom could not invite {} to this channel; please add them by hand.",
                refused.join(", ")
            );
            let section = serde_json::json!({
                "type": "section",
                "text": { "type": "mrkdwn", "text": text },
            });
            self.api.post(channel_id, &text, &[section]).await?;
        }
        Ok(())
    }

    /// Where a post goes: the incident channel's id, or the incidents channel.
    async fn target(&self, target: &ChannelTarget) -> Result<String, DeliveryError> {
        match target {
            ChannelTarget::Incident(name) => self.incident_channel(name).await,
            ChannelTarget::Named(name) if *name == self.announce_channel => {
                Ok(self.config.incidents_channel.clone())
            }
            ChannelTarget::Named(name) => Ok(name.clone()),
        }
    }

    /// Render for Slack, with the incident's channel name turned into a link.
    async fn content(
        &self,
        item: &OutboxItem,
        message: &Message,
    ) -> Result<blocks::SlackContent, DeliveryError> {
        let rendered = self
            .renderer
            .render(Platform::Slack, message)
            .map_err(|e| DeliveryError::Permanent {
                reason: e.to_string(),
            })?;
        let mut content = blocks::content(&rendered);
        if let Some((name, id)) = self.refs.incident_channel(item.incident).await? {
            blocks::link_channel(&mut content, &name, &id);
        }
        Ok(content)
    }

    async fn post(
        &self,
        item: &OutboxItem,
        channel: &ChannelTarget,
        message: &Message,
        pin: bool,
        slot: Option<Slot>,
    ) -> Result<Delivered, DeliveryError> {
        let channel_id = self.target(channel).await?;
        let key = crate::chat::posted_key(item.id);
        let send = async {
            let content = self.content(item, message).await?;
            Ok(self
                .api
                .post(&channel_id, &content.text, &content.blocks)
                .await?)
        };
        if !pin && slot.is_none() {
            return self.refs.once_as_last_step(item, &key, send).await;
        }
        let ts = self.refs.once(item, &key, send).await?;
        // Pin before recording the slot: a retry after a failed pin finds no slot, comes back
        // here, reuses the post (its note above) and pins it.
        if pin {
            self.api.pin(&channel_id, &ts).await?;
        }
        if let (Some(slot), ChannelTarget::Incident(name)) = (slot, channel) {
            self.refs
                .set_slot(name.as_str(), slot, &channel_id, &ts)
                .await?;
        }
        Ok(Delivered::Done)
    }

    /// Share a document in the incident channel as a Markdown snippet, once per row. Its text
    /// is rendered as plain text (a file is not mrkdwn; mass mentions are still broken).
    async fn upload(
        &self,
        item: &OutboxItem,
        channel: &ChannelName,
        filename: &str,
        title: &str,
        message: &Message,
    ) -> Result<(), DeliveryError> {
        let channel_id = self.incident_channel(channel).await?;
        let rendered = self
            .renderer
            .render(Platform::Console, message)
            .map_err(|e| DeliveryError::Permanent {
                reason: e.to_string(),
            })?;
        let text = rendered.document_text();
        let title = crate::chat::split::ellipsis(title, 250);
        self.refs
            .once(item, &crate::chat::posted_key(item.id), async {
                Ok(self
                    .api
                    .upload_snippet(&channel_id, filename, &title, text.as_bytes())
                    .await?)
            })
            .await?;
        Ok(())
    }

    /// Edit the slot's message; post it anew if it is gone (or was never posted).
    async fn update(
        &self,
        item: &OutboxItem,
        channel: &ChannelName,
        slot: Slot,
        message: &Message,
    ) -> Result<Delivered, DeliveryError> {
        if let Some((channel_id, ts)) = self.refs.slot(channel.as_str(), slot).await? {
            let content = self.content(item, message).await?;
            match self
                .api
                .update(&channel_id, &ts, &content.text, &content.blocks)
                .await
            {
                Err(e) if matches!(e.code(), Some("message_not_found" | "cant_update_message")) => {
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
impl Sink for SlackSink {
    fn destination(&self) -> &'static str {
        SLACK
    }

    async fn deliver(&self, item: &OutboxItem) -> Result<Delivered, DeliveryError> {
        match &item.effect {
            Effect::CreateChannel {
                channel,
                topic,
                invite,
            } => {
                let id = match self.refs.created_before(item, channel.as_str()).await? {
                    Some(id) => id,
                    None => self.create_channel(channel).await?,
                };
                self.set_topic(item, &id, topic).await?;
                let mut users: Vec<String> = invite
                    .iter()
                    .map(|u| u.as_str().to_string())
                    .filter(|u| is_user_id(u))
                    .collect();
                for responder in &self.config.responders {
                    if !users.contains(responder) {
                        users.push(responder.clone());
                    }
                }
                self.invite(&id, &users).await?;
                Ok(Delivered::Done)
            }
            Effect::Post {
                channel,
                message,
                pin,
                slot,
            } => self.post(item, channel, message, *pin, *slot).await,
            Effect::Update {
                channel,
                slot,
                message,
            } => self.update(item, channel, *slot, message).await,
            Effect::Upload {
                channel,
                filename,
                title,
                message,
            } => {
                self.upload(item, channel, filename, title, message).await?;
                Ok(Delivered::Done)
            }
            Effect::SetTopic { channel, topic } => {
                let id = self.incident_channel(channel).await?;
                self.set_topic(item, &id, topic).await?;
                Ok(Delivered::Done)
            }
            Effect::Invite { channel, users } => {
                let id = self.incident_channel(channel).await?;
                let users: Vec<String> = users
                    .iter()
                    .map(|u| u.as_str().to_string())
                    .filter(|u| is_user_id(u))
                    .collect();
                self.invite(&id, &users).await?;
                Ok(Delivered::Done)
            }
            Effect::PagerDuty { action } => Err(DeliveryError::Permanent {
                reason: format!("Slack cannot {}", action.describe()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::decide::{DeclareRequest, declare};
    use crate::core::{IncidentKey, UserRef};

    fn incident(title: &str, commander: &str) -> Incident {
        let policy = crate::config::load(None).unwrap().policy;
        declare(
            &policy,
            DeclareRequest {
                key: IncidentKey(7),
                title: title.into(),
                severity: None,
                actor: UserRef::parse(commander).unwrap(),
                platform: Platform::Slack,
                channel: ChannelName::parse("inc-x").unwrap(),
                now: chrono::Utc::now(),
                from_pagerduty: None,
            },
        )
        .incident
    }

    #[test]
    fn topics_mention_only_the_commander_and_fit_slacks_limit() {
        let topic = slack_topic(&incident("@USA & <@U0VICTIM> down", "U0LEAD"));
        assert!(topic.contains("commander <@U0LEAD>"), "{topic}");
        assert!(
            topic.contains("@USA &amp; &lt;@U0VICTIM&gt; down"),
            "{topic}"
        );
        let here = slack_topic(&incident("db down @here", "alice"));
        assert!(!here.contains("@here"), "{here}");
        let long = slack_topic(&incident(&"&".repeat(400), "alice"));
        assert!(
            long.chars().count() <= TOPIC_LIMIT,
            "{}",
            long.chars().count()
        );
        assert!(long.ends_with("&amp;…"), "no entity is cut: {long}");
        assert!(long.contains("commander @alice"), "{long}");
    }
}
