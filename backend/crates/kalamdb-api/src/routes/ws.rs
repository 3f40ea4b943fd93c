//! `GET /v1/ws`: the WebSocket upgrade. Thin: it authenticates the upgrade
//! when it carries a token (`Authorization: Bearer`, or the subprotocol
//! `kalamdb.jwt.<JWT>`), then pumps frames between the socket and
//! kalamdb-live's connection, which speaks the protocol over them.

use crate::ApiState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt, future};
use kalamdb_core::ExecutionContext;
use kalamdb_live::{Authenticate, Authenticated, Frame, Gone};
use std::net::SocketAddr;
use std::sync::Arc;
use tracing::Instrument;

const JWT_SUBPROTOCOL: &str = "kalamdb.jwt.";

/// Read buffer of a connection, allocated up front (client messages are
/// small: a larger one is read in several steps).
const READ_BUFFER_BYTES: usize = 512;

pub async fn upgrade(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    slot: Option<axum::Extension<crate::server::ConnectionSlot>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let subprotocol = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .map(str::trim)
                .find(|p| p.starts_with(JWT_SUBPROTOCOL))
                .map(str::to_string)
        });
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "))
        .map(|v| v[7..].trim().to_string());
    let token = bearer.or_else(|| {
        subprotocol
            .as_deref()
            .map(|p| p[JWT_SUBPROTOCOL.len()..].to_string())
    });
    let request_id = state.request_id();
    let authenticate = authenticator(&state, client, request_id.clone());
    let user = match token {
        Some(token) => match authenticate(token).await {
            Ok(user) => Some(user),
            Err(e) => {
                return (
                    StatusCode::UNAUTHORIZED,
                    format!("authentication failed: {e}"),
                )
                    .into_response();
            }
        },
        None => None,
    };
    let ws = match subprotocol {
        Some(p) => ws.protocols([p]),
        None => ws,
    };
    // tungstenite's default 128 KiB read and write buffers would cost an
    // idle connection ~256 KiB: ours grow only while a message needs them
    ws.max_message_size(state.ws.max_message_bytes)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .on_upgrade(move |socket| {
            // the connection's log lines carry the upgrade request's id
            pump(state, socket, authenticate, user, slot.map(|s| s.0))
                .instrument(tracing::info_span!("ws", id = %request_id))
        })
}

/// Verifies a JWT for the protocol's `authenticate` message.
fn authenticator(state: &Arc<ApiState>, client: SocketAddr, request_id: String) -> Authenticate {
    let state = Arc::clone(state);
    Arc::new(move |token: String| {
        let state = Arc::clone(&state);
        let request_id = request_id.clone();
        Box::pin(async move {
            let user = state
                .auth
                .authenticate(Some(&format!("Bearer {token}")), Some(client.ip()))
                .await
                .map_err(|e| e.to_string())?;
            Ok(Authenticated {
                user: ExecutionContext::new(user.user_id, user.username, user.role)
                    .with_request(request_id, Some(client.ip())),
                expires_at: state.auth.access_token_expiry(&token),
            })
        })
    })
}

async fn pump(
    state: Arc<ApiState>,
    socket: WebSocket,
    authenticate: Authenticate,
    user: Option<Authenticated>,
    // held until the socket closes: a WebSocket counts as a connection
    slot: Option<crate::server::ConnectionSlot>,
) {
    metrics::gauge!("kalamdb_live_connections").increment(1.0);
    let _open = OnDrop(|| metrics::gauge!("kalamdb_live_connections").decrement(1.0));
    // one task: the connection reads and writes the socket itself
    let (sink, stream) = socket.split();
    let incoming = stream
        // a read error ends the stream, as the client leaving does
        .scan((), |_, message| future::ready(message.ok()))
        .map(|message| match message {
            Message::Text(text) => Frame::Text(text.to_string()),
            Message::Binary(bytes) => Frame::Binary(bytes.to_vec()),
            Message::Ping(bytes) => Frame::Ping(bytes.to_vec()),
            Message::Pong(bytes) => Frame::Pong(bytes.to_vec()),
            Message::Close(_) => Frame::Close,
        });
    let outgoing = sink
        .with(|frame: Frame| {
            future::ready(Ok::<_, axum::Error>(match frame {
                Frame::Text(text) => Message::Text(text.into()),
                Frame::Binary(bytes) => Message::Binary(bytes.into()),
                Frame::Ping(bytes) => Message::Ping(bytes.into()),
                Frame::Pong(bytes) => Message::Pong(bytes.into()),
                Frame::Close => Message::Close(None),
            }))
        })
        .sink_map_err(|_| Gone);
    let serve = kalamdb_live::serve(
        Arc::clone(&state.app),
        Arc::clone(&state.live),
        state.ws.clone(),
        authenticate,
        user,
        incoming,
        Box::new(outgoing),
    );
    match slot {
        // the server stopping ends the connection (its subscriptions go
        // with it): dropping `serve` drops the socket
        Some(mut slot) => tokio::select! {
            () = serve => {}
            () = slot.stopping() => {}
        },
        None => serve.await,
    }
}

/// Runs its closure when dropped (however the connection ends).
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}
