//! The footfall windows (PT5M and PT1H tumbling) of one way of counting people.

use chrono::{DateTime, Duration, Utc};

use crate::aggregate::Aggregate;
use crate::microbatch::SightingPartial;
use crate::operator::{Emission, WindowOperator};
use crate::window::{Window, WindowKind};

/// A window row and the size it is of.
pub type Closed = (WindowKind, Emission<String, i64>);

/// The five-minute and hourly windows of distinct devices per zone.
pub struct FootfallWindows<A>(Vec<WindowOperator<String, A>>);

impl<A: Aggregate<Input = u64, Output = i64>> FootfallWindows<A> {
    pub fn new(horizon: Duration) -> Self {
        FootfallWindows(
            [Duration::minutes(5), Duration::hours(1)]
                .into_iter()
                .map(|size| WindowOperator::new(WindowKind::Tumbling { size }, horizon))
                .collect(),
        )
    }

    /// Whether a row at `t` falls in a window (of some size) already dropped.
    pub fn refuses(&self, t: DateTime<Utc>) -> bool {
        self.0.iter().any(|op| op.refuses(t))
    }

    /// Folds a partial in; returns whether it came too late for some window.
    pub fn insert(&mut self, partial: &SightingPartial, corrections: &mut Vec<Closed>) -> bool {
        let mut too_late = false;
        for op in &mut self.0 {
            let kind = op.kind();
            let inserted = op.insert(
                &partial.zone,
                partial.time,
                &partial.token,
                Some(&partial.lineage),
            );
            corrections.extend(inserted.corrections.into_iter().map(|e| (kind, e)));
            too_late |= inserted.too_late;
        }
        too_late
    }

    pub fn advance(&mut self, watermark: DateTime<Utc>) -> Vec<Closed> {
        let mut closed = Vec::new();
        for op in &mut self.0 {
            let kind = op.kind();
            closed.extend(op.advance(watermark).into_iter().map(|e| (kind, e)));
        }
        closed
    }

    /// Current values of the open windows: zone, window size, window, people.
    pub fn early(&self) -> Vec<(String, String, Window, i64)> {
        self.0
            .iter()
            .flat_map(|op| {
                let size = op.kind().iso_size();
                op.early_results()
                    .into_iter()
                    .map(move |e| (e.key, size.clone(), e.window, e.value))
            })
            .collect()
    }
}
