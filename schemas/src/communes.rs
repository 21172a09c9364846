//! The valley's reference data: its 28 communes, and placing a point in one of them.
//!
//! Sources and the placement approximation are described in `schemas/data/README.md`.

use std::sync::LazyLock;

use crate::geo::GeoPoint;
use crate::{Error, Result};

const COMMUNES_CSV: &str = include_str!("../data/communes.csv");
const GEO_CSV: &str = include_str!("../data/commune_geo.csv");

/// How far beyond its equal-area disc a commune still claims a point (25 %).
const DISC_TOLERANCE: f64 = 1.25;

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
}

impl Commune {
    /// Radius in metres of the disc with the commune's area.
    pub fn radius_m(&self) -> f64 {
        (self.area_km2 * 1.0e6 / std::f64::consts::PI).sqrt()
    }
}

/// The set of communes, with lookups.
#[derive(Debug, Clone)]
pub struct Communes {
    communes: Vec<Commune>,
}

/// The valley's 28 communes, parsed once from the data compiled into the binary.
pub fn valley() -> &'static Communes {
    static VALLEY: LazyLock<Communes> = LazyLock::new(|| {
        Communes::parse(COMMUNES_CSV, GEO_CSV).expect("embedded reference data is valid (tested)")
    });
    &VALLEY
}

impl Communes {
    /// Parses the two reference files (see `schemas/data/`).
    pub fn parse(communes_csv: &str, geo_csv: &str) -> Result<Communes> {
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
            communes.push(Commune {
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
            });
        }
        Ok(Communes { communes })
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

    /// The commune a point falls in, or `None` outside the valley (approximation: see the
    /// module docs).
    pub fn locate(&self, point: &GeoPoint) -> Option<&Commune> {
        self.communes
            .iter()
            .map(|c| (c, c.centre.distance_m(point) / c.radius_m()))
            .filter(|(_, ratio)| *ratio <= DISC_TOLERANCE)
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
    }
}
