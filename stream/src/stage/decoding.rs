//! Decoding polled messages on the other cores while the stage's thread processes.
//!
//! Decoding (JSON and the contract's checks) is a pure function of each message and
//! about half the stage's work per event; the rest (watermarks, windows, rules) must see
//! the events in order, on one thread. So under load the stage works as a two-step
//! pipeline ([`Pipeline`]): while the messages polled last time are processed, in order,
//! the ones just polled are decoded on the other cores. A chunk too small to repay
//! starting a thread (a quiet stream: one message at a time) is decoded and processed at
//! once, after whatever was waiting, so the latency of a lone reading is unchanged.

use vallee_schemas::contract::Stream;
use vallee_schemas::decode::{DecodeOptions, Decoded, Rejection, decode};

/// Below this many messages a chunk is decoded on the calling thread alone.
pub const PARALLEL_FROM: usize = 256;

/// One message to decode.
#[derive(Debug, Clone, Copy)]
pub struct Encoded<'a> {
    pub stream: Stream,
    pub payload: Option<&'a [u8]>,
    pub timestamp_ms: Option<i64>,
}

/// The threads a chunk is decoded on: the cores, at most 4.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Decodes `messages` on `threads` threads (the caller's included); the results are in
/// the messages' order.
pub fn decode_chunk(
    messages: &[Encoded<'_>],
    options: &DecodeOptions,
    threads: usize,
) -> Vec<Result<Decoded, Rejection>> {
    let one = |m: &Encoded<'_>| decode(m.stream, m.payload, m.timestamp_ms, options);
    if threads <= 1 || messages.len() < PARALLEL_FROM {
        return messages.iter().map(one).collect();
    }
    let one = &one;
    std::thread::scope(|scope| {
        let mut slices = messages.chunks(messages.len().div_ceil(threads));
        let mine = slices.next().unwrap_or_default();
        let others: Vec<_> = slices
            .map(|slice| scope.spawn(move || slice.iter().map(one).collect::<Vec<_>>()))
            .collect();
        let mut out: Vec<_> = mine.iter().map(one).collect();
        for other in others {
            // Decoding does not panic; if it ever did, the stage stops as it would inline.
            out.extend(
                other
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            );
        }
        out
    })
}

/// Decoded messages waiting for their turn, with what the caller needs to process each
/// (`M`: where it was read).
#[derive(Debug)]
pub struct Pipeline<M> {
    ready: Vec<(M, Result<Decoded, Rejection>)>,
    options: DecodeOptions,
    threads: usize,
}

impl<M: Send> Pipeline<M> {
    pub fn new(options: DecodeOptions, threads: usize) -> Self {
        Pipeline {
            ready: Vec::new(),
            options,
            threads,
        }
    }

    /// Takes the chunk just polled (`metas[i]` describes `encoded[i]`). A large one is
    /// decoded on the other cores while `process` handles the chunk before it, and then
    /// waits for the next call (or [`Pipeline::flush`]); a small one is decoded and
    /// processed at once, after what was waiting.
    pub fn feed<E>(
        &mut self,
        metas: Vec<M>,
        encoded: &[Encoded<'_>],
        mut process: impl FnMut(M, Result<Decoded, Rejection>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.threads <= 1 || encoded.len() < PARALLEL_FROM {
            self.flush(&mut process)?;
            let decoded = decode_chunk(encoded, &self.options, 1);
            return metas
                .into_iter()
                .zip(decoded)
                .try_for_each(|(m, d)| process(m, d));
        }
        let previous = std::mem::take(&mut self.ready);
        let (options, helpers) = (&self.options, self.threads - 1);
        let (decoded, processed) = std::thread::scope(|scope| {
            let decoding = scope.spawn(move || decode_chunk(encoded, options, helpers));
            let processed = previous.into_iter().try_for_each(|(m, d)| process(m, d));
            let decoded = decoding
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            (decoded, processed)
        });
        processed?;
        self.ready = metas.into_iter().zip(decoded).collect();
        Ok(())
    }

    /// Processes what waits (before windows advance, a commit, or when polling is idle).
    pub fn flush<E>(
        &mut self,
        mut process: impl FnMut(M, Result<Decoded, Rejection>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.ready.drain(..).try_for_each(|(m, d)| process(m, d))
    }

    /// Drops the decoded messages waiting (their partitions were revoked: the member that
    /// takes them over reads them again).
    pub fn discard(&mut self) {
        self.ready.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.ready.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages of the beacons stream with these payloads.
    fn beacons(payloads: &[String]) -> Vec<Encoded<'_>> {
        payloads
            .iter()
            .map(|p| Encoded {
                stream: Stream::Beacons,
                payload: Some(p.as_bytes()),
                timestamp_ms: None,
            })
            .collect()
    }

    #[test]
    fn the_pipeline_processes_every_message_once_in_order() {
        let payload = |i: usize| {
            format!(
                r#"{{"id":"s{i}","type":"BeaconSighting","dateObserved":"2026-11-28T12:00:00Z","zone":"z","deviceToken":"{i:032x}","saltEpoch":"2026-11-28","rssi":-70}}"#
            )
        };
        let mut pipeline = Pipeline::new(DecodeOptions::default(), 2);
        let mut seen = Vec::new();
        let mut record = |i: usize, d: Result<Decoded, Rejection>| {
            let Ok(Decoded::Beacon(b)) = d else {
                return Err(format!("{i}: {d:?}"));
            };
            assert_eq!(b.record.observation.id, format!("s{i}"));
            seen.push(i);
            Ok(())
        };
        // Large chunks wait for the next call; a small one drains them first.
        let mut next = 0;
        for size in [1000, 700, 3, 900] {
            let payloads: Vec<String> = (next..next + size).map(payload).collect();
            let encoded = beacons(&payloads);
            pipeline
                .feed((next..next + size).collect(), &encoded, &mut record)
                .unwrap();
            next += size;
        }
        assert!(!pipeline.is_empty(), "the last large chunk waits");
        pipeline.flush(&mut record).unwrap();
        assert_eq!(seen, (0..next).collect::<Vec<_>>());
    }

    #[test]
    fn a_chunk_decoded_on_several_threads_keeps_its_order_and_its_errors() {
        let payloads: Vec<String> = (0..1000)
            .map(|i| {
                if i % 97 == 0 {
                    "not json".to_string()
                } else {
                    format!(
                        r#"{{"id":"s{i}","type":"BeaconSighting","dateObserved":"2026-11-28T12:00:00Z","zone":"z{i}","deviceToken":"{i:032x}","saltEpoch":"2026-11-28","rssi":-70}}"#
                    )
                }
            })
            .collect();
        let messages = beacons(&payloads);
        let options = DecodeOptions::default();
        let alone = decode_chunk(&messages, &options, 1);
        let parallel = decode_chunk(&messages, &options, 3);
        assert_eq!(parallel, alone);
        assert_eq!(parallel.len(), 1000);
        assert!(parallel[97].is_err() && parallel[98].is_ok());
        let Ok(Decoded::Beacon(b)) = &parallel[500] else {
            panic!("{:?}", parallel[500]);
        };
        assert_eq!(b.record.zone, "z500");
    }
}
