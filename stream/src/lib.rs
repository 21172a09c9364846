//! The stream stage of the Smart Vallée hub: event-time windows on DataFusion (live fill
//! alerts, footfall, site visits, vineyard risk indicators).
//!
//! Not built yet: the walking skeleton lands raw events in the lake; the windowed stage is
//! the next capability. This crate exists so the workspace layout is the final one.
