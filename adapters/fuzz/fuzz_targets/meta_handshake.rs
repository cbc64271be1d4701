//! A subscription handshake's query string of arbitrary bytes: `meta::verify_subscription`
//! never panics, a refusal has a reason code and names a `hub.*` parameter, and a challenge is
//! echoed only when the verify token matched and the challenge is a plain token (1–256 ASCII
//! letters, digits, `-`, `_`, `.`), so the endpoint can never reflect markup.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use vuoro_adapters::meta::{self, HandshakeError, MAX_CHALLENGE_CHARS, Secret};
use vuoro_adapters_fuzz::assert_code;

/// The token the seeds carry, so the fuzzer starts past the token check.
const VERIFY_TOKEN: &str = "fuzz-verify-token";

static TOKEN: LazyLock<Secret> = LazyLock::new(|| Secret::new(VERIFY_TOKEN));

fuzz_target!(|query: &[u8]| {
    let query = String::from_utf8_lossy(query);
    match meta::verify_subscription(&query, &TOKEN) {
        Ok(challenge) => {
            assert!((1..=MAX_CHALLENGE_CHARS).contains(&challenge.len()), "challenge {challenge:?}");
            assert!(
                challenge.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')),
                "challenge {challenge:?}"
            );
        }
        Err(e) => {
            assert_code(e.code());
            assert!(e.parameter().starts_with("hub."), "{e:?} names {}", e.parameter());
            let status = if e == HandshakeError::TokenMismatch { 403 } else { 400 };
            assert_eq!(e.http_status(), status);
        }
    }
});
