//! Integration tests of the server, all in one binary (each extra test
//! binary would link DataFusion again).

mod bad_input;
mod cold_tier;
mod common;
mod conformance;
mod http_api;
mod jobs;
mod layering;
mod live;
mod observability;
mod reliability;
mod restart;
mod schema_evolution;
mod slt;
mod sqlite_oracle;
mod storages;
mod tokens;
mod users;
