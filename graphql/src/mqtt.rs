//! MQTT: LoRaWAN network servers publish their uplinks on a broker (ChirpStack v4 on
//! `application/{app}/device/{DevEUI}/event/up`, The Things Stack v3 on
//! `v3/{app}@{tenant}/devices/{device}/up`); the hub subscribes and passes each one through
//! the same path as the webhooks ([`crate::lorawan::deliver`]): register, decoder, one
//! event per frame, the field door, `acks=all`.
//!
//! ```text
//!  broker ─► QoS 1, persistent session, $share/GROUP/filter
//!         ─► eventloop task ─► bounded channel ─► worker: deliver, in order
//!                                                  ─► broker acknowledged ─► PUBACK
//! ```
//! At least once from MQTT: an uplink is acknowledged (PUBACK) only once Kafka
//! acknowledged its event, and the session is kept by the broker under the replica's
//! client id, so what a stopped or killed replica did not acknowledge is delivered again
//! when it comes back. Exactly once into the lake: a frame delivered again (sent to Kafka
//! before a crash, but not acknowledged) is known to the door, which read its record back
//! at start ([`crate::field_ingest::FieldDoor::remember_sent`]), so it is acknowledged and
//! not sent again. A message that is not JSON, or no network
//! server's, is sent as it came, so ingest keeps it in `dead_letters`. The broker's
//! inflight window (mosquitto: 20 messages) bounds what waits in the channel.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Incoming, Outgoing, Publish, QoS};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::field_ingest::Item;
use crate::lorawan::{Delivery, NetworkServer, deliver};
use crate::options::{Gateway, MqttOptions};
use crate::{ApiState, Error, Result};

/// Messages waiting for the worker (the broker's inflight window is far smaller).
const CHANNEL: usize = 256;

/// The longest wait between two tries, to the broker or to Kafka.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The client's options for `options` (`mqtt://host[:port]`).
fn client_options(options: &MqttOptions) -> Result<rumqttc::MqttOptions> {
    let invalid = |why: String| Error::Options(format!("mqtt.url {:?}: {why}", options.url));
    let url = url::Url::parse(&options.url).map_err(|e| invalid(e.to_string()))?;
    if url.scheme() != "mqtt" {
        return Err(invalid("only mqtt:// is supported".into()));
    }
    let host = url.host_str().ok_or_else(|| invalid("no host".into()))?;
    let mut client =
        rumqttc::MqttOptions::new(options.client_id.clone(), host, url.port().unwrap_or(1883));
    client
        .set_keep_alive(Duration::from_secs(30))
        // The broker keeps the subscription and what was not acknowledged.
        .set_clean_session(false)
        .set_manual_acks(true)
        // A network server's JSON for one uplink is a few KiB.
        .set_max_packet_size(256 * 1024, 64 * 1024);
    if !options.username.is_empty() {
        client.set_credentials(options.username.clone(), options.password.expose());
    }
    Ok(client)
}

/// The filters subscribed to: shared among the replicas unless no group is named.
fn filters(options: &MqttOptions) -> Vec<rumqttc::SubscribeFilter> {
    (options.topics.iter())
        .map(|topic| {
            let path = match options.shared_group.as_str() {
                "" => topic.clone(),
                group => format!("$share/{group}/{topic}"),
            };
            rumqttc::SubscribeFilter::new(path, QoS::AtLeastOnce)
        })
        .collect()
}

/// Subscribes on `[api.mqtt]`'s broker and delivers every uplink until `shutdown`;
/// `connected` says whether the broker is reached (for `/readyz`). Reconnects by itself.
pub async fn run(
    state: Arc<ApiState>,
    connected: Arc<AtomicBool>,
    shutdown: CancellationToken,
) -> Result<()> {
    let options = &state.options.mqtt;
    let gateway = (state.options.gateways.iter())
        .find(|g| g.name == options.gateway)
        .cloned()
        .ok_or_else(|| {
            Error::Options(format!("mqtt.gateway {:?} is no gateway", options.gateway))
        })?;
    // The request channel outsizes what the worker can acknowledge while the event loop
    // waits on a full [`CHANNEL`], so neither ever waits on the other.
    let (client, mut events) = AsyncClient::new(client_options(options)?, 4 * CHANNEL);
    let (sender, mut received) = tokio::sync::mpsc::channel::<Publish>(CHANNEL);
    let worker = {
        let (state, client, stop) = (state.clone(), client.clone(), shutdown.clone());
        tokio::spawn(async move {
            while let Some(publish) = received.recv().await {
                if !handle(&state, &gateway, &publish, &stop).await {
                    return;
                }
                // Queued to the event loop, which sends it (it is polled until the end).
                if let Err(e) = client.ack(&publish).await {
                    tracing::warn!(error = %e, "an MQTT acknowledgement was not queued");
                }
            }
        })
    };
    let mut backoff = Duration::from_millis(200);
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            event = events.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                tracing::info!(
                    url = options.url,
                    session_present = ack.session_present,
                    "MQTT broker reached"
                );
                connected.store(true, Ordering::Release);
                backoff = Duration::from_millis(200);
                // Again at every connection: a broker that lost the session (restarted
                // without persistence) has lost the subscription too. Never awaited here:
                // this task is the one that empties the request channel.
                if let Err(e) = client.try_subscribe_many(filters(options)) {
                    tracing::warn!(error = %e, "the MQTT subscription was not queued");
                }
            }
            Ok(Event::Incoming(Incoming::Publish(publish))) => {
                if sender.send(publish).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                connected.store(false, Ordering::Release);
                tracing::warn!(url = options.url, error = %e, retry_in = ?backoff, "MQTT broker unreachable");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    connected.store(false, Ordering::Release);
    // Let the worker finish what it holds, then send its acknowledgements and leave.
    drop(sender);
    let _ = worker.await;
    let _ = client.try_disconnect();
    let flushed = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match events.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    let _ = flushed.await;
    Ok(())
}

/// Delivers one MQTT message, trying again while Kafka does not acknowledge it; `false`
/// when the hub stops first (the message stays unacknowledged, delivered again later).
async fn handle(
    state: &ApiState,
    gateway: &Gateway,
    publish: &Publish,
    shutdown: &CancellationToken,
) -> bool {
    let door = &state.field_door;
    let mut backoff = Duration::from_millis(200);
    while !door.remembers() {
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    // Read once; a retry sends the same message again.
    let message = serde_json::from_slice::<Value>(&publish.payload).ok();
    let server = message.as_ref().and_then(NetworkServer::of);
    loop {
        let delivered = match (&message, server) {
            (Some(message), Some(server)) => deliver(door, gateway, server, message.clone()).await,
            // Not JSON, or nobody's uplink: kept as it came.
            _ => {
                let stream = gateway.dead_letter_stream();
                tracing::warn!(
                    topic = publish.topic,
                    "an MQTT message that is no network server's uplink"
                );
                let item = Item::of_bytes(&publish.payload);
                door.send(gateway, stream, vec![item])
                    .await
                    .map(Delivery::Answered)
            }
        };
        match delivered {
            Ok(Delivery::Forbidden(why)) => {
                tracing::error!(
                    topic = publish.topic,
                    why,
                    "an MQTT uplink for a stream its gateway may not post to"
                );
                return true;
            }
            Ok(_) => return true,
            Err(e) => {
                tracing::warn!(topic = publish.topic, error = %e, retry_in = ?backoff, "an MQTT uplink was not acknowledged by the broker");
                tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_share_the_uplink_topics_and_only_plain_mqtt_is_taken() {
        let options = MqttOptions {
            url: "mqtt://broker.valley.local".into(),
            ..MqttOptions::default()
        };
        let paths: Vec<String> = filters(&options).into_iter().map(|f| f.path).collect();
        assert_eq!(
            paths,
            [
                "$share/vallee/application/+/device/+/event/up",
                "$share/vallee/v3/+/devices/+/up"
            ]
        );
        let alone = MqttOptions {
            shared_group: String::new(),
            ..options.clone()
        };
        assert_eq!(filters(&alone)[0].path, "application/+/device/+/event/up");
        assert_eq!(client_options(&options).unwrap().broker_address().1, 1883);
        let tls = MqttOptions {
            url: "mqtts://broker.valley.local:8883".into(),
            ..options
        };
        assert!(client_options(&tls).is_err(), "no TLS client is built in");
    }
}
