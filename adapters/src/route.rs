//! Where a contact goes: its tenant (routing domain), the queue label shown to agents, its
//! priority and skills. Every channel's configuration names routes; [`Route`] is the validated
//! form that stamps them onto a contact.

use std::fmt;

use serde::Deserialize;
use vuoro_proto::v1;

use crate::limits::{MAX_CONTACT_SKILLS, MAX_LEVEL, MAX_PRIORITY, MAX_SKILL_NAME_CHARS, MAX_TENANT_CHARS};
use crate::text::set_attribute;

/// Longest queue label, in characters.
pub const MAX_QUEUE_CHARS: usize = 64;

/// A skill a routed contact needs, in configuration.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SkillConfig {
    /// Skill name, e.g. `"billing"`; 1–64 characters, case-sensitive.
    pub skill: String,
    /// Minimum level, 1–5; 1 when left out.
    #[serde(default = "one")]
    pub min_level: u32,
}

fn one() -> u32 {
    1
}

/// Every problem found in a configuration, each as `path: what is wrong`, reported at once.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// One line per problem, e.g. `tenants.acme.default_region: "XX" is not a region`.
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid adapter configuration: {}", self.problems.join("; "))
    }
}

impl ConfigError {
    /// `Ok(value)` when no problem was found, else the error listing them.
    pub(crate) fn check<T>(problems: Vec<String>, value: T) -> Result<T, ConfigError> {
        if problems.is_empty() { Ok(value) } else { Err(ConfigError { problems }) }
    }
}

/// A validated route: applied to a contact it sets the tenant, priority and skills, and
/// records the queue label in the `queue` attribute for the agent desktop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Routing domain, 1–64 characters.
    pub tenant: String,
    /// A label for people (e.g. `"billing"`); the router queues by requirements, not by label.
    pub queue: String,
    /// 0–255; higher is served first.
    pub priority: u32,
    /// Skills every agent offered the contact must have.
    pub required_skills: Vec<v1::SkillRequirement>,
    /// Skills wanted first, given up by the tenant's relaxation steps.
    pub preferred_skills: Vec<v1::SkillRequirement>,
}

impl Route {
    /// Validates a route's parts, adding a problem under `path` for each rule broken: tenant
    /// 1–64 characters, queue at most 64, priority at most 255, at most 8 skills in all, each
    /// named with 1–64 characters at level 1–5, and none twice in one list.
    pub fn build(
        path: &str,
        tenant: &str,
        queue: &str,
        priority: u32,
        required: &[SkillConfig],
        preferred: &[SkillConfig],
        problems: &mut Vec<String>,
    ) -> Route {
        let tenant_chars = tenant.chars().count();
        if tenant_chars == 0 || tenant_chars > MAX_TENANT_CHARS {
            problems.push(format!("{path}.tenant: {tenant_chars} characters, must be 1–{MAX_TENANT_CHARS}"));
        }
        if queue.chars().count() > MAX_QUEUE_CHARS {
            problems.push(format!("{path}.queue: longer than {MAX_QUEUE_CHARS} characters"));
        }
        if priority > MAX_PRIORITY {
            problems.push(format!("{path}.priority: {priority}, at most {MAX_PRIORITY}"));
        }
        if required.len() + preferred.len() > MAX_CONTACT_SKILLS {
            problems.push(format!(
                "{path}: {} required and {} preferred skills, at most {MAX_CONTACT_SKILLS} in all",
                required.len(),
                preferred.len()
            ));
        }
        let mut skills = |list: &str, skills: &[SkillConfig]| -> Vec<v1::SkillRequirement> {
            let mut seen = Vec::new();
            for (i, s) in skills.iter().enumerate() {
                let chars = s.skill.chars().count();
                if chars == 0 || chars > MAX_SKILL_NAME_CHARS {
                    problems.push(format!(
                        "{path}.{list}[{i}].skill: {chars} characters, must be 1–{MAX_SKILL_NAME_CHARS}"
                    ));
                }
                if !(1..=MAX_LEVEL).contains(&s.min_level) {
                    problems.push(format!(
                        "{path}.{list}[{i}].min_level: {}, must be 1–{MAX_LEVEL}",
                        s.min_level
                    ));
                }
                if seen.contains(&s.skill.as_str()) {
                    problems.push(format!("{path}.{list}[{i}].skill: \"{}\" listed twice", s.skill));
                }
                seen.push(s.skill.as_str());
            }
            skills
                .iter()
                .map(|s| v1::SkillRequirement { skill: s.skill.clone(), min_level: s.min_level })
                .collect()
        };
        let required_skills = skills("required_skills", required);
        let preferred_skills = skills("preferred_skills", preferred);
        Route {
            tenant: tenant.to_owned(),
            queue: queue.to_owned(),
            priority,
            required_skills,
            preferred_skills,
        }
    }

    /// Stamps the route onto `contact`: tenant, priority, skills, and the `queue` attribute.
    pub fn apply(&self, contact: &mut v1::Contact) {
        contact.tenant.clone_from(&self.tenant);
        contact.priority = self.priority;
        contact.required_skills.clone_from(&self.required_skills);
        contact.preferred_skills.clone_from(&self.preferred_skills);
        set_attribute(&mut contact.attributes, "queue", &self.queue);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skill(name: &str, level: u32) -> SkillConfig {
        SkillConfig { skill: name.to_owned(), min_level: level }
    }

    #[test]
    fn a_valid_route_is_stamped_onto_the_contact() {
        let mut problems = Vec::new();
        let route = Route::build(
            "r",
            "acme",
            "billing",
            10,
            &[skill("billing", 2)],
            &[skill("fi", 1)],
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let mut contact = v1::Contact::default();
        route.apply(&mut contact);
        assert_eq!(contact.tenant, "acme");
        assert_eq!(contact.priority, 10);
        assert_eq!(contact.required_skills[0].min_level, 2);
        assert_eq!(contact.attributes["queue"], "billing");
    }

    #[test]
    fn every_problem_of_a_route_is_reported() {
        let mut problems = Vec::new();
        Route::build("routes[0]", "", "", 300, &[skill("", 0), skill("", 6)], &[], &mut problems);
        assert_eq!(
            problems,
            [
                "routes[0].tenant: 0 characters, must be 1–64",
                "routes[0].priority: 300, at most 255",
                "routes[0].required_skills[0].skill: 0 characters, must be 1–64",
                "routes[0].required_skills[0].min_level: 0, must be 1–5",
                "routes[0].required_skills[1].skill: 0 characters, must be 1–64",
                "routes[0].required_skills[1].min_level: 6, must be 1–5",
                "routes[0].required_skills[1].skill: \"\" listed twice",
            ]
        );
    }
}
