//! The gRPC API (`vuoro.v1`): every write becomes a Kafka input and is acknowledged only once
//! Kafka holds it; reads answer from the read model the decision logs build
//! ([`crate::delivery::Registry`]) or from the shard.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_types::{ErrorDetails, StatusExt};
use vuoro_proto::v1;
use vuoro_proto::v1::router_input::Input as In;

use crate::config::Topic;
use crate::convert::{self, FieldViolation};
use crate::delivery::Registry;
use crate::kafka::{self, Cluster};
use crate::shard::{Query, Shard, now_ms};

/// How long a submit waits for the router's first word on the contact (position and wait).
const FIRST_DECISION_WAIT: Duration = Duration::from_secs(2);
/// The retry delay suggested when Kafka cannot take a write.
const RETRY_AFTER: Duration = Duration::from_secs(1);

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// What every service shares: the way into Kafka and the read model.
#[derive(Clone)]
pub struct Gateway {
    producer: FutureProducer,
    contacts_topic: String,
    agent_events_topic: String,
    partitions: i32,
    registry: Arc<Registry>,
    shard: Arc<std::sync::Mutex<Shard>>,
}

impl Gateway {
    /// A gateway writing to `cluster`.
    pub fn new(
        cluster: &Cluster,
        registry: Arc<Registry>,
        shard: Arc<std::sync::Mutex<Shard>>,
    ) -> anyhow::Result<Self> {
        Ok(Gateway {
            producer: cluster.producer()?,
            contacts_topic: cluster.topic(Topic::Contacts),
            agent_events_topic: cluster.topic(Topic::AgentEvents),
            partitions: cluster.partitions,
            registry,
            shard,
        })
    }

    /// Writes an input to its tenant's partition and waits until Kafka has it.
    async fn publish(&self, topic: Topic, tenant: &str, input: In, correlation: &str) -> Result<(), Status> {
        let delivery = self.enqueue(topic, tenant, input, correlation)?;
        delivered(delivery.await)
    }

    /// Hands an input to the producer, in order; the future says when Kafka has it.
    fn enqueue(
        &self,
        topic: Topic,
        tenant: &str,
        input: In,
        correlation: &str,
    ) -> Result<DeliveryFuture, Status> {
        let record = v1::RouterInput { received_unix_ms: now_ms() as i64, input: Some(input) };
        let bytes = record.encode_to_vec();
        let name = match topic {
            Topic::Contacts => &self.contacts_topic,
            _ => &self.agent_events_topic,
        };
        let message = FutureRecord::to(name)
            .partition(kafka::partition_for(tenant, self.partitions))
            .key(tenant)
            .payload(&bytes)
            .headers(kafka::headers(correlation));
        self.producer.send_result(message).map_err(|(error, _)| unavailable(&error.to_string()))
    }
}

/// A delivery's outcome as the API reports it.
fn delivered<Gone>(
    result: Result<rdkafka::producer::future_producer::OwnedDeliveryResult, Gone>,
) -> Result<(), Status> {
    match result {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((error, _))) => Err(unavailable(&error.to_string())),
        Err(_) => Err(unavailable("the producer shut down")),
    }
}

/// UNAVAILABLE with a retry hint: Kafka did not take a write, so nothing was stored.
fn unavailable(why: &str) -> Status {
    crate::metrics::kafka_produce_error();
    Status::with_error_details(
        Code::Unavailable,
        format!("Kafka did not take the write ({why}); nothing was stored, retry"),
        ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
    )
}

/// A correlation id for a request: the caller's `x-request-id`, else a fresh one.
fn correlation<T>(request: &Request<T>) -> String {
    request
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| format!("{:x}", now_ms() ^ u64::from(std::process::id()) << 40), str::to_owned)
}

fn check(violations: Vec<FieldViolation>) -> Result<(), Status> {
    if violations.is_empty() { Ok(()) } else { Err(convert::invalid_argument(&violations)) }
}

fn required<T>(field: &str, value: Option<T>) -> Result<T, Status> {
    value.ok_or_else(|| {
        convert::invalid_argument(&[FieldViolation {
            field: field.into(),
            description: "is required".into(),
        }])
    })
}

fn blank(field: &str, value: &str) -> Result<(), Status> {
    if value.is_empty() {
        Err(convert::invalid_argument(&[FieldViolation {
            field: field.into(),
            description: "is required".into(),
        }]))
    } else {
        Ok(())
    }
}

// ----- ContactService ------------------------------------------------------------------------

/// Contacts of one `SubmitContacts` stream awaiting Kafka's acknowledgement at once.
const IN_FLIGHT: usize = 8_192;

/// Counts a streamed contact as accepted once Kafka has it, or as an error.
fn settle<Gone>(
    response: &mut v1::SubmitContactsResponse,
    id: String,
    channel: Option<vuoro_engine::Channel>,
    result: Result<rdkafka::producer::future_producer::OwnedDeliveryResult, Gone>,
) {
    match delivered(result) {
        Ok(()) => {
            response.accepted += 1;
            if let Some(channel) = channel {
                crate::metrics::contact_received(channel);
            }
        }
        Err(status) => response.errors.push(v1::ContactError { id, reason: status.message().to_owned() }),
    }
}

/// `vuoro.v1.ContactService`.
pub struct Contacts(pub Gateway);

impl Contacts {
    async fn submit_one(
        &self,
        contact: v1::Contact,
        correlation: &str,
    ) -> Result<v1::SubmitContactResponse, Status> {
        let started = std::time::Instant::now();
        check(convert::check_contact(&contact))?;
        let duplicate = self.0.registry.contact(&contact.tenant, &contact.id).is_some();
        let (tx, mut rx) = mpsc::unbounded_channel();
        if !duplicate {
            self.0.registry.watch(&contact.tenant, &contact.id, tx);
        }
        let (tenant, id) = (contact.tenant.clone(), contact.id.clone());
        let channel = convert::engine_channel(contact.channel);
        let published = self.0.publish(Topic::Contacts, &tenant, In::Submit(contact), correlation).await;
        if published.is_ok() && !duplicate {
            // The router's first word: queued with a position, or offered at once.
            let _ = tokio::time::timeout(FIRST_DECISION_WAIT, rx.recv()).await;
        }
        // No word may ever come (Kafka refused the write, the input was dead-lettered): the
        // watcher must not outlive this call.
        drop(rx);
        self.0.registry.unwatch_closed(&tenant, &id);
        published?;
        if let Some(channel) = channel.filter(|_| !duplicate) {
            crate::metrics::contact_received(channel);
        }
        let status = self.0.registry.contact(&tenant, &id).unwrap_or_default();
        if status.state == v1::ContactState::Offered as i32 && !duplicate {
            crate::metrics::submit_to_offer(started.elapsed().as_secs_f64());
        }
        Ok(v1::SubmitContactResponse {
            id,
            state: status.state,
            position: status.position,
            estimated_wait_ms: status.estimated_wait_ms,
            duplicate,
        })
    }
}

#[tonic::async_trait]
impl v1::contact_service_server::ContactService for Contacts {
    async fn submit_contact(
        &self,
        request: Request<v1::SubmitContactRequest>,
    ) -> Result<Response<v1::SubmitContactResponse>, Status> {
        let correlation = correlation(&request);
        let contact = required("contact", request.into_inner().contact)?;
        self.submit_one(contact, &correlation).await.map(Response::new)
    }

    async fn submit_contacts(
        &self,
        request: Request<Streaming<v1::SubmitContactRequest>>,
    ) -> Result<Response<v1::SubmitContactsResponse>, Status> {
        let correlation = correlation(&request);
        let mut stream = request.into_inner();
        let mut response = v1::SubmitContactsResponse::default();
        // Every contact is handed to the producer in order at once; acknowledgements are
        // awaited behind, at most `IN_FLIGHT` outstanding.
        let mut in_flight = std::collections::VecDeque::new();
        while let Some(item) = stream.next().await {
            let Some(contact) = item?.contact else {
                response
                    .errors
                    .push(v1::ContactError { id: String::new(), reason: "contact is required".into() });
                continue;
            };
            let violations = convert::check_contact(&contact);
            if let Some(first) = violations.first() {
                response.errors.push(v1::ContactError {
                    id: contact.id,
                    reason: format!("{}: {}", first.field, first.description),
                });
                continue;
            }
            let (tenant, id, channel) =
                (contact.tenant.clone(), contact.id.clone(), convert::engine_channel(contact.channel));
            let delivery = self.0.enqueue(Topic::Contacts, &tenant, In::Submit(contact), &correlation)?;
            in_flight.push_back((id, channel, delivery));
            while in_flight.len() >= IN_FLIGHT {
                let (id, channel, delivery) = in_flight.pop_front().expect("in flight");
                settle(&mut response, id, channel, delivery.await);
            }
        }
        for (id, channel, delivery) in in_flight {
            settle(&mut response, id, channel, delivery.await);
        }
        Ok(Response::new(response))
    }

    async fn get_contact(
        &self,
        request: Request<v1::ContactRef>,
    ) -> Result<Response<v1::ContactStatus>, Status> {
        let r = request.into_inner();
        self.0
            .registry
            .contact(&r.tenant, &r.id)
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("no live contact {:?} of tenant {:?}", r.id, r.tenant)))
    }

    async fn cancel_contact(
        &self,
        request: Request<v1::ContactRef>,
    ) -> Result<Response<v1::CancelContactResponse>, Status> {
        let correlation = correlation(&request);
        let r = request.into_inner();
        let status = self.0.registry.contact(&r.tenant, &r.id).ok_or_else(|| {
            Status::not_found(format!("no live contact {:?} of tenant {:?}", r.id, r.tenant))
        })?;
        if status.state == v1::ContactState::Accepted as i32 {
            return Err(Status::failed_precondition("the contact is in service: complete it instead"));
        }
        let tenant = r.tenant.clone();
        self.0.publish(Topic::Contacts, &tenant, In::Cancel(r), &correlation).await?;
        Ok(Response::new(v1::CancelContactResponse {}))
    }

    type WatchContactStream = EventStream<v1::ContactEvent>;

    async fn watch_contact(
        &self,
        request: Request<v1::ContactRef>,
    ) -> Result<Response<Self::WatchContactStream>, Status> {
        let r = request.into_inner();
        let status = self.0.registry.contact(&r.tenant, &r.id).ok_or_else(|| {
            Status::not_found(format!("no live contact {:?} of tenant {:?}", r.id, r.tenant))
        })?;
        let (tx, rx) = mpsc::unbounded_channel();
        // Where it stands now, then every change.
        let _ = tx.send(v1::ContactEvent {
            id: r.id.clone(),
            at_unix_ms: now_ms() as i64,
            event: Some(v1::contact_event::Event::Queued(v1::QueueUpdate {
                position: status.position,
                estimated_wait_ms: status.estimated_wait_ms,
            })),
        });
        self.0.registry.watch(&r.tenant, &r.id, tx);
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx).map(Ok))))
    }
}

// ----- AgentService --------------------------------------------------------------------------

/// `vuoro.v1.AgentService`.
pub struct Agents(pub Gateway);

#[tonic::async_trait]
impl v1::agent_service_server::AgentService for Agents {
    type ConnectStream = EventStream<v1::AgentMessage>;

    async fn connect(
        &self,
        request: Request<Streaming<v1::AgentAction>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let correlation = correlation(&request);
        let mut actions = request.into_inner();
        let first = actions
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("the stream ended before login"))??;
        let Some(v1::agent_action::Action::Login(login)) = first.action.clone() else {
            return Err(convert::invalid_argument(&[FieldViolation {
                field: "action".into(),
                description: "the first message must be login".into(),
            }]));
        };
        blank("login.agent", &login.agent)?;
        blank("login.tenant", &login.tenant)?;
        let gateway = self.0.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        gateway.registry.hold_target(&login.agent, tx.clone());
        let agent = login.agent.clone();
        let agent_input = move |action: v1::AgentAction| {
            In::Agent(v1::AgentInput { agent: agent.clone(), action: Some(action) })
        };
        gateway.publish(Topic::AgentEvents, &login.tenant, agent_input(first), &correlation).await?;
        // Actions go to the producer in order as they come; their acknowledgements are
        // awaited behind them, so a desk never waits on Kafka between two actions.
        let (acks, mut pending) = mpsc::unbounded_channel::<DeliveryFuture>();
        let refusals = tx.clone();
        tokio::spawn(async move {
            while let Some(delivery) = pending.recv().await {
                if let Err(status) = delivered(delivery.await) {
                    let refused = v1::agent_message::Message::Refused(status.message().to_owned());
                    let _ = refusals.send(v1::AgentMessage { message: Some(refused) });
                }
            }
        });
        tokio::spawn(async move {
            while let Some(Ok(action)) = actions.next().await {
                // A bad action is refused on the stream and never reaches Kafka.
                if let Some(problem) = convert::check_agent_action(&action).first() {
                    let refused = v1::agent_message::Message::Refused(problem.to_string());
                    let _ = tx.send(v1::AgentMessage { message: Some(refused) });
                    continue;
                }
                match gateway.enqueue(Topic::AgentEvents, &login.tenant, agent_input(action), &correlation) {
                    Ok(delivery) => {
                        let _ = acks.send(delivery);
                    }
                    Err(status) => {
                        let refused = v1::agent_message::Message::Refused(status.message().to_owned());
                        let _ = tx.send(v1::AgentMessage { message: Some(refused) });
                    }
                }
            }
            drop(acks);
            // The desktop went away: its pending offers go back to the queue.
            let logout = v1::AgentAction { action: Some(v1::agent_action::Action::Logout(v1::Logout {})) };
            let _ =
                gateway.publish(Topic::AgentEvents, &login.tenant, agent_input(logout), &correlation).await;
            gateway.registry.release_target(&login.agent, &tx);
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx).map(Ok))))
    }

    async fn upsert_agent(
        &self,
        request: Request<v1::UpsertAgentRequest>,
    ) -> Result<Response<v1::UpsertAgentResponse>, Status> {
        let correlation = correlation(&request);
        let agent = required("agent", request.into_inner().agent)?;
        check(convert::check_agent(&agent))?;
        if let Some(owner) = self.0.registry.agent_tenant(&agent.id)
            && owner != agent.tenant
        {
            return Err(Status::already_exists(format!(
                "agent id {:?} belongs to another tenant; agent ids are unique across tenants",
                agent.id
            )));
        }
        let tenant = agent.tenant.clone();
        self.0.publish(Topic::AgentEvents, &tenant, In::UpsertAgent(agent), &correlation).await?;
        Ok(Response::new(v1::UpsertAgentResponse {}))
    }

    async fn remove_agent(
        &self,
        request: Request<v1::RemoveAgentRequest>,
    ) -> Result<Response<v1::RemoveAgentResponse>, Status> {
        let correlation = correlation(&request);
        let r = request.into_inner();
        blank("id", &r.id)?;
        blank("tenant", &r.tenant)?;
        if self.0.registry.agent_tenant(&r.id).as_deref() != Some(r.tenant.as_str()) {
            return Err(Status::not_found(format!("no agent {:?} in tenant {:?}", r.id, r.tenant)));
        }
        self.0.publish(Topic::AgentEvents, &r.tenant, In::RemoveAgent(r.id.clone()), &correlation).await?;
        Ok(Response::new(v1::RemoveAgentResponse {}))
    }

    async fn list_agents(
        &self,
        request: Request<v1::ListAgentsRequest>,
    ) -> Result<Response<v1::ListAgentsResponse>, Status> {
        let r = request.into_inner();
        blank("tenant", &r.tenant)?;
        Ok(Response::new(v1::ListAgentsResponse { agents: self.0.registry.agents(&r.tenant) }))
    }
}

// ----- PoolService ---------------------------------------------------------------------------

/// `vuoro.v1.PoolService`.
pub struct Pools(pub Gateway);

#[tonic::async_trait]
impl v1::pool_service_server::PoolService for Pools {
    async fn upsert_pool(
        &self,
        request: Request<v1::UpsertPoolRequest>,
    ) -> Result<Response<v1::UpsertPoolResponse>, Status> {
        let correlation = correlation(&request);
        let pool = required("pool", request.into_inner().pool)?;
        check(convert::check_pool(&pool))?;
        let tenant = pool.tenant.clone();
        self.0.publish(Topic::AgentEvents, &tenant, In::UpsertPool(pool), &correlation).await?;
        Ok(Response::new(v1::UpsertPoolResponse {}))
    }

    type LeaseStream = EventStream<v1::LeaseMessage>;

    async fn lease(
        &self,
        request: Request<Streaming<v1::LeaseAction>>,
    ) -> Result<Response<Self::LeaseStream>, Status> {
        use v1::lease_action::Action as L;
        let correlation = correlation(&request);
        let mut actions = request.into_inner();
        let first = actions
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("the stream ended before open"))??;
        let Some(L::Open(pool)) = first.action else {
            return Err(convert::invalid_argument(&[FieldViolation {
                field: "action".into(),
                description: "the first message must be open".into(),
            }]));
        };
        blank("open.id", &pool.id)?;
        blank("open.tenant", &pool.tenant)?;
        let gateway = self.0.clone();
        let (tx, rx) = mpsc::unbounded_channel::<v1::AgentMessage>();
        gateway.registry.hold_target(&pool.id, tx.clone());
        tokio::spawn(async move {
            while let Some(Ok(action)) = actions.next().await {
                let reservation_action = |a| {
                    In::Agent(v1::AgentInput {
                        agent: pool.id.clone(),
                        action: Some(v1::AgentAction { action: Some(a) }),
                    })
                };
                let input = match action.action {
                    Some(L::Capacity(capacity)) => {
                        if let Some(problem) = convert::check_pool_capacity(&capacity).first() {
                            let refused = v1::agent_message::Message::Refused(problem.to_string());
                            let _ = tx.send(v1::AgentMessage { message: Some(refused) });
                            continue;
                        }
                        In::PoolCapacity(v1::PoolCapacity { pool: pool.id.clone(), capacity: Some(capacity) })
                    }
                    Some(L::Accept(a)) => reservation_action(v1::agent_action::Action::Accept(a)),
                    Some(L::Reject(a)) => reservation_action(v1::agent_action::Action::Reject(a)),
                    Some(L::Complete(a)) => reservation_action(v1::agent_action::Action::Complete(a)),
                    Some(L::Open(_)) | None => continue,
                };
                if let Err(status) =
                    gateway.publish(Topic::AgentEvents, &pool.tenant, input, &correlation).await
                {
                    let _ = tx.send(v1::AgentMessage {
                        message: Some(v1::agent_message::Message::Refused(status.message().to_owned())),
                    });
                }
            }
            gateway.registry.release_target(&pool.id, &tx);
        });
        // Offers for the pool arrive as agent messages; the provider sees the lease form.
        let stream = UnboundedReceiverStream::new(rx).filter_map(|m| {
            use v1::agent_message::Message as M;
            use v1::lease_message::Message as LM;
            let message = match m.message? {
                M::Offer(offer) => LM::Offer(offer),
                M::Rescinded(r) => LM::Rescinded(r),
                M::Refused(reason) => LM::Refused(reason),
                M::CustomerMessage(message) => LM::CustomerMessage(message),
                M::State(_) => return None,
            };
            Some(Ok(v1::LeaseMessage { message: Some(message) }))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

// ----- AdminService --------------------------------------------------------------------------

/// `vuoro.v1.AdminService`.
pub struct Admin(pub Gateway);

/// Metadata marking a request one replica forwarded to the owner of a routing domain: the
/// owner answers it itself or not at all, so a request never travels in a circle.
const FORWARDED_HEADER: &str = "vuoro-forwarded";

/// A routing domain is between owners: the caller should retry shortly.
fn moving(why: String) -> Status {
    Status::with_error_details(
        Code::Unavailable,
        format!("{why}; the routing domain is changing owner, retry"),
        ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
    )
}

impl Admin {
    /// A tenant's queue statistics, from this replica's shard if it owns the tenant's routing
    /// domain, else from the owner (unless this request was forwarded already).
    async fn queue_stats(&self, tenant: &str, forwarded: bool) -> Result<v1::QueueStatsResponse, Status> {
        blank("tenant", tenant)?;
        let partition = crate::kafka::partition_for(tenant, self.0.partitions);
        if !self.0.registry.owns(partition) {
            if forwarded {
                return Err(moving(format!("this replica does not own partition {partition}")));
            }
            let Some(owner) = self.0.registry.owner_address(partition) else {
                return Err(moving(format!("no replica owns partition {partition} yet")));
            };
            return ask_owner(&owner, tenant).await;
        }
        let (reply, answer) = oneshot::channel();
        self.0
            .shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ask(Query::QueueStats { tenant: tenant.to_owned(), reply });
        let queues = answer.await.map_err(|_| Status::unavailable("the router shard is stopping"))?;
        Ok(v1::QueueStatsResponse { queues })
    }
}

/// Asks the replica at `owner` for a tenant's queue statistics.
async fn ask_owner(owner: &str, tenant: &str) -> Result<v1::QueueStatsResponse, Status> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{owner}"))
        .map_err(|e| moving(format!("the owner's address {owner:?} is invalid: {e}")))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5));
    let channel =
        endpoint.connect().await.map_err(|e| moving(format!("the owner at {owner} is unreachable: {e}")))?;
    let mut request = Request::new(v1::QueueStatsRequest { tenant: tenant.to_owned() });
    request.metadata_mut().insert(FORWARDED_HEADER, tonic::metadata::MetadataValue::from_static("1"));
    let response =
        v1::admin_service_client::AdminServiceClient::new(channel).get_queue_stats(request).await?;
    Ok(response.into_inner())
}

#[tonic::async_trait]
impl v1::admin_service_server::AdminService for Admin {
    async fn upsert_policy(
        &self,
        request: Request<v1::UpsertPolicyRequest>,
    ) -> Result<Response<v1::UpsertPolicyResponse>, Status> {
        let correlation = correlation(&request);
        let policy = required("policy", request.into_inner().policy)?;
        check(convert::check_policy(&policy))?;
        let tenant = policy.tenant.clone();
        self.0.publish(Topic::AgentEvents, &tenant, In::UpsertPolicy(policy), &correlation).await?;
        Ok(Response::new(v1::UpsertPolicyResponse {}))
    }

    async fn get_policy(
        &self,
        request: Request<v1::GetPolicyRequest>,
    ) -> Result<Response<v1::Policy>, Status> {
        let tenant = request.into_inner().tenant;
        blank("tenant", &tenant)?;
        self.0
            .registry
            .policy(&tenant)
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("tenant {tenant:?} has no policy")))
    }

    async fn get_queue_stats(
        &self,
        request: Request<v1::QueueStatsRequest>,
    ) -> Result<Response<v1::QueueStatsResponse>, Status> {
        let forwarded = request.metadata().contains_key(FORWARDED_HEADER);
        self.queue_stats(&request.into_inner().tenant, forwarded).await.map(Response::new)
    }

    type WatchQueueStatsStream = EventStream<v1::QueueStatsResponse>;

    async fn watch_queue_stats(
        &self,
        request: Request<v1::QueueStatsRequest>,
    ) -> Result<Response<Self::WatchQueueStatsStream>, Status> {
        let tenant = request.into_inner().tenant;
        let first = self.queue_stats(&tenant, false).await?;
        let admin = Admin(self.0.clone());
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(Ok(first.clone()));
        tokio::spawn(async move {
            let mut last = first;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Ok(now) = admin.queue_stats(&tenant, false).await else { break };
                if now != last {
                    if tx.send(Ok(now.clone())).is_err() {
                        break;
                    }
                    last = now;
                }
                if tx.is_closed() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }
}
