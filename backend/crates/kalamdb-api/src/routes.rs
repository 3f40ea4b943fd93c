pub mod health;
pub mod sql;
