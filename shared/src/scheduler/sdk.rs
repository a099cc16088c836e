use aws_sdk_scheduler::{
    Client,
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
    types::{
        ActionAfterCompletion, DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode,
        RetryPolicy, SqsParameters, Target,
    },
};

use super::{OneTimeSchedule, SchedulerError, StoredSchedule};
use crate::config::{ConfigError, optional_var, required_var};

/// Retries of a failed delivery to the queue: EventBridge Scheduler's maximum (and default),
/// 0 to 185, with exponential backoff.
pub const MAXIMUM_RETRY_ATTEMPTS: i32 = 185;

/// How long EventBridge Scheduler keeps retrying a failed delivery: its maximum (and
/// default), 60 to 86,400 s. After that the event goes to the DLQ, when one is configured.
pub const MAXIMUM_EVENT_AGE_SECONDS: i32 = 86_400;

/// Where schedules go and what they send to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// `CAMPAIGN_SCHEDULE_GROUP`: the schedule group (template.yaml's `CampaignSchedules`).
    pub group_name: String,
    /// `CAMPAIGN_START_QUEUE_ARN`: the target, the campaign-start queue. FIFO when its name
    /// ends in `.fifo`: then every schedule needs a message group, and the queue needs
    /// content-based deduplication (EventBridge Scheduler sends no deduplication id).
    pub target_queue_arn: String,
    /// `SCHEDULER_ROLE_ARN`: the execution role EventBridge Scheduler assumes to send
    /// (`sqs:SendMessage` on the target; template.yaml's `CampaignSchedulerRole`). The
    /// caller needs `iam:PassRole` on it.
    pub role_arn: String,
    /// `SCHEDULER_DLQ_ARN` (optional): a standard SQS queue (EventBridge Scheduler refuses a
    /// FIFO one) for invocations that failed for good; the role needs `sqs:SendMessage` on
    /// it too.
    pub dead_letter_arn: Option<String>,
}

impl SchedulerConfig {
    /// A configuration, checked: a valid group name, an SQS target, an IAM role, a standard
    /// SQS dead-letter queue. Errors name the environment variable of the bad value.
    pub fn new(
        group_name: impl Into<String>,
        target_queue_arn: impl Into<String>,
        role_arn: impl Into<String>,
        dead_letter_arn: Option<String>,
    ) -> Result<Self, ConfigError> {
        let config = Self {
            group_name: group_name.into(),
            target_queue_arn: target_queue_arn.into(),
            role_arn: role_arn.into(),
            dead_letter_arn,
        };
        let invalid = |name: &'static str, reason: &str| ConfigError::Invalid {
            name,
            reason: reason.to_owned(),
        };
        if super::validate_name(&config.group_name).is_err() {
            return Err(invalid(
                "CAMPAIGN_SCHEDULE_GROUP",
                "a schedule group name is 1 to 64 ASCII letters, digits, '-', '_' or '.'",
            ));
        }
        if !is_sqs_arn(&config.target_queue_arn) {
            return Err(invalid(
                "CAMPAIGN_START_QUEUE_ARN",
                "not an SQS queue ARN (arn:aws:sqs:region:account:name)",
            ));
        }
        if !(config.role_arn.starts_with("arn:") && config.role_arn.contains(":role/")) {
            return Err(invalid(
                "SCHEDULER_ROLE_ARN",
                "not an IAM role ARN (arn:aws:iam::account:role/name)",
            ));
        }
        if let Some(dlq) = &config.dead_letter_arn {
            if !is_sqs_arn(dlq) {
                return Err(invalid("SCHEDULER_DLQ_ARN", "not an SQS queue ARN"));
            }
            if dlq.ends_with(".fifo") {
                return Err(invalid(
                    "SCHEDULER_DLQ_ARN",
                    "EventBridge Scheduler's dead-letter queue must be a standard queue",
                ));
            }
        }
        Ok(config)
    }

    /// Reads `CAMPAIGN_SCHEDULE_GROUP`, `CAMPAIGN_START_QUEUE_ARN`, `SCHEDULER_ROLE_ARN` and
    /// `SCHEDULER_DLQ_ARN` (optional).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::new(
            required_var("CAMPAIGN_SCHEDULE_GROUP")?,
            required_var("CAMPAIGN_START_QUEUE_ARN")?,
            required_var("SCHEDULER_ROLE_ARN")?,
            optional_var("SCHEDULER_DLQ_ARN")?,
        )
    }

    /// Whether the target is a FIFO queue (its name ends in `.fifo`).
    pub fn target_is_fifo(&self) -> bool {
        self.target_queue_arn.ends_with(".fifo")
    }
}

fn is_sqs_arn(arn: &str) -> bool {
    arn.starts_with("arn:") && arn.split(':').nth(2) == Some("sqs") && arn.split(':').count() == 6
}

/// EventBridge Scheduler through the AWS SDK: one-time schedules in one group, each sending
/// its input to the campaign-start queue, deleted by EventBridge once they have fired.
#[derive(Debug, Clone)]
pub struct SdkScheduler {
    client: Client,
    config: SchedulerConfig,
}

impl SdkScheduler {
    /// Schedules written with `client`, as `config` says.
    pub fn new(client: Client, config: SchedulerConfig) -> Self {
        Self { client, config }
    }

    /// The client, for tests.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The configuration.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// The target every schedule has: the queue, the role, the input, the message group
    /// (FIFO), the retry policy and the dead-letter queue.
    fn target(&self, schedule: &OneTimeSchedule) -> Result<Target, SchedulerError> {
        let fifo = self.config.target_is_fifo();
        match (&schedule.message_group_id, fifo) {
            (None, true) => {
                return Err(SchedulerError::InvalidSchedule(format!(
                    "schedule {}: the target queue is FIFO and needs a message group id",
                    schedule.name
                )));
            }
            (Some(_), false) => {
                return Err(SchedulerError::InvalidSchedule(format!(
                    "schedule {}: a message group id is for a FIFO target queue",
                    schedule.name
                )));
            }
            _ => {}
        }
        Target::builder()
            .arn(&self.config.target_queue_arn)
            .role_arn(&self.config.role_arn)
            .input(&schedule.input)
            .set_sqs_parameters(
                schedule
                    .message_group_id
                    .as_ref()
                    .map(|group| SqsParameters::builder().message_group_id(group).build()),
            )
            .retry_policy(
                RetryPolicy::builder()
                    .maximum_retry_attempts(MAXIMUM_RETRY_ATTEMPTS)
                    .maximum_event_age_in_seconds(MAXIMUM_EVENT_AGE_SECONDS)
                    .build(),
            )
            .set_dead_letter_config(
                self.config
                    .dead_letter_arn
                    .as_ref()
                    .map(|arn| DeadLetterConfig::builder().arn(arn).build()),
            )
            .build()
            .map_err(|e| SchedulerError::InvalidSchedule(e.to_string()))
    }

    /// Creates the schedule; when one of that name exists (`ConflictException`), updates it
    /// with every setting (UpdateSchedule replaces the whole schedule). Should the schedule
    /// vanish between the two calls (it fired, or a cancel deleted it), it is created once
    /// more.
    pub async fn upsert(&self, schedule: &OneTimeSchedule) -> Result<(), SchedulerError> {
        schedule.validate()?;
        let target = self.target(schedule)?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| SchedulerError::InvalidSchedule(e.to_string()))?;
        for _ in 0..2 {
            let created = self
                .client
                .create_schedule()
                .name(&schedule.name)
                .group_name(&self.config.group_name)
                .schedule_expression(schedule.expression())
                .schedule_expression_timezone(&schedule.time_zone)
                .flexible_time_window(window.clone())
                .action_after_completion(ActionAfterCompletion::Delete)
                .target(target.clone())
                .send()
                .await;
            match created {
                Ok(_) => return Ok(()),
                Err(e) if is_service_error(&e, "ConflictException") => {}
                Err(e) => return Err(service_error("CreateSchedule", e)),
            }
            let updated = self
                .client
                .update_schedule()
                .name(&schedule.name)
                .group_name(&self.config.group_name)
                .schedule_expression(schedule.expression())
                .schedule_expression_timezone(&schedule.time_zone)
                .flexible_time_window(window.clone())
                .action_after_completion(ActionAfterCompletion::Delete)
                .target(target.clone())
                .send()
                .await;
            match updated {
                Ok(_) => return Ok(()),
                Err(e) if is_service_error(&e, "ResourceNotFoundException") => continue,
                Err(e) => return Err(service_error("UpdateSchedule", e)),
            }
        }
        Err(SchedulerError::Service {
            operation: "UpdateSchedule",
            message: format!(
                "schedule {} was deleted after each create reported it existed",
                schedule.name
            ),
        })
    }

    /// Deletes the schedule; `ResourceNotFoundException` (it fired and deleted itself, or
    /// was never created) is success.
    pub async fn delete(&self, name: &str) -> Result<(), SchedulerError> {
        match self
            .client
            .delete_schedule()
            .name(name)
            .group_name(&self.config.group_name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_service_error(&e, "ResourceNotFoundException") => Ok(()),
            Err(e) => Err(service_error("DeleteSchedule", e)),
        }
    }

    /// The schedule of that name in the group; `None` on `ResourceNotFoundException` (which
    /// EventBridge also answers when the group itself is missing).
    pub async fn get(&self, name: &str) -> Result<Option<StoredSchedule>, SchedulerError> {
        let output = match self
            .client
            .get_schedule()
            .name(name)
            .group_name(&self.config.group_name)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if is_service_error(&e, "ResourceNotFoundException") => return Ok(None),
            Err(e) => return Err(service_error("GetSchedule", e)),
        };
        let target = output.target();
        let retry = target.and_then(|t| t.retry_policy());
        Ok(Some(StoredSchedule {
            name: output.name().unwrap_or(name).to_owned(),
            group_name: output.group_name().map(str::to_owned),
            expression: output.schedule_expression().unwrap_or_default().to_owned(),
            time_zone: output
                .schedule_expression_timezone()
                .unwrap_or("UTC")
                .to_owned(),
            input: target.and_then(|t| t.input()).map(str::to_owned),
            message_group_id: target
                .and_then(|t| t.sqs_parameters())
                .and_then(|p| p.message_group_id())
                .map(str::to_owned),
            target_arn: target.map(|t| t.arn().to_owned()),
            role_arn: target.map(|t| t.role_arn().to_owned()),
            action_after_completion: output
                .action_after_completion()
                .map(|a| a.as_str().to_owned()),
            flexible_time_window: output
                .flexible_time_window()
                .map(|w| w.mode().as_str().to_owned()),
            state: output.state().map(|s| s.as_str().to_owned()),
            maximum_retry_attempts: retry.and_then(|r| r.maximum_retry_attempts()),
            maximum_event_age_seconds: retry.and_then(|r| r.maximum_event_age_in_seconds()),
            dead_letter_arn: target
                .and_then(|t| t.dead_letter_config())
                .and_then(|d| d.arn())
                .map(str::to_owned),
        }))
    }
}

/// Whether the call failed with that service error code. Read from the error metadata, not
/// the operation's typed variant, so an emulator answering with a non-standard HTTP status
/// (moto's `ConflictException` is a 400, AWS's a 409) is still understood.
fn is_service_error<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>, code: &str) -> bool {
    error.as_service_error().and_then(|e| e.code()) == Some(code)
}

fn service_error<E, R>(operation: &'static str, error: SdkError<E, R>) -> SchedulerError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    SchedulerError::Service {
        operation,
        message: DisplayErrorContext(error).to_string(),
    }
}

/// An EventBridge Scheduler client from the environment (`AWS_REGION`, credentials, and
/// `AWS_ENDPOINT_URL` to point it at a local stand-in such as moto): see [`crate::aws`].
pub async fn client_from_env() -> Result<Client, ConfigError> {
    Ok(Client::new(&crate::aws::sdk_config_from_env()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUEUE: &str = "arn:aws:sqs:eu-west-1:123456789012:salesagent-prod-campaign-start.fifo";
    const ROLE: &str = "arn:aws:iam::123456789012:role/salesagent-prod-CampaignSchedulerRole";

    #[test]
    fn a_config_is_checked_and_names_the_bad_variable() {
        let config =
            SchedulerConfig::new("salesagent-prod-campaigns", QUEUE, ROLE, None).expect("valid");
        assert!(config.target_is_fifo());

        let bad =
            |group: &str, queue: &str, role: &str, dlq: Option<&str>| match SchedulerConfig::new(
                group,
                queue,
                role,
                dlq.map(str::to_owned),
            ) {
                Err(ConfigError::Invalid { name, .. }) => name,
                other => panic!("expected an invalid variable, got {other:?}"),
            };
        assert_eq!(
            bad("has space", QUEUE, ROLE, None),
            "CAMPAIGN_SCHEDULE_GROUP"
        );
        assert_eq!(
            bad("g", "https://sqs.eu-west-1.amazonaws.com/1/q", ROLE, None),
            "CAMPAIGN_START_QUEUE_ARN"
        );
        assert_eq!(
            bad("g", QUEUE, "arn:aws:iam::1:user/x", None),
            "SCHEDULER_ROLE_ARN"
        );
        assert_eq!(
            bad("g", QUEUE, ROLE, Some("arn:aws:sqs:eu-west-1:1:dlq.fifo")),
            "SCHEDULER_DLQ_ARN"
        );
        assert!(
            SchedulerConfig::new("g", QUEUE, ROLE, Some("arn:aws:sqs:eu-west-1:1:dlq".into()))
                .is_ok()
        );
    }

    #[test]
    fn the_target_carries_queue_role_input_group_retries_and_dlq() {
        let config = SchedulerConfig::new(
            "g",
            QUEUE,
            ROLE,
            Some("arn:aws:sqs:eu-west-1:123456789012:schedules-dlq".to_owned()),
        )
        .expect("valid");
        let client = Client::new(&crate::aws::sdk_config(
            aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "test"),
            "eu-west-1",
            None,
        ));
        let scheduler = SdkScheduler::new(client, config);
        let at = chrono::NaiveDate::from_ymd_opt(2025, 1, 15)
            .and_then(|d| d.and_hms_opt(9, 0, 0))
            .expect("date");
        let schedule =
            OneTimeSchedule::new("campaign-c", at, "Europe/Madrid", r#"{"v":"1"}"#).expect("valid");

        assert!(
            matches!(
                scheduler.target(&schedule),
                Err(SchedulerError::InvalidSchedule(_))
            ),
            "a FIFO target needs a group"
        );
        let target = scheduler
            .target(&schedule.with_message_group("cmp_1").expect("group"))
            .expect("target");
        assert_eq!(target.arn(), QUEUE);
        assert_eq!(target.role_arn(), ROLE);
        assert_eq!(target.input(), Some(r#"{"v":"1"}"#));
        assert_eq!(
            target.sqs_parameters().and_then(|p| p.message_group_id()),
            Some("cmp_1")
        );
        let retry = target.retry_policy().expect("retry policy");
        assert_eq!(retry.maximum_retry_attempts(), Some(185));
        assert_eq!(retry.maximum_event_age_in_seconds(), Some(86_400));
        assert_eq!(
            target.dead_letter_config().and_then(|d| d.arn()),
            Some("arn:aws:sqs:eu-west-1:123456789012:schedules-dlq")
        );
    }
}
