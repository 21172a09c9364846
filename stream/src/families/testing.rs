//! Test scaffolding shared by the families' tests: a family driven as the dispatcher
//! drives it (the stage's watermarks, a frozen processing clock), and a runtime for the
//! per-batch plans.

use std::time::Instant;

use vallee_schemas::contract::Stream;
use vallee_schemas::decode::{DecodeOptions, Decoded, decode};

use super::{Family, Read, StageWatermarks};
use crate::stage::StreamOptions;

/// A runtime for the per-batch plans (the test thread blocks on it).
pub fn plans_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap()
}

/// An event of `stream` decoded from its JSON payload.
pub fn decoded(stream: Stream, payload: &str) -> Decoded {
    decode(
        stream,
        Some(payload.as_bytes()),
        None,
        &DecodeOptions::default(),
    )
    .unwrap()
}

/// One family with the stage's watermarks, all at one processing instant.
pub struct Harness<F> {
    pub family: F,
    watermarks: StageWatermarks,
    now: Instant,
}

impl<F: Family> Harness<F> {
    pub fn new(options: &StreamOptions, family: F) -> Self {
        Harness {
            family,
            watermarks: StageWatermarks::new(options),
            now: Instant::now(),
        }
    }

    /// One event read at `topic[partition]@offset`.
    pub fn event(
        &mut self,
        stream: Stream,
        topic: &str,
        partition: i32,
        offset: i64,
        event: &Decoded,
    ) {
        let time = event.event_time();
        self.watermarks.observe(stream, partition, time, self.now);
        let read = Read {
            stream,
            topic,
            partition,
            offset,
            time,
        };
        let _ = self.family.on_event(event, read).unwrap();
    }

    /// Event time moves on to the watermarks.
    pub fn tick(&mut self) {
        let clock = self.watermarks.clock(self.now);
        self.family.advance(&clock).unwrap();
    }
}
