//! Self-tests of the fake Discord (`support::discord`).
//!
//! Requests are made by serenity's own `Http` (built as warroom builds it: the fake as the
//! proxy, serenity's rate limiter off, our application id) and answers are decoded by its
//! model types, so a field serenity needs and the fake leaves out fails here. Raw reqwest
//! tests cover the wire behaviour beyond that (authorization, rate limit headers).

use crate::support::discord::{
    self, APP_ID, BOT_TOKEN, BOT_USER_ID, CATEGORY, EPHEMERAL, FakeDiscord, Fault, GUILD_ID,
    INTERACTION_CHANNEL_ID, Overwrite, TEXT, route,
};
use serde_json::{Value, json};
use serenity::builder::{
    CreateActionRow, CreateAllowedMentions, CreateButton, CreateChannel, CreateCommand,
    CreateCommandOption, CreateEmbed, CreateInteractionResponseFollowup, CreateMessage,
    EditChannel, EditInteractionResponse, EditMessage,
};
use serenity::http::{ErrorResponse, Http, HttpBuilder, HttpError};
use serenity::model::prelude::*;
use std::time::{Duration, Instant};

fn http(fake: &FakeDiscord) -> Http {
    http_for(fake, APP_ID)
}

fn http_for(fake: &FakeDiscord, app_id: u64) -> Http {
    HttpBuilder::new(BOT_TOKEN)
        .proxy(fake.url())
        .ratelimiter_disabled(true)
        .application_id(ApplicationId::new(app_id))
        .build()
}

fn guild() -> GuildId {
    GuildId::new(GUILD_ID)
}

fn channel_id(id: &str) -> ChannelId {
    ChannelId::new(id.parse().unwrap())
}

/// The error response of a failed serenity request.
fn refused<T: std::fmt::Debug>(result: serenity::Result<T>) -> ErrorResponse {
    match result {
        Err(serenity::Error::Http(HttpError::UnsuccessfulRequest(response))) => response,
        other => panic!("expected an unsuccessful request, got {other:?}"),
    }
}

/// Status, Discord error code and the first error's dotted path of a failed request.
fn refusal<T: std::fmt::Debug>(result: serenity::Result<T>) -> (u16, isize, String) {
    let response = refused(result);
    let path = response
        .error
        .errors
        .first()
        .map(|e| e.path.clone())
        .unwrap_or_default();
    (response.status_code.as_u16(), response.error.code, path)
}

fn button(custom_id: &str, label: &str) -> CreateButton {
    CreateButton::new(custom_id).label(label)
}

// ---------------------------------------------------------------------------------------
// serenity against the fake

#[tokio::test]
async fn current_user_is_the_bot() {
    let fake = FakeDiscord::start().await;
    let me = http(&fake).get_current_user().await.unwrap();
    assert_eq!(me.id, UserId::new(BOT_USER_ID));
    assert_eq!(me.name, "warroom");
    assert!(me.bot);
    // "0000" reads as no discriminator.
    assert_eq!(me.discriminator, None);
    assert_eq!(me.global_name, None);
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "GET");
    assert_eq!(calls[0].path, "/users/@me");
    assert_eq!(calls[0].route, Some(route::GET_CURRENT_USER));
    assert!(calls[0].authorized);
}

#[tokio::test]
async fn channels_are_created_listed_and_edited() {
    let fake = FakeDiscord::start().await;
    let http = http(&fake);

    let category = guild()
        .create_channel(
            &http,
            CreateChannel::new("Incidents").kind(ChannelType::Category),
        )
        .await
        .unwrap();
    assert_eq!(category.kind, ChannelType::Category);
    // Category names are kept as given.
    assert_eq!(category.name, "Incidents");
    assert_eq!(category.guild_id, guild());

    let channel = guild()
        .create_channel(
            &http,
            CreateChannel::new("Inc 42 DB Down")
                .kind(ChannelType::Text)
                .category(category.id)
                .topic("SEV1 | IC: alice")
                .audit_log_reason("incident #42 opened"),
        )
        .await
        .unwrap();
    // Text channel names are lowercased, spaces become dashes.
    assert_eq!(channel.name, "inc-42-db-down");
    assert_eq!(channel.kind, ChannelType::Text);
    assert_eq!(channel.parent_id, Some(category.id));
    assert_eq!(channel.topic.as_deref(), Some("SEV1 | IC: alice"));
    assert!(channel.permission_overwrites.is_empty());
    let call = fake.calls().pop().unwrap();
    assert_eq!(call.route, Some(route::CREATE_GUILD_CHANNEL));
    assert_eq!(
        call.audit_log_reason.as_deref(),
        Some("incident #42 opened")
    );
    assert_eq!(call.body["name"], "Inc 42 DB Down");
    assert_eq!(call.body["type"], 0);
    assert_eq!(call.body["parent_id"], category.id.to_string());

    // Duplicate names are allowed; a pre-existing channel is listed too.
    let again = guild()
        .create_channel(&http, CreateChannel::new("inc-42-db-down"))
        .await
        .unwrap();
    assert_ne!(again.id, channel.id);
    let general = fake.add_channel(GUILD_ID, "General", None);

    let listed = guild().channels(&http).await.unwrap();
    assert_eq!(listed.len(), 4);
    assert_eq!(
        listed[&channel.id].topic.as_deref(),
        Some("SEV1 | IC: alice")
    );
    assert_eq!(listed[&category.id].kind, ChannelType::Category);
    assert_eq!(listed[&channel_id(&general)].name, "general");
    let stored: Vec<(String, u8, Option<String>)> = fake
        .channels(GUILD_ID)
        .into_iter()
        .map(|c| (c.name, c.kind, c.parent_id))
        .collect();
    assert_eq!(
        stored,
        [
            ("Incidents".to_string(), CATEGORY, None),
            ("inc-42-db-down".into(), TEXT, Some(category.id.to_string())),
            ("inc-42-db-down".into(), TEXT, None),
            ("general".into(), TEXT, None),
        ]
    );
    // Ids are increasing snowflakes whose time is now-ish.
    assert!(channel.id > category.id);
    assert!(channel.id.created_at().unix_timestamp() > 1_700_000_000);

    // Edits: topic, name, category.
    let edited = channel
        .id
        .edit(
            &http,
            EditChannel::new()
                .topic("SEV2 | IC: bob")
                .name("Inc 42 Resolved"),
        )
        .await
        .unwrap();
    assert_eq!(edited.topic.as_deref(), Some("SEV2 | IC: bob"));
    assert_eq!(edited.name, "inc-42-resolved");
    let moved = again
        .id
        .edit(&http, EditChannel::new().category(category.id))
        .await
        .unwrap();
    assert_eq!(moved.parent_id, Some(category.id));
    let out = again
        .id
        .edit(&http, EditChannel::new().category(None))
        .await
        .unwrap();
    assert_eq!(out.parent_id, None);
    let stored = fake.channel(channel.id).unwrap();
    assert_eq!(stored.topic.as_deref(), Some("SEV2 | IC: bob"));
    assert_eq!(stored.name, "inc-42-resolved");

    // A topic of 1024 characters (not bytes) is fine; 1025 is not.
    channel
        .id
        .edit(&http, EditChannel::new().topic("é".repeat(1024)))
        .await
        .unwrap();
    let result = channel
        .id
        .edit(&http, EditChannel::new().topic("x".repeat(1025)))
        .await;
    assert_eq!(refusal(result), (400, 50035, "topic".into()));
    let result = guild()
        .create_channel(&http, CreateChannel::new("long").topic("x".repeat(1025)))
        .await;
    assert_eq!(refusal(result), (400, 50035, "topic".into()));

    // Names: 1 to 100 characters.
    let result = guild().create_channel(&http, CreateChannel::new("")).await;
    assert_eq!(refusal(result), (400, 50035, "name".into()));
    let result = guild()
        .create_channel(&http, CreateChannel::new("n".repeat(101)))
        .await;
    assert_eq!(refusal(result), (400, 50035, "name".into()));
    guild()
        .create_channel(&http, CreateChannel::new("n".repeat(100)))
        .await
        .unwrap();

    // The parent must be a category of the guild.
    let result = guild()
        .create_channel(&http, CreateChannel::new("x").category(channel.id))
        .await;
    assert_eq!(refusal(result), (400, 50035, "parent_id".into()));
    let result = guild()
        .create_channel(&http, CreateChannel::new("x").category(ChannelId::new(42)))
        .await;
    assert_eq!(refusal(result), (400, 50035, "parent_id".into()));

    // Unknown guild and channel.
    let result = GuildId::new(42).channels(&http).await;
    let response = refused(result);
    assert_eq!(response.status_code.as_u16(), 404);
    assert_eq!(response.error.code, 10004);
    assert_eq!(response.error.message, "Unknown Guild");
    let result = ChannelId::new(42)
        .edit(&http, EditChannel::new().topic("t"))
        .await;
    let response = refused(result);
    assert_eq!(
        (response.status_code.as_u16(), response.error.code),
        (404, 10003)
    );
    assert_eq!(response.error.message, "Unknown Channel");

    // A single channel by id.
    let got = http.get_channel(channel.id).await.unwrap().guild().unwrap();
    assert_eq!(got.name, "inc-42-resolved");
    assert_eq!(got.parent_id, Some(category.id));
}

#[tokio::test]
async fn categories_hold_fifty_channels() {
    let fake = FakeDiscord::start().await;
    let http = http(&fake);
    let category = fake.add_category(GUILD_ID, "Incidents");
    for i in 0..50 {
        fake.add_channel(GUILD_ID, &format!("inc-{i}"), Some(&category));
    }
    let result = guild()
        .create_channel(
            &http,
            CreateChannel::new("inc-50").category(channel_id(&category)),
        )
        .await;
    let response = refused(result);
    assert_eq!(response.error.code, 50035);
    assert_eq!(
        response.error.errors[0].code, "CHANNEL_PARENT_MAX_CHANNELS",
        "{response:?}"
    );
    // Outside the category there is room.
    guild()
        .create_channel(&http, CreateChannel::new("inc-50"))
        .await
        .unwrap();
}

#[tokio::test]
async fn messages_are_sent_edited_and_pinned() {
    let fake = FakeDiscord::start().await;
    let http = http(&fake);
    let channel = channel_id(&fake.add_channel(GUILD_ID, "inc-7", None));

    let sent = channel
        .send_message(
            &http,
            CreateMessage::new()
                .content("Incident #7 opened by <@111111111111111111>")
                .components(vec![CreateActionRow::Buttons(vec![
                    button("ack:7", "Acknowledge"),
                    button("resolve:7", "Resolve").style(ButtonStyle::Danger),
                    CreateButton::new_link("https://runbooks.example/7").label("Runbook"),
                ])])
                .embed(CreateEmbed::new().title("DB down").description("p99 > 2s"))
                .allowed_mentions(
                    CreateAllowedMentions::new().users([UserId::new(111_111_111_111_111_111)]),
                ),
        )
        .await
        .unwrap();
    assert_eq!(sent.channel_id, channel);
    assert_eq!(sent.author.id, UserId::new(BOT_USER_ID));
    assert!(sent.author.bot);
    assert_eq!(sent.content, "Incident #7 opened by <@111111111111111111>");
    assert_eq!(sent.mentions.len(), 1);
    assert_eq!(sent.mentions[0].id, UserId::new(111_111_111_111_111_111));
    assert!(!sent.mention_everyone);
    assert_eq!(sent.kind, MessageType::Regular);
    assert_eq!(sent.edited_timestamp, None);
    assert_eq!(
        sent.timestamp.unix_timestamp(),
        sent.id.created_at().unix_timestamp()
    );
    assert_eq!(sent.components.len(), 1);
    assert_eq!(sent.components[0].components.len(), 3);
    match &sent.components[0].components[1] {
        ActionRowComponent::Button(b) => {
            assert_eq!(b.label.as_deref(), Some("Resolve"));
            assert_eq!(
                b.data,
                ButtonKind::NonLink {
                    custom_id: "resolve:7".into(),
                    style: ButtonStyle::Danger
                }
            );
        }
        other => panic!("expected a button, got {other:?}"),
    }
    assert_eq!(sent.embeds.len(), 1);
    assert_eq!(sent.embeds[0].title.as_deref(), Some("DB down"));
    assert_eq!(sent.embeds[0].kind.as_deref(), Some("rich"));

    let posted = fake.messages(channel);
    assert_eq!(posted.len(), 1);
    let p = &posted[0];
    assert_eq!(p.id, sent.id.to_string());
    assert_eq!(p.components[0]["components"][0]["custom_id"], "ack:7");
    assert_eq!(
        p.components[0]["components"][2]["url"],
        "https://runbooks.example/7"
    );
    // serenity sends all three lists of allowed mentions.
    assert_eq!(
        p.allowed_mentions,
        Some(json!({ "parse": [], "users": ["111111111111111111"], "roles": [] }))
    );
    assert_eq!(p.pinged_users, ["111111111111111111"]);
    assert!(!p.edited);

    // Edit: the content changes, the components stay unless given.
    let edited = channel
        .edit_message(
            &http,
            sent.id,
            EditMessage::new().content("Incident #7 acknowledged"),
        )
        .await
        .unwrap();
    assert_eq!(edited.content, "Incident #7 acknowledged");
    assert!(edited.edited_timestamp.is_some());
    assert!(edited.edited_timestamp.unwrap() > edited.timestamp);
    assert_eq!(edited.components[0].components.len(), 3);
    let edited = channel
        .edit_message(&http, sent.id, EditMessage::new().components(vec![]))
        .await
        .unwrap();
    assert!(edited.components.is_empty());
    let p = &fake.messages(channel)[0];
    assert!(p.edited);
    assert_eq!(p.content, "Incident #7 acknowledged");
    assert_eq!(p.components, json!([]));
    // The mention is gone with the old content.
    assert!(p.pinged_users.is_empty());
    // Fetch one.
    let got = channel.message(&http, sent.id).await.unwrap();
    assert_eq!(got.content, "Incident #7 acknowledged");

    // Pins: idempotent, listed most recent first, `pinned` set.
    let second = channel.say(&http, "timeline").await.unwrap();
    channel.pin(&http, sent.id).await.unwrap();
    channel.pin(&http, second.id).await.unwrap();
    channel.pin(&http, sent.id).await.unwrap();
    assert_eq!(
        fake.pins(channel),
        [sent.id.to_string(), second.id.to_string()]
    );
    let pins = channel.pins(&http).await.unwrap();
    assert_eq!(
        pins.iter().map(|m| m.id).collect::<Vec<_>>(),
        [second.id, sent.id]
    );
    assert!(pins.iter().all(|m| m.pinned));
    let call = fake.calls_to(route::PIN_MESSAGE);
    assert_eq!(call.len(), 3);

    // Unknown message and channel.
    let result = channel
        .edit_message(&http, MessageId::new(42), EditMessage::new().content("x"))
        .await;
    assert_eq!(refusal(result), (404, 10008, String::new()));
    let result = channel.pin(&http, MessageId::new(42)).await;
    assert_eq!(refusal(result), (404, 10008, String::new()));
    let result = ChannelId::new(42).say(&http, "hello").await;
    assert_eq!(refusal(result), (404, 10003, String::new()));
    let result = ChannelId::new(42).pins(&http).await;
    assert_eq!(refusal(result), (404, 10003, String::new()));
    // A message of another channel is unknown here.
    let other = channel_id(&fake.add_channel(GUILD_ID, "other", None));
    let result = other.pin(&http, sent.id).await;
    assert_eq!(refusal(result), (404, 10008, String::new()));
}

#[tokio::test]
async fn messages_are_validated() {
    let fake = FakeDiscord::start().await;
    let http = http(&fake);
    let channel = channel_id(&fake.add_channel(GUILD_ID, "inc-8", None));

    // 2000 characters (not bytes) are fine; 2001 are not. serenity's builders refuse 2001
    // before sending, so the raw body goes through `Http`.
    http.send_message(channel, vec![], &json!({ "content": "é".repeat(2000) }))
        .await
        .unwrap();
    let result = http
        .send_message(channel, vec![], &json!({ "content": "x".repeat(2001) }))
        .await;
    let response = refused(result);
    assert_eq!(response.status_code.as_u16(), 400);
    assert_eq!(response.error.code, 50035);
    assert_eq!(response.error.message, "Invalid Form Body");
    assert_eq!(response.error.errors.len(), 1);
    assert_eq!(response.error.errors[0].path, "content");
    assert_eq!(response.error.errors[0].code, "BASE_TYPE_MAX_LENGTH");
    assert_eq!(
        response.error.errors[0].message,
        "Must be 2000 or fewer in length."
    );
    // serenity's Display of the error names the field.
    let shown = serenity::Error::Http(HttpError::UnsuccessfulRequest(response)).to_string();
    assert_eq!(
        shown,
        "Invalid Form Body (content: Must be 2000 or fewer in length.)"
    );
    let sent = channel.say(&http, "short").await.unwrap();
    let result = http
        .edit_message(
            channel,
            sent.id,
            &json!({ "content": "x".repeat(2001) }),
            vec![],
        )
        .await;
    assert_eq!(refusal(result), (400, 50035, "content".into()));

    // Empty messages: no content, whitespace only, empty lists (what serenity sends).
    for body in [
        json!({}),
        json!({ "content": "  " }),
        json!({ "content": "", "components": [], "embeds": [] }),
    ] {
        let result = http.send_message(channel, vec![], &body).await;
        let response = refused(result);
        assert_eq!(
            (response.status_code.as_u16(), response.error.code),
            (400, 50006),
            "{body}"
        );
        assert_eq!(response.error.message, "Cannot send an empty message");
    }
    let result = channel.send_message(&http, CreateMessage::new()).await;
    assert_eq!(refusal(result), (400, 50006, String::new()));
    // Editing everything away is refused too.
    let result = http
        .edit_message(channel, sent.id, &json!({ "content": "" }), vec![])
        .await;
    assert_eq!(refusal(result), (400, 50006, String::new()));

    // Components: rows, buttons per row, custom id and label lengths, unique custom ids.
    let row = |n: usize, prefix: &str| {
        CreateActionRow::Buttons(
            (0..n)
                .map(|i| button(&format!("{prefix}{i}"), "go"))
                .collect(),
        )
    };
    let send_rows = |rows: Vec<CreateActionRow>| {
        channel.send_message(&http, CreateMessage::new().content("c").components(rows))
    };
    send_rows((0..5).map(|r| row(5, &format!("r{r}-"))).collect())
        .await
        .unwrap();
    let result = send_rows((0..6).map(|r| row(1, &format!("r{r}-"))).collect()).await;
    assert_eq!(refusal(result), (400, 50035, "components".into()));
    let result = send_rows(vec![row(6, "b")]).await;
    assert_eq!(
        refusal(result),
        (400, 50035, "components.0.components".into())
    );
    let result = send_rows(vec![
        row(1, "a"),
        CreateActionRow::Buttons(vec![button(&"x".repeat(101), "go")]),
    ])
    .await;
    assert_eq!(
        refusal(result),
        (400, 50035, "components.1.components.0.custom_id".into())
    );
    send_rows(vec![CreateActionRow::Buttons(vec![button(
        &"x".repeat(100),
        &"l".repeat(80),
    )])])
    .await
    .unwrap();
    let result = send_rows(vec![CreateActionRow::Buttons(vec![
        button("a", "ok"),
        button("b", &"l".repeat(81)),
    ])])
    .await;
    assert_eq!(
        refusal(result),
        (400, 50035, "components.0.components.1.label".into())
    );
    let result = send_rows(vec![row(2, "same"), row(1, "same")]).await;
    let response = refused(result);
    assert_eq!(
        response.error.errors[0].path,
        "components.1.components.0.custom_id"
    );
    assert_eq!(
        response.error.errors[0].code,
        "COMPONENT_CUSTOM_ID_DUPLICATED"
    );
    // A button needs a label or an emoji.
    let result = send_rows(vec![CreateActionRow::Buttons(vec![CreateButton::new(
        "bare",
    )])])
    .await;
    assert_eq!(
        refusal(result),
        (400, 50035, "components.0.components.0.label".into())
    );

    // Refused requests change nothing.
    assert_eq!(fake.messages(channel).len(), 4);
}

#[tokio::test]
async fn mentions_follow_allowed_mentions() {
    let fake = FakeDiscord::start().await;
    let http = http(&fake);
    let channel = channel_id(&fake.add_channel(GUILD_ID, "inc-9", None));
    let content = "@everyone <@1> <@&2> <@!3> <@1>";
    let send = |allowed: Option<Value>| {
        let mut body = json!({ "content": content });
        if let Some(allowed) = allowed {
            body["allowed_mentions"] = allowed;
        }
        let http = &http;
        async move { http.send_message(channel, vec![], &body).await }
    };

    // Nothing allowed: nobody is pinged.
    let m = send(Some(json!({ "parse": [] }))).await.unwrap();
    assert!(!m.mention_everyone);
    assert!(m.mentions.is_empty());
    assert!(m.mention_roles.is_empty());
    let p = fake.messages(channel).pop().unwrap();
    assert!(p.pinged_users.is_empty());
    assert!(p.pinged_roles.is_empty());
    assert!(!p.mass_mention);

    // Only user 1.
    let m = send(Some(json!({ "parse": [], "users": ["1"] })))
        .await
        .unwrap();
    assert_eq!(
        m.mentions.iter().map(|u| u.id).collect::<Vec<_>>(),
        [UserId::new(1)]
    );
    assert!(m.mention_roles.is_empty());
    assert!(!m.mention_everyone);
    let p = fake.messages(channel).pop().unwrap();
    assert_eq!(p.pinged_users, ["1"]);
    assert!(p.pinged_roles.is_empty());
    assert!(!p.mass_mention);

    // No allowed_mentions: everything pings.
    let m = send(None).await.unwrap();
    assert!(m.mention_everyone);
    assert_eq!(
        m.mentions.iter().map(|u| u.id).collect::<Vec<_>>(),
        [UserId::new(1), UserId::new(3)]
    );
    assert_eq!(m.mention_roles, [RoleId::new(2)]);
    let p = fake.messages(channel).pop().unwrap();
    assert_eq!(p.pinged_users, ["1", "3"]);
    assert_eq!(p.pinged_roles, ["2"]);
    assert!(p.mass_mention);
    assert_eq!(p.allowed_mentions, None);

    // By kind.
    send(Some(json!({ "parse": ["roles", "everyone"] })))
        .await
        .unwrap();
    let p = fake.messages(channel).pop().unwrap();
    assert!(p.pinged_users.is_empty());
    assert_eq!(p.pinged_roles, ["2"]);
    assert!(p.mass_mention);
    send(Some(json!({ "parse": ["users"], "roles": ["2", "99"] })))
        .await
        .unwrap();
    let p = fake.messages(channel).pop().unwrap();
    assert_eq!(p.pinged_users, ["1", "3"]);
    assert_eq!(p.pinged_roles, ["2"]);
    assert!(!p.mass_mention);

    // "users" in parse next to a users list is refused; next to an empty list (serenity's
    // `CreateAllowedMentions` always sends the lists) it is fine.
    let result = send(Some(json!({ "parse": ["users"], "users": ["1"] }))).await;
    let response = refused(result);
    assert_eq!(response.error.code, 50035);
    assert_eq!(response.error.errors[0].path, "allowed_mentions");
    let result = send(Some(json!({ "parse": ["roles"], "roles": ["2"] }))).await;
    assert_eq!(refusal(result), (400, 50035, "allowed_mentions".into()));
    let result = send(Some(json!({ "parse": ["nobody"] }))).await;
    assert_eq!(
        refusal(result),
        (400, 50035, "allowed_mentions.parse.0".into())
    );
    channel
        .send_message(
            &http,
            CreateMessage::new()
                .content(content)
                .allowed_mentions(CreateAllowedMentions::new().all_users(true)),
        )
        .await
        .unwrap();
    let p = fake.messages(channel).pop().unwrap();
    assert_eq!(p.pinged_users, ["1", "3"]);
    assert!(p.pinged_roles.is_empty());
    assert!(!p.mass_mention);

    // @here counts as a mass mention; an unknown user is never pinged.
    fake.unknown_user(3);
    http.send_message(channel, vec![], &json!({ "content": "@here <@3> <@1>" }))
        .await
        .unwrap();
    let p = fake.messages(channel).pop().unwrap();
    assert!(p.mass_mention);
    assert_eq!(p.pinged_users, ["1"]);

    // An edit's mentions follow the new content, under the edit's allowed mentions or else
    // the message's.
    let m = send(Some(json!({ "parse": [] }))).await.unwrap();
    http.edit_message(
        channel,
        m.id,
        &json!({ "content": "<@1> @everyone" }),
        vec![],
    )
    .await
    .unwrap();
    let p = fake.messages(channel).pop().unwrap();
    assert!(p.pinged_users.is_empty());
    assert!(!p.mass_mention);
    let edited = http
        .edit_message(
            channel,
            m.id,
            &json!({ "allowed_mentions": { "parse": ["everyone"] } }),
            vec![],
        )
        .await
        .unwrap();
    assert!(edited.mention_everyone);
    let p = fake.messages(channel).pop().unwrap();
    assert!(p.mass_mention);
    assert!(p.pinged_users.is_empty());
}

#[tokio::test]
async fn permission_overwrites_are_recorded() {
    let fake = FakeDiscord::start().await;
    let http = http(&fake);
    let channel = channel_id(&fake.add_channel(GUILD_ID, "inc-10", None));
    let view = Permissions::VIEW_CHANNEL | Permissions::SEND_MESSAGES;

    // @everyone (the guild's id as a role) may not see it; the responder may.
    channel
        .create_permission(
            &http,
            PermissionOverwrite {
                allow: Permissions::empty(),
                deny: Permissions::VIEW_CHANNEL,
                kind: PermissionOverwriteType::Role(RoleId::new(GUILD_ID)),
            },
        )
        .await
        .unwrap();
    channel
        .create_permission(
            &http,
            PermissionOverwrite {
                allow: view,
                deny: Permissions::empty(),
                kind: PermissionOverwriteType::Member(UserId::new(555)),
            },
        )
        .await
        .unwrap();
    // The body as serenity sends it: ids and bit sets as strings, the type as a number.
    assert_eq!(
        fake.calls_to(route::EDIT_PERMISSIONS)[1],
        json!({ "id": "555", "type": 1, "allow": view.bits().to_string(), "deny": "0" })
    );
    // Putting the same target again replaces its overwrite.
    channel
        .create_permission(
            &http,
            PermissionOverwrite {
                allow: view | Permissions::ATTACH_FILES,
                deny: Permissions::empty(),
                kind: PermissionOverwriteType::Member(UserId::new(555)),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        fake.channel(channel).unwrap().overwrites,
        [
            Overwrite {
                id: GUILD_ID.to_string(),
                kind: 0,
                allow: 0,
                deny: Permissions::VIEW_CHANNEL.bits(),
            },
            Overwrite {
                id: "555".into(),
                kind: 1,
                allow: (view | Permissions::ATTACH_FILES).bits(),
                deny: 0,
            },
        ]
    );
    let got = http.get_channel(channel).await.unwrap().guild().unwrap();
    assert_eq!(got.permission_overwrites.len(), 2);
    assert_eq!(
        got.permission_overwrites[1].kind,
        PermissionOverwriteType::Member(UserId::new(555))
    );
    assert_eq!(
        got.permission_overwrites[1].allow,
        view | Permissions::ATTACH_FILES
    );

    // Unknown members fail; unknown channels too.
    fake.unknown_user(666);
    let overwrite = PermissionOverwrite {
        allow: view,
        deny: Permissions::empty(),
        kind: PermissionOverwriteType::Member(UserId::new(666)),
    };
    let response = refused(channel.create_permission(&http, overwrite.clone()).await);
    assert_eq!(
        (response.status_code.as_u16(), response.error.code),
        (404, 10013)
    );
    assert_eq!(response.error.message, "Unknown User");
    let result = ChannelId::new(42).create_permission(&http, overwrite).await;
    assert_eq!(refusal(result), (404, 10003, String::new()));
    assert_eq!(fake.channel(channel).unwrap().overwrites.len(), 2);

    // Overwrites given when the channel is made.
    let private = guild()
        .create_channel(
            &http,
            CreateChannel::new("inc-11").permissions([PermissionOverwrite {
                allow: view,
                deny: Permissions::empty(),
                kind: PermissionOverwriteType::Member(UserId::new(555)),
            }]),
        )
        .await
        .unwrap();
    assert_eq!(private.permission_overwrites.len(), 1);
    assert_eq!(
        fake.channel(private.id).unwrap().overwrites[0].allow,
        view.bits()
    );
}

#[tokio::test]
async fn interaction_responses_are_recorded() {
    let fake = FakeDiscord::start().await;
    let http = http(&fake);
    let channel = fake.add_channel(GUILD_ID, "inc-12", None);
    let token = fake.interaction_token(&channel);

    // The deferred response is filled in, then edited; a follow-up is ephemeral.
    let original = http
        .edit_original_interaction_response(
            &token,
            &EditInteractionResponse::new()
                .content("Paging <@1> for incident #12")
                .components(vec![CreateActionRow::Buttons(vec![button(
                    "ack:12", "Ack",
                )])])
                .allowed_mentions(CreateAllowedMentions::new().users([UserId::new(1)])),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(original.channel_id, channel_id(&channel));
    assert_eq!(original.author.id, UserId::new(BOT_USER_ID));
    assert_eq!(original.application_id, Some(ApplicationId::new(APP_ID)));
    assert_eq!(original.kind, MessageType::ChatInputCommand);
    assert_eq!(original.mentions[0].id, UserId::new(1));
    let again = http
        .edit_original_interaction_response(
            &token,
            &EditInteractionResponse::new().content("Paged <@1>"),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(again.id, original.id);
    assert!(again.edited_timestamp.is_some());
    // The components stay.
    assert_eq!(again.components.len(), 1);
    let followup = http
        .create_followup_message(
            &token,
            &CreateInteractionResponseFollowup::new()
                .content("Only you can see this")
                .ephemeral(true),
            vec![],
        )
        .await
        .unwrap();
    assert_ne!(followup.id, original.id);
    assert_eq!(followup.flags, Some(MessageFlags::EPHEMERAL));

    let seen = fake.interaction_messages(&token);
    assert_eq!(seen.len(), 3);
    assert!(seen[0].original && seen[1].original && !seen[2].original);
    assert_eq!(seen[0].content, "Paging <@1> for incident #12");
    assert_eq!(seen[0].pinged_users, ["1"]);
    assert!(!seen[0].edited);
    assert_eq!(
        seen[0].components[0]["components"][0]["custom_id"],
        "ack:12"
    );
    assert_eq!(seen[1].content, "Paged <@1>");
    assert!(seen[1].edited);
    // The edit did not give allowed mentions: the original's still apply.
    assert_eq!(seen[1].pinged_users, ["1"]);
    assert_eq!(seen[1].id, seen[0].id);
    assert_eq!(seen[2].content, "Only you can see this");
    assert_eq!(seen[2].flags, EPHEMERAL);
    // Interaction messages are not channel messages.
    assert!(fake.messages(&channel).is_empty());

    // A token the test did not hand out is fine (its messages have a channel of their own);
    // an empty one is refused.
    let other = http
        .create_followup_message(
            "some-other-token",
            &CreateInteractionResponseFollowup::new().content("hello"),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(other.channel_id, ChannelId::new(INTERACTION_CHANNEL_ID));
    assert_eq!(fake.interaction_messages("some-other-token").len(), 1);
    let result = http
        .create_followup_message(&token, &CreateInteractionResponseFollowup::new(), vec![])
        .await;
    assert_eq!(refusal(result), (400, 50006, String::new()));

    // Another application's webhooks are unknown.
    let result = http_for(&fake, 42)
        .edit_original_interaction_response(
            &token,
            &EditInteractionResponse::new().content("x"),
            vec![],
        )
        .await;
    let response = refused(result);
    assert_eq!(
        (response.status_code.as_u16(), response.error.code),
        (404, 10015)
    );
    assert_eq!(response.error.message, "Unknown Webhook");
    assert_eq!(fake.interaction_messages(&token).len(), 3);
}

fn incident_commands(description: &str) -> Vec<CreateCommand> {
    vec![
        CreateCommand::new("incident")
            .description(description)
            .add_option(
                CreateCommandOption::new(CommandOptionType::SubCommand, "open", "Open an incident")
                    .add_sub_option(
                        CreateCommandOption::new(CommandOptionType::String, "title", "What broke")
                            .required(true),
                    )
                    .add_sub_option(
                        CreateCommandOption::new(CommandOptionType::String, "severity", "SEV")
                            .add_string_choice("SEV1", "sev1")
                            .add_string_choice("SEV2", "sev2"),
                    ),
            )
            .add_option(CreateCommandOption::new(
                CommandOptionType::SubCommand,
                "resolve",
                "Resolve the incident",
            )),
        CreateCommand::new("runbook").description("Run a runbook"),
    ]
}

#[tokio::test]
async fn commands_are_overwritten_with_stable_ids() {
    let fake = FakeDiscord::start().await;
    let http = http(&fake);

    let first = guild()
        .set_commands(&http, incident_commands("Incidents"))
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    let incident = &first[0];
    assert_eq!(incident.name, "incident");
    assert_eq!(incident.kind, CommandType::ChatInput);
    assert_eq!(incident.application_id, ApplicationId::new(APP_ID));
    assert_eq!(incident.guild_id, Some(guild()));
    assert_eq!(incident.default_member_permissions, None);
    assert!(!incident.nsfw);
    assert_eq!(incident.options.len(), 2);
    assert_eq!(incident.options[0].kind, CommandOptionType::SubCommand);
    assert_eq!(incident.options[0].options[0].name, "title");
    assert!(incident.options[0].options[0].required);
    assert_eq!(incident.options[0].options[1].choices.len(), 2);
    assert_eq!(
        incident.options[0].options[1].choices[1].value,
        json!("sev2")
    );
    assert!(first[1].options.is_empty());

    // Again, with one command changed and one new: the ids stay; the unchanged command keeps
    // its version.
    let mut commands = incident_commands("Incident commands");
    commands.push(CreateCommand::new("status").description("Status page"));
    let second = guild().set_commands(&http, commands).await.unwrap();
    assert_eq!(second.len(), 3);
    assert_eq!(second[0].id, first[0].id);
    assert_ne!(second[0].version, first[0].version);
    assert_eq!(second[0].description, "Incident commands");
    assert_eq!(second[1].id, first[1].id);
    assert_eq!(second[1].version, first[1].version);
    assert!(second[2].id != first[0].id && second[2].id != first[1].id);
    let listed = guild().get_commands(&http).await.unwrap();
    assert_eq!(
        listed.iter().map(|c| c.id).collect::<Vec<_>>(),
        second.iter().map(|c| c.id).collect::<Vec<_>>()
    );
    let guild_id = GUILD_ID.to_string();
    assert_eq!(fake.commands(Some(&guild_id)).len(), 3);
    assert_eq!(fake.commands(Some(&guild_id))[2]["name"], "status");

    // Global commands: separate from the guild's, no guild id, `dm_permission` set.
    let global = Command::set_global_commands(&http, incident_commands("Incidents"))
        .await
        .unwrap();
    assert_eq!(global[0].guild_id, None);
    assert_eq!(global[0].dm_permission, Some(true));
    assert!(global[0].id != first[0].id);
    let global_again = Command::set_global_commands(&http, incident_commands("Incidents"))
        .await
        .unwrap();
    assert_eq!(global_again[0].id, global[0].id);
    assert_eq!(global_again[0].version, global[0].version);
    assert_eq!(Command::get_global_commands(&http).await.unwrap().len(), 2);
    assert_eq!(fake.commands(None).len(), 2);
    // Overwriting with fewer drops the others.
    let one = Command::set_global_commands(
        &http,
        vec![CreateCommand::new("runbook").description("Run a runbook")],
    )
    .await
    .unwrap();
    assert_eq!(one[0].id, global[1].id);
    assert_eq!(fake.commands(None).len(), 1);
    assert_eq!(fake.commands(Some(&guild_id)).len(), 3);

    // Validation, with the path of the offending field.
    let cases: Vec<(Vec<CreateCommand>, &str)> =
        vec![
            (
                vec![CreateCommand::new("Incident").description("d")],
                "0.name",
            ),
            (
                vec![CreateCommand::new("has space").description("d")],
                "0.name",
            ),
            (
                vec![CreateCommand::new("x".repeat(33)).description("d")],
                "0.name",
            ),
            (vec![CreateCommand::new("incident")], "0.description"),
            (
                vec![CreateCommand::new("incident").description("d".repeat(101))],
                "0.description",
            ),
            (
                vec![
                    CreateCommand::new("a").description("d"),
                    CreateCommand::new("a").description("d"),
                ],
                "1.name",
            ),
            (
                vec![
                    CreateCommand::new("a").description("d").set_options(
                        (0..26)
                            .map(|i| {
                                CreateCommandOption::new(
                                    CommandOptionType::String,
                                    format!("o{i}"),
                                    "d",
                                )
                            })
                            .collect(),
                    ),
                ],
                "0.options",
            ),
            (
                vec![CreateCommand::new("a").description("d").add_option({
                    let mut option = CreateCommandOption::new(CommandOptionType::String, "o", "d");
                    for i in 0..26 {
                        option = option.add_string_choice(format!("c{i}"), format!("c{i}"));
                    }
                    option
                })],
                "0.options.0.choices",
            ),
            (
                vec![
                    CreateCommand::new("a")
                        .description("d")
                        .add_option(CreateCommandOption::new(
                            CommandOptionType::String,
                            "first",
                            "d",
                        ))
                        .add_option(
                            CreateCommandOption::new(CommandOptionType::String, "second", "d")
                                .required(true),
                        ),
                ],
                "0.options.1.required",
            ),
            (
                vec![CreateCommand::new("a").description("d").add_option(
                    CreateCommandOption::new(CommandOptionType::String, "Upper", "d"),
                )],
                "0.options.0.name",
            ),
        ];
    for (commands, path) in cases {
        let result = guild().set_commands(&http, commands).await;
        assert_eq!(refusal(result), (400, 50035, path.into()), "{path}");
    }
    // Nothing changed.
    assert_eq!(fake.commands(Some(&guild_id)).len(), 3);
    // User and message commands may have capitals and spaces, and no description.
    let context = guild()
        .set_commands(
            &http,
            vec![CreateCommand::new("Open Incident").kind(CommandType::Message)],
        )
        .await
        .unwrap();
    assert_eq!(context[0].kind, CommandType::Message);
    assert_eq!(context[0].description, "");

    // Another application, or a guild the application is not in.
    let result = http_for(&fake, 42).get_global_commands().await;
    assert_eq!(refusal(result), (403, 50001, String::new()));
    let result = GuildId::new(42).get_commands(&http).await;
    assert_eq!(refusal(result), (403, 50001, String::new()));
    // A guild the test adds is fine.
    fake.add_guild(42);
    assert!(
        GuildId::new(42)
            .get_commands(&http)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn pins_stop_at_fifty() {
    let fake = FakeDiscord::start().await;
    let http = http(&fake);
    let channel = channel_id(&fake.add_channel(GUILD_ID, "inc-13", None));
    for i in 0..50 {
        let m = channel.say(&http, format!("m{i}")).await.unwrap();
        channel.pin(&http, m.id).await.unwrap();
    }
    let extra = channel.say(&http, "one too many").await.unwrap();
    let response = refused(channel.pin(&http, extra.id).await);
    assert_eq!(
        (response.status_code.as_u16(), response.error.code),
        (400, 30003)
    );
    assert_eq!(
        response.error.message,
        "Maximum number of pins reached (50)"
    );
    assert_eq!(fake.pins(channel).len(), 50);
    assert_eq!(channel.pins(&http).await.unwrap().len(), 50);
}

// ---------------------------------------------------------------------------------------
// Faults

#[tokio::test]
async fn faults_are_queued_per_route() {
    let fake = FakeDiscord::start().await;
    let http = http(&fake);
    let channel = channel_id(&fake.add_channel(GUILD_ID, "inc-14", None));
    fake.fail(
        route::CREATE_MESSAGE,
        Fault::RateLimited {
            retry_after_secs: 1.5,
        },
    );
    fake.fail(route::CREATE_MESSAGE, Fault::ServerError(500));
    fake.fail(
        route::CREATE_MESSAGE,
        Fault::Error {
            status: 403,
            code: 50013,
            message: "Missing Permissions".into(),
        },
    );
    fake.fail(route::GET_CURRENT_USER, Fault::ServerError(502));

    // With its rate limiter off, serenity hands the 429 back. Discord's 429 body has no
    // `code`, which serenity's error type requires: the body is reported as undecodable.
    let response = refused(channel.say(&http, "hello").await);
    assert_eq!(response.status_code.as_u16(), 429);
    assert_eq!(response.error.code, -1);
    assert!(
        response.error.message.contains("Could not decode"),
        "{response:?}"
    );
    let response = refused(channel.say(&http, "hello").await);
    assert_eq!(response.status_code.as_u16(), 500);
    assert_eq!(response.error.code, 0);
    assert_eq!(response.error.message, "500: Internal Server Error");
    let response = refused(channel.say(&http, "hello").await);
    assert_eq!(
        (response.status_code.as_u16(), response.error.code),
        (403, 50013)
    );
    assert_eq!(response.error.message, "Missing Permissions");
    // The queue is spent; another route's fault is still waiting.
    channel.say(&http, "hello").await.unwrap();
    assert_eq!(fake.messages(channel).len(), 1);
    assert_eq!(
        refused(http.get_current_user().await).status_code.as_u16(),
        502
    );
    http.get_current_user().await.unwrap();
    // Faulted calls are recorded.
    assert_eq!(fake.calls_to(route::CREATE_MESSAGE).len(), 4);
    assert!(
        fake.calls_to(route::CREATE_MESSAGE)
            .iter()
            .all(|b| b["content"] == "hello")
    );

    // Hangs: a request waits, then is answered.
    fake.fail(
        route::GET_CURRENT_USER,
        Fault::Hang(Duration::from_secs(30)),
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), http.get_current_user())
            .await
            .is_err()
    );
    fake.fail(
        route::GET_CURRENT_USER,
        Fault::Hang(Duration::from_millis(200)),
    );
    let start = Instant::now();
    http.get_current_user().await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(200));
    // Everything slow, then not.
    fake.slow_everything(Some(Duration::from_millis(200)));
    let start = Instant::now();
    channel.say(&http, "slow").await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(200));
    fake.slow_everything(None);
    let start = Instant::now();
    channel.say(&http, "fast").await.unwrap();
    assert!(start.elapsed() < Duration::from_millis(200));
}

#[test]
#[should_panic(expected = "no route")]
fn faults_need_a_known_route() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeDiscord::start());
    fake.fail("POST /channels/{id}/messages", Fault::ServerError(500));
}

// ---------------------------------------------------------------------------------------
// The wire, directly

fn api(fake: &FakeDiscord, path: &str) -> String {
    format!("{}/api/v10{path}", fake.url())
}

#[tokio::test]
async fn rate_limits_carry_discord_headers() {
    let fake = FakeDiscord::start().await;
    fake.fail(
        route::GET_CURRENT_USER,
        Fault::RateLimited {
            retry_after_secs: 2.25,
        },
    );
    let response = reqwest::Client::new()
        .get(api(&fake, "/users/@me"))
        .header("authorization", format!("Bot {BOT_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no {name} header"))
    };
    assert_eq!(header("retry-after"), "3");
    assert_eq!(header("x-ratelimit-remaining"), "0");
    assert_eq!(header("x-ratelimit-limit"), "5");
    assert_eq!(header("x-ratelimit-reset-after"), "2.250");
    assert!(!header("x-ratelimit-bucket").is_empty());
    assert!(header("x-ratelimit-reset").parse::<f64>().unwrap() > 1_700_000_000.0);
    assert_eq!(header("x-ratelimit-scope"), "user");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "message": "You are being rate limited.", "retry_after": 2.25, "global": false })
    );
}

#[tokio::test]
async fn requests_need_the_bot_token() {
    let fake = FakeDiscord::start().await;
    let client = reqwest::Client::new();
    for auth in [None, Some("Bot wrong"), Some(BOT_TOKEN), Some("Bearer x")] {
        let mut request = client.get(api(&fake, "/users/@me"));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{auth:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({ "message": "401: Unauthorized", "code": 0 }));
    }
    assert!(fake.calls().iter().all(|c| !c.authorized));
    // serenity with another token is refused the same way.
    let other = HttpBuilder::new("another-token")
        .proxy(fake.url())
        .ratelimiter_disabled(true)
        .build();
    let response = refused(other.get_current_user().await);
    assert_eq!(
        (response.status_code.as_u16(), response.error.code),
        (401, 0)
    );
    // Unknown paths and methods.
    let bot = format!("Bot {BOT_TOKEN}");
    let response = client
        .get(api(&fake, "/nothing/here"))
        .header("authorization", &bot)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "message": "404: Not Found", "code": 0 })
    );
    let response = client
        .delete(api(&fake, "/users/@me"))
        .header("authorization", &bot)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let unknown = fake.calls().pop().unwrap();
    assert_eq!(unknown.route, None);
    assert_eq!(unknown.method, "DELETE");
    // Bodies that are not JSON.
    let channel = fake.add_channel(GUILD_ID, "inc-15", None);
    let response = client
        .post(api(&fake, &format!("/channels/{channel}/messages")))
        .header("authorization", &bot)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["code"], 50109);
}

#[test]
fn interaction_signatures_verify() {
    let verifier = serenity::interactions_endpoint::Verifier::new(&discord::public_key_hex());
    let body = br#"{"type":1,"id":"1","application_id":"2","token":"t","version":1}"#;
    let timestamp = "1700000000";
    let signature = discord::sign_interaction(timestamp, body);
    assert_eq!(signature.len(), 128);
    assert!(verifier.verify(&signature, timestamp, body).is_ok());
    // A changed body, timestamp or signature fails.
    let mut tampered = body.to_vec();
    tampered[9] = b'2';
    assert!(verifier.verify(&signature, timestamp, &tampered).is_err());
    assert!(verifier.verify(&signature, "1700000001", body).is_err());
    let other = discord::sign_interaction(timestamp, b"{}");
    assert!(verifier.verify(&other, timestamp, body).is_err());
    // The key is fixed: the same every run.
    assert_eq!(discord::public_key_hex(), discord::public_key_hex());
    assert_eq!(discord::public_key_hex().len(), 64);
}
