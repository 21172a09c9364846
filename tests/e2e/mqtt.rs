//! Uplinks published on a real MQTT broker (Debian's mosquitto, started here; `.ci/run`
//! installs it; without it the scenario is skipped with a printed reason, failed under
//! `VALLEE_REQUIRE_MOSQUITTO`), as ChirpStack v4 and The Things Stack v3 publish them:
//! each frame lands once, whichever network server brought it; unregistered devices and
//! unreadable messages are kept as dead letters; what is published while the hub is
//! killed lands when it comes back.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::{Value, json};
use vallee_schemas::contract::Table;

use crate::helpers::*;
use crate::hub::*;

/// A mosquitto broker on a free loopback port, killed on drop.
struct Mosquitto {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian installs it in /usr/sbin, often not on a user's PATH.
fn mosquitto_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("mosquitto"))
        .find(|p| p.is_file())
}

impl Mosquitto {
    async fn start(dir: &Path) -> Option<Mosquitto> {
        let Some(binary) = mosquitto_binary() else {
            assert!(
                std::env::var("VALLEE_REQUIRE_MOSQUITTO").is_err(),
                "VALLEE_REQUIRE_MOSQUITTO is set but no mosquitto was found (apt-get install mosquitto)"
            );
            eprintln!("skipped: no mosquitto (apt-get install mosquitto)");
            return None;
        };
        let addr = free_addr();
        let config = dir.join("mosquitto.conf");
        std::fs::write(
            &config,
            format!(
                "listener {} {}\nallow_anonymous true\npersistence false\nmax_queued_messages 10000\n",
                addr.port(),
                addr.ip()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("mosquitto.log")).unwrap();
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        eventually(Duration::from_secs(20), "mosquitto listening", || async {
            TcpStream::connect(addr).is_ok()
        })
        .await;
        Some(Mosquitto { child, addr })
    }

    /// Publishes each (topic, payload) at QoS 1 and waits for the broker's PUBACKs.
    async fn publish(&self, messages: &[(&str, Vec<u8>)]) {
        let mut options = MqttOptions::new(
            format!("network-server-{}", rand_suffix()),
            self.addr.ip().to_string(),
            self.addr.port(),
        );
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut events) = AsyncClient::new(options, 64);
        for (topic, payload) in messages {
            client
                .publish(*topic, QoS::AtLeastOnce, false, payload.clone())
                .await
                .unwrap();
        }
        let mut acknowledged = 0;
        tokio::time::timeout(Duration::from_secs(20), async {
            while acknowledged < messages.len() {
                if let Event::Incoming(Incoming::PubAck(_)) = events.poll().await.unwrap() {
                    acknowledged += 1;
                }
            }
        })
        .await
        .expect("the broker acknowledged every message");
        client.disconnect().await.unwrap();
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// ChirpStack's documented uplink (tests/fixtures/chirpstack) for the configured bin
/// sensor, frame `f_cnt`, with `data` (base64) heard at `rssi`.
fn chirpstack(f_cnt: u64, data: &str, rssi: f64, time: &str) -> Vec<u8> {
    let mut uplink: Value =
        serde_json::from_str(include_str!("../fixtures/chirpstack/uplink.json")).unwrap();
    uplink["time"] = json!(time);
    uplink["fCnt"] = json!(f_cnt);
    uplink["data"] = json!(data);
    uplink["rxInfo"][0]["rssi"] = json!(rssi);
    serde_json::to_vec(&uplink).unwrap()
}

const BIN: &str = "urn:ngsi-ld:WasteContainer:gignac-lora-1";
const CHIRPSTACK_TOPIC: &str = "application/bins/device/0101010101010101/event/up";

/// Rows of the bin's readings, of site visits, and the dead letters' reasons.
async fn landed(world: &World) -> (u64, u64, Vec<String>) {
    let lake = world.lake().await;
    let readings = lake
        .sql(&format!(
            "SELECT count(*) AS n FROM waste_containers WHERE id = '{BIN}'"
        ))
        .await
        .map_or(0, |b| i64s(&b, 0).first().copied().unwrap_or(0) as u64);
    let visits = lake.count(Table::SiteVisits).await.unwrap_or(0);
    let reasons = lake
        .sql("SELECT reason FROM dead_letters ORDER BY reason")
        .await
        .map_or_else(|_| Vec::new(), |b| strs(&b, 0));
    (readings, visits, reasons)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uplinks_on_mqtt_land_once_each_and_survive_a_killed_hub() {
    let world = World::new(3).await;
    let Some(broker) = Mosquitto::start(world.dir.path()).await else {
        return;
    };
    let mqtt = format!(
        "\n[api.mqtt]\nurl = \"mqtt://{}\"\nclient_id = \"vallee-hub-test\"\ngateway = \"passerelle-gignac\"\n",
        broker.addr
    );
    let hub = Hub::start_with(&world, "hub-1", &mqtt).await;
    let (_, ready) = http_get(hub.http, "/readyz").unwrap();
    assert!(
        ready.contains("mqtt"),
        "readiness names the MQTT broker: {ready}"
    );

    let now = Utc::now();
    let at = |minutes: i64| (now + chrono::Duration::minutes(minutes)).to_rfc3339();
    // The Things Stack's documented uplink message, for the abbey's people counter: 42.
    let mut counter: Value =
        serde_json::from_str(include_str!("../fixtures/ttn/uplink.json")).unwrap();
    counter["end_device_ids"]["dev_eui"] = json!("0202020202020202");
    counter["uplink_message"]["received_at"] = json!(at(0));
    counter["uplink_message"]["f_cnt"] = json!(9);
    counter["uplink_message"]["frm_payload"] = json!("ACo=");
    (counter["uplink_message"].as_object_mut().unwrap()).remove("decoded_payload");
    let mut stranger: Value =
        serde_json::from_slice(&chirpstack(3, "ASxX", -80.0, &at(0))).unwrap();
    stranger["deviceInfo"]["devEui"] = json!("ffffffffffffffff");
    broker
        .publish(&[
            // Frame 42: 300 mm in a 1.2 m bin, 87 % battery.
            (CHIRPSTACK_TOPIC, chirpstack(42, "ASxX", -36.0, &at(0))),
            // The same frame through a second network server, heard elsewhere.
            (
                "application/bins-backup/device/0101010101010101/event/up",
                chirpstack(42, "ASxX", -101.0, &at(0)),
            ),
            (
                "v3/vallee@ttn/devices/abbaye-counter/up",
                serde_json::to_vec(&counter).unwrap(),
            ),
            (
                "application/bins/device/ffffffffffffffff/event/up",
                serde_json::to_vec(&stranger).unwrap(),
            ),
            (CHIRPSTACK_TOPIC, b"{\"deviceInfo\": oops".to_vec()),
        ])
        .await;
    eventually(
        Duration::from_secs(60),
        "the uplinks in the lake",
        || async {
            let (readings, visits, reasons) = landed(&world).await;
            readings == 1 && visits == 1 && reasons.len() == 2
        },
    )
    .await;
    let (_, _, reasons) = landed(&world).await;
    assert_eq!(reasons, ["bad_json", "unknown_device"]);
    let lake = world.lake().await;
    let letter = lake
        .sql("SELECT message FROM dead_letters WHERE reason = 'unknown_device'")
        .await
        .unwrap();
    let letter = arrow::util::pretty::pretty_format_batches(&letter)
        .unwrap()
        .to_string();
    assert!(
        letter.contains("ffffffffffffffff"),
        "the DevEUI to register: {letter}"
    );
    let first = lake
        .sql(&format!(
            "SELECT \"fillingLevel\", extra FROM waste_containers WHERE id = '{BIN}'"
        ))
        .await
        .unwrap();
    let first = arrow::util::pretty::pretty_format_batches(&first)
        .unwrap()
        .to_string();
    assert!(
        first.contains("0.75") && first.contains("-36"),
        "the first server's radio: {first}"
    );

    // Killed: what is published meanwhile waits in the broker under the hub's session,
    // and lands once the hub is back (frame 43: 360 mm, 0.7).
    drop(hub);
    broker
        .publish(&[(CHIRPSTACK_TOPIC, chirpstack(43, "AWg=", -40.0, &at(1)))])
        .await;
    let hub = Hub::start_with(&world, "hub-2", &mqtt).await;
    eventually(
        Duration::from_secs(60),
        "the frame sent while the hub was down",
        || async { landed(&world).await.0 == 2 },
    )
    .await;
    // Nothing more arrives later, and nothing landed twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (readings, visits, reasons) = landed(&world).await;
    assert_eq!((readings, visits, reasons.len()), (2, 1, 2));
    hub.stop().await;
}
