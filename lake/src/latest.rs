//! "The latest row per key": the one view every reader of the lake uses for the current
//! state of a window, a day, an alert episode, a bin or a place.
//!
//! Tables are append-only: a correction is a new row with a higher revision, a bin's new
//! reading a new row, an alert's clearing a new row of its episode. What a reader wants is
//! one row per key, the first in an order; the table's contract
//! ([`LakeTable::keys`], [`LakeTable::latest_order`]) says which, and [`Latest::of`] writes
//! the SQL. [`Latest::by`] takes other keys and order, for a latest over something else than
//! the table's own key (a citizen's latest support of an idea).
//!
//! ```text
//!  SELECT * EXCLUDE (_rn) FROM (
//!    SELECT *, row_number() OVER (PARTITION BY <keys> ORDER BY <order>) AS _rn
//!    FROM <table> WHERE <filter>)          -- filter: rows considered, before ranking
//!  WHERE _rn = 1
//! ```
//!
//! ```
//! use vallee_lake::Latest;
//! use vallee_schemas::tables::OutputTable;
//!
//! let sql = Latest::of(OutputTable::Footfall).filter("\"window\" = 'PT1H'").sql();
//! assert!(sql.contains("PARTITION BY \"zone\", \"window\", \"dateObservedFrom\" ORDER BY \"revision\" DESC"));
//! ```

use crate::LakeTable;

/// The latest row per key of one table, as a SQL query to select from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latest {
    table: &'static str,
    keys: Vec<String>,
    order: Vec<String>,
    filter: Option<String>,
}

/// A column name as a SQL identifier (quoted: the contract's names are camelCase, and some
/// are keywords, such as `window`).
fn ident(column: &str) -> String {
    format!("\"{}\"", column.replace('"', "\"\""))
}

impl Latest {
    /// The latest row per key of `table`, by its contract's keys and order.
    ///
    /// # Panics
    /// When the table has no keys (dead letters): asking for its latest row is a bug.
    pub fn of(table: impl LakeTable) -> Latest {
        assert!(!table.keys().is_empty(), "{} has no keys", table.name());
        Latest {
            table: table.name(),
            keys: table.keys().iter().map(|k| ident(k)).collect(),
            order: table
                .latest_order()
                .iter()
                .map(|o| {
                    let direction = if o.is_descending() { "DESC" } else { "ASC" };
                    format!("{} {direction}", ident(o.column()))
                })
                .collect(),
            filter: None,
        }
    }

    /// The latest row per `keys` of `table` in `order`, both SQL expressions (`"entityId"`,
    /// `"dateObserved" DESC`).
    pub fn by(table: impl LakeTable, keys: &[&str], order: &[&str]) -> Latest {
        Latest {
            table: table.name(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
            order: order.iter().map(|o| o.to_string()).collect(),
            filter: None,
        }
    }

    /// Only rows matching `condition` (SQL) are ranked: the latest *of those*. A condition
    /// on the latest row itself goes in the caller's `WHERE` around [`Latest::sql`].
    pub fn filter(mut self, condition: impl Into<String>) -> Latest {
        self.filter = Some(condition.into());
        self
    }

    /// The query: the table's columns, one row per key.
    pub fn sql(&self) -> String {
        let filter = self
            .filter
            .as_ref()
            .map(|f| format!(" WHERE {f}"))
            .unwrap_or_default();
        format!(
            "SELECT * EXCLUDE (_rn) FROM (SELECT *, row_number() OVER (PARTITION BY {} ORDER BY {}) AS _rn FROM {}{filter}) WHERE _rn = 1",
            self.keys.join(", "),
            self.order.join(", "),
            self.table,
        )
    }
}

impl std::fmt::Display for Latest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sql())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int32Array, Int64Array, RecordBatch, StringArray};
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;
    use vallee_schemas::contract::Table;
    use vallee_schemas::tables::OutputTable;

    use super::*;

    /// `footfall_dwell`-like rows (zone, hour, revision, visits) under that table's name.
    async fn session() -> SessionContext {
        let batch = RecordBatch::try_from_iter([
            (
                "zone",
                Arc::new(StringArray::from(vec!["za", "za", "za", "zb", "zb"])) as _,
            ),
            ("hour", Arc::new(Int64Array::from(vec![1, 1, 2, 1, 1])) as _),
            (
                "revision",
                Arc::new(Int32Array::from(vec![0, 2, 0, 1, 0])) as _,
            ),
            (
                "visits",
                Arc::new(Int64Array::from(vec![10, 12, 5, 8, 7])) as _,
            ),
        ])
        .unwrap();
        let ctx = SessionContext::new();
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).unwrap();
        ctx.register_table("footfall_dwell", Arc::new(table))
            .unwrap();
        ctx
    }

    async fn run(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }

    #[tokio::test]
    async fn one_row_per_key_the_highest_revision_without_the_rank_column() {
        let ctx = session().await;
        let latest = Latest::of(OutputTable::FootfallDwell);
        let got = run(
            &ctx,
            &format!("SELECT * FROM ({latest}) ORDER BY zone, hour"),
        )
        .await;
        let expected = [
            "+------+------+----------+--------+",
            "| zone | hour | revision | visits |",
            "+------+------+----------+--------+",
            "| za   | 1    | 2        | 12     |",
            "| za   | 2    | 0        | 5      |",
            "| zb   | 1    | 1        | 8      |",
            "+------+------+----------+--------+",
        ]
        .join("\n");
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn a_filter_chooses_the_rows_ranked_a_where_around_the_latest_rows() {
        let ctx = session().await;
        // Among revisions below 2, za's hour 1 latest is revision 0.
        let ranked = Latest::of(OutputTable::FootfallDwell).filter("revision < 2");
        let got = run(
            &ctx,
            &format!("SELECT zone, hour, visits FROM ({ranked}) WHERE zone = 'za' ORDER BY hour"),
        )
        .await;
        assert!(got.contains("| za   | 1    | 10     |"), "{got}");
        // The latest rows of za, then those with more than 10 visits: hour 1 only.
        let latest = Latest::of(OutputTable::FootfallDwell);
        let got = run(
            &ctx,
            &format!("SELECT zone, hour, visits FROM ({latest}) WHERE visits > 10"),
        )
        .await;
        assert!(got.contains("| za   | 1    | 12     |"), "{got}");
        assert_eq!(got.lines().count(), 5, "{got}");
    }

    #[tokio::test]
    async fn the_latest_rows_of_a_delta_table_read_back_as_written() {
        use vallee_schemas::tables::{FootfallRow, Lineage, TableRow};

        let dir = tempfile::tempdir().unwrap();
        let lake = crate::Lake::open_bare(crate::LakeOptions {
            root: dir.path().to_path_buf(),
            ..Default::default()
        })
        .unwrap();
        let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        let first = FootfallRow {
            lineage: Lineage::range(&Arc::from("vallee.beacons"), 2, 40, 52),
            computed_at: at("2026-11-28T10:06:00.000123Z"),
            ..crate::testing::footfall_row("za", 7)
        };
        let correction = FootfallRow {
            people_count: 8,
            revision: 1,
            ..first.clone()
        };
        let other_window = FootfallRow {
            window: "PT1H".into(),
            ..first.clone()
        };
        for rows in [vec![first, other_window.clone()], vec![correction.clone()]] {
            let batch = FootfallRow::to_batch(OutputTable::Footfall, &rows)
                .unwrap()
                .unwrap();
            lake.append(OutputTable::Footfall, "test", vec![batch], &[])
                .await
                .unwrap();
        }
        let latest = Latest::of(OutputTable::Footfall);
        let rows: Vec<FootfallRow> = lake
            .rows(&format!("SELECT * FROM ({latest}) ORDER BY \"window\""))
            .await
            .unwrap();
        assert_eq!(rows, vec![other_window, correction]);
    }

    #[test]
    fn keys_and_order_come_from_the_contract_or_the_caller() {
        assert_eq!(
            Latest::of(OutputTable::FillAlerts).sql(),
            "SELECT * EXCLUDE (_rn) FROM (SELECT *, row_number() OVER (PARTITION BY \"alertId\" ORDER BY \"dateObserved\" DESC, \"state\" ASC, \"_computed_at\" DESC) AS _rn FROM fill_alerts) WHERE _rn = 1"
        );
        assert_eq!(
            Latest::of(Table::WasteContainers).filter("id = 'b'").sql(),
            "SELECT * EXCLUDE (_rn) FROM (SELECT *, row_number() OVER (PARTITION BY \"id\" ORDER BY \"dateObserved\" DESC, \"_offset\" DESC) AS _rn FROM waste_containers WHERE id = 'b') WHERE _rn = 1"
        );
        assert!(
            Latest::by(Table::CitizenReports, &["\"entityId\""], &["\"dateObserved\" DESC"])
                .sql()
                .contains("PARTITION BY \"entityId\" ORDER BY \"dateObserved\" DESC) AS _rn FROM citizen_reports")
        );
    }
}
