//! A received message of arbitrary bytes, with an envelope to two tenants: `email::normalize`
//! never panics, a refusal has a reason code and a 250 or permanent SMTP answer, and every
//! contact keeps the router's rules, belongs to the tenant its recipient is routed to (one
//! contact per tenant), and carries the message's one id and at most the configured text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use vuoro_adapters::email::{self, EmailError, EmailSettings, Envelope};
use vuoro_adapters_fuzz::{assert_code, assert_contact, email_envelope, email_settings};

static SETTINGS: LazyLock<EmailSettings> = LazyLock::new(email_settings);
static ENVELOPE: LazyLock<Envelope> = LazyLock::new(email_envelope);

fuzz_target!(|raw: &[u8]| {
    match email::normalize(&SETTINGS, &ENVELOPE, raw) {
        Ok(contacts) => {
            assert!(!contacts.is_empty(), "accepted, but no contact");
            for (i, c) in contacts.iter().enumerate() {
                let route = SETTINGS.route_recipient(&c.recipient).expect("the recipient is routed");
                assert_contact(&c.contact, &route.tenant);
                assert_eq!(c.contact.id, contacts[0].contact.id, "one message, one id");
                assert!(
                    contacts[..i].iter().all(|other| other.contact.tenant != c.contact.tenant),
                    "two contacts for tenant {:?}",
                    c.contact.tenant
                );
                assert!(c.text.len() <= SETTINGS.max_text_bytes, "{} bytes of text", c.text.len());
            }
        }
        Err(e) => {
            assert_code(e.code());
            let reply = e.smtp_reply();
            match e {
                EmailError::Loop(_) => assert_eq!(reply.code, 250),
                _ => assert!((500..600).contains(&reply.code), "{e:?} answered {}", reply.code),
            }
        }
    }
});
