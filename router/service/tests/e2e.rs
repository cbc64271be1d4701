//! End to end, in process: the service on free ports over the embedded Kafka cluster, driven
//! through generated gRPC clients like a contact-centre platform and an agent desktop would.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use tonic_types::StatusExt;
use vuoro_proto::v1;
use vuoro_service::config::Config;
use vuoro_service::serve::Server;

/// The configuration every test starts from: free ports, two partitions, fast refreshes.
fn test_config() -> Config {
    let mut config = Config {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        status_interval_ms: 500,
        ..Config::default()
    };
    config.kafka.partitions = 2;
    config
}

async fn start() -> (Server, Channel) {
    let server = Server::start(&test_config()).await.expect("the service starts");
    let channel =
        Endpoint::from_shared(format!("http://{}", server.grpc_addr)).unwrap().connect().await.unwrap();
    (server, channel)
}

/// The service on a cluster the test holds (to take its broker down or write to it directly).
async fn start_on_own_cluster() -> (vuoro_service::kafka::EmbeddedCluster, Config, Server) {
    let mut config = test_config();
    let cluster = vuoro_service::kafka::EmbeddedCluster::start(&config.kafka).unwrap();
    config.kafka.brokers = Some(cluster.bootstrap().to_owned());
    let server = Server::start(&config).await.expect("the service starts");
    (cluster, config, server)
}

fn voice_agent(id: &str) -> v1::Agent {
    v1::Agent {
        id: id.into(),
        tenant: "acme".into(),
        pool: "helsinki".into(),
        skills: vec![v1::Skill { skill: "billing".into(), level: 3 }],
        languages: vec!["fi".into()],
        capacity: Some(v1::Capacity { total: 1, voice_max: 1, voice_weight: 1, ..Default::default() }),
    }
}

fn contact(id: &str, skill: &str) -> v1::Contact {
    v1::Contact {
        id: id.into(),
        tenant: "acme".into(),
        channel: v1::Channel::Voice as i32,
        required_skills: vec![v1::SkillRequirement { skill: skill.into(), min_level: 2 }],
        language: "fi".into(),
        ..Default::default()
    }
}

/// The next message on an agent stream, within a deadline.
async fn next(stream: &mut tonic::Streaming<v1::AgentMessage>) -> v1::agent_message::Message {
    tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("a message within 20 s")
        .expect("the stream is open")
        .expect("no error")
        .message
        .expect("a message")
}

async fn setup_tenant(channel: &Channel) {
    let mut admin = v1::admin_service_client::AdminServiceClient::new(channel.clone());
    admin
        .upsert_policy(v1::UpsertPolicyRequest {
            policy: Some(v1::Policy { tenant: "acme".into(), ..Default::default() }),
        })
        .await
        .unwrap();
    let mut pools = v1::pool_service_client::PoolServiceClient::new(channel.clone());
    pools
        .upsert_pool(v1::UpsertPoolRequest {
            pool: Some(v1::Pool {
                id: "helsinki".into(),
                tenant: "acme".into(),
                kind: v1::PoolKind::InHouse as i32,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let mut agents = v1::agent_service_client::AgentServiceClient::new(channel.clone());
    agents.upsert_agent(v1::UpsertAgentRequest { agent: Some(voice_agent("aino")) }).await.unwrap();
    // Configuration and contacts travel on different topics: wait until the router applied it.
    let applied = async {
        while agents
            .list_agents(v1::ListAgentsRequest { tenant: "acme".into() })
            .await
            .unwrap()
            .into_inner()
            .agents
            .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), applied).await.expect("the configuration is applied");
}

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

    // The admin port's /metrics carries the documented series.
    tokio::time::sleep(Duration::from_millis(1_100)).await; // gauges refresh every second
    let metrics = http_get(server.admin_addr, "/metrics").await;
    for series in [
        "vuoro_contacts_received_total{channel=\"voice\"} 2",
        "vuoro_contacts_routed_total{channel=\"voice\",pool_kind=\"in_house\"} 1",
        "vuoro_decision_seconds_bucket{le=",
        "vuoro_submit_to_offer_seconds_bucket{le=",
        "vuoro_wait_seconds_bucket{channel=\"voice\",le=",
        "vuoro_queue_depth{channel=\"voice\"} 1",
        "vuoro_owner_epoch_changes_total",
    ] {
        assert!(metrics.contains(series), "/metrics lacks {series}:\n{metrics}");
    }
    assert!(!metrics.contains("acme"), "no tenant ids as labels");

    server.stop(Duration::from_secs(5)).await;
}

/// The body of an HTTP GET on the admin port.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()
}

async fn wait_for_state(
    contacts: &mut v1::contact_service_client::ContactServiceClient<Channel>,
    id: &str,
    state: v1::ContactState,
) -> v1::ContactStatus {
    let wait = async {
        loop {
            if let Ok(status) =
                contacts.get_contact(v1::ContactRef { tenant: "acme".into(), id: id.into() }).await
            {
                let status = status.into_inner();
                if status.state == state as i32 {
                    return status;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("contact {id} did not reach {state:?} within 30 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_contact_is_refused_with_every_field_and_reason() {
    let (server, channel) = start().await;
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
    let args =
        LoadgenArgs { target: None, kafka_brokers: None, contacts: 300, agents: 4, tenant: "load".into() };
    let report = drive(&channel, &args).await.expect("the load runs");
    assert_eq!(report.contacts, 300);
    assert_eq!(report.latency.len(), 300, "one submit-to-offer sample per contact");
    assert!(report.offered_per_second > 0.0 && report.submitted_per_second >= report.offered_per_second);
    server.stop(Duration::from_secs(5)).await;
}
