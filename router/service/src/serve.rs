//! `vuoro serve`: Kafka (given or embedded), the router shard, delivery, the gRPC API with
//! health and reflection, the [extensions](Extension) built in other crates (the channel
//! listeners), and the admin HTTP port — started in that order; on stop, readiness goes off,
//! the extensions stop taking input first, then the API, the shard and delivery, and Kafka last.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use vuoro_proto::v1;

use crate::admin_http::{self, Health};
use crate::config::Config;
use crate::delivery::{Delivery, Registry};
use crate::grpc::{Admin, Agents, Contacts, Gateway, Pools};
use crate::kafka::Cluster;
use crate::shard::Shard;

/// `vuoro serve` options; each overrides the config file and the environment.
#[derive(clap::Args, Debug, Default)]
pub struct ServeArgs {
    /// The config file (TOML).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap servers (host:port,...); without them an embedded cluster runs in-process.
    #[arg(long)]
    pub kafka_brokers: Option<String>,
    /// gRPC address.
    #[arg(long)]
    pub grpc_addr: Option<SocketAddr>,
    /// Admin HTTP address (/metrics, /healthz, /readyz).
    #[arg(long)]
    pub admin_addr: Option<SocketAddr>,
    /// Check the configuration, report every problem, and exit.
    #[arg(long)]
    pub validate_config: bool,
}

impl ServeArgs {
    /// The configuration: file, then environment, then these flags.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config =
            Config::load(self.config.as_deref(), std::env::vars()).map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(brokers) = &self.kafka_brokers {
            config.kafka.brokers = Some(brokers.clone());
        }
        if let Some(addr) = self.grpc_addr {
            config.grpc_addr = addr;
        }
        if let Some(addr) = self.admin_addr {
            config.admin_addr = addr;
        }
        config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(config)
    }
}

/// A boxed future that can move between threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A part of `vuoro serve` that lives in another crate, such as the channel listeners (which
/// build on this crate, so it cannot name them): started once Kafka and the API are up, and
/// stopped before them.
pub trait Extension: Send + Sync {
    /// Its name, for logs.
    fn name(&self) -> &'static str;

    /// Starts it on the service's Kafka cluster; `None` when the configuration leaves it off.
    fn start<'a>(
        &'a self,
        config: &'a Config,
        cluster: &'a Cluster,
    ) -> BoxFuture<'a, anyhow::Result<Option<Box<dyn RunningExtension>>>>;
}

/// A started [`Extension`].
pub trait RunningExtension: Send {
    /// The addresses it listens on, by name (e.g. `channels`).
    fn addresses(&self) -> Vec<(&'static str, SocketAddr)>;

    /// Stops taking input and finishes what is in flight within `grace`.
    fn stop(self: Box<Self>, grace: Duration) -> BoxFuture<'static, ()>;
}

/// Runs `vuoro serve` until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    run_with(args, Vec::new())
}

/// Runs `vuoro serve` with `extensions` until SIGINT or SIGTERM.
pub fn run_with(args: ServeArgs, extensions: Vec<Box<dyn Extension>>) -> anyhow::Result<ExitCode> {
    let config = args.config()?;
    if args.validate_config {
        println!("configuration is valid");
        return Ok(ExitCode::SUCCESS);
    }
    crate::logging::init(config.log_json);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let server = Server::start_with(&config, &extensions).await?;
        tracing::info!(grpc = %server.grpc_addr, admin = %server.admin_addr, "vuoro serving");
        shutdown_signal().await;
        tracing::info!("shutting down");
        server.stop(Duration::from_millis(config.shutdown_grace_ms)).await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Completes on the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// A running service.
pub struct Server {
    /// Where gRPC listens.
    pub grpc_addr: SocketAddr,
    /// Where the admin HTTP port listens.
    pub admin_addr: SocketAddr,
    /// Readiness, as `/readyz` reports it.
    pub health: Health,
    /// The Kafka cluster's `bootstrap.servers` (the embedded one's, when it runs one).
    pub kafka_bootstrap: String,
    /// Where the started extensions listen, by name (e.g. `channels`).
    pub extension_addrs: Vec<(&'static str, SocketAddr)>,
    extensions: Vec<Box<dyn RunningExtension>>,
    stop: watch::Sender<bool>,
    grpc: tokio::task::JoinHandle<()>,
    admin: tokio::task::JoinHandle<()>,
    delivery: Delivery,
    shard: Arc<std::sync::Mutex<Shard>>,
    // Dropped last: the embedded cluster outlives every client.
    _cluster: Cluster,
}

impl Server {
    /// Starts every part; addresses with port 0 get a free port.
    pub async fn start(config: &Config) -> anyhow::Result<Server> {
        Server::start_with(config, &[]).await
    }

    /// Starts every part and the `extensions`; addresses with port 0 get a free port.
    pub async fn start_with(config: &Config, extensions: &[Box<dyn Extension>]) -> anyhow::Result<Server> {
        let health = Health::new();
        health.set_not_ready("starting");
        let metrics = crate::metrics::install()?;
        let cluster = Cluster::start(&config.kafka).await?;
        if cluster.is_embedded() {
            tracing::warn!(
                bootstrap = %cluster.bootstrap,
                "no Kafka brokers configured: running an EMBEDDED in-process Kafka cluster; \
                 nothing survives a restart (use --kafka-brokers for a real cluster)"
            );
        }
        let listener = tokio::net::TcpListener::bind(config.grpc_addr)
            .await
            .with_context(|| format!("binding gRPC to {}", config.grpc_addr))?;
        let grpc_addr = listener.local_addr()?;
        let advertised = config.advertise_addr.clone().unwrap_or_else(|| grpc_addr.to_string());
        let registry = Arc::new(Registry::default());
        let shard = Shard::start(&cluster, config, &advertised, Arc::clone(&registry))?;
        let shard = Arc::new(std::sync::Mutex::new(shard));
        let delivery = Delivery::start(&cluster, Arc::clone(&registry))?;
        let gateway = Gateway::new(&cluster, registry, Arc::clone(&shard))?;

        let (stop, stopped) = watch::channel(false);
        let (reporter, health_service) = tonic_health::server::health_reporter();
        reporter.set_serving::<v1::contact_service_server::ContactServiceServer<Contacts>>().await;
        reporter.set_serving::<v1::agent_service_server::AgentServiceServer<Agents>>().await;
        reporter.set_serving::<v1::pool_service_server::PoolServiceServer<Pools>>().await;
        reporter.set_serving::<v1::admin_service_server::AdminServiceServer<Admin>>().await;
        // Both reflection versions: grpcurl 1.8 and many tools still ask v1alpha.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection().build_v1().context("building gRPC reflection")?;
        let reflection_v1alpha = reflection().build_v1alpha().context("building gRPC reflection")?;
        let router = tonic::transport::Server::builder()
            .layer(tower::util::MapResponseLayer::new(count_refusal))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(v1::contact_service_server::ContactServiceServer::new(Contacts(gateway.clone())))
            .add_service(v1::agent_service_server::AgentServiceServer::new(Agents(gateway.clone())))
            .add_service(v1::pool_service_server::PoolServiceServer::new(Pools(gateway.clone())))
            .add_service(v1::admin_service_server::AdminServiceServer::new(Admin(gateway)));
        let mut grpc_stopped = stopped.clone();
        let grpc = tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let shutdown = async move {
                let _ = grpc_stopped.wait_for(|&s| s).await;
            };
            if let Err(error) = router.serve_with_incoming_shutdown(incoming, shutdown).await {
                tracing::error!(%error, "gRPC server");
            }
        });
        let mut running = Vec::new();
        for extension in extensions {
            match extension.start(config, &cluster).await {
                Ok(Some(started)) => running.push(started),
                Ok(None) => {}
                Err(error) => {
                    let _ = stop.send(true);
                    for started in running {
                        started.stop(Duration::from_secs(1)).await;
                    }
                    return Err(error.context(format!("starting {}", extension.name())));
                }
            }
        }
        if extensions.is_empty() && config.channels.any_enabled() {
            tracing::warn!(
                "channels are configured but this build of the service does not run their listeners"
            );
        }
        let extension_addrs = running.iter().flat_map(|r| r.addresses()).collect();
        let mut admin_stopped = stopped;
        let (admin_addr, admin) = admin_http::serve(config.admin_addr, metrics, health.clone(), async move {
            let _ = admin_stopped.wait_for(|&s| s).await;
        })
        .await?;
        health.set_ready();
        let kafka_bootstrap = cluster.bootstrap.clone();
        Ok(Server {
            grpc_addr,
            admin_addr,
            health,
            kafka_bootstrap,
            extension_addrs,
            extensions: running,
            stop,
            grpc,
            admin,
            delivery,
            shard,
            _cluster: cluster,
        })
    }

    /// Stops taking requests (the extensions first), lets in-flight ones finish within
    /// `grace`, then stops the shard (flushing its decisions) and delivery.
    pub async fn stop(mut self, grace: Duration) {
        self.health.set_not_ready("shutting down");
        for extension in std::mem::take(&mut self.extensions) {
            extension.stop(grace).await;
        }
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(grace, &mut self.grpc).await;
        let _ = tokio::time::timeout(grace, &mut self.admin).await;
        let shard = Arc::clone(&self.shard);
        let _ = tokio::task::spawn_blocking(move || {
            shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner).stop()
        })
        .await;
        let mut delivery = self.delivery;
        let _ = tokio::task::spawn_blocking(move || delivery.stop()).await;
    }
}

/// Counts a refused request (`vuoro_api_refused_total`): an error answered at once carries its
/// status in the response headers (an error at the end of a stream, in its trailers, is not
/// counted).
fn count_refusal(
    response: tonic::codegen::http::Response<tonic::body::Body>,
) -> tonic::codegen::http::Response<tonic::body::Body> {
    let code = response.headers().get("grpc-status").and_then(|v| v.to_str().ok()?.parse::<i32>().ok());
    if let Some(code) = code.map(tonic::Code::from_i32).filter(|&c| c != tonic::Code::Ok) {
        crate::metrics::api_refused(code);
    }
    response
}
