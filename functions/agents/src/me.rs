use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::api::openapi::responses::{BearerErrors, JsonBodyErrors};
use shared::{
    api::{ApiError, ApiState, Json, Tenant, openapi::nullable},
    db::users::{self, Account},
    domain::{CompanyName, TenantTimeZone, WorkingHours},
};
use utoipa::ToSchema;

/// The tenant's account.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    user_id: String,
    email: String,
    company_name: Option<String>,
    /// IANA time zone: times a customer gives without an offset are read in it, and meeting
    /// slots are offered in it.
    time_zone: String,
    /// When the AI agent may book meetings (read in `time_zone`); `null`: not configured
    /// (it offers slots between 09:00 and 18:00 on any day).
    working_hours: Option<WorkingHoursBody>,
    credits: CreditsResponse,
    created_at: DateTime<Utc>,
}

/// Working days and a local time range within one day.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkingHoursBody {
    /// Opening time, `HH:MM` (24-hour clock).
    #[schema(example = "09:00", pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    start: String,
    /// Closing time, `HH:MM`, after `start`.
    #[schema(example = "17:30", pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    end: String,
    /// ISO weekday numbers, 1 (Monday) to 7 (Sunday); at least one.
    #[schema(example = json!([1, 2, 3, 4, 5]), min_items = 1, max_items = 7)]
    days: Vec<i64>,
}

impl From<&WorkingHours> for WorkingHoursBody {
    fn from(hours: &WorkingHours) -> Self {
        Self {
            start: hours.start().format("%H:%M").to_string(),
            end: hours.end().format("%H:%M").to_string(),
            days: hours.day_numbers().into_iter().map(i64::from).collect(),
        }
    }
}

/// The tenant's credit balance: one credit is one AI reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditsResponse {
    remaining_credits: i32,
    total_used: i32,
}

impl From<Account> for MeResponse {
    fn from(account: Account) -> Self {
        Self {
            user_id: account.user_id.into(),
            email: account.email,
            company_name: account.company_name,
            time_zone: account.time_zone,
            working_hours: account.working_hours.as_ref().map(Into::into),
            credits: CreditsResponse {
                remaining_credits: account.remaining_credits,
                total_used: account.total_used,
            },
            created_at: account.created_at,
        }
    }
}

/// Changes to the account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchMe {
    /// The company name; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 255)]
    company_name: Option<Option<String>>,
    /// An IANA time zone name (`Europe/Madrid`, `UTC`).
    #[schema(example = "Europe/Madrid", max_length = 64)]
    time_zone: Option<String>,
    /// When the AI agent may book meetings; `null` clears them.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<WorkingHoursBody>)]
    working_hours: Option<Option<WorkingHoursBody>>,
}

/// The authenticated tenant's account and credits. The first call with a new token's `sub`
/// creates the account.
#[utoipa::path(
    get, path = "/me", tag = "account",
    responses(
        BearerErrors,
        (status = 200, body = MeResponse),
    ),
)]
pub async fn get_me(
    State(state): State<ApiState>,
    tenant: Tenant,
) -> Result<axum::Json<MeResponse>, ApiError> {
    let client = state.pool.get().await?;
    let account = users::account(&client, &tenant.user_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("account not found".to_owned()))?;
    Ok(axum::Json(account.into()))
}

/// Updates the account's company name, time zone and working hours.
#[utoipa::path(
    patch, path = "/me", tag = "account",
    request_body = PatchMe,
    responses(
        BearerErrors, JsonBodyErrors,
        (status = 200, body = MeResponse),
    ),
)]
pub async fn patch_me(
    State(state): State<ApiState>,
    tenant: Tenant,
    Json(body): Json<PatchMe>,
) -> Result<axum::Json<MeResponse>, ApiError> {
    let zone = body
        .time_zone
        .as_deref()
        .map(TenantTimeZone::parse)
        .transpose()
        .map_err(|m| ApiError::invalid("time_zone", m))?;
    let hours = match &body.working_hours {
        None => None,
        Some(None) => Some(None),
        Some(Some(raw)) => Some(Some(
            WorkingHours::parse(&raw.start, &raw.end, &raw.days).map_err(|refused| {
                ApiError::invalid(&format!("working_hours.{}", refused.field), refused.message)
            })?,
        )),
    };
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    if let Some(zone) = zone {
        users::set_time_zone(&tx, &tenant.user_id, zone).await?;
    }
    if let Some(hours) = &hours {
        users::set_working_hours(&tx, &tenant.user_id, hours.as_ref()).await?;
    }
    let client = &tx;
    let account = match body.company_name {
        None => users::account(client, &tenant.user_id).await?,
        Some(None) => users::set_company_name(client, &tenant.user_id, None).await?,
        Some(Some(raw)) => {
            let name =
                CompanyName::parse(&raw).map_err(|m| ApiError::invalid("company_name", m))?;
            users::set_company_name(client, &tenant.user_id, Some(&name)).await?
        }
    };
    let account = account.ok_or_else(|| ApiError::NotFound("account not found".to_owned()))?;
    tx.commit().await?;
    Ok(axum::Json(account.into()))
}
