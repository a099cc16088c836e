//! The one order delivery statuses move in, for every column that holds one
//! (`message_delivery_status.status` in lower case, `template_sends.status` and
//! `campaign_recipients.status` in upper case): `pending` < `queued` < `sent` < `delivered` <
//! `read`, and `failed`, which only replaces a status not yet delivered. Nothing moves
//! backwards: a late `delivered` after `read` changes nothing.
//!
//! The database applies the same rule in SQL (`delivery_status_advances`, migration V2),
//! inside the conditional updates; a test (`shared/tests/db_typed.rs`) compares the two for
//! every pair of statuses, so they cannot drift.

use super::{DeliveryStatus, RecipientStatus, TemplateSendStatus};

/// A step of the delivery order, whatever the column's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeliveryStep {
    Pending,
    Queued,
    Sent,
    Delivered,
    Read,
    /// Outside the order: replaces only `pending`, `queued` and `sent`; nothing replaces it.
    Failed,
}

impl DeliveryStep {
    /// The forward order (without `failed`).
    pub const ORDER: [Self; 5] = [
        Self::Pending,
        Self::Queued,
        Self::Sent,
        Self::Delivered,
        Self::Read,
    ];

    /// The step a status names, in either spelling; `None` for a status outside the order
    /// (`SKIPPED`).
    pub fn of(status: &str) -> Option<Self> {
        const NAMES: [(&str, DeliveryStep); 6] = [
            ("pending", DeliveryStep::Pending),
            ("queued", DeliveryStep::Queued),
            ("sent", DeliveryStep::Sent),
            ("delivered", DeliveryStep::Delivered),
            ("read", DeliveryStep::Read),
            ("failed", DeliveryStep::Failed),
        ];
        NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(status))
            .map(|(_, step)| *step)
    }

    /// Its place in [`Self::ORDER`] (`None` for `failed`).
    pub fn position(self) -> Option<usize> {
        Self::ORDER.iter().position(|step| *step == self)
    }

    /// Whether a status at `current` may be replaced by `next`. A `current` outside the order
    /// (`SKIPPED`) is replaced by any step of the order but `failed`, as in SQL.
    pub fn advances(current: Option<Self>, next: Self) -> bool {
        match (current, next) {
            (current, Self::Failed) => {
                matches!(current, Some(Self::Pending | Self::Queued | Self::Sent))
            }
            (Some(Self::Failed), _) => false,
            (current, next) => next.position() > current.and_then(Self::position),
        }
    }

    /// Whether a move from `before` to `after` reaches `level` (so counts once towards it: a
    /// jump from `sent` to `read` reaches `delivered` too).
    pub fn reaches(before: Option<Self>, after: Option<Self>, level: Self) -> bool {
        let at = |step: Option<Self>| step.and_then(Self::position);
        at(before) < level.position() && at(after) >= level.position()
    }
}

/// A status column that follows the delivery order.
pub trait DeliveryOrdered: Copy {
    /// The status as stored.
    fn status_str(self) -> &'static str;

    /// Its step; `None` outside the order.
    fn step(self) -> Option<DeliveryStep> {
        DeliveryStep::of(self.status_str())
    }

    /// Whether `next` may replace this status (the rule `delivery_status_advances` applies
    /// in SQL).
    fn advances_to(self, next: Self) -> bool {
        next.step()
            .is_some_and(|next| DeliveryStep::advances(self.step(), next))
    }
}

impl DeliveryOrdered for DeliveryStatus {
    fn status_str(self) -> &'static str {
        self.as_str()
    }
}

impl DeliveryOrdered for TemplateSendStatus {
    fn status_str(self) -> &'static str {
        self.as_str()
    }
}

impl DeliveryOrdered for RecipientStatus {
    fn status_str(self) -> &'static str {
        self.as_str()
    }
}

/// The same status in another column's spelling (`template_sends`, `campaign_recipients`).
macro_rules! from_delivery_status {
    ($($target:ident),+) => {$(
        impl From<DeliveryStatus> for $target {
            fn from(status: DeliveryStatus) -> Self {
                match status {
                    DeliveryStatus::Pending => Self::Pending,
                    DeliveryStatus::Sent => Self::Sent,
                    DeliveryStatus::Delivered => Self::Delivered,
                    DeliveryStatus::Read => Self::Read,
                    DeliveryStatus::Failed => Self::Failed,
                }
            }
        }
    )+};
}

from_delivery_status!(TemplateSendStatus, RecipientStatus);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_only_move_forward_and_failed_only_before_delivery() {
        use DeliveryStatus::*;
        assert!(Pending.advances_to(Sent));
        assert!(Sent.advances_to(Read));
        assert!(!Read.advances_to(Delivered));
        assert!(!Delivered.advances_to(Delivered));
        assert!(Sent.advances_to(Failed));
        assert!(!Delivered.advances_to(Failed));
        assert!(!Failed.advances_to(Read));
        assert!(RecipientStatus::Queued.advances_to(RecipientStatus::Sent));
        assert!(!RecipientStatus::Skipped.advances_to(RecipientStatus::Failed));
    }

    #[test]
    fn a_jump_from_sent_to_read_reaches_delivered_and_read_once() {
        let (sent, read) = (Some(DeliveryStep::Sent), Some(DeliveryStep::Read));
        assert!(!DeliveryStep::reaches(sent, read, DeliveryStep::Sent));
        assert!(DeliveryStep::reaches(sent, read, DeliveryStep::Delivered));
        assert!(DeliveryStep::reaches(sent, read, DeliveryStep::Read));
        let failed = Some(DeliveryStep::Failed);
        assert!(!DeliveryStep::reaches(
            sent,
            failed,
            DeliveryStep::Delivered
        ));
    }

    #[test]
    fn every_spelling_names_its_step() {
        for status in DeliveryStatus::ALL {
            assert_eq!(
                status.step(),
                TemplateSendStatus::from(*status).step(),
                "{status}"
            );
            assert_eq!(status.step(), RecipientStatus::from(*status).step());
        }
        assert_eq!(RecipientStatus::Skipped.step(), None);
    }
}
