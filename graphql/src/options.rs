//! Options of the API (one struct, laptop-friendly defaults).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use vallee_schemas::contract::Stream;

/// A staff member allowed to act through the API. Only the SHA-256 of the token is kept
/// in configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffMember {
    pub name: String,
    /// Hex SHA-256 of the bearer token.
    pub token_sha256: String,
    /// `None`: the whole intercommunality; `Some(code)`: one commune (INSEE code).
    pub commune: Option<String>,
}

/// A researcher allowed to query the public lake (`POST /sql`), by token hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Researcher {
    pub name: String,
    pub token_sha256: String,
}

/// Request limits. The defaults are generous enough for a town hall's shared connection.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `issueCitizenToken` calls per minute and client address. Default 60.
    pub tokens_per_minute_per_address: u32,
    /// Mutations per minute and client address. Default 300.
    pub mutations_per_minute_per_address: u32,
    /// Mutations per minute and citizen token. Default 60.
    pub mutations_per_minute_per_token: u32,
    /// Largest request body in bytes. Default 64 KiB.
    pub max_body_bytes: usize,
    /// Deepest accepted query. Default 10.
    pub max_depth: usize,
    /// Highest accepted query complexity (introspection is exempt). Default 2 000.
    pub max_complexity: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            tokens_per_minute_per_address: 60,
            mutations_per_minute_per_address: 300,
            mutations_per_minute_per_token: 60,
            max_body_bytes: 64 * 1024,
            max_depth: 10,
            max_complexity: 2_000,
        }
    }
}

/// Options of the API. `Default` runs on a laptop against the embedded broker.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Topic of every stream (the API writes the citizens' ones and reads alerts).
    pub topics: BTreeMap<Stream, String>,
    /// Root of the restricted store (contact details, the token secret): `<data-dir>/private`.
    pub private_dir: PathBuf,
    /// Secret keying citizens' tokens and pseudonyms. Replicas must share it; `None`: one
    /// is generated on first start and kept in `private/token-secret`.
    pub token_secret: Option<String>,
    pub staff: Vec<StaffMember>,
    pub limits: Limits,
    /// Origins allowed to call the API from a browser (`*` for any). Default: none (same
    /// origin only).
    pub cors_origins: Vec<String>,
    /// Hide new ideas until a moderator shows them. Default off.
    pub pre_moderation: bool,
    /// Distinct flags after which an idea is hidden pending moderation. Default 3.
    pub flags_to_hide: usize,
    /// Supports an idea needs to be eligible, per inhabitant of its commune (of the valley
    /// when it names none). Default 0.005 (0.5 %), and never fewer than
    /// [`Self::min_supports_for_eligibility`].
    pub supports_per_inhabitant: f64,
    pub min_supports_for_eligibility: u32,
    /// How long a write waits for the broker's acknowledgement. Default 10 s.
    pub write_timeout: Duration,
    /// Root of the public lake (`<data-dir>/public`).
    pub public_dir: PathBuf,
    /// SIRET of the publishing establishment, in the SCDL catalogue (`COLL_SIRET`,
    /// `PRODUCTEUR_SIRET`). Default: none (the columns stay empty; the SIREN is in DCAT).
    pub publisher_siret: Option<String>,
    /// Root of the research lake (`<data-dir>/research`): what partners shared with
    /// researchers only.
    pub research_dir: PathBuf,
    /// How often the public tables are brought up to date. Default 60 s.
    pub publish_interval: Duration,
    /// How long a reporter's contact is kept after the report closed (then erased).
    pub contact_retention: Duration,
    pub researchers: Vec<Researcher>,
    /// Vineyard partners of `GET /feeds/vineyard`, with their parcels.
    pub partners: Vec<crate::feeds::Partner>,
    /// Longest research query. Default 10 s.
    pub sql_timeout: Duration,
    /// Most rows a research query returns (more: truncated, said in `X-Truncated`).
    /// Default 100 000.
    pub sql_max_rows: usize,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            brokers: "127.0.0.1:9092".into(),
            topics: Stream::ALL
                .iter()
                .map(|s| (*s, s.default_topic().to_string()))
                .collect(),
            private_dir: PathBuf::from("data/private"),
            token_secret: None,
            staff: Vec::new(),
            limits: Limits::default(),
            cors_origins: Vec::new(),
            pre_moderation: false,
            flags_to_hide: 3,
            supports_per_inhabitant: 0.005,
            min_supports_for_eligibility: 10,
            write_timeout: Duration::from_secs(10),
            public_dir: PathBuf::from("data/public"),
            research_dir: PathBuf::from("data/research"),
            publisher_siret: None,
            publish_interval: Duration::from_secs(60),
            contact_retention: Duration::from_secs(90 * 86_400),
            researchers: Vec::new(),
            partners: Vec::new(),
            sql_timeout: Duration::from_secs(10),
            sql_max_rows: 100_000,
        }
    }
}

impl ApiOptions {
    /// The topic of `stream`.
    pub fn topic(&self, stream: Stream) -> String {
        self.topics
            .get(&stream)
            .cloned()
            .unwrap_or_else(|| stream.default_topic().to_string())
    }
}
