//! Golden tests: every message warroom sends, rendered for the console, Slack and Discord.

use chrono::{TimeZone, Utc};
use warroom::core::Platform;
use warroom::core::views;
use warroom::render::{RenderedBlock, Renderer};

fn rendered(platform: Platform) -> String {
    let config = warroom::config::load(None).unwrap();
    let renderer = Renderer::load(None).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 11, 28, 14, 7, 0).unwrap();
    let mut out = String::new();
    for message in views::samples(&config.policy, now) {
        let r = renderer.render(platform, &message).unwrap();
        out.push_str(&format!("--- {:?}\n", r.visibility));
        for block in &r.blocks {
            match block {
                RenderedBlock::Text(text) => out.push_str(&format!("{text}\n")),
                RenderedBlock::Fields(fields) => {
                    for (label, value) in fields {
                        out.push_str(&format!("[{label}] {value}\n"));
                    }
                }
            }
        }
        for button in &r.buttons {
            out.push_str(&format!(
                "<button {:?} {}{}>\n",
                button.style,
                button.label,
                if button.confirm.is_some() {
                    " +confirm"
                } else {
                    ""
                }
            ));
        }
    }
    out
}

#[test]
fn console_messages() {
    insta::assert_snapshot!(rendered(Platform::Console));
}

#[test]
fn slack_messages() {
    insta::assert_snapshot!(rendered(Platform::Slack));
}

#[test]
fn discord_messages() {
    insta::assert_snapshot!(rendered(Platform::Discord));
}

#[test]
fn user_text_is_escaped_per_platform() {
    let renderer = Renderer::load(None).unwrap();
    let message = warroom::core::Message::notice(
        warroom::core::message::Visibility::InChannel,
        "<!channel> @here & <@U1> *bold*",
    );
    let text = |p| match &renderer.render(p, &message).unwrap().blocks[0] {
        RenderedBlock::Text(t) => t.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        text(Platform::Slack),
        "&lt;!\u{200B}channel&gt; @\u{200B}here &amp; &lt;@U1&gt; *bold*"
    );
    assert_eq!(
        text(Platform::Discord),
        "<\u{200B}!\u{200B}channel> @\u{200B}here & <\u{200B}@U1> *bold*"
    );
    assert_eq!(
        text(Platform::Console),
        "<!\u{200B}channel> @\u{200B}here & <@U1> *bold*"
    );
}

/// Text inside a code block is shown as it is on Discord, so it is not given the backslashes
/// and zero-width spaces that keep Discord markdown inert elsewhere; Slack still needs its
/// entities; a mass mention is broken everywhere.
#[test]
fn text_in_a_code_block_is_escaped_as_code() {
    let renderer = Renderer::load(None).unwrap();
    let policy = warroom::config::load(None).unwrap().policy;
    let now = Utc.with_ymd_and_hms(2026, 11, 28, 14, 7, 0).unwrap();
    let incident = warroom::core::decide::declare(
        &policy,
        warroom::core::decide::DeclareRequest {
            key: warroom::core::IncidentKey(7),
            title: "API down".into(),
            severity: None,
            actor: warroom::core::UserRef::parse("alice").unwrap(),
            platform: Platform::Discord,
            channel: warroom::core::ChannelName::parse("inc-20261128-api-down").unwrap(),
            now,
            from_pagerduty: None,
        },
    )
    .incident;
    let log = "[ERROR] <html> [link](https://example.com) @everyone";
    let output = views::runbook_output(
        &incident,
        &warroom::core::Actor::System,
        "logs api",
        None,
        true,
        log,
    );
    let text = |platform| match &renderer.render(platform, &output).unwrap().blocks[0] {
        RenderedBlock::Text(text) => text.clone(),
        other => panic!("{other:?}"),
    };
    let discord = text(Platform::Discord);
    assert!(
        discord.contains("```\n[ERROR] <html> [link](https://example.com) @\u{200B}everyone\n```"),
        "{discord}"
    );
    let slack = text(Platform::Slack);
    assert!(
        slack.contains(
            "```\n[ERROR] &lt;html&gt; [link](https://example.com) @\u{200B}everyone\n```"
        ),
        "{slack}"
    );
    // A document posted in a code block (the postmortem draft on Discord): the same.
    let mut titled = incident.clone();
    titled.title = "[db] <primary> down".into();
    let draft = views::as_code_block(&views::postmortem_draft(&policy, &titled, &[], now));
    let discord = match &renderer.render(Platform::Discord, &draft).unwrap().blocks[0] {
        RenderedBlock::Text(text) => text.clone(),
        other => panic!("{other:?}"),
    };
    assert!(discord.contains("— [db] <primary> down"), "{discord}");
    // Outside a code block, Discord text keeps its escaping.
    let plain = warroom::core::Message::notice(
        warroom::core::message::Visibility::InChannel,
        "[db] <primary>",
    );
    match &renderer.render(Platform::Discord, &plain).unwrap().blocks[0] {
        RenderedBlock::Text(text) => assert_eq!(text, "\\[db\\] <primary>"),
        other => panic!("{other:?}"),
    }
}
