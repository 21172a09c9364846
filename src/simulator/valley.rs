//! A seeded model of the valley's sensors: bins filling and emptied by truck rounds,
//! people in the activity zone, visitors at the sites, vineyard weather and parcels.
//!
//! The model advances on a simulated clock and emits FIWARE keyValues events exactly as
//! the field gateways would, including a small share of the faults real fleets produce
//! (percent instead of fraction, truncated JSON, a gateway leaking MAC addresses), so
//! the dead-letter path is exercised from the first minute.

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use vallee_schemas::communes::{Commune, valley};
use vallee_schemas::contract::Stream;
use vallee_schemas::geo::GeoPoint;

/// One event ready to produce.
#[derive(Debug, Clone)]
pub struct Event {
    pub stream: Stream,
    pub key: String,
    pub payload: String,
    /// Event time (also used as the Kafka timestamp).
    pub time: DateTime<Utc>,
}

/// How the model is sized (in the file, keys of `[simulator]`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ValleyShape {
    pub seed: u64,
    pub bins: usize,
    pub trucks: usize,
    /// Share of events sent malformed (0..1).
    pub fault_ratio: f64,
}

impl Default for ValleyShape {
    fn default() -> Self {
        ValleyShape {
            seed: 42,
            bins: 300,
            trucks: 4,
            fault_ratio: 0.002,
        }
    }
}

const WASTE_KINDS: [(&str, f64); 5] = [
    ("household", 0.030),
    ("plastic", 0.018),
    ("paper", 0.012),
    ("glass", 0.006),
    ("organic", 0.022),
];
const ZONES: [(&str, f64, f64); 3] = [
    ("za-camalce-nord", 3.5655, 43.6455),
    ("za-camalce-sud", 3.5661, 43.6430),
    ("za-camalce-restauration", 3.5670, 43.6442),
];
const SITES: [(&str, &str, f64); 5] = [
    ("abbaye-de-gellone", "34261", 40.0),
    ("pont-du-diable", "34010", 30.0),
    ("grotte-de-clamouse", "34267", 25.0),
    ("argileum", "34267", 8.0),
    ("abbaye-d-aniane", "34010", 6.0),
];
const AR_POINTS: [&str; 4] = ["cloitre", "pont", "gorges", "moulin"];
const STATIONS: [(&str, &str); 3] = [
    ("aniane", "34010"),
    ("montpeyroux", "34173"),
    ("saint-pargoire", "34281"),
];

struct Bin {
    id: String,
    commune: &'static Commune,
    point: GeoPoint,
    kind: &'static str,
    fill_per_hour: f64,
    fill: f64,
    stuck: bool,
    silent_until: Option<DateTime<Utc>>,
    next_report: DateTime<Utc>,
}

struct Truck {
    id: String,
    route: Vec<usize>,
    stop: usize,
    pos: GeoPoint,
    next_report: DateTime<Utc>,
}

struct Visitor {
    person: u64,
    zone: usize,
    leaves: DateTime<Utc>,
    next_sighting: DateTime<Utc>,
}

struct Station {
    id: String,
    point: GeoPoint,
    parcels: Vec<String>,
    raining_until: Option<DateTime<Utc>>,
}

/// The valley's state.
pub struct Valley {
    rng: StdRng,
    shape: ValleyShape,
    now: DateTime<Utc>,
    bins: Vec<Bin>,
    trucks: Vec<Truck>,
    visitors: Vec<Visitor>,
    next_person: u64,
    stations: Vec<Station>,
    next_weather: DateTime<Utc>,
    next_sites: DateTime<Utc>,
    seq: u64,
}

fn jitter(rng: &mut StdRng, centre: GeoPoint, metres: f64) -> GeoPoint {
    let dx = rng.random_range(-metres..metres) / 80_000.0;
    let dy = rng.random_range(-metres..metres) / 111_000.0;
    GeoPoint::new(centre.lon + dx, centre.lat + dy)
}

/// A point within `metres` of `commune`'s centre and inside its boundary (its centre when
/// a few draws all fall outside).
pub(crate) fn point_in(rng: &mut StdRng, commune: &Commune, metres: f64) -> GeoPoint {
    (0..20)
        .map(|_| jitter(rng, commune.centre, metres))
        .find(|p| commune.contains(p))
        .unwrap_or(commune.centre)
}

fn poisson(rng: &mut StdRng, lambda: f64) -> u32 {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda > 50.0 {
        let n: f64 = lambda + lambda.sqrt() * (rng.random::<f64>() * 2.0 - 1.0) * 1.7;
        return n.max(0.0).round() as u32;
    }
    let (l, mut k, mut p) = ((-lambda).exp(), 0, 1.0);
    loop {
        p *= rng.random::<f64>();
        if p <= l {
            return k;
        }
        k += 1;
    }
}

/// A daily bell between `from` and `to` hours (local time ≈ UTC+1), peaking mid-way.
fn daily(hour: f64, from: f64, to: f64) -> f64 {
    if hour < from || hour > to {
        return 0.0;
    }
    (std::f64::consts::PI * (hour - from) / (to - from)).sin()
}

/// The hour of the day in the valley, roughly (CET).
fn local_hour(now: DateTime<Utc>) -> f64 {
    ((now.hour() + 1) % 24) as f64 + now.minute() as f64 / 60.0
}

/// How fast bins fill at `now`, relative to their own rate: with people's day (little at
/// night) and more on Saturdays, the market day.
pub fn fill_pace(now: DateTime<Utc>) -> f64 {
    let habit = 0.4 + 1.2 * daily(local_hour(now), 7.0, 22.0);
    let market = if now.weekday().num_days_from_monday() == 5 {
        1.4
    } else {
        1.0
    };
    habit * market
}

/// A simulated bin, laid out.
#[derive(Debug, Clone)]
pub struct BinLayout {
    pub id: String,
    pub commune_code: &'static str,
    pub point: GeoPoint,
    pub kind: &'static str,
    /// Its own rate, before [`fill_pace`].
    pub fill_per_hour: f64,
    /// What it holds at the start.
    pub fill: f64,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Valley {
    pub fn new(shape: ValleyShape, start: DateTime<Utc>) -> Valley {
        let mut rng = StdRng::seed_from_u64(shape.seed);
        let communes = valley().all();
        let population: f64 = communes
            .iter()
            .map(|c| c.population_municipale as f64)
            .sum();
        let mut bins = Vec::new();
        for c in communes {
            let n = ((shape.bins as f64 * c.population_municipale as f64 / population).round()
                as usize)
                .max(2);
            for i in 0..n {
                let (kind, rate) = WASTE_KINDS[i % WASTE_KINDS.len()];
                let slug: String = c
                    .name
                    .to_lowercase()
                    .chars()
                    .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' })
                    .collect();
                bins.push(Bin {
                    id: format!("urn:ngsi-ld:WasteContainer:{slug}-{i:04}"),
                    commune: c,
                    point: point_in(&mut rng, c, c.radius_m() * 0.5),
                    kind,
                    fill_per_hour: rate * rng.random_range(0.6..1.6),
                    fill: rng.random_range(0.0..0.7),
                    stuck: false,
                    silent_until: None,
                    next_report: start + Duration::seconds(rng.random_range(0..1800)),
                });
            }
        }
        let per_truck = bins.len().div_ceil(shape.trucks.max(1));
        let trucks = (0..shape.trucks)
            .map(|t| {
                let route: Vec<usize> =
                    (t * per_truck..((t + 1) * per_truck).min(bins.len())).collect();
                Truck {
                    id: format!("urn:ngsi-ld:Vehicle:benne-{:02}", t + 1),
                    pos: bins[route[0]].point,
                    route,
                    stop: 0,
                    next_report: start,
                }
            })
            .collect();
        let stations = STATIONS
            .iter()
            .enumerate()
            .map(|(i, (name, code))| {
                let c = valley().by_code(code).expect("station commune");
                Station {
                    id: format!("urn:ngsi-ld:WeatherObserved:station-{name}"),
                    point: point_in(&mut rng, c, 800.0),
                    parcels: (0..4)
                        .map(|p| format!("urn:ngsi-ld:AgriParcel:{name}-{:02}", i * 4 + p + 1))
                        .collect(),
                    raining_until: None,
                }
            })
            .collect();
        Valley {
            rng,
            shape,
            now: start,
            bins,
            trucks,
            visitors: Vec::new(),
            next_person: 0,
            stations,
            next_weather: start,
            next_sites: start,
            seq: 0,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Advances the model to `until`, returning the events that happened meanwhile.
    pub fn advance(&mut self, until: DateTime<Utc>, out: &mut Vec<Event>) {
        let step = Duration::seconds(10);
        while self.now < until {
            let next = (self.now + step).min(until);
            let hours = (next - self.now).num_milliseconds() as f64 / 3_600_000.0;
            self.now = next;
            self.bins_and_trucks(hours, out);
            self.activity_zone(out);
            if self.now >= self.next_sites {
                self.next_sites = self.now + Duration::minutes(15);
                self.sites(out);
            }
            if self.now >= self.next_weather {
                self.next_weather = self.now + Duration::minutes(10);
                self.vineyards(out);
            }
        }
    }

    fn hour(&self) -> f64 {
        local_hour(self.now)
    }

    /// Where the bins stand, what they hold and how fast they fill (the rounds benchmark
    /// lays its valley out from them).
    pub fn bin_layout(&self) -> Vec<BinLayout> {
        self.bins
            .iter()
            .map(|b| BinLayout {
                id: b.id.clone(),
                commune_code: b.commune.insee_code.as_str(),
                point: b.point,
                kind: b.kind,
                fill_per_hour: b.fill_per_hour,
                fill: b.fill,
            })
            .collect()
    }

    fn emit(&mut self, stream: Stream, key: &str, mut body: Value, out: &mut Vec<Event>) {
        self.seq += 1;
        let time = self.now;
        if let Some(obj) = body.as_object_mut() {
            obj.insert("dateObserved".into(), json!(rfc3339(time)));
        }
        let mut payload = body.to_string();
        if self.rng.random::<f64>() < self.shape.fault_ratio {
            payload = match self.rng.random_range(0..3) {
                0 => payload[..payload.len() / 2].to_string(), // truncated in transit
                1 => payload.replace("\"fillingLevel\":0.", "\"fillingLevel\":9"), // percent, not fraction
                _ if stream == Stream::Beacons => payload.replace(
                    &body["deviceToken"].as_str().unwrap_or("").to_string(),
                    "a4:5e:60:e8:1b:2c",
                ),
                _ => payload.replace("\"type\":", "\"typ\":"),
            };
        }
        out.push(Event {
            stream,
            key: key.to_string(),
            payload,
            time,
        });
    }

    fn bins_and_trucks(&mut self, hours: f64, out: &mut Vec<Event>) {
        let pace = fill_pace(self.now);
        for i in 0..self.bins.len() {
            let b = &mut self.bins[i];
            b.fill = (b.fill + b.fill_per_hour * pace * hours * self.rng.random_range(0.5..1.5))
                .min(1.0);
            if self.now < b.next_report {
                continue;
            }
            b.next_report =
                self.now + Duration::minutes(30) + Duration::seconds(self.rng.random_range(0..120));
            if b.silent_until.is_some_and(|t| self.now < t) {
                continue;
            }
            let roll: f64 = self.rng.random();
            let hour = self.hour();
            let b = &mut self.bins[i];
            if roll < 0.0005 {
                b.silent_until = Some(self.now + Duration::hours(30));
                continue;
            }
            b.stuck |= roll > 0.9998;
            let (status, temperature) = if roll < 0.0006 {
                ("burning", 78.0)
            } else if roll < 0.0010 {
                ("vandalized", 14.0)
            } else {
                ("ok", 8.0 + 10.0 * daily(hour, 6.0, 22.0))
            };
            let level = if b.stuck {
                0.37
            } else {
                (b.fill * 100.0).round() / 100.0
            };
            let body = json!({
                "id": b.id, "type": "WasteContainer", "fillingLevel": level, "binFullnessThreshold": 0.8,
                "temperature": temperature, "storedWasteKind": b.kind, "status": status,
                "location": {"type": "Point", "coordinates": [b.point.lon, b.point.lat]},
                "address": {"addressLocality": b.commune.name},
            });
            let key = b.id.clone();
            self.emit(Stream::WasteContainers, &key, body, out);
        }
        // Trucks work 6:00–13:00, driving from bin to bin of their round at ~25 km/h.
        let working = (6.0..13.0).contains(&self.hour());
        for t in 0..self.trucks.len() {
            if !working || self.now < self.trucks[t].next_report {
                continue;
            }
            let truck = &mut self.trucks[t];
            truck.next_report = self.now + Duration::seconds(30);
            let target = self.bins[truck.route[truck.stop]].point;
            let step_m = 25_000.0 / 3600.0 * 30.0;
            let d = truck.pos.distance_m(&target);
            if d <= step_m {
                truck.pos = target;
                let bin = &mut self.bins[truck.route[truck.stop]];
                bin.fill = 0.02;
                bin.stuck = false;
                truck.stop = (truck.stop + 1) % truck.route.len();
            } else {
                let f = step_m / d;
                truck.pos = GeoPoint::new(
                    truck.pos.lon + (target.lon - truck.pos.lon) * f,
                    truck.pos.lat + (target.lat - truck.pos.lat) * f,
                );
            }
            let body = json!({
                "id": truck.id, "type": "Vehicle", "vehicleType": "lorry", "category": ["municipalServices"],
                "serviceProvided": ["garbageCollection"], "serviceStatus": "onRoute", "speed": 25.0,
                "location": {"type": "Point", "coordinates": [truck.pos.lon, truck.pos.lat]},
            });
            let key = truck.id.clone();
            self.emit(Stream::WasteVehicles, &key, body, out);
        }
    }

    fn token(&self, person: u64) -> String {
        // The gateway's keyed hash of the device, with a salt rotated daily.
        use std::hash::{Hash, Hasher};
        let day = self.now.date_naive();
        let mut a = std::collections::hash_map::DefaultHasher::new();
        (person, day, "salt-a").hash(&mut a);
        let mut b = std::collections::hash_map::DefaultHasher::new();
        (person, day, "salt-b").hash(&mut b);
        format!("{:016x}{:016x}", a.finish(), b.finish())
    }

    fn activity_zone(&mut self, out: &mut Vec<Event>) {
        let weekday = self.now.weekday().num_days_from_monday() < 5;
        let hour = self.hour();
        let busy = if weekday {
            0.2 * daily(hour, 7.5, 19.0) + 0.5 * daily(hour, 11.8, 14.0)
        } else {
            0.05 * daily(hour, 9.0, 18.0)
        };
        // Arrivals over 10 s.
        for _ in 0..poisson(&mut self.rng, busy * 2.0) {
            let zone = if (11.8..14.0).contains(&hour) && self.rng.random::<f64>() < 0.6 {
                2
            } else {
                self.rng.random_range(0..2)
            };
            let stay = if zone == 2 {
                self.rng.random_range(15..70)
            } else {
                self.rng.random_range(5..240)
            };
            self.next_person += 1;
            self.visitors.push(Visitor {
                person: self.rng.random_range(0..5_000),
                zone,
                leaves: self.now + Duration::minutes(stay),
                next_sighting: self.now,
            });
        }
        let now = self.now;
        self.visitors.retain(|v| v.leaves > now);
        for i in 0..self.visitors.len() {
            if self.visitors[i].next_sighting > now {
                continue;
            }
            self.visitors[i].next_sighting =
                now + Duration::seconds(90 + self.rng.random_range(0..60));
            let (zone, _, _) = ZONES[self.visitors[i].zone];
            let token = self.token(self.visitors[i].person);
            let body = json!({
                "id": format!("urn:ngsi-ld:BeaconSighting:{zone}-{}", self.seq), "type": "BeaconSighting",
                "zone": zone, "deviceToken": token, "saltEpoch": now.date_naive().to_string(),
                "rssi": -(self.rng.random_range(45..95) as f64),
            });
            self.emit(Stream::Beacons, zone, body, out);
        }
    }

    fn sites(&mut self, out: &mut Vec<Event>) {
        let month = self.now.month();
        let season = match month {
            7 | 8 => 3.0,
            4..=6 | 9 => 1.6,
            10 | 3 => 0.8,
            _ => 0.35,
        };
        let weekend = if self.now.weekday().num_days_from_monday() >= 5 {
            1.6
        } else {
            1.0
        };
        let open = daily(self.hour(), 9.0, 19.0);
        for (site, code, base) in SITES {
            let count = poisson(&mut self.rng, base * season * weekend * open / 4.0);
            if count > 0 {
                let body = json!({"id": format!("urn:ngsi-ld:SiteVisit:{site}-{}", self.seq), "type": "SiteVisit",
                    "site": site, "locationCode": code, "source": "counter", "count": count});
                self.emit(Stream::Tourism, site, body, out);
            }
            for _ in 0..poisson(&mut self.rng, count as f64 * 0.15) {
                let point = AR_POINTS[self.rng.random_range(0..AR_POINTS.len())];
                let nationality =
                    ["FR", "FR", "FR", "DE", "GB", "ES", "NL"][self.rng.random_range(0..7)];
                let body = json!({"id": format!("urn:ngsi-ld:SiteVisit:{site}-ar-{}", self.seq), "type": "SiteVisit",
                    "site": site, "locationCode": code, "source": "ar-trail", "count": 1, "arPoint": point,
                    "nationality": nationality});
                self.emit(Stream::Tourism, site, body, out);
            }
        }
    }

    fn vineyards(&mut self, out: &mut Vec<Event>) {
        let doy = self.now.ordinal() as f64;
        let hour = self.hour();
        // Seasonal mean (7 °C in January, 24 °C in late July) and a daily swing peaking at 15:00.
        let mean = 15.5 - 8.5 * (2.0 * std::f64::consts::PI * (doy + 10.0) / 365.0).cos();
        let swing = 6.0 * (2.0 * std::f64::consts::PI * (hour - 9.0) / 24.0).sin();
        // A spring frost night: mid-April, before dawn.
        let frost = if self.now.month() == 4 && self.now.day() == 12 && (2.0..7.0).contains(&hour) {
            -9.0
        } else {
            0.0
        };
        for s in 0..self.stations.len() {
            if self.stations[s].raining_until.is_none_or(|t| t < self.now)
                && self.rng.random::<f64>() < 0.003
            {
                self.stations[s].raining_until =
                    Some(self.now + Duration::hours(self.rng.random_range(1..7)));
            }
            let raining = self.stations[s]
                .raining_until
                .is_some_and(|t| t >= self.now);
            let temperature =
                ((mean + swing + frost + self.rng.random_range(-0.8..0.8)) * 10.0).round() / 10.0;
            let humidity: f64 = if raining {
                0.95
            } else {
                (0.75 - swing / 20.0 + self.rng.random_range(-0.05..0.05)).clamp(0.2, 1.0)
            };
            let precipitation = if raining {
                (self.rng.random_range(0.1..0.8) * 10.0_f64).round() / 10.0
            } else {
                0.0
            };
            let st = &self.stations[s];
            let body = json!({
                "id": st.id, "type": "WeatherObserved", "temperature": temperature, "precipitation": precipitation,
                "relativeHumidity": (humidity * 100.0).round() / 100.0, "windSpeed": self.rng.random_range(0.0..6.0_f64).round(),
                "dewPoint": ((temperature - (1.0 - humidity) * 20.0) * 10.0).round() / 10.0, "refParcels": st.parcels,
                "location": {"type": "Point", "coordinates": [st.point.lon, st.point.lat]},
            });
            let (key, parcels, point) = (st.id.clone(), st.parcels.clone(), st.point);
            self.emit(Stream::Vineyards, &key, body, out);
            for (p, parcel) in parcels.iter().enumerate() {
                let body = json!({
                    "id": format!("urn:ngsi-ld:AgriParcelRecord:{}", parcel.rsplit(':').next().unwrap_or("p")),
                    "type": "AgriParcelRecord", "hasAgriParcel": parcel,
                    "soilMoistureVwc": if raining { 0.34 } else { 0.18 + 0.01 * p as f64 },
                    "soilTemperature": ((mean + swing / 3.0) * 10.0).round() / 10.0,
                    "leafWetness": if raining || humidity > 0.9 { 1.0 } else { 0.0 },
                    "relativeHumidity": (humidity * 100.0).round() / 100.0,
                    "location": {"type": "Point", "coordinates": [point.lon + 0.002 * p as f64, point.lat]},
                });
                self.emit(Stream::Vineyards, parcel, body, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vallee_schemas::decode::{DecodeOptions, decode};

    #[test]
    fn a_simulated_day_is_valid_traffic_from_every_stream_with_a_few_faults() {
        let start = DateTime::parse_from_rfc3339("2026-06-02T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut valley = Valley::new(
            ValleyShape {
                fault_ratio: 0.01,
                ..Default::default()
            },
            start,
        );
        let mut events = Vec::new();
        valley.advance(start + Duration::hours(24), &mut events);
        let mut per_stream = std::collections::BTreeMap::new();
        let mut refused = 0;
        for e in &events {
            *per_stream.entry(e.stream).or_insert(0) += 1;
            if decode(
                e.stream,
                Some(e.payload.as_bytes()),
                None,
                &DecodeOptions::default(),
            )
            .is_err()
            {
                refused += 1;
            }
        }
        assert_eq!(per_stream.len(), 5, "{per_stream:?}");
        let share = refused as f64 / events.len() as f64;
        assert!(
            share > 0.002 && share < 0.03,
            "{refused} of {} refused",
            events.len()
        );
        // Same seed, same valley.
        let mut again = Valley::new(
            ValleyShape {
                fault_ratio: 0.01,
                ..Default::default()
            },
            start,
        );
        let mut events2 = Vec::new();
        again.advance(start + Duration::hours(24), &mut events2);
        assert_eq!(events.len(), events2.len());
        assert_eq!(events[100].payload, events2[100].payload);
    }
}
