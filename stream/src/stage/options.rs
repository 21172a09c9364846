//! Options of the stream stage.

use std::collections::BTreeMap;
use std::time::Duration;

use vallee_kafka::KafkaOptions;
use vallee_schemas::contract::Stream;

/// Options of one stream-stage process. `Default` runs on a laptop.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Brokers, topic of each stream, settings of every client (shared by the stages).
    pub kafka: KafkaOptions,
    /// Its own consumer group: the stage reads the topics independently of ingest.
    pub group_id: String,
    /// Prefix of the application-transaction ids of its output commits.
    pub writer_id: String,
    /// Allowed lateness per stream (beacons 30 s, tourism 5 min, vineyards 15 min, bins 2 h).
    pub lateness: BTreeMap<Stream, chrono::Duration>,
    /// A partition silent this long (processing time) stops holding its watermark back.
    pub idle_timeout: Duration,
    /// Closed windows are kept this long (event time) to correct them with late rows.
    pub correction_horizon: chrono::Duration,
    /// People a zone holds before it counts as congested, per zone; others use the default.
    pub zone_capacity: BTreeMap<String, i64>,
    pub default_zone_capacity: i64,
    /// Zones counted with a sketch (≈ 1.6 % error, 4 KiB per window) instead of exactly:
    /// for zones too crowded to keep every device's hash.
    pub sketch_zones: std::collections::BTreeSet<String>,
    /// Outputs are committed this often.
    pub flush_interval: Duration,
    /// How long the broker may hold a fetch with no data (`fetch.wait.max.ms`): the floor
    /// of alert latency when traffic is sparse, against fetch requests per second when idle.
    pub fetch_wait: Duration,
    /// Sightings of a device further apart than this are two visits (`footfall_dwell`).
    pub dwell_gap: chrono::Duration,
    /// Air temperature (°C) at or below which a falling trend raises a frost alert.
    pub frost_critical: f64,
    /// librdkafka settings of the stage's consumer only (`key=value`), applied after
    /// [`KafkaOptions::overrides`]. Default: none.
    pub consumer_overrides: BTreeMap<String, String>,
}

impl Default for StreamOptions {
    fn default() -> Self {
        let lateness = [
            (Stream::Beacons, chrono::Duration::seconds(30)),
            (Stream::Tourism, chrono::Duration::minutes(5)),
            (Stream::Vineyards, chrono::Duration::minutes(15)),
            (Stream::WasteContainers, chrono::Duration::hours(2)),
            (Stream::WasteVehicles, chrono::Duration::hours(2)),
        ];
        StreamOptions {
            kafka: KafkaOptions::default(),
            group_id: "vallee-stream".into(),
            writer_id: "vallee-stream".into(),
            lateness: lateness.into_iter().collect(),
            idle_timeout: Duration::from_secs(30),
            correction_horizon: chrono::Duration::hours(1),
            zone_capacity: BTreeMap::new(),
            default_zone_capacity: 150,
            sketch_zones: Default::default(),
            flush_interval: Duration::from_secs(1),
            fetch_wait: Duration::from_millis(20),
            dwell_gap: chrono::Duration::minutes(10),
            frost_critical: 1.0,
            consumer_overrides: BTreeMap::new(),
        }
    }
}
