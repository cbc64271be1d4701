//! A callback request body of arbitrary bytes: `callback::parse` and `normalize` never panic,
//! a refusal has a reason code and the HTTP status its kind calls for, and an accepted request
//! is the same contact every time, routed to the tenant it names, with the sender's
//! `request_id` as its id when it gave one.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use vuoro_adapters::callback::{self, CallbackError, CallbackSettings};
use vuoro_adapters::ids::bounded_id;
use vuoro_adapters_fuzz::{assert_code, assert_contact, callback_settings, now};

static SETTINGS: LazyLock<CallbackSettings> = LazyLock::new(callback_settings);

fuzz_target!(|body: &[u8]| {
    let request = match callback::parse(&SETTINGS, body) {
        Ok(request) => request,
        Err(e) => {
            assert_code(e.code());
            assert_eq!(e.http_status(), if matches!(e, CallbackError::TooLarge { .. }) { 413 } else { 400 });
            assert_eq!(callback::normalize(&SETTINGS, body, now()), Err(e));
            return;
        }
    };
    let result = callback::normalize_request(&SETTINGS, &request, now());
    assert_eq!(result, callback::normalize(&SETTINGS, body, now()), "normalize is not deterministic");
    match result {
        Ok(out) => {
            assert_contact(&out.contact, request.tenant.trim());
            if let Some(id) = request.request_id.as_deref().map(str::trim).filter(|id| !id.is_empty()) {
                assert_eq!(out.contact.id, bounded_id("callback", id));
            }
            assert!(out.earliest_unix_ms >= now().timestamp_millis());
            if let Some(window) = &out.window {
                assert!(window.start_unix_ms < window.end_unix_ms, "{window:?}");
                assert!(window.end_unix_ms > now().timestamp_millis(), "{window:?}");
            }
        }
        Err(e) => {
            assert_code(e.code());
            let CallbackError::Invalid(fields) = &e else {
                panic!("a parsed request refused as {e:?}");
            };
            assert!(!fields.is_empty(), "refused with no field named");
            assert_eq!(e.http_status(), 422);
            for field in fields {
                assert_code(field.problem.code());
            }
        }
    }
});
