//! A Meta webhook body of arbitrary bytes: `meta::normalize` never panics, a refusal has a
//! reason code and a 4xx status, and every contact keeps the router's rules and belongs to the
//! tenant of the business account it was sent to. The same body signed with the app secret goes
//! through `handle_post` with the same result; signed for another body, or with the body itself
//! as the `X-Hub-Signature-256` header, it is refused.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use vuoro_adapters::ids::bounded_id;
use vuoro_adapters::meta::{self, MetaError, MetaSettings, Secret, SignatureError};
use vuoro_adapters_fuzz::{assert_code, assert_contact, meta_settings};

static SETTINGS: LazyLock<MetaSettings> = LazyLock::new(meta_settings);
static APP_SECRET: LazyLock<Secret> = LazyLock::new(|| Secret::new("fuzz-app-secret"));

fuzz_target!(|body: &[u8]| {
    let result = meta::normalize(&SETTINGS, body);
    match &result {
        Ok(batch) => {
            for c in &batch.contacts {
                let route = SETTINGS.route(c.platform, &c.account_id).expect("the account is configured");
                assert_contact(&c.contact, &route.tenant);
                assert_eq!(c.contact.id, bounded_id(c.platform.as_str(), &c.message_id));
                assert!(c.text.len() <= meta::MAX_TEXT_BYTES, "{} bytes of text", c.text.len());
            }
            for skipped in &batch.skipped {
                assert_code(skipped.reason.code());
                assert_eq!(skipped.dead_letter, skipped.reason.needs_dead_letter(), "{skipped:?}");
            }
        }
        Err(e) => {
            assert_code(e.code());
            assert!(matches!(e.http_status(), 400 | 413), "{e:?} answered {}", e.http_status());
        }
    }

    let signed = meta::signature_header(&APP_SECRET, body);
    assert_eq!(meta::handle_post(&SETTINGS, &APP_SECRET, Some(&signed), body), result);

    let too_large = body.len() > SETTINGS.max_body_bytes;
    let other = meta::signature_header(&APP_SECRET, &[body, b" "].concat());
    match meta::handle_post(&SETTINGS, &APP_SECRET, Some(&other), body) {
        Err(MetaError::TooLarge { .. }) => assert!(too_large),
        Err(MetaError::BadSignature(SignatureError::Mismatch)) => assert!(!too_large),
        refused_otherwise => panic!("signed for another body: {refused_otherwise:?}"),
    }
    if let Ok(header) = std::str::from_utf8(body) {
        let e = meta::verify_signature(&APP_SECRET, Some(header), body)
            .expect_err("a body is not its own signature");
        assert_code(MetaError::BadSignature(e).code());
    }
});
