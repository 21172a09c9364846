/// Errors of the lake crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Delta Lake refused or failed an operation on a table (I/O, log, protocol): transient
    /// for storage hiccups, fatal for a corrupt log; the caller retries with back-off.
    #[error("delta table {table}: {source}")]
    Delta {
        table: String,
        #[source]
        source: deltalake::DeltaTableError,
    },
    /// The offsets stored in the table are not the ones this writer started from: another
    /// writer committed these partitions. Nothing was written; the caller must drop what it
    /// buffered for them and seek to the stored offsets.
    #[error(
        "table {table}: {app_id} is at offset {found:?} but this writer expected {expected:?} (another writer owns the partition)"
    )]
    Fenced {
        table: &'static str,
        app_id: String,
        expected: Option<i64>,
        found: Option<i64>,
    },
    /// The lake root is not a usable location.
    #[error("lake location {location:?}: {message}")]
    Location { location: String, message: String },
    /// A query over the lake failed.
    #[error("query: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    /// The options contradict themselves (checked before anything starts).
    #[error("{0}")]
    Options(String),
    /// Rows read back do not match their table's contract (a column missing, of another
    /// type, or null where it never is).
    #[error("contract: {0}")]
    Contract(#[from] vallee_schemas::Error),
    /// A schema of the contract could not be turned into a Delta schema.
    #[error("schema of table {table}: {message}")]
    Schema {
        table: &'static str,
        message: String,
    },
}

impl Error {
    pub(crate) fn delta(table: impl ToString) -> impl FnOnce(deltalake::DeltaTableError) -> Error {
        move |source| Error::Delta {
            table: table.to_string(),
            source,
        }
    }

    /// Whether the error means "another writer owns these partitions" (a fence or a
    /// concurrent commit of the same application transaction): an outcome to recover from
    /// by re-seeking, not a failure.
    pub fn is_fenced(&self) -> bool {
        use deltalake::kernel::transaction::TransactionError;
        match self {
            Error::Fenced { .. } => true,
            Error::Delta { source, .. } => matches!(
                source,
                deltalake::DeltaTableError::VersionAlreadyExists(_)
                    | deltalake::DeltaTableError::Transaction {
                        source: TransactionError::CommitConflict(_)
                            | TransactionError::VersionAlreadyExists(_)
                    }
            ),
            _ => false,
        }
    }
}

/// Result alias of the lake crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A table whose commits the lake refuses, since when and why.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitFailure {
    pub table: &'static str,
    /// The first refused commit since the table last committed.
    pub since: std::time::Instant,
    /// Refused commits since then.
    pub attempts: u64,
    /// The last refusal.
    pub error: String,
}
