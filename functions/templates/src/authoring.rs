//! `POST/GET /templates`, `GET/PATCH/DELETE /templates/{id}`: authoring. Every write is
//! validated by `shared::templates::validate` first and written in one transaction with its
//! variables and buttons.

use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use secrecy::SecretString;
use serde::Deserialize;
use shared::{
    api::{
        ApiError, Cursors, FieldError, Json, Page, PageParams, Problem, Query, Tenant,
        openapi::responses::{BearerErrors, JsonBodyErrors, ListErrors, PathErrors},
    },
    crypto::SecretKind,
    db::{
        DbError,
        templates::{self, Deleted, TemplateChannel, TemplateFilter},
    },
    domain::{ParameterFormat, PhoneNumberId, Platform, TemplateCategory, TemplateStatus},
    templates::{Button, Header, TemplateContent, TemplateDraft, TextPart, Variable, validate},
};
use utoipa::{IntoParams, ToSchema};

use crate::{
    TemplatesState,
    response::{TemplateResponse, template_id, template_not_found, violations},
};

/// A template to author. It is stored as `DRAFT`; `POST /templates/{id}/submit` sends it to
/// Meta.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplate {
    /// The WhatsApp channel (`pn_…`); its WABA owns the template.
    phone_number_id: String,
    /// Lowercase letters, digits and underscores, 1 to 512 characters; unique per channel
    /// and language.
    name: String,
    category: TemplateCategory,
    /// Meta's language code (`en`, `en_US`, `pt_BR`, …).
    language: String,
    /// `positional` (`{{1}}`, the default) or `named` (`{{first_name}}`).
    parameter_format: Option<ParameterFormat>,
    /// Absent: no header.
    header: Option<Header>,
    body: TextPart,
    footer: Option<TextPart>,
    #[serde(default)]
    variables: Vec<Variable>,
    #[serde(default)]
    buttons: Vec<Button>,
}

/// Changes to a `DRAFT` or `REJECTED` template; a field given replaces the stored one
/// (`variables` and `buttons` as whole lists). The result is validated as a whole.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTemplate {
    name: Option<String>,
    category: Option<TemplateCategory>,
    language: Option<String>,
    parameter_format: Option<ParameterFormat>,
    header: Option<Header>,
    body: Option<TextPart>,
    footer: Option<TextPart>,
    variables: Option<Vec<Variable>>,
    buttons: Option<Vec<Button>>,
}

/// Filters and paging for the template list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTemplates {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1, max_length = 512)]
    cursor: Option<String>,
    /// Only templates with this status.
    #[param(value_type = Option<TemplateStatus>)]
    status: Option<TemplateStatus>,
    /// Only templates of this channel (`pn_…`).
    #[param(pattern = "^pn_[0-7][0-9a-hjkmnp-tv-z]{25}$")]
    phone_number_id: Option<String>,
    /// Only templates of this category.
    #[param(value_type = Option<TemplateCategory>)]
    category: Option<TemplateCategory>,
}

/// The tenant's WhatsApp channel named by a request's `phone_number_id`; anything else is a
/// 422 naming the field.
pub(crate) async fn whatsapp_channel(
    client: &impl shared::db::GenericClient,
    tenant: &Tenant,
    raw: &str,
) -> Result<TemplateChannel, ApiError> {
    let id = PhoneNumberId::parse(raw)
        .ok_or_else(|| ApiError::invalid("phone_number_id", "is not a channel id (`pn_…`)"))?;
    let channel = templates::channel(client, &tenant.user_id, &id)
        .await?
        .ok_or_else(|| ApiError::invalid("phone_number_id", "names no channel of yours"))?;
    if channel.platform != Platform::WhatsApp {
        return Err(ApiError::invalid(
            "phone_number_id",
            format!(
                "is a {} channel: only WhatsApp channels have templates",
                channel.platform
            ),
        ));
    }
    Ok(channel)
}

/// A database error of a template write: the name taken in this language is a 422 naming
/// `name`.
fn write_error(error: DbError) -> ApiError {
    match &error {
        DbError::UniqueViolation { constraint }
            if constraint == "templates_phone_number_name_language_key" =>
        {
            ApiError::Validation(vec![FieldError::new(
                "name",
                "is already used by another template of this channel in this language",
            )])
        }
        _ => error.into(),
    }
}

/// The channel's token, opened; `None` when it cannot be.
pub(crate) fn channel_token(state: &TemplatesState, sealed: Option<&str>) -> Option<SecretString> {
    sealed
        .and_then(|s| {
            state
                .api
                .sealing_key
                .open(SecretKind::ChannelAccessToken, s)
                .ok()
        })
        .map(SecretString::from)
}

/// Authors a template (status `DRAFT`).
#[utoipa::path(
    post, path = "/templates", tag = "templates",
    request_body = CreateTemplate,
    responses(
        BearerErrors, JsonBodyErrors,
        (status = 201, body = TemplateResponse),
    ),
)]
pub async fn create_template(
    State(state): State<TemplatesState>,
    tenant: Tenant,
    Json(body): Json<CreateTemplate>,
) -> Result<(StatusCode, axum::Json<TemplateResponse>), ApiError> {
    let draft = TemplateDraft {
        name: body.name,
        category: body.category,
        language: body.language,
        parameter_format: body.parameter_format.unwrap_or(ParameterFormat::Positional),
        content: TemplateContent {
            header: body.header.unwrap_or_default(),
            body: body.body,
            footer: body.footer,
            variables: body.variables,
            buttons: body.buttons,
        },
    };
    let mut errors = validate(&draft);
    let mut client = state.api.pool.get().await?;
    let channel = match whatsapp_channel(&client, &tenant, &body.phone_number_id).await {
        Ok(channel) => Some(channel),
        Err(ApiError::Validation(mut found)) => {
            errors.extend(found.drain(..).map(|f| shared::templates::Violation {
                field: f.field,
                message: f.message,
            }));
            None
        }
        Err(other) => return Err(other),
    };
    let (Some(channel), true) = (channel, errors.is_empty()) else {
        return Err(violations(errors));
    };
    let tx = client.transaction().await?;
    let template = templates::insert(&tx, &tenant.user_id, &channel, &draft)
        .await
        .map_err(write_error)?;
    tx.commit().await?;
    tracing::info!(template.id = %template.template_id, channel.id = %channel.id, "template authored");
    Ok((StatusCode::CREATED, axum::Json(template.into())))
}

/// The tenant's templates, newest first.
#[utoipa::path(
    get, path = "/templates", tag = "templates",
    params(ListTemplates),
    responses(
        BearerErrors, ListErrors,
        (status = 200, body = Page<TemplateResponse>),
    ),
)]
pub async fn list_templates(
    State(state): State<TemplatesState>,
    tenant: Tenant,
    Query(query): Query<ListTemplates>,
) -> Result<axum::Json<Page<TemplateResponse>>, ApiError> {
    let phone_number_id = query
        .phone_number_id
        .as_deref()
        .map(|raw| {
            PhoneNumberId::parse(raw)
                .ok_or_else(|| ApiError::invalid("phone_number_id", "is not a channel id (`pn_…`)"))
        })
        .transpose()?;
    let cursors = Cursors::new(&state.api.sealing_key, "templates");
    let (page, limit) = PageParams {
        limit: query.limit,
        cursor: query.cursor.as_deref(),
    }
    .into_request(&cursors)?;
    let filter = TemplateFilter {
        status: query.status,
        phone_number_id,
        category: query.category,
    };
    let client = state.api.pool.get().await?;
    let rows = templates::list(&client, &tenant.user_id, &filter, &page).await?;
    Ok(axum::Json(Page::from_rows(
        rows,
        limit,
        &cursors,
        |t| t.template_id.to_string(),
        Into::into,
    )))
}

/// One template.
#[utoipa::path(
    get, path = "/templates/{id}", tag = "templates",
    params(("id" = String, Path, description = "`tpl_…`")),
    responses(
        BearerErrors, PathErrors,
        (status = 200, body = TemplateResponse),
    ),
)]
pub async fn get_template(
    State(state): State<TemplatesState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<axum::Json<TemplateResponse>, ApiError> {
    let id = template_id(&id)?;
    let client = state.api.pool.get().await?;
    let template = templates::get(&client, &tenant.user_id, &id)
        .await?
        .ok_or_else(template_not_found)?;
    Ok(axum::Json(template.into()))
}

/// Edits a `DRAFT` or `REJECTED` template (it becomes `DRAFT`). Meta's edit rules differ for
/// the other statuses, so they answer 409.
#[utoipa::path(
    patch, path = "/templates/{id}", tag = "templates",
    params(("id" = String, Path, description = "`tpl_…`")),
    request_body = PatchTemplate,
    responses(
        BearerErrors, JsonBodyErrors, PathErrors,
        (status = 200, body = TemplateResponse),
        (status = 409, description = "The template is submitted (PENDING, APPROVED, PAUSED or DISABLED)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn patch_template(
    State(state): State<TemplatesState>,
    tenant: Tenant,
    Path(id): Path<String>,
    Json(body): Json<PatchTemplate>,
) -> Result<axum::Json<TemplateResponse>, ApiError> {
    let id = template_id(&id)?;
    let mut client = state.api.pool.get().await?;
    let tx = client.transaction().await?;
    let current = templates::lock(&tx, &tenant.user_id, &id)
        .await?
        .ok_or_else(template_not_found)?;
    if !matches!(
        current.status,
        TemplateStatus::Draft | TemplateStatus::Rejected
    ) {
        return Err(ApiError::Conflict(format!(
            "the template is {}: only DRAFT and REJECTED templates can be edited here (Meta \
             allows edits of approved templates only once a day and of paused or disabled ones \
             not at all); author a new template instead",
            current.status
        )));
    }
    let mut draft = current.draft;
    if let Some(name) = body.name {
        draft.name = name;
    }
    if let Some(category) = body.category {
        draft.category = category;
    }
    if let Some(language) = body.language {
        draft.language = language;
    }
    if let Some(format) = body.parameter_format {
        draft.parameter_format = format;
    }
    if let Some(header) = body.header {
        draft.content.header = header;
    }
    if let Some(text) = body.body {
        draft.content.body = text;
    }
    if let Some(footer) = body.footer {
        draft.content.footer = Some(footer);
    }
    if let Some(variables) = body.variables {
        draft.content.variables = variables;
    }
    if let Some(buttons) = body.buttons {
        draft.content.buttons = buttons;
    }
    let errors = validate(&draft);
    if !errors.is_empty() {
        return Err(violations(errors));
    }
    let template = templates::replace(&tx, &tenant.user_id, &id, &draft)
        .await
        .map_err(write_error)?
        .ok_or_else(template_not_found)?;
    tx.commit().await?;
    tracing::info!(template.id = %id, "template edited");
    Ok(axum::Json(template.into()))
}

/// Deletes a template, at Meta too when it was submitted. Refused while a campaign that is
/// not finished uses it. A template with sends or campaigns is kept for their history, as
/// `DISABLED` with Meta's status `DELETED`.
#[utoipa::path(
    delete, path = "/templates/{id}", tag = "templates",
    params(("id" = String, Path, description = "`tpl_…`")),
    responses(
        BearerErrors, PathErrors,
        (status = 204, description = "Deleted (or retired, when sends name it)"),
        (status = 409, description = "A campaign that is not finished uses it", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Meta refused the deletion", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn delete_template(
    State(state): State<TemplatesState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = template_id(&id)?;
    let mut client = state.api.pool.get().await?;
    let tx = client.transaction().await?;
    let template = templates::lock(&tx, &tenant.user_id, &id)
        .await?
        .ok_or_else(template_not_found)?;
    let campaigns = templates::unfinished_campaigns(&tx, &id).await?;
    if campaigns > 0 {
        return Err(ApiError::Conflict(format!(
            "{campaigns} campaign(s) that are not finished use this template; finish or cancel \
             them first"
        )));
    }
    if let (Some(meta_id), Some(waba_id)) = (&template.meta_template_id, &template.waba_id) {
        let channel = templates::channel(&tx, &tenant.user_id, &template.phone_number_id)
            .await?
            .ok_or_else(template_not_found)?;
        let token =
            channel_token(&state, channel.sealed_access_token.as_deref()).ok_or_else(|| {
                ApiError::Conflict("the channel's access token cannot be opened".to_owned())
            })?;
        if let Err(error) = state
            .graph
            .delete_template(waba_id, &token, &template.draft.name, Some(meta_id))
            .await
        {
            // Already gone at Meta (deleted in WhatsApp Manager): delete here too.
            let gone =
                error.code == Some(100) && error.status == Some(400) || error.status == Some(404);
            if !gone {
                tracing::warn!(meta.code = error.code, "Meta refused the template deletion");
                return Err(ApiError::BadGateway(format!(
                    "Meta refused the deletion: {}",
                    error.message
                )));
            }
        }
    }
    let outcome = templates::delete(&tx, &id).await?;
    tx.commit().await?;
    tracing::info!(template.id = %id, retired = outcome == Deleted::Retired, "template deleted");
    Ok(StatusCode::NO_CONTENT)
}
