//! Arbitrary bytes as a request frame (the bytes after the 4-byte size prefix).
//! `decode_request` must return `Ok` or `Err`: never panic past its guard, never abort.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::allow_caught_panics();
    floe_kafka::fuzz::request(data);
});
