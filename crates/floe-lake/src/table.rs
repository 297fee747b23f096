//! One topic's Iceberg table: creation, the `floe.offsets` bookkeeping, landing rounds
//! and orphan clean-up.
//!
//! Exactly once rests on one rule: a snapshot's summary says, per partition, the next
//! offset the table covers (`floe.offsets`), and a round only commits if the table it
//! commits on top of still says what the round started from. After any failure the
//! committer reloads the table and trusts only that summary.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{BooleanArray, RecordBatch};
use iceberg::spec::{DataFile, DataFileFormat, Literal, PartitionKey, Struct, TableMetadata};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use iceberg::{Catalog, NamespaceIdent, TableCreation, TableIdent};
use parking_lot::RwLock;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use tracing::{debug, info, warn};

use crate::catalog::{normalize_uri, LakeOptions, WarehouseStore};
use crate::schema::{self, TimePartitioning, COL_TIMESTAMP};
use crate::tail::TailBuffer;
use crate::{Error, Result};

/// Snapshot-summary key holding `{"<partition>": next_offset, ...}`.
pub const OFFSETS_PROPERTY: &str = "floe.offsets";
/// Snapshot-summary key holding `{"<partition>": offset, ...}`: the table holds no row of
/// the partition below the offset any more, since DeleteRecords moved the partition's log
/// start there (see [`crate::maintain`]). Every Floe snapshot carries it forward.
pub const DELETED_PROPERTY: &str = "floe.deleted-before";
/// Snapshot-summary key holding the id of the landing round that made the snapshot.
pub const ROUND_PROPERTY: &str = "floe.round";
/// Table property naming the topic a table holds.
pub const TOPIC_PROPERTY: &str = "floe.topic";
/// Table property holding the id of the topic a table holds: a topic deleted and created
/// again under the same name is a different topic, with offsets from 0 again.
pub const TOPIC_ID_PROPERTY: &str = "floe.topic-id";
/// Prefix of every data file Floe writes, `floe-<uuid>-…` (orphan clean-up and snapshot
/// expiry only delete unreferenced files named so).
pub(crate) const FILE_PREFIX: &str = "floe-";

/// How a commit failed: before anything reached the catalog, or in the commit call
/// itself, whose outcome is then unknown.
enum CommitFailure {
    Before(Error),
    Unknown(Error),
}

/// What a landing round did.
#[derive(Debug, Clone, Default)]
pub struct RoundStats {
    /// Snapshot committed.
    pub snapshot_id: i64,
    /// Rows landed.
    pub rows: u64,
    /// Data files written.
    pub files: usize,
    /// Bytes of Parquet written.
    pub bytes: u64,
    /// Time from start of the round to the catalog's answer.
    pub duration: std::time::Duration,
    /// Of `duration`, the time spent encoding and writing the data files (the rest is
    /// waiting for the commit turn, the manifests and the catalog).
    pub write_duration: std::time::Duration,
}

/// The live data files of a table's current snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileCounts {
    /// Data files.
    pub files: u64,
    /// Data files smaller than [`LakeTable::small_file_bytes`].
    pub small_files: u64,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// A topic's table, as the committer and the lake-tier reader see it.
pub struct LakeTable {
    pub(crate) catalog: Arc<dyn Catalog>,
    pub(crate) ident: TableIdent,
    pub(crate) table: RwLock<Table>,
    pub(crate) options: LakeOptions,
    /// Next offset per partition the table covers.
    pub(crate) landed: RwLock<BTreeMap<i32, i64>>,
    pub(crate) by: TimePartitioning,
    /// File counts per manifest path, for [`LakeTable::file_counts`].
    manifest_counts: parking_lot::Mutex<HashMap<String, FileCounts>>,
    /// [`LakeTable::first_offset`] per partition (None: no row), with a snapshot at which
    /// it held: the one it was read at, or a later one reached by appends and replaces
    /// only.
    first_offsets: parking_lot::Mutex<HashMap<i32, (i64, Option<i64>)>>,
    /// Partitions whose first offset a task of [`LakeTable::learn_first_offset`] reads.
    learning: parking_lot::Mutex<HashSet<i32>>,
    /// Those tasks; aborted with the table.
    learners: parking_lot::Mutex<tokio::task::JoinSet<()>>,
    /// Held by whatever changes the table's metadata or deletes unreferenced files: a
    /// landing round (from writing its files to its commit) and each housekeeping commit.
    /// Housekeeping runs beside landing, so its slow parts (reading and rewriting files)
    /// never delay a round; only its commits take turns with them.
    pub(crate) commit_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for LakeTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeTable")
            .field("ident", &self.ident)
            .finish()
    }
}

impl LakeTable {
    /// Loads the topic's table, creating the namespace and the table if needed.
    ///
    /// The table is named after the topic, unchanged: every Kafka topic name
    /// (`[a-zA-Z0-9._-]{1,249}`) is a valid Iceberg table name. A table of that name that
    /// belongs to something else (an earlier topic of the same name, which deleting a
    /// topic leaves behind, or a table Floe did not create) is refused with
    /// [`Error::TableTaken`]: landing into it would skip or mix records.
    ///
    /// # Errors
    /// [`Error::Iceberg`] if the catalog or storage is unreachable or refuses the name,
    /// [`Error::TableTaken`] as above.
    pub async fn open(
        catalog: Arc<dyn Catalog>,
        options: &LakeOptions,
        store: &WarehouseStore,
        topic: &str,
        topic_id: &str,
        by: TimePartitioning,
    ) -> Result<Self> {
        let namespace = NamespaceIdent::new(options.namespace.clone());
        let ident = TableIdent::new(namespace.clone(), topic.to_owned());
        let exists = catalog
            .namespace_exists(&namespace)
            .await
            .map_err(Error::iceberg(format!(
                "checking namespace {}",
                options.namespace
            )))?;
        if !exists {
            match catalog.create_namespace(&namespace, HashMap::new()).await {
                Ok(_) => info!(namespace = %options.namespace, "created Iceberg namespace"),
                // Lost a race with another creator: fine.
                Err(e) if e.kind() == iceberg::ErrorKind::NamespaceAlreadyExists => {}
                Err(e) => {
                    return Err(Error::iceberg(format!(
                        "creating namespace {}",
                        options.namespace
                    ))(e))
                }
            }
        }
        let table = if catalog
            .table_exists(&ident)
            .await
            .map_err(Error::iceberg(format!("checking table {ident}")))?
        {
            let table = catalog
                .load_table(&ident)
                .await
                .map_err(Error::iceberg(format!("loading table {ident}")))?;
            claim(catalog.as_ref(), table, topic, topic_id).await?
        } else {
            let mut location = format!(
                "{}/{}/{}",
                options.warehouse.trim_end_matches('/'),
                options.namespace,
                topic
            );
            // A table dropped without its files (or renamed) may still own this folder;
            // orphan clean-up would delete its files. Such a topic gets its own folder.
            if !store.list_files(&location).await?.is_empty() {
                warn!(table = %ident, %location, "the table's default location holds files of an earlier table; using a folder named after the topic id");
                location = format!("{location}-{topic_id}");
            }
            let creation = TableCreation::builder()
                .name(topic.to_owned())
                .location(location)
                .schema(schema::table_schema()?)
                .partition_spec(schema::partition_spec(by)?)
                .sort_order(schema::sort_order()?)
                .properties([
                    ("write.format.default".to_owned(), "parquet".to_owned()),
                    (
                        "write.parquet.compression-codec".to_owned(),
                        options.compression.clone(),
                    ),
                    (TOPIC_PROPERTY.to_owned(), topic.to_owned()),
                    (TOPIC_ID_PROPERTY.to_owned(), topic_id.to_owned()),
                ])
                .build();
            let table = catalog
                .create_table(&namespace, creation)
                .await
                .map_err(Error::iceberg(format!("creating table {ident}")))?;
            info!(topic, location = %table.metadata().location(), "created Iceberg table");
            table
        };
        let landed = offsets_of(&table)?;
        Ok(Self {
            catalog,
            ident,
            table: RwLock::new(table),
            options: options.clone(),
            landed: RwLock::new(landed),
            by,
            manifest_counts: parking_lot::Mutex::new(HashMap::new()),
            first_offsets: parking_lot::Mutex::new(HashMap::new()),
            learning: parking_lot::Mutex::new(HashSet::new()),
            learners: parking_lot::Mutex::new(tokio::task::JoinSet::new()),
            commit_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The table identifier.
    pub fn ident(&self) -> &TableIdent {
        &self.ident
    }

    /// The table as last loaded or committed.
    pub fn table(&self) -> Table {
        self.table.read().clone()
    }

    /// The catalog.
    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }

    /// Next offset of `partition` that the table covers (0 when it holds none).
    pub fn landed(&self, partition: i32) -> i64 {
        self.landed.read().get(&partition).copied().unwrap_or(0)
    }

    /// The table's DeleteRecords floor for `partition` (`floe.deleted-before`): it holds
    /// no row below it. 0 when DeleteRecords never removed any (or the summary is bad).
    pub fn deleted_before(&self, partition: i32) -> i64 {
        deleted_of(&self.table.read())
            .ok()
            .and_then(|m| m.get(&partition).copied())
            .unwrap_or(0)
    }

    /// The smallest offset of `partition` in the table ([`crate::reader::first_offset`],
    /// which reads files). Kept while only appends and replaces followed the snapshot it
    /// was read at: landing rounds add higher offsets and compaction keeps every row, so
    /// only retention and DeleteRecords purges move it.
    ///
    /// # Errors
    /// Manifest or file reading failures.
    pub async fn first_offset(&self, partition: i32) -> Result<Option<i64>> {
        let table = self.table();
        let metadata = table.metadata();
        if let Some(first) = self.still_known(metadata, partition) {
            return Ok(first);
        }
        let first = crate::reader::first_offset(&table, partition).await?;
        let mut cache = self.first_offsets.lock();
        match metadata.current_snapshot_id() {
            Some(at) => cache.insert(partition, (at, first)),
            None => cache.remove(&partition),
        };
        Ok(first)
    }

    /// [`LakeTable::first_offset`] without I/O: the value last read, if only appends and
    /// replaces (compaction, manifest merges: files rewritten, rows unchanged) followed
    /// the snapshot it was read at (it is exact then). `Some(None)`: the table holds no
    /// row of the partition.
    pub fn known_first_offset(&self, partition: i32) -> Option<Option<i64>> {
        let metadata = self.table.read().metadata_ref();
        self.still_known(&metadata, partition)
    }

    /// Reads [`LakeTable::first_offset`] on a task of its own, unless one already runs
    /// for the partition, so that [`LakeTable::known_first_offset`] has it afterwards.
    pub fn learn_first_offset(self: &Arc<Self>, partition: i32) {
        if !self.learning.lock().insert(partition) {
            return;
        }
        // Weak: the table owns these tasks, which must not keep it alive.
        let table = Arc::downgrade(self);
        let mut learners = self.learners.lock();
        while learners.try_join_next().is_some() {}
        learners.spawn(async move {
            let Some(table) = table.upgrade() else {
                return;
            };
            if let Err(e) = table.first_offset(partition).await {
                // The reads that need the table report the fault; this only retries.
                debug!(table = %table.ident, partition, error = %e, "cannot read the first offset");
            }
            table.learning.lock().remove(&partition);
        });
    }

    /// The kept first offset of `partition` if it still holds at `metadata`'s current
    /// snapshot. The entry then moves to that snapshot, so that later walks are short.
    fn still_known(&self, metadata: &TableMetadata, partition: i32) -> Option<Option<i64>> {
        let mut cache = self.first_offsets.lock();
        let (at, first) = *cache.get(&partition)?;
        let current = metadata.current_snapshot_id()?;
        if first.is_none() && at != current {
            // An append may have landed the partition's first rows since.
            return None;
        }
        let mut snapshot = metadata.current_snapshot();
        while let Some(s) = snapshot {
            if s.snapshot_id() == at {
                cache.insert(partition, (current, first));
                return Some(first);
            }
            // Iceberg's `replace` adds and removes files "without changing table data";
            // retention and DeleteRecords purges commit `delete` or `overwrite`.
            if !matches!(
                s.summary().operation,
                iceberg::spec::Operation::Append | iceberg::spec::Operation::Replace
            ) {
                break;
            }
            snapshot = s
                .parent_snapshot_id()
                .and_then(|p| metadata.snapshot_by_id(p));
        }
        None
    }

    /// The landing round id of the current snapshot.
    fn current_round(&self) -> Option<String> {
        let table = self.table.read();
        let snapshot = table.metadata().current_snapshot()?;
        snapshot
            .summary()
            .additional_properties
            .get(ROUND_PROPERTY)
            .cloned()
    }

    /// Reloads the table from the catalog (after a failure or a foreign commit).
    ///
    /// # Errors
    /// [`Error::Iceberg`] when the catalog cannot be reached.
    pub async fn refresh(&self) -> Result<()> {
        let table = self
            .catalog
            .load_table(&self.ident)
            .await
            .map_err(Error::iceberg(format!("reloading {}", self.ident)))?;
        let landed = offsets_of(&table)?;
        *self.table.write() = table;
        *self.landed.write() = landed;
        Ok(())
    }

    /// One landing round: writes every partition's tail up to `limits[p]` (the durable
    /// offset) as Parquet and commits one append snapshot. Returns None when there was
    /// nothing to land. Tails are trimmed once the commit is known to have happened.
    ///
    /// # Errors
    /// Any write or commit failure; the tails are untouched then and the next round
    /// starts again from the table's `floe.offsets`.
    pub async fn land(
        &self,
        tails: &[Arc<TailBuffer>],
        limits: &[i64],
    ) -> Result<Option<RoundStats>> {
        let started = Instant::now();
        let _turn = self.commit_lock.lock().await;
        let base = self.landed.read().clone();
        let mut batches = Vec::new();
        let mut ends = base.clone();
        for (p, (tail, &limit)) in tails.iter().zip(limits).enumerate() {
            let p = i32::try_from(p).unwrap_or(i32::MAX);
            let from = base.get(&p).copied().unwrap_or(0);
            // The tail may still hold landed rows if a previous round's trim was lost.
            tail.trim(from);
            let (rows, reached) = tail.snapshot(limit);
            if reached > from {
                batches.extend(rows.into_iter().filter(|b| b.num_rows() > 0));
                ends.insert(p, reached);
            }
        }
        if ends == base {
            return Ok(None);
        }
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        let table = self.table();
        let writing = Instant::now();
        let files = if batches.is_empty() {
            // Only control records moved the offsets: commit the summary alone.
            Vec::new()
        } else {
            self.write_files(&table, batches).await?
        };
        let write_duration = writing.elapsed();
        let bytes = files.iter().map(DataFile::file_size_in_bytes).sum();
        let file_count = files.len();
        let round = uuid::Uuid::new_v4().to_string();
        let snapshot_id = match self
            .commit(&table, files.clone(), &base, &ends, &round)
            .await
        {
            Ok(id) => id,
            // Nothing reached the catalog: the files are this round's alone.
            Err(CommitFailure::Before(e)) => {
                self.delete_files(&files).await;
                return Err(e);
            }
            Err(CommitFailure::Unknown(e)) => {
                // The commit may have gone through with only its answer lost: the
                // snapshot then carries this round's id. Otherwise the files are orphans.
                match self.refresh().await {
                    Ok(()) if self.current_round().as_deref() == Some(round.as_str()) => {
                        warn!(table = %self.ident, error = %e, "commit reported an error but is in the table");
                        self.table
                            .read()
                            .metadata()
                            .current_snapshot_id()
                            .unwrap_or(-1)
                    }
                    Ok(()) => {
                        self.delete_files(&files).await;
                        return Err(e);
                    }
                    // Unknown whether the commit happened (the catalog went away): the
                    // files may be referenced now, so they stay. Orphan clean-up, which
                    // runs when the table is opened again, removes them if they are not.
                    Err(_) => return Err(e),
                }
            }
        };
        for (p, tail) in tails.iter().enumerate() {
            let p = i32::try_from(p).unwrap_or(i32::MAX);
            if let Some(&end) = ends.get(&p) {
                tail.trim(end);
            }
        }
        Ok(Some(RoundStats {
            snapshot_id,
            rows,
            files: file_count,
            bytes,
            duration: started.elapsed(),
            write_duration,
        }))
    }

    /// Commits one append snapshot on top of `base`.
    async fn commit(
        &self,
        table: &Table,
        files: Vec<DataFile>,
        base: &BTreeMap<i32, i64>,
        ends: &BTreeMap<i32, i64>,
        round: &str,
    ) -> Result<i64, CommitFailure> {
        let mut summary = HashMap::from([
            (OFFSETS_PROPERTY.to_owned(), offsets_json(ends)),
            (ROUND_PROPERTY.to_owned(), round.to_owned()),
        ]);
        let deleted = deleted_of(table).map_err(CommitFailure::Before)?;
        if !deleted.is_empty() {
            summary.insert(DELETED_PROPERTY.to_owned(), offsets_json(&deleted));
        }
        let tx = Transaction::new(table);
        let tx = tx
            .fast_append()
            .set_snapshot_properties(summary)
            .add_data_files(files)
            .apply(tx)
            .map_err(|e| CommitFailure::Before(Error::iceberg("preparing the append")(e)))?;
        // Guard: the transaction re-applies itself on a refreshed table after a conflict;
        // that is only right if nobody else moved floe.offsets meanwhile.
        let current = self.catalog.load_table(&self.ident).await.map_err(|e| {
            CommitFailure::Before(Error::iceberg(format!("reloading {}", self.ident))(e))
        })?;
        let now = offsets_of(&current).map_err(CommitFailure::Before)?;
        if &now != base {
            *self.landed.write() = now;
            *self.table.write() = current;
            return Err(CommitFailure::Before(Error::Conflict(format!(
                "{} (floe.offsets moved under the committer: another writer?)",
                self.ident
            ))));
        }
        let committed = tx.commit(self.catalog.as_ref()).await.map_err(|e| {
            CommitFailure::Unknown(Error::iceberg(format!("committing to {}", self.ident))(e))
        })?;
        let id = committed.metadata().current_snapshot_id().unwrap_or(-1);
        // The snapshot carries `ends` as its floe.offsets.
        *self.landed.write() = ends.clone();
        *self.table.write() = committed.clone();
        delete_dropped_metadata(table, &committed).await;
        Ok(id)
    }

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

    /// Below this size a data file counts as small: a quarter of the target file size.
    pub fn small_file_bytes(&self) -> u64 {
        self.options.target_file_size as u64 / 4
    }

    /// Counts the live data files of the current snapshot, and the small ones among them.
    ///
    /// Manifests never change once written, so each one is read once and its counts are
    /// kept by path: after a round this reads the manifest list and the round's new
    /// manifest only, however many rounds came before. Meant for after a commit, not for
    /// every scrape.
    ///
    /// # Errors
    /// Manifest list or manifest reading failures.
    pub async fn file_counts(&self) -> Result<FileCounts> {
        let table = self.table();
        let Some(snapshot) = table.metadata().current_snapshot() else {
            return Ok(FileCounts::default());
        };
        let list = table
            .manifest_list_reader(snapshot)
            .load()
            .await
            .map_err(Error::iceberg("reading a manifest list"))?;
        let small = self.small_file_bytes();
        let mut known = std::mem::take(&mut *self.manifest_counts.lock());
        let mut total = FileCounts::default();
        let mut current = HashMap::new();
        for manifest_file in list.entries() {
            if manifest_file.content != iceberg::spec::ManifestContentType::Data {
                continue;
            }
            let path = &manifest_file.manifest_path;
            let counts = match known.remove(path) {
                Some(c) => c,
                None => {
                    let manifest = manifest_file
                        .load_manifest(table.file_io())
                        .await
                        .map_err(Error::iceberg("reading a manifest"))?;
                    let mut c = FileCounts::default();
                    for entry in manifest.entries().iter().filter(|e| e.is_alive()) {
                        let size = entry.file_size_in_bytes();
                        c.files += 1;
                        c.bytes += size;
                        c.small_files += u64::from(size < small);
                    }
                    c
                }
            };
            total.files += counts.files;
            total.small_files += counts.small_files;
            total.bytes += counts.bytes;
            current.insert(path.clone(), counts);
        }
        // Manifests the snapshot no longer lists (rewritten or expired) are forgotten.
        *self.manifest_counts.lock() = current;
        Ok(total)
    }

    /// Deletes data files Floe wrote that no snapshot references: what a crash between
    /// writing Parquet and committing leaves behind. Only call while no round is running
    /// for this table. Returns the files deleted.
    ///
    /// # Errors
    /// Listing or manifest reading failures.
    pub async fn clean_orphans(&self, store: &WarehouseStore) -> Result<Vec<String>> {
        let table = self.table();
        let data_dir = format!("{}/data", table.metadata().location().trim_end_matches('/'));
        let referenced = referenced_files(&table).await?;
        let mut deleted = Vec::new();
        for uri in store.list_files(&data_dir).await? {
            let name = uri.rsplit('/').next().unwrap_or_default();
            if !name.starts_with(FILE_PREFIX) || referenced.contains(&normalize_uri(&uri)) {
                continue;
            }
            store.delete(&uri).await?;
            deleted.push(uri);
        }
        if !deleted.is_empty() {
            info!(table = %self.ident, files = deleted.len(), "deleted orphan data files");
        }
        Ok(deleted)
    }
}

/// Checks that an existing table holds this topic (see [`LakeTable::open`]). A table from
/// a Floe that did not record topic ids yet is adopted: the id is added to it.
async fn claim(catalog: &dyn Catalog, table: Table, topic: &str, topic_id: &str) -> Result<Table> {
    let ident = table.identifier().clone();
    let props = table.metadata().properties();
    let taken = |reason: String| Error::TableTaken {
        table: ident.to_string(),
        topic: topic.to_owned(),
        reason,
    };
    match (
        props.get(TOPIC_PROPERTY).map(String::as_str),
        props.get(TOPIC_ID_PROPERTY).map(String::as_str),
    ) {
        (Some(t), Some(id)) if t == topic && id == topic_id => Ok(table),
        (Some(t), Some(id)) if t == topic => Err(taken(format!(
            "it holds an earlier topic of the same name (topic id {id}, this topic's is \
             {topic_id}); drop it (with its files) or rename it and landing starts by itself"
        ))),
        (Some(t), None) if t == topic => {
            let tx = Transaction::new(&table);
            let tx = tx
                .update_table_properties()
                .set(TOPIC_ID_PROPERTY.to_owned(), topic_id.to_owned())
                .apply(tx)
                .map_err(Error::iceberg("preparing the topic id property"))?;
            let table = tx
                .commit(catalog)
                .await
                .map_err(Error::iceberg(format!("recording the topic id on {ident}")))?;
            info!(table = %ident, topic_id, "recorded the topic id on a table created before topic ids were kept");
            Ok(table)
        }
        (other, _) => Err(taken(format!(
            "Floe did not create it for this topic ({TOPIC_PROPERTY} = {other:?}); drop or \
             rename it and landing starts by itself"
        ))),
    }
}

/// Every data file alive in any snapshot still in the table's metadata.
///
/// # Errors
/// Manifest list or manifest reading failures.
pub async fn referenced_files(table: &Table) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    let mut seen_manifests = HashSet::new();
    for snapshot in table.metadata().snapshots() {
        let list = table
            .manifest_list_reader(snapshot)
            .load()
            .await
            .map_err(Error::iceberg("reading a manifest list"))?;
        for manifest_file in list.entries() {
            if !seen_manifests.insert(manifest_file.manifest_path.clone()) {
                continue;
            }
            let manifest = manifest_file
                .load_manifest(table.file_io())
                .await
                .map_err(Error::iceberg("reading a manifest"))?;
            // A deleted entry only records the removal; the snapshots that still use
            // the file list it as alive.
            for entry in manifest.entries().iter().filter(|e| e.is_alive()) {
                out.insert(normalize_uri(entry.file_path()));
            }
        }
    }
    Ok(out)
}

/// `floe.offsets` of the table's current snapshot (empty for a new table).
///
/// # Errors
/// [`Error::BadOffsetsSummary`] when the property does not parse.
pub fn offsets_of(table: &Table) -> Result<BTreeMap<i32, i64>> {
    summary_offsets(table, OFFSETS_PROPERTY)
}

/// `floe.deleted-before` of the table's current snapshot (empty when DeleteRecords never
/// removed rows).
///
/// # Errors
/// [`Error::BadOffsetsSummary`] when the property does not parse.
pub fn deleted_of(table: &Table) -> Result<BTreeMap<i32, i64>> {
    summary_offsets(table, DELETED_PROPERTY)
}

/// A per-partition offset map from the snapshot summary.
fn summary_offsets(table: &Table, key: &str) -> Result<BTreeMap<i32, i64>> {
    // A snapshot another engine made (a Spark rewrite, say) has no Floe properties; they
    // are then those of its nearest ancestor that has them. Every Floe snapshot has
    // `floe.offsets` and carries the others when they are not empty, so the walk ends at
    // the first Floe snapshot: a table that never had DeleteRecords is not walked back
    // through its whole snapshot history (thousands at 2 s rounds) on every lookup.
    let meta = table.metadata();
    let mut next = meta.current_snapshot();
    while let Some(snapshot) = next {
        let props = &snapshot.summary().additional_properties;
        if let Some(raw) = props.get(key) {
            return parse_offsets(raw).map_err(|reason| Error::BadOffsetsSummary {
                snapshot_id: snapshot.snapshot_id(),
                reason,
            });
        }
        if props.contains_key(OFFSETS_PROPERTY) {
            break;
        }
        next = snapshot
            .parent_snapshot_id()
            .and_then(|id| meta.snapshot_by_id(id));
    }
    Ok(BTreeMap::new())
}

fn parse_offsets(raw: &str) -> std::result::Result<BTreeMap<i32, i64>, String> {
    let map: BTreeMap<String, i64> = serde_json::from_str(raw).map_err(|e| e.to_string())?;
    map.into_iter()
        .map(|(k, v)| {
            k.parse::<i32>()
                .map(|p| (p, v))
                .map_err(|e| format!("{k}: {e}"))
        })
        .collect()
}

pub(crate) fn offsets_json(offsets: &BTreeMap<i32, i64>) -> String {
    let map: BTreeMap<String, i64> = offsets.iter().map(|(p, o)| (p.to_string(), *o)).collect();
    serde_json::to_string(&map).unwrap_or_default()
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

/// A landing round is cut into lanes only when each gets at least this much Arrow data,
/// so that a round at a low produce rate still makes one file per time partition.
pub(crate) const LANE_MIN_BYTES: usize = 16 << 20;

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

/// Deletes the metadata files `before` listed (its own and its metadata log) that `after`,
/// the table it was committed into, no longer lists.
///
/// Every commit writes a new metadata file, and each one holds every live snapshot, so
/// they grow with the history: at a round every 2 s, a day's files would add up to
/// hundreds of GB. Iceberg keeps the last `write.metadata.previous-versions-max` (100) in
/// the metadata log; iceberg-rust leaves the ones that drop out on disk. This deletes
/// them at once, like Java's `write.metadata.delete-after-commit.enabled`. A failed delete
/// only leaves the file for the next snapshot expiry, which deletes every metadata file
/// the log does not list.
pub(crate) async fn delete_dropped_metadata(before: &Table, after: &Table) {
    let keep: HashSet<String> = after
        .metadata()
        .metadata_log()
        .iter()
        .map(|e| normalize_uri(&e.metadata_file))
        .chain(after.metadata_location().map(normalize_uri))
        .collect();
    let listed = before
        .metadata()
        .metadata_log()
        .iter()
        .map(|e| e.metadata_file.as_str())
        .chain(before.metadata_location());
    for file in listed {
        if keep.contains(&normalize_uri(file)) {
            continue;
        }
        if let Err(e) = after.file_io().delete(file).await {
            warn!(file, error = %e, "could not delete a metadata file the log no longer lists; snapshot expiry will");
        }
    }
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
    fn offsets_summary_round_trips() {
        let map = BTreeMap::from([(0, 10), (3, 7)]);
        assert_eq!(parse_offsets(&offsets_json(&map)).expect("parse"), map);
        assert!(parse_offsets("{\"x\":1}").is_err());
        assert!(parse_offsets("nope").is_err());
    }

    #[test]
    fn compression_names() {
        assert!(validate_compression("zstd").is_ok());
        assert!(validate_compression("brotli9").is_err());
    }
}
