//! The valley's reference data: its 28 communes with their boundaries, and placing a point
//! in one of them.
//!
//! Sources and the placement approximation are described in `schemas/data/README.md`.

use std::sync::LazyLock;

use crate::geo::GeoPoint;
use crate::{Error, Result};

const COMMUNES_CSV: &str = include_str!("../data/communes.csv");
const GEO_CSV: &str = include_str!("../data/commune_geo.csv");
/// The communes' boundaries (IGN Admin Express, simplified; see `schemas/data/README.md`).
pub const BOUNDARIES_GEOJSON: &str = include_str!("../data/communes.geojson");

/// How far outside every boundary a point is still placed in the nearest commune: the
/// shapes are simplified, so a point a few metres beyond the valley's edge may be in it.
pub const BORDER_TOLERANCE_M: f64 = 150.0;

/// A polygon's rings: the outer one first, then its holes (WGS 84).
type Polygon = Vec<Vec<GeoPoint>>;

/// One member commune of the intercommunality.
#[derive(Debug, Clone, PartialEq)]
pub struct Commune {
    /// INSEE code, the commune's identifier everywhere in the hub.
    pub insee_code: String,
    pub name: String,
    pub siren: String,
    pub population_municipale: u32,
    pub population_totale: u32,
    pub postal_codes: Vec<String>,
    /// Centre of the commune's territory.
    pub centre: GeoPoint,
    pub area_km2: f64,
    /// Its territory: one or more polygons.
    pub boundary: Vec<Polygon>,
}

impl Commune {
    /// Radius in metres of the disc with the commune's area.
    pub fn radius_m(&self) -> f64 {
        (self.area_km2 * 1.0e6 / std::f64::consts::PI).sqrt()
    }

    /// Whether `point` is inside its boundary (even-odd rule: a hole is outside).
    pub fn contains(&self, point: &GeoPoint) -> bool {
        self.boundary.iter().any(|polygon| {
            polygon
                .iter()
                .filter(|ring| crosses_odd(ring, point))
                .count()
                % 2
                == 1
        })
    }

    /// Distance in metres from `point` to its boundary's nearest edge.
    pub fn distance_to_boundary_m(&self, point: &GeoPoint) -> f64 {
        // Local plane around the point: metres east and north.
        let k = 111_195.0;
        let east = |p: &GeoPoint| (p.lon - point.lon) * k * point.lat.to_radians().cos();
        let north = |p: &GeoPoint| (p.lat - point.lat) * k;
        self.boundary
            .iter()
            .flatten()
            .flat_map(|ring| ring.windows(2))
            .map(|edge| {
                let (ax, ay, bx, by) = (
                    east(&edge[0]),
                    north(&edge[0]),
                    east(&edge[1]),
                    north(&edge[1]),
                );
                let (dx, dy) = (bx - ax, by - ay);
                let length2 = dx * dx + dy * dy;
                let t = if length2 > 0.0 {
                    (-(ax * dx + ay * dy) / length2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                (ax + t * dx).hypot(ay + t * dy)
            })
            .fold(f64::INFINITY, f64::min)
    }
}

/// Whether a ray from `point` eastwards crosses `ring` an odd number of times.
fn crosses_odd(ring: &[GeoPoint], point: &GeoPoint) -> bool {
    let mut inside = false;
    for edge in ring.windows(2) {
        let (a, b) = (&edge[0], &edge[1]);
        if (a.lat > point.lat) != (b.lat > point.lat) {
            let lon = a.lon + (point.lat - a.lat) / (b.lat - a.lat) * (b.lon - a.lon);
            if point.lon < lon {
                inside = !inside;
            }
        }
    }
    inside
}

/// A point inside `polygon`: the middle of the widest stretch inside it along one of a few
/// parallels across its extent (a centroid may fall outside a concave shape).
fn interior_point(polygon: &Polygon) -> Option<GeoPoint> {
    let outer = polygon.first()?;
    let (south, north) = outer.iter().fold((f64::MAX, f64::MIN), |(s, n), p| {
        (s.min(p.lat), n.max(p.lat))
    });
    let mut best: Option<(f64, GeoPoint)> = None;
    for fraction in [0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8] {
        let lat = south + (north - south) * fraction;
        let mut crossings: Vec<f64> = outer
            .windows(2)
            .filter(|e| (e[0].lat > lat) != (e[1].lat > lat))
            .map(|e| e[0].lon + (lat - e[0].lat) / (e[1].lat - e[0].lat) * (e[1].lon - e[0].lon))
            .collect();
        crossings.sort_by(f64::total_cmp);
        for span in crossings.chunks_exact(2) {
            let middle = GeoPoint::new((span[0] + span[1]) / 2.0, lat);
            let width = span[1] - span[0];
            let inside = polygon.iter().filter(|r| crosses_odd(r, &middle)).count() % 2 == 1;
            if inside && best.as_ref().is_none_or(|(w, _)| width > *w) {
                best = Some((width, middle));
            }
        }
    }
    best.map(|(_, p)| p)
}

/// The boundaries of the GeoJSON, by INSEE code.
fn boundaries(geojson: &str) -> Result<std::collections::HashMap<String, Vec<Polygon>>> {
    let bad = |message: String| Error::Reference {
        file: "communes.geojson",
        line: 0,
        message,
    };
    let doc: serde_json::Value = serde_json::from_str(geojson).map_err(|e| bad(e.to_string()))?;
    let ring = |r: &serde_json::Value| -> Option<Vec<GeoPoint>> {
        r.as_array()?
            .iter()
            .map(|p| Some(GeoPoint::new(p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
            .collect()
    };
    let polygon =
        |p: &serde_json::Value| -> Option<Polygon> { p.as_array()?.iter().map(ring).collect() };
    let mut out = std::collections::HashMap::new();
    for f in doc["features"].as_array().into_iter().flatten() {
        let code = f["properties"]["insee_code"]
            .as_str()
            .ok_or_else(|| bad("a feature without insee_code".into()))?;
        let geometry = &f["geometry"];
        let polygons = match geometry["type"].as_str() {
            Some("Polygon") => polygon(&geometry["coordinates"]).map(|p| vec![p]),
            Some("MultiPolygon") => geometry["coordinates"]
                .as_array()
                .and_then(|ps| ps.iter().map(polygon).collect()),
            _ => None,
        }
        .ok_or_else(|| bad(format!("{code}: not a polygon of [lon, lat] points")))?;
        out.insert(code.to_string(), polygons);
    }
    Ok(out)
}

/// The set of communes, with lookups.
#[derive(Debug, Clone)]
pub struct Communes {
    communes: Vec<Commune>,
    /// Each commune's bounding box, in the same order: [`Communes::locate`] tests a
    /// boundary only when the point is in its box (it runs for every bin reading and
    /// truck position, and was a third of the stream stage's time testing them all).
    boxes: Vec<BoundingBox>,
}

/// The extent of a boundary, in degrees.
#[derive(Debug, Clone, Copy)]
struct BoundingBox {
    min_lon: f64,
    min_lat: f64,
    max_lon: f64,
    max_lat: f64,
}

impl BoundingBox {
    fn of(commune: &Commune) -> BoundingBox {
        commune.boundary.iter().flatten().flatten().fold(
            BoundingBox {
                min_lon: f64::INFINITY,
                min_lat: f64::INFINITY,
                max_lon: f64::NEG_INFINITY,
                max_lat: f64::NEG_INFINITY,
            },
            |b, p| BoundingBox {
                min_lon: b.min_lon.min(p.lon),
                min_lat: b.min_lat.min(p.lat),
                max_lon: b.max_lon.max(p.lon),
                max_lat: b.max_lat.max(p.lat),
            },
        )
    }

    /// Whether `point` is in the box widened by `margin_m` metres on every side.
    fn holds(&self, point: &GeoPoint, margin_m: f64) -> bool {
        let lat = margin_m / 111_195.0;
        let lon = lat / point.lat.to_radians().cos().max(0.01);
        point.lon >= self.min_lon - lon
            && point.lon <= self.max_lon + lon
            && point.lat >= self.min_lat - lat
            && point.lat <= self.max_lat + lat
    }
}

/// The valley's 28 communes, parsed once from the data compiled into the binary.
pub fn valley() -> &'static Communes {
    static VALLEY: LazyLock<Communes> = LazyLock::new(|| {
        Communes::parse(COMMUNES_CSV, GEO_CSV, BOUNDARIES_GEOJSON)
            .expect("embedded reference data is valid (tested)")
    });
    &VALLEY
}

impl Communes {
    /// Parses the three reference files (see `schemas/data/`).
    pub fn parse(communes_csv: &str, geo_csv: &str, geojson: &str) -> Result<Communes> {
        let mut shapes = boundaries(geojson)?;
        let bad = |file, line, message: String| Error::Reference {
            file,
            line,
            message,
        };
        let mut geo = std::collections::HashMap::new();
        for (i, line) in geo_csv
            .lines()
            .enumerate()
            .skip(1)
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let f: Vec<&str> = line.split(',').collect();
            let [code, lon, lat, area] = f.as_slice() else {
                return Err(bad(
                    "commune_geo.csv",
                    i + 1,
                    format!("expected 4 fields, got {}", f.len()),
                ));
            };
            let num = |s: &str| {
                s.trim()
                    .parse::<f64>()
                    .map_err(|e| bad("commune_geo.csv", i + 1, format!("{s:?}: {e}")))
            };
            geo.insert(
                code.to_string(),
                (GeoPoint::new(num(lon)?, num(lat)?), num(area)?),
            );
        }
        let mut communes = Vec::new();
        for (i, line) in communes_csv
            .lines()
            .enumerate()
            .skip(1)
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() < 6 {
                return Err(bad(
                    "communes.csv",
                    i + 1,
                    format!("expected 8 fields, got {}", f.len()),
                ));
            }
            let int = |s: &str| {
                s.trim()
                    .parse::<u32>()
                    .map_err(|e| bad("communes.csv", i + 1, format!("{s:?}: {e}")))
            };
            let &(centre, area_km2) = geo.get(f[0]).ok_or_else(|| {
                bad(
                    "commune_geo.csv",
                    0,
                    format!("no centre for commune {}", f[0]),
                )
            })?;
            let boundary = shapes.remove(f[0]).ok_or_else(|| {
                bad(
                    "communes.geojson",
                    0,
                    format!("no boundary for commune {}", f[0]),
                )
            })?;
            let mut commune = Commune {
                insee_code: f[0].to_string(),
                name: f[1].to_string(),
                siren: f[2].to_string(),
                population_municipale: int(f[3])?,
                population_totale: int(f[4])?,
                postal_codes: f[5]
                    .split(['/', ' ', ';'])
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
                centre,
                area_km2,
                boundary,
            };
            // A published centre outside the simplified shape (Argelliers': 535 m out)
            // moves inside, so that the centre is always in its own commune.
            if !commune.contains(&commune.centre)
                && let Some(inside) = commune.boundary.iter().find_map(interior_point)
            {
                commune.centre = inside;
            }
            communes.push(commune);
        }
        let boxes = communes.iter().map(BoundingBox::of).collect();
        Ok(Communes { communes, boxes })
    }

    /// Every commune, in the reference file's order.
    pub fn all(&self) -> &[Commune] {
        &self.communes
    }

    /// The commune with this INSEE code.
    pub fn by_code(&self, insee_code: &str) -> Option<&Commune> {
        self.communes.iter().find(|c| c.insee_code == insee_code)
    }

    /// The commune with this name (case-insensitive; accents matter).
    pub fn by_name(&self, name: &str) -> Option<&Commune> {
        let name = name.trim().to_lowercase();
        self.communes.iter().find(|c| c.name.to_lowercase() == name)
    }

    /// The commune whose boundary holds a point; a point outside every boundary but within
    /// [`BORDER_TOLERANCE_M`] of one goes to the nearest; `None` outside the valley.
    pub fn locate(&self, point: &GeoPoint) -> Option<&Commune> {
        if !(point.lat.is_finite() && point.lon.is_finite()) {
            return None;
        }
        let near = |margin_m: f64| {
            self.communes
                .iter()
                .zip(&self.boxes)
                .filter(move |(_, b)| b.holds(point, margin_m))
                .map(|(c, _)| c)
        };
        if let Some(c) = near(0.0).find(|c| c.contains(point)) {
            return Some(c);
        }
        // Only a boundary whose box, widened by the tolerance, holds the point can be
        // within the tolerance of it.
        near(BORDER_TOLERANCE_M)
            .map(|c| (c, c.distance_to_boundary_m(point)))
            .filter(|(_, d)| *d <= BORDER_TOLERANCE_M)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(c, _)| c)
    }

    /// Total municipal population of the valley.
    pub fn population(&self) -> u32 {
        self.communes.iter().map(|c| c.population_municipale).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_valley_has_its_28_communes_with_centres() {
        let v = valley();
        assert_eq!(v.all().len(), 28);
        let gignac = v.by_code("34114").unwrap();
        assert_eq!(gignac.name, "Gignac");
        assert_eq!(gignac.population_municipale, 6713);
        assert_eq!(
            v.by_name("saint-guilhem-le-désert").unwrap().insee_code,
            "34261"
        );
        // Official populations (Etalab), summed.
        assert!(
            v.population() > 38_000 && v.population() < 42_000,
            "{}",
            v.population()
        );
    }

    #[test]
    fn points_are_placed_in_their_commune_or_outside() {
        let v = valley();
        // The example bin, in Gignac.
        assert_eq!(
            v.locate(&GeoPoint::new(3.5512, 43.6521)).unwrap().name,
            "Gignac"
        );
        // Saint-Guilhem-le-Désert's abbey of Gellone.
        assert_eq!(
            v.locate(&GeoPoint::new(3.5498, 43.7339)).unwrap().name,
            "Saint-Guilhem-le-Désert"
        );
        // Every centre is placed in its own commune.
        for c in v.all() {
            assert_eq!(
                v.locate(&c.centre).unwrap().insee_code,
                c.insee_code,
                "{}",
                c.name
            );
        }
        // Montpellier's Comédie and Paris are outside the valley.
        assert!(v.locate(&GeoPoint::new(3.8797, 43.6085)).is_none());
        assert!(v.locate(&GeoPoint::new(2.3522, 48.8566)).is_none());
        assert!(v.locate(&GeoPoint::new(f64::NAN, 43.6)).is_none());
    }

    #[test]
    fn communes_are_decided_by_their_boundaries_not_by_discs_around_their_centres() {
        let v = valley();
        let at = |lon, lat| v.locate(&GeoPoint::new(lon, lat)).map(|c| c.name.as_str());
        // Points an equal-area disc around each centre gave to a neighbour (or to nobody).
        assert_eq!(at(3.518, 43.630), Some("Pouzols"), "the disc said Popian");
        assert_eq!(at(3.536, 43.720), Some("Saint-Guilhem-le-Désert"));
        assert_eq!(at(3.560, 43.720), Some("Aniane"), "the disc said Puéchabon");
        assert_eq!(
            at(3.488, 43.745),
            Some("Montpeyroux"),
            "the disc said outside"
        );
        assert_eq!(
            at(3.476, 43.640),
            None,
            "the disc said Saint-André-de-Sangonis"
        );
        // Each boundary's vertices are on its commune's edge: a step inside the valley's
        // outer edge is in, and the tolerance keeps a point a few metres out.
        let gignac = v.by_code("34114").unwrap();
        let vertex = gignac.boundary[0][0][0];
        assert!(gignac.distance_to_boundary_m(&vertex) < 1.0);
        assert!(v.locate(&vertex).is_some());
    }

    /// The boxes only skip work: across and around the valley, every point goes where
    /// testing every boundary and measuring every edge sends it.
    #[test]
    fn locating_through_the_boxes_agrees_with_testing_every_boundary() {
        let v = valley();
        let reference = |p: &GeoPoint| -> Option<&str> {
            if let Some(c) = v.all().iter().find(|c| c.contains(p)) {
                return Some(&c.insee_code);
            }
            v.all()
                .iter()
                .map(|c| (c, c.distance_to_boundary_m(p)))
                .filter(|(_, d)| *d <= BORDER_TOLERANCE_M)
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(c, _)| c.insee_code.as_str())
        };
        let (mut inside, mut at_the_edge, mut outside) = (0, 0, 0);
        // A 1.1 km grid over the valley and 5 km around it, and the vertices of every
        // boundary moved 100 m east (within the tolerance when outside).
        let mut points = Vec::new();
        for i in 0..=70 {
            for j in 0..=60 {
                points.push(GeoPoint::new(
                    3.28 + i as f64 * 0.01,
                    43.52 + j as f64 * 0.01,
                ));
            }
        }
        for c in v.all() {
            for p in c.boundary.iter().flatten().flatten().step_by(3) {
                points.push(GeoPoint::new(p.lon + 0.0012, p.lat));
            }
        }
        for p in &points {
            let found = v.locate(p).map(|c| c.insee_code.as_str());
            assert_eq!(found, reference(p), "{p:?}");
            match found {
                Some(code) if v.by_code(code).is_some_and(|c| c.contains(p)) => inside += 1,
                Some(_) => at_the_edge += 1,
                None => outside += 1,
            }
        }
        // The grid covers all three cases, so the comparison means something.
        assert!(
            inside > 500 && at_the_edge > 20 && outside > 500,
            "{inside} {at_the_edge} {outside}"
        );
    }
}
