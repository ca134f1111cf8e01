//! Self-tests of the fake Slack (`support::slack`).
//!
//! Requests are built by slack-morphism's own API methods and answers are decoded with its
//! response types. slack-morphism's hyper connector cannot be named here (hyper-util and
//! hyper-rustls are not direct dependencies, and `SlackClientHyperConnector::new()` is
//! HTTPS-only), so `ReqwestConnector` stands in for it: it sends what
//! `SlackClientHyperConnector` sends (`{api_url}/{method}`; GET with the parameters in the
//! query string; POST with the request serialized as JSON, `content-type:
//! application/json; charset=utf-8`; `authorization: Bearer {token}`) and maps answers the
//! same way (200 JSON with `error` → `ApiError`, 429 → `RateLimitError` with `Retry-After`,
//! other statuses → `HttpError`). Raw reqwest tests cover the wire behaviour beyond that.

use crate::support::slack::{BOT_TOKEN, BOT_USER, FakeSlack, Fault};
use futures_util::future::{BoxFuture, FutureExt};
use serde_json::{Value, json};
use slack_morphism::errors::{
    SlackClientApiError, SlackClientError, SlackClientHttpError, SlackClientHttpProtocolError,
    SlackClientSystemError, SlackRateLimitError, map_serde_error,
};
use slack_morphism::multipart_form::FileMultipartData;
use slack_morphism::prelude::*;
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// A slack-morphism connector over reqwest

#[derive(Clone, Debug)]
pub struct ReqwestConnector {
    http: reqwest::Client,
    api_url: String,
}

impl ReqwestConnector {
    pub fn new(api_url: &str) -> ReqwestConnector {
        ReqwestConnector {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            api_url: api_url.to_string(),
        }
    }

    async fn send<RS>(
        &self,
        request: reqwest::RequestBuilder,
        token: Option<&SlackApiToken>,
    ) -> ClientResult<RS>
    where
        RS: for<'de> serde::de::Deserialize<'de>,
    {
        let mut request = request.header("accept-charset", "utf-8");
        if let Some(token) = token {
            request = request.header(
                "authorization",
                format!("Bearer {}", token.token_value.value()),
            );
        }
        let protocol_error = |e: reqwest::Error| {
            SlackClientError::HttpProtocolError(
                SlackClientHttpProtocolError::new().with_cause(Box::new(e)),
            )
        };
        let response = request.send().await.map_err(protocol_error)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse().ok())
            .map(Duration::from_secs);
        // As slack-morphism: no content type counts as JSON.
        let is_json = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|ct| {
                ct.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("application/json")
            });
        let body = response.text().await.map_err(protocol_error)?;
        match status.as_u16() {
            200 if is_json => {
                let envelope: SlackEnvelopeMessage =
                    serde_json::from_str(&body).map_err(|e| map_serde_error(e, Some(&body)))?;
                match envelope.error.clone() {
                    None => {
                        serde_json::from_str(&body).map_err(|e| map_serde_error(e, Some(&body)))
                    }
                    Some(code) => Err(SlackClientError::ApiError(
                        SlackClientApiError::new(code)
                            .opt_errors(envelope.errors_as_strings())
                            .opt_warnings(envelope.warnings)
                            .with_http_response_body(body),
                    )),
                }
            }
            200 | 204 => serde_json::from_str("{}").map_err(|e| map_serde_error(e, Some("{}"))),
            429 => {
                let code = if is_json {
                    serde_json::from_str::<SlackEnvelopeMessage>(&body)
                        .map_err(|e| map_serde_error(e, Some(&body)))?
                        .error
                } else {
                    None
                };
                Err(SlackClientError::RateLimitError(
                    SlackRateLimitError::new()
                        .opt_retry_after(retry_after)
                        .opt_code(code)
                        .with_http_response_body(body),
                ))
            }
            _ => Err(SlackClientError::HttpError(
                SlackClientHttpError::new(status).with_http_response_body(body),
            )),
        }
    }
}

fn unsupported() -> SlackClientError {
    SlackClientError::SystemError(
        SlackClientSystemError::new().with_message("not supported by ReqwestConnector".into()),
    )
}

impl SlackClientHttpConnector for ReqwestConnector {
    fn http_get_uri<'a, RS>(
        &'a self,
        full_uri: reqwest::Url,
        context: SlackClientApiCallContext<'a>,
    ) -> BoxFuture<'a, ClientResult<RS>>
    where
        RS: for<'de> serde::de::Deserialize<'de> + Send + 'a,
    {
        async move { self.send(self.http.get(full_uri), context.token).await }.boxed()
    }

    fn http_get_with_client_secret<'a, RS>(
        &'a self,
        _full_uri: reqwest::Url,
        _client_id: &'a SlackClientId,
        _client_secret: &'a SlackClientSecret,
    ) -> BoxFuture<'a, ClientResult<RS>>
    where
        RS: for<'de> serde::de::Deserialize<'de> + Send + 'a,
    {
        std::future::ready(Err(unsupported())).boxed()
    }

    fn http_post_uri<'a, RQ, RS>(
        &'a self,
        full_uri: reqwest::Url,
        request_body: &'a RQ,
        context: SlackClientApiCallContext<'a>,
    ) -> BoxFuture<'a, ClientResult<RS>>
    where
        RQ: serde::ser::Serialize + Send + Sync,
        RS: for<'de> serde::de::Deserialize<'de> + Send + 'a,
    {
        let body = serde_json::to_string(request_body);
        async move {
            let body = body.map_err(|e| map_serde_error(e, None))?;
            let request = self
                .http
                .post(full_uri)
                .header("content-type", "application/json; charset=utf-8")
                .body(body);
            self.send(request, context.token).await
        }
        .boxed()
    }

    fn http_post_uri_multipart_form<'a, 'p, RS, PT, TS>(
        &'a self,
        _full_uri: reqwest::Url,
        _file: Option<FileMultipartData<'p>>,
        _params: &'p PT,
        _context: SlackClientApiCallContext<'a>,
    ) -> BoxFuture<'a, ClientResult<RS>>
    where
        RS: for<'de> serde::de::Deserialize<'de> + Send + 'a,
        PT: std::iter::IntoIterator<Item = (&'p str, Option<TS>)> + Clone,
        TS: AsRef<str> + 'p + Send,
    {
        std::future::ready(Err(unsupported())).boxed()
    }

    fn http_post_uri_binary<'a, 'p, RS>(
        &'a self,
        _full_uri: reqwest::Url,
        _content_type: String,
        _data: &'a [u8],
        _context: SlackClientApiCallContext<'a>,
    ) -> BoxFuture<'a, ClientResult<RS>>
    where
        RS: for<'de> serde::de::Deserialize<'de> + Send + 'a,
    {
        std::future::ready(Err(unsupported())).boxed()
    }

    fn create_method_uri_path(&self, method_relative_uri: &str) -> ClientResult<reqwest::Url> {
        // Exactly as SlackClientHyperConnector: `{api_url}/{method}`.
        Ok(format!("{}/{}", self.api_url, method_relative_uri).parse()?)
    }
}

// ---------------------------------------------------------------------------------------
// Helpers

fn client(fake: &FakeSlack) -> SlackClient<ReqwestConnector> {
    SlackClient::new(ReqwestConnector::new(&fake.api_url()))
}

fn token() -> SlackApiToken {
    SlackApiToken::new(BOT_TOKEN.to_string().into())
}

fn api_error<T: std::fmt::Debug>(result: ClientResult<T>) -> String {
    match result {
        Err(SlackClientError::ApiError(e)) => e.code,
        other => panic!("expected a Slack API error, got {other:?}"),
    }
}

fn channel(id: &str) -> SlackChannelId {
    SlackChannelId(id.to_string())
}

fn user(id: &str) -> SlackUserId {
    SlackUserId(id.to_string())
}

fn text(text: &str) -> SlackMessageContent {
    SlackMessageContent::new().with_text(text.to_string())
}

fn form(fields: &[(&str, &str)]) -> String {
    fn encode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// POST a raw request to a method; returns (status, content type, body).
async fn raw_post(
    url: &str,
    auth: Option<&str>,
    content_type: &str,
    body: String,
) -> (u16, String, String) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .body(body);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let ct = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, response.text().await.unwrap())
}

fn bearer() -> String {
    format!("Bearer {BOT_TOKEN}")
}

// ---------------------------------------------------------------------------------------
// slack-morphism against the fake

#[tokio::test]
async fn auth_test_answers_as_the_bot() {
    let fake = FakeSlack::start().await;
    let client = client(&fake);
    let token = token();
    let session = client.open_session(&token);
    let me = session.auth_test().await.unwrap();
    assert_eq!(me.user_id, user(BOT_USER));
    assert_eq!(me.team_id.0, "T0TEST");
    assert_eq!(me.bot_id.unwrap().0, "B0TEST");
    assert_eq!(me.user.as_deref(), Some("warroom"));
    // A GET without parameters.
    assert_eq!(fake.calls_to("auth.test"), vec![json!({})]);
}

#[tokio::test]
async fn channels_are_created_validated_invited_and_given_topics() {
    let fake = FakeSlack::start().await;
    let client = client(&fake);
    let token = token();
    let session = client.open_session(&token);

    let created = session
        .conversations_create(&SlackApiConversationsCreateRequest::new(
            "inc-42-db-down".into(),
        ))
        .await
        .unwrap();
    let id = created.channel.id.0.clone();
    assert_eq!(id, "C0000001");
    assert_eq!(created.channel.name.as_deref(), Some("inc-42-db-down"));
    assert_eq!(created.channel.creator, Some(user(BOT_USER)));
    assert_eq!(created.channel.flags.is_member, Some(true));
    assert_eq!(created.channel.flags.is_private, Some(false));
    assert_eq!(
        fake.calls_to("conversations.create"),
        vec![json!({ "name": "inc-42-db-down" })]
    );
    let stored = fake.channel_named("inc-42-db-down").unwrap();
    assert_eq!(stored.id, id);
    assert_eq!(stored.creator, BOT_USER);
    assert_eq!(stored.members, vec![BOT_USER.to_string()]);

    let private = session
        .conversations_create(
            &SlackApiConversationsCreateRequest::new("inc-43".into()).with_is_private(true),
        )
        .await
        .unwrap();
    assert_eq!(private.channel.id.0, "C0000002");
    assert!(fake.channel_named("inc-43").unwrap().is_private);

    for (name, code) in [
        ("inc-42-db-down", "name_taken"),
        ("", "invalid_name_required"),
        ("Inc-44", "invalid_name_specials"),
        ("inc 44", "invalid_name_specials"),
        ("inc.44", "invalid_name_specials"),
        ("---", "invalid_name_punctuation"),
    ] {
        let result = session
            .conversations_create(&SlackApiConversationsCreateRequest::new(name.into()))
            .await;
        assert_eq!(api_error(result), code, "{name:?}");
    }
    let long = "a".repeat(81);
    let result = session
        .conversations_create(&SlackApiConversationsCreateRequest::new(long))
        .await;
    assert_eq!(api_error(result), "invalid_name_maxlength");
    assert!(
        session
            .conversations_create(&SlackApiConversationsCreateRequest::new("a".repeat(80)))
            .await
            .is_ok()
    );

    // conversations.invite: slack-morphism sends `users` as a JSON array.
    let invited = session
        .conversations_invite(&SlackApiConversationsInviteRequest::new(
            channel(&id),
            vec![user("U1ALICE"), user("W2BOB")],
        ))
        .await
        .unwrap();
    assert_eq!(invited.channel.id.0, id);
    assert_eq!(invited.channel.num_members, Some(3));
    assert_eq!(
        fake.calls_to("conversations.invite")[0],
        json!({ "channel": id, "users": ["U1ALICE", "W2BOB"] })
    );
    assert_eq!(
        fake.channel_named("inc-42-db-down").unwrap().members,
        vec![BOT_USER, "U1ALICE", "W2BOB"]
    );
    let again = session
        .conversations_invite(&SlackApiConversationsInviteRequest::new(
            channel(&id),
            vec![user("U1ALICE"), user("W2BOB")],
        ))
        .await;
    assert_eq!(api_error(again), "already_in_channel");
    // Some new: fine.
    session
        .conversations_invite(&SlackApiConversationsInviteRequest::new(
            channel(&id),
            vec![user("U1ALICE"), user("U3CAROL")],
        ))
        .await
        .unwrap();
    assert_eq!(
        fake.channel_named("inc-42-db-down").unwrap().members.len(),
        4
    );
    for (channel_id, users, code) in [
        (id.as_str(), vec!["S0GROUP"], "user_not_found"),
        (id.as_str(), vec!["U4DAN", "bob"], "user_not_found"),
        (id.as_str(), vec![], "no_user"),
        (id.as_str(), vec![BOT_USER], "cant_invite_self"),
        ("C9999999", vec!["U4DAN"], "channel_not_found"),
        ("inc-42-db-down", vec!["U4DAN"], "channel_not_found"),
    ] {
        let result = session
            .conversations_invite(&SlackApiConversationsInviteRequest::new(
                channel(channel_id),
                users.iter().map(|u| user(u)).collect(),
            ))
            .await;
        assert_eq!(api_error(result), code, "{channel_id} {users:?}");
    }
    assert_eq!(
        fake.channel_named("inc-42-db-down").unwrap().members.len(),
        4
    );

    let topic = session
        .conversations_set_topic(&SlackApiConversationsSetTopicRequest::new(
            channel(&id),
            "SEV1 | IC: alice".into(),
        ))
        .await
        .unwrap();
    assert_eq!(topic.topic.as_deref(), Some("SEV1 | IC: alice"));
    assert_eq!(
        fake.channel_named("inc-42-db-down").unwrap().topic,
        "SEV1 | IC: alice"
    );
    let too_long = session
        .conversations_set_topic(&SlackApiConversationsSetTopicRequest::new(
            channel(&id),
            "x".repeat(251),
        ))
        .await;
    assert_eq!(api_error(too_long), "too_long");
    session
        .conversations_set_topic(&SlackApiConversationsSetTopicRequest::new(
            channel(&id),
            "é".repeat(250),
        ))
        .await
        .unwrap();
    let missing = session
        .conversations_set_topic(&SlackApiConversationsSetTopicRequest::new(
            channel("C9999999"),
            "t".into(),
        ))
        .await;
    assert_eq!(api_error(missing), "channel_not_found");

    // Info, through a GET with the channel in the query string.
    let info = session
        .conversations_info(&SlackApiConversationsInfoRequest::new(channel(&id)))
        .await
        .unwrap();
    assert_eq!(info.channel.topic.unwrap().value, "é".repeat(250));
    assert_eq!(
        fake.calls_to("conversations.info"),
        vec![json!({ "channel": id })]
    );
}

#[tokio::test]
async fn conversations_list_paginates_and_filters() {
    let fake = FakeSlack::start().await;
    let client = client(&fake);
    let token = token();
    let session = client.open_session(&token);
    for i in 1..=5 {
        fake.add_channel(&format!("general-{i}"), "U0ADMIN");
    }
    let archived = fake.add_channel("old-incident", BOT_USER);
    fake.archive_channel(&archived);
    session
        .conversations_create(
            &SlackApiConversationsCreateRequest::new("secret".into()).with_is_private(true),
        )
        .await
        .unwrap();
    let last = fake.add_channel("not-ours", "U0ADMIN");
    assert_eq!(last, "C0000008");

    let mut names = vec![];
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = session
            .conversations_list(
                &SlackApiConversationsListRequest::new()
                    .with_limit(2)
                    .with_exclude_archived(true)
                    .with_types(vec![SlackConversationType::Public])
                    .opt_cursor(cursor.clone()),
            )
            .await
            .unwrap();
        pages += 1;
        assert!(page.channels.len() <= 2);
        names.extend(page.channels.iter().map(|c| c.name.clone().unwrap()));
        cursor = page.response_metadata.and_then(|m| m.next_cursor);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        names,
        [
            "general-1",
            "general-2",
            "general-3",
            "general-4",
            "general-5",
            "not-ours"
        ]
    );
    // A GET: every parameter a string in the query.
    let first = &fake.calls_to("conversations.list")[0];
    assert_eq!(
        first,
        &json!({ "limit": "2", "exclude_archived": "true", "types": "public_channel" })
    );
    assert!(
        fake.calls_to("conversations.list")[1]["cursor"]
            .as_str()
            .unwrap()
            .len()
            > 1
    );

    // Archived channels are listed unless excluded; private ones only for members.
    let all = session
        .conversations_list(&SlackApiConversationsListRequest::new().with_types(vec![
            SlackConversationType::Public,
            SlackConversationType::Private,
        ]))
        .await
        .unwrap();
    let names: Vec<_> = all
        .channels
        .iter()
        .map(|c| c.name.clone().unwrap())
        .collect();
    assert_eq!(names.len(), 8, "{names:?}");
    assert!(names.contains(&"old-incident".to_string()));
    assert!(names.contains(&"secret".to_string()));
    let old = all
        .channels
        .iter()
        .find(|c| c.name.as_deref() == Some("old-incident"))
        .unwrap();
    assert_eq!(old.flags.is_archived, Some(true));
    assert_eq!(old.flags.is_member, Some(true));
    let general = &all.channels[0];
    assert_eq!(general.flags.is_member, Some(false));
    assert_eq!(general.creator, Some(user("U0ADMIN")));
    assert_eq!(all.response_metadata.unwrap().next_cursor, None);

    let private = session
        .conversations_list(
            &SlackApiConversationsListRequest::new()
                .with_types(vec![SlackConversationType::Private]),
        )
        .await
        .unwrap();
    assert_eq!(private.channels.len(), 1);
    assert_eq!(private.channels[0].flags.is_private, Some(true));

    // The default is public channels only, archived included.
    let default = session
        .conversations_list(&SlackApiConversationsListRequest::new())
        .await
        .unwrap();
    assert_eq!(default.channels.len(), 7);

    let bad = session
        .conversations_list(
            &SlackApiConversationsListRequest::new().with_cursor(SlackCursorId("junk".into())),
        )
        .await;
    assert_eq!(api_error(bad), "invalid_cursor");
}

#[tokio::test]
async fn messages_are_posted_updated_pinned_and_ephemeral() {
    let fake = FakeSlack::start().await;
    let client = client(&fake);
    let token = token();
    let session = client.open_session(&token);
    let id = fake.add_channel("inc-7", BOT_USER);

    let blocks: Vec<SlackBlock> = slack_blocks![
        SlackHeaderBlock::new(pt!("INC-7: database down")),
        SlackSectionBlock::new().with_text(md!("*Severity:* SEV1")),
        SlackDividerBlock::new(),
    ];
    let posted = session
        .chat_post_message(&SlackApiChatPostMessageRequest::new(
            channel(&id),
            text("INC-7: database down").with_blocks(blocks.clone()),
        ))
        .await
        .unwrap();
    assert_eq!(posted.channel.0, id);
    assert_eq!(posted.ts.0, "1700000000.000100");
    assert_eq!(
        posted.message.content.text.as_deref(),
        Some("INC-7: database down")
    );
    assert_eq!(posted.message.content.blocks.as_ref(), Some(&blocks));
    assert_eq!(posted.message.sender.user, Some(user(BOT_USER)));
    assert_eq!(posted.message.sender.bot_id.as_ref().unwrap().0, "B0TEST");
    // The body is JSON; blocks a JSON array.
    let sent = &fake.calls_to("chat.postMessage")[0];
    assert_eq!(sent["channel"], json!(id));
    assert_eq!(sent["text"], json!("INC-7: database down"));
    assert_eq!(sent["blocks"], serde_json::to_value(&blocks).unwrap());
    assert_eq!(sent["blocks"][0]["type"], json!("header"));

    // By name, with or without '#'; in a thread.
    let by_name = session
        .chat_post_message(&SlackApiChatPostMessageRequest::new(
            channel("#inc-7"),
            text("second"),
        ))
        .await
        .unwrap();
    assert_eq!(by_name.channel.0, id);
    assert_eq!(by_name.ts.0, "1700000000.000200");
    let reply = session
        .chat_post_message(
            &SlackApiChatPostMessageRequest::new(channel("inc-7"), text("in thread"))
                .with_thread_ts(posted.ts.clone()),
        )
        .await
        .unwrap();
    assert_eq!(reply.message.origin.thread_ts, Some(posted.ts.clone()));
    assert!(reply.ts.0 > by_name.ts.0);

    for (target, content, code) in [
        ("#nope", text("x"), "channel_not_found"),
        ("C9999999", text("x"), "channel_not_found"),
        (id.as_str(), SlackMessageContent::new(), "no_text"),
        (id.as_str(), text(""), "no_text"),
        (id.as_str(), text(&"x".repeat(40_001)), "msg_too_long"),
    ] {
        let result = session
            .chat_post_message(&SlackApiChatPostMessageRequest::new(
                channel(target),
                content,
            ))
            .await;
        assert_eq!(api_error(result), code, "{target}");
    }

    let messages = fake.messages(&id);
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0].text.as_deref(), Some("INC-7: database down"));
    assert_eq!(messages[0].blocks, serde_json::to_value(&blocks).unwrap());
    assert_eq!(messages[1].blocks, Value::Null);
    assert_eq!(messages[1].thread_ts, None);
    assert_eq!(messages[2].thread_ts.as_deref(), Some("1700000000.000100"));
    assert!(messages.iter().all(|m| m.edits == 0 && m.channel == id));

    // chat.update: text replaced, blocks kept unless given.
    let updated = session
        .chat_update(&SlackApiChatUpdateRequest::new(
            channel(&id),
            text("INC-7: resolved"),
            posted.ts.clone(),
        ))
        .await
        .unwrap();
    assert_eq!(updated.ts, posted.ts);
    assert_eq!(
        updated.message.content.text.as_deref(),
        Some("INC-7: resolved")
    );
    assert!(updated.message.edited.is_some());
    let new_blocks: Vec<SlackBlock> =
        slack_blocks![SlackSectionBlock::new().with_text(md!("resolved"))];
    session
        .chat_update(&SlackApiChatUpdateRequest::new(
            channel(&id),
            SlackMessageContent::new().with_blocks(new_blocks.clone()),
            posted.ts.clone(),
        ))
        .await
        .unwrap();
    let first = &fake.messages(&id)[0];
    assert_eq!(first.edits, 2);
    assert_eq!(first.text.as_deref(), Some("INC-7: resolved"));
    assert_eq!(first.blocks, serde_json::to_value(&new_blocks).unwrap());

    let not_found = session
        .chat_update(&SlackApiChatUpdateRequest::new(
            channel(&id),
            text("x"),
            SlackTs("1.000001".into()),
        ))
        .await;
    assert_eq!(api_error(not_found), "message_not_found");
    let someone_elses = fake.add_message(&id, "U1ALICE", "I'm on it");
    let cant = session
        .chat_update(&SlackApiChatUpdateRequest::new(
            channel(&id),
            text("x"),
            SlackTs(someone_elses.clone()),
        ))
        .await;
    assert_eq!(api_error(cant), "cant_update_message");
    assert_eq!(
        fake.messages(&id).len(),
        3,
        "others' messages are not listed"
    );

    // Ephemeral.
    session
        .chat_post_ephemeral(&SlackApiChatPostEphemeralRequest::new(
            channel(&id),
            user("U1ALICE"),
            text("only you"),
        ))
        .await
        .unwrap();
    let ephemerals = fake.ephemerals();
    assert_eq!(ephemerals.len(), 1);
    assert_eq!(
        ephemerals[0],
        json!({ "channel": id, "user": "U1ALICE", "text": "only you" })
    );
    let bad_user = session
        .chat_post_ephemeral(&SlackApiChatPostEphemeralRequest::new(
            channel(&id),
            user("alice"),
            text("x"),
        ))
        .await;
    assert_eq!(api_error(bad_user), "user_not_found");
    assert_eq!(fake.ephemerals().len(), 1);

    // Pins.
    session
        .pins_add(&SlackApiPinsAddRequest::new(
            channel(&id),
            posted.ts.clone(),
        ))
        .await
        .unwrap();
    assert_eq!(
        fake.calls_to("pins.add")[0],
        json!({ "channel": id, "timestamp": posted.ts.0 })
    );
    session
        .pins_add(&SlackApiPinsAddRequest::new(
            channel(&id),
            SlackTs(someone_elses.clone()),
        ))
        .await
        .unwrap();
    let again = session
        .pins_add(&SlackApiPinsAddRequest::new(
            channel(&id),
            posted.ts.clone(),
        ))
        .await;
    assert_eq!(api_error(again), "already_pinned");
    let missing = session
        .pins_add(&SlackApiPinsAddRequest::new(
            channel(&id),
            SlackTs("1.000001".into()),
        ))
        .await;
    assert_eq!(api_error(missing), "message_not_found");
    let wrong_channel = session
        .pins_add(&SlackApiPinsAddRequest::new(
            channel("C9999999"),
            posted.ts.clone(),
        ))
        .await;
    assert_eq!(api_error(wrong_channel), "channel_not_found");
    assert_eq!(fake.pins(&id), vec![posted.ts.0.clone(), someone_elses]);
}

#[tokio::test]
async fn usergroup_members_are_listed() {
    let fake = FakeSlack::start().await;
    let client = client(&fake);
    let token = token();
    let session = client.open_session(&token);
    fake.set_usergroup("S0ONCALL", &["U1ALICE", "U2BOB"]);
    let users = session
        .usergroups_users_list(&SlackApiUserGroupsUsersListRequest::new(SlackUserGroupId(
            "S0ONCALL".into(),
        )))
        .await
        .unwrap();
    assert_eq!(users.users, vec![user("U1ALICE"), user("U2BOB")]);
    assert_eq!(
        fake.calls_to("usergroups.users.list"),
        vec![json!({ "usergroup": "S0ONCALL" })]
    );
    let missing = session
        .usergroups_users_list(&SlackApiUserGroupsUsersListRequest::new(SlackUserGroupId(
            "S0NOPE".into(),
        )))
        .await;
    assert_eq!(api_error(missing), "no_such_subteam");
}

#[tokio::test]
async fn faults_are_queued_per_method_and_recorded() {
    let fake = FakeSlack::start().await;
    let client = client(&fake);
    let token = token();
    let session = client.open_session(&token);
    let id = fake.add_channel("inc-9", BOT_USER);
    fake.fail_next(
        "chat.postMessage",
        Fault::RateLimited {
            retry_after_secs: 7,
        },
    );
    fake.fail_next("chat.postMessage", Fault::ServerError);
    fake.fail_next("chat.postMessage", Fault::SlackError("fatal_error".into()));
    fake.fail_next("pins.add", Fault::ServerError);
    let request = SlackApiChatPostMessageRequest::new(channel(&id), text("hello"));
    let post = || session.chat_post_message(&request);

    match post().await {
        Err(SlackClientError::RateLimitError(e)) => {
            assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
            assert_eq!(e.code.as_deref(), Some("ratelimited"));
        }
        other => panic!("expected a rate limit, got {other:?}"),
    }
    match post().await {
        Err(SlackClientError::HttpError(e)) => {
            assert_eq!(e.status_code.as_u16(), 500);
        }
        other => panic!("expected an HTTP error, got {other:?}"),
    }
    assert_eq!(api_error(post().await), "fatal_error");
    // Other methods' faults do not apply; the queue is spent.
    session.auth_test().await.unwrap();
    post().await.unwrap();
    assert_eq!(fake.messages(&id).len(), 1);
    let methods: Vec<_> = fake.calls().into_iter().map(|c| c.method).collect();
    assert_eq!(
        methods,
        [
            "chat.postMessage",
            "chat.postMessage",
            "chat.postMessage",
            "auth.test",
            "chat.postMessage"
        ]
    );
    assert!(
        fake.calls_to("chat.postMessage")
            .iter()
            .all(|b| b["text"] == "hello")
    );

    // Hangs.
    fake.fail_next("auth.test", Fault::Hang);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), session.auth_test())
            .await
            .is_err()
    );
    session.auth_test().await.unwrap();
    fake.hang_everything(true);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), post())
            .await
            .is_err()
    );
    fake.hang_everything(false);
    post().await.unwrap();
    assert_eq!(fake.messages(&id).len(), 2);
}

#[tokio::test]
async fn response_urls_take_five_posts() {
    let fake = FakeSlack::start().await;
    let client = client(&fake);
    let url = SlackResponseUrl(fake.response_url("cmd-1").parse().unwrap());
    for i in 0..5 {
        client
            .respond_to_event(
                &url,
                &SlackApiPostWebhookMessageRequest::new(text(&format!("reply {i}")))
                    .with_replace_original(i > 0),
            )
            .await
            .unwrap();
    }
    match client
        .respond_to_event(&url, &SlackApiPostWebhookMessageRequest::new(text("sixth")))
        .await
    {
        Err(SlackClientError::HttpError(e)) => {
            assert_eq!(e.status_code.as_u16(), 404);
            assert_eq!(e.http_response_body.as_deref(), Some("used_url"));
        }
        other => panic!("expected 404 used_url, got {other:?}"),
    }
    let responses = fake.responses("cmd-1");
    assert_eq!(responses.len(), 5);
    assert_eq!(
        responses[0],
        json!({ "text": "reply 0", "replace_original": false })
    );
    assert_eq!(responses[4]["text"], "reply 4");
    assert!(fake.responses("cmd-2").is_empty());
    // Not Web API calls.
    assert!(fake.calls().is_empty());
}

// ---------------------------------------------------------------------------------------
// The wire, directly

#[tokio::test]
async fn auth_unknown_methods_and_paths() {
    let fake = FakeSlack::start().await;
    let single = format!("{}/auth.test", fake.api_url());
    let double = format!("{}//auth.test", fake.api_url());
    for url in [&single, &double] {
        let (status, ct, body) =
            raw_post(url, Some(&bearer()), "application/json", "{}".into()).await;
        assert_eq!(status, 200);
        assert_eq!(ct, "application/json");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["ok"], true);
        assert_eq!(body["user_id"], BOT_USER);
    }
    for auth in [None, Some("Bearer xoxb-wrong"), Some(BOT_TOKEN)] {
        let (status, ct, body) = raw_post(&single, auth, "application/json", "{}".into()).await;
        assert_eq!((status, ct.as_str()), (200, "application/json"));
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            json!({ "ok": false, "error": "invalid_auth" })
        );
    }
    let (status, _, body) = raw_post(
        &format!("{}/chat.meMessage", fake.api_url()),
        Some(&bearer()),
        "application/json",
        "{}".into(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({ "ok": false, "error": "unknown_method" })
    );
    let methods: Vec<_> = fake.calls().into_iter().map(|c| c.method).collect();
    assert_eq!(
        methods,
        [
            "auth.test",
            "auth.test",
            "auth.test",
            "auth.test",
            "auth.test",
            "chat.meMessage"
        ]
    );

    // Raw faults.
    fake.fail_next(
        "auth.test",
        Fault::RateLimited {
            retry_after_secs: 3,
        },
    );
    fake.fail_next("auth.test", Fault::ServerError);
    let response = reqwest::Client::new()
        .get(&single)
        .header("authorization", bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(response.headers()["retry-after"], "3");
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "ok": false, "error": "ratelimited" })
    );
    let response = reqwest::Client::new()
        .get(&single)
        .header("authorization", bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 500);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
}

#[tokio::test]
async fn form_bodies_and_blocks_as_strings() {
    let fake = FakeSlack::start().await;
    let id = fake.add_channel("inc-5", BOT_USER);
    let url = |method: &str| format!("{}/{method}", fake.api_url());
    let form_type = "application/x-www-form-urlencoded";

    let (_, _, body) = raw_post(
        &url("chat.postMessage"),
        Some(&bearer()),
        form_type,
        form(&[
            ("channel", "#inc-5"),
            ("text", "a & b = c?"),
            ("blocks", r#"[{"type":"divider"}]"#),
        ]),
    )
    .await;
    let answer: SlackApiChatPostMessageResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(answer.channel.0, id);
    assert_eq!(
        fake.calls_to("chat.postMessage")[0],
        json!({ "channel": "#inc-5", "text": "a & b = c?", "blocks": r#"[{"type":"divider"}]"# })
    );
    // JSON body with the blocks as a JSON-encoded string.
    let (_, _, body) = raw_post(
        &url("chat.postMessage"),
        Some(&bearer()),
        "application/json; charset=utf-8",
        json!({ "channel": id, "blocks": r#"[{"type":"section","text":{"type":"mrkdwn","text":"hi"}}]"# })
            .to_string(),
    )
    .await;
    let answer: SlackApiChatPostMessageResponse = serde_json::from_str(&body).unwrap();
    assert!(answer.message.content.blocks.is_some());
    let messages = fake.messages(&id);
    assert_eq!(messages[0].text.as_deref(), Some("a & b = c?"));
    assert_eq!(messages[0].blocks, json!([{ "type": "divider" }]));
    assert_eq!(messages[1].text, None);
    assert_eq!(messages[1].blocks[0]["text"]["text"], "hi");

    for blocks in [
        "not json",
        r#"{"type":"divider"}"#,
        r#"[{"text":"no type"}]"#,
    ] {
        let (_, _, body) = raw_post(
            &url("chat.postMessage"),
            Some(&bearer()),
            form_type,
            form(&[("channel", &id), ("blocks", blocks)]),
        )
        .await;
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["error"],
            "invalid_blocks",
            "{blocks}"
        );
    }

    // Comma-separated users, as Slack documents them.
    let (_, _, body) = raw_post(
        &url("conversations.invite"),
        Some(&bearer()),
        form_type,
        form(&[("channel", &id), ("users", "U1ALICE,U2BOB")]),
    )
    .await;
    let answer: SlackApiConversationsInviteResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(answer.channel.num_members, Some(3));
    assert_eq!(
        fake.channel_named("inc-5").unwrap().members,
        vec![BOT_USER, "U1ALICE", "U2BOB"]
    );

    // GET with a query string.
    let response = reqwest::Client::new()
        .get(url("conversations.list"))
        .query(&[("limit", "1"), ("types", "public_channel,private_channel")])
        .header("authorization", bearer())
        .send()
        .await
        .unwrap();
    let answer: SlackApiConversationsListResponse = response.json().await.unwrap();
    assert_eq!(answer.channels.len(), 1);
    assert_eq!(answer.response_metadata.unwrap().next_cursor, None);
    let answer: Value = reqwest::Client::new()
        .get(url("conversations.list"))
        .header("authorization", bearer())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["response_metadata"]["next_cursor"], "");

    // Ephemeral answers carry message_ts.
    let (_, _, body) = raw_post(
        &url("chat.postEphemeral"),
        Some(&bearer()),
        form_type,
        form(&[("channel", &id), ("user", "U1ALICE"), ("text", "psst")]),
    )
    .await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["ok"], true);
    assert!(
        body["message_ts"]
            .as_str()
            .unwrap()
            .starts_with("1700000000.")
    );
}
