//! Discord's REST API through serenity's HTTP client: channels, messages, pins, channel access,
//! interaction follow-ups and application commands. Every call has a timeout; errors are sorted
//! into "refused" (a 4xx other than 429: retrying will not help) and "temporary".
//!
//! Against Discord itself serenity's ratelimiter paces the calls and waits out 429s. A proxy or
//! test server (`discord.api_url` other than Discord's) needs the ratelimiter off, because the
//! ratelimiter ignores the proxy; a 429 then comes back here and the outbox retries later.

use crate::chat::DeliveryError;
use crate::config::DiscordConfig;
use serde_json::Value;
use serenity::http::{Http, HttpBuilder, HttpError};
use serenity::model::id::{ApplicationId, ChannelId, GuildId, MessageId, UserId};
use std::time::Duration;

/// A failed call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Discord refused the request (a 4xx other than 429) with its JSON error code.
    #[error("Discord refused {what}: {status} {message} (code {code})")]
    Refused {
        what: &'static str,
        status: u16,
        code: isize,
        message: String,
    },
    /// Rate-limited, a 5xx, a network problem or a timeout.
    #[error("{what} failed for now: {reason}")]
    Temporary { what: &'static str, reason: String },
}

impl ApiError {
    /// Discord's JSON error code, when Discord refused.
    pub fn code(&self) -> Option<isize> {
        match self {
            ApiError::Refused { code, .. } => Some(*code),
            ApiError::Temporary { .. } => None,
        }
    }
}

impl From<ApiError> for DeliveryError {
    fn from(error: ApiError) -> DeliveryError {
        match error {
            ApiError::Refused { .. } => DeliveryError::Permanent {
                reason: error.to_string(),
            },
            ApiError::Temporary { .. } => DeliveryError::Retry {
                after: None,
                reason: error.to_string(),
            },
        }
    }
}

/// Discord's JSON error codes warroom reacts to.
pub mod codes {
    pub const UNKNOWN_CHANNEL: isize = 10003;
    pub const UNKNOWN_WEBHOOK: isize = 10015;
    pub const UNKNOWN_MEMBER: isize = 10007;
    pub const UNKNOWN_MESSAGE: isize = 10008;
    pub const UNKNOWN_USER: isize = 10013;
}

/// A channel of the guild, as far as warroom cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuildChannelInfo {
    pub id: String,
    pub name: String,
    /// 0 text, 4 category, …
    pub kind: u8,
    pub parent: Option<String>,
}

/// Allow View Channel, Send Messages and Read Message History.
const RESPONDER_ACCESS: u64 = (1 << 10) | (1 << 11) | (1 << 16);

/// The REST client, shared by the sink and the interactions endpoint.
pub struct DiscordApi {
    http: Http,
    guild: GuildId,
    timeout: Duration,
}

impl std::fmt::Debug for DiscordApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordApi")
            .field("guild", &self.guild)
            .finish_non_exhaustive()
    }
}

fn sorted(what: &'static str, error: serenity::Error) -> ApiError {
    match error {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(response)) => {
            let status = response.status_code.as_u16();
            if status == 429 || status >= 500 {
                ApiError::Temporary {
                    what,
                    reason: format!("HTTP {status}"),
                }
            } else {
                ApiError::Refused {
                    what,
                    status,
                    code: response.error.code,
                    message: response.error.message,
                }
            }
        }
        // A network error's text names the URL, which for an interaction's webhook holds its
        // token (good for 15 minutes): never let it reach a log.
        serenity::Error::Http(HttpError::Request(error)) => ApiError::Temporary {
            what,
            reason: error.without_url().to_string(),
        },
        other => ApiError::Temporary {
            what,
            reason: scrub(&other.to_string()),
        },
    }
}

/// Cut an interaction token out of text that may quote a webhook URL.
fn scrub(text: &str) -> String {
    match text.find("/webhooks/") {
        Some(at) => format!("{}/webhooks/[redacted]", &text[..at]),
        None => text.to_string(),
    }
}

fn snowflake(what: &'static str, id: &str) -> Result<u64, ApiError> {
    id.parse::<u64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(ApiError::Refused {
            what,
            status: 0,
            code: 0,
            message: format!("`{id}` is not a Discord id"),
        })
}

impl DiscordApi {
    pub fn new(config: &DiscordConfig) -> DiscordApi {
        crate::tls::init();
        let mut builder = HttpBuilder::new(config.bot_token.expose())
            .application_id(ApplicationId::new(config.application_id));
        if !config.is_discord() {
            builder = builder
                .proxy(config.api_url.clone())
                .ratelimiter_disabled(true);
        }
        DiscordApi {
            http: builder.build(),
            guild: GuildId::new(config.guild_id),
            timeout: config.timeout,
        }
    }

    async fn call<T>(
        &self,
        what: &'static str,
        call: impl std::future::Future<Output = serenity::Result<T>>,
    ) -> Result<T, ApiError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(|e| sorted(what, e)),
            Err(_) => Err(ApiError::Temporary {
                what,
                reason: format!("no answer within {:?}", self.timeout),
            }),
        }
    }

    /// The guild's channels.
    pub async fn channels(&self) -> Result<Vec<GuildChannelInfo>, ApiError> {
        let channels = self
            .call("listing channels", self.http.get_channels(self.guild))
            .await?;
        Ok(channels
            .into_iter()
            .map(|c| GuildChannelInfo {
                id: c.id.to_string(),
                name: c.name,
                kind: u8::from(c.kind),
                parent: c.parent_id.map(|p| p.to_string()),
            })
            .collect())
    }

    /// Create a text channel (in `parent`, a category id); its id.
    pub async fn create_channel(
        &self,
        name: &str,
        topic: &str,
        parent: Option<&str>,
    ) -> Result<String, ApiError> {
        let mut body = serde_json::json!({ "name": name, "type": 0, "topic": topic });
        if let Some(parent) = parent {
            body["parent_id"] = Value::String(parent.to_string());
        }
        let channel = self
            .call(
                "creating a channel",
                self.http
                    .create_channel(self.guild, &body, Some("incident declared")),
            )
            .await?;
        Ok(channel.id.to_string())
    }

    pub async fn set_topic(&self, channel: &str, topic: &str) -> Result<(), ApiError> {
        let id = ChannelId::new(snowflake("setting a topic", channel)?);
        self.call(
            "setting a topic",
            self.http.edit_channel(
                id,
                &serde_json::json!({ "topic": topic }),
                Some("incident changed"),
            ),
        )
        .await?;
        Ok(())
    }

    /// Let `user` see and write in `channel` (a member permission overwrite).
    pub async fn grant(&self, channel: &str, user: &str) -> Result<(), ApiError> {
        let channel = ChannelId::new(snowflake("granting access", channel)?);
        let user = UserId::new(snowflake("granting access", user)?);
        let body = serde_json::json!({
            "type": 1,
            "allow": RESPONDER_ACCESS.to_string(),
            "deny": "0",
        });
        self.call(
            "granting access",
            self.http
                .create_permission(channel, user.into(), &body, Some("incident responder")),
        )
        .await
    }

    /// Post a message body (see `content::body`); the message id.
    pub async fn post(&self, channel: &str, body: &Value) -> Result<String, ApiError> {
        let id = ChannelId::new(snowflake("posting", channel)?);
        let message = self
            .call("posting", self.http.send_message(id, Vec::new(), body))
            .await?;
        Ok(message.id.to_string())
    }

    pub async fn edit(&self, channel: &str, message: &str, body: &Value) -> Result<(), ApiError> {
        let channel = ChannelId::new(snowflake("editing", channel)?);
        let message = MessageId::new(snowflake("editing", message)?);
        self.call(
            "editing a message",
            self.http.edit_message(channel, message, body, Vec::new()),
        )
        .await?;
        Ok(())
    }

    pub async fn pin(&self, channel: &str, message: &str) -> Result<(), ApiError> {
        let channel = ChannelId::new(snowflake("pinning", channel)?);
        let message = MessageId::new(snowflake("pinning", message)?);
        self.call(
            "pinning",
            self.http.pin_message(channel, message, Some("incident")),
        )
        .await
    }

    /// The content of a message.
    pub async fn message_content(&self, channel: &str, message: &str) -> Result<String, ApiError> {
        let channel = ChannelId::new(snowflake("reading a message", channel)?);
        let message = MessageId::new(snowflake("reading a message", message)?);
        let found = self
            .call("reading a message", self.http.get_message(channel, message))
            .await?;
        Ok(found.content)
    }

    /// Replace the answer to an interaction (after a deferred reply). The token is valid for
    /// 15 minutes.
    pub async fn edit_original(&self, token: &str, body: &Value) -> Result<(), ApiError> {
        self.call(
            "answering an interaction",
            self.http
                .edit_original_interaction_response(token, body, Vec::new()),
        )
        .await?;
        Ok(())
    }

    /// The application commands registered in the guild (`global`: everywhere), as JSON.
    pub async fn commands(&self, global: bool) -> Result<Vec<Value>, ApiError> {
        let commands = if global {
            self.call("listing commands", self.http.get_global_commands())
                .await?
        } else {
            self.call("listing commands", self.http.get_guild_commands(self.guild))
                .await?
        };
        Ok(commands
            .iter()
            .filter_map(|c| serde_json::to_value(c).ok())
            .collect())
    }

    /// Replace the application commands (bulk overwrite).
    pub async fn set_commands(&self, global: bool, commands: &Value) -> Result<(), ApiError> {
        if global {
            self.call(
                "registering commands",
                self.http.create_global_commands(commands),
            )
            .await?;
        } else {
            self.call(
                "registering commands",
                self.http.create_guild_commands(self.guild, commands),
            )
            .await?;
        }
        Ok(())
    }

    /// The role ids of a member of the guild.
    pub async fn member_roles(&self, user: &str) -> Result<Vec<String>, ApiError> {
        let user = UserId::new(snowflake("reading a member", user)?);
        let member = self
            .call("reading a member", self.http.get_member(self.guild, user))
            .await?;
        Ok(member.roles.iter().map(|r| r.to_string()).collect())
    }
}

/// Roles of a runbook `[runbooks] roles` entry may name Discord roles as `discord:role:ID`.
#[async_trait::async_trait]
impl crate::app::runbook::Directory for DiscordApi {
    async fn groups_of(&self, user: &crate::core::UserRef, groups: &[String]) -> Vec<String> {
        let wanted: Vec<&String> = groups
            .iter()
            .filter(|g| g.starts_with("discord:role:"))
            .collect();
        if wanted.is_empty() || crate::config::discord_id(user.as_str()).is_none() {
            return Vec::new();
        }
        match self.member_roles(user.as_str()).await {
            Ok(roles) => wanted
                .into_iter()
                .filter(|g| roles.iter().any(|r| g.ends_with(&format!(":{r}"))))
                .cloned()
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "cannot read a Discord member's roles");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn webhook_tokens_are_cut_from_error_texts() {
        let text = super::scrub(
            "error sending request for url (https://discord.com/api/v10/webhooks/1/secret-token/messages/@original)",
        );
        assert!(!text.contains("secret-token"), "{text}");
    }
}
