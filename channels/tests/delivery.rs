//! Messages out, end to end: a Messenger customer writes, an agent accepts and replies over
//! gRPC, and the status updates and the reply reach the platform's send API — here a local HTTP server standing in
//! for the Graph API, which checks each request's shape and fails the first attempt to prove
//! the retry.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::sync::mpsc;
use vuoro_adapters::meta::{Secret, signature_header};
use vuoro_proto::v1;

mod support;
use support::*;

const ACCESS_TOKEN: &str = "test-access-token";

/// A request the fake send API received.
#[derive(Debug)]
struct Sent {
    method: String,
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: serde_json::Value,
}

/// A fake Graph API: answers 503 to the first request and 200 to the rest, and reports each.
async fn fake_send_api() -> (SocketAddr, mpsc::UnboundedReceiver<Sent>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut answered = 0;
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            answered += 1;
            let status = if answered == 1 { 503 } else { 200 };
            let tx = tx.clone();
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let tx = tx.clone();
                async move {
                    let header = |name: &str| {
                        request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
                    };
                    let (authorization, content_type) = (header("authorization"), header("content-type"));
                    let (method, path) = (request.method().to_string(), request.uri().path().to_owned());
                    let bytes = request.into_body().collect().await.unwrap().to_bytes();
                    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
                    let _ = tx.send(Sent { method, path, authorization, content_type, body });
                    let answer = json!({"recipient_id": "6789012345678901", "message_id": "m_reply"});
                    let mut response = Response::new(Full::new(Bytes::from(answer.to_string())));
                    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_joining_the_reply_and_the_end_reach_the_messenger_send_api_and_every_feed() {
    let (graph, mut sent) = fake_send_api().await;

    let mut router_config = test_config();
    router_config.channels = Default::default();
    let server = vuoro_service::serve::Server::start(&router_config).await.unwrap();
    let grpc = tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    setup_tenant(&grpc).await;
    let mut desk = Desk::ready(&grpc).await;

    let mut config = test_config();
    config.kafka.brokers = Some(server.kafka_bootstrap.clone());
    config.channels.meta.as_mut().unwrap().send_api_url = Some(format!("http://{graph}/v21.0"));
    config.channels.meta_access_token = Some(Secret::new(ACCESS_TOKEN));
    config.validate().expect("a valid configuration");
    let adapters = vuoro_channels::Adapters::start(&config).await.expect("vuoro adapters starts");
    let joined = async {
        while !adapters.delivery_ready() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), joined).await.expect("the delivery consumer joins");

    // The customer writes on Messenger; the agent gets it, accepts and replies.
    let body = messenger_body("m_order_question", "Where is my order?");
    let signature = signature_header(&Secret::new(APP_SECRET), body.as_bytes());
    let reply = http(
        adapters.channels_addr,
        "POST",
        "/webhooks/meta",
        &[("x-hub-signature-256", signature.as_str())],
        body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let offer = desk.offer().await;
    let contact = offer.contact.expect("the offered contact").id;
    assert_eq!(contact, "messenger:m_order_question");
    use v1::agent_action::Action as A;
    desk.send(A::Accept(v1::Accept { reservation: offer.reservation }));
    let mut contacts = v1::contact_service_client::ContactServiceClient::new(grpc.clone());
    let accepted = async {
        loop {
            let status =
                contacts.get_contact(v1::ContactRef { tenant: TENANT.into(), id: contact.clone() }).await;
            if status.is_ok_and(|s| s.into_inner().state == v1::ContactState::Accepted as i32) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), accepted).await.expect("the contact is accepted");
    desk.send(A::Reply(v1::Reply { contact: contact.clone(), text: "It ships tomorrow.".into() }));

    desk.send(A::Complete(v1::Complete { reservation: offer.reservation }));

    // The platform gets each text in order: the first request is refused (503) and sent again.
    let mut texts = Vec::new();
    let mut first_path = None;
    while texts.last().map(String::as_str)
        != Some("This conversation is closed. Thank you for contacting us!")
    {
        let request = tokio::time::timeout(Duration::from_secs(30), sent.recv())
            .await
            .unwrap_or_else(|_| panic!("the conversation closed within 30 s: {texts:?}"))
            .unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, format!("/v21.0/{PAGE_ID}/messages"));
        assert_eq!(request.authorization.as_deref(), Some("Bearer test-access-token"));
        assert_eq!(request.content_type.as_deref(), Some("application/json"));
        assert_eq!(request.body["recipient"], json!({"id": "6789012345678901"}));
        assert_eq!(request.body["messaging_type"], "RESPONSE");
        first_path.get_or_insert(request.path);
        texts.push(request.body["message"]["text"].as_str().unwrap().to_owned());
    }
    assert_eq!(texts[0], texts[1], "the refused first request is sent again: {texts:?}");
    let heard: Vec<&str> =
        texts[1..].iter().map(String::as_str).filter(|t| !t.contains("in the queue")).collect();
    assert_eq!(
        heard,
        [
            "An agent has joined the conversation.",
            "It ships tomorrow.",
            "This conversation is closed. Thank you for contacting us!"
        ],
        "{texts:?}"
    );
    assert!(
        texts.iter().filter(|t| t.contains("in the queue")).count() <= 1,
        "the place in the queue is told once"
    );
    // Each sent once it succeeded: nothing more.
    assert!(
        tokio::time::timeout(Duration::from_secs(2), sent.recv()).await.is_err(),
        "a request after success"
    );

    // Every process's feed holds the conversation for whoever waits on it.
    let cluster_config = vuoro_service::config::KafkaConfig {
        brokers: Some(server.kafka_bootstrap.clone()),
        ..test_config().kafka
    };
    let cluster = vuoro_service::kafka::Cluster::start(&cluster_config).await.unwrap();
    let feed = vuoro_channels::feed::Feed::start(&cluster, &[v1::Channel::Social], Duration::from_secs(600))
        .unwrap();
    let mut messages = feed.subscribe(TENANT, &contact);
    let mut kinds = Vec::new();
    while !matches!(kinds.last(), Some(v1::outbound_message::Message::Completed(_))) {
        let message = tokio::time::timeout(Duration::from_secs(30), messages.recv())
            .await
            .unwrap_or_else(|_| panic!("the feed caught up within 30 s: {kinds:?}"))
            .unwrap();
        kinds.push(message.message.unwrap());
    }
    assert!(kinds.contains(&v1::outbound_message::Message::Reply("It ships tomorrow.".into())), "{kinds:?}");
    drop(feed);

    adapters.stop(Duration::from_secs(5)).await;
    server.stop(Duration::from_secs(5)).await;
}
