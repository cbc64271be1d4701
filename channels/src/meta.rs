//! `GET` and `POST /webhooks/meta`: Meta's webhooks for Messenger, Instagram and WhatsApp.
//!
//! The GET answers the subscription handshake with the challenge, only for the right verify
//! token. A POST is size-checked before it is read, its `X-Hub-Signature-256` checked against
//! the raw body, and then normalised by [`vuoro_adapters::meta`]: every customer message
//! becomes a social contact, every event that may hide a lost customer message (an unknown
//! account, an unsupported type, a malformed event, a platform error) a dead letter, and
//! receipts, echoes and statuses are counted and ignored. The answer is 200 only once Kafka
//! has all of them; otherwise 503, and Meta delivers the batch again (contact ids are the
//! platform's message ids, so the router refuses the repeats).

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use vuoro_adapters::meta::{self, MetaError, SignatureError};

use crate::listener::{Refusal, State, json_response, read_body, status_code, unavailable};
use crate::publish::{DeadLetter, Unavailable, settle};

/// The channel's name: the `channel` metrics label and the dead-letter source `channel:meta`.
pub const CHANNEL: &str = "meta";

/// The signature header Meta sends.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Handles the subscription handshake.
pub(crate) async fn handshake(
    state: &State,
    request: &Request<Incoming>,
    correlation: &str,
) -> Response<Full<Bytes>> {
    let Some(endpoint) = &state.endpoints.meta else {
        return Refusal::one(404, "not_found", "path", "Meta webhooks are not taken here".into()).response();
    };
    let query = request.uri().query().unwrap_or_default();
    match meta::verify_subscription(query, &endpoint.verify_token) {
        Ok(challenge) => {
            let mut response = Response::new(Full::new(Bytes::from(challenge)));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
            response
        }
        Err(error) => {
            let refusal =
                Refusal::one(error.http_status(), error.code(), error.parameter(), error.to_string());
            // The query as received, less the token: a right token with a bad challenge
            // must not land in the dead letters.
            let redacted = redact_token(query);
            state.refuse(CHANNEL, CHANNEL, refusal, redacted.as_bytes(), correlation).await
        }
    }
}

/// The query string with the value of `hub.verify_token` replaced by `<redacted>`.
fn redact_token(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key == "hub.verify_token" || key == "hub%2Everify_token" => {
                format!("{key}=<redacted>")
            }
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Handles a webhook delivery.
pub(crate) async fn post(
    state: &State,
    request: Request<Incoming>,
    correlation: &str,
) -> Response<Full<Bytes>> {
    let Some(endpoint) = &state.endpoints.meta else {
        return Refusal::one(404, "not_found", "path", "Meta webhooks are not taken here".into()).response();
    };
    let (parts, body) = match read_body(request, endpoint.settings.max_body_bytes).await {
        Ok(read) => read,
        Err(error) => {
            return state.refuse(CHANNEL, CHANNEL, Refusal::of_body(&error), &[], correlation).await;
        }
    };
    let signature = parts.headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let batch = match meta::handle_post(&endpoint.settings, &endpoint.app_secret, signature, &body) {
        Ok(batch) => batch,
        Err(error) => {
            let payload: &[u8] = if matches!(error, MetaError::TooLarge { .. }) { &[] } else { &body };
            return state.refuse(CHANNEL, CHANNEL, refusal(&error), payload, correlation).await;
        }
    };

    let mut pending = Vec::new();
    let mut refused_contacts = Vec::new();
    let contacts = batch.contacts.len();
    for social in batch.contacts {
        let violations = vuoro_service::convert::check_contact(&social.contact);
        if !violations.is_empty() {
            let reason = violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
            refused_contacts.push((social.contact.tenant.clone(), social.message_id.clone(), reason));
            continue;
        }
        let channel = vuoro_service::convert::engine_channel(social.contact.channel);
        pending.push((Some(channel), state.publisher.submit(social.contact, correlation)));
    }
    let mut dead_lettered = 0;
    let mut ignored = 0;
    for skipped in &batch.skipped {
        let code = skipped.reason.code();
        if !skipped.dead_letter {
            crate::metrics::ignored(CHANNEL, code);
            ignored += 1;
            continue;
        }
        crate::metrics::rejected(CHANNEL, code);
        dead_lettered += 1;
        let reason = serde_json::to_string(&skipped.reason).unwrap_or_else(|_| code.to_owned());
        let letter = DeadLetter {
            channel: CHANNEL,
            key: CHANNEL,
            code,
            reason: &reason,
            payload: &body,
            event_path: Some(&skipped.at),
        };
        pending.push((None, state.publisher.dead_letter(&letter, correlation)));
    }
    for (tenant, message_id, reason) in &refused_contacts {
        // The adapters keep the router's rules; reaching this is a bug, still not a silent drop.
        crate::metrics::rejected(CHANNEL, "invalid_contact");
        dead_lettered += 1;
        let reason = format!("message {message_id}: {reason}");
        let letter = DeadLetter {
            channel: CHANNEL,
            key: crate::listener::key_for(Some(tenant), CHANNEL),
            code: "invalid_contact",
            reason: &reason,
            payload: &body,
            event_path: None,
        };
        pending.push((None, state.publisher.dead_letter(&letter, correlation)));
    }

    let mut failure: Option<Unavailable> = None;
    let mut accepted = 0;
    for (channel, delivery) in pending {
        let stored = match delivery {
            Ok(delivery) => settle(delivery).await,
            Err(error) => Err(error),
        };
        match stored {
            Ok(()) => {
                if let Some(channel) = channel {
                    accepted += 1;
                    if let Some(channel) = channel {
                        vuoro_service::metrics::contact_received(channel);
                    }
                }
            }
            Err(error) => failure = Some(error),
        }
    }
    crate::metrics::accepted(CHANNEL, accepted);
    if let Some(error) = failure {
        return unavailable(CHANNEL, &error.to_string());
    }
    json_response(
        StatusCode::OK,
        &json!({"status": "accepted", "contacts": contacts, "dead_lettered": dead_lettered, "ignored": ignored}),
    )
}

/// The refusal of a whole webhook body.
fn refusal(error: &MetaError) -> Refusal {
    let field = match error {
        MetaError::BadSignature(_) => "X-Hub-Signature-256",
        MetaError::UnsupportedObject(_) => "object",
        _ => "body",
    };
    let mut detail = json!({"field": field, "code": error.code(), "message": error.to_string()});
    match error {
        MetaError::Malformed { line, column, .. } => {
            detail["line"] = Value::from(*line);
            detail["column"] = Value::from(*column);
        }
        MetaError::TooLarge { limit, .. } => detail["limit"] = Value::from(*limit),
        MetaError::BadSignature(SignatureError::Malformed) => {
            detail["expected"] = Value::from("sha256=<64 hex digits>");
        }
        _ => {}
    }
    Refusal {
        status: status_code(error.http_status()),
        code: error.code(),
        message: error.to_string(),
        fields: vec![detail],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verify_token_never_reaches_a_dead_letter() {
        assert_eq!(
            redact_token("hub.mode=subscribe&hub.verify_token=s3cret&hub.challenge=%3Cx%3E"),
            "hub.mode=subscribe&hub.verify_token=<redacted>&hub.challenge=%3Cx%3E"
        );
        assert_eq!(redact_token(""), "");
    }

    #[test]
    fn refusals_name_the_header_or_the_body() {
        let bad = refusal(&MetaError::BadSignature(SignatureError::Mismatch));
        assert_eq!((bad.status, bad.code), (StatusCode::UNAUTHORIZED, "signature_mismatch"));
        assert_eq!(bad.fields[0]["field"], "X-Hub-Signature-256");
        let malformed = refusal(&MetaError::Malformed { line: 1, column: 2, message: "eof".into() });
        assert_eq!((malformed.status, malformed.code), (StatusCode::BAD_REQUEST, "malformed_json"));
        assert_eq!(malformed.fields[0]["field"], "body");
        assert_eq!(malformed.fields[0]["column"], 2);
    }
}
