//! The webhook payload shapes as Meta documents them, read leniently: unknown fields are
//! ignored (Meta adds fields over time), and each event is decoded on its own so that one odd
//! event does not sink its batch.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// One notification: `{"object": …, "entry": [ … ]}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Notification {
    pub object: String,
    #[serde(default)]
    pub entry: Vec<Entry>,
}

/// One entry: a Page or Instagram account (`messaging`, `standby`) or a WhatsApp business
/// account (`changes`).
#[derive(Debug, Deserialize)]
pub(crate) struct Entry {
    #[serde(default)]
    pub id: Value,
    #[serde(default)]
    pub messaging: Vec<Value>,
    #[serde(default)]
    pub standby: Vec<Value>,
    #[serde(default)]
    pub changes: Vec<Value>,
}

/// A Messenger or Instagram messaging event.
#[derive(Debug, Deserialize)]
pub(crate) struct MessagingEvent {
    pub sender: Option<Party>,
    pub recipient: Option<Party>,
    pub timestamp: Option<i64>,
    pub message: Option<FbMessage>,
    pub postback: Option<Postback>,
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Party {
    #[serde(default)]
    pub id: Value,
}

#[derive(Debug, Deserialize)]
pub(crate) struct FbMessage {
    pub mid: Option<String>,
    pub text: Option<String>,
    #[serde(default)]
    pub is_echo: bool,
    #[serde(default)]
    pub is_deleted: bool,
    #[serde(default)]
    pub is_unsupported: bool,
    #[serde(default)]
    pub attachments: Vec<FbAttachment>,
    pub reply_to: Option<FbReplyTo>,
    pub quick_reply: Option<FbQuickReply>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct FbAttachment {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub payload: Option<FbAttachmentPayload>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct FbAttachmentPayload {
    pub url: Option<String>,
    pub title: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct FbReplyTo {
    pub mid: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct FbQuickReply {
    pub payload: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Postback {
    pub mid: Option<String>,
    pub title: Option<String>,
    pub payload: Option<String>,
}

/// A WhatsApp change: `{"field": …, "value": …}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Change {
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub value: Value,
}

/// The value of a WhatsApp `messages` change.
#[derive(Debug, Deserialize)]
pub(crate) struct WaValue {
    pub metadata: Option<WaMetadata>,
    #[serde(default)]
    pub contacts: Vec<WaContact>,
    #[serde(default)]
    pub messages: Vec<Value>,
    #[serde(default)]
    pub statuses: Vec<Value>,
    #[serde(default)]
    pub errors: Vec<Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WaMetadata {
    pub phone_number_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WaContact {
    pub wa_id: Option<String>,
    pub profile: Option<WaProfile>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WaProfile {
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WaMessage {
    pub from: Option<String>,
    pub id: Option<String>,
    pub timestamp: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub text: Option<WaText>,
    pub image: Option<WaMedia>,
    pub video: Option<WaMedia>,
    pub audio: Option<WaMedia>,
    pub document: Option<WaMedia>,
    pub sticker: Option<WaMedia>,
    pub location: Option<WaLocation>,
    pub contacts: Option<Vec<WaSharedContact>>,
    pub interactive: Option<WaInteractive>,
    pub button: Option<WaButton>,
    pub context: Option<WaContext>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WaText {
    pub body: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WaMedia {
    pub id: Option<String>,
    pub mime_type: Option<String>,
    pub sha256: Option<String>,
    pub caption: Option<String>,
    pub filename: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WaLocation {
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub name: Option<String>,
    pub address: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WaSharedContact {
    pub name: Option<WaSharedName>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WaSharedName {
    pub formatted_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WaInteractive {
    pub button_reply: Option<WaReply>,
    pub list_reply: Option<WaReply>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WaReply {
    pub id: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WaButton {
    pub payload: Option<String>,
    pub text: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WaContext {
    pub id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WaStatus {
    pub id: Option<String>,
    pub status: Option<String>,
}

/// An id Meta sends as a string (ids are strings in every documented payload; a number is
/// accepted too).
pub(crate) fn id_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
