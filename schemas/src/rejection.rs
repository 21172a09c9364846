//! Why a message is refused: the reason codes of `dead_letters` and the rejection every
//! validation step returns.
//!
//! A leaf module on purpose: every event module, the citizen events and the dead-letter
//! row use these types, and [`crate::decode`] (the router on top) uses all of them, so
//! the types live below both and import nothing of the crate.

use std::fmt;

use serde::Serialize;

/// Why a message was refused; the `reason` column of `dead_letters`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Not JSON (or not UTF-8).
    BadJson,
    /// A required attribute is missing or has the wrong JSON type or form.
    Schema,
    /// A value is outside its allowed range or enumeration.
    Range,
    /// The `type` is not one this topic carries.
    UnknownType,
    /// A raw device identifier (MAC address) was sent where only a pseudonym is allowed.
    RawIdentifier,
    /// The message has no payload.
    Empty,
    /// The payload exceeds the size limit (checked before parsing).
    TooLarge,
    /// The event time is further ahead of the Kafka record's timestamp (when the producer
    /// sent it) than the configured bound: a broken device or gateway clock, which must not
    /// move watermarks.
    Future,
    /// An event of a stream only the API writes (citizens, staff, places) without a valid
    /// signature of the replicas (see [`crate::signing`]): forged, altered, or written by
    /// something else than the API.
    Signature,
    /// An uplink a network server passed on for a device in no register of the hub: kept
    /// so staff see it and register the device, never guessed into some bin or station.
    UnknownDevice,
}

/// The `type` the field doors give a LoRaWAN uplink of a device no register knows, sent
/// as it came (with its DevEUI in `devEui`) so that ingest keeps it as a dead letter
/// ([`Reason::UnknownDevice`]).
pub const UNREGISTERED_UPLINK: &str = "UnregisteredDeviceUplink";

impl Reason {
    /// Every reason, in a stable order (metrics are exported for each, from start).
    pub const ALL: [Reason; 10] = [
        Reason::BadJson,
        Reason::Schema,
        Reason::Range,
        Reason::UnknownType,
        Reason::RawIdentifier,
        Reason::Empty,
        Reason::TooLarge,
        Reason::Future,
        Reason::Signature,
        Reason::UnknownDevice,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadJson => "bad_json",
            Reason::Schema => "schema",
            Reason::Range => "range",
            Reason::UnknownType => "unknown_type",
            Reason::RawIdentifier => "raw_identifier",
            Reason::Empty => "empty",
            Reason::TooLarge => "too_large",
            Reason::Future => "future",
            Reason::Signature => "signature",
            Reason::UnknownDevice => "unknown_device",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused message: the reason code and a message an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: Reason,
    pub message: String,
}

impl Rejection {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Rejection {
            reason,
            message: message.into(),
        }
    }
    pub fn schema(message: impl Into<String>) -> Self {
        Self::new(Reason::Schema, message)
    }
    pub fn range(message: impl Into<String>) -> Self {
        Self::new(Reason::Range, message)
    }
    pub fn raw_identifier(message: impl Into<String>) -> Self {
        Self::new(Reason::RawIdentifier, message)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}
