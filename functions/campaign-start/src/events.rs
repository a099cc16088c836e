//! EVENT campaigns: one domain event (`shared::events::EventJob`, from the events queue)
//! sends the template to the contact behind it, in every RUNNING EVENT campaign of the
//! tenant that listens to that event and whose filter the contact matches, at most once per
//! campaign.
//!
//! - `TAG_ADDED` fires the campaigns whose `event_config.tag` is the tag added.
//! - `CONVERSATION_ENDED` with `event_config.inactiveMinutes` sends once the conversation
//!   has been quiet that long (the recipient waits `PENDING` until then; the sweep sends it).
//! - `NEW_EXTRACTION`, `LEAD_HOT`, `LEAD_WARM` fire for their contact.
//!
//! An import's `TAG_ADDED` lists up to 200 contacts (`EventJob::contacts`): each is handled
//! as its own event.
//!
//! A redelivered event (SQS at least once, a publisher retry beyond FIFO's deduplication
//! window) adds nobody twice: `(campaign_id, contact_id)` is unique.

use chrono::{DateTime, Duration, Utc};
use shared::{
    db::campaigns::{self, EventRecipient},
    domain::{ContactId, TriggerEvent, UserId},
    events::EventJob,
    jobs::{JobError, SendJob},
};

use crate::CampaignStartState;

/// What one event did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventOutcome {
    /// Campaigns that listen to this event type.
    pub campaigns: usize,
    /// New recipients (sent now or when due).
    pub added: usize,
    /// Send jobs published now.
    pub published: usize,
}

/// Whether the campaign's `event_config` accepts this event, and when its send is due.
fn accepts(
    event: TriggerEvent,
    config: &serde_json::Value,
    payload: &serde_json::Value,
) -> Option<Option<DateTime<Utc>>> {
    match event {
        TriggerEvent::TagAdded => {
            (config["tag"].as_str().is_some() && config["tag"] == payload["tag"]).then_some(None)
        }
        TriggerEvent::ConversationEnded => {
            let Some(minutes) = config["inactiveMinutes"].as_i64() else {
                return Some(None);
            };
            let last = payload["last_message_at"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))?;
            Some(Some(last + Duration::minutes(minutes)))
        }
        _ => Some(None),
    }
}

/// Handles one domain event (see the module documentation).
#[tracing::instrument(skip_all, fields(event.id = %job.event_id()))]
pub async fn handle_event(
    state: &CampaignStartState,
    job: &EventJob,
) -> Result<EventOutcome, JobError> {
    let EventJob::V1 {
        user_id,
        event_type,
        payload,
        ..
    } = job;
    let user = UserId::parse(user_id)
        .ok_or_else(|| JobError::Poison("event with an invalid tenant".to_owned()))?;
    // One contact, or an import's TAG_ADDED listing up to 200.
    let contacts: Vec<ContactId> = job.contacts().filter_map(ContactId::parse).collect();
    if contacts.is_empty() {
        return Ok(EventOutcome::default());
    }
    let mut client = state.pool.get().await?;
    let listening = campaigns::event_campaigns(&client, &user, *event_type).await?;
    let mut outcome = EventOutcome {
        campaigns: listening.len(),
        ..EventOutcome::default()
    };
    for campaign in listening {
        let Some(not_before) = accepts(*event_type, &campaign.trigger.event_config, payload) else {
            continue;
        };
        let options = super::resolve_options(&client, &campaign).await?;
        for contact in &contacts {
            let tx = client.transaction().await?;
            let added =
                campaigns::add_event_recipient(&tx, &campaign, contact, options, not_before)
                    .await?;
            tx.commit().await?;
            let EventRecipient::Added { recipient, queued } = added else {
                continue;
            };
            outcome.added += 1;
            if !queued {
                continue;
            }
            let send = SendJob::new(
                user.as_str(),
                campaign.campaign_id.as_str(),
                recipient.as_str(),
            );
            if let Err(error) = state.sends.publish(&send).await {
                // Back to PENDING: the sweep fans it out.
                campaigns::unqueue(&client, std::slice::from_ref(&recipient)).await?;
                return Err(JobError::retryable(format!(
                    "send job not published: {error}"
                )));
            }
            outcome.published += 1;
        }
    }
    tracing::info!(
        event_type = %event_type,
        campaigns = outcome.campaigns,
        added = outcome.added,
        "event triggers"
    );
    Ok(outcome)
}
