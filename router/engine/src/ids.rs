//! Identifiers and small value types shared by every part of the engine's API.
//!
//! External ids are plain integers: the service maps its string ids to them once, at the
//! boundary, so that no decision hashes or allocates a string.

use std::fmt;

/// A point in time or a duration, in milliseconds. Instants count from the Unix epoch (UTC),
/// so opening hours can be evaluated in a pool's time zone; the caller's clock may be real or
/// virtual.
pub type Millis = u64;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A routing domain (a company). Tenants never see each other's contacts or agents.
    TenantId(u32)
);
id_type!(
    /// A pool of agents, in-house or run by an outsourcing provider.
    PoolId(u32)
);
id_type!(
    /// An agent, as known to the platform.
    AgentId(u64)
);
id_type!(
    /// A contact (one customer request), stable across retries so enqueueing is idempotent.
    ContactId(u64)
);
id_type!(
    /// A skill; the engine supports ids below [`MAX_SKILLS`].
    SkillId(u16)
);
id_type!(
    /// A language; the engine supports ids below [`MAX_LANGUAGES`].
    LanguageId(u8)
);
id_type!(
    /// An outsourcing provider.
    ProviderId(u32)
);
id_type!(
    /// One offer of one contact to one agent or pool. Accept, reject, complete and wrap-up-done
    /// all name the reservation, so a stale action can never touch a newer offer.
    ReservationId(u64)
);

/// Skill ids must be below this.
pub const MAX_SKILLS: u16 = 4096;
/// Language ids must be below this (agents' languages are a 64-bit set).
pub const MAX_LANGUAGES: u8 = 64;
/// Skill levels run from 1 (novice) to this (expert).
pub const MAX_LEVEL: u8 = 5;
/// At most this many required plus preferred skills per contact.
pub const MAX_CONTACT_SKILLS: usize = 8;

/// The channel a contact arrived through; each has its own capacity limits and policy.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// A phone call (Vuoro handles callbacks: the agent calls the customer).
    Voice = 0,
    /// Email.
    Email = 1,
    /// Social-media direct messages (Messenger, Instagram, WhatsApp).
    Social = 2,
    /// Web chat.
    Chat = 3,
}

impl Channel {
    /// Number of channels.
    pub const COUNT: usize = 4;
    /// Every channel, in index order.
    pub const ALL: [Channel; Channel::COUNT] =
        [Channel::Voice, Channel::Email, Channel::Social, Channel::Chat];

    /// Dense index, for per-channel arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Who the customer is to the company; the policy may lift priority per segment.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Segment {
    /// First contact.
    #[default]
    New = 0,
    /// Known customer.
    Regular = 1,
    /// High-value customer.
    Vip = 2,
}

impl Segment {
    /// Number of segments.
    pub const COUNT: usize = 3;
}

/// A skill with a level: an agent's proficiency, or a contact's minimum.
#[derive(
    serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default,
)]
pub struct SkillLevel {
    /// The skill.
    pub skill: SkillId,
    /// 1 to [`MAX_LEVEL`].
    pub level: u8,
}

impl SkillLevel {
    /// A skill at a level.
    pub fn new(skill: u16, level: u8) -> Self {
        SkillLevel { skill: SkillId(skill), level }
    }
}

/// A set of languages, as a bitset over [`LanguageId`].
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Languages(pub u64);

impl Languages {
    /// The set holding the given languages.
    pub fn of(ids: &[u8]) -> Self {
        Languages(ids.iter().fold(0, |m, &l| m | 1u64 << (l % 64)))
    }

    /// Whether the set holds `language`.
    pub fn contains(self, language: LanguageId) -> bool {
        language.0 < MAX_LANGUAGES && self.0 & (1 << language.0) != 0
    }
}
