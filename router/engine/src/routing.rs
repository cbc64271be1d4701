//! Matching: which group a contact waits in, which agents serve each group, and who gets
//! what when a contact or an agent becomes available. This is the hot path: it neither
//! allocates (once tables are warm) nor locks.

use crate::config::Strategy;
use crate::engine::{ContactState, Engine, NO_ESTIMATE, Presence, Reservation, ReservationState};
use crate::event::Output;
use crate::ids::{Channel, MAX_CONTACT_SKILLS, Millis, SkillLevel};
use crate::queue::{self, Group, GroupKey, Head, Membership, Node, Scope, Waiting};
use crate::slab::NIL;
use crate::timers::TimerKind;

/// How a contact comes to be routed, which decides how its queue position is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Just enqueued: it is the newest contact.
    New,
    /// A scheduled contact whose time has come: it arrived earlier.
    Scheduled,
    /// Requeued or moved to another group by relaxation or overflow.
    Returning,
}

/// Timer lanes per tenant and channel: offer deadlines and wrap-up ends.
pub(crate) const LANE_OFFERS: u32 = 0;
/// See [`LANE_OFFERS`].
pub(crate) const LANE_WRAP_UPS: u32 = 1;

/// The lane of one kind of fixed-duration timer of one tenant's channel.
pub(crate) fn timer_lane(tenant: u32, channel: Channel, kind: u32) -> u32 {
    (tenant * Channel::COUNT as u32 + channel.index() as u32) * 2 + kind
}

/// Highest bucket index; buckets are bits of a `u64`.
const TOP_BUCKET: u8 = 63;

impl Engine {
    // ----- groups and memberships ----------------------------------------------------------

    /// The group a contact's current requirement names, created on first use.
    pub(crate) fn group_for(&mut self, c: u32) -> u32 {
        let contact = &self.contacts[c];
        let mut skills = [SkillLevel::default(); MAX_CONTACT_SKILLS];
        let mut count = 0;
        for (i, s) in contact.skills.as_slice().iter().enumerate() {
            let preferred = i >= usize::from(contact.required_len);
            if preferred && !contact.preferred_skills_active {
                continue;
            }
            let level = if preferred { s.level } else { s.level.saturating_sub(contact.level_drop).max(1) };
            match skills[..count].iter_mut().find(|x| x.skill == s.skill) {
                Some(existing) => existing.level = existing.level.max(level),
                None => {
                    skills[count] = SkillLevel { skill: s.skill, level };
                    count += 1;
                }
            }
        }
        skills[..count].sort_unstable();
        let key = GroupKey {
            tenant: contact.tenant,
            channel: contact.channel,
            language: contact.language,
            scope: contact.scope,
            personal: contact.preferred_agent.filter(|_| contact.preferred_agent_active),
            skills,
            skill_count: count as u8,
        };
        match self.group_index.get(&key) {
            Some(&g) => g,
            None => self.create_group(key),
        }
    }

    fn create_group(&mut self, key: GroupKey) -> u32 {
        let strategy = self.policy(key.tenant).channel(key.channel).strategy;
        let g = self.groups.len() as u32;
        self.groups.push(Group::new(key, strategy));
        self.heads.push(Head { top: None, channel: key.channel });
        self.group_index.insert(key, g);
        self.tenants[key.tenant as usize].groups.push(g);
        let mut candidates = std::mem::take(&mut self.scratch);
        candidates.clear();
        if let Some(personal) = key.personal {
            candidates.extend(self.agent_index.get(&personal).copied());
        } else {
            for &p in &self.tenants[key.tenant as usize].pools {
                candidates.extend_from_slice(&self.pools[p].agents);
            }
        }
        let mut placed = Vec::new();
        for &a in &candidates {
            if let Some(proficiency) = self.eligible(a, &key) {
                let node = self.alloc_node(a, proficiency);
                let agent = &mut self.agents[a];
                // Memberships are counted per agent: no growth slack.
                agent.memberships.reserve_exact(1);
                agent.memberships.push(Membership { group: g, node });
                if agent.staffed {
                    self.groups[g as usize].staffed_slots += agent.slots(key.channel);
                }
                if self.in_lists(a, key.channel) {
                    let (bucket, order) = self.place(a, g, node);
                    placed.push((g, bucket, order, node));
                }
            }
        }
        self.scratch = candidates;
        self.link_in_order(&mut placed);
        g
    }

    /// Links unlinked nodes `(group, bucket, key, node)` into their lists: sorted first, so
    /// that every link is an append.
    fn link_in_order(&mut self, placed: &mut [(u32, u8, u64, u32)]) {
        placed.sort_unstable();
        for &(g, bucket, key, n) in placed.iter() {
            queue::link(&mut self.nodes, &mut self.groups[g as usize], n, bucket, key);
        }
    }

    /// Whether agent `a` may serve group `key` whenever it has room, and its summed levels in
    /// the group's skills.
    fn eligible(&self, a: u32, key: &GroupKey) -> Option<u8> {
        let agent = &self.agents[a];
        if agent.tenant != key.tenant || key.personal.is_some_and(|p| p != agent.external) {
            return None;
        }
        let inhouse = self.pools[agent.pool].is_inhouse();
        let scope_ok = match key.scope {
            Scope::InHouse => inhouse,
            Scope::Any => true,
            Scope::Outsourced => !inhouse,
        };
        if !scope_ok || key.language.is_some_and(|l| !agent.languages.contains(l)) {
            return None;
        }
        let mut proficiency = 0u32;
        for s in key.skills() {
            let level = agent.level(s.skill);
            if level < s.level {
                return None;
            }
            proficiency += u32::from(level);
        }
        Some(proficiency.min(u32::from(TOP_BUCKET)) as u8)
    }

    fn alloc_node(&mut self, agent: u32, proficiency: u8) -> u32 {
        let node = Node { agent, prev: NIL, next: NIL, bucket: 0, linked: false, key: 0, proficiency };
        match self.free_nodes.pop() {
            Some(n) => {
                self.nodes[n as usize] = node;
                n
            }
            None => {
                // Nodes are most of an agent's memory: grow the table by a quarter, not by
                // doubling, so little of it stands empty.
                if self.nodes.len() == self.nodes.capacity() {
                    self.nodes.reserve_exact(self.nodes.len() / 4 + 64);
                }
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        }
    }

    /// Gives a (detached) agent a node in every group of its tenant it is eligible for.
    pub(crate) fn add_memberships(&mut self, a: u32) {
        let tenant = self.agents[a].tenant as usize;
        for i in 0..self.tenants[tenant].groups.len() {
            let g = self.tenants[tenant].groups[i];
            if let Some(proficiency) = self.eligible(a, &self.groups[g as usize].key) {
                let node = self.alloc_node(a, proficiency);
                self.agents[a].memberships.push(Membership { group: g, node });
            }
        }
        self.agents[a].memberships.shrink_to_fit();
    }

    /// Frees a (detached) agent's nodes.
    pub(crate) fn drop_memberships(&mut self, a: u32) {
        let memberships = std::mem::take(&mut self.agents[a].memberships);
        self.free_nodes.extend(memberships.iter().map(|m| m.node));
    }

    /// Takes an agent out of every list and out of the staffing counts, before its state
    /// changes.
    pub(crate) fn detach_agent(&mut self, a: u32) {
        let Engine { agents, nodes, groups, tenants, pools, avail, .. } = self;
        let agent = &mut agents[a];
        if agent.staffed {
            for m in &agent.memberships {
                let group = &mut groups[m.group as usize];
                group.staffed_slots -= agent.slots(group.key.channel);
            }
            if pools[agent.pool].is_inhouse() {
                tenants[agent.tenant as usize].inhouse_units -= u64::from(agent.capacity.total);
            }
            agent.staffed = false;
        }
        for m in &agent.memberships {
            queue::unlink(nodes, &mut groups[m.group as usize], m.node);
        }
        avail[a as usize] = 0;
    }

    /// Puts an agent back into the staffing counts and into its groups' lists. It becomes
    /// available anew, so its idle key is refreshed: it goes behind the agents already waiting.
    pub(crate) fn attach_agent(&mut self, a: u32) {
        self.touch_idle(a);
        let Engine { agents, groups, tenants, pools, .. } = self;
        let agent = &mut agents[a];
        let pool = &pools[agent.pool];
        if agent.presence != Presence::Offline && pool.open {
            for m in &agent.memberships {
                let group = &mut groups[m.group as usize];
                group.staffed_slots += agent.slots(group.key.channel);
            }
            if pool.is_inhouse() {
                tenants[agent.tenant as usize].inhouse_units += u64::from(agent.capacity.total);
            }
            agent.staffed = true;
        }
        self.relink_agent(a);
    }

    /// Channels (as bits) on which agent `a` may get an offer now, pool cap and exclusions
    /// aside.
    fn open_channels(&self, a: u32) -> u8 {
        let agent = &self.agents[a];
        if agent.presence != Presence::Ready || !self.pools[agent.pool].open {
            return 0;
        }
        Channel::ALL.iter().filter(|&&c| agent.has_room(c)).fold(0, |bits, &c| bits | 1 << c.index())
    }

    /// Whether agent `a`'s nodes for `channel` belong in their lists.
    fn in_lists(&self, a: u32, channel: Channel) -> bool {
        self.open_channels(a) & (1 << channel.index()) != 0
    }

    /// Puts every node of agent `a` at its current place: in its group's list, at the position
    /// its strategy gives, when the agent has room on the group's channel; out of it otherwise.
    pub(crate) fn relink_agent(&mut self, a: u32) {
        let open = self.open_channels(a);
        self.avail[a as usize] = open;
        self.agents[a].dirty = false;
        for i in 0..self.agents[a].memberships.len() {
            let Membership { group, node } = self.agents[a].memberships[i];
            let g = group as usize;
            queue::unlink(&mut self.nodes, &mut self.groups[g], node);
            if open & (1 << self.groups[g].key.channel.index()) != 0 {
                let (bucket, key) = self.place(a, group, node);
                queue::link(&mut self.nodes, &mut self.groups[g], node, bucket, key);
            }
        }
    }

    /// Where node `n` of agent `a` belongs in the lists of group `g`: `(bucket, key)`.
    fn place(&self, a: u32, g: u32, n: u32) -> (u8, u64) {
        let agent = &self.agents[a];
        let node = &self.nodes[n as usize];
        match self.groups[g as usize].strategy {
            Strategy::LongestIdle => (0, agent.idle_key),
            Strategy::LeastOccupied => (agent.used.min(u16::from(TOP_BUCKET)) as u8, agent.idle_key),
            Strategy::BestProficiency => (TOP_BUCKET - node.proficiency, agent.idle_key),
            // Agents never offered a contact come first, longest idle first.
            Strategy::RoundRobin if agent.offer_key == 0 => (0, agent.idle_key),
            Strategy::RoundRobin => (1, agent.offer_key),
        }
    }

    /// Rebuilds a tenant's agent lists after its strategies changed.
    pub(crate) fn rebuild_lists(&mut self, t: u32) {
        let mut placed = Vec::new();
        for i in 0..self.tenants[t as usize].groups.len() {
            let g = self.tenants[t as usize].groups[i] as usize;
            let strategy = self.policy(t).channel(self.groups[g].key.channel).strategy;
            let group = &mut self.groups[g];
            group.strategy = strategy;
            group.buckets = vec![queue::Bucket { head: NIL, tail: NIL }; queue::bucket_count(strategy)];
            group.nonempty = 0;
        }
        for &p in &self.tenants[t as usize].pools {
            for &a in &self.pools[p].agents {
                let open = self.open_channels(a);
                for m in &self.agents[a].memberships {
                    self.nodes[m.node as usize].linked = false;
                    if open & (1 << self.groups[m.group as usize].key.channel.index()) != 0 {
                        let (bucket, key) = self.place(a, m.group, m.node);
                        placed.push((m.group, bucket, key, m.node));
                    }
                }
            }
        }
        self.link_in_order(&mut placed);
    }

    // ----- matching ------------------------------------------------------------------------

    /// The best agent with room for contact `c`: the head of the first non-empty bucket of its
    /// group, skipping agents it excludes and agents whose pool is at its cap.
    ///
    /// An offer that fills an agent up does not take it out of its lists (that would touch
    /// every group it serves); this walk takes out each such node it meets. An agent whose
    /// nodes are being moved (`dirty`) is skipped; it is served directly.
    fn find_agent(&mut self, c: u32) -> Option<u32> {
        let g = self.contacts[c].group as usize;
        let bit = 1 << self.groups[g].key.channel.index();
        let mut b = 0;
        loop {
            let remaining = self.groups[g].nonempty >> b;
            if remaining == 0 {
                return None;
            }
            b += remaining.trailing_zeros() as usize;
            let mut n = self.groups[g].buckets[b].head;
            while n != NIL {
                let Node { agent: a, next, .. } = self.nodes[n as usize];
                if self.avail[a as usize] & bit == 0 {
                    queue::unlink(&mut self.nodes, &mut self.groups[g], n);
                } else {
                    let agent = &self.agents[a];
                    if !agent.dirty && self.pools[agent.pool].has_room() && !self.excludes(c, agent.target) {
                        return Some(a);
                    }
                }
                n = next;
            }
            b += 1;
            if b >= 64 {
                return None;
            }
        }
    }

    /// The best waiting contact agent `a` can take now, across every group it serves. Only
    /// the groups' dense heads are read, unless a head has refused this agent before.
    fn find_contact(&self, a: u32) -> Option<u32> {
        let agent = &self.agents[a];
        if agent.presence != Presence::Ready
            || !self.pools[agent.pool].open
            || !self.pools[agent.pool].has_room()
        {
            return None;
        }
        let room =
            Channel::ALL.iter().filter(|&&c| agent.has_room(c)).fold(0u8, |bits, &c| bits | 1 << c.index());
        let mut best: Option<Waiting> = None;
        for m in &agent.memberships {
            let head = &self.heads[m.group as usize];
            let Some(top) = head.top else { continue };
            if room & (1 << head.channel.index()) == 0 || best.is_some_and(|b| b.key <= top.key) {
                continue;
            }
            let candidate = if !top.picky || !self.excludes(top.contact, agent.target) {
                Some(top)
            } else {
                // Rare: the head has refused this agent before; take the best one that hasn't.
                self.groups[m.group as usize]
                    .heap
                    .iter()
                    .filter(|w| !w.picky || !self.excludes(w.contact, agent.target))
                    .min_by_key(|w| w.key)
                    .copied()
            };
            if let Some(candidate) = candidate.filter(|c| best.is_none_or(|b| c.key < b.key)) {
                best = Some(candidate);
            }
        }
        best.map(|w| w.contact)
    }

    /// Offers contact `c` (which is not in a heap) to the best agent, or queues it and tells
    /// the customer where it stands.
    pub(crate) fn route_contact(&mut self, c: u32, arrival: Arrival, out: &mut Vec<Output>) {
        if let Some(a) = self.find_agent(c) {
            self.offer(c, a, out);
            return;
        }
        let contact = &self.contacts[c];
        let g = contact.group as usize;
        let item = Waiting { key: contact.key(), contact: c, picky: contact.picky };
        let strict = self.policy(contact.tenant).channel(contact.channel).aging_step.is_none();
        let group = &self.groups[g];
        let position = match arrival {
            // A new contact is behind every waiting one of its priority or higher (they all
            // arrived earlier) and ahead of every lower one, unless aging mixes them.
            Arrival::New if strict => Some(1 + group.at_least(contact.priority)),
            Arrival::New | Arrival::Scheduled => {
                Some(1 + group.heap.iter().filter(|w| w.key < item.key).count() as u32)
            }
            // Back in line: the next refresh tells the customer.
            Arrival::Returning => None,
        };
        let priority = contact.priority;
        let group = &mut self.groups[g];
        group.tally(priority, true);
        queue::heap_push(&mut group.heap, &mut self.heap_pos, item);
        self.heads[g].top = group.heap.first().copied();
        if let Some(position) = position {
            let estimate = self.estimate(g as u32, position);
            self.send_status(c, position, estimate, true, out);
        }
    }

    /// Offers agent `a` the best contacts it can take until it is full or none fits.
    ///
    /// An agent released with work waiting takes it here before it is put back into any list;
    /// if it still has room afterwards, its nodes are put in place now.
    pub(crate) fn serve_agent(&mut self, a: u32, out: &mut Vec<Output>) {
        while let Some(c) = self.find_contact(a) {
            self.leave_queue(c);
            self.offer(c, a, out);
        }
        if self.agents[a].dirty && self.open_channels(a) != 0 {
            self.relink_agent(a);
        }
    }

    /// Takes a waiting contact out of its group's heap.
    pub(crate) fn leave_queue(&mut self, c: u32) {
        let (g, priority) = (self.contacts[c].group as usize, self.contacts[c].priority);
        let group = &mut self.groups[g];
        group.tally(priority, false);
        queue::heap_remove(&mut group.heap, &mut self.heap_pos, c);
        self.heads[g].top = group.heap.first().copied();
    }

    /// Reserves contact `c` for agent `a`.
    fn offer(&mut self, c: u32, a: u32, out: &mut Vec<Output>) {
        let contact = &self.contacts[c];
        let (t, channel, group, external) =
            (contact.tenant, contact.channel, contact.group, contact.external);
        let weight = self.agents[a].capacity.weight[channel.index()];
        let (r, generation) = self.reservations.insert(Reservation {
            contact: c,
            weight,
            contact_id: external,
            agent: a,
            channel,
            group,
            state: ReservationState::Offered,
            accepted_at: 0,
        });
        self.counter += 1;
        let agent = &mut self.agents[a];
        agent.load[channel.index()] += 1;
        agent.used += weight;
        agent.active += 1;
        agent.idle_key = self.counter;
        agent.offer_key = self.counter;
        agent.reservations.push(r);
        let (p, target) = (agent.pool, agent.target);
        let pool = &mut self.pools[p];
        pool.load += 1;
        if pool.is_inhouse() {
            self.tenants[t as usize].inhouse_used += u64::from(weight);
        }
        let pool_id = pool.config.id;
        // Still room somewhere: move to the back of those lists now (every link an append,
        // since the keys are the newest). No room anywhere: walks drop its nodes lazily.
        if self.open_channels(a) != 0 {
            self.relink_agent(a);
        } else {
            self.avail[a as usize] = 0;
            self.agents[a].dirty = true;
        }
        self.contacts[c].state = ContactState::Offered(r);
        let deadline = self.now + self.policy(t).channel(channel).offer_timeout;
        let lane = timer_lane(t, channel, LANE_OFFERS);
        self.timers.schedule_in_lane(lane, deadline, TimerKind::OfferDeadline { reservation: r, generation });
        self.stats.offered(t, channel);
        out.push(Output::Offered {
            reservation: self.reservation_id(r),
            contact: external,
            target,
            pool: pool_id,
            deadline,
        });
        self.report(a, out);
    }

    // ----- waiting list, estimates and queue status ----------------------------------------

    /// Estimated wait for position `position` in group `g` (see the crate README).
    pub(crate) fn estimate(&self, g: u32, position: u32) -> Option<Millis> {
        let group = &self.groups[g as usize];
        if group.staffed_slots == 0 {
            return None;
        }
        let handle = if group.handle_samples >= MIN_HANDLE_SAMPLES {
            group.handle_time
        } else {
            self.policy(group.key.tenant).channel(group.key.channel).default_handle_time as f64
        };
        Some((f64::from(position) * handle / f64::from(group.staffed_slots)).round() as Millis)
    }

    fn send_status(
        &mut self,
        c: u32,
        position: u32,
        estimate: Option<Millis>,
        always: bool,
        out: &mut Vec<Output>,
    ) {
        let contact = &mut self.contacts[c];
        let material = position != contact.last_position
            || match (contact.told_estimate(), estimate) {
                (Some(old), Some(new)) => {
                    let moved = old.abs_diff(new);
                    moved * 10 > old && moved > MATERIAL_ESTIMATE_CHANGE
                }
                (None, None) => false,
                _ => true,
            };
        if always || material {
            contact.last_position = position;
            contact.last_estimate = estimate.unwrap_or(NO_ESTIMATE);
            out.push(Output::QueueStatus { contact: contact.external, position, estimated_wait: estimate });
        }
    }

    /// Recomputes every waiting contact's position and estimate, sending those that moved.
    pub(crate) fn refresh_statuses(&mut self, out: &mut Vec<Output>) {
        let mut order = std::mem::take(&mut self.order_scratch);
        for g in 0..self.groups.len() {
            if self.groups[g].heap.is_empty() {
                continue;
            }
            order.clear();
            order.extend_from_slice(&self.groups[g].heap);
            order.sort_unstable_by_key(|w| w.key);
            for (i, w) in order.iter().enumerate() {
                let position = i as u32 + 1;
                let estimate = self.estimate(g as u32, position);
                self.send_status(w.contact, position, estimate, false, out);
            }
        }
        self.order_scratch = order;
    }
}

/// Handle times observed before the smoothed value replaces the policy's default.
const MIN_HANDLE_SAMPLES: u32 = 5;
/// An estimate must move by more than this (and 10 %) to be sent again.
const MATERIAL_ESTIMATE_CHANGE: Millis = 5_000;
