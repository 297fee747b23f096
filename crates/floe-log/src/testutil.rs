//! Test helpers: builds valid Kafka v2 record batches with real, varint-encoded
//! uncompressed records and a correct CRC-32C.

/// What to put in a test batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchSpec {
    /// Number of records.
    pub records: i32,
    /// Bytes of value per record.
    pub value_len: usize,
    /// Timestamp of record 0; record i gets `base_timestamp + i`.
    pub base_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl BatchSpec {
    /// A non-idempotent batch of `records` small records.
    pub fn plain(records: i32) -> Self {
        BatchSpec {
            records,
            value_len: 8,
            base_timestamp: 1_000,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
        }
    }

    /// An idempotent batch.
    pub fn idempotent(records: i32, producer_id: i64, epoch: i16, base_sequence: i32) -> Self {
        BatchSpec {
            producer_id,
            producer_epoch: epoch,
            base_sequence,
            ..Self::plain(records)
        }
    }
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    // Kafka varints are zig-zag encoded base-128.
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

/// Encodes a full batch with base offset 0.
pub(crate) fn build_batch(spec: &BatchSpec) -> Vec<u8> {
    let mut records = Vec::new();
    for i in 0..spec.records {
        let mut body = Vec::new();
        body.push(0u8); // record attributes
        put_varint(&mut body, i64::from(i)); // timestampDelta
        put_varint(&mut body, i64::from(i)); // offsetDelta
        put_varint(&mut body, -1); // null key
        put_varint(&mut body, spec.value_len as i64);
        body.extend((0..spec.value_len).map(|j| (i as usize + j) as u8));
        put_varint(&mut body, 0); // no headers
        put_varint(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
    }
    let mut b = Vec::with_capacity(61 + records.len());
    b.extend_from_slice(&0i64.to_be_bytes()); // baseOffset
    let batch_length = (61 - 12 + records.len()) as i32;
    b.extend_from_slice(&batch_length.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // partitionLeaderEpoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc placeholder
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&(spec.records - 1).to_be_bytes()); // lastOffsetDelta
    b.extend_from_slice(&spec.base_timestamp.to_be_bytes());
    let max_ts = spec.base_timestamp + i64::from(spec.records - 1);
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&spec.producer_id.to_be_bytes());
    b.extend_from_slice(&spec.producer_epoch.to_be_bytes());
    b.extend_from_slice(&spec.base_sequence.to_be_bytes());
    b.extend_from_slice(&spec.records.to_be_bytes());
    b.extend_from_slice(&records);
    crate::batch::seal(&mut b);
    b
}

/// Splits a buffer of back-to-back batches into `(base_offset, records_count, bytes)`.
pub(crate) fn split_batches(buf: &[u8]) -> Vec<(i64, i32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let h = crate::batch::validate_batch(
            &buf[pos..pos
                + crate::batch::BatchHeader::parse(&buf[pos..])
                    .expect("header")
                    .size()],
            pos,
        )
        .expect("valid batch in read result");
        out.push((
            h.base_offset,
            h.records_count,
            buf[pos..pos + h.size()].to_vec(),
        ));
        pos += h.size();
    }
    out
}
