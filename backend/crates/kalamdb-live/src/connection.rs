//! One WebSocket connection speaking the v1 protocol (`PROTOCOL.md`,
//! WebSocket): authenticate, subscribe (initial rows in batches, then the
//! changes), next_batch, unsubscribe, ping. Transport-neutral: the HTTP
//! layer hands it the socket as a stream and a sink of [`Frame`]s, so this
//! file knows nothing of the web framework. One task per connection: it
//! reads the client's messages, takes the deliveries of its subscriptions
//! and writes to the socket itself (no reader or writer task, no frame
//! channels: an idle connection costs that much less, and a change crosses
//! one task less on its way out).

use crate::error::LiveError;
use crate::manager::{Delivery, LiveQueryManager, Owner, Subscription};
use crate::query::{Handover, INSERT_TAIL_HEAD, LiveChange, LiveQuery, LiveRow};
use crate::queue::{DeliveryQueue, Outlet};
use futures::{Sink, SinkExt, Stream, StreamExt};
use kalamdb_core::rows::json::column_infos;
use kalamdb_core::{AppContext, ExecutionContext};
use serde_json::{Value as Json, json};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Inserted rows one `change` message carries at most…
const MAX_ROWS_PER_CHANGE: usize = 1000;
/// …and the size past which it takes no more.
const MAX_CHANGE_BYTES: usize = 256 << 10;

/// A WebSocket frame, as far as the protocol cares.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close,
}

/// The peer is gone: a frame could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

/// Where a connection writes its frames (the socket's sending half).
pub type Outgoing = Box<dyn Sink<Frame, Error = Gone> + Send + Unpin>;

/// Verifies a JWT sent in an `authenticate` message: the caller, or why not.
pub type Authenticate = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<Authenticated, String>> + Send>>
        + Send
        + Sync,
>;

/// A verified caller, and until when their credentials hold.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user: ExecutionContext,
    /// The token's expiry (epoch seconds): the connection is closed then,
    /// unless the client sent a fresh token meanwhile.
    pub expires_at: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Authentication must arrive within this long.
    pub auth_timeout: Duration,
    /// The server pings this often.
    pub heartbeat: Duration,
    /// A connection silent this long is closed.
    pub client_timeout: Duration,
    pub max_subscriptions: usize,
    /// Subscriptions one user may hold over all connections.
    pub max_subscriptions_per_user: usize,
    /// A client message larger than this is refused (`MESSAGE_TOO_LARGE`).
    pub max_message_bytes: usize,
    /// Client messages per second one connection may send; beyond it they
    /// are refused with `RATE_LIMIT_EXCEEDED` (the connection stays).
    pub max_messages_per_second: u32,
    /// Initial rows one subscription may start with (they are held in
    /// memory while paged out); more is refused with `BATCH_FETCH_FAILED`.
    pub max_initial_rows: usize,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            auth_timeout: Duration::from_secs(3),
            heartbeat: Duration::from_secs(5),
            client_timeout: Duration::from_secs(10),
            max_subscriptions: 100,
            max_subscriptions_per_user: 10,
            max_message_bytes: 1 << 20,
            max_messages_per_second: 50,
            max_initial_rows: 100_000,
        }
    }
}

const DEFAULT_BATCH_SIZE: usize = 1000;
static NEXT_CONNECTION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
/// Messages longer than this go out gzip-compressed in a binary frame
/// (when that is smaller), unless the client asked for no compression.
const GZIP_THRESHOLD: usize = 512;
const MAX_BATCH_SIZE: usize = 10_000;

/// One subscription of this connection.
struct Subscribed {
    live_id: String,
    batch_size: usize,
    next_batch: usize,
    /// Initial rows not sent yet.
    pending: VecDeque<LiveRow>,
    /// Deletes since `from`, sent among the initial rows in `_seq` order.
    deletes: Vec<LiveChange>,
    last_seq: i64,
    handover: Handover,
    subscription: Arc<Subscription>,
    /// Whether the initial rows are all sent (changes go out as they come).
    streaming: bool,
    /// Changes that arrived while the initial rows were still being sent;
    /// they count against the subscription's queue bound until sent.
    held: VecDeque<Delivery>,
}

pub struct Connection {
    app: Arc<AppContext>,
    live: Arc<LiveQueryManager>,
    config: ConnectionConfig,
    out: Outgoing,
    /// Set once a write failed: nothing more is written.
    gone: bool,
    user: Option<ExecutionContext>,
    /// When the credentials `user` came with expire (epoch seconds).
    expires_at: Option<u64>,
    connection_id: String,
    /// The current second's start and how many messages arrived in it.
    window: (Instant, u32),
    /// Whether large messages may go out as gzip binary frames.
    gzip: bool,
    /// (Boxed: a map's spare slots then cost a pointer each.)
    subs: HashMap<String, Box<Subscribed>>,
    /// The queue every subscription of this connection delivers to, and
    /// which client id each tag stands for.
    outlet: Outlet,
    tags: HashMap<u64, String>,
    next_tag: u64,
}

/// Serves one connection until the client leaves (or goes silent);
/// `user` is set when the upgrade request authenticated it already.
pub async fn serve(
    app: Arc<AppContext>,
    live: Arc<LiveQueryManager>,
    config: ConnectionConfig,
    authenticate: Authenticate,
    user: Option<Authenticated>,
    mut incoming: impl Stream<Item = Frame> + Send + Unpin,
    out: Outgoing,
) {
    let (outlet, mut deliveries) = DeliveryQueue::open();
    let mut c = Connection {
        app,
        live,
        config,
        out,
        gone: false,
        user: None,
        expires_at: None,
        connection_id: format!(
            "c{}",
            NEXT_CONNECTION.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ),
        gzip: true,
        window: (Instant::now(), 0),
        subs: HashMap::new(),
        outlet,
        tags: HashMap::new(),
        next_tag: 0,
    };
    if let Some(user) = user {
        Box::pin(c.authenticated(user)).await;
    }
    let deadline = Instant::now() + c.config.auth_timeout;
    let mut heartbeat = tokio::time::interval(c.config.heartbeat);
    heartbeat.tick().await;
    let mut last_heard = Instant::now();
    while !c.gone {
        let expiry = c.expires_at.map(until_epoch);
        tokio::select! {
            frame = incoming.next() => {
                let Some(frame) = frame else { break };
                last_heard = Instant::now();
                match frame {
                    Frame::Text(text) => {
                        // boxed: the work of a message (a subscribe's
                        // initial rows) takes memory only while it runs,
                        // not in every idle connection's task
                        if !Box::pin(c.on_text(&text, &authenticate)).await {
                            break;
                        }
                    }
                    Frame::Binary(_) => Box::pin(c.error(None, "PROTOCOL", "Send text frames (JSON)")).await,
                    Frame::Ping(data) => c.write(Frame::Pong(data)).await,
                    Frame::Pong(_) => {}
                    Frame::Close => break,
                }
            }
            (tag, delivery) = deliveries.recv() => Box::pin(c.arrived(tag, delivery)).await,
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > c.config.client_timeout {
                    break;
                }
                c.write(Frame::Ping(Vec::new())).await;
            }
            _ = tokio::time::sleep_until(expiry.unwrap_or(deadline)), if expiry.is_some() => {
                // a fresh token may have come meanwhile: the next turn waits for it
                if c.expires_at.is_some_and(|exp| exp <= epoch_secs()) {
                    Box::pin(c.error(None, "UNAUTHORIZED", "The access token expired: connect again with a fresh one (or send a fresh token before it expires)")).await;
                    break;
                }
            }
            _ = tokio::time::sleep_until(deadline), if c.user.is_none() => {
                Box::pin(c.send(json!({"type": "auth_error", "message": "Authentication timed out"}))).await;
                break;
            }
        }
    }
    c.write(Frame::Close).await;
    // dropping `c` ends its subscriptions
}

impl Drop for Connection {
    /// However the connection ends (the client left, the server stops, the
    /// task is cancelled), its subscriptions end with it.
    fn drop(&mut self) {
        for sub in self.subs.values() {
            self.live.remove(&sub.live_id);
        }
    }
}

fn epoch_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The instant epoch second `at` comes (now, if it has).
fn until_epoch(at: u64) -> Instant {
    Instant::now() + Duration::from_secs(at.saturating_sub(epoch_secs()))
}

fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok()
}

/// A 64-bit sequence id sent as a JSON number or a string.
fn seq_of(v: &Json) -> Option<i64> {
    match v {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl Connection {
    /// Writes one frame to the socket (waiting while the client's receive
    /// window is full: a client that stops reading backs its deliveries up
    /// into its subscriptions' bounded queues, which end in OVERFLOW).
    async fn write(&mut self, frame: Frame) {
        if !self.gone && self.out.send(frame).await.is_err() {
            self.gone = true;
        }
    }

    async fn send(&mut self, message: Json) {
        self.send_text(message.to_string()).await;
    }

    async fn send_text(&mut self, text: String) {
        let frame = match self.gzip && text.len() > GZIP_THRESHOLD {
            true => match gzip(text.as_bytes()) {
                Some(bytes) if bytes.len() < text.len() => Frame::Binary(bytes),
                _ => Frame::Text(text),
            },
            false => Frame::Text(text),
        };
        self.write(frame).await;
    }

    async fn error(&mut self, subscription: Option<&str>, code: &str, message: &str) {
        let mut m = json!({"type": "error", "code": code, "message": message});
        if let Some(id) = subscription {
            m["subscription_id"] = json!(id);
        }
        self.send(m).await;
    }

    async fn authenticated(&mut self, auth: Authenticated) {
        let Authenticated { user, expires_at } = auth;
        self.expires_at = expires_at;
        self.send(json!({
            "type": "auth_success",
            "user": user.username,
            "role": user.role.as_str().to_lowercase(),
            "user_id": user.user_id.as_str(),
            "protocol": {
                "serialization": "json",
                "compression": if self.gzip { "gzip" } else { "none" },
            },
        }))
        .await;
        self.user = Some(user);
    }

    /// Handles one client message; `false` ends the connection.
    async fn on_text(&mut self, text: &str, authenticate: &Authenticate) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window.0) >= Duration::from_secs(1) {
            self.window = (now, 0);
        }
        self.window.1 += 1;
        if self.window.1 > self.config.max_messages_per_second {
            self.error(
                None,
                "RATE_LIMIT_EXCEEDED",
                &format!(
                    "At most {} messages per second per connection",
                    self.config.max_messages_per_second
                ),
            )
            .await;
            return true;
        }
        if text.len() > self.config.max_message_bytes {
            self.error(
                None,
                "MESSAGE_TOO_LARGE",
                &format!(
                    "A message may be at most {} bytes",
                    self.config.max_message_bytes
                ),
            )
            .await;
            return true;
        }
        let message: Json = match serde_json::from_str(text) {
            Ok(m @ Json::Object(_)) => m,
            _ => {
                self.error(
                    None,
                    "PROTOCOL",
                    "A message is a JSON object with a \"type\"",
                )
                .await;
                return true;
            }
        };
        let kind = message["type"].as_str().unwrap_or("");
        if kind == "authenticate" {
            return self.on_authenticate(&message, authenticate).await;
        }
        if kind == "ping" {
            self.send(json!({"type": "pong"})).await;
            return true;
        }
        if self.user.is_none() {
            self.error(None, "AUTH_REQUIRED", "Authenticate first")
                .await;
            return true;
        }
        match kind {
            "subscribe" => self.on_subscribe(&message["subscription"]).await,
            "next_batch" => {
                let id = message["subscription_id"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                self.send_batch(&id).await;
            }
            "unsubscribe" => {
                let id = message["subscription_id"].as_str().unwrap_or("");
                match self.subs.remove(id) {
                    Some(sub) => {
                        self.tags.remove(&sub.subscription.tag());
                        self.live.remove(&sub.live_id);
                    }
                    None => {
                        self.error(Some(id), "INVALID_SUBSCRIPTION_ID", "No such subscription")
                            .await
                    }
                }
            }
            other => {
                self.error(None, "PROTOCOL", &format!("Unknown message type '{other}'"))
                    .await;
            }
        }
        true
    }

    async fn on_authenticate(&mut self, message: &Json, authenticate: &Authenticate) -> bool {
        if let Some(current) = &self.user {
            // (ours) a fresh token for the same account, before the old one
            // expires: the connection and its subscriptions carry on
            let Some(token) = message["token"].as_str() else {
                self.error(None, "PROTOCOL", "Already authenticated").await;
                return true;
            };
            let (user_id, role) = (current.user_id.clone(), current.role);
            match authenticate(token.to_string()).await {
                Ok(auth) if auth.user.user_id == user_id && auth.user.role == role => {
                    self.authenticated(auth).await;
                }
                Ok(_) => {
                    self.error(
                        None,
                        "UNAUTHORIZED",
                        "A connection re-authenticates as the same user with the same role",
                    )
                    .await;
                }
                Err(e) => self.error(None, "UNAUTHORIZED", &e).await,
            }
            return true;
        }
        if let Some(s) = message["protocol"]["serialization"].as_str()
            && s != "json"
        {
            self.send(json!({"type": "auth_error", "message": format!("Serialization '{s}' is not supported: use json")})).await;
            return false;
        }
        self.gzip = message["protocol"]["compression"].as_str() != Some("none");
        let token = match (message["method"].as_str(), message["token"].as_str()) {
            (Some("jwt") | None, Some(token)) => token.to_string(),
            _ => {
                self.send(json!({"type": "auth_error", "message": "Send {\"method\":\"jwt\",\"token\":\"<JWT>\"}"})).await;
                return false;
            }
        };
        match authenticate(token).await {
            Ok(user) => {
                self.authenticated(user).await;
                true
            }
            Err(e) => {
                self.send(json!({"type": "auth_error", "message": e})).await;
                false
            }
        }
    }

    async fn on_subscribe(&mut self, subscription: &Json) {
        let Some(id) = subscription["id"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
        else {
            self.error(
                None,
                "INVALID_SUBSCRIPTION_ID",
                "A subscription needs an \"id\"",
            )
            .await;
            return;
        };
        if self.subs.contains_key(&id) {
            self.error(
                Some(&id),
                "INVALID_SUBSCRIPTION_ID",
                "This id is subscribed already",
            )
            .await;
            return;
        }
        if self.subs.len() >= self.config.max_subscriptions {
            self.error(
                Some(&id),
                "SUBSCRIPTION_LIMIT_EXCEEDED",
                &format!(
                    "At most {} subscriptions per connection",
                    self.config.max_subscriptions
                ),
            )
            .await;
            return;
        }
        let user_id = &self.user.as_ref().expect("authenticated").user_id;
        if self.live.count_for(user_id) >= self.config.max_subscriptions_per_user {
            self.error(
                Some(&id),
                "SUBSCRIPTION_LIMIT_EXCEEDED",
                &format!(
                    "At most {} subscriptions per user",
                    self.config.max_subscriptions_per_user
                ),
            )
            .await;
            return;
        }
        let Some(sql) = subscription["sql"].as_str() else {
            self.error(Some(&id), "INVALID_SQL", "A subscription needs \"sql\"")
                .await;
            return;
        };
        let options = &subscription["options"];
        let batch_size = options["batch_size"]
            .as_u64()
            .map_or(DEFAULT_BATCH_SIZE, |n| {
                (n as usize).clamp(1, MAX_BATCH_SIZE)
            });
        let last_rows = options["last_rows"].as_u64().map(|n| n as usize);
        let from_value = if options["from"].is_null() {
            &options["from_seq_id"]
        } else {
            &options["from"]
        };
        let from = match from_value {
            Json::Null => None,
            v => match seq_of(v) {
                Some(seq) => Some(seq),
                None => {
                    self.error(
                        Some(&id),
                        "PROTOCOL",
                        "\"from\" is a sequence id (a number or a string)",
                    )
                    .await;
                    return;
                }
            },
        };
        let user = self.user.clone().expect("authenticated");
        let query = match LiveQuery::compile(&self.app, &user, sql) {
            Ok(query) => query,
            Err(LiveError { code, message, .. }) => {
                self.error(Some(&id), code, &message).await;
                return;
            }
        };
        let schema = column_infos(&query.schema());
        let owner = Owner {
            connection_id: self.connection_id.clone(),
            subscription_id: id.clone(),
            options: if options.is_null() {
                "{}".into()
            } else {
                options.to_string()
            },
            ..Owner::of(&user)
        };
        self.next_tag += 1;
        let tag = self.next_tag;
        let (subscription, _) =
            self.live
                .register_on(&self.app, query, owner, self.outlet.clone(), tag);
        let initial = match subscription.query.initial_rows(
            &self.app,
            from,
            last_rows,
            self.config.max_initial_rows,
        ) {
            Ok(initial) => initial,
            Err(e) => {
                self.live.remove(&subscription.live_id);
                let code = match e.code {
                    "RESUME_TOO_OLD" => e.code,
                    _ => "BATCH_FETCH_FAILED",
                };
                self.error(Some(&id), code, &e.message).await;
                return;
            }
        };
        let total = initial.rows.len();
        // a resume's deletes may split the rows into more batches
        let has_more = total > batch_size || (total > 0 && !initial.deletes.is_empty());
        self.send(json!({
            "type": "subscription_ack",
            "subscription_id": id,
            "total_rows": total,
            "batch_control": {
                "batch_num": 0,
                "has_more": has_more,
                "status": if has_more { "loading" } else { "ready" },
                "last_seq_id": initial.last_seq.max(from.unwrap_or(0)),
            },
            "schema": schema,
        }))
        .await;
        self.subs.insert(
            id.clone(),
            Box::new(Subscribed {
                live_id: subscription.live_id.clone(),
                batch_size,
                next_batch: 0,
                pending: initial.rows.into(),
                deletes: initial.deletes,
                last_seq: initial.last_seq.max(from.unwrap_or(0)),
                handover: initial.handover,
                subscription,
                streaming: false,
                held: VecDeque::new(),
            }),
        );
        self.tags.insert(tag, id.clone());
        self.send_batch(&id).await;
    }

    /// The next batch of a subscription's initial rows; after the last, the
    /// deletes since `from` and then the stream.
    async fn send_batch(&mut self, id: &str) {
        let Some(sub) = self.subs.get_mut(id) else {
            self.error(Some(id), "INVALID_SUBSCRIPTION_ID", "No such subscription")
                .await;
            return;
        };
        if sub.streaming {
            return;
        }
        // a resume's rows and deletes go out in one `_seq` order, so that a
        // client cut off anywhere has everything up to the highest `_seq`
        // it saw: first the deletes before the next row, then rows up to
        // the next delete
        let row_seq = |r: &LiveRow| {
            r.get(kalamdb_commons::SEQ_COLUMN)
                .and_then(seq_of)
                .unwrap_or(i64::MAX)
        };
        let first_row = sub.pending.front().map(row_seq);
        let leading = sub
            .deletes
            .iter()
            .take_while(|d| first_row.is_none_or(|s| d.seq < s))
            .count();
        let deletes: Vec<LiveChange> = sub.deletes.drain(..leading).collect();
        let next_delete = sub.deletes.first().map(|d| d.seq);
        let n = sub
            .pending
            .iter()
            .take(sub.batch_size)
            .take_while(|r| next_delete.is_none_or(|d| row_seq(r) < d))
            .count();
        let rows: Vec<LiveRow> = sub.pending.drain(..n).collect();
        let has_more = !sub.pending.is_empty() || !sub.deletes.is_empty();
        let batch_num = sub.next_batch;
        sub.next_batch += 1;
        let last_seq = rows
            .iter()
            .filter_map(|r| r.get(kalamdb_commons::SEQ_COLUMN).and_then(seq_of))
            .max()
            .unwrap_or(sub.last_seq);
        let message = json!({
            "type": "initial_data_batch",
            "subscription_id": id,
            "rows": rows,
            "batch_control": {
                "batch_num": batch_num,
                "has_more": has_more,
                "status": if has_more { "loading_batch" } else { "ready" },
                "last_seq_id": if has_more { last_seq } else { sub.last_seq },
            },
        });
        let held = if has_more {
            VecDeque::new()
        } else {
            sub.streaming = true;
            std::mem::take(&mut sub.held)
        };
        if !deletes.is_empty() {
            self.send_changes(id, &deletes).await;
        }
        self.send(message).await;
        // the stream starts with what arrived meanwhile
        for delivery in held {
            self.deliver(id, Some(delivery)).await;
        }
    }

    /// A delivery from the connection's queue: sent now, or held until the
    /// subscription's initial rows are out (an end is told at once).
    async fn arrived(&mut self, tag: u64, delivery: Delivery) {
        let Some(id) = self.tags.get(&tag).cloned() else {
            return; // unsubscribed meanwhile
        };
        let Some(sub) = self.subs.get_mut(&id) else {
            return;
        };
        if !sub.streaming && matches!(delivery, Delivery::Changes(_)) {
            sub.held.push_back(delivery);
            return;
        }
        if matches!(delivery, Delivery::Ended(_)) {
            self.tags.remove(&tag);
        }
        self.deliver(&id, Some(delivery)).await;
    }

    async fn deliver(&mut self, id: &str, delivery: Option<Delivery>) {
        let Some(sub) = self.subs.get_mut(id) else {
            return;
        };
        match delivery {
            Some(Delivery::Changes(changes)) => {
                sub.subscription.took();
                let news: Vec<LiveChange> = changes
                    .into_iter()
                    .filter(|c| sub.handover.admits(c))
                    .collect();
                if let Some(last) = news.last() {
                    sub.last_seq = sub.last_seq.max(last.seq);
                }
                self.send_changes(id, &news).await;
            }
            Some(Delivery::Ended(error)) => {
                self.subs.remove(id);
                self.error(Some(id), error.code, &error.message).await;
            }
            None => {
                self.subs.remove(id);
            }
        }
    }

    async fn send_changes(&mut self, id: &str, changes: &[LiveChange]) {
        let head = format!(
            "{{\"type\":\"change\",\"subscription_id\":{},",
            Json::String(id.to_string())
        );
        // consecutive inserts share a message (a 1,000-row INSERT is one
        // message of 1,000 rows, not 1,000 messages); updates and deletes
        // go one by one, each row with its old values
        let mut i = 0;
        while i < changes.len() {
            let Some(first) = changes[i].inserted_row_wire() else {
                self.send_text(format!("{head}{}", changes[i].wire_tail()))
                    .await;
                i += 1;
                continue;
            };
            let mut rows = String::from(first);
            let mut j = i + 1;
            while j < changes.len() && j - i < MAX_ROWS_PER_CHANGE && rows.len() < MAX_CHANGE_BYTES
            {
                let Some(row) = changes[j].inserted_row_wire() else {
                    break;
                };
                rows.push(',');
                rows.push_str(row);
                j += 1;
            }
            self.send_text(format!("{head}{INSERT_TAIL_HEAD}{rows}]}}"))
                .await;
            i = j;
        }
    }
}
