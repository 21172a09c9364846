//! The field doors' clock ([`FieldClock`]), in a module of its own so that the options
//! carry it without importing the doors.

use std::sync::Arc;

/// The doors' clock: what "now" is when a door judges an event dated in the future and
/// stamps the records it sends. The real clock, unless the hub runs its built-in simulator
/// (`vallee up`): the simulated valley lives an hour a minute ahead of real time and sends
/// part of its traffic through the doors, so there the doors follow the simulated clock
/// too ([`FieldClock::simulated`]), never behind the real one. A hub that takes real
/// devices runs without the simulator, on the real clock.
#[derive(Debug, Clone, Default)]
pub struct FieldClock(Option<Arc<std::sync::atomic::AtomicI64>>);

impl FieldClock {
    /// A clock the simulator moves ([`Self::follow`]).
    pub fn simulated() -> Self {
        FieldClock(Some(Arc::default()))
    }

    /// The simulated clock reached `now` (does nothing to the real clock).
    pub fn follow(&self, now: chrono::DateTime<chrono::Utc>) {
        if let Some(simulated) = &self.0 {
            simulated.fetch_max(now.timestamp_millis(), std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Now, in Unix milliseconds: the real clock, or the simulated one when it is ahead.
    pub fn now_ms(&self) -> i64 {
        let real = chrono::Utc::now().timestamp_millis();
        match &self.0 {
            Some(simulated) => real.max(simulated.load(std::sync::atomic::Ordering::Relaxed)),
            None => real,
        }
    }
}
