//! Moving rows between their three forms: SQL literals, the stored binary
//! encoding, and Arrow batches (and from batches to API JSON).

pub mod arrow_builder;
pub mod coerce;
pub mod defaults;
pub mod from_arrow;
pub mod json;

pub use arrow_builder::{BatchBuilder, OutputColumn, constant_array};
