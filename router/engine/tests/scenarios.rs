//! Scenario tests: what a contact centre would see from the engine, one behaviour at a time.

use vuoro_engine::hours::OpeningHours;
use vuoro_engine::*;

const T: TenantId = TenantId(1);
const IN_HOUSE: PoolId = PoolId(10);
const OUTSOURCED: PoolId = PoolId(20);

struct Harness {
    engine: Engine,
    now: Millis,
    out: Vec<Output>,
}

impl Harness {
    fn new(policy: ChannelPolicy) -> Self {
        let mut h = Harness { engine: Engine::new(EngineConfig::default()), now: 1_000, out: Vec::new() };
        h.apply(Input::UpsertPolicy(TenantPolicy {
            tenant: T,
            channels: std::array::from_fn(|_| policy.clone()),
            segment_boost: [0, 1, 5],
        }));
        h.pool(IN_HOUSE, PoolKind::InHouse, None);
        h
    }

    fn pool(&mut self, id: PoolId, kind: PoolKind, hours: Option<OpeningHours>) {
        self.apply(Input::UpsertPool(PoolConfig {
            id,
            tenant: T,
            kind,
            mode: PoolMode::AgentLevel,
            hours,
            max_concurrent: None,
        }));
    }

    fn apply(&mut self, input: Input) -> Vec<Output> {
        self.out.clear();
        self.engine.apply(self.now, &input, &mut self.out);
        self.out.clone()
    }

    fn advance(&mut self, ms: Millis) -> Vec<Output> {
        self.now += ms;
        self.apply(Input::Tick)
    }

    fn agent(&mut self, id: u64, pool: PoolId, skills: &[(u16, u8)], capacity: Capacity) {
        let out = self.apply(Input::UpsertAgent(AgentConfig {
            id: AgentId(id),
            pool,
            skills: skills.iter().map(|&(s, l)| SkillLevel::new(s, l)).collect(),
            languages: Languages::of(&[0]),
            capacity,
        }));
        assert!(!out.iter().any(|o| matches!(o, Output::Rejected(_))), "{out:?}");
        self.apply(Input::LogIn(AgentId(id)));
    }

    fn ready(&mut self, id: u64) -> Vec<Output> {
        self.apply(Input::Ready(AgentId(id)))
    }

    fn contact(&mut self, id: u64, channel: Channel, priority: u8, skills: &[(u16, u8)]) -> Vec<Output> {
        let mut spec = ContactSpec::new(ContactId(id), T, channel);
        spec.priority = priority;
        spec.required =
            SkillList::from_slice(&skills.iter().map(|&(s, l)| SkillLevel::new(s, l)).collect::<Vec<_>>())
                .unwrap();
        self.apply(Input::Enqueue(spec))
    }
}

fn offers(out: &[Output]) -> Vec<(u64, Target, ReservationId)> {
    out.iter()
        .filter_map(|o| match *o {
            Output::Offered { contact, target, reservation, .. } => Some((contact.0, target, reservation)),
            _ => None,
        })
        .collect()
}

fn agent(id: u64) -> Target {
    Target::Agent(AgentId(id))
}

fn voice() -> Capacity {
    Capacity::single(Channel::Voice)
}

#[test]
fn a_contact_goes_to_the_longest_idle_qualified_agent() {
    let mut h = Harness::new(ChannelPolicy::default());
    h.agent(1, IN_HOUSE, &[(7, 3)], voice());
    h.agent(2, IN_HOUSE, &[(7, 5)], voice());
    h.agent(3, IN_HOUSE, &[(8, 5)], voice());
    h.ready(3);
    h.ready(2);
    h.ready(1);
    // Agent 3 lacks skill 7; agent 2 became ready before agent 1.
    let out = h.contact(100, Channel::Voice, 0, &[(7, 2)]);
    assert_eq!(offers(&out).iter().map(|o| o.1).collect::<Vec<_>>(), vec![agent(2)]);
    let out = h.contact(101, Channel::Voice, 0, &[(7, 4)]);
    assert!(offers(&out).is_empty(), "agent 1 is below level 4 and agent 2 is busy: {out:?}");
    assert!(out.iter().any(|o| matches!(o, Output::QueueStatus { position: 1, .. })));
}

#[test]
fn higher_priority_goes_first_then_first_come_first_served() {
    let mut h = Harness::new(ChannelPolicy::default());
    h.agent(1, IN_HOUSE, &[], voice());
    h.contact(1, Channel::Voice, 0, &[]);
    h.contact(2, Channel::Voice, 5, &[]);
    h.contact(3, Channel::Voice, 5, &[]);
    h.contact(4, Channel::Voice, 0, &[]);
    let mut served = vec![];
    let mut out = h.ready(1);
    for _ in 0..4 {
        let (contact, _, reservation) = offers(&out)[0];
        served.push(contact);
        h.apply(Input::Accept(reservation));
        out = h.apply(Input::Complete(reservation));
    }
    assert_eq!(served, vec![2, 3, 1, 4]);
}

#[test]
fn aging_lets_a_long_waiting_contact_overtake_higher_priority() {
    let policy = ChannelPolicy { aging_step: Some(10_000), ..ChannelPolicy::default() };
    let mut h = Harness::new(policy);
    h.agent(1, IN_HOUSE, &[], voice());
    h.contact(1, Channel::Voice, 0, &[]);
    h.advance(30_000);
    // Priority 2 is worth 20 s of waiting: the 30 s old contact still goes first.
    h.contact(2, Channel::Voice, 2, &[]);
    h.contact(3, Channel::Voice, 4, &[]);
    let out = h.ready(1);
    assert_eq!(offers(&out)[0].0, 3, "priority 4 = 40 s beats 30 s of waiting");
    let r = offers(&out)[0].2;
    h.apply(Input::Accept(r));
    let out = h.apply(Input::Complete(r));
    assert_eq!(offers(&out)[0].0, 1, "30 s of waiting beats priority 2 = 20 s");
}

#[test]
fn capacity_limits_per_channel_and_in_total_are_respected() {
    let mut h = Harness::new(ChannelPolicy::default());
    // 3 chats and 2 emails, but at most 4 units: a chat takes 1, an email 1.
    let capacity = Capacity { per_channel: [0, 2, 0, 3], weight: [1, 1, 1, 1], total: 4 };
    h.agent(1, IN_HOUSE, &[], capacity);
    h.ready(1);
    let mut offered = 0;
    for id in 0..4 {
        offered += offers(&h.contact(id, Channel::Chat, 0, &[])).len();
    }
    assert_eq!(offered, 3, "three chats at most");
    offered = 0;
    for id in 10..13 {
        offered += offers(&h.contact(id, Channel::Email, 0, &[])).len();
    }
    assert_eq!(offered, 1, "one email fits in the fourth unit");
    let voice_out = h.contact(20, Channel::Voice, 0, &[]);
    assert!(offers(&voice_out).is_empty(), "no voice capacity at all");
}

#[test]
fn a_rejected_contact_goes_elsewhere_and_never_back() {
    let mut h = Harness::new(ChannelPolicy::default());
    h.agent(1, IN_HOUSE, &[], voice());
    h.agent(2, IN_HOUSE, &[], voice());
    h.ready(1);
    let out = h.contact(5, Channel::Voice, 0, &[]);
    let (_, target, r) = offers(&out)[0];
    assert_eq!(target, agent(1));
    let out = h.apply(Input::Reject(r));
    assert!(out.contains(&Output::Requeued { contact: ContactId(5), reason: RequeueReason::Rejected }));
    assert!(offers(&out).is_empty(), "agent 1 must not get it back: {out:?}");
    let out = h.ready(2);
    assert_eq!(offers(&out).iter().map(|o| (o.0, o.1)).collect::<Vec<_>>(), vec![(5, agent(2))]);
    // A stale action on the old reservation is refused.
    let out = h.apply(Input::Accept(r));
    assert_eq!(out, vec![Output::Rejected(Rejection::UnknownReservation(r))]);
}

#[test]
fn expired_offers_requeue_and_repeated_misses_set_the_agent_not_ready() {
    let policy = ChannelPolicy { offer_timeout: 10_000, max_missed_offers: 2, ..ChannelPolicy::default() };
    let mut h = Harness::new(policy);
    h.agent(1, IN_HOUSE, &[], voice());
    h.ready(1);
    h.contact(1, Channel::Voice, 0, &[]);
    h.contact(2, Channel::Voice, 0, &[]);
    let out = h.advance(10_000);
    assert!(out.contains(&Output::Requeued { contact: ContactId(1), reason: RequeueReason::Expired }));
    assert_eq!(offers(&out).iter().map(|o| o.0).collect::<Vec<_>>(), vec![2], "contact 1 excludes agent 1");
    let out = h.advance(10_000);
    assert!(out.contains(&Output::AgentStateChanged {
        agent: AgentId(1),
        state: AgentState::NotReady(NOT_READY_MISSED_OFFERS)
    }));
    assert!(offers(&out).is_empty());
}

#[test]
fn wrap_up_holds_capacity_until_its_time_or_wrap_up_done() {
    let policy = ChannelPolicy { wrap_up: 30_000, ..ChannelPolicy::default() };
    let mut h = Harness::new(policy);
    h.agent(1, IN_HOUSE, &[], voice());
    h.ready(1);
    let r = offers(&h.contact(1, Channel::Voice, 0, &[]))[0].2;
    h.apply(Input::Accept(r));
    h.contact(2, Channel::Voice, 0, &[]);
    let out = h.apply(Input::Complete(r));
    assert!(out.contains(&Output::AgentStateChanged { agent: AgentId(1), state: AgentState::WrapUp }));
    assert!(offers(&out).is_empty());
    let out = h.advance(29_999);
    assert!(offers(&out).is_empty());
    let out = h.advance(1);
    let (_, _, r2) = offers(&out)[0];
    h.apply(Input::Accept(r2));
    h.contact(3, Channel::Voice, 0, &[]);
    h.apply(Input::Complete(r2));
    let out = h.apply(Input::WrapUpDone(r2));
    assert_eq!(offers(&out)[0].0, 3, "wrap-up done frees the agent at once");
}

#[test]
fn a_scheduled_callback_becomes_routable_at_its_time_and_keeps_its_place() {
    let mut h = Harness::new(ChannelPolicy::default());
    h.agent(1, IN_HOUSE, &[], voice());
    let mut spec = ContactSpec::new(ContactId(1), T, Channel::Voice);
    spec.not_before = Some(h.now + 60_000);
    let out = h.apply(Input::Enqueue(spec));
    assert_eq!(out, vec![Output::Scheduled { contact: ContactId(1), at: h.now + 60_000 }]);
    h.advance(10_000);
    h.contact(2, Channel::Voice, 0, &[]);
    h.advance(50_000);
    let out = h.ready(1);
    assert_eq!(offers(&out)[0].0, 1, "the callback arrived first, so it goes first");
}

#[test]
fn preferred_agent_first_then_anyone_after_the_wait() {
    let mut h = Harness::new(ChannelPolicy::default());
    h.agent(1, IN_HOUSE, &[], voice());
    h.agent(2, IN_HOUSE, &[], voice());
    h.ready(2);
    let mut spec = ContactSpec::new(ContactId(9), T, Channel::Voice);
    spec.preferred_agent = Some((AgentId(1), 20_000));
    let out = h.apply(Input::Enqueue(spec));
    assert!(offers(&out).is_empty(), "waits for agent 1 although agent 2 is free");
    let out = h.advance(20_000);
    assert!(out.contains(&Output::Relaxed { contact: ContactId(9), action: None }));
    assert_eq!(offers(&out)[0].1, agent(2));
}

#[test]
fn relaxation_lowers_levels_then_allows_outsourced_pools() {
    let policy = ChannelPolicy {
        relaxation: vec![
            RelaxStep { after: 10_000, action: RelaxAction::LowerRequiredLevels(2) },
            RelaxStep { after: 20_000, action: RelaxAction::AllowOutsourced },
        ],
        ..ChannelPolicy::default()
    };
    let mut h = Harness::new(policy);
    h.pool(OUTSOURCED, PoolKind::Outsourced(ProviderId(1)), None);
    h.agent(1, IN_HOUSE, &[(3, 1)], voice());
    h.agent(2, OUTSOURCED, &[(3, 5)], voice());
    h.ready(1);
    h.ready(2);
    let out = h.contact(1, Channel::Voice, 0, &[(3, 4)]);
    assert!(offers(&out).is_empty(), "in-house agent is level 1, outsourced not yet allowed");
    let out = h.advance(10_000);
    assert!(offers(&out).is_empty(), "level 4 - 2 = 2 is still above agent 1's level");
    let out = h.advance(10_000);
    assert!(out.contains(&Output::Overflowed { contact: ContactId(1), reason: OverflowReason::Relaxation }));
    assert_eq!(offers(&out)[0].1, agent(2));
}

#[test]
fn overflow_after_wait_and_when_in_house_is_closed() {
    let policy = ChannelPolicy {
        overflow: OverflowPolicy {
            after_wait: Some(30_000),
            when_inhouse_closed: true,
            ..Default::default()
        },
        ..ChannelPolicy::default()
    };
    let mut h = Harness::new(policy);
    h.pool(OUTSOURCED, PoolKind::Outsourced(ProviderId(1)), None);
    h.agent(1, IN_HOUSE, &[], voice());
    h.agent(2, OUTSOURCED, &[], voice());
    h.ready(2);
    let out = h.contact(1, Channel::Voice, 0, &[]);
    assert!(offers(&out).is_empty());
    let out = h.advance(30_000);
    assert!(
        out.contains(&Output::Overflowed { contact: ContactId(1), reason: OverflowReason::WaitedTooLong })
    );
    assert_eq!(offers(&out)[0].1, agent(2));

    // Hours that are never open: every new contact overflows at once.
    let never = OpeningHours::new(chrono_tz::UTC, Default::default()).unwrap();
    h.pool(IN_HOUSE, PoolKind::InHouse, Some(never));
    let out = h.contact(2, Channel::Voice, 0, &[]);
    assert!(
        out.contains(&Output::Overflowed { contact: ContactId(2), reason: OverflowReason::InHouseClosed })
    );
}

#[test]
fn percentage_split_sends_every_nth_contact_outsourced() {
    let policy = ChannelPolicy {
        overflow: OverflowPolicy { outsourced_split_pct: 25, ..Default::default() },
        ..ChannelPolicy::default()
    };
    let mut h = Harness::new(policy);
    let split: Vec<u64> = (0..8)
        .filter(|&id| {
            h.contact(id, Channel::Email, 0, &[])
                .iter()
                .any(|o| matches!(o, Output::Overflowed { reason: OverflowReason::Split, .. }))
        })
        .collect();
    assert_eq!(split, vec![3, 7]);
}

#[test]
fn a_capacity_level_pool_takes_leases_up_to_its_declared_capacity() {
    let mut h = Harness::new(ChannelPolicy {
        overflow: OverflowPolicy { outsourced_split_pct: 100, ..Default::default() },
        ..ChannelPolicy::default()
    });
    h.apply(Input::UpsertPool(PoolConfig {
        id: OUTSOURCED,
        tenant: T,
        kind: PoolKind::Outsourced(ProviderId(7)),
        mode: PoolMode::CapacityLevel { skills: vec![SkillLevel::new(1, 3)], languages: Languages::of(&[0]) },
        hours: None,
        max_concurrent: None,
    }));
    for id in 0..3 {
        h.contact(id, Channel::Email, 0, &[(1, 2)]);
    }
    let out = h.apply(Input::PoolCapacity(OUTSOURCED, Capacity::uniform(2)));
    assert_eq!(
        offers(&out).iter().map(|o| (o.0, o.1)).collect::<Vec<_>>(),
        vec![(0, Target::Pool(OUTSOURCED)), (1, Target::Pool(OUTSOURCED))]
    );
    let out = h.contact(10, Channel::Email, 0, &[(1, 4)]);
    assert!(offers(&out).is_empty(), "the provider only covers skill 1 up to level 3");
}

#[test]
fn cancelling_an_offered_contact_rescinds_the_offer_and_frees_the_agent() {
    let mut h = Harness::new(ChannelPolicy::default());
    h.agent(1, IN_HOUSE, &[], voice());
    h.ready(1);
    let r = offers(&h.contact(1, Channel::Voice, 0, &[]))[0].2;
    h.contact(2, Channel::Voice, 0, &[]);
    h.now += 5_000;
    let out = h.apply(Input::Cancel(ContactId(1)));
    assert_eq!(
        out[0],
        Output::OfferRescinded {
            reservation: r,
            contact: ContactId(1),
            target: agent(1),
            reason: RescindReason::Abandoned
        }
    );
    assert_eq!(out[1], Output::Abandoned { contact: ContactId(1), waited: 5_000 });
    assert_eq!(offers(&out)[0].0, 2);
    let out = h.apply(Input::Cancel(ContactId(1)));
    assert_eq!(out, vec![Output::Rejected(Rejection::UnknownContact(ContactId(1)))]);
}

#[test]
fn bad_inputs_are_refused_with_a_reason_and_change_nothing() {
    let mut h = Harness::new(ChannelPolicy::default());
    let out = h.apply(Input::Ready(AgentId(404)));
    assert_eq!(out, vec![Output::Rejected(Rejection::UnknownAgent(AgentId(404)))]);
    let mut spec = ContactSpec::new(ContactId(1), TenantId(99), Channel::Chat);
    assert_eq!(h.apply(Input::Enqueue(spec)), vec![Output::Rejected(Rejection::UnknownTenant(TenantId(99)))]);
    spec.tenant = T;
    h.apply(Input::Enqueue(spec));
    assert_eq!(
        h.apply(Input::Enqueue(spec)),
        vec![Output::Rejected(Rejection::DuplicateContact(ContactId(1)))]
    );
    spec.id = ContactId(2);
    spec.required = SkillList::from_slice(&[SkillLevel::new(1, 6)]).unwrap();
    assert_eq!(h.apply(Input::Enqueue(spec)), vec![Output::Rejected(Rejection::InvalidSkill)]);
    h.agent(1, IN_HOUSE, &[], voice());
    h.ready(1);
    let r = offers(&h.apply(Input::Tick)).first().map(|o| o.2);
    assert!(r.is_none());
    let stats = h.engine.stats();
    let chat = stats.queues.iter().find(|q| q.channel == Channel::Chat).unwrap();
    assert_eq!(chat.received_total, 1, "refused contacts are not counted");
}

#[test]
fn statistics_report_service_level_and_agents_by_state() {
    let policy = ChannelPolicy { service_level_threshold: 20_000, ..ChannelPolicy::default() };
    let mut h = Harness::new(policy);
    h.agent(1, IN_HOUSE, &[], voice());
    h.agent(2, IN_HOUSE, &[], voice());
    h.ready(1);
    let r = offers(&h.contact(1, Channel::Voice, 0, &[]))[0].2;
    h.apply(Input::Accept(r));
    h.contact(2, Channel::Voice, 0, &[]);
    h.advance(25_000);
    let out = h.ready(2);
    let r2 = offers(&out)[0].2;
    h.apply(Input::Accept(r2));
    let reader = h.engine.stats_reader();
    h.engine.publish_stats();
    let stats = reader.load();
    let voice = stats.queues.iter().find(|q| q.channel == Channel::Voice).unwrap();
    assert_eq!(voice.answered_total, 2);
    assert_eq!(voice.window.answered_within_threshold, 1);
    assert_eq!(voice.window.service_level, Some(0.5));
    assert_eq!(voice.window.average_speed_of_answer, Some(12_500));
    let pool = stats.pools.iter().find(|p| p.pool == IN_HOUSE).unwrap();
    assert_eq!(pool.agents.busy, 2);
    assert_eq!(pool.occupancy, Some(1.0));
}

#[test]
fn queue_status_gives_position_and_an_estimate_from_staffing() {
    let policy = ChannelPolicy { default_handle_time: 60_000, ..ChannelPolicy::default() };
    let mut h = Harness::new(policy);
    h.agent(1, IN_HOUSE, &[], voice());
    h.agent(2, IN_HOUSE, &[], voice());
    h.ready(1);
    h.ready(2);
    h.contact(1, Channel::Voice, 0, &[]);
    h.contact(2, Channel::Voice, 0, &[]);
    let out = h.contact(3, Channel::Voice, 0, &[]);
    assert!(out.contains(&Output::QueueStatus {
        contact: ContactId(3),
        position: 1,
        estimated_wait: Some(30_000)
    }));
    let out = h.contact(4, Channel::Voice, 9, &[]);
    assert!(out.contains(&Output::QueueStatus {
        contact: ContactId(4),
        position: 1,
        estimated_wait: Some(30_000)
    }));
    // The refresh moves contact 3 to position 2.
    let out = h.advance(5_000);
    assert!(out.contains(&Output::QueueStatus {
        contact: ContactId(3),
        position: 2,
        estimated_wait: Some(60_000)
    }));
}

#[test]
fn replaying_the_same_inputs_gives_the_same_outputs() {
    let run = || {
        let mut h = Harness::new(ChannelPolicy { offer_timeout: 7_000, ..ChannelPolicy::default() });
        let mut all = vec![];
        for a in 0..5 {
            h.agent(a, IN_HOUSE, &[((a % 3) as u16, 3)], voice());
            all.extend(h.ready(a));
        }
        for c in 0..40u64 {
            all.extend(h.contact(c, Channel::Voice, (c % 4) as u8, &[((c % 3) as u16, 2)]));
            all.extend(h.advance(1_500));
        }
        all
    };
    assert_eq!(run(), run());
}

#[test]
fn multi_chat_agents_take_turns_in_longest_idle_order() {
    let mut h = Harness::new(ChannelPolicy::default());
    for a in 1..=3 {
        h.agent(a, IN_HOUSE, &[], Capacity::uniform(3));
        h.ready(a);
    }
    let mut order = vec![];
    for c in 0..8 {
        order.extend(offers(&h.contact(c, Channel::Chat, 0, &[])).iter().map(|o| o.1));
    }
    assert_eq!(order, vec![agent(1), agent(2), agent(3), agent(1), agent(2), agent(3), agent(1), agent(2)]);
    // Least occupied: fewest units in hand first, even over an agent idle for longer.
    let mut h = Harness::new(ChannelPolicy { strategy: Strategy::LeastOccupied, ..ChannelPolicy::default() });
    for a in 1..=2 {
        h.agent(a, IN_HOUSE, &[], Capacity::uniform(3));
        h.ready(a);
    }
    assert_eq!(offers(&h.contact(0, Channel::Chat, 0, &[]))[0].1, agent(1));
    let to_two = offers(&h.contact(1, Channel::Chat, 0, &[]))[0];
    assert_eq!(to_two.1, agent(2));
    assert_eq!(offers(&h.contact(2, Channel::Chat, 0, &[]))[0].1, agent(1), "tie on units: longest idle");
    h.apply(Input::Accept(to_two.2));
    h.apply(Input::Complete(to_two.2));
    // Agent 1 holds two chats and has waited longer; agent 2 holds none.
    assert_eq!(offers(&h.contact(3, Channel::Chat, 0, &[]))[0].1, agent(2));
}

#[test]
fn a_pool_opening_in_its_time_zone_serves_the_contacts_that_waited_overnight() {
    let mut h = Harness::new(ChannelPolicy::default());
    // 2026-01-15 05:00 UTC is 07:00 in Helsinki; the pool opens at 08:00 local (06:00 UTC).
    h.now = 1_768_453_200_000;
    let hours = OpeningHours::daily(chrono_tz::Europe::Helsinki, 8 * 60, 16 * 60).unwrap();
    h.pool(IN_HOUSE, PoolKind::InHouse, Some(hours));
    h.agent(1, IN_HOUSE, &[], voice());
    h.ready(1);
    let out = h.contact(1, Channel::Voice, 0, &[]);
    assert!(offers(&out).is_empty(), "closed at 07:00 local");
    assert_eq!(h.engine.next_due().map(|t| t <= h.now + 3_600_000), Some(true));
    let out = h.advance(3_599_999);
    assert!(offers(&out).is_empty());
    let out = h.advance(1);
    assert_eq!(offers(&out)[0].0, 1, "served at 08:00 local");
    let stats = h.engine.stats();
    assert!(stats.pools.iter().find(|p| p.pool == IN_HOUSE).unwrap().open);
}
