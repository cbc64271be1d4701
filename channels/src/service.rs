//! Running the channels: from the router's configuration to a started listener, inside
//! `vuoro serve` ([`ChannelsExtension`]) or on its own as `vuoro adapters` ([`run`]), a
//! separate process that scales apart from the router and shares only Kafka with it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use vuoro_adapters::callback::CallbackSettings;
use vuoro_adapters::chat::ChatSettings;
use vuoro_adapters::meta::{MetaSettings, Secret};
use vuoro_proto::v1;
use vuoro_service::admin_http::{self, Health};
use vuoro_service::config::{ChannelsConfig, Config};
use vuoro_service::kafka::Cluster;
use vuoro_service::serve::{BoxFuture, Extension, RunningExtension};

use crate::callback_courier::CallbackCourier;
use crate::dial_outcomes::DialOutcomes;
use crate::email::{Conversations, EmailCourier, EmailEndpoint, RelaySettings, RelayTls, SmtpListener};
use crate::feed::Feed;
use crate::listener::{ChatEndpoint, Endpoints, Listener, MetaEndpoint};
use crate::meta_courier::{DeliverySettings, MetaCourier};
use crate::outbound::{Courier, Delivery};
use crate::publish::Publisher;

/// The channels whose outbound messages every process follows ([`Feed`]).
const FEED_CHANNELS: &[v1::Channel] = &[v1::Channel::Voice, v1::Channel::Email, v1::Channel::Chat];
/// How far back the feed reads at start, to catch up on conversations still going.
const FEED_LOOKBACK: Duration = Duration::from_secs(3600);

/// The name under which the listener's address is reported ([`vuoro_service::serve::Server`]'s
/// `extension_addrs`).
pub const NAME: &str = "channels";

impl TryFrom<&ChannelsConfig> for Endpoints {
    type Error = anyhow::Error;

    /// The validated settings of every enabled channel; every problem at once.
    fn try_from(config: &ChannelsConfig) -> anyhow::Result<Endpoints> {
        let mut problems = Vec::new();
        let callback = match config.callback_enabled().map(|c| CallbackSettings::try_from(c.clone())) {
            Some(Ok(settings)) => Some(settings),
            Some(Err(error)) => {
                problems.extend(error.problems.into_iter().map(|p| format!("channels.callback.{p}")));
                None
            }
            None => None,
        };
        let meta = match config.meta_enabled().map(|m| MetaSettings::try_from(m.clone())) {
            Some(Ok(settings)) => match (&config.meta_app_secret, &config.meta_verify_token) {
                (Some(app_secret), Some(verify_token)) => Some(MetaEndpoint {
                    settings,
                    app_secret: app_secret.clone(),
                    verify_token: verify_token.clone(),
                }),
                _ => {
                    problems
                        .push("channels.meta: the app secret and the verify token are required".to_owned());
                    None
                }
            },
            Some(Err(error)) => {
                problems.extend(error.problems.into_iter().map(|p| format!("channels.meta.{p}")));
                None
            }
            None => None,
        };
        let chat = match config.chat_enabled().map(|c| ChatSettings::try_from(c.clone())) {
            Some(Ok(settings)) => {
                let secret = match &config.chat_secret {
                    Some(secret) if !secret.is_empty() => secret.clone(),
                    _ => random_secret()?,
                };
                Some(ChatEndpoint { settings, secret })
            }
            Some(Err(error)) => {
                problems.extend(error.problems.into_iter().map(|p| format!("channels.chat.{p}")));
                None
            }
            None => None,
        };
        if problems.is_empty() {
            Ok(Endpoints { callback, meta, chat })
        } else {
            Err(anyhow!("{}", problems.join("\n")))
        }
    }
}

/// A random secret for chat resume tokens when none is configured: conversations then resume
/// only on this process.
fn random_secret() -> anyhow::Result<Secret> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow!("no randomness for the chat secret: {e}"))?;
    tracing::info!(
        "channels.chat: no {} set; chats resume only on this process",
        vuoro_service::config::CHAT_SECRET_ENV
    );
    Ok(Secret::new(bytes.to_vec()))
}

/// The name under which the SMTP listener's address is reported.
pub const EMAIL_NAME: &str = "email";

/// The channel listeners of a process (the shared HTTP address, and each HTTP channel given an
/// address of its own), the SMTP listener when email is enabled, and the delivery of messages
/// to customers when any channel delivers.
pub struct Channels {
    /// Each listener with the channels it serves; the shared one first.
    listeners: Vec<(Vec<&'static str>, Listener)>,
    delivery: Option<Delivery>,
    smtp: Option<SmtpListener>,
    dial_outcomes: Option<DialOutcomes>,
    /// Follows the outbound feed for who handled each email conversation.
    conversations: Option<tokio::task::JoinHandle<()>>,
}

/// The validated SMTP listener settings of an enabled email channel.
fn email_endpoint(config: &ChannelsConfig) -> anyhow::Result<Option<EmailEndpoint>> {
    let Some(email) = config.email_enabled() else { return Ok(None) };
    let settings =
        vuoro_adapters::email::EmailSettings::try_from(email.adapter.clone()).map_err(|error| {
            anyhow!(
                "{}",
                error.problems.iter().map(|p| format!("channels.email.{p}")).collect::<Vec<_>>().join("\n")
            )
        })?;
    Ok(Some(EmailEndpoint {
        listen_addr: email.listen_addr,
        hostname: email.hostname.trim().to_owned(),
        settings,
        preferred_agent_wait_ms: email.preferred_agent_wait_ms,
    }))
}

/// The relay of an enabled email channel that has one.
fn relay_settings(config: &ChannelsConfig) -> Option<RelaySettings> {
    let email = config.email_enabled()?;
    let relay = email.relay.as_ref()?;
    let tls = match relay.tls {
        vuoro_service::config::RelayTlsConfig::None => RelayTls::None,
        vuoro_service::config::RelayTlsConfig::Starttls => RelayTls::StartTls,
        vuoro_service::config::RelayTlsConfig::Tls => RelayTls::Tls,
    };
    let credentials = config.email_relay_username.clone().zip(config.email_relay_password.clone());
    Some(RelaySettings {
        host: relay.host.trim().to_owned(),
        port: relay.port,
        tls,
        credentials,
        hostname: email.hostname.trim().to_owned(),
    })
}

/// The enabled channels grouped by the HTTP address each is served on (a channel's own
/// `listen_addr`, else the shared one); the shared address comes first, even with no channel.
fn by_address(config: &ChannelsConfig, endpoints: Endpoints) -> Vec<(SocketAddr, Endpoints)> {
    fn group(groups: &mut Vec<(SocketAddr, Endpoints)>, addr: SocketAddr) -> &mut Endpoints {
        let index = groups.iter().position(|(a, _)| *a == addr).unwrap_or_else(|| {
            groups.push((addr, Endpoints::default()));
            groups.len() - 1
        });
        &mut groups[index].1
    }
    let mut groups: Vec<(SocketAddr, Endpoints)> = vec![(config.listen_addr, Endpoints::default())];
    let shared = config.listen_addr;
    if let Some(callback) = endpoints.callback {
        let addr = config.callback.as_ref().and_then(|c| c.listen_addr).unwrap_or(shared);
        group(&mut groups, addr).callback = Some(callback);
    }
    if let Some(meta) = endpoints.meta {
        let addr = config.meta.as_ref().and_then(|c| c.listen_addr).unwrap_or(shared);
        group(&mut groups, addr).meta = Some(meta);
    }
    if let Some(chat) = endpoints.chat {
        let addr = config.chat.as_ref().and_then(|c| c.listen_addr).unwrap_or(shared);
        group(&mut groups, addr).chat = Some(chat);
    }
    // The shared listener runs even when every HTTP channel has its own address or none is
    // enabled (it then answers 404): the process always has an HTTP address to report.
    groups
}

/// The reply delivery settings of an enabled Meta channel with a send API URL.
fn delivery_settings(config: &ChannelsConfig) -> anyhow::Result<Option<DeliverySettings>> {
    let Some(meta) = config.meta.as_ref().filter(|m| m.enabled) else { return Ok(None) };
    let Some(url) = &meta.send_api_url else { return Ok(None) };
    let base_url = url.parse().with_context(|| format!("channels.meta.send_api_url = {url:?}"))?;
    let access_token = config.meta_access_token.clone().context(
        "channels.meta.send_api_url: replies need an access token (VUORO_CHANNELS_META_ACCESS_TOKEN)",
    )?;
    let mut accounts = std::collections::HashMap::<_, Vec<String>>::new();
    for account in &meta.adapter.accounts {
        accounts
            .entry((account.tenant.clone(), account.platform))
            .or_default()
            .push(account.id.trim().to_owned());
    }
    Ok(Some(DeliverySettings { base_url, access_token, accounts }))
}

impl Channels {
    /// Starts the listener on `cluster` when any channel is enabled; `None` otherwise.
    pub async fn start(config: &Config, cluster: &Cluster) -> anyhow::Result<Option<Channels>> {
        let endpoints = Endpoints::try_from(&config.channels)?;
        let email = email_endpoint(&config.channels)?;
        if !endpoints.any() && email.is_none() {
            return Ok(None);
        }
        let mut couriers: Vec<Box<dyn Courier>> = Vec::new();
        if let Some(settings) = delivery_settings(&config.channels)? {
            couriers.push(Box::new(MetaCourier::new(settings)?));
        }
        if let Some(relay) = relay_settings(&config.channels) {
            let mailboxes = email.as_ref().map(|e| e.settings.tenant_mailboxes()).unwrap_or_default();
            couriers.push(Box::new(EmailCourier::new(relay, mailboxes)?));
        }
        let publisher = Publisher::new(cluster)?;
        let feed = Arc::new(Feed::start(cluster, FEED_CHANNELS, FEED_LOOKBACK)?);
        let mut dial_outcomes = None;
        if let Some(settings) = &endpoints.callback {
            couriers.push(Box::new(CallbackCourier::new(settings.clone(), publisher.clone())));
            let outcomes =
                DialOutcomes::start(cluster, settings.clone(), publisher.clone(), Arc::clone(&feed))?;
            dial_outcomes = Some(outcomes);
        }
        let delivery = if couriers.is_empty() {
            None
        } else {
            Some(Delivery::start(cluster, couriers, publisher.clone())?)
        };
        let (smtp, conversations) = match email {
            Some(endpoint) => {
                let conversations = Arc::new(Conversations::new(crate::email::threads::DEFAULT_CAPACITY));
                let following = conversations.follow(&feed);
                let smtp = SmtpListener::start(endpoint, publisher.clone(), conversations).await?;
                (Some(smtp), Some(following))
            }
            None => (None, None),
        };
        let mut listeners = Vec::new();
        for (addr, endpoints) in by_address(&config.channels, endpoints) {
            let names = endpoints.names();
            let listener = Listener::start(addr, endpoints, publisher.clone(), Arc::clone(&feed)).await?;
            listeners.push((names, listener));
        }
        Ok(Some(Channels { listeners, delivery, smtp, conversations, dial_outcomes }))
    }

    /// Whether replies are delivered and the delivery consumer has its partitions.
    pub fn delivery_ready(&self) -> bool {
        self.delivery.as_ref().is_some_and(Delivery::is_assigned)
    }

    /// Where the first listener listens (the shared one, when any channel uses it).
    pub fn addr(&self) -> SocketAddr {
        self.listeners[0].1.addr()
    }

    /// Where `channel` (`callback`, `meta`, ...) is served, when it is enabled.
    pub fn addr_of(&self, channel: &str) -> Option<SocketAddr> {
        self.listeners.iter().find(|(names, _)| names.contains(&channel)).map(|(_, l)| l.addr())
    }

    /// Where the SMTP listener listens, when email is enabled.
    pub fn smtp_addr(&self) -> Option<SocketAddr> {
        self.smtp.as_ref().map(SmtpListener::addr)
    }

    /// Stops taking requests and mail and finishes those in progress within `grace`, then
    /// stops delivering replies.
    pub async fn stop(self, grace: Duration) {
        if let Some(smtp) = self.smtp {
            smtp.stop(grace).await;
        }
        if let Some(conversations) = self.conversations {
            conversations.abort();
        }
        let mut stopping = tokio::task::JoinSet::new();
        for (_, listener) in self.listeners {
            stopping.spawn(listener.stop(grace));
        }
        stopping.join_all().await;
        if let Some(outcomes) = self.dial_outcomes {
            outcomes.stop(grace).await;
        }
        if let Some(delivery) = self.delivery {
            delivery.stop(grace).await;
        }
    }
}

/// The channel listener as a part of `vuoro serve`: started after Kafka and the API when any
/// channel is enabled, stopped first.
pub struct ChannelsExtension;

impl Extension for ChannelsExtension {
    fn name(&self) -> &'static str {
        NAME
    }

    fn start<'a>(
        &'a self,
        config: &'a Config,
        cluster: &'a Cluster,
    ) -> BoxFuture<'a, anyhow::Result<Option<Box<dyn RunningExtension>>>> {
        Box::pin(async move {
            let started = Channels::start(config, cluster).await?;
            Ok(started.map(|c| Box::new(c) as Box<dyn RunningExtension>))
        })
    }
}

impl RunningExtension for Channels {
    fn addresses(&self) -> Vec<(&'static str, SocketAddr)> {
        let each = self.listeners.iter().flat_map(|(names, l)| names.iter().map(|&n| (n, l.addr())));
        let smtp = self.smtp_addr().map(|addr| (EMAIL_NAME, addr));
        std::iter::once((NAME, self.addr())).chain(each).chain(smtp).collect()
    }

    fn stop(self: Box<Self>, grace: Duration) -> BoxFuture<'static, ()> {
        Box::pin(Channels::stop(*self, grace))
    }
}

/// `vuoro adapters` options; each overrides the config file and the environment.
#[derive(clap::Args, Debug, Default)]
pub struct AdaptersArgs {
    /// The config file (TOML): the same as `vuoro serve`'s; `[kafka]`, `admin_addr` and
    /// `[channels]` are read.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap servers (host:port,...) of the cluster the router uses; required.
    #[arg(long)]
    pub kafka_brokers: Option<String>,
    /// Address of the channels' HTTP listener.
    #[arg(long)]
    pub listen_addr: Option<SocketAddr>,
    /// Admin HTTP address (/metrics, /healthz, /readyz).
    #[arg(long)]
    pub admin_addr: Option<SocketAddr>,
    /// Check the configuration, report every problem, and exit.
    #[arg(long)]
    pub validate_config: bool,
}

impl AdaptersArgs {
    /// The configuration: file, then environment, then these flags; checked for what
    /// `vuoro adapters` needs (brokers, at least one channel).
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config =
            Config::load(self.config.as_deref(), std::env::vars()).map_err(|e| anyhow!("{e}"))?;
        if let Some(brokers) = &self.kafka_brokers {
            config.kafka.brokers = Some(brokers.clone());
        }
        if let Some(addr) = self.listen_addr {
            config.channels.listen_addr = addr;
        }
        if let Some(addr) = self.admin_addr {
            config.admin_addr = addr;
        }
        let mut problems = match config.validate() {
            Ok(()) => Vec::new(),
            Err(errors) => errors.0,
        };
        problems.extend(adapters_problems(&config));
        if problems.is_empty() { Ok(config) } else { Err(anyhow!("{}", problems.join("\n"))) }
    }
}

/// What `vuoro adapters` needs beyond a valid configuration.
fn adapters_problems(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if config.kafka.brokers.is_none() {
        problems.push(
            "kafka.brokers: required by vuoro adapters (--kafka-brokers or VUORO_KAFKA_BROKERS): the \
             router's cluster; an embedded one would reach no router"
                .to_owned(),
        );
    }
    if !config.channels.any_enabled() {
        problems.push(
            "channels: no channel is enabled; add [channels.callback], [channels.meta], [channels.email] or [channels.chat]"
                .to_owned(),
        );
    }
    if config.channels.listen_addr == config.admin_addr && config.admin_addr.port() != 0 {
        problems.push(format!(
            "channels.listen_addr = {}: the same address as admin_addr",
            config.channels.listen_addr
        ));
    }
    problems
}

/// Runs `vuoro adapters` until SIGINT or SIGTERM.
pub fn run(args: AdaptersArgs) -> anyhow::Result<ExitCode> {
    let config = args.config()?;
    if args.validate_config {
        println!("configuration is valid");
        return Ok(ExitCode::SUCCESS);
    }
    vuoro_service::logging::init(config.log_json);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let adapters = Adapters::start(&config).await?;
        tracing::info!(channels = %adapters.channels_addr, smtp = ?adapters.smtp_addr, admin = %adapters.admin_addr, "vuoro adapters serving");
        vuoro_service::serve::shutdown_signal().await;
        tracing::info!("shutting down");
        adapters.stop(Duration::from_millis(config.shutdown_grace_ms)).await;
        Ok(ExitCode::SUCCESS)
    })
}

/// A running `vuoro adapters`: the channel listener and the admin port, on the router's Kafka.
pub struct Adapters {
    /// Where the channels listen.
    pub channels_addr: SocketAddr,
    /// Where the SMTP listener listens, when email is enabled.
    pub smtp_addr: Option<SocketAddr>,
    /// Where the admin port listens.
    pub admin_addr: SocketAddr,
    /// Readiness, as `/readyz` reports it.
    pub health: Health,
    channels: Channels,
    stop_admin: tokio::sync::oneshot::Sender<()>,
    admin: tokio::task::JoinHandle<()>,
    // Dropped last.
    _cluster: Cluster,
}

impl Adapters {
    /// Connects to the configured Kafka (creating missing topics), starts the channel
    /// listener and the admin port, and reports ready.
    pub async fn start(config: &Config) -> anyhow::Result<Adapters> {
        let problems = adapters_problems(config);
        if !problems.is_empty() {
            return Err(anyhow!("{}", problems.join("\n")));
        }
        let health = Health::new();
        let metrics = vuoro_service::metrics::install()?;
        let cluster = Cluster::start(&config.kafka).await.context("connecting to Kafka")?;
        let channels = Channels::start(config, &cluster).await?.context("no channel is enabled")?;
        let (stop_admin, stopped) = tokio::sync::oneshot::channel::<()>();
        let (admin_addr, admin) = admin_http::serve(config.admin_addr, metrics, health.clone(), async move {
            let _ = stopped.await;
        })
        .await?;
        health.set_ready();
        Ok(Adapters {
            channels_addr: channels.addr(),
            smtp_addr: channels.smtp_addr(),
            admin_addr,
            health,
            channels,
            stop_admin,
            admin,
            _cluster: cluster,
        })
    }

    /// Whether replies are delivered and the delivery consumer has its partitions.
    pub fn delivery_ready(&self) -> bool {
        self.channels.delivery_ready()
    }

    /// Reports not ready, stops taking requests and finishes those in progress within `grace`,
    /// then stops the admin port.
    pub async fn stop(mut self, grace: Duration) {
        self.health.set_not_ready("shutting down");
        self.channels.stop(grace).await;
        let _ = self.stop_admin.send(());
        let _ = tokio::time::timeout(grace, &mut self.admin).await;
    }
}
