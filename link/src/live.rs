//! Live queries over `/v1/ws`: a [`Subscription`] is a stream of
//! [`LiveEvent`]s that survives dropped connections — it reconnects and
//! resumes from the highest `_seq` it has delivered, so no change is lost or
//! repeated (the server's resume contract, PROTOCOL.md).

use crate::client::KalamLinkClient;
use crate::error::LinkError;
use crate::models::{ColumnInfo, as_i64};
use futures::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use std::io::Read;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One row of a live query: column name → value (64-bit integers and `_seq`
/// as strings, as the server sends them).
pub type LiveRow = Map<String, Value>;

/// How long a connect + authenticate + subscribe may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// We ping this often; a connection silent for `SILENCE_LIMIT` is dead.
const PING_EVERY: Duration = Duration::from_secs(5);
const SILENCE_LIMIT: Duration = Duration::from_secs(20);
/// Events buffered between the connection task and the reader.
const EVENT_BUFFER: usize = 1024;

/// Options of a subscription.
#[derive(Debug, Clone)]
pub struct SubscriptionOptions {
    /// Initial rows per batch (server default 1000).
    pub batch_size: Option<usize>,
    /// Start from the newest N matching rows.
    pub last_rows: Option<usize>,
    /// Resume after this `_seq` (rows changed after it, and deletes).
    pub from: Option<i64>,
    /// Reconnect and resume when the connection drops (default on).
    pub reconnect: bool,
    /// Upper bound of the wait between reconnect attempts.
    pub max_backoff: Duration,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        Self {
            batch_size: None,
            last_rows: None,
            from: None,
            reconnect: true,
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// What a subscription delivers, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveEvent {
    /// The server accepted the subscription (again, after a reconnect:
    /// `resumed_from` is then the `_seq` it resumed after).
    Subscribed {
        schema: Vec<ColumnInfo>,
        total_rows: Option<u64>,
        resumed_from: Option<i64>,
    },
    /// A batch of initial rows. After a resume these are the rows inserted or
    /// updated while the connection was down.
    InitialRows {
        rows: Vec<LiveRow>,
        resumed: bool,
    },
    /// Every initial row has been delivered; changes follow.
    Ready,
    Insert {
        rows: Vec<LiveRow>,
    },
    Update {
        rows: Vec<LiveRow>,
        old_rows: Vec<LiveRow>,
    },
    Delete {
        old_rows: Vec<LiveRow>,
    },
    /// The connection dropped; the subscription is being resumed.
    Reconnecting {
        attempt: u32,
        reason: String,
    },
    /// The subscription ended with this error (the stream ends after it).
    Error {
        code: String,
        message: String,
    },
}

/// A live query. Read it with [`Subscription::next`] (or as a
/// `futures::Stream`); dropping it ends the subscription.
pub struct Subscription {
    id: String,
    events: mpsc::Receiver<LiveEvent>,
    last_seq: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .finish()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscription {
    /// The subscription id sent to the server.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The next event; `None` once the subscription has ended.
    pub async fn next(&mut self) -> Option<LiveEvent> {
        self.events.recv().await
    }

    /// The highest `_seq` delivered so far: a safe cursor to resume from.
    pub fn last_seq(&self) -> Option<i64> {
        match self.last_seq.load(Ordering::Acquire) {
            0 => None,
            n => i64::try_from(n).ok(),
        }
    }
}

impl futures::Stream for Subscription {
    type Item = LiveEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<LiveEvent>> {
        self.events.poll_recv(cx)
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl KalamLinkClient {
    /// Subscribes to `sql` (a SELECT of one table). Returns once the server
    /// has accepted it, or with its error (`INVALID_SQL`, `UNSUPPORTED`, …).
    pub async fn subscribe(
        &self,
        sql: &str,
        options: SubscriptionOptions,
    ) -> Result<Subscription, LinkError> {
        let id = format!(
            "sub-{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        let last_seq = Arc::new(AtomicU64::new(
            options
                .from
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(0),
        ));
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let mut live = Live {
            client: self.clone(),
            id: id.clone(),
            sql: sql.to_string(),
            options,
            last_seq: last_seq.clone(),
            events: tx,
            resumed: false,
        };
        let first = live.connect(live.options.from).await?;
        let task = tokio::spawn(async move { live.run(first).await });
        Ok(Subscription {
            id,
            events: rx,
            last_seq,
            task,
        })
    }
}

/// The connection task's state.
struct Live {
    client: KalamLinkClient,
    id: String,
    sql: String,
    options: SubscriptionOptions,
    last_seq: Arc<AtomicU64>,
    events: mpsc::Sender<LiveEvent>,
    /// Whether the rows now arriving are a resume's.
    resumed: bool,
}

/// Why a connection's pump stopped.
enum Stop {
    /// The reader dropped the subscription.
    Gone,
    /// The server ended the subscription for good.
    Ended,
    /// The connection broke: reconnect.
    Broken(String),
}

impl Live {
    /// Connects, authenticates and subscribes (resuming after `from`).
    async fn connect(&mut self, from: Option<i64>) -> Result<(Ws, Value), LinkError> {
        let token = self.client.access_token().await?;
        let attempt = async {
            let (mut ws, _) = tokio_tungstenite::connect_async(self.client.ws_url())
                .await
                .map_err(|e| LinkError::WebSocket(format!("connect: {e}")))?;
            send(
                &mut ws,
                json!({"type": "authenticate", "method": "jwt", "token": token,
                       "protocol": {"serialization": "json", "compression": "gzip"}}),
            )
            .await?;
            let reply = recv(&mut ws).await?;
            match reply["type"].as_str() {
                Some("auth_success") => {}
                Some("auth_error") => {
                    return Err(LinkError::Auth(
                        reply["message"].as_str().unwrap_or("refused").to_string(),
                    ));
                }
                _ => {
                    return Err(LinkError::Protocol(format!(
                        "expected auth_success: {reply}"
                    )));
                }
            }
            let mut options = Map::new();
            if let Some(n) = self.options.batch_size {
                options.insert("batch_size".into(), json!(n));
            }
            match from {
                Some(seq) => {
                    options.insert("from".into(), json!(seq.to_string()));
                }
                None => {
                    if let Some(n) = self.options.last_rows {
                        options.insert("last_rows".into(), json!(n));
                    }
                }
            }
            send(
                &mut ws,
                json!({"type": "subscribe",
                       "subscription": {"id": self.id, "sql": self.sql, "options": options}}),
            )
            .await?;
            loop {
                let m = recv(&mut ws).await?;
                match m["type"].as_str() {
                    Some("subscription_ack") => return Ok((ws, m)),
                    Some("error") => {
                        return Err(LinkError::Server {
                            status: 0,
                            code: m["code"].as_str().unwrap_or("ERROR").to_string(),
                            message: m["message"].as_str().unwrap_or_default().to_string(),
                        });
                    }
                    _ => continue,
                }
            }
        };
        let (ws, ack) = tokio::time::timeout(HANDSHAKE_TIMEOUT, attempt)
            .await
            .map_err(|_| LinkError::Timeout)??;
        self.resumed = from.is_some();
        Ok((ws, ack))
    }

    async fn emit(&self, event: LiveEvent) -> bool {
        self.events.send(event).await.is_ok()
    }

    async fn run(&mut self, first: (Ws, Value)) {
        let mut connection = Some(first);
        let mut attempt = 0u32;
        loop {
            let (ws, ack) = match connection.take() {
                Some(c) => c,
                None => {
                    attempt += 1;
                    let backoff = Duration::from_millis(100 * 2u64.pow(attempt.min(6)))
                        .min(self.options.max_backoff);
                    tokio::time::sleep(backoff).await;
                    let from = self.cursor();
                    match self.connect(from).await {
                        Ok(c) => c,
                        Err(LinkError::Server { code, message, .. }) => {
                            self.emit(LiveEvent::Error { code, message }).await;
                            return;
                        }
                        Err(LinkError::Auth(message)) => {
                            // credentials the server no longer takes: retrying
                            // cannot help
                            self.emit(LiveEvent::Error {
                                code: "AUTH".into(),
                                message,
                            })
                            .await;
                            return;
                        }
                        Err(e) => {
                            let reason = e.to_string();
                            if !self.emit(LiveEvent::Reconnecting { attempt, reason }).await {
                                return;
                            }
                            continue;
                        }
                    }
                }
            };
            attempt = 0;
            match self.pump(ws, ack).await {
                Stop::Gone | Stop::Ended => return,
                Stop::Broken(reason) => {
                    if !self.options.reconnect {
                        self.emit(LiveEvent::Error {
                            code: "DISCONNECTED".into(),
                            message: reason,
                        })
                        .await;
                        return;
                    }
                    if !self
                        .emit(LiveEvent::Reconnecting { attempt: 1, reason })
                        .await
                    {
                        return;
                    }
                }
            }
        }
    }

    /// The `_seq` to resume after, if any was delivered.
    fn cursor(&self) -> Option<i64> {
        match self.last_seq.load(Ordering::Acquire) {
            0 => None,
            n => i64::try_from(n).ok(),
        }
    }

    fn saw(&self, seq: Option<i64>) {
        if let Some(seq) = seq.and_then(|s| u64::try_from(s).ok()) {
            self.last_seq.fetch_max(seq, Ordering::AcqRel);
        }
    }

    fn saw_rows(&self, rows: &[LiveRow]) {
        for row in rows {
            self.saw(row.get("_seq").and_then(as_i64));
        }
    }

    /// Delivers one connection's messages until it stops.
    async fn pump(&mut self, mut ws: Ws, ack: Value) -> Stop {
        let schema: Vec<ColumnInfo> =
            serde_json::from_value(ack["schema"].clone()).unwrap_or_default();
        let resumed_from = self.resumed.then(|| self.cursor());
        let subscribed = LiveEvent::Subscribed {
            schema,
            total_rows: ack["total_rows"].as_u64(),
            resumed_from: resumed_from.flatten(),
        };
        if !self.emit(subscribed).await {
            return Stop::Gone;
        }
        // Rows and seqs only count as delivered once handed to the reader:
        // the ack's cursor is applied when the initial rows are complete.
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let mut heard = tokio::time::Instant::now();
        loop {
            let m = tokio::select! {
                m = recv(&mut ws) => m,
                _ = ping.tick() => {
                    if heard.elapsed() > SILENCE_LIMIT {
                        return Stop::Broken("the server stopped answering".into());
                    }
                    if send(&mut ws, json!({"type": "ping"})).await.is_err() {
                        return Stop::Broken("the connection closed".into());
                    }
                    continue;
                }
                _ = self.events.closed() => {
                    let _ = send(&mut ws, json!({"type": "unsubscribe", "subscription_id": self.id})).await;
                    let _ = ws.close(None).await;
                    return Stop::Gone;
                }
            };
            heard = tokio::time::Instant::now();
            let m = match m {
                Ok(m) => m,
                Err(e) => return Stop::Broken(e.to_string()),
            };
            let rows = |key: &str| -> Vec<LiveRow> {
                m[key]
                    .as_array()
                    .map(|a| a.iter().filter_map(|r| r.as_object().cloned()).collect())
                    .unwrap_or_default()
            };
            match m["type"].as_str() {
                Some("initial_data_batch") => {
                    let batch = rows("rows");
                    let control = &m["batch_control"];
                    let has_more = control["has_more"].as_bool().unwrap_or(false);
                    let resumed = self.resumed;
                    if !batch.is_empty()
                        && !self
                            .emit(LiveEvent::InitialRows {
                                rows: batch.clone(),
                                resumed,
                            })
                            .await
                    {
                        return Stop::Gone;
                    }
                    self.saw_rows(&batch);
                    if has_more {
                        let more = json!({"type": "next_batch", "subscription_id": self.id,
                                          "last_seq_id": control["last_seq_id"]});
                        if send(&mut ws, more).await.is_err() {
                            return Stop::Broken("the connection closed".into());
                        }
                        continue;
                    }
                    self.saw(as_i64(&control["last_seq_id"]));
                    if !self.emit(LiveEvent::Ready).await {
                        return Stop::Gone;
                    }
                    continue;
                }
                Some("change") => {
                    let event = match m["change_type"].as_str() {
                        Some("insert") => LiveEvent::Insert { rows: rows("rows") },
                        Some("update") => LiveEvent::Update {
                            rows: rows("rows"),
                            old_rows: rows("old_values"),
                        },
                        Some("delete") => LiveEvent::Delete {
                            old_rows: rows("old_values"),
                        },
                        _ => continue,
                    };
                    if !self.emit(event).await {
                        return Stop::Gone;
                    }
                    self.saw_rows(&rows("rows"));
                    self.saw_rows(&rows("old_values"));
                    continue;
                }
                Some("error") => {
                    let code = m["code"].as_str().unwrap_or("ERROR").to_string();
                    let message = m["message"].as_str().unwrap_or_default().to_string();
                    if code == "OVERFLOW" && self.options.reconnect {
                        // we fell behind: resume from what was delivered
                        return Stop::Broken(format!("{code}: {message}"));
                    }
                    self.emit(LiveEvent::Error { code, message }).await;
                    return Stop::Ended;
                }
                _ => continue,
            }
        }
    }
}

async fn send(ws: &mut Ws, message: Value) -> Result<(), LinkError> {
    ws.send(Message::Text(message.to_string().into()))
        .await
        .map_err(|e| LinkError::WebSocket(e.to_string()))
}

/// The next JSON message (text, or gzip-compressed binary).
async fn recv(ws: &mut Ws) -> Result<Value, LinkError> {
    loop {
        let frame = ws
            .next()
            .await
            .ok_or_else(|| LinkError::WebSocket("the connection closed".into()))?
            .map_err(|e| LinkError::WebSocket(e.to_string()))?;
        let text = match frame {
            Message::Text(text) => text.to_string(),
            Message::Binary(bytes) => {
                let mut text = String::new();
                flate2::read::GzDecoder::new(&bytes[..])
                    .read_to_string(&mut text)
                    .map_err(|e| LinkError::Protocol(format!("bad gzip frame: {e}")))?;
                text
            }
            Message::Close(_) => return Err(LinkError::WebSocket("the server closed".into())),
            _ => continue,
        };
        return serde_json::from_str(&text)
            .map_err(|e| LinkError::Protocol(format!("message is not JSON: {e}")));
    }
}
