//! Extractions: the dashboard's view of conversations scored as leads, and the on-demand
//! trigger. The job itself runs in the `extraction-worker` function.

use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::{
    api::{
        ApiError, Cursors, Page, PageParams, Problem, Query, Tenant,
        openapi::responses::{BearerErrors, ListErrors, PathErrors},
    },
    db::{
        conversation_views,
        extractions::{self, ExtractionFilter, ExtractionView},
    },
    domain::{BudgetConstraint, ConversationId, LeadStatus, Level},
    jobs::{ExtractionJob, ExtractionTrigger},
};
use utoipa::{IntoParams, ToSchema};

use crate::ConversationsState;

/// A conversation scored as a lead. Scores are computed by the server from the levels
/// (Low 1, Medium 2, High 3; budget constraint Yes 1, Maybe 2, No 3); `total_score` is their
/// sum (5–15) and `lead_status_tag` follows the configured thresholds (defaults: Hot from
/// 12, Warm from 8).
#[derive(Debug, Serialize, ToSchema)]
pub struct ExtractionResponse {
    /// A UUID.
    extraction_id: String,
    conversation_id: String,
    /// E.164 on WhatsApp, the platform's id elsewhere.
    customer_phone: String,
    extracted_at: DateTime<Utc>,
    /// Whether this is the conversation's newest extraction.
    is_latest: bool,
    /// How many messages the conversation had when it was extracted.
    message_count_at_extraction: i32,
    name: Option<String>,
    email: Option<String>,
    company: Option<String>,
    intent_level: Option<Level>,
    #[schema(minimum = 1, maximum = 3)]
    intent_score: Option<i32>,
    urgency_level: Option<Level>,
    #[schema(minimum = 1, maximum = 3)]
    urgency_score: Option<i32>,
    budget_constraint: Option<BudgetConstraint>,
    #[schema(minimum = 1, maximum = 3)]
    budget_score: Option<i32>,
    fit_alignment: Option<Level>,
    #[schema(minimum = 1, maximum = 3)]
    fit_score: Option<i32>,
    engagement_health: Option<Level>,
    #[schema(minimum = 1, maximum = 3)]
    engagement_score: Option<i32>,
    #[schema(minimum = 5, maximum = 15)]
    total_score: Option<i32>,
    lead_status_tag: Option<LeadStatus>,
    /// The demo or meeting time the customer agreed to.
    demo_book_datetime: Option<DateTime<Utc>>,
    /// The model's reasons: `intent`, `urgency`, `budget`, `fit`, `engagement`,
    /// `cta_behavior`.
    #[schema(value_type = Option<Object>)]
    reasoning: Option<Value>,
    /// A 4–5 word alert for the sales team.
    smart_notification: Option<String>,
    requirements: Option<String>,
    custom_cta: Option<String>,
    in_detail_summary: Option<String>,
}

impl From<ExtractionView> for ExtractionResponse {
    fn from(v: ExtractionView) -> Self {
        Self {
            extraction_id: v.extraction_id,
            conversation_id: v.conversation_id,
            customer_phone: v.customer_phone,
            extracted_at: v.extracted_at,
            is_latest: v.is_latest,
            message_count_at_extraction: v.message_count_at_extraction,
            name: v.name,
            email: v.email,
            company: v.company,
            intent_level: v.intent_level,
            intent_score: v.intent_score,
            urgency_level: v.urgency_level,
            urgency_score: v.urgency_score,
            budget_constraint: v.budget_constraint,
            budget_score: v.budget_score,
            fit_alignment: v.fit_alignment,
            fit_score: v.fit_score,
            engagement_health: v.engagement_health,
            engagement_score: v.engagement_score,
            total_score: v.total_score,
            lead_status_tag: v.lead_status_tag,
            demo_book_datetime: v.demo_book_datetime,
            reasoning: v.reasoning,
            smart_notification: v.smart_notification,
            requirements: v.requirements,
            custom_cta: v.custom_cta,
            in_detail_summary: v.in_detail_summary,
        }
    }
}

/// Filters and paging of the extraction list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListExtractions {
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    #[param(min_length = 1, max_length = 512)]
    cursor: Option<String>,
    /// Only each conversation's latest extraction (default `true`); `false` includes the
    /// history.
    latest_only: Option<bool>,
    lead_status_tag: Option<LeadStatus>,
    /// Only extractions with at least this total score.
    #[param(minimum = 5, maximum = 15)]
    min_score: Option<i32>,
    /// Extracted at or after this time (ISO-8601 with offset).
    from: Option<DateTime<Utc>>,
    /// Extracted before this time (ISO-8601 with offset).
    to: Option<DateTime<Utc>>,
}

/// Paging of a conversation's extraction history.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListHistory {
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    #[param(min_length = 1, max_length = 512)]
    cursor: Option<String>,
}

/// An extraction was queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExtractionQueued {
    conversation_id: String,
    /// The messages the extraction will cover (at least).
    message_count: i32,
    /// Always `queued`: the extraction runs in the background; its result appears in
    /// `GET /conversations/{id}/extractions`.
    status: String,
}

/// The tenant's extractions, newest first: by default only each conversation's latest.
#[utoipa::path(
    get, path = "/extractions", tag = "extractions",
    params(ListExtractions),
    responses(
        BearerErrors, ListErrors,
        (status = 200, body = Page<ExtractionResponse>),
    )
)]
pub async fn list_extractions(
    State(state): State<ConversationsState>,
    tenant: Tenant,
    Query(query): Query<ListExtractions>,
) -> Result<axum::Json<Page<ExtractionResponse>>, ApiError> {
    let cursors = Cursors::new(&state.api.sealing_key, "extractions");
    let (page, limit) = PageParams {
        limit: query.limit,
        cursor: query.cursor.as_deref(),
    }
    .into_request(&cursors)?;
    if let Some(min) = query.min_score {
        if !(5..=15).contains(&min) {
            return Err(ApiError::invalid("min_score", "must be 5 to 15"));
        }
    }
    if let (Some(from), Some(to)) = (query.from, query.to) {
        if from >= to {
            return Err(ApiError::invalid("to", "must be after `from`"));
        }
    }
    let filter = ExtractionFilter {
        latest_only: query.latest_only.unwrap_or(true),
        lead_status: query.lead_status_tag,
        min_score: query.min_score,
        from: query.from,
        to: query.to,
        conversation_id: None,
    };
    let client = state.api.pool.get().await?;
    let rows = extractions::list(
        &client,
        &tenant.user_id,
        &filter,
        page.before.as_deref(),
        page.fetch,
    )
    .await?;
    Ok(axum::Json(Page::from_rows(
        rows,
        limit,
        &cursors,
        ExtractionView::cursor_key,
        Into::into,
    )))
}

/// One extraction.
#[utoipa::path(
    get, path = "/extractions/{id}", tag = "extractions",
    params(("id" = String, Path, description = "The extraction's UUID")),
    responses(
        BearerErrors, PathErrors,
        (status = 200, body = ExtractionResponse),
    )
)]
pub async fn get_extraction(
    State(state): State<ConversationsState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<axum::Json<ExtractionResponse>, ApiError> {
    let not_found = || ApiError::NotFound("no such extraction".to_owned());
    // A malformed id names no extraction: 404, like another tenant's.
    let id = uuid::Uuid::parse_str(&id).map_err(|_| not_found())?;
    let client = state.api.pool.get().await?;
    let view = extractions::get(&client, &tenant.user_id, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(axum::Json(view.into()))
}

/// A conversation's extractions, newest first (its history).
#[utoipa::path(
    get, path = "/conversations/{id}/extractions", tag = "extractions",
    params(("id" = String, Path, description = "`conv_…`"), ListHistory),
    responses(
        BearerErrors, ListErrors, PathErrors,
        (status = 200, body = Page<ExtractionResponse>),
    )
)]
pub async fn conversation_extractions(
    State(state): State<ConversationsState>,
    tenant: Tenant,
    Path(id): Path<String>,
    Query(query): Query<ListHistory>,
) -> Result<axum::Json<Page<ExtractionResponse>>, ApiError> {
    let conversation = ConversationId::parse(&id).ok_or_else(no_conversation)?;
    let cursors = Cursors::new(
        &state.api.sealing_key,
        format!("extractions:{conversation}"),
    );
    let (page, limit) = PageParams {
        limit: query.limit,
        cursor: query.cursor.as_deref(),
    }
    .into_request(&cursors)?;
    let client = state.api.pool.get().await?;
    conversation_views::get(&client, &tenant.user_id, &conversation)
        .await?
        .ok_or_else(no_conversation)?;
    let filter = ExtractionFilter {
        latest_only: false,
        conversation_id: Some(conversation.to_string()),
        ..ExtractionFilter::default()
    };
    let rows = extractions::list(
        &client,
        &tenant.user_id,
        &filter,
        page.before.as_deref(),
        page.fetch,
    )
    .await?;
    Ok(axum::Json(Page::from_rows(
        rows,
        limit,
        &cursors,
        ExtractionView::cursor_key,
        Into::into,
    )))
}

/// Asks for an extraction of the conversation now. It runs in the background (202); 409
/// when its latest extraction already covers every message (nothing new to score).
#[utoipa::path(
    post, path = "/conversations/{id}/extract", tag = "extractions",
    params(("id" = String, Path, description = "`conv_…`")),
    responses(
        BearerErrors, PathErrors,
        (status = 202, body = ExtractionQueued),
        (status = 409, description = "Nothing new to extract: the latest extraction covers every message, there is no message yet, or the customer has not written", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The extraction queue could not take the job: try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn extract_now(
    State(state): State<ConversationsState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<(StatusCode, axum::Json<ExtractionQueued>), ApiError> {
    let conversation = ConversationId::parse(&id).ok_or_else(no_conversation)?;
    let client = state.api.pool.get().await?;
    let subject = extractions::subject(&client, tenant.user_id.as_str(), conversation.as_str())
        .await?
        .ok_or_else(no_conversation)?;
    if subject.message_count == 0 {
        return Err(ApiError::Conflict(
            "the conversation has no message yet: there is nothing to extract".to_owned(),
        ));
    }
    // Only our side spoke (a template sent, no answer): nothing to score the customer on.
    if subject.latest.is_none() && subject.new_customer_messages == 0 {
        return Err(ApiError::Conflict(
            "the customer has not written in this conversation: there is nothing to extract"
                .to_owned(),
        ));
    }
    if let Some(latest) = subject
        .latest
        .as_ref()
        .filter(|l| l.message_count >= subject.message_count)
    {
        return Err(ApiError::Conflict(format!(
            "extraction {} already covers all {} messages: there is nothing new to extract",
            latest.extraction_id, latest.message_count
        )));
    }
    let job = ExtractionJob::new(
        &subject.user_id,
        &subject.conversation_id,
        ExtractionTrigger::OnDemand,
    );
    state
        .extraction_queue
        .publish(&job)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string().into()))?;
    tracing::info!(conversation.id = %subject.conversation_id, "extraction requested");
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(ExtractionQueued {
            conversation_id: subject.conversation_id,
            message_count: subject.message_count,
            status: "queued".to_owned(),
        }),
    ))
}

fn no_conversation() -> ApiError {
    ApiError::NotFound("no such conversation".to_owned())
}
