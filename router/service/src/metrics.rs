//! Vuoro's Prometheus metrics: every name, label, unit, help text and histogram bucket layout is
//! defined here once ([`SPECS`]), and small typed functions record them through the `metrics`
//! facade, so labels can only take values from small closed sets — never an agent, contact,
//! customer or tenant id.
//!
//! Names follow Prometheus conventions: the `vuoro_` prefix, base units (`_seconds`,
//! `_records`, `_ratio` for 0–1 fractions) and `_total` on counters. Histograms always have
//! explicit buckets (never summaries, which cannot be aggregated across replicas).
//!
//! The functions go through the global recorder, which [`install`] sets; before that they do
//! nothing. A hot path should register its handle once, e.g. [`decision_histogram`], instead of
//! looking the series up on every call.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::anyhow;
use metrics::{KeyName, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use vuoro_engine::{AgentState, Channel, PoolKind};

use crate::config::Topic;

/// Contacts that entered Vuoro, by `channel`.
pub const CONTACTS_RECEIVED_TOTAL: &str = "vuoro_contacts_received_total";
/// Contacts an agent or pool accepted, by `channel` and `pool_kind` (`in_house`, `outsourced`).
pub const CONTACTS_ROUTED_TOTAL: &str = "vuoro_contacts_routed_total";
/// Contacts that ended before being answered (the customer gave up or cancelled), by `channel`.
pub const CONTACTS_ABANDONED_TOTAL: &str = "vuoro_contacts_abandoned_total";
/// Contacts overflowed to outsourced pools, by `channel`.
pub const CONTACTS_OVERFLOWED_TOTAL: &str = "vuoro_contacts_overflowed_total";
/// Contacts waiting in queue now, by `channel`.
pub const QUEUE_DEPTH: &str = "vuoro_queue_depth";
/// How long the oldest waiting contact has waited, in seconds, by `channel`.
pub const QUEUE_OLDEST_WAIT_SECONDS: &str = "vuoro_queue_oldest_wait_seconds";
/// Time from arrival to acceptance, in seconds, by `channel`.
pub const WAIT_SECONDS: &str = "vuoro_wait_seconds";
/// Time the engine takes to apply one input and make its decisions, in seconds.
pub const DECISION_SECONDS: &str = "vuoro_decision_seconds";
/// Time from a contact's submission on the API to its first offer, in seconds.
pub const SUBMIT_TO_OFFER_SECONDS: &str = "vuoro_submit_to_offer_seconds";
/// Share (0–1) of recent contacts answered within the service-level threshold, by `channel`.
pub const SERVICE_LEVEL_RATIO: &str = "vuoro_service_level_ratio";
/// Agents by `state` (`offline`, `ready`, `not_ready`, `busy`, `wrap_up`).
pub const AGENTS: &str = "vuoro_agents";
/// Share (0–1) of logged-in capacity in use, by `pool_kind`.
pub const OCCUPANCY_RATIO: &str = "vuoro_occupancy_ratio";
/// Records Kafka failed to take (after librdkafka's own retries).
pub const KAFKA_PRODUCE_ERRORS_TOTAL: &str = "vuoro_kafka_produce_errors_total";
/// Records not yet consumed, by `topic` (the topic's suffix, e.g. `contacts`).
pub const KAFKA_CONSUMER_LAG_RECORDS: &str = "vuoro_kafka_consumer_lag_records";
/// Times this replica gained or lost ownership of a routing domain.
pub const OWNER_EPOCH_CHANGES_TOTAL: &str = "vuoro_owner_epoch_changes_total";
/// Time to rebuild a routing domain's state (snapshot plus log replay), in seconds.
pub const RECOVERY_SECONDS: &str = "vuoro_recovery_seconds";
/// Records sent to the dead-letter topic, by `reason` (see [`DeadLetterReason`]).
pub const DEAD_LETTERS_TOTAL: &str = "vuoro_dead_letters_total";
/// Gauge: a pool's agents by state (pools whose agents the router sees; a capacity-level
/// pool's agents are the provider's).
pub const POOL_AGENTS: &str = "vuoro_pool_agents";
/// Gauge: 1 while a pool is within its opening hours, else 0.
pub const POOL_OPEN: &str = "vuoro_pool_open";
/// Gauge: contacts waiting in the tenant a pool serves (every channel).
pub const POOL_TENANT_WAITING: &str = "vuoro_pool_tenant_waiting_contacts";
/// Counter: API requests refused, by gRPC status code (invalid, not found, unavailable, ...).
pub const API_REFUSED_TOTAL: &str = "vuoro_api_refused_total";

/// Label: the contact's channel (`voice`, `email`, `social`, `chat`).
pub const LABEL_CHANNEL: &str = "channel";
/// Label: who runs the pool (`in_house`, `outsourced`).
pub const LABEL_POOL_KIND: &str = "pool_kind";
/// Label: an agent's state.
pub const LABEL_STATE: &str = "state";
/// Label: a Vuoro topic's suffix.
pub const LABEL_TOPIC: &str = "topic";
/// Label: why a record was dead-lettered.
pub const LABEL_REASON: &str = "reason";
/// Label: a pool's id.
pub const LABEL_POOL: &str = "pool";
/// Label: a gRPC status code's name, e.g. `INVALID_ARGUMENT`.
pub const LABEL_CODE: &str = "code";

/// Decision time: 1 µs to 10 ms (the engine's target is well under 10 µs).
pub const DECISION_BUCKETS: [f64; 13] =
    [1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2];
/// Waiting time: 1 s to 4 h; 20 s, the default service-level threshold, is a bound, so the
/// service level can be read off the histogram exactly.
pub const WAIT_BUCKETS: [f64; 19] = [
    1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0,
    3600.0, 7200.0, 14400.0,
];
/// Submission to first offer: 100 µs to 5 s.
pub const SUBMIT_TO_OFFER_BUCKETS: [f64; 15] =
    [1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
/// Replay and recovery: 1 ms to 60 s.
pub const RECOVERY_BUCKETS: [f64; 15] =
    [1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// What kind of series a metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up; rendered as `counter`.
    Counter,
    /// A value that goes up and down; rendered as `gauge`.
    Gauge,
    /// Observations counted into buckets; rendered as `histogram`.
    Histogram,
}

/// One metric's definition.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// The full name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// Label keys, each with a small closed set of values.
    pub labels: &'static [&'static str],
    /// The unit, if the value has one (ratios and counts of things have none).
    pub unit: Option<Unit>,
    /// The `# HELP` text.
    pub help: &'static str,
    /// Bucket upper bounds, for histograms; empty otherwise.
    pub buckets: &'static [f64],
}

const fn spec(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    unit: Option<Unit>,
    help: &'static str,
) -> Spec {
    Spec { name, kind, labels, unit, help, buckets: &[] }
}

const fn histogram_spec(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
    buckets: &'static [f64],
) -> Spec {
    Spec { name, kind: Kind::Histogram, labels, unit: Some(Unit::Seconds), help, buckets }
}

/// Every metric Vuoro exports.
pub const SPECS: [Spec; 21] = [
    spec(
        CONTACTS_RECEIVED_TOTAL,
        Kind::Counter,
        &[LABEL_CHANNEL],
        Some(Unit::Count),
        "Contacts that entered Vuoro.",
    ),
    spec(
        CONTACTS_ROUTED_TOTAL,
        Kind::Counter,
        &[LABEL_CHANNEL, LABEL_POOL_KIND],
        Some(Unit::Count),
        "Contacts accepted by an agent or pool.",
    ),
    spec(
        CONTACTS_ABANDONED_TOTAL,
        Kind::Counter,
        &[LABEL_CHANNEL],
        Some(Unit::Count),
        "Contacts that ended before being answered.",
    ),
    spec(
        CONTACTS_OVERFLOWED_TOTAL,
        Kind::Counter,
        &[LABEL_CHANNEL],
        Some(Unit::Count),
        "Contacts overflowed to outsourced pools.",
    ),
    spec(QUEUE_DEPTH, Kind::Gauge, &[LABEL_CHANNEL], Some(Unit::Count), "Contacts waiting in queue."),
    spec(
        QUEUE_OLDEST_WAIT_SECONDS,
        Kind::Gauge,
        &[LABEL_CHANNEL],
        Some(Unit::Seconds),
        "How long the oldest waiting contact has waited.",
    ),
    histogram_spec(WAIT_SECONDS, &[LABEL_CHANNEL], "Time from arrival to acceptance.", &WAIT_BUCKETS),
    histogram_spec(
        DECISION_SECONDS,
        &[],
        "Time to apply one input to the routing engine.",
        &DECISION_BUCKETS,
    ),
    histogram_spec(
        SUBMIT_TO_OFFER_SECONDS,
        &[],
        "Time from a contact's submission to its first offer.",
        &SUBMIT_TO_OFFER_BUCKETS,
    ),
    spec(
        SERVICE_LEVEL_RATIO,
        Kind::Gauge,
        &[LABEL_CHANNEL],
        None,
        "Share of recent contacts answered within the service-level threshold (0-1).",
    ),
    spec(AGENTS, Kind::Gauge, &[LABEL_STATE], Some(Unit::Count), "Agents by state."),
    spec(OCCUPANCY_RATIO, Kind::Gauge, &[LABEL_POOL_KIND], None, "Share of logged-in capacity in use (0-1)."),
    spec(
        KAFKA_PRODUCE_ERRORS_TOTAL,
        Kind::Counter,
        &[],
        Some(Unit::Count),
        "Records Kafka failed to take after the client's retries.",
    ),
    spec(
        KAFKA_CONSUMER_LAG_RECORDS,
        Kind::Gauge,
        &[LABEL_TOPIC],
        Some(Unit::Count),
        "Records not yet consumed, by topic.",
    ),
    spec(
        OWNER_EPOCH_CHANGES_TOTAL,
        Kind::Counter,
        &[],
        Some(Unit::Count),
        "Times this replica gained or lost ownership of a routing domain.",
    ),
    histogram_spec(
        RECOVERY_SECONDS,
        &[],
        "Time to rebuild a routing domain's state from its snapshot and log.",
        &RECOVERY_BUCKETS,
    ),
    spec(
        DEAD_LETTERS_TOTAL,
        Kind::Counter,
        &[LABEL_REASON],
        Some(Unit::Count),
        "Records sent to the dead-letter topic, by reason.",
    ),
    spec(
        POOL_AGENTS,
        Kind::Gauge,
        &[LABEL_POOL, LABEL_STATE],
        Some(Unit::Count),
        "A pool's agents by state.",
    ),
    spec(POOL_OPEN, Kind::Gauge, &[LABEL_POOL], None, "1 while a pool is within its opening hours, else 0."),
    spec(
        POOL_TENANT_WAITING,
        Kind::Gauge,
        &[LABEL_POOL],
        Some(Unit::Count),
        "Contacts waiting in the tenant a pool serves.",
    ),
    spec(
        API_REFUSED_TOTAL,
        Kind::Counter,
        &[LABEL_CODE],
        Some(Unit::Count),
        "API requests refused, by gRPC status code.",
    ),
];

/// Buckets for any histogram missing from [`SPECS`], so none is ever rendered as a summary.
const FALLBACK_BUCKETS: [f64; 12] = [1e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0];

/// How often the global recorder's upkeep runs (folding recorded samples into the histograms,
/// so memory stays bounded between scrapes).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The handle of the recorder [`install`] set as the global one.
static GLOBAL: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// A recorder with every metric's buckets and description, not installed anywhere: the global
/// one comes from [`install`]; tests use their own with [`metrics::with_local_recorder`].
pub fn recorder() -> anyhow::Result<PrometheusRecorder> {
    let mut builder = PrometheusBuilder::new().set_buckets(&FALLBACK_BUCKETS)?;
    for spec in SPECS.iter().filter(|s| s.kind == Kind::Histogram) {
        builder = builder.set_buckets_for_metric(Matcher::Full(spec.name.to_owned()), spec.buckets)?;
    }
    let recorder = builder.build_recorder();
    for spec in &SPECS {
        let (name, help) = (KeyName::from_const_str(spec.name), SharedString::const_str(spec.help));
        match spec.kind {
            Kind::Counter => recorder.describe_counter(name, spec.unit, help),
            Kind::Gauge => recorder.describe_gauge(name, spec.unit, help),
            Kind::Histogram => recorder.describe_histogram(name, spec.unit, help),
        }
    }
    Ok(recorder)
}

/// Installs Vuoro's recorder as the process-wide one (once: later calls return the same handle)
/// and starts its upkeep thread. The handle renders the `/metrics` page.
///
/// Fails if some other recorder is already global: Vuoro's metrics would then go elsewhere.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let mut global = GLOBAL.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(handle) = &*global {
        return Ok(handle.clone());
    }
    let recorder = recorder()?;
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|_| {
        anyhow!("another metrics recorder is already installed; Vuoro's metrics would not be exported")
    })?;
    let upkeep = handle.clone();
    std::thread::Builder::new().name("vuoro-metrics-upkeep".into()).spawn(move || {
        loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            upkeep.run_upkeep();
        }
    })?;
    *global = Some(handle.clone());
    Ok(handle)
}

/// The `channel` label of a channel.
pub fn channel_label(channel: Channel) -> &'static str {
    match channel {
        Channel::Voice => "voice",
        Channel::Email => "email",
        Channel::Social => "social",
        Channel::Chat => "chat",
    }
}

/// The `pool_kind` label: the provider is not part of it.
pub fn pool_kind_label(kind: PoolKind) -> &'static str {
    match kind {
        PoolKind::InHouse => "in_house",
        PoolKind::Outsourced(_) => "outsourced",
    }
}

/// The `state` label of an agent state: every not-ready reason code is `not_ready`.
pub fn agent_state_label(state: AgentState) -> &'static str {
    match state {
        AgentState::Offline => "offline",
        AgentState::Ready => "ready",
        AgentState::NotReady(_) => "not_ready",
        AgentState::Busy => "busy",
        AgentState::WrapUp => "wrap_up",
    }
}

/// Why a record went to the dead-letter topic: the `reason` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeadLetterReason {
    /// The payload did not decode as the expected message.
    Undecodable,
    /// The record's schema version is not one this build reads.
    UnsupportedSchema,
    /// The message decoded but its content is invalid (a missing or malformed field).
    Invalid,
}

impl DeadLetterReason {
    /// Every reason.
    pub const ALL: [DeadLetterReason; 3] =
        [DeadLetterReason::Undecodable, DeadLetterReason::UnsupportedSchema, DeadLetterReason::Invalid];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::Undecodable => "undecodable",
            DeadLetterReason::UnsupportedSchema => "unsupported_schema",
            DeadLetterReason::Invalid => "invalid",
        }
    }
}

/// Counts a contact that entered Vuoro.
pub fn contact_received(channel: Channel) {
    metrics::counter!(CONTACTS_RECEIVED_TOTAL, LABEL_CHANNEL => channel_label(channel)).increment(1);
}

/// Counts a contact accepted by an agent or pool of `pool_kind`.
pub fn contact_routed(channel: Channel, pool_kind: PoolKind) {
    metrics::counter!(
        CONTACTS_ROUTED_TOTAL,
        LABEL_CHANNEL => channel_label(channel),
        LABEL_POOL_KIND => pool_kind_label(pool_kind)
    )
    .increment(1);
}

/// Counts a contact that ended before being answered.
pub fn contact_abandoned(channel: Channel) {
    metrics::counter!(CONTACTS_ABANDONED_TOTAL, LABEL_CHANNEL => channel_label(channel)).increment(1);
}

/// Counts a contact overflowed to outsourced pools.
pub fn contact_overflowed(channel: Channel) {
    metrics::counter!(CONTACTS_OVERFLOWED_TOTAL, LABEL_CHANNEL => channel_label(channel)).increment(1);
}

/// Sets a channel's queue gauges: contacts waiting, the oldest one's wait, and the service level
/// (0–1).
pub fn queue_gauges(channel: Channel, depth: usize, oldest_wait_seconds: f64, service_level: f64) {
    let label = channel_label(channel);
    metrics::gauge!(QUEUE_DEPTH, LABEL_CHANNEL => label).set(depth as f64);
    metrics::gauge!(QUEUE_OLDEST_WAIT_SECONDS, LABEL_CHANNEL => label).set(oldest_wait_seconds);
    metrics::gauge!(SERVICE_LEVEL_RATIO, LABEL_CHANNEL => label).set(service_level);
}

/// Records how long an accepted contact waited.
pub fn wait_time(channel: Channel, seconds: f64) {
    metrics::histogram!(WAIT_SECONDS, LABEL_CHANNEL => channel_label(channel)).record(seconds);
}

/// The decision-time histogram's handle, to register once (after [`install`]) and record into
/// without a lookup per decision.
pub fn decision_histogram() -> metrics::Histogram {
    metrics::histogram!(DECISION_SECONDS)
}

/// Records the time from a contact's submission to its first offer.
pub fn submit_to_offer(seconds: f64) {
    metrics::histogram!(SUBMIT_TO_OFFER_SECONDS).record(seconds);
}

/// Sets how many agents are in `state` — with every not-ready reason counted together.
pub fn agents_by_state(state: AgentState, count: usize) {
    metrics::gauge!(AGENTS, LABEL_STATE => agent_state_label(state)).set(count as f64);
}

/// The `state` labels of a pool's agents, in [`pool_gauges`]' order.
const POOL_AGENT_STATES: [&str; 5] = ["ready", "not_ready", "busy", "wrap_up", "offline"];

/// Sets a pool's gauges: agents by state (`None` for a capacity-level pool), whether it is
/// open, and the contacts waiting in its tenant.
pub fn pool_gauges(pool: &str, agents: Option<&vuoro_engine::AgentCounts>, open: bool, tenant_waiting: u32) {
    let pool = pool.to_owned();
    if let Some(a) = agents {
        let counts = [a.ready, a.not_ready, a.busy, a.wrap_up, a.offline];
        for (state, n) in POOL_AGENT_STATES.into_iter().zip(counts) {
            metrics::gauge!(POOL_AGENTS, LABEL_POOL => pool.clone(), LABEL_STATE => state).set(f64::from(n));
        }
    }
    metrics::gauge!(POOL_OPEN, LABEL_POOL => pool.clone()).set(if open { 1.0 } else { 0.0 });
    metrics::gauge!(POOL_TENANT_WAITING, LABEL_POOL => pool).set(f64::from(tenant_waiting));
}

/// Sets a pool's gauges to NaN: this replica no longer knows it (another one reports it).
pub fn pool_gauges_unknown(pool: &str) {
    for state in POOL_AGENT_STATES {
        metrics::gauge!(POOL_AGENTS, LABEL_POOL => pool.to_owned(), LABEL_STATE => state).set(f64::NAN);
    }
    metrics::gauge!(POOL_OPEN, LABEL_POOL => pool.to_owned()).set(f64::NAN);
    metrics::gauge!(POOL_TENANT_WAITING, LABEL_POOL => pool.to_owned()).set(f64::NAN);
}

/// Counts an API request refused with `code`.
pub fn api_refused(code: tonic::Code) {
    metrics::counter!(API_REFUSED_TOTAL, LABEL_CODE => code_label(code)).increment(1);
}

/// A gRPC code's name as the API documents it.
fn code_label(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Sets the occupancy (0–1) of the pools of a kind.
pub fn occupancy(pool_kind: PoolKind, ratio: f64) {
    metrics::gauge!(OCCUPANCY_RATIO, LABEL_POOL_KIND => pool_kind_label(pool_kind)).set(ratio);
}

/// Counts a record Kafka failed to take.
pub fn kafka_produce_error() {
    metrics::counter!(KAFKA_PRODUCE_ERRORS_TOTAL).increment(1);
}

/// Sets the consumer lag, in records, on one of Vuoro's topics.
pub fn kafka_consumer_lag(topic: Topic, records: u64) {
    metrics::gauge!(KAFKA_CONSUMER_LAG_RECORDS, LABEL_TOPIC => topic.suffix()).set(records as f64);
}

/// Counts a change of owner epoch of a routing domain on this replica.
pub fn owner_epoch_changed() {
    metrics::counter!(OWNER_EPOCH_CHANGES_TOTAL).increment(1);
}

/// Records how long rebuilding a routing domain's state took.
pub fn recovery_time(seconds: f64) {
    metrics::histogram!(RECOVERY_SECONDS).record(seconds);
}

/// Counts a record sent to the dead-letter topic.
pub fn dead_letter(reason: DeadLetterReason) {
    metrics::counter!(DEAD_LETTERS_TOTAL, LABEL_REASON => reason.as_str()).increment(1);
}

#[cfg(test)]
mod tests {
    use vuoro_engine::ProviderId;

    use super::*;

    /// Records one value of every metric into a fresh local recorder and renders it.
    fn render_all() -> String {
        let recorder = recorder().unwrap();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            contact_received(Channel::Chat);
            contact_received(Channel::Chat);
            contact_received(Channel::Voice);
            contact_routed(Channel::Chat, PoolKind::InHouse);
            contact_routed(Channel::Email, PoolKind::Outsourced(ProviderId(7)));
            contact_abandoned(Channel::Voice);
            contact_overflowed(Channel::Social);
            queue_gauges(Channel::Chat, 12, 34.5, 0.8);
            wait_time(Channel::Chat, 3.0);
            wait_time(Channel::Chat, 25.0);
            decision_histogram().record(2e-6);
            decision_histogram().record(3e-6);
            submit_to_offer(0.002);
            agents_by_state(AgentState::NotReady(3), 4);
            agents_by_state(AgentState::Ready, 9);
            occupancy(PoolKind::InHouse, 0.75);
            kafka_produce_error();
            kafka_consumer_lag(Topic::AgentEvents, 17);
            owner_epoch_changed();
            recovery_time(0.5);
            dead_letter(DeadLetterReason::Undecodable);
            let agents = vuoro_engine::AgentCounts { ready: 1, busy: 2, ..Default::default() };
            pool_gauges("helsinki", Some(&agents), true, 3);
            api_refused(tonic::Code::InvalidArgument);
        });
        handle.render()
    }

    #[test]
    fn every_metric_is_rendered_with_help_and_type() {
        let text = render_all();
        for spec in &SPECS {
            assert!(
                text.contains(&format!("# HELP {} {}", spec.name, spec.help)),
                "no help for {}:\n{text}",
                spec.name
            );
            let kind = match spec.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            assert!(
                text.contains(&format!("# TYPE {} {kind}\n", spec.name)),
                "no type for {}:\n{text}",
                spec.name
            );
        }
    }

    #[test]
    fn histograms_have_buckets_not_quantiles() {
        let text = render_all();
        assert!(!text.contains("quantile="), "a summary was rendered:\n{text}");
        assert!(!text.contains("summary"), "{text}");
        for line in [
            "vuoro_decision_seconds_bucket{le=\"0.000001\"} 0",
            "vuoro_decision_seconds_bucket{le=\"0.0000025\"} 1",
            "vuoro_decision_seconds_bucket{le=\"0.000005\"} 2",
            "vuoro_decision_seconds_bucket{le=\"+Inf\"} 2",
            "vuoro_decision_seconds_count 2",
            "vuoro_wait_seconds_bucket{channel=\"chat\",le=\"20\"} 1",
            "vuoro_wait_seconds_bucket{channel=\"chat\",le=\"30\"} 2",
            "vuoro_wait_seconds_bucket{channel=\"chat\",le=\"14400\"} 2",
            "vuoro_wait_seconds_sum{channel=\"chat\"} 28",
            "vuoro_submit_to_offer_seconds_bucket{le=\"0.0001\"} 0",
            "vuoro_submit_to_offer_seconds_bucket{le=\"0.0025\"} 1",
            "vuoro_submit_to_offer_seconds_bucket{le=\"5\"} 1",
            "vuoro_recovery_seconds_bucket{le=\"0.001\"} 0",
            "vuoro_recovery_seconds_bucket{le=\"0.5\"} 1",
            "vuoro_recovery_seconds_bucket{le=\"60\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        // Each histogram has exactly its own buckets, plus +Inf.
        for spec in SPECS.iter().filter(|s| s.kind == Kind::Histogram && s.labels.is_empty()) {
            let buckets = text.lines().filter(|l| l.starts_with(&format!("{}_bucket{{", spec.name))).count();
            assert_eq!(buckets, spec.buckets.len() + 1, "{}", spec.name);
        }
    }

    #[test]
    fn counters_and_gauges_carry_closed_labels() {
        let text = render_all();
        for line in [
            "vuoro_contacts_received_total{channel=\"chat\"} 2",
            "vuoro_contacts_received_total{channel=\"voice\"} 1",
            "vuoro_contacts_routed_total{channel=\"chat\",pool_kind=\"in_house\"} 1",
            "vuoro_contacts_routed_total{channel=\"email\",pool_kind=\"outsourced\"} 1",
            "vuoro_contacts_abandoned_total{channel=\"voice\"} 1",
            "vuoro_contacts_overflowed_total{channel=\"social\"} 1",
            "vuoro_queue_depth{channel=\"chat\"} 12",
            "vuoro_queue_oldest_wait_seconds{channel=\"chat\"} 34.5",
            "vuoro_service_level_ratio{channel=\"chat\"} 0.8",
            "vuoro_agents{state=\"not_ready\"} 4",
            "vuoro_agents{state=\"ready\"} 9",
            "vuoro_occupancy_ratio{pool_kind=\"in_house\"} 0.75",
            "vuoro_kafka_produce_errors_total 1",
            "vuoro_kafka_consumer_lag_records{topic=\"agent-events\"} 17",
            "vuoro_owner_epoch_changes_total 1",
            "vuoro_dead_letters_total{reason=\"undecodable\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
    }

    #[test]
    fn names_follow_the_conventions() {
        let mut names: Vec<&str> = SPECS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SPECS.len(), "duplicate names");
        for spec in &SPECS {
            assert!(spec.name.starts_with("vuoro_"), "{}", spec.name);
            assert_eq!(spec.kind == Kind::Counter, spec.name.ends_with("_total"), "{}", spec.name);
            assert_eq!(spec.kind == Kind::Histogram, !spec.buckets.is_empty(), "{}", spec.name);
            assert!(spec.buckets.windows(2).all(|w| w[0] < w[1]), "{} buckets not increasing", spec.name);
            assert!(!spec.help.is_empty());
        }
        let labels: Vec<&str> = DeadLetterReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels, ["undecodable", "unsupported_schema", "invalid"]);
    }

    #[test]
    fn install_twice_gives_one_global_recorder() {
        let first = install().unwrap();
        let second = install().unwrap();
        owner_epoch_changed();
        // Both handles read the same recorder (other tests may add to it: no exact count).
        assert!(first.render().contains("vuoro_owner_epoch_changes_total "));
        assert!(second.render().contains("vuoro_owner_epoch_changes_total "));
    }
}
