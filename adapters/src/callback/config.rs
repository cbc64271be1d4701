//! Callback configuration: per tenant, the default region for numbers written without a country
//! code, which number kinds are refused, how far ahead a window may be, where the contact is
//! routed, how often a call is tried and how far a promised time may move before the customer
//! is told; and how long a request waits for the router's estimate.

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
    /// How long `POST /callback` waits, after Kafka took the contact, for the router's first
    /// word on it (its estimated wait or its scheduled time) to promise a time, in
    /// milliseconds; 2000 when left out, 0–30000. Without a word in time, the answer says the
    /// estimate is unknown.
    #[serde(default = "default_promise_wait")]
    pub promise_wait_ms: u64,
    /// Each tenant that takes callback requests, by tenant name. A request naming another
    /// tenant is refused.
    pub tenants: BTreeMap<String, CallbackTenantConfig>,
}

fn default_max_body() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

fn default_promise_wait() -> u64 {
    DEFAULT_PROMISE_WAIT_MS
}

/// How long a request waits for the router's estimate by default, in milliseconds.
pub const DEFAULT_PROMISE_WAIT_MS: u64 = 2000;
/// Call attempts in all by default.
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 3;
/// Seconds between failed attempts by default: 10 minutes after the first, 30 after the rest.
pub const DEFAULT_RETRY_SPACING_SECONDS: [u64; 2] = [600, 1800];
/// How far a promised time may move, in minutes, before the customer is told, by default.
pub const DEFAULT_PROMISE_TOLERANCE_MINUTES: u32 = 10;
/// The same, in milliseconds: the tolerance for a tenant without callback settings.
pub const DEFAULT_PROMISE_TOLERANCE_MS: i64 = DEFAULT_PROMISE_TOLERANCE_MINUTES as i64 * 60_000;

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
    /// Call attempts in all (the first and its retries), 1–10; 3 when left out.
    #[serde(default = "default_retry_attempts")]
    pub retry_attempts: u32,
    /// Seconds from a failed attempt (no answer, busy, voicemail, failed) to the next: the
    /// first value after attempt 1, the second after attempt 2, the last one repeated after
    /// that; each 1–86400. `[600, 1800]` when left out.
    #[serde(default = "default_retry_spacing")]
    pub retry_spacing_seconds: Vec<u64>,
    /// Minutes the promised callback time may move (a later estimate of the wait) before the
    /// customer is told through their alternative channel, 0–1440; 10 when left out.
    #[serde(default = "default_promise_tolerance")]
    pub promise_tolerance_minutes: u32,
    /// The number shown to the customer when we call, written like a customer's number
    /// (international, or national in `default_region`); the platform's own when left out.
    #[serde(default)]
    pub caller_id: Option<String>,
}

fn default_retry_attempts() -> u32 {
    DEFAULT_RETRY_ATTEMPTS
}

fn default_retry_spacing() -> Vec<u64> {
    DEFAULT_RETRY_SPACING_SECONDS.to_vec()
}

fn default_promise_tolerance() -> u32 {
    DEFAULT_PROMISE_TOLERANCE_MINUTES
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
    /// How long a request waits for the router's first word on its contact, in milliseconds.
    pub promise_wait_ms: u64,
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
    /// How often a call is tried and how far apart.
    pub retry: RetryPolicy,
    /// How far a promised time may move before the customer is told, in milliseconds.
    pub promise_tolerance_ms: i64,
    /// The number presented to the customer, E.164, when configured.
    pub caller_id: Option<String>,
}

/// A tenant's validated retry policy for call attempts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, at least 1.
    pub attempts: u32,
    /// Milliseconds from failed attempt n (1-based) to the next: entry n-1, the last repeated;
    /// never empty.
    pub spacing_ms: Vec<i64>,
}

impl Default for RetryPolicy {
    /// 3 attempts, 10 then 30 minutes apart: the policy of a tenant without its own.
    fn default() -> Self {
        RetryPolicy {
            attempts: DEFAULT_RETRY_ATTEMPTS,
            spacing_ms: DEFAULT_RETRY_SPACING_SECONDS.iter().map(|&s| s as i64 * 1000).collect(),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based) before the next one, when the policy
    /// leaves one; `None` after the last attempt.
    pub fn next_after(&self, attempt: u32) -> Option<i64> {
        if attempt == 0 || attempt >= self.attempts {
            return None;
        }
        let index = usize::try_from(attempt - 1).unwrap_or(usize::MAX).min(self.spacing_ms.len() - 1);
        self.spacing_ms.get(index).copied()
    }
}

/// Longest `promise_wait_ms`: 30 s (the sender is waiting for the answer).
const MAX_PROMISE_WAIT_MS: u64 = 30_000;
/// Most `retry_attempts`.
const MAX_RETRY_ATTEMPTS: u32 = 10;

/// Longest `max_days_ahead`: a year.
const MAX_DAYS_AHEAD: u32 = 366;

impl TryFrom<CallbackConfig> for CallbackSettings {
    type Error = ConfigError;

    /// Checks every tenant and reports every problem at once: regions must be known to the
    /// phone number metadata, `max_days_ahead` 1–366, `dedupe_window_secs` 1–86400,
    /// `retry_attempts` 1–10, each of `retry_spacing_seconds` 1–86400 (at least one),
    /// `promise_tolerance_minutes` 0–1440, `caller_id` a valid number, `promise_wait_ms`
    /// 0–30000, and the routes valid.
    fn try_from(config: CallbackConfig) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        if config.max_body_bytes == 0 {
            problems.push("max_body_bytes: must be above 0".to_owned());
        }
        if config.tenants.is_empty() {
            problems.push("tenants: none configured".to_owned());
        }
        if config.promise_wait_ms > MAX_PROMISE_WAIT_MS {
            problems.push(format!(
                "promise_wait_ms: {}, must be 0–{MAX_PROMISE_WAIT_MS}",
                config.promise_wait_ms
            ));
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
            if !(1..=MAX_RETRY_ATTEMPTS).contains(&t.retry_attempts) {
                problems.push(format!(
                    "{path}.retry_attempts: {}, must be 1–{MAX_RETRY_ATTEMPTS}",
                    t.retry_attempts
                ));
            }
            if t.retry_spacing_seconds.is_empty() {
                problems.push(format!("{path}.retry_spacing_seconds: empty, give at least one wait"));
            }
            for (i, &seconds) in t.retry_spacing_seconds.iter().enumerate() {
                if !(1..=86_400).contains(&seconds) {
                    problems.push(format!("{path}.retry_spacing_seconds[{i}]: {seconds}, must be 1–86400"));
                }
            }
            if t.promise_tolerance_minutes > 1440 {
                problems.push(format!(
                    "{path}.promise_tolerance_minutes: {}, must be 0–1440",
                    t.promise_tolerance_minutes
                ));
            }
            let caller_id = t.caller_id.as_deref().map(str::trim).and_then(|raw| {
                match phonenumber::parse(Some(default_region), raw) {
                    Ok(number) if number.is_valid() => {
                        Some(number.format().mode(phonenumber::Mode::E164).to_string())
                    }
                    _ => {
                        problems.push(format!("{path}.caller_id: \"{raw}\" is not a valid phone number"));
                        None
                    }
                }
            });
            let spacing_ms: Vec<i64> = t
                .retry_spacing_seconds
                .iter()
                .map(|&s| i64::try_from(s.clamp(1, 86_400)).unwrap_or(1) * 1000)
                .collect();
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
                    retry: if spacing_ms.is_empty() {
                        RetryPolicy::default()
                    } else {
                        RetryPolicy { attempts: t.retry_attempts.clamp(1, MAX_RETRY_ATTEMPTS), spacing_ms }
                    },
                    promise_tolerance_ms: i64::from(t.promise_tolerance_minutes) * 60_000,
                    caller_id,
                },
            );
        }
        let settings = CallbackSettings {
            max_body_bytes: config.max_body_bytes,
            promise_wait_ms: config.promise_wait_ms.min(MAX_PROMISE_WAIT_MS),
            tenants,
        };
        ConfigError::check(problems, settings)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(tenant: &str) -> Result<CallbackSettings, ConfigError> {
        let config: CallbackConfig = toml::from_str(&format!(
            "promise_wait_ms = 500\n[tenants.acme]\ndefault_region = \"FI\"\n{tenant}"
        ))
        .unwrap();
        CallbackSettings::try_from(config)
    }

    #[test]
    fn retries_default_to_three_attempts_ten_then_thirty_minutes_apart() {
        let settings = settings("").unwrap();
        assert_eq!(settings.promise_wait_ms, 500);
        let acme = &settings.tenants["acme"];
        assert_eq!(acme.promise_tolerance_ms, 600_000);
        assert_eq!(acme.caller_id, None);
        assert_eq!(acme.retry.next_after(1), Some(600_000));
        assert_eq!(acme.retry.next_after(2), Some(1_800_000));
        assert_eq!(acme.retry.next_after(3), None, "the third attempt is the last");
    }

    #[test]
    fn the_last_spacing_repeats_and_the_caller_id_is_e164() {
        let settings =
            settings("retry_attempts = 4\nretry_spacing_seconds = [5]\ncaller_id = \"09 123 4567\"").unwrap();
        let acme = &settings.tenants["acme"];
        assert_eq!([acme.retry.next_after(1), acme.retry.next_after(3)], [Some(5000), Some(5000)]);
        assert_eq!(acme.retry.next_after(4), None);
        assert_eq!(acme.caller_id.as_deref(), Some("+35891234567"));
    }

    #[test]
    fn every_bad_retry_key_is_named() {
        let error = settings(
            "retry_attempts = 0\nretry_spacing_seconds = [0]\npromise_tolerance_minutes = 2000\ncaller_id = \"12\"",
        )
        .unwrap_err();
        let all = error.problems.join("\n");
        for key in [
            "tenants.acme.retry_attempts: 0",
            "tenants.acme.retry_spacing_seconds[0]: 0",
            "tenants.acme.promise_tolerance_minutes: 2000",
            "tenants.acme.caller_id: \"12\"",
        ] {
            assert!(all.contains(key), "missing {key:?} in:\n{all}");
        }
    }
}
