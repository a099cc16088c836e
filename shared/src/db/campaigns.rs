//! `campaigns`, `campaign_triggers`, `campaign_recipients`, `campaign_counters` and
//! `send_throttles`: a campaign's definition and lifecycle, its recipients from resolution
//! to the last status, its sharded counters, and the per-number send limiter.
//!
//! Every status change is one conditional UPDATE (`WHERE status = ANY(allowed)`), so two
//! requests, a schedule and a worker racing on one campaign cannot both win; the loser reads
//! the current status for its 409. Every statement is scoped by the tenant, except the
//! worker-side ones that start from a recipient the caller already scoped.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveTime, Utc};
use serde_json::Value;
use tokio_postgres::Row;

use super::{DbError, GenericClient, PageRequest, Transaction, enum_column};
use crate::domain::{
    CampaignId, CampaignRecipientId, CampaignStatus, ContactId, DeliveryOrdered, DeliveryStep,
    PhoneNumberId, RecipientStatus, SkipReason, TemplateId, TriggerEvent, TriggerType, UserId,
    campaign::{RecipientFilter, RecipientFilterBody, VariableSource},
};

/// Shards of `campaign_counters`.
const COUNTER_SHARDS: i16 = 16;

/// A campaign's trigger (`campaign_triggers`, one per campaign).
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub trigger_type: TriggerType,
    /// SCHEDULED: the instant it starts.
    pub scheduled_at: Option<DateTime<Utc>>,
    pub event_type: Option<TriggerEvent>,
    pub event_config: Value,
    pub trigger_count: i32,
    pub last_triggered_at: Option<DateTime<Utc>>,
}

/// What a campaign is and how it goes.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub campaign_id: CampaignId,
    pub user_id: UserId,
    pub template_id: TemplateId,
    pub phone_number_id: PhoneNumberId,
    pub name: String,
    pub description: Option<String>,
    pub status: CampaignStatus,
    pub recipient_filter: RecipientFilter,
    pub variable_values: BTreeMap<String, VariableSource>,
    pub time_zone: Option<String>,
    pub quiet_hours: Option<(NaiveTime, NaiveTime)>,
    pub frequency_cap_hours: Option<i32>,
    pub send_rate_per_second: Option<i32>,
    pub total_recipients: i32,
    pub skipped_count: i32,
    pub recipients_resolved_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub paused_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub trigger: Trigger,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const CAMPAIGN_COLUMNS: &str = "c.campaign_id, c.user_id, c.template_id, c.phone_number_id,
    c.name, c.description, c.status, c.recipient_filter, c.variable_values, c.time_zone,
    c.quiet_hours_start, c.quiet_hours_end, c.frequency_cap_hours, c.send_rate_per_second,
    c.total_recipients, c.skipped_count, c.recipients_resolved_at, c.started_at,
    c.completed_at, c.paused_at, c.last_error, c.created_at, c.updated_at,
    t.trigger_type, t.scheduled_at, t.event_type, t.event_config, t.trigger_count,
    t.last_triggered_at";

const CAMPAIGN_FROM: &str = "campaigns c JOIN campaign_triggers t ON t.campaign_id = c.campaign_id";

fn corrupt(column: &'static str, detail: impl ToString) -> DbError {
    DbError::Corrupt {
        column,
        detail: detail.to_string(),
    }
}

fn campaign_from_row(row: &Row) -> Result<Campaign, DbError> {
    let filter: RecipientFilterBody = serde_json::from_value(row.try_get("recipient_filter")?)
        .map_err(|e| corrupt("recipient_filter", e))?;
    let recipient_filter = filter
        .parse("recipient_filter")
        .map_err(|problems| corrupt("recipient_filter", format!("{problems:?}")))?;
    let variable_values = serde_json::from_value(row.try_get("variable_values")?)
        .map_err(|e| corrupt("variable_values", e))?;
    let event_type: Option<String> = row.try_get("event_type")?;
    let start: Option<NaiveTime> = row.try_get("quiet_hours_start")?;
    let end: Option<NaiveTime> = row.try_get("quiet_hours_end")?;
    Ok(Campaign {
        campaign_id: CampaignId::from_trusted(row.try_get("campaign_id")?),
        user_id: super::user_column(row, "user_id")?,
        template_id: TemplateId::from_trusted(row.try_get("template_id")?),
        phone_number_id: PhoneNumberId::from_trusted(row.try_get("phone_number_id")?),
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        status: enum_column(row, "status")?,
        recipient_filter,
        variable_values,
        time_zone: row.try_get("time_zone")?,
        quiet_hours: start.zip(end),
        frequency_cap_hours: row.try_get("frequency_cap_hours")?,
        send_rate_per_second: row.try_get("send_rate_per_second")?,
        total_recipients: row.try_get("total_recipients")?,
        skipped_count: row.try_get("skipped_count")?,
        recipients_resolved_at: row.try_get("recipients_resolved_at")?,
        started_at: row.try_get("started_at")?,
        completed_at: row.try_get("completed_at")?,
        paused_at: row.try_get("paused_at")?,
        last_error: row.try_get("last_error")?,
        trigger: Trigger {
            trigger_type: enum_column(row, "trigger_type")?,
            scheduled_at: row.try_get("scheduled_at")?,
            event_type: event_type
                .map(|e| e.parse().map_err(|e| corrupt("event_type", e)))
                .transpose()?,
            event_config: row.try_get("event_config")?,
            trigger_count: row.try_get("trigger_count")?,
            last_triggered_at: row.try_get("last_triggered_at")?,
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A campaign's definition, as created or edited.
#[derive(Debug, Clone)]
pub struct CampaignDraft {
    pub template_id: TemplateId,
    pub phone_number_id: PhoneNumberId,
    pub name: String,
    pub description: Option<String>,
    pub recipient_filter: RecipientFilter,
    pub variable_values: BTreeMap<String, VariableSource>,
    pub time_zone: Option<String>,
    pub quiet_hours: Option<(NaiveTime, NaiveTime)>,
    pub frequency_cap_hours: Option<i32>,
    pub send_rate_per_second: Option<i32>,
    pub trigger_type: TriggerType,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub event_type: Option<TriggerEvent>,
    pub event_config: Value,
}

fn draft_json(draft: &CampaignDraft) -> Result<(Value, Value), DbError> {
    let filter = serde_json::to_value(draft.recipient_filter.to_body())
        .map_err(|e| corrupt("recipient_filter", e))?;
    let values =
        serde_json::to_value(&draft.variable_values).map_err(|e| corrupt("variable_values", e))?;
    Ok((filter, values))
}

/// Creates a `DRAFT` campaign and its trigger.
pub async fn create(
    tx: &Transaction<'_>,
    user: &UserId,
    draft: &CampaignDraft,
) -> Result<Campaign, DbError> {
    let id = CampaignId::generate();
    let (filter, values) = draft_json(draft)?;
    let (quiet_start, quiet_end) = draft.quiet_hours.unzip();
    tx.execute(
        "INSERT INTO campaigns (campaign_id, user_id, template_id, phone_number_id, name,
             description, recipient_filter, variable_values, time_zone, quiet_hours_start,
             quiet_hours_end, frequency_cap_hours, send_rate_per_second)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        &[
            &id.as_str(),
            &user.as_str(),
            &draft.template_id.as_str(),
            &draft.phone_number_id.as_str(),
            &draft.name,
            &draft.description,
            &filter,
            &values,
            &draft.time_zone,
            &quiet_start,
            &quiet_end,
            &draft.frequency_cap_hours,
            &draft.send_rate_per_second,
        ],
    )
    .await?;
    tx.execute(
        "INSERT INTO campaign_triggers (trigger_id, campaign_id, trigger_type, scheduled_at,
             event_type, event_config)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &crate::domain::CampaignTriggerId::generate().as_str(),
            &id.as_str(),
            &draft.trigger_type.as_str(),
            &draft.scheduled_at,
            &draft.event_type.map(|e| e.as_str()),
            &draft.event_config,
        ],
    )
    .await?;
    get(tx, user, &id)
        .await?
        .ok_or_else(|| corrupt("campaign_id", "the campaign just written is missing"))
}

/// Rewrites a campaign's definition while its status is one of `editable`; `None` when it
/// is not the tenant's, [`Edit::NotEditable`] with the status it has otherwise.
pub async fn update(
    tx: &Transaction<'_>,
    user: &UserId,
    id: &CampaignId,
    draft: &CampaignDraft,
    editable: &[CampaignStatus],
) -> Result<Option<Edit>, DbError> {
    let (filter, values) = draft_json(draft)?;
    let (quiet_start, quiet_end) = draft.quiet_hours.unzip();
    let editable: Vec<&str> = editable.iter().map(|s| s.as_str()).collect();
    let changed = tx
        .execute(
            "UPDATE campaigns SET template_id = $3, phone_number_id = $4, name = $5,
                 description = $6, recipient_filter = $7, variable_values = $8, time_zone = $9,
                 quiet_hours_start = $10, quiet_hours_end = $11, frequency_cap_hours = $12,
                 send_rate_per_second = $13
             WHERE campaign_id = $1 AND user_id = $2 AND status = ANY($14)",
            &[
                &id.as_str(),
                &user.as_str(),
                &draft.template_id.as_str(),
                &draft.phone_number_id.as_str(),
                &draft.name,
                &draft.description,
                &filter,
                &values,
                &draft.time_zone,
                &quiet_start,
                &quiet_end,
                &draft.frequency_cap_hours,
                &draft.send_rate_per_second,
                &editable,
            ],
        )
        .await?;
    if changed == 0 {
        return Ok(get(tx, user, id)
            .await?
            .map(|c| Edit::NotEditable(c.status)));
    }
    tx.execute(
        "UPDATE campaign_triggers SET trigger_type = $2, scheduled_at = $3, event_type = $4,
             event_config = $5
         WHERE campaign_id = $1",
        &[
            &id.as_str(),
            &draft.trigger_type.as_str(),
            &draft.scheduled_at,
            &draft.event_type.map(|e| e.as_str()),
            &draft.event_config,
        ],
    )
    .await?;
    Ok(get(tx, user, id).await?.map(Edit::Done))
}

/// What an edit or a status change did.
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "one value per request or job, moved once"
)]
pub enum Edit {
    Done(Campaign),
    /// The campaign is in this status, which does not allow it.
    NotEditable(CampaignStatus),
}

/// One of the tenant's campaigns.
pub async fn get(
    client: &impl GenericClient,
    user: &UserId,
    id: &CampaignId,
) -> Result<Option<Campaign>, DbError> {
    super::query_opt_cached(
        client,
        &format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM {CAMPAIGN_FROM}
                 WHERE c.campaign_id = $1 AND c.user_id = $2"
        ),
        &[&id.as_str(), &user.as_str()],
    )
    .await?
    .as_ref()
    .map(campaign_from_row)
    .transpose()
}

/// Every tenant's SCHEDULED campaigns (at most `limit`, soonest first): what an in-process
/// scheduler that restarted must arm again (EventBridge Scheduler keeps its own).
pub async fn all_scheduled(
    client: &impl GenericClient,
    limit: i64,
) -> Result<Vec<Campaign>, DbError> {
    client
        .query(
            &format!(
                "SELECT {CAMPAIGN_COLUMNS} FROM {CAMPAIGN_FROM}
                 WHERE c.status = 'SCHEDULED' ORDER BY t.scheduled_at LIMIT $1"
            ),
            &[&limit],
        )
        .await?
        .iter()
        .map(campaign_from_row)
        .collect()
}

/// The tenant's campaigns, newest first, one keyset page.
pub async fn list(
    client: &impl GenericClient,
    user: &UserId,
    status: Option<CampaignStatus>,
    page: &PageRequest,
) -> Result<Vec<Campaign>, DbError> {
    client
        .query(
            &format!(
                "SELECT {CAMPAIGN_COLUMNS} FROM {CAMPAIGN_FROM}
                 WHERE c.user_id = $1 AND ($2::text IS NULL OR c.campaign_id < $2)
                   AND ($3::text IS NULL OR c.status = $3)
                 ORDER BY c.campaign_id DESC LIMIT $4"
            ),
            &[
                &user.as_str(),
                &page.before,
                &status.map(|s| s.as_str()),
                &page.fetch,
            ],
        )
        .await?
        .iter()
        .map(campaign_from_row)
        .collect()
}

/// Deletes a `DRAFT` campaign (its trigger goes with it).
pub async fn delete_draft(
    client: &impl GenericClient,
    user: &UserId,
    id: &CampaignId,
) -> Result<Option<Edit>, DbError> {
    let Some(campaign) = get(client, user, id).await? else {
        return Ok(None);
    };
    let deleted = client
        .execute(
            "DELETE FROM campaigns WHERE campaign_id = $1 AND user_id = $2 AND status = 'DRAFT'",
            &[&id.as_str(), &user.as_str()],
        )
        .await?;
    if deleted == 1 {
        Ok(Some(Edit::Done(campaign)))
    } else {
        Ok(get(client, user, id)
            .await?
            .map(|c| Edit::NotEditable(c.status)))
    }
}

/// A status change and what it also sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// DRAFT → SCHEDULED (a SCHEDULED trigger's start).
    Schedule,
    /// DRAFT → RUNNING (IMMEDIATE or EVENT start), or SCHEDULED → RUNNING when the schedule
    /// fires: `started_at` is set once.
    Run,
    /// RUNNING → PAUSED, with `paused_at` and an optional `last_error`.
    Pause,
    /// PAUSED → RUNNING.
    Resume,
    /// DRAFT, SCHEDULED, RUNNING or PAUSED → CANCELLED.
    Cancel,
}

impl Transition {
    /// The statuses it may start from.
    pub fn from(self) -> &'static [CampaignStatus] {
        use CampaignStatus::*;
        match self {
            Self::Schedule => &[Draft],
            Self::Run => &[Draft, Scheduled],
            Self::Pause => &[Running],
            Self::Resume => &[Paused],
            Self::Cancel => &[Draft, Scheduled, Running, Paused],
        }
    }

    /// The status it ends in.
    pub fn to(self) -> CampaignStatus {
        match self {
            Self::Schedule => CampaignStatus::Scheduled,
            Self::Run | Self::Resume => CampaignStatus::Running,
            Self::Pause => CampaignStatus::Paused,
            Self::Cancel => CampaignStatus::Cancelled,
        }
    }
}

/// Moves a campaign by `transition` in one conditional UPDATE. `None`: not the tenant's;
/// [`Edit::NotEditable`]: its status does not allow it (the status is returned).
pub async fn transition(
    client: &impl GenericClient,
    user: &UserId,
    id: &CampaignId,
    transition: Transition,
    last_error: Option<&str>,
) -> Result<Option<Edit>, DbError> {
    let from: Vec<&str> = transition.from().iter().map(|s| s.as_str()).collect();
    let changed = client
        .execute(
            "UPDATE campaigns SET status = $3::text,
                 started_at = CASE WHEN $3::text = 'RUNNING' THEN COALESCE(started_at, now()) ELSE started_at END,
                 paused_at = CASE WHEN $3::text = 'PAUSED' THEN now() ELSE paused_at END,
                 completed_at = CASE WHEN $3::text = 'CANCELLED' THEN now() ELSE completed_at END,
                 last_error = CASE WHEN $3::text = 'PAUSED' THEN $5
                                   WHEN $3::text = 'RUNNING' THEN NULL ELSE last_error END
             WHERE campaign_id = $1 AND user_id = $2 AND status = ANY($4)",
            &[
                &id.as_str(),
                &user.as_str(),
                &transition.to().as_str(),
                &from,
                &last_error,
            ],
        )
        .await?;
    let campaign = get(client, user, id).await?;
    Ok(campaign.map(|c| {
        if changed == 1 {
            Edit::Done(c)
        } else {
            Edit::NotEditable(c.status)
        }
    }))
}

/// Pauses every RUNNING campaign of a template that Meta paused or disabled.
pub async fn pause_for_template(
    client: &impl GenericClient,
    template: &TemplateId,
    reason: &str,
) -> Result<u64, DbError> {
    Ok(client
        .execute(
            "UPDATE campaigns SET status = 'PAUSED', paused_at = now(), last_error = $2
             WHERE template_id = $1 AND status = 'RUNNING'",
            &[&template.as_str(), &reason],
        )
        .await?)
}

/// Pauses every RUNNING campaign of the template with Meta's id `meta_template_id` in
/// `waba_id` (Meta paused or disabled it: the status webhook).
pub async fn pause_for_meta_template(
    client: &impl GenericClient,
    waba_id: &str,
    meta_template_id: &str,
    reason: &str,
) -> Result<u64, DbError> {
    Ok(client
        .execute(
            "UPDATE campaigns c SET status = 'PAUSED', paused_at = now(), last_error = $3
             FROM templates t
             WHERE t.template_id = c.template_id AND t.waba_id = $1 AND t.meta_template_id = $2
               AND c.user_id = t.user_id AND c.status = 'RUNNING'",
            &[&waba_id, &meta_template_id, &reason],
        )
        .await?)
}

/// Skips every recipient of a cancelled campaign that was not sent yet.
pub async fn skip_unsent(tx: &Transaction<'_>, campaign: &CampaignId) -> Result<u64, DbError> {
    let rows = tx
        .query(
            "UPDATE campaign_recipients SET status = 'SKIPPED', skip_reason = 'CANCELLED',
                 claimed_at = NULL
             WHERE campaign_id = $1 AND status IN ('PENDING', 'QUEUED') AND claimed_at IS NULL
             RETURNING recipient_id",
            &[&campaign.as_str()],
        )
        .await?;
    let ids: Vec<String> = rows
        .iter()
        .map(|r| r.try_get("recipient_id"))
        .collect::<Result<_, _>>()?;
    count_skipped(tx, campaign, &ids).await?;
    Ok(rows.len() as u64)
}

// ---------------------------------------------------------------------------------------
// Recipients: resolution and fan-out.
// ---------------------------------------------------------------------------------------

/// How a campaign's filter resolves: who would receive it and who is skipped, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    pub eligible: i64,
    pub skipped: BTreeMap<SkipReason, i64>,
}

/// Options of a resolution.
#[derive(Debug, Clone, Copy)]
pub struct ResolveOptions {
    /// MARKETING templates honour marketing opt-outs and the frequency cap.
    pub marketing: bool,
    /// Hours; 0 disables the cap.
    pub frequency_cap_hours: i32,
}

/// The candidates of a filter with their skip reason (NULL: eligible). The filter's
/// parameters are `$1` tenant, `$2` tags, `$3` excluded tags, `$4` contact ids, `$5`
/// marketing, `$6` frequency cap hours.
const CANDIDATES: &str = "
    SELECT ct.contact_id, ct.phone, ct.name, ct.email, ct.company,
           CASE
               WHEN ct.opted_out THEN 'OPTED_OUT'
               WHEN $5 AND ct.marketing_opted_out_at IS NOT NULL THEN 'MARKETING_OPTED_OUT'
               WHEN ct.phone !~ '^\\+[1-9][0-9]{6,14}$' THEN 'INVALID_PHONE'
               WHEN row_number() OVER (PARTITION BY ct.phone ORDER BY ct.contact_id) > 1 THEN 'DUPLICATE'
               WHEN $5 AND $6 > 0 AND ct.last_contacted_at > now() - make_interval(hours => $6)
                   THEN 'RECENTLY_CONTACTED'
           END AS skip_reason
    FROM contacts ct
    WHERE ct.user_id = $1 AND ct.is_active AND ct.erased_at IS NULL AND ct.phone IS NOT NULL
      AND ct.tags @> $2::text[] AND NOT (ct.tags && $3::text[])
      AND (cardinality($4::text[]) = 0 OR ct.contact_id = ANY($4::text[]))";

fn filter_params(filter: &RecipientFilter) -> (Vec<&str>, Vec<&str>, Vec<&str>) {
    (
        filter.tags.iter().map(|t| t.as_str()).collect(),
        filter.exclude_tags.iter().map(|t| t.as_str()).collect(),
        filter.contact_ids.iter().map(|c| c.as_str()).collect(),
    )
}

/// Counts what a filter resolves to, without writing anything (preview).
pub async fn preview(
    client: &impl GenericClient,
    user: &UserId,
    filter: &RecipientFilter,
    options: ResolveOptions,
) -> Result<(Resolution, Vec<SampleRecipient>), DbError> {
    let (tags, excluded, ids) = filter_params(filter);
    let rows = client
        .query(
            &format!(
                "SELECT skip_reason, count(*) AS n FROM ({CANDIDATES}) x GROUP BY skip_reason"
            ),
            &[
                &user.as_str(),
                &tags,
                &excluded,
                &ids,
                &options.marketing,
                &options.frequency_cap_hours,
            ],
        )
        .await?;
    let mut resolution = Resolution::default();
    for row in rows {
        let n: i64 = row.try_get("n")?;
        match row.try_get::<_, Option<String>>("skip_reason")? {
            None => resolution.eligible = n,
            Some(reason) => {
                let reason: SkipReason = reason.parse().map_err(|e| corrupt("skip_reason", e))?;
                resolution.skipped.insert(reason, n);
            }
        }
    }
    let samples = client
        .query(
            &format!(
                "SELECT * FROM ({CANDIDATES}) x WHERE skip_reason IS NULL
                 ORDER BY contact_id LIMIT 3"
            ),
            &[
                &user.as_str(),
                &tags,
                &excluded,
                &ids,
                &options.marketing,
                &options.frequency_cap_hours,
            ],
        )
        .await?
        .iter()
        .map(sample_from_row)
        .collect::<Result<_, _>>()?;
    Ok((resolution, samples))
}

/// A recipient's fields that template variables may read.
#[derive(Debug, Clone)]
pub struct SampleRecipient {
    pub contact_id: ContactId,
    pub fields: crate::domain::campaign::RecipientFields,
}

fn sample_from_row(row: &Row) -> Result<SampleRecipient, DbError> {
    Ok(SampleRecipient {
        contact_id: ContactId::from_trusted(row.try_get("contact_id")?),
        fields: crate::domain::campaign::RecipientFields {
            name: row.try_get("name")?,
            email: row.try_get("email")?,
            company: row.try_get("company")?,
            phone: row.try_get("phone")?,
        },
    })
}

/// Rows written per `INSERT … SELECT FROM unnest(…)`.
const RECIPIENT_CHUNK: usize = 10_000;

/// Writes every recipient of a campaign in bulk (the eligible ones `QUEUED`, ready for
/// their send jobs, the others `SKIPPED` with their reason) and marks the campaign
/// resolved, in the caller's transaction; answers the queued ones. The caller publishes
/// their jobs after the commit, then [`mark_fanned_out`]: a start job redelivered in
/// between publishes them again ([`first_fan_out`]). A campaign already resolved is left
/// alone (`None`).
pub async fn resolve(
    tx: &Transaction<'_>,
    campaign: &Campaign,
    options: ResolveOptions,
) -> Result<Option<(Resolution, Vec<CampaignRecipientId>)>, DbError> {
    let locked = tx
        .query_opt(
            "SELECT recipients_resolved_at FROM campaigns
             WHERE campaign_id = $1 AND user_id = $2 FOR UPDATE",
            &[&campaign.campaign_id.as_str(), &campaign.user_id.as_str()],
        )
        .await?;
    match locked {
        None => return Ok(None),
        Some(row)
            if row
                .try_get::<_, Option<DateTime<Utc>>>("recipients_resolved_at")?
                .is_some() =>
        {
            return Ok(None);
        }
        Some(_) => {}
    }
    let (tags, excluded, ids) = filter_params(&campaign.recipient_filter);
    let candidates = tx
        .query(
            &format!("SELECT contact_id, phone, skip_reason FROM ({CANDIDATES}) x"),
            &[
                &campaign.user_id.as_str(),
                &tags,
                &excluded,
                &ids,
                &options.marketing,
                &options.frequency_cap_hours,
            ],
        )
        .await?;
    let mut resolution = Resolution::default();
    let mut contact_ids = Vec::with_capacity(candidates.len());
    let mut phones = Vec::with_capacity(candidates.len());
    let mut reasons: Vec<Option<String>> = Vec::with_capacity(candidates.len());
    for row in &candidates {
        contact_ids.push(row.try_get::<_, String>("contact_id")?);
        phones.push(row.try_get::<_, String>("phone")?);
        let reason: Option<String> = row.try_get("skip_reason")?;
        match &reason {
            None => resolution.eligible += 1,
            Some(text) => {
                let reason: SkipReason = text.parse().map_err(|e| corrupt("skip_reason", e))?;
                *resolution.skipped.entry(reason).or_default() += 1;
            }
        }
        reasons.push(reason);
    }
    let recipient_ids: Vec<String> = contact_ids
        .iter()
        .map(|_| CampaignRecipientId::generate().into())
        .collect();
    for start in (0..contact_ids.len()).step_by(RECIPIENT_CHUNK) {
        let end = (start + RECIPIENT_CHUNK).min(contact_ids.len());
        tx.execute(
            "INSERT INTO campaign_recipients (recipient_id, campaign_id, contact_id, phone, status,
                                              skip_reason, queued_at)
             SELECT r, $1, c, p, CASE WHEN s IS NULL THEN 'QUEUED' ELSE 'SKIPPED' END, s,
                    CASE WHEN s IS NULL THEN now() END
             FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS u(r, c, p, s)
             ON CONFLICT (campaign_id, contact_id) DO NOTHING",
            &[
                &campaign.campaign_id.as_str(),
                &&recipient_ids[start..end],
                &&contact_ids[start..end],
                &&phones[start..end],
                &&reasons[start..end],
            ],
        )
        .await?;
    }
    let skipped: i64 = resolution.skipped.values().sum();
    tx.execute(
        "UPDATE campaigns SET recipients_resolved_at = now(), total_recipients = $2,
             skipped_count = $3
         WHERE campaign_id = $1",
        &[
            &campaign.campaign_id.as_str(),
            &i32::try_from(resolution.eligible + skipped).unwrap_or(i32::MAX),
            &i32::try_from(skipped).unwrap_or(i32::MAX),
        ],
    )
    .await?;
    add_counts(
        tx,
        &campaign.campaign_id,
        0,
        Counts {
            skipped: i32::try_from(skipped).unwrap_or(i32::MAX),
            ..Counts::default()
        },
    )
    .await?;
    let queued = recipient_ids
        .into_iter()
        .zip(&reasons)
        .filter(|(_, reason)| reason.is_none())
        .map(|(id, _)| CampaignRecipientId::from_trusted(id))
        .collect();
    Ok(Some((resolution, queued)))
}

/// A resolved campaign whose first fan-out never finished (its start job died between the
/// resolution's commit and [`mark_fanned_out`]): its `QUEUED` recipients not yet claimed,
/// whose jobs may be lost. Publishing them again is safe (a second job for a recipient
/// claims nothing). Empty when the first fan-out finished.
pub async fn first_fan_out(
    client: &impl GenericClient,
    campaign: &CampaignId,
) -> Result<Vec<CampaignRecipientId>, DbError> {
    let rows = client
        .query(
            "SELECT r.recipient_id FROM campaign_recipients r
               JOIN campaigns c ON c.campaign_id = r.campaign_id
             WHERE r.campaign_id = $1 AND c.recipients_resolved_at IS NOT NULL
               AND c.fanned_out_at IS NULL AND r.status = 'QUEUED' AND r.claimed_at IS NULL
             ORDER BY r.recipient_id",
            &[&campaign.as_str()],
        )
        .await?;
    recipient_ids(&rows)
}

/// The `recipient_id` column of `rows`.
fn recipient_ids(rows: &[Row]) -> Result<Vec<CampaignRecipientId>, DbError> {
    rows.iter()
        .map(|r| {
            Ok(CampaignRecipientId::from_trusted(
                r.try_get("recipient_id")?,
            ))
        })
        .collect()
}

/// The first fan-out published every queued recipient's job.
pub async fn mark_fanned_out(
    client: &impl GenericClient,
    campaign: &CampaignId,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE campaigns SET fanned_out_at = now()
             WHERE campaign_id = $1 AND fanned_out_at IS NULL",
            &[&campaign.as_str()],
        )
        .await?;
    Ok(())
}

/// Marks up to `limit` of a RUNNING campaign's due `PENDING` recipients `QUEUED` and
/// returns them (in the caller's transaction, which commits before their jobs publish).
pub async fn queue_due(
    tx: &Transaction<'_>,
    campaign: &CampaignId,
    limit: i64,
) -> Result<Vec<CampaignRecipientId>, DbError> {
    let rows = tx
        .query(
            "UPDATE campaign_recipients SET status = 'QUEUED', queued_at = now()
             WHERE recipient_id IN (
                 SELECT r.recipient_id FROM campaign_recipients r
                 JOIN campaigns c ON c.campaign_id = r.campaign_id AND c.status = 'RUNNING'
                 WHERE r.campaign_id = $1 AND r.status = 'PENDING'
                   AND (r.not_before IS NULL OR r.not_before <= now())
                 ORDER BY r.recipient_id LIMIT $2
                 FOR UPDATE OF r SKIP LOCKED)
             RETURNING recipient_id",
            &[&campaign.as_str(), &limit],
        )
        .await?;
    recipient_ids(&rows)
}

/// Puts recipients whose jobs could not be published back to `PENDING`.
pub async fn unqueue(
    client: &impl GenericClient,
    recipients: &[CampaignRecipientId],
) -> Result<u64, DbError> {
    let ids: Vec<&str> = recipients.iter().map(|r| r.as_str()).collect();
    Ok(client
        .execute(
            "UPDATE campaign_recipients SET status = 'PENDING', queued_at = NULL
             WHERE recipient_id = ANY($1) AND status = 'QUEUED' AND claimed_at IS NULL",
            &[&ids],
        )
        .await?)
}

/// Completes a RUNNING campaign (not an EVENT one) that has no recipient left to send:
/// exactly once, by whoever finishes the last one.
pub async fn complete_if_done(
    client: &impl GenericClient,
    campaign: &CampaignId,
) -> Result<bool, DbError> {
    Ok(super::execute_cached(
        client,
        "UPDATE campaigns c SET status = 'COMPLETED', completed_at = now()
             WHERE c.campaign_id = $1 AND c.status = 'RUNNING'
               AND c.recipients_resolved_at IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM campaign_triggers t
                               WHERE t.campaign_id = c.campaign_id AND t.trigger_type = 'EVENT')
               -- The counters first (16 rows): they count every finished recipient at
               -- least once, so the exact check over the recipients (slow while a
               -- running campaign's index is full of just-sent rows) runs only near the end.
               AND CASE WHEN (SELECT COALESCE(sum(k.sent + k.failed + k.skipped), 0)
                              FROM campaign_counters k
                              WHERE k.campaign_id = c.campaign_id) >= c.total_recipients
                        THEN NOT EXISTS (SELECT 1 FROM campaign_recipients r
                                         WHERE r.campaign_id = c.campaign_id
                                           AND r.status IN ('PENDING', 'QUEUED'))
                        ELSE false END",
        &[&campaign.as_str()],
    )
    .await?
        == 1)
}

// ---------------------------------------------------------------------------------------
// The send worker's side.
// ---------------------------------------------------------------------------------------

/// A recipient claimed for its send, with what the send needs.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub recipient_id: CampaignRecipientId,
    pub user_id: UserId,
    pub campaign_id: CampaignId,
    pub contact_id: ContactId,
    pub phone: String,
    pub fields: crate::domain::campaign::RecipientFields,
    pub opted_out: bool,
    pub template_send_id: Option<String>,
    pub not_before: Option<DateTime<Utc>>,
    pub first_deferred_at: Option<DateTime<Utc>>,
    pub attempts: i32,
}

/// Claims `QUEUED` recipients of the tenants' campaigns for sending, `(tenant, recipient)`
/// pairs, in one conditional UPDATE: ours to send until [`release`] or a finish. A
/// recipient not in the answer is nothing to do: finished, skipped, claimed by another job
/// (a redelivery or a duplicate), or not the tenant's.
pub async fn claim_many(
    client: &impl GenericClient,
    wanted: &[(&UserId, &CampaignRecipientId)],
) -> Result<Vec<Claimed>, DbError> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let users: Vec<&str> = wanted.iter().map(|(u, _)| u.as_str()).collect();
    let recipients: Vec<&str> = wanted.iter().map(|(_, r)| r.as_str()).collect();
    let rows = super::query_cached(
        client,
        "UPDATE campaign_recipients r SET claimed_at = now(), attempts = r.attempts + 1
             FROM unnest($1::text[], $2::text[]) AS w(uid, rid), campaigns c, contacts ct
             WHERE r.recipient_id = w.rid AND c.campaign_id = r.campaign_id
               AND c.user_id = w.uid AND ct.contact_id = r.contact_id AND ct.user_id = c.user_id
               AND r.status = 'QUEUED' AND r.claimed_at IS NULL
             RETURNING r.recipient_id, c.user_id, r.campaign_id, r.contact_id, r.phone,
                       r.template_send_id, r.not_before, r.first_deferred_at, r.attempts,
                       ct.name, ct.email, ct.company, ct.phone AS contact_phone, ct.opted_out",
        &[&users, &recipients],
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Claimed {
                recipient_id: CampaignRecipientId::from_trusted(row.try_get("recipient_id")?),
                user_id: super::user_column(row, "user_id")?,
                campaign_id: CampaignId::from_trusted(row.try_get("campaign_id")?),
                contact_id: ContactId::from_trusted(row.try_get("contact_id")?),
                phone: row
                    .try_get::<_, Option<String>>("phone")?
                    .unwrap_or_default(),
                fields: crate::domain::campaign::RecipientFields {
                    name: row.try_get("name")?,
                    email: row.try_get("email")?,
                    company: row.try_get("company")?,
                    phone: row.try_get("contact_phone")?,
                },
                opted_out: row.try_get("opted_out")?,
                template_send_id: row.try_get("template_send_id")?,
                not_before: row.try_get("not_before")?,
                first_deferred_at: row.try_get("first_deferred_at")?,
                attempts: row.try_get("attempts")?,
            })
        })
        .collect()
}

/// How a claimed recipient is given back.
#[derive(Debug, Clone, Copy)]
pub struct Release {
    /// `QUEUED` (its job comes back later) or `PENDING` (a later fan-out sends it).
    pub back_to: RecipientStatus,
    /// Not before this instant (its reserved send slot, the end of quiet hours, 24 hours
    /// after a 131049).
    pub not_before: Option<DateTime<Utc>>,
    /// A deferral Meta asked for (131049): the first one starts the retry window.
    pub deferred: bool,
    /// The send failed for good at Meta: the next attempt writes a new one.
    pub clear_send: bool,
}

/// Gives a claimed recipient back (see [`Release`]).
pub async fn release(
    client: &impl GenericClient,
    recipient: &CampaignRecipientId,
    release: Release,
) -> Result<(), DbError> {
    super::execute_cached(
        client,
        "UPDATE campaign_recipients SET status = $2::text, claimed_at = NULL, not_before = $3,
                 first_deferred_at = CASE WHEN $4 THEN COALESCE(first_deferred_at, now())
                                          ELSE first_deferred_at END,
                 queued_at = CASE WHEN $2::text = 'PENDING' THEN NULL ELSE queued_at END,
                 template_send_id = CASE WHEN $5 THEN NULL ELSE template_send_id END
             WHERE recipient_id = $1 AND claimed_at IS NOT NULL",
        &[
            &recipient.as_str(),
            &release.back_to.as_str(),
            &release.not_before,
            &release.deferred,
            &release.clear_send,
        ],
    )
    .await?;
    Ok(())
}

/// Meta's 131050: the contact stopped marketing messages.
pub async fn mark_marketing_opt_out(
    client: &impl GenericClient,
    user: &UserId,
    contact: &ContactId,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE contacts SET marketing_opted_out_at = COALESCE(marketing_opted_out_at, now())
             WHERE contact_id = $1 AND user_id = $2",
            &[&contact.as_str(), &user.as_str()],
        )
        .await?;
    Ok(())
}

/// Links claimed recipients to their template sends and records their resolved values:
/// `(recipient, send id, values)`.
pub async fn link_sends(
    client: &impl GenericClient,
    links: &[(&CampaignRecipientId, &str, &Value)],
) -> Result<(), DbError> {
    if links.is_empty() {
        return Ok(());
    }
    let recipients: Vec<&str> = links.iter().map(|(r, _, _)| r.as_str()).collect();
    let sends: Vec<&str> = links.iter().map(|(_, s, _)| *s).collect();
    let values: Vec<&Value> = links.iter().map(|(_, _, v)| *v).collect();
    super::execute_cached(
        client,
        "UPDATE campaign_recipients r SET template_send_id = u.s, variable_values = u.v
             FROM unnest($1::text[], $2::text[], $3::jsonb[]) AS u(id, s, v)
             WHERE r.recipient_id = u.id",
        &[&recipients, &sends, &values],
    )
    .await?;
    Ok(())
}

/// How a claimed recipient ended without a send (a sent one finishes through
/// [`finish_sent`], in the send's transaction).
#[derive(Debug, Clone)]
pub enum Finish<'a> {
    Failed {
        code: Option<&'a str>,
        message: &'a str,
    },
    Skipped(SkipReason),
}

/// Finishes a claimed recipient and counts it, in the caller's transaction. A recipient
/// that a status webhook already moved past `SENT` keeps its status.
pub async fn finish(
    tx: &Transaction<'_>,
    campaign: &CampaignId,
    recipient: &CampaignRecipientId,
    finish: Finish<'_>,
) -> Result<bool, DbError> {
    let (status, code, message, reason) = match &finish {
        Finish::Failed { code, message } => (RecipientStatus::Failed, *code, Some(*message), None),
        Finish::Skipped(reason) => (RecipientStatus::Skipped, None, None, Some(reason.as_str())),
    };
    let changed = super::execute_cached(
        tx,
        "UPDATE campaign_recipients SET status = $2::text, error_code = $3,
                 error_message = $4, skip_reason = $5, claimed_at = NULL
             WHERE recipient_id = $1 AND status = 'QUEUED'",
        &[
            &recipient.as_str(),
            &status.as_str(),
            &code,
            &message.map(|m| crate::domain::replace_nul(m).into_owned()),
            &reason,
        ],
    )
    .await?;
    if changed == 0 {
        return Ok(false);
    }
    let counts = match finish {
        Finish::Failed { .. } => Counts {
            failed: 1,
            ..Counts::default()
        },
        Finish::Skipped(_) => Counts {
            skipped: 1,
            ..Counts::default()
        },
    };
    add_counts(tx, campaign, shard_of(recipient.as_str()), counts).await?;
    Ok(true)
}

/// Finishes claimed recipients Meta accepted, `(recipient, when)`, `SENT`, and counts
/// them, in the caller's transaction, in two statements whatever their number.
/// Returns how many moved.
pub async fn finish_sent(
    tx: &Transaction<'_>,
    campaign: &CampaignId,
    recipients: &[(&CampaignRecipientId, DateTime<Utc>)],
) -> Result<u64, DbError> {
    if recipients.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = recipients.iter().map(|(r, _)| r.as_str()).collect();
    let times: Vec<DateTime<Utc>> = recipients.iter().map(|(_, at)| *at).collect();
    let moved = super::query_cached(
        tx,
        "UPDATE campaign_recipients r SET status = 'SENT', error_code = NULL,
                 error_message = NULL, skip_reason = NULL, claimed_at = NULL,
                 sent_at = COALESCE(r.sent_at, u.at)
             FROM unnest($1::text[], $2::timestamptz[]) AS u(id, at)
             WHERE r.recipient_id = u.id AND r.status = 'QUEUED'
             RETURNING r.recipient_id",
        &[&ids, &times],
    )
    .await?;
    // One shard per batch, not one per recipient: concurrent batches then meet on one
    // counter row each instead of queueing on most of them (counters are read as sums,
    // so any shard counts).
    if let Some(first) = recipients.first() {
        let sent = i32::try_from(moved.len()).unwrap_or(i32::MAX);
        let counts = Counts {
            sent,
            ..Counts::default()
        };
        add_counts(tx, campaign, shard_of(first.0.as_str()), counts).await?;
    }
    Ok(moved.len() as u64)
}

// ---------------------------------------------------------------------------------------
// Counters.
// ---------------------------------------------------------------------------------------

/// Moves of a campaign's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: i32,
    pub delivered: i32,
    pub read: i32,
    pub failed: i32,
    pub skipped: i32,
    /// Of `failed`, those Meta had accepted (counted in `sent` too).
    pub failed_after_sent: i32,
}

/// The counter shard of a recipient: a stable hash of its id.
pub fn shard_of(recipient_id: &str) -> i16 {
    let hash = recipient_id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    i16::try_from(hash % COUNTER_SHARDS.unsigned_abs() as u32).unwrap_or(0)
}

async fn add_counts(
    client: &impl GenericClient,
    campaign: &CampaignId,
    shard: i16,
    c: Counts,
) -> Result<(), DbError> {
    if c == Counts::default() {
        return Ok(());
    }
    super::execute_cached(
        client,
        "INSERT INTO campaign_counters AS k
                 (campaign_id, shard, sent, delivered, read, failed, skipped, failed_after_sent)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (campaign_id, shard) DO UPDATE SET
                 sent = k.sent + EXCLUDED.sent, delivered = k.delivered + EXCLUDED.delivered,
                 read = k.read + EXCLUDED.read, failed = k.failed + EXCLUDED.failed,
                 skipped = k.skipped + EXCLUDED.skipped,
                 failed_after_sent = k.failed_after_sent + EXCLUDED.failed_after_sent",
        &[
            &campaign.as_str(),
            &shard,
            &c.sent,
            &c.delivered,
            &c.read,
            &c.failed,
            &c.skipped,
            &c.failed_after_sent,
        ],
    )
    .await?;
    Ok(())
}

async fn count_skipped(
    tx: &Transaction<'_>,
    campaign: &CampaignId,
    recipients: &[String],
) -> Result<(), DbError> {
    let mut by_shard: BTreeMap<i16, i32> = BTreeMap::new();
    for id in recipients {
        *by_shard.entry(shard_of(id)).or_default() += 1;
    }
    for (shard, skipped) in by_shard {
        add_counts(
            tx,
            campaign,
            shard,
            Counts {
                skipped,
                ..Counts::default()
            },
        )
        .await?;
    }
    Ok(())
}

/// What a recipient's move to one status counts, for each status it may come from
/// (columns, as a status webhook's statement takes them: `db::delivery::apply`): a jump
/// from SENT to READ counts delivered and read once each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountedMoves {
    pub previous: Vec<&'static str>,
    pub sent: Vec<i32>,
    pub delivered: Vec<i32>,
    pub read: Vec<i32>,
    pub failed: Vec<i32>,
    pub failed_after_sent: Vec<i32>,
}

impl CountedMoves {
    /// The moves to `after` from every recipient status.
    pub fn to(after: RecipientStatus) -> Self {
        let mut moves = Self::default();
        for &before in RecipientStatus::ALL {
            let (from, to) = (before.step(), after.step());
            let reached = |level| i32::from(DeliveryStep::reaches(from, to, level));
            moves.previous.push(before.as_str());
            moves.sent.push(reached(DeliveryStep::Sent));
            moves.delivered.push(reached(DeliveryStep::Delivered));
            moves.read.push(reached(DeliveryStep::Read));
            let fails = after == RecipientStatus::Failed && before != RecipientStatus::Failed;
            moves.failed.push(i32::from(fails));
            // `failed` replaces SENT at most: Meta had accepted it.
            moves
                .failed_after_sent
                .push(i32::from(fails && before == RecipientStatus::Sent));
        }
        moves
    }
}

/// A campaign's counters: the sum of its shards.
pub async fn counters(
    client: &impl GenericClient,
    campaign: &CampaignId,
) -> Result<Counts, DbError> {
    let row = client
        .query_one(
            "SELECT COALESCE(sum(sent), 0)::int AS sent, COALESCE(sum(delivered), 0)::int AS delivered,
                    COALESCE(sum(read), 0)::int AS read, COALESCE(sum(failed), 0)::int AS failed,
                    COALESCE(sum(skipped), 0)::int AS skipped,
                    COALESCE(sum(failed_after_sent), 0)::int AS failed_after_sent
             FROM campaign_counters WHERE campaign_id = $1",
            &[&campaign.as_str()],
        )
        .await?;
    Ok(Counts {
        sent: row.try_get("sent")?,
        delivered: row.try_get("delivered")?,
        read: row.try_get("read")?,
        failed: row.try_get("failed")?,
        skipped: row.try_get("skipped")?,
        failed_after_sent: row.try_get("failed_after_sent")?,
    })
}

/// The same numbers counted from the recipient rows (what reconciliation compares).
pub async fn counted_from_rows(
    client: &impl GenericClient,
    campaign: &CampaignId,
) -> Result<Counts, DbError> {
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE status IN ('SENT', 'DELIVERED', 'READ')
                                     OR (status = 'FAILED' AND sent_at IS NOT NULL))::int AS sent,
                    count(*) FILTER (WHERE status IN ('DELIVERED', 'READ')
                                     OR (status = 'FAILED' AND delivered_at IS NOT NULL))::int AS delivered,
                    count(*) FILTER (WHERE status = 'READ' OR read_at IS NOT NULL)::int AS read,
                    count(*) FILTER (WHERE status = 'FAILED')::int AS failed,
                    count(*) FILTER (WHERE status = 'SKIPPED')::int AS skipped,
                    count(*) FILTER (WHERE status = 'FAILED' AND sent_at IS NOT NULL)::int
                        AS failed_after_sent
             FROM campaign_recipients WHERE campaign_id = $1",
            &[&campaign.as_str()],
        )
        .await?;
    Ok(Counts {
        sent: row.try_get("sent")?,
        delivered: row.try_get("delivered")?,
        read: row.try_get("read")?,
        failed: row.try_get("failed")?,
        skipped: row.try_get("skipped")?,
        failed_after_sent: row.try_get("failed_after_sent")?,
    })
}

// ---------------------------------------------------------------------------------------
// The per-number limiter.
// ---------------------------------------------------------------------------------------

/// Send slots reserved from a number's limiter: `granted` slots `step` apart from `first`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlotBlock {
    /// The first slot; with nothing granted, when the number's next slot frees.
    pub first: DateTime<Utc>,
    pub step: std::time::Duration,
    pub granted: u32,
}

impl SlotBlock {
    /// The instant of slot `i` of the block.
    pub fn slot(&self, i: u32) -> DateTime<Utc> {
        let step = chrono::Duration::from_std(self.step * i).unwrap_or(chrono::Duration::zero());
        self.first + step
    }
}

/// Reserves `wanted` consecutive send slots of a number sending at `per_second` (times
/// its rate factor after a 130429: see [`slow_down`]), unless its next free slot is more
/// than `max_ahead` away (then none: `granted` 0). Virtual scheduling in one function call
/// (`reserve_send_slots`, V21): the row's `next_slot_at` moves past the block under its
/// lock, so the number's rate holds across every concurrent worker.
pub async fn reserve_slots(
    client: &impl GenericClient,
    phone_number: &PhoneNumberId,
    per_second: f64,
    wanted: u32,
    max_ahead: std::time::Duration,
) -> Result<SlotBlock, DbError> {
    let row = super::query_one_cached(
        client,
        "SELECT first_slot, step_ms, granted FROM reserve_send_slots($1, $2, $3, $4)",
        &[
            &phone_number.as_str(),
            &per_second,
            &i32::try_from(wanted).unwrap_or(i32::MAX),
            &(max_ahead.as_millis() as f64),
        ],
    )
    .await?;
    let step_ms: f64 = row.try_get("step_ms")?;
    Ok(SlotBlock {
        first: row.try_get("first_slot")?,
        step: std::time::Duration::from_secs_f64((step_ms / 1000.0).max(0.0)),
        granted: u32::try_from(row.try_get::<_, i32>("granted")?).unwrap_or(0),
    })
}

/// Meta answered 130429: the number's rate halves (from what it is now; it recovers
/// linearly over the next two minutes, `send_rate_factor` in V21) and its next slot moves
/// a second on; at most once per two seconds.
pub async fn slow_down(
    client: &impl GenericClient,
    phone_number: &PhoneNumberId,
) -> Result<(), DbError> {
    // Sends in flight together meet the same full window: one halving per two seconds,
    // not one per refused send.
    super::execute_cached(
        client,
        "UPDATE send_throttles SET
                 rate_factor = greatest(0.02,
                     send_rate_factor(rate_factor, slowed_at, clock_timestamp()) / 2),
                 slowed_at = clock_timestamp(),
                 slowed_until = clock_timestamp() + interval '60 seconds',
                 next_slot_at = greatest(next_slot_at, clock_timestamp()) + interval '1 second'
             WHERE phone_number_id = $1
               AND (slowed_at IS NULL OR slowed_at < clock_timestamp() - interval '2 seconds')",
        &[&phone_number.as_str()],
    )
    .await?;
    Ok(())
}

/// A number's messages-per-second cap.
pub async fn messages_per_second(
    client: &impl GenericClient,
    phone_number: &PhoneNumberId,
) -> Result<i32, DbError> {
    let row = client
        .query_one(
            "SELECT messages_per_second FROM phone_numbers WHERE id = $1",
            &[&phone_number.as_str()],
        )
        .await?;
    Ok(row.try_get("messages_per_second")?)
}

// ---------------------------------------------------------------------------------------
// Reads for the API.
// ---------------------------------------------------------------------------------------

/// A recipient as the API shows it.
#[derive(Debug, Clone)]
pub struct RecipientRow {
    pub recipient_id: CampaignRecipientId,
    pub contact_id: ContactId,
    pub phone: Option<String>,
    pub status: RecipientStatus,
    pub skip_reason: Option<SkipReason>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub variable_values: Value,
    pub template_send_id: Option<String>,
    pub queued_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub read_at: Option<DateTime<Utc>>,
}

/// Filters of the recipient list.
#[derive(Debug, Clone, Default)]
pub struct RecipientFilterQuery {
    pub status: Option<RecipientStatus>,
    pub skip_reason: Option<SkipReason>,
    pub error_code: Option<String>,
}

/// A campaign's recipients (the tenant's campaign only), by id, one keyset page.
pub async fn recipients(
    client: &impl GenericClient,
    user: &UserId,
    campaign: &CampaignId,
    filter: &RecipientFilterQuery,
    page: &PageRequest,
) -> Result<Vec<RecipientRow>, DbError> {
    let rows = client
        .query(
            "SELECT r.recipient_id, r.contact_id, r.phone, r.status, r.skip_reason, r.error_code,
                    r.error_message, r.variable_values, r.template_send_id, r.queued_at,
                    r.sent_at, r.delivered_at, r.read_at
             FROM campaign_recipients r JOIN campaigns c ON c.campaign_id = r.campaign_id
             WHERE r.campaign_id = $1 AND c.user_id = $2
               AND ($3::text IS NULL OR r.recipient_id > $3)
               AND ($4::text IS NULL OR r.status = $4)
               AND ($5::text IS NULL OR r.skip_reason = $5)
               AND ($6::text IS NULL OR r.error_code = $6)
             ORDER BY r.recipient_id LIMIT $7",
            &[
                &campaign.as_str(),
                &user.as_str(),
                &page.before,
                &filter.status.map(|s| s.as_str()),
                &filter.skip_reason.map(|s| s.as_str()),
                &filter.error_code,
                &page.fetch,
            ],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let reason: Option<String> = row.try_get("skip_reason")?;
            Ok(RecipientRow {
                recipient_id: CampaignRecipientId::from_trusted(row.try_get("recipient_id")?),
                contact_id: ContactId::from_trusted(row.try_get("contact_id")?),
                phone: row.try_get("phone")?,
                status: enum_column(row, "status")?,
                skip_reason: reason
                    .map(|r| r.parse().map_err(|e| corrupt("skip_reason", e)))
                    .transpose()?,
                error_code: row.try_get("error_code")?,
                error_message: row.try_get("error_message")?,
                variable_values: row.try_get("variable_values")?,
                template_send_id: row.try_get("template_send_id")?,
                queued_at: row.try_get("queued_at")?,
                sent_at: row.try_get("sent_at")?,
                delivered_at: row.try_get("delivered_at")?,
                read_at: row.try_get("read_at")?,
            })
        })
        .collect()
}

/// Breakdowns for `GET /campaigns/{id}/stats`.
#[derive(Debug, Clone, Default)]
pub struct Breakdown {
    pub by_status: BTreeMap<String, i64>,
    pub failed_by_code: BTreeMap<String, i64>,
    pub skipped_by_reason: BTreeMap<String, i64>,
    /// Recipients whose customer wrote after the send.
    pub replied: i64,
    /// Button clicks on this campaign's sends.
    pub clicked: i64,
    /// Sends per minute (UTC minute, count), oldest first.
    pub sent_per_minute: Vec<(DateTime<Utc>, i64)>,
}

/// Counts a campaign's recipients by status, failure code and skip reason, its replies,
/// clicks and sends per minute.
pub async fn breakdown(
    client: &impl GenericClient,
    campaign: &CampaignId,
) -> Result<Breakdown, DbError> {
    let mut out = Breakdown::default();
    for row in client
        .query(
            "SELECT status, skip_reason, error_code, count(*) AS n FROM campaign_recipients
             WHERE campaign_id = $1 GROUP BY status, skip_reason, error_code",
            &[&campaign.as_str()],
        )
        .await?
    {
        let status: String = row.try_get("status")?;
        let n: i64 = row.try_get("n")?;
        *out.by_status.entry(status.clone()).or_default() += n;
        if status == "FAILED" {
            let code: Option<String> = row.try_get("error_code")?;
            *out.failed_by_code
                .entry(code.unwrap_or_else(|| "unknown".to_owned()))
                .or_default() += n;
        }
        if let Some(reason) = row.try_get::<_, Option<String>>("skip_reason")? {
            *out.skipped_by_reason.entry(reason).or_default() += n;
        }
    }
    let row = client
        .query_one(
            "SELECT
                 (SELECT count(*) FROM campaign_recipients r
                    JOIN template_sends s ON s.send_id = r.template_send_id
                   WHERE r.campaign_id = $1 AND r.sent_at IS NOT NULL
                     AND EXISTS (SELECT 1 FROM messages m
                                  WHERE m.conversation_id = s.conversation_id
                                    AND m.author = 'customer' AND m.timestamp > r.sent_at)) AS replied,
                 (SELECT count(*) FROM button_clicks b
                    JOIN template_sends s ON s.send_id = b.template_send_id
                   WHERE s.campaign_id = $1) AS clicked",
            &[&campaign.as_str()],
        )
        .await?;
    out.replied = row.try_get("replied")?;
    out.clicked = row.try_get("clicked")?;
    for row in client
        .query(
            "SELECT date_trunc('minute', sent_at) AS minute, count(*) AS n
             FROM campaign_recipients WHERE campaign_id = $1 AND sent_at IS NOT NULL
             GROUP BY 1 ORDER BY 1",
            &[&campaign.as_str()],
        )
        .await?
    {
        out.sent_per_minute
            .push((row.try_get("minute")?, row.try_get("n")?));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// The sweep.
// ---------------------------------------------------------------------------------------

/// Claims older than this are sends whose worker died: their outcome is unknown.
pub const STALE_CLAIM_MINUTES: i32 = 15;
/// `QUEUED` recipients unclaimed for this long lost their job (the fan-out died between its
/// commit and the publish, or the job ran out of receives): they go back to `PENDING`. Well
/// above the time a big backlog takes to be received once.
pub const LOST_JOB_MINUTES: i32 = 60;
/// A recipient keeping a send slot (`not_before`) lost its job when the job has not come
/// back this long after the slot (it comes back 1.5 s before it). Its slot may be hours
/// ahead at a low rate: it is counted from the slot, not from the fan-out.
pub const LOST_SLOT_MINUTES: i32 = 5;

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepOutcome {
    /// Recipients whose send outcome is unknown, now `FAILED` (`outcome_unknown`).
    pub stale_claims_failed: u64,
    /// Recipients whose job was lost, now `PENDING` again.
    pub lost_jobs_requeued: u64,
    /// RUNNING campaigns with `PENDING` recipients due now: each needs a fan-out.
    pub due: Vec<(UserId, CampaignId)>,
    /// Campaigns that had nothing left and completed.
    pub completed: u64,
}

/// Heals what crashes leave behind and finds the campaigns with due recipients. At most
/// `limit` rows of each kind per call.
pub async fn sweep(client: &mut super::PooledClient, limit: i64) -> Result<SweepOutcome, DbError> {
    let mut outcome = SweepOutcome::default();
    let tx = client.transaction().await?;
    let stale = tx
        .query(
            "UPDATE campaign_recipients SET status = 'FAILED', error_code = 'outcome_unknown',
                 error_message = 'the worker stopped after claiming this send; it may or may not have gone out, so it is not sent again (POST /campaigns/{id}/retry-failed with include_unknown resends it)',
                 claimed_at = NULL
             WHERE recipient_id IN (SELECT recipient_id FROM campaign_recipients
                                     WHERE status = 'QUEUED'
                                       AND claimed_at < now() - make_interval(mins => $1)
                                     LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING recipient_id, campaign_id",
            &[&STALE_CLAIM_MINUTES, &limit],
        )
        .await?;
    for row in &stale {
        let recipient = CampaignRecipientId::from_trusted(row.try_get("recipient_id")?);
        let campaign = CampaignId::from_trusted(row.try_get("campaign_id")?);
        add_counts(
            &tx,
            &campaign,
            shard_of(recipient.as_str()),
            Counts {
                failed: 1,
                ..Counts::default()
            },
        )
        .await?;
    }
    outcome.stale_claims_failed = stale.len() as u64;
    outcome.lost_jobs_requeued = tx
        .execute(
            "UPDATE campaign_recipients SET status = 'PENDING', queued_at = NULL, not_before = NULL
             WHERE recipient_id IN (SELECT recipient_id FROM campaign_recipients
                                     WHERE status = 'QUEUED' AND claimed_at IS NULL
                                       AND CASE WHEN not_before IS NULL
                                           THEN queued_at < now() - make_interval(mins => $1)
                                           ELSE not_before < now() - make_interval(mins => $3)
                                           END
                                     LIMIT $2 FOR UPDATE SKIP LOCKED)",
            &[&LOST_JOB_MINUTES, &limit, &LOST_SLOT_MINUTES],
        )
        .await?;
    tx.commit().await?;
    for row in client
        .query(
            // Due recipients (deferrals, quiet hours, a resume), and a started campaign
            // whose start job was lost before it resolved anything.
            "SELECT c.user_id, c.campaign_id FROM campaigns c
             JOIN campaign_triggers t ON t.campaign_id = c.campaign_id
             WHERE c.status = 'RUNNING'
               AND (EXISTS (SELECT 1 FROM campaign_recipients r
                             WHERE r.campaign_id = c.campaign_id AND r.status = 'PENDING'
                               AND (r.not_before IS NULL OR r.not_before <= now()))
                    OR (c.recipients_resolved_at IS NULL AND t.trigger_type <> 'EVENT'
                        AND c.started_at < now() - interval '1 minute'))
             LIMIT $1",
            &[&limit],
        )
        .await?
    {
        outcome.due.push((
            super::user_column(&row, "user_id")?,
            CampaignId::from_trusted(row.try_get("campaign_id")?),
        ));
    }
    for row in client
        .query(
            "SELECT campaign_id FROM campaigns WHERE status = 'RUNNING' LIMIT $1",
            &[&limit],
        )
        .await?
    {
        let campaign = CampaignId::from_trusted(row.try_get("campaign_id")?);
        if complete_if_done(client, &campaign).await? {
            outcome.completed += 1;
        }
    }
    Ok(outcome)
}

/// Puts a campaign's retryable failures back to `PENDING` (never a recipient that was
/// sent: `sent_at` is set once Meta accepted it) and uncounts them; `codes` are the
/// retryable error codes. A COMPLETED campaign runs again. Returns how many.
pub async fn retry_failed(
    tx: &Transaction<'_>,
    user: &UserId,
    campaign: &CampaignId,
    codes: &[String],
) -> Result<u64, DbError> {
    let rows = tx
        .query(
            "UPDATE campaign_recipients r SET status = 'PENDING', error_code = NULL,
                 error_message = NULL, queued_at = NULL, not_before = NULL, template_send_id = NULL
             FROM campaigns c
             WHERE r.campaign_id = $1 AND c.campaign_id = r.campaign_id AND c.user_id = $2
               AND r.status = 'FAILED' AND r.sent_at IS NULL AND r.error_code = ANY($3)
             RETURNING r.recipient_id",
            &[&campaign.as_str(), &user.as_str(), &codes],
        )
        .await?;
    let mut by_shard: BTreeMap<i16, i32> = BTreeMap::new();
    for row in &rows {
        let id: String = row.try_get("recipient_id")?;
        *by_shard.entry(shard_of(&id)).or_default() -= 1;
    }
    for (shard, failed) in by_shard {
        add_counts(
            tx,
            campaign,
            shard,
            Counts {
                failed,
                ..Counts::default()
            },
        )
        .await?;
    }
    if !rows.is_empty() {
        tx.execute(
            "UPDATE campaigns SET status = 'RUNNING', completed_at = NULL
             WHERE campaign_id = $1 AND user_id = $2 AND status = 'COMPLETED'",
            &[&campaign.as_str(), &user.as_str()],
        )
        .await?;
    }
    Ok(rows.len() as u64)
}

// ---------------------------------------------------------------------------------------
// Event triggers.
// ---------------------------------------------------------------------------------------

/// The tenant's RUNNING EVENT campaigns listening to `event`.
pub async fn event_campaigns(
    client: &impl GenericClient,
    user: &UserId,
    event: TriggerEvent,
) -> Result<Vec<Campaign>, DbError> {
    client
        .query(
            &format!(
                "SELECT {CAMPAIGN_COLUMNS} FROM {CAMPAIGN_FROM}
                 WHERE c.user_id = $1 AND c.status = 'RUNNING' AND t.trigger_type = 'EVENT'
                   AND t.event_type = $2 AND t.is_active"
            ),
            &[&user.as_str(), &event.as_str()],
        )
        .await?
        .iter()
        .map(campaign_from_row)
        .collect()
}

/// What an event did to one EVENT campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventRecipient {
    /// The contact does not match the campaign's filter (or has no phone).
    NoMatch,
    /// The contact is already a recipient of this campaign: at most once per campaign.
    AlreadyRecipient,
    /// Recorded as skipped, with the reason.
    Skipped(SkipReason),
    /// A new recipient: `QUEUED` (publish its job now), or `PENDING` until `not_before`
    /// (the sweep sends it then).
    Added {
        recipient: CampaignRecipientId,
        queued: bool,
    },
}

/// Makes the contact behind an event a recipient of an EVENT campaign, at most once per
/// campaign (`(campaign_id, contact_id)` is unique), counting the trigger.
pub async fn add_event_recipient(
    tx: &Transaction<'_>,
    campaign: &Campaign,
    contact: &ContactId,
    options: ResolveOptions,
    not_before: Option<DateTime<Utc>>,
) -> Result<EventRecipient, DbError> {
    let filter = &campaign.recipient_filter;
    if !filter.contact_ids.is_empty() && !filter.contact_ids.contains(contact) {
        return Ok(EventRecipient::NoMatch);
    }
    let (tags, excluded, _) = filter_params(filter);
    let only: Vec<&str> = vec![contact.as_str()];
    let Some(candidate) = tx
        .query_opt(
            &format!("SELECT contact_id, phone, skip_reason FROM ({CANDIDATES}) x"),
            &[
                &campaign.user_id.as_str(),
                &tags,
                &excluded,
                &only,
                &options.marketing,
                &options.frequency_cap_hours,
            ],
        )
        .await?
    else {
        return Ok(EventRecipient::NoMatch);
    };
    let phone: String = candidate.try_get("phone")?;
    let reason: Option<String> = candidate.try_get("skip_reason")?;
    let queued = reason.is_none() && not_before.is_none_or(|at| at <= Utc::now());
    let status = match (&reason, queued) {
        (Some(_), _) => "SKIPPED",
        (None, true) => "QUEUED",
        (None, false) => "PENDING",
    };
    let recipient = CampaignRecipientId::generate();
    let inserted = tx
        .execute(
            "INSERT INTO campaign_recipients (recipient_id, campaign_id, contact_id, phone, status,
                 skip_reason, not_before, queued_at)
             VALUES ($1, $2, $3, $4, $5::text, $6, $7, CASE WHEN $5::text = 'QUEUED' THEN now() END)
             ON CONFLICT (campaign_id, contact_id) DO NOTHING",
            &[
                &recipient.as_str(),
                &campaign.campaign_id.as_str(),
                &contact.as_str(),
                &phone,
                &status,
                &reason,
                &not_before,
            ],
        )
        .await?;
    if inserted == 0 {
        return Ok(EventRecipient::AlreadyRecipient);
    }
    let skipped = i32::from(reason.is_some());
    tx.execute(
        "UPDATE campaigns SET total_recipients = total_recipients + 1,
             skipped_count = skipped_count + $2
         WHERE campaign_id = $1",
        &[&campaign.campaign_id.as_str(), &skipped],
    )
    .await?;
    if let Some(reason) = reason {
        add_counts(
            tx,
            &campaign.campaign_id,
            shard_of(recipient.as_str()),
            Counts {
                skipped: 1,
                ..Counts::default()
            },
        )
        .await?;
        let reason: SkipReason = reason.parse().map_err(|e| corrupt("skip_reason", e))?;
        return Ok(EventRecipient::Skipped(reason));
    }
    tx.execute(
        "UPDATE campaign_triggers SET trigger_count = trigger_count + 1, last_triggered_at = now()
         WHERE campaign_id = $1",
        &[&campaign.campaign_id.as_str()],
    )
    .await?;
    Ok(EventRecipient::Added { recipient, queued })
}
