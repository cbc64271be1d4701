//! Mail out to email customers: the [`Courier`] of email contacts, sending through the
//! configured SMTP relay with `lettre`.
//!
//! - An agent's reply goes from the mailbox the customer wrote to (`reply.mailbox`) to the
//!   customer's reply address (`reply.to`), `Subject: Re: <subject>`, with `In-Reply-To` the
//!   customer's Message-ID and `References` the customer's references followed by it, so mail
//!   clients thread it.
//! - The first place-in-the-queue update of a contact becomes an automatic acknowledgement
//!   (`Auto-Submitted: auto-replied`) that says when to expect an answer ([`status`]).
//! - An adapter's notice goes as its own mail in the same thread (`Auto-Submitted:
//!   auto-generated`).
//! - The agent joining, the end of the conversation and schedules send nothing.
//!
//! A 4xx answer, a broken connection or a timeout is retried with backoff; a 5xx answer, or
//! what still fails, is a [`Failure`] ([`crate::outbound`] dead-letters it).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MessageBuilder};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use vuoro_adapters::meta::Secret;
use vuoro_proto::v1;
use vuoro_proto::v1::outbound_message::Message as O;

use super::{CHANNEL, ReplyContext};
use crate::outbound::{BoxFuture, Courier, Failure};
use crate::status;

/// Attempts at one mail before it is dead-lettered.
const ATTEMPTS: u32 = 4;
/// First retry delay; doubled for each further attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// One SMTP conversation's time limit.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Contacts remembered as acknowledged.
const REMEMBERED_CONTACTS: usize = 100_000;

/// How the connection to the relay is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayTls {
    /// Plain SMTP (a relay on the same host or in the same trusted network).
    None,
    /// Plain SMTP upgraded with STARTTLS.
    StartTls,
    /// TLS from the first byte (SMTPS).
    Tls,
}

/// Where and how mail is sent.
#[derive(Clone, Debug)]
pub struct RelaySettings {
    /// The relay's host name or address.
    pub host: String,
    /// The relay's port.
    pub port: u16,
    /// How the connection is protected; only [`RelayTls::None`] in this build.
    pub tls: RelayTls,
    /// User name and password, when the relay wants them.
    pub credentials: Option<(Secret, Secret)>,
    /// The name given in `EHLO`, and the domain of the Message-IDs of mail sent.
    pub hostname: String,
}

/// The email courier.
pub struct EmailCourier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    hostname: String,
    /// Each tenant's own mailbox: the sender of mail about a contact that names no mailbox.
    tenant_mailboxes: HashMap<String, String>,
    /// Contacts already sent their acknowledgement.
    acknowledged: Mutex<HashSet<(String, String)>>,
}

impl EmailCourier {
    /// A courier sending through the relay of `settings`; refuses TLS, which this build
    /// cannot do.
    /// Mail about a contact that did not arrive by email (no `reply.mailbox`) is sent from
    /// its tenant's mailbox in `tenant_mailboxes`.
    pub fn new(
        settings: RelaySettings,
        tenant_mailboxes: HashMap<String, String>,
    ) -> anyhow::Result<EmailCourier> {
        if settings.tls != RelayTls::None {
            anyhow::bail!(
                "channels.email.relay.tls: this build has no TLS client; use tls = \"none\" with a relay \
                 on a trusted network (e.g. a local MTA that speaks TLS onwards)"
            );
        }
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .timeout(Some(SEND_TIMEOUT))
            .hello_name(ClientId::Domain(settings.hostname.clone()));
        if let Some((user, password)) = &settings.credentials {
            builder = builder.credentials(Credentials::new(
                String::from_utf8_lossy(user.expose()).into_owned(),
                String::from_utf8_lossy(password.expose()).into_owned(),
            ));
        }
        Ok(EmailCourier {
            transport: builder.build(),
            hostname: settings.hostname,
            tenant_mailboxes,
            acknowledged: Mutex::default(),
        })
    }

    /// The mail the customer gets for `message`, if any.
    fn mail_for(&self, message: &v1::OutboundMessage) -> Result<Option<Message>, Failure> {
        let language = status::language_of(message);
        let key = (message.tenant.clone(), message.contact.clone());
        let (text, auto_submitted) = match message.message.as_ref() {
            Some(O::Reply(text)) => (text.clone(), None),
            Some(O::Notice(text)) => (text.clone(), Some("auto-generated")),
            Some(O::Queued(update)) => {
                let mut acknowledged = self.acknowledged.lock().unwrap_or_else(PoisonError::into_inner);
                if acknowledged.len() >= REMEMBERED_CONTACTS {
                    acknowledged.clear();
                }
                if !acknowledged.insert(key) {
                    return Ok(None);
                }
                (status::email_acknowledgement(language, update.estimated_wait_ms), Some("auto-replied"))
            }
            Some(O::Completed(_)) => {
                self.acknowledged.lock().unwrap_or_else(PoisonError::into_inner).remove(&key);
                return Ok(None);
            }
            Some(O::AgentJoined(_) | O::ScheduledUnixMs(_)) | None => return Ok(None),
        };
        let mailbox = sender_mailbox(message, &self.tenant_mailboxes);
        compose(message, mailbox, &text, auto_submitted, &self.hostname).map(Some)
    }

    /// Sends with retries: transient failures (4xx, connection, timeout) are tried again,
    /// a permanent answer (5xx) is final.
    async fn send(&self, mail: Message) -> Result<(), Failure> {
        let mut backoff = FIRST_BACKOFF;
        let mut last = Failure::new("relay_unreachable", "");
        for attempt in 1..=ATTEMPTS {
            match self.transport.send(mail.clone()).await {
                Ok(_) => return Ok(()),
                Err(error) if error.is_permanent() => {
                    return Err(Failure::new("relay_refused", error.to_string()));
                }
                Err(error) if error.is_transient() => {
                    last = Failure::new("relay_unavailable", error.to_string());
                }
                Err(error) if error.is_timeout() => last = Failure::new("timeout", error.to_string()),
                Err(error) => last = Failure::new("relay_unreachable", error.to_string()),
            }
            tracing::warn!(attempt, code = last.code, reason = %last.reason, "sending a mail");
            if attempt < ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        last.reason = format!("{ATTEMPTS} attempts, the last: {}", last.reason);
        Err(last)
    }
}

impl Courier for EmailCourier {
    fn name(&self) -> &'static str {
        CHANNEL
    }

    fn takes(&self, message: &v1::OutboundMessage) -> bool {
        message.channel == v1::Channel::Email as i32
    }

    fn deliver<'a>(&'a self, message: &'a v1::OutboundMessage) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            match self.mail_for(message)? {
                Some(mail) => self.send(mail).await,
                None => Ok(()),
            }
        })
    }
}

/// The mailbox mail about `message`'s contact is sent from: the one the customer wrote to,
/// else the tenant's own (empty when there is neither).
fn sender_mailbox<'a>(
    message: &'a v1::OutboundMessage,
    tenant_mailboxes: &'a HashMap<String, String>,
) -> &'a str {
    match ReplyContext::get(message, ReplyContext::MAILBOX) {
        "" => tenant_mailboxes.get(&message.tenant).map_or("", String::as_str),
        written_to => written_to,
    }
}

/// The mail of `text` for the customer of `message` from `mailbox`, in the customer's thread.
fn compose(
    message: &v1::OutboundMessage,
    mailbox: &str,
    text: &str,
    auto_submitted: Option<&'static str>,
    hostname: &str,
) -> Result<Message, Failure> {
    if mailbox.is_empty() {
        return Err(Failure::new(
            "no_mailbox",
            "neither the contact nor its tenant's email routes name a mailbox to send from",
        ));
    }
    let from = parse_address("reply.mailbox", mailbox)?;
    let to = match ReplyContext::get(message, ReplyContext::TO) {
        "" => message.address.trim(),
        reply_to => reply_to,
    };
    if to.is_empty() {
        return Err(Failure::new("no_address", "the contact has no customer address"));
    }
    let to = parse_address("customer address", to)?;
    let mut builder = Message::builder()
        .from(Mailbox::new(None, from))
        .to(Mailbox::new(None, to))
        .subject(reply_subject(ReplyContext::get(message, ReplyContext::SUBJECT)))
        .message_id(Some(message_id(&message.id, hostname)))
        .date_now();
    builder = thread(builder, message);
    if let Some(value) = auto_submitted {
        builder = builder
            .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("Auto-Submitted"), value.to_owned()));
    }
    builder
        .header(ContentType::TEXT_PLAIN)
        .body(text.to_owned())
        .map_err(|e| Failure::new("unsendable", format!("the mail could not be built: {e}")))
}

/// `In-Reply-To` the customer's Message-ID, `References` the customer's references and it.
fn thread(builder: MessageBuilder, message: &v1::OutboundMessage) -> MessageBuilder {
    let message_id = ReplyContext::get(message, ReplyContext::MESSAGE_ID);
    let mut references: Vec<&str> =
        ReplyContext::get(message, ReplyContext::REFERENCES).split_whitespace().collect();
    if !message_id.is_empty() {
        references.push(message_id);
    }
    let builder =
        if message_id.is_empty() { builder } else { builder.in_reply_to(format!("<{message_id}>")) };
    if references.is_empty() {
        builder
    } else {
        builder.references(references.iter().map(|id| format!("<{id}>")).collect::<Vec<_>>().join(" "))
    }
}

fn parse_address(what: &str, address: &str) -> Result<Address, Failure> {
    address.trim().parse().map_err(|e| Failure::new("bad_address", format!("{what} {address:?}: {e}")))
}

/// `Re: <subject>`, without stacking a second `Re:`.
pub fn reply_subject(subject: &str) -> String {
    let subject = subject.trim();
    let lower = subject.to_ascii_lowercase();
    if lower.starts_with("re:") {
        subject.to_owned()
    } else if subject.is_empty() {
        "Re: your message".to_owned()
    } else {
        format!("Re: {subject}")
    }
}

/// A Message-ID made of the outbound message's deterministic id: a resent mail keeps its id.
fn message_id(outbound_id: &str, hostname: &str) -> String {
    let local: String = outbound_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c) { c } else { '.' })
        .collect();
    format!("<vuoro.{}@{hostname}>", local.trim_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(context: &[(&str, &str)]) -> v1::OutboundMessage {
        v1::OutboundMessage {
            id: "7-1-42/0".into(),
            tenant: "acme".into(),
            contact: "email:abc@mail.example".into(),
            channel: v1::Channel::Email as i32,
            address: "maija@example.fi".into(),
            message: Some(O::Reply("Hei!".into())),
            context: context.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_reply_is_threaded_under_the_customers_mail() {
        let message = reply(&[
            (ReplyContext::MAILBOX, "support@acme.example"),
            (ReplyContext::TO, "maija.reply@example.fi"),
            (ReplyContext::SUBJECT, "Tilaus 123"),
            (ReplyContext::MESSAGE_ID, "abc@mail.example"),
            (ReplyContext::REFERENCES, "root@mail.example"),
        ]);
        let mail = compose(&message, "support@acme.example", "Hei!", None, "mx.acme.example").ok().unwrap();
        let text = String::from_utf8(mail.formatted()).unwrap();
        for line in [
            "From: support@acme.example\r\n",
            "To: maija.reply@example.fi\r\n",
            "Subject: Re: Tilaus 123\r\n",
            "In-Reply-To: <abc@mail.example>\r\n",
            "References: <root@mail.example> <abc@mail.example>\r\n",
            "Message-ID: <vuoro.7-1-42/0@mx.acme.example>\r\n",
        ] {
            assert!(text.contains(line), "no {line:?} in:\n{text}");
        }
        assert!(!text.contains("Auto-Submitted"), "a person's reply is not automatic:\n{text}");
    }

    #[test]
    fn mail_goes_from_the_mailbox_written_to_else_the_tenants_own_and_needs_one() {
        let tenants: HashMap<String, String> = [("acme".to_owned(), "info@acme.example".to_owned())].into();
        let written = reply(&[(ReplyContext::MAILBOX, "support@acme.example")]);
        assert_eq!(sender_mailbox(&written, &tenants), "support@acme.example");
        assert_eq!(sender_mailbox(&reply(&[]), &tenants), "info@acme.example", "a callback's notice");
        assert_eq!(sender_mailbox(&reply(&[]), &HashMap::new()), "");
        let failure = compose(&reply(&[]), "", "Hei!", None, "h").err().unwrap();
        assert_eq!(failure.code, "no_mailbox");
        let failure = compose(&reply(&[]), "not an address", "Hei!", None, "h").err().unwrap();
        assert_eq!(failure.code, "bad_address");
    }

    #[test]
    fn subjects_get_one_re() {
        assert_eq!(reply_subject("Order"), "Re: Order");
        assert_eq!(reply_subject("RE: Order"), "RE: Order");
        assert_eq!(reply_subject(" "), "Re: your message");
    }
}
