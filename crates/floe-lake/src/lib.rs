//! The lake: Kafka records as Arrow, landed as Parquet in Iceberg tables, and read back
//! for Kafka consumers once the local log has let them go.
//!
//! This crate knows Iceberg, Parquet and object storage; it knows nothing about sockets
//! or the broker. The broker hands it decoded tails and durable offsets and asks it to
//! land them ([`LakeTable::land`]) or to read old offsets back ([`reader`]).

pub mod catalog;
pub mod convert;
mod error;
pub mod evolve;
pub mod lake_file;
pub mod maintain;
pub mod pointer;
pub mod reader;
pub mod schema;
pub mod snapshots;
pub mod storage;
pub mod table;
pub mod tail;
pub mod typed;

pub use catalog::{open_catalog, CatalogKind, LakeOptions, WarehouseStore};
pub use error::{Error, Result};
pub use maintain::{Housekeeping, HousekeepingReport};
pub use pointer::MetadataPointer;
pub use reader::ReadAhead;
pub use schema::TimePartitioning;
pub use table::{FileCounts, LakeTable, RoundStats};
pub use tail::{Pressure, TailBatch, TailBudget, TailBuffer};
