//! Messages for customers, out: the outbound topic, read by one consumer group
//! (`{topic prefix}channels-delivery`) and handed to the [`Courier`] of each message's channel
//! (Meta's send APIs, SMTP, the telephony platform).
//!
//! Each message is handled once per group: the offset is committed once its courier delivered
//! it or it was dead-lettered with the courier's reason (stable code and what happened). Ids are
//! deterministic, so a repeat of a recently handled id is skipped. A new group starts at the
//! beginning of the topic (starting at its end would lose what was written while the group
//! first joins), and a message older than [`MAX_AGE`] is not delivered but dead-lettered
//! (`stale`): a customer does not get an answer hours late from a first deployment or a long
//! outage without anyone seeing it.
//!
//! Web chat is not delivered here: a chat customer is connected to one process, so every
//! process reads every message ([`crate::feed`]).

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::{ClientContext, Message as _};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vuoro_proto::v1;
use vuoro_service::config::Topic;
use vuoro_service::kafka::Cluster;

use crate::publish::{DeadLetter, Publisher, settle};

/// Oldest message still delivered; older ones are dead-lettered as `stale`.
pub const MAX_AGE: Duration = Duration::from_secs(15 * 60);
/// Outbound ids remembered for dedupe.
const REMEMBERED_IDS: usize = 10_000;

/// A boxed future, for the object-safe [`Courier`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a message was not delivered: a stable code (the metric's `reason` label and the dead
/// letter's reason code) and what happened, for a person.
#[derive(Debug)]
pub struct Failure {
    /// The stable reason code, e.g. `platform_refused`.
    pub code: &'static str,
    /// What happened.
    pub reason: String,
}

impl Failure {
    /// A failure with `code` and `reason`.
    pub fn new(code: &'static str, reason: impl Into<String>) -> Failure {
        Failure { code, reason: reason.into() }
    }
}

/// Delivers one channel's messages to its customers.
pub trait Courier: Send + Sync + 'static {
    /// The channel's name: the `channel` label of its metrics and the source of its dead
    /// letters (`channel:<name>`).
    fn name(&self) -> &'static str;

    /// Whether this courier delivers `message` (its channel and kind); at most one courier
    /// takes a message, and what none takes is committed untouched.
    fn takes(&self, message: &v1::OutboundMessage) -> bool;

    /// Delivers `message`, retrying what is worth retrying; an error is final and goes to the
    /// dead-letter topic. A courier that decides a message needs no delivery (a status
    /// update nobody needs to hear) returns `Ok`.
    fn deliver<'a>(&'a self, message: &'a v1::OutboundMessage) -> BoxFuture<'a, Result<(), Failure>>;
}

/// Tells when the consumer has its partitions (messages written before then are read only if
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

/// The running delivery of the outbound topic.
pub struct Delivery {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    assigned: Assignment,
}

impl Delivery {
    /// Joins the delivery group on `cluster`'s outbound topic and hands each message to the
    /// courier that takes it; failures are dead-lettered through `publisher`.
    pub fn start(
        cluster: &Cluster,
        couriers: Vec<Box<dyn Courier>>,
        publisher: Publisher,
    ) -> anyhow::Result<Delivery> {
        let assigned = Assignment::default();
        let consumer: StreamConsumer<Assignment> = cluster
            .client_config()
            .set("group.id", format!("{}channels-delivery", cluster.prefix))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create_with_context(assigned.clone())
            .context("creating the outbound delivery consumer")?;
        consumer
            .subscribe(&[&cluster.topic(Topic::Outbound)])
            .context("subscribing to the outbound topic")?;
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut dispatcher = Dispatcher { couriers, publisher, seen: Seen::default() };
            loop {
                let message = tokio::select! {
                    _ = stopped.wait_for(|&s| s) => break,
                    message = consumer.recv() => message,
                };
                match message {
                    Ok(message) => {
                        dispatcher.handle(message.payload().unwrap_or_default(), message.key()).await;
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
        Ok(Delivery { stop, task, assigned })
    }

    /// Whether the consumer has been given partitions of the outbound topic.
    pub fn is_assigned(&self) -> bool {
        // Relaxed: see `Assignment`.
        self.assigned.0.load(Ordering::Relaxed)
    }

    /// Stops after the message in progress (within `grace`).
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

struct Dispatcher {
    couriers: Vec<Box<dyn Courier>>,
    publisher: Publisher,
    seen: Seen,
}

impl Dispatcher {
    async fn handle(&mut self, payload: &[u8], key: Option<&[u8]>) {
        let Ok(message) = v1::OutboundMessage::decode(payload) else {
            tracing::warn!("an outbound record that is not an OutboundMessage");
            return;
        };
        let Some(courier) = self.couriers.iter().find(|c| c.takes(&message)) else { return };
        if !self.seen.insert(&message.id) {
            return;
        }
        let age_ms = crate::now().timestamp_millis().saturating_sub(message.at_unix_ms);
        let result = if age_ms > MAX_AGE.as_millis() as i64 {
            Err(Failure::new(
                "stale",
                format!(
                    "written {} s ago, more than {} s: not sent so late",
                    age_ms / 1000,
                    MAX_AGE.as_secs()
                ),
            ))
        } else {
            courier.deliver(&message).await
        };
        let channel = courier.name();
        match result {
            Ok(()) => crate::metrics::delivered(channel),
            Err(failure) => {
                crate::metrics::delivery_failed(channel, failure.code);
                let key = key.and_then(|k| std::str::from_utf8(k).ok()).unwrap_or(&message.tenant);
                let reason =
                    format!("message {} to contact {}: {}", message.id, message.contact, failure.reason);
                let letter = DeadLetter {
                    channel,
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
                    tracing::error!(%error, "an undelivered message could not be dead-lettered");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
