//! The simulated field behind the hub's own doors (inside `vallee up`): part of the valley's
//! traffic reaches the hub as real field devices' would, over HTTP, instead of straight to
//! Kafka.
//!
//! ```text
//!  a few bins ──── LoRaWAN uplinks (ultrasonic payload, 2 gateways) ─► POST /ingest/v1/chirpstack
//!  one beacon zone's gateway ── NDJSON batches every few seconds ───► POST /ingest/v1/beacons
//!  one site's people counter ── yesterday's counts once a day ──────► POST /ingest/v1/tourism
//!  everything else ─────────────────────────────────────────────────► Kafka, as before
//! ```
//! The bins are registered devices (`[[api.devices]]`, added by `vallee up`) with the
//! built-in ultrasonic decoder: each uplink carries the distance to the waste and the
//! battery, one in ten is posted twice (a network server's retry) and the door sends it once.
//! The gateway's key is made at start and only its hash is given to the API. The counter
//! uploads after 01:00 (the valley's time) the day before, as one batch: within tourism's
//! 48 h correction horizon, so its hours are counted as corrections. What a door did not
//! take (the hub starting, a limit) is sent again on the next round, and the door answers a
//! retry as a duplicate; a malformed reading is refused by the door with its reason and
//! kept as a dead letter, as from any gateway.
//!
//! The doors judge an event dated in the future against the simulated clock
//! ([`vallee_graphql::field_clock::FieldClock`]): the valley runs ahead of real time.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, Timelike, Utc};
use serde_json::{Value, json};
use vallee_graphql::field_clock::FieldClock;
use vallee_graphql::options::{Device, DeviceProfile, Gateway};
use vallee_schemas::contract::Stream;

use super::valley::{BinLayout, Event};

/// The beacon zone whose gateway posts over HTTP.
pub const DOOR_ZONE: &str = "za-camalce-nord";

/// The site whose people counter uploads its counts once a day.
pub const DAILY_COUNTER_SITE: &str = "abbaye-d-aniane";

/// The gateway entry the simulated field posts as.
pub const GATEWAY: &str = "simulated-field";

/// Bins behind LoRaWAN at the default speed (fewer when the clock runs faster, so the
/// uplinks stay well under the API's requests per minute and address).
const LORAWAN_BINS: usize = 12;

/// Depth of a simulated bin, sensor to bottom, mm.
const DEPTH_MM: f64 = 1_200.0;

/// A beacon batch waits at most this long.
const BEACON_BATCH_EVERY: Duration = Duration::from_secs(5);

/// Items a batch carries at most (and no more bytes than the API's body limit).
const BATCH_ITEMS: usize = 500;

/// What `vallee up` registers for the simulated field, and where it posts.
#[derive(Debug, Clone)]
pub struct FieldPlan {
    /// The hub's HTTP address.
    pub http: SocketAddr,
    /// The gateway key (its hash goes to `[[api.gateways]]`).
    pub key: String,
    /// The bins behind LoRaWAN, registered as ultrasonic sensors.
    pub devices: Vec<Device>,
    /// The doors' clock, moved by the simulator.
    pub clock: FieldClock,
    /// The API's body limit (`max_body_bytes`): batches stay under it.
    pub max_body_bytes: usize,
}

impl FieldPlan {
    /// The field of a valley laid out as `bins`, whose clock runs `speed` times real time.
    pub fn new(http: SocketAddr, bins: &[BinLayout], speed: f64, max_body_bytes: usize) -> Self {
        let n = ((LORAWAN_BINS as f64 * 60.0 / speed.max(1.0)).round() as usize)
            .clamp(1, LORAWAN_BINS)
            .min(bins.len());
        let devices = (0..n)
            .map(|i| {
                let bin = &bins[i * bins.len() / n.max(1)];
                Device {
                    dev_eui: format!("70B3D57ED00{i:05X}"),
                    entity_id: bin.id.clone(),
                    profile: DeviceProfile::UltrasonicFill,
                    depth_mm: Some(DEPTH_MM),
                    fill_threshold: Some(0.8),
                    latitude: bin.point.lat,
                    longitude: bin.point.lon,
                }
            })
            .collect();
        FieldPlan {
            http,
            key: format!("{:032x}", rand::random::<u128>()),
            devices,
            clock: FieldClock::simulated(),
            max_body_bytes,
        }
    }

    /// The `[[api.gateways]]` entry of the field.
    pub fn gateway(&self) -> Gateway {
        Gateway {
            name: GATEWAY.into(),
            key_sha256: vallee_graphql::auth::sha256_hex(&self.key),
            streams: [Stream::WasteContainers, Stream::Beacons, Stream::Tourism]
                .map(|s| s.name().to_string())
                .into(),
        }
    }
}

/// One request to a door, kept until a door took it.
#[derive(Debug)]
struct Post {
    path: &'static str,
    body: String,
    /// Items it carries (for the report).
    items: u64,
}

/// The field's state: frame counters, batches being gathered, requests not taken yet.
pub struct Field {
    plan: FieldPlan,
    client: reqwest::Client,
    /// Bin id → (device, next frame counter).
    lorawan: HashMap<String, (Device, u32)>,
    beacons: Vec<String>,
    beacons_since: Instant,
    /// The counter's readings of the day under way, and that day.
    counts: Vec<String>,
    counts_day: Option<NaiveDate>,
    /// Yesterday's counts, waiting for 01:00.
    upload: Vec<String>,
    queue: VecDeque<Post>,
    /// Items the doors accepted (duplicates and refusals aside), and refused.
    pub accepted: u64,
    pub refused: u64,
    last_warning: Option<Instant>,
}

impl Field {
    pub fn new(plan: FieldPlan) -> Self {
        // Devices count frames on their side: a hub restarted meets counters gone on.
        let first_frame = (Utc::now().timestamp() / 60 % 50_000) as u32;
        let lorawan = (plan.devices.iter())
            .map(|d| (d.entity_id.clone(), (d.clone(), first_frame)))
            .collect();
        Field {
            plan,
            client: reqwest::Client::new(),
            lorawan,
            beacons: Vec::new(),
            beacons_since: Instant::now(),
            counts: Vec::new(),
            counts_day: None,
            upload: Vec::new(),
            queue: VecDeque::new(),
            accepted: 0,
            refused: 0,
            last_warning: None,
        }
    }

    /// Takes out of `batch` what goes through the doors; `now` is the simulated clock.
    pub fn take(&mut self, batch: &mut Vec<Event>, now: DateTime<Utc>) {
        self.plan.clock.follow(now);
        batch.retain(|event| !self.route(event));
        let local = now.with_timezone(&chrono_tz::Europe::Paris);
        let today = local.date_naive();
        if self.counts_day.is_some_and(|d| d < today) {
            // The day is over: its counts wait for the night's upload.
            self.upload.append(&mut self.counts);
            self.counts_day = None;
        }
        if !self.upload.is_empty() && local.hour() >= 1 {
            let lines = std::mem::take(&mut self.upload);
            self.batch("/ingest/v1/tourism", lines);
        }
        let gathered: usize = self.beacons.iter().map(|l| l.len() + 1).sum();
        if !self.beacons.is_empty()
            && (self.beacons.len() >= BATCH_ITEMS
                || gathered >= self.plan.max_body_bytes / 2
                || self.beacons_since.elapsed() >= BEACON_BATCH_EVERY)
        {
            let lines = std::mem::take(&mut self.beacons);
            self.batch("/ingest/v1/beacons", lines);
            self.beacons_since = Instant::now();
        }
    }

    /// Queues `lines` as NDJSON requests to `path`, each under the body limit and
    /// [`BATCH_ITEMS`].
    fn batch(&mut self, path: &'static str, lines: Vec<String>) {
        let limit = self.plan.max_body_bytes.saturating_sub(1024).max(1);
        let mut body = String::new();
        let mut items = 0;
        for line in lines {
            if items > 0 && (body.len() + 1 + line.len() > limit || items >= BATCH_ITEMS as u64) {
                self.queue.push_back(Post {
                    path,
                    body: std::mem::take(&mut body),
                    items: std::mem::take(&mut items),
                });
            }
            if items > 0 {
                body.push('\n');
            }
            body.push_str(&line);
            items += 1;
        }
        if items > 0 {
            self.queue.push_back(Post { path, body, items });
        }
    }

    /// Whether `event` goes through a door (then it is queued or gathered).
    fn route(&mut self, event: &Event) -> bool {
        match event.stream {
            Stream::Beacons if event.key == DOOR_ZONE => {
                if self.beacons.is_empty() {
                    self.beacons_since = Instant::now();
                }
                self.beacons.push(event.payload.clone());
                true
            }
            Stream::Tourism
                if event.key == DAILY_COUNTER_SITE
                    && event.payload.contains("\"source\":\"counter\"") =>
            {
                let day = event
                    .time
                    .with_timezone(&chrono_tz::Europe::Paris)
                    .date_naive();
                if self.counts_day.is_some_and(|d| d != day) {
                    self.upload.append(&mut self.counts);
                }
                self.counts_day = Some(day);
                self.counts.push(event.payload.clone());
                true
            }
            Stream::WasteContainers => {
                let Some((device, frame)) = self.lorawan.get_mut(&event.key) else {
                    return false;
                };
                // A reading garbled on its way stays a producer's fault (straight to Kafka).
                let Ok(reading) = serde_json::from_str::<Value>(&event.payload) else {
                    return false;
                };
                let Some(level) = reading["fillingLevel"].as_f64().filter(|l| *l <= 1.0) else {
                    return false;
                };
                let uplink = chirpstack_uplink(device, *frame, event.time, level);
                *frame = frame.wrapping_add(1);
                let body = uplink.to_string();
                if frame.is_multiple_of(10) {
                    // The network server posts this one twice: the door sends it once.
                    self.queue.push_back(Post {
                        path: "/ingest/v1/chirpstack?event=up",
                        body: body.clone(),
                        items: 1,
                    });
                }
                self.queue.push_back(Post {
                    path: "/ingest/v1/chirpstack?event=up",
                    body,
                    items: 1,
                });
                true
            }
            _ => false,
        }
    }

    /// Posts what is queued, in order; stops at the first request a door did not take
    /// for now (sent again next round).
    pub async fn send(&mut self) {
        while let Some(post) = self.queue.front() {
            match self.post(post).await {
                Ok(answer) => {
                    let duplicates = answer["duplicates"].as_u64().unwrap_or(0);
                    self.accepted +=
                        (answer["accepted"].as_u64().unwrap_or(0)).saturating_sub(duplicates);
                    self.refused += answer["refused"].as_u64().unwrap_or(0);
                    self.queue.pop_front();
                }
                Err(Refused::Never(e)) => {
                    // Sent again it would be refused again: said, counted, and let go.
                    tracing::error!(
                        error = format!("{e:#}"),
                        path = post.path,
                        items = post.items,
                        "a field door refused the simulated field's request"
                    );
                    self.refused += post.items;
                    self.queue.pop_front();
                }
                Err(Refused::ForNow(e)) => {
                    if (self.last_warning).is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
                        self.last_warning = Some(Instant::now());
                        tracing::warn!(
                            error = format!("{e:#}"),
                            waiting = self.queue.len(),
                            "a field door did not take the simulated field's request; sent again later"
                        );
                    }
                    return;
                }
            }
        }
    }

    async fn post(&self, post: &Post) -> Result<Value, Refused> {
        let url = format!("http://{}{}", self.plan.http, post.path);
        let response = (self.client.post(url))
            .bearer_auth(&self.plan.key)
            .header("content-type", "application/x-ndjson")
            .body(post.body.clone())
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .map_err(|e| Refused::ForNow(e.into()))?;
        let status = response.status();
        if status == reqwest::StatusCode::NO_CONTENT {
            return Ok(json!({"accepted": 0}));
        }
        let body = (response.text().await).map_err(|e| Refused::ForNow(e.into()))?;
        let retry = status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::REQUEST_TIMEOUT;
        match serde_json::from_str::<Value>(&body) {
            Ok(answer) if status.is_success() && answer.get("accepted").is_some() => Ok(answer),
            _ if retry => Err(Refused::ForNow(anyhow::anyhow!("{status}: {body}"))),
            _ => Err(Refused::Never(anyhow::anyhow!("{status}: {body}"))),
        }
    }
}

/// Why a door did not take a request.
#[derive(Debug)]
enum Refused {
    /// The hub starting, a limit, the broker: sent again next round.
    ForNow(anyhow::Error),
    /// A refusal that would come again (a body over the limit, a key refused).
    Never(anyhow::Error),
}

/// A ChirpStack v4 `up` event (JSON marshaler) of an ultrasonic sensor seeing `level`,
/// heard by one or two gateways.
fn chirpstack_uplink(device: &Device, frame: u32, time: DateTime<Utc>, level: f64) -> Value {
    let depth = device.depth_mm.unwrap_or(DEPTH_MM);
    let distance = ((1.0 - level.clamp(0.0, 1.0)) * depth).round() as u16;
    // Batteries drain slowly; the frame counter stands in for time.
    let battery = 100u8.saturating_sub((frame / 400 % 60) as u8);
    let mut data = distance.to_be_bytes().to_vec();
    data.push(battery);
    let spread = f64::from(frame % 7);
    let mut rx = vec![
        json!({"gatewayId": "0016c001f153a14c", "rssi": -88.0 - spread,
        "snr": 7.5 - spread / 2.0, "metadata": {"region_common_name": "EU868"}}),
    ];
    if frame.is_multiple_of(3) {
        rx.push(
            json!({"gatewayId": "0016c001f153a2b7", "rssi": -104.0 - spread,
            "snr": 1.0 - spread / 2.0, "metadata": {"region_common_name": "EU868"}}),
        );
    }
    json!({
        "deduplicationId": uuid::Uuid::new_v4().to_string(),
        "time": time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "deviceInfo": {
            "tenantName": "Vallée",
            "applicationName": "conteneurs",
            "deviceProfileName": "ultrasonic_fill",
            "deviceName": device.entity_id.rsplit(':').next().unwrap_or_default(),
            "devEui": device.dev_eui.to_lowercase(),
        },
        "devAddr": format!("0{:07x}", frame % 0xfff_ffff),
        "dr": 5,
        "fPort": 1,
        "fCnt": frame,
        "data": base64::engine::general_purpose::STANDARD.encode(&data),
        "rxInfo": rx,
        "txInfo": {"frequency": 868_100_000, "modulation": {"lora": {"bandwidth": 125_000, "spreadingFactor": 7, "codeRate": "CR_4_5"}}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vallee_graphql::field_ingest::Uplink;

    fn plan(speed: f64) -> FieldPlan {
        let valley = super::super::Valley::new(Default::default(), Utc::now());
        FieldPlan::new(
            "127.0.0.1:8080".parse().unwrap(),
            &valley.bin_layout(),
            speed,
            4096,
        )
    }

    #[test]
    fn an_uplink_decodes_to_the_level_the_bin_was_at() {
        let plan = plan(60.0);
        let device = &plan.devices[0];
        let time = Utc::now();
        let message = chirpstack_uplink(device, 30, time, 0.62);
        let uplink = Uplink::chirpstack(&message).unwrap();
        let event = vallee_graphql::lorawan::reading(device, &uplink)
            .unwrap()
            .unwrap();
        assert_eq!(event["id"], json!(device.entity_id));
        assert!((event["fillingLevel"].as_f64().unwrap() - 0.62).abs() < 0.002);
        assert_eq!(event["gatewayCount"], json!(2));
        assert_eq!(event["frameCounter"], json!(30));
        assert!(event["batteryLevel"].as_f64().unwrap() > 0.3);
    }

    #[test]
    fn fewer_lorawan_bins_as_the_clock_runs_faster_and_a_key_only_the_field_knows() {
        assert_eq!(plan(60.0).devices.len(), LORAWAN_BINS);
        assert_eq!(plan(1200.0).devices.len(), 1);
        let (a, b) = (plan(60.0), plan(60.0));
        assert_ne!(a.key, b.key);
        assert_eq!(a.gateway().key_sha256.len(), 64);
        assert!(!a.gateway().key_sha256.contains(&a.key));
        for d in &a.devices {
            assert!(
                vallee_schemas::citizen::devices::is_dev_eui(&d.dev_eui),
                "{}",
                d.dev_eui
            );
        }
    }

    #[test]
    fn the_counter_uploads_yesterday_once_the_night_came_and_the_zone_goes_in_batches() {
        let mut field = Field::new(plan(60.0));
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let visit = |t: &str| {
            Event {
            stream: Stream::Tourism,
            key: DAILY_COUNTER_SITE.into(),
            payload: json!({"site": DAILY_COUNTER_SITE, "source": "counter", "count": 3, "dateObserved": t}).to_string(),
            time: at(t),
        }
        };
        let sighting = Event {
            stream: Stream::Beacons,
            key: DOOR_ZONE.into(),
            payload: "{}".into(),
            time: at("2026-12-03T15:00:00Z"),
        };
        let other = Event {
            stream: Stream::Beacons,
            key: "za-camalce-sud".into(),
            payload: "{}".into(),
            time: at("2026-12-03T15:00:00Z"),
        };
        let mut batch = vec![
            visit("2026-12-03T10:00:00Z"),
            visit("2026-12-03T15:00:00Z"),
            sighting,
            other,
        ];
        field.take(&mut batch, at("2026-12-03T15:00:10Z"));
        assert_eq!(batch.len(), 1, "the other zone goes to Kafka");
        assert!(field.queue.is_empty(), "nothing posted yet");
        // Past midnight (Paris) but before 01:00: still waiting; the zone's batch is due.
        field.beacons_since = Instant::now() - BEACON_BATCH_EVERY;
        field.take(&mut Vec::new(), at("2026-12-03T23:30:00Z"));
        assert!(field.queue.iter().all(|p| p.path != "/ingest/v1/tourism"));
        field.take(&mut Vec::new(), at("2026-12-04T00:05:00Z"));
        let uploads: Vec<&Post> = (field.queue.iter())
            .filter(|p| p.path == "/ingest/v1/tourism")
            .collect();
        assert_eq!(uploads.len(), 1);
        assert_eq!(uploads[0].items, 2);
        assert_eq!(uploads[0].body.lines().count(), 2);
        assert_eq!(
            (field.queue.iter())
                .filter(|p| p.path == "/ingest/v1/beacons")
                .map(|p| p.items)
                .sum::<u64>(),
            1,
            "the zone's batch left within {BEACON_BATCH_EVERY:?}"
        );
    }

    #[test]
    fn batches_stay_under_the_body_limit() {
        let mut field = Field::new(plan(60.0));
        let line = format!("{{\"pad\":\"{}\"}}", "x".repeat(290));
        field.batch("/ingest/v1/beacons", vec![line.clone(); 100]);
        assert!(field.queue.len() > 1);
        assert_eq!(field.queue.iter().map(|p| p.items).sum::<u64>(), 100);
        for post in &field.queue {
            assert!(post.body.len() <= 4096, "{}", post.body.len());
            assert_eq!(post.body.lines().count() as u64, post.items);
            assert!(post.body.lines().all(|l| l == line));
        }
    }
}
