//! A router that restarts comes back from its snapshot: the snapshot is on the compacted
//! topic, and the queue it restores serves the waiting contacts in their order.

use std::time::Duration;

use tonic::transport::Endpoint;
use vuoro_proto::v1;
use vuoro_service::config::Topic;
use vuoro_service::serve::Server;

mod support;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_router_resumes_from_its_snapshot_with_the_queue_in_order() {
    let mut config = test_config();
    config.snapshot_interval_records = 5;
    let cluster = vuoro_service::kafka::EmbeddedCluster::start(&config.kafka).unwrap();
    config.kafka.brokers = Some(cluster.bootstrap().to_owned());

    let first = Server::start(&config).await.expect("the service starts");
    let channel =
        Endpoint::from_shared(format!("http://{}", first.grpc_addr)).unwrap().connect().await.unwrap();
    setup_tenant(&channel).await;
    let mut contacts = v1::contact_service_client::ContactServiceClient::new(channel.clone());
    let ids: Vec<String> = (0..12).map(|i| format!("q{i:02}")).collect();
    for id in &ids {
        contacts
            .submit_contact(v1::SubmitContactRequest { contact: Some(contact(id, "billing")) })
            .await
            .unwrap();
    }
    for id in &ids {
        wait_for_state(&mut contacts, id, v1::ContactState::Queued).await;
    }

    // The router snapshotted acme's domain once the record it reflects was read back.
    let reader = {
        let mut reader = rdkafka::ClientConfig::new();
        reader.set("bootstrap.servers", cluster.bootstrap());
        reader
    };
    let topic = config.kafka.topic(Topic::Snapshots);
    let partition = vuoro_service::kafka::partition_for("acme", config.kafka.partitions);
    let snapshot = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match vuoro_service::snapshots::latest(&reader, &topic, partition).unwrap() {
                Some((snapshot, _slot)) if !snapshot.payloads.is_empty() => return snapshot,
                _ if std::time::Instant::now() > deadline => panic!("no snapshot with contacts within 30 s"),
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(snapshot.partition, partition);
    assert!(snapshot.decisions_offset > 0, "{}", snapshot.decisions_offset);
    assert!(snapshot.payloads.values().all(|c| ids.contains(&c.id)), "only acme's waiting contacts");
    first.stop(Duration::from_secs(5)).await;

    // A new router on the same cluster restores the domain and serves the queue in order.
    let second = Server::start(&config).await.expect("the service starts again");
    let channel =
        Endpoint::from_shared(format!("http://{}", second.grpc_addr)).unwrap().connect().await.unwrap();
    let mut desk = Desk::ready(&channel, "aino").await;
    use v1::agent_action::Action as A;
    for id in &ids {
        let offer = desk.offer().await;
        assert_eq!(offer.contact.as_ref().map(|c| c.id.as_str()), Some(id.as_str()), "served in order");
        desk.send(A::Accept(v1::Accept { reservation: offer.reservation }));
        desk.send(A::Complete(v1::Complete { reservation: offer.reservation }));
    }
    second.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn either_of_two_replicas_answers_a_tenants_queue_statistics_from_its_owner() {
    let mut config = test_config();
    let cluster = vuoro_service::kafka::EmbeddedCluster::start(&config.kafka).unwrap();
    config.kafka.brokers = Some(cluster.bootstrap().to_owned());
    let first = Server::start(&config).await.expect("the first replica starts");
    let second = Server::start(&config).await.expect("the second replica starts");
    let connect = |server: &Server| {
        Endpoint::from_shared(format!("http://{}", server.grpc_addr)).unwrap().connect_lazy()
    };
    let channels = [connect(&first), connect(&second)];
    setup_tenant(&channels[0]).await;
    let mut contacts = v1::contact_service_client::ContactServiceClient::new(channels[0].clone());
    contacts
        .submit_contact(v1::SubmitContactRequest { contact: Some(contact("waiting", "legal")) })
        .await
        .unwrap();

    // Only one replica owns acme's routing domain; the other asks it.
    for channel in &channels {
        let mut admin = v1::admin_service_client::AdminServiceClient::new(channel.clone());
        let answered = async {
            loop {
                let stats = admin.get_queue_stats(v1::QueueStatsRequest { tenant: "acme".into() }).await;
                if let Ok(stats) = stats
                    && stats
                        .get_ref()
                        .queues
                        .iter()
                        .any(|q| q.channel == v1::Channel::Voice as i32 && q.waiting == 1)
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), answered)
            .await
            .expect("both replicas answer within 30 s");
    }
    second.stop(Duration::from_secs(5)).await;
    first.stop(Duration::from_secs(5)).await;
}
