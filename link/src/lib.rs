//! `kalam-link`: a Rust client for KalamDB.
//!
//! - SQL over HTTP: [`KalamLinkClient::query`] / [`KalamLinkClient::query_with`]
//!   (parameters, a default namespace), results as the server sends them —
//!   64-bit integers stay exact ([`QueryResult::i64`]).
//! - Authentication: Basic, a bearer token, or [`KalamLinkClient::login`]
//!   (an access + refresh pair, refreshed before it expires).
//! - Live queries: [`KalamLinkClient::subscribe`] returns a [`Subscription`],
//!   a stream of [`LiveEvent`]s that reconnects and resumes from the last
//!   `_seq` it delivered, so no change is lost or repeated.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kalam_link::LinkError> {
//! use kalam_link::{KalamLinkClient, LiveEvent, SubscriptionOptions};
//! let client = KalamLinkClient::builder("http://127.0.0.1:8080").build()?;
//! client.login("alice", "secret").await?;
//! let reply = client.query("SELECT id, body FROM chat.messages LIMIT 10").await?;
//! println!("{} row(s)", reply.results[0].row_count);
//! let mut live = client
//!     .subscribe("SELECT * FROM chat.messages WHERE room = 'a'", SubscriptionOptions::default())
//!     .await?;
//! while let Some(event) = live.next().await {
//!     if let LiveEvent::Insert { rows } = event {
//!         println!("{rows:?}");
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! This crate depends on no server crate: it speaks only the public wire
//! protocol. It speaks plain `http://` / `ws://` (the server does not
//! terminate TLS itself); an `https://` URL is refused with a clear error
//! rather than sent in the clear.

mod client;
mod error;
mod live;
mod models;

pub use client::{Auth, ClientBuilder, KalamLinkClient, QueryOptions, token_expiry};
pub use error::LinkError;
pub use live::{LiveEvent, LiveRow, Subscription, SubscriptionOptions};
pub use models::{
    ColumnInfo, ErrorBody, HealthInfo, QueryResponse, QueryResult, TokenPair, UserInfo, as_i64,
};
