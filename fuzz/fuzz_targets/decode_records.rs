//! Arbitrary bytes as one or more v2 record batches.
//!
//! Every batch carries a CRC-32C over its tail, so random mutations almost never get past
//! the header. When the first input byte is odd the harness therefore rewrites the CRC of
//! each batch it can delimit before decoding, which lets the fuzzer reach the record and
//! decompression code; when it is even the bytes (after that byte) are decoded as they are.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

/// Offsets inside a v2 batch: length at 8..12, CRC at 17..21, CRC covers 21..12+length.
fn fix_crcs(buf: &mut [u8]) {
    let mut pos = 0usize;
    while buf.len() >= pos + 21 {
        let len = i32::from_be_bytes([buf[pos + 8], buf[pos + 9], buf[pos + 10], buf[pos + 11]]);
        if len < 9 {
            return;
        }
        let end = pos + 12 + len as usize;
        if end > buf.len() {
            return;
        }
        let crc = crc32c::crc32c(&buf[pos + 21..end]);
        buf[pos + 17..pos + 21].copy_from_slice(&crc.to_be_bytes());
        pos = end;
    }
}

fuzz_target!(|data: &[u8]| {
    common::allow_caught_panics();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 {
        fix_crcs(&mut bytes);
    }
    let _ = floe_kafka::records::decode_batches(bytes.into());
});
