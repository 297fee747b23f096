//! Helpers shared by the bench binaries `floe-loadgen` and `floe-lakebench`: argument
//! parsers, JSON output, process CPU time, topic set-up and message payloads (Avro events among them).

pub mod avro;
pub mod payload;
pub mod topic;
pub mod util;
