//! Source progress recorded in Delta application transactions.

/// The application-transaction id under which `writer` records its progress on one Kafka
/// partition in a table. The table is part of the id (as the contract asks) so an
/// id read anywhere says what it is about, although each table's log is separate.
pub fn app_id(writer: &str, table: &str, topic: &str, partition: i32) -> String {
    format!("{writer}/{table}/{topic}/{partition}")
}

/// Progress on one source partition that a commit records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub topic: String,
    pub partition: i32,
    /// The offset the table held when the writer took the partition over (or after its own
    /// last commit); the commit is refused when the table holds something else.
    pub previous: Option<i64>,
    /// The last offset accounted for by this commit (all rows up to it, for this table,
    /// are in the table after the commit).
    pub last: i64,
}
