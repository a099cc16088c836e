use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::api::openapi::responses::{BearerErrors, JsonBodyErrors, ListErrors, PathErrors};
use shared::{
    api::{ApiError, ApiState, FieldErrors, Json, Page, Paging, Problem, Query, Tenant},
    db::agents::{self, Agent, AgentPatch, Archive, DeleteOutcome, LinkOutcome, NewAgent},
    domain::{AgentId, AgentName, PhoneNumberId, PromptId},
};
use utoipa::{IntoParams, ToSchema};

use crate::phone_numbers::{channel_id, channel_not_found};

/// An AI agent: an OpenAI stored prompt answering on one channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentResponse {
    /// `agt_…`
    agent_id: String,
    /// The channel it answers on (`pn_…`).
    phone_number_id: String,
    /// The OpenAI stored prompt (`pmpt_…`).
    prompt_id: String,
    name: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Agent> for AgentResponse {
    fn from(agent: Agent) -> Self {
        Self {
            agent_id: agent.agent_id.into(),
            phone_number_id: agent.phone_number_id.into(),
            prompt_id: agent.prompt_id.as_str().to_owned(),
            name: agent.name,
            created_at: agent.created_at,
            updated_at: agent.updated_at,
        }
    }
}

/// The record of a relink: the old agent's conversations moved under the new agent.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArchiveResponse {
    /// `arc_…`
    archive_id: String,
    /// The replaced agent (deleted by the relink).
    old_agent_id: String,
    new_agent_id: String,
    phone_number_id: String,
    /// How many active conversations were deactivated.
    archived_conversations_count: i32,
    archived_at: DateTime<Utc>,
    reason: String,
}

impl From<Archive> for ArchiveResponse {
    fn from(archive: Archive) -> Self {
        Self {
            archive_id: archive.archive_id.into(),
            old_agent_id: archive.old_agent_id.into(),
            new_agent_id: archive.new_agent_id.into(),
            phone_number_id: archive.phone_number_id.into(),
            archived_conversations_count: archive.archived_conversations_count,
            archived_at: archive.archived_at,
            reason: archive.reason,
        }
    }
}

/// A created agent, with the archive when it replaced another one.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedAgentResponse {
    #[serde(flatten)]
    agent: AgentResponse,
    /// Set when `replace_existing` replaced an agent.
    archive: Option<ArchiveResponse>,
}

/// An agent to link to a channel.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgent {
    /// The channel (`pn_…`).
    #[schema(pattern = "^pn_[0-7][0-9a-hjkmnp-tv-z]{25}$")]
    phone_number_id: String,
    /// The OpenAI stored prompt (`pmpt_…`).
    #[schema(min_length = 6, max_length = 100, pattern = "^pmpt_[A-Za-z0-9_]+$")]
    prompt_id: String,
    /// 1 to 255 characters, no control characters (surrounding spaces are trimmed).
    #[schema(min_length = 1, max_length = 255)]
    name: String,
    /// When the channel already has an agent: replace it (its conversations are archived
    /// under the new agent) instead of answering 409.
    #[serde(default)]
    replace_existing: bool,
}

/// Changes to an agent. Absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchAgent {
    #[schema(min_length = 6, max_length = 100, pattern = "^pmpt_[A-Za-z0-9_]+$")]
    prompt_id: Option<String>,
    #[schema(min_length = 1, max_length = 255)]
    name: Option<String>,
}

/// Filters and paging for the agent list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAgents {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1, max_length = 512)]
    cursor: Option<String>,
    /// Only the agent of this channel (`pn_…`).
    #[param(pattern = "^pn_[0-7][0-9a-hjkmnp-tv-z]{25}$")]
    phone_number_id: Option<String>,
}

/// Paging for the archive list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListArchives {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1, max_length = 512)]
    cursor: Option<String>,
}

fn agent_id(raw: &str) -> Result<AgentId, ApiError> {
    AgentId::parse(raw).ok_or_else(agent_not_found)
}

fn agent_not_found() -> ApiError {
    ApiError::NotFound("no such agent".to_owned())
}

/// Links an agent to a channel, or relinks the channel with `replace_existing`.
#[utoipa::path(
    post, path = "/agents", tag = "agents",
    request_body = CreateAgent,
    responses(
        BearerErrors, JsonBodyErrors,
        (status = 201, body = CreatedAgentResponse),
        (status = 404, description = "The tenant has no such channel", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The channel already has an agent", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create_agent(
    State(state): State<ApiState>,
    tenant: Tenant,
    Json(body): Json<CreateAgent>,
) -> Result<(StatusCode, axum::Json<CreatedAgentResponse>), ApiError> {
    let mut errors = FieldErrors::default();
    let phone_number_id = errors.check(
        "phone_number_id",
        PhoneNumberId::parse(&body.phone_number_id)
            .ok_or_else(|| "is not a channel id (`pn_…`)".to_owned()),
    );
    let prompt_id = errors.check("prompt_id", PromptId::parse(&body.prompt_id));
    let name = errors.check("name", AgentName::parse(&body.name));
    let (Some(phone_number_id), Some(prompt_id), Some(name)) = (phone_number_id, prompt_id, name)
    else {
        return Err(errors.into());
    };
    let new = NewAgent {
        phone_number_id,
        prompt_id,
        name,
    };

    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    match agents::link(&tx, &tenant.user_id, &new, body.replace_existing).await? {
        LinkOutcome::Linked { agent, archive } => {
            tx.commit().await?;
            tracing::info!(
                agent.id = %agent.agent_id,
                channel.id = %agent.phone_number_id,
                replaced = archive.is_some(),
                "agent linked"
            );
            Ok((
                StatusCode::CREATED,
                axum::Json(CreatedAgentResponse {
                    agent: agent.into(),
                    archive: archive.map(Into::into),
                }),
            ))
        }
        LinkOutcome::ChannelNotFound => Err(channel_not_found()),
        LinkOutcome::ChannelTaken { agent_id } => Err(ApiError::Conflict(format!(
            "the channel already has agent {agent_id}; send \"replace_existing\": true to replace it"
        ))),
    }
}

/// The tenant's agents, newest first.
#[utoipa::path(
    get, path = "/agents", tag = "agents",
    params(ListAgents),
    responses(
        BearerErrors, ListErrors,
        (status = 200, body = Page<AgentResponse>),
    ),
)]
pub async fn list_agents(
    State(state): State<ApiState>,
    tenant: Tenant,
    Query(query): Query<ListAgents>,
) -> Result<axum::Json<Page<AgentResponse>>, ApiError> {
    let channel = query
        .phone_number_id
        .as_deref()
        .map(|raw| {
            PhoneNumberId::parse(raw)
                .ok_or_else(|| ApiError::invalid("phone_number_id", "is not a channel id (`pn_…`)"))
        })
        .transpose()?;
    let paging = Paging::new(
        &state.sealing_key,
        "agents",
        query.limit,
        query.cursor.as_deref(),
    )?;
    let client = state.pool.get().await?;
    let rows = agents::list(&client, &tenant.user_id, channel.as_ref(), paging.request()).await?;
    Ok(axum::Json(paging.page(rows, |a| a.agent_id.to_string())))
}

/// One agent.
#[utoipa::path(
    get, path = "/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "`agt_…`")),
    responses(
        BearerErrors, PathErrors,
        (status = 200, body = AgentResponse),
    ),
)]
pub async fn get_agent(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<axum::Json<AgentResponse>, ApiError> {
    let id = agent_id(&id)?;
    let client = state.pool.get().await?;
    let agent = agents::get(&client, &tenant.user_id, &id)
        .await?
        .ok_or_else(agent_not_found)?;
    Ok(axum::Json(agent.into()))
}

/// Renames an agent or points it at another stored prompt.
#[utoipa::path(
    patch, path = "/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "`agt_…`")),
    request_body = PatchAgent,
    responses(
        BearerErrors, JsonBodyErrors, PathErrors,
        (status = 200, body = AgentResponse),
    ),
)]
pub async fn patch_agent(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
    Json(body): Json<PatchAgent>,
) -> Result<axum::Json<AgentResponse>, ApiError> {
    let id = agent_id(&id)?;
    let mut errors = FieldErrors::default();
    let prompt_id = body
        .prompt_id
        .map(|raw| errors.check("prompt_id", PromptId::parse(&raw)));
    let name = body
        .name
        .map(|raw| errors.check("name", AgentName::parse(&raw)));
    errors.into_result()?;
    let patch = AgentPatch {
        prompt_id: prompt_id.flatten(),
        name: name.flatten(),
    };
    let client = state.pool.get().await?;
    let agent = agents::update(&client, &tenant.user_id, &id, &patch)
        .await?
        .ok_or_else(agent_not_found)?;
    Ok(axum::Json(agent.into()))
}

/// Deletes an agent that has no conversations (one that has them is relinked instead, so
/// their history stays attached to a live agent).
#[utoipa::path(
    delete, path = "/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "`agt_…`")),
    responses(
        BearerErrors, PathErrors,
        (status = 204, description = "Deleted"),
        (status = 409, description = "The agent has conversations", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn delete_agent(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = agent_id(&id)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    match agents::delete(&tx, &tenant.user_id, &id).await? {
        DeleteOutcome::Deleted => {
            tx.commit().await?;
            tracing::info!(agent.id = %id, "agent deleted");
            Ok(StatusCode::NO_CONTENT)
        }
        DeleteOutcome::NotFound => Err(agent_not_found()),
        DeleteOutcome::HasConversations(count) => Err(ApiError::Conflict(format!(
            "the agent has {count} conversation(s); relink its channel to a new agent with \
             \"replace_existing\": true instead of deleting it"
        ))),
    }
}

/// The relink history of a channel, newest first.
#[utoipa::path(
    get, path = "/phone-numbers/{id}/archives", tag = "channels",
    params(("id" = String, Path, description = "`pn_…`"), ListArchives),
    responses(
        BearerErrors, ListErrors, PathErrors,
        (status = 200, body = Page<ArchiveResponse>),
    ),
)]
pub async fn list_archives(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
    Query(query): Query<ListArchives>,
) -> Result<axum::Json<Page<ArchiveResponse>>, ApiError> {
    let id = channel_id(&id)?;
    // Bound to the channel too: a cursor of one channel's archives does not page another's.
    let paging = Paging::new(
        &state.sealing_key,
        format!("archives:{id}"),
        query.limit,
        query.cursor.as_deref(),
    )?;
    let client = state.pool.get().await?;
    let rows = agents::archives(&client, &tenant.user_id, &id, paging.request())
        .await?
        .ok_or_else(channel_not_found)?;
    Ok(axum::Json(paging.page(rows, |a| a.archive_id.to_string())))
}
