//! Kafka wire protocol for Floe: framing over TCP and typed requests and responses.
//!
//! The codecs themselves come from the [`kafka_protocol`] crate; this crate adds what a
//! broker needs around them and nothing about storage:
//!
//! - [`frame`]: length-prefixed frames read from a socket under a size cap, an idle
//!   timeout and an arrival timeout, into buffers that grow as bytes arrive.
//! - [`request`]: a frame decoded into a header and a typed [`RequestKind`], with the
//!   guards that keep malformed input from reaching codec code that could panic.
//! - [`response`]: a typed [`ResponseKind`] encoded with the right header version.
//! - [`versions`]: the API version ranges this broker implements (advertised by ApiVersions).
//! - [`records`]: decoding record batches where the broker must look inside one
//!   (the record check on produce, the lake's tail, ListOffsets by timestamp).
//! - [`decompression`]: the per-request and broker-wide memory budgets that
//!   decompressing produced records draws on.
#![deny(missing_docs)]

pub mod compression;
pub mod decompression;
pub mod error;
pub mod frame;
pub mod fuzz;
pub mod records;
pub mod request;
pub mod response;
pub mod versions;

pub use error::{Error, Result};
pub use kafka_protocol;
pub use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
pub use kafka_protocol::ResponseError;
