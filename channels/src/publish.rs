//! The channels' way into Kafka: contacts go to the contacts topic as `RouterInput` submits,
//! keyed by tenant on the tenant's partition (the router's rule, [`partition_for`]), adapters'
//! notices to the outbound topic and dial instructions to theirs the same way, and refusals go
//! to the dead-letter topic with their reason. Every send is acknowledged by
//! Kafka before the listener answers; a send Kafka does not take is an error the caller can
//! retry, never a silent drop.

use std::time::Duration;

use prost::Message as _;
use rdkafka::message::Header;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use vuoro_proto::v1;
use vuoro_service::config::Topic;
use vuoro_service::kafka::{Cluster, headers, partition_for};

/// Header naming why a record was dead-lettered (a reason code, then what was wrong).
pub const REASON_HEADER: &str = "vuoro-reason";
/// Header with the refusal's stable reason code alone (e.g. `malformed_json`).
pub const REASON_CODE_HEADER: &str = "vuoro-reason-code";
/// Header naming where a dead letter came from: `channel:<name>` for the channel listeners.
pub const SOURCE_HEADER: &str = "vuoro-source-topic";
/// Header locating a refused event inside a batched webhook body (e.g. `entry[0].messaging[1]`).
pub const EVENT_PATH_HEADER: &str = "vuoro-event-path";

/// Kafka did not take a record: nothing was stored and the sender may retry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Kafka did not take the record ({0}); nothing was stored, retry")]
pub struct Unavailable(pub String);

/// A refused input, as it goes to the dead-letter topic.
#[derive(Clone, Copy, Debug)]
pub struct DeadLetter<'a> {
    /// The channel that refused it (`callback`, `meta`); the source header is `channel:<name>`.
    pub channel: &'static str,
    /// The record key: the tenant when the input named one, else the channel's name.
    pub key: &'a str,
    /// The stable reason code.
    pub code: &'static str,
    /// What was wrong, for a person.
    pub reason: &'a str,
    /// The input as received (empty when it was too large to keep).
    pub payload: &'a [u8],
    /// Where in a batched body the refused event is, when only one event of it was refused.
    pub event_path: Option<&'a str>,
}

/// Sends contacts and dead letters; cheap to clone (the producer is shared).
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
    contacts_topic: String,
    dead_letters_topic: String,
    outbound_topic: String,
    dial_instructions_topic: String,
    partitions: i32,
}

impl Publisher {
    /// A publisher on `cluster`'s topics with the router's producer settings (idempotent,
    /// `acks=all`, a 5 s delivery timeout).
    pub fn new(cluster: &Cluster) -> anyhow::Result<Publisher> {
        Ok(Publisher {
            producer: cluster.producer()?,
            contacts_topic: cluster.topic(Topic::Contacts),
            dead_letters_topic: cluster.topic(Topic::DeadLetters),
            outbound_topic: cluster.topic(Topic::Outbound),
            dial_instructions_topic: cluster.topic(Topic::DialInstructions),
            partitions: cluster.partitions,
        })
    }

    /// Hands a contact to the producer as a `RouterInput` submit on its tenant's partition;
    /// the returned future says when Kafka has it (see [`settle`]).
    pub fn submit(&self, contact: v1::Contact, correlation: &str) -> Result<DeliveryFuture, Unavailable> {
        let tenant = contact.tenant.clone();
        self.send_input(&tenant, v1::router_input::Input::Submit(contact), correlation)
    }

    /// Hands any customer input (a submit, a customer's message or rating) of `tenant` to the
    /// producer, on the tenant's partition of the contacts topic.
    pub fn send_input(
        &self,
        tenant: &str,
        input: v1::router_input::Input,
        correlation: &str,
    ) -> Result<DeliveryFuture, Unavailable> {
        let input = v1::RouterInput { received_unix_ms: crate::now().timestamp_millis(), input: Some(input) };
        self.send_keyed(&self.contacts_topic, tenant, &input.encode_to_vec(), correlation)
    }

    /// Hands a message for a customer (an adapter's notice) to the producer, on the outbound
    /// topic, keyed by tenant on the tenant's partition as the router writes them; its id is
    /// the correlation.
    pub fn send_outbound(&self, message: &v1::OutboundMessage) -> Result<DeliveryFuture, Unavailable> {
        self.send_keyed(&self.outbound_topic, &message.tenant, &message.encode_to_vec(), &message.id)
    }

    /// Hands a dial instruction to the producer, on the dial-instructions topic, keyed by tenant
    /// on the tenant's partition; its id is the correlation.
    pub fn send_dial_instruction(
        &self,
        instruction: &v1::DialInstruction,
    ) -> Result<DeliveryFuture, Unavailable> {
        let bytes = instruction.encode_to_vec();
        self.send_keyed(&self.dial_instructions_topic, &instruction.tenant, &bytes, &instruction.id)
    }

    fn send_keyed(
        &self,
        topic: &str,
        tenant: &str,
        payload: &[u8],
        correlation: &str,
    ) -> Result<DeliveryFuture, Unavailable> {
        let record = FutureRecord::to(topic)
            .partition(partition_for(tenant, self.partitions))
            .key(tenant)
            .payload(payload)
            .headers(headers(correlation));
        self.producer.send_result(record).map_err(|(error, _)| unavailable(error.to_string()))
    }

    /// Hands a dead letter to the producer, on the partition of its key; the returned future
    /// says when Kafka has it.
    pub fn dead_letter(
        &self,
        letter: &DeadLetter<'_>,
        correlation: &str,
    ) -> Result<DeliveryFuture, Unavailable> {
        tracing::warn!(channel = letter.channel, code = letter.code, reason = letter.reason, "dead letter");
        let source = format!("channel:{}", letter.channel);
        let reason = format!("{}: {}", letter.code, letter.reason);
        let mut headers = headers(correlation)
            .insert(Header { key: REASON_HEADER, value: Some(&reason) })
            .insert(Header { key: REASON_CODE_HEADER, value: Some(letter.code) })
            .insert(Header { key: SOURCE_HEADER, value: Some(&source) });
        if let Some(path) = letter.event_path {
            headers = headers.insert(Header { key: EVENT_PATH_HEADER, value: Some(path) });
        }
        let record = FutureRecord::to(&self.dead_letters_topic)
            .partition(partition_for(letter.key, self.partitions))
            .key(letter.key)
            .payload(letter.payload)
            .headers(headers);
        self.producer.send_result(record).map_err(|(error, _)| unavailable(error.to_string()))
    }

    /// Waits up to `timeout` for every record handed to the producer to be acknowledged.
    pub fn flush(&self, timeout: Duration) {
        if let Err(error) = self.producer.flush(timeout) {
            tracing::warn!(%error, "flushing the channels' producer");
        }
    }
}

impl Publisher {
    /// Writes a dead letter and waits for Kafka to have it, so the record is there when the
    /// sender hears of the refusal; a dead letter Kafka does not take is logged (the sender
    /// still gets its answer).
    pub async fn store_dead_letter(&self, letter: &DeadLetter<'_>, correlation: &str) {
        let stored = match self.dead_letter(letter, correlation) {
            Ok(delivery) => settle(delivery).await,
            Err(error) => Err(error),
        };
        if let Err(error) = stored {
            tracing::error!(%error, channel = letter.channel, code = letter.code, "the refusal could not be dead-lettered");
        }
    }
}

/// Waits for Kafka's acknowledgement of one record.
pub async fn settle(delivery: DeliveryFuture) -> Result<(), Unavailable> {
    match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((error, _))) => Err(unavailable(error.to_string())),
        Err(_) => Err(unavailable("the producer shut down".to_owned())),
    }
}

fn unavailable(why: String) -> Unavailable {
    vuoro_service::metrics::kafka_produce_error();
    Unavailable(why)
}
