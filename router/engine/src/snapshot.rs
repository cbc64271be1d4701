//! Saving an engine's whole state and restoring it: what bounds the replay of a routing
//! domain's decision log after a restart or a change of owner.
//!
//! A snapshot holds everything the engine decides with — contacts in their queues with their
//! arrival order, agents with their idle and offer keys, reservations, timers, statistics —
//! so an engine restored from it answers every later input exactly as the saved one would.
//! The encoding is `postcard` behind a format version; a snapshot of another version is
//! refused, never half-read.

use crate::engine::Engine;

/// The snapshot format this build writes and reads. Bump it whenever the engine's state
/// changes shape.
pub const SNAPSHOT_FORMAT: u8 = 1;

/// Why a snapshot could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Written by a build with another state layout.
    #[error("snapshot format {found}, this build reads format {SNAPSHOT_FORMAT}")]
    Format {
        /// The format the snapshot names.
        found: u8,
    },
    /// Truncated or corrupt.
    #[error("snapshot cannot be decoded: {0}")]
    Decode(#[from] postcard::Error),
}

impl Engine {
    /// The engine's whole state, encoded. It allocates: call it between inputs, not on the
    /// decision path.
    pub fn save(&self) -> Vec<u8> {
        let mut bytes = vec![SNAPSHOT_FORMAT];
        // Every field is plain data, so encoding into a Vec cannot fail.
        bytes.extend(postcard::to_stdvec(self).expect("the engine's state encodes"));
        bytes
    }

    /// An engine in exactly the state [`Engine::save`] saw, its statistics published.
    pub fn restore(bytes: &[u8]) -> Result<Engine, SnapshotError> {
        let (&format, state) = bytes.split_first().ok_or(SnapshotError::Format { found: 0 })?;
        if format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::Format { found: format });
        }
        let mut engine: Engine = postcard::from_bytes(state)?;
        engine.scratch.reserve(engine.contacts.live().min(1 << 16));
        engine.publish_stats();
        Ok(engine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EngineConfig;

    #[test]
    fn a_snapshot_of_another_format_is_refused() {
        let mut bytes = Engine::new(EngineConfig::default()).save();
        bytes[0] = SNAPSHOT_FORMAT + 1;
        let error = Engine::restore(&bytes).err().expect("refused");
        assert!(error.to_string().contains("this build reads format"), "{error}");
        assert!(matches!(Engine::restore(&[]), Err(SnapshotError::Format { found: 0 })));
    }

    #[test]
    fn a_truncated_snapshot_is_refused() {
        let bytes = Engine::new(EngineConfig::default()).save();
        assert!(matches!(Engine::restore(&bytes[..bytes.len() / 2]), Err(SnapshotError::Decode(_))));
    }
}
