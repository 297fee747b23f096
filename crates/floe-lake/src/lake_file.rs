//! A landed data file opened for arrow-rs's async Parquet reader.
//!
//! Local files are read with positioned reads on the blocking pool: one copy out of the
//! page cache per range. FileIO's local backend reads through tokio's file in 2 MiB
//! steps and copies each range twice more (`perf` on lake-tier Fetches, docs/benchmarks.md).
//! Other schemes (S3) go through the table's FileIO, configured once for the catalog.
//! Unlike iceberg-rust's `ArrowFileReader`, the footer is read with the page index the
//! reader asks for, so pages outside a Fetch's offsets are neither read nor decompressed.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use iceberg::io::{FileIO, FileRead};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use crate::{Error, Result};

/// The absolute path of a `file:` location (or of a bare absolute path), None for other
/// schemes.
pub fn local_path(location: &str) -> Option<&str> {
    let path = location
        .strip_prefix("file://")
        .or_else(|| location.strip_prefix("file:"))
        .unwrap_or(location);
    path.starts_with('/').then_some(path)
}

enum Source {
    Local(Arc<std::fs::File>),
    Remote(Box<dyn FileRead>),
}

/// One data file, readable by range.
pub struct LakeFile {
    source: Source,
    size: u64,
}

impl LakeFile {
    /// Opens `location` (of `size` bytes, as the manifest says).
    ///
    /// # Errors
    /// The file cannot be opened.
    pub async fn open(file_io: &FileIO, location: &str, size: u64) -> Result<Self> {
        let source = match local_path(location) {
            Some(path) => {
                let path = path.to_owned();
                let file = tokio::task::spawn_blocking(move || {
                    std::fs::File::open(&path).map_err(|e| Error::Io {
                        context: format!("opening {path}"),
                        source: e,
                    })
                })
                .await
                .map_err(|e| Error::Io {
                    context: format!("opening {location}"),
                    source: std::io::Error::other(e),
                })??;
                Source::Local(Arc::new(file))
            }
            None => Source::Remote(
                file_io
                    .new_input(location)
                    .map_err(Error::iceberg(format!("opening {location}")))?
                    .reader()
                    .await
                    .map_err(Error::iceberg(format!("opening {location}")))?,
            ),
        };
        Ok(Self { source, size })
    }
}

fn read_at(file: &std::fs::File, range: &Range<u64>) -> std::io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let len = usize::try_from(range.end.saturating_sub(range.start))
        .map_err(|_| std::io::Error::other("range too large"))?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, range.start)?;
    Ok(Bytes::from(buf))
}

fn external(e: impl std::error::Error + Send + Sync + 'static) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for LakeFile {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            let mut all = self.get_byte_ranges(vec![range]).await?;
            all.pop()
                .ok_or_else(|| ParquetError::General("no bytes read".into()))
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            match &self.source {
                // All ranges of one call in one trip to the blocking pool.
                Source::Local(file) => {
                    let file = file.clone();
                    tokio::task::spawn_blocking(move || {
                        ranges
                            .iter()
                            .map(|r| read_at(&file, r))
                            .collect::<std::io::Result<Vec<_>>>()
                    })
                    .await
                    .map_err(external)?
                    .map_err(external)
                }
                Source::Remote(read) => {
                    futures::future::try_join_all(ranges.into_iter().map(|r| read.read(r)))
                        .await
                        .map_err(external)
                }
            }
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let mut reader = ParquetMetaDataReader::new().with_prefetch_hint(Some(64 << 10));
            if let Some(o) = options {
                reader = reader
                    .with_column_index_policy(o.column_index_policy())
                    .with_offset_index_policy(o.offset_index_policy());
            }
            let size = self.size;
            Ok(Arc::new(reader.load_and_finish(self, size).await?))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn local_paths_are_file_locations_and_absolute_paths() {
        assert_eq!(local_path("file:/w/a.parquet"), Some("/w/a.parquet"));
        assert_eq!(local_path("file:///w/a.parquet"), Some("/w/a.parquet"));
        assert_eq!(local_path("/w/a.parquet"), Some("/w/a.parquet"));
        assert_eq!(local_path("s3://b/a.parquet"), None);
        assert_eq!(local_path("file:relative"), None);
    }
}
