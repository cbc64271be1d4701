//! Vuoro's routing engine: a deterministic skill-, priority- and capacity-based contact router.
//!
//! Feed it [`Input`]s stamped with the caller's clock through [`Engine::apply`]; it answers with
//! [`Output`]s (offers, requeues, relaxations, overflows, queue status, rejections...). It has
//! no I/O and no threads: the service, the simulator and the benches all wrap the same engine.
//! Its exact semantics are in this crate's README.

pub mod config;
mod engine;
pub mod event;
pub mod hours;
pub mod ids;
mod queue;
mod routing;
mod slab;
pub mod snapshot;
pub mod stats;
mod timers;

pub use config::{
    AgentConfig, Capacity, ChannelPolicy, OverflowPolicy, PoolConfig, PoolKind, PoolMode, RelaxAction,
    RelaxStep, Strategy, TenantPolicy,
};
pub use engine::{Engine, EngineConfig};
pub use event::{
    AgentState, ContactSpec, Input, NOT_READY_MISSED_OFFERS, Output, OverflowReason, Rejection,
    RequeueReason, RescindReason, SkillList, Target,
};
pub use ids::{
    AgentId, Channel, ContactId, LanguageId, Languages, Millis, PoolId, ProviderId, ReservationId, Segment,
    SkillId, SkillLevel, TenantId,
};
pub use snapshot::{SNAPSHOT_FORMAT, SnapshotError};
pub use stats::{AgentCounts, PoolStats, QueueStats, StatsReader, StatsSnapshot};
