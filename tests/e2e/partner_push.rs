//! A vineyard partner's frost alerts pushed to its webhook as its own server sees them:
//! signed, retried after a failure with the same delivery id, only its own parcels; and the
//! back office's test push.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vallee_schemas::contract::Stream;

use crate::helpers::*;
use crate::hub::*;
use crate::open_data::produce;

const COOP: &str = "urn:ngsi-ld:AgriParcel:coop-1";
const PINS: &str = "urn:ngsi-ld:AgriParcel:pins-1";
const SECRET: &str = "le-secret-de-la-cave-cooperative";

/// What the partner's endpoint received: (delivery header, signature header, body).
type Received = Arc<Mutex<Vec<(String, String, String)>>>;

/// A partner's HTTP endpoint: answers 503 to the first request, 200 to the others, and
/// keeps what it received.
async fn endpoint() -> (std::net::SocketAddr, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received: Received = Arc::default();
    let kept = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut raw = Vec::new();
                let mut buf = [0u8; 4096];
                let (head, body) = loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    raw.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&raw).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            break (head.to_string(), body[..length].to_string());
                        }
                    }
                };
                let header = |name: &str| {
                    head.lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                        })
                        .unwrap_or_default()
                };
                let first = {
                    let mut all = kept.lock().unwrap();
                    all.push((
                        header("x-vallee-delivery"),
                        header("x-vallee-signature"),
                        body,
                    ));
                    all.len() == 1
                };
                let status = if first {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let _ = socket
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    (addr, received)
}

fn station(name: &str, covers: &str, minutes: i64, temperature: f64) -> Value {
    let t0: chrono::DateTime<chrono::Utc> = "2026-04-21T02:00:00Z".parse().unwrap();
    json!({"id": format!("urn:ngsi-ld:WeatherObserved:{name}"), "type": "WeatherObserved",
        "temperature": temperature, "precipitation": 0.0, "refParcels": [covers],
        "dateObserved": (t0 + chrono::Duration::minutes(minutes)).to_rfc3339(),
        "location": {"type": "Point", "coordinates": [3.59, 43.68]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partners_frost_alert_reaches_its_webhook_signed_and_retried() {
    let (addr, received) = endpoint().await;
    let world = World::new(3).await;
    let config = format!(
        "\n[[api.partners]]\nname = \"cave-cooperative\"\ntoken_sha256 = \"{}\"\nparcels = [\"{COOP}\"]\n\
         webhook_url = \"http://{addr}/alertes\"\nwebhook_secret = \"{SECRET}\"\n",
        "cd".repeat(32)
    );
    let hub = Hub::start_with(&world, "hub", &config).await;

    // Frost at dawn at the stations covering the cooperative's parcel and the estate's.
    produce(
        &world,
        Stream::Vineyards,
        &[
            station("st-coop", COOP, 0, 3.0),
            station("st-coop", COOP, 10, 0.4),
            station("st-pins", PINS, 0, 3.0),
            station("st-pins", PINS, 10, 0.3),
        ],
    )
    .await;
    eventually(Duration::from_secs(90), "the alert delivered", || async {
        received.lock().unwrap().len() >= 2
    })
    .await;
    let got = received.lock().unwrap().clone();
    let (first, second) = (&got[0], &got[1]);
    assert_eq!(first.0, second.0, "the retry carries the same delivery id");
    assert!(!first.0.is_empty());
    for (_, signature, body) in [first, second] {
        assert_eq!(
            *signature,
            vallee_graphql::partner_alerts::signature(SECRET, body.as_bytes()),
            "signed over the exact body"
        );
    }
    let alert: Value = serde_json::from_str(&second.2).unwrap();
    assert_eq!(alert["partner"], "cave-cooperative");
    assert_eq!(alert["test"], false);
    assert_eq!(alert["alert"]["entityId"], COOP);
    assert_eq!(alert["alert"]["kind"], "FROST");
    assert!(
        got.iter().all(|(_, _, b)| !b.contains(PINS)),
        "another partner's parcel is never pushed here"
    );

    // Staff see where alerts go; only the intercommunality's may send a test push.
    let partners = hub
        .ok(
            Some(CCVH_STAFF),
            "{ partners { name webhookUrl } }",
            json!({}),
        )
        .await;
    assert!(
        partners
            .to_string()
            .contains(&format!("http://{addr}/alertes"))
    );
    let anonymous = hub.gql(None, "{ partners { name } }", json!({})).await;
    assert_eq!(code(&anonymous), "FORBIDDEN");
    let test = "mutation { testPartnerPush(partner: \"cave-cooperative\") { webhookStatus error delivery } }";
    assert_eq!(
        code(&hub.gql(Some(GIGNAC_STAFF), test, json!({})).await),
        "FORBIDDEN"
    );
    let pushed = hub.ok(Some(CCVH_STAFF), test, json!({})).await["testPartnerPush"].clone();
    assert_eq!(pushed["webhookStatus"], 200, "{pushed}");
    let last = received.lock().unwrap().last().cloned().unwrap();
    assert_eq!(Value::String(last.0), pushed["delivery"]);
    assert_eq!(
        serde_json::from_str::<Value>(&last.2).unwrap()["test"],
        true
    );
    hub.stop().await;
}
