//! The router shard: one thread owns the engine of every routing domain (Kafka partition) this
//! replica holds — no lock on the decision path. It reads inputs from the contacts and
//! agent-events topics, applies each to its partition's engine, and appends the input with
//! every decision it caused to the partition's decision log (the decisions topic). Nothing it
//! decides takes effect until a replica reads it back from that log ([`crate::delivery`]).
//!
//! Other threads ask it questions (queue statistics, a contact's status) through a channel;
//! it answers between inputs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use prost::Message as _;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::util::Timeout;
use rustc_hash::FxHashMap;
use tokio::sync::oneshot;
use vuoro_engine::{ContactId, Engine, EngineConfig, Input, Millis, Output};
use vuoro_proto::v1;

use crate::config::Topic;
use crate::convert::{self, ConvertError};
use crate::directory::Directory;
use crate::kafka::{self, Cluster};

/// A question for the shard.
pub enum Query {
    /// The queue statistics of a tenant.
    QueueStats {
        /// The tenant.
        tenant: String,
        /// Where the answer goes.
        reply: oneshot::Sender<Vec<v1::QueueStats>>,
    },
}

/// The running shard.
pub struct Shard {
    queries: std::sync::mpsc::Sender<Query>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Shard {
    /// Starts the shard thread: it joins the router consumer group and routes until stopped.
    pub fn start(cluster: &Cluster, status_interval: Millis) -> anyhow::Result<Shard> {
        let consumer: BaseConsumer = cluster
            .client_config()
            .set("group.id", format!("{}router", cluster.prefix))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .context("creating the shard's consumer")?;
        let inputs = [cluster.topic(Topic::Contacts), cluster.topic(Topic::AgentEvents)];
        consumer.subscribe(&inputs.iter().map(String::as_str).collect::<Vec<_>>()).context("subscribing")?;
        let producer: ThreadedProducer<DefaultProducerContext> = cluster
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "1")
            .create()
            .context("creating the shard's producer")?;
        let (queries, receiver) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let mut worker = Worker {
            consumer,
            producer,
            decisions_topic: cluster.topic(Topic::Decisions),
            dead_letters_topic: cluster.topic(Topic::DeadLetters),
            partitions: cluster.partitions,
            status_interval,
            domains: FxHashMap::default(),
            queries: receiver,
            stop: Arc::clone(&stop),
            out: Vec::with_capacity(64),
        };
        let thread = std::thread::Builder::new().name("router-shard".into()).spawn(move || worker.run())?;
        Ok(Shard { queries, stop, thread: Some(thread) })
    }

    /// Asks the shard a question.
    pub fn ask(&self, query: Query) {
        // A stopped shard drops the reply sender, which the asker sees.
        let _ = self.queries.send(query);
    }

    /// Stops the shard, after it flushed what it produced.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One routing domain's state: a partition's engine and what the wire needs beside it.
struct Domain {
    engine: Engine,
    directory: Directory,
    /// Contacts' full payloads (attributes, customer), for their offers.
    payloads: FxHashMap<ContactId, v1::Contact>,
    /// The owner's epoch for this partition.
    epoch: u64,
    /// Records written in this epoch.
    seq: u64,
}

struct Worker {
    consumer: BaseConsumer,
    producer: ThreadedProducer<DefaultProducerContext>,
    decisions_topic: String,
    dead_letters_topic: String,
    partitions: i32,
    status_interval: Millis,
    domains: FxHashMap<i32, Domain>,
    queries: std::sync::mpsc::Receiver<Query>,
    stop: Arc<AtomicBool>,
    out: Vec<Output>,
}

/// Wall-clock time in Unix milliseconds.
pub fn now_ms() -> Millis {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as Millis)
}

impl Worker {
    fn run(&mut self) {
        tracing::info!("router shard started");
        while !self.stop.load(Ordering::Relaxed) {
            let wait = self.next_timer_in().min(Duration::from_millis(20));
            if let Some(result) = self.consumer.poll(Timeout::After(wait)) {
                match result {
                    Ok(message) => {
                        let message = message.detach();
                        self.ingest(&message);
                    }
                    Err(error) => tracing::warn!(%error, "consuming inputs"),
                }
            }
            self.fire_timers();
            while let Ok(query) = self.queries.try_recv() {
                self.answer(query);
            }
        }
        let _ = self.producer.flush(Timeout::After(Duration::from_secs(10)));
        tracing::info!("router shard stopped");
    }

    fn next_timer_in(&self) -> Duration {
        let now = now_ms();
        let due = self.domains.values().filter_map(|d| d.engine.next_due()).min();
        due.map_or(Duration::from_millis(20), |due| Duration::from_millis(due.saturating_sub(now)))
    }

    fn domain(&mut self, partition: i32) -> &mut Domain {
        let status_interval = self.status_interval;
        self.domains.entry(partition).or_insert_with(|| Domain {
            engine: Engine::new(EngineConfig { status_interval, ..EngineConfig::default() }),
            directory: Directory::new(),
            payloads: FxHashMap::default(),
            epoch: 1,
            seq: 0,
        })
    }

    /// Applies one input record and logs it with its decisions.
    fn ingest(&mut self, message: &rdkafka::message::OwnedMessage) {
        let partition = message.partition();
        let correlation = correlation(message);
        let position =
            v1::InputPosition { topic: message.topic().to_owned(), partition, offset: message.offset() };
        let payload = message.payload().unwrap_or_default();
        let input = match v1::RouterInput::decode(payload) {
            Ok(input) => input,
            Err(error) => return self.dead_letter(message, &format!("not a RouterInput: {error}")),
        };
        let now = now_ms();
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let domain = self.domain(partition);
        match convert::input(&mut domain.directory, &input) {
            Ok(engine_input) => {
                domain.engine.apply(now, &engine_input, &mut out);
                if let (Input::Enqueue(spec), Some(v1::router_input::Input::Submit(contact))) =
                    (&engine_input, &input.input)
                {
                    let refused = out.iter().any(|o| matches!(o, Output::Rejected(_)));
                    if !refused {
                        domain.payloads.insert(spec.id, contact.clone());
                    }
                }
            }
            // Ratings are logged with the input; the engine has nothing to do with them.
            Err(ConvertError::NotForEngine) => {}
            Err(error) => {
                self.out = out;
                return self.dead_letter(message, &error.to_string());
            }
        }
        self.log(partition, Some(position), Some(input), now, &out, &correlation);
        self.out = out;
    }

    fn fire_timers(&mut self) {
        let now = now_ms();
        let due: Vec<i32> = self
            .domains
            .iter()
            .filter(|(_, d)| d.engine.next_due().is_some_and(|due| due <= now))
            .map(|(&p, _)| p)
            .collect();
        for partition in due {
            let mut out = std::mem::take(&mut self.out);
            out.clear();
            self.domain(partition).engine.apply(now, &Input::Tick, &mut out);
            if !out.is_empty() {
                self.log(partition, None, None, now, &out, "tick");
            }
            self.out = out;
        }
    }

    /// Appends one record to the partition's decision log, then forgets contacts that ended.
    fn log(
        &mut self,
        partition: i32,
        position: Option<v1::InputPosition>,
        input: Option<v1::RouterInput>,
        now: Millis,
        out: &[Output],
        correlation: &str,
    ) {
        let domain = self.domains.get_mut(&partition).expect("the domain applied the input");
        let decisions = out
            .iter()
            .map(|o| {
                let payload = match o {
                    Output::Offered { contact, .. } => domain.payloads.get(contact),
                    _ => None,
                };
                convert::decision(&domain.directory, o, payload)
            })
            .collect();
        domain.seq += 1;
        let record = v1::DecisionRecord {
            epoch: domain.epoch,
            position,
            at_unix_ms: now as i64,
            input,
            decisions,
            record_id: format!("{partition}-{}-{}", domain.epoch, domain.seq),
        };
        for o in out {
            if let Output::Completed { contact, .. } | Output::Abandoned { contact, .. } = o {
                domain.payloads.remove(contact);
                domain.directory.forget_contact(*contact);
            }
        }
        let bytes = record.encode_to_vec();
        let key = record.record_id.clone();
        self.send(&self.decisions_topic.clone(), partition, &key, &bytes, correlation);
    }

    fn dead_letter(&mut self, message: &rdkafka::message::OwnedMessage, reason: &str) {
        tracing::warn!(topic = message.topic(), offset = message.offset(), reason, "dead letter");
        let headers = kafka::headers(&correlation(message))
            .insert(rdkafka::message::Header { key: "vuoro-reason", value: Some(reason) })
            .insert(rdkafka::message::Header { key: "vuoro-source-topic", value: Some(message.topic()) });
        let key = message.key().unwrap_or_default().to_vec();
        let record = BaseRecord::to(&self.dead_letters_topic)
            .partition(message.partition())
            .key(&key)
            .payload(message.payload().unwrap_or_default())
            .headers(headers);
        self.send_record(record);
    }

    fn send(&self, topic: &str, partition: i32, key: &str, payload: &[u8], correlation: &str) {
        let record = BaseRecord::to(topic)
            .partition(partition)
            .key(key)
            .payload(payload)
            .headers(kafka::headers(correlation));
        self.send_record(record);
    }

    /// Hands a record to the producer, waiting while its queue is full.
    fn send_record<K: rdkafka::message::ToBytes + ?Sized>(&self, mut record: BaseRecord<'_, K, [u8]>) {
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((error, back)) => {
                    if matches!(
                        error,
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull
                        )
                    ) {
                        record = back;
                        std::thread::sleep(Duration::from_millis(1));
                    } else {
                        tracing::error!(%error, "producing to Kafka");
                        crate::metrics::kafka_produce_error();
                        return;
                    }
                }
            }
        }
    }

    fn answer(&mut self, query: Query) {
        match query {
            Query::QueueStats { tenant, reply } => {
                let partition = kafka::partition_for(&tenant, self.partitions);
                let stats = self.domains.get(&partition).map_or_else(Vec::new, |domain| {
                    let Some(id) = domain.directory.find_tenant(&tenant) else { return Vec::new() };
                    domain
                        .engine
                        .stats()
                        .queues
                        .iter()
                        .filter(|q| q.tenant == id)
                        .map(|q| convert::queue_stats(&tenant, q))
                        .collect()
                });
                let _ = reply.send(stats);
            }
        }
    }
}

/// The correlation id of a record, or "" when it has none.
fn correlation(message: &rdkafka::message::OwnedMessage) -> String {
    message
        .headers()
        .and_then(|headers| headers.iter().find(|h| h.key == kafka::CORRELATION_HEADER).and_then(|h| h.value))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}
