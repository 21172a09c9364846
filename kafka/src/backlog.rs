//! When a stage has a backlog, and when it has read one to its end.
//!
//! Both stages flush their buffers at an interval (freshness for live traffic) and at a
//! size (bounded memory). A backlog (a restart's replay, a burst after an outage) needs two
//! more rules, the same in both stages, so they live here:
//!
//! - **Its end is flushed at once**, however few rows the last size flush left, rather
//!   than at the next interval: a restart's last rows would otherwise wait a whole interval
//!   for no reason. Not sooner than [`backlog_flush_spacing`] after the flush before, which
//!   bounds the commits of a stage fetching in bursts.
//! - **While it is read**, a stage may flush in larger batches ([`BacklogWatch::in_backlog`]):
//!   each commit has a cost of its own, and a backlog committed at the live size spends
//!   the CPU the reading thread needs.
//!
//! A backlog is a batch or more of messages read without catching up (a poll that waited
//! and got nothing), or unflushed when a stage catches up (a lull cut the backlog in two).
//! Traffic that pauses at least every batch is live; traffic that never pauses counts as
//! a backlog.

use std::time::Duration;

/// How long after its last flush a stage may flush again because it read a backlog to its
/// end (rather than at its interval): a fifth of the interval, at most 200 ms. It bounds
/// the commits a stage fetching in bursts makes, however long its interval.
pub fn backlog_flush_spacing(flush_interval: Duration) -> Duration {
    (flush_interval / 5).min(Duration::from_millis(200))
}

/// A stage's backlog, told what the stage reads, when it catches up and when it flushes.
#[derive(Debug, Clone)]
pub struct BacklogWatch {
    /// Messages that make a backlog.
    batch: u64,
    spacing: Duration,
    read_since_caught_up: u64,
    end_read: bool,
}

impl BacklogWatch {
    /// A watch for a stage reading `batch` messages at most per turn and flushing every
    /// `flush_interval`.
    pub fn new(batch: usize, flush_interval: Duration) -> Self {
        BacklogWatch {
            batch: batch.max(1) as u64,
            spacing: backlog_flush_spacing(flush_interval),
            read_since_caught_up: 0,
            end_read: false,
        }
    }

    /// `messages` more were read.
    #[inline]
    pub fn read(&mut self, messages: usize) {
        self.read_since_caught_up += messages as u64;
    }

    /// A poll waited and nothing came: whatever was fetched is read. `unflushed` is how
    /// many messages the stage read since its last flush.
    pub fn caught_up(&mut self, unflushed: usize) {
        self.end_read |= self.read_since_caught_up >= self.batch || unflushed as u64 >= self.batch;
        self.read_since_caught_up = 0;
    }

    /// Whether a backlog is being read now: a batch or more read since the stage last
    /// caught up.
    #[inline]
    pub fn in_backlog(&self) -> bool {
        self.read_since_caught_up >= self.batch
    }

    /// Whether a backlog's end waits to be flushed, `since_flush` after the last flush.
    #[inline]
    pub fn end_due(&self, since_flush: Duration) -> bool {
        self.end_read && since_flush >= self.spacing
    }

    /// The stage flushed everything it had read: a backlog's end, if any, is in it.
    pub fn flushed(&mut self) {
        self.end_read = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BATCH: usize = 8192;
    const INTERVAL: Duration = Duration::from_secs(1);
    const SPACING: Duration = Duration::from_millis(200);

    #[test]
    fn a_backlog_flush_waits_a_fifth_of_the_interval_and_never_more_than_200_ms() {
        let ms = Duration::from_millis;
        assert_eq!(backlog_flush_spacing(ms(250)), ms(50));
        assert_eq!(backlog_flush_spacing(ms(1000)), ms(200));
        assert_eq!(backlog_flush_spacing(Duration::from_secs(3600)), ms(200));
    }

    #[test]
    fn a_backlog_read_to_its_end_is_flushed_once_the_spacing_is_gone_however_little_is_left() {
        let mut watch = BacklogWatch::new(BATCH, INTERVAL);
        watch.read(BATCH);
        assert!(watch.in_backlog());
        watch.read(BATCH);
        // A size flush took most of it; 100 messages came after.
        watch.flushed();
        watch.read(100);
        assert!(!watch.end_due(SPACING), "the end is not read yet");
        watch.caught_up(100);
        assert!(
            !watch.in_backlog(),
            "caught up: no backlog being read any more"
        );
        assert!(!watch.end_due(SPACING / 2), "not sooner than the spacing");
        assert!(watch.end_due(SPACING));
        watch.flushed();
        assert!(!watch.end_due(INTERVAL), "its end is in the flush");
    }

    #[test]
    fn live_traffic_and_a_trickle_wait_for_the_interval() {
        // A quarter of a batch between lulls, and the size flush a stage makes at a batch.
        let mut watch = BacklogWatch::new(BATCH, INTERVAL);
        let mut unflushed = 0;
        for _ in 0..100 {
            watch.read(BATCH / 4);
            unflushed += BATCH / 4;
            assert!(!watch.in_backlog());
            if unflushed >= BATCH {
                unflushed = 0;
                watch.flushed();
            }
            watch.caught_up(unflushed);
            assert!(!watch.end_due(INTERVAL));
        }
    }

    #[test]
    fn a_backlog_cut_by_a_lull_still_has_its_end_flushed_at_once() {
        let mut watch = BacklogWatch::new(BATCH, INTERVAL);
        watch.read(5000);
        watch.caught_up(5000);
        assert!(!watch.end_due(SPACING), "5 000 read: not a backlog yet");
        watch.read(5000);
        watch.caught_up(10_000);
        assert!(watch.end_due(SPACING), "10 000 unflushed when it caught up");
    }

    #[test]
    fn traffic_that_never_pauses_is_a_backlog() {
        let mut watch = BacklogWatch::new(BATCH, INTERVAL);
        for _ in 0..10 {
            watch.read(BATCH / 2);
            watch.flushed();
        }
        assert!(watch.in_backlog());
        assert!(!watch.end_due(INTERVAL), "never caught up: no end read");
    }
}
