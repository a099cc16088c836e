//! What the API shows of a template.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use shared::{
    api::ApiError,
    db::templates::Template,
    domain::{ButtonType, ParameterFormat, TemplateCategory, TemplateId, TemplateStatus},
    templates::{Button, Header, TextPart, Variable},
};
use utoipa::ToSchema;

/// A template with its variables, buttons, Meta's state and the last refusal.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateResponse {
    /// `tpl_…`
    template_id: String,
    /// The WhatsApp channel (`pn_…`).
    phone_number_id: String,
    name: String,
    category: TemplateCategory,
    /// Meta's language code (`en_US`).
    language: String,
    parameter_format: ParameterFormat,
    status: TemplateStatus,
    header: Header,
    body: TextPart,
    footer: Option<TextPart>,
    variables: Vec<Variable>,
    buttons: Vec<ButtonResponse>,
    /// The WhatsApp Business Account it was submitted to.
    waba_id: Option<String>,
    /// Meta's template id once submitted.
    meta_template_id: Option<String>,
    /// Meta's last event as Meta named it (`APPROVED`, `FLAGGED`, `IN_APPEAL`, …).
    meta_status: Option<String>,
    /// What Meta sent with that event (`reason`, `rejection_info`, `other_info`, …).
    #[schema(value_type = Object)]
    meta_status_details: Value,
    /// Why Meta rejected it, or why the last submission was refused.
    rejection_reason: Option<String>,
    /// Meta's error of the last refused submission: `{code, error_subcode, message}`.
    #[schema(value_type = Option<Object>)]
    submission_error: Option<Value>,
    /// GREEN, YELLOW, RED or UNKNOWN.
    quality_score: Option<String>,
    /// Meta's last category notice or change, as sent.
    #[schema(value_type = Option<Object>)]
    category_update: Option<Value>,
    submitted_at: Option<DateTime<Utc>>,
    approved_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A button with its id, index and click counters (its authored fields written out: the
/// authored `Button` refuses unknown fields, so it cannot be flattened into a response).
#[derive(Debug, Serialize, ToSchema)]
pub struct ButtonResponse {
    /// `tbtn_…`
    button_id: String,
    button_index: i32,
    button_type: ButtonType,
    button_text: String,
    button_url: Option<String>,
    button_url_suffix_variable: Option<i32>,
    button_phone: Option<String>,
    copy_code_example: Option<String>,
    /// The QUICK_REPLY payload: this, or `<template_id>.b<index>` when not set.
    tracking_id: Option<String>,
    total_clicks: i32,
    /// Clicks by distinct customers.
    unique_clicks: i32,
}

impl From<Template> for TemplateResponse {
    fn from(t: Template) -> Self {
        let content = t.draft.content;
        let buttons = content
            .buttons
            .into_iter()
            .zip(t.buttons)
            .map(|(button, stored): (Button, _)| ButtonResponse {
                button_id: stored.button_id.into(),
                button_index: stored.button_index,
                button_type: button.button_type,
                button_text: button.button_text,
                button_url: button.button_url,
                button_url_suffix_variable: button.button_url_suffix_variable,
                button_phone: button.button_phone,
                copy_code_example: button.copy_code_example,
                tracking_id: button.tracking_id,
                total_clicks: stored.total_clicks,
                unique_clicks: stored.unique_clicks,
            })
            .collect();
        Self {
            template_id: t.template_id.into(),
            phone_number_id: t.phone_number_id.into(),
            name: t.draft.name,
            category: t.draft.category,
            language: t.draft.language,
            parameter_format: t.draft.parameter_format,
            status: t.status,
            header: content.header,
            body: content.body,
            footer: content.footer,
            variables: content.variables,
            buttons,
            waba_id: t.waba_id,
            meta_template_id: t.meta_template_id,
            meta_status: t.meta_status,
            meta_status_details: t.meta_status_details,
            rejection_reason: t.rejection_reason,
            submission_error: t.submission_error,
            quality_score: t.quality_score,
            category_update: t.category_update,
            submitted_at: t.submitted_at,
            approved_at: t.approved_at,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// A template id from a path; a malformed one is simply not found.
pub fn template_id(raw: &str) -> Result<TemplateId, ApiError> {
    TemplateId::parse(raw).ok_or_else(template_not_found)
}

/// The answer for another tenant's or a missing template.
pub fn template_not_found() -> ApiError {
    ApiError::NotFound("no such template".to_owned())
}

/// Validation violations as a 422.
pub fn violations(errors: Vec<shared::templates::Violation>) -> ApiError {
    ApiError::Validation(
        errors
            .into_iter()
            .map(|v| shared::api::FieldError::new(v.field, v.message))
            .collect(),
    )
}
