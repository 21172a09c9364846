//! Decoding shared between a stage's thread and helpers: a chunk of polled messages is
//! cut into slices; helper threads decode slices in turn, and the stage's thread handles
//! the slices in order (ingest checks offsets and buffers rows, the stream stage advances
//! its windows), decoding the next unclaimed slice itself whenever the one it needs is not
//! ready yet.
//!
//! Decoding (JSON, the contract's checks, signatures) is a pure function of each message
//! and about half of a stage's work per message; the rest must see the messages in order,
//! on one thread. With one helper beside a thread that only waited for it, decoding was
//! the critical path and ingest's thread sat idle a third of the time (`perf sched`); a
//! pipeline that decoded one chunk while the chunk before was handled left both threads
//! idle whenever one side of a chunk took longer than the other. Here neither waits while
//! a slice is left to decode.
//! A chunk too small to repay a thread (a quiet topic: one message at a time) is decoded
//! inline, so a lone reading waits for nothing.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

/// Below this many messages a chunk is decoded on the calling thread.
pub const BESIDE_FROM: usize = 256;

/// Messages decoded as one unit of work.
const SLICE: usize = 256;

/// Helper threads at most, beside the calling thread.
const HELPERS_MAX: usize = 3;

/// The helpers a chunk is decoded with: the other cores, at most [`HELPERS_MAX`].
pub fn helpers() -> usize {
    std::thread::available_parallelism().map_or(0, |n| (n.get() - 1).min(HELPERS_MAX))
}

/// Slices of one chunk, decoded by whoever claims them first.
struct Shared<'a, T, D> {
    slices: Vec<&'a [T]>,
    decoded: Vec<Mutex<Option<Vec<D>>>>,
    /// The next slice nobody has claimed.
    next: AtomicUsize,
    /// The calling thread stopped at an error: nothing more to decode.
    stop: AtomicBool,
    /// Signalled when a helper has put a slice in `decoded`.
    ready: Condvar,
    ready_lock: Mutex<()>,
}

impl<T, D> Shared<'_, T, D> {
    /// Claims and decodes the next slice; false when none is left.
    fn decode_next(&self, decode: &impl Fn(&T) -> D) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let Some(slice) = self.slices.get(i) else {
            return false;
        };
        let out: Vec<D> = slice.iter().map(decode).collect();
        *lock(&self.decoded[i]) = Some(out);
        // Under the lock the waiter checks its slice with: the wake-up cannot be missed.
        let _guard = lock(&self.ready_lock);
        self.ready.notify_all();
        true
    }

    /// Slice `i`, decoded: taken when ready, else decoded here (or another unclaimed
    /// slice is, while a helper finishes this one).
    fn take(&self, i: usize, decode: &impl Fn(&T) -> D) -> Vec<D> {
        loop {
            if let Some(out) = lock(&self.decoded[i]).take() {
                return out;
            }
            if self.decode_next(decode) {
                continue;
            }
            // Every slice is claimed and this one is not done: a helper is on it.
            let guard = lock(&self.ready_lock);
            if let Some(out) = lock(&self.decoded[i]).take() {
                return out;
            }
            drop(
                self.ready
                    .wait(guard)
                    .unwrap_or_else(PoisonError::into_inner),
            );
        }
    }
}

fn lock<X>(m: &Mutex<X>) -> std::sync::MutexGuard<'_, X> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Calls `decode` on every item, on up to `helpers` helper threads and the calling
/// thread when there are enough items, and `handle` on each result in the items' order on
/// the calling thread. Stops at `handle`'s first error (the helpers then stop too).
pub fn decode_beside<T: Sync, D: Send, E>(
    items: &[T],
    helpers: usize,
    decode: impl Fn(&T) -> D + Sync,
    mut handle: impl FnMut(usize, D) -> Result<(), E>,
) -> Result<(), E> {
    if items.len() < BESIDE_FROM || helpers == 0 {
        return items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| handle(i, decode(item)));
    }
    let slices: Vec<&[T]> = items.chunks(SLICE).collect();
    let shared = Shared {
        decoded: slices.iter().map(|_| Mutex::new(None)).collect(),
        slices,
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        ready: Condvar::new(),
        ready_lock: Mutex::new(()),
    };
    let helpers = helpers.min(shared.slices.len() - 1);
    std::thread::scope(|scope| {
        let (shared, decode) = (&shared, &decode);
        for _ in 0..helpers {
            scope.spawn(move || while shared.decode_next(decode) {});
        }
        let mut i = 0;
        let handled = (0..shared.slices.len()).try_for_each(|s| {
            for d in shared.take(s, decode) {
                handle(i, d)?;
                i += 1;
            }
            Ok(())
        });
        if handled.is_err() {
            shared.stop.store(true, Ordering::Relaxed);
        }
        handled
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_handled_once_in_order_whatever_the_chunk_and_helpers() {
        for helpers in [0, 1, 3] {
            for n in [
                0,
                1,
                BESIDE_FROM - 1,
                BESIDE_FROM,
                1000,
                5 * SLICE + 3,
                20_000,
            ] {
                let items: Vec<u64> = (0..n as u64).collect();
                let mut seen = Vec::new();
                decode_beside(
                    &items,
                    helpers,
                    |x| x * 3,
                    |i, d| {
                        seen.push((i, d));
                        Ok::<_, ()>(())
                    },
                )
                .unwrap();
                let want: Vec<(usize, u64)> = (0..n).map(|i| (i, i as u64 * 3)).collect();
                assert_eq!(seen, want, "{n} items, {helpers} helpers");
            }
        }
    }

    #[test]
    fn slow_handling_and_slow_decoding_both_keep_the_order() {
        // The calling thread slower than the helpers, then the helpers slower than it: the
        // slices are decoded by whoever is free, and handled in order either way.
        let items: Vec<u64> = (0..4 * SLICE as u64).collect();
        for (decode_spin, handle_spin) in [(0, 2_000), (2_000, 0)] {
            let mut seen = Vec::new();
            decode_beside(
                &items,
                2,
                |x| {
                    std::hint::black_box((0..decode_spin).sum::<u64>());
                    *x
                },
                |i, d| {
                    std::hint::black_box((0..handle_spin).sum::<u64>());
                    seen.push((i, d));
                    Ok::<_, ()>(())
                },
            )
            .unwrap();
            assert_eq!(
                seen,
                (0..items.len()).map(|i| (i, i as u64)).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn an_error_stops_the_chunk_where_it_happened() {
        let items: Vec<u64> = (0..10_000).collect();
        let mut handled = 0;
        let result = decode_beside(
            &items,
            1,
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
