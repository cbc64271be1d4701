//! Delivery: every replica reads every partition's decision log back and makes the decisions
//! take effect — offers reach the agent and provider streams this replica holds, contact
//! watchers hear their contact's events — and keeps the read model the API answers from
//! (contact statuses, agents, policies).
//!
//! A record of an older epoch than one already seen on its partition is void: a zombie owner
//! can never cause a second offer. Records are deduplicated by their deterministic id.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer as _, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};
use rustc_hash::FxHashMap;
use tokio::sync::mpsc;
use vuoro_proto::v1;
use vuoro_proto::v1::decision::Decision as D;
use vuoro_proto::v1::router_input::Input as In;

use crate::config::Topic;
use crate::domain::EpochGate;
use crate::kafka::Cluster;

/// Where a stream's messages go.
pub type Outbox<T> = mpsc::UnboundedSender<T>;

/// What this replica knows from the decision logs, and the streams it holds.
#[derive(Default)]
pub struct Registry {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Agent and pool streams held here, by target name (agent id, or pool id for a
    /// capacity-level pool).
    targets: FxHashMap<String, Outbox<v1::AgentMessage>>,
    /// Contact watchers, by (tenant, contact id).
    watchers: FxHashMap<(String, String), Vec<Outbox<v1::ContactEvent>>>,
    /// Every live contact's status, by (tenant, contact id).
    contacts: FxHashMap<(String, String), v1::ContactStatus>,
    /// Agents by id, with their last reported state.
    agents: FxHashMap<String, v1::AgentSummary>,
    /// Policies by tenant.
    policies: FxHashMap<String, v1::Policy>,
    /// Per partition, which records take effect.
    gates: FxHashMap<i32, EpochGate>,
    /// Offers not yet answered, by (tenant, contact id): target and reservation, so that the
    /// target hears when an offer it still shows expires.
    open_offers: FxHashMap<(String, String), (String, u64)>,
    /// Each live contact's channel, customer address and reply context, for outbound messages.
    customers: FxHashMap<(String, String), Customer>,
    /// What customers wrote to contacts not yet accepted, by (tenant, contact id): shown to the
    /// agent who accepts, in order.
    held_messages: FxHashMap<(String, String), Vec<v1::CustomerMessage>>,
    /// Per partition, the gRPC address of its current owner (from its epoch start).
    owner_addresses: FxHashMap<i32, String>,
    /// The partitions this replica's shard owns, with its epoch: it writes the outbound
    /// messages of the records of its own epoch.
    owned: FxHashMap<i32, u64>,
}

/// Where a live contact's customer is answered.
#[derive(Clone)]
struct Customer {
    channel: i32,
    address: String,
    /// The contact's `reply.*` attributes.
    context: std::collections::HashMap<String, String>,
}

impl Customer {
    fn of(contact: &v1::Contact) -> Customer {
        Customer {
            channel: contact.channel,
            address: contact.customer.as_ref().map(|c| c.address.clone()).unwrap_or_default(),
            context: contact
                .attributes
                .iter()
                .filter(|(k, _)| k.starts_with(REPLY_CONTEXT_PREFIX))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// Attributes of a contact with keys that start with this come back on every outbound message
/// for it ([`v1::OutboundMessage::context`]).
pub const REPLY_CONTEXT_PREFIX: &str = "reply.";

/// Most messages held for one waiting contact; older ones are dropped first.
const MAX_HELD_MESSAGES: usize = 50;

impl Registry {
    /// Holds an agent's (or a capacity-level pool's) stream; replaces an older one.
    pub fn hold_target(&self, target: &str, outbox: Outbox<v1::AgentMessage>) {
        self.lock().targets.insert(target.to_owned(), outbox);
    }

    /// Lets go of a target's stream, unless a newer one replaced it.
    pub fn release_target(&self, target: &str, outbox: &Outbox<v1::AgentMessage>) {
        let mut state = self.lock();
        if state.targets.get(target).is_some_and(|held| held.same_channel(outbox)) {
            state.targets.remove(target);
        }
    }

    /// Watches a contact: its current status first (if known), then every event.
    pub fn watch(&self, tenant: &str, id: &str, outbox: Outbox<v1::ContactEvent>) {
        self.lock().watchers.entry((tenant.to_owned(), id.to_owned())).or_default().push(outbox);
    }

    /// Drops a contact's watchers whose receivers are gone.
    pub fn unwatch_closed(&self, tenant: &str, id: &str) {
        let mut state = self.lock();
        let key = (tenant.to_owned(), id.to_owned());
        if let Some(watchers) = state.watchers.get_mut(&key) {
            watchers.retain(|w| !w.is_closed());
            if watchers.is_empty() {
                state.watchers.remove(&key);
            }
        }
    }

    /// A live contact's status.
    pub fn contact(&self, tenant: &str, id: &str) -> Option<v1::ContactStatus> {
        self.lock().contacts.get(&(tenant.to_owned(), id.to_owned())).cloned()
    }

    /// A tenant's agents, by id.
    pub fn agents(&self, tenant: &str) -> Vec<v1::AgentSummary> {
        let state = self.lock();
        let mut agents: Vec<v1::AgentSummary> = state
            .agents
            .values()
            .filter(|a| a.agent.as_ref().is_some_and(|a| a.tenant == tenant))
            .cloned()
            .collect();
        agents.sort_by(|a, b| a.agent.as_ref().map(|a| &a.id).cmp(&b.agent.as_ref().map(|b| &b.id)));
        agents
    }

    /// A tenant's policy.
    pub fn policy(&self, tenant: &str) -> Option<v1::Policy> {
        self.lock().policies.get(tenant).cloned()
    }

    /// The tenant of a known agent.
    pub fn agent_tenant(&self, agent: &str) -> Option<String> {
        self.lock().agents.get(agent).and_then(|a| a.agent.as_ref()).map(|a| a.tenant.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The last record of `partition`'s decision log read here that took effect: a snapshot
    /// of the owner's state after a record is written only once the record is admitted here.
    pub fn admitted(&self, partition: i32) -> EpochGate {
        self.lock().gates.get(&partition).copied().unwrap_or_default()
    }

    /// Whether this replica's shard owns `partition` now.
    pub fn owns(&self, partition: i32) -> bool {
        self.lock().owned.contains_key(&partition)
    }

    /// The gRPC address of the replica that owns `partition`, as its epoch start says.
    pub fn owner_address(&self, partition: i32) -> Option<String> {
        self.lock().owner_addresses.get(&partition).filter(|a| !a.is_empty()).cloned()
    }

    /// Notes that this replica's shard owns `partition` in `epoch` (`None`: no longer).
    pub fn set_owned(&self, partition: i32, epoch: Option<u64>) {
        let mut state = self.lock();
        match epoch {
            Some(epoch) => state.owned.insert(partition, epoch),
            None => state.owned.remove(&partition),
        };
    }

    /// Applies one record of partition `partition`; `None` when it is void or a repeat, else
    /// the messages for customers it causes if this replica owns the record's epoch (none
    /// otherwise: the owner writes them).
    pub fn apply(&self, partition: i32, record: &v1::DecisionRecord) -> Option<Vec<v1::OutboundMessage>> {
        let mut state = self.lock();
        if !state.gates.entry(partition).or_default().admit(record) {
            return None;
        }
        if crate::domain::record_seq(&record.record_id) == 0 {
            state.owner_addresses.insert(partition, record.owner_address.clone());
        }
        let mut outbound = Vec::new();
        // Messages are drafted before the decisions take effect (a completed contact's
        // address is forgotten then).
        if state.owned.get(&partition) == Some(&record.epoch) {
            state.draft_outbound(record, &mut outbound);
        }
        if let Some(input) = record.input.as_ref().and_then(|i| i.input.as_ref()) {
            state.read_input(input);
        }
        for decision in &record.decisions {
            state.take_effect(decision, record.at_unix_ms);
        }
        // A refusal of an agent's (or provider's) action goes to the stream that sent it, even
        // when it names a reservation rather than the agent.
        if let Some(In::Agent(action)) = record.input.as_ref().and_then(|i| i.input.as_ref())
            && let Some(outbox) = state.targets.get(&action.agent)
        {
            for decision in &record.decisions {
                if let Some(D::Refused(refusal)) = &decision.decision
                    && refusal.subject != action.agent
                {
                    let _ = outbox.send(v1::AgentMessage {
                        message: Some(v1::agent_message::Message::Refused(refusal.reason.clone())),
                    });
                }
            }
        }
        if let Some(In::Submit(contact)) = record.input.as_ref().and_then(|i| i.input.as_ref())
            && record
                .decisions
                .iter()
                .any(|d| matches!(&d.decision, Some(D::Refused(r)) if r.subject == contact.id))
        {
            state.customers.remove(&(contact.tenant.clone(), contact.id.clone()));
        }
        Some(outbound)
    }
}

impl State {
    /// The messages for customers a record causes: status updates, an agent joining, the
    /// agent's replies and the end of the conversation.
    fn draft_outbound(&self, record: &v1::DecisionRecord, out: &mut Vec<v1::OutboundMessage>) {
        use v1::outbound_message::Message as O;
        let mut push = |tenant: &str, contact: &str, message: O| {
            // A contact submitted in this record is not in `customers` yet.
            let submitted = match record.input.as_ref().and_then(|i| i.input.as_ref()) {
                Some(In::Submit(c)) if c.id == contact && c.tenant == tenant => Some(Customer::of(c)),
                _ => None,
            };
            let known = self.customers.get(&(tenant.to_owned(), contact.to_owned())).cloned();
            let Some(Customer { channel, address, context }) = submitted.or(known) else { return };
            out.push(v1::OutboundMessage {
                id: format!("{}/{}", record.record_id, out.len()),
                tenant: tenant.to_owned(),
                contact: contact.to_owned(),
                channel,
                address,
                at_unix_ms: record.at_unix_ms,
                message: Some(message),
                context,
            });
        };
        if let Some(In::Agent(input)) = record.input.as_ref().and_then(|i| i.input.as_ref())
            && let Some(v1::agent_action::Action::Reply(reply)) =
                input.action.as_ref().and_then(|a| a.action.as_ref())
            && let Some(tenant) =
                self.agents.get(&input.agent).and_then(|a| a.agent.as_ref()).map(|a| &a.tenant)
        {
            // Only the agent who holds the contact speaks for it.
            let holds = self
                .contacts
                .get(&(tenant.clone(), reply.contact.clone()))
                .is_some_and(|s| s.assigned_to == input.agent);
            if holds {
                push(tenant, &reply.contact, O::Reply(reply.text.clone()));
            }
        }
        for decision in &record.decisions {
            let tenant = decision.tenant.as_str();
            match &decision.decision {
                Some(D::QueueStatus(q)) => {
                    let update =
                        v1::QueueUpdate { position: q.position, estimated_wait_ms: q.estimated_wait_ms };
                    push(tenant, &q.contact, O::Queued(update));
                }
                Some(D::Scheduled(s)) => push(tenant, &s.contact, O::ScheduledUnixMs(s.routable_at_unix_ms)),
                Some(D::Accepted(a)) => push(tenant, &a.contact, O::AgentJoined(a.target.clone())),
                Some(D::Completed(f)) => push(tenant, &f.contact, O::Completed(v1::Completed {})),
                _ => {}
            }
        }
    }

    fn read_input(&mut self, input: &In) {
        match input {
            In::Submit(contact) => {
                self.customers.insert((contact.tenant.clone(), contact.id.clone()), Customer::of(contact));
            }
            In::CustomerMessage(message) => self.customer_wrote(message),
            In::CustomerRating(rating) => {
                tracing::info!(
                    tenant = rating.tenant,
                    contact = rating.contact,
                    score = rating.score,
                    "rated"
                );
            }
            In::UpsertAgent(agent) => {
                let summary = self.agents.entry(agent.id.clone()).or_insert_with(|| v1::AgentSummary {
                    agent: None,
                    state: v1::AgentState::Offline as i32,
                });
                summary.agent = Some(agent.clone());
            }
            In::RemoveAgent(id) => {
                self.agents.remove(id);
            }
            In::UpsertPolicy(policy) => {
                self.policies.insert(policy.tenant.clone(), policy.clone());
            }
            _ => {}
        }
    }

    fn take_effect(&mut self, decision: &v1::Decision, at: i64) {
        let Some(kind) = &decision.decision else { return };
        let tenant = decision.tenant.clone();
        let event =
            |id: &str, event| v1::ContactEvent { id: id.to_owned(), at_unix_ms: at, event: Some(event) };
        use v1::contact_event::Event as E;
        match kind {
            D::Offered(offer) => {
                let id = offer.contact.as_ref().map(|c| c.id.clone()).unwrap_or_default();
                self.set(&tenant, &id, |s| {
                    s.state = v1::ContactState::Offered as i32;
                    s.position = 0;
                    s.assigned_to = offer.target.clone();
                });
                if let Some(outbox) = self.targets.get(&offer.target) {
                    let _ = outbox.send(v1::AgentMessage {
                        message: Some(v1::agent_message::Message::Offer(offer.clone())),
                    });
                }
                self.open_offers
                    .insert((tenant.clone(), id.clone()), (offer.target.clone(), offer.reservation));
                self.notify(&tenant, &id, event(&id, E::Offered(offer.clone())), false);
            }
            D::Rescinded(r) => {
                self.open_offers.remove(&(tenant.clone(), r.contact.clone()));
                if let Some(outbox) = self.targets.get(&r.target) {
                    let _ = outbox.send(v1::AgentMessage {
                        message: Some(v1::agent_message::Message::Rescinded(r.reservation)),
                    });
                }
            }
            D::Accepted(a) => {
                self.open_offers.remove(&(tenant.clone(), a.contact.clone()));
                self.set(&tenant, &a.contact, |s| {
                    s.state = v1::ContactState::Accepted as i32;
                    s.assigned_to = a.target.clone();
                });
                self.notify(&tenant, &a.contact, event(&a.contact, E::AcceptedBy(a.target.clone())), false);
                // What the customer wrote while waiting, now to the agent who took it.
                let held = self.held_messages.remove(&(tenant.clone(), a.contact.clone()));
                if let (Some(outbox), Some(held)) = (self.targets.get(&a.target), held) {
                    for message in held {
                        let _ = outbox.send(v1::AgentMessage {
                            message: Some(v1::agent_message::Message::CustomerMessage(message)),
                        });
                    }
                }
            }
            D::Requeued(r) => {
                // An offer that expired unanswered: the desk that still shows it hears so.
                if let Some((target, reservation)) =
                    self.open_offers.remove(&(tenant.clone(), r.contact.clone()))
                    && let Some(outbox) = self.targets.get(&target)
                {
                    let _ = outbox.send(v1::AgentMessage {
                        message: Some(v1::agent_message::Message::Rescinded(reservation)),
                    });
                }
                self.set(&tenant, &r.contact, |s| {
                    s.state = v1::ContactState::Queued as i32;
                    s.assigned_to.clear();
                });
                self.notify(
                    &tenant,
                    &r.contact,
                    event(&r.contact, E::RequeuedReason(r.reason.clone())),
                    false,
                );
            }
            D::QueueStatus(q) => {
                self.set(&tenant, &q.contact, |s| {
                    s.state = v1::ContactState::Queued as i32;
                    s.position = q.position;
                    s.estimated_wait_ms = q.estimated_wait_ms;
                });
                let update = v1::QueueUpdate { position: q.position, estimated_wait_ms: q.estimated_wait_ms };
                self.notify(&tenant, &q.contact, event(&q.contact, E::Queued(update)), false);
            }
            D::Scheduled(s) => {
                self.set(&tenant, &s.contact, |status| status.state = v1::ContactState::Scheduled as i32);
            }
            D::Completed(f) => {
                self.customers.remove(&(tenant.clone(), f.contact.clone()));
                self.held_messages.remove(&(tenant.clone(), f.contact.clone()));
                self.open_offers.remove(&(tenant.clone(), f.contact.clone()));
                self.contacts.remove(&(tenant.clone(), f.contact.clone()));
                self.notify(&tenant, &f.contact, event(&f.contact, E::Completed(v1::Completed {})), true);
            }
            D::Abandoned(f) => {
                self.customers.remove(&(tenant.clone(), f.contact.clone()));
                self.held_messages.remove(&(tenant.clone(), f.contact.clone()));
                self.open_offers.remove(&(tenant.clone(), f.contact.clone()));
                self.contacts.remove(&(tenant.clone(), f.contact.clone()));
                let abandoned = v1::Abandoned { waited_ms: f.waited_ms };
                self.notify(&tenant, &f.contact, event(&f.contact, E::Abandoned(abandoned)), true);
            }
            D::AgentState(change) => {
                if let Some(summary) = self.agents.get_mut(&change.agent) {
                    summary.state = change.state;
                }
                if let Some(outbox) = self.targets.get(&change.agent) {
                    let _ = outbox.send(v1::AgentMessage {
                        message: Some(v1::agent_message::Message::State(change.state)),
                    });
                }
            }
            D::Refused(refusal) => {
                if let Some(outbox) = self.targets.get(&refusal.subject) {
                    let _ = outbox.send(v1::AgentMessage {
                        message: Some(v1::agent_message::Message::Refused(refusal.reason.clone())),
                    });
                }
            }
            D::Overflowed(_) | D::Relaxed(_) => {}
        }
    }

    /// A customer's message: to the agent holding the contact, or held until one accepts it.
    fn customer_wrote(&mut self, message: &v1::CustomerMessage) {
        let key = (message.tenant.clone(), message.contact.clone());
        let holder = self
            .contacts
            .get(&key)
            .filter(|s| s.state == v1::ContactState::Accepted as i32)
            .map(|s| s.assigned_to.clone());
        match holder {
            Some(agent) => {
                if let Some(outbox) = self.targets.get(&agent) {
                    let _ = outbox.send(v1::AgentMessage {
                        message: Some(v1::agent_message::Message::CustomerMessage(message.clone())),
                    });
                }
            }
            None => {
                let held = self.held_messages.entry(key).or_default();
                if held.len() == MAX_HELD_MESSAGES {
                    held.remove(0);
                }
                held.push(message.clone());
            }
        }
    }

    /// Updates (or creates) a contact's status.
    fn set(&mut self, tenant: &str, id: &str, change: impl FnOnce(&mut v1::ContactStatus)) {
        let status = self.contacts.entry((tenant.to_owned(), id.to_owned())).or_insert_with(|| {
            v1::ContactStatus { id: id.to_owned(), tenant: tenant.to_owned(), ..Default::default() }
        });
        change(status);
    }

    /// Sends an event to the contact's watchers; the last event ends their streams.
    fn notify(&mut self, tenant: &str, id: &str, event: v1::ContactEvent, last: bool) {
        let key = (tenant.to_owned(), id.to_owned());
        if let Some(watchers) = self.watchers.get_mut(&key) {
            watchers.retain(|w| w.send(event.clone()).is_ok());
            if last || watchers.is_empty() {
                self.watchers.remove(&key);
            }
        }
    }
}

/// Hands a message for a customer to the producer (keyed by tenant, on the partition of its
/// routing domain), waiting while the producer's queue is full.
fn send_outbound(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    partition: i32,
    message: &v1::OutboundMessage,
) {
    let payload = message.encode_to_vec();
    let mut record = BaseRecord::to(topic)
        .partition(partition)
        .key(message.tenant.as_str())
        .payload(payload.as_slice())
        .headers(crate::kafka::headers(&message.id));
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((error, _)) => {
                tracing::error!(%error, id = message.id, "producing an outbound message");
                crate::metrics::kafka_produce_error();
                return;
            }
        }
    }
}

/// The thread that reads the decision logs back.
pub struct Delivery {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Delivery {
    /// Starts reading every partition of the decisions topic from its beginning (the embedded
    /// cluster starts empty; on a real cluster, a later step starts from the snapshots).
    pub fn start(cluster: &Cluster, registry: Arc<Registry>) -> anyhow::Result<Delivery> {
        let consumer: BaseConsumer = cluster
            .client_config()
            .set("group.id", format!("{}delivery", cluster.prefix))
            // Latency, not batching: a fetch returns as soon as there is data (some brokers,
            // the embedded one among them, otherwise hold a fetch for its whole wait).
            .set("fetch.wait.max.ms", "5")
            .set("enable.auto.commit", "false")
            .create()
            .context("creating the delivery consumer")?;
        let topic = cluster.topic(Topic::Decisions);
        let mut assignment = TopicPartitionList::new();
        for partition in 0..cluster.partitions {
            assignment.add_partition_offset(&topic, partition, Offset::Beginning)?;
        }
        consumer.assign(&assignment).context("assigning the decisions topic")?;
        let outbound_topic = cluster.topic(Topic::Outbound);
        let producer: ThreadedProducer<DefaultProducerContext> =
            cluster.producer_config().create().context("creating the outbound producer")?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("delivery".into()).spawn(move || {
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                match consumer.poll(Timeout::After(Duration::from_millis(20))) {
                    Some(Ok(message)) => match v1::DecisionRecord::decode(message.payload().unwrap_or_default()) {
                        Ok(record) => {
                            let outbound = registry.apply(message.partition(), &record).unwrap_or_default();
                            for m in outbound {
                                send_outbound(&producer, &outbound_topic, message.partition(), &m);
                            }
                        }
                        Err(error) => tracing::error!(%error, offset = message.offset(), "undecodable decision record"),
                    },
                    Some(Err(error)) => tracing::warn!(%error, "reading decisions"),
                    None => {}
                }
            }
            let _ = producer.flush(Timeout::After(Duration::from_secs(5)));
        })?;
        Ok(Delivery { stop, thread: Some(thread) })
    }

    /// Stops reading.
    pub fn stop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        self.stop();
    }
}
