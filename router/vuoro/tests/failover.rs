//! Failover between replicas: two `vuoro serve` processes share one Kafka cluster (the
//! embedded one, run by this test and reached over loopback). Agents work contacts through one
//! replica while the replica that owns the tenant's partition is killed with SIGKILL. The
//! survivor takes the partition over: every contact is answered exactly once, none is lost,
//! none is ever on offer twice at the same time, and routing resumes within seconds.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::{Channel, Endpoint};
use vuoro_proto::v1;
use vuoro_service::config::KafkaConfig;
use vuoro_service::kafka::{EmbeddedCluster, partition_for};

const PARTITIONS: i32 = 4;
const CONTACTS: usize = 40;
const TENANT: &str = "acme";

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// A `vuoro serve` process and the partitions its log says it owns.
struct Replica {
    child: Child,
    grpc: SocketAddr,
    owned: Arc<Mutex<BTreeSet<i64>>>,
}

impl Replica {
    fn spawn(bootstrap: &str) -> Replica {
        let (grpc, admin) = (free_port(), free_port());
        let mut child = Command::new(env!("CARGO_BIN_EXE_vuoro"))
            .args(["serve", "--kafka-brokers", bootstrap])
            .args(["--grpc-addr", &grpc.to_string(), "--admin-addr", &admin.to_string()])
            .env("VUORO_KAFKA_PARTITIONS", PARTITIONS.to_string())
            .env("VUORO_LOG_JSON", "true")
            .env("VUORO_STATUS_INTERVAL_MS", "1000")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("vuoro serve starts");
        let owned = Arc::new(Mutex::new(BTreeSet::new()));
        let stdout = child.stdout.take().unwrap();
        let seen = Arc::clone(&owned);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
                let fields = &event["fields"];
                let Some(partition) = fields["partition"].as_i64() else { continue };
                match fields["message"].as_str() {
                    Some("partition recovered") => seen.lock().unwrap().insert(partition),
                    Some("partition moved away") => seen.lock().unwrap().remove(&partition),
                    _ => false,
                };
            }
        });
        Replica { child, grpc, owned }
    }

    fn owns(&self, partition: i32) -> bool {
        self.owned.lock().unwrap().contains(&i64::from(partition))
    }

    async fn channel(&self) -> Channel {
        let endpoint = Endpoint::from_shared(format!("http://{}", self.grpc)).unwrap();
        for _ in 0..200 {
            if let Ok(channel) = endpoint.connect().await {
                return channel;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("replica at {} does not answer", self.grpc);
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the desks saw.
#[derive(Default)]
struct Floor {
    /// Contacts on offer now, and the agent holding each.
    on_offer: HashMap<String, String>,
    /// Contacts completed, in order.
    completed: Vec<String>,
    /// A contact offered while already on offer elsewhere.
    double_offers: Vec<String>,
    /// When each offer arrived.
    offer_times: Vec<Instant>,
}

async fn desk(channel: Channel, agent: &'static str, floor: Arc<Mutex<Floor>>) {
    use v1::agent_action::Action as A;
    let mut client = v1::agent_service_client::AgentServiceClient::new(channel);
    let (actions, outbox) = mpsc::unbounded_channel();
    let send = move |a| actions.send(v1::AgentAction { action: Some(a) }).unwrap();
    send(A::Login(v1::Login { agent: agent.into(), tenant: TENANT.into() }));
    send(A::Ready(v1::Ready {}));
    let mut stream = client.connect(UnboundedReceiverStream::new(outbox)).await.unwrap().into_inner();
    while let Some(Ok(message)) = stream.next().await {
        let Some(v1::agent_message::Message::Offer(offer)) = message.message else { continue };
        let contact = offer.contact.map(|c| c.id).unwrap_or_default();
        {
            let mut floor = floor.lock().unwrap();
            floor.offer_times.push(Instant::now());
            if let Some(other) = floor.on_offer.insert(contact.clone(), agent.into())
                && other != agent
            {
                floor.double_offers.push(contact.clone());
            }
        }
        send(A::Accept(v1::Accept { reservation: offer.reservation }));
        tokio::time::sleep(Duration::from_millis(20)).await;
        send(A::Complete(v1::Complete { reservation: offer.reservation }));
        let mut floor = floor.lock().unwrap();
        floor.on_offer.remove(&contact);
        floor.completed.push(contact);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_owner_loses_no_contact_and_offers_none_twice() {
    let cluster =
        EmbeddedCluster::start(&KafkaConfig { partitions: PARTITIONS, ..KafkaConfig::default() }).unwrap();
    let replicas = [Replica::spawn(cluster.bootstrap()), Replica::spawn(cluster.bootstrap())];
    let partition = partition_for(TENANT, PARTITIONS);

    // Configuration goes through replica 0 and creates the domain's partition owner.
    let channel = replicas[0].channel().await;
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
    let mut agents = v1::agent_service_client::AgentServiceClient::new(channel.clone());
    for id in ["aino", "eero"] {
        let agent = v1::Agent {
            id: id.into(),
            tenant: TENANT.into(),
            pool: "helsinki".into(),
            skills: vec![v1::Skill { skill: "billing".into(), level: 3 }],
            languages: vec!["fi".into()],
            capacity: Some(v1::Capacity { total: 1, voice_max: 1, voice_weight: 1, ..Default::default() }),
        };
        agents.upsert_agent(v1::UpsertAgentRequest { agent: Some(agent) }).await.unwrap();
    }

    // Wait until the group settled and one replica owns the partition.
    let settled = Instant::now();
    let owner = loop {
        let owners: Vec<usize> = (0..2).filter(|&r| replicas[r].owns(partition)).collect();
        if owners.len() == 1 && settled.elapsed() > Duration::from_secs(8) {
            break owners[0];
        }
        assert!(
            settled.elapsed() < Duration::from_secs(60),
            "no single owner of partition {partition}: {owners:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let survivor = 1 - owner;
    let channel = replicas[survivor].channel().await;

    let mut contacts = v1::contact_service_client::ContactServiceClient::new(channel.clone());
    for i in 0..CONTACTS {
        let contact = v1::Contact {
            id: format!("c-{i:03}"),
            tenant: TENANT.into(),
            channel: v1::Channel::Voice as i32,
            required_skills: vec![v1::SkillRequirement { skill: "billing".into(), min_level: 2 }],
            language: "fi".into(),
            ..Default::default()
        };
        contacts.submit_contact(v1::SubmitContactRequest { contact: Some(contact) }).await.unwrap();
    }

    // The agents work through the survivor.
    let floor = Arc::new(Mutex::new(Floor::default()));
    for agent in ["aino", "eero"] {
        tokio::spawn(desk(channel.clone(), agent, Arc::clone(&floor)));
    }
    let started = Instant::now();
    while floor.lock().unwrap().completed.len() < 10 {
        assert!(started.elapsed() < Duration::from_secs(60), "the agents got offers");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Kill the owner: no goodbye to the group, nothing flushed.
    let mut replicas = replicas;
    replicas[owner].child.kill().unwrap();
    let killed = Instant::now();
    let offers_before = floor.lock().unwrap().offer_times.len();

    let deadline = Duration::from_secs(90);
    loop {
        let done = floor.lock().unwrap().completed.iter().collect::<BTreeSet<_>>().len();
        if done == CONTACTS {
            break;
        }
        assert!(killed.elapsed() < deadline, "only {done} of {CONTACTS} contacts completed after the kill");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        let floor = floor.lock().unwrap();
        let resumed = floor.offer_times[offers_before..].first().map(|t| t.duration_since(killed)).unwrap();
        eprintln!("routing resumed {resumed:?} after the owner was killed");
        assert!(resumed < Duration::from_secs(30), "routing resumed after {resumed:?}");
        assert!(floor.double_offers.is_empty(), "on offer twice at once: {:?}", floor.double_offers);
        let distinct: BTreeSet<&String> = floor.completed.iter().collect();
        assert_eq!(distinct.len(), CONTACTS, "every contact was answered");
    }

    // The survivor's engine, rebuilt from the log, counts each contact once.
    let mut admin = v1::admin_service_client::AdminServiceClient::new(channel);
    let stats = loop {
        let stats = admin
            .get_queue_stats(v1::QueueStatsRequest { tenant: TENANT.into() })
            .await
            .unwrap()
            .into_inner();
        let voice = stats.queues.into_iter().find(|q| q.channel == v1::Channel::Voice as i32);
        if let Some(voice) = voice.filter(|v| v.answered == CONTACTS as u64) {
            break voice;
        }
        assert!(killed.elapsed() < deadline, "the survivor's statistics never showed every answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stats.received, CONTACTS as u64, "no contact lost or received twice");
    assert_eq!(stats.waiting, 0);
}
