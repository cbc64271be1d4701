//! End to end, in process: `vuoro serve` with its channel listeners on free ports over the
//! embedded Kafka cluster. Requests go over real HTTP as a web form, an IVR or Meta would send
//! them; what comes out is what an agent desktop sees over gRPC, what the sender is answered,
//! and the records on the dead-letter topic.

use std::time::Duration;

use vuoro_adapters::meta::{Secret, signature_header};
use vuoro_proto::v1;

mod support;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_request_over_http_is_offered_to_an_agent() {
    let (server, grpc, channels) = start().await;
    setup_tenant(&grpc).await;
    let mut desk = Desk::ready(&grpc).await;

    let body = r#"{"tenant": "acme", "request_id": "webform-1", "number": "040 123 4567",
        "name": "Maija Meikäläinen", "language": "fi", "reason": "Laskussa on virhe"}"#;
    let reply = http(channels, "POST", "/callback", &[("content-type", "application/json")], body).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let answer = reply.json();
    assert_eq!(answer["id"], "callback:webform-1");
    assert_eq!(answer["status"], "accepted");
    assert_eq!(answer["number"], "+358401234567");
    assert_eq!(answer["callback"]["as_soon_as_possible"], true);
    assert_eq!(answer["message"], "We will call you on +358401234567 as soon as an agent is free.");
    assert!(reply.header("x-request-id").is_some());

    let offer = desk.offer().await;
    let contact = offer.contact.expect("the offered contact");
    assert_eq!(contact.id, "callback:webform-1");
    assert_eq!(contact.tenant, "acme");
    assert_eq!(contact.channel, v1::Channel::Voice as i32);
    assert_eq!(contact.language, "fi");
    assert_eq!(contact.customer.as_ref().map(|c| c.address.as_str()), Some("+358401234567"));
    assert_eq!(contact.attributes.get("reason").map(String::as_str), Some("Laskussa on virhe"));
    assert_eq!(offer.target, "aino");

    // A request for a window tomorrow is promised for its start, in the customer's zone.
    let tomorrow = (vuoro_channels::now() + chrono::Duration::days(1)).format("%Y-%m-%d");
    let body = format!(
        r#"{{"tenant": "acme", "number": "+358 40 765 4321", "window":
            {{"time_zone": "Europe/Helsinki", "start": "{tomorrow}T09:00", "end": "{tomorrow}T11:30"}}}}"#
    );
    let reply = http(channels, "POST", "/callback", &[], body).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let promise = &reply.json()["callback"];
    assert_eq!(promise["as_soon_as_possible"], false);
    assert_eq!(promise["time_zone"], "Europe/Helsinki");
    let not_before = promise["not_before"].as_str().unwrap();
    assert!(not_before.starts_with(&format!("{tomorrow}T09:00:00+0")), "{not_before}");

    let metrics = http(server.admin_addr, "GET", "/metrics", &[], "").await.text();
    for line in
        ["vuoro_channel_accepted_total{channel=\"callback\"} ", "vuoro_channel_request_seconds_bucket{"]
    {
        assert!(metrics.contains(line), "missing {line:?} in:\n{metrics}");
    }
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_messenger_webhook_becomes_a_contact() {
    let (server, grpc, channels) = start().await;
    setup_tenant(&grpc).await;
    let mut desk = Desk::ready(&grpc).await;

    let body = messenger_body("m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM", "Hello, my order has not arrived yet");
    let signature = signature_header(&Secret::new(APP_SECRET), body.as_bytes());
    let reply =
        http(channels, "POST", "/webhooks/meta", &[("x-hub-signature-256", signature.as_str())], body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["contacts"], 1);

    let offer = desk.offer().await;
    let contact = offer.contact.expect("the offered contact");
    assert_eq!(contact.id, "messenger:m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM");
    assert_eq!(contact.channel, v1::Channel::Social as i32);
    assert_eq!(contact.customer.as_ref().map(|c| c.address.as_str()), Some("6789012345678901"));
    assert_eq!(
        contact.attributes.get("text").map(String::as_str),
        Some("Hello, my order has not arrived yet")
    );
    assert_eq!(contact.attributes.get("platform").map(String::as_str), Some("messenger"));

    // A message to a Page nobody configured is dead-lettered, and the batch still answered 200
    // (Meta would otherwise deliver it again and again).
    let body = messenger_body("m_elsewhere", "hello?").replace(PAGE_ID, "555");
    let signature = signature_header(&Secret::new(APP_SECRET), body.as_bytes());
    let headers = [("x-hub-signature-256", signature.as_str()), ("x-request-id", "unknown-page-1")];
    let reply = http(channels, "POST", "/webhooks/meta", &headers, body.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        (reply.json()["contacts"].as_u64(), reply.json()["dead_lettered"].as_u64()),
        (Some(0), Some(1))
    );
    let letters = dead_letters(&server.kafka_bootstrap, "unknown-page-1", 1);
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].header("vuoro-reason-code"), Some("unknown_account"));
    assert_eq!(letters[0].header("vuoro-event-path"), Some("entry[0].messaging[0]"));
    assert_eq!(letters[0].payload, body.as_bytes());
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_signature_is_401_with_a_dead_letter() {
    let (server, _grpc, channels) = start().await;
    let body = messenger_body("m_forged", "let me in");
    let forged = signature_header(&Secret::new("not-the-app-secret"), body.as_bytes());
    let headers = [("x-hub-signature-256", forged.as_str()), ("x-request-id", "forged-1")];
    let reply = http(channels, "POST", "/webhooks/meta", &headers, body.clone()).await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    let error = reply.json();
    assert_eq!(error["error"], "signature_mismatch");
    assert_eq!(error["fields"][0]["field"], "X-Hub-Signature-256");
    assert_eq!(reply.header("x-request-id"), Some("forged-1"));

    // No signature at all is refused the same way, with its own reason.
    let reply = http(channels, "POST", "/webhooks/meta", &[("x-request-id", "forged-1")], body.clone()).await;
    assert_eq!((reply.status, reply.json()["error"].as_str()), (401, Some("signature_missing")));

    let letters = dead_letters(&server.kafka_bootstrap, "forged-1", 2);
    assert_eq!(letters.len(), 2, "{letters:?}");
    let reasons: Vec<&str> = letters.iter().filter_map(|l| l.header("vuoro-reason-code")).collect();
    assert_eq!(reasons, ["signature_mismatch", "signature_missing"]);
    let letter = &letters[0];
    assert!(letter.header("vuoro-reason").unwrap().starts_with("signature_mismatch: "), "{letter:?}");
    assert_eq!(letter.header("vuoro-source-topic"), Some("channel:meta"));
    assert_eq!(letter.header("vuoro-schema"), Some("1"));
    assert_eq!(letter.payload, body.as_bytes(), "the body as received");

    let metrics = http(server.admin_addr, "GET", "/metrics", &[], "").await.text();
    let line = "vuoro_channel_rejected_total{channel=\"meta\",reason=\"signature_mismatch\"} ";
    assert!(metrics.contains(line), "missing {line:?} in:\n{metrics}");
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_400_with_a_dead_letter() {
    let (server, _grpc, channels) = start().await;
    let body = r#"{"tenant": "acme", "number": "040 123 4567""#;
    let reply = http(channels, "POST", "/callback", &[("x-request-id", "broken-1")], body).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    let error = reply.json();
    assert_eq!(error["error"], "malformed_json");
    assert_eq!(error["fields"][0]["field"], "body");
    assert_eq!(error["fields"][0]["line"], 1);

    // Well-formed JSON with a misspelt field names the field.
    let reply = http(
        channels,
        "POST",
        "/callback",
        &[("x-request-id", "broken-1")],
        r#"{"tenant": "acme", "numbr": "040 123 4567"}"#,
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.json()["fields"][0]["field"], "numbr");

    // And a Meta body that is not JSON, though correctly signed.
    let garbage = "{\"object\": \"page\", \"entry\": [";
    let signature = signature_header(&Secret::new(APP_SECRET), garbage.as_bytes());
    let headers = [("x-hub-signature-256", signature.as_str()), ("x-request-id", "broken-1")];
    let reply = http(channels, "POST", "/webhooks/meta", &headers, garbage).await;
    assert_eq!((reply.status, reply.json()["error"].as_str()), (400, Some("malformed_json")));

    let letters = dead_letters(&server.kafka_bootstrap, "broken-1", 3);
    assert_eq!(letters.len(), 3, "{letters:?}");
    let first = letters.iter().find(|l| l.payload == body.as_bytes()).expect("the first body, as received");
    assert_eq!(first.header("vuoro-reason-code"), Some("malformed_json"));
    assert_eq!(first.header("vuoro-source-topic"), Some("channel:callback"));
    assert!(first.header("vuoro-reason").unwrap().starts_with("malformed_json: "));
    let sources: Vec<&str> = letters.iter().filter_map(|l| l.header("vuoro-source-topic")).collect();
    assert!(sources.contains(&"channel:meta"), "{sources:?}");
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_echoes_the_challenge_only_for_the_right_token() {
    let (server, _grpc, channels) = start().await;
    let path =
        format!("/webhooks/meta?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={VERIFY_TOKEN}");
    let reply = http(channels, "GET", &path, &[], "").await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "1158201444"));
    assert_eq!(reply.header("content-type"), Some("text/plain; charset=utf-8"));

    let path = "/webhooks/meta?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=guess";
    let reply = http(channels, "GET", path, &[("x-request-id", "handshake-1")], "").await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert!(!reply.text().contains("1158201444"), "the challenge is not echoed: {}", reply.text());
    let error = reply.json();
    assert_eq!(error["error"], "token_mismatch");
    assert_eq!(error["fields"][0]["field"], "hub.verify_token");

    let letters = dead_letters(&server.kafka_bootstrap, "handshake-1", 1);
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].header("vuoro-reason-code"), Some("token_mismatch"));
    assert_eq!(
        String::from_utf8_lossy(&letters[0].payload),
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=<redacted>"
    );
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_and_invalid_fields_are_refused_with_dead_letters() {
    let (server, _grpc, channels) = start().await;
    // Declared too large: refused before the body is read.
    let big = "x".repeat(5000);
    let reply = http(channels, "POST", "/callback", &[("x-request-id", "refused-1")], big).await;
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert_eq!(reply.json()["error"], "too_large");

    // Invalid fields: every one listed, 422.
    let body = r#"{"tenant": "acme", "number": "12", "window":
        {"time_zone": "Mars/Olympus", "start": "2020-01-01T09:00", "end": "2020-01-01T10:00"}}"#;
    let reply = http(channels, "POST", "/callback", &[("x-request-id", "refused-1")], body).await;
    assert_eq!(reply.status, 422, "{}", reply.text());
    let fields: Vec<String> = reply.json()["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("{}:{}", f["field"].as_str().unwrap(), f["code"].as_str().unwrap()))
        .collect();
    assert_eq!(fields, ["number:invalid_number", "window.time_zone:unknown_time_zone"]);

    // Keyed differently, so on partitions of their own: found by reason, not by order.
    let letters = dead_letters(&server.kafka_bootstrap, "refused-1", 2);
    let by_code = |code: &str| {
        letters
            .iter()
            .find(|l| l.header("vuoro-reason-code") == Some(code))
            .unwrap_or_else(|| panic!("{code}: {letters:?}"))
    };
    assert!(by_code("too_large").payload.is_empty(), "an oversized body is not kept");
    assert_eq!(by_code("too_large").key, "callback", "no tenant read: keyed by the channel");
    assert_eq!(by_code("invalid_number").key, "acme", "keyed by the tenant the request named");
    assert_eq!(by_code("invalid_number").payload, body.as_bytes());

    // Unknown paths and methods are answered, not dead-lettered.
    assert_eq!(http(channels, "GET", "/nowhere", &[], "").await.status, 404);
    let reply = http(channels, "GET", "/callback", &[], "").await;
    assert_eq!((reply.status, reply.header("allow")), (405, Some("POST")));
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vuoro_adapters_runs_apart_from_the_router_on_its_kafka() {
    // The router without channels ...
    let mut router_config = test_config();
    router_config.channels = Default::default();
    let (server, grpc, _) = {
        let server = vuoro_service::serve::Server::start(&router_config).await.unwrap();
        let grpc = tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc_addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        (server, grpc, ())
    };
    assert!(server.extension_addrs.is_empty());
    setup_tenant(&grpc).await;
    let mut desk = Desk::ready(&grpc).await;

    // ... and the adapters on their own, on the router's Kafka.
    let mut config = test_config();
    config.kafka.brokers = Some(server.kafka_bootstrap.clone());
    let adapters = vuoro_channels::Adapters::start(&config).await.expect("vuoro adapters starts");
    assert!(adapters.health.is_ready());

    let body = r#"{"tenant": "acme", "request_id": "ivr-7", "number": "+358 9 1234 5678", "language": "en"}"#;
    let reply = http(adapters.channels_addr, "POST", "/callback", &[], body).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let offer = desk.offer().await;
    assert_eq!(offer.contact.map(|c| c.id), Some("callback:ivr-7".to_owned()));

    let ready = http(adapters.admin_addr, "GET", "/readyz", &[], "").await;
    assert_eq!(ready.status, 200);
    adapters.stop(Duration::from_secs(5)).await;
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_kafka_cannot_take_the_contact_the_answer_is_503_with_retry_after() {
    let mut config = test_config();
    let cluster = vuoro_service::kafka::EmbeddedCluster::start(&config.kafka).unwrap();
    config.kafka.brokers = Some(cluster.bootstrap().to_owned());
    let (server, _grpc, channels) = start_with(&config).await;

    cluster.set_reachable(false).unwrap();
    let body = r#"{"tenant": "acme", "request_id": "lost-1", "number": "040 123 4567"}"#;
    let reply = http(channels, "POST", "/callback", &[], body).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(reply.json()["error"], "unavailable");

    // Back up, the same request is taken.
    cluster.set_reachable(true).unwrap();
    let reply = http(channels, "POST", "/callback", &[], body).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_given_its_own_address_is_served_there_and_only_there() {
    let mut config = test_config();
    config.channels.meta.as_mut().unwrap().listen_addr = Some("127.0.0.2:0".parse().unwrap());
    let (server, _grpc, shared) = start_with(&config).await;
    let addr_of = |name: &str| server.extension_addrs.iter().find(|(n, _)| *n == name).map(|(_, a)| *a);
    let meta = addr_of("meta").expect("meta reported with its address");
    assert_eq!(meta.ip().to_string(), "127.0.0.2");
    assert_eq!(addr_of("callback"), Some(shared), "callback stays on the shared listener");

    let handshake =
        format!("/webhooks/meta?hub.mode=subscribe&hub.challenge=42&hub.verify_token={VERIFY_TOKEN}");
    let reply = http(meta, "GET", &handshake, &[], "").await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "42"));
    assert_eq!(http(shared, "GET", &handshake, &[], "").await.status, 404, "not on the shared listener");
    assert_eq!(http(meta, "POST", "/callback", &[], "{}").await.status, 404, "callback not on meta's");
    server.stop(Duration::from_secs(5)).await;
}
