//! The request and response shapes of `/campaigns`, and how a request becomes a
//! [`CampaignDraft`] (every field checked, every problem named at once).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::{
    api::{ApiError, FieldErrors},
    db::{
        GenericClient,
        campaigns::{Campaign, CampaignDraft, Counts},
        templates::{self, Template},
    },
    domain::{
        CampaignStatus, ComponentType, PhoneNumberId, Platform, TemplateId, TenantTimeZone,
        TriggerEvent, TriggerType, UserId,
        campaign::{QuietHours, RecipientFilterBody, VariableSource},
        parse_instant,
    },
};
use utoipa::ToSchema;

/// The longest campaign name.
const MAX_NAME_CHARS: usize = 255;
/// The longest description.
const MAX_DESCRIPTION_CHARS: usize = 2_000;
/// How far ahead a campaign may be scheduled.
const MAX_SCHEDULE_DAYS_AHEAD: i64 = 366;

/// When and how a campaign starts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    pub trigger_type: TriggerType,
    /// SCHEDULED: ISO-8601 with an offset (`2030-03-01T09:00:00+01:00`), or a wall-clock
    /// time (`2030-03-01T09:00`) read in `timezone` (else the tenant's time zone). At least
    /// a minute ahead, at most 366 days.
    #[serde(default)]
    pub scheduled_at: Option<String>,
    /// IANA time zone of `scheduled_at` and of the quiet hours (default: the tenant's).
    #[serde(default)]
    #[schema(max_length = 64)]
    pub timezone: Option<String>,
    /// EVENT: the domain event that sends the template to its contact.
    #[serde(default)]
    pub event_type: Option<TriggerEvent>,
    /// EVENT: `{"tag": "vip"}` for TAG_ADDED (required); `{"inactiveMinutes": 60}` for
    /// CONVERSATION_ENDED (optional).
    #[serde(default)]
    pub event_config: Option<Value>,
}

/// Hours of the day not to send, local to the campaign's time zone (`22:00`–`08:00` spans
/// midnight).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursBody {
    /// `HH:MM`.
    #[schema(pattern = "^[0-2][0-9]:[0-5][0-9]$")]
    pub start: String,
    /// `HH:MM`.
    #[schema(pattern = "^[0-2][0-9]:[0-5][0-9]$")]
    pub end: String,
}

/// How a campaign sends.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptionsBody {
    #[serde(default)]
    pub quiet_hours: Option<QuietHoursBody>,
    /// MARKETING templates: at most one per contact in this many hours (0 to 720; default
    /// 24; 0 turns the cap off).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 720)]
    pub frequency_cap_hours: Option<i32>,
    /// At most this many messages per second (1 to 1,000; never above the number's own
    /// cap, 80 by default).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
    pub send_rate_per_second: Option<i32>,
}

/// A new campaign.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCampaign {
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    /// `tpl_…`: an APPROVED or not yet approved WhatsApp template of `phone_number_id`.
    pub template_id: String,
    /// `pn_…`: the WhatsApp channel that sends it.
    pub phone_number_id: String,
    #[serde(default)]
    pub recipient_filter: RecipientFilterBody,
    /// Each template variable (by name, or by position for positional body variables): a
    /// literal, or `{"contact_field": "name" | "email" | "company" | "phone"}`. A variable
    /// left out, or whose contact field is empty, takes its `default_value`; a recipient
    /// left without a value is FAILED, never sent with a hole.
    #[serde(default)]
    pub variable_values: BTreeMap<String, VariableSource>,
    pub trigger: TriggerBody,
    #[serde(default)]
    pub options: OptionsBody,
}

/// Changes to a DRAFT or SCHEDULED campaign: only the fields given change. Each is
/// replaced whole: `options`, `trigger`, `recipient_filter` and `variable_values` as given
/// (give every option to keep along with the one that changes).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchCampaign {
    #[schema(min_length = 1, max_length = 255)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "shared::api::openapi::nullable")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    pub description: Option<Option<String>>,
    pub template_id: Option<String>,
    pub phone_number_id: Option<String>,
    pub recipient_filter: Option<RecipientFilterBody>,
    pub variable_values: Option<BTreeMap<String, VariableSource>>,
    pub trigger: Option<TriggerBody>,
    pub options: Option<OptionsBody>,
}

impl PatchCampaign {
    /// The campaign as it would be with these changes.
    pub fn apply(self, current: &CreateCampaign) -> CreateCampaign {
        CreateCampaign {
            name: self.name.unwrap_or_else(|| current.name.clone()),
            description: self
                .description
                .unwrap_or_else(|| current.description.clone()),
            template_id: self
                .template_id
                .unwrap_or_else(|| current.template_id.clone()),
            phone_number_id: self
                .phone_number_id
                .unwrap_or_else(|| current.phone_number_id.clone()),
            recipient_filter: self
                .recipient_filter
                .unwrap_or_else(|| current.recipient_filter.clone()),
            variable_values: self
                .variable_values
                .unwrap_or_else(|| current.variable_values.clone()),
            trigger: self.trigger.unwrap_or_else(|| current.trigger.clone()),
            options: self.options.unwrap_or_else(|| current.options.clone()),
        }
    }
}

/// A stored campaign written back in the request's shape (what PATCH starts from).
pub fn as_request(c: &Campaign) -> CreateCampaign {
    CreateCampaign {
        name: c.name.clone(),
        description: c.description.clone(),
        template_id: c.template_id.to_string(),
        phone_number_id: c.phone_number_id.to_string(),
        recipient_filter: c.recipient_filter.to_body(),
        variable_values: c.variable_values.clone(),
        trigger: TriggerBody {
            trigger_type: c.trigger.trigger_type,
            scheduled_at: c.trigger.scheduled_at.map(|t| t.to_rfc3339()),
            timezone: c.time_zone.clone(),
            event_type: c.trigger.event_type,
            event_config: Some(c.trigger.event_config.clone()),
        },
        options: OptionsBody {
            quiet_hours: c.quiet_hours.map(|(start, end)| QuietHoursBody {
                start: start.format("%H:%M").to_string(),
                end: end.format("%H:%M").to_string(),
            }),
            frequency_cap_hours: c.frequency_cap_hours,
            send_rate_per_second: c.send_rate_per_second,
        },
    }
}

fn hh_mm(raw: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(raw, "%H:%M").map_err(|_| "must be a time `HH:MM`".to_owned())
}

/// Checks a request against the tenant's data and turns it into a draft, or a 422 naming
/// every problem. A scheduled time is checked against `now` (at least a minute ahead, at
/// most `MAX_SCHEDULE_DAYS_AHEAD`) when given: `None` when the trigger is kept as it is (a
/// PATCH without `trigger` in a SCHEDULED campaign's last minute; starting checks the time).
pub async fn draft(
    client: &impl GenericClient,
    user: &UserId,
    body: &CreateCampaign,
    now: Option<DateTime<Utc>>,
) -> Result<(CampaignDraft, Template), ApiError> {
    let mut errors = FieldErrors::default();
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.contains('\0') {
        errors.push(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters, without NUL"),
        );
    }
    let description = body
        .description
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty());
    if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS || d.contains('\0')) {
        errors.push(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters, without NUL"),
        );
    }
    let filter = match body.recipient_filter.parse("recipient_filter") {
        Ok(filter) => Some(filter),
        Err(problems) => {
            for (field, message) in problems {
                errors.push(&field, message);
            }
            None
        }
    };
    let zone = match body.trigger.timezone.as_deref() {
        Some(name) => errors.check("trigger.timezone", TenantTimeZone::parse(name)),
        None => Some(shared::db::users::time_zone(client, user).await?),
    };
    let (scheduled_at, event_type, event_config) =
        trigger_fields(&body.trigger, zone, now, &mut errors);
    let quiet_hours = body.options.quiet_hours.as_ref().and_then(|q| {
        let start = errors.check("options.quiet_hours.start", hh_mm(&q.start));
        let end = errors.check("options.quiet_hours.end", hh_mm(&q.end));
        let (start, end) = start.zip(end)?;
        errors
            .check("options.quiet_hours", QuietHours::new(start, end))
            .map(|_| (start, end))
    });
    if let Some(cap) = body.options.frequency_cap_hours {
        if !(0..=720).contains(&cap) {
            errors.push("options.frequency_cap_hours", "must be between 0 and 720");
        }
    }
    if let Some(rate) = body.options.send_rate_per_second {
        if !(1..=1000).contains(&rate) {
            errors.push("options.send_rate_per_second", "must be between 1 and 1000");
        }
    }

    let template = match TemplateId::parse(&body.template_id) {
        Some(id) => templates::get(client, user, &id).await?,
        None => None,
    };
    let channel_id = PhoneNumberId::parse(&body.phone_number_id);
    let channel = match &channel_id {
        Some(id) => templates::channel(client, user, id).await?,
        None => None,
    };
    match &channel {
        None => errors.push("phone_number_id", "is not one of your channels"),
        Some(c) if c.platform != Platform::WhatsApp => errors.push(
            "phone_number_id",
            format!(
                "is a {} channel: campaigns send WhatsApp templates",
                c.platform
            ),
        ),
        Some(_) => {}
    }
    match (&template, &channel_id) {
        (None, _) => errors.push("template_id", "is not one of your templates"),
        (Some(t), Some(channel)) if &t.phone_number_id != channel => errors.push(
            "template_id",
            "belongs to another channel than `phone_number_id`: a template is sent from the number it was approved for",
        ),
        _ => {}
    }
    if let Some(template) = &template {
        check_variables(template, &body.variable_values, &mut errors);
    }
    errors.into_result()?;
    let (Some(filter), Some(template), Some(channel_id)) = (filter, template, channel_id) else {
        return Err(ApiError::invalid(
            "template_id",
            "is not one of your templates",
        ));
    };
    Ok((
        CampaignDraft {
            template_id: template.template_id.clone(),
            phone_number_id: channel_id,
            name: name.to_owned(),
            description: description.map(ToOwned::to_owned),
            recipient_filter: filter,
            variable_values: body.variable_values.clone(),
            time_zone: body
                .trigger
                .timezone
                .as_deref()
                .and_then(|_| zone.map(|z| z.name().to_owned())),
            quiet_hours,
            frequency_cap_hours: body.options.frequency_cap_hours,
            send_rate_per_second: body.options.send_rate_per_second,
            trigger_type: body.trigger.trigger_type,
            scheduled_at,
            event_type,
            event_config,
        },
        template,
    ))
}

fn trigger_fields(
    trigger: &TriggerBody,
    zone: Option<TenantTimeZone>,
    now: Option<DateTime<Utc>>,
    errors: &mut FieldErrors,
) -> (Option<DateTime<Utc>>, Option<TriggerEvent>, Value) {
    let config = trigger
        .event_config
        .clone()
        .unwrap_or(Value::Object(Default::default()));
    let has_config = trigger
        .event_config
        .as_ref()
        .is_some_and(|c| !matches!(c, Value::Object(map) if map.is_empty()) && !c.is_null());
    if has_config && trigger.trigger_type != TriggerType::Event {
        errors.push("trigger.event_config", "is only for EVENT triggers");
    }
    match trigger.trigger_type {
        TriggerType::Immediate => {
            if trigger.scheduled_at.is_some() || trigger.event_type.is_some() {
                errors.push(
                    "trigger",
                    "an IMMEDIATE trigger takes neither `scheduled_at` nor `event_type`",
                );
            }
            (None, None, Value::Object(Default::default()))
        }
        TriggerType::Scheduled => {
            let at = match (&trigger.scheduled_at, zone) {
                (None, _) => {
                    errors.push(
                        "trigger.scheduled_at",
                        "is required for a SCHEDULED trigger",
                    );
                    None
                }
                (Some(raw), Some(zone)) => {
                    errors.check("trigger.scheduled_at", parse_instant(raw, zone))
                }
                (Some(_), None) => None,
            };
            if let (Some(at), Some(now)) = (at, now) {
                if at < now + Duration::minutes(1) {
                    errors.push("trigger.scheduled_at", "must be at least a minute from now");
                } else if at > now + Duration::days(MAX_SCHEDULE_DAYS_AHEAD) {
                    errors.push(
                        "trigger.scheduled_at",
                        format!("must be at most {MAX_SCHEDULE_DAYS_AHEAD} days ahead"),
                    );
                }
            }
            if trigger.event_type.is_some() {
                errors.push("trigger.event_type", "is only for EVENT triggers");
            }
            (at, None, Value::Object(Default::default()))
        }
        TriggerType::Event => {
            if trigger.scheduled_at.is_some() {
                errors.push("trigger.scheduled_at", "is only for SCHEDULED triggers");
            }
            let Some(event) = trigger.event_type else {
                errors.push("trigger.event_type", "is required for an EVENT trigger");
                return (None, None, config);
            };
            let config = event_config(event, &config, errors);
            (None, Some(event), config)
        }
    }
}

fn event_config(event: TriggerEvent, config: &Value, errors: &mut FieldErrors) -> Value {
    let Some(object) = config.as_object() else {
        errors.push("trigger.event_config", "must be an object");
        return Value::Object(Default::default());
    };
    let allowed: &[&str] = match event {
        TriggerEvent::TagAdded => &["tag"],
        TriggerEvent::ConversationEnded => &["inactiveMinutes"],
        _ => &[],
    };
    for key in object.keys() {
        if !allowed.contains(&key.as_str()) {
            errors.push(
                &format!("trigger.event_config.{key}"),
                format!("is not a setting of {event}"),
            );
        }
    }
    let mut clean = serde_json::Map::new();
    if event == TriggerEvent::TagAdded {
        match object.get("tag").and_then(Value::as_str) {
            None => errors.push("trigger.event_config.tag", "is required for TAG_ADDED"),
            Some(raw) => {
                if let Some(tag) =
                    errors.check("trigger.event_config.tag", shared::domain::Tag::parse(raw))
                {
                    clean.insert("tag".to_owned(), Value::String(tag.as_str().to_owned()));
                }
            }
        }
    }
    if event == TriggerEvent::ConversationEnded {
        if let Some(value) = object.get("inactiveMinutes") {
            match value.as_i64() {
                Some(minutes) if (1..=43_200).contains(&minutes) => {
                    clean.insert("inactiveMinutes".to_owned(), Value::from(minutes));
                }
                _ => errors.push(
                    "trigger.event_config.inactiveMinutes",
                    "must be a whole number of minutes, 1 to 43200",
                ),
            }
        }
    }
    Value::Object(clean)
}

/// Every key names a variable of the template, and every literal is one Meta takes.
pub(crate) fn check_variables(
    template: &Template,
    values: &BTreeMap<String, VariableSource>,
    errors: &mut FieldErrors,
) {
    let content = &template.draft.content;
    let literals: BTreeMap<String, String> = values
        .iter()
        .filter_map(|(k, v)| match v {
            VariableSource::Literal(text) => Some((k.clone(), text.clone())),
            VariableSource::Contact(_) => None,
        })
        .collect();
    for (key, value) in values {
        if matches!(value, VariableSource::Literal(text) if text.trim().is_empty()) {
            errors.push(
                &format!("variable_values.{key}"),
                "must not be empty (leave the variable out to use its default_value)",
            );
        }
        let known = content.variables.iter().any(|v| {
            v.variable_name == *key
                || (v.component_type == ComponentType::Body && v.position.to_string() == *key)
        });
        if !known {
            errors.push(
                &format!("variable_values.{key}"),
                "names no variable of this template",
            );
        }
    }
    // Literal values through the send path's own checks; a variable with no literal is
    // left to its contact field or default, checked per recipient at send time.
    if let Err(violations) = shared::templates::payload::resolve_values(content, &literals) {
        for v in violations {
            let mapped_elsewhere =
                v.message.starts_with("is required") || v.message.starts_with("names no variable");
            if !mapped_elsewhere {
                errors.push(&v.field, v.message);
            }
        }
    }
}

/// Counts and rates of a campaign.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CountersResponse {
    pub total_recipients: i32,
    pub sent: i32,
    pub delivered: i32,
    pub read: i32,
    pub failed: i32,
    pub skipped: i32,
    /// delivered / sent (0 when nothing was sent).
    pub delivery_rate: f64,
    /// read / delivered.
    pub read_rate: f64,
    /// failed / the recipients a send was attempted for (sent, and failed before Meta
    /// accepted them; `sent` includes those Meta accepted and then reported failed).
    pub failure_rate: f64,
}

fn ratio(part: i32, whole: i32) -> f64 {
    if whole <= 0 {
        0.0
    } else {
        (f64::from(part) / f64::from(whole) * 10_000.0).round() / 10_000.0
    }
}

impl CountersResponse {
    pub fn new(total: i32, c: Counts) -> Self {
        Self {
            total_recipients: total,
            sent: c.sent,
            delivered: c.delivered,
            read: c.read,
            failed: c.failed,
            skipped: c.skipped,
            delivery_rate: ratio(c.delivered, c.sent),
            read_rate: ratio(c.read, c.delivered),
            // Of the recipients a send was attempted for (a failure Meta had accepted is
            // in `sent` already).
            failure_rate: ratio(c.failed, c.sent + c.failed - c.failed_after_sent),
        }
    }
}

/// A campaign.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignResponse {
    /// `cmp_…`.
    pub campaign_id: String,
    pub name: String,
    pub description: Option<String>,
    pub template_id: String,
    pub phone_number_id: String,
    pub status: CampaignStatus,
    pub recipient_filter: RecipientFilterBody,
    pub variable_values: BTreeMap<String, VariableSource>,
    pub trigger: TriggerResponse,
    pub options: OptionsBody,
    pub counters: CountersResponse,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub paused_at: Option<DateTime<Utc>>,
    /// Why the campaign paused by itself (a template Meta paused, a channel without agent).
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A campaign's trigger.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TriggerResponse {
    pub trigger_type: TriggerType,
    pub scheduled_at: Option<DateTime<Utc>>,
    /// The campaign's own time zone, if it has one (else the tenant's applies).
    pub timezone: Option<String>,
    pub event_type: Option<TriggerEvent>,
    pub event_config: Value,
    /// EVENT: contacts it was sent to.
    pub trigger_count: i32,
    pub last_triggered_at: Option<DateTime<Utc>>,
}

impl CampaignResponse {
    pub fn new(c: Campaign, counts: Counts) -> Self {
        let request = as_request(&c);
        Self {
            campaign_id: c.campaign_id.to_string(),
            name: c.name,
            description: c.description,
            template_id: c.template_id.to_string(),
            phone_number_id: c.phone_number_id.to_string(),
            status: c.status,
            recipient_filter: request.recipient_filter,
            variable_values: c.variable_values,
            trigger: TriggerResponse {
                trigger_type: c.trigger.trigger_type,
                scheduled_at: c.trigger.scheduled_at,
                timezone: c.time_zone,
                event_type: c.trigger.event_type,
                event_config: c.trigger.event_config,
                trigger_count: c.trigger.trigger_count,
                last_triggered_at: c.trigger.last_triggered_at,
            },
            options: request.options,
            counters: CountersResponse::new(c.total_recipients, counts),
            started_at: c.started_at,
            completed_at: c.completed_at,
            paused_at: c.paused_at,
            last_error: c.last_error,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failure_rate_counts_each_attempted_recipient_once() {
        // Five sent, four of them reported failed afterwards: 4 of 5.
        let after = Counts {
            sent: 5,
            failed: 4,
            failed_after_sent: 4,
            ..Counts::default()
        };
        assert_eq!(CountersResponse::new(5, after).failure_rate, 0.8);
        // Three sent, two refused before Meta accepted them: 2 of 5.
        let before = Counts {
            sent: 3,
            failed: 2,
            ..Counts::default()
        };
        assert_eq!(CountersResponse::new(5, before).failure_rate, 0.4);
        assert_eq!(
            CountersResponse::new(0, Counts::default()).failure_rate,
            0.0
        );
    }
}
