//! GeoJSON points as the Smart Data Models carry them, and distances between them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A WGS 84 position (longitude first, as in GeoJSON).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    pub lon: f64,
    pub lat: f64,
}

const EARTH_RADIUS_M: f64 = 6_371_008.8;

impl GeoPoint {
    pub const fn new(lon: f64, lat: f64) -> Self {
        GeoPoint { lon, lat }
    }

    /// Great-circle distance in metres (haversine; exact enough at the valley's scale).
    pub fn distance_m(&self, other: &GeoPoint) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().asin()
    }
}

/// A GeoJSON geometry as received. Sensors send a `Point`
/// (`{"type":"Point","coordinates":[lon, lat]}`, an altitude is ignored); a parcel may be
/// described by its `Polygon`, as the official AgriParcelRecord example does. The hub keeps
/// one representative point per event: the point itself, or the mean of the vertices of a
/// line or of a polygon's outer ring.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct GeoJson {
    /// `Point` (usual), `LineString`, `Polygon` or `MultiPoint`.
    #[serde(rename = "type")]
    pub kind: String,
    /// GeoJSON coordinates, WGS 84, longitude first.
    pub coordinates: serde_json::Value,
}

impl GeoJson {
    /// Checks the geometry and returns its representative point, or a message saying what
    /// is wrong and whether it is a shape (`false`) or a range (`true`) problem.
    pub fn to_point(&self) -> Result<GeoPoint, (bool, String)> {
        let shape = |m: String| (false, m);
        let position = |v: &serde_json::Value| -> Result<(f64, f64), (bool, String)> {
            match v.as_array().map(|a| a.as_slice()) {
                Some([lon, lat]) | Some([lon, lat, _]) => match (lon.as_f64(), lat.as_f64()) {
                    (Some(lon), Some(lat)) => Ok((lon, lat)),
                    _ => Err(shape(format!("location position {v} must hold numbers"))),
                },
                _ => Err(shape(format!(
                    "location position {v} must be [longitude, latitude]"
                ))),
            }
        };
        let vertices: Vec<(f64, f64)> = match self.kind.as_str() {
            "Point" => vec![position(&self.coordinates)?],
            "LineString" | "MultiPoint" => self
                .coordinates
                .as_array()
                .ok_or_else(|| {
                    shape(format!(
                        "{} coordinates must be a list of positions",
                        self.kind
                    ))
                })?
                .iter()
                .map(position)
                .collect::<Result<_, _>>()?,
            "Polygon" => self
                .coordinates
                .get(0)
                .and_then(|ring| ring.as_array())
                .ok_or_else(|| shape("Polygon coordinates must be a list of rings".into()))?
                .iter()
                .map(position)
                .collect::<Result<_, _>>()?,
            other => {
                return Err(shape(format!(
                    "location must be a GeoJSON Point (or LineString, MultiPoint, Polygon), got type {other:?}"
                )));
            }
        };
        if vertices.is_empty() {
            return Err(shape("location has no coordinates".into()));
        }
        for (lon, lat) in &vertices {
            if !(-180.0..=180.0).contains(lon) || !(-90.0..=90.0).contains(lat) {
                return Err((
                    true,
                    format!("location [{lon}, {lat}] is not a WGS 84 longitude/latitude"),
                ));
            }
        }
        let n = vertices.len() as f64;
        let (lon, lat) = vertices
            .iter()
            .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
        Ok(GeoPoint {
            lon: lon / n,
            lat: lat / n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_between_gignac_and_aniane_is_about_five_km() {
        let gignac = GeoPoint::new(3.5512, 43.6521);
        let aniane = GeoPoint::new(3.5869, 43.6856);
        let d = gignac.distance_m(&aniane);
        assert!((4_000.0..5_500.0).contains(&d), "{d}");
        assert_eq!(gignac.distance_m(&gignac), 0.0);
    }

    #[test]
    fn points_are_checked() {
        let p = |kind: &str, c: serde_json::Value| GeoJson {
            kind: kind.into(),
            coordinates: c,
        };
        use serde_json::json;
        assert_eq!(
            p("Point", json!([3.5, 43.6])).to_point().unwrap(),
            GeoPoint::new(3.5, 43.6)
        );
        assert!(p("Point", json!([3.5, 43.6, 80.0])).to_point().is_ok());
        let square = json!([[[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]]]);
        assert_eq!(
            p("Polygon", square).to_point().unwrap(),
            GeoPoint::new(1.0, 1.0)
        );
        assert!(!p("Polygon", json!([3.5, 43.6])).to_point().unwrap_err().0);
        assert!(!p("Point", json!([3.5])).to_point().unwrap_err().0);
        assert!(!p("Point", json!(["3.5", 43.6])).to_point().unwrap_err().0);
        assert!(!p("Circle", json!([3.5, 43.6])).to_point().unwrap_err().0);
        assert!(p("Point", json!([43.6, 200.0])).to_point().unwrap_err().0);
    }
}
