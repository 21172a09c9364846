//! Vineyard parcels are private by default: a parcel's readings, its alerts (frost, downy
//! and powdery mildew) and anything else keyed by the parcel reach the partner that owns it;
//! the public sees them only for a parcel its partner shared with the public
//! (`[[api.partners]] share_public`). A parcel no partner lists is private too.
//!
//! The stage raises a vineyard alert for each parcel a weather station covers
//! (`refParcels`), and for the station itself when it covers none. A station is not a
//! parcel: its own alerts stay public, as do its daily indicators, which are computed from
//! the station's weather alone and name no parcel. A station is recognised by its id, a
//! `WeatherObserved` entity (`urn:ngsi-ld:WeatherObserved:…`); anything else an alert is
//! about is taken for a parcel, so an id outside the convention errs on the private side.

/// The id prefix of a weather station's own entity.
pub const STATION_PREFIX: &str = "urn:ngsi-ld:WeatherObserved:";

/// Whether a vineyard alert's entity is a weather station (not a parcel).
pub fn is_station(entity: &str) -> bool {
    entity.starts_with(STATION_PREFIX)
}

/// Whether a reader sees what is keyed by `entity` (a parcel or a station): a station
/// always; a parcel when it is among the reader's own (`own`, a partner's parcels) or
/// shared with the public (`shared_with_public`).
pub fn visible(entity: &str, own: &[String], shared_with_public: impl Fn(&str) -> bool) -> bool {
    is_station(entity) || own.iter().any(|p| p == entity) || shared_with_public(entity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parcel_is_private_unless_owned_or_shared_a_station_is_public() {
        let own = ["urn:ngsi-ld:AgriParcel:pins-1".to_string()];
        let shared = |p: &str| p == "urn:ngsi-ld:AgriParcel:pins-2";
        let seen = |entity: &str, own: &[String]| visible(entity, own, shared);
        assert!(seen("urn:ngsi-ld:WeatherObserved:st-pins", &[]));
        assert!(seen("urn:ngsi-ld:AgriParcel:pins-2", &[]), "shared");
        assert!(!seen("urn:ngsi-ld:AgriParcel:pins-1", &[]), "private");
        assert!(seen("urn:ngsi-ld:AgriParcel:pins-1", &own), "its owner");
        assert!(
            !seen("urn:ngsi-ld:AgriParcel:voisin-1", &own),
            "a neighbour's"
        );
        assert!(!seen("parcel-without-urn", &[]), "unknown ids are private");
    }
}
