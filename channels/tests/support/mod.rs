//! What the channels' end-to-end tests share: the router with its channel listeners on free
//! ports over the embedded Kafka cluster, a tenant with an agent who takes voice and social
//! contacts, an agent desktop, a plain HTTP/1.1 client and a reader of the dead-letter topic.
#![allow(dead_code)] // each test file uses a part

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers as _;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};
use vuoro_adapters::meta::Secret;
use vuoro_proto::v1;
use vuoro_service::config::{CallbackChannelConfig, ChatChannelConfig, Config, MetaChannelConfig};
use vuoro_service::serve::Server;

pub const TENANT: &str = "acme";
pub const APP_SECRET: &str = "test-app-secret";
pub const VERIFY_TOKEN: &str = "test-verify-token";
pub const PAGE_ID: &str = "1029384756";
pub const PARTITIONS: i32 = 2;

/// Free ports, two partitions, both channels on: callback requests of tenant acme for agents
/// with the `voice` skill, and Messenger messages to Page `PAGE_ID`.
pub fn test_config() -> Config {
    let mut config = Config {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        status_interval_ms: 500,
        ..Config::default()
    };
    config.kafka.partitions = PARTITIONS;
    config.channels.listen_addr = "127.0.0.1:0".parse().unwrap();
    let callback: toml::Table = toml::from_str(
        r#"
        max_body_bytes = 4096
        [tenants.acme]
        default_region = "FI"
        queue = "callbacks"
        required_skills = [{ skill = "voice" }]
        "#,
    )
    .unwrap();
    config.channels.callback = Some(CallbackChannelConfig::try_from(callback).unwrap());
    let meta: toml::Table = toml::from_str(&format!(
        r#"
        max_body_bytes = 65536
        [[accounts]]
        platform = "messenger"
        id = "{PAGE_ID}"
        tenant = "acme"
        queue = "messenger"
        required_skills = [{{ skill = "social" }}]
        "#
    ))
    .unwrap();
    config.channels.meta = Some(MetaChannelConfig::try_from(meta).unwrap());
    config.channels.meta_app_secret = Some(Secret::new(APP_SECRET));
    config.channels.meta_verify_token = Some(Secret::new(VERIFY_TOKEN));
    config
}

/// The web origin allowed to open tenant acme's chat in [`with_chat`].
pub const CHAT_ORIGIN: &str = "https://www.acme.example";

/// `config` with web chat and the contact form on: tenant acme's chats and forms go to agents
/// with the `chat` skill; at most `per_minute` frames a minute per connection.
pub fn with_chat(mut config: Config, per_minute: u32) -> Config {
    let chat: toml::Table = toml::from_str(&format!(
        r#"
        messages_per_minute = {per_minute}
        max_frame_bytes = 8192
        [tenants.acme]
        allowed_origins = ["{CHAT_ORIGIN}"]
        queue = "web chat"
        required_skills = [{{ skill = "chat" }}]
        "#
    ))
    .unwrap();
    config.channels.chat = Some(ChatChannelConfig::try_from(chat).unwrap());
    config
}

/// Agent `ilona` of tenant acme (after [`setup_tenant`]): two chats at a time, in Finnish and
/// English, with the `chat` skill; returns once the router has applied it.
pub async fn setup_chat_agent(channel: &Channel) {
    let mut agents = v1::agent_service_client::AgentServiceClient::new(channel.clone());
    let agent = v1::Agent {
        id: "ilona".into(),
        tenant: TENANT.into(),
        pool: "helsinki".into(),
        skills: vec![v1::Skill { skill: "chat".into(), level: 3 }],
        languages: vec!["fi".into(), "en".into()],
        capacity: Some(v1::Capacity { total: 2, chat_max: 2, chat_weight: 1, ..Default::default() }),
    };
    agents.upsert_agent(v1::UpsertAgentRequest { agent: Some(agent) }).await.unwrap();
    let applied = async {
        loop {
            let listed = agents
                .list_agents(v1::ListAgentsRequest { tenant: TENANT.into() })
                .await
                .unwrap()
                .into_inner()
                .agents;
            if listed.iter().any(|a| a.agent.as_ref().is_some_and(|a| a.id == "ilona")) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), applied).await.expect("the chat agent is applied");
}

/// `vuoro serve` with the channel listeners, and a gRPC channel to it.
pub async fn start() -> (Server, Channel, SocketAddr) {
    start_with(&test_config()).await
}

pub async fn start_with(config: &Config) -> (Server, Channel, SocketAddr) {
    let extensions: Vec<Box<dyn vuoro_service::serve::Extension>> =
        vec![Box::new(vuoro_channels::ChannelsExtension)];
    let server = Server::start_with(config, &extensions).await.expect("the service starts");
    let channels = server
        .extension_addrs
        .iter()
        .find(|(name, _)| *name == "channels")
        .map(|(_, addr)| *addr)
        .expect("the channels listen");
    let grpc =
        Endpoint::from_shared(format!("http://{}", server.grpc_addr)).unwrap().connect().await.unwrap();
    (server, grpc, channels)
}

/// Tenant acme: a policy, a pool, and agent `aino` who takes one voice call and one social
/// conversation at a time, in Finnish and English; returns once the router has applied it.
pub async fn setup_tenant(channel: &Channel) {
    let agent = v1::Agent {
        id: "aino".into(),
        tenant: TENANT.into(),
        pool: "helsinki".into(),
        skills: vec![
            v1::Skill { skill: "voice".into(), level: 3 },
            v1::Skill { skill: "social".into(), level: 3 },
        ],
        languages: vec!["fi".into(), "en".into()],
        capacity: Some(v1::Capacity {
            total: 2,
            voice_max: 1,
            voice_weight: 1,
            social_max: 1,
            social_weight: 1,
            ..Default::default()
        }),
    };
    setup_tenant_with(channel, vec![agent]).await;
}

/// Tenant acme: a policy, pool `helsinki`, and `agents`; returns once the router has applied
/// them all.
pub async fn setup_tenant_with(channel: &Channel, agents: Vec<v1::Agent>) {
    let mut admin = v1::admin_service_client::AdminServiceClient::new(channel.clone());
    admin
        .upsert_policy(v1::UpsertPolicyRequest {
            policy: Some(v1::Policy { tenant: TENANT.into(), ..Default::default() }),
        })
        .await
        .unwrap();
    let mut pools = v1::pool_service_client::PoolServiceClient::new(channel.clone());
    pools
        .upsert_pool(v1::UpsertPoolRequest {
            pool: Some(v1::Pool {
                id: "helsinki".into(),
                tenant: TENANT.into(),
                kind: v1::PoolKind::InHouse as i32,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let count = agents.len();
    let mut service = v1::agent_service_client::AgentServiceClient::new(channel.clone());
    for agent in agents {
        service.upsert_agent(v1::UpsertAgentRequest { agent: Some(agent) }).await.unwrap();
    }
    let applied = async {
        while service
            .list_agents(v1::ListAgentsRequest { tenant: TENANT.into() })
            .await
            .unwrap()
            .into_inner()
            .agents
            .len()
            < count
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), applied).await.expect("the configuration is applied");
}

/// Agent `aino`'s desktop, logged in and ready.
pub struct Desk {
    actions: tokio::sync::mpsc::UnboundedSender<v1::AgentAction>,
    messages: tonic::Streaming<v1::AgentMessage>,
}

impl Desk {
    /// `agent`'s desktop, logged in but not ready: staffed (contacts waiting for it get an
    /// estimated wait), offered nothing until it sends `Ready`.
    pub async fn logged_in(channel: &Channel, agent: &str) -> Desk {
        use v1::agent_action::Action as A;
        let mut agents = v1::agent_service_client::AgentServiceClient::new(channel.clone());
        let (actions, outbox) = tokio::sync::mpsc::unbounded_channel();
        actions
            .send(v1::AgentAction {
                action: Some(A::Login(v1::Login { agent: agent.into(), tenant: TENANT.into() })),
            })
            .unwrap();
        let stream = tokio_stream::wrappers::UnboundedReceiverStream::new(outbox);
        let messages = agents.connect(stream).await.unwrap().into_inner();
        let mut desk = Desk { actions, messages };
        loop {
            if let v1::agent_message::Message::State(state) = desk.next().await
                && state == v1::AgentState::NotReady as i32
            {
                return desk;
            }
        }
    }

    /// The next message of any kind.
    pub async fn message(&mut self) -> v1::agent_message::Message {
        self.next().await
    }

    pub async fn ready(channel: &Channel) -> Desk {
        Desk::ready_as(channel, "aino").await
    }

    /// The desktop of `agent` of tenant acme, logged in and ready.
    pub async fn ready_as(channel: &Channel, agent: &str) -> Desk {
        use v1::agent_action::Action as A;
        let mut agents = v1::agent_service_client::AgentServiceClient::new(channel.clone());
        let (actions, outbox) = tokio::sync::mpsc::unbounded_channel();
        for action in
            [A::Login(v1::Login { agent: agent.into(), tenant: TENANT.into() }), A::Ready(v1::Ready {})]
        {
            actions.send(v1::AgentAction { action: Some(action) }).unwrap();
        }
        let stream = tokio_stream::wrappers::UnboundedReceiverStream::new(outbox);
        let messages = agents.connect(stream).await.unwrap().into_inner();
        let mut desk = Desk { actions, messages };
        loop {
            if let v1::agent_message::Message::State(state) = desk.next().await
                && state == v1::AgentState::Ready as i32
            {
                return desk;
            }
        }
    }

    async fn next(&mut self) -> v1::agent_message::Message {
        tokio::time::timeout(Duration::from_secs(20), self.messages.next())
            .await
            .expect("a desk message within 20 s")
            .expect("the stream is open")
            .expect("no error")
            .message
            .expect("a message")
    }

    /// The next offer, skipping other messages.
    pub async fn offer(&mut self) -> v1::Offer {
        loop {
            if let v1::agent_message::Message::Offer(offer) = self.next().await {
                return offer;
            }
        }
    }

    pub fn send(&self, action: v1::agent_action::Action) {
        self.actions.send(v1::AgentAction { action: Some(action) }).unwrap();
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let mut request = hyper::Request::builder().method(method).uri(path).header("host", addr.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body.into())).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(30), sender.send_request(request))
        .await
        .expect("an answer within 30 s")
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Reply { status: parts.status.as_u16(), headers: parts.headers, body }
}

/// A dead-letter record, as read back from the topic.
#[derive(Debug)]
pub struct DeadLetter {
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl DeadLetter {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The dead letters whose correlation id is `correlation`, once at least `count` are there
/// (waits up to 20 s).
pub fn dead_letters(bootstrap: &str, correlation: &str, count: usize) -> Vec<DeadLetter> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("dead-letter-reader-{correlation}"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        partitions.add_partition_offset("vuoro.dead-letters", partition, Offset::Beginning).unwrap();
    }
    consumer.assign(&partitions).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut found = Vec::new();
    while found.len() < count && std::time::Instant::now() < deadline {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else { continue };
        let headers: Vec<(String, String)> = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        if headers.iter().any(|(k, v)| k == "vuoro-correlation" && v == correlation) {
            found.push(DeadLetter {
                key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
                payload: message.payload().unwrap_or_default().to_vec(),
                headers,
            });
        }
    }
    found
}

/// A Messenger webhook body with one customer text message to the test Page.
pub fn messenger_body(mid: &str, text: &str) -> String {
    serde_json::json!({
        "object": "page",
        "entry": [{
            "id": PAGE_ID,
            "time": 1_741_000_000_000_i64,
            "messaging": [{
                "sender": {"id": "6789012345678901"},
                "recipient": {"id": PAGE_ID},
                "timestamp": 1_741_000_000_000_i64,
                "message": {"mid": mid, "text": text}
            }]
        }]
    })
    .to_string()
}

/// The router inputs on the contacts topic that `wanted` picks, once `wanted` has picked
/// `count` (waits up to 20 s).
pub fn router_inputs(
    bootstrap: &str,
    count: usize,
    wanted: impl Fn(&v1::router_input::Input) -> bool,
) -> Vec<v1::router_input::Input> {
    use prost::Message as _;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("contacts-reader-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        partitions.add_partition_offset("vuoro.contacts", partition, Offset::Beginning).unwrap();
    }
    consumer.assign(&partitions).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut found = Vec::new();
    while found.len() < count && std::time::Instant::now() < deadline {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else { continue };
        let Ok(input) = v1::RouterInput::decode(message.payload().unwrap_or_default()) else { continue };
        if let Some(input) = input.input.filter(|i| wanted(i)) {
            found.push(input);
        }
    }
    found
}

/// The customer ratings of `contact` on the contacts topic, once there is one (waits up to 20 s).
pub async fn customer_ratings(bootstrap: &str, contact: &str) -> Vec<v1::router_input::Input> {
    let (bootstrap, contact) = (bootstrap.to_owned(), contact.to_owned());
    tokio::task::spawn_blocking(move || {
        router_inputs(
            &bootstrap,
            1,
            |input| matches!(input, v1::router_input::Input::CustomerRating(r) if r.contact == contact),
        )
    })
    .await
    .unwrap()
}
