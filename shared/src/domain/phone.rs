use std::fmt;

use super::PhoneRegion;

/// A phone number in E.164 form (`+14155551234`), validated against libphonenumber's
/// metadata (through the `phonenumber` crate) rather than a hand-written pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneE164(String);

/// Why a phone number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneParseError {
    #[error("is not a phone number")]
    Unparseable,
    #[error("is not a valid number for its country")]
    Invalid,
    #[error("must start with + and the country code (no default phone region is set)")]
    NoCountryCode,
}

impl PhoneE164 {
    /// Parses a number written in international form. A leading `+` is optional, because
    /// WhatsApp sends `wa_id`s without one; spaces, dashes and brackets are tolerated.
    pub fn parse(raw: &str) -> Result<Self, PhoneParseError> {
        let trimmed = raw.trim();
        let international = if trimmed.starts_with('+') {
            trimmed.to_owned()
        } else {
            format!("+{trimmed}")
        };
        let number =
            phonenumber::parse(None, &international).map_err(|_| PhoneParseError::Unparseable)?;
        if !phonenumber::is_valid(&number) {
            return Err(PhoneParseError::Invalid);
        }
        Ok(Self(
            number.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    /// Parses a number a person typed or a file holds: international (`+33 6 12 34 56 78`,
    /// or with the international prefix `00`), or national (`06 12 34 56 78`, `(415)
    /// 555-2671`) in the tenant's default `region`. Spaces, dashes, dots and brackets are
    /// tolerated. Without a region, a national number is refused: guessing its country
    /// would store a wrong number.
    pub fn parse_input(raw: &str, region: Option<PhoneRegion>) -> Result<Self, PhoneParseError> {
        let trimmed = raw.trim();
        if !trimmed.chars().any(|c| c.is_ascii_digit()) || super::contains_nul(trimmed) {
            return Err(PhoneParseError::Unparseable);
        }
        let international = if let Some(rest) = trimmed.strip_prefix("00") {
            Some(format!("+{rest}"))
        } else if trimmed.starts_with('+') {
            Some(trimmed.to_owned())
        } else {
            None
        };
        let number = match (international, region) {
            (Some(text), _) => phonenumber::parse(None, &text),
            (None, Some(region)) => phonenumber::parse(Some(region.id()), trimmed),
            (None, None) => return Err(PhoneParseError::NoCountryCode),
        }
        .map_err(|_| PhoneParseError::Unparseable)?;
        if !phonenumber::is_valid(&number) {
            return Err(PhoneParseError::Invalid);
        }
        Ok(Self(
            number.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    /// Wraps a number read back from the database, which only holds E.164 numbers.
    pub fn from_trusted(raw: String) -> Self {
        Self(raw)
    }

    /// The canonical `+<country><number>` form, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without the `+`, as the WhatsApp Cloud API takes them in `to`.
    pub fn digits(&self) -> &str {
        self.0.trim_start_matches('+')
    }
}

impl fmt::Display for PhoneE164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_international_forms_and_normalises_them() {
        let cases = [
            ("+14155552671", "+14155552671"),
            ("14155552671", "+14155552671"),
            ("+44 20 7946 0958", "+442079460958"),
            (" +91 98765-43210 ", "+919876543210"),
        ];
        for (input, expected) in cases {
            let phone = PhoneE164::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(phone.as_str(), expected, "input {input:?}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_valid_number() {
        for input in ["", "hello", "+1", "+999123", "+1415555"] {
            assert!(
                PhoneE164::parse(input).is_err(),
                "{input:?} must be refused"
            );
        }
    }

    #[test]
    fn typed_numbers_are_normalised_with_the_tenants_region() {
        let fr = PhoneRegion::parse("FR").ok();
        let us = PhoneRegion::parse("US").ok();
        let gb = PhoneRegion::parse("GB").ok();
        let cases: &[(&str, Option<PhoneRegion>, Result<&str, PhoneParseError>)] = &[
            // International forms, whatever the region.
            ("+33 6 12 34 56 78", None, Ok("+33612345678")),
            ("+33612345678", us, Ok("+33612345678")),
            ("0033 6 12 34 56 78", None, Ok("+33612345678")),
            ("0033612345678", us, Ok("+33612345678")),
            ("+1 (415) 555-2671", None, Ok("+14155552671")),
            ("+44 20-7946-0958", fr, Ok("+442079460958")),
            // National forms in the tenant's region.
            ("06 12 34 56 78", fr, Ok("+33612345678")),
            ("06.12.34.56.78", fr, Ok("+33612345678")),
            ("(415) 555-2671", us, Ok("+14155552671")),
            ("415-555-2671", us, Ok("+14155552671")),
            ("020 7946 0958", gb, Ok("+442079460958")),
            ("011 44 20 7946 0958", us, Ok("+442079460958")),
            // A national form without a region is refused, not guessed.
            ("06 12 34 56 78", None, Err(PhoneParseError::NoCountryCode)),
            ("4155552671", None, Err(PhoneParseError::NoCountryCode)),
            ("call me", None, Err(PhoneParseError::Unparseable)),
            // Not numbers, or not valid ones.
            ("", fr, Err(PhoneParseError::Unparseable)),
            ("call me", fr, Err(PhoneParseError::Unparseable)),
            ("+33 6 12", None, Err(PhoneParseError::Invalid)),
            ("+999 123 456 789", None, Err(PhoneParseError::Unparseable)),
            ("555-2671", us, Err(PhoneParseError::Invalid)),
            ("+1415555\0", None, Err(PhoneParseError::Unparseable)),
        ];
        for (input, region, expected) in cases {
            let got = PhoneE164::parse_input(input, *region);
            assert_eq!(
                got.as_ref().map(PhoneE164::as_str).map_err(Clone::clone),
                expected.clone(),
                "input {input:?} in {:?}",
                region.map(|r| r.as_str().to_owned())
            );
        }
    }

    #[test]
    fn digits_drop_the_plus_for_the_cloud_api() {
        let phone = PhoneE164::parse("+14155552671").expect("valid");
        assert_eq!(phone.digits(), "14155552671");
    }
}
