//! Email configuration: which recipient addresses belong to which tenant and queue, and the
//! limits a message must keep to.

use std::collections::HashMap;

use serde::Deserialize;

use crate::route::{ConfigError, Route, SkillConfig};

/// Largest message accepted by default: 10 MiB (also what the SMTP listener should announce
/// with the `SIZE` extension).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;
/// Most MIME parts by default, nested messages' parts included.
pub const DEFAULT_MAX_PARTS: usize = 100;
/// Deepest MIME nesting by default (a multipart inside a multipart inside …).
pub const DEFAULT_MAX_DEPTH: usize = 10;
/// Most text kept per message by default: 64 KiB.
pub const DEFAULT_MAX_TEXT_BYTES: usize = 64 * 1024;

/// The email adapter's configuration, as written in the config file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Largest raw message in bytes; 10 MiB when left out.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Most MIME parts; 100 when left out. More is refused as a MIME bomb.
    #[serde(default = "default_max_parts")]
    pub max_parts: usize,
    /// Deepest MIME nesting; 10 when left out. Deeper is refused as a MIME bomb.
    #[serde(default = "default_max_depth")]
    pub max_depth: usize,
    /// Most bytes of body text kept on the normalised email; 64 KiB when left out. (The
    /// contact's `text` attribute holds at most 4096 bytes of it.)
    #[serde(default = "default_max_text_bytes")]
    pub max_text_bytes: usize,
    /// Recipient addresses and where their mail goes.
    pub routes: Vec<EmailRouteConfig>,
}

fn default_max_message_bytes() -> usize {
    DEFAULT_MAX_MESSAGE_BYTES
}
fn default_max_parts() -> usize {
    DEFAULT_MAX_PARTS
}
fn default_max_depth() -> usize {
    DEFAULT_MAX_DEPTH
}
fn default_max_text_bytes() -> usize {
    DEFAULT_MAX_TEXT_BYTES
}

/// One recipient address (or a whole domain) and its route, as written in the config file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EmailRouteConfig {
    /// `"support@acme.example"` for one address, or `"@acme.example"` for every address of
    /// the domain not routed otherwise. Compared case-insensitively; a `+tag` after the local
    /// part (`support+urgent@…`) falls back to the address without it.
    pub address: String,
    /// Tenant the mail belongs to.
    pub tenant: String,
    /// Queue label shown to agents.
    #[serde(default)]
    pub queue: String,
    /// Contact priority, 0–255.
    #[serde(default)]
    pub priority: u32,
    /// Skills every agent offered the mail must have.
    #[serde(default)]
    pub required_skills: Vec<SkillConfig>,
    /// Skills wanted first.
    #[serde(default)]
    pub preferred_skills: Vec<SkillConfig>,
}

/// Validated email settings, built from [`EmailConfig`] with `TryFrom`.
#[derive(Clone, Debug)]
pub struct EmailSettings {
    /// Largest raw message in bytes.
    pub max_message_bytes: usize,
    /// Most MIME parts.
    pub max_parts: usize,
    /// Deepest MIME nesting.
    pub max_depth: usize,
    /// Most bytes of body text kept.
    pub max_text_bytes: usize,
    addresses: HashMap<String, Route>,
    domains: HashMap<String, Route>,
}

impl EmailSettings {
    /// The route of a recipient address: the exact address, else the address without its
    /// `+tag`, else its domain. `None` when the address is not ours: an SMTP listener answers
    /// `550 5.1.1` to that `RCPT TO`.
    pub fn route_recipient(&self, recipient: &str) -> Option<&Route> {
        let address = bare_address(recipient).to_lowercase();
        let (local, domain) = address.rsplit_once('@')?;
        if let Some(route) = self.addresses.get(&address) {
            return Some(route);
        }
        if let Some((base, _tag)) = local.split_once('+')
            && let Some(route) = self.addresses.get(&format!("{base}@{domain}"))
        {
            return Some(route);
        }
        self.domains.get(domain)
    }

    /// Each tenant's own mailbox: the first (in address order) of the addresses routed to it,
    /// for mail about a contact that did not arrive by email (a callback's notice, an answer to
    /// the contact form).
    pub fn tenant_mailboxes(&self) -> HashMap<String, String> {
        let mut mailboxes = HashMap::<String, String>::new();
        for (address, route) in &self.addresses {
            let first = mailboxes.entry(route.tenant.clone()).or_insert_with(|| address.clone());
            if address < first {
                first.clone_from(address);
            }
        }
        mailboxes
    }
}

/// `addr` without surrounding whitespace and angle brackets.
pub(crate) fn bare_address(addr: &str) -> &str {
    let addr = addr.trim();
    addr.strip_prefix('<').and_then(|a| a.strip_suffix('>')).unwrap_or(addr).trim()
}

impl TryFrom<EmailConfig> for EmailSettings {
    type Error = ConfigError;

    /// Checks the limits (each above 0), every route, and that no address is routed twice;
    /// reports every problem at once.
    fn try_from(config: EmailConfig) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        for (name, value) in [
            ("max_message_bytes", config.max_message_bytes),
            ("max_parts", config.max_parts),
            ("max_depth", config.max_depth),
            ("max_text_bytes", config.max_text_bytes),
        ] {
            if value == 0 {
                problems.push(format!("{name}: must be above 0"));
            }
        }
        if config.routes.is_empty() {
            problems.push("routes: none configured".to_owned());
        }
        let mut addresses = HashMap::new();
        let mut domains = HashMap::new();
        for (i, r) in config.routes.iter().enumerate() {
            let path = format!("routes[{i}]");
            let route = Route::build(
                &path,
                &r.tenant,
                &r.queue,
                r.priority,
                &r.required_skills,
                &r.preferred_skills,
                &mut problems,
            );
            let address = r.address.trim().to_lowercase();
            let (table, key) = match address.strip_prefix('@') {
                Some(domain) if !domain.is_empty() && !domain.contains('@') => {
                    (&mut domains, domain.to_owned())
                }
                Some(_) => {
                    problems.push(format!("{path}.address: \"{}\" is not a domain", r.address));
                    continue;
                }
                None => match address.rsplit_once('@') {
                    Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {
                        (&mut addresses, address.clone())
                    }
                    _ => {
                        problems.push(format!(
                            "{path}.address: \"{}\" is neither an address nor \"@domain\"",
                            r.address
                        ));
                        continue;
                    }
                },
            };
            if table.insert(key, route).is_some() {
                problems.push(format!("{path}.address: \"{}\" is routed twice", r.address));
            }
        }
        ConfigError::check(
            problems,
            EmailSettings {
                max_message_bytes: config.max_message_bytes,
                max_parts: config.max_parts,
                max_depth: config.max_depth,
                max_text_bytes: config.max_text_bytes,
                addresses,
                domains,
            },
        )
    }
}
