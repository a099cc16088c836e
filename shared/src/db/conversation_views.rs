//! Conversations and messages as the dashboard reads them, always scoped to the tenant
//! through the conversation's agent.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::{DbError, GenericClient, PageRequest, enum_column, optional_enum_column};
use crate::domain::{
    AgentId, ConversationId, ConversationOwner, DeliveryStatus, InstagramApi, MessageAuthor,
    MessageId, MessageSender, MessageStatus, PhoneNumberId, Platform, ReplyBlockedReason, UserId,
};

/// WhatsApp's customer-service window: free-form messages are allowed for 24 hours after
/// the customer's last message.
pub const SERVICE_WINDOW: Duration = Duration::hours(24);

/// A conversation with what the dashboard shows next to it.
#[derive(Debug, Clone)]
pub struct ConversationView {
    pub conversation_id: ConversationId,
    pub agent_id: AgentId,
    pub phone_number_id: PhoneNumberId,
    pub platform: Platform,
    pub customer_phone: String,
    pub customer_name: Option<String>,
    pub is_active: bool,
    pub owner: ConversationOwner,
    pub owner_changed_at: Option<DateTime<Utc>>,
    pub handoff_reason: Option<String>,
    pub reply_blocked_reason: Option<ReplyBlockedReason>,
    pub created_at: DateTime<Utc>,
    pub last_message_at: DateTime<Utc>,
    pub last_customer_message_at: Option<DateTime<Utc>>,
    pub last_message: Option<LastMessage>,
    /// Channel details the API needs to send on it (never returned).
    pub meta_phone_number_id: String,
    pub sealed_access_token: Option<String>,
    pub instagram_api: Option<InstagramApi>,
}

impl ConversationView {
    /// Until when a free-form message may be sent (WhatsApp only; other channels have no
    /// window).
    pub fn window_open_until(&self) -> Option<DateTime<Utc>> {
        match self.platform {
            Platform::WhatsApp => self.last_customer_message_at.map(|at| at + SERVICE_WINDOW),
            _ => None,
        }
    }

    /// Whether a free-form message may be sent now.
    pub fn window_is_open(&self, now: DateTime<Utc>) -> bool {
        match self.platform {
            Platform::WhatsApp => self.window_open_until().is_some_and(|until| now < until),
            _ => true,
        }
    }

    /// The key of this row in a list cursor.
    pub fn cursor_key(&self) -> String {
        ConversationKey {
            last_message_at: self.last_message_at,
            conversation_id: self.conversation_id.clone(),
        }
        .to_string()
    }
}

/// Where a page of the conversation list starts: the list is ordered by last activity, then
/// id, newest first. In a cursor it reads `<last_message_at in RFC 3339, µs>|<conversation_id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationKey {
    pub last_message_at: DateTime<Utc>,
    pub conversation_id: ConversationId,
}

impl ConversationKey {
    /// Reads the key of a cursor; `None` when it is not one (the API answers 400 naming
    /// `cursor`, instead of silently starting from the first page).
    pub fn parse(raw: &str) -> Option<Self> {
        let (at, id) = raw.split_once('|')?;
        Some(Self {
            last_message_at: DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc),
            conversation_id: ConversationId::parse(id)?,
        })
    }
}

impl std::fmt::Display for ConversationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}|{}",
            self.last_message_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            self.conversation_id
        )
    }
}

/// The newest message of a conversation.
#[derive(Debug, Clone)]
pub struct LastMessage {
    pub text: String,
    pub sender: MessageSender,
    pub timestamp: DateTime<Utc>,
}

/// List filters.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    pub agent_id: Option<AgentId>,
    pub is_active: Option<bool>,
    pub owner: Option<ConversationOwner>,
    pub customer_phone: Option<String>,
}

const VIEW_SELECT: &str = "SELECT c.conversation_id, c.agent_id, a.phone_number_id, p.platform, c.customer_phone,
        c.customer_name, c.is_active, c.owner, c.owner_changed_at, c.handoff_reason, c.reply_blocked_reason,
        c.created_at, c.last_message_at, c.last_customer_message_at,
        p.meta_phone_number_id, p.access_token, p.instagram_api,
        lm.text AS last_text, lm.sender AS last_sender, lm.\"timestamp\" AS last_timestamp
 FROM conversations c
 JOIN agents a ON a.agent_id = c.agent_id
 JOIN phone_numbers p ON p.id = a.phone_number_id
 LEFT JOIN LATERAL (
     SELECT text, sender, \"timestamp\" FROM messages m
     WHERE m.conversation_id = c.conversation_id ORDER BY sequence_no DESC LIMIT 1
 ) lm ON true";

/// The tenant's conversations, newest activity first.
pub async fn list(
    client: &impl GenericClient,
    user: &UserId,
    filter: &ConversationFilter,
    page: &PageRequest<ConversationKey>,
) -> Result<Vec<ConversationView>, DbError> {
    let before_at = page.before.as_ref().map(|key| key.last_message_at);
    let before_id = page.before.as_ref().map(|key| key.conversation_id.as_str());
    let rows = client
        .query(
            &format!(
                "{VIEW_SELECT}
                 WHERE a.user_id = $1
                   AND ($2::text IS NULL OR c.agent_id = $2)
                   AND ($3::boolean IS NULL OR c.is_active = $3)
                   AND ($4::text IS NULL OR c.owner = $4)
                   AND ($5::text IS NULL OR c.customer_phone = $5)
                   AND ($6::timestamptz IS NULL OR (c.last_message_at, c.conversation_id) < ($6, $7::text))
                 ORDER BY c.last_message_at DESC, c.conversation_id DESC
                 LIMIT $8"
            ),
            &[
                &user.as_str(),
                &filter.agent_id.as_ref().map(AgentId::as_str),
                &filter.is_active,
                &filter.owner.map(ConversationOwner::as_str),
                &filter.customer_phone,
                &before_at,
                &before_id,
                &page.fetch,
            ],
        )
        .await?;
    rows.iter().map(view_from_row).collect()
}

/// One of the tenant's conversations.
pub async fn get(
    client: &impl GenericClient,
    user: &UserId,
    id: &ConversationId,
) -> Result<Option<ConversationView>, DbError> {
    client
        .query_opt(
            &format!("{VIEW_SELECT} WHERE c.conversation_id = $1 AND a.user_id = $2"),
            &[&id.as_str(), &user.as_str()],
        )
        .await?
        .map(|row| view_from_row(&row))
        .transpose()
}

/// A message with its delivery status.
#[derive(Debug, Clone)]
pub struct MessageView {
    pub message_id: MessageId,
    pub sequence_no: i32,
    pub sender: MessageSender,
    pub author: Option<MessageAuthor>,
    pub text: String,
    pub message_type: String,
    pub metadata: Value,
    pub timestamp: DateTime<Utc>,
    pub status: MessageStatus,
    pub delivery_status: Option<DeliveryStatus>,
    pub error_code: Option<String>,
}

/// Messages of one of the tenant's conversations after `after` (a sequence number), oldest
/// first; `None` when the conversation is not the tenant's.
pub async fn messages(
    client: &impl GenericClient,
    user: &UserId,
    id: &ConversationId,
    after: i32,
    fetch: i64,
) -> Result<Option<Vec<MessageView>>, DbError> {
    let owned = client
        .query_opt(
            "SELECT 1 FROM conversations c JOIN agents a ON a.agent_id = c.agent_id
             WHERE c.conversation_id = $1 AND a.user_id = $2",
            &[&id.as_str(), &user.as_str()],
        )
        .await?;
    if owned.is_none() {
        return Ok(None);
    }
    messages_after(client, id, after, fetch).await.map(Some)
}

const MESSAGE_SELECT: &str =
    "SELECT m.message_id, m.sequence_no, m.sender, m.author, m.text, m.message_type,
        m.metadata, m.\"timestamp\", m.status, d.status AS delivery_status, m.error_code
 FROM messages m LEFT JOIN message_delivery_status d ON d.message_id = m.message_id";

/// The active conversation of a customer on a channel, if there is one (no tenant check:
/// the channel is the scope).
pub async fn active_conversation_id(
    client: &impl GenericClient,
    phone_number_id: &PhoneNumberId,
    customer_phone: &str,
) -> Result<Option<ConversationId>, DbError> {
    let row = client
        .query_opt(
            "SELECT c.conversation_id FROM conversations c JOIN agents a ON a.agent_id = c.agent_id
             WHERE a.phone_number_id = $1 AND c.customer_phone = $2 AND c.is_active",
            &[&phone_number_id.as_str(), &customer_phone],
        )
        .await?;
    Ok(row
        .map(|row| row.try_get(0).map(ConversationId::from_trusted))
        .transpose()?)
}

/// Messages of a conversation after a sequence number (no tenant check: callers scope).
pub async fn messages_after(
    client: &impl GenericClient,
    conversation_id: &ConversationId,
    after: i32,
    fetch: i64,
) -> Result<Vec<MessageView>, DbError> {
    let rows = client
        .query(
            &format!("{MESSAGE_SELECT} WHERE m.conversation_id = $1 AND m.sequence_no > $2 ORDER BY m.sequence_no LIMIT $3"),
            &[&conversation_id.as_str(), &after, &fetch],
        )
        .await?;
    rows.iter().map(message_from_row).collect()
}

/// One message by id (no tenant check: callers scope).
pub async fn message(
    client: &impl GenericClient,
    message_id: &MessageId,
) -> Result<Option<MessageView>, DbError> {
    client
        .query_opt(
            &format!("{MESSAGE_SELECT} WHERE m.message_id = $1"),
            &[&message_id.as_str()],
        )
        .await?
        .map(|row| message_from_row(&row))
        .transpose()
}

fn message_from_row(row: &tokio_postgres::Row) -> Result<MessageView, DbError> {
    Ok(MessageView {
        message_id: MessageId::from_trusted(row.try_get("message_id")?),
        sequence_no: row.try_get("sequence_no")?,
        sender: enum_column(row, "sender")?,
        author: optional_enum_column(row, "author")?,
        text: row.try_get("text")?,
        message_type: row.try_get("message_type")?,
        metadata: row.try_get("metadata")?,
        timestamp: row.try_get("timestamp")?,
        status: enum_column(row, "status")?,
        delivery_status: optional_enum_column(row, "delivery_status")?,
        error_code: row.try_get("error_code")?,
    })
}

fn view_from_row(row: &tokio_postgres::Row) -> Result<ConversationView, DbError> {
    let last_text: Option<String> = row.try_get("last_text")?;
    let last_sender: Option<MessageSender> = optional_enum_column(row, "last_sender")?;
    let last_timestamp: Option<DateTime<Utc>> = row.try_get("last_timestamp")?;
    Ok(ConversationView {
        conversation_id: ConversationId::from_trusted(row.try_get("conversation_id")?),
        agent_id: AgentId::from_trusted(row.try_get("agent_id")?),
        phone_number_id: PhoneNumberId::from_trusted(row.try_get("phone_number_id")?),
        platform: enum_column(row, "platform")?,
        customer_phone: row.try_get("customer_phone")?,
        customer_name: row.try_get("customer_name")?,
        is_active: row.try_get("is_active")?,
        owner: enum_column(row, "owner")?,
        owner_changed_at: row.try_get("owner_changed_at")?,
        handoff_reason: row.try_get("handoff_reason")?,
        reply_blocked_reason: optional_enum_column(row, "reply_blocked_reason")?,
        created_at: row.try_get("created_at")?,
        last_message_at: row.try_get("last_message_at")?,
        last_customer_message_at: row.try_get("last_customer_message_at")?,
        last_message: match (last_text, last_sender, last_timestamp) {
            (Some(text), Some(sender), Some(timestamp)) => Some(LastMessage {
                text,
                sender,
                timestamp,
            }),
            _ => None,
        },
        meta_phone_number_id: row.try_get("meta_phone_number_id")?,
        sealed_access_token: row.try_get("access_token")?,
        instagram_api: optional_enum_column(row, "instagram_api")?,
    })
}
