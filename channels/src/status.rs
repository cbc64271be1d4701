//! What a customer is told about their contact, in their language: the place in the queue and
//! the wait, an agent joining, the end of the conversation, a callback's promised time, its
//! move, a retry and the last attempt that failed, an email's acknowledgement, thanks for a
//! chat rating or a contact form.
//!
//! The language is the contact's `reply.language` attribute (a BCP 47 tag the adapter set from
//! the customer's choice or from detection); English, Finnish and Swedish have texts, anything
//! else gets English.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use vuoro_proto::v1;

/// The attribute (and outbound context key) naming the language customers are answered in.
pub const LANGUAGE_ATTRIBUTE: &str = "reply.language";

/// A language with texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    /// English, the fallback.
    En,
    /// Finnish.
    Fi,
    /// Swedish.
    Sv,
}

impl Language {
    /// The language of a BCP 47 tag (`fi`, `fi-FI`, `sv-FI`, ...); English for any other.
    pub fn from_tag(tag: &str) -> Language {
        let primary = tag.split(['-', '_']).next().unwrap_or_default().to_ascii_lowercase();
        match primary.as_str() {
            "fi" => Language::Fi,
            "sv" => Language::Sv,
            _ => Language::En,
        }
    }
}

/// The language an outbound message's customer is answered in.
pub fn language_of(message: &v1::OutboundMessage) -> Language {
    message.context.get(LANGUAGE_ATTRIBUTE).map_or(Language::En, |tag| Language::from_tag(tag))
}

/// Whole minutes, rounded up, at least one.
fn minutes(ms: u64) -> u64 {
    ms.div_ceil(60_000).max(1)
}

/// The customer's place in the queue and, when known, the wait.
pub fn queued(language: Language, update: &v1::QueueUpdate) -> String {
    let position = update.position;
    match (language, update.estimated_wait_ms.map(minutes)) {
        (Language::En, Some(m)) => {
            format!(
                "Thanks for your message. You are number {position} in the queue; the wait is about {m} min."
            )
        }
        (Language::En, None) => format!("Thanks for your message. You are number {position} in the queue."),
        (Language::Fi, Some(m)) => {
            format!("Kiitos viestistäsi. Olet jonossa sijalla {position}; odotusaika on noin {m} min.")
        }
        (Language::Fi, None) => format!("Kiitos viestistäsi. Olet jonossa sijalla {position}."),
        (Language::Sv, Some(m)) => {
            format!("Tack för ditt meddelande. Du är nummer {position} i kön; väntetiden är cirka {m} min.")
        }
        (Language::Sv, None) => format!("Tack för ditt meddelande. Du är nummer {position} i kön."),
    }
}

/// An agent took the conversation.
pub fn agent_joined(language: Language) -> String {
    match language {
        Language::En => "An agent has joined the conversation.",
        Language::Fi => "Asiakaspalvelija on liittynyt keskusteluun.",
        Language::Sv => "En kundtjänstmedarbetare har anslutit till samtalet.",
    }
    .to_owned()
}

/// The conversation is over.
pub fn completed(language: Language) -> String {
    match language {
        Language::En => "This conversation is closed. Thank you for contacting us!",
        Language::Fi => "Keskustelu on päättynyt. Kiitos yhteydenotostasi!",
        Language::Sv => "Samtalet är avslutat. Tack för att du kontaktade oss!",
    }
    .to_owned()
}

/// An email's automatic acknowledgement: the mail arrived, and when to expect an answer
/// (from the estimated wait: minutes below an hour, else hours, rounded up).
pub fn email_acknowledgement(language: Language, estimated_wait_ms: Option<u64>) -> String {
    let wait = estimated_wait_ms.map(|ms| match minutes(ms) {
        m if m < 60 => format!("{m} min"),
        m => format!("{} h", m.div_ceil(60)),
    });
    match (language, wait) {
        (Language::En, Some(w)) => format!(
            "Thank you for your message. We have received it and will answer within about {w}. This is an \
             automatic reply."
        ),
        (Language::En, None) => "Thank you for your message. We have received it and will answer as soon as \
                                 we can. This is an automatic reply."
            .to_owned(),
        (Language::Fi, Some(w)) => format!(
            "Kiitos viestistäsi. Olemme vastaanottaneet sen ja vastaamme noin {w} kuluessa. Tämä on \
             automaattinen vastaus."
        ),
        (Language::Fi, None) => "Kiitos viestistäsi. Olemme vastaanottaneet sen ja vastaamme niin pian kuin \
                                 mahdollista. Tämä on automaattinen vastaus."
            .to_owned(),
        (Language::Sv, Some(w)) => format!(
            "Tack för ditt meddelande. Vi har tagit emot det och svarar inom cirka {w}. Detta är ett \
             automatiskt svar."
        ),
        (Language::Sv, None) => {
            "Tack för ditt meddelande. Vi har tagit emot det och svarar så snart vi kan. \
                                 Detta är ett automatiskt svar."
                .to_owned()
        }
    }
}

/// The web chat's live status line: the place in the queue and, when known, the wait.
pub fn chat_queue_line(language: Language, update: &v1::QueueUpdate) -> String {
    let position = update.position;
    match (language, update.estimated_wait_ms.map(minutes)) {
        (Language::En, Some(m)) => format!("You are number {position} in the queue — about {m} min."),
        (Language::En, None) => format!("You are number {position} in the queue."),
        (Language::Fi, Some(m)) => format!("Olet jonossa sijalla {position} — noin {m} min."),
        (Language::Fi, None) => format!("Olet jonossa sijalla {position}."),
        (Language::Sv, Some(m)) => format!("Du är nummer {position} i kön — cirka {m} min."),
        (Language::Sv, None) => format!("Du är nummer {position} i kön."),
    }
}

/// Thanks for a rating.
pub fn rating_thanks(language: Language) -> String {
    match language {
        Language::En => "Thank you for your rating!",
        Language::Fi => "Kiitos arviostasi!",
        Language::Sv => "Tack för ditt betyg!",
    }
    .to_owned()
}

/// A "contact us" form was received; the answer comes by email.
pub fn form_received(language: Language) -> String {
    match language {
        Language::En => "Thanks — we will answer by email.",
        Language::Fi => "Kiitos — vastaamme sähköpostitse.",
        Language::Sv => "Tack — vi svarar per e-post.",
    }
    .to_owned()
}

/// A callback promised for `at`, shown in the customer's time zone.
pub fn callback_promised(language: Language, at: DateTime<Utc>, zone: Tz) -> String {
    let local = at.with_timezone(&zone).format("%Y-%m-%d %H:%M %Z");
    match language {
        Language::En => format!("We will call you back at {local}."),
        Language::Fi => format!("Soitamme sinulle takaisin {local}."),
        Language::Sv => format!("Vi ringer upp dig {local}."),
    }
}

/// A promised callback moved to `at`.
pub fn callback_moved(language: Language, at: DateTime<Utc>, zone: Tz) -> String {
    let local = at.with_timezone(&zone).format("%Y-%m-%d %H:%M %Z");
    match language {
        Language::En => format!("Our callback to you has moved: we will now call at {local}."),
        Language::Fi => format!("Takaisinsoittomme aika on muuttunut: soitamme nyt {local}."),
        Language::Sv => format!("Vår återuppringning har flyttats: vi ringer nu {local}."),
    }
}

/// A call attempt did not reach the customer; the next one is at `at`.
pub fn callback_retry(language: Language, at: DateTime<Utc>, zone: Tz) -> String {
    let local = at.with_timezone(&zone).format("%Y-%m-%d %H:%M %Z");
    match language {
        Language::En => {
            format!("We tried to call you but could not reach you. We will try again at {local}.")
        }
        Language::Fi => {
            format!("Yritimme soittaa sinulle, mutta emme tavoittaneet sinua. Yritämme uudelleen {local}.")
        }
        Language::Sv => format!("Vi försökte ringa dig men nådde dig inte. Vi försöker igen {local}."),
    }
}

/// The last call attempt did not reach the customer: no more calls.
pub fn callback_unreachable(language: Language) -> String {
    match language {
        Language::En => "We tried to call you several times but could not reach you. Please contact us again when it suits you.",
        Language::Fi => "Yritimme soittaa sinulle useita kertoja, mutta emme tavoittaneet sinua. Ota meihin yhteyttä uudelleen, kun sinulle sopii.",
        Language::Sv => "Vi försökte ringa dig flera gånger men nådde dig inte. Kontakta oss igen när det passar dig.",
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_choose_the_language_and_anything_unknown_gets_english() {
        assert_eq!(Language::from_tag("fi-FI"), Language::Fi);
        assert_eq!(Language::from_tag("sv_FI"), Language::Sv);
        assert_eq!(Language::from_tag("SV"), Language::Sv);
        assert_eq!(Language::from_tag("pt-BR"), Language::En);
        assert_eq!(Language::from_tag(""), Language::En);
    }

    #[test]
    fn the_wait_is_given_in_whole_minutes_rounded_up_and_left_out_when_unknown() {
        let update = |ms| v1::QueueUpdate { position: 3, estimated_wait_ms: ms };
        assert_eq!(
            queued(Language::En, &update(Some(61_000))),
            "Thanks for your message. You are number 3 in the queue; the wait is about 2 min."
        );
        assert_eq!(
            queued(Language::Fi, &update(Some(1))),
            "Kiitos viestistäsi. Olet jonossa sijalla 3; odotusaika on noin 1 min."
        );
        assert_eq!(queued(Language::Sv, &update(None)), "Tack för ditt meddelande. Du är nummer 3 i kön.");
    }

    #[test]
    fn an_email_acknowledgement_says_when_to_expect_an_answer() {
        assert_eq!(
            email_acknowledgement(Language::En, Some(90_000)),
            "Thank you for your message. We have received it and will answer within about 2 min. This is an \
             automatic reply."
        );
        assert!(email_acknowledgement(Language::Fi, Some(3 * 3_600_000 + 1)).contains("noin 4 h kuluessa"));
        assert!(email_acknowledgement(Language::Sv, None).contains("så snart vi kan"));
    }

    #[test]
    fn the_chat_status_line_gives_the_place_and_the_wait() {
        let update = |ms| v1::QueueUpdate { position: 2, estimated_wait_ms: ms };
        assert_eq!(
            chat_queue_line(Language::En, &update(Some(90_000))),
            "You are number 2 in the queue — about 2 min."
        );
        assert_eq!(chat_queue_line(Language::Fi, &update(None)), "Olet jonossa sijalla 2.");
        assert_eq!(chat_queue_line(Language::Sv, &update(Some(1))), "Du är nummer 2 i kön — cirka 1 min.");
    }

    #[test]
    fn a_callback_time_is_shown_in_the_customers_zone() {
        let at = DateTime::parse_from_rfc3339("2026-11-23T14:05:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(
            callback_promised(Language::En, at, chrono_tz::Europe::Helsinki),
            "We will call you back at 2026-11-23 16:05 EET."
        );
    }

    #[test]
    fn a_retry_and_the_last_failed_attempt_are_told_in_the_customers_language() {
        let at = DateTime::parse_from_rfc3339("2026-11-23T14:05:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(
            callback_retry(Language::Sv, at, chrono_tz::Europe::Stockholm),
            "Vi försökte ringa dig men nådde dig inte. Vi försöker igen 2026-11-23 15:05 CET."
        );
        assert!(callback_unreachable(Language::Fi).starts_with("Yritimme soittaa sinulle useita kertoja"));
    }
}
