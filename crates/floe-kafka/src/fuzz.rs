//! The inputs the fuzz targets feed the decoders, one function per target, shared by
//! `fuzz/` (cargo-fuzz, libFuzzer) and the time-boxed run of the test suite
//! (`tests/tests/fuzz.rs`), so both exercise exactly the same code.

/// Arbitrary bytes as a request frame (after its 4-byte size prefix).
pub fn request(data: &[u8]) {
    let _ = crate::request::decode_request(bytes::Bytes::copy_from_slice(data));
}

/// Arbitrary bytes as one or more v2 record batches: the first byte is a mode, the rest
/// the batches. Every batch carries a CRC-32C over its tail, so random mutations almost
/// never get past the header; with an odd mode the CRC of each batch that can be
/// delimited is rewritten first, which lets mutations reach the records and the
/// decompressors.
pub fn records(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 {
        fix_crcs(&mut bytes);
    }
    let _ = crate::records::decode_batches(bytes.into());
}

/// Rewrites the CRC of each batch whose length field delimits it inside `buf`.
fn fix_crcs(buf: &mut [u8]) {
    use floe_common::batch::{compute_crc, pos, HEADER_SIZE, LOG_OVERHEAD};
    let mut start = 0usize;
    while buf.len() >= start + HEADER_SIZE {
        let at = start + pos::BATCH_LENGTH;
        let len = i32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        let Ok(len) = usize::try_from(len) else {
            return;
        };
        let end = start + LOG_OVERHEAD + len;
        if len < HEADER_SIZE - LOG_OVERHEAD || end > buf.len() {
            return;
        }
        let crc = compute_crc(&buf[start..end]);
        buf[start + pos::CRC..start + pos::ATTRIBUTES].copy_from_slice(&crc.to_be_bytes());
        start = end;
    }
}
