use std::fmt;

/// Defines a prefixed, time-sortable id: `<prefix>_<ulid in lowercase>`, at most 31 bytes,
/// so it fits the schema's VARCHAR(50) keys and sorts by creation time.
macro_rules! prefixed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with (without the underscore).
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id, sortable by creation time.
            pub fn generate() -> Self {
                Self(format!("{}_{}", $prefix, ulid::Ulid::new().to_string().to_lowercase()))
            }

            /// Parses an id received from outside; `None` when it is not of this kind, so a
            /// malformed id in a path is simply "not found".
            pub fn parse(raw: &str) -> Option<Self> {
                let rest = raw.strip_prefix(concat!($prefix, "_"))?;
                let valid = rest.len() == 26
                    && rest.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
                    && ulid::Ulid::from_string(&rest.to_ascii_uppercase()).is_ok();
                valid.then(|| Self(raw.to_owned()))
            }

            /// Wraps an id read back from the database, which only ever stores valid ids.
            pub fn from_trusted(raw: String) -> Self {
                Self(raw)
            }

            /// The id as stored and sent on the wire.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

prefixed_id!(
    /// A channel: `phone_numbers.id`.
    PhoneNumberId, "pn"
);
prefixed_id!(
    /// `agents.agent_id`.
    AgentId, "agt"
);
prefixed_id!(
    /// `conversation_archives.archive_id`.
    ArchiveId, "arc"
);
prefixed_id!(
    /// `conversations.conversation_id`.
    ConversationId, "conv"
);
prefixed_id!(
    /// `messages.message_id` for messages we create (inbound ones keep their own key).
    MessageId, "msg"
);
prefixed_id!(
    /// `contacts.contact_id`.
    ContactId, "ct"
);
prefixed_id!(
    /// `meetings.meeting_id`.
    MeetingId, "mtg"
);
prefixed_id!(
    /// `templates.template_id`.
    TemplateId, "tpl"
);
prefixed_id!(
    /// `template_variables.variable_id`.
    TemplateVariableId, "tvar"
);
prefixed_id!(
    /// `template_buttons.button_id`.
    TemplateButtonId, "tbtn"
);
prefixed_id!(
    /// `template_sends.send_id`.
    TemplateSendId, "tsend"
);
prefixed_id!(
    /// `button_clicks.click_id`.
    ButtonClickId, "clk"
);
prefixed_id!(
    /// `campaigns.campaign_id`.
    CampaignId, "cmp"
);
prefixed_id!(
    /// `campaign_triggers.trigger_id`.
    CampaignTriggerId, "trg"
);
prefixed_id!(
    /// `campaign_recipients.recipient_id`.
    CampaignRecipientId, "rcp"
);

/// The tenant: `users.user_id`, which is the identity provider's subject (the JWT `sub`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(String);

impl UserId {
    /// The longest subject the schema can hold.
    pub const MAX_LEN: usize = 50;

    /// Accepts a JWT subject: 1 to 50 visible ASCII characters.
    pub fn parse(raw: &str) -> Option<Self> {
        let valid = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw.bytes().all(|b| b.is_ascii_graphic());
        valid.then(|| Self(raw.to_owned()))
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_carry_their_prefix_fit_the_schema_and_parse_back() {
        let id = AgentId::generate();
        assert!(id.as_str().starts_with("agt_"));
        assert!(id.as_str().len() <= 50);
        assert_eq!(AgentId::parse(id.as_str()), Some(id));
    }

    #[test]
    fn ids_of_another_kind_or_malformed_do_not_parse() {
        let channel = PhoneNumberId::generate();
        assert_eq!(AgentId::parse(channel.as_str()), None);
        for bad in [
            "",
            "agt_",
            "agt_123",
            "agt_01J0000000000000000000000!",
            "AGT_01j00000000000000000000000",
        ] {
            assert_eq!(AgentId::parse(bad), None, "{bad:?} must not parse");
        }
    }

    #[test]
    fn ids_generated_later_sort_later() {
        let first = ArchiveId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = ArchiveId::generate();
        assert!(first < second);
    }

    #[test]
    fn user_ids_are_bounded_visible_ascii() {
        assert!(UserId::parse("google-oauth2|1234").is_some());
        assert!(UserId::parse("").is_none());
        assert!(UserId::parse("has space").is_none());
        assert!(UserId::parse(&"x".repeat(51)).is_none());
    }
}
