//! LoRaWAN network servers' doors: ChirpStack v4's HTTP integration posts each uplink
//! (`POST /ingest/v1/chirpstack?event=up`, its JSON marshaler), The Things Stack v3's
//! webhook its uplink messages (`POST /ingest/v1/ttn`), each with a key in a header it is
//! configured to send; both also publish them on an MQTT broker ([`crate::mqtt`]). The hub
//! reads every one into one [`Uplink`], turns it into its own event and passes it through
//! the field door ([`crate::field_ingest`]): the same decoder, acknowledgements, memory of
//! retries and limits.
//!
//! ```text
//!  uplink ─► Uplink ─► DevEUI ─► register (registerDevice) or [[api.devices]]
//!        │                        none: kept as a dead letter, `unknown_device`
//!        ─► the network server's decoded object if any, else the payload by profile
//!        ─► WasteContainer / WeatherObserved / SiteVisit (+ rssi, snr, gateways, battery)
//!        ─► once per (DevEUI, frame counter, payload) ─► field door ─► topic
//! ```
//! Built-in payload decoders: an ultrasonic fill sensor sends the distance to the waste in
//! mm (u16, big-endian), then optionally its battery in % (u8); a weather station sends the
//! temperature in tenths of °C (i16), the relative humidity in % (u8) and the rain since
//! the last uplink in tenths of mm (u16); a people counter the people who came in since
//! its last uplink (u16). One frame heard through two network servers, or posted again, is
//! sent once (the radio of the first that brought it is kept); the same counter later is a
//! device that counts again from zero ([`crate::field_ingest::SAME_UPLINK_WITHIN`]). An
//! uplink that does not decode is sent as it came, so ingest keeps it in `dead_letters`.
//! Other events (`status`, `join`, `log`…; The Things Stack's messages without an
//! `uplink_message`) are acknowledged and not kept.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use vallee_schemas::contract::Stream;

use vallee_schemas::rejection::UNREGISTERED_UPLINK;

pub use crate::field_ingest::Uplink;
use crate::field_ingest::{FieldDoor, Item, error};
use crate::options::{Device, DeviceProfile, Gateway};

impl Uplink {
    /// A ChirpStack v4 `up` event (JSON marshaler).
    pub fn chirpstack(event: &Value) -> Result<Self, String> {
        Ok(Uplink {
            dev_eui: (event["deviceInfo"]["devEui"].as_str())
                .unwrap_or_default()
                .to_string(),
            time: (event["time"].as_str())
                .ok_or("the uplink has no time")?
                .to_string(),
            f_cnt: event["fCnt"].as_u64().unwrap_or(0),
            data: base64(&event["data"])?,
            object: event.get("object").filter(|o| o.is_object()).cloned(),
            radio: radio(&event["rxInfo"]),
        })
    }

    /// A The Things Stack v3 uplink message (`None`: another message, e.g. a join).
    pub fn ttn(message: &Value) -> Option<Result<Self, String>> {
        let up = message.get("uplink_message")?;
        let uplink = || -> Result<Self, String> {
            let time = (up["received_at"].as_str())
                .or_else(|| message["received_at"].as_str())
                .ok_or("the uplink has no received_at")?;
            Ok(Uplink {
                dev_eui: (message["end_device_ids"]["dev_eui"].as_str())
                    .unwrap_or_default()
                    .to_string(),
                time: time.to_string(),
                f_cnt: up["f_cnt"].as_u64().unwrap_or(0),
                data: base64(&up["frm_payload"])?,
                object: (up.get("decoded_payload"))
                    .filter(|o| o.is_object())
                    .cloned(),
                radio: radio(&up["rx_metadata"]),
            })
        };
        Some(uplink())
    }
}

/// The bytes of a base64 field (none when absent).
fn base64(data: &Value) -> Result<Vec<u8>, String> {
    match data.as_str() {
        Some(d) => STANDARD
            .decode(d)
            .map_err(|e| format!("the payload is not base64: {e}")),
        None => Ok(Vec::new()),
    }
}

/// (RSSI, SNR) of each gateway in a list of reception metadata.
fn radio(list: &Value) -> Vec<(Option<f64>, Option<f64>)> {
    (list.as_array().into_iter().flatten())
        .map(|r| (r["rssi"].as_f64(), r["snr"].as_f64()))
        .collect()
}

/// The network servers whose messages the hub reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkServer {
    /// ChirpStack v4 (HTTP integration or MQTT, JSON marshaler).
    ChirpStack,
    /// The Things Stack v3 (webhook or MQTT).
    TheThingsStack,
}

impl NetworkServer {
    pub fn name(self) -> &'static str {
        match self {
            NetworkServer::ChirpStack => "chirpstack",
            NetworkServer::TheThingsStack => "ttn",
        }
    }

    /// Which server wrote `message`, from its shape (MQTT topics are the operator's to
    /// name): ChirpStack's events carry `deviceInfo`, The Things Stack's `end_device_ids`.
    pub fn of(message: &Value) -> Option<Self> {
        if message.get("deviceInfo").is_some() {
            Some(NetworkServer::ChirpStack)
        } else if message.get("end_device_ids").is_some() {
            Some(NetworkServer::TheThingsStack)
        } else {
            None
        }
    }

    /// The uplink in `message`; `None`: another kind of message (a join, a status…).
    pub fn uplink(self, message: &Value) -> Option<Result<Uplink, String>> {
        match self {
            NetworkServer::ChirpStack => Some(Uplink::chirpstack(message)),
            NetworkServer::TheThingsStack => Uplink::ttn(message),
        }
    }

    /// The DevEUI `message` names, even when it is no readable uplink.
    fn dev_eui(self, message: &Value) -> &str {
        match self {
            NetworkServer::ChirpStack => message["deviceInfo"]["devEui"].as_str(),
            NetworkServer::TheThingsStack => message["end_device_ids"]["dev_eui"].as_str(),
        }
        .unwrap_or_default()
    }
}

/// `POST /ingest/v1/chirpstack?event=…`.
pub async fn chirpstack(
    State(door): State<Arc<FieldDoor>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Other events (`status`, `join`, `log`…) are acknowledged and not kept.
    if params.get("event").is_some_and(|e| e != "up") {
        return StatusCode::NO_CONTENT.into_response();
    }
    receive(&door, &headers, body, NetworkServer::ChirpStack).await
}

/// `POST /ingest/v1/ttn`.
pub async fn ttn(State(door): State<Arc<FieldDoor>>, headers: HeaderMap, body: Bytes) -> Response {
    receive(&door, &headers, body, NetworkServer::TheThingsStack).await
}

/// The HTTP side of both webhooks: the key, the JSON, the answer.
async fn receive(
    door: &FieldDoor,
    headers: &HeaderMap,
    body: Bytes,
    server: NetworkServer,
) -> Response {
    let Some(gateway) = door.gateway(headers) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "a gateway key is needed (Authorization: Bearer KEY, or X-Api-Key)",
        );
    };
    if !door.remembers() {
        return crate::field_ingest::starting();
    }
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "the body is not JSON");
    };
    match deliver(door, gateway, server, message).await {
        Ok(Delivery::Nothing) => StatusCode::NO_CONTENT.into_response(),
        Ok(Delivery::Answered(answer)) => (StatusCode::OK, Json(answer)).into_response(),
        Ok(Delivery::Forbidden(message)) => error(StatusCode::FORBIDDEN, &message),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("the broker did not acknowledge the event: {e}; send it again"),
        ),
    }
}

/// What became of one network server's message.
#[derive(Debug)]
pub enum Delivery {
    /// Not an uplink, or nothing to record (a counter that counted nobody).
    Nothing,
    /// Sent and acknowledged by the broker (or an uplink already sent): the door's answer.
    Answered(Value),
    /// The gateway may not post to the device's stream.
    Forbidden(String),
}

/// What both network servers' doors (webhooks and MQTT) do with a message: the device,
/// the reading, one event per uplink, the field door. An uplink of a device no register
/// holds is sent as an [`UNREGISTERED_UPLINK`] to the first stream the gateway may post
/// to, so ingest keeps it in `dead_letters` as `unknown_device`. `Err`: the broker did not
/// acknowledge (nothing is remembered; the sender sends again).
pub async fn deliver(
    door: &FieldDoor,
    gateway: &Gateway,
    server: NetworkServer,
    message: Value,
) -> crate::Result<Delivery> {
    let Some(uplink) = server.uplink(&message) else {
        return Ok(Delivery::Nothing);
    };
    let dev_eui = match &uplink {
        Ok(u) => u.dev_eui.clone(),
        Err(_) => server.dev_eui(&message).to_string(),
    };
    let Some(device) = door.device(&dev_eui) else {
        let stream = gateway.dead_letter_stream();
        tracing::warn!(
            dev_eui,
            gateway = gateway.name,
            "an uplink of an unregistered device"
        );
        let item = Item::of_value(json!({"type": UNREGISTERED_UPLINK, "devEui": dev_eui,
            "networkServer": server.name(), "uplink": message}));
        return door
            .send(gateway, stream, vec![item])
            .await
            .map(Delivery::Answered);
    };
    let stream = stream_of(device.profile);
    if !gateway.may_post(stream) {
        return Ok(Delivery::Forbidden(format!(
            "gateway {} may not post to {}",
            gateway.name,
            stream.name()
        )));
    }
    let (item, claim) = match uplink.and_then(|u| Ok((reading(&device, &u)?, u))) {
        // Nobody counted: nothing to record, nothing to send.
        Ok((None, _)) => return Ok(Delivery::Nothing),
        Ok((Some(event), uplink)) => match door.claim_uplink(&uplink) {
            Some(claim) => {
                let mut item = Item::of_value(event);
                item.frame = Some(claim.header());
                (item, Some(claim))
            }
            None => {
                crate::field_ingest::count_answered(stream, "duplicate", 1);
                let id = event.get("id").cloned().unwrap_or(Value::Null);
                return Ok(Delivery::Answered(json!({
                    "stream": stream.name(), "accepted": 1, "refused": 0, "duplicates": 1,
                    "items": [{"index": 0, "id": id, "status": "accepted", "duplicate": true}],
                })));
            }
        },
        // An uplink that does not decode goes as it came: ingest keeps it as a dead letter.
        Err(reason) => {
            tracing::warn!(dev_eui, reason, "an uplink did not decode");
            (Item::of_value(message), None)
        }
    };
    let sent = door.send(gateway, stream, vec![item]).await;
    if let (Err(_), Some(claim)) = (&sent, claim) {
        door.release_uplink(claim);
    }
    sent.map(Delivery::Answered)
}

/// The stream a profile's readings go to.
fn stream_of(profile: DeviceProfile) -> Stream {
    match profile {
        DeviceProfile::UltrasonicFill => Stream::WasteContainers,
        DeviceProfile::WeatherStation => Stream::Vineyards,
        DeviceProfile::PeopleCounter => Stream::Tourism,
    }
}

/// The hub's event for `uplink` of `device`; `None` when there is nothing to record (a
/// people counter that counted nobody).
pub fn reading(device: &Device, uplink: &Uplink) -> Result<Option<Value>, String> {
    let object = uplink.object.as_ref();
    let bytes = &uplink.data;
    let mut event = match device.profile {
        DeviceProfile::PeopleCounter => {
            let from_object = object.and_then(|o| {
                ["count", "peopleIn", "people_in", "counter_a"]
                    .iter()
                    .find_map(|k| o.get(*k))
            });
            let count = match (from_object, bytes.as_slice()) {
                (Some(v), _) => v
                    .as_u64()
                    .ok_or("the decoded count is not a whole number")?,
                (None, [hi, lo, ..]) => u64::from(u16::from_be_bytes([*hi, *lo])),
                (None, _) => {
                    return Err(format!(
                        "{} payload bytes, a people counter sends at least 2",
                        bytes.len()
                    ));
                }
            };
            if count == 0 {
                return Ok(None);
            }
            let point = vallee_schemas::geo::GeoPoint::new(device.longitude, device.latitude);
            let commune = vallee_schemas::communes::valley()
                .locate(&point)
                .ok_or("the counter stands outside the valley")?;
            json!({"type": "SiteVisit", "site": device.entity_id, "source": "counter",
                "locationCode": commune.insee_code, "count": count,
                // One event per uplink: the counter, and its frame counter.
                "id": format!("urn:ngsi-ld:SiteVisit:{}-{}-{}", device.entity_id, device.dev_eui.to_lowercase(), uplink.f_cnt)})
        }
        DeviceProfile::UltrasonicFill => {
            let depth = device.depth_mm.ok_or("the device has no depth_mm")?;
            let (distance, battery) = match object {
                Some(o) if o.get("distance").is_some() => (
                    o["distance"]
                        .as_f64()
                        .ok_or("object.distance is not a number")?,
                    o["battery"].as_f64(),
                ),
                _ => match bytes.as_slice() {
                    [hi, lo, rest @ ..] => (
                        f64::from(u16::from_be_bytes([*hi, *lo])),
                        rest.first().map(|b| f64::from(*b)),
                    ),
                    _ => {
                        return Err(format!(
                            "{} payload bytes, an ultrasonic sensor sends 2 or 3",
                            bytes.len()
                        ));
                    }
                },
            };
            let level = ((depth - distance) / depth).clamp(0.0, 1.0);
            let mut e = json!({"type": "WasteContainer", "fillingLevel": (level * 1000.0).round() / 1000.0});
            if let Some(b) = battery {
                e["batteryLevel"] = json!(b / 100.0);
            }
            // The register's threshold travels with the reading: the stream stage's fill
            // alerts read it there (after a commune's own).
            if let Some(t) = device.fill_threshold {
                e["binFullnessThreshold"] = json!(t);
            }
            e
        }
        DeviceProfile::WeatherStation => {
            let (temperature, humidity, rain) = match object {
                Some(o) if o.get("temperature").is_some() => (
                    o["temperature"].as_f64(),
                    o["humidity"].as_f64(),
                    o["rain"].as_f64(),
                ),
                _ => match bytes.as_slice() {
                    [t0, t1, h, r0, r1, ..] => (
                        Some(f64::from(i16::from_be_bytes([*t0, *t1])) / 10.0),
                        Some(f64::from(*h)),
                        Some(f64::from(u16::from_be_bytes([*r0, *r1])) / 10.0),
                    ),
                    _ => {
                        return Err(format!(
                            "{} payload bytes, a weather station sends 5",
                            bytes.len()
                        ));
                    }
                },
            };
            json!({"type": "WeatherObserved", "temperature": temperature,
                "relativeHumidity": humidity.map(|h| h / 100.0), "precipitation": rain})
        }
    };
    if event.get("id").is_none() {
        event["id"] = json!(device.entity_id);
    }
    event["dateObserved"] = json!(uplink.time);
    event["location"] =
        json!({"type": "Point", "coordinates": [device.longitude, device.latitude]});
    // Radio metadata, kept with the reading (the `extra` column) for sensor health.
    event["gatewayCount"] = json!(uplink.radio.len());
    if let Some(rssi) = uplink.radio.iter().filter_map(|r| r.0).reduce(f64::max) {
        event["rssi"] = json!(rssi);
    }
    if let Some(snr) = uplink.radio.iter().filter_map(|r| r.1).reduce(f64::max) {
        event["snr"] = json!(snr);
    }
    event["frameCounter"] = json!(uplink.f_cnt);
    Ok(Some(event))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHIRPSTACK: &str = include_str!("../../tests/fixtures/chirpstack/uplink.json");
    const TTN: &str = include_str!("../../tests/fixtures/ttn/uplink.json");

    /// ChirpStack's documented uplink (tests/fixtures/chirpstack), with `data` set.
    fn uplink(data: &[u8]) -> Uplink {
        let mut event: Value = serde_json::from_str(CHIRPSTACK).unwrap();
        event["data"] = json!(STANDARD.encode(data));
        Uplink::chirpstack(&event).unwrap()
    }

    fn device(profile: DeviceProfile) -> Device {
        Device {
            dev_eui: "0101010101010101".into(),
            entity_id: "urn:ngsi-ld:WasteContainer:gignac-lora-1".into(),
            profile,
            depth_mm: Some(1200.0),
            fill_threshold: None,
            latitude: 43.6521,
            longitude: 3.5512,
        }
    }

    #[test]
    fn an_ultrasonic_uplink_is_a_fill_level_with_its_radio() {
        // 300 mm from the sensor in a 1.2 m bin: three quarters full; battery 87 %.
        let e = reading(
            &device(DeviceProfile::UltrasonicFill),
            &uplink(&[0x01, 0x2c, 87]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(e["type"], "WasteContainer");
        assert_eq!(e["fillingLevel"], 0.75);
        assert_eq!(e["batteryLevel"], 0.87);
        assert_eq!(e["dateObserved"], "2022-07-18T09:34:15.775023242+00:00");
        assert_eq!(
            (e["rssi"].as_f64(), e["snr"].as_f64()),
            (Some(-36.0), Some(10.5))
        );
        assert_eq!(e["gatewayCount"], 1);
        assert!(e.get("binFullnessThreshold").is_none(), "none registered");
        // A bin registered as full at 70 %: its readings say so, for the fill alerts.
        let seventy = Device {
            fill_threshold: Some(0.7),
            ..device(DeviceProfile::UltrasonicFill)
        };
        let e = reading(&seventy, &uplink(&[0x01, 0x2c])).unwrap().unwrap();
        assert_eq!(e["binFullnessThreshold"], 0.7);
        // The network server's decoded object wins over the bytes.
        let mut decoded = uplink(&[0xff, 0xff]);
        decoded.object = Some(json!({"distance": 1200.0}));
        let e = reading(&device(DeviceProfile::UltrasonicFill), &decoded)
            .unwrap()
            .unwrap();
        assert_eq!(e["fillingLevel"], 0.0);
        // The documented example's single byte is no reading.
        let one_byte = Uplink::chirpstack(&serde_json::from_str(CHIRPSTACK).unwrap()).unwrap();
        assert!(reading(&device(DeviceProfile::UltrasonicFill), &one_byte).is_err());
    }

    #[test]
    fn a_weather_uplink_is_temperature_humidity_and_rain() {
        // -2.5 °C, 93 %, 1.2 mm.
        let e = reading(
            &device(DeviceProfile::WeatherStation),
            &uplink(&[0xff, 0xe7, 93, 0x00, 0x0c]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(e["type"], "WeatherObserved");
        assert_eq!(
            (
                e["temperature"].as_f64(),
                e["relativeHumidity"].as_f64(),
                e["precipitation"].as_f64()
            ),
            (Some(-2.5), Some(0.93), Some(1.2))
        );
        assert!(reading(&device(DeviceProfile::WeatherStation), &uplink(&[1, 2])).is_err());
    }

    #[test]
    fn a_people_counter_uplink_is_the_visits_of_its_site_once_per_frame() {
        let counter = Device {
            entity_id: "abbaye-de-gellone".into(),
            latitude: 43.7339,
            longitude: 3.5498,
            ..device(DeviceProfile::PeopleCounter)
        };
        // 42 people came in since the last uplink.
        let mut up = uplink(&[0x00, 0x2a]);
        up.f_cnt = 7;
        let e = reading(&counter, &up).unwrap().unwrap();
        assert_eq!(e["type"], "SiteVisit");
        assert_eq!(e["site"], "abbaye-de-gellone");
        assert_eq!(e["locationCode"], "34261", "Saint-Guilhem-le-Désert");
        assert_eq!(
            (e["source"].as_str(), e["count"].as_u64()),
            (Some("counter"), Some(42))
        );
        assert_eq!(
            e["id"],
            "urn:ngsi-ld:SiteVisit:abbaye-de-gellone-0101010101010101-7"
        );
        // The same count in the next frame is another visit; in the same frame, the same.
        up.f_cnt = 8;
        assert_ne!(reading(&counter, &up).unwrap().unwrap()["id"], e["id"]);
        // A decoded object's count wins; nobody counted is nothing to record.
        up.object = Some(json!({"people_in": 3}));
        assert_eq!(reading(&counter, &up).unwrap().unwrap()["count"], 3);
        up.object = Some(json!({"count": 0}));
        assert_eq!(reading(&counter, &up).unwrap(), None);
        assert!(reading(&counter, &uplink(&[5])).is_err());
    }

    #[test]
    fn both_servers_documented_uplinks_read_the_same() {
        let ttn = Uplink::ttn(&serde_json::from_str(TTN).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(ttn.dev_eui, "0004A30B001C0530");
        assert_eq!(ttn.time, "2020-02-12T15:15:45.789585559Z");
        assert_eq!(ttn.f_cnt, 1);
        assert_eq!(ttn.data, STANDARD.decode("gkHe").unwrap());
        assert_eq!(
            ttn.object,
            Some(json!({"temperature": 1.0, "luminosity": 0.64}))
        );
        assert_eq!(ttn.radio, [(Some(-35.0), Some(5.0))]);
        let cs = Uplink::chirpstack(&serde_json::from_str(CHIRPSTACK).unwrap()).unwrap();
        assert_eq!(
            (cs.dev_eui.as_str(), cs.f_cnt, cs.radio.as_slice()),
            (
                "0101010101010101",
                0,
                [(Some(-36.0), Some(10.5))].as_slice()
            )
        );
        // A weather station behind The Things Stack: its formatter's temperature is used.
        let e = reading(&device(DeviceProfile::WeatherStation), &ttn)
            .unwrap()
            .unwrap();
        assert_eq!(e["temperature"], 1.0);
        // A message without an uplink (a join) is none of ours.
        assert!(Uplink::ttn(&json!({"join_accept": {}})).is_none());
    }
}
