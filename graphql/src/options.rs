//! Options of the API (the `[api]` section of the file; one struct, laptop-friendly
//! defaults), and the checks of what the file grants: staff communes, token hashes, the
//! publisher's SIRET, the parcels partners share.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use vallee_kafka::KafkaOptions;
use vallee_opendata::sharing::Audience;
use vallee_schemas::contract::Stream;
use vallee_schemas::units;

use crate::{Error, Result};

/// A staff member allowed to act through the API (`[[api.staff]]`). Only the SHA-256 of
/// the token is kept in configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffMember {
    pub name: String,
    /// Hex SHA-256 of the bearer token (`printf %s TOKEN | sha256sum`).
    #[serde(deserialize_with = "token_hash")]
    pub token_sha256: String,
    /// `None`: the whole intercommunality; `Some(code)`: one commune (INSEE code).
    #[serde(default)]
    pub commune: Option<String>,
}

/// A researcher allowed to query the public lake (`POST /sql`), by token hash
/// (`[[api.researchers]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Researcher {
    pub name: String,
    #[serde(deserialize_with = "token_hash")]
    pub token_sha256: String,
}

/// A field gateway or device allowed to post sensor events (`POST /ingest/v1/{stream}`),
/// by key hash (`[[api.gateways]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    pub name: String,
    /// Hex SHA-256 of its key (`printf %s KEY | sha256sum`).
    #[serde(deserialize_with = "token_hash")]
    pub key_sha256: String,
    /// The sensor streams it may post to (their names: `waste_containers`, `beacons`…);
    /// empty: every sensor stream.
    #[serde(default)]
    pub streams: Vec<String>,
}

impl Gateway {
    /// Whether it may post to `stream`.
    pub fn may_post(&self, stream: Stream) -> bool {
        self.streams.is_empty() || self.streams.iter().any(|s| s == stream.name())
    }

    /// Where what it sent that belongs to no stream (an unregistered device's uplink, a
    /// message that is no network server's) is kept as a dead letter: the first stream it
    /// may post to.
    pub fn dead_letter_stream(&self) -> Stream {
        (Stream::SENSORS.into_iter())
            .find(|s| self.may_post(*s))
            .unwrap_or(Stream::WasteContainers)
    }
}

pub use vallee_schemas::citizen::DeviceProfile;

/// A LoRaWAN device behind a network server (`[[api.devices]]`): what it is in the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Its DevEUI, 16 hex digits.
    pub dev_eui: String,
    /// The entity its readings are about (`urn:ngsi-ld:WasteContainer:…`,
    /// `urn:ngsi-ld:WeatherObserved:…`).
    pub entity_id: String,
    pub profile: DeviceProfile,
    /// Ultrasonic sensors: the depth of the bin, sensor to bottom, mm.
    #[serde(default)]
    pub depth_mm: Option<f64>,
    /// Ultrasonic sensors: the level the bin counts as full at (0 to 1), sent with each
    /// reading as `binFullnessThreshold` (a commune's threshold still comes first).
    #[serde(default)]
    pub fill_threshold: Option<f64>,
    /// Where it stands (WGS 84).
    pub latitude: f64,
    pub longitude: f64,
}

/// A partner of the vineyard feeds (`[[api.partners]]`).
#[derive(Debug, Clone)]
pub struct Partner {
    pub name: String,
    pub token_sha256: String,
    /// The parcels it owns (`hasAgriParcel` of its sensors, `refParcels` of the stations).
    pub parcels: Vec<String>,
    /// Those it chose to share (daily aggregates, dataset `parcelles-partagees`), and
    /// with whom; the others stay private.
    pub shared: Vec<(String, Audience)>,
    /// Where its parcels' frost and mildew alerts are posted (signed), if anywhere.
    pub webhook_url: Option<String>,
    /// The key the webhook's `X-Vallee-Signature` is an HMAC-SHA256 of the body with.
    pub webhook_secret: Option<String>,
    /// Where its parcels' alerts are e-mailed (through `[api.mail]`), if anywhere.
    pub email: Option<String>,
}

/// Request limits: every door passes through them (see [`crate::limits`]). The defaults
/// are generous enough for a town hall's shared connection. In the file they are keys of
/// `[api]` itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// `issueCitizenToken` calls per minute and client address. Default 60.
    pub tokens_per_minute_per_address: u32,
    /// Mutations per minute and client address, whatever the door. Default 300.
    pub mutations_per_minute_per_address: u32,
    /// Mutations per minute and citizen token, whatever the door. Default 60.
    pub mutations_per_minute_per_token: u32,
    /// HTTP requests per minute and client address (every route but `/healthz`, `/readyz`
    /// and `/metrics`), GraphQL operations sent over a WebSocket included. Default 600.
    pub requests_per_minute_per_address: u32,
    /// Failed authentications (an answer 401 at any door, a WebSocket whose token is
    /// refused) per minute and client address; past it every request from that address is
    /// refused (429) until the minute ends, so guessing tokens goes this slowly. Default 10.
    pub failed_auth_per_minute_per_address: u32,
    /// Distinct clients (address groups, tokens) each limiter counts in a minute; past it a
    /// new client is refused until the minute ends. Default 100 000.
    pub max_rate_limit_keys: usize,
    /// Peers allowed to name the client in `X-Forwarded-For` or `Forwarded` (CIDR blocks,
    /// `"10.0.0.0/8"`, `"2001:db8::/32"`, or single addresses). Default: none (the client
    /// is the peer).
    pub trusted_proxies: Vec<String>,
    /// Largest request body, and largest WebSocket message, in bytes. Default 64 KiB.
    pub max_body_bytes: usize,
    /// Largest photo a citizen may send (`POST /media/v1/photos`), in bytes. Default 10 MiB.
    pub max_photo_bytes: usize,
    /// Photos one client address may send in a minute. Default 10.
    pub photos_per_minute_per_address: u32,
    /// Bytes the photo store may hold (photos are re-encoded, about 0.5 MB each); past it
    /// new photos are refused (507) until unclaimed ones expire. Default 5 GiB.
    pub max_photo_store_bytes: u64,
    /// Deepest accepted operation, introspection included (GraphiQL's query is 13 deep).
    /// Default 13.
    pub max_depth: usize,
    /// Highest accepted complexity of an operation, introspection included: a field costs
    /// 1, a field reading the lake [`crate::limits::LAKE_QUERY_COST`]. Default 2 000.
    pub max_complexity: usize,
    /// Most aliased fields in an operation, fragments expanded. Default 30.
    pub max_aliases: usize,
    /// Largest GraphQL answer, in JSON bytes: a larger one is replaced by an error.
    /// Default 4 MiB.
    pub max_response_bytes: usize,
    /// WebSocket connections open at once, all clients together. Default 1 000.
    pub max_ws_connections: usize,
    /// WebSocket connections open at once from one client address. Default 20.
    pub max_ws_connections_per_address: usize,
    /// Operations (subscriptions, queries, mutations) running at once on one WebSocket
    /// connection. Default 10.
    pub max_subscriptions_per_connection: usize,
    /// How long a WebSocket may stay open without its `connection_init`. Default 10 s.
    #[serde(rename = "ws_init_timeout_s", with = "units::seconds")]
    pub ws_init_timeout: Duration,
    /// Lake queries running at once (GraphQL sensor fields and datasets, partner feeds,
    /// open-data downloads). Default 4.
    pub max_concurrent_lake_queries: usize,
    /// How long a lake query waits for its turn before it is refused (`RATE_LIMITED`,
    /// HTTP 503). Default 2 s.
    #[serde(rename = "lake_queue_ms", with = "units::millis")]
    pub lake_queue: Duration,
    /// How often the API's snapshot of the lake is refreshed: its reads lag the lake by at
    /// most this, and never wait for (nor delay) a commit. Default 1 s.
    #[serde(rename = "lake_refresh_ms", with = "units::millis")]
    pub lake_refresh: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            tokens_per_minute_per_address: 60,
            mutations_per_minute_per_address: 300,
            mutations_per_minute_per_token: 60,
            requests_per_minute_per_address: 600,
            failed_auth_per_minute_per_address: 10,
            max_rate_limit_keys: crate::rate_limit::DEFAULT_MAX_KEYS,
            trusted_proxies: Vec::new(),
            max_body_bytes: 64 * 1024,
            max_photo_bytes: 10 * 1024 * 1024,
            photos_per_minute_per_address: 10,
            max_photo_store_bytes: 5 * 1024 * 1024 * 1024,
            max_depth: 13,
            max_complexity: 2_000,
            max_aliases: 30,
            max_response_bytes: 4 * 1024 * 1024,
            max_ws_connections: 1_000,
            max_ws_connections_per_address: 20,
            max_subscriptions_per_connection: 10,
            ws_init_timeout: Duration::from_secs(10),
            max_concurrent_lake_queries: 4,
            lake_queue: Duration::from_secs(2),
            lake_refresh: Duration::from_secs(1),
        }
    }
}

/// Options of the API. `Default` runs on a laptop against the embedded broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiOptions {
    /// Brokers and the topic of every stream (the API writes the citizens' ones and reads
    /// alerts); shared by the stages (the file's `[kafka]` and `[topics]` sections).
    #[serde(skip)]
    pub kafka: KafkaOptions,
    /// Root of the restricted store (contact details, the token secret): `<data-dir>/private`
    /// (not read from the file: `--data-dir` sets it).
    #[serde(skip)]
    pub private_dir: PathBuf,
    /// Secret keying citizens' tokens and pseudonyms. Replicas must share it; `None`: one
    /// is generated on first start and kept in `private/token-secret`.
    pub token_secret: Option<String>,
    /// Staff members, by token hash. Default: none.
    pub staff: Vec<StaffMember>,
    #[serde(flatten)]
    pub limits: Limits,
    /// Origins allowed to call the API from a browser (`*` for any). Default: none (same
    /// origin only).
    pub cors_origins: Vec<String>,
    /// Hide new ideas until a moderator shows them. Default off.
    pub pre_moderation: bool,
    /// Distinct flags after which an idea is hidden pending moderation. Default 3.
    pub flags_to_hide: usize,
    /// Supports an idea needs to be eligible, per inhabitant of its commune (of the valley
    /// when it names none). Default 0.005 (0.5 %), and never fewer than
    /// [`Self::min_supports_for_eligibility`].
    pub supports_per_inhabitant: f64,
    pub min_supports_for_eligibility: u32,
    /// How long a write waits for the broker's acknowledgement. Default 10 s.
    #[serde(rename = "write_timeout_s", with = "units::seconds")]
    pub write_timeout: Duration,
    /// Root of the public lake (`<data-dir>/public`; not read from the file).
    #[serde(skip)]
    pub public_dir: PathBuf,
    /// SIRET of the publishing establishment, in the SCDL catalogue (`COLL_SIRET`,
    /// `PRODUCTEUR_SIRET`): 14 digits starting with the SIREN 243400694, spaces ignored.
    /// Default: none (the columns stay empty; the SIREN is in DCAT).
    #[serde(deserialize_with = "siret")]
    pub publisher_siret: Option<String>,
    /// Root of the research lake (`<data-dir>/research`): what partners shared with
    /// researchers only (not read from the file).
    #[serde(skip)]
    pub research_dir: PathBuf,
    /// How often the public tables are brought up to date, and the waste reports whose
    /// bin was emptied closed. Default 60 s.
    #[serde(rename = "publish_interval_s", with = "units::seconds")]
    pub publish_interval: Duration,
    /// How long a reporter's contact is kept after the report closed (then erased).
    /// Default 90 days.
    #[serde(rename = "contact_retention_days", with = "units::days")]
    pub contact_retention: Duration,
    /// Researchers allowed on `POST /sql`, by token hash. Default: none.
    pub researchers: Vec<Researcher>,
    /// Field gateways and devices allowed on `POST /ingest/v1/{stream}`, by key hash.
    /// Default: none (the door refuses every key).
    pub gateways: Vec<Gateway>,
    /// LoRaWAN devices whose uplinks network servers post (`POST /ingest/v1/chirpstack`).
    /// Default: none.
    pub devices: Vec<Device>,
    /// How the field door checks events before it sends them (the decoding rules of
    /// `[decode]`, the same as ingest's; not read from `[api]`).
    #[serde(skip)]
    pub decode: vallee_schemas::decode::DecodeOptions,
    /// The doors' clock: the real one, or the built-in simulator's inside `vallee up`
    /// (not read from the file).
    #[serde(skip)]
    pub field_clock: crate::field_clock::FieldClock,
    /// Vineyard partners of `GET /feeds/vineyard`, with their parcels and what they share.
    /// Default: none.
    #[serde(with = "partners")]
    pub partners: Vec<Partner>,
    /// Longest research query. Default 10 s.
    #[serde(rename = "sql_timeout_s", with = "units::seconds")]
    pub sql_timeout: Duration,
    /// Most rows a research query returns (more: truncated, said in `X-Truncated`).
    /// Default 100 000.
    pub sql_max_rows: usize,
    /// Memory all research queries together may hold (DataFusion's pool: joins, sorts,
    /// aggregates, the result); a query that needs more fails with a clear error.
    /// Default 256 MiB.
    pub sql_memory_bytes: usize,
    /// Research queries running at once, all researchers together. Default 4.
    pub sql_max_concurrent: usize,
    /// Research queries running at once for one researcher. Default 2.
    pub sql_max_concurrent_per_researcher: usize,
    /// How the round planner counts (`[api.rounds]`).
    pub rounds: RoundOptions,
    /// E-mails to reporters (`[api.mail]`).
    pub mail: MailOptions,
    /// When a sensor counts as silent, stuck, low on battery or out of reach
    /// (`[api.sensor_health]`).
    pub sensor_health: SensorHealthOptions,
    /// The MQTT broker network servers publish their uplinks on (`[api.mqtt]`).
    pub mqtt: MqttOptions,
}

/// A password from the file: kept as given, never shown (`Debug` prints `***`).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The password itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "***" })
    }
}

/// The MQTT broker LoRaWAN network servers publish their uplinks on (`[api.mqtt]`): off
/// until a URL is named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttOptions {
    /// `mqtt://host:1883` (plain MQTT: a broker on the hub's own network; no TLS client
    /// is built in). Empty: no MQTT.
    pub url: String,
    /// This replica's client id. The broker keeps its session under it (the uplinks not
    /// yet acknowledged) across restarts: one stable id per replica. Default `vallee-hub`.
    pub client_id: String,
    /// Credentials on the broker (empty: none). Keep the file private.
    pub username: String,
    pub password: Secret,
    /// Topic filters subscribed to (QoS 1). Default ChirpStack v4's and The Things Stack
    /// v3's uplink topics.
    pub topics: Vec<String>,
    /// Replicas share the uplinks through this shared subscription group
    /// (`$share/GROUP/filter`: each uplink goes to one replica). Empty: a plain
    /// subscription. Default `vallee`.
    pub shared_group: String,
    /// The `[[api.gateways]]` entry (by name) whose streams these uplinks may go to.
    /// Required with `url`.
    pub gateway: String,
}

impl Default for MqttOptions {
    fn default() -> Self {
        MqttOptions {
            url: String::new(),
            client_id: "vallee-hub".into(),
            username: String::new(),
            password: Secret::default(),
            topics: vec![
                "application/+/device/+/event/up".into(),
                "v3/+/devices/+/up".into(),
            ],
            shared_group: "vallee".into(),
            gateway: String::new(),
        }
    }
}

/// When a sensor counts as silent, stuck, low on battery or out of reach
/// (`[api.sensor_health]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SensorHealthOptions {
    /// How often sensors report. Default 1 800 s (the valley's bins: every 30 minutes).
    #[serde(rename = "expected_interval_s", with = "units::seconds")]
    pub expected_interval: Duration,
    /// Silent after this many expected intervals without a reading. Default 3.
    pub silent_intervals: u64,
    /// A bin giving the same level over at least half of this many hours (12 readings or
    /// more) is stuck. Default 24.
    pub stuck_hours: u64,
    /// A battery under this share is low. Default 0.15.
    pub low_battery: f64,
    /// A signal under this RSSI (dBm) is weak. Default -120.0.
    pub weak_rssi_dbm: f64,
    /// How often the judgements are appended to the `device_health` table. Default 3 600 s.
    #[serde(rename = "record_every_s", with = "units::seconds")]
    pub record_every: Duration,
}

impl Default for SensorHealthOptions {
    fn default() -> Self {
        SensorHealthOptions {
            expected_interval: Duration::from_secs(1800),
            silent_intervals: 3,
            stuck_hours: 24,
            low_battery: 0.15,
            weak_rssi_dbm: -120.0,
            record_every: Duration::from_secs(3600),
        }
    }
}

/// How the hub speaks to its SMTP relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailSecurity {
    None,
    Starttls,
    Tls,
}

/// E-mails to reporters (`[api.mail]`): off until a relay is named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailOptions {
    /// The SMTP relay, `host:port` (a host name when TLS is on: its certificate must name
    /// it). Empty: no e-mail is sent.
    pub smtp_addr: String,
    /// `none` (plain SMTP: a relay on the hub's own network, such as a local Postfix that
    /// relays with TLS), `starttls` (port 587) or `tls` (TLS from the first byte, port 465).
    /// Default `none`.
    pub tls: MailSecurity,
    /// Login on the relay (AUTH PLAIN), only over TLS. Empty: no login.
    pub username: String,
    pub password: Secret,
    /// PEM certificates trusted besides the system's roots (a town's own authority).
    pub ca_file: String,
    /// The name the hub gives in `EHLO`.
    pub helo: String,
    /// The sender's address and name.
    pub from_address: String,
    pub from_name: String,
    /// Where residents reach the hub: the links in the messages start with it.
    pub public_url: String,
}

impl Default for MailOptions {
    fn default() -> Self {
        MailOptions {
            smtp_addr: String::new(),
            tls: MailSecurity::None,
            username: String::new(),
            password: Secret::default(),
            ca_file: String::new(),
            helo: "vallee-hub".into(),
            from_address: "ne-pas-repondre@cc-vallee-herault.fr".into(),
            from_name: "Communauté de communes Vallée de l'Hérault".into(),
            public_url: "http://127.0.0.1:8080".into(),
        }
    }
}

/// How the round planner counts time, distance and loads (`[api.rounds]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoundOptions {
    /// Mean speed of a collection truck between bins, in km/h. Default 25.
    pub speed_kmh: f64,
    /// Time at each bin (stop, lift, empty). Default 120 s.
    #[serde(rename = "service_s", with = "units::seconds")]
    pub service: Duration,
    /// Time at the depot between two rounds of one truck (unloading). Default 1 200 s.
    #[serde(rename = "unload_s", with = "units::seconds")]
    pub unload: Duration,
    /// Road distance over straight-line distance (no road graph ships with the hub).
    /// Default 1.3, usual for rural roads.
    pub road_factor: f64,
    /// What a bin holds when full, in litres (bins' readings do not say). Default 660, a
    /// four-wheeled bin.
    pub bin_volume_litres: f64,
    /// How long a planned day is kept before it is planned again from newer readings.
    /// Default 300 s.
    #[serde(rename = "cache_s", with = "units::seconds")]
    pub cache: Duration,
}

impl Default for RoundOptions {
    fn default() -> Self {
        RoundOptions {
            speed_kmh: 25.0,
            service: Duration::from_secs(120),
            unload: Duration::from_secs(1200),
            road_factor: 1.3,
            bin_volume_litres: 660.0,
            cache: Duration::from_secs(300),
        }
    }
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            kafka: KafkaOptions::default(),
            private_dir: PathBuf::from("data/private"),
            token_secret: None,
            staff: Vec::new(),
            limits: Limits::default(),
            cors_origins: Vec::new(),
            pre_moderation: false,
            flags_to_hide: 3,
            supports_per_inhabitant: 0.005,
            min_supports_for_eligibility: 10,
            write_timeout: Duration::from_secs(10),
            public_dir: PathBuf::from("data/public"),
            research_dir: PathBuf::from("data/research"),
            publisher_siret: None,
            publish_interval: Duration::from_secs(60),
            contact_retention: Duration::from_secs(90 * 86_400),
            researchers: Vec::new(),
            gateways: Vec::new(),
            devices: Vec::new(),
            decode: Default::default(),
            field_clock: Default::default(),
            partners: Vec::new(),
            sql_timeout: Duration::from_secs(10),
            sql_max_rows: 100_000,
            sql_memory_bytes: 256 * 1024 * 1024,
            sql_max_concurrent: 4,
            sql_max_concurrent_per_researcher: 2,
            rounds: RoundOptions::default(),
            mail: MailOptions::default(),
            sensor_health: SensorHealthOptions::default(),
            mqtt: MqttOptions::default(),
        }
    }
}

impl ApiOptions {
    /// The topic of `stream`.
    pub fn topic(&self, stream: Stream) -> String {
        self.kafka.topics.topic(stream).to_string()
    }
}

impl ApiOptions {
    /// What the file grants is consistent: the publisher's SIRET, every token hash, staff
    /// communes, the parcels partners share, and the loops' intervals.
    pub fn validate(&self) -> Result<()> {
        let invalid = |message: String| Err(Error::Options(message));
        if let Some(siret) = &self.publisher_siret {
            let siren = crate::open_data::PUBLISHER_SIREN;
            if siret.len() != 14
                || !siret.bytes().all(|b| b.is_ascii_digit())
                || !siret.starts_with(siren)
                || !luhn(siret)
            {
                return invalid(format!(
                    "publisher_siret {siret:?}: 14 digits starting with the SIREN {siren}, with a valid Luhn key"
                ));
            }
        }
        let hashes = (self.researchers.iter())
            .map(|r| ("researcher", &r.name, &r.token_sha256))
            .chain((self.partners.iter()).map(|p| ("partner", &p.name, &p.token_sha256)))
            .chain((self.staff.iter()).map(|s| ("staff member", &s.name, &s.token_sha256)));
        for (who, name, hash) in hashes {
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return invalid(format!("{who} {name}: token_sha256 must be 64 hex digits"));
            }
        }
        if !self.mqtt.url.is_empty() {
            let url = &self.mqtt.url;
            if !url.starts_with("mqtt://") {
                return invalid(format!(
                    "mqtt.url {url:?}: mqtt://host:port (no TLS client is built in: reach a \
                     remote broker through a bridge or a tunnel on the hub's network)"
                ));
            }
            if !self.gateways.iter().any(|g| g.name == self.mqtt.gateway) {
                return invalid(format!(
                    "mqtt.gateway {:?}: name the [[api.gateways]] entry whose streams the MQTT uplinks may go to",
                    self.mqtt.gateway
                ));
            }
            if self.mqtt.client_id.is_empty() || self.mqtt.topics.is_empty() {
                return invalid("mqtt: client_id and topics may not be empty".into());
            }
        }
        for d in &self.devices {
            if d.dev_eui.len() != 16 || !d.dev_eui.bytes().all(|b| b.is_ascii_hexdigit()) {
                return invalid(format!(
                    "device {}: dev_eui must be 16 hex digits",
                    d.entity_id
                ));
            }
            if d.profile == DeviceProfile::UltrasonicFill && d.depth_mm.is_none_or(|x| x <= 0.0) {
                return invalid(format!(
                    "device {}: an ultrasonic fill sensor needs depth_mm, the bin's depth",
                    d.dev_eui
                ));
            }
            if d.fill_threshold.is_some_and(|t| !(t > 0.0 && t <= 1.0)) {
                return invalid(format!(
                    "device {}: fill_threshold is a share, above 0 and at most 1",
                    d.dev_eui
                ));
            }
            if !(-90.0..=90.0).contains(&d.latitude) || !(-180.0..=180.0).contains(&d.longitude) {
                return invalid(format!(
                    "device {}: latitude/longitude is not a WGS 84 position",
                    d.dev_eui
                ));
            }
            if d.profile == DeviceProfile::PeopleCounter
                && vallee_schemas::communes::valley()
                    .locate(&vallee_schemas::geo::GeoPoint::new(d.longitude, d.latitude))
                    .is_none()
            {
                return invalid(format!(
                    "device {}: a people counter stands in a commune of the valley (its visits are counted there)",
                    d.dev_eui
                ));
            }
        }
        for g in &self.gateways {
            let hash = &g.key_sha256;
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return invalid(format!(
                    "gateway {}: key_sha256 must be 64 hex digits",
                    g.name
                ));
            }
            if let Some(unknown) = (g.streams.iter()).find(|s| {
                !Stream::SENSORS
                    .iter()
                    .any(|known| known.name() == s.as_str())
            }) {
                let names: Vec<&str> = Stream::SENSORS.iter().map(|s| s.name()).collect();
                return invalid(format!(
                    "gateway {}: {unknown} is not a sensor stream ({})",
                    g.name,
                    names.join(", ")
                ));
            }
        }
        for p in &self.partners {
            if let Some(url) = &p.webhook_url {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return invalid(format!(
                        "partner {}: webhook_url starts with https:// (or http://)",
                        p.name
                    ));
                }
                if p.webhook_secret.as_ref().is_none_or(|s| s.len() < 16) {
                    return invalid(format!(
                        "partner {}: a webhook needs a webhook_secret of at least 16 characters",
                        p.name
                    ));
                }
            }
            if let Some(email) = &p.email
                && !crate::notify::message::deliverable(email)
            {
                return invalid(format!(
                    "partner {}: email is not an e-mail address",
                    p.name
                ));
            }
            if let Some((foreign, _)) = p.shared.iter().find(|(s, _)| !p.parcels.contains(s)) {
                return invalid(format!(
                    "partner {}: shares {foreign}, which is not among its parcels",
                    p.name
                ));
            }
            // A parcel two partners list (an estate and the cooperative) is shared only if
            // neither keeps it private: one cannot publish it over the other's default.
            for (parcel, _) in &p.shared {
                if let Some(other) =
                    (self.partners.iter()).find(|q| q.name != p.name && q.parcels.contains(parcel))
                {
                    return invalid(format!(
                        "partner {} shares {parcel}, which {} also lists: only a parcel one partner owns alone can be shared",
                        p.name, other.name
                    ));
                }
            }
        }
        for s in &self.staff {
            if let Some(c) = &s.commune
                && vallee_schemas::communes::valley().by_code(c).is_none()
            {
                return invalid(format!(
                    "staff member {}: {c} is not a commune of the valley",
                    s.name
                ));
            }
        }
        if self.publish_interval < Duration::from_secs(1) {
            return invalid("publish_interval_s must be at least 1".into());
        }
        if self.sql_timeout < Duration::from_secs(1) {
            return invalid("sql_timeout_s must be at least 1".into());
        }
        self.limits.validate()?;
        for (key, n) in [
            ("sql_memory_bytes", self.sql_memory_bytes),
            ("sql_max_concurrent", self.sql_max_concurrent),
            (
                "sql_max_concurrent_per_researcher",
                self.sql_max_concurrent_per_researcher,
            ),
        ] {
            if n == 0 {
                return invalid(format!("{key} must be at least 1"));
            }
        }
        if !(self.supports_per_inhabitant.is_finite() && self.supports_per_inhabitant >= 0.0) {
            return invalid("supports_per_inhabitant must be a share, 0 or more".into());
        }
        let m = &self.mail;
        if !m.smtp_addr.is_empty() {
            if !crate::notify::message::deliverable(&m.from_address) {
                return invalid("mail.from_address is not an e-mail address".into());
            }
            if !(m.public_url.starts_with("http://") || m.public_url.starts_with("https://")) {
                return invalid("mail.public_url starts with http:// or https://".into());
            }
            if !m.username.is_empty() && m.tls == MailSecurity::None {
                return invalid(
                    "mail.username: a login is sent over TLS only (tls = \"starttls\" or \"tls\")"
                        .into(),
                );
            }
            if m.username.is_empty() != m.password.is_empty() {
                return invalid("mail.username and mail.password go together".into());
            }
            let bad = |c: char| c == '\0' || c == '\r' || c == '\n';
            if m.username.contains(bad) || m.password.expose().contains(bad) {
                return invalid("mail.username and mail.password are one line each".into());
            }
            if !m.ca_file.is_empty() && !std::path::Path::new(&m.ca_file).is_file() {
                return invalid(format!("mail.ca_file {} is not a file", m.ca_file));
            }
            if m.helo.is_empty() || !m.helo.bytes().all(|b| b.is_ascii_graphic()) {
                return invalid("mail.helo is a host name".into());
            }
        }
        let h = &self.sensor_health;
        if h.expected_interval < Duration::from_secs(1)
            || h.record_every < Duration::from_secs(1)
            || h.silent_intervals == 0
            || h.stuck_hours == 0
        {
            return invalid(
                "sensor_health: expected_interval_s, record_every_s, silent_intervals and stuck_hours are at least 1"
                    .into(),
            );
        }
        let r = &self.rounds;
        for (key, value, low, high) in [
            ("speed_kmh", r.speed_kmh, 1.0, 130.0),
            ("road_factor", r.road_factor, 1.0, 3.0),
            ("bin_volume_litres", r.bin_volume_litres, 1.0, 50_000.0),
        ] {
            if !(low..=high).contains(&value) {
                return invalid(format!("rounds.{key} must be between {low} and {high}"));
            }
        }
        Ok(())
    }
}

impl Limits {
    /// Every limit admits something, and the trusted proxies are CIDR blocks.
    pub fn validate(&self) -> Result<()> {
        crate::limits::client::TrustedProxies::parse(&self.trusted_proxies)?;
        let counts = [
            ("max_body_bytes", self.max_body_bytes),
            ("max_photo_bytes", self.max_photo_bytes),
            (
                "photos_per_minute_per_address",
                self.photos_per_minute_per_address as usize,
            ),
            ("max_photo_store_bytes", self.max_photo_store_bytes as usize),
            ("max_depth", self.max_depth),
            ("max_complexity", self.max_complexity),
            ("max_response_bytes", self.max_response_bytes),
            ("max_rate_limit_keys", self.max_rate_limit_keys),
            ("max_ws_connections", self.max_ws_connections),
            (
                "max_ws_connections_per_address",
                self.max_ws_connections_per_address,
            ),
            (
                "max_subscriptions_per_connection",
                self.max_subscriptions_per_connection,
            ),
            (
                "max_concurrent_lake_queries",
                self.max_concurrent_lake_queries,
            ),
        ];
        if let Some((key, _)) = counts.iter().find(|(_, n)| *n == 0) {
            return Err(Error::Options(format!("{key} must be at least 1")));
        }
        if self.ws_init_timeout.is_zero() || self.lake_refresh.is_zero() {
            return Err(Error::Options(
                "ws_init_timeout_s and lake_refresh_ms must be more than 0".into(),
            ));
        }
        Ok(())
    }
}

/// The Luhn key SIREN and SIRET numbers carry.
fn luhn(digits: &str) -> bool {
    let sum: u32 = (digits.bytes().rev().enumerate())
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let d = d * 2;
                if d > 9 { d - 9 } else { d }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A token hash as written (`sha256sum` prints lower case; spaces around are typos).
fn token_hash<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    Ok(String::deserialize(d)?.trim().to_ascii_lowercase())
}

/// A SIRET as written, spaces ignored (`243 400 694 00010`).
fn siret<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(|s| s.replace(' ', "")))
}

/// `[[api.partners]]`: the parcels a partner owns, and those it shares with the public or
/// with researchers only (every other parcel stays private).
mod partners {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use vallee_opendata::sharing::Audience;

    use super::Partner;

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        name: String,
        #[serde(deserialize_with = "super::token_hash")]
        token_sha256: String,
        /// Its parcels (`hasAgriParcel` identifiers).
        parcels: Vec<String>,
        /// Parcels whose daily aggregates are open data (researchers see them too).
        #[serde(default)]
        share_public: Vec<String>,
        /// Parcels whose daily aggregates only researchers see.
        #[serde(default)]
        share_researchers: Vec<String>,
        /// Where its parcels' alerts are posted, signed with `webhook_secret`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        webhook_url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        webhook_secret: Option<String>,
        /// Where its parcels' alerts are e-mailed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<String>,
    }

    pub fn serialize<S: Serializer>(partners: &[Partner], s: S) -> Result<S::Ok, S::Error> {
        let shared = |p: &Partner, audience: Audience| -> Vec<String> {
            (p.shared.iter())
                .filter(|(_, a)| *a == audience)
                .map(|(parcel, _)| parcel.clone())
                .collect()
        };
        let entries: Vec<Entry> = (partners.iter())
            .map(|p| Entry {
                name: p.name.clone(),
                token_sha256: p.token_sha256.clone(),
                parcels: p.parcels.clone(),
                share_public: shared(p, Audience::Public),
                share_researchers: shared(p, Audience::Researchers),
                webhook_url: p.webhook_url.clone(),
                webhook_secret: p.webhook_secret.clone(),
                email: p.email.clone(),
            })
            .collect();
        entries.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Partner>, D::Error> {
        let entries = Vec::<Entry>::deserialize(d)?;
        Ok(entries
            .into_iter()
            .map(|e| Partner {
                shared: (e.share_public.into_iter())
                    .map(|parcel| (parcel, Audience::Public))
                    .chain(
                        (e.share_researchers.into_iter())
                            .map(|parcel| (parcel, Audience::Researchers)),
                    )
                    .collect(),
                name: e.name,
                token_sha256: e.token_sha256,
                parcels: e.parcels,
                webhook_url: e.webhook_url,
                webhook_secret: e.webhook_secret,
                email: e.email,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use vallee_opendata::sharing::Audience;

    use super::*;

    fn api(section: serde_json::Value) -> Result<ApiOptions> {
        let o: ApiOptions =
            serde_json::from_value(section).map_err(|e| Error::Options(e.to_string()))?;
        o.validate().map(|()| o)
    }

    #[test]
    fn the_publisher_siret_is_checked() {
        assert!(luhn("243400694"), "the intercommunality's SIREN");
        let siret = |v: &str| api(json!({ "publisher_siret": v })).map(|o| o.publisher_siret);
        assert_eq!(
            siret("243 400 694 00010").unwrap().as_deref(),
            Some("24340069400010")
        );
        assert!(siret("24340069400011").is_err(), "bad key");
        assert!(siret("12345678900010").is_err(), "another body's SIREN");
    }

    #[test]
    fn a_partner_shares_only_its_own_parcels() {
        let partner = |shares: serde_json::Value| {
            let mut entry =
                json!({"name": "pins", "token_sha256": "AB".repeat(32), "parcels": ["p1", "p2"]});
            entry
                .as_object_mut()
                .unwrap()
                .extend(shares.as_object().unwrap().clone());
            api(json!({ "partners": [entry] }))
        };
        let private = partner(json!({})).unwrap();
        assert!(private.partners[0].shared.is_empty(), "private by default");
        assert_eq!(
            private.partners[0].token_sha256,
            "ab".repeat(32),
            "normalised"
        );
        let o = partner(json!({"share_public": ["p1"], "share_researchers": ["p2"]})).unwrap();
        assert_eq!(
            o.partners[0].shared,
            [
                ("p1".to_string(), Audience::Public),
                ("p2".to_string(), Audience::Researchers)
            ]
        );
        let err = partner(json!({"share_public": ["neighbour"]})).unwrap_err();
        assert!(err.to_string().contains("neighbour"), "{err}");
        let err = api(json!({"partners": [
            {"name": "pins", "token_sha256": "ab".repeat(32), "parcels": ["p1"], "share_public": ["p1"]},
            {"name": "cave", "token_sha256": "cd".repeat(32), "parcels": ["p1"]},
        ]}))
        .unwrap_err();
        assert!(err.to_string().contains("cave also lists"), "{err}");
        let typo = partner(json!({"share_publik": ["p1"]})).unwrap_err();
        assert!(typo.to_string().contains("share_publik"), "{typo}");
    }

    #[test]
    fn a_relay_login_travels_over_tls_only_and_never_shows() {
        let mail = |extra: serde_json::Value| {
            let mut m = json!({"smtp_addr": "smtp.example.fr:587"});
            m.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            api(json!({ "mail": m }))
        };
        let login = json!({"username": "hub", "password": "s3cret"});
        let err = mail(login.clone()).unwrap_err();
        assert!(err.to_string().contains("over TLS only"), "{err}");
        let mut over_tls = login.clone();
        over_tls["tls"] = json!("starttls");
        let o = mail(over_tls).unwrap();
        assert_eq!(o.mail.tls, MailSecurity::Starttls);
        assert_eq!(o.mail.password.expose(), "s3cret");
        assert!(
            !format!("{o:?}").contains("s3cret"),
            "no password in the options' Debug"
        );
        let half = mail(json!({"tls": "tls", "username": "hub"})).unwrap_err();
        assert!(half.to_string().contains("go together"), "{half}");
        let injected = mail(json!({"tls": "tls", "username": "hub", "password": "a\r\nRCPT"}));
        assert!(injected.is_err());
        assert!(
            mail(json!({"tls": "ssl"})).is_err(),
            "none, starttls or tls"
        );
        assert!(mail(json!({"ca_file": "/no/such/ca.pem"})).is_err());
    }

    #[test]
    fn staff_need_a_hash_and_a_commune_of_the_valley() {
        let staff = |hash: &str, commune: &str| {
            api(json!({"staff": [{"name": "mairie", "token_sha256": hash, "commune": commune}]}))
        };
        let ok = staff(&format!(" {} ", "ab".repeat(32)), "34114").unwrap();
        assert_eq!(ok.staff[0].commune.as_deref(), Some("34114"));
        assert!(staff("abc", "34114").is_err(), "short hash");
        let err = staff(&"ab".repeat(32), "75056").unwrap_err();
        assert!(err.to_string().contains("75056 is not a commune"), "{err}");
        let researcher = api(json!({"researchers": [{"name": "inrae", "token_sha256": "xyz"}]}));
        assert!(researcher.is_err());
    }

    #[test]
    fn limits_sit_in_the_section_itself_and_durations_keep_their_units() {
        let o = api(json!({
            "mutations_per_minute_per_token": 5,
            "max_depth": 12,
            "publish_interval_s": 1,
            "contact_retention_days": 30,
            "sql_timeout_s": "2s",
        }))
        .unwrap();
        assert_eq!(o.limits.mutations_per_minute_per_token, 5);
        assert_eq!(o.limits.max_depth, 12);
        assert_eq!(o.limits.max_body_bytes, Limits::default().max_body_bytes);
        assert_eq!(o.publish_interval, Duration::from_secs(1));
        assert_eq!(o.contact_retention, Duration::from_secs(30 * 86_400));
        assert_eq!(o.sql_timeout, Duration::from_secs(2));
        let typo = api(json!({"max_dept": 3})).unwrap_err();
        assert!(typo.to_string().contains("max_dept"), "{typo}");
        assert!(api(json!({"publish_interval_s": 0})).is_err());
        assert!(ApiOptions::default().validate().is_ok());
    }
}
