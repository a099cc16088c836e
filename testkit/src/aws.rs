use aws_sdk_sqs::{Client, config::Credentials, types::QueueAttributeName};
use shared::aws::SdkConfig;

/// The SDK configuration for moto's server (`MOTO_ENDPOINT`, started by `scripts/test.sh`),
/// built by the same code as production's ([`shared::aws::sdk_config`]): the rustls/ring
/// HTTP client, explicit credentials and region.
pub fn moto_sdk_config() -> SdkConfig {
    let endpoint = std::env::var("MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!("MOTO_ENDPOINT is not set: run the tests through scripts/test.sh, which starts moto's server")
    });
    shared::aws::sdk_config(
        Credentials::new("test", "test", None, None, "testkit"),
        "us-east-1",
        Some(&endpoint),
    )
}

/// An SQS client for moto's server.
pub fn moto_sqs_client() -> Client {
    Client::new(&moto_sdk_config())
}

/// A Secrets Manager client for moto's server.
pub fn moto_secrets_client() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&moto_sdk_config())
}

/// Stores a text secret under a unique name and returns its ARN.
pub async fn create_secret(
    client: &aws_sdk_secretsmanager::Client,
    label: &str,
    value: &str,
) -> String {
    let name = format!("{label}-{}", ulid::Ulid::new().to_string().to_lowercase());
    client
        .create_secret()
        .name(&name)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating secret {name}: {e:?}"))
        .arn
        .unwrap_or_else(|| panic!("secret {name} has no ARN"))
}

/// Creates a FIFO queue with a unique name (explicit deduplication ids, as production) and
/// returns its URL.
pub async fn create_fifo_queue(client: &Client, label: &str) -> String {
    let name = format!(
        "{label}-{}.fifo",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    client
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating queue {name}: {e:?}"))
        .queue_url
        .unwrap_or_else(|| panic!("queue {name} has no URL"))
}

/// Creates a standard queue with a unique name and returns its URL.
pub async fn create_queue(client: &Client, label: &str) -> String {
    let name = format!("{label}-{}", ulid::Ulid::new().to_string().to_lowercase());
    client
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating queue {name}: {e:?}"))
        .queue_url
        .unwrap_or_else(|| panic!("queue {name} has no URL"))
}

/// How many messages a queue holds, visible or in flight (moto counts them exactly).
pub async fn queue_depth(client: &Client, url: &str) -> i64 {
    let attributes = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap_or_else(|e| panic!("reading the attributes of {url}: {e:?}"))
        .attributes
        .unwrap_or_default();
    [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ]
    .iter()
    .filter_map(|name| attributes.get(name)?.parse::<i64>().ok())
    .sum()
}

/// The ARN of a queue (`QueueArn`), to name it as a target (EventBridge Scheduler).
pub async fn queue_arn(client: &Client, url: &str) -> String {
    client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("reading the attributes of {url}: {e:?}"))
        .attributes
        .and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_else(|| panic!("queue {url} has no ARN"))
}

/// An EventBridge Scheduler client for moto's server.
pub fn moto_scheduler_client() -> aws_sdk_scheduler::Client {
    aws_sdk_scheduler::Client::new(&moto_sdk_config())
}

/// Creates a schedule group with a unique name and returns the name (in AWS, template.yaml
/// declares the group; schedules cannot be created in a group that does not exist).
pub async fn create_schedule_group(client: &aws_sdk_scheduler::Client, label: &str) -> String {
    let name = format!("{label}-{}", ulid::Ulid::new().to_string().to_lowercase());
    client
        .create_schedule_group()
        .name(&name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating schedule group {name}: {e:?}"));
    name
}
