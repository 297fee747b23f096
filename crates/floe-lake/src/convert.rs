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
use bytes::{BufMut, Bytes, BytesMut};
use floe_common::batch::{
    self as kafka_batch, BatchHeader, ATTR_LOG_APPEND_TIME, HEADER_SIZE, MAGIC_V2,
};
use floe_kafka::records::Batch;
pub use floe_kafka::records::RecordTotals;

use crate::schema::{COL_HEADERS, COL_KEY, COL_OFFSET, COL_PARTITION, COL_TIMESTAMP, COL_VALUE};
use crate::{Error, Result};

/// Decodes Kafka v2 record batches (any compression) into one Arrow batch of `schema`.
/// Control records (transaction markers) are skipped: they are not data. Headers keep
/// their order and repeated keys; a LogAppendTime batch's rows carry the broker's time.
///
/// # Errors
/// [`Error::Records`] when the batches do not decode.
pub fn kafka_to_arrow(schema: &SchemaRef, partition: i32, batches: Bytes) -> Result<RecordBatch> {
    batches_to_arrow(
        schema,
        partition,
        &floe_kafka::records::decode_batches(batches)?,
    )
}

/// [`kafka_to_arrow`] for batches already decoded.
///
/// # Errors
/// [`Error::Encode`] when `schema` is not the table layout.
pub fn batches_to_arrow(
    schema: &SchemaRef,
    partition: i32,
    batches: &[Batch],
) -> Result<RecordBatch> {
    let data = || batches.iter().filter(|b| !b.is_control());
    let mut totals = RecordTotals::default();
    for b in data() {
        totals += b.totals();
    }
    let mut rows = RowBuilder::new(schema, partition, totals)?;
    for r in data().flat_map(Batch::records) {
        rows.append(r.offset, r.timestamp, r.key, r.value, r.headers())?;
    }
    rows.finish()
}

/// Builds one Arrow batch in the table layout, a record at a time.
pub struct RowBuilder {
    schema: SchemaRef,
    partition: i32,
    partitions: Int32Builder,
    offsets: Int64Builder,
    timestamps: TimestampMicrosecondBuilder,
    keys: LargeBinaryBuilder,
    values: LargeBinaryBuilder,
    headers: ListBuilder<StructBuilder>,
}

impl RowBuilder {
    /// A builder for rows of `partition`, its buffers sized for `size` (zero when unknown:
    /// they then grow as rows come).
    ///
    /// # Errors
    /// [`Error::Encode`] when `schema` is not the table layout.
    pub fn new(schema: &SchemaRef, partition: i32, size: RecordTotals) -> Result<Self> {
        let header_fields = header_fields(schema)?;
        let element = list_element(schema)?;
        if header_fields.len() != 2 {
            return Err(Error::Encode("headers element is not (key, value)".into()));
        }
        // Every builder is sized to the data. The defaults (1,024 entries and 1 KiB of
        // bytes per binary column) dwarf a produce batch of one small record, which
        // librdkafka sends at low rates with linger.ms=0: the tail then held ~21 KiB per
        // 1 KiB record, and the tail budget and the commit_bytes trigger count that
        // capacity.
        let n = size.records;
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
        Ok(Self {
            schema: schema.clone(),
            partition,
            partitions: Int32Builder::with_capacity(n),
            offsets: Int64Builder::with_capacity(n),
            timestamps: TimestampMicrosecondBuilder::with_capacity(n)
                .with_timezone(iceberg::arrow::UTC_TIME_ZONE),
            keys: LargeBinaryBuilder::with_capacity(n, size.key_bytes),
            values: LargeBinaryBuilder::with_capacity(n, size.value_bytes),
            headers: ListBuilder::with_capacity(entries, n).with_field(element),
        })
    }

    /// Adds one record; `timestamp_ms` in milliseconds since the epoch, as Kafka has it.
    ///
    /// # Errors
    /// [`Error::Encode`] if the header builders are not the table layout's.
    pub fn append<'h>(
        &mut self,
        offset: i64,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: impl IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
    ) -> Result<()> {
        self.partitions.append_value(self.partition);
        self.offsets.append_value(offset);
        self.timestamps
            .append_value(timestamp_ms.saturating_mul(1000));
        self.keys.append_option(key);
        self.values.append_option(value);
        let entries = self.headers.values();
        for (key, value) in headers {
            entries
                .field_builder::<StringBuilder>(0)
                .ok_or_else(|| Error::Encode("header key builder".into()))?
                .append_value(key);
            entries
                .field_builder::<LargeBinaryBuilder>(1)
                .ok_or_else(|| Error::Encode("header value builder".into()))?
                .append_option(value);
            entries.append(true);
        }
        self.headers.append(true);
        Ok(())
    }

    /// The batch.
    ///
    /// # Errors
    /// [`Error::Arrow`] if the columns do not make a batch of the schema.
    pub fn finish(mut self) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.partitions.finish()),
            Arc::new(self.offsets.finish()),
            Arc::new(self.timestamps.finish()),
            Arc::new(self.keys.finish()),
            Arc::new(self.values.finish()),
            Arc::new(self.headers.finish()),
        ];
        RecordBatch::try_new(self.schema, columns).map_err(Error::arrow("building a tail batch"))
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

/// Encodes rows in the table layout as uncompressed Kafka v2 record batches of at most
/// `records_per_batch` records, with their original offsets, timestamps, keys, values and
/// headers, as CreateTime batches. `key`, `value` and header values may be `Binary`,
/// `LargeBinary` or `BinaryView` (the tail buffers hold the second, the lake-tier reader
/// decodes the third).
///
/// Written straight from the Arrow buffers: each byte is copied once, and a record costs
/// no allocation (kafka-protocol's encoder wanted an owned `Record` per row: two copies
/// of every key and value, and a header map).
///
/// # Errors
/// [`Error::Encode`] when a column is missing or of another type.
pub fn arrow_to_kafka(batch: &RecordBatch, records_per_batch: usize) -> Result<Bytes> {
    let mut out = BytesMut::new();
    encode_kafka(&mut out, batch, records_per_batch, false)?;
    Ok(out.freeze())
}

/// [`arrow_to_kafka`] appending to `out`. With `log_append_time` (a topic whose
/// `message.timestamp.type` is LogAppendTime) the batches carry that timestamp type, and
/// a batch also ends where the timestamp changes: a client gives every record of a
/// LogAppendTime batch the batch's max timestamp, and the rows of one produced batch
/// share the broker's time.
///
/// # Errors
/// As [`arrow_to_kafka`].
pub fn encode_kafka(
    out: &mut BytesMut,
    batch: &RecordBatch,
    records_per_batch: usize,
    log_append_time: bool,
) -> Result<()> {
    let rows = Rows::of(batch)?;
    out.reserve(rows.payload_bytes(0..batch.num_rows()) + 64);
    let per_batch = records_per_batch.max(1);
    let mut start = 0;
    while start < batch.num_rows() {
        let mut end = (start + per_batch).min(batch.num_rows());
        if log_append_time {
            let ms = |i: usize| rows.timestamps.value(i).div_euclid(1000);
            end = (start + 1..end)
                .find(|&i| ms(i) != ms(start))
                .unwrap_or(end);
        }
        rows.encode_batch(out, start..end, log_append_time);
        start = end;
    }
    Ok(())
}

/// A binary or string column of any offset width, or a view.
#[derive(Clone, Copy)]
enum Bin<'a> {
    Small(&'a arrow_array::BinaryArray),
    Large(&'a arrow_array::LargeBinaryArray),
    View(&'a arrow_array::BinaryViewArray),
    Str(&'a arrow_array::StringArray),
    LargeStr(&'a arrow_array::LargeStringArray),
    StrView(&'a arrow_array::StringViewArray),
}

impl<'a> Bin<'a> {
    fn of(array: &'a dyn Array, name: &str) -> Result<Self> {
        Ok(match array.data_type() {
            DataType::Binary => Self::Small(array.as_binary::<i32>()),
            DataType::LargeBinary => Self::Large(array.as_binary::<i64>()),
            DataType::BinaryView => Self::View(array.as_binary_view()),
            DataType::Utf8 => Self::Str(array.as_string::<i32>()),
            DataType::LargeUtf8 => Self::LargeStr(array.as_string::<i64>()),
            DataType::Utf8View => Self::StrView(array.as_string_view()),
            other => return Err(Error::Encode(format!("{name} is {other}, not binary"))),
        })
    }

    /// The bytes of row `i`, None when null.
    fn get(self, i: usize) -> Option<&'a [u8]> {
        macro_rules! value {
            ($a:expr, $v:expr) => {
                if $a.is_valid(i) {
                    Some($v)
                } else {
                    None
                }
            };
        }
        match self {
            Self::Small(a) => value!(a, a.value(i)),
            Self::Large(a) => value!(a, a.value(i)),
            Self::View(a) => value!(a, a.value(i)),
            Self::Str(a) => value!(a, a.value(i).as_bytes()),
            Self::LargeStr(a) => value!(a, a.value(i).as_bytes()),
            Self::StrView(a) => value!(a, a.value(i).as_bytes()),
        }
    }
}

/// The columns a Kafka record is made of.
pub(crate) struct Rows<'a> {
    offsets: &'a arrow_array::Int64Array,
    timestamps: &'a arrow_array::TimestampMicrosecondArray,
    keys: Bin<'a>,
    values: Bin<'a>,
    /// Each row's headers: list offsets into `header_keys` / `header_values`.
    headers: Option<(&'a arrow_array::ListArray, Bin<'a>, Bin<'a>)>,
}

/// Bytes of Kafka's zigzag varint for `v`.
fn varint_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    (64 - (z | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(out: &mut BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    out.put_u8(z as u8);
}

/// Length prefix and bytes of a nullable field (-1 for null).
fn field_len(v: Option<&[u8]>) -> usize {
    v.map_or(varint_len(-1), |b| varint_len(b.len() as i64) + b.len())
}

fn put_field(out: &mut BytesMut, v: Option<&[u8]>) {
    match v {
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.put_slice(b);
        }
        None => put_varint(out, -1),
    }
}

impl<'a> Rows<'a> {
    pub(crate) fn of(batch: &'a RecordBatch) -> Result<Self> {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| Error::Encode(format!("no column {name}")))
        };
        let headers = match batch.column_by_name(COL_HEADERS) {
            None => None,
            Some(c) => {
                let list = c
                    .as_list_opt::<i32>()
                    .ok_or_else(|| Error::Encode("headers is not a list".into()))?;
                let entries = list
                    .values()
                    .as_struct_opt()
                    .filter(|s| s.num_columns() == 2)
                    .ok_or_else(|| Error::Encode("headers are not key/value pairs".into()))?;
                Some((
                    list,
                    Bin::of(entries.column(0).as_ref(), "header key")?,
                    Bin::of(entries.column(1).as_ref(), "header value")?,
                ))
            }
        };
        Ok(Self {
            offsets: column(COL_OFFSET)?
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| Error::Encode("offset is not int64".into()))?,
            timestamps: column(COL_TIMESTAMP)?
                .as_primitive_opt::<TimestampMicrosecondType>()
                .ok_or_else(|| Error::Encode("timestamp is not µs".into()))?,
            keys: Bin::of(column(COL_KEY)?.as_ref(), COL_KEY)?,
            values: Bin::of(column(COL_VALUE)?.as_ref(), COL_VALUE)?,
            headers,
        })
    }

    /// Header entries of `row`, as a range into the entry columns.
    fn header_range(&self, row: usize) -> std::ops::Range<usize> {
        match self.headers {
            Some((list, _, _)) if list.is_valid(row) => {
                let o = list.value_offsets();
                o[row] as usize..o[row + 1] as usize
            }
            _ => 0..0,
        }
    }

    /// Bytes of the key and value of `row`.
    pub(crate) fn payload(&self, row: usize) -> usize {
        self.keys.get(row).map_or(0, <[u8]>::len) + self.values.get(row).map_or(0, <[u8]>::len)
    }

    /// About the encoded size of `rows`.
    fn payload_bytes(&self, rows: std::ops::Range<usize>) -> usize {
        rows.map(|i| self.payload(i) + 24).sum::<usize>() + HEADER_SIZE
    }

    /// The encoded record body of `row` (everything after its length), given the batch's
    /// base offset and timestamp; `write` false only measures it.
    fn record(&self, out: &mut BytesMut, row: usize, base: (i64, i64), write: bool) -> usize {
        let ts_delta = self.timestamps.value(row).div_euclid(1000) - base.1;
        let offset_delta = self.offsets.value(row) - base.0;
        let (key, value) = (self.keys.get(row), self.values.get(row));
        let headers = self.header_range(row);
        let mut len = 1
            + varint_len(ts_delta)
            + varint_len(offset_delta)
            + field_len(key)
            + field_len(value)
            + varint_len(headers.len() as i64);
        let (hk, hv) = match self.headers {
            Some((_, k, v)) => (Some(k), Some(v)),
            None => (None, None),
        };
        for h in headers.clone() {
            let k = hk.and_then(|k| k.get(h)).unwrap_or_default();
            len += varint_len(k.len() as i64) + k.len() + field_len(hv.and_then(|v| v.get(h)));
        }
        if write {
            out.put_u8(0);
            put_varint(out, ts_delta);
            put_varint(out, offset_delta);
            put_field(out, key);
            put_field(out, value);
            put_varint(out, headers.len() as i64);
            for h in headers {
                put_field(out, Some(hk.and_then(|k| k.get(h)).unwrap_or_default()));
                put_field(out, hv.and_then(|v| v.get(h)));
            }
        }
        len
    }

    /// One v2 record batch of `rows` (at least one), appended to `out`.
    fn encode_batch(
        &self,
        out: &mut BytesMut,
        rows: std::ops::Range<usize>,
        log_append_time: bool,
    ) {
        let start = out.len();
        let base_offset = self.offsets.value(rows.start);
        let last_offset = self.offsets.value(rows.end - 1);
        let ms = |i: usize| self.timestamps.value(i).div_euclid(1000);
        let base_ts = ms(rows.start);
        let max_ts = rows.clone().map(ms).max().unwrap_or(base_ts);
        let header = BatchHeader {
            base_offset,
            batch_length: 0, // set by `seal`
            partition_leader_epoch: 0,
            magic: MAGIC_V2,
            crc: 0, // set by `seal`
            // No compression, not transactional.
            attributes: if log_append_time {
                ATTR_LOG_APPEND_TIME
            } else {
                0
            },
            // Offsets without a row (control records, undecodable batches) leave gaps,
            // as compaction does in Kafka: the delta spans them, the count does not.
            last_offset_delta: i32::try_from(last_offset - base_offset).unwrap_or(i32::MAX),
            base_timestamp: base_ts,
            max_timestamp: max_ts,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count: i32::try_from(rows.len()).unwrap_or(i32::MAX),
        };
        out.put_bytes(0, HEADER_SIZE);
        header.write_into(&mut out[start..]);
        let base = (base_offset, base_ts);
        for row in rows {
            let len = self.record(out, row, base, false);
            put_varint(out, len as i64);
            self.record(out, row, base, true);
        }
        kafka_batch::seal(&mut out[start..]);
    }
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
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

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

    /// The lake-tier reader decodes `key` and `value` as views; the bytes on the wire do
    /// not depend on it. Each batch's CRC is checked by the decoder above.
    #[test]
    fn views_encode_like_large_binary() {
        let schema = arrow_schema().expect("schema");
        let records = vec![
            record(
                7,
                Some(b"a key longer than twelve bytes"),
                &[("h", Some(b"v"))],
            ),
            record(9, None, &[]),
        ];
        let batch =
            kafka_to_arrow(&schema, 0, encode(&records, Compression::None)).expect("decode");
        let columns = batch
            .columns()
            .iter()
            .map(|c| -> ArrayRef {
                match c.data_type() {
                    DataType::LargeBinary => {
                        Arc::new(arrow_array::BinaryViewArray::from(c.as_binary::<i64>()))
                    }
                    _ => c.clone(),
                }
            })
            .collect::<Vec<_>>();
        let fields: Vec<arrow_schema::Field> = batch
            .schema()
            .fields()
            .iter()
            .zip(&columns)
            .map(|(f, c)| f.as_ref().clone().with_data_type(c.data_type().clone()))
            .collect();
        let views = RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), columns)
            .expect("views");
        assert_eq!(
            arrow_to_kafka(&views, 10).expect("views"),
            arrow_to_kafka(&batch, 10).expect("large")
        );
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

    /// Kafka keeps every header of a record in order, repeated keys included; so do the
    /// table and the batches served back from it.
    #[test]
    fn repeated_header_keys_survive_both_ways() {
        let schema = arrow_schema().expect("schema");
        let headers = [
            ("trace", Some(&b"1"[..])),
            ("hop", Some(&b"a"[..])),
            ("hop", None),
            ("hop", Some(&b"c"[..])),
        ];
        let mut rows = RowBuilder::new(&schema, 2, RecordTotals::default()).expect("builder");
        rows.append(40, 1_000, Some(b"k"), Some(b"v"), headers)
            .expect("row");
        rows.append(41, 1_001, None, None, []).expect("row");
        let table = rows.finish().expect("batch");
        let wire = arrow_to_kafka(&table, 10).expect("encode");
        let batches = floe_kafka::records::decode_batches(wire.clone()).expect("decode");
        let got: Vec<Vec<_>> = batches[0]
            .records()
            .map(|r| r.headers().collect())
            .collect();
        assert_eq!(got, [headers.to_vec(), vec![]]);
        let back = kafka_to_arrow(&schema, 2, wire).expect("to arrow");
        assert_eq!(back, table);
    }

    #[test]
    fn log_append_time_rows_carry_the_broker_time() {
        let schema = arrow_schema().expect("schema");
        let wire = log_append_time_batch(0, 1_800_000_000_000);
        let batch = kafka_to_arrow(&schema, 0, wire).expect("decode");
        let ts = batch
            .column_by_name(COL_TIMESTAMP)
            .expect("timestamp")
            .as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.values(), &[1_800_000_000_000_000; 2]);
    }

    /// A LogAppendTime batch as the broker stores it: attribute bit and maxTimestamp set.
    fn log_append_time_batch(first: i64, broker_ms: i64) -> Bytes {
        let mut wire = encode(
            &[record(first, None, &[]), record(first + 1, None, &[])],
            Compression::Lz4,
        )
        .to_vec();
        kafka_batch::set_log_append_time(&mut wire, broker_ms);
        wire.into()
    }

    #[test]
    fn log_append_time_rows_go_back_as_log_append_time_batches_of_one_time() {
        let schema = arrow_schema().expect("schema");
        let mut wire = log_append_time_batch(0, 1_800_000_000_000).to_vec();
        wire.extend_from_slice(&log_append_time_batch(2, 1_800_000_000_500));
        let rows = kafka_to_arrow(&schema, 0, wire.into()).expect("decode");
        let mut out = BytesMut::new();
        encode_kafka(&mut out, &rows, 10, true).expect("encode");
        let out = out.freeze();
        // One batch per broker time: a client gives each record its batch's max time.
        let batches = floe_kafka::records::decode_batches(out.clone()).expect("batches");
        assert_eq!(batches.len(), 2);
        let mut decoded = out.clone();
        let sets = RecordBatchDecoder::decode_all(&mut decoded).expect("records");
        let got: Vec<_> = sets
            .iter()
            .flat_map(|s| &s.records)
            .map(|r| (r.offset, r.timestamp, r.timestamp_type))
            .collect();
        assert_eq!(
            got,
            [
                (0, 1_800_000_000_000, TimestampType::LogAppend),
                (1, 1_800_000_000_000, TimestampType::LogAppend),
                (2, 1_800_000_000_500, TimestampType::LogAppend),
                (3, 1_800_000_000_500, TimestampType::LogAppend),
            ]
        );
        // CreateTime topics keep one batch and the CreateTime type.
        let mut create = arrow_to_kafka(&rows, 10).expect("encode");
        let sets = RecordBatchDecoder::decode_all(&mut create).expect("records");
        assert_eq!(sets.len(), 1);
        assert!(sets[0]
            .records
            .iter()
            .all(|r| r.timestamp_type == TimestampType::Creation));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let schema = arrow_schema().expect("schema");
        assert!(kafka_to_arrow(&schema, 0, Bytes::from_static(&[0u8; 70])).is_err());
    }
}
