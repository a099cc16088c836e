//! The `extraction-worker`: scores conversations as leads.
//!
//! - [`handle`] runs one [`ExtractionJob`]: it reads the conversation (tenant-scoped), does
//!   nothing when its latest extraction already covers every message (a redelivery, a
//!   duplicate request) or, for the new-messages trigger, when fewer than N customer
//!   messages are new; otherwise it asks OpenAI for a structured answer (strict JSON schema),
//!   checks it, asks again when it is invalid (at most `max_attempts` calls), computes the
//!   scores itself and stores the extraction as the conversation's latest in one
//!   transaction, together with the contact sync and the domain events.
//! - [`sweep`] runs on a schedule (EventBridge Scheduler in AWS, a timer in devstack): it asks
//!   for extractions of conversations with N new customer messages, and ends quiet periods
//!   (a final extraction and `CONVERSATION_ENDED`, once per quiet period).
//!
//! Its own function and queue rather than the reply worker's: extraction is not on the
//! customer's critical path, may take several model calls, and runs on a standard queue
//! (no FIFO group needed: the handler is idempotent on the message count and concurrent
//! jobs of a conversation are serialised by its row lock).

mod config;
mod transcript;

use std::time::Instant;

use shared::{
    db::{
        Pool,
        extractions::{self, ExtractionSubject, NewExtraction, Stored},
    },
    jobs::{
        ExtractionJob, ExtractionQueue, ExtractionTrigger, JobError, Lifter, LifterConfig,
        SqsQueue, lambda,
    },
    openai::{
        OpenAi, OpenAiError,
        extraction::{ExtractedLead, ExtractionError},
    },
};

pub use config::ExtractionConfig;
pub use transcript::render as render_transcript;

/// What the worker needs, built once per execution environment.
#[derive(Debug, Clone)]
pub struct ExtractionState {
    pub pool: Pool,
    pub openai: OpenAi,
    pub config: ExtractionConfig,
    /// Where the sweep publishes jobs.
    pub queue: ExtractionQueue,
    /// The queue jobs come from, when it is SQS (visibility backoff of failed jobs).
    pub retry_queue: Option<SqsQueue>,
    /// The batch lifter's deadline margin and backoff.
    pub lifter: LifterConfig,
}

/// What one job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The conversation does not exist (any more) or is another tenant's.
    NoConversation,
    /// The latest extraction already covers every message.
    UpToDate,
    /// Fewer new customer messages than the threshold (new-messages trigger only).
    BelowThreshold,
    /// Stored as the conversation's latest.
    Extracted {
        extraction_id: uuid::Uuid,
        /// The model calls (HTTP, and reading and checking the answers).
        model_time: std::time::Duration,
        /// Everything else: reads, transcript, scoring, the transaction.
        overhead: std::time::Duration,
    },
    /// Another job stored this message count (or a later one) first.
    Superseded,
}

/// Handles one extraction job.
#[tracing::instrument(skip_all, fields(tenant.id = %job.user_id(), conversation.id = %job.conversation_id(), trigger = job.trigger().as_str()))]
pub async fn handle(state: &ExtractionState, job: &ExtractionJob) -> Result<Outcome, JobError> {
    let started = Instant::now();
    let mut client = state.pool.get().await?;
    let Some(subject) = extractions::subject(&client, job.user_id(), job.conversation_id()).await?
    else {
        tracing::warn!("extraction job for an unknown conversation; dropping it");
        return Ok(Outcome::NoConversation);
    };
    let covered = subject.latest.as_ref().map_or(0, |l| l.message_count);
    if subject.message_count <= covered {
        tracing::info!(message_count = subject.message_count, "already extracted");
        return Ok(Outcome::UpToDate);
    }
    if job.trigger() == ExtractionTrigger::NewMessages
        && subject.new_customer_messages < state.config.new_messages
    {
        return Ok(Outcome::BelowThreshold);
    }
    let lines = extractions::transcript(
        &client,
        &subject.conversation_id,
        subject.message_count,
        state.config.transcript_messages,
    )
    .await?;
    let transcript = transcript::render(&lines, subject.customer_name.as_deref());

    let model_started = Instant::now();
    let lead = ask_model(state, &transcript).await?;
    let model_time = model_started.elapsed();

    let score = lead.levels.score(state.config.thresholds);
    let reasoning = serde_json::to_value(&lead.reasoning)
        .map_err(|e| JobError::Poison(format!("reasoning does not serialize: {e}")))?;
    let new = NewExtraction {
        user_id: &subject.user_id,
        conversation_id: &subject.conversation_id,
        customer_phone: &subject.customer_phone,
        message_count: subject.message_count,
        name: lead.name.as_ref().map(|n| n.as_str()),
        email: lead.email.as_ref().map(|e| e.as_str()),
        company: lead.company.as_ref().map(|c| c.as_str()),
        intent_level: lead.levels.intent,
        urgency_level: lead.levels.urgency,
        budget_constraint: lead.levels.budget,
        fit_alignment: lead.levels.fit,
        engagement_health: lead.levels.engagement,
        score,
        demo_book_datetime: lead.demo_book_datetime,
        reasoning,
        smart_notification: &lead.smart_notification,
        requirements: lead.requirements.as_deref(),
        custom_cta: lead.custom_cta.as_deref(),
        in_detail_summary: &lead.in_detail_summary,
    };
    let tx = client.transaction().await?;
    let outcome = match extractions::store(&tx, &new).await? {
        Stored::AlreadyCovered { latest } => {
            tracing::info!(
                latest.message_count = latest.message_count,
                "another job extracted these messages first"
            );
            return Ok(Outcome::Superseded);
        }
        Stored::Inserted {
            extraction_id,
            previous,
        } => {
            effects::after_extraction(&tx, &subject, extraction_id, &lead, score, previous).await?;
            extraction_id
        }
    };
    tx.commit().await?;
    let overhead = started.elapsed().saturating_sub(model_time);
    tracing::info!(
        extraction.id = %outcome,
        message_count = subject.message_count,
        total_score = score.total,
        lead_status = %score.status,
        model_ms = model_time.as_millis(),
        overhead_ms = overhead.as_millis(),
        "conversation extracted"
    );
    Ok(Outcome::Extracted {
        extraction_id: outcome,
        model_time,
        overhead,
    })
}

/// Asks the model, again when its answer is invalid, at most `max_attempts` times.
async fn ask_model(state: &ExtractionState, transcript: &str) -> Result<ExtractedLead, JobError> {
    let mut last_invalid = String::new();
    for attempt in 1..=state.config.max_attempts {
        match state.openai.extract(&state.config.model, transcript).await {
            Ok(lead) => return Ok(lead),
            Err(ExtractionError::Invalid(invalid)) => {
                tracing::warn!(attempt, reason = %invalid.0, "the model's extraction was invalid; asking again");
                last_invalid = invalid.0;
            }
            Err(ExtractionError::OpenAi(OpenAiError::Retryable(message))) => {
                return Err(JobError::retryable(format!("OpenAI: {message}")));
            }
            Err(ExtractionError::OpenAi(OpenAiError::Permanent(message))) => {
                // A request OpenAI refuses for good (an unknown model, a transcript over the
                // context) is kept for an operator in the DLQ rather than retried.
                return Err(JobError::Poison(format!("OpenAI refused: {message}")));
            }
        }
    }
    Err(JobError::retryable(format!(
        "the model's extraction was invalid {} times; last: {last_invalid}",
        state.config.max_attempts
    )))
}

mod effects {
    //! What an extraction changes besides its own row, in its transaction: the contact
    //! auto-sync and the domain events.

    use shared::{
        db::{
            DbError, Transaction, contacts,
            events::{self, DomainEvent},
            extractions::LatestExtraction,
        },
        domain::{ConversationId, CustomerIdentity, LeadScore, UserId},
        openai::extraction::ExtractedLead,
    };

    use super::ExtractionSubject;

    /// Upserts the customer's contact (filling only empty fields, linking this extraction)
    /// and records `NEW_EXTRACTION`, plus `LEAD_HOT` / `LEAD_WARM` when the lead enters that
    /// status (compared with the conversation's previous latest extraction).
    pub(super) async fn after_extraction(
        tx: &Transaction<'_>,
        subject: &ExtractionSubject,
        extraction_id: uuid::Uuid,
        lead: &ExtractedLead,
        score: LeadScore,
        previous: Option<LatestExtraction>,
    ) -> Result<(), DbError> {
        let user = UserId::parse(&subject.user_id).ok_or(DbError::Corrupt {
            column: "user_id",
            detail: "not a user id".to_owned(),
        })?;
        let conversation = ConversationId::from_trusted(subject.conversation_id.clone());
        let customer = CustomerIdentity::of_conversation(subject.platform, &subject.customer_phone);
        let extracted = contacts::ExtractedContact {
            name: lead.name.clone(),
            email: lead.email.clone(),
            company: lead.company.clone(),
        };
        let contact = contacts::sync_from_extraction(
            tx,
            &user,
            &customer,
            &extracted,
            extraction_id,
            &conversation,
        )
        .await?;
        let new = DomainEvent::new_extraction(
            extraction_id,
            &conversation,
            Some(&contact),
            Some(score.status),
            Some(score.total),
        );
        events::record(tx, &user, &new).await?;
        if let Some(entered) = DomainEvent::lead_status_entered(
            previous.and_then(|p| p.status),
            score.status,
            extraction_id,
            &conversation,
            Some(&contact),
            Some(score.total),
        ) {
            events::record(tx, &user, &entered).await?;
        }
        Ok(())
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Jobs published for conversations with N new customer messages.
    pub new_messages: usize,
    /// Quiet periods marked (each once).
    pub quiet_periods: usize,
    /// Final extractions asked for at the end of a quiet period (only where new messages
    /// are not extracted yet).
    pub quiet_extractions: usize,
}

/// The periodic sweep: asks for the extractions that are due and ends quiet periods.
#[tracing::instrument(skip_all)]
pub async fn sweep(state: &ExtractionState) -> Result<SweepReport, JobError> {
    let config = &state.config;
    let mut report = SweepReport::default();
    let client = state.pool.get().await?;

    // 1. N new customer messages since the last extraction.
    let retry_after =
        chrono::Duration::from_std(config.retry_after).unwrap_or(chrono::Duration::minutes(15));
    let active_within = config.quiet_chrono() + chrono::Duration::hours(24);
    let due = extractions::claim_due_for_new_messages(
        &client,
        config.new_messages,
        active_within,
        retry_after,
        config.sweep_batch,
    )
    .await?;
    for conversation in due {
        let job = ExtractionJob::new(
            &conversation.user_id,
            &conversation.conversation_id,
            ExtractionTrigger::NewMessages,
        );
        match state.queue.publish(&job).await {
            Ok(()) => report.new_messages += 1,
            Err(error) => {
                tracing::warn!(%error, conversation.id = %conversation.conversation_id, "publishing an extraction job failed; the next sweep asks again");
                extractions::release_request(&client, &conversation.conversation_id).await?;
            }
        }
    }

    // 2. Quiet periods that ended: the final extraction, once per quiet period.
    //    (CONVERSATION_ENDED is recorded by the events sweep, `shared::events`.)
    let quiet = config.quiet_chrono();
    let ended = extractions::quiet_unhandled(&client, quiet, config.sweep_batch).await?;
    for conversation in ended {
        let Some(subject) = extractions::subject(
            &client,
            &conversation.user_id,
            &conversation.conversation_id,
        )
        .await?
        else {
            continue;
        };
        let covered = subject.latest.as_ref().map_or(0, |l| l.message_count);
        if subject.message_count > covered {
            // Published before the mark: if the mark fails, the next sweep publishes again
            // (the job is idempotent); the other order could lose the final extraction.
            let job = ExtractionJob::new(
                &subject.user_id,
                &subject.conversation_id,
                ExtractionTrigger::Quiet,
            );
            if let Err(error) = state.queue.publish(&job).await {
                tracing::warn!(%error, conversation.id = %subject.conversation_id, "publishing the final extraction failed; the next sweep tries again");
                continue;
            }
            report.quiet_extractions += 1;
        }
        if extractions::mark_quiet_handled(&client, &subject.conversation_id, quiet).await? {
            report.quiet_periods += 1;
        }
    }
    tracing::info!(
        new_messages = report.new_messages,
        quiet_periods = report.quiet_periods,
        quiet_extractions = report.quiet_extractions,
        "sweep done"
    );
    Ok(report)
}

/// Runs one Lambda batch through the lifter and answers with the failed records only.
pub async fn handle_batch(
    state: &ExtractionState,
    event: aws_lambda_events::sqs::SqsEvent,
    deadline: Option<tokio::time::Instant>,
) -> aws_lambda_events::sqs::SqsBatchResponse {
    let lifter = Lifter::new(state.lifter.clone(), state.retry_queue.clone());
    lambda::run_batch(&lifter, event, deadline, |job: ExtractionJob| async move {
        handle(state, &job).await.map(|_| ())
    })
    .await
}

/// One Lambda invocation: an SQS batch (`Records`), or the scheduled sweep (any other
/// payload, e.g. the schedule's `{"sweep": {}}`).
pub async fn invoke(
    state: &ExtractionState,
    payload: serde_json::Value,
    deadline: Option<tokio::time::Instant>,
) -> Result<serde_json::Value, lambda_runtime::Error> {
    if payload.get("Records").is_some() {
        let event: aws_lambda_events::sqs::SqsEvent = serde_json::from_value(payload)?;
        let response = handle_batch(state, event, deadline).await;
        return Ok(serde_json::to_value(response)?);
    }
    let report = sweep(state)
        .await
        .map_err(|e| lambda_runtime::Error::from(e.to_string()))?;
    Ok(serde_json::json!({
        "new_messages": report.new_messages,
        "quiet_periods": report.quiet_periods,
        "quiet_extractions": report.quiet_extractions,
    }))
}
