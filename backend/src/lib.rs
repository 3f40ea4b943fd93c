//! The `kalamdb-server` binary's library part: configuration, logging and
//! the lifecycle that boots and stops everything.

pub mod config;
pub mod lifecycle;
pub mod logging;
