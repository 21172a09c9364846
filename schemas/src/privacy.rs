//! Privacy by construction: recognising raw device identifiers and keeping them (and
//! pseudonyms) out of anything written to disk.
//!
//! A beacon gateway must send a *pseudonymous* token (a keyed hash rotated daily), never the
//! MAC address it saw. [`crate::decode`] refuses every sensor event with a MAC-like string
//! anywhere in it (any attribute, nested or not, attribute names included), and the
//! dead-letter row of every refused message has MAC-like strings redacted from its payload,
//! key and message (beacon dead letters lose their device tokens and every long hex run as
//! well).
//!
//! # What counts as MAC-like
//! Case-insensitive hex digits, read through NUL bytes (the padding of UTF-16 and UTF-32
//! text), in one of these spellings:
//! - six pairs separated by `:`, `-` or `.` — `a4:5e:60:e8:1b:2c`, `A4-5E-60-E8-1B-2C`,
//!   `a4.5e.60.e8.1b.2c` (the separators may differ; an EUI-64 contains one);
//! - three groups of four separated by `.` (Cisco) — `a45e.60e8.1b2c`;
//! - two groups of six separated by `:` or `-` — `a45e60-e81b2c`;
//! - twelve bare hex digits — `a45e60e81b2c`, decimal digits included (one MAC in 290 has
//!   no letter);
//!
//! standing alone: the character before and the one after, if any, are not ASCII letters
//! or digits (so `urn:ngsi-ld:BeaconSighting:a45e60e81b2c` and `mac_a45e60e81b2c` count).
//! Not MAC-like, so that legitimate values pass:
//! - a longer hex run, such as a 16–64 digit device token (the pseudonym the contract asks
//!   for) or a hash: twelve digits in a row followed by a thirteenth are not a MAC;
//! - the last group of a UUID (`8-4-4-4-12`), except in a time-based UUID (versions 1 and
//!   2), whose last group *is* the MAC of the machine that made it — unless its multicast
//!   bit is set, the mark of a random node (the official Smart Data Models examples use
//!   such UUIDs for device ids);
//! - dates, times, IPv4 addresses and French phone numbers (five pairs at most).
//!
//! Decoded JSON strings are checked as they are ([`contains_mac`]). Stored bytes are read
//! the way a JSON reader would ([`raw_contains_mac`]): `\u0061` is an `a`, so a payload
//! spelling a MAC with escapes is caught and redacted too, whatever its encoding.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::LazyLock;

use regex::bytes::Regex;

/// What replaces a redacted identifier.
pub const REDACTED: &str = "[redacted]";

/// The `"deviceToken": "<anything>"` pair in JSON text, even when the rest does not parse
/// or is not UTF-8: a token that is not hex (so not a hex run) still goes with its key.
static TOKEN_PAIR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?-u)"deviceToken"\s*:\s*"(?:[^"\\]|\\.)*""#).expect("valid regex")
});

/// Whether a decoded string (a JSON string value or attribute name) contains a MAC-like
/// identifier (see the module docs).
pub fn contains_mac(text: &str) -> bool {
    bytes_contain_mac(text.as_bytes())
}

/// [`contains_mac`] of text given as bytes, read as they are (no JSON escapes).
pub(crate) fn bytes_contain_mac(bytes: &[u8]) -> bool {
    // Twelve hex digits take twelve bytes, NUL padding or not: short texts (zones,
    // dates) need no scan at all.
    if bytes.len() < 12 {
        return false;
    }
    if !bytes.contains(&0) {
        // Every spelling is one run of hex digits and separators holding twelve digits:
        // without such a run (dates, times, names: the common case), no scan at all.
        return mac_in_hex_runs(bytes);
    }
    let view = View::new(bytes, false);
    first_mac(&view.text, 0).is_some()
}

/// Whether bytes about to be stored (a payload, a key, a message) contain a MAC-like
/// identifier, reading JSON escapes as the characters they stand for.
pub fn raw_contains_mac(bytes: &[u8]) -> bool {
    let view = View::new(bytes, true);
    first_mac(&view.text, 0).is_some()
}

/// Whether `s` has the form of a pseudonymous device token: 16 to 64 hex digits.
pub fn is_device_token(s: &str) -> bool {
    // No early exit: the whole token is read either way, and this form vectorises.
    (16..=64).contains(&s.len()) && s.bytes().fold(true, |hex, b| hex & b.is_ascii_hexdigit())
}

/// The longest valid RFC 3339 time (as [`crate::time::parse_rfc3339`] reads it) that can
/// hold no MAC-like identifier, so a time that parsed and is no longer needs no scan. Its
/// longest run of hex digits and separators is the time of day with its fraction and a
/// `-hh:mm` offset, which reaches twelve digits only from 27 bytes
/// (`2026-11-28T12:00:00.123456Z`) or 28 (`2026-11-28T12:00:00.12-01:00`).
pub(crate) const SHORT_TIME_MAX_BYTES: usize = 26;

/// Replaces MAC-like identifiers in bytes about to be stored (the dead letters of every
/// stream). Everything else is kept byte for byte, escapes and invalid UTF-8 included;
/// valid UTF-8 stays valid (only ASCII runs are replaced).
pub fn redact_macs(bytes: &[u8]) -> Cow<'_, [u8]> {
    redact_spans(bytes, mac_spans)
}

/// Replaces device tokens and every run of twelve hex digits or more (with or without
/// separators, a MAC-like identifier included) in bytes about to be stored: the dead letters
/// of the beacon stream, where no such run is worth keeping.
pub fn redact_identifiers(bytes: &[u8]) -> Cow<'_, [u8]> {
    let replacement = format!(r#""deviceToken":"{REDACTED}""#);
    let tokens = TOKEN_PAIR.replace_all(bytes, replacement.as_bytes());
    let runs = match redact_spans(&tokens, hex_run_spans) {
        Cow::Borrowed(_) => None,
        Cow::Owned(v) => Some(v),
    };
    runs.map_or(tokens, Cow::Owned)
}

/// Redacts what `find` finds until nothing is found: a replacement can turn a neighbour
/// into a standalone run (each pass removes at least six hex digits, so it ends).
fn redact_spans(bytes: &[u8], find: fn(&[u8]) -> Vec<Range<usize>>) -> Cow<'_, [u8]> {
    let mut current = Cow::Borrowed(bytes);
    loop {
        let view = View::new(&current, true);
        let spans = find(&view.text);
        if spans.is_empty() {
            return current;
        }
        let mut out = Vec::with_capacity(current.len());
        let mut at = 0;
        for span in spans {
            let (start, end) = view.original(span);
            out.extend_from_slice(&current[at..start]);
            out.extend_from_slice(REDACTED.as_bytes());
            at = end;
        }
        out.extend_from_slice(&current[at..]);
        current = Cow::Owned(out);
    }
}

/// Text as the detector reads it: NUL bytes dropped and, for stored bytes, JSON escapes
/// replaced by the character they stand for (a non-ASCII one by a byte that is no letter,
/// as its UTF-8 bytes would be). `starts[i]..ends[i]` are the original bytes of `text[i]`.
struct View {
    text: Vec<u8>,
    starts: Vec<usize>,
    ends: Vec<usize>,
}

impl View {
    fn new(bytes: &[u8], json_escapes: bool) -> View {
        // NULs go first: in UTF-16 text an escape's own characters are padded with them.
        let (kept, at): (Vec<u8>, Vec<usize>) = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b != 0)
            .map(|(i, b)| (*b, i))
            .unzip();
        let mut view = View {
            text: Vec::with_capacity(kept.len()),
            starts: Vec::with_capacity(kept.len()),
            ends: Vec::with_capacity(kept.len()),
        };
        let mut i = 0;
        while i < kept.len() {
            let (byte, len) = match kept[i] {
                b'\\' if json_escapes => escape(&kept[i..]),
                b => (Some(b), 1),
            };
            if let Some(b) = byte {
                view.text.push(b);
                view.starts.push(at[i]);
                view.ends.push(at[i + len - 1] + 1);
            }
            i += len;
        }
        view
    }

    /// The original bytes of `text[span]`.
    fn original(&self, span: Range<usize>) -> (usize, usize) {
        (self.starts[span.start], self.ends[span.end - 1])
    }
}

/// The character a JSON escape at the start of `bytes` stands for (`None` for NUL, `0x80`
/// for anything beyond ASCII) and the escape's length. A lone backslash stays one.
fn escape(bytes: &[u8]) -> (Option<u8>, usize) {
    let simple = match bytes.get(1) {
        Some(b'u') => None,
        Some(b'n') => Some(b'\n'),
        Some(b't') => Some(b'\t'),
        Some(b'r') => Some(b'\r'),
        Some(b'b') => Some(0x08),
        Some(b'f') => Some(0x0c),
        Some(&c @ (b'"' | b'\\' | b'/')) => Some(c),
        _ => return (Some(b'\\'), 1),
    };
    if let Some(c) = simple {
        return (Some(c), 2);
    }
    let code = bytes
        .get(2..6)
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| u16::from_str_radix(h, 16).ok());
    match code {
        Some(0) => (None, 6),
        Some(c) if c < 0x80 => (Some(c as u8), 6),
        Some(_) => (Some(0x80), 6),
        None => (Some(b'\\'), 1),
    }
}

/// Whether `text` has a run of hex digits and separators with twelve digits or more.
#[cfg(test)]
fn has_hex_run(text: &[u8]) -> bool {
    twelfth_hex_digit(text, 0).is_some()
}

/// Where, from `from` on, a run of hex digits and separators (`:-.`) first reaches its
/// twelfth digit: what every MAC spelling of [`SHAPES`] is made of, so a text (with no
/// NUL byte: those take a [`View`]) without such a run holds none. It runs on most
/// strings of every sensor event: two table lookups and no branch per byte.
fn twelfth_hex_digit(text: &[u8], from: usize) -> Option<usize> {
    /// Per byte, what it does to the count of hex digits in the current run: a hex digit
    /// adds one, a separator keeps the count, anything else starts it again.
    const fn tables() -> ([u8; 256], [u8; 256]) {
        let (mut keep, mut add) = ([0u8; 256], [0u8; 256]);
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            if c.is_ascii_hexdigit() {
                (keep[b], add[b]) = (0xff, 1);
            } else if matches!(c, b':' | b'-' | b'.') {
                keep[b] = 0xff;
            }
            b += 1;
        }
        (keep, add)
    }
    static TABLES: ([u8; 256], [u8; 256]) = tables();
    let (keep, add) = &TABLES;
    let mut digits = 0u8;
    for (i, &b) in text.iter().enumerate().skip(from) {
        // At most eleven before this byte: the count never overflows.
        digits = (digits & keep[b as usize]) + add[b as usize];
        if digits == 12 {
            return Some(i);
        }
    }
    None
}

/// Whether `text` (with no NUL byte) holds a MAC-like identifier, looked for only in its
/// runs of hex digits and separators with twelve digits or more, where every spelling
/// lies: a whole payload is checked at once on the fast paths, and a fractional time
/// (`00:00:00.123456`) makes such a run in most of them, which is no reason to try every
/// shape at every byte of the rest.
fn mac_in_hex_runs(text: &[u8]) -> bool {
    let in_run = |b: &u8| b.is_ascii_hexdigit() || is_sep(*b);
    let mut from = 0;
    while let Some(twelfth) = twelfth_hex_digit(text, from) {
        let start = text[..twelfth]
            .iter()
            .rposition(|b| !in_run(b))
            .map_or(0, |i| i + 1);
        let end = text[twelfth..]
            .iter()
            .position(|b| !in_run(b))
            .map_or(text.len(), |i| twelfth + i);
        if (start..end).any(|at| mac_at(text, at).is_some()) {
            return true;
        }
        from = end;
    }
    false
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn is_sep(b: u8) -> bool {
    matches!(b, b':' | b'-' | b'.')
}

/// Whether `text[at..]` starts with `shape`: `h` a hex digit, `s` one of `:-.`, `c` one of
/// `:-`, `.` a dot.
fn shaped(text: &[u8], at: usize, shape: &[u8]) -> bool {
    text.len() >= at + shape.len()
        && shape.iter().zip(&text[at..]).all(|(s, &b)| match s {
            b'h' => b.is_ascii_hexdigit(),
            b's' => is_sep(b),
            b'c' => matches!(b, b':' | b'-'),
            _ => b == *s,
        })
}

/// The MAC spellings, as shapes for [`shaped`].
const SHAPES: [&[u8]; 4] = [
    b"hhshhshhshhshhshh",
    b"hhhh.hhhh.hhhh",
    b"hhhhhhchhhhhh",
    b"hhhhhhhhhhhh",
];

/// Whether the twelve bare digits at `at` are the last group of a UUID that does not carry
/// a MAC: any UUID but a time-based one (versions 1 and 2), and a time-based one whose
/// node has the multicast bit set (RFC 4122 §4.5: a random node, since a network card's
/// address never has it).
fn is_uuid_tail(text: &[u8], at: usize) -> bool {
    let Some(start) = at.checked_sub(24) else {
        return false;
    };
    let multicast = || {
        std::str::from_utf8(&text[at..at + 2])
            .ok()
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .is_some_and(|octet| octet & 1 == 1)
    };
    shaped(text, start, b"hhhhhhhh-hhhh-hhhh-hhhh-")
        && (start == 0 || !is_word(text[start - 1]))
        && (!matches!(text[start + 14], b'1' | b'2') || multicast())
}

/// The first MAC-like identifier in `text` from `from` on.
fn first_mac(text: &[u8], from: usize) -> Option<Range<usize>> {
    (from..text.len()).find_map(|at| mac_at(text, at))
}

/// The MAC-like identifier starting at `at`, if one does.
fn mac_at(text: &[u8], at: usize) -> Option<Range<usize>> {
    if !text[at].is_ascii_hexdigit() || (at > 0 && is_word(text[at - 1])) {
        return None;
    }
    SHAPES.iter().find_map(|shape| {
        let end = at + shape.len();
        let alone = end == text.len() || (end < text.len() && !is_word(text[end]));
        (shaped(text, at, shape) && alone && !(shape.len() == 12 && is_uuid_tail(text, at)))
            .then_some(at..end)
    })
}

/// Every MAC-like identifier in `text`, in order, not overlapping.
fn mac_spans(text: &[u8]) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(span) = first_mac(text, from) {
        from = span.end;
        spans.push(span);
    }
    spans
}

/// Every run of twelve hex digits or more, single separators `:-.` allowed between them.
fn hex_run_spans(text: &[u8]) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut at = 0;
    while at < text.len() {
        if !text[at].is_ascii_hexdigit() {
            at += 1;
            continue;
        }
        let (mut end, mut digits) = (at, 0);
        while end < text.len() {
            if text[end].is_ascii_hexdigit() {
                digits += 1;
                end += 1;
            } else if is_sep(text[end]) && text.get(end + 1).is_some_and(u8::is_ascii_hexdigit) {
                end += 1;
            } else {
                break;
            }
        }
        if digits >= 12 {
            spans.push(at..end);
        }
        at = end;
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(text: &str) -> String {
        String::from_utf8(redact_macs(text.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn mac_addresses_in_every_usual_spelling_are_recognised() {
        for mac in [
            "a4:5e:60:e8:1b:2c",
            "A4-5E-60-E8-1B-2C",
            "a4.5e.60.e8.1b.2c",
            "a4:5e-60.e8:1b:2c",
            "a45e.60e8.1b2c",
            "A45E60-E81B2C",
            "a45e60e81b2c",
            "001122334455",
            " a4:5e:60:e8:1b:2c ",
            "urn:ngsi-ld:BeaconSighting:a4:5e:60:e8:1b:2c",
            "urn:ngsi-ld:BeaconSighting:a45e60e81b2c",
            "gw1-a45e60e81b2c-7",
            "mac_a45e60e81b2c",
            "a4:5e:60:e8:1b:2c:3d:4e",
            "a\u{0}4\u{0}:\u{0}5\u{0}e\u{0}:60:e8:1b:2c",
            // A time-based UUID ends with the MAC of the machine that made it.
            "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
        ] {
            assert!(contains_mac(mac), "{mac:?}");
            assert!(raw_contains_mac(mac.as_bytes()), "{mac:?}");
        }
        for not_mac in [
            "a4:5e:60:e8:1b",
            "a45e60e81b2",
            "9f86d081884c7d659a2feaa0c55ad015",
            "9f86d081884c7d65",
            "xa45e60e81b2c",
            "a45e60e81b2cz",
            "a4:5e:60:e8:1b:2c3",
            "4d3f9a2e-1b2c-4d5e-8f90-a45e60e81b2c",
            "urn:ngsi-ld:Device:4a40aeba-4474-11e8-86bf-03d82e958ce6",
            "2026-11-28T12:00:00.000+01:00",
            "192.168.100.200",
            "06.12.34.56.78",
            "urn:ngsi-ld:BeaconSighting:gw1-000042",
            "zone-a",
            "",
        ] {
            assert!(!contains_mac(not_mac), "{not_mac:?}");
        }
    }

    #[test]
    fn stored_bytes_are_read_through_json_escapes() {
        let spelled = r#"{"id":"\u0061\u0034:5e:60:e8:1b:2c"}"#;
        assert!(raw_contains_mac(spelled.as_bytes()));
        // A space before it, escaped: the MAC stands alone once decoded.
        let spaced = r#"{"id":"x\u0020a4:5e:60:e8:1b:2c"}"#;
        assert!(raw_contains_mac(spaced.as_bytes()));
        assert_eq!(redacted(spelled), r#"{"id":"[redacted]"}"#);
        assert_eq!(redacted(spaced), r#"{"id":"x\u0020[redacted]"}"#);
        // An escaped backslash is a backslash: what follows is text, not an escape.
        assert!(!raw_contains_mac(br#"a4:5e:60:e8:1b:2\\u0063"#));
    }

    #[test]
    fn redaction_keeps_everything_else_byte_for_byte() {
        let payload = b"\xff\xfe{\"deviceToken\":\"a4:5e:60:e8:1b:2c\",\"zone\":\"z1\"}";
        let red = redact_macs(payload);
        assert_eq!(
            &red[..],
            b"\xff\xfe{\"deviceToken\":\"[redacted]\",\"zone\":\"z1\"}"
        );
        let utf16: Vec<u8> = "a4:5e:60:e8:1b:2c!"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let red = redact_macs(&utf16);
        assert!(!raw_contains_mac(&red));
        assert!(red.ends_with(b"]\0!\0"), "{red:?}");
        // Escapes in UTF-16 text: their own characters are padded too.
        let escaped: Vec<u8> = r#"{"id":"\u0061\u0034:5e:60:e8:1b:2c"}"#
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        assert!(raw_contains_mac(&escaped));
        assert!(!raw_contains_mac(&redact_macs(&escaped)));
        assert!(matches!(redact_macs(b"no identifier"), Cow::Borrowed(_)));
        // Several, next to each other.
        assert_eq!(
            redacted("a45e60e81b2c,a4:5e:60:e8:1b:2c a45e.60e8.1b2c"),
            "[redacted],[redacted] [redacted]"
        );
    }

    /// Looking only in the runs never changes the answer: on random texts made of what
    /// MACs and their neighbours are made of (several runs each), it agrees with a scan of
    /// every byte.
    #[test]
    fn the_run_test_before_the_scan_never_changes_the_answer() {
        use rand::{Rng, SeedableRng};
        let alphabet = b"0123456789abcdefABCDEF:-.xT _\"";
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut found = 0;
        for _ in 0..200_000 {
            let len = rng.random_range(0..90);
            let text: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
                .collect();
            let scanned = first_mac(text.as_bytes(), 0).is_some();
            assert_eq!(contains_mac(&text), scanned, "{text:?}");
            found += usize::from(scanned);
        }
        assert!(
            found > 100,
            "the texts exercise both answers ({found} MACs)"
        );
    }

    /// Every valid time up to [`SHORT_TIME_MAX_BYTES`] is free of the run a MAC needs, and
    /// the bound is tight: one byte more and a valid time has one.
    #[test]
    fn short_valid_times_have_no_run_a_mac_needs() {
        let mut longest_without = 0;
        let mut shortest_with = usize::MAX;
        for date in ["2026-11-28", "1999-12-31"] {
            for sep in ["T", "t", " "] {
                for fraction in 0..=9 {
                    for offset in ["Z", "z", "+01:00", "-01:00", "-00:00", "+14:00"] {
                        let digits = &"000000000"[..fraction];
                        let dot = if fraction > 0 { "." } else { "" };
                        let time = format!("{date}{sep}23:59:59{dot}{digits}{offset}");
                        if crate::time::parse_rfc3339(&time).is_err() {
                            continue;
                        }
                        if has_hex_run(time.as_bytes()) {
                            shortest_with = shortest_with.min(time.len());
                        } else {
                            longest_without = longest_without.max(time.len());
                        }
                    }
                }
            }
        }
        assert_eq!(shortest_with, SHORT_TIME_MAX_BYTES + 1);
        assert!(
            longest_without > SHORT_TIME_MAX_BYTES,
            "longer times may pass too"
        );
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
    fn beacon_redaction_removes_tokens_and_every_long_hex_run_even_from_broken_json() {
        let raw = br#"{"deviceToken":"9f86d081884c7d659a2f", "seen":"xa4:5e:60:e8:1b:2c", "zone": "z1", "rssi": -70"#;
        let red = String::from_utf8(redact_identifiers(raw).into_owned()).unwrap();
        assert!(!red.contains("9f86d081884c7d659a2f"), "{red}");
        assert!(!red.contains("a4:5e:60:e8:1b:2c"), "{red}");
        assert!(red.contains(r#""zone": "z1""#), "{red}");
        // A token that is not hex (so not caught by the hex rule) still goes with its key.
        let red = redact_identifiers(br#"{"deviceToken" : "not-hex-but-personal"}"#);
        assert!(!String::from_utf8_lossy(&red).contains("personal"));
    }
}
