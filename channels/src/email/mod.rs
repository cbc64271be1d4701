//! The email channel: mail in over SMTP ([`smtp_in`]), follow-ups joined to the agent who
//! handled the conversation ([`threads`]), and replies, notices and the automatic
//! acknowledgement out through an SMTP relay ([`courier`]).
//!
//! What a reply needs to stay in the customer's thread travels with the contact as `reply.*`
//! attributes, which the router hands back as each outbound message's `context`
//! ([`ReplyContext`]).

pub mod courier;
pub mod smtp_in;
pub mod threads;

use std::collections::HashMap;
use std::net::SocketAddr;

use vuoro_adapters::email::{EmailContact, EmailSettings};
use vuoro_adapters::limits::MAX_ATTRIBUTE_VALUE_BYTES;
use vuoro_proto::v1;

pub use courier::{EmailCourier, RelaySettings, RelayTls};
pub use smtp_in::SmtpListener;
pub use threads::Conversations;

/// The channel's name: the `channel` metrics label and the dead-letter source `channel:email`.
pub const CHANNEL: &str = "email";

/// The inbound side of the email channel, validated.
#[derive(Clone, Debug)]
pub struct EmailEndpoint {
    /// Where the SMTP listener listens.
    pub listen_addr: SocketAddr,
    /// The name the listener greets with and answers `EHLO` with; also the domain of the
    /// Message-IDs of mail sent out.
    pub hostname: String,
    /// Recipients → tenants and queues, and the message limits.
    pub settings: EmailSettings,
    /// How long a follow-up waits for the agent who handled its conversation before any other
    /// agent may take it, in milliseconds.
    pub preferred_agent_wait_ms: u64,
}

/// The `reply.*` attributes an email contact carries for its answers (each comes back in the
/// outbound messages' `context`).
pub struct ReplyContext;

impl ReplyContext {
    /// The mailbox the customer wrote to: replies are sent from it.
    pub const MAILBOX: &'static str = "reply.mailbox";
    /// Where replies go (`Reply-To`, else `From`).
    pub const TO: &'static str = "reply.to";
    /// The customer's subject, for `Subject: Re: …`.
    pub const SUBJECT: &'static str = "reply.subject";
    /// The customer's Message-ID (without angle brackets), for `In-Reply-To`.
    pub const MESSAGE_ID: &'static str = "reply.message_id";
    /// The ids of the customer's `References` header, space-separated, oldest first.
    pub const REFERENCES: &'static str = "reply.references";
    /// The conversation the mail belongs to (the contact id of its thread's first mail).
    pub const CONVERSATION: &'static str = "reply.conversation_id";

    /// Puts the reply context of `email` on its contact, with the customer's language
    /// ([`crate::status::LANGUAGE_ATTRIBUTE`]).
    pub fn apply(email: &mut EmailContact) {
        let language = email.contact.language.clone();
        let references = bounded_references(&email.thread.references);
        let message_id = email.thread.message_id.clone().unwrap_or_default();
        let attributes = &mut email.contact.attributes;
        for (key, value) in [
            (Self::MAILBOX, email.recipient.as_str()),
            (Self::TO, email.reply_to.as_str()),
            (Self::SUBJECT, email.subject.as_str()),
            (Self::MESSAGE_ID, message_id.as_str()),
            (Self::REFERENCES, references.as_str()),
            (Self::CONVERSATION, email.thread.conversation_id.as_str()),
            (crate::status::LANGUAGE_ATTRIBUTE, language.as_str()),
        ] {
            set(attributes, key, value);
        }
    }

    /// The value of `key` in an outbound message's context, empty when absent.
    pub fn get<'a>(message: &'a v1::OutboundMessage, key: &str) -> &'a str {
        message.context.get(key).map_or("", String::as_str)
    }
}

/// Sets a non-empty attribute, cut on a character boundary to the router's value limit.
fn set(attributes: &mut HashMap<String, String>, key: &str, value: &str) {
    if value.is_empty() {
        return;
    }
    let mut end = value.len().min(MAX_ATTRIBUTE_VALUE_BYTES);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    attributes.insert(key.to_owned(), value[..end].to_owned());
}

/// The references as one space-separated value within the attribute limit: the root (the
/// conversation's first mail) and as many of the newest as fit (RFC 5322 §3.6.4 allows
/// leaving out ids in the middle).
fn bounded_references(references: &[String]) -> String {
    let Some((root, rest)) = references.split_first() else { return String::new() };
    let mut kept: Vec<&str> = Vec::new();
    let mut length = root.len();
    for id in rest.iter().rev() {
        if length + 1 + id.len() > MAX_ATTRIBUTE_VALUE_BYTES {
            break;
        }
        length += 1 + id.len();
        kept.push(id);
    }
    kept.push(root);
    kept.reverse();
    kept.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_references_keep_the_root_and_the_newest() {
        let ids: Vec<String> = (0..200).map(|n| format!("{n:04}-{}@mail.example", "x".repeat(40))).collect();
        let kept = bounded_references(&ids);
        assert!(kept.len() <= MAX_ATTRIBUTE_VALUE_BYTES);
        let kept: Vec<&str> = kept.split(' ').collect();
        assert_eq!(kept[0], ids[0], "the root stays");
        assert_eq!(kept.last().copied(), ids.last().map(String::as_str), "the newest stays");
        assert!(kept.len() < ids.len());
        assert_eq!(bounded_references(&ids[..2]), format!("{} {}", ids[0], ids[1]));
        assert_eq!(bounded_references(&[]), "");
    }
}
