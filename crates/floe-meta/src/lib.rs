//! Floe's metadata store: topics, partitions, topic configs, committed
//! consumer-group offsets and producer-id allocation, in one SQL database.
//!
//! # Map
//!
//! - [`MetaStore`]: the handle (cheap to clone). [`MetaStore::connect`] takes a
//!   URL, opens a pool and runs the schema migrations for that backend.
//! - [`TopicRecord`], [`CommittedOffset`]: the rows the server reads and writes.
//! - [`StoredSchema`], [`SubjectVersion`], [`RegistrySetting`]: the schema registry's
//!   rows (`floe-registry` holds its rules; this crate only stores them).
//! - [`Backend`]: SQLite (default, one file) or PostgreSQL (shared between brokers).
//! - [`MetaStoreOptions`]: pool size and deadlines.
//! - [`Error`] / [`Result`]: the single error type; every database error names
//!   the operation, connect-time errors name the URL with the password removed
//!   ([`redact_url`]).
//!
//! # Design
//!
//! All queries go through sqlx's `Any` driver (`AnyPool`), so one set of SQL
//! serves both backends: `$n` placeholders, `INSERT .. ON CONFLICT .. DO
//! UPDATE` upserts, `UPDATE .. RETURNING`, integers bound and decoded as `i64`
//! only. Each backend has its own migration directory
//! (`sql/migrations/{sqlite,postgres}`, embedded at compile time) because the
//! DDL differs (`INTEGER` vs `BIGINT`); they must describe the same tables.
//! Topic configs are stored as a JSON text object, topic ids as hyphenated
//! UUID text. Result ordering is done in Rust (byte order) rather than with
//! `ORDER BY`, because Postgres collations would otherwise sort differently
//! from SQLite.
//!
//! SQLite runs in WAL mode with a busy timeout (set per connection after
//! connect, since the `Any` driver only passes the URL through) and the file
//! is created if missing. Producer ids are allocated with a single
//! `UPDATE .. RETURNING` on a one-row table, which is atomic on both backends,
//! including several brokers sharing one Postgres database.
//!
//! Deadlines: acquiring a pooled connection is bounded by
//! [`MetaStoreOptions::acquire_timeout`], and every public operation as a whole
//! by [`MetaStoreOptions::op_timeout`]; both surface as [`Error::Timeout`].
//!
//! The store does no Kafka-level validation (e.g. that partition counts only
//! grow); that is the server's job.
#![deny(missing_docs)]

mod error;
mod registry;
mod store;
mod url;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub use error::{BoxError, Error, Result};
pub use registry::{RegistrySetting, StoredSchema, SubjectVersion};
pub use store::MetaStore;
pub use url::redact_url;

/// Which database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A local SQLite file (`sqlite://...`).
    Sqlite,
    /// A PostgreSQL database (`postgres://...`).
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// Pool size and deadlines for [`MetaStore::connect_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaStoreOptions {
    /// Upper bound on waiting for (or opening) a pooled connection.
    pub acquire_timeout: Duration,
    /// Upper bound on each public operation as a whole (including connect + migrations).
    pub op_timeout: Duration,
    /// Pool size; `None` picks 4 for SQLite and 8 for Postgres.
    pub max_connections: Option<u32>,
    /// SQLite only: how long a writer waits for the database lock.
    pub sqlite_busy_timeout: Duration,
}

impl Default for MetaStoreOptions {
    fn default() -> Self {
        MetaStoreOptions {
            acquire_timeout: Duration::from_secs(10),
            op_timeout: Duration::from_secs(30),
            max_connections: None,
            sqlite_busy_timeout: Duration::from_secs(10),
        }
    }
}

/// A topic as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    /// Topic name (primary key).
    pub name: String,
    /// Kafka topic id.
    pub topic_id: uuid::Uuid,
    /// Number of partitions.
    pub partitions: i32,
    /// Topic-level config overrides (`retention.ms`, ...).
    pub configs: BTreeMap<String, String>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

impl TopicRecord {
    /// A new topic with a random id, created now.
    pub fn new(
        name: impl Into<String>,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Self {
        TopicRecord {
            name: name.into(),
            topic_id: uuid::Uuid::new_v4(),
            partitions,
            configs,
            created_at_ms: now_ms(),
        }
    }
}

/// A committed consumer-group offset for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Committed offset.
    pub offset: i64,
    /// Leader epoch sent with the commit (-1 if unknown).
    pub leader_epoch: i32,
    /// Client metadata string.
    pub metadata: Option<String>,
    /// Commit time, milliseconds since the Unix epoch.
    pub commit_timestamp_ms: i64,
}

pub use floe_common::now_ms;
