//! Typed tables leave out the bytes their typed column rebuilds (`typed::rebuild`):
//! every type of the Avro mapping re-encodes byte for byte, and a table landed through
//! a real SQLite catalog gives Kafka reads back the produced bytes, kept or rebuilt. In a
//! test binary of its own, like typed_limits.rs: the Avro decoder's allocation limit is
//! process-wide.

mod common;

use std::sync::Arc;

use apache_avro::types::Value;
use apache_avro::{Decimal, Schema as Avro};
use arrow_array::{Array, ArrayRef, BinaryArray};
use common::{batch_with, options, TOPIC_ID};
use floe_common::SchemaMode;
use floe_lake::typed::rebuild::{rebuildable, schema_property, Encoder};
use floe_lake::typed::{self, Binding, RegisteredSchema, Schemas, TypedLanding};
use floe_lake::{
    open_catalog, reader, LakeTable, ReadAhead, TailBudget, TailBuffer, TimePartitioning,
    WarehouseStore,
};
use futures::TryStreamExt;
use kafka_protocol::records::RecordBatchDecoder;

const SCHEMA: &str = r#"{"type":"record","name":"Order","fields":[
    {"name":"id","type":"long"},
    {"name":"qty","type":"int"},
    {"name":"ok","type":"boolean"},
    {"name":"ratio","type":"float"},
    {"name":"amount","type":"double"},
    {"name":"blob","type":"bytes"},
    {"name":"note","type":["null","string"]},
    {"name":"late","type":["string","null"]},
    {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B","C"]}},
    {"name":"tag","type":{"type":"fixed","name":"Tag","size":4}},
    {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
    {"name":"cost","type":{"type":"fixed","name":"Cost","size":6,"logicalType":"decimal","precision":12,"scale":3}},
    {"name":"day","type":{"type":"int","logicalType":"date"}},
    {"name":"at","type":{"type":"int","logicalType":"time-millis"}},
    {"name":"atu","type":{"type":"long","logicalType":"time-micros"}},
    {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
    {"name":"tsu","type":{"type":"long","logicalType":"timestamp-micros"}},
    {"name":"local","type":{"type":"long","logicalType":"local-timestamp-millis"}},
    {"name":"uid","type":{"type":"string","logicalType":"uuid"}},
    {"name":"lines","type":{"type":"array","items":{"type":"record","name":"Line","fields":[
        {"name":"sku","type":"string"},{"name":"n","type":"long"}]}}},
    {"name":"attrs","type":{"type":"map","values":"long"}},
    {"name":"either","type":["null","long","string"]},
    {"name":"ship","type":["null","Line"]}
]}"#;

fn order(i: i64) -> Value {
    let neg = i % 2 == 1;
    // Unscaled values as Java's BigInteger.toByteArray writes them: 0, 127, 128, -1,
    // -128, -129; on fixed(6), sign-extended.
    let minimal: &[u8] = [
        &[0][..],
        &[0x7f],
        &[0, 0x80],
        &[0xff],
        &[0x80],
        &[0xff, 0x7f],
    ][i as usize % 6];
    let six = if neg {
        vec![0xff, 0xff, 0xff, 0xff, 0xcf, 0xc7]
    } else {
        vec![0, 0, 0, 0, 0x30, 0x39 + i as u8]
    };
    Value::Record(vec![
        ("id".into(), Value::Long(i * 1_000_003 - 7)),
        ("qty".into(), Value::Int(-(i as i32))),
        ("ok".into(), Value::Boolean(neg)),
        ("ratio".into(), Value::Float(0.25 * i as f32)),
        ("amount".into(), Value::Double(-1.5e300 / (i + 1) as f64)),
        ("blob".into(), Value::Bytes(vec![0, 255, i as u8])),
        (
            "note".into(),
            if neg {
                Value::Union(0, Box::new(Value::Null))
            } else {
                Value::Union(1, Box::new(Value::String(format!("n{i}"))))
            },
        ),
        ("late".into(), Value::Union(1, Box::new(Value::Null))),
        (
            "kind".into(),
            Value::Enum((i % 3) as u32, ["A", "B", "C"][(i % 3) as usize].into()),
        ),
        ("tag".into(), Value::Fixed(4, vec![1, 2, 3, i as u8])),
        (
            "price".into(),
            Value::Decimal(Decimal::from(minimal.to_vec())),
        ),
        ("cost".into(), Value::Decimal(Decimal::from(six))),
        ("day".into(), Value::Date(19_000 + i as i32)),
        ("at".into(), Value::TimeMillis(3_600_000 + i as i32)),
        ("atu".into(), Value::TimeMicros(7 + i)),
        ("ts".into(), Value::TimestampMillis(1_790_000_000_000 - i)),
        ("tsu".into(), Value::TimestampMicros(-5 - i)),
        ("local".into(), Value::LocalTimestampMillis(i)),
        (
            "uid".into(),
            Value::Uuid(uuid::Uuid::from_u128(0x1234_5678_9abc_def0 + i as u128)),
        ),
        (
            "lines".into(),
            Value::Array(
                (0..i % 3)
                    .map(|j| {
                        Value::Record(vec![
                            ("sku".into(), Value::String(format!("s{j}"))),
                            ("n".into(), Value::Long(j)),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "attrs".into(),
            // One entry: a map's order is lost when decoded, and the typed column
            // keeps it sorted; a single entry is in order either way.
            Value::Map(
                (0..i % 2)
                    .map(|j| (format!("k{j}"), Value::Long(i * j)))
                    .collect(),
            ),
        ),
        (
            "either".into(),
            match i % 3 {
                0 => Value::Union(0, Box::new(Value::Null)),
                1 => Value::Union(1, Box::new(Value::Long(i))),
                _ => Value::Union(2, Box::new(Value::String("two".into()))),
            },
        ),
        (
            "ship".into(),
            if neg {
                Value::Union(0, Box::new(Value::Null))
            } else {
                Value::Union(
                    1,
                    Box::new(Value::Record(vec![
                        ("sku".into(), Value::String("x".into())),
                        ("n".into(), Value::Long(i)),
                    ])),
                )
            },
        ),
    ])
}

/// Payloads as landing sees them: decoded with apache-avro, built into the column the
/// mapping gives the schema.
fn column(schema: &Avro, payloads: &[Vec<u8>]) -> ArrayRef {
    let ty = typed::mapping::iceberg_type(schema, &[]).expect("a column type");
    let ty = iceberg::arrow::type_to_arrow_type(&ty).expect("an Arrow type");
    let values: Vec<Value> = payloads
        .iter()
        .map(|p| apache_avro::from_avro_datum(schema, &mut p.as_slice(), None).expect("decodes"))
        .collect();
    let refs: Vec<Option<&Value>> = values.iter().map(Some).collect();
    typed::arrow::build(&ty, &refs).expect("fits the column")
}

fn wire(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0, 0, 9];
    out.extend_from_slice(payload);
    out
}

#[test]
fn every_mapped_type_rebuilds_byte_for_byte_in_memory() {
    let schema = Avro::parse_str(SCHEMA).unwrap();
    let payloads: Vec<Vec<u8>> = (0..12)
        .map(|i| apache_avro::to_avro_datum(&schema, order(i)).unwrap())
        .collect();
    let typed = column(&schema, &payloads);
    let enc = Encoder::new(&schema, &[], typed.data_type()).unwrap();
    for (i, p) in payloads.iter().enumerate() {
        let mut out = Vec::new();
        enc.encode(typed.as_ref(), i, &mut out).unwrap();
        assert_eq!(&out, p, "row {i}");
    }
    let values: ArrayRef = Arc::new(BinaryArray::from_iter(
        payloads.iter().map(|p| Some(wire(p))),
    ));
    let all = rebuildable(&values, typed.as_ref(), |id| {
        (id == 9).then_some((&schema, &[][..]))
    });
    assert_eq!(all, vec![true; payloads.len()]);
    // Another id than the writer's: nothing is taken as rebuilt.
    let none = rebuildable(&values, typed.as_ref(), |_| None);
    assert_eq!(none, vec![false; payloads.len()]);
}

#[derive(Debug)]
struct OneSchema;

#[async_trait::async_trait]
impl Schemas for OneSchema {
    async fn by_id(&self, id: i64) -> Result<Option<RegisteredSchema>, String> {
        Ok((id == 9).then(|| RegisteredSchema {
            id: 9,
            schema_type: "AVRO".into(),
            text: SCHEMA.into(),
            references: Vec::new(),
        }))
    }
    async fn latest(&self, _: &str) -> Result<Option<RegisteredSchema>, String> {
        self.by_id(9).await
    }
}

/// The table of topic `orders` in a SQLite catalog under `dir`, and typed landing of its
/// values in the wire format with [`OneSchema`].
async fn orders_table(
    dir: &std::path::Path,
) -> (
    floe_lake::LakeOptions,
    WarehouseStore,
    LakeTable,
    Arc<TypedLanding>,
) {
    let opts = options(dir);
    let catalog = open_catalog(&opts).await.expect("catalog");
    let store = WarehouseStore::new(&opts).expect("store");
    let table = LakeTable::open(
        catalog,
        &opts,
        &store,
        "orders",
        TOPIC_ID,
        TimePartitioning::Day,
    )
    .await
    .expect("table");
    let typed = TypedLanding::new(
        None,
        Some(Binding {
            mode: SchemaMode::Wire,
            subject: "orders-value".into(),
        }),
        Arc::new(OneSchema),
    )
    .expect("a bound value");
    (opts, store, table, typed)
}

#[tokio::test]
async fn a_typed_table_keeps_only_the_bytes_it_cannot_rebuild_and_kafka_reads_get_all_back() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, table, typed) = orders_table(dir.path()).await;
    let schema = Avro::parse_str(SCHEMA).unwrap();
    // Offsets 0..12 as apache-avro writes them; 12 the same record as 0 but with a
    // needless sign byte in its bytes-decimal, which decodes to the same value.
    let produced: Vec<Vec<u8>> = (0..13)
        .map(|i| {
            let mut v = order(i % 12);
            if i == 12 {
                let Value::Record(fields) = &mut v else {
                    unreachable!()
                };
                fields[10].1 = Value::Decimal(Decimal::from(vec![0, 0]));
            }
            wire(&apache_avro::to_avro_datum(&schema, v).unwrap())
        })
        .collect();
    let tail = Arc::new(TailBuffer::new(0, TailBudget::new(1 << 30)));
    let values = produced.clone();
    tail.push(batch_with(
        0,
        13,
        |o| 1_700_000_000_000 + o,
        move |o| values[o as usize].clone(),
    ));
    let stats = table
        .land_typed(std::slice::from_ref(&tail), &[13], Some(&typed))
        .await
        .unwrap()
        .expect("a round");
    assert_eq!(stats.typed_errors, 0);
    let t = table.table();
    assert!(t.metadata().properties().contains_key(&schema_property(9)));

    // The table holds the bytes of offset 12 alone.
    let rows: Vec<arrow_array::RecordBatch> = t
        .scan()
        .select(["offset", "value", "value_schema_id"])
        .build()
        .unwrap()
        .to_arrow()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut kept = Vec::new();
    for b in &rows {
        let (o, v, id) = (b.column(0), b.column(1), b.column(2));
        let o = o
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .unwrap();
        let id = id
            .as_any()
            .downcast_ref::<arrow_array::Int32Array>()
            .unwrap();
        for i in 0..b.num_rows() {
            assert_eq!(id.value(i), 9);
            if v.is_valid(i) {
                kept.push(o.value(i));
            }
        }
    }
    assert_eq!(kept, vec![12]);

    // A Kafka read of the landed offsets gets every value as produced.
    let (mut bytes, next) = reader::fetch(
        &t,
        &Arc::new(ReadAhead::new(64 << 20)),
        0,
        0,
        13,
        1 << 20,
        false,
    )
    .await
    .unwrap()
    .expect("rows");
    assert_eq!(next, 13);
    let records: Vec<_> = RecordBatchDecoder::decode_all(&mut bytes)
        .unwrap()
        .into_iter()
        .flat_map(|s| s.records)
        .collect();
    assert_eq!(records.len(), 13);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(
            r.value.as_deref(),
            Some(produced[i].as_slice()),
            "offset {i}"
        );
    }
}

/// Compaction rewrites a typed table's small files together whatever schema each was
/// written with: raw rounds from before the topic was bound (no typed columns), and
/// typed rounds whose values left their bytes out. Kafka reads stay byte for byte.
#[tokio::test]
async fn compaction_merges_files_written_before_and_after_the_typed_columns() {
    use floe_lake::maintain::Housekeeping;
    use floe_lake::MetadataPointer;
    let dir = tempfile::tempdir().unwrap();
    let (opts, store, table, typed) = orders_table(dir.path()).await;
    let schema = Avro::parse_str(SCHEMA).unwrap();
    let produced: Vec<Vec<u8>> = (0..72)
        .map(|i| wire(&apache_avro::to_avro_datum(&schema, order(i)).unwrap()))
        .collect();
    let tail = Arc::new(TailBuffer::new(0, TailBudget::new(1 << 30)));
    // Two raw rounds, then two typed ones: four small files, two schemas. The raw rounds
    // hold more records, so that all four files are of one compaction size tier.
    let rounds = [(0, 30), (30, 30), (60, 6), (66, 6)];
    for (round, (first, n)) in rounds.into_iter().enumerate() {
        let values = produced.clone();
        tail.push(batch_with(
            first,
            n,
            |o| 1_700_000_000_000 + o,
            move |o| values[o as usize].clone(),
        ));
        let limit = [first + n];
        let landed = if round < 2 {
            table.land(std::slice::from_ref(&tail), &limit).await
        } else {
            table
                .land_typed(std::slice::from_ref(&tail), &limit, Some(&typed))
                .await
        };
        landed.unwrap().expect("a round");
    }
    let pointer = MetadataPointer::connect(&opts).await.unwrap();
    let report = table
        .housekeep(
            &pointer,
            &store,
            &Housekeeping {
                now_ms: 1_700_000_100_000,
                retention_ms: None,
                snapshot_retention_ms: i64::MAX / 2,
                snapshot_windows: Default::default(),
                small_file_bytes: 1 << 20,
                compact_min_files: 4,
                merge_manifests_above: usize::MAX,
                deleted_before: Default::default(),
            },
        )
        .await
        .expect("housekeeping");
    assert_eq!(report.compacted_files, 4, "{report:?}");
    let (mut bytes, next) = reader::fetch(
        &table.table(),
        &Arc::new(ReadAhead::new(64 << 20)),
        0,
        0,
        72,
        1 << 20,
        false,
    )
    .await
    .unwrap()
    .expect("rows");
    assert_eq!(next, 72);
    let records: Vec<_> = RecordBatchDecoder::decode_all(&mut bytes)
        .unwrap()
        .into_iter()
        .flat_map(|s| s.records)
        .collect();
    assert_eq!(records.len(), 72);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(
            r.value.as_deref(),
            Some(produced[i].as_slice()),
            "offset {i}"
        );
    }
}
