//! The scenario file (TOML): serde types, and validation into a runtime [`Scenario`].
//!
//! Every table refuses unknown fields. [`ScenarioFile::validate`] checks everything it can and
//! reports *all* the problems it finds at once ([`ScenarioErrors`]), each prefixed with where
//! it is (`traffic[2] "returns"`), then converts the file into the engine's runtime types.
//! The format is documented field by field in `docs/simulate.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;
use serde::Deserialize;
use vuoro_engine::hours::{OpeningHours, Window};
use vuoro_engine::{
    Capacity, Channel, ChannelPolicy, LanguageId, Languages, Millis, OverflowPolicy, PoolConfig, PoolId,
    PoolKind, PoolMode, ProviderId, RelaxAction, RelaxStep, Segment, SkillLevel, SkillList, Strategy,
    TenantPolicy,
};

use crate::dist::{Duration, Mix};
use crate::model::{
    self, AgentGroup, Arrivals, Callback, DAY, HOUR, MINUTE, Pool, Scenario, Stream, TENANT, Windows,
};

/// A scenario file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Title for reports and charts.
    pub name: Option<String>,
    /// Free text for the reader of the file.
    pub description: Option<String>,
    /// Period, replications, seed.
    pub simulation: SimulationSection,
    /// Routing policy.
    #[serde(default)]
    pub policy: PolicySection,
    /// Pools.
    #[serde(default)]
    pub pools: Vec<PoolSection>,
    /// Agent groups.
    #[serde(default)]
    pub agents: Vec<AgentGroupSection>,
    /// Traffic streams.
    #[serde(default)]
    pub traffic: Vec<TrafficSection>,
}

/// `[simulation]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationSection {
    /// First simulated local date, `YYYY-MM-DD` (default 2026-01-05, a Monday).
    pub start: Option<String>,
    /// IANA time zone of the planner's clock (default `UTC`).
    pub time_zone: Option<String>,
    /// Arrival period, hours (default 24).
    pub horizon_hours: Option<f64>,
    /// Minutes at the start whose arrivals are not counted (default 0).
    pub warm_up_minutes: Option<f64>,
    /// Hours after the horizon to let waiting contacts finish (default 24).
    pub drain_hours: Option<f64>,
    /// Independent replications (default 10).
    pub replications: Option<u32>,
    /// Random seed (default 1).
    pub seed: Option<u64>,
    /// Chart resolution, minutes (default 15).
    pub interval_minutes: Option<u32>,
}

/// `[policy]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// Priority points added per customer segment.
    #[serde(default)]
    pub segment_boost: SegmentBoost,
    /// `[policy.voice]`.
    pub voice: Option<ChannelPolicySection>,
    /// `[policy.email]`.
    pub email: Option<ChannelPolicySection>,
    /// `[policy.social]`.
    pub social: Option<ChannelPolicySection>,
    /// `[policy.chat]`.
    pub chat: Option<ChannelPolicySection>,
}

/// Priority points per segment.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentBoost {
    /// New customers.
    #[serde(default)]
    pub new: u8,
    /// Regular customers.
    #[serde(default)]
    pub regular: u8,
    /// VIP customers.
    #[serde(default)]
    pub vip: u8,
}

/// `[policy.<channel>]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelPolicySection {
    /// Service-level threshold, seconds (default 20).
    pub service_level_seconds: Option<f64>,
    /// Service-level target, percent (default 80).
    pub service_level_target_pct: Option<u8>,
    /// Agent selection.
    pub strategy: Option<StrategyName>,
    /// Priority aging: one priority point is worth this many seconds of waiting; absent is
    /// strict priority.
    pub aging_seconds: Option<f64>,
    /// Relaxation steps.
    #[serde(default)]
    pub relaxation: Vec<RelaxSection>,
    /// Overflow to outsourced pools.
    #[serde(default)]
    pub overflow: OverflowSection,
    /// Offer timeout, seconds (default 15; simulated agents answer at once).
    pub offer_timeout_seconds: Option<f64>,
    /// Wrap-up after each contact, seconds (default 0).
    pub wrap_up_seconds: Option<f64>,
    /// Handle time the engine's wait estimate assumes at first, seconds (default 300).
    pub default_handle_time_seconds: Option<f64>,
}

/// Agent-selection strategy names.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StrategyName {
    /// [`Strategy::LongestIdle`].
    LongestIdle,
    /// [`Strategy::LeastOccupied`].
    LeastOccupied,
    /// [`Strategy::BestProficiency`].
    BestProficiency,
    /// [`Strategy::RoundRobin`].
    RoundRobin,
}

/// One relaxation step.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaxSection {
    /// Wait, seconds, after which the step applies.
    pub after_seconds: f64,
    /// What widens.
    pub action: RelaxName,
    /// Levels to lower by (`lower_required_levels` only).
    pub by: Option<u8>,
}

/// Relaxation actions.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RelaxName {
    /// [`RelaxAction::DropPreferredSkills`].
    DropPreferredSkills,
    /// [`RelaxAction::LowerRequiredLevels`].
    LowerRequiredLevels,
    /// [`RelaxAction::AllowOutsourced`].
    AllowOutsourced,
}

/// `[policy.<channel>.overflow]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverflowSection {
    /// Overflow after this wait, seconds.
    pub after_wait_seconds: Option<f64>,
    /// Overflow on arrival when the estimated wait exceeds this, seconds.
    pub estimated_wait_above_seconds: Option<f64>,
    /// Overflow on arrival when in-house occupancy exceeds this percentage.
    pub inhouse_occupancy_above_pct: Option<u8>,
    /// Overflow while every in-house pool is closed.
    #[serde(default)]
    pub when_inhouse_closed: bool,
    /// Percentage of new contacts sent straight to outsourced pools.
    #[serde(default)]
    pub outsourced_split_pct: u8,
}

/// `[[pools]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSection {
    /// Unique name.
    pub name: String,
    /// `in_house` (default) or `outsourced`.
    #[serde(default)]
    pub kind: PoolKindName,
    /// Outsourcing provider (outsourced pools; default: the pool's name).
    pub provider: Option<String>,
    /// `agent_level` (default) or `capacity_level`.
    #[serde(default)]
    pub mode: PoolModeName,
    /// Time zone of the hours (default: the simulation's).
    pub time_zone: Option<String>,
    /// Daily opening hours, e.g. `"08:00-20:00"` or `"08:00-12:00, 13:00-17:00"`.
    pub hours: Option<String>,
    /// Opening hours per weekday, overriding `hours`.
    pub hours_by_day: Option<WeekSection>,
    /// At most this many contacts offered or in service at once.
    pub max_concurrent: Option<u32>,
    /// Handle times here are multiplied by this (default 1).
    pub handle_time_factor: Option<f64>,
    /// Skills the provider covers (capacity-level pools).
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    /// Languages the provider covers (capacity-level pools).
    #[serde(default)]
    pub languages: Vec<String>,
    /// Declared capacity while open (capacity-level pools).
    pub capacity: Option<CapacitySection>,
}

/// Pool kinds.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PoolKindName {
    /// The company's own agents.
    #[default]
    InHouse,
    /// An outsourcing provider's.
    Outsourced,
}

/// Pool modes.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PoolModeName {
    /// The router picks the agent.
    #[default]
    AgentLevel,
    /// The provider declares a capacity.
    CapacityLevel,
}

/// Windows per weekday; a specific day overrides `weekdays`/`weekend`, which override `daily`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeekSection {
    /// Every day.
    pub daily: Option<String>,
    /// Monday to Friday.
    pub weekdays: Option<String>,
    /// Saturday and Sunday.
    pub weekend: Option<String>,
    /// Monday.
    pub mon: Option<String>,
    /// Tuesday.
    pub tue: Option<String>,
    /// Wednesday.
    pub wed: Option<String>,
    /// Thursday.
    pub thu: Option<String>,
    /// Friday.
    pub fri: Option<String>,
    /// Saturday.
    pub sat: Option<String>,
    /// Sunday.
    pub sun: Option<String>,
}

/// What an agent (or a provider) can hold at once.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacitySection {
    /// Calls at once.
    pub voice: Option<u16>,
    /// Emails at once.
    pub email: Option<u16>,
    /// Social messages at once.
    pub social: Option<u16>,
    /// Chats at once.
    pub chat: Option<u16>,
    /// Units in all (default: every channel's maximum times its weight, summed).
    pub total: Option<u16>,
    /// Units per contact of each channel (default 1).
    pub weight: Option<ChannelWeights>,
}

/// Units per contact of each channel.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelWeights {
    /// Voice.
    pub voice: Option<u16>,
    /// Email.
    pub email: Option<u16>,
    /// Social.
    pub social: Option<u16>,
    /// Chat.
    pub chat: Option<u16>,
}

/// `[[agents]]`: a group of identical agents.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentGroupSection {
    /// Name.
    pub name: String,
    /// Its pool (agent-level).
    pub pool: String,
    /// Number of agents.
    pub count: u32,
    /// Skills with levels 1–5.
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    /// Languages.
    #[serde(default)]
    pub languages: Vec<String>,
    /// Capacity (default: one contact of any channel).
    pub capacity: Option<CapacitySection>,
    /// Shifts, `"HH:MM-HH:MM"` in the pool's time zone; a shift may run past midnight. None:
    /// always logged in.
    #[serde(default)]
    pub shifts: Vec<String>,
    /// Weekdays the shifts are worked (`mon` … `sun`; default every day).
    pub days: Option<Vec<String>>,
}

/// `[[traffic]]`: one stream of contacts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficSection {
    /// Name.
    pub name: String,
    /// Channel.
    pub channel: ChannelName,
    /// When contacts arrive.
    pub arrivals: ArrivalsSection,
    /// Handle time.
    pub handle_time: DistributionSection,
    /// Customer patience while waiting (absent: never abandons).
    pub patience: Option<DistributionSection>,
    /// Priority of every contact (default 0), unless `priority_mix` is given.
    pub priority: Option<u8>,
    /// Priority mix.
    #[serde(default)]
    pub priority_mix: Vec<PriorityShare>,
    /// Segment mix (default: all new).
    pub segment_mix: Option<SegmentMix>,
    /// Required skills with minimum levels.
    #[serde(default)]
    pub required_skills: BTreeMap<String, u8>,
    /// Preferred skills with levels.
    #[serde(default)]
    pub preferred_skills: BTreeMap<String, u8>,
    /// Language of every contact, unless `language_mix` is given.
    pub language: Option<String>,
    /// Language mix: language → share.
    #[serde(default)]
    pub language_mix: BTreeMap<String, f64>,
    /// Callback requests.
    pub callback: Option<CallbackSection>,
}

/// Channel names.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChannelName {
    /// Phone.
    Voice,
    /// Email.
    Email,
    /// Social-media messages.
    Social,
    /// Web chat.
    Chat,
}

impl From<ChannelName> for Channel {
    fn from(c: ChannelName) -> Channel {
        match c {
            ChannelName::Voice => Channel::Voice,
            ChannelName::Email => Channel::Email,
            ChannelName::Social => Channel::Social,
            ChannelName::Chat => Channel::Chat,
        }
    }
}

/// When a stream's contacts arrive: exactly one of `per_hour`, `rate_per_hour`, `csv`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArrivalsSection {
    /// Poisson rate per local hour of day (24 values, contacts per hour).
    pub per_hour: Option<Vec<f64>>,
    /// Constant Poisson rate, contacts per hour.
    pub rate_per_hour: Option<f64>,
    /// A CSV of real arrival timestamps, replayed.
    pub csv: Option<String>,
    /// Multiplies the Poisson rate (what-if volume), default 1.
    pub scale: Option<f64>,
}

/// A distribution of durations.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistributionSection {
    /// `exponential`, `lognormal`, `empirical` or `constant`.
    pub distribution: DistributionName,
    /// Mean, seconds (exponential, lognormal, constant).
    pub mean_seconds: Option<f64>,
    /// Standard deviation, seconds (lognormal).
    pub sd_seconds: Option<f64>,
    /// Observed values, seconds (empirical).
    pub samples_seconds: Option<Vec<f64>>,
    /// A CSV of observed values in seconds, first column (empirical).
    pub csv: Option<String>,
}

/// Distribution names.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DistributionName {
    /// Exponential.
    Exponential,
    /// Log-normal.
    Lognormal,
    /// Resampled observations.
    Empirical,
    /// Fixed.
    Constant,
}

impl DistributionName {
    /// The name as written in files.
    pub fn as_str(self) -> &'static str {
        match self {
            DistributionName::Exponential => "exponential",
            DistributionName::Lognormal => "lognormal",
            DistributionName::Empirical => "empirical",
            DistributionName::Constant => "constant",
        }
    }
}

/// One entry of a priority mix.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityShare {
    /// Priority 0–255.
    pub priority: u8,
    /// Relative share.
    pub share: f64,
}

/// Segment shares.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentMix {
    /// New customers.
    #[serde(default)]
    pub new: f64,
    /// Regular customers.
    #[serde(default)]
    pub regular: f64,
    /// VIP customers.
    #[serde(default)]
    pub vip: f64,
}

/// Callback requests of a stream.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackSection {
    /// Share of the stream's contacts that ask for a callback (0–1).
    pub share: f64,
    /// Delay from the request to the promised time.
    pub delay: DistributionSection,
    /// How long the customer still takes the call after the promised time (absent: always).
    pub patience: Option<DistributionSection>,
}

/// Every problem found in a scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioErrors {
    /// One line per problem.
    pub problems: Vec<String>,
}

impl fmt::Display for ScenarioErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(f, "{n} problem{} in the scenario:", if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioErrors {}

/// Reads, parses and validates a scenario file; CSV paths are relative to its folder.
pub fn load(path: &Path) -> anyhow::Result<Scenario> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read scenario {}: {e}", path.display()))?;
    let file = ScenarioFile::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    file.validate(&base).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

impl ScenarioFile {
    /// Parses TOML (syntax, types and unknown fields; no semantic checks).
    pub fn parse(text: &str) -> Result<ScenarioFile, toml::de::Error> {
        toml::from_str(text)
    }

    /// Checks everything and builds the runtime scenario, or returns every problem found.
    /// CSV files are read relative to `base_dir`.
    pub fn validate(&self, base_dir: &Path) -> Result<Scenario, ScenarioErrors> {
        let mut v = Validator { problems: Vec::new(), base_dir: base_dir.to_path_buf() };
        let scenario = v.scenario(self);
        match scenario {
            Some(s) if v.problems.is_empty() => Ok(s),
            _ => Err(ScenarioErrors { problems: v.problems }),
        }
    }
}

struct Validator {
    problems: Vec<String>,
    base_dir: PathBuf,
}

/// Interns names into dense ids in sorted order.
struct Names {
    ids: BTreeMap<String, usize>,
}

impl Names {
    fn new<'a>(names: impl Iterator<Item = &'a String>) -> Names {
        let set: BTreeSet<&String> = names.collect();
        Names { ids: set.into_iter().enumerate().map(|(i, n)| (n.clone(), i)).collect() }
    }

    fn id(&self, name: &str) -> usize {
        self.ids[name]
    }

    fn list(&self) -> Vec<String> {
        self.ids.keys().cloned().collect()
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Validator {
    fn problem(&mut self, at: &str, message: impl fmt::Display) {
        self.problems.push(format!("{at}: {message}"));
    }

    fn seconds(
        &mut self,
        at: &str,
        field: &str,
        value: Option<f64>,
        default: f64,
        allow_zero: bool,
    ) -> Millis {
        let v = value.unwrap_or(default);
        let ok = v.is_finite() && (v > 0.0 || (allow_zero && v == 0.0)) && v * 1000.0 < 1e15;
        if !ok {
            let bound = if allow_zero { "zero or more" } else { "more than zero" };
            self.problem(at, format!("{field} must be a finite number of seconds, {bound}; got {v}"));
            return 0;
        }
        (v * 1000.0).round() as Millis
    }

    fn time_zone(&mut self, at: &str, name: Option<&str>, default: Tz) -> Tz {
        match name {
            None => default,
            Some(n) => n.parse::<Tz>().unwrap_or_else(|_| {
                self.problem(
                    at,
                    format!("unknown time zone {n:?} (use an IANA name like \"Europe/Helsinki\")"),
                );
                default
            }),
        }
    }

    fn scenario(&mut self, f: &ScenarioFile) -> Option<Scenario> {
        let s = &f.simulation;
        let at = "simulation";
        let tz = self.time_zone(at, s.time_zone.as_deref(), chrono_tz::UTC);
        let start_text = s.start.as_deref().unwrap_or("2026-01-05");
        let start_date = NaiveDate::parse_from_str(start_text, "%Y-%m-%d").ok();
        if start_date.is_none() {
            self.problem(at, format!("start must be a date YYYY-MM-DD, got {start_text:?}"));
        }
        let start = start_date.and_then(|d| model::local_instant(tz, d, 0)).unwrap_or(0);
        let horizon =
            self.seconds(at, "horizon_hours", s.horizon_hours.map(|h| h * 3600.0), 24.0 * 3600.0, false);
        let warm_up = self.seconds(at, "warm_up_minutes", s.warm_up_minutes.map(|m| m * 60.0), 0.0, true);
        let drain = self.seconds(at, "drain_hours", s.drain_hours.map(|h| h * 3600.0), 24.0 * 3600.0, true);
        if horizon > 0 && warm_up >= horizon {
            self.problem(at, "warm_up_minutes must be shorter than the horizon");
        }
        if horizon > 366 * DAY {
            self.problem(at, "horizon_hours must be at most a year");
        }
        let replications = s.replications.unwrap_or(10);
        if replications == 0 {
            self.problem(at, "replications must be at least 1 (2 or more for confidence intervals)");
        }
        let interval = u64::from(s.interval_minutes.unwrap_or(15)) * MINUTE;
        if interval == 0 || (horizon > 0 && interval > horizon) || !DAY.is_multiple_of(interval.max(1)) {
            self.problem(
                at,
                "interval_minutes must be at least 1, divide a day evenly and fit in the horizon",
            );
        }

        // Names of skills and languages, from every place that uses them.
        let skill_names = Names::new(
            f.agents
                .iter()
                .flat_map(|a| a.skills.keys())
                .chain(f.pools.iter().flat_map(|p| p.skills.keys()))
                .chain(
                    f.traffic.iter().flat_map(|t| t.required_skills.keys().chain(t.preferred_skills.keys())),
                ),
        );
        let language_names = Names::new(
            f.agents
                .iter()
                .flat_map(|a| a.languages.iter())
                .chain(f.pools.iter().flat_map(|p| p.languages.iter()))
                .chain(f.traffic.iter().flat_map(|t| t.language.iter().chain(t.language_mix.keys()))),
        );
        if skill_names.ids.len() > usize::from(vuoro_engine::ids::MAX_SKILLS) {
            self.problem("scenario", format!("at most {} distinct skills", vuoro_engine::ids::MAX_SKILLS));
        }
        if language_names.ids.len() > usize::from(vuoro_engine::ids::MAX_LANGUAGES) {
            self.problem(
                "scenario",
                format!("at most {} distinct languages", vuoro_engine::ids::MAX_LANGUAGES),
            );
        }

        let policy = self.policy(&f.policy);
        let pools = self.pools(&f.pools, tz, &skill_names, &language_names);
        let groups = self.groups(&f.agents, &f.pools, &pools, tz, &skill_names, &language_names);
        let streams: Vec<Stream> = f
            .traffic
            .iter()
            .enumerate()
            .filter_map(|(i, t)| self.stream(i, t, tz, start, horizon, &skill_names, &language_names))
            .collect();
        if f.traffic.is_empty() {
            self.problem("traffic", "the scenario has no traffic");
        }
        if f.agents.is_empty() && !f.pools.iter().any(|p| p.mode == PoolModeName::CapacityLevel) {
            self.problem("agents", "the scenario has no agents and no capacity-level pool");
        }
        if !self.problems.is_empty() {
            return None;
        }
        let scenario = Scenario {
            name: f.name.clone().unwrap_or_else(|| "scenario".into()),
            tz,
            start,
            horizon,
            warm_up,
            drain,
            replications,
            seed: s.seed.unwrap_or(1),
            interval,
            policy,
            pools,
            groups,
            streams,
            skill_names: skill_names.list(),
            language_names: language_names.list(),
        };
        self.servable(&scenario, f);
        Some(scenario)
    }

    fn policy(&mut self, p: &PolicySection) -> TenantPolicy {
        let sections = [&p.voice, &p.email, &p.social, &p.chat];
        let channels = std::array::from_fn(|i| {
            let name = ["voice", "email", "social", "chat"][i];
            self.channel_policy(&format!("policy.{name}"), sections[i].clone().unwrap_or_default())
        });
        TenantPolicy {
            tenant: TENANT,
            channels,
            segment_boost: [p.segment_boost.new, p.segment_boost.regular, p.segment_boost.vip],
        }
    }

    fn channel_policy(&mut self, at: &str, c: ChannelPolicySection) -> ChannelPolicy {
        let d = ChannelPolicy::default();
        let target = c.service_level_target_pct.unwrap_or(d.service_level_target_pct);
        if target > 100 {
            self.problem(at, format!("service_level_target_pct must be 0–100, got {target}"));
        }
        let mut relaxation = Vec::new();
        for (i, r) in c.relaxation.iter().enumerate() {
            let step_at = format!("{at}.relaxation[{i}]");
            let after = self.seconds(&step_at, "after_seconds", Some(r.after_seconds), 0.0, true);
            let action = match (r.action, r.by) {
                (RelaxName::DropPreferredSkills, None) => RelaxAction::DropPreferredSkills,
                (RelaxName::AllowOutsourced, None) => RelaxAction::AllowOutsourced,
                (RelaxName::LowerRequiredLevels, Some(by)) if (1..=4).contains(&by) => {
                    RelaxAction::LowerRequiredLevels(by)
                }
                (RelaxName::LowerRequiredLevels, _) => {
                    self.problem(&step_at, "lower_required_levels needs `by`, 1–4 levels");
                    RelaxAction::LowerRequiredLevels(1)
                }
                (action, Some(_)) => {
                    self.problem(
                        &step_at,
                        format!("`by` applies only to lower_required_levels, not {action:?}"),
                    );
                    RelaxAction::AllowOutsourced
                }
            };
            relaxation.push(RelaxStep { after, action });
        }
        let o = &c.overflow;
        let oat = format!("{at}.overflow");
        let optional = |v: &mut Validator, field: &str, x: Option<f64>| {
            x.map(|s| v.seconds(&oat, field, Some(s), 0.0, true))
        };
        let after_wait = optional(self, "after_wait_seconds", o.after_wait_seconds);
        let estimated_wait_above =
            optional(self, "estimated_wait_above_seconds", o.estimated_wait_above_seconds);
        if o.inhouse_occupancy_above_pct.is_some_and(|p| p > 100) {
            self.problem(&oat, "inhouse_occupancy_above_pct must be 0–100");
        }
        if o.outsourced_split_pct > 100 {
            self.problem(&oat, "outsourced_split_pct must be 0–100");
        }
        let aging_step =
            c.aging_seconds.map(|s| self.seconds(at, "aging_seconds", Some(s), 0.0, false).max(1));
        ChannelPolicy {
            service_level_threshold: self.seconds(
                at,
                "service_level_seconds",
                c.service_level_seconds,
                d.service_level_threshold as f64 / 1000.0,
                true,
            ),
            service_level_target_pct: target,
            strategy: match c.strategy {
                None | Some(StrategyName::LongestIdle) => Strategy::LongestIdle,
                Some(StrategyName::LeastOccupied) => Strategy::LeastOccupied,
                Some(StrategyName::BestProficiency) => Strategy::BestProficiency,
                Some(StrategyName::RoundRobin) => Strategy::RoundRobin,
            },
            aging_step,
            relaxation,
            overflow: OverflowPolicy {
                after_wait,
                estimated_wait_above,
                inhouse_occupancy_above_pct: o.inhouse_occupancy_above_pct,
                when_inhouse_closed: o.when_inhouse_closed,
                outsourced_split_pct: o.outsourced_split_pct,
            },
            offer_timeout: self.seconds(
                at,
                "offer_timeout_seconds",
                c.offer_timeout_seconds,
                d.offer_timeout as f64 / 1000.0,
                false,
            ),
            wrap_up: self.seconds(at, "wrap_up_seconds", c.wrap_up_seconds, 0.0, true),
            // Simulated agents answer every offer at once; no offer is ever missed.
            max_missed_offers: 0,
            default_handle_time: self.seconds(
                at,
                "default_handle_time_seconds",
                c.default_handle_time_seconds,
                d.default_handle_time as f64 / 1000.0,
                false,
            ),
        }
    }

    /// Parses `"08:00-16:00, 17:00-22:00"`, `"always"` or `"closed"` into minute windows
    /// (end past 1440 for a window that runs past midnight).
    fn windows(&mut self, at: &str, text: &str) -> Vec<(u32, u32)> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("closed") || text.is_empty() {
            return Vec::new();
        }
        if text.eq_ignore_ascii_case("always") {
            return vec![(0, 1440)];
        }
        let mut out = Vec::new();
        for part in text.split(',') {
            let parsed = part.trim().split_once('-').and_then(|(a, b)| Some((minute(a)?, minute(b)?)));
            match parsed {
                Some((a, b)) if a < 1440 && a != b => out.push((a, if b <= a { b + 1440 } else { b })),
                _ => self.problem(
                    at,
                    format!("window {:?} is not HH:MM-HH:MM (a distinct start and end)", part.trim()),
                ),
            }
        }
        out.sort_unstable();
        if out.windows(2).any(|w| w[0].1 > w[1].0) {
            self.problem(at, format!("windows {text:?} overlap"));
        }
        out
    }

    fn week(&mut self, at: &str, daily: Option<&str>, by_day: Option<&WeekSection>) -> [Vec<(u32, u32)>; 7] {
        let mut texts: [Option<String>; 7] = std::array::from_fn(|_| daily.map(str::to_owned));
        if let Some(w) = by_day {
            for (d, text) in texts.iter_mut().enumerate() {
                let specific = [&w.mon, &w.tue, &w.wed, &w.thu, &w.fri, &w.sat, &w.sun][d];
                let group = if d < 5 { &w.weekdays } else { &w.weekend };
                if let Some(t) = specific.as_ref().or(group.as_ref()).or(w.daily.as_ref()) {
                    *text = Some(t.clone());
                }
            }
        }
        // Parse each distinct text once, so a bad daily window is reported once.
        let mut parsed: BTreeMap<String, Vec<(u32, u32)>> = BTreeMap::new();
        for t in texts.iter().flatten() {
            if !parsed.contains_key(t) {
                let windows = self.windows(at, t);
                parsed.insert(t.clone(), windows);
            }
        }
        std::array::from_fn(|d| texts[d].as_ref().map(|t| parsed[t].clone()).unwrap_or_default())
    }

    fn capacity(&mut self, at: &str, c: &CapacitySection) -> Capacity {
        let per = [c.voice, c.email, c.social, c.chat].map(|x| x.unwrap_or(0));
        let w = c.weight.clone().unwrap_or_default();
        let weight = [w.voice, w.email, w.social, w.chat].map(|x| x.unwrap_or(1));
        if per.iter().all(|&p| p == 0) {
            self.problem(at, "capacity allows no channel (give voice, email, social or chat)");
        }
        if weight.contains(&0) {
            self.problem(at, "capacity weights must be at least 1");
        }
        let sum: u32 = per.iter().zip(weight).map(|(&p, w)| u32::from(p) * u32::from(w)).sum();
        let total = c.total.map_or(sum.min(u32::from(u16::MAX)) as u16, |t| t);
        if total == 0 {
            self.problem(at, "capacity total must be at least 1");
        }
        Capacity { per_channel: per, weight, total }
    }

    fn skills(&mut self, at: &str, skills: &BTreeMap<String, u8>, names: &Names) -> Vec<SkillLevel> {
        skills
            .iter()
            .map(|(name, &level)| {
                if !(1..=vuoro_engine::ids::MAX_LEVEL).contains(&level) {
                    self.problem(at, format!("skill {name:?} has level {level}; levels are 1–5"));
                }
                SkillLevel::new(names.id(name) as u16, level.clamp(1, vuoro_engine::ids::MAX_LEVEL))
            })
            .collect()
    }

    fn languages(names: &Names, list: &[String]) -> Languages {
        Languages::of(&list.iter().map(|l| names.id(l) as u8).collect::<Vec<_>>())
    }

    fn pools(&mut self, pools: &[PoolSection], tz: Tz, skills: &Names, langs: &Names) -> Vec<Pool> {
        let mut providers: BTreeMap<String, u32> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, p) in pools.iter().enumerate() {
            let at = format!("pools[{i}] {:?}", p.name);
            if !seen.insert(p.name.clone()) {
                self.problem(&at, "another pool has the same name");
            }
            let ptz = self.time_zone(&at, p.time_zone.as_deref(), tz);
            let kind = match p.kind {
                PoolKindName::InHouse => {
                    if p.provider.is_some() {
                        self.problem(&at, "provider is only for outsourced pools");
                    }
                    PoolKind::InHouse
                }
                PoolKindName::Outsourced => {
                    let name = p.provider.clone().unwrap_or_else(|| p.name.clone());
                    let next = providers.len() as u32 + 1;
                    PoolKind::Outsourced(ProviderId(*providers.entry(name).or_insert(next)))
                }
            };
            let week = self.week(&format!("{at} hours"), p.hours.as_deref(), p.hours_by_day.as_ref());
            let limited = p.hours.is_some() || p.hours_by_day.is_some();
            let windows = Windows { tz: ptz, week, limited };
            let hours = limited.then(|| opening_hours(&windows)).and_then(|h| match h {
                Ok(h) => Some(h),
                Err(e) => {
                    self.problem(&at, format!("opening hours: {e}"));
                    None
                }
            });
            let (mode, capacity) = match p.mode {
                PoolModeName::AgentLevel => {
                    if !p.skills.is_empty() || !p.languages.is_empty() || p.capacity.is_some() {
                        self.problem(&at, "skills, languages and capacity are for capacity-level pools (agent-level pools take them from their agents)");
                    }
                    (PoolMode::AgentLevel, None)
                }
                PoolModeName::CapacityLevel => {
                    let capacity = match &p.capacity {
                        Some(c) => self.capacity(&format!("{at} capacity"), c),
                        None => {
                            self.problem(&at, "a capacity-level pool needs a capacity");
                            Capacity::uniform(1)
                        }
                    };
                    let skills = self.skills(&at, &p.skills, skills);
                    (
                        PoolMode::CapacityLevel { skills, languages: Self::languages(langs, &p.languages) },
                        Some(capacity),
                    )
                }
            };
            if p.max_concurrent == Some(0) {
                self.problem(&at, "max_concurrent must be at least 1 (leave it out for no cap)");
            }
            let factor = p.handle_time_factor.unwrap_or(1.0);
            if !(factor.is_finite() && factor > 0.0) {
                self.problem(&at, format!("handle_time_factor must be more than zero, got {factor}"));
            }
            out.push(Pool {
                name: p.name.clone(),
                config: PoolConfig {
                    id: PoolId(i as u32 + 1),
                    tenant: TENANT,
                    kind,
                    mode,
                    hours,
                    max_concurrent: p.max_concurrent,
                },
                handle_time_factor: factor,
                capacity,
                windows,
            });
        }
        out
    }

    fn groups(
        &mut self,
        groups: &[AgentGroupSection],
        pool_sections: &[PoolSection],
        pools: &[Pool],
        tz: Tz,
        skills: &Names,
        langs: &Names,
    ) -> Vec<AgentGroup> {
        let mut out = Vec::new();
        for (i, g) in groups.iter().enumerate() {
            let at = format!("agents[{i}] {:?}", g.name);
            let pool = pool_sections.iter().position(|p| p.name == g.pool);
            match pool {
                None => self.problem(&at, format!("no pool named {:?}", g.pool)),
                Some(p) if pool_sections[p].mode == PoolModeName::CapacityLevel => self.problem(
                    &at,
                    format!("pool {:?} is capacity-level; agents belong to agent-level pools", g.pool),
                ),
                _ => {}
            }
            let ptz = pool.and_then(|p| pools.get(p)).map_or(tz, |p| p.windows.tz);
            let capacity = match &g.capacity {
                Some(c) => self.capacity(&format!("{at} capacity"), c),
                None => Capacity::uniform(1),
            };
            let skill_list = self.skills(&at, &g.skills, skills);
            let mut days = [true; 7];
            if let Some(list) = &g.days {
                days = [false; 7];
                for d in list {
                    match DAYS.iter().position(|x| x.eq_ignore_ascii_case(d)) {
                        Some(k) => days[k] = true,
                        None => self.problem(
                            &at,
                            format!("unknown day {d:?} (use mon, tue, wed, thu, fri, sat, sun)"),
                        ),
                    }
                }
            }
            let mut day_windows: Vec<(u32, u32)> = Vec::new();
            for s in &g.shifts {
                day_windows.extend(self.windows(&format!("{at} shifts"), s));
            }
            day_windows.sort_unstable();
            if day_windows.windows(2).any(|w| w[0].1 > w[1].0) {
                self.problem(&at, "shifts overlap");
            }
            if g.shifts.is_empty() && g.days.is_some() {
                self.problem(&at, "days needs shifts");
            }
            let limited = !g.shifts.is_empty();
            let week = std::array::from_fn(|d| if days[d] { day_windows.clone() } else { Vec::new() });
            out.push(AgentGroup {
                name: g.name.clone(),
                pool: pool.unwrap_or(0),
                count: g.count,
                skills: skill_list,
                languages: Self::languages(langs, &g.languages),
                capacity,
                shifts: Windows { tz: ptz, week, limited },
            });
        }
        out
    }

    fn duration(&mut self, at: &str, d: &DistributionSection) -> Duration {
        let positive = |x: Option<f64>| x.filter(|v| v.is_finite() && *v > 0.0);
        let extra = |fields: &[(&str, bool)]| {
            fields.iter().filter(|f| f.1).map(|f| f.0).collect::<Vec<_>>().join(", ")
        };
        let (result, unused) = match d.distribution {
            DistributionName::Exponential => (
                positive(d.mean_seconds).map(|mean| Duration::Exponential { mean }),
                extra(&[
                    ("sd_seconds", d.sd_seconds.is_some()),
                    ("samples_seconds", d.samples_seconds.is_some()),
                    ("csv", d.csv.is_some()),
                ]),
            ),
            DistributionName::Lognormal => (
                positive(d.mean_seconds).zip(positive(d.sd_seconds)).map(|(m, s)| Duration::log_normal(m, s)),
                extra(&[("samples_seconds", d.samples_seconds.is_some()), ("csv", d.csv.is_some())]),
            ),
            DistributionName::Constant => (
                d.mean_seconds.filter(|v| v.is_finite() && *v >= 0.0).map(Duration::Constant),
                extra(&[
                    ("sd_seconds", d.sd_seconds.is_some()),
                    ("samples_seconds", d.samples_seconds.is_some()),
                    ("csv", d.csv.is_some()),
                ]),
            ),
            DistributionName::Empirical => {
                let mut values = d.samples_seconds.clone().unwrap_or_default();
                if let Some(csv) = &d.csv {
                    match self.read_csv(csv) {
                        Ok(lines) => {
                            for (n, field) in lines {
                                match field.parse::<f64>() {
                                    Ok(v) => values.push(v),
                                    Err(_) if n == 1 => {} // a header
                                    Err(_) => self.problem(
                                        at,
                                        format!("{csv}:{n}: {field:?} is not a number of seconds"),
                                    ),
                                }
                            }
                        }
                        Err(e) => self.problem(at, e),
                    }
                }
                let ok = !values.is_empty() && values.iter().all(|v| v.is_finite() && *v >= 0.0);
                (
                    ok.then_some(Duration::Empirical(values)),
                    extra(&[
                        ("mean_seconds", d.mean_seconds.is_some()),
                        ("sd_seconds", d.sd_seconds.is_some()),
                    ]),
                )
            }
        };
        if !unused.is_empty() {
            self.problem(at, format!("{unused} not used by a {} distribution", d.distribution.as_str()));
        }
        result.unwrap_or_else(|| {
            let need = match d.distribution {
                DistributionName::Exponential => "mean_seconds > 0",
                DistributionName::Lognormal => "mean_seconds > 0 and sd_seconds > 0",
                DistributionName::Constant => "mean_seconds >= 0",
                DistributionName::Empirical => "samples_seconds or csv with values >= 0",
            };
            self.problem(at, format!("a {} distribution needs {need}", d.distribution.as_str()));
            Duration::Constant(0.0)
        })
    }

    /// The first field of every non-empty line of a CSV file, with line numbers.
    fn read_csv(&self, path: &str) -> Result<Vec<(usize, String)>, String> {
        let full = self.base_dir.join(path);
        let text =
            std::fs::read_to_string(&full).map_err(|e| format!("cannot read {}: {e}", full.display()))?;
        Ok(text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(|(i, l)| {
                (i + 1, l.split([',', ';', '\t']).next().unwrap_or("").trim().trim_matches('"').to_owned())
            })
            .collect())
    }

    #[allow(clippy::too_many_arguments)]
    fn stream(
        &mut self,
        i: usize,
        t: &TrafficSection,
        tz: Tz,
        start: Millis,
        horizon: Millis,
        skills: &Names,
        langs: &Names,
    ) -> Option<Stream> {
        let at = format!("traffic[{i}] {:?}", t.name);
        let a = &t.arrivals;
        let scale = a.scale.unwrap_or(1.0);
        if !(scale.is_finite() && scale >= 0.0) {
            self.problem(&at, format!("arrivals.scale must be zero or more, got {scale}"));
        }
        let sources = [a.per_hour.is_some(), a.rate_per_hour.is_some(), a.csv.is_some()];
        let arrivals = if sources.iter().filter(|&&s| s).count() != 1 {
            self.problem(&at, "arrivals needs exactly one of per_hour, rate_per_hour or csv");
            None
        } else if let Some(per_hour) = &a.per_hour {
            if per_hour.len() != 24 {
                self.problem(
                    &at,
                    format!("arrivals.per_hour needs 24 values (00–01 … 23–24), got {}", per_hour.len()),
                );
            }
            if per_hour.iter().any(|r| !(r.is_finite() && *r >= 0.0)) {
                self.problem(&at, "arrivals.per_hour values must be zero or more");
            }
            let mut rates = [0.0; 24];
            for (r, v) in rates.iter_mut().zip(per_hour) {
                *r = v * scale;
            }
            Some(Arrivals::Poisson { per_hour: rates })
        } else if let Some(rate) = a.rate_per_hour {
            if !(rate.is_finite() && rate >= 0.0) {
                self.problem(&at, format!("arrivals.rate_per_hour must be zero or more, got {rate}"));
            }
            Some(Arrivals::Poisson { per_hour: [rate * scale; 24] })
        } else {
            if a.scale.is_some() {
                self.problem(&at, "arrivals.scale does not apply to a csv trace");
            }
            let csv = a.csv.as_deref().unwrap_or_default();
            self.trace(&at, csv, tz, start, horizon).map(Arrivals::Trace)
        };
        let handle_time = self.duration(&format!("{at} handle_time"), &t.handle_time);
        let patience = t.patience.as_ref().map(|p| self.duration(&format!("{at} patience"), p));
        let priorities = if t.priority_mix.is_empty() {
            Mix::one(t.priority.unwrap_or(0))
        } else {
            if t.priority.is_some() {
                self.problem(&at, "give priority or priority_mix, not both");
            }
            let weights: Vec<(u8, f64)> = t.priority_mix.iter().map(|p| (p.priority, p.share)).collect();
            Mix::from_weights(&weights).unwrap_or_else(|| {
                self.problem(&at, "priority_mix shares must be zero or more with a positive sum");
                Mix::one(0)
            })
        };
        let segments = match &t.segment_mix {
            None => Mix::one(Segment::New),
            Some(m) => Mix::from_weights(&[
                (Segment::New, m.new),
                (Segment::Regular, m.regular),
                (Segment::Vip, m.vip),
            ])
            .unwrap_or_else(|| {
                self.problem(&at, "segment_mix shares must be zero or more with a positive sum");
                Mix::one(Segment::New)
            }),
        };
        let languages = if t.language_mix.is_empty() {
            Mix::one(t.language.as_ref().map(|l| LanguageId(langs.id(l) as u8)))
        } else {
            if t.language.is_some() {
                self.problem(&at, "give language or language_mix, not both");
            }
            let weights: Vec<(Option<LanguageId>, f64)> =
                t.language_mix.iter().map(|(l, &s)| (Some(LanguageId(langs.id(l) as u8)), s)).collect();
            Mix::from_weights(&weights).unwrap_or_else(|| {
                self.problem(&at, "language_mix shares must be zero or more with a positive sum");
                Mix::one(None)
            })
        };
        let required = self.skills(&format!("{at} required_skills"), &t.required_skills, skills);
        let preferred = self.skills(&format!("{at} preferred_skills"), &t.preferred_skills, skills);
        if required.len() + preferred.len() > vuoro_engine::ids::MAX_CONTACT_SKILLS {
            self.problem(
                &at,
                format!(
                    "at most {} required and preferred skills in all",
                    vuoro_engine::ids::MAX_CONTACT_SKILLS
                ),
            );
        }
        let callback = t.callback.as_ref().map(|c| {
            if !(0.0..=1.0).contains(&c.share) {
                self.problem(&at, format!("callback.share must be 0–1, got {}", c.share));
            }
            Callback {
                share: c.share,
                delay: self.duration(&format!("{at} callback.delay"), &c.delay),
                patience: c.patience.as_ref().map(|p| self.duration(&format!("{at} callback.patience"), p)),
            }
        });
        let clip = |s: Vec<SkillLevel>| {
            SkillList::from_slice(&s[..s.len().min(vuoro_engine::ids::MAX_CONTACT_SKILLS)])
        };
        Some(Stream {
            name: t.name.clone(),
            channel: t.channel.into(),
            arrivals: arrivals?,
            handle_time,
            patience,
            priorities,
            segments,
            languages,
            required: clip(required).unwrap_or_default(),
            preferred: clip(preferred).unwrap_or_default(),
            callback,
        })
    }

    /// Reads a trace of arrival timestamps. Full timestamps keep their local time of day and
    /// their day offset from the first day of the file, which maps to the start date; times of
    /// day alone fall on the first simulated day. Arrivals outside the horizon are dropped.
    fn trace(&mut self, at: &str, csv: &str, tz: Tz, start: Millis, horizon: Millis) -> Option<Vec<Millis>> {
        let lines = match self.read_csv(csv) {
            Ok(l) => l,
            Err(e) => {
                self.problem(at, e);
                return None;
            }
        };
        let mut stamps: Vec<NaiveDateTime> = Vec::new();
        let mut times: Vec<NaiveTime> = Vec::new();
        let mut bad = 0;
        for (n, field) in &lines {
            if let Some(dt) = parse_timestamp(field, tz) {
                stamps.push(dt);
            } else if let Some(t) = parse_time(field) {
                times.push(t);
            } else if *n > 1 {
                if bad < 3 {
                    self.problem(at, format!("{csv}:{n}: {field:?} is not a timestamp"));
                }
                bad += 1;
            }
        }
        if bad > 3 {
            self.problem(at, format!("{csv}: {} more lines are not timestamps", bad - 3));
        }
        let start_date = model::local_date(tz, start)?;
        let first = stamps.iter().map(|d| d.date()).min();
        let mut out: Vec<Millis> = Vec::with_capacity(stamps.len() + times.len());
        let resolve = |naive: NaiveDateTime| {
            tz.from_local_datetime(&naive)
                .earliest()
                .or_else(|| tz.from_local_datetime(&(naive + chrono::Duration::hours(1))).earliest())
                .and_then(|d| u64::try_from(d.timestamp_millis()).ok())
        };
        for dt in &stamps {
            let shifted = *dt + (start_date - first.unwrap_or(start_date));
            out.extend(resolve(shifted));
        }
        for t in &times {
            out.extend(resolve(NaiveDateTime::new(start_date, *t)));
        }
        let mut out: Vec<Millis> =
            out.into_iter().filter(|&t| t >= start && t < start + horizon).map(|t| t - start).collect();
        out.sort_unstable();
        if out.is_empty() && bad == 0 {
            self.problem(at, format!("{csv}: no arrival falls within the horizon"));
        }
        Some(out)
    }

    /// Reports streams whose contacts no agent or pool could ever take.
    fn servable(&mut self, s: &Scenario, f: &ScenarioFile) {
        for (i, stream) in s.streams.iter().enumerate() {
            let policy = s.policy.channel(stream.channel);
            let drop: u8 = policy
                .relaxation
                .iter()
                .map(|r| match r.action {
                    RelaxAction::LowerRequiredLevels(by) => by,
                    _ => 0,
                })
                .sum();
            let o = &policy.overflow;
            let outsourced_reachable = o.after_wait.is_some()
                || o.estimated_wait_above.is_some()
                || o.inhouse_occupancy_above_pct.is_some()
                || o.when_inhouse_closed
                || o.outsourced_split_pct > 0
                || policy.relaxation.iter().any(|r| r.action == RelaxAction::AllowOutsourced);
            let c = stream.channel.index();
            let fits = |skills: &[SkillLevel],
                        languages: Languages,
                        capacity: &Capacity,
                        language: Option<LanguageId>| {
                capacity.per_channel[c] > 0
                    && capacity.weight[c] <= capacity.total
                    && language.is_none_or(|l| languages.contains(l))
                    && stream.required.as_slice().iter().all(|r| {
                        let need = r.level.saturating_sub(drop).max(1);
                        skills.iter().any(|s| s.skill == r.skill && s.level >= need)
                    })
            };
            for (language, _) in stream.languages.entries() {
                let mut served = false;
                for g in s.groups.iter().filter(|g| g.count > 0) {
                    let inhouse = s.pools[g.pool].config.kind == PoolKind::InHouse;
                    served |= (inhouse || outsourced_reachable)
                        && fits(&g.skills, g.languages, &g.capacity, language);
                }
                for p in &s.pools {
                    if let (PoolMode::CapacityLevel { skills, languages }, Some(cap)) =
                        (&p.config.mode, &p.capacity)
                    {
                        let inhouse = p.config.kind == PoolKind::InHouse;
                        served |=
                            (inhouse || outsourced_reachable) && fits(skills, *languages, cap, language);
                    }
                }
                if !served {
                    let lang = language.map_or("any-language".to_owned(), |l| {
                        format!("{:?}", s.language_names[l.0 as usize])
                    });
                    self.problem(
                        &format!("traffic[{i}] {:?}", f.traffic[i].name),
                        format!(
                            "no agent group or pool can ever take its {lang} {:?} contacts (channel capacity, required skills and levels after relaxation, language{})",
                            stream.channel,
                            if outsourced_reachable { "" } else { "; outsourced pools are not reachable without an overflow rule" }
                        ),
                    );
                }
            }
        }
    }
}

/// `HH:MM` (or `24:00`) as minutes after midnight.
fn minute(text: &str) -> Option<u32> {
    let (h, m) = text.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

fn parse_timestamp(field: &str, tz: Tz) -> Option<NaiveDateTime> {
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(field) {
        return Some(d.with_timezone(&tz).naive_local());
    }
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(field, f).ok())
}

fn parse_time(field: &str) -> Option<NaiveTime> {
    ["%H:%M:%S%.f", "%H:%M"].iter().find_map(|f| NaiveTime::parse_from_str(field, f).ok())
}

/// The engine's opening hours for weekly windows: windows past midnight continue on the next
/// day; each day's windows are merged.
pub fn opening_hours(w: &Windows) -> Result<OpeningHours, vuoro_engine::hours::HoursError> {
    let mut week: [Vec<(u32, u32)>; 7] = Default::default();
    for (d, windows) in w.week.iter().enumerate() {
        for &(s, e) in windows {
            week[d].push((s, e.min(1440)));
            if e > 1440 {
                week[(d + 1) % 7].push((0, e - 1440));
            }
        }
    }
    let week = week.map(|mut day| {
        day.sort_unstable();
        let mut merged: Vec<Window> = Vec::new();
        for (s, e) in day {
            match merged.last_mut() {
                Some(last) if u32::from(last.end) >= s => last.end = last.end.max(e as u16),
                _ => merged.push(Window { start: s as u16, end: e as u16 }),
            }
        }
        merged
    });
    OpeningHours::new(w.tz, week)
}

/// Hours to milliseconds (for code that builds scenarios).
pub fn hours(h: f64) -> Millis {
    (h * HOUR as f64).round() as Millis
}
