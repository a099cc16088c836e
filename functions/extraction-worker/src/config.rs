//! The extraction job's settings.

use std::time::Duration;

use shared::{
    config::{ConfigError, optional_var, parsed_var},
    domain::LeadThresholds,
};

/// How extractions are triggered, asked for and scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractionConfig {
    /// `OPENAI_EXTRACTION_MODEL` (default `gpt-4o-mini`): a model that supports Structured
    /// Outputs.
    pub model: String,
    /// `EXTRACTION_MAX_ATTEMPTS` (default 3): model calls per job when the answer is invalid.
    pub max_attempts: u32,
    /// `EXTRACTION_NEW_MESSAGES` (default 4): customer messages since the last extraction
    /// that trigger a new one.
    pub new_messages: i64,
    /// `CONVERSATION_ENDED_AFTER_SECS` (default 1800, shared with the events sweep that
    /// records `CONVERSATION_ENDED`): a conversation without a message for this long has
    /// ended its quiet period, and its final extraction is asked for, once per quiet period.
    pub quiet: Duration,
    /// `EXTRACTION_RETRY_MINUTES` (default 15): the sweep asks again for a conversation whose
    /// last request was not served within this time.
    pub retry_after: Duration,
    /// `EXTRACTION_TRANSCRIPT_MESSAGES` (default 200): the newest messages the model reads.
    pub transcript_messages: i64,
    /// `EXTRACTION_SWEEP_BATCH` (default 500): conversations one sweep handles per trigger.
    pub sweep_batch: i64,
    /// `LEAD_HOT_MIN_SCORE` / `LEAD_WARM_MIN_SCORE` (defaults 12 / 8).
    pub thresholds: LeadThresholds,
}

impl Default for ExtractionConfig {
    fn default() -> Self {
        Self {
            model: "gpt-4o-mini".to_owned(),
            max_attempts: 3,
            new_messages: 4,
            quiet: Duration::from_secs(30 * 60),
            retry_after: Duration::from_secs(15 * 60),
            transcript_messages: 200,
            sweep_batch: 500,
            thresholds: LeadThresholds::DEFAULT,
        }
    }
}

impl ExtractionConfig {
    /// Reads the variables above; unset ones take their defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let invalid = |name: &'static str, reason: &str| ConfigError::Invalid {
            name,
            reason: reason.to_owned(),
        };
        let max_attempts: u32 = parsed_var("EXTRACTION_MAX_ATTEMPTS", defaults.max_attempts)?;
        if !(1..=10).contains(&max_attempts) {
            return Err(invalid("EXTRACTION_MAX_ATTEMPTS", "must be 1 to 10"));
        }
        let new_messages: i64 = parsed_var("EXTRACTION_NEW_MESSAGES", defaults.new_messages)?;
        if new_messages < 1 {
            return Err(invalid("EXTRACTION_NEW_MESSAGES", "must be at least 1"));
        }
        let quiet = shared::events::SweepConfig::from_env()?.conversation_ended_after;
        let retry_minutes: u64 = parsed_var("EXTRACTION_RETRY_MINUTES", 15)?;
        if retry_minutes == 0 {
            return Err(invalid("EXTRACTION_RETRY_MINUTES", "must be at least 1"));
        }
        Ok(Self {
            model: optional_var("OPENAI_EXTRACTION_MODEL")?.unwrap_or(defaults.model),
            max_attempts,
            new_messages,
            quiet,
            retry_after: Duration::from_secs(retry_minutes * 60),
            transcript_messages: parsed_var(
                "EXTRACTION_TRANSCRIPT_MESSAGES",
                defaults.transcript_messages,
            )?
            .clamp(1, 1000),
            sweep_batch: parsed_var("EXTRACTION_SWEEP_BATCH", defaults.sweep_batch)?.clamp(1, 5000),
            thresholds: LeadThresholds::from_env()?,
        })
    }

    /// The quiet time as a chrono duration.
    pub fn quiet_chrono(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.quiet).unwrap_or(chrono::Duration::minutes(30))
    }
}
