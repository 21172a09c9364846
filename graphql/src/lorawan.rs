//! LoRaWAN network servers' webhooks: ChirpStack v4's HTTP integration posts each uplink
//! (`POST /ingest/v1/chirpstack?event=up`, its JSON marshaler) with a key in a header it
//! is configured to send; the hub turns it into its own event and passes it through the
//! field door ([`crate::field_ingest`]): the same decoder, acknowledgements, memory of
//! retries and limits.
//!
//! ```text
//!  uplink ─► deviceInfo.devEui ─► [[api.devices]] (entity, profile, depth, position)
//!        ─► the network server's decoded `object` if any, else `data` by profile
//!        ─► WasteContainer / WeatherObserved event (+ rssi, snr, gateways, battery)
//!        ─► field door ─► topic
//! ```
//! Built-in payload decoders: an ultrasonic fill sensor sends the distance to the waste in
//! mm (u16, big-endian), then optionally its battery in % (u8); a weather station sends the
//! temperature in tenths of °C (i16), the relative humidity in % (u8) and the rain since
//! the last uplink in tenths of mm (u16). ChirpStack itself keeps one event per uplink
//! heard by several gateways; an uplink posted again is the same content, hence a
//! `duplicate` for the door. An uplink that does not decode is sent as it came, so ingest
//! keeps it in `dead_letters`. Other events (`status`, `join`, `log`…) are acknowledged
//! and not kept yet (sensor health is not built).

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

use crate::field_ingest::{FieldDoor, error};
use crate::options::{Device, DeviceProfile};

/// `POST /ingest/v1/chirpstack?event=…`.
pub async fn chirpstack(
    State(door): State<Arc<FieldDoor>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(gateway) = door.gateway(&headers) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "a gateway key is needed (Authorization: Bearer KEY, or X-Api-Key)",
        );
    };
    if params.get("event").is_some_and(|e| e != "up") {
        return StatusCode::NO_CONTENT.into_response();
    }
    let Ok(uplink) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "the body is not a ChirpStack JSON event",
        );
    };
    let dev_eui = uplink["deviceInfo"]["devEui"].as_str().unwrap_or_default();
    let Some(device) =
        (door.options.devices.iter()).find(|d| d.dev_eui.eq_ignore_ascii_case(dev_eui))
    else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("no device {dev_eui:?} in [[api.devices]]"),
        );
    };
    let stream = stream_of(device.profile);
    if !gateway.may_post(stream) {
        return error(
            StatusCode::FORBIDDEN,
            &format!("gateway {} may not post to {}", gateway.name, stream.name()),
        );
    }
    // An uplink that does not decode goes as it came: ingest keeps it as a dead letter.
    let item = match reading(device, &uplink) {
        Ok(event) => serde_json::to_vec(&event).expect("a value serializes"),
        Err(reason) => {
            tracing::warn!(dev_eui, reason, "an uplink did not decode");
            body.to_vec()
        }
    };
    match door.send(gateway, stream, vec![item]).await {
        Ok(answer) => (StatusCode::OK, Json(answer)).into_response(),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("the broker did not acknowledge the event: {e}; send it again"),
        ),
    }
}

/// The stream a profile's readings go to.
fn stream_of(profile: DeviceProfile) -> Stream {
    match profile {
        DeviceProfile::UltrasonicFill => Stream::WasteContainers,
        DeviceProfile::WeatherStation => Stream::Vineyards,
    }
}

/// The hub's event for `uplink` of `device`.
pub fn reading(device: &Device, uplink: &Value) -> Result<Value, String> {
    let time = uplink["time"].as_str().ok_or("the uplink has no time")?;
    let object = uplink.get("object").filter(|o| o.is_object());
    let bytes = match uplink["data"].as_str() {
        Some(data) => STANDARD
            .decode(data)
            .map_err(|e| format!("data is not base64: {e}"))?,
        None => Vec::new(),
    };
    let mut event = match device.profile {
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
    event["id"] = json!(device.entity_id);
    event["dateObserved"] = json!(time);
    event["location"] =
        json!({"type": "Point", "coordinates": [device.longitude, device.latitude]});
    // Radio metadata, kept with the reading (the `extra` column) for sensor health.
    let rx = uplink["rxInfo"].as_array().cloned().unwrap_or_default();
    event["gatewayCount"] = json!(rx.len());
    if let Some(rssi) = rx
        .iter()
        .filter_map(|r| r["rssi"].as_f64())
        .reduce(f64::max)
    {
        event["rssi"] = json!(rssi);
    }
    if let Some(snr) = rx.iter().filter_map(|r| r["snr"].as_f64()).reduce(f64::max) {
        event["snr"] = json!(snr);
    }
    event["frameCounter"] = json!(uplink["fCnt"].as_u64().unwrap_or(0));
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ChirpStack's documented uplink (tests/fixtures/chirpstack), with `data` set.
    fn uplink(data: &[u8]) -> Value {
        let text = include_str!("../../tests/fixtures/chirpstack/uplink.json");
        let mut uplink: Value = serde_json::from_str(text).unwrap();
        uplink["data"] = json!(STANDARD.encode(data));
        uplink
    }

    fn device(profile: DeviceProfile) -> Device {
        Device {
            dev_eui: "0101010101010101".into(),
            entity_id: "urn:ngsi-ld:WasteContainer:gignac-lora-1".into(),
            profile,
            depth_mm: Some(1200.0),
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
        // The network server's decoded object wins over the bytes.
        let mut decoded = uplink(&[0xff, 0xff]);
        decoded["object"] = json!({"distance": 1200.0});
        let e = reading(&device(DeviceProfile::UltrasonicFill), &decoded).unwrap();
        assert_eq!(e["fillingLevel"], 0.0);
        // The documented example's single byte is no reading.
        let one_byte: Value =
            serde_json::from_str(include_str!("../../tests/fixtures/chirpstack/uplink.json"))
                .unwrap();
        assert!(reading(&device(DeviceProfile::UltrasonicFill), &one_byte).is_err());
    }

    #[test]
    fn a_weather_uplink_is_temperature_humidity_and_rain() {
        // -2.5 °C, 93 %, 1.2 mm.
        let e = reading(
            &device(DeviceProfile::WeatherStation),
            &uplink(&[0xff, 0xe7, 93, 0x00, 0x0c]),
        )
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
}
