//! One Kafka message → a validated event, or a rejection with a reason code.
//!
//! The order of checks is the contract: emptiness, then size (before any parsing, so a
//! huge message costs nothing), then JSON syntax, then raw identifiers (a MAC-like string
//! anywhere in a sensor event, see [`crate::privacy`]: first, so that no later message
//! quotes one), then the `type` routing, then the attributes' presence and JSON types
//! (serde), then ranges and identifiers, and last the event time against the record's
//! own clock (`future`). The streams only the API writes (citizens, staff, places) check
//! their signature right after the size, before any parsing (`signature`, see
//! [`crate::signing`]), so a forged event costs nothing and never reaches a reader.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use crate::privacy::{bytes_contain_mac, contains_mac};
use crate::signing::EventKey;

use crate::batch::{Lineage, TableBuffer};
use crate::citizen::CitizenEvent;
use crate::contract::{Stream, Table};
use crate::events::beacon::{BeaconSighting, BeaconSightingInput, BeaconSightingWire};
use crate::events::parcel_record::{ParcelRecord, ParcelRecordInput};
use crate::events::site_visit::{SiteVisitInput, SiteVisitRecord};
use crate::events::vehicle::{VehicleInput, VehicleRecord};
use crate::events::waste_container::{WasteContainerInput, WasteContainerRecord};
use crate::events::weather::{WeatherObservedInput, WeatherRecord};
use crate::time::utc_day;

pub use crate::rejection::{Reason, Rejection};

/// Decoding options: the file's `[decode]` section, given to ingest and to the stream
/// stage alike, so both refuse the same messages.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeOptions {
    /// Largest accepted payload in bytes; larger ones are dead-lettered as `too_large`
    /// without being parsed. Default 256 KiB.
    pub max_message_bytes: usize,
    /// How far an event time may be ahead of its Kafka record's timestamp (the producer's
    /// clock when it sent the record). Further ahead, the event is refused as `future`: one
    /// reading dated 2099 would otherwise move its stream's watermark decades ahead and
    /// make every live device look silent. Default 1 hour: gateways batch and their clocks
    /// drift by seconds, not hours. Records without a timestamp are not checked; a producer
    /// replaying or simulating another time (the simulator) stamps records with their event
    /// time. In the file: `max_future_s`.
    #[serde(rename = "max_future_s", with = "crate::units::seconds")]
    pub max_future: Duration,
    /// The key the API signs its events with (derived from the replicas' secret). With
    /// it, every event of a [`Stream::CITIZEN`] stream must carry a valid signature;
    /// without it (unit tests and benchmarks only: the hub always sets it) they are not
    /// checked. Never in the configuration file: it comes from the secret.
    #[serde(skip)]
    pub event_key: Option<EventKey>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_message_bytes: 256 * 1024,
            max_future: Duration::from_secs(3600),
            event_key: None,
        }
    }
}

impl DecodeOptions {
    /// The size limit lets something through and the bound is at least a second.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_message_bytes == 0 {
            return Err("max_message_bytes must be at least 1".into());
        }
        if self.max_future < Duration::from_secs(1) {
            return Err(
                "max_future_s must be at least 1 s (the clocks of a gateway and \
                        a broker never agree to the millisecond)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// A validated event, ready to become one lake row.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    WasteContainer(WasteContainerRecord),
    Vehicle(VehicleRecord),
    Beacon(BeaconSighting),
    SiteVisit(SiteVisitRecord),
    ParcelRecord(ParcelRecord),
    Weather(WeatherRecord),
    /// A citizen or staff event, with the table of its stream.
    Citizen(Box<CitizenEvent>, Table),
}

impl Decoded {
    /// The table this event lands in.
    pub fn table(&self) -> Table {
        match self {
            Decoded::WasteContainer(_) => Table::WasteContainers,
            Decoded::Vehicle(_) => Table::WasteVehicles,
            Decoded::Beacon(_) => Table::BeaconSightings,
            Decoded::SiteVisit(_) => Table::SiteVisits,
            Decoded::ParcelRecord(_) => Table::ParcelRecords,
            Decoded::Weather(_) => Table::WeatherObserved,
            Decoded::Citizen(_, table) => *table,
        }
    }

    /// The event's entity id (for citizen events, the report or idea it is about).
    pub fn id(&self) -> &str {
        match self {
            Decoded::Citizen(e, _) => e.change.entity_id(),
            _ => &self.observation().id,
        }
    }

    /// What the stream stage keeps state by, and so what the event's Kafka record is
    /// keyed by: every event of a zone, a site, a bin or a station then lands in one
    /// partition, and stage members sharing the partitions share the state with them. The
    /// zone of a beacon sighting, the site of a visit, the entity otherwise.
    pub fn state_key(&self) -> &str {
        match self {
            Decoded::Beacon(b) => &b.record.zone,
            Decoded::SiteVisit(v) => &v.site,
            _ => self.id(),
        }
    }

    /// The resolved event time.
    pub fn event_time(&self) -> DateTime<Utc> {
        match self {
            Decoded::Citizen(e, _) => e.date_observed,
            _ => self.observation().date_observed,
        }
    }

    fn observation(&self) -> &crate::events::Observation {
        match self {
            Decoded::Citizen(..) => unreachable!("citizen events have their own record"),
            Decoded::WasteContainer(r) => &r.observation,
            Decoded::Vehicle(r) => &r.observation,
            Decoded::Beacon(b) => &b.record.observation,
            Decoded::SiteVisit(r) => &r.observation,
            Decoded::ParcelRecord(r) => &r.observation,
            Decoded::Weather(r) => &r.observation,
        }
    }

    /// Appends the event as one row of its table's buffer (which must be for
    /// [`Self::table`]).
    pub fn append_to(&self, buffer: &mut TableBuffer, lineage: &Lineage<'_>) -> crate::Result<()> {
        debug_assert_eq!(buffer.table(), self.table());
        let day = utc_day(&self.event_time());
        match self {
            Decoded::WasteContainer(r) => buffer.push(r, day, lineage),
            Decoded::Vehicle(r) => buffer.push(r, day, lineage),
            Decoded::Beacon(b) => buffer.push(&b.record, day, lineage),
            Decoded::SiteVisit(r) => buffer.push(r, day, lineage),
            Decoded::ParcelRecord(r) => buffer.push(r, day, lineage),
            Decoded::Weather(r) => buffer.push(r, day, lineage),
            Decoded::Citizen(e, _) => buffer.push(&e.record(), day, lineage),
        }
    }
}

fn from_value<T: serde::de::DeserializeOwned>(kind: &str, value: Value) -> Result<T, Rejection> {
    serde_json::from_value(value).map_err(|e| Rejection::schema(format!("{kind}: {e}")))
}

/// Decodes and validates one message of `stream` that has no signature header (every
/// sensor stream; an API stream's event is then refused when a key is set).
pub fn decode(
    stream: Stream,
    payload: Option<&[u8]>,
    kafka_timestamp_ms: Option<i64>,
    options: &DecodeOptions,
) -> Result<Decoded, Rejection> {
    decode_signed(stream, payload, None, kafka_timestamp_ms, options)
}

/// Decodes and validates one message of `stream`, with its [`crate::signing::SIGNATURE_HEADER`]
/// value if it has one.
pub fn decode_signed(
    stream: Stream,
    payload: Option<&[u8]>,
    signature: Option<&[u8]>,
    kafka_timestamp_ms: Option<i64>,
    options: &DecodeOptions,
) -> Result<Decoded, Rejection> {
    decode_by(
        Path::Fastest,
        stream,
        payload,
        signature,
        kafka_timestamp_ms,
        options,
    )
}

/// Which decoding path a message may take.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub enum Path {
    /// The fast path of its stream when it fits, else the general one.
    Fastest,
    /// Every message parsed to a JSON tree first: for tests holding the fast paths to
    /// it (the contract's fuzz test); the hub never needs it.
    General,
}

/// [`decode_signed`] by the path given.
#[doc(hidden)]
pub fn decode_by(
    path: Path,
    stream: Stream,
    payload: Option<&[u8]>,
    signature: Option<&[u8]>,
    kafka_timestamp_ms: Option<i64>,
    options: &DecodeOptions,
) -> Result<Decoded, Rejection> {
    let payload = payload.unwrap_or_default();
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err(Rejection::new(Reason::Empty, "the message has no payload"));
    }
    if payload.len() > options.max_message_bytes {
        return Err(Rejection::new(
            Reason::TooLarge,
            format!(
                "payload of {} bytes exceeds the limit of {} bytes",
                payload.len(),
                options.max_message_bytes
            ),
        ));
    }
    if let Some(key) = &options.event_key
        && Stream::CITIZEN.contains(&stream)
    {
        key.verify(stream, payload, signature)?;
    }
    let fast = match path {
        Path::Fastest => decode_fast(stream, payload, kafka_timestamp_ms),
        Path::General => None,
    };
    let decoded = match fast {
        Some(decoded) => decoded,
        None => decode_general(stream, payload, kafka_timestamp_ms)?,
    };
    refuse_future(&decoded, kafka_timestamp_ms, options.max_future)?;
    Ok(decoded)
}

/// Refuses an event dated further ahead of its record's timestamp than `max_future`.
fn refuse_future(
    decoded: &Decoded,
    kafka_timestamp_ms: Option<i64>,
    max_future: Duration,
) -> Result<(), Rejection> {
    let Some(sent) = kafka_timestamp_ms.and_then(DateTime::<Utc>::from_timestamp_millis) else {
        return Ok(());
    };
    let bound = TimeDelta::from_std(max_future).unwrap_or(TimeDelta::MAX);
    let Some(limit) = sent.checked_add_signed(bound) else {
        return Ok(());
    };
    let event_time = decoded.event_time();
    if event_time <= limit {
        return Ok(());
    }
    let ahead = event_time - sent;
    Err(Rejection::new(
        Reason::Future,
        format!(
            "event time {} is {} min ahead of the record's timestamp {} (at most {} min allowed): \
             a device or gateway clock is wrong",
            event_time.to_rfc3339(),
            ahead.num_minutes(),
            sent.to_rfc3339(),
            bound.num_minutes()
        ),
    ))
}

/// The fast paths of the sensor streams, for valid events; `None`: anything else,
/// refusals included, for the general path, which gives the same result for every message
/// these take (the contract's fuzz test holds them to it) and words every refusal.
fn decode_fast(stream: Stream, payload: &[u8], kafka_timestamp_ms: Option<i64>) -> Option<Decoded> {
    // serde also reads a struct from a JSON array: only objects may take these paths.
    if payload.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    match stream {
        Stream::Beacons => decode_beacon_fast(payload, kafka_timestamp_ms),
        s if Stream::SENSORS.contains(&s) => decode_sensor_direct(s, payload, kafka_timestamp_ms),
        _ => None,
    }
}

/// The busiest stream: a beacon sighting with exactly its contract's attributes and no
/// MAC-like string, decoded in one pass (see [`BeaconSightingWire`]).
fn decode_beacon_fast(payload: &[u8], kafka_timestamp_ms: Option<i64>) -> Option<Decoded> {
    let wire: BeaconSightingWire = serde_json::from_slice(payload).ok()?;
    if wire.kind != "BeaconSighting" {
        return None;
    }
    wire.validate_clean(kafka_timestamp_ms).map(Decoded::Beacon)
}

/// The other sensor streams: an event read straight into its input struct, without the
/// JSON tree the general path builds first (the tree was most of their decoding: every
/// string and attribute allocated twice).
///
/// The general path refuses a MAC-like string in any value or name, however deep, which
/// needs the tree. Here the payload's text as a whole is checked instead, and only a
/// payload without escapes may come: each of its strings is then a run of the text's own
/// bytes between quotes, which end a run of hex digits and separators exactly as the
/// start and end of a lone string do, so a MAC-like string anywhere makes the text
/// MAC-like. The converse fails (a number may look like one): such a payload takes the
/// general path, which decides.
fn decode_sensor_direct(
    stream: Stream,
    payload: &[u8],
    kafka_timestamp_ms: Option<i64>,
) -> Option<Decoded> {
    if payload.contains(&b'\\') || bytes_contain_mac(payload) {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "type", borrow)]
        kind: &'a str,
    }
    let Kind { kind } = serde_json::from_slice(payload).ok()?;
    let (_, table) = stream.routes().iter().find(|(name, _)| *name == kind)?;
    fn read<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Option<T> {
        serde_json::from_slice(payload).ok()
    }
    let ts = kafka_timestamp_ms;
    Some(match table {
        Table::WasteContainers => {
            Decoded::WasteContainer(read::<WasteContainerInput>(payload)?.validate(ts).ok()?)
        }
        Table::WasteVehicles => Decoded::Vehicle(read::<VehicleInput>(payload)?.validate(ts).ok()?),
        Table::SiteVisits => {
            Decoded::SiteVisit(read::<SiteVisitInput>(payload)?.validate(ts).ok()?)
        }
        Table::ParcelRecords => {
            Decoded::ParcelRecord(read::<ParcelRecordInput>(payload)?.validate(ts).ok()?)
        }
        Table::WeatherObserved => {
            Decoded::Weather(read::<WeatherObservedInput>(payload)?.validate(ts).ok()?)
        }
        _ => return None,
    })
}

/// Whether a JSON value holds a MAC-like string, in a value or a name, however deep.
fn has_mac(value: &Value) -> bool {
    match value {
        Value::String(s) => contains_mac(s),
        Value::Array(items) => items.iter().any(has_mac),
        Value::Object(map) => map.iter().any(|(k, v)| contains_mac(k) || has_mac(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// The refusal of a sensor event whose top-level attributes `names` hold a MAC-like
/// string (`None` when there is none). The names are sorted, so both decoding paths word
/// it alike; a name that is itself MAC-like is not repeated.
fn mac_refusal(names: impl Iterator<Item = String>) -> Option<Rejection> {
    let mut names: Vec<String> = names
        .map(|n| {
            if contains_mac(&n) {
                "an attribute name".to_string()
            } else {
                n
            }
        })
        .collect();
    if names.is_empty() {
        return None;
    }
    names.sort();
    names.dedup();
    Some(Rejection::raw_identifier(format!(
        "MAC-like identifier in {}: devices must send a salted pseudonym, never a MAC address",
        names.join(", ")
    )))
}

/// The refusal of a sensor event holding a MAC-like string anywhere.
fn refuse_macs(value: &Value) -> Result<(), Rejection> {
    let refusal = match value {
        Value::Object(map) => mac_refusal(
            map.iter()
                .filter(|(k, v)| contains_mac(k) || has_mac(v))
                .map(|(k, _)| k.clone()),
        ),
        other => mac_refusal(
            has_mac(other)
                .then(|| "the payload".to_string())
                .into_iter(),
        ),
    };
    refusal.map_or(Ok(()), Err)
}

/// Every message: parsed to a JSON tree, routed by its `type`, then read and checked.
fn decode_general(
    stream: Stream,
    payload: &[u8],
    kafka_timestamp_ms: Option<i64>,
) -> Result<Decoded, Rejection> {
    let value: Value = serde_json::from_slice(payload)
        .map_err(|e| Rejection::new(Reason::BadJson, format!("not valid JSON: {e}")))?;
    // Citizens' texts are written by people through the API, which replays these topics
    // with its own parser: refusing them here would part the lake from its view.
    if Stream::SENSORS.contains(&stream) {
        refuse_macs(&value)?;
    }
    let Value::Object(object) = &value else {
        return Err(Rejection::schema("an event must be a JSON object"));
    };
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        Some(other) => {
            return Err(Rejection::schema(format!(
                "type must be a string, got {other}"
            )));
        }
        None => return Err(Rejection::schema("missing field `type`")),
    };
    if kind == crate::rejection::UNREGISTERED_UPLINK && Stream::SENSORS.contains(&stream) {
        let dev_eui = object.get("devEui").and_then(Value::as_str).unwrap_or("?");
        return Err(Rejection::new(
            Reason::UnknownDevice,
            format!(
                "an uplink of device {dev_eui:?}, which no register holds: register it \
                 (registerDevice, importDevices or [[api.devices]]) and have the network \
                 server send it again"
            ),
        ));
    }
    let Some((_, table)) = stream.routes().iter().find(|(name, _)| *name == kind) else {
        let accepted: Vec<&str> = stream.routes().iter().map(|(n, _)| *n).collect();
        return Err(Rejection::new(
            Reason::UnknownType,
            format!("type {kind:?} is not carried by the {stream} stream (accepted: {accepted:?})"),
        ));
    };
    let ts = kafka_timestamp_ms;
    Ok(match table {
        Table::WasteContainers => {
            Decoded::WasteContainer(from_value::<WasteContainerInput>(&kind, value)?.validate(ts)?)
        }
        Table::WasteVehicles => {
            Decoded::Vehicle(from_value::<VehicleInput>(&kind, value)?.validate(ts)?)
        }
        Table::BeaconSightings => {
            Decoded::Beacon(from_value::<BeaconSightingInput>(&kind, value)?.validate(ts)?)
        }
        Table::SiteVisits => {
            Decoded::SiteVisit(from_value::<SiteVisitInput>(&kind, value)?.validate(ts)?)
        }
        Table::ParcelRecords => {
            Decoded::ParcelRecord(from_value::<ParcelRecordInput>(&kind, value)?.validate(ts)?)
        }
        Table::WeatherObserved => {
            Decoded::Weather(from_value::<WeatherObservedInput>(&kind, value)?.validate(ts)?)
        }
        Table::CitizenReports
        | Table::CitizenIdeas
        | Table::StaffAudit
        | Table::ReferencePlaces => Decoded::Citizen(Box::new(CitizenEvent::parse(value)?), *table),
        Table::DeadLetters => unreachable!("no stream routes a type to dead_letters"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-28T12:00:00Z, when [`SIGHTING`] was sent.
    const SENT: i64 = 1_795_867_200_000;

    const SIGHTING: &str = r#"{"id":"urn:ngsi-ld:BeaconSighting:gw1-000042","type":"BeaconSighting","dateObserved":"2026-11-28T12:00:00Z","zone":"za-la-tour","deviceToken":"9F86D081884C7D659A2FEAA0C55AD015","saltEpoch":"2026-11-28","rssi":-71}"#;

    #[test]
    fn the_fast_path_agrees_with_the_general_one_on_every_sighting() {
        let swap = |from: &str, to: &str| {
            assert!(SIGHTING.contains(from), "{from}");
            SIGHTING.replacen(from, to, 1)
        };
        // MAC-like strings, wherever they are and however spelled: refused, and never by
        // the fast path.
        let macs = [
            swap(
                r#""rssi":-71"#,
                r#""rssi":-71,"seen":{"mac":"a4:5e:60:e8:1b:2c"}"#,
            ),
            swap("9F86D081884C7D659A2FEAA0C55AD015", "a4:5e:60:e8:1b:2c"),
            swap("urn:ngsi-ld:BeaconSighting:gw1-000042", "a45e60e81b2c"),
            swap("gw1-000042", "a4:5e:60:e8:1b:2c"),
            swap("gw1-000042", "a45e.60e8.1b2c"),
            swap("gw1-000042", r"a4:5e:60:e8:1b:2\u0063"),
            swap("gw1-000042", r"\u0061\u0034:5e:60:e8:1b:2c"),
            swap("gw1-000042", r"a\u00004:5e:60:e8:1b:2c"),
            swap("gw1-000042", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
            swap("za-la-tour", "A4-5E-60-E8-1B-2C"),
            swap("2026-11-28T12:00:00Z", "a4:5e:60:e8:1b:2c"),
            // A valid time whose fraction is a MAC's twelve digits.
            swap(
                "2026-11-28T12:00:00Z",
                "2026-11-28T12:00:00.001122334455+01:00",
            ),
            // A time that is not the event time (dateObserved is) is checked all the same.
            swap(r#""zone""#, r#""TimeInstant":"a4:5e:60:e8:1b:2c","zone""#),
            swap(
                r#""saltEpoch":"2026-11-28""#,
                r#""saltEpoch":"a45e60e81b2c""#,
            ),
            swap(r#""type":"BeaconSighting""#, r#""type":"a45e60e81b2c""#),
            swap("9F86D081884C7D659A2FEAA0C55AD015", "a45e60e81b2c")
                .replace("za-la-tour", "a4:5e:60:e8:1b:2c"),
            swap(r#""rssi":-71"#, r#""rssi":-71,"a4:5e:60:e8:1b:2c":1"#),
            swap(
                r#""rssi":-71"#,
                r#""rssi":-71,"seen":["x",{"m":"a45e60e81b2c"}]"#,
            ),
            r#"["a4:5e:60:e8:1b:2c"]"#.to_string(),
        ];
        // (payload, whether it has the shape the fast path reads: it takes those that
        // are valid)
        let cases = [
            (SIGHTING.to_string(), true),
            (format!("  \n{SIGHTING}"), true),
            (swap(r#""rssi":-71"#, r#""rssi":-71.5"#), true),
            (swap(r#""rssi":-71"#, r#""rssi":-171"#), true),
            (swap(r#""rssi":-71"#, r#""rssi":"-71""#), false),
            (swap(r#""zone":"za-la-tour""#, r#""zone":"  ""#), true),
            (swap(r#""zone":"za-la-tour""#, r#""zone":"za\u002dla-tour""#), false),
            (swap(r#""zone":"za-la-tour","#, ""), false),
            (swap(r#""rssi":-71"#, r#""rssi":-71,"zone":"za-autre""#), false),
            (swap(r#""rssi":-71"#, r#""rssi":-71,"floor":2"#), false),
            (swap("9F86D081884C7D659A2FEAA0C55AD015", "9f86d0"), true),
            (swap("urn:ngsi-ld:BeaconSighting:gw1-000042", " "), true),
            (swap("gw1-000042", "4d3f9a2e-1b2c-4d5e-8f90-a45e60e81b2c"), true),
            (swap(r#""saltEpoch":"2026-11-28""#, r#""saltEpoch":"2026-13-01""#), true),
            (swap(r#""saltEpoch":"2026-11-28""#, r#""saltEpoch":"2026-11-28T00""#), true),
            (swap(r#""dateObserved""#, r#""TimeInstant""#), true),
            (swap(r#""dateObserved":"2026-11-28T12:00:00Z","#, ""), true),
            (swap(r#""2026-11-28T12:00:00Z""#, "null"), true),
            (swap(r#""2026-11-28T12:00:00Z""#, r#""2026-11-28 12:00""#), true),
            (swap("2026-11-28T12:00:00Z", "2026-11-28T12:00:00.250Z"), true),
            (swap("2026-11-28T12:00:00Z", "2026-11-28T13:00:00.123456789+01:00"), true),
            (swap(r#""type":"BeaconSighting""#, r#""type":"WasteContainer""#), false),
            (swap(r#""type":"BeaconSighting","#, ""), false),
            (format!("[{SIGHTING}]"), false),
            (r#"["x","BeaconSighting",null,null,"z","9f86d081884c7d659a2feaa0c55ad015","2026-11-28",-71]"#.to_string(), false),
            ("{".to_string(), false),
        ];
        let options = DecodeOptions::default();
        let mut taken = 0;
        for payload in &macs {
            let refused = decode(Stream::Beacons, Some(payload.as_bytes()), None, &options);
            assert_eq!(
                refused.unwrap_err().reason,
                Reason::RawIdentifier,
                "{payload}"
            );
        }
        let macs = macs.iter().map(|payload| (payload.clone(), true));
        for (payload, shape) in macs.chain(cases) {
            let bytes = payload.as_bytes();
            // Within the bound of the record's timestamp, and two hours behind the event.
            for kafka in [None, Some(SENT), Some(SENT - 2 * 3_600_000)] {
                let fast = decode_fast(Stream::Beacons, bytes, kafka);
                let general = decode_general(Stream::Beacons, bytes, kafka);
                assert_eq!(fast.is_some(), shape && general.is_ok(), "{payload}");
                if let Some(fast) = fast {
                    assert_eq!(Ok(fast), general, "{payload}");
                    taken += 1;
                }
            }
        }
        assert!(
            taken >= 20,
            "the fast path took {taken} of the valid sightings"
        );
        // The other streams never take it.
        assert!(decode_fast(Stream::Tourism, SIGHTING.as_bytes(), None).is_none());
    }

    #[test]
    fn an_event_too_far_ahead_of_its_record_is_refused_on_both_paths() {
        let options = DecodeOptions::default();
        let general = SIGHTING.replace(r#""rssi":-71"#, r#""rssi":-71,"floor":2"#);
        for payload in [SIGHTING, &general] {
            let at = |sent| decode(Stream::Beacons, Some(payload.as_bytes()), sent, &options);
            assert!(at(None).is_ok());
            assert!(at(Some(SENT)).is_ok());
            // An hour ahead is within the bound; a minute more is not.
            assert!(at(Some(SENT - 3_600_000)).is_ok());
            let refused = at(Some(SENT - 3_660_000)).unwrap_err();
            assert_eq!(refused.reason, Reason::Future, "{refused}");
            assert!(refused.message.contains("61 min ahead"), "{refused}");
            // Dated 2099 and sent today.
            let far = payload.replace("2026-11-28T12", "2099-11-28T12");
            let refused = decode(Stream::Beacons, Some(far.as_bytes()), Some(SENT), &options);
            assert_eq!(refused.unwrap_err().reason, Reason::Future);
        }
        // The bound is an option; an absurd record time or bound checks nothing.
        let tight = DecodeOptions {
            max_future: Duration::from_secs(60),
            ..DecodeOptions::default()
        };
        let sent = Some(SENT - 120_000);
        let refused = decode(Stream::Beacons, Some(SIGHTING.as_bytes()), sent, &tight);
        assert_eq!(refused.unwrap_err().reason, Reason::Future);
        let lax = DecodeOptions {
            max_future: Duration::MAX,
            ..DecodeOptions::default()
        };
        assert!(decode(Stream::Beacons, Some(SIGHTING.as_bytes()), Some(0), &lax).is_ok());
        assert!(
            decode(
                Stream::Beacons,
                Some(SIGHTING.as_bytes()),
                Some(i64::MAX),
                &options
            )
            .is_ok()
        );
        // Without a time of its own, an event takes the record's: never ahead.
        let bare = SIGHTING.replace(r#""dateObserved":"2026-11-28T12:00:00Z","#, "");
        assert!(decode(Stream::Beacons, Some(bare.as_bytes()), Some(SENT), &options).is_ok());
    }

    #[test]
    fn the_api_streams_take_only_events_the_replicas_signed() {
        use crate::citizen::{CitizenChange, CitizenEvent, ReportStatus};
        use crate::signing::EventKey;
        let key = EventKey::derive(b"secret");
        let options = DecodeOptions {
            event_key: Some(key.clone()),
            ..DecodeOptions::default()
        };
        let event = CitizenEvent::new(
            "staff:agent-gignac",
            CitizenChange::ReportStatusChanged {
                report_id: "r1".into(),
                status: ReportStatus::Closed,
                substatus: None,
                status_notes: None,
            },
        )
        .to_json();
        let stream = Stream::CitizenReports;
        let signed = key.sign(stream, &event);
        let decoded = decode_signed(
            stream,
            Some(&event),
            Some(signed.as_bytes()),
            None,
            &options,
        );
        assert!(matches!(decoded, Ok(Decoded::Citizen(..))), "{decoded:?}");
        for unsigned in [
            decode(stream, Some(&event), None, &options),
            decode_signed(stream, Some(&event), Some(b"00"), None, &options),
            decode_signed(
                Stream::StaffAudit,
                Some(&event),
                Some(signed.as_bytes()),
                None,
                &options,
            ),
        ] {
            assert_eq!(unsigned.unwrap_err().reason, Reason::Signature);
        }
        // Devices do not sign: the sensor streams are not checked.
        assert!(decode(Stream::Beacons, Some(SIGHTING.as_bytes()), None, &options).is_ok());
    }

    #[test]
    fn an_uplink_of_an_unregistered_device_is_kept_with_its_deveui() {
        let uplink = serde_json::json!({"type": crate::rejection::UNREGISTERED_UPLINK,
            "devEui": "A84041000181C61E", "networkServer": "chirpstack",
            "uplink": {"fCnt": 12, "data": "ASxX"}})
        .to_string();
        let options = DecodeOptions::default();
        for stream in Stream::SENSORS {
            let refused = decode(stream, Some(uplink.as_bytes()), None, &options).unwrap_err();
            assert_eq!(refused.reason, Reason::UnknownDevice, "{stream}");
            assert!(refused.message.contains("A84041000181C61E"), "{refused:?}");
        }
        // Only the field doors' streams know it: elsewhere it is a type out of place.
        let refused = decode(
            Stream::CitizenReports,
            Some(uplink.as_bytes()),
            None,
            &options,
        );
        assert_ne!(refused.unwrap_err().reason, Reason::UnknownDevice);
    }

    #[test]
    fn the_direct_path_takes_valid_events_of_every_other_sensor_stream_and_nothing_doubtful() {
        let point = r#"{"type":"Point","coordinates":[3.5512,43.6521]}"#;
        let valid = [
            (
                Stream::WasteContainers,
                format!(
                    r#"{{"id":"urn:ngsi-ld:WasteContainer:gignac-0001","type":"WasteContainer","dateObserved":"2026-11-28T10:15:00+01:00","fillingLevel":0.83,"storedWasteKind":["plastic","glass"],"status":"ok","address":{{"addressLocality":"Gignac","streetAddress":"1 rue"}},"colour":"green","location":{point}}}"#
                ),
            ),
            (
                Stream::WasteVehicles,
                format!(
                    r#"{{"id":"truck-2","type":"Vehicle","dateObserved":"2026-11-28T10:00:00Z","vehicleType":"lorry","serviceProvided":["garbageCollection"],"serviceStatus":"onRoute","speed":32.0,"heading":90,"location":{point}}}"#
                ),
            ),
            (
                Stream::Tourism,
                format!(
                    r#"{{"id":"v1","type":"SiteVisit","dateObserved":"2026-07-14T10:00:00+02:00","site":"abbaye-de-gellone","locationCode":"34261","source":"ar-trail","count":3,"arPoint":"cloitre","location":{point}}}"#
                ),
            ),
            (
                Stream::Vineyards,
                r#"{"id":"p1","type":"AgriParcelRecord","dateObserved":"2026-04-10T05:00:00Z","hasAgriParcel":"urn:ngsi-ld:AgriParcel:aniane-12","soilMoistureVwc":0.21,"leafWetness":0.9}"#.to_string(),
            ),
            (
                Stream::Vineyards,
                r#"{"id":"w1","type":"WeatherObserved","dateObserved":"2026-04-10T05:00:00Z","temperature":0.4,"precipitation":0,"relativeHumidity":0.9,"refParcels":["p1","p2"]}"#.to_string(),
            ),
        ];
        for (stream, payload) in &valid {
            let general = decode_general(*stream, payload.as_bytes(), Some(SENT));
            assert!(general.is_ok(), "{payload}: {general:?}");
            let direct = decode_fast(*stream, payload.as_bytes(), Some(SENT));
            assert_eq!(direct.map(Ok), Some(general), "{payload}");
        }
        // What the text alone cannot clear goes the general way, which decides: escapes, a
        // MAC-like string in a value or a name (or a number looking like one), another
        // stream's type, a duplicated attribute.
        let (stream, payload) = (valid[0].0, &valid[0].1);
        let doubtful = [
            payload.replace("Gignac", r"Gign\u0061c"),
            payload.replace(r#""ok""#, r#""a4:5e:60:e8:1b:2c""#),
            payload.replace(r#""colour""#, r#""a45e60e81b2c""#),
            payload.replace("0.83", "0.83,\"n\":112233445566"),
            payload.replace(r#""WasteContainer","#, r#""Vehicle","#),
            payload.replace(r#""status":"ok""#, r#""status":"ok","status":"moved""#),
        ];
        for doubtful in doubtful {
            assert_ne!(&doubtful, payload);
            assert_eq!(
                decode_fast(stream, doubtful.as_bytes(), Some(SENT)),
                None,
                "{doubtful}"
            );
        }
    }
}
