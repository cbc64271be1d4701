//! Meta webhooks: Messenger, Instagram messaging and the WhatsApp Cloud API.
//!
//! A listener answers the subscription handshake with [`verify_subscription`] and hands every
//! POST to [`handle_post`], which checks the size, verifies `X-Hub-Signature-256` against the
//! raw body, and reads the batch: Messenger and Instagram as `entry[].messaging[]`, WhatsApp as
//! `entry[].changes[].value.messages[]`, exactly as Meta documents them. One body can carry
//! many customer messages; each becomes a [`SocialContact`]. Echoes of the business's own
//! messages, read and delivery receipts, statuses, reactions and the like are listed as
//! [`Skipped`], never as errors, so the listener can still answer 200 and Meta does not retry.

mod config;
mod payload;
mod verify;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use vuoro_proto::v1;

pub use config::{DEFAULT_MAX_BODY_BYTES, MetaAccountConfig, MetaConfig, MetaSettings};
pub use verify::{
    HandshakeError, MAX_CHALLENGE_CHARS, Secret, SignatureError, signature_header, verify_signature,
    verify_subscription,
};

use crate::ids::bounded_id;
use crate::language;
use crate::text::{one_line, set_attribute};
use payload::{
    Change, Entry, FbMessage, MessagingEvent, Notification, Postback, WaMedia, WaMessage, WaStatus, WaValue,
    id_string,
};

/// Most bytes of one message's text kept on a [`SocialContact`] (WhatsApp allows 4096
/// characters, Messenger 2000).
pub const MAX_TEXT_BYTES: usize = 16 * 1024;

/// The platform a webhook came from.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// Facebook Messenger (`"object": "page"`).
    Messenger,
    /// Instagram messaging (`"object": "instagram"`).
    Instagram,
    /// WhatsApp Cloud API (`"object": "whatsapp_business_account"`).
    Whatsapp,
}

impl Platform {
    /// `"messenger"`, `"instagram"` or `"whatsapp"`: the contact id namespace and the
    /// `platform` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Messenger => "messenger",
            Platform::Instagram => "instagram",
            Platform::Whatsapp => "whatsapp",
        }
    }

    fn of_object(object: &str) -> Option<Platform> {
        match object {
            "page" => Some(Platform::Messenger),
            "instagram" => Some(Platform::Instagram),
            "whatsapp_business_account" => Some(Platform::Whatsapp),
            _ => None,
        }
    }
}

/// An attachment of a social message, described but not fetched.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct MediaAttachment {
    /// `image`, `video`, `audio`, `file`, `document`, `sticker`, `share`, `fallback`, …: the
    /// platform's own word.
    pub kind: String,
    /// MIME type, when the platform gives it (WhatsApp).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mime_type: String,
    /// File name (WhatsApp documents) or title (Messenger fallbacks), when given.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Where to fetch it (Messenger, Instagram; these URLs expire).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// Media id to fetch through the Graph API (WhatsApp).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub media_id: String,
    /// SHA-256 of the media as the platform reports it (WhatsApp).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sha256: String,
}

/// A place a customer shared (WhatsApp `location`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Location {
    /// Latitude in degrees.
    pub latitude: f64,
    /// Longitude in degrees.
    pub longitude: f64,
    /// Name of the place, when given.
    pub name: String,
    /// Address, when given.
    pub address: String,
}

/// One customer message from a webhook, normalised.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SocialContact {
    /// The social contact: id `{platform}:{mid or wamid}` (hashed when too long), tenant and
    /// route from the business account, the customer's platform id as address (E.164 for
    /// WhatsApp) and profile name when given, the language detected on the text, and
    /// attributes for the agent: `platform`, `account_id`, `text` (first 4096 bytes),
    /// `attachments` (a one-line summary), `reply_to`, `payload` (a button's or quick reply's
    /// payload), `conversation_id`, `queue`.
    #[serde(skip)]
    pub contact: v1::Contact,
    /// The platform.
    pub platform: Platform,
    /// The business account it was sent to: Page id, Instagram account id, or WhatsApp phone
    /// number id.
    pub account_id: String,
    /// The customer's id on the platform: PSID, IGSID, or WhatsApp id (the phone number).
    pub sender_id: String,
    /// The platform's message id (`mid`, `wamid`): what a reply or a dedupe refers to.
    pub message_id: String,
    /// The conversation: `{platform}-conversation:{account_id}/{sender_id}` (hashed when
    /// too long); every message of one customer to one account shares it.
    pub conversation_id: String,
    /// When the customer sent it, Unix milliseconds, when given.
    pub sent_at_unix_ms: Option<i64>,
    /// The text: the message, a media caption, a button's title, or a described location or
    /// shared contact; at most [`MAX_TEXT_BYTES`].
    pub text: String,
    /// Media, described.
    pub attachments: Vec<MediaAttachment>,
    /// The message id this one replies to, when it is a reply.
    pub reply_to: Option<String>,
    /// A shared location.
    pub location: Option<Location>,
}

/// Why an event of a batch did not become a contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum SkipReason {
    /// The business's own message, echoed back.
    Echo,
    /// A read receipt (`read`, `messaging_seen`).
    Read,
    /// A delivery receipt.
    Delivery,
    /// A WhatsApp status of a message the business sent (`sent`, `delivered`, `read`,
    /// `failed`, …).
    Status(String),
    /// A reaction to a message.
    Reaction,
    /// The customer deleted the message.
    Deleted,
    /// The customer edited an earlier message.
    Edit,
    /// Sent while another app controls the conversation (`standby`).
    Standby,
    /// A WhatsApp system notice (e.g. the customer changed number).
    System,
    /// Another kind of event (optins, referrals, handovers, policy notices, non-`messages`
    /// WhatsApp fields): its key or field name.
    Other(String),
    /// A message type Vuoro cannot show an agent (e.g. WhatsApp `unsupported`, an order).
    Unsupported(String),
    /// A WhatsApp `errors` entry.
    PlatformError(String),
    /// A message to a business account that is not configured.
    UnknownAccount(String),
    /// A message without an id or a sender, or an event that is not of the documented shape.
    Malformed(String),
}

impl SkipReason {
    /// A stable snake_case code for metrics labels and dead-letter records, e.g.
    /// `unknown_account` or `read`.
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::Echo => "echo",
            SkipReason::Read => "read",
            SkipReason::Delivery => "delivery",
            SkipReason::Status(_) => "status",
            SkipReason::Reaction => "reaction",
            SkipReason::Deleted => "deleted",
            SkipReason::Edit => "edit",
            SkipReason::Standby => "standby",
            SkipReason::System => "system",
            SkipReason::Other(_) => "other",
            SkipReason::Unsupported(_) => "unsupported",
            SkipReason::PlatformError(_) => "platform_error",
            SkipReason::UnknownAccount(_) => "unknown_account",
            SkipReason::Malformed(_) => "malformed_event",
        }
    }

    /// True for what the listener must dead-letter because a customer's message may be lost
    /// (an unknown account, an unsupported type, a malformed event, a platform error); false
    /// for receipts, echoes and the other events that are routinely ignored.
    pub fn needs_dead_letter(&self) -> bool {
        matches!(
            self,
            SkipReason::Unsupported(_)
                | SkipReason::PlatformError(_)
                | SkipReason::UnknownAccount(_)
                | SkipReason::Malformed(_)
        )
    }
}

/// An event of a batch that did not become a contact, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Where in the body, e.g. `entry[0].changes[1].value.statuses[0]`.
    pub at: String,
    /// The message id, when the event has one.
    pub message_id: Option<String>,
    /// Why.
    pub reason: SkipReason,
    /// The listener must dead-letter it: [`SkipReason::needs_dead_letter`].
    pub dead_letter: bool,
}

/// What one webhook body held.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct WebhookBatch {
    /// Customer messages, in the order of the body.
    pub contacts: Vec<SocialContact>,
    /// Everything else, in the order of the body.
    pub skipped: Vec<Skipped>,
}

/// Why a webhook body was refused as a whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// Larger than the configured limit.
    #[error("webhook body of {size} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// The body's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The signature is missing, malformed or wrong.
    #[error("{0}")]
    BadSignature(#[from] SignatureError),
    /// The body is not UTF-8.
    #[error("webhook body is not UTF-8 (invalid byte at offset {offset})")]
    InvalidUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The body is not a notification: not JSON, or without `object` and `entry`.
    #[error("malformed webhook body at line {line}, column {column}: {message}")]
    Malformed {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the JSON reader said.
        message: String,
    },
    /// An `object` other than `page`, `instagram` and `whatsapp_business_account`.
    #[error("unsupported webhook object \"{0}\"")]
    UnsupportedObject(String),
}

impl MetaError {
    /// A stable snake_case code for metrics labels and dead-letter records.
    pub fn code(&self) -> &'static str {
        match self {
            MetaError::TooLarge { .. } => "too_large",
            MetaError::BadSignature(SignatureError::Missing) => "signature_missing",
            MetaError::BadSignature(SignatureError::Malformed) => "signature_malformed",
            MetaError::BadSignature(SignatureError::Mismatch) => "signature_mismatch",
            MetaError::InvalidUtf8 { .. } => "invalid_utf8",
            MetaError::Malformed { .. } => "malformed_json",
            MetaError::UnsupportedObject(_) => "unsupported_object",
        }
    }

    /// The HTTP status to answer: 413 too large, 401 bad signature, 400 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            MetaError::TooLarge { .. } => 413,
            MetaError::BadSignature(_) => 401,
            _ => 400,
        }
    }
}

/// Everything a webhook POST needs: the size limit first (before any hashing), then the
/// signature of the raw body, then [`normalize`].
pub fn handle_post(
    settings: &MetaSettings,
    app_secret: &Secret,
    signature: Option<&str>,
    body: &[u8],
) -> Result<WebhookBatch, MetaError> {
    if body.len() > settings.max_body_bytes {
        return Err(MetaError::TooLarge { size: body.len(), limit: settings.max_body_bytes });
    }
    verify_signature(app_secret, signature, body)?;
    normalize(settings, body)
}

/// Reads a webhook body whose signature has been checked. Accepts one notification object, or
/// an array of them (the form Meta's Instagram examples print).
pub fn normalize(settings: &MetaSettings, body: &[u8]) -> Result<WebhookBatch, MetaError> {
    if body.len() > settings.max_body_bytes {
        return Err(MetaError::TooLarge { size: body.len(), limit: settings.max_body_bytes });
    }
    let text = std::str::from_utf8(body).map_err(|e| MetaError::InvalidUtf8 { offset: e.valid_up_to() })?;
    let malformed = |e: serde_json::Error| MetaError::Malformed {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    };
    let notifications: Vec<Notification> = if text.trim_start().starts_with('[') {
        serde_json::from_str(text).map_err(malformed)?
    } else {
        vec![serde_json::from_str(text).map_err(malformed)?]
    };
    let mut batch = WebhookBatch::default();
    let several = notifications.len() > 1;
    for (n, notification) in notifications.iter().enumerate() {
        let platform = Platform::of_object(&notification.object)
            .ok_or_else(|| MetaError::UnsupportedObject(one_line(&notification.object)))?;
        let prefix = if several { format!("[{n}].") } else { String::new() };
        for (e, entry) in notification.entry.iter().enumerate() {
            let at = format!("{prefix}entry[{e}]");
            match platform {
                Platform::Messenger | Platform::Instagram => {
                    messaging_entry(settings, platform, entry, &at, &mut batch)
                }
                Platform::Whatsapp => whatsapp_entry(settings, entry, &at, &mut batch),
            }
        }
    }
    Ok(batch)
}

fn skip(batch: &mut WebhookBatch, at: String, message_id: Option<String>, reason: SkipReason) {
    let dead_letter = reason.needs_dead_letter();
    batch.skipped.push(Skipped { at, message_id, reason, dead_letter });
}

fn messaging_entry(
    settings: &MetaSettings,
    platform: Platform,
    entry: &Entry,
    at: &str,
    batch: &mut WebhookBatch,
) {
    for i in 0..entry.standby.len() {
        skip(batch, format!("{at}.standby[{i}]"), None, SkipReason::Standby);
    }
    let account = id_string(&entry.id);
    for (i, raw) in entry.messaging.iter().enumerate() {
        let at = format!("{at}.messaging[{i}]");
        let event: MessagingEvent = match serde_json::from_value(raw.clone()) {
            Ok(event) => event,
            Err(e) => {
                skip(batch, at, None, SkipReason::Malformed(e.to_string()));
                continue;
            }
        };
        if let Some(message) = &event.message {
            messaging_message(settings, platform, account.as_deref(), &event, message, at, batch);
        } else if let Some(postback) = &event.postback {
            messaging_postback(settings, platform, account.as_deref(), &event, postback, at, batch);
        } else {
            let reason = match event.rest.keys().find(|k| !matches!(k.as_str(), "time")) {
                Some(k) if k == "read" || k == "messaging_seen" => SkipReason::Read,
                Some(k) if k == "delivery" => SkipReason::Delivery,
                Some(k) if k == "reaction" => SkipReason::Reaction,
                Some(k) if k == "message_edit" => SkipReason::Edit,
                Some(k) => SkipReason::Other(k.clone()),
                None => SkipReason::Malformed("an event with no known kind".to_owned()),
            };
            skip(batch, at, None, reason);
        }
    }
}

/// The parts every social contact starts from.
struct Origin {
    platform: Platform,
    account: String,
    sender: String,
    message_id: String,
    sent_at_unix_ms: Option<i64>,
}

fn messaging_message(
    settings: &MetaSettings,
    platform: Platform,
    account: Option<&str>,
    event: &MessagingEvent,
    message: &FbMessage,
    at: String,
    batch: &mut WebhookBatch,
) {
    let mid = message.mid.clone().filter(|m| !m.trim().is_empty());
    if message.is_echo {
        return skip(batch, at, mid, SkipReason::Echo);
    }
    if message.is_deleted {
        return skip(batch, at, mid, SkipReason::Deleted);
    }
    if message.is_unsupported {
        return skip(batch, at, mid, SkipReason::Unsupported("is_unsupported".to_owned()));
    }
    let Some(origin) = origin(platform, account, event, mid.clone()) else {
        return skip(batch, at, mid, SkipReason::Malformed("a message without mid or sender".to_owned()));
    };
    let Some(route) = settings.route(platform, &origin.account) else {
        return skip(batch, at, mid, SkipReason::UnknownAccount(origin.account.clone()));
    };
    let attachments = message
        .attachments
        .iter()
        .map(|a| {
            let payload = a.payload.as_ref();
            MediaAttachment {
                kind: a.kind.clone().unwrap_or_default(),
                url: payload.and_then(|p| p.url.clone()).unwrap_or_default(),
                name: payload.and_then(|p| p.title.clone()).unwrap_or_default(),
                ..MediaAttachment::default()
            }
        })
        .collect();
    let built = Built {
        text: message.text.clone().unwrap_or_default(),
        attachments,
        reply_to: message.reply_to.as_ref().and_then(|r| r.mid.clone()),
        payload: message.quick_reply.as_ref().and_then(|q| q.payload.clone()),
        display_name: String::new(),
        location: None,
    };
    batch.contacts.push(contact(route, origin, built));
}

fn messaging_postback(
    settings: &MetaSettings,
    platform: Platform,
    account: Option<&str>,
    event: &MessagingEvent,
    postback: &Postback,
    at: String,
    batch: &mut WebhookBatch,
) {
    let mid = postback.mid.clone().filter(|m| !m.trim().is_empty());
    let Some(origin) = origin(platform, account, event, mid.clone()) else {
        // A postback without a mid (older API versions) has no stable id to dedupe on.
        return skip(batch, at, mid, SkipReason::Other("postback".to_owned()));
    };
    let Some(route) = settings.route(platform, &origin.account) else {
        return skip(batch, at, mid, SkipReason::UnknownAccount(origin.account.clone()));
    };
    let built = Built {
        text: postback.title.clone().unwrap_or_default(),
        attachments: Vec::new(),
        reply_to: None,
        payload: postback.payload.clone(),
        display_name: String::new(),
        location: None,
    };
    batch.contacts.push(contact(route, origin, built));
}

/// Who sent what to whom. The account is the entry's id, or else the event's recipient (the
/// Page or Instagram account a customer writes to).
fn origin(
    platform: Platform,
    account: Option<&str>,
    event: &MessagingEvent,
    mid: Option<String>,
) -> Option<Origin> {
    let sender = event.sender.as_ref().and_then(|s| id_string(&s.id))?;
    let account =
        account.map(str::to_owned).or_else(|| event.recipient.as_ref().and_then(|r| id_string(&r.id)))?;
    Some(Origin { platform, account, sender, message_id: mid?, sent_at_unix_ms: event.timestamp })
}

fn whatsapp_entry(settings: &MetaSettings, entry: &Entry, at: &str, batch: &mut WebhookBatch) {
    for (c, raw) in entry.changes.iter().enumerate() {
        let at = format!("{at}.changes[{c}]");
        let change: Change = match serde_json::from_value(raw.clone()) {
            Ok(change) => change,
            Err(e) => {
                skip(batch, at, None, SkipReason::Malformed(e.to_string()));
                continue;
            }
        };
        if change.field != "messages" {
            skip(batch, at, None, SkipReason::Other(change.field));
            continue;
        }
        let value: WaValue = match serde_json::from_value(change.value) {
            Ok(value) => value,
            Err(e) => {
                skip(batch, format!("{at}.value"), None, SkipReason::Malformed(e.to_string()));
                continue;
            }
        };
        whatsapp_value(settings, &value, &format!("{at}.value"), batch);
    }
}

fn whatsapp_value(settings: &MetaSettings, value: &WaValue, at: &str, batch: &mut WebhookBatch) {
    for (i, raw) in value.statuses.iter().enumerate() {
        let at = format!("{at}.statuses[{i}]");
        match serde_json::from_value::<WaStatus>(raw.clone()) {
            Ok(status) => {
                skip(batch, at, status.id, SkipReason::Status(status.status.unwrap_or_default()));
            }
            Err(e) => skip(batch, at, None, SkipReason::Malformed(e.to_string())),
        }
    }
    for (i, raw) in value.errors.iter().enumerate() {
        let detail = raw.get("title").and_then(Value::as_str).unwrap_or("error").to_owned();
        skip(batch, format!("{at}.errors[{i}]"), None, SkipReason::PlatformError(detail));
    }
    let account = value.metadata.as_ref().and_then(|m| m.phone_number_id.clone());
    for (i, raw) in value.messages.iter().enumerate() {
        let at = format!("{at}.messages[{i}]");
        let message: WaMessage = match serde_json::from_value(raw.clone()) {
            Ok(message) => message,
            Err(e) => {
                skip(batch, at, None, SkipReason::Malformed(e.to_string()));
                continue;
            }
        };
        whatsapp_message(settings, value, account.as_deref(), &message, at, batch);
    }
}

fn whatsapp_message(
    settings: &MetaSettings,
    value: &WaValue,
    account: Option<&str>,
    message: &WaMessage,
    at: String,
    batch: &mut WebhookBatch,
) {
    let wamid = message.id.clone().filter(|id| !id.trim().is_empty());
    let kind = message.kind.clone().unwrap_or_default();
    let reason = match kind.as_str() {
        "reaction" => Some(SkipReason::Reaction),
        "system" => Some(SkipReason::System),
        "text" | "image" | "video" | "audio" | "document" | "sticker" | "location" | "contacts"
        | "interactive" | "button" => None,
        other => Some(SkipReason::Unsupported(other.to_owned())),
    };
    if let Some(reason) = reason {
        return skip(batch, at, wamid, reason);
    }
    let (Some(account), Some(sender), Some(id)) = (account, message.from.clone(), wamid.clone()) else {
        return skip(
            batch,
            at,
            wamid,
            SkipReason::Malformed("a message without id, from or phone_number_id".into()),
        );
    };
    let Some(route) = settings.route(Platform::Whatsapp, account) else {
        return skip(batch, at, wamid, SkipReason::UnknownAccount(account.to_owned()));
    };
    let display_name = value
        .contacts
        .iter()
        .find(|c| c.wa_id.as_deref() == Some(sender.as_str()))
        .or(value.contacts.first().filter(|_| value.contacts.len() == 1))
        .and_then(|c| c.profile.as_ref()?.name.clone())
        .unwrap_or_default();
    let media = |media: &Option<WaMedia>, kind: &str| -> Option<MediaAttachment> {
        let m = media.as_ref()?;
        Some(MediaAttachment {
            kind: kind.to_owned(),
            mime_type: m.mime_type.clone().unwrap_or_default(),
            name: m.filename.clone().unwrap_or_default(),
            media_id: m.id.clone().unwrap_or_default(),
            sha256: m.sha256.clone().unwrap_or_default(),
            url: String::new(),
        })
    };
    let caption =
        |media: &Option<WaMedia>| media.as_ref().and_then(|m| m.caption.clone()).unwrap_or_default();
    let mut built = Built {
        text: String::new(),
        attachments: Vec::new(),
        reply_to: message.context.as_ref().and_then(|c| c.id.clone()),
        payload: None,
        display_name,
        location: None,
    };
    match kind.as_str() {
        "text" => built.text = message.text.as_ref().and_then(|t| t.body.clone()).unwrap_or_default(),
        "image" | "video" | "audio" | "document" | "sticker" => {
            let field = match kind.as_str() {
                "image" => &message.image,
                "video" => &message.video,
                "audio" => &message.audio,
                "document" => &message.document,
                _ => &message.sticker,
            };
            built.text = caption(field);
            built.attachments.extend(media(field, &kind));
        }
        "location" => {
            if let Some(l) = &message.location {
                let place = [l.name.as_deref(), l.address.as_deref()]
                    .into_iter()
                    .flatten()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(", ");
                if let (Some(latitude), Some(longitude)) = (l.latitude, l.longitude) {
                    built.text = if place.is_empty() {
                        format!("Location: {latitude}, {longitude}")
                    } else {
                        format!("Location: {place} ({latitude}, {longitude})")
                    };
                    built.location = Some(Location {
                        latitude,
                        longitude,
                        name: l.name.clone().unwrap_or_default(),
                        address: l.address.clone().unwrap_or_default(),
                    });
                }
            }
        }
        "contacts" => {
            let names: Vec<String> = message
                .contacts
                .iter()
                .flatten()
                .filter_map(|c| c.name.as_ref()?.formatted_name.clone())
                .collect();
            built.text = format!("Shared contact: {}", names.join(", "));
        }
        "interactive" => {
            if let Some(reply) =
                message.interactive.as_ref().and_then(|i| i.button_reply.as_ref().or(i.list_reply.as_ref()))
            {
                built.text = [reply.title.as_deref(), reply.description.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": ");
                built.payload = reply.id.clone();
            }
        }
        _ => {
            if let Some(button) = &message.button {
                built.text = button.text.clone().unwrap_or_default();
                built.payload = button.payload.clone();
            }
        }
    }
    let sent_at_unix_ms = message
        .timestamp
        .as_deref()
        .and_then(|t| t.trim().parse::<i64>().ok())
        .map(|s| s.saturating_mul(1000));
    let origin = Origin {
        platform: Platform::Whatsapp,
        account: account.to_owned(),
        sender,
        message_id: id,
        sent_at_unix_ms,
    };
    batch.contacts.push(contact(route, origin, built));
}

/// What a message says, before it is put on a contact.
struct Built {
    text: String,
    attachments: Vec<MediaAttachment>,
    reply_to: Option<String>,
    payload: Option<String>,
    display_name: String,
    location: Option<Location>,
}

fn contact(route: &crate::route::Route, origin: Origin, built: Built) -> SocialContact {
    let Origin { platform, account, sender, message_id, sent_at_unix_ms } = origin;
    let (text, _) = crate::text::truncate(built.text.trim(), MAX_TEXT_BYTES);
    let text = text.to_owned();
    let conversation_id =
        bounded_id(&format!("{}-conversation", platform.as_str()), &format!("{account}/{sender}"));
    let address = match platform {
        Platform::Whatsapp if sender.bytes().all(|b| b.is_ascii_digit()) => format!("+{sender}"),
        _ => sender.clone(),
    };
    let mut contact = v1::Contact {
        id: bounded_id(platform.as_str(), &message_id),
        channel: v1::Channel::Social as i32,
        customer: Some(v1::Customer { display_name: one_line(&built.display_name), address }),
        ..Default::default()
    };
    route.apply(&mut contact);
    let attrs = &mut contact.attributes;
    set_attribute(attrs, "platform", platform.as_str());
    set_attribute(attrs, "account_id", &account);
    set_attribute(attrs, "text", &text);
    let summary = built
        .attachments
        .iter()
        .map(|a| {
            let detail = [a.mime_type.as_str(), a.name.as_str()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>();
            if detail.is_empty() { a.kind.clone() } else { format!("{} ({})", a.kind, detail.join(", ")) }
        })
        .collect::<Vec<_>>()
        .join("; ");
    set_attribute(attrs, "attachments", &summary);
    set_attribute(attrs, "reply_to", built.reply_to.as_deref().unwrap_or_default());
    set_attribute(attrs, "payload", built.payload.as_deref().unwrap_or_default());
    set_attribute(attrs, "conversation_id", &conversation_id);
    language::assign(&mut contact, None, &text);
    SocialContact {
        contact,
        platform,
        account_id: account,
        sender_id: sender,
        message_id,
        conversation_id,
        sent_at_unix_ms,
        text,
        attachments: built.attachments,
        reply_to: built.reply_to,
        location: built.location,
    }
}
