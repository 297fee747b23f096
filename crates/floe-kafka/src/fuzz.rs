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

/// Offsets inside a v2 batch: length at 8..12, CRC at 17..21, CRC covers 21..12+length.
fn fix_crcs(buf: &mut [u8]) {
    let mut pos = 0usize;
    while buf.len() >= pos + 21 {
        let len = i32::from_be_bytes([buf[pos + 8], buf[pos + 9], buf[pos + 10], buf[pos + 11]]);
        let Ok(len) = usize::try_from(len) else {
            return;
        };
        if len < 9 {
            return;
        }
        let end = pos + 12 + len;
        if end > buf.len() {
            return;
        }
        let crc = crc32c::crc32c(&buf[pos + 21..end]);
        buf[pos + 17..pos + 21].copy_from_slice(&crc.to_be_bytes());
        pos = end;
    }
}
