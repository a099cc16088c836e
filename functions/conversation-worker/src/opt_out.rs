/// The keywords that opt a customer out of (or back into) messages. A message that is only
/// one of them, in any case and with any surrounding spaces, counts.
#[derive(Debug, Clone)]
pub struct OptOutWords {
    stop: Vec<String>,
    start: Vec<String>,
}

impl Default for OptOutWords {
    fn default() -> Self {
        Self::new(&["STOP", "UNSUBSCRIBE"], &["START"])
    }
}

impl OptOutWords {
    /// Custom keyword lists.
    pub fn new(stop: &[&str], start: &[&str]) -> Self {
        let normalise = |words: &[&str]| words.iter().map(|w| w.trim().to_uppercase()).collect();
        Self {
            stop: normalise(stop),
            start: normalise(start),
        }
    }

    /// Reads `OPT_OUT_KEYWORDS` and `OPT_IN_KEYWORDS` (comma separated), or the defaults.
    pub fn from_env() -> Result<Self, shared::config::ConfigError> {
        let stop = shared::config::optional_var("OPT_OUT_KEYWORDS")?;
        let start = shared::config::optional_var("OPT_IN_KEYWORDS")?;
        let default = Self::default();
        let split = |raw: String| {
            raw.split(',')
                .map(|w| w.trim().to_uppercase())
                .filter(|w| !w.is_empty())
                .collect()
        };
        Ok(Self {
            stop: stop.map(split).unwrap_or(default.stop),
            start: start.map(split).unwrap_or(default.start),
        })
    }

    /// `Some(true)` for an opt-out, `Some(false)` for an opt-in, `None` for anything else.
    pub fn classify(&self, text: &str) -> Option<bool> {
        let word: String = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_uppercase();
        if self.stop.contains(&word) {
            Some(true)
        } else if self.start.contains(&word) {
            Some(false)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_message_that_is_just_the_keyword_counts() {
        let words = OptOutWords::default();
        assert_eq!(words.classify("stop"), Some(true));
        assert_eq!(words.classify("  Unsubscribe \n"), Some(true));
        assert_eq!(words.classify("START"), Some(false));
        assert_eq!(words.classify("please stop calling"), None);
        assert_eq!(words.classify("stopped"), None);
    }
}
