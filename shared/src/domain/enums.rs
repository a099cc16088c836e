//! One enum per CHECK-constrained column. The string of each variant is exactly the value the
//! database accepts and the value the API sends and takes (so these are the one place where
//! a domain type knows its wire form: it is the same everywhere). A test in
//! `functions/migrate` checks every list here against the CHECK constraints of the schema.

use std::{fmt, str::FromStr};

/// The value was not one of the enum's accepted strings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not one of {expected}")]
pub struct UnknownVariant {
    /// What was received.
    pub value: String,
    /// The accepted values, comma separated.
    pub expected: String,
}

macro_rules! db_enum {
    (
        $(#[doc = $doc:literal])*
        $name:ident { $($variant:ident => $text:literal),+ $(,)? }
    ) => {
        $(#[doc = $doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
        )]
        pub enum $name {
            $(#[serde(rename = $text)] $variant,)+
        }

        // Written by hand: utoipa's derive does not see `serde(rename)` through this macro's
        // literals and documented the Rust names (`WhatsApp`), which the API refuses.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some(concat!($($doc),*).trim()))
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl $name {
            /// Every variant, in the order the schema lists them.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The value stored in the database and sent on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                match value {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(UnknownVariant {
                        value: value.to_owned(),
                        expected: [$($text),+].join(", "),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

db_enum!(
    /// `phone_numbers.platform`: the kind of channel.
    Platform { WhatsApp => "whatsapp", Instagram => "instagram", Webchat => "webchat" }
);
db_enum!(
    /// `messages.sender`.
    MessageSender { User => "user", Agent => "agent" }
);
db_enum!(
    /// `messages.status`.
    MessageStatus { Sent => "sent", Failed => "failed", Pending => "pending" }
);
db_enum!(
    /// `message_delivery_status.status`.
    DeliveryStatus {
        Pending => "pending", Sent => "sent", Delivered => "delivered", Read => "read", Failed => "failed",
    }
);
db_enum!(
    /// `extractions.intent_level`, `urgency_level`, `fit_alignment`, `engagement_health`.
    Level { Low => "Low", Medium => "Medium", High => "High" }
);
db_enum!(
    /// `extractions.budget_constraint`.
    BudgetConstraint { Yes => "Yes", No => "No", Maybe => "Maybe" }
);
db_enum!(
    /// `extractions.lead_status_tag`.
    LeadStatus { Hot => "Hot", Warm => "Warm", Cold => "Cold" }
);
db_enum!(
    /// `meetings.status`.
    MeetingStatus {
        Booking => "booking", Scheduled => "scheduled", Cancelled => "cancelled",
        Completed => "completed",
    }
);
db_enum!(
    /// `google_calendar_tokens.health`: `reconnect_needed` once Google refused the refresh
    /// token (`invalid_grant`); the tenant must connect again.
    GoogleHealth { Ok => "ok", ReconnectNeeded => "reconnect_needed" }
);
db_enum!(
    /// `contacts.source`.
    ContactSource { Extraction => "EXTRACTION", Import => "IMPORT", Manual => "MANUAL" }
);
db_enum!(
    /// `templates.category`.
    TemplateCategory { Marketing => "MARKETING", Utility => "UTILITY", Authentication => "AUTHENTICATION" }
);
db_enum!(
    /// `templates.status`.
    TemplateStatus {
        Draft => "DRAFT", Pending => "PENDING", Approved => "APPROVED", Rejected => "REJECTED",
        Paused => "PAUSED", Disabled => "DISABLED",
    }
);
db_enum!(
    /// `templates.parameter_format`: `{{1}}` placeholders or `{{first_name}}` ones.
    ParameterFormat { Positional => "positional", Named => "named" }
);
db_enum!(
    /// `templates.header_type`.
    HeaderType {
        None => "NONE", Text => "TEXT", Image => "IMAGE", Video => "VIDEO", Document => "DOCUMENT",
        Location => "LOCATION",
    }
);
db_enum!(
    /// `template_variables.component_type`.
    ComponentType { Header => "HEADER", Body => "BODY", Button => "BUTTON" }
);
db_enum!(
    /// `template_sends.status`.
    TemplateSendStatus {
        Pending => "PENDING", Sent => "SENT", Delivered => "DELIVERED", Read => "READ", Failed => "FAILED",
    }
);
db_enum!(
    /// `template_buttons.button_type`.
    ButtonType {
        QuickReply => "QUICK_REPLY", Url => "URL", PhoneNumber => "PHONE_NUMBER", CopyCode => "COPY_CODE",
        Otp => "OTP",
    }
);
db_enum!(
    /// `campaigns.status`.
    CampaignStatus {
        Draft => "DRAFT", Scheduled => "SCHEDULED", Running => "RUNNING", Paused => "PAUSED",
        Completed => "COMPLETED", Failed => "FAILED", Cancelled => "CANCELLED",
    }
);
db_enum!(
    /// `campaign_triggers.trigger_type`.
    TriggerType { Immediate => "IMMEDIATE", Scheduled => "SCHEDULED", Event => "EVENT" }
);
db_enum!(
    /// `campaign_triggers.event_type`.
    TriggerEvent {
        NewExtraction => "NEW_EXTRACTION", LeadHot => "LEAD_HOT", LeadWarm => "LEAD_WARM",
        TagAdded => "TAG_ADDED", ConversationEnded => "CONVERSATION_ENDED",
    }
);
db_enum!(
    /// `campaign_recipients.status`.
    RecipientStatus {
        Pending => "PENDING", Queued => "QUEUED", Sent => "SENT", Delivered => "DELIVERED",
        Read => "READ", Failed => "FAILED", Skipped => "SKIPPED",
    }
);
db_enum!(
    /// `campaign_recipients.skip_reason`.
    SkipReason {
        OptedOut => "OPTED_OUT", RateLimited => "RATE_LIMITED", InvalidPhone => "INVALID_PHONE",
        Duplicate => "DUPLICATE", RecentlyContacted => "RECENTLY_CONTACTED",
        Cancelled => "CANCELLED", MarketingOptedOut => "MARKETING_OPTED_OUT",
    }
);

db_enum!(
    /// `conversations.owner`: who answers the customer.
    ConversationOwner { Ai => "ai", Human => "human" }
);
db_enum!(
    /// `messages.author`.
    MessageAuthor { Customer => "customer", Ai => "ai", Human => "human", Template => "template" }
);
db_enum!(
    /// `inbound_messages.state`.
    InboundState { Received => "received", Enqueued => "enqueued", Done => "done" }
);
db_enum!(
    /// `inbound_messages.outcome`: how the worker finished with an inbound message.
    InboundOutcome {
        Replied => "replied", NoAgent => "no_agent", NoCredits => "no_credits", HumanOwner => "human_owner",
        OptedOut => "opted_out", OptedIn => "opted_in", HandedOff => "handed_off", SendFailed => "send_failed",
        NoReply => "no_reply", StoreFailed => "store_failed", AiFailed => "ai_failed",
    }
);
db_enum!(
    /// `conversations.reply_blocked_reason`: why the AI did not answer.
    ReplyBlockedReason { NoCredits => "no_credits", OptedOut => "opted_out", HumanOwner => "human_owner" }
);
db_enum!(
    /// `messages.send_failure`, and what to do about a failed send: `retryable` (rate
    /// limits, throughput, maintenance, outages: try again later; the message stays
    /// `pending`) or `permanent` (the message can never be delivered as it is: outside the
    /// 24-hour window, not a WhatsApp user, a bad token…; the message is `failed`).
    SendFailure { Retryable => "retryable", Permanent => "permanent" }
);
db_enum!(
    /// `phone_numbers.instagram_api`: how an Instagram account was connected.
    InstagramApi { InstagramLogin => "instagram_login", FacebookPage => "facebook_page" }
);

db_enum!(
    /// `rate_limit_counters.scope`: what a fixed-window counter limits.
    LimitScope {
        VisitorMessages => "visitor_messages", IpMessages => "ip_messages",
        WidgetMessages => "widget_messages", TenantDailyReplies => "tenant_daily_replies",
        IpSessions => "ip_sessions", VisitorPolls => "visitor_polls", IpPolls => "ip_polls",
    }
);

/// Every CHECK-constrained column and the values its enum accepts, for the schema test.
pub fn check_constrained_columns() -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    fn values<T: Copy>(all: &[T], as_str: fn(T) -> &'static str) -> Vec<&'static str> {
        all.iter().map(|v| as_str(*v)).collect()
    }
    let level = values(Level::ALL, Level::as_str);
    vec![
        (
            "phone_numbers",
            "platform",
            values(Platform::ALL, Platform::as_str),
        ),
        (
            "messages",
            "sender",
            values(MessageSender::ALL, MessageSender::as_str),
        ),
        (
            "messages",
            "status",
            values(MessageStatus::ALL, MessageStatus::as_str),
        ),
        (
            "messages",
            "send_failure",
            values(SendFailure::ALL, SendFailure::as_str),
        ),
        (
            "messages",
            "author",
            values(MessageAuthor::ALL, MessageAuthor::as_str),
        ),
        (
            "conversations",
            "owner",
            values(ConversationOwner::ALL, ConversationOwner::as_str),
        ),
        (
            "conversations",
            "reply_blocked_reason",
            values(ReplyBlockedReason::ALL, ReplyBlockedReason::as_str),
        ),
        (
            "inbound_messages",
            "state",
            values(InboundState::ALL, InboundState::as_str),
        ),
        (
            "inbound_messages",
            "outcome",
            values(InboundOutcome::ALL, InboundOutcome::as_str),
        ),
        (
            "phone_numbers",
            "instagram_api",
            values(InstagramApi::ALL, InstagramApi::as_str),
        ),
        (
            "message_delivery_status",
            "status",
            values(DeliveryStatus::ALL, DeliveryStatus::as_str),
        ),
        ("extractions", "intent_level", level.clone()),
        ("extractions", "urgency_level", level.clone()),
        ("extractions", "fit_alignment", level.clone()),
        ("extractions", "engagement_health", level),
        (
            "extractions",
            "budget_constraint",
            values(BudgetConstraint::ALL, BudgetConstraint::as_str),
        ),
        (
            "extractions",
            "lead_status_tag",
            values(LeadStatus::ALL, LeadStatus::as_str),
        ),
        (
            "meetings",
            "status",
            values(MeetingStatus::ALL, MeetingStatus::as_str),
        ),
        (
            "google_calendar_tokens",
            "health",
            values(GoogleHealth::ALL, GoogleHealth::as_str),
        ),
        (
            "contacts",
            "source",
            values(ContactSource::ALL, ContactSource::as_str),
        ),
        (
            "contacts",
            "platform",
            values(Platform::ALL, Platform::as_str),
        ),
        (
            "domain_events",
            "event_type",
            values(TriggerEvent::ALL, TriggerEvent::as_str),
        ),
        (
            "templates",
            "category",
            values(TemplateCategory::ALL, TemplateCategory::as_str),
        ),
        (
            "templates",
            "status",
            values(TemplateStatus::ALL, TemplateStatus::as_str),
        ),
        (
            "templates",
            "parameter_format",
            values(ParameterFormat::ALL, ParameterFormat::as_str),
        ),
        (
            "templates",
            "header_type",
            values(HeaderType::ALL, HeaderType::as_str),
        ),
        (
            "template_variables",
            "component_type",
            values(ComponentType::ALL, ComponentType::as_str),
        ),
        (
            "template_sends",
            "status",
            values(TemplateSendStatus::ALL, TemplateSendStatus::as_str),
        ),
        (
            "template_buttons",
            "button_type",
            values(ButtonType::ALL, ButtonType::as_str),
        ),
        (
            "campaigns",
            "status",
            values(CampaignStatus::ALL, CampaignStatus::as_str),
        ),
        (
            "campaign_triggers",
            "trigger_type",
            values(TriggerType::ALL, TriggerType::as_str),
        ),
        (
            "campaign_triggers",
            "event_type",
            values(TriggerEvent::ALL, TriggerEvent::as_str),
        ),
        (
            "campaign_recipients",
            "status",
            values(RecipientStatus::ALL, RecipientStatus::as_str),
        ),
        (
            "campaign_recipients",
            "skip_reason",
            values(SkipReason::ALL, SkipReason::as_str),
        ),
        (
            "rate_limit_counters",
            "scope",
            values(LimitScope::ALL, LimitScope::as_str),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_round_trips_through_its_text() {
        for platform in Platform::ALL {
            assert_eq!(platform.as_str().parse::<Platform>(), Ok(*platform));
        }
        for status in CampaignStatus::ALL {
            assert_eq!(status.as_str().parse::<CampaignStatus>(), Ok(*status));
        }
    }

    #[test]
    fn unknown_values_name_what_is_accepted() {
        let err = "telegram".parse::<Platform>().expect_err("not a platform");
        assert_eq!(
            err.to_string(),
            "`telegram` is not one of whatsapp, instagram, webchat"
        );
    }

    #[test]
    fn the_api_document_lists_the_serialized_values() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(Platform::schema()).expect("serializes");
        assert_eq!(
            schema["enum"],
            serde_json::json!(["whatsapp", "instagram", "webchat"])
        );
        assert_eq!(
            schema["description"],
            "`phone_numbers.platform`: the kind of channel."
        );
        let schema = serde_json::to_value(ConversationOwner::schema()).expect("serializes");
        assert_eq!(schema["enum"], serde_json::json!(["ai", "human"]));
    }

    #[test]
    fn serde_uses_the_database_spelling() {
        let json = serde_json::to_string(&SkipReason::RecentlyContacted).expect("serializes");
        assert_eq!(json, "\"RECENTLY_CONTACTED\"");
        let back: LeadStatus = serde_json::from_str("\"Hot\"").expect("deserializes");
        assert_eq!(back, LeadStatus::Hot);
    }
}
