//! JSON Schemas of the input contract, one per event type, derived from the input structs
//! so they cannot drift from what the decoder accepts (`vallee schemas export DIR`).

use schemars::{JsonSchema, schema_for};
use serde_json::{Value, json};

use crate::events::beacon::BeaconSightingInput;
use crate::events::parcel_record::ParcelRecordInput;
use crate::events::site_visit::SiteVisitInput;
use crate::events::vehicle::VehicleInput;
use crate::events::waste_container::WasteContainerInput;
use crate::events::weather::WeatherObservedInput;

fn schema_of<T: JsonSchema>(type_name: &str, topic: &str) -> Value {
    let mut schema = serde_json::to_value(schema_for!(T)).unwrap_or(Value::Null);
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "$id".into(),
            json!(format!(
                "https://vallee-herault.fr/schemas/{type_name}.json"
            )),
        );
        obj.insert("x-kafka-topic".into(), json!(topic));
        if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert(
                "type".into(),
                json!({ "const": type_name, "description": "The Smart Data Models type name." }),
            );
        }
    }
    schema
}

/// `(type name, JSON Schema)` for every event type of the input contract.
pub fn all() -> Vec<(&'static str, Value)> {
    use crate::contract::Stream::*;
    vec![
        (
            "WasteContainer",
            schema_of::<WasteContainerInput>("WasteContainer", WasteContainers.default_topic()),
        ),
        (
            "Vehicle",
            schema_of::<VehicleInput>("Vehicle", WasteVehicles.default_topic()),
        ),
        (
            "BeaconSighting",
            schema_of::<BeaconSightingInput>("BeaconSighting", Beacons.default_topic()),
        ),
        (
            "SiteVisit",
            schema_of::<SiteVisitInput>("SiteVisit", Tourism.default_topic()),
        ),
        (
            "AgriParcelRecord",
            schema_of::<ParcelRecordInput>("AgriParcelRecord", Vineyards.default_topic()),
        ),
        (
            "WeatherObserved",
            schema_of::<WeatherObservedInput>("WeatherObserved", Vineyards.default_topic()),
        ),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_type_has_a_schema_naming_its_required_attributes() {
        let all = super::all();
        assert_eq!(all.len(), 6);
        for (name, schema) in &all {
            let required: Vec<&str> = schema["required"]
                .as_array()
                .unwrap_or_else(|| panic!("{name} has no required list: {schema}"))
                .iter()
                .filter_map(|v| v.as_str())
                .collect();
            assert!(required.contains(&"id"), "{name}: {required:?}");
            assert!(required.contains(&"type"), "{name}: {required:?}");
            assert_eq!(schema["properties"]["type"]["const"], *name);
        }
        let bin = &all[0].1;
        assert!(
            bin["required"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v == "fillingLevel")
        );
        assert_eq!(bin["properties"]["fillingLevel"]["maximum"], 1.0);
    }
}
