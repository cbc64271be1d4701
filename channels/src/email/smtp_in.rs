//! The SMTP listener (RFC 5321): commands are parsed with Stalwart's `smtp-proto`, the dialogue
//! (greeting, `EHLO`/`HELO`, `MAIL`, `RCPT`, `DATA`, `RSET`, `NOOP`, `QUIT`) is kept here.
//!
//! - `EHLO` announces `SIZE` (the configured limit), `8BITMIME` and `ENHANCEDSTATUSCODES`.
//! - `MAIL FROM` with a `SIZE` over the limit is refused with `552 5.3.4`; so is a message
//!   that grows past it during `DATA` (the rest is read and thrown away).
//! - `RCPT TO` of an address no route takes is refused with `550 5.1.1`, naming the address.
//! - At the end of `DATA` the message is normalised ([`vuoro_adapters::email::normalize`]),
//!   each contact gets its reply context ([`ReplyContext`]) and, for a follow-up, the agent
//!   who handled the conversation ([`Conversations`]); `250` comes only once Kafka has every
//!   contact, `451 4.3.0` when it cannot take them (the client tries again later).
//! - A refused message gets the adapter's SMTP reply with its reason; auto-replies, bounces
//!   and list mail are accepted (`250 2.6.0`: no bounce back to an auto-responder) and never
//!   become contacts. Every refused or ignored message is dead-lettered with its reason.
//!
//! STARTTLS is not offered: this build has no TLS library (see the channels' README).

use std::net::SocketAddr;
use std::slice::Iter;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use smtp_proto::request::receiver::{DataReceiver, DummyDataReceiver, RequestReceiver};
use smtp_proto::{
    EXT_8BIT_MIME, EXT_ENHANCED_STATUS_CODES, EXT_SIZE, EhloResponse, Error as ProtoError, Request,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use vuoro_adapters::email::{self, EmailError, Envelope};
use vuoro_proto::v1;

use super::{CHANNEL, Conversations, EmailEndpoint, ReplyContext};
use crate::publish::{DeadLetter, Publisher, settle};

/// A client silent for this long is disconnected (RFC 5321 §4.5.3.2 asks for at least 5 min).
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Most recipients of one message.
const MAX_RECIPIENTS: usize = 100;
/// Protocol errors tolerated on one connection before it is closed.
const MAX_ERRORS: u32 = 10;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// An SMTP reply: code, enhanced status code (RFC 3463) and text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The reply code, e.g. 250.
    pub code: u16,
    /// The enhanced status code's three numbers, e.g. `[5, 1, 1]`.
    pub enhanced: [u8; 3],
    /// The text.
    pub text: String,
}

impl Reply {
    fn new(code: u16, enhanced: [u8; 3], text: impl Into<String>) -> Reply {
        Reply { code, enhanced, text: text.into() }
    }

    /// The reply of a refused message: the adapter's codes and its reason.
    fn of(error: &EmailError) -> Reply {
        let smtp = error.smtp_reply();
        let mut enhanced = [0u8; 3];
        for (slot, digit) in enhanced.iter_mut().zip(smtp.enhanced.split('.')) {
            *slot = digit.parse().unwrap_or(0);
        }
        let text = match error {
            EmailError::Loop(reason) => format!("accepted, not answered: {reason}"),
            other => other.to_string(),
        };
        Reply { code: smtp.code, enhanced, text }
    }

    fn bytes(&self) -> Vec<u8> {
        let [a, b, c] = self.enhanced;
        let mut out = Vec::with_capacity(self.text.len() + 16);
        // Writing to a Vec cannot fail.
        let _ = smtp_proto::Response::new(self.code, a, b, c, one_line(&self.text)).write(&mut out);
        out
    }
}

/// Text for one reply line: no line breaks a client could read as another reply.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// What every SMTP session shares.
struct Inbound {
    endpoint: EmailEndpoint,
    publisher: Publisher,
    conversations: Arc<Conversations>,
}

/// The running SMTP listener.
pub struct SmtpListener {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SmtpListener {
    /// Binds the endpoint's address (port 0: a free port) and takes mail until
    /// [`SmtpListener::stop`], publishing through `publisher`; follow-ups find their agent in
    /// `conversations`.
    pub async fn start(
        endpoint: EmailEndpoint,
        publisher: Publisher,
        conversations: Arc<Conversations>,
    ) -> anyhow::Result<SmtpListener> {
        crate::metrics::describe();
        let listener = TcpListener::bind(endpoint.listen_addr)
            .await
            .with_context(|| format!("binding the SMTP listener to {}", endpoint.listen_addr))?;
        let addr = listener.local_addr().context("reading the SMTP listener's address")?;
        let inbound = Arc::new(Inbound { endpoint, publisher, conversations });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept(listener, inbound, stopped));
        tracing::info!(%addr, "SMTP listening");
        Ok(SmtpListener { addr, stop, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections; sessions between messages are closed with `421`, a message
    /// being received or published is finished within `grace`.
    pub async fn stop(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(grace, &mut self.task).await.is_err() {
            tracing::warn!("SMTP listener: sessions still in progress after the grace period");
            self.task.abort();
        }
    }
}

async fn accept(listener: TcpListener, inbound: Arc<Inbound>, mut stopped: watch::Receiver<bool>) {
    let mut sessions = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stopped.wait_for(|&s| s) => break,
            accepted = listener.accept() => accepted,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
        };
        match accepted {
            Ok((stream, peer)) => {
                let session = Session::new(Arc::clone(&inbound), peer, stopped.clone());
                sessions.spawn(session.run(stream));
            }
            Err(error) => {
                tracing::warn!(%error, "accepting an SMTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    while sessions.join_next().await.is_some() {}
}

/// Where a session is in the dialogue.
enum Phase {
    /// Reading commands.
    Commands(RequestReceiver),
    /// Reading a message within the size limit.
    Data(DataReceiver, Vec<u8>),
    /// Reading the rest of a message over the limit, to throw it away.
    Discard(DummyDataReceiver),
}

/// One client connection.
struct Session {
    inbound: Arc<Inbound>,
    peer: SocketAddr,
    stopped: watch::Receiver<bool>,
    greeted: bool,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
    errors: u32,
}

impl Session {
    fn new(inbound: Arc<Inbound>, peer: SocketAddr, stopped: watch::Receiver<bool>) -> Session {
        Session { inbound, peer, stopped, greeted: false, mail_from: None, rcpt_to: Vec::new(), errors: 0 }
    }

    async fn run(mut self, stream: TcpStream) {
        if let Err(error) = self.converse(stream).await {
            tracing::debug!(%error, peer = %self.peer, "SMTP session ended");
        }
    }

    async fn converse(&mut self, stream: TcpStream) -> std::io::Result<()> {
        let (mut reader, mut writer) = stream.into_split();
        let hostname = self.inbound.endpoint.hostname.clone();
        writer.write_all(format!("220 {hostname} ESMTP Vuoro ready\r\n").as_bytes()).await?;
        let mut phase = Phase::Commands(RequestReceiver::default());
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            let between_messages = matches!(phase, Phase::Commands(_));
            let mut stopped = self.stopped.clone();
            let read = tokio::select! {
                () = async { let _ = stopped.wait_for(|&s| s).await; }, if between_messages => {
                    let bye = Reply::new(421, [4, 3, 2], format!("{hostname} shutting down, try again later"));
                    return writer.write_all(&bye.bytes()).await;
                }
                read = tokio::time::timeout(IDLE_TIMEOUT, reader.read(&mut chunk)) => read,
            };
            let n = match read {
                Err(_) => {
                    let bye = Reply::new(421, [4, 4, 2], "idle for too long, closing");
                    return writer.write_all(&bye.bytes()).await;
                }
                Ok(read) => read?,
            };
            if n == 0 {
                return Ok(());
            }
            let mut bytes = chunk[..n].iter();
            while !bytes.as_slice().is_empty() {
                if !self.step(&mut phase, &mut bytes, &mut writer).await? {
                    return Ok(());
                }
            }
        }
    }

    /// Takes what it can of `bytes` in the current phase and answers; false once the session
    /// is over.
    async fn step(
        &mut self,
        phase: &mut Phase,
        bytes: &mut Iter<'_, u8>,
        writer: &mut OwnedWriteHalf,
    ) -> std::io::Result<bool> {
        let max = self.inbound.endpoint.settings.max_message_bytes;
        match phase {
            Phase::Commands(receiver) => {
                let request = match receiver.ingest(bytes) {
                    Ok(request) => Ok(request.into_owned()),
                    Err(ProtoError::NeedsMoreData { .. }) => return Ok(true),
                    Err(error) => Err(error),
                };
                let (reply, next, open) = match request {
                    Ok(request) => self.command(request).await,
                    Err(error) => (self.protocol_error(&error).bytes(), None, true),
                };
                let close = !open || self.errors >= MAX_ERRORS;
                writer.write_all(&reply).await?;
                if self.errors >= MAX_ERRORS && open {
                    writer.write_all(&Reply::new(421, [4, 7, 0], "too many errors, closing").bytes()).await?;
                }
                if let Some(next) = next {
                    *phase = next;
                }
                Ok(!close)
            }
            Phase::Data(receiver, message) => {
                let done = receiver.ingest(bytes, message);
                if done {
                    let raw = std::mem::take(message);
                    *phase = Phase::Commands(RequestReceiver::default());
                    let reply =
                        if raw.len() > max { self.too_large(None).await } else { self.message(raw).await };
                    writer.write_all(&reply.bytes()).await?;
                } else if message.len() > max {
                    *phase = Phase::Discard(DummyDataReceiver::new_data(receiver));
                }
                Ok(true)
            }
            Phase::Discard(receiver) => {
                if receiver.ingest(bytes) {
                    *phase = Phase::Commands(RequestReceiver::default());
                    let reply = self.too_large(None).await;
                    writer.write_all(&reply.bytes()).await?;
                }
                Ok(true)
            }
        }
    }

    /// Answers one command: the reply's bytes, the next phase if it changes, and whether the
    /// session stays open.
    async fn command(&mut self, request: Request<String>) -> (Vec<u8>, Option<Phase>, bool) {
        let inbound = Arc::clone(&self.inbound);
        let hostname = &inbound.endpoint.hostname;
        let reply = match request {
            Request::Ehlo { host: _ } => {
                self.greeted = true;
                self.reset();
                let mut ehlo = EhloResponse::new(hostname.as_str());
                ehlo.capabilities = EXT_SIZE | EXT_8BIT_MIME | EXT_ENHANCED_STATUS_CODES;
                ehlo.size = self.inbound.endpoint.settings.max_message_bytes;
                let mut lines = Vec::new();
                // Writing to a Vec cannot fail.
                let _ = ehlo.write(&mut lines);
                return (lines, None, true);
            }
            Request::Helo { host: _ } => {
                self.greeted = true;
                self.reset();
                return (format!("250 {hostname}\r\n").into_bytes(), None, true);
            }
            Request::Mail { from } => {
                if !self.greeted {
                    self.error(Reply::new(503, [5, 5, 1], "say EHLO or HELO first"))
                } else if self.mail_from.is_some() {
                    self.error(Reply::new(503, [5, 5, 1], "a message is already under way; RSET first"))
                } else {
                    crate::metrics::received(CHANNEL);
                    let max = self.inbound.endpoint.settings.max_message_bytes;
                    if from.size > max {
                        self.too_large(Some(from.size)).await
                    } else {
                        self.mail_from = Some(from.address);
                        Reply::new(250, [2, 1, 0], "sender OK")
                    }
                }
            }
            Request::Rcpt { to } => {
                if self.mail_from.is_none() {
                    self.error(Reply::new(503, [5, 5, 1], "MAIL FROM first"))
                } else if self.rcpt_to.len() >= MAX_RECIPIENTS {
                    Reply::new(452, [4, 5, 3], format!("too many recipients, at most {MAX_RECIPIENTS}"))
                } else if self.inbound.endpoint.settings.route_recipient(&to.address).is_none() {
                    self.unknown_recipient(&to.address).await
                } else {
                    self.rcpt_to.push(to.address);
                    Reply::new(250, [2, 1, 5], "recipient OK")
                }
            }
            Request::Data => {
                if self.mail_from.is_none() {
                    self.error(Reply::new(503, [5, 5, 1], "MAIL FROM first"))
                } else if self.rcpt_to.is_empty() {
                    self.error(Reply::new(503, [5, 5, 1], "no valid recipients"))
                } else {
                    let start = b"354 end the message with <CRLF>.<CRLF>\r\n".to_vec();
                    return (start, Some(Phase::Data(DataReceiver::new(), Vec::new())), true);
                }
            }
            Request::Rset => {
                self.reset();
                Reply::new(250, [2, 0, 0], "reset")
            }
            Request::Noop { .. } => Reply::new(250, [2, 0, 0], "OK"),
            Request::Vrfy { .. } => Reply::new(252, [2, 5, 0], "cannot verify, send the message and see"),
            Request::Help { .. } => Reply::new(214, [2, 0, 0], "see RFC 5321"),
            Request::Quit => {
                return (Reply::new(221, [2, 0, 0], format!("{hostname} closing")).bytes(), None, false);
            }
            other => self.error(Reply::new(502, [5, 5, 1], format!("{} is not offered here", other.name()))),
        };
        (reply.bytes(), None, true)
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.rcpt_to.clear();
    }

    fn error(&mut self, reply: Reply) -> Reply {
        self.errors += 1;
        reply
    }

    fn protocol_error(&mut self, error: &ProtoError) -> Reply {
        let reply = match error {
            ProtoError::UnknownCommand => Reply::new(500, [5, 5, 1], "command not recognised"),
            ProtoError::ResponseTooLong => Reply::new(500, [5, 5, 2], "line too long"),
            ProtoError::InvalidSenderAddress => Reply::new(501, [5, 1, 7], "the sender address is not valid"),
            ProtoError::InvalidRecipientAddress => {
                Reply::new(501, [5, 1, 3], "the recipient address is not valid")
            }
            ProtoError::SyntaxError { syntax } => Reply::new(501, [5, 5, 4], format!("syntax: {syntax}")),
            ProtoError::InvalidParameter { param } => {
                Reply::new(501, [5, 5, 4], format!("invalid parameter {param}"))
            }
            ProtoError::UnsupportedParameter { param } => {
                Reply::new(555, [5, 5, 4], format!("unsupported parameter {param}"))
            }
            other => Reply::new(500, [5, 5, 0], format!("{other:?}")),
        };
        self.error(reply)
    }

    /// `552 5.3.4` for a message over the limit (declared with `SIZE`, or found while
    /// reading), dead-lettered without its body.
    async fn too_large(&mut self, declared: Option<usize>) -> Reply {
        let limit = self.inbound.endpoint.settings.max_message_bytes;
        let reason = match declared {
            Some(size) => format!("message of {size} bytes (SIZE) is over the {limit}-byte limit"),
            None => format!("message is over the {limit}-byte limit"),
        };
        let reference = self.refuse("too_large", &reason, &[]).await;
        self.reset();
        Reply::new(552, [5, 3, 4], format!("{reason} [ref {reference}]"))
    }

    /// `550 5.1.1` for a recipient no route takes.
    async fn unknown_recipient(&mut self, address: &str) -> Reply {
        let reason = format!("<{address}>: no such mailbox here");
        let reference = self.refuse("no_route", &reason, address.as_bytes()).await;
        self.error(Reply::new(550, [5, 1, 1], format!("{reason} [ref {reference}]")))
    }

    /// Counts a refusal and dead-letters it with its reason; the dead letter's correlation id,
    /// which the reply quotes as `[ref …]` so a sender's report leads to the record.
    async fn refuse(&self, code: &'static str, reason: &str, payload: &[u8]) -> String {
        crate::metrics::rejected(CHANNEL, code);
        let letter = DeadLetter { channel: CHANNEL, key: CHANNEL, code, reason, payload, event_path: None };
        let correlation = crate::listener::fresh_correlation();
        self.inbound.publisher.store_dead_letter(&letter, &correlation).await;
        correlation
    }

    /// The end of `DATA`: normalise, publish, answer.
    async fn message(&mut self, raw: Vec<u8>) -> Reply {
        let started = Instant::now();
        let envelope = Envelope {
            mail_from: self.mail_from.take().unwrap_or_default(),
            rcpt_to: std::mem::take(&mut self.rcpt_to),
        };
        let reply = self.publish(&envelope, &raw).await;
        crate::metrics::request_time(CHANNEL, started.elapsed().as_secs_f64());
        reply
    }

    async fn publish(&self, envelope: &Envelope, raw: &[u8]) -> Reply {
        let inbound = &self.inbound;
        let correlation = crate::listener::fresh_correlation();
        let mut emails = match email::normalize(&inbound.endpoint.settings, envelope, raw) {
            Ok(emails) => emails,
            Err(error) => {
                let mut reply = Reply::of(&error);
                reply.text = format!("{} [ref {correlation}]", reply.text);
                if let EmailError::Loop(_) = error {
                    crate::metrics::ignored(CHANNEL, error.code());
                } else {
                    crate::metrics::rejected(CHANNEL, error.code());
                }
                let reason = error.to_string();
                let key = envelope
                    .rcpt_to
                    .iter()
                    .find_map(|r| inbound.endpoint.settings.route_recipient(r))
                    .map_or(CHANNEL, |route| route.tenant.as_str());
                let letter = DeadLetter {
                    channel: CHANNEL,
                    key,
                    code: error.code(),
                    reason: &reason,
                    payload: raw,
                    event_path: None,
                };
                inbound.publisher.store_dead_letter(&letter, &correlation).await;
                return reply;
            }
        };
        let mut contacts = Vec::with_capacity(emails.len());
        for email in &mut emails {
            ReplyContext::apply(email);
            let tenant = email.contact.tenant.clone();
            if let Some(agent) = inbound.conversations.agent_for(&tenant, &email.thread) {
                email.contact.preferred_agent = agent;
                email.contact.preferred_agent_wait_ms = inbound.endpoint.preferred_agent_wait_ms;
            }
            let violations = vuoro_service::convert::check_contact(&email.contact);
            if !violations.is_empty() {
                // The adapter keeps the router's rules; reaching this is a bug, still answered plainly.
                let reason = violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                crate::metrics::rejected(CHANNEL, "invalid_contact");
                let letter = DeadLetter {
                    channel: CHANNEL,
                    key: &tenant,
                    code: "invalid_contact",
                    reason: &reason,
                    payload: raw,
                    event_path: None,
                };
                inbound.publisher.store_dead_letter(&letter, &correlation).await;
                return Reply::new(554, [5, 6, 0], format!("invalid contact: {reason} [ref {correlation}]"));
            }
            contacts.push(email.contact.clone());
        }
        let ids: Vec<String> = contacts.iter().map(|c| c.id.clone()).collect();
        let count = contacts.len() as u64;
        let mut deliveries = Vec::with_capacity(contacts.len());
        for contact in contacts {
            match inbound.publisher.submit(contact, &correlation) {
                Ok(delivery) => deliveries.push(delivery),
                Err(error) => return unavailable(&error.to_string()),
            }
        }
        for delivery in deliveries {
            if let Err(error) = settle(delivery).await {
                return unavailable(&error.to_string());
            }
        }
        crate::metrics::accepted(CHANNEL, count);
        if let Some(channel) = vuoro_service::convert::engine_channel(v1::Channel::Email as i32) {
            for _ in 0..count {
                vuoro_service::metrics::contact_received(channel);
            }
        }
        tracing::info!(contacts = ?ids, %correlation, "mail accepted");
        Reply::new(250, [2, 0, 0], format!("queued as {}", ids.join(", ")))
    }
}

/// `451 4.3.0`: Kafka did not take the contacts; nothing is lost, the client tries again.
fn unavailable(why: &str) -> Reply {
    crate::metrics::rejected(CHANNEL, "unavailable");
    tracing::warn!(channel = CHANNEL, why, "Kafka did not take a contact");
    Reply::new(451, [4, 3, 0], format!("cannot store the message now ({why}); try again later"))
}
