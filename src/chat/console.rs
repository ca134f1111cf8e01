//! The console: an interactive chat session in the terminal, or piped for scripts. Reads one
//! line at a time; a line starting with `:` is a console meta-command, anything else is the
//! text after `/incident`. Every message is printed prefixed by the channel it is posted to.

use super::{Delivered, DeliveryError, Sink};
use crate::app::clock::VirtualClock;
use crate::app::{App, Origin};
use crate::core::message::{ButtonStyle, Message, Visibility};
use crate::core::{Effect, IncidentKey, Platform, UserRef};
use crate::render::{self, RenderedButton, RenderedMessage, Renderer};
use crate::store::OutboxItem;
use async_trait::async_trait;
use std::io::Write;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Where the console prints.
pub type Output = Arc<Mutex<Box<dyn Write + Send>>>;

/// Prints delivered effects and remembers the last message with buttons for `:click`.
pub struct ConsoleSink {
    renderer: Arc<Renderer>,
    output: Output,
    last_buttons: Mutex<Vec<RenderedButton>>,
}

impl ConsoleSink {
    pub fn new(renderer: Arc<Renderer>, output: Output) -> ConsoleSink {
        ConsoleSink {
            renderer,
            output,
            last_buttons: Mutex::new(Vec::new()),
        }
    }

    fn write_lines(&self, channel: &str, lines: &[String]) {
        let mut out = self.output.lock().unwrap_or_else(|p| p.into_inner());
        for line in lines {
            // A broken pipe on the terminal is not worth crashing an incident over.
            let _ = writeln!(out, "[#{channel}] {line}");
        }
        let _ = out.flush();
    }

    /// Print a message in `channel`, remembering its buttons.
    pub fn show(&self, channel: &str, message: &Message) -> Result<(), DeliveryError> {
        let rendered = self
            .renderer
            .render(Platform::Console, message)
            .map_err(|e| DeliveryError::Permanent {
                reason: e.to_string(),
            })?;
        self.write_lines(channel, &format_message(&rendered));
        if !rendered.buttons.is_empty() {
            *self.last_buttons.lock().unwrap_or_else(|p| p.into_inner()) = rendered.buttons;
        }
        Ok(())
    }

    /// Print a line of the console itself (not a chat message).
    pub fn note(&self, channel: &str, text: &str) {
        self.write_lines(channel, &[format!("* {text}")]);
    }

    fn button(&self, number: usize) -> Option<RenderedButton> {
        let buttons = self.last_buttons.lock().unwrap_or_else(|p| p.into_inner());
        number.checked_sub(1).and_then(|i| buttons.get(i)).cloned()
    }
}

fn format_message(message: &RenderedMessage) -> Vec<String> {
    let mut lines: Vec<String> = message.plain_text().lines().map(str::to_string).collect();
    if message.visibility == Visibility::Ephemeral {
        if let Some(first) = lines.first_mut() {
            *first = format!("(only you) {first}");
        }
    }
    if !message.buttons.is_empty() {
        let buttons: Vec<String> = message
            .buttons
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let style = match b.style {
                    ButtonStyle::Primary => " (primary)",
                    ButtonStyle::Danger => " (danger)",
                    ButtonStyle::Default => "",
                };
                format!("[{}] {}{style}", i + 1, b.label)
            })
            .collect();
        lines.push(format!(
            "buttons: {}   (press with :click N)",
            buttons.join("  ")
        ));
    }
    lines
}

#[async_trait]
impl Sink for ConsoleSink {
    fn destination(&self) -> &'static str {
        Platform::Console.as_str()
    }

    async fn deliver(&self, item: &OutboxItem) -> Result<Delivered, DeliveryError> {
        match &item.effect {
            Effect::CreateChannel {
                channel,
                topic,
                invite,
            } => {
                let invited: Vec<String> = invite.iter().map(|u| format!("@{u}")).collect();
                self.note(
                    channel.as_str(),
                    &format!(
                        "channel created; invited {}; topic: {}",
                        invited.join(", "),
                        render::escape(Platform::Console, topic)
                    ),
                );
                Ok(Delivered::Done)
            }
            Effect::Post {
                channel,
                message,
                pin,
                ..
            } => {
                self.show(channel.name(), message)?;
                if *pin {
                    self.note(channel.name(), "message pinned");
                }
                Ok(Delivered::Done)
            }
            // The console prints a document as it is.
            Effect::Upload {
                channel,
                filename,
                message,
                ..
            } => {
                self.note(channel.as_str(), &format!("{filename}:"));
                self.show(channel.as_str(), message)?;
                Ok(Delivered::Done)
            }
            // The console cannot edit what it printed: it prints the new version.
            Effect::Update {
                channel,
                slot,
                message,
            } => {
                self.note(channel.as_str(), &format!("{} updated:", slot.as_str()));
                self.show(channel.as_str(), message)?;
                Ok(Delivered::Done)
            }
            Effect::PagerDuty { action } => Err(DeliveryError::Permanent {
                reason: format!("the console cannot {}", action.describe()),
            }),
            Effect::Invite { channel, users } => {
                let invited: Vec<String> = users.iter().map(|u| format!("@{u}")).collect();
                self.note(channel.as_str(), &format!("invited {}", invited.join(", ")));
                Ok(Delivered::Done)
            }
            Effect::SetTopic { channel, topic } => {
                self.note(
                    channel.as_str(),
                    &format!("topic: {}", render::escape(Platform::Console, topic)),
                );
                Ok(Delivered::Done)
            }
        }
    }
}

/// Options of `warroom console`.
pub struct ConsoleOptions {
    pub channel: String,
    pub user: UserRef,
    /// Set when `--virtual-clock` was given: `:advance` moves it.
    pub virtual_clock: Option<Arc<VirtualClock>>,
    /// Print a prompt (when stdin is a terminal).
    pub prompt: bool,
    /// Delivers PagerDuty calls, when PagerDuty is configured.
    pub pagerduty: Option<Arc<dyn Sink>>,
}

/// The largest single `:advance`: far enough for any reminder, never near an overflow.
const MAX_ADVANCE: chrono::Duration = chrono::Duration::days(366);

const META_HELP: &str = "console commands: :channel NAME or :channel INC-n (switch channel) · :as USER (act as someone else) · \
:click N (press button N of the last message with buttons) · :advance DURATION (with --virtual-clock, e.g. :advance 31m) · \
:now (show the clock) · :help · :quit. Anything else is an /incident command, e.g. `declare API returning 503s`.";

/// Run the console session until `:quit` or end of input.
pub async fn run<R: AsyncBufRead + Unpin>(
    app: &App,
    sink: &ConsoleSink,
    mut options: ConsoleOptions,
    input: R,
) -> anyhow::Result<()> {
    let mut lines = input.lines();
    sink.note(
        &options.channel,
        &format!(
            "warroom console on the {} store, as @{}. Type :help for console commands, help for incident commands.",
            app.store.backend(),
            options.user
        ),
    );
    catch_up(app, sink, &options).await;
    loop {
        if options.prompt {
            let mut out = sink.output.lock().unwrap_or_else(|p| p.into_inner());
            let _ = write!(out, "#{} @{}> ", options.channel, options.user);
            let _ = out.flush();
        }
        let Some(line) = lines.next_line().await? else {
            break;
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(meta) = line.strip_prefix(':') {
            if !meta_command(app, sink, &mut options, meta, &mut lines).await? {
                break;
            }
        } else {
            let origin = Origin {
                platform: Platform::Console,
                channel: options.channel.clone(),
                actor: options.user.clone(),
                request: None,
            };
            if let Some(reply) = app.handle_command(&origin, line).await {
                show_reply(sink, &options.channel, &reply);
            }
        }
        catch_up(app, sink, &options).await;
    }
    Ok(())
}

fn show_reply(sink: &ConsoleSink, channel: &str, reply: &Message) {
    if let Err(e) = sink.show(channel, reply) {
        sink.note(channel, &format!("could not render the reply: {e}"));
    }
}

/// Fire due timers, make PagerDuty calls, and print pending messages (including any report of
/// a failed call); problems are printed, not fatal.
async fn catch_up(app: &App, sink: &ConsoleSink, options: &ConsoleOptions) {
    let channel = &options.channel;
    if let Err(e) = app.run_due_timers().await {
        sink.note(channel, &format!("timers could not run: {e}"));
    }
    if let Some(pagerduty) = &options.pagerduty
        && let Err(e) = app.dispatch_outbox(pagerduty.as_ref()).await
    {
        sink.note(channel, &format!("PagerDuty calls could not be made: {e}"));
    }
    if let Err(e) = app.dispatch_outbox(sink).await {
        sink.note(channel, &format!("messages could not be delivered: {e}"));
    }
}

/// Returns `false` to end the session.
async fn meta_command<R: AsyncBufRead + Unpin>(
    app: &App,
    sink: &ConsoleSink,
    options: &mut ConsoleOptions,
    meta: &str,
    lines: &mut tokio::io::Lines<R>,
) -> anyhow::Result<bool> {
    let (word, arg) = match meta.trim().split_once(char::is_whitespace) {
        Some((w, a)) => (w, a.trim()),
        None => (meta.trim(), ""),
    };
    let here = options.channel.clone();
    match word {
        "quit" | "q" | "exit" => return Ok(false),
        "help" | "h" => sink.note(&here, META_HELP),
        "channel" | "c" => {
            let name = arg.trim_start_matches('#');
            if name.is_empty() || name.contains(char::is_whitespace) {
                sink.note(&here, "usage: :channel NAME or :channel INC-n");
                return Ok(true);
            }
            // `:channel INC-3` goes to that incident's channel.
            let target = match name
                .to_ascii_uppercase()
                .strip_prefix("INC-")
                .map(|_| name.parse::<IncidentKey>())
            {
                Some(Ok(key)) => match app.store.incident(key).await {
                    Ok(Some(incident)) => incident.channel.to_string(),
                    Ok(None) => {
                        sink.note(&here, &format!("{key} does not exist"));
                        return Ok(true);
                    }
                    Err(e) => {
                        sink.note(&here, &format!("cannot look up {key}: {e}"));
                        return Ok(true);
                    }
                },
                _ => name.to_string(),
            };
            sink.note(&target, &format!("now in #{target}"));
            options.channel = target;
        }
        "as" => match UserRef::parse(arg) {
            Ok(user) => {
                sink.note(&here, &format!("now acting as @{user}"));
                options.user = user;
            }
            Err(e) => sink.note(&here, &format!("usage: :as USER ({e})")),
        },
        "now" => sink.note(
            &here,
            &format!(
                "clock: {}",
                crate::core::views::format_time(app.clock.now())
            ),
        ),
        "advance" => match (&options.virtual_clock, humantime::parse_duration(arg)) {
            (None, _) => sink.note(
                &here,
                ":advance needs the console started with --virtual-clock",
            ),
            (Some(_), Err(_)) => sink.note(
                &here,
                "usage: :advance DURATION, e.g. :advance 31m or :advance 2h",
            ),
            (Some(clock), Ok(by)) => match chrono::Duration::from_std(by) {
                Ok(step) if step <= MAX_ADVANCE => {
                    let now = clock.advance(step);
                    sink.note(
                        &here,
                        &format!(
                            "clock advanced by {} to {}",
                            humantime::format_duration(by),
                            crate::core::views::format_time(now)
                        ),
                    );
                }
                _ => sink.note(
                    &here,
                    ":advance moves the clock by at most 366 days at a time",
                ),
            },
        },
        "click" => {
            let Some(button) = arg.parse::<usize>().ok().and_then(|n| sink.button(n)) else {
                sink.note(
                    &here,
                    "usage: :click N — N is a button number of the last message that has buttons",
                );
                return Ok(true);
            };
            if let Some(confirm) = &button.confirm {
                sink.note(
                    &here,
                    &format!(
                        "{} {} Type y to {}, anything else to {}.",
                        confirm.title,
                        confirm.text,
                        confirm.confirm.to_lowercase(),
                        confirm.deny.to_lowercase()
                    ),
                );
                if options.prompt {
                    let mut out = sink.output.lock().unwrap_or_else(|p| p.into_inner());
                    let _ = write!(out, "{} (y/N)> ", confirm.confirm);
                    let _ = out.flush();
                }
                let answer = lines.next_line().await?.unwrap_or_default();
                if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
                    sink.note(&here, "cancelled; nothing was changed");
                    return Ok(true);
                }
            }
            let origin = Origin {
                platform: Platform::Console,
                channel: here.clone(),
                actor: options.user.clone(),
                request: None,
            };
            sink.note(
                &here,
                &format!("@{} pressed {}", options.user, button.label),
            );
            if let Some(reply) = app.handle_button(&origin, &button.action).await {
                show_reply(sink, &here, &reply);
            }
        }
        other => sink.note(
            &here,
            &format!("unknown console command :{other}. {META_HELP}"),
        ),
    }
    Ok(true)
}
