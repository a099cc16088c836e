//! `POST /templates/{id}/send`: one template message to one customer.

use axum::extract::{Path, State};
use shared::api::{
    ApiError, Tenant,
    openapi::responses::{BearerErrors, PathErrors},
};

use crate::{TemplatesState, response::template_id};

/// Sends an approved template to one number.
#[utoipa::path(
    post, path = "/templates/{id}/send", tag = "templates",
    params(("id" = String, Path, description = "`tpl_…`")),
    responses(BearerErrors, PathErrors),
)]
pub async fn send_template(
    State(_state): State<TemplatesState>,
    _tenant: Tenant,
    Path(id): Path<String>,
) -> Result<(), ApiError> {
    let _ = template_id(&id)?;
    Err(ApiError::Conflict("not yet".to_owned()))
}
