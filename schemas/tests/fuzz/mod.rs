//! Property test of every decoder: generated messages through `decode` for every stream,
//! zero panics, every input accounted for (a row of its table or a dead letter), and no
//! MAC-like string in anything that would be stored.
//!
//! Seeded, so a failure replays: `VALLEE_FUZZ_SEED` (default 14) and `VALLEE_FUZZ_CASES`
//! (default 200 000, about 40 s in a debug build; the issue's million:
//! `VALLEE_FUZZ_CASES=1000000 cargo test -p vallee-schemas --test contract fuzz -- --nocapture`).
//!
//! Inputs start from a valid event of each stream (the official Smart Data Models examples
//! among them) and are broken the ways gateways and attackers break them: random bytes,
//! byte flips, truncations, attributes swapped, removed or given huge numbers, deep
//! nesting, JSON unicode escapes, MAC addresses in every spelling in random places
//! (values, names, nested, escaped, NUL-padded), UTF-16 and invalid UTF-8, empty and
//! oversized payloads, the wrong topic, and record timestamps before the event.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::LazyLock;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::DataType;
use base64::Engine as _;
use chrono::Utc;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use regex::bytes::Regex;
use serde_json::{Value, json};
use vallee_schemas::batch::{Lineage, TableBuffer};
use vallee_schemas::citizen::{CitizenChange, CitizenEvent};
use vallee_schemas::contract::{Stream, Table};
use vallee_schemas::dead_letter::{DeadLetterRecord, Source};
use vallee_schemas::decode::{DecodeOptions, Decoded, Path, Reason, decode_by, decode_signed};
use vallee_schemas::privacy::{contains_mac, raw_contains_mac};
use vallee_schemas::signing::EventKey;

/// 2026-11-28T12:00:00Z: after every seed's event time.
const SENT: i64 = 1_795_867_200_000;
const TOKEN: &str = "9f86d081884c7d659a2feaa0c55ad015";

/// A simple MAC pattern, written independently of `privacy`: six hex pairs with optional
/// separators, read after dropping NULs and decoding JSON escapes. In a beacon dead letter,
/// where every long hex run is redacted, it must never match.
static SIMPLE_MAC: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)[0-9a-f]{2}(?:[:.\-]?[0-9a-f]{2}){5}").unwrap());
static ESCAPE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\\(?:u([0-9a-fA-F]{4})|(.))").unwrap());

fn simple_mac(bytes: &[u8]) -> bool {
    let no_nul: Vec<u8> = bytes.iter().copied().filter(|&b| b != 0).collect();
    let decoded = ESCAPE.replace_all(&no_nul, |c: &regex::bytes::Captures<'_>| {
        match (c.get(1), c.get(2)) {
            (Some(code), _) => {
                let code = u32::from_str_radix(std::str::from_utf8(code.as_bytes()).unwrap(), 16);
                match code.unwrap() {
                    0 => vec![],
                    c @ 1..0x80 => vec![c as u8],
                    _ => vec![b'?'],
                }
            }
            (_, Some(c)) if matches!(c.as_bytes(), b"/" | b"\\" | b"\"") => c.as_bytes().to_vec(),
            _ => vec![b' '],
        }
    });
    SIMPLE_MAC.is_match(&decoded)
}

fn seeds() -> Vec<(Stream, Value)> {
    let fixture = |name: &str| -> Value {
        let path = format!(
            "{}/tests/fixtures/sdm/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let citizen = |change: CitizenChange| -> Value {
        let mut e = CitizenEvent::new("anonymous", change);
        // Fixed, so that a seed replays the same inputs.
        e.id = "0b5c2a4e-93f1-4c6d-8e2a-7f1d3b9c6a50".into();
        e.date_observed = "2026-11-28T11:00:00Z".parse().unwrap();
        serde_json::from_slice(&e.to_json()).unwrap()
    };
    let point = json!({"type": "Point", "coordinates": [3.5512, 43.6521]});
    vec![
        (
            Stream::WasteContainers,
            json!({"id": "urn:ngsi-ld:WasteContainer:gignac-0001", "type": "WasteContainer",
                "dateObserved": "2026-11-28T10:15:00+01:00", "fillingLevel": 0.83,
                "binFullnessThreshold": 0.8, "storedWasteKind": ["plastic"], "status": "ok",
                "temperature": 12.5, "dateLastEmptying": "2026-11-27T06:00:00Z",
                "location": point, "address": {"addressLocality": "Gignac"}}),
        ),
        (Stream::WasteContainers, fixture("WasteContainer")),
        (
            Stream::Vineyards,
            json!({"type": vallee_schemas::rejection::UNREGISTERED_UPLINK,
                "devEui": "A84041000181C61E", "networkServer": "ttn",
                "uplink": {"f_cnt": 7, "frm_payload": "gkHe"}}),
        ),
        (
            Stream::WasteVehicles,
            json!({"id": "truck-2", "type": "Vehicle", "dateObserved": "2026-11-28T10:00:00Z",
                "vehicleType": "lorry", "serviceProvided": ["garbageCollection"],
                "serviceStatus": "onRoute", "speed": 32.0, "heading": 90.0,
                "cargoWeight": 5400.0, "location": point}),
        ),
        (Stream::WasteVehicles, fixture("Vehicle")),
        (
            Stream::Beacons,
            json!({"id": "urn:ngsi-ld:BeaconSighting:gw1-000042", "type": "BeaconSighting",
                "dateObserved": "2026-11-28T12:00:00Z", "zone": "za-la-tour",
                "deviceToken": TOKEN, "saltEpoch": "2026-11-28", "rssi": -71}),
        ),
        (
            Stream::Tourism,
            json!({"id": "v1", "type": "SiteVisit", "dateObserved": "2026-07-14T10:00:00+02:00",
                "site": "abbaye-de-gellone", "locationCode": "34261", "source": "ar-trail",
                "count": 3, "arPoint": "cloitre", "nationality": "FR", "location": point}),
        ),
        (
            Stream::Vineyards,
            json!({"id": "p1", "type": "AgriParcelRecord", "dateObserved": "2026-04-10T05:00:00Z",
                "hasAgriParcel": "urn:ngsi-ld:AgriParcel:aniane-12", "soilMoistureVwc": 0.21,
                "soilTemperature": 9.5, "leafWetness": 0.9, "relativeHumidity": 0.95}),
        ),
        (Stream::Vineyards, fixture("AgriParcelRecord")),
        (
            Stream::Vineyards,
            json!({"id": "w1", "type": "WeatherObserved", "dateObserved": "2026-04-10T05:00:00Z",
                "temperature": 0.4, "precipitation": 0, "relativeHumidity": 0.9,
                "windSpeed": 1.2, "dewPoint": -1.0, "refParcels": ["p1", "p2"],
                "location": {"type": "Point", "coordinates": [3.59, 43.68]}}),
        ),
        (Stream::Vineyards, fixture("WeatherObserved")),
        (
            Stream::CitizenReports,
            citizen(CitizenChange::ReportFollowed {
                report_id: "r-1".into(),
                follower: "f".into(),
            }),
        ),
        (
            Stream::CitizenIdeas,
            citizen(CitizenChange::IdeaCommented {
                idea_id: "i-1".into(),
                comment_id: "c-1".into(),
                body: "Oui".into(),
                author: "p".into(),
            }),
        ),
        (
            Stream::StaffAudit,
            citizen(CitizenChange::StaffAction {
                action: "answerIdea".into(),
                target: "i-1".into(),
                scope: "intercommunality".into(),
                detail: None,
            }),
        ),
        (
            Stream::ReferencePlaces,
            citizen(CitizenChange::ChildcareVacanciesUpdated {
                place_id: "creche-1".into(),
                vacancies: 3,
            }),
        ),
    ]
}

/// A MAC address in one of its spellings (as text: some spellings escape characters or
/// pad them with NULs, which only mean something inside JSON).
fn mac(rng: &mut StdRng, json_text: bool) -> String {
    let octets: [u8; 6] = rng.random();
    let hex: Vec<String> = octets.iter().map(|o| format!("{o:02x}")).collect();
    let pairs = |sep: &str| hex.join(sep);
    let mut text = match rng.random_range(0..7) {
        0 => pairs(":"),
        1 => pairs("-").to_uppercase(),
        2 => pairs("."),
        3 => format!(
            "{}{}.{}{}.{}{}",
            hex[0], hex[1], hex[2], hex[3], hex[4], hex[5]
        ),
        4 => format!(
            "{}{}{}-{}{}{}",
            hex[0], hex[1], hex[2], hex[3], hex[4], hex[5]
        ),
        5 => hex.concat(),
        _ => pairs(":").to_uppercase(),
    };
    if json_text && rng.random_bool(0.3) {
        // Spelled with escapes, or padded with NULs.
        let nul = rng.random_bool(0.3);
        text = text
            .chars()
            .map(|c| match (nul, rng.random_bool(0.4)) {
                (true, _) => format!("{c}\\u0000"),
                (false, true) => format!("\\u{:04x}", c as u32),
                (false, false) => c.to_string(),
            })
            .collect();
    }
    text
}

/// A value that breaks assumptions.
fn odd_value(rng: &mut StdRng) -> Value {
    match rng.random_range(0..16) {
        0 => json!(1e308),
        1 => json!(-1e308),
        2 => json!(i64::MAX),
        3 => json!(i64::MIN),
        4 => json!(u64::MAX),
        5 => json!(0),
        6 => json!(-1),
        7 => json!(rng.random_range(-1e6..1e6)),
        8 => json!(""),
        9 => json!("x".repeat(rng.random_range(0..2000))),
        10 => Value::Null,
        11 => json!(true),
        12 => json!([]),
        13 => json!({}),
        14 => json!("2099-01-01T00:00:00Z"),
        _ => {
            let depth = rng.random_range(1..200);
            (0..depth).fold(json!(1), |v, _| json!([v]))
        }
    }
}

/// Every string slot of a JSON tree, as a path of keys and indexes.
fn string_paths(value: &Value, path: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    match value {
        Value::String(_) => out.push(path.clone()),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(json!(i));
                string_paths(item, path, out);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                path.push(json!(k));
                string_paths(v, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn at_path<'a>(value: &'a mut Value, path: &[Value]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |v, step| match step {
        Value::String(k) => v.get_mut(k.as_str()),
        Value::Number(i) => v.get_mut(i.as_u64()? as usize),
        _ => None,
    })
}

/// Escapes random characters inside the JSON strings of `text` as `\u00XX`.
fn escape_randomly(rng: &mut StdRng, text: &str) -> String {
    let (mut out, mut in_string, mut escaped) = (String::new(), false, false);
    for c in text.chars() {
        if in_string && !escaped && c != '"' && c != '\\' && c.is_ascii() && rng.random_bool(0.2) {
            out.push_str(&format!("\\u{:04x}", c as u32));
            continue;
        }
        match (c, escaped) {
            ('"', false) => in_string = !in_string,
            ('\\', false) => {
                escaped = true;
                out.push(c);
                continue;
            }
            _ => {}
        }
        escaped = false;
        out.push(c);
    }
    out
}

/// One generated message of `stream`.
fn payload(rng: &mut StdRng, seed: &Value) -> Vec<u8> {
    let text = seed.to_string();
    match rng.random_range(0..100) {
        0..5 => text.into_bytes(),
        5..15 => {
            let n = rng.random_range(0..300);
            let mut bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            if rng.random_bool(0.5) {
                bytes.insert(0, b'{');
            }
            bytes
        }
        15..30 => {
            let mut bytes = text.into_bytes();
            for _ in 0..rng.random_range(1..8) {
                let i = rng.random_range(0..bytes.len());
                bytes[i] = if rng.random_bool(0.5) {
                    *b"\"{}[],:\\0-.ae\x00\xff".choose(rng).unwrap()
                } else {
                    rng.random()
                };
            }
            bytes
        }
        30..38 => {
            let mut bytes = text.into_bytes();
            bytes.truncate(rng.random_range(0..bytes.len()));
            bytes
        }
        38..63 => {
            let mut value = seed.clone();
            if let Value::Object(map) = &mut value {
                let keys: Vec<String> = map.keys().cloned().collect();
                let key = keys.choose(rng).unwrap().clone();
                match rng.random_range(0..4) {
                    0 => {
                        map.remove(&key);
                    }
                    1 => {
                        let other = keys.choose(rng).unwrap().clone();
                        let (a, b) = (map[&key].clone(), map[&other].clone());
                        map.insert(key, b);
                        map.insert(other, a);
                    }
                    2 => {
                        map.insert(key, odd_value(rng));
                    }
                    _ => {
                        map.insert(format!("x{}", rng.random::<u16>()), odd_value(rng));
                    }
                }
            }
            value.to_string().into_bytes()
        }
        63..78 => with_mac(rng, seed),
        78..82 => {
            let depth = rng.random_range(1..300);
            format!("{}{text}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
        }
        82..90 => escape_randomly(rng, &text).into_bytes(),
        90..95 => {
            let text = if rng.random_bool(0.5) {
                String::from_utf8(with_mac(rng, seed)).unwrap()
            } else {
                text
            };
            match rng.random_range(0..3) {
                0 => text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
                1 => text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
                _ => {
                    let mut bytes = text.into_bytes();
                    let i = rng.random_range(0..bytes.len());
                    bytes.insert(i, *[0xff, 0xc3, 0x80, 0xfe].choose(rng).unwrap());
                    bytes
                }
            }
        }
        // Oversized payloads are few: each costs a 300 KiB dead letter.
        95..96 => match rng.random_range(0..20) {
            0..10 => Vec::new(),
            10..19 => b" \n\t ".to_vec(),
            _ => format!(r#"{{"pad":"{}"}}"#, "x".repeat(300 * 1024)).into_bytes(),
        },
        _ => {
            let mut value = seed.clone();
            value["type"] = json!(
                *[
                    "BeaconSighting",
                    "WasteContainer",
                    "Vehicle",
                    "SiteVisit",
                    "WeatherObserved",
                    "IdeaSupported",
                    "x"
                ]
                .choose(rng)
                .unwrap()
            );
            value.to_string().into_bytes()
        }
    }
}

/// The seed with a MAC somewhere: a string replaced or extended, a new attribute, a name.
fn with_mac(rng: &mut StdRng, seed: &Value) -> Vec<u8> {
    let mut value = seed.clone();
    let mut paths = Vec::new();
    string_paths(&value, &mut Vec::new(), &mut paths);
    // A placeholder, replaced in the text so that escapes stay escapes.
    const SLOT: &str = "MACSLOT";
    let sep = *["", " ", ":", "-", "_", "/"].choose(rng).unwrap();
    match (rng.random_range(0..4), paths.choose(rng)) {
        (0, Some(path)) => *at_path(&mut value, path).unwrap() = json!(SLOT),
        (1, Some(path)) => {
            let slot = at_path(&mut value, path).unwrap();
            let s = slot.as_str().unwrap_or_default().to_string();
            *slot = json!(format!("{s}{sep}{SLOT}"));
        }
        (2, _) => value["seen"] = json!({"list": [1, SLOT]}),
        _ => value[SLOT] = json!(1),
    }
    let mac = mac(rng, true);
    value.to_string().replace(SLOT, &mac).into_bytes()
}

fn strings_of(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                out.extend(map.keys().cloned());
                stack.extend(map.values());
            }
            _ => {}
        }
    }
    out
}

/// Every string a batch would store (the `extra` column's JSON read as JSON: its numbers
/// are numbers, not identifiers).
fn stored_strings(batch: &RecordBatch) -> Vec<String> {
    let mut out = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let strings = match field.data_type() {
            DataType::Utf8 => column.as_string::<i32>().clone(),
            DataType::List(_) => column.as_list::<i32>().values().as_string::<i32>().clone(),
            _ => continue,
        };
        for s in strings.iter().flatten() {
            if field.name() == "extra" {
                out.extend(strings_of(&serde_json::from_str(s).unwrap()));
            } else {
                out.push(s.to_string());
            }
        }
    }
    out
}

/// Tallies and checks of a run.
#[derive(Default)]
struct Tally {
    rows: BTreeMap<Table, u64>,
    refused: BTreeMap<(Stream, Reason), u64>,
    buffers: BTreeMap<Table, TableBuffer>,
    /// The same rows through arrow-json: each batch must equal the builders' one.
    reference: BTreeMap<Table, TableBuffer>,
}

impl Tally {
    fn push(&mut self, decoded: &Decoded, offset: i64) {
        let table = decoded.table();
        let buffer = self
            .buffers
            .entry(table)
            .or_insert_with(|| TableBuffer::new(table).unwrap());
        let lineage = Lineage {
            topic: "t",
            partition: 0,
            offset,
            ingested_at_micros: 0,
        };
        decoded.append_to(buffer, &lineage).unwrap();
        let full = buffer.len() >= 2048;
        let reference = self
            .reference
            .entry(table)
            .or_insert_with(|| TableBuffer::through_arrow_json(table).unwrap());
        decoded.append_to(reference, &lineage).unwrap();
        if full {
            self.flush(table);
        }
    }

    fn push_dead_letter(&mut self, record: &DeadLetterRecord) {
        let buffer = self
            .buffers
            .entry(Table::DeadLetters)
            .or_insert_with(|| TableBuffer::new(Table::DeadLetters).unwrap());
        buffer.push_dead_letter(record).unwrap();
        let full = buffer.len() >= 2048;
        let reference = self
            .reference
            .entry(Table::DeadLetters)
            .or_insert_with(|| TableBuffer::through_arrow_json(Table::DeadLetters).unwrap());
        reference.push_dead_letter(record).unwrap();
        if full {
            self.flush(Table::DeadLetters);
        }
    }

    /// Turns a buffer into a batch, counts its rows and checks that sensor rows hold no MAC
    /// and that arrow-json makes the very same batch of them.
    fn flush(&mut self, table: Table) {
        let reference = self.reference.get_mut(&table).unwrap().finish().unwrap();
        let Some(batch) = self.buffers.get_mut(&table).unwrap().finish().unwrap() else {
            assert!(reference.is_none());
            return;
        };
        assert_eq!(
            Some(&batch),
            reference.as_ref(),
            "{table}: builders and arrow-json differ"
        );
        assert_eq!(batch.schema(), table.schema());
        *self.rows.entry(table).or_default() += batch.num_rows() as u64;
        let sensor = Stream::SENSORS
            .iter()
            .any(|s| s.routes().iter().any(|(_, t)| *t == table));
        if sensor {
            for s in stored_strings(&batch) {
                assert!(!contains_mac(&s), "{table} stores a MAC: {s:?}");
            }
        }
    }
}

fn check_dead_letter(stream: Stream, dl: &DeadLetterRecord) {
    let raw = dl.raw.as_deref().map(|r| {
        if dl.raw_base64 {
            base64::engine::general_purpose::STANDARD.decode(r).unwrap()
        } else {
            r.as_bytes().to_vec()
        }
    });
    let key = dl.key.as_deref().map(|k| {
        if dl.key_base64 {
            base64::engine::general_purpose::STANDARD.decode(k).unwrap()
        } else {
            k.as_bytes().to_vec()
        }
    });
    let columns = [raw, key, Some(dl.message.as_bytes().to_vec())];
    for column in columns.iter().flatten() {
        let shown = String::from_utf8_lossy(column);
        assert!(
            !raw_contains_mac(column),
            "{stream} dead letter keeps a MAC: {shown:?}"
        );
        if stream == Stream::Beacons {
            assert!(!simple_mac(column), "beacon dead letter: {shown:?}");
            assert!(!shown.contains(TOKEN), "beacon dead letter: {shown:?}");
        }
    }
}

#[test]
fn fuzz_every_decoder_accounts_for_every_input_and_stores_no_mac() {
    let cases: u64 = std::env::var("VALLEE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let seed: u64 = std::env::var("VALLEE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(14);
    let mut rng = StdRng::seed_from_u64(seed);
    let seeds = seeds();
    // The API's streams are checked as the hub checks them: most events signed, some not,
    // some signed for another stream or with garbage.
    let event_key = EventKey::derive(b"the replicas' secret");
    let options = DecodeOptions {
        event_key: Some(event_key.clone()),
        ..DecodeOptions::default()
    };
    let mut tally = Tally::default();
    let started = std::time::Instant::now();
    for case in 0..cases {
        // Mostly a seed of the stream's own; sometimes one of another (the wrong topic).
        let stream = *Stream::ALL.choose(&mut rng).unwrap();
        let own: Vec<&Value> = seeds
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, v)| v)
            .collect();
        let seed_value = if rng.random_bool(0.9) {
            *own.choose(&mut rng).unwrap()
        } else {
            &seeds.choose(&mut rng).unwrap().1
        };
        let payload = payload(&mut rng, seed_value);
        let sent = match rng.random_range(0..10) {
            0..5 => Some(SENT),
            5..7 => None,
            7..9 => Some(SENT - rng.random_range(0..400 * 24 * 3_600_000)),
            _ => Some(rng.random_range(i64::MIN..i64::MAX)),
        };
        let key: Option<Vec<u8>> = match rng.random_range(0..10) {
            0..4 => None,
            4..8 => Some(b"urn:ngsi-ld:Thing:42".to_vec()),
            8 => Some((0..rng.random_range(0..40)).map(|_| rng.random()).collect()),
            _ => Some(mac(&mut rng, false).into_bytes()),
        };
        let signature: Option<Vec<u8>> = match rng.random_range(0..20) {
            0 => None,
            1 => Some((0..rng.random_range(0..80)).map(|_| rng.random()).collect()),
            2 => Some(
                event_key
                    .sign(*Stream::ALL.choose(&mut rng).unwrap(), &payload)
                    .into_bytes(),
            ),
            _ => Some(event_key.sign(stream, &payload).into_bytes()),
        };
        let shown = || {
            format!(
                "case {case} (VALLEE_FUZZ_SEED={seed}), {stream}, sent {sent:?}: {}",
                base64::engine::general_purpose::STANDARD.encode(&payload)
            )
        };
        let decoded = catch_unwind(AssertUnwindSafe(|| {
            decode_signed(stream, Some(&payload), signature.as_deref(), sent, &options)
        }))
        .unwrap_or_else(|_| panic!("decode panicked on {}", shown()));
        // The fast paths take only what the general one accepts, and read it alike.
        let general = decode_by(
            Path::General,
            stream,
            Some(&payload),
            signature.as_deref(),
            sent,
            &options,
        );
        assert_eq!(
            decoded,
            general,
            "the fast and general paths part on {}",
            shown()
        );
        match decoded {
            Ok(event) => {
                assert!(
                    stream.routes().iter().any(|(_, t)| *t == event.table()),
                    "{}",
                    shown()
                );
                let limit = sent
                    .and_then(chrono::DateTime::from_timestamp_millis)
                    .and_then(|t| t.checked_add_signed(chrono::TimeDelta::hours(1)));
                if let Some(limit) = limit {
                    assert!(event.event_time() <= limit, "{}", shown());
                }
                tally.push(&event, case as i64);
            }
            Err(rejection) => {
                assert!(!rejection.message.is_empty(), "{}", shown());
                *tally.refused.entry((stream, rejection.reason)).or_default() += 1;
                let source = Source {
                    stream,
                    topic: "t",
                    partition: 0,
                    offset: case as i64,
                };
                let dl = DeadLetterRecord::new(
                    &rejection,
                    source,
                    key.as_deref(),
                    Some(&payload),
                    Utc::now(),
                );
                check_dead_letter(stream, &dl);
                tally.push_dead_letter(&dl);
            }
        }
    }
    for table in Table::ALL {
        if tally.buffers.contains_key(&table) {
            tally.flush(table);
        }
    }
    let rows: u64 = tally.rows.values().sum();
    let refused: u64 = tally.refused.values().sum();
    eprintln!(
        "{cases} generated messages in {:.1} s: {rows} rows {:?}, {refused} dead letters",
        started.elapsed().as_secs_f64(),
        tally.rows
    );
    let mut per_reason: BTreeMap<Reason, u64> = BTreeMap::new();
    for ((_, reason), n) in &tally.refused {
        *per_reason.entry(*reason).or_default() += n;
    }
    eprintln!("refusals per reason: {per_reason:?}");
    // Every input is accounted for, as a row or as a dead letter.
    assert_eq!(
        rows - tally.rows.get(&Table::DeadLetters).unwrap_or(&0),
        cases - refused
    );
    assert_eq!(
        tally.rows.get(&Table::DeadLetters).copied().unwrap_or(0),
        refused
    );
    // The generator reaches every table and every refusal class (with enough cases).
    if cases >= 50_000 {
        for table in Table::ALL {
            assert!(tally.rows.get(&table).is_some_and(|n| *n > 0), "{table}");
        }
        for reason in Reason::ALL {
            assert!(per_reason.get(&reason).is_some_and(|n| *n > 0), "{reason}");
        }
        assert!(
            tally
                .refused
                .get(&(Stream::Beacons, Reason::RawIdentifier))
                .is_some_and(|n| *n > 100)
        );
    }
}
