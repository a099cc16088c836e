//! The website chat's values: the widget key a channel is reached by, the visitor's bearer
//! token, and the channel's settings (allowed origins, daily AI-reply cap).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::{RngCore, rngs::OsRng};
use sha2::{Digest, Sha256};

/// Random bytes in a widget key: 192 bits, so keys cannot be guessed or enumerated.
const WIDGET_KEY_BYTES: usize = 24;
/// Random bytes in a visitor token: 256 bits.
const VISITOR_TOKEN_BYTES: usize = 32;
const VISITOR_TOKEN_PREFIX: &str = "vt_";

fn random_url_safe(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buffer);
    URL_SAFE_NO_PAD.encode(buffer)
}

/// A fresh widget key: `wk_` and 32 characters of base64url (192 random bits from the OS).
/// The server generates it, so no tenant can pick a guessable one.
pub fn generate_widget_key() -> String {
    format!("wk_{}", random_url_safe(WIDGET_KEY_BYTES))
}

/// A visitor's bearer token: `vt_` and 43 characters of base64url (256 random bits). Only
/// its SHA-256 is stored; the token itself is shown once, to the widget that asked for it.
#[derive(Clone, PartialEq, Eq)]
pub struct VisitorToken(String);

impl std::fmt::Debug for VisitorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VisitorToken(<redacted>)")
    }
}

impl VisitorToken {
    /// A fresh token.
    pub fn generate() -> Self {
        Self(format!(
            "{VISITOR_TOKEN_PREFIX}{}",
            random_url_safe(VISITOR_TOKEN_BYTES)
        ))
    }

    /// Accepts a token of the right shape (anything else cannot be one of ours).
    pub fn parse(raw: &str) -> Option<Self> {
        let rest = raw.strip_prefix(VISITOR_TOKEN_PREFIX)?;
        let valid = rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid.then(|| Self(raw.to_owned()))
    }

    /// The token, to hand to the widget once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What is stored and looked up: hex SHA-256 of the token. A plain hash is enough: the
    /// token has 256 random bits, so there is nothing to brute-force.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

/// The longest list of allowed origins a channel may have.
pub const MAX_ALLOWED_ORIGINS: usize = 20;

/// The origins a widget may be embedded on (`Access-Control-Allow-Origin`): each is
/// `scheme://host[:port]` as a browser sends it in `Origin` (lower case, default port
/// dropped), or the list is exactly `["*"]` (any site: only when the tenant asks for it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllowedOrigins(Vec<String>);

impl AllowedOrigins {
    /// Validates a list from the API; the error names the index at fault.
    pub fn parse(raw: &[String]) -> Result<Self, (Option<usize>, String)> {
        if raw.len() > MAX_ALLOWED_ORIGINS {
            return Err((
                None,
                format!("must have at most {MAX_ALLOWED_ORIGINS} origins"),
            ));
        }
        if raw.iter().any(|o| o.trim() == "*") {
            if raw.len() > 1 {
                return Err((None, "`*` must be the only entry when used".to_owned()));
            }
            return Ok(Self(vec!["*".to_owned()]));
        }
        let mut origins = Vec::with_capacity(raw.len());
        for (index, origin) in raw.iter().enumerate() {
            let origin = normalize_origin(origin).map_err(|e| (Some(index), e))?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(Self(origins))
    }

    /// Wraps a list read back from the database.
    pub fn from_trusted(origins: Vec<String>) -> Self {
        Self(origins)
    }

    /// The origins as stored.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Whether a request's `Origin` header may read the response.
    pub fn allows(&self, origin: &str) -> bool {
        self.0
            .iter()
            .any(|allowed| allowed == "*" || allowed == origin)
    }
}

fn normalize_origin(raw: &str) -> Result<String, String> {
    const SHAPE: &str = "must be `scheme://host[:port]` (http or https, no path) or `*`";
    let raw = raw.trim().to_ascii_lowercase();
    let (scheme, rest) = raw.split_once("://").ok_or_else(|| SHAPE.to_owned())?;
    let default_port = match scheme {
        "https" => "443",
        "http" => "80",
        _ => return Err(SHAPE.to_owned()),
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, _)) if !host.ends_with(']') && host.contains(':') => (rest, None),
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    let host_valid = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && !host.starts_with(['.', '-'])
            && !host.ends_with(['.', '-'])
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    if !host_valid {
        return Err(SHAPE.to_owned());
    }
    match port {
        None => Ok(format!("{scheme}://{host}")),
        Some(port) if port == default_port => Ok(format!("{scheme}://{host}")),
        Some(port) => match port.parse::<u16>() {
            Ok(n) if n > 0 && !port.starts_with('0') => Ok(format!("{scheme}://{host}:{port}")),
            _ => Err(SHAPE.to_owned()),
        },
    }
}

/// A widget's accent colour (`phone_numbers.webchat_color`): `#rrggbb`, stored in lower
/// case. The widget picks black or white text on it, whichever contrasts more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WidgetColor(String);

impl WidgetColor {
    /// The length of every colour (`#` and six hex digits), the column's width.
    pub const LEN: usize = 7;
    /// The colour of a widget that sets none.
    pub const DEFAULT: &str = "#1f6feb";

    /// Accepts `#rrggbb` in any case.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let valid = raw.len() == Self::LEN
            && raw.starts_with('#')
            && raw[1..].bytes().all(|b| b.is_ascii_hexdigit());
        if valid {
            Ok(Self(raw.to_ascii_lowercase()))
        } else {
            Err("must be a colour as `#rrggbb` (six hex digits)".to_owned())
        }
    }

    /// Wraps a value read back from the database.
    pub fn from_trusted(value: String) -> Self {
        Self(value)
    }

    /// The colour, `#rrggbb`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How many AI replies a tenant's webchat may cause per UTC day (a channel setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyReplyCap(i32);

impl DailyReplyCap {
    /// The cap of a channel that sets none.
    pub const DEFAULT: Self = Self(500);
    const MAX: i32 = 1_000_000;

    /// Accepts 1 to 1,000,000.
    pub fn parse(raw: i64) -> Result<Self, String> {
        i32::try_from(raw)
            .ok()
            .filter(|n| (1..=Self::MAX).contains(n))
            .map(Self)
            .ok_or_else(|| format!("must be 1 to {}", Self::MAX))
    }

    /// Wraps a value read back from the database.
    pub fn from_trusted(value: i32) -> Self {
        Self(value)
    }

    /// The cap.
    pub fn get(self) -> i32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widget_keys_are_long_random_and_fit_the_widget_key_alphabet() {
        let a = generate_widget_key();
        let b = generate_widget_key();
        assert_ne!(a, b);
        assert_eq!(a.len(), 35);
        assert!(crate::domain::MetaChannelId::parse(crate::domain::Platform::Webchat, &a).is_ok());
    }

    #[test]
    fn visitor_tokens_round_trip_and_only_their_hash_is_kept() {
        let token = VisitorToken::generate();
        let parsed = VisitorToken::parse(token.expose()).expect("own shape");
        assert_eq!(parsed.hash(), token.hash());
        assert_eq!(token.hash().len(), 64);
        assert!(!format!("{token:?}").contains(token.expose()));
        for bad in [
            "",
            "vt_",
            "vt_short",
            "xx_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(VisitorToken::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn origins_are_normalized_as_browsers_send_them() {
        let cases = [
            ("https://Shop.Example", Ok("https://shop.example")),
            ("https://shop.example:443", Ok("https://shop.example")),
            ("http://localhost:8080", Ok("http://localhost:8080")),
            ("http://[::1]:3000", Ok("http://[::1]:3000")),
            ("https://shop.example/", Err(())),
            ("https://shop.example/path", Err(())),
            ("ftp://shop.example", Err(())),
            ("shop.example", Err(())),
            ("https://", Err(())),
            ("https://shop.example:0", Err(())),
            ("https://shop.example:99999", Err(())),
            ("https://user@shop.example", Err(())),
        ];
        for (raw, expected) in cases {
            let got = normalize_origin(raw);
            match expected {
                Ok(want) => assert_eq!(got.as_deref(), Ok(want), "{raw}"),
                Err(()) => assert!(got.is_err(), "{raw} should be refused, got {got:?}"),
            }
        }
    }

    #[test]
    fn widget_colours_are_six_hex_digits_kept_in_lower_case() {
        assert_eq!(
            WidgetColor::parse(" #1F6FEB ").map(|c| c.as_str().to_owned()),
            Ok("#1f6feb".to_owned())
        );
        for bad in [
            "", "#fff", "1f6feb", "#1f6fe", "#1f6febb", "#gggggg", "red", "#1f6feé",
        ] {
            assert!(WidgetColor::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_star_must_stand_alone() {
        assert_eq!(
            AllowedOrigins::parse(&["*".to_owned()]).map(|o| o.allows("https://any.example")),
            Ok(true)
        );
        assert!(AllowedOrigins::parse(&["*".to_owned(), "https://a.example".to_owned()]).is_err());
        let list = AllowedOrigins::parse(&["https://a.example".to_owned(), "nope".to_owned()]);
        assert_eq!(list.map_err(|e| e.0), Err(Some(1)));
    }
}
