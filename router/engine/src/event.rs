//! What goes into the engine ([`Input`]) and what comes out ([`Output`]).

use crate::config::{AgentConfig, Capacity, PoolConfig, RelaxAction, TenantPolicy};
use crate::ids::{
    AgentId, Channel, ContactId, LanguageId, MAX_CONTACT_SKILLS, Millis, PoolId, ReservationId, Segment,
    SkillLevel, TenantId,
};

/// Up to [`MAX_CONTACT_SKILLS`] skills with levels, stored inline so a contact never allocates.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SkillList {
    items: [SkillLevel; MAX_CONTACT_SKILLS],
    len: u8,
}

impl SkillList {
    /// The empty list.
    pub const EMPTY: SkillList = SkillList {
        items: [SkillLevel { skill: crate::ids::SkillId(0), level: 0 }; MAX_CONTACT_SKILLS],
        len: 0,
    };

    /// A list of the given skills, or `None` when there are more than [`MAX_CONTACT_SKILLS`].
    pub fn from_slice(skills: &[SkillLevel]) -> Option<Self> {
        let mut list = SkillList::EMPTY;
        for &s in skills {
            list.push(s)?;
        }
        Some(list)
    }

    /// Appends a skill; `None` when full.
    pub fn push(&mut self, skill: SkillLevel) -> Option<()> {
        let slot = self.items.get_mut(usize::from(self.len))?;
        *slot = skill;
        self.len += 1;
        Some(())
    }

    /// The skills.
    pub fn as_slice(&self) -> &[SkillLevel] {
        &self.items[..usize::from(self.len)]
    }

    /// Number of skills.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A contact to route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ContactSpec {
    /// Stable id; enqueueing an id the engine already holds is refused.
    pub id: ContactId,
    /// Routing domain.
    pub tenant: TenantId,
    /// Channel it arrived through.
    pub channel: Channel,
    /// Higher is more urgent (0–255); the segment boost is added.
    pub priority: u8,
    /// Customer segment.
    pub segment: Segment,
    /// Skills an agent must have, with minimum levels.
    pub required: SkillList,
    /// Skills wanted while the policy's `DropPreferredSkills` step has not fired.
    pub preferred: SkillList,
    /// Language the customer speaks; `None` is any.
    pub language: Option<LanguageId>,
    /// The agent who handled this conversation before, and how long to wait for them only.
    pub preferred_agent: Option<(AgentId, Millis)>,
    /// Not routable before this instant (a promised callback). The contact keeps the place in
    /// line its arrival gave it.
    pub not_before: Option<Millis>,
}

impl ContactSpec {
    /// A contact with no skills, language or preferences.
    pub fn new(id: ContactId, tenant: TenantId, channel: Channel) -> Self {
        ContactSpec {
            id,
            tenant,
            channel,
            priority: 0,
            segment: Segment::New,
            required: SkillList::EMPTY,
            preferred: SkillList::EMPTY,
            language: None,
            preferred_agent: None,
            not_before: None,
        }
    }
}

/// One event fed to the engine, together with the current time.
///
/// Inputs are passed by reference, so the size of the rare configuration variants does not
/// weigh on the hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Creates or replaces a tenant's policy.
    UpsertPolicy(TenantPolicy),
    /// Removes a tenant's policy; refused while it has pools.
    RemovePolicy(TenantId),
    /// Creates or replaces a pool.
    UpsertPool(PoolConfig),
    /// Removes a pool; refused while it has agents or work.
    RemovePool(PoolId),
    /// A capacity-level pool's provider declares how much it can take now.
    PoolCapacity(PoolId, Capacity),
    /// Creates or replaces an agent's profile; the agent keeps its state and work.
    UpsertAgent(AgentConfig),
    /// Removes an agent; refused while it has accepted work.
    RemoveAgent(AgentId),
    /// The agent logs in, not ready.
    LogIn(AgentId),
    /// The agent is ready for offers.
    Ready(AgentId),
    /// The agent takes no new offers, for a reason code of the platform's.
    NotReady(AgentId, u16),
    /// The agent logs out; pending offers are rescinded. Refused while it has accepted work.
    LogOut(AgentId),
    /// Changes an agent's capacity (it keeps its current work).
    SetCapacity(AgentId, Capacity),
    /// A new contact.
    Enqueue(ContactSpec),
    /// The customer gave up (or the platform withdrew the contact).
    Cancel(ContactId),
    /// The agent or provider accepts an offer.
    Accept(ReservationId),
    /// The agent or provider declines an offer; the contact goes back to its place in line.
    Reject(ReservationId),
    /// The work on an accepted contact is done; wrap-up starts.
    Complete(ReservationId),
    /// The agent finished wrap-up early.
    WrapUpDone(ReservationId),
    /// Only the passage of time: fires due timers.
    Tick,
}

/// Where an offer goes.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// An agent of an agent-level pool.
    Agent(AgentId),
    /// A capacity-level pool (its provider assigns the agent).
    Pool(PoolId),
}

/// An agent's state as the platform sees it.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AgentState {
    /// Logged out.
    Offline,
    /// Logged in and taking offers, with nothing in hand.
    Ready,
    /// Logged in, taking no offers, for a reason code.
    NotReady(u16),
    /// Holding at least one offered or accepted contact.
    Busy,
    /// Only wrap-up in hand.
    WrapUp,
}

/// Reason code set by the engine when an agent misses too many offers in a row.
pub const NOT_READY_MISSED_OFFERS: u16 = u16::MAX;

/// Why a contact went back to the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequeueReason {
    /// The agent declined.
    Rejected,
    /// The offer timed out.
    Expired,
    /// The agent logged out or was removed while the offer was pending.
    AgentLeft,
    /// The capacity-level pool lowered its capacity below what it held on offer.
    PoolShrank,
}

/// Why a contact was widened to outsourced pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OverflowReason {
    /// It waited longer than the policy allows in-house.
    WaitedTooLong,
    /// Its estimated wait exceeded the policy's limit on arrival.
    EstimatedWait,
    /// In-house occupancy exceeded the policy's limit on arrival.
    Occupancy,
    /// Every in-house pool was closed.
    InHouseClosed,
    /// The policy's percentage split sent it outsourced on arrival.
    Split,
    /// A relaxation step allowed outsourced pools.
    Relaxation,
}

/// Why an offer was withdrawn before an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RescindReason {
    /// The customer abandoned.
    Abandoned,
    /// The agent logged out or was removed.
    AgentLeft,
    /// The pool lowered its capacity.
    PoolShrank,
}

/// Why the engine refused an input. Small and allocation-free.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Rejection {
    /// No policy for the tenant.
    #[error("unknown tenant {0}")]
    UnknownTenant(TenantId),
    /// No such pool.
    #[error("unknown pool {0}")]
    UnknownPool(PoolId),
    /// No such agent.
    #[error("unknown agent {0}")]
    UnknownAgent(AgentId),
    /// No such contact.
    #[error("unknown contact {0}")]
    UnknownContact(ContactId),
    /// The contact id is already held.
    #[error("duplicate contact id {0}")]
    DuplicateContact(ContactId),
    /// No such reservation: never made, or already over (expired, rescinded, completed).
    #[error("no live reservation {0}")]
    UnknownReservation(ReservationId),
    /// Accept or reject of an offer already accepted, complete of one not accepted, wrap-up
    /// done of one not in wrap-up.
    #[error("reservation {0} is not in a state that allows this")]
    WrongReservationState(ReservationId),
    /// The agent is not logged in.
    #[error("agent {0} is offline")]
    AgentOffline(AgentId),
    /// Log-out or removal of an agent with accepted work.
    #[error("agent {0} has work in hand")]
    AgentHasWork(AgentId),
    /// The contact is being served and can no longer be cancelled.
    #[error("contact {0} is already in service")]
    ContactInService(ContactId),
    /// Removing a pool that has agents or work, or a policy with pools.
    #[error("still in use")]
    InUse,
    /// A skill id, level or language outside the supported range, or a skill listed twice.
    #[error("invalid skill, level or language")]
    InvalidSkill,
    /// An agent's capacity with no units. (A capacity-level pool may declare none: its
    /// provider has nobody free.)
    #[error("invalid capacity")]
    InvalidCapacity,
    /// A pool used in a way its mode does not allow (an agent in a capacity-level pool, a
    /// declared capacity for an agent-level pool), or a change of a pool's tenant, of its mode,
    /// or of its kind while it holds work.
    #[error("invalid pool for this use")]
    InvalidPool,
}

/// A decision or notification from the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// A contact is reserved for an agent or pool until `deadline`.
    Offered {
        /// The reservation to accept or reject.
        reservation: ReservationId,
        /// The contact.
        contact: ContactId,
        /// Who gets it.
        target: Target,
        /// The pool it is routed to.
        pool: PoolId,
        /// Accept before this instant.
        deadline: Millis,
    },
    /// An offer was withdrawn.
    OfferRescinded {
        /// The reservation.
        reservation: ReservationId,
        /// The contact.
        contact: ContactId,
        /// Who had it.
        target: Target,
        /// Why.
        reason: RescindReason,
    },
    /// The offer was accepted; the customer is connected.
    Accepted {
        /// The reservation.
        reservation: ReservationId,
        /// The contact.
        contact: ContactId,
        /// Who serves it.
        target: Target,
        /// How long the customer waited for an answer.
        waited: Millis,
    },
    /// A contact is back in line, with its original place.
    Requeued {
        /// The contact.
        contact: ContactId,
        /// Why.
        reason: RequeueReason,
    },
    /// A contact was not routable yet and will be at `at`.
    Scheduled {
        /// The contact.
        contact: ContactId,
        /// When it becomes routable.
        at: Millis,
    },
    /// A relaxation step widened a contact's eligibility.
    Relaxed {
        /// The contact.
        contact: ContactId,
        /// What widened; `None` means the preferred-agent wait ended.
        action: Option<RelaxAction>,
    },
    /// A contact may now go to outsourced pools.
    Overflowed {
        /// The contact.
        contact: ContactId,
        /// Why.
        reason: OverflowReason,
    },
    /// Where a waiting contact stands, sent when it changes materially.
    QueueStatus {
        /// The contact.
        contact: ContactId,
        /// 1 = next in line among contacts for the same agents.
        position: u32,
        /// Estimated wait from now; `None` when no agent can serve it now.
        estimated_wait: Option<Millis>,
    },
    /// The customer abandoned.
    Abandoned {
        /// The contact.
        contact: ContactId,
        /// How long they had waited.
        waited: Millis,
    },
    /// The work is done (wrap-up may follow).
    Completed {
        /// The reservation.
        reservation: ReservationId,
        /// The contact.
        contact: ContactId,
        /// Who served it.
        target: Target,
    },
    /// An agent's state changed.
    AgentStateChanged {
        /// The agent.
        agent: AgentId,
        /// Its new state.
        state: AgentState,
    },
    /// The input was refused.
    Rejected(Rejection),
}
