//! The parsers never panic, whatever the bytes: random input, and real payloads with bytes
//! flipped, cut or inserted (which reach deeper into each parser than random bytes do). Every
//! outcome must be a contact or a typed error.

use std::fs;
use std::path::Path;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use vuoro_adapters::callback::{self, CallbackConfig, CallbackSettings};
use vuoro_adapters::chat::{self, ChatConfig, ChatSettings, ClientMessage};
use vuoro_adapters::email::{self, EmailConfig, EmailSettings, Envelope};
use vuoro_adapters::language;
use vuoro_adapters::meta::{self, MetaConfig, MetaSettings, Secret};

fn golden(channel: &str, name: &str) -> Vec<u8> {
    fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(channel).join(name))
        .expect("golden file")
}

fn config<T: serde::de::DeserializeOwned>(channel: &str) -> T {
    toml::from_str(&String::from_utf8(golden(channel, "config.toml")).expect("UTF-8")).expect("config")
}

fn callback_settings() -> CallbackSettings {
    CallbackSettings::try_from(config::<CallbackConfig>("callback")).expect("valid")
}

fn email_settings() -> EmailSettings {
    EmailSettings::try_from(config::<EmailConfig>("email")).expect("valid")
}

fn meta_settings() -> MetaSettings {
    MetaSettings::try_from(config::<MetaConfig>("meta")).expect("valid")
}

fn chat_settings() -> ChatSettings {
    ChatSettings::try_from(config::<ChatConfig>("chat")).expect("valid")
}

/// A chat frame through the parser and, for a start, the normaliser.
fn chat_frame(frame: &str) {
    if let Ok(ClientMessage::Start(start)) = chat::parse(&chat_settings(), frame) {
        let _ = chat::normalize_start(&chat_settings(), &start, "chat:proptest");
    }
}

fn now() -> DateTime<Utc> {
    "2025-03-14T08:00:00Z".parse().expect("now")
}

/// An edit of a real payload: overwrite, insert or delete bytes at positions chosen by the
/// strategy (positions are taken modulo the payload's length).
#[derive(Clone, Debug)]
enum Edit {
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, v)| Edit::Insert(i, v)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Edit::Delete(i, n)),
    ];
    proptest::collection::vec(edit, 1..8)
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        let len = bytes.len().max(1);
        match edit {
            Edit::Set(i, b) => {
                if !bytes.is_empty() {
                    bytes[i % len] = *b;
                }
            }
            Edit::Insert(i, v) => {
                let at = i % (bytes.len() + 1);
                bytes.splice(at..at, v.iter().copied());
            }
            Edit::Delete(i, n) => {
                if !bytes.is_empty() {
                    let at = i % len;
                    let end = (at + n).min(bytes.len());
                    bytes.drain(at..end);
                }
            }
        }
    }
    bytes
}

const EMAILS: &[&str] = &[
    "plain_first_inquiry.eml",
    "html_only_latin1.eml",
    "reply_with_attachment.eml",
    "shift_jis_body.eml",
    "bounce_null_sender.eml",
    "mime_bomb_depth.eml",
];
const WEBHOOKS: &[&str] = &[
    "messenger_text_and_receipts.json",
    "messenger_batched_entries.json",
    "instagram_messages.json",
    "whatsapp_media_and_statuses.json",
];
const CALLBACKS: &[&str] =
    &["web_form_window.json", "ivr_asap_international.json", "every_problem_listed.json"];

fn envelope() -> Envelope {
    Envelope { mail_from: "sam@example.org".into(), rcpt_to: vec!["support@acme.example".into()] }
}

const CHATS: &[&str] =
    &["start_finnish_detected.json", "start_language_chosen.json", "start_every_problem.json"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn callback_never_panics_on_bytes(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = callback::normalize(&callback_settings(), &body, now());
    }

    #[test]
    fn callback_never_panics_on_edited_requests(which in 0..CALLBACKS.len(), edits in edits()) {
        let body = apply(golden("callback", CALLBACKS[which]), &edits);
        let _ = callback::normalize(&callback_settings(), &body, now());
    }

    #[test]
    fn callback_never_panics_on_any_field_values(
        number in "\\PC{0,40}",
        region in "\\PC{0,4}",
        zone in "[A-Za-z_/+-]{0,30}",
        start in "[0-9T:-]{0,20}",
        end in "[0-9T:-]{0,20}",
        language in "\\PC{0,12}",
        at_ms in -10_000_000_000_000i64..10_000_000_000_000i64,
    ) {
        let request = serde_json::json!({
            "tenant": "acme", "number": number, "region": region, "language": language,
            "window": {"time_zone": zone, "start": start, "end": end},
            "alternative": {"channel": "sms", "address": number},
        });
        let body = serde_json::to_vec(&request).expect("JSON");
        let now = DateTime::<Utc>::from_timestamp_millis(at_ms).unwrap_or_else(now);
        let _ = callback::normalize(&callback_settings(), &body, now);
    }

    #[test]
    fn email_never_panics_on_bytes(raw in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = email::normalize(&email_settings(), &envelope(), &raw);
    }

    #[test]
    fn email_never_panics_on_edited_messages(which in 0..EMAILS.len(), edits in edits()) {
        let raw = apply(golden("email", EMAILS[which]), &edits);
        let _ = email::normalize(&email_settings(), &envelope(), &raw);
    }

    #[test]
    fn meta_never_panics_on_bytes(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = meta::normalize(&meta_settings(), &body);
        let _ = meta::handle_post(&meta_settings(), &Secret::new("s"), Some("sha256=00"), &body);
    }

    #[test]
    fn meta_never_panics_on_edited_webhooks(which in 0..WEBHOOKS.len(), edits in edits()) {
        let body = apply(golden("meta", WEBHOOKS[which]), &edits);
        let _ = meta::normalize(&meta_settings(), &body);
    }

    #[test]
    fn handshake_and_signature_never_panic(query in "\\PC{0,200}", header in "\\PC{0,100}") {
        let _ = meta::verify_subscription(&query, &Secret::new("token"));
        let _ = meta::verify_signature(&Secret::new("secret"), Some(&header), query.as_bytes());
    }

    #[test]
    fn language_never_panics(text in "\\PC{0,300}") {
        let _ = language::detect(&text);
        let _ = language::canonical_tag(&text);
    }

    #[test]
    fn chat_never_panics_on_text(frame in "\\PC{0,600}") {
        chat_frame(&frame);
    }

    #[test]
    fn chat_never_panics_on_edited_frames(which in 0..CHATS.len(), edits in edits()) {
        let frame = apply(golden("chat", CHATS[which]), &edits);
        chat_frame(&String::from_utf8_lossy(&frame));
    }
}
