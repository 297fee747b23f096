//! The tables' FileIO: opendal's resolving storage (local files, S3), with writes to
//! local files cut into pieces of at most [`WRITE_PIECE`] bytes.
//!
//! Parquet's async writer hands a whole row group to FileIO in one buffer: a landing
//! round of 64 MiB is one ~19 MiB write, and opendal's local backend passes it to one
//! `pwrite`. On Linux (ext4) one write that size cost about ten times the kernel CPU of
//! the same bytes written a MiB at a time (54 vs 5 ms for 19 MiB from a cold buffer,
//! measured on the benchmark machine); in `floe-lakebench landing` that one system call
//! was a seventh of the landing CPU. Cutting the buffer copies nothing ([`Bytes::split_to`]).
//! Writes to object stores are left whole: opendal's S3 writer makes every write one part
//! of a multipart upload, and S3 refuses parts under 5 MiB.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use iceberg::io::{
    FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig,
    StorageFactory,
};
use iceberg_storage_opendal::OpenDalResolvingStorageFactory;
use serde::{Deserialize, Serialize};

use crate::lake_file::local_path;

/// Largest piece one write passes on to the backend.
pub const WRITE_PIECE: usize = 1 << 20;

/// Builds [`PiecewiseStorage`] over opendal's resolving storage.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PiecewiseStorageFactory {
    inner: OpenDalResolvingStorageFactory,
}

impl PiecewiseStorageFactory {
    /// Over a fresh [`OpenDalResolvingStorageFactory`].
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

#[typetag::serde]
impl StorageFactory for PiecewiseStorageFactory {
    fn build(&self, config: &StorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        Ok(Arc::new(PiecewiseStorage {
            inner: self.inner.build(config)?,
        }))
    }
}

/// A storage whose writers to local files pass at most [`WRITE_PIECE`] bytes per write
/// to `inner`; everything else is `inner`'s.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PiecewiseStorage {
    inner: Arc<dyn Storage>,
}

#[async_trait]
#[typetag::serde]
impl Storage for PiecewiseStorage {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        self.inner.exists(path).await
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        self.inner.metadata(path).await
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        self.inner.read(path).await
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        self.inner.reader(path).await
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        if local_path(path).is_none() {
            return self.inner.write(path, bs).await;
        }
        let mut writer = self.writer(path).await?;
        writer.write(bs).await?;
        writer.close().await
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        let inner = self.inner.writer(path).await?;
        if local_path(path).is_none() {
            return Ok(inner);
        }
        Ok(Box::new(PiecewiseWrite { inner }))
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        self.inner.delete(path).await
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        self.inner.delete_prefix(path).await
    }

    async fn delete_stream(&self, paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        self.inner.delete_stream(paths).await
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        self.inner.new_input(path)
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        // The output file writes through this storage, so that its writer is cut too.
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

struct PiecewiseWrite {
    inner: Box<dyn FileWrite>,
}

#[async_trait]
impl FileWrite for PiecewiseWrite {
    async fn write(&mut self, mut bs: Bytes) -> iceberg::Result<()> {
        while bs.len() > WRITE_PIECE {
            let piece = bs.split_to(WRITE_PIECE);
            self.inner.write(piece).await?;
        }
        if bs.is_empty() {
            return Ok(());
        }
        self.inner.write(bs).await
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_are_cut_and_files_are_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = PiecewiseStorageFactory::new()
            .build(&StorageConfig::new())
            .expect("storage");
        let path = format!("file:{}/f.bin", dir.path().display());
        let data: Vec<u8> = (0..(5 * WRITE_PIECE + 123))
            .map(|i| (i % 251) as u8)
            .collect();
        let output = storage.new_output(&path).expect("output");
        let mut writer = output.writer().await.expect("writer");
        writer
            .write(Bytes::from(data.clone()))
            .await
            .expect("write");
        writer.write(Bytes::new()).await.expect("empty write");
        writer.close().await.expect("close");
        let read = storage.read(&path).await.expect("read");
        assert_eq!(read.as_ref(), data.as_slice());
    }

    /// Records the length of every write it is given.
    struct Lengths(Arc<parking_lot::Mutex<Vec<usize>>>);

    #[async_trait]
    impl FileWrite for Lengths {
        async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
            self.0.lock().push(bs.len());
            Ok(())
        }

        async fn close(&mut self) -> iceberg::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn no_piece_is_longer_than_the_limit() {
        let lengths = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let mut writer = PiecewiseWrite {
            inner: Box::new(Lengths(lengths.clone())),
        };
        writer
            .write(Bytes::from(vec![7u8; 2 * WRITE_PIECE + 5]))
            .await
            .expect("write");
        writer
            .write(Bytes::from(vec![7u8; 10]))
            .await
            .expect("write");
        writer
            .write(Bytes::from(vec![7u8; WRITE_PIECE]))
            .await
            .expect("write");
        assert_eq!(
            *lengths.lock(),
            vec![WRITE_PIECE, WRITE_PIECE, 5, 10, WRITE_PIECE]
        );
    }
}
