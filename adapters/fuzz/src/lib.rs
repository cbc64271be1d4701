//! What the fuzz targets share: the adapters' settings, built from the golden tests'
//! configuration files so that the seed payloads route as they do there, and the router's
//! contact rules every contact an adapter returns must keep.

use chrono::{DateTime, Utc};
use vuoro_adapters::callback::{CallbackConfig, CallbackSettings};
use vuoro_adapters::chat::{ChatConfig, ChatSettings};
use vuoro_adapters::email::{EmailConfig, EmailSettings, Envelope};
use vuoro_adapters::meta::{MetaConfig, MetaSettings};
use vuoro_adapters::{language, limits};
use vuoro_proto::v1;

/// The golden callback cases' "now": Friday 14 March 2025, 10:00 in Helsinki. The seed
/// requests' windows are valid relative to it.
pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_741_939_200_000).expect("a valid instant")
}

/// The callback settings of the golden tests (`tests/golden/callback/config.toml`): two
/// tenants, one of which takes premium-rate numbers and short codes.
pub fn callback_settings() -> CallbackSettings {
    settings::<CallbackConfig, _>(include_str!("../../tests/golden/callback/config.toml"))
}

/// The email settings of the golden tests (`tests/golden/email/config.toml`): two addresses
/// of one tenant, a whole domain of another, tight MIME limits.
pub fn email_settings() -> EmailSettings {
    settings::<EmailConfig, _>(include_str!("../../tests/golden/email/config.toml"))
}

/// The chat settings of the golden tests (`tests/golden/chat/config.toml`): tenant acme with
/// its allowed origin and route, a 4 KiB frame limit.
pub fn chat_settings() -> ChatSettings {
    settings::<ChatConfig, _>(include_str!("../../tests/golden/chat/config.toml"))
}

/// The Meta settings of the golden tests (`tests/golden/meta/config.toml`): one account per
/// platform.
pub fn meta_settings() -> MetaSettings {
    settings::<MetaConfig, _>(include_str!("../../tests/golden/meta/config.toml"))
}

/// An SMTP envelope addressed to both tenants of [`email_settings`] (one of them twice, once
/// by a `+tag` address) and to an address that is not routed, so every message exercises the
/// routing of several recipients.
pub fn email_envelope() -> Envelope {
    Envelope {
        mail_from: "sam@example.org".to_owned(),
        rcpt_to: vec![
            "support@acme.example".to_owned(),
            "billing+urgent@acme.example".to_owned(),
            "Orders@Globex.example".to_owned(),
            "friend@elsewhere.example".to_owned(),
        ],
    }
}

fn settings<C, S>(toml_text: &str) -> S
where
    C: serde::de::DeserializeOwned,
    S: TryFrom<C, Error = vuoro_adapters::ConfigError>,
{
    let config: C = toml::from_str(toml_text).expect("the golden config parses");
    S::try_from(config).expect("the golden config is valid")
}

/// Panics unless `contact` keeps the router's contact rules (`vuoro_adapters::limits`) and was
/// routed to `tenant`: an id of 1–128 characters, the tenant, at most 32 attributes with keys
/// of 1–64 characters and values of at most 4096 bytes, a language that is empty or a
/// canonical tag, and no negative `not_before_unix_ms`.
pub fn assert_contact(contact: &v1::Contact, tenant: &str) {
    let id_chars = contact.id.chars().count();
    assert!((1..=limits::MAX_ID_CHARS).contains(&id_chars), "contact id {:?}", contact.id);
    assert_eq!(contact.tenant, tenant, "contact {:?} routed to the wrong tenant", contact.id);
    assert!(
        (1..=limits::MAX_TENANT_CHARS).contains(&contact.tenant.chars().count()),
        "tenant {:?}",
        contact.tenant
    );
    assert!(contact.attributes.len() <= limits::MAX_ATTRIBUTES, "{} attributes", contact.attributes.len());
    for (key, value) in &contact.attributes {
        assert!(
            (1..=limits::MAX_ATTRIBUTE_KEY_CHARS).contains(&key.chars().count()),
            "attribute key {key:?}"
        );
        assert!(!value.is_empty(), "attribute {key:?} is empty");
        assert!(value.len() <= limits::MAX_ATTRIBUTE_VALUE_BYTES, "attribute {key:?}: {} bytes", value.len());
    }
    assert!(
        contact.language.is_empty()
            || language::canonical_tag(&contact.language).as_deref() == Some(contact.language.as_str()),
        "language {:?}",
        contact.language
    );
    assert!(contact.not_before_unix_ms >= 0, "not_before_unix_ms {}", contact.not_before_unix_ms);
}

/// Panics unless `code` is a usable reason code: non-empty snake_case ASCII, as metrics labels
/// and dead-letter records need.
pub fn assert_code(code: &str) {
    assert!(
        !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "reason code {code:?}"
    );
}
