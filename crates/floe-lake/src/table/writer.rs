//! Writer configuration and data files: the Parquet properties of every file Floe
//! writes, rounds cut into contiguous lanes encoded on several threads, rows split by
//! time bucket, and deleting files a failed round wrote.

use std::collections::BTreeMap;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{BooleanArray, RecordBatch};
use iceberg::spec::{DataFile, DataFileFormat, Literal, PartitionKey, Struct};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use iceberg::TableIdent;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use tracing::warn;

use crate::schema::{TimePartitioning, COL_TIMESTAMP};
use crate::{Error, Result};

use super::*;

impl LakeTable {
    /// Writes `batches` (each within one partition, in (partition, offset) order) as data
    /// files. A large round is cut into contiguous lanes written on up to
    /// `write_threads` threads at once (see [`lanes`]); either every lane's files are
    /// returned or, after any failure, none are left behind.
    pub(crate) async fn write_files(
        &self,
        table: &Table,
        batches: Vec<RecordBatch>,
    ) -> Result<Vec<DataFile>> {
        let writing = FileWriting {
            table: table.clone(),
            ident: self.ident.clone(),
            by: self.by,
            compression: self.options.compression.clone(),
            target_file_size: self.options.target_file_size,
        };
        let mut lanes = lanes(batches, self.options.write_threads, LANE_MIN_BYTES).into_iter();
        let first = lanes.next().unwrap_or_default();
        // Encoding is CPU work inside async calls: each further lane gets a blocking
        // thread of its own, driving its writer with the runtime's handle, while this
        // thread writes the first.
        let handle = tokio::runtime::Handle::current();
        let others: Vec<_> = lanes
            .map(|rows| {
                let (writing, handle) = (writing.clone(), handle.clone());
                tokio::task::spawn_blocking(move || handle.block_on(writing.write(rows)))
            })
            .collect();
        let mut results = vec![writing.write(first).await];
        for lane in others {
            results.push(lane.await.unwrap_or_else(|e| {
                Err(Error::Encode(format!(
                    "a Parquet writer thread failed: {e}"
                )))
            }));
        }
        let mut files = Vec::new();
        let mut failure = None;
        for r in results {
            match r {
                Ok(mut f) => files.append(&mut f),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failure {
            self.delete_files(&files).await;
            return Err(e);
        }
        Ok(files)
    }

    pub(crate) async fn delete_files(&self, files: &[DataFile]) {
        let io = self.table.read().file_io().clone();
        delete_data_files(&io, files).await;
    }
}

/// The Parquet writer properties of every file Floe writes into a table (landing rounds
/// and compaction) with the given codec (`[lake] compression`).
///
/// # Errors
/// [`Error::Config`] for an unknown codec name.
pub fn writer_properties(compression: &str) -> Result<WriterProperties> {
    let mut props = WriterProperties::builder()
        .set_compression(parquet_compression(compression)?)
        .set_max_row_group_row_count(Some(128 * 1024))
        // Pages of a few thousand rows give the page index something to select: a
        // lake-tier Fetch then decodes the pages of its offset window, not the whole
        // row group (one page per column chunk made every read decode ~100 MiB).
        .set_data_page_row_count_limit(4096);
    // Offsets and timestamps are (nearly) unique, yet a dictionary never fell back for
    // them: a row group has fewer distinct values than the 1 MiB dictionary holds, so
    // every value was hashed and every file carried each one twice. They are written
    // PLAIN: delta encoding would be smaller still, but Iceberg's vectorized Spark
    // reader only reads it from Iceberg 1.10 on, and readers before that fail the scan.
    for column in ["offset", "timestamp"] {
        props = props.set_column_dictionary_enabled(ColumnPath::from(column), false);
    }
    Ok(props.build())
}

fn parquet_compression(name: &str) -> Result<Compression> {
    Ok(match name {
        "zstd" => Compression::ZSTD(ZstdLevel::default()),
        "snappy" => Compression::SNAPPY,
        "gzip" => Compression::GZIP(GzipLevel::default()),
        "lz4" => Compression::LZ4_RAW,
        "none" | "uncompressed" => Compression::UNCOMPRESSED,
        other => {
            return Err(Error::Config(format!(
                "unknown Parquet compression {other:?} (zstd, snappy, gzip, lz4, none)"
            )))
        }
    })
}

/// Checks a compression name (for configuration validation at start-up).
pub fn validate_compression(name: &str) -> Result<()> {
    parquet_compression(name).map(|_| ())
}

/// Splits `batches` into at most `max` contiguous runs of similar size, none under
/// `min_bytes` (one run when the whole is smaller than two). Runs stay in (partition,
/// offset) order, so each lane's files cover a range of offsets of their own and a
/// lake-tier read still finds one file by its bounds.
pub(crate) fn lanes(
    batches: Vec<RecordBatch>,
    max: usize,
    min_bytes: usize,
) -> Vec<Vec<RecordBatch>> {
    let sizes: Vec<usize> = batches
        .iter()
        .map(RecordBatch::get_array_memory_size)
        .collect();
    let total: usize = sizes.iter().sum();
    let n = max.min(total / min_bytes.max(1)).min(batches.len()).max(1);
    if n == 1 {
        return vec![batches];
    }
    let per = total.div_ceil(n);
    let mut out = Vec::with_capacity(n);
    let mut run = Vec::new();
    let mut size = 0;
    for (batch, s) in batches.into_iter().zip(sizes) {
        run.push(batch);
        size += s;
        if size >= per && out.len() + 1 < n {
            out.push(std::mem::take(&mut run));
            size = 0;
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

/// What writing one lane's data files needs, owned so that a lane can run on a thread
/// of its own.
#[derive(Clone)]
struct FileWriting {
    table: Table,
    ident: TableIdent,
    by: TimePartitioning,
    compression: String,
    target_file_size: usize,
}

impl FileWriting {
    /// Writes `batches` into data files, one or more per time bucket. On failure the
    /// files this call wrote are deleted before the error is returned.
    async fn write(self, batches: Vec<RecordBatch>) -> Result<Vec<DataFile>> {
        // Rows go to the writer batch by batch, grouped by time bucket, instead of being
        // concatenated into one batch first: the Parquet writer buffers its row group
        // anyway, and the concatenation was a full copy of every round (about a tenth of
        // the round's CPU in `floe-lakebench landing`). Splitting keeps each bucket's rows
        // in (partition, offset) order, and a batch within one bucket is not copied.
        let mut by_bucket: BTreeMap<i32, Vec<RecordBatch>> = BTreeMap::new();
        for batch in &batches {
            for (bucket, rows) in split_by_bucket(batch, self.by)? {
                by_bucket.entry(bucket).or_default().push(rows);
            }
        }
        let metadata = self.table.metadata();
        let iceberg_schema = metadata.current_schema().clone();
        let spec = metadata.default_partition_spec().as_ref().clone();
        let props = writer_properties(&self.compression)?;
        let parquet = ParquetWriterBuilder::new(props, iceberg_schema.clone());
        let location = DefaultLocationGenerator::new(metadata)
            .map_err(Error::iceberg("data file locations"))?;
        // A name prefix per lane: lanes write at once and their names must not collide.
        let names = DefaultFileNameGenerator::new(
            format!("{FILE_PREFIX}{}", uuid::Uuid::new_v4()),
            None,
            DataFileFormat::Parquet,
        );
        let rolling = RollingFileWriterBuilder::new(
            parquet,
            self.target_file_size,
            self.table.file_io().clone(),
            location,
            names,
        );
        let builder = DataFileWriterBuilder::new(rolling);
        let mut files = Vec::new();
        for (bucket, rows) in by_bucket {
            let key = PartitionKey::new(
                spec.clone(),
                iceberg_schema.clone(),
                Struct::from_iter([Some(Literal::int(bucket))]),
            );
            let written = async {
                let mut writer = builder.build(Some(key)).await?;
                for batch in rows {
                    writer.write(batch).await?;
                }
                writer.close().await
            }
            .await;
            match written {
                Ok(mut f) => files.append(&mut f),
                Err(e) => {
                    delete_data_files(self.table.file_io(), &files).await;
                    return Err(Error::iceberg(format!(
                        "writing Parquet for {}",
                        self.ident
                    ))(e));
                }
            }
        }
        Ok(files)
    }
}

/// Deletes data files no snapshot references (a failed round's); orphan clean-up catches
/// any this misses.
async fn delete_data_files(io: &iceberg::io::FileIO, files: &[DataFile]) {
    for f in files {
        if let Err(e) = io.delete(f.file_path()).await {
            warn!(file = f.file_path(), error = %e, "could not delete an uncommitted data file; orphan clean-up will");
        }
    }
}

/// Splits rows (sorted by partition, offset) into one batch per time bucket, keeping order.
fn split_by_bucket(rows: &RecordBatch, by: TimePartitioning) -> Result<Vec<(i32, RecordBatch)>> {
    let ts = rows
        .column_by_name(COL_TIMESTAMP)
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
        .ok_or_else(|| Error::Encode("timestamp column missing".into()))?;
    let buckets: Vec<i32> = ts.values().iter().map(|&t| by.bucket(t)).collect();
    let mut distinct: Vec<i32> = buckets.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() == 1 {
        return Ok(vec![(distinct[0], rows.clone())]);
    }
    distinct
        .into_iter()
        .map(|bucket| {
            let mask = BooleanArray::from_iter(buckets.iter().map(|&b| Some(b == bucket)));
            arrow_select::filter::filter_record_batch(rows, &mask)
                .map(|b| (bucket, b))
                .map_err(Error::arrow("splitting rows by time partition"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(first: i64, n: i64) -> RecordBatch {
        let mut b = crate::convert::RowBuilder::new(
            &schema::arrow_schema().expect("schema"),
            0,
            Default::default(),
        )
        .expect("builder");
        for o in first..first + n {
            b.append(o, 1_700_000_000_000, None, Some(&[7u8; 1024]), [])
                .expect("row");
        }
        b.finish().expect("batch")
    }

    fn offsets(lane: &[RecordBatch]) -> Vec<i64> {
        lane.iter()
            .flat_map(|b| {
                crate::convert::offset_range(b)
                    .map(|(lo, hi)| lo..=hi)
                    .expect("rows")
            })
            .collect()
    }

    #[test]
    fn lanes_are_contiguous_balanced_and_not_too_small() {
        let batches: Vec<RecordBatch> = (0..40).map(|i| rows(i * 100, 100)).collect();
        let size = batches[0].get_array_memory_size();
        // Each lane must get at least 10 batches' worth: 4 lanes at most, though 8 are
        // allowed.
        let split = lanes(batches.clone(), 8, size * 10);
        assert_eq!(split.len(), 4);
        assert!(split.iter().all(|l| l.len() == 10), "balanced");
        let all: Vec<i64> = split.iter().flat_map(|l| offsets(l)).collect();
        assert_eq!(all, (0..4000).collect::<Vec<_>>(), "contiguous, in order");
        // The thread limit, and rounds too small to split.
        assert_eq!(lanes(batches.clone(), 3, size).len(), 3);
        assert_eq!(lanes(batches.clone(), 1, size).len(), 1);
        assert_eq!(lanes(batches.clone(), 8, size * 21).len(), 1);
        assert_eq!(lanes(vec![rows(0, 10)], 8, 1).len(), 1);
        assert_eq!(lanes(Vec::new(), 8, 1).len(), 1);
    }

    #[test]
    fn compression_names() {
        assert!(validate_compression("zstd").is_ok());
        assert!(validate_compression("brotli9").is_err());
    }
}
