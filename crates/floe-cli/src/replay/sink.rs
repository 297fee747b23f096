//! Where replayed records go: another topic, a JSON Lines file or a Parquet file.
//! Files are written beside their destination as `<name>.partial` and renamed into place
//! only when complete, so a failed replay leaves no half-written export.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context};
use base64::Engine as _;
use floe_lake::convert::{RecordTotals, RowBuilder};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use serde_json::{Map, Value};

/// Deliveries awaited at most at once; librdkafka batches within the window.
const MAX_IN_FLIGHT: usize = 20_000;
/// Records buffered before a Parquet row group chunk is written.
const PARQUET_CHUNK_RECORDS: usize = 16_384;
/// Bytes buffered before a Parquet chunk is written, whatever the record count.
const PARQUET_CHUNK_BYTES: u64 = 64 << 20;

/// The format of `--out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FileFormat {
    /// One JSON object per line.
    Jsonl,
    /// Parquet in the topic table's schema (zstd).
    Parquet,
}

/// A destination for replayed records.
pub enum Sink {
    Topic(TopicSink),
    File(FileSink),
}

impl Sink {
    /// Republishes into `topic`, which has `partitions` partitions.
    pub fn topic(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<Self> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("compression.type", "lz4")
            .set("linger.ms", "20")
            .create()
            .context("creating the Kafka producer")?;
        Ok(Self::Topic(TopicSink {
            producer,
            topic: topic.to_string(),
            partitions,
            in_flight: VecDeque::new(),
        }))
    }

    /// Exports to `path`, as `format` or as its extension says.
    pub fn file(path: &Path, format: Option<FileFormat>) -> anyhow::Result<Self> {
        let format = format.unwrap_or_else(|| {
            if path.extension().is_some_and(|e| e == "parquet") {
                FileFormat::Parquet
            } else {
                FileFormat::Jsonl
            }
        });
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let file =
            File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
        let writer = match format {
            FileFormat::Jsonl => Writer::Jsonl(BufWriter::with_capacity(1 << 20, file)),
            FileFormat::Parquet => {
                let schema = floe_lake::schema::arrow_schema()?;
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .build();
                let writer = ArrowWriter::try_new(file, schema.clone(), Some(props))
                    .context("starting the Parquet writer")?;
                Writer::Parquet {
                    writer: Box::new(writer),
                    schema,
                    pending: BTreeMap::new(),
                    pending_records: 0,
                    pending_bytes: 0,
                }
            }
        };
        Ok(Self::File(FileSink {
            path: path.to_path_buf(),
            partial,
            writer,
        }))
    }

    /// Hands over one record.
    pub async fn write(&mut self, m: &BorrowedMessage<'_>) -> anyhow::Result<()> {
        match self {
            Self::Topic(s) => s.write(m).await,
            Self::File(s) => s.write(m),
        }
    }

    /// Waits for every delivery, or completes the file; returns where the records went.
    pub async fn finish(self) -> anyhow::Result<String> {
        match self {
            Self::Topic(s) => s.finish().await,
            Self::File(s) => s.finish(),
        }
    }

    /// Gives up: a partial file is removed (records already delivered to a topic stay).
    pub fn abort(self) {
        if let Self::File(s) = self {
            drop(s.writer);
            if let Err(e) = std::fs::remove_file(&s.partial) {
                tracing::warn!(error = %e, path = %s.partial.display(), "cannot remove partial export");
            }
        }
    }
}

pub struct TopicSink {
    producer: FutureProducer,
    topic: String,
    partitions: i32,
    in_flight: VecDeque<DeliveryFuture>,
}

impl TopicSink {
    async fn write(&mut self, m: &BorrowedMessage<'_>) -> anyhow::Result<()> {
        let mut headers = OwnedHeaders::new();
        if let Some(h) = m.headers() {
            for h in h.iter() {
                headers = headers.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        let Self {
            producer,
            topic,
            partitions,
            in_flight,
        } = self;
        let mut record = FutureRecord::<[u8], [u8]>::to(topic).headers(headers);
        if let Some(ts) = m.timestamp().to_millis() {
            record = record.timestamp(ts);
        }
        if let Some(key) = m.key() {
            record = record.key(key);
        }
        if let Some(value) = m.payload() {
            record = record.payload(value);
        }
        if m.partition() < *partitions {
            record = record.partition(m.partition());
        }
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    in_flight.push_back(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    if in_flight.is_empty() {
                        producer.poll(Duration::from_millis(10));
                    } else {
                        settle_one(in_flight, topic).await?;
                    }
                }
                Err((e, _)) => return Err(e).context(format!("producing to {topic}")),
            }
        }
        while in_flight.len() > MAX_IN_FLIGHT {
            settle_one(in_flight, topic).await?;
        }
        Ok(())
    }

    async fn finish(mut self) -> anyhow::Result<String> {
        while !self.in_flight.is_empty() {
            settle_one(&mut self.in_flight, &self.topic).await?;
        }
        self.producer
            .flush(Duration::from_secs(30))
            .context("flushing the producer")?;
        Ok(format!("topic {}", self.topic))
    }
}

/// Awaits the oldest delivery.
async fn settle_one(in_flight: &mut VecDeque<DeliveryFuture>, topic: &str) -> anyhow::Result<()> {
    let Some(delivery) = in_flight.pop_front() else {
        return Ok(());
    };
    match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(anyhow!("delivery to {topic} failed: {e}")),
        Err(_) => Err(anyhow!("the producer stopped before delivering to {topic}")),
    }
}

pub struct FileSink {
    path: PathBuf,
    partial: PathBuf,
    writer: Writer,
}

enum Writer {
    Jsonl(BufWriter<File>),
    Parquet {
        writer: Box<ArrowWriter<File>>,
        schema: arrow_schema::SchemaRef,
        /// Rows per Kafka partition, written a chunk at a time.
        pending: BTreeMap<i32, RowBuilder>,
        pending_records: usize,
        pending_bytes: u64,
    },
}

impl FileSink {
    fn write(&mut self, m: &BorrowedMessage<'_>) -> anyhow::Result<()> {
        match &mut self.writer {
            Writer::Jsonl(out) => {
                let line = json_line(m);
                serde_json::to_writer(&mut *out, &line).context("encoding a JSON line")?;
                out.write_all(b"\n")
                    .with_context(|| format!("writing {}", self.partial.display()))
            }
            Writer::Parquet {
                schema,
                pending,
                pending_records,
                pending_bytes,
                ..
            } => {
                let rows = match pending.entry(m.partition()) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => e.insert(RowBuilder::new(
                        schema,
                        m.partition(),
                        RecordTotals::default(),
                    )?),
                };
                // Producer ids and sequences do not survive a replay (they belong to the
                // original write); every header does, in order.
                let headers = m.headers();
                rows.append(
                    m.offset(),
                    m.timestamp().to_millis().unwrap_or(-1),
                    m.key(),
                    m.payload(),
                    headers
                        .iter()
                        .flat_map(|h| h.iter())
                        .map(|h| (h.key, h.value)),
                )?;
                *pending_bytes +=
                    (m.key().map_or(0, <[u8]>::len) + m.payload().map_or(0, <[u8]>::len)) as u64;
                *pending_records += 1;
                if *pending_records >= PARQUET_CHUNK_RECORDS
                    || *pending_bytes >= PARQUET_CHUNK_BYTES
                {
                    self.flush_parquet()?;
                }
                Ok(())
            }
        }
    }

    fn flush_parquet(&mut self) -> anyhow::Result<()> {
        if let Writer::Parquet {
            writer,
            pending,
            pending_records,
            pending_bytes,
            ..
        } = &mut self.writer
        {
            for rows in std::mem::take(pending).into_values() {
                let batch = rows.finish()?;
                writer
                    .write(&batch)
                    .with_context(|| format!("writing {}", self.partial.display()))?;
            }
            *pending_records = 0;
            *pending_bytes = 0;
        }
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<String> {
        self.flush_parquet()?;
        match self.writer {
            Writer::Jsonl(out) => {
                let file = out
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .with_context(|| format!("writing {}", self.partial.display()))?;
                file.sync_all()
                    .with_context(|| format!("syncing {}", self.partial.display()))?;
            }
            Writer::Parquet { writer, .. } => {
                let file = writer
                    .into_inner()
                    .with_context(|| format!("closing {}", self.partial.display()))?;
                file.sync_all()
                    .with_context(|| format!("syncing {}", self.partial.display()))?;
            }
        }
        std::fs::rename(&self.partial, &self.path)
            .with_context(|| format!("renaming {} into place", self.partial.display()))?;
        Ok(self.path.display().to_string())
    }
}

/// `{"partition","offset","timestamp","key","value","headers"}`. Bytes that are UTF-8 are
/// written as strings (JSON payloads stay readable); others as base64 under `key_base64`,
/// `value_base64`. A null key or value is `null`.
fn json_line(m: &BorrowedMessage<'_>) -> Value {
    let mut line = Map::new();
    line.insert("partition".into(), m.partition().into());
    line.insert("offset".into(), m.offset().into());
    line.insert("timestamp".into(), m.timestamp().to_millis().into());
    put_bytes(&mut line, "key", m.key());
    put_bytes(&mut line, "value", m.payload());
    let headers: Vec<Value> = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    let mut entry = Map::new();
                    entry.insert("key".into(), h.key.into());
                    put_bytes(&mut entry, "value", h.value);
                    Value::Object(entry)
                })
                .collect()
        })
        .unwrap_or_default();
    line.insert("headers".into(), headers.into());
    Value::Object(line)
}

fn put_bytes(map: &mut Map<String, Value>, name: &str, bytes: Option<&[u8]>) {
    match bytes {
        None => {
            map.insert(name.into(), Value::Null);
        }
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => {
                map.insert(name.into(), s.into());
            }
            Err(_) => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(b);
                map.insert(format!("{name}_base64"), encoded.into());
            }
        },
    }
}
