//! `vallee bench forecast`: how far off time-to-full is, for the straight line through the
//! readings since the last emptying and for the week profile the stage uses once learnt.
//!
//! The valley simulator runs for some weeks (its bins fill faster on Saturdays, the market
//! day, and with the hours of the day); the first weeks teach the profiles, the last one is
//! held out. At every reading of that week below the threshold, both forecasters give a
//! time-to-full; the truth is the first later reading at or above the threshold, when no
//! emptying came first. The report gives the mean absolute error of each, in hours, over
//! the same readings.

use anyhow::Result;
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;
use vallee_schemas::tables::forecast::EMPTYING_DROP;
use vallee_stream::families::bins::forecast::FillTrend;

use crate::cli::BenchForecastArgs;
use crate::simulator::{Valley, ValleyShape};

/// A bin's reading: when, level, threshold.
type Reading = (DateTime<Utc>, f64, f64);

/// Runs the forecast benchmark and prints its report.
pub async fn forecast(args: BenchForecastArgs) -> Result<()> {
    let start: DateTime<Utc> = "2026-05-04T00:00:00Z".parse()?;
    let end = start + Duration::weeks(args.weeks as i64);
    let held_out = end - Duration::weeks(1);
    eprintln!(
        "[1/2] simulating {} weeks of {} bins (the last one held out)…",
        args.weeks, args.bins
    );
    let readings =
        tokio::task::spawn_blocking(move || simulate(args.bins, args.seed, start, end)).await?;
    eprintln!("[2/2] forecasting every reading of the held-out week…");
    let (mut linear_err, mut profile_err, mut profile_used) = (Vec::new(), Vec::new(), 0usize);
    for series in readings.values() {
        let (mut linear, mut profiled) = (FillTrend::linear(), FillTrend::default());
        for (i, &(at, level, threshold)) in series.iter().enumerate() {
            let l = linear.on_reading(at, level, threshold);
            let p = profiled.on_reading(at, level, threshold);
            if at < held_out || level >= threshold {
                continue;
            }
            let (Some(truth), Some(l), Some(p)) = (full_at(&series[i..]), l, p) else {
                continue;
            };
            let (Some(l), Some(p)) = (l.full_at, p.full_at) else {
                continue;
            };
            let hours = |t: DateTime<Utc>| (t - truth).num_seconds().abs() as f64 / 3600.0;
            linear_err.push(hours(l));
            profile_err.push(hours(p));
            profile_used += usize::from(l != p);
        }
    }
    let mae = |e: &[f64]| e.iter().sum::<f64>() / e.len().max(1) as f64;
    let (l, p) = (mae(&linear_err), mae(&profile_err));
    println!(
        "time-to-full, held-out week ({} forecasts with a known outcome)",
        linear_err.len()
    );
    println!("  straight line since the last emptying: MAE {l:.2} h");
    println!(
        "  week profile (used for {profile_used} of them): MAE {p:.2} h, {:.2}× the line's error",
        p / l.max(f64::EPSILON)
    );
    Ok(())
}

/// The bins' readings of the simulated weeks, per bin, in time order.
fn simulate(
    bins: usize,
    seed: u64,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> BTreeMap<String, Vec<Reading>> {
    let mut valley = Valley::new(
        ValleyShape {
            seed,
            bins,
            fault_ratio: 0.0,
            ..Default::default()
        },
        start,
    );
    let mut out: BTreeMap<String, Vec<Reading>> = BTreeMap::new();
    let mut events = Vec::new();
    while valley.now() < end {
        let until = valley.now() + Duration::hours(6);
        valley.advance(until, &mut events);
        for e in events.drain(..) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&e.payload) else {
                continue;
            };
            if v["type"] != "WasteContainer" || v["status"] != "ok" {
                continue;
            }
            let (Some(id), Some(level)) = (v["id"].as_str(), v["fillingLevel"].as_f64()) else {
                continue;
            };
            let threshold = v["binFullnessThreshold"].as_f64().unwrap_or(0.8);
            out.entry(id.to_string())
                .or_default()
                .push((e.time, level, threshold));
        }
    }
    for series in out.values_mut() {
        series.sort_by_key(|r| r.0);
    }
    out
}

/// When the first reading of `series` (below its threshold) was followed by one at or
/// above it, with no emptying in between.
fn full_at(series: &[Reading]) -> Option<DateTime<Utc>> {
    for pair in series.windows(2) {
        let ((_, before, _), (at, level, threshold)) = (pair[0], pair[1]);
        if before - level > EMPTYING_DROP {
            return None;
        }
        if level >= threshold {
            return Some(at);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_truth_is_the_first_reading_at_the_threshold_unless_emptied_first() {
        let t =
            |h: i64| "2026-05-04T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::hours(h);
        let filling = [(t(0), 0.5, 0.8), (t(1), 0.7, 0.8), (t(2), 0.85, 0.8)];
        assert_eq!(full_at(&filling), Some(t(2)));
        let emptied = [
            (t(0), 0.5, 0.8),
            (t(1), 0.7, 0.8),
            (t(2), 0.05, 0.8),
            (t(3), 0.9, 0.8),
        ];
        assert_eq!(full_at(&emptied), None);
        assert_eq!(full_at(&filling[..2]), None, "not full yet");
    }
}
