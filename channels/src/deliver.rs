//! Replies out: agents' replies to Messenger, Instagram and WhatsApp customers, read from the
//! outbound topic and handed to each platform's send API.
//!
//! One consumer group (`{topic prefix}channels-meta-delivery`) reads the outbound topic; each
//! `reply` to a social contact whose id names a Meta platform (`messenger:…`, `instagram:…`,
//! `whatsapp:…`) is sent to the tenant's account of that platform, as the platform documents:
//!
//! - Messenger: `POST {base}/{page-id}/messages` with
//!   `{"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": …}}`
//! - Instagram: `POST {base}/{instagram-account-id}/messages` with
//!   `{"recipient": {"id": IGSID}, "message": {"text": …}}`
//! - WhatsApp: `POST {base}/{phone-number-id}/messages` with `{"messaging_product": "whatsapp",
//!   "recipient_type": "individual", "to": digits, "type": "text", "text": {"preview_url": false,
//!   "body": …}}`
//!
//! each with `Authorization: Bearer <access token>`. A 5xx, a 429 or a connection failure is
//! retried with backoff; what still fails, or what the platform refuses, goes to the dead-letter
//! topic with the reason. The offset is committed once the reply is sent or dead-lettered.
//! Outbound ids are deterministic, so a repeat of a recently sent id is skipped.
//!
//! A new group starts at the beginning of the topic (starting at its end would lose the
//! replies written while the group first joins), and a reply older than [`MAX_REPLY_AGE`] is
//! not sent but dead-lettered (`stale`): a customer does not get an answer hours late from a
//! first deployment or a long outage without anyone seeing it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::{ClientContext, Message as _};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vuoro_adapters::meta::{Platform, Secret};
use vuoro_proto::v1;
use vuoro_service::config::Topic;
use vuoro_service::kafka::Cluster;

use crate::publish::{DeadLetter, Publisher, settle};

/// The `channel` label of delivery metrics, and the channel named on its dead letters.
pub const CHANNEL: &str = "meta";
/// Attempts at one send before it is dead-lettered.
const ATTEMPTS: u32 = 4;
/// First retry delay; doubled for each further attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// One request's time limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Outbound ids remembered for dedupe.
const REMEMBERED_IDS: usize = 10_000;
/// Oldest reply still sent; older ones are dead-lettered as `stale`.
pub const MAX_REPLY_AGE: Duration = Duration::from_secs(15 * 60);
/// Longest platform answer quoted in a dead letter's reason.
const MAX_QUOTED_BYTES: usize = 512;

/// Where and how replies are sent.
#[derive(Clone, Debug)]
pub struct DeliverySettings {
    /// The Graph API's base URL, version included, e.g. `http://graph-proxy:8080/v21.0`.
    pub base_url: Uri,
    /// The access token sent as `Authorization: Bearer`.
    pub access_token: Secret,
    /// Each tenant's accounts, by platform.
    pub accounts: HashMap<(String, Platform), Vec<String>>,
}

/// Tells when the consumer has its partitions (replies written before then are read only if
/// the group had committed offsets).
#[derive(Clone, Default)]
struct Assignment(Arc<AtomicBool>);

impl ClientContext for Assignment {}

impl ConsumerContext for Assignment {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance
            && partitions.count() > 0
        {
            // Relaxed: a flag for tests and logs, publishing no other data.
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// The running delivery.
pub struct MetaDelivery {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    assigned: Assignment,
}

impl MetaDelivery {
    /// Joins the delivery group on `cluster`'s outbound topic and starts sending.
    pub fn start(
        cluster: &Cluster,
        settings: DeliverySettings,
        publisher: Publisher,
    ) -> anyhow::Result<MetaDelivery> {
        if settings.base_url.scheme_str() != Some("http") {
            return Err(anyhow!(
                "the Meta send API URL {} is not http://: this build has no TLS client; send through an \
                 egress proxy that speaks TLS to the platform",
                settings.base_url
            ));
        }
        let assigned = Assignment::default();
        let consumer: StreamConsumer<Assignment> = cluster
            .client_config()
            .set("group.id", format!("{}channels-meta-delivery", cluster.prefix))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create_with_context(assigned.clone())
            .context("creating the Meta delivery consumer")?;
        consumer
            .subscribe(&[&cluster.topic(Topic::Outbound)])
            .context("subscribing to the outbound topic")?;
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut sender = Sender { settings, publisher, seen: Seen::default() };
            loop {
                let message = tokio::select! {
                    _ = stopped.wait_for(|&s| s) => break,
                    message = consumer.recv() => message,
                };
                match message {
                    Ok(message) => {
                        sender.handle(message.payload().unwrap_or_default(), message.key()).await;
                        if let Err(error) = consumer.commit_message(&message, CommitMode::Async) {
                            tracing::warn!(%error, "committing the delivery offset");
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "reading the outbound topic");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        Ok(MetaDelivery { stop, task, assigned })
    }

    /// Whether the consumer has been given partitions of the outbound topic.
    pub fn is_assigned(&self) -> bool {
        // Relaxed: see `Assignment`.
        self.assigned.0.load(Ordering::Relaxed)
    }

    /// Stops after the reply in progress (within `grace`).
    pub async fn stop(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(grace, &mut self.task).await.is_err() {
            self.task.abort();
        }
    }
}

/// Recently handled outbound ids.
#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    /// Remembers `id`; false if it was already there.
    fn insert(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        if self.order.len() == REMEMBERED_IDS
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.ids.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        true
    }
}

struct Sender {
    settings: DeliverySettings,
    publisher: Publisher,
    seen: Seen,
}

/// Why a reply was not delivered: a stable code and what happened.
struct Failure {
    code: &'static str,
    reason: String,
}

impl Sender {
    async fn handle(&mut self, payload: &[u8], key: Option<&[u8]>) {
        let Ok(message) = v1::OutboundMessage::decode(payload) else {
            tracing::warn!("an outbound record that is not an OutboundMessage");
            return;
        };
        let Some(v1::outbound_message::Message::Reply(text)) = &message.message else { return };
        if message.channel != v1::Channel::Social as i32 {
            return;
        }
        let Some(platform) = platform_of(&message.contact) else { return };
        if !self.seen.insert(&message.id) {
            return;
        }
        let age_ms = crate::now().timestamp_millis().saturating_sub(message.at_unix_ms);
        let result = if age_ms > MAX_REPLY_AGE.as_millis() as i64 {
            Err(Failure {
                code: "stale",
                reason: format!(
                    "written {} s ago, more than {} s: not sent so late",
                    age_ms / 1000,
                    MAX_REPLY_AGE.as_secs()
                ),
            })
        } else {
            match request(&self.settings, &message, platform, text) {
                Ok((uri, body)) => self.send(uri, body).await,
                Err(failure) => Err(failure),
            }
        };
        match result {
            Ok(()) => crate::metrics::delivered(CHANNEL),
            Err(failure) => {
                crate::metrics::delivery_failed(CHANNEL, failure.code);
                let key = key.and_then(|k| std::str::from_utf8(k).ok()).unwrap_or(&message.tenant);
                let reason =
                    format!("reply {} to contact {}: {}", message.id, message.contact, failure.reason);
                let letter = DeadLetter {
                    channel: CHANNEL,
                    key,
                    code: failure.code,
                    reason: &reason,
                    payload,
                    event_path: None,
                };
                let stored = match self.publisher.dead_letter(&letter, &message.id) {
                    Ok(delivery) => settle(delivery).await,
                    Err(error) => Err(error),
                };
                if let Err(error) = stored {
                    tracing::error!(%error, "an undelivered reply could not be dead-lettered");
                }
            }
        }
    }
}

/// The send API request for a reply: its URI and JSON body.
fn request(
    settings: &DeliverySettings,
    message: &v1::OutboundMessage,
    platform: Platform,
    text: &str,
) -> Result<(Uri, Value), Failure> {
    let accounts =
        settings.accounts.get(&(message.tenant.clone(), platform)).map(Vec::as_slice).unwrap_or_default();
    let account = match accounts {
        [one] => one,
        [] => {
            return Err(Failure {
                code: "unknown_account",
                reason: format!("tenant {:?} has no {} account", message.tenant, platform.as_str()),
            });
        }
        _ => {
            return Err(Failure {
                code: "ambiguous_account",
                reason: format!(
                    "tenant {:?} has {} {} accounts; the reply does not say which one the customer wrote to",
                    message.tenant,
                    accounts.len(),
                    platform.as_str()
                ),
            });
        }
    };
    let recipient = message.address.trim();
    if recipient.is_empty() {
        return Err(Failure { code: "no_address", reason: "the contact has no customer address".into() });
    }
    let body = match platform {
        Platform::Messenger => json!({
            "recipient": {"id": recipient},
            "messaging_type": "RESPONSE",
            "message": {"text": text},
        }),
        Platform::Instagram => json!({"recipient": {"id": recipient}, "message": {"text": text}}),
        Platform::Whatsapp => json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": recipient.trim_start_matches('+'),
            "type": "text",
            "text": {"preview_url": false, "body": text},
        }),
    };
    let base = settings.base_url.to_string();
    let uri = format!("{}/{account}/messages", base.trim_end_matches('/'))
        .parse::<Uri>()
        .map_err(|e| Failure { code: "bad_request", reason: format!("account {account:?}: {e}") })?;
    Ok((uri, body))
}

impl Sender {
    /// Sends with retries: a 2xx is done, a 429, a 5xx or a broken connection is tried again,
    /// any other answer is final.
    async fn send(&self, uri: Uri, body: Value) -> Result<(), Failure> {
        let bytes = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let mut backoff = FIRST_BACKOFF;
        let mut last = Failure { code: "unreachable", reason: String::new() };
        for attempt in 1..=ATTEMPTS {
            match tokio::time::timeout(
                REQUEST_TIMEOUT,
                post(&uri, &self.settings.access_token, bytes.clone()),
            )
            .await
            {
                Ok(Ok((status, _))) if (200..300).contains(&status) => return Ok(()),
                Ok(Ok((status, answer))) if status == 429 || status >= 500 => {
                    last =
                        Failure { code: "platform_unavailable", reason: format!("HTTP {status}: {answer}") };
                }
                Ok(Ok((status, answer))) => {
                    return Err(Failure {
                        code: "platform_refused",
                        reason: format!("HTTP {status}: {answer}"),
                    });
                }
                Ok(Err(error)) => last = Failure { code: "unreachable", reason: error.to_string() },
                Err(_) => {
                    last = Failure {
                        code: "timeout",
                        reason: format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()),
                    };
                }
            }
            tracing::warn!(attempt, code = last.code, reason = %last.reason, "sending a reply");
            if attempt < ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        last.reason = format!("{} attempts, the last: {}", ATTEMPTS, last.reason);
        Err(last)
    }
}

/// One `POST` over a fresh HTTP/1.1 connection; the status and the answer (quoted, cut short).
async fn post(uri: &Uri, token: &Secret, body: Bytes) -> anyhow::Result<(u16, String)> {
    let authority = uri.authority().context("the URL has no host")?.clone();
    let port = authority.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((authority.host(), port))
        .await
        .with_context(|| format!("connecting to {authority}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "send API connection");
        }
    });
    let bearer = HeaderValue::from_bytes(&[b"Bearer ", token.expose()].concat())
        .context("the access token is not a valid header value")?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(HOST, authority.as_str())
        .header(CONTENT_TYPE, "application/json")
        .header(AUTHORIZATION, bearer)
        .body(Full::new(body))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let answer = response.into_body().collect().await?.to_bytes();
    let quoted = String::from_utf8_lossy(&answer[..answer.len().min(MAX_QUOTED_BYTES)]).into_owned();
    Ok((status, quoted))
}

/// The Meta platform a contact id names: `messenger:…`, `instagram:…`, `whatsapp:…`.
pub fn platform_of(contact: &str) -> Option<Platform> {
    match contact.split_once(':')?.0 {
        "messenger" => Some(Platform::Messenger),
        "instagram" => Some(Platform::Instagram),
        "whatsapp" => Some(Platform::Whatsapp),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_ids_name_their_platform() {
        assert_eq!(platform_of("messenger:m_1"), Some(Platform::Messenger));
        assert_eq!(platform_of("instagram:sha256:ab"), Some(Platform::Instagram));
        assert_eq!(platform_of("whatsapp:wamid.X"), Some(Platform::Whatsapp));
        assert_eq!(platform_of("callback:web-1"), None);
        assert_eq!(platform_of("messenger"), None);
    }

    fn settings() -> DeliverySettings {
        let mut accounts = HashMap::new();
        accounts.insert(("acme".to_owned(), Platform::Whatsapp), vec!["106540352242922".to_owned()]);
        accounts.insert(("acme".to_owned(), Platform::Instagram), vec!["17841400000000".to_owned()]);
        accounts.insert(("globex".to_owned(), Platform::Messenger), vec!["1".to_owned(), "2".to_owned()]);
        DeliverySettings {
            base_url: "http://graph.test/v21.0/".parse().unwrap(),
            access_token: Secret::new("t"),
            accounts,
        }
    }

    fn reply(tenant: &str, contact: &str, address: &str) -> v1::OutboundMessage {
        v1::OutboundMessage {
            id: "1-1-1/0".into(),
            tenant: tenant.into(),
            contact: contact.into(),
            channel: v1::Channel::Social as i32,
            address: address.into(),
            message: Some(v1::outbound_message::Message::Reply("Hei".into())),
            ..Default::default()
        }
    }

    #[test]
    fn whatsapp_and_instagram_requests_have_the_documented_shape() {
        let message = reply("acme", "whatsapp:wamid.X", "+16505551234");
        let (uri, body) = request(&settings(), &message, Platform::Whatsapp, "Hei").ok().unwrap();
        assert_eq!(uri.to_string(), "http://graph.test/v21.0/106540352242922/messages");
        assert_eq!(
            body,
            json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "16505551234",
                   "type": "text", "text": {"preview_url": false, "body": "Hei"}})
        );
        let message = reply("acme", "instagram:m_1", "9876");
        let (uri, body) = request(&settings(), &message, Platform::Instagram, "Hei").ok().unwrap();
        assert_eq!(uri.path(), "/v21.0/17841400000000/messages");
        assert_eq!(body, json!({"recipient": {"id": "9876"}, "message": {"text": "Hei"}}));
    }

    #[test]
    fn a_reply_without_one_account_to_send_from_is_refused() {
        let code = |tenant: &str, platform| {
            request(&settings(), &reply(tenant, "messenger:m_1", "1"), platform, "Hei").err().map(|f| f.code)
        };
        assert_eq!(code("acme", Platform::Messenger), Some("unknown_account"));
        assert_eq!(code("globex", Platform::Messenger), Some("ambiguous_account"));
        let no_address = request(&settings(), &reply("acme", "whatsapp:w", " "), Platform::Whatsapp, "Hei");
        assert_eq!(no_address.err().map(|f| f.code), Some("no_address"));
    }

    #[test]
    fn ids_are_remembered_up_to_a_bound() {
        let mut seen = Seen::default();
        assert!(seen.insert("a"));
        assert!(!seen.insert("a"));
        for i in 0..REMEMBERED_IDS {
            seen.insert(&i.to_string());
        }
        assert!(seen.insert("a"), "the oldest id was forgotten");
        assert_eq!(seen.ids.len(), REMEMBERED_IDS);
    }
}
