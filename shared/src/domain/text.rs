//! Validated text values taken from requests. Each parse trims surrounding white space and
//! returns a message that completes the sentence "<field> ..." for the problem body.

use super::Platform;

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
    /// `users.company_name`.
    CompanyName, max = 255
);

/// An OpenAI stored prompt id (`pmpt_…`), `agents.prompt_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptId(String);

impl PromptId {
    /// Accepts `pmpt_` followed by letters, digits and underscores, at most 100 in all.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let Some(rest) = raw.strip_prefix("pmpt_") else {
            return Err("must be an OpenAI prompt id starting with `pmpt_`".to_owned());
        };
        if rest.is_empty() || raw.len() > 100 {
            return Err("must be `pmpt_` followed by 1 to 95 characters".to_owned());
        }
        if !rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err("may contain only letters, digits and underscores".to_owned());
        }
        Ok(Self(raw.to_owned()))
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
    /// Meta's ids are decimal numbers; a widget key is letters, digits, `-` and `_`.
    pub fn parse(platform: Platform, raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 100 {
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
    /// Accepts Meta's numeric id, at most 100 digits.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 100 || !raw.bytes().all(|b| b.is_ascii_digit()) {
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
    fn access_tokens_never_show_in_debug() {
        let token = AccessToken::parse("EAAG-secret").expect("valid");
        assert!(!format!("{token:?}").contains("secret"));
    }
}
