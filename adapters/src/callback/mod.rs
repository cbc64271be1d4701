//! Phone callback requests: a customer, from a web form or an IVR, asks to be called back.
//!
//! [`normalize`] turns the request's JSON body ([`CallbackRequest`], documented field by field
//! there and in the crate README) into a voice [`v1::Contact`] with the number validated and
//! normalised to E.164 using libphonenumber's metadata (the `phonenumber` crate), the promised
//! time, and what the listener needs to answer the customer and to reach them another way if
//! the call fails. Every problem of a request is reported at once, each naming its field.

mod config;

use std::fmt;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use phonenumber::{Mode, PhoneNumber, Type, country, metadata::DATABASE};
use serde::{Deserialize, Serialize};
use vuoro_proto::v1;

pub use config::{
    CallbackConfig, CallbackSettings, CallbackTenantConfig, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PROMISE_TOLERANCE_MS, DEFAULT_PROMISE_WAIT_MS, RetryPolicy, TenantCallbackSettings,
};

/// The contact attributes a callback carries for its channel's answers: keys starting with
/// `reply.` come back as the `context` of every outbound message about the contact, so the
/// channels can promise a time, dial and tell the customer another way without keeping the
/// request. Each is left out when it has no value.
pub mod reply {
    /// BCP 47 tag of the customer's language (as they gave it, or detected).
    pub const LANGUAGE: &str = "reply.language";
    /// The customer's IANA time zone (the window's).
    pub const TIME_ZONE: &str = "reply.time_zone";
    /// The window's start, Unix milliseconds.
    pub const WINDOW_START_UNIX_MS: &str = "reply.window_start_unix_ms";
    /// The window's end, Unix milliseconds.
    pub const WINDOW_END_UNIX_MS: &str = "reply.window_end_unix_ms";
    /// The alternative channel: `email`, `sms` or `whatsapp`.
    pub const ALTERNATIVE_CHANNEL: &str = "reply.alternative_channel";
    /// The alternative address: an email address or an E.164 number.
    pub const ALTERNATIVE_ADDRESS: &str = "reply.alternative_address";
    /// What the call is about, for the dial instruction.
    pub const REASON: &str = "reply.reason";
    /// How the customer wants to be addressed.
    pub const NAME: &str = "reply.name";
    /// Which call attempt the contact is, 1-based; absent on the first.
    pub const ATTEMPT: &str = "reply.attempt";
}

use crate::ids::{bounded_id, hashed_id};
use crate::language;
use crate::text::{one_line, set_attribute};

/// Longest `request_id`, in characters.
pub const MAX_REQUEST_ID_CHARS: usize = 100;
/// Longest `name`, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest `reason`, in characters.
pub const MAX_REASON_CHARS: usize = 2000;
/// Longest `number` as written, in characters.
pub const MAX_NUMBER_CHARS: usize = 64;
/// Longest alternative email address, in characters (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;

/// A callback request, the JSON body a web form or an IVR posts. Unknown fields are refused, so
/// a misspelt field is reported rather than ignored.
///
/// ```json
/// {
///   "tenant": "acme",
///   "request_id": "web-5f1c2a",
///   "number": "020 7946 0321",
///   "region": "GB",
///   "name": "Alex Example",
///   "window": {"time_zone": "Europe/London", "start": "2025-03-14T13:00", "end": "2025-03-14T15:00"},
///   "reason": "My last invoice charges me twice",
///   "language": "en-GB",
///   "alternative": {"channel": "email", "address": "alex@example.com"}
/// }
/// ```
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CallbackRequest {
    /// The company asked to call back; must be configured.
    pub tenant: String,
    /// The sender's idempotency key (e.g. the form submission id), at most 100 characters:
    /// the same key always names the same contact.
    #[serde(default)]
    pub request_id: Option<String>,
    /// The number to call, as the customer wrote it: international (`+358 40 123 4567`,
    /// `00358…`) or national (`040 123 4567`, read in `region`).
    pub number: String,
    /// ISO 3166-1 alpha-2 region for a national number; the tenant's default when left out.
    #[serde(default)]
    pub region: Option<String>,
    /// How the customer wants to be addressed, at most 200 characters.
    #[serde(default)]
    pub name: Option<String>,
    /// When the customer wants the call, in their own time zone; as soon as possible when
    /// left out.
    #[serde(default)]
    pub window: Option<WindowRequest>,
    /// What the call is about, in the customer's words, at most 2000 characters.
    #[serde(default)]
    pub reason: Option<String>,
    /// BCP 47 tag of the language the customer wants to speak (e.g. `"fi"`, `"en-GB"`);
    /// detected from `reason` when left out and the detection is reliable.
    #[serde(default)]
    pub language: Option<String>,
    /// Another way to reach the customer, used when the call attempts fail.
    #[serde(default)]
    pub alternative: Option<AlternativeRequest>,
}

/// A preferred callback window: local date-times without an offset, read in `time_zone`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WindowRequest {
    /// IANA time zone, e.g. `"Europe/Helsinki"`.
    pub time_zone: String,
    /// First moment the customer can take the call, `YYYY-MM-DDTHH:MM[:SS]`.
    pub start: String,
    /// Last moment, `YYYY-MM-DDTHH:MM[:SS]`, after `start`.
    pub end: String,
}

/// Another channel to reach the customer, as requested.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AlternativeRequest {
    /// Which channel.
    pub channel: AlternativeChannel,
    /// An email address for `email`, a phone number for `sms` and `whatsapp` (read like
    /// `number`).
    pub address: String,
}

/// A channel the customer can be told through when the callback fails.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AlternativeChannel {
    /// Email.
    Email,
    /// SMS text message.
    Sms,
    /// WhatsApp message.
    Whatsapp,
}

impl AlternativeChannel {
    /// `"email"`, `"sms"` or `"whatsapp"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlternativeChannel::Email => "email",
            AlternativeChannel::Sms => "sms",
            AlternativeChannel::Whatsapp => "whatsapp",
        }
    }
}

/// A validated alternative channel: the address normalised (E.164 for phone channels).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Alternative {
    /// Which channel.
    pub channel: AlternativeChannel,
    /// Email address, or E.164 number.
    pub address: String,
}

/// What kind of number the customer gave, from libphonenumber's metadata.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NumberKind {
    /// Fixed line.
    FixedLine,
    /// Mobile.
    Mobile,
    /// Fixed line or mobile: the numbering plan does not tell them apart (e.g. the US).
    FixedLineOrMobile,
    /// Freephone.
    TollFree,
    /// Premium rate.
    PremiumRate,
    /// Shared cost.
    SharedCost,
    /// Voice over IP.
    Voip,
    /// Personal number, routed on to a fixed line or mobile.
    PersonalNumber,
    /// Pager.
    Pager,
    /// Universal access ("company") number.
    Uan,
    /// Voicemail access.
    Voicemail,
    /// A short code, e.g. `116 123`: not E.164, dialled within its region only.
    ShortCode,
    /// Valid, of a kind not listed here.
    Other,
}

impl NumberKind {
    /// The snake_case name, as in JSON and in the `number_kind` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            NumberKind::FixedLine => "fixed_line",
            NumberKind::Mobile => "mobile",
            NumberKind::FixedLineOrMobile => "fixed_line_or_mobile",
            NumberKind::TollFree => "toll_free",
            NumberKind::PremiumRate => "premium_rate",
            NumberKind::SharedCost => "shared_cost",
            NumberKind::Voip => "voip",
            NumberKind::PersonalNumber => "personal_number",
            NumberKind::Pager => "pager",
            NumberKind::Uan => "uan",
            NumberKind::Voicemail => "voicemail",
            NumberKind::ShortCode => "short_code",
            NumberKind::Other => "other",
        }
    }

    fn of(kind: Type) -> NumberKind {
        match kind {
            Type::FixedLine => NumberKind::FixedLine,
            Type::Mobile => NumberKind::Mobile,
            Type::FixedLineOrMobile => NumberKind::FixedLineOrMobile,
            Type::TollFree => NumberKind::TollFree,
            Type::PremiumRate => NumberKind::PremiumRate,
            Type::SharedCost => NumberKind::SharedCost,
            Type::Voip => NumberKind::Voip,
            Type::PersonalNumber => NumberKind::PersonalNumber,
            Type::Pager => NumberKind::Pager,
            Type::Uan => NumberKind::Uan,
            Type::Voicemail => NumberKind::Voicemail,
            Type::ShortCode => NumberKind::ShortCode,
            _ => NumberKind::Other,
        }
    }
}

/// A validated window, as instants.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Window {
    /// The customer's IANA time zone.
    pub time_zone: String,
    /// Start, Unix milliseconds.
    pub start_unix_ms: i64,
    /// End, Unix milliseconds.
    pub end_unix_ms: i64,
}

/// A normalised callback request: the contact to publish and what the listener needs to
/// answer the customer, dial, and fall back.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CallbackContact {
    /// The voice contact: id, tenant and route, `not_before_unix_ms` at the window's start when
    /// that is still ahead (0 otherwise), the customer's name and number, the language, and
    /// attributes for the agent (`reason`, `number_kind`, `region`, `time_zone`,
    /// `window_start`, `window_end` in the customer's local time, `alternative_channel`,
    /// `alternative_address`, `request_id`, `queue`, `language_source`, `language_tag`), and
    /// the [`reply`] attributes its answers need.
    #[serde(skip)]
    pub contact: v1::Contact,
    /// The number to dial: E.164 (`+358401234567`), or a short code's digits.
    pub number: String,
    /// What kind of number it is.
    pub number_kind: NumberKind,
    /// The number's region (ISO 3166-1 alpha-2), or `"001"` for non-geographic numbers.
    pub region: String,
    /// The earliest time the call may be made, Unix milliseconds: the window's start, or now.
    /// This is what the answer to the customer promises (the router may add the wait).
    pub earliest_unix_ms: i64,
    /// The preferred window, when one was given.
    pub window: Option<Window>,
    /// Where to tell the customer if every call attempt fails.
    pub alternative: Option<Alternative>,
}

/// A field of a callback request, named as in its JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Field {
    /// `tenant`.
    #[serde(rename = "tenant")]
    Tenant,
    /// `request_id`.
    #[serde(rename = "request_id")]
    RequestId,
    /// `number`.
    #[serde(rename = "number")]
    Number,
    /// `region`.
    #[serde(rename = "region")]
    Region,
    /// `name`.
    #[serde(rename = "name")]
    Name,
    /// `window.time_zone`.
    #[serde(rename = "window.time_zone")]
    WindowTimeZone,
    /// `window.start`.
    #[serde(rename = "window.start")]
    WindowStart,
    /// `window.end`.
    #[serde(rename = "window.end")]
    WindowEnd,
    /// `reason`.
    #[serde(rename = "reason")]
    Reason,
    /// `language`.
    #[serde(rename = "language")]
    Language,
    /// `alternative.address`.
    #[serde(rename = "alternative.address")]
    AlternativeAddress,
}

impl Field {
    /// The field's path in the request JSON, e.g. `"window.start"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Tenant => "tenant",
            Field::RequestId => "request_id",
            Field::Number => "number",
            Field::Region => "region",
            Field::Name => "name",
            Field::WindowTimeZone => "window.time_zone",
            Field::WindowStart => "window.start",
            Field::WindowEnd => "window.end",
            Field::Reason => "reason",
            Field::Language => "language",
            Field::AlternativeAddress => "alternative.address",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a field was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Problem {
    /// Empty or only whitespace.
    #[error("required")]
    Required,
    /// Longer than allowed.
    #[error("longer than {max} characters")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// Contains control characters or, for ids, characters outside printable ASCII.
    #[error("contains characters that are not allowed")]
    BadCharacters,
    /// The tenant takes no callback requests here.
    #[error("no such tenant takes callback requests")]
    UnknownTenant,
    /// Not an ISO 3166-1 alpha-2 region known to the phone number metadata.
    #[error("not a known region (ISO 3166-1 alpha-2, e.g. \"FI\")")]
    UnknownRegion,
    /// Not readable as a phone number at all.
    #[error("not a phone number ({detail})")]
    NotANumber {
        /// What libphonenumber's parser said.
        detail: String,
    },
    /// Read as a phone number, but no number under its country calling code has that form
    /// (too short, too long, or an unused range).
    #[error("not a valid phone number for country code +{country_code}")]
    InvalidNumber {
        /// The country calling code it was read under, e.g. 358.
        country_code: u16,
    },
    /// A premium-rate number, and the tenant refuses them.
    #[error("premium-rate numbers are not called back")]
    PremiumRate,
    /// A short code, and the tenant refuses them.
    #[error("short codes are not called back")]
    ShortCode,
    /// Not an IANA time zone.
    #[error("not an IANA time zone (e.g. \"Europe/Helsinki\")")]
    UnknownTimeZone,
    /// Not a local date-time of the form `YYYY-MM-DDTHH:MM[:SS]` without an offset.
    #[error("not a local date-time YYYY-MM-DDTHH:MM[:SS] without an offset")]
    BadDateTime,
    /// A local time that the time zone skips (a daylight-saving gap).
    #[error("does not exist in the time zone (a daylight-saving gap)")]
    NonexistentLocalTime,
    /// The window's end is not after its start.
    #[error("not after window.start")]
    EndNotAfterStart,
    /// The whole window is in the past.
    #[error("the window has already ended")]
    WindowEnded,
    /// The window starts further ahead than the tenant allows.
    #[error("more than {max_days} days ahead")]
    TooFarAhead {
        /// The tenant's limit.
        max_days: u32,
    },
    /// Not a plausible BCP 47 language tag.
    #[error("not a BCP 47 language tag (e.g. \"fi\" or \"pt-BR\")")]
    NotALanguageTag,
    /// Not an email address.
    #[error("not an email address")]
    NotAnEmailAddress,
}

impl Problem {
    /// A stable snake_case code for metrics and dead-letter records, e.g. `"premium_rate"`.
    pub fn code(&self) -> &'static str {
        match self {
            Problem::Required => "required",
            Problem::TooLong { .. } => "too_long",
            Problem::BadCharacters => "bad_characters",
            Problem::UnknownTenant => "unknown_tenant",
            Problem::UnknownRegion => "unknown_region",
            Problem::NotANumber { .. } => "not_a_number",
            Problem::InvalidNumber { .. } => "invalid_number",
            Problem::PremiumRate => "premium_rate",
            Problem::ShortCode => "short_code",
            Problem::UnknownTimeZone => "unknown_time_zone",
            Problem::BadDateTime => "bad_date_time",
            Problem::NonexistentLocalTime => "nonexistent_local_time",
            Problem::EndNotAfterStart => "end_not_after_start",
            Problem::WindowEnded => "window_ended",
            Problem::TooFarAhead { .. } => "too_far_ahead",
            Problem::NotALanguageTag => "not_a_language_tag",
            Problem::NotAnEmailAddress => "not_an_email_address",
        }
    }
}

/// One refused field and why. Serialises as `{"field", "code", "message"}` plus the
/// problem's details (e.g. `"max"`), ready to send back to a web form.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    /// The field, as its JSON path.
    pub field: Field,
    /// What is wrong with it.
    pub problem: Problem,
}

impl Serialize for FieldError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            field: Field,
            #[serde(flatten)]
            problem: &'a Problem,
            message: String,
        }
        View { field: self.field, problem: &self.problem, message: self.problem.to_string() }
            .serialize(serializer)
    }
}

/// Why a callback request was refused. None is worth retrying unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// The body is larger than the configured limit.
    #[error("request body of {size} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// The body's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The body is not UTF-8.
    #[error("request body is not UTF-8 (invalid byte at offset {offset})")]
    InvalidUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The body is not JSON of the request's shape (syntax, a missing or unknown field, a wrong
    /// type).
    #[error("malformed request at line {line}, column {column}: {message}")]
    Malformed {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the JSON reader said.
        message: String,
    },
    /// Well-formed, but fields are invalid: every one is listed.
    #[error("{}", describe(.0))]
    Invalid(Vec<FieldError>),
}

fn describe(errors: &[FieldError]) -> String {
    match errors {
        [] => "invalid request".to_owned(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

impl CallbackError {
    /// A stable snake_case code for metrics labels and dead-letter records: `too_large`,
    /// `invalid_utf8`, `malformed_json`, or the first field problem's code (e.g.
    /// `premium_rate`).
    pub fn code(&self) -> &'static str {
        match self {
            CallbackError::TooLarge { .. } => "too_large",
            CallbackError::InvalidUtf8 { .. } => "invalid_utf8",
            CallbackError::Malformed { .. } => "malformed_json",
            CallbackError::Invalid(errors) => errors.first().map_or("invalid", |e| e.problem.code()),
        }
    }

    /// The HTTP status an HTTP listener should answer with: 413 for a body too large, 400 for
    /// a body that is not a request, 422 for a request with invalid fields.
    pub fn http_status(&self) -> u16 {
        match self {
            CallbackError::TooLarge { .. } => 413,
            CallbackError::InvalidUtf8 { .. } | CallbackError::Malformed { .. } => 400,
            CallbackError::Invalid(_) => 422,
        }
    }
}

/// Reads a callback request body and normalises it: see [`normalize_request`]. Checks the
/// size limit before reading anything, then UTF-8, then the JSON shape.
pub fn normalize(
    settings: &CallbackSettings,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<CallbackContact, CallbackError> {
    let request = parse(settings, body)?;
    normalize_request(settings, &request, now)
}

/// Reads a callback request body without validating its fields: size limit, UTF-8, JSON shape.
pub fn parse(settings: &CallbackSettings, body: &[u8]) -> Result<CallbackRequest, CallbackError> {
    if body.len() > settings.max_body_bytes {
        return Err(CallbackError::TooLarge { size: body.len(), limit: settings.max_body_bytes });
    }
    let text =
        std::str::from_utf8(body).map_err(|e| CallbackError::InvalidUtf8 { offset: e.valid_up_to() })?;
    serde_json::from_str(text).map_err(|e| CallbackError::Malformed {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// Validates a parsed request and builds its contact, taking `now` as the current time.
///
/// The number is read in `region` (or the tenant's default) and must be a valid number there;
/// premium-rate numbers and short codes are refused unless the tenant allows them. A window
/// must name an IANA zone, end after it starts, not have ended, and start no further ahead than
/// the tenant allows; a window already under way is fine (the call may happen now).
///
/// The contact id is `callback:{request_id}` when the sender gave one; otherwise a hash of the
/// number and the window (or of the number and the tenant's dedupe bucket of `now`), so the
/// same request sent twice is one contact.
pub fn normalize_request(
    settings: &CallbackSettings,
    request: &CallbackRequest,
    now: DateTime<Utc>,
) -> Result<CallbackContact, CallbackError> {
    let mut errors = Vec::new();
    let mut bad = |field, problem| errors.push(FieldError { field, problem });
    let now_ms = now.timestamp_millis();

    let tenant = match settings.tenants.get(request.tenant.trim()) {
        Some(t) => Some(t),
        None if request.tenant.trim().is_empty() => {
            bad(Field::Tenant, Problem::Required);
            None
        }
        None => {
            bad(Field::Tenant, Problem::UnknownTenant);
            None
        }
    };

    let request_id = request.request_id.as_deref().map(str::trim).filter(|id| !id.is_empty());
    if let Some(id) = request_id {
        if id.chars().count() > MAX_REQUEST_ID_CHARS {
            bad(Field::RequestId, Problem::TooLong { max: MAX_REQUEST_ID_CHARS });
        } else if !id.bytes().all(|b| b.is_ascii_graphic()) {
            bad(Field::RequestId, Problem::BadCharacters);
        }
    }

    let region = match request.region.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => match config::parse_region(r) {
            Some(id) => Some(id),
            None => {
                bad(Field::Region, Problem::UnknownRegion);
                None
            }
        },
        None => tenant.map(|t| t.default_region),
    };

    let number = match (tenant, region) {
        (Some(tenant), Some(region)) => match check_number(&request.number, region, tenant) {
            Ok(number) => Some(number),
            Err(problem) => {
                bad(Field::Number, problem);
                None
            }
        },
        _ => None,
    };

    let name = text_field(&mut bad, Field::Name, request.name.as_deref(), MAX_NAME_CHARS);
    let reason = text_field(&mut bad, Field::Reason, request.reason.as_deref(), MAX_REASON_CHARS);

    let language = request.language.as_deref().map(str::trim).filter(|l| !l.is_empty());
    if language.is_some_and(|l| language::canonical_tag(l).is_none()) {
        bad(Field::Language, Problem::NotALanguageTag);
    }

    let window = match (&request.window, tenant) {
        (Some(w), Some(tenant)) => check_window(&mut bad, w, tenant, now_ms),
        _ => None,
    };

    let alternative = match (&request.alternative, tenant, region) {
        (Some(alt), Some(tenant), Some(region)) => match check_alternative(alt, region, tenant) {
            Ok(a) => Some(a),
            Err(problem) => {
                bad(Field::AlternativeAddress, problem);
                None
            }
        },
        _ => None,
    };

    let (Some(tenant), Some(number)) = (tenant, number) else {
        return Err(CallbackError::Invalid(errors));
    };
    if !errors.is_empty() {
        return Err(CallbackError::Invalid(errors));
    }

    let id = match (request_id, &window) {
        (Some(id), _) => bounded_id("callback", id),
        (None, Some((w, _))) => {
            hashed_id("callback", format!("{}|{}|{}", number.e164, w.start_unix_ms, w.end_unix_ms).as_bytes())
        }
        (None, None) => {
            let bucket = now_ms.div_euclid(tenant.dedupe_window_ms);
            hashed_id("callback", format!("{}|asap|{bucket}", number.e164).as_bytes())
        }
    };

    let mut contact = v1::Contact {
        id,
        channel: v1::Channel::Voice as i32,
        customer: Some(v1::Customer { display_name: name.clone(), address: number.e164.clone() }),
        ..Default::default()
    };
    tenant.route.apply(&mut contact);
    let earliest = match &window {
        Some((w, _)) if w.start_unix_ms > now_ms => {
            contact.not_before_unix_ms = w.start_unix_ms;
            w.start_unix_ms
        }
        _ => now_ms,
    };
    let attrs = &mut contact.attributes;
    set_attribute(attrs, "reason", &reason);
    set_attribute(attrs, "number_kind", number.kind.as_str());
    set_attribute(attrs, "region", &number.region);
    if let Some((w, (start_local, end_local))) = &window {
        set_attribute(attrs, "time_zone", &w.time_zone);
        set_attribute(attrs, "window_start", start_local);
        set_attribute(attrs, "window_end", end_local);
    }
    if let Some(alt) = &alternative {
        set_attribute(attrs, "alternative_channel", alt.channel.as_str());
        set_attribute(attrs, "alternative_address", &alt.address);
    }
    if let Some(id) = request_id {
        set_attribute(attrs, "request_id", id);
    }
    set_attribute(attrs, reply::REASON, &reason);
    set_attribute(attrs, reply::NAME, &name);
    if let Some((w, _)) = &window {
        set_attribute(attrs, reply::TIME_ZONE, &w.time_zone);
        set_attribute(attrs, reply::WINDOW_START_UNIX_MS, &w.start_unix_ms.to_string());
        set_attribute(attrs, reply::WINDOW_END_UNIX_MS, &w.end_unix_ms.to_string());
    }
    if let Some(alt) = &alternative {
        set_attribute(attrs, reply::ALTERNATIVE_CHANNEL, alt.channel.as_str());
        set_attribute(attrs, reply::ALTERNATIVE_ADDRESS, &alt.address);
    }
    language::assign(&mut contact, language, &reason);
    let tag = contact.attributes.get("language_tag").cloned().unwrap_or_else(|| contact.language.clone());
    set_attribute(&mut contact.attributes, reply::LANGUAGE, &tag);

    Ok(CallbackContact {
        contact,
        number: number.e164,
        number_kind: number.kind,
        region: number.region,
        earliest_unix_ms: earliest,
        window: window.map(|(w, _)| w),
        alternative,
    })
}

/// A free-text field: trimmed, at most `max` characters, no control characters except newlines
/// and tabs (which become spaces).
fn text_field(bad: &mut impl FnMut(Field, Problem), field: Field, value: Option<&str>, max: usize) -> String {
    let Some(value) = value else { return String::new() };
    if value.chars().count() > max {
        bad(field, Problem::TooLong { max });
        return String::new();
    }
    if value.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        bad(field, Problem::BadCharacters);
        return String::new();
    }
    one_line(value)
}

/// A checked number.
struct Number {
    e164: String,
    kind: NumberKind,
    region: String,
}

/// Reads `raw` in `region` and applies the tenant's rules.
fn check_number(raw: &str, region: country::Id, tenant: &TenantCallbackSettings) -> Result<Number, Problem> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(Problem::Required);
    }
    if raw.chars().count() > MAX_NUMBER_CHARS {
        return Err(Problem::TooLong { max: MAX_NUMBER_CHARS });
    }
    let parsed = phonenumber::parse(Some(region), raw);
    let parsed: PhoneNumber = match parsed {
        Ok(number) if number.is_valid() => number,
        other => {
            if let Some(digits) = short_code(raw) {
                if !tenant.allow_short_codes {
                    return Err(Problem::ShortCode);
                }
                let region = region.as_ref().to_owned();
                return Ok(Number { e164: digits, kind: NumberKind::ShortCode, region });
            }
            return Err(match other {
                Ok(number) => Problem::InvalidNumber { country_code: number.country().code() },
                Err(e) => Problem::NotANumber { detail: e.to_string() },
            });
        }
    };
    let number_region = number_region(&parsed);
    let kind = NumberKind::of(parsed.number_type(&DATABASE));
    if kind == NumberKind::PremiumRate && !tenant.allow_premium_rate {
        return Err(Problem::PremiumRate);
    }
    let e164 = parsed.format().mode(Mode::E164).to_string();
    Ok(Number { e164, kind, region: number_region })
}

/// The digits of a short code: 3–6 digits written without a `+` (spaces and hyphens allowed),
/// e.g. `112`, `116 123`, `1571`. Only asked of input that is not a valid full number, so a
/// five-digit national number of a small numbering plan stays a number.
fn number_region(number: &PhoneNumber) -> String {
    number.country().id().map_or_else(|| "001".to_owned(), |id| id.as_ref().to_owned())
}

fn short_code(raw: &str) -> Option<String> {
    if !raw.bytes().all(|b| b.is_ascii_digit() || b == b' ' || b == b'-') {
        return None;
    }
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    (3..=6).contains(&digits.len()).then_some(digits)
}

/// Checks a window; the validated window and its local start and end for display.
fn check_window(
    bad: &mut impl FnMut(Field, Problem),
    w: &WindowRequest,
    tenant: &TenantCallbackSettings,
    now_ms: i64,
) -> Option<(Window, (String, String))> {
    let zone: Option<Tz> = w.time_zone.trim().parse().ok();
    if zone.is_none() {
        bad(Field::WindowTimeZone, Problem::UnknownTimeZone);
    }
    let start = local_time(bad, Field::WindowStart, &w.start);
    let end = local_time(bad, Field::WindowEnd, &w.end);
    let (zone, start, end) = (zone?, start?, end?);
    let start_at = match zone.from_local_datetime(&start) {
        LocalResult::Single(t) => Some(t),
        LocalResult::Ambiguous(earliest, _) => Some(earliest),
        LocalResult::None => {
            bad(Field::WindowStart, Problem::NonexistentLocalTime);
            None
        }
    };
    let end_at = match zone.from_local_datetime(&end) {
        LocalResult::Single(t) => Some(t),
        LocalResult::Ambiguous(_, latest) => Some(latest),
        LocalResult::None => {
            bad(Field::WindowEnd, Problem::NonexistentLocalTime);
            None
        }
    };
    let (start_at, end_at) = (start_at?, end_at?);
    let (start_ms, end_ms) = (start_at.timestamp_millis(), end_at.timestamp_millis());
    if end_ms <= start_ms {
        bad(Field::WindowEnd, Problem::EndNotAfterStart);
        return None;
    }
    if end_ms <= now_ms {
        bad(Field::WindowEnd, Problem::WindowEnded);
        return None;
    }
    if start_ms > now_ms.saturating_add(tenant.max_ahead_ms) {
        bad(Field::WindowStart, Problem::TooFarAhead { max_days: (tenant.max_ahead_ms / 86_400_000) as u32 });
        return None;
    }
    let window = Window { time_zone: zone.name().to_owned(), start_unix_ms: start_ms, end_unix_ms: end_ms };
    Some((window, (start_at.to_rfc3339(), end_at.to_rfc3339())))
}

fn local_time(bad: &mut impl FnMut(Field, Problem), field: Field, value: &str) -> Option<NaiveDateTime> {
    let value = value.trim();
    let parsed = NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M"));
    match parsed {
        Ok(t) => Some(t),
        Err(_) => {
            bad(field, Problem::BadDateTime);
            None
        }
    }
}

fn check_alternative(
    alt: &AlternativeRequest,
    region: country::Id,
    tenant: &TenantCallbackSettings,
) -> Result<Alternative, Problem> {
    let address = match alt.channel {
        AlternativeChannel::Email => check_email(&alt.address)?,
        AlternativeChannel::Sms | AlternativeChannel::Whatsapp => {
            let strict = TenantCallbackSettings { allow_short_codes: false, ..tenant.clone() };
            check_number(&alt.address, region, &strict)?.e164
        }
    };
    Ok(Alternative { channel: alt.channel, address })
}

/// A plausible email address: one `@` with a non-empty local part and a dotted domain, no
/// whitespace or control characters, at most 254 characters.
pub(crate) fn check_email(raw: &str) -> Result<String, Problem> {
    let address = raw.trim();
    if address.is_empty() {
        return Err(Problem::Required);
    }
    if address.chars().count() > MAX_EMAIL_CHARS {
        return Err(Problem::TooLong { max: MAX_EMAIL_CHARS });
    }
    let plausible = match address.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !address
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ','))
        }
        None => false,
    };
    if plausible { Ok(address.to_owned()) } else { Err(Problem::NotAnEmailAddress) }
}
