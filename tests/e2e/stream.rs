//! The stream stage against the real broker and lake, one scenario's events through a stage
//! of each test's own: footfall equals a plain DataFusion batch GROUP BY over the same
//! sightings, the hour's lineage and dwell, site presence, fill and frost alerts opening and
//! clearing (in Delta and on the alerts topic), vine days, bin forecasts, a restart that
//! replays and adds nothing, and a kill -9 of the stage.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio_util::sync::CancellationToken;
use vallee::simulator::Event;
use vallee_schemas::contract::Stream;
use vallee_schemas::tables::OutputTable;
use vallee_stream::stage::{SharedLiveView, StreamOptions};

use crate::helpers::*;

fn at(hm: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&format!("2026-11-28T{hm}Z"))
        .unwrap()
        .with_timezone(&Utc)
}

fn ev(stream: Stream, key: &str, time: &str, body: String) -> Event {
    Event {
        stream,
        key: key.into(),
        payload: body,
        time: at(time),
    }
}

fn sighting(time: &str, token: u32) -> Event {
    let body = format!(
        r#"{{"id":"s{token}","type":"BeaconSighting","dateObserved":"{}","zone":"za-test","deviceToken":"{token:032x}","saltEpoch":"2026-11-28","rssi":-60}}"#,
        at(time).to_rfc3339()
    );
    ev(Stream::Beacons, &format!("{token}"), time, body)
}

fn scenario() -> (Vec<Event>, Vec<(DateTime<Utc>, String)>) {
    let mut events = Vec::new();
    let mut sightings = Vec::new();
    // Window k of five minutes sees k + 2 devices, each twice, slightly out of order.
    for k in 0..4u32 {
        for d in 0..k + 2 {
            for rep in [1u32, 0] {
                let time = format!("10:{:02}:{:02}", k * 5 + 1 + rep, 10 + d);
                let token = 100 * k + d;
                events.push(sighting(&time, token));
                sightings.push((at(&time), format!("{token:032x}")));
            }
        }
    }
    // Later traffic that moves event time past the hour.
    for (time, token) in [("11:10:00", 999u32), ("11:11:00", 998)] {
        events.push(sighting(time, token));
        sightings.push((at(time), format!("{token:032x}")));
    }
    let visit = |time: &str, source: &str, count: i64| {
        let body = format!(
            r#"{{"id":"v","type":"SiteVisit","dateObserved":"{}","site":"abbaye-de-gellone","locationCode":"34261","source":"{source}","count":{count},"arPoint":"cloitre"}}"#,
            at(time).to_rfc3339()
        );
        ev(Stream::Tourism, "abbaye-de-gellone", time, body)
    };
    events.extend([
        visit("10:05:00", "counter", 3),
        visit("10:20:00", "ar-trail", 1),
        visit("10:40:00", "counter", 2),
        visit("11:30:00", "counter", 4),
    ]);
    let bin = |id: &str, time: &str, level: f64| {
        let body = format!(
            r#"{{"id":"{id}","type":"WasteContainer","dateObserved":"{}","fillingLevel":{level},"storedWasteKind":"glass","location":{{"type":"Point","coordinates":[3.5512,43.6521]}}}}"#,
            at(time).to_rfc3339()
        );
        ev(Stream::WasteContainers, id, time, body)
    };
    events.extend([
        bin("bin-x", "10:00:00", 0.85),
        bin("bin-x", "10:30:00", 0.1),
    ]);
    // A bin filling 0.1 per hour: full (0.8) at 16:00.
    events.extend([
        bin("bin-y", "10:00:00", 0.2),
        bin("bin-y", "11:00:00", 0.3),
        bin("bin-y", "12:00:00", 0.4),
    ]);
    // A truck far away: its stream's event time passes the drop, so the clear is decided.
    let truck = format!(
        r#"{{"id":"benne","type":"Vehicle","dateObserved":"{}","vehicleType":"lorry","serviceProvided":["garbageCollection"],"serviceStatus":"onRoute","location":{{"type":"Point","coordinates":[3.60,43.70]}}}}"#,
        at("12:45:00").to_rfc3339()
    );
    events.push(ev(Stream::WasteVehicles, "benne", "12:45:00", truck));
    // A vineyard station: a frost dip before dawn (falling to 0.5 °C), then a mild day, and a
    // reading the next night that closes the local day.
    let weather = |date: &str, time: &str, temperature: f64, rain: f64| {
        let t = DateTime::parse_from_rfc3339(&format!("{date}T{time}Z"))
            .unwrap()
            .with_timezone(&Utc);
        let body = format!(
            r#"{{"id":"urn:ngsi-ld:WeatherObserved:st-1","type":"WeatherObserved","dateObserved":"{}","temperature":{temperature},"precipitation":{rain},"refParcels":["p1","p2"],"location":{{"type":"Point","coordinates":[3.59,43.68]}}}}"#,
            t.to_rfc3339()
        );
        Event {
            stream: Stream::Vineyards,
            key: "st-1".into(),
            payload: body,
            time: t,
        }
    };
    for (date, time, temperature, rain) in [
        ("2026-11-28", "03:00:00", 2.0, 0.0),
        ("2026-11-28", "03:30:00", 0.5, 0.0),
        ("2026-11-28", "08:00:00", 12.0, 2.0),
        ("2026-11-28", "13:00:00", 24.0, 2.0),
        ("2026-11-28", "18:00:00", 18.0, 2.0),
        ("2026-11-29", "01:00:00", 8.0, 0.0),
    ] {
        events.push(weather(date, time, temperature, rain));
    }
    (events, sightings)
}

/// Footfall per five minutes by a plain DataFusion batch query over the same sightings.
async fn batch_footfall(sightings: &[(DateTime<Utc>, String)]) -> Vec<(i64, i64)> {
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "t",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("token", DataType::Utf8, false),
    ]));
    let t = arrow::array::TimestampMicrosecondArray::from(
        sightings
            .iter()
            .map(|s| s.0.timestamp_micros())
            .collect::<Vec<_>>(),
    )
    .with_timezone("UTC");
    let tokens =
        arrow::array::StringArray::from(sightings.iter().map(|s| s.1.clone()).collect::<Vec<_>>());
    let batch = RecordBatch::try_new(schema, vec![Arc::new(t), Arc::new(tokens)]).unwrap();
    let ctx = SessionContext::new();
    ctx.register_batch("s", batch).unwrap();
    let sql = "SELECT CAST(date_bin(INTERVAL '5 minutes', t) AS BIGINT) AS w, count(DISTINCT token) AS n FROM s GROUP BY 1 ORDER BY 1";
    let mut out = Vec::new();
    for b in ctx.sql(sql).await.unwrap().collect().await.unwrap() {
        let (w, n) = (
            b.column(0).as_primitive::<Int64Type>(),
            b.column(1).as_primitive::<Int64Type>(),
        );
        for i in 0..b.num_rows() {
            out.push((w.value(i) / 1000, n.value(i))); // ns → µs
        }
    }
    out
}

struct RunningStage {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<vallee_stream::Result<()>>,
    /// The stage's live view: what it consumed and committed so far.
    live: SharedLiveView,
}

fn start_stage(world: &World, lake: &Arc<vallee_lake::Lake>) -> RunningStage {
    start_stage_idling_after(world, lake, Duration::from_secs(2))
}

fn start_stage_idling_after(
    world: &World,
    lake: &Arc<vallee_lake::Lake>,
    idle_timeout: Duration,
) -> RunningStage {
    let options = StreamOptions {
        kafka: world.kafka_options(),
        group_id: format!("{}-stream", world.group),
        idle_timeout,
        flush_interval: Duration::from_millis(300),
        ..Default::default()
    };
    let shutdown = CancellationToken::new();
    let live = SharedLiveView::default();
    let task = tokio::spawn(vallee_stream::stage::run(
        options,
        lake.clone(),
        live.clone(),
        shutdown.clone(),
    ));
    RunningStage {
        shutdown,
        task,
        live,
    }
}

impl RunningStage {
    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// The five-minute windows of the scenario that close, by the batch query: every one up to
/// 11:05 (the 11:10 window stays open: nothing after it).
async fn closed_windows(sightings: &[(DateTime<Utc>, String)]) -> Vec<(i64, i64)> {
    batch_footfall(sightings)
        .await
        .into_iter()
        .filter(|(w, _)| *w < at("11:10:00").timestamp_micros())
        .collect()
}

/// Produces the scenario and runs a stage of its own over it until every output the
/// scenario gives is in the lake, then stops the stage (a final commit). The lake, and the
/// five-minute windows a batch GROUP BY closes.
async fn run_scenario(world: &World) -> (Arc<vallee_lake::Lake>, Vec<(i64, i64)>) {
    let (events, sightings) = scenario();
    world.produce(&events).await;
    let lake = Arc::new(world.lake().await);
    for t in OutputTable::ALL {
        lake.ensure(t).await.unwrap();
    }
    let closed_5m = closed_windows(&sightings).await;
    let stage = start_stage(world, &lake);
    eventually(
        Duration::from_secs(90),
        "footfall windows, dwell, presence, alerts, vine days and forecasts",
        || async {
            let windows = lake
                .sql("SELECT count(*) FROM footfall WHERE \"window\" = 'PT5M'")
                .await
                .unwrap();
            i64s(&windows, 0)[0] as usize >= closed_5m.len()
                && total_rows(&lake, "fill_alerts").await >= 2
                && total_rows(&lake, "footfall_dwell").await >= 1
                && total_rows(&lake, "site_presence").await >= 1
                && total_rows(&lake, "vine_indicators").await >= 1
                && total_rows(&lake, "vine_alerts").await >= 4
                && total_rows(&lake, "bin_forecast").await >= 2
        },
    )
    .await;
    stage.stop().await;
    (lake, closed_5m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_minute_footfall_equals_a_batch_group_by_over_the_same_sightings() {
    let world = World::new(3).await;
    let (lake, closed_5m) = run_scenario(&world).await;
    let footfall_5m = "SELECT CAST(\"dateObservedFrom\" AS BIGINT), \"peopleCount\", revision FROM footfall \
                       WHERE \"window\" = 'PT5M' AND final ORDER BY 1";
    let rows = lake.sql(footfall_5m).await.unwrap();
    let got: Vec<(i64, i64)> = i64s(&rows, 0).into_iter().zip(i64s(&rows, 1)).collect();
    assert_eq!(got, closed_5m, "stream vs DataFusion batch GROUP BY");
    assert!(
        i64s(&rows, 2).iter().all(|r| *r == 0),
        "in-order enough: no corrections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hours_footfall_counts_each_device_once_and_names_the_kafka_records_behind_it() {
    let world = World::new(3).await;
    let (lake, _) = run_scenario(&world).await;
    let hour_sql = format!(
        "SELECT \"peopleCount\" FROM footfall WHERE \"window\" = 'PT1H' AND CAST(\"dateObservedFrom\" AS BIGINT) = {}",
        at("10:00:00").timestamp_micros()
    );
    let hour = lake.sql(&hour_sql).await.unwrap();
    assert_eq!(
        i64s(&hour, 0),
        vec![14],
        "2+3+4+5 devices in the 10:00 hour"
    );
    // The hour's row names the Kafka records it was computed from: the 28 sightings of the
    // 10:00 hour, all on the beacons topic.
    let lineage = lake
        .sql(&format!(
            "SELECT r['topic'] AS topic, r['partition'] AS p, r['minOffset'] AS lo, r['maxOffset'] AS hi \
             FROM (SELECT unnest(lineage) AS r FROM footfall WHERE \"window\" = 'PT1H' AND CAST(\"dateObservedFrom\" AS BIGINT) = {})",
            at("10:00:00").timestamp_micros()
        ))
        .await
        .unwrap();
    let topics = strs(&lineage, 0);
    assert!(
        !topics.is_empty() && topics.iter().all(|t| t.ends_with("beacons")),
        "{topics:?}"
    );
    let covered: i64 = i64s(&lineage, 3)
        .iter()
        .zip(i64s(&lineage, 2))
        .map(|(hi, lo)| hi - lo + 1)
        .sum();
    assert!(
        (28..=30).contains(&covered),
        "the ranges cover the hour's 28 sightings (and at most the 2 later ones in between): {covered}"
    );
}

/// Every device is seen twice a minute apart: 14 visits of one minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_seen_a_minute_apart_give_visits_of_a_minute_in_the_hours_dwell() {
    let world = World::new(3).await;
    let (lake, _) = run_scenario(&world).await;
    let dwell = lake
        .sql(&format!(
            "SELECT visits, \"dwellUnder5Min\", \"totalDwellSeconds\", \"medianDwellMinutes\", \"sessionGap\" \
             FROM footfall_dwell WHERE zone = 'za-test' AND CAST(hour AS BIGINT) = {}",
            at("10:00:00").timestamp_micros()
        ))
        .await
        .unwrap();
    assert_eq!(
        (0..4).map(|c| i64s(&dwell, c)[0]).collect::<Vec<_>>(),
        vec![14, 14, 14 * 60, 1],
        "visits, under 5 min, total seconds, median minutes"
    );
    assert_eq!(strs(&dwell, 4), vec!["PT10M".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_presence_counts_counter_visitors_and_ar_checkins_by_point() {
    let world = World::new(3).await;
    let (lake, _) = run_scenario(&world).await;
    let presence = lake.sql("SELECT \"visitorCount\", \"arCheckins\", \"locationCode\" FROM site_presence WHERE site = 'abbaye-de-gellone'").await.unwrap();
    assert_eq!(
        (i64s(&presence, 0), i64s(&presence, 1), strs(&presence, 2)),
        (vec![5], vec![1], vec!["34261".to_string()])
    );
    let points = lake
        .sql("SELECT r['point'], r['checkins'] FROM (SELECT unnest(\"arCheckinsByPoint\") AS r FROM site_presence WHERE site = 'abbaye-de-gellone')")
        .await
        .unwrap();
    assert_eq!(
        (strs(&points, 0), i64s(&points, 1)),
        (vec!["cloitre".to_string()], vec![1]),
        "the AR check-in at the cloister; counter visits are no check-ins"
    );
}

/// The alerts on the `vallee.alerts` topic, as (key, category, sub-category, state), read
/// until `enough` holds or 30 s pass.
fn alerts_on_topic(
    world: &World,
    enough: impl Fn(&[(String, String, String, String)]) -> bool,
) -> Vec<(String, String, String, String)> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", world.brokers())
        .set("group.id", format!("{}-alerts", world.group))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["vallee.alerts"]).unwrap();
    let mut alerts = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !enough(&alerts) && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            let field = |name: &str| v[name].as_str().unwrap_or_default().to_string();
            alerts.push((
                String::from_utf8_lossy(m.key().unwrap()).into_owned(),
                field("category"),
                field("subCategory"),
                field("state"),
            ));
        }
    }
    alerts
}

/// bin-x goes over its threshold, then is emptied; the truck's stream moves event time past
/// the drop, so the clear is decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_alert_opens_and_clears_as_one_episode_in_delta_and_on_the_alerts_topic() {
    let world = World::new(3).await;
    let (lake, _) = run_scenario(&world).await;
    let alerts = lake
        .sql("SELECT state, \"clearReason\", \"alertId\" FROM fill_alerts ORDER BY state DESC")
        .await
        .unwrap();
    let states = strs(&alerts, 0);
    assert_eq!(states, vec!["open".to_string(), "cleared".to_string()]);
    let ids = strs(&alerts, 2);
    assert_eq!(ids[0], ids[1], "one episode, one id");

    // The alerts reached the topic too, keyed by their stable id.
    let bin_alerts = |all: &[(String, String, String, String)]| {
        all.iter()
            .filter(|(_, category, _, _)| category != "agriculture")
            .cloned()
            .collect::<Vec<_>>()
    };
    let on_topic = bin_alerts(&alerts_on_topic(&world, |all| bin_alerts(all).len() >= 2));
    let mut states = Vec::new();
    for (key, _, _, state) in on_topic {
        assert_eq!(key, ids[0]);
        states.push(state);
    }
    states.sort();
    assert_eq!(states, vec!["cleared".to_string(), "open".to_string()]);
}

/// A vineyard station covering two parcels falls to 0.5 °C before dawn, then a mild day
/// follows: frost alerts open and clear for both parcels, in Delta and on the topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frost_dip_opens_and_a_mild_day_clears_a_frost_alert_on_every_covered_parcel() {
    let world = World::new(3).await;
    let (lake, _) = run_scenario(&world).await;
    let frost = lake
        .sql("SELECT \"entityId\", state FROM vine_alerts ORDER BY \"entityId\", state DESC")
        .await
        .unwrap();
    let frost_rows: Vec<(String, String)> =
        strs(&frost, 0).into_iter().zip(strs(&frost, 1)).collect();
    let expected_frost: Vec<(String, String)> = [
        ("p1", "open"),
        ("p1", "cleared"),
        ("p2", "open"),
        ("p2", "cleared"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(
        frost_rows, expected_frost,
        "frost opened on the dip and cleared by the day, for both parcels"
    );
    let vineyard_alerts = |all: &[(String, String, String, String)]| {
        all.iter()
            .filter(|(_, category, _, _)| category == "agriculture")
            .map(|(_, _, kind, state)| (kind.clone(), state.clone()))
            .collect::<Vec<_>>()
    };
    let mut vineyard = vineyard_alerts(&alerts_on_topic(&world, |all| {
        vineyard_alerts(all).len() >= 4
    }));
    vineyard.sort();
    assert_eq!(
        vineyard,
        [
            ("frost", "cleared"),
            ("frost", "cleared"),
            ("frost", "open"),
            ("frost", "open")
        ]
        .map(|(k, s)| (k.to_string(), s.to_string()))
    );
}

/// The local day 28 November at the station: Tmin 0.5, Tmax 24, mean 11.3, 6 mm of rain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_vine_day_gives_its_degree_days_and_rain() {
    let world = World::new(3).await;
    let (lake, _) = run_scenario(&world).await;
    let vine = lake
        .sql("SELECT \"growingDegreeDays\", \"oosporeDegreeDays\", \"rainMm\", \"winklerIndex\" FROM vine_indicators WHERE station LIKE '%st-1'")
        .await
        .unwrap();
    let col = |i: usize| {
        vine[0]
            .column(i)
            .as_primitive::<arrow::datatypes::Float64Type>()
            .value(0)
    };
    assert_eq!(vine.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    assert!(
        (col(0) - 2.25).abs() < 1e-9,
        "GDD (24 + 0.5) / 2 - 10 = {}",
        col(0)
    );
    assert!(
        (col(1) - 3.3).abs() < 1e-9,
        "oospore degree days 11.3 - 8 = {}",
        col(1)
    );
    assert_eq!(
        (col(2), col(3)),
        (6.0, 0.0),
        "rain, and no Winkler in November"
    );
}

/// Time to full: bin-y fills 0.1 per hour, full at 16:00; bin-x was emptied (trend reset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bin_filling_steadily_is_forecast_full_when_its_trend_reaches_the_threshold() {
    let world = World::new(3).await;
    let (lake, _) = run_scenario(&world).await;
    let forecast = lake
        .sql("SELECT \"entityId\", \"fillRatePerHour\", CAST(\"fullAt\" AS BIGINT) FROM bin_forecast ORDER BY \"dateObserved\"")
        .await
        .unwrap();
    assert_eq!(
        strs(&forecast, 0),
        vec!["bin-y".to_string(), "bin-y".to_string()]
    );
    assert_eq!(
        i64s(&forecast, 2),
        vec![at("16:00:00").timestamp_micros(); 2]
    );
    let rate = forecast[0]
        .column(1)
        .as_primitive::<arrow::datatypes::Float64Type>()
        .value(0);
    assert!((rate - 0.1).abs() < 1e-9, "{rate}");
}

/// Messages a restarted stage must read: from the smallest replay offset its outputs
/// recorded for each partition of their source topics (the beginning where none did), to
/// the end. The rebalance of the stage positions its consumer the same way.
async fn replay_range(world: &World, lake: &vallee_lake::Lake) -> i64 {
    let writer = StreamOptions::default().writer_id;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", world.brokers())
        .create()
        .unwrap();
    let mut streams: Vec<Stream> = OutputTable::ALL
        .iter()
        .flat_map(|o| o.sources().iter().copied())
        .collect();
    streams.sort();
    streams.dedup();
    let mut range = 0;
    for stream in streams {
        let topic = &world.topics[&stream];
        for partition in 0..3 {
            let mut start = None::<i64>;
            for output in OutputTable::ALL
                .into_iter()
                .filter(|o| o.sources().contains(&stream))
            {
                let stored = lake
                    .committed_offsets(output, &writer, topic, &[partition])
                    .await
                    .unwrap()[&partition];
                start = match (start, stored) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .unwrap();
            range += high - start.unwrap_or(low);
        }
    }
    range
}

/// The same consumer group resumes at the replay offsets its outputs recorded and replays
/// what open windows need: once it has read all of that, nothing was written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_replays_what_open_windows_need_and_writes_nothing_twice() {
    let world = World::new(3).await;
    let (lake, _) = run_scenario(&world).await;
    let tables = || async {
        (
            total_rows(&lake, "footfall").await,
            total_rows(&lake, "site_presence").await,
            total_rows(&lake, "fill_alerts").await,
            total_rows(&lake, "vine_indicators").await + total_rows(&lake, "vine_alerts").await,
            total_rows(&lake, "bin_forecast").await,
            total_rows(&lake, "footfall_dwell").await,
        )
    };
    let before = tables().await;
    let replayed = replay_range(&world, &lake).await;
    assert!(replayed > 0, "open windows leave something to replay");
    let stage = start_stage(&world, &lake);
    let live = stage.live.clone();
    // The live view counts what the stage read once its results are committed.
    eventually(
        Duration::from_secs(90),
        &format!("the restarted stage reading the {replayed} replayed messages"),
        || async { live.read().unwrap().consumed >= replayed as u64 },
    )
    .await;
    stage.stop().await;
    assert_eq!(tables().await, before);
}

/// Beacons keyed by zone leave a partition empty when no zone hashes to it. The consumer
/// finds it empty from its fetch responses, so it does not hold the watermark for the idle
/// timeout (ten minutes here, longer than the test may wait).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_partition_does_not_hold_the_watermark_until_the_idle_timeout() {
    let world = World::new(3).await;
    // One zone, one key: a single partition of three gets every sighting.
    let mut events = Vec::new();
    let mut sightings = Vec::new();
    for minute in 0..22u32 {
        let time = format!("10:{minute:02}:30");
        let token = 7000 + minute % 4;
        let mut e = sighting(&time, token);
        e.key = "za-test".into();
        events.push(e);
        sightings.push((at(&time), format!("{token:032x}")));
    }
    world.produce(&events).await;
    let lake = Arc::new(world.lake().await);
    for t in OutputTable::ALL {
        lake.ensure(t).await.unwrap();
    }
    // Event time reaches 10:21:30; minus 30 s of lateness, the windows up to 10:20 close.
    let closed_5m: Vec<(i64, i64)> = batch_footfall(&sightings)
        .await
        .into_iter()
        .filter(|(w, _)| *w < at("10:20:00").timestamp_micros())
        .collect();
    assert_eq!(closed_5m.len(), 4);
    let stage = start_stage_idling_after(&world, &lake, Duration::from_secs(600));
    eventually(
        Duration::from_secs(60),
        "the windows closed while two partitions stayed empty",
        || async {
            let rows = lake
                .sql("SELECT count(*) FROM footfall WHERE \"window\" = 'PT5M' AND final")
                .await
                .unwrap();
            i64s(&rows, 0)[0] as usize >= closed_5m.len()
        },
    )
    .await;
    stage.stop().await;
    let rows = lake
        .sql("SELECT CAST(\"dateObservedFrom\" AS BIGINT), \"peopleCount\" FROM footfall WHERE \"window\" = 'PT5M' AND final ORDER BY 1")
        .await
        .unwrap();
    let got: Vec<(i64, i64)> = i64s(&rows, 0).into_iter().zip(i64s(&rows, 1)).collect();
    assert_eq!(got, closed_5m, "stream vs DataFusion batch GROUP BY");
}

async fn total_rows(lake: &vallee_lake::Lake, table: &str) -> i64 {
    i64s(
        &lake
            .sql(&format!("SELECT count(*) FROM {table}"))
            .await
            .unwrap(),
        0,
    )[0]
}

/// Latest revision per window of `footfall` PT5M, and the number of duplicated
/// (window, revision) rows.
async fn latest_footfall(lake: &vallee_lake::Lake) -> (Vec<(i64, i64)>, i64) {
    let rows = lake
        .sql("SELECT CAST(\"dateObservedFrom\" AS BIGINT), \"peopleCount\", revision FROM footfall WHERE \"window\" = 'PT5M' AND zone = 'za-test'")
        .await
        .unwrap();
    let (from, count, revision) = (i64s(&rows, 0), i64s(&rows, 1), i64s(&rows, 2));
    let mut latest: std::collections::BTreeMap<i64, (i64, i64)> = std::collections::BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    let mut duplicates = 0;
    for i in 0..from.len() {
        if !seen.insert((from[i], revision[i])) {
            duplicates += 1;
        }
        let e = latest.entry(from[i]).or_insert((revision[i], count[i]));
        if revision[i] >= e.0 {
            *e = (revision[i], count[i]);
        }
    }
    (
        latest.into_iter().map(|(f, (_, n))| (f, n)).collect(),
        duplicates,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_stage_then_a_restart_gives_the_same_results() {
    let world = World::new(3).await;
    let (events, sightings) = scenario();
    let lake = Arc::new(world.lake().await);
    for t in OutputTable::ALL {
        lake.ensure(t).await.unwrap();
    }
    let (first, rest) = events.split_at(events.len() / 2);
    world.produce(first).await;
    let mut stage = world.spawn_stage("stream", "stream-1");
    eventually(Duration::from_secs(90), "first outputs", || async {
        total_rows(&lake, "footfall").await > 0
    })
    .await;
    stage.kill().unwrap(); // SIGKILL, whatever it was doing
    stage.wait().unwrap();
    world.produce(rest).await;
    let mut stage = world.spawn_stage("stream", "stream-2");
    let closed_5m: Vec<(i64, i64)> = batch_footfall(&sightings)
        .await
        .into_iter()
        .filter(|(w, _)| *w < at("11:10:00").timestamp_micros())
        .collect();
    eventually(Duration::from_secs(90), "every result", || async {
        latest_footfall(&lake).await.0 == closed_5m
            && total_rows(&lake, "vine_indicators").await == 1
            && total_rows(&lake, "fill_alerts").await == 2
            && total_rows(&lake, "vine_alerts").await == 4
            && total_rows(&lake, "bin_forecast").await == 2
            && total_rows(&lake, "footfall_dwell").await == 1
    })
    .await;
    terminate(&stage);
    assert!(
        wait_exit(&mut stage, Duration::from_secs(30))
            .await
            .success()
    );
    // Same results as the uninterrupted run, nothing written twice.
    let (latest, duplicates) = latest_footfall(&lake).await;
    assert_eq!(latest, closed_5m);
    assert_eq!(duplicates, 0);
    let presence = lake
        .sql("SELECT \"visitorCount\", \"arCheckins\", revision FROM site_presence WHERE site = 'abbaye-de-gellone' ORDER BY revision DESC")
        .await
        .unwrap();
    assert_eq!((i64s(&presence, 0)[0], i64s(&presence, 1)[0]), (5, 1));
    let alerts = lake
        .sql("SELECT state FROM fill_alerts ORDER BY state DESC")
        .await
        .unwrap();
    assert_eq!(
        strs(&alerts, 0),
        vec!["open".to_string(), "cleared".to_string()]
    );
    let dwell = lake
        .sql("SELECT visits, revision FROM footfall_dwell")
        .await
        .unwrap();
    assert_eq!(
        (i64s(&dwell, 0), i64s(&dwell, 1)),
        (vec![14], vec![0]),
        "the dwell row once, rebuilt from Kafka"
    );
}
