//! The HTTP/1.1 accept loop: a bounded number of connections, each closed
//! when it is idle or sends its request head too slowly, and a graceful
//! stop that lets requests in flight finish.
//!
//! Beyond `max_connections` a new connection gets a short 503 and is closed
//! at once, without a task or a buffer, so a flood of idle sockets can
//! neither exhaust the descriptor limit nor slow down the clients already
//! connected.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower_service::Service;

/// A connection's place among `max_connections`, in every request's
/// extensions: an upgraded connection (`/v1/ws`) keeps it, so a WebSocket
/// counts against the limit as long as it is open, and it is told when
/// the server stops.
#[derive(Clone)]
pub struct ConnectionSlot {
    _permit: Arc<tokio::sync::OwnedSemaphorePermit>,
    stop: watch::Receiver<bool>,
}

impl ConnectionSlot {
    /// Resolves once the server is stopping.
    pub async fn stopping(&mut self) {
        let _ = self.stop.wait_for(|s| *s).await;
    }
}

/// Connection-level limits of the HTTP server.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Open connections at once; more are refused with 503.
    pub max_connections: usize,
    /// A client must send a complete request head within this long of the
    /// connection opening or of its previous reply; an idle keep-alive
    /// connection is closed after it too.
    pub header_read_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\nconnection: close\r\ncontent-length: 129\r\n\r\n\
{\"status\":\"error\",\"results\":[],\"took\":0.0,\"error\":{\"code\":\"RATE_LIMIT_EXCEEDED\",\
\"message\":\"Too many connections\",\"details\":null}}";

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting, asks every open connection to close after its current
/// request, and returns once all have closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refuse(&tcp);
            continue;
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        let router = router.clone();
        let limits = limits.clone();
        let mut stop = stop_rx.clone();
        let slot = ConnectionSlot {
            _permit: Arc::new(slot),
            stop: stop.clone(),
        };
        tokio::spawn(async move {
            serve_connection(tcp, remote, slot, router, &limits, &mut stop).await;
        });
    }
    let _ = stop_tx.send(true);
    let total = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    // Every slot back means every connection has closed.
    let _ = slots.acquire_many(total).await;
}

/// Over capacity: a best-effort 503 (never waits on the socket), then close.
fn refuse(tcp: &TcpStream) {
    let _ = tcp.try_write(OVER_CAPACITY);
    tracing::debug!("connection refused: max_connections reached");
}

async fn serve_connection(
    tcp: TcpStream,
    remote: SocketAddr,
    slot: ConnectionSlot,
    router: Router,
    limits: &ConnectionLimits,
    stop: &mut watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        request.extensions_mut().insert(slot.clone());
        let mut router = router.clone();
        async move { router.call(request).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    // with upgrades: `/v1/ws` turns the connection into a WebSocket
    let connection = builder
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    tokio::pin!(connection);
    let stopping = async {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::select! {
        result = connection.as_mut() => log_end(result),
        () = stopping => {
            connection.as_mut().graceful_shutdown();
            log_end(connection.await);
        }
    }
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        // Timeouts, resets and malformed requests: the client's doing.
        tracing::debug!("connection closed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::OVER_CAPACITY;

    #[test]
    fn the_over_capacity_reply_declares_its_length() {
        let text = std::str::from_utf8(OVER_CAPACITY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "RATE_LIMIT_EXCEEDED");
    }
}
