//! A routing domain's state — one Kafka partition's engine and what the wire needs beside it —
//! and the decision log that state is a fold over.
//!
//! Each record of a partition's decision log is one of:
//! - an **applied input**: `position` and `input` set; replaying it re-applies the input at the
//!   record's clock;
//! - a **skipped input** (sent to the dead-letter topic): `position` set, no `input`;
//! - a **tick** that fired timers: neither set, sequence > 0;
//! - an **epoch start**: neither set, sequence 0, written by a new owner before anything else.
//!
//! The engine is deterministic, so replaying the records in order rebuilds exactly the state
//! the owner had. A record of an older epoch than one already seen is void ([`EpochGate`]):
//! a zombie owner can never add to the log once the new owner's epoch has started.

use rustc_hash::FxHashMap;
use vuoro_engine::{
    ContactId, Engine, EngineConfig, Input, Millis, Output, Rejection, ReservationId, Target,
};
use vuoro_proto::v1;

use crate::convert::{self, ConvertError};
use crate::directory::Directory;

/// Why a snapshot could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The engine's part.
    #[error("engine state: {0}")]
    Engine(#[from] vuoro_engine::SnapshotError),
    /// The directory's part.
    #[error("directory: {0}")]
    Directory(#[from] postcard::Error),
}

/// The id of a record: partition, epoch and sequence within the epoch (deterministic, so
/// every reader can dedupe).
pub fn record_id(partition: i32, epoch: u64, seq: u64) -> String {
    format!("{partition}-{epoch}-{seq}")
}

/// The sequence number in a record id.
pub fn record_seq(record_id: &str) -> u64 {
    record_id.rsplit('-').next().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The rule that voids stale records: per partition, the newest epoch seen and the last
/// sequence of it. Every reader of a decision log applies the same rule.
///
/// An epoch starts with its sequence 0 and goes on without a gap. A record of an older epoch,
/// a repeat, or a record after a gap is void, and so is the rest of its epoch: if a record of
/// an owner was lost on its way into the log, the owner notices the failed delivery and starts
/// a new epoch from what the log does hold, so nobody acts on what follows the gap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EpochGate {
    /// Newest epoch seen.
    pub epoch: u64,
    /// Last sequence admitted in that epoch.
    pub seq: u64,
}

impl EpochGate {
    /// Whether a record takes effect: `false` for a record of an older epoch, a repeat or a
    /// record after a gap.
    pub fn admit(&mut self, record: &v1::DecisionRecord) -> bool {
        let seq = record_seq(&record.record_id);
        let fresh =
            (record.epoch > self.epoch && seq == 0) || (record.epoch == self.epoch && seq == self.seq + 1);
        if fresh {
            *self = EpochGate { epoch: record.epoch, seq };
        }
        fresh
    }
}

/// One routing domain (partition) owned by this replica.
pub struct Domain {
    /// The partition.
    pub partition: i32,
    /// Its engine.
    pub engine: Engine,
    /// Names ↔ the engine's ids.
    pub directory: Directory,
    /// Contacts' full payloads (attributes, customer), for their offers.
    pub payloads: FxHashMap<ContactId, v1::Contact>,
    /// Which records of the log take effect; its epoch is the owner's.
    pub gate: EpochGate,
    /// Per input topic, the offset of the next input to apply.
    pub next_offset: FxHashMap<String, i64>,
    /// This replica's id, written into its records.
    pub owner: String,
    /// When the next snapshot is due.
    pub pace: SnapshotPace,
}

/// When a domain's next snapshot is due: after a number of records, and not before the log
/// has grown by the last snapshot's size, so snapshots never take more room or time than the
/// replay they save.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotPace {
    /// Decision-log records written since the last snapshot.
    pub records: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Size of the last snapshot.
    pub last_size: u64,
    /// The slot the next snapshot goes to (owners alternate between two).
    pub slot: u8,
}

impl SnapshotPace {
    /// Counts a record appended to the log.
    pub fn appended(&mut self, bytes: usize) {
        self.records += 1;
        self.bytes += bytes as u64;
    }

    /// Whether a snapshot is due, given the configured record interval.
    pub fn due(&self, interval: u64) -> bool {
        self.records >= interval && self.bytes >= self.last_size
    }

    /// Starts counting again after a snapshot of `size` bytes went to the current slot.
    pub fn taken(&mut self, size: usize) {
        *self = SnapshotPace { records: 0, bytes: 0, last_size: size as u64, slot: 1 - self.slot.min(1) };
    }
}

impl Domain {
    /// An empty domain owned by `owner`.
    pub fn new(partition: i32, status_interval: Millis, owner: &str) -> Domain {
        Domain {
            partition,
            engine: Engine::new(EngineConfig { status_interval, ..EngineConfig::default() }),
            directory: Directory::new(),
            payloads: FxHashMap::default(),
            gate: EpochGate::default(),
            next_offset: FxHashMap::default(),
            owner: owner.to_owned(),
            pace: SnapshotPace::default(),
        }
    }

    /// The domain's whole state after its last record, for the snapshots topic; the caller
    /// fills in `decisions_offset` once the record has been read back from the log.
    pub fn snapshot(&self, now: Millis) -> v1::DomainSnapshot {
        v1::DomainSnapshot {
            partition: self.partition,
            epoch: self.gate.epoch,
            seq: self.gate.seq,
            decisions_offset: -1,
            engine: self.engine.save(),
            directory: postcard::to_stdvec(&self.directory).expect("the directory encodes"),
            payloads: self.payloads.iter().map(|(id, contact)| (id.0, contact.clone())).collect(),
            next_offset: self.next_offset.iter().map(|(topic, &offset)| (topic.clone(), offset)).collect(),
            taken_unix_ms: now as i64,
        }
    }

    /// The domain as a snapshot (found in `slot`) left it, owned by `owner`: its log goes on
    /// after `snapshot.decisions_offset`. Its next snapshot goes to the other slot.
    pub fn from_snapshot(
        snapshot: &v1::DomainSnapshot,
        slot: u8,
        owner: &str,
    ) -> Result<Domain, SnapshotError> {
        Ok(Domain {
            partition: snapshot.partition,
            engine: Engine::restore(&snapshot.engine)?,
            directory: postcard::from_bytes(&snapshot.directory)?,
            payloads: snapshot
                .payloads
                .iter()
                .map(|(&id, contact)| (ContactId(id), contact.clone()))
                .collect(),
            gate: EpochGate { epoch: snapshot.epoch, seq: snapshot.seq },
            next_offset: snapshot
                .next_offset
                .iter()
                .map(|(topic, &offset)| (topic.clone(), offset))
                .collect(),
            owner: owner.to_owned(),
            pace: SnapshotPace { slot: 1 - slot.min(1), ..SnapshotPace::default() },
        })
    }

    /// Applies an input at `now`. Inputs that are not for the engine (ratings) change nothing;
    /// an error means the input must go to the dead-letter topic.
    pub fn apply_input(
        &mut self,
        now: Millis,
        input: &v1::RouterInput,
        out: &mut Vec<Output>,
    ) -> Result<(), ConvertError> {
        match convert::input(&mut self.directory, input) {
            Ok(engine_input) => {
                if let Some(reservation) = self.someone_elses(input, &engine_input) {
                    // To the actor, a reservation of somebody else's does not exist.
                    out.push(Output::Rejected(Rejection::UnknownReservation(reservation)));
                    return Ok(());
                }
                self.engine.apply(now, &engine_input, out);
                if let (Input::Enqueue(spec), Some(v1::router_input::Input::Submit(contact))) =
                    (&engine_input, &input.input)
                    && !out.iter().any(|o| matches!(o, Output::Rejected(_)))
                {
                    self.payloads.insert(spec.id, contact.clone());
                }
                Ok(())
            }
            Err(ConvertError::NotForEngine) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// The reservation an agent's (or a provider's) action names, when it is held by somebody
    /// else: an agent answers only its own offers.
    fn someone_elses(&self, input: &v1::RouterInput, engine_input: &Input) -> Option<ReservationId> {
        let Some(v1::router_input::Input::Agent(action)) = &input.input else { return None };
        let (Input::Accept(r) | Input::Reject(r) | Input::Complete(r) | Input::WrapUpDone(r)) = *engine_input
        else {
            return None;
        };
        let actor = match self.directory.find_agent(&action.agent) {
            Some(agent) => Target::Agent(agent),
            None => Target::Pool(self.directory.find_pool(&action.agent)?),
        };
        self.engine.reservation_target(r).filter(|&holder| holder != actor).map(|_| r)
    }

    /// The record of what was just applied (an input, a skipped input or a tick), with every
    /// decision in wire form; then forgets the contacts that ended.
    pub fn record(
        &mut self,
        position: Option<v1::InputPosition>,
        input: Option<v1::RouterInput>,
        now: Millis,
        out: &[Output],
    ) -> v1::DecisionRecord {
        let decisions = out
            .iter()
            .map(|o| {
                let payload = match o {
                    Output::Offered { contact, .. } => self.payloads.get(contact),
                    _ => None,
                };
                convert::decision(&self.directory, o, payload)
            })
            .collect();
        if let Some(p) = &position {
            self.next_offset.insert(p.topic.clone(), p.offset + 1);
        }
        self.gate.seq += 1;
        let record = v1::DecisionRecord {
            epoch: self.gate.epoch,
            position,
            at_unix_ms: now as i64,
            input,
            decisions,
            record_id: record_id(self.partition, self.gate.epoch, self.gate.seq),
            owner: self.owner.clone(),
            owner_address: String::new(),
        };
        self.forget_ended(out);
        record
    }

    /// The record that starts the next epoch, written by `owner` (reachable at `address`): once it is in the log,
    /// records of older epochs are void. It takes effect when read back ([`Domain::replay`]).
    pub fn epoch_start(&self, now: Millis, owner: &str, address: &str) -> v1::DecisionRecord {
        let epoch = self.gate.epoch + 1;
        v1::DecisionRecord {
            epoch,
            position: None,
            at_unix_ms: now as i64,
            input: None,
            decisions: Vec::new(),
            record_id: record_id(self.partition, epoch, 0),
            owner: owner.to_owned(),
            owner_address: address.to_owned(),
        }
    }

    /// Folds a record of the log into the state, if the epoch rule admits it.
    pub fn replay(&mut self, record: &v1::DecisionRecord, out: &mut Vec<Output>) {
        if !self.gate.admit(record) {
            return;
        }
        out.clear();
        let at = record.at_unix_ms.max(0) as Millis;
        match (&record.position, &record.input) {
            (Some(position), input) => {
                if let Some(input) = input {
                    // It was applied once, so it converts again.
                    let _ = self.apply_input(at, input, out);
                }
                self.next_offset.insert(position.topic.clone(), position.offset + 1);
            }
            (None, _) if record_seq(&record.record_id) > 0 => self.engine.apply(at, &Input::Tick, out),
            (None, _) => {}
        }
        self.forget_ended(out);
    }

    fn forget_ended(&mut self, out: &[Output]) {
        for o in out {
            if let Output::Completed { contact, .. } | Output::Abandoned { contact, .. } = o {
                self.payloads.remove(contact);
                self.directory.forget_contact(*contact);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: u64, seq: u64) -> v1::DecisionRecord {
        v1::DecisionRecord { epoch, record_id: record_id(3, epoch, seq), ..Default::default() }
    }

    #[test]
    fn the_gate_voids_older_epochs_and_repeats() {
        let mut gate = EpochGate::default();
        assert!(gate.admit(&record(1, 0)), "the first owner's epoch start");
        assert!(gate.admit(&record(1, 1)));
        assert!(gate.admit(&record(1, 2)));
        assert!(!gate.admit(&record(1, 2)), "a repeat");
        assert!(gate.admit(&record(2, 0)), "a new owner's epoch start");
        assert!(!gate.admit(&record(1, 3)), "the zombie's record after the new epoch is void");
        assert!(gate.admit(&record(2, 1)));
        assert!(!gate.admit(&record(2, 0)), "an epoch starts once");
        assert!(!gate.admit(&record(2, 3)), "a record after a gap (2-2 was lost)");
        assert!(!gate.admit(&record(3, 1)), "an epoch whose start was lost");
        assert!(gate.admit(&record(3, 0)), "the owner's next epoch");
    }

    fn submit(id: &str) -> v1::RouterInput {
        v1::RouterInput {
            received_unix_ms: 0,
            input: Some(v1::router_input::Input::Submit(v1::Contact {
                id: id.into(),
                tenant: "acme".into(),
                channel: v1::Channel::Chat as i32,
                ..Default::default()
            })),
        }
    }

    #[test]
    fn replaying_the_log_rebuilds_the_owners_state() {
        let policy = v1::RouterInput {
            received_unix_ms: 0,
            input: Some(v1::router_input::Input::UpsertPolicy(v1::Policy {
                tenant: "acme".into(),
                ..Default::default()
            })),
        };
        let mut owner = Domain::new(3, 1_000, "replica-a");
        let start = owner.epoch_start(0, "replica-a", "a:50051");
        let mut out = Vec::new();
        owner.replay(&start, &mut out);
        let mut log = vec![start];
        for (i, input) in [policy, submit("a"), submit("b")].into_iter().enumerate() {
            out.clear();
            let now = 10 + i as Millis;
            owner.apply_input(now, &input, &mut out).unwrap();
            let position = v1::InputPosition { topic: "t".into(), partition: 3, offset: i as i64 };
            log.push(owner.record(Some(position), Some(input), now, &out));
        }
        out.clear();
        owner.engine.apply(5_000, &Input::Tick, &mut out);
        log.push(owner.record(None, None, 5_000, &out));
        // A zombie's record after a newer epoch started is void.
        let mut zombie = log[2].clone();
        zombie.record_id = record_id(3, 0, 9);
        zombie.epoch = 0;
        log.push(zombie);

        let mut heir = Domain::new(3, 1_000, "replica-b");
        for record in &log {
            heir.replay(record, &mut out);
        }
        assert_eq!(heir.engine.contact_count(), 2);
        assert_eq!(heir.engine.stats(), owner.engine.stats());
        assert_eq!(heir.next_offset.get("t"), Some(&3));
        assert_eq!(heir.gate, owner.gate);
        let start = heir.epoch_start(6_000, "replica-b", "b:50051");
        assert_eq!((start.epoch, record_seq(&start.record_id)), (2, 0));
        heir.replay(&start, &mut out);
        assert_eq!(heir.gate, EpochGate { epoch: 2, seq: 0 });
        heir.replay(&log[3], &mut out);
        assert_eq!(heir.engine.contact_count(), 2, "the old owner's records are void now");
    }
}
