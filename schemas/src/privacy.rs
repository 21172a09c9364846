//! Privacy by construction: recognising raw device identifiers and keeping pseudonyms out
//! of anything written to disk.
//!
//! A beacon gateway must send a *pseudonymous* token (a keyed hash rotated daily), never the
//! MAC address it saw. The hub refuses anything that looks like a MAC, and redacts device
//! tokens and MAC-like strings from the raw bytes it keeps in dead letters.

use std::sync::LazyLock;

use regex::Regex;

/// What replaces a redacted identifier.
pub const REDACTED: &str = "[redacted]";

static MAC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(?:[0-9a-f]{2}:){5}[0-9a-f]{2}$|^(?:[0-9a-f]{2}-){5}[0-9a-f]{2}$|^[0-9a-f]{12}$",
    )
    .expect("valid regex")
});

/// MAC-like runs inside free text, and bare hex runs of 12 to 64 digits (MACs without
/// separators and device tokens).
static IDENTIFIER_IN_TEXT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:[0-9a-f]{2}[:-]){5}[0-9a-f]{2}\b|\b[0-9a-f]{12,64}\b")
        .expect("valid regex")
});

/// The `"deviceToken": "<anything>"` pair in JSON text, even when the rest does not parse.
static TOKEN_PAIR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#""deviceToken"\s*:\s*"(?:[^"\\]|\\.)*""#).expect("valid regex"));

/// Whether `s` looks like a MAC address: six hex pairs separated by `:` or `-`, or 12 bare
/// hex digits.
pub fn is_mac_like(s: &str) -> bool {
    MAC.is_match(s.trim())
}

/// Whether `s` has the form of a pseudonymous device token: 16 to 64 hex digits.
pub fn is_device_token(s: &str) -> bool {
    (16..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Removes device tokens and MAC-like identifiers from text that is about to be stored.
pub fn redact_identifiers(text: &str) -> String {
    let text = TOKEN_PAIR.replace_all(text, format!(r#""deviceToken":"{REDACTED}""#).as_str());
    IDENTIFIER_IN_TEXT.replace_all(&text, REDACTED).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_addresses_in_every_usual_spelling_are_recognised() {
        for mac in [
            "a4:5e:60:e8:1b:2c",
            "A4-5E-60-E8-1B-2C",
            "a45e60e81b2c",
            " a4:5e:60:e8:1b:2c ",
        ] {
            assert!(is_mac_like(mac), "{mac}");
        }
        for not_mac in [
            "a4:5e:60:e8:1b",
            "a4:5e-60:e8:1b:2c:",
            "9f86d081884c7d659a2feaa0c55ad015",
            "zone-a",
        ] {
            assert!(!is_mac_like(not_mac), "{not_mac}");
        }
    }

    #[test]
    fn device_tokens_are_16_to_64_hex_digits() {
        assert!(is_device_token("9f86d081884c7d65"));
        assert!(is_device_token(&"a".repeat(64)));
        assert!(!is_device_token(&"a".repeat(65)));
        assert!(!is_device_token("9f86d081884c7d6"));
        assert!(!is_device_token("9f86d081884c7d6z"));
    }

    #[test]
    fn redaction_removes_tokens_and_macs_even_from_broken_json() {
        let raw = r#"{"deviceToken":"9f86d081884c7d659a2f", "seen":"a4:5e:60:e8:1b:2c", "zone": "z1", "rssi": -70"#;
        let red = redact_identifiers(raw);
        assert!(!red.contains("9f86d081884c7d659a2f"), "{red}");
        assert!(!red.contains("a4:5e:60:e8:1b:2c"), "{red}");
        assert!(red.contains(r#""zone": "z1""#), "{red}");
        // A token that is not hex (so not caught by the hex rule) still goes with its key.
        let red = redact_identifiers(r#"{"deviceToken" : "not-hex-but-personal"}"#);
        assert!(!red.contains("personal"), "{red}");
    }
}
