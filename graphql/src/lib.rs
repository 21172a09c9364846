//! The hub's HTTP surface, on one address (`--http-addr`): the GraphQL API (async-graphql
//! on axum), GraphiQL, the Open311 GeoReport v2 endpoints and the operations endpoints.
//!
//! ```text
//!  POST /graphql ──► schema ──┬─ citizens' view (replayed from Kafka) ◄── replay consumer
//!  GET  /graphql  (GraphiQL)  ├─ restricted stores (private/contacts, private/text-keys)
//!  WS   /graphql/ws           ├─ lake (DataFusion over Delta): bins, alerts, footfall…
//!  /open311/v2/…  ────────────┘  └─ alerts subscription ◄── vallee.alerts consumer
//!  GET  /  (dashboard)   /healthz /readyz /metrics
//! ```
//! The API keeps no state of its own: writes are Kafka events (see [`citizen`]), reads
//! come from the view every replica rebuilds and from the lake, so `vallee serve` replicas
//! need no shared disk (photos of reports excepted: they are files under the lake's root,
//! see [`media`]).
//!
//! # Layout
//! - [`options`] — [`ApiOptions`] (limits, staff, CORS…).
//! - [`auth`] — citizen and staff tokens.
//! - [`audience`] — who reads sensor results (public, partner, staff) and what they see.
//! - [`background`] — the API's background tasks (view replay, alerts feed, contact
//!   retention, publisher), restarted with back-off after a failure, awaited at shutdown.
//! - [`commands`] — the command layer: every write of citizens and staff (reports, ideas,
//!   places, reporter data, tokens) with its rules, for every door.
//! - [`citizen`] — the event sink, the view and its reads, the contact store.
//! - [`schema`] — the GraphQL schema (mutations are thin adapters over [`commands`]; sensor
//!   types in `schema/sensors.rs`).
//! - [`sensors`] — lake reads: the latest rows of each table, as the tables' contract rows.
//! - [`http`] — routes, GraphiQL, error codes, readiness.
//! - [`open311`] — the GeoReport v2 REST API over the same reports and commands.
//! - [`media`] — photos of reports: sent, re-encoded without metadata, stored, shown once
//!   staff accepted them.
//! - [`limits`] — the request limits every door passes through (client address, rates,
//!   operation shape, WebSocket connections, lake snapshot and gate).
//! - [`rate_limit`] — the bounded fixed-window limiter the limits count with.
//! - [`ops`] — `/metrics`, readiness checks; the stages' status comes in as an
//!   [`ops::StageStatus`] (this crate depends on no stage).
//! - [`open_data`] — the open-data catalogue and downloads (datasets in `vallee-opendata`).
//! - [`research`] — `POST /sql` over the public lake.
//! - [`dashboard`] — the live dashboard at `/` (static files, GraphQL from the browser).

pub mod alerts_feed;
pub mod audience;
pub mod auth;
pub mod background;
pub mod citizen;
pub mod commands;
pub mod dashboard;
pub mod feeds;
pub mod field_clock;
pub mod field_ingest;
pub mod http;
pub mod limits;
pub mod lorawan;
pub mod media;
pub mod mqtt;
pub mod notify;
pub mod open311;
pub mod open_data;
pub mod ops;
pub mod options;
pub mod pages;
pub mod partner_alerts;
pub mod rate_limit;
pub mod research;
pub mod rounds;
pub mod schema;
pub mod sensors;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use vallee_lake::Lake;
use vallee_opendata::sharing::Audience;

pub use options::{ApiOptions, Limits, Researcher, StaffMember};

/// Errors of the HTTP crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address could not be bound (in use, or not ours).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The server failed while serving.
    #[error("http server: {0}")]
    Serve(#[source] std::io::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("lake: {0}")]
    Lake(#[source] Box<vallee_lake::Error>),
    #[error("restricted store: {0}")]
    Store(#[from] std::io::Error),
    /// The options contradict themselves (checked before anything starts).
    #[error("{0}")]
    Options(String),
    #[error("{0}")]
    Internal(String),
    /// Too much work at once: refused rather than queued (`RATE_LIMITED`, HTTP 503).
    #[error("the hub is busy: {0}")]
    Busy(&'static str),
}

/// Result alias of the HTTP crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What every request handler shares.
#[derive(Debug)]
pub struct ApiState {
    pub options: ApiOptions,
    pub auth: auth::Authenticator,
    pub citizens: Arc<citizen::CitizenHub>,
    pub contacts: citizen::contacts::ContactStore,
    pub sensors: Arc<sensors::SensorReader>,
    /// The field door (`POST /ingest/v1/{stream}`).
    pub field_door: Arc<field_ingest::FieldDoor>,
    pub alerts: broadcast::Sender<schema::sensors::Alert>,
    /// Every write of citizens and staff, whichever door it came through.
    pub commands: commands::Commands,
    /// The alerts subscription follows its topic.
    pub alerts_ready: Arc<std::sync::atomic::AtomicBool>,
    /// The MQTT broker of `[api.mqtt]` is reached (when one is named).
    pub mqtt_connected: Arc<std::sync::atomic::AtomicBool>,
    /// The datasets as the public sees them.
    pub open_data: vallee_opendata::OpenData,
    /// `<data-dir>/public`, and `<data-dir>/research` (the datasets researchers see
    /// differently: the parcels shared with them).
    pub public: vallee_opendata::publish::PublicLake,
    pub research: vallee_opendata::publish::PublicLake,
    /// The day's collection rounds, planned on demand and kept a while.
    pub rounds: Arc<rounds::RoundPlanner>,
    /// Signs the links that stop e-mails to a reporter.
    pub unsubscribe: notify::UnsubscribeKey,
    /// The photos of reports (files beside a local lake, else under the public folder).
    pub photos: Option<Arc<media::PhotoStore>>,
    /// Counts photos per client address.
    pub photo_limiter: rate_limit::RateLimiter,
}

/// The replicas' shared secret: configured (`[api] token_secret`), else kept in
/// `private/token-secret`, created once by whichever process needs it first. Citizens'
/// tokens are MACed with it, and the events the API writes to Kafka are signed with a key
/// derived from it ([`vallee_schemas::signing::EventKey`]), which ingest checks: every
/// process of one hub must read the same secret.
pub fn replicas_secret(options: &ApiOptions) -> Result<Vec<u8>> {
    if let Some(s) = &options.token_secret {
        return Ok(s.as_bytes().to_vec());
    }
    let path = options.private_dir.join("token-secret");
    let existing = || -> Result<Option<Vec<u8>>> {
        match std::fs::read(&path) {
            Ok(s) if !s.is_empty() => Ok(Some(s)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    };
    if let Some(secret) = existing()? {
        return Ok(secret);
    }
    std::fs::create_dir_all(&options.private_dir)?;
    let secret: [u8; 32] = rand::random();
    let secret = hex::encode(secret).into_bytes();
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    {
        use std::io::Write;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let mut f = o.open(&tmp)?;
        f.write_all(&secret)?;
        f.sync_all()?;
    }
    // A link never replaces: when two processes start at once, the first one's secret
    // wins and the other reads it (a rename would let each keep its own).
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(secret),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            existing()?.ok_or_else(|| Error::Internal("private/token-secret is empty".into()))
        }
        Err(e) => Err(e.into()),
    }
}

/// The API, started: its state and background readers.
#[derive(Debug, Clone)]
pub struct Api {
    pub state: Arc<ApiState>,
}

impl Api {
    /// Builds the API and starts its background tasks (citizens' replay, alerts feed,
    /// contact retention, open-data publisher) in `tasks`, each stopping at `shutdown`:
    /// the caller awaits them.
    pub async fn start(
        options: ApiOptions,
        lake: Arc<Lake>,
        shutdown: &CancellationToken,
        tasks: &mut tokio::task::JoinSet<()>,
    ) -> Result<Self> {
        let secret = replicas_secret(&options)?;
        let contacts = citizen::contacts::ContactStore::open(&options.private_dir)?;
        let texts = Arc::new(vallee_lake::TextKeys::open(&options.private_dir)?);
        let citizens =
            citizen::CitizenHub::new(options.clone(), &secret, texts.clone(), contacts.clone())?;
        let (alerts, _) = broadcast::channel(1024);
        let sharing = Arc::new(vallee_opendata::sharing::Sharing::new(
            options
                .partners
                .iter()
                .flat_map(|p| p.shared.iter().cloned()),
        ));
        let lake_for_views = lake.clone();
        let published = |root: &std::path::Path, audience| -> Result<_> {
            let name = match audience {
                Audience::Public => "public",
                Audience::Researchers => "research",
            };
            let lake = lake_for_views
                .beside(name, root)
                .map_err(|e| Error::Lake(Box::new(e)))?;
            Ok(vallee_opendata::publish::PublicLake::new(
                vallee_opendata::OpenData::new(lake_for_views.clone())
                    .with_sharing(sharing.clone(), audience)
                    .with_texts(texts.clone()),
                Arc::new(lake),
            ))
        };
        let public = published(&options.public_dir, Audience::Public)?;
        let research = published(&options.research_dir, Audience::Researchers)?;
        let auth = auth::Authenticator::new(&secret, options.staff.clone());
        let sensors = Arc::new(sensors::SensorReader::new(lake.clone(), &options.limits));
        // Beside the tables: in their folder, or in their bucket (shared by the replicas).
        let photos = Some(Arc::new(
            media::PhotoStore::open(&lake, options.limits.max_photo_store_bytes).await?,
        ));
        let mut commands =
            commands::Commands::new(citizens.clone(), contacts.clone(), auth.clone(), &options)
                .with_bins(sensors.clone());
        if let Some(p) = &photos {
            commands = commands.with_photos(p.clone());
        }
        let state = Arc::new(ApiState {
            commands,
            photos,
            photo_limiter: rate_limit::RateLimiter::with_max_keys(
                options.limits.max_rate_limit_keys,
            ),
            auth,
            contacts,
            sensors,
            field_door: {
                let door = field_ingest::FieldDoor::new(&options)?;
                door.use_registry(citizens.clone());
                door
            },
            rounds: Arc::new(rounds::RoundPlanner::new(options.rounds.clone())),
            unsubscribe: notify::UnsubscribeKey::derive(&secret),
            open_data: vallee_opendata::OpenData::new(lake)
                .with_sharing(sharing.clone(), Audience::Public)
                .with_texts(texts),
            public,
            research,
            citizens: citizens.clone(),
            alerts: alerts.clone(),
            alerts_ready: Default::default(),
            mqtt_connected: Default::default(),
            options,
        });
        background::start(&state, citizens, alerts, shutdown, tasks);
        Ok(Api { state })
    }

    /// The routes.
    pub fn router(&self, ops: Arc<ops::Ops>) -> Router {
        http::router(self.state.clone(), ops)
    }
}

/// A bound listener, so the caller learns the real address before serving (port 0).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// Serves `router` until `shutdown` is cancelled, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
    .map_err(Error::Serve)
}
