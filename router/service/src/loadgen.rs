//! `vuoro loadgen`: drives a running service end to end — a `SubmitContacts` stream of chats
//! and simulated agent desks that accept and complete every offer — and reports throughput
//! and submit-to-offer latency percentiles (HDR histogram). In the same run it measures raw
//! Kafka produce-to-consume on the same cluster, so the ratio is visible.
//!
//! Each contact carries its send time (nanoseconds since the run started, attribute
//! `loadgen-sent-ns`), so a desk turns an offer into a latency sample without shared state.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::sync::{Mutex, mpsc};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::{Channel, Endpoint};
use vuoro_proto::v1;

use crate::config::Config;
use crate::serve::Server;

const SENT_ATTRIBUTE: &str = "loadgen-sent-ns";

/// `vuoro loadgen` options.
#[derive(clap::Args, Debug)]
pub struct LoadgenArgs {
    /// The service to drive (`http://host:port`); without it, one is started in-process on
    /// the embedded Kafka cluster.
    #[arg(long)]
    pub target: Option<String>,
    /// Kafka bootstrap servers of the target, for the raw produce-to-consume comparison.
    #[arg(long)]
    pub kafka_brokers: Option<String>,
    /// Contacts to submit.
    #[arg(long, default_value_t = 20_000)]
    pub contacts: u64,
    /// Simulated agents; each holds up to 10 chats.
    #[arg(long, default_value_t = 100)]
    pub agents: u32,
    /// Tenant the run uses (its own, so it disturbs nothing else).
    #[arg(long, default_value = "loadgen")]
    pub tenant: String,
    /// Contacts submitted per second; 0 submits as fast as the service acknowledges. Below
    /// the service's capacity, the latencies are the pipeline's own, not a backlog's.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
}

/// Runs the load and prints the report.
pub fn run(args: LoadgenArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init(false);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let (server, target, brokers) = match &args.target {
            Some(target) => (None, target.clone(), args.kafka_brokers.clone()),
            None => {
                let config = Config {
                    grpc_addr: "127.0.0.1:0".parse()?,
                    admin_addr: "127.0.0.1:0".parse()?,
                    ..Config::default()
                };
                let server = Server::start(&config).await?;
                let target = format!("http://{}", server.grpc_addr);
                let brokers = server.kafka_bootstrap.clone();
                (Some(server), target, Some(brokers))
            }
        };
        let channel = Endpoint::from_shared(target.clone())?
            .connect()
            .await
            .with_context(|| format!("connecting to {target}"))?;
        let report = drive(&channel, &args).await?;
        println!("{report}");
        if let Some(brokers) = brokers {
            let raw = tokio::task::spawn_blocking(move || raw_kafka(&brokers, 20_000)).await??;
            println!("{raw}");
            println!(
                "submit-to-offer rate ÷ raw Kafka round-trip rate: {:.2}",
                report.offered_per_second / raw.per_second
            );
        }
        if let Some(server) = server {
            server.stop(Duration::from_secs(5)).await;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// What a run measured.
pub struct Report {
    /// Contacts submitted.
    pub contacts: u64,
    /// Submitted per second (until Kafka acknowledged the last).
    pub submitted_per_second: f64,
    /// Offers received per second, first submit to last offer.
    pub offered_per_second: f64,
    /// Submit-to-offer latency, microseconds.
    pub latency: Histogram<u64>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let q = |q: f64| self.latency.value_at_quantile(q) as f64 / 1000.0;
        write!(
            f,
            "loadgen: {} contacts; submitted {:.0}/s; submit-to-offer {:.0}/s; latency ms p50 {:.2} p90 {:.2} p99 {:.2} \
             p99.9 {:.2} max {:.2}",
            self.contacts,
            self.submitted_per_second,
            self.offered_per_second,
            q(0.50),
            q(0.90),
            q(0.99),
            q(0.999),
            self.latency.max() as f64 / 1000.0
        )
    }
}

/// Sets up the tenant, runs the desks and the submissions against `channel`, and measures.
pub async fn drive(channel: &Channel, args: &LoadgenArgs) -> anyhow::Result<Report> {
    setup(channel, args).await?;
    let start = Instant::now();
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?));
    let offered = Arc::new(AtomicU64::new(0));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<()>();
    for a in 0..args.agents {
        let desk = Desk {
            channel: channel.clone(),
            agent: format!("{}-agent-{a}", args.tenant),
            tenant: args.tenant.clone(),
            start,
            latency: Arc::clone(&latency),
            offered: Arc::clone(&offered),
            total: args.contacts,
            done: done_tx.clone(),
        };
        tokio::spawn(desk.run());
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // desks logged in and ready
    let mut client = v1::contact_service_client::ContactServiceClient::new(channel.clone());
    let (tenant, total, rate) = (args.tenant.clone(), args.contacts, args.rate);
    let started = Instant::now();
    let (submit, submissions) = mpsc::channel(1024);
    tokio::spawn(async move {
        // Paced: every millisecond, the contacts due by then (each stamped as it is sent).
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        let mut sent = 0;
        while sent < total {
            let due = if rate == 0 { total } else { (started.elapsed().as_secs_f64() * rate as f64) as u64 };
            while sent < due.min(total) {
                let contact = v1::Contact {
                    id: format!("load-{sent}"),
                    tenant: tenant.clone(),
                    channel: v1::Channel::Chat as i32,
                    attributes: [(SENT_ATTRIBUTE.to_owned(), start.elapsed().as_nanos().to_string())].into(),
                    ..Default::default()
                };
                if submit.send(v1::SubmitContactRequest { contact: Some(contact) }).await.is_err() {
                    return;
                }
                sent += 1;
            }
            tick.tick().await;
        }
    });
    let submissions = tokio_stream::wrappers::ReceiverStream::new(submissions);
    let summary = client.submit_contacts(submissions).await?.into_inner();
    let submitted = started.elapsed();
    if !summary.errors.is_empty() {
        bail!("{} contacts refused, the first: {:?}", summary.errors.len(), summary.errors[0]);
    }
    if tokio::time::timeout(Duration::from_secs(600), done_rx.recv()).await.is_err() {
        bail!("only {} of {total} contacts were offered within 10 minutes", offered.load(Ordering::Relaxed));
    }
    let elapsed = started.elapsed();
    let latency = latency.lock().await.clone();
    Ok(Report {
        contacts: total,
        submitted_per_second: total as f64 / submitted.as_secs_f64(),
        offered_per_second: total as f64 / elapsed.as_secs_f64(),
        latency,
    })
}

async fn setup(channel: &Channel, args: &LoadgenArgs) -> anyhow::Result<()> {
    let tenant = args.tenant.clone();
    let mut admin = v1::admin_service_client::AdminServiceClient::new(channel.clone());
    admin
        .upsert_policy(v1::UpsertPolicyRequest {
            policy: Some(v1::Policy { tenant: tenant.clone(), ..Default::default() }),
        })
        .await?;
    let pool = format!("{tenant}-pool");
    let mut pools = v1::pool_service_client::PoolServiceClient::new(channel.clone());
    pools
        .upsert_pool(v1::UpsertPoolRequest {
            pool: Some(v1::Pool {
                id: pool.clone(),
                tenant: tenant.clone(),
                kind: v1::PoolKind::InHouse as i32,
                ..Default::default()
            }),
        })
        .await?;
    let mut agents = v1::agent_service_client::AgentServiceClient::new(channel.clone());
    for a in 0..args.agents {
        let agent = v1::Agent {
            id: format!("{tenant}-agent-{a}"),
            tenant: tenant.clone(),
            pool: pool.clone(),
            capacity: Some(v1::Capacity { total: 10, chat_max: 10, chat_weight: 1, ..Default::default() }),
            ..Default::default()
        };
        agents.upsert_agent(v1::UpsertAgentRequest { agent: Some(agent) }).await?;
    }
    // Contacts and configuration travel on different topics, so the router may read a contact
    // before its tenant's configuration: wait until the read model shows every agent applied.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = agents.list_agents(v1::ListAgentsRequest { tenant: tenant.clone() }).await?.into_inner();
        if listed.agents.len() >= args.agents as usize {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the router applied {} of {} agents within a minute", listed.agents.len(), args.agents);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A simulated agent desk: accepts and completes every offer at once.
struct Desk {
    channel: Channel,
    agent: String,
    tenant: String,
    start: Instant,
    latency: Arc<Mutex<Histogram<u64>>>,
    offered: Arc<AtomicU64>,
    total: u64,
    done: mpsc::UnboundedSender<()>,
}

impl Desk {
    async fn run(self) {
        use v1::agent_action::Action as A;
        let mut client = v1::agent_service_client::AgentServiceClient::new(self.channel.clone());
        let (actions, outbox) = mpsc::unbounded_channel();
        let send = move |a| {
            let _ = actions.send(v1::AgentAction { action: Some(a) });
        };
        send(A::Login(v1::Login { agent: self.agent.clone(), tenant: self.tenant.clone() }));
        send(A::Ready(v1::Ready {}));
        let Ok(response) = client.connect(UnboundedReceiverStream::new(outbox)).await else { return };
        let mut stream = response.into_inner();
        while let Some(Ok(message)) = stream.next().await {
            let Some(v1::agent_message::Message::Offer(offer)) = message.message else { continue };
            let sent = offer
                .contact
                .as_ref()
                .and_then(|c| c.attributes.get(SENT_ATTRIBUTE))
                .and_then(|v| v.parse::<u128>().ok());
            if let Some(sent) = sent {
                let micros = (self.start.elapsed().as_nanos().saturating_sub(sent) / 1_000) as u64;
                let _ = self.latency.lock().await.record(micros.max(1));
            }
            send(A::Accept(v1::Accept { reservation: offer.reservation }));
            send(A::Complete(v1::Complete { reservation: offer.reservation }));
            if self.offered.fetch_add(1, Ordering::Relaxed) + 1 == self.total {
                let _ = self.done.send(());
            }
        }
    }
}

/// Raw Kafka produce-to-consume on the same cluster.
pub struct RawKafka {
    /// Messages.
    pub messages: u64,
    /// Produced and consumed per second.
    pub per_second: f64,
}

impl std::fmt::Display for RawKafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "raw Kafka: {} messages produced (idempotent, acks=all) and consumed at {:.0}/s",
            self.messages, self.per_second
        )
    }
}

/// Produces `messages` records of a contact's size to a scratch topic and consumes them back.
fn raw_kafka(brokers: &str, messages: u64) -> anyhow::Result<RawKafka> {
    let topic = format!("vuoro.loadgen-raw-{}", std::process::id());
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .create()?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "vuoro-loadgen-raw")
        // Latency, not batching: a fetch returns as soon as there is data (some brokers,
        // the embedded one among them, otherwise hold a fetch for its whole wait).
        .set("fetch.wait.max.ms", "5")
        .set("enable.auto.commit", "false")
        .create()?;
    let payload = vec![7u8; 120];
    let started = Instant::now();
    for i in 0..messages {
        let key = i.to_string();
        let mut record = BaseRecord::to(&topic).partition(0).key(&key).payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60))?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&topic, 0, Offset::Beginning)?;
    consumer.assign(&assignment)?;
    let mut consumed = 0;
    while consumed < messages {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(message)) if message.payload().is_some() => consumed += 1,
            Some(Ok(_)) => {}
            Some(Err(error)) => bail!("consuming: {error}"),
            None => bail!("consumed {consumed} of {messages}"),
        }
    }
    Ok(RawKafka { messages, per_second: messages as f64 / started.elapsed().as_secs_f64() })
}
