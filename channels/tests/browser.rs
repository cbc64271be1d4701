//! The chat widget in a real browser: `vuoro serve` with the channel listeners, an agent desktop
//! over gRPC, and headless Chromium driven by `browser/chat.mjs` (playwright-core) as the
//! customer. The script reports what the customer sees line by line; this side plays the agent
//! and checks what reached the router. Chromium and the node modules are installed by
//! `scripts/test.sh`; without them this test fails and says so.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::sync::mpsc;
use vuoro_proto::v1;

mod support;
use support::*;

const CHROMIUM: &str = "/usr/bin/chromium";

/// The browser script's directory, checked for what it needs.
fn browser_dir() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run scripts/test.sh, which installs Debian's chromium"
    );
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing in {}: run scripts/test.sh, which runs npm ci there",
        dir.display()
    );
    dir
}

/// The next line the script prints, skipping none; fails with the script's errors when it
/// ends or takes longer than 60 s.
async fn expect_line(lines: &mut mpsc::UnboundedReceiver<String>, prefix: &str) -> String {
    match tokio::time::timeout(Duration::from_secs(60), lines.recv()).await {
        Ok(Some(line)) if line.starts_with(prefix) => line,
        Ok(Some(line)) => panic!("the browser script printed {line:?}, expected {prefix:?}"),
        Ok(None) => panic!("the browser script ended before {prefix:?} (its errors are above)"),
        Err(_) => panic!("the browser script did not reach {prefix:?} within 60 s"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_chats_in_the_widget_reloads_and_rates_while_an_agent_answers_over_grpc() {
    let dir = browser_dir();
    let (server, grpc, addr) = start_with(&with_chat(test_config(), 60)).await;
    setup_tenant(&grpc).await;
    setup_chat_agent(&grpc).await;
    let mut desk = Desk::logged_in(&grpc, "ilona").await;

    let mut node = Command::new("node")
        .arg("chat.mjs")
        .arg(format!("http://{addr}/chat/?tenant={TENANT}"))
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs (run scripts/test.sh to install the browser test's tools)");
    let mut commands = node.stdin.take().unwrap();
    let stdout = node.stdout.take().unwrap();
    let (sender, mut lines) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });

    // The customer waits in the queue and sees the place and the wait.
    let queued = expect_line(&mut lines, "queued ").await;
    let mut parts = queued.splitn(3, ' ');
    let (_, conversation, status) = (parts.next(), parts.next().unwrap().to_owned(), parts.next().unwrap());
    assert!(conversation.starts_with("chat:"), "{queued}");
    assert!(status.starts_with("You are number 1 in the queue — about "), "{status}");

    // The agent takes the chat and answers; the customer sees both.
    use v1::agent_action::Action as A;
    desk.send(A::Ready(v1::Ready {}));
    let offer = desk.offer().await;
    assert_eq!(offer.contact.as_ref().map(|c| c.id.as_str()), Some(conversation.as_str()));
    assert_eq!(offer.contact.as_ref().unwrap().customer.as_ref().unwrap().display_name, "Alex Example");
    desk.send(A::Accept(v1::Accept { reservation: offer.reservation }));
    desk.send(A::Reply(v1::Reply {
        contact: conversation.clone(),
        text: "Hello Alex, let me check your order.".into(),
    }));
    expect_line(&mut lines, "joined").await;

    // What the customer types reaches the agent.
    expect_line(&mut lines, "sent").await;
    let said = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let v1::agent_message::Message::CustomerMessage(said) = desk.message().await {
                return said;
            }
        }
    })
    .await
    .expect("the customer's message reaches the agent");
    assert_eq!(
        (said.contact.as_str(), said.text.as_str()),
        (conversation.as_str(), "Thanks, it was due on Monday.")
    );

    // The customer reloads: the transcript stays, and new replies arrive.
    writeln!(commands, "reload").unwrap();
    expect_line(&mut lines, "reloaded").await;
    desk.send(A::Reply(v1::Reply { contact: conversation.clone(), text: "It ships tomorrow.".into() }));
    desk.send(A::Complete(v1::Complete { reservation: offer.reservation }));

    // After the end the customer rates 4, and the rating is on the contacts topic.
    expect_line(&mut lines, "rated").await;
    let ratings = customer_ratings(&server.kafka_bootstrap, &conversation).await;
    assert_eq!(
        ratings,
        [v1::router_input::Input::CustomerRating(v1::CustomerRating {
            tenant: TENANT.into(),
            contact: conversation,
            score: 4
        })]
    );
    let status = tokio::task::spawn_blocking(move || node.wait()).await.unwrap().unwrap();
    assert!(status.success(), "the browser script failed: {status}");

    server.stop(Duration::from_secs(5)).await;
}
