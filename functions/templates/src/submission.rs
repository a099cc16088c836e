//! `POST /templates/{id}/submit` and `POST /templates/{id}/sync`.
//!
//! Submitting: the media header's sample is fetched and uploaded first (outside any
//! transaction: it may take seconds), then the template row is locked and its state checked
//! again, so of two concurrent submissions one creates the template at Meta and the other
//! answers the state it left. A template already accepted by Meta answers its state; a
//! REJECTED one that Meta knows is edited under its id (`POST /{meta_template_id}`), never
//! created twice.

use axum::extract::{Path, State};
use chrono::{Timelike, Utc};
use serde_json::json;
use shared::{
    api::{
        ApiError, FieldError, Problem, Tenant,
        openapi::responses::{BearerErrors, PathErrors},
    },
    db::templates::{self, Template, TemplateEvent},
    domain::{HeaderType, TemplateStatus},
    meta::graph::{
        GraphError,
        templates::{EditTemplate, TemplateCategory as MetaCategory},
    },
    templates::{
        payload::creation_request,
        status::{meaningful_reason, status_for_event},
        validate,
    },
};

use crate::{
    TemplatesState,
    authoring::channel_token,
    media,
    response::{TemplateResponse, template_id, template_not_found, violations},
};

/// Meta's codes that mean "too many template creations now": the hourly creation limit
/// of a WABA and the platform's rate limits.
const RATE_LIMIT_CODES: &[i64] = &[4, 17, 32, 613, 80_008];

/// The field a refusal of Meta's is about, by its subcode, for the 422's `errors`; the
/// template as a whole when Meta does not say.
fn refused_field(subcode: Option<i64>) -> &'static str {
    match subcode {
        // "Content in this language already exists": the name, in this language.
        Some(2_388_024) => "name",
        // "Variables can't be at the start or end of the template".
        Some(2_388_299) => "body.text",
        _ => "template",
    }
}

fn is_submittable(status: TemplateStatus) -> bool {
    matches!(status, TemplateStatus::Draft | TemplateStatus::Rejected)
}

/// Meta's refusal as the API's answer, and what is stored of it.
fn refusal(error: &GraphError) -> (ApiError, String, serde_json::Value) {
    let stored = json!({
        "code": error.code,
        "error_subcode": error.subcode,
        "message": error.message,
        "fbtrace_id": error.fbtrace_id,
    });
    let codes = match (error.code, error.subcode) {
        (Some(code), Some(sub)) => format!("code {code}, subcode {sub}"),
        (Some(code), None) => format!("code {code}"),
        _ => "no code".to_owned(),
    };
    let reason = format!("Meta refused the template ({codes}): {}", error.message);
    let rate_limited = error.status == Some(429)
        || error
            .code
            .is_some_and(|code| RATE_LIMIT_CODES.contains(&code));
    let api = if rate_limited {
        ApiError::TooManyRequests {
            detail: format!(
                "{reason}. Meta limits template creation (100 per WhatsApp Business Account per \
                 hour); submit again later"
            ),
            retry_after_secs: 3600,
        }
    } else if error.origin == shared::meta::graph::ErrorOrigin::Meta {
        ApiError::Validation(vec![FieldError::new(
            refused_field(error.subcode),
            format!("was refused by Meta ({codes}): {}", error.message),
        )])
    } else {
        ApiError::BadGateway(format!(
            "Meta could not be reached or answered unreadably: {}",
            error.message
        ))
    };
    (api, reason, stored)
}

/// Submits a template to Meta for review.
#[utoipa::path(
    post, path = "/templates/{id}/submit", tag = "templates",
    params(("id" = String, Path, description = "`tpl_…`")),
    responses(
        BearerErrors, PathErrors,
        (status = 200, description = "Submitted (`PENDING`), or the state of a submission Meta already accepted", body = TemplateResponse),
        (status = 409, description = "The template cannot be submitted from its status, or its channel has no WABA", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The template breaks a rule, its media cannot be used, or Meta refused it (Meta's code, subcode and message)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Meta's limit of template creations was reached", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Meta could not be reached", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn submit_template(
    State(state): State<TemplatesState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<axum::Json<TemplateResponse>, ApiError> {
    let id = template_id(&id)?;
    let mut client = state.api.pool.get().await?;
    let template = templates::get(&client, &tenant.user_id, &id)
        .await?
        .ok_or_else(template_not_found)?;
    if !is_submittable(template.status) {
        return already_submitted(template);
    }
    let errors = validate(&template.draft);
    if !errors.is_empty() {
        return Err(violations(errors));
    }
    let channel = templates::channel(&client, &tenant.user_id, &template.phone_number_id)
        .await?
        .ok_or_else(template_not_found)?;
    let waba_id = channel.waba_id.clone().ok_or_else(|| {
        ApiError::Conflict(
            "the template's channel has no waba_id: set it with PATCH /phone-numbers/{id} first"
                .to_owned(),
        )
    })?;
    let token = channel_token(&state, channel.sealed_access_token.as_deref()).ok_or_else(|| {
        ApiError::Conflict("the channel's access token cannot be opened".to_owned())
    })?;

    // The media sample first, outside the transaction.
    let header = &template.draft.content.header;
    let handle = if matches!(
        header.kind,
        HeaderType::Image | HeaderType::Video | HeaderType::Document
    ) {
        let app_id = state
            .meta_app_id
            .as_deref()
            .ok_or_else(|| ApiError::Other {
                status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
                detail: "META_APP_ID is not configured: media headers cannot be uploaded"
                    .to_owned(),
            })?;
        let url = header.media_url.as_deref().unwrap_or_default();
        let fetched = media::fetch(&state.media_http, url, header.kind, state.media_limits)
            .await
            .map_err(|e| ApiError::invalid("header.media_url", e.to_string()))?;
        let handle = state
            .graph
            .upload_file(
                app_id,
                &token,
                &fetched.file_name,
                fetched.content_type,
                fetched.bytes,
            )
            .await
            .map_err(|e| {
                tracing::warn!(meta.code = e.code, "Meta refused the header upload");
                ApiError::BadGateway(format!("Meta refused the header upload: {}", e.message))
            })?;
        Some(handle.h)
    } else {
        None
    };

    let tx = client.transaction().await?;
    let template = templates::lock(&tx, &tenant.user_id, &id)
        .await?
        .ok_or_else(template_not_found)?;
    if !is_submittable(template.status) {
        tx.commit().await?;
        return already_submitted(template);
    }
    let request = creation_request(&template.draft, handle.as_deref());
    let outcome = match &template.meta_template_id {
        // Rejected at Meta: edited under its id, back to review.
        Some(meta_id) => state
            .graph
            .edit_template(
                meta_id,
                &token,
                &EditTemplate {
                    category: Some(request.category),
                    components: request.components.clone(),
                },
            )
            .await
            .map(|()| (meta_id.clone(), "PENDING".to_owned())),
        None => state
            .graph
            .create_template(&waba_id, &token, &request)
            .await
            .map(|created| (created.id, created.status)),
    };
    match outcome {
        Ok((meta_id, meta_status)) => {
            let status = status_for_event(&meta_status).unwrap_or(TemplateStatus::Pending);
            templates::mark_submitted(&tx, &id, &waba_id, &meta_id, &meta_status, status).await?;
            let template = templates::get(&tx, &tenant.user_id, &id)
                .await?
                .ok_or_else(template_not_found)?;
            tx.commit().await?;
            tracing::info!(template.id = %id, meta.template_id = %meta_id, "template submitted");
            Ok(axum::Json(template.into()))
        }
        Err(error) => {
            let (api, reason, stored) = refusal(&error);
            templates::mark_submission_failed(&tx, &id, &reason, &stored).await?;
            tx.commit().await?;
            tracing::warn!(
                template.id = %id,
                meta.code = error.code,
                meta.subcode = error.subcode,
                "Meta refused the template submission"
            );
            Err(api)
        }
    }
}

/// A template Meta already accepted answers its state; any other status says why not.
fn already_submitted(template: Template) -> Result<axum::Json<TemplateResponse>, ApiError> {
    if template.meta_template_id.is_some() {
        Ok(axum::Json(template.into()))
    } else {
        Err(ApiError::Conflict(format!(
            "the template is {} and cannot be submitted",
            template.status
        )))
    }
}

/// Pulls the template's state from Meta (`GET /{meta_template_id}`), with the same effect as
/// its status webhook, for a webhook that never came.
#[utoipa::path(
    post, path = "/templates/{id}/sync", tag = "templates",
    params(("id" = String, Path, description = "`tpl_…`")),
    responses(
        BearerErrors, PathErrors,
        (status = 200, body = TemplateResponse),
        (status = 409, description = "The template was never submitted", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Meta could not answer", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn sync_template(
    State(state): State<TemplatesState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<axum::Json<TemplateResponse>, ApiError> {
    let id = template_id(&id)?;
    let client = state.api.pool.get().await?;
    let template = templates::get(&client, &tenant.user_id, &id)
        .await?
        .ok_or_else(template_not_found)?;
    let (Some(meta_id), Some(waba_id)) = (&template.meta_template_id, &template.waba_id) else {
        return Err(ApiError::Conflict(
            "the template was never submitted to Meta".to_owned(),
        ));
    };
    let channel = templates::channel(&client, &tenant.user_id, &template.phone_number_id)
        .await?
        .ok_or_else(template_not_found)?;
    let token = channel_token(&state, channel.sealed_access_token.as_deref()).ok_or_else(|| {
        ApiError::Conflict("the channel's access token cannot be opened".to_owned())
    })?;
    let details = state
        .graph
        .template(meta_id, &token)
        .await
        .map_err(|e| ApiError::BadGateway(format!("Meta could not answer: {}", e.message)))?;
    // Whole seconds, as Meta's event times are: a webhook of this second still applies.
    let now = Utc::now().with_nanosecond(0).unwrap_or_else(Utc::now);
    if let Some(status) = details.status.as_deref() {
        let stored = json!({
            "source": "sync",
            "rejected_reason": details.rejected_reason,
        });
        templates::apply_event(
            &client,
            waba_id,
            meta_id,
            &TemplateEvent {
                event: status,
                status: status_for_event(status),
                reason: meaningful_reason(details.rejected_reason.as_deref()),
                details: &stored,
                at: now,
            },
        )
        .await?;
    }
    if let Some(score) = details
        .quality_score
        .as_ref()
        .and_then(|q| q.score.as_deref())
    {
        templates::apply_quality(&client, waba_id, meta_id, score, now).await?;
    }
    if let Some(category) = details.category {
        let ours = match category {
            MetaCategory::Marketing => shared::domain::TemplateCategory::Marketing,
            MetaCategory::Utility => shared::domain::TemplateCategory::Utility,
            MetaCategory::Authentication => shared::domain::TemplateCategory::Authentication,
        };
        if ours != template.draft.category {
            let update = json!({ "source": "sync", "new_category": ours.as_str(), "previous_category": template.draft.category.as_str() });
            templates::apply_category(&client, waba_id, meta_id, &update, Some(ours), now).await?;
        }
    }
    let template = templates::get(&client, &tenant.user_id, &id)
        .await?
        .ok_or_else(template_not_found)?;
    tracing::info!(template.id = %id, status = %template.status, "template synced");
    Ok(axum::Json(template.into()))
}
