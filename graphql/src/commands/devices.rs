//! The register of field devices: staff of the commune a device stands in (or of the
//! intercommunality) register, change and remove devices, one by one or as a CSV import
//! checked whole before anything is written.

use chrono::NaiveDate;
use vallee_schemas::citizen::devices::is_dev_eui;
use vallee_schemas::citizen::{CitizenChange, DeviceProfile, DeviceRegistered};
use vallee_schemas::communes;
use vallee_schemas::geo::GeoPoint;

use super::access::Staff;
use super::writes::Writes;
use super::{Applied, CommandError, Commands, Result};

/// Most devices one import registers.
pub const MAX_IMPORT: usize = 5_000;

/// A device as staff describe it (its commune comes from its position).
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub dev_eui: String,
    pub entity_id: String,
    pub profile: DeviceProfile,
    pub lat: f64,
    pub long: f64,
    pub installed_on: Option<NaiveDate>,
    pub report_interval_s: Option<u32>,
    pub depth_mm: Option<f64>,
    pub fill_threshold: Option<f64>,
}

impl Registration {
    /// The register's record: upper-case DevEUI, the commune it stands in, checked.
    fn record(self) -> std::result::Result<DeviceRegistered, String> {
        if !is_dev_eui(self.dev_eui.trim()) {
            return Err(format!("{:?}: devEui is 16 hex digits", self.dev_eui));
        }
        let commune = communes::valley()
            .locate(&GeoPoint::new(self.long, self.lat))
            .ok_or_else(|| format!("{}: its position is outside the valley", self.dev_eui))?;
        let record = DeviceRegistered {
            dev_eui: self.dev_eui.trim().to_uppercase(),
            entity_id: self.entity_id.trim().to_string(),
            profile: self.profile,
            lat: self.lat,
            long: self.long,
            commune_code: commune.insee_code.clone(),
            installed_on: self.installed_on,
            report_interval_s: self.report_interval_s,
            depth_mm: self.depth_mm,
            fill_threshold: self.fill_threshold,
        };
        record
            .check()
            .map_err(|r| format!("{}: {r}", record.dev_eui))?;
        Ok(record)
    }
}

/// The registrations of a CSV (a header naming the columns; `dev_eui`, `entity_id`,
/// `profile`, `latitude`, `longitude` required; `depth_mm`, `report_interval_s`,
/// `installed_on` (YYYY-MM-DD), `fill_threshold` optional), or every line's error.
pub fn parse_csv(text: &str) -> std::result::Result<Vec<Registration>, Vec<String>> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(vec!["the file is empty".into()]);
    };
    let columns: Vec<String> = header
        .split([',', ';'])
        .map(|c| c.trim().to_lowercase())
        .collect();
    let at = |name: &str| columns.iter().position(|c| c == name);
    let required = ["dev_eui", "entity_id", "profile", "latitude", "longitude"];
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|c| at(c).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(vec![format!("the header lacks {}", missing.join(", "))]);
    }
    let (mut out, mut errors) = (Vec::new(), Vec::new());
    for (n, line) in lines {
        let cells: Vec<&str> = line.split([',', ';']).map(str::trim).collect();
        let cell = |name: &str| {
            at(name)
                .and_then(|i| cells.get(i))
                .copied()
                .filter(|c| !c.is_empty())
        };
        let number = |name: &str| -> std::result::Result<Option<f64>, String> {
            cell(name)
                .map(|c| {
                    c.parse::<f64>()
                        .map_err(|_| format!("line {}: {name} {c:?} is not a number", n + 1))
                })
                .transpose()
        };
        let parsed = (|| {
            let profile = cell("profile")
                .and_then(DeviceProfile::parse)
                .ok_or_else(|| {
                    format!(
                        "line {}: profile is ultrasonic_fill, weather_station or people_counter",
                        n + 1
                    )
                })?;
            Ok::<_, String>(Registration {
                dev_eui: cell("dev_eui").unwrap_or_default().to_string(),
                entity_id: cell("entity_id").unwrap_or_default().to_string(),
                profile,
                lat: number("latitude")?.ok_or(format!("line {}: latitude is required", n + 1))?,
                long: number("longitude")?
                    .ok_or(format!("line {}: longitude is required", n + 1))?,
                installed_on: cell("installed_on")
                    .map(|d| {
                        NaiveDate::parse_from_str(d, "%Y-%m-%d")
                            .map_err(|_| format!("line {}: installed_on is YYYY-MM-DD", n + 1))
                    })
                    .transpose()?,
                report_interval_s: number("report_interval_s")?.map(|s| s as u32),
                depth_mm: number("depth_mm")?,
                fill_threshold: number("fill_threshold")?,
            })
        })();
        match parsed {
            Ok(r) => out.push(r),
            Err(e) => errors.push(e),
        }
    }
    if out.len() > MAX_IMPORT {
        errors.push(format!("at most {MAX_IMPORT} devices per import"));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

impl Commands {
    /// Staff of the device's commune: registers it, or its whole new version.
    pub(super) async fn register_device(
        &self,
        staff: Staff<'_>,
        device: Registration,
    ) -> Result<Applied> {
        let record = device.record().map_err(CommandError::bad)?;
        self.check_device_scope(staff, &record)?;
        let (id, entity) = (record.dev_eui.clone(), record.entity_id.clone());
        let event = staff.event(CitizenChange::DeviceRegistered(record.clone()));
        self.write(Writes::audited(staff, "registerDevice", &id, Some(entity)).then(event))
            .await?;
        Ok(Applied::Device(record))
    }

    /// Staff: registers every device of a CSV, once all of them are valid and in scope.
    pub(super) async fn import_devices(&self, staff: Staff<'_>, csv: &str) -> Result<Applied> {
        let registrations = parse_csv(csv).map_err(|e| CommandError::bad(summary(&e)))?;
        let mut records = Vec::new();
        let mut errors = Vec::new();
        for r in registrations {
            match r.record() {
                Ok(record) => records.push(record),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(CommandError::bad(summary(&errors)));
        }
        for record in &records {
            self.check_device_scope(staff, record)?;
        }
        let mut writes = Writes::audited(
            staff,
            "importDevices",
            "devices",
            Some(format!("{} devices", records.len())),
        );
        for record in &records {
            writes = writes.then(staff.event(CitizenChange::DeviceRegistered(record.clone())));
        }
        self.write(writes).await?;
        Ok(Applied::DevicesImported(records.len()))
    }

    /// Staff of the device's commune: removes it from the register.
    pub(super) async fn remove_device(&self, staff: Staff<'_>, dev_eui: &str) -> Result<Applied> {
        let key = dev_eui.trim().to_uppercase();
        let current = self
            .registered(&key)
            .ok_or_else(|| CommandError::NotFound("no such device".into()))?;
        staff.check_scope(Some(&current.commune_code))?;
        let removal = staff.event(CitizenChange::DeviceRemoved {
            dev_eui: key.clone(),
        });
        self.write(Writes::audited(staff, "removeDevice", &key, None).then(removal))
            .await?;
        Ok(Applied::FleetRemoved { id: key })
    }

    /// The device's commune, and the commune of the version it replaces, are in scope.
    fn check_device_scope(&self, staff: Staff<'_>, record: &DeviceRegistered) -> Result<()> {
        staff.check_scope(Some(&record.commune_code))?;
        if let Some(current) = self.registered(&record.dev_eui) {
            staff.check_scope(Some(&current.commune_code))?;
        }
        Ok(())
    }

    /// The register's device with this (upper-case) DevEUI.
    fn registered(&self, dev_eui: &str) -> Option<DeviceRegistered> {
        let view = self.citizens.view.read().expect("view lock");
        view.devices.get(dev_eui).cloned()
    }
}

/// The first errors of a list, and how many there were.
fn summary(errors: &[String]) -> String {
    let shown: Vec<&str> = errors.iter().take(5).map(String::as_str).collect();
    let more = errors.len().saturating_sub(shown.len());
    let mut text = shown.join("; ");
    if more > 0 {
        text.push_str(&format!("; and {more} more"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_registers_every_device_or_says_what_is_wrong_on_which_line() {
        let ok = "dev_eui;entity_id;profile;latitude;longitude;depth_mm;report_interval_s;installed_on\n\
                  a1b2c3d4e5f60718;urn:ngsi-ld:WasteContainer:g-1;ultrasonic_fill;43.6521;3.5512;1200;1800;2026-03-01\n\
                  0202020202020202;abbaye-de-gellone;people_counter;43.7339;3.5498;;;\n";
        let parsed = parse_csv(ok).unwrap();
        assert_eq!(parsed.len(), 2);
        let record = parsed[0].clone().record().unwrap();
        assert_eq!(
            (record.dev_eui.as_str(), record.commune_code.as_str()),
            ("A1B2C3D4E5F60718", "34114")
        );
        assert_eq!(record.installed_on, NaiveDate::from_ymd_opt(2026, 3, 1));
        assert_eq!(parsed[1].clone().record().unwrap().commune_code, "34261");

        let bad = "dev_eui,entity_id,profile,latitude,longitude\n\
                   a1b2,b,ultrasonic_fill,43.65,3.55\n\
                   a1b2c3d4e5f60718,b,thermometer,43.65,3.55\n\
                   a1b2c3d4e5f60718,b,weather_station,north,3.55\n";
        let errors = parse_csv(bad).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("line 3: profile"));
        assert!(errors[1].starts_with("line 4: latitude"));
        let short = parse_csv(bad.lines().take(2).collect::<Vec<_>>().join("\n").as_str()).unwrap();
        assert!(
            short[0]
                .clone()
                .record()
                .unwrap_err()
                .contains("16 hex digits")
        );
        // A fill sensor needs the bin's depth; a position outside the valley is refused.
        let mut no_depth = parsed[0].clone();
        no_depth.depth_mm = None;
        assert!(no_depth.record().unwrap_err().contains("depthMm"));
        let mut paris = parsed[1].clone();
        (paris.lat, paris.long) = (48.8566, 2.3522);
        assert!(paris.record().unwrap_err().contains("outside the valley"));
        assert_eq!(
            parse_csv("dev_eui,profile\n").unwrap_err()[0],
            "the header lacks entity_id, latitude, longitude"
        );
    }
}
