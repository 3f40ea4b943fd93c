//! Live queries: subscriptions and the fan-out of committed changes.
//!
//! A client subscribes with a SELECT ([`LiveQuery::compile`] checks and
//! compiles it once); the [`LiveQueryManager`] registers it at the write
//! funnel's commit point and, as the funnel's change sink, hands each
//! subscription exactly the committed changes it can see, classified by its
//! WHERE (rows entering arrive as inserts, rows leaving as deletes), in
//! commit order, through a bounded queue. It sits beside kalamdb-auth above
//! kalamdb-core in the layering.

pub mod connection;
pub mod error;
pub mod manager;
pub mod query;
pub mod queue;

pub use connection::{Authenticate, Authenticated, ConnectionConfig, Frame, Gone, Outgoing, serve};
pub use error::LiveError;
pub use manager::{Delivery, LiveQueryManager, Owner, Receiver, Subscription};
pub use query::{ChangeKind, Handover, InitialRows, LiveChange, LiveQuery, LiveRow};

#[cfg(test)]
mod tests;
