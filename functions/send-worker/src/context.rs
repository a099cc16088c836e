//! What every send of one campaign shares (its template, channel, agent, the number's cap
//! and the tenant's time zone), read once and kept for [`CONTEXT_TTL`] per execution
//! environment, so a batch costs no reads of them.
//!
//! Staleness is safe: what must be fresh is read fresh on every batch. The campaign's
//! status comes with each batch, and a template Meta pauses or disables pauses its
//! campaigns (the template-status webhook, or 132015/132016 on a send), so a stale
//! `APPROVED` never sends to a paused campaign. Only complete contexts are kept: a missing
//! template, channel or agent is read again on the next batch.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use shared::{
    db::{
        DbError, GenericClient, campaigns as db,
        campaigns::Campaign,
        templates::{self, Template, TemplateChannel},
        users,
    },
    domain::{AgentId, CampaignId, TemplateStatus, TenantTimeZone},
};

/// How long a campaign's context is reused.
pub const CONTEXT_TTL: Duration = Duration::from_secs(10);

/// What a campaign's sends share.
#[derive(Debug)]
pub struct Context {
    pub template: Template,
    pub channel: TemplateChannel,
    pub agent: AgentId,
    /// The number's messages-per-second cap.
    pub messages_per_second: i32,
    /// The campaign's time zone, else the tenant's.
    pub zone: TenantTimeZone,
}

/// Why a campaign cannot send now (its recipients wait, the campaign pauses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Deleted, or no longer `APPROVED`.
    Template,
    /// The channel is gone or has no agent linked.
    ChannelOrAgent,
}

/// The contexts of one execution environment's recent campaigns.
#[derive(Debug, Default)]
pub struct Contexts(Mutex<HashMap<CampaignId, (Instant, Arc<Context>)>>);

impl Contexts {
    /// The campaign's context, cached or read.
    pub async fn get(
        &self,
        client: &impl GenericClient,
        campaign: &Campaign,
    ) -> Result<Result<Arc<Context>, Missing>, DbError> {
        if let Some(context) = self.cached(&campaign.campaign_id) {
            return Ok(Ok(context));
        }
        let context = match read(client, campaign).await? {
            Ok(context) => Arc::new(context),
            Err(missing) => return Ok(Err(missing)),
        };
        if let Ok(mut cache) = self.0.lock() {
            // Bounded by what one environment works on within the TTL; drop the expired.
            cache.retain(|_, (at, _)| at.elapsed() < CONTEXT_TTL);
            cache.insert(
                campaign.campaign_id.clone(),
                (Instant::now(), context.clone()),
            );
        }
        Ok(Ok(context))
    }

    fn cached(&self, campaign: &CampaignId) -> Option<Arc<Context>> {
        let cache = self.0.lock().ok()?;
        let (at, context) = cache.get(campaign)?;
        (at.elapsed() < CONTEXT_TTL).then(|| context.clone())
    }
}

async fn read(
    client: &impl GenericClient,
    campaign: &Campaign,
) -> Result<Result<Context, Missing>, DbError> {
    let user = &campaign.user_id;
    let template = templates::get(client, user, &campaign.template_id).await?;
    let Some(template) = template.filter(|t| t.status == TemplateStatus::Approved) else {
        return Ok(Err(Missing::Template));
    };
    let channel = templates::channel(client, user, &campaign.phone_number_id).await?;
    let agent = templates::channel_agent(client, user, &campaign.phone_number_id).await?;
    let (Some(channel), Some(agent)) = (channel, agent) else {
        return Ok(Err(Missing::ChannelOrAgent));
    };
    let messages_per_second = db::messages_per_second(client, &campaign.phone_number_id).await?;
    let zone = match campaign.time_zone.as_deref() {
        Some(name) => TenantTimeZone::parse(name).unwrap_or_default(),
        None => users::time_zone(client, user).await?,
    };
    Ok(Ok(Context {
        template,
        channel,
        agent,
        messages_per_second,
        zone,
    }))
}
