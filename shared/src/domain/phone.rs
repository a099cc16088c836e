use std::fmt;

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
    fn digits_drop_the_plus_for_the_cloud_api() {
        let phone = PhoneE164::parse("+14155552671").expect("valid");
        assert_eq!(phone.digits(), "14155552671");
    }
}
