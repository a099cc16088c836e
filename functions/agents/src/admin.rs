use axum::{
    extract::{FromRequestParts, State},
    http::{StatusCode, request::Parts},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::{
    api::{ApiError, ApiState, FieldErrors, Json, Problem},
    db::credits,
    domain::UserId,
};
use utoipa::ToSchema;

/// The header carrying the operators' secret.
pub const ADMIN_SECRET_HEADER: &str = "x-admin-secret";

/// An operator: the request carries `X-Admin-Secret` equal to `ADMIN_API_SECRET`.
/// Extracted before the body, so a request without it is a 401 whatever its body.
#[derive(Debug)]
pub struct Admin;

impl FromRequestParts<ApiState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(ADMIN_SECRET_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let authorised = state
            .admin_secret
            .as_ref()
            .is_some_and(|secret| shared::crypto::secrets_match(presented, secret));
        if authorised {
            Ok(Self)
        } else {
            Err(ApiError::Unauthorized(
                "a valid X-Admin-Secret header is required".to_owned(),
            ))
        }
    }
}

/// Credits to add to a tenant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantCredits {
    /// The tenant (`users.user_id`).
    user_id: String,
    /// 1 to 1,000,000.
    amount: i32,
    #[schema(max_length = 255)]
    reason: String,
}

/// A recorded grant and the balance after it.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantResponse {
    grant_id: String,
    user_id: String,
    amount: i32,
    reason: String,
    granted_by: String,
    created_at: DateTime<Utc>,
    remaining_credits: i32,
}

/// Grants credits to a tenant (operators only: `X-Admin-Secret`, not a tenant token).
#[utoipa::path(
    post, path = "/admin/credits", tag = "admin",
    request_body = GrantCredits,
    security(()),
    params(("x-admin-secret" = String, Header, description = "ADMIN_API_SECRET")),
    responses(
        (status = 201, body = GrantResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn grant_credits(
    State(state): State<ApiState>,
    _admin: Admin,
    Json(body): Json<GrantCredits>,
) -> Result<(StatusCode, axum::Json<GrantResponse>), ApiError> {
    let mut errors = FieldErrors::default();
    let user = errors.check(
        "user_id",
        UserId::parse(&body.user_id).ok_or_else(|| "is not a user id".to_owned()),
    );
    if !(1..=1_000_000).contains(&body.amount) {
        errors.push("amount", "must be between 1 and 1000000");
    }
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 255 {
        errors.push("reason", "must be 1 to 255 characters");
    }
    let Some(user) = user else {
        return Err(errors.into());
    };
    errors.into_result()?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let grant = credits::grant(&tx, &user, body.amount, reason, "admin-api")
        .await?
        .ok_or_else(|| ApiError::NotFound("no such tenant".to_owned()))?;
    tx.commit().await?;
    tracing::info!(tenant.id = %grant.user_id, amount = grant.amount, "credits granted");
    Ok((
        StatusCode::CREATED,
        axum::Json(GrantResponse {
            grant_id: grant.grant_id,
            user_id: grant.user_id,
            amount: grant.amount,
            reason: grant.reason,
            granted_by: grant.granted_by,
            created_at: grant.created_at,
            remaining_credits: grant.remaining_credits,
        }),
    ))
}
