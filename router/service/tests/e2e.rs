//! End to end, in process: the service on free ports over the embedded Kafka cluster, driven
//! through generated gRPC clients like a contact-centre platform and an agent desktop would.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Code;
use tonic::transport::Endpoint;
use tonic_types::StatusExt;
use vuoro_proto::v1;

mod support;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_is_offered_to_the_qualified_agent_who_accepts_and_completes_it() {
    let (server, channel) = start().await;
    setup_tenant(&channel).await;

    // The agent desktop connects, logs in and goes ready.
    let mut agents = v1::agent_service_client::AgentServiceClient::new(channel.clone());
    let (actions, outbox) = mpsc::unbounded_channel();
    let action = |a| v1::AgentAction { action: Some(a) };
    use v1::agent_action::Action as A;
    actions.send(action(A::Login(v1::Login { agent: "aino".into(), tenant: "acme".into() }))).unwrap();
    actions.send(action(A::Ready(v1::Ready {}))).unwrap();
    let mut desk = agents.connect(UnboundedReceiverStream::new(outbox)).await.unwrap().into_inner();
    loop {
        if let v1::agent_message::Message::State(state) = next(&mut desk).await
            && state == v1::AgentState::Ready as i32
        {
            break;
        }
    }

    // A malformed action is refused on the stream, which stays open.
    actions.send(action(A::NotReady(v1::NotReady { reason: 70_000 }))).unwrap();
    let v1::agent_message::Message::Refused(reason) = next(&mut desk).await else { panic!("a refusal") };
    assert!(reason.contains("not_ready.reason"), "{reason}");

    // A contact nobody can serve waits; the one she can serve is offered to her.
    let mut contacts = v1::contact_service_client::ContactServiceClient::new(channel.clone());
    let waiting = contacts
        .submit_contact(v1::SubmitContactRequest { contact: Some(contact("c-legal", "legal")) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(waiting.state, v1::ContactState::Queued as i32, "{waiting:?}");
    assert_eq!(waiting.position, 1);
    assert_eq!(waiting.estimated_wait_ms, None, "nobody logged in can serve it, so no estimate");

    let offered = contacts
        .submit_contact(v1::SubmitContactRequest { contact: Some(contact("c-bill", "billing")) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(offered.state, v1::ContactState::Offered as i32, "{offered:?}");
    let offer = loop {
        if let v1::agent_message::Message::Offer(offer) = next(&mut desk).await {
            break offer;
        }
    };
    assert_eq!(offer.contact.as_ref().map(|c| c.id.as_str()), Some("c-bill"));
    assert_eq!(offer.target, "aino");

    // Submitting the same id again is idempotent.
    let again = contacts
        .submit_contact(v1::SubmitContactRequest { contact: Some(contact("c-bill", "billing")) })
        .await
        .unwrap()
        .into_inner();
    assert!(again.duplicate);

    actions.send(action(A::Accept(v1::Accept { reservation: offer.reservation }))).unwrap();
    let status = wait_for_state(&mut contacts, "c-bill", v1::ContactState::Accepted).await;
    assert_eq!(status.assigned_to, "aino");

    actions.send(action(A::Complete(v1::Complete { reservation: offer.reservation }))).unwrap();
    let gone = async {
        loop {
            let r = contacts.get_contact(v1::ContactRef { tenant: "acme".into(), id: "c-bill".into() }).await;
            if r.as_ref().is_err_and(|s| s.code() == Code::NotFound) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), gone).await.expect("the completed contact is gone");

    // Queue statistics reflect both contacts.
    let mut admin = v1::admin_service_client::AdminServiceClient::new(channel.clone());
    let stats =
        admin.get_queue_stats(v1::QueueStatsRequest { tenant: "acme".into() }).await.unwrap().into_inner();
    let voice = stats.queues.iter().find(|q| q.channel == v1::Channel::Voice as i32).expect("a voice queue");
    assert_eq!(voice.received, 2);
    assert_eq!(voice.answered, 1);
    assert_eq!(voice.waiting, 1, "the legal contact still waits");

    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_bad_request_gets_its_documented_error_and_nothing_is_produced() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use vuoro_service::config::Topic;

    let (cluster, config, server) = start_on_own_cluster().await;
    let channel =
        Endpoint::from_shared(format!("http://{}", server.grpc_addr)).unwrap().connect().await.unwrap();
    setup_tenant(&channel).await;
    let watermarks: std::sync::Arc<BaseConsumer> = std::sync::Arc::new(
        rdkafka::ClientConfig::new().set("bootstrap.servers", cluster.bootstrap()).create().unwrap(),
    );
    let places: Vec<(String, i32)> = [Topic::Contacts, Topic::AgentEvents]
        .iter()
        .flat_map(|&t| (0..config.kafka.partitions).map(move |p| (t, p)))
        .map(|(t, p)| (config.kafka.topic(t), p))
        .collect();
    let produced = move || -> i64 {
        places
            .iter()
            .map(|(topic, p)| watermarks.fetch_watermarks(topic, *p, Duration::from_secs(5)).unwrap().1)
            .sum()
    };
    let before = tokio::task::spawn_blocking(produced.clone()).await.unwrap();

    // INVALID_ARGUMENT, naming every bad field.
    let mut contacts = v1::contact_service_client::ContactServiceClient::new(channel.clone());
    let bad =
        v1::Contact { id: String::new(), tenant: "acme".into(), priority: 300, ..contact("x", "billing") };
    let status = contacts.submit_contact(v1::SubmitContactRequest { contact: Some(bad) }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    let fields: Vec<&str> = details
        .bad_request()
        .expect("a BadRequest detail")
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert!(fields.iter().any(|f| f.ends_with("id")), "{fields:?}");
    assert!(fields.iter().any(|f| f.ends_with("priority")), "{fields:?}");
    let missing = contacts.submit_contact(v1::SubmitContactRequest { contact: None }).await.unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
    let mut agents = v1::agent_service_client::AgentServiceClient::new(channel.clone());
    let nameless = v1::Agent { id: String::new(), ..voice_agent("x") };
    let refused = agents.upsert_agent(v1::UpsertAgentRequest { agent: Some(nameless) }).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let (actions, outbox) = mpsc::unbounded_channel();
    actions.send(v1::AgentAction { action: Some(v1::agent_action::Action::Ready(v1::Ready {})) }).unwrap();
    let no_login = agents.connect(UnboundedReceiverStream::new(outbox)).await;
    let no_login = match no_login {
        Err(status) => status,
        Ok(response) => {
            let mut stream = response.into_inner();
            tokio::time::timeout(Duration::from_secs(10), stream.message()).await.unwrap().unwrap_err()
        }
    };
    assert_eq!(no_login.code(), Code::InvalidArgument, "{no_login:?}");

    // NOT_FOUND for what does not exist.
    let nobody = v1::ContactRef { tenant: "acme".into(), id: "nobody".into() };
    assert_eq!(contacts.get_contact(nobody.clone()).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(contacts.cancel_contact(nobody.clone()).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(contacts.watch_contact(nobody).await.unwrap_err().code(), Code::NotFound);
    let stranger = v1::RemoveAgentRequest { tenant: "acme".into(), id: "stranger".into() };
    assert_eq!(agents.remove_agent(stranger).await.unwrap_err().code(), Code::NotFound);
    let mut admin = v1::admin_service_client::AdminServiceClient::new(channel.clone());
    let unknown = v1::GetPolicyRequest { tenant: "globex".into() };
    assert_eq!(admin.get_policy(unknown).await.unwrap_err().code(), Code::NotFound);

    // ALREADY_EXISTS: an agent id another tenant holds.
    let taken = v1::Agent { tenant: "globex".into(), ..voice_agent("aino") };
    let status = agents.upsert_agent(v1::UpsertAgentRequest { agent: Some(taken) }).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");

    let after = tokio::task::spawn_blocking(produced).await.unwrap();
    assert_eq!(after, before, "no refused request reached Kafka");
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_kafka_is_unreachable_submits_are_unavailable_and_nothing_acknowledged_is_lost() {
    let (cluster, _config, server) = start_on_own_cluster().await;
    let channel =
        Endpoint::from_shared(format!("http://{}", server.grpc_addr)).unwrap().connect().await.unwrap();
    setup_tenant(&channel).await;
    let mut contacts = v1::contact_service_client::ContactServiceClient::new(channel.clone());
    let submit = |id: &str| v1::SubmitContactRequest { contact: Some(contact(id, "legal")) };
    contacts.submit_contact(submit("before")).await.expect("Kafka is up");

    cluster.set_reachable(false).unwrap();
    let refused = contacts.submit_contact(submit("during")).await.expect_err("Kafka is down");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let retry = refused.get_error_details();
    assert!(retry.retry_info().and_then(|r| r.retry_delay).is_some(), "a retry hint: {refused:?}");

    cluster.set_reachable(true).unwrap();
    let back = async {
        loop {
            if contacts.submit_contact(submit("after")).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), back).await.expect("submits work again");
    for id in ["before", "after"] {
        wait_for_state(&mut contacts, id, v1::ContactState::Queued).await;
    }
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_that_cannot_be_processed_goes_to_the_dead_letter_topic_with_the_reason() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Headers;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::{ClientConfig, Message};

    let (cluster, config, server) = start_on_own_cluster().await;

    // A producer that is not Vuoro writes garbage to the contacts topic.
    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", cluster.bootstrap()).create().unwrap();
    let topic = config.kafka.topic(vuoro_service::config::Topic::Contacts);
    let garbage = FutureRecord::to(&topic).partition(0).key("acme").payload(&[0xff_u8, 0xff, 0xff][..]);
    producer.send(garbage, Duration::from_secs(5)).await.unwrap();

    let dead: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .set("group.id", "test-dead-letters")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    dead.subscribe(&[&config.kafka.topic(vuoro_service::config::Topic::DeadLetters)]).unwrap();
    let record = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Some(Ok(message)) = dead.poll(Duration::from_millis(200)) {
                return Some(message.detach());
            }
        }
        None
    })
    .await
    .unwrap()
    .expect("a dead letter within 30 s");
    assert_eq!(record.payload(), Some(&[0xff_u8, 0xff, 0xff][..]), "the input, unchanged");
    let headers = record.headers().expect("headers");
    let reason = headers.iter().find(|h| h.key == "vuoro-reason").and_then(|h| h.value).expect("a reason");
    assert!(
        String::from_utf8_lossy(reason).contains("not a RouterInput"),
        "{}",
        String::from_utf8_lossy(reason)
    );
    let source = headers.iter().find(|h| h.key == "vuoro-source-topic").and_then(|h| h.value).unwrap();
    assert_eq!(source, topic.as_bytes());
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_drives_every_contact_to_an_offer_and_measures_each() {
    use vuoro_service::loadgen::{LoadgenArgs, drive};
    let (server, channel) = start().await;
    let args = LoadgenArgs {
        target: None,
        kafka_brokers: None,
        contacts: 300,
        agents: 4,
        tenant: "load".into(),
        rate: 0,
    };
    let report = drive(&channel, &args).await.expect("the load runs");
    assert_eq!(report.contacts, 300);
    assert_eq!(report.latency.len(), 300, "one submit-to-offer sample per contact");
    assert!(report.offered_per_second > 0.0 && report.submitted_per_second >= report.offered_per_second);
    server.stop(Duration::from_secs(5)).await;
}
