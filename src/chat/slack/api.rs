//! Calls to Slack's Web API through slack-morphism: one client for the outbox sink and the
//! request handlers, with per-method rate-limit memory, a timeout on every call, and Slack's
//! errors sorted into "try again" and "give up".

use crate::chat::DeliveryError;
use crate::config::SlackConfig;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Error codes Slack answers with HTTP 200 that are worth another try.
const TEMPORARY_CODES: [&str; 5] = [
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// Wait this long at most, inside one delivery, for a method's rate limit to lift; longer
/// waits go back to the outbox with Retry-After.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(5);

/// How long group memberships are trusted.
const GROUP_CACHE: Duration = Duration::from_secs(300);

/// A failed Web API call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Slack answered `{"ok":false,"error":code}` with a code that will not change on retry.
    #[error("Slack refused {method}: {code}")]
    Refused { method: &'static str, code: String },
    /// Rate-limited, a 5xx, a network problem or a timeout.
    #[error("{method} failed for now: {reason}")]
    Temporary {
        method: &'static str,
        reason: String,
        after: Option<Duration>,
    },
}

impl ApiError {
    /// The Slack error code, when Slack refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Refused { code, .. } => Some(code),
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
            ApiError::Temporary { after, .. } => DeliveryError::Retry {
                after: after.and_then(|d| chrono::Duration::from_std(d).ok()),
                reason: error.to_string(),
            },
        }
    }
}

/// The Web API client, shared by the sink and the request handlers.
pub struct SlackApi {
    client: Arc<SlackClient<SlackClientHyperHttpsConnector>>,
    token: SlackApiToken,
    timeout: Duration,
    /// Method → when its rate limit lifts.
    blocked: Mutex<HashMap<&'static str, Instant>>,
    /// warroom's own user id and its workspace (team) id, from `auth.test`.
    identity: tokio::sync::OnceCell<(String, String)>,
    groups: Mutex<HashMap<String, (Instant, Vec<String>)>>,
}

impl SlackApi {
    pub fn new(config: &SlackConfig) -> anyhow::Result<SlackApi> {
        // https for Slack, plain http too so that a local proxy or a test server can stand in.
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            // Two crypto back ends are linked (through different crates): name one.
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let connector =
            SlackClientHyperConnector::with_connector(https).with_slack_api_url(&config.api_url);
        Ok(SlackApi {
            client: Arc::new(SlackClient::new(connector)),
            token: SlackApiToken::new(SlackApiTokenValue::new(
                config.bot_token.expose().to_string(),
            )),
            timeout: config.timeout,
            blocked: Mutex::new(HashMap::new()),
            identity: tokio::sync::OnceCell::new(),
            groups: Mutex::new(HashMap::new()),
        })
    }

    /// Run one Web API call: wait out (briefly) or report a known rate limit of `method`,
    /// bound the call by the timeout, and classify what went wrong.
    async fn call<T, F>(&self, method: &'static str, call: F) -> Result<T, ApiError>
    where
        F: std::future::Future<Output = ClientResult<T>>,
    {
        let blocked_for = {
            let blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
            blocked
                .get(method)
                .and_then(|until| until.checked_duration_since(Instant::now()))
        };
        if let Some(wait) = blocked_for {
            if wait > MAX_INLINE_WAIT {
                return Err(ApiError::Temporary {
                    method,
                    reason: "rate-limited by Slack".into(),
                    after: Some(wait),
                });
            }
            tokio::time::sleep(wait).await;
        }
        let result = match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result,
            Err(_) => {
                return Err(ApiError::Temporary {
                    method,
                    reason: format!("no answer within {:?}", self.timeout),
                    after: None,
                });
            }
        };
        result.map_err(|error| self.classify(method, error))
    }

    fn classify(&self, method: &'static str, error: SlackClientError) -> ApiError {
        match error {
            SlackClientError::RateLimitError(limit) => {
                let after = limit.retry_after.unwrap_or(Duration::from_secs(30));
                self.blocked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(method, Instant::now() + after);
                tracing::warn!(method, retry_after = after.as_secs(), "Slack rate limit");
                ApiError::Temporary {
                    method,
                    reason: format!("rate-limited by Slack (Retry-After {}s)", after.as_secs()),
                    after: Some(after),
                }
            }
            SlackClientError::ApiError(api) if TEMPORARY_CODES.contains(&api.code.as_str()) => {
                ApiError::Temporary {
                    method,
                    reason: api.code,
                    after: None,
                }
            }
            SlackClientError::ApiError(api) => ApiError::Refused {
                method,
                code: api.code,
            },
            SlackClientError::HttpError(http) if http.status_code.is_client_error() => {
                ApiError::Refused {
                    method,
                    code: format!("HTTP {}", http.status_code),
                }
            }
            SlackClientError::HttpError(http) => ApiError::Temporary {
                method,
                reason: format!("HTTP {}", http.status_code),
                after: None,
            },
            // Network, protocol and decoding problems: the request may not have arrived.
            other => ApiError::Temporary {
                method,
                reason: crate::core::text::first_line(&other.to_string(), 200),
                after: None,
            },
        }
    }

    /// The slack-morphism client itself (Socket Mode listens with it).
    pub fn client(&self) -> Arc<SlackHyperClient> {
        self.client.clone()
    }

    fn session(&self) -> SlackClientSession<'_, SlackClientHyperHttpsConnector> {
        self.client.open_session(&self.token)
    }

    /// warroom's own Slack user id and workspace id (`auth.test`, asked until it answers).
    pub async fn identity(&self) -> Result<(String, String), ApiError> {
        self.identity
            .get_or_try_init(|| async {
                let session = self.session();
                let me = self.call("auth.test", session.auth_test()).await?;
                Ok::<_, ApiError>((me.user_id.to_string(), me.team_id.to_string()))
            })
            .await
            .cloned()
    }

    /// warroom's own Slack user id.
    pub async fn bot_user(&self) -> Result<String, ApiError> {
        self.identity().await.map(|(user, _)| user)
    }

    /// The workspace of the bot token, once `auth.test` has answered (never waits).
    pub fn known_workspace(&self) -> Option<&str> {
        self.identity.get().map(|(_, team)| team.as_str())
    }

    /// `conversations.create` of a public channel; its id.
    pub async fn create_channel(&self, name: &str) -> Result<String, ApiError> {
        let session = self.session();
        let request =
            SlackApiConversationsCreateRequest::new(name.to_string()).with_is_private(false);
        let created = self
            .call(
                "conversations.create",
                session.conversations_create(&request),
            )
            .await?;
        Ok(created.channel.id.to_string())
    }

    /// The public channel called `name` that is not archived, with its creator:
    /// `conversations.list`, page by page.
    pub async fn find_channel(
        &self,
        name: &str,
    ) -> Result<Option<(String, Option<String>)>, ApiError> {
        let session = self.session();
        let mut cursor: Option<SlackCursorId> = None;
        for _ in 0..100 {
            let request = SlackApiConversationsListRequest::new()
                .with_limit(1000)
                .with_exclude_archived(true)
                .with_types(vec![SlackConversationType::Public])
                .opt_cursor(cursor.clone());
            let page = self
                .call("conversations.list", session.conversations_list(&request))
                .await?;
            if let Some(found) = page
                .channels
                .iter()
                .find(|c| c.name.as_deref() == Some(name) && c.flags.is_archived != Some(true))
            {
                return Ok(Some((
                    found.id.to_string(),
                    found.creator.as_ref().map(ToString::to_string),
                )));
            }
            cursor = page
                .response_metadata
                .and_then(|m| m.next_cursor)
                .filter(|c| !c.to_string().is_empty());
            if cursor.is_none() {
                break;
            }
        }
        Ok(None)
    }

    /// `conversations.invite` of one user; someone already in the channel counts as invited.
    pub async fn invite(&self, channel: &str, user: &str) -> Result<(), ApiError> {
        let session = self.session();
        let request = SlackApiConversationsInviteRequest::new(
            channel.into(),
            vec![SlackUserId::new(user.to_string())],
        );
        match self
            .call(
                "conversations.invite",
                session.conversations_invite(&request),
            )
            .await
        {
            Err(e) if matches!(e.code(), Some("already_in_channel" | "cant_invite_self")) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// `conversations.setTopic` (the caller keeps it within Slack's 250 characters).
    pub async fn set_topic(&self, channel: &str, topic: &str) -> Result<(), ApiError> {
        let session = self.session();
        let request = SlackApiConversationsSetTopicRequest::new(channel.into(), topic.to_string());
        self.call(
            "conversations.setTopic",
            session.conversations_set_topic(&request),
        )
        .await
        .map(|_| ())
    }

    /// `chat.postMessage`; the message's `ts`.
    pub async fn post(
        &self,
        channel: &str,
        text: &str,
        blocks: &[serde_json::Value],
    ) -> Result<String, ApiError> {
        let session = self.session();
        let request =
            SlackApiChatPostMessageRequest::new(channel.into(), message_content(text, blocks)?)
                .with_unfurl_links(false)
                .with_unfurl_media(false);
        let posted = self
            .call("chat.postMessage", session.chat_post_message(&request))
            .await?;
        Ok(posted.ts.to_string())
    }

    /// Share `content` in `channel` as a Markdown snippet: `files.getUploadURLExternal`, the
    /// upload itself, then `files.completeUploadExternal`. The file's id.
    pub async fn upload_snippet(
        &self,
        channel: &str,
        filename: &str,
        title: &str,
        content: &[u8],
    ) -> Result<String, ApiError> {
        let session = self.session();
        let request = SlackApiFilesGetUploadUrlExternalRequest::new(filename.into(), content.len())
            .with_snippet_type(SlackFileSnippetType("markdown".into()));
        let target = self
            .call(
                "files.getUploadURLExternal",
                session.get_upload_url_external(&request),
            )
            .await?;
        let upload = SlackApiFilesUploadViaUrlRequest::new(
            target.upload_url.clone(),
            content.to_vec(),
            "text/markdown".into(),
        );
        self.call("files.upload", session.files_upload_via_url(&upload))
            .await?;
        let complete = SlackApiFilesCompleteUploadExternalRequest::new(vec![
            SlackApiFilesComplete::new(target.file_id.clone()).with_title(title.into()),
        ])
        .with_channel_id(channel.into());
        self.call(
            "files.completeUploadExternal",
            session.files_complete_upload_external(&complete),
        )
        .await?;
        Ok(target.file_id.to_string())
    }

    /// `chat.update` of the message `ts`.
    pub async fn update(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: &[serde_json::Value],
    ) -> Result<(), ApiError> {
        let session = self.session();
        let request = SlackApiChatUpdateRequest::new(
            channel.into(),
            message_content(text, blocks)?,
            SlackTs::new(ts.to_string()),
        );
        self.call("chat.update", session.chat_update(&request))
            .await
            .map(|_| ())
    }

    /// `chat.postEphemeral`: a message only `user` sees.
    pub async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        text: &str,
        blocks: &[serde_json::Value],
    ) -> Result<(), ApiError> {
        let session = self.session();
        let request = SlackApiChatPostEphemeralRequest::new(
            channel.into(),
            SlackUserId::new(user.to_string()),
            message_content(text, blocks)?,
        );
        self.call("chat.postEphemeral", session.chat_post_ephemeral(&request))
            .await
            .map(|_| ())
    }

    /// `pins.add`; a message already pinned counts as pinned.
    pub async fn pin(&self, channel: &str, ts: &str) -> Result<(), ApiError> {
        let session = self.session();
        let request = SlackApiPinsAddRequest::new(channel.into(), SlackTs::new(ts.to_string()));
        match self.call("pins.add", session.pins_add(&request)).await {
            Err(e) if e.code() == Some("already_pinned") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Members of a user group (`usergroups.users.list`), remembered for five minutes.
    pub async fn group_members(&self, group: &str) -> Result<Vec<String>, ApiError> {
        if let Some((at, members)) = self
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(group)
            && at.elapsed() < GROUP_CACHE
        {
            return Ok(members.clone());
        }
        let session = self.session();
        let request =
            SlackApiUserGroupsUsersListRequest::new(SlackUserGroupId::new(group.to_string()));
        let list = self
            .call(
                "usergroups.users.list",
                session.usergroups_users_list(&request),
            )
            .await?;
        let members: Vec<String> = list.users.iter().map(ToString::to_string).collect();
        self.groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(group.to_string(), (Instant::now(), members.clone()));
        Ok(members)
    }

    /// Answer through a `response_url` (an ephemeral message to whoever typed or clicked).
    pub async fn respond(
        &self,
        response_url: &str,
        text: &str,
        blocks: &[serde_json::Value],
    ) -> Result<(), ApiError> {
        let url: url::Url = response_url.parse().map_err(|_| ApiError::Refused {
            method: "response_url",
            code: "not a URL".into(),
        })?;
        let request = SlackApiPostWebhookMessageRequest::new(message_content(text, blocks)?)
            .with_replace_original(false);
        self.call(
            "response_url",
            self.client
                .respond_to_event(&SlackResponseUrl::new(url), &request),
        )
        .await
        .map(|_| ())
    }
}

/// Slack user groups for runbook roles: a group that cannot be checked counts as not a
/// member (and is logged).
#[async_trait::async_trait]
impl crate::app::runbook::Directory for SlackApi {
    async fn groups_of(&self, user: &crate::core::UserRef, groups: &[String]) -> Vec<String> {
        let mut member_of = Vec::new();
        for group in groups.iter().filter(|g| g.starts_with('S')) {
            match tokio::time::timeout(Duration::from_secs(2), self.group_members(group)).await {
                Ok(Ok(members)) if members.iter().any(|m| m == user.as_str()) => {
                    member_of.push(group.clone())
                }
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::warn!(%error, group, "cannot check a user group"),
                Err(_) => tracing::warn!(group, "user group check timed out"),
            }
        }
        member_of
    }
}

/// Text and blocks as slack-morphism's message content: the blocks go through its Block Kit
/// types, so a block it does not know is caught here rather than by Slack.
fn message_content(
    text: &str,
    blocks: &[serde_json::Value],
) -> Result<SlackMessageContent, ApiError> {
    let blocks: Vec<SlackBlock> = serde_json::from_value(serde_json::Value::Array(blocks.to_vec()))
        .map_err(|e| ApiError::Refused {
            method: "blocks",
            code: format!("invalid Block Kit: {e}"),
        })?;
    Ok(SlackMessageContent::new()
        .with_text(text.to_string())
        .with_blocks(blocks))
}
