//! The outbound topic as a live feed in every process: a web-chat customer is connected to
//! one process, and a callback request waits in one process for the router's first word on
//! its contact (the estimated wait behind the promised time), so each process reads every
//! partition itself (no consumer group) and hands each message of the channels it follows to
//! whoever subscribed to its contact.
//!
//! A subscription first gets what the feed already holds for the contact (the last
//! [`RECENT_PER_CONTACT`] messages), then every new one, so subscribing right after writing a
//! contact loses nothing, and a customer who reconnects catches up.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::util::Timeout;
use rdkafka::{Message as _, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use vuoro_proto::v1;
use vuoro_service::config::Topic;
use vuoro_service::kafka::Cluster;

/// Messages kept per contact for late subscribers.
pub const RECENT_PER_CONTACT: usize = 64;
/// Most records per partition read back at start.
const LOOKBACK_RECORDS: i64 = 200_000;
/// Contacts whose recent messages are kept; the oldest are forgotten first.
const MAX_CONTACTS: usize = 50_000;

type Key = (String, String);

#[derive(Default)]
struct Inner {
    subscribers: HashMap<Key, Vec<mpsc::UnboundedSender<v1::OutboundMessage>>>,
    /// Whoever follows every contact ([`Feed::watch`]).
    watchers: Vec<mpsc::UnboundedSender<v1::OutboundMessage>>,
    recent: HashMap<Key, VecDeque<v1::OutboundMessage>>,
    /// Contacts in `recent`, oldest first.
    order: VecDeque<Key>,
}

impl Inner {
    fn publish(&mut self, message: v1::OutboundMessage) {
        let key = (message.tenant.clone(), message.contact.clone());
        self.watchers.retain(|w| w.send(message.clone()).is_ok());
        if let Some(subscribers) = self.subscribers.get_mut(&key) {
            subscribers.retain(|s| s.send(message.clone()).is_ok());
            if subscribers.is_empty() {
                self.subscribers.remove(&key);
            }
        }
        if !self.recent.contains_key(&key) {
            if self.order.len() == MAX_CONTACTS
                && let Some(oldest) = self.order.pop_front()
            {
                self.recent.remove(&oldest);
            }
            self.order.push_back(key.clone());
        }
        let recent = self.recent.entry(key).or_default();
        if recent.len() == RECENT_PER_CONTACT {
            recent.pop_front();
        }
        recent.push_back(message);
    }
}

/// The running feed.
pub struct Feed {
    inner: Arc<Mutex<Inner>>,
    ready: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Feed {
    /// Reads every partition of `cluster`'s outbound topic, from `lookback` ago (at most
    /// [`LOOKBACK_RECORDS`] back, so contacts of that period can be caught up on after a
    /// restart), keeping the messages of `channels`.
    pub fn start(cluster: &Cluster, channels: &[v1::Channel], lookback: Duration) -> anyhow::Result<Feed> {
        let consumer: BaseConsumer = cluster
            .client_config()
            // Never committed: the group only names the reader.
            .set("group.id", format!("{}channels-feed", cluster.prefix))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .context("creating the outbound feed consumer")?;
        let topic = cluster.topic(Topic::Outbound);
        // Kafka can find an offset by time, but not every broker does (the embedded one
        // answers with the end): start a bounded number of records back, and skip what is
        // older than the lookback while reading.
        let mut start = TopicPartitionList::new();
        for partition in 0..cluster.partitions {
            let (low, high) = consumer
                .fetch_watermarks(&topic, partition, Duration::from_secs(10))
                .context("finding where the outbound feed starts")?;
            start.add_partition_offset(
                &topic,
                partition,
                Offset::Offset(low.max(high - LOOKBACK_RECORDS)),
            )?;
        }
        consumer.assign(&start).context("assigning the outbound topic")?;
        let since = crate::now().timestamp_millis() - i64::try_from(lookback.as_millis()).unwrap_or(i64::MAX);
        let channels: HashSet<i32> = channels.iter().map(|&c| c as i32).collect();
        let inner = Arc::new(Mutex::new(Inner::default()));
        let ready = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (feeding, readying, stopping) = (Arc::clone(&inner), Arc::clone(&ready), Arc::clone(&stop));
        let thread = std::thread::Builder::new().name("outbound-feed".into()).spawn(move || {
            // Relaxed: a flag for readiness and stopping, publishing no other data.
            while !stopping.load(Ordering::Relaxed) {
                match consumer.poll(Timeout::After(Duration::from_millis(50))) {
                    Some(Ok(record)) => {
                        readying.store(true, Ordering::Relaxed);
                        match v1::OutboundMessage::decode(record.payload().unwrap_or_default()) {
                            Ok(message)
                                if channels.contains(&message.channel) && message.at_unix_ms >= since =>
                            {
                                lock(&feeding).publish(message);
                            }
                            Ok(_) => {}
                            Err(error) => {
                                tracing::warn!(%error, "an outbound record that is not an OutboundMessage")
                            }
                        }
                    }
                    Some(Err(error)) => tracing::warn!(%error, "reading the outbound feed"),
                    None => readying.store(true, Ordering::Relaxed),
                }
            }
        })?;
        Ok(Feed { inner, ready, stop, thread: Some(thread) })
    }

    /// Whether the feed has reached the topic (a poll returned).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The messages for a contact: what the feed holds for it, then each new one, until the
    /// receiver is dropped.
    pub fn subscribe(&self, tenant: &str, contact: &str) -> mpsc::UnboundedReceiver<v1::OutboundMessage> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let key = (tenant.to_owned(), contact.to_owned());
        let mut inner = lock(&self.inner);
        for message in inner.recent.get(&key).into_iter().flatten() {
            let _ = sender.send(message.clone());
        }
        inner.subscribers.entry(key).or_default().push(sender);
        receiver
    }

    /// Every message of the followed channels from now on (what the feed read back at start
    /// included, when called before it got there), until the receiver is dropped: for those
    /// who follow all contacts, like the email channel remembering who handled a conversation.
    pub fn watch(&self) -> mpsc::UnboundedReceiver<v1::OutboundMessage> {
        let (sender, receiver) = mpsc::unbounded_channel();
        lock(&self.inner).watchers.push(sender);
        receiver
    }

    /// Drops the subscriptions of a contact whose receivers are gone.
    pub fn unsubscribe_closed(&self, tenant: &str, contact: &str) {
        let key = (tenant.to_owned(), contact.to_owned());
        let mut inner = lock(&self.inner);
        if let Some(subscribers) = inner.subscribers.get_mut(&key) {
            subscribers.retain(|s| !s.is_closed());
            if subscribers.is_empty() {
                inner.subscribers.remove(&key);
            }
        }
    }
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(contact: &str, n: usize) -> v1::OutboundMessage {
        v1::OutboundMessage {
            id: format!("r/{n}"),
            tenant: "acme".into(),
            contact: contact.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_late_subscriber_gets_the_recent_messages_then_the_new_ones() {
        let mut inner = Inner::default();
        for n in 0..RECENT_PER_CONTACT + 2 {
            inner.publish(message("c-1", n));
        }
        let feed = Feed {
            inner: Arc::new(Mutex::new(inner)),
            ready: Arc::default(),
            stop: Arc::default(),
            thread: None,
        };
        let mut receiver = feed.subscribe("acme", "c-1");
        lock(&feed.inner).publish(message("c-1", 999));
        lock(&feed.inner).publish(message("c-2", 1));
        let mut ids = Vec::new();
        while let Ok(m) = receiver.try_recv() {
            ids.push(m.id);
        }
        assert_eq!(ids.len(), RECENT_PER_CONTACT + 1, "{ids:?}");
        assert_eq!(ids[0], "r/2", "the oldest beyond the bound were forgotten");
        assert_eq!(ids.last().unwrap(), "r/999");
    }

    #[test]
    fn the_oldest_contacts_are_forgotten_beyond_the_bound() {
        let mut inner = Inner::default();
        for n in 0..=MAX_CONTACTS {
            inner.publish(message(&format!("c-{n}"), n));
        }
        assert_eq!(inner.recent.len(), MAX_CONTACTS);
        assert!(!inner.recent.contains_key(&("acme".to_owned(), "c-0".to_owned())));
    }
}
