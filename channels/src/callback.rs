//! `POST /callback`: a callback request from a web form or an IVR. The body is read within the
//! channel's size limit, normalised by [`vuoro_adapters::callback`], published as a voice
//! contact, and answered `202 Accepted` — once Kafka has the contact — with what happens next:
//! the number that will be called and the promised time, in the customer's own time zone.
//!
//! The promise comes from the router: once Kafka has the contact, the request waits (at most the
//! configured `promise_wait_ms`) on the outbound [`crate::feed::Feed`] for the router's first
//! word on the contact, its estimated wait or its scheduled time, and promises a time by the
//! rule of [`crate::promise`]. Without an estimate (nobody who could take the call is logged
//! in, or no word in time) the answer says the estimate is unknown and promises no time.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};
use vuoro_adapters::callback::{self, CallbackContact, CallbackError, reply};

use crate::listener::{
    NotPublished, Refusal, State, json_response, key_for, read_body, status_code, unavailable,
};
use crate::promise::{Basis, Word, word_of};
use crate::status::{self, Language};

/// The channel's name: the `channel` metrics label and the dead-letter source `channel:callback`.
pub const CHANNEL: &str = "callback";

/// The answer to an accepted callback request.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct CallbackAnswer {
    /// The contact's id (`callback:{request_id}`, or a hash of the number and the window): the
    /// same request sent again gets the same id.
    pub id: String,
    /// Always `accepted`: Kafka holds the contact, it cannot be lost.
    pub status: &'static str,
    /// The number that will be called, E.164.
    pub number: String,
    /// When.
    pub callback: Promise,
    /// The same, for the customer to read.
    pub message: String,
}

/// The promised callback time.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Promise {
    /// No later window was asked for: the call comes as soon as an agent is free.
    pub as_soon_as_possible: bool,
    /// The earliest moment of the call, RFC 3339 in the customer's time zone.
    pub not_before: String,
    /// The same, Unix milliseconds.
    pub not_before_unix_ms: i64,
    /// The end of the customer's window, RFC 3339, when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// The same, Unix milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after_unix_ms: Option<i64>,
    /// The time zone the times are shown in: the window's, else `UTC`.
    pub time_zone: String,
    /// `known`: the router estimated the wait and the promise rests on it; `scheduled`: the
    /// router scheduled the call for the window's start; `unknown`: no time is promised.
    pub estimate: &'static str,
    /// Why the estimate is unknown: `no_agent` (nobody who could take the call is logged in)
    /// or `no_word_in_time` (the router said nothing within `promise_wait_ms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_because: Option<&'static str>,
    /// Whether the promised time comes from the router's estimate of the wait.
    pub from_estimate: bool,
    /// The router's estimated wait, in milliseconds, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_wait_ms: Option<u64>,
    /// The promised time, RFC 3339 in the customer's time zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promised_at: Option<String>,
    /// The promised time, RFC 3339 in UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promised_at_utc: Option<String>,
    /// The promised time, Unix milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promised_at_unix_ms: Option<i64>,
}

impl CallbackAnswer {
    /// What to tell the customer about a normalised request, `now` being when it arrived.
    pub fn of(accepted: &CallbackContact, now: DateTime<Utc>) -> CallbackAnswer {
        let zone: Tz =
            accepted.window.as_ref().and_then(|w| w.time_zone.parse().ok()).unwrap_or(chrono_tz::UTC);
        let local = |ms: i64| zone.timestamp_millis_opt(ms).single();
        let asap = accepted.earliest_unix_ms <= now.timestamp_millis();
        let start = local(accepted.earliest_unix_ms);
        let end = accepted.window.as_ref().and_then(|w| local(w.end_unix_ms));
        let number = &accepted.number;
        let message = match (asap, start, end) {
            (true, _, None) => format!("We will call you on {number} as soon as an agent is free."),
            (true, _, Some(end)) => format!(
                "We will call you on {number} as soon as an agent is free, by {} ({}).",
                end.format("%Y-%m-%d %H:%M"),
                zone.name()
            ),
            (false, Some(start), Some(end)) => {
                let end_format =
                    if end.date_naive() == start.date_naive() { "%H:%M" } else { "%Y-%m-%d %H:%M" };
                format!(
                    "We will call you on {number} between {} and {} ({}).",
                    start.format("%Y-%m-%d %H:%M"),
                    end.format(end_format),
                    zone.name()
                )
            }
            (false, start, _) => format!(
                "We will call you on {number} from {} ({}).",
                start.map(|s| s.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default(),
                zone.name()
            ),
        };
        CallbackAnswer {
            id: accepted.contact.id.clone(),
            status: "accepted",
            number: number.clone(),
            callback: Promise {
                as_soon_as_possible: asap,
                not_before: start.map(|s| s.to_rfc3339_opts(SecondsFormat::Secs, false)).unwrap_or_default(),
                not_before_unix_ms: accepted.earliest_unix_ms,
                not_after: end.map(|e| e.to_rfc3339_opts(SecondsFormat::Secs, false)),
                not_after_unix_ms: accepted.window.as_ref().map(|w| w.end_unix_ms),
                time_zone: zone.name().to_owned(),
                estimate: "unknown",
                unknown_because: Some("no_word_in_time"),
                from_estimate: false,
                estimated_wait_ms: None,
                promised_at: None,
                promised_at_utc: None,
                promised_at_unix_ms: None,
            },
            message,
        }
    }

    /// The answer with the router's word on the time (`None`: nothing in time), the promise
    /// told in `language`.
    pub fn with_word(mut self, word: Option<Word>, language: Language) -> CallbackAnswer {
        let promise = &mut self.callback;
        match word {
            None => promise.unknown_because = Some("no_word_in_time"),
            Some(Word::NoEstimate) => promise.unknown_because = Some("no_agent"),
            Some(Word::Promised(promised)) => {
                let zone: Tz = promise.time_zone.parse().unwrap_or(chrono_tz::UTC);
                let at = promised.at();
                promise.estimate = match promised.basis {
                    Basis::Estimate => "known",
                    Basis::Schedule => "scheduled",
                };
                promise.unknown_because = None;
                promise.from_estimate = promised.basis == Basis::Estimate;
                promise.estimated_wait_ms = promised.estimated_wait_ms;
                promise.promised_at =
                    Some(at.with_timezone(&zone).to_rfc3339_opts(SecondsFormat::Secs, false));
                promise.promised_at_utc = Some(at.to_rfc3339_opts(SecondsFormat::Secs, true));
                promise.promised_at_unix_ms = Some(promised.at_unix_ms);
                self.message = status::callback_promised(language, at, zone);
            }
        }
        self
    }
}

/// The router's first word on the time of `contact` within `wait`, from the feed.
async fn first_word(
    state: &State,
    tenant: &str,
    contact: &str,
    window_start: Option<i64>,
    wait: Duration,
) -> Option<Word> {
    let mut messages = state.feed.subscribe(tenant, contact);
    let word = tokio::time::timeout(wait, async {
        while let Some(message) = messages.recv().await {
            if let Some(word) = word_of(&message, window_start) {
                return Some(word);
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    drop(messages);
    state.feed.unsubscribe_closed(tenant, contact);
    word
}

/// Handles `POST /callback`.
pub(crate) async fn post(
    state: &State,
    request: Request<Incoming>,
    correlation: &str,
) -> Response<Full<Bytes>> {
    let Some(settings) = &state.endpoints.callback else {
        return Refusal::one(404, "not_found", "path", "callback requests are not taken here".into())
            .response();
    };
    let body = match read_body(request, settings.max_body_bytes).await {
        Ok((_, body)) => body,
        Err(error) => {
            return state.refuse(CHANNEL, CHANNEL, Refusal::of_body(&error), &[], correlation).await;
        }
    };
    let now = crate::now();
    let parsed = match callback::parse(settings, &body) {
        Ok(parsed) => parsed,
        Err(error) => return state.refuse(CHANNEL, CHANNEL, refusal(&error), &body, correlation).await,
    };
    let key = key_for(Some(&parsed.tenant), CHANNEL);
    let accepted = match callback::normalize_request(settings, &parsed, now) {
        Ok(accepted) => accepted,
        Err(error) => return state.refuse(CHANNEL, key, refusal(&error), &body, correlation).await,
    };
    let answer = CallbackAnswer::of(&accepted, now);
    let (tenant, id) = (accepted.contact.tenant.clone(), accepted.contact.id.clone());
    let window_start = accepted.window.as_ref().map(|w| w.start_unix_ms);
    let language =
        accepted.contact.attributes.get(reply::LANGUAGE).map_or(Language::En, |t| Language::from_tag(t));
    match state.publish_contact(CHANNEL, accepted.contact, correlation).await {
        Ok(()) => {}
        Err(NotPublished::Unavailable(why)) => return unavailable(CHANNEL, &why),
        Err(invalid) => {
            // The adapters keep the router's rules; reaching this is a bug, still answered plainly.
            let refusal = invalid
                .refusal()
                .unwrap_or_else(|| Refusal::one(422, "invalid_contact", "body", String::new()));
            return state.refuse(CHANNEL, key, refusal, &body, correlation).await;
        }
    }
    let wait = Duration::from_millis(settings.promise_wait_ms);
    let word = first_word(state, &tenant, &id, window_start, wait).await;
    json_response(StatusCode::ACCEPTED, &answer.with_word(word, language))
}

/// The refusal of a callback request: every invalid field with its code, or the body's problem.
fn refusal(error: &CallbackError) -> Refusal {
    let message = error.to_string();
    let code = error.code();
    let fields: Vec<Value> = match error {
        CallbackError::TooLarge { limit, .. } => {
            vec![json!({"field": "body", "code": code, "message": message, "limit": limit})]
        }
        CallbackError::InvalidUtf8 { offset } => {
            vec![json!({"field": "body", "code": code, "message": message, "offset": offset})]
        }
        CallbackError::Malformed { line, column, message: detail } => vec![json!({
            "field": field_of_serde_message(detail).unwrap_or("body"),
            "code": code,
            "message": detail,
            "line": line,
            "column": column,
        })],
        CallbackError::Invalid(errors) => {
            errors.iter().map(|e| serde_json::to_value(e).unwrap_or(Value::Null)).collect()
        }
    };
    Refusal { status: status_code(error.http_status()), code, message, fields }
}

/// The field a JSON reader's message names (`missing field `number``, `unknown field
/// `numbr``), if any.
fn field_of_serde_message(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `").or_else(|| message.strip_prefix("unknown field `"))?;
    rest.split_once('`').map(|(field, _)| field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vuoro_adapters::callback::{CallbackConfig, CallbackSettings};

    fn settings() -> CallbackSettings {
        let config: CallbackConfig = serde_json::from_value(json!({
            "tenants": {"acme": {"default_region": "FI", "queue": "callbacks"}}
        }))
        .unwrap();
        CallbackSettings::try_from(config).unwrap()
    }

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_window_ahead_is_promised_in_the_customers_time_zone() {
        let now = at("2025-03-16T12:00:00Z");
        let body = br#"{"tenant": "acme", "request_id": "w-1", "number": "040 123 4567",
            "window": {"time_zone": "Europe/Helsinki", "start": "2025-03-17T09:00", "end": "2025-03-17T11:30"}}"#;
        let accepted = callback::normalize(&settings(), body, now).unwrap();
        let answer = CallbackAnswer::of(&accepted, now);
        assert_eq!(answer.id, "callback:w-1");
        assert_eq!(answer.number, "+358401234567");
        assert!(!answer.callback.as_soon_as_possible);
        assert_eq!(answer.callback.not_before, "2025-03-17T09:00:00+02:00");
        assert_eq!(answer.callback.not_before_unix_ms, at("2025-03-17T07:00:00Z").timestamp_millis());
        assert_eq!(answer.callback.not_after.as_deref(), Some("2025-03-17T11:30:00+02:00"));
        assert_eq!(answer.callback.time_zone, "Europe/Helsinki");
        assert_eq!(
            answer.message,
            "We will call you on +358401234567 between 2025-03-17 09:00 and 11:30 (Europe/Helsinki)."
        );
    }

    #[test]
    fn without_a_window_the_call_comes_as_soon_as_possible() {
        let now = at("2025-03-16T12:00:00Z");
        let accepted =
            callback::normalize(&settings(), br#"{"tenant": "acme", "number": "+358 40 123 4567"}"#, now)
                .unwrap();
        let answer = CallbackAnswer::of(&accepted, now);
        assert!(answer.callback.as_soon_as_possible);
        assert_eq!(answer.callback.not_before, "2025-03-16T12:00:00+00:00");
        assert_eq!(answer.callback.not_after, None);
        assert_eq!(answer.message, "We will call you on +358401234567 as soon as an agent is free.");
        let json = serde_json::to_value(&answer).unwrap();
        assert!(json["callback"].get("not_after").is_none(), "{json}");
    }

    #[test]
    fn a_window_under_way_is_as_soon_as_possible_by_its_end() {
        let now = at("2025-03-17T08:00:00Z");
        let body = br#"{"tenant": "acme", "number": "040 123 4567",
            "window": {"time_zone": "Europe/Helsinki", "start": "2025-03-17T09:00", "end": "2025-03-17T11:30"}}"#;
        let answer = CallbackAnswer::of(&callback::normalize(&settings(), body, now).unwrap(), now);
        assert!(answer.callback.as_soon_as_possible);
        assert_eq!(answer.callback.not_before, "2025-03-17T10:00:00+02:00");
        assert_eq!(
            answer.message,
            "We will call you on +358401234567 as soon as an agent is free, by 2025-03-17 11:30 (Europe/Helsinki)."
        );
    }

    #[test]
    fn the_routers_estimate_is_promised_in_the_customers_zone_and_language() {
        let now = at("2025-03-17T07:30:00Z");
        let body = br#"{"tenant": "acme", "number": "040 123 4567", "language": "fi",
            "window": {"time_zone": "Europe/Helsinki", "start": "2025-03-17T09:00", "end": "2025-03-17T11:30"}}"#;
        let accepted = callback::normalize(&settings(), body, now).unwrap();
        let promised = crate::promise::Promised {
            at_unix_ms: at("2025-03-17T07:45:00Z").timestamp_millis(),
            basis: Basis::Estimate,
            estimated_wait_ms: Some(900_000),
        };
        let answer =
            CallbackAnswer::of(&accepted, now).with_word(Some(Word::Promised(promised)), Language::Fi);
        let json = serde_json::to_value(&answer).unwrap();
        let promise = &json["callback"];
        assert_eq!(promise["estimate"], "known");
        assert_eq!(promise["from_estimate"], true);
        assert_eq!(promise["estimated_wait_ms"], 900_000);
        assert_eq!(promise["promised_at"], "2025-03-17T09:45:00+02:00");
        assert_eq!(promise["promised_at_utc"], "2025-03-17T07:45:00Z");
        assert!(promise.get("unknown_because").is_none(), "{json}");
        assert_eq!(json["message"], "Soitamme sinulle takaisin 2025-03-17 09:45 EET.");
        assert_eq!(promise["not_before"], "2025-03-17T09:30:00+02:00", "the earlier fields are kept");
    }

    #[test]
    fn without_an_estimate_no_time_is_promised() {
        let now = at("2025-03-16T12:00:00Z");
        let accepted =
            callback::normalize(&settings(), br#"{"tenant": "acme", "number": "+358 40 123 4567"}"#, now)
                .unwrap();
        for (word, why) in [(Some(Word::NoEstimate), "no_agent"), (None, "no_word_in_time")] {
            let json = serde_json::to_value(CallbackAnswer::of(&accepted, now).with_word(word, Language::En))
                .unwrap();
            assert_eq!(json["callback"]["estimate"], "unknown");
            assert_eq!(json["callback"]["unknown_because"], why);
            assert_eq!(json["callback"]["from_estimate"], false);
            assert!(json["callback"].get("promised_at").is_none(), "{json}");
            assert_eq!(json["message"], "We will call you on +358401234567 as soon as an agent is free.");
        }
    }

    #[test]
    fn refusals_name_every_field() {
        let now = at("2025-03-16T12:00:00Z");
        let error =
            callback::normalize(&settings(), br#"{"tenant": "acme", "number": "12", "language": "?!"}"#, now)
                .unwrap_err();
        let invalid = refusal(&error);
        assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
        let fields: Vec<&str> = invalid.fields.iter().map(|f| f["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["number", "language"]);
        assert!(invalid.fields.iter().all(|f| f["code"].is_string() && f["message"].is_string()));

        let error = callback::normalize(&settings(), br#"{"tenant": "acme"}"#, now).unwrap_err();
        let malformed = refusal(&error);
        assert_eq!((malformed.status, malformed.code), (StatusCode::BAD_REQUEST, "malformed_json"));
        assert_eq!(malformed.fields[0]["field"], "number", "{:?}", malformed.fields);

        let error = callback::normalize(&settings(), b"{\"tenant\": ", now).unwrap_err();
        assert_eq!(refusal_field(&error), "body");
    }

    fn refusal_field(error: &CallbackError) -> String {
        refusal(error).fields[0]["field"].as_str().unwrap().to_owned()
    }
}
