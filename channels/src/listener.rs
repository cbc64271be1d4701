//! The channels' HTTP listener (HTTP/1.1, hyper): routes each request to its channel, enforces
//! the channel's body size limit before reading the body, and turns every outcome into an
//! answer the sender can act on — the accepted contact, or a refusal as JSON naming the field
//! and the reason (which also goes to the dead-letter topic), or 503 with `Retry-After` when
//! Kafka cannot take the contact.
//!
//! | method and path | channel |
//! | --- | --- |
//! | `POST /callback` | callback requests ([`crate::callback`]) |
//! | `GET /webhooks/meta` | Meta's subscription handshake ([`crate::meta`]) |
//! | `POST /webhooks/meta` | Meta's signed webhooks ([`crate::meta`]) |
//! | `GET /chat/ws` | web chat over WebSocket ([`crate::chat`]) |
//! | `GET /chat/`, `/chat/widget.js`, `/chat/widget.css` | the chat widget ([`crate::widget`]) |
//! | `POST /contact-us` | the "contact us" form ([`crate::contact_form`]) |

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vuoro_adapters::callback::CallbackSettings;
use vuoro_adapters::chat::ChatSettings;
use vuoro_adapters::meta::{MetaSettings, Secret};

use vuoro_proto::v1;

use crate::feed::Feed;
use crate::publish::{DeadLetter, Publisher};

/// A body that has not arrived in full by then is refused with 408.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The retry delay suggested when Kafka cannot take a contact, in seconds.
pub const RETRY_AFTER_SECS: u64 = 1;
/// Longest `X-Request-Id` taken as the correlation id.
const MAX_REQUEST_ID_CHARS: usize = 128;

/// Path of the callback endpoint.
pub const CALLBACK_PATH: &str = "/callback";
/// Path of Meta's webhook endpoint.
pub const META_PATH: &str = "/webhooks/meta";

/// Meta's webhook endpoint: the adapter's settings and the app's two secrets.
#[derive(Clone, Debug)]
pub struct MetaEndpoint {
    /// The accounts and the body limit.
    pub settings: MetaSettings,
    /// The app secret that signs each webhook body (`X-Hub-Signature-256`).
    pub app_secret: Secret,
    /// The token the subscription handshake must present.
    pub verify_token: Secret,
}

/// Web chat and the contact form: the adapter's settings and the secret resume tokens are
/// signed with.
#[derive(Clone, Debug)]
pub struct ChatEndpoint {
    /// The limits, the tenants, their origins and routes.
    pub settings: ChatSettings,
    /// Signs resume tokens: from the environment, or random per process (then a conversation
    /// resumes only on the process that started it).
    pub secret: Secret,
}

/// What the listener serves: each channel's validated settings, `None` when switched off
/// (its path then answers 404).
#[derive(Clone, Debug, Default)]
pub struct Endpoints {
    /// `POST /callback`.
    pub callback: Option<CallbackSettings>,
    /// `GET` and `POST /webhooks/meta`.
    pub meta: Option<MetaEndpoint>,
    /// `GET /chat/ws`, the widget under `/chat/`, and `POST /contact-us` when the form is on.
    pub chat: Option<ChatEndpoint>,
}

impl Endpoints {
    /// Whether any channel is switched on.
    pub fn any(&self) -> bool {
        !self.names().is_empty()
    }

    /// The names of the channels switched on.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.callback.is_some() {
            names.push(crate::callback::CHANNEL);
        }
        if self.meta.is_some() {
            names.push(crate::meta::CHANNEL);
        }
        if self.chat.is_some() {
            names.push(crate::chat::CHANNEL);
        }
        names
    }
}

/// What every request handler shares.
pub(crate) struct State {
    pub(crate) endpoints: Endpoints,
    pub(crate) publisher: Publisher,
    /// The outbound topic as it happens, for handlers that wait on one contact.
    pub(crate) feed: Arc<Feed>,
    /// Turns true when the listener stops: long-lived connections (chats) close.
    pub(crate) closing: watch::Receiver<bool>,
}

/// The running listener.
pub struct Listener {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    publisher: Publisher,
}

impl Listener {
    /// Binds `addr` (port 0: a free port) and serves `endpoints`, publishing through
    /// `publisher` and following `feed`, until [`Listener::stop`].
    pub async fn start(
        addr: SocketAddr,
        endpoints: Endpoints,
        publisher: Publisher,
        feed: Arc<Feed>,
    ) -> anyhow::Result<Listener> {
        crate::metrics::describe();
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the channels' HTTP listener to {addr}"))?;
        let bound = listener.local_addr().context("reading the channels' listener address")?;
        let (stop, mut stopped) = watch::channel(false);
        let state =
            Arc::new(State { endpoints, publisher: publisher.clone(), feed, closing: stopped.clone() });
        let shutdown = async move {
            let _ = stopped.wait_for(|&s| s).await;
        };
        let handler = move |request: Request<Incoming>| {
            let state = Arc::clone(&state);
            async move { handle(&state, request).await }
        };
        let task = vuoro_service::admin_http::serve_http(listener, "channels listener", handler, shutdown);
        tracing::info!(addr = %bound, "channels listening");
        Ok(Listener { addr: bound, stop, task, publisher })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, lets requests in progress finish within `grace` (each is
    /// answered only once Kafka has its records), then flushes the producer.
    pub async fn stop(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(grace, &mut self.task).await.is_err() {
            tracing::warn!("channels listener: requests still in progress after the grace period");
            self.task.abort();
        }
        let publisher = self.publisher.clone();
        let _ = tokio::task::spawn_blocking(move || publisher.flush(grace)).await;
    }
}

/// Routes one request and records its metrics.
async fn handle(state: &Arc<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let correlation = correlation(&request);
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let (channel, mut response) = match (path.as_str(), &method) {
        (CALLBACK_PATH, _) if state.endpoints.callback.is_none() => ("", not_found()),
        (META_PATH, _) if state.endpoints.meta.is_none() => ("", not_found()),
        (p, _) if p.starts_with(crate::widget::PREFIX) && state.endpoints.chat.is_none() => ("", not_found()),
        (crate::contact_form::PATH, _) if state.endpoints.chat.as_ref().is_none_or(|c| !c.settings.form) => {
            ("", not_found())
        }
        (crate::chat::WS_PATH, &Method::GET) => {
            ("", crate::chat::upgrade(state, request, &correlation).await)
        }
        (crate::contact_form::PATH, &Method::POST) => {
            crate::metrics::received(crate::contact_form::CHANNEL);
            (crate::contact_form::CHANNEL, crate::contact_form::post(state, request, &correlation).await)
        }
        (crate::chat::WS_PATH, _) => ("", method_not_allowed("GET")),
        (crate::contact_form::PATH, _) => ("", method_not_allowed("POST")),
        (_, &Method::GET) if path.starts_with(crate::widget::PREFIX) => ("", crate::widget::serve(&path)),
        (CALLBACK_PATH, &Method::POST) => {
            crate::metrics::received(crate::callback::CHANNEL);
            (crate::callback::CHANNEL, crate::callback::post(state, request, &correlation).await)
        }
        (META_PATH, &Method::GET) => {
            crate::metrics::received(crate::meta::CHANNEL);
            (crate::meta::CHANNEL, crate::meta::handshake(state, &request, &correlation).await)
        }
        (META_PATH, &Method::POST) => {
            crate::metrics::received(crate::meta::CHANNEL);
            (crate::meta::CHANNEL, crate::meta::post(state, request, &correlation).await)
        }
        (CALLBACK_PATH, _) => ("", method_not_allowed("POST")),
        (META_PATH, _) => ("", method_not_allowed("GET, POST")),
        _ => ("", not_found()),
    };
    if !channel.is_empty() {
        crate::metrics::request_time(channel, started.elapsed().as_secs_f64());
    }
    if let Ok(value) = HeaderValue::from_str(&correlation) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The correlation id: the sender's `X-Request-Id` when it is a short printable token, else a
/// fresh one.
fn correlation(request: &Request<Incoming>) -> String {
    let given = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).filter(|v| {
        !v.is_empty() && v.len() <= MAX_REQUEST_ID_CHARS && v.bytes().all(|b| b.is_ascii_graphic())
    });
    match given {
        Some(id) => id.to_owned(),
        None => fresh_correlation(),
    }
}

/// A fresh correlation id, unique in this process and unlikely to repeat across processes.
pub(crate) fn fresh_correlation() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // Relaxed: a counter that only has to be unique, publishing nothing else.
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = crate::now().timestamp_nanos_opt().unwrap_or_default() as u64;
    format!("ch-{:x}-{n:x}", nanos ^ (u64::from(std::process::id()) << 40))
}

/// A body that could not be read whole.
pub(crate) enum BodyError {
    /// Over the limit: declared by `Content-Length` (with the declared size) or found while
    /// reading.
    TooLarge { declared: Option<u64>, limit: usize },
    /// Not sent in time.
    Timeout,
    /// The connection failed or the framing was broken.
    Broken(String),
}

/// Reads a request body of at most `limit` bytes: a `Content-Length` over the limit is refused
/// before anything is read, and a body without one is cut off as soon as it passes the limit.
pub(crate) async fn read_body(request: Request<Incoming>, limit: usize) -> Result<(Parts, Bytes), BodyError> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|size| size > limit as u64) {
        return Err(BodyError::TooLarge { declared, limit });
    }
    let (parts, body) = request.into_parts();
    let collected = tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, limit).collect()).await;
    match collected {
        Err(_) => Err(BodyError::Timeout),
        Ok(Ok(body)) => Ok((parts, body.to_bytes())),
        Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(BodyError::TooLarge { declared: None, limit })
        }
        Ok(Err(error)) => Err(BodyError::Broken(error.to_string())),
    }
}

/// A refusal: the answer's status, the reason code (metrics label, dead-letter header), the
/// message, and the fields at fault.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) fields: Vec<Value>,
}

impl Refusal {
    /// A refusal with one field at fault.
    pub(crate) fn one(status: u16, code: &'static str, field: &str, message: String) -> Refusal {
        let fields = vec![json!({"field": field, "code": code, "message": message})];
        Refusal { status: status_code(status), code, message, fields }
    }

    /// The refusal of a body that could not be read.
    pub(crate) fn of_body(error: &BodyError) -> Refusal {
        match error {
            BodyError::TooLarge { declared: Some(size), limit } => Refusal::one(
                413,
                "too_large",
                "body",
                format!("request body of {size} bytes is over the {limit}-byte limit"),
            ),
            BodyError::TooLarge { declared: None, limit } => {
                Refusal::one(413, "too_large", "body", format!("request body is over the {limit}-byte limit"))
            }
            BodyError::Timeout => Refusal::one(
                408,
                "body_timeout",
                "body",
                format!("the request body did not arrive within {} s", BODY_READ_TIMEOUT.as_secs()),
            ),
            BodyError::Broken(why) => Refusal::one(
                400,
                "body_unreadable",
                "body",
                format!("the request body could not be read: {why}"),
            ),
        }
    }

    /// The JSON answer: `{"error": code, "message", "fields": [{"field", "code", "message", ...}]}`.
    pub(crate) fn response(&self) -> Response<Full<Bytes>> {
        json_response(
            self.status,
            &json!({"error": self.code, "message": self.message, "fields": self.fields}),
        )
    }
}

pub(crate) fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST)
}

impl State {
    /// Answers a refusal: counts it, writes its dead letter (waiting for Kafka, so the record
    /// is there when the sender hears of it; a dead letter Kafka does not take is logged, and
    /// the sender still gets its answer).
    pub(crate) async fn refuse(
        &self,
        channel: &'static str,
        key: &str,
        refusal: Refusal,
        payload: &[u8],
        correlation: &str,
    ) -> Response<Full<Bytes>> {
        self.record_refusal(channel, key, refusal.code, &refusal.message, payload, correlation).await;
        refusal.response()
    }

    /// Counts a refusal and writes its dead letter, waiting for Kafka (a dead letter Kafka
    /// does not take is logged).
    pub(crate) async fn record_refusal(
        &self,
        channel: &'static str,
        key: &str,
        code: &'static str,
        reason: &str,
        payload: &[u8],
        correlation: &str,
    ) {
        crate::metrics::rejected(channel, code);
        let letter = DeadLetter { channel, key, code, reason, payload, event_path: None };
        self.publisher.store_dead_letter(&letter, correlation).await;
    }

    /// Publishes a contact a channel built and waits for Kafka's acknowledgement; counts it
    /// as accepted. A contact breaking the router's rules (a bug in its adapter) is not sent.
    pub(crate) async fn publish_contact(
        &self,
        channel: &'static str,
        contact: v1::Contact,
        correlation: &str,
    ) -> Result<(), NotPublished> {
        let violations = vuoro_service::convert::check_contact(&contact);
        if !violations.is_empty() {
            return Err(NotPublished::Invalid(violations));
        }
        let engine_channel = vuoro_service::convert::engine_channel(contact.channel);
        let stored = match self.publisher.submit(contact, correlation) {
            Ok(delivery) => crate::publish::settle(delivery).await,
            Err(error) => Err(error),
        };
        if let Err(error) = stored {
            return Err(NotPublished::Unavailable(error.to_string()));
        }
        crate::metrics::accepted(channel, 1);
        if let Some(engine_channel) = engine_channel {
            vuoro_service::metrics::contact_received(engine_channel);
        }
        Ok(())
    }
}

/// Why a contact was not published.
pub(crate) enum NotPublished {
    /// It breaks the router's contact rules.
    Invalid(Vec<vuoro_service::convert::FieldViolation>),
    /// Kafka did not take it; nothing was stored.
    Unavailable(String),
}

impl NotPublished {
    /// The refusal of an invalid contact (422, every rule broken); `None` when Kafka was
    /// unavailable.
    pub(crate) fn refusal(&self) -> Option<Refusal> {
        let NotPublished::Invalid(violations) = self else { return None };
        let fields = violations
            .iter()
            .map(|v| json!({"field": v.field, "code": "invalid_contact", "message": v.description}))
            .collect();
        let message = violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        Some(Refusal { status: StatusCode::UNPROCESSABLE_ENTITY, code: "invalid_contact", message, fields })
    }
}

/// 503 with `Retry-After`: Kafka did not take a contact, nothing was stored.
pub(crate) fn unavailable(channel: &'static str, why: &str) -> Response<Full<Bytes>> {
    crate::metrics::rejected(channel, "unavailable");
    tracing::warn!(channel, why, "Kafka did not take a contact");
    let mut response = json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({
            "error": "unavailable",
            "message": format!("{why}; try again in {RETRY_AFTER_SECS} s"),
            "fields": [],
        }),
    );
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    response
}

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn not_found() -> Response<Full<Bytes>> {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"error": "not_found", "message": "no such endpoint", "fields": []}),
    )
}

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut response = json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({"error": "method_not_allowed", "message": format!("use {allow}"), "fields": []}),
    );
    response.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    response
}

/// The dead-letter key for an input that may name a tenant: the tenant when it is a plausible
/// name, else the channel.
pub(crate) fn key_for<'a>(tenant: Option<&'a str>, channel: &'static str) -> &'a str {
    match tenant.map(str::trim) {
        Some(t) if !t.is_empty() && t.chars().count() <= vuoro_adapters::limits::MAX_TENANT_CHARS => t,
        _ => channel,
    }
}
