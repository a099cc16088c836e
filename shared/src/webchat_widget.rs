//! The website chat widget's script (`assets/webchat-widget.js`): plain, dependency-free
//! JavaScript with no build step, compiled into the binaries that serve or link to it.
//!
//! Its URL carries a version, the start of the script's SHA-256, so a response for the
//! current version can be cached for a year (`immutable`): a new script is a new URL.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// The script, as served at `GET /webchat/{widget_key}/widget.js`.
pub const SCRIPT: &str = include_str!("../assets/webchat-widget.js");

/// Hex characters of the script's SHA-256 in its version.
const VERSION_CHARS: usize = 12;

/// The current script's version: the first 12 hex characters of its SHA-256.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut hex = hex::encode(Sha256::digest(SCRIPT.as_bytes()));
        hex.truncate(VERSION_CHARS);
        hex
    })
}

/// The versioned path of a widget's script, relative to the webchat's base URL: what the
/// `<script src>` a business pastes ends with.
pub fn script_path(widget_key: &str) -> String {
    format!("/webchat/{widget_key}/widget.js?v={}", version())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_twelve_hex_characters_of_the_scripts_hash() {
        assert_eq!(version().len(), VERSION_CHARS);
        assert!(version().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            script_path("wk_abc"),
            format!("/webchat/wk_abc/widget.js?v={}", version())
        );
    }

    #[test]
    fn the_script_needs_no_eval_no_inline_handlers_and_no_html_parsing() {
        for forbidden in [
            "eval(",
            "new Function",
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "setAttribute(\"on",
            "setAttribute('on",
            "setAttribute(\"style",
            ".onclick",
        ] {
            assert!(
                !SCRIPT.contains(forbidden),
                "the widget script must not use {forbidden}"
            );
        }
    }
}
