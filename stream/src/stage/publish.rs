//! Alerts to `vallee.alerts`, on arrival: before the commit that writes them to Delta.
//!
//! At least once: a crash between publishing and committing publishes the alert again on
//! the replay, with the same `alertId` (entity, kind and opening time), so consumers dedupe
//! on it. A failed delivery is logged, never retried: the alert stays in the lake and the
//! live view, and the topic is a notification channel.

use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::runtime::Handle;
use vallee_schemas::contract::ALERTS_TOPIC;
use vallee_schemas::tables::AlertRow;

use super::StreamOptions;
use crate::Result;
use vallee_schemas::tables::AlertKind;

use crate::families::bins::fill::is_bin_alert;

/// The stage's producer of alert messages.
pub struct AlertPublisher {
    producer: FutureProducer,
    /// Where deliveries are awaited (the stage's thread never blocks on them).
    handle: Handle,
}

impl AlertPublisher {
    pub fn new(options: &StreamOptions, handle: Handle) -> Result<Self> {
        let producer = options
            .kafka
            .client_config(&[
                ("compression.type", "lz4".into()),
                ("linger.ms", "5".into()),
            ])
            .create()?;
        Ok(AlertPublisher { producer, handle })
    }

    /// Queues each alert (keyed by its id); deliveries are checked in the background.
    pub fn publish(&self, alerts: &[AlertRow]) {
        for alert in alerts {
            let payload = alert_json(alert);
            let record = FutureRecord::to(ALERTS_TOPIC)
                .key(&alert.alert_id)
                .payload(&payload);
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    self.handle.spawn(async move {
                        if let Ok(Err((e, _))) = delivery.await {
                            tracing::warn!(error = %e, "alert not delivered to the alerts topic");
                        }
                    });
                }
                Err((e, _)) => {
                    tracing::warn!(error = %e, alert = alert.alert_id, "alert not queued for the alerts topic")
                }
            }
        }
    }
}

/// An alert row as a FIWARE `Alert` message of `vallee.alerts`.
pub fn alert_json(r: &AlertRow) -> String {
    let category = if is_bin_alert(AlertKind::parse(r.kind)) {
        "waste"
    } else {
        "agriculture"
    };
    serde_json::json!({
        "id": format!("urn:ngsi-ld:Alert:{}", r.alert_id),
        "type": "Alert",
        "alertId": r.alert_id,
        "category": category,
        "subCategory": r.kind,
        "alertSource": r.entity_id,
        "state": r.state,
        "dateIssued": r.date_observed.to_rfc3339(),
        "clearReason": r.clear_reason,
        "fillingLevel": r.filling_level,
        "riskLevel": r.risk_level,
        "communeCode": r.commune_code,
    })
    .to_string()
}
