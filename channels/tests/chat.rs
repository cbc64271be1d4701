//! Web chat end to end over a real WebSocket client: the router with the channel listeners and
//! the embedded Kafka cluster, an agent desktop over gRPC, and a customer on `/chat/ws` who
//! waits in the queue, talks with the agent, reconnects and rates the conversation; refused
//! frames, foreign origins and the "contact us" form.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use vuoro_proto::v1;

mod support;
use support::*;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A customer's WebSocket to `/chat/ws`, from a page of `origin`, with `correlation` as its
/// request id.
async fn connect(addr: std::net::SocketAddr, origin: Option<&str>, correlation: &str) -> Socket {
    let mut request = format!("ws://{addr}/chat/ws").into_client_request().unwrap();
    if let Some(origin) = origin {
        request.headers_mut().insert("origin", origin.parse().unwrap());
    }
    request.headers_mut().insert("x-request-id", correlation.parse().unwrap());
    let (socket, response) = tokio_tungstenite::connect_async(request).await.expect("the WebSocket opens");
    assert_eq!(response.status(), 101);
    socket
}

async fn send(socket: &mut Socket, frame: Value) {
    socket.send(Message::text(frame.to_string())).await.unwrap();
}

/// The next JSON frame from the server.
async fn next(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("a frame within 30 s")
            .expect("the socket is open")
            .expect("no error");
        match frame {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(close) => panic!("closed: {close:?}"),
            _ => {}
        }
    }
}

/// The next frame of type `kind`, skipping queue updates and the rest.
async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    loop {
        let frame = next(socket).await;
        assert_ne!(frame["type"], "error", "an error while waiting for {kind}: {frame}");
        if frame["type"] == kind {
            return frame;
        }
    }
}

/// The close frame the server ends the connection with.
async fn closed(socket: &mut Socket) -> CloseCode {
    loop {
        let frame =
            tokio::time::timeout(Duration::from_secs(30), socket.next()).await.expect("closed within 30 s");
        match frame {
            Some(Ok(Message::Close(Some(close)))) => return close.code,
            Some(Ok(Message::Close(None))) | None | Some(Err(_)) => panic!("closed without a code"),
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_waits_talks_with_the_agent_reconnects_and_rates_the_chat() {
    let (server, grpc, addr) = start_with(&with_chat(test_config(), 60)).await;
    setup_tenant(&grpc).await;
    setup_chat_agent(&grpc).await;
    // Logged in, not ready: the chat waits, and the router can estimate the wait.
    let mut desk = Desk::logged_in(&grpc, "ilona").await;

    let mut customer = connect(addr, Some(CHAT_ORIGIN), "chat-conversation").await;
    send(
        &mut customer,
        json!({"type": "start", "tenant": TENANT, "name": "Alex", "language": "en",
               "text": "Hello, my order 1234 has not arrived yet.", "topic": "orders"}),
    )
    .await;
    let started = next_of(&mut customer, "started").await;
    let conversation = started["conversation"].as_str().unwrap().to_owned();
    let token = started["token"].as_str().unwrap().to_owned();
    assert!(conversation.starts_with("chat:") && conversation.len() == 37, "{conversation}");
    assert_eq!(token.len(), 64, "{token}");

    let queued = next_of(&mut customer, "queued").await;
    assert_eq!(queued["position"], 1, "{queued}");
    let wait = queued["estimated_wait_ms"].as_u64().expect("an estimated wait");
    assert!(wait > 0, "{queued}");
    let minutes = wait.div_ceil(60_000).max(1);
    assert_eq!(queued["text"], format!("You are number 1 in the queue — about {minutes} min."));
    assert!(queued["id"].as_str().is_some_and(|id| !id.is_empty()), "{queued}");

    // The agent gets ready, is offered the chat and takes it.
    use v1::agent_action::Action as A;
    desk.send(A::Ready(v1::Ready {}));
    let offer = desk.offer().await;
    let contact = offer.contact.expect("the offered contact");
    assert_eq!(contact.id, conversation);
    assert_eq!(contact.channel, v1::Channel::Chat as i32);
    assert_eq!(contact.attributes["text"], "Hello, my order 1234 has not arrived yet.");
    assert_eq!(contact.attributes["reply.language"], "en");
    assert_eq!(contact.customer.as_ref().unwrap().display_name, "Alex");
    desk.send(A::Accept(v1::Accept { reservation: offer.reservation }));
    let joined = next_of(&mut customer, "agent_joined").await;
    assert_eq!(joined["text"], "An agent has joined the conversation.");

    // The customer writes: the agent's desktop shows it.
    send(&mut customer, json!({"type": "message", "text": "It was due on Monday."})).await;
    let sent = next_of(&mut customer, "sent").await;
    assert!(sent["id"].as_str().unwrap().starts_with("chat-message:"), "{sent}");
    let said = loop {
        if let v1::agent_message::Message::CustomerMessage(said) = desk.message().await {
            break said;
        }
    };
    assert_eq!((said.contact.as_str(), said.text.as_str()), (conversation.as_str(), "It was due on Monday."));

    // The agent answers: the customer reads it.
    desk.send(A::Reply(v1::Reply { contact: conversation.clone(), text: "It ships tomorrow.".into() }));
    let reply = next_of(&mut customer, "reply").await;
    assert_eq!(reply["text"], "It ships tomorrow.");

    // A reload: a new connection with the token catches up on everything so far.
    drop(customer);
    let mut again = connect(addr, Some(CHAT_ORIGIN), "chat-resume").await;
    send(
        &mut again,
        json!({"type": "resume", "tenant": TENANT, "conversation": conversation, "token": token}),
    )
    .await;
    assert_eq!(next(&mut again).await, json!({"type": "resumed", "conversation": conversation}));
    let mut caught_up = Vec::new();
    while caught_up.last().map(|f: &Value| f["type"].clone()) != Some(json!("reply")) {
        caught_up.push(next(&mut again).await);
    }
    let kinds: Vec<&str> = caught_up.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"queued") && kinds.contains(&"agent_joined"), "{kinds:?}");
    assert_eq!(caught_up.last().unwrap()["id"], reply["id"], "the same message, the same id to dedupe on");

    // Someone else's token, or a forged one, opens nothing.
    let mut intruder = connect(addr, None, "chat-bad-token").await;
    let forged = format!("{}{}", &token[..63], if token.ends_with('0') { '1' } else { '0' });
    send(
        &mut intruder,
        json!({"type": "resume", "tenant": TENANT, "conversation": conversation, "token": forged}),
    )
    .await;
    let refused = next(&mut intruder).await;
    assert_eq!(
        (refused["type"].as_str(), refused["field"].as_str()),
        (Some("error"), Some("token")),
        "{refused}"
    );
    assert_eq!(refused["code"], "bad_token");
    send(&mut intruder, json!({"type": "message", "text": "let me in"})).await;
    assert_eq!(next(&mut intruder).await["code"], "no_conversation");

    // Rating before the end is refused; after the end it is stored.
    send(&mut again, json!({"type": "rating", "score": 5})).await;
    assert_eq!(next(&mut again).await["code"], "not_completed");
    desk.send(A::Complete(v1::Complete { reservation: offer.reservation }));
    let completed = next_of(&mut again, "completed").await;
    assert_eq!(completed["text"], "This conversation is closed. Thank you for contacting us!");
    send(&mut again, json!({"type": "rating", "score": 9})).await;
    let out_of_range = next(&mut again).await;
    assert_eq!(
        (out_of_range["field"].as_str(), out_of_range["code"].as_str()),
        (Some("score"), Some("out_of_range"))
    );
    send(&mut again, json!({"type": "rating", "score": 4})).await;
    assert_eq!(
        next(&mut again).await,
        json!({"type": "rated", "score": 4, "text": "Thank you for your rating!"})
    );

    let ratings = customer_ratings(&server.kafka_bootstrap, &conversation).await;
    assert_eq!(
        ratings,
        [v1::router_input::Input::CustomerRating(v1::CustomerRating {
            tenant: TENANT.into(),
            contact: conversation.clone(),
            score: 4
        })]
    );

    let letters = tokio::task::spawn_blocking({
        let bootstrap = server.kafka_bootstrap.clone();
        move || dead_letters(&bootstrap, "chat-bad-token", 2)
    })
    .await
    .unwrap();
    let codes: Vec<_> = letters.iter().map(|l| l.header("vuoro-reason-code").unwrap_or_default()).collect();
    assert_eq!(codes, ["bad_token", "no_conversation"], "{letters:?}");
    assert_eq!(letters[0].header("vuoro-source-topic"), Some("channel:chat"));

    // What an operator sees.
    let metrics = http(server.admin_addr, "GET", "/metrics", &[], "").await.text();
    for line in [
        "vuoro_channel_received_total{channel=\"chat\"} ",
        "vuoro_channel_accepted_total{channel=\"chat\"} ",
        "vuoro_channel_delivered_total{channel=\"chat\"} ",
        "vuoro_channel_rejected_total{channel=\"chat\",reason=\"bad_token\"} ",
        "vuoro_channel_request_seconds_bucket{channel=\"chat\",",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in:\n{metrics}");
    }

    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_foreign_origins_and_floods_are_refused_and_dead_lettered_and_forms_become_email_contacts()
{
    let (server, grpc, addr) = start_with(&with_chat(test_config(), 7)).await;
    setup_tenant(&grpc).await;

    // Malformed JSON, an unknown type, a missing field, a binary frame, text before a start.
    let mut socket = connect(addr, None, "chat-bad-frames").await;
    let cases = [
        (Message::text("{\"type\": "), ("frame", "malformed_json")),
        (Message::text(r#"{"type": "shout", "text": "hi"}"#), ("type", "malformed_json")),
        (Message::text(r#"{"type": "start", "tenant": "acme"}"#), ("text", "malformed_json")),
        (Message::binary(vec![1, 2, 3]), ("frame", "binary_frame")),
        (Message::text(r#"{"type": "message", "text": "hello?"}"#), ("type", "no_conversation")),
        (
            Message::text(json!({"type": "start", "tenant": "globex", "text": "hi"}).to_string()),
            ("tenant", "unknown_tenant"),
        ),
        (
            Message::text(json!({"type": "start", "tenant": "acme", "text": "x".repeat(4097)}).to_string()),
            ("text", "too_long"),
        ),
    ];
    for (frame, (field, code)) in cases {
        socket.send(frame).await.unwrap();
        let error = next(&mut socket).await;
        assert_eq!(
            (error["type"].as_str(), error["field"].as_str(), error["code"].as_str()),
            (Some("error"), Some(field), Some(code)),
            "{error}"
        );
        assert!(error["reason"].as_str().is_some_and(|r| !r.is_empty()), "{error}");
    }
    // Over the limit of 7 frames a minute.
    socket.send(Message::text(r#"{"type": "message", "text": "one more"}"#)).await.unwrap();
    assert_eq!(next(&mut socket).await["code"], "rate_limited");
    let letters = tokio::task::spawn_blocking({
        let bootstrap = server.kafka_bootstrap.clone();
        move || dead_letters(&bootstrap, "chat-bad-frames", 8)
    })
    .await
    .unwrap();
    let codes: Vec<_> = letters.iter().map(|l| l.header("vuoro-reason-code").unwrap_or_default()).collect();
    assert_eq!(
        codes,
        [
            "malformed_json",
            "malformed_json",
            "malformed_json",
            "binary_frame",
            "no_conversation",
            "unknown_tenant",
            "too_long",
            "rate_limited"
        ]
    );
    assert_eq!(letters[0].payload, b"{\"type\": ");
    assert!(letters[1].header("vuoro-reason").unwrap().contains("unknown variant `shout`"), "{letters:?}");

    // A text frame that is not UTF-8, and a frame over the size limit: refused, then closed.
    let mut socket = connect(addr, None, "chat-invalid-utf8").await;
    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    socket.send(Message::Frame(frame)).await.unwrap();
    let error = next(&mut socket).await;
    assert_eq!(
        (error["field"].as_str(), error["code"].as_str()),
        (Some("frame"), Some("invalid_utf8")),
        "{error}"
    );
    assert_eq!(closed(&mut socket).await, CloseCode::Invalid);
    let mut socket = connect(addr, None, "chat-too-large").await;
    socket.send(Message::text("x".repeat(9000))).await.unwrap();
    let error = next(&mut socket).await;
    assert_eq!(
        (error["field"].as_str(), error["code"].as_str()),
        (Some("frame"), Some("too_large")),
        "{error}"
    );
    assert_eq!(closed(&mut socket).await, CloseCode::Size);

    // A page of a foreign site may not open the tenant's chat.
    let mut socket = connect(addr, Some("https://evil.example"), "chat-evil-origin").await;
    send(&mut socket, json!({"type": "start", "tenant": TENANT, "text": "Hello there, I need help."})).await;
    let error = next(&mut socket).await;
    assert_eq!(
        (error["field"].as_str(), error["code"].as_str()),
        (Some("origin"), Some("origin_not_allowed"))
    );
    assert_eq!(closed(&mut socket).await, CloseCode::Policy);
    for (correlation, code) in [
        ("chat-invalid-utf8", "invalid_utf8"),
        ("chat-too-large", "too_large"),
        ("chat-evil-origin", "origin_not_allowed"),
    ] {
        let letters = tokio::task::spawn_blocking({
            let bootstrap = server.kafka_bootstrap.clone();
            move || dead_letters(&bootstrap, correlation, 1)
        })
        .await
        .unwrap();
        assert_eq!(letters.len(), 1, "{correlation}");
        assert_eq!(letters[0].header("vuoro-reason-code"), Some(code));
    }

    // The "contact us" form: a page for browsers, JSON on request, 422 naming the field.
    let form = "tenant=acme&name=Alex+Example&email=alex%40example.com&topic=Invoice\
                &message=My+last+invoice+charges+me+twice+for+the+same+order%2C+please+refund+one.";
    let page =
        http(addr, "POST", "/contact-us", &[("content-type", "application/x-www-form-urlencoded")], form)
            .await;
    assert_eq!(page.status, 202, "{}", page.text());
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(page.text().contains("Thanks — we will answer by email."), "{}", page.text());
    let json = http(
        addr,
        "POST",
        "/contact-us",
        &[("content-type", "application/x-www-form-urlencoded"), ("accept", "application/json")],
        form,
    )
    .await;
    assert_eq!(json.status, 202, "{}", json.text());
    let id = json.json()["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("form:sha256:"), "{id}");
    let submits = tokio::task::spawn_blocking({
        let bootstrap = server.kafka_bootstrap.clone();
        move || {
            router_inputs(
                &bootstrap,
                1,
                |input| matches!(input, v1::router_input::Input::Submit(c) if c.id == id),
            )
        }
    })
    .await
    .unwrap();
    let Some(v1::router_input::Input::Submit(contact)) = submits.first() else { panic!("no form contact") };
    assert_eq!(contact.channel, v1::Channel::Email as i32);
    assert_eq!(contact.attributes["reply.to"], "alex@example.com");
    assert_eq!(contact.attributes["reply.subject"], "Re: Invoice");
    assert_eq!(contact.attributes["reply.language"], "en");

    let bad = http(
        addr,
        "POST",
        "/contact-us",
        &[("content-type", "application/x-www-form-urlencoded"), ("x-request-id", "form-bad-email")],
        "tenant=acme&email=alex&message=Hello",
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.text());
    assert!(bad.text().contains("email: not an email address"), "{}", bad.text());
    let bad = http(
        addr,
        "POST",
        "/contact-us",
        &[("content-type", "application/x-www-form-urlencoded"), ("accept", "application/json")],
        "tenant=acme&email=alex%40example.com",
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.text());
    assert_eq!(bad.json()["fields"][0]["field"], "message");
    let letters = tokio::task::spawn_blocking({
        let bootstrap = server.kafka_bootstrap.clone();
        move || dead_letters(&bootstrap, "form-bad-email", 1)
    })
    .await
    .unwrap();
    assert_eq!(letters[0].header("vuoro-reason-code"), Some("not_an_email_address"));
    assert_eq!(letters[0].header("vuoro-source-topic"), Some("channel:form"));

    let metrics = http(server.admin_addr, "GET", "/metrics", &[], "").await.text();
    for line in [
        "vuoro_channel_rejected_total{channel=\"chat\",reason=\"rate_limited\"} ",
        "vuoro_channel_rejected_total{channel=\"chat\",reason=\"invalid_utf8\"} ",
        "vuoro_channel_rejected_total{channel=\"chat\",reason=\"origin_not_allowed\"} ",
        "vuoro_channel_rejected_total{channel=\"form\",reason=\"not_an_email_address\"} ",
        "vuoro_channel_accepted_total{channel=\"form\"} ",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in:\n{metrics}");
    }

    // A plain GET of the WebSocket path is told what it lacks.
    let plain = http(addr, "GET", "/chat/ws", &[("x-request-id", "chat-not-websocket")], "").await;
    assert_eq!(plain.status, 426, "{}", plain.text());
    assert_eq!(plain.json()["fields"][0]["field"], "upgrade");
    assert_eq!(plain.header("upgrade"), Some("websocket"));

    // The widget's files are served.
    let script = http(addr, "GET", "/chat/widget.js", &[], "").await;
    assert_eq!((script.status, script.header("content-type")), (200, Some("text/javascript; charset=utf-8")));
    assert!(script.text().contains("sessionStorage"));
    let page = http(addr, "GET", "/chat/", &[], "").await;
    assert_eq!((page.status, page.header("content-type")), (200, Some("text/html; charset=utf-8")));
    assert!(page.text().contains("<script src=\"widget.js\"></script>"), "{}", page.text());

    server.stop(Duration::from_secs(5)).await;
}
