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
use vuoro_engine::{ContactId, Engine, EngineConfig, Input, Millis, Output};
use vuoro_proto::v1;

use crate::convert::{self, ConvertError};
use crate::directory::Directory;

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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EpochGate {
    /// Newest epoch seen.
    pub epoch: u64,
    /// Last sequence admitted in that epoch.
    pub seq: u64,
}

impl EpochGate {
    /// Whether a record takes effect: `false` for a record of an older epoch, or a repeat.
    pub fn admit(&mut self, record: &v1::DecisionRecord) -> bool {
        let seq = record_seq(&record.record_id);
        let fresh = record.epoch > self.epoch || (record.epoch == self.epoch && seq > self.seq);
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
        }
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
        };
        self.forget_ended(out);
        record
    }

    /// The record that starts the next epoch, written by `owner`: once it is in the log,
    /// records of older epochs are void. It takes effect when read back ([`Domain::replay`]).
    pub fn epoch_start(&self, now: Millis, owner: &str) -> v1::DecisionRecord {
        let epoch = self.gate.epoch + 1;
        v1::DecisionRecord {
            epoch,
            position: None,
            at_unix_ms: now as i64,
            input: None,
            decisions: Vec::new(),
            record_id: record_id(self.partition, epoch, 0),
            owner: owner.to_owned(),
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
        let start = owner.epoch_start(0, "replica-a");
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
        let start = heir.epoch_start(6_000, "replica-b");
        assert_eq!((start.epoch, record_seq(&start.record_id)), (2, 0));
        heir.replay(&start, &mut out);
        assert_eq!(heir.gate, EpochGate { epoch: 2, seq: 0 });
        heir.replay(&log[3], &mut out);
        assert_eq!(heir.engine.contact_count(), 2, "the old owner's records are void now");
    }
}
