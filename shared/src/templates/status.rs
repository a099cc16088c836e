//! Meta's template events (`message_template_status_update.event`, and the `status` of a
//! template read back) mapped onto the six stored statuses. Meta's own word is always kept
//! too (`templates.meta_status`), so nothing is lost by the mapping.
//!
//! | Meta's event        | stored `status` | why |
//! |---------------------|-----------------|-----|
//! | `APPROVED`          | APPROVED        | sendable |
//! | `REJECTED`          | REJECTED        | editable and resubmittable |
//! | `PENDING`           | PENDING         | in review |
//! | `PAUSED`            | PAUSED          | low quality; sends fail with 132015 |
//! | `DISABLED`          | DISABLED        | sends fail with 132016 |
//! | `REINSTATED`        | APPROVED        | sendable again after a pause or a flag |
//! | `UNARCHIVED`        | APPROVED        | sendable again |
//! | `PENDING_DELETION`  | DISABLED        | no longer sendable; deleted in 30 days |
//! | `DELETED`           | DISABLED        | gone at Meta |
//! | `ARCHIVED`          | DISABLED        | not sendable while archived |
//! | `FLAGGED`           | unchanged       | a warning: still sendable until Meta pauses it |
//! | `IN_APPEAL`         | unchanged       | the rejection stands until the appeal is decided |
//! | `LIMIT_EXCEEDED`    | unchanged       | about the account's template count, not this template's content |
//! | `LOCKED`, `UNLOCKED`| unchanged       | about editing at Meta, not sending |
//! | anything else       | unchanged       | kept in `meta_status`, never an error |

use crate::domain::TemplateStatus;

/// The stored status a Meta event moves a template to; `None` leaves it unchanged.
pub fn status_for_event(event: &str) -> Option<TemplateStatus> {
    match event {
        "APPROVED" | "REINSTATED" | "UNARCHIVED" => Some(TemplateStatus::Approved),
        "REJECTED" => Some(TemplateStatus::Rejected),
        "PENDING" => Some(TemplateStatus::Pending),
        "PAUSED" => Some(TemplateStatus::Paused),
        "DISABLED" | "PENDING_DELETION" | "DELETED" | "ARCHIVED" => Some(TemplateStatus::Disabled),
        _ => None,
    }
}

/// Meta's `reason` when it says something: `null`, `""` and `"NONE"` say nothing.
pub fn meaningful_reason(reason: Option<&str>) -> Option<&str> {
    reason.filter(|r| !r.is_empty() && !r.eq_ignore_ascii_case("NONE"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_event_has_a_deliberate_mapping() {
        let cases = [
            ("APPROVED", Some(TemplateStatus::Approved)),
            ("REJECTED", Some(TemplateStatus::Rejected)),
            ("PENDING", Some(TemplateStatus::Pending)),
            ("PAUSED", Some(TemplateStatus::Paused)),
            ("DISABLED", Some(TemplateStatus::Disabled)),
            ("FLAGGED", None),
            ("IN_APPEAL", None),
            ("REINSTATED", Some(TemplateStatus::Approved)),
            ("PENDING_DELETION", Some(TemplateStatus::Disabled)),
            ("DELETED", Some(TemplateStatus::Disabled)),
            ("ARCHIVED", Some(TemplateStatus::Disabled)),
            ("UNARCHIVED", Some(TemplateStatus::Approved)),
            ("LIMIT_EXCEEDED", None),
            ("LOCKED", None),
            ("UNLOCKED", None),
            ("SOMETHING_NEW", None),
        ];
        for (event, expected) in cases {
            assert_eq!(status_for_event(event), expected, "{event}");
        }
    }

    #[test]
    fn none_and_null_reasons_say_nothing() {
        assert_eq!(meaningful_reason(None), None);
        assert_eq!(meaningful_reason(Some("NONE")), None);
        assert_eq!(meaningful_reason(Some("")), None);
        assert_eq!(
            meaningful_reason(Some("INVALID_FORMAT")),
            Some("INVALID_FORMAT")
        );
    }
}
