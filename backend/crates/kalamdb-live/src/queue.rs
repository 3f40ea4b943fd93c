//! A connection's delivery queue: what its subscriptions' changes wait in
//! until the connection's task writes them out. Unbounded by itself (each
//! subscription bounds what it may hold in it, see `Subscription::offer`)
//! and empty-cheap: an idle connection's queue holds no buffer (tokio's
//! unbounded channel allocates 32 slots up front, ~1.3 KiB per connection).

use crate::manager::Delivery;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// Capacity an emptied queue keeps; a burst's larger buffer is given back.
const KEPT_CAPACITY: usize = 64;

/// The queue, shared by the subscriptions that push and the one receiver.
#[derive(Debug, Default)]
pub struct DeliveryQueue {
    items: Mutex<VecDeque<(u64, Delivery)>>,
    ready: Notify,
    /// Set when the receiver is gone: pushes are refused.
    closed: AtomicBool,
}

/// Where a subscription's deliveries go, tagged with the subscription's
/// number there: one queue per connection, shared by its subscriptions.
pub type Outlet = Arc<DeliveryQueue>;

impl DeliveryQueue {
    /// A queue and its receiving end.
    pub fn open() -> (Outlet, Deliveries) {
        let queue = Arc::new(Self::default());
        (Arc::clone(&queue), Deliveries(queue))
    }

    /// Queues `item`; `false` when the receiver is gone.
    pub fn push(&self, tag: u64, item: Delivery) -> bool {
        {
            let mut items = self.items();
            if self.closed.load(Ordering::Acquire) {
                return false;
            }
            items.push_back((tag, item));
        }
        self.ready.notify_one();
        true
    }

    fn items(&self) -> MutexGuard<'_, VecDeque<(u64, Delivery)>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The receiving end of a [`DeliveryQueue`]; dropping it closes the queue
/// (and frees what was still in it).
#[derive(Debug)]
pub struct Deliveries(Arc<DeliveryQueue>);

impl Deliveries {
    /// The next delivery, waiting for one. Cancel-safe: a wait abandoned
    /// (in a `select!`) loses nothing.
    pub async fn recv(&mut self) -> (u64, Delivery) {
        loop {
            if let Some(item) = self.try_recv() {
                return item;
            }
            self.0.ready.notified().await;
        }
    }

    /// The next delivery already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<(u64, Delivery)> {
        let mut items = self.0.items();
        let item = items.pop_front();
        if items.is_empty() && items.capacity() > KEPT_CAPACITY {
            items.shrink_to(KEPT_CAPACITY);
        }
        item
    }
}

impl Drop for Deliveries {
    fn drop(&mut self) {
        let mut items = self.0.items();
        self.0.closed.store(true, Ordering::Release);
        items.clear();
    }
}
