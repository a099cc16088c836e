//! A SCHEDULED campaign's one-time schedule (`shared::scheduler`): created when it starts,
//! replaced when it is rescheduled, deleted when it is cancelled. The schedule sends a
//! campaign-start job to the campaign-start queue at the campaign's time, written as a wall
//! time in the campaign's time zone (the tenant's when it has none).

use shared::{
    api::ApiError,
    db::{GenericClient, campaigns::Campaign, users},
    domain::{CampaignId, TenantTimeZone},
    jobs::{CampaignStartJob, Job, StartReason},
    scheduler::{OneTimeSchedule, SchedulerError},
};

use crate::CampaignsState;

fn unavailable(error: SchedulerError) -> ApiError {
    match error {
        SchedulerError::NonexistentLocalTime { .. } => {
            ApiError::invalid("trigger.scheduled_at", error.to_string())
        }
        other => ApiError::Unavailable(Box::new(other)),
    }
}

/// Creates or replaces the campaign's schedule.
pub async fn upsert(
    state: &CampaignsState,
    client: &impl GenericClient,
    campaign: &Campaign,
) -> Result<(), ApiError> {
    let Some(at) = campaign.trigger.scheduled_at else {
        return Err(ApiError::invalid(
            "trigger.scheduled_at",
            "is required for a SCHEDULED trigger",
        ));
    };
    let zone = match campaign.time_zone.as_deref() {
        Some(name) => TenantTimeZone::parse(name).unwrap_or_default(),
        None => users::time_zone(client, &campaign.user_id).await?,
    };
    let job = CampaignStartJob::new(
        campaign.user_id.as_str(),
        campaign.campaign_id.as_str(),
        StartReason::Schedule,
    );
    let input = serde_json::to_string(&job).map_err(|e| ApiError::Internal(Box::new(e)))?;
    let local = zone.local(at).naive_local();
    let name =
        OneTimeSchedule::campaign_name(campaign.campaign_id.as_str()).map_err(unavailable)?;
    let mut schedule =
        OneTimeSchedule::new(name, local, zone.name(), input).map_err(unavailable)?;
    if let Some(group) = job.group_id() {
        schedule = schedule.with_message_group(group).map_err(unavailable)?;
    }
    state
        .scheduler
        .upsert(&schedule)
        .await
        .map_err(unavailable)?;
    tracing::info!(campaign.id = %campaign.campaign_id, schedule = %schedule.name, at = %schedule.expression(), time_zone = %schedule.time_zone, "campaign scheduled");
    Ok(())
}

/// Deletes the campaign's schedule (one that already fired or never existed is fine).
pub async fn delete(state: &CampaignsState, campaign: &CampaignId) -> Result<(), ApiError> {
    let name = OneTimeSchedule::campaign_name(campaign.as_str()).map_err(unavailable)?;
    state.scheduler.delete(&name).await.map_err(unavailable)
}

/// Arms every SCHEDULED campaign's schedule again: for an in-process scheduler (devstack),
/// which forgets its schedules when it stops while the campaigns stay SCHEDULED. A
/// schedule whose time passed meanwhile fires at once. Returns how many were armed.
pub async fn rearm_all(state: &CampaignsState) -> Result<usize, ApiError> {
    let client = state
        .api
        .pool
        .get()
        .await
        .map_err(shared::db::DbError::from)?;
    let scheduled = shared::db::campaigns::all_scheduled(&client, 10_000).await?;
    for campaign in &scheduled {
        upsert(state, &client, campaign).await?;
    }
    Ok(scheduled.len())
}
