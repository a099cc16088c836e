//! The `send-worker`: one [`SendJob`] sends one campaign recipient its template, at most
//! once.
//!
//! 1. **Claim** the recipient with one conditional UPDATE (`QUEUED` and unclaimed): a
//!    redelivered or duplicate job for a claimed or finished recipient does nothing.
//! 2. **Re-check** what may have changed since the fan-out: the campaign still `RUNNING`
//!    (else the recipient goes back to `PENDING` for the resume), the contact not opted out
//!    (`SKIPPED`), the template still `APPROVED` (else the campaign pauses with
//!    `last_error`), the campaign's quiet hours (back to `PENDING` until they end).
//! 3. **Values**: the campaign's mapping read for this contact, then the template's
//!    defaults and Meta's rules (`templates::payload`); a recipient left without a value is
//!    `FAILED` with the variable named, never sent with a hole.
//! 4. **Throughput**: a send slot from the number's shared limiter
//!    (`db::campaigns::reserve_slot`). A slot within `max_slot_wait` is waited for; a later
//!    one is kept on the recipient (`not_before`) and the job comes back then
//!    (visibility), so each job waits at most once. After the wait the campaign's status
//!    is read again: a pause or a cancel during it wins (no send after a cancel returned).
//! 5. **Send and record** through the one send path (`shared::outbound`), then record the
//!    recipient, its counters, and complete the campaign when nothing is left.
//!
//! Meta's errors, by code: 130429 slows the number down and retries later; 131056 (pair
//! rate) retries this recipient after six seconds; 131057 and 5xx retry with backoff;
//! 131049 defers the recipient 24 hours (within `deferral_window`, then `FAILED`); 131050
//! skips it and marks the contact's marketing opt-out; 132015/132016 pause every running
//! campaign of the template; anything else is `FAILED` with Meta's code and message.
//! **No answer** (a timeout after the request left): at most once, so `FAILED` with
//! `outcome_unknown`, never resent blindly (`retry-failed` with `include_unknown` may).

use std::time::Duration;

use chrono::Utc;
use shared::{
    crypto::SealingKey,
    db::{
        Pool, campaigns as db,
        campaigns::{Claim, Claimed, Finish, Release, Slot},
        templates::{self, NewSend},
        users,
    },
    domain::{
        AgentId, CampaignRecipientId, CampaignStatus, MessageId, Platform, RecipientStatus,
        SkipReason, TemplateSendId, TemplateSendStatus, TemplateStatus, UserId,
        campaign::{QuietHours, values_for_recipient},
    },
    jobs::{JobError, Lifter, LifterConfig, SendJob, SqsQueue, lambda},
    meta::graph::Graph,
    outbound::{Destination, Payload, SendOutcome, send_and_record},
    templates::payload::{rendered_body, resolve_values, send_content},
};

/// The worker's settings.
#[derive(Debug, Clone, Copy)]
pub struct SendConfig {
    /// The longest wait for a send slot inside one invocation; a later slot sends the job
    /// back to the queue until then.
    pub max_slot_wait: Duration,
    /// How long after a first 131049 a recipient is still retried (then `FAILED`).
    pub deferral_window: Duration,
    /// Per-number throughput limiting on (off only in benchmarks of the raw send path).
    pub throttle: bool,
}

impl Default for SendConfig {
    fn default() -> Self {
        Self {
            max_slot_wait: Duration::from_secs(2),
            deferral_window: Duration::from_secs(72 * 3600),
            throttle: true,
        }
    }
}

/// What the worker needs, built once per execution environment.
#[derive(Debug, Clone)]
pub struct SendState {
    pub pool: Pool,
    pub graph: Graph,
    pub sealing_key: SealingKey,
    pub config: SendConfig,
    /// The queue jobs come from, when it is SQS (visibility backoff of failed jobs).
    pub retry_queue: Option<SqsQueue>,
    pub lifter: LifterConfig,
}

/// What one job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not queued or already claimed: a duplicate or a redelivery.
    Nothing,
    Sent,
    Failed(String),
    Skipped(SkipReason),
    /// Back to `PENDING` (paused campaign, quiet hours, a template or channel problem, a
    /// deferral).
    Deferred,
}

fn poison(what: &str) -> JobError {
    JobError::Poison(format!("send job with an invalid {what}"))
}

/// Meta's 131049 comes back no sooner than this.
const MARKETING_LIMIT_RETRY: chrono::Duration = chrono::Duration::hours(24);
/// Meta's pair rate: one message per six seconds to one customer.
const PAIR_RATE_RETRY: Duration = Duration::from_secs(6);

/// Handles one send job (see the module documentation).
#[tracing::instrument(skip_all, fields(tenant.id = %job.user_id(), campaign.id = %job.campaign_id(), recipient.id = %job.recipient_id()))]
pub async fn handle(state: &SendState, job: &SendJob) -> Result<Outcome, JobError> {
    let user = UserId::parse(job.user_id()).ok_or_else(|| poison("user id"))?;
    let recipient =
        CampaignRecipientId::parse(job.recipient_id()).ok_or_else(|| poison("recipient id"))?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let claimed = match db::claim(&tx, &user, &recipient).await? {
        Claim::Nothing => return Ok(Outcome::Nothing),
        Claim::Claimed(claimed) => claimed,
    };
    tx.commit().await?;
    let outcome = send_claimed(state, &mut client, &user, &claimed).await;
    if !matches!(outcome, Ok(Outcome::Nothing) | Err(_)) {
        db::complete_if_done(&client, &claimed.campaign.campaign_id).await?;
    }
    outcome
}

fn release_to(back_to: RecipientStatus) -> Release {
    Release {
        back_to,
        not_before: None,
        deferred: false,
        clear_send: false,
    }
}

async fn finish(
    client: &mut shared::db::PooledClient,
    claimed: &Claimed,
    finish: Finish<'_>,
) -> Result<(), JobError> {
    let tx = client.transaction().await?;
    db::finish(
        &tx,
        &claimed.campaign.campaign_id,
        &claimed.recipient_id,
        finish,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn send_claimed(
    state: &SendState,
    client: &mut shared::db::PooledClient,
    user: &UserId,
    claimed: &Claimed,
) -> Result<Outcome, JobError> {
    let campaign = &claimed.campaign;
    let recipient = &claimed.recipient_id;
    if campaign.status == CampaignStatus::Cancelled {
        finish(client, claimed, Finish::Skipped(SkipReason::Cancelled)).await?;
        return Ok(Outcome::Skipped(SkipReason::Cancelled));
    }
    if campaign.status != CampaignStatus::Running {
        db::release(&*client, recipient, release_to(RecipientStatus::Pending)).await?;
        return Ok(Outcome::Deferred);
    }
    if claimed.opted_out {
        finish(client, claimed, Finish::Skipped(SkipReason::OptedOut)).await?;
        return Ok(Outcome::Skipped(SkipReason::OptedOut));
    }
    let template = templates::get(&*client, user, &campaign.template_id).await?;
    let Some(template) = template.filter(|t| t.status == TemplateStatus::Approved) else {
        let reason = "the template is no longer APPROVED: the campaign paused";
        db::pause_for_template(&*client, &campaign.template_id, reason).await?;
        db::release(&*client, recipient, release_to(RecipientStatus::Pending)).await?;
        return Ok(Outcome::Deferred);
    };
    if let Some((start, end)) = campaign.quiet_hours {
        let zone = match campaign.time_zone.as_deref() {
            Some(name) => shared::domain::TenantTimeZone::parse(name).unwrap_or_default(),
            None => users::time_zone(&*client, user).await?,
        };
        let resumes = QuietHours::new(start, end)
            .ok()
            .and_then(|quiet| quiet.resumes_at(Utc::now(), zone));
        if let Some(at) = resumes {
            let release = Release {
                not_before: Some(at),
                ..release_to(RecipientStatus::Pending)
            };
            db::release(&*client, recipient, release).await?;
            return Ok(Outcome::Deferred);
        }
    }

    let given = values_for_recipient(&campaign.variable_values, &claimed.fields);
    let values = match resolve_values(&template.draft.content, &given) {
        Ok(values) => values,
        Err(violations) => {
            let message = violations
                .iter()
                .map(|v| format!("{} {}", v.field, v.message))
                .collect::<Vec<_>>()
                .join("; ");
            finish(
                client,
                claimed,
                Finish::Failed {
                    code: Some("missing_value"),
                    message: &message,
                },
            )
            .await?;
            return Ok(Outcome::Failed(message));
        }
    };
    let content = match send_content(
        template.template_id.as_str(),
        &template.draft,
        &values,
        None,
    ) {
        Ok(content) => content,
        Err(violations) => {
            let message = violations
                .iter()
                .map(|v| format!("{} {}", v.field, v.message))
                .collect::<Vec<_>>()
                .join("; ");
            finish(
                client,
                claimed,
                Finish::Failed {
                    code: Some("invalid_template"),
                    message: &message,
                },
            )
            .await?;
            return Ok(Outcome::Failed(message));
        }
    };
    let channel = templates::channel(&*client, user, &campaign.phone_number_id).await?;
    let agent = templates::channel_agent(&*client, user, &campaign.phone_number_id).await?;
    let (Some(channel), Some(agent)) = (channel, agent) else {
        let reason = "the campaign's channel has no agent: link one, then resume";
        db::transition(
            &*client,
            user,
            &campaign.campaign_id,
            db::Transition::Pause,
            Some(reason),
        )
        .await?;
        db::release(&*client, recipient, release_to(RecipientStatus::Pending)).await?;
        return Ok(Outcome::Deferred);
    };

    if state.config.throttle {
        if let Some(wait) = wait_for_slot(state, client, claimed).await? {
            return Err(wait);
        }
        // The slot may have been a wait: a pause or cancel during it wins.
        let now = db::get(&*client, user, &campaign.campaign_id).await?;
        match now.map(|c| c.status) {
            Some(CampaignStatus::Running) => {}
            Some(CampaignStatus::Cancelled) | None => {
                finish(client, claimed, Finish::Skipped(SkipReason::Cancelled)).await?;
                return Ok(Outcome::Skipped(SkipReason::Cancelled));
            }
            Some(_) => {
                db::release(&*client, recipient, release_to(RecipientStatus::Pending)).await?;
                return Ok(Outcome::Deferred);
            }
        }
    }

    let (send_id, message_id) =
        match begin(client, user, claimed, &template, &agent, &values).await? {
            Some(begun) => begun,
            None => {
                finish(
                    client,
                    claimed,
                    Finish::Failed {
                        code: Some("no_conversation"),
                        message: "the customer's conversation could not be opened",
                    },
                )
                .await?;
                return Ok(Outcome::Failed("no conversation".to_owned()));
            }
        };

    let destination = Destination {
        platform: Platform::WhatsApp,
        user_id: user,
        channel_key: &channel.meta_phone_number_id,
        sealed_access_token: channel.sealed_access_token.as_deref(),
        instagram_api: None,
        customer: &claimed.phone,
    };
    let sent = send_and_record(
        client,
        &state.graph,
        &state.sealing_key,
        destination,
        &message_id,
        Payload::WhatsApp(&content),
    )
    .await?;
    record(state, client, user, claimed, &send_id, sent).await
}

/// Waits for a send slot, or sends the job back until its slot (`Some(error)`).
async fn wait_for_slot(
    state: &SendState,
    client: &mut shared::db::PooledClient,
    claimed: &Claimed,
) -> Result<Option<JobError>, JobError> {
    let campaign = &claimed.campaign;
    let now = Utc::now();
    let slot = match claimed.not_before {
        // A slot reserved on an earlier receive.
        Some(at) if at > now - chrono::Duration::minutes(10) => at,
        _ => {
            let cap = db::messages_per_second(&*client, &campaign.phone_number_id).await?;
            let rate = campaign.send_rate_per_second.map_or(cap, |r| r.min(cap));
            match db::reserve_slot(&*client, &campaign.phone_number_id, rate, 6 * 3600 * 1000)
                .await?
            {
                Slot::At(at) => at,
                Slot::Busy(free_at) => free_at,
            }
        }
    };
    let wait = (slot - Utc::now()).to_std().unwrap_or_default();
    if wait <= state.config.max_slot_wait {
        tokio::time::sleep(wait).await;
        return Ok(None);
    }
    let release = Release {
        not_before: Some(slot),
        ..release_to(RecipientStatus::Queued)
    };
    db::release(&*client, &claimed.recipient_id, release).await?;
    Ok(Some(JobError::retry_after(
        "waiting for the number's send slot",
        wait,
    )))
}

/// Writes the send (conversation, agent message, `template_sends` row) or finds the one an
/// earlier attempt left pending.
async fn begin(
    client: &mut shared::db::PooledClient,
    user: &UserId,
    claimed: &Claimed,
    template: &templates::Template,
    agent: &AgentId,
    values: &shared::templates::payload::ResolvedValues,
) -> Result<Option<(TemplateSendId, MessageId)>, JobError> {
    if let Some(existing) = &claimed.template_send_id {
        let send_id = TemplateSendId::from_trusted(existing.clone());
        if let Some(send) = templates::send(&*client, &send_id).await? {
            if let Some(message) = send.message_id {
                return Ok(Some((send_id, MessageId::from_trusted(message))));
            }
        }
    }
    let recorded = serde_json::to_value(&values.0).unwrap_or_default();
    let text = rendered_body(&template.draft, values);
    let tx = client.transaction().await?;
    let new = NewSend {
        template,
        agent_id: agent,
        customer: &claimed.phone,
        text: &text,
        variable_values: &recorded,
        campaign_id: Some(claimed.campaign.campaign_id.as_str()),
        idempotency_key: None,
    };
    let Some(begun) = templates::begin_send(&tx, user, new).await? else {
        return Ok(None);
    };
    db::link_send(
        &tx,
        &claimed.recipient_id,
        begun.send_id.as_str(),
        &recorded,
    )
    .await?;
    tx.commit().await?;
    Ok(Some((begun.send_id, begun.message_id)))
}

/// Records how the send ended (see the module documentation for each of Meta's codes).
async fn record(
    state: &SendState,
    client: &mut shared::db::PooledClient,
    user: &UserId,
    claimed: &Claimed,
    send_id: &TemplateSendId,
    sent: SendOutcome,
) -> Result<Outcome, JobError> {
    let campaign = &claimed.campaign;
    let recipient = &claimed.recipient_id;
    match sent {
        SendOutcome::Sent {
            platform_message_id,
            ..
        } => {
            let tx = client.transaction().await?;
            templates::finish_send(
                &tx,
                send_id,
                TemplateSendStatus::Sent,
                Some(&platform_message_id),
                None,
                None,
            )
            .await?;
            db::finish(&tx, &campaign.campaign_id, recipient, Finish::Sent).await?;
            tx.commit().await?;
            Ok(Outcome::Sent)
        }
        SendOutcome::AlreadyFinished { .. } => {
            // An earlier attempt sent and recorded the message, then died before this row.
            finish(client, claimed, Finish::Sent).await?;
            Ok(Outcome::Sent)
        }
        SendOutcome::Missing => {
            let message = "the send's message is missing";
            finish(
                client,
                claimed,
                Finish::Failed {
                    code: Some("missing_message"),
                    message,
                },
            )
            .await?;
            Ok(Outcome::Failed(message.to_owned()))
        }
        SendOutcome::Retryable {
            http_status: None,
            reason,
            ..
        } => {
            // No answer: Meta may have sent it. At most once.
            let message = format!("no answer from Meta ({reason}); not resent");
            templates::finish_send(
                &*client,
                send_id,
                TemplateSendStatus::Failed,
                None,
                Some("outcome_unknown"),
                Some(&message),
            )
            .await?;
            finish(
                client,
                claimed,
                Finish::Failed {
                    code: Some("outcome_unknown"),
                    message: &message,
                },
            )
            .await?;
            Ok(Outcome::Failed(message))
        }
        SendOutcome::Retryable { code, reason, .. } => {
            let delay = match code {
                Some(130_429) => {
                    db::slow_down(&*client, &campaign.phone_number_id).await?;
                    None
                }
                Some(131_056) => Some(PAIR_RATE_RETRY),
                _ => None,
            };
            db::release(&*client, recipient, release_to(RecipientStatus::Queued)).await?;
            let reason = format!("Meta: {reason}");
            Err(match delay {
                Some(delay) => JobError::retry_after(reason, delay),
                None => JobError::retryable(reason),
            })
        }
        SendOutcome::Failed { code, reason } => {
            let code_text = code.map(|c| c.to_string());
            templates::finish_send(
                &*client,
                send_id,
                TemplateSendStatus::Failed,
                None,
                code_text.as_deref(),
                Some(&reason),
            )
            .await?;
            match code {
                Some(131_049) => {
                    let first = claimed.first_deferred_at.unwrap_or_else(Utc::now);
                    let window = chrono::Duration::from_std(state.config.deferral_window)
                        .unwrap_or(chrono::Duration::hours(72));
                    let next = Utc::now() + MARKETING_LIMIT_RETRY;
                    if next <= first + window {
                        let release = Release {
                            back_to: RecipientStatus::Pending,
                            not_before: Some(next),
                            deferred: true,
                            clear_send: true,
                        };
                        db::release(&*client, recipient, release).await?;
                        return Ok(Outcome::Deferred);
                    }
                }
                Some(131_050) => {
                    db::mark_marketing_opt_out(&*client, user, &claimed.contact_id).await?;
                    finish(
                        client,
                        claimed,
                        Finish::Skipped(SkipReason::MarketingOptedOut),
                    )
                    .await?;
                    return Ok(Outcome::Skipped(SkipReason::MarketingOptedOut));
                }
                Some(code @ (132_015 | 132_016)) => {
                    let (status, meta) = if code == 132_015 {
                        (TemplateStatus::Paused, "PAUSED")
                    } else {
                        (TemplateStatus::Disabled, "DISABLED")
                    };
                    templates::set_status(&*client, &campaign.template_id, status, meta).await?;
                    let why = format!("Meta {code}: the template is {meta}: {reason}");
                    db::pause_for_template(&*client, &campaign.template_id, &why).await?;
                    let release = Release {
                        clear_send: true,
                        ..release_to(RecipientStatus::Pending)
                    };
                    db::release(&*client, recipient, release).await?;
                    return Ok(Outcome::Deferred);
                }
                _ => {}
            }
            finish(
                client,
                claimed,
                Finish::Failed {
                    code: code_text.as_deref(),
                    message: &reason,
                },
            )
            .await?;
            Ok(Outcome::Failed(reason))
        }
    }
}

/// Runs one Lambda batch through the lifter and answers with the failed records only.
pub async fn handle_batch(
    state: &SendState,
    event: aws_lambda_events::sqs::SqsEvent,
    deadline: Option<tokio::time::Instant>,
) -> aws_lambda_events::sqs::SqsBatchResponse {
    let lifter = Lifter::new(state.lifter.clone(), state.retry_queue.clone());
    lambda::run_batch(&lifter, event, deadline, |job: SendJob| async move {
        handle(state, &job).await.map(|_| ())
    })
    .await
}
