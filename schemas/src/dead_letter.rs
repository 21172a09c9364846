//! The dead-letter row: every refused message is kept with its reason, its raw bytes and
//! its source coordinates, so nothing that arrives ever vanishes — except raw device
//! identifiers: MAC-like strings are redacted from the payload, the key and the message of
//! every dead letter, on the bytes (so whatever the encoding, before any base64), and
//! beacon dead letters lose their device tokens and every long hex run too
//! ([`crate::privacy`]).

use std::sync::LazyLock;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::privacy::{redact_identifiers, redact_macs};
use crate::rejection::{Reason, Rejection};
use crate::streams::Stream;
use crate::time::{micros, utc_day};

/// One row of `dead_letters`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetterRecord {
    pub reason: Reason,
    /// Human-readable explanation.
    pub message: String,
    /// The payload as text when it is UTF-8, else base64 (see `raw_base64`), MAC-like
    /// identifiers redacted (beacon payloads: device tokens and long hex runs too).
    pub raw: Option<String>,
    pub raw_base64: bool,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The message key, as text when UTF-8, else base64 (see `key_base64`), redacted as
    /// `raw` is.
    pub key: Option<String>,
    pub key_base64: bool,
    #[serde(with = "micros")]
    pub received_at: DateTime<Utc>,
    /// UTC day of `received_at` (partition column).
    pub day: i32,
}

/// Where a refused message came from.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub stream: Stream,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

fn text_or_base64(bytes: Option<&[u8]>) -> (Option<String>, bool) {
    match bytes {
        None => (None, false),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => (Some(s.to_string()), false),
            Err(_) => (
                Some(base64::engine::general_purpose::STANDARD.encode(b)),
                true,
            ),
        },
    }
}

impl DeadLetterRecord {
    /// Builds the dead letter of a refused message.
    pub fn new(
        rejection: &Rejection,
        source: Source<'_>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        received_at: DateTime<Utc>,
    ) -> Self {
        // Redaction runs on the bytes, before the base64 of a payload that is not UTF-8, so
        // an identifier is never kept whatever the encoding.
        let redact = |bytes: &[u8]| -> Vec<u8> {
            if source.stream == Stream::Beacons {
                redact_identifiers(bytes).into_owned()
            } else {
                redact_macs(bytes).into_owned()
            }
        };
        let (raw, raw_base64) = text_or_base64(payload.map(redact).as_deref());
        let (key, key_base64) = text_or_base64(key.map(redact).as_deref());
        // Only ASCII runs are replaced: UTF-8 stays UTF-8.
        let message = String::from_utf8_lossy(&redact(rejection.message.as_bytes())).into_owned();
        DeadLetterRecord {
            reason: rejection.reason,
            message,
            raw,
            raw_base64,
            topic: source.topic.to_string(),
            partition: source.partition,
            offset: source.offset,
            key,
            key_base64,
            received_at,
            day: utc_day(&received_at),
        }
    }
}

/// Arrow schema of `dead_letters`.
pub fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        std::sync::Arc::new(Schema::new(vec![
            Field::new("reason", DataType::Utf8, false),
            Field::new("message", DataType::Utf8, false),
            Field::new("raw", DataType::Utf8, true),
            Field::new("raw_base64", DataType::Boolean, false),
            Field::new("topic", DataType::Utf8, false),
            Field::new("partition", DataType::Int32, false),
            Field::new("offset", DataType::Int64, false),
            Field::new("key", DataType::Utf8, true),
            Field::new("key_base64", DataType::Boolean, false),
            Field::new("received_at", crate::events::timestamp(), false),
            Field::new("day", DataType::Date32, false),
        ]))
    });
    SCHEMA.clone()
}
