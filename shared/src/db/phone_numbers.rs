//! `phone_numbers`: a tenant's channels. The provider token is stored sealed and never read
//! back by these queries; callers see only whether one is set.

use chrono::{DateTime, Utc};

use super::{DbError, GenericClient, PageRequest, Transaction, enum_column, optional_enum_column};
use crate::domain::{
    AgentId, AllowedOrigins, DailyReplyCap, DisplayName, InstagramApi, MetaChannelId,
    PhoneNumberId, Platform, UserId, WabaId, WidgetColor, WidgetGreeting, WidgetTitle,
};

/// A webchat channel's settings (`phone_numbers.webchat_*`); a NULL column reads as the
/// default: no allowed origin, [`DailyReplyCap::DEFAULT`], the widget's own look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebchatSettings {
    pub allowed_origins: AllowedOrigins,
    pub daily_reply_cap: DailyReplyCap,
    pub appearance: WidgetAppearance,
}

impl Default for WebchatSettings {
    fn default() -> Self {
        Self {
            allowed_origins: AllowedOrigins::default(),
            daily_reply_cap: DailyReplyCap::DEFAULT,
            appearance: WidgetAppearance::default(),
        }
    }
}

/// How a webchat widget looks (`phone_numbers.webchat_title`, `_greeting`, `_color`); each
/// unset one is the widget's default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WidgetAppearance {
    pub title: Option<WidgetTitle>,
    pub greeting: Option<WidgetGreeting>,
    pub color: Option<WidgetColor>,
}

impl WidgetAppearance {
    /// Reads the three columns of a row.
    pub(crate) fn from_row(row: &tokio_postgres::Row) -> Result<Self, DbError> {
        Ok(Self {
            title: row
                .try_get::<_, Option<String>>("webchat_title")?
                .map(WidgetTitle::from_trusted),
            greeting: row
                .try_get::<_, Option<String>>("webchat_greeting")?
                .map(WidgetGreeting::from_trusted),
            color: row
                .try_get::<_, Option<String>>("webchat_color")?
                .map(WidgetColor::from_trusted),
        })
    }
}

/// A change to a widget's look: `None` leaves a field, `Some(None)` clears it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppearancePatch {
    pub title: Option<Option<WidgetTitle>>,
    pub greeting: Option<Option<WidgetGreeting>>,
    pub color: Option<Option<WidgetColor>>,
}

/// A channel as the API shows it.
#[derive(Debug, Clone)]
pub struct Channel {
    pub id: PhoneNumberId,
    pub platform: Platform,
    pub meta_phone_number_id: String,
    pub has_access_token: bool,
    pub display_name: Option<String>,
    pub waba_id: Option<String>,
    /// Instagram only: how the account was connected (decides the send host).
    pub instagram_api: Option<InstagramApi>,
    /// Webchat only: the widget's settings.
    pub webchat: Option<WebchatSettings>,
    /// The agent linked to this channel, if any.
    pub agent_id: Option<AgentId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A validated channel to create; the token is already sealed.
#[derive(Debug, Clone)]
pub struct NewChannel {
    pub platform: Platform,
    pub meta_phone_number_id: MetaChannelId,
    pub sealed_access_token: Option<String>,
    pub display_name: Option<DisplayName>,
    pub waba_id: Option<WabaId>,
    pub instagram_api: Option<InstagramApi>,
    /// Webchat only (and required there).
    pub webchat: Option<WebchatSettings>,
}

/// A validated partial update. `None` leaves a field as it is; `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct ChannelPatch {
    pub display_name: Option<Option<DisplayName>>,
    pub sealed_access_token: Option<String>,
    pub waba_id: Option<Option<WabaId>>,
    /// Webchat only.
    pub allowed_origins: Option<AllowedOrigins>,
    /// Webchat only.
    pub daily_reply_cap: Option<DailyReplyCap>,
    /// Webchat only.
    pub appearance: AppearancePatch,
    /// Apply only while the channel still has these credentials: the ones the new token or
    /// WABA was verified against with Meta (a concurrent change makes the update miss).
    pub only_if_unchanged: Option<Credentials>,
}

/// What a channel proves its ownership with: its sealed token and its WABA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub sealed_access_token: Option<String>,
    pub waba_id: Option<String>,
}

/// The sealed token and WABA of one of the tenant's channels.
pub async fn credentials(
    client: &impl GenericClient,
    user: &UserId,
    id: &PhoneNumberId,
) -> Result<Option<Credentials>, DbError> {
    client
        .query_opt(
            "SELECT access_token, waba_id FROM phone_numbers WHERE id = $1 AND user_id = $2",
            &[&id.as_str(), &user.as_str()],
        )
        .await?
        .map(|row| {
            Ok(Credentials {
                sealed_access_token: row.try_get("access_token")?,
                waba_id: row.try_get("waba_id")?,
            })
        })
        .transpose()
}

/// What still uses a channel, which forbids deleting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelUsage {
    pub agents: i64,
    pub templates: i64,
    pub campaigns: i64,
}

impl ChannelUsage {
    /// Whether anything uses the channel.
    pub fn is_used(&self) -> bool {
        self.agents + self.templates + self.campaigns > 0
    }
}

/// The outcome of a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    NotFound,
    InUse(ChannelUsage),
}

const CHANNEL_COLUMNS: &str = "p.id, p.platform, p.meta_phone_number_id,
    p.access_token IS NOT NULL AS has_access_token, p.display_name, p.waba_id, p.instagram_api,
    p.webchat_allowed_origins, p.webchat_daily_reply_cap, p.webchat_title, p.webchat_greeting,
    p.webchat_color, p.created_at, p.updated_at, a.agent_id";

/// Creates a channel.
pub async fn insert(
    client: &impl GenericClient,
    user: &UserId,
    new: &NewChannel,
) -> Result<Channel, DbError> {
    let id = PhoneNumberId::generate();
    let row = client
        .query_one(
            &format!(
                "WITH p AS (
                     INSERT INTO phone_numbers
                         (id, user_id, platform, meta_phone_number_id, access_token, display_name, waba_id, instagram_api,
                          webchat_allowed_origins, webchat_daily_reply_cap, webchat_title,
                          webchat_greeting, webchat_color)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                     RETURNING *
                 )
                 SELECT {CHANNEL_COLUMNS} FROM p LEFT JOIN agents a ON a.phone_number_id = p.id"
            ),
            &[
                &id.as_str(),
                &user.as_str(),
                &new.platform.as_str(),
                &new.meta_phone_number_id.as_str(),
                &new.sealed_access_token,
                &new.display_name.as_ref().map(DisplayName::as_str),
                &new.waba_id.as_ref().map(WabaId::as_str),
                &new.instagram_api.map(InstagramApi::as_str),
                &new
                    .webchat
                    .as_ref()
                    .map(|w| w.allowed_origins.as_slice().to_vec()),
                &new.webchat.as_ref().map(|w| w.daily_reply_cap.get()),
                &new
                    .webchat
                    .as_ref()
                    .and_then(|w| w.appearance.title.as_ref())
                    .map(WidgetTitle::as_str),
                &new
                    .webchat
                    .as_ref()
                    .and_then(|w| w.appearance.greeting.as_ref())
                    .map(WidgetGreeting::as_str),
                &new
                    .webchat
                    .as_ref()
                    .and_then(|w| w.appearance.color.as_ref())
                    .map(WidgetColor::as_str),
            ],
        )
        .await?;
    channel_from_row(&row)
}

/// One of the tenant's channels.
pub async fn get(
    client: &impl GenericClient,
    user: &UserId,
    id: &PhoneNumberId,
) -> Result<Option<Channel>, DbError> {
    client
        .query_opt(
            &format!(
                "SELECT {CHANNEL_COLUMNS}
                 FROM phone_numbers p LEFT JOIN agents a ON a.phone_number_id = p.id
                 WHERE p.id = $1 AND p.user_id = $2"
            ),
            &[&id.as_str(), &user.as_str()],
        )
        .await?
        .map(|row| channel_from_row(&row))
        .transpose()
}

/// The tenant's channels, newest first, optionally of one platform.
pub async fn list(
    client: &impl GenericClient,
    user: &UserId,
    platform: Option<Platform>,
    page: &PageRequest,
) -> Result<Vec<Channel>, DbError> {
    let rows = client
        .query(
            &format!(
                "SELECT {CHANNEL_COLUMNS}
                 FROM phone_numbers p LEFT JOIN agents a ON a.phone_number_id = p.id
                 WHERE p.user_id = $1
                   AND ($2::text IS NULL OR p.platform = $2)
                   AND ($3::text IS NULL OR p.id < $3)
                 ORDER BY p.id DESC
                 LIMIT $4"
            ),
            &[
                &user.as_str(),
                &platform.map(Platform::as_str),
                &page.before,
                &page.fetch,
            ],
        )
        .await?;
    rows.iter().map(channel_from_row).collect()
}

/// Applies a partial update; `None` when the tenant has no such channel, or when
/// `only_if_unchanged` no longer matches it.
pub async fn update(
    client: &impl GenericClient,
    user: &UserId,
    id: &PhoneNumberId,
    patch: &ChannelPatch,
) -> Result<Option<Channel>, DbError> {
    let row = client
        .query_opt(
            &format!(
                "WITH p AS (
                     UPDATE phone_numbers SET
                         display_name = CASE WHEN $3 THEN $4 ELSE display_name END,
                         access_token = COALESCE($5, access_token),
                         waba_id = CASE WHEN $6 THEN $7 ELSE waba_id END,
                         webchat_allowed_origins = COALESCE($11, webchat_allowed_origins),
                         webchat_daily_reply_cap = COALESCE($12, webchat_daily_reply_cap),
                         webchat_title = CASE WHEN $13 THEN $14 ELSE webchat_title END,
                         webchat_greeting = CASE WHEN $15 THEN $16 ELSE webchat_greeting END,
                         webchat_color = CASE WHEN $17 THEN $18 ELSE webchat_color END
                     WHERE id = $1 AND user_id = $2
                       AND (NOT $8 OR (access_token IS NOT DISTINCT FROM $9
                                       AND waba_id IS NOT DISTINCT FROM $10))
                     RETURNING *
                 )
                 SELECT {CHANNEL_COLUMNS} FROM p LEFT JOIN agents a ON a.phone_number_id = p.id"
            ),
            &[
                &id.as_str(),
                &user.as_str(),
                &patch.display_name.is_some(),
                &patch
                    .display_name
                    .clone()
                    .flatten()
                    .as_ref()
                    .map(DisplayName::as_str),
                &patch.sealed_access_token,
                &patch.waba_id.is_some(),
                &patch.waba_id.clone().flatten().as_ref().map(WabaId::as_str),
                &patch.only_if_unchanged.is_some(),
                &patch
                    .only_if_unchanged
                    .as_ref()
                    .and_then(|c| c.sealed_access_token.as_deref()),
                &patch
                    .only_if_unchanged
                    .as_ref()
                    .and_then(|c| c.waba_id.as_deref()),
                &patch
                    .allowed_origins
                    .as_ref()
                    .map(|o| o.as_slice().to_vec()),
                &patch.daily_reply_cap.map(DailyReplyCap::get),
                &patch.appearance.title.is_some(),
                &patch
                    .appearance
                    .title
                    .clone()
                    .flatten()
                    .as_ref()
                    .map(WidgetTitle::as_str),
                &patch.appearance.greeting.is_some(),
                &patch
                    .appearance
                    .greeting
                    .clone()
                    .flatten()
                    .as_ref()
                    .map(WidgetGreeting::as_str),
                &patch.appearance.color.is_some(),
                &patch
                    .appearance
                    .color
                    .clone()
                    .flatten()
                    .as_ref()
                    .map(WidgetColor::as_str),
            ],
        )
        .await?;
    row.map(|row| channel_from_row(&row)).transpose()
}

/// Deletes a channel nothing uses. The row is locked first, so an agent being linked at
/// the same moment either finishes first (and the delete answers `InUse`) or waits.
pub async fn delete(
    tx: &Transaction<'_>,
    user: &UserId,
    id: &PhoneNumberId,
) -> Result<DeleteOutcome, DbError> {
    let locked = tx
        .query_opt(
            "SELECT 1 FROM phone_numbers WHERE id = $1 AND user_id = $2 FOR UPDATE",
            &[&id.as_str(), &user.as_str()],
        )
        .await?;
    if locked.is_none() {
        return Ok(DeleteOutcome::NotFound);
    }
    let row = tx
        .query_one(
            "SELECT (SELECT count(*) FROM agents WHERE phone_number_id = $1) AS agents,
                    (SELECT count(*) FROM templates WHERE phone_number_id = $1) AS templates,
                    (SELECT count(*) FROM campaigns WHERE phone_number_id = $1) AS campaigns",
            &[&id.as_str()],
        )
        .await?;
    let usage = ChannelUsage {
        agents: row.try_get("agents")?,
        templates: row.try_get("templates")?,
        campaigns: row.try_get("campaigns")?,
    };
    if usage.is_used() {
        return Ok(DeleteOutcome::InUse(usage));
    }
    tx.execute(
        "DELETE FROM phone_numbers WHERE id = $1 AND user_id = $2",
        &[&id.as_str(), &user.as_str()],
    )
    .await?;
    Ok(DeleteOutcome::Deleted)
}

fn channel_from_row(row: &tokio_postgres::Row) -> Result<Channel, DbError> {
    let platform: Platform = enum_column(row, "platform")?;
    let webchat = (platform == Platform::Webchat)
        .then(|| -> Result<WebchatSettings, DbError> {
            Ok(WebchatSettings {
                allowed_origins: AllowedOrigins::from_trusted(
                    row.try_get::<_, Option<Vec<String>>>("webchat_allowed_origins")?
                        .unwrap_or_default(),
                ),
                daily_reply_cap: row
                    .try_get::<_, Option<i32>>("webchat_daily_reply_cap")?
                    .map_or(DailyReplyCap::DEFAULT, DailyReplyCap::from_trusted),
                appearance: WidgetAppearance::from_row(row)?,
            })
        })
        .transpose()?;
    Ok(Channel {
        id: PhoneNumberId::from_trusted(row.try_get("id")?),
        platform,
        webchat,
        meta_phone_number_id: row.try_get("meta_phone_number_id")?,
        has_access_token: row.try_get("has_access_token")?,
        display_name: row.try_get("display_name")?,
        waba_id: row.try_get("waba_id")?,
        instagram_api: optional_enum_column(row, "instagram_api")?,
        agent_id: row
            .try_get::<_, Option<String>>("agent_id")?
            .map(AgentId::from_trusted),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
