use std::{
    collections::{HashSet, VecDeque},
    marker::PhantomData,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};

use super::{
    Job, QueueError,
    batch::{BatchReport, FailureKind, Record, Visibility},
};

/// How long a poison message stays hidden in the in-process queue (SQS: the queue's
/// visibility timeout).
const LOCAL_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(1);

/// A message in the in-process queue.
#[derive(Debug)]
struct Stored {
    message_id: String,
    body: String,
    group_id: Option<String>,
    receives: u32,
    visible_at: Instant,
    in_flight: bool,
}

#[derive(Debug, Default)]
struct Messages {
    queued: VecDeque<Stored>,
    dead_letters: Vec<String>,
    next_id: u64,
}

/// An in-process queue that behaves like SQS FIFO for one consumer: devstack's stand-in
/// for SQS, and what tests inspect. Records go through the same [`super::Lifter`]; a failed
/// record is hidden for the visibility the lifter chose, a group with a message in flight or
/// hidden delivers nothing after it, and a message received `max_receives` times without
/// success moves to the dead letters. It can be told to fail the next publishes, to test
/// what happens when the real queue is down.
#[derive(Debug, Clone)]
pub struct LocalQueue<J> {
    messages: Arc<Mutex<Messages>>,
    published: Arc<AtomicUsize>,
    fail_next: Arc<AtomicUsize>,
    notify: Arc<Notify>,
    max_receives: u32,
    job: PhantomData<fn() -> J>,
}

impl<J: Job> Default for LocalQueue<J> {
    fn default() -> Self {
        Self::new()
    }
}

impl<J: Job> LocalQueue<J> {
    /// An empty queue; a message goes to the dead letters after 5 receives.
    pub fn new() -> Self {
        Self {
            messages: Arc::default(),
            published: Arc::default(),
            fail_next: Arc::default(),
            notify: Arc::default(),
            max_receives: 5,
            job: PhantomData,
        }
    }

    pub(super) fn publish(&self, job: &J) -> Result<(), QueueError> {
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(QueueError("local queue told to fail".to_owned()));
        }
        let body = serde_json::to_string(job).map_err(|e| QueueError(e.to_string()))?;
        let mut messages = self.lock()?;
        messages.next_id += 1;
        let message_id = format!("local-{}", messages.next_id);
        messages.queued.push_back(Stored {
            message_id,
            body,
            group_id: job.group_id(),
            receives: 0,
            visible_at: Instant::now(),
            in_flight: false,
        });
        drop(messages);
        self.published.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_one();
        Ok(())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Messages>, QueueError> {
        self.messages
            .lock()
            .map_err(|_| QueueError("local queue lock poisoned".to_owned()))
    }

    /// Makes the next `count` publishes fail.
    pub fn fail_next(&self, count: usize) {
        self.fail_next.store(count, Ordering::SeqCst);
    }

    /// How many jobs were ever published.
    pub fn published_count(&self) -> usize {
        self.published.load(Ordering::SeqCst)
    }

    /// How many jobs are still in the queue (waiting, hidden after a failure, or in flight),
    /// without taking them: what a test harness checks is zero when a test ends.
    pub fn waiting_count(&self) -> usize {
        self.lock()
            .map(|messages| messages.queued.len())
            .unwrap_or_default()
    }

    /// Takes every waiting job, oldest first.
    pub fn drain(&self) -> Vec<J> {
        self.lock()
            .map(|mut messages| {
                messages
                    .queued
                    .drain(..)
                    .filter_map(|m| serde_json::from_str(&m.body).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The bodies of messages that ran out of receives (SQS: the DLQ).
    pub fn dead_letters(&self) -> Vec<String> {
        self.lock()
            .map(|messages| messages.dead_letters.clone())
            .unwrap_or_default()
    }

    /// Receives up to `max` visible messages in FIFO order, as SQS FIFO does: nothing of a
    /// group after one of its messages that is in flight or hidden.
    pub fn receive(&self, max: usize) -> Vec<Record> {
        let Ok(mut messages) = self.lock() else {
            return Vec::new();
        };
        let now = Instant::now();
        if !J::QUEUE.fifo {
            return Self::receive_fairly(&mut messages, max, now);
        }
        let mut blocked: HashSet<String> = HashSet::new();
        let mut records = Vec::new();
        for message in messages.queued.iter_mut() {
            if records.len() == max {
                break;
            }
            let group_blocked = message
                .group_id
                .as_ref()
                .is_some_and(|g| blocked.contains(g));
            if message.in_flight || message.visible_at > now || group_blocked {
                if let Some(group) = &message.group_id {
                    blocked.insert(group.clone());
                }
                continue;
            }
            message.in_flight = true;
            message.receives += 1;
            records.push(Record {
                message_id: message.message_id.clone(),
                body: message.body.clone(),
                receipt_handle: Some(message.message_id.clone()),
                group_id: message.group_id.clone(),
                receive_count: message.receives,
            });
        }
        records
    }

    /// A standard queue with fair groups (SQS fair queues): each receive takes visible
    /// messages round-robin across groups, so a group with a small backlog is served
    /// before a big backlog of another group drains.
    fn receive_fairly(messages: &mut Messages, max: usize, now: Instant) -> Vec<Record> {
        let mut by_group: Vec<(Option<String>, Vec<usize>)> = Vec::new();
        for (index, message) in messages.queued.iter().enumerate() {
            if message.in_flight || message.visible_at > now {
                continue;
            }
            match by_group.iter_mut().find(|(g, _)| *g == message.group_id) {
                Some((_, picked)) if picked.len() < max => picked.push(index),
                Some(_) => {}
                None => by_group.push((message.group_id.clone(), vec![index])),
            }
        }
        let mut chosen = Vec::new();
        let mut round = 0;
        while chosen.len() < max && by_group.iter().any(|(_, p)| p.len() > round) {
            for (_, picked) in &by_group {
                if let Some(index) = picked.get(round) {
                    if chosen.len() < max {
                        chosen.push(*index);
                    }
                }
            }
            round += 1;
        }
        let mut records = Vec::with_capacity(chosen.len());
        for index in chosen {
            if let Some(message) = messages.queued.get_mut(index) {
                message.in_flight = true;
                message.receives += 1;
                records.push(Record {
                    message_id: message.message_id.clone(),
                    body: message.body.clone(),
                    receipt_handle: Some(message.message_id.clone()),
                    group_id: message.group_id.clone(),
                    receive_count: message.receives,
                });
            }
        }
        records
    }

    /// Waits until at least one message can be received, then receives up to `max`.
    pub async fn next_batch(&self, max: usize) -> Vec<Record> {
        loop {
            let notified = self.notify.notified();
            let records = self.receive(max);
            if !records.is_empty() {
                return records;
            }
            let now = Instant::now();
            let next_visible = self.lock().ok().and_then(|messages| {
                messages
                    .queued
                    .iter()
                    .filter(|m| !m.in_flight && m.visible_at > now)
                    .map(|m| m.visible_at)
                    .min()
            });
            match next_visible {
                Some(at) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Settles a received batch: deletes what succeeded, hides each failure for the
    /// visibility the lifter chose, and moves a message out of receives to the dead letters.
    pub fn settle(&self, received: &[String], report: &BatchReport) {
        let Ok(mut messages) = self.lock() else {
            return;
        };
        let now = Instant::now();
        let max_receives = self.max_receives;
        let mut dead = Vec::new();
        messages.queued.retain_mut(|message| {
            if !message.in_flight || !received.contains(&message.message_id) {
                return true;
            }
            let Some(failure) = report
                .failures
                .iter()
                .find(|f| f.message_id == message.message_id)
            else {
                return false; // succeeded: deleted
            };
            // Waiting its turn is no failed attempt (SQS: a new message, see
            // `requeue_throttled`).
            if matches!(failure.kind, FailureKind::Throttled(_)) {
                message.receives = message.receives.saturating_sub(1);
            }
            if message.receives >= max_receives {
                tracing::error!(
                    message_id = %message.message_id,
                    receives = message.receives,
                    "job out of receives: moved to the dead letters"
                );
                dead.push(message.body.clone());
                return false;
            }
            message.in_flight = false;
            message.visible_at = now
                + match failure.visibility {
                    Visibility::After(delay) => delay,
                    Visibility::QueueDefault => LOCAL_VISIBILITY_TIMEOUT,
                };
            true
        });
        messages.dead_letters.extend(dead);
        drop(messages);
        self.notify.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{JobError, Lifter, LifterConfig, ReplyJob};

    fn lifter() -> Lifter {
        Lifter::new(
            LifterConfig {
                deadline_margin: Duration::ZERO,
                backoff_base: Duration::from_secs(10),
                backoff_cap: Duration::from_secs(60),
            },
            None,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_job_comes_back_after_its_backoff_and_its_group_waits_for_it() {
        let queue = LocalQueue::<ReplyJob>::new();
        let first = ReplyJob::new("m1", "pn_1", "a");
        let second = ReplyJob::new("m2", "pn_1", "a");
        let other = ReplyJob::new("m3", "pn_1", "b");
        for job in [&first, &second, &other] {
            queue.publish(job).expect("publish");
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let attempts = Arc::new(AtomicUsize::new(0));
        let handler = |job: ReplyJob| {
            let seen = seen.clone();
            let attempts = attempts.clone();
            async move {
                let id = job.platform_message_id().to_owned();
                if id == "m1" && attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(JobError::retryable("first attempt fails"));
                }
                seen.lock().expect("lock").push(id);
                Ok(())
            }
        };

        let ran = lifter().poll_local(&queue, handler).await;
        assert_eq!(ran, 3);
        assert_eq!(*seen.lock().expect("lock"), ["m3"], "m2 waits behind m1");
        let before = Instant::now();
        lifter().poll_local(&queue, handler).await;

        assert!(
            Instant::now() - before >= Duration::from_secs(10),
            "backoff"
        );
        assert_eq!(*seen.lock().expect("lock"), ["m3", "m1", "m2"]);
        assert!(queue.receive(10).is_empty(), "all deleted");
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_that_always_fails_ends_in_the_dead_letters() {
        let queue = LocalQueue::<ReplyJob>::new();
        queue
            .publish(&ReplyJob::new("m1", "pn_1", "a"))
            .expect("publish");

        for _ in 0..5 {
            lifter()
                .poll_local(&queue, |_job: ReplyJob| async {
                    Err(JobError::retryable("down"))
                })
                .await;
        }

        assert_eq!(queue.dead_letters().len(), 1);
        assert!(queue.receive(10).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_waiting_its_turn_is_never_dead_lettered_and_comes_back_on_time() {
        use crate::jobs::SendJob;
        let queue = LocalQueue::<SendJob>::new();
        queue
            .publish(&SendJob::new("usr_a", "cmp_1", "rcp_1"))
            .expect("publish");
        let turns = Arc::new(AtomicUsize::new(0));
        let handler = |jobs: Vec<SendJob>| {
            let turns = turns.clone();
            async move {
                let back = Instant::now() + Duration::from_secs(3);
                jobs.iter()
                    .map(|_| match turns.fetch_add(1, Ordering::SeqCst) {
                        0..10 => Err(JobError::throttled("waiting for a send slot", back)),
                        _ => Ok(()),
                    })
                    .collect::<Vec<_>>()
            }
        };

        let started = Instant::now();
        for _ in 0..11 {
            assert_eq!(lifter().poll_local_together(&queue, handler).await, 1);
        }

        assert_eq!(turns.load(Ordering::SeqCst), 11);
        assert!(
            queue.dead_letters().is_empty(),
            "ten turns, five receives allowed"
        );
        assert_eq!(Instant::now() - started, Duration::from_secs(30));
        assert!(queue.receive(10).is_empty(), "done and deleted");
    }

    #[test]
    fn a_standard_queue_serves_a_small_tenant_before_a_big_backlog_drains() {
        use crate::jobs::SendJob;
        let queue: LocalQueue<SendJob> = LocalQueue::new();
        for i in 0..1_000 {
            queue
                .publish(&SendJob::new("big", "cmp_big", &format!("rcp_{i}")))
                .expect("publish");
        }
        for i in 0..3 {
            queue
                .publish(&SendJob::new("small", "cmp_small", &format!("rcp_s{i}")))
                .expect("publish");
        }
        let batch = queue.receive(10);
        let small = batch
            .iter()
            .filter(|r| r.body.contains("\"small\""))
            .count();
        assert_eq!(batch.len(), 10);
        assert_eq!(
            small, 3,
            "the small tenant's three jobs come in the first batch"
        );
    }
}
