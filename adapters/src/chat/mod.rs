//! Web chat and the "contact us" form: the widget's WebSocket protocol as typed messages, their
//! validation, and the normalisers from a chat's `start` to a chat [`v1::Contact`] and from a
//! form to an email contact (the answer goes by email).
//!
//! Client → server frames are JSON objects tagged by `type` ([`ClientMessage`]); server →
//! client frames are [`ServerMessage`]. Every refusal names the field and the reason
//! ([`FieldProblem`]). A conversation is resumed with a token, the HMAC-SHA256 of the tenant and
//! the conversation id under the listener's secret ([`resume_token`], [`verify_resume`]).

mod config;

use serde::{Deserialize, Serialize};
use vuoro_proto::v1;

pub use config::{
    ChatConfig, ChatSettings, ChatTenantConfig, DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_TEXT_CHARS,
    DEFAULT_MESSAGES_PER_MINUTE, TenantChatSettings,
};

use crate::callback::check_email;
use crate::ids::hashed_id;
use crate::language;
use crate::meta::{Secret, signature_header, verify_signature};
use crate::text::{one_line, set_attribute};

/// Longest customer name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest topic, in characters.
pub const MAX_TOPIC_CHARS: usize = 64;
/// The attribute (and outbound context key) naming the language the customer is answered in.
pub const REPLY_LANGUAGE: &str = "reply.language";
/// The attribute (and outbound context key) with the address a form's answer is emailed to.
pub const REPLY_TO: &str = "reply.to";
/// The attribute (and outbound context key) with the subject of a form's emailed answer.
pub const REPLY_SUBJECT: &str = "reply.subject";
/// How long an identical form sent again is the same contact, in milliseconds (10 minutes).
pub const FORM_DEDUPE_WINDOW_MS: i64 = 600_000;

/// A frame from the widget.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Opens a conversation.
    Start(Start),
    /// The customer writes in the open conversation.
    Message(Said),
    /// The customer rates the finished conversation.
    Rating(Rated),
    /// Reattaches to a conversation after a reload or a dropped connection.
    Resume(Resume),
}

/// `{"type": "start", ...}`: opens a conversation with the customer's first message.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Start {
    /// The company written to; must take chats here.
    pub tenant: String,
    /// How the customer wants to be addressed, at most 200 characters.
    #[serde(default)]
    pub name: Option<String>,
    /// An email address to answer at if the chat is left.
    #[serde(default)]
    pub email: Option<String>,
    /// BCP 47 tag the customer chose; detected from `text` when left out.
    #[serde(default)]
    pub language: Option<String>,
    /// The first message, 1–4096 characters.
    pub text: String,
    /// What it is about (a widget's menu choice), at most 64 characters.
    #[serde(default)]
    pub topic: Option<String>,
}

/// `{"type": "message", "text": ...}`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Said {
    /// 1–4096 characters.
    pub text: String,
}

/// `{"type": "rating", "score": 1-5}`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rated {
    /// 1–5 (read as any integer so that a wrong one is named, not a parse failure).
    pub score: i64,
}

/// `{"type": "resume", "tenant", "conversation", "token"}`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    /// The conversation's tenant.
    pub tenant: String,
    /// The id `started` gave.
    pub conversation: String,
    /// The token `started` gave.
    pub token: String,
}

/// A frame to the widget. Frames about the contact carry the outbound message's `id`: the
/// widget skips ids it has already shown (a resume replays what the feed holds).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The conversation is open: keep `conversation` and `token` to resume it.
    Started {
        /// The contact id.
        conversation: String,
        /// The resume token.
        token: String,
    },
    /// The connection is attached to the conversation again.
    Resumed {
        /// The contact id.
        conversation: String,
    },
    /// Where the customer stands in the queue.
    Queued {
        /// The outbound message id.
        id: String,
        /// 1 is next.
        position: u32,
        /// The estimated wait, when the router has one.
        #[serde(skip_serializing_if = "Option::is_none")]
        estimated_wait_ms: Option<u64>,
        /// The same for the customer to read, in their language.
        text: String,
    },
    /// An agent took the conversation.
    AgentJoined {
        /// The outbound message id.
        id: String,
        /// For the customer to read.
        text: String,
    },
    /// The agent wrote.
    Reply {
        /// The outbound message id.
        id: String,
        /// The agent's text.
        text: String,
    },
    /// A text from the service about the conversation.
    Notice {
        /// The outbound message id.
        id: String,
        /// For the customer to read.
        text: String,
    },
    /// The conversation is over: the moment to ask for a 1–5 rating.
    Completed {
        /// The outbound message id.
        id: String,
        /// For the customer to read.
        text: String,
    },
    /// The customer's message is stored (Kafka acknowledged it) and on its way to the agent.
    Sent {
        /// The message's id.
        id: String,
    },
    /// The rating is stored.
    Rated {
        /// The score.
        score: u32,
        /// A thank-you, in the customer's language.
        text: String,
    },
    /// A frame was refused: what was wrong, and with which field.
    Error {
        /// The field at fault (`frame` for the frame as a whole).
        field: String,
        /// A stable snake_case reason code.
        code: String,
        /// What was wrong, for a person.
        reason: String,
    },
}

/// One refused field and why.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldProblem {
    /// The field, as named in the frame or form (`frame` for the frame as a whole).
    pub field: String,
    /// A stable snake_case code (metrics label, dead-letter header).
    pub code: &'static str,
    /// What is wrong, for a person.
    pub reason: String,
}

impl FieldProblem {
    /// A problem with `field`.
    pub fn new(field: &str, code: &'static str, reason: impl Into<String>) -> FieldProblem {
        FieldProblem { field: field.to_owned(), code, reason: reason.into() }
    }

    /// The `error` frame telling the widget about it.
    pub fn frame(&self) -> ServerMessage {
        ServerMessage::Error {
            field: self.field.clone(),
            code: self.code.to_owned(),
            reason: self.reason.clone(),
        }
    }
}

/// Reads one text frame: size limit, then the JSON shape. A frame over `max_bytes` is refused
/// as `too_large`; malformed JSON, an unknown `type` or an unknown field as `malformed_json`
/// naming the field when the reader does.
pub fn parse(settings: &ChatSettings, frame: &str) -> Result<ClientMessage, FieldProblem> {
    if frame.len() > settings.max_frame_bytes {
        return Err(FieldProblem::new(
            "frame",
            "too_large",
            format!("frame of {} bytes is over the {}-byte limit", frame.len(), settings.max_frame_bytes),
        ));
    }
    serde_json::from_str(frame).map_err(|e| {
        let message = e.to_string();
        // An empty key (`{"": 1}`) names no field a customer could fix: the frame is at fault.
        let field = field_of_serde_message(&message).filter(|f| !f.is_empty()).unwrap_or("frame").to_owned();
        FieldProblem::new(&field, "malformed_json", message)
    })
}

/// The field a JSON reader's message names (`missing field `text``, `unknown field `txt``).
fn field_of_serde_message(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))
        .or_else(|| message.strip_prefix("unknown variant `").map(|_| "type`"))?;
    rest.split_once('`').map(|(field, _)| field)
}

/// A customer text: 1–`max` characters after trimming, no control characters but newlines and
/// tabs. Returns it trimmed.
pub fn check_text(field: &str, text: &str, max: usize) -> Result<String, FieldProblem> {
    let text = text.trim();
    if text.is_empty() {
        return Err(FieldProblem::new(field, "required", "required"));
    }
    let chars = text.chars().count();
    if chars > max {
        return Err(FieldProblem::new(field, "too_long", format!("{chars} characters, at most {max}")));
    }
    if text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(FieldProblem::new(field, "bad_characters", "contains control characters"));
    }
    Ok(text.to_owned())
}

/// A rating's score, 1–5.
pub fn check_score(score: i64) -> Result<u32, FieldProblem> {
    match u32::try_from(score) {
        Ok(s @ 1..=5) => Ok(s),
        _ => Err(FieldProblem::new("score", "out_of_range", format!("{score}, must be 1–5"))),
    }
}

/// The tenant's settings, or the problem with `tenant`.
pub fn tenant<'a>(settings: &'a ChatSettings, tenant: &str) -> Result<&'a TenantChatSettings, FieldProblem> {
    let name = tenant.trim();
    if name.is_empty() {
        return Err(FieldProblem::new("tenant", "required", "required"));
    }
    settings
        .tenants
        .get(name)
        .ok_or_else(|| FieldProblem::new("tenant", "unknown_tenant", "no such tenant takes chats here"))
}

/// A new conversation's contact: channel CHAT, id `conversation` (the listener's random
/// `chat:<hex>`), the tenant's route, the customer's name and email, the first message in the
/// `text` attribute, and the language — the customer's choice, else detected on the text —
/// in `reply.language` so that every message to the customer is in it. Every problem is
/// returned, each naming its field.
pub fn normalize_start(
    settings: &ChatSettings,
    start: &Start,
    conversation: &str,
) -> Result<v1::Contact, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let route = tenant(settings, &start.tenant).map_err(|p| problems.push(p)).ok().map(|t| &t.route);
    let name = optional_line(&mut problems, "name", start.name.as_deref(), MAX_NAME_CHARS);
    let topic = optional_line(&mut problems, "topic", start.topic.as_deref(), MAX_TOPIC_CHARS);
    let email = match start.email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        Some(raw) => email(&mut problems, "email", raw),
        None => String::new(),
    };
    let language = chosen_language(&mut problems, start.language.as_deref());
    let text = check_text("text", &start.text, settings.max_text_chars).map_err(|p| problems.push(p)).ok();
    let (Some(route), Some(text), true) = (route, text, problems.is_empty()) else { return Err(problems) };
    let address = if email.is_empty() { conversation.to_owned() } else { email.clone() };
    let mut contact = v1::Contact {
        id: conversation.to_owned(),
        channel: v1::Channel::Chat as i32,
        customer: Some(v1::Customer { display_name: name, address }),
        ..Default::default()
    };
    route.apply(&mut contact);
    let attributes = &mut contact.attributes;
    set_attribute(attributes, "text", &text);
    set_attribute(attributes, "topic", &topic);
    set_attribute(attributes, "email", &email);
    answer_in_language(&mut contact, language.as_deref(), &text);
    Ok(contact)
}

/// The "contact us" form (`application/x-www-form-urlencoded`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ContactForm {
    /// The company written to.
    #[serde(default)]
    pub tenant: String,
    /// The customer's name, at most 200 characters.
    #[serde(default)]
    pub name: String,
    /// Where the answer goes; required.
    #[serde(default)]
    pub email: String,
    /// The message, 1–4096 characters.
    #[serde(default)]
    pub message: String,
    /// BCP 47 tag the customer chose; detected from `message` when left out.
    #[serde(default)]
    pub language: Option<String>,
    /// What it is about, at most 64 characters; also the answer's subject.
    #[serde(default)]
    pub topic: Option<String>,
}

/// A form's contact: channel EMAIL (the answer goes by email to `email`), the tenant's route,
/// and the `reply.*` attributes the email channel answers with (`reply.to`, `reply.subject`,
/// `reply.language`). The id is `form:sha256:…` of the tenant, address, message and the
/// 10-minute window it arrived in (`now_ms`), so a form sent twice is one contact.
pub fn normalize_form(
    settings: &ChatSettings,
    form: &ContactForm,
    now_ms: i64,
) -> Result<v1::Contact, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let route = tenant(settings, &form.tenant).map_err(|p| problems.push(p)).ok().map(|t| &t.route);
    let name = optional_line(&mut problems, "name", Some(&form.name), MAX_NAME_CHARS);
    let topic = optional_line(&mut problems, "topic", form.topic.as_deref(), MAX_TOPIC_CHARS);
    let email = email(&mut problems, "email", &form.email);
    let language = chosen_language(&mut problems, form.language.as_deref());
    let text =
        check_text("message", &form.message, settings.max_text_chars).map_err(|p| problems.push(p)).ok();
    let (Some(route), Some(text), true) = (route, text, problems.is_empty()) else { return Err(problems) };
    let bucket = now_ms.div_euclid(FORM_DEDUPE_WINDOW_MS);
    let id = hashed_id("form", format!("{}\n{email}\n{text}\n{bucket}", route.tenant).as_bytes());
    let mut contact = v1::Contact {
        id,
        channel: v1::Channel::Email as i32,
        customer: Some(v1::Customer { display_name: name, address: email.clone() }),
        ..Default::default()
    };
    route.apply(&mut contact);
    let subject = if topic.is_empty() { "Your message".to_owned() } else { topic.clone() };
    let attributes = &mut contact.attributes;
    set_attribute(attributes, "text", &text);
    set_attribute(attributes, "topic", &topic);
    set_attribute(attributes, "source", "contact_form");
    set_attribute(attributes, REPLY_TO, &email);
    set_attribute(attributes, REPLY_SUBJECT, &format!("Re: {subject}"));
    answer_in_language(&mut contact, language.as_deref(), &text);
    Ok(contact)
}

/// The token that resumes `conversation` of `tenant`: hex HMAC-SHA256 under `secret`.
pub fn resume_token(secret: &Secret, tenant: &str, conversation: &str) -> String {
    let signed = signature_header(secret, resume_input(tenant, conversation).as_bytes());
    signed.trim_start_matches("sha256=").to_owned()
}

/// Checks a `resume` (in constant time): the conversation of the tenant, or the problem.
pub fn verify_resume(secret: &Secret, resume: &Resume) -> Result<(), FieldProblem> {
    let header = format!("sha256={}", resume.token.trim());
    let input = resume_input(resume.tenant.trim(), resume.conversation.trim());
    verify_signature(secret, Some(&header), input.as_bytes())
        .map_err(|_| FieldProblem::new("token", "bad_token", "not the token of this conversation"))
}

fn resume_input(tenant: &str, conversation: &str) -> String {
    format!("vuoro-chat\n{tenant}\n{conversation}")
}

fn optional_line(problems: &mut Vec<FieldProblem>, field: &str, value: Option<&str>, max: usize) -> String {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else { return String::new() };
    match check_text(field, value, max) {
        Ok(v) => one_line(&v),
        Err(p) => {
            problems.push(p);
            String::new()
        }
    }
}

fn email(problems: &mut Vec<FieldProblem>, field: &str, raw: &str) -> String {
    check_email(raw).unwrap_or_else(|problem| {
        problems.push(FieldProblem::new(field, problem.code(), problem.to_string()));
        String::new()
    })
}

fn chosen_language(problems: &mut Vec<FieldProblem>, tag: Option<&str>) -> Option<String> {
    let tag = tag.map(str::trim).filter(|t| !t.is_empty())?;
    let canonical = language::canonical_tag(tag);
    if canonical.is_none() {
        problems.push(FieldProblem::new(
            "language",
            "not_a_language_tag",
            "not a BCP 47 language tag (e.g. \"fi\" or \"pt-BR\")",
        ));
    }
    canonical
}

/// Sets the routing language (chosen, else detected on `text`) and `reply.language` to match.
fn answer_in_language(contact: &mut v1::Contact, chosen: Option<&str>, text: &str) {
    language::assign(contact, chosen, text);
    let tag = contact.attributes.get("language_tag").cloned().unwrap_or_else(|| contact.language.clone());
    set_attribute(&mut contact.attributes, REPLY_LANGUAGE, &tag);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ChatSettings {
        let config: ChatConfig = toml::from_str(
            r#"
            [tenants.acme]
            allowed_origins = ["https://www.acme.example"]
            queue = "web chat"
            required_skills = [{ skill = "chat" }]
            "#,
        )
        .unwrap();
        ChatSettings::try_from(config).unwrap()
    }

    #[test]
    fn a_start_becomes_a_chat_contact_with_the_detected_language() {
        let frame = r#"{"type": "start", "tenant": "acme", "name": " Aino\u0007 ",
            "text": "Hei! Tilaukseni ei ole vieläkään saapunut, voisitteko tarkistaa missä se on?"}"#;
        let ClientMessage::Start(start) = parse(&settings(), frame).unwrap() else { panic!("not a start") };
        assert!(normalize_start(&settings(), &start, "chat:00ff").is_err(), "a bell in the name");
        let start = Start { name: Some("Aino Asiakas".into()), ..start };
        let contact = normalize_start(&settings(), &start, "chat:00ff").unwrap();
        assert_eq!(contact.id, "chat:00ff");
        assert_eq!(contact.channel, v1::Channel::Chat as i32);
        assert_eq!(contact.tenant, "acme");
        assert_eq!(contact.required_skills[0].skill, "chat");
        assert_eq!(contact.language, "fi");
        assert_eq!(contact.attributes[REPLY_LANGUAGE], "fi");
        assert_eq!(contact.attributes["language_source"], "detected");
        assert_eq!(contact.attributes["queue"], "web chat");
        let customer = contact.customer.unwrap();
        assert_eq!(
            (customer.display_name.as_str(), customer.address.as_str()),
            ("Aino Asiakas", "chat:00ff")
        );
    }

    #[test]
    fn the_customers_language_choice_wins() {
        let start = Start {
            tenant: "acme".into(),
            name: None,
            email: Some("alex@example.com".into()),
            language: Some("sv-fi".into()),
            text: "Where is my order? It has not arrived yet and I am worried.".into(),
            topic: Some("orders".into()),
        };
        let contact = normalize_start(&settings(), &start, "chat:1").unwrap();
        assert_eq!(contact.language, "sv");
        assert_eq!(contact.attributes[REPLY_LANGUAGE], "sv-FI");
        assert_eq!(contact.attributes["topic"], "orders");
        assert_eq!(contact.customer.unwrap().address, "alex@example.com");
    }

    #[test]
    fn every_problem_of_a_start_names_its_field() {
        let start = Start {
            tenant: "globex".into(),
            name: None,
            email: Some("not-an-address".into()),
            language: Some("klingon!".into()),
            text: "x".repeat(4097),
            topic: None,
        };
        let problems = normalize_start(&settings(), &start, "chat:1").unwrap_err();
        let named: Vec<(&str, &str)> = problems.iter().map(|p| (p.field.as_str(), p.code)).collect();
        assert_eq!(
            named,
            [
                ("tenant", "unknown_tenant"),
                ("email", "not_an_email_address"),
                ("language", "not_a_language_tag"),
                ("text", "too_long")
            ]
        );
    }

    #[test]
    fn frames_are_read_by_type_and_bad_ones_are_named() {
        let s = settings();
        assert_eq!(
            parse(&s, r#"{"type": "message", "text": "hello"}"#).unwrap(),
            ClientMessage::Message(Said { text: "hello".into() })
        );
        assert_eq!(
            parse(&s, r#"{"type": "rating", "score": 4}"#).unwrap(),
            ClientMessage::Rating(Rated { score: 4 })
        );
        let bad = |frame: &str| {
            let p = parse(&s, frame).unwrap_err();
            (p.field, p.code)
        };
        assert_eq!(bad("{\"type\": "), ("frame".to_owned(), "malformed_json"));
        assert_eq!(bad(r#"{"type": "message"}"#), ("text".to_owned(), "malformed_json"));
        assert_eq!(bad(r#"{"type": "message", "txt": "a"}"#), ("txt".to_owned(), "malformed_json"));
        assert_eq!(bad(r#"{"type": "shout", "text": "a"}"#), ("type".to_owned(), "malformed_json"));
        // Found by the chat_frame fuzz target: an empty key named no field.
        assert_eq!(bad(r#"{"type": "start", "": 1}"#), ("frame".to_owned(), "malformed_json"));
        assert_eq!(
            bad(&format!(r#"{{"type": "message", "text": "{}"}}"#, "a".repeat(20_000))).1,
            "too_large"
        );
        assert_eq!(check_score(0).unwrap_err().field, "score");
        assert_eq!(check_score(6).unwrap_err().code, "out_of_range");
        assert_eq!(check_score(5).unwrap(), 5);
        assert_eq!(check_text("text", "  \n ", 10).unwrap_err().code, "required");
    }

    #[test]
    fn a_resume_token_opens_only_its_own_conversation() {
        let secret = Secret::new("s3cret");
        let token = resume_token(&secret, "acme", "chat:abc");
        assert_eq!(token.len(), 64);
        let resume = |tenant: &str, conversation: &str, token: &str| Resume {
            tenant: tenant.into(),
            conversation: conversation.into(),
            token: token.into(),
        };
        assert!(verify_resume(&secret, &resume("acme", "chat:abc", &token)).is_ok());
        assert!(verify_resume(&secret, &resume("acme", "chat:abd", &token)).is_err());
        assert!(verify_resume(&secret, &resume("globex", "chat:abc", &token)).is_err());
        assert!(verify_resume(&Secret::new("other"), &resume("acme", "chat:abc", &token)).is_err());
        assert_eq!(verify_resume(&secret, &resume("acme", "chat:abc", "zz")).unwrap_err().code, "bad_token");
    }

    #[test]
    fn a_form_becomes_an_email_contact_answered_by_email() {
        let form: ContactForm = serde_urlencoded::from_str(
            "tenant=acme&name=Alex+Example&email=alex%40example.com&message=My+last+invoice+charges+me+twice+for+the+same+order.+Could+you+please+look+into+it+and+refund+the+second+payment%3F&topic=Billing",
        )
        .unwrap();
        let contact = normalize_form(&settings(), &form, 1_700_000_000_000).unwrap();
        assert!(contact.id.starts_with("form:sha256:"), "{}", contact.id);
        assert_eq!(
            contact.id,
            normalize_form(&settings(), &form, 1_700_000_000_001).unwrap().id,
            "sent twice"
        );
        assert_eq!(contact.channel, v1::Channel::Email as i32);
        assert_eq!(contact.attributes[REPLY_TO], "alex@example.com");
        assert_eq!(contact.attributes[REPLY_SUBJECT], "Re: Billing");
        assert_eq!(contact.attributes[REPLY_LANGUAGE], "en");
        assert_eq!(contact.customer.unwrap().display_name, "Alex Example");

        let empty = ContactForm {
            tenant: "acme".into(),
            name: String::new(),
            email: String::new(),
            message: String::new(),
            language: None,
            topic: None,
        };
        let fields: Vec<String> =
            normalize_form(&settings(), &empty, 0).unwrap_err().into_iter().map(|p| p.field).collect();
        assert_eq!(fields, ["email", "message"]);
    }
}
