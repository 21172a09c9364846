//! What the public may see: the privacy rules every public door applies, in one place.
//!
//! The API (GraphQL queries and subscriptions, the dashboard that reads them, Open311) and
//! the open data (downloads, the public lake, `POST /sql`) all show people counts, parcel
//! alerts and citizens' reports; each rule is written here once, as a pure function, and
//! every door calls it (the open-data views through SQL functions wrapping these very
//! functions), so a new door cannot apply a rule of its own, or forget one.
//!
//! - [`counts`] — k = 5 suppression of people counts (footfall, dwell distributions, site
//!   presence and AR check-ins), with the complementary rule that keeps a withheld count
//!   from being recomputed from a total shown beside it (an hour beside its twelve
//!   5-minute windows, a distribution beside its visits).
//! - [`text`] — e-mail addresses and phone numbers typed in free text, masked.
//! - [`parcels`] — a vineyard parcel's data reaches its partner, the public only when the
//!   partner shared it.
//! - [`round_coordinate`] — report positions, rounded to about 100 m.
//!
//! Staff see exact values; the callers' identities are the API's business, these rules
//! only say what the public sees.

pub mod counts;
pub mod parcels;
pub mod text;

pub use counts::{K, is_small};
pub use text::mask_contacts;

/// Decimals kept of a report's latitude and longitude for the public: 3, about 100 m of
/// latitude (and 80 m of longitude in the valley), enough to find a pothole's street,
/// not to find a reporter's door.
pub const COORDINATE_DECIMALS: i32 = 3;

/// A latitude or longitude as the public sees it: rounded to [`COORDINATE_DECIMALS`]
/// decimals, halves away from zero (as SQL's `round` does). Not a number stays so.
pub fn round_coordinate(x: f64) -> f64 {
    let scale = 10f64.powi(COORDINATE_DECIMALS);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_keep_three_decimals() {
        assert_eq!(round_coordinate(43.652_149), 43.652);
        assert_eq!(round_coordinate(3.551_51), 3.552);
        assert_eq!(round_coordinate(-0.000_4), -0.0);
        assert_eq!(round_coordinate(43.0), 43.0);
        assert!(round_coordinate(f64::NAN).is_nan());
        // Every point of a 100 m cell reads the same.
        let cell: Vec<f64> = (0..100)
            .map(|i| round_coordinate(43.651_51 + f64::from(i) * 0.000_009))
            .collect();
        assert!(cell.iter().all(|x| *x == 43.652), "{cell:?}");
    }
}
