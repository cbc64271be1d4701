//! Vuoro's channel listeners: the I/O around the pure adapters of `vuoro-adapters`.
//!
//! One HTTP listener ([`listener`]) takes callback requests ([`callback`]) and Meta's webhooks
//! ([`meta`]), normalises them with `vuoro-adapters`, and publishes each contact to the
//! contacts topic as the router's own gateway does ([`publish`]): a `RouterInput` submit keyed
//! by tenant on the tenant's partition, answered only once Kafka acknowledged it. Whatever is
//! refused is answered with a JSON error naming the field and the reason, and written to the
//! dead-letter topic with that reason. [`metrics`] counts it all per channel. [`service`] runs the
//! listener inside `vuoro serve` or on its own as `vuoro adapters`; [`deliver`] sends agents'
//! replies to Meta contacts through the platforms' send APIs.

pub mod callback;
pub mod deliver;
pub mod listener;
pub mod meta;
pub mod metrics;
pub mod publish;
pub mod service;

pub use listener::{Endpoints, Listener, MetaEndpoint};
pub use publish::Publisher;
pub use service::{Adapters, AdaptersArgs, Channels, ChannelsExtension};

/// The current time (the adapters take the clock as an argument).
pub fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from(std::time::SystemTime::now())
}
