/// Errors of the schemas crate. Bad *input* is not an error here: it is a
/// [`crate::rejection::Rejection`], an ordinary outcome that ends in the dead-letter table.
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
    /// A batch read from the lake does not hold a table's column as the contract says: the
    /// column is missing, of a type that does not convert, or null where it never is.
    #[error("reading table {table}, column {column}: {message}")]
    Column {
        table: &'static str,
        column: String,
        message: String,
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
