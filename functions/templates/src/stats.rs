//! `GET /templates/{id}/stats`: sends by status, delivery and read rates, clicks per button,
//! over an optional date range.

use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::{
    api::{
        ApiError, Query, Tenant,
        openapi::responses::{BearerErrors, PathErrors, QueryErrors},
    },
    db::templates::{self, UNKNOWN_BUTTON},
    domain::TemplateSendStatus,
};
use utoipa::{IntoParams, ToSchema};

use crate::{
    TemplatesState,
    response::{template_id, template_not_found},
};

/// The range of the stats: sends created and clicks made in `[from, to)`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsRange {
    /// ISO-8601 with an offset (`2026-05-01T00:00:00Z`).
    from: Option<DateTime<Utc>>,
    /// ISO-8601 with an offset; exclusive.
    to: Option<DateTime<Utc>>,
}

/// Sends by status.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct SendCounts {
    total: i64,
    pending: i64,
    sent: i64,
    delivered: i64,
    read: i64,
    failed: i64,
}

/// A button's clicks.
#[derive(Debug, Serialize, ToSchema)]
pub struct ButtonClicks {
    /// `tbtn_…`, or `unknown` for clicks whose payload named no button.
    button_id: String,
    button_text: Option<String>,
    button_index: Option<i32>,
    total_clicks: i64,
    /// Distinct customers.
    unique_clicks: i64,
}

/// A template's stats.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateStatsResponse {
    template_id: String,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    sends: SendCounts,
    /// Delivered (or read) among the sends Meta accepted (sent, delivered, read); `null`
    /// without any.
    delivery_rate: Option<f64>,
    /// Read among the sends Meta accepted; `null` without any.
    read_rate: Option<f64>,
    buttons: Vec<ButtonClicks>,
}

/// A template's sends and clicks.
#[utoipa::path(
    get, path = "/templates/{id}/stats", tag = "templates",
    params(("id" = String, Path, description = "`tpl_…`"), StatsRange),
    responses(
        BearerErrors, PathErrors, QueryErrors,
        (status = 200, body = TemplateStatsResponse),
    ),
)]
pub async fn template_stats(
    State(state): State<TemplatesState>,
    tenant: Tenant,
    Path(id): Path<String>,
    Query(range): Query<StatsRange>,
) -> Result<axum::Json<TemplateStatsResponse>, ApiError> {
    let id = template_id(&id)?;
    if let (Some(from), Some(to)) = (range.from, range.to) {
        if from >= to {
            return Err(ApiError::invalid("to", "must be after `from`"));
        }
    }
    let client = state.api.pool.get().await?;
    let template = templates::get(&client, &tenant.user_id, &id)
        .await?
        .ok_or_else(template_not_found)?;
    let stats = templates::stats(&client, &id, range.from, range.to).await?;
    let mut sends = SendCounts::default();
    for (status, n) in stats.sends {
        sends.total += n;
        match status {
            TemplateSendStatus::Pending => sends.pending += n,
            TemplateSendStatus::Sent => sends.sent += n,
            TemplateSendStatus::Delivered => sends.delivered += n,
            TemplateSendStatus::Read => sends.read += n,
            TemplateSendStatus::Failed => sends.failed += n,
        }
    }
    let accepted = sends.sent + sends.delivered + sends.read;
    let rate = |n: i64| {
        (accepted > 0).then(|| {
            let value = n as f64 / accepted as f64;
            (value * 10_000.0).round() / 10_000.0
        })
    };
    let mut buttons: Vec<ButtonClicks> = template
        .draft
        .content
        .buttons
        .iter()
        .zip(&template.buttons)
        .map(|(button, stored)| {
            let (total, unique) = stats
                .clicks
                .iter()
                .find(|(id, _, _)| id == stored.button_id.as_str())
                .map_or((0, 0), |(_, t, u)| (*t, *u));
            ButtonClicks {
                button_id: stored.button_id.to_string(),
                button_text: Some(button.button_text.clone()),
                button_index: Some(stored.button_index),
                total_clicks: total,
                unique_clicks: unique,
            }
        })
        .collect();
    if let Some((_, total, unique)) = stats.clicks.iter().find(|(id, _, _)| id == UNKNOWN_BUTTON) {
        buttons.push(ButtonClicks {
            button_id: UNKNOWN_BUTTON.to_owned(),
            button_text: None,
            button_index: None,
            total_clicks: *total,
            unique_clicks: *unique,
        });
    }
    Ok(axum::Json(TemplateStatsResponse {
        template_id: id.to_string(),
        from: range.from,
        to: range.to,
        delivery_rate: rate(sends.delivered + sends.read),
        read_rate: rate(sends.read),
        sends,
        buttons,
    }))
}
