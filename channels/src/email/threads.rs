//! Who handled each email conversation, so that a follow-up goes to that agent first.
//!
//! Every process follows the outbound topic ([`crate::feed::Feed::watch`]); when an agent
//! joins an email contact, the agent is remembered under the contact's id and under its
//! conversation (the `reply.conversation_id` context). A follow-up is looked up by its
//! conversation, then by the ids of the mails it answers, nearest first. The memory is bounded:
//! the oldest conversations are forgotten first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::task::JoinHandle;
use vuoro_adapters::email::Thread;
use vuoro_proto::v1;
use vuoro_proto::v1::outbound_message::Message as O;

use super::ReplyContext;
use crate::feed::Feed;

/// Contact and conversation ids remembered by default.
pub const DEFAULT_CAPACITY: usize = 100_000;

type Key = (String, String);

#[derive(Default)]
struct Inner {
    agents: HashMap<Key, String>,
    /// Keys in `agents`, oldest first.
    order: VecDeque<Key>,
}

/// The agent who last joined each email conversation.
pub struct Conversations {
    inner: Mutex<Inner>,
    capacity: usize,
}

impl Conversations {
    /// An empty memory of at most `capacity` ids.
    pub fn new(capacity: usize) -> Conversations {
        Conversations { inner: Mutex::default(), capacity: capacity.max(1) }
    }

    /// Learns from one outbound message: an agent joining an email contact.
    pub fn observe(&self, message: &v1::OutboundMessage) {
        if message.channel != v1::Channel::Email as i32 {
            return;
        }
        let Some(O::AgentJoined(agent)) = &message.message else { return };
        if agent.is_empty() {
            return;
        }
        let conversation = ReplyContext::get(message, ReplyContext::CONVERSATION);
        for id in [message.contact.as_str(), conversation] {
            if !id.is_empty() {
                self.remember((message.tenant.clone(), id.to_owned()), agent);
            }
        }
    }

    fn remember(&self, key: Key, agent: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = inner.agents.get_mut(&key) {
            agent.clone_into(known);
            return;
        }
        if inner.order.len() >= self.capacity
            && let Some(oldest) = inner.order.pop_front()
        {
            inner.agents.remove(&oldest);
        }
        inner.order.push_back(key.clone());
        inner.agents.insert(key, agent.to_owned());
    }

    /// The agent who handled the conversation of a mail of `tenant` with threading keys
    /// `thread`: by its conversation, else by the mails it answers, nearest first.
    pub fn agent_for(&self, tenant: &str, thread: &Thread) -> Option<String> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        std::iter::once(&thread.conversation_id)
            .chain(&thread.related_ids)
            .find_map(|id| inner.agents.get(&(tenant.to_owned(), id.clone())))
            .cloned()
    }

    /// Follows `feed` until the returned task is aborted.
    pub fn follow(self: &Arc<Self>, feed: &Feed) -> JoinHandle<()> {
        let mut messages = feed.watch();
        let conversations = Arc::clone(self);
        tokio::spawn(async move {
            while let Some(message) = messages.recv().await {
                conversations.observe(&message);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(contact: &str, conversation: &str, agent: &str) -> v1::OutboundMessage {
        let mut message = v1::OutboundMessage {
            tenant: "acme".into(),
            contact: contact.into(),
            channel: v1::Channel::Email as i32,
            message: Some(O::AgentJoined(agent.into())),
            ..Default::default()
        };
        message.context.insert(ReplyContext::CONVERSATION.into(), conversation.into());
        message
    }

    fn thread(conversation: &str, related: &[&str]) -> Thread {
        Thread {
            message_id: None,
            in_reply_to: Vec::new(),
            references: Vec::new(),
            conversation_id: conversation.into(),
            related_ids: related.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn a_follow_up_finds_the_agent_by_conversation_or_by_the_mail_it_answers() {
        let conversations = Conversations::new(10);
        conversations.observe(&joined("email:b@x", "email:a@x", "aino"));
        assert_eq!(conversations.agent_for("acme", &thread("email:a@x", &[])).as_deref(), Some("aino"));
        assert_eq!(
            conversations.agent_for("acme", &thread("email:lost@x", &["email:b@x"])).as_deref(),
            Some("aino"),
            "found by the mail it answers when the root is unknown"
        );
        assert_eq!(conversations.agent_for("globex", &thread("email:a@x", &[])), None, "per tenant");
        assert_eq!(conversations.agent_for("acme", &thread("email:new@x", &[])), None);
    }

    #[test]
    fn only_email_agents_joining_count_and_the_oldest_are_forgotten() {
        let conversations = Conversations::new(2);
        let mut social = joined("messenger:m", "", "aino");
        social.channel = v1::Channel::Social as i32;
        conversations.observe(&social);
        assert!(conversations.inner.lock().unwrap().agents.is_empty());
        conversations.observe(&joined("email:1", "", "aino"));
        conversations.observe(&joined("email:2", "", "bea"));
        conversations.observe(&joined("email:3", "", "bea"));
        assert_eq!(conversations.agent_for("acme", &thread("email:1", &[])), None, "forgotten");
        assert_eq!(conversations.agent_for("acme", &thread("email:3", &[])).as_deref(), Some("bea"));
    }
}
