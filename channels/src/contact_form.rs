//! `POST /contact-us`: the "contact us" form. A URL-encoded form (tenant, name, email, message,
//! optional language and topic) becomes an email contact whose answer goes to the customer by
//! email; answered once Kafka has it with a small HTML page, or JSON when the sender asks for
//! it (`Accept: application/json`). Refusals (422, naming each field) are HTML or JSON the
//! same way, and dead-lettered.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use vuoro_adapters::chat::{self, ContactForm, FieldProblem};

use crate::listener::{NotPublished, Refusal, State, json_response, key_for, read_body, unavailable};
use crate::status::{self, Language};

/// The form's name: the `channel` metrics label and the dead-letter source `channel:form`.
pub const CHANNEL: &str = "form";
/// Path of the form endpoint.
pub const PATH: &str = "/contact-us";

/// Handles `POST /contact-us`.
pub(crate) async fn post(
    state: &State,
    request: Request<Incoming>,
    correlation: &str,
) -> Response<Full<Bytes>> {
    let Some(endpoint) = &state.endpoints.chat else {
        return Refusal::one(404, "not_found", "path", "the contact form is not taken here".into())
            .response();
    };
    let settings = &endpoint.settings;
    let html = !wants_json(request.headers().get(ACCEPT));
    let (parts, body) = match read_body(request, settings.max_frame_bytes).await {
        Ok(read) => read,
        Err(error) => {
            return answer(state, html, Refusal::of_body(&error), CHANNEL, &[], correlation).await;
        }
    };
    if !is_form(&parts) {
        let refusal = Refusal::one(
            415,
            "unsupported_media_type",
            "content-type",
            "send the form as application/x-www-form-urlencoded".to_owned(),
        );
        return answer(state, html, refusal, CHANNEL, &body, correlation).await;
    }
    if let Err(error) = std::str::from_utf8(&body) {
        let message = format!("the form is not UTF-8 (invalid byte at offset {})", error.valid_up_to());
        let refusal = Refusal::one(400, "invalid_utf8", "body", message);
        return answer(state, html, refusal, CHANNEL, &body, correlation).await;
    }
    let form: ContactForm = match serde_urlencoded::from_bytes(&body) {
        Ok(form) => form,
        Err(error) => {
            let message = error.to_string();
            let field = message
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split_once('`'))
                .map_or("body", |(field, _)| field)
                .to_owned();
            let refusal = Refusal::one(400, "malformed_form", &field, message);
            return answer(state, html, refusal, CHANNEL, &body, correlation).await;
        }
    };
    let key = key_for(Some(&form.tenant), CHANNEL);
    let contact = match chat::normalize_form(settings, &form, crate::now().timestamp_millis()) {
        Ok(contact) => contact,
        Err(problems) => return answer(state, html, invalid(&problems), key, &body, correlation).await,
    };
    let language = Language::from_tag(
        contact.attributes.get(chat::REPLY_LANGUAGE).map(String::as_str).unwrap_or_default(),
    );
    let id = contact.id.clone();
    match state.publish_contact(CHANNEL, contact, correlation).await {
        Ok(()) => {}
        Err(NotPublished::Unavailable(why)) => return unavailable(CHANNEL, &why),
        Err(invalid) => {
            let refusal = invalid
                .refusal()
                .unwrap_or_else(|| Refusal::one(422, "invalid_contact", "body", String::new()));
            return answer(state, html, refusal, key, &body, correlation).await;
        }
    }
    let message = status::form_received(language);
    if html {
        page(StatusCode::ACCEPTED, &message, &[])
    } else {
        json_response(StatusCode::ACCEPTED, &json!({"id": id, "status": "accepted", "message": message}))
    }
}

/// Whether the sender asked for JSON rather than a page.
fn wants_json(accept: Option<&HeaderValue>) -> bool {
    accept.and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').any(|part| part.split(';').next().unwrap_or_default().trim() == "application/json")
    })
}

fn is_form(parts: &Parts) -> bool {
    parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

/// 422 naming every invalid field.
fn invalid(problems: &[FieldProblem]) -> Refusal {
    let fields: Vec<Value> =
        problems.iter().map(|p| json!({"field": p.field, "code": p.code, "message": p.reason})).collect();
    let message = problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    let code = problems.first().map_or("invalid", |p| p.code);
    Refusal { status: StatusCode::UNPROCESSABLE_ENTITY, code, message, fields }
}

/// Records a refusal (count, dead letter) and answers it as a page or as JSON.
async fn answer(
    state: &State,
    html: bool,
    refusal: Refusal,
    key: &str,
    payload: &[u8],
    correlation: &str,
) -> Response<Full<Bytes>> {
    if !html {
        return state.refuse(CHANNEL, key, refusal, payload, correlation).await;
    }
    state.record_refusal(CHANNEL, key, refusal.code, &refusal.message, payload, correlation).await;
    let lines: Vec<String> = refusal
        .fields
        .iter()
        .map(|f| {
            let text = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
            format!("{}: {}", text("field"), text("message"))
        })
        .collect();
    page(refusal.status, "Your message was not sent. Please correct the following and send it again.", &lines)
}

/// A small HTML page: a heading and a list, every text escaped.
fn page(status: StatusCode, heading: &str, lines: &[String]) -> Response<Full<Bytes>> {
    let items: String =
        lines.iter().map(|line| format!("<li>{}</li>", html_escape::encode_text(line))).collect();
    let list = if items.is_empty() { String::new() } else { format!("<ul>{items}</ul>") };
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Contact us</title></head>\
         <body><main><h1>{}</h1>{list}</main></body></html>\n",
        html_escape::encode_text(heading)
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_chosen_only_when_asked_for() {
        let accept = |v: &'static str| wants_json(Some(&HeaderValue::from_static(v)));
        assert!(accept("application/json"));
        assert!(accept("text/plain, application/json;q=0.9"));
        assert!(!accept("text/html,application/xhtml+xml,*/*;q=0.8"));
        assert!(!wants_json(None));
    }

    #[test]
    fn a_page_escapes_what_it_shows() {
        let response = page(StatusCode::UNPROCESSABLE_ENTITY, "Fix <this>", &["<script>: bad".to_owned()]);
        let body = format!("{:?}", response.body());
        assert!(body.contains("Fix &lt;this&gt;") && body.contains("&lt;script&gt;: bad"), "{body}");
        assert!(!body.contains("<script>"), "{body}");
    }
}
