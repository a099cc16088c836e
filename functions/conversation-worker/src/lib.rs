//! The `conversation-worker`: consumes reply jobs from the SQS FIFO queue (one message group
//! per customer and channel, so one customer is answered in order and different customers in
//! parallel) and answers the customer.
//!
//! Each job moves one inbox row forward, and every step is conditional, so a job delivered
//! twice, or retried after a failure, never stores a message twice, never takes a second
//! credit and never asks OpenAI for a second reply:
//!
//! 1. store every pending inbox row of the customer into the active conversation, in the
//!    provider's timestamp order (gap-free sequence numbers under the conversation lock);
//! 2. STOP / START opt the customer out or in, and get no AI reply;
//! 3. a conversation owned by a person gets no AI reply, no OpenAI call and no credit;
//! 4. take one credit (once per inbound message; never below zero), else record why not;
//! 5. ask OpenAI (stored prompt, the conversation's OpenAI conversation), run the tools it
//!    calls (the registry in [`tools`]: `handoff_to_human`, and `check_availability` /
//!    `book_meeting` when the tenant connected Google Calendar), store the reply as a
//!    pending agent message;
//! 6. send it through `shared::outbound::send_and_record` (the path a person's reply takes
//!    too); retryable failures leave it `pending` and go back to SQS, permanent ones mark it
//!    failed.
//!
//! A permanent OpenAI error (an unknown prompt id, an invalid request) finishes the inbox row
//! as `ai_failed` with OpenAI's reason and gives its credit back, at once: retrying could
//! only fail again and push the job to the DLQ. `ai_failed` is the only outcome that
//! refunds: every other outcome either took no credit or got what it paid for (a model
//! answer, even when Meta then refused to deliver it).
//!
//! Batches go through the generic lifter in `shared::jobs::batch` ([`handle_batch`]).

pub mod booking;
mod opt_out;
pub mod tools;

use shared::{
    crypto::SealingKey,
    db::{self, DbError, Pool, conversations as convo, credits, inbound as inbox},
    domain::{
        ConversationOwner, CustomerIdentity, InboundOutcome, InboundState, MessageAuthor,
        MessageId, Platform, PromptId, ReplyBlockedReason, customer_key,
    },
    google::Google,
    jobs::{Lifter, LifterConfig, ReplyJob, SqsQueue, lambda},
    meta::graph::Graph,
    openai::{OpenAi, OpenAiError},
    outbound::{Destination, Payload, SendOutcome, send_and_record},
};

pub use opt_out::OptOutWords;

/// How many times a reply may go back to the model with function results.
const MAX_TOOL_ROUNDS: usize = 3;

pub use shared::jobs::JobError;

/// What the worker needs, built once per execution environment.
#[derive(Debug, Clone)]
pub struct WorkerState {
    pub pool: Pool,
    pub openai: OpenAi,
    pub graph: Graph,
    pub sealing_key: SealingKey,
    pub opt_out: OptOutWords,
    /// The queue jobs come from, when it is SQS: a failed job's message is hidden for a
    /// growing delay (visibility backoff), and a batch cut short by the deadline is made
    /// visible again at once, instead of waiting for the queue's visibility timeout.
    pub retry_queue: Option<SqsQueue>,
    /// The batch lifter's deadline margin and backoff.
    pub lifter: LifterConfig,
    /// Google, when configured: tenants that connected their calendar get the booking tools.
    pub google: Option<Google>,
}

/// Handles one reply job.
#[tracing::instrument(skip_all, fields(inbound.id = %job.platform_message_id()))]
pub async fn handle(state: &WorkerState, job: &ReplyJob) -> Result<(), JobError> {
    let id = job.platform_message_id();
    let mut client = state.pool.get().await?;
    let Some(inbound) = inbox::get(&client, id).await? else {
        tracing::warn!("reply job for an unknown inbox row; dropping it");
        return Ok(());
    };
    if inbound.state == InboundState::Done {
        tracing::info!("already handled");
        return Ok(());
    }
    let user = &inbound.user_id;
    let Some(channel) = convo::reply_channel(&client, user, &inbound.phone_number_id).await? else {
        return Ok(()); // the channel was deleted since
    };
    let Some((agent_id, prompt_id)) = channel.agent.clone() else {
        tracing::info!("no agent linked to the channel; message kept in the inbox, no reply");
        inbox::finish(&client, user, id, InboundOutcome::NoAgent).await?;
        return Ok(());
    };

    // 1. Store the customer's pending messages in order. A message the database refuses
    //    for its data is finished as `store_failed` and never blocks the later ones.
    let tx = client.transaction().await?;
    let customer = convo::Customer {
        user,
        agent_id: &agent_id,
        phone_number_id: &inbound.phone_number_id,
        platform: channel.platform,
        customer_id: &inbound.customer_id,
    };
    let stored = match convo::store_inbound(&tx, customer).await {
        Ok(stored) => stored,
        Err(error) if error.is_data_error() => {
            // Not even the conversation could be written: this message fails alone.
            drop(tx);
            let reason = format!("could not be stored: {}", error.reason());
            inbox::finish_failed(&client, user, id, InboundOutcome::StoreFailed, &reason).await?;
            tracing::warn!(reason = %reason, "inbound message finished as store_failed");
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    };
    tx.commit().await?;
    if stored.failed.iter().any(|failed| failed == id) {
        return Ok(());
    }
    let conversation = stored.conversation;
    let customer = CustomerIdentity::of_conversation(
        channel.platform,
        &customer_key(channel.platform, &inbound.customer_id),
    );
    let user = &inbound.user_id;

    // A reply generated by an earlier attempt only needs sending.
    if let Some(reply_id) = &inbound.reply_message_id {
        return send_reply(state, &mut client, &inbound, &channel, reply_id).await;
    }

    // 2. Opt-out keywords.
    if let Some(opted_out) = state.opt_out.classify(&inbound.text) {
        if channel.platform == Platform::WhatsApp {
            let tx = client.transaction().await?;
            db::contacts::set_opt_out_for_customer(
                &tx,
                user,
                &customer,
                inbound.customer_name.as_deref(),
                opted_out,
                &conversation.conversation_id,
            )
            .await?;
            tx.commit().await?;
        }
        let outcome = if opted_out {
            InboundOutcome::OptedOut
        } else {
            InboundOutcome::OptedIn
        };
        inbox::finish(&client, user, id, outcome).await?;
        tracing::info!(outcome = %outcome, "opt-out keyword");
        return Ok(());
    }
    if channel.platform == Platform::WhatsApp
        && db::contacts::is_opted_out(&client, user, &customer).await?
    {
        convo::block_replies(
            &client,
            user,
            &conversation.conversation_id,
            Some(ReplyBlockedReason::OptedOut),
        )
        .await?;
        inbox::finish(&client, user, id, InboundOutcome::OptedOut).await?;
        return Ok(());
    }

    // 3. A person owns the conversation: stored and shown, nothing else.
    if conversation.owner == ConversationOwner::Human {
        inbox::finish(&client, user, id, InboundOutcome::HumanOwner).await?;
        tracing::info!("conversation owned by a person; no AI reply");
        return Ok(());
    }

    // 4. One credit per inbound message, never below zero.
    if !inbound.credit_taken {
        let tx = client.transaction().await?;
        let charged = credits::take_credit(&tx, user, id).await?;
        if !charged {
            drop(tx); // roll back the mark on the inbox row
            convo::block_replies(
                &client,
                user,
                &conversation.conversation_id,
                Some(ReplyBlockedReason::NoCredits),
            )
            .await?;
            inbox::finish(&client, user, id, InboundOutcome::NoCredits).await?;
            tracing::info!("no credits left; no AI reply");
            return Ok(());
        }
        tx.commit().await?;
    }

    // 5. Ask the model. A refusal fails the message for good and gives the credit back.
    let answer = match ask_model(
        state,
        &client,
        &conversation,
        &channel,
        &prompt_id,
        &inbound,
    )
    .await
    {
        Ok(answer) => answer,
        Err(AiError::Job(error)) => return Err(error),
        Err(AiError::Refused(reason)) => {
            return fail_ai_reply(&mut client, &inbound, &reason).await;
        }
    };
    let ModelAnswer {
        reply_text,
        handed_off,
    } = answer;
    convo::block_replies(&client, user, &conversation.conversation_id, None).await?;
    if reply_text.trim().is_empty() {
        let outcome = if handed_off {
            InboundOutcome::HandedOff
        } else {
            InboundOutcome::NoReply
        };
        inbox::finish(&client, user, id, outcome).await?;
        return Ok(());
    }
    let tx = client.transaction().await?;
    let reply_id = convo::insert_agent_message(
        &tx,
        user,
        &conversation.conversation_id,
        reply_text.trim(),
        MessageAuthor::Ai,
        Some(id),
    )
    .await?
    // The conversation was found for this tenant's agent a moment ago: only a relink
    // between the two can move it away. The job runs again and stores anew.
    .ok_or_else(|| JobError::retryable("the conversation is no longer the tenant's"))?;
    tx.commit().await?;

    // 6. Send it.
    send_reply(state, &mut client, &inbound, &channel, &reply_id).await
}

/// What the model answered.
struct ModelAnswer {
    reply_text: String,
    handed_off: bool,
}

/// Why no answer came from the model.
enum AiError {
    /// Try again later (OpenAI unavailable, rate limited, or our database failed).
    Job(JobError),
    /// OpenAI refused the request for good: the reason to record.
    Refused(String),
}

impl From<DbError> for AiError {
    fn from(error: DbError) -> Self {
        Self::Job(error.into())
    }
}

impl From<OpenAiError> for AiError {
    fn from(error: OpenAiError) -> Self {
        match error {
            OpenAiError::Retryable(message) => {
                Self::Job(JobError::retryable(format!("OpenAI: {message}")))
            }
            OpenAiError::Permanent(message) => Self::Refused(format!("OpenAI: {message}")),
        }
    }
}

/// Asks the model for a reply (creating the OpenAI conversation on the first one) and runs
/// the tools it calls, for at most [`MAX_TOOL_ROUNDS`] rounds.
async fn ask_model(
    state: &WorkerState,
    client: &db::PooledClient,
    conversation: &convo::ActiveConversation,
    channel: &convo::ReplyChannel,
    prompt_id: &PromptId,
    inbound: &inbox::Inbound,
) -> Result<ModelAnswer, AiError> {
    let openai_conversation = match &conversation.openai_conversation_id {
        Some(existing) => existing.clone(),
        None => {
            let created = state
                .openai
                .create_conversation(&serde_json::json!({ "conversation_id": conversation.conversation_id.as_str() }))
                .await?;
            convo::set_openai_conversation(
                client,
                &inbound.user_id,
                &conversation.conversation_id,
                &created,
            )
            .await?;
            created
        }
    };
    let variables = serde_json::json!({
        "customer_name": conversation.customer_name.clone().unwrap_or_default(),
        "channel": channel.platform.as_str(),
    });
    let user = inbound.user_id.clone();
    let registry = tool_registry(state, client, &user).await?;
    let tools = registry.definitions();
    let customer = customer_key(channel.platform, &inbound.customer_id);
    let mut input = vec![serde_json::json!({ "role": "user", "content": inbound.text })];
    let mut reply_text = String::new();
    let mut handed_off = false;
    for _ in 0..MAX_TOOL_ROUNDS {
        let turn = state
            .openai
            .respond(
                prompt_id.as_str(),
                &variables,
                &openai_conversation,
                input,
                &tools,
            )
            .await?;
        reply_text = turn.text;
        if turn.function_calls.is_empty() {
            break;
        }
        input = Vec::new();
        for call in turn.function_calls {
            let output = match registry.parse(&call, chrono::Utc::now()) {
                Err(error) => serde_json::json!({ "error": error }),
                Ok(tools::ToolCall::Handoff { reason }) => {
                    convo::set_owner(
                        client,
                        &inbound.user_id,
                        &conversation.conversation_id,
                        ConversationOwner::Human,
                        Some(&reason),
                    )
                    .await?;
                    handed_off = true;
                    tracing::info!("the AI handed the conversation to a person");
                    serde_json::json!({ "status": "handed_over" })
                }
                Ok(tools::ToolCall::CheckAvailability(query)) => {
                    let (google, context) =
                        booking_context(state, &registry, &user, conversation, &customer)?;
                    booking::check_availability(state, google, client, &context, &query)
                        .await
                        .map_err(AiError::Job)?
                }
                Ok(tools::ToolCall::BookMeeting(request)) => {
                    let (google, context) =
                        booking_context(state, &registry, &user, conversation, &customer)?;
                    booking::book_meeting(state, google, client, &context, &request)
                        .await
                        .map_err(AiError::Job)?
                }
            };
            input.push(serde_json::json!({ "type": "function_call_output", "call_id": call.call_id, "output": output.to_string() }));
        }
    }
    Ok(ModelAnswer {
        reply_text,
        handed_off,
    })
}

/// The tools of this tenant's conversations: the booking tools too when Google is configured
/// and the tenant connected a calendar (even one that needs reconnecting: the tool then tells
/// the model to have a person confirm the time, instead of the agent failing silently).
async fn tool_registry(
    state: &WorkerState,
    client: &db::PooledClient,
    user: &shared::domain::UserId,
) -> Result<tools::Registry, DbError> {
    if state.google.is_none() || db::google_tokens::get(client, user).await?.is_none() {
        return Ok(tools::Registry::basic());
    }
    let (zone, hours) = db::users::booking_settings(client, user).await?;
    Ok(tools::Registry::with_calendar(zone, hours))
}

fn booking_context<'a>(
    state: &'a WorkerState,
    registry: &tools::Registry,
    user: &'a shared::domain::UserId,
    conversation: &'a convo::ActiveConversation,
    customer: &'a str,
) -> Result<(&'a Google, booking::BookingContext<'a>), AiError> {
    // The registry only parses booking calls when both are there.
    let (Some(google), Some(zone)) = (state.google.as_ref(), registry.calendar_zone()) else {
        return Err(AiError::Refused(
            "booking tool called without a calendar".to_owned(),
        ));
    };
    Ok((
        google,
        booking::BookingContext {
            user,
            conversation_id: &conversation.conversation_id,
            customer_phone: customer,
            zone,
            hours: registry.working_hours().cloned(),
        },
    ))
}

/// OpenAI refused the request for good: the inbox row is finished as `ai_failed` with the
/// reason and its credit is given back, in one transaction (so a crash cannot finish the
/// row without the refund), once.
async fn fail_ai_reply(
    client: &mut db::PooledClient,
    inbound: &inbox::Inbound,
    reason: &str,
) -> Result<(), JobError> {
    let tx = client.transaction().await?;
    let refunded =
        credits::refund_credit(&tx, &inbound.user_id, &inbound.platform_message_id).await?;
    inbox::finish_failed(
        &tx,
        &inbound.user_id,
        &inbound.platform_message_id,
        InboundOutcome::AiFailed,
        reason,
    )
    .await?;
    tx.commit().await?;
    tracing::warn!(error = %reason, credit_refunded = refunded, "OpenAI refused the reply for good");
    Ok(())
}

/// Sends the reply through the one send-and-record path (`shared::outbound`), which a
/// person's reply uses too, and finishes the inbox row by its outcome: a retryable failure
/// leaves the reply `pending` and hands the job back to SQS.
async fn send_reply(
    state: &WorkerState,
    client: &mut db::PooledClient,
    inbound: &inbox::Inbound,
    channel: &convo::ReplyChannel,
    reply_id: &MessageId,
) -> Result<(), JobError> {
    // One connection per job, held throughout: taking a second one while holding the first
    // deadlocks the pool under load (a test of 50 concurrent jobs showed it).
    let destination = Destination {
        platform: channel.platform,
        user_id: &inbound.user_id,
        channel_key: &channel.meta_phone_number_id,
        sealed_access_token: channel.sealed_access_token.as_deref(),
        instagram_api: channel.instagram_api,
        customer: &inbound.customer_id,
    };
    let outcome = send_and_record(
        client,
        &state.graph,
        &state.sealing_key,
        destination,
        reply_id,
        Payload::StoredText,
    )
    .await?;
    let (user, id) = (&inbound.user_id, &inbound.platform_message_id);
    match outcome {
        SendOutcome::Sent { message_status, .. } => {
            inbox::finish(&*client, user, id, InboundOutcome::Replied).await?;
            tracing::info!(message_status = ?message_status, "reply sent");
            Ok(())
        }
        SendOutcome::AlreadyFinished { .. } => {
            inbox::finish(&*client, user, id, InboundOutcome::Replied).await?;
            Ok(())
        }
        SendOutcome::Missing => Ok(()),
        SendOutcome::Retryable { code, reason, .. } => {
            Err(JobError::retryable(format!("Meta {code:?}: {reason}")))
        }
        SendOutcome::Failed { code, .. } => {
            inbox::finish(&*client, user, id, InboundOutcome::SendFailed).await?;
            tracing::warn!(code = ?code, "reply failed permanently");
            Ok(())
        }
    }
}

/// Runs one Lambda batch through the lifter (`shared::jobs::batch`) and answers with the
/// failed records only (`ReportBatchItemFailures`). No job starts when less than the
/// configured margin is left before `deadline`; those go back to the queue at once.
pub async fn handle_batch(
    state: &WorkerState,
    event: aws_lambda_events::sqs::SqsEvent,
    deadline: Option<tokio::time::Instant>,
) -> aws_lambda_events::sqs::SqsBatchResponse {
    let lifter = Lifter::new(state.lifter.clone(), state.retry_queue.clone());
    lambda::run_batch(&lifter, event, deadline, |job: ReplyJob| async move {
        handle(state, &job).await
    })
    .await
}

/// Receives one batch from an SQS queue and runs it through the same lifter, deleting what
/// succeeded: what Lambda's event source mapping does in AWS, for devstack with a real (or
/// moto's) SQS. Returns how many messages were received.
pub async fn poll_sqs_once(
    state: &WorkerState,
    queue: &SqsQueue,
    deadline: Option<tokio::time::Instant>,
) -> Result<usize, shared::jobs::QueueError> {
    Lifter::new(state.lifter.clone(), Some(queue.clone()))
        .poll_sqs(queue, deadline, |job: ReplyJob| async move {
            handle(state, &job).await
        })
        .await
}
