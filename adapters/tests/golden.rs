//! Golden tests: realistic inputs under `tests/golden/<channel>/`, each compared exactly with
//! the expected normalised output beside it (`<case>.expected.json` or `.expected.txt`).
//!
//! Run with `UPDATE_GOLDEN=1` to rewrite the expected files from what the code produces now;
//! review the diff before committing it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use vuoro_adapters::callback::{self, CallbackConfig, CallbackError, CallbackSettings};
use vuoro_adapters::chat::{self, ChatConfig, ChatSettings, ClientMessage, FieldProblem};
use vuoro_adapters::email::{self, EmailConfig, EmailError, EmailSettings, Envelope};
use vuoro_adapters::meta::{self, MetaConfig, MetaError, MetaSettings, Secret};
use vuoro_adapters::{language, limits};
use vuoro_proto::v1;

/// The "now" of every callback case: Friday 14 March 2025, 10:00 in Helsinki.
const NOW: &str = "2025-03-14T08:00:00Z";
/// The app secret the Meta cases are signed with.
const APP_SECRET: &str = "golden-test-app-secret";

fn golden_dir(channel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(channel)
}

/// The cases of a channel: input files with the given extension, sorted by name, excluding
/// expected outputs and sidecars.
fn cases(channel: &str, extension: &str) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = fs::read_dir(golden_dir(channel))
        .expect("golden directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.ends_with(&format!(".{extension}"))
                && name.matches('.').count() == 1
                && !name.starts_with("config")
        })
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no {channel} cases");
    cases
}

fn sibling(case: &Path, suffix: &str) -> PathBuf {
    let stem = case.file_stem().and_then(|s| s.to_str()).expect("case name");
    case.with_file_name(format!("{stem}.{suffix}"))
}

/// Compares `actual` with the expected file, or writes it under `UPDATE_GOLDEN=1`. Returns a
/// description of the mismatch, if any, so every case of a channel is checked before failing.
fn compare(expected: &Path, actual: &str) -> Option<String> {
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        fs::write(expected, actual).expect("write golden file");
        return None;
    }
    let want = fs::read_to_string(expected).unwrap_or_default();
    (want != actual).then(|| {
        format!(
            "{} differs (UPDATE_GOLDEN=1 to regenerate)\n--- expected\n{want}\n--- actual\n{actual}",
            expected.display()
        )
    })
}

fn finish(channel: &str, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} {channel} golden case(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("JSON") + "\n"
}

/// A contact as JSON, attributes sorted, every field shown.
fn contact_json(c: &v1::Contact) -> Value {
    let skills = |list: &[v1::SkillRequirement]| -> Value {
        list.iter().map(|s| json!({"skill": s.skill, "min_level": s.min_level})).collect()
    };
    let attributes: BTreeMap<&String, &String> = c.attributes.iter().collect();
    json!({
        "id": c.id,
        "tenant": c.tenant,
        "channel": v1::Channel::try_from(c.channel).map_or("?".to_owned(), |ch| ch.as_str_name().to_owned()),
        "priority": c.priority,
        "required_skills": skills(&c.required_skills),
        "preferred_skills": skills(&c.preferred_skills),
        "language": c.language,
        "not_before_unix_ms": c.not_before_unix_ms,
        "customer": c.customer.as_ref().map(|cu| json!({"display_name": cu.display_name, "address": cu.address})),
        "attributes": attributes,
    })
}

/// The router's contact rules the adapters promise to keep (see `limits`).
fn assert_router_accepts(c: &v1::Contact) {
    let chars = c.id.chars().count();
    assert!((1..=limits::MAX_ID_CHARS).contains(&chars), "id {:?}", c.id);
    assert!((1..=limits::MAX_TENANT_CHARS).contains(&c.tenant.chars().count()));
    assert!(c.attributes.len() <= limits::MAX_ATTRIBUTES, "{} attributes", c.attributes.len());
    for (k, v) in &c.attributes {
        assert!((1..=limits::MAX_ATTRIBUTE_KEY_CHARS).contains(&k.chars().count()), "key {k:?}");
        assert!(v.len() <= limits::MAX_ATTRIBUTE_VALUE_BYTES, "value of {k:?}: {} bytes", v.len());
    }
    assert!(
        c.language.is_empty() || language::canonical_tag(&c.language).as_deref() == Some(c.language.as_str())
    );
    assert!(c.not_before_unix_ms >= 0);
}

/// `output` (a serialisable normalised value) with its contact rendered in place.
fn with_contact(output: &impl serde::Serialize, contact: &v1::Contact) -> Value {
    assert_router_accepts(contact);
    let mut value = serde_json::to_value(output).expect("serialise output");
    let rest = value.as_object_mut().expect("object").clone();
    let mut ordered = serde_json::Map::new();
    ordered.insert("contact".to_owned(), contact_json(contact));
    ordered.extend(rest);
    Value::Object(ordered)
}

// ----- callback ------------------------------------------------------------------------------

fn callback_settings() -> CallbackSettings {
    let text = fs::read_to_string(golden_dir("callback").join("config.toml")).expect("callback config");
    let config: CallbackConfig = toml::from_str(&text).expect("callback config parses");
    CallbackSettings::try_from(config).expect("callback config is valid")
}

fn callback_error_json(e: &CallbackError) -> Value {
    let fields = match e {
        CallbackError::Invalid(errors) => serde_json::to_value(errors).expect("field errors"),
        _ => Value::Null,
    };
    json!({"error": {"code": e.code(), "http_status": e.http_status(), "message": e.to_string(), "fields": fields}})
}

#[test]
fn callback_golden() {
    let settings = callback_settings();
    let now: DateTime<Utc> = NOW.parse().expect("now");
    let mut failures = Vec::new();
    for case in cases("callback", "json") {
        let body = fs::read(&case).expect("case");
        let actual = match callback::normalize(&settings, &body, now) {
            Ok(out) => with_contact(&out, &out.contact),
            Err(e) => callback_error_json(&e),
        };
        failures.extend(compare(&sibling(&case, "expected.json"), &pretty(&actual)));
    }
    finish("callback", failures);
}

// ----- email ---------------------------------------------------------------------------------

fn email_settings() -> EmailSettings {
    let text = fs::read_to_string(golden_dir("email").join("config.toml")).expect("email config");
    let config: EmailConfig = toml::from_str(&text).expect("email config parses");
    EmailSettings::try_from(config).expect("email config is valid")
}

fn email_error_json(e: &EmailError) -> Value {
    let reply = e.smtp_reply();
    json!({"error": {"code": e.code(), "smtp": format!("{} {}", reply.code, reply.enhanced), "message": e.to_string()}})
}

#[test]
fn email_golden() {
    let settings = email_settings();
    let mut failures = Vec::new();
    for case in cases("email", "eml") {
        let raw = fs::read(&case).expect("case");
        let envelope_text = fs::read_to_string(sibling(&case, "envelope.json")).expect("envelope sidecar");
        let envelope: Envelope = serde_json::from_str(&envelope_text).expect("envelope");
        let actual = match email::normalize(&settings, &envelope, &raw) {
            Ok(contacts) => Value::Array(contacts.iter().map(|c| with_contact(c, &c.contact)).collect()),
            Err(e) => email_error_json(&e),
        };
        failures.extend(compare(&sibling(&case, "expected.json"), &pretty(&actual)));
    }
    finish("email", failures);
}

// ----- meta ----------------------------------------------------------------------------------

fn meta_settings() -> MetaSettings {
    let text = fs::read_to_string(golden_dir("meta").join("config.toml")).expect("meta config");
    let config: MetaConfig = toml::from_str(&text).expect("meta config parses");
    MetaSettings::try_from(config).expect("meta config is valid")
}

fn meta_error_json(e: &MetaError) -> Value {
    json!({"error": {"code": e.code(), "http_status": e.http_status(), "message": e.to_string()}})
}

#[test]
fn meta_golden() {
    let settings = meta_settings();
    let secret = Secret::new(APP_SECRET);
    let mut failures = Vec::new();
    for case in cases("meta", "json") {
        let body = fs::read(&case).expect("case");
        // Signed as Meta would sign it, so each case goes through the whole POST path.
        let signature = meta::signature_header(&secret, &body);
        let actual = match meta::handle_post(&settings, &secret, Some(&signature), &body) {
            Ok(batch) => json!({
                "contacts": batch.contacts.iter().map(|c| with_contact(c, &c.contact)).collect::<Vec<_>>(),
                "skipped": batch.skipped,
            }),
            Err(e) => meta_error_json(&e),
        };
        failures.extend(compare(&sibling(&case, "expected.json"), &pretty(&actual)));
    }
    finish("meta", failures);
}

// ----- language ------------------------------------------------------------------------------

#[test]
fn language_golden() {
    let mut failures = Vec::new();
    for case in cases("language", "txt") {
        let text = fs::read_to_string(&case).expect("case");
        let actual = match language::detect(&text) {
            Some(d) => format!("{} (confidence {:.2})\n", d.tag, d.confidence),
            None => "none: not reliable\n".to_owned(),
        };
        failures.extend(compare(&sibling(&case, "expected.txt"), &actual));
    }
    finish("language", failures);
}

// ----- chat ----------------------------------------------------------------------------------

fn chat_settings() -> ChatSettings {
    let text = fs::read_to_string(golden_dir("chat").join("config.toml")).expect("chat config");
    let config: ChatConfig = toml::from_str(&text).expect("chat config parses");
    ChatSettings::try_from(config).expect("chat config is valid")
}

fn problems_json(problems: &[FieldProblem]) -> Value {
    json!({"problems": problems})
}

/// Each widget frame: what it reads as, and for a `start` the contact (conversation id
/// `chat:golden`) or every problem; for a `rating`, the score's check.
#[test]
fn chat_golden() {
    let settings = chat_settings();
    let mut failures = Vec::new();
    for case in cases("chat", "json") {
        let frame = fs::read_to_string(&case).expect("frame");
        let actual = match chat::parse(&settings, &frame) {
            Err(problem) => problems_json(&[problem]),
            Ok(ClientMessage::Start(start)) => {
                match chat::normalize_start(&settings, &start, "chat:golden") {
                    Ok(contact) => with_contact(&json!({"type": "start"}), &contact),
                    Err(problems) => problems_json(&problems),
                }
            }
            Ok(ClientMessage::Message(said)) => {
                match chat::check_text("text", &said.text, settings.max_text_chars) {
                    Ok(text) => json!({"type": "message", "text": text}),
                    Err(problem) => problems_json(&[problem]),
                }
            }
            Ok(ClientMessage::Rating(rated)) => match chat::check_score(rated.score) {
                Ok(score) => json!({"type": "rating", "score": score}),
                Err(problem) => problems_json(&[problem]),
            },
            Ok(ClientMessage::Resume(resume)) => {
                json!({"type": "resume", "tenant": resume.tenant, "conversation": resume.conversation})
            }
        };
        failures.extend(compare(&sibling(&case, "expected.json"), &pretty(&actual)));
    }
    finish("chat", failures);
}
