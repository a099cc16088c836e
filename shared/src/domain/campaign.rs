//! What a campaign is made of, parsed at the API's edge and trusted inside: who receives it
//! ([`RecipientFilter`]), where each template variable's value comes from
//! ([`VariableSource`]), and when it must not send ([`QuietHours`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ContactId, Tag, TenantTimeZone};

/// The most contact ids one filter may name.
pub const MAX_FILTER_CONTACT_IDS: usize = 10_000;
/// The most tags of each kind one filter may name.
pub const MAX_FILTER_TAGS: usize = 50;
/// Meta's standard throughput per number, the default send rate.
pub const DEFAULT_MESSAGES_PER_SECOND: i32 = 80;
/// At most one MARKETING template per contact in this many hours, unless the campaign says
/// otherwise.
pub const DEFAULT_FREQUENCY_CAP_HOURS: i32 = 24;

/// Who receives a campaign: active contacts with a phone that carry every tag of `tags`,
/// none of `exclude_tags`, and (when given) are among `contact_ids`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipientFilter {
    pub tags: Vec<Tag>,
    pub exclude_tags: Vec<Tag>,
    pub contact_ids: Vec<ContactId>,
}

/// The filter as stored in `campaigns.recipient_filter` and written in the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecipientFilterBody {
    /// Every one of these tags (normalised like contact tags).
    #[serde(default)]
    #[schema(max_items = 50)]
    pub tags: Vec<String>,
    /// None of these tags.
    #[serde(default, rename = "excludeTags")]
    #[schema(max_items = 50)]
    pub exclude_tags: Vec<String>,
    /// Only these contacts (`ct_…`); empty: every contact that matches the tags.
    #[serde(default, rename = "contactIds")]
    #[schema(max_items = 10000)]
    pub contact_ids: Vec<String>,
}

/// A field problem: the field's path and what is wrong.
pub type FieldProblem = (String, String);

impl RecipientFilterBody {
    /// Parses the filter; problems name `<prefix>.tags[i]` and so on.
    pub fn parse(&self, prefix: &str) -> Result<RecipientFilter, Vec<FieldProblem>> {
        let mut problems = Vec::new();
        let tags = parse_tags(&self.tags, &format!("{prefix}.tags"), &mut problems);
        let exclude_tags = parse_tags(
            &self.exclude_tags,
            &format!("{prefix}.excludeTags"),
            &mut problems,
        );
        if self.contact_ids.len() > MAX_FILTER_CONTACT_IDS {
            problems.push((
                format!("{prefix}.contactIds"),
                format!("must name at most {MAX_FILTER_CONTACT_IDS} contacts"),
            ));
        }
        let mut contact_ids = Vec::new();
        for (i, raw) in self.contact_ids.iter().enumerate() {
            match ContactId::parse(raw) {
                Some(id) if !contact_ids.contains(&id) => contact_ids.push(id),
                Some(_) => {}
                None => problems.push((
                    format!("{prefix}.contactIds[{i}]"),
                    "is not a contact id (`ct_…`)".to_owned(),
                )),
            }
        }
        if let Some(both) = tags.iter().find(|t| exclude_tags.contains(t)) {
            problems.push((
                format!("{prefix}.excludeTags"),
                format!(
                    "`{}` is also in `tags`: no contact could match",
                    both.as_str()
                ),
            ));
        }
        if problems.is_empty() {
            Ok(RecipientFilter {
                tags,
                exclude_tags,
                contact_ids,
            })
        } else {
            Err(problems)
        }
    }
}

impl RecipientFilter {
    /// The stored form.
    pub fn to_body(&self) -> RecipientFilterBody {
        RecipientFilterBody {
            tags: self.tags.iter().map(|t| t.as_str().to_owned()).collect(),
            exclude_tags: self
                .exclude_tags
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect(),
            contact_ids: self.contact_ids.iter().map(ToString::to_string).collect(),
        }
    }
}

fn parse_tags(raw: &[String], field: &str, problems: &mut Vec<FieldProblem>) -> Vec<Tag> {
    if raw.len() > MAX_FILTER_TAGS {
        problems.push((
            field.to_owned(),
            format!("must name at most {MAX_FILTER_TAGS} tags"),
        ));
    }
    let mut tags: Vec<Tag> = Vec::new();
    for (i, text) in raw.iter().enumerate() {
        match Tag::parse(text) {
            Ok(tag) if !tags.contains(&tag) => tags.push(tag),
            Ok(_) => {}
            Err(message) => problems.push((format!("{field}[{i}]"), message)),
        }
    }
    tags
}

/// A contact field a template variable may take its value from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContactField {
    Name,
    Email,
    Company,
    Phone,
}

/// Where one template variable's value comes from, per recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum VariableSource {
    /// The same text for everyone.
    Literal(String),
    /// The recipient's own field; empty falls back to the variable's `default_value`.
    Contact(ContactFieldSource),
}

/// `{"contact_field": "name" | "email" | "company" | "phone"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactFieldSource {
    pub contact_field: ContactField,
}

/// The fields of one recipient that variables may read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipientFields {
    pub name: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub phone: Option<String>,
}

impl RecipientFields {
    fn get(&self, field: ContactField) -> Option<&str> {
        match field {
            ContactField::Name => self.name.as_deref(),
            ContactField::Email => self.email.as_deref(),
            ContactField::Company => self.company.as_deref(),
            ContactField::Phone => self.phone.as_deref(),
        }
        .filter(|v| !v.trim().is_empty())
    }
}

/// The values given for one recipient, before the template's defaults and checks
/// (`templates::payload::resolve_values` applies both): literals as they are, contact fields
/// where the recipient has them (an empty field is left out, so the default applies).
pub fn values_for_recipient(
    mapping: &BTreeMap<String, VariableSource>,
    fields: &RecipientFields,
) -> BTreeMap<String, String> {
    mapping
        .iter()
        .filter_map(|(key, source)| {
            let value = match source {
                VariableSource::Literal(text) => Some(text.as_str()),
                VariableSource::Contact(source) => fields.get(source.contact_field),
            };
            value.map(|v| (key.clone(), v.to_owned()))
        })
        .collect()
}

/// Hours of the day a campaign must not send, local to its time zone; `start > end` spans
/// midnight (22:00–08:00). Sends due inside them wait until they end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    /// Both times, or an error naming what is wrong.
    pub fn new(start: NaiveTime, end: NaiveTime) -> Result<Self, String> {
        if start == end {
            return Err("start and end must differ".to_owned());
        }
        Ok(Self { start, end })
    }

    fn contains(&self, time: NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= time && time < self.end
        } else {
            time >= self.start || time < self.end
        }
    }

    /// `None` when `now` is outside the quiet hours; else the instant they end.
    pub fn resumes_at(&self, now: DateTime<Utc>, zone: TenantTimeZone) -> Option<DateTime<Utc>> {
        let local = zone.local(now).naive_local();
        if !self.contains(local.time()) {
            return None;
        }
        let mut end = local.date().and_time(self.end);
        if end <= local {
            end += Duration::days(1);
        }
        // An end that falls in a DST gap: the first minute that exists after it.
        (0..=120)
            .find_map(|minutes| zone.localize(end + Duration::minutes(minutes)))
            .or(Some(now + Duration::hours(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).expect("time")
    }

    #[test]
    fn quiet_hours_across_midnight_end_the_next_morning_in_the_campaign_zone() {
        let quiet = QuietHours::new(t(21, 0), t(8, 0)).expect("valid");
        let madrid = TenantTimeZone::parse("Europe/Madrid").expect("zone");
        // 22:30 in Madrid (UTC+1 in January) → 08:00 Madrid the next day = 07:00Z.
        let now = "2030-01-10T21:30:00Z".parse().expect("instant");
        assert_eq!(
            quiet.resumes_at(now, madrid),
            Some("2030-01-11T07:00:00Z".parse().expect("instant"))
        );
        // 07:30 Madrid → 08:00 the same day.
        let early = "2030-01-11T06:30:00Z".parse().expect("instant");
        assert_eq!(
            quiet.resumes_at(early, madrid),
            Some("2030-01-11T07:00:00Z".parse().expect("instant"))
        );
        // 12:00 Madrid: not quiet.
        let noon = "2030-01-11T11:00:00Z".parse().expect("instant");
        assert_eq!(quiet.resumes_at(noon, madrid), None);
        assert!(QuietHours::new(t(9, 0), t(9, 0)).is_err());
    }

    #[test]
    fn recipient_values_take_literals_and_non_empty_contact_fields() {
        let mapping = BTreeMap::from([
            (
                "1".to_owned(),
                VariableSource::Contact(ContactFieldSource {
                    contact_field: ContactField::Name,
                }),
            ),
            (
                "2".to_owned(),
                VariableSource::Literal("20% off".to_owned()),
            ),
            (
                "3".to_owned(),
                VariableSource::Contact(ContactFieldSource {
                    contact_field: ContactField::Company,
                }),
            ),
        ]);
        let fields = RecipientFields {
            name: Some("Ana 🌵".to_owned()),
            company: Some("  ".to_owned()),
            ..RecipientFields::default()
        };
        let values = values_for_recipient(&mapping, &fields);
        assert_eq!(values.get("1").map(String::as_str), Some("Ana 🌵"));
        assert_eq!(values.get("2").map(String::as_str), Some("20% off"));
        assert_eq!(values.get("3"), None, "an empty field leaves the default");
    }

    #[test]
    fn a_filter_names_each_bad_entry() {
        let body = RecipientFilterBody {
            tags: vec!["VIP".to_owned(), "vip".to_owned(), String::new()],
            exclude_tags: vec!["vip".to_owned()],
            contact_ids: vec!["ct_nope".to_owned()],
        };
        let problems = body.parse("recipient_filter").expect_err("invalid");
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert!(fields.contains(&"recipient_filter.tags[2]"), "{fields:?}");
        assert!(fields.contains(&"recipient_filter.contactIds[0]"));
        assert!(fields.contains(&"recipient_filter.excludeTags"));
        let ok = RecipientFilterBody {
            tags: vec!["VIP".to_owned(), "vip".to_owned()],
            ..RecipientFilterBody::default()
        }
        .parse("f")
        .expect("valid");
        assert_eq!(ok.tags.len(), 1, "duplicates collapse");
    }
}
