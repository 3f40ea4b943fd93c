//! Live queries over WebSocket (`/v1/ws`): subscriptions and change fan-out.
//!
//! This crate is the home of the `LiveQueryManager`; the realtime work fills
//! it in. It sits beside kalamdb-auth above kalamdb-core in the layering.
