//! Lead extraction through the Responses API with Structured Outputs: `text.format` is a
//! JSON schema with `strict: true`, so the model must answer exactly that shape. We still
//! check every answer ourselves ([`parse_output`]): a missing field, a value outside an enum,
//! an email or a date that does not parse is refused as [`InvalidOutput`] and the caller
//! asks again (bounded), so nothing half-valid is ever stored. The model gives levels only;
//! scores, total and status are computed by the server (`domain::LeadLevels::score`), and
//! any score the model adds is ignored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::{OpenAi, OpenAiError};
use crate::domain::{
    BudgetConstraint, ContactCompany, ContactName, Email, LeadLevels, Level, replace_nul,
};

/// The name of the response format (OpenAI: a-z, 0-9, `_`, `-`, at most 64).
pub const FORMAT_NAME: &str = "lead_extraction";

/// What the model is told to do with the transcript.
pub const INSTRUCTIONS: &str = "You qualify sales leads. Read the conversation between a customer and a business's \
sales agent and answer in the given JSON schema. Use only what the customer said: \
name, email and company are null unless the customer gave them. Judge intent, urgency, \
fit and engagement as Low, Medium or High; budget_constraint is Yes when budget limits \
the purchase, No when it does not, Maybe when unclear. demo_book_datetime is the agreed \
demo or meeting time as ISO-8601 with a UTC offset, or null. smart_notification is a 4 to \
5 word alert for the sales team. Give a short reason for each judgement.";

/// The JSON schema of the answer (strict mode: every property required, nullable ones
/// typed `["string", "null"]`, no additional properties).
pub fn output_schema() -> Value {
    let level = json!({ "type": "string", "enum": ["Low", "Medium", "High"] });
    let nullable = json!({ "type": ["string", "null"] });
    let text = json!({ "type": "string" });
    json!({
        "type": "object",
        "properties": {
            "name": nullable,
            "email": nullable,
            "company": nullable,
            "intent_level": level,
            "urgency_level": level,
            "budget_constraint": { "type": "string", "enum": ["Yes", "No", "Maybe"] },
            "fit_alignment": level,
            "engagement_health": level,
            "demo_book_datetime": {
                "type": ["string", "null"],
                "description": "ISO-8601 date and time with offset, e.g. 2026-07-01T15:00:00+02:00",
            },
            "reasoning": {
                "type": "object",
                "properties": {
                    "intent": text, "urgency": text, "budget": text, "fit": text,
                    "engagement": text, "cta_behavior": text,
                },
                "required": ["intent", "urgency", "budget", "fit", "engagement", "cta_behavior"],
                "additionalProperties": false,
            },
            "smart_notification": { "type": "string", "description": "4 to 5 words" },
            "requirements": nullable,
            "custom_cta": nullable,
            "in_detail_summary": text,
        },
        "required": [
            "name", "email", "company", "intent_level", "urgency_level", "budget_constraint",
            "fit_alignment", "engagement_health", "demo_book_datetime", "reasoning",
            "smart_notification", "requirements", "custom_cta", "in_detail_summary",
        ],
        "additionalProperties": false,
    })
}

/// The Responses API request for one extraction.
pub fn request_body(model: &str, transcript: &str) -> Value {
    json!({
        "model": model,
        "instructions": INSTRUCTIONS,
        "input": [{ "role": "user", "content": transcript }],
        "text": { "format": {
            "type": "json_schema",
            "name": FORMAT_NAME,
            "strict": true,
            "schema": output_schema(),
        }},
        "store": false,
    })
}

/// The model's reasons for each judgement (stored as `extractions.reasoning`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Reasoning {
    pub intent: String,
    pub urgency: String,
    pub budget: String,
    pub fit: String,
    pub engagement: String,
    pub cta_behavior: String,
}

/// A model answer that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractedLead {
    /// Checked as the contacts API checks a name (no control characters, at most 255).
    pub name: Option<ContactName>,
    /// Checked as the contacts API checks an email.
    pub email: Option<Email>,
    pub company: Option<ContactCompany>,
    pub levels: LeadLevels,
    pub demo_book_datetime: Option<DateTime<Utc>>,
    pub reasoning: Reasoning,
    pub smart_notification: String,
    pub requirements: Option<String>,
    pub custom_cta: Option<String>,
    pub in_detail_summary: String,
}

/// The answer broke the schema or a rule; the reason names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid extraction output: {0}")]
pub struct InvalidOutput(pub String);

/// Why an extraction call produced nothing usable.
#[derive(Debug, thiserror::Error)]
pub enum ExtractionError {
    /// OpenAI failed or refused the request.
    #[error(transparent)]
    OpenAi(#[from] OpenAiError),
    /// OpenAI answered, but not with a valid extraction: ask again.
    #[error(transparent)]
    Invalid(#[from] InvalidOutput),
}

/// Exactly what strict mode promises: every field present (nullable ones as `null`).
#[derive(Debug, Deserialize)]
struct RawOutput {
    #[serde(deserialize_with = "present")]
    name: Option<String>,
    #[serde(deserialize_with = "present")]
    email: Option<String>,
    #[serde(deserialize_with = "present")]
    company: Option<String>,
    intent_level: Level,
    urgency_level: Level,
    budget_constraint: BudgetConstraint,
    fit_alignment: Level,
    engagement_health: Level,
    #[serde(deserialize_with = "present")]
    demo_book_datetime: Option<String>,
    reasoning: Reasoning,
    smart_notification: String,
    #[serde(deserialize_with = "present")]
    requirements: Option<String>,
    #[serde(deserialize_with = "present")]
    custom_cta: Option<String>,
    in_detail_summary: String,
}

/// A nullable field that must still be present (serde treats a missing `Option` as `None`
/// unless a `deserialize_with` is given).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(deserializer)
}

/// The JSON text of a response's answer: its `output_text` parts. A refusal, an incomplete
/// response or no text at all is invalid output.
pub fn output_text(response: &Value) -> Result<String, InvalidOutput> {
    if let Some(status) = response.get("status").and_then(Value::as_str) {
        if status != "completed" {
            let reason = response
                .pointer("/incomplete_details/reason")
                .and_then(Value::as_str)
                .unwrap_or("no reason given");
            return Err(InvalidOutput(format!("response {status}: {reason}")));
        }
    }
    let mut text = String::new();
    for item in response
        .get("output")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|item| item.get("type").and_then(Value::as_str) == Some("message"))
    {
        for part in item
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match part.get("type").and_then(Value::as_str) {
                Some("output_text") => {
                    text.push_str(part.get("text").and_then(Value::as_str).unwrap_or_default());
                }
                Some("refusal") => {
                    return Err(InvalidOutput("the model refused to answer".to_owned()));
                }
                _ => {}
            }
        }
    }
    if text.trim().is_empty() {
        return Err(InvalidOutput("the response has no output text".to_owned()));
    }
    Ok(text)
}

/// Parses and checks the model's JSON answer.
pub fn parse_output(text: &str) -> Result<ExtractedLead, InvalidOutput> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let raw: RawOutput = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            InvalidOutput(inner.to_string())
        } else {
            InvalidOutput(format!("{path}: {inner}"))
        }
    })?;
    let email = checked(raw.email, "email", Email::parse)?;
    let demo_book_datetime = raw
        .demo_book_datetime
        .filter(|text| !text.trim().is_empty())
        .map(|text| {
            DateTime::parse_from_rfc3339(text.trim())
                .map(|at| at.with_timezone(&Utc))
                .map_err(|_| {
                    InvalidOutput(format!(
                        "demo_book_datetime: `{text}` is not an ISO-8601 date and time with an offset"
                    ))
                })
        })
        .transpose()?;
    let smart_notification = clean(&raw.smart_notification);
    if smart_notification.is_empty() {
        return Err(InvalidOutput("smart_notification: is empty".to_owned()));
    }
    Ok(ExtractedLead {
        name: checked(raw.name, "name", ContactName::parse)?,
        email,
        company: checked(raw.company, "company", ContactCompany::parse)?,
        levels: LeadLevels {
            intent: raw.intent_level,
            urgency: raw.urgency_level,
            budget: raw.budget_constraint,
            fit: raw.fit_alignment,
            engagement: raw.engagement_health,
        },
        demo_book_datetime,
        reasoning: Reasoning {
            intent: clean(&raw.reasoning.intent),
            urgency: clean(&raw.reasoning.urgency),
            budget: clean(&raw.reasoning.budget),
            fit: clean(&raw.reasoning.fit),
            engagement: clean(&raw.reasoning.engagement),
            cta_behavior: clean(&raw.reasoning.cta_behavior),
        },
        smart_notification,
        requirements: raw
            .requirements
            .map(|t| clean(&t))
            .filter(|t| !t.is_empty()),
        custom_cta: raw.custom_cta.map(|t| clean(&t)).filter(|t| !t.is_empty()),
        in_detail_summary: clean(&raw.in_detail_summary),
    })
}

/// Trimmed, with what PostgreSQL cannot hold (NUL) replaced.
fn clean(text: &str) -> String {
    replace_nul(text.trim()).into_owned()
}

/// A nullable field checked by the contact type `parse` (the rules of the contacts API, so
/// an extraction can never put into a contact what a person could not): blank is `None`,
/// anything else must pass.
fn checked<T>(
    value: Option<String>,
    field: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>, InvalidOutput> {
    value
        .filter(|v| !v.trim().is_empty())
        .map(|v| parse(&v).map_err(|message| InvalidOutput(format!("{field}: `{v}` {message}"))))
        .transpose()
}

impl OpenAi {
    /// Asks the model for one extraction over `transcript` and checks its answer.
    pub async fn extract(
        &self,
        model: &str,
        transcript: &str,
    ) -> Result<ExtractedLead, ExtractionError> {
        let response: Value = self
            .post("/responses", &request_body(model, transcript))
            .await?;
        Ok(parse_output(&output_text(&response)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{LeadStatus, LeadThresholds};

    fn good() -> Value {
        json!({
            "name": "Sheena Nelson",
            "email": "sheena@acme.example",
            "company": "Acme",
            "intent_level": "High",
            "urgency_level": "High",
            "budget_constraint": "No",
            "fit_alignment": "High",
            "engagement_health": "Medium",
            "demo_book_datetime": "2026-07-01T15:00:00+02:00",
            "reasoning": {
                "intent": "asked for pricing", "urgency": "needs it this month",
                "budget": "budget approved", "fit": "matches the product",
                "engagement": "answers quickly", "cta_behavior": "agreed to a demo"
            },
            "smart_notification": "Hot lead wants demo",
            "requirements": "50 seats",
            "custom_cta": null,
            "in_detail_summary": "Sheena from Acme wants 50 seats and a demo on July 1st."
        })
    }

    fn response_with(text: &str) -> Value {
        json!({
            "id": "resp_1", "object": "response", "status": "completed",
            "output": [{ "type": "message", "role": "assistant", "content": [
                { "type": "output_text", "text": text, "annotations": [] }
            ]}]
        })
    }

    fn parse(value: &Value) -> Result<ExtractedLead, InvalidOutput> {
        parse_output(&output_text(&response_with(&value.to_string()))?)
    }

    #[test]
    fn a_good_answer_is_scored_by_the_server() {
        let lead = parse(&good()).expect("valid");
        let score = lead.levels.score(LeadThresholds::DEFAULT);
        assert_eq!(
            (
                score.intent,
                score.urgency,
                score.budget,
                score.fit,
                score.engagement
            ),
            (3, 3, 3, 3, 2)
        );
        assert_eq!(score.total, 14);
        assert_eq!(score.status, LeadStatus::Hot);
        assert_eq!(
            lead.email.map(|e| e.as_str().to_owned()).as_deref(),
            Some("sheena@acme.example")
        );
        assert_eq!(
            lead.demo_book_datetime.map(|d| d.to_rfc3339()),
            Some("2026-07-01T13:00:00+00:00".to_owned())
        );
        assert_eq!(lead.custom_cta, None);
    }

    #[test]
    fn scores_and_a_status_the_model_adds_are_ignored() {
        let mut answer = good();
        answer["intent_score"] = json!(3);
        answer["total_score"] = json!(99);
        answer["lead_status_tag"] = json!("Cold");
        let score = parse(&answer)
            .expect("extra fields are ignored")
            .levels
            .score(LeadThresholds::DEFAULT);
        assert_eq!(score.total, 14);
        assert_eq!(score.status, LeadStatus::Hot);
    }

    #[test]
    fn answers_that_break_a_rule_are_refused_naming_the_field() {
        type Case = (&'static str, fn(&mut Value), &'static str);
        let cases: [Case; 10] = [
            (
                "bad enum",
                |v| v["intent_level"] = json!("Very High"),
                "intent_level",
            ),
            (
                "bad budget enum",
                |v| v["budget_constraint"] = json!("Unknown"),
                "budget_constraint",
            ),
            (
                "missing level",
                |v| {
                    v.as_object_mut().map(|o| o.remove("urgency_level"));
                },
                "urgency_level",
            ),
            (
                "missing nullable field",
                |v| {
                    v.as_object_mut().map(|o| o.remove("email"));
                },
                "email",
            ),
            (
                "missing reasoning part",
                |v| {
                    v["reasoning"].as_object_mut().map(|o| o.remove("fit"));
                },
                "reasoning",
            ),
            (
                "bad email",
                |v| v["email"] = json!("sheena at acme"),
                "email",
            ),
            (
                "date without offset",
                |v| v["demo_book_datetime"] = json!("2026-07-01T15:00:00"),
                "demo_book_datetime",
            ),
            (
                "not a date",
                |v| v["demo_book_datetime"] = json!("next Tuesday"),
                "demo_book_datetime",
            ),
            (
                "name too long",
                |v| v["name"] = json!("x".repeat(256)),
                "name",
            ),
            (
                "control character in a name",
                |v| v["name"] = json!("Shee\u{0}na"),
                "name",
            ),
        ];
        for (case, break_it, field) in cases {
            let mut answer = good();
            break_it(&mut answer);
            let error = parse(&answer).expect_err(case);
            assert!(error.0.contains(field), "{case}: {error}");
        }
    }

    #[test]
    fn refusals_incomplete_responses_and_non_json_are_invalid_output() {
        let refusal = json!({ "status": "completed", "output": [{ "type": "message", "content": [
            { "type": "refusal", "refusal": "I can't help with that." }
        ]}]});
        assert!(output_text(&refusal).is_err());
        let incomplete = json!({ "status": "incomplete", "incomplete_details": { "reason": "max_output_tokens" }, "output": [] });
        assert!(
            output_text(&incomplete)
                .expect_err("incomplete")
                .0
                .contains("max_output_tokens")
        );
        assert!(parse_output("Sure! Here is the JSON").is_err());
        assert!(parse_output("").is_err());
    }

    #[test]
    fn nul_and_blank_texts_are_cleaned_and_nullable_blanks_become_null() {
        let mut answer = good();
        answer["name"] = json!("  ");
        answer["company"] = json!(null);
        answer["in_detail_summary"] = json!("a\u{0}b");
        let lead = parse(&answer).expect("valid");
        assert_eq!(lead.name, None);
        assert_eq!(lead.in_detail_summary, "a\u{FFFD}b");
    }

    #[test]
    fn the_request_asks_for_strict_structured_output() {
        let body = request_body("gpt-4o-mini", "Customer: hi");
        assert_eq!(body["text"]["format"]["type"], "json_schema");
        assert_eq!(body["text"]["format"]["strict"], true);
        assert_eq!(body["text"]["format"]["name"], FORMAT_NAME);
        let schema = &body["text"]["format"]["schema"];
        let properties = schema["properties"].as_object().expect("properties");
        let required = schema["required"].as_array().expect("required");
        assert_eq!(
            properties.len(),
            required.len(),
            "strict mode requires every property"
        );
        assert_eq!(schema["additionalProperties"], false);
    }
}
