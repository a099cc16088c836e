//! `GET /templates/{id}/stats`.

use axum::extract::{Path, State};
use shared::api::{
    ApiError, Tenant,
    openapi::responses::{BearerErrors, PathErrors},
};

use crate::{TemplatesState, response::template_id};

/// A template's sends and clicks.
#[utoipa::path(
    get, path = "/templates/{id}/stats", tag = "templates",
    params(("id" = String, Path, description = "`tpl_…`")),
    responses(BearerErrors, PathErrors),
)]
pub async fn template_stats(
    State(_state): State<TemplatesState>,
    _tenant: Tenant,
    Path(id): Path<String>,
) -> Result<(), ApiError> {
    let _ = template_id(&id)?;
    Err(ApiError::Conflict("not yet".to_owned()))
}
