//! Lambda's side of a queue consumer: the SQS event its event source mapping delivers, as
//! the lifter's records, and the lifter's report as the partial batch response
//! (`ReportBatchItemFailures`), so every consumer answers the same way.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};

use super::{
    Job,
    batch::{BatchReport, JobError, Lifter, Record},
};

/// Runs one Lambda SQS batch through `lifter` and answers with the failed records only:
/// what every queue consumer's `handle_batch` does.
pub async fn run_batch<J, F, Fut>(
    lifter: &Lifter,
    event: SqsEvent,
    deadline: Option<tokio::time::Instant>,
    handler: F,
) -> SqsBatchResponse
where
    J: Job,
    F: FnMut(J) -> Fut,
    Fut: Future<Output = Result<(), JobError>>,
{
    batch_response(lifter.run(records(event), deadline, handler).await)
}

/// [`run_batch`] for a consumer that runs its batch together ([`Lifter::run_together`]).
pub async fn run_batch_together<J, F, Fut>(
    lifter: &Lifter,
    event: SqsEvent,
    deadline: Option<tokio::time::Instant>,
    handler: F,
) -> SqsBatchResponse
where
    J: Job,
    F: FnOnce(Vec<J>) -> Fut,
    Fut: Future<Output = Vec<Result<(), JobError>>>,
{
    batch_response(lifter.run_together(records(event), deadline, handler).await)
}

/// An SQS event's records as the lifter's records.
pub fn records(event: SqsEvent) -> Vec<Record> {
    event
        .records
        .into_iter()
        .map(|record| Record {
            message_id: record.message_id.unwrap_or_default(),
            body: record.body.unwrap_or_default(),
            receipt_handle: record.receipt_handle,
            group_id: record.attributes.get("MessageGroupId").cloned(),
            receive_count: record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|count| count.parse().ok())
                .unwrap_or(1),
        })
        .collect()
}

/// The failed records only: SQS deletes the others.
pub fn batch_response(report: BatchReport) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for failure in report.failures {
        let mut item = BatchItemFailure::default();
        item.item_identifier = failure.message_id;
        response.batch_item_failures.push(item);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::batch::{Failure, FailureKind, Visibility};

    #[test]
    fn records_carry_the_group_and_receive_count_and_failures_answer_their_ids() {
        let event: SqsEvent = serde_json::from_value(serde_json::json!({ "Records": [
            { "messageId": "m1", "body": "{}", "receiptHandle": "r1",
              "attributes": { "MessageGroupId": "g1", "ApproximateReceiveCount": "3" } },
            { "messageId": "m2", "body": "{}", "attributes": {} }
        ]}))
        .expect("event");
        let records = records(event);
        assert_eq!(records[0].group_id.as_deref(), Some("g1"));
        assert_eq!(records[0].receive_count, 3);
        assert_eq!(records[1].receive_count, 1);
        let report = BatchReport {
            failures: vec![Failure {
                message_id: "m2".to_owned(),
                receipt_handle: None,
                kind: FailureKind::NotStarted,
                visibility: Visibility::QueueDefault,
            }],
        };
        let response = batch_response(report);
        assert_eq!(response.batch_item_failures.len(), 1);
        assert_eq!(response.batch_item_failures[0].item_identifier, "m2");
    }
}
