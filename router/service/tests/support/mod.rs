//! What the service's integration tests share: a test configuration, starting the service,
//! a tenant with a pool and an agent, and small clients.
#![allow(dead_code)] // each test file uses a part

use std::time::Duration;

use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};
use vuoro_proto::v1;
use vuoro_service::config::Config;
use vuoro_service::serve::Server;

/// The configuration every test starts from: free ports, two partitions, fast refreshes.
pub fn test_config() -> Config {
    let mut config = Config {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        status_interval_ms: 500,
        ..Config::default()
    };
    config.kafka.partitions = 2;
    config
}

pub async fn start() -> (Server, Channel) {
    let server = Server::start(&test_config()).await.expect("the service starts");
    let channel =
        Endpoint::from_shared(format!("http://{}", server.grpc_addr)).unwrap().connect().await.unwrap();
    (server, channel)
}

/// The service on a cluster the test holds (to take its broker down or write to it directly).
pub async fn start_on_own_cluster() -> (vuoro_service::kafka::EmbeddedCluster, Config, Server) {
    let mut config = test_config();
    let cluster = vuoro_service::kafka::EmbeddedCluster::start(&config.kafka).unwrap();
    config.kafka.brokers = Some(cluster.bootstrap().to_owned());
    let server = Server::start(&config).await.expect("the service starts");
    (cluster, config, server)
}

pub fn voice_agent(id: &str) -> v1::Agent {
    v1::Agent {
        id: id.into(),
        tenant: "acme".into(),
        pool: "helsinki".into(),
        skills: vec![v1::Skill { skill: "billing".into(), level: 3 }],
        languages: vec!["fi".into()],
        capacity: Some(v1::Capacity { total: 1, voice_max: 1, voice_weight: 1, ..Default::default() }),
    }
}

pub fn contact(id: &str, skill: &str) -> v1::Contact {
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
pub async fn next(stream: &mut tonic::Streaming<v1::AgentMessage>) -> v1::agent_message::Message {
    tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("a message within 20 s")
        .expect("the stream is open")
        .expect("no error")
        .message
        .expect("a message")
}

pub async fn setup_tenant(channel: &Channel) {
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

/// The body of an HTTP GET on the admin port.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()
}

pub async fn wait_for_state(
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

/// An agent desktop: the actions it sends and the messages it gets.
pub struct Desk {
    pub actions: tokio::sync::mpsc::UnboundedSender<v1::AgentAction>,
    pub messages: tonic::Streaming<v1::AgentMessage>,
}

impl Desk {
    /// Connects `agent` of tenant acme, logs in and goes ready; returns once it is ready.
    pub async fn ready(channel: &Channel, agent: &str) -> Desk {
        use v1::agent_action::Action as A;
        let mut agents = v1::agent_service_client::AgentServiceClient::new(channel.clone());
        let (actions, outbox) = tokio::sync::mpsc::unbounded_channel();
        let desk_actions = actions.clone();
        let send = |a| actions.send(v1::AgentAction { action: Some(a) }).unwrap();
        send(A::Login(v1::Login { agent: agent.into(), tenant: "acme".into() }));
        send(A::Ready(v1::Ready {}));
        let stream = tokio_stream::wrappers::UnboundedReceiverStream::new(outbox);
        let mut messages = agents.connect(stream).await.unwrap().into_inner();
        loop {
            if let v1::agent_message::Message::State(state) = next(&mut messages).await
                && state == v1::AgentState::Ready as i32
            {
                break;
            }
        }
        Desk { actions: desk_actions, messages }
    }

    /// Sends an action.
    pub fn send(&self, action: v1::agent_action::Action) {
        self.actions.send(v1::AgentAction { action: Some(action) }).unwrap();
    }

    /// The next offer, skipping other messages.
    pub async fn offer(&mut self) -> v1::Offer {
        loop {
            if let v1::agent_message::Message::Offer(offer) = next(&mut self.messages).await {
                return offer;
            }
        }
    }
}
