//! Domain rules of the stream stage, as plain state machines fed in event time.

pub mod vine;
