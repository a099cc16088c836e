use aws_sdk_sqs::{
    Client,
    config::{BehaviorVersion, Credentials, Region},
    types::QueueAttributeName,
};

/// An SQS client for moto's server (`MOTO_ENDPOINT`, started by `scripts/test.sh`).
pub fn moto_sqs_client() -> Client {
    let endpoint = std::env::var("MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!("MOTO_ENDPOINT is not set: run the tests through scripts/test.sh, which starts moto's server")
    });
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "testkit"))
        .build();
    Client::from_conf(config)
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
