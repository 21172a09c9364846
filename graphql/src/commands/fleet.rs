//! The collection fleet (depots, trucks) staff keep up to date for the round planner: staff
//! of the depot's commune, or of the intercommunality, publish and remove them.

use vallee_schemas::citizen::{self, CitizenChange, DepotUpdated, TruckUpdated};
use vallee_schemas::communes;

use super::access::Staff;
use super::validate::text;
use super::writes::Writes;
use super::{Applied, CommandError, Commands, Result};

impl Commands {
    /// Staff: a new depot (with an empty id), or the whole new version of one.
    pub(super) async fn update_depot(
        &self,
        staff: Staff<'_>,
        mut depot: DepotUpdated,
    ) -> Result<Applied> {
        if communes::valley().by_code(&depot.commune_code).is_none() {
            return Err(CommandError::bad(
                "communeCode is not a commune of the valley",
            ));
        }
        staff.check_scope(Some(&depot.commune_code))?;
        if depot.depot_id.is_empty() {
            depot.depot_id = citizen::uuid_v4();
        } else {
            // Moving a depot out of one's commune is refused as changing it would be.
            let current = self
                .fleet(|v| v.depots.get(&depot.depot_id).cloned())
                .ok_or_else(|| CommandError::NotFound("no such depot".into()))?;
            staff.check_scope(Some(&current.commune_code))?;
        }
        depot.name = text("name", &depot.name, 200)?;
        let (id, name) = (depot.depot_id.clone(), depot.name.clone());
        let event = staff.event(CitizenChange::DepotUpdated(depot));
        event
            .validate()
            .map_err(|r| CommandError::bad(r.to_string()))?;
        self.write(Writes::audited(staff, "updateDepot", &id, Some(name)).then(event))
            .await?;
        self.fleet(|v| v.depots.get(&id).cloned().map(Applied::Depot))
            .ok_or_else(|| CommandError::NotFound("no such depot".into()))
    }

    /// Staff of the depot's scope: removes it, once no truck leaves from it.
    pub(super) async fn remove_depot(&self, staff: Staff<'_>, id: &str) -> Result<Applied> {
        let (depot, based) = self.fleet(|v| {
            let based: Vec<String> = v
                .trucks
                .values()
                .filter(|t| t.depot_id == id)
                .map(|t| t.truck_id.clone())
                .collect();
            (v.depots.get(id).cloned(), based)
        });
        let depot = depot.ok_or_else(|| CommandError::NotFound("no such depot".into()))?;
        staff.check_scope(Some(&depot.commune_code))?;
        if !based.is_empty() {
            return Err(CommandError::bad(format!(
                "trucks still leave from this depot ({}): move or remove them first",
                based.join(", ")
            )));
        }
        let removal = staff.event(CitizenChange::DepotRemoved {
            depot_id: id.to_string(),
        });
        self.write(Writes::audited(staff, "removeDepot", id, None).then(removal))
            .await?;
        Ok(Applied::FleetRemoved { id: id.to_string() })
    }

    /// Staff of the depot's scope: a new truck, or the whole new version of one (its id
    /// is the one its positions carry).
    pub(super) async fn update_truck(
        &self,
        staff: Staff<'_>,
        mut truck: TruckUpdated,
    ) -> Result<Applied> {
        truck.truck_id = text("id", &truck.truck_id, 200)?;
        truck.name = text("name", &truck.name, 200)?;
        let (depot, current) = self.fleet(|v| {
            (
                v.depots.get(&truck.depot_id).cloned(),
                v.trucks.get(&truck.truck_id).cloned(),
            )
        });
        let depot = depot.ok_or_else(|| CommandError::bad("depotId names no depot"))?;
        staff.check_scope(Some(&depot.commune_code))?;
        if let Some(current) = current
            && let Some(from) = self.fleet(|v| v.depots.get(&current.depot_id).cloned())
        {
            // Moving a truck away from a depot is changing that depot's fleet.
            staff.check_scope(Some(&from.commune_code))?;
        }
        truck.waste_kinds = truck
            .waste_kinds
            .iter()
            .map(|k| k.trim().to_lowercase())
            .collect();
        let (id, name) = (truck.truck_id.clone(), truck.name.clone());
        let event = staff.event(CitizenChange::TruckUpdated(truck));
        event
            .validate()
            .map_err(|r| CommandError::bad(r.to_string()))?;
        self.write(Writes::audited(staff, "updateTruck", &id, Some(name)).then(event))
            .await?;
        self.fleet(|v| v.trucks.get(&id).cloned().map(Applied::Truck))
            .ok_or_else(|| CommandError::NotFound("no such truck".into()))
    }

    /// Staff of the truck's depot's scope: removes it.
    pub(super) async fn remove_truck(&self, staff: Staff<'_>, id: &str) -> Result<Applied> {
        let (truck, depot) = self.fleet(|v| {
            let truck = v.trucks.get(id).cloned();
            let depot = truck
                .as_ref()
                .and_then(|t| v.depots.get(&t.depot_id).cloned());
            (truck, depot)
        });
        truck.ok_or_else(|| CommandError::NotFound("no such truck".into()))?;
        staff.check_scope(depot.as_ref().map(|d| d.commune_code.as_str()))?;
        let removal = staff.event(CitizenChange::TruckRemoved {
            truck_id: id.to_string(),
        });
        self.write(Writes::audited(staff, "removeTruck", id, None).then(removal))
            .await?;
        Ok(Applied::FleetRemoved { id: id.to_string() })
    }

    /// Reads the fleet in this replica's view.
    fn fleet<T>(&self, read: impl FnOnce(&crate::citizen::view::CitizenView) -> T) -> T {
        read(&self.citizens.view.read().expect("view lock"))
    }
}
