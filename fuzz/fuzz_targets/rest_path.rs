//! A REST catalog namespace path segment, as `floe_server::fuzz::rest_path` takes it.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::allow_caught_panics();
    floe_server::fuzz::rest_path(data);
});
