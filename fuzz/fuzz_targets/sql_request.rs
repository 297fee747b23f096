//! A `POST /v1/sql` body and a Flight SQL DoGet ticket, as `floe_server::fuzz::sql_request`
//! takes them (a content-type byte, then the bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::allow_caught_panics();
    floe_server::fuzz::sql_request(data);
});
