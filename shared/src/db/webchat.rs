//! The website chat's widgets (webchat channels, found by their public widget key) and
//! visitor sessions (`webchat_sessions`). Like webhook routing, these queries are not scoped
//! by a tenant from a token: the tenant is the owner of the widget the key names.

use chrono::{DateTime, Utc};

use super::{
    DbError, GenericClient, inbound::ChannelRoute, phone_numbers::WidgetAppearance, user_column,
};
use crate::domain::{
    AllowedOrigins, DailyReplyCap, PhoneNumberId, Platform, VisitorId, VisitorToken,
};

/// A webchat channel with its settings.
#[derive(Debug, Clone)]
pub struct Widget {
    pub route: ChannelRoute,
    /// The public key (`phone_numbers.meta_phone_number_id`).
    pub widget_key: String,
    /// Origins whose pages may call the widget's routes (CORS).
    pub allowed_origins: AllowedOrigins,
    /// AI replies the tenant's webchat may cause per UTC day.
    pub daily_reply_cap: DailyReplyCap,
}

/// A visitor whose token matched, on the widget it was issued for.
#[derive(Debug, Clone)]
pub struct VisitorSession {
    pub visitor_id: VisitorId,
    pub widget: Widget,
}

const WIDGET_COLUMNS: &str =
    "p.id, p.user_id, p.meta_phone_number_id, p.webchat_allowed_origins, p.webchat_daily_reply_cap";

fn widget_from_row(row: &tokio_postgres::Row) -> Result<Widget, DbError> {
    Ok(Widget {
        route: ChannelRoute {
            phone_number_id: PhoneNumberId::from_trusted(row.try_get("id")?),
            user_id: user_column(row, "user_id")?,
            platform: Platform::Webchat,
        },
        widget_key: row.try_get("meta_phone_number_id")?,
        allowed_origins: AllowedOrigins::from_trusted(
            row.try_get::<_, Option<Vec<String>>>("webchat_allowed_origins")?
                .unwrap_or_default(),
        ),
        daily_reply_cap: row
            .try_get::<_, Option<i32>>("webchat_daily_reply_cap")?
            .map_or(DailyReplyCap::DEFAULT, DailyReplyCap::from_trusted),
    })
}

/// The webchat channel a widget key names.
pub async fn widget(
    client: &impl GenericClient,
    widget_key: &str,
) -> Result<Option<Widget>, DbError> {
    client
        .query_opt(
            &format!(
                "SELECT {WIDGET_COLUMNS} FROM phone_numbers p
                 WHERE p.platform = 'webchat' AND p.meta_phone_number_id = $1"
            ),
            &[&widget_key],
        )
        .await?
        .map(|row| widget_from_row(&row))
        .transpose()
}

/// What a widget shows before any message: its look, the channel's display name and the
/// linked agent's name.
#[derive(Debug, Clone)]
pub struct WidgetConfig {
    pub widget: Widget,
    pub appearance: WidgetAppearance,
    pub display_name: Option<String>,
    /// The name of the agent linked to the channel, if one is.
    pub agent_name: Option<String>,
}

/// The webchat channel a widget key names, with what the widget shows.
pub async fn widget_config(
    client: &impl GenericClient,
    widget_key: &str,
) -> Result<Option<WidgetConfig>, DbError> {
    client
        .query_opt(
            &format!(
                "SELECT {WIDGET_COLUMNS}, p.display_name, p.webchat_title, p.webchat_greeting,
                        p.webchat_color, a.name AS agent_name
                 FROM phone_numbers p LEFT JOIN agents a ON a.phone_number_id = p.id
                 WHERE p.platform = 'webchat' AND p.meta_phone_number_id = $1"
            ),
            &[&widget_key],
        )
        .await?
        .map(|row| {
            Ok(WidgetConfig {
                widget: widget_from_row(&row)?,
                appearance: WidgetAppearance::from_row(&row)?,
                display_name: row.try_get("display_name")?,
                agent_name: row.try_get("agent_name")?,
            })
        })
        .transpose()
}

/// Stores a new visitor session (only the token's hash) and returns when it expires.
pub async fn create_session(
    client: &impl GenericClient,
    channel: &PhoneNumberId,
    visitor: &VisitorId,
    token: &VisitorToken,
    client_ip: Option<&str>,
    ttl_secs: i64,
) -> Result<DateTime<Utc>, DbError> {
    let row = client
        .query_one(
            "INSERT INTO webchat_sessions (visitor_id, phone_number_id, token_hash, client_ip, expires_at)
             VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5::bigint::double precision))
             RETURNING expires_at",
            &[
                &visitor.as_str(),
                &channel.as_str(),
                &token.hash(),
                &client_ip,
                &ttl_secs,
            ],
        )
        .await?;
    Ok(row.try_get("expires_at")?)
}

/// The unexpired session a token opens on this widget; `None` for an unknown or expired
/// token, and for a token issued by another widget.
pub async fn session(
    client: &impl GenericClient,
    widget_key: &str,
    token: &VisitorToken,
) -> Result<Option<VisitorSession>, DbError> {
    client
        .query_opt(
            &format!(
                "SELECT s.visitor_id, {WIDGET_COLUMNS}
                 FROM webchat_sessions s JOIN phone_numbers p ON p.id = s.phone_number_id
                 WHERE s.token_hash = $1 AND s.expires_at > now()
                   AND p.platform = 'webchat' AND p.meta_phone_number_id = $2"
            ),
            &[&token.hash(), &widget_key],
        )
        .await?
        .map(|row| {
            Ok(VisitorSession {
                visitor_id: VisitorId::from_trusted(row.try_get("visitor_id")?),
                widget: widget_from_row(&row)?,
            })
        })
        .transpose()
}

/// Deletes up to `batch` sessions that expired more than a day ago, whatever their tenant
/// (housekeeping: no tenant asks for it) (a day of grace keeps
/// the row for anyone reading logs about a just-expired token).
pub async fn prune_sessions(client: &impl GenericClient, batch: i64) -> Result<u64, DbError> {
    Ok(client
        .execute(
            "DELETE FROM webchat_sessions WHERE visitor_id IN (
                 SELECT visitor_id FROM webchat_sessions WHERE expires_at < now() - interval '1 day'
                 LIMIT $1 FOR UPDATE SKIP LOCKED)",
            &[&batch],
        )
        .await?)
}
