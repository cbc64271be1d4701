//! `GET /chat/ws`: web chat over a WebSocket. The customer's frames ([`ClientMessage`]) open a
//! conversation (published as a chat contact, answered `started` once Kafka has it), carry
//! their messages and their rating to the router as `RouterInput`s, or resume a conversation
//! with its token; what the router says about the contact (the place in the queue, the agent
//! joining, the agent's replies, the end) comes from the outbound [`Feed`](crate::feed::Feed)
//! and is forwarded as [`ServerMessage`]s in the customer's language.
//!
//! Every refused frame (too large, not UTF-8, malformed JSON, an invalid field, over the rate
//! limit, a page of a foreign origin) is answered with an `error` frame naming the field and
//! the reason, counted, and dead-lettered.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    CONNECTION, HOST, HeaderValue, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE,
};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use vuoro_adapters::chat::{
    self, ClientMessage, FieldProblem, Resume, ServerMessage, Start, TenantChatSettings,
};
use vuoro_proto::v1;

use crate::listener::{ChatEndpoint, NotPublished, Refusal, State, key_for};
use crate::status::{self, Language};

/// The channel's name: the `channel` metrics label and the dead-letter source `channel:chat`.
pub const CHANNEL: &str = "chat";
/// Path of the WebSocket endpoint.
pub const WS_PATH: &str = "/chat/ws";
/// The window of the per-connection rate limit.
const RATE_WINDOW: Duration = Duration::from_secs(60);

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Handles `GET /chat/ws`: checks the WebSocket handshake, answers `101 Switching Protocols`,
/// and runs the conversation on the upgraded connection.
pub(crate) async fn upgrade(
    state: &Arc<State>,
    mut request: Request<Incoming>,
    correlation: &str,
) -> Response<Full<Bytes>> {
    let Some(endpoint) = state.endpoints.chat.clone() else {
        return Refusal::one(404, "not_found", "path", "web chat is not served here".into()).response();
    };
    let headers = request.headers();
    let has = |name, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|part| part.trim().eq_ignore_ascii_case(token)))
    };
    let key = headers.get(SEC_WEBSOCKET_KEY).map(|k| k.as_bytes().to_vec());
    let refusal = if !has(UPGRADE, "websocket") || !has(CONNECTION, "upgrade") {
        Some(("upgrade", "not a WebSocket handshake (Upgrade: websocket, Connection: Upgrade)"))
    } else if key.is_none() {
        Some(("sec-websocket-key", "the WebSocket handshake has no Sec-WebSocket-Key"))
    } else if headers.get("sec-websocket-version").and_then(|v| v.to_str().ok()) != Some("13") {
        Some(("sec-websocket-version", "only WebSocket version 13 is spoken"))
    } else {
        None
    };
    if let Some((field, reason)) = refusal {
        let refusal = Refusal::one(426, "not_websocket", field, reason.to_owned());
        let mut response = state.refuse(CHANNEL, CHANNEL, refusal, &[], correlation).await;
        response.headers_mut().insert(UPGRADE, HeaderValue::from_static("websocket"));
        response.headers_mut().insert("sec-websocket-version", HeaderValue::from_static("13"));
        return response;
    }
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok()).map(str::to_owned);
    let (origin, host) = (text(ORIGIN), text(HOST));
    let accept = derive_accept_key(&key.unwrap_or_default());
    let upgraded = hyper::upgrade::on(&mut request);
    let session = Session {
        state: Arc::clone(state),
        max_frame_bytes: endpoint.settings.max_frame_bytes,
        endpoint,
        origin,
        host,
        correlation: correlation.to_owned(),
        conversation: None,
        recent_frames: VecDeque::new(),
    };
    tokio::spawn(async move {
        match upgraded.await {
            Ok(upgraded) => {
                let limit = Some(session.max_frame_bytes);
                let config = WebSocketConfig::default().max_frame_size(limit).max_message_size(limit);
                let socket =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                        .await;
                session.run(socket).await;
            }
            Err(error) => tracing::debug!(%error, "chat: the WebSocket upgrade failed"),
        }
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// One customer's connection.
struct Session {
    state: Arc<State>,
    endpoint: ChatEndpoint,
    max_frame_bytes: usize,
    /// The page's origin (`Origin`), absent for clients that are not browsers.
    origin: Option<String>,
    /// The listener's own host (`Host`): the widget's page is always allowed.
    host: Option<String>,
    correlation: String,
    conversation: Option<Conversation>,
    /// When each frame of the last minute arrived.
    recent_frames: VecDeque<Instant>,
}

/// The conversation a connection is attached to.
struct Conversation {
    tenant: String,
    id: String,
    language: Language,
    completed: bool,
    rated: bool,
    /// Outbound ids already forwarded on this connection.
    shown: HashSet<String>,
    feed: mpsc::UnboundedReceiver<v1::OutboundMessage>,
}

/// What to do after a frame.
enum Next {
    Continue,
    Close(CloseCode, &'static str),
}

impl Session {
    async fn run(mut self, mut socket: Socket) {
        let mut closing = self.state.closing.clone();
        let stopping = async move {
            let _ = closing.wait_for(|&c| c).await;
        };
        let mut stopping = std::pin::pin!(stopping);
        loop {
            let feed = async {
                match self.conversation.as_mut() {
                    Some(c) => c.feed.recv().await,
                    None => std::future::pending().await,
                }
            };
            let next = tokio::select! {
                frame = socket.next() => match frame {
                    None => break,
                    Some(frame) => self.on_frame(&mut socket, frame).await,
                },
                Some(message) = feed => self.forward(&mut socket, message).await,
                () = &mut stopping => Next::Close(CloseCode::Away, "the service is restarting"),
            };
            if let Next::Close(code, reason) = next {
                let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
                let _ = socket.close(Some(frame)).await;
                break;
            }
        }
        if let Some(c) = &self.conversation {
            let (tenant, id) = (c.tenant.clone(), c.id.clone());
            self.conversation = None;
            self.state.feed.unsubscribe_closed(&tenant, &id);
        }
    }

    /// One frame from the customer.
    async fn on_frame(&mut self, socket: &mut Socket, frame: Result<Message, WsError>) -> Next {
        let text = match frame {
            Ok(Message::Text(text)) => Ok(text),
            Ok(Message::Binary(bytes)) => Err(bytes),
            Ok(Message::Close(_)) => return Next::Close(CloseCode::Normal, ""),
            Ok(_) => return Next::Continue, // ping and pong: tungstenite answers pings
            Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size })) => {
                crate::metrics::received(CHANNEL);
                let reason = format!("frame of {size} bytes is over the {max_size}-byte limit");
                let problem = FieldProblem::new("frame", "too_large", reason);
                self.refuse(socket, problem, &[]).await;
                return Next::Close(CloseCode::Size, "frame too large");
            }
            Err(WsError::Utf8(detail)) => {
                crate::metrics::received(CHANNEL);
                let reason = format!("a text frame that is not UTF-8 ({detail})");
                let problem = FieldProblem::new("frame", "invalid_utf8", reason);
                self.refuse(socket, problem, &[]).await;
                return Next::Close(CloseCode::Invalid, "text frame not UTF-8");
            }
            Err(error) => {
                tracing::debug!(%error, "chat: the connection failed");
                return Next::Close(CloseCode::Protocol, "protocol error");
            }
        };
        crate::metrics::received(CHANNEL);
        let started = Instant::now();
        let payload = match &text {
            Ok(text) => text.as_bytes(),
            Err(bytes) => bytes,
        };
        if !self.within_rate() {
            let limit = self.endpoint.settings.messages_per_minute;
            let problem =
                FieldProblem::new("frame", "rate_limited", format!("more than {limit} frames a minute"));
            self.refuse(socket, problem, payload).await;
            // A client that keeps going after being told is cut off.
            return if self.recent_frames.len() >= 2 * limit as usize {
                Next::Close(CloseCode::Policy, "too many frames")
            } else {
                Next::Continue
            };
        }
        let text = match text {
            Ok(text) => text,
            Err(bytes) => {
                let problem = FieldProblem::new("frame", "binary_frame", "frames are JSON text, not binary");
                return self.refuse(socket, problem, &bytes).await;
            }
        };
        let next = match chat::parse(&self.endpoint.settings, &text) {
            Err(problem) => self.refuse(socket, problem, text.as_bytes()).await,
            Ok(ClientMessage::Start(start)) => self.start(socket, &start, text.as_bytes()).await,
            Ok(ClientMessage::Resume(resume)) => self.resume(socket, &resume, text.as_bytes()).await,
            Ok(ClientMessage::Message(said)) => self.message(socket, &said.text, text.as_bytes()).await,
            Ok(ClientMessage::Rating(rated)) => self.rate(socket, rated.score, text.as_bytes()).await,
        };
        crate::metrics::request_time(CHANNEL, started.elapsed().as_secs_f64());
        next
    }

    /// Counts a frame against the per-minute limit; false when over it.
    fn within_rate(&mut self) -> bool {
        let now = Instant::now();
        while self.recent_frames.front().is_some_and(|&at| now.duration_since(at) >= RATE_WINDOW) {
            self.recent_frames.pop_front();
        }
        self.recent_frames.push_back(now);
        self.recent_frames.len() <= self.endpoint.settings.messages_per_minute as usize
    }

    /// Whether this connection's page may open `tenant`'s chat.
    fn origin_allowed(&self, tenant: &TenantChatSettings) -> bool {
        let Some(origin) = self.origin.as_deref() else { return true };
        let same_origin = self.host.as_deref().is_some_and(|host| {
            let host = host.to_ascii_lowercase();
            let origin = origin.trim_end_matches('/').to_ascii_lowercase();
            origin == format!("http://{host}") || origin == format!("https://{host}")
        });
        same_origin || tenant.allows(origin)
    }

    /// Checks the tenant and the origin of a `start` or `resume`.
    fn admit(&self, tenant: &str) -> Result<(), (FieldProblem, bool)> {
        let settings = chat::tenant(&self.endpoint.settings, tenant).map_err(|p| (p, false))?;
        if !self.origin_allowed(settings) {
            let origin = self.origin.as_deref().unwrap_or_default();
            let reason = format!("pages of {origin} may not open this tenant's chat");
            return Err((FieldProblem::new("origin", "origin_not_allowed", reason), true));
        }
        if self.conversation.is_some() {
            let reason = "this connection already has a conversation";
            return Err((FieldProblem::new("type", "already_started", reason), false));
        }
        Ok(())
    }

    async fn start(&mut self, socket: &mut Socket, start: &Start, frame: &[u8]) -> Next {
        if let Err((problem, close)) = self.admit(&start.tenant) {
            return self.refuse_and_maybe_close(socket, problem, frame, close).await;
        }
        let conversation = match random_hex() {
            Ok(hex) => format!("chat:{hex}"),
            Err(why) => return self.unavailable(socket, &why).await,
        };
        let contact = match chat::normalize_start(&self.endpoint.settings, start, &conversation) {
            Ok(contact) => contact,
            Err(problems) => return self.refuse_all(socket, problems, frame).await,
        };
        let language = Language::from_tag(
            contact.attributes.get(chat::REPLY_LANGUAGE).map(String::as_str).unwrap_or_default(),
        );
        match self.state.publish_contact(CHANNEL, contact, &self.correlation).await {
            Ok(()) => {}
            Err(NotPublished::Unavailable(why)) => return self.unavailable(socket, &why).await,
            Err(invalid) => {
                let reason = invalid.refusal().map(|r| r.message).unwrap_or_default();
                let problem = FieldProblem::new("frame", "invalid_contact", reason);
                return self.refuse(socket, problem, frame).await;
            }
        }
        let tenant = start.tenant.trim().to_owned();
        let token = chat::resume_token(&self.endpoint.secret, &tenant, &conversation);
        self.attach(tenant, conversation.clone(), language);
        self.send(socket, &ServerMessage::Started { conversation, token }).await
    }

    async fn resume(&mut self, socket: &mut Socket, resume: &Resume, frame: &[u8]) -> Next {
        if let Err((problem, close)) = self.admit(&resume.tenant) {
            return self.refuse_and_maybe_close(socket, problem, frame, close).await;
        }
        if let Err(problem) = chat::verify_resume(&self.endpoint.secret, resume) {
            return self.refuse(socket, problem, frame).await;
        }
        let conversation = resume.conversation.trim().to_owned();
        self.attach(resume.tenant.trim().to_owned(), conversation.clone(), Language::En);
        self.send(socket, &ServerMessage::Resumed { conversation }).await
    }

    /// Follows the conversation's outbound messages: what the feed holds first, then each new.
    fn attach(&mut self, tenant: String, id: String, language: Language) {
        let feed = self.state.feed.subscribe(&tenant, &id);
        self.conversation = Some(Conversation {
            tenant,
            id,
            language,
            completed: false,
            rated: false,
            shown: HashSet::new(),
            feed,
        });
    }

    async fn message(&mut self, socket: &mut Socket, text: &str, frame: &[u8]) -> Next {
        let max = self.endpoint.settings.max_text_chars;
        let checked = match (&self.conversation, chat::check_text("text", text, max)) {
            (None, _) => Err(no_conversation()),
            (Some(c), _) if c.completed => {
                Err(FieldProblem::new("type", "conversation_closed", "the conversation is over"))
            }
            (Some(_), result) => result,
        };
        let text = match checked {
            Ok(text) => text,
            Err(problem) => return self.refuse(socket, problem, frame).await,
        };
        let Some(c) = &self.conversation else { return Next::Continue };
        let id = match random_hex() {
            Ok(hex) => format!("chat-message:{hex}"),
            Err(why) => return self.unavailable(socket, &why).await,
        };
        let input = v1::router_input::Input::CustomerMessage(v1::CustomerMessage {
            tenant: c.tenant.clone(),
            contact: c.id.clone(),
            id: id.clone(),
            text,
        });
        match self.send_input(&c.tenant.clone(), input).await {
            Ok(()) => self.send(socket, &ServerMessage::Sent { id }).await,
            Err(why) => self.unavailable(socket, &why).await,
        }
    }

    async fn rate(&mut self, socket: &mut Socket, score: i64, frame: &[u8]) -> Next {
        let checked = match (&self.conversation, chat::check_score(score)) {
            (None, _) => Err(no_conversation()),
            (Some(c), _) if !c.completed => {
                Err(FieldProblem::new("type", "not_completed", "a conversation is rated once it is over"))
            }
            (Some(c), _) if c.rated => Err(FieldProblem::new("type", "already_rated", "already rated")),
            (Some(_), result) => result,
        };
        let score = match checked {
            Ok(score) => score,
            Err(problem) => return self.refuse(socket, problem, frame).await,
        };
        let Some(c) = &self.conversation else { return Next::Continue };
        let (tenant, language) = (c.tenant.clone(), c.language);
        let input = v1::router_input::Input::CustomerRating(v1::CustomerRating {
            tenant: tenant.clone(),
            contact: c.id.clone(),
            score,
        });
        match self.send_input(&tenant, input).await {
            Ok(()) => {
                if let Some(c) = self.conversation.as_mut() {
                    c.rated = true;
                }
                let text = status::rating_thanks(language);
                self.send(socket, &ServerMessage::Rated { score, text }).await
            }
            Err(why) => self.unavailable(socket, &why).await,
        }
    }

    /// Sends a customer input to the contacts topic and waits for Kafka.
    async fn send_input(&self, tenant: &str, input: v1::router_input::Input) -> Result<(), String> {
        let stored = match self.state.publisher.send_input(tenant, input, &self.correlation) {
            Ok(delivery) => crate::publish::settle(delivery).await,
            Err(error) => Err(error),
        };
        stored.map_err(|e| e.to_string())
    }

    /// Forwards one outbound message of the conversation to the customer.
    async fn forward(&mut self, socket: &mut Socket, message: v1::OutboundMessage) -> Next {
        let Some(c) = self.conversation.as_mut() else { return Next::Continue };
        if !c.shown.insert(message.id.clone()) {
            return Next::Continue;
        }
        if message.context.contains_key(status::LANGUAGE_ATTRIBUTE) {
            c.language = status::language_of(&message);
        }
        let language = c.language;
        use v1::outbound_message::Message as M;
        let id = message.id;
        let frame = match message.message {
            Some(M::Queued(update)) => ServerMessage::Queued {
                id,
                position: update.position,
                estimated_wait_ms: update.estimated_wait_ms,
                text: status::chat_queue_line(language, &update),
            },
            Some(M::AgentJoined(_)) => {
                ServerMessage::AgentJoined { id, text: status::agent_joined(language) }
            }
            Some(M::Reply(text)) => ServerMessage::Reply { id, text },
            Some(M::Notice(text)) => ServerMessage::Notice { id, text },
            Some(M::Completed(_)) => {
                c.completed = true;
                ServerMessage::Completed { id, text: status::completed(language) }
            }
            Some(M::ScheduledUnixMs(_)) | None => return Next::Continue,
        };
        let next = self.send(socket, &frame).await;
        match next {
            Next::Continue => crate::metrics::delivered(CHANNEL),
            Next::Close(..) => crate::metrics::delivery_failed(CHANNEL, "socket_closed"),
        }
        next
    }

    /// Sends a frame; a connection that cannot take it is over.
    async fn send(&self, socket: &mut Socket, message: &ServerMessage) -> Next {
        let json = serde_json::to_string(message).unwrap_or_else(|_| "{}".to_owned());
        match socket.send(Message::text(json)).await {
            Ok(()) => Next::Continue,
            Err(error) => {
                tracing::debug!(%error, "chat: sending a frame");
                Next::Close(CloseCode::Away, "")
            }
        }
    }

    /// Refuses a frame: counts and dead-letters it, and tells the customer.
    async fn refuse(&self, socket: &mut Socket, problem: FieldProblem, frame: &[u8]) -> Next {
        let tenant = self.conversation.as_ref().map(|c| c.tenant.as_str());
        let key = key_for(tenant, CHANNEL);
        self.state
            .record_refusal(CHANNEL, key, problem.code, &problem.to_string(), frame, &self.correlation)
            .await;
        self.send(socket, &problem.frame()).await
    }

    async fn refuse_and_maybe_close(
        &self,
        socket: &mut Socket,
        problem: FieldProblem,
        frame: &[u8],
        close: bool,
    ) -> Next {
        let next = self.refuse(socket, problem, frame).await;
        if close { Next::Close(CloseCode::Policy, "origin not allowed") } else { next }
    }

    /// Refuses a frame with several problems: one dead letter, one `error` frame per problem.
    async fn refuse_all(&self, socket: &mut Socket, problems: Vec<FieldProblem>, frame: &[u8]) -> Next {
        let Some(first) = problems.first() else { return Next::Continue };
        let reason = problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        let key = key_for(self.conversation.as_ref().map(|c| c.tenant.as_str()), CHANNEL);
        self.state.record_refusal(CHANNEL, key, first.code, &reason, frame, &self.correlation).await;
        for problem in &problems {
            if let Next::Close(code, why) = self.send(socket, &problem.frame()).await {
                return Next::Close(code, why);
            }
        }
        Next::Continue
    }

    /// Kafka did not take the input: nothing was stored, the customer may send it again.
    async fn unavailable(&self, socket: &mut Socket, why: &str) -> Next {
        crate::metrics::rejected(CHANNEL, "unavailable");
        tracing::warn!(why, "chat: Kafka did not take an input");
        let reason = format!(
            "the message could not be stored ({why}); try again in {} s",
            crate::listener::RETRY_AFTER_SECS
        );
        self.send(socket, &FieldProblem::new("frame", "unavailable", reason).frame()).await
    }
}

fn no_conversation() -> FieldProblem {
    FieldProblem::new("type", "no_conversation", "start or resume a conversation first")
}

/// 128 random bits as hex: unguessable conversation and message ids.
pub(crate) fn random_hex() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(format!("{:032x}", u128::from_le_bytes(bytes)))
}
