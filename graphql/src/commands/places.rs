//! Reference places (digital gallery, coworking, training sessions, childcare): staff of
//! the place's commune, or of the intercommunality, publish, remove them and say how many
//! childcare places are free.

use vallee_schemas::citizen::{self, CitizenChange, MAX_TEXT_CHARS, PlaceKind, PlaceUpdated};
use vallee_schemas::communes;

use super::access::Staff;
use super::validate::{opt_text, text};
use super::writes::Writes;
use super::{Applied, CommandError, Commands, Result, UpdatePlace};

impl Commands {
    /// Staff: a new place, or the whole new version of one (both in their scope).
    pub(super) async fn update_place(
        &self,
        staff: Staff<'_>,
        place: UpdatePlace,
    ) -> Result<Applied> {
        if communes::valley().by_code(&place.commune_code).is_none() {
            return Err(CommandError::bad(
                "communeCode is not a commune of the valley",
            ));
        }
        staff.check_scope(Some(&place.commune_code))?;
        let id = match place.place_id {
            Some(id) => {
                // Moving a place out of one's commune is refused as changing it would be.
                let current = self.place(&id)?;
                staff.check_scope(Some(&current.place.commune_code))?;
                id
            }
            None => citizen::uuid_v4(),
        };
        let version = PlaceUpdated {
            place_id: id.clone(),
            kind: place.kind,
            name: text("name", &place.name, 200)?,
            commune_code: place.commune_code,
            address: opt_text("address", place.address, 500)?,
            lat: place.lat,
            long: place.long,
            opening_hours: opt_text("openingHours", place.opening_hours, 500)?,
            contact: opt_text("contact", place.contact, 200)?,
            website: opt_text("website", place.website, 500)?,
            description: opt_text("description", place.description, MAX_TEXT_CHARS)?,
            starts_at: place.starts_at,
            ends_at: place.ends_at,
            seats: place.seats,
            capacity: place.capacity,
            age_min_months: place.age_min_months,
            age_max_months: place.age_max_months,
        };
        let event = staff.event(CitizenChange::PlaceUpdated(version));
        // The event's own rules (positions, ages, dates) refuse the input before anything
        // is written, the audit included.
        event
            .validate()
            .map_err(|r| CommandError::bad(r.to_string()))?;
        self.write(Writes::audited(staff, "updatePlace", &id, Some(place.name)).then(event))
            .await?;
        Ok(Applied::Place(self.place(&id)?))
    }

    /// Staff of the place's scope: removes it (a closed facility, a cancelled session).
    pub(super) async fn remove_place(&self, staff: Staff<'_>, id: &str) -> Result<Applied> {
        let current = self.place(id)?;
        staff.check_scope(Some(&current.place.commune_code))?;
        let removal = staff.event(CitizenChange::PlaceRemoved {
            place_id: id.to_string(),
        });
        self.write(Writes::audited(staff, "removePlace", id, None).then(removal))
            .await?;
        Ok(Applied::PlaceRemoved {
            place_id: id.to_string(),
        })
    }

    /// Staff of the facility's scope: its free places right now (at most its capacity).
    pub(super) async fn update_childcare_vacancies(
        &self,
        staff: Staff<'_>,
        id: &str,
        vacancies: u32,
    ) -> Result<Applied> {
        let current = self.place(id)?;
        if current.place.kind != PlaceKind::Childcare {
            return Err(CommandError::bad("only a childcare facility has vacancies"));
        }
        if current.place.capacity.is_some_and(|c| vacancies > c) {
            return Err(CommandError::bad(
                "vacancies exceed the facility's capacity",
            ));
        }
        staff.check_scope(Some(&current.place.commune_code))?;
        let update = staff.event(CitizenChange::ChildcareVacanciesUpdated {
            place_id: id.to_string(),
            vacancies,
        });
        self.write(
            Writes::audited(
                staff,
                "updateChildcareVacancies",
                id,
                Some(vacancies.to_string()),
            )
            .then(update),
        )
        .await?;
        Ok(Applied::Place(self.place(id)?))
    }
}
