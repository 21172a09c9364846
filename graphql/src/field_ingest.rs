//! The field door: gateways and devices post sensor events over HTTP(S) instead of running
//! a Kafka producer.
//!
//! ```text
//!  POST /ingest/v1/{stream}   one event, a JSON array, or NDJSON
//!    key (Authorization: Bearer, or X-Api-Key) ─► [[api.gateways]] by SHA-256, streams allowed
//!    each item ─► the decoder ingest uses ─► accepted | refused (the dead-letter reason)
//!    every item not seen before ─► its stream's topic, acks=all ─► answer, item by item
//! ```
//! The door sits behind the same layer as every other route (body limit, per-address rate
//! limit, slowed guessing of keys after a 401). A refused item is sent too: ingest keeps it
//! in `dead_letters` with the same reason the answer gives, as it would from any producer.
//! The answer comes once the broker acknowledged every item it names as sent, so a gateway
//! that got it may forget them; one that did not retries. Retries are idempotent: an item
//! this replica already sent for the gateway (the same content: a sensor's `id` names the
//! sensor, so its next reading is a new item) is answered as it was then, marked
//! `duplicate`, and not sent again; a request with an `Idempotency-Key` it already answered
//! gets the same answer (remembered for the last [`REMEMBERED`] of each). Each record the
//! door sends names its gateway and fingerprint (and its LoRaWAN frame) in headers, and a
//! replica reads the last records of the sensor topics back before its doors answer
//! ([`FieldDoor::remember_sent`]): a retry after a crash or a restart, or sent to another
//! replica that started later, is still known. Answers by idempotency key stay per replica.
//! A replica does not learn what another sends after it started.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use vallee_schemas::contract::Stream;
use vallee_schemas::decode::decode;

use crate::auth::sha256_hex;
use crate::options::{ApiOptions, Gateway};
use crate::{Error, Result};

/// Items one request may carry (the body limit usually comes first).
pub const MAX_ITEMS: usize = 10_000;

/// Event ids and idempotency keys remembered per gateway.
pub const REMEMBERED: usize = 100_000;

/// The header naming what a door sent: `gateway\nfingerprint`. Read back at start
/// ([`FieldDoor::remember_sent`]), so that a retry after a restart, or sent to another
/// replica, is still known.
pub const ITEM_HEADER: &str = "vallee-door-item";

/// The header naming the LoRaWAN frame a record carries: `DevEUI\nframe counter\npayload
/// hash\nreceived (ms)`.
pub const FRAME_HEADER: &str = "vallee-door-frame";

/// Records read back per partition of each sensor topic at start: what the doors sent
/// lately is among them (the memory holds [`REMEMBERED`] a gateway anyway).
pub const READ_BACK: i64 = 20_000;

/// How far apart two receptions of one LoRaWAN frame (DevEUI, frame counter, payload) may
/// be and still be one uplink: heard through two network servers, or posted again. The
/// same frame later is a device that started counting again (after a rejoin).
pub const SAME_UPLINK_WITHIN: Duration = Duration::from_secs(600);

/// Items the doors answered since start, by sensor stream and outcome (`accepted`: new and
/// sent; `refused`: new, sent to be kept as a dead letter; `duplicate`: a retry or a frame
/// heard again, answered as before and not sent).
static ANSWERED: Mutex<std::collections::BTreeMap<(&'static str, &'static str), u64>> =
    Mutex::new(std::collections::BTreeMap::new());

/// Counts `n` items of `stream` answered with `outcome`.
pub(crate) fn count_answered(stream: Stream, outcome: &'static str, n: u64) {
    if n > 0 {
        let mut answered = ANSWERED.lock().expect("field door counters");
        *answered.entry((stream.name(), outcome)).or_default() += n;
    }
}

/// `vallee_field_items_total{stream,outcome}` in the metrics' text format.
pub fn render_metrics(out: &mut String) {
    out.push_str("# HELP vallee_field_items_total Items the field doors (HTTP, LoRaWAN webhooks, MQTT) answered, per sensor stream and outcome: accepted, refused (kept as a dead letter), duplicate (not sent again).\n# TYPE vallee_field_items_total counter\n");
    for ((stream, outcome), n) in ANSWERED.lock().expect("field door counters").iter() {
        out.push_str(&format!(
            "vallee_field_items_total{{stream=\"{stream}\",outcome=\"{outcome}\"}} {n}\n"
        ));
    }
}

/// The door's state: its producer and what it remembers.
pub struct FieldDoor {
    producer: FutureProducer,
    pub(crate) options: ApiOptions,
    memory: Mutex<HashMap<String, Remembered>>,
    /// LoRaWAN uplinks sent, whichever gateway or network server brought them.
    uplinks: Mutex<Uplinks>,
    /// What the doors sent before this replica started has been read back.
    remembers: std::sync::atomic::AtomicBool,
    /// The register of devices staff keep (the citizens' view of the reference topic).
    registry: std::sync::OnceLock<Arc<crate::citizen::CitizenHub>>,
}

impl std::fmt::Debug for FieldDoor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldDoor").finish_non_exhaustive()
    }
}

/// What one gateway sent: item fingerprints (per stream) with the refusal each got, if
/// any, and answers by idempotency key.
#[derive(Default)]
struct Remembered {
    ids: HashMap<(Stream, String), Option<(String, String)>>,
    order: VecDeque<(Stream, String)>,
    answers: HashMap<String, Value>,
    answer_order: VecDeque<String>,
}

impl Remembered {
    fn sent(&mut self, stream: Stream, id: String, refusal: Option<(String, String)>) {
        if self.ids.insert((stream, id.clone()), refusal).is_none() {
            self.order.push_back((stream, id));
            if self.order.len() > REMEMBERED
                && let Some(old) = self.order.pop_front()
            {
                self.ids.remove(&old);
            }
        }
    }

    fn answered(&mut self, key: String, answer: Value) {
        if self.answers.insert(key.clone(), answer).is_none() {
            self.answer_order.push_back(key);
            if self.answer_order.len() > REMEMBERED
                && let Some(old) = self.answer_order.pop_front()
            {
                self.answers.remove(&old);
            }
        }
    }
}

/// A LoRaWAN uplink as both network servers describe it (read from their JSON in
/// [`crate::lorawan`]); the doors tell frames apart by it.
#[derive(Debug, Clone, PartialEq)]
pub struct Uplink {
    pub dev_eui: String,
    /// When the network server received it (RFC 3339).
    pub time: String,
    pub f_cnt: u64,
    /// The frame payload.
    pub data: Vec<u8>,
    /// The network server's own decoding of it, if its codec made one.
    pub object: Option<Value>,
    /// (RSSI, SNR) at each gateway that heard it.
    pub radio: Vec<(Option<f64>, Option<f64>)>,
}

/// The LoRaWAN frames sent: by (DevEUI, frame counter), the payload's hash and when the
/// network server received it (ms); the last [`REMEMBERED`].
#[derive(Default)]
struct Uplinks {
    seen: HashMap<(String, u64), (u64, i64)>,
    order: VecDeque<(String, u64)>,
}

/// An uplink taken as new by [`FieldDoor::claim_uplink`]: given back if it was not sent.
pub(crate) struct UplinkClaim {
    key: (String, u64),
    payload: u64,
    received: i64,
    before: Option<(u64, i64)>,
}

impl UplinkClaim {
    /// The frame as [`FRAME_HEADER`] carries it.
    pub(crate) fn header(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}",
            self.key.0, self.key.1, self.payload, self.received
        )
    }
}

/// One item's outcome; `sent_before`: a retry of an item this replica already sent for
/// the gateway (answered as then, not sent again).
struct Outcome {
    refusal: Option<(String, String)>,
    sent_before: bool,
}

impl FieldDoor {
    /// A door writing to the broker of `options` (`acks=all`).
    pub fn new(options: &ApiOptions) -> Result<Arc<Self>> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &options.kafka.brokers)
            .set("acks", "all")
            .set(
                "message.timeout.ms",
                options.write_timeout.as_millis().to_string(),
            )
            .set("linger.ms", "5")
            .create()?;
        Ok(Arc::new(FieldDoor {
            producer,
            options: options.clone(),
            memory: Mutex::default(),
            uplinks: Mutex::default(),
            remembers: Default::default(),
            registry: std::sync::OnceLock::new(),
        }))
    }

    /// Takes `uplink` as a new frame, unless the same frame (DevEUI, frame counter and
    /// payload, received within [`SAME_UPLINK_WITHIN`]) was taken already: `None`, a
    /// duplicate. Taken before it is sent, so that two gateways posting it at the same
    /// instant send it once; [`Self::release_uplink`] gives it back if the send failed.
    pub(crate) fn claim_uplink(&self, uplink: &Uplink) -> Option<UplinkClaim> {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(&uplink.data);
        if uplink.data.is_empty() {
            hasher.update(
                uplink
                    .object
                    .as_ref()
                    .map(Value::to_string)
                    .unwrap_or_default(),
            );
        }
        let digest = hasher.finalize();
        let payload = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        let received =
            chrono::DateTime::parse_from_rfc3339(&uplink.time).map_or(0, |t| t.timestamp_millis());
        let key = (uplink.dev_eui.to_uppercase(), uplink.f_cnt);
        let mut uplinks = self.uplinks.lock().expect("field door uplinks");
        let before = uplinks.seen.get(&key).copied();
        if let Some((hash, at)) = before
            && hash == payload
            && (received - at).unsigned_abs() <= SAME_UPLINK_WITHIN.as_millis() as u64
        {
            return None;
        }
        uplinks.seen.insert(key.clone(), (payload, received));
        if before.is_none() {
            uplinks.order.push_back(key.clone());
            if uplinks.order.len() > REMEMBERED
                && let Some(old) = uplinks.order.pop_front()
            {
                uplinks.seen.remove(&old);
            }
        }
        Some(UplinkClaim {
            key,
            payload,
            received,
            before,
        })
    }

    /// Remembers a frame another replica, or this one before a restart, sent (read back
    /// from a record's [`FRAME_HEADER`]).
    fn remember_frame(&self, header: &str) {
        let mut parts = header.split('\n');
        let (Some(dev_eui), Some(Ok(f_cnt)), Some(Ok(payload)), Some(Ok(received))) = (
            parts.next(),
            parts.next().map(str::parse::<u64>),
            parts.next().map(str::parse::<u64>),
            parts.next().map(str::parse::<i64>),
        ) else {
            return;
        };
        let key = (dev_eui.to_string(), f_cnt);
        let mut uplinks = self.uplinks.lock().expect("field door uplinks");
        if uplinks
            .seen
            .insert(key.clone(), (payload, received))
            .is_none()
        {
            uplinks.order.push_back(key);
            if uplinks.order.len() > REMEMBERED
                && let Some(old) = uplinks.order.pop_front()
            {
                uplinks.seen.remove(&old);
            }
        }
    }

    /// Gives back an uplink that was not sent, so that the next delivery sends it.
    pub(crate) fn release_uplink(&self, claim: UplinkClaim) {
        let mut uplinks = self.uplinks.lock().expect("field door uplinks");
        match claim.before {
            Some(before) => {
                uplinks.seen.insert(claim.key, before);
            }
            None => {
                uplinks.seen.remove(&claim.key);
                if uplinks.order.back() == Some(&claim.key) {
                    uplinks.order.pop_back();
                } else {
                    uplinks.order.retain(|k| *k != claim.key);
                }
            }
        }
    }

    /// Looks devices up in the register `citizens` keep too (before the configuration's).
    pub fn use_registry(&self, citizens: Arc<crate::citizen::CitizenHub>) {
        let _ = self.registry.set(citizens);
    }

    /// The device with this DevEUI: the register's, else the configuration's.
    pub(crate) fn device(&self, dev_eui: &str) -> Option<crate::options::Device> {
        let registered = self.registry.get().and_then(|citizens| {
            let view = citizens.view.read().expect("view lock");
            view.devices.get(&dev_eui.to_uppercase()).cloned()
        });
        if let Some(d) = registered {
            return Some(crate::options::Device {
                dev_eui: d.dev_eui,
                entity_id: d.entity_id,
                profile: d.profile,
                depth_mm: d.depth_mm,
                fill_threshold: d.fill_threshold,
                latitude: d.lat,
                longitude: d.long,
            });
        }
        (self.options.devices.iter())
            .find(|d| d.dev_eui.eq_ignore_ascii_case(dev_eui))
            .cloned()
    }

    /// The gateway whose key `headers` carry.
    pub(crate) fn gateway(&self, headers: &HeaderMap) -> Option<&Gateway> {
        let key = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .or_else(|| {
                let value = headers.get("authorization")?.to_str().ok()?;
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })?
            .trim();
        let hash = sha256_hex(key);
        self.options
            .gateways
            .iter()
            .find(|g| g.key_sha256.eq_ignore_ascii_case(&hash))
    }
}

impl FieldDoor {
    /// Whether what the doors sent before this replica started is remembered (until then
    /// the doors answer 503: a retry could not be told from a new item).
    pub fn remembers(&self) -> bool {
        self.remembers.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Reads back the last [`READ_BACK`] records of each partition of the sensor topics
    /// and remembers the items and frames the doors (of any replica) sent, then lets the
    /// doors answer.
    pub async fn remember_sent(self: Arc<Self>, shutdown: CancellationToken) -> Result<()> {
        let door = self.clone();
        let read = tokio::task::spawn_blocking(move || door.read_back(&shutdown))
            .await
            .map_err(|e| Error::Internal(format!("field door memory: {e}")))??;
        tracing::info!(
            records = read,
            "field doors: what was sent lately is remembered"
        );
        self.remembers
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// The blocking part of [`Self::remember_sent`]: records read.
    fn read_back(&self, shutdown: &CancellationToken) -> Result<u64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.options.kafka.brokers)
            .set("group.id", "vallee-field-door-memory")
            .set("enable.auto.commit", "false")
            // An offset retention removed meanwhile: from the oldest still there.
            .set("auto.offset.reset", "earliest")
            .create()?;
        let timeout = Duration::from_secs(10);
        let mut assignment = TopicPartitionList::new();
        let mut ends: HashMap<(String, i32), i64> = HashMap::new();
        for stream in Stream::SENSORS {
            let topic = self.options.topic(stream);
            let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
            for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
                let (low, high) = consumer.fetch_watermarks(&topic, partition.id(), timeout)?;
                if high > low {
                    let from = low.max(high - READ_BACK);
                    assignment.add_partition_offset(
                        &topic,
                        partition.id(),
                        Offset::Offset(from),
                    )?;
                    ends.insert((topic.clone(), partition.id()), high);
                }
            }
        }
        if ends.is_empty() {
            return Ok(0);
        }
        consumer.assign(&assignment)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(300);
        let mut read = 0u64;
        let mut quiet_since = std::time::Instant::now();
        while !ends.is_empty() {
            // Nothing more for a while: what is left unread is not there any more (a
            // broker that lost records); the doors must not wait for it.
            if quiet_since.elapsed() > Duration::from_secs(10) {
                tracing::warn!(
                    partitions = ends.len(),
                    "field doors: some partitions ended before their last offset"
                );
                break;
            }
            if shutdown.is_cancelled() {
                return Err(Error::Internal("stopped while reading back".into()));
            }
            if std::time::Instant::now() > deadline {
                return Err(Error::Internal(format!(
                    "reading back what the doors sent took over 5 minutes ({read} records read)"
                )));
            }
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message?;
            quiet_since = std::time::Instant::now();
            read += 1;
            let position = (message.topic().to_string(), message.partition());
            if ends
                .get(&position)
                .is_some_and(|end| message.offset() + 1 >= *end)
            {
                ends.remove(&position);
            }
            let Some(headers) = message.headers() else {
                continue;
            };
            for header in headers.iter() {
                let Some(value) = header.value.and_then(|v| std::str::from_utf8(v).ok()) else {
                    continue;
                };
                match header.key {
                    ITEM_HEADER => self.remember_item(&message, value),
                    FRAME_HEADER => self.remember_frame(value),
                    _ => {}
                }
            }
        }
        Ok(read)
    }

    /// Remembers an item read back: its gateway, stream and fingerprint, and the refusal
    /// it got (decided again the same way, from its bytes and its record's timestamp).
    fn remember_item(&self, message: &impl Message, header: &str) {
        let Some((gateway, fingerprint)) = header.split_once('\n') else {
            return;
        };
        let Some(stream) = self.options.kafka.topics.stream_of(message.topic()) else {
            return;
        };
        let refusal = decode(
            stream,
            message.payload(),
            message.timestamp().to_millis(),
            &self.options.decode,
        )
        .err()
        .map(|r| (r.reason.to_string(), r.message));
        let mut memory = self.memory.lock().expect("field door memory");
        (memory.entry(gateway.to_string()).or_default()).sent(
            stream,
            fingerprint.to_string(),
            refusal,
        );
    }
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

/// The answer while a replica reads back what the doors sent before it started.
pub(crate) fn starting() -> Response {
    let mut response = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the door is starting (reading back what was sent before): send again in a few seconds",
    );
    (response.headers_mut()).insert("retry-after", "2".parse().expect("a header value"));
    response
}

/// One item of a request: the bytes sent to the topic, and their JSON when they parse
/// (read once, for the answer's `id` and the retry fingerprint).
pub(crate) struct Item {
    pub bytes: Vec<u8>,
    pub value: Option<Value>,
    /// The LoRaWAN frame it carries ([`FRAME_HEADER`]), if any.
    pub frame: Option<String>,
}

impl Item {
    pub(crate) fn of_value(value: Value) -> Self {
        Item {
            bytes: serde_json::to_vec(&value).expect("a value serializes"),
            value: Some(value),
            frame: None,
        }
    }

    pub(crate) fn of_bytes(bytes: &[u8]) -> Self {
        Item {
            value: serde_json::from_slice(bytes).ok(),
            bytes: bytes.to_vec(),
            frame: None,
        }
    }
}

/// The items of a body: one JSON value (an array is its elements), else one per line.
fn items(body: &[u8]) -> std::result::Result<Vec<Item>, String> {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        return Ok(match value {
            Value::Array(items) => items.into_iter().map(Item::of_value).collect(),
            value => vec![Item {
                bytes: body.to_vec(),
                value: Some(value),
                frame: None,
            }],
        });
    }
    let lines: Vec<Item> = body
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
        .map(Item::of_bytes)
        .collect();
    if lines.is_empty() {
        return Err("the body holds no event".into());
    }
    Ok(lines)
}

/// What makes an item the same item again: its content (a sensor event's `id` names the
/// sensor, not the reading), as JSON with its keys in a fixed order, else its bytes.
fn fingerprint(parsed: Option<&Value>, raw: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let bytes = parsed.map_or_else(
        || raw.to_vec(),
        |v| serde_json::to_vec(&sorted(v)).expect("a value serializes"),
    );
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `value` with every object's keys sorted.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// `POST /ingest/v1/{stream}`.
pub async fn post(
    State(door): State<Arc<FieldDoor>>,
    Path(stream): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(stream) = Stream::SENSORS.into_iter().find(|s| s.name() == stream) else {
        let names: Vec<&str> = Stream::SENSORS.iter().map(|s| s.name()).collect();
        return error(
            StatusCode::NOT_FOUND,
            &format!("no sensor stream {stream:?} (one of {})", names.join(", ")),
        );
    };
    let Some(gateway) = door.gateway(&headers) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "a gateway key is needed (Authorization: Bearer KEY, or X-Api-Key)",
        );
    };
    if !gateway.may_post(stream) {
        return error(
            StatusCode::FORBIDDEN,
            &format!("gateway {} may not post to {}", gateway.name, stream.name()),
        );
    }
    if !door.remembers() {
        return starting();
    }
    let idempotency = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| format!("{}\0{k}", stream.name()));
    if let Some(key) = &idempotency {
        let memory = door.memory.lock().expect("field door memory");
        if let Some(answer) = memory.get(&gateway.name).and_then(|m| m.answers.get(key)) {
            let mut response = Json(answer.clone()).into_response();
            response.headers_mut().insert(
                "idempotent-replayed",
                "true".parse().expect("a header value"),
            );
            return response;
        }
    }
    let items = match items(&body) {
        Ok(items) if items.len() > MAX_ITEMS => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("at most {MAX_ITEMS} events a request"),
            );
        }
        Ok(items) => items,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let (status, answer) = match door.send(gateway, stream, items).await {
        Ok(answer) => (StatusCode::OK, answer),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": format!("the broker did not acknowledge every event: {e}; send the request again")}),
        ),
    };
    if let Some(key) = idempotency
        && status == StatusCode::OK
    {
        let mut memory = door.memory.lock().expect("field door memory");
        (memory.entry(gateway.name.clone()).or_default()).answered(key, answer.clone());
    }
    (status, Json(answer)).into_response()
}

impl FieldDoor {
    /// Checks every item, sends those not sent before, waits for every acknowledgement;
    /// the answer item by item.
    pub(crate) async fn send(
        &self,
        gateway: &Gateway,
        stream: Stream,
        items: Vec<Item>,
    ) -> Result<Value> {
        let now_ms = self.options.field_clock.now_ms();
        let topic = self.options.topic(stream);
        let mut outcomes = Vec::with_capacity(items.len());
        let mut ids = Vec::with_capacity(items.len());
        let mut keys = Vec::with_capacity(items.len());
        {
            let memory = self.memory.lock().expect("field door memory");
            let seen = memory.get(&gateway.name);
            for item in &items {
                let id = (item.value.as_ref())
                    .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string));
                let fingerprint = fingerprint(item.value.as_ref(), &item.bytes);
                let before = seen.and_then(|m| m.ids.get(&(stream, fingerprint.clone())));
                // Keyed as the stream stage keeps state (a sighting by its zone): see
                // `Decoded::state_key`. A refused item keeps its id.
                let mut key = id.clone();
                let outcome = match before {
                    Some(refusal) => Outcome {
                        refusal: refusal.clone(),
                        sent_before: true,
                    },
                    None => Outcome {
                        refusal: match decode(
                            stream,
                            Some(&item.bytes),
                            Some(now_ms),
                            &self.options.decode,
                        ) {
                            Ok(decoded) => {
                                key = Some(decoded.state_key().to_string());
                                None
                            }
                            Err(r) => Some((r.reason.to_string(), r.message)),
                        },
                        sent_before: false,
                    },
                };
                outcomes.push(outcome);
                keys.push(key);
                ids.push((id, fingerprint));
            }
        }
        // Every item not a duplicate goes to the topic (a refused one too: ingest keeps it
        // as a dead letter); the answer waits for all of them.
        let sends = items
            .iter()
            .zip(&ids)
            .zip(&keys)
            .zip(&outcomes)
            .filter(|(_, outcome)| !outcome.sent_before)
            .map(|(((item, (_, fingerprint)), key), _)| {
                let sent = format!("{}\n{fingerprint}", gateway.name);
                let mut headers = OwnedHeaders::new().insert(Header {
                    key: ITEM_HEADER,
                    value: Some(&sent),
                });
                if let Some(frame) = &item.frame {
                    headers = headers.insert(Header {
                        key: FRAME_HEADER,
                        value: Some(frame),
                    });
                }
                // Stamped by the door's clock: ingest judges `future` against it.
                let mut record = FutureRecord::to(&topic)
                    .payload(item.bytes.as_slice())
                    .timestamp(now_ms)
                    .headers(headers);
                if let Some(key) = key {
                    record = record.key(key.as_str());
                }
                self.producer.send(record, Duration::from_secs(0))
            });
        for sent in futures::future::join_all(sends).await {
            sent.map_err(|(e, _)| Error::Kafka(e))?;
        }
        let mut memory = self.memory.lock().expect("field door memory");
        let remembered = memory.entry(gateway.name.clone()).or_default();
        let (mut accepted, mut refused, mut duplicates, mut new_refused) = (0, 0, 0, 0);
        let answers: Vec<Value> = outcomes
            .into_iter()
            .zip(ids)
            .enumerate()
            .map(|(index, (outcome, (id, fingerprint)))| {
                if outcome.sent_before {
                    duplicates += 1;
                } else {
                    new_refused += u64::from(outcome.refusal.is_some());
                    remembered.sent(stream, fingerprint, outcome.refusal.clone());
                }
                let mut answer = match outcome.refusal {
                    None => {
                        accepted += 1;
                        json!({"index": index, "id": id, "status": "accepted"})
                    }
                    Some((reason, message)) => {
                        refused += 1;
                        json!({"index": index, "id": id, "status": "refused", "reason": reason, "message": message})
                    }
                };
                if outcome.sent_before {
                    answer["duplicate"] = json!(true);
                }
                answer
            })
            .collect();
        let sent = answers.len() as u64 - duplicates;
        count_answered(stream, "accepted", sent - new_refused);
        count_answered(stream, "refused", new_refused);
        count_answered(stream, "duplicate", duplicates);
        Ok(json!({
            "stream": stream.name(),
            "accepted": accepted,
            "refused": refused,
            "duplicates": duplicates,
            "items": answers,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_one_event_an_array_or_lines() {
        assert_eq!(items(br#"{"id":"a"}"#).unwrap().len(), 1);
        assert_eq!(
            items(b"{\n  \"id\": \"a\"\n}").unwrap().len(),
            1,
            "pretty JSON"
        );
        assert_eq!(items(br#"[{"id":"a"},{"id":"b"}]"#).unwrap().len(), 2);
        let ndjson = items(b"{\"id\":\"a\"}\r\n\n{\"id\":\"b\"}\nnot json\n").unwrap();
        assert_eq!(
            ndjson.len(),
            3,
            "an unreadable line is an item, refused later"
        );
        assert!(items(b" \n ").is_err());
    }

    #[test]
    fn one_frame_is_sent_once_whichever_way_it_comes_a_restarted_count_is_new() {
        let door = FieldDoor::new(&ApiOptions::default()).unwrap();
        let frame = |f_cnt: u64, data: &[u8], time: &str| Uplink {
            dev_eui: "a84041000181c61e".into(),
            time: time.into(),
            f_cnt,
            data: data.to_vec(),
            object: None,
            radio: vec![(Some(-100.0), Some(2.0))],
        };
        let first = frame(41, &[1, 44], "2026-12-05T08:00:00.120Z");
        assert!(door.claim_uplink(&first).is_some());
        // Heard through another network server: another time by some ms, other radio.
        let mut other_server = frame(41, &[1, 44], "2026-12-05T08:00:00.480Z");
        other_server.dev_eui = "A84041000181C61E".into();
        other_server.radio = vec![(Some(-87.0), Some(7.5))];
        assert!(
            door.claim_uplink(&other_server).is_none(),
            "the same uplink"
        );
        // The next frame, and the same counter with another payload, are new.
        assert!(
            door.claim_uplink(&frame(42, &[1, 50], "2026-12-05T08:30:00Z"))
                .is_some()
        );
        assert!(
            door.claim_uplink(&frame(41, &[0, 9], "2026-12-05T08:00:01Z"))
                .is_some()
        );
        // A device that rejoined counts from 0 again: frame 0 a day later is a new uplink.
        assert!(
            door.claim_uplink(&frame(0, &[1, 44], "2026-12-04T08:00:00Z"))
                .is_some()
        );
        assert!(
            door.claim_uplink(&frame(0, &[1, 44], "2026-12-05T09:00:00Z"))
                .is_some()
        );
        // A frame that could not be sent is given back: its next delivery sends it.
        let unsent = door.claim_uplink(&frame(43, &[2, 0], "2026-12-05T09:00:00Z"));
        door.release_uplink(unsent.unwrap());
        assert!(
            door.claim_uplink(&frame(43, &[2, 0], "2026-12-05T09:00:00Z"))
                .is_some()
        );
        assert!(
            door.claim_uplink(&frame(43, &[2, 0], "2026-12-05T09:00:00Z"))
                .is_none()
        );
    }

    #[test]
    fn the_same_reading_is_the_same_item_the_next_one_is_not() {
        let print =
            |text: &str| fingerprint(serde_json::from_str(text).ok().as_ref(), text.as_bytes());
        let reading = r#"{"id":"bin-1","fillingLevel":0.4,"dateObserved":"2026-12-05T08:00:00Z"}"#;
        let reordered =
            r#"{"dateObserved":"2026-12-05T08:00:00Z", "fillingLevel":0.4,"id":"bin-1"}"#;
        let next = r#"{"id":"bin-1","fillingLevel":0.5,"dateObserved":"2026-12-05T08:30:00Z"}"#;
        assert_eq!(print(reading), print(reordered));
        assert_ne!(print(reading), print(next), "same sensor, another reading");
        assert_ne!(print("not json"), print("not json either"));
    }
}
