//! Floe's end-to-end tests, one module per area, built as a single test binary.
//! Run one area with `cargo test -p floe-tests --test e2e <module>::`.

// Tests own each task they spawn by awaiting its handle before they end.
#![allow(clippy::disallowed_methods)]

mod admin_answers;
mod admin_cli;
mod backup;
mod bad_input;
mod consumer_protocol;
mod crash;
mod durability;
mod fuzz;
mod group_behaviours;
mod kafka_clients;
mod lake;
mod lake_backpressure;
mod lake_crash;
mod lake_faults;
mod lake_metadata;
mod lake_s3;
mod limits;
mod metrics;
mod python_client;
mod quickstart;
mod replay;
mod schema_registry;
mod shutdown;
mod spark;
mod sql;
mod sql_limits;
mod topic_configs;
mod typed_tables;
