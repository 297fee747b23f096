//! `landing`: the CPU cost of Floe's lake write path, per MiB, in one process.
//!
//! Each round:
//! 1. builds Kafka v2 record batches of `--records-per-batch` records (what a producer
//!    sends; not measured, it is the client's work),
//! 2. decodes every batch into an Arrow tail batch with `convert::kafka_to_arrow`
//!    (**decode**: Floe does this at produce time, after the WAL append),
//! 3. encodes the same Arrow batches with plain arrow-rs `ArrowWriter` into a file, with
//!    the writer properties `floe-lake` uses (**plain**: the baseline),
//! 4. pushes them into tail buffers and calls `LakeTable::land` (**landing**: concat,
//!    split by time partition, iceberg-rust's Parquet writer, manifests, the catalog
//!    commit in SQLite).
//!
//! With `--values avro` the values are ~`--record-size`-byte Avro events in Confluent's
//! wire format (`avro.rs`), and a second table bound to their schema lands the same
//! batches typed (`LakeTable::land_typed`: decode every record, build `value_typed`,
//! write it beside the bytes) right after the raw round (**typed**): its CPU per MiB
//! against the raw landing's, and its Parquet bytes against the raw table's.
//!
//! Both write their files into the same directory tree and keep them, so both pay the
//! same page-cache cost for their output.
//!
//! Steps 2–4 are timed with the process's CPU clock (every thread, including tokio's
//! workers and the SQLite driver's) and the wall clock. Plain and landing alternate round
//! by round, so background load on the machine hits both alike and their ratio stays
//! meaningful even when absolute figures do not.

use std::io::BufWriter;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::{Bytes, BytesMut};
use clap::Args;
use floe_bench::payload::{self, PayloadKind, Payloads};
use floe_bench::util::{self, JsonLine};
use floe_lake::convert::kafka_to_arrow;
use floe_lake::{
    open_catalog, CatalogKind, LakeOptions, LakeTable, TailBatch, TailBudget, TailBuffer,
    TimePartitioning,
};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

const MIB: f64 = 1024.0 * 1024.0;

/// Flags of `landing`.
#[derive(Args, Debug)]
pub struct LandingArgs {
    /// Payload MiB to land in the measured rounds (key + value bytes).
    #[arg(long, default_value_t = 1024)]
    pub mib: u64,
    /// Payload MiB per landing round. A broker lands every `commit_interval` (2 s) or
    /// once `commit_bytes` (64 MiB of Arrow) wait, so at full speed rounds are ~64 MiB
    /// and at 10 MB/s ~20 MiB.
    #[arg(long, default_value_t = 64)]
    pub round_mib: u64,
    /// Unmeasured rounds first (table creation, allocator and zstd warm-up).
    #[arg(long, default_value_t = 1)]
    pub warmup_rounds: u64,
    /// Partitions of the topic; each round spreads its records evenly over them.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    /// Value size of every record, in bytes.
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Key size of every record, in bytes (0: no key, as floe-loadgen sends).
    #[arg(long, default_value_t = 0)]
    pub key_size: usize,
    /// Records per Kafka batch (a produce batch; librdkafka's batch.size default of
    /// 1,000,000 bytes holds ~970 records of 1 KiB).
    #[arg(long, default_value_t = 500)]
    pub records_per_batch: usize,
    /// Values: "json" (unique JSON-like events) or "random" (one incompressible block,
    /// repeated; Parquet's dictionary encoding makes that unrealistically cheap).
    #[arg(long, default_value = "json", value_parser = payload::parse_kind)]
    pub payload: PayloadKind,
    /// Values: "raw" (`--payload`), or "avro" (Avro events in the wire format, landed a
    /// second time into a typed table).
    #[arg(long, default_value = "raw", value_parser = ["raw", "avro"])]
    pub values: String,
    /// Parquet compression of the table and of the plain baseline (`[lake] compression`).
    #[arg(long, default_value = "zstd", value_parser = ["zstd", "snappy", "lz4", "none"])]
    pub compression: String,
    /// Threads a landing round may encode on (`[lake] write_threads`); the plain baseline
    /// always uses one. CPU per MiB compares alike either way; wall time does not.
    #[arg(long, default_value_t = 1)]
    pub write_threads: usize,
    /// Directory for the catalog, the warehouse and the plain files [default: a temp dir].
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    /// Print the result as one JSON line on stdout (summary goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// CPU and wall time of one step, summed over rounds.
#[derive(Debug, Default, Clone, Copy)]
struct Cost {
    cpu: Duration,
    wall: Duration,
}

impl Cost {
    fn measure<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let (c0, w0) = (util::process_cpu_precise(), Instant::now());
        let out = f();
        self.cpu += util::process_cpu_precise().saturating_sub(c0);
        self.wall += w0.elapsed();
        out
    }

    fn mib_per_cpu_sec(&self, mib: f64) -> f64 {
        mib / self.cpu.as_secs_f64().max(1e-9)
    }
}

#[derive(Debug, Default)]
struct Totals {
    copy: Cost,
    decode: Cost,
    plain: Cost,
    land: Cost,
    typed: Cost,
    typed_bytes: u64,
    typed_errors: u64,
    records: u64,
    payload_bytes: u64,
    kafka_bytes: u64,
    /// Memory of the decoded tail batches, as the tail budget counts it.
    arrow_bytes: u64,
    plain_bytes: u64,
    land_bytes: u64,
    land_files: u64,
    rounds: u64,
    round_walls: Vec<Duration>,
}

pub fn run(args: &LandingArgs) -> anyhow::Result<()> {
    if args.round_mib == 0 || args.mib < args.round_mib {
        bail!("--mib must be at least --round-mib, and --round-mib positive");
    }
    if args.partitions < 1 || args.records_per_batch == 0 || args.record_size == 0 {
        bail!("--partitions, --records-per-batch and --record-size must be positive");
    }
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir().context("creating a temp dir")?;
            tmp.path().to_path_buf()
        }
    };
    let (cpu_start, wall_start) = (util::process_cpu_precise(), Instant::now());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let opts = LakeOptions {
        catalog: CatalogKind::Sql {
            uri: format!("sqlite://{}/catalog.db?mode=rwc", dir.display()),
        },
        warehouse: format!("file:{}/warehouse", dir.display()),
        namespace: "kafka".into(),
        storage: Default::default(),
        compression: args.compression.clone(),
        target_file_size: 128 << 20,
        write_threads: args.write_threads.max(1),
    };
    let avro = args.values == "avro";
    let (table, typed_table) = rt.block_on(async {
        let catalog = open_catalog(&opts).await?;
        let store = floe_lake::WarehouseStore::new(&opts)?;
        // Any fixed ids: the bench's tables are created fresh and never shared.
        let table = LakeTable::open(
            catalog.clone(),
            &opts,
            &store,
            "bench",
            "00000000-0000-0000-0000-00000000be0c",
            TimePartitioning::Day,
        )
        .await?;
        let typed = if avro {
            Some(
                LakeTable::open(
                    catalog,
                    &opts,
                    &store,
                    "bench_typed",
                    "00000000-0000-0000-0000-00000000be0d",
                    TimePartitioning::Day,
                )
                .await?,
            )
        } else {
            None
        };
        Ok::<_, floe_lake::Error>((table, typed))
    })?;
    let events = if avro {
        Some(floe_bench::avro::Events::new(args.record_size)?)
    } else {
        None
    };
    let typed_landing = super::avro::typed_landing();
    let typed_tails: Vec<Arc<TailBuffer>> = (0..args.partitions)
        .map(|_| Arc::new(TailBuffer::new(0, TailBudget::new(usize::MAX / 2))))
        .collect();
    let schema = floe_lake::schema::arrow_schema()?;
    let payloads = Payloads::new(args.payload, args.record_size)?;
    let budget = TailBudget::new(usize::MAX / 2);
    let tails: Vec<Arc<TailBuffer>> = (0..args.partitions)
        .map(|_| Arc::new(TailBuffer::new(0, budget.clone())))
        .collect();
    // The properties floe-lake lands with, so plain and landing encode alike.
    let props = floe_lake::table::writer_properties(&args.compression)?;
    let plain_dir = dir.join("plain");
    std::fs::create_dir_all(&plain_dir)
        .with_context(|| format!("creating {}", plain_dir.display()))?;

    let record_bytes = (args.record_size + args.key_size) as u64;
    let per_round = (args.round_mib << 20) / record_bytes;
    let rounds = args.mib / args.round_mib;
    let mut next = vec![0i64; args.partitions as usize];
    let mut seq = 0u64;
    let mut totals = Totals::default();
    let mut warm = Totals::default();
    for r in 0..args.warmup_rounds + rounds {
        let t = if r < args.warmup_rounds {
            &mut warm
        } else {
            &mut totals
        };
        // 1. Kafka batches (the producer's work, not measured).
        let kafka = make_round(
            args,
            &payloads,
            events.as_ref(),
            per_round,
            &mut next,
            &mut seq,
        )?;
        t.kafka_bytes += kafka.iter().map(|(_, _, _, b)| b.len() as u64).sum::<u64>();
        t.records += per_round;
        t.payload_bytes += per_round * record_bytes;
        // The copy Partition::append makes of the appended bytes before decoding them
        // (`Bytes::copy_from_slice`), timed on its own.
        let kafka: Vec<_> = t.copy.measure(|| {
            kafka
                .into_iter()
                .map(|(p, first, end, b)| (p, first, end, Bytes::copy_from_slice(&b)))
                .collect()
        });
        // 2. Decode into Arrow, as Partition::append does.
        let decoded: Vec<(i32, TailBatch)> = t.decode.measure(|| {
            kafka
                .into_iter()
                .map(|(p, first, end, bytes)| {
                    kafka_to_arrow(&schema, p, bytes)
                        .map(|rows| (p, TailBatch { first, end, rows }))
                })
                .collect::<Result<_, _>>()
        })?;
        t.arrow_bytes += decoded
            .iter()
            .map(|(_, b)| b.rows.get_array_memory_size() as u64)
            .sum::<u64>();
        // 3. Plain Parquet of the same batches, in the order landing writes them.
        let mut ordered: Vec<&(i32, TailBatch)> = decoded.iter().collect();
        ordered.sort_by_key(|(p, b)| (*p, b.first));
        let path = plain_dir.join(format!("round-{r}.parquet"));
        let batches: Vec<&RecordBatch> = ordered.iter().map(|(_, b)| &b.rows).collect();
        t.plain_bytes += t
            .plain
            .measure(|| write_plain(&path, &schema, &batches, props.clone()))?;
        // The plain files stay until the end, like the table's: deleting them would let
        // the next round reuse their page-cache pages, which on this kind of VM is far
        // cheaper than touching new memory, and favour the baseline.
        // 4. Landing.
        if typed_table.is_some() {
            for (p, batch) in &decoded {
                typed_tails[*p as usize].push(batch.clone());
            }
        }
        for (p, batch) in decoded {
            tails[p as usize].push(batch);
        }
        let limits: Vec<i64> = tails.iter().map(|t| t.range().1).collect();
        let w0 = Instant::now();
        let stats = t
            .land
            .measure(|| rt.block_on(table.land(&tails, &limits)))?
            .context("landing round had nothing to land")?;
        t.round_walls.push(w0.elapsed());
        t.land_bytes += stats.bytes;
        t.land_files += stats.files as u64;
        // 5. The same batches into the typed table.
        if let Some(typed_table) = &typed_table {
            let limits: Vec<i64> = typed_tails.iter().map(|t| t.range().1).collect();
            let stats = t
                .typed
                .measure(|| {
                    rt.block_on(typed_table.land_typed(&typed_tails, &limits, Some(&typed_landing)))
                })?
                .context("typed round had nothing to land")?;
            t.typed_bytes += stats.bytes;
            t.typed_errors += stats.typed_errors;
        }
        t.rounds += 1;
    }
    drop(rt);
    // The whole process (generation included), so that bench scripts can tell this
    // process's CPU from other load, as they do for floe-loadgen.
    let process_cpu_pct = util::process_cpu_precise()
        .saturating_sub(cpu_start)
        .as_secs_f64()
        / wall_start.elapsed().as_secs_f64().max(1e-9)
        * 100.0;
    report(args, &totals, process_cpu_pct);
    Ok(())
}

/// Writes `batches` as one Parquet file; returns its size.
fn write_plain(
    path: &std::path::Path,
    schema: &SchemaRef,
    batches: &[&RecordBatch],
    props: WriterProperties,
) -> anyhow::Result<u64> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = ArrowWriter::try_new(
        BufWriter::with_capacity(1 << 20, file),
        schema.clone(),
        Some(props),
    )
    .context("opening the plain Parquet writer")?;
    for b in batches {
        w.write(b).context("plain Parquet write")?;
    }
    w.close().context("closing the plain Parquet file")?;
    let len = std::fs::metadata(path)
        .with_context(|| format!("stat {}", path.display()))?
        .len();
    Ok(len)
}

/// One round of Kafka batches: (partition, first offset, end offset, bytes).
fn make_round(
    args: &LandingArgs,
    payloads: &Payloads,
    events: Option<&floe_bench::avro::Events>,
    records: u64,
    next: &mut [i64],
    seq: &mut u64,
) -> anyhow::Result<Vec<(i32, i64, i64, Bytes)>> {
    // Timestamps a millisecond apart from noon UTC of a fixed day: every round falls in
    // one day partition, as live traffic does except around midnight.
    const NOON: i64 = 1_790_000_000_000 - 1_790_000_000_000 % 86_400_000 + 43_200_000;
    let parts = next.len() as u64;
    let per_part = records / parts;
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    let mut out = Vec::new();
    let key = (args.key_size > 0).then(|| Bytes::from(vec![b'k'; args.key_size]));
    for (p, next) in next.iter_mut().enumerate() {
        let end = *next + i64::try_from(per_part)?;
        while *next < end {
            let n = (end - *next).min(i64::try_from(args.records_per_batch)?);
            let recs: Vec<Record> = (*next..*next + n)
                .map(|offset| {
                    *seq += 1;
                    let value = match events {
                        Some(e) => e.get(*seq)?,
                        None => payloads.get(*seq),
                    };
                    Ok(Record {
                        transactional: false,
                        control: false,
                        partition_leader_epoch: 0,
                        producer_id: -1,
                        producer_epoch: -1,
                        timestamp_type: TimestampType::Creation,
                        offset,
                        sequence: -1,
                        timestamp: NOON + i64::try_from(*seq).unwrap_or(0),
                        key: key.clone(),
                        value: Some(Bytes::from(value)),
                        headers: Default::default(),
                        delete_horizon: false,
                    })
                })
                .collect::<anyhow::Result<_>>()?;
            let mut buf = BytesMut::new();
            RecordBatchEncoder::encode(&mut buf, &recs, &opts)
                .map_err(|e| anyhow::anyhow!("encoding a Kafka batch: {e:?}"))?;
            out.push((i32::try_from(p)?, *next, *next + n, buf.freeze()));
            *next += n;
        }
    }
    Ok(out)
}

fn report(args: &LandingArgs, t: &Totals, process_cpu_pct: f64) {
    let mib = t.payload_bytes as f64 / MIB;
    let ratio = t.land.cpu.as_secs_f64() / t.plain.cpu.as_secs_f64().max(1e-9);
    let produce_side = Cost {
        cpu: t.decode.cpu + t.land.cpu,
        wall: t.decode.wall + t.land.wall,
    };
    let mut walls: Vec<f64> = t.round_walls.iter().map(|d| d.as_secs_f64()).collect();
    walls.sort_by(f64::total_cmp);
    let median_round = walls.get(walls.len() / 2).copied().unwrap_or(0.0);
    let kind = args.payload.name();
    let mut s = format!(
        "landing {:.0} MiB in {} rounds of {} MiB ({} records of {}+{} B, {} per Kafka batch, \
         {} partition(s), payload {kind}, compression {})\n",
        mib,
        t.rounds,
        args.round_mib,
        t.records,
        args.key_size,
        args.record_size,
        args.records_per_batch,
        args.partitions,
        args.compression
    );
    let line = |name: &str, c: &Cost| {
        format!(
            "  {name:<34} {:7.1} MiB per CPU-second  (CPU {:6.2} s, wall {:6.2} s)\n",
            c.mib_per_cpu_sec(mib),
            c.cpu.as_secs_f64(),
            c.wall.as_secs_f64()
        )
    };
    s.push_str(&line("copy of the appended bytes", &t.copy));
    s.push_str(&line("decode Kafka -> Arrow (produce)", &t.decode));
    s.push_str(&line("plain ArrowWriter Parquet", &t.plain));
    s.push_str(&line("landing (LakeTable::land)", &t.land));
    s.push_str(&line("decode + landing", &produce_side));
    s.push_str(&format!(
        "  landing CPU / plain Parquet CPU = {ratio:.2}; median round wall {:.0} ms\n",
        median_round * 1e3
    ));
    s.push_str(&format!(
        "  tail memory (Arrow, as the budget counts it): {:.1} MiB, {:.2} x the payload\n",
        t.arrow_bytes as f64 / MIB,
        t.arrow_bytes as f64 / t.payload_bytes.max(1) as f64
    ));
    s.push_str(&format!(
        "  Parquet bytes: landing {:.1} MiB in {} files, plain {:.1} MiB; payload / Parquet = {:.2}\n",
        t.land_bytes as f64 / MIB,
        t.land_files,
        t.plain_bytes as f64 / MIB,
        t.payload_bytes as f64 / (t.land_bytes.max(1)) as f64
    ));
    if args.values == "avro" {
        s.push_str(&line("typed landing (land_typed, Avro)", &t.typed));
        s.push_str(&format!(
            "  typed landing CPU / raw landing CPU = {:.2}; typed Parquet {:.1} MiB = {:.2} x the raw table's; {} records did not decode\n",
            t.typed.cpu.as_secs_f64() / t.land.cpu.as_secs_f64().max(1e-9),
            t.typed_bytes as f64 / MIB,
            t.typed_bytes as f64 / t.land_bytes.max(1) as f64,
            t.typed_errors
        ));
    }
    if !args.json {
        print!("{s}");
        return;
    }
    eprint!("{s}");
    let secs = |d: Duration| d.as_secs_f64();
    let out = JsonLine::new()
        .str("mode", "landing")
        .num("mib", mib)
        .int("rounds", t.rounds)
        .int("round_mib", args.round_mib)
        .int("records", t.records)
        .int("record_size", args.record_size as u64)
        .int("key_size", args.key_size as u64)
        .int("records_per_batch", args.records_per_batch as u64)
        .int("partitions", u64::try_from(args.partitions).unwrap_or(0))
        .str("payload", kind)
        .str("compression", &args.compression)
        .int("kafka_bytes", t.kafka_bytes)
        .int("arrow_bytes", t.arrow_bytes)
        .num("copy_cpu_s", secs(t.copy.cpu))
        .num("decode_cpu_s", secs(t.decode.cpu))
        .num("decode_wall_s", secs(t.decode.wall))
        .num("decode_mib_per_cpu_s", t.decode.mib_per_cpu_sec(mib))
        .num("plain_cpu_s", secs(t.plain.cpu))
        .num("plain_wall_s", secs(t.plain.wall))
        .num("plain_mib_per_cpu_s", t.plain.mib_per_cpu_sec(mib))
        .int("plain_bytes", t.plain_bytes)
        .num("land_cpu_s", secs(t.land.cpu))
        .num("land_wall_s", secs(t.land.wall))
        .num("land_mib_per_cpu_s", t.land.mib_per_cpu_sec(mib))
        .num("land_mib_per_wall_s", mib / secs(t.land.wall).max(1e-9))
        .int("land_bytes", t.land_bytes)
        .int("land_files", t.land_files)
        .num(
            "decode_plus_land_mib_per_cpu_s",
            produce_side.mib_per_cpu_sec(mib),
        )
        .num("land_over_plain_cpu", ratio)
        .num("median_round_wall_ms", median_round * 1e3)
        .num(
            "compression_ratio",
            t.payload_bytes as f64 / (t.land_bytes.max(1)) as f64,
        )
        .num("client_cpu_pct", process_cpu_pct)
        .str("values", &args.values)
        .num("typed_cpu_s", secs(t.typed.cpu))
        .num("typed_mib_per_cpu_s", t.typed.mib_per_cpu_sec(mib))
        .int("typed_bytes", t.typed_bytes)
        .int("typed_errors", t.typed_errors)
        .finish();
    println!("{out}");
}
