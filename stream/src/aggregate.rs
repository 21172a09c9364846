//! What a window accumulates.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
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
pub struct DistinctCount(HashSet<u64>);

impl Aggregate for DistinctCount {
    type Input = str;
    type Output = i64;
    fn add(&mut self, token: &str) {
        self.0.insert(token_key(token));
    }
    fn output(&self) -> i64 {
        self.0.len() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_counts_count_each_token_once() {
        let mut d = DistinctCount::default();
        for t in ["a1", "b2", "a1", "c3", "b2"] {
            d.add(t);
        }
        assert_eq!(d.output(), 3);
        let mut s = Sum::default();
        s.add(&4);
        s.add(&3);
        assert_eq!(s.output(), 7);
    }
}
