//! A web chat frame of arbitrary bytes, as the listener reads it: `chat::parse` never panics,
//! a refusal has a reason code and names a field, and a `start` that normalises gives a contact
//! that keeps the router's contact rules, on the tenant the frame named, with the
//! conversation id it was given; a message's text and a rating's score are checked as the
//! listener checks them, and what passes is within its limits.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use vuoro_adapters::chat::{self, ChatSettings, ClientMessage};
use vuoro_adapters_fuzz::{assert_code, assert_contact, chat_settings};

static SETTINGS: LazyLock<ChatSettings> = LazyLock::new(chat_settings);

/// The conversation id the listener would draw for a start.
const CONVERSATION: &str = "chat:0123456789abcdef0123456789abcdef";

fuzz_target!(|frame: &[u8]| {
    // The listener refuses a text frame that is not UTF-8 before parsing.
    let Ok(frame) = std::str::from_utf8(frame) else { return };
    match chat::parse(&SETTINGS, frame) {
        Ok(ClientMessage::Start(start)) => match chat::normalize_start(&SETTINGS, &start, CONVERSATION) {
            Ok(contact) => {
                assert_eq!(contact.id, CONVERSATION);
                assert_contact(&contact, start.tenant.trim());
            }
            Err(problems) => {
                assert!(!problems.is_empty(), "a refused start names a problem");
                for problem in problems {
                    assert_code(problem.code);
                    assert!(!problem.field.is_empty(), "{problem:?}");
                }
            }
        },
        Ok(ClientMessage::Message(said)) => {
            if let Ok(text) = chat::check_text("text", &said.text, SETTINGS.max_text_chars) {
                assert!((1..=SETTINGS.max_text_chars).contains(&text.chars().count()));
            }
        }
        Ok(ClientMessage::Rating(rated)) => {
            if let Ok(score) = chat::check_score(rated.score) {
                assert!((1..=5).contains(&score));
            }
        }
        Ok(ClientMessage::Resume(_)) => {}
        Err(problem) => {
            assert_code(problem.code);
            assert!(!problem.field.is_empty(), "{problem:?}");
            assert!(
                frame.len() > SETTINGS.max_frame_bytes || problem.code == "malformed_json",
                "{problem:?}"
            );
        }
    }
});
