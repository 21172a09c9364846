//! What a window accumulates.

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::LazyLock;

/// A window accumulator.
pub trait Aggregate: Default + Clone {
    type Input: ?Sized;
    type Output: Clone + PartialEq + std::fmt::Debug;
    fn add(&mut self, input: &Self::Input);
    fn output(&self) -> Self::Output;
}

/// A sum of counts (visitors at a site, readings).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Sum(pub i64);

impl Aggregate for Sum {
    type Input = i64;
    type Output = i64;
    fn add(&mut self, input: &i64) {
        self.0 += input;
    }
    fn output(&self) -> i64 {
        self.0
    }
}

/// The process's hashing key for pseudonymous tokens (random per process: the hashes mean
/// nothing outside memory, and are never written anywhere).
static TOKEN_HASHER: LazyLock<RandomState> = LazyLock::new(RandomState::new);

/// A token's keyed hash: the only form in which the stage keeps device tokens.
pub fn token_key(token: &str) -> u64 {
    TOKEN_HASHER.hash_one(token)
}

/// Distinct device tokens (footfall). Keeps 64-bit keyed hashes of the tokens, not the
/// tokens: at the valley's sizes (thousands per window) a collision has a probability
/// below 10⁻¹⁰, so the count is exact in practice, with a fixed 8 bytes per person.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DistinctCount(HashSet<u64, BuildHasherDefault<PreHashed>>);

/// The hasher of sets of keyed hashes: they are uniformly spread already, so the set uses
/// them as they are instead of hashing them a second time.
#[derive(Debug, Default, Clone, Copy)]
pub struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    /// Anything else than a `u64` (never, for these sets) is folded in FNV-1a style.
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl Aggregate for DistinctCount {
    /// The token's keyed hash ([`token_key`], `vallee_token_key` in DataFusion plans).
    type Input = u64;
    type Output = i64;
    fn add(&mut self, token: &u64) {
        self.0.insert(*token);
    }
    fn output(&self) -> i64 {
        self.0.len() as i64
    }
}

/// Distinct devices, approximately, in constant memory: a HyperLogLog sketch of the keyed
/// token hashes (Flajolet et al. 2007, with the small-range correction). With the default
/// precision of 12 bits (4 096 one-byte registers, 4 KiB per zone and window whatever the
/// crowd) the standard error is 1.04 / √4096 ≈ 1.6 %. For zones configured as large
/// (`[stream] sketch_zones`); the others are counted exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct SketchCount {
    registers: Vec<u8>,
}

/// Bits of the hash that pick a register.
pub const SKETCH_PRECISION: u32 = 12;

impl Default for SketchCount {
    fn default() -> Self {
        SketchCount {
            registers: vec![0; 1 << SKETCH_PRECISION],
        }
    }
}

impl Aggregate for SketchCount {
    type Input = u64;
    type Output = i64;
    fn add(&mut self, hash: &u64) {
        let p = SKETCH_PRECISION;
        let index = (hash >> (64 - p)) as usize;
        // The rank of the first 1 bit in the remaining bits (a sentinel bounds it).
        let rest = (hash << p) | (1 << (p - 1));
        let rank = rest.leading_zeros() as u8 + 1;
        if self.registers[index] < rank {
            self.registers[index] = rank;
        }
    }
    fn output(&self) -> i64 {
        let m = self.registers.len() as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self
            .registers
            .iter()
            .map(|r| 2f64.powi(-i32::from(*r)))
            .sum();
        let estimate = alpha * m * m / sum;
        let zeros = self.registers.iter().filter(|r| **r == 0).count();
        let corrected = if estimate <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            estimate
        };
        corrected.round() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_counts_count_each_token_once() {
        let mut d = DistinctCount::default();
        for t in ["a1", "b2", "a1", "c3", "b2"] {
            d.add(&token_key(t));
        }
        assert_eq!(d.output(), 3);
        let mut s = Sum::default();
        s.add(&4);
        s.add(&3);
        assert_eq!(s.output(), 7);
    }

    #[test]
    fn the_sketch_is_exact_for_a_few_devices_and_close_for_a_crowd() {
        let mut small = SketchCount::default();
        for i in 0..40 {
            small.add(&token_key(&format!("{i:032x}")));
            small.add(&token_key(&format!("{i:032x}")));
        }
        // Linear counting: off only when two devices share a register (rare at 40 of 4 096).
        assert!((small.output() - 40).abs() <= 2, "{}", small.output());
        for n in [5_000u32, 100_000] {
            let mut sketch = SketchCount::default();
            let mut exact = DistinctCount::default();
            for i in 0..n {
                let h = token_key(&format!("{i:032x}"));
                sketch.add(&h);
                exact.add(&h);
            }
            let error = (sketch.output() - exact.output()).abs() as f64 / n as f64;
            assert!(
                error < 0.06,
                "{n} devices: {} estimated ({error:.3})",
                sketch.output()
            );
        }
    }
}
