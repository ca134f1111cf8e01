//! Socket Mode (`slack.mode = "socket"`): warroom opens WebSocket connections to Slack with the
//! app-level token (`apps.connections.open`) and receives slash commands, button presses and
//! events over them, for teams whose warroom has no public URL. slack-morphism's listener
//! keeps the connections (and reconnects); the handling is the same as over HTTP
//! (`SlackInbound`), and the acknowledgement of a slash command carries its answer.
//!
//! No signing secret is involved: the connection itself is authenticated by the app token.

use super::inbound::SlackInbound;
use slack_morphism::prelude::*;
use std::sync::Arc;

/// The running listener; `shutdown` closes its connections.
pub type Listener = SlackClientSocketModeListener<SlackClientHyperHttpsConnector>;

/// Connect to Slack and start receiving.
pub async fn start(inbound: Arc<SlackInbound>) -> anyhow::Result<Listener> {
    let environment = Arc::new(
        SlackClientEventsListenerEnvironment::new(inbound.api.client())
            .with_user_state(inbound.clone()),
    );
    let callbacks = SlackSocketModeListenerCallbacks::new()
        .with_command_events(on_command)
        .with_interaction_events(on_interaction)
        .with_push_events(on_push);
    let listener = SlackClientSocketModeListener::new(
        &SlackClientSocketModeConfig::new(),
        environment,
        callbacks,
    );
    let token = SlackApiToken::new(SlackApiTokenValue::new(
        inbound.config.app_token.expose().to_string(),
    ));
    listener
        .listen_for(&token)
        .await
        .map_err(|e| anyhow::anyhow!("Slack Socket Mode: {e}"))?;
    listener.start().await;
    Ok(listener)
}

async fn inbound(states: &SlackClientEventsUserState) -> UserCallbackResult<Arc<SlackInbound>> {
    states
        .read()
        .await
        .get_user_state::<Arc<SlackInbound>>()
        .cloned()
        .ok_or_else(|| "warroom's Slack state is missing".into())
}

async fn on_command(
    event: SlackCommandEvent,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<SlackCommandEventResponse> {
    let slack = inbound(&states).await?;
    if slack.foreign_workspace(event.team_id.as_ref(), None) {
        return Ok(SlackCommandEventResponse::new(
            SlackMessageContent::new().with_text(super::inbound::OTHER_WORKSPACE.to_string()),
        )
        .with_response_type(SlackMessageResponseType::Ephemeral));
    }
    let answer = slack
        .answer_command(
            event.channel_id.to_string(),
            event.user_id.to_string(),
            event.text.unwrap_or_default(),
            event.response_url.0.to_string(),
            // A redelivered envelope carries the same trigger id.
            super::inbound::trigger_key(event.trigger_id.as_ref()),
        )
        .await;
    let blocks: Vec<SlackBlock> = serde_json::from_value(serde_json::Value::Array(answer.blocks))?;
    Ok(SlackCommandEventResponse::new(
        SlackMessageContent::new()
            .with_text(answer.text)
            .with_blocks(blocks),
    )
    .with_response_type(if answer.ephemeral {
        SlackMessageResponseType::Ephemeral
    } else {
        SlackMessageResponseType::InChannel
    }))
}

async fn on_interaction(
    event: SlackInteractionEvent,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let SlackInteractionEvent::BlockActions(event) = event else {
        return Ok(());
    };
    let slack = inbound(&states).await?;
    if slack.foreign_workspace(event.team.id.as_ref(), None) {
        return Ok(());
    }
    let Some(pressed) = event.actions.as_ref().and_then(|a| a.first()) else {
        return Ok(());
    };
    let message = match (&event.container, &event.message) {
        (SlackInteractionActionContainer::Message(container), Some(message)) => {
            Some(super::inbound::PressedMessage {
                channel_id: container
                    .channel_id
                    .as_ref()
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                ts: container.message_ts.to_string(),
                text: message.content.text.clone().unwrap_or_default(),
                blocks: message
                    .content
                    .blocks
                    .as_ref()
                    .and_then(|b| serde_json::to_value(b).ok())
                    .and_then(|v| v.as_array().cloned())
                    .unwrap_or_default(),
            })
        }
        _ => None,
    };
    slack.press(
        event
            .channel
            .as_ref()
            .map(|c| c.id.to_string())
            .unwrap_or_default(),
        event
            .user
            .as_ref()
            .map(|u| u.id.to_string())
            .unwrap_or_default(),
        (pressed.action_id.as_ref(), pressed.value.as_deref()),
        event
            .response_url
            .as_ref()
            .map(|u| u.0.to_string())
            .unwrap_or_default(),
        message,
        super::inbound::trigger_key(event.trigger_id.as_ref()),
    );
    Ok(())
}

async fn on_push(
    event: SlackPushEventCallback,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let slack = inbound(&states).await?;
    // The installation's workspace (see `events` in `inbound`).
    let team = event
        .authorizations
        .as_ref()
        .and_then(|a| a.first())
        .map_or(&event.team_id, |a| &a.team_id);
    if slack.foreign_workspace(team.as_ref(), None) {
        return Ok(());
    }
    let me = slack.api.bot_user().await.ok();
    let mention = match &event.event {
        // Never a command from warroom itself.
        SlackEventCallbackBody::AppMention(mention)
            if me.as_deref() != Some(mention.user.to_string().as_str()) =>
        {
            Some((
                mention.user.to_string(),
                mention.channel.to_string(),
                mention.content.text.clone().unwrap_or_default(),
            ))
        }
        _ => None,
    };
    // An error here leaves the envelope unacknowledged, so Slack sends it again.
    if !slack.event(event.event_id.as_ref(), mention).await? {
        tracing::info!(event = %event.event_id, "Slack event seen before; ignored");
    }
    Ok(())
}
