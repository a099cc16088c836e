use axum::{
    extract::{FromRef, FromRequestParts, State},
    http::{HeaderMap, HeaderValue, StatusCode, request::Parts},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::api::openapi::responses::{BearerErrors, JsonBodyErrors};
use shared::{
    api::{ApiError, ApiState, FieldErrors, Json, Problem},
    db::credits::{self, GrantOutcome, NewGrant},
    domain::{GrantReason, UserId},
};
use utoipa::ToSchema;

/// The header carrying the operators' secret.
pub const ADMIN_SECRET_HEADER: &str = "x-admin-secret";

/// An operator: the request carries `X-Admin-Secret` equal to `ADMIN_API_SECRET`.
/// Extracted before the body, so a request without it is a 401 whatever its body.
#[derive(Debug)]
pub struct Admin;

impl<S> FromRequestParts<S> for Admin
where
    ApiState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = ApiState::from_ref(state);
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

use shared::api::REPLAYED_HEADER;

/// Credits to add to a tenant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantCredits {
    /// The tenant (`users.user_id`: its token's `sub`).
    #[schema(pattern = "^[!-~]{1,50}$")]
    user_id: String,
    /// 1 to 1,000,000.
    #[schema(minimum = 1, maximum = 1_000_000)]
    amount: i32,
    #[schema(min_length = 1, max_length = 255)]
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
    params(
        ("x-admin-secret" = String, Header, description = "ADMIN_API_SECRET"),
        ("idempotency-key" = Option<String>, Header, description = "1 to 255 visible ASCII characters. A retry with the same key and body answers the first grant (with `Idempotent-Replayed: true`) and adds nothing; the same key with another body is a 422."),
    ),
    responses(
        BearerErrors, JsonBodyErrors,
        (status = 201, body = GrantResponse, headers(("idempotent-replayed" = String, description = "`true` when this answers an earlier grant with the same key"))),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid, the balance would exceed 2147483647 (`amount`), or the `Idempotency-Key` was used for another grant", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn grant_credits(
    State(state): State<ApiState>,
    _admin: Admin,
    headers: HeaderMap,
    Json(body): Json<GrantCredits>,
) -> Result<(StatusCode, HeaderMap, axum::Json<GrantResponse>), ApiError> {
    let mut errors = FieldErrors::default();
    let key = errors
        .check("Idempotency-Key", shared::api::idempotency_key(&headers))
        .flatten();
    let user = errors.check(
        "user_id",
        UserId::parse(&body.user_id).ok_or_else(|| "is not a user id".to_owned()),
    );
    if !(1..=1_000_000).contains(&body.amount) {
        errors.push("amount", "must be between 1 and 1000000");
    }
    let reason = errors.check("reason", GrantReason::parse(&body.reason));
    let (Some(user), Some(reason)) = (user, reason) else {
        return Err(errors.into());
    };
    errors.into_result()?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let outcome = credits::grant(
        &tx,
        NewGrant {
            user: &user,
            amount: body.amount,
            reason: reason.as_str(),
            granted_by: "admin-api",
            idempotency_key: key.as_deref(),
        },
    )
    .await?;
    let mut response_headers = HeaderMap::new();
    let grant = match outcome {
        GrantOutcome::Granted(grant) => {
            tx.commit().await?;
            tracing::info!(tenant.id = %grant.user_id, amount = grant.amount, "credits granted");
            grant
        }
        GrantOutcome::Replayed(grant) => {
            tracing::info!(tenant.id = %grant.user_id, "credit grant replayed");
            response_headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
            grant
        }
        GrantOutcome::KeyReused => {
            return Err(ApiError::invalid(
                "Idempotency-Key",
                "was already used for a different grant (tenant, amount or reason); use a new key",
            ));
        }
        GrantOutcome::NoSuchTenant => return Err(ApiError::NotFound("no such tenant".to_owned())),
        GrantOutcome::Overflow { remaining_credits } => {
            return Err(ApiError::invalid(
                "amount",
                format!(
                    "would take the balance ({remaining_credits}) over the maximum of {}",
                    i32::MAX
                ),
            ));
        }
    };
    Ok((
        StatusCode::CREATED,
        response_headers,
        axum::Json(GrantResponse {
            grant_id: grant.grant_id.into(),
            user_id: grant.user_id.into(),
            amount: grant.amount,
            reason: grant.reason,
            granted_by: grant.granted_by,
            created_at: grant.created_at,
            remaining_credits: grant.remaining_credits,
        }),
    ))
}
