//! Validated text values taken from requests. Each parse trims surrounding white space and
//! returns a message that completes the sentence "<field> ..." for the problem body.

use std::borrow::Cow;

use super::{Platform, UserId, WidgetColor};

/// The most characters of a provider's message id we store (`wamid.…`, an Instagram `mid`,
/// a webchat message id): every `platform_message_id` column and `button_clicks.message_id`.
/// Meta documents no maximum; real Instagram mids are about 164 characters and wamids about
/// 60, so this leaves room for growth. A longer id is refused at the edge (logged, skipped).
pub const PROVIDER_MESSAGE_ID_MAX_CHARS: usize = 512;

/// The most characters of a customer key we store: a WhatsApp `wa_id` (as E.164), an
/// Instagram-scoped id, a WhatsApp business-scoped user id (documented as up to 256
/// characters) or a webchat visitor id. `inbound_messages.customer_id` and every
/// `customer_phone` column.
pub const CUSTOMER_ID_MAX_CHARS: usize = 256;

/// The most characters of a customer's profile name we store; longer names are cut.
pub const CUSTOMER_NAME_MAX_CHARS: usize = 255;

/// The most characters of a provider's message type (`text`, `interactive`, …) we store;
/// longer (unknown) types are cut.
pub const MESSAGE_TYPE_MAX_CHARS: usize = 30;

/// Every length checked at the edge, with the column it protects: `(table, column, max)`.
/// A schema test compares each with the column's width, as the enum test does for CHECKs.
pub fn length_checked_columns() -> Vec<(&'static str, &'static str, usize)> {
    let message_id = PROVIDER_MESSAGE_ID_MAX_CHARS;
    let customer = CUSTOMER_ID_MAX_CHARS;
    vec![
        ("inbound_messages", "platform_message_id", message_id),
        ("messages", "platform_message_id", message_id),
        ("message_delivery_status", "platform_message_id", message_id),
        ("template_sends", "platform_message_id", message_id),
        ("parked_statuses", "platform_message_id", message_id),
        ("button_clicks", "message_id", message_id),
        ("button_clicks", "original_message_id", message_id),
        ("inbound_messages", "customer_id", customer),
        ("conversations", "customer_phone", customer),
        ("extractions", "customer_phone", customer),
        ("template_sends", "customer_phone", customer),
        ("button_clicks", "customer_phone", customer),
        ("contacts", "customer_id", customer),
        // Copied from the conversation's key when the agent books.
        ("meetings", "customer_phone", customer),
        ("inbound_messages", "customer_name", CUSTOMER_NAME_MAX_CHARS),
        ("conversations", "customer_name", CUSTOMER_NAME_MAX_CHARS),
        ("inbound_messages", "message_type", MESSAGE_TYPE_MAX_CHARS),
        ("messages", "message_type", MESSAGE_TYPE_MAX_CHARS),
        ("users", "user_id", UserId::MAX_LEN),
        ("users", "company_name", CompanyName::MAX_CHARS),
        ("agents", "name", AgentName::MAX_CHARS),
        ("agents", "prompt_id", PromptId::MAX_CHARS),
        ("phone_numbers", "display_name", DisplayName::MAX_CHARS),
        (
            "phone_numbers",
            "meta_phone_number_id",
            MetaChannelId::MAX_CHARS,
        ),
        ("phone_numbers", "waba_id", WabaId::MAX_CHARS),
        ("phone_numbers", "webchat_title", WidgetTitle::MAX_CHARS),
        (
            "phone_numbers",
            "webchat_greeting",
            WidgetGreeting::MAX_CHARS,
        ),
        ("phone_numbers", "webchat_color", WidgetColor::LEN),
    ]
}

/// Whether text holds U+0000, which PostgreSQL cannot store in `text` or `jsonb`.
pub fn contains_nul(text: &str) -> bool {
    text.contains('\0')
}

/// What a NUL becomes where input is cleaned rather than refused (Meta's webhooks): the
/// replacement character, so a reader sees that something was there.
pub const NUL_REPLACEMENT: char = '\u{FFFD}';

/// Replaces every U+0000 with [`NUL_REPLACEMENT`]; borrows when there is none.
pub fn replace_nul(text: &str) -> Cow<'_, str> {
    if contains_nul(text) {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// The first `max` characters of `text`.
pub fn truncate_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((index, _)) => &text[..index],
        None => text,
    }
}

/// Defines a trimmed, non-empty, length-bounded text type.
macro_rules! bounded_text {
    ($(#[$meta:meta])* $name:ident, max = $max:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// The most characters accepted.
            pub const MAX_CHARS: usize = $max;

            /// Trims and checks the length.
            pub fn parse(raw: &str) -> Result<Self, String> {
                bounded(raw, $max).map(Self)
            }

            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Wraps a value read back from the database (checked when it was written).
            pub fn from_trusted(value: String) -> Self {
                Self(value)
            }
        }
    };
}

fn bounded(raw: &str, max: usize) -> Result<String, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if trimmed.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(trimmed.to_owned())
}

bounded_text!(
    /// `agents.name`.
    AgentName, max = 255
);
bounded_text!(
    /// `phone_numbers.display_name`.
    DisplayName, max = 255
);
bounded_text!(
    /// `phone_numbers.webchat_title`: the heading of a website chat widget.
    WidgetTitle, max = 60
);
bounded_text!(
    /// `phone_numbers.webchat_greeting`: the first words a website chat widget shows.
    WidgetGreeting, max = 500
);
bounded_text!(
    /// `users.company_name`.
    CompanyName, max = 255
);
bounded_text!(
    /// `credit_grants.reason`: why an operator granted credits.
    GrantReason, max = 255
);
bounded_text!(
    /// `conversations.handoff_reason` typed by a person taking a conversation over.
    TakeoverReason, max = 500
);

/// An OpenAI stored prompt id (`pmpt_…`), `agents.prompt_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptId(String);

impl PromptId {
    /// The most characters accepted (`agents.prompt_id`).
    pub const MAX_CHARS: usize = 100;

    /// Accepts `pmpt_` followed by letters, digits and underscores, at most 100 in all.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let Some(rest) = raw.strip_prefix("pmpt_") else {
            return Err("must be an OpenAI prompt id starting with `pmpt_`".to_owned());
        };
        if rest.is_empty() || raw.len() > Self::MAX_CHARS {
            return Err("must be `pmpt_` followed by 1 to 95 characters".to_owned());
        }
        if !rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err("may contain only letters, digits and underscores".to_owned());
        }
        Ok(Self(raw.to_owned()))
    }

    /// Wraps a prompt id read back from the database, which only stores valid ones.
    pub fn from_trusted(raw: String) -> Self {
        Self(raw)
    }

    /// The prompt id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The provider-side id of a channel, `phone_numbers.meta_phone_number_id`: the Cloud API
/// phone-number id (WhatsApp), the account id (Instagram) or the public widget key (webchat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaChannelId(String);

impl MetaChannelId {
    /// The most characters accepted (`phone_numbers.meta_phone_number_id`).
    pub const MAX_CHARS: usize = 100;

    /// Meta's ids are decimal numbers; a widget key is letters, digits, `-` and `_`.
    pub fn parse(platform: Platform, raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > Self::MAX_CHARS {
            return Err("must be 1 to 100 characters".to_owned());
        }
        let valid = match platform {
            Platform::WhatsApp | Platform::Instagram => raw.bytes().all(|b| b.is_ascii_digit()),
            Platform::Webchat => raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        };
        if !valid {
            return Err(match platform {
                Platform::WhatsApp | Platform::Instagram => "must be Meta's numeric id".to_owned(),
                Platform::Webchat => "may contain only letters, digits, `-` and `_`".to_owned(),
            });
        }
        Ok(Self(raw.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A WhatsApp Business Account id (numeric).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WabaId(String);

impl WabaId {
    /// The most characters accepted (`phone_numbers.waba_id`).
    pub const MAX_CHARS: usize = 100;

    /// Accepts Meta's numeric id, at most 100 digits.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > Self::MAX_CHARS || !raw.bytes().all(|b| b.is_ascii_digit())
        {
            return Err("must be Meta's numeric WhatsApp Business Account id".to_owned());
        }
        Ok(Self(raw.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A provider access token before it is sealed. Its `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Accepts 1 to 4096 visible ASCII characters.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 4096 {
            return Err("must be 1 to 4096 characters".to_owned());
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be visible ASCII without spaces".to_owned());
        }
        Ok(Self(raw.to_owned()))
    }

    /// The plaintext token, to seal or to send to the provider.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_text_is_trimmed_and_bounded() {
        assert_eq!(
            AgentName::parse("  Sales bot ").map(|n| n.0),
            Ok("Sales bot".to_owned())
        );
        assert_eq!(AgentName::parse("   "), Err("must not be empty".to_owned()));
        assert!(AgentName::parse(&"é".repeat(255)).is_ok());
        assert!(AgentName::parse(&"é".repeat(256)).is_err());
        assert!(AgentName::parse("tab\there").is_err());
    }

    #[test]
    fn prompt_ids_look_like_openai_ones() {
        assert!(PromptId::parse("pmpt_68a1b2c3d4e5f6").is_ok());
        assert!(PromptId::parse("prompt-1").is_err());
        assert!(PromptId::parse("pmpt_").is_err());
        assert!(PromptId::parse("pmpt_has space").is_err());
    }

    #[test]
    fn meta_ids_are_numeric_but_widget_keys_are_not() {
        assert!(MetaChannelId::parse(Platform::WhatsApp, "106540352242922").is_ok());
        assert!(MetaChannelId::parse(Platform::WhatsApp, "abc").is_err());
        assert!(MetaChannelId::parse(Platform::Webchat, "site-main_1").is_ok());
        assert!(MetaChannelId::parse(Platform::Webchat, "a b").is_err());
    }

    #[test]
    fn nul_is_replaced_and_text_without_it_is_borrowed() {
        assert_eq!(replace_nul("hi \0 there"), "hi \u{FFFD} there");
        assert!(matches!(replace_nul("plain"), Cow::Borrowed("plain")));
        assert!(contains_nul("\0"));
        assert!(!contains_nul("é😀"));
    }

    #[test]
    fn truncation_counts_characters_not_bytes() {
        assert_eq!(truncate_chars("é😀ab", 2), "é😀");
        assert_eq!(truncate_chars("ab", 5), "ab");
    }

    #[test]
    fn access_tokens_never_show_in_debug() {
        let token = AccessToken::parse("EAAG-secret").expect("valid");
        assert!(!format!("{token:?}").contains("secret"));
    }
}
