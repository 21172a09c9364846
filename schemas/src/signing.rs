//! Signed events: what the API writes to Kafka carries proof that the API wrote it.
//!
//! Citizens' reports, ideas, staff actions and reference places are written by the API
//! alone, and every reader trusts them: a status change on `vallee.citizen.reports` closes
//! a report, an `IdeaAnswered` speaks for the intercommunality. Anyone who can produce to
//! the broker could forge them. So the API signs each event it writes: an HMAC-SHA256 of
//! the stream's name and the payload's exact bytes, under a key derived from the replicas'
//! shared secret, in the Kafka header [`SIGNATURE_HEADER`]. Ingest and every API replica
//! check it before anything else is parsed; an unsigned or badly signed event becomes a
//! dead letter with reason `signature` (and the replica's view ignores it).
//!
//! Signing the bytes, not a re-serialisation, means nothing has to agree on a canonical
//! JSON form; binding the stream's name means an event signed for one stream cannot be
//! replayed onto another. The key is derived (not the secret itself) so that the token
//! MACs and the event MACs can never be confused for one another.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::rejection::{Reason, Rejection};
use crate::streams::Stream;

/// The Kafka header holding an event's signature (lowercase hex, 64 characters).
pub const SIGNATURE_HEADER: &str = "vallee-signature";

type HmacSha256 = Hmac<Sha256>;

/// The key events are signed with, derived from the replicas' shared secret.
#[derive(Clone, PartialEq, Eq)]
pub struct EventKey([u8; 32]);

impl std::fmt::Debug for EventKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventKey(…)")
    }
}

impl EventKey {
    /// The event key of a replicas' secret (the one their citizen tokens are MACed with).
    pub fn derive(secret: &[u8]) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key");
        mac.update(b"vallee kafka events v1");
        EventKey(mac.finalize().into_bytes().into())
    }

    fn mac(&self, stream: Stream, payload: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key");
        mac.update(stream.name().as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        mac
    }

    /// The header value for `payload` written on `stream`.
    pub fn sign(&self, stream: Stream, payload: &[u8]) -> String {
        hex_lower(&self.mac(stream, payload).finalize().into_bytes())
    }

    /// Whether `header` (the [`SIGNATURE_HEADER`] value, if any) signs `payload` on
    /// `stream`. Compared in constant time; only the full 32-byte tag is accepted.
    pub fn verify(
        &self,
        stream: Stream,
        payload: &[u8],
        header: Option<&[u8]>,
    ) -> Result<(), Rejection> {
        let Some(header) = header else {
            return Err(Rejection::new(
                Reason::Signature,
                format!(
                    "no `{SIGNATURE_HEADER}` header: only the API writes {} events",
                    stream.name()
                ),
            ));
        };
        let tag = parse_hex(header).filter(|t| t.len() == 32).ok_or_else(|| {
            Rejection::new(
                Reason::Signature,
                format!("`{SIGNATURE_HEADER}` is not 64 hexadecimal digits"),
            )
        })?;
        self.mac(stream, payload).verify_slice(&tag).map_err(|_| {
            Rejection::new(
                Reason::Signature,
                format!(
                    "`{SIGNATURE_HEADER}` does not sign this payload on {}: forged, altered \
                     or signed under another secret",
                    stream.name()
                ),
            )
        })
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn parse_hex(text: &[u8]) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks(2)
        .map(|pair| {
            let digit = |c: u8| (c as char).to_digit(16);
            Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &[u8] = br#"{"id":"e1","type":"ReportStatusChanged","status":"closed"}"#;

    #[test]
    fn an_event_signed_by_the_replicas_is_accepted() {
        let key = EventKey::derive(b"the replicas' secret");
        let sig = key.sign(Stream::CitizenReports, EVENT);
        assert_eq!(sig.len(), 64);
        assert!(
            key.verify(Stream::CitizenReports, EVENT, Some(sig.as_bytes()))
                .is_ok()
        );
        assert!(
            key.verify(
                Stream::CitizenReports,
                EVENT,
                Some(sig.to_uppercase().as_bytes())
            )
            .is_ok(),
            "hex digits in either case"
        );
    }

    #[test]
    fn forged_altered_moved_truncated_or_missing_signatures_are_refused() {
        let key = EventKey::derive(b"the replicas' secret");
        let sig = key.sign(Stream::CitizenReports, EVENT);
        let other = EventKey::derive(b"an attacker's guess");
        let altered = EVENT
            .iter()
            .map(|b| b.to_ascii_uppercase())
            .collect::<Vec<_>>();
        let forged = other.sign(Stream::CitizenReports, EVENT);
        type Case<'a> = (&'a str, Stream, &'a [u8], Option<&'a [u8]>);
        let cases: [Case<'_>; 6] = [
            ("missing", Stream::CitizenReports, EVENT, None),
            (
                "another secret",
                Stream::CitizenReports,
                EVENT,
                Some(forged.as_bytes()),
            ),
            (
                "altered payload",
                Stream::CitizenReports,
                &altered,
                Some(sig.as_bytes()),
            ),
            (
                "another stream",
                Stream::StaffAudit,
                EVENT,
                Some(sig.as_bytes()),
            ),
            (
                "truncated tag",
                Stream::CitizenReports,
                EVENT,
                Some(&sig.as_bytes()[..2]),
            ),
            ("not hex", Stream::CitizenReports, EVENT, Some(b"zz")),
        ];
        for (case, stream, payload, header) in cases {
            let refused = key.verify(stream, payload, header).unwrap_err();
            assert_eq!(refused.reason, Reason::Signature, "{case}");
        }
        assert_ne!(EventKey::derive(b"a"), EventKey::derive(b"b"));
        assert_eq!(format!("{key:?}"), "EventKey(…)", "the key is never logged");
    }
}
