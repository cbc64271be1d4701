//! Requirement groups: the contacts waiting for the same set of agents, and the agents with
//! room who can serve them.
//!
//! Contacts of a group wait in an indexed binary heap ordered by `(rank, seq)`, so the best one
//! is at the top and any one can be taken out in O(log n). Agents with room wait in intrusive
//! doubly-linked lists, one per strategy bucket, ordered by key, so the best agent is the head
//! of the first non-empty bucket. Neither allocates once warmed up.

use crate::ids::{Channel, LanguageId, MAX_CONTACT_SKILLS, SkillLevel};
use crate::slab::NIL;

/// Which pool kinds a contact may go to.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    InHouse,
    Any,
    Outsourced,
}

/// What a group's contacts need. Contacts with equal keys are served by the same agents.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct GroupKey {
    pub tenant: u32,
    pub channel: Channel,
    pub language: Option<LanguageId>,
    pub scope: Scope,
    /// While the preferred-agent wait runs, the only agent.
    pub personal: Option<crate::ids::AgentId>,
    /// Required skills, sorted by skill, each once with its highest level.
    pub skills: [SkillLevel; MAX_CONTACT_SKILLS],
    pub skill_count: u8,
}

impl GroupKey {
    pub(crate) fn skills(&self) -> &[SkillLevel] {
        &self.skills[..usize::from(self.skill_count)]
    }
}

/// Ordering key of a waiting contact: lower goes first.
pub(crate) type ContactKey = (i64, u64);

/// An agent's membership in a group's lists.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug)]
pub(crate) struct Node {
    pub agent: u32,
    pub prev: u32,
    pub next: u32,
    /// Position within the strategy's buckets while linked.
    pub bucket: u8,
    pub linked: bool,
    /// Sort key within the bucket while linked.
    pub key: u64,
    /// Summed levels of the agent in the group's skills (for best proficiency).
    pub proficiency: u8,
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug)]
pub(crate) struct Bucket {
    pub head: u32,
    pub tail: u32,
}

/// A requirement group.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Group {
    pub key: GroupKey,
    /// How the tenant picks agents on this channel.
    pub strategy: crate::config::Strategy,
    /// Waiting contacts (dense indices), a binary min-heap on their key.
    pub heap: Vec<Waiting>,
    /// Agent lists per bucket.
    pub buckets: Vec<Bucket>,
    /// Bit `b` set when bucket `b` is non-empty.
    pub nonempty: u64,
    /// Waiting contacts per effective priority, highest first (a few classes in practice).
    pub by_priority: Vec<(u16, u32)>,
    /// Contact slots of logged-in member agents whose pool is open.
    pub staffed_slots: u32,
    /// Smoothed time from offer to release, and how many releases it has seen.
    pub handle_time: f64,
    pub handle_samples: u32,
}

impl Group {
    pub(crate) fn new(key: GroupKey, strategy: crate::config::Strategy) -> Self {
        let bucket_count = bucket_count(strategy);
        Group {
            key,
            strategy,
            heap: Vec::new(),
            by_priority: Vec::new(),
            buckets: vec![Bucket { head: NIL, tail: NIL }; bucket_count],
            nonempty: 0,
            staffed_slots: 0,
            handle_time: 0.0,
            handle_samples: 0,
        }
    }
}

impl Group {
    /// Counts a contact of `priority` in or out of the per-priority tally.
    pub(crate) fn tally(&mut self, priority: u16, joined: bool) {
        match self.by_priority.iter().position(|&(p, _)| p <= priority) {
            Some(i) if self.by_priority[i].0 == priority => {
                let count = &mut self.by_priority[i].1;
                if joined {
                    *count += 1;
                } else {
                    *count -= 1;
                    if *count == 0 {
                        self.by_priority.remove(i);
                    }
                }
            }
            at => {
                debug_assert!(joined, "a contact leaving was counted when it joined");
                self.by_priority.insert(at.unwrap_or(self.by_priority.len()), (priority, 1));
            }
        }
    }

    /// Waiting contacts of at least `priority`.
    pub(crate) fn at_least(&self, priority: u16) -> u32 {
        self.by_priority.iter().take_while(|&&(p, _)| p >= priority).map(|&(_, n)| n).sum()
    }
}

/// Buckets a strategy orders agents by (see the crate README).
pub(crate) fn bucket_count(strategy: crate::config::Strategy) -> usize {
    use crate::config::Strategy::*;
    match strategy {
        LongestIdle => 1,
        RoundRobin => 2,
        LeastOccupied | BestProficiency => 64,
    }
}

/// Inserts `node` into its group's bucket list, keeping the bucket sorted by key (ties after
/// equal keys). Keys are usually the largest so far, so the walk from the tail is short.
pub(crate) fn link(nodes: &mut [Node], group: &mut Group, node: u32, bucket: u8, key: u64) {
    debug_assert!(!nodes[node as usize].linked, "a node is in at most one list");
    let b = usize::from(bucket);
    let mut after = group.buckets[b].tail;
    while after != NIL && nodes[after as usize].key > key {
        after = nodes[after as usize].prev;
    }
    let before = if after == NIL { group.buckets[b].head } else { nodes[after as usize].next };
    {
        let n = &mut nodes[node as usize];
        n.prev = after;
        n.next = before;
        n.bucket = bucket;
        n.key = key;
        n.linked = true;
    }
    if after == NIL {
        group.buckets[b].head = node;
    } else {
        nodes[after as usize].next = node;
    }
    if before == NIL {
        group.buckets[b].tail = node;
    } else {
        nodes[before as usize].prev = node;
    }
    group.nonempty |= 1 << b;
}

/// Takes `node` out of its list, if linked.
pub(crate) fn unlink(nodes: &mut [Node], group: &mut Group, node: u32) {
    let Node { prev, next, bucket, linked, .. } = nodes[node as usize];
    if !linked {
        return;
    }
    let b = usize::from(bucket);
    if prev == NIL {
        group.buckets[b].head = next;
    } else {
        nodes[prev as usize].next = next;
    }
    if next == NIL {
        group.buckets[b].tail = prev;
    } else {
        nodes[next as usize].prev = prev;
    }
    if group.buckets[b].head == NIL {
        group.nonempty &= !(1 << b);
    }
    let n = &mut nodes[node as usize];
    n.linked = false;
    n.prev = NIL;
    n.next = NIL;
}

/// A waiting contact in a group's heap: its key is kept inline so ordering and position
/// counting scan contiguous memory.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Waiting {
    pub key: ContactKey,
    pub contact: u32,
    /// The contact has refused or missed some agent (so check its exclusions).
    pub picky: bool,
}

/// A group's hot summary, kept in a dense array so a freed agent compares the heads of all
/// its groups within a few cache lines.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug)]
pub(crate) struct Head {
    /// The best waiting contact.
    pub top: Option<Waiting>,
    pub channel: Channel,
}

/// An agent's membership in a group, with its list node.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug)]
pub(crate) struct Membership {
    pub group: u32,
    pub node: u32,
}

/// Each contact slot's place in its group's heap, in one dense array.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct HeapSlots(pub Vec<u32>);

impl HeapPositions for HeapSlots {
    fn set_pos(&mut self, contact: u32, pos: u32) {
        self.0[contact as usize] = pos;
    }
    fn pos(&self, contact: u32) -> u32 {
        self.0[contact as usize]
    }
}

/// Where each contact sits in its heap, so any one can be removed.
pub(crate) trait HeapPositions {
    fn set_pos(&mut self, contact: u32, pos: u32);
    fn pos(&self, contact: u32) -> u32;
}

/// An indexed binary min-heap of waiting contacts.
pub(crate) fn heap_push(heap: &mut Vec<Waiting>, positions: &mut impl HeapPositions, item: Waiting) {
    heap.push(item);
    let i = heap.len() - 1;
    sift_up(heap, positions, i);
}

pub(crate) fn heap_remove(heap: &mut Vec<Waiting>, positions: &mut impl HeapPositions, contact: u32) {
    let i = positions.pos(contact) as usize;
    debug_assert_eq!(heap[i].contact, contact);
    let last = heap.pop().expect("contact is in the heap");
    positions.set_pos(contact, NIL);
    if i < heap.len() {
        heap[i] = last;
        let i = sift_up(heap, positions, i);
        sift_down(heap, positions, i);
    }
}

fn sift_up(heap: &mut [Waiting], positions: &mut impl HeapPositions, mut i: usize) -> usize {
    let item = heap[i];
    while i > 0 {
        let parent = (i - 1) / 2;
        if heap[parent].key <= item.key {
            break;
        }
        heap[i] = heap[parent];
        positions.set_pos(heap[i].contact, i as u32);
        i = parent;
    }
    heap[i] = item;
    positions.set_pos(item.contact, i as u32);
    i
}

fn sift_down(heap: &mut [Waiting], positions: &mut impl HeapPositions, mut i: usize) {
    let item = heap[i];
    loop {
        let left = 2 * i + 1;
        if left >= heap.len() {
            break;
        }
        let right = left + 1;
        let child = if right < heap.len() && heap[right].key < heap[left].key { right } else { left };
        if heap[child].key >= item.key {
            break;
        }
        heap[i] = heap[child];
        positions.set_pos(heap[i].contact, i as u32);
        i = child;
    }
    heap[i] = item;
    positions.set_pos(item.contact, i as u32);
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Positions(Vec<u32>);

    impl HeapPositions for Positions {
        fn set_pos(&mut self, c: u32, p: u32) {
            self.0[c as usize] = p;
        }
        fn pos(&self, c: u32) -> u32 {
            self.0[c as usize]
        }
    }

    #[test]
    fn heap_yields_contacts_in_key_order_after_arbitrary_removals() {
        let keys: Vec<ContactKey> = (0..200u64).map(|i| (((i * 7919) % 101) as i64, i)).collect();
        let mut positions = Positions(vec![NIL; keys.len()]);
        let mut heap = Vec::new();
        for c in 0..200u32 {
            heap_push(&mut heap, &mut positions, Waiting { key: keys[c as usize], contact: c, picky: false });
        }
        for c in (0..200).step_by(3) {
            heap_remove(&mut heap, &mut positions, c);
        }
        let mut out = Vec::new();
        while let Some(&top) = heap.first() {
            out.push(top.key);
            heap_remove(&mut heap, &mut positions, top.contact);
        }
        let mut expected: Vec<ContactKey> =
            (0..200u32).filter(|c| c % 3 != 0).map(|c| keys[c as usize]).collect();
        expected.sort();
        assert_eq!(out, expected);
        assert!(positions.0.iter().all(|&p| p == NIL), "every contact left the heap");
    }

    #[test]
    fn lists_keep_key_order_and_buckets() {
        let key = GroupKey {
            tenant: 0,
            channel: Channel::Chat,
            language: None,
            scope: Scope::InHouse,
            personal: None,
            skills: [SkillLevel::default(); MAX_CONTACT_SKILLS],
            skill_count: 0,
        };
        let mut group = Group::new(key, crate::config::Strategy::LeastOccupied);
        let mut nodes: Vec<Node> = (0..4)
            .map(|a| Node {
                agent: a,
                prev: NIL,
                next: NIL,
                bucket: 0,
                linked: false,
                key: 0,
                proficiency: 0,
            })
            .collect();
        link(&mut nodes, &mut group, 0, 0, 10);
        link(&mut nodes, &mut group, 1, 0, 5);
        link(&mut nodes, &mut group, 2, 1, 1);
        link(&mut nodes, &mut group, 3, 0, 7);
        let walk = |nodes: &[Node], group: &Group, b: usize| {
            let mut out = vec![];
            let mut n = group.buckets[b].head;
            while n != NIL {
                out.push(n);
                n = nodes[n as usize].next;
            }
            out
        };
        assert_eq!(walk(&nodes, &group, 0), vec![1, 3, 0]);
        assert_eq!(group.nonempty, 0b11);
        unlink(&mut nodes, &mut group, 3);
        unlink(&mut nodes, &mut group, 2);
        assert_eq!(walk(&nodes, &group, 0), vec![1, 0]);
        assert_eq!(group.nonempty, 0b01);
    }
}
