//! Queue jobs: the messages that travel on queues, the queue port with its adapters, and the
//! batch lifter that runs a consumer's batch. Producers and consumers share these types, so
//! they cannot drift apart.
//!
//! - A [`Job`] is a versioned serde type that names its queue and, on a FIFO queue, its
//!   message group and deduplication id. [`ReplyJob`] is the first; campaign-start, send and
//!   extraction jobs are the next.
//! - A [`Queue<J>`] publishes jobs of one type: to SQS ([`SqsQueue`]) in AWS, to an
//!   in-process [`LocalQueue`] in devstack and tests.
//! - [`batch::Lifter`] runs a batch of received records through a consumer's handler:
//!   partial batch failures, FIFO hold-back, visibility backoff, a deadline guard.

pub mod batch;
pub mod campaign;
pub mod lambda;
mod local;
mod sqs;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

pub use batch::{BatchReport, JobError, Lifter, LifterConfig, Record};
pub use campaign::{CampaignStartJob, CampaignStartQueue, SendJob, SendQueue, StartReason};
pub use local::LocalQueue;
pub use sqs::{Received, SqsQueue, client_from_env};

/// Which queue a job type travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSpec {
    /// A short name for logs and spans (`replies`).
    pub name: &'static str,
    /// The environment variable holding the queue's URL in a deployed function.
    pub url_var: &'static str,
    /// FIFO queues need a group id and a deduplication id on every message.
    pub fifo: bool,
}

/// A job: one message on one queue. Serialized with a `version` tag, so a deploy can change
/// the shape without losing queued jobs: a consumer that meets a version it does not know
/// reports the message as poison instead of guessing.
pub trait Job:
    Serialize + DeserializeOwned + Clone + std::fmt::Debug + Send + Sync + 'static
{
    /// The queue this job type travels on.
    const QUEUE: QueueSpec;

    /// The serialized version tag of this job.
    fn version(&self) -> &'static str;

    /// FIFO message group: jobs of one group are handled in publish order, groups in
    /// parallel. `None` on a standard queue.
    fn group_id(&self) -> Option<String>;

    /// FIFO deduplication id: the same id published twice within SQS's five-minute window
    /// is delivered once. `None` on a standard queue.
    fn deduplication_id(&self) -> Option<String>;
}

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
}

impl Job for ReplyJob {
    const QUEUE: QueueSpec = QueueSpec {
        name: "replies",
        url_var: "REPLY_QUEUE_URL",
        fifo: true,
    };

    fn version(&self) -> &'static str {
        match self {
            Self::V1 { .. } => "1",
        }
    }

    /// One customer on one channel: their messages are answered in order; different
    /// customers are answered in parallel.
    fn group_id(&self) -> Option<String> {
        match self {
            Self::V1 {
                phone_number_id,
                customer_id,
                ..
            } => Some(short_hash(&format!("{phone_number_id}:{customer_id}"))),
        }
    }

    /// The provider message id (hashed to fit SQS's 128 characters).
    fn deduplication_id(&self) -> Option<String> {
        Some(short_hash(self.platform_message_id()))
    }
}

/// Why an extraction was asked for. The handler checks the reason against the
/// conversation's state when it runs, so a stale or repeated job does nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtractionTrigger {
    /// The customer wrote N messages since the last extraction (the sweep found it).
    NewMessages,
    /// The conversation has been quiet for the configured time (the sweep found it).
    Quiet,
    /// `POST /conversations/{id}/extract`.
    OnDemand,
}

impl ExtractionTrigger {
    /// The name in logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NewMessages => "new_messages",
            Self::Quiet => "quiet",
            Self::OnDemand => "on_demand",
        }
    }
}

/// "Score this conversation as a lead": published by the extraction sweep and by
/// `POST /conversations/{id}/extract`, consumed by the `extraction-worker`. A standard
/// (not FIFO) queue: the handler is idempotent on the conversation's message count, and
/// concurrent jobs of one conversation are serialised by its row lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum ExtractionJob {
    /// The first version.
    #[serde(rename = "1")]
    V1 {
        /// The tenant (`users.user_id`).
        user_id: String,
        /// The conversation (`conv_…`).
        conversation_id: String,
        /// Why it was asked for.
        trigger: ExtractionTrigger,
    },
}

impl ExtractionJob {
    /// A job for one conversation of a tenant.
    pub fn new(user_id: &str, conversation_id: &str, trigger: ExtractionTrigger) -> Self {
        Self::V1 {
            user_id: user_id.to_owned(),
            conversation_id: conversation_id.to_owned(),
            trigger,
        }
    }

    /// The tenant.
    pub fn user_id(&self) -> &str {
        match self {
            Self::V1 { user_id, .. } => user_id,
        }
    }

    /// The conversation.
    pub fn conversation_id(&self) -> &str {
        match self {
            Self::V1 {
                conversation_id, ..
            } => conversation_id,
        }
    }

    /// Why it was asked for.
    pub fn trigger(&self) -> ExtractionTrigger {
        match self {
            Self::V1 { trigger, .. } => *trigger,
        }
    }
}

impl Job for ExtractionJob {
    const QUEUE: QueueSpec = QueueSpec {
        name: "extractions",
        url_var: "EXTRACTION_QUEUE_URL",
        fifo: false,
    };

    fn version(&self) -> &'static str {
        match self {
            Self::V1 { .. } => "1",
        }
    }

    fn group_id(&self) -> Option<String> {
        None
    }

    fn deduplication_id(&self) -> Option<String> {
        None
    }
}

/// The extraction queue: sweep and API → extraction worker.
pub type ExtractionQueue = Queue<ExtractionJob>;

pub(crate) fn short_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Publishing (or receiving) failed; a producer retries (the webhook by answering 5xx, so
/// Meta redelivers).
/// How many `SendMessageBatch` calls one [`Queue::publish_all`] keeps in flight.
pub const PUBLISH_CONCURRENCY: usize = 8;

#[derive(Debug, thiserror::Error)]
#[error("queue publish failed: {0}")]
pub struct QueueError(pub String);

/// Where jobs of type `J` go: SQS in AWS, an in-process queue in devstack and tests.
#[derive(Debug, Clone)]
pub enum Queue<J: Job> {
    /// In-process.
    Local(LocalQueue<J>),
    /// SQS (FIFO when `J::QUEUE.fifo`).
    Sqs(SqsQueue),
}

/// The reply queue: webhook → conversation worker.
pub type ReplyQueue = Queue<ReplyJob>;

impl<J: Job> Queue<J> {
    /// Publishes one job.
    pub async fn publish(&self, job: &J) -> Result<(), QueueError> {
        match self {
            Self::Local(queue) => queue.publish(job),
            Self::Sqs(queue) => queue.publish(job).await,
        }
    }

    /// Publishes many jobs: on SQS with `SendMessageBatch` (ten per call, up to
    /// [`PUBLISH_CONCURRENCY`] calls at once). Returns how many were published before the
    /// first failure, with that failure: the caller knows exactly which jobs went out.
    pub async fn publish_all(&self, jobs: &[J]) -> Result<(), (usize, QueueError)> {
        match self {
            Self::Local(queue) => {
                for (i, job) in jobs.iter().enumerate() {
                    queue.publish(job).map_err(|e| (i, e))?;
                }
                Ok(())
            }
            Self::Sqs(queue) => queue.publish_all(jobs).await,
        }
    }
}

/// The queue of `J` in a deployed function: SQS at the URL in `J::QUEUE.url_var`.
pub async fn from_env<J: Job>() -> Result<Queue<J>, crate::config::ConfigError> {
    let url = crate::config::required_var(J::QUEUE.url_var)?;
    Ok(Queue::Sqs(SqsQueue::new(client_from_env().await?, url)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_serialize_with_their_version() {
        let job = ReplyJob::new("wamid.1", "pn_1", "16505551234");
        let json = serde_json::to_value(&job).expect("serializes");
        assert_eq!(json["version"], job.version());
        assert_eq!(json["platform_message_id"], "wamid.1");
        assert_eq!(
            serde_json::from_value::<ReplyJob>(json).expect("deserializes"),
            job
        );
    }

    #[test]
    fn an_unknown_version_does_not_deserialize() {
        let body =
            r#"{"version":"2","platform_message_id":"m","phone_number_id":"pn","customer_id":"c"}"#;
        assert!(serde_json::from_str::<ReplyJob>(body).is_err());
    }

    #[test]
    fn group_and_deduplication_ids_fit_sqs_limits_and_are_stable() {
        let job = ReplyJob::new(&"m".repeat(300), "pn_1", &"c".repeat(100));
        let group = job.group_id().expect("FIFO");
        assert_eq!(group.len(), 64);
        assert_eq!(job.deduplication_id().map(|id| id.len()), Some(64));
        assert_eq!(
            Some(group.clone()),
            ReplyJob::new("other", "pn_1", &"c".repeat(100)).group_id()
        );
        assert_ne!(
            Some(group),
            ReplyJob::new("x", "pn_2", &"c".repeat(100)).group_id()
        );
    }
}
