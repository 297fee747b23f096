//! SQL over topics through Apache DataFusion (ARCHITECTURE §3, `floe-query`).
//!
//! - [`QueryEngine`]: sessions whose catalog lists every topic as a table (the current
//!   Iceberg snapshot together with the tail buffers), `system` tables, time travel
//!   (`topic_at`, `topic_snapshots`, `topic_history`) and the JSON functions of
//!   `datafusion-functions-json`; queries run on their own runtime, bounded in memory
//!   and time.
//! - [`flight`]: Arrow Flight SQL on port 50051.
//! - [`client`]: the Flight SQL client behind `floe sql` and `floe replay`.
//!
//! The broker is seen only through the [`Topics`] trait, so this crate knows nothing of
//! the Kafka wire format.

pub mod answer;
mod catalog;
pub mod client;
mod engine;
mod error;
mod evolve;
pub mod flight;
mod guard;
mod lake_filter;
mod lake_scan;
mod row_groups;
mod source;
mod time_travel;
mod topic_table;

pub use catalog::SYSTEM_SCHEMA;
pub use engine::{
    Answer, Prepared, QueryConfig, QueryEngine, QueryLimits, QueryStats, QueryStream, CATALOG,
};
pub use error::{Error, ErrorKind, Result};
pub use source::{GroupOffset, PartitionInfo, TopicError, TopicView, Topics};

/// The Arrow crates this one builds on, for callers that print or encode answers.
pub use datafusion::arrow;
