//! Snowflake ids for `_seq`: 41 bits of milliseconds since [`EPOCH_MS`],
//! 10 bits of node id, 12 bits of sequence. Strictly increasing per generator
//! even when the wall clock steps back: time never runs backwards inside it.

use std::sync::atomic::{AtomicU64, Ordering};

/// 2024-01-01T00:00:00Z.
pub const EPOCH_MS: u64 = 1_704_067_200_000;
const NODE_BITS: u64 = 10;
const SEQ_BITS: u64 = 12;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
const NODE_MASK: u64 = (1 << NODE_BITS) - 1;

pub struct SnowflakeGenerator {
    node_id: u64,
    last: AtomicU64,
    clock: fn() -> u64,
}

fn wall_clock_ms() -> u64 {
    crate::time::now_ms() as u64
}

impl SnowflakeGenerator {
    pub fn new(node_id: u16) -> Self {
        Self::with_clock(node_id, wall_clock_ms)
    }

    /// A generator reading time from `clock` (epoch milliseconds); for tests.
    pub fn with_clock(node_id: u16, clock: fn() -> u64) -> Self {
        Self {
            node_id: u64::from(node_id) & NODE_MASK,
            last: AtomicU64::new(0),
            clock,
        }
    }

    /// Makes sure every later id is greater than `seen` (e.g. the largest id
    /// found in storage at start-up, in case the clock went back across a
    /// restart).
    pub fn observe(&self, seen: i64) {
        self.last.fetch_max(seen.max(0) as u64, Ordering::AcqRel);
    }

    pub fn next_id(&self) -> i64 {
        let now = (self.clock)().saturating_sub(EPOCH_MS);
        let mut last = self.last.load(Ordering::Acquire);
        loop {
            let last_ms = last >> (NODE_BITS + SEQ_BITS);
            let last_seq = last & SEQ_MASK;
            let (ms, seq) = if now > last_ms {
                (now, 0)
            } else if last_seq < SEQ_MASK {
                (last_ms, last_seq + 1)
            } else {
                (last_ms + 1, 0)
            };
            let id = (ms << (NODE_BITS + SEQ_BITS)) | (self.node_id << SEQ_BITS) | seq;
            match self
                .last
                .compare_exchange_weak(last, id, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return id as i64,
                Err(actual) => last = actual,
            }
        }
    }
}

/// Milliseconds since the Unix epoch encoded in a snowflake id.
pub fn timestamp_ms(id: i64) -> u64 {
    ((id as u64) >> (NODE_BITS + SEQ_BITS)) + EPOCH_MS
}

/// The lowest snowflake id of millisecond `ms` (epoch milliseconds): every
/// id made before it is lower.
pub fn first_id_at(ms: u64) -> i64 {
    (ms.saturating_sub(EPOCH_MS) << (NODE_BITS + SEQ_BITS)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    #[test]
    fn ids_are_unique_and_increasing_across_threads() {
        let generator = Arc::new(SnowflakeGenerator::new(7));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let g = Arc::clone(&generator);
                std::thread::spawn(move || {
                    let ids: Vec<i64> = (0..20_000).map(|_| g.next_id()).collect();
                    assert!(
                        ids.windows(2).all(|w| w[0] < w[1]),
                        "not increasing within a thread"
                    );
                    ids
                })
            })
            .collect();
        let mut all = HashSet::new();
        for h in handles {
            for id in h.join().unwrap() {
                assert!(all.insert(id), "duplicate id {id}");
            }
        }
        assert_eq!(all.len(), 80_000);
    }

    #[test]
    fn a_clock_stepping_back_never_makes_ids_go_back() {
        fn frozen() -> u64 {
            EPOCH_MS + 1_000
        }
        let g = SnowflakeGenerator::with_clock(1, frozen);
        g.observe(((5_000u64) << 22) as i64); // an id from "the future"
        let a = g.next_id();
        let b = g.next_id();
        assert!(a > ((5_000u64) << 22) as i64);
        assert!(b > a);
        // sequence overflow carries into the time part, not the node bits
        let ids: Vec<i64> = (0..10_000).map(|_| g.next_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.iter().all(|id| ((*id as u64 >> 12) & 0x3FF) == 1));
    }

    #[test]
    fn timestamp_is_recoverable() {
        let g = SnowflakeGenerator::new(0);
        let before = wall_clock_ms();
        let id = g.next_id();
        let ts = timestamp_ms(id);
        assert!(ts >= before && ts <= wall_clock_ms() + 1);
    }
}
