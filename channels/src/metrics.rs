//! The channels' Prometheus metrics: names, labels and help texts defined once, recorded
//! through the `metrics` facade (the global recorder `vuoro-service` installs). Labels take
//! values from small closed sets: the channel, and a refusal's stable reason code.

use metrics::Unit;

/// Requests that reached a channel endpoint (before any check), by `channel`.
pub const RECEIVED_TOTAL: &str = "vuoro_channel_received_total";
/// Contacts a channel published to the contacts topic and Kafka acknowledged, by `channel`.
pub const ACCEPTED_TOTAL: &str = "vuoro_channel_accepted_total";
/// Requests or events refused, by `channel` and `reason` (the adapters' stable code, e.g.
/// `malformed_json`, `signature_mismatch`, `invalid_number`, or `unavailable` when Kafka did
/// not take the contact).
pub const REJECTED_TOTAL: &str = "vuoro_channel_rejected_total";
/// Webhook events that are routinely not contacts (receipts, echoes, statuses), by `channel`
/// and `reason`.
pub const IGNORED_TOTAL: &str = "vuoro_channel_ignored_total";
/// Time from a request's arrival to its answer, in seconds, by `channel`.
pub const REQUEST_SECONDS: &str = "vuoro_channel_request_seconds";
/// Outbound messages handed to a platform's send API, by `channel`.
pub const DELIVERED_TOTAL: &str = "vuoro_channel_delivered_total";
/// Outbound messages a platform did not take, by `channel` and `reason`.
pub const DELIVERY_FAILURES_TOTAL: &str = "vuoro_channel_delivery_failures_total";

/// Dial instructions written to the dial-instructions topic and acknowledged, by `channel`.
pub const DIAL_INSTRUCTIONS_TOTAL: &str = "vuoro_channel_dial_instructions_total";
/// Call attempt outcomes read from the dial-outcomes topic, by `channel` and `outcome`
/// (`answered`, `no_answer`, `busy`, `voicemail`, `failed`).
pub const DIAL_OUTCOMES_TOTAL: &str = "vuoro_channel_dial_outcomes_total";
/// Further call attempts scheduled after a failed one, by `channel`.
pub const CALLBACK_RETRIES_TOTAL: &str = "vuoro_channel_callback_retries_total";
/// Notices written for a customer's alternative channel, by `channel`, `via` (`email`,
/// `whatsapp`) and `notice` (`moved`, `retry`, `unreachable`).
pub const CUSTOMERS_TOLD_TOTAL: &str = "vuoro_channel_customers_told_total";
/// Notices that could not be written because the customer's alternative channel has no
/// courier (`sms`), by `channel`, `via` and `notice`.
pub const NOTICES_UNDELIVERABLE_TOTAL: &str = "vuoro_channel_notices_undeliverable_total";

/// Label: the channel endpoint (`callback`, `meta`, `email`, `chat`).
pub const LABEL_CHANNEL: &str = "channel";
/// Label: a stable snake_case reason code.
pub const LABEL_REASON: &str = "reason";
/// Label: how a call attempt ended.
pub const LABEL_OUTCOME: &str = "outcome";
/// Label: the alternative channel a notice goes through.
pub const LABEL_VIA: &str = "via";
/// Label: which notice (`moved`, `retry`, `unreachable`).
pub const LABEL_NOTICE: &str = "notice";

/// Gives every channel metric its help text and unit on the global recorder, so `/metrics`
/// shows `# HELP` lines (promtool wants them). Idempotent.
pub fn describe() {
    metrics::describe_counter!(RECEIVED_TOTAL, Unit::Count, "Requests that reached a channel endpoint.");
    metrics::describe_counter!(
        ACCEPTED_TOTAL,
        Unit::Count,
        "Contacts a channel published and Kafka acknowledged."
    );
    metrics::describe_counter!(REJECTED_TOTAL, Unit::Count, "Channel requests or events refused, by reason.");
    metrics::describe_counter!(
        IGNORED_TOTAL,
        Unit::Count,
        "Webhook events that are not contacts (receipts, echoes, statuses), by reason."
    );
    metrics::describe_histogram!(
        REQUEST_SECONDS,
        Unit::Seconds,
        "Time from a channel request's arrival to its answer."
    );
    metrics::describe_counter!(
        DELIVERED_TOTAL,
        Unit::Count,
        "Outbound messages handed to a platform's send API."
    );
    metrics::describe_counter!(
        DELIVERY_FAILURES_TOTAL,
        Unit::Count,
        "Outbound messages a platform's send API did not take, by reason."
    );
    metrics::describe_counter!(
        DIAL_INSTRUCTIONS_TOTAL,
        Unit::Count,
        "Dial instructions written for the telephony platform."
    );
    metrics::describe_counter!(DIAL_OUTCOMES_TOTAL, Unit::Count, "Call attempt outcomes read, by outcome.");
    metrics::describe_counter!(
        CALLBACK_RETRIES_TOTAL,
        Unit::Count,
        "Further call attempts scheduled after a failed one."
    );
    metrics::describe_counter!(
        CUSTOMERS_TOLD_TOTAL,
        Unit::Count,
        "Notices written for a customer's alternative channel, by channel and notice."
    );
    metrics::describe_counter!(
        NOTICES_UNDELIVERABLE_TOTAL,
        Unit::Count,
        "Notices not written: the customer's alternative channel has no courier."
    );
}

/// Counts a request that reached `channel`.
pub fn received(channel: &'static str) {
    metrics::counter!(RECEIVED_TOTAL, LABEL_CHANNEL => channel).increment(1);
}

/// Counts `n` contacts of `channel` Kafka acknowledged.
pub fn accepted(channel: &'static str, n: u64) {
    metrics::counter!(ACCEPTED_TOTAL, LABEL_CHANNEL => channel).increment(n);
}

/// Counts a refusal of `channel` for `reason`.
pub fn rejected(channel: &'static str, reason: &'static str) {
    metrics::counter!(REJECTED_TOTAL, LABEL_CHANNEL => channel, LABEL_REASON => reason).increment(1);
}

/// Counts an event of `channel` ignored for `reason`.
pub fn ignored(channel: &'static str, reason: &'static str) {
    metrics::counter!(IGNORED_TOTAL, LABEL_CHANNEL => channel, LABEL_REASON => reason).increment(1);
}

/// Records how long a request of `channel` took to answer.
pub fn request_time(channel: &'static str, seconds: f64) {
    metrics::histogram!(REQUEST_SECONDS, LABEL_CHANNEL => channel).record(seconds);
}

/// Counts an outbound message delivered through `channel`.
pub fn delivered(channel: &'static str) {
    metrics::counter!(DELIVERED_TOTAL, LABEL_CHANNEL => channel).increment(1);
}

/// Counts an outbound message of `channel` that could not be delivered, for `reason`.
pub fn delivery_failed(channel: &'static str, reason: &'static str) {
    metrics::counter!(DELIVERY_FAILURES_TOTAL, LABEL_CHANNEL => channel, LABEL_REASON => reason).increment(1);
}

/// Counts a dial instruction of `channel` Kafka acknowledged.
pub fn dial_instruction(channel: &'static str) {
    metrics::counter!(DIAL_INSTRUCTIONS_TOTAL, LABEL_CHANNEL => channel).increment(1);
}

/// Counts a call attempt outcome.
pub fn dial_outcome(channel: &'static str, outcome: &'static str) {
    metrics::counter!(DIAL_OUTCOMES_TOTAL, LABEL_CHANNEL => channel, LABEL_OUTCOME => outcome).increment(1);
}

/// Counts a further call attempt scheduled.
pub fn callback_retry(channel: &'static str) {
    metrics::counter!(CALLBACK_RETRIES_TOTAL, LABEL_CHANNEL => channel).increment(1);
}

/// Counts a notice written for a customer's alternative channel `via`.
pub fn customer_told(channel: &'static str, via: &'static str, notice: &'static str) {
    metrics::counter!(CUSTOMERS_TOLD_TOTAL, LABEL_CHANNEL => channel, LABEL_VIA => via, LABEL_NOTICE => notice)
        .increment(1);
}

/// Counts a notice that could not be written: `via` has no courier.
pub fn notice_undeliverable(channel: &'static str, via: &'static str, notice: &'static str) {
    metrics::counter!(
        NOTICES_UNDELIVERABLE_TOTAL,
        LABEL_CHANNEL => channel, LABEL_VIA => via, LABEL_NOTICE => notice
    )
    .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_has_help_type_and_closed_labels() {
        let recorder = vuoro_service::metrics::recorder().unwrap();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe();
            received("callback");
            accepted("meta", 2);
            rejected("meta", "signature_mismatch");
            ignored("meta", "read");
            request_time("callback", 0.003);
            delivered("meta");
            delivery_failed("meta", "http_status");
            dial_instruction("callback");
            dial_outcome("callback", "no_answer");
            callback_retry("callback");
            customer_told("callback", "email", "moved");
            notice_undeliverable("callback", "sms", "retry");
        });
        let text = handle.render();
        for (name, kind) in [
            (RECEIVED_TOTAL, "counter"),
            (ACCEPTED_TOTAL, "counter"),
            (REJECTED_TOTAL, "counter"),
            (IGNORED_TOTAL, "counter"),
            (REQUEST_SECONDS, "histogram"),
            (DELIVERED_TOTAL, "counter"),
            (DELIVERY_FAILURES_TOTAL, "counter"),
            (DIAL_INSTRUCTIONS_TOTAL, "counter"),
            (DIAL_OUTCOMES_TOTAL, "counter"),
            (CALLBACK_RETRIES_TOTAL, "counter"),
            (CUSTOMERS_TOLD_TOTAL, "counter"),
            (NOTICES_UNDELIVERABLE_TOTAL, "counter"),
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "no help for {name}:\n{text}");
            assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "no type for {name}:\n{text}");
        }
        for line in [
            "vuoro_channel_received_total{channel=\"callback\"} 1",
            "vuoro_channel_accepted_total{channel=\"meta\"} 2",
            "vuoro_channel_rejected_total{channel=\"meta\",reason=\"signature_mismatch\"} 1",
            "vuoro_channel_ignored_total{channel=\"meta\",reason=\"read\"} 1",
            "vuoro_channel_request_seconds_count{channel=\"callback\"} 1",
            "vuoro_channel_delivery_failures_total{channel=\"meta\",reason=\"http_status\"} 1",
            "vuoro_channel_dial_outcomes_total{channel=\"callback\",outcome=\"no_answer\"} 1",
            "vuoro_channel_customers_told_total{channel=\"callback\",via=\"email\",notice=\"moved\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(!text.contains("quantile="), "a histogram was rendered as a summary:\n{text}");
    }
}
