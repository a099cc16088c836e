//! `POST /templates/{id}/send`: one approved template to one customer, through the one
//! send-and-record path (`shared::outbound::send_and_record`). The send is written first
//! (a `template_sends` row, `PENDING`, and an agent-side message of the customer's
//! conversation, author `template`, so the AI sees what the customer is answering), then
//! sent, then recorded: `SENT` with Meta's id, or `FAILED` with Meta's code. A template
//! Meta paused (132015) or disabled (132016) is moved to that status. With an
//! `Idempotency-Key`, a retried request answers the first send (`Idempotent-Replayed:
//! true`) instead of messaging the customer again.

use std::collections::BTreeMap;

use axum::{
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::{
    api::{
        ApiError, Json, Problem, REPLAYED_HEADER, Tenant, idempotency_key,
        openapi::responses::{BearerErrors, JsonBodyErrors, PathErrors},
    },
    db::{
        DbError, contacts,
        templates::{self, IDEMPOTENCY_KEY_CONSTRAINT, NewSend, TemplateSend},
    },
    domain::{CustomerIdentity, PhoneE164, Platform, TemplateSendStatus, TemplateStatus},
    outbound::{Destination, Payload, SendOutcome, send_and_record},
    templates::{
        Location,
        payload::{HeaderOverride, rendered_body, resolve_values, send_content},
    },
};
use utoipa::ToSchema;

use crate::{
    TemplatesState,
    response::{template_id, template_not_found, violations},
};

/// A send's header, replacing the template's stored media or location.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendHeader {
    /// IMAGE, VIDEO, DOCUMENT headers: a public URL Meta fetches.
    media_url: Option<String>,
    /// LOCATION headers.
    location: Option<Location>,
}

/// One template message to one customer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendTemplate {
    /// The customer's number in E.164 (`+14155552671`).
    to: String,
    /// Values by variable name (`{"first_name": "Ana"}`), or by position for body
    /// placeholders (`{"1": "Ana"}`); `copy_code` gives a COPY_CODE button's code. A
    /// variable left out takes its `default_value`.
    #[serde(default)]
    variable_values: BTreeMap<String, String>,
    header: Option<SendHeader>,
}

/// A template send.
#[derive(Debug, Serialize, ToSchema)]
pub struct SendResponse {
    /// `tsend_…`
    send_id: String,
    template_id: String,
    /// The conversation the send landed in (`conv_…`).
    conversation_id: Option<String>,
    /// Its message in that conversation (`msg_…`).
    message_id: Option<String>,
    customer_phone: String,
    /// The values sent, by variable name.
    #[schema(value_type = Object)]
    variable_values: Value,
    status: TemplateSendStatus,
    /// Meta's `wamid.…`.
    platform_message_id: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
    sent_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl From<templates::TemplateSend> for SendResponse {
    fn from(send: templates::TemplateSend) -> Self {
        Self {
            send_id: send.send_id.into(),
            template_id: send.template_id.into(),
            conversation_id: send.conversation_id,
            message_id: send.message_id,
            customer_phone: send.customer_phone,
            variable_values: send.variable_values,
            status: send.status,
            platform_message_id: send.platform_message_id,
            error_code: send.error_code,
            error_message: send.error_message,
            sent_at: send.sent_at,
            created_at: send.created_at,
        }
    }
}

/// Sends an approved template to one number.
#[utoipa::path(
    post, path = "/templates/{id}/send", tag = "templates",
    params(
        ("id" = String, Path, description = "`tpl_…`"),
        ("idempotency-key" = Option<String>, Header, description = "1 to 255 visible ASCII characters. A retry with the same key answers the first send (with `Idempotent-Replayed: true`) and messages no one; the same key for another template or number is a 422."),
    ),
    request_body = SendTemplate,
    responses(
        BearerErrors, JsonBodyErrors, PathErrors,
        (status = 201, description = "Meta accepted it (`SENT`), or the send an earlier request with the same `Idempotency-Key` made (in whatever state it is)", body = SendResponse),
        (status = 409, description = "The template is not APPROVED, the customer opted out, or the channel has no agent", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad `to`, value or `Idempotency-Key` (or one used for another send), or Meta refused the send (the send is recorded `FAILED` with Meta's code)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Meta could not take it now; the send stays `PENDING` with the reason", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn send_template(
    State(state): State<TemplatesState>,
    tenant: Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<SendTemplate>,
) -> Result<(StatusCode, HeaderMap, axum::Json<SendResponse>), ApiError> {
    let id = template_id(&id)?;
    let key = idempotency_key(&headers).map_err(|m| ApiError::invalid("Idempotency-Key", m))?;
    let mut client = state.api.pool.get().await?;
    let template = templates::get(&client, &tenant.user_id, &id)
        .await?
        .ok_or_else(template_not_found)?;
    let to = PhoneE164::parse(&body.to)
        .map_err(|e| ApiError::invalid("to", format!("{e}: write it in E.164 (`+14155552671`)")))?;
    // A retry answers the first send, whatever has happened to the template since.
    if let Some(key) = key.as_deref() {
        if let Some(first) =
            templates::send_by_idempotency_key(&client, &tenant.user_id, key).await?
        {
            return replay(first, &id, &to);
        }
    }
    if template.status != TemplateStatus::Approved {
        return Err(ApiError::Conflict(format!(
            "the template is {}: only APPROVED templates can be sent",
            template.status
        )));
    }
    let values =
        resolve_values(&template.draft.content, &body.variable_values).map_err(violations)?;
    let header = body.header.map(|h| HeaderOverride {
        media_url: h.media_url,
        location: h.location,
    });
    let content = send_content(
        template.template_id.as_str(),
        &template.draft,
        &values,
        header.as_ref(),
    )
    .map_err(violations)?;
    if contacts::is_opted_out(
        &client,
        &tenant.user_id,
        &CustomerIdentity::Phone(to.clone()),
    )
    .await?
    {
        return Err(ApiError::Conflict(
            "the contact opted out of messages".to_owned(),
        ));
    }
    let channel = templates::channel(&client, &tenant.user_id, &template.phone_number_id)
        .await?
        .ok_or_else(template_not_found)?;
    let agent_id = templates::channel_agent(&client, &tenant.user_id, &channel.id)
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(
                "the template's channel has no agent: link one (POST /agents), so the \
                 customer's answer has a conversation to land in"
                    .to_owned(),
            )
        })?;

    let recorded_values = serde_json::to_value(&values.0).unwrap_or(Value::Null);
    let tx = client.transaction().await?;
    let text = rendered_body(&template.draft, &values);
    let new = NewSend {
        template: &template,
        agent_id: &agent_id,
        customer: to.as_str(),
        text: &text,
        variable_values: &recorded_values,
        campaign_id: None,
        idempotency_key: key.as_deref(),
    };
    let begun = match templates::begin_send(&tx, &tenant.user_id, new).await {
        Ok(begun) => begun.ok_or_else(template_not_found)?,
        // The same key, in a request running at the same time: its send is the answer.
        Err(DbError::UniqueViolation { constraint })
            if constraint == IDEMPOTENCY_KEY_CONSTRAINT =>
        {
            drop(tx);
            let key = key.as_deref().unwrap_or_default();
            let first = templates::send_by_idempotency_key(&client, &tenant.user_id, key)
                .await?
                .ok_or_else(template_not_found)?;
            return replay(first, &id, &to);
        }
        Err(error) => return Err(error.into()),
    };
    tx.commit().await?;

    let destination = Destination {
        platform: Platform::WhatsApp,
        user_id: &tenant.user_id,
        channel_key: &channel.meta_phone_number_id,
        sealed_access_token: channel.sealed_access_token.as_deref(),
        instagram_api: None,
        customer: to.as_str(),
    };
    let outcome = send_and_record(
        &mut client,
        &state.graph,
        &state.api.sealing_key,
        destination,
        &begun.message_id,
        Payload::WhatsApp(&content),
    )
    .await?;
    let failure = match &outcome {
        SendOutcome::Sent {
            platform_message_id,
            ..
        } => {
            templates::finish_send(
                &client,
                &begun.send_id,
                TemplateSendStatus::Sent,
                Some(platform_message_id),
                None,
                None,
            )
            .await?;
            None
        }
        SendOutcome::Failed { code, reason } => {
            let code_text = code.map(|c| c.to_string());
            templates::finish_send(
                &client,
                &begun.send_id,
                TemplateSendStatus::Failed,
                None,
                code_text.as_deref(),
                Some(reason),
            )
            .await?;
            let moved = match code {
                Some(132_015) => Some((TemplateStatus::Paused, "PAUSED")),
                Some(132_016) => Some((TemplateStatus::Disabled, "DISABLED")),
                _ => None,
            };
            if let Some((status, meta_status)) = moved {
                templates::set_status(&client, &id, status, meta_status).await?;
            }
            let codes = code.map_or_else(|| "no code".to_owned(), |c| format!("code {c}"));
            Some(ApiError::Other {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                detail: format!(
                    "Meta refused the send ({codes}): {reason}; send {} is FAILED",
                    begun.send_id
                ),
            })
        }
        SendOutcome::Retryable { code, reason, .. } => {
            let code_text = code.map(|c| c.to_string());
            templates::finish_send(
                &client,
                &begun.send_id,
                TemplateSendStatus::Pending,
                None,
                code_text.as_deref(),
                Some(reason),
            )
            .await?;
            Some(ApiError::Other {
                status: StatusCode::SERVICE_UNAVAILABLE,
                detail: format!(
                    "Meta could not take the send now: {reason}; send {} stays PENDING",
                    begun.send_id
                ),
            })
        }
        SendOutcome::AlreadyFinished { .. } | SendOutcome::Missing => None,
    };
    tracing::info!(
        template.id = %id,
        send.id = %begun.send_id,
        conversation.id = %begun.conversation_id,
        sent = failure.is_none(),
        "template send finished"
    );
    if let Some(error) = failure {
        return Err(error);
    }
    let send = templates::send(&client, &begun.send_id)
        .await?
        .ok_or_else(template_not_found)?;
    Ok((
        StatusCode::CREATED,
        HeaderMap::new(),
        axum::Json(send.into()),
    ))
}

/// The answer to a retry: the first send, when the key was used for this template and
/// number; a 422 naming the key otherwise.
fn replay(
    first: TemplateSend,
    template: &shared::domain::TemplateId,
    to: &PhoneE164,
) -> Result<(StatusCode, HeaderMap, axum::Json<SendResponse>), ApiError> {
    if first.template_id != *template || first.customer_phone != to.as_str() {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "was already used for a send of another template or to another number; use a new key",
        ));
    }
    tracing::info!(send.id = %first.send_id, "template send replayed");
    let mut headers = HeaderMap::new();
    headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    Ok((StatusCode::CREATED, headers, axum::Json(first.into())))
}
