//! The service's configuration: one TOML file plus `VUORO_*` environment overrides, checked as a
//! whole so that every problem is reported at once, and the names of the topics Vuoro uses.
//!
//! Precedence, lowest first: built-in defaults, the file, the environment. Each scalar key has an
//! environment variable (`VUORO_` + the key path upper-cased with `.` → `_`, e.g.
//! `VUORO_KAFKA_PARTITIONS`), and any librdkafka setting can be given as
//! `VUORO_KAFKA_PROPERTY_<NAME>`, `NAME` being the setting upper-cased with `.` → `_`
//! (`VUORO_KAFKA_PROPERTY_SECURITY_PROTOCOL` sets `security.protocol`). Secrets such as
//! `sasl.password` belong in the environment, not in the file; the Meta app secret and verify
//! token of the channel listeners are read from the environment only.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use serde::Deserialize;
use vuoro_adapters::callback::{CallbackConfig, CallbackSettings};
use vuoro_adapters::chat::{ChatConfig, ChatSettings};
use vuoro_adapters::email::{EmailConfig, EmailSettings};
use vuoro_adapters::meta::{MetaConfig, MetaSettings, Secret};

/// Prefix of every environment variable Vuoro reads; any other variable with it is an error
/// (a misspelt override would otherwise be ignored without a word).
pub const ENV_PREFIX: &str = "VUORO_";

/// Prefix of the environment variables that set a librdkafka property.
pub const PROPERTY_ENV_PREFIX: &str = "VUORO_KAFKA_PROPERTY_";

/// Longest topic prefix: with the longest suffix (`dead-letters`) every name stays well under
/// Kafka's limit of 249 characters.
pub const MAX_TOPIC_PREFIX_LEN: usize = 200;

/// Most partitions Vuoro creates per topic.
pub const MAX_PARTITIONS: i32 = 10_000;

/// The service's configuration: where it listens, which Kafka it uses, how it logs and paces
/// itself. Every field has a default, so an empty file (or none) is a valid configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the gRPC API. Default `127.0.0.1:50051`. `VUORO_GRPC_ADDR`.
    pub grpc_addr: SocketAddr,
    /// `host:port` at which the other replicas reach this one's gRPC API; they forward
    /// questions about the routing domains it owns (queue statistics) there. Default: the
    /// address gRPC is bound to. In Kubernetes, the pod's IP and the gRPC port.
    /// `VUORO_ADVERTISE_ADDR`.
    pub advertise_addr: Option<String>,
    /// Address of the admin HTTP port: `/metrics`, `/healthz`, `/readyz`. Default
    /// `127.0.0.1:9464`. `VUORO_ADMIN_ADDR`.
    pub admin_addr: SocketAddr,
    /// The Kafka cluster and its topics.
    pub kafka: KafkaConfig,
    /// Log one JSON object per line instead of human-readable text. Default `false`.
    /// `VUORO_LOG_JSON` (`true`/`false`/`1`/`0`).
    pub log_json: bool,
    /// How often queued contacts get a status update (position, estimated wait), in
    /// milliseconds. Default 5000. `VUORO_STATUS_INTERVAL_MS`.
    pub status_interval_ms: u64,
    /// A routing domain's state is snapshotted after this many decision-log records, bounding
    /// the replay after a restart or a change of owner. Default 10000.
    /// `VUORO_SNAPSHOT_INTERVAL_RECORDS`.
    pub snapshot_interval_records: u64,
    /// On shutdown, how long in-flight work may take to finish before the process exits, in
    /// milliseconds. Default 10000. `VUORO_SHUTDOWN_GRACE_MS`.
    pub shutdown_grace_ms: u64,
    /// The channel listeners (callback requests, Meta webhooks), run by `vuoro serve` and by
    /// `vuoro adapters` when any channel is enabled.
    pub channels: ChannelsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            grpc_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 50051),
            advertise_addr: None,
            admin_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9464),
            kafka: KafkaConfig::default(),
            log_json: false,
            status_interval_ms: 5000,
            snapshot_interval_records: 10_000,
            shutdown_grace_ms: 10_000,
            channels: ChannelsConfig::default(),
        }
    }
}

/// Environment variable holding the Meta app secret (it signs every webhook body).
pub const META_APP_SECRET_ENV: &str = "VUORO_CHANNELS_META_APP_SECRET";
/// Environment variable holding the Meta webhook verify token (the subscription handshake).
pub const META_VERIFY_TOKEN_ENV: &str = "VUORO_CHANNELS_META_VERIFY_TOKEN";
/// Environment variable holding the access token replies are sent with (Meta's send APIs).
pub const META_ACCESS_TOKEN_ENV: &str = "VUORO_CHANNELS_META_ACCESS_TOKEN";
/// Environment variable holding the secret web chat resume tokens are signed with.
pub const CHAT_SECRET_ENV: &str = "VUORO_CHANNELS_CHAT_SECRET";

/// Environment variable holding the user name for the email relay (replies by SMTP).
pub const EMAIL_RELAY_USERNAME_ENV: &str = "VUORO_CHANNELS_EMAIL_RELAY_USERNAME";
/// Environment variable holding the password for the email relay.
pub const EMAIL_RELAY_PASSWORD_ENV: &str = "VUORO_CHANNELS_EMAIL_RELAY_PASSWORD";

/// The channel listeners: one HTTP address shared by the HTTP channels, and each channel's own
/// section (absent: the channel is off), which may give the channel an address of its own.
/// Secrets are never read from the file.
///
/// ```toml
/// [channels]
/// listen_addr = "0.0.0.0:8080"
/// [channels.callback]            # POST /callback
/// enabled = true                 # the default when the section is there
/// listen_addr = "0.0.0.0:8081"   # its own listener; default: channels.listen_addr
/// promise_wait_ms = 2000         # how long the answer waits for the router's estimate
/// [channels.callback.tenants.acme]
/// default_region = "FI"
/// retry_attempts = 3             # call attempts in all
/// retry_spacing_seconds = [600, 1800]
/// promise_tolerance_minutes = 10 # a promise that moves more is told to the customer
/// [channels.meta]                # GET and POST /webhooks/meta
/// [[channels.meta.accounts]]
/// platform = "messenger"
/// id = "1234567890"
/// tenant = "acme"
/// [channels.email]               # SMTP, its own address
/// listen_addr = "0.0.0.0:2525"
/// hostname = "mx.acme.example"
/// [[channels.email.routes]]
/// address = "support@acme.example"
/// tenant = "acme"
/// [channels.email.relay]         # replies go out here
/// host = "smtp-relay.internal"
/// port = 25
/// [channels.chat]                # GET /chat/ws, /chat/, POST /contact-us
/// [channels.chat.tenants.acme]
/// allowed_origins = ["https://www.acme.example"]
/// ```
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelsConfig {
    /// Address of the HTTP listener of every HTTP channel without an address of its own.
    /// Default `127.0.0.1:8080`. `VUORO_CHANNELS_LISTEN_ADDR`.
    pub listen_addr: SocketAddr,
    /// Callback requests (`POST /callback`): `enabled` plus the callback adapter's own keys
    /// (`max_body_bytes`, `tenants`; see the adapters' README).
    pub callback: Option<CallbackChannelConfig>,
    /// Meta's webhooks for Messenger, Instagram and WhatsApp (`GET` and `POST /webhooks/meta`):
    /// `enabled` plus the Meta adapter's own keys (`max_body_bytes`, `accounts`).
    pub meta: Option<MetaChannelConfig>,
    /// Email over SMTP: `enabled`, the listener (`listen_addr`, `hostname`), follow-ups
    /// (`preferred_agent_wait_ms`), the relay replies go out through (`[channels.email.relay]`)
    /// and the email adapter's own keys (`max_message_bytes`, `max_parts`, `max_depth`,
    /// `max_text_bytes`, `routes`).
    pub email: Option<EmailChannelConfig>,
    /// The email relay's user name, from `VUORO_CHANNELS_EMAIL_RELAY_USERNAME` only.
    #[serde(skip)]
    pub email_relay_username: Option<Secret>,
    /// The email relay's password, from `VUORO_CHANNELS_EMAIL_RELAY_PASSWORD` only.
    #[serde(skip)]
    pub email_relay_password: Option<Secret>,
    /// Web chat and the contact form (`GET /chat/ws`, `/chat/`, `POST /contact-us`): `enabled`
    /// plus the chat adapter's own keys (`max_frame_bytes`, `max_text_chars`,
    /// `messages_per_minute`, `form`, `tenants`).
    pub chat: Option<ChatChannelConfig>,
    /// The secret chat resume tokens are signed with, from `VUORO_CHANNELS_CHAT_SECRET` only
    /// (unset: a random one per process).
    #[serde(skip)]
    pub chat_secret: Option<Secret>,
    /// The Meta app secret, from `VUORO_CHANNELS_META_APP_SECRET` only.
    #[serde(skip)]
    pub meta_app_secret: Option<Secret>,
    /// The Meta verify token, from `VUORO_CHANNELS_META_VERIFY_TOKEN` only.
    #[serde(skip)]
    pub meta_verify_token: Option<Secret>,
    /// The access token for Meta's send APIs, from `VUORO_CHANNELS_META_ACCESS_TOKEN` only.
    #[serde(skip)]
    pub meta_access_token: Option<Secret>,
}

impl Default for ChannelsConfig {
    fn default() -> Self {
        ChannelsConfig {
            listen_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
            callback: None,
            meta: None,
            email: None,
            email_relay_username: None,
            email_relay_password: None,
            chat: None,
            chat_secret: None,
            meta_app_secret: None,
            meta_verify_token: None,
            meta_access_token: None,
        }
    }
}

impl ChannelsConfig {
    /// The callback adapter's settings when the channel is enabled.
    pub fn callback_enabled(&self) -> Option<&CallbackConfig> {
        self.callback.as_ref().filter(|c| c.enabled).map(|c| &c.adapter)
    }

    /// The Meta adapter's settings when the channel is enabled.
    pub fn meta_enabled(&self) -> Option<&MetaConfig> {
        self.meta.as_ref().filter(|c| c.enabled).map(|c| &c.adapter)
    }

    /// The email channel's section when it is enabled.
    pub fn email_enabled(&self) -> Option<&EmailChannelConfig> {
        self.email.as_ref().filter(|e| e.enabled)
    }

    /// The chat adapter's settings when the channel is enabled.
    pub fn chat_enabled(&self) -> Option<&ChatConfig> {
        self.chat.as_ref().filter(|c| c.enabled).map(|c| &c.adapter)
    }

    /// Whether any channel is enabled (and so the listener runs).
    pub fn any_enabled(&self) -> bool {
        self.callback_enabled().is_some()
            || self.meta_enabled().is_some()
            || self.email_enabled().is_some()
            || self.chat_enabled().is_some()
    }

    fn validate(&self, config: &Config, errors: &mut Vec<String>) {
        if !self.any_enabled() {
            return;
        }
        let own = [
            (
                "channels.callback.listen_addr",
                self.callback.as_ref().filter(|c| c.enabled).and_then(|c| c.listen_addr),
            ),
            (
                "channels.meta.listen_addr",
                self.meta.as_ref().filter(|c| c.enabled).and_then(|c| c.listen_addr),
            ),
            (
                "channels.chat.listen_addr",
                self.chat.as_ref().filter(|c| c.enabled).and_then(|c| c.listen_addr),
            ),
        ];
        let listeners = std::iter::once(("channels.listen_addr", Some(self.listen_addr))).chain(own);
        for (channel_key, channel_addr) in listeners {
            let Some(channel_addr) = channel_addr else { continue };
            for (key, addr) in [("grpc_addr", config.grpc_addr), ("admin_addr", config.admin_addr)] {
                if addr == channel_addr && addr.port() != 0 {
                    errors.push(format!(
                        "{channel_key} = {addr}: the same address as {key}; the channels need their own"
                    ));
                }
            }
        }
        if let Some(callback) = self.callback_enabled()
            && let Err(error) = CallbackSettings::try_from(callback.clone())
        {
            errors.extend(error.problems.iter().map(|p| format!("channels.callback.{p}")));
        }
        if let Some(chat) = self.chat_enabled()
            && let Err(error) = ChatSettings::try_from(chat.clone())
        {
            errors.extend(error.problems.iter().map(|p| format!("channels.chat.{p}")));
        }
        if let Some(url) = self.meta.as_ref().filter(|m| m.enabled).and_then(|m| m.send_api_url.as_deref()) {
            match url.parse::<hyper::Uri>() {
                Ok(uri) if uri.scheme_str() == Some("http") && uri.authority().is_some() => {}
                Ok(uri) if uri.scheme_str() == Some("https") => errors.push(format!(
                    "channels.meta.send_api_url = {url:?}: this build has no TLS client; give the http:// \
                     address of an egress proxy that speaks TLS to the platform"
                )),
                _ => errors
                    .push(format!("channels.meta.send_api_url = {url:?}: not an http:// URL with a host")),
            }
            if self.meta_access_token.as_ref().is_none_or(Secret::is_empty) {
                errors.push(format!(
                    "channels.meta.send_api_url: replies need an access token; set {META_ACCESS_TOKEN_ENV}"
                ));
            }
        }
        if let Some(email) = self.email_enabled() {
            email.validate(self, config, errors);
        }
        if let Some(meta) = self.meta_enabled() {
            if let Err(error) = MetaSettings::try_from(meta.clone()) {
                errors.extend(error.problems.iter().map(|p| format!("channels.meta.{p}")));
            }
            for (name, secret, env) in [
                ("app secret", &self.meta_app_secret, META_APP_SECRET_ENV),
                ("verify token", &self.meta_verify_token, META_VERIFY_TOKEN_ENV),
            ] {
                if secret.as_ref().is_none_or(Secret::is_empty) {
                    errors.push(format!(
                        "channels.meta: no {name}; set {env} (secrets are read from the environment, \
                         never from the file)"
                    ));
                }
            }
        }
    }
}

/// The callback channel's section: whether it runs, and the adapter's own configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(try_from = "toml::Table")]
pub struct CallbackChannelConfig {
    /// Whether `POST /callback` is served. Default `true`. `VUORO_CHANNELS_CALLBACK_ENABLED`.
    pub enabled: bool,
    /// An HTTP listener of its own; default: `channels.listen_addr`.
    pub listen_addr: Option<SocketAddr>,
    /// The callback adapter's configuration (unknown keys refused).
    pub adapter: CallbackConfig,
}

impl TryFrom<toml::Table> for CallbackChannelConfig {
    type Error = String;

    fn try_from(mut table: toml::Table) -> Result<Self, String> {
        let listen_addr = take_listen_addr(&mut table)?;
        let (enabled, adapter) = split_section(table)?;
        Ok(CallbackChannelConfig { enabled, listen_addr, adapter })
    }
}

/// The chat channel's section: whether it runs, and the adapter's own configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(try_from = "toml::Table")]
pub struct ChatChannelConfig {
    /// Whether web chat and the form are served. Default `true`. `VUORO_CHANNELS_CHAT_ENABLED`.
    pub enabled: bool,
    /// An HTTP listener of its own; default: `channels.listen_addr`.
    pub listen_addr: Option<SocketAddr>,
    /// The chat adapter's configuration (unknown keys refused).
    pub adapter: ChatConfig,
}

impl TryFrom<toml::Table> for ChatChannelConfig {
    type Error = String;

    fn try_from(mut table: toml::Table) -> Result<Self, String> {
        let listen_addr = take_listen_addr(&mut table)?;
        let (enabled, adapter) = split_section(table)?;
        Ok(ChatChannelConfig { enabled, listen_addr, adapter })
    }
}

/// The Meta channel's section: whether it runs, where replies go, and the adapter's own
/// configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(try_from = "toml::Table")]
pub struct MetaChannelConfig {
    /// Whether `/webhooks/meta` is served. Default `true`. `VUORO_CHANNELS_META_ENABLED`.
    pub enabled: bool,
    /// An HTTP listener of its own; default: `channels.listen_addr`.
    pub listen_addr: Option<SocketAddr>,
    /// Base URL of the Graph API, version included (e.g. `http://graph-proxy:8080/v21.0`):
    /// agents' replies to Meta contacts are sent there. Unset: replies are not delivered.
    /// `VUORO_CHANNELS_META_SEND_API_URL`.
    pub send_api_url: Option<String>,
    /// The Meta adapter's configuration (unknown keys refused).
    pub adapter: MetaConfig,
}

impl TryFrom<toml::Table> for MetaChannelConfig {
    type Error = String;

    fn try_from(mut table: toml::Table) -> Result<Self, String> {
        let send_api_url = match table.remove("send_api_url") {
            None => None,
            Some(toml::Value::String(url)) => Some(url),
            Some(other) => return Err(format!("send_api_url: expected a URL, found {other}")),
        };
        let listen_addr = take_listen_addr(&mut table)?;
        let (enabled, adapter) = split_section(table)?;
        Ok(MetaChannelConfig { enabled, listen_addr, send_api_url, adapter })
    }
}

/// A channel's `listen_addr` key, taken out of its section.
fn take_listen_addr(table: &mut toml::Table) -> Result<Option<SocketAddr>, String> {
    match table.remove("listen_addr") {
        None => Ok(None),
        Some(toml::Value::String(addr)) => addr
            .parse()
            .map(Some)
            .map_err(|e| format!("listen_addr = {addr:?}: not a host:port address ({e})")),
        Some(other) => Err(format!("listen_addr: expected \"host:port\", found {other}")),
    }
}

/// The email channel's section: whether it runs, the SMTP listener, the relay replies go out
/// through, and the email adapter's own configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(try_from = "toml::Table")]
pub struct EmailChannelConfig {
    /// Whether the SMTP listener runs. Default `true`. `VUORO_CHANNELS_EMAIL_ENABLED`.
    pub enabled: bool,
    /// Address of the SMTP listener. Default `127.0.0.1:2525`.
    pub listen_addr: SocketAddr,
    /// The name the listener greets with (and the domain of sent Message-IDs). Default
    /// `localhost`.
    pub hostname: String,
    /// How long a follow-up waits for the agent who handled its conversation before others may
    /// take it, in milliseconds; at most 24 hours. Default 60000.
    pub preferred_agent_wait_ms: u64,
    /// The SMTP relay replies and acknowledgements go out through. Unset: nothing is sent.
    pub relay: Option<EmailRelayConfig>,
    /// The email adapter's configuration (unknown keys refused).
    pub adapter: EmailConfig,
}

/// Default address of the SMTP listener.
pub const DEFAULT_EMAIL_LISTEN_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 2525);
/// Default `preferred_agent_wait_ms` of follow-ups.
pub const DEFAULT_PREFERRED_AGENT_WAIT_MS: u64 = 60_000;
/// Longest `preferred_agent_wait_ms` (the router's limit).
pub const MAX_PREFERRED_AGENT_WAIT_MS: u64 = 24 * 3_600_000;

impl TryFrom<toml::Table> for EmailChannelConfig {
    type Error = String;

    fn try_from(mut table: toml::Table) -> Result<Self, String> {
        let listen_addr = match table.remove("listen_addr") {
            None => DEFAULT_EMAIL_LISTEN_ADDR,
            Some(toml::Value::String(addr)) => {
                parse_addr(&addr).map_err(|e| format!("listen_addr: {addr:?}: {e}"))?
            }
            Some(other) => return Err(format!("listen_addr: expected \"host:port\", found {other}")),
        };
        let hostname = match table.remove("hostname") {
            None => "localhost".to_owned(),
            Some(toml::Value::String(name)) => name,
            Some(other) => return Err(format!("hostname: expected a host name, found {other}")),
        };
        let preferred_agent_wait_ms = match table.remove("preferred_agent_wait_ms") {
            None => DEFAULT_PREFERRED_AGENT_WAIT_MS,
            Some(toml::Value::Integer(ms)) if ms >= 0 => ms as u64,
            Some(other) => {
                return Err(format!(
                    "preferred_agent_wait_ms: expected milliseconds (0 or more), found {other}"
                ));
            }
        };
        let relay = match table.remove("relay") {
            None => None,
            Some(value) => {
                Some(value.try_into().map_err(|e: toml::de::Error| format!("relay: {}", e.message()))?)
            }
        };
        let (enabled, adapter) = split_section(table)?;
        Ok(EmailChannelConfig { enabled, listen_addr, hostname, preferred_agent_wait_ms, relay, adapter })
    }
}

impl EmailChannelConfig {
    fn validate(&self, channels: &ChannelsConfig, config: &Config, errors: &mut Vec<String>) {
        if let Err(error) = EmailSettings::try_from(self.adapter.clone()) {
            errors.extend(error.problems.iter().map(|p| format!("channels.email.{p}")));
        }
        let addr = self.listen_addr;
        for (key, other) in [
            ("grpc_addr", config.grpc_addr),
            ("admin_addr", config.admin_addr),
            ("channels.listen_addr", channels.listen_addr),
        ] {
            if addr == other && addr.port() != 0 {
                errors.push(format!("channels.email.listen_addr = {addr}: the same address as {key}"));
            }
        }
        let hostname = self.hostname.trim();
        if hostname.is_empty() || !hostname.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            errors.push(format!(
                "channels.email.hostname = {:?}: not a host name (letters, digits, '-' and '.')",
                self.hostname
            ));
        }
        if self.preferred_agent_wait_ms > MAX_PREFERRED_AGENT_WAIT_MS {
            errors.push(format!(
                "channels.email.preferred_agent_wait_ms = {}: at most {MAX_PREFERRED_AGENT_WAIT_MS} (24 hours)",
                self.preferred_agent_wait_ms
            ));
        }
        if let Some(relay) = &self.relay {
            if relay.host.trim().is_empty() {
                errors.push("channels.email.relay.host: empty".to_owned());
            }
            if relay.port == 0 {
                errors.push("channels.email.relay.port = 0: must be above 0".to_owned());
            }
            if relay.tls != RelayTlsConfig::None {
                errors.push(format!(
                    "channels.email.relay.tls = \"{}\": this build has no TLS client; use \"none\" with a relay \
                     on a trusted network that speaks TLS onwards",
                    relay.tls.as_str()
                ));
            }
            let user = channels.email_relay_username.as_ref().is_some_and(|s| !s.is_empty());
            let password = channels.email_relay_password.as_ref().is_some_and(|s| !s.is_empty());
            if user != password {
                errors.push(format!(
                    "channels.email.relay: set both {EMAIL_RELAY_USERNAME_ENV} and {EMAIL_RELAY_PASSWORD_ENV}, or neither"
                ));
            }
        }
    }
}

/// The SMTP relay email replies go out through.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EmailRelayConfig {
    /// The relay's host name or address.
    pub host: String,
    /// The relay's port. Default 25.
    #[serde(default = "default_relay_port")]
    pub port: u16,
    /// `"none"` (the default), `"starttls"` or `"tls"`; this build sends only without TLS.
    #[serde(default)]
    pub tls: RelayTlsConfig,
}

fn default_relay_port() -> u16 {
    25
}

/// How the connection to the email relay is protected.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RelayTlsConfig {
    /// Plain SMTP.
    #[default]
    None,
    /// Plain SMTP upgraded with STARTTLS.
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
}

impl RelayTlsConfig {
    /// The value as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            RelayTlsConfig::None => "none",
            RelayTlsConfig::Starttls => "starttls",
            RelayTlsConfig::Tls => "tls",
        }
    }
}

/// A channel's section: its `enabled` key (default true) and the rest, read as the adapter's
/// configuration (which refuses unknown keys).
fn split_section<T: serde::de::DeserializeOwned>(mut table: toml::Table) -> Result<(bool, T), String> {
    let enabled = match table.remove("enabled") {
        None => true,
        Some(toml::Value::Boolean(enabled)) => enabled,
        Some(other) => return Err(format!("enabled: expected true or false, found {other}")),
    };
    let adapter = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| {
        // Keep the field's name: the key path the file's problems start with ends at the section.
        let message = e.message();
        message
            .strip_prefix("unknown field ")
            .map_or_else(|| message.to_owned(), |rest| format!("unknown key {rest}"))
    })?;
    Ok((enabled, adapter))
}

/// The Kafka cluster Vuoro uses and the topics it creates there.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port...]`. Unset: Vuoro runs an embedded in-process
    /// cluster, which keeps nothing across restarts. `VUORO_KAFKA_BROKERS`.
    pub brokers: Option<String>,
    /// Prepended to every topic name, so several deployments can share a cluster. Default
    /// `vuoro.`. `VUORO_KAFKA_TOPIC_PREFIX`.
    pub topic_prefix: String,
    /// Partitions of the topics Vuoro creates; routing domains are spread over them, so this
    /// bounds how many replicas share the work. Default 8. `VUORO_KAFKA_PARTITIONS`.
    pub partitions: i32,
    /// Replication factor of the topics Vuoro creates. Default 1.
    /// `VUORO_KAFKA_REPLICATION_FACTOR`.
    pub replication_factor: i32,
    /// Any librdkafka setting, passed through to every client (TLS, SASL, timeouts...). In the
    /// file, `"security.protocol" = "SSL"` and `security.protocol = "SSL"` both work; numbers
    /// and booleans are accepted and passed on as text. `VUORO_KAFKA_PROPERTY_<NAME>`.
    #[serde(deserialize_with = "properties::deserialize")]
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: None,
            topic_prefix: "vuoro.".to_owned(),
            partitions: 8,
            replication_factor: 1,
            properties: BTreeMap::new(),
        }
    }
}

/// Shows the settings with the values of secret-looking properties (passwords, keys, tokens)
/// hidden, so a configuration can be logged.
impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(key, value)| (key.as_str(), if is_secret(key) { "<redacted>" } else { value.as_str() }))
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic_prefix", &self.topic_prefix)
            .field("partitions", &self.partitions)
            .field("replication_factor", &self.replication_factor)
            .field("properties", &properties)
            .finish()
    }
}

fn is_secret(property: &str) -> bool {
    ["password", "secret", "pem", "oauthbearer.config", "token"].iter().any(|s| property.contains(s))
}

impl KafkaConfig {
    /// The full name of a topic: the prefix and the topic's suffix.
    pub fn topic(&self, kind: Topic) -> String {
        format!("{}{}", self.topic_prefix, kind.suffix())
    }
}

/// The topics Vuoro uses. Each is keyed by routing domain, so records of one domain stay in
/// order on one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// New contacts and their cancellations, from the gRPC API and the channel adapters.
    Contacts,
    /// Agent and pool events: log-ins, presence, capacity, accepts, rejects, completions.
    AgentEvents,
    /// Every engine decision, with the input that caused it: one ordered log per routing domain,
    /// the source of truth that replicas replay.
    Decisions,
    /// Snapshots of each routing domain's state, so recovery replays only the log after them;
    /// compacted, keeping the latest per domain.
    Snapshots,
    /// Replies and status messages for the channels (queue position, estimated wait), for the
    /// adapters to deliver.
    Outbound,
    /// Whatever could not be processed, with the reason, so nothing is dropped silently.
    DeadLetters,
    /// Phone callbacks to place now (`DialInstruction`), for the telephony platform.
    DialInstructions,
    /// How each callback attempt ended (`DialOutcome`), from the telephony platform.
    DialOutcomes,
}

impl Topic {
    /// Every topic, in the order above.
    pub const ALL: [Topic; 8] = [
        Topic::Contacts,
        Topic::AgentEvents,
        Topic::Decisions,
        Topic::Snapshots,
        Topic::Outbound,
        Topic::DeadLetters,
        Topic::DialInstructions,
        Topic::DialOutcomes,
    ];

    /// The name after the prefix, e.g. `agent-events`; also the topic's label in metrics.
    pub fn suffix(self) -> &'static str {
        match self {
            Topic::Contacts => "contacts",
            Topic::AgentEvents => "agent-events",
            Topic::Decisions => "decisions",
            Topic::Snapshots => "snapshots",
            Topic::Outbound => "outbound",
            Topic::DeadLetters => "dead-letters",
            Topic::DialInstructions => "dial-instructions",
            Topic::DialOutcomes => "dial-outcomes",
        }
    }
}

/// Every problem found in a configuration, one per entry, each naming the key (or environment
/// variable) at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            f.write_str(problem)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Reads the file at `path` (none: the defaults), applies the `VUORO_*` variables of `env`
    /// and validates the result. Every problem of the file, the environment and validation is
    /// reported together. Variables without the `VUORO_` prefix are ignored.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigErrors> {
        let mut errors = Vec::new();
        let mut config = match path {
            None => Config::default(),
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => from_toml(&text, &path.display().to_string(), &mut errors),
                Err(error) => {
                    errors.push(format!("config file {}: cannot be read: {error}", path.display()));
                    Config::default()
                }
            },
        };
        for (name, value) in env {
            if name.starts_with(ENV_PREFIX)
                && let Err(problem) = config.apply_env(&name, &value)
            {
                errors.push(problem);
            }
        }
        if let Err(ConfigErrors(invalid)) = config.validate() {
            errors.extend(invalid);
        }
        if errors.is_empty() { Ok(config) } else { Err(ConfigErrors(errors)) }
    }

    /// Checks the values together; reports every problem, not just the first.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        for (key, value) in [
            ("status_interval_ms", self.status_interval_ms),
            ("snapshot_interval_records", self.snapshot_interval_records),
            ("shutdown_grace_ms", self.shutdown_grace_ms),
        ] {
            if value == 0 {
                errors.push(format!("{key} = 0: must be greater than 0"));
            }
        }
        if self.grpc_addr == self.admin_addr && self.grpc_addr.port() != 0 {
            errors.push(format!(
                "admin_addr = {}: the same address as grpc_addr; the admin port needs its own",
                self.admin_addr
            ));
        }
        if let Some(addr) = &self.advertise_addr {
            let port = addr.rsplit_once(':').map(|(host, port)| (host, port.parse::<u16>()));
            if !matches!(port, Some((host, Ok(p))) if !host.is_empty() && p > 0) {
                errors.push(format!("advertise_addr = {addr:?}: not a host:port with a port above 0"));
            }
        }
        self.kafka.validate(&mut errors);
        self.channels.validate(self, &mut errors);
        if errors.is_empty() { Ok(()) } else { Err(ConfigErrors(errors)) }
    }

    /// The full name of a topic (see [`KafkaConfig::topic`]).
    pub fn topic(&self, kind: Topic) -> String {
        self.kafka.topic(kind)
    }

    /// Applies one `VUORO_*` variable; the error names the variable and the key it sets.
    fn apply_env(&mut self, name: &str, value: &str) -> Result<(), String> {
        let problem = |key: &str, what: &str| format!("{key}: {name}={value:?}: {what}");
        if let Some(property) = name.strip_prefix(PROPERTY_ENV_PREFIX) {
            if property.is_empty() {
                return Err(format!(
                    "{name}: names no librdkafka property (e.g. {PROPERTY_ENV_PREFIX}CLIENT_ID)"
                ));
            }
            // Values are not echoed: they may be secrets.
            self.kafka.properties.insert(property_name(property), value.to_owned());
            return Ok(());
        }
        match name {
            "VUORO_GRPC_ADDR" => self.grpc_addr = parse_addr(value).map_err(|e| problem("grpc_addr", &e))?,
            "VUORO_ADVERTISE_ADDR" => self.advertise_addr = Some(value.to_owned()),
            "VUORO_ADMIN_ADDR" => {
                self.admin_addr = parse_addr(value).map_err(|e| problem("admin_addr", &e))?
            }
            "VUORO_LOG_JSON" => self.log_json = parse_bool(value).map_err(|e| problem("log_json", &e))?,
            "VUORO_STATUS_INTERVAL_MS" => {
                self.status_interval_ms =
                    parse_number(value).map_err(|e| problem("status_interval_ms", &e))?;
            }
            "VUORO_SNAPSHOT_INTERVAL_RECORDS" => {
                self.snapshot_interval_records =
                    parse_number(value).map_err(|e| problem("snapshot_interval_records", &e))?;
            }
            "VUORO_SHUTDOWN_GRACE_MS" => {
                self.shutdown_grace_ms = parse_number(value).map_err(|e| problem("shutdown_grace_ms", &e))?;
            }
            "VUORO_KAFKA_BROKERS" => self.kafka.brokers = Some(value.to_owned()),
            "VUORO_KAFKA_TOPIC_PREFIX" => self.kafka.topic_prefix = value.to_owned(),
            "VUORO_KAFKA_PARTITIONS" => {
                self.kafka.partitions = parse_number(value).map_err(|e| problem("kafka.partitions", &e))?;
            }
            "VUORO_KAFKA_REPLICATION_FACTOR" => {
                self.kafka.replication_factor =
                    parse_number(value).map_err(|e| problem("kafka.replication_factor", &e))?;
            }
            "VUORO_CHANNELS_LISTEN_ADDR" => {
                self.channels.listen_addr =
                    parse_addr(value).map_err(|e| problem("channels.listen_addr", &e))?;
            }
            "VUORO_CHANNELS_CALLBACK_ENABLED" => {
                let enabled = parse_bool(value).map_err(|e| problem("channels.callback.enabled", &e))?;
                match &mut self.channels.callback {
                    Some(section) => section.enabled = enabled,
                    None if enabled => {
                        return Err(problem(
                            "channels.callback.enabled",
                            "there is no [channels.callback] section",
                        ));
                    }
                    None => {}
                }
            }
            "VUORO_CHANNELS_META_ENABLED" => {
                let enabled = parse_bool(value).map_err(|e| problem("channels.meta.enabled", &e))?;
                match &mut self.channels.meta {
                    Some(section) => section.enabled = enabled,
                    None if enabled => {
                        return Err(problem("channels.meta.enabled", "there is no [channels.meta] section"));
                    }
                    None => {}
                }
            }
            "VUORO_CHANNELS_EMAIL_ENABLED" => {
                let enabled = parse_bool(value).map_err(|e| problem("channels.email.enabled", &e))?;
                match &mut self.channels.email {
                    Some(section) => section.enabled = enabled,
                    None if enabled => {
                        return Err(problem(
                            "channels.email.enabled",
                            "there is no [channels.email] section",
                        ));
                    }
                    None => {}
                }
            }
            "VUORO_CHANNELS_CHAT_ENABLED" => {
                let enabled = parse_bool(value).map_err(|e| problem("channels.chat.enabled", &e))?;
                match &mut self.channels.chat {
                    Some(section) => section.enabled = enabled,
                    None if enabled => {
                        return Err(problem("channels.chat.enabled", "there is no [channels.chat] section"));
                    }
                    None => {}
                }
            }
            EMAIL_RELAY_USERNAME_ENV => self.channels.email_relay_username = Some(Secret::new(value)),
            EMAIL_RELAY_PASSWORD_ENV => self.channels.email_relay_password = Some(Secret::new(value)),
            CHAT_SECRET_ENV => self.channels.chat_secret = Some(Secret::new(value)),
            "VUORO_CHANNELS_META_SEND_API_URL" => match &mut self.channels.meta {
                Some(section) => section.send_api_url = Some(value.to_owned()),
                None => {
                    return Err(problem("channels.meta.send_api_url", "there is no [channels.meta] section"));
                }
            },
            // Values are not echoed: they are secrets.
            META_ACCESS_TOKEN_ENV => self.channels.meta_access_token = Some(Secret::new(value)),
            META_APP_SECRET_ENV => self.channels.meta_app_secret = Some(Secret::new(value)),
            META_VERIFY_TOKEN_ENV => self.channels.meta_verify_token = Some(Secret::new(value)),
            _ => {
                return Err(format!(
                    "{name}: unknown environment variable; Vuoro reads {} and {PROPERTY_ENV_PREFIX}<NAME>",
                    ENV_VARS.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// The environment variables that override a key (besides `VUORO_KAFKA_PROPERTY_<NAME>`).
pub const ENV_VARS: [&str; 23] = [
    "VUORO_GRPC_ADDR",
    "VUORO_ADVERTISE_ADDR",
    "VUORO_ADMIN_ADDR",
    "VUORO_LOG_JSON",
    "VUORO_STATUS_INTERVAL_MS",
    "VUORO_SNAPSHOT_INTERVAL_RECORDS",
    "VUORO_SHUTDOWN_GRACE_MS",
    "VUORO_KAFKA_BROKERS",
    "VUORO_KAFKA_TOPIC_PREFIX",
    "VUORO_KAFKA_PARTITIONS",
    "VUORO_KAFKA_REPLICATION_FACTOR",
    "VUORO_CHANNELS_LISTEN_ADDR",
    "VUORO_CHANNELS_CALLBACK_ENABLED",
    "VUORO_CHANNELS_META_ENABLED",
    "VUORO_CHANNELS_META_SEND_API_URL",
    META_APP_SECRET_ENV,
    META_VERIFY_TOKEN_ENV,
    META_ACCESS_TOKEN_ENV,
    "VUORO_CHANNELS_EMAIL_ENABLED",
    EMAIL_RELAY_USERNAME_ENV,
    EMAIL_RELAY_PASSWORD_ENV,
    "VUORO_CHANNELS_CHAT_ENABLED",
    CHAT_SECRET_ENV,
];

/// Librdkafka settings Vuoro's correctness rests on: a property may restate the value Vuoro uses
/// but not weaken it. Each entry: the key, the values allowed, and why.
const GUARDED_PROPERTIES: [(&str, &[&str], &str); 4] = [
    (
        "enable.idempotence",
        &["true"],
        "producers must be idempotent, or a retried send can duplicate or reorder records of a \
         routing domain's decision log",
    ),
    (
        "acks",
        &["all", "-1"],
        "a record must be on every in-sync replica before Vuoro acts on it, or a broker failure \
         loses decisions already delivered",
    ),
    (
        "enable.auto.commit",
        &["false"],
        "offsets are committed only after the work they stand for is durable; auto-commit would \
         skip inputs after a crash",
    ),
    ("bootstrap.servers", &[], "set kafka.brokers (VUORO_KAFKA_BROKERS) instead"),
];

impl KafkaConfig {
    fn validate(&self, errors: &mut Vec<String>) {
        let prefix = &self.topic_prefix;
        if let Some(bad) =
            prefix.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            errors.push(format!(
                "kafka.topic_prefix = {prefix:?}: {bad:?} is not allowed; Kafka topic names take only \
                 A-Z, a-z, 0-9, '.', '_' and '-'"
            ));
        }
        if prefix.chars().count() > MAX_TOPIC_PREFIX_LEN {
            errors.push(format!(
                "kafka.topic_prefix: {} characters, at most {MAX_TOPIC_PREFIX_LEN} (Kafka topic names end at 249)",
                prefix.chars().count()
            ));
        }
        if !(1..=MAX_PARTITIONS).contains(&self.partitions) {
            errors.push(format!(
                "kafka.partitions = {}: must be between 1 and {MAX_PARTITIONS}",
                self.partitions
            ));
        }
        if self.replication_factor < 1 {
            errors
                .push(format!("kafka.replication_factor = {}: must be at least 1", self.replication_factor));
        }
        if let Some(brokers) = &self.brokers {
            if brokers.trim().is_empty() {
                errors.push(
                    "kafka.brokers = \"\": empty; leave it unset to run the embedded cluster".to_owned(),
                );
            } else {
                for broker in brokers.split(',').map(str::trim) {
                    if let Err(why) = check_broker(broker) {
                        errors.push(format!("kafka.brokers = {brokers:?}: {broker:?} {why}"));
                    }
                }
            }
        }
        for (key, allowed, why) in GUARDED_PROPERTIES {
            if let Some(value) = self.properties.get(key)
                && !allowed.iter().any(|a| a.eq_ignore_ascii_case(value.trim()))
            {
                let shown = if allowed.is_empty() { String::new() } else { format!(" = {value:?}") };
                errors.push(format!("kafka.properties.{key}{shown}: may not be overridden: {why}"));
            }
        }
        for key in self.properties.keys() {
            if key.is_empty() || key.chars().any(char::is_whitespace) {
                errors.push(format!("kafka.properties: {key:?} is not a librdkafka property name"));
            }
        }
    }
}

/// `host:port` with a non-empty host (a name, an IPv4 address or a bracketed IPv6 address) and a
/// port from 1 to 65535.
fn check_broker(broker: &str) -> Result<(), &'static str> {
    let Some((host, port)) = broker.rsplit_once(':') else {
        return Err("is not host:port");
    };
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Err("has no host");
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err("is not host:port (write IPv6 addresses in brackets: [::1]:9092)");
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err("has no valid port (1-65535)"),
        Ok(_) => Ok(()),
    }
}

/// `SECURITY_PROTOCOL` → `security.protocol`.
fn property_name(env_suffix: &str) -> String {
    env_suffix.to_ascii_lowercase().replace('_', ".")
}

fn parse_addr(value: &str) -> Result<SocketAddr, String> {
    value
        .trim()
        .parse()
        .map_err(|_| "not an IP address with a port, e.g. 127.0.0.1:50051 or [::]:50051".to_owned())
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err("expected true, false, 1 or 0".to_owned()),
    }
}

fn parse_number<T: std::str::FromStr>(value: &str) -> Result<T, String>
where
    T::Err: fmt::Display,
{
    value.trim().parse().map_err(|e| format!("not a valid number: {e}"))
}

/// Parses the file, checking each key on its own so that every bad key is reported, and builds
/// the configuration from the keys that were good (so validation still sees them).
fn from_toml(text: &str, file: &str, errors: &mut Vec<String>) -> Config {
    let table: toml::Table = match toml::from_str(text) {
        Ok(table) => table,
        Err(error) => {
            let position = error.span().map(|span| line_column(text, span.start)).unwrap_or_default();
            errors.push(format!("config file {file}: not valid TOML{position}: {}", error.message()));
            return Config::default();
        }
    };
    let mut good = toml::Table::new();
    for (key, value) in table {
        match value {
            toml::Value::Table(mut section) if key == "kafka" || key == "channels" => {
                if key == "channels" {
                    refuse_secrets_in_file(&mut section, file, errors);
                }
                let mut good_kafka = toml::Table::new();
                for (kafka_key, kafka_value) in section {
                    let single = toml::Table::from_iter([(kafka_key.clone(), kafka_value.clone())]);
                    let single = toml::Table::from_iter([(key.clone(), toml::Value::Table(single))]);
                    match single.try_into::<Config>() {
                        Ok(_) => {
                            good_kafka.insert(kafka_key, kafka_value);
                        }
                        Err(error) => errors.push(file_problem(&format!("{key}.{kafka_key}"), &error, file)),
                    }
                }
                good.insert(key, toml::Value::Table(good_kafka));
            }
            value => {
                let single = toml::Table::from_iter([(key.clone(), value.clone())]);
                match single.try_into::<Config>() {
                    Ok(_) => {
                        good.insert(key, value);
                    }
                    Err(error) => errors.push(file_problem(&key, &error, file)),
                }
            }
        }
    }
    good.try_into().unwrap_or_else(|error: toml::de::Error| {
        // Unreachable in practice: every key passed on its own.
        errors.push(format!("config file {file}: {}", error.message()));
        Config::default()
    })
}

/// Takes the Meta secrets and the chat secret out of the file's `[channels.*]` sections, each with a problem that says
/// where they belong: a secret in a config file ends up in version control and config maps.
fn refuse_secrets_in_file(channels: &mut toml::Table, file: &str, errors: &mut Vec<String>) {
    if let Some(toml::Value::Table(email)) = channels.get_mut("email")
        && let Some(toml::Value::Table(relay)) = email.get_mut("relay")
    {
        for (key, env) in [("username", EMAIL_RELAY_USERNAME_ENV), ("password", EMAIL_RELAY_PASSWORD_ENV)] {
            if relay.remove(key).is_some() {
                errors.push(format!(
                    "channels.email.relay.{key}: secrets are not read from the config file; set {env} in the \
                     environment (config file {file})"
                ));
            }
        }
    }
    if let Some(toml::Value::Table(chat)) = channels.get_mut("chat")
        && chat.remove("secret").is_some()
    {
        errors.push(format!(
            "channels.chat.secret: secrets are not read from the config file; set {CHAT_SECRET_ENV} in the \
             environment (config file {file})"
        ));
    }
    let Some(toml::Value::Table(meta)) = channels.get_mut("meta") else { return };
    for (key, env) in [
        ("app_secret", META_APP_SECRET_ENV),
        ("verify_token", META_VERIFY_TOKEN_ENV),
        ("access_token", META_ACCESS_TOKEN_ENV),
    ] {
        if meta.remove(key).is_some() {
            errors.push(format!(
                "channels.meta.{key}: secrets are not read from the config file; set {env} in the \
                 environment (config file {file})"
            ));
        }
    }
}

fn file_problem(key: &str, error: &toml::de::Error, file: &str) -> String {
    let message = error.message();
    let message = match message.strip_prefix("unknown field ").and_then(|rest| rest.split_once(", ")) {
        Some((_, expected)) => format!("unknown key ({expected})"),
        None => message.to_owned(),
    };
    format!("{key}: {message} (config file {file})")
}

/// ` at line L, column C` for a byte offset of `text`.
fn line_column(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!(" at line {line}, column {column}")
}

/// Deserializes `kafka.properties`: dotted keys written as nested tables are flattened, and
/// numbers and booleans become text, since librdkafka takes every setting as a string.
mod properties {
    use std::collections::BTreeMap;
    use std::fmt;

    use serde::Deserialize as _;
    use serde::de::{self, Deserializer, MapAccess, Visitor};

    /// One value in the properties table: a setting or a further level of a dotted key.
    enum Node {
        Value(String),
        Table(Vec<(String, Node)>),
    }

    impl<'de> de::Deserialize<'de> for Node {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
            deserializer.deserialize_any(NodeVisitor)
        }
    }

    struct NodeVisitor;

    impl<'de> Visitor<'de> for NodeVisitor {
        type Value = Node;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a librdkafka setting: a string, number or boolean")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
            Ok(Node::Value(v.to_owned()))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
            Ok(Node::Value(v.to_string()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
            Ok(Node::Value(v.to_string()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
            Ok(Node::Value(v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
            Ok(Node::Value(v.to_string()))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
            let mut entries = Vec::new();
            while let Some(entry) = map.next_entry::<String, Node>()? {
                entries.push(entry);
            }
            Ok(Node::Table(entries))
        }
    }

    /// The flattened map.
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<String, String>, D::Error> {
        let Node::Table(entries) = Node::deserialize(deserializer)? else {
            return Err(de::Error::custom("expected a table of librdkafka settings"));
        };
        let mut out = BTreeMap::new();
        flatten(String::new(), entries, &mut out);
        Ok(out)
    }

    fn flatten(prefix: String, entries: Vec<(String, Node)>, out: &mut BTreeMap<String, String>) {
        for (key, node) in entries {
            let key = if prefix.is_empty() { key } else { format!("{prefix}.{key}") };
            match node {
                Node::Value(value) => {
                    out.insert(key, value);
                }
                Node::Table(entries) => flatten(key, entries, out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// Loads `text` as if from a file, with `vars` as the environment.
    fn load_text(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        let path = std::env::temp_dir().join(format!(
            "vuoro-config-test-{}-{:?}.toml",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, text).unwrap();
        let result = Config::load(Some(&path), env(vars));
        std::fs::remove_file(&path).unwrap();
        result
    }

    #[test]
    fn defaults() {
        let config = Config::load(None, Vec::new()).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.grpc_addr, "127.0.0.1:50051".parse().unwrap());
        assert_eq!(config.admin_addr, "127.0.0.1:9464".parse().unwrap());
        assert!(!config.log_json);
        assert_eq!(config.status_interval_ms, 5000);
        assert_eq!(config.snapshot_interval_records, 10_000);
        assert_eq!(config.shutdown_grace_ms, 10_000);
        assert_eq!(config.kafka.brokers, None);
        assert_eq!(config.kafka.topic_prefix, "vuoro.");
        assert_eq!(config.kafka.partitions, 8);
        assert_eq!(config.kafka.replication_factor, 1);
        assert!(config.kafka.properties.is_empty());
        // An empty file is the defaults too; variables without the prefix are ignored.
        assert_eq!(load_text("", &[("PATH", "/bin"), ("VUOROX", "1")]).unwrap(), Config::default());
    }

    #[test]
    fn file_then_environment() {
        let text = r#"
            grpc_addr = "0.0.0.0:6000"
            status_interval_ms = 250
            log_json = true

            [kafka]
            brokers = "k1:9092,k2:9092"
            topic_prefix = "from-file."
            partitions = 16

            [kafka.properties]
            "client.id" = "file"
            socket.timeout.ms = 30000
        "#;
        let config = load_text(
            text,
            &[
                ("VUORO_GRPC_ADDR", "10.0.0.1:7000"),
                ("VUORO_KAFKA_PARTITIONS", "32"),
                ("VUORO_LOG_JSON", "false"),
                ("VUORO_KAFKA_PROPERTY_CLIENT_ID", "env"),
            ],
        )
        .unwrap();
        // The environment wins over the file ...
        assert_eq!(config.grpc_addr, "10.0.0.1:7000".parse().unwrap());
        assert_eq!(config.kafka.partitions, 32);
        assert!(!config.log_json);
        assert_eq!(config.kafka.properties["client.id"], "env");
        // ... the file over the defaults ...
        assert_eq!(config.status_interval_ms, 250);
        assert_eq!(config.kafka.brokers.as_deref(), Some("k1:9092,k2:9092"));
        assert_eq!(config.kafka.topic_prefix, "from-file.");
        assert_eq!(config.kafka.properties["socket.timeout.ms"], "30000");
        // ... and what neither sets keeps its default.
        assert_eq!(config.admin_addr, Config::default().admin_addr);
        assert_eq!(config.kafka.replication_factor, 1);
        assert_eq!(config.topic(Topic::Decisions), "from-file.decisions");
    }

    #[test]
    fn every_problem_reported_together() {
        let text = r#"
            grpc_addr = "not an address"
            status_interval_ms = 0
            [kafka]
            partitions = "many"
            topic_prefix = "bad prefix!"
            brokers = "k1:9092,nohost,k3:0"
            properties = { acks = "1", "enable.idempotence" = false }
        "#;
        let errors =
            load_text(text, &[("VUORO_ADMIN_ADDR", "nowhere"), ("VUORO_KAFKA_REPLICATION_FACTOR", "0")])
                .unwrap_err();
        let all = errors.to_string();
        assert_eq!(all.lines().count(), errors.0.len(), "one problem per line:\n{all}");
        for key in [
            "grpc_addr:",
            "kafka.partitions:",
            "admin_addr: VUORO_ADMIN_ADDR=\"nowhere\"",
            "status_interval_ms = 0",
            "kafka.topic_prefix = \"bad prefix!\"",
            "\"nohost\" is not host:port",
            "\"k3:0\" has no valid port",
            "kafka.replication_factor = 0",
            "kafka.properties.acks = \"1\": may not be overridden: a record must be on every in-sync replica",
            "kafka.properties.enable.idempotence = \"false\": may not be overridden: producers must be idempotent",
        ] {
            assert!(all.contains(key), "missing {key:?} in:\n{all}");
        }
        assert_eq!(errors.0.len(), 10, "{all}");
        // The file's bad keys name the file.
        assert!(errors.0[0].contains("(config file "), "{all}");
    }

    #[test]
    fn validate_reports_each_problem() {
        let mut config = Config::default();
        assert_eq!(config.validate(), Ok(()));
        config.admin_addr = config.grpc_addr;
        config.shutdown_grace_ms = 0;
        config.kafka.brokers = Some(" ".into());
        config.kafka.partitions = 10_001;
        config.kafka.topic_prefix = "p".repeat(201);
        config.kafka.properties.insert("bootstrap.servers".into(), "elsewhere:9092".into());
        config.kafka.properties.insert("acks".into(), "all".into());
        let errors = config.validate().unwrap_err();
        assert_eq!(errors.0.len(), 6, "{errors}");
        let all = errors.to_string();
        for key in [
            "admin_addr = 127.0.0.1:50051: the same address as grpc_addr",
            "shutdown_grace_ms = 0",
            "kafka.brokers = \"\": empty",
            "kafka.partitions = 10001: must be between 1 and 10000",
            "kafka.topic_prefix: 201 characters",
            "kafka.properties.bootstrap.servers: may not be overridden: set kafka.brokers",
        ] {
            assert!(all.contains(key), "missing {key:?} in:\n{all}");
        }
        // Strong values restated, IPv6 and several brokers are fine.
        let mut config = Config::default();
        config.kafka.brokers = Some("[::1]:9092, kafka-0.kafka:9093".into());
        config.kafka.properties.insert("acks".into(), "-1".into());
        config.kafka.properties.insert("enable.idempotence".into(), "TRUE".into());
        config.kafka.topic_prefix = "Prod_eu-1.".into();
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let errors = load_text("grpc_adr = \"127.0.0.1:1\"\n[kafka]\nbrokerz = \"k:1\"\n", &[]).unwrap_err();
        assert_eq!(errors.0.len(), 2, "{errors}");
        assert!(errors.0[0].starts_with("grpc_adr: unknown key (expected one of "), "{errors}");
        assert!(errors.0[0].contains("`grpc_addr`"), "{errors}");
        assert!(errors.0[1].starts_with("kafka.brokerz: unknown key"), "{errors}");

        let errors = Config::load(None, env(&[("VUORO_GRPC_ADRR", "127.0.0.1:1")])).unwrap_err();
        assert_eq!(errors.0.len(), 1);
        assert!(errors.0[0].starts_with("VUORO_GRPC_ADRR: unknown environment variable"), "{errors}");
    }

    #[test]
    fn syntax_errors_and_missing_files() {
        let errors = load_text("grpc_addr = \n", &[("VUORO_KAFKA_PARTITIONS", "0")]).unwrap_err();
        assert_eq!(errors.0.len(), 2, "{errors}");
        assert!(errors.0[0].contains("not valid TOML at line 1"), "{errors}");
        assert!(errors.0[1].starts_with("kafka.partitions = 0"), "{errors}");

        let missing = std::env::temp_dir().join("vuoro-config-test-does-not-exist.toml");
        let errors = Config::load(Some(&missing), Vec::new()).unwrap_err();
        assert!(errors.0[0].contains("cannot be read"), "{errors}");
    }

    #[test]
    fn property_environment_mapping() {
        let config = Config::load(
            None,
            env(&[
                ("VUORO_KAFKA_PROPERTY_SECURITY_PROTOCOL", "SASL_SSL"),
                ("VUORO_KAFKA_PROPERTY_SASL_PASSWORD", "hunter2"),
                ("VUORO_KAFKA_PROPERTY_LINGER_MS", "5"),
                ("VUORO_KAFKA_BROKERS", "kafka:9092"),
            ]),
        )
        .unwrap();
        let properties: Vec<(&str, &str)> =
            config.kafka.properties.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            properties,
            [("linger.ms", "5"), ("sasl.password", "hunter2"), ("security.protocol", "SASL_SSL")]
        );
        // Secrets stay out of logs.
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("<redacted>") && shown.contains("SASL_SSL"),
            "{shown}"
        );

        let errors =
            Config::load(None, env(&[("VUORO_KAFKA_PROPERTY_", "x"), ("VUORO_KAFKA_PROPERTY_ACKS", "0")]))
                .unwrap_err();
        assert_eq!(errors.0.len(), 2, "{errors}");
        assert!(errors.0[0].starts_with("VUORO_KAFKA_PROPERTY_: names no librdkafka property"), "{errors}");
        assert!(errors.0[1].starts_with("kafka.properties.acks = \"0\""), "{errors}");
    }

    const CHANNELS: &str = r#"
        [channels]
        listen_addr = "0.0.0.0:8080"
        [channels.callback]
        max_body_bytes = 4096
        [channels.callback.tenants.acme]
        default_region = "FI"
        required_skills = [{ skill = "voice" }]
        [channels.meta]
        enabled = false
        [[channels.meta.accounts]]
        platform = "messenger"
        id = "1234"
        tenant = "acme"
    "#;

    #[test]
    fn the_callback_retry_policy_and_promise_keys_are_read_and_checked() {
        let file = r#"
            [channels.callback]
            promise_wait_ms = 1500
            [channels.callback.tenants.acme]
            default_region = "FI"
            retry_attempts = 4
            retry_spacing_seconds = [30, 90]
            promise_tolerance_minutes = 5
        "#;
        let config = load_text(file, &[]).unwrap();
        let settings =
            CallbackSettings::try_from(config.channels.callback_enabled().unwrap().clone()).unwrap();
        assert_eq!(settings.promise_wait_ms, 1500);
        let acme = &settings.tenants["acme"];
        assert_eq!((acme.retry.attempts, acme.retry.next_after(3)), (4, Some(90_000)));
        assert_eq!(acme.promise_tolerance_ms, 300_000);

        let bad = file.replace("retry_attempts = 4", "retry_attempts = 11").replace("1500", "60000");
        let errors = load_text(&bad, &[]).unwrap_err();
        let all = errors.to_string();
        assert!(all.contains("channels.callback.promise_wait_ms: 60000, must be 0–30000"), "{all}");
        assert!(all.contains("channels.callback.tenants.acme.retry_attempts: 11, must be 1–10"), "{all}");
    }

    #[test]
    fn channels_from_the_file_and_secrets_from_the_environment() {
        let config = load_text(CHANNELS, &[]).unwrap();
        let channels = &config.channels;
        assert_eq!(channels.listen_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(channels.callback_enabled().map(|c| c.max_body_bytes), Some(4096));
        assert!(channels.meta_enabled().is_none(), "enabled = false in the file");
        assert!(channels.any_enabled());
        assert_eq!(Config::default().channels.listen_addr, "127.0.0.1:8080".parse().unwrap());
        assert!(!Config::default().channels.any_enabled());

        let config = load_text(
            CHANNELS,
            &[
                ("VUORO_CHANNELS_META_ENABLED", "true"),
                ("VUORO_CHANNELS_CALLBACK_ENABLED", "0"),
                ("VUORO_CHANNELS_LISTEN_ADDR", "127.0.0.1:9000"),
                ("VUORO_CHANNELS_META_APP_SECRET", "app-secret-value"),
                ("VUORO_CHANNELS_META_VERIFY_TOKEN", "verify-token-value"),
                ("VUORO_CHANNELS_META_SEND_API_URL", "http://graph-proxy:8080/v21.0"),
                ("VUORO_CHANNELS_META_ACCESS_TOKEN", "access-token-value"),
            ],
        )
        .unwrap();
        let channels = &config.channels;
        assert_eq!(channels.listen_addr, "127.0.0.1:9000".parse().unwrap());
        assert!(channels.callback_enabled().is_none());
        assert_eq!(channels.meta_enabled().map(|m| m.accounts.len()), Some(1));
        assert_eq!(channels.meta_app_secret, Some(Secret::new("app-secret-value")));
        assert_eq!(channels.meta_verify_token, Some(Secret::new("verify-token-value")));
        assert_eq!(channels.meta_access_token, Some(Secret::new("access-token-value")));
        let send_api_url = channels.meta.as_ref().and_then(|m| m.send_api_url.as_deref());
        assert_eq!(send_api_url, Some("http://graph-proxy:8080/v21.0"));
        let shown = format!("{config:?}");
        for secret in ["app-secret-value", "verify-token-value", "access-token-value"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn a_channel_may_have_its_own_address_which_must_be_one() {
        let text = r#"
            [channels.callback]
            listen_addr = "0.0.0.0:8081"
            [channels.callback.tenants.acme]
            default_region = "FI"
        "#;
        let config = load_text(text, &[]).unwrap();
        let callback = config.channels.callback.as_ref().unwrap();
        assert_eq!(callback.listen_addr, Some("0.0.0.0:8081".parse().unwrap()));
        let errors = load_text(&text.replace("0.0.0.0:8081", "port 8081"), &[]).unwrap_err().to_string();
        assert!(errors.contains("listen_addr = \"port 8081\": not a host:port address"), "{errors}");
        let clash = text.replace("0.0.0.0:8081", "127.0.0.1:9090");
        let errors =
            load_text(&format!("admin_addr = \"127.0.0.1:9090\"\n{clash}"), &[]).unwrap_err().to_string();
        assert!(
            errors.contains("channels.callback.listen_addr = 127.0.0.1:9090: the same address as admin_addr"),
            "{errors}"
        );
    }

    #[test]
    fn email_from_the_file_relay_secrets_from_the_environment_and_every_problem_named() {
        let text = r#"
            [channels.email]
            listen_addr = "0.0.0.0:2525"
            hostname = "mx.acme.example"
            preferred_agent_wait_ms = 120000
            max_message_bytes = 1048576
            [[channels.email.routes]]
            address = "support@acme.example"
            tenant = "acme"
            queue = "email"
            [channels.email.relay]
            host = "relay.internal"
            port = 2526
        "#;
        let config = load_text(
            text,
            &[
                ("VUORO_CHANNELS_EMAIL_RELAY_USERNAME", "relay-user"),
                ("VUORO_CHANNELS_EMAIL_RELAY_PASSWORD", "relay-password-value"),
            ],
        )
        .unwrap();
        let email = config.channels.email_enabled().expect("enabled by its section");
        assert_eq!(email.listen_addr, "0.0.0.0:2525".parse().unwrap());
        assert_eq!(email.hostname, "mx.acme.example");
        assert_eq!(email.preferred_agent_wait_ms, 120_000);
        assert_eq!(email.adapter.max_message_bytes, 1_048_576);
        let relay = email.relay.as_ref().unwrap();
        assert_eq!(
            (relay.host.as_str(), relay.port, relay.tls),
            ("relay.internal", 2526, RelayTlsConfig::None)
        );
        assert_eq!(config.channels.email_relay_password, Some(Secret::new("relay-password-value")));
        assert!(!format!("{config:?}").contains("relay-password-value"));
        let off = load_text(text, &[("VUORO_CHANNELS_EMAIL_ENABLED", "false")]).unwrap();
        assert!(off.channels.email_enabled().is_none() && !off.channels.any_enabled());

        let bad = r#"
            grpc_addr = "127.0.0.1:2525"
            [channels.email]
            listen_addr = "127.0.0.1:2525"
            hostname = "mx acme"
            preferred_agent_wait_ms = 90000000
            max_parts = 0
            routes = []
            [channels.email.relay]
            host = "relay.internal"
            tls = "starttls"
            password = "in the file"
        "#;
        let all = load_text(bad, &[]).unwrap_err().to_string();
        for problem in [
            "channels.email.relay.password: secrets are not read from the config file; set VUORO_CHANNELS_EMAIL_RELAY_PASSWORD",
            "channels.email.max_parts: must be above 0",
            "channels.email.routes: none configured",
            "channels.email.listen_addr = 127.0.0.1:2525: the same address as grpc_addr",
            "channels.email.hostname = \"mx acme\": not a host name",
            "channels.email.preferred_agent_wait_ms = 90000000: at most 86400000",
            "channels.email.relay.tls = \"starttls\": this build has no TLS client",
        ] {
            assert!(all.contains(problem), "missing {problem:?} in:\n{all}");
        }
        let unknown = load_text("[channels.email]\nlisten = 1\nroutes = []", &[]).unwrap_err().to_string();
        assert!(unknown.contains("channels.email: unknown key `listen`"), "{unknown}");
    }

    #[test]
    fn the_chat_channel_from_the_file_its_secret_from_the_environment_only() {
        let text = r#"
            [channels.chat]
            messages_per_minute = 20
            [channels.chat.tenants.acme]
            allowed_origins = ["https://www.acme.example"]
            required_skills = [{ skill = "chat" }]
        "#;
        let config = load_text(text, &[(CHAT_SECRET_ENV, "chat-secret-value")]).unwrap();
        assert_eq!(config.channels.chat_enabled().map(|c| c.messages_per_minute), Some(20));
        assert!(config.channels.any_enabled());
        assert_eq!(config.channels.chat_secret, Some(Secret::new("chat-secret-value")));
        assert!(!format!("{config:?}").contains("chat-secret-value"));
        let off = load_text(text, &[("VUORO_CHANNELS_CHAT_ENABLED", "false")]).unwrap();
        assert!(off.channels.chat_enabled().is_none());

        let errors = load_text(
            "[channels.chat]\nsecret = \"in the file\"\nmax_text_chars = 0\n[channels.chat.tenants.acme]\nallowed_origins = [\"acme.example\"]\n",
            &[],
        )
        .unwrap_err();
        let all = errors.to_string();
        for key in [
            "channels.chat.secret: secrets are not read from the config file; set VUORO_CHANNELS_CHAT_SECRET",
            "channels.chat.max_text_chars: 0, must be 1–4096",
            "channels.chat.tenants.acme.allowed_origins[0]: \"acme.example\" is not an origin",
        ] {
            assert!(all.contains(key), "missing {key:?} in:\n{all}");
        }
        assert!(!all.contains("in the file"), "{all}");
        let errors = load_text("", &[("VUORO_CHANNELS_CHAT_ENABLED", "true")]).unwrap_err();
        assert!(errors.to_string().contains("there is no [channels.chat] section"), "{errors}");
    }

    #[test]
    fn every_channel_problem_reported_together() {
        let text = r#"
            grpc_addr = "127.0.0.1:8080"
            [channels]
            listen_addr = "127.0.0.1:8080"
            [channels.callback]
            max_body_bytes = 0
            [channels.callback.tenants.acme]
            default_region = "XX"
            [channels.meta]
            app_secret = "in the file"
            accounts = []
        "#;
        let errors = load_text(text, &[]).unwrap_err();
        let all = errors.to_string();
        for key in [
            "channels.meta.app_secret: secrets are not read from the config file; set VUORO_CHANNELS_META_APP_SECRET",
            "channels.listen_addr = 127.0.0.1:8080: the same address as grpc_addr",
            "channels.callback.max_body_bytes: must be above 0",
            "channels.callback.tenants.acme.default_region: \"XX\" is not a region",
            "channels.meta.accounts: none configured",
            "channels.meta: no app secret; set VUORO_CHANNELS_META_APP_SECRET",
            "channels.meta: no verify token; set VUORO_CHANNELS_META_VERIFY_TOKEN",
        ] {
            assert!(all.contains(key), "missing {key:?} in:\n{all}");
        }
        assert_eq!(errors.0.len(), 7, "{all}");
        assert!(!all.contains("in the file"), "the secret's value is not echoed:\n{all}");

        let replies = r#"
            [channels.meta]
            send_api_url = "https://graph.example/v21.0"
            access_token = "in the file"
            [[channels.meta.accounts]]
            platform = "whatsapp"
            id = "1"
            tenant = "acme"
        "#;
        let errors = load_text(
            replies,
            &[("VUORO_CHANNELS_META_APP_SECRET", "s"), ("VUORO_CHANNELS_META_VERIFY_TOKEN", "t")],
        )
        .unwrap_err();
        let all = errors.to_string();
        for key in [
            "channels.meta.access_token: secrets are not read from the config file; set VUORO_CHANNELS_META_ACCESS_TOKEN",
            "channels.meta.send_api_url = \"https://graph.example/v21.0\": this build has no TLS client",
            "channels.meta.send_api_url: replies need an access token; set VUORO_CHANNELS_META_ACCESS_TOKEN",
        ] {
            assert!(all.contains(key), "missing {key:?} in:\n{all}");
        }
        assert_eq!(errors.0.len(), 3, "{all}");

        let errors = load_text(
            "[channels.callback]\nenabled = \"yes\"\n[channels.meta]\nacounts = []\n",
            &[("VUORO_CHANNELS_CALLBACK_ENABLED", "true")],
        )
        .unwrap_err();
        let all = errors.to_string();
        for key in [
            "channels.callback: enabled: expected true or false",
            "channels.meta: unknown key `acounts`, expected",
            "channels.callback.enabled: VUORO_CHANNELS_CALLBACK_ENABLED=\"true\": there is no [channels.callback] section",
        ] {
            assert!(all.contains(key), "missing {key:?} in:\n{all}");
        }
        assert_eq!(errors.0.len(), 3, "{all}");
    }

    #[test]
    fn topic_names() {
        let config = Config::default();
        let names: Vec<String> = Topic::ALL.iter().map(|&t| config.topic(t)).collect();
        assert_eq!(
            names,
            [
                "vuoro.contacts",
                "vuoro.agent-events",
                "vuoro.decisions",
                "vuoro.snapshots",
                "vuoro.outbound",
                "vuoro.dead-letters",
                "vuoro.dial-instructions",
                "vuoro.dial-outcomes"
            ]
        );
    }
}
