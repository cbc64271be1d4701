//! What listeners and customers rely on beyond the golden payloads: idempotent ids, limits
//! checked before parsing, routing of recipient addresses, threading across messages, and
//! configuration errors reported all at once.

use chrono::{DateTime, Utc};
use vuoro_adapters::callback::{self, CallbackConfig, CallbackError, CallbackSettings};
use vuoro_adapters::chat::{ChatConfig, ChatSettings};
use vuoro_adapters::email::{self, EmailConfig, EmailError, EmailSettings, Envelope};
use vuoro_adapters::limits::MAX_ATTRIBUTE_VALUE_BYTES;
use vuoro_adapters::meta::{self, MetaConfig, MetaError, MetaSettings, Secret, SignatureError};

fn at(t: &str) -> DateTime<Utc> {
    t.parse().expect("time")
}

fn callback_settings(extra: &str) -> CallbackSettings {
    let text = format!("{extra}\n[tenants.acme]\ndefault_region = \"FI\"\ndedupe_window_secs = 600\n");
    CallbackSettings::try_from(toml::from_str::<CallbackConfig>(&text).expect("parses")).expect("valid")
}

#[test]
fn a_resubmitted_callback_form_is_the_same_contact_until_the_dedupe_window_moves_on() {
    let settings = callback_settings("");
    let body = br#"{"tenant": "acme", "number": "040 123 4567"}"#;
    let first = callback::normalize(&settings, body, at("2025-03-14T08:00:05Z")).expect("valid");
    let again = callback::normalize(&settings, body, at("2025-03-14T08:09:55Z")).expect("valid");
    let later = callback::normalize(&settings, body, at("2025-03-14T08:10:01Z")).expect("valid");
    assert_eq!(first.contact.id, again.contact.id);
    assert_ne!(first.contact.id, later.contact.id);
    // Written differently, the same number is the same request.
    let same = callback::normalize(
        &settings,
        br#"{"tenant": "acme", "number": "+358 40 1234567"}"#,
        at("2025-03-14T08:01:00Z"),
    )
    .expect("valid");
    assert_eq!(first.contact.id, same.contact.id);
}

#[test]
fn a_callback_request_id_names_the_contact_whatever_else_changes() {
    let settings = callback_settings("");
    let a = br#"{"tenant": "acme", "request_id": "form-1", "number": "040 123 4567"}"#;
    let b = br#"{"tenant": "acme", "request_id": "form-1", "number": "040 123 4567", "reason": "retry"}"#;
    let first = callback::normalize(&settings, a, at("2025-03-14T08:00:00Z")).expect("valid");
    let second = callback::normalize(&settings, b, at("2025-03-15T08:00:00Z")).expect("valid");
    assert_eq!(first.contact.id, "callback:form-1");
    assert_eq!(second.contact.id, "callback:form-1");
}

#[test]
fn an_oversized_callback_body_is_refused_before_it_is_read() {
    let settings = callback_settings("max_body_bytes = 64");
    let body = vec![b'{'; 65];
    let err = callback::normalize(&settings, &body, at("2025-03-14T08:00:00Z")).unwrap_err();
    assert_eq!(err, CallbackError::TooLarge { size: 65, limit: 64 });
    assert_eq!(err.http_status(), 413);
}

#[test]
fn a_window_starting_in_a_repeated_hour_takes_the_first_of_the_two() {
    let settings = callback_settings("");
    // Clocks in Helsinki go back from 04:00 to 03:00 on 26 October 2025: 03:30 happens twice.
    let body = br#"{"tenant": "acme", "number": "040 123 4567",
        "window": {"time_zone": "Europe/Helsinki", "start": "2025-10-26T03:30", "end": "2025-10-26T05:00"}}"#;
    let out = callback::normalize(&settings, body, at("2025-10-20T08:00:00Z")).expect("valid");
    let window = out.window.expect("window");
    assert_eq!(window.start_unix_ms, at("2025-10-26T00:30:00Z").timestamp_millis());
    assert_eq!(out.contact.not_before_unix_ms, window.start_unix_ms);
    assert_eq!(out.earliest_unix_ms, window.start_unix_ms);
}

#[test]
fn callback_configuration_reports_every_problem_at_once() {
    let text = r#"
        [tenants.acme]
        default_region = "XX"
        max_days_ahead = 0
        priority = 300
        required_skills = [{ skill = "voice", min_level = 9 }]
    "#;
    let err =
        CallbackSettings::try_from(toml::from_str::<CallbackConfig>(text).expect("parses")).unwrap_err();
    assert_eq!(err.problems.len(), 4, "{err}");
    assert!(err.to_string().contains("tenants.acme.default_region"), "{err}");
    assert!(
        toml::from_str::<CallbackConfig>("[tenants.acme]\ndefault_region = \"FI\"\nregion = \"SE\"\n")
            .is_err()
    );
}

fn email_settings(extra: &str) -> EmailSettings {
    let text = format!(
        "{extra}\n[[routes]]\naddress = \"Support@Acme.example\"\ntenant = \"acme\"\n\
         [[routes]]\naddress = \"@globex.example\"\ntenant = \"globex\"\n"
    );
    EmailSettings::try_from(toml::from_str::<EmailConfig>(&text).expect("parses")).expect("valid")
}

fn envelope(to: &str) -> Envelope {
    Envelope { mail_from: "<alex@example.com>".into(), rcpt_to: vec![to.into()] }
}

#[test]
fn recipients_route_by_address_then_without_tag_then_by_domain() {
    let settings = email_settings("");
    let tenant = |rcpt: &str| settings.route_recipient(rcpt).map(|r| r.tenant.clone());
    assert_eq!(tenant("support@acme.example").as_deref(), Some("acme"));
    assert_eq!(tenant("<SUPPORT@ACME.EXAMPLE>").as_deref(), Some("acme"));
    assert_eq!(tenant("support+refunds@acme.example").as_deref(), Some("acme"));
    assert_eq!(tenant("anyone@globex.example").as_deref(), Some("globex"));
    assert_eq!(tenant("sales@acme.example"), None);
    assert_eq!(tenant("not-an-address"), None);
}

#[test]
fn an_oversized_email_is_refused_with_552_before_parsing() {
    let settings = email_settings("max_message_bytes = 100");
    let err = email::normalize(&settings, &envelope("support@acme.example"), &[b'a'; 101]).unwrap_err();
    assert_eq!(err, EmailError::TooLarge { size: 101, limit: 100 });
    assert_eq!((err.smtp_reply().code, err.smtp_reply().enhanced), (552, "5.3.4"));
}

#[test]
fn an_empty_message_is_refused_as_unparseable() {
    let err = email::normalize(&email_settings(""), &envelope("support@acme.example"), b"").unwrap_err();
    assert_eq!(err, EmailError::Unparseable);
}

fn mail(headers: &str, body: &str) -> Vec<u8> {
    format!("From: Alex <alex@example.com>\r\nTo: support@acme.example\r\n{headers}Content-Type: text/plain; charset=utf-8\r\n\r\n{body}")
        .into_bytes()
}

#[test]
fn a_follow_up_carries_the_contact_id_of_the_mail_that_opened_the_conversation() {
    let settings = email_settings("");
    let first = mail("Subject: Broken kettle\r\nMessage-ID: <first@example.com>\r\n", "It leaks.");
    let reply = mail(
        "Subject: Re: Broken kettle\r\nMessage-ID: <third@example.com>\r\nIn-Reply-To: <second@acme.example>\r\n\
         References: <first@example.com> <second@acme.example>\r\n",
        "Still leaking.",
    );
    let first = &email::normalize(&settings, &envelope("support@acme.example"), &first).expect("contact")[0];
    let reply = &email::normalize(&settings, &envelope("support@acme.example"), &reply).expect("contact")[0];
    assert_eq!(reply.thread.conversation_id, first.contact.id);
    assert_eq!(first.thread.conversation_id, first.contact.id);
    assert_eq!(reply.thread.related_ids, ["email:second@acme.example", "email:first@example.com"]);
    assert_ne!(reply.contact.id, first.contact.id);
}

#[test]
fn auto_submitted_no_is_a_person_writing() {
    let raw =
        mail("Subject: Hello\r\nMessage-ID: <p@example.com>\r\nAuto-Submitted: no\r\n", "A real question.");
    assert!(email::normalize(&email_settings(""), &envelope("support@acme.example"), &raw).is_ok());
}

#[test]
fn long_bodies_are_cut_for_the_contact_and_flagged() {
    let settings = email_settings("max_text_bytes = 10000");
    let raw = mail("Subject: Essay\r\nMessage-ID: <long@example.com>\r\n", &"sanat ".repeat(5000));
    let out = &email::normalize(&settings, &envelope("support@acme.example"), &raw).expect("contact")[0];
    assert!(out.text_truncated);
    assert!(out.text.len() <= 10000);
    let attribute = &out.contact.attributes["text"];
    assert!(attribute.len() <= MAX_ATTRIBUTE_VALUE_BYTES && attribute.ends_with('…'));
}

#[test]
fn email_configuration_reports_every_problem_at_once() {
    let text = r#"
        max_parts = 0
        [[routes]]
        address = "support@acme.example"
        tenant = "acme"
        [[routes]]
        address = "SUPPORT@acme.example"
        tenant = "other"
        [[routes]]
        address = "nonsense"
        tenant = ""
    "#;
    let err = EmailSettings::try_from(toml::from_str::<EmailConfig>(text).expect("parses")).unwrap_err();
    assert_eq!(
        err.problems,
        [
            "max_parts: must be above 0",
            "routes[1].address: \"SUPPORT@acme.example\" is routed twice",
            "routes[2].tenant: 0 characters, must be 1–64",
            "routes[2].address: \"nonsense\" is neither an address nor \"@domain\"",
        ]
    );
}

fn meta_settings(extra: &str) -> MetaSettings {
    let text = format!(
        "{extra}\n[[accounts]]\nplatform = \"whatsapp\"\nid = \"106540352242922\"\ntenant = \"globex\"\n"
    );
    MetaSettings::try_from(toml::from_str::<MetaConfig>(&text).expect("parses")).expect("valid")
}

const WHATSAPP: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"messages":[{"from":"16505551234","id":"wamid.A1","timestamp":"1749416383","type":"text","text":{"body":"Hello"}}]}}]}]}"#;

#[test]
fn a_webhook_signed_with_another_secret_is_refused_with_401() {
    let settings = meta_settings("");
    let forged = meta::signature_header(&Secret::new("not-the-app-secret"), WHATSAPP.as_bytes());
    let err = meta::handle_post(&settings, &Secret::new("app-secret"), Some(&forged), WHATSAPP.as_bytes())
        .unwrap_err();
    assert_eq!(err, MetaError::BadSignature(SignatureError::Mismatch));
    assert_eq!((err.code(), err.http_status()), ("signature_mismatch", 401));
    let err =
        meta::handle_post(&settings, &Secret::new("app-secret"), None, WHATSAPP.as_bytes()).unwrap_err();
    assert_eq!(err.code(), "signature_missing");
}

#[test]
fn an_oversized_webhook_is_refused_before_its_signature_is_computed() {
    let settings = meta_settings("max_body_bytes = 100");
    let err = meta::handle_post(&settings, &Secret::new("s"), None, WHATSAPP.as_bytes()).unwrap_err();
    assert!(matches!(err, MetaError::TooLarge { limit: 100, .. }));
    assert_eq!(err.http_status(), 413);
}

#[test]
fn a_redelivered_webhook_yields_the_same_contact_ids() {
    let settings = meta_settings("");
    let secret = Secret::new("app-secret");
    let signature = meta::signature_header(&secret, WHATSAPP.as_bytes());
    let first = meta::handle_post(&settings, &secret, Some(&signature), WHATSAPP.as_bytes()).expect("batch");
    let again = meta::handle_post(&settings, &secret, Some(&signature), WHATSAPP.as_bytes()).expect("batch");
    assert_eq!(first.contacts[0].contact.id, "whatsapp:wamid.A1");
    assert_eq!(first.contacts[0].contact, again.contacts[0].contact);
}

#[test]
fn notifications_wrapped_in_an_array_are_read_too() {
    let body = format!("[{WHATSAPP}, {WHATSAPP}]");
    let batch = meta::normalize(&meta_settings(""), body.as_bytes()).expect("batch");
    assert_eq!(batch.contacts.len(), 2);
}

#[test]
fn webhook_bodies_that_are_not_utf8_are_refused() {
    let err = meta::normalize(&meta_settings(""), b"{\"object\":\"page\xff\"}").unwrap_err();
    assert_eq!(err, MetaError::InvalidUtf8 { offset: 15 });
}

#[test]
fn meta_configuration_refuses_an_account_twice() {
    let text = r#"
        [[accounts]]
        platform = "messenger"
        id = "1"
        tenant = "acme"
        [[accounts]]
        platform = "messenger"
        id = "1"
        tenant = "globex"
        [[accounts]]
        platform = "instagram"
        id = "1"
        tenant = "globex"
    "#;
    let err = MetaSettings::try_from(toml::from_str::<MetaConfig>(text).expect("parses")).unwrap_err();
    assert_eq!(err.problems, ["accounts[1].id: messenger account \"1\" configured twice"]);
}

/// The README's configuration examples are real: each parses and validates.
#[test]
fn the_readme_configuration_examples_are_valid() {
    let readme = include_str!("../README.md");
    let blocks: Vec<&str> = readme.split("```toml").skip(1).filter_map(|b| b.split("```").next()).collect();
    assert_eq!(blocks.len(), 4, "one TOML example per channel");
    for block in blocks {
        let table: toml::Table = toml::from_str(block).expect("README TOML parses");
        for (section, value) in table {
            let text = toml::to_string(&value).expect("section");
            match section.as_str() {
                "callback" => {
                    CallbackSettings::try_from(toml::from_str::<CallbackConfig>(&text).expect("callback"))
                        .expect("valid");
                }
                "email" => {
                    EmailSettings::try_from(toml::from_str::<EmailConfig>(&text).expect("email"))
                        .expect("valid");
                }
                "meta" => {
                    MetaSettings::try_from(toml::from_str::<MetaConfig>(&text).expect("meta"))
                        .expect("valid");
                }
                "chat" => {
                    ChatSettings::try_from(toml::from_str::<ChatConfig>(&text).expect("chat"))
                        .expect("valid");
                }
                other => panic!("unexpected README section {other}"),
            }
        }
    }
}

/// The README's example payloads are accepted by the README's configuration.
#[test]
fn the_readme_example_payloads_are_accepted() {
    let readme = include_str!("../README.md");
    let section = |name: &str| -> String {
        let block = readme
            .split("```toml")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .find(|b| b.contains(&format!("[{name}]")));
        let table: toml::Table = toml::from_str(block.expect("TOML example")).expect("TOML");
        toml::to_string(&table[name]).expect("section")
    };
    let json: Vec<&str> = readme.split("```json").skip(1).filter_map(|b| b.split("```").next()).collect();
    assert_eq!(json.len(), 2);
    let callback_settings =
        CallbackSettings::try_from(toml::from_str::<CallbackConfig>(&section("callback")).expect("config"))
            .expect("valid");
    let out = callback::normalize(&callback_settings, json[0].as_bytes(), at("2025-03-14T08:00:00Z"))
        .expect("accepted");
    assert_eq!(out.number, "+358401234567");
    let meta_settings =
        MetaSettings::try_from(toml::from_str::<MetaConfig>(&section("meta")).expect("config"))
            .expect("valid");
    let batch = meta::normalize(&meta_settings, json[1].as_bytes()).expect("accepted");
    assert_eq!(batch.contacts.len(), 1);
    assert_eq!(batch.contacts[0].contact.tenant, "globex");
}
