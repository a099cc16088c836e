//! Lead scoring: the server, never the model, turns the model's levels into scores, a total
//! and a status. The model only judges (Low / Medium / High, Yes / No / Maybe); the
//! arithmetic and the thresholds are ours, so a model that adds wrongly, or invents a
//! score, changes nothing.
//!
//! | answer | score |
//! | --- | --- |
//! | intent, urgency, fit, engagement: `Low` / `Medium` / `High` | 1 / 2 / 3 |
//! | budget constraint: `Yes` (the budget is a constraint) / `Maybe` / `No` (budget is not a problem) | 1 / 2 / 3 |
//!
//! The total is their sum, 5 to 15. The status is `Hot` from [`LeadThresholds::hot`]
//! (default 12), `Warm` from [`LeadThresholds::warm`] (default 8), `Cold` below.

use super::{BudgetConstraint, LeadStatus, Level};

/// The score of a level: Low 1, Medium 2, High 3.
pub const fn level_score(level: Level) -> i32 {
    match level {
        Level::Low => 1,
        Level::Medium => 2,
        Level::High => 3,
    }
}

/// The score of a budget answer: a budget that constrains the purchase (`Yes`) scores
/// lowest, no constraint (`No`) highest.
pub const fn budget_score(budget: BudgetConstraint) -> i32 {
    match budget {
        BudgetConstraint::Yes => 1,
        BudgetConstraint::Maybe => 2,
        BudgetConstraint::No => 3,
    }
}

/// The smallest totals of `Hot` and `Warm` leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeadThresholds {
    hot: i32,
    warm: i32,
}

/// Thresholds outside 5–15, or `warm` above `hot`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lead thresholds need 5 <= warm <= hot <= 15 (got warm {warm}, hot {hot})")]
pub struct InvalidThresholds {
    /// The `Warm` threshold given.
    pub warm: i32,
    /// The `Hot` threshold given.
    pub hot: i32,
}

impl LeadThresholds {
    /// The defaults: `Hot` from 12, `Warm` from 8.
    pub const DEFAULT: Self = Self { hot: 12, warm: 8 };

    /// Thresholds with `5 <= warm <= hot <= 15`.
    pub fn new(hot: i32, warm: i32) -> Result<Self, InvalidThresholds> {
        if (5..=15).contains(&warm) && (5..=15).contains(&hot) && warm <= hot {
            Ok(Self { hot, warm })
        } else {
            Err(InvalidThresholds { warm, hot })
        }
    }

    /// Reads `LEAD_HOT_MIN_SCORE` (default 12) and `LEAD_WARM_MIN_SCORE` (default 8).
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        let hot = crate::config::parsed_var("LEAD_HOT_MIN_SCORE", Self::DEFAULT.hot)?;
        let warm = crate::config::parsed_var("LEAD_WARM_MIN_SCORE", Self::DEFAULT.warm)?;
        Self::new(hot, warm).map_err(|e| crate::config::ConfigError::Invalid {
            name: "LEAD_HOT_MIN_SCORE",
            reason: e.to_string(),
        })
    }

    /// The smallest `Hot` total.
    pub const fn hot(self) -> i32 {
        self.hot
    }

    /// The smallest `Warm` total.
    pub const fn warm(self) -> i32 {
        self.warm
    }

    /// The status of a total.
    pub const fn status(self, total: i32) -> LeadStatus {
        if total >= self.hot {
            LeadStatus::Hot
        } else if total >= self.warm {
            LeadStatus::Warm
        } else {
            LeadStatus::Cold
        }
    }
}

impl Default for LeadThresholds {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The model's judgement of a lead, as levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeadLevels {
    pub intent: Level,
    pub urgency: Level,
    pub budget: BudgetConstraint,
    pub fit: Level,
    pub engagement: Level,
}

/// The scores the server computed from [`LeadLevels`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeadScore {
    pub intent: i32,
    pub urgency: i32,
    pub budget: i32,
    pub fit: i32,
    pub engagement: i32,
    /// 5–15.
    pub total: i32,
    pub status: LeadStatus,
}

impl LeadLevels {
    /// Scores the levels against `thresholds`.
    pub const fn score(self, thresholds: LeadThresholds) -> LeadScore {
        let intent = level_score(self.intent);
        let urgency = level_score(self.urgency);
        let budget = budget_score(self.budget);
        let fit = level_score(self.fit);
        let engagement = level_score(self.engagement);
        let total = intent + urgency + budget + fit + engagement;
        LeadScore {
            intent,
            urgency,
            budget,
            fit,
            engagement,
            total,
            status: thresholds.status(total),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels(level: Level, budget: BudgetConstraint) -> LeadLevels {
        LeadLevels {
            intent: level,
            urgency: level,
            budget,
            fit: level,
            engagement: level,
        }
    }

    #[test]
    fn totals_run_from_5_to_15_and_the_default_thresholds_split_them() {
        let cases = [
            (
                levels(Level::Low, BudgetConstraint::Yes),
                5,
                LeadStatus::Cold,
            ),
            (
                levels(Level::Medium, BudgetConstraint::Yes),
                9,
                LeadStatus::Warm,
            ),
            (
                levels(Level::Medium, BudgetConstraint::Maybe),
                10,
                LeadStatus::Warm,
            ),
            (
                levels(Level::High, BudgetConstraint::Yes),
                13,
                LeadStatus::Hot,
            ),
            (
                levels(Level::High, BudgetConstraint::No),
                15,
                LeadStatus::Hot,
            ),
        ];
        for (levels, total, status) in cases {
            let score = levels.score(LeadThresholds::DEFAULT);
            assert_eq!(score.total, total, "{levels:?}");
            assert_eq!(score.status, status, "{levels:?}");
        }
    }

    #[test]
    fn thresholds_are_inclusive_and_configurable() {
        let t = LeadThresholds::DEFAULT;
        assert_eq!(t.status(12), LeadStatus::Hot);
        assert_eq!(t.status(11), LeadStatus::Warm);
        assert_eq!(t.status(8), LeadStatus::Warm);
        assert_eq!(t.status(7), LeadStatus::Cold);
        let strict = LeadThresholds::new(15, 14).expect("valid");
        assert_eq!(strict.status(14), LeadStatus::Warm);
        assert!(LeadThresholds::new(8, 12).is_err());
        assert!(LeadThresholds::new(16, 8).is_err());
        assert!(LeadThresholds::new(12, 4).is_err());
    }
}
