//! The `campaign-start` function: one [`CampaignStartJob`] starts or continues a campaign.
//!
//! 1. A campaign still `SCHEDULED` (its schedule fired) moves to `RUNNING`, once
//!    (`started_at`); one in any status but `RUNNING` afterwards (cancelled, paused,
//!    completed, a schedule firing for a campaign that already ran) is left alone.
//! 2. Its recipients are resolved once, in one transaction, in bulk
//!    (`db::campaigns::resolve`): eligible ones `QUEUED`, the rest `SKIPPED` with their
//!    reason; `total_recipients` and `skipped_count` are set and the campaign is marked
//!    resolved. After the commit their send jobs are published in chunks with
//!    `SendMessageBatch` (ten per call, concurrent calls), then the campaign is marked
//!    fanned out. A redelivered job finds it resolved and writes nothing; if the first
//!    fan-out had not finished (the job died half-way), it publishes the unclaimed
//!    `QUEUED` recipients' jobs again (`db::campaigns::first_fan_out`).
//! 3. Due `PENDING` recipients (a resume, deferrals, quiet hours) are fanned out in chunks:
//!    each chunk is marked `QUEUED` and committed, then published. A chunk whose publish
//!    fails goes back to `PENDING` and the job is retried; a crash between the commit and
//!    the publish leaves `QUEUED` rows without a job, which the sweep finds
//!    (`LOST_JOB_MINUTES`, or `LOST_SLOT_MINUTES` after a kept send slot) and puts back.
//!    A duplicate job is harmless: the send worker claims a recipient once.
//! 4. A campaign with nothing left to send completes at once (zero eligible recipients
//!    included).
//!
//! Domain events (the events queue) feed EVENT campaigns: [`handle_event`].
//!
//! [`sweep`] runs on a schedule: it fails sends whose worker died after claiming them
//! (outcome unknown: never resent blindly), requeues lost jobs, fans out campaigns whose
//! deferred recipients are due (quiet hours, 131049), completes finished campaigns, and
//! applies the status webhooks parked before their sends were recorded
//! (`db::delivery::sweep_parked`).

mod events;

pub use events::{EventOutcome, handle_event};

use shared::{
    db::{
        Pool, PooledClient,
        campaigns::{self, ResolveOptions, Transition},
        templates,
    },
    domain::{
        CampaignId, CampaignRecipientId, CampaignStatus, TemplateCategory, UserId,
        campaign::DEFAULT_FREQUENCY_CAP_HOURS,
    },
    jobs::{
        CampaignStartJob, CampaignStartQueue, JobError, Lifter, LifterConfig, SendJob, SendQueue,
        SqsQueue, StartReason, lambda,
    },
};

/// Recipients published (and, for due `PENDING` ones, marked `QUEUED`) per chunk.
pub const FAN_OUT_CHUNK: i64 = 5_000;

/// What the function needs, built once per execution environment.
#[derive(Debug, Clone)]
pub struct CampaignStartState {
    pub pool: Pool,
    /// Where send jobs go.
    pub sends: SendQueue,
    /// Where the sweep publishes start jobs for due campaigns.
    pub starts: CampaignStartQueue,
    /// The queue jobs come from, when it is SQS (visibility backoff of failed jobs).
    pub retry_queue: Option<SqsQueue>,
    /// The events queue, when it is SQS (the same, for domain events).
    pub events_retry_queue: Option<SqsQueue>,
    pub lifter: LifterConfig,
}

/// What one job did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The campaign is not (any more) running: nothing was done.
    pub not_running: Option<CampaignStatus>,
    /// Recipients written by this job's resolution (`None`: resolved before).
    pub resolved: Option<campaigns::Resolution>,
    /// Send jobs published.
    pub published: usize,
    /// The campaign completed.
    pub completed: bool,
}

fn poison(what: &str) -> JobError {
    JobError::Poison(format!("campaign-start job with an invalid {what}"))
}

/// Handles one start job (see the module documentation).
#[tracing::instrument(skip_all, fields(tenant.id = %job.user_id(), campaign.id = %job.campaign_id(), reason = ?job.reason()))]
pub async fn handle(
    state: &CampaignStartState,
    job: &CampaignStartJob,
) -> Result<Outcome, JobError> {
    let user = UserId::parse(job.user_id()).ok_or_else(|| poison("user id"))?;
    let id = CampaignId::parse(job.campaign_id()).ok_or_else(|| poison("campaign id"))?;
    let mut client = state.pool.get().await?;
    let Some(mut campaign) = campaigns::get(&client, &user, &id).await? else {
        tracing::warn!("start job for an unknown campaign; dropping it");
        return Ok(Outcome::default());
    };
    // A schedule's job may be stale (a reschedule to a later time raced it): a SCHEDULED
    // campaign starts only once its time has come (EventBridge fires within a minute).
    let due = campaign
        .trigger
        .scheduled_at
        .is_some_and(|at| at <= chrono::Utc::now() + chrono::Duration::minutes(2));
    if campaign.status == CampaignStatus::Scheduled && !due {
        tracing::info!("schedule fired before the campaign's time (rescheduled); nothing to do");
        return Ok(Outcome {
            not_running: Some(campaign.status),
            ..Outcome::default()
        });
    }
    if campaign.status == CampaignStatus::Scheduled {
        if let Some(campaigns::Edit::Done(running)) =
            campaigns::transition(&client, &user, &id, Transition::Run, None).await?
        {
            campaign = running;
        }
    }
    if campaign.status != CampaignStatus::Running {
        tracing::info!(status = %campaign.status, "campaign is not running; nothing to do");
        return Ok(Outcome {
            not_running: Some(campaign.status),
            ..Outcome::default()
        });
    }
    let mut outcome = Outcome::default();
    // An EVENT campaign has no audience to resolve: each event adds its own contact.
    if campaign.recipients_resolved_at.is_none()
        && campaign.trigger.trigger_type != shared::domain::TriggerType::Event
    {
        let options = resolve_options(&client, &campaign).await?;
        let tx = client.transaction().await?;
        let resolved = campaigns::resolve(&tx, &campaign, options).await?;
        tx.commit().await?;
        if let Some((resolution, queued)) = resolved {
            tracing::info!(
                eligible = resolution.eligible,
                skipped = resolution.skipped.values().sum::<i64>(),
                "recipients resolved"
            );
            outcome.resolved = Some(resolution);
            outcome.published += publish(state, &client, &user, &id, &queued).await?;
            campaigns::mark_fanned_out(&client, &id).await?;
        }
    }
    if outcome.resolved.is_none() {
        // A first fan-out that died half-way (this job redelivered): its unclaimed jobs
        // again.
        let unfinished = campaigns::first_fan_out(&client, &id).await?;
        if !unfinished.is_empty() {
            tracing::warn!(
                recipients = unfinished.len(),
                "the first fan-out did not finish; publishing its unclaimed jobs again"
            );
            outcome.published += publish(state, &client, &user, &id, &unfinished).await?;
        }
    }
    loop {
        let tx = client.transaction().await?;
        let queued = campaigns::queue_due(&tx, &id, FAN_OUT_CHUNK).await?;
        tx.commit().await?;
        if queued.is_empty() {
            break;
        }
        outcome.published += publish(state, &client, &user, &id, &queued).await?;
    }
    // Every queued recipient has had its job published.
    campaigns::mark_fanned_out(&client, &id).await?;
    outcome.completed = campaigns::complete_if_done(&client, &id).await?;
    tracing::info!(
        published = outcome.published,
        completed = outcome.completed,
        "campaign fanned out"
    );
    Ok(outcome)
}

/// How the campaign's recipients are resolved: a MARKETING template honours marketing
/// opt-outs and the frequency cap.
async fn resolve_options(
    client: &PooledClient,
    campaign: &campaigns::Campaign,
) -> Result<ResolveOptions, JobError> {
    let template = templates::get(client, &campaign.user_id, &campaign.template_id).await?;
    Ok(ResolveOptions {
        marketing: template.is_some_and(|t| t.draft.category == TemplateCategory::Marketing),
        frequency_cap_hours: campaign
            .frequency_cap_hours
            .unwrap_or(DEFAULT_FREQUENCY_CAP_HOURS),
    })
}

/// Publishes the send jobs of `queued` recipients in chunks. What could not be published
/// goes back to `PENDING` (a later fan-out sends it) and the job is retried.
async fn publish(
    state: &CampaignStartState,
    client: &PooledClient,
    user: &UserId,
    campaign: &CampaignId,
    queued: &[CampaignRecipientId],
) -> Result<usize, JobError> {
    let mut published = 0;
    for chunk in queued.chunks(usize::try_from(FAN_OUT_CHUNK).unwrap_or(5_000)) {
        let jobs: Vec<SendJob> = chunk
            .iter()
            .map(|r| SendJob::new(user.as_str(), campaign.as_str(), r.as_str()))
            .collect();
        if let Err((done, error)) = state.sends.publish_all(&jobs).await {
            published += done;
            campaigns::unqueue(client, &queued[published.min(queued.len())..]).await?;
            return Err(JobError::retryable(format!(
                "send jobs not published: {error}"
            )));
        }
        published += jobs.len();
    }
    Ok(published)
}

/// Rows of each kind one sweep handles.
const SWEEP_LIMIT: i64 = 1_000;

/// The periodic sweep (see the module documentation): returns what it did.
pub async fn sweep(state: &CampaignStartState) -> Result<campaigns::SweepOutcome, JobError> {
    let mut client = state.pool.get().await?;
    let outcome = campaigns::sweep(&mut client, SWEEP_LIMIT).await?;
    // Statuses parked while their send was being recorded, and those nobody sent.
    let (parked_applied, parked_forgotten) =
        shared::db::delivery::sweep_parked(&mut client, SWEEP_LIMIT).await?;
    for (user, campaign) in &outcome.due {
        let job = CampaignStartJob::new(user.as_str(), campaign.as_str(), StartReason::Sweep);
        if let Err(error) = state.starts.publish(&job).await {
            tracing::warn!(%error, campaign.id = %campaign, "could not publish a sweep start job");
        }
    }
    tracing::info!(
        stale_claims_failed = outcome.stale_claims_failed,
        lost_jobs_requeued = outcome.lost_jobs_requeued,
        due = outcome.due.len(),
        completed = outcome.completed,
        parked_applied,
        parked_forgotten,
        "campaign sweep"
    );
    Ok(outcome)
}

/// Runs one Lambda batch of domain events (the events queue) through the lifter.
pub async fn handle_event_batch(
    state: &CampaignStartState,
    event: aws_lambda_events::sqs::SqsEvent,
    deadline: Option<tokio::time::Instant>,
) -> aws_lambda_events::sqs::SqsBatchResponse {
    let lifter = Lifter::new(state.lifter.clone(), state.events_retry_queue.clone());
    lambda::run_batch(
        &lifter,
        event,
        deadline,
        |job: shared::events::EventJob| async move { handle_event(state, &job).await.map(|_| ()) },
    )
    .await
}

/// Whether a Lambda batch came from the events queue (its records name their queue).
fn from_events_queue(event: &aws_lambda_events::sqs::SqsEvent) -> bool {
    event.records.first().is_some_and(|record| {
        record
            .event_source_arn
            .as_deref()
            .is_some_and(|arn| arn.ends_with("-events.fifo"))
    })
}

/// Runs one Lambda batch through the lifter and answers with the failed records only.
pub async fn handle_batch(
    state: &CampaignStartState,
    event: aws_lambda_events::sqs::SqsEvent,
    deadline: Option<tokio::time::Instant>,
) -> aws_lambda_events::sqs::SqsBatchResponse {
    let lifter = Lifter::new(state.lifter.clone(), state.retry_queue.clone());
    lambda::run_batch(
        &lifter,
        event,
        deadline,
        |job: CampaignStartJob| async move { handle(state, &job).await.map(|_| ()) },
    )
    .await
}

/// One Lambda invocation: an SQS batch (`Records`), or the scheduled sweep (any other
/// payload).
pub async fn invoke(
    state: &CampaignStartState,
    payload: serde_json::Value,
    deadline: Option<tokio::time::Instant>,
) -> Result<serde_json::Value, lambda_runtime::Error> {
    if payload.get("Records").is_some() {
        let event: aws_lambda_events::sqs::SqsEvent = serde_json::from_value(payload)?;
        let response = if from_events_queue(&event) {
            handle_event_batch(state, event, deadline).await
        } else {
            handle_batch(state, event, deadline).await
        };
        return Ok(serde_json::to_value(response)?);
    }
    let outcome = sweep(state)
        .await
        .map_err(|e| lambda_runtime::Error::from(e.to_string()))?;
    Ok(serde_json::json!({
        "stale_claims_failed": outcome.stale_claims_failed,
        "lost_jobs_requeued": outcome.lost_jobs_requeued,
        "due": outcome.due.len(),
        "completed": outcome.completed,
    }))
}
