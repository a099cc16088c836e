//! The messages that travel on queues, and the queue port with its adapters. Producers and
//! consumers share these types, so they cannot drift apart.

mod local;
mod sqs;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use local::LocalQueue;
pub use sqs::{Received, SqsQueue, client_from_env};

/// "Answer this inbound message": published by the webhook (and webchat), consumed by the
/// conversation worker. Versioned, so a deploy can change it without losing queued jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum ReplyJob {
    /// The first version.
    #[serde(rename = "1")]
    V1 {
        /// The inbox row (`inbound_messages.platform_message_id`).
        platform_message_id: String,
        /// The channel (`pn_…`).
        phone_number_id: String,
        /// The customer on that channel.
        customer_id: String,
    },
}

impl ReplyJob {
    /// A job for one inbound message.
    pub fn new(platform_message_id: &str, phone_number_id: &str, customer_id: &str) -> Self {
        Self::V1 {
            platform_message_id: platform_message_id.to_owned(),
            phone_number_id: phone_number_id.to_owned(),
            customer_id: customer_id.to_owned(),
        }
    }

    /// The inbox row this job is about.
    pub fn platform_message_id(&self) -> &str {
        match self {
            Self::V1 {
                platform_message_id,
                ..
            } => platform_message_id,
        }
    }

    /// FIFO message group: one customer on one channel. Their messages are answered in
    /// order; different customers are answered in parallel.
    pub fn group_id(&self) -> String {
        match self {
            Self::V1 {
                phone_number_id,
                customer_id,
                ..
            } => short_hash(&format!("{phone_number_id}:{customer_id}")),
        }
    }

    /// FIFO deduplication id: the provider message id (hashed to fit SQS's 128 characters).
    pub fn deduplication_id(&self) -> String {
        short_hash(self.platform_message_id())
    }
}

fn short_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Publishing failed; the caller retries (the webhook by answering 500, so Meta redelivers).
#[derive(Debug, thiserror::Error)]
#[error("queue publish failed: {0}")]
pub struct QueueError(pub String);

/// Where reply jobs go: SQS FIFO in AWS, an in-process queue in devstack and tests.
#[derive(Debug, Clone)]
pub enum ReplyQueue {
    /// In-process.
    Local(LocalQueue),
    /// SQS FIFO.
    Sqs(SqsQueue),
}

impl ReplyQueue {
    /// Publishes one job.
    pub async fn publish(&self, job: &ReplyJob) -> Result<(), QueueError> {
        match self {
            Self::Local(queue) => queue.publish(job),
            Self::Sqs(queue) => queue.publish(job).await,
        }
    }
}

/// The reply queue of a deployed function: `REPLY_QUEUE_URL` (SQS FIFO).
pub async fn from_env() -> Result<ReplyQueue, crate::config::ConfigError> {
    let url = crate::config::required_var("REPLY_QUEUE_URL")?;
    Ok(ReplyQueue::Sqs(SqsQueue::new(client_from_env().await, url)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_serialize_with_their_version() {
        let job = ReplyJob::new("wamid.1", "pn_1", "16505551234");
        let json = serde_json::to_value(&job).expect("serializes");
        assert_eq!(json["version"], "1");
        assert_eq!(json["platform_message_id"], "wamid.1");
        assert_eq!(
            serde_json::from_value::<ReplyJob>(json).expect("deserializes"),
            job
        );
    }

    #[test]
    fn group_and_deduplication_ids_fit_sqs_limits_and_are_stable() {
        let job = ReplyJob::new(&"m".repeat(300), "pn_1", &"c".repeat(100));
        assert_eq!(job.group_id().len(), 64);
        assert_eq!(job.deduplication_id().len(), 64);
        assert_eq!(
            job.group_id(),
            ReplyJob::new("other", "pn_1", &"c".repeat(100)).group_id()
        );
        assert_ne!(
            job.group_id(),
            ReplyJob::new("x", "pn_2", &"c".repeat(100)).group_id()
        );
    }
}
