//! The admin port's `/metrics`, in a process of its own (the metrics recorder is global, so
//! exact values need one service per process).

use std::time::Duration;

use tonic::transport::Endpoint;
use vuoro_proto::v1;
use vuoro_service::serve::Server;

mod support;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_the_documented_series_without_ids() {
    let server = Server::start(&test_config()).await.expect("the service starts");
    let channel =
        Endpoint::from_shared(format!("http://{}", server.grpc_addr)).unwrap().connect().await.unwrap();
    setup_tenant(&channel).await;
    let mut contacts = v1::contact_service_client::ContactServiceClient::new(channel.clone());
    for id in ["m-1", "m-2"] {
        contacts
            .submit_contact(v1::SubmitContactRequest { contact: Some(contact(id, "legal")) })
            .await
            .unwrap();
        wait_for_state(&mut contacts, id, v1::ContactState::Queued).await;
    }
    let unknown = v1::ContactRef { tenant: "acme".into(), id: "never-submitted".into() };
    assert_eq!(contacts.get_contact(unknown).await.unwrap_err().code(), tonic::Code::NotFound);
    let invalid = v1::Contact { tenant: String::new(), ..contact("m-3", "legal") };
    let refused = contacts.submit_contact(v1::SubmitContactRequest { contact: Some(invalid) }).await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::InvalidArgument);
    tokio::time::sleep(Duration::from_millis(2_100)).await; // gauges and lag refresh every second
    let metrics = http_get(server.admin_addr, "/metrics").await;
    for series in [
        "vuoro_contacts_received_total{channel=\"voice\"} 2",
        "vuoro_queue_depth{channel=\"voice\"} 2",
        "vuoro_agents{state=\"offline\"} 1",
        "vuoro_owner_epoch_changes_total 2",
        "vuoro_decision_seconds_bucket{le=",
        "vuoro_recovery_seconds_bucket{le=",
        "# TYPE vuoro_decision_seconds histogram",
        "vuoro_kafka_consumer_lag_records{topic=\"contacts\"} 0",
        "vuoro_pool_agents{pool=\"helsinki\",state=\"offline\"} 1",
        "vuoro_pool_agents{pool=\"helsinki\",state=\"ready\"} 0",
        "vuoro_pool_open{pool=\"helsinki\"} 1",
        "vuoro_pool_tenant_waiting_contacts{pool=\"helsinki\"} 2",
        "vuoro_api_refused_total{code=\"NOT_FOUND\"} 1",
        "vuoro_api_refused_total{code=\"INVALID_ARGUMENT\"} 1",
    ] {
        assert!(metrics.contains(series), "/metrics lacks {series}:\n{metrics}");
    }
    assert!(!metrics.contains("acme"), "no tenant ids as labels");
    assert!(!metrics.contains("code=\"OK\""), "answered requests are not refusals");
    server.stop(Duration::from_secs(5)).await;
}
