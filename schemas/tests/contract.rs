//! The input contract, case by case: what is accepted, and every refusal class with its
//! reason code; and the property test of every decoder ([`fuzz`]), in the same test binary
//! to keep link time down.

mod fuzz;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type};
use chrono::Utc;
use vallee_schemas::batch::{Lineage, TableBuffer};
use vallee_schemas::contract::{Stream, Table};
use vallee_schemas::dead_letter::{DeadLetterRecord, Source};
use vallee_schemas::decode::{DecodeOptions, Decoded, Reason, decode};

/// 2026-11-28T12:00:00Z: the record timestamp of every message here, after their event times.
const KAFKA_TS: Option<i64> = Some(1_795_867_200_000);

fn ok(stream: Stream, payload: &str) -> Decoded {
    decode(
        stream,
        Some(payload.as_bytes()),
        KAFKA_TS,
        &DecodeOptions::default(),
    )
    .unwrap_or_else(|r| panic!("refused ({r}): {payload}"))
}

fn refused(stream: Stream, payload: &[u8]) -> Reason {
    match decode(stream, Some(payload), KAFKA_TS, &DecodeOptions::default()) {
        Ok(d) => panic!("accepted {d:?}"),
        Err(r) => {
            assert!(!r.message.is_empty());
            r.reason
        }
    }
}

const BIN: &str = r#"{"id":"urn:ngsi-ld:WasteContainer:gignac-0001","type":"WasteContainer","dateObserved":"2026-11-28T10:15:00+01:00","fillingLevel":0.83,"binFullnessThreshold":0.8,"storedWasteKind":"plastic","status":"ok","location":{"type":"Point","coordinates":[3.5512,43.6521]},"address":{"addressLocality":"Gignac"}}"#;

#[test]
fn the_issue_example_bin_is_accepted_and_placed_in_gignac() {
    let Decoded::WasteContainer(bin) = ok(Stream::WasteContainers, BIN) else {
        panic!()
    };
    assert_eq!(bin.observation.id, "urn:ngsi-ld:WasteContainer:gignac-0001");
    assert_eq!(
        bin.observation.date_observed.to_rfc3339(),
        "2026-11-28T09:15:00+00:00"
    );
    assert_eq!(bin.filling_level, 0.83);
    assert_eq!(bin.stored_waste_kind, Some(vec!["plastic".to_string()]));
    assert_eq!(bin.address_locality.as_deref(), Some("Gignac"));
    assert_eq!(bin.commune_code.as_deref(), Some("34114"));
    assert_eq!(bin.extra, None);
}

#[test]
fn official_smart_data_models_examples_are_accepted_as_they_are() {
    let cases = [
        (
            Stream::WasteContainers,
            "WasteContainer",
            Table::WasteContainers,
        ),
        (Stream::WasteVehicles, "Vehicle", Table::WasteVehicles),
        (Stream::Vineyards, "AgriParcelRecord", Table::ParcelRecords),
        (Stream::Vineyards, "WeatherObserved", Table::WeatherObserved),
    ];
    for (stream, name, table) in cases {
        let path = format!(
            "{}/tests/fixtures/sdm/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let payload = std::fs::read_to_string(&path).unwrap();
        let decoded = ok(stream, &payload);
        assert_eq!(decoded.table(), table, "{name}");
        // Their many extra attributes are kept, not refused.
        let mut buffer = TableBuffer::new(table).unwrap();
        decoded.append_to(&mut buffer, &lineage(7)).unwrap();
        let batch = buffer.finish().unwrap().unwrap();
        assert_eq!(batch.num_rows(), 1);
        let extra = batch.column_by_name("extra").unwrap();
        assert!(extra.is_valid(0), "{name} kept no extra attributes");
    }
}

#[test]
fn event_time_falls_back_to_time_instant_then_to_kafka() {
    let with_ti = r#"{"id":"b","type":"WasteContainer","TimeInstant":"2026-01-02T03:04:05Z","fillingLevel":0.1,"location":{"type":"Point","coordinates":[3.55,43.65]}}"#;
    let d = ok(Stream::WasteContainers, with_ti);
    assert_eq!(d.event_time().to_rfc3339(), "2026-01-02T03:04:05+00:00");
    let bare = r#"{"id":"b","type":"WasteContainer","fillingLevel":0.1,"location":{"type":"Point","coordinates":[3.55,43.65]}}"#;
    let d = ok(Stream::WasteContainers, bare);
    assert_eq!(d.event_time().timestamp_millis(), KAFKA_TS.unwrap());
    // Old dates are the stream stage's business (lateness), not a refusal.
    ok(
        Stream::WasteContainers,
        &BIN.replace("2026-11-28", "1999-01-01"),
    );
    // An event dated 2090 by a broken clock, sent in 2026, would move the watermark.
    let future = BIN.replace("2026-11-28", "2090-01-01");
    assert_eq!(
        refused(Stream::WasteContainers, future.as_bytes()),
        Reason::Future
    );
    // Without a record timestamp there is no clock to compare with.
    let decoded = decode(
        Stream::WasteContainers,
        Some(future.as_bytes()),
        None,
        &DecodeOptions::default(),
    );
    assert!(decoded.is_ok(), "{decoded:?}");
}

#[test]
fn every_refusal_class_has_its_reason() {
    use Reason::*;
    let s = Stream::WasteContainers;
    assert_eq!(refused(s, b""), Empty);
    assert_eq!(refused(s, b"  \n"), Empty);
    assert_eq!(
        decode(s, None, KAFKA_TS, &DecodeOptions::default())
            .unwrap_err()
            .reason,
        Empty
    );
    assert_eq!(refused(s, b"{\"id\": "), BadJson);
    assert_eq!(refused(s, &[0xff, 0xfe, 0x00]), BadJson);
    assert_eq!(refused(s, b"[1,2]"), Schema);
    assert_eq!(
        refused(s, BIN.replace(r#""fillingLevel":0.83,"#, "").as_bytes()),
        Schema
    );
    assert_eq!(
        refused(s, BIN.replace("0.83", r#""0.83""#).as_bytes()),
        Schema
    );
    assert_eq!(refused(s, BIN.replace("+01:00", "").as_bytes()), Schema);
    assert_eq!(refused(s, BIN.replace("0.83", "83").as_bytes()), Range);
    assert_eq!(
        refused(
            s,
            BIN.replace(r#""status":"ok""#, r#""status":"exploded""#)
                .as_bytes()
        ),
        Range
    );
    assert_eq!(
        refused(
            s,
            BIN.replace("[3.5512,43.6521]", "[3.5512,143.6521]")
                .as_bytes()
        ),
        Range
    );
    assert_eq!(
        refused(
            s,
            BIN.replace("\"WasteContainer\",", "\"Vehicle\",")
                .as_bytes()
        ),
        UnknownType
    );
    assert_eq!(refused(s, br#"{"id":"x"}"#), Schema);

    let too_big = format!(
        r#"{{"id":"x","type":"WasteContainer","pad":"{}"}}"#,
        "a".repeat(300 * 1024)
    );
    assert_eq!(refused(s, too_big.as_bytes()), TooLarge);
    let small_limit = DecodeOptions {
        max_message_bytes: 100,
        ..DecodeOptions::default()
    };
    assert_eq!(
        decode(s, Some(BIN.as_bytes()), KAFKA_TS, &small_limit)
            .unwrap_err()
            .reason,
        TooLarge
    );
}

const SIGHTING: &str = r#"{"id":"urn:ngsi-ld:BeaconSighting:gw1-000042","type":"BeaconSighting","dateObserved":"2026-11-28T12:00:00Z","zone":"za-la-tour","deviceToken":"9f86d081884c7d659a2feaa0c55ad015","saltEpoch":"2026-11-28","rssi":-71}"#;

#[test]
fn beacon_sightings_keep_the_token_in_memory_only_and_refuse_macs() {
    let Decoded::Beacon(b) = ok(Stream::Beacons, SIGHTING) else {
        panic!()
    };
    assert_eq!(b.device_token, "9f86d081884c7d659a2feaa0c55ad015");
    let mut buffer = TableBuffer::new(Table::BeaconSightings).unwrap();
    Decoded::Beacon(b)
        .append_to(&mut buffer, &lineage(1))
        .unwrap();
    let batch = buffer.finish().unwrap().unwrap();
    assert!(
        batch
            .schema()
            .fields()
            .iter()
            .all(|f| !f.name().to_lowercase().contains("token"))
    );
    let text = format!("{batch:?}");
    assert!(!text.contains("9f86d081884c7d659a2feaa0c55ad015"));

    for mac in ["a4:5e:60:e8:1b:2c", "A4-5E-60-E8-1B-2C", "a45e60e81b2c"] {
        let p = SIGHTING.replace("9f86d081884c7d659a2feaa0c55ad015", mac);
        assert_eq!(
            refused(Stream::Beacons, p.as_bytes()),
            Reason::RawIdentifier,
            "{mac}"
        );
    }
    let hidden = SIGHTING.replace(
        r#""rssi":-71"#,
        r#""rssi":-71,"seenMac":"a4:5e:60:e8:1b:2c""#,
    );
    assert_eq!(
        refused(Stream::Beacons, hidden.as_bytes()),
        Reason::RawIdentifier
    );
    let short = SIGHTING.replace("9f86d081884c7d659a2feaa0c55ad015", "abc123");
    assert_eq!(refused(Stream::Beacons, short.as_bytes()), Reason::Schema);
}

#[test]
fn dead_letters_of_beacons_never_hold_a_token_or_a_mac() {
    let broken = SIGHTING.replace("\"rssi\":-71}", "\"rssi\":");
    let rejection = decode(
        Stream::Beacons,
        Some(broken.as_bytes()),
        KAFKA_TS,
        &DecodeOptions::default(),
    )
    .unwrap_err();
    assert_eq!(rejection.reason, Reason::BadJson);
    let source = Source {
        stream: Stream::Beacons,
        topic: "vallee.beacons",
        partition: 2,
        offset: 41,
    };
    let dl = DeadLetterRecord::new(
        &rejection,
        source,
        Some(b"a4:5e:60:e8:1b:2c"),
        Some(broken.as_bytes()),
        Utc::now(),
    );
    let raw = dl.raw.as_deref().unwrap();
    assert!(!raw.contains("9f86d081884c7d659a2feaa0c55ad015"), "{raw}");
    assert!(
        raw.contains("za-la-tour"),
        "the rest of the payload is kept: {raw}"
    );
    assert!(!dl.key.as_deref().unwrap().contains("a4:5e"));
    assert_eq!(
        (dl.topic.as_str(), dl.partition, dl.offset),
        ("vallee.beacons", 2, 41)
    );

    let mac = SIGHTING.replace("9f86d081884c7d659a2feaa0c55ad015", "a4:5e:60:e8:1b:2c");
    let rejection = decode(
        Stream::Beacons,
        Some(mac.as_bytes()),
        KAFKA_TS,
        &DecodeOptions::default(),
    )
    .unwrap_err();
    let dl = DeadLetterRecord::new(&rejection, source, None, Some(mac.as_bytes()), Utc::now());
    assert!(
        !dl.raw.as_deref().unwrap().contains("a4:5e:60"),
        "{:?}",
        dl.raw
    );

    let mut buffer = TableBuffer::new(Table::DeadLetters).unwrap();
    buffer.push_dead_letter(&dl).unwrap();
    let batch = buffer.finish().unwrap().unwrap();
    let reason = batch
        .column_by_name("reason")
        .unwrap()
        .as_string::<i32>()
        .value(0)
        .to_string();
    assert_eq!(reason, "raw_identifier");
}

#[test]
fn a_mac_in_any_string_of_any_sensor_event_is_refused() {
    // The issue's example: a sighting whose id embeds the MAC it saw.
    let id = SIGHTING.replace("gw1-000042", "a4:5e:60:e8:1b:2c");
    assert_eq!(
        refused(Stream::Beacons, id.as_bytes()),
        Reason::RawIdentifier
    );
    let cases = [
        (
            Stream::WasteContainers,
            BIN.replace(r#""status":"ok","#, r#""status":"ok","gateway":{"seen":["A45E.60E8.1B2C"]},"#),
        ),
        (
            Stream::WasteContainers,
            BIN.replace("gignac-0001", r"gignac-\u0061\u0034\u002d5e-60-e8-1b-2c"),
        ),
        (Stream::WasteContainers, BIN.replace("Gignac", "a45e60e81b2c")),
        (
            Stream::Tourism,
            r#"{"id":"v1","type":"SiteVisit","dateObserved":"2026-07-14T10:00:00+02:00","site":"s","locationCode":"34261","source":"beacon","count":1,"arPoint":"a4:5e:60:e8:1b:2c"}"#.to_string(),
        ),
        (
            Stream::Vineyards,
            r#"{"id":"w1","type":"WeatherObserved","dateObserved":"2026-04-10T05:00:00Z","refParcels":["p1","a4-5e-60-e8-1b-2c"]}"#.to_string(),
        ),
        // On the wrong topic, it is still refused as an identifier first.
        (Stream::Tourism, id.clone()),
    ];
    for (stream, payload) in cases {
        assert_eq!(
            refused(stream, payload.as_bytes()),
            Reason::RawIdentifier,
            "{payload}"
        );
    }
}

#[test]
fn legitimate_ids_and_tokens_are_not_taken_for_macs() {
    let uuid = SIGHTING.replace("gw1-000042", "4d3f9a2e-1b2c-4d5e-8f90-a45e60e81b2c");
    ok(Stream::Beacons, &uuid);
    for token in ["9f86d081884c7d65", &"ab".repeat(32)] {
        ok(
            Stream::Beacons,
            &SIGHTING.replace("9f86d081884c7d659a2feaa0c55ad015", token),
        );
    }
    // Citizens' texts are people's words, replayed by the API with its own parser.
    let mut e = vallee_schemas::citizen::CitizenEvent::new(
        "anonymous",
        vallee_schemas::citizen::CitizenChange::IdeaCommented {
            idea_id: "i-1".into(),
            comment_id: "c-1".into(),
            body: "the hotspot a4:5e:60:e8:1b:2c is down".into(),
            author: "p".into(),
        },
    );
    e.date_observed = "2026-11-28T12:00:00Z".parse().unwrap();
    ok(
        Stream::CitizenIdeas,
        &String::from_utf8(e.to_json()).unwrap(),
    );
}

#[test]
fn dead_letters_never_keep_a_mac_whatever_the_encoding() {
    let source = |stream| Source {
        stream,
        topic: "t",
        partition: 0,
        offset: 0,
    };
    let letter = |stream, key: Option<&[u8]>, payload: &[u8]| {
        let rejection =
            decode(stream, Some(payload), KAFKA_TS, &DecodeOptions::default()).unwrap_err();
        DeadLetterRecord::new(&rejection, source(stream), key, Some(payload), Utc::now())
    };
    // Not UTF-8, a MAC as the token: still base64, without the MAC.
    let mut binary = b"\xff".to_vec();
    binary.extend(
        SIGHTING
            .replace("9f86d081884c7d659a2feaa0c55ad015", "a4:5e:60:e8:1b:2c")
            .as_bytes(),
    );
    let dl = letter(Stream::Beacons, None, &binary);
    assert_eq!(dl.reason, Reason::BadJson);
    assert!(dl.raw_base64);
    let stored = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        dl.raw.as_deref().unwrap(),
    )
    .unwrap();
    let text = String::from_utf8_lossy(&stored);
    assert!(!text.contains("a4:5e:60:e8:1b:2c"), "{text}");
    assert!(text.contains("za-la-tour"), "the rest is kept: {text}");
    // Spelled with JSON escapes, in a bin reading, and as the key.
    let escaped = BIN.replace("gignac-0001", r"\u0061\u0034:5e:60:e8:1b:2c");
    let dl = letter(
        Stream::WasteContainers,
        Some(b"a45e60e81b2c"),
        escaped.as_bytes(),
    );
    assert_eq!(dl.reason, Reason::RawIdentifier);
    let raw = dl.raw.as_deref().unwrap();
    assert!(
        raw.contains(r#""id":"urn:ngsi-ld:WasteContainer:[redacted]""#),
        "{raw}"
    );
    assert_eq!(dl.key.as_deref(), Some("[redacted]"));
    for column in [raw, dl.key.as_deref().unwrap(), &dl.message] {
        assert!(
            !vallee_schemas::privacy::raw_contains_mac(column.as_bytes()),
            "{column}"
        );
    }
}

#[test]
fn binary_payloads_are_kept_as_base64() {
    let payload = [0xff, 0x00, 0x10];
    let rejection = decode(
        Stream::Tourism,
        Some(&payload),
        KAFKA_TS,
        &DecodeOptions::default(),
    )
    .unwrap_err();
    let source = Source {
        stream: Stream::Tourism,
        topic: "t",
        partition: 0,
        offset: 0,
    };
    let dl = DeadLetterRecord::new(&rejection, source, None, Some(&payload), Utc::now());
    assert!(dl.raw_base64);
    assert_eq!(dl.raw.as_deref(), Some("/wAQ"));
}

#[test]
fn site_visits_parcels_and_weather_land_in_their_tables() {
    let visit = r#"{"id":"v1","type":"SiteVisit","dateObserved":"2026-07-14T10:00:00+02:00","site":"abbaye-de-gellone","locationCode":"34261","source":"ar-trail","count":3,"arPoint":"cloitre"}"#;
    let Decoded::SiteVisit(v) = ok(Stream::Tourism, visit) else {
        panic!()
    };
    assert_eq!((v.count, v.source.as_str()), (3, "ar-trail"));
    assert_eq!(
        refused(
            Stream::Tourism,
            visit.replace("\"count\":3", "\"count\":0").as_bytes()
        ),
        Reason::Range
    );
    // A count no counter reads, which sums downstream could overflow on: refused.
    let at_bound = visit.replace("\"count\":3", "\"count\":100000");
    ok(Stream::Tourism, &at_bound);
    for absurd in ["100001", "9223372036854775807", "-9223372036854775808"] {
        assert_eq!(
            refused(
                Stream::Tourism,
                visit
                    .replace("\"count\":3", &format!("\"count\":{absurd}"))
                    .as_bytes()
            ),
            Reason::Range,
            "{absurd}"
        );
    }
    assert_eq!(
        refused(
            Stream::Tourism,
            visit.replace("ar-trail", "drone").as_bytes()
        ),
        Reason::Range
    );
    assert_eq!(
        refused(Stream::Tourism, visit.replace("34261", "Gignac").as_bytes()),
        Reason::Schema
    );

    let parcel = r#"{"id":"p1","type":"AgriParcelRecord","dateObserved":"2026-04-10T05:00:00Z","hasAgriParcel":"urn:ngsi-ld:AgriParcel:aniane-12","soilMoistureVwc":0.21,"leafWetness":0.9,"relativeHumidity":0.95}"#;
    assert_eq!(ok(Stream::Vineyards, parcel).table(), Table::ParcelRecords);
    assert_eq!(
        refused(Stream::Vineyards, parcel.replace("0.95", "95").as_bytes()),
        Reason::Range
    );

    let weather = r#"{"id":"w1","type":"WeatherObserved","dateObserved":"2026-04-10T05:00:00Z","temperature":0.4,"precipitation":0,"relativeHumidity":0.9,"windSpeed":1.2,"dewPoint":-1.0,"refParcels":["p1","p2"],"location":{"type":"Point","coordinates":[3.59,43.68]}}"#;
    let Decoded::Weather(w) = ok(Stream::Vineyards, weather) else {
        panic!()
    };
    assert_eq!(w.ref_parcels, Some(vec!["p1".into(), "p2".into()]));
    assert_eq!(w.commune_code.as_deref(), Some("34010"));
    assert_eq!(
        refused(
            Stream::Vineyards,
            weather
                .replace("\"windSpeed\":1.2", "\"windSpeed\":-3")
                .as_bytes()
        ),
        Reason::Range
    );
    assert_eq!(
        refused(Stream::WasteContainers, weather.as_bytes()),
        Reason::UnknownType
    );
}

fn lineage(offset: i64) -> Lineage<'static> {
    Lineage {
        topic: "vallee.test",
        partition: 1,
        offset,
        ingested_at_micros: 1_764_320_000_000_000,
    }
}

#[test]
fn rows_become_batches_with_lineage_and_the_table_schema() {
    let mut buffer = TableBuffer::new(Table::WasteContainers).unwrap();
    for i in 0..3 {
        ok(Stream::WasteContainers, BIN)
            .append_to(&mut buffer, &lineage(100 + i))
            .unwrap();
    }
    assert_eq!(buffer.len(), 3);
    let batch = buffer.finish().unwrap().unwrap();
    assert_eq!(batch.schema(), Table::WasteContainers.schema());
    let offsets = batch
        .column_by_name("_offset")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(offsets.values().to_vec(), vec![100, 101, 102]);
    let fill = batch
        .column_by_name("fillingLevel")
        .unwrap()
        .as_primitive::<Float64Type>();
    assert_eq!(fill.value(0), 0.83);
    assert!(buffer.is_empty());
    assert!(buffer.finish().unwrap().is_none());
}

/// Rows a second into a table's buffer, builders against arrow-json, the same rows in the
/// same run (`cargo test --release -p vallee-schemas --test contract -- --ignored --nocapture
/// encoders`): the figure behind the builders in `docs/performance.md`.
#[test]
#[ignore = "a measurement: run it by name"]
fn encoders_compared() {
    let beacon = r#"{"id":"urn:ngsi-ld:BeaconSighting:za-1","type":"BeaconSighting","dateObserved":"2026-11-28T10:15:00Z","zone":"za-la-garrigue","deviceToken":"0123456789abcdef0123","saltEpoch":"2026-11-28","rssi":-71.0}"#;
    let rows: Vec<Decoded> = (0..200_000)
        .map(|i| {
            if i % 2 == 0 {
                ok(Stream::Beacons, beacon)
            } else {
                ok(Stream::WasteContainers, BIN)
            }
        })
        .collect();
    let rate = |make: fn(Table) -> vallee_schemas::Result<TableBuffer>| {
        let started = std::time::Instant::now();
        let mut buffers: std::collections::BTreeMap<Table, TableBuffer> = Default::default();
        let mut out = 0;
        for (i, d) in rows.iter().enumerate() {
            let buffer = buffers
                .entry(d.table())
                .or_insert_with(|| make(d.table()).unwrap());
            d.append_to(buffer, &lineage(i as i64)).unwrap();
            if buffer.len() == 8192 {
                out += buffer.finish().unwrap().unwrap().num_rows();
            }
        }
        for buffer in buffers.values_mut() {
            out += buffer.finish().unwrap().map_or(0, |b| b.num_rows());
        }
        assert_eq!(out, rows.len());
        rows.len() as f64 / started.elapsed().as_secs_f64()
    };
    let (json, builders) = (
        rate(TableBuffer::through_arrow_json),
        rate(TableBuffer::new),
    );
    eprintln!(
        "rows/s: arrow-json {json:.0}, builders {builders:.0}: {:.2}x",
        builders / json
    );
}
