//! Client-chosen Google Calendar event ids. Google accepts ids of 5 to 1024 characters
//! from the base32hex alphabet (RFC 4648 §7: `0-9` and `a-v`, lowercase). We derive one from
//! the conversation and the booking, so a retried booking asks for the same id; Google does
//! not promise to detect the collision, so our `meetings` row (written before the call, with
//! this id unique per tenant) is what really keeps a retry from booking twice.

use sha2::{Digest, Sha256};

const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// The event id of the `generation`-th booking of `start` (RFC 3339, UTC) in a
/// conversation: 52 base32hex characters of SHA-256.
pub fn for_booking(conversation_id: &str, start_rfc3339: &str, generation: i64) -> String {
    let digest = Sha256::new()
        .chain_update(b"salesagent meeting\0")
        .chain_update(conversation_id.as_bytes())
        .chain_update(b"\0")
        .chain_update(start_rfc3339.as_bytes())
        .chain_update(b"\0")
        .chain_update(generation.to_string().as_bytes())
        .finalize();
    base32hex(&digest)
}

/// Lowercase base32hex without padding.
fn base32hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let mut buffer: u16 = 0;
    let mut bits = 0u8;
    for &byte in bytes {
        buffer = (buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[usize::from((buffer >> bits) & 31)]));
        }
    }
    if bits > 0 {
        out.push(char::from(
            ALPHABET[usize::from((buffer << (5 - bits)) & 31)],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32hex_matches_rfc_4648_test_vectors() {
        // RFC 4648 §10, BASE32-HEX, lowercased and without padding.
        for (input, expected) in [
            ("", ""),
            ("f", "co"),
            ("fo", "cpng"),
            ("foo", "cpnmu"),
            ("foob", "cpnmuog"),
            ("fooba", "cpnmuoj1"),
            ("foobar", "cpnmuoj1e8"),
        ] {
            assert_eq!(base32hex(input.as_bytes()), expected, "{input:?}");
        }
    }

    #[test]
    fn a_booking_always_gets_the_same_valid_id_and_another_booking_another() {
        let a = for_booking("conv_1", "2030-01-02T15:00:00Z", 0);
        assert_eq!(a, for_booking("conv_1", "2030-01-02T15:00:00Z", 0));
        assert_eq!(a.len(), 52);
        assert!(a.bytes().all(|b| ALPHABET.contains(&b)));
        assert_ne!(a, for_booking("conv_2", "2030-01-02T15:00:00Z", 0));
        assert_ne!(a, for_booking("conv_1", "2030-01-02T15:30:00Z", 0));
        assert_ne!(a, for_booking("conv_1", "2030-01-02T15:00:00Z", 1));
    }
}
