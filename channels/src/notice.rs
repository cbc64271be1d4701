//! Telling a callback customer something through the alternative channel they gave (the
//! `reply.alternative_*` context of their contact): an `OutboundMessage` with a `notice` text on
//! the outbound topic, for that channel's courier.
//!
//! - `email`: channel EMAIL, the address the email, the callback's contact id.
//! - `whatsapp`: channel SOCIAL, the address the E.164 number, contact `whatsapp:<callback id>`
//!   so that Meta's courier sends it from the tenant's WhatsApp number.
//! - `sms`: no courier sends SMS yet: nothing is written, and the caller reports the notice as
//!   undeliverable (counted and dead-lettered with the text).

use std::collections::HashMap;

use vuoro_adapters::callback::reply;
use vuoro_proto::v1;

use crate::outbound::Failure;
use crate::publish::{Publisher, settle};

/// Which notice, for metrics: `moved`, `retry` or `unreachable`.
pub type NoticeKind = &'static str;

/// What became of a notice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Told {
    /// Written to the outbound topic for the courier of `via`.
    Written {
        /// The alternative channel.
        via: &'static str,
    },
    /// The customer gave no alternative channel: nobody to tell.
    NoAlternative,
}

/// A notice for one callback customer.
#[derive(Clone, Debug)]
pub struct Notice<'a> {
    /// Deterministic id of the notice (the outbound dedupe key).
    pub id: String,
    /// The tenant.
    pub tenant: &'a str,
    /// The callback contact the notice is about.
    pub contact: &'a str,
    /// The contact's `reply.*` context.
    pub context: &'a HashMap<String, String>,
    /// Which notice.
    pub kind: NoticeKind,
    /// The text, in the customer's language.
    pub text: String,
}

/// The outbound message carrying `notice` to the customer's alternative channel: `Ok(None)`
/// when they gave none, a [`Failure`] naming the text when it has no courier (`sms`).
pub fn message_for(notice: Notice<'_>) -> Result<Option<(&'static str, v1::OutboundMessage)>, Failure> {
    let via = notice.context.get(reply::ALTERNATIVE_CHANNEL).map(String::as_str);
    let address = notice.context.get(reply::ALTERNATIVE_ADDRESS).cloned().unwrap_or_default();
    let (via, out_channel, contact) = match via {
        None => return Ok(None),
        Some("email") => ("email", v1::Channel::Email, notice.contact.to_owned()),
        Some("whatsapp") => ("whatsapp", v1::Channel::Social, format!("whatsapp:{}", notice.contact)),
        Some(other) => {
            let why = if other == "sms" { "which no courier sends" } else { "which is not a channel" };
            return Err(Failure::new(
                "undeliverable",
                format!(
                    "the customer's alternative channel is {other:?}, {why}; {} not told: {}",
                    notice.kind, notice.text
                ),
            ));
        }
    };
    Ok(Some((
        via,
        v1::OutboundMessage {
            id: notice.id,
            tenant: notice.tenant.to_owned(),
            contact,
            channel: out_channel as i32,
            address,
            at_unix_ms: crate::now().timestamp_millis(),
            message: Some(v1::outbound_message::Message::Notice(notice.text)),
            context: notice.context.clone(),
        },
    )))
}

/// Writes `notice` for the customer's alternative channel and waits for Kafka; an alternative
/// without a courier (`sms`) or a write Kafka did not take is a [`Failure`] naming the text.
pub async fn tell(publisher: &Publisher, notice: Notice<'_>) -> Result<Told, Failure> {
    let channel = crate::callback::CHANNEL;
    let kind = notice.kind;
    let (via, message) = match message_for(notice) {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(Told::NoAlternative),
        Err(failure) => {
            crate::metrics::notice_undeliverable(channel, "sms", kind);
            return Err(failure);
        }
    };
    let written = match publisher.send_outbound(&message) {
        Ok(delivery) => settle(delivery).await,
        Err(error) => Err(error),
    };
    written.map_err(|error| Failure::new("unavailable", format!("the {kind} notice: {error}")))?;
    crate::metrics::customer_told(channel, via, kind);
    Ok(Told::Written { via })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(context: &HashMap<String, String>) -> Notice<'_> {
        Notice {
            id: "n-1".into(),
            tenant: "acme",
            contact: "callback:w-1",
            context,
            kind: "moved",
            text: "We will now call at 10:00.".into(),
        }
    }

    fn context(channel: &str, address: &str) -> HashMap<String, String> {
        HashMap::from([
            (reply::ALTERNATIVE_CHANNEL.to_owned(), channel.to_owned()),
            (reply::ALTERNATIVE_ADDRESS.to_owned(), address.to_owned()),
        ])
    }

    #[test]
    fn email_and_whatsapp_notices_are_addressed_for_their_couriers() {
        let email = context("email", "maija@example.fi");
        let (via, message) = message_for(notice(&email)).ok().flatten().unwrap();
        assert_eq!((via, message.channel), ("email", v1::Channel::Email as i32));
        assert_eq!(
            (message.contact.as_str(), message.address.as_str()),
            ("callback:w-1", "maija@example.fi")
        );
        let whatsapp = context("whatsapp", "+358401234567");
        let (_, message) = message_for(notice(&whatsapp)).ok().flatten().unwrap();
        assert_eq!(message.channel, v1::Channel::Social as i32);
        assert_eq!(
            crate::meta_courier::platform_of(&message.contact),
            Some(vuoro_adapters::meta::Platform::Whatsapp),
            "Meta's courier takes it"
        );
        assert_eq!(
            message.message,
            Some(v1::outbound_message::Message::Notice("We will now call at 10:00.".into()))
        );
    }

    #[test]
    fn sms_is_undeliverable_with_the_text_and_no_alternative_tells_nobody() {
        let sms = context("sms", "+358401234567");
        let failure = message_for(notice(&sms)).err().unwrap();
        assert_eq!(failure.code, "undeliverable");
        assert!(
            failure.reason.contains("no courier") && failure.reason.contains("We will now call at 10:00.")
        );
        assert!(message_for(notice(&HashMap::new())).ok().unwrap().is_none());
    }
}
