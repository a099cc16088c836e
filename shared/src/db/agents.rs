//! `agents` and `conversation_archives`: the AI agent linked to each channel, and the record
//! left when a channel is relinked to a new agent.

use chrono::{DateTime, Utc};

use super::{DbError, GenericClient, PageRequest, Transaction};
use crate::domain::{AgentId, AgentName, ArchiveId, PhoneNumberId, PromptId, UserId};

/// An agent as the API shows it.
#[derive(Debug, Clone)]
pub struct Agent {
    pub agent_id: AgentId,
    pub phone_number_id: PhoneNumberId,
    pub prompt_id: PromptId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A validated agent to link to a channel.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub phone_number_id: PhoneNumberId,
    pub prompt_id: PromptId,
    pub name: AgentName,
}

/// A validated partial update; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AgentPatch {
    pub prompt_id: Option<PromptId>,
    pub name: Option<AgentName>,
}

/// The record of one relink.
#[derive(Debug, Clone)]
pub struct Archive {
    pub archive_id: ArchiveId,
    pub old_agent_id: AgentId,
    pub new_agent_id: AgentId,
    pub phone_number_id: PhoneNumberId,
    pub archived_conversations_count: i32,
    pub archived_at: DateTime<Utc>,
    pub reason: String,
}

/// The outcome of linking an agent to a channel.
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "one value per request, moved once"
)]
pub enum LinkOutcome {
    /// The agent was created; `archive` is set when it replaced another one.
    Linked {
        agent: Agent,
        archive: Option<Archive>,
    },
    /// The tenant has no such channel.
    ChannelNotFound,
    /// The channel already has an agent and replacing it was not asked for.
    ChannelTaken { agent_id: AgentId },
}

/// The outcome of deleting an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    NotFound,
    /// The agent has conversations: deleting it would drop their history; relink instead.
    HasConversations(i64),
}

const AGENT_COLUMNS: &str = "agent_id, phone_number_id, prompt_id, name, created_at, updated_at";
const ARCHIVE_COLUMNS: &str = "archive_id, old_agent_id, new_agent_id, phone_number_id,
    archived_conversations_count, archived_at, reason";

/// Links a new agent to a channel, in the caller's transaction.
///
/// The channel row is locked first, so links of one channel are serialised: of two
/// concurrent relinks, the second sees (and replaces) the first's agent, and exactly one
/// agent is left. Replacing moves every conversation of the old agent under the new one
/// (active ones are deactivated; messages and extractions stay where they are), deletes the
/// old agent and records an archive. The unique constraint on `agents.phone_number_id` is
/// deferred for that window, while both agents exist.
pub async fn link(
    tx: &Transaction<'_>,
    user: &UserId,
    new: &NewAgent,
    replace_existing: bool,
) -> Result<LinkOutcome, DbError> {
    let channel = tx
        .query_opt(
            "SELECT id FROM phone_numbers WHERE id = $1 AND user_id = $2 FOR UPDATE",
            &[&new.phone_number_id.as_str(), &user.as_str()],
        )
        .await?;
    if channel.is_none() {
        return Ok(LinkOutcome::ChannelNotFound);
    }
    let existing: Option<String> = tx
        .query_opt(
            "SELECT agent_id FROM agents WHERE phone_number_id = $1",
            &[&new.phone_number_id.as_str()],
        )
        .await?
        .map(|row| row.try_get("agent_id"))
        .transpose()?;
    let old_agent = existing.map(AgentId::from_trusted);
    if let Some(agent_id) = &old_agent {
        if !replace_existing {
            return Ok(LinkOutcome::ChannelTaken {
                agent_id: agent_id.clone(),
            });
        }
        tx.batch_execute("SET CONSTRAINTS agents_phone_number_id_key DEFERRED")
            .await?;
    }

    let agent_id = AgentId::generate();
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO agents (agent_id, user_id, phone_number_id, prompt_id, name)
                 VALUES ($1, $2, $3, $4, $5)
                 RETURNING {AGENT_COLUMNS}"
            ),
            &[
                &agent_id.as_str(),
                &user.as_str(),
                &new.phone_number_id.as_str(),
                &new.prompt_id.as_str(),
                &new.name.as_str(),
            ],
        )
        .await?;
    let agent = agent_from_row(&row)?;

    let Some(old_agent) = old_agent else {
        return Ok(LinkOutcome::Linked {
            agent,
            archive: None,
        });
    };
    let archived = tx
        .execute(
            "UPDATE conversations c SET is_active = false FROM agents a
             WHERE c.agent_id = $1 AND c.is_active AND a.agent_id = c.agent_id AND a.user_id = $2",
            &[&old_agent.as_str(), &user.as_str()],
        )
        .await?;
    tx.execute(
        "UPDATE conversations c SET agent_id = $2 FROM agents a
         WHERE c.agent_id = $1 AND a.agent_id = c.agent_id AND a.user_id = $3",
        &[
            &old_agent.as_str(),
            &agent.agent_id.as_str(),
            &user.as_str(),
        ],
    )
    .await?;
    tx.execute(
        "DELETE FROM agents WHERE agent_id = $1 AND user_id = $2",
        &[&old_agent.as_str(), &user.as_str()],
    )
    .await?;
    let archive_id = ArchiveId::generate();
    let archived_count = i32::try_from(archived).unwrap_or(i32::MAX);
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO conversation_archives
                     (archive_id, old_agent_id, new_agent_id, phone_number_id, archived_conversations_count)
                 VALUES ($1, $2, $3, $4, $5)
                 RETURNING {ARCHIVE_COLUMNS}"
            ),
            &[
                &archive_id.as_str(),
                &old_agent.as_str(),
                &agent.agent_id.as_str(),
                &new.phone_number_id.as_str(),
                &archived_count,
            ],
        )
        .await?;
    Ok(LinkOutcome::Linked {
        agent,
        archive: Some(archive_from_row(&row)?),
    })
}

/// One of the tenant's agents.
pub async fn get(
    client: &impl GenericClient,
    user: &UserId,
    id: &AgentId,
) -> Result<Option<Agent>, DbError> {
    client
        .query_opt(
            &format!("SELECT {AGENT_COLUMNS} FROM agents WHERE agent_id = $1 AND user_id = $2"),
            &[&id.as_str(), &user.as_str()],
        )
        .await?
        .map(|row| agent_from_row(&row))
        .transpose()
}

/// The tenant's agents, newest first, optionally only the one of a channel.
pub async fn list(
    client: &impl GenericClient,
    user: &UserId,
    phone_number_id: Option<&PhoneNumberId>,
    page: &PageRequest,
) -> Result<Vec<Agent>, DbError> {
    let rows = client
        .query(
            &format!(
                "SELECT {AGENT_COLUMNS} FROM agents
                 WHERE user_id = $1
                   AND ($2::text IS NULL OR phone_number_id = $2)
                   AND ($3::text IS NULL OR agent_id < $3)
                 ORDER BY agent_id DESC
                 LIMIT $4"
            ),
            &[
                &user.as_str(),
                &phone_number_id.map(PhoneNumberId::as_str),
                &page.before,
                &page.fetch,
            ],
        )
        .await?;
    rows.iter().map(agent_from_row).collect()
}

/// Applies a partial update; `None` when the tenant has no such agent.
pub async fn update(
    client: &impl GenericClient,
    user: &UserId,
    id: &AgentId,
    patch: &AgentPatch,
) -> Result<Option<Agent>, DbError> {
    client
        .query_opt(
            &format!(
                "UPDATE agents SET
                     prompt_id = COALESCE($3, prompt_id),
                     name = COALESCE($4, name)
                 WHERE agent_id = $1 AND user_id = $2
                 RETURNING {AGENT_COLUMNS}"
            ),
            &[
                &id.as_str(),
                &user.as_str(),
                &patch.prompt_id.as_ref().map(PromptId::as_str),
                &patch.name.as_ref().map(AgentName::as_str),
            ],
        )
        .await?
        .map(|row| agent_from_row(&row))
        .transpose()
}

/// Deletes an agent that has no conversations.
pub async fn delete(
    tx: &Transaction<'_>,
    user: &UserId,
    id: &AgentId,
) -> Result<DeleteOutcome, DbError> {
    let locked = tx
        .query_opt(
            "SELECT 1 FROM agents WHERE agent_id = $1 AND user_id = $2 FOR UPDATE",
            &[&id.as_str(), &user.as_str()],
        )
        .await?;
    if locked.is_none() {
        return Ok(DeleteOutcome::NotFound);
    }
    let conversations: i64 = tx
        .query_one(
            "SELECT count(*) AS n FROM conversations WHERE agent_id = $1",
            &[&id.as_str()],
        )
        .await?
        .try_get("n")?;
    if conversations > 0 {
        return Ok(DeleteOutcome::HasConversations(conversations));
    }
    tx.execute(
        "DELETE FROM agents WHERE agent_id = $1 AND user_id = $2",
        &[&id.as_str(), &user.as_str()],
    )
    .await?;
    Ok(DeleteOutcome::Deleted)
}

/// The relink history of one of the tenant's channels, newest first; `None` when the
/// tenant has no such channel.
pub async fn archives(
    client: &impl GenericClient,
    user: &UserId,
    phone_number_id: &PhoneNumberId,
    page: &PageRequest,
) -> Result<Option<Vec<Archive>>, DbError> {
    let owned = client
        .query_opt(
            "SELECT 1 FROM phone_numbers WHERE id = $1 AND user_id = $2",
            &[&phone_number_id.as_str(), &user.as_str()],
        )
        .await?;
    if owned.is_none() {
        return Ok(None);
    }
    let rows = client
        .query(
            &format!(
                "SELECT {ARCHIVE_COLUMNS} FROM conversation_archives
                 WHERE phone_number_id = $1 AND ($2::text IS NULL OR archive_id < $2)
                 ORDER BY archive_id DESC
                 LIMIT $3"
            ),
            &[&phone_number_id.as_str(), &page.before, &page.fetch],
        )
        .await?;
    rows.iter()
        .map(archive_from_row)
        .collect::<Result<_, _>>()
        .map(Some)
}

fn agent_from_row(row: &tokio_postgres::Row) -> Result<Agent, DbError> {
    Ok(Agent {
        agent_id: AgentId::from_trusted(row.try_get("agent_id")?),
        phone_number_id: PhoneNumberId::from_trusted(row.try_get("phone_number_id")?),
        prompt_id: PromptId::from_trusted(row.try_get("prompt_id")?),
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn archive_from_row(row: &tokio_postgres::Row) -> Result<Archive, DbError> {
    Ok(Archive {
        archive_id: ArchiveId::from_trusted(row.try_get("archive_id")?),
        old_agent_id: AgentId::from_trusted(row.try_get("old_agent_id")?),
        new_agent_id: AgentId::from_trusted(row.try_get("new_agent_id")?),
        phone_number_id: PhoneNumberId::from_trusted(row.try_get("phone_number_id")?),
        archived_conversations_count: row.try_get("archived_conversations_count")?,
        archived_at: row.try_get("archived_at")?,
        reason: row.try_get("reason")?,
    })
}
