//! Email, end to end with real SMTP on both sides: `swaks` (and Python's `smtplib` where swaks
//! cannot say it) delivers mail to the channel's SMTP listener, agents get it over gRPC, and
//! what goes out to customers arrives at a real SMTP server — `aiosmtpd`, started by the test
//! (`tests/email/sink.py`) and writing each mail to a directory; it refuses the first mail with
//! a transient 451, so the courier's retry is proven too. `scripts/test.sh` installs
//! swaks and aiosmtpd; a missing one fails these tests.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mail_parser::{HeaderValue, Message, MessageParser};
use vuoro_proto::v1;
use vuoro_service::config::{Config, EmailChannelConfig};

mod support;
use support::*;

const MAILBOX: &str = "support@acme.example";
const CUSTOMER: &str = "maija@example.fi";
/// The listener's message limit in these tests.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The Python with aiosmtpd: `EMAIL_SINK_PYTHON` (scripts/test.sh sets it), else `python3`.
fn python() -> String {
    std::env::var("EMAIL_SINK_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// The aiosmtpd sink: a real SMTP server writing what it receives to a directory.
struct Sink {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Sink {
    /// A sink; with `fail_first`, it refuses the first mail with a transient 451.
    fn start(name: &str, fail_first: bool) -> Sink {
        let dir = std::env::temp_dir().join(format!("vuoro-email-sink-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/email/sink.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(&dir)
            .args(fail_first.then_some("fail-first"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("Python runs (scripts/test.sh installs aiosmtpd and sets EMAIL_SINK_PYTHON)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port =
            line.trim().strip_prefix("listening ").and_then(|p| p.parse().ok()).unwrap_or_else(|| {
                panic!("the aiosmtpd sink did not start (is aiosmtpd installed?): {line:?}")
            });
        Sink { child, dir, port }
    }

    /// The mails received, in order, once there are at least `count` (waits up to 30 s).
    async fn mails(&self, count: usize) -> Vec<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
                .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            names.retain(|p| p.extension().is_some_and(|e| e == "eml"));
            names.sort();
            if names.len() >= count {
                return names.iter().map(|p| std::fs::read(p).unwrap()).collect();
            }
            assert!(tokio::time::Instant::now() < deadline, "{count} mails within 30 s; got {}", names.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The channels' test configuration with email on: mail to `MAILBOX` goes to tenant acme's
/// `email` queue for agents with the `email` skill; replies go to the relay on `relay_port`.
fn email_config(relay_port: Option<u16>) -> Config {
    let mut config = test_config();
    let relay =
        relay_port.map_or_else(String::new, |port| format!("[relay]\nhost = \"127.0.0.1\"\nport = {port}\n"));
    let email: toml::Table = toml::from_str(&format!(
        r#"
        listen_addr = "127.0.0.1:0"
        hostname = "mx.acme.test"
        max_message_bytes = {MAX_MESSAGE_BYTES}
        preferred_agent_wait_ms = 30000
        [[routes]]
        address = "{MAILBOX}"
        tenant = "acme"
        queue = "email"
        required_skills = [{{ skill = "email" }}]
        {relay}
        "#
    ))
    .unwrap();
    config.channels.email = Some(EmailChannelConfig::try_from(email).unwrap());
    config.validate().expect("a valid configuration");
    config
}

fn smtp_addr(server: &vuoro_service::serve::Server) -> SocketAddr {
    server
        .extension_addrs
        .iter()
        .find(|(name, _)| *name == "email")
        .map(|(_, addr)| *addr)
        .expect("SMTP listens")
}

/// An agent of acme who answers email, in Finnish and English.
fn email_agent(id: &str) -> v1::Agent {
    v1::Agent {
        id: id.into(),
        tenant: TENANT.into(),
        pool: "helsinki".into(),
        skills: vec![v1::Skill { skill: "email".into(), level: 3 }],
        languages: vec!["fi".into(), "en".into()],
        capacity: Some(v1::Capacity { total: 1, email_max: 1, email_weight: 1, ..Default::default() }),
    }
}

/// Runs swaks against the listener; its transcript and whether it succeeded.
async fn swaks(server: SocketAddr, args: &[&str]) -> (bool, String) {
    let mut command = Command::new("swaks");
    command
        .args(["--server", "127.0.0.1", "--port", &server.port().to_string()])
        .args(["--helo", "client.example.fi", "--timeout", "30"])
        .args(args);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("swaks runs (scripts/test.sh installs it)");
    let transcript =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), transcript)
}

/// The `[ref …]` a refusal with `code` quotes: the correlation id of its dead letter.
fn reference(transcript: &str, code: &str) -> String {
    let line = transcript
        .lines()
        .find(|l| l.contains(&format!(" {code} ")) && l.contains("[ref "))
        .unwrap_or_else(|| panic!("no {code} reply with a reference in:\n{transcript}"));
    let start = line.find("[ref ").unwrap() + "[ref ".len();
    line[start..].trim_end().trim_end_matches(']').to_owned()
}

fn header(mail: &Message<'_>, name: &str) -> String {
    mail.header_raw(name).map(|v| v.trim().to_owned()).unwrap_or_default()
}

fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => vec![id.to_string()],
        HeaderValue::TextList(ids) => ids.iter().map(|id| id.to_string()).collect(),
        _ => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_is_acknowledged_offered_answered_in_its_thread_and_its_follow_up_goes_to_the_same_agent() {
    let sink = Sink::start("conversation", true);
    let (server, grpc, _) = start_with(&email_config(Some(sink.port))).await;
    let smtp = smtp_addr(&server);
    setup_tenant_with(&grpc, vec![email_agent("aino"), email_agent("bea")]).await;

    // The customer writes, with a receipt attached; nobody is logged in yet.
    let receipt = std::env::temp_dir().join(format!("vuoro-receipt-{}.pdf", std::process::id()));
    std::fs::write(&receipt, b"%PDF-1.4 a receipt for order 123\n").unwrap();
    let attach = format!("@{}", receipt.display());
    let (sent, transcript) = swaks(
        smtp,
        &[
            "--from",
            CUSTOMER,
            "--to",
            MAILBOX,
            "--header",
            "Subject: Order 123 has not arrived",
            "--header",
            "Message-Id: <order-123@example.fi>",
            "--body",
            "Hello, my order 123 has not arrived yet. Could you please check where it is?",
            "--attach-type",
            "application/pdf",
            "--attach-name",
            "receipt.pdf",
            "--attach",
            &attach,
        ],
    )
    .await;
    assert!(sent, "{transcript}");
    assert!(transcript.contains("250 2.0.0 queued as email:order-123@example.fi"), "{transcript}");
    assert!(transcript.contains(&format!("SIZE {MAX_MESSAGE_BYTES}")), "SIZE is announced: {transcript}");

    // First out: the automatic acknowledgement, in the customer's thread.
    let mails = sink.mails(1).await;
    let ack = MessageParser::default().parse(&mails[0]).unwrap();
    assert_eq!(header(&ack, "Auto-Submitted"), "auto-replied");
    assert_eq!(ack.from().and_then(|a| a.first()).and_then(|a| a.address()), Some(MAILBOX));
    assert_eq!(ack.to().and_then(|a| a.first()).and_then(|a| a.address()), Some(CUSTOMER));
    assert_eq!(ack.subject(), Some("Re: Order 123 has not arrived"));
    assert_eq!(ids(ack.in_reply_to()), ["order-123@example.fi"]);
    assert!(
        sink.dir.join("refused-first").exists(),
        "the relay refused the first attempt (451): it was retried"
    );
    let text = ack.body_text(0).unwrap();
    assert!(
        text.starts_with("Thank you for your message. We have received it and will answer"),
        "the acknowledgement says when to expect an answer: {text}"
    );

    // Aino logs in and is offered the mail, with what she needs to answer it.
    let mut aino = Desk::ready_as(&grpc, "aino").await;
    let offer = aino.offer().await;
    let contact = offer.contact.clone().expect("the offered contact");
    assert_eq!(contact.id, "email:order-123@example.fi");
    assert_eq!(contact.channel, v1::Channel::Email as i32);
    assert_eq!(contact.customer.as_ref().map(|c| c.address.as_str()), Some(CUSTOMER));
    assert_eq!(contact.attributes["subject"], "Order 123 has not arrived");
    assert!(
        contact.attributes["text"].contains("my order 123 has not arrived yet"),
        "{:?}",
        contact.attributes
    );
    assert_eq!(contact.attributes["attachments"], "receipt.pdf (application/pdf, 33 bytes)");
    assert_eq!(contact.preferred_agent, "", "a new conversation prefers nobody");

    use v1::agent_action::Action as A;
    aino.send(A::Accept(v1::Accept { reservation: offer.reservation }));
    wait_accepted(&grpc, &contact.id).await;
    aino.send(A::Reply(v1::Reply { contact: contact.id.clone(), text: "Your order ships tomorrow.".into() }));
    aino.send(A::Complete(v1::Complete { reservation: offer.reservation }));
    aino.send(A::Ready(v1::Ready {}));

    // The reply: from the mailbox written to, in the thread.
    let mails = sink.mails(2).await;
    let reply = MessageParser::default().parse(&mails[1]).unwrap();
    assert_eq!(reply.from().and_then(|a| a.first()).and_then(|a| a.address()), Some(MAILBOX));
    assert_eq!(reply.to().and_then(|a| a.first()).and_then(|a| a.address()), Some(CUSTOMER));
    assert_eq!(reply.subject(), Some("Re: Order 123 has not arrived"));
    assert_eq!(ids(reply.in_reply_to()), ["order-123@example.fi"]);
    assert_eq!(ids(reply.references()), ["order-123@example.fi"]);
    assert_eq!(header(&reply, "Auto-Submitted"), "", "an agent's reply is not automatic");
    assert_eq!(reply.body_text(0).unwrap().trim(), "Your order ships tomorrow.");
    let reply_id = reply.message_id().expect("the reply has a Message-ID").to_owned();

    // Bea is ready too, longer idle than Aino; the customer answers Aino's reply.
    let mut bea = Desk::ready_as(&grpc, "bea").await;
    let in_reply_to = format!("In-Reply-To: <{reply_id}>");
    let references = format!("References: <order-123@example.fi> <{reply_id}>");
    let (sent, transcript) = swaks(
        smtp,
        &[
            "--from",
            CUSTOMER,
            "--to",
            MAILBOX,
            "--header",
            "Subject: Re: Order 123 has not arrived",
            "--header",
            "Message-Id: <order-123-again@example.fi>",
            "--header",
            &in_reply_to,
            "--header",
            &references,
            "--body",
            "Thanks! Can it be delivered to my office instead?",
        ],
    )
    .await;
    assert!(sent, "{transcript}");
    let offer = aino.offer().await;
    let follow_up = offer.contact.expect("the offered follow-up");
    assert_eq!(follow_up.id, "email:order-123-again@example.fi");
    assert_eq!(follow_up.preferred_agent, "aino", "the agent who handled the conversation");
    assert_eq!(follow_up.preferred_agent_wait_ms, 30_000);
    assert!(
        tokio::time::timeout(Duration::from_secs(2), bea.offer()).await.is_err(),
        "the follow-up is not offered to another agent while Aino may take it"
    );

    let _ = std::fs::remove_file(&receipt);
    server.stop(Duration::from_secs(5)).await;
}

async fn wait_accepted(grpc: &tonic::transport::Channel, contact: &str) {
    let mut contacts = v1::contact_service_client::ContactServiceClient::new(grpc.clone());
    let accepted = async {
        loop {
            let status =
                contacts.get_contact(v1::ContactRef { tenant: TENANT.into(), id: contact.into() }).await;
            if status.is_ok_and(|s| s.into_inner().state == v1::ContactState::Accepted as i32) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), accepted).await.expect("the contact is accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_mail_gets_a_clear_smtp_error_and_a_dead_letter_and_automatic_mail_never_becomes_a_contact() {
    let (server, grpc, _) = start_with(&email_config(None)).await;
    let smtp = smtp_addr(&server);
    let bootstrap = server.kafka_bootstrap.clone();
    let dead_letter = |reference: String| {
        let bootstrap = bootstrap.clone();
        tokio::task::spawn_blocking(move || {
            let mut letters = dead_letters(&bootstrap, &reference, 1);
            assert_eq!(letters.len(), 1, "one dead letter for {reference}");
            letters.remove(0)
        })
    };

    // An unknown recipient: 550 naming it.
    let (sent, transcript) =
        swaks(smtp, &["--from", CUSTOMER, "--to", "nobody@elsewhere.example", "--body", "Hello?"]).await;
    assert!(!sent, "{transcript}");
    assert!(
        transcript.contains("550 5.1.1 <nobody@elsewhere.example>: no such mailbox here"),
        "{transcript}"
    );
    let letter = dead_letter(reference(&transcript, "550")).await.unwrap();
    assert_eq!(letter.header("vuoro-reason-code"), Some("no_route"));
    assert_eq!(letter.header("vuoro-source-topic"), Some("channel:email"));

    // Too large, found while reading DATA: 552, the body not kept.
    let big = "x".repeat(76).repeat(MAX_MESSAGE_BYTES / 76 + 100);
    let (sent, transcript) = swaks(smtp, &["--from", CUSTOMER, "--to", MAILBOX, "--body", &big]).await;
    assert!(!sent, "{transcript}");
    assert!(
        transcript.contains(&format!("552 5.3.4 message is over the {MAX_MESSAGE_BYTES}-byte limit")),
        "{transcript}"
    );
    let letter = dead_letter(reference(&transcript, "552")).await.unwrap();
    assert_eq!(letter.header("vuoro-reason-code"), Some("too_large"));
    assert!(letter.payload.is_empty());

    // Too large by its declared SIZE (smtplib declares it, as SIZE is announced): 552 at MAIL.
    let script = format!(
        "import smtplib\n\
         s = smtplib.SMTP('127.0.0.1', {port})\n\
         try:\n    s.sendmail('{CUSTOMER}', ['{MAILBOX}'], 'Subject: big\\r\\n\\r\\n' + 'y' * {size})\n\
         except smtplib.SMTPSenderRefused as e:\n    print(e.smtp_code, e.smtp_error.decode())\n",
        port = smtp.port(),
        size = MAX_MESSAGE_BYTES * 2,
    );
    let output = tokio::task::spawn_blocking(move || Command::new(python()).args(["-c", &script]).output())
        .await
        .unwrap()
        .expect("python3 runs");
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        said.starts_with("552 5.3.4 message of ")
            && said.contains(&format!("bytes (SIZE) is over the {MAX_MESSAGE_BYTES}-byte limit")),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let quoted = said.split("[ref ").nth(1).unwrap().trim().trim_end_matches(']').to_owned();
    assert_eq!(dead_letter(quoted).await.unwrap().header("vuoro-reason-code"), Some("too_large"));

    // A charset nobody can decode: 554 naming it, the mail kept in the dead letter.
    let (sent, transcript) = swaks(
        smtp,
        &[
            "--from",
            CUSTOMER,
            "--to",
            MAILBOX,
            "--header",
            "Message-Id: <klingon@example.fi>",
            "--header",
            "Content-Type: text/plain; charset=x-klingon",
            "--body",
            "nuqneH",
        ],
    )
    .await;
    assert!(!sent, "{transcript}");
    assert!(transcript.contains("554 5.6.3 unsupported charset \"x-klingon\""), "{transcript}");
    let letter = dead_letter(reference(&transcript, "554")).await.unwrap();
    assert_eq!(letter.header("vuoro-reason-code"), Some("unsupported_charset"));
    assert_eq!(letter.key, TENANT);
    assert!(String::from_utf8_lossy(&letter.payload).contains("nuqneH"));

    // An auto-reply: accepted (no bounce to an auto-responder), dead-lettered, never a contact.
    let (sent, transcript) = swaks(
        smtp,
        &[
            "--from",
            CUSTOMER,
            "--to",
            MAILBOX,
            "--header",
            "Message-Id: <out-of-office@example.fi>",
            "--header",
            "Auto-Submitted: auto-replied",
            "--header",
            "Subject: Out of office",
            "--body",
            "I am away until Monday.",
        ],
    )
    .await;
    assert!(sent, "{transcript}");
    assert!(
        transcript.contains("250 2.6.0 accepted, not answered: Auto-Submitted: auto-replied"),
        "{transcript}"
    );
    let letter = dead_letter(reference(&transcript, "250")).await.unwrap();
    assert_eq!(letter.header("vuoro-reason-code"), Some("loop_auto_submitted"));
    let mut contacts = v1::contact_service_client::ContactServiceClient::new(grpc.clone());
    let found = contacts
        .get_contact(v1::ContactRef { tenant: TENANT.into(), id: "email:out-of-office@example.fi".into() })
        .await;
    assert_eq!(found.map(|_| ()).unwrap_err().code(), tonic::Code::NotFound, "never a contact");

    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_kafka_cannot_take_the_mail_the_answer_is_451_and_a_retry_is_taken() {
    let mut config = email_config(None);
    let cluster = vuoro_service::kafka::EmbeddedCluster::start(&config.kafka).unwrap();
    config.kafka.brokers = Some(cluster.bootstrap().to_owned());
    let (server, _grpc, _) = start_with(&config).await;
    let smtp = smtp_addr(&server);
    let args = [
        "--from",
        CUSTOMER,
        "--to",
        MAILBOX,
        "--header",
        "Message-Id: <retry-1@example.fi>",
        "--body",
        "Hello",
    ];

    cluster.set_reachable(false).unwrap();
    let (sent, transcript) = swaks(smtp, &args).await;
    assert!(!sent, "{transcript}");
    assert!(transcript.contains("451 4.3.0 cannot store the message now"), "{transcript}");

    cluster.set_reachable(true).unwrap();
    let (sent, transcript) = swaks(smtp, &args).await;
    assert!(sent, "{transcript}");
    assert!(transcript.contains("250 2.0.0 queued as email:retry-1@example.fi"), "{transcript}");
    server.stop(Duration::from_secs(5)).await;
}
