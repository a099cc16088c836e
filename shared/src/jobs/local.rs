use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use tokio::sync::Notify;

use super::{QueueError, ReplyJob};

/// An in-process FIFO queue: devstack's stand-in for SQS, and what tests inspect. It can be
/// told to fail the next publishes, to test what happens when the real queue is down.
#[derive(Debug, Clone, Default)]
pub struct LocalQueue {
    jobs: Arc<Mutex<VecDeque<ReplyJob>>>,
    published: Arc<AtomicUsize>,
    fail_next: Arc<AtomicUsize>,
    notify: Arc<Notify>,
}

impl LocalQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    pub(super) fn publish(&self, job: &ReplyJob) -> Result<(), QueueError> {
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(QueueError("local queue told to fail".to_owned()));
        }
        self.jobs
            .lock()
            .map_err(|_| QueueError("local queue lock poisoned".to_owned()))?
            .push_back(job.clone());
        self.published.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_one();
        Ok(())
    }

    /// Makes the next `count` publishes fail.
    pub fn fail_next(&self, count: usize) {
        self.fail_next.store(count, Ordering::SeqCst);
    }

    /// How many jobs were ever published.
    pub fn published_count(&self) -> usize {
        self.published.load(Ordering::SeqCst)
    }

    /// Takes every waiting job, oldest first.
    pub fn drain(&self) -> Vec<ReplyJob> {
        self.jobs
            .lock()
            .map(|mut jobs| jobs.drain(..).collect())
            .unwrap_or_default()
    }

    /// Waits for the next job.
    pub async fn next(&self) -> ReplyJob {
        loop {
            let notified = self.notify.notified();
            if let Some(job) = self.jobs.lock().ok().and_then(|mut jobs| jobs.pop_front()) {
                return job;
            }
            notified.await;
        }
    }
}
