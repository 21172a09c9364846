/// Errors of the schemas crate. Bad *input* is not an error here: it is a
/// [`crate::decode::Rejection`], an ordinary outcome that ends in the dead-letter table.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Validated rows did not fit the table's Arrow schema: a bug in a schema definition,
    /// never caused by input.
    #[error("building an Arrow batch for table {table}: {source}")]
    Arrow {
        table: &'static str,
        #[source]
        source: arrow::error::ArrowError,
    },
    /// The reference data compiled into the binary is malformed.
    #[error("reference data {file}, line {line}: {message}")]
    Reference {
        file: &'static str,
        line: usize,
        message: String,
    },
}

/// Result alias of the schemas crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
