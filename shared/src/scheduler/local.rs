use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
};

use chrono::{DateTime, Utc};

use super::{OneTimeSchedule, SchedulerError, StoredSchedule};

/// The schedule port in memory: devstack's stand-in for EventBridge Scheduler, and what
/// tests inspect. It fires nothing by itself: devstack calls [`LocalScheduler::due`] on a
/// timer and publishes each returned schedule's `input` to its campaign-start queue. A
/// schedule returned by `due` is removed, as EventBridge's `ActionAfterCompletion: DELETE`
/// removes a one-time schedule once it has invoked its target.
#[derive(Debug, Clone, Default)]
pub struct LocalScheduler {
    schedules: Arc<Mutex<BTreeMap<String, OneTimeSchedule>>>,
    fail_next: Arc<AtomicUsize>,
}

impl LocalScheduler {
    /// An empty scheduler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates or replaces the schedule of that name. Refuses what EventBridge would refuse
    /// or never fire (see [`OneTimeSchedule::validate`]).
    pub fn upsert(&self, schedule: &OneTimeSchedule) -> Result<(), SchedulerError> {
        self.take_failure()?;
        schedule.validate()?;
        self.lock().insert(schedule.name.clone(), schedule.clone());
        Ok(())
    }

    /// Deletes the schedule of that name; a missing one is not an error.
    pub fn delete(&self, name: &str) -> Result<(), SchedulerError> {
        self.take_failure()?;
        self.lock().remove(name);
        Ok(())
    }

    /// The schedule of that name, if there is one.
    pub fn get(&self, name: &str) -> Option<OneTimeSchedule> {
        self.lock().get(name).cloned()
    }

    /// Every schedule, by name.
    pub fn schedules(&self) -> Vec<OneTimeSchedule> {
        self.lock().values().cloned().collect()
    }

    /// Removes and returns the schedules whose time, read in their own time zone, is at or
    /// before `now`, earliest first.
    pub fn due(&self, now: DateTime<Utc>) -> Vec<OneTimeSchedule> {
        let mut schedules = self.lock();
        let mut due = Vec::new();
        schedules.retain(|_, schedule| match schedule.fires_at() {
            Ok(instant) if instant <= now => {
                due.push((instant, schedule.clone()));
                false
            }
            Ok(_) => true,
            // Unreachable through `upsert`, which validates; EventBridge skips a time that
            // does not exist, so a schedule that cannot fire is dropped, not kept forever.
            Err(error) => {
                tracing::warn!(schedule = %schedule.name, %error, "dropping a schedule that cannot fire");
                false
            }
        });
        drop(schedules);
        due.sort_by(|(a, a_schedule), (b, b_schedule)| {
            a.cmp(b).then_with(|| a_schedule.name.cmp(&b_schedule.name))
        });
        due.into_iter().map(|(_, schedule)| schedule).collect()
    }

    /// Makes the next `count` writes (`upsert`, `delete`) fail, to test what happens when
    /// EventBridge Scheduler is down.
    pub fn fail_next(&self, count: usize) {
        self.fail_next.store(count, Ordering::SeqCst);
    }

    fn take_failure(&self) -> Result<(), SchedulerError> {
        match self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        {
            Ok(_) => Err(SchedulerError::LocalFailure),
            Err(_) => Ok(()),
        }
    }

    /// The map has no invariant a panicking writer could break half-way (one insert or
    /// remove), so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, OneTimeSchedule>> {
        self.schedules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl StoredSchedule {
    /// How the local scheduler reports a schedule: what it keeps, plus the settings it
    /// behaves by (`DELETE` after firing, no flexible window); no group, target or role.
    pub(super) fn local(schedule: &OneTimeSchedule) -> Self {
        Self {
            name: schedule.name.clone(),
            group_name: None,
            expression: schedule.expression(),
            time_zone: schedule.time_zone.clone(),
            input: Some(schedule.input.clone()),
            message_group_id: schedule.message_group_id.clone(),
            target_arn: None,
            role_arn: None,
            action_after_completion: Some("DELETE".to_owned()),
            flexible_time_window: Some("OFF".to_owned()),
            state: Some("ENABLED".to_owned()),
            maximum_retry_attempts: None,
            maximum_event_age_seconds: None,
            dead_letter_arn: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, NaiveDateTime};

    use super::*;
    use crate::scheduler::CampaignScheduler;

    fn wall(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|date| date.and_hms_opt(h, min, 0))
            .expect("a valid date")
    }

    fn schedule(name: &str, at: NaiveDateTime, zone: &str) -> OneTimeSchedule {
        OneTimeSchedule::new(name, at, zone, format!(r#"{{"campaign":"{name}"}}"#)).expect("valid")
    }

    fn names(schedules: &[OneTimeSchedule]) -> Vec<&str> {
        schedules.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn nine_in_madrid_in_winter_is_due_at_eight_utc_and_only_once() {
        let scheduler = LocalScheduler::new();
        scheduler
            .upsert(&schedule(
                "madrid",
                wall(2025, 1, 15, 9, 0),
                "Europe/Madrid",
            ))
            .expect("upsert");

        let just_before = wall(2025, 1, 15, 7, 59).and_utc() + chrono::Duration::seconds(59);
        assert!(scheduler.due(just_before).is_empty());
        assert!(scheduler.get("madrid").is_some(), "not due: kept");

        let due = scheduler.due(wall(2025, 1, 15, 8, 0).and_utc());
        assert_eq!(names(&due), ["madrid"]);
        assert_eq!(due[0].input, r#"{"campaign":"madrid"}"#);
        assert!(scheduler.get("madrid").is_none(), "removed once returned");
        assert!(scheduler.due(wall(2025, 1, 16, 0, 0).and_utc()).is_empty());
    }

    #[test]
    fn due_compares_instants_across_time_zones() {
        let scheduler = LocalScheduler::new();
        // 09:00 in each zone on 15 July 2025: Tokyo 00:00Z, Madrid 07:00Z (summer time),
        // UTC 09:00Z, New York 13:00Z.
        for (name, zone) in [
            ("new-york", "America/New_York"),
            ("utc", "UTC"),
            ("madrid", "Europe/Madrid"),
            ("tokyo", "Asia/Tokyo"),
        ] {
            scheduler
                .upsert(&schedule(name, wall(2025, 7, 15, 9, 0), zone))
                .expect("upsert");
        }

        assert_eq!(
            names(&scheduler.due(wall(2025, 7, 15, 8, 0).and_utc())),
            ["tokyo", "madrid"],
            "earliest first"
        );
        assert_eq!(
            names(&scheduler.due(wall(2025, 7, 15, 12, 59).and_utc())),
            ["utc"]
        );
        assert_eq!(
            names(&scheduler.due(wall(2025, 7, 15, 13, 0).and_utc())),
            ["new-york"]
        );
        assert!(scheduler.schedules().is_empty());
    }

    #[test]
    fn an_upsert_replaces_and_a_delete_of_nothing_is_fine() {
        let scheduler = LocalScheduler::new();
        scheduler
            .upsert(&schedule("c", wall(2025, 1, 15, 9, 0), "Europe/Madrid"))
            .expect("create");
        scheduler
            .upsert(&schedule("c", wall(2025, 1, 20, 9, 0), "Europe/Madrid"))
            .expect("reschedule");

        assert_eq!(scheduler.schedules().len(), 1);
        assert!(
            scheduler.due(wall(2025, 1, 15, 8, 0).and_utc()).is_empty(),
            "the old time no longer fires"
        );
        assert_eq!(
            scheduler.get("c").map(|s| s.at),
            Some(wall(2025, 1, 20, 9, 0))
        );

        scheduler.delete("c").expect("delete");
        scheduler
            .delete("c")
            .expect("deleting a missing schedule is fine");
        assert!(scheduler.get("c").is_none());
    }

    #[test]
    fn an_invalid_schedule_is_refused_and_nothing_is_stored() {
        let scheduler = LocalScheduler::new();
        let in_the_gap = OneTimeSchedule {
            name: "gap".to_owned(),
            at: wall(2025, 3, 30, 2, 30),
            time_zone: "Europe/Madrid".to_owned(),
            input: "{}".to_owned(),
            message_group_id: None,
        };
        assert!(matches!(
            scheduler.upsert(&in_the_gap),
            Err(SchedulerError::NonexistentLocalTime { .. })
        ));
        assert!(scheduler.schedules().is_empty());
    }

    #[test]
    fn told_to_fail_it_fails_the_next_writes_only() {
        let scheduler = LocalScheduler::new();
        scheduler.fail_next(2);
        let s = schedule("c", wall(2025, 1, 15, 9, 0), "UTC");
        assert!(matches!(
            scheduler.upsert(&s),
            Err(SchedulerError::LocalFailure)
        ));
        assert!(scheduler.delete("c").is_err());
        scheduler.upsert(&s).expect("third write succeeds");
        assert!(scheduler.get("c").is_some());
    }

    #[tokio::test]
    async fn the_port_reports_the_local_settings() {
        let local = LocalScheduler::new();
        let port = CampaignScheduler::Local(local.clone());
        let s = schedule("c", wall(2025, 1, 15, 9, 0), "Europe/Madrid")
            .with_message_group("cmp_1")
            .expect("group");
        port.upsert(&s).await.expect("upsert");

        let stored = port.get("c").await.expect("get").expect("stored");
        assert_eq!(stored.expression, "at(2025-01-15T09:00:00)");
        assert_eq!(stored.time_zone, "Europe/Madrid");
        assert_eq!(stored.input.as_deref(), Some(s.input.as_str()));
        assert_eq!(stored.message_group_id.as_deref(), Some("cmp_1"));
        assert_eq!(stored.action_after_completion.as_deref(), Some("DELETE"));

        port.delete("c").await.expect("delete");
        assert!(port.get("c").await.expect("get").is_none());
        assert!(local.schedules().is_empty());
    }
}
