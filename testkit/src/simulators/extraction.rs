//! The OpenAI simulator's extraction answers: a Responses API request with a
//! `text.format` JSON schema named `lead_extraction` gets a valid structured answer derived
//! deterministically from the transcript, so a local run scores conversations without
//! OpenAI. `POST /_sim/openai/extraction/fail-next` (optional body `{"count": n}`, default 1)
//! makes the next answers invalid (a bad email and a level outside the enum), to watch the
//! worker refuse them and ask again.
//!
//! The rules, on the customer's lines of the transcript:
//!
//! | field | rule |
//! | --- | --- |
//! | name | the name in `Customer (<name>):` |
//! | email | the first word with an `@` and a dot after it |
//! | company | the email's domain, first label capitalised (`acme.example` → `Acme`) |
//! | intent | High when they mention buy, price, pricing, quote or demo; Medium when they ask anything (`?`); else Low |
//! | urgency | High for today, asap, urgent, now, this week; Medium for soon, tomorrow, next week, this month; else Low |
//! | budget_constraint | Yes for expensive, cheap, no budget, tight budget; No for budget approved, budget is fine; else Maybe |
//! | fit, engagement | by the number of customer messages: 4+ High, 2–3 Medium, 1 Low |
//! | demo_book_datetime | the first RFC 3339 date-time in their lines, else null |

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::{Json, extract::State, response::IntoResponse};
use serde_json::{Value, json};
use shared::openai::extraction::FORMAT_NAME;

/// The extraction part of the OpenAI simulator.
#[derive(Debug, Clone, Default)]
pub struct ExtractionSim {
    fail_next: Arc<AtomicUsize>,
}

impl ExtractionSim {
    /// Makes the next `count` extraction answers invalid.
    pub fn fail_next(&self, count: usize) {
        self.fail_next.store(count, Ordering::SeqCst);
    }

    /// The answer to a Responses API request, when it is an extraction request.
    pub fn answer(&self, body: &Value) -> Option<Value> {
        if body.pointer("/text/format/name").and_then(Value::as_str) != Some(FORMAT_NAME) {
            return None;
        }
        let transcript = body
            .pointer("/input/0/content")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let fail = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let output = if fail {
            let mut invalid = extract(transcript);
            invalid["email"] = json!("not an email");
            invalid["intent_level"] = json!("Extreme");
            invalid
        } else {
            extract(transcript)
        };
        Some(json!({
            "id": "resp_sim_extraction", "object": "response", "status": "completed",
            "output": [{ "type": "message", "role": "assistant", "content": [
                { "type": "output_text", "text": output.to_string(), "annotations": [] }
            ]}]
        }))
    }
}

/// `POST /_sim/openai/extraction/fail-next`.
pub async fn fail_next(
    State(sim): State<super::Simulators>,
    body: Option<Json<Value>>,
) -> impl IntoResponse {
    let count = body
        .and_then(|Json(b)| b.get("count").and_then(Value::as_u64))
        .unwrap_or(1);
    sim.extraction
        .fail_next(usize::try_from(count).unwrap_or(usize::MAX));
    Json(json!({ "fail_next": count }))
}

fn has_any(text: &str, words: &[&str]) -> bool {
    words.iter().any(|w| text.contains(w))
}

/// The structured answer for a transcript (see the module's table).
pub fn extract(transcript: &str) -> Value {
    let mut name = None;
    let mut customer_lines = Vec::new();
    for line in transcript.lines() {
        let Some(rest) = line.strip_prefix("Customer") else {
            continue;
        };
        let (who, text) = rest.split_once(": ").unwrap_or(("", rest));
        if let Some(n) = who
            .trim()
            .strip_prefix('(')
            .and_then(|w| w.strip_suffix(')'))
        {
            name = Some(n.to_owned());
        }
        customer_lines.push(text.to_owned());
    }
    let said = customer_lines.join(" ");
    let lower = said.to_lowercase();
    let email = said
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| {
                !c.is_alphanumeric() && c != '@' && c != '.' && c != '_' && c != '-' && c != '+'
            })
        })
        .map(|w| w.trim_end_matches('.'))
        .find(|w| {
            w.split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
        });
    let company = email
        .and_then(|e| e.split_once('@'))
        .and_then(|(_, domain)| {
            let label = domain.split('.').next()?;
            let mut chars = label.chars();
            let first = chars.next()?;
            Some(first.to_uppercase().chain(chars).collect::<String>())
        });
    let intent = if has_any(&lower, &["buy", "price", "pricing", "quote", "demo"]) {
        "High"
    } else if said.contains('?') {
        "Medium"
    } else {
        "Low"
    };
    let urgency = if has_any(&lower, &["today", "asap", "urgent", " now", "this week"]) {
        "High"
    } else if has_any(&lower, &["soon", "tomorrow", "next week", "this month"]) {
        "Medium"
    } else {
        "Low"
    };
    let budget = if has_any(&lower, &["expensive", "cheap", "no budget", "tight budget"]) {
        "Yes"
    } else if has_any(
        &lower,
        &["budget approved", "budget is fine", "have budget"],
    ) {
        "No"
    } else {
        "Maybe"
    };
    let by_count = match customer_lines.len() {
        0 | 1 => "Low",
        2 | 3 => "Medium",
        _ => "High",
    };
    let demo = said
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| c == ',' || c == '.' || c == ')' || c == '('))
        .find(|w| chrono::DateTime::parse_from_rfc3339(w).is_ok());
    let notification = match (intent, urgency) {
        ("High", "High") => "Hot lead needs reply now",
        ("High", _) => "Lead asked about buying",
        ("Medium", _) => "Lead has open questions",
        _ => "Customer conversation needs review",
    };
    let last = customer_lines
        .last()
        .map(String::as_str)
        .unwrap_or_default();
    let last: String = last.chars().take(200).collect();
    json!({
        "name": name,
        "email": email,
        "company": company,
        "intent_level": intent,
        "urgency_level": urgency,
        "budget_constraint": budget,
        "fit_alignment": by_count,
        "engagement_health": by_count,
        "demo_book_datetime": demo,
        "reasoning": {
            "intent": format!("intent {intent} from the customer's words"),
            "urgency": format!("urgency {urgency} from the customer's words"),
            "budget": format!("budget constraint {budget}"),
            "fit": format!("{} customer messages", customer_lines.len()),
            "engagement": format!("{} customer messages", customer_lines.len()),
            "cta_behavior": if demo.is_some() { "agreed to a demo time" } else { "no call to action taken" },
        },
        "smart_notification": notification,
        "requirements": null,
        "custom_cta": null,
        "in_detail_summary": format!("{} customer messages; the last: {last}", customer_lines.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_derived_from_the_customers_lines_and_pass_our_checks() {
        let transcript = "Customer (Sheena Nelson): Hi, what is your pricing?\nAgent: Hello!\n\
            Customer (Sheena Nelson): I need it this week, budget approved.\n\
            Customer (Sheena Nelson): Mail me at sheena@acme.example.\n\
            Customer (Sheena Nelson): Demo at 2026-07-01T15:00:00+02:00 works";
        let answer = extract(transcript);
        assert_eq!(answer["name"], "Sheena Nelson");
        assert_eq!(answer["email"], "sheena@acme.example");
        assert_eq!(answer["company"], "Acme");
        assert_eq!(answer["intent_level"], "High");
        assert_eq!(answer["urgency_level"], "High");
        assert_eq!(answer["budget_constraint"], "No");
        assert_eq!(answer["engagement_health"], "High");
        let lead = shared::openai::extraction::parse_output(&answer.to_string()).expect("valid");
        assert!(lead.demo_book_datetime.is_some());
        assert_eq!(extract(transcript), answer, "deterministic");
    }

    #[test]
    fn only_extraction_requests_are_answered_and_fail_next_answers_invalid_once() {
        let sim = ExtractionSim::default();
        assert!(sim.answer(&json!({ "input": [] })).is_none());
        let request = shared::openai::extraction::request_body("m", "Customer: hello");
        sim.fail_next(1);
        let text =
            |response: Value| shared::openai::extraction::output_text(&response).expect("text");
        let first = text(sim.answer(&request).expect("answered"));
        let second = text(sim.answer(&request).expect("answered"));
        assert!(shared::openai::extraction::parse_output(&first).is_err());
        assert!(shared::openai::extraction::parse_output(&second).is_ok());
    }
}
