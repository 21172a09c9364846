//! The `vallee` binary's library: the wiring of the stages into commands.
//!
//! The stages live in their crates (`vallee-schemas`, `vallee-ingest`, `vallee-lake`,
//! `vallee-stream`, `vallee-graphql`); this crate only builds them from the configuration
//! and runs them under one shutdown tree.
//!
//! # Layout
//! - [`cli`] — command-line arguments and their environment fallbacks.
//! - [`config`] — the optional TOML file: one section per stage's options.
//! - [`broker`] — the embedded Tansu broker of `vallee up`.
//! - [`hub`] — `vallee up` and `vallee ingest`: start, banner, graceful stop.
//! - [`simulator`] — realistic traffic for the valley.
//! - [`bench`] — `vallee bench ingest` and `vallee bench stream`.
//! - [`upkeep`] — `vallee lake optimize | vacuum | checkpoint`, also on a schedule.
//! - [`repair`] — `vallee lake accept-loss`, after the broker lost landed records.

pub mod bench;
pub mod broker;
pub mod cli;
pub mod config;
pub mod hub;
#[cfg(test)]
mod layering;
pub mod repair;
pub mod simulator;
pub mod upkeep;

/// Peak resident memory of this process, in bytes (Linux `VmHWM`).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
