//! The bottom layer of the Smart Vallée hub: what the data *is*, with no I/O.
//!
//! Everything the other crates agree on lives here: the input contract (topics, event
//! types in FIWARE Smart Data Models keyValues form, their validation), the lake contract
//! of every table, raw and derived (names, Arrow schemas, keys, the rows of the derived
//! tables both ways, lineage and dead-letter columns), the domain formulas the SQL
//! functions use, and the valley's reference data (its 28 communes). Nothing here talks to Kafka, Delta or HTTP, so
//! every rule can be unit-tested in microseconds and reused by ingest, the stream stage,
//! the API and the simulator alike.
//!
//! # Layout
//! - [`streams`] — the input streams and their topics (a leaf: every module may name one).
//! - [`contract`] — what each stream carries, the raw lake tables and which stream feeds which.
//! - [`tables`] — the contract every lake table answers ([`tables::LakeTable`]), the derived
//!   tables ([`tables::OutputTable`]) with their rows to and from Arrow, and the typed column
//!   readers every reader of the lake uses.
//! - [`formulas`] — the domain formulas (degree days, Huglin) the stage and SQL share.
//! - [`events`] — one module per event type — the lenient input struct (what arrives), its
//!   validation, and the strict record (one lake row) with its Arrow schema.
//! - [`citizen`] — citizens' reports, ideas and staff actions as events (written by the API).
//! - [`decode`] — bytes of one Kafka message → a validated event or a [`decode::Rejection`]
//!   with a reason code; the only entry point ingest needs.
//! - [`signing`] — the signature of the events only the API writes, checked by every reader.
//! - [`dead_letter`] — the dead-letter row, with identifiers redacted from the raw bytes.
//! - [`time`] — event-time resolution (`dateObserved`, else `TimeInstant`, else Kafka time).
//! - [`communes`] — the reference data, and placing a point in a commune.
//! - [`geo`] — GeoJSON points and distances.
//! - [`batch`] — rows → Arrow record batches.
//! - [`json_schema`] — the JSON Schemas of the input contract (`vallee schemas export`).
//! - [`units`] — durations in the configuration file, in the unit their key names.
//! - [`public_view`] — what the public may see, the one set of rules every public door
//!   applies: k = 5 suppression of people counts (differencing included), private parcels,
//!   contacts masked in free text, rounded report positions.
//!
//! # Example
//! ```
//! use vallee_schemas::{contract::Stream, decode::{decode, DecodeOptions, Decoded}};
//!
//! let payload = br#"{"id":"urn:ngsi-ld:WasteContainer:gignac-0001","type":"WasteContainer",
//!   "dateObserved":"2026-11-28T10:15:00+01:00","fillingLevel":0.83,
//!   "location":{"type":"Point","coordinates":[3.5512,43.6521]}}"#;
//! let decoded = decode(Stream::WasteContainers, Some(payload), None, &DecodeOptions::default()).unwrap();
//! let Decoded::WasteContainer(bin) = decoded else { panic!("routed to the wrong type") };
//! assert_eq!(bin.filling_level, 0.83);
//! assert_eq!(bin.commune_code.as_deref(), Some("34114")); // Gignac
//! ```

pub mod batch;
pub mod citizen;
pub mod communes;
pub mod contract;
pub mod dead_letter;
pub mod decode;
pub mod digest;
mod error;
pub mod events;
pub mod formulas;
pub mod geo;
pub mod json_schema;
pub mod privacy;
pub mod public_view;
pub mod rejection;
pub mod signing;
pub mod streams;
pub mod tables;
pub mod time;
pub mod units;

pub use error::{Error, Result};
