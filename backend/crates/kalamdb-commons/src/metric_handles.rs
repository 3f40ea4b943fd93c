//! Metric handles for the per-request paths, registered once per thread
//! and label set: `metrics::counter!` looks its series up in the recorder
//! on every call (building the key, hashing names and labels), which costs
//! a request a few percent when it runs five times per request. Label
//! values must be `&'static str` (each literal is its own cache entry).
//! Events that are not per request use the `metrics` macros directly.

use metrics::{Counter, Histogram, Label};
use std::cell::RefCell;
use std::collections::HashMap;

/// The name and up to three label values, by address.
type Slot = [usize; 4];

thread_local! {
    static COUNTERS: RefCell<HashMap<Slot, Counter>> = RefCell::new(HashMap::new());
    static HISTOGRAMS: RefCell<HashMap<Slot, Histogram>> = RefCell::new(HashMap::new());
}

fn slot(name: &'static str, labels: &[(&'static str, &'static str)]) -> Slot {
    let mut s = [name.as_ptr() as usize, 0, 0, 0];
    for (i, (_, v)) in labels.iter().take(3).enumerate() {
        s[i + 1] = v.as_ptr() as usize ^ (v.len() << 48);
    }
    s
}

fn labels_of(labels: &[(&'static str, &'static str)]) -> Vec<Label> {
    labels
        .iter()
        .map(|(k, v)| Label::from_static_parts(k, v))
        .collect()
}

/// Adds `by` to the counter `name{labels}` (at most three labels).
pub fn count(name: &'static str, labels: &[(&'static str, &'static str)], by: u64) {
    debug_assert!(labels.len() <= 3);
    COUNTERS.with(|c| {
        c.borrow_mut()
            .entry(slot(name, labels))
            .or_insert_with(|| metrics::counter!(name, labels_of(labels)))
            .increment(by)
    });
}

/// Records `value` in the histogram `name{labels}` (at most three labels).
pub fn observe(name: &'static str, labels: &[(&'static str, &'static str)], value: f64) {
    debug_assert!(labels.len() <= 3);
    HISTOGRAMS.with(|h| {
        h.borrow_mut()
            .entry(slot(name, labels))
            .or_insert_with(|| metrics::histogram!(name, labels_of(labels)))
            .record(value)
    });
}

/// An HTTP status as a `&'static str` label (`other` for rare ones).
pub fn status_label(status: u16) -> &'static str {
    match status {
        101 => "101",
        200 => "200",
        201 => "201",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        409 => "409",
        413 => "413",
        422 => "422",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => "other",
    }
}
