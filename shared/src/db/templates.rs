//! `templates`, `template_variables` and `template_buttons`: a tenant's WhatsApp templates,
//! written and read together. The authored `{header, body, footer, buttons}` is kept in
//! `components`; variables and buttons are rows of their own (buttons carry their click
//! counters). Every query takes the tenant, except the webhook's, which match a template by
//! Meta's id *and* the WABA the event came for.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{DbError, GenericClient, PageRequest, Transaction, enum_column};
use crate::{
    domain::{
        AgentId, ButtonType, CampaignStatus, ComponentType, ConversationId, MessageAuthor,
        MessageId, ParameterFormat, PhoneNumberId, Platform, TemplateButtonId, TemplateCategory,
        TemplateId, TemplateSendId, TemplateSendStatus, TemplateStatus, TemplateVariableId, UserId,
    },
    templates::{Button, Header, TemplateContent, TemplateDraft, TextPart, Variable},
};

/// A stored template with its variables and buttons.
#[derive(Debug, Clone)]
pub struct Template {
    pub template_id: TemplateId,
    pub phone_number_id: PhoneNumberId,
    pub draft: TemplateDraft,
    pub status: TemplateStatus,
    pub waba_id: Option<String>,
    pub meta_template_id: Option<String>,
    pub rejection_reason: Option<String>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub approved_at: Option<DateTime<Utc>>,
    /// Meta's own last event (`FLAGGED`, `IN_APPEAL`, …) and its details.
    pub meta_status: Option<String>,
    pub meta_status_details: Value,
    pub meta_status_at: Option<DateTime<Utc>>,
    pub quality_score: Option<String>,
    pub quality_updated_at: Option<DateTime<Utc>>,
    pub category_update: Option<Value>,
    pub category_updated_at: Option<DateTime<Utc>>,
    pub submission_error: Option<Value>,
    /// The buttons' ids and counters, in `draft.content.buttons` order.
    pub buttons: Vec<StoredButton>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A button's row: its id and click counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredButton {
    pub button_id: TemplateButtonId,
    pub button_index: i32,
    pub total_clicks: i32,
    pub unique_clicks: i32,
}

/// The channel a template belongs to, as the template routes need it.
#[derive(Debug, Clone)]
pub struct TemplateChannel {
    pub id: PhoneNumberId,
    pub platform: Platform,
    pub meta_phone_number_id: String,
    pub waba_id: Option<String>,
    pub sealed_access_token: Option<String>,
}

/// List filters.
#[derive(Debug, Clone, Default)]
pub struct TemplateFilter {
    pub status: Option<TemplateStatus>,
    pub phone_number_id: Option<PhoneNumberId>,
    pub category: Option<TemplateCategory>,
}

/// The authored parts kept in `templates.components`.
#[derive(Debug, Serialize, Deserialize)]
struct StoredComponents {
    header: Header,
    body: TextPart,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    footer: Option<TextPart>,
    #[serde(default)]
    buttons: Vec<Button>,
}

const TEMPLATE_COLUMNS: &str = "template_id, phone_number_id, name, category, status, language,
    parameter_format, components, waba_id, meta_template_id, rejection_reason, submitted_at,
    approved_at, meta_status, meta_status_details, meta_status_at, quality_score,
    quality_updated_at, category_update, category_updated_at, submission_error, created_at,
    updated_at";

/// One of the tenant's channels.
pub async fn channel(
    client: &impl GenericClient,
    user: &UserId,
    id: &PhoneNumberId,
) -> Result<Option<TemplateChannel>, DbError> {
    client
        .query_opt(
            "SELECT id, platform, meta_phone_number_id, waba_id, access_token
             FROM phone_numbers WHERE id = $1 AND user_id = $2",
            &[&id.as_str(), &user.as_str()],
        )
        .await?
        .map(|row| {
            Ok(TemplateChannel {
                id: PhoneNumberId::from_trusted(row.try_get("id")?),
                platform: enum_column(&row, "platform")?,
                meta_phone_number_id: row.try_get("meta_phone_number_id")?,
                waba_id: row.try_get("waba_id")?,
                sealed_access_token: row.try_get("access_token")?,
            })
        })
        .transpose()
}

fn components_json(content: &TemplateContent) -> Result<Value, DbError> {
    serde_json::to_value(StoredComponents {
        header: content.header.clone(),
        body: content.body.clone(),
        footer: content.footer.clone(),
        buttons: content.buttons.clone(),
    })
    .map_err(|e| DbError::Corrupt {
        column: "components",
        detail: e.to_string(),
    })
}

/// Writes the template's variables and buttons (after deleting earlier ones).
async fn write_parts(
    tx: &Transaction<'_>,
    id: &TemplateId,
    content: &TemplateContent,
) -> Result<(), DbError> {
    tx.execute(
        "DELETE FROM template_variables WHERE template_id = $1",
        &[&id.as_str()],
    )
    .await?;
    tx.execute(
        "DELETE FROM template_buttons WHERE template_id = $1",
        &[&id.as_str()],
    )
    .await?;
    for variable in &content.variables {
        tx.execute(
            "INSERT INTO template_variables (variable_id, template_id, variable_name, position,
                 component_type, dashboard_mapping, default_value, sample_value)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &TemplateVariableId::generate().as_str(),
                &id.as_str(),
                &variable.variable_name,
                &variable.position,
                &variable.component_type.as_str(),
                &variable.dashboard_mapping,
                &variable.default_value,
                &variable.sample_value,
            ],
        )
        .await?;
    }
    for (index, button) in content.buttons.iter().enumerate() {
        let index = i32::try_from(index).unwrap_or(i32::MAX);
        tx.execute(
            "INSERT INTO template_buttons (button_id, template_id, button_type, button_text,
                 button_index, button_url, button_url_suffix_variable, button_phone,
                 copy_code_example, tracking_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &TemplateButtonId::generate().as_str(),
                &id.as_str(),
                &button.button_type.as_str(),
                &button.button_text,
                &index,
                &button.button_url,
                &button.button_url_suffix_variable,
                &button.button_phone,
                &button.copy_code_example,
                &button.tracking_id,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Creates a `DRAFT` template with its variables and buttons, in the caller's transaction.
pub async fn insert(
    tx: &Transaction<'_>,
    user: &UserId,
    channel: &TemplateChannel,
    draft: &TemplateDraft,
) -> Result<Template, DbError> {
    let id = TemplateId::generate();
    let header = &draft.content.header;
    let location = header.location.as_ref();
    tx.execute(
        "INSERT INTO templates (template_id, user_id, phone_number_id, name, category, language,
             parameter_format, components, header_type, header_media_url, header_document_filename,
             header_location_latitude, header_location_longitude, header_location_name,
             header_location_address, waba_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::float8, $13::float8, $14, $15, $16)",
        &[
            &id.as_str(),
            &user.as_str(),
            &channel.id.as_str(),
            &draft.name,
            &draft.category.as_str(),
            &draft.language,
            &draft.parameter_format.as_str(),
            &components_json(&draft.content)?,
            &header.kind.as_str(),
            &header.media_url,
            &header.document_filename,
            &location.map(|l| l.latitude),
            &location.map(|l| l.longitude),
            &location.and_then(|l| l.name.clone()),
            &location.and_then(|l| l.address.clone()),
            &channel.waba_id,
        ],
    )
    .await?;
    write_parts(tx, &id, &draft.content).await?;
    get(tx, user, &id).await?.ok_or_else(|| DbError::Corrupt {
        column: "template_id",
        detail: "the template just written cannot be read".to_owned(),
    })
}

/// Replaces a template's content, in the caller's transaction (the caller checked its
/// status under [`lock`]). The status goes back to `DRAFT` and the last rejection stays
/// visible until the next submission.
pub async fn replace(
    tx: &Transaction<'_>,
    user: &UserId,
    id: &TemplateId,
    draft: &TemplateDraft,
) -> Result<Option<Template>, DbError> {
    let header = &draft.content.header;
    let location = header.location.as_ref();
    let updated = tx
        .execute(
            "UPDATE templates SET name = $3, category = $4, language = $5, parameter_format = $6,
                 components = $7, header_type = $8, header_media_url = $9,
                 header_document_filename = $10, header_location_latitude = $11::float8,
                 header_location_longitude = $12::float8, header_location_name = $13,
                 header_location_address = $14, status = 'DRAFT'
             WHERE template_id = $1 AND user_id = $2",
            &[
                &id.as_str(),
                &user.as_str(),
                &draft.name,
                &draft.category.as_str(),
                &draft.language,
                &draft.parameter_format.as_str(),
                &components_json(&draft.content)?,
                &header.kind.as_str(),
                &header.media_url,
                &header.document_filename,
                &location.map(|l| l.latitude),
                &location.map(|l| l.longitude),
                &location.and_then(|l| l.name.clone()),
                &location.and_then(|l| l.address.clone()),
            ],
        )
        .await?;
    if updated == 0 {
        return Ok(None);
    }
    write_parts(tx, id, &draft.content).await?;
    get(tx, user, id).await
}

/// One of the tenant's templates.
pub async fn get(
    client: &impl GenericClient,
    user: &UserId,
    id: &TemplateId,
) -> Result<Option<Template>, DbError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {TEMPLATE_COLUMNS} FROM templates WHERE template_id = $1 AND user_id = $2"
            ),
            &[&id.as_str(), &user.as_str()],
        )
        .await?;
    match row {
        Some(row) => Ok(Some(load(client, &row).await?)),
        None => Ok(None),
    }
}

/// Locks one of the tenant's templates for a state change (submit, edit, delete, send).
pub async fn lock(
    tx: &Transaction<'_>,
    user: &UserId,
    id: &TemplateId,
) -> Result<Option<Template>, DbError> {
    let row = tx
        .query_opt(
            &format!(
                "SELECT {TEMPLATE_COLUMNS} FROM templates
                 WHERE template_id = $1 AND user_id = $2 FOR UPDATE"
            ),
            &[&id.as_str(), &user.as_str()],
        )
        .await?;
    match row {
        Some(row) => Ok(Some(load(tx, &row).await?)),
        None => Ok(None),
    }
}

/// The tenant's templates, newest first.
pub async fn list(
    client: &impl GenericClient,
    user: &UserId,
    filter: &TemplateFilter,
    page: &PageRequest,
) -> Result<Vec<Template>, DbError> {
    let rows = client
        .query(
            &format!(
                "SELECT {TEMPLATE_COLUMNS} FROM templates
                 WHERE user_id = $1
                   AND ($2::text IS NULL OR status = $2)
                   AND ($3::text IS NULL OR phone_number_id = $3)
                   AND ($4::text IS NULL OR category = $4)
                   AND ($5::text IS NULL OR template_id < $5)
                 ORDER BY template_id DESC
                 LIMIT $6"
            ),
            &[
                &user.as_str(),
                &filter.status.map(TemplateStatus::as_str),
                &filter.phone_number_id.as_ref().map(PhoneNumberId::as_str),
                &filter.category.map(TemplateCategory::as_str),
                &page.before,
                &page.fetch,
            ],
        )
        .await?;
    load_many(client, &rows).await
}

/// How many campaigns that are not finished use the template.
pub async fn unfinished_campaigns(
    client: &impl GenericClient,
    id: &TemplateId,
) -> Result<i64, DbError> {
    let unfinished: Vec<&str> = [
        CampaignStatus::Draft,
        CampaignStatus::Scheduled,
        CampaignStatus::Running,
        CampaignStatus::Paused,
    ]
    .iter()
    .map(|s| s.as_str())
    .collect();
    Ok(client
        .query_one(
            "SELECT count(*) AS n FROM campaigns WHERE template_id = $1 AND status = ANY($2)",
            &[&id.as_str(), &unfinished],
        )
        .await?
        .try_get("n")?)
}

/// What deleting did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The row and its variables and buttons are gone.
    Removed,
    /// It has sends or campaigns whose history names it: kept as `DISABLED` with Meta's
    /// `DELETED`.
    Retired,
}

/// Deletes a template locked by the caller: the row when nothing names it, else it is
/// retired (see [`Deleted`]).
pub async fn delete(tx: &Transaction<'_>, id: &TemplateId) -> Result<Deleted, DbError> {
    let history: i64 = tx
        .query_one(
            "SELECT (SELECT count(*) FROM template_sends WHERE template_id = $1)
                  + (SELECT count(*) FROM campaigns WHERE template_id = $1)
                  + (SELECT count(*) FROM button_clicks WHERE template_id = $1) AS n",
            &[&id.as_str()],
        )
        .await?
        .try_get("n")?;
    if history > 0 {
        tx.execute(
            "UPDATE templates SET status = 'DISABLED', meta_status = 'DELETED',
                 meta_status_at = date_trunc('second', now())
             WHERE template_id = $1",
            &[&id.as_str()],
        )
        .await?;
        return Ok(Deleted::Retired);
    }
    tx.execute(
        "DELETE FROM templates WHERE template_id = $1",
        &[&id.as_str()],
    )
    .await?;
    Ok(Deleted::Removed)
}

/// Records Meta's acceptance of a submission: `PENDING` (or what Meta answered) with its id.
/// `meta_status_at` is cleared: it orders Meta's events (whole seconds, Meta's clock), and
/// the review's webhook may carry the very second of the submission.
pub async fn mark_submitted(
    tx: &Transaction<'_>,
    id: &TemplateId,
    waba_id: &str,
    meta_template_id: &str,
    meta_status: &str,
    status: TemplateStatus,
) -> Result<(), DbError> {
    tx.execute(
        "UPDATE templates SET status = $2::varchar, waba_id = $3, meta_template_id = $4,
             meta_status = $5, meta_status_details = '{}', meta_status_at = NULL,
             submitted_at = now(), rejection_reason = NULL, submission_error = NULL,
             approved_at = CASE WHEN $2::varchar = 'APPROVED' THEN now() ELSE approved_at END
         WHERE template_id = $1",
        &[
            &id.as_str(),
            &status.as_str(),
            &waba_id,
            &meta_template_id,
            &meta_status,
        ],
    )
    .await?;
    Ok(())
}

/// Records a refused submission: the template stays as it was (`DRAFT` or `REJECTED`), with
/// Meta's error.
pub async fn mark_submission_failed(
    client: &impl GenericClient,
    id: &TemplateId,
    reason: &str,
    error: &Value,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE templates SET rejection_reason = $2, submission_error = $3
             WHERE template_id = $1",
            &[&id.as_str(), &reason, error],
        )
        .await?;
    Ok(())
}

/// A Meta template event to apply.
#[derive(Debug, Clone)]
pub struct TemplateEvent<'a> {
    /// Meta's event (`APPROVED`, `FLAGGED`, …), kept verbatim.
    pub event: &'a str,
    /// The stored status it maps to (`templates::status`); `None` keeps the status.
    pub status: Option<TemplateStatus>,
    /// Meta's reason when it says something (for `rejection_reason`).
    pub reason: Option<&'a str>,
    /// Everything Meta sent with it.
    pub details: &'a Value,
    /// When it happened (the webhook entry's `time`; now for a pull).
    pub at: DateTime<Utc>,
}

/// Applies a status event to the template with Meta's id `meta_template_id` in the WABA
/// `waba_id`, unless a later event was applied already (webhooks arrive out of order).
/// Answers how many templates changed (0 or 1).
pub async fn apply_event(
    client: &impl GenericClient,
    waba_id: &str,
    meta_template_id: &str,
    event: &TemplateEvent<'_>,
) -> Result<u64, DbError> {
    Ok(client
        .execute(
            "UPDATE templates SET
                 status = COALESCE($3::varchar, status),
                 meta_status = $4,
                 meta_status_details = $5,
                 meta_status_at = $6::timestamptz,
                 rejection_reason = CASE WHEN $3::varchar = 'REJECTED' THEN COALESCE($7::text, rejection_reason)
                                         WHEN $3::varchar IS NOT NULL THEN NULL
                                         ELSE rejection_reason END,
                 approved_at = CASE WHEN $3::varchar = 'APPROVED' AND status <> 'APPROVED' THEN $6::timestamptz
                                    ELSE approved_at END
             WHERE waba_id = $1 AND meta_template_id = $2
               AND (meta_status_at IS NULL OR meta_status_at <= $6::timestamptz)",
            &[
                &waba_id,
                &meta_template_id,
                &event.status.map(TemplateStatus::as_str),
                &event.event,
                event.details,
                &event.at,
                &event.reason,
            ],
        )
        .await?)
}

/// Stores a quality update (GREEN, YELLOW, RED, UNKNOWN) unless a later one was stored.
pub async fn apply_quality(
    client: &impl GenericClient,
    waba_id: &str,
    meta_template_id: &str,
    score: &str,
    at: DateTime<Utc>,
) -> Result<u64, DbError> {
    Ok(client
        .execute(
            "UPDATE templates SET quality_score = $3, quality_updated_at = $4::timestamptz
             WHERE waba_id = $1 AND meta_template_id = $2
               AND (quality_updated_at IS NULL OR quality_updated_at <= $4::timestamptz)",
            &[&waba_id, &meta_template_id, &score, &at],
        )
        .await?)
}

/// Stores a category notice or change as Meta sent it; a change (`new_category` that is one
/// of ours, without `correct_category`'s future notice) also moves `category`.
pub async fn apply_category(
    client: &impl GenericClient,
    waba_id: &str,
    meta_template_id: &str,
    update: &Value,
    new_category: Option<TemplateCategory>,
    at: DateTime<Utc>,
) -> Result<u64, DbError> {
    Ok(client
        .execute(
            "UPDATE templates SET category_update = $3, category_updated_at = $4::timestamptz,
                 category = COALESCE($5::varchar, category)
             WHERE waba_id = $1 AND meta_template_id = $2
               AND (category_updated_at IS NULL OR category_updated_at <= $4::timestamptz)",
            &[
                &waba_id,
                &meta_template_id,
                update,
                &at,
                &new_category.map(TemplateCategory::as_str),
            ],
        )
        .await?)
}

/// Moves a template to `status` after a send told us Meta paused or disabled it (132015,
/// 132016). The time is cut to the second, as Meta's event times are, so a later event of
/// the same second still applies.
pub async fn set_status(
    client: &impl GenericClient,
    id: &TemplateId,
    status: TemplateStatus,
    meta_status: &str,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE templates SET status = $2, meta_status = $3,
                 meta_status_at = date_trunc('second', now())
             WHERE template_id = $1",
            &[&id.as_str(), &status.as_str(), &meta_status],
        )
        .await?;
    Ok(())
}

async fn load(client: &impl GenericClient, row: &tokio_postgres::Row) -> Result<Template, DbError> {
    let mut loaded = load_many(client, std::slice::from_ref(row)).await?;
    loaded.pop().ok_or_else(|| DbError::Corrupt {
        column: "template_id",
        detail: "a template row could not be loaded".to_owned(),
    })
}

/// Reads template rows with their variables and buttons: two queries for any number of
/// templates (a page of 200 costs three round trips, not 401).
async fn load_many(
    client: &impl GenericClient,
    rows: &[tokio_postgres::Row],
) -> Result<Vec<Template>, DbError> {
    let ids: Vec<String> = rows
        .iter()
        .map(|row| row.try_get("template_id"))
        .collect::<Result<_, _>>()?;
    let variable_rows = client
        .query(
            "SELECT template_id, variable_name, position, component_type, dashboard_mapping,
                 default_value, sample_value
             FROM template_variables WHERE template_id = ANY($1)
             ORDER BY template_id, component_type, position",
            &[&ids],
        )
        .await?;
    let button_rows = client
        .query(
            "SELECT template_id, button_id, button_type, button_text, button_index, button_url,
                 button_url_suffix_variable, button_phone, copy_code_example, tracking_id,
                 total_clicks, unique_clicks
             FROM template_buttons WHERE template_id = ANY($1)
             ORDER BY template_id, button_index",
            &[&ids],
        )
        .await?;
    let mut templates = Vec::with_capacity(rows.len());
    for (row, id) in rows.iter().zip(ids) {
        let components: Value = row.try_get("components")?;
        let stored: StoredComponents =
            serde_json::from_value(components).map_err(|e| DbError::Corrupt {
                column: "components",
                detail: e.to_string(),
            })?;
        let mut variables = Vec::new();
        for v in variable_rows
            .iter()
            .filter(|v| v.try_get::<_, &str>("template_id").ok() == Some(id.as_str()))
        {
            variables.push(Variable {
                variable_name: v.try_get("variable_name")?,
                position: v.try_get("position")?,
                component_type: enum_column::<ComponentType>(v, "component_type")?,
                dashboard_mapping: v.try_get("dashboard_mapping")?,
                default_value: v.try_get("default_value")?,
                sample_value: v.try_get("sample_value")?,
            });
        }
        let mut buttons = Vec::new();
        let mut stored_buttons = Vec::new();
        for b in button_rows
            .iter()
            .filter(|b| b.try_get::<_, &str>("template_id").ok() == Some(id.as_str()))
        {
            buttons.push(Button {
                button_type: enum_column::<ButtonType>(b, "button_type")?,
                button_text: b.try_get("button_text")?,
                button_url: b.try_get("button_url")?,
                button_url_suffix_variable: b.try_get("button_url_suffix_variable")?,
                button_phone: b.try_get("button_phone")?,
                copy_code_example: b.try_get("copy_code_example")?,
                tracking_id: b.try_get("tracking_id")?,
            });
            stored_buttons.push(StoredButton {
                button_id: TemplateButtonId::from_trusted(b.try_get("button_id")?),
                button_index: b.try_get("button_index")?,
                total_clicks: b.try_get("total_clicks")?,
                unique_clicks: b.try_get("unique_clicks")?,
            });
        }
        templates.push(Template {
            template_id: TemplateId::from_trusted(id),
            phone_number_id: PhoneNumberId::from_trusted(row.try_get("phone_number_id")?),
            draft: TemplateDraft {
                name: row.try_get("name")?,
                category: enum_column(row, "category")?,
                language: row.try_get("language")?,
                parameter_format: enum_column::<ParameterFormat>(row, "parameter_format")?,
                content: TemplateContent {
                    header: stored.header,
                    body: stored.body,
                    footer: stored.footer,
                    variables,
                    buttons,
                },
            },
            status: enum_column(row, "status")?,
            waba_id: row.try_get("waba_id")?,
            meta_template_id: row.try_get("meta_template_id")?,
            rejection_reason: row.try_get("rejection_reason")?,
            submitted_at: row.try_get("submitted_at")?,
            approved_at: row.try_get("approved_at")?,
            meta_status: row.try_get("meta_status")?,
            meta_status_details: row.try_get("meta_status_details")?,
            meta_status_at: row.try_get("meta_status_at")?,
            quality_score: row.try_get("quality_score")?,
            quality_updated_at: row.try_get("quality_updated_at")?,
            category_update: row.try_get("category_update")?,
            category_updated_at: row.try_get("category_updated_at")?,
            submission_error: row.try_get("submission_error")?,
            buttons: stored_buttons,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        });
    }
    Ok(templates)
}

/// A send begun: its row (`PENDING`), the conversation message it became and where.
#[derive(Debug, Clone)]
pub struct BegunSend {
    pub send_id: TemplateSendId,
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
}

/// The agent linked to one of the tenant's channels, if any.
pub async fn channel_agent(
    client: &impl GenericClient,
    user: &UserId,
    channel: &PhoneNumberId,
) -> Result<Option<AgentId>, DbError> {
    Ok(client
        .query_opt(
            "SELECT agent_id FROM agents WHERE phone_number_id = $1 AND user_id = $2",
            &[&channel.as_str(), &user.as_str()],
        )
        .await?
        .map(|row| row.try_get::<_, String>("agent_id"))
        .transpose()?
        .map(AgentId::from_trusted))
}

/// A send to write before it goes out.
#[derive(Debug, Clone, Copy)]
pub struct NewSend<'a> {
    pub template: &'a Template,
    /// The agent of the template's channel: the customer's conversation is with it.
    pub agent_id: &'a AgentId,
    /// The customer (E.164).
    pub customer: &'a str,
    /// The rendered body, the conversation message's text.
    pub text: &'a str,
    pub variable_values: &'a Value,
    pub campaign_id: Option<&'a str>,
    /// The request's `Idempotency-Key`: unique per tenant
    /// ([`IDEMPOTENCY_KEY_CONSTRAINT`]).
    pub idempotency_key: Option<&'a str>,
}

/// The unique index a second send with the same `Idempotency-Key` violates.
pub const IDEMPOTENCY_KEY_CONSTRAINT: &str = "template_sends_idempotency_key";

/// Writes a send before it goes out, in the caller's transaction: the customer's active
/// conversation with the agent (created when there is none), an agent-side message
/// (author `template`, type `template`, the rendered body as its text) and the
/// `template_sends` row, `PENDING`. `None` (nothing written) when the agent is not the
/// tenant's; a unique violation of [`IDEMPOTENCY_KEY_CONSTRAINT`] when the key was used.
pub async fn begin_send(
    tx: &Transaction<'_>,
    user: &UserId,
    new: NewSend<'_>,
) -> Result<Option<BegunSend>, DbError> {
    let item = SendItem {
        customer: new.customer,
        text: new.text,
        variable_values: new.variable_values,
        idempotency_key: new.idempotency_key,
    };
    let batch = SendBatch {
        template: new.template,
        agent_id: new.agent_id,
        campaign_id: new.campaign_id,
    };
    Ok(begin_sends(tx, user, batch, &[item]).await?.pop().flatten())
}

/// What the sends of one [`begin_sends`] call share.
#[derive(Debug, Clone, Copy)]
pub struct SendBatch<'a> {
    pub template: &'a Template,
    /// The agent of the template's channel: the customers' conversations are with it.
    pub agent_id: &'a AgentId,
    pub campaign_id: Option<&'a str>,
}

/// One customer's send in a [`begin_sends`] call.
#[derive(Debug, Clone, Copy)]
pub struct SendItem<'a> {
    /// The customer (E.164).
    pub customer: &'a str,
    /// The rendered body, the conversation message's text.
    pub text: &'a str,
    pub variable_values: &'a Value,
    pub idempotency_key: Option<&'a str>,
}

/// [`begin_send`] for many customers of one template and agent, in six statements
/// whatever their number (a campaign's batch): the answer is in `items` order, `None`
/// where nothing was written (the agent is not the tenant's). Conversations are locked in
/// customer order, so concurrent batches cannot deadlock, and two sends into one conversation
/// take consecutive sequence numbers.
pub async fn begin_sends(
    tx: &Transaction<'_>,
    user: &UserId,
    batch: SendBatch<'_>,
    items: &[SendItem<'_>],
) -> Result<Vec<Option<BegunSend>>, DbError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let customers: Vec<&str> = items.iter().map(|i| i.customer).collect();
    // Locked in this order: sorted, so two batches sharing customers cannot deadlock.
    let mut locking = customers.clone();
    locking.sort_unstable();
    locking.dedup();
    let candidates: Vec<String> = items
        .iter()
        .map(|_| ConversationId::generate().into())
        .collect();
    super::execute_cached(
        tx,
        "INSERT INTO conversations (conversation_id, agent_id, customer_phone)
         SELECT u.id, a.agent_id, u.phone
         FROM agents a, unnest($1::text[], $2::text[]) AS u(id, phone)
         WHERE a.agent_id = $3 AND a.user_id = $4
         ON CONFLICT (agent_id, customer_phone) WHERE is_active DO NOTHING",
        &[
            &candidates,
            &customers,
            &batch.agent_id.as_str(),
            &user.as_str(),
        ],
    )
    .await?;
    let rows = super::query_cached(
        tx,
        // One probe of the (agent_id, customer_phone) index per customer (LATERAL):
        // whatever the statistics say of the agent's conversations (a campaign can add
        // thousands within seconds), never a walk over all of them.
        "SELECT c.conversation_id, c.customer_phone
         FROM unnest($2::text[]) AS u(phone)
           CROSS JOIN LATERAL (
               SELECT conversation_id, customer_phone, agent_id FROM conversations
               WHERE agent_id = $1 AND customer_phone = u.phone AND is_active LIMIT 1) c
           JOIN agents a ON a.agent_id = c.agent_id
         WHERE a.user_id = $3
         FOR UPDATE OF c",
        &[&batch.agent_id.as_str(), &locking, &user.as_str()],
    )
    .await?;
    let mut conversation_of = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        conversation_of.insert(
            row.try_get::<_, String>("customer_phone")?,
            row.try_get::<_, String>("conversation_id")?,
        );
    }
    let template = batch.template;
    let mut begun: Vec<Option<BegunSend>> = Vec::with_capacity(items.len());
    let (mut message_ids, mut conversation_ids, mut texts, mut metadata) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut send_ids, mut phones, mut values, mut keys) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for item in items {
        let Some(conversation) = conversation_of.get(item.customer) else {
            begun.push(None);
            continue;
        };
        let send = BegunSend {
            send_id: TemplateSendId::generate(),
            message_id: MessageId::generate(),
            conversation_id: ConversationId::from_trusted(conversation.clone()),
        };
        message_ids.push(send.message_id.to_string());
        conversation_ids.push(conversation.clone());
        // What PostgreSQL cannot hold is replaced rather than failing the send.
        texts.push(crate::domain::replace_nul(item.text).into_owned());
        metadata.push(serde_json::json!({
            "template": {
                "template_id": template.template_id.as_str(),
                "send_id": send.send_id.as_str(),
                "name": template.draft.name,
                "language": template.draft.language,
            }
        }));
        send_ids.push(send.send_id.to_string());
        phones.push(item.customer);
        values.push(item.variable_values);
        keys.push(item.idempotency_key);
        begun.push(Some(send));
    }
    if message_ids.is_empty() {
        return Ok(begun);
    }
    super::execute_cached(
        tx,
        "INSERT INTO messages (message_id, conversation_id, sender, text, status, sequence_no,
                               author, message_type, metadata)
         SELECT u.m, u.c, 'agent', u.t, 'pending',
                (SELECT COALESCE(max(sequence_no), 0) FROM messages WHERE conversation_id = u.c)
                    + row_number() OVER (PARTITION BY u.c ORDER BY u.n),
                $5, 'template', u.j
         FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[]) WITH ORDINALITY
              AS u(m, c, t, j, n)",
        &[
            &message_ids,
            &conversation_ids,
            &texts,
            &metadata,
            &MessageAuthor::Template.as_str(),
        ],
    )
    .await?;
    // The conversations were locked above as the tenant's.
    super::execute_cached(
        tx,
        "UPDATE conversations SET last_message_at = CURRENT_TIMESTAMP
         WHERE conversation_id = ANY($1)",
        &[&conversation_ids],
    )
    .await?;
    super::execute_cached(
        tx,
        "INSERT INTO template_sends (send_id, template_id, conversation_id, campaign_id,
             customer_phone, variable_values, status, message_id, phone_number_id, user_id,
             idempotency_key)
         SELECT u.s, $6, u.c, $7, u.p, u.v, 'PENDING', u.m, $8, $9, u.k
         FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::text[], $10::text[])
              AS u(s, c, p, v, m, k)",
        &[
            &send_ids,
            &conversation_ids,
            &phones,
            &values,
            &message_ids,
            &template.template_id.as_str(),
            &batch.campaign_id,
            &template.phone_number_id.as_str(),
            &user.as_str(),
            &keys,
        ],
    )
    .await?;
    Ok(begun)
}

/// Records how a send ended: `SENT` with Meta's id, `FAILED` with Meta's code and message,
/// or (`status: PENDING`) a retryable failure's code and message.
pub async fn finish_send(
    client: &impl GenericClient,
    send_id: &TemplateSendId,
    status: TemplateSendStatus,
    platform_message_id: Option<&str>,
    error_code: Option<&str>,
    error_message: Option<&str>,
) -> Result<(), DbError> {
    client
        .execute(
            // An id another send holds is not stored (see `conversations::mark_sent_many`): the
            // send happened, and its recording must not fail.
            "UPDATE template_sends s SET status = $2::varchar,
                 platform_message_id = CASE WHEN EXISTS (
                     SELECT 1 FROM template_sends o
                      WHERE o.platform_message_id = $3 AND o.send_id <> s.send_id)
                     THEN NULL ELSE $3 END,
                 error_code = $4, error_message = $5,
                 sent_at = CASE WHEN $2::varchar = 'SENT' THEN now() ELSE sent_at END
             WHERE send_id = $1 AND status = 'PENDING'",
            &[
                &send_id.as_str(),
                &status.as_str(),
                &platform_message_id,
                &error_code,
                &error_message.map(|m| crate::domain::replace_nul(m).into_owned()),
            ],
        )
        .await?;
    Ok(())
}

/// Records sends Meta accepted, many at once: `(send, Meta's id, when)`, `SENT` (an id
/// another send holds is not stored, as in [`finish_send`]). Only sends still `PENDING`
/// move.
pub async fn finish_sends_sent(
    client: &impl GenericClient,
    sent: &[(&TemplateSendId, Option<&str>, DateTime<Utc>)],
) -> Result<u64, DbError> {
    if sent.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = sent.iter().map(|(id, _, _)| id.as_str()).collect();
    let platform_ids: Vec<Option<&str>> = sent.iter().map(|(_, p, _)| *p).collect();
    let times: Vec<DateTime<Utc>> = sent.iter().map(|(_, _, at)| *at).collect();
    super::execute_cached(
        client,
        "UPDATE template_sends s SET status = 'SENT',
                 platform_message_id = CASE WHEN EXISTS (
                     SELECT 1 FROM template_sends o
                      WHERE o.platform_message_id = u.p AND o.send_id <> s.send_id)
                     THEN NULL ELSE u.p END,
                 error_code = NULL, error_message = NULL, sent_at = u.at
             FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(id, p, at)
             WHERE s.send_id = u.id AND s.status = 'PENDING'",
        &[&ids, &platform_ids, &times],
    )
    .await
}

/// A send as the API shows it.
#[derive(Debug, Clone)]
pub struct TemplateSend {
    pub send_id: TemplateSendId,
    pub template_id: TemplateId,
    pub conversation_id: Option<String>,
    pub message_id: Option<String>,
    pub customer_phone: String,
    pub variable_values: Value,
    pub status: TemplateSendStatus,
    pub platform_message_id: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const SEND_COLUMNS: &str = "send_id, template_id, conversation_id, message_id, customer_phone,
    variable_values, status, platform_message_id, error_code, error_message, sent_at, created_at";

fn send_from_row(row: &tokio_postgres::Row) -> Result<TemplateSend, DbError> {
    Ok(TemplateSend {
        send_id: TemplateSendId::from_trusted(row.try_get("send_id")?),
        template_id: TemplateId::from_trusted(row.try_get("template_id")?),
        conversation_id: row.try_get("conversation_id")?,
        message_id: row.try_get("message_id")?,
        customer_phone: row.try_get("customer_phone")?,
        variable_values: row.try_get("variable_values")?,
        status: enum_column(row, "status")?,
        platform_message_id: row.try_get("platform_message_id")?,
        error_code: row.try_get("error_code")?,
        error_message: row.try_get("error_message")?,
        sent_at: row.try_get("sent_at")?,
        created_at: row.try_get("created_at")?,
    })
}

/// One send.
pub async fn send(
    client: &impl GenericClient,
    send_id: &TemplateSendId,
) -> Result<Option<TemplateSend>, DbError> {
    super::query_opt_cached(
        client,
        &format!("SELECT {SEND_COLUMNS} FROM template_sends WHERE send_id = $1"),
        &[&send_id.as_str()],
    )
    .await?
    .as_ref()
    .map(send_from_row)
    .transpose()
}

/// The tenant's send made with this `Idempotency-Key`, if any.
pub async fn send_by_idempotency_key(
    client: &impl GenericClient,
    user: &UserId,
    key: &str,
) -> Result<Option<TemplateSend>, DbError> {
    client
        .query_opt(
            &format!(
                "SELECT {SEND_COLUMNS} FROM template_sends
                 WHERE user_id = $1 AND idempotency_key = $2"
            ),
            &[&user.as_str(), &key],
        )
        .await?
        .as_ref()
        .map(send_from_row)
        .transpose()
}

/// A quick-reply click as the webhook reads it.
#[derive(Debug, Clone)]
pub struct Click<'a> {
    /// The inbound message's id (`wamid.…`): a redelivery finds its click.
    pub message_id: &'a str,
    /// `context.id`: the template message the customer answered.
    pub original_message_id: &'a str,
    /// The customer (E.164).
    pub customer: &'a str,
    pub payload: Option<&'a str>,
    pub text: Option<&'a str>,
    pub clicked_at: DateTime<Utc>,
}

/// What recording a click did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClickOutcome {
    /// Counted; `unique` when it was this customer's first click of the button.
    Counted { known_button: bool, unique: bool },
    /// A redelivery of a click already recorded.
    AlreadyRecorded,
    /// The message answers no template send of this channel: not a template click.
    NotATemplateSend,
}

/// The button id stored for a click whose payload names no button of the template.
pub const UNKNOWN_BUTTON: &str = "unknown";

/// Records a quick-reply click on a template send of `channel` (its tenant only), in the
/// caller's transaction: one `button_clicks` row per inbound message id, `total_clicks`
/// bumped, `unique_clicks` bumped on the customer's first click of that button. The button
/// row is locked first, so concurrent clicks of one customer count one unique click.
pub async fn record_click(
    tx: &Transaction<'_>,
    channel: &PhoneNumberId,
    user: &UserId,
    click: &Click<'_>,
) -> Result<ClickOutcome, DbError> {
    let Some(send) = tx
        .query_opt(
            "SELECT ts.send_id, ts.template_id, ts.conversation_id, p.waba_id
             FROM template_sends ts
             JOIN templates t ON t.template_id = ts.template_id
             JOIN phone_numbers p ON p.id = t.phone_number_id
             WHERE ts.platform_message_id = $1 AND t.phone_number_id = $2 AND t.user_id = $3",
            &[
                &click.original_message_id,
                &channel.as_str(),
                &user.as_str(),
            ],
        )
        .await?
    else {
        return Ok(ClickOutcome::NotATemplateSend);
    };
    let send_id: String = send.try_get("send_id")?;
    let template_id: String = send.try_get("template_id")?;
    let conversation_id: Option<String> = send.try_get("conversation_id")?;
    let waba_id: Option<String> = send.try_get("waba_id")?;
    // The button: by tracking id, else by the generated payload `<template_id>.b<index>`.
    let generated_index = click
        .payload
        .and_then(|p| p.strip_prefix(&format!("{template_id}.b")))
        .and_then(|i| i.parse::<i32>().ok());
    let button = tx
        .query_opt(
            "SELECT button_id, button_index, button_text FROM template_buttons
             WHERE template_id = $1 AND button_type = 'QUICK_REPLY'
               AND (tracking_id = $2 OR ($2 IS NOT NULL AND tracking_id IS NULL AND button_index = $3))
             ORDER BY (tracking_id = $2) DESC NULLS LAST
             LIMIT 1
             FOR UPDATE",
            &[&template_id, &click.payload, &generated_index],
        )
        .await?;
    let (button_id, button_index, button_text) = match &button {
        Some(row) => (
            row.try_get::<_, String>("button_id")?,
            Some(row.try_get::<_, i32>("button_index")?),
            row.try_get::<_, String>("button_text")?,
        ),
        None => (
            UNKNOWN_BUTTON.to_owned(),
            None,
            click.text.unwrap_or_default().chars().take(100).collect(),
        ),
    };
    let contact_id: Option<String> = tx
        .query_opt(
            "SELECT contact_id FROM contacts WHERE user_id = $1 AND phone = $2",
            &[&user.as_str(), &click.customer],
        )
        .await?
        .map(|row| row.try_get("contact_id"))
        .transpose()?;
    let inserted = tx
        .execute(
            "INSERT INTO button_clicks (click_id, template_id, template_send_id, button_id,
                 button_text, button_index, button_payload, customer_phone, contact_id,
                 conversation_id, waba_id, phone_number_id, user_id, message_id,
                 original_message_id, clicked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
             ON CONFLICT (message_id) WHERE message_id IS NOT NULL DO NOTHING",
            &[
                &crate::domain::ButtonClickId::generate().as_str(),
                &template_id,
                &send_id,
                &button_id,
                &button_text,
                &button_index,
                &click.payload,
                &click.customer,
                &contact_id,
                &conversation_id,
                &waba_id,
                &channel.as_str(),
                &user.as_str(),
                &click.message_id,
                &click.original_message_id,
                &click.clicked_at,
            ],
        )
        .await?;
    if inserted == 0 {
        return Ok(ClickOutcome::AlreadyRecorded);
    }
    if button.is_none() {
        return Ok(ClickOutcome::Counted {
            known_button: false,
            unique: false,
        });
    }
    let earlier: i64 = tx
        .query_one(
            "SELECT count(*) AS n FROM button_clicks
             WHERE button_id = $1 AND customer_phone = $2 AND message_id <> $3",
            &[&button_id, &click.customer, &click.message_id],
        )
        .await?
        .try_get("n")?;
    let unique = earlier == 0;
    tx.execute(
        "UPDATE template_buttons SET total_clicks = total_clicks + 1,
             unique_clicks = unique_clicks + CASE WHEN $2 THEN 1 ELSE 0 END
         WHERE button_id = $1",
        &[&button_id, &unique],
    )
    .await?;
    Ok(ClickOutcome::Counted {
        known_button: true,
        unique,
    })
}

/// Sends by status and clicks by button of one template, over `[from, to)`.
#[derive(Debug, Clone, Default)]
pub struct TemplateStats {
    /// `(status, count)` for every status with sends.
    pub sends: Vec<(TemplateSendStatus, i64)>,
    /// `(button_id, total, unique customers)`, the unknown button included.
    pub clicks: Vec<(String, i64, i64)>,
}

/// The stats of a template (the caller checked it is the tenant's).
pub async fn stats(
    client: &impl GenericClient,
    id: &TemplateId,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<TemplateStats, DbError> {
    let sends = client
        .query(
            "SELECT status, count(*) AS n FROM template_sends
             WHERE template_id = $1
               AND ($2::timestamptz IS NULL OR created_at >= $2)
               AND ($3::timestamptz IS NULL OR created_at < $3)
             GROUP BY status",
            &[&id.as_str(), &from, &to],
        )
        .await?
        .iter()
        .map(|row| Ok((enum_column(row, "status")?, row.try_get("n")?)))
        .collect::<Result<Vec<_>, DbError>>()?;
    let clicks = client
        .query(
            "SELECT button_id, count(*) AS total, count(DISTINCT customer_phone) AS uniq
             FROM button_clicks
             WHERE template_id = $1
               AND ($2::timestamptz IS NULL OR clicked_at >= $2)
               AND ($3::timestamptz IS NULL OR clicked_at < $3)
             GROUP BY button_id",
            &[&id.as_str(), &from, &to],
        )
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get("button_id")?,
                row.try_get("total")?,
                row.try_get("uniq")?,
            ))
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    Ok(TemplateStats { sends, clicks })
}
