//! Inbound email: an RFC 5322 message as received over SMTP, with its envelope, becomes one
//! email contact per tenant it was sent to.
//!
//! [`normalize`] checks the size, parses the MIME structure with `mail-parser` (every charset
//! it knows decoded, RFC 2047 headers included), refuses MIME bombs, applies the loop guard
//! (auto-replies, bounces, list mail and the null sender never become contacts), routes each
//! recipient through the configuration, and extracts what an agent needs: sender, subject,
//! text (from text/plain, or else from the HTML with its tags stripped), attachments as
//! metadata, and the threading keys that join a follow-up to its conversation.

mod config;

use std::collections::HashSet;

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::html::html_to_text;
use mail_parser::{Address, HeaderName, HeaderValue, Message, MessageParser, MimeHeaders, PartType};
use serde::{Deserialize, Serialize};
use vuoro_proto::v1;

pub use config::{
    DEFAULT_MAX_DEPTH, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_PARTS, DEFAULT_MAX_TEXT_BYTES, EmailConfig,
    EmailRouteConfig, EmailSettings,
};

use crate::ids::{bounded_id, hashed_id};
use crate::language;
use crate::route::Route;
use crate::text::{one_line, set_attribute, truncate};

/// The SMTP envelope of a message: what the client said in `MAIL FROM` and `RCPT TO`, which
/// may differ from the headers (a Bcc, a forward, a bounce).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// The reverse path, with or without angle brackets; empty or `<>` is the null sender
    /// that bounces and auto-replies use.
    pub mail_from: String,
    /// The recipients accepted, in order.
    pub rcpt_to: Vec<String>,
}

/// A mailbox from a header.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Mailbox {
    /// Display name, decoded; empty when none.
    pub name: String,
    /// The address.
    pub address: String,
}

/// Where the body text came from.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TextSource {
    /// text/plain parts.
    Plain,
    /// text/html parts, tags stripped (the message had no text/plain body).
    Html,
    /// No text body.
    None,
}

/// An attachment, described but not carried: the listener stores the bytes if it wants them.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Attachment {
    /// File name as given (decoded), or empty.
    pub name: String,
    /// MIME type, e.g. `application/pdf`, lowercase.
    pub content_type: String,
    /// Decoded size in bytes.
    pub size_bytes: usize,
    /// Shown inline in the body (e.g. an embedded image) rather than attached.
    pub inline: bool,
}

/// The threading keys of a message, from `Message-ID`, `In-Reply-To` and `References`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Thread {
    /// The message's own id, without angle brackets.
    pub message_id: Option<String>,
    /// The ids it replies to.
    pub in_reply_to: Vec<String>,
    /// The ids of its thread, oldest (the root) first.
    pub references: Vec<String>,
    /// The conversation it belongs to: the contact id of the thread's first message (the
    /// first `References` id, else the `In-Reply-To` id, else its own). A follow-up therefore
    /// carries the contact id of the mail that opened the conversation.
    pub conversation_id: String,
    /// Contact ids of the messages this one answers, nearest first (`In-Reply-To`, then
    /// `References` newest to oldest): the keys to look the conversation up by, for when the
    /// root is not known here (it was sent by an agent, or the client cut the references).
    pub related_ids: Vec<String>,
}

/// A normalised email for one tenant.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EmailContact {
    /// The email contact: id from the Message-ID, tenant and route from the recipient, the
    /// sender as customer, the language (`Content-Language`, else detected), and attributes for
    /// the agent: `subject`, `text` (first 4096 bytes), `from`, `reply_to`, `recipient`,
    /// `message_id`, `conversation_id`, `attachments` (a one-line summary), `queue`.
    #[serde(skip)]
    pub contact: v1::Contact,
    /// The recipient address that routed it here.
    pub recipient: String,
    /// The author (`From`, else the envelope sender).
    pub from: Mailbox,
    /// Where replies go (`Reply-To`, else `From`).
    pub reply_to: String,
    /// Subject, decoded.
    pub subject: String,
    /// Body text, decoded, at most the configured number of bytes.
    pub text: String,
    /// The text was cut to the limit.
    pub text_truncated: bool,
    /// Where the text came from.
    pub text_source: TextSource,
    /// Attachments and inline parts that are not the body.
    pub attachments: Vec<Attachment>,
    /// Threading keys.
    pub thread: Thread,
    /// The `Date` header, Unix milliseconds, when present and readable.
    pub date_unix_ms: Option<i64>,
}

/// Why a message is not mail for a person to answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum LoopReason {
    /// The envelope sender is null (`MAIL FROM:<>`) or `Return-Path: <>`: bounces and
    /// auto-replies use it, and nothing may be sent back to it.
    #[error("null sender (empty return path)")]
    NullSender,
    /// `Auto-Submitted` other than `no` (RFC 3834): an auto-reply or generated message.
    #[error("Auto-Submitted: {0}")]
    AutoSubmitted(String),
    /// `Precedence: bulk`, `junk` or `list`.
    #[error("Precedence: {0}")]
    Precedence(String),
    /// `List-Id` (RFC 2919): mailing-list traffic.
    #[error("mailing list ({0})")]
    MailingList(String),
    /// An auto-responder's own marker (`X-Autoreply`, `X-Autorespond`).
    #[error("auto-responder header {0}")]
    AutoResponder(String),
    /// A delivery or read report (`multipart/report`), or mail from `MAILER-DAEMON` or
    /// `postmaster`.
    #[error("bounce or delivery report ({0})")]
    Bounce(String),
}

/// Why a message was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Larger than the configured limit.
    #[error("message of {size} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// The message's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// No header could be read: not an RFC 5322 message.
    #[error("not an RFC 5322 message (no header found)")]
    Unparseable,
    /// More MIME parts than allowed.
    #[error("MIME bomb: {parts} parts, at most {limit}")]
    TooManyParts {
        /// Parts counted (counting stops a little past the limit).
        parts: usize,
        /// The limit.
        limit: usize,
    },
    /// MIME nesting deeper than allowed.
    #[error("MIME bomb: nested {depth} deep, at most {limit}")]
    TooDeep {
        /// Depth reached (counting stops past the limit).
        depth: usize,
        /// The limit.
        limit: usize,
    },
    /// Automatic or list mail: accepted, never a contact (the loop guard).
    #[error("not a contact: {0}")]
    Loop(LoopReason),
    /// No envelope recipient is routed to a tenant.
    #[error("no route for any recipient ({})", .recipients.join(", "))]
    NoRoute {
        /// The envelope recipients.
        recipients: Vec<String>,
    },
    /// Neither a `From` header nor an envelope sender names who wrote it.
    #[error("no sender: neither a From header nor an envelope sender")]
    NoSender,
    /// A body part declares a charset nobody can decode.
    #[error("unsupported charset \"{charset}\" in the message body")]
    UnsupportedCharset {
        /// The declared charset.
        charset: String,
    },
}

/// How an SMTP listener should answer the `DATA` of a refused message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmtpReply {
    /// Reply code, e.g. 250 or 552.
    pub code: u16,
    /// RFC 3463 enhanced status code, e.g. `"5.3.4"`.
    pub enhanced: &'static str,
}

impl EmailError {
    /// A stable snake_case code for metrics labels and dead-letter records, e.g.
    /// `"too_large"`, `"mime_bomb"`, `"loop_auto_submitted"`.
    pub fn code(&self) -> &'static str {
        match self {
            EmailError::TooLarge { .. } => "too_large",
            EmailError::Unparseable => "unparseable",
            EmailError::TooManyParts { .. } | EmailError::TooDeep { .. } => "mime_bomb",
            EmailError::Loop(reason) => match reason {
                LoopReason::NullSender => "loop_null_sender",
                LoopReason::AutoSubmitted(_) => "loop_auto_submitted",
                LoopReason::Precedence(_) => "loop_precedence",
                LoopReason::MailingList(_) => "loop_mailing_list",
                LoopReason::AutoResponder(_) => "loop_auto_responder",
                LoopReason::Bounce(_) => "loop_bounce",
            },
            EmailError::NoRoute { .. } => "no_route",
            EmailError::NoSender => "no_sender",
            EmailError::UnsupportedCharset { .. } => "unsupported_charset",
        }
    }

    /// The SMTP answer. Loop-guarded mail is accepted (250) so that no bounce goes back to an
    /// auto-responder, which is how mail loops start; the listener still dead-letters it with
    /// its reason. Everything else is refused permanently (5xx): the sender learns why.
    pub fn smtp_reply(&self) -> SmtpReply {
        match self {
            EmailError::Loop(_) => SmtpReply { code: 250, enhanced: "2.6.0" },
            EmailError::TooLarge { .. } => SmtpReply { code: 552, enhanced: "5.3.4" },
            EmailError::NoRoute { .. } => SmtpReply { code: 550, enhanced: "5.1.1" },
            EmailError::NoSender => SmtpReply { code: 550, enhanced: "5.1.7" },
            EmailError::UnsupportedCharset { .. } => SmtpReply { code: 554, enhanced: "5.6.3" },
            EmailError::Unparseable | EmailError::TooManyParts { .. } | EmailError::TooDeep { .. } => {
                SmtpReply { code: 554, enhanced: "5.6.0" }
            }
        }
    }
}

/// Normalises one received message into one contact per tenant among its routed recipients
/// (in `RCPT TO` order; a second recipient of the same tenant adds nothing). Checks, in
/// order: size, MIME structure, loop guard, routes, sender, charsets.
///
/// The contact id is `email:{Message-ID}` (hashed when longer than the id limit allows); a
/// message without a Message-ID is named by the SHA-256 of its bytes, so a retried delivery
/// still maps to the same contact.
pub fn normalize(
    settings: &EmailSettings,
    envelope: &Envelope,
    raw: &[u8],
) -> Result<Vec<EmailContact>, EmailError> {
    if raw.len() > settings.max_message_bytes {
        return Err(EmailError::TooLarge { size: raw.len(), limit: settings.max_message_bytes });
    }
    let message = MessageParser::default().parse(raw).ok_or(EmailError::Unparseable)?;
    if message.parts.is_empty() {
        return Err(EmailError::Unparseable);
    }
    check_structure(&message, settings.max_parts, settings.max_depth)?;
    if let Some(reason) = loop_reason(&message, envelope) {
        return Err(EmailError::Loop(reason));
    }

    let mut routed: Vec<(&str, &Route)> = Vec::new();
    for rcpt in &envelope.rcpt_to {
        if let Some(route) = settings.route_recipient(rcpt)
            && !routed.iter().any(|(_, r)| r.tenant == route.tenant)
        {
            routed.push((config::bare_address(rcpt), route));
        }
    }
    if routed.is_empty() {
        return Err(EmailError::NoRoute { recipients: envelope.rcpt_to.clone() });
    }

    let from = first_mailbox(message.from())
        .or_else(|| {
            let sender = config::bare_address(&envelope.mail_from);
            (!sender.is_empty()).then(|| Mailbox { name: String::new(), address: sender.to_owned() })
        })
        .ok_or(EmailError::NoSender)?;
    let reply_to = first_mailbox(message.reply_to()).map_or_else(|| from.address.clone(), |m| m.address);

    let (text, text_source) = body_text(&message)?;
    let (kept, text_truncated) = truncate(text.trim(), settings.max_text_bytes);
    let text = kept.to_owned();
    let subject = message.subject().map(one_line).unwrap_or_default();
    let attachments = attachments(&message);
    let thread = thread(&message, raw);
    let date_unix_ms = message.date().map(|d| d.to_timestamp().saturating_mul(1000));
    let content_language = content_language(&message);
    let detection_text = format!("{subject}\n{text}");
    let id = match &thread.message_id {
        Some(message_id) => bounded_id("email", message_id),
        None => hashed_id("email", raw),
    };

    let contacts = routed
        .into_iter()
        .map(|(recipient, route)| {
            let mut contact = v1::Contact {
                id: id.clone(),
                channel: v1::Channel::Email as i32,
                customer: Some(v1::Customer {
                    display_name: from.name.clone(),
                    address: from.address.clone(),
                }),
                ..Default::default()
            };
            route.apply(&mut contact);
            let attrs = &mut contact.attributes;
            set_attribute(attrs, "subject", &subject);
            set_attribute(attrs, "text", &text);
            set_attribute(attrs, "from", &from.address);
            set_attribute(attrs, "reply_to", &reply_to);
            set_attribute(attrs, "recipient", recipient);
            if let Some(message_id) = &thread.message_id {
                set_attribute(attrs, "message_id", message_id);
            }
            set_attribute(attrs, "conversation_id", &thread.conversation_id);
            set_attribute(attrs, "attachments", &summary(&attachments));
            language::assign(&mut contact, content_language.as_deref(), &detection_text);
            EmailContact {
                contact,
                recipient: recipient.to_owned(),
                from: from.clone(),
                reply_to: reply_to.clone(),
                subject: subject.clone(),
                text: text.clone(),
                text_truncated,
                text_source,
                attachments: attachments.clone(),
                thread: thread.clone(),
                date_unix_ms,
            }
        })
        .collect();
    Ok(contacts)
}

/// Refuses more than `max_parts` parts or nesting deeper than `max_depth`, counting the parts
/// of attached messages too. Walks with an explicit stack and stops counting once past a
/// limit, so a hostile structure costs no more than the limits allow.
fn check_structure(message: &Message<'_>, max_parts: usize, max_depth: usize) -> Result<(), EmailError> {
    let mut parts = 0usize;
    let mut stack: Vec<(&Message<'_>, u32, usize)> = vec![(message, 0, 0)];
    while let Some((msg, part_id, depth)) = stack.pop() {
        if depth > max_depth {
            return Err(EmailError::TooDeep { depth, limit: max_depth });
        }
        parts += 1;
        if parts > max_parts {
            return Err(EmailError::TooManyParts { parts, limit: max_parts });
        }
        let Some(part) = msg.parts.get(part_id as usize) else { continue };
        match &part.body {
            PartType::Multipart(children) => {
                // Children always come after their parent; anything else is ignored, so a
                // malformed tree cannot make the walk loop.
                stack.extend(children.iter().filter(|&&c| c > part_id).map(|&c| (msg, c, depth + 1)));
            }
            PartType::Message(inner) => stack.push((inner, 0, depth + 1)),
            _ => {}
        }
    }
    Ok(())
}

/// The loop guard: why this message must not become a contact, if it must not.
fn loop_reason(message: &Message<'_>, envelope: &Envelope) -> Option<LoopReason> {
    if config::bare_address(&envelope.mail_from).is_empty() {
        return Some(LoopReason::NullSender);
    }
    if raw_header(message, "Return-Path").is_some_and(|v| config::bare_address(&v).is_empty()) {
        return Some(LoopReason::NullSender);
    }
    if let Some(value) = raw_header(message, "Auto-Submitted") {
        let token = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if token != "no" {
            return Some(LoopReason::AutoSubmitted(token));
        }
    }
    if let Some(value) = raw_header(message, "Precedence") {
        let token = value.trim().to_ascii_lowercase();
        if matches!(token.as_str(), "bulk" | "junk" | "list") {
            return Some(LoopReason::Precedence(token));
        }
    }
    if let Some(value) = raw_header(message, "List-Id") {
        return Some(LoopReason::MailingList(one_line(&value)));
    }
    for name in ["X-Autoreply", "X-Autorespond"] {
        if raw_header(message, name).is_some() {
            return Some(LoopReason::AutoResponder(name.to_owned()));
        }
    }
    let root = &message.parts[0];
    if let Some(ct) = root.content_type()
        && ct.ctype().eq_ignore_ascii_case("multipart")
        && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"))
    {
        let kind = ct.attribute("report-type").unwrap_or("report").to_ascii_lowercase();
        return Some(LoopReason::Bounce(kind));
    }
    if let Some(from) = first_mailbox(message.from()) {
        let local = from.address.split('@').next().unwrap_or_default().to_ascii_lowercase();
        if local == "mailer-daemon" || local == "postmaster" {
            return Some(LoopReason::Bounce(local));
        }
    }
    None
}

/// A top-level header's value as written (unfolded and trimmed), by case-insensitive name.
fn raw_header(message: &Message<'_>, name: &str) -> Option<String> {
    let header = message.parts[0].headers.iter().find(|h| h.name.as_str().eq_ignore_ascii_case(name))?;
    let bytes = message.raw_message.get(header.offset_start as usize..header.offset_end as usize)?;
    let text = String::from_utf8_lossy(bytes);
    let unfolded: String = text.split(['\r', '\n']).map(str::trim).collect::<Vec<_>>().join(" ");
    Some(unfolded.trim().to_owned())
}

fn first_mailbox(address: Option<&Address<'_>>) -> Option<Mailbox> {
    let addr = address?.first()?;
    let address = addr.address()?.trim();
    if address.is_empty() {
        return None;
    }
    Some(Mailbox { name: addr.name().map(one_line).unwrap_or_default(), address: address.to_owned() })
}

/// The body text: the text/plain body parts joined, else the HTML body parts with tags
/// stripped. Refuses a body part whose declared charset is unknown.
fn body_text(message: &Message<'_>) -> Result<(String, TextSource), EmailError> {
    let mut plain = Vec::new();
    let mut html = Vec::new();
    let ids = message.text_body.iter().chain(&message.html_body);
    let mut seen = HashSet::new();
    for &id in ids {
        if !seen.insert(id) {
            continue;
        }
        let Some(part) = message.parts.get(id as usize) else { continue };
        if let Some(charset) = part.content_type().and_then(|ct| ct.attribute("charset"))
            && !known_charset(charset)
        {
            return Err(EmailError::UnsupportedCharset { charset: one_line(charset) });
        }
        match &part.body {
            PartType::Text(text) => plain.push(text.as_ref()),
            PartType::Html(markup) => html.push(markup.as_ref()),
            _ => {}
        }
    }
    if !plain.is_empty() {
        let text = plain.iter().map(|t| t.trim()).filter(|t| !t.is_empty()).collect::<Vec<_>>().join("\n\n");
        return Ok((normalize_newlines(&text), TextSource::Plain));
    }
    if !html.is_empty() {
        let text = html.iter().map(|h| html_to_text(h)).collect::<Vec<_>>().join("\n\n");
        return Ok((normalize_newlines(&text), TextSource::Html));
    }
    Ok((String::new(), TextSource::None))
}

/// Line ends as `\n`, trailing spaces dropped, at most one empty line in a row.
fn normalize_newlines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut empty_run = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            empty_run += 1;
            if empty_run > 1 {
                continue;
            }
        } else {
            empty_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim().to_owned()
}

/// UTF-8 (decoded natively) or a charset `mail-parser` has a decoder for.
fn known_charset(charset: &str) -> bool {
    let lower = charset.trim().trim_matches('"').to_ascii_lowercase();
    matches!(lower.as_str(), "utf-8" | "utf8" | "unicode-1-1-utf-8")
        || charset_decoder(lower.as_bytes()).is_some()
}

fn attachments(message: &Message<'_>) -> Vec<Attachment> {
    message
        .attachments
        .iter()
        .filter_map(|&id| message.parts.get(id as usize))
        .map(|part| {
            let content_type = part.content_type().map_or_else(
                || "application/octet-stream".to_owned(),
                |ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
                    None => ct.ctype().to_ascii_lowercase(),
                },
            );
            let inline = part.content_disposition().is_some_and(|d| d.is_inline())
                || matches!(part.body, PartType::InlineBinary(_));
            Attachment {
                name: part.attachment_name().map(one_line).unwrap_or_default(),
                content_type,
                size_bytes: part.len(),
                inline,
            }
        })
        .collect()
}

/// `name (type, N bytes)` for each attachment, `; `-separated, for the agent's desktop.
fn summary(attachments: &[Attachment]) -> String {
    attachments
        .iter()
        .map(|a| {
            let name = if a.name.is_empty() { "(unnamed)" } else { &a.name };
            format!("{name} ({}, {} bytes)", a.content_type, a.size_bytes)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn message_ids(value: &HeaderValue<'_>) -> Vec<String> {
    let ids: Vec<&str> = match value {
        HeaderValue::Text(id) => vec![id.as_ref()],
        HeaderValue::TextList(ids) => ids.iter().map(|id| id.as_ref()).collect(),
        _ => Vec::new(),
    };
    ids.into_iter().map(str::trim).filter(|id| !id.is_empty()).map(str::to_owned).collect()
}

fn thread(message: &Message<'_>, raw: &[u8]) -> Thread {
    let message_id = message.message_id().map(str::trim).filter(|id| !id.is_empty()).map(str::to_owned);
    let in_reply_to = message_ids(message.in_reply_to());
    let references = message_ids(message.references());
    let conversation_id = match references.first().or(in_reply_to.first()).or(message_id.as_ref()) {
        Some(root) => bounded_id("email", root),
        None => hashed_id("email", raw),
    };
    let mut related_ids = Vec::new();
    for id in in_reply_to.iter().chain(references.iter().rev()) {
        let id = bounded_id("email", id);
        if !related_ids.contains(&id) {
            related_ids.push(id);
        }
    }
    Thread { message_id, in_reply_to, references, conversation_id, related_ids }
}

/// The first tag of `Content-Language`, from the message or its first text part.
fn content_language(message: &Message<'_>) -> Option<String> {
    let from_part = |part: &mail_parser::MessagePart<'_>| -> Option<String> {
        let value = part.headers.iter().find(|h| h.name == HeaderName::ContentLanguage)?;
        match &value.value {
            HeaderValue::Text(tag) => Some(tag.to_string()),
            HeaderValue::TextList(tags) => tags.first().map(|t| t.to_string()),
            _ => None,
        }
    };
    from_part(&message.parts[0]).or_else(|| message.text_part(0).and_then(from_part))
}
