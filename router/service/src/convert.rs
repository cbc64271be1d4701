//! The API's rules and the conversions between wire types (`vuoro.v1`) and the engine's types.
//!
//! The `check_*` functions state what the API accepts and report every problem of a request at
//! once, each with its field path; [`invalid_argument`] turns them into the one gRPC error the
//! API answers with. In the shard, [`input`] applies the same rules to each Kafka input record
//! before it becomes an engine input, so a record that bypassed the gRPC edge can never reach
//! the engine malformed: it becomes a [`ConvertError`] for the dead-letter topic instead.
//! [`decision`] renders engine outputs for the decision log, with the directory's names.

use std::collections::HashMap;
use std::fmt;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use vuoro_engine::hours::{OpeningHours, Window};
use vuoro_engine::ids::{MAX_CONTACT_SKILLS, MAX_LANGUAGES, MAX_LEVEL};
use vuoro_engine::{
    AgentConfig, AgentState, Capacity, Channel, ChannelPolicy, ContactSpec, Input, Languages, Output,
    OverflowPolicy, OverflowReason, PoolConfig, PoolKind, PoolMode, Rejection, RelaxAction, RelaxStep,
    RequeueReason, RescindReason, ReservationId, Segment, SkillLevel, Strategy, Target, TenantPolicy,
};
use vuoro_proto::v1;

use crate::directory::Directory;

/// Longest id of a contact, agent, pool or provider, in characters.
pub const MAX_ID_CHARS: usize = 128;
/// Longest reply an agent sends a customer, in characters.
pub const MAX_REPLY_CHARS: usize = 4096;
/// Longest tenant name, in characters.
pub const MAX_TENANT_CHARS: usize = 64;
/// Longest skill name, in characters.
pub const MAX_SKILL_NAME_CHARS: usize = 64;
/// Highest contact priority.
pub const MAX_PRIORITY: u32 = 255;
/// Longest wait for a preferred agent: 24 hours.
pub const MAX_PREFERRED_AGENT_WAIT_MS: u64 = 24 * 3_600_000;
/// Most attributes on a contact.
pub const MAX_ATTRIBUTES: usize = 32;
/// Longest attribute key, in characters.
pub const MAX_ATTRIBUTE_KEY_CHARS: usize = 64;
/// Longest attribute value, in bytes.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 4096;
/// Most skills of an agent or a capacity-level pool.
pub const MAX_AGENT_SKILLS: usize = 256;
/// Most relaxation steps in one channel policy.
pub const MAX_RELAXATION_STEPS: usize = 16;
/// Longest duration anywhere in a policy (thresholds, timeouts, waits, steps): 7 days.
pub const MAX_POLICY_DURATION_MS: u64 = 7 * 24 * 3_600_000;
/// Most violations one check reports; the rest are counted in a last entry.
pub const MAX_VIOLATIONS: usize = 100;

/// Units of a capacity and contacts per channel fit the engine's 16 bits.
const MAX_UNITS: u32 = u16::MAX as u32;
/// Most a relaxation step can lower required levels by (levels run 1–5).
const MAX_LEVEL_DROP: u32 = MAX_LEVEL as u32 - 1;
/// Shortest and longest plausible BCP 47 tag.
const LANGUAGE_TAG_LEN: std::ops::RangeInclusive<usize> = 2..=35;

// ----- violations --------------------------------------------------------------------------

/// One problem with a request: the field path (e.g. `contact.required_skills[2].min_level`) and
/// why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field in the request, dotted, with `[i]` for list items and `["key"]` for
    /// map entries.
    pub field: String,
    /// What is wrong, for a person to read.
    pub description: String,
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// `INVALID_ARGUMENT` with a `google.rpc.BadRequest` detail listing the violations, and a
/// message naming the first (and how many more there are). Callers pass a non-empty list.
pub fn invalid_argument(violations: &[FieldViolation]) -> Status {
    let message = match violations {
        [] => "invalid argument".to_owned(),
        [first] => format!("invalid {first}"),
        [first, rest @ ..] => format!("invalid {first} (and {} more)", rest.len()),
    };
    let details = ErrorDetails::with_bad_request(
        violations
            .iter()
            .map(|v| tonic_types::FieldViolation::new(v.field.clone(), v.description.clone()))
            .collect::<Vec<_>>(),
    );
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// Collects the violations of one request, each under a path prefix.
struct Checker {
    prefix: &'static str,
    out: Vec<FieldViolation>,
    dropped: usize,
}

impl Checker {
    fn new(prefix: &'static str) -> Self {
        Checker { prefix, out: Vec::new(), dropped: 0 }
    }

    /// Records a problem with `field` (a path under the prefix; empty for the prefix itself).
    fn bad(&mut self, field: impl fmt::Display, description: impl Into<String>) {
        if self.out.len() >= MAX_VIOLATIONS {
            self.dropped += 1;
            return;
        }
        let field = field.to_string();
        let field = match (self.prefix.is_empty(), field.is_empty()) {
            (true, _) => field,
            (false, true) => self.prefix.to_owned(),
            (false, false) => format!("{}.{field}", self.prefix),
        };
        self.out.push(FieldViolation { field, description: description.into() });
    }

    fn finish(mut self) -> Vec<FieldViolation> {
        if self.dropped > 0 {
            self.out.push(FieldViolation {
                field: self.prefix.to_owned(),
                description: format!("{} more problems not listed", self.dropped),
            });
        }
        self.out
    }

    /// A required string of 1 to `max` characters.
    fn text(&mut self, field: impl fmt::Display, value: &str, max: usize) {
        let n = value.chars().count();
        if n == 0 {
            self.bad(field, "required");
        } else if n > max {
            self.bad(field, format!("{n} characters, at most {max}"));
        }
    }

    /// A string of at most `max` characters; empty is allowed.
    fn optional_text(&mut self, field: impl fmt::Display, value: &str, max: usize) {
        let n = value.chars().count();
        if n > max {
            self.bad(field, format!("{n} characters, at most {max}"));
        }
    }

    /// A duration of at most `max` milliseconds.
    fn duration(&mut self, field: impl fmt::Display, ms: u64, max: u64) {
        if ms > max {
            self.bad(field, format!("{ms} ms, at most {max} ms"));
        }
    }

    /// A percentage, 0–100.
    fn percent(&mut self, field: impl fmt::Display, pct: u32) {
        if pct > 100 {
            self.bad(field, format!("{pct} is not a percentage (0–100)"));
        }
    }

    /// A list of skills with levels: names 1–64 characters, levels 1–5, each skill once.
    /// Only the first `limit` entries are looked at when the list is too long (that is reported
    /// by the caller).
    fn skills<'a>(
        &mut self,
        list: &str,
        level_field: &str,
        skills: impl Iterator<Item = (&'a str, u32)>,
        limit: usize,
    ) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, (name, level)) in skills.take(limit).enumerate() {
            self.text(format_args!("{list}[{i}].skill"), name, MAX_SKILL_NAME_CHARS);
            if level == 0 || level > u32::from(MAX_LEVEL) {
                self.bad(
                    format_args!("{list}[{i}].{level_field}"),
                    format!("{level} is not a level (1–{MAX_LEVEL})"),
                );
            }
            if !name.is_empty() {
                if let Some(first) = seen.get(name) {
                    self.bad(
                        format_args!("{list}[{i}].skill"),
                        format!("\"{}\" is already {list}[{first}]", clip(name)),
                    );
                } else {
                    seen.insert(name, i);
                }
            }
        }
    }

    /// A list of BCP 47 tags, at most [`MAX_LANGUAGES`].
    fn languages(&mut self, list: &str, tags: &[String]) {
        if tags.len() > usize::from(MAX_LANGUAGES) {
            self.bad(list, format!("{} languages, at most {MAX_LANGUAGES}", tags.len()));
        }
        for (i, tag) in tags.iter().take(usize::from(MAX_LANGUAGES)).enumerate() {
            self.language(format_args!("{list}[{i}]"), tag);
        }
    }

    /// One BCP 47 tag.
    fn language(&mut self, field: impl fmt::Display, tag: &str) {
        if !plausible_language_tag(tag) {
            self.bad(
                field,
                format!("\"{}\" is not a BCP 47 language tag (e.g. \"fi\" or \"pt-BR\")", clip(tag)),
            );
        }
    }

    /// A capacity. For an agent the total is at least 1, some channel has a maximum above 0, and
    /// a channel with a maximum takes no more units than the total (else none of its contacts
    /// could ever fit). A weight of 0 is allowed: that channel's contacts take no units and are
    /// limited only by its maximum. A capacity-level pool may declare anything from nothing.
    fn capacity(&mut self, field: &str, capacity: Option<&v1::Capacity>, agent: bool) {
        let Some(c) = capacity else {
            self.bad(field, "required");
            return;
        };
        if c.total > MAX_UNITS {
            self.bad(format_args!("{field}.total"), format!("{} units, at most {MAX_UNITS}", c.total));
        } else if agent && c.total == 0 {
            self.bad(format_args!("{field}.total"), "an agent needs at least 1 unit");
        }
        for (name, max, weight) in capacity_channels(c) {
            if max > MAX_UNITS {
                self.bad(format_args!("{field}.{name}_max"), format!("{max} contacts, at most {MAX_UNITS}"));
            }
            if weight > MAX_UNITS {
                self.bad(
                    format_args!("{field}.{name}_weight"),
                    format!("{weight} units, at most {MAX_UNITS}"),
                );
            } else if agent && max > 0 && weight > c.total && c.total > 0 {
                self.bad(
                    format_args!("{field}.{name}_weight"),
                    format!("a {name} contact takes {weight} units, more than the total {}, so none could ever fit", c.total),
                );
            }
        }
        if agent && capacity_channels(c).iter().all(|&(_, max, _)| max == 0) {
            self.bad(field, "every channel's maximum is 0, so the agent could take no contact");
        }
    }
}

/// The per-channel fields of a wire capacity, in the engine's channel order.
fn capacity_channels(c: &v1::Capacity) -> [(&'static str, u32, u32); Channel::COUNT] {
    [
        ("voice", c.voice_max, c.voice_weight),
        ("email", c.email_max, c.email_weight),
        ("social", c.social_max, c.social_weight),
        ("chat", c.chat_max, c.chat_weight),
    ]
}

/// Whether `tag` looks like a BCP 47 tag: ASCII letters, digits and '-', 2–35 characters, a
/// primary subtag of 2–3 letters, and further subtags of 1–8 characters.
fn plausible_language_tag(tag: &str) -> bool {
    if !LANGUAGE_TAG_LEN.contains(&tag.len()) || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return false;
    }
    let mut subtags = tag.split('-');
    let primary = subtags.next().unwrap_or_default();
    (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && subtags.all(|s| (1..=8).contains(&s.len()))
}

/// A value short enough to quote in a description.
fn clip(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}

/// The name of an enum value for descriptions, or its number when unknown.
fn channel_name(value: i32) -> String {
    v1::Channel::try_from(value).map_or_else(|_| value.to_string(), |c| c.as_str_name().to_owned())
}

// ----- checks ------------------------------------------------------------------------------

/// The problems with a contact, with paths under `contact`; empty when it is valid.
///
/// Rules: `id` 1–128 characters; `tenant` 1–64 characters; `channel` specified; `priority`
/// 0–255; `segment` a known value (unspecified is new); at most 8 required plus preferred
/// skills (the engine's `MAX_CONTACT_SKILLS`), each with a name of 1–64 characters and a
/// `min_level` of 1–5, no skill twice within `required_skills` or within `preferred_skills`;
/// `language` empty or a plausible BCP 47 tag (ASCII letters, digits and '-', 2–35
/// characters, starting with 2–3 letters); `preferred_agent` empty or 1–128 characters;
/// `preferred_agent_wait_ms` at most 24 hours, and above 0 only with a `preferred_agent`;
/// `not_before_unix_ms` not negative; at most 32 `attributes`, keys of 1–64 characters and
/// values of at most 4096 bytes.
pub fn check_contact(c: &v1::Contact) -> Vec<FieldViolation> {
    contact_violations("contact", c)
}

fn contact_violations<'a>(prefix: &'static str, c: &'a v1::Contact) -> Vec<FieldViolation> {
    let mut ck = Checker::new(prefix);
    ck.text("id", &c.id, MAX_ID_CHARS);
    ck.text("tenant", &c.tenant, MAX_TENANT_CHARS);
    match v1::Channel::try_from(c.channel) {
        Ok(v1::Channel::Unspecified) => ck.bad("channel", "required"),
        Ok(_) => {}
        Err(_) => ck.bad("channel", format!("{} is not a channel", c.channel)),
    }
    if c.priority > MAX_PRIORITY {
        ck.bad("priority", format!("{}, at most {MAX_PRIORITY}", c.priority));
    }
    if v1::Segment::try_from(c.segment).is_err() {
        ck.bad("segment", format!("{} is not a segment", c.segment));
    }
    let (required, preferred) = (c.required_skills.len(), c.preferred_skills.len());
    if required + preferred > MAX_CONTACT_SKILLS {
        let field = if required > MAX_CONTACT_SKILLS { "required_skills" } else { "preferred_skills" };
        ck.bad(
            field,
            format!(
                "{required} required and {preferred} preferred skills, at most {MAX_CONTACT_SKILLS} in all"
            ),
        );
    }
    let skills = |list: &'a [v1::SkillRequirement]| list.iter().map(|s| (s.skill.as_str(), s.min_level));
    ck.skills("required_skills", "min_level", skills(&c.required_skills), MAX_CONTACT_SKILLS);
    ck.skills("preferred_skills", "min_level", skills(&c.preferred_skills), MAX_CONTACT_SKILLS);
    if !c.language.is_empty() {
        ck.language("language", &c.language);
    }
    ck.optional_text("preferred_agent", &c.preferred_agent, MAX_ID_CHARS);
    if c.preferred_agent_wait_ms > 0 && c.preferred_agent.is_empty() {
        ck.bad("preferred_agent_wait_ms", "a wait needs a preferred_agent");
    }
    ck.duration("preferred_agent_wait_ms", c.preferred_agent_wait_ms, MAX_PREFERRED_AGENT_WAIT_MS);
    if c.not_before_unix_ms < 0 {
        ck.bad("not_before_unix_ms", format!("{} is before 1970", c.not_before_unix_ms));
    }
    if c.attributes.len() > MAX_ATTRIBUTES {
        ck.bad("attributes", format!("{} entries, at most {MAX_ATTRIBUTES}", c.attributes.len()));
    }
    // The map's order is random: sort the problems so the answer is the same every time.
    let mut attributes: Vec<(String, String)> = Vec::new();
    for (key, value) in &c.attributes {
        let keys = key.chars().count();
        let field = || format!("attributes[{:?}]", clip(key));
        if keys == 0 || keys > MAX_ATTRIBUTE_KEY_CHARS {
            attributes
                .push((field(), format!("key of {keys} characters, must be 1–{MAX_ATTRIBUTE_KEY_CHARS}")));
        }
        if value.len() > MAX_ATTRIBUTE_VALUE_BYTES {
            attributes.push((
                field(),
                format!("value of {} bytes, at most {MAX_ATTRIBUTE_VALUE_BYTES}", value.len()),
            ));
        }
    }
    attributes.sort();
    for (field, description) in attributes {
        ck.bad(field, description);
    }
    ck.finish()
}

/// The problems with an agent, with paths under `agent`; empty when it is valid.
///
/// Rules: `id` and `pool` 1–128 characters; `tenant` 1–64 characters; at most 256 skills, each
/// with a name of 1–64 characters, a `level` of 1–5, and listed once; at most 64 languages,
/// each a plausible BCP 47 tag; a `capacity` whose values fit 16 bits (0–65535), with a
/// `total` of at least 1, at least one channel with a maximum above 0, and no channel with a
/// maximum whose weight exceeds the total. A weight of 0 is allowed: that channel's contacts
/// take no units and are limited by the channel's maximum alone (the engine's rule).
pub fn check_agent(a: &v1::Agent) -> Vec<FieldViolation> {
    agent_violations("agent", a)
}

fn agent_violations(prefix: &'static str, a: &v1::Agent) -> Vec<FieldViolation> {
    let mut ck = Checker::new(prefix);
    ck.text("id", &a.id, MAX_ID_CHARS);
    ck.text("tenant", &a.tenant, MAX_TENANT_CHARS);
    ck.text("pool", &a.pool, MAX_ID_CHARS);
    profile(&mut ck, &a.skills, &a.languages);
    ck.capacity("capacity", a.capacity.as_ref(), true);
    ck.finish()
}

/// Skills and languages of an agent or a capacity-level pool.
fn profile(ck: &mut Checker, skills: &[v1::Skill], languages: &[String]) {
    if skills.len() > MAX_AGENT_SKILLS {
        ck.bad("skills", format!("{} skills, at most {MAX_AGENT_SKILLS}", skills.len()));
    }
    ck.skills("skills", "level", skills.iter().map(|s| (s.skill.as_str(), s.level)), MAX_AGENT_SKILLS);
    ck.languages("languages", languages);
}

/// The problems with a pool, with paths under `pool`; empty when it is valid.
///
/// Rules: `id` 1–128 characters; `tenant` 1–64 characters; `kind` specified; `provider` 1–128
/// characters for an outsourced pool and empty for an in-house one; `time_zone` an IANA zone
/// (e.g. "Europe/Helsinki") whenever it is given, and required when `hours` are; each window
/// with a `weekday` of 1–7 and `start_minute < end_minute <= 1440`, and no two windows of a
/// day overlapping; a capacity-level pool's skills and languages as for an agent; an
/// agent-level pool has neither (its agents do).
pub fn check_pool(p: &v1::Pool) -> Vec<FieldViolation> {
    pool_violations("pool", p)
}

fn pool_violations(prefix: &'static str, p: &v1::Pool) -> Vec<FieldViolation> {
    let mut ck = Checker::new(prefix);
    ck.text("id", &p.id, MAX_ID_CHARS);
    ck.text("tenant", &p.tenant, MAX_TENANT_CHARS);
    match v1::PoolKind::try_from(p.kind) {
        Ok(v1::PoolKind::Unspecified) => ck.bad("kind", "required"),
        Ok(v1::PoolKind::InHouse) => {
            if !p.provider.is_empty() {
                ck.bad("provider", "only an outsourced pool has a provider");
            }
        }
        Ok(v1::PoolKind::Outsourced) => ck.text("provider", &p.provider, MAX_ID_CHARS),
        Err(_) => ck.bad("kind", format!("{} is not a pool kind", p.kind)),
    }
    if p.time_zone.is_empty() {
        if !p.hours.is_empty() {
            ck.bad("time_zone", "required with opening hours");
        }
    } else if p.time_zone.parse::<chrono_tz::Tz>().is_err() {
        ck.bad(
            "time_zone",
            format!("\"{}\" is not an IANA time zone (e.g. \"Europe/Helsinki\")", clip(&p.time_zone)),
        );
    }
    // Valid windows per weekday, with their index, to find overlaps.
    let mut days: [Vec<(u32, u32, usize)>; 7] = Default::default();
    for (i, w) in p.hours.iter().enumerate() {
        let mut ok = true;
        if !(1..=7).contains(&w.weekday) {
            ck.bad(
                format_args!("hours[{i}].weekday"),
                format!("{} is not a weekday (1 = Monday … 7 = Sunday)", w.weekday),
            );
            ok = false;
        }
        if w.end_minute > 1440 {
            ck.bad(
                format_args!("hours[{i}].end_minute"),
                format!("{} is past midnight (at most 1440)", w.end_minute),
            );
            ok = false;
        } else if w.start_minute >= w.end_minute {
            ck.bad(
                format_args!("hours[{i}].start_minute"),
                format!("{} is not before end_minute {}", w.start_minute, w.end_minute),
            );
            ok = false;
        }
        if ok {
            days[w.weekday as usize - 1].push((w.start_minute, w.end_minute, i));
        }
    }
    for day in &mut days {
        day.sort_unstable();
        // Each window against the one reaching furthest among those starting before it.
        let mut furthest: Option<(u32, usize)> = None;
        for &(start, end, i) in day.iter() {
            match furthest {
                Some((reach, j)) if start < reach => {
                    let (a, b) = (i.min(j), i.max(j));
                    ck.bad(format_args!("hours[{b}]"), format!("overlaps hours[{a}] on the same weekday"));
                }
                _ => {}
            }
            if furthest.is_none_or(|(reach, _)| end > reach) {
                furthest = Some((end, i));
            }
        }
    }
    if p.capacity_level {
        profile(&mut ck, &p.skills, &p.languages);
    } else {
        if !p.skills.is_empty() {
            ck.bad("skills", "only a capacity-level pool has skills (an agent-level pool's agents do)");
        }
        if !p.languages.is_empty() {
            ck.bad("languages", "only a capacity-level pool has languages (an agent-level pool's agents do)");
        }
    }
    ck.finish()
}

/// The problems with a capacity a capacity-level pool's provider declares, with paths under
/// `capacity`; empty when it is valid. Every value fits 16 bits (0–65535); a total of 0 is
/// allowed (nobody is free).
pub fn check_pool_capacity(c: &v1::Capacity) -> Vec<FieldViolation> {
    let mut ck = Checker::new("");
    ck.capacity("capacity", Some(c), false);
    ck.finish()
}

/// The problems with a tenant's policy, with paths under `policy`; empty when it is valid.
///
/// Rules: `tenant` 1–64 characters; each channel at most once, and specified; the strategy a
/// known value; percentages 0–100; `boost_*` and `max_missed_offers` 0–255; every duration at
/// most 7 days, and `aging_step_ms`, when given, at least 1 (leave it out for strict priority);
/// at most 16 relaxation steps, each with an action: `drop_preferred_skills` or
/// `allow_outsourced` set to true, or `lower_required_levels_by` 1–4. Zero fields mean the
/// engine's default (see [`input`]).
pub fn check_policy(p: &v1::Policy) -> Vec<FieldViolation> {
    policy_violations("policy", p)
}

fn policy_violations(prefix: &'static str, p: &v1::Policy) -> Vec<FieldViolation> {
    let mut ck = Checker::new(prefix);
    ck.text("tenant", &p.tenant, MAX_TENANT_CHARS);
    for (field, boost) in
        [("boost_new", p.boost_new), ("boost_regular", p.boost_regular), ("boost_vip", p.boost_vip)]
    {
        if boost > u32::from(u8::MAX) {
            ck.bad(field, format!("{boost}, at most {}", u8::MAX));
        }
    }
    let mut seen: [Option<usize>; Channel::COUNT] = [None; Channel::COUNT];
    for (i, c) in p.channels.iter().enumerate() {
        match engine_channel(c.channel) {
            Some(channel) => {
                if let Some(first) = seen[channel.index()] {
                    ck.bad(
                        format_args!("channels[{i}].channel"),
                        format!("{} is already configured by channels[{first}]", channel_name(c.channel)),
                    );
                } else {
                    seen[channel.index()] = Some(i);
                }
            }
            None if c.channel == 0 => ck.bad(format_args!("channels[{i}].channel"), "required"),
            None => ck.bad(format_args!("channels[{i}].channel"), format!("{} is not a channel", c.channel)),
        }
        channel_policy_violations(&mut ck, i, c);
    }
    ck.finish()
}

fn channel_policy_violations(ck: &mut Checker, i: usize, c: &v1::ChannelPolicy) {
    let max = MAX_POLICY_DURATION_MS;
    ck.duration(format_args!("channels[{i}].service_level_threshold_ms"), c.service_level_threshold_ms, max);
    ck.percent(format_args!("channels[{i}].service_level_target_pct"), c.service_level_target_pct);
    if v1::Strategy::try_from(c.strategy).is_err() {
        ck.bad(format_args!("channels[{i}].strategy"), format!("{} is not a strategy", c.strategy));
    }
    match c.aging_step_ms {
        Some(0) => ck.bad(
            format_args!("channels[{i}].aging_step_ms"),
            "must be at least 1 ms (leave it out for strict priority)",
        ),
        Some(step) => ck.duration(format_args!("channels[{i}].aging_step_ms"), step, max),
        None => {}
    }
    if c.relaxation.len() > MAX_RELAXATION_STEPS {
        ck.bad(
            format_args!("channels[{i}].relaxation"),
            format!("{} steps, at most {MAX_RELAXATION_STEPS}", c.relaxation.len()),
        );
    }
    for (k, step) in c.relaxation.iter().enumerate().take(MAX_RELAXATION_STEPS) {
        ck.duration(format_args!("channels[{i}].relaxation[{k}].after_ms"), step.after_ms, max);
        use v1::relax_step::Action;
        match step.action {
            None => ck.bad(format_args!("channels[{i}].relaxation[{k}].action"), "required"),
            Some(Action::DropPreferredSkills(false)) => ck.bad(
                format_args!("channels[{i}].relaxation[{k}].drop_preferred_skills"),
                "must be true when set",
            ),
            Some(Action::AllowOutsourced(false)) => ck
                .bad(format_args!("channels[{i}].relaxation[{k}].allow_outsourced"), "must be true when set"),
            Some(Action::LowerRequiredLevelsBy(n)) if n == 0 || n > MAX_LEVEL_DROP => ck.bad(
                format_args!("channels[{i}].relaxation[{k}].lower_required_levels_by"),
                format!("{n}, must be 1–{MAX_LEVEL_DROP}"),
            ),
            Some(_) => {}
        }
    }
    if let Some(o) = &c.overflow {
        if let Some(ms) = o.after_wait_ms {
            ck.duration(format_args!("channels[{i}].overflow.after_wait_ms"), ms, max);
        }
        if let Some(ms) = o.estimated_wait_above_ms {
            ck.duration(format_args!("channels[{i}].overflow.estimated_wait_above_ms"), ms, max);
        }
        if let Some(pct) = o.inhouse_occupancy_above_pct {
            ck.percent(format_args!("channels[{i}].overflow.inhouse_occupancy_above_pct"), pct);
        }
        ck.percent(format_args!("channels[{i}].overflow.outsourced_split_pct"), o.outsourced_split_pct);
    }
    ck.duration(format_args!("channels[{i}].offer_timeout_ms"), c.offer_timeout_ms, max);
    ck.duration(format_args!("channels[{i}].wrap_up_ms"), c.wrap_up_ms, max);
    if c.max_missed_offers > u32::from(u8::MAX) {
        ck.bad(
            format_args!("channels[{i}].max_missed_offers"),
            format!("{}, at most {}", c.max_missed_offers, u8::MAX),
        );
    }
    ck.duration(format_args!("channels[{i}].default_handle_time_ms"), c.default_handle_time_ms, max);
}

/// The problems with an agent desktop's action, with paths under `action`; empty when it is
/// valid.
///
/// Rules: an action is set; `login.agent` 1–128 characters and `login.tenant` 1–64
/// characters; a not-ready `reason` of 0–65534
/// (65535 is the engine's own code for an agent set not ready after missed offers); a rating's
/// `contact` 1–128 characters and `score` 1–5.
pub fn check_agent_action(a: &v1::AgentAction) -> Vec<FieldViolation> {
    let mut ck = Checker::new("action");
    action_violations(&mut ck, a, None);
    ck.finish()
}

/// `stream_agent` is the agent an [`v1::AgentInput`] names: a login may then leave its own
/// agent and tenant empty, and must otherwise name the same agent.
fn action_violations(ck: &mut Checker, a: &v1::AgentAction, stream_agent: Option<&str>) {
    use v1::agent_action::Action;
    match &a.action {
        None => ck.bad("", "an action is required"),
        Some(Action::Login(login)) => match stream_agent {
            None => {
                ck.text("login.agent", &login.agent, MAX_ID_CHARS);
                ck.text("login.tenant", &login.tenant, MAX_TENANT_CHARS);
            }
            Some(agent) if !login.agent.is_empty() && login.agent != agent => ck.bad(
                "login.agent",
                format!("names \"{}\" but the input is for \"{}\"", clip(&login.agent), clip(agent)),
            ),
            Some(_) => {}
        },
        Some(Action::NotReady(n)) if n.reason >= u32::from(vuoro_engine::NOT_READY_MISSED_OFFERS) => ck.bad(
            "not_ready.reason",
            format!(
                "{} is out of range: reasons are 0–{} ({} is the engine's code for missed offers)",
                n.reason,
                vuoro_engine::NOT_READY_MISSED_OFFERS - 1,
                vuoro_engine::NOT_READY_MISSED_OFFERS
            ),
        ),
        Some(Action::Reply(r)) => {
            ck.text("reply.contact", &r.contact, MAX_ID_CHARS);
            ck.text("reply.text", &r.text, MAX_REPLY_CHARS);
        }
        Some(Action::Rating(r)) => {
            ck.text("rating.contact", &r.contact, MAX_ID_CHARS);
            if !(1..=5).contains(&r.score) {
                ck.bad("rating.score", format!("{} is not a score (1–5)", r.score));
            }
        }
        Some(_) => {}
    }
}

// ----- Kafka input → engine input ----------------------------------------------------------

/// Why an input record cannot become an engine input. The record goes to the dead-letter topic
/// with this reason; the same record always fails the same way, so none of these is retriable.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The record holds no input (its `input` oneof is empty, or of a newer schema).
    #[error("input: the record holds no input")]
    Empty,
    /// The input breaks the API's rules (the `check_*` functions'); paths are under the
    /// record's `input` field (`submit.priority`, `agent.action.not_ready.reason`, ...).
    #[error("{}", summary(.0))]
    Invalid(Vec<FieldViolation>),
    /// The shard already knows as many skills as the engine supports.
    #[error("{field}: cannot add skill \"{name}\", the shard already has the engine's {max} skills", max = vuoro_engine::ids::MAX_SKILLS)]
    TooManySkills {
        /// Where the skill was named.
        field: String,
        /// The skill.
        name: String,
    },
    /// The shard already knows as many languages as the engine supports.
    #[error(
        "{field}: cannot add language \"{tag}\", the shard already has the engine's {MAX_LANGUAGES} languages"
    )]
    TooManyLanguages {
        /// Where the language was named.
        field: String,
        /// The tag.
        tag: String,
    },
    /// A tenant with no policy yet (policies create tenants).
    #[error("{field}: unknown tenant \"{name}\"")]
    UnknownTenant {
        /// Where the tenant was named.
        field: &'static str,
        /// The tenant.
        name: String,
    },
    /// An agent never upserted.
    #[error("{field}: unknown agent \"{name}\"")]
    UnknownAgent {
        /// Where the agent was named.
        field: &'static str,
        /// The agent.
        name: String,
    },
    /// A pool never upserted.
    #[error("{field}: unknown pool \"{name}\"")]
    UnknownPool {
        /// Where the pool was named.
        field: &'static str,
        /// The pool.
        name: String,
    },
    /// A cancel of (or a customer's message to) a contact the shard does not hold (never
    /// submitted, or already over).
    #[error("{field}: unknown contact \"{id}\" of tenant \"{tenant}\"")]
    UnknownContact {
        /// Where the contact was named.
        field: &'static str,
        /// The contact's tenant.
        tenant: String,
        /// The contact.
        id: String,
    },
    /// A valid input that is not for the engine (a rating, an agent's reply, a customer's
    /// message): it changes no routing state; its record carries it to where it takes effect.
    #[error("not an engine input")]
    NotForEngine,
}

fn summary(violations: &[FieldViolation]) -> String {
    match violations {
        [] => "invalid input".to_owned(),
        [first] => first.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

impl ConvertError {
    /// The same error located at `field` (for the directory's errors, which know no field).
    fn at(self, field: String) -> Self {
        match self {
            ConvertError::TooManySkills { name, .. } => ConvertError::TooManySkills { field, name },
            ConvertError::TooManyLanguages { tag, .. } => ConvertError::TooManyLanguages { field, tag },
            other => other,
        }
    }
}

fn valid(violations: Vec<FieldViolation>) -> Result<(), ConvertError> {
    if violations.is_empty() { Ok(()) } else { Err(ConvertError::Invalid(violations)) }
}

fn invalid(field: &str, description: impl Into<String>) -> ConvertError {
    ConvertError::Invalid(vec![FieldViolation { field: field.to_owned(), description: description.into() }])
}

/// A Kafka input record as the engine input it means, after the API's checks.
///
/// Ids are resolved through the shard's directory: upserts intern the names they define (the
/// policy's tenant, the pool and its provider, the agent) and a submit interns its contact
/// (last, so a refused record leaves no contact behind); skills and languages are interned
/// wherever they appear. Every other name must be known already: an unknown tenant, pool,
/// agent or contact is an error, never a new id. A preferred agent the directory does not know
/// is no preference (as in the engine). A submit of an id the directory already holds still
/// gives `Enqueue`, with the same contact id: the engine refuses the duplicate itself. An
/// agent's tenant must be its pool's, and a login that names a tenant must name the agent's.
///
/// Zero or absent policy fields take the engine's defaults ([`ChannelPolicy::default`]):
/// service-level threshold and target, offer timeout, default handle time and
/// `max_missed_offers` (so the API cannot turn the missed-offer rule off); channels without an
/// entry keep the default policy; zero overflow limits are off. A `not_before_unix_ms` of 0 is
/// "now"; a time already past makes the contact routable at once (the engine's rule).
/// `received_unix_ms` is not part of the input: it is the shard's clock.
pub fn input(dir: &mut Directory, record: &v1::RouterInput) -> Result<Input, ConvertError> {
    use v1::router_input::Input as In;
    match record.input.as_ref().ok_or(ConvertError::Empty)? {
        In::Submit(c) => submit(dir, c),
        In::Cancel(r) => {
            let contact = dir.find_contact(&r.tenant, &r.id).ok_or_else(|| ConvertError::UnknownContact {
                field: "cancel",
                tenant: r.tenant.clone(),
                id: r.id.clone(),
            })?;
            Ok(Input::Cancel(contact))
        }
        In::CustomerMessage(m) => {
            let mut ck = Checker::new("customer_message");
            ck.text("tenant", &m.tenant, MAX_TENANT_CHARS);
            ck.text("contact", &m.contact, MAX_ID_CHARS);
            ck.text("id", &m.id, MAX_ID_CHARS);
            ck.text("text", &m.text, MAX_REPLY_CHARS);
            valid(ck.finish())?;
            if dir.find_contact(&m.tenant, &m.contact).is_none() {
                return Err(ConvertError::UnknownContact {
                    field: "customer_message.contact",
                    tenant: m.tenant.clone(),
                    id: m.contact.clone(),
                });
            }
            Err(ConvertError::NotForEngine)
        }
        In::CustomerRating(r) => {
            let mut ck = Checker::new("customer_rating");
            ck.text("tenant", &r.tenant, MAX_TENANT_CHARS);
            ck.text("contact", &r.contact, MAX_ID_CHARS);
            if !(1..=5).contains(&r.score) {
                ck.bad("score", format!("{} is not a score (1–5)", r.score));
            }
            valid(ck.finish())?;
            Err(ConvertError::NotForEngine)
        }
        In::UpsertAgent(a) => upsert_agent(dir, a),
        In::RemoveAgent(name) => {
            let mut ck = Checker::new("remove_agent");
            ck.text("", name, MAX_ID_CHARS);
            valid(ck.finish())?;
            let agent = dir
                .find_agent(name)
                .ok_or_else(|| ConvertError::UnknownAgent { field: "remove_agent", name: name.clone() })?;
            Ok(Input::RemoveAgent(agent))
        }
        In::Agent(a) => agent_input(dir, a),
        In::UpsertPool(p) => upsert_pool(dir, p),
        In::PoolCapacity(pc) => {
            let mut ck = Checker::new("pool_capacity");
            ck.text("pool", &pc.pool, MAX_ID_CHARS);
            ck.capacity("capacity", pc.capacity.as_ref(), false);
            valid(ck.finish())?;
            let pool = dir.find_pool(&pc.pool).ok_or_else(|| ConvertError::UnknownPool {
                field: "pool_capacity.pool",
                name: pc.pool.clone(),
            })?;
            Ok(Input::PoolCapacity(pool, capacity(&pc.capacity.unwrap_or_default())))
        }
        In::UpsertPolicy(p) => upsert_policy(dir, p),
    }
}

fn submit(dir: &mut Directory, c: &v1::Contact) -> Result<Input, ConvertError> {
    valid(contact_violations("submit", c))?;
    let tenant = dir
        .find_tenant(&c.tenant)
        .ok_or_else(|| ConvertError::UnknownTenant { field: "submit.tenant", name: c.tenant.clone() })?;
    let channel = engine_channel(c.channel).ok_or_else(|| invalid("submit.channel", "required"))?;
    let mut spec = ContactSpec::new(vuoro_engine::ContactId(0), tenant, channel);
    spec.priority = u8::try_from(c.priority).unwrap_or(u8::MAX);
    spec.segment = match v1::Segment::try_from(c.segment) {
        Ok(v1::Segment::Regular) => Segment::Regular,
        Ok(v1::Segment::Vip) => Segment::Vip,
        _ => Segment::New,
    };
    for (i, s) in c.required_skills.iter().enumerate() {
        let skill = dir.skill(&s.skill).map_err(|e| e.at(format!("submit.required_skills[{i}].skill")))?;
        spec.required
            .push(SkillLevel { skill, level: level(s.min_level) })
            .ok_or_else(|| invalid("submit.required_skills", "too many skills"))?;
    }
    for (i, s) in c.preferred_skills.iter().enumerate() {
        let skill = dir.skill(&s.skill).map_err(|e| e.at(format!("submit.preferred_skills[{i}].skill")))?;
        spec.preferred
            .push(SkillLevel { skill, level: level(s.min_level) })
            .ok_or_else(|| invalid("submit.preferred_skills", "too many skills"))?;
    }
    if !c.language.is_empty() {
        spec.language = Some(dir.language(&c.language).map_err(|e| e.at("submit.language".into()))?);
    }
    if !c.preferred_agent.is_empty() {
        spec.preferred_agent = dir.find_agent(&c.preferred_agent).map(|a| (a, c.preferred_agent_wait_ms));
    }
    if c.not_before_unix_ms > 0 {
        spec.not_before = Some(c.not_before_unix_ms.unsigned_abs());
    }
    spec.id = dir.contact(&c.tenant, &c.id);
    Ok(Input::Enqueue(spec))
}

fn upsert_agent(dir: &mut Directory, a: &v1::Agent) -> Result<Input, ConvertError> {
    valid(agent_violations("upsert_agent", a))?;
    let tenant = dir.find_tenant(&a.tenant).ok_or_else(|| ConvertError::UnknownTenant {
        field: "upsert_agent.tenant",
        name: a.tenant.clone(),
    })?;
    let pool = dir
        .find_pool(&a.pool)
        .ok_or_else(|| ConvertError::UnknownPool { field: "upsert_agent.pool", name: a.pool.clone() })?;
    if let Some(pool_tenant) = dir.pool_tenant(pool)
        && pool_tenant != tenant
    {
        let name = dir.tenant_name(pool_tenant).unwrap_or_default();
        return Err(invalid(
            "upsert_agent.tenant",
            format!("pool \"{}\" belongs to tenant \"{name}\"", a.pool),
        ));
    }
    let skills = skill_levels(dir, "upsert_agent", &a.skills)?;
    let languages = language_set(dir, "upsert_agent", &a.languages)?;
    let capacity = capacity(&a.capacity.unwrap_or_default());
    let id = dir.agent(&a.id);
    dir.set_agent_tenant(id, tenant);
    Ok(Input::UpsertAgent(AgentConfig { id, pool, skills, languages, capacity }))
}

fn agent_input(dir: &mut Directory, a: &v1::AgentInput) -> Result<Input, ConvertError> {
    use v1::agent_action::Action;
    let mut ck = Checker::new("agent");
    ck.text("agent", &a.agent, MAX_ID_CHARS);
    let mut action_ck = Checker::new("agent.action");
    match &a.action {
        Some(action) => action_violations(&mut action_ck, action, Some(&a.agent)),
        None => ck.bad("action", "required"),
    }
    let mut violations = ck.finish();
    violations.extend(action_ck.finish());
    valid(violations)?;
    let action = a
        .action
        .as_ref()
        .and_then(|x| x.action.as_ref())
        .ok_or_else(|| invalid("agent.action", "required"))?;
    let agent = || {
        dir.find_agent(&a.agent)
            .ok_or_else(|| ConvertError::UnknownAgent { field: "agent.agent", name: a.agent.clone() })
    };
    Ok(match action {
        Action::Login(login) => {
            let id = agent()?;
            if let Some(tenant) = dir.agent_tenant(id).and_then(|t| dir.tenant_name(t))
                && !login.tenant.is_empty()
                && login.tenant != tenant
            {
                return Err(invalid(
                    "agent.action.login.tenant",
                    format!("agent \"{}\" belongs to tenant \"{tenant}\"", a.agent),
                ));
            }
            Input::LogIn(id)
        }
        Action::Ready(_) => Input::Ready(agent()?),
        Action::NotReady(n) => Input::NotReady(
            agent()?,
            u16::try_from(n.reason).map_err(|_| invalid("agent.action.not_ready.reason", "out of range"))?,
        ),
        Action::Logout(_) => Input::LogOut(agent()?),
        Action::Accept(x) => Input::Accept(ReservationId(x.reservation)),
        Action::Reject(x) => Input::Reject(ReservationId(x.reservation)),
        Action::Complete(x) => Input::Complete(ReservationId(x.reservation)),
        Action::WrapUpDone(x) => Input::WrapUpDone(ReservationId(x.reservation)),
        Action::Rating(_) | Action::Reply(_) => return Err(ConvertError::NotForEngine),
    })
}

fn upsert_pool(dir: &mut Directory, p: &v1::Pool) -> Result<Input, ConvertError> {
    valid(pool_violations("upsert_pool", p))?;
    let tenant = dir
        .find_tenant(&p.tenant)
        .ok_or_else(|| ConvertError::UnknownTenant { field: "upsert_pool.tenant", name: p.tenant.clone() })?;
    let hours = if p.hours.is_empty() {
        None
    } else {
        let tz = p
            .time_zone
            .parse::<chrono_tz::Tz>()
            .map_err(|_| invalid("upsert_pool.time_zone", "not an IANA time zone"))?;
        let mut week: [Vec<Window>; 7] = Default::default();
        for w in &p.hours {
            // Checked: weekday 1–7, minutes within 0..=1440.
            let day = week
                .get_mut((w.weekday as usize).wrapping_sub(1))
                .ok_or_else(|| invalid("upsert_pool.hours", "bad weekday"))?;
            let minute = |m: u32| u16::try_from(m).unwrap_or(u16::MAX);
            day.push(Window { start: minute(w.start_minute), end: minute(w.end_minute) });
        }
        for day in &mut week {
            day.sort_unstable_by_key(|w| w.start);
        }
        Some(OpeningHours::new(tz, week).map_err(|e| invalid("upsert_pool.hours", e.to_string()))?)
    };
    let mode = if p.capacity_level {
        PoolMode::CapacityLevel {
            skills: skill_levels(dir, "upsert_pool", &p.skills)?,
            languages: language_set(dir, "upsert_pool", &p.languages)?,
        }
    } else {
        PoolMode::AgentLevel
    };
    let kind = match v1::PoolKind::try_from(p.kind) {
        Ok(v1::PoolKind::Outsourced) => PoolKind::Outsourced(dir.provider(&p.provider)),
        _ => PoolKind::InHouse,
    };
    let id = dir.pool(&p.id);
    dir.set_pool_tenant(id, tenant);
    Ok(Input::UpsertPool(PoolConfig {
        id,
        tenant,
        kind,
        mode,
        hours,
        max_concurrent: (p.max_concurrent > 0).then_some(p.max_concurrent),
    }))
}

fn upsert_policy(dir: &mut Directory, p: &v1::Policy) -> Result<Input, ConvertError> {
    valid(policy_violations("upsert_policy", p))?;
    let boost = |b: u32| u8::try_from(b).unwrap_or(u8::MAX);
    let mut policy = TenantPolicy {
        tenant: dir.tenant(&p.tenant),
        channels: Default::default(),
        segment_boost: [boost(p.boost_new), boost(p.boost_regular), boost(p.boost_vip)],
    };
    for c in &p.channels {
        let channel =
            engine_channel(c.channel).ok_or_else(|| invalid("upsert_policy.channels", "no channel"))?;
        policy.channels[channel.index()] = channel_policy(c);
    }
    Ok(Input::UpsertPolicy(policy))
}

/// A checked wire channel policy; zero fields take the engine's defaults.
fn channel_policy(c: &v1::ChannelPolicy) -> ChannelPolicy {
    let default = ChannelPolicy::default();
    let or_default = |value: u64, default: u64| if value == 0 { default } else { value };
    let nonzero = |value: Option<u64>| value.filter(|&v| v > 0);
    let relaxation = c
        .relaxation
        .iter()
        .filter_map(|step| {
            use v1::relax_step::Action;
            let action = match step.action? {
                Action::DropPreferredSkills(_) => RelaxAction::DropPreferredSkills,
                Action::LowerRequiredLevelsBy(n) => RelaxAction::LowerRequiredLevels(level(n)),
                Action::AllowOutsourced(_) => RelaxAction::AllowOutsourced,
            };
            Some(RelaxStep { after: step.after_ms, action })
        })
        .collect();
    let overflow = c.overflow.map_or_else(OverflowPolicy::default, |o| OverflowPolicy {
        after_wait: nonzero(o.after_wait_ms),
        estimated_wait_above: nonzero(o.estimated_wait_above_ms),
        inhouse_occupancy_above_pct: o.inhouse_occupancy_above_pct.filter(|&p| p > 0).map(percent),
        when_inhouse_closed: o.when_inhouse_closed,
        outsourced_split_pct: percent(o.outsourced_split_pct),
    });
    ChannelPolicy {
        service_level_threshold: or_default(c.service_level_threshold_ms, default.service_level_threshold),
        service_level_target_pct: if c.service_level_target_pct == 0 {
            default.service_level_target_pct
        } else {
            percent(c.service_level_target_pct)
        },
        strategy: match v1::Strategy::try_from(c.strategy) {
            Ok(v1::Strategy::LeastOccupied) => Strategy::LeastOccupied,
            Ok(v1::Strategy::BestProficiency) => Strategy::BestProficiency,
            Ok(v1::Strategy::RoundRobin) => Strategy::RoundRobin,
            _ => Strategy::LongestIdle,
        },
        aging_step: c.aging_step_ms,
        relaxation,
        overflow,
        offer_timeout: or_default(c.offer_timeout_ms, default.offer_timeout),
        wrap_up: c.wrap_up_ms,
        max_missed_offers: if c.max_missed_offers == 0 {
            default.max_missed_offers
        } else {
            u8::try_from(c.max_missed_offers).unwrap_or(u8::MAX)
        },
        default_handle_time: or_default(c.default_handle_time_ms, default.default_handle_time),
    }
}

/// A checked level (1–5) or level drop (1–4); anything larger saturates and the engine refuses it.
fn level(value: u32) -> u8 {
    u8::try_from(value).unwrap_or(u8::MAX)
}

/// A checked percentage.
fn percent(value: u32) -> u8 {
    u8::try_from(value.min(100)).unwrap_or(100)
}

/// The engine channel of a wire channel value; `None` when unspecified or unknown.
pub fn engine_channel(value: i32) -> Option<Channel> {
    match v1::Channel::try_from(value).ok()? {
        v1::Channel::Unspecified => None,
        v1::Channel::Voice => Some(Channel::Voice),
        v1::Channel::Email => Some(Channel::Email),
        v1::Channel::Social => Some(Channel::Social),
        v1::Channel::Chat => Some(Channel::Chat),
    }
}

fn skill_levels(
    dir: &mut Directory,
    prefix: &str,
    skills: &[v1::Skill],
) -> Result<Vec<SkillLevel>, ConvertError> {
    skills
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let skill = dir.skill(&s.skill).map_err(|e| e.at(format!("{prefix}.skills[{i}].skill")))?;
            Ok(SkillLevel { skill, level: level(s.level) })
        })
        .collect()
}

fn language_set(dir: &mut Directory, prefix: &str, tags: &[String]) -> Result<Languages, ConvertError> {
    let mut set = Languages::default();
    for (i, tag) in tags.iter().enumerate() {
        let id = dir.language(tag).map_err(|e| e.at(format!("{prefix}.languages[{i}]")))?;
        set.0 |= 1 << id.0;
    }
    Ok(set)
}

/// A checked wire capacity (every value fits 16 bits).
fn capacity(c: &v1::Capacity) -> Capacity {
    let units = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
    let channels = capacity_channels(c);
    Capacity {
        per_channel: channels.map(|(_, max, _)| units(max)),
        weight: channels.map(|(_, _, weight)| units(weight)),
        total: units(c.total),
    }
}

// ----- engine output → decision ------------------------------------------------------------

/// An engine output in wire form, for the decision log.
///
/// Names come from the directory; an id it does not know renders as its number. An offer
/// carries `offered_contact` (the payload the shard kept for the contact) or, when there is
/// none, a contact with just its id and tenant. Reasons are stable snake_case codes
/// (`rejected`, `expired`, `agent_left`, `pool_shrank`, `abandoned`, `waited_too_long`,
/// `estimated_wait`, `occupancy`, `inhouse_closed`, `split`, `relaxation`); a refusal's reason
/// is the engine rejection's text and its subject the name of the contact, agent, pool or
/// tenant it names (a reservation's number; empty when it names none). `Relaxed.step` is what
/// widened: 0 the preferred-agent wait ended, 1 preferred skills dropped, 2 required levels
/// lowered, 3 outsourced pools allowed. A completion's `waited_ms` is 0 (the engine reports the
/// wait on acceptance).
pub fn decision(dir: &Directory, output: &Output, offered_contact: Option<&v1::Contact>) -> v1::Decision {
    use v1::decision::Decision as D;
    let contact = |id| contact_id(dir, id);
    let decision = match *output {
        Output::Offered { reservation, contact: c, target: t, pool, deadline } => D::Offered(v1::Offer {
            reservation: reservation.0,
            contact: Some(offered_contact.cloned().unwrap_or_else(|| {
                let (tenant, id) = match dir.contact_name(c) {
                    Some((tenant, id)) => (tenant.to_owned(), id.to_owned()),
                    None => (String::new(), c.to_string()),
                };
                v1::Contact { id, tenant, ..Default::default() }
            })),
            target: target(dir, t),
            pool: pool_name(dir, pool),
            deadline_unix_ms: unix_ms(deadline),
        }),
        Output::OfferRescinded { reservation, contact: c, target: t, reason } => {
            D::Rescinded(v1::Rescinded {
                reservation: reservation.0,
                contact: contact(c),
                target: target(dir, t),
                reason: match reason {
                    RescindReason::Abandoned => "abandoned",
                    RescindReason::AgentLeft => "agent_left",
                    RescindReason::PoolShrank => "pool_shrank",
                }
                .to_owned(),
            })
        }
        Output::Accepted { reservation, contact: c, target: t, waited } => D::Accepted(v1::Accepted {
            reservation: reservation.0,
            contact: contact(c),
            target: target(dir, t),
            waited_ms: waited,
        }),
        Output::Requeued { contact: c, reason } => D::Requeued(v1::Requeued {
            contact: contact(c),
            reason: match reason {
                RequeueReason::Rejected => "rejected",
                RequeueReason::Expired => "expired",
                RequeueReason::AgentLeft => "agent_left",
                RequeueReason::PoolShrank => "pool_shrank",
            }
            .to_owned(),
        }),
        Output::Scheduled { contact: c, at } => {
            D::Scheduled(v1::Scheduled { contact: contact(c), routable_at_unix_ms: unix_ms(at) })
        }
        Output::Relaxed { contact: c, action } => D::Relaxed(v1::Relaxed {
            contact: contact(c),
            step: match action {
                None => 0,
                Some(RelaxAction::DropPreferredSkills) => 1,
                Some(RelaxAction::LowerRequiredLevels(_)) => 2,
                Some(RelaxAction::AllowOutsourced) => 3,
            },
        }),
        Output::Overflowed { contact: c, reason } => D::Overflowed(v1::Overflow {
            contact: contact(c),
            reason: match reason {
                OverflowReason::WaitedTooLong => "waited_too_long",
                OverflowReason::EstimatedWait => "estimated_wait",
                OverflowReason::Occupancy => "occupancy",
                OverflowReason::InHouseClosed => "inhouse_closed",
                OverflowReason::Split => "split",
                OverflowReason::Relaxation => "relaxation",
            }
            .to_owned(),
        }),
        Output::QueueStatus { contact: c, position, estimated_wait } => {
            D::QueueStatus(v1::QueueStatusChange {
                contact: contact(c),
                position,
                estimated_wait_ms: estimated_wait,
            })
        }
        Output::Abandoned { contact: c, waited } => {
            D::Abandoned(v1::Finished { contact: contact(c), waited_ms: waited })
        }
        Output::Completed { contact: c, .. } => {
            D::Completed(v1::Finished { contact: contact(c), waited_ms: 0 })
        }
        Output::AgentStateChanged { agent, state } => D::AgentState(v1::AgentStateChange {
            agent: agent_name(dir, agent),
            state: agent_state(state) as i32,
        }),
        Output::Rejected(rejection) => D::Refused(v1::Refusal {
            subject: match rejection {
                Rejection::UnknownTenant(t) => {
                    dir.tenant_name(t).map_or_else(|| t.to_string(), str::to_owned)
                }
                Rejection::UnknownPool(p) => pool_name(dir, p),
                Rejection::UnknownAgent(a) | Rejection::AgentOffline(a) | Rejection::AgentHasWork(a) => {
                    agent_name(dir, a)
                }
                Rejection::UnknownContact(c)
                | Rejection::DuplicateContact(c)
                | Rejection::ContactInService(c) => contact(c),
                Rejection::UnknownReservation(r) | Rejection::WrongReservationState(r) => r.to_string(),
                Rejection::InUse
                | Rejection::InvalidSkill
                | Rejection::InvalidCapacity
                | Rejection::InvalidPool => String::new(),
            },
            reason: rejection.to_string(),
        }),
    };
    v1::Decision { tenant: output_tenant(dir, output, offered_contact), decision: Some(decision) }
}

/// The tenant an output concerns: its contact's, agent's or pool's, or the tenant a refusal
/// names; empty when the output names none the directory knows.
fn output_tenant(dir: &Directory, output: &Output, offered_contact: Option<&v1::Contact>) -> String {
    let name = |t: Option<vuoro_engine::TenantId>| t.and_then(|t| dir.tenant_name(t)).map(str::to_owned);
    let contact = |c| dir.contact_name(c).map(|(tenant, _)| tenant.to_owned());
    let agent = |a| name(dir.agent_tenant(a));
    let pool = |p| name(dir.pool_tenant(p));
    let tenant = match *output {
        Output::Offered { contact: c, pool: p, .. } => {
            contact(c).or_else(|| offered_contact.map(|o| o.tenant.clone())).or_else(|| pool(p))
        }
        Output::OfferRescinded { contact: c, .. }
        | Output::Accepted { contact: c, .. }
        | Output::Requeued { contact: c, .. }
        | Output::Scheduled { contact: c, .. }
        | Output::Relaxed { contact: c, .. }
        | Output::Overflowed { contact: c, .. }
        | Output::QueueStatus { contact: c, .. }
        | Output::Abandoned { contact: c, .. }
        | Output::Completed { contact: c, .. } => contact(c),
        Output::AgentStateChanged { agent: a, .. } => agent(a),
        Output::Rejected(rejection) => match rejection {
            Rejection::UnknownTenant(t) => name(Some(t)),
            Rejection::UnknownPool(p) => pool(p),
            Rejection::UnknownAgent(a) | Rejection::AgentOffline(a) | Rejection::AgentHasWork(a) => agent(a),
            Rejection::UnknownContact(c)
            | Rejection::DuplicateContact(c)
            | Rejection::ContactInService(c) => contact(c),
            Rejection::UnknownReservation(_)
            | Rejection::WrongReservationState(_)
            | Rejection::InUse
            | Rejection::InvalidSkill
            | Rejection::InvalidCapacity
            | Rejection::InvalidPool => None,
        },
    };
    tenant.unwrap_or_default()
}

/// A queue's statistics in wire form. Counts are totals since the engine started; the service
/// level (a fraction, 0–1), average speed of answer and abandonment rate (a fraction) are over
/// the sliding window, and NaN when the window holds nothing to measure them by (an idle queue
/// has no service level, rather than one of 0).
pub fn queue_stats(tenant: &str, q: &vuoro_engine::stats::QueueStats) -> v1::QueueStats {
    v1::QueueStats {
        tenant: tenant.to_owned(),
        channel: wire_channel(q.channel) as i32,
        waiting: q.waiting,
        oldest_wait_ms: q.oldest_wait,
        service_level: q.window.service_level.unwrap_or(f64::NAN),
        average_speed_of_answer_ms: q.window.average_speed_of_answer.map_or(f64::NAN, |ms| ms as f64),
        abandonment_rate: q.window.abandonment_rate.unwrap_or(f64::NAN),
        received: q.received_total,
        answered: q.answered_total,
        abandoned: q.abandoned_total,
        overflowed: q.overflowed_total,
    }
}

/// The wire form of an engine channel.
pub fn wire_channel(channel: Channel) -> v1::Channel {
    match channel {
        Channel::Voice => v1::Channel::Voice,
        Channel::Email => v1::Channel::Email,
        Channel::Social => v1::Channel::Social,
        Channel::Chat => v1::Channel::Chat,
    }
}

/// The wire form of an engine agent state.
pub fn agent_state(state: AgentState) -> v1::AgentState {
    match state {
        AgentState::Offline => v1::AgentState::Offline,
        AgentState::Ready => v1::AgentState::Ready,
        AgentState::NotReady(_) => v1::AgentState::NotReady,
        AgentState::Busy => v1::AgentState::Busy,
        AgentState::WrapUp => v1::AgentState::WrapUp,
    }
}

fn contact_id(dir: &Directory, id: vuoro_engine::ContactId) -> String {
    dir.contact_name(id).map_or_else(|| id.to_string(), |(_, name)| name.to_owned())
}

fn agent_name(dir: &Directory, id: vuoro_engine::AgentId) -> String {
    dir.agent_name(id).map_or_else(|| id.to_string(), str::to_owned)
}

fn pool_name(dir: &Directory, id: vuoro_engine::PoolId) -> String {
    dir.pool_name(id).map_or_else(|| id.to_string(), str::to_owned)
}

fn target(dir: &Directory, target: Target) -> String {
    match target {
        Target::Agent(a) => agent_name(dir, a),
        Target::Pool(p) => pool_name(dir, p),
    }
}

fn unix_ms(ms: vuoro_engine::Millis) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::StatusExt;
    use vuoro_engine::{AgentId, ContactId, Engine, EngineConfig, LanguageId, PoolId, SkillId, TenantId};

    fn fields(violations: &[FieldViolation]) -> Vec<&str> {
        violations.iter().map(|v| v.field.as_str()).collect()
    }

    fn skill(name: &str, min_level: u32) -> v1::SkillRequirement {
        v1::SkillRequirement { skill: name.into(), min_level }
    }

    fn contact() -> v1::Contact {
        v1::Contact {
            id: "c-1".into(),
            tenant: "acme".into(),
            channel: v1::Channel::Chat as i32,
            priority: 10,
            segment: v1::Segment::Vip as i32,
            required_skills: vec![skill("billing", 3), skill("finnish", 2)],
            preferred_skills: vec![skill("returns", 1)],
            language: "pt-BR".into(),
            ..Default::default()
        }
    }

    fn capacity(total: u32) -> v1::Capacity {
        v1::Capacity {
            total,
            voice_max: 1,
            voice_weight: total,
            email_max: 2,
            email_weight: 1,
            social_max: 0,
            social_weight: 0,
            chat_max: 3,
            chat_weight: 2,
        }
    }

    fn agent() -> v1::Agent {
        v1::Agent {
            id: "alice".into(),
            tenant: "acme".into(),
            pool: "helsinki".into(),
            skills: vec![v1::Skill { skill: "billing".into(), level: 4 }],
            languages: vec!["fi".into(), "PT-br".into()],
            capacity: Some(capacity(6)),
        }
    }

    fn pool() -> v1::Pool {
        v1::Pool {
            id: "helsinki".into(),
            tenant: "acme".into(),
            kind: v1::PoolKind::InHouse as i32,
            time_zone: "Europe/Helsinki".into(),
            hours: vec![v1::OpeningWindow { weekday: 1, start_minute: 8 * 60, end_minute: 16 * 60 }],
            ..Default::default()
        }
    }

    fn record(input: v1::router_input::Input) -> v1::RouterInput {
        v1::RouterInput { received_unix_ms: 0, input: Some(input) }
    }

    fn action(agent: &str, action: v1::agent_action::Action) -> v1::RouterInput {
        record(v1::router_input::Input::Agent(v1::AgentInput {
            agent: agent.into(),
            action: Some(v1::AgentAction { action: Some(action) }),
        }))
    }

    fn policy(tenant: &str) -> v1::RouterInput {
        record(v1::router_input::Input::UpsertPolicy(v1::Policy {
            tenant: tenant.into(),
            ..Default::default()
        }))
    }

    /// A directory that has seen the acme policy, the helsinki pool and agent alice.
    fn directory() -> Directory {
        let mut dir = Directory::new();
        input(&mut dir, &policy("acme")).unwrap();
        input(&mut dir, &record(v1::router_input::Input::UpsertPool(pool()))).unwrap();
        input(&mut dir, &record(v1::router_input::Input::UpsertAgent(agent()))).unwrap();
        dir
    }

    #[test]
    fn a_valid_contact_has_no_violations() {
        assert_eq!(check_contact(&contact()), vec![]);
    }

    #[test]
    fn a_contact_reports_every_problem_with_its_path() {
        let mut c = contact();
        c.channel = v1::Channel::Unspecified as i32;
        c.required_skills.push(skill("returns", 9));
        c.language = "portuguese!".into();
        let violations = check_contact(&c);
        assert_eq!(
            fields(&violations),
            ["contact.channel", "contact.required_skills[2].min_level", "contact.language"],
            "{violations:#?}"
        );
        assert!(violations[1].description.contains('9'), "{}", violations[1]);
    }

    #[test]
    fn contact_limits() {
        let mut c = contact();
        c.id = String::new();
        c.tenant = "t".repeat(65);
        c.priority = 256;
        c.required_skills = (0..6).map(|i| skill(&format!("s{i}"), 1)).collect();
        c.required_skills.push(skill("s0", 2));
        c.preferred_skills = vec![skill("p", 0), skill("", 1)];
        c.preferred_agent_wait_ms = 1_000;
        c.not_before_unix_ms = -1;
        c.attributes = (0..33).map(|i| (format!("k{i}"), String::new())).collect();
        c.attributes.insert(String::new(), "x".repeat(4097));
        let violations = check_contact(&c);
        assert_eq!(
            fields(&violations),
            [
                "contact.id",
                "contact.tenant",
                "contact.priority",
                "contact.preferred_skills",
                "contact.required_skills[6].skill",
                "contact.preferred_skills[0].min_level",
                "contact.preferred_skills[1].skill",
                "contact.preferred_agent_wait_ms",
                "contact.not_before_unix_ms",
                "contact.attributes",
                "contact.attributes[\"\"]",
                "contact.attributes[\"\"]",
            ],
            "{violations:#?}"
        );
        // The boundaries themselves are valid.
        let mut c = contact();
        c.id = "i".repeat(128);
        c.tenant = "ä".repeat(64);
        c.priority = 255;
        c.preferred_agent = "bob".into();
        c.preferred_agent_wait_ms = MAX_PREFERRED_AGENT_WAIT_MS;
        c.attributes = (0..32).map(|i| (format!("k{i}"), "v".repeat(4096))).collect();
        assert_eq!(check_contact(&c), vec![]);
    }

    #[test]
    fn language_tags() {
        for good in ["fi", "pt-BR", "zh-Hant-TW", "sr-Latn-RS", "yue", "es-419"] {
            assert!(plausible_language_tag(good), "{good}");
        }
        for bad in ["", "f", "finnish", "pt_BR", "pt-", "-pt", "pt--BR", "1a", "pt-abcdefghi", "fi ", "ü-x"]
        {
            assert!(!plausible_language_tag(bad), "{bad}");
        }
    }

    #[test]
    fn invalid_argument_carries_a_bad_request_that_decodes_back() {
        let mut c = contact();
        c.channel = 0;
        c.priority = 300;
        let violations = check_contact(&c);
        let status = invalid_argument(&violations);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().starts_with("invalid contact.channel: required"), "{}", status.message());
        assert!(status.message().ends_with("(and 1 more)"), "{}", status.message());
        let details = status.get_error_details();
        let bad_request = details.bad_request().expect("a BadRequest detail");
        let decoded: Vec<(&str, &str)> =
            bad_request.field_violations.iter().map(|v| (v.field.as_str(), v.description.as_str())).collect();
        let sent: Vec<(&str, &str)> =
            violations.iter().map(|v| (v.field.as_str(), v.description.as_str())).collect();
        assert_eq!(decoded, sent);
        assert_eq!(decoded[1].0, "contact.priority");
    }

    #[test]
    fn agent_checks() {
        assert_eq!(check_agent(&agent()), vec![]);
        let mut a = agent();
        a.pool = String::new();
        a.skills.push(v1::Skill { skill: "billing".into(), level: 6 });
        a.languages.push("xx_YY".into());
        a.capacity = Some(v1::Capacity { total: 0, chat_max: 70_000, ..Default::default() });
        assert_eq!(
            fields(&check_agent(&a)),
            [
                "agent.pool",
                "agent.skills[1].level",
                "agent.skills[1].skill",
                "agent.languages[2]",
                "agent.capacity.total",
                "agent.capacity.chat_max",
            ]
        );
        // A channel whose one contact takes more than the total could never be offered; a
        // capacity with no channel takes nothing.
        a = agent();
        a.capacity = Some(v1::Capacity { total: 2, voice_max: 1, voice_weight: 3, ..Default::default() });
        assert_eq!(fields(&check_agent(&a)), ["agent.capacity.voice_weight"]);
        a.capacity = Some(v1::Capacity { total: 2, ..Default::default() });
        assert_eq!(fields(&check_agent(&a)), ["agent.capacity"]);
        a.capacity = None;
        assert_eq!(fields(&check_agent(&a)), ["agent.capacity"]);
        // Weight 0: the channel's contacts take no units, only its maximum limits them.
        a.capacity = Some(v1::Capacity { total: 1, email_max: 5, ..Default::default() });
        assert_eq!(check_agent(&a), vec![]);
    }

    #[test]
    fn pool_hours_with_a_bad_time_zone_or_windows_are_rejected() {
        assert_eq!(check_pool(&pool()), vec![]);
        let mut p = pool();
        p.time_zone = "Europe/Helsingfors".into();
        let violations = check_pool(&p);
        assert_eq!(fields(&violations), ["pool.time_zone"]);
        assert!(violations[0].description.contains("IANA"), "{}", violations[0]);

        p.time_zone = String::new();
        assert_eq!(fields(&check_pool(&p)), ["pool.time_zone"], "hours need a time zone");
        p.hours.clear();
        assert_eq!(check_pool(&p), vec![], "no hours: always open, no time zone needed");

        let mut p = pool();
        p.hours = vec![
            v1::OpeningWindow { weekday: 8, start_minute: 0, end_minute: 60 },
            v1::OpeningWindow { weekday: 2, start_minute: 600, end_minute: 600 },
            v1::OpeningWindow { weekday: 3, start_minute: 0, end_minute: 1441 },
            v1::OpeningWindow { weekday: 4, start_minute: 600, end_minute: 1440 },
            v1::OpeningWindow { weekday: 4, start_minute: 0, end_minute: 601 },
            v1::OpeningWindow { weekday: 5, start_minute: 0, end_minute: 600 },
            v1::OpeningWindow { weekday: 5, start_minute: 600, end_minute: 1440 },
            v1::OpeningWindow { weekday: 6, start_minute: 0, end_minute: 600 },
            v1::OpeningWindow { weekday: 6, start_minute: 100, end_minute: 200 },
            v1::OpeningWindow { weekday: 6, start_minute: 300, end_minute: 400 },
        ];
        assert_eq!(
            fields(&check_pool(&p)),
            [
                "pool.hours[0].weekday",
                "pool.hours[1].start_minute",
                "pool.hours[2].end_minute",
                "pool.hours[4]",
                "pool.hours[8]",
                "pool.hours[9]",
            ]
        );
    }

    #[test]
    fn pool_kind_provider_and_mode() {
        let mut p = pool();
        p.kind = 0;
        p.provider = "bpo".into();
        p.skills = vec![v1::Skill { skill: "billing".into(), level: 3 }];
        assert_eq!(fields(&check_pool(&p)), ["pool.kind", "pool.skills"]);
        p.kind = v1::PoolKind::InHouse as i32;
        p.capacity_level = true;
        assert_eq!(fields(&check_pool(&p)), ["pool.provider"]);
        p.kind = v1::PoolKind::Outsourced as i32;
        assert_eq!(check_pool(&p), vec![]);
        p.provider = String::new();
        p.skills[0].level = 0;
        assert_eq!(fields(&check_pool(&p)), ["pool.provider", "pool.skills[0].level"]);
    }

    #[test]
    fn policy_checks() {
        let mut p = v1::Policy { tenant: "acme".into(), boost_vip: 256, ..Default::default() };
        let email = v1::ChannelPolicy {
            channel: v1::Channel::Email as i32,
            service_level_target_pct: 101,
            aging_step_ms: Some(0),
            relaxation: vec![
                v1::RelaxStep { after_ms: 1_000, action: None },
                v1::RelaxStep {
                    after_ms: 2_000,
                    action: Some(v1::relax_step::Action::LowerRequiredLevelsBy(5)),
                },
                v1::RelaxStep {
                    after_ms: 3_000,
                    action: Some(v1::relax_step::Action::AllowOutsourced(true)),
                },
            ],
            overflow: Some(v1::OverflowPolicy { outsourced_split_pct: 150, ..Default::default() }),
            offer_timeout_ms: MAX_POLICY_DURATION_MS + 1,
            ..Default::default()
        };
        p.channels = vec![email.clone(), v1::ChannelPolicy::default(), email];
        let violations = check_policy(&p);
        let mut expected = vec!["policy.boost_vip"];
        let email_problems = |i| {
            [
                "service_level_target_pct",
                "aging_step_ms",
                "relaxation[0].action",
                "relaxation[1].lower_required_levels_by",
                "overflow.outsourced_split_pct",
                "offer_timeout_ms",
            ]
            .map(|f| format!("policy.channels[{i}].{f}"))
        };
        let first = email_problems(0);
        let third = email_problems(2);
        expected.extend(first.iter().map(String::as_str));
        expected.push("policy.channels[1].channel");
        expected.push("policy.channels[2].channel");
        expected.extend(third.iter().map(String::as_str));
        assert_eq!(fields(&violations), expected, "{violations:#?}");
        assert!(violations.iter().any(|v| v.description.contains("already configured by channels[0]")));
    }

    #[test]
    fn a_valid_submit_becomes_an_enqueue_with_interned_ids() {
        let mut dir = directory();
        let mut c = contact();
        c.preferred_agent = "alice".into();
        c.preferred_agent_wait_ms = 30_000;
        c.not_before_unix_ms = 1_700_000_000_000;
        let Input::Enqueue(spec) =
            input(&mut dir, &record(v1::router_input::Input::Submit(c.clone()))).unwrap()
        else {
            panic!("not an enqueue")
        };
        // The agent's "billing" came first (skill 0); "PT-br" was interned by the agent.
        let billing = dir.skill("billing").unwrap();
        assert_eq!(billing, SkillId(0));
        let finnish = dir.skill("finnish").unwrap();
        let returns = dir.skill("returns").unwrap();
        assert_eq!(spec.id, dir.find_contact("acme", "c-1").unwrap());
        assert_eq!(spec.tenant, dir.find_tenant("acme").unwrap());
        assert_eq!(spec.channel, Channel::Chat);
        assert_eq!(spec.priority, 10);
        assert_eq!(spec.segment, Segment::Vip);
        assert_eq!(
            spec.required.as_slice(),
            [SkillLevel { skill: billing, level: 3 }, SkillLevel { skill: finnish, level: 2 }]
        );
        assert_eq!(spec.preferred.as_slice(), [SkillLevel { skill: returns, level: 1 }]);
        assert_eq!(spec.language, Some(dir.language("pt-br").unwrap()));
        assert_eq!(spec.language, Some(LanguageId(1)), "agent alice interned fi, then PT-br");
        assert_eq!(spec.preferred_agent, Some((dir.find_agent("alice").unwrap(), 30_000)));
        assert_eq!(spec.not_before, Some(1_700_000_000_000));

        // Submitting the same id again is still an enqueue of the same contact: the engine
        // refuses the duplicate itself.
        let again = input(&mut dir, &record(v1::router_input::Input::Submit(c))).unwrap();
        assert_eq!(again, Input::Enqueue(spec));
    }

    #[test]
    fn a_submit_defaults_and_unknown_names() {
        let mut dir = directory();
        let mut c = contact();
        c.segment = 0;
        c.language = String::new();
        c.preferred_agent = "nobody".into();
        let Input::Enqueue(spec) =
            input(&mut dir, &record(v1::router_input::Input::Submit(c.clone()))).unwrap()
        else {
            panic!("not an enqueue")
        };
        assert_eq!(spec.segment, Segment::New);
        assert_eq!(spec.language, None);
        assert_eq!(spec.preferred_agent, None, "an unknown preferred agent is no preference");
        assert_eq!(spec.not_before, None);
        assert_eq!(dir.find_agent("nobody"), None, "references never intern");

        c.id = "c-2".into();
        c.tenant = "globex".into();
        let err = input(&mut dir, &record(v1::router_input::Input::Submit(c))).unwrap_err();
        assert!(matches!(err, ConvertError::UnknownTenant { field: "submit.tenant", .. }), "{err}");
        assert_eq!(err.to_string(), "submit.tenant: unknown tenant \"globex\"");
        assert_eq!(dir.find_contact("globex", "c-2"), None);
    }

    #[test]
    fn an_invalid_submit_is_refused_and_interns_no_contact() {
        let mut dir = directory();
        let mut c = contact();
        c.priority = 999;
        let err = input(&mut dir, &record(v1::router_input::Input::Submit(c))).unwrap_err();
        let ConvertError::Invalid(violations) = &err else { panic!("{err}") };
        assert_eq!(fields(violations), ["submit.priority"]);
        assert!(err.to_string().starts_with("submit.priority: 999"), "{err}");
        assert_eq!(dir.contact_count(), 0);
        let err = input(&mut dir, &v1::RouterInput::default()).unwrap_err();
        assert!(matches!(err, ConvertError::Empty));
    }

    #[test]
    fn cancel_needs_a_known_contact() {
        let mut dir = directory();
        let cancel = || {
            record(v1::router_input::Input::Cancel(v1::ContactRef {
                tenant: "acme".into(),
                id: "c-1".into(),
            }))
        };
        let err = input(&mut dir, &cancel()).unwrap_err();
        assert!(matches!(err, ConvertError::UnknownContact { .. }));
        assert_eq!(err.to_string(), "cancel: unknown contact \"c-1\" of tenant \"acme\"");
        input(&mut dir, &record(v1::router_input::Input::Submit(contact()))).unwrap();
        let id = dir.find_contact("acme", "c-1").unwrap();
        assert_eq!(input(&mut dir, &cancel()).unwrap(), Input::Cancel(id));
    }

    #[test]
    fn agent_actions() {
        use v1::agent_action::Action;
        let mut dir = directory();
        let alice = dir.find_agent("alice").unwrap();
        let login = v1::Login { agent: String::new(), tenant: "acme".into() };
        assert_eq!(input(&mut dir, &action("alice", Action::Login(login))).unwrap(), Input::LogIn(alice));
        assert_eq!(
            input(&mut dir, &action("alice", Action::Ready(v1::Ready {}))).unwrap(),
            Input::Ready(alice)
        );
        assert_eq!(
            input(&mut dir, &action("alice", Action::NotReady(v1::NotReady { reason: 65_534 }))).unwrap(),
            Input::NotReady(alice, 65_534)
        );
        assert_eq!(
            input(&mut dir, &action("alice", Action::Logout(v1::Logout {}))).unwrap(),
            Input::LogOut(alice)
        );
        assert_eq!(
            input(&mut dir, &action("alice", Action::Accept(v1::Accept { reservation: 7 }))).unwrap(),
            Input::Accept(ReservationId(7))
        );
        assert_eq!(
            input(&mut dir, &action("alice", Action::Reject(v1::Reject { reservation: 8 }))).unwrap(),
            Input::Reject(ReservationId(8))
        );
        assert_eq!(
            input(&mut dir, &action("alice", Action::Complete(v1::Complete { reservation: 9 }))).unwrap(),
            Input::Complete(ReservationId(9))
        );
        assert_eq!(
            input(&mut dir, &action("alice", Action::WrapUpDone(v1::WrapUpDone { reservation: 10 })))
                .unwrap(),
            Input::WrapUpDone(ReservationId(10))
        );
        let rating = v1::Rating { contact: "c-1".into(), score: 5 };
        assert!(matches!(
            input(&mut dir, &action("alice", Action::Rating(rating))),
            Err(ConvertError::NotForEngine)
        ));
        let err = input(&mut dir, &action("bob", Action::Ready(v1::Ready {}))).unwrap_err();
        assert_eq!(err.to_string(), "agent.agent: unknown agent \"bob\"");
        let login = v1::Login { agent: "alice".into(), tenant: "globex".into() };
        let err = input(&mut dir, &action("alice", Action::Login(login))).unwrap_err();
        assert_eq!(err.to_string(), "agent.action.login.tenant: agent \"alice\" belongs to tenant \"acme\"");
    }

    #[test]
    fn a_not_ready_reason_beyond_16_bits_is_an_error() {
        use v1::agent_action::Action;
        let mut dir = directory();
        for reason in [65_535, 65_536, u32::MAX] {
            let err =
                input(&mut dir, &action("alice", Action::NotReady(v1::NotReady { reason }))).unwrap_err();
            let ConvertError::Invalid(violations) = &err else { panic!("{err}") };
            assert_eq!(fields(violations), ["agent.action.not_ready.reason"]);
        }
        let bad = v1::AgentAction { action: Some(Action::NotReady(v1::NotReady { reason: 70_000 })) };
        assert_eq!(fields(&check_agent_action(&bad)), ["action.not_ready.reason"]);
        let login = v1::AgentAction { action: Some(Action::Login(v1::Login::default())) };
        assert_eq!(fields(&check_agent_action(&login)), ["action.login.agent", "action.login.tenant"]);
        assert_eq!(fields(&check_agent_action(&v1::AgentAction::default())), ["action"]);
    }

    #[test]
    fn upserts_convert_to_engine_configs() {
        let mut dir = Directory::new();
        let err = input(&mut dir, &record(v1::router_input::Input::UpsertPool(pool()))).unwrap_err();
        assert_eq!(err.to_string(), "upsert_pool.tenant: unknown tenant \"acme\"", "policies create tenants");
        input(&mut dir, &policy("acme")).unwrap();
        let err = input(&mut dir, &record(v1::router_input::Input::UpsertAgent(agent()))).unwrap_err();
        assert_eq!(err.to_string(), "upsert_agent.pool: unknown pool \"helsinki\"");

        let Input::UpsertPool(config) =
            input(&mut dir, &record(v1::router_input::Input::UpsertPool(pool()))).unwrap()
        else {
            panic!("not a pool")
        };
        assert_eq!(config.id, PoolId(1));
        assert_eq!(config.tenant, TenantId(1));
        assert_eq!(config.kind, PoolKind::InHouse);
        assert_eq!(config.mode, PoolMode::AgentLevel);
        assert_eq!(config.max_concurrent, None);
        let hours = config.hours.expect("hours");
        // Monday 2026-11-23, 08:00 in Helsinki is 06:00 UTC.
        let utc = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis() as u64;
        assert!(!hours.is_open(utc("2026-11-23T05:59:00Z")));
        assert!(hours.is_open(utc("2026-11-23T06:00:00Z")));
        assert!(!hours.is_open(utc("2026-11-24T07:00:00Z")), "Tuesday is closed");

        let Input::UpsertAgent(a) =
            input(&mut dir, &record(v1::router_input::Input::UpsertAgent(agent()))).unwrap()
        else {
            panic!("not an agent")
        };
        assert_eq!(a.id, AgentId(1));
        assert_eq!(a.pool, PoolId(1));
        assert_eq!(a.skills, [SkillLevel::new(0, 4)]);
        assert_eq!(a.languages, Languages::of(&[0, 1]));
        assert_eq!(a.capacity, Capacity { per_channel: [1, 2, 0, 3], weight: [6, 1, 0, 2], total: 6 });
        assert_eq!(dir.agent_tenant(a.id), Some(TenantId(1)));

        // An agent of another tenant's pool is refused.
        input(&mut dir, &policy("globex")).unwrap();
        let mut other = agent();
        other.tenant = "globex".into();
        let err = input(&mut dir, &record(v1::router_input::Input::UpsertAgent(other))).unwrap_err();
        assert_eq!(err.to_string(), "upsert_agent.tenant: pool \"helsinki\" belongs to tenant \"acme\"");

        // An outsourced capacity-level pool, with its provider and what it covers.
        let mut bpo = pool();
        bpo.id = "manila".into();
        bpo.kind = v1::PoolKind::Outsourced as i32;
        bpo.provider = "bpo-inc".into();
        bpo.hours.clear();
        bpo.max_concurrent = 40;
        bpo.capacity_level = true;
        bpo.skills = vec![v1::Skill { skill: "returns".into(), level: 2 }];
        bpo.languages = vec!["en".into()];
        let Input::UpsertPool(config) =
            input(&mut dir, &record(v1::router_input::Input::UpsertPool(bpo))).unwrap()
        else {
            panic!("not a pool")
        };
        assert_eq!(config.kind, PoolKind::Outsourced(dir.provider("bpo-inc")));
        assert_eq!(
            config.mode,
            PoolMode::CapacityLevel { skills: vec![SkillLevel::new(1, 2)], languages: Languages::of(&[2]) }
        );
        assert_eq!(config.hours, None);
        assert_eq!(config.max_concurrent, Some(40));

        let declared = v1::PoolCapacity {
            pool: "manila".into(),
            capacity: Some(v1::Capacity { total: 0, ..capacity(0) }),
        };
        assert_eq!(
            input(&mut dir, &record(v1::router_input::Input::PoolCapacity(declared))).unwrap(),
            Input::PoolCapacity(
                config.id,
                Capacity { per_channel: [1, 2, 0, 3], weight: [0, 1, 0, 2], total: 0 }
            )
        );
        assert_eq!(
            input(&mut dir, &record(v1::router_input::Input::RemoveAgent("alice".into()))).unwrap(),
            Input::RemoveAgent(AgentId(1))
        );
        let err = input(&mut dir, &record(v1::router_input::Input::RemoveAgent("bob".into()))).unwrap_err();
        assert_eq!(err.to_string(), "remove_agent: unknown agent \"bob\"");
    }

    #[test]
    fn policy_zero_fields_take_the_engine_defaults() {
        let mut dir = Directory::new();
        let p = v1::Policy {
            tenant: "acme".into(),
            boost_vip: 20,
            channels: vec![
                v1::ChannelPolicy { channel: v1::Channel::Email as i32, ..Default::default() },
                v1::ChannelPolicy {
                    channel: v1::Channel::Chat as i32,
                    service_level_threshold_ms: 60_000,
                    service_level_target_pct: 90,
                    strategy: v1::Strategy::BestProficiency as i32,
                    aging_step_ms: Some(1_000),
                    relaxation: vec![
                        v1::RelaxStep {
                            after_ms: 30_000,
                            action: Some(v1::relax_step::Action::DropPreferredSkills(true)),
                        },
                        v1::RelaxStep {
                            after_ms: 60_000,
                            action: Some(v1::relax_step::Action::LowerRequiredLevelsBy(1)),
                        },
                        v1::RelaxStep {
                            after_ms: 90_000,
                            action: Some(v1::relax_step::Action::AllowOutsourced(true)),
                        },
                    ],
                    overflow: Some(v1::OverflowPolicy {
                        after_wait_ms: Some(120_000),
                        estimated_wait_above_ms: Some(0),
                        inhouse_occupancy_above_pct: Some(85),
                        when_inhouse_closed: true,
                        outsourced_split_pct: 10,
                    }),
                    offer_timeout_ms: 20_000,
                    wrap_up_ms: 5_000,
                    max_missed_offers: 2,
                    default_handle_time_ms: 240_000,
                },
            ],
            ..Default::default()
        };
        let Input::UpsertPolicy(policy) =
            input(&mut dir, &record(v1::router_input::Input::UpsertPolicy(p))).unwrap()
        else {
            panic!("not a policy")
        };
        assert_eq!(policy.tenant, dir.find_tenant("acme").unwrap());
        assert_eq!(policy.segment_boost, [0, 0, 20]);
        assert_eq!(*policy.channel(Channel::Voice), ChannelPolicy::default(), "no entry: defaults");
        assert_eq!(*policy.channel(Channel::Email), ChannelPolicy::default(), "zero fields: defaults");
        assert_eq!(
            *policy.channel(Channel::Chat),
            ChannelPolicy {
                service_level_threshold: 60_000,
                service_level_target_pct: 90,
                strategy: Strategy::BestProficiency,
                aging_step: Some(1_000),
                relaxation: vec![
                    RelaxStep { after: 30_000, action: RelaxAction::DropPreferredSkills },
                    RelaxStep { after: 60_000, action: RelaxAction::LowerRequiredLevels(1) },
                    RelaxStep { after: 90_000, action: RelaxAction::AllowOutsourced },
                ],
                overflow: OverflowPolicy {
                    after_wait: Some(120_000),
                    estimated_wait_above: None,
                    inhouse_occupancy_above_pct: Some(85),
                    when_inhouse_closed: true,
                    outsourced_split_pct: 10,
                },
                offer_timeout: 20_000,
                wrap_up: 5_000,
                max_missed_offers: 2,
                default_handle_time: 240_000,
            }
        );
    }

    #[test]
    fn decision_for_an_offer_names_the_agent_and_pool() {
        let mut dir = directory();
        let Input::Enqueue(spec) =
            input(&mut dir, &record(v1::router_input::Input::Submit(contact()))).unwrap()
        else {
            panic!("not an enqueue")
        };
        let offered = Output::Offered {
            reservation: ReservationId(42),
            contact: spec.id,
            target: Target::Agent(dir.find_agent("alice").unwrap()),
            pool: dir.find_pool("helsinki").unwrap(),
            deadline: 1_000,
        };
        let payload = contact();
        let d = decision(&dir, &offered, Some(&payload));
        assert_eq!(d.tenant, "acme");
        let Some(v1::decision::Decision::Offered(offer)) = d.decision else { panic!("{d:?}") };
        assert_eq!(offer.reservation, 42);
        assert_eq!(offer.target, "alice");
        assert_eq!(offer.pool, "helsinki");
        assert_eq!(offer.deadline_unix_ms, 1_000);
        assert_eq!(offer.contact, Some(payload));

        // Without a payload the offer still names the contact.
        let Some(v1::decision::Decision::Offered(offer)) = decision(&dir, &offered, None).decision else {
            panic!()
        };
        assert_eq!(
            offer.contact,
            Some(v1::Contact { id: "c-1".into(), tenant: "acme".into(), ..Default::default() })
        );
    }

    #[test]
    fn decisions_render_names_and_unknown_ids_as_numbers() {
        let mut dir = directory();
        input(&mut dir, &record(v1::router_input::Input::Submit(contact()))).unwrap();
        let c = dir.find_contact("acme", "c-1").unwrap();
        let alice = dir.find_agent("alice").unwrap();
        let decide = |o: Output| decision(&dir, &o, None);

        let d = decide(Output::AgentStateChanged { agent: alice, state: AgentState::NotReady(3) });
        assert_eq!(d.tenant, "acme");
        assert_eq!(
            d.decision,
            Some(v1::decision::Decision::AgentState(v1::AgentStateChange {
                agent: "alice".into(),
                state: v1::AgentState::NotReady as i32
            }))
        );
        assert_eq!(
            decide(Output::Requeued { contact: c, reason: RequeueReason::Expired }).decision,
            Some(v1::decision::Decision::Requeued(v1::Requeued {
                contact: "c-1".into(),
                reason: "expired".into()
            }))
        );
        assert_eq!(
            decide(Output::QueueStatus { contact: c, position: 3, estimated_wait: Some(9_000) }).decision,
            Some(v1::decision::Decision::QueueStatus(v1::QueueStatusChange {
                contact: "c-1".into(),
                position: 3,
                estimated_wait_ms: Some(9_000)
            }))
        );
        assert_eq!(
            decide(Output::Abandoned { contact: c, waited: 70 }).decision,
            Some(v1::decision::Decision::Abandoned(v1::Finished { contact: "c-1".into(), waited_ms: 70 }))
        );
        assert_eq!(
            decide(Output::Relaxed { contact: c, action: Some(RelaxAction::AllowOutsourced) }).decision,
            Some(v1::decision::Decision::Relaxed(v1::Relaxed { contact: "c-1".into(), step: 3 }))
        );

        let d = decide(Output::Rejected(Rejection::UnknownAgent(alice)));
        assert_eq!(d.tenant, "acme");
        assert_eq!(
            d.decision,
            Some(v1::decision::Decision::Refused(v1::Refusal {
                subject: "alice".into(),
                reason: Rejection::UnknownAgent(alice).to_string()
            }))
        );

        // Ids the directory does not know render as their numbers, with no tenant.
        let d = decide(Output::Accepted {
            reservation: ReservationId(5),
            contact: ContactId(77),
            target: Target::Pool(PoolId(9)),
            waited: 1_500,
        });
        assert_eq!(d.tenant, "");
        assert_eq!(
            d.decision,
            Some(v1::decision::Decision::Accepted(v1::Accepted {
                reservation: 5,
                contact: "77".into(),
                target: "9".into(),
                waited_ms: 1_500
            }))
        );
        let d = decide(Output::Rejected(Rejection::InUse));
        assert_eq!(
            d.decision,
            Some(v1::decision::Decision::Refused(v1::Refusal {
                subject: String::new(),
                reason: "still in use".into()
            }))
        );

        // Forgotten contacts render as numbers too.
        dir.forget_contact(c);
        let d = decision(
            &dir,
            &Output::Completed { reservation: ReservationId(1), contact: c, target: Target::Agent(alice) },
            None,
        );
        assert_eq!(
            d.decision,
            Some(v1::decision::Decision::Completed(v1::Finished { contact: c.to_string(), waited_ms: 0 }))
        );
    }

    /// The converted inputs drive a real engine to an offer, and the decision names it.
    #[test]
    fn converted_inputs_route_a_contact_through_the_engine() {
        use v1::agent_action::Action;
        use v1::router_input::Input as In;
        let mut dir = Directory::new();
        let mut engine = Engine::new(EngineConfig::default());
        let mut out = Vec::new();
        // Monday 2026-11-23 10:00 in Helsinki.
        let now =
            chrono::DateTime::parse_from_rfc3339("2026-11-23T08:00:00Z").unwrap().timestamp_millis() as u64;
        let login = v1::Login { agent: "alice".into(), tenant: "acme".into() };
        let records = [
            policy("acme"),
            record(In::UpsertPool(pool())),
            record(In::UpsertAgent(agent())),
            action("alice", Action::Login(login)),
            action("alice", Action::Ready(v1::Ready {})),
        ];
        for r in &records {
            engine.apply(now, &input(&mut dir, r).unwrap(), &mut out);
        }
        assert!(!out.iter().any(|o| matches!(o, Output::Rejected(_))), "{out:?}");
        out.clear();
        let mut c = contact();
        c.required_skills = vec![skill("billing", 3)];
        c.preferred_skills.clear();
        c.language = "pt-br".into();
        engine.apply(now, &input(&mut dir, &record(In::Submit(c.clone()))).unwrap(), &mut out);
        let offer = out.iter().find(|o| matches!(o, Output::Offered { .. })).expect("an offer");
        let d = decision(&dir, offer, Some(&c));
        let Some(v1::decision::Decision::Offered(offer)) = d.decision else { panic!("{d:?}") };
        assert_eq!((offer.target.as_str(), offer.pool.as_str()), ("alice", "helsinki"));

        // The same submit again is refused by the engine as a duplicate, named by the decision.
        out.clear();
        engine.apply(now, &input(&mut dir, &record(In::Submit(c))).unwrap(), &mut out);
        let [refusal @ Output::Rejected(Rejection::DuplicateContact(_))] = out.as_slice() else {
            panic!("{out:?}")
        };
        let Some(v1::decision::Decision::Refused(refusal)) = decision(&dir, refusal, None).decision else {
            panic!()
        };
        assert_eq!(refusal.subject, "c-1");
    }

    #[test]
    fn queue_stats_without_measurements_are_nan() {
        let q = vuoro_engine::stats::QueueStats {
            tenant: TenantId(1),
            channel: Channel::Email,
            waiting: 4,
            oldest_wait: 9_000,
            threshold: 20_000,
            target_pct: 80,
            received_total: 10,
            offered_total: 7,
            answered_total: 6,
            answered_outsourced_total: 1,
            abandoned_total: 2,
            overflowed_total: 1,
            completed_total: 5,
            window: Default::default(),
        };
        let wire = queue_stats("acme", &q);
        assert_eq!(wire.tenant, "acme");
        assert_eq!(wire.channel, v1::Channel::Email as i32);
        assert_eq!((wire.waiting, wire.oldest_wait_ms), (4, 9_000));
        assert_eq!((wire.received, wire.answered, wire.abandoned, wire.overflowed), (10, 6, 2, 1));
        assert!(wire.service_level.is_nan() && wire.average_speed_of_answer_ms.is_nan());
        assert!(wire.abandonment_rate.is_nan());
    }
}
