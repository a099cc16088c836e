use aws_sdk_sqs::{Client, types::ChangeMessageVisibilityBatchRequestEntry};

use super::{Job, QueueError, Record};

/// An SQS queue. On a FIFO queue the group id keeps one customer's messages in order and
/// the deduplication id drops a job published twice within SQS's five-minute window.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    /// A queue at `url`, reached with `client`.
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// The client, for consumers and tests.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The queue's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Publishes `body` again as a new message of `group_id`, hidden for `delay` (at most
    /// SQS's 15 minutes): a throttled job that comes back with a fresh receive count. On a
    /// standard queue only (FIFO queues take no per-message delay).
    pub(super) async fn republish(
        &self,
        body: &str,
        group_id: Option<&str>,
        delay: std::time::Duration,
    ) -> Result<(), QueueError> {
        let seconds = i32::try_from(delay.as_millis().div_ceil(1000).min(900)).unwrap_or(900);
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .set_message_group_id(group_id.map(str::to_owned))
            .delay_seconds(seconds)
            .send()
            .await
            .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        Ok(())
    }

    pub(super) async fn publish<J: Job>(&self, job: &J) -> Result<(), QueueError> {
        let body = serde_json::to_string(job).map_err(|e| QueueError(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .set_message_group_id(job.group_id())
            .set_message_deduplication_id(job.deduplication_id())
            .send()
            .await
            .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        Ok(())
    }
}

impl SqsQueue {
    /// Publishes `jobs` with `SendMessageBatch`, ten per call and up to
    /// [`super::PUBLISH_CONCURRENCY`] calls in flight. On a failure, the count of jobs known
    /// published (every chunk before the first failed one) comes with the error.
    pub(super) async fn publish_all<J: Job>(&self, jobs: &[J]) -> Result<(), (usize, QueueError)> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

        let mut chunks = Vec::new();
        for (c, chunk) in jobs.chunks(10).enumerate() {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, job) in chunk.iter().enumerate() {
                let body =
                    serde_json::to_string(job).map_err(|e| (c * 10, QueueError(e.to_string())))?;
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .set_message_group_id(job.group_id())
                    .set_message_deduplication_id(job.deduplication_id())
                    .build()
                    .map_err(|e| (c * 10, QueueError(e.to_string())))?;
                entries.push(entry);
            }
            chunks.push(entries);
        }
        let mut outcomes: Vec<Option<Result<(), QueueError>>> = Vec::new();
        outcomes.resize_with(chunks.len(), || None);
        let mut pending = chunks.into_iter().enumerate();
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.len() < super::PUBLISH_CONCURRENCY {
                let Some((index, entries)) = pending.next() else {
                    break;
                };
                let queue = self.clone();
                running.spawn(async move { (index, queue.send_batch(entries).await) });
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            match joined {
                Ok((index, outcome)) => outcomes[index] = Some(outcome),
                Err(error) => {
                    running.abort_all();
                    return Err((0, QueueError(format!("publish task failed: {error}"))));
                }
            }
        }
        for (index, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Some(Ok(())) => {}
                Some(Err(error)) => return Err((index * 10, error)),
                None => return Err((index * 10, QueueError("chunk not published".to_owned()))),
            }
        }
        Ok(())
    }

    async fn send_batch(
        &self,
        entries: Vec<aws_sdk_sqs::types::SendMessageBatchRequestEntry>,
    ) -> Result<(), QueueError> {
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        match output.failed().first() {
            None => Ok(()),
            Some(failed) => Err(QueueError(format!(
                "SQS refused {} of a batch: {} {}",
                output.failed().len(),
                failed.code(),
                failed.message().unwrap_or_default()
            ))),
        }
    }
}

/// A message received from the queue.
#[derive(Debug, Clone)]
pub struct Received {
    pub message_id: String,
    pub body: String,
    pub receipt_handle: String,
    pub group_id: Option<String>,
    pub receive_count: Option<String>,
}

impl From<Received> for Record {
    fn from(message: Received) -> Self {
        Self {
            receive_count: message
                .receive_count
                .as_deref()
                .and_then(|count| count.parse().ok())
                .unwrap_or(1),
            message_id: message.message_id,
            body: message.body,
            receipt_handle: Some(message.receipt_handle),
            group_id: message.group_id,
        }
    }
}

impl SqsQueue {
    /// Long-polls for up to `max` messages (what Lambda's event source mapping does in AWS).
    pub async fn receive(&self, max: i32, wait_seconds: i32) -> Result<Vec<Received>, QueueError> {
        use aws_sdk_sqs::types::MessageSystemAttributeName as Attribute;
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(wait_seconds.clamp(0, 20))
            .message_system_attribute_names(Attribute::All)
            .send()
            .await
            .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        Ok(output
            .messages()
            .iter()
            .map(|m| {
                let attribute =
                    |name: Attribute| m.attributes().and_then(|a| a.get(&name)).cloned();
                Received {
                    message_id: m.message_id().unwrap_or_default().to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                    receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
                    group_id: attribute(Attribute::MessageGroupId),
                    receive_count: attribute(Attribute::ApproximateReceiveCount),
                }
            })
            .collect())
    }

    /// Deletes a handled message.
    pub async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        Ok(())
    }
}

impl SqsQueue {
    /// Sets the visibility of received messages, `(receipt handle, seconds)`, in batches of
    /// ten (`ChangeMessageVisibilityBatch`): one call for a whole Lambda batch, so even a
    /// batch cut short by the deadline guard has time for it. Returns how many entries SQS
    /// refused.
    pub async fn change_visibility(&self, entries: &[(&str, i32)]) -> Result<usize, QueueError> {
        let mut refused = 0;
        for chunk in entries.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(index, (receipt, seconds))| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(index.to_string())
                        .receipt_handle(*receipt)
                        .visibility_timeout((*seconds).clamp(0, 43_200))
                        .build()
                        .map_err(|e| QueueError(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
            refused += output.failed().len();
        }
        Ok(refused)
    }
}

/// An SQS client from the environment (`AWS_REGION`, credentials, and `AWS_ENDPOINT_URL`
/// to point it at a local SQS such as moto): see [`crate::aws`].
pub async fn client_from_env() -> Result<Client, crate::config::ConfigError> {
    Ok(Client::new(&crate::aws::sdk_config_from_env()?))
}
