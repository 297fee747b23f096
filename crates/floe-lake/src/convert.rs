//! Kafka record batches ⇄ Arrow record batches in the table layout.
//!
//! Kafka → Arrow runs at append time (the tail buffer) and when re-landing from the WAL;
//! Arrow → Kafka runs when a Fetch is answered from the lake tier. Offsets, timestamps,
//! keys, values and headers survive the round trip; producer ids and sequences do not
//! (they only matter for the idempotence of the write that is long done).

use std::sync::Arc;

use arrow_array::builder::{
    Int32Builder, Int64Builder, LargeBinaryBuilder, ListBuilder, StringBuilder, StructBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Fields, SchemaRef};
use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::schema::{COL_HEADERS, COL_KEY, COL_OFFSET, COL_PARTITION, COL_TIMESTAMP, COL_VALUE};
use crate::{Error, Result};

/// Decodes Kafka v2 record batches (any compression) into one Arrow batch of `schema`.
/// Control records (transaction markers) are skipped: they are not data.
///
/// # Errors
/// [`Error::Records`] when the batches do not decode.
pub fn kafka_to_arrow(schema: &SchemaRef, partition: i32, batches: Bytes) -> Result<RecordBatch> {
    let records = floe_kafka::records::decode_records(batches)?;
    records_to_arrow(schema, partition, records.iter().filter(|r| !r.control))
}

/// Builds an Arrow batch from decoded records.
pub fn records_to_arrow<'a>(
    schema: &SchemaRef,
    partition: i32,
    records: impl Iterator<Item = &'a Record> + Clone,
) -> Result<RecordBatch> {
    let header_fields = header_fields(schema)?;
    let element = list_element(schema)?;
    if header_fields.len() != 2 {
        return Err(Error::Encode("headers element is not (key, value)".into()));
    }
    // Every builder is sized to the data. The defaults (1,024 entries and 1 KiB of bytes
    // per binary column) dwarf a produce batch of one small record, which librdkafka
    // sends at low rates with linger.ms=0: the tail then held ~21 KiB per 1 KiB record,
    // and the tail budget and the commit_bytes trigger count that capacity.
    let size = Sizes::of(records.clone());
    let n = size.records;
    let mut partitions = Int32Builder::with_capacity(n);
    let mut offsets = Int64Builder::with_capacity(n);
    let mut timestamps =
        TimestampMicrosecondBuilder::with_capacity(n).with_timezone(iceberg::arrow::UTC_TIME_ZONE);
    let mut keys = LargeBinaryBuilder::with_capacity(n, size.key_bytes);
    let mut values = LargeBinaryBuilder::with_capacity(n, size.value_bytes);
    let entries = StructBuilder::new(
        header_fields,
        vec![
            Box::new(StringBuilder::with_capacity(
                size.headers,
                size.header_key_bytes,
            )),
            Box::new(LargeBinaryBuilder::with_capacity(
                size.headers,
                size.header_value_bytes,
            )),
        ],
    );
    let mut headers = ListBuilder::with_capacity(entries, n).with_field(element);
    for record in records {
        partitions.append_value(partition);
        offsets.append_value(record.offset);
        timestamps.append_value(record.timestamp.saturating_mul(1000));
        keys.append_option(record.key.as_deref());
        values.append_option(record.value.as_deref());
        let entries = headers.values();
        for (key, value) in &record.headers {
            entries
                .field_builder::<StringBuilder>(0)
                .ok_or_else(|| Error::Encode("header key builder".into()))?
                .append_value(key.as_str());
            entries
                .field_builder::<LargeBinaryBuilder>(1)
                .ok_or_else(|| Error::Encode("header value builder".into()))?
                .append_option(value.as_deref());
            entries.append(true);
        }
        headers.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(partitions.finish()),
        Arc::new(offsets.finish()),
        Arc::new(timestamps.finish()),
        Arc::new(keys.finish()),
        Arc::new(values.finish()),
        Arc::new(headers.finish()),
    ];
    RecordBatch::try_new(schema.clone(), columns).map_err(Error::arrow("building a tail batch"))
}

/// Entry counts and byte totals of a run of records, for sizing the builders.
#[derive(Debug, Default)]
struct Sizes {
    records: usize,
    key_bytes: usize,
    value_bytes: usize,
    headers: usize,
    header_key_bytes: usize,
    header_value_bytes: usize,
}

impl Sizes {
    fn of<'a>(records: impl Iterator<Item = &'a Record>) -> Self {
        let mut s = Self::default();
        for r in records {
            s.records += 1;
            s.key_bytes += r.key.as_ref().map_or(0, |k| k.len());
            s.value_bytes += r.value.as_ref().map_or(0, |v| v.len());
            s.headers += r.headers.len();
            for (k, v) in &r.headers {
                s.header_key_bytes += k.len();
                s.header_value_bytes += v.as_ref().map_or(0, |v| v.len());
            }
        }
        s
    }
}

fn list_element(schema: &SchemaRef) -> Result<Arc<arrow_schema::Field>> {
    match schema.field_with_name(COL_HEADERS).map(|f| f.data_type()) {
        Ok(DataType::List(element)) => Ok(element.clone()),
        _ => Err(Error::Encode("schema has no headers list".into())),
    }
}

fn header_fields(schema: &SchemaRef) -> Result<Fields> {
    match list_element(schema)?.data_type() {
        DataType::Struct(fields) => Ok(fields.clone()),
        _ => Err(Error::Encode("headers element is not a struct".into())),
    }
}

/// Re-encodes rows (sorted by offset, one partition) as Kafka v2 record batches of at most
/// `records_per_batch` records each, uncompressed, keeping offsets and timestamps.
/// Each batch covers a run of consecutive rows, so offset gaps (if any) are preserved.
///
/// # Errors
/// [`Error::Encode`] if the rows are not in the table layout.
pub fn arrow_to_kafka(batch: &RecordBatch, records_per_batch: usize) -> Result<Bytes> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| Error::Encode(format!("no column {name}")))
    };
    let offsets = column(COL_OFFSET)?
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| Error::Encode("offset is not int64".into()))?;
    let timestamps = column(COL_TIMESTAMP)?
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or_else(|| Error::Encode("timestamp is not µs".into()))?;
    let keys = column(COL_KEY)?
        .as_binary_opt::<i64>()
        .ok_or_else(|| Error::Encode("key is not binary".into()))?;
    let values = column(COL_VALUE)?
        .as_binary_opt::<i64>()
        .ok_or_else(|| Error::Encode("value is not binary".into()))?;
    let headers = batch
        .column_by_name(COL_HEADERS)
        .and_then(|c| c.as_list_opt::<i32>());

    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    let mut records = Vec::with_capacity(records_per_batch.min(batch.num_rows()));
    for row in 0..batch.num_rows() {
        let mut record_headers = IndexMap::new();
        if let Some(list) = headers.filter(|l| l.is_valid(row)) {
            let entries = list.value(row);
            let entries = entries.as_struct();
            let hk = entries.column(0).as_string::<i32>();
            let hv = entries.column(1).as_binary::<i64>();
            for i in 0..entries.len() {
                let value = hv.is_valid(i).then(|| Bytes::copy_from_slice(hv.value(i)));
                record_headers.insert(StrBytes::from_string(hk.value(i).to_owned()), value);
            }
        }
        records.push(Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: offsets.value(row),
            // The codec starts a new batch whenever offset - sequence changes; producer
            // id -1 makes the sequence meaningless to consumers, so keep it in step.
            sequence: offsets.value(row) as i32,
            timestamp: timestamps.value(row).div_euclid(1000),
            key: keys
                .is_valid(row)
                .then(|| Bytes::copy_from_slice(keys.value(row))),
            value: values
                .is_valid(row)
                .then(|| Bytes::copy_from_slice(values.value(row))),
            headers: record_headers,
            delete_horizon: false,
        });
        if records.len() == records_per_batch {
            RecordBatchEncoder::encode(&mut out, &records, &options)
                .map_err(|e| Error::Encode(e.to_string()))?;
            records.clear();
        }
    }
    if !records.is_empty() {
        RecordBatchEncoder::encode(&mut out, &records, &options)
            .map_err(|e| Error::Encode(e.to_string()))?;
    }
    Ok(out.freeze())
}

/// Offsets of a batch in the table layout: (first, last), or None when empty.
pub fn offset_range(batch: &RecordBatch) -> Option<(i64, i64)> {
    let offsets = batch
        .column_by_name(COL_OFFSET)?
        .as_primitive_opt::<Int64Type>()?;
    if offsets.is_empty() {
        return None;
    }
    Some((offsets.value(0), offsets.value(offsets.len() - 1)))
}

/// The `partition` column's first value (all rows of a tail batch share it).
pub fn partition_of(batch: &RecordBatch) -> Option<i32> {
    let parts = batch
        .column_by_name(COL_PARTITION)?
        .as_primitive_opt::<Int32Type>()?;
    (!parts.is_empty()).then(|| parts.value(0))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::records::RecordBatchDecoder;

    use super::*;
    use crate::schema::arrow_schema;

    fn record(
        offset: i64,
        key: Option<&'static [u8]>,
        headers: &[(&str, Option<&'static [u8]>)],
    ) -> Record {
        Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: 7,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: offset as i32,
            timestamp: 1_700_000_000_000 + offset,
            key: key.map(Bytes::from_static),
            value: Some(Bytes::from(format!("value-{offset}"))),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        StrBytes::from_string((*k).to_owned()),
                        v.map(Bytes::from_static),
                    )
                })
                .collect(),
            delete_horizon: false,
        }
    }

    fn encode(records: &[Record], compression: Compression) -> Bytes {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .expect("encode");
        buf.freeze()
    }

    #[test]
    fn round_trips_every_codec_and_keeps_fields() {
        let schema = arrow_schema().expect("schema");
        let records = vec![
            record(10, Some(b"k1"), &[("h", Some(b"v")), ("empty", None)]),
            record(11, None, &[]),
            record(12, Some(b""), &[("x", Some(b"y"))]),
        ];
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = kafka_to_arrow(&schema, 3, encode(&records, compression)).expect("decode");
            assert_eq!(batch.num_rows(), 3, "{compression:?}");
            assert_eq!(offset_range(&batch), Some((10, 12)));
            assert_eq!(partition_of(&batch), Some(3));
            let mut back = arrow_to_kafka(&batch, 2).expect("encode");
            let sets = RecordBatchDecoder::decode_all(&mut back).expect("decode back");
            assert_eq!(sets.len(), 2, "two batches of at most two records");
            let got: Vec<Record> = sets.into_iter().flat_map(|s| s.records).collect();
            for (want, got) in records.iter().zip(&got) {
                assert_eq!(got.offset, want.offset);
                assert_eq!(got.timestamp, want.timestamp);
                assert_eq!(got.key, want.key);
                assert_eq!(got.value, want.value);
                assert_eq!(got.headers, want.headers);
            }
        }
    }

    #[test]
    fn a_one_record_batch_costs_little_memory() {
        // The tail budget counts Arrow memory; default builder capacities made one small
        // record cost ~20 KiB.
        let schema = arrow_schema().expect("schema");
        let batch = kafka_to_arrow(
            &schema,
            0,
            encode(
                &[record(1, Some(b"k"), &[("h", Some(b"v"))])],
                Compression::None,
            ),
        )
        .expect("decode");
        assert_eq!(batch.num_rows(), 1);
        let bytes = batch.get_array_memory_size();
        assert!(
            bytes < 2048,
            "one small record takes {bytes} bytes of Arrow memory"
        );
    }

    #[test]
    fn control_records_are_skipped() {
        let schema = arrow_schema().expect("schema");
        let mut marker = record(5, Some(b"\0\0\0\0"), &[]);
        marker.control = true;
        marker.transactional = true;
        let batch =
            kafka_to_arrow(&schema, 0, encode(&[marker], Compression::None)).expect("decode");
        assert_eq!(batch.num_rows(), 0);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let schema = arrow_schema().expect("schema");
        assert!(kafka_to_arrow(&schema, 0, Bytes::from_static(&[0u8; 70])).is_err());
    }
}
