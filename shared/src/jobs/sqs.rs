use aws_sdk_sqs::Client;

use super::{QueueError, ReplyJob};

/// An SQS FIFO queue. The group id keeps one customer's messages in order; the
/// deduplication id drops a job published twice within SQS's five-minute window.
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

    pub(super) async fn publish(&self, job: &ReplyJob) -> Result<(), QueueError> {
        let body = serde_json::to_string(job).map_err(|e| QueueError(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_group_id(job.group_id())
            .message_deduplication_id(job.deduplication_id())
            .send()
            .await
            .map_err(|e| QueueError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        Ok(())
    }
}

/// An SQS client from the environment (`AWS_REGION`, credentials, and `AWS_ENDPOINT_URL`
/// to point it at a local SQS such as moto).
pub async fn client_from_env() -> Client {
    Client::new(&aws_config::load_from_env().await)
}
