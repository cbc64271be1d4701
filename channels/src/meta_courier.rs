//! Messages out to Messenger, Instagram and WhatsApp customers: the [`Courier`] of social
//! contacts whose id names a Meta platform (`messenger:…`, `instagram:…`, `whatsapp:…`). Agents'
//! replies and adapters' notices are sent as they are; of the router's status updates the
//! customer hears the first place in the queue with its wait, the agent joining and the end
//! of the conversation ([`crate::status`], in the customer's language). Each is sent to the
//! tenant's account of that platform, as the platform documents:
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
//! retried with backoff; what still fails, or what the platform refuses, is a [`Failure`]
//! ([`crate::outbound`] dead-letters it).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use vuoro_adapters::meta::{Platform, Secret};
use vuoro_proto::v1;
use vuoro_proto::v1::outbound_message::Message as O;

use crate::outbound::{BoxFuture, Courier, Failure};
use crate::status;

/// The `channel` label of delivery metrics, and the channel named on its dead letters.
pub const CHANNEL: &str = "meta";
/// Attempts at one send before it is dead-lettered.
const ATTEMPTS: u32 = 4;
/// First retry delay; doubled for each further attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// One request's time limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest platform answer quoted in a dead letter's reason.
const MAX_QUOTED_BYTES: usize = 512;
/// Contacts remembered as told their place in the queue.
const REMEMBERED_CONTACTS: usize = 100_000;

/// Where and how messages are sent.
#[derive(Clone, Debug)]
pub struct DeliverySettings {
    /// The Graph API's base URL, version included, e.g. `http://graph-proxy:8080/v21.0`.
    pub base_url: Uri,
    /// The access token sent as `Authorization: Bearer`.
    pub access_token: Secret,
    /// Each tenant's accounts, by platform.
    pub accounts: HashMap<(String, Platform), Vec<String>>,
}

/// The Meta platforms' courier.
pub struct MetaCourier {
    settings: DeliverySettings,
    /// Contacts already told their place in the queue (told once, not at every update).
    told_queued: Mutex<HashSet<(String, String)>>,
}

impl MetaCourier {
    /// A courier sending through `settings`; refuses a base URL it cannot reach.
    pub fn new(settings: DeliverySettings) -> anyhow::Result<MetaCourier> {
        if settings.base_url.scheme_str() != Some("http") {
            anyhow::bail!(
                "the Meta send API URL {} is not http://: this build has no TLS client; send through an \
                 egress proxy that speaks TLS to the platform",
                settings.base_url
            );
        }
        Ok(MetaCourier { settings, told_queued: Mutex::default() })
    }

    /// The text the customer gets for `message`, if any.
    fn text_for(&self, message: &v1::OutboundMessage) -> Option<String> {
        let language = status::language_of(message);
        let key = (message.tenant.clone(), message.contact.clone());
        let mut told = self.told_queued.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match message.message.as_ref()? {
            O::Reply(text) | O::Notice(text) => Some(text.clone()),
            O::Queued(update) => {
                if told.len() >= REMEMBERED_CONTACTS {
                    told.clear();
                }
                told.insert(key).then(|| status::queued(language, update))
            }
            O::AgentJoined(_) => Some(status::agent_joined(language)),
            O::Completed(_) => {
                told.remove(&key);
                Some(status::completed(language))
            }
            O::ScheduledUnixMs(_) => None,
        }
    }
}

impl Courier for MetaCourier {
    fn name(&self) -> &'static str {
        CHANNEL
    }

    fn takes(&self, message: &v1::OutboundMessage) -> bool {
        message.channel == v1::Channel::Social as i32 && platform_of(&message.contact).is_some()
    }

    fn deliver<'a>(&'a self, message: &'a v1::OutboundMessage) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            let Some(platform) = platform_of(&message.contact) else { return Ok(()) };
            let Some(text) = self.text_for(message) else { return Ok(()) };
            let (uri, body) = request(&self.settings, message, platform, &text)?;
            self.send(uri, body).await
        })
    }
}

/// The send API request for a text to the customer of `message`: its URI and JSON body.
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

impl MetaCourier {
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
                Ok(Ok((code, _))) if (200..300).contains(&code) => return Ok(()),
                Ok(Ok((code, answer))) if code == 429 || code >= 500 => {
                    last = Failure::new("platform_unavailable", format!("HTTP {code}: {answer}"));
                }
                Ok(Ok((code, answer))) => {
                    return Err(Failure::new("platform_refused", format!("HTTP {code}: {answer}")));
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
}
