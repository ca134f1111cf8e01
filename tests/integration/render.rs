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
