//! The `send-worker`: each [`SendJob`] sends one campaign recipient its template, at most
//! once. A batch of jobs (an SQS batch) is worked together, so its database work is a
//! handful of statements whatever its size, and its Meta calls go out concurrently.
//!
//! 1. **Claim** the batch's recipients in one conditional UPDATE (`QUEUED` and
//!    unclaimed): a redelivered or duplicate job for a claimed or finished recipient does
//!    nothing.
//! 2. **Re-check**, per campaign of the batch, what may have changed since the fan-out:
//!    the campaign still `RUNNING` (else its recipients go back to `PENDING` for the
//!    resume; `CANCELLED`: skipped), each contact not opted out (`SKIPPED`), the template
//!    still `APPROVED` and the channel's agent linked (else the campaign pauses with
//!    `last_error`), the campaign's quiet hours (back to `PENDING` until they end). The
//!    template, channel, agent, cap and time zone come from a short-lived per-campaign
//!    cache (`context`); the campaign's status is read fresh for every batch.
//! 3. **Values**: the campaign's mapping read for each contact, then the template's
//!    defaults and Meta's rules (`templates::payload`); a recipient left without a value is
//!    `FAILED` with the variable named, never sent with a hole.
//! 4. **Throughput**: the batch's send slots from the number's shared limiter in one call
//!    (`db::campaigns::reserve_slots`), at 96 % of the number's cap (Meta counts on its
//!    side of the network: the margin absorbs our jitter). Slots within `max_slot_wait`
//!    (and any close behind them) are sent in this invocation, each `SEND_LEAD` after its
//!    slot: the batch wakes at its first slot, writes, then sends on time; a later slot
//!    is kept on the recipient (`not_before`) and its job comes back before it
//!    (visibility), so each job waits at most once (a slot missed by more than `LATE_SLOT`
//!    is given up for a new one). After waiting for the first slot the campaign's status
//!    is read again: a pause or a cancel during the wait wins. Meta's 130429 halves the
//!    number's rate, which then recovers over two minutes (`db::campaigns::slow_down`).
//! 5. **Send and record**: the batch's conversations, agent messages and `template_sends`
//!    rows are written in bulk (`templates::begin_sends`), then, in one transaction, the
//!    messages are sent through the one send path (`shared::outbound::send_many`) and the
//!    accepted ones recorded (message, `template_sends`, recipient, counters, contact)
//!    before it commits. The campaign completes when nothing is left.
//!
//! Meta's errors, by code: 130429 slows the number down and retries two seconds later;
//! 131056 (pair rate) retries this recipient after six seconds (both, like a slot wait,
//! are `JobError::Throttled`: turns to wait, which do not use up the job's receives);
//! 131057 and 5xx retry with backoff;
//! 131049 defers the recipient 24 hours (within `deferral_window`, then `FAILED`); 131050
//! skips it and marks the contact's marketing opt-out; 132015/132016 pause every running
//! campaign of the template; anything else is `FAILED` with Meta's code and message.
//! **No answer** (a timeout after the request left): at most once, so `FAILED` with
//! `outcome_unknown`, never resent blindly (`retry-failed` with `include_unknown` may).

mod context;

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use serde_json::Value;
use shared::{
    crypto::SealingKey,
    db::{
        PooledClient, campaigns as db,
        campaigns::{Campaign, Claimed, Finish, Release},
        templates::{self, SendBatch, SendItem},
    },
    domain::{
        CampaignId, CampaignRecipientId, CampaignStatus, MessageId, Platform, RecipientStatus,
        SkipReason, TemplateSendId, TemplateSendStatus, TemplateStatus, UserId,
        campaign::{QuietHours, values_for_recipient},
    },
    jobs::{JobError, Lifter, LifterConfig, SendJob, SqsQueue, lambda},
    meta::graph::{Graph, MessageContent},
    outbound::{Destination, Outgoing, Payload, SendOutcome, send_many},
    templates::payload::{rendered_body, resolve_values, send_content},
};
use tracing::Instrument;

pub use context::{CONTEXT_TTL, Contexts};

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
    pub pool: shared::db::Pool,
    pub graph: Graph,
    pub sealing_key: SealingKey,
    pub config: SendConfig,
    /// The queue jobs come from, when it is SQS (visibility backoff of failed jobs).
    pub retry_queue: Option<SqsQueue>,
    pub lifter: LifterConfig,
    /// Recent campaigns' templates, channels and agents (see `context`).
    pub contexts: Arc<Contexts>,
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

type JobResult = Result<Outcome, JobError>;

fn poison(what: &str) -> JobError {
    JobError::Poison(format!("send job with an invalid {what}"))
}

/// Meta's 131049 comes back no sooner than this.
const MARKETING_LIMIT_RETRY: chrono::Duration = chrono::Duration::hours(24);
/// Meta's pair rate: one message per six seconds to one customer.
const PAIR_RATE_RETRY: Duration = Duration::from_secs(6);
/// After Meta's 130429 the job takes a new slot at the number's halved rate this much later
/// (the rate halves at most once per 2 s).
const THROUGHPUT_RETRY: Duration = Duration::from_secs(2);
/// The share of a number's cap the worker uses (Meta counts arrivals; our sends leave
/// with a few milliseconds of jitter).
const CAP_HEADROOM: f64 = 0.96;
/// How far ahead a number's slots are reserved at most (a deep backlog at a low rate).
const MAX_RESERVE_AHEAD: Duration = Duration::from_secs(6 * 3600);
/// A slot kept on a recipient that passed longer ago than this is given up (its job came
/// back late, and the slots since are other sends': sending now would burst past the
/// number's rate): a new one is reserved. Within it the send goes at once.
const LATE_SLOT: chrono::Duration = chrono::Duration::milliseconds(10);

/// Every send leaves this long after its slot (all of them: the number's spacing holds),
/// so a batch writes its rows between its first slot and its first send instead of
/// sending its first slots late, in a burst (measured: the first batches' writes took up
/// to 160 ms, and their late sends met the next second's on-time ones: 130429).
const SEND_LEAD: Duration = Duration::from_millis(200);
/// A job sent back to the queue for a later slot becomes visible when its batch ends
/// (`SEND_LEAD` after the batch's last slot) and needs this long to be received and
/// worked before its slot; a slot closer than that is sent in the batch instead.
const RETURN_MARGIN: Duration = Duration::from_millis(500);

/// Handles one send job: a batch of one.
pub async fn handle(state: &SendState, job: &SendJob) -> JobResult {
    handle_many(state, std::slice::from_ref(job))
        .await
        .pop()
        .unwrap_or(Ok(Outcome::Nothing))
}

/// Handles a batch of send jobs (see the module documentation); the answer is in `jobs`
/// order. A database failure fails the jobs it left undecided (retryable).
#[tracing::instrument(skip_all, fields(jobs = jobs.len()))]
pub async fn handle_many(state: &SendState, jobs: &[SendJob]) -> Vec<JobResult> {
    let mut results: Vec<Option<JobResult>> = jobs.iter().map(|_| None).collect();
    if let Err(error) = run(state, jobs, &mut results).await {
        tracing::warn!(%error, "send batch stopped by an error");
        let reason = error.to_string();
        for result in results.iter_mut().filter(|r| r.is_none()) {
            *result = Some(Err(JobError::retryable(reason.clone())));
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(Ok(Outcome::Nothing)))
        .collect()
}

/// Runs one Lambda batch together and answers with the failed records only.
pub async fn handle_batch(
    state: &SendState,
    event: aws_lambda_events::sqs::SqsEvent,
    deadline: Option<tokio::time::Instant>,
) -> aws_lambda_events::sqs::SqsBatchResponse {
    let lifter = Lifter::new(state.lifter.clone(), state.retry_queue.clone());
    lambda::run_batch_together(&lifter, event, deadline, |jobs| run_jobs(state, jobs)).await
}

/// A batch's jobs through [`handle_many`], as the lifter wants their results.
pub async fn run_jobs(state: &SendState, jobs: Vec<SendJob>) -> Vec<Result<(), JobError>> {
    handle_many(state, &jobs)
        .await
        .into_iter()
        .map(|r| r.map(|_| ()))
        .collect()
}

/// A claimed recipient and the index of its job.
struct Member {
    index: usize,
    claimed: Claimed,
}

async fn run(
    state: &SendState,
    jobs: &[SendJob],
    results: &mut [Option<JobResult>],
) -> Result<(), JobError> {
    let mut wanted = Vec::with_capacity(jobs.len());
    for (index, job) in jobs.iter().enumerate() {
        match (
            UserId::parse(job.user_id()),
            CampaignRecipientId::parse(job.recipient_id()),
        ) {
            (Some(user), Some(recipient)) => wanted.push((index, user, recipient)),
            (None, _) => results[index] = Some(Err(poison("user id"))),
            (_, None) => results[index] = Some(Err(poison("recipient id"))),
        }
    }
    let mut client = state.pool.get().await?;
    let pairs: Vec<_> = wanted.iter().map(|(_, u, r)| (u, r)).collect();
    let claimed = db::claim_many(&client, &pairs).await?;
    // By campaign (a batch is mostly one campaign's), in the batch's order.
    let mut groups: Vec<((UserId, CampaignId), Vec<Member>)> = Vec::new();
    for claimed in claimed {
        let Some(index) = wanted
            .iter()
            .find(|(_, u, r)| *r == claimed.recipient_id && *u == claimed.user_id)
            .map(|(i, _, _)| *i)
        else {
            continue;
        };
        let key = (claimed.user_id.clone(), claimed.campaign_id.clone());
        let member = Member { index, claimed };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(member),
            None => groups.push((key, vec![member])),
        }
    }
    for ((user, campaign_id), members) in groups {
        let span = tracing::info_span!("campaign", tenant.id = %user, campaign.id = %campaign_id);
        let outcomes = send_group(state, &mut client, &user, &campaign_id, members)
            .instrument(span)
            .await?;
        let progressed = outcomes
            .iter()
            .any(|(_, r)| !matches!(r, Ok(Outcome::Nothing) | Err(_)));
        for (index, result) in outcomes {
            results[index] = Some(result);
        }
        if progressed {
            db::complete_if_done(&client, &campaign_id).await?;
        }
    }
    // A job left without a result was not claimed: `handle_many` answers it `Nothing`.
    Ok(())
}

/// What a recipient's send needs, computed before any write.
struct Prepared {
    /// The resolved values, as stored on the recipient and the send.
    recorded: Value,
    text: String,
    content: MessageContent,
}

/// A recipient ready to go, and when.
struct Ready {
    member: Member,
    prepared: Prepared,
    not_before: Option<tokio::time::Instant>,
}

/// Sends one campaign's claimed recipients of the batch.
async fn send_group(
    state: &SendState,
    client: &mut PooledClient,
    user: &UserId,
    campaign_id: &CampaignId,
    members: Vec<Member>,
) -> Result<Vec<(usize, JobResult)>, JobError> {
    let mut out = Vec::with_capacity(members.len());
    let campaign = db::get(&*client, user, campaign_id).await?;
    let status = campaign.as_ref().map(|c| c.status);
    let (Some(campaign), Some(CampaignStatus::Running)) = (campaign, status) else {
        hold(client, status, members, &mut out).await?;
        return Ok(out);
    };
    let context = match state.contexts.get(&*client, &campaign).await? {
        Ok(context) => context,
        Err(missing) => {
            let reason = match missing {
                context::Missing::Template => {
                    let reason = "the template is no longer APPROVED: the campaign paused";
                    db::pause_for_template(&*client, &campaign.template_id, reason).await?;
                    reason
                }
                context::Missing::ChannelOrAgent => {
                    let reason = "the campaign's channel has no agent: link one, then resume";
                    db::transition(
                        &*client,
                        user,
                        campaign_id,
                        db::Transition::Pause,
                        Some(reason),
                    )
                    .await?;
                    reason
                }
            };
            tracing::warn!(reason, "campaign paused by the send worker");
            hold(client, Some(CampaignStatus::Paused), members, &mut out).await?;
            return Ok(out);
        }
    };
    if let Some((start, end)) = campaign.quiet_hours {
        let resumes = QuietHours::new(start, end)
            .ok()
            .and_then(|quiet| quiet.resumes_at(Utc::now(), context.zone));
        if let Some(at) = resumes {
            for member in members {
                let release = Release {
                    not_before: Some(at),
                    ..release_to(RecipientStatus::Pending)
                };
                db::release(&*client, &member.claimed.recipient_id, release).await?;
                out.push((member.index, Ok(Outcome::Deferred)));
            }
            return Ok(out);
        }
    }

    let mut ready = Vec::with_capacity(members.len());
    for member in members {
        if member.claimed.opted_out {
            let reason = SkipReason::OptedOut;
            finish(client, &member.claimed, Finish::Skipped(reason)).await?;
            out.push((member.index, Ok(Outcome::Skipped(reason))));
            continue;
        }
        match prepare(&campaign, &context, &member.claimed) {
            Ok(prepared) => ready.push(Ready {
                member,
                prepared,
                not_before: None,
            }),
            Err((code, message)) => {
                let failed = Finish::Failed {
                    code: Some(code),
                    message: &message,
                };
                finish(client, &member.claimed, failed).await?;
                out.push((member.index, Ok(Outcome::Failed(message))));
            }
        }
    }
    if ready.is_empty() {
        return Ok(out);
    }
    if state.config.throttle {
        ready = schedule(state, client, &campaign, &context, ready, &mut out).await?;
        // Wake at the first slot and write; the sends leave `SEND_LEAD` after their slots.
        let first = ready.iter().filter_map(|r| r.not_before).min();
        if let Some(first) = first {
            tokio::time::sleep_until(first.checked_sub(SEND_LEAD).unwrap_or(first)).await;
        }
        // The first slot may have been a wait: a pause or cancel during it wins.
        let now = db::get(&*client, user, campaign_id)
            .await?
            .map(|c| c.status);
        if now != Some(CampaignStatus::Running) {
            let members = ready.into_iter().map(|r| r.member).collect();
            hold(client, now, members, &mut out).await?;
            return Ok(out);
        }
    }
    send_ready(state, client, user, &campaign, &context, ready, &mut out).await?;
    Ok(out)
}

/// A campaign that does not send now: `CANCELLED` (or gone) skips its recipients, any
/// other status sends them back to `PENDING` for the resume.
async fn hold(
    client: &mut PooledClient,
    status: Option<CampaignStatus>,
    members: Vec<Member>,
    out: &mut Vec<(usize, JobResult)>,
) -> Result<(), JobError> {
    for member in members {
        if matches!(status, Some(CampaignStatus::Cancelled) | None) {
            let reason = SkipReason::Cancelled;
            finish(client, &member.claimed, Finish::Skipped(reason)).await?;
            out.push((member.index, Ok(Outcome::Skipped(reason))));
        } else {
            let release = release_to(RecipientStatus::Pending);
            db::release(&*client, &member.claimed.recipient_id, release).await?;
            out.push((member.index, Ok(Outcome::Deferred)));
        }
    }
    Ok(())
}

/// The recipient's values, rendered text and Meta payload; `(code, message)` when they
/// cannot be sent as they are.
fn prepare(
    campaign: &Campaign,
    context: &context::Context,
    claimed: &Claimed,
) -> Result<Prepared, (&'static str, String)> {
    let template = &context.template;
    let joined = |violations: Vec<shared::templates::Violation>| {
        violations
            .iter()
            .map(|v| format!("{} {}", v.field, v.message))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let given = values_for_recipient(&campaign.variable_values, &claimed.fields);
    let values = resolve_values(&template.draft.content, &given)
        .map_err(|v| ("missing_value", joined(v)))?;
    let content = send_content(
        template.template_id.as_str(),
        &template.draft,
        &values,
        None,
    )
    .map_err(|v| ("invalid_template", joined(v)))?;
    Ok(Prepared {
        recorded: serde_json::to_value(&values.0).unwrap_or_default(),
        text: rendered_body(&template.draft, &values),
        content,
    })
}

/// Gives each ready recipient its send slot: one kept from an earlier receive, else one of
/// a block reserved for the batch in one call. Those whose slot is further than
/// `max_slot_wait` go back to the queue until it (the rest are returned, with their
/// instant).
async fn schedule(
    state: &SendState,
    client: &mut PooledClient,
    campaign: &Campaign,
    context: &context::Context,
    ready: Vec<Ready>,
    out: &mut Vec<(usize, JobResult)>,
) -> Result<Vec<Ready>, JobError> {
    let cap = f64::from(context.messages_per_second.max(1)) * CAP_HEADROOM;
    let rate = campaign
        .send_rate_per_second
        .map_or(cap, |r| f64::from(r.max(1)).min(cap));
    let now = Utc::now();
    let kept = |r: &Ready| {
        r.member
            .claimed
            .not_before
            .filter(|at| *at >= now - LATE_SLOT)
    };
    let fresh = ready.iter().filter(|r| kept(r).is_none()).count();
    let block = if fresh == 0 {
        None
    } else {
        let wanted = u32::try_from(fresh).unwrap_or(u32::MAX);
        let phone = &campaign.phone_number_id;
        Some(db::reserve_slots(&*client, phone, rate, wanted, MAX_RESERVE_AHEAD).await?)
    };
    // Each recipient's slot: its kept one, else the block's next.
    let mut next = 0;
    let mut slotted = Vec::with_capacity(ready.len());
    for r in ready {
        let slot = match (kept(&r), block) {
            (Some(at), _) => Some(at),
            (None, Some(block)) if block.granted > next => {
                next += 1;
                Some(block.slot(next - 1))
            }
            _ => None,
        };
        match slot {
            Some(slot) => slotted.push((r, slot)),
            None => {
                // The number's slots are taken for hours ahead: back when the first frees.
                let ahead = chrono::Duration::from_std(MAX_RESERVE_AHEAD).unwrap_or_default();
                let free_at = block.map_or(now, |b| b.first) - ahead;
                let wait = (free_at - now).to_std().unwrap_or_default();
                let recipient = &r.member.claimed.recipient_id;
                db::release(&*client, recipient, release_to(RecipientStatus::Queued)).await?;
                let error = JobError::throttled(
                    "the number's send slots are taken for hours ahead",
                    tokio::time::Instant::now() + wait.max(Duration::from_secs(60)),
                );
                out.push((r.member.index, Err(error)));
            }
        }
    }
    slotted.sort_by_key(|(_, slot)| *slot);

    // Sent now: the slots within `max_slot_wait`, and any slot too close after one of them
    // to go back and return in time (the queue hides a released job only when the whole
    // batch ends, after its last send).
    let sent_within = chrono::Duration::from_std(state.config.max_slot_wait).unwrap_or_default();
    let back_in_time = chrono::Duration::from_std(SEND_LEAD + RETURN_MARGIN).unwrap_or_default();
    let mut horizon = now + sent_within;
    let mut sending = Vec::with_capacity(slotted.len());
    for (mut r, slot) in slotted {
        let wait = (slot - Utc::now()).to_std().unwrap_or_default();
        if slot <= horizon {
            horizon = horizon.max(slot + back_in_time);
            r.not_before = Some(tokio::time::Instant::now() + wait + SEND_LEAD);
            sending.push(r);
        } else {
            let release = Release {
                not_before: Some(slot),
                ..release_to(RecipientStatus::Queued)
            };
            db::release(&*client, &r.member.claimed.recipient_id, release).await?;
            // Back well before the slot (SQS rounds visibility up to whole seconds, and a
            // busy consumer picks it up late), to wait the rest here and send on time.
            let early = state
                .config
                .max_slot_wait
                .saturating_sub(Duration::from_millis(500));
            let back_in = wait.saturating_sub(early);
            let back_at = tokio::time::Instant::now() + back_in;
            let error = JobError::throttled("waiting for the number's send slot", back_at);
            out.push((r.member.index, Err(error)));
        }
    }
    Ok(sending)
}

/// Writes the sends (or finds those an earlier attempt left pending), sends them and
/// records the accepted ones in the send's transaction; records the others one by one.
async fn send_ready(
    state: &SendState,
    client: &mut PooledClient,
    user: &UserId,
    campaign: &Campaign,
    context: &context::Context,
    ready: Vec<Ready>,
    out: &mut Vec<(usize, JobResult)>,
) -> Result<(), JobError> {
    let mut begun: Vec<Option<(TemplateSendId, MessageId)>> = Vec::with_capacity(ready.len());
    for r in &ready {
        begun.push(earlier_send(client, &r.member.claimed).await?);
    }
    let new: Vec<usize> = (0..ready.len()).filter(|i| begun[*i].is_none()).collect();
    if !new.is_empty() {
        let items: Vec<SendItem<'_>> = new
            .iter()
            .map(|i| SendItem {
                customer: &ready[*i].member.claimed.phone,
                text: &ready[*i].prepared.text,
                variable_values: &ready[*i].prepared.recorded,
                idempotency_key: None,
            })
            .collect();
        let batch = SendBatch {
            template: &context.template,
            agent_id: &context.agent,
            campaign_id: Some(campaign.campaign_id.as_str()),
        };
        let tx = client.transaction().await?;
        let written = templates::begin_sends(&tx, user, batch, &items).await?;
        let links: Vec<_> = new
            .iter()
            .zip(&written)
            .filter_map(|(i, w)| {
                w.as_ref().map(|w| {
                    let r = &ready[*i];
                    (
                        &r.member.claimed.recipient_id,
                        w.send_id.as_str(),
                        &r.prepared.recorded,
                    )
                })
            })
            .collect();
        db::link_sends(&tx, &links).await?;
        tx.commit().await?;
        for (i, w) in new.iter().zip(written) {
            begun[*i] = w.map(|w| (w.send_id, w.message_id));
        }
    }

    let mut sending = Vec::with_capacity(ready.len());
    for (r, begun) in ready.into_iter().zip(begun) {
        match begun {
            Some((send_id, message_id)) => sending.push((r, send_id, message_id)),
            None => {
                let message = "the customer's conversation could not be opened";
                let failed = Finish::Failed {
                    code: Some("no_conversation"),
                    message,
                };
                finish(client, &r.member.claimed, failed).await?;
                out.push((r.member.index, Ok(Outcome::Failed(message.to_owned()))));
            }
        }
    }
    if sending.is_empty() {
        return Ok(());
    }

    let channel = &context.channel;
    let outgoing: Vec<Outgoing<'_>> = sending
        .iter()
        .map(|(r, _, message_id)| Outgoing {
            destination: Destination {
                platform: Platform::WhatsApp,
                user_id: user,
                channel_key: &channel.meta_phone_number_id,
                sealed_access_token: channel.sealed_access_token.as_deref(),
                instagram_api: None,
                customer: &r.member.claimed.phone,
            },
            message_id,
            payload: Payload::WhatsApp(&r.prepared.content),
            not_before: r.not_before,
        })
        .collect();
    let tx = client.transaction().await?;
    let outcomes = send_many(&tx, &state.graph, &state.sealing_key, &outgoing).await?;
    let mut accepted_sends = Vec::new();
    let mut accepted = Vec::new();
    for ((r, send_id, _), outcome) in sending.iter().zip(&outcomes) {
        match outcome {
            SendOutcome::Sent {
                platform_message_id,
                accepted_at,
                ..
            } => {
                let platform_id = Some(platform_message_id.as_str());
                accepted_sends.push((send_id, platform_id, *accepted_at));
                accepted.push((&r.member.claimed.recipient_id, *accepted_at));
            }
            // An earlier attempt sent and recorded the message, then died before its rows.
            SendOutcome::AlreadyFinished { .. } => {
                accepted.push((&r.member.claimed.recipient_id, Utc::now()));
            }
            _ => {}
        }
    }
    templates::finish_sends_sent(&tx, &accepted_sends).await?;
    db::finish_sent(&tx, &campaign.campaign_id, &accepted).await?;
    tx.commit().await?;
    // Statuses Meta reported before this commit waited for it (`parked_statuses`).
    let wamids: Vec<&str> = accepted_sends
        .iter()
        .filter_map(|(_, wamid, _)| *wamid)
        .collect();
    shared::db::delivery::apply_parked(client, &wamids).await?;

    for ((r, send_id, _), outcome) in sending.into_iter().zip(outcomes) {
        let result = match outcome {
            SendOutcome::Sent { .. } | SendOutcome::AlreadyFinished { .. } => Ok(Outcome::Sent),
            unsent => {
                let claimed = &r.member.claimed;
                record(state, client, user, campaign, claimed, &send_id, unsent).await
            }
        };
        out.push((r.member.index, result));
    }
    Ok(())
}

/// The send an earlier attempt wrote for this recipient, when its message is still there.
async fn earlier_send(
    client: &PooledClient,
    claimed: &Claimed,
) -> Result<Option<(TemplateSendId, MessageId)>, JobError> {
    let Some(existing) = &claimed.template_send_id else {
        return Ok(None);
    };
    let send_id = TemplateSendId::from_trusted(existing.clone());
    let send = templates::send(client, &send_id).await?;
    Ok(send
        .and_then(|s| s.message_id)
        .map(|message| (send_id, MessageId::from_trusted(message))))
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
    client: &mut PooledClient,
    claimed: &Claimed,
    finish: Finish<'_>,
) -> Result<(), JobError> {
    let tx = client.transaction().await?;
    db::finish(&tx, &claimed.campaign_id, &claimed.recipient_id, finish).await?;
    tx.commit().await?;
    Ok(())
}

/// Records how the send ended (see the module documentation for each of Meta's codes).
async fn record(
    state: &SendState,
    client: &mut PooledClient,
    user: &UserId,
    campaign: &Campaign,
    claimed: &Claimed,
    send_id: &TemplateSendId,
    sent: SendOutcome,
) -> Result<Outcome, JobError> {
    let recipient = &claimed.recipient_id;
    match sent {
        // Recorded with the send's transaction.
        SendOutcome::Sent { .. } | SendOutcome::AlreadyFinished { .. } => Ok(Outcome::Sent),
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
            // Meta's rate limits are turns to wait, not failed attempts: they come back
            // without using up the job's receives. Anything else retries with backoff.
            let turn = match code {
                Some(130_429) => {
                    db::slow_down(&*client, &campaign.phone_number_id).await?;
                    Some(THROUGHPUT_RETRY)
                }
                Some(131_056) => Some(PAIR_RATE_RETRY),
                _ => None,
            };
            db::release(&*client, recipient, release_to(RecipientStatus::Queued)).await?;
            let reason = format!("Meta: {reason}");
            Err(match turn {
                Some(wait) => JobError::throttled(reason, tokio::time::Instant::now() + wait),
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
