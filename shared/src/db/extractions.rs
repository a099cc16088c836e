//! Extractions: a conversation scored as a lead, with its history. At most one extraction
//! per conversation is `is_latest` (V1's partial unique index), and at most one exists per
//! message count (V10's unique index): storing takes the conversation's row lock, so two
//! concurrent extractions of one conversation are serialised, the older count never
//! replaces a newer one, and the same count is never stored twice.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{DbError, GenericClient, Transaction, enum_column, optional_enum_column};
use crate::domain::{
    BudgetConstraint, LeadScore, LeadStatus, Level, Platform, UserId, replace_nul,
};

/// The newest extraction of a conversation, as the job compares against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestExtraction {
    pub extraction_id: String,
    pub message_count: i32,
    pub status: Option<LeadStatus>,
}

/// What the extraction job needs to know about a conversation before asking the model.
#[derive(Debug, Clone)]
pub struct ExtractionSubject {
    pub conversation_id: String,
    pub user_id: String,
    pub platform: Platform,
    /// `conversations.customer_phone`: E.164 on WhatsApp, the platform's id elsewhere.
    pub customer_phone: String,
    pub customer_name: Option<String>,
    /// The conversation's messages so far (its highest sequence number: they are gap-free).
    pub message_count: i32,
    /// Customer messages after the latest extraction's count.
    pub new_customer_messages: i64,
    pub latest: Option<LatestExtraction>,
}

/// One of the tenant's conversations, as the extraction job sees it; `None` when it does
/// not exist or belongs to another tenant.
pub async fn subject(
    client: &impl GenericClient,
    user: &str,
    conversation_id: &str,
) -> Result<Option<ExtractionSubject>, DbError> {
    let row = client
        .query_opt(
            "SELECT c.conversation_id, a.user_id, p.platform, c.customer_phone, c.customer_name,
                    COALESCE((SELECT max(sequence_no) FROM messages m WHERE m.conversation_id = c.conversation_id), 0) AS message_count,
                    e.extraction_id::text AS latest_id, e.message_count_at_extraction AS latest_count,
                    e.lead_status_tag AS latest_status,
                    (SELECT count(*) FROM messages m
                      WHERE m.conversation_id = c.conversation_id AND m.sender = 'user'
                        AND m.sequence_no > COALESCE(e.message_count_at_extraction, 0)) AS new_customer_messages
             FROM conversations c
             JOIN agents a ON a.agent_id = c.agent_id
             JOIN phone_numbers p ON p.id = a.phone_number_id
             LEFT JOIN extractions e ON e.conversation_id = c.conversation_id AND e.is_latest
             WHERE c.conversation_id = $1 AND a.user_id = $2",
            &[&conversation_id, &user],
        )
        .await?;
    row.map(|row| {
        let latest_id: Option<String> = row.try_get("latest_id")?;
        let latest = match latest_id {
            Some(extraction_id) => Some(LatestExtraction {
                extraction_id,
                message_count: row.try_get("latest_count")?,
                status: optional_enum_column(&row, "latest_status")?,
            }),
            None => None,
        };
        Ok(ExtractionSubject {
            conversation_id: row.try_get("conversation_id")?,
            user_id: row.try_get("user_id")?,
            platform: enum_column(&row, "platform")?,
            customer_phone: row.try_get("customer_phone")?,
            customer_name: row.try_get("customer_name")?,
            message_count: row.try_get("message_count")?,
            new_customer_messages: row.try_get("new_customer_messages")?,
            latest,
        })
    })
    .transpose()
}

/// One line of the transcript the model reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptLine {
    /// `user` (the customer) or `agent`.
    pub sender: String,
    pub text: String,
}

/// The last `max_messages` messages up to sequence number `up_to`, oldest first. Agent
/// messages that failed to send never reached the customer and are left out.
pub async fn transcript(
    client: &impl GenericClient,
    conversation_id: &str,
    up_to: i32,
    max_messages: i64,
) -> Result<Vec<TranscriptLine>, DbError> {
    let rows = client
        .query(
            "SELECT sender, text FROM (
                 SELECT sender, text, sequence_no FROM messages
                 WHERE conversation_id = $1 AND sequence_no <= $2
                   AND NOT (sender = 'agent' AND status = 'failed')
                 ORDER BY sequence_no DESC LIMIT $3
             ) recent ORDER BY sequence_no",
            &[&conversation_id, &up_to, &max_messages],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(TranscriptLine {
                sender: row.try_get("sender")?,
                text: row.try_get("text")?,
            })
        })
        .collect()
}

/// A checked, scored extraction to store.
#[derive(Debug, Clone)]
pub struct NewExtraction<'a> {
    pub user_id: &'a str,
    pub conversation_id: &'a str,
    pub customer_phone: &'a str,
    pub message_count: i32,
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub company: Option<&'a str>,
    pub intent_level: Level,
    pub urgency_level: Level,
    pub budget_constraint: BudgetConstraint,
    pub fit_alignment: Level,
    pub engagement_health: Level,
    pub score: LeadScore,
    pub demo_book_datetime: Option<DateTime<Utc>>,
    pub reasoning: Value,
    pub smart_notification: &'a str,
    pub requirements: Option<&'a str>,
    pub custom_cta: Option<&'a str>,
    pub in_detail_summary: &'a str,
}

/// What [`store`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// The extraction is the conversation's latest now; `previous` was (and is no longer).
    Inserted {
        extraction_id: uuid::Uuid,
        previous: Option<LatestExtraction>,
    },
    /// An extraction of this message count or a later one exists already: nothing stored.
    AlreadyCovered { latest: LatestExtraction },
}

/// Stores an extraction as the conversation's latest, in the caller's transaction: locks the
/// conversation, gives up if its latest extraction already covers this message count,
/// unflags the previous latest, inserts the new one and sets
/// `conversations.last_extraction_at`.
pub async fn store(tx: &Transaction<'_>, new: &NewExtraction<'_>) -> Result<Stored, DbError> {
    tx.query_opt(
        "SELECT 1 FROM conversations WHERE conversation_id = $1 FOR UPDATE",
        &[&new.conversation_id],
    )
    .await?;
    let previous = tx
        .query_opt(
            "SELECT extraction_id::text AS extraction_id, message_count_at_extraction, lead_status_tag
             FROM extractions WHERE conversation_id = $1 AND is_latest",
            &[&new.conversation_id],
        )
        .await?
        .map(|row| {
            Ok::<_, DbError>(LatestExtraction {
                extraction_id: row.try_get("extraction_id")?,
                message_count: row.try_get("message_count_at_extraction")?,
                status: optional_enum_column(&row, "lead_status_tag")?,
            })
        })
        .transpose()?;
    if let Some(latest) = previous.as_ref() {
        if latest.message_count >= new.message_count {
            return Ok(Stored::AlreadyCovered {
                latest: latest.clone(),
            });
        }
        tx.execute(
            "UPDATE extractions SET is_latest = false, updated_at = CURRENT_TIMESTAMP
             WHERE conversation_id = $1 AND is_latest",
            &[&new.conversation_id],
        )
        .await?;
    }
    let text = |value: Option<&str>| value.map(|v| replace_nul(v).into_owned());
    let row = tx
        .query_one(
            "INSERT INTO extractions (
                 conversation_id, user_id, customer_phone, is_latest, message_count_at_extraction,
                 name, email, company,
                 intent_level, intent_score, urgency_level, urgency_score,
                 budget_constraint, budget_score, fit_alignment, fit_score,
                 engagement_health, engagement_score, total_score, lead_status_tag,
                 demo_book_datetime, reasoning, smart_notification, requirements, custom_cta,
                 in_detail_summary)
             VALUES ($1, $2, $3, true, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                     $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)
             RETURNING extraction_id",
            &[
                &new.conversation_id,
                &new.user_id,
                &new.customer_phone,
                &new.message_count,
                &text(new.name),
                &text(new.email),
                &text(new.company),
                &new.intent_level.as_str(),
                &new.score.intent,
                &new.urgency_level.as_str(),
                &new.score.urgency,
                &new.budget_constraint.as_str(),
                &new.score.budget,
                &new.fit_alignment.as_str(),
                &new.score.fit,
                &new.engagement_health.as_str(),
                &new.score.engagement,
                &new.score.total,
                &new.score.status.as_str(),
                &new.demo_book_datetime,
                &new.reasoning,
                &replace_nul(new.smart_notification),
                &text(new.requirements),
                &text(new.custom_cta),
                &replace_nul(new.in_detail_summary),
            ],
        )
        .await?;
    tx.execute(
        "UPDATE conversations SET last_extraction_at = CURRENT_TIMESTAMP WHERE conversation_id = $1",
        &[&new.conversation_id],
    )
    .await?;
    Ok(Stored::Inserted {
        extraction_id: row.try_get(0)?,
        previous,
    })
}

/// An extraction as the API shows it.
#[derive(Debug, Clone)]
pub struct ExtractionView {
    pub extraction_id: String,
    pub conversation_id: String,
    pub customer_phone: String,
    pub extracted_at: DateTime<Utc>,
    pub is_latest: bool,
    pub message_count_at_extraction: i32,
    pub name: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub intent_level: Option<Level>,
    pub intent_score: Option<i32>,
    pub urgency_level: Option<Level>,
    pub urgency_score: Option<i32>,
    pub budget_constraint: Option<BudgetConstraint>,
    pub budget_score: Option<i32>,
    pub fit_alignment: Option<Level>,
    pub fit_score: Option<i32>,
    pub engagement_health: Option<Level>,
    pub engagement_score: Option<i32>,
    pub total_score: Option<i32>,
    pub lead_status_tag: Option<LeadStatus>,
    pub demo_book_datetime: Option<DateTime<Utc>>,
    pub reasoning: Option<Value>,
    pub smart_notification: Option<String>,
    pub requirements: Option<String>,
    pub custom_cta: Option<String>,
    pub in_detail_summary: Option<String>,
}

impl ExtractionView {
    /// The key of this row in a list cursor: `extracted_at|extraction_id`.
    pub fn cursor_key(&self) -> String {
        format!(
            "{}|{}",
            self.extracted_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            self.extraction_id
        )
    }
}

const VIEW_SELECT: &str = "SELECT extraction_id::text AS extraction_id, conversation_id, customer_phone,
        extracted_at, is_latest, message_count_at_extraction, name, email, company,
        intent_level, intent_score, urgency_level, urgency_score, budget_constraint, budget_score,
        fit_alignment, fit_score, engagement_health, engagement_score, total_score, lead_status_tag,
        demo_book_datetime, reasoning, smart_notification, requirements, custom_cta, in_detail_summary
 FROM extractions";

/// Filters of the tenant's extraction list.
#[derive(Debug, Clone, Default)]
pub struct ExtractionFilter {
    /// Only each conversation's latest (the default of the API).
    pub latest_only: bool,
    pub lead_status: Option<LeadStatus>,
    pub min_score: Option<i32>,
    /// `extracted_at >= from`.
    pub from: Option<DateTime<Utc>>,
    /// `extracted_at < to`.
    pub to: Option<DateTime<Utc>>,
    /// Only this conversation's.
    pub conversation_id: Option<String>,
}

/// Splits a cursor key of [`ExtractionView::cursor_key`] (keys are signed: they parse).
fn split_key(key: Option<&str>) -> Option<(DateTime<Utc>, uuid::Uuid)> {
    let (at, id) = key?.split_once('|')?;
    Some((
        DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc),
        uuid::Uuid::parse_str(id).ok()?,
    ))
}

/// The tenant's extractions, newest first, after the cursor key `before`.
pub async fn list(
    client: &impl GenericClient,
    user: &UserId,
    filter: &ExtractionFilter,
    before: Option<&str>,
    fetch: i64,
) -> Result<Vec<ExtractionView>, DbError> {
    let after = split_key(before);
    let (before_at, before_id) = (after.map(|k| k.0), after.map(|k| k.1));
    let rows = client
        .query(
            &format!(
                "{VIEW_SELECT}
                 WHERE user_id = $1
                   AND ($2::boolean IS FALSE OR is_latest)
                   AND ($3::text IS NULL OR lead_status_tag = $3)
                   AND ($4::int IS NULL OR total_score >= $4)
                   AND ($5::timestamptz IS NULL OR extracted_at >= $5)
                   AND ($6::timestamptz IS NULL OR extracted_at < $6)
                   AND ($7::text IS NULL OR conversation_id = $7)
                   AND ($8::timestamptz IS NULL OR (extracted_at, extraction_id) < ($8, $9::uuid))
                 ORDER BY extracted_at DESC, extraction_id DESC
                 LIMIT $10"
            ),
            &[
                &user.as_str(),
                &filter.latest_only,
                &filter.lead_status.map(LeadStatus::as_str),
                &filter.min_score,
                &filter.from,
                &filter.to,
                &filter.conversation_id,
                &before_at,
                &before_id,
                &fetch,
            ],
        )
        .await?;
    rows.iter().map(view_from_row).collect()
}

/// One of the tenant's extractions by id.
pub async fn get(
    client: &impl GenericClient,
    user: &UserId,
    extraction_id: uuid::Uuid,
) -> Result<Option<ExtractionView>, DbError> {
    client
        .query_opt(
            &format!("{VIEW_SELECT} WHERE extraction_id = $1 AND user_id = $2"),
            &[&extraction_id, &user.as_str()],
        )
        .await?
        .map(|row| view_from_row(&row))
        .transpose()
}

fn view_from_row(row: &tokio_postgres::Row) -> Result<ExtractionView, DbError> {
    Ok(ExtractionView {
        extraction_id: row.try_get("extraction_id")?,
        conversation_id: row.try_get("conversation_id")?,
        customer_phone: row.try_get("customer_phone")?,
        extracted_at: row.try_get("extracted_at")?,
        is_latest: row.try_get("is_latest")?,
        message_count_at_extraction: row.try_get("message_count_at_extraction")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        company: row.try_get("company")?,
        intent_level: optional_enum_column(row, "intent_level")?,
        intent_score: row.try_get("intent_score")?,
        urgency_level: optional_enum_column(row, "urgency_level")?,
        urgency_score: row.try_get("urgency_score")?,
        budget_constraint: optional_enum_column(row, "budget_constraint")?,
        budget_score: row.try_get("budget_score")?,
        fit_alignment: optional_enum_column(row, "fit_alignment")?,
        fit_score: row.try_get("fit_score")?,
        engagement_health: optional_enum_column(row, "engagement_health")?,
        engagement_score: row.try_get("engagement_score")?,
        total_score: row.try_get("total_score")?,
        lead_status_tag: optional_enum_column(row, "lead_status_tag")?,
        demo_book_datetime: row.try_get("demo_book_datetime")?,
        reasoning: row.try_get("reasoning")?,
        smart_notification: row.try_get("smart_notification")?,
        requirements: row.try_get("requirements")?,
        custom_cta: row.try_get("custom_cta")?,
        in_detail_summary: row.try_get("in_detail_summary")?,
    })
}

/// A conversation the sweep picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweptConversation {
    pub user_id: String,
    pub conversation_id: String,
}

/// Claims the active conversations, active within `active_within`, that have at least
/// `threshold` customer messages after their latest extraction and no open request: none
/// yet, one already served (an extraction since), or one older than `retry_after` (lost, or
/// failing). Claiming sets `extraction_requested_at`, so the next sweep does not ask again
/// while this request is on its way; two concurrent sweeps claim disjoint rows.
pub async fn claim_due_for_new_messages(
    client: &impl GenericClient,
    threshold: i64,
    active_within: chrono::Duration,
    retry_after: chrono::Duration,
    limit: i64,
) -> Result<Vec<SweptConversation>, DbError> {
    let since = Utc::now() - active_within;
    let stale = Utc::now() - retry_after;
    let rows = client
        .query(
            "WITH due AS (
                 SELECT c.conversation_id
                 FROM conversations c
                 LEFT JOIN extractions e ON e.conversation_id = c.conversation_id AND e.is_latest
                 WHERE c.is_active AND c.last_message_at >= $1
                   AND (c.extraction_requested_at IS NULL
                        OR c.extraction_requested_at < c.last_extraction_at
                        OR c.extraction_requested_at < $3)
                   AND (SELECT count(*) FROM messages m
                         WHERE m.conversation_id = c.conversation_id AND m.sender = 'user'
                           AND m.sequence_no > COALESCE(e.message_count_at_extraction, 0)) >= $2
                 ORDER BY c.last_message_at
                 LIMIT $4
                 FOR UPDATE OF c SKIP LOCKED
             )
             UPDATE conversations c SET extraction_requested_at = CURRENT_TIMESTAMP
             FROM due, agents a
             WHERE c.conversation_id = due.conversation_id AND a.agent_id = c.agent_id
             RETURNING a.user_id, c.conversation_id",
            &[&since, &threshold, &stale, &limit],
        )
        .await?;
    rows.iter().map(swept_from_row).collect()
}

/// Gives a claim of [`claim_due_for_new_messages`] back (its job could not be published),
/// so the next sweep asks again.
pub async fn release_request(
    client: &impl GenericClient,
    conversation_id: &str,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE conversations SET extraction_requested_at = NULL WHERE conversation_id = $1",
            &[&conversation_id],
        )
        .await?;
    Ok(())
}

/// Active conversations quiet for longer than `quiet` whose final extraction of this quiet
/// period has not been asked for yet (oldest first).
pub async fn quiet_unhandled(
    client: &impl GenericClient,
    quiet: chrono::Duration,
    limit: i64,
) -> Result<Vec<SweptConversation>, DbError> {
    let before = Utc::now() - quiet;
    let rows = client
        .query(
            "SELECT a.user_id, c.conversation_id
             FROM conversations c JOIN agents a ON a.agent_id = c.agent_id
             WHERE c.is_active AND c.last_message_at < $1
               AND (c.quiet_extraction_at IS NULL OR c.quiet_extraction_at < c.last_message_at)
             ORDER BY c.last_message_at
             LIMIT $2",
            &[&before, &limit],
        )
        .await?;
    rows.iter().map(swept_from_row).collect()
}

/// Marks the final extraction of a conversation's quiet period asked for, if it still is
/// quiet and unmarked (concurrent sweeps: one wins). `true` when this call marked it.
pub async fn mark_quiet_handled(
    tx: &impl GenericClient,
    conversation_id: &str,
    quiet: chrono::Duration,
) -> Result<bool, DbError> {
    let before = Utc::now() - quiet;
    let updated = tx
        .execute(
            "UPDATE conversations SET quiet_extraction_at = CURRENT_TIMESTAMP
             WHERE conversation_id = $1 AND is_active AND last_message_at < $2
               AND (quiet_extraction_at IS NULL OR quiet_extraction_at < last_message_at)",
            &[&conversation_id, &before],
        )
        .await?;
    Ok(updated == 1)
}

fn swept_from_row(row: &tokio_postgres::Row) -> Result<SweptConversation, DbError> {
    Ok(SweptConversation {
        user_id: row.try_get("user_id")?,
        conversation_id: row.try_get("conversation_id")?,
    })
}
