//! What a contact is made of: who the customer is ([`CustomerIdentity`]), the validated
//! fields a person or an extraction fills ([`ContactName`], [`Email`]), tags ([`Tag`]) and
//! the tenant's default phone region ([`PhoneRegion`]).

use std::fmt;

use super::{PhoneE164, Platform, contains_nul};

/// Who a contact is: a phone number, or for customers without one (Instagram, webchat, a
/// WhatsApp user writing from a username: Meta's business-scoped user id), the channel's
/// platform and the customer key as `conversations.customer_phone` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CustomerIdentity {
    /// An E.164 phone: `contacts.phone`, unique per tenant.
    Phone(PhoneE164),
    /// A channel identity: `contacts.platform` + `contacts.customer_id`, unique per tenant.
    Channel {
        /// The channel's platform.
        platform: Platform,
        /// The customer key, as stored in `conversations.customer_phone`.
        customer_id: String,
    },
}

impl CustomerIdentity {
    /// The identity of the customer of a conversation on a channel of `platform`, from the
    /// conversation's `customer_phone`. A WhatsApp key that is a valid E.164 number is a
    /// phone; any other key (a business-scoped user id, an IGSID, a visitor id) is a channel
    /// identity.
    pub fn of_conversation(platform: Platform, customer_phone: &str) -> Self {
        if platform == Platform::WhatsApp && customer_phone.starts_with('+') {
            if let Ok(phone) = PhoneE164::parse(customer_phone) {
                return Self::Phone(phone);
            }
        }
        Self::Channel {
            platform,
            customer_id: customer_phone.to_owned(),
        }
    }

    /// The phone, when the identity is one.
    pub fn phone(&self) -> Option<&PhoneE164> {
        match self {
            Self::Phone(phone) => Some(phone),
            Self::Channel { .. } => None,
        }
    }
}

/// Defines a trimmed, non-empty, length-bounded text type without control characters.
macro_rules! contact_text {
    ($(#[$meta:meta])* $name:ident, max = $max:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// The most characters accepted (the column's width).
            pub const MAX_CHARS: usize = $max;

            /// Trims and checks; the message completes "<field> ...".
            pub fn parse(raw: &str) -> Result<Self, String> {
                let trimmed = raw.trim();
                if trimmed.is_empty() {
                    return Err("must not be empty".to_owned());
                }
                if trimmed.chars().count() > $max {
                    return Err(format!("must be at most {} characters", $max));
                }
                if trimmed.chars().any(char::is_control) {
                    return Err("must not contain control characters".to_owned());
                }
                Ok(Self(trimmed.to_owned()))
            }

            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

contact_text!(
    /// `contacts.name`.
    ContactName, max = 255
);
contact_text!(
    /// `contacts.company`.
    ContactCompany, max = 255
);

/// An email address, `contacts.email`: trimmed, at most 254 characters (RFC 5321's path
/// limit), one `@` with a non-empty local part and a domain of dot-separated labels of
/// letters, digits and `-`. Deliberately not the full RFC 5322 grammar (quoted local parts,
/// comments): those addresses are legal but no form or model produces them, and accepting
/// them would let garbage through. The domain is lowercased; the local part is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// The most characters accepted.
    pub const MAX_CHARS: usize = 254;

    /// Validates an address; the message completes "email ...".
    pub fn parse(raw: &str) -> Result<Self, String> {
        let invalid = || Err("must be an email address like name@example.com".to_owned());
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.chars().count() > Self::MAX_CHARS {
            return invalid();
        }
        let Some((local, domain)) = trimmed.rsplit_once('@') else {
            return invalid();
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            })
            && labels
                .last()
                .is_some_and(|tld| tld.chars().all(char::is_alphabetic) && tld.len() >= 2);
        if !local_ok || !domain_ok {
            return invalid();
        }
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tag of `contacts.tags`, normalised: trimmed, lowercase, 1 to 50 characters, no
/// control characters and no `;` (the CSV import's tag separator) or `,`; it starts with a
/// letter or a digit (a tag starting `=`, `+`, `-` or `@` would be a formula in a
/// spreadsheet that splits the export's tags cell on `;`, and one of only invisible
/// characters cannot be told apart). `VIP ` and `vip` are the same tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// The most characters of a tag.
    pub const MAX_CHARS: usize = 50;

    /// Normalises and checks a tag; the message completes "<field> ...".
    pub fn parse(raw: &str) -> Result<Self, String> {
        let tag = raw.trim().to_lowercase();
        if tag.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if tag.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        if tag.chars().any(char::is_control) || contains_nul(&tag) {
            return Err("must not contain control characters".to_owned());
        }
        if tag.contains([';', ',']) {
            return Err("must not contain `;` or `,`".to_owned());
        }
        if !tag.starts_with(char::is_alphanumeric) || tag.starts_with(is_blank_letter) {
            return Err("must start with a letter or a digit".to_owned());
        }
        // Invisible characters make tags that look alike but differ (`vip` and `vip\u{200B}`).
        if tag.chars().any(is_invisible) {
            return Err("must not contain invisible characters".to_owned());
        }
        Ok(Self(tag))
    }

    /// Wraps a tag read back from the database, which only holds normalised tags.
    pub fn from_trusted(raw: String) -> Self {
        Self(raw)
    }

    /// The normalised tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Letters that render as blank (Hangul fillers): alphanumeric to Unicode, invisible to a
/// person.
fn is_blank_letter(c: char) -> bool {
    matches!(c, '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}')
}

/// Zero-width and bidirectional format characters, and the blank letters.
fn is_invisible(c: char) -> bool {
    is_blank_letter(c)
        || matches!(c, '\u{00AD}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}')
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The region a tenant's phone numbers are assumed to be in when written without a `+`
/// (`users.default_phone_region`): an ISO 3166-1 alpha-2 code libphonenumber knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhoneRegion(phonenumber::country::Id);

impl PhoneRegion {
    /// Accepts a two-letter region code (`FR`, `us`).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let code = raw.trim().to_ascii_uppercase();
        if code.len() != 2 {
            return Err("must be a two-letter ISO 3166-1 region code like US or FR".to_owned());
        }
        code.parse::<phonenumber::country::Id>()
            .map(Self)
            .map_err(|_| format!("`{code}` is not a region libphonenumber knows"))
    }

    /// The code, upper case.
    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }

    pub(super) fn id(self) -> phonenumber::country::Id {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whatsapp_key_with_a_valid_number_is_a_phone_and_anything_else_a_channel_identity() {
        assert_eq!(
            CustomerIdentity::of_conversation(Platform::WhatsApp, "+16505551234")
                .phone()
                .map(PhoneE164::as_str),
            Some("+16505551234")
        );
        assert_eq!(
            CustomerIdentity::of_conversation(Platform::WhatsApp, "+US.13491208655302741918"),
            CustomerIdentity::Channel {
                platform: Platform::WhatsApp,
                customer_id: "+US.13491208655302741918".to_owned()
            }
        );
        // An IGSID is digits, but never a phone.
        assert!(
            CustomerIdentity::of_conversation(Platform::Instagram, "16505551234")
                .phone()
                .is_none()
        );
        assert!(
            CustomerIdentity::of_conversation(Platform::Webchat, "vis_01")
                .phone()
                .is_none()
        );
    }

    #[test]
    fn emails_are_checked_and_their_domain_lowercased() {
        for (raw, expected) in [
            ("ana@example.com", "ana@example.com"),
            ("  Ana.B+x@Example.CO.uk ", "Ana.B+x@example.co.uk"),
            ("josé@bücher.de", "josé@bücher.de"),
        ] {
            assert_eq!(
                Email::parse(raw).map(|e| e.as_str().to_owned()),
                Ok(expected.to_owned()),
                "{raw:?}"
            );
        }
        for raw in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "ana@@example.com",
            "ana@exa mple.com",
            "a..b@example.com",
            "ana@-example.com",
            "ana@example.c0m",
            "ana\0@example.com",
        ] {
            assert!(Email::parse(raw).is_err(), "{raw:?} must be refused");
        }
    }

    #[test]
    fn tags_are_trimmed_lowercased_and_bounded() {
        assert_eq!(Tag::parse("  VIP ").map(|t| t.0), Ok("vip".to_owned()));
        assert_eq!(
            Tag::parse("Prêt-à-porter 🎉").map(|t| t.0),
            Ok("prêt-à-porter 🎉".to_owned())
        );
        assert!(Tag::parse(&"x".repeat(50)).is_ok());
        assert!(Tag::parse("2024-lead").is_ok());
        for raw in [
            "",
            "   ",
            &"x".repeat(51),
            "a;b",
            "a,b",
            "a\nb",
            "a\0b",
            "=1+1",
            "+x",
            "-y",
            "@z",
            "\u{202E}",
            "\u{200B}\u{200B}",
            "\u{3164}",
            "vip\u{200B}",
        ] {
            assert!(Tag::parse(raw).is_err(), "{raw:?} must be refused");
        }
    }

    #[test]
    fn regions_are_two_letter_codes_libphonenumber_knows() {
        assert_eq!(
            PhoneRegion::parse("fr").map(|r| r.as_str().to_owned()),
            Ok("FR".to_owned())
        );
        assert!(PhoneRegion::parse("ZZ").is_err());
        assert!(PhoneRegion::parse("FRA").is_err());
    }
}
