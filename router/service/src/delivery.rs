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
}

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

    /// Applies one record of partition `partition`; `false` when it is void or a repeat.
    pub fn apply(&self, partition: i32, record: &v1::DecisionRecord) -> bool {
        let mut state = self.lock();
        if !state.gates.entry(partition).or_default().admit(record) {
            return false;
        }
        if let Some(input) = record.input.as_ref().and_then(|i| i.input.as_ref()) {
            state.read_input(input);
        }
        for decision in &record.decisions {
            state.take_effect(decision, record.at_unix_ms);
        }
        true
    }
}

impl State {
    fn read_input(&mut self, input: &In) {
        match input {
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
                self.open_offers.remove(&(tenant.clone(), f.contact.clone()));
                self.contacts.remove(&(tenant.clone(), f.contact.clone()));
                self.notify(&tenant, &f.contact, event(&f.contact, E::Completed(v1::Completed {})), true);
            }
            D::Abandoned(f) => {
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
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("delivery".into()).spawn(move || {
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                match consumer.poll(Timeout::After(Duration::from_millis(20))) {
                    Some(Ok(message)) => match v1::DecisionRecord::decode(message.payload().unwrap_or_default()) {
                        Ok(record) => {
                            registry.apply(message.partition(), &record);
                        }
                        Err(error) => tracing::error!(%error, offset = message.offset(), "undecodable decision record"),
                    },
                    Some(Err(error)) => tracing::warn!(%error, "reading decisions"),
                    None => {}
                }
            }
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
