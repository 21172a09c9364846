//! Partners' frost and mildew alerts pushed to them: a signed webhook, an e-mail, or both
//! (`[[api.partners]] webhook_url`, `webhook_secret`, `email`).
//!
//! ```text
//!  stream stage ─► vallee.alerts ─► group vallee-partner-alerts (one replica per partition)
//!                                      │  an alert on a partner's own parcel
//!                                      ├─► POST webhook_url  X-Vallee-Signature: sha256=HMAC(secret, body)
//!                                      │     retried 6 times over about a minute, then a dead letter
//!                                      │     (private/partner-alerts/dead/, vallee_partner_alerts_dead_total)
//!                                      └─► e-mail through [api.mail]
//!                                      then the offset is stored (committed in the background)
//! ```
//!
//! The consumer group shares the topic's partitions among replicas, so each alert is pushed
//! by one of them; its offset is stored once every push of it is done or dead-lettered and
//! committed in the background, so a crash pushes it again (never loses it). Each push
//! carries `X-Vallee-Delivery`, the same on every try: a partner's endpoint tells a retry
//! by it. Alerts published before the first start with pushes configured are not pushed
//! (the baseline in `private/`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use vallee_schemas::contract::ALERTS_TOPIC;

use crate::alerts_feed::AlertMessage;
use crate::notify::message::{Letterhead, compose};
use crate::options::Partner;
use crate::schema::sensors::{Alert, AlertKind};
use crate::{ApiState, Error, Result};

/// Tries of a webhook before its dead letter, the first wait between two, doubled each time.
pub const ATTEMPTS: u32 = 6;
const FIRST_WAIT: Duration = Duration::from_secs(1);

/// Pushes done, tries that failed, pushes given up (dead letters).
pub static SENT: AtomicU64 = AtomicU64::new(0);
pub static FAILED: AtomicU64 = AtomicU64::new(0);
pub static DEAD: AtomicU64 = AtomicU64::new(0);

/// The counters in the metrics' text format.
pub fn render_metrics(out: &mut String) {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    out.push_str(&format!(
        "# HELP vallee_partner_alerts_sent_total Alerts pushed to partners (webhook or e-mail).\n# TYPE vallee_partner_alerts_sent_total counter\nvallee_partner_alerts_sent_total {}\n\
         # HELP vallee_partner_alerts_failed_total Tries to push an alert that failed (retried).\n# TYPE vallee_partner_alerts_failed_total counter\nvallee_partner_alerts_failed_total {}\n\
         # HELP vallee_partner_alerts_dead_total Alerts given up after every try, kept under private/partner-alerts/dead.\n# TYPE vallee_partner_alerts_dead_total counter\nvallee_partner_alerts_dead_total {}\n",
        load(&SENT),
        load(&FAILED),
        load(&DEAD)
    ));
}

/// Whether `partner` is pushed anything.
fn pushed(partner: &Partner, mail_on: bool) -> bool {
    partner.webhook_url.is_some() || (mail_on && partner.email.is_some())
}

/// Whether `alert` is about one of `partner`'s own parcels (frost, mildew: not bins).
pub fn concerns(partner: &Partner, alert: &Alert) -> bool {
    !matches!(
        alert.kind,
        AlertKind::Fill | AlertKind::Fire | AlertKind::Status | AlertKind::Silent
    ) && partner.parcels.contains(&alert.entity_id)
}

/// The body posted for `alert` (also the test push's, with `test: true`).
pub fn body(partner: &Partner, alert: &Alert, delivery: &str, test: bool) -> Value {
    json!({
        "delivery": delivery,
        "partner": partner.name,
        "test": test,
        "sentAt": Utc::now().to_rfc3339(),
        "alert": {
            "alertId": alert.alert_id.as_str(),
            "kind": format!("{:?}", alert.kind).to_uppercase(),
            "entityId": alert.entity_id,
            "state": format!("{:?}", alert.state).to_uppercase(),
            "dateObserved": alert.date_observed.to_rfc3339(),
            "riskLevel": alert.risk_level.map(|r| format!("{r:?}").to_uppercase()),
            "communeCode": alert.commune_code,
        },
    })
}

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// One try of a webhook: `Ok(status)` when the endpoint answered 2xx.
pub async fn post_once(
    client: &reqwest::Client,
    partner: &Partner,
    delivery: &str,
    body: &Value,
) -> std::result::Result<u16, String> {
    let (Some(url), Some(secret)) = (&partner.webhook_url, &partner.webhook_secret) else {
        return Err("no webhook".into());
    };
    let bytes = serde_json::to_vec(body).expect("JSON");
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-vallee-delivery", delivery)
        .header("x-vallee-signature", signature(secret, &bytes))
        .body(bytes)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    if response.status().is_success() {
        Ok(status)
    } else {
        Err(format!("answered {status}"))
    }
}

/// A client for webhooks: bounded in time, no redirect followed (a signed body goes only
/// where the partner said).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

/// Pushes partners' alerts until `shutdown`; returns at once when nobody is pushed.
pub async fn run(state: Arc<ApiState>, shutdown: CancellationToken) -> Result<()> {
    let mail_on = !state.options.mail.smtp_addr.is_empty();
    let partners: Vec<Partner> = (state.options.partners.iter())
        .filter(|p| pushed(p, mail_on))
        .cloned()
        .collect();
    if partners.is_empty() {
        return Ok(());
    }
    let dir = state.options.private_dir.join("partner-alerts");
    let baseline = tokio::task::spawn_blocking(move || crate::notify::baseline(&dir))
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &state.options.kafka.brokers)
        .set("group.id", "vallee-partner-alerts")
        // At least once: an alert's offset is stored once its pushes are done, and the
        // stored offsets are committed in the background every few seconds.
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[ALERTS_TOPIC])?;
    let client = client();
    tracing::info!(partners = partners.len(), %baseline, "partners' alerts pushed");
    loop {
        let Some(message) =
            vallee_kafka::next_message(&consumer, &shutdown, "partners' alerts").await
        else {
            return Ok(());
        };
        let published = message
            .timestamp()
            .to_millis()
            .and_then(DateTime::from_timestamp_millis);
        let alert = message
            .payload()
            .and_then(|p| serde_json::from_slice::<AlertMessage>(p).ok())
            .map(Alert::from);
        if let Some(alert) = alert
            && published.is_none_or(|t| t >= baseline)
        {
            for partner in partners.iter().filter(|p| concerns(p, &alert)) {
                push(&state, &client, partner, &alert, &shutdown).await;
            }
        }
        if let Err(e) = consumer.store_offset_from_message(&message) {
            tracing::warn!(error = %e, "partners' alerts: offset not stored (pushed again after a restart)");
        }
    }
}

/// The delivery id of `alert` for `partner`: the same on every try.
fn delivery(partner: &Partner, alert: &Alert) -> String {
    hex::encode(
        &Sha256::digest(format!(
            "{}|{}|{:?}|{}",
            partner.name,
            alert.alert_id.as_str(),
            alert.state,
            alert.date_observed.timestamp_micros()
        ))[..16],
    )
}

/// Pushes one alert to one partner: the webhook with its retries (then a dead letter),
/// and the e-mail.
async fn push(
    state: &ApiState,
    client: &reqwest::Client,
    partner: &Partner,
    alert: &Alert,
    shutdown: &CancellationToken,
) {
    let id = delivery(partner, alert);
    if partner.webhook_url.is_some() {
        let body = body(partner, alert, &id, false);
        let mut wait = FIRST_WAIT;
        let mut last = String::new();
        let mut done = false;
        for attempt in 1..=ATTEMPTS {
            match post_once(client, partner, &id, &body).await {
                Ok(_) => {
                    SENT.fetch_add(1, Ordering::Relaxed);
                    done = true;
                    break;
                }
                Err(e) => {
                    FAILED.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        partner = partner.name,
                        delivery = id,
                        attempt,
                        error = e,
                        "webhook refused"
                    );
                    last = e;
                }
            }
            if attempt < ATTEMPTS {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
        if !done {
            DEAD.fetch_add(1, Ordering::Relaxed);
            let dead = json!({"partner": partner.name, "url": partner.webhook_url, "lastError": last,
                "attempts": ATTEMPTS, "body": body});
            let (dir, name) = (
                state
                    .options
                    .private_dir
                    .join("partner-alerts")
                    .join("dead"),
                format!("{id}.json"),
            );
            let written = tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&dir).and_then(|()| {
                    vallee_lake::text_keys::write_durably(&dir, &name, dead.to_string().as_bytes())
                })
            })
            .await;
            tracing::error!(
                partner = partner.name,
                delivery = id,
                error = last,
                kept = matches!(written, Ok(Ok(()))),
                "webhook given up: dead letter"
            );
        }
    }
    let mail = &state.options.mail;
    if let (Some(to), false) = (&partner.email, mail.smtp_addr.is_empty()) {
        let head = Letterhead {
            from_name: &mail.from_name,
            from_address: &mail.from_address,
            public_url: &mail.public_url,
        };
        let kind = match alert.kind {
            AlertKind::Frost => "gel",
            AlertKind::DownyMildew => "mildiou",
            AlertKind::PowderyMildew => "oïdium",
            _ => "vigne",
        };
        let subject = format!(
            "Alerte {kind} : {}",
            alert.entity_id.rsplit(':').next().unwrap_or("")
        );
        let text = format!(
            "Bonjour,\n\nAlerte {kind} sur votre parcelle {} : {:?}{}, le {}.\n\nLe fil de vos parcelles : {}/feeds/vineyard\n\n{}\n",
            alert.entity_id,
            alert.state,
            alert
                .risk_level
                .map(|r| format!(", risque {r:?}"))
                .unwrap_or_default(),
            alert.date_observed.to_rfc3339(),
            mail.public_url.trim_end_matches('/'),
            mail.from_name
        );
        let message = compose(&head, to, &id, &subject, &text, None);
        match crate::notify::smtp::send(mail, to, &message).await {
            Ok(()) => {
                SENT.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                FAILED.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    partner = partner.name,
                    delivery = id,
                    error = e,
                    "alert e-mail not sent"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_the_hmac_of_the_exact_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
