//! The chat-neutral message model: what warroom says, before any platform renders it.
//!
//! Text lives in handlebars templates (see `render.rs`); a message names a template and
//! carries the data for it. Each platform renders the same message with its own escaping.

use super::incident::IncidentKey;
use serde::{Deserialize, Serialize};

/// Who sees a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Everyone in the channel.
    InChannel,
    /// Only the person who typed the command.
    Ephemeral,
}

/// Every template warroom renders. An enum so that a message can only name a template that
/// exists; `warroom check` renders each with sample data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateName {
    IncidentAlert,
    IncidentResolved,
    IncidentAnnouncement,
    Declared,
    StatusChange,
    StatusUpdate,
    StatusReminder,
    Help,
    Timeline,
    IncidentList,
    Usage,
    Notice,
    Escalation,
    ResponseBreach,
    PostmortemReminder,
    DeliveryFailed,
    OnCall,
    Summary,
    RunbookOutput,
    ChangeProposed,
    ChangeResult,
    PlaybookList,
    Stats,
    Postmortem,
    Maintenance,
}

impl TemplateName {
    pub const ALL: [TemplateName; 25] = [
        TemplateName::IncidentAlert,
        TemplateName::IncidentResolved,
        TemplateName::IncidentAnnouncement,
        TemplateName::Declared,
        TemplateName::StatusChange,
        TemplateName::StatusUpdate,
        TemplateName::StatusReminder,
        TemplateName::Help,
        TemplateName::Timeline,
        TemplateName::IncidentList,
        TemplateName::Usage,
        TemplateName::Notice,
        TemplateName::Escalation,
        TemplateName::ResponseBreach,
        TemplateName::PostmortemReminder,
        TemplateName::DeliveryFailed,
        TemplateName::OnCall,
        TemplateName::Summary,
        TemplateName::RunbookOutput,
        TemplateName::ChangeProposed,
        TemplateName::ChangeResult,
        TemplateName::PlaybookList,
        TemplateName::Stats,
        TemplateName::Postmortem,
        TemplateName::Maintenance,
    ];

    /// The file stem in `templates/` (`<name>.hbs`).
    pub fn file_stem(self) -> &'static str {
        match self {
            TemplateName::IncidentAlert => "incident_alert",
            TemplateName::IncidentResolved => "incident_resolved",
            TemplateName::IncidentAnnouncement => "incident_announcement",
            TemplateName::Declared => "declared",
            TemplateName::StatusChange => "status_change",
            TemplateName::StatusUpdate => "status_update",
            TemplateName::StatusReminder => "status_reminder",
            TemplateName::Help => "help",
            TemplateName::Timeline => "timeline",
            TemplateName::IncidentList => "incident_list",
            TemplateName::Usage => "usage",
            TemplateName::Notice => "notice",
            TemplateName::Escalation => "escalation",
            TemplateName::ResponseBreach => "response_breach",
            TemplateName::PostmortemReminder => "postmortem_reminder",
            TemplateName::DeliveryFailed => "delivery_failed",
            TemplateName::OnCall => "on_call",
            TemplateName::Summary => "summary",
            TemplateName::RunbookOutput => "runbook_output",
            TemplateName::ChangeProposed => "change_proposed",
            TemplateName::ChangeResult => "change_result",
            TemplateName::PlaybookList => "playbook_list",
            TemplateName::Stats => "stats",
            TemplateName::Postmortem => "postmortem.md",
            TemplateName::Maintenance => "maintenance",
        }
    }
}

/// A label and a value shown side by side (Slack section fields, Discord embed fields).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub label: String,
    pub value: String,
}

/// A block of a message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Section {
    /// Text rendered from a template with this data (all strings in it are escaped).
    Text {
        template: TemplateName,
        data: serde_json::Value,
    },
    /// Label/value pairs.
    Fields { fields: Vec<Field> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ButtonStyle {
    Default,
    Primary,
    Danger,
}

/// A "are you sure?" dialog shown before a button's action runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmDialog {
    pub title: String,
    pub text: String,
    pub confirm: String,
    pub deny: String,
}

/// What pressing a button does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ButtonAction {
    Acknowledge {
        incident: IncidentKey,
    },
    Resolve {
        incident: IncidentKey,
    },
    /// Confirm runbook request N (a change that passed its dry run).
    Confirm {
        request: i64,
    },
    /// Cancel runbook request N.
    Cancel {
        request: i64,
    },
    /// Propose the reverse of applied request N.
    Undo {
        request: i64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    pub label: String,
    pub style: ButtonStyle,
    pub action: ButtonAction,
    pub confirm: Option<ConfirmDialog>,
}

/// One message, chat-neutral.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub visibility: Visibility,
    pub sections: Vec<Section>,
    pub buttons: Vec<Button>,
}

impl Message {
    /// A message of one template section.
    pub fn from_template(
        visibility: Visibility,
        template: TemplateName,
        data: serde_json::Value,
    ) -> Message {
        Message {
            visibility,
            sections: vec![Section::Text { template, data }],
            buttons: Vec::new(),
        }
    }

    /// A short message from the `notice` template.
    pub fn notice(visibility: Visibility, text: impl Into<String>) -> Message {
        Message::from_template(
            visibility,
            TemplateName::Notice,
            serde_json::json!({ "text": text.into() }),
        )
    }

    pub fn with_fields(mut self, fields: Vec<Field>) -> Message {
        self.sections.push(Section::Fields { fields });
        self
    }

    pub fn with_buttons(mut self, buttons: Vec<Button>) -> Message {
        self.buttons = buttons;
        self
    }
}
