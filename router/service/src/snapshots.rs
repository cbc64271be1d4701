//! Routing-domain snapshots on the compacted snapshots topic: cut into chunks that fit a Kafka
//! record, and found again by reading the topic's partition backwards from its end.
//!
//! Chunks are keyed `<partition>/<slot>/<index>`; an owner alternates between two slots, so
//! compaction (which keeps the newest record of each key) never mixes a half-written snapshot
//! into the last complete one: whatever happens mid-write, one slot still holds a complete
//! snapshot.

use std::time::Duration;

use anyhow::Context;
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use rustc_hash::FxHashMap;
use vuoro_proto::v1;

use crate::domain::record_seq;

/// Bytes of snapshot per chunk: well inside Kafka's default 1 MB record limit.
pub const CHUNK_BYTES: usize = 512 * 1024;

/// A snapshot cut into keyed chunks, in the order to produce them.
pub fn chunks(snapshot: &v1::DomainSnapshot, slot: u8) -> Vec<(String, v1::SnapshotChunk)> {
    let bytes = snapshot.encode_to_vec();
    let snapshot_id = crate::domain::record_id(snapshot.partition, snapshot.epoch, snapshot.seq);
    let pieces: Vec<&[u8]> =
        if bytes.is_empty() { vec![&[][..]] } else { bytes.chunks(CHUNK_BYTES).collect() };
    let count = pieces.len() as u32;
    pieces
        .into_iter()
        .enumerate()
        .map(|(index, data)| {
            let key = format!("{}/{slot}/{index}", snapshot.partition);
            let chunk = v1::SnapshotChunk {
                snapshot_id: snapshot_id.clone(),
                index: index as u32,
                count,
                data: data.to_vec(),
            };
            (key, chunk)
        })
        .collect()
}

/// The slot a chunk key names.
pub fn slot_of(key: &str) -> Option<u8> {
    key.split('/').nth(1)?.parse().ok()
}

/// Chunks seen of one snapshot.
#[derive(Default)]
struct Pieces {
    slot: u8,
    count: u32,
    data: Vec<Option<Vec<u8>>>,
}

impl Pieces {
    fn complete(&self) -> bool {
        self.count > 0 && self.data.len() == self.count as usize && self.data.iter().all(Option::is_some)
    }
}

/// The newest complete snapshot of `partition`, and the slot it is in; `None` when the
/// partition has none. Reads backwards from the end in growing windows, so it reads about one
/// snapshot's worth of records however long the (uncompacted) topic is.
pub fn latest(
    config: &ClientConfig,
    topic: &str,
    partition: i32,
) -> anyhow::Result<Option<(v1::DomainSnapshot, u8)>> {
    let reader: BaseConsumer = config
        .clone()
        .set("group.id", format!("{topic}.reader"))
        .set("enable.auto.commit", "false")
        .create()
        .context("creating the snapshot reader")?;
    let (low, high) = reader.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
    let mut window = 8_i64;
    loop {
        let start = (high - window).max(low);
        let mut seen: FxHashMap<String, Pieces> = FxHashMap::default();
        if start < high {
            let mut assignment = TopicPartitionList::new();
            assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
            reader.assign(&assignment)?;
            let mut next = start;
            while next < high {
                let message = reader
                    .poll(Timeout::After(Duration::from_secs(10)))
                    .with_context(|| format!("the snapshots partition stopped at offset {next}"))??;
                next = message.offset() + 1;
                let chunk = v1::SnapshotChunk::decode(message.payload().unwrap_or_default())
                    .with_context(|| format!("snapshot chunk at offset {}", message.offset()))?;
                let slot =
                    message.key().and_then(|k| std::str::from_utf8(k).ok()).and_then(slot_of).unwrap_or(0);
                let pieces = seen.entry(chunk.snapshot_id.clone()).or_default();
                if pieces.count != chunk.count {
                    *pieces = Pieces { slot, count: chunk.count, data: vec![None; chunk.count as usize] };
                }
                if let Some(place) = pieces.data.get_mut(chunk.index as usize) {
                    *place = Some(chunk.data);
                }
            }
        }
        let newest = seen
            .iter()
            .filter(|(_, pieces)| pieces.complete())
            .max_by_key(|(id, _)| (epoch_of(id), record_seq(id)));
        if let Some((id, pieces)) = newest {
            let bytes: Vec<u8> = pieces.data.iter().flatten().flatten().copied().collect();
            let snapshot = v1::DomainSnapshot::decode(bytes.as_slice())
                .with_context(|| format!("snapshot {id} of partition {partition}"))?;
            return Ok(Some((snapshot, pieces.slot)));
        }
        if start <= low {
            return Ok(None);
        }
        window = window.saturating_mul(4);
    }
}

/// The epoch in a record id (`partition-epoch-sequence`).
fn epoch_of(record_id: &str) -> u64 {
    record_id.rsplit('-').nth(1).and_then(|e| e.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_snapshot_is_cut_into_chunks_that_put_it_back_together() {
        let snapshot = v1::DomainSnapshot {
            partition: 3,
            epoch: 7,
            seq: 42,
            engine: (0..CHUNK_BYTES * 2 + 10).map(|i| i as u8).collect(),
            ..Default::default()
        };
        let chunks = chunks(&snapshot, 1);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[2].0, "3/1/2");
        assert!(chunks.iter().all(|(_, c)| c.snapshot_id == "3-7-42" && c.count == 3));
        let bytes: Vec<u8> = chunks.iter().flat_map(|(_, c)| c.data.clone()).collect();
        assert_eq!(v1::DomainSnapshot::decode(bytes.as_slice()).unwrap(), snapshot);
        assert_eq!(slot_of(&chunks[0].0), Some(1));
        assert_eq!((epoch_of("3-7-42"), record_seq("3-7-42")), (7, 42));
    }
}
