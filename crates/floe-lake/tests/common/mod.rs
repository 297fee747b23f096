//! Shared helpers of the floe-lake integration tests: a SQLite catalog with a local
//! warehouse, Kafka record batches decoded into tail batches, and row counts.
#![allow(dead_code)]

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use floe_lake::convert::kafka_to_arrow;
use floe_lake::schema::arrow_schema;
use floe_lake::{CatalogKind, LakeOptions, TailBatch};
use futures::TryStreamExt;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

pub const DAY_MS: i64 = 86_400_000;

/// The id of the topic the tables hold.
pub const TOPIC_ID: &str = "0b9c6f3e-8d0e-4c56-9f0f-3a1d2c4b5e6f";

pub fn options(dir: &std::path::Path) -> LakeOptions {
    LakeOptions {
        catalog: CatalogKind::Sql {
            uri: format!("sqlite://{}/catalog.db?mode=rwc", dir.display()),
        },
        warehouse: format!("file:{}/warehouse", dir.display()),
        namespace: "kafka".into(),
        storage: HashMap::new(),
        compression: "zstd".into(),
        target_file_size: 128 << 20,
        write_threads: 1,
    }
}

/// Records `first..first+n`, the second half one day later than the first (two partitions
/// of the table).
pub fn batch(first: i64, n: i64) -> TailBatch {
    batch_with(
        first,
        n,
        |offset| 1_700_000_000_000 + if offset % 2 == 0 { 0 } else { DAY_MS } + offset,
        |offset| format!("v{offset}").into_bytes(),
    )
}

/// Records `first..first+n` with the given timestamps and values.
pub fn batch_with(
    first: i64,
    n: i64,
    timestamp: impl Fn(i64) -> i64,
    value: impl Fn(i64) -> Vec<u8>,
) -> TailBatch {
    batch_in(0, first, n, timestamp, value)
}

/// [`batch_with`] for another partition.
pub fn batch_in(
    partition: i32,
    first: i64,
    n: i64,
    timestamp: impl Fn(i64) -> i64,
    value: impl Fn(i64) -> Vec<u8>,
) -> TailBatch {
    let records: Vec<Record> = (first..first + n)
        .map(|offset| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: -1,
            timestamp: timestamp(offset),
            key: Some(Bytes::from(format!("k{offset}"))),
            value: Some(Bytes::from(value(offset))),
            headers: [(
                kafka_protocol::protocol::StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"x")),
            )]
            .into_iter()
            .collect(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::Zstd,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &opts).expect("encode");
    let rows =
        kafka_to_arrow(&arrow_schema().expect("schema"), partition, buf.freeze()).expect("rows");
    TailBatch {
        first,
        end: first + n,
        rows,
    }
}

pub async fn row_count(table: &iceberg::table::Table) -> usize {
    let scan = table.scan().select_all().build().expect("scan");
    let batches: Vec<_> = scan
        .to_arrow()
        .await
        .expect("stream")
        .try_collect()
        .await
        .expect("rows");
    batches.iter().map(|b| b.num_rows()).sum()
}

/// The offsets of the records in a lake-tier Fetch answer, in order.
pub fn fetched_offsets(mut bytes: Bytes) -> Vec<i64> {
    RecordBatchDecoder::decode_all(&mut bytes)
        .expect("decode")
        .into_iter()
        .flat_map(|s| s.records)
        .map(|r| r.offset)
        .collect()
}
