//! The phone callback's courier: takes the router's VOICE-channel messages on the outbound
//! topic. It follows each callback's estimate and tells the customer, through their
//! alternative channel, when the promised time moves by more than the tenant's tolerance; and
//! when an agent accepts a callback it writes the dial instruction for the telephony platform.
//!
//! The first word on a contact (its first `queued` estimate or its schedule) fixes the promise,
//! by the rule of [`crate::promise`] that the answer to `POST /callback` also follows; a later
//! estimate that moves it beyond the tolerance becomes the new promise and a `notice`
//! ([`crate::notice`]). The promises live in memory, at most [`REMEMBERED_CONTACTS`] (the
//! oldest forgotten first): after a restart or a rebalance of the delivery group, the courier
//! re-learns a contact's promise from its next update (and tells nobody about that one).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use vuoro_adapters::callback::{CallbackSettings, RetryPolicy, reply};
use vuoro_proto::v1;
use vuoro_proto::v1::outbound_message::Message as O;

use crate::notice::{Notice, Told, tell};
use crate::outbound::{BoxFuture, Courier, Failure};
use crate::promise::{Word, moved_beyond, window_start_of, word_of, zone_of};
use crate::publish::{Publisher, settle};
use crate::status;

/// Contacts whose promise is remembered.
pub const REMEMBERED_CONTACTS: usize = 100_000;

type Key = (String, String);

/// Promised times by contact, bounded.
#[derive(Default)]
struct Promises {
    at: HashMap<Key, i64>,
    order: VecDeque<Key>,
}

impl Promises {
    /// Notes the promise `at` for `key`; the one it replaces, if any.
    fn set(&mut self, key: Key, at: i64) -> Option<i64> {
        if !self.at.contains_key(&key) {
            if self.order.len() >= REMEMBERED_CONTACTS
                && let Some(oldest) = self.order.pop_front()
            {
                self.at.remove(&oldest);
            }
            self.order.push_back(key.clone());
        }
        self.at.insert(key, at)
    }

    fn forget(&mut self, key: &Key) {
        if self.at.remove(key).is_some() {
            self.order.retain(|k| k != key);
        }
    }
}

/// The callback courier.
pub struct CallbackCourier {
    settings: CallbackSettings,
    publisher: Publisher,
    promises: Mutex<Promises>,
}

impl CallbackCourier {
    /// A courier with the tenants' callback settings (tolerance, retry policy, caller id),
    /// writing through `publisher`.
    pub fn new(settings: CallbackSettings, publisher: Publisher) -> CallbackCourier {
        CallbackCourier { settings, publisher, promises: Mutex::default() }
    }

    /// Follows a new word on the time; tells the customer when it moved beyond the tolerance.
    async fn follow(&self, message: &v1::OutboundMessage) -> Result<(), Failure> {
        let Some(Word::Promised(promised)) = word_of(message, window_start_of(message)) else {
            // No estimate (nobody logged in): no time to tell, the promise stands.
            return Ok(());
        };
        let tolerance = self
            .settings
            .tenants
            .get(&message.tenant)
            .map_or(vuoro_adapters::callback::DEFAULT_PROMISE_TOLERANCE_MS, |t| t.promise_tolerance_ms);
        let key = (message.tenant.clone(), message.contact.clone());
        let previous = {
            let mut promises = self.promises.lock().unwrap_or_else(PoisonError::into_inner);
            match promises.at.get(&key) {
                Some(&old) if !moved_beyond(old, promised.at_unix_ms, tolerance) => return Ok(()),
                _ => promises.set(key, promised.at_unix_ms),
            }
        };
        if previous.is_none() {
            return Ok(());
        }
        let text =
            status::callback_moved(status::language_of(message), promised.at(), zone_of(&message.context));
        let notice = Notice {
            id: format!("{}/moved", message.id),
            tenant: &message.tenant,
            contact: &message.contact,
            context: &message.context,
            kind: "moved",
            text,
        };
        match tell(&self.publisher, notice).await? {
            Told::Written { via } => {
                tracing::info!(contact = message.contact, via, "told the customer the call moved")
            }
            Told::NoAlternative => {
                tracing::info!(
                    contact = message.contact,
                    "the call moved; the customer gave no other channel"
                )
            }
        }
        Ok(())
    }

    /// The dial instruction for a callback an agent accepted.
    fn instruction(&self, message: &v1::OutboundMessage, agent: &str) -> v1::DialInstruction {
        let tenant = self.settings.tenants.get(&message.tenant);
        let context = |key: &str| message.context.get(key).cloned().unwrap_or_default();
        let max_attempts = tenant.map_or_else(|| RetryPolicy::default().attempts, |t| t.retry.attempts);
        v1::DialInstruction {
            id: message.id.clone(),
            tenant: message.tenant.clone(),
            contact: message.contact.clone(),
            number: message.address.clone(),
            agent: agent.to_owned(),
            attempt: attempt_of(&message.context),
            max_attempts,
            caller_id: tenant.and_then(|t| t.caller_id.clone()),
            reason: context(reply::REASON),
            language: context(reply::LANGUAGE),
            at_unix_ms: message.at_unix_ms,
        }
    }

    async fn dial(&self, message: &v1::OutboundMessage, agent: &str) -> Result<(), Failure> {
        if message.address.trim().is_empty() {
            return Err(Failure::new("no_number", "the callback contact has no number to dial"));
        }
        let instruction = self.instruction(message, agent);
        let written = match self.publisher.send_dial_instruction(&instruction) {
            Ok(delivery) => settle(delivery).await,
            Err(error) => Err(error),
        };
        written.map_err(|error| Failure::new("unavailable", format!("the dial instruction: {error}")))?;
        crate::metrics::dial_instruction(crate::callback::CHANNEL);
        tracing::info!(
            contact = message.contact,
            agent,
            attempt = instruction.attempt,
            "dial instruction written"
        );
        Ok(())
    }
}

/// The attempt a callback contact is (its `reply.attempt`), 1 when it does not say.
pub fn attempt_of(context: &HashMap<String, String>) -> u32 {
    context.get(reply::ATTEMPT).and_then(|a| a.parse().ok()).filter(|&a| a >= 1).unwrap_or(1)
}

impl Courier for CallbackCourier {
    fn name(&self) -> &'static str {
        crate::callback::CHANNEL
    }

    fn takes(&self, message: &v1::OutboundMessage) -> bool {
        message.channel == v1::Channel::Voice as i32
    }

    fn deliver<'a>(&'a self, message: &'a v1::OutboundMessage) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            match message.message.as_ref() {
                Some(O::Queued(_) | O::ScheduledUnixMs(_)) => self.follow(message).await,
                Some(O::AgentJoined(agent)) => self.dial(message, agent).await,
                Some(O::Completed(_)) => {
                    let key = (message.tenant.clone(), message.contact.clone());
                    self.promises.lock().unwrap_or_else(PoisonError::into_inner).forget(&key);
                    Ok(())
                }
                _ => Ok(()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promises_are_remembered_up_to_a_bound() {
        let mut promises = Promises::default();
        let key = |n: usize| ("acme".to_owned(), format!("callback:{n}"));
        assert_eq!(promises.set(key(0), 1), None);
        assert_eq!(promises.set(key(0), 2), Some(1));
        for n in 1..=REMEMBERED_CONTACTS {
            promises.set(key(n), 1);
        }
        assert!(!promises.at.contains_key(&key(0)), "the oldest was forgotten");
        assert_eq!(promises.at.len(), REMEMBERED_CONTACTS);
    }

    #[test]
    fn the_attempt_defaults_to_the_first() {
        let mut context = HashMap::new();
        assert_eq!(attempt_of(&context), 1);
        context.insert(reply::ATTEMPT.to_owned(), "3".to_owned());
        assert_eq!(attempt_of(&context), 3);
    }
}
