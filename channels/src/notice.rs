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

/// Writes `notice` for the customer's alternative channel and waits for Kafka; an alternative
/// without a courier (`sms`) or a write Kafka did not take is a [`Failure`] naming the text.
pub async fn tell(publisher: &Publisher, notice: Notice<'_>) -> Result<Told, Failure> {
    let channel = crate::callback::CHANNEL;
    let via = notice.context.get(reply::ALTERNATIVE_CHANNEL).map(String::as_str);
    let address = notice.context.get(reply::ALTERNATIVE_ADDRESS).cloned().unwrap_or_default();
    let (via, out_channel, contact) = match via {
        None => return Ok(Told::NoAlternative),
        Some("email") => ("email", v1::Channel::Email, notice.contact.to_owned()),
        Some("whatsapp") => ("whatsapp", v1::Channel::Social, format!("whatsapp:{}", notice.contact)),
        Some("sms") => {
            crate::metrics::notice_undeliverable(channel, "sms", notice.kind);
            return Err(Failure::new(
                "undeliverable",
                format!(
                    "the customer's alternative channel is sms, which no courier sends; {} not told: {}",
                    notice.kind, notice.text
                ),
            ));
        }
        Some(other) => {
            return Err(Failure::new(
                "undeliverable",
                format!("unknown alternative channel {other:?}; {} not told: {}", notice.kind, notice.text),
            ));
        }
    };
    let message = v1::OutboundMessage {
        id: notice.id,
        tenant: notice.tenant.to_owned(),
        contact,
        channel: out_channel as i32,
        address,
        at_unix_ms: crate::now().timestamp_millis(),
        message: Some(v1::outbound_message::Message::Notice(notice.text)),
        context: notice.context.clone(),
    };
    let written = match publisher.send_outbound(&message) {
        Ok(delivery) => settle(delivery).await,
        Err(error) => Err(error),
    };
    written.map_err(|error| Failure::new("unavailable", format!("the {} notice: {error}", notice.kind)))?;
    crate::metrics::customer_told(channel, via, notice.kind);
    Ok(Told::Written { via })
}
