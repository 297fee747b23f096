//! One topic's Iceberg table: opening and claiming it, the `floe.offsets` bookkeeping,
//! what it knows of each partition, file counts and orphan clean-up. The landing round is
//! in `table/round.rs`, the writer configuration and data files in
//! `table/writer.rs`.
//!
//! Exactly once rests on one rule: a snapshot's summary says, per partition, the next
//! offset the table covers (`floe.offsets`), and a round only commits if the table it
//! commits on top of still says what the round started from. After any failure the
//! committer reloads the table and trusts only that summary.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use iceberg::spec::TableMetadata;
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, NamespaceIdent, TableCreation, TableIdent};
use parking_lot::RwLock;
use tracing::{debug, info, warn};

use crate::catalog::{normalize_uri, LakeOptions, WarehouseStore};
use crate::schema::{self, TimePartitioning};
use crate::{Error, Result};

mod round;
mod writer;

pub(crate) use round::delete_dropped_metadata;
pub use round::RoundStats;
pub use writer::{validate_compression, writer_properties};

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

    /// Whether the table follows Iceberg's type promotions of its typed columns
    /// (`typed::widened`): only in Floe's SQL catalog, whose pointer it may swap.
    pub fn promotes_types(&self) -> bool {
        matches!(
            self.options.catalog,
            crate::catalog::CatalogKind::Sql { .. }
        )
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

/// A landing round is cut into lanes only when each gets at least this much Arrow data,
/// so that a round at a low produce rate still makes one file per time partition.
pub(crate) const LANE_MIN_BYTES: usize = 16 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_summary_round_trips() {
        let map = BTreeMap::from([(0, 10), (3, 7)]);
        assert_eq!(parse_offsets(&offsets_json(&map)).expect("parse"), map);
        assert!(parse_offsets("{\"x\":1}").is_err());
        assert!(parse_offsets("nope").is_err());
    }
}
