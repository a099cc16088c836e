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
//!    calls (`handoff_to_human`), store the reply as a pending agent message;
//! 6. send it through Meta; retryable failures go back to SQS, permanent ones mark it failed.

mod opt_out;

use shared::{
    crypto::SealingKey,
    db::{self, DbError, Pool, conversations as convo},
    domain::{
        ConversationOwner, InboundOutcome, InboundState, MessageAuthor, Platform,
        ReplyBlockedReason,
    },
    jobs::ReplyJob,
    meta::{
        errors::SendFailure,
        graph::{Graph, SendError},
    },
    openai::{HANDOFF_TOOL, OpenAi, OpenAiError, agent_tools},
};

pub use opt_out::OptOutWords;

/// How many times a reply may go back to the model with function results.
const MAX_TOOL_ROUNDS: usize = 3;

/// What the worker needs, built once per execution environment.
#[derive(Debug, Clone)]
pub struct WorkerState {
    pub pool: Pool,
    pub openai: OpenAi,
    pub graph: Graph,
    pub sealing_key: SealingKey,
    pub opt_out: OptOutWords,
    /// The queue jobs come from, when it is SQS: a retryable failure's message is hidden
    /// for a growing delay (visibility backoff) instead of coming back after the queue's
    /// fixed visibility timeout.
    pub retry_queue: Option<shared::jobs::SqsQueue>,
}

/// The delay before a failed job's next attempt: 10 s, doubling per receive, at most 15 min.
pub fn retry_delay_seconds(receive_count: u32) -> i32 {
    let doublings = receive_count.saturating_sub(1).min(7);
    (10i32 << doublings).min(900)
}

/// Why a job did not complete.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Try again later (SQS redelivers after the visibility timeout; DLQ after the
    /// configured number of receives).
    #[error("retryable: {0}")]
    Retryable(String),
    /// The job itself is broken (unparseable body); retrying cannot help.
    #[error("poison: {0}")]
    Poison(String),
}

impl From<DbError> for JobError {
    fn from(error: DbError) -> Self {
        Self::Retryable(shared::api::error_chain(&error))
    }
}

impl From<shared::db::PoolError> for JobError {
    fn from(error: shared::db::PoolError) -> Self {
        Self::from(DbError::from(error))
    }
}

impl From<shared::db::PgError> for JobError {
    fn from(error: shared::db::PgError) -> Self {
        Self::from(DbError::from(error))
    }
}

/// Handles one reply job.
#[tracing::instrument(skip_all, fields(inbound.id = %job.platform_message_id()))]
pub async fn handle(state: &WorkerState, job: &ReplyJob) -> Result<(), JobError> {
    let id = job.platform_message_id();
    let mut client = state.pool.get().await?;
    let Some(inbound) = convo::inbound(&client, id).await? else {
        tracing::warn!("reply job for an unknown inbox row; dropping it");
        return Ok(());
    };
    if inbound.state == InboundState::Done {
        tracing::info!("already handled");
        return Ok(());
    }
    let Some(channel) = convo::reply_channel(&client, &inbound.phone_number_id).await? else {
        return Ok(()); // the channel was deleted since
    };
    let Some((agent_id, prompt_id)) = channel.agent.clone() else {
        tracing::info!("no agent linked to the channel; message kept in the inbox, no reply");
        convo::finish(&client, id, InboundOutcome::NoAgent).await?;
        return Ok(());
    };

    // 1. Store the customer's pending messages in order. A message the database refuses
    //    for its data is finished as `store_failed` and never blocks the later ones.
    let tx = client.transaction().await?;
    let stored = match convo::store_inbound(
        &tx,
        &agent_id,
        &inbound.phone_number_id,
        channel.platform,
        &inbound.customer_id,
    )
    .await
    {
        Ok(stored) => stored,
        Err(error) if error.is_data_error() => {
            // Not even the conversation could be written: this message fails alone.
            drop(tx);
            let reason = format!("could not be stored: {}", error.reason());
            convo::finish_failed(&client, id, InboundOutcome::StoreFailed, &reason).await?;
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
    let customer = convo::customer_key(channel.platform, &inbound.customer_id);

    // A reply generated by an earlier attempt only needs sending.
    if let Some(reply_id) = &inbound.reply_message_id {
        return send_reply(state, &mut client, &inbound, &channel, reply_id, &customer).await;
    }

    // 2. Opt-out keywords.
    if let Some(opted_out) = state.opt_out.classify(&inbound.text) {
        if channel.platform == Platform::WhatsApp {
            convo::set_opt_out(
                &client,
                &inbound.user_id,
                &customer,
                inbound.customer_name.as_deref(),
                opted_out,
                &conversation.conversation_id,
            )
            .await?;
        }
        let outcome = if opted_out {
            InboundOutcome::OptedOut
        } else {
            InboundOutcome::OptedIn
        };
        convo::finish(&client, id, outcome).await?;
        tracing::info!(outcome = %outcome, "opt-out keyword");
        return Ok(());
    }
    if channel.platform == Platform::WhatsApp
        && convo::is_opted_out(&client, &inbound.user_id, &customer).await?
    {
        convo::block_replies(
            &client,
            &conversation.conversation_id,
            Some(ReplyBlockedReason::OptedOut),
        )
        .await?;
        convo::finish(&client, id, InboundOutcome::OptedOut).await?;
        return Ok(());
    }

    // 3. A person owns the conversation: stored and shown, nothing else.
    if conversation.owner == ConversationOwner::Human {
        convo::finish(&client, id, InboundOutcome::HumanOwner).await?;
        tracing::info!("conversation owned by a person; no AI reply");
        return Ok(());
    }

    // 4. One credit per inbound message, never below zero.
    if !inbound.credit_taken {
        let tx = client.transaction().await?;
        let charged = convo::take_credit(&tx, &inbound.user_id, id).await?;
        if !charged {
            drop(tx); // roll back the mark on the inbox row
            convo::block_replies(
                &client,
                &conversation.conversation_id,
                Some(ReplyBlockedReason::NoCredits),
            )
            .await?;
            convo::finish(&client, id, InboundOutcome::NoCredits).await?;
            tracing::info!("no credits left; no AI reply");
            return Ok(());
        }
        tx.commit().await?;
    }

    // 5. Ask the model.
    let openai_conversation = match &conversation.openai_conversation_id {
        Some(existing) => existing.clone(),
        None => {
            let created = state
                .openai
                .create_conversation(&serde_json::json!({ "conversation_id": conversation.conversation_id.as_str() }))
                .await
                .map_err(openai_error)?;
            convo::set_openai_conversation(&client, &conversation.conversation_id, &created)
                .await?;
            created
        }
    };
    let variables = serde_json::json!({
        "customer_name": conversation.customer_name.clone().unwrap_or_default(),
        "channel": channel.platform.as_str(),
    });
    let tools = agent_tools();
    let mut input = vec![serde_json::json!({ "role": "user", "content": inbound.text })];
    let mut reply_text = String::new();
    let mut handed_off = false;
    for _ in 0..MAX_TOOL_ROUNDS {
        let turn = state
            .openai
            .respond(&prompt_id, &variables, &openai_conversation, input, &tools)
            .await
            .map_err(openai_error)?;
        reply_text = turn.text;
        if turn.function_calls.is_empty() {
            break;
        }
        input = Vec::new();
        for call in turn.function_calls {
            let output = if call.name == HANDOFF_TOOL {
                let reason = call
                    .arguments
                    .get("reason")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("requested by the AI");
                convo::set_owner(
                    &client,
                    &conversation.conversation_id,
                    ConversationOwner::Human,
                    Some(reason),
                )
                .await?;
                handed_off = true;
                tracing::info!("the AI handed the conversation to a person");
                serde_json::json!({ "status": "handed_over" })
            } else {
                serde_json::json!({ "error": format!("unknown tool {}", call.name) })
            };
            input.push(serde_json::json!({ "type": "function_call_output", "call_id": call.call_id, "output": output.to_string() }));
        }
    }
    convo::block_replies(&client, &conversation.conversation_id, None).await?;
    if reply_text.trim().is_empty() {
        let outcome = if handed_off {
            InboundOutcome::HandedOff
        } else {
            InboundOutcome::NoReply
        };
        convo::finish(&client, id, outcome).await?;
        return Ok(());
    }
    let tx = client.transaction().await?;
    let reply_id = convo::insert_agent_message(
        &tx,
        &conversation.conversation_id,
        reply_text.trim(),
        MessageAuthor::Ai,
        Some(id),
    )
    .await?;
    tx.commit().await?;

    // 6. Send it.
    send_reply(
        state,
        &mut client,
        &inbound,
        &channel,
        reply_id.as_str(),
        &customer,
    )
    .await
}

fn openai_error(error: OpenAiError) -> JobError {
    match error {
        OpenAiError::Retryable(message) => JobError::Retryable(format!("OpenAI: {message}")),
        // A permanent OpenAI failure (bad prompt id...) would fail again: keep it visible in
        // the logs and let SQS move it to the DLQ after the configured receives.
        OpenAiError::Permanent(message) => {
            JobError::Retryable(format!("OpenAI refused: {message}"))
        }
    }
}

async fn send_reply(
    state: &WorkerState,
    client: &mut db::PooledClient,
    inbound: &convo::Inbound,
    channel: &convo::ReplyChannel,
    reply_id: &str,
    customer: &str,
) -> Result<(), JobError> {
    // One connection per job, held throughout: taking a second one while holding the first
    // deadlocks the pool under load (a test of 50 concurrent jobs showed it).
    let Some(reply) = convo::outgoing(&*client, reply_id).await? else {
        return Ok(());
    };
    if reply.status != "pending" {
        convo::finish(
            &*client,
            &inbound.platform_message_id,
            InboundOutcome::Replied,
        )
        .await?;
        return Ok(());
    }
    let destination = shared::outbound::Destination {
        platform: channel.platform,
        channel_key: &channel.meta_phone_number_id,
        sealed_access_token: channel.sealed_access_token.as_deref(),
        instagram_api: channel.instagram_api,
        customer: &inbound.customer_id,
    };
    let sent = shared::outbound::send_text(
        &state.graph,
        &state.sealing_key,
        destination,
        &reply.message_id,
        &reply.text,
    )
    .await;
    match sent {
        Ok(sent) => {
            let tx = client.transaction().await?;
            convo::mark_sent(
                &tx,
                &reply.message_id,
                &sent.platform_message_id,
                &inbound.user_id,
                customer,
            )
            .await?;
            tx.commit().await?;
            convo::finish(
                &*client,
                &inbound.platform_message_id,
                InboundOutcome::Replied,
            )
            .await?;
            tracing::info!(message_status = ?sent.message_status, "reply sent");
            Ok(())
        }
        Err(SendError {
            kind: SendFailure::Retryable,
            code,
            message,
        }) => Err(JobError::Retryable(format!("Meta {code:?}: {message}"))),
        Err(SendError {
            kind: SendFailure::Permanent,
            code,
            message,
        }) => {
            convo::mark_send_failed(
                &*client,
                &reply.message_id,
                code.map(|c| c.to_string()),
                &message,
            )
            .await?;
            convo::finish(
                &*client,
                &inbound.platform_message_id,
                InboundOutcome::SendFailed,
            )
            .await?;
            tracing::warn!(code = ?code, "reply failed permanently");
            Ok(())
        }
    }
}

/// The SQS batch lifter: runs every record, reports only the failed ones so SQS retries
/// just those (`ReportBatchItemFailures`).
pub async fn handle_batch(
    state: &WorkerState,
    event: aws_lambda_events::sqs::SqsEvent,
) -> aws_lambda_events::sqs::SqsBatchResponse {
    let mut response = aws_lambda_events::sqs::SqsBatchResponse::default();
    let mut failed_group: Option<String> = None;
    for record in event.records {
        let message_id = record.message_id.clone().unwrap_or_default();
        let group = record.attributes.get("MessageGroupId").cloned();
        // FIFO: once a message of a group fails, the later ones of that group must not run
        // ahead of it.
        let blocked = failed_group.is_some() && failed_group == group;
        let outcome = if blocked {
            Err(JobError::Retryable(
                "an earlier message of this group failed".to_owned(),
            ))
        } else {
            match serde_json::from_str::<ReplyJob>(record.body.as_deref().unwrap_or_default()) {
                Ok(job) => handle(state, &job).await,
                Err(error) => Err(JobError::Poison(error.to_string())),
            }
        };
        if let Err(error) = outcome {
            tracing::warn!(sqs.message_id = %message_id, error = %error, "job failed");
            if let (Some(queue), Some(receipt), JobError::Retryable(_)) =
                (&state.retry_queue, record.receipt_handle.as_deref(), &error)
            {
                let receives = record
                    .attributes
                    .get("ApproximateReceiveCount")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                if let Err(backoff_error) = queue
                    .delay_retry(receipt, retry_delay_seconds(receives))
                    .await
                {
                    tracing::warn!(error = %backoff_error, "could not delay the retry");
                }
            }
            failed_group = group.or(failed_group);
            let mut failure = aws_lambda_events::sqs::BatchItemFailure::default();
            failure.item_identifier = message_id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// Receives one batch from an SQS queue and runs it through [`handle_batch`], deleting what
/// succeeded: what Lambda's event source mapping does in AWS, for devstack with a real (or
/// moto's) SQS. Returns how many messages were received.
pub async fn poll_sqs_once(
    state: &WorkerState,
    queue: &shared::jobs::SqsQueue,
) -> Result<usize, shared::jobs::QueueError> {
    let received = queue.receive(10, 1).await?;
    let mut event = aws_lambda_events::sqs::SqsEvent::default();
    for message in &received {
        let mut record = aws_lambda_events::sqs::SqsMessage::default();
        record.message_id = Some(message.message_id.clone());
        record.body = Some(message.body.clone());
        record.receipt_handle = Some(message.receipt_handle.clone());
        if let Some(group) = &message.group_id {
            record
                .attributes
                .insert("MessageGroupId".to_owned(), group.clone());
        }
        if let Some(count) = &message.receive_count {
            record
                .attributes
                .insert("ApproximateReceiveCount".to_owned(), count.clone());
        }
        event.records.push(record);
    }
    let response = handle_batch(state, event).await;
    for message in &received {
        let failed = response
            .batch_item_failures
            .iter()
            .any(|f| f.item_identifier == message.message_id);
        if !failed {
            queue.delete(&message.receipt_handle).await?;
        }
    }
    Ok(received.len())
}
