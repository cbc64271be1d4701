//! Routing through the API, end to end in process: every channel, skills, language, priority,
//! capacity, wrap-up, cancel, offer timeouts and the contact watch — what an agent desktop and
//! a contact-centre platform see.

use std::time::Duration;

use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;
use vuoro_proto::v1;
use vuoro_proto::v1::agent_action::Action as A;
use vuoro_proto::v1::agent_message::Message as M;
use vuoro_proto::v1::contact_event::Event as E;

mod support;
use support::*;

/// An English-speaking agent of acme's pool who takes two chats, an email and a social
/// message at once (four units), no calls.
fn digital_agent(id: &str) -> v1::Agent {
    v1::Agent {
        id: id.into(),
        tenant: "acme".into(),
        pool: "helsinki".into(),
        skills: vec![v1::Skill { skill: "billing".into(), level: 3 }],
        languages: vec!["en".into()],
        capacity: Some(v1::Capacity {
            total: 4,
            chat_max: 2,
            chat_weight: 1,
            email_max: 1,
            email_weight: 1,
            social_max: 1,
            social_weight: 1,
            ..Default::default()
        }),
    }
}

fn in_channel(id: &str, channel: v1::Channel, language: &str, priority: u32) -> v1::Contact {
    v1::Contact { channel: channel as i32, language: language.into(), priority, ..contact(id, "billing") }
}

async fn upsert_agents(channel: &Channel, agents: &[v1::Agent]) {
    let mut client = v1::agent_service_client::AgentServiceClient::new(channel.clone());
    for agent in agents {
        client.upsert_agent(v1::UpsertAgentRequest { agent: Some(agent.clone()) }).await.unwrap();
    }
    let applied = async {
        loop {
            let listed = client
                .list_agents(v1::ListAgentsRequest { tenant: "acme".into() })
                .await
                .unwrap()
                .into_inner()
                .agents;
            if agents.iter().all(|a| listed.iter().any(|l| l.agent.as_ref().is_some_and(|l| l.id == a.id))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), applied).await.expect("the agents are applied");
}

async fn set_policy(channel: &Channel, policy: v1::Policy) {
    let mut admin = v1::admin_service_client::AdminServiceClient::new(channel.clone());
    admin.upsert_policy(v1::UpsertPolicyRequest { policy: Some(policy.clone()) }).await.unwrap();
    let applied = async {
        while admin
            .get_policy(v1::GetPolicyRequest { tenant: "acme".into() })
            .await
            .map(|p| p.into_inner())
            .ok()
            != Some(policy.clone())
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), applied).await.expect("the policy is applied");
}

/// Waits until the router has told a queued contact its position is `position` (positions
/// are refreshed every status interval).
async fn wait_for_position(
    contacts: &mut v1::contact_service_client::ContactServiceClient<Channel>,
    id: &str,
    position: u32,
) {
    let told = async {
        loop {
            let status = wait_for_state(contacts, id, v1::ContactState::Queued).await;
            if status.position == position {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), told)
        .await
        .unwrap_or_else(|_| panic!("{id} was not told position {position} within 20 s"));
}

fn offered_id(offer: &v1::Offer) -> &str {
    offer.contact.as_ref().map_or("", |c| c.id.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_channel_is_routed_by_skill_language_capacity_and_priority_with_wrap_up() {
    let (server, channel) = start().await;
    setup_tenant(&channel).await;
    upsert_agents(&channel, &[digital_agent("eero")]).await;
    let voice_wrap_up =
        v1::ChannelPolicy { channel: v1::Channel::Voice as i32, wrap_up_ms: 600_000, ..Default::default() };
    set_policy(
        &channel,
        v1::Policy { tenant: "acme".into(), channels: vec![voice_wrap_up], ..Default::default() },
    )
    .await;
    let mut aino = Desk::ready(&channel, "aino").await; // Finnish, calls only
    let mut eero = Desk::ready(&channel, "eero").await; // English, digital channels
    let mut contacts = v1::contact_service_client::ContactServiceClient::new(channel.clone());
    let submit = |c: v1::Contact| v1::SubmitContactRequest { contact: Some(c) };

    // A Finnish call goes to the Finnish agent who takes calls.
    contacts.submit_contact(submit(in_channel("call-fi", v1::Channel::Voice, "fi", 0))).await.unwrap();
    let call = aino.offer().await;
    assert_eq!((offered_id(&call), call.target.as_str()), ("call-fi", "aino"));

    // Chat, email and social in English go to the English agent, up to his capacity.
    let mut reservations = std::collections::HashMap::new();
    for (id, ch) in [
        ("chat-1", v1::Channel::Chat),
        ("mail-1", v1::Channel::Email),
        ("dm-1", v1::Channel::Social),
        ("chat-2", v1::Channel::Chat),
    ] {
        contacts.submit_contact(submit(in_channel(id, ch, "en", 0))).await.unwrap();
        let offer = eero.offer().await;
        assert_eq!((offered_id(&offer), offer.target.as_str()), (id, "eero"));
        assert_eq!(offer.contact.as_ref().unwrap().channel, ch as i32, "the offer carries the channel");
        if id == "chat-1" {
            // Somebody else's offer cannot be taken: the refusal reaches the desk that tried.
            aino.send(A::Accept(v1::Accept { reservation: offer.reservation }));
            let reason = loop {
                match next(&mut aino.messages).await {
                    M::Refused(reason) => break reason,
                    M::State(_) => {} // she is busy with the call offered to her
                    other => panic!("a refusal, not {other:?}"),
                }
            };
            assert!(reason.contains("reservation"), "{reason}");
        }
        eero.send(A::Accept(v1::Accept { reservation: offer.reservation }));
        wait_for_state(&mut contacts, id, v1::ContactState::Accepted).await;
        reservations.insert(id, offer.reservation);
    }
    // A contact in service cannot be cancelled.
    let cancel = contacts.cancel_contact(v1::ContactRef { tenant: "acme".into(), id: "chat-1".into() }).await;
    assert_eq!(cancel.unwrap_err().code(), Code::FailedPrecondition);

    // His two chat slots are full: a third chat waits, and a later urgent one goes before it.
    contacts.submit_contact(submit(in_channel("chat-low", v1::Channel::Chat, "en", 0))).await.unwrap();
    let urgent = contacts
        .submit_contact(submit(in_channel("chat-urgent", v1::Channel::Chat, "en", 50)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((urgent.state, urgent.position), (v1::ContactState::Queued as i32, 1), "{urgent:?}");
    wait_for_position(&mut contacts, "chat-low", 2).await;

    // A finished chat frees a slot at once: the urgent chat is offered first.
    eero.send(A::Complete(v1::Complete { reservation: reservations["chat-1"] }));
    let offer = eero.offer().await;
    assert_eq!(offered_id(&offer), "chat-urgent", "priority before arrival order");

    // A finished call starts the call's wrap-up; she is ready again when she ends it.
    aino.send(A::Accept(v1::Accept { reservation: call.reservation }));
    aino.send(A::Complete(v1::Complete { reservation: call.reservation }));
    let mut states = Vec::new();
    while states.last() != Some(&v1::AgentState::WrapUp) {
        if let M::State(state) = next(&mut aino.messages).await {
            states.push(v1::AgentState::try_from(state).unwrap());
        }
    }
    assert!(!states.contains(&v1::AgentState::Ready), "busy until the wrap-up: {states:?}");
    aino.send(A::WrapUpDone(v1::WrapUpDone { reservation: call.reservation }));
    let M::State(state) = next(&mut aino.messages).await else { panic!("her state") };
    assert_eq!(state, v1::AgentState::Ready as i32);
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_contact_sees_its_position_fall_an_unanswered_offer_move_on_and_a_cancel_end_it() {
    let (server, channel) = start().await;
    setup_tenant(&channel).await;
    let mut aila = voice_agent("aila");
    aila.skills[0].level = 2;
    upsert_agents(&channel, &[aila]).await;
    let voice = v1::ChannelPolicy {
        channel: v1::Channel::Voice as i32,
        offer_timeout_ms: 1_000,
        ..Default::default()
    };
    set_policy(&channel, v1::Policy { tenant: "acme".into(), channels: vec![voice], ..Default::default() })
        .await;
    let mut contacts = v1::contact_service_client::ContactServiceClient::new(channel.clone());
    for id in ["first", "second"] {
        contacts
            .submit_contact(v1::SubmitContactRequest { contact: Some(contact(id, "billing")) })
            .await
            .unwrap();
        wait_for_state(&mut contacts, id, v1::ContactState::Queued).await;
    }
    let watch = |id: &str| v1::ContactRef { tenant: "acme".into(), id: id.into() };
    let mut second = contacts.watch_contact(watch("second")).await.unwrap().into_inner();
    let mut first = contacts.watch_contact(watch("first")).await.unwrap().into_inner();
    let next_event = async |stream: &mut tonic::Streaming<v1::ContactEvent>| {
        tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("an event within 20 s")
            .expect("the watch is open")
            .expect("no error")
            .event
            .expect("an event")
    };
    let E::Queued(now) = next_event(&mut second).await else { panic!("where it stands first") };
    assert_eq!(now.position, 2);

    // The customer ahead hangs up: the watch hears the end of one and the other move up.
    contacts.cancel_contact(watch("first")).await.unwrap();
    loop {
        if let E::Abandoned(_) = next_event(&mut first).await {
            break;
        }
    }
    loop {
        if let E::Queued(update) = next_event(&mut second).await
            && update.position == 1
        {
            break;
        }
    }
    let gone = contacts.get_contact(watch("first")).await;
    assert_eq!(gone.unwrap_err().code(), Code::NotFound, "an abandoned contact is gone");

    // Aino (level 3) is offered the call first but does not answer; after the offer timeout
    // it is taken back from her and offered to Aila.
    let mut aino = Desk::ready(&channel, "aino").await;
    let offer = aino.offer().await;
    assert_eq!((offered_id(&offer), offer.target.as_str()), ("second", "aino"));
    let mut aila = Desk::ready(&channel, "aila").await;
    loop {
        if let M::Rescinded(reservation) = next(&mut aino.messages).await {
            assert_eq!(reservation, offer.reservation);
            break;
        }
    }
    let again = aila.offer().await;
    assert_eq!((offered_id(&again), again.target.as_str()), ("second", "aila"));
    let mut seen = Vec::new();
    loop {
        match next_event(&mut second).await {
            E::Offered(o) if o.target == "aila" => break,
            E::Offered(o) => seen.push(format!("offered to {}", o.target)),
            E::RequeuedReason(reason) => seen.push(format!("requeued: {reason}")),
            _ => {}
        }
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0] == "offered to aino" && seen[1].starts_with("requeued"), "{seen:?}");
    server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customer_hears_the_wait_the_agent_joining_her_reply_and_the_end_on_the_outbound_topic() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Message, Offset, TopicPartitionList};
    use v1::outbound_message::Message as O;

    let (server, channel) = start().await;
    setup_tenant(&channel).await;
    let mut contacts = v1::contact_service_client::ContactServiceClient::new(channel.clone());
    let customer = v1::Customer { display_name: "Maija".into(), address: "+358401234567".into() };
    let attributes = [("reply.thread", "t-1"), ("order", "A-100")].map(|(k, v)| (k.to_owned(), v.to_owned()));
    let call = v1::Contact {
        customer: Some(customer),
        attributes: attributes.into_iter().collect(),
        ..contact("call-back", "billing")
    };
    contacts.submit_contact(v1::SubmitContactRequest { contact: Some(call) }).await.unwrap();
    wait_for_state(&mut contacts, "call-back", v1::ContactState::Queued).await;

    let mut aino = Desk::ready(&channel, "aino").await;
    let offer = aino.offer().await;
    aino.send(A::Accept(v1::Accept { reservation: offer.reservation }));
    wait_for_state(&mut contacts, "call-back", v1::ContactState::Accepted).await;
    let reply = |text: &str| v1::Reply { contact: "call-back".into(), text: text.into() };
    aino.send(A::Reply(reply("Hei Maija, soitan heti.")));
    aino.send(A::Complete(v1::Complete { reservation: offer.reservation }));

    let bootstrap = server.kafka_bootstrap.clone();
    let topic = test_config().kafka.topic(vuoro_service::config::Topic::Outbound);
    let partition = vuoro_service::kafka::partition_for("acme", test_config().kafka.partitions);
    let heard = tokio::task::spawn_blocking(move || {
        let reader: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "test-outbound")
            .create()
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(&topic, partition, Offset::Beginning).unwrap();
        reader.assign(&assignment).unwrap();
        let mut heard = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            let Some(Ok(record)) = reader.poll(Duration::from_millis(200)) else { continue };
            let message = <v1::OutboundMessage as prost::Message>::decode(record.payload().unwrap()).unwrap();
            let done = matches!(message.message, Some(O::Completed(_)));
            heard.push(message);
            if done {
                return heard;
            }
        }
        panic!("no Completed on the outbound topic within 30 s: {heard:?}");
    })
    .await
    .unwrap();

    assert!(heard.iter().all(|m| m.contact == "call-back" && m.tenant == "acme"), "{heard:?}");
    assert!(heard.iter().all(|m| m.channel == v1::Channel::Voice as i32 && m.address == "+358401234567"));
    let context: std::collections::HashMap<String, String> =
        [("reply.thread".to_owned(), "t-1".to_owned())].into();
    assert!(heard.iter().all(|m| m.context == context), "only reply.* attributes travel: {heard:?}");
    let ids: std::collections::HashSet<&str> = heard.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), heard.len(), "ids are unique, so adapters can dedupe");
    let said: Vec<String> = heard
        .iter()
        .filter_map(|m| match &m.message {
            Some(O::Queued(q)) => Some(format!("queued {}", q.position)),
            Some(O::AgentJoined(agent)) => Some(format!("joined {agent}")),
            Some(O::Reply(text)) => Some(format!("reply {text}")),
            Some(O::Completed(_)) => Some("completed".into()),
            _ => None,
        })
        .collect();
    let first_queued = said.iter().position(|s| s == "queued 1").expect("her place in the queue");
    assert_eq!(
        said[first_queued + 1..].iter().filter(|s| !s.starts_with("queued")).collect::<Vec<_>>(),
        ["joined aino", "reply Hei Maija, soitan heti.", "completed"],
        "{said:?}"
    );
    server.stop(Duration::from_secs(5)).await;
}

/// Writes a customer's input (a message, a rating) to the contacts topic as a channel adapter does.
async fn from_customer(bootstrap: &str, input: v1::router_input::Input) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let config = test_config();
    let record = v1::RouterInput { received_unix_ms: 0, input: Some(input) };
    let bytes = prost::Message::encode_to_vec(&record);
    producer
        .send(
            FutureRecord::to(&config.kafka.topic(vuoro_service::config::Topic::Contacts))
                .partition(vuoro_service::kafka::partition_for("acme", config.kafka.partitions))
                .key("acme")
                .payload(&bytes)
                .headers(vuoro_service::kafka::headers("test")),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_customer_writes_reaches_the_agent_who_takes_the_contact_and_then_live() {
    let (server, channel) = start().await;
    setup_tenant(&channel).await;
    upsert_agents(&channel, &[digital_agent("eero")]).await;
    let mut contacts = v1::contact_service_client::ContactServiceClient::new(channel.clone());
    let chat = in_channel("chat-7", v1::Channel::Chat, "en", 0);
    contacts.submit_contact(v1::SubmitContactRequest { contact: Some(chat) }).await.unwrap();
    wait_for_state(&mut contacts, "chat-7", v1::ContactState::Queued).await;

    let says = |id: &str, text: &str| {
        v1::router_input::Input::CustomerMessage(v1::CustomerMessage {
            tenant: "acme".into(),
            contact: "chat-7".into(),
            id: id.into(),
            text: text.into(),
        })
    };
    let bootstrap = server.kafka_bootstrap.clone();
    from_customer(&bootstrap, says("m1", "Is anyone there?")).await;
    from_customer(&bootstrap, says("m2", "My invoice is wrong.")).await;

    let mut eero = Desk::ready(&channel, "eero").await;
    let offer = eero.offer().await;
    assert_eq!(offer.contact.as_ref().unwrap().id, "chat-7");
    eero.send(A::Accept(v1::Accept { reservation: offer.reservation }));
    let mut heard = Vec::new();
    while heard.len() < 2 {
        if let M::CustomerMessage(m) = next(&mut eero.messages).await {
            assert_eq!((m.tenant.as_str(), m.contact.as_str()), ("acme", "chat-7"));
            heard.push(m.text);
        }
    }
    assert_eq!(heard, ["Is anyone there?", "My invoice is wrong."], "held while waiting, in order");

    from_customer(&bootstrap, says("m3", "Thanks!")).await;
    loop {
        if let M::CustomerMessage(m) = next(&mut eero.messages).await {
            assert_eq!((m.id.as_str(), m.text.as_str()), ("m3", "Thanks!"), "live once accepted");
            break;
        }
    }
    server.stop(Duration::from_secs(5)).await;
}
