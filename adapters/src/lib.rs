//! Vuoro's channel adapters, pure layer: each module turns one channel's inbound payload into
//! the canonical [`vuoro_proto::v1::Contact`], or into a typed refusal that says which part of
//! the input is wrong and why.
//!
//! Nothing here does I/O or is async. The listeners (HTTP for callbacks and Meta webhooks, SMTP
//! for email) own the sockets, the clock, the secrets and Kafka; they call these functions with
//! the bytes they received and act on the answer: publish the contacts, or send the refusal to
//! the dead-letter topic with its [reason code](callback::CallbackError::code) and answer the
//! sender with the status the error suggests.
//!
//! - [`callback`]: a callback request (JSON) to a voice contact with a validated E.164 number
//!   and a promised time.
//! - [`email`]: an RFC 5322 message and its SMTP envelope to one email contact per tenant, with
//!   threading keys and a loop guard.
//! - [`meta`]: Messenger, Instagram and WhatsApp Cloud API webhooks: the subscription handshake,
//!   the `X-Hub-Signature-256` check and the batched payloads.
//! - [`chat`]: the web chat widget's WebSocket protocol and the "contact us" form, to chat
//!   and email contacts.
//! - [`language`]: language detection for contacts whose customer named no language.
//!
//! Every contact built here satisfies the router's contact rules (see [`limits`]): ids are
//! bounded to 128 characters, attributes to 32 entries of at most 4096 bytes.

pub mod callback;
pub mod chat;
pub mod email;
pub mod ids;
pub mod language;
pub mod limits;
pub mod meta;
pub mod route;
mod text;

pub use route::{ConfigError, Route, SkillConfig};
