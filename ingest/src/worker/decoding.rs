//! Decoding beside buffering: a chunk of polled messages is decoded on a helper thread, a
//! slice at a time, while the ingest thread checks offsets and buffers the slices already
//! decoded, in order.
//!
//! Decoding (JSON, the contract's checks, signatures) is a pure function of each message
//! and was two fifths of the ingest thread; the rest (offsets, buffers, commits) must see
//! the messages in order, on one thread. A chunk too small to repay a thread (a quiet
//! topic: one message at a time) is decoded inline, so a lone reading waits for nothing.

use std::sync::mpsc;

/// Below this many messages a chunk is decoded on the calling thread.
pub const BESIDE_FROM: usize = 256;

/// Messages handed over from the helper at a time.
const SLICE: usize = 256;

/// Slices decoded ahead of the ingest thread at most (the helper waits beyond).
const AHEAD: usize = 4;

/// Calls `decode` on every item, on a helper thread when there are enough of them and
/// more than one core, and `handle` on each result in the items' order on the calling
/// thread. Stops at `handle`'s first error (the helper then stops too).
pub fn decode_beside<T: Sync, D: Send, E>(
    items: &[T],
    decode: impl Fn(&T) -> D + Sync,
    mut handle: impl FnMut(usize, D) -> Result<(), E>,
) -> Result<(), E> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if items.len() < BESIDE_FROM || cores < 2 {
        return items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| handle(i, decode(item)));
    }
    std::thread::scope(|scope| {
        let (slices, decoded) = mpsc::sync_channel::<Vec<D>>(AHEAD);
        let decode = &decode;
        scope.spawn(move || {
            for slice in items.chunks(SLICE) {
                // The ingest thread stopped at an error: nothing more to decode.
                if slices.send(slice.iter().map(decode).collect()).is_err() {
                    return;
                }
            }
        });
        let mut i = 0;
        for slice in decoded {
            for d in slice {
                handle(i, d)?;
                i += 1;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_handled_once_in_order_whatever_the_chunk() {
        for n in [0, 1, BESIDE_FROM - 1, BESIDE_FROM, 1000, 5 * SLICE + 3] {
            let items: Vec<u64> = (0..n as u64).collect();
            let mut seen = Vec::new();
            decode_beside(
                &items,
                |x| x * 3,
                |i, d| {
                    seen.push((i, d));
                    Ok::<_, ()>(())
                },
            )
            .unwrap();
            let want: Vec<(usize, u64)> = (0..n).map(|i| (i, i as u64 * 3)).collect();
            assert_eq!(seen, want, "{n} items");
        }
    }

    #[test]
    fn an_error_stops_the_chunk_where_it_happened() {
        let items: Vec<u64> = (0..10_000).collect();
        let mut handled = 0;
        let result = decode_beside(
            &items,
            |x| *x,
            |_, d| {
                if d == 777 {
                    return Err(format!("refused {d}"));
                }
                handled += 1;
                Ok(())
            },
        );
        assert_eq!(result, Err("refused 777".to_string()));
        assert_eq!(handled, 777, "the items before it, not one after");
    }
}
