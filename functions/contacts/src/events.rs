//! `GET /events`: the tenant's domain events, newest first, for the dashboard's activity
//! feed (campaign triggers consume the same events from the events queue).

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::{
    api::{
        ApiError, ApiState, Cursors, Page, PageParams, Query, Tenant,
        openapi::responses::{BearerErrors, ListErrors},
    },
    db::events::{self, EventFilter, StoredEvent},
    domain::{ContactId, ConversationId, TriggerEvent},
};
use utoipa::{IntoParams, ToSchema};

/// A domain event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventResponse {
    /// `evt_…`: consumers dedupe on it.
    event_id: String,
    event_type: TriggerEvent,
    /// The contact the event is about, if it is about one (`null` for an import's
    /// `TAG_ADDED`: see `contact_ids`).
    contact_id: Option<String>,
    /// The contacts an import's `TAG_ADDED` is about: 1 to 200 contacts that each gained the
    /// tag, with `contact_id` `null`. Empty for every other event.
    #[schema(max_items = 200)]
    contact_ids: Vec<String>,
    conversation_id: Option<String>,
    /// `TAG_ADDED`: `{tag}`; `NEW_EXTRACTION`: `{extraction_id, lead_status_tag,
    /// total_score}`; `LEAD_HOT`/`LEAD_WARM`: the same plus `previous_lead_status_tag`;
    /// `CONVERSATION_ENDED`: `{last_message_at}`.
    payload: Value,
    created_at: DateTime<Utc>,
    /// When it was published to the events queue; `null` until then.
    published_at: Option<DateTime<Utc>>,
}

impl From<StoredEvent> for EventResponse {
    fn from(e: StoredEvent) -> Self {
        Self {
            event_id: e.event_id.into(),
            event_type: e.event_type,
            contact_id: e.contact_id,
            contact_ids: e.contact_ids,
            conversation_id: e.conversation_id,
            payload: e.payload,
            created_at: e.created_at,
            published_at: e.published_at,
        }
    }
}

/// Filters and paging of the event feed.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListEvents {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1, max_length = 512)]
    cursor: Option<String>,
    /// Only events of this type.
    event_type: Option<TriggerEvent>,
    /// Only events about this contact (`ct_…`): its own, and an import's `TAG_ADDED` that
    /// lists it in `contact_ids`.
    #[param(pattern = "^ct_[0-7][0-9a-hjkmnp-tv-z]{25}$")]
    contact_id: Option<String>,
    /// Only events of this conversation (`conv_…`).
    #[param(pattern = "^conv_[0-7][0-9a-hjkmnp-tv-z]{25}$")]
    conversation_id: Option<String>,
}

/// The tenant's domain events, newest first.
#[utoipa::path(
    get, path = "/events", tag = "events",
    params(ListEvents),
    responses(
        BearerErrors, ListErrors,
        (status = 200, body = Page<EventResponse>),
    ),
)]
pub async fn list_events(
    State(state): State<ApiState>,
    tenant: Tenant,
    Query(query): Query<ListEvents>,
) -> Result<axum::Json<Page<EventResponse>>, ApiError> {
    let contact_id = query
        .contact_id
        .as_deref()
        .map(|raw| {
            ContactId::parse(raw)
                .ok_or_else(|| ApiError::invalid("contact_id", "is not a contact id (`ct_…`)"))
        })
        .transpose()?;
    let conversation_id = query
        .conversation_id
        .as_deref()
        .map(|raw| {
            ConversationId::parse(raw).ok_or_else(|| {
                ApiError::invalid("conversation_id", "is not a conversation id (`conv_…`)")
            })
        })
        .transpose()?;
    let cursors = Cursors::new(&state.sealing_key, "events");
    let (page, limit) = PageParams {
        limit: query.limit,
        cursor: query.cursor.as_deref(),
    }
    .into_request(&cursors)?;
    let filter = EventFilter {
        event_type: query.event_type,
        contact_id,
        conversation_id,
    };
    let client = state.pool.get().await?;
    let rows = events::list(&client, &tenant.user_id, &filter, &page).await?;
    Ok(axum::Json(Page::from_rows(
        rows,
        limit,
        &cursors,
        |e| e.event_id.to_string(),
        Into::into,
    )))
}
