//! Arbitrary bytes as one or more v2 record batches, as `floe_kafka::fuzz::records` takes
//! them (a mode byte, then the batches; an odd mode rewrites the CRCs first).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::allow_caught_panics();
    floe_kafka::fuzz::records(data);
});
