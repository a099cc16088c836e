//! The batch lifter: runs a batch of queue records through a consumer's handler, the same
//! way in Lambda (an SQS event), in devstack (SQS polled, or the in-process queue) and in
//! tests.
//!
//! - Only failed records are reported (`ReportBatchItemFailures`), so SQS redelivers just
//!   those; every record gets one tracing span carrying its message id.
//! - FIFO hold-back: once a record of a message group fails, every later record of that
//!   group in the batch is failed without running, so it never overtakes the failed one.
//!   Every failed group of the batch is remembered, not only the last one.
//! - A retryable failure's message is hidden for a growing delay (visibility backoff, or the
//!   delay the handler asked for); a poison message (unparseable body, unknown version, or
//!   [`JobError::Poison`]) is reported as failed and logged once, with no backoff: it keeps
//!   the queue's visibility timeout and reaches the dead-letter queue through
//!   `maxReceiveCount`, where an operator can read it and redrive it after a fix.
//! - Deadline guard: no record is started when less than the configured margin is left
//!   before the invocation's deadline; the rest are reported as failed and made visible
//!   again at once (visibility 0), so a slow batch never becomes a timeout that redelivers
//!   work already done. A job still running [`DEADLINE_RESERVE`] before the deadline is
//!   stopped and retried, for the same reason.

use std::{collections::HashSet, future::Future, time::Duration};

use tokio::time::Instant;
use tracing::Instrument;

use super::{Job, LocalQueue, Queue, QueueError, SqsQueue};
use crate::{
    config::{ConfigError, parsed_var},
    db::DbError,
};

/// What the lifter keeps of an invocation for itself: a job still running this long before
/// the deadline is stopped, leaving time to report the batch and change visibilities.
pub const DEADLINE_RESERVE: Duration = Duration::from_secs(2);

/// One received queue message, whatever delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The queue's message id (what a partial batch failure names).
    pub message_id: String,
    /// The serialized job.
    pub body: String,
    /// Needed to change the message's visibility or delete it.
    pub receipt_handle: Option<String>,
    /// The FIFO message group, if any.
    pub group_id: Option<String>,
    /// `ApproximateReceiveCount`: 1 on the first delivery.
    pub receive_count: u32,
}

/// Why a job did not complete.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Try again later: at `not_before` when given, else after the lifter's backoff for the
    /// message's receive count. The queue moves it to its DLQ after `maxReceiveCount`.
    #[error("retryable: {reason}")]
    Retryable {
        /// What failed.
        reason: String,
        /// The next attempt's earliest instant, when the failure says (`Retry-After`, a
        /// send slot). An instant, not a delay: a batch's failures are settled when the
        /// whole batch ends, and the message's visibility counts from then.
        not_before: Option<Instant>,
    },
    /// Not done yet, by design: the job waits its turn (a send slot, a rate limit). It comes
    /// back at `not_before`, as a new message where the queue allows it, so waiting does
    /// not use up the receives that send a failing job to its dead letters.
    #[error("throttled: {reason}")]
    Throttled {
        /// Why it waits.
        reason: String,
        /// When it may run again.
        not_before: Instant,
    },
    /// The job itself is broken; retrying cannot help.
    #[error("poison: {0}")]
    Poison(String),
}

impl JobError {
    /// A retryable failure with the lifter's backoff.
    pub fn retryable(reason: impl Into<String>) -> Self {
        Self::Retryable {
            reason: reason.into(),
            not_before: None,
        }
    }

    /// A retryable failure to try again `delay` from now.
    pub fn retry_after(reason: impl Into<String>, delay: Duration) -> Self {
        Self::retry_at(reason, Instant::now() + delay)
    }

    /// A retryable failure to try again at `at`.
    pub fn retry_at(reason: impl Into<String>, at: Instant) -> Self {
        Self::Retryable {
            reason: reason.into(),
            not_before: Some(at),
        }
    }

    /// A job that waits its turn until `at` ([`JobError::Throttled`]).
    pub fn throttled(reason: impl Into<String>, at: Instant) -> Self {
        Self::Throttled {
            reason: reason.into(),
            not_before: at,
        }
    }
}

impl From<DbError> for JobError {
    fn from(error: DbError) -> Self {
        Self::retryable(crate::api::error_chain(&error))
    }
}

impl From<crate::db::PoolError> for JobError {
    fn from(error: crate::db::PoolError) -> Self {
        Self::from(DbError::from(error))
    }
}

impl From<crate::db::PgError> for JobError {
    fn from(error: crate::db::PgError) -> Self {
        Self::from(DbError::from(error))
    }
}

/// How the lifter retries and when it stops starting records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifterConfig {
    /// `JOB_DEADLINE_MARGIN_SECS`: no record is started with less than this left before the
    /// invocation's deadline. At least the longest one job can take.
    pub deadline_margin: Duration,
    /// The first retry's delay, doubled per receive (`JOB_RETRY_BASE_SECS`, default 10).
    pub backoff_base: Duration,
    /// The longest retry delay (`JOB_RETRY_MAX_SECS`, default 900).
    pub backoff_cap: Duration,
}

impl LifterConfig {
    /// The default margin: one reply job's worst case (docs/architecture.md, "Sizing").
    pub const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_secs(100);

    /// Reads `JOB_DEADLINE_MARGIN_SECS`, `JOB_RETRY_BASE_SECS` and `JOB_RETRY_MAX_SECS`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            deadline_margin: Duration::from_secs(parsed_var(
                "JOB_DEADLINE_MARGIN_SECS",
                Self::DEFAULT_DEADLINE_MARGIN.as_secs(),
            )?),
            backoff_base: Duration::from_secs(parsed_var("JOB_RETRY_BASE_SECS", 10)?),
            backoff_cap: Duration::from_secs(parsed_var("JOB_RETRY_MAX_SECS", 900)?),
        })
    }

    /// The delay before a failed job's next attempt: the base, doubling per receive, at
    /// most the cap (10 s, 20 s, 40 s, … 15 min by default).
    pub fn backoff(&self, receive_count: u32) -> Duration {
        let doublings = receive_count.saturating_sub(1).min(16);
        self.backoff_base
            .saturating_mul(1 << doublings)
            .min(self.backoff_cap)
    }
}

/// What to do with a failed record's visibility.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Visible again after this long (`ChangeMessageVisibility`); zero means at once.
    After(Duration),
    /// Left alone: the queue's own visibility timeout applies (poison messages).
    QueueDefault,
}

/// Why a record is in the failure report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// The handler failed and may succeed later.
    Retryable(String),
    /// The body or the job cannot succeed.
    Poison(String),
    /// The job waits its turn ([`JobError::Throttled`]): on a standard SQS queue it is
    /// published again with a delay (and the record deleted), so it does not count.
    Throttled(String),
    /// An earlier record of its FIFO group failed in this batch; not started.
    HeldBack,
    /// Too close to the deadline; not started.
    NotStarted,
}

/// One failed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The record's message id.
    pub message_id: String,
    /// The record's receipt handle, to change its visibility.
    pub receipt_handle: Option<String>,
    /// Why it failed.
    pub kind: FailureKind,
    /// When it may be received again.
    pub visibility: Visibility,
}

/// What a batch came to: the failures, in record order. Every other record succeeded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// The failed records, in record order.
    pub failures: Vec<Failure>,
}

impl BatchReport {
    /// Records `record` as failed.
    fn fail(&mut self, record: Record, (kind, visibility): (FailureKind, Visibility)) {
        self.failures.push(Failure {
            message_id: record.message_id,
            receipt_handle: record.receipt_handle,
            kind,
            visibility,
        });
    }

    /// The failed message ids, in record order (the partial batch failure response).
    pub fn failed_ids(&self) -> Vec<&str> {
        self.failures
            .iter()
            .map(|f| f.message_id.as_str())
            .collect()
    }

    /// Whether the record with `message_id` failed.
    pub fn failed(&self, message_id: &str) -> bool {
        self.failures.iter().any(|f| f.message_id == message_id)
    }
}

/// The deadline of an invocation given in milliseconds since the Unix epoch (Lambda's
/// `Context.deadline`), as an `Instant` on this process's clock.
pub fn deadline_from_epoch_millis(deadline_ms: u64) -> Instant {
    let deadline = std::time::UNIX_EPOCH + Duration::from_millis(deadline_ms);
    let remaining = deadline
        .duration_since(std::time::SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now() + remaining
}

/// Runs batches of one consumer. Cheap to build per batch.
#[derive(Debug, Clone)]
pub struct Lifter {
    config: LifterConfig,
    /// The SQS queue the records came from, to change their visibility; `None` when the
    /// caller settles visibility itself (the in-process queue) or cannot (tests).
    sqs: Option<SqsQueue>,
}

impl Lifter {
    /// A lifter; `sqs` is the queue whose visibility it changes.
    pub fn new(config: LifterConfig, sqs: Option<SqsQueue>) -> Self {
        Self { config, sqs }
    }

    /// This lifter settling on `sqs` (the queue a poll received from).
    fn on(&self, sqs: &SqsQueue) -> Self {
        Self::new(self.config.clone(), Some(sqs.clone()))
    }

    /// Runs `records` in order through `handler`, stopping to start new ones `margin`
    /// before `deadline`, then sets the failed records' visibility on SQS (one batch call).
    pub async fn run<J, F, Fut>(
        &self,
        records: Vec<Record>,
        deadline: Option<Instant>,
        mut handler: F,
    ) -> BatchReport
    where
        J: Job,
        F: FnMut(J) -> Fut,
        Fut: Future<Output = Result<(), JobError>>,
    {
        let copies = Copies::of(&records);
        let mut report = BatchReport::default();
        let mut failed_groups: HashSet<String> = HashSet::new();
        let mut stopped = false;
        for record in records {
            let span = job_span::<J>(&record);
            if !stopped {
                if let Some(deadline) = deadline {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left < self.config.deadline_margin {
                        stopped = true;
                        tracing::warn!(
                            time_left_ms = left.as_millis() as u64,
                            margin_ms = self.config.deadline_margin.as_millis() as u64,
                            "near the deadline: the rest of the batch goes back to the queue"
                        );
                    }
                }
            }
            let (kind, visibility) = if stopped {
                (FailureKind::NotStarted, Visibility::After(Duration::ZERO))
            } else if J::QUEUE.fifo
                && record
                    .group_id
                    .as_ref()
                    .is_some_and(|group| failed_groups.contains(group))
            {
                // Visible at once is safe: SQS FIFO delivers nothing of a group while an
                // earlier message of it is in flight, so this waits for the failed one.
                (FailureKind::HeldBack, Visibility::After(Duration::ZERO))
            } else {
                match self
                    .run_one(&record, deadline, &mut handler)
                    .instrument(span)
                    .await
                {
                    None => continue,
                    Some(failure) => failure,
                }
            };
            if let Some(group) = &record.group_id {
                failed_groups.insert(group.clone());
            }
            report.fail(record, (kind, visibility));
        }
        // Settled on SQS when the lifter has a queue: throttled jobs published again,
        // then every failure's visibility. (Inline: one more async layer here pushes the
        // consumers' futures past the compiler's layout depth.)
        if let Some(sqs) = &self.sqs {
            requeue_throttled::<J>(sqs, &copies, &mut report).await;
            apply_visibility(sqs, &report).await;
        }
        report
    }

    /// Runs `records` of a standard queue as one batch: `handler` takes every job that
    /// parsed and answers for each, in order (for consumers whose work is cheaper in bulk:
    /// the send worker claims, writes and records a batch in a few statements). A record that
    /// does not parse is poison; a batch that would start `margin` before the deadline goes
    /// back whole; one still running [`DEADLINE_RESERVE`] before it is stopped and retried.
    pub async fn run_together<J, F, Fut>(
        &self,
        records: Vec<Record>,
        deadline: Option<Instant>,
        handler: F,
    ) -> BatchReport
    where
        J: Job,
        F: FnOnce(Vec<J>) -> Fut,
        Fut: Future<Output = Vec<Result<(), JobError>>>,
    {
        let too_late = deadline.is_some_and(|deadline| {
            deadline.saturating_duration_since(Instant::now()) < self.config.deadline_margin
        });
        let copies = Copies::of(&records);
        // The jobs that parse; for each record, why it has none.
        let mut jobs = Vec::with_capacity(records.len());
        let parsed: Vec<Option<JobError>> = records
            .iter()
            .map(|record| match parse::<J>(record) {
                Ok(job) => {
                    jobs.push(job);
                    None
                }
                Err(poison) => Some(poison),
            })
            .collect();
        let results = if too_late {
            tracing::warn!("near the deadline: the batch goes back to the queue");
            Vec::new()
        } else {
            match deadline {
                None => handler(jobs).await,
                // Stopped at the deadline: no answers, so every job is retried.
                Some(deadline) => {
                    let stop = deadline.checked_sub(DEADLINE_RESERVE).unwrap_or(deadline);
                    tokio::time::timeout_at(stop, handler(jobs))
                        .await
                        .unwrap_or_default()
                }
            }
        };
        let mut results = results.into_iter();
        let mut report = BatchReport::default();
        for (record, parse_error) in records.into_iter().zip(parsed) {
            let span = job_span::<J>(&record);
            let failure = match parse_error {
                Some(error) => span.in_scope(|| self.classify(&record, Err(error))),
                None if too_late => {
                    Some((FailureKind::NotStarted, Visibility::After(Duration::ZERO)))
                }
                None => {
                    let result = results.next().unwrap_or_else(|| {
                        Err(JobError::retryable(
                            "stopped at the invocation's deadline while running",
                        ))
                    });
                    span.in_scope(|| self.classify(&record, result))
                }
            };
            if let Some(failure) = failure {
                report.fail(record, failure);
            }
        }
        // Settled on SQS when the lifter has a queue: throttled jobs published again,
        // then every failure's visibility. (Inline: one more async layer here pushes the
        // consumers' futures past the compiler's layout depth.)
        if let Some(sqs) = &self.sqs {
            requeue_throttled::<J>(sqs, &copies, &mut report).await;
            apply_visibility(sqs, &report).await;
        }
        report
    }

    /// Runs one record; `None` when it succeeded. Logs its failure once. A job still
    /// running [`DEADLINE_RESERVE`] before the deadline (a margin set too small, a hung
    /// call) is stopped and retried, so the invocation can still report and change
    /// visibilities instead of timing out with the whole batch.
    async fn run_one<J, F, Fut>(
        &self,
        record: &Record,
        deadline: Option<Instant>,
        handler: &mut F,
    ) -> Option<(FailureKind, Visibility)>
    where
        J: Job,
        F: FnMut(J) -> Fut,
        Fut: Future<Output = Result<(), JobError>>,
    {
        let outcome = match parse::<J>(record) {
            Ok(job) => match deadline {
                None => handler(job).await,
                Some(deadline) => {
                    let stop = deadline.checked_sub(DEADLINE_RESERVE).unwrap_or(deadline);
                    tokio::time::timeout_at(stop, handler(job))
                        .await
                        .unwrap_or_else(|_| {
                            Err(JobError::retryable(
                                "stopped at the invocation's deadline while running",
                            ))
                        })
                }
            },
            Err(poison) => Err(poison),
        };
        self.classify(record, outcome)
    }

    /// What a job's result means for its record: `None` when it succeeded. Logs a failure
    /// once.
    fn classify(
        &self,
        record: &Record,
        outcome: Result<(), JobError>,
    ) -> Option<(FailureKind, Visibility)> {
        match outcome {
            Ok(()) => None,
            Err(JobError::Retryable { reason, not_before }) => {
                let delay = not_before.map_or_else(
                    || self.config.backoff(record.receive_count),
                    |at| at.saturating_duration_since(Instant::now()),
                );
                tracing::warn!(
                    error = %reason,
                    retry_in_s = delay.as_secs(),
                    "job failed; it will be retried"
                );
                Some((FailureKind::Retryable(reason), Visibility::After(delay)))
            }
            Err(JobError::Throttled { reason, not_before }) => {
                let delay = not_before.saturating_duration_since(Instant::now());
                tracing::info!(
                    reason = %reason,
                    back_in_ms = delay.as_millis() as u64,
                    "job waits its turn"
                );
                Some((FailureKind::Throttled(reason), Visibility::After(delay)))
            }
            Err(JobError::Poison(reason)) => {
                tracing::error!(
                    error = %reason,
                    "poison job: left for the dead-letter queue, not retried early"
                );
                Some((FailureKind::Poison(reason), Visibility::QueueDefault))
            }
        }
    }

    /// Receives one batch (up to 10) from `sqs` and runs it, deleting what succeeded and
    /// hiding each retry for its delay: what Lambda's event source mapping does in AWS (with
    /// `ReportBatchItemFailures`), for devstack with a real (or moto's) queue. Returns how
    /// many messages were received.
    pub async fn poll_sqs<J, F, Fut>(
        &self,
        sqs: &SqsQueue,
        deadline: Option<Instant>,
        handler: F,
    ) -> Result<usize, QueueError>
    where
        J: Job,
        F: FnMut(J) -> Fut,
        Fut: Future<Output = Result<(), JobError>>,
    {
        let records = receive_sqs(sqs).await?;
        let handles = receipts(&records);
        let report = self.on(sqs).run(records, deadline, handler).await;
        delete_done(sqs, handles, &report).await
    }

    /// [`Lifter::poll_sqs`] for a consumer that runs its batch together
    /// ([`Lifter::run_together`]).
    pub async fn poll_sqs_together<J, F, Fut>(
        &self,
        sqs: &SqsQueue,
        deadline: Option<Instant>,
        handler: F,
    ) -> Result<usize, QueueError>
    where
        J: Job,
        F: FnOnce(Vec<J>) -> Fut,
        Fut: Future<Output = Vec<Result<(), JobError>>>,
    {
        let records = receive_sqs(sqs).await?;
        let handles = receipts(&records);
        let report = self.on(sqs).run_together(records, deadline, handler).await;
        delete_done(sqs, handles, &report).await
    }

    /// One batch from `queue`, whichever it is ([`Lifter::poll_local`] or
    /// [`Lifter::poll_sqs`]): how many records ran.
    pub async fn poll<J, F, Fut>(&self, queue: &Queue<J>, handler: F) -> Result<usize, QueueError>
    where
        J: Job,
        F: FnMut(J) -> Fut,
        Fut: Future<Output = Result<(), JobError>>,
    {
        match queue {
            Queue::Local(local) => Ok(self.poll_local(local, handler).await),
            Queue::Sqs(sqs) => self.poll_sqs(sqs, None, handler).await,
        }
    }

    /// [`Lifter::poll`] for a consumer that runs its batch together.
    pub async fn poll_together<J, F, Fut>(
        &self,
        queue: &Queue<J>,
        handler: F,
    ) -> Result<usize, QueueError>
    where
        J: Job,
        F: FnOnce(Vec<J>) -> Fut,
        Fut: Future<Output = Vec<Result<(), JobError>>>,
    {
        match queue {
            Queue::Local(local) => Ok(self.poll_local_together(local, handler).await),
            Queue::Sqs(sqs) => self.poll_sqs_together(sqs, None, handler).await,
        }
    }

    /// Waits for the next batch of the in-process queue and runs it; the queue then hides
    /// or drops the failures as SQS would. Returns how many records ran.
    pub async fn poll_local<J, F, Fut>(&self, queue: &LocalQueue<J>, handler: F) -> usize
    where
        J: Job,
        F: FnMut(J) -> Fut,
        Fut: Future<Output = Result<(), JobError>>,
    {
        let records = queue.next_batch(10).await;
        let ids: Vec<String> = records.iter().map(|r| r.message_id.clone()).collect();
        let report = self.run(records, None, handler).await;
        queue.settle(&ids, &report);
        ids.len()
    }

    /// [`Lifter::poll_local`] for a consumer that runs its batch together
    /// ([`Lifter::run_together`]).
    pub async fn poll_local_together<J, F, Fut>(&self, queue: &LocalQueue<J>, handler: F) -> usize
    where
        J: Job,
        F: FnOnce(Vec<J>) -> Fut,
        Fut: Future<Output = Vec<Result<(), JobError>>>,
    {
        let records = queue.next_batch(10).await;
        let ids: Vec<String> = records.iter().map(|r| r.message_id.clone()).collect();
        let report = self.run_together(records, None, handler).await;
        queue.settle(&ids, &report);
        ids.len()
    }
}

/// One receive of up to 10 messages (long polling, 1 s).
async fn receive_sqs(sqs: &SqsQueue) -> Result<Vec<Record>, QueueError> {
    Ok(sqs
        .receive(10, 1)
        .await?
        .into_iter()
        .map(Record::from)
        .collect())
}

/// Each record's message id and receipt handle.
fn receipts(records: &[Record]) -> Vec<(String, Option<String>)> {
    records
        .iter()
        .map(|r| (r.message_id.clone(), r.receipt_handle.clone()))
        .collect()
}

/// What republishing a record needs: its message id, body and group.
struct Copies(Vec<(String, String, Option<String>)>);

impl Copies {
    fn of(records: &[Record]) -> Self {
        Self(
            records
                .iter()
                .map(|r| (r.message_id.clone(), r.body.clone(), r.group_id.clone()))
                .collect(),
        )
    }

    fn get(&self, message_id: &str) -> Option<(&str, Option<&str>)> {
        self.0
            .iter()
            .find(|(id, _, _)| id == message_id)
            .map(|(_, body, group)| (body.as_str(), group.as_deref()))
    }
}

/// Publishes each throttled record again as a new message hidden until its time, and takes
/// it out of the report (so it is deleted as done): waiting for a turn does not use up
/// receives. A FIFO queue takes no per-message delay, and a copy that cannot be published
/// stays a failure: either way the record comes back by its visibility instead.
async fn requeue_throttled<J: Job>(sqs: &SqsQueue, copies: &Copies, report: &mut BatchReport) {
    if J::QUEUE.fifo {
        return;
    }
    let failures = std::mem::take(&mut report.failures);
    let republished = futures_util::future::join_all(failures.iter().map(|failure| async {
        let (FailureKind::Throttled(_), Visibility::After(delay)) =
            (&failure.kind, failure.visibility)
        else {
            return false;
        };
        let Some((body, group)) = copies.get(&failure.message_id) else {
            return false;
        };
        match sqs.republish(body, group, delay).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "could not republish a throttled job; it comes back by its visibility");
                false
            }
        }
    }))
    .await;
    report.failures = failures
        .into_iter()
        .zip(republished)
        .filter_map(|(failure, done)| (!done).then_some(failure))
        .collect();
}

/// Deletes what the report does not list as failed (what Lambda does after a batch);
/// how many were received.
async fn delete_done(
    sqs: &SqsQueue,
    handles: Vec<(String, Option<String>)>,
    report: &BatchReport,
) -> Result<usize, QueueError> {
    let received = handles.len();
    for (message_id, receipt) in handles {
        if let (false, Some(receipt)) = (report.failed(&message_id), receipt) {
            sqs.delete(&receipt).await?;
        }
    }
    Ok(received)
}

/// The span of one record's job.
fn job_span<J: Job>(record: &Record) -> tracing::Span {
    tracing::info_span!(
        "job",
        queue = J::QUEUE.name,
        sqs.message_id = %record.message_id,
        sqs.receive_count = record.receive_count,
    )
}

/// A record's job; a body that is no job of a known version is poison.
fn parse<J: Job>(record: &Record) -> Result<J, JobError> {
    serde_json::from_str(&record.body).map_err(|error| {
        JobError::Poison(format!(
            "not a {} job of a known version: {error}",
            J::QUEUE.name
        ))
    })
}

async fn apply_visibility(sqs: &SqsQueue, report: &BatchReport) {
    let entries: Vec<(&str, i32)> = report
        .failures
        .iter()
        .filter_map(
            |failure| match (&failure.receipt_handle, failure.visibility) {
                (Some(receipt), Visibility::After(delay)) => Some((
                    receipt.as_str(),
                    // Whole seconds, rounded up: a 200 ms backoff still hides the message.
                    i32::try_from(delay.as_millis().div_ceil(1000)).unwrap_or(i32::MAX),
                )),
                _ => None,
            },
        )
        .collect();
    if entries.is_empty() {
        return;
    }
    match sqs.change_visibility(&entries).await {
        Ok(0) => {}
        Ok(refused) => tracing::warn!(refused, "SQS refused some visibility changes"),
        Err(error) => tracing::warn!(%error, "could not change the failed messages' visibility"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::jobs::QueueSpec;

    /// A test job: `Ok`, a retryable failure, poison, or a slow success.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "version")]
    enum TestJob {
        #[serde(rename = "1")]
        V1 { id: String, group: String, act: Act },
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    enum Act {
        Succeed,
        Fail,
        FailAfter(u64),
        Poison,
        TakeSeconds(u64),
    }

    impl Job for TestJob {
        const QUEUE: QueueSpec = QueueSpec {
            name: "test",
            url_var: "TEST_QUEUE_URL",
            fifo: true,
        };
        fn version(&self) -> &'static str {
            "1"
        }
        fn group_id(&self) -> Option<String> {
            let Self::V1 { group, .. } = self;
            Some(group.clone())
        }
        fn deduplication_id(&self) -> Option<String> {
            let Self::V1 { id, .. } = self;
            Some(id.clone())
        }
    }

    fn record(id: &str, group: &str, act: Act) -> Record {
        let job = TestJob::V1 {
            id: id.to_owned(),
            group: group.to_owned(),
            act,
        };
        Record {
            message_id: id.to_owned(),
            body: serde_json::to_string(&job).expect("json"),
            receipt_handle: Some(format!("receipt-{id}")),
            group_id: Some(group.to_owned()),
            receive_count: 1,
        }
    }

    fn config() -> LifterConfig {
        LifterConfig {
            deadline_margin: Duration::from_secs(10),
            backoff_base: Duration::from_secs(10),
            backoff_cap: Duration::from_secs(900),
        }
    }

    /// What a test job does.
    async fn perform(act: Act) -> Result<(), JobError> {
        match act {
            Act::Succeed => Ok(()),
            Act::Fail => Err(JobError::retryable("fake failure")),
            Act::FailAfter(seconds) => Err(JobError::retry_after(
                "rate limited",
                Duration::from_secs(seconds),
            )),
            Act::Poison => Err(JobError::Poison("fake poison".to_owned())),
            Act::TakeSeconds(seconds) => {
                tokio::time::sleep(Duration::from_secs(seconds)).await;
                Ok(())
            }
        }
    }

    /// Runs `records` through a fake handler; returns the report and the ids it started.
    async fn run(records: Vec<Record>, deadline: Option<Instant>) -> (BatchReport, Vec<String>) {
        let started = Arc::new(Mutex::new(Vec::new()));
        let lifter = Lifter::new(config(), None);
        let report = lifter
            .run(records, deadline, |job: TestJob| {
                let started = started.clone();
                async move {
                    let TestJob::V1 { id, act, .. } = job;
                    started.lock().expect("lock").push(id);
                    perform(act).await
                }
            })
            .await;
        let started = started.lock().expect("lock").clone();
        (report, started)
    }

    fn kinds(report: &BatchReport) -> Vec<(&str, &FailureKind, Visibility)> {
        report
            .failures
            .iter()
            .map(|f| (f.message_id.as_str(), &f.kind, f.visibility))
            .collect()
    }

    #[tokio::test]
    async fn a_batch_that_succeeds_reports_no_failures() {
        let (report, started) = run(
            vec![
                record("a1", "a", Act::Succeed),
                record("b1", "b", Act::Succeed),
            ],
            None,
        )
        .await;

        assert!(report.failures.is_empty());
        assert_eq!(started, ["a1", "b1"]);
    }

    #[tokio::test]
    async fn every_failed_group_holds_back_its_later_records_not_only_the_last_one() {
        // [A1 fails, B1 fails, A2]: A2 must not run before A1.
        let (report, started) = run(
            vec![
                record("a1", "a", Act::Fail),
                record("b1", "b", Act::Fail),
                record("a2", "a", Act::Succeed),
                record("c1", "c", Act::Succeed),
                record("b2", "b", Act::Succeed),
            ],
            None,
        )
        .await;

        assert_eq!(started, ["a1", "b1", "c1"], "a2 and b2 never started");
        assert_eq!(report.failed_ids(), ["a1", "b1", "a2", "b2"]);
        assert_eq!(report.failures[2].kind, FailureKind::HeldBack);
        assert_eq!(report.failures[3].kind, FailureKind::HeldBack);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retryable_failure_is_hidden_for_its_backoff_or_the_delay_it_asked_for() {
        let mut second_receive = record("a1", "a", Act::Fail);
        second_receive.receive_count = 3;

        let (report, _) = run(
            vec![second_receive, record("b1", "b", Act::FailAfter(7))],
            None,
        )
        .await;

        assert_eq!(
            report.failures[0].visibility,
            Visibility::After(Duration::from_secs(40))
        );
        assert_eq!(
            report.failures[1].visibility,
            Visibility::After(Duration::from_secs(7))
        );
    }

    #[tokio::test]
    async fn poison_goes_to_the_report_without_a_backoff_and_holds_back_its_group() {
        let (report, started) = run(
            vec![
                Record {
                    body: "not json".to_owned(),
                    ..record("a1", "a", Act::Succeed)
                },
                Record {
                    body: r#"{"version":"9","id":"a2"}"#.to_owned(),
                    ..record("x1", "x", Act::Succeed)
                },
                record("b1", "b", Act::Poison),
                record("a2", "a", Act::Succeed),
                record("c1", "c", Act::Succeed),
            ],
            None,
        )
        .await;

        assert_eq!(started, ["b1", "c1"]);
        let kinds = kinds(&report);
        assert!(
            matches!(kinds[0], ("a1", FailureKind::Poison(reason), Visibility::QueueDefault) if reason.contains("test job")),
            "{kinds:?}"
        );
        assert!(
            matches!(
                kinds[1],
                ("x1", FailureKind::Poison(_), Visibility::QueueDefault)
            ),
            "an unknown version is poison: {kinds:?}"
        );
        assert!(matches!(
            kinds[2],
            ("b1", FailureKind::Poison(_), Visibility::QueueDefault)
        ));
        assert_eq!(kinds[3].0, "a2");
        assert_eq!(kinds[3].1, &FailureKind::HeldBack);
        assert_eq!(kinds.len(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn near_the_deadline_the_rest_is_returned_at_once_and_never_started() {
        // 25 s left, a 10 s margin: the first job takes 20 s, so the others must not start.
        let deadline = Instant::now() + Duration::from_secs(25);

        let (report, started) = run(
            vec![
                record("a1", "a", Act::TakeSeconds(20)),
                record("b1", "b", Act::Succeed),
                record("a2", "a", Act::Succeed),
            ],
            Some(deadline),
        )
        .await;

        assert_eq!(started, ["a1"]);
        assert_eq!(
            kinds(&report),
            [
                (
                    "b1",
                    &FailureKind::NotStarted,
                    Visibility::After(Duration::ZERO)
                ),
                (
                    "a2",
                    &FailureKind::NotStarted,
                    Visibility::After(Duration::ZERO)
                ),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_still_running_at_the_deadline_is_stopped_and_retried_and_the_rest_returned() {
        // The margin (10 s) is too small for this job (60 s): it is stopped 2 s before the
        // deadline instead of timing out the invocation.
        let start = Instant::now();
        let deadline = start + Duration::from_secs(25);

        let (report, started) = run(
            vec![
                record("a1", "a", Act::TakeSeconds(60)),
                record("b1", "b", Act::Succeed),
            ],
            Some(deadline),
        )
        .await;

        assert_eq!(Instant::now() - start, Duration::from_secs(23));
        assert_eq!(started, ["a1"]);
        assert!(
            matches!(&report.failures[0].kind, FailureKind::Retryable(reason) if reason.contains("deadline")),
            "{report:?}"
        );
        assert_eq!(
            report.failures[1],
            Failure {
                message_id: "b1".to_owned(),
                receipt_handle: Some("receipt-b1".to_owned()),
                kind: FailureKind::NotStarted,
                visibility: Visibility::After(Duration::ZERO),
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_already_within_the_margin_starts_nothing() {
        let deadline = Instant::now() + Duration::from_secs(5);

        let (report, started) = run(vec![record("a1", "a", Act::Succeed)], Some(deadline)).await;

        assert!(started.is_empty());
        assert_eq!(report.failed_ids(), ["a1"]);
    }

    #[test]
    fn the_backoff_doubles_and_is_capped() {
        let config = config();
        let seconds = |receives| config.backoff(receives).as_secs();
        assert_eq!(seconds(0), 10);
        assert_eq!(seconds(1), 10);
        assert_eq!(seconds(2), 20);
        assert_eq!(seconds(4), 80);
        assert_eq!(seconds(50), 900);
        assert_eq!(seconds(u32::MAX), 900);
    }

    #[test]
    fn a_deadline_in_the_past_is_now() {
        let deadline = deadline_from_epoch_millis(0);
        assert!(deadline <= Instant::now());
    }

    /// Runs `records` together through a fake batch handler; returns the report and the
    /// batches it was given.
    async fn run_together(
        records: Vec<Record>,
        deadline: Option<Instant>,
    ) -> (BatchReport, Vec<Vec<String>>) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let lifter = Lifter::new(config(), None);
        let report = lifter
            .run_together(records, deadline, |jobs: Vec<TestJob>| {
                let batches = batches.clone();
                async move {
                    let ids = jobs
                        .iter()
                        .map(|TestJob::V1 { id, .. }| id.clone())
                        .collect();
                    batches.lock().expect("lock").push(ids);
                    let mut results = Vec::new();
                    for TestJob::V1 { act, .. } in jobs {
                        results.push(perform(act).await);
                    }
                    results
                }
            })
            .await;
        let batches = batches.lock().expect("lock").clone();
        (report, batches)
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_run_together_reports_each_record_by_its_own_result() {
        let mut unparsable = record("x1", "x", Act::Succeed);
        unparsable.body = "{not json".to_owned();
        let (report, batches) = run_together(
            vec![
                record("a1", "a", Act::Succeed),
                unparsable,
                record("b1", "b", Act::FailAfter(7)),
                record("c1", "c", Act::Poison),
                record("d1", "d", Act::Succeed),
            ],
            None,
        )
        .await;

        assert_eq!(
            batches,
            [["a1", "b1", "c1", "d1"]],
            "one call, parsed jobs only"
        );
        assert_eq!(
            kinds(&report),
            [
                (
                    "x1",
                    &FailureKind::Poison(
                        "not a test job of a known version: key must be a string at line 1 column 2"
                            .to_owned()
                    ),
                    Visibility::QueueDefault
                ),
                (
                    "b1",
                    &FailureKind::Retryable("rate limited".to_owned()),
                    Visibility::After(Duration::from_secs(7))
                ),
                (
                    "c1",
                    &FailureKind::Poison("fake poison".to_owned()),
                    Visibility::QueueDefault
                ),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_delay_asked_for_in_a_batch_counts_from_when_it_was_asked() {
        // The batch is settled when its last job ends, 3 s after b1 asked for 7 s: b1 is
        // hidden for the 4 s left, not for 7 s more.
        let (report, _) = run_together(
            vec![
                record("b1", "b", Act::FailAfter(7)),
                record("a1", "a", Act::TakeSeconds(3)),
            ],
            None,
        )
        .await;
        assert_eq!(
            kinds(&report),
            [(
                "b1",
                &FailureKind::Retryable("rate limited".to_owned()),
                Visibility::After(Duration::from_secs(4))
            )]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_run_together_past_the_deadline_is_retried_whole() {
        let deadline = Instant::now() + Duration::from_secs(30);
        let (report, _) = run_together(
            vec![
                record("a1", "a", Act::TakeSeconds(60)),
                record("b1", "b", Act::Succeed),
            ],
            Some(deadline),
        )
        .await;
        assert_eq!(report.failed_ids(), ["a1", "b1"]);
        assert!(
            report
                .failures
                .iter()
                .all(|f| matches!(f.kind, FailureKind::Retryable(_)))
        );

        let (late, batches) = run_together(
            vec![record("c1", "c", Act::Succeed)],
            Some(Instant::now() + Duration::from_secs(5)),
        )
        .await;
        assert!(batches.is_empty(), "nothing starts within the margin");
        assert_eq!(late.failures[0].kind, FailureKind::NotStarted);
        assert_eq!(
            late.failures[0].visibility,
            Visibility::After(Duration::ZERO)
        );
    }
}
