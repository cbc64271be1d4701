//! Web chat configuration: the limits of a conversation, whether the "contact us" form is
//! taken, and per tenant the web origins allowed to open a chat and where contacts are routed.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::route::{ConfigError, Route, SkillConfig};

/// Largest WebSocket frame (and form body) accepted by default: 16 KiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024;
/// Longest customer text by default, in characters (the router's limit for a message).
pub const DEFAULT_MAX_TEXT_CHARS: usize = 4096;
/// Most messages a connection may send per minute by default.
pub const DEFAULT_MESSAGES_PER_MINUTE: u32 = 30;

/// The chat adapter's configuration, as written in the config file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    /// Largest WebSocket frame, and largest form body, in bytes; 16 KiB when left out.
    #[serde(default = "default_max_frame")]
    pub max_frame_bytes: usize,
    /// Longest text a customer may send in one message, in characters, 1–4096; 4096 when left
    /// out.
    #[serde(default = "default_max_text")]
    pub max_text_chars: usize,
    /// Most frames one connection may send per minute; 30 when left out.
    #[serde(default = "default_per_minute")]
    pub messages_per_minute: u32,
    /// Whether `POST /contact-us` (the form mode) is served; `true` when left out.
    #[serde(default = "yes")]
    pub form: bool,
    /// Each tenant that takes chats and forms, by tenant name. Any other tenant is refused.
    pub tenants: BTreeMap<String, ChatTenantConfig>,
}

fn default_max_frame() -> usize {
    DEFAULT_MAX_FRAME_BYTES
}

fn default_max_text() -> usize {
    DEFAULT_MAX_TEXT_CHARS
}

fn default_per_minute() -> u32 {
    DEFAULT_MESSAGES_PER_MINUTE
}

fn yes() -> bool {
    true
}

/// One tenant's chat rules, as written in the config file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChatTenantConfig {
    /// Web origins (`https://www.acme.example`, scheme and host and optional port, no path)
    /// whose pages may open this tenant's chat. The widget's own page on the listener is
    /// always allowed, and clients that send no `Origin` (not browsers) are too.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Queue label shown to agents.
    #[serde(default)]
    pub queue: String,
    /// Contact priority, 0–255.
    #[serde(default)]
    pub priority: u32,
    /// Skills every agent offered a chat must have.
    #[serde(default)]
    pub required_skills: Vec<SkillConfig>,
    /// Skills wanted first.
    #[serde(default)]
    pub preferred_skills: Vec<SkillConfig>,
}

/// Validated chat settings, built from [`ChatConfig`] with `TryFrom`.
#[derive(Clone, Debug)]
pub struct ChatSettings {
    /// Largest frame or form body, in bytes.
    pub max_frame_bytes: usize,
    /// Longest customer text, in characters.
    pub max_text_chars: usize,
    /// Most frames per connection per minute.
    pub messages_per_minute: u32,
    /// Whether the form is taken.
    pub form: bool,
    /// Each tenant's rules, by name.
    pub tenants: HashMap<String, TenantChatSettings>,
}

/// One tenant's validated chat rules.
#[derive(Clone, Debug)]
pub struct TenantChatSettings {
    /// Where the tenant's chats and forms are routed.
    pub route: Route,
    /// Allowed origins, lowercase, without a trailing slash.
    pub allowed_origins: Vec<String>,
}

impl TenantChatSettings {
    /// Whether a page of `origin` (an `Origin` header's value) may open this tenant's chat.
    pub fn allows(&self, origin: &str) -> bool {
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        self.allowed_origins.contains(&origin)
    }
}

impl TryFrom<ChatConfig> for ChatSettings {
    type Error = ConfigError;

    /// Checks the limits, every tenant's route and origins, and reports every problem at once.
    fn try_from(config: ChatConfig) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        if !(256..=1024 * 1024).contains(&config.max_frame_bytes) {
            problems.push(format!("max_frame_bytes: {}, must be 256–1048576", config.max_frame_bytes));
        }
        if !(1..=DEFAULT_MAX_TEXT_CHARS).contains(&config.max_text_chars) {
            problems.push(format!(
                "max_text_chars: {}, must be 1–{DEFAULT_MAX_TEXT_CHARS}",
                config.max_text_chars
            ));
        }
        if config.messages_per_minute == 0 {
            problems.push("messages_per_minute: must be above 0".to_owned());
        }
        if config.tenants.is_empty() {
            problems.push("tenants: none configured".to_owned());
        }
        let mut tenants = HashMap::new();
        for (name, t) in &config.tenants {
            let path = format!("tenants.{name}");
            let route = Route::build(
                &path,
                name,
                &t.queue,
                t.priority,
                &t.required_skills,
                &t.preferred_skills,
                &mut problems,
            );
            let mut allowed_origins = Vec::new();
            for (i, origin) in t.allowed_origins.iter().enumerate() {
                match canonical_origin(origin) {
                    Some(o) => allowed_origins.push(o),
                    None => problems.push(format!(
                        "{path}.allowed_origins[{i}]: {origin:?} is not an origin (http:// or https://, a \
                         host and an optional port, no path)"
                    )),
                }
            }
            tenants.insert(name.clone(), TenantChatSettings { route, allowed_origins });
        }
        ConfigError::check(
            problems,
            ChatSettings {
                max_frame_bytes: config.max_frame_bytes,
                max_text_chars: config.max_text_chars,
                messages_per_minute: config.messages_per_minute,
                form: config.form,
                tenants,
            },
        )
    }
}

/// `origin` lowercased without a trailing slash, when it is `http(s)://host[:port]`.
fn canonical_origin(origin: &str) -> Option<String> {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"))?;
    let plausible = !rest.is_empty()
        && rest.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    plausible.then_some(origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported_and_origins_are_canonical() {
        let config: ChatConfig = toml::from_str(
            r#"
            max_text_chars = 5000
            messages_per_minute = 0
            [tenants.acme]
            allowed_origins = ["https://WWW.Acme.example/", "https://acme.example/chat", "ftp://x"]
            "#,
        )
        .unwrap();
        let problems = ChatSettings::try_from(config).unwrap_err().problems;
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("max_text_chars: 5000"), "{problems:?}");
        assert!(problems[2].starts_with("tenants.acme.allowed_origins[1]"), "{problems:?}");

        let config: ChatConfig = toml::from_str(
            "[tenants.acme]\nallowed_origins = [\"https://WWW.Acme.example/\"]\nqueue = \"chat\"",
        )
        .unwrap();
        let settings = ChatSettings::try_from(config).unwrap();
        let acme = &settings.tenants["acme"];
        assert!(acme.allows("https://www.acme.example"));
        assert!(!acme.allows("https://evil.example"));
        assert_eq!((settings.max_text_chars, settings.form), (4096, true));
    }
}
