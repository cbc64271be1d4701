//! The router's rules for a contact (`check_contact` in the router service), mirrored here so
//! that every contact an adapter builds is accepted as it is.

/// Longest contact id, in characters.
pub const MAX_ID_CHARS: usize = 128;
/// Longest tenant name, in characters.
pub const MAX_TENANT_CHARS: usize = 64;
/// Longest skill name, in characters.
pub const MAX_SKILL_NAME_CHARS: usize = 64;
/// Highest skill level a requirement can ask for.
pub const MAX_LEVEL: u32 = 5;
/// Most required plus preferred skills on one contact.
pub const MAX_CONTACT_SKILLS: usize = 8;
/// Highest contact priority.
pub const MAX_PRIORITY: u32 = 255;
/// Most attributes on a contact.
pub const MAX_ATTRIBUTES: usize = 32;
/// Longest attribute key, in characters.
pub const MAX_ATTRIBUTE_KEY_CHARS: usize = 64;
/// Longest attribute value, in bytes.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 4096;
