//! The two checks Meta's webhooks need before any payload is trusted: the subscription
//! handshake (GET) and the payload signature (POST).

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::text::{hex, unhex};

/// Longest `hub.challenge` echoed back.
pub const MAX_CHALLENGE_CHARS: usize = 256;

/// A secret (the app secret, the verify token). Its `Debug` never shows it, so it cannot leak
/// into logs.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps the secret's bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(bytes.into())
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret's bytes, for the one place that must send it (an `Authorization` header).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Whether the secret is empty (an unset environment variable given as `""`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Compares in constant time (for secrets of the same length), so a comparison does not leak
/// how much of a guess was right.
impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why a subscription handshake was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// A `hub.*` parameter is missing.
    #[error("missing query parameter {0}")]
    Missing(&'static str),
    /// `hub.mode` is not `subscribe`.
    #[error("hub.mode is \"{0}\", not \"subscribe\"")]
    WrongMode(String),
    /// `hub.verify_token` is not ours.
    #[error("hub.verify_token does not match")]
    TokenMismatch,
    /// `hub.challenge` is empty, too long, or holds characters that are not safe to echo.
    #[error("hub.challenge is not a plain token")]
    BadChallenge,
}

impl HandshakeError {
    /// A stable snake_case code for metrics labels and dead-letter records.
    pub fn code(&self) -> &'static str {
        match self {
            HandshakeError::Missing(_) => "missing_parameter",
            HandshakeError::WrongMode(_) => "wrong_mode",
            HandshakeError::TokenMismatch => "token_mismatch",
            HandshakeError::BadChallenge => "bad_challenge",
        }
    }

    /// The query parameter at fault, e.g. `hub.verify_token`.
    pub fn parameter(&self) -> &'static str {
        match self {
            HandshakeError::Missing(name) => name,
            HandshakeError::WrongMode(_) => "hub.mode",
            HandshakeError::TokenMismatch => "hub.verify_token",
            HandshakeError::BadChallenge => "hub.challenge",
        }
    }

    /// 403 for a wrong token (what Meta's documentation asks for), 400 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            HandshakeError::TokenMismatch => 403,
            _ => 400,
        }
    }
}

/// Answers Meta's subscription handshake, `GET …?hub.mode=subscribe&hub.verify_token=…&
/// hub.challenge=…`, given the raw query string (form-encoded, without the `?`). On success
/// the listener answers 200 with the returned challenge as a `text/plain` body.
///
/// The token is compared in constant time; the challenge is echoed only if it is 1–256
/// characters of ASCII letters, digits, `-`, `_` and `.` (Meta sends digits), so the endpoint
/// cannot be used to reflect markup.
pub fn verify_subscription(raw_query: &str, verify_token: &Secret) -> Result<String, HandshakeError> {
    let (mut mode, mut token, mut challenge) = (None, None, None);
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match form_decode(key).as_str() {
            "hub.mode" => &mut mode,
            "hub.verify_token" => &mut token,
            "hub.challenge" => &mut challenge,
            _ => continue,
        };
        *slot = Some(form_decode(value));
    }
    let mode = mode.ok_or(HandshakeError::Missing("hub.mode"))?;
    let token = token.ok_or(HandshakeError::Missing("hub.verify_token"))?;
    let challenge = challenge.ok_or(HandshakeError::Missing("hub.challenge"))?;
    if mode != "subscribe" {
        return Err(HandshakeError::WrongMode(mode.chars().take(32).collect()));
    }
    if !bool::from(token.as_bytes().ct_eq(verify_token.bytes())) {
        return Err(HandshakeError::TokenMismatch);
    }
    let safe = !challenge.is_empty()
        && challenge.len() <= MAX_CHALLENGE_CHARS
        && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !safe {
        return Err(HandshakeError::BadChallenge);
    }
    Ok(challenge)
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte; a malformed
/// escape is kept as written; bytes that are not UTF-8 become U+FFFD.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match s.get(i + 1..i + 3).and_then(unhex) {
                Some(byte) => {
                    out.extend(byte);
                    i += 3;
                    continue;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why a payload signature was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Hub-Signature-256` header.
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    /// The header is not `sha256=` followed by 64 hexadecimal digits.
    #[error("malformed X-Hub-Signature-256 header (expected sha256=<64 hex digits>)")]
    Malformed,
    /// The signature is not the HMAC-SHA256 of the body with the app secret.
    #[error("X-Hub-Signature-256 does not match the body")]
    Mismatch,
}

/// Checks `X-Hub-Signature-256: sha256=<hex>` against the HMAC-SHA256 of the raw body keyed
/// with the app secret. The comparison is constant-time (`hmac`'s `verify_slice`). Pass the
/// body exactly as received: re-serialised JSON would not match.
pub fn verify_signature(
    app_secret: &Secret,
    header: Option<&str>,
    body: &[u8],
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim();
    let (scheme, digest) = header.split_once('=').ok_or(SignatureError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("sha256") || digest.len() != 64 {
        return Err(SignatureError::Malformed);
    }
    let tag = unhex(digest).ok_or(SignatureError::Malformed)?;
    let mut mac = mac(app_secret);
    mac.update(body);
    mac.verify_slice(&tag).map_err(|_| SignatureError::Mismatch)
}

/// The `X-Hub-Signature-256` value Meta would send for `body`: `sha256=<hex>`. For tests and
/// for local tools that play Meta's part.
pub fn signature_header(app_secret: &Secret, body: &[u8]) -> String {
    let mut mac = mac(app_secret);
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

fn mac(secret: &Secret) -> Hmac<Sha256> {
    // HMAC takes a key of any length, so this cannot fail.
    match <Hmac<Sha256> as KeyInit>::new_from_slice(secret.bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Secret {
        Secret::new("meatyhamhock")
    }

    #[test]
    fn the_handshake_echoes_the_challenge_for_our_token() {
        let query = "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock";
        assert_eq!(verify_subscription(query, &token()).as_deref(), Ok("1158201444"));
    }

    #[test]
    fn the_handshake_decodes_form_encoding() {
        let secret = Secret::new("a token/with spaces");
        let query = "hub.verify_token=a+token%2Fwith%20spaces&hub.mode=subscribe&hub.challenge=42";
        assert_eq!(verify_subscription(query, &secret).as_deref(), Ok("42"));
    }

    #[test]
    fn the_handshake_refuses_a_wrong_token_with_403() {
        let err = verify_subscription("hub.mode=subscribe&hub.challenge=1&hub.verify_token=guess", &token())
            .unwrap_err();
        assert_eq!(err, HandshakeError::TokenMismatch);
        assert_eq!(err.http_status(), 403);
    }

    #[test]
    fn the_handshake_refuses_missing_parts_other_modes_and_markup() {
        assert_eq!(
            verify_subscription("hub.mode=subscribe&hub.verify_token=meatyhamhock", &token()),
            Err(HandshakeError::Missing("hub.challenge"))
        );
        assert_eq!(
            verify_subscription(
                "hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=meatyhamhock",
                &token()
            ),
            Err(HandshakeError::WrongMode("unsubscribe".into()))
        );
        assert_eq!(
            verify_subscription(
                "hub.mode=subscribe&hub.challenge=%3Cscript%3E&hub.verify_token=meatyhamhock",
                &token()
            ),
            Err(HandshakeError::BadChallenge)
        );
        assert_eq!(verify_subscription("%zz&=&&", &token()), Err(HandshakeError::Missing("hub.mode")));
    }

    #[test]
    fn a_signature_of_the_body_verifies_and_any_change_does_not() {
        let secret = Secret::new("app-secret");
        let body = br#"{"object":"page","entry":[]}"#;
        let header = signature_header(&secret, body);
        assert_eq!(verify_signature(&secret, Some(&header), body), Ok(()));
        assert_eq!(
            verify_signature(&secret, Some(&header), br#"{"object":"page","entry":[] }"#),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(&Secret::new("other"), Some(&header), body),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(&secret, Some(&header.to_uppercase().replace("SHA256", "sha256")), body),
            Ok(())
        );
    }

    #[test]
    fn malformed_or_missing_signatures_are_told_apart() {
        let secret = Secret::new("app-secret");
        assert_eq!(verify_signature(&secret, None, b"{}"), Err(SignatureError::Missing));
        for bad in [
            "",
            "sha256",
            "sha1=0123",
            &format!("sha256={}", "g".repeat(64)),
            &format!("md5={}", "0".repeat(64)),
        ] {
            assert_eq!(verify_signature(&secret, Some(bad), b"{}"), Err(SignatureError::Malformed), "{bad}");
        }
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(..)");
    }

    #[test]
    fn secrets_compare_by_content() {
        assert_eq!(Secret::new("a"), Secret::new(b"a".to_vec()));
        assert_ne!(Secret::new("a"), Secret::new("b"));
        assert_ne!(Secret::new("a"), Secret::new("ab"));
        assert!(Secret::new("").is_empty() && !Secret::new("a").is_empty());
    }

    #[test]
    fn handshake_refusals_name_their_parameter_and_code() {
        let cases = [
            (HandshakeError::Missing("hub.challenge"), "missing_parameter", "hub.challenge"),
            (HandshakeError::WrongMode("x".into()), "wrong_mode", "hub.mode"),
            (HandshakeError::TokenMismatch, "token_mismatch", "hub.verify_token"),
            (HandshakeError::BadChallenge, "bad_challenge", "hub.challenge"),
        ];
        for (error, code, parameter) in cases {
            assert_eq!((error.code(), error.parameter()), (code, parameter), "{error}");
        }
    }
}
