//! The campaign jobs: [`CampaignStartJob`] (resolve a campaign's recipients once, then fan
//! out what is due) on the FIFO `campaign-start` queue, and [`SendJob`] (one recipient's
//! template send) on the standard `sends` queue.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Job, QueueSpec, short_hash};

/// Why a start job was published (logs; the handler does the same for all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartReason {
    /// `POST /campaigns/{id}/start` of an IMMEDIATE campaign.
    Start,
    /// The campaign's EventBridge schedule fired.
    Schedule,
    /// `POST /campaigns/{id}/resume` or `/retry-failed`.
    Resume,
    /// The sweep found due recipients (after quiet hours, a deferral, a lost job).
    Sweep,
}

/// Resolve (once) and fan out a campaign. Idempotent: the same job delivered three times
/// writes one set of recipients and publishes one send job per recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum CampaignStartJob {
    #[serde(rename = "1")]
    V1 {
        user_id: String,
        campaign_id: String,
        reason: StartReason,
        /// When it was published: with the campaign, its deduplication id.
        at: DateTime<Utc>,
    },
}

impl CampaignStartJob {
    pub fn new(user_id: &str, campaign_id: &str, reason: StartReason) -> Self {
        Self::V1 {
            user_id: user_id.to_owned(),
            campaign_id: campaign_id.to_owned(),
            reason,
            at: Utc::now(),
        }
    }

    pub fn user_id(&self) -> &str {
        match self {
            Self::V1 { user_id, .. } => user_id,
        }
    }

    pub fn campaign_id(&self) -> &str {
        match self {
            Self::V1 { campaign_id, .. } => campaign_id,
        }
    }

    pub fn reason(&self) -> StartReason {
        match self {
            Self::V1 { reason, .. } => *reason,
        }
    }
}

impl Job for CampaignStartJob {
    const QUEUE: QueueSpec = QueueSpec {
        name: "campaign-start",
        url_var: "CAMPAIGN_START_QUEUE_URL",
        fifo: true,
    };

    fn version(&self) -> &'static str {
        "1"
    }

    /// One campaign's start jobs run one at a time.
    fn group_id(&self) -> Option<String> {
        Some(short_hash(self.campaign_id()))
    }

    fn deduplication_id(&self) -> Option<String> {
        match self {
            Self::V1 {
                campaign_id, at, ..
            } => Some(short_hash(&format!(
                "{campaign_id}:{}",
                at.timestamp_micros()
            ))),
        }
    }
}

/// Send one campaign recipient its template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum SendJob {
    #[serde(rename = "1")]
    V1 {
        user_id: String,
        campaign_id: String,
        recipient_id: String,
    },
}

impl SendJob {
    pub fn new(user_id: &str, campaign_id: &str, recipient_id: &str) -> Self {
        Self::V1 {
            user_id: user_id.to_owned(),
            campaign_id: campaign_id.to_owned(),
            recipient_id: recipient_id.to_owned(),
        }
    }

    pub fn user_id(&self) -> &str {
        match self {
            Self::V1 { user_id, .. } => user_id,
        }
    }

    pub fn campaign_id(&self) -> &str {
        match self {
            Self::V1 { campaign_id, .. } => campaign_id,
        }
    }

    pub fn recipient_id(&self) -> &str {
        match self {
            Self::V1 { recipient_id, .. } => recipient_id,
        }
    }
}

impl Job for SendJob {
    const QUEUE: QueueSpec = QueueSpec {
        name: "sends",
        url_var: "SEND_QUEUE_URL",
        fifo: false,
    };

    fn version(&self) -> &'static str {
        "1"
    }

    /// A standard queue with fair groups: the tenant is the group, so SQS serves a tenant
    /// with a small backlog before a big one's (see docs/architecture.md, "Fairness").
    fn group_id(&self) -> Option<String> {
        Some(short_hash(self.user_id()))
    }

    fn deduplication_id(&self) -> Option<String> {
        None
    }
}

pub type CampaignStartQueue = super::Queue<CampaignStartJob>;
pub type SendQueue = super::Queue<SendJob>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_jobs_group_by_tenant_and_start_jobs_by_campaign() {
        let a = SendJob::new("tenant-a", "cmp_1", "rcp_1");
        let b = SendJob::new("tenant-a", "cmp_2", "rcp_2");
        let c = SendJob::new("tenant-b", "cmp_3", "rcp_3");
        assert_eq!(a.group_id(), b.group_id());
        assert_ne!(a.group_id(), c.group_id());
        assert_eq!(a.deduplication_id(), None);
        let start = CampaignStartJob::new("tenant-a", "cmp_1", StartReason::Start);
        let body = serde_json::to_value(&start).expect("json");
        assert_eq!(body["version"], "1");
        assert_eq!(body["reason"], "start");
        assert_eq!(start.deduplication_id().map(|d| d.len()), Some(64));
    }
}
