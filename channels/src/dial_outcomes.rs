//! Outcomes of callback attempts, from the telephony platform: the dial-outcomes topic, read by
//! one consumer group (`{topic prefix}channels-dial-outcomes`), each record's offset committed
//! once it was handled or dead-lettered.
//!
//! `ANSWERED` ends the callback. `NO_ANSWER`, `BUSY`, `VOICEMAIL` and `FAILED` schedule the next
//! attempt when the tenant's retry policy leaves one: a new VOICE contact `<first id>#<n>` with
//! the same number, route, language and context, not before the policy's spacing from now,
//! preferring the agent who dialled; the customer is told the new time through their
//! alternative channel. After the last attempt they are told there that we could not reach
//! them.
//!
//! The attempt an outcome names must be one a dial instruction was written for: the contact's
//! `agent_joined` message with that attempt, found in the process's outbound [`Feed`] (which
//! holds the last hour at start and everything since, within its bounds). An outcome that is not
//! a `DialOutcome`, lacks a field, names an unknown attempt or repeats one already handled is
//! dead-lettered with the reason.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prost::Message as _;
use rdkafka::Message as _;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vuoro_adapters::callback::{CallbackSettings, reply};
use vuoro_proto::v1;
use vuoro_proto::v1::outbound_message::Message as O;
use vuoro_service::config::Topic;
use vuoro_service::kafka::Cluster;

use crate::callback::CHANNEL;
use crate::callback_courier::attempt_of;
use crate::feed::Feed;
use crate::notice::{Notice, tell};
use crate::outbound::Failure;
use crate::publish::{DeadLetter, Publisher, settle};
use crate::status;

/// How long an outcome waits for the feed to show the agent joining the attempt it names.
const ATTEMPT_LOOKUP_WAIT: Duration = Duration::from_secs(3);
/// How long a retry waits for the agent who dialled before any agent may take it.
pub const PREFERRED_AGENT_WAIT_MS: u64 = 120_000;
/// Handled attempts remembered for dedupe.
const REMEMBERED_ATTEMPTS: usize = 100_000;

/// The running outcome consumer.
pub struct DialOutcomes {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl DialOutcomes {
    /// Joins the outcome group on `cluster`'s dial-outcomes topic and handles each outcome with
    /// the tenants' `settings`, finding attempts in `feed` and writing through `publisher`.
    pub fn start(
        cluster: &Cluster,
        settings: CallbackSettings,
        publisher: Publisher,
        feed: Arc<Feed>,
    ) -> anyhow::Result<DialOutcomes> {
        let consumer: StreamConsumer = cluster
            .client_config()
            .set("group.id", format!("{}channels-dial-outcomes", cluster.prefix))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .context("creating the dial outcome consumer")?;
        consumer
            .subscribe(&[&cluster.topic(Topic::DialOutcomes)])
            .context("subscribing to the dial-outcomes topic")?;
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut handler = Handler { settings, publisher, feed, handled: Handled::default() };
            loop {
                let record = tokio::select! {
                    _ = stopped.wait_for(|&s| s) => break,
                    record = consumer.recv() => record,
                };
                match record {
                    Ok(record) => {
                        let payload = record.payload().unwrap_or_default();
                        let key = record.key().and_then(|k| std::str::from_utf8(k).ok()).unwrap_or(CHANNEL);
                        if let Err(failure) = handler.handle(payload).await {
                            let correlation = correlation_of(&record).unwrap_or_else(|| {
                                format!("dial-outcome/{}/{}", record.partition(), record.offset())
                            });
                            handler.dead_letter(key, payload, &failure, &correlation).await;
                        }
                        if let Err(error) = consumer.commit_message(&record, CommitMode::Async) {
                            tracing::warn!(%error, "committing the dial outcome offset");
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "reading the dial-outcomes topic");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        Ok(DialOutcomes { stop, task })
    }

    /// Stops after the outcome in progress (within `grace`).
    pub async fn stop(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(grace, &mut self.task).await.is_err() {
            self.task.abort();
        }
    }
}

/// Attempts already handled, bounded.
#[derive(Default)]
struct Handled {
    keys: HashSet<(String, String, u32)>,
    order: VecDeque<(String, String, u32)>,
}

impl Handled {
    fn contains(&self, key: &(String, String, u32)) -> bool {
        self.keys.contains(key)
    }

    fn insert(&mut self, key: (String, String, u32)) {
        if self.order.len() >= REMEMBERED_ATTEMPTS
            && let Some(oldest) = self.order.pop_front()
        {
            self.keys.remove(&oldest);
        }
        if self.keys.insert(key.clone()) {
            self.order.push_back(key);
        }
    }
}

/// The record's `vuoro-correlation` header, when it has a readable one.
fn correlation_of(record: &impl rdkafka::Message) -> Option<String> {
    use rdkafka::message::Headers as _;
    let headers = record.headers()?;
    headers
        .iter()
        .find(|h| h.key == vuoro_service::kafka::CORRELATION_HEADER)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_owned)
}

/// The snake_case name of an outcome (the metric's `outcome` label, the retry's attribute).
pub fn outcome_name(kind: v1::DialOutcomeKind) -> &'static str {
    match kind {
        v1::DialOutcomeKind::Unspecified => "unspecified",
        v1::DialOutcomeKind::Answered => "answered",
        v1::DialOutcomeKind::NoAnswer => "no_answer",
        v1::DialOutcomeKind::Busy => "busy",
        v1::DialOutcomeKind::Voicemail => "voicemail",
        v1::DialOutcomeKind::Failed => "failed",
    }
}

/// A well-formed outcome: its record's fields, checked.
fn check(payload: &[u8]) -> Result<(v1::DialOutcome, v1::DialOutcomeKind), Failure> {
    let outcome = v1::DialOutcome::decode(payload)
        .map_err(|e| Failure::new("malformed_outcome", format!("not a DialOutcome: {e}")))?;
    let mut problems = Vec::new();
    if outcome.tenant.trim().is_empty() {
        problems.push("tenant: required".to_owned());
    }
    if outcome.contact.trim().is_empty() {
        problems.push("contact: required".to_owned());
    }
    if outcome.attempt == 0 {
        problems.push("attempt: required, 1 or more".to_owned());
    }
    let kind = match v1::DialOutcomeKind::try_from(outcome.outcome) {
        Ok(v1::DialOutcomeKind::Unspecified) => {
            problems.push("outcome: required".to_owned());
            v1::DialOutcomeKind::Unspecified
        }
        Ok(kind) => kind,
        Err(_) => {
            problems.push(format!("outcome: {} is not an outcome", outcome.outcome));
            v1::DialOutcomeKind::Unspecified
        }
    };
    if problems.is_empty() {
        Ok((outcome, kind))
    } else {
        Err(Failure::new("malformed_outcome", problems.join("; ")))
    }
}

struct Handler {
    settings: CallbackSettings,
    publisher: Publisher,
    feed: Arc<Feed>,
    handled: Handled,
}

impl Handler {
    async fn handle(&mut self, payload: &[u8]) -> Result<(), Failure> {
        let (outcome, kind) = check(payload)?;
        let key = (outcome.tenant.clone(), outcome.contact.clone(), outcome.attempt);
        if self.handled.contains(&key) {
            return Err(Failure::new(
                "duplicate_outcome",
                format!("attempt {} of {} was already handled", outcome.attempt, outcome.contact),
            ));
        }
        let joined = self.joined(&outcome).await?;
        self.handled.insert(key);
        crate::metrics::dial_outcome(CHANNEL, outcome_name(kind));
        tracing::info!(
            contact = outcome.contact,
            attempt = outcome.attempt,
            outcome = outcome_name(kind),
            "dial outcome"
        );
        if kind == v1::DialOutcomeKind::Answered {
            return Ok(());
        }
        let tenant = self.settings.tenants.get(&outcome.tenant).ok_or_else(|| {
            Failure::new(
                "unknown_tenant",
                format!("tenant {:?} has no callback settings: no retry policy or route", outcome.tenant),
            )
        })?;
        let language = status::language_of(&joined);
        let zone = crate::promise::zone_of(&joined.context);
        let notice = |kind, text| Notice {
            id: format!("dial-outcome/{}/{}/{kind}", outcome.contact, outcome.attempt),
            tenant: &outcome.tenant,
            contact: &outcome.contact,
            context: &joined.context,
            kind,
            text,
        };
        match tenant.retry.next_after(outcome.attempt) {
            Some(spacing_ms) => {
                let at = crate::now().timestamp_millis() + spacing_ms;
                let agent = match joined.message.as_ref() {
                    Some(O::AgentJoined(agent)) => agent.clone(),
                    _ => String::new(),
                };
                let mut next = retry_contact(&joined, &outcome, kind, at, &agent);
                tenant.route.apply(&mut next);
                let violations = vuoro_service::convert::check_contact(&next);
                if !violations.is_empty() {
                    let why = violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                    return Err(Failure::new("invalid_contact", format!("the next attempt: {why}")));
                }
                let next_id = next.id.clone();
                let submitted = match self.publisher.submit(next, &next_id) {
                    Ok(delivery) => settle(delivery).await,
                    Err(error) => Err(error),
                };
                submitted
                    .map_err(|e| Failure::new("unavailable", format!("the next attempt {next_id}: {e}")))?;
                crate::metrics::callback_retry(CHANNEL);
                let at = chrono::DateTime::from_timestamp_millis(at).unwrap_or_default();
                let told = tell(&self.publisher, notice("retry", status::callback_retry(language, at, zone)))
                    .await?;
                tracing::info!(
                    contact = outcome.contact,
                    next = next_id,
                    ?told,
                    "next call attempt scheduled"
                );
            }
            None => {
                let told =
                    tell(&self.publisher, notice("unreachable", status::callback_unreachable(language)))
                        .await?;
                tracing::info!(contact = outcome.contact, ?told, "the last call attempt failed");
            }
        }
        Ok(())
    }

    /// The `agent_joined` message of the attempt `outcome` names, from the feed.
    async fn joined(&self, outcome: &v1::DialOutcome) -> Result<v1::OutboundMessage, Failure> {
        let mut messages = self.feed.subscribe(&outcome.tenant, &outcome.contact);
        let found = tokio::time::timeout(ATTEMPT_LOOKUP_WAIT, async {
            while let Some(message) = messages.recv().await {
                if matches!(message.message, Some(O::AgentJoined(_)))
                    && attempt_of(&message.context) == outcome.attempt
                {
                    return Some(message);
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        drop(messages);
        self.feed.unsubscribe_closed(&outcome.tenant, &outcome.contact);
        found.ok_or_else(|| {
            Failure::new(
                "unknown_attempt",
                format!(
                    "no dial instruction for attempt {} of {} (no agent joined it in the last hour)",
                    outcome.attempt, outcome.contact
                ),
            )
        })
    }

    async fn dead_letter(&self, key: &str, payload: &[u8], failure: &Failure, correlation: &str) {
        crate::metrics::rejected(CHANNEL, failure.code);
        let letter = DeadLetter {
            channel: CHANNEL,
            key,
            code: failure.code,
            reason: &failure.reason,
            payload,
            event_path: None,
        };
        let stored = match self.publisher.dead_letter(&letter, correlation) {
            Ok(delivery) => settle(delivery).await,
            Err(error) => Err(error),
        };
        if let Err(error) = stored {
            tracing::error!(%error, code = failure.code, "a dial outcome could not be dead-lettered");
        }
    }
}

/// The next attempt after `outcome`: contact `<first id>#<attempt + 1>`, the number and the
/// `reply.*` context of the attempt that failed, not before `at`, preferring `agent`. The
/// tenant's route is applied by the caller.
fn retry_contact(
    joined: &v1::OutboundMessage,
    outcome: &v1::DialOutcome,
    kind: v1::DialOutcomeKind,
    at: i64,
    agent: &str,
) -> v1::Contact {
    let first = outcome.contact.split('#').next().unwrap_or_default();
    let attempt = outcome.attempt + 1;
    let context = |key: &str| joined.context.get(key).cloned().unwrap_or_default();
    let language = context(reply::LANGUAGE).split('-').next().unwrap_or_default().to_owned();
    let mut attributes: std::collections::HashMap<String, String> = joined.context.clone();
    attributes.insert(reply::ATTEMPT.to_owned(), attempt.to_string());
    attributes.insert("attempt".to_owned(), attempt.to_string());
    attributes.insert("previous_outcome".to_owned(), outcome_name(kind).to_owned());
    let reason = context(reply::REASON);
    if !reason.is_empty() {
        attributes.insert("reason".to_owned(), reason);
    }
    v1::Contact {
        id: format!("{first}#{attempt}"),
        tenant: outcome.tenant.clone(),
        channel: v1::Channel::Voice as i32,
        language,
        preferred_agent: agent.to_owned(),
        preferred_agent_wait_ms: if agent.is_empty() { 0 } else { PREFERRED_AGENT_WAIT_MS },
        not_before_unix_ms: at,
        customer: Some(v1::Customer { display_name: context(reply::NAME), address: joined.address.clone() }),
        attributes,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_outcome_names_every_missing_field() {
        let failure = check(b"\xff\xff not protobuf").unwrap_err();
        assert_eq!(failure.code, "malformed_outcome");
        let empty = v1::DialOutcome { outcome: 42, ..Default::default() }.encode_to_vec();
        let failure = check(&empty).unwrap_err();
        assert_eq!(
            failure.reason,
            "tenant: required; contact: required; attempt: required, 1 or more; outcome: 42 is not an outcome"
        );
    }

    #[test]
    fn the_next_attempt_keeps_the_number_and_context_and_prefers_the_agent() {
        let mut context = std::collections::HashMap::new();
        context.insert(reply::LANGUAGE.to_owned(), "fi-FI".to_owned());
        context.insert(reply::ALTERNATIVE_CHANNEL.to_owned(), "email".to_owned());
        let joined = v1::OutboundMessage {
            address: "+358401234567".into(),
            context,
            message: Some(O::AgentJoined("aino".into())),
            ..Default::default()
        };
        let outcome = v1::DialOutcome {
            tenant: "acme".into(),
            contact: "callback:w-1#2".into(),
            attempt: 2,
            ..Default::default()
        };
        let next = retry_contact(&joined, &outcome, v1::DialOutcomeKind::Busy, 5_000, "aino");
        assert_eq!(next.id, "callback:w-1#3");
        assert_eq!(next.language, "fi");
        assert_eq!(next.not_before_unix_ms, 5_000);
        assert_eq!(
            (next.preferred_agent.as_str(), next.preferred_agent_wait_ms),
            ("aino", PREFERRED_AGENT_WAIT_MS)
        );
        assert_eq!(next.customer.unwrap().address, "+358401234567");
        assert_eq!(next.attributes[reply::ATTEMPT], "3");
        assert_eq!(next.attributes["previous_outcome"], "busy");
        assert_eq!(next.attributes[reply::ALTERNATIVE_CHANNEL], "email");
    }
}
