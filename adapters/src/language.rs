//! Language of a contact: the customer's own choice when they gave one, else a detection on
//! their text with `whatlang`, used only when the detection is reliable.
//!
//! The router matches a contact's language against agents' languages as whole tags (compared
//! case-insensitively), and agents list languages as primary subtags ("fi", "en"). A tag the
//! customer gives with a region or script ("fi-FI", "pt-BR") is therefore routed on its
//! primary subtag, and the full tag is kept in the `language_tag` attribute for the agent.

use vuoro_proto::v1;
use whatlang::Lang;

use crate::text::{set_attribute, truncate};

/// Fewest letters a text needs before a detection is trusted: below this, even a confident
/// guess rests on too little ("ok thanks" is English and Finnish alike).
pub const MIN_DETECTION_LETTERS: usize = 12;
/// Bytes of text detection looks at; a long email's first part is enough, and this bounds the
/// cost per contact.
pub const MAX_DETECTION_BYTES: usize = 2048;

/// A reliable detection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    /// BCP 47 tag of the language (the ISO 639-1 code where one exists), e.g. `"fi"`.
    pub tag: &'static str,
    /// `whatlang`'s confidence, 0–1; a detection is only returned above its reliability mark.
    pub confidence: f64,
}

/// Where a contact's language came from, recorded in the `language_source` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LanguageSource {
    /// The customer named it (a form field, a `Content-Language` header).
    Customer,
    /// Detected on the customer's text.
    Detected,
}

impl LanguageSource {
    /// `"customer"` or `"detected"`.
    pub fn as_str(self) -> &'static str {
        match self {
            LanguageSource::Customer => "customer",
            LanguageSource::Detected => "detected",
        }
    }
}

/// The language of `text`, when `whatlang` finds it reliably and the text has at least
/// [`MIN_DETECTION_LETTERS`] letters; `None` otherwise. Looks at the first
/// [`MAX_DETECTION_BYTES`] bytes only.
pub fn detect(text: &str) -> Option<Detection> {
    let (text, _) = truncate(text, MAX_DETECTION_BYTES);
    if text.chars().filter(|c| c.is_alphabetic()).count() < MIN_DETECTION_LETTERS {
        return None;
    }
    let info = whatlang::detect(text)?;
    info.is_reliable().then(|| Detection { tag: bcp47(info.lang()), confidence: info.confidence() })
}

/// `tag` in canonical case (language lowercase, script titlecase, region uppercase, e.g.
/// `"pt-br"` → `"pt-BR"`, `"ZH-hant-tw"` → `"zh-Hant-TW"`) when it is a plausible BCP 47 tag:
/// 2–35 ASCII letters, digits and hyphens, starting with a 2–3 letter language subtag, no empty
/// subtag, each subtag at most 8 characters. `None` otherwise.
pub fn canonical_tag(tag: &str) -> Option<String> {
    let tag = tag.trim();
    if !(2..=35).contains(&tag.len()) || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return None;
    }
    let mut out = Vec::new();
    for (i, subtag) in tag.split('-').enumerate() {
        if subtag.is_empty() || subtag.len() > 8 {
            return None;
        }
        let canonical = if i == 0 {
            if !(2..=3).contains(&subtag.len()) || !subtag.bytes().all(|b| b.is_ascii_alphabetic()) {
                return None;
            }
            subtag.to_ascii_lowercase()
        } else if subtag.len() == 4 && subtag.bytes().all(|b| b.is_ascii_alphabetic()) {
            let lower = subtag.to_ascii_lowercase();
            lower[..1].to_ascii_uppercase() + &lower[1..]
        } else if subtag.len() == 2 && subtag.bytes().all(|b| b.is_ascii_alphabetic())
            || subtag.len() == 3 && subtag.bytes().all(|b| b.is_ascii_digit())
        {
            subtag.to_ascii_uppercase()
        } else {
            subtag.to_ascii_lowercase()
        };
        out.push(canonical);
    }
    Some(out.join("-"))
}

/// Sets the contact's language from the customer's own `tag` if they gave a valid one, else
/// from a reliable detection on `text`. Records `language_source` and, when a regional or
/// script tag was reduced to its primary subtag, `language_tag`. Leaves the language empty
/// (any agent) when neither is available. Returns where the language came from.
pub fn assign(contact: &mut v1::Contact, customer_tag: Option<&str>, text: &str) -> Option<LanguageSource> {
    if let Some(tag) = customer_tag.and_then(canonical_tag) {
        let primary = tag.split('-').next().unwrap_or_default().to_owned();
        if primary != tag {
            set_attribute(&mut contact.attributes, "language_tag", &tag);
        }
        contact.language = primary;
        set_attribute(&mut contact.attributes, "language_source", LanguageSource::Customer.as_str());
        return Some(LanguageSource::Customer);
    }
    let detection = detect(text)?;
    contact.language = detection.tag.to_owned();
    set_attribute(&mut contact.attributes, "language_source", LanguageSource::Detected.as_str());
    Some(LanguageSource::Detected)
}

/// BCP 47 tag of a `whatlang` language: the ISO 639-1 two-letter code where one exists (BCP 47
/// prefers the shortest code), else ISO 639-3.
pub fn bcp47(lang: Lang) -> &'static str {
    match lang {
        Lang::Epo => "eo",
        Lang::Eng => "en",
        Lang::Rus => "ru",
        Lang::Cmn => "zh",
        Lang::Spa => "es",
        Lang::Por => "pt",
        Lang::Ita => "it",
        Lang::Ben => "bn",
        Lang::Fra => "fr",
        Lang::Deu => "de",
        Lang::Ukr => "uk",
        Lang::Kat => "ka",
        Lang::Ara => "ar",
        Lang::Hin => "hi",
        Lang::Jpn => "ja",
        Lang::Heb => "he",
        Lang::Yid => "yi",
        Lang::Pol => "pl",
        Lang::Amh => "am",
        Lang::Jav => "jv",
        Lang::Kor => "ko",
        Lang::Nob => "nb",
        Lang::Dan => "da",
        Lang::Swe => "sv",
        Lang::Fin => "fi",
        Lang::Tur => "tr",
        Lang::Nld => "nl",
        Lang::Hun => "hu",
        Lang::Ces => "cs",
        Lang::Ell => "el",
        Lang::Bul => "bg",
        Lang::Bel => "be",
        Lang::Mar => "mr",
        Lang::Kan => "kn",
        Lang::Ron => "ro",
        Lang::Slv => "sl",
        Lang::Hrv => "hr",
        Lang::Srp => "sr",
        Lang::Mkd => "mk",
        Lang::Lit => "lt",
        Lang::Lav => "lv",
        Lang::Est => "et",
        Lang::Tam => "ta",
        Lang::Vie => "vi",
        Lang::Urd => "ur",
        Lang::Tha => "th",
        Lang::Guj => "gu",
        Lang::Uzb => "uz",
        Lang::Pan => "pa",
        Lang::Aze => "az",
        Lang::Ind => "id",
        Lang::Tel => "te",
        // Iranian Persian; BCP 47 names the macrolanguage.
        Lang::Pes => "fa",
        Lang::Mal => "ml",
        Lang::Ori => "or",
        Lang::Mya => "my",
        Lang::Nep => "ne",
        Lang::Sin => "si",
        Lang::Khm => "km",
        Lang::Tuk => "tk",
        Lang::Aka => "ak",
        Lang::Zul => "zu",
        Lang::Sna => "sn",
        Lang::Afr => "af",
        Lang::Lat => "la",
        Lang::Slk => "sk",
        Lang::Cat => "ca",
        Lang::Tgl => "tl",
        Lang::Hye => "hy",
        Lang::Cym => "cy",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_detected_tag_is_a_plausible_two_letter_tag() {
        for lang in Lang::all() {
            let tag = bcp47(*lang);
            assert_eq!(canonical_tag(tag).as_deref(), Some(tag), "{lang:?}");
            assert_eq!(tag.len(), 2, "{lang:?} → {tag}");
        }
    }

    #[test]
    fn tags_are_put_in_canonical_case() {
        assert_eq!(canonical_tag("pt-br").as_deref(), Some("pt-BR"));
        assert_eq!(canonical_tag("ZH-hant-tw").as_deref(), Some("zh-Hant-TW"));
        assert_eq!(canonical_tag("es-419").as_deref(), Some("es-419"));
        assert_eq!(canonical_tag(" FI ").as_deref(), Some("fi"));
    }

    #[test]
    fn implausible_tags_are_refused() {
        for bad in ["", "f", "finnish", "fi_FI", "fi--FI", "1a", "en-", "fi-abcdefghi", "ää"] {
            assert_eq!(canonical_tag(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn short_texts_are_not_guessed() {
        assert_eq!(detect("ok thanks"), None);
        assert_eq!(detect("👍👍👍"), None);
    }

    #[test]
    fn the_customer_choice_wins_and_a_region_is_kept_aside() {
        let mut contact = v1::Contact::default();
        let text = "Hello, my order has not arrived and I would like to know where it is.";
        assert_eq!(assign(&mut contact, Some("pt-br"), text), Some(LanguageSource::Customer));
        assert_eq!(contact.language, "pt");
        assert_eq!(contact.attributes["language_tag"], "pt-BR");
        assert_eq!(contact.attributes["language_source"], "customer");
    }

    #[test]
    fn detection_fills_the_language_only_when_reliable() {
        let mut contact = v1::Contact::default();
        let text = "Hei, tilaukseni ei ole vieläkään saapunut. Voisitteko tarkistaa missä se on?";
        assert_eq!(assign(&mut contact, None, text), Some(LanguageSource::Detected));
        assert_eq!(contact.language, "fi");
        let mut contact = v1::Contact::default();
        assert_eq!(assign(&mut contact, Some("not a tag"), "ok"), None);
        assert_eq!(contact.language, "");
        assert!(contact.attributes.is_empty());
    }
}
