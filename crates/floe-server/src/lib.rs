//! The Floe broker: everything between a TCP socket and the storage crates.
//!
//! - [`server`]: [`run`] / [`RunningServer`] start the Kafka listener and background tasks
//!   and stop them cleanly.
//! - [`config`]: the configuration sections the binary fills in.
//! - [`broker`]: topics, partitions, metadata store, producer ids.
//! - `handlers`: one module per group of Kafka APIs.
//! - [`coordinator`]: the consumer-group state machine.
//! - [`metrics`]: the Prometheus series served on `GET /metrics`.
#![deny(missing_docs)]

pub mod assignor;
pub mod authz;
pub mod broker;
pub mod broker_configs;
pub mod committer;
pub mod config;
mod connection;
pub mod consumer_groups;
pub mod coordinator;
pub mod data_dir;
pub mod error;
pub mod fuzz;
pub mod group_configs;
mod handlers;
mod http;
pub mod lake;
pub mod limits;
pub mod metrics;
pub mod partition;
mod schemas;
pub mod server;
pub mod sql;
mod tasks;
pub mod telemetry;
mod tiered;
pub mod topic;
mod typed_guard;

pub use config::ServerConfig;
pub use error::{Error, Result};
pub use server::{run, RunningServer};
