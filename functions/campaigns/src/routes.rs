//! `/campaigns`: definition (create, list, read, change, delete), lifecycle (start, pause,
//! resume, cancel, retry-failed), recipients, stats and preview.

use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::{
    api::{
        ApiError, Json, Page, Paging, Query, Tenant,
        openapi::responses::{BearerErrors, JsonBodyErrors, ListErrors, PathErrors},
    },
    db::{
        campaigns::{self, Edit, Transition},
        templates,
    },
    domain::{
        CampaignId, CampaignStatus, RecipientStatus, SkipReason, TemplateId, TemplateStatus,
        TriggerType,
        campaign::{RecipientFilterBody, VariableSource, values_for_recipient},
    },
    jobs::{CampaignStartJob, StartReason},
    meta::errors::{SEND_ERROR_CODES, SendFailure},
    templates::payload::{rendered_body, resolve_values},
};
use utoipa::{IntoParams, ToSchema};

use crate::{
    CampaignsState,
    body::{self, CampaignResponse, CreateCampaign, PatchCampaign},
    schedule,
};

fn campaign_id(raw: &str) -> Result<CampaignId, ApiError> {
    CampaignId::parse(raw).ok_or_else(not_found)
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such campaign".to_owned())
}

fn illegal(action: &str, status: CampaignStatus, allowed: &[CampaignStatus]) -> ApiError {
    let allowed: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
    ApiError::Conflict(format!(
        "the campaign is {status}: it can {action} only while {}",
        allowed.join(" or ")
    ))
}

async fn respond(
    client: &impl shared::db::GenericClient,
    campaign: campaigns::Campaign,
) -> Result<axum::Json<CampaignResponse>, ApiError> {
    let counts = campaigns::counters(client, &campaign.campaign_id).await?;
    Ok(axum::Json(CampaignResponse::new(campaign, counts)))
}

/// Creates a DRAFT campaign.
#[utoipa::path(
    post, path = "/campaigns", tag = "campaigns",
    request_body = CreateCampaign,
    responses(
        BearerErrors, JsonBodyErrors,
        (status = 201, description = "Created, `DRAFT`", body = CampaignResponse),
    ),
)]
pub async fn create_campaign(
    State(state): State<CampaignsState>,
    tenant: Tenant,
    Json(body): Json<CreateCampaign>,
) -> Result<(StatusCode, axum::Json<CampaignResponse>), ApiError> {
    let mut client = state.api.pool.get().await?;
    let (draft, _) = body::draft(&client, &tenant.user_id, &body, Some(Utc::now())).await?;
    let tx = client.transaction().await?;
    let campaign = campaigns::create(&tx, &tenant.user_id, &draft).await?;
    tx.commit().await?;
    tracing::info!(campaign.id = %campaign.campaign_id, "campaign created");
    Ok((StatusCode::CREATED, respond(&client, campaign).await?))
}

/// Filters and paging of the campaign list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListCampaigns {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1, max_length = 512)]
    cursor: Option<String>,
    /// Only campaigns in this status.
    status: Option<CampaignStatus>,
}

/// The tenant's campaigns, newest first.
#[utoipa::path(
    get, path = "/campaigns", tag = "campaigns",
    params(ListCampaigns),
    responses(BearerErrors, ListErrors, (status = 200, body = Page<CampaignResponse>)),
)]
pub async fn list_campaigns(
    State(state): State<CampaignsState>,
    tenant: Tenant,
    Query(query): Query<ListCampaigns>,
) -> Result<axum::Json<Page<CampaignResponse>>, ApiError> {
    let paging = Paging::new(
        &state.api.sealing_key,
        "campaigns",
        query.limit,
        query.cursor.as_deref(),
    )?;
    let client = state.api.pool.get().await?;
    let rows = campaigns::list(&client, &tenant.user_id, query.status, paging.request()).await?;
    let mut items = Vec::with_capacity(rows.len());
    for campaign in rows {
        let counts = campaigns::counters(&client, &campaign.campaign_id).await?;
        items.push((
            campaign.campaign_id.to_string(),
            CampaignResponse::new(campaign, counts),
        ));
    }
    Ok(axum::Json(paging.page(items, |(id, _)| id.clone())))
}

impl From<(String, CampaignResponse)> for CampaignResponse {
    fn from((_, response): (String, CampaignResponse)) -> Self {
        response
    }
}

/// One campaign, with its counters and rates.
#[utoipa::path(
    get, path = "/campaigns/{id}", tag = "campaigns",
    params(("id" = String, Path, description = "`cmp_…`")),
    responses(BearerErrors, PathErrors, (status = 200, body = CampaignResponse)),
)]
pub async fn get_campaign(
    State(state): State<CampaignsState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<axum::Json<CampaignResponse>, ApiError> {
    let id = campaign_id(&id)?;
    let client = state.api.pool.get().await?;
    let campaign = campaigns::get(&client, &tenant.user_id, &id)
        .await?
        .ok_or_else(not_found)?;
    respond(&client, campaign).await
}

const EDITABLE: &[CampaignStatus] = &[CampaignStatus::Draft, CampaignStatus::Scheduled];

/// Changes a DRAFT or SCHEDULED campaign (a SCHEDULED one is rescheduled).
#[utoipa::path(
    patch, path = "/campaigns/{id}", tag = "campaigns",
    params(("id" = String, Path, description = "`cmp_…`")),
    request_body = PatchCampaign,
    responses(
        BearerErrors, JsonBodyErrors, PathErrors,
        (status = 200, body = CampaignResponse),
        (status = 409, description = "The campaign is not DRAFT or SCHEDULED (the detail says its status)", body = shared::api::Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn patch_campaign(
    State(state): State<CampaignsState>,
    tenant: Tenant,
    Path(id): Path<String>,
    Json(patch): Json<PatchCampaign>,
) -> Result<axum::Json<CampaignResponse>, ApiError> {
    let id = campaign_id(&id)?;
    let mut client = state.api.pool.get().await?;
    let current = campaigns::get(&client, &tenant.user_id, &id)
        .await?
        .ok_or_else(not_found)?;
    if !EDITABLE.contains(&current.status) {
        return Err(illegal("change", current.status, EDITABLE));
    }
    // A trigger the PATCH does not give is kept: its time is not checked again.
    let now = patch.trigger.is_some().then(Utc::now);
    let merged = patch.apply(&body::as_request(&current));
    let (draft, _) = body::draft(&client, &tenant.user_id, &merged, now).await?;
    if current.status == CampaignStatus::Scheduled && draft.trigger_type != TriggerType::Scheduled {
        return Err(ApiError::Conflict(
            "the campaign is SCHEDULED: cancel it to change its trigger type".to_owned(),
        ));
    }
    let tx = client.transaction().await?;
    let edited = campaigns::update(&tx, &tenant.user_id, &id, &draft, EDITABLE)
        .await?
        .ok_or_else(not_found)?;
    let campaign = match edited {
        Edit::Done(campaign) => campaign,
        Edit::NotEditable(status) => return Err(illegal("change", status, EDITABLE)),
    };
    // The schedule moves with a new trigger only (its input names the campaign alone).
    if campaign.status == CampaignStatus::Scheduled && now.is_some() {
        schedule::upsert(&state, &tx, &campaign).await?;
    }
    tx.commit().await?;
    respond(&client, campaign).await
}

/// Deletes a DRAFT campaign.
#[utoipa::path(
    delete, path = "/campaigns/{id}", tag = "campaigns",
    params(("id" = String, Path, description = "`cmp_…`")),
    responses(
        BearerErrors, PathErrors,
        (status = 204, description = "Deleted"),
        (status = 409, description = "Not a DRAFT (cancel it instead)", body = shared::api::Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn delete_campaign(
    State(state): State<CampaignsState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = campaign_id(&id)?;
    let client = state.api.pool.get().await?;
    match campaigns::delete_draft(&client, &tenant.user_id, &id).await? {
        None => Err(not_found()),
        Some(Edit::Done(_)) => Ok(StatusCode::NO_CONTENT),
        Some(Edit::NotEditable(status)) => Err(ApiError::Conflict(match status {
            CampaignStatus::Completed | CampaignStatus::Cancelled => format!(
                "the campaign is {status}: only a DRAFT campaign can be deleted (a finished one is kept for its statistics)"
            ),
            _ => format!(
                "the campaign is {status}: only a DRAFT campaign can be deleted (cancel it instead)"
            ),
        })),
    }
}

async fn publish_start(
    state: &CampaignsState,
    campaign: &campaigns::Campaign,
    reason: StartReason,
) {
    let job = CampaignStartJob::new(
        campaign.user_id.as_str(),
        campaign.campaign_id.as_str(),
        reason,
    );
    // A lost publish is healed by the sweep (a RUNNING campaign with work left).
    if let Err(error) = state.starts.publish(&job).await {
        tracing::warn!(%error, campaign.id = %campaign.campaign_id, "start job not published; the sweep will start it");
    }
}

/// Starts a DRAFT campaign: IMMEDIATE sends now, SCHEDULED waits for its time (an
/// EventBridge schedule), EVENT runs until paused or cancelled.
#[utoipa::path(
    post, path = "/campaigns/{id}/start", tag = "campaigns",
    params(("id" = String, Path, description = "`cmp_…`")),
    responses(
        BearerErrors, PathErrors,
        (status = 200, description = "`RUNNING` (IMMEDIATE, EVENT) or `SCHEDULED`", body = CampaignResponse),
        (status = 409, description = "Not a DRAFT, the template is not APPROVED, or the scheduled time has passed", body = shared::api::Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn start_campaign(
    State(state): State<CampaignsState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<axum::Json<CampaignResponse>, ApiError> {
    let id = campaign_id(&id)?;
    let mut client = state.api.pool.get().await?;
    let campaign = campaigns::get(&client, &tenant.user_id, &id)
        .await?
        .ok_or_else(not_found)?;
    if campaign.status != CampaignStatus::Draft {
        return Err(illegal("start", campaign.status, &[CampaignStatus::Draft]));
    }
    let template = templates::get(&client, &tenant.user_id, &campaign.template_id).await?;
    match template.map(|t| t.status) {
        Some(TemplateStatus::Approved) => {}
        Some(status) => {
            return Err(ApiError::Conflict(format!(
                "the template is {status}: a campaign starts only with an APPROVED template"
            )));
        }
        None => return Err(ApiError::Conflict("the template was deleted".to_owned())),
    }
    let transition = match campaign.trigger.trigger_type {
        TriggerType::Scheduled => {
            if campaign
                .trigger
                .scheduled_at
                .is_none_or(|at| at <= Utc::now())
            {
                return Err(ApiError::Conflict(
                    "the scheduled time has passed: change `trigger.scheduled_at` first".to_owned(),
                ));
            }
            Transition::Schedule
        }
        TriggerType::Immediate | TriggerType::Event => Transition::Run,
    };
    // The move and the schedule in one transaction: the moved row stays locked until the
    // schedule exists, so a concurrent start waits, then finds the campaign SCHEDULED and
    // answers 409 without touching the schedule; a schedule that fails rolls the move back.
    let tx = client.transaction().await?;
    let moved = campaigns::transition(&tx, &tenant.user_id, &id, transition, None)
        .await?
        .ok_or_else(not_found)?;
    let campaign = match moved {
        Edit::Done(campaign) => campaign,
        Edit::NotEditable(status) => {
            return Err(illegal("start", status, &[CampaignStatus::Draft]));
        }
    };
    if transition == Transition::Schedule {
        schedule::upsert(&state, &tx, &campaign).await?;
    }
    tx.commit().await?;
    if campaign.trigger.trigger_type == TriggerType::Immediate {
        publish_start(&state, &campaign, StartReason::Start).await;
    }
    tracing::info!(campaign.id = %id, status = %campaign.status, "campaign started");
    respond(&client, campaign).await
}

/// Pauses a RUNNING campaign: no new send starts (sends in flight finish and are recorded).
#[utoipa::path(
    post, path = "/campaigns/{id}/pause", tag = "campaigns",
    params(("id" = String, Path, description = "`cmp_…`")),
    responses(
        BearerErrors, PathErrors,
        (status = 200, body = CampaignResponse),
        (status = 409, description = "Not RUNNING", body = shared::api::Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn pause_campaign(
    State(state): State<CampaignsState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<axum::Json<CampaignResponse>, ApiError> {
    let id = campaign_id(&id)?;
    let client = state.api.pool.get().await?;
    match campaigns::transition(&client, &tenant.user_id, &id, Transition::Pause, None)
        .await?
        .ok_or_else(not_found)?
    {
        Edit::Done(campaign) => respond(&client, campaign).await,
        Edit::NotEditable(status) => Err(illegal("pause", status, Transition::Pause.from())),
    }
}

/// Resumes a PAUSED campaign: the recipients not sent yet are sent, nobody twice.
#[utoipa::path(
    post, path = "/campaigns/{id}/resume", tag = "campaigns",
    params(("id" = String, Path, description = "`cmp_…`")),
    responses(
        BearerErrors, PathErrors,
        (status = 200, body = CampaignResponse),
        (status = 409, description = "Not PAUSED", body = shared::api::Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn resume_campaign(
    State(state): State<CampaignsState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<axum::Json<CampaignResponse>, ApiError> {
    let id = campaign_id(&id)?;
    let client = state.api.pool.get().await?;
    match campaigns::transition(&client, &tenant.user_id, &id, Transition::Resume, None)
        .await?
        .ok_or_else(not_found)?
    {
        Edit::Done(campaign) => {
            if campaign.trigger.trigger_type != TriggerType::Event {
                publish_start(&state, &campaign, StartReason::Resume).await;
            }
            respond(&client, campaign).await
        }
        Edit::NotEditable(status) => Err(illegal("resume", status, Transition::Resume.from())),
    }
}

/// Cancels a campaign: every recipient not sent yet is SKIPPED (`CANCELLED`); a SCHEDULED
/// campaign's schedule is deleted.
#[utoipa::path(
    post, path = "/campaigns/{id}/cancel", tag = "campaigns",
    params(("id" = String, Path, description = "`cmp_…`")),
    responses(
        BearerErrors, PathErrors,
        (status = 200, body = CampaignResponse),
        (status = 409, description = "Already COMPLETED, FAILED or CANCELLED", body = shared::api::Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn cancel_campaign(
    State(state): State<CampaignsState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<axum::Json<CampaignResponse>, ApiError> {
    let id = campaign_id(&id)?;
    let mut client = state.api.pool.get().await?;
    let tx = client.transaction().await?;
    let campaign = match campaigns::transition(&tx, &tenant.user_id, &id, Transition::Cancel, None)
        .await?
        .ok_or_else(not_found)?
    {
        Edit::Done(campaign) => campaign,
        Edit::NotEditable(status) => {
            return Err(illegal("be cancelled", status, Transition::Cancel.from()));
        }
    };
    let skipped = campaigns::skip_unsent(&tx, &id).await?;
    tx.commit().await?;
    if campaign.trigger.trigger_type == TriggerType::Scheduled {
        schedule::delete(&state, &id).await?;
    }
    tracing::info!(campaign.id = %id, skipped, "campaign cancelled");
    respond(&client, campaign).await
}

/// What to retry.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryFailed {
    /// Also resend `outcome_unknown` failures (no answer from Meta: the customer may have
    /// received the first one).
    #[serde(default)]
    pub include_unknown: bool,
}

/// How many were queued again.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetryResponse {
    pub requeued: u64,
    pub campaign: CampaignResponse,
}

/// The codes a retry may resend: Meta's retryable ones, the marketing limit (131049), and
/// on request the sends whose outcome is unknown.
fn retryable_codes(include_unknown: bool) -> Vec<String> {
    let mut codes: Vec<String> = SEND_ERROR_CODES
        .iter()
        .filter(|(_, class, _)| *class == SendFailure::Retryable)
        .map(|(code, _, _)| code.to_string())
        .collect();
    codes.push("131049".to_owned());
    if include_unknown {
        codes.push("outcome_unknown".to_owned());
    }
    codes
}

/// Sends the retryable failures again (never a recipient that was sent, delivered or read).
#[utoipa::path(
    post, path = "/campaigns/{id}/retry-failed", tag = "campaigns",
    params(("id" = String, Path, description = "`cmp_…`")),
    request_body = RetryFailed,
    responses(
        BearerErrors, JsonBodyErrors, PathErrors,
        (status = 200, body = RetryResponse),
        (status = 409, description = "Not RUNNING, PAUSED or COMPLETED", body = shared::api::Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn retry_failed(
    State(state): State<CampaignsState>,
    tenant: Tenant,
    Path(id): Path<String>,
    Json(body): Json<RetryFailed>,
) -> Result<axum::Json<RetryResponse>, ApiError> {
    let id = campaign_id(&id)?;
    let mut client = state.api.pool.get().await?;
    let campaign = campaigns::get(&client, &tenant.user_id, &id)
        .await?
        .ok_or_else(not_found)?;
    const RETRYABLE: &[CampaignStatus] = &[
        CampaignStatus::Running,
        CampaignStatus::Paused,
        CampaignStatus::Completed,
    ];
    if !RETRYABLE.contains(&campaign.status) {
        return Err(illegal("retry", campaign.status, RETRYABLE));
    }
    let tx = client.transaction().await?;
    let requeued = campaigns::retry_failed(
        &tx,
        &tenant.user_id,
        &id,
        &retryable_codes(body.include_unknown),
    )
    .await?;
    tx.commit().await?;
    let campaign = campaigns::get(&client, &tenant.user_id, &id)
        .await?
        .ok_or_else(not_found)?;
    if requeued > 0 && campaign.status == CampaignStatus::Running {
        publish_start(&state, &campaign, StartReason::Resume).await;
    }
    let axum::Json(campaign) = respond(&client, campaign).await?;
    Ok(axum::Json(RetryResponse { requeued, campaign }))
}

/// Filters and paging of a campaign's recipients.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListRecipients {
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    #[param(min_length = 1, max_length = 512)]
    cursor: Option<String>,
    status: Option<RecipientStatus>,
    skip_reason: Option<SkipReason>,
    /// Meta's code (`131026`) or ours (`outcome_unknown`, `missing_value`).
    #[param(min_length = 1, max_length = 50)]
    error_code: Option<String>,
}

/// One recipient of a campaign.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecipientResponse {
    /// `rcp_…`.
    pub recipient_id: String,
    pub contact_id: String,
    pub phone: Option<String>,
    pub status: RecipientStatus,
    pub skip_reason: Option<SkipReason>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// The values it was sent with.
    pub variable_values: Value,
    pub template_send_id: Option<String>,
    pub queued_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub read_at: Option<DateTime<Utc>>,
}

impl From<campaigns::RecipientRow> for RecipientResponse {
    fn from(r: campaigns::RecipientRow) -> Self {
        Self {
            recipient_id: r.recipient_id.to_string(),
            contact_id: r.contact_id.to_string(),
            phone: r.phone,
            status: r.status,
            skip_reason: r.skip_reason,
            error_code: r.error_code,
            error_message: r.error_message,
            variable_values: r.variable_values,
            template_send_id: r.template_send_id,
            queued_at: r.queued_at,
            sent_at: r.sent_at,
            delivered_at: r.delivered_at,
            read_at: r.read_at,
        }
    }
}

/// A campaign's recipients, by id, filtered by status, skip reason or error code.
#[utoipa::path(
    get, path = "/campaigns/{id}/recipients", tag = "campaigns",
    params(("id" = String, Path, description = "`cmp_…`"), ListRecipients),
    responses(BearerErrors, ListErrors, PathErrors, (status = 200, body = Page<RecipientResponse>)),
)]
pub async fn list_recipients(
    State(state): State<CampaignsState>,
    tenant: Tenant,
    Path(id): Path<String>,
    Query(query): Query<ListRecipients>,
) -> Result<axum::Json<Page<RecipientResponse>>, ApiError> {
    let id = campaign_id(&id)?;
    if query
        .error_code
        .as_deref()
        .is_some_and(|c| c.contains('\0'))
    {
        return Err(ApiError::invalid("error_code", "must not contain NUL"));
    }
    if query
        .error_code
        .as_deref()
        .is_some_and(|c| !(1..=50).contains(&c.chars().count()))
    {
        return Err(ApiError::invalid(
            "error_code",
            "must be 1 to 50 characters",
        ));
    }
    // A cursor belongs to one campaign's list: another campaign's is a 400.
    let paging = Paging::new(
        &state.api.sealing_key,
        format!("campaign-recipients:{id}"),
        query.limit,
        query.cursor.as_deref(),
    )?;
    let client = state.api.pool.get().await?;
    campaigns::get(&client, &tenant.user_id, &id)
        .await?
        .ok_or_else(not_found)?;
    let filter = campaigns::RecipientFilterQuery {
        status: query.status,
        skip_reason: query.skip_reason,
        error_code: query.error_code,
    };
    let rows =
        campaigns::recipients(&client, &tenant.user_id, &id, &filter, paging.request()).await?;
    Ok(axum::Json(
        paging.page(rows, |r| r.recipient_id.to_string()),
    ))
}

/// A campaign's numbers.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsResponse {
    pub campaign_id: String,
    pub status: CampaignStatus,
    pub counters: body::CountersResponse,
    /// Recipients whose customer wrote after the send.
    pub replied: i64,
    /// Button clicks on this campaign's sends.
    pub clicked: i64,
    /// replied / sent.
    pub reply_rate: f64,
    /// Recipients by status.
    pub by_status: std::collections::BTreeMap<String, i64>,
    /// FAILED recipients by error code.
    pub failed_by_code: std::collections::BTreeMap<String, i64>,
    /// SKIPPED recipients by reason.
    pub skipped_by_reason: std::collections::BTreeMap<String, i64>,
    /// Sends per minute while it ran, oldest first.
    pub sent_per_minute: Vec<MinuteCount>,
}

/// Sends in one UTC minute.
#[derive(Debug, Serialize, ToSchema)]
pub struct MinuteCount {
    pub minute: DateTime<Utc>,
    pub sent: i64,
}

/// Sent, delivered, read, replied, clicked, failed by code, skipped by reason, rates, and
/// sends per minute.
#[utoipa::path(
    get, path = "/campaigns/{id}/stats", tag = "campaigns",
    params(("id" = String, Path, description = "`cmp_…`")),
    responses(BearerErrors, PathErrors, (status = 200, body = StatsResponse)),
)]
pub async fn campaign_stats(
    State(state): State<CampaignsState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<axum::Json<StatsResponse>, ApiError> {
    let id = campaign_id(&id)?;
    let client = state.api.pool.get().await?;
    let campaign = campaigns::get(&client, &tenant.user_id, &id)
        .await?
        .ok_or_else(not_found)?;
    let counts = campaigns::counters(&client, &id).await?;
    let breakdown = campaigns::breakdown(&client, &id).await?;
    let counters = body::CountersResponse::new(campaign.total_recipients, counts);
    let reply_rate = if counts.sent > 0 {
        (breakdown.replied as f64 / f64::from(counts.sent) * 10_000.0).round() / 10_000.0
    } else {
        0.0
    };
    Ok(axum::Json(StatsResponse {
        campaign_id: id.to_string(),
        status: campaign.status,
        counters,
        replied: breakdown.replied,
        clicked: breakdown.clicked,
        reply_rate,
        by_status: breakdown.by_status,
        failed_by_code: breakdown.failed_by_code,
        skipped_by_reason: breakdown.skipped_by_reason,
        sent_per_minute: breakdown
            .sent_per_minute
            .into_iter()
            .map(|(minute, sent)| MinuteCount { minute, sent })
            .collect(),
    }))
}

/// What a campaign would do, without writing anything.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// `tpl_…`: render samples with this template (MARKETING also applies marketing
    /// opt-outs and the frequency cap).
    #[serde(default)]
    pub template_id: Option<String>,
    #[serde(default)]
    pub recipient_filter: RecipientFilterBody,
    #[serde(default)]
    pub variable_values: std::collections::BTreeMap<String, VariableSource>,
    /// Hours (default 24).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 720)]
    pub frequency_cap_hours: Option<i32>,
}

/// One rendered sample.
#[derive(Debug, Serialize, ToSchema)]
pub struct SampleMessage {
    pub contact_id: String,
    /// The body as the contact would read it, or `null` when a value is missing.
    pub text: Option<String>,
    /// Why it cannot be rendered (a variable without a value).
    pub problem: Option<String>,
}

/// How many would receive it, how many would be skipped and why, and three samples.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewResponse {
    pub eligible: i64,
    pub skipped: std::collections::BTreeMap<String, i64>,
    pub samples: Vec<SampleMessage>,
}

/// Previews a campaign's audience and messages.
#[utoipa::path(
    post, path = "/campaigns/preview", tag = "campaigns",
    request_body = PreviewRequest,
    responses(BearerErrors, JsonBodyErrors, (status = 200, body = PreviewResponse)),
)]
pub async fn preview_campaign(
    State(state): State<CampaignsState>,
    tenant: Tenant,
    Json(body): Json<PreviewRequest>,
) -> Result<axum::Json<PreviewResponse>, ApiError> {
    let filter = body
        .recipient_filter
        .parse("recipient_filter")
        .map_err(|problems| {
            ApiError::Validation(
                problems
                    .into_iter()
                    .map(|(field, message)| shared::api::FieldError::new(field, message))
                    .collect(),
            )
        })?;
    if let Some(cap) = body.frequency_cap_hours {
        if !(0..=720).contains(&cap) {
            return Err(ApiError::invalid(
                "frequency_cap_hours",
                "must be between 0 and 720",
            ));
        }
    }
    let client = state.api.pool.get().await?;
    let template = match body.template_id.as_deref() {
        None => None,
        Some(raw) => Some(
            match TemplateId::parse(raw) {
                Some(id) => templates::get(&client, &tenant.user_id, &id).await?,
                None => None,
            }
            .ok_or_else(|| ApiError::invalid("template_id", "is not one of your templates"))?,
        ),
    };
    // The values as a campaign with them would be checked: a 422 now, not a FAILED
    // recipient later.
    if !body.variable_values.is_empty() {
        let mut errors = shared::api::FieldErrors::default();
        match &template {
            Some(template) => body::check_variables(template, &body.variable_values, &mut errors),
            None => errors.push(
                "variable_values",
                "needs `template_id`: values are checked against a template",
            ),
        }
        errors.into_result()?;
    }
    let marketing = template
        .as_ref()
        .is_some_and(|t| t.draft.category == shared::domain::TemplateCategory::Marketing);
    let options = campaigns::ResolveOptions {
        marketing,
        frequency_cap_hours: body
            .frequency_cap_hours
            .unwrap_or(shared::domain::campaign::DEFAULT_FREQUENCY_CAP_HOURS),
    };
    let (resolution, samples) =
        campaigns::preview(&client, &tenant.user_id, &filter, options).await?;
    let samples = samples
        .into_iter()
        .map(|sample| {
            let (text, problem) = match &template {
                None => (None, None),
                Some(t) => {
                    let given = values_for_recipient(&body.variable_values, &sample.fields);
                    match resolve_values(&t.draft.content, &given) {
                        Ok(values) => (Some(rendered_body(&t.draft, &values)), None),
                        Err(v) => (
                            None,
                            Some(
                                v.iter()
                                    .map(|v| format!("{} {}", v.field, v.message))
                                    .collect::<Vec<_>>()
                                    .join("; "),
                            ),
                        ),
                    }
                }
            };
            SampleMessage {
                contact_id: sample.contact_id.to_string(),
                text,
                problem,
            }
        })
        .collect();
    Ok(axum::Json(PreviewResponse {
        eligible: resolution.eligible,
        skipped: resolution
            .skipped
            .into_iter()
            .map(|(reason, n)| (reason.as_str().to_owned(), n))
            .collect(),
        samples,
    }))
}
