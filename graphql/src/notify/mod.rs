//! E-mails to reporters: when their report is received, at each new step, when it is closed,
//! with the town hall's note.
//!
//! ```text
//!  vallee.citizen.reports ──► the view (replayed) ──► due news: history entries after the
//!   (the outbox: every news              │             baseline, of reports whose contact
//!    is an event there first)            │             this replica keeps (private/contacts)
//!                                        ▼
//!               private/notifications/<id>.sending ─► SMTP relay ─► <id>.sent
//! ```
//!
//! The reports topic is the outbox: a news exists once its event is acknowledged there, so
//! a crash loses none (the view is rebuilt from the topic and the news is still due). The
//! ledger under `private/notifications/` says what was sent: a news is claimed (a file
//! created exclusively, so replicas sharing the private store send it once), sent, then
//! marked sent. A crash between the relay's acceptance and the mark sends it once more at
//! the next start, with the same `Message-ID`; a claim left by a crash is taken again after
//! [`STALE_CLAIM`]. News from before the first start with e-mail configured are not sent
//! (the baseline).
//!
//! Addresses come from the contact store at sending time and never travel elsewhere; a
//! reporter stops the messages with the link in each (`/desabonnement`, also RFC 8058's
//! one-click POST), which removes the address from the report's contact.

pub mod message;
pub mod smtp;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::ApiState;
use crate::citizen::view::Report;
use message::{Letterhead, News, deliverable};

/// A claim older than this, never marked sent, is taken again.
const STALE_CLAIM: Duration = Duration::from_secs(600);

/// How often due news are looked for.
const TICK: Duration = Duration::from_secs(2);

/// Messages handed to the relay, refused or failed, and due but not sent yet.
#[derive(Debug, Default)]
pub struct MailCounters {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub pending: AtomicU64,
}

/// This process's counters (one notifier per process).
pub static COUNTERS: MailCounters = MailCounters {
    sent: AtomicU64::new(0),
    failed: AtomicU64::new(0),
    pending: AtomicU64::new(0),
};

/// The counters in the metrics' text format.
pub fn render_metrics(out: &mut String) {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    out.push_str(&format!(
        "# HELP vallee_mail_sent_total E-mails to reporters handed to the SMTP relay.\n# TYPE vallee_mail_sent_total counter\nvallee_mail_sent_total {}\n\
         # HELP vallee_mail_failed_total Attempts to hand an e-mail to the relay that failed (retried).\n# TYPE vallee_mail_failed_total counter\nvallee_mail_failed_total {}\n\
         # HELP vallee_mail_pending E-mails due and not sent yet.\n# TYPE vallee_mail_pending gauge\nvallee_mail_pending {}\n",
        load(&COUNTERS.sent),
        load(&COUNTERS.failed),
        load(&COUNTERS.pending)
    ));
}

/// The key of the links that stop the messages (derived from the replicas' secret).
#[derive(Clone)]
pub struct UnsubscribeKey([u8; 32]);

impl std::fmt::Debug for UnsubscribeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnsubscribeKey(…)")
    }
}

impl UnsubscribeKey {
    pub fn derive(secret: &[u8]) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
        mac.update(b"vallee unsubscribe v1");
        UnsubscribeKey(mac.finalize().into_bytes().into())
    }

    /// The token of `report_id`'s link.
    pub fn token(&self, report_id: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key");
        mac.update(report_id.as_bytes());
        URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..18])
    }

    fn verify(&self, report_id: &str, token: &str) -> bool {
        let expected = self.token(report_id);
        // Constant time over equal lengths.
        expected.len() == token.len()
            && expected
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// One news to send: the report, which entry of its history, and its stable id.
#[derive(Debug, Clone)]
struct Due {
    id: String,
    news: News,
}

/// The news of `report` after `baseline`: its reception, then each entry whose status or
/// step differs from the one before (notes the hub adds without a change are not news).
fn news_of(report: &Report, baseline: DateTime<Utc>) -> Vec<Due> {
    let s = &report.submitted;
    let service = vallee_schemas::citizen::service(&s.service_code)
        .map_or(s.service_code.clone(), |sv| sv.name.to_string());
    let commune = vallee_schemas::communes::valley()
        .by_code(&s.commune_code)
        .map_or(s.commune_code.clone(), |c| c.name.clone());
    let mut out = Vec::new();
    let mut before: Option<(vallee_schemas::citizen::ReportStatus, _)> = None;
    for (i, entry) in report.history.iter().enumerate() {
        let now = (entry.status, entry.substatus);
        let changed = i == 0 || before != Some(now);
        before = Some(now);
        if !changed || entry.at < baseline {
            continue;
        }
        let id = hex::encode(
            &Sha256::digest(format!(
                "{}|{}|{:?}|{:?}",
                s.report_id,
                entry.at.timestamp_micros(),
                entry.status,
                entry.substatus
            ))[..16],
        );
        out.push(Due {
            id,
            news: News {
                report_id: s.report_id.clone(),
                service: service.clone(),
                commune: commune.clone(),
                agency: s.agency_responsible.clone(),
                received: i == 0,
                status: entry.status,
                substatus: entry.substatus,
                note: entry.status_notes.clone(),
                at: entry.at,
                expected: s.expected_datetime,
            },
        });
    }
    out
}

/// `dir/baseline`: when this feature first started here, written once (news or alerts
/// from before it are not sent). Creates `dir`.
pub(crate) fn baseline(dir: &Path) -> std::io::Result<DateTime<Utc>> {
    std::fs::create_dir_all(dir)?;
    match std::fs::read_to_string(dir.join("baseline")) {
        Ok(t) => t.trim().parse().map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let now = Utc::now();
            vallee_lake::text_keys::write_durably(dir, "baseline", now.to_rfc3339().as_bytes())?;
            Ok(now)
        }
        Err(e) => Err(e),
    }
}

/// The ledger of what was sent, under `private/notifications/`: a file per news sent, and
/// the same ids in memory (every pass filters by them; the files are read once, at start).
#[derive(Debug, Clone)]
struct Ledger {
    dir: PathBuf,
    sent: Arc<Mutex<HashSet<String>>>,
}

impl Ledger {
    fn open(private: &Path) -> std::io::Result<(Ledger, DateTime<Utc>)> {
        let dir = private.join("notifications");
        let baseline = baseline(&dir)?;
        let mut sent = HashSet::new();
        for entry in std::fs::read_dir(&dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".sent") {
                sent.insert(id.to_string());
            }
        }
        let sent = Arc::new(Mutex::new(sent));
        Ok((Ledger { dir, sent }, baseline))
    }

    fn sent(&self, id: &str) -> bool {
        self.sent.lock().expect("ledger lock").contains(id)
    }

    /// Takes `id` to send it; `false` when another sender holds a fresh claim, or sent it
    /// already (a replica sharing this private store).
    fn claim(&self, id: &str) -> std::io::Result<bool> {
        let path = self.dir.join(format!("{id}.sending"));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(_) if self.dir.join(format!("{id}.sent")).exists() => {
                self.sent
                    .lock()
                    .expect("ledger lock")
                    .insert(id.to_string());
                let _ = std::fs::remove_file(&path);
                Ok(false)
            }
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let age = std::fs::metadata(&path)?
                    .modified()?
                    .elapsed()
                    .unwrap_or_default();
                if age > STALE_CLAIM {
                    std::fs::remove_file(&path)?;
                    return self.claim(id);
                }
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn done(&self, id: &str) -> std::io::Result<()> {
        vallee_lake::text_keys::write_durably(&self.dir, &format!("{id}.sent"), b"")?;
        let _ = std::fs::remove_file(self.dir.join(format!("{id}.sending")));
        self.sent
            .lock()
            .expect("ledger lock")
            .insert(id.to_string());
        Ok(())
    }

    fn release(&self, id: &str) {
        let _ = std::fs::remove_file(self.dir.join(format!("{id}.sending")));
    }

    /// Runs `work` on the ledger off the async workers (files written and synced).
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Ledger) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        let ledger = self.clone();
        tokio::task::spawn_blocking(move || work(&ledger))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }
}

/// Sends due news until `shutdown`; does nothing when no relay is configured.
pub async fn run(state: Arc<ApiState>, shutdown: CancellationToken) {
    let mail = state.options.mail.clone();
    if mail.smtp_addr.is_empty() {
        return;
    }
    let ledger = loop {
        let private = state.options.private_dir.clone();
        match tokio::task::spawn_blocking(move || Ledger::open(&private)).await {
            Ok(Ok(l)) => break l,
            Err(e) => tracing::error!(error = %e, "e-mail: the ledger cannot be opened"),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "e-mail: the ledger cannot be opened; retrying")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
    };
    let (ledger, baseline) = ledger;
    tracing::info!(relay = mail.smtp_addr, %baseline, "e-mail to reporters on");
    loop {
        if state.citizens.is_ready()
            && let Err(e) = send_due(&state, &ledger, baseline).await
        {
            tracing::warn!(error = e, "e-mail: sending paused");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

/// One pass: every due news of the reports whose contact this replica keeps, oldest first;
/// stops at the first failure of the relay (retried at the next pass).
async fn send_due(
    state: &ApiState,
    ledger: &Ledger,
    baseline: DateTime<Utc>,
) -> Result<(), String> {
    let mail = &state.options.mail;
    let contacts = state.contacts.clone();
    let kept = tokio::task::spawn_blocking(move || contacts.list())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let mut due: Vec<Due> = {
        let view = state.citizens.view.read().expect("view lock");
        kept.iter()
            .filter_map(|(id, _)| view.reports.get(id))
            .filter(|r| !r.erased)
            .flat_map(|r| news_of(r, baseline))
            .filter(|d| !ledger.sent(&d.id))
            .collect()
    };
    due.sort_by_key(|d| d.news.at);
    COUNTERS.pending.store(due.len() as u64, Ordering::Relaxed);
    let head = Letterhead {
        from_name: &mail.from_name,
        from_address: &mail.from_address,
        public_url: &mail.public_url,
    };
    for d in due {
        // The address as kept now (unsubscribed or erased meanwhile: none), and the claim.
        let (contacts, report, id) = (
            state.contacts.clone(),
            d.news.report_id.clone(),
            d.id.clone(),
        );
        let taken = ledger
            .blocking(move |ledger| {
                let Some(address) = contacts.get(&report)?.and_then(|c| c.email) else {
                    return Ok(None);
                };
                if !deliverable(&address) {
                    tracing::warn!(
                        report_id = report,
                        "e-mail: the address left is not deliverable; skipped"
                    );
                    ledger.done(&id)?;
                    return Ok(None);
                }
                Ok(ledger.claim(&id)?.then_some(address))
            })
            .await?;
        let Some(address) = taken else {
            continue;
        };
        let unsubscribe = format!(
            "{}/desabonnement?r={}&t={}",
            mail.public_url.trim_end_matches('/'),
            d.news.report_id,
            state.unsubscribe.token(&d.news.report_id)
        );
        let message = d.news.message(&head, &address, &d.id, &unsubscribe);
        match smtp::send(mail, &address, &message).await {
            Ok(()) => {
                let id = d.id.clone();
                ledger.blocking(move |ledger| ledger.done(&id)).await?;
                COUNTERS.sent.fetch_add(1, Ordering::Relaxed);
                COUNTERS.pending.fetch_sub(1, Ordering::Relaxed);
                tracing::info!(
                    report_id = d.news.report_id,
                    news = d.id,
                    "e-mail sent to the reporter"
                );
            }
            Err(e) => {
                let id = d.id.clone();
                ledger
                    .blocking(move |ledger| {
                        ledger.release(&id);
                        Ok(())
                    })
                    .await?;
                COUNTERS.failed.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// `GET /desabonnement` (a page asking to confirm) and `POST` (stops the messages).
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/desabonnement", get(confirm).post(unsubscribe))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
struct Link {
    r: String,
    t: String,
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
<link rel=\"stylesheet\" href=\"/pages/pages.css\"></head><body><main id=\"contenu\"><h1>{title}</h1>{body}</main></body></html>\n"
        )),
    )
        .into_response()
}

/// Whether `link` is one the hub signed.
fn signed(state: &ApiState, link: &Link) -> bool {
    let plain = |s: &str| {
        !s.is_empty()
            && s.len() <= 100
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    plain(&link.r) && plain(&link.t) && state.unsubscribe.verify(&link.r, &link.t)
}

fn invalid_link() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Lien non valide",
        "<p>Ce lien de désabonnement n'est pas valide : copiez-le en entier depuis le message reçu.</p>",
    )
}

async fn confirm(State(state): State<Arc<ApiState>>, Query(link): Query<Link>) -> Response {
    if !signed(&state, &link) {
        return invalid_link();
    }
    // A confirmation, so that a mail scanner following links stops nothing.
    page(
        StatusCode::OK,
        "Ne plus recevoir de message",
        &format!(
            "<p>Vous ne recevrez plus de message au sujet de ce signalement ; il reste traité.</p>\
<form method=\"post\" action=\"/desabonnement?r={}&amp;t={}\"><button type=\"submit\">Confirmer</button></form>",
            link.r, link.t
        ),
    )
}

async fn unsubscribe(State(state): State<Arc<ApiState>>, Query(link): Query<Link>) -> Response {
    if !signed(&state, &link) {
        return invalid_link();
    }
    let (contacts, id) = (state.contacts.clone(), link.r.clone());
    let removed = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        if let Some(mut contact) = contacts.get(&id)? {
            contact.email = None;
            if contact.is_empty() {
                contacts.erase(&id)?;
            } else {
                contacts.put(&id, &contact)?;
            }
        }
        Ok(())
    })
    .await;
    match removed {
        Ok(Ok(())) => page(
            StatusCode::OK,
            "C'est noté",
            "<p>Votre adresse est effacée de ce signalement : vous ne recevrez plus de message à son sujet.</p>",
        ),
        _ => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Réessayez plus tard",
            "<p>Le désabonnement n'a pas pu être enregistré. Réessayez dans un moment.</p>",
        ),
    }
}
