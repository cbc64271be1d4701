//! The router shard: one thread owns the engine of every routing domain (Kafka partition) this
//! replica holds — no lock on the decision path. It reads inputs from the contacts and
//! agent-events topics, applies each to its partition's engine, and appends the input with
//! every decision it caused to the partition's decision log (the decisions topic). Nothing it
//! decides takes effect until a replica reads it back from that log ([`crate::delivery`]).
//!
//! When the consumer group gives it a partition, it rebuilds the domain from the partition's
//! decision log and starts a new epoch before applying anything ([`Worker::recover`]); it
//! applies each input exactly once, by its offset, whatever the group's committed offsets say.
//! When the group takes a partition away, it drops the domain.
//!
//! Every so often it snapshots a domain's whole state onto the compacted snapshots topic, once
//! the record the snapshot reflects has been read back and admitted ([`crate::snapshots`]);
//! recovery starts from the newest snapshot and replays only the log after it. When a record
//! of its own fails to reach the log, it rebuilds that domain from the log in a new epoch, so
//! its state never runs ahead of what everybody else reads.
//!
//! Other threads ask it questions (queue statistics) through a channel; it answers between
//! inputs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use prost::Message as _;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Headers;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use rustc_hash::FxHashMap;
use tokio::sync::oneshot;
use vuoro_engine::{Input, Millis, Output};
use vuoro_proto::v1;

use crate::config::{Config, Topic};
use crate::convert;
use crate::delivery::Registry;
use crate::domain::{Domain, record_seq};
use crate::kafka::{self, Cluster};
use crate::snapshots;

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
    /// `registry` is this replica's reader of the decision logs: a snapshot is written once
    /// the record it reflects is admitted there.
    /// `address` is where other replicas reach this one's gRPC API.
    pub fn start(
        cluster: &Cluster,
        settings: &Config,
        address: &str,
        registry: Arc<Registry>,
    ) -> anyhow::Result<Shard> {
        let mut config = cluster.client_config();
        config
            .set("group.id", format!("{}router", cluster.prefix))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            // Latency, not batching: a fetch returns as soon as there is data (some brokers,
            // the embedded one among them, otherwise hold a fetch for its whole wait).
            .set("fetch.wait.max.ms", "5")
            // Both input topics have the same partitions: range gives a member the same
            // partition numbers of each, so it owns whole domains.
            .set("partition.assignment.strategy", "range")
            .set("statistics.interval.ms", "1000");
        // A replica that dies is noticed within seconds and its partitions move; 6 s is the
        // smallest session timeout Kafka brokers accept by default. Configurable.
        for (key, default) in [("session.timeout.ms", "6000"), ("heartbeat.interval.ms", "500")] {
            if !cluster.properties.contains_key(key) {
                config.set(key, default);
            }
        }
        let inputs = [
            (cluster.topic(Topic::Contacts), Topic::Contacts),
            (cluster.topic(Topic::AgentEvents), Topic::AgentEvents),
        ];
        let ownership = Ownership { moves: Mutex::default(), inputs };
        let consumer: BaseConsumer<Ownership> =
            config.create_with_context(ownership).context("creating the shard's consumer")?;
        let inputs = [cluster.topic(Topic::Contacts), cluster.topic(Topic::AgentEvents)];
        consumer.subscribe(&inputs.iter().map(String::as_str).collect::<Vec<_>>()).context("subscribing")?;
        let acks = Acks { decisions_topic: cluster.topic(Topic::Decisions), ..Acks::default() };
        let producer: ThreadedProducer<Acks> =
            cluster.producer_config().create_with_context(acks).context("creating the shard's producer")?;
        let (queries, receiver) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let mut worker = Worker {
            consumer,
            producer,
            reader_config: cluster.client_config(),
            owner: replica_id(),
            address: address.to_owned(),
            decision_time: crate::metrics::decision_histogram(),
            decisions_topic: cluster.topic(Topic::Decisions),
            dead_letters_topic: cluster.topic(Topic::DeadLetters),
            snapshots_topic: cluster.topic(Topic::Snapshots),
            partitions: cluster.partitions,
            status_interval: settings.status_interval_ms,
            snapshot_interval: settings.snapshot_interval_records,
            registry,
            pending: FxHashMap::default(),
            domains: FxHashMap::default(),
            queries: receiver,
            stop: Arc::clone(&stop),
            out: Vec::with_capacity(64),
            gauged_pools: Vec::new(),
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

/// Partition moves the consumer group made, collected in its rebalance callback and acted on
/// by the shard loop; and the consumer's lag, from its statistics.
struct Ownership {
    moves: Mutex<Vec<(i32, bool)>>,
    /// The input topics' names, for the lag metric.
    inputs: [(String, Topic); 2],
}

impl ClientContext for Ownership {
    /// Consumer lag per input topic: records on the partitions this consumer reads that it has
    /// not yet handed to the shard (no ids as labels: summed over partitions).
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (name, topic) in &self.inputs {
            let Some(stats) = statistics.topics.get(name) else { continue };
            let lag: i64 = stats
                .partitions
                .values()
                .filter(|p| p.partition >= 0 && p.app_offset >= 0)
                .map(|p| (p.hi_offset - p.app_offset).max(0))
                .sum();
            crate::metrics::kafka_consumer_lag(*topic, lag as u64);
        }
    }
}

impl ConsumerContext for Ownership {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let (list, assigned) = match rebalance {
            Rebalance::Assign(list) => (*list, true),
            Rebalance::Revoke(list) => (*list, false),
            Rebalance::Error(error) => return tracing::warn!(%error, "consumer group rebalance"),
        };
        let mut moves = self.moves.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut partitions: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
        partitions.sort_unstable();
        partitions.dedup();
        moves.extend(partitions.into_iter().map(|p| (p, assigned)));
    }
}

/// What became of the shard's records: the offsets of those a snapshot waits for, and the
/// partitions whose decision records failed to reach the log.
#[derive(Default)]
struct Acks {
    decisions_topic: String,
    delivered: Mutex<Vec<(i32, i64, String)>>,
    failed: Mutex<Vec<i32>>,
}

/// The delivery opaque of a record a snapshot waits for (others carry 0).
const SNAPSHOT_POINT: usize = 1;

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        match result {
            Ok(message) if opaque == SNAPSHOT_POINT => {
                let key = message.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
                lock(&self.delivered).push((message.partition(), message.offset(), key));
            }
            Ok(_) => {}
            Err((error, message)) => {
                tracing::error!(%error, topic = message.topic(), partition = message.partition(), "a record did not reach Kafka");
                crate::metrics::kafka_produce_error();
                if message.topic() == self.decisions_topic {
                    lock(&self.failed).push(message.partition());
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A snapshot taken after one of the shard's records, waiting for the record to be
/// acknowledged (its offset) and read back (admitted by the epoch rule).
struct PendingSnapshot {
    snapshot: v1::DomainSnapshot,
    record_id: String,
    slot: u8,
    since: std::time::Instant,
}

/// How long a snapshot may wait for its record before it is given up.
const SNAPSHOT_PATIENCE: Duration = Duration::from_secs(60);

struct Worker {
    consumer: BaseConsumer<Ownership>,
    producer: ThreadedProducer<Acks>,
    /// Settings for the reader that replays a decision log.
    reader_config: ClientConfig,
    /// This replica's id in the records it writes.
    owner: String,
    /// Where other replicas reach this one's gRPC API.
    address: String,
    /// The decision-time histogram, registered once (no lookup per input).
    decision_time: metrics::Histogram,
    decisions_topic: String,
    dead_letters_topic: String,
    snapshots_topic: String,
    partitions: i32,
    status_interval: Millis,
    /// Decision-log records between snapshots of a domain (at least).
    snapshot_interval: u64,
    /// This replica's reader of the decision logs.
    registry: Arc<Registry>,
    /// Per partition, the snapshot waiting for its record.
    pending: FxHashMap<i32, PendingSnapshot>,
    domains: FxHashMap<i32, Domain>,
    queries: std::sync::mpsc::Receiver<Query>,
    stop: Arc<AtomicBool>,
    out: Vec<Output>,
    /// The pools whose gauges this replica set last time (a pool of a domain it no longer owns
    /// has its gauges set to NaN: another replica reports it now).
    gauged_pools: Vec<String>,
}

/// A replica id unique per shard started: process, start time and a counter.
fn replica_id() -> String {
    static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("{}-{}-{}", std::process::id(), now_ms(), STARTED.fetch_add(1, Ordering::Relaxed))
}

/// Wall-clock time in Unix milliseconds.
pub fn now_ms() -> Millis {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as Millis)
}

impl Worker {
    fn run(&mut self) {
        tracing::info!("router shard started");
        let mut last_gauges = std::time::Instant::now();
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
            self.take_moves();
            self.fire_timers();
            self.rebuild_failed();
            self.write_snapshots();
            if last_gauges.elapsed() >= Duration::from_secs(1) {
                last_gauges = std::time::Instant::now();
                self.publish_gauges();
            }
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

    /// Acts on the partitions the group gave or took since the last look.
    fn take_moves(&mut self) {
        let moves = std::mem::take(
            &mut *self.consumer.context().moves.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for (partition, assigned) in moves {
            if assigned {
                if !self.domains.contains_key(&partition) {
                    self.recover(partition);
                }
            } else if self.domains.remove(&partition).is_some() {
                self.pending.remove(&partition);
                self.registry.set_owned(partition, None);
                tracing::info!(partition, "partition moved away");
            }
        }
    }

    /// Rebuilds a partition's domain from its newest snapshot and the decision log after it,
    /// and starts a new epoch: reads the log to its end, appends the epoch start, and goes on
    /// reading until its own epoch start comes back, so that whatever an older owner appended
    /// before it is folded in too.
    fn recover(&mut self, partition: i32) {
        let started = std::time::Instant::now();
        loop {
            match self.try_recover(partition) {
                Ok((domain, snapshot_offset, replayed)) => {
                    tracing::info!(
                        partition,
                        epoch = domain.gate.epoch,
                        snapshot_offset,
                        replayed,
                        contacts = domain.engine.contact_count(),
                        agents = domain.engine.agent_count(),
                        seconds = started.elapsed().as_secs_f64(),
                        "partition recovered"
                    );
                    crate::metrics::owner_epoch_changed();
                    crate::metrics::recovery_time(started.elapsed().as_secs_f64());
                    self.registry.set_owned(partition, Some(domain.gate.epoch));
                    self.domains.insert(partition, domain);
                    return;
                }
                Err(error) => {
                    tracing::error!(
                        partition,
                        error = format!("{error:#}"),
                        "recovering a partition; retrying"
                    );
                    if self.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }

    /// The recovered domain, the decision-log offset of the snapshot it started from (-1: none)
    /// and how many log records it replayed after it.
    fn try_recover(&mut self, partition: i32) -> anyhow::Result<(Domain, i64, u64)> {
        let (mut domain, snapshot_offset) =
            match snapshots::latest(&self.reader_config, &self.snapshots_topic, partition)? {
                Some((snapshot, slot)) => {
                    let domain = Domain::from_snapshot(&snapshot, slot, &self.owner)
                        .with_context(|| format!("loading the snapshot of partition {partition}"))?;
                    (domain, snapshot.decisions_offset)
                }
                None => (Domain::new(partition, self.status_interval, &self.owner), -1),
            };
        let reader: BaseConsumer = self
            .reader_config
            .clone()
            .set("group.id", format!("{}recovery", self.decisions_topic))
            .set("enable.auto.commit", "false")
            .create()
            .context("creating the log reader")?;
        let mut assignment = TopicPartitionList::new();
        let mut next = snapshot_offset + 1;
        assignment.add_partition_offset(&self.decisions_topic, partition, Offset::Offset(next))?;
        reader.assign(&assignment)?;
        let (start, end) =
            reader.fetch_watermarks(&self.decisions_topic, partition, Duration::from_secs(10))?;
        // Records the broker has already deleted cannot be replayed: rebuilding without them
        // would give a state nobody had. Refuse, loudly, until an operator acts (a snapshot
        // newer than the deleted records, or a longer retention of the decisions topic).
        anyhow::ensure!(
            next >= start,
            "the decision log of partition {partition} now starts at offset {start}, but rebuilding needs \
             offset {next} on (no snapshot covers the deleted records)"
        );
        let mut out = Vec::new();
        let mut fence: Option<String> = None;
        let mut replayed = 0;
        loop {
            if fence.is_none() && next >= end {
                let start = domain.epoch_start(now_ms(), &self.owner, &self.address);
                fence = Some(start.record_id.clone());
                self.send(
                    &self.decisions_topic,
                    partition,
                    &start.record_id,
                    &start.encode_to_vec(),
                    "epoch",
                );
                if self.producer.flush(Timeout::After(Duration::from_secs(10))).is_err() {
                    anyhow::bail!("the epoch start was not acknowledged");
                }
            }
            let Some(message) = reader.poll(Timeout::After(Duration::from_secs(10))) else {
                anyhow::bail!("the decision log stopped at offset {next}, before its end");
            };
            let message = message?;
            next = message.offset() + 1;
            let record = v1::DecisionRecord::decode(message.payload().unwrap_or_default())
                .with_context(|| format!("decision record at offset {}", message.offset()))?;
            domain.replay(&record, &mut out);
            replayed += 1;
            if fence.as_deref() == Some(record.record_id.as_str()) {
                // The first epoch start of this number wins; a rival's means ours is void.
                anyhow::ensure!(
                    record.owner == self.owner,
                    "replica {} started epoch {} first",
                    record.owner,
                    record.epoch
                );
                return Ok((domain, snapshot_offset, replayed));
            }
        }
    }

    /// Applies one input record exactly once (by its offset) and logs it with its decisions.
    fn ingest(&mut self, message: &rdkafka::message::OwnedMessage) {
        let partition = message.partition();
        if !self.domains.contains_key(&partition) {
            self.recover(partition);
        }
        let topic = message.topic().to_owned();
        let Some(domain) = self.domains.get_mut(&partition) else { return };
        let next = domain.next_offset.get(&topic).copied().unwrap_or(0);
        if message.offset() < next {
            return; // applied before (by this owner or an older one)
        }
        if message.offset() > next {
            // Never skip an input: go back to the first one not applied.
            if let Err(error) =
                self.consumer.seek(&topic, partition, Offset::Offset(next), Duration::from_secs(5))
            {
                tracing::warn!(%error, partition, topic, "seeking to the next input");
            }
            return;
        }
        let correlation = correlation(message);
        let position = v1::InputPosition { topic, partition, offset: message.offset() };
        let input = match v1::RouterInput::decode(message.payload().unwrap_or_default()) {
            Ok(input) => input,
            Err(error) => {
                crate::metrics::dead_letter(crate::metrics::DeadLetterReason::Undecodable);
                return self.skip(message, position, &format!("not a RouterInput: {error}"));
            }
        };
        let now = now_ms();
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let domain = self.domains.get_mut(&partition).expect("recovered above");
        let started = std::time::Instant::now();
        let applied = domain.apply_input(now, &input, &mut out);
        self.decision_time.record(started.elapsed().as_secs_f64());
        match applied {
            Ok(()) => {
                observe(domain, &out);
                let record = domain.record(Some(position), Some(input), now, &out);
                self.append(partition, &record, &correlation);
            }
            Err(error) => {
                crate::metrics::dead_letter(crate::metrics::DeadLetterReason::Invalid);
                self.skip(message, position, &error.to_string());
            }
        }
        self.out = out;
    }

    /// Sends an input that cannot be processed to the dead-letter topic with the reason, and
    /// logs its position so that no owner tries it again.
    fn skip(&mut self, message: &rdkafka::message::OwnedMessage, position: v1::InputPosition, reason: &str) {
        self.dead_letter(message, reason);
        let partition = position.partition;
        if let Some(domain) = self.domains.get_mut(&partition) {
            let record = domain.record(Some(position), None, now_ms(), &[]);
            self.append(partition, &record, &correlation(message));
        }
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
            let domain = self.domains.get_mut(&partition).expect("a due domain");
            domain.engine.apply(now, &Input::Tick, &mut out);
            observe(domain, &out);
            // Logged even without decisions: replay must fire the same timers at the same time.
            let record = domain.record(None, None, now, &out);
            self.append(partition, &record, "tick");
            self.out = out;
        }
    }

    /// Appends a record to the partition's decision log; when the domain is due a snapshot,
    /// takes it now (the state after this record) to be written once the record is read back.
    fn append(&mut self, partition: i32, record: &v1::DecisionRecord, correlation: &str) {
        debug_assert!(record_seq(&record.record_id) > 0, "epoch starts go out in recovery");
        let payload = record.encode_to_vec();
        let mut opaque = 0;
        if let Some(domain) = self.domains.get_mut(&partition) {
            domain.pace.appended(payload.len());
            if !self.pending.contains_key(&partition) && domain.pace.due(self.snapshot_interval) {
                let snapshot = domain.snapshot(record.at_unix_ms.max(0) as Millis);
                let slot = domain.pace.slot;
                domain.pace.taken(snapshot.encoded_len());
                let since = std::time::Instant::now();
                let record_id = record.record_id.clone();
                self.pending.insert(partition, PendingSnapshot { snapshot, record_id, slot, since });
                opaque = SNAPSHOT_POINT;
            }
        }
        let record = BaseRecord::with_opaque_to(&self.decisions_topic, opaque)
            .partition(partition)
            .key(record.record_id.as_str())
            .payload(payload.as_slice())
            .headers(kafka::headers(correlation));
        self.send_record(record);
    }

    /// Writes each pending snapshot whose record is acknowledged and admitted by this
    /// replica's reader of the log; gives up one whose record was voided by a newer owner.
    fn write_snapshots(&mut self) {
        for (partition, offset, key) in std::mem::take(&mut *lock(&self.producer.context().delivered)) {
            if let Some(pending) = self.pending.get_mut(&partition)
                && pending.record_id == key
            {
                pending.snapshot.decisions_offset = offset;
            }
        }
        let mut done = Vec::new();
        for (&partition, pending) in &self.pending {
            let (epoch, seq) = (pending.snapshot.epoch, pending.snapshot.seq);
            let admitted = self.registry.admitted(partition);
            let ready =
                pending.snapshot.decisions_offset >= 0 && admitted.epoch == epoch && admitted.seq >= seq;
            if !ready {
                if admitted.epoch > epoch || pending.since.elapsed() > SNAPSHOT_PATIENCE {
                    tracing::warn!(partition, epoch, seq, newer_epoch = admitted.epoch, "snapshot given up");
                    done.push(partition);
                }
                continue;
            }
            done.push(partition);
            let chunks = snapshots::chunks(&pending.snapshot, pending.slot);
            for (key, chunk) in &chunks {
                let payload = chunk.encode_to_vec();
                let record = BaseRecord::with_opaque_to(&self.snapshots_topic, 0)
                    .partition(partition)
                    .key(key.as_str())
                    .payload(payload.as_slice())
                    .headers(kafka::headers(&chunk.snapshot_id));
                self.send_record(record);
            }
            tracing::debug!(partition, epoch, seq, chunks = chunks.len(), "snapshot written");
        }
        for partition in done {
            self.pending.remove(&partition);
        }
    }

    /// Rebuilds, in a new epoch, every domain one of whose decision records failed to reach
    /// the log: the records after the gap are void for every reader, so the domain goes back
    /// to what the log holds and applies the inputs after it again.
    fn rebuild_failed(&mut self) {
        let mut failed = std::mem::take(&mut *lock(&self.producer.context().failed));
        failed.sort_unstable();
        failed.dedup();
        for partition in failed {
            if self.domains.remove(&partition).is_some() {
                self.pending.remove(&partition);
                self.registry.set_owned(partition, None);
                tracing::warn!(partition, "a decision record was lost: rebuilding the domain from its log");
                self.recover(partition);
            }
        }
    }

    fn dead_letter(&mut self, message: &rdkafka::message::OwnedMessage, reason: &str) {
        tracing::warn!(topic = message.topic(), offset = message.offset(), reason, "dead letter");
        let headers = kafka::headers(&correlation(message))
            .insert(rdkafka::message::Header { key: "vuoro-reason", value: Some(reason) })
            .insert(rdkafka::message::Header { key: "vuoro-source-topic", value: Some(message.topic()) });
        let key = message.key().unwrap_or_default().to_vec();
        let record = BaseRecord::with_opaque_to(&self.dead_letters_topic, 0)
            .partition(message.partition())
            .key(&key)
            .payload(message.payload().unwrap_or_default())
            .headers(headers);
        self.send_record(record);
    }

    fn send(&self, topic: &str, partition: i32, key: &str, payload: &[u8], correlation: &str) {
        let record = BaseRecord::with_opaque_to(topic, 0)
            .partition(partition)
            .key(key)
            .payload(payload)
            .headers(kafka::headers(correlation));
        self.send_record(record);
    }

    /// Hands a record to the producer, waiting while its queue is full.
    fn send_record<K: rdkafka::message::ToBytes + ?Sized>(&self, mut record: BaseRecord<'_, K, [u8], usize>) {
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

    /// Queue depth, oldest wait and service level per channel, agents by state and occupancy
    /// per pool kind, over every domain this replica owns (no tenant labels); per pool, its
    /// agents by state, whether it is open and the contacts waiting in its tenant.
    fn publish_gauges(&mut self) {
        use vuoro_engine::{AgentState, Channel, PoolKind};
        let mut depth = [0usize; Channel::COUNT];
        let mut oldest = [0u64; Channel::COUNT];
        let mut level = [(0.0f64, 0u64); Channel::COUNT];
        let mut states = [0usize; 5];
        let mut units = [(0u64, 0u64); 2];
        let mut gauged = Vec::new();
        for domain in self.domains.values() {
            let stats = domain.engine.stats();
            for q in &stats.queues {
                let c = q.channel.index();
                depth[c] += q.waiting as usize;
                oldest[c] = oldest[c].max(q.oldest_wait);
                if let Some(sl) = q.window.service_level {
                    let weight = u64::from(q.window.answered + q.window.abandoned).max(1);
                    level[c].0 += sl * weight as f64;
                    level[c].1 += weight;
                }
            }
            let mut waiting_by_tenant = FxHashMap::<vuoro_engine::TenantId, u32>::default();
            for q in &stats.queues {
                *waiting_by_tenant.entry(q.tenant).or_default() += q.waiting;
            }
            for p in &stats.pools {
                if let Some(name) = domain.directory.pool_name(p.pool) {
                    let agents = (!p.capacity_level).then_some(&p.agents);
                    let waiting = waiting_by_tenant.get(&p.tenant).copied().unwrap_or(0);
                    crate::metrics::pool_gauges(name, agents, p.open, waiting);
                    gauged.push(name.to_owned());
                }
                let a = p.agents;
                for (i, n) in [a.ready, a.not_ready, a.busy, a.wrap_up, a.offline].into_iter().enumerate() {
                    states[i] += n as usize;
                }
                let k = usize::from(p.kind != PoolKind::InHouse);
                units[k].0 += p.units_in_use;
                units[k].1 += p.units_staffed;
            }
        }
        for pool in self.gauged_pools.iter().filter(|p| !gauged.contains(p)) {
            crate::metrics::pool_gauges_unknown(pool);
        }
        self.gauged_pools = gauged;
        for channel in Channel::ALL {
            let c = channel.index();
            let service_level = if level[c].1 == 0 { f64::NAN } else { level[c].0 / level[c].1 as f64 };
            crate::metrics::queue_gauges(channel, depth[c], oldest[c] as f64 / 1000.0, service_level);
        }
        let kinds = [
            AgentState::Ready,
            AgentState::NotReady(0),
            AgentState::Busy,
            AgentState::WrapUp,
            AgentState::Offline,
        ];
        for (state, count) in kinds.into_iter().zip(states) {
            crate::metrics::agents_by_state(state, count);
        }
        for (kind, (used, staffed)) in
            [PoolKind::InHouse, PoolKind::Outsourced(vuoro_engine::ProviderId(0))].into_iter().zip(units)
        {
            if staffed > 0 {
                crate::metrics::occupancy(kind, used as f64 / staffed as f64);
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

/// Counts what the engine just decided (live only: replay counts nothing twice).
fn observe(domain: &Domain, out: &[Output]) {
    use crate::metrics;
    let channel = |contact: &vuoro_engine::ContactId| {
        domain.payloads.get(contact).and_then(|c| convert::engine_channel(c.channel))
    };
    for o in out {
        match o {
            Output::Offered { contact, pool, .. } => {
                if let (Some(channel), Some(kind)) = (channel(contact), domain.engine.pool_kind(*pool)) {
                    metrics::contact_routed(channel, kind);
                }
            }
            Output::Accepted { contact, waited, .. } => {
                if let Some(channel) = channel(contact) {
                    metrics::wait_time(channel, *waited as f64 / 1000.0);
                }
            }
            Output::Abandoned { contact, .. } => {
                if let Some(channel) = channel(contact) {
                    metrics::contact_abandoned(channel);
                }
            }
            Output::Overflowed { contact, .. } => {
                if let Some(channel) = channel(contact) {
                    metrics::contact_overflowed(channel);
                }
            }
            _ => {}
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
