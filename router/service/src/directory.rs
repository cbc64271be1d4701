//! A shard's directory: the string ids of the API (tenants, agents, pools, providers, skills,
//! languages, contacts) mapped to the engine's dense numeric ids and back.
//!
//! One router shard owns one directory. Ids are assigned in call order from counters, never
//! from hashes or iteration order, so replaying the same inputs gives the same ids. Tenants,
//! agents, pools, providers, skills and languages are small sets and are never forgotten;
//! contacts are many, and are forgotten once they are over.
//!
//! Names that come from outside (contact ids are often the channel's own ids, set by whoever
//! wrote the email or message) are hashed with the standard library's randomly keyed SipHash,
//! so crafted ids cannot degrade the maps; only the ids this module assigns itself are hashed
//! with the fast, unkeyed Fx hash.

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use vuoro_engine::ids::{MAX_LANGUAGES, MAX_SKILLS};
use vuoro_engine::{AgentId, ContactId, LanguageId, PoolId, ProviderId, SkillId, TenantId};

use crate::convert::ConvertError;

/// Names interned in call order: the n-th new name gets index n.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Interner {
    index: HashMap<Box<str>, usize>,
    names: Vec<Box<str>>,
}

impl Interner {
    fn get(&self, key: &str) -> Option<usize> {
        self.index.get(key).copied()
    }

    /// The index of `key`, interning it (with `name` as its display form) when new.
    fn intern(&mut self, key: &str, name: &str) -> usize {
        if let Some(i) = self.get(key) {
            return i;
        }
        let i = self.names.len();
        self.index.insert(key.into(), i);
        self.names.push(name.into());
        i
    }

    fn name(&self, i: usize) -> Option<&str> {
        self.names.get(i).map(|n| &**n)
    }

    fn len(&self) -> usize {
        self.names.len()
    }
}

/// Numeric ids for a shard's string ids, assigned deterministically in call order.
///
/// Tenant, agent, pool, provider and contact ids start at 1; skill and language ids start at 0
/// and are bounded by the engine ([`MAX_SKILLS`], [`MAX_LANGUAGES`]).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Directory {
    tenants: Interner,
    agents: Interner,
    pools: Interner,
    providers: Interner,
    skills: Interner,
    /// Keyed by the ASCII-lowercased tag; the name is the first spelling seen.
    languages: Interner,
    /// The tenant each pool was first defined for (a pool never changes tenant).
    pool_tenants: FxHashMap<PoolId, TenantId>,
    /// The tenant of each agent's pool at its last definition.
    agent_tenants: FxHashMap<AgentId, TenantId>,
    /// Per tenant, contact id → engine id.
    contacts: FxHashMap<TenantId, HashMap<Box<str>, ContactId>>,
    /// Engine id → (tenant, contact id).
    contact_names: FxHashMap<ContactId, (TenantId, Box<str>)>,
    /// The last contact id assigned; contact ids are never reused, even after being forgotten.
    last_contact: u64,
}

/// Converts an interner index to an id counting from 1.
fn from_one<T: TryFrom<usize>>(i: usize) -> T {
    T::try_from(i + 1).unwrap_or_else(|_| panic!("more than the id type can hold"))
}

/// Converts an id counting from 1 back to an interner index.
fn index_of(id: u64) -> Option<usize> {
    usize::try_from(id.checked_sub(1)?).ok()
}

impl Directory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of a tenant, assigned on first use.
    pub fn tenant(&mut self, name: &str) -> TenantId {
        TenantId(from_one(self.tenants.intern(name, name)))
    }

    /// The id of a tenant already known, without assigning one.
    pub fn find_tenant(&self, name: &str) -> Option<TenantId> {
        self.tenants.get(name).map(|i| TenantId(from_one(i)))
    }

    /// The name of a tenant id.
    pub fn tenant_name(&self, id: TenantId) -> Option<&str> {
        self.tenants.name(index_of(id.0.into())?)
    }

    /// The id of an agent, assigned on first use.
    pub fn agent(&mut self, name: &str) -> AgentId {
        AgentId(from_one(self.agents.intern(name, name)))
    }

    /// The id of an agent already known, without assigning one.
    pub fn find_agent(&self, name: &str) -> Option<AgentId> {
        self.agents.get(name).map(|i| AgentId(from_one(i)))
    }

    /// The name of an agent id.
    pub fn agent_name(&self, id: AgentId) -> Option<&str> {
        self.agents.name(index_of(id.0)?)
    }

    /// The id of a pool, assigned on first use.
    pub fn pool(&mut self, name: &str) -> PoolId {
        PoolId(from_one(self.pools.intern(name, name)))
    }

    /// The id of a pool already known, without assigning one.
    pub fn find_pool(&self, name: &str) -> Option<PoolId> {
        self.pools.get(name).map(|i| PoolId(from_one(i)))
    }

    /// The name of a pool id.
    pub fn pool_name(&self, id: PoolId) -> Option<&str> {
        self.pools.name(index_of(id.0.into())?)
    }

    /// The tenant a pool belongs to, once a pool definition has been converted.
    pub fn pool_tenant(&self, id: PoolId) -> Option<TenantId> {
        self.pool_tenants.get(&id).copied()
    }

    /// Records a pool's tenant; the first definition wins, as in the engine, which refuses to
    /// move a pool to another tenant.
    pub(crate) fn set_pool_tenant(&mut self, id: PoolId, tenant: TenantId) {
        self.pool_tenants.entry(id).or_insert(tenant);
    }

    /// The tenant an agent belongs to (its pool's), once an agent definition has been converted.
    pub fn agent_tenant(&self, id: AgentId) -> Option<TenantId> {
        self.agent_tenants.get(&id).copied()
    }

    /// Records an agent's tenant, from its latest definition.
    pub(crate) fn set_agent_tenant(&mut self, id: AgentId, tenant: TenantId) {
        self.agent_tenants.insert(id, tenant);
    }

    /// The id of an outsourcing provider, assigned on first use.
    pub fn provider(&mut self, name: &str) -> ProviderId {
        ProviderId(from_one(self.providers.intern(name, name)))
    }

    /// The name of a provider id.
    pub fn provider_name(&self, id: ProviderId) -> Option<&str> {
        self.providers.name(index_of(id.0.into())?)
    }

    /// The id of a skill (names are case-sensitive), assigned on first use; an error once the
    /// shard knows [`MAX_SKILLS`] skills, the most the engine supports.
    pub fn skill(&mut self, name: &str) -> Result<SkillId, ConvertError> {
        if let Some(i) = self.skills.get(name) {
            return Ok(skill_id(i));
        }
        if self.skills.len() >= usize::from(MAX_SKILLS) {
            return Err(ConvertError::TooManySkills { field: "skill".into(), name: name.into() });
        }
        Ok(skill_id(self.skills.intern(name, name)))
    }

    /// The name of a skill id.
    pub fn skill_name(&self, id: SkillId) -> Option<&str> {
        self.skills.name(id.0.into())
    }

    /// The id of a language tag, compared case-insensitively ("pt-BR" is "pt-br"), assigned on
    /// first use; an error once the shard knows [`MAX_LANGUAGES`] languages, the most the
    /// engine supports (agents' languages are a 64-bit set).
    pub fn language(&mut self, tag: &str) -> Result<LanguageId, ConvertError> {
        let lowered;
        let key = if tag.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = tag.to_ascii_lowercase();
            &lowered
        } else {
            tag
        };
        if let Some(i) = self.languages.get(key) {
            return Ok(language_id(i));
        }
        if self.languages.len() >= usize::from(MAX_LANGUAGES) {
            return Err(ConvertError::TooManyLanguages { field: "language".into(), tag: tag.into() });
        }
        Ok(language_id(self.languages.intern(key, tag)))
    }

    /// The tag of a language id, as first spelled.
    pub fn language_tag(&self, id: LanguageId) -> Option<&str> {
        self.languages.name(id.0.into())
    }

    /// The id of a contact of a tenant, assigned on first use (the tenant is interned too).
    /// While the contact is known, the same pair always gives the same id.
    pub fn contact(&mut self, tenant: &str, id: &str) -> ContactId {
        let t = self.tenant(tenant);
        let ids = self.contacts.entry(t).or_default();
        if let Some(&c) = ids.get(id) {
            return c;
        }
        self.last_contact += 1;
        let c = ContactId(self.last_contact);
        ids.insert(id.into(), c);
        self.contact_names.insert(c, (t, id.into()));
        c
    }

    /// The id of a contact already known, without assigning one.
    pub fn find_contact(&self, tenant: &str, id: &str) -> Option<ContactId> {
        let t = self.find_tenant(tenant)?;
        self.contacts.get(&t)?.get(id).copied()
    }

    /// The tenant and id of a contact id.
    pub fn contact_name(&self, id: ContactId) -> Option<(&str, &str)> {
        let (t, name) = self.contact_names.get(&id)?;
        Some((self.tenant_name(*t)?, name))
    }

    /// Forgets a contact that is over (completed or abandoned), once the decisions that name it
    /// have been rendered. Submitting the same id again later gives a new id, never this one.
    pub fn forget_contact(&mut self, id: ContactId) {
        if let Some((t, name)) = self.contact_names.remove(&id)
            && let Some(ids) = self.contacts.get_mut(&t)
        {
            ids.remove(&name);
        }
    }

    /// How many contacts the directory holds.
    pub fn contact_count(&self) -> usize {
        self.contact_names.len()
    }
}

fn skill_id(i: usize) -> SkillId {
    SkillId(u16::try_from(i).unwrap_or_else(|_| unreachable!("bounded by MAX_SKILLS")))
}

fn language_id(i: usize) -> LanguageId {
    LanguageId(u8::try_from(i).unwrap_or_else(|_| unreachable!("bounded by MAX_LANGUAGES")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable_and_in_call_order() {
        let mut d = Directory::new();
        assert_eq!(d.tenant("acme"), TenantId(1));
        assert_eq!(d.tenant("globex"), TenantId(2));
        assert_eq!(d.tenant("acme"), TenantId(1));
        assert_eq!(d.find_tenant("globex"), Some(TenantId(2)));
        assert_eq!(d.find_tenant("initech"), None);
        assert_eq!(d.tenant_name(TenantId(2)), Some("globex"));
        assert_eq!(d.tenant_name(TenantId(0)), None);
        assert_eq!(d.tenant_name(TenantId(3)), None);

        assert_eq!(d.find_agent("alice"), None);
        assert_eq!(d.agent("alice"), AgentId(1));
        assert_eq!(d.agent("bob"), AgentId(2));
        assert_eq!(d.agent("alice"), AgentId(1));
        assert_eq!(d.find_agent("bob"), Some(AgentId(2)));
        assert_eq!(d.agent_name(AgentId(1)), Some("alice"));

        assert_eq!(d.pool("helsinki"), PoolId(1));
        assert_eq!(d.find_pool("helsinki"), Some(PoolId(1)));
        assert_eq!(d.find_pool("manila"), None);
        assert_eq!(d.pool_name(PoolId(1)), Some("helsinki"));
        assert_eq!(d.provider("bpo"), ProviderId(1));
        assert_eq!(d.provider_name(ProviderId(1)), Some("bpo"));

        assert_eq!(d.skill("billing").unwrap(), SkillId(0));
        assert_eq!(d.skill("Billing").unwrap(), SkillId(1), "skill names are case-sensitive");
        assert_eq!(d.skill("billing").unwrap(), SkillId(0));
        assert_eq!(d.skill_name(SkillId(1)), Some("Billing"));
    }

    #[test]
    fn replaying_the_same_calls_gives_the_same_ids() {
        let run = || {
            let mut d = Directory::new();
            let mut ids = Vec::new();
            for i in 0..200 {
                let name = format!("n{}", (i * 37) % 101);
                ids.push(d.agent(&name).0);
                ids.push(d.contact("acme", &name).0);
                ids.push(u64::from(d.skill(&name).unwrap().0));
                if i % 3 == 0 {
                    let c = d.find_contact("acme", &name).unwrap();
                    d.forget_contact(c);
                }
            }
            ids
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn languages_compare_case_insensitively() {
        let mut d = Directory::new();
        let pt = d.language("pt-BR").unwrap();
        assert_eq!(d.language("pt-br").unwrap(), pt);
        assert_eq!(d.language("PT-BR").unwrap(), pt);
        assert_ne!(d.language("pt-PT").unwrap(), pt);
        assert_eq!(d.language_tag(pt), Some("pt-BR"));
    }

    #[test]
    fn skills_and_languages_stop_at_the_engine_limits() {
        let mut d = Directory::new();
        for i in 0..MAX_SKILLS {
            assert_eq!(d.skill(&format!("s{i}")).unwrap(), SkillId(i));
        }
        assert!(matches!(d.skill("one-too-many"), Err(ConvertError::TooManySkills { .. })));
        // Known skills still resolve.
        assert_eq!(d.skill("s7").unwrap(), SkillId(7));

        for i in 0..MAX_LANGUAGES {
            assert_eq!(d.language(&format!("x{i}")).unwrap(), LanguageId(i));
        }
        let err = d.language("fi").unwrap_err();
        assert!(matches!(err, ConvertError::TooManyLanguages { .. }));
        assert!(err.to_string().contains("\"fi\""), "{err}");
        assert_eq!(d.language("X3").unwrap(), LanguageId(3));
    }

    #[test]
    fn contacts_are_per_tenant_and_forgetting_frees_the_name() {
        let mut d = Directory::new();
        let a = d.contact("acme", "c-1");
        let b = d.contact("globex", "c-1");
        assert_ne!(a, b, "the same id in two tenants is two contacts");
        assert_eq!(d.contact("acme", "c-1"), a);
        assert_eq!(d.find_contact("acme", "c-1"), Some(a));
        assert_eq!(d.find_contact("acme", "c-2"), None);
        assert_eq!(d.find_contact("initech", "c-1"), None);
        assert_eq!(d.contact_name(b), Some(("globex", "c-1")));
        assert_eq!(d.contact_count(), 2);

        d.forget_contact(a);
        assert_eq!(d.find_contact("acme", "c-1"), None);
        assert_eq!(d.contact_name(a), None);
        assert_eq!(d.contact_count(), 1);
        // Forgetting twice, or an id never given, changes nothing.
        d.forget_contact(a);
        d.forget_contact(ContactId(999));
        assert_eq!(d.contact_count(), 1);

        // A new submit of the same id is a new contact with a new id.
        let again = d.contact("acme", "c-1");
        assert_ne!(again, a);
        assert_eq!(d.contact_name(again), Some(("acme", "c-1")));
        assert_eq!(d.contact_name(b), Some(("globex", "c-1")));
    }
}
