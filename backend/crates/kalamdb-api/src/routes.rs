pub mod auth;
pub mod health;
pub mod sql;
pub mod ws;
