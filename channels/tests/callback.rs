//! The phone callback end to end, in process: `vuoro serve` with its channel listeners over the
//! embedded Kafka cluster, an agent desktop over gRPC, and the telephony platform played by
//! this test on the dial-instructions and dial-outcomes topics. What is asserted is what the
//! customer is answered and told (the promise, its move, a retry, the last failed attempt), what
//! the telephony platform is asked to dial, and what an operator finds on the dead-letter topic.

use std::time::{Duration, Instant};

use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tonic::transport::Channel;
use vuoro_channels::status::{self, Language};
use vuoro_proto::v1;
use vuoro_proto::v1::agent_action::Action as A;
use vuoro_proto::v1::outbound_message::Message as O;
use vuoro_service::config::{CallbackChannelConfig, Config};

mod support;
use support::*;

/// The voice handle time the tests set in the tenant's policy: an estimate for the first in
/// the queue with one agent staffed is exactly this.
const HANDLE_TIME_MS: u64 = 240_000;
/// Seconds between call attempts in these tests.
const SPACING_SECONDS: i64 = 3;

/// The shared test configuration, with tenant acme's callbacks tried twice, `SPACING_SECONDS`
/// apart, and the default promise tolerance (10 minutes).
fn config() -> Config {
    let mut config = test_config();
    let callback: toml::Table = toml::from_str(&format!(
        r#"
        max_body_bytes = 4096
        promise_wait_ms = 5000
        [tenants.acme]
        default_region = "FI"
        queue = "callbacks"
        required_skills = [{{ skill = "voice" }}]
        retry_attempts = 2
        retry_spacing_seconds = [{SPACING_SECONDS}]
        caller_id = "09 4242 4242"
        "#
    ))
    .unwrap();
    config.channels.callback = Some(CallbackChannelConfig::try_from(callback).unwrap());
    config
}

/// Sets tenant acme's voice handle time and waits until the router has applied it.
async fn set_voice_handle_time(grpc: &Channel, handle_time_ms: u64) {
    let mut admin = v1::admin_service_client::AdminServiceClient::new(grpc.clone());
    let voice = v1::ChannelPolicy {
        channel: v1::Channel::Voice as i32,
        default_handle_time_ms: handle_time_ms,
        ..Default::default()
    };
    let policy = v1::Policy { tenant: TENANT.into(), channels: vec![voice], ..Default::default() };
    admin.upsert_policy(v1::UpsertPolicyRequest { policy: Some(policy) }).await.unwrap();
    let applied = async {
        loop {
            let policy = admin.get_policy(v1::GetPolicyRequest { tenant: TENANT.into() }).await;
            if policy.is_ok_and(|p| {
                p.into_inner().channels.iter().any(|c| c.default_handle_time_ms == handle_time_ms)
            }) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), applied).await.expect("the policy is applied");
}

/// Waits until contact `id` is in `state`.
async fn wait_for_state(grpc: &Channel, id: &str, state: v1::ContactState) {
    let mut contacts = v1::contact_service_client::ContactServiceClient::new(grpc.clone());
    let reached = async {
        loop {
            let status = contacts.get_contact(v1::ContactRef { tenant: TENANT.into(), id: id.into() }).await;
            if status.is_ok_and(|s| s.into_inner().state == state as i32) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), reached)
        .await
        .unwrap_or_else(|_| panic!("{id} reached {state:?} within 30 s"));
}

/// The agent takes the next offer, which must be for contact `id`; returns its reservation.
async fn accept(desk: &mut Desk, grpc: &Channel, id: &str) -> u64 {
    let offer = desk.offer().await;
    assert_eq!(offer.contact.as_ref().map(|c| c.id.as_str()), Some(id));
    desk.send(A::Accept(v1::Accept { reservation: offer.reservation }));
    wait_for_state(grpc, id, v1::ContactState::Accepted).await;
    offer.reservation
}

async fn post_callback(channels: std::net::SocketAddr, body: &str) -> serde_json::Value {
    let reply =
        http(channels, "POST", "/callback", &[("content-type", "application/json")], body.to_owned()).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    reply.json()
}

/// The first record of `topic` (read from the beginning of every partition) that `wanted`
/// picks, within 30 s.
fn find<T: prost::Message + Default>(bootstrap: &str, topic: &str, wanted: impl Fn(&T) -> bool) -> T {
    use rdkafka::Message as _;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "callback-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        partitions.add_partition_offset(topic, partition, Offset::Beginning).unwrap();
    }
    consumer.assign(&partitions).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Some(Ok(record)) = consumer.poll(Duration::from_millis(100)) else { continue };
        if let Ok(value) = T::decode(record.payload().unwrap_or_default())
            && wanted(&value)
        {
            return value;
        }
    }
    panic!("no such record on {topic} within 30 s");
}

/// A notice on the outbound topic about `contact`.
fn notice(bootstrap: &str, contact: &str, text_starts: &str) -> v1::OutboundMessage {
    find(bootstrap, "vuoro.outbound", |m: &v1::OutboundMessage| {
        m.contact == contact && matches!(&m.message, Some(O::Notice(t)) if t.starts_with(text_starts))
    })
}

/// Writes a record to the dial-outcomes topic as the telephony platform would, keyed by tenant.
async fn send_outcome(bootstrap: &str, payload: Vec<u8>, correlation: &str) {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let record = FutureRecord::to("vuoro.dial-outcomes")
        .partition(vuoro_service::kafka::partition_for(TENANT, PARTITIONS))
        .key(TENANT)
        .payload(&payload)
        .headers(vuoro_service::kafka::headers(correlation));
    producer.send(record, Duration::from_secs(10)).await.expect("Kafka takes the outcome");
}

fn outcome(contact: &str, attempt: u32, kind: v1::DialOutcomeKind) -> Vec<u8> {
    v1::DialOutcome {
        tenant: TENANT.into(),
        contact: contact.into(),
        attempt,
        outcome: kind as i32,
        at_unix_ms: vuoro_channels::now().timestamp_millis(),
        detail: "SIP 480".into(),
    }
    .encode_to_vec()
}

/// The value of the sample named exactly `series` in Prometheus text.
fn counter(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
}

fn now_ms() -> i64 {
    vuoro_channels::now().timestamp_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_promises_the_routers_estimate_and_a_moved_estimate_is_told() {
    let (server, grpc, channels) = start_with(&config()).await;
    setup_tenant(&grpc).await;
    set_voice_handle_time(&grpc, HANDLE_TIME_MS).await;

    // Nobody is logged in: the router has no estimate, and the answer says so.
    let answer =
        post_callback(channels, r#"{"tenant": "acme", "request_id": "nobody-1", "number": "040 123 4567"}"#)
            .await;
    let promise = &answer["callback"];
    assert_eq!(promise["estimate"], "unknown", "{answer}");
    assert_eq!(promise["unknown_because"], "no_agent", "{answer}");
    assert_eq!(promise["from_estimate"], false);
    assert!(promise.get("promised_at").is_none(), "no time is invented: {answer}");
    assert_eq!(answer["message"], "We will call you on +358401234567 as soon as an agent is free.");

    // The agent logs in and takes that call: now busy, with no other voice slot.
    let mut desk = Desk::ready(&grpc).await;
    accept(&mut desk, &grpc, "callback:nobody-1").await;

    // The next customer (in Finnish, which aino speaks) waits first in the queue behind one
    // busy agent: the estimate is one handle time, added to the moment the router queued the
    // contact.
    let before = now_ms();
    let answer = post_callback(
        channels,
        r#"{"tenant": "acme", "request_id": "busy-2", "number": "040 765 4321", "language": "fi",
            "alternative": {"channel": "whatsapp", "address": "040 765 4321"}}"#,
    )
    .await;
    let after = now_ms();
    let promise = &answer["callback"];
    assert_eq!(promise["estimate"], "known", "{answer}");
    assert_eq!(promise["from_estimate"], true);
    assert_eq!(promise["estimated_wait_ms"], HANDLE_TIME_MS);
    let promised = promise["promised_at_unix_ms"].as_i64().unwrap();
    let wait = HANDLE_TIME_MS as i64;
    assert!(
        (before + wait..=after + wait).contains(&promised),
        "{before} + {wait} <= {promised} <= {after} + {wait}"
    );
    let utc = chrono::DateTime::parse_from_rfc3339(promise["promised_at_utc"].as_str().unwrap()).unwrap();
    assert_eq!(utc.timestamp(), promised / 1000);
    assert!(promise["promised_at_utc"].as_str().unwrap().ends_with('Z'), "{answer}");
    let at = chrono::DateTime::from_timestamp_millis(promised).unwrap();
    assert_eq!(answer["message"], status::callback_promised(Language::Fi, at, chrono_tz::UTC));

    // Calls now take half an hour: the promise moves by 26 minutes, beyond the 10 allowed, and
    // the customer hears it on WhatsApp (contact `whatsapp:…` for Meta's courier).
    let moved_from = now_ms();
    set_voice_handle_time(&grpc, 1_800_000).await;
    let moved =
        notice(&server.kafka_bootstrap, "whatsapp:callback:busy-2", "Takaisinsoittomme aika on muuttunut");
    let moved_to = now_ms();
    assert_eq!(moved.channel, v1::Channel::Social as i32);
    assert_eq!(moved.address, "+358407654321");
    let Some(O::Notice(text)) = &moved.message else { unreachable!() };
    let shown = text.rsplit("soitamme nyt ").next().unwrap().trim_end_matches(" UTC.");
    let shown =
        chrono::NaiveDateTime::parse_from_str(shown, "%Y-%m-%d %H:%M").unwrap().and_utc().timestamp_millis();
    let (earliest, latest) = (moved_from + 1_800_000 - 60_000, moved_to + 1_800_000);
    assert!(
        (earliest..=latest).contains(&shown),
        "moved to {text:?}, expected between {earliest} and {latest}"
    );

    let metrics = http(server.admin_addr, "GET", "/metrics", &[], "").await.text();
    let line = "vuoro_channel_customers_told_total{channel=\"callback\",via=\"whatsapp\",notice=\"moved\"} 1";
    assert!(metrics.contains(line), "missing {line:?} in:\n{metrics}");
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_callback_is_dialled_retried_and_given_up_with_the_customer_told() {
    let (server, grpc, channels) = start_with(&config()).await;
    let bootstrap = server.kafka_bootstrap.clone();
    setup_tenant(&grpc).await;
    let mut desk = Desk::ready(&grpc).await;

    post_callback(
        channels,
        r#"{"tenant": "acme", "request_id": "dial-1", "number": "040 123 4567", "language": "en",
            "reason": "My invoice is wrong", "alternative": {"channel": "email", "address": "maija@example.fi"}}"#,
    )
    .await;
    let reservation = accept(&mut desk, &grpc, "callback:dial-1").await;

    // The telephony platform is told to call the customer's E.164 number and connect aino.
    let first =
        find(&bootstrap, "vuoro.dial-instructions", |d: &v1::DialInstruction| d.contact == "callback:dial-1");
    assert_eq!(first.tenant, TENANT);
    assert_eq!(first.number, "+358401234567");
    assert_eq!(first.agent, "aino");
    assert_eq!((first.attempt, first.max_attempts), (1, 2));
    assert_eq!(first.caller_id.as_deref(), Some("+358942424242"));
    assert_eq!(first.reason, "My invoice is wrong");
    assert_eq!(first.language, "en");
    assert!(!first.id.is_empty());
    desk.send(A::Complete(v1::Complete { reservation }));

    // Nobody answered: attempt 2 is scheduled SPACING_SECONDS on, and the customer is told the
    // new time by email.
    let sent = now_ms();
    send_outcome(&bootstrap, outcome("callback:dial-1", 1, v1::DialOutcomeKind::NoAnswer), "no-answer-1")
        .await;
    wait_for_state(&grpc, "callback:dial-1#2", v1::ContactState::Scheduled).await;
    let written = now_ms();
    let scheduled = find(&bootstrap, "vuoro.outbound", |m: &v1::OutboundMessage| {
        m.contact == "callback:dial-1#2" && matches!(m.message, Some(O::ScheduledUnixMs(_)))
    });
    let Some(O::ScheduledUnixMs(not_before)) = scheduled.message else { unreachable!() };
    let spacing = SPACING_SECONDS * 1000;
    assert!((sent + spacing..=written + spacing).contains(&not_before), "{sent} + {spacing} <= {not_before}");
    let told = notice(&bootstrap, "callback:dial-1", "We tried to call you");
    assert_eq!(told.channel, v1::Channel::Email as i32);
    assert_eq!(told.address, "maija@example.fi");
    let at = chrono::DateTime::from_timestamp_millis(not_before).unwrap();
    assert_eq!(told.message, Some(O::Notice(status::callback_retry(Language::En, at, chrono_tz::UTC))));

    // The same outcome again is a duplicate; an attempt never dialled is unknown; garbage is
    // malformed: each dead-lettered with its reason.
    send_outcome(&bootstrap, outcome("callback:dial-1", 1, v1::DialOutcomeKind::NoAnswer), "bad-outcome")
        .await;
    send_outcome(&bootstrap, outcome("callback:dial-1", 7, v1::DialOutcomeKind::Busy), "bad-outcome").await;
    send_outcome(&bootstrap, b"\x08\x96\x01 not a dial outcome".to_vec(), "bad-outcome").await;
    let missing =
        v1::DialOutcome { tenant: TENANT.into(), contact: "callback:dial-1".into(), ..Default::default() };
    send_outcome(&bootstrap, missing.encode_to_vec(), "bad-outcome").await;

    // At its time, attempt 2 goes to the agent who dialled before, and is dialled as attempt 2.
    let reservation = accept(&mut desk, &grpc, "callback:dial-1#2").await;
    let second = find(&bootstrap, "vuoro.dial-instructions", |d: &v1::DialInstruction| {
        d.contact == "callback:dial-1#2"
    });
    assert_eq!((second.number.as_str(), second.agent.as_str(), second.attempt), ("+358401234567", "aino", 2));
    desk.send(A::Complete(v1::Complete { reservation }));

    // Busy again, and that was the last attempt: the customer is told we could not reach them.
    send_outcome(&bootstrap, outcome("callback:dial-1#2", 2, v1::DialOutcomeKind::Busy), "busy-2").await;
    let told = notice(&bootstrap, "callback:dial-1#2", "We tried to call you several times");
    assert_eq!((told.channel, told.address.as_str()), (v1::Channel::Email as i32, "maija@example.fi"));
    assert_eq!(told.message, Some(O::Notice(status::callback_unreachable(Language::En))));

    let letters = dead_letters(&bootstrap, "bad-outcome", 4);
    let codes: Vec<&str> = letters.iter().filter_map(|l| l.header("vuoro-reason-code")).collect();
    assert_eq!(codes, ["duplicate_outcome", "unknown_attempt", "malformed_outcome", "malformed_outcome"]);
    assert_eq!(
        letters[3].header("vuoro-reason"),
        Some("malformed_outcome: attempt: required, 1 or more; outcome: required")
    );
    assert!(letters.iter().all(|l| l.header("vuoro-source-topic") == Some("channel:callback")));
    assert_eq!(letters[2].payload, b"\x08\x96\x01 not a dial outcome", "the record as received");

    // The metrics are the process's: the other test of this file may add its own dial
    // instruction, and nothing else here.
    let metrics = http(server.admin_addr, "GET", "/metrics", &[], "").await.text();
    let instructions = counter(&metrics, "vuoro_channel_dial_instructions_total{channel=\"callback\"}");
    assert!(instructions >= 2.0, "{instructions} dial instructions counted:\n{metrics}");
    for line in [
        "vuoro_channel_dial_outcomes_total{channel=\"callback\",outcome=\"no_answer\"} 1",
        "vuoro_channel_dial_outcomes_total{channel=\"callback\",outcome=\"busy\"} 1",
        "vuoro_channel_callback_retries_total{channel=\"callback\"} 1",
        "vuoro_channel_customers_told_total{channel=\"callback\",via=\"email\",notice=\"retry\"} 1",
        "vuoro_channel_customers_told_total{channel=\"callback\",via=\"email\",notice=\"unreachable\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in:\n{metrics}");
    }
    server.stop(Duration::from_secs(5)).await;
}
