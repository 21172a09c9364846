//! Parcels a vineyard partner chose to share. A partner's parcel data is private by
//! default (only its own feed serves it); by an explicit setting it may share a parcel
//! with researchers, or with the public, which includes researchers. Either way only the
//! daily aggregates of dataset `parcelles-partagees` leave the hub, never the readings.
//!
//! Every dataset session holds the table `shared_parcels` (`parcel`, `partage`): the
//! parcels the session's audience may see. The public one lists the parcels shared with
//! the public; the researchers' one adds those shared with researchers. Withdrawing a
//! share takes effect everywhere: downloads apply the setting when they read, `asOf` of
//! past versions included, and the published copies are rewritten with their history
//! vacuumed ([`crate::publish`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use crate::Result;

/// Who may see a shared parcel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Audience {
    /// Researchers with a token (`POST /sql`, `<data-dir>/research`).
    Researchers,
    /// Everyone: the public datasets (researchers see them too).
    Public,
}

impl Audience {
    /// The value of column `partage`.
    pub fn label(self) -> &'static str {
        match self {
            Audience::Researchers => "recherche",
            Audience::Public => "public",
        }
    }
}

/// The shared parcels, each with the widest audience its partner allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sharing {
    parcels: BTreeMap<String, Audience>,
}

/// SQL name of the shared parcels in every dataset session.
pub const TABLE: &str = "shared_parcels";

impl Sharing {
    /// From `(parcel, audience)` settings; a parcel shared twice keeps the wider audience.
    pub fn new(settings: impl IntoIterator<Item = (String, Audience)>) -> Self {
        let mut parcels = BTreeMap::new();
        for (parcel, audience) in settings {
            let slot = parcels.entry(parcel).or_insert(audience);
            *slot = (*slot).max(audience);
        }
        Sharing { parcels }
    }

    /// The parcels `audience` may see, with how each is shared.
    pub fn visible_to(&self, audience: Audience) -> impl Iterator<Item = (&str, Audience)> {
        self.parcels
            .iter()
            .filter(move |(_, a)| **a >= audience)
            .map(|(p, a)| (p.as_str(), *a))
    }

    /// A digest of what `audience` sees: a published table computed under another setting
    /// is out of date even when its source did not move.
    pub fn fingerprint(&self, audience: Audience) -> u64 {
        // Stable across builds: it is stored in the published tables.
        let mut h = vallee_schemas::digest::Fnv1a::default();
        for (parcel, a) in self.visible_to(audience) {
            h.write(parcel.as_bytes());
            h.write(&[0, a as u8, 0]);
        }
        h.finish()
    }

    /// Registers [`TABLE`] for `audience` in `ctx`.
    pub fn register(&self, ctx: &SessionContext, audience: Audience) -> Result<()> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("parcel", DataType::Utf8, false),
            Field::new("partage", DataType::Utf8, false),
        ]));
        let (parcels, labels): (Vec<&str>, Vec<&str>) = self
            .visible_to(audience)
            .map(|(p, a)| (p, a.label()))
            .unzip();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(parcels)),
                Arc::new(StringArray::from(labels)),
            ],
        )
        .map_err(datafusion::error::DataFusionError::from)?;
        ctx.register_table(
            TABLE,
            Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_sees_public_parcels_and_researchers_see_both() {
        let s = Sharing::new([
            ("a".to_string(), Audience::Public),
            ("b".to_string(), Audience::Researchers),
            ("c".to_string(), Audience::Researchers),
            ("c".to_string(), Audience::Public),
        ]);
        let public: Vec<_> = s.visible_to(Audience::Public).map(|(p, _)| p).collect();
        assert_eq!(public, ["a", "c"], "c's wider setting wins");
        let research: Vec<_> = s.visible_to(Audience::Researchers).collect();
        assert_eq!(
            research,
            [
                ("a", Audience::Public),
                ("b", Audience::Researchers),
                ("c", Audience::Public)
            ]
        );
        assert_eq!(
            Sharing::default().visible_to(Audience::Researchers).count(),
            0
        );
    }

    #[test]
    fn a_changed_setting_changes_the_fingerprint_of_those_it_concerns() {
        let before = Sharing::new([("a".to_string(), Audience::Public)]);
        let after = Sharing::new([
            ("a".to_string(), Audience::Public),
            ("b".to_string(), Audience::Researchers),
        ]);
        assert_eq!(
            before.fingerprint(Audience::Public),
            after.fingerprint(Audience::Public),
            "b is not public: the public tables stay as they are"
        );
        assert_ne!(
            before.fingerprint(Audience::Researchers),
            after.fingerprint(Audience::Researchers)
        );
        assert_ne!(
            Sharing::default().fingerprint(Audience::Public),
            before.fingerprint(Audience::Public)
        );
    }
}
