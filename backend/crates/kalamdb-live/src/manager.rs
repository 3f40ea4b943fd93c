//! The [`LiveQueryManager`]: every active subscription, indexed by the
//! (table, scope) whose changes it can see, and the fan-out of committed
//! changes to them. It is the write funnel's [`ChangeSink`]: called at the
//! commit point, in commit order, it only hands the committed sets to the
//! fan-out thread (when anyone subscribes to their table and scope) and
//! returns, so a writer never waits for subscribers; a small commit that a
//! few subscriptions watch is matched and queued by the writer itself while
//! the thread is idle (a queue push never waits). The thread matches
//! each set once per distinct query of its (table, scope) — a thousand
//! subscribers of one SELECT cost one evaluation — and queues the result to
//! every subscriber of that query: rows are shared, not copied. Each
//! subscription has a bounded queue; one that overflows is told so and
//! ended.
//!
//! A subscription registers at the commit point `P` and is given only
//! changes with a `_seq` above `P` (commits are handed over in order, so
//! a set still on its way to the thread when a subscription registered is
//! skipped for it: its rows are in the subscription's initial read).

use crate::error::LiveError;
use crate::query::{LiveChange, LiveQuery};
use crate::queue::{Deliveries, DeliveryQueue, Outlet};
use kalamdb_commons::{TableId, UserId};
use kalamdb_core::system_tables::live_queries::{LiveQueries, LiveQueryInfo};
use kalamdb_core::table_store::RowScope;
use kalamdb_core::write_set::{ChangeSink, WriteSet};
use kalamdb_core::{AppContext, CoreError, CoreResult, ExecutionContext};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// What a subscription's queue carries to its connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// The changes one statement or one COMMIT made visible to it, in
    /// commit order.
    Changes(Vec<LiveChange>),
    /// The last item: the subscription is over (its queue overflowed, or
    /// its WHERE failed on a change).
    /// (Boxed: a connection's queue holds many deliveries and this one
    /// ends it.)
    Ended(Box<LiveError>),
}

/// Who holds a subscription, and how it was asked for.
#[derive(Debug, Clone)]
pub struct Owner {
    pub user_id: UserId,
    pub username: String,
    pub connection_id: String,
    /// The id the client gave it.
    pub subscription_id: String,
    /// The subscribe options, as JSON.
    pub options: String,
}

impl Owner {
    /// `ctx`'s user, on no particular connection.
    pub fn of(ctx: &ExecutionContext) -> Self {
        Self {
            user_id: ctx.user_id.clone(),
            username: ctx.username.clone(),
            connection_id: String::new(),
            subscription_id: String::new(),
            options: "{}".into(),
        }
    }
}

/// What a subscription and its receiver both count.
#[derive(Debug)]
struct Counters {
    /// Items queued and not yet taken: the bound is checked against it.
    depth: AtomicUsize,
    /// When the connection last took an item (or the subscription began).
    taken_at: AtomicI64,
}

/// One subscription as the manager holds it.
pub struct Subscription {
    pub live_id: String,
    pub query: LiveQuery,
    pub owner: Owner,
    pub created_at: i64,
    queue: Outlet,
    /// Its number in `queue`.
    tag: u64,
    counters: Arc<Counters>,
    capacity: usize,
    ended: AtomicBool,
    pub delivered: AtomicU64,
    pub dropped: AtomicU64,
    /// When a change was last queued (0: never).
    pub last_update: AtomicI64,
    /// The highest `_seq` handed to the queue.
    pub last_seq: AtomicI64,
    /// The commit point it registered at: changes up to it are in its
    /// initial rows, never delivered.
    after_seq: AtomicI64,
}

impl Subscription {
    pub fn queue_depth(&self) -> usize {
        self.counters.depth.load(Ordering::Relaxed)
    }

    /// This subscription as `system.live_queries` shows it.
    pub fn info(&self, now_ms: i64) -> LiveQueryInfo {
        let def = &self.query.table.definition;
        let depth = self.queue_depth();
        let last_update = self.last_update.load(Ordering::Relaxed);
        LiveQueryInfo {
            live_id: self.live_id.clone(),
            connection_id: self.owner.connection_id.clone(),
            subscription_id: self.owner.subscription_id.clone(),
            namespace: def.namespace.to_string(),
            table: def.name.clone(),
            user_id: self.owner.user_id.clone(),
            username: self.owner.username.clone(),
            query: self.query.sql.clone(),
            options: self.owner.options.clone(),
            created_at_ms: self.created_at,
            last_update_ms: (last_update > 0).then_some(last_update),
            changes_delivered: self.delivered.load(Ordering::Relaxed),
            queue_depth: depth as u64,
            dropped: self.dropped.load(Ordering::Relaxed),
            last_seq: self.last_seq.load(Ordering::Relaxed),
            lag_ms: match depth {
                0 => 0,
                _ => (now_ms - self.counters.taken_at.load(Ordering::Relaxed)).max(0),
            },
        }
    }

    /// Queues `item`; `false` once the subscription is over (it was full:
    /// `Ended(OVERFLOW)` is queued as its last item).
    fn offer(&self, changes: Vec<LiveChange>) -> bool {
        if self.ended.load(Ordering::Acquire) {
            return false;
        }
        let last = changes.last().map_or(0, |c| c.seq);
        if self.counters.depth.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.dropped
                .fetch_add(changes.len() as u64, Ordering::Relaxed);
            self.end(LiveError::new(
                "OVERFLOW",
                format!(
                    "The client did not keep up: more than {} undelivered change messages. \
                     Resubscribe with from = {} to resume",
                    self.capacity,
                    self.last_seq.load(Ordering::Acquire)
                ),
            ));
            return false;
        }
        self.delivered
            .fetch_add(changes.len() as u64, Ordering::Relaxed);
        self.last_seq.fetch_max(last, Ordering::AcqRel);
        self.queue.push(self.tag, Delivery::Changes(changes))
    }

    fn end(&self, error: LiveError) {
        if !self.ended.swap(true, Ordering::AcqRel) {
            self.queue.push(self.tag, Delivery::Ended(Box::new(error)));
        }
    }

    /// Its number in the queue it delivers to.
    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// The connection took one queued `Changes` delivery (frees a place).
    pub fn took(&self) {
        self.counters.depth.fetch_sub(1, Ordering::AcqRel);
        self.counters
            .taken_at
            .store(kalamdb_commons::now_ms(), Ordering::Relaxed);
    }
}

/// The receiving end of one subscription with a queue of its own (the
/// connection shares one queue among its subscriptions instead): its
/// deliveries, in commit order.
pub struct Receiver {
    queue: Deliveries,
    subscription: Arc<Subscription>,
}

impl Receiver {
    pub async fn recv(&mut self) -> Delivery {
        let (_, item) = self.queue.recv().await;
        self.took(&item);
        item
    }

    /// A delivery already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        let (_, item) = self.queue.try_recv()?;
        self.took(&item);
        Some(item)
    }

    fn took(&self, item: &Delivery) {
        if matches!(item, Delivery::Changes(_)) {
            self.subscription.took();
        }
    }
}

type Key = (TableId, RowScope);
type Index = RwLock<HashMap<Key, Vec<Arc<Subscription>>>>;
type ById = RwLock<Subs>;

/// Every subscription by live id, and how many each user holds.
#[derive(Default)]
struct Subs {
    by_id: HashMap<String, Arc<Subscription>>,
    per_user: HashMap<UserId, usize>,
}

/// The committed sets on their way to the fan-out thread, and how many it
/// has taken in and finished.
struct Fanout {
    queue: std::sync::Mutex<std::sync::mpsc::Sender<Vec<WriteSet>>>,
    sent: AtomicU64,
    done: Arc<AtomicU64>,
}

pub struct LiveQueryManager {
    /// The database, for SQL's SUBSCRIBE TO checks (set once by `attach`).
    app: std::sync::OnceLock<std::sync::Weak<AppContext>>,
    index: Arc<Index>,
    fanout: Fanout,
    by_id: Arc<ById>,
    next_id: AtomicU64,
    /// Undelivered change messages one subscription may hold.
    queue_capacity: usize,
}

impl LiveQueryManager {
    pub fn new(queue_capacity: usize) -> Self {
        let index: Arc<Index> = Arc::default();
        let by_id: Arc<ById> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel::<Vec<WriteSet>>();
        let done = Arc::new(AtomicU64::new(0));
        let (thread_index, thread_by_id, thread_done) =
            (Arc::clone(&index), Arc::clone(&by_id), Arc::clone(&done));
        // ends when the manager (the only sender) is dropped
        std::thread::Builder::new()
            .name("live-fanout".into())
            .spawn(move || {
                while let Ok(sets) = rx.recv() {
                    fan_out(&thread_index, &thread_by_id, &sets);
                    thread_done.fetch_add(1, Ordering::Release);
                }
            })
            .expect("spawning the live-query fan-out thread");
        Self {
            app: std::sync::OnceLock::new(),
            index,
            fanout: Fanout {
                queue: std::sync::Mutex::new(tx),
                sent: AtomicU64::new(0),
                done,
            },
            by_id,
            next_id: AtomicU64::new(1),
            queue_capacity: queue_capacity.max(1),
        }
    }

    /// Makes this the sink of `app`'s committed changes and the source of
    /// its `system.live_queries` and live SQL statements (once, at start-up).
    pub fn attach(self: &Arc<Self>, app: &Arc<AppContext>) {
        let _ = self.app.set(Arc::downgrade(app));
        app.set_change_sink(Arc::clone(self) as Arc<dyn ChangeSink>);
        app.system_tables
            .set_live_queries(Arc::clone(self) as Arc<dyn LiveQueries>);
    }

    /// Registers `query` with a queue of its own (see [`Self::register_on`]).
    pub fn register(
        &self,
        app: &AppContext,
        query: LiveQuery,
        owner: Owner,
    ) -> (Arc<Subscription>, Receiver, i64) {
        let (tx, rx) = DeliveryQueue::open();
        let (subscription, point) = self.register_on(app, query, owner, tx, 0);
        let receiver = Receiver {
            queue: rx,
            subscription: Arc::clone(&subscription),
        };
        (subscription, receiver, point)
    }

    /// Registers `query` at the write funnel's commit point: every change
    /// committed after the returned point is delivered to `outlet` tagged
    /// `tag`, none before it (those are in what a read started afterwards
    /// sees).
    pub fn register_on(
        &self,
        app: &AppContext,
        query: LiveQuery,
        owner: Owner,
        outlet: Outlet,
        tag: u64,
    ) -> (Arc<Subscription>, i64) {
        let now = kalamdb_commons::now_ms();
        let counters = Arc::new(Counters {
            depth: AtomicUsize::new(0),
            taken_at: AtomicI64::new(now),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let live_id = format!(
            "{}-{}-{id}",
            owner.username, query.table.definition.table_id.0
        );
        let key = (query.table.definition.table_id, query.scope.clone());
        let subscription = Arc::new(Subscription {
            live_id: live_id.clone(),
            query,
            owner,
            created_at: now,
            queue: outlet,
            tag,
            counters,
            capacity: self.queue_capacity,
            ended: AtomicBool::new(false),
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            last_update: AtomicI64::new(0),
            last_seq: AtomicI64::new(0),
            after_seq: AtomicI64::new(i64::MAX),
        });
        let point = app.writes.at_commit_point(|point| {
            subscription.after_seq.store(point, Ordering::Release);
            write(&self.index)
                .entry(key)
                .or_default()
                .push(Arc::clone(&subscription));
            point
        });
        subscription.last_seq.store(point, Ordering::Release);
        {
            let mut subs = write(&self.by_id);
            *subs
                .per_user
                .entry(subscription.owner.user_id.clone())
                .or_default() += 1;
            subs.by_id.insert(live_id, Arc::clone(&subscription));
        }
        (subscription, point)
    }

    /// Ends a subscription (unsubscribe, a closed connection, KILL LIVE
    /// QUERY); `false` if there is none by that id.
    pub fn remove(&self, live_id: &str) -> bool {
        unregister(&self.index, &self.by_id, live_id)
    }

    pub fn get(&self, live_id: &str) -> Option<Arc<Subscription>> {
        read(&self.by_id).by_id.get(live_id).cloned()
    }

    /// Every active subscription.
    pub fn subscriptions(&self) -> Vec<Arc<Subscription>> {
        read(&self.by_id).by_id.values().cloned().collect()
    }

    /// The subscriptions `user` holds.
    pub fn count_for(&self, user: &UserId) -> usize {
        read(&self.by_id).per_user.get(user).copied().unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        read(&self.by_id).by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until every set published so far has been fanned out (for
    /// tests and benchmarks that look at queues right after a write).
    pub fn settle(&self) {
        let sent = self.fanout.sent.load(Ordering::Acquire);
        while self.fanout.done.load(Ordering::Acquire) < sent {
            std::thread::yield_now();
        }
    }
}

impl LiveQueries for LiveQueryManager {
    fn live_queries(&self) -> Vec<LiveQueryInfo> {
        let now = kalamdb_commons::now_ms();
        read(&self.by_id)
            .by_id
            .values()
            .map(|s| s.info(now))
            .collect()
    }

    fn check(&self, ctx: &ExecutionContext, sql: &str) -> CoreResult<()> {
        let app = self
            .app
            .get()
            .and_then(std::sync::Weak::upgrade)
            .ok_or_else(|| CoreError::Internal("the live-query manager is not attached".into()))?;
        LiveQuery::compile(&app, ctx, sql)
            .map(drop)
            .map_err(LiveError::into_core)
    }

    fn kill(&self, ctx: &ExecutionContext, live_id: &str) -> CoreResult<()> {
        let sub = self
            .get(live_id)
            .filter(|s| ctx.role.is_admin() || s.owner.user_id == ctx.user_id)
            .ok_or_else(|| {
                // another user's subscription is as unknown as a missing one
                CoreError::NotFound(format!(
                    "Live query '{live_id}' does not exist (see system.live_queries)"
                ))
            })?;
        sub.end(LiveError::failed(format!(
            "Ended by KILL LIVE QUERY from '{}'",
            ctx.username
        )));
        self.remove(live_id);
        Ok(())
    }
}

impl ChangeSink for LiveQueryManager {
    /// Hands `sets` to the fan-out thread if any subscription can see one
    /// of them (a write nobody watches costs one index probe).
    fn publish(&self, sets: Vec<WriteSet>) {
        let watchers = {
            let index = read(&self.index);
            if index.is_empty() {
                return;
            }
            sets.iter()
                .filter_map(|s| index.get(&(s.table_id, s.scope.clone())))
                .map(Vec::len)
                .sum::<usize>()
        };
        if watchers == 0 {
            return;
        }
        let queue = self.fanout.queue.lock().unwrap_or_else(|e| e.into_inner());
        // A small commit watched by a few subscriptions is fanned out here
        // (microseconds: one match per query, a queue push per subscriber),
        // saving the change a thread hand-off on its way out — but only
        // when the thread has nothing in hand, so commit order holds
        // (publishers come in commit order, and the queue's lock keeps the
        // next one waiting until this one is done).
        let changes: usize = sets.iter().map(|s| s.changes.len()).sum();
        if watchers <= INLINE_SUBSCRIBERS
            && changes <= INLINE_CHANGES
            && self.fanout.done.load(Ordering::Acquire) == self.fanout.sent.load(Ordering::Acquire)
        {
            fan_out(&self.index, &self.by_id, &sets);
            return;
        }
        if queue.send(sets).is_ok() {
            self.fanout.sent.fetch_add(1, Ordering::Release);
        }
    }
}

/// A commit is fanned out by its writer (not the fan-out thread) when at
/// most this many subscriptions watch its tables and scopes…
const INLINE_SUBSCRIBERS: usize = 8;
/// …and it holds at most this many changes.
const INLINE_CHANGES: usize = 64;

/// Delivers one commit's sets: each matched once per distinct query of its
/// (table, scope), the result queued to every subscriber of that query
/// that registered before the commit.
fn fan_out(index: &Index, by_id: &ById, sets: &[WriteSet]) {
    let mut ended: Vec<Arc<Subscription>> = Vec::new();
    // per subscriber, in commit order: what it gets of this commit
    let mut pending: Vec<(Arc<Subscription>, Vec<LiveChange>)> = Vec::new();
    let mut slot: HashMap<*const Subscription, usize> = HashMap::new();
    for set in sets {
        let subs: Vec<Arc<Subscription>> = match read(index).get(&(set.table_id, set.scope.clone()))
        {
            Some(subs) => subs.clone(),
            None => continue,
        };
        let first_seq = set.changes.first().map_or(i64::MAX, |c| c.seq);
        // compiled from the same SQL against the same schema version: the
        // same projection and filter
        let mut by_query: HashMap<(&str, u32), Result<Vec<LiveChange>, LiveError>> = HashMap::new();
        for sub in &subs {
            if sub.ended.load(Ordering::Acquire)
                || first_seq <= sub.after_seq.load(Ordering::Acquire)
            {
                continue;
            }
            let changes = by_query
                .entry((
                    sub.query.sql.as_str(),
                    sub.query.table.definition.schema_version,
                ))
                .or_insert_with(|| sub.query.changes_of(set));
            match changes {
                Ok(changes) if changes.is_empty() => {}
                Ok(changes) => match slot.get(&Arc::as_ptr(sub)) {
                    Some(&i) => pending[i].1.extend(changes.iter().cloned()),
                    None => {
                        slot.insert(Arc::as_ptr(sub), pending.len());
                        pending.push((Arc::clone(sub), changes.clone()));
                    }
                },
                Err(e) => {
                    // this subscription alone fails; the others go on
                    sub.end(e.clone());
                    ended.push(Arc::clone(sub));
                }
            }
        }
    }
    let (mut queued, mut overflowed) = (0u64, 0u64);
    for (sub, changes) in pending {
        let n = changes.len() as u64;
        if sub.offer(changes) {
            queued += n;
        } else {
            overflowed += u64::from(sub.dropped.load(Ordering::Relaxed) > 0);
            ended.push(sub);
        }
    }
    if queued > 0 {
        metrics::counter!("kalamdb_live_changes_total").increment(queued);
    }
    if overflowed > 0 {
        metrics::counter!("kalamdb_live_overflows_total").increment(overflowed);
    }
    for sub in ended {
        unregister(index, by_id, &sub.live_id);
    }
}

/// Takes a subscription out of both maps; `false` if it was not there.
fn unregister(index: &Index, by_id: &ById, live_id: &str) -> bool {
    let sub = {
        let mut subs = write(by_id);
        let Some(sub) = subs.by_id.remove(live_id) else {
            return false;
        };
        if let Some(n) = subs.per_user.get_mut(&sub.owner.user_id) {
            *n -= 1;
            if *n == 0 {
                subs.per_user.remove(&sub.owner.user_id);
            }
        }
        sub
    };
    sub.ended.store(true, Ordering::Release);
    let key = (sub.query.table.definition.table_id, sub.query.scope.clone());
    let mut index = write(index);
    if let Some(subs) = index.get_mut(&key) {
        subs.retain(|s| s.live_id != live_id);
        if subs.is_empty() {
            index.remove(&key);
        }
    }
    true
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}
