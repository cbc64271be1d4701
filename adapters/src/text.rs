//! Small text helpers shared by the adapters: bounded copies that never split a character.

use std::collections::HashMap;

use crate::limits::MAX_ATTRIBUTE_VALUE_BYTES;

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary, and
/// whether anything was cut.
pub(crate) fn truncate(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

/// Sets an attribute, cutting the value to the router's 4096-byte limit (with a trailing "…"
/// when cut, so an agent sees that there is more). Empty values are left out.
pub(crate) fn set_attribute(attributes: &mut HashMap<String, String>, key: &str, value: &str) {
    if value.is_empty() {
        return;
    }
    const ELLIPSIS: &str = "…";
    let value = match truncate(value, MAX_ATTRIBUTE_VALUE_BYTES) {
        (whole, false) => whole.to_owned(),
        (_, true) => {
            let (head, _) = truncate(value, MAX_ATTRIBUTE_VALUE_BYTES - ELLIPSIS.len());
            format!("{head}{ELLIPSIS}")
        }
    };
    attributes.insert(key.to_owned(), value);
}

/// `s` with control characters (other than tab and newline) removed and surrounding whitespace
/// trimmed: what a display name or a one-line field should hold.
pub(crate) fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_owned()
}

/// Lowercase hexadecimal of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Decodes hexadecimal (either case); `None` on an odd length or a non-hex character.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes.chunks_exact(2).map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_never_splits_a_character() {
        assert_eq!(truncate("hyvää päivää", 5), ("hyvä", true));
        assert_eq!(truncate("hyvää päivää", 4), ("hyv", true));
        assert_eq!(truncate("abc", 3), ("abc", false));
    }

    #[test]
    fn long_attribute_values_are_cut_to_the_router_limit_with_a_marker() {
        let mut attributes = HashMap::new();
        set_attribute(&mut attributes, "text", &"ä".repeat(5000));
        let value = &attributes["text"];
        assert!(value.len() <= MAX_ATTRIBUTE_VALUE_BYTES);
        assert!(value.ends_with('…'));
        set_attribute(&mut attributes, "empty", "");
        assert!(!attributes.contains_key("empty"));
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(unhex("00ABff"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }
}
