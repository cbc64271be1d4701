//! Callback configuration: per tenant, the default region for numbers written without a country
//! code, which number kinds are refused, how far ahead a window may be, and where the contact
//! is routed.

use std::collections::{BTreeMap, HashMap};

use phonenumber::country;
use serde::Deserialize;

use crate::route::{ConfigError, Route, SkillConfig};

/// Largest callback request body accepted by default: 16 KiB, far above any real form.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024;

/// The callback adapter's configuration, as written in the config file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CallbackConfig {
    /// Largest request body in bytes; 16 KiB when left out.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Each tenant that takes callback requests, by tenant name. A request naming another
    /// tenant is refused.
    pub tenants: BTreeMap<String, CallbackTenantConfig>,
}

fn default_max_body() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

/// One tenant's callback rules, as written in the config file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CallbackTenantConfig {
    /// ISO 3166-1 alpha-2 region (e.g. `"FI"`) for numbers written without a country code,
    /// unless the request names its own region.
    pub default_region: String,
    /// Accept premium-rate numbers (refused by default: calling one back costs the tenant).
    #[serde(default)]
    pub allow_premium_rate: bool,
    /// Accept short codes such as `116 123` (refused by default: they cannot be dialled from
    /// abroad and are often service numbers). An accepted short code is not E.164: the contact
    /// carries its digits and the region.
    #[serde(default)]
    pub allow_short_codes: bool,
    /// Furthest a preferred window may start from now, in days; 14 when left out.
    #[serde(default = "default_max_days_ahead")]
    pub max_days_ahead: u32,
    /// A request without a `request_id` and without a window is named by its number and the
    /// `dedupe_window_secs` bucket it arrives in, so a double-submitted form is one contact;
    /// 600 when left out.
    #[serde(default = "default_dedupe_window")]
    pub dedupe_window_secs: u64,
    /// Queue label shown to agents.
    #[serde(default)]
    pub queue: String,
    /// Contact priority, 0–255.
    #[serde(default)]
    pub priority: u32,
    /// Skills every agent offered a callback must have.
    #[serde(default)]
    pub required_skills: Vec<SkillConfig>,
    /// Skills wanted first.
    #[serde(default)]
    pub preferred_skills: Vec<SkillConfig>,
}

fn default_max_days_ahead() -> u32 {
    14
}

fn default_dedupe_window() -> u64 {
    600
}

/// Validated callback settings, built from [`CallbackConfig`] with `TryFrom`.
#[derive(Clone, Debug)]
pub struct CallbackSettings {
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Each tenant's rules, by tenant name.
    pub tenants: HashMap<String, TenantCallbackSettings>,
}

/// One tenant's validated callback rules.
#[derive(Clone, Debug)]
pub struct TenantCallbackSettings {
    /// Where the tenant's callbacks are routed.
    pub route: Route,
    /// Region for numbers without a country code.
    pub default_region: country::Id,
    /// Premium-rate numbers accepted.
    pub allow_premium_rate: bool,
    /// Short codes accepted.
    pub allow_short_codes: bool,
    /// Furthest a window may start from now, in milliseconds.
    pub max_ahead_ms: i64,
    /// Dedupe bucket for requests without a request id or window, in milliseconds (at least 1).
    pub dedupe_window_ms: i64,
}

/// Longest `max_days_ahead`: a year.
const MAX_DAYS_AHEAD: u32 = 366;

impl TryFrom<CallbackConfig> for CallbackSettings {
    type Error = ConfigError;

    /// Checks every tenant and reports every problem at once: regions must be known to the
    /// phone number metadata, `max_days_ahead` 1–366, `dedupe_window_secs` 1–86400, and the
    /// routes valid.
    fn try_from(config: CallbackConfig) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        if config.max_body_bytes == 0 {
            problems.push("max_body_bytes: must be above 0".to_owned());
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
            let default_region = match parse_region(&t.default_region) {
                Some(id) => id,
                None => {
                    problems.push(format!("{path}.default_region: \"{}\" is not a region", t.default_region));
                    country::Id::US
                }
            };
            if !(1..=MAX_DAYS_AHEAD).contains(&t.max_days_ahead) {
                problems
                    .push(format!("{path}.max_days_ahead: {}, must be 1–{MAX_DAYS_AHEAD}", t.max_days_ahead));
            }
            if !(1..=86_400).contains(&t.dedupe_window_secs) {
                problems
                    .push(format!("{path}.dedupe_window_secs: {}, must be 1–86400", t.dedupe_window_secs));
            }
            tenants.insert(
                name.clone(),
                TenantCallbackSettings {
                    route,
                    default_region,
                    allow_premium_rate: t.allow_premium_rate,
                    allow_short_codes: t.allow_short_codes,
                    max_ahead_ms: i64::from(t.max_days_ahead) * 86_400_000,
                    dedupe_window_ms: i64::try_from(t.dedupe_window_secs.clamp(1, 86_400)).unwrap_or(1)
                        * 1000,
                },
            );
        }
        ConfigError::check(problems, CallbackSettings { max_body_bytes: config.max_body_bytes, tenants })
    }
}

/// A region known to the phone number metadata, from its ISO 3166-1 alpha-2 code in any case.
pub(crate) fn parse_region(code: &str) -> Option<country::Id> {
    let code = code.trim();
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    code.to_ascii_uppercase().parse().ok()
}
