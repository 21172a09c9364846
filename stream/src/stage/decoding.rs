//! Decoding polled messages on the other cores while the stage's thread processes them.
//!
//! Decoding (JSON and the contract's checks) is a pure function of each message and
//! about half the stage's work per event; the rest (watermarks, windows, rules) must see
//! the events in order, on one thread. So a chunk is decoded in slices by helper threads
//! and by the stage's thread itself, which processes each slice, in order, as soon as it
//! is decoded ([`vallee_kafka::decoding::decode_beside`], the same as ingest's). A chunk
//! too small to repay a thread (a quiet stream: one message at a time) is decoded and
//! processed at once, so the latency of a lone reading is unchanged.

use vallee_schemas::contract::Stream;
use vallee_schemas::decode::{DecodeOptions, Decoded, Rejection, decode};

/// One message to decode.
#[derive(Debug, Clone, Copy)]
pub struct Encoded<'a> {
    pub stream: Stream,
    pub payload: Option<&'a [u8]>,
    pub timestamp_ms: Option<i64>,
}

/// Decodes `encoded` on `helpers` helper threads and the calling thread, and calls
/// `process` on each message, in order, with what describes it (`metas[i]` for
/// `encoded[i]`). Stops at `process`'s first error.
pub fn decode_and_process<M: Copy, E>(
    metas: &[M],
    encoded: &[Encoded<'_>],
    options: &DecodeOptions,
    helpers: usize,
    mut process: impl FnMut(M, Result<Decoded, Rejection>) -> Result<(), E>,
) -> Result<(), E> {
    vallee_kafka::decoding::decode_beside(
        encoded,
        helpers,
        |m| decode(m.stream, m.payload, m.timestamp_ms, options),
        |i, decoded| process(metas[i], decoded),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_processed_in_order_with_its_errors_whatever_the_helpers() {
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
        let encoded: Vec<Encoded<'_>> = payloads
            .iter()
            .map(|p| Encoded {
                stream: Stream::Beacons,
                payload: Some(p.as_bytes()),
                timestamp_ms: None,
            })
            .collect();
        let metas: Vec<usize> = (0..encoded.len()).collect();
        for helpers in [0, 1, 3] {
            let mut seen = Vec::new();
            decode_and_process(
                &metas,
                &encoded,
                &DecodeOptions::default(),
                helpers,
                |i, decoded| {
                    match decoded {
                        Ok(Decoded::Beacon(b)) => {
                            assert_eq!(b.record.zone, format!("z{i}"), "{helpers} helpers")
                        }
                        Ok(other) => panic!("{i}: {other:?}"),
                        Err(_) => assert_eq!(i % 97, 0, "{i}: refused"),
                    }
                    seen.push(i);
                    Ok::<_, ()>(())
                },
            )
            .unwrap();
            assert_eq!(
                seen, metas,
                "{helpers} helpers: every message once, in order"
            );
        }
    }
}
