//! Vuoro's channel listeners: the I/O around the pure adapters of `vuoro-adapters`.
//!
//! One HTTP listener ([`listener`]) takes callback requests ([`callback`]), Meta's webhooks
//! ([`meta`]), web chats over WebSocket ([`chat`], with its [`widget`]) and the "contact us"
//! form ([`contact_form`]), normalises them with `vuoro-adapters`, and publishes each contact to the
//! contacts topic as the router's own gateway does ([`publish`]): a `RouterInput` submit keyed
//! by tenant on the tenant's partition, answered only once Kafka acknowledged it. Whatever is
//! refused is answered with a JSON error naming the field and the reason, and written to the
//! dead-letter topic with that reason. [`metrics`] counts it all per channel. [`service`] runs the
//! listener inside `vuoro serve` or on its own as `vuoro adapters`.
//!
//! Out to customers: [`outbound`] reads the outbound topic in one consumer group and hands each
//! message to its channel's courier ([`meta_courier`]: Meta's send APIs), with texts from
//! [`status`]; [`feed`] follows the outbound topic in every process for those who wait on one
//! contact.
//!
//! Email ([`email`]) has its own SMTP listener and courier: mail in becomes email contacts,
//! replies go out through an SMTP relay.
//!
//! Phone callbacks: the answer promises a time by the router's estimate ([`promise`]);
//! [`callback_courier`] tells the customer when it moves and writes a dial instruction when an
//! agent accepts; [`dial_outcomes`] reads how each attempt ended and schedules the next or tells
//! the customer ([`notice`]) through their alternative channel.

pub mod callback;
pub mod callback_courier;
pub mod chat;
pub mod contact_form;
pub mod dial_outcomes;
pub mod email;
pub mod feed;
pub mod listener;
pub mod meta;
pub mod meta_courier;
pub mod metrics;
pub mod notice;
pub mod outbound;
pub mod promise;
pub mod publish;
pub mod service;
pub mod status;
pub mod widget;

pub use listener::{ChatEndpoint, Endpoints, Listener, MetaEndpoint};
pub use publish::Publisher;
pub use service::{Adapters, AdaptersArgs, Channels, ChannelsExtension};

/// The current time (the adapters take the clock as an argument).
pub fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from(std::time::SystemTime::now())
}
