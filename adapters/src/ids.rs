//! Stable contact ids from the channel's own ids, so a redelivered webhook, a retried SMTP
//! transaction or a resubmitted form yields the same contact id and the router can refuse the
//! duplicate.

use sha2::{Digest, Sha256};

use crate::limits::MAX_ID_CHARS;
use crate::text::hex;

/// `"{namespace}:{raw}"` when that fits the router's 128-character id limit and `raw` is
/// non-empty and free of whitespace and control characters; otherwise
/// `"{namespace}:sha256:{hex}"`, the SHA-256 of `raw`. Deterministic: the same `raw` always
/// gives the same id. `namespace` is a short ASCII word naming the channel (e.g. `email`,
/// `whatsapp`).
pub fn bounded_id(namespace: &str, raw: &str) -> String {
    let clean = !raw.is_empty() && !raw.chars().any(|c| c.is_whitespace() || c.is_control());
    if clean && namespace.len() + 1 + raw.chars().count() <= MAX_ID_CHARS {
        format!("{namespace}:{raw}")
    } else {
        hashed_id(namespace, raw.as_bytes())
    }
}

/// `"{namespace}:sha256:{hex}"`, the SHA-256 of `bytes`: an id for inputs that carry no id of
/// their own (an email without a Message-ID is named by its content).
pub fn hashed_id(namespace: &str, bytes: &[u8]) -> String {
    format!("{namespace}:sha256:{}", hex(&Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_are_kept_readable() {
        assert_eq!(bounded_id("whatsapp", "wamid.HBgL"), "whatsapp:wamid.HBgL");
    }

    #[test]
    fn long_ids_are_hashed_deterministically_within_the_limit() {
        let long = "x".repeat(300);
        let id = bounded_id("instagram", &long);
        assert!(id.chars().count() <= MAX_ID_CHARS, "{id}");
        assert!(id.starts_with("instagram:sha256:"));
        assert_eq!(id, bounded_id("instagram", &long));
        assert_ne!(id, bounded_id("instagram", &"x".repeat(301)));
    }

    #[test]
    fn ids_with_spaces_or_nothing_are_hashed() {
        assert!(bounded_id("email", "a b").starts_with("email:sha256:"));
        assert!(bounded_id("email", "").starts_with("email:sha256:"));
    }

    #[test]
    fn the_longest_id_that_fits_is_kept() {
        let raw = "y".repeat(MAX_ID_CHARS - "email:".len());
        assert_eq!(bounded_id("email", &raw), format!("email:{raw}"));
        assert!(bounded_id("email", &format!("{raw}y")).starts_with("email:sha256:"));
    }
}
