//! Meta webhook configuration: which Facebook Page, Instagram professional account or WhatsApp
//! business phone number belongs to which tenant, and the body size limit. The app secret and
//! the verify token are not here: the listener reads them from the environment or a file and
//! passes them as [`Secret`](super::Secret)s.

use std::collections::HashMap;

use serde::Deserialize;

use super::Platform;
use crate::route::{ConfigError, Route, SkillConfig};

/// Largest webhook body accepted by default: 1 MiB (Meta batches up to 1000 updates).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// The Meta adapter's configuration, as written in the config file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MetaConfig {
    /// Largest webhook body in bytes; 1 MiB when left out.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// The business accounts whose messages Vuoro takes.
    pub accounts: Vec<MetaAccountConfig>,
}

fn default_max_body() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

/// One business account and its route, as written in the config file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MetaAccountConfig {
    /// `messenger`, `instagram` or `whatsapp`.
    pub platform: Platform,
    /// The Page id (Messenger), the Instagram professional account id (Instagram), or the
    /// business phone number id (WhatsApp, `metadata.phone_number_id`; not the number itself).
    pub id: String,
    /// Tenant its messages belong to.
    pub tenant: String,
    /// Queue label shown to agents.
    #[serde(default)]
    pub queue: String,
    /// Contact priority, 0–255.
    #[serde(default)]
    pub priority: u32,
    /// Skills every agent offered its messages must have.
    #[serde(default)]
    pub required_skills: Vec<SkillConfig>,
    /// Skills wanted first.
    #[serde(default)]
    pub preferred_skills: Vec<SkillConfig>,
}

/// Validated Meta settings, built from [`MetaConfig`] with `TryFrom`.
#[derive(Clone, Debug)]
pub struct MetaSettings {
    /// Largest webhook body in bytes.
    pub max_body_bytes: usize,
    accounts: HashMap<(Platform, String), Route>,
}

impl MetaSettings {
    /// The route of a business account, `None` when it is not configured.
    pub fn route(&self, platform: Platform, account_id: &str) -> Option<&Route> {
        self.accounts.get(&(platform, account_id.to_owned()))
    }
}

impl TryFrom<MetaConfig> for MetaSettings {
    type Error = ConfigError;

    /// Checks the body limit (above 0), every account (a non-empty id, at most once per
    /// platform) and its route; reports every problem at once.
    fn try_from(config: MetaConfig) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        if config.max_body_bytes == 0 {
            problems.push("max_body_bytes: must be above 0".to_owned());
        }
        if config.accounts.is_empty() {
            problems.push("accounts: none configured".to_owned());
        }
        let mut accounts = HashMap::new();
        for (i, a) in config.accounts.iter().enumerate() {
            let path = format!("accounts[{i}]");
            let route = Route::build(
                &path,
                &a.tenant,
                &a.queue,
                a.priority,
                &a.required_skills,
                &a.preferred_skills,
                &mut problems,
            );
            let id = a.id.trim();
            if id.is_empty() {
                problems.push(format!("{path}.id: required"));
                continue;
            }
            if accounts.insert((a.platform, id.to_owned()), route).is_some() {
                problems
                    .push(format!("{path}.id: {} account \"{id}\" configured twice", a.platform.as_str()));
            }
        }
        ConfigError::check(problems, MetaSettings { max_body_bytes: config.max_body_bytes, accounts })
    }
}
