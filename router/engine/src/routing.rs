//! Matching: which group a contact waits in, which agents serve each group, and who gets
//! what when a contact or an agent becomes available. This is the hot path: it neither
//! allocates (once tables are warm) nor locks.

use crate::config::Strategy;
use crate::engine::{ContactState, Engine, Presence, Reservation, ReservationState};
use crate::event::Output;
use crate::ids::{MAX_CONTACT_SKILLS, Millis, SkillLevel};
use crate::queue::{self, Group, GroupKey, HeapPositions, Node, Scope, Waiting};
use crate::slab::{NIL, Slab};
use crate::timers::TimerKind;

impl HeapPositions for Slab<crate::engine::Contact> {
    fn set_pos(&mut self, contact: u32, pos: u32) {
        self[contact].heap_pos = pos;
    }
    fn pos(&self, contact: u32) -> u32 {
        self[contact].heap_pos
    }
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
        for &a in &candidates {
            if let Some(proficiency) = self.eligible(a, &key) {
                // Take the agent out of the books and back in, so the new membership is
                // staffed and linked like every other.
                self.detach_agent(a);
                let n = self.alloc_node(a, g, proficiency);
                self.agents[a].nodes.push(n);
                self.attach_agent(a);
            }
        }
        self.scratch = candidates;
        g
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

    fn alloc_node(&mut self, agent: u32, group: u32, proficiency: u8) -> u32 {
        let node = Node { agent, group, prev: NIL, next: NIL, bucket: 0, linked: false, key: 0, proficiency };
        match self.free_nodes.pop() {
            Some(n) => {
                self.nodes[n as usize] = node;
                n
            }
            None => {
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
                let n = self.alloc_node(a, g, proficiency);
                self.agents[a].nodes.push(n);
            }
        }
    }

    /// Frees a (detached) agent's nodes.
    pub(crate) fn drop_memberships(&mut self, a: u32) {
        let nodes = std::mem::take(&mut self.agents[a].nodes);
        self.free_nodes.extend_from_slice(&nodes);
    }

    /// Takes an agent out of every list and out of the staffing counts, before its state
    /// changes.
    pub(crate) fn detach_agent(&mut self, a: u32) {
        let Engine { agents, nodes, groups, tenants, pools, .. } = self;
        let agent = &mut agents[a];
        if agent.staffed {
            for &n in &agent.nodes {
                let group = &mut groups[nodes[n as usize].group as usize];
                group.staffed_slots -= agent.slots(group.key.channel);
            }
            if pools[agent.pool].is_inhouse() {
                tenants[agent.tenant as usize].inhouse_units -= u64::from(agent.capacity.total);
            }
            agent.staffed = false;
        }
        for &n in &agent.nodes {
            let g = nodes[n as usize].group as usize;
            queue::unlink(nodes, &mut groups[g], n);
        }
    }

    /// Puts an agent back into the staffing counts and into its groups' lists.
    pub(crate) fn attach_agent(&mut self, a: u32) {
        let Engine { agents, nodes, groups, tenants, pools, .. } = self;
        let agent = &mut agents[a];
        let pool = &pools[agent.pool];
        if agent.presence == Presence::Offline || !pool.open {
            return;
        }
        for &n in &agent.nodes {
            let group = &mut groups[nodes[n as usize].group as usize];
            group.staffed_slots += agent.slots(group.key.channel);
        }
        if pool.is_inhouse() {
            tenants[agent.tenant as usize].inhouse_units += u64::from(agent.capacity.total);
        }
        agent.staffed = true;
        self.relink_agent(a);
    }

    /// Whether agent `a` may get an offer on `channel` now, pool cap and exclusions aside.
    fn offerable(&self, a: u32, channel: crate::ids::Channel) -> bool {
        let agent = &self.agents[a];
        agent.presence == Presence::Ready && self.pools[agent.pool].open && agent.has_room(channel)
    }

    /// Puts every node of agent `a` at its current place: in its group's list, at the position
    /// its strategy gives, when the agent has room on the group's channel; out of it otherwise.
    pub(crate) fn relink_agent(&mut self, a: u32) {
        for i in 0..self.agents[a].nodes.len() {
            let n = self.agents[a].nodes[i];
            let g = self.nodes[n as usize].group as usize;
            queue::unlink(&mut self.nodes, &mut self.groups[g], n);
            if self.offerable(a, self.groups[g].key.channel) {
                let (bucket, key) = self.place(a, n);
                queue::link(&mut self.nodes, &mut self.groups[g], n, bucket, key);
            }
        }
    }

    /// Where node `n` of agent `a` belongs in its group's lists: `(bucket, key)`.
    fn place(&self, a: u32, n: u32) -> (u8, u64) {
        let agent = &self.agents[a];
        let node = &self.nodes[n as usize];
        match self.groups[node.group as usize].strategy {
            Strategy::LongestIdle => (0, agent.idle_key),
            Strategy::LeastOccupied => (agent.used.min(u16::from(TOP_BUCKET)) as u8, agent.idle_key),
            Strategy::BestProficiency => (TOP_BUCKET - node.proficiency, agent.idle_key),
            Strategy::RoundRobin => (0, agent.offer_key),
        }
    }

    /// Rebuilds a tenant's agent lists after its strategies changed.
    pub(crate) fn rebuild_lists(&mut self, t: u32) {
        let mut members = std::mem::take(&mut self.scratch);
        members.clear();
        for &p in &self.tenants[t as usize].pools {
            members.extend_from_slice(&self.pools[p].agents);
        }
        for &a in &members {
            self.detach_agent(a);
        }
        for i in 0..self.tenants[t as usize].groups.len() {
            let g = self.tenants[t as usize].groups[i] as usize;
            let strategy = self.policy(t).channel(self.groups[g].key.channel).strategy;
            let group = &mut self.groups[g];
            group.strategy = strategy;
            group.buckets = vec![queue::Bucket { head: NIL, tail: NIL }; queue::bucket_count(strategy)];
            group.nonempty = 0;
        }
        for &a in &members {
            self.attach_agent(a);
        }
        self.scratch = members;
    }

    // ----- matching ------------------------------------------------------------------------

    /// The best agent with room for contact `c`: the head of the first non-empty bucket of its
    /// group, skipping agents it excludes and agents whose pool is at its cap.
    ///
    /// Offers do not move an agent in its lists (that would touch every group it serves);
    /// its nodes stay where they were, which is never later than where they belong, because an
    /// offer only raises an agent's keys and buckets. This walk puts each stale node it meets
    /// where it belongs, or takes it out when the agent has no room, and carries on.
    fn find_agent(&mut self, c: u32) -> Option<u32> {
        let g = self.contacts[c].group as usize;
        let channel = self.groups[g].key.channel;
        let mut b = 0;
        loop {
            let remaining = self.groups[g].nonempty >> b;
            if remaining == 0 {
                return None;
            }
            b += remaining.trailing_zeros() as usize;
            let mut n = self.groups[g].buckets[b].head;
            while n != NIL {
                let Node { agent: a, next, bucket, key, .. } = self.nodes[n as usize];
                if !self.offerable(a, channel) {
                    queue::unlink(&mut self.nodes, &mut self.groups[g], n);
                    n = next;
                    continue;
                }
                let place = self.place(a, n);
                if place != (bucket, key) {
                    queue::unlink(&mut self.nodes, &mut self.groups[g], n);
                    queue::link(&mut self.nodes, &mut self.groups[g], n, place.0, place.1);
                    // It moved behind its old place. If it still comes before `next`, it
                    // is the one to look at now (fresh); otherwise the walk meets it later.
                    let still_before_next = usize::from(place.0) == b && self.nodes[n as usize].next == next;
                    n = if still_before_next { n } else { next };
                    continue;
                }
                let agent = &self.agents[a];
                if self.pools[agent.pool].has_room() && !self.contacts[c].excludes(agent.target) {
                    return Some(a);
                }
                n = next;
            }
            b += 1;
            if b >= 64 {
                return None;
            }
        }
    }

    /// The best waiting contact agent `a` can take now, across every group it serves.
    fn find_contact(&self, a: u32) -> Option<u32> {
        let agent = &self.agents[a];
        if !self.pools[agent.pool].has_room() {
            return None;
        }
        let mut best: Option<Waiting> = None;
        if agent.presence != Presence::Ready || !self.pools[agent.pool].open {
            return None;
        }
        for &n in &agent.nodes {
            let group = &self.groups[self.nodes[n as usize].group as usize];
            if !agent.has_room(group.key.channel) {
                continue;
            }
            let heap = &group.heap;
            let Some(&top) = heap.first() else { continue };
            let candidate = if !self.contacts[top.contact].excludes(agent.target) {
                Some(top)
            } else {
                // Rare: the head has refused this agent before; take the best one that hasn't.
                heap.iter()
                    .filter(|w| !self.contacts[w.contact].excludes(agent.target))
                    .min_by_key(|w| w.key)
                    .copied()
            };
            if let Some(candidate) = candidate {
                if best.is_none_or(|b| candidate.key < b.key) {
                    best = Some(candidate);
                }
            }
        }
        best.map(|w| w.contact)
    }

    /// Offers contact `c` (which is not in a heap) to the best agent, or queues it. `fresh`
    /// marks a contact that has just started waiting: its queue status is always sent.
    pub(crate) fn route_contact(&mut self, c: u32, fresh: bool, out: &mut Vec<Output>) {
        if let Some(a) = self.find_agent(c) {
            self.offer(c, a, out);
            return;
        }
        let contact = &self.contacts[c];
        let g = contact.group;
        let item = Waiting { key: contact.key(), contact: c };
        queue::heap_push(&mut self.groups[g as usize].heap, &mut self.contacts, item);
        let position = 1 + self.groups[g as usize].heap.iter().filter(|w| w.key < item.key).count() as u32;
        let estimate = self.estimate(g, position);
        self.send_status(c, position, estimate, fresh, out);
    }

    /// Offers agent `a` the best contacts it can take until it is full or none fits.
    pub(crate) fn serve_agent(&mut self, a: u32, out: &mut Vec<Output>) {
        while let Some(c) = self.find_contact(a) {
            self.leave_queue(c);
            self.offer(c, a, out);
        }
    }

    /// Takes a waiting contact out of its group's heap.
    pub(crate) fn leave_queue(&mut self, c: u32) {
        let g = self.contacts[c].group;
        queue::heap_remove(&mut self.groups[g as usize].heap, &mut self.contacts, c);
    }

    /// Reserves contact `c` for agent `a`.
    ///
    /// The agent's list nodes stay where they are (see [`find_agent`](Self::find_agent)).
    fn offer(&mut self, c: u32, a: u32, out: &mut Vec<Output>) {
        let contact = &self.contacts[c];
        let (t, channel, group, external) =
            (contact.tenant, contact.channel, contact.group, contact.external);
        let (r, generation) = self.reservations.insert(Reservation {
            contact: c,
            contact_id: external,
            agent: a,
            channel,
            group,
            state: ReservationState::Offered,
            accepted_at: 0,
        });
        self.counter += 1;
        let agent = &mut self.agents[a];
        let weight = agent.capacity.weight[channel.index()];
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
        self.contacts[c].state = ContactState::Offered(r);
        let deadline = self.now + self.policy(t).channel(channel).offer_timeout;
        self.timers.schedule(deadline, TimerKind::OfferDeadline { reservation: r, generation });
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

    pub(crate) fn wait_list_push(&mut self, c: u32) {
        let contact = &mut self.contacts[c];
        let list = &mut self.tenants[contact.tenant as usize].waiting[contact.channel.index()];
        contact.wait_prev = list.tail;
        contact.wait_next = NIL;
        contact.in_wait_list = true;
        let old_tail = list.tail;
        list.tail = c;
        list.len += 1;
        if old_tail == NIL {
            list.head = c;
        } else {
            self.contacts[old_tail].wait_next = c;
        }
    }

    pub(crate) fn wait_list_remove(&mut self, c: u32) {
        let contact = &mut self.contacts[c];
        if !contact.in_wait_list {
            return;
        }
        contact.in_wait_list = false;
        let (prev, next) = (contact.wait_prev, contact.wait_next);
        let list = &mut self.tenants[contact.tenant as usize].waiting[contact.channel.index()];
        list.len -= 1;
        if prev == NIL {
            list.head = next;
        } else {
            self.contacts[prev].wait_next = next;
        }
        if next == NIL {
            list.tail = prev;
        } else {
            self.contacts[next].wait_prev = prev;
        }
    }

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
            || match (contact.last_estimate, estimate) {
                (Some(old), Some(new)) => {
                    let moved = old.abs_diff(new);
                    moved * 10 > old && moved > MATERIAL_ESTIMATE_CHANGE
                }
                (None, None) => false,
                _ => true,
            };
        if always || material {
            contact.last_position = position;
            contact.last_estimate = estimate;
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
