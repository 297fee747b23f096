//! Floe's schema registry: the Confluent Schema Registry REST API, stored in the
//! metadata store (SQLite or Postgres, `floe-meta`), so it survives restarts and needs no
//! `_schemas` topic.
//!
//! # Map
//!
//! - [`http`]: the REST routes (decode, one [`Registry`] call, encode) and [`serve`].
//! - [`Registry`] (`registry.rs`): register, look up, delete, compatibility and mode
//!   settings, with Confluent's semantics.
//! - [`compat::Level`]: which earlier versions a new schema is checked against, which way.
//! - `schema.rs`: the three formats behind one dispatch; `avro.rs` (the `apache-avro`
//!   crate's resolution rules), `protobuf.rs` (`.proto` text via `protox-parse`, or a
//!   base64 descriptor), `json_schema.rs`: each format's parsing and compatibility rules.
//! - [`Error`]: every failure with its Confluent error code and HTTP status.
#![deny(missing_docs)]

mod avro;
pub mod compat;
mod error;
pub mod http;
mod json_schema;
pub mod protobuf;
mod registry;
pub mod schema;

pub use error::{Error, Result};
pub use http::serve;
pub use registry::{Guard, Mode, Registered, Registry, SchemaRequest, VersionSpec};
