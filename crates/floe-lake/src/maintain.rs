//! Table housekeeping: topic retention, compaction of small files, manifest merge,
//! snapshot expiry.
//!
//! Each step is one atomic catalog commit, run on a task of its own beside the topic's
//! landing rounds; its commits take turns with theirs through the table's commit lock,
//! each on a freshly reloaded table. Each keeps `floe.offsets` as it was:
//!
//! - **Retention** drops whole data files whose newest record is older than the topic's
//!   `retention.ms` (a `delete` snapshot), like Kafka dropping whole segments.
//! - **DeleteRecords** removes the rows below each partition's new log start: files
//!   holding only such rows are dropped, files holding some are rewritten without them
//!   (an `overwrite` snapshot, or `delete` when no file needed a rewrite). The snapshot
//!   records the floors reached in `floe.deleted-before`, which every later Floe
//!   snapshot carries, so a floor is applied once and survives the loss of the broker's
//!   disk.
//! - **Compaction** rewrites small files of one time partition into target-size files (a
//!   `replace` snapshot). The rewritten files carry their own `partition`/`offset` bounds
//!   in the new manifest, which is what lake-tier reads plan on, so the (partition,
//!   offset) → file mapping changes in the same commit as the data.
//! - **Manifest merge** writes the live entries of the current snapshot's data manifests
//!   into one (a `replace` snapshot that changes no data file) once there are more than
//!   [`Housekeeping::merge_manifests_above`]: every landing round adds one.
//! - **Snapshot thinning** keeps the last hour's snapshots and one tagged snapshot per
//!   hour back to `lake.snapshot.retention.ms`, within a size budget, so the metadata
//!   file stays small however old the topic (`crate::snapshots`); then deletes the files
//!   no remaining snapshot uses.
//!
//! Crash safety: new files are written before the commit; a crash before the pointer swap
//! leaves unreferenced files only, which the orphan clean-up at the next start deletes
//! (data files) or the next snapshot expiry deletes (manifests; no snapshot reads them).
//! Files are only ever deleted once no snapshot in the committed metadata references
//! them, so a crash after the swap cannot lose data, and readers holding an older
//! snapshot keep working until it expires.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;

use arrow_array::RecordBatch;
use iceberg::spec::{
    DataContentType, DataFile, FormatVersion, Literal, ManifestContentType, ManifestEntry,
    ManifestFile, ManifestListWriter, ManifestWriterBuilder, Operation, PrimitiveLiteral, Snapshot,
    SnapshotReference, SnapshotRetention, Summary, TableMetadata, MAIN_BRANCH,
};
use iceberg::table::Table;
use iceberg::MetadataLocation;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tracing::{info, warn};

use crate::catalog::{normalize_uri, WarehouseStore};
use crate::pointer::MetadataPointer;
use crate::schema;
use crate::table::{
    FileCounts, LakeTable, DELETED_PROPERTY, FILE_PREFIX, OFFSETS_PROPERTY, ROUND_PROPERTY,
};
use crate::{Error, Result};

/// What housekeeping may do this time.
#[derive(Debug, Clone)]
pub struct Housekeeping {
    /// Wall clock, ms since the epoch.
    pub now_ms: i64,
    /// Topic `retention.ms`; None keeps data forever.
    pub retention_ms: Option<i64>,
    /// `lake.snapshot.retention.ms`: no snapshot older than this stays.
    pub snapshot_retention_ms: i64,
    /// Which snapshots younger than that stay (see `crate::snapshots`).
    pub snapshot_windows: crate::snapshots::SnapshotWindows,
    /// Files below this size are small (compaction candidates, the small-file metric).
    pub small_file_bytes: u64,
    /// Compact a time partition once it has this many small files of one size tier.
    pub compact_min_files: usize,
    /// Merge the current snapshot's data manifests into one once it lists more than
    /// this many. Every landing round adds a manifest (iceberg-rust's fast append never
    /// merges), and every scan plan reads them all.
    pub merge_manifests_above: usize,
    /// Kafka DeleteRecords floors per partition: rows below them are removed (once
    /// landed). Partitions DeleteRecords never moved may be left out.
    pub deleted_before: BTreeMap<i32, i64>,
}

/// [`Housekeeping::merge_manifests_above`] in the broker: Iceberg's
/// `commit.manifest.min-count-to-merge` default.
pub const MERGE_MANIFESTS_ABOVE: usize = 100;

/// What one housekeeping pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HousekeepingReport {
    /// Data files dropped by retention.
    pub expired_files: usize,
    /// Rows in them.
    pub expired_rows: u64,
    /// Data files dropped or rewritten for DeleteRecords.
    pub purged_files: usize,
    /// Rows they removed.
    pub purged_rows: u64,
    /// Small files rewritten by compaction.
    pub compacted_files: usize,
    /// Files they became.
    pub compacted_into: usize,
    /// Data manifests merged into one (0: no merge this pass).
    pub manifests_merged: usize,
    /// Snapshots removed.
    pub snapshots_expired: usize,
    /// Snapshots tagged to stay past the dense window.
    pub snapshots_tagged: usize,
    /// Files deleted from storage (data files and metadata no snapshot uses any more).
    pub files_deleted: usize,
    /// Data files, small ones and bytes in the current snapshot after the pass.
    pub counts: FileCounts,
}

/// A live data file of the current snapshot, with the entry that tracks it.
#[derive(Debug, Clone)]
pub struct LiveFile {
    /// The manifest listing it.
    pub manifest: String,
    /// Its entry (sequence numbers inherited).
    pub entry: ManifestEntry,
}

impl LiveFile {
    fn file(&self) -> &DataFile {
        self.entry.data_file()
    }

    /// Lower bound of a long/int column (field id), if the writer kept one.
    fn lower(&self, field_id: i32) -> Option<i64> {
        schema::long_bound(self.file().lower_bounds().get(&field_id))
    }

    fn bucket(&self) -> Option<i32> {
        match self.file().partition().iter().next().flatten() {
            Some(Literal::Primitive(PrimitiveLiteral::Int(v))) => Some(*v),
            _ => None,
        }
    }

    /// Upper bound of a long/int/timestamp column (field id), if the writer kept one.
    fn upper(&self, field_id: i32) -> Option<i64> {
        schema::long_bound(self.file().upper_bounds().get(&field_id))
    }
}

/// The live data files of the table's current snapshot.
///
/// # Errors
/// Manifest list or manifest reading failures.
pub async fn live_files(table: &Table) -> Result<Vec<LiveFile>> {
    let Some(snapshot) = table.metadata().current_snapshot() else {
        return Ok(Vec::new());
    };
    let list = table
        .manifest_list_reader(snapshot)
        .load()
        .await
        .map_err(Error::iceberg("reading a manifest list"))?;
    let mut out = Vec::new();
    for mf in list.entries() {
        if mf.content != ManifestContentType::Data {
            continue;
        }
        let manifest = mf
            .load_manifest(table.file_io())
            .await
            .map_err(Error::iceberg("reading a manifest"))?;
        for entry in manifest.entries().iter().filter(|e| e.is_alive()) {
            out.push(LiveFile {
                manifest: mf.manifest_path.clone(),
                entry: entry.as_ref().clone(),
            });
        }
    }
    Ok(out)
}

impl LakeTable {
    /// One housekeeping pass: retention, then compaction, then snapshot expiry. Only call
    /// from the committer, between landing rounds.
    ///
    /// # Errors
    /// Any read, write or commit failure; what committed before it stays committed.
    pub async fn housekeep(
        &self,
        pointer: &MetadataPointer,
        store: &WarehouseStore,
        policy: &Housekeeping,
    ) -> Result<HousekeepingReport> {
        let mut report = HousekeepingReport::default();
        {
            // A refresh racing a round's commit could put an older table back in place.
            let _turn = self.commit_lock.lock().await;
            self.refresh().await?;
        }
        let mut live = live_files(&self.table()).await?;
        if let Some(retention_ms) = policy.retention_ms {
            let cutoff_us = policy
                .now_ms
                .saturating_sub(retention_ms)
                .saturating_mul(1000);
            let expired: Vec<LiveFile> = live
                .iter()
                .filter(|f| f.upper(schema::ID_TIMESTAMP).is_some_and(|t| t < cutoff_us))
                .cloned()
                .collect();
            if !expired.is_empty() {
                report.expired_rows = expired.iter().map(|f| f.file().record_count()).sum();
                report.expired_files = expired.len();
                self.commit_rewrite(
                    pointer,
                    &expired,
                    Vec::new(),
                    Operation::Delete,
                    false,
                    None,
                )
                .await?;
                info!(table = %self.ident, files = report.expired_files, rows = report.expired_rows, "retention dropped expired data files");
                // What compaction may pick from: the files retention left.
                let gone: HashSet<&str> = expired.iter().map(|f| f.file().file_path()).collect();
                live.retain(|f| !gone.contains(f.file().file_path()));
            }
        }
        if let Some((files, rows)) = self.purge_deleted(pointer, &live, policy).await? {
            report.purged_files = files;
            report.purged_rows = rows;
            info!(table = %self.ident, files, rows, "removed rows DeleteRecords deleted");
            live = live_files(&self.table()).await?;
        }
        for group in compaction_groups(&live, policy) {
            let added = self.rewrite_rows(&group).await?;
            let into = added.len();
            self.commit_rewrite(pointer, &group, added, Operation::Replace, false, None)
                .await?;
            report.compacted_files += group.len();
            report.compacted_into += into;
        }
        if report.compacted_files > 0 {
            info!(table = %self.ident, files = report.compacted_files, into = report.compacted_into, "compacted small files");
        }
        let manifests = self.data_manifest_count().await?;
        if manifests > policy.merge_manifests_above {
            self.commit_rewrite(pointer, &[], Vec::new(), Operation::Replace, true, None)
                .await?;
            report.manifests_merged = manifests;
            info!(table = %self.ident, manifests, "merged the data manifests into one");
        }
        let (expired, tagged, deleted) = self.thin_snapshots(pointer, store, policy).await?;
        report.snapshots_expired = expired;
        report.snapshots_tagged = tagged;
        report.files_deleted = deleted;
        report.counts = self.file_counts().await?;
        Ok(report)
    }

    /// Removes the rows below the DeleteRecords floors that the table still holds, in one
    /// commit that also records the floors reached in `floe.deleted-before`. Only rows
    /// that have landed can go: a floor above the table's `floe.offsets` is applied up
    /// to those, and the rest at a later pass. Returns (files dropped or rewritten, rows
    /// removed), or None when there was nothing to do.
    async fn purge_deleted(
        &self,
        pointer: &MetadataPointer,
        live: &[LiveFile],
        policy: &Housekeeping,
    ) -> Result<Option<(usize, u64)>> {
        let applied = crate::table::deleted_of(&self.table())?;
        let mut floors = applied.clone();
        // Per partition, the offsets to remove now: [applied floor, new floor).
        let mut ranges = BTreeMap::new();
        for (&p, &floor) in &policy.deleted_before {
            let from = applied.get(&p).copied().unwrap_or(0);
            let to = floor.min(self.landed(p));
            if to > from {
                ranges.insert(p, (from, to));
                floors.insert(p, to);
            }
        }
        if ranges.is_empty() {
            return Ok(None);
        }
        // Candidates by the files' column bounds, which span all partitions of a file.
        let candidates = live.iter().filter(|f| {
            let (plo, phi) = (f.lower(schema::ID_PARTITION), f.upper(schema::ID_PARTITION));
            let (lo, hi) = (f.lower(schema::ID_OFFSET), f.upper(schema::ID_OFFSET));
            ranges.iter().any(|(&p, &(from, to))| {
                let p = i64::from(p);
                plo.is_none_or(|v| v <= p)
                    && phi.is_none_or(|v| p <= v)
                    && lo.is_none_or(|v| v < to)
                    && hi.is_none_or(|v| v >= from)
            })
        });
        let io = self.table().file_io().clone();
        // The table's own layout: a typed table's rows keep their typed columns (before
        // 2026-12-07 the raw layout was used, which failed for every typed table).
        let target = schema::current_arrow_schema(&self.table())?;
        let (mut removed, mut added, mut rows) = (Vec::new(), Vec::new(), 0u64);
        for f in candidates {
            let path = f.file().file_path();
            let bytes = io
                .new_input(path)
                .map_err(Error::iceberg("opening a data file"))?
                .read()
                .await
                .map_err(Error::iceberg(format!("reading {path} for DeleteRecords")))?;
            let (schema, cut) = (target.clone(), floors.clone());
            let kept = tokio::task::spawn_blocking(move || {
                read_sorted(vec![bytes], &schema).and_then(|all| rows_at_or_above(&all, &cut))
            })
            .await
            .map_err(|source| Error::Task {
                what: "the DeleteRecords read",
                source,
            })??;
            let gone = f
                .file()
                .record_count()
                .saturating_sub(kept.num_rows() as u64);
            if gone == 0 {
                continue;
            }
            rows += gone;
            if kept.num_rows() > 0 {
                match self.write_files(&self.table(), vec![kept]).await {
                    Ok(files) => added.extend(files),
                    Err(e) => {
                        self.delete_files(&added).await;
                        return Err(e);
                    }
                }
            }
            removed.push(f.clone());
        }
        let operation = if added.is_empty() {
            Operation::Delete
        } else {
            Operation::Overwrite
        };
        // Also when no row was left to remove (control records, or retention got there
        // first): the floors are recorded, so the files are not read again.
        self.commit_rewrite(pointer, &removed, added, operation, false, Some(&floors))
            .await?;
        Ok(Some((removed.len(), rows)))
    }

    /// Reads the rows of `files`, sorted by (partition, offset), and writes them as
    /// target-size files. The rows all belong to one time partition.
    async fn rewrite_rows(&self, files: &[LiveFile]) -> Result<Vec<DataFile>> {
        let table = self.table();
        let io = table.file_io().clone();
        let mut raw = Vec::with_capacity(files.len());
        for f in files {
            let bytes = io
                .new_input(f.file().file_path())
                .map_err(Error::iceberg("opening a data file"))?
                .read()
                .await
                .map_err(Error::iceberg(format!(
                    "reading {} for compaction",
                    f.file().file_path()
                )))?;
            raw.push(bytes);
        }
        // The table's own layout, as for DeleteRecords above.
        let target = schema::current_arrow_schema(&table)?;
        let rows = tokio::task::spawn_blocking(move || read_sorted(raw, &target))
            .await
            .map_err(|source| Error::Task {
                what: "the compaction read",
                source,
            })??;
        self.write_files(&table, vec![rows]).await
    }

    /// Data manifests the current snapshot lists.
    async fn data_manifest_count(&self) -> Result<usize> {
        let table = self.table();
        let Some(snapshot) = table.metadata().current_snapshot() else {
            return Ok(0);
        };
        let list = table
            .manifest_list_reader(snapshot)
            .load()
            .await
            .map_err(Error::iceberg("reading a manifest list"))?;
        Ok(list
            .entries()
            .iter()
            .filter(|m| m.content == ManifestContentType::Data)
            .count())
    }

    /// Commits a snapshot that removes `removed` and adds `added`, keeping `floe.offsets`,
    /// and `floe.deleted-before` unless `deleted` replaces it. With `merge`, the live
    /// entries of every data manifest go into one new manifest.
    async fn commit_rewrite(
        &self,
        pointer: &MetadataPointer,
        removed: &[LiveFile],
        added: Vec<DataFile>,
        operation: Operation,
        merge: bool,
        deleted: Option<&BTreeMap<i32, i64>>,
    ) -> Result<i64> {
        // Rounds may have committed since the files were picked: build on the table as
        // it is now, with no round committing meanwhile.
        let _turn = self.commit_lock.lock().await;
        self.refresh().await?;
        let table = self.table();
        let written = self
            .write_rewrite(&table, removed, &added, operation, merge, deleted)
            .await;
        let (new_location, mut files) = match written {
            Ok(w) => w,
            Err(e) => {
                self.delete_files(&added).await;
                return Err(e);
            }
        };
        files.extend(added.iter().map(|f| f.file_path().to_owned()));
        self.swap_to(pointer, &table, &new_location, &files).await?;
        Ok(self.table().metadata().current_snapshot_id().unwrap_or(-1))
    }

    /// Makes `new_location` (metadata built on `table`, already written) the table's
    /// current metadata if the catalog still points at `table`'s, then deletes the
    /// metadata files that dropped out of its log. When someone else committed first,
    /// deletes `written` (the change's own files) and reports [`Error::Conflict`]; when
    /// the outcome is unknown, keeps them.
    ///
    /// # Errors
    /// As above, and a catalog that cannot be read.
    pub(crate) async fn swap_to(
        &self,
        pointer: &MetadataPointer,
        table: &Table,
        new_location: &str,
        written: &[String],
    ) -> Result<()> {
        let old_location = table
            .metadata_location()
            .ok_or_else(|| Error::TableState(format!("{} has no metadata location", self.ident)))?
            .to_owned();
        let swapped = pointer.swap(&self.ident, &old_location, new_location).await;
        let ours = match swapped {
            Ok(done) => done,
            // Unknown outcome: believe the catalog, and delete nothing unless it answers.
            Err(e) => match self.refresh().await {
                Ok(()) => self.table().metadata_location() == Some(new_location),
                Err(_) => {
                    warn!(table = %self.ident, error = %e, "metadata swap outcome unknown; keeping its files");
                    return Err(e);
                }
            },
        };
        if !ours {
            delete_written(table.file_io(), written).await;
            self.refresh().await?;
            return Err(Error::Conflict(self.ident.to_string()));
        }
        self.refresh().await?;
        crate::table::delete_dropped_metadata(table, &self.table()).await;
        Ok(())
    }

    /// Writes manifests, manifest list and metadata for a rewrite; returns the new metadata
    /// location and every file written (for clean-up if the swap is refused).
    async fn write_rewrite(
        &self,
        table: &Table,
        removed: &[LiveFile],
        added: &[DataFile],
        operation: Operation,
        merge: bool,
        deleted: Option<&BTreeMap<i32, i64>>,
    ) -> Result<(String, Vec<String>)> {
        let meta = table.metadata();
        if meta.format_version() != FormatVersion::V2 {
            return Err(Error::Unsupported(format!(
                "{}: housekeeping writes format-v2 tables only",
                self.ident
            )));
        }
        let parent = meta
            .current_snapshot()
            .ok_or_else(|| Error::TableState(format!("{} has no snapshot", self.ident)))?;
        let io = table.file_io();
        let location = meta.location().trim_end_matches('/');
        let commit = uuid::Uuid::new_v4();
        let snapshot_id = new_snapshot_id(table);
        let sequence = meta.next_sequence_number();
        let schema = meta.current_schema().clone();
        let spec = meta.default_partition_spec().as_ref().clone();
        let mut written = Vec::new();
        let mut counter = 0;
        let mut new_writer = |written: &mut Vec<String>| -> Result<_> {
            counter += 1;
            let path = format!("{location}/metadata/{commit}-m{counter}.avro");
            written.push(path.clone());
            let out = io
                .new_output(&path)
                .map_err(Error::iceberg("creating a manifest"))?;
            Ok(
                ManifestWriterBuilder::new(out, Some(snapshot_id), schema.clone(), spec.clone())
                    .build_v2_data(),
            )
        };

        let gone: HashSet<&str> = removed.iter().map(|f| f.file().file_path()).collect();
        let touched: HashSet<&str> = removed.iter().map(|f| f.manifest.as_str()).collect();
        let list = table
            .manifest_list_reader(parent)
            .load()
            .await
            .map_err(Error::iceberg("reading a manifest list"))?;
        let mut manifests: Vec<ManifestFile> = Vec::new();
        let mut found = 0;
        // When merging, one writer takes every data manifest's live entries.
        let mut merged = None;
        for mf in list.entries() {
            let rewrite = if merge {
                mf.content == ManifestContentType::Data
            } else {
                touched.contains(mf.manifest_path.as_str())
            };
            if !rewrite {
                manifests.push(mf.clone());
                continue;
            }
            let manifest = mf
                .load_manifest(io)
                .await
                .map_err(Error::iceberg("reading a manifest"))?;
            let mut own = None;
            let w = if merge {
                if merged.is_none() {
                    merged = Some(new_writer(&mut written)?);
                }
                merged.as_mut()
            } else {
                Some(own.insert(new_writer(&mut written)?))
            }
            .ok_or_else(|| Error::TableState("no manifest writer".into()))?;
            for e in manifest.entries().iter().filter(|e| e.is_alive()) {
                let seq = e.sequence_number().unwrap_or(mf.sequence_number);
                let file_seq = e.file_sequence_number.or(Some(seq));
                let file = e.data_file().clone();
                if gone.contains(file.file_path()) {
                    found += 1;
                    w.add_delete_file(file, seq, file_seq)
                } else {
                    w.add_existing_file(
                        file,
                        e.snapshot_id().unwrap_or(mf.added_snapshot_id),
                        seq,
                        file_seq,
                    )
                }
                .map_err(Error::iceberg("writing a manifest entry"))?;
            }
            if let Some(w) = own {
                manifests.push(
                    w.write_manifest_file()
                        .await
                        .map_err(Error::iceberg("writing a manifest"))?,
                );
            }
        }
        if let Some(w) = merged {
            manifests.push(
                w.write_manifest_file()
                    .await
                    .map_err(Error::iceberg("writing a manifest"))?,
            );
        }
        if found != gone.len() {
            // Another engine removed some of them since they were picked: replacing the
            // rest would duplicate rows. The next pass picks again.
            delete_written(io, &written).await;
            return Err(Error::Conflict(format!(
                "{} ({} of the {} files to rewrite are no longer live)",
                self.ident,
                gone.len() - found,
                gone.len()
            )));
        }
        if !added.is_empty() {
            let mut w = new_writer(&mut written)?;
            for f in added {
                w.add_file(f.clone(), sequence)
                    .map_err(Error::iceberg("writing a manifest entry"))?;
            }
            manifests.push(
                w.write_manifest_file()
                    .await
                    .map_err(Error::iceberg("writing a manifest"))?,
            );
        }

        let list_path = format!("{location}/metadata/snap-{snapshot_id}-0-{commit}.avro");
        written.push(list_path.clone());
        let out = io
            .new_output(&list_path)
            .map_err(Error::iceberg("creating a manifest list"))?
            .writer()
            .await
            .map_err(Error::iceberg("creating a manifest list"))?;
        let mut lw = ManifestListWriter::v2(out, snapshot_id, Some(parent.snapshot_id()), sequence);
        lw.add_manifests(manifests.into_iter())
            .map_err(Error::iceberg("writing a manifest list"))?;
        lw.close()
            .await
            .map_err(Error::iceberg("writing a manifest list"))?;

        let summary = rewrite_summary(
            table,
            removed,
            added,
            operation,
            &commit.to_string(),
            deleted,
        )
        .await?;
        let snapshot = Snapshot::builder()
            .with_manifest_list(list_path)
            .with_snapshot_id(snapshot_id)
            .with_parent_snapshot_id(Some(parent.snapshot_id()))
            .with_sequence_number(sequence)
            .with_summary(summary)
            .with_schema_id(meta.current_schema_id())
            .with_timestamp_ms(floe_common::now_ms())
            .build();
        let old_location = table
            .metadata_location()
            .ok_or_else(|| Error::TableState(format!("{} has no metadata location", self.ident)))?;
        let new_meta = meta
            .clone()
            .into_builder(Some(old_location.to_owned()))
            .add_snapshot(snapshot)
            .and_then(|b| {
                b.set_ref(
                    MAIN_BRANCH,
                    SnapshotReference::new(
                        snapshot_id,
                        SnapshotRetention::branch(None, None, None),
                    ),
                )
            })
            .and_then(|b| b.build())
            .map_err(Error::iceberg("building table metadata"))?
            .metadata;
        let new_location = MetadataLocation::from_str(old_location)
            .map_err(Error::iceberg("parsing the metadata location"))?
            .with_next_version()
            .with_new_metadata(&new_meta);
        written.push(new_location.to_string());
        new_meta
            .write_to(io, &new_location)
            .await
            .map_err(Error::iceberg("writing table metadata"))?;
        Ok((new_location.to_string(), written))
    }

    /// Removes and tags snapshots as `crate::snapshots::plan` says for `policy` (the
    /// current one always stays), committed by a metadata-pointer swap, then deletes data
    /// files, manifests and manifest lists no remaining snapshot uses, and metadata files
    /// the table's log no longer lists. Returns (snapshots removed, snapshots tagged,
    /// files deleted).
    async fn thin_snapshots(
        &self,
        pointer: &MetadataPointer,
        store: &WarehouseStore,
        policy: &Housekeeping,
    ) -> Result<(usize, usize, usize)> {
        // Also keeps a round's files, written but not yet committed, from looking unused.
        let _turn = self.commit_lock.lock().await;
        self.refresh().await?;
        let table = self.table();
        let meta = table.metadata();
        let plan = crate::snapshots::plan(
            meta,
            policy.now_ms,
            policy.snapshot_retention_ms,
            &policy.snapshot_windows,
        );
        if plan.is_empty() {
            return Ok((0, 0, 0));
        }
        let old_location = table
            .metadata_location()
            .ok_or_else(|| Error::TableState(format!("{} has no metadata location", self.ident)))?
            .to_owned();
        let mut builder = meta.clone().into_builder(Some(old_location.clone()));
        for (name, id) in &plan.new_tags {
            builder = builder
                .set_ref(
                    name,
                    SnapshotReference::new(
                        *id,
                        SnapshotRetention::Tag {
                            max_ref_age_ms: Some(policy.snapshot_retention_ms),
                        },
                    ),
                )
                .map_err(Error::iceberg("tagging a snapshot"))?;
        }
        for name in &plan.removed_tags {
            builder = builder.remove_ref(name);
        }
        let new_meta = builder
            .remove_snapshots(&plan.removed)
            .build()
            .map_err(Error::iceberg("building table metadata"))?
            .metadata;
        let new_location = write_next_metadata(&table, &new_meta).await?;
        self.swap_to(
            pointer,
            &table,
            &new_location,
            std::slice::from_ref(&new_location),
        )
        .await?;
        let deleted = self.delete_unused(store).await?;
        info!(table = %self.ident, removed = plan.removed.len(), tagged = plan.new_tags.len(),
            kept = plan.kept, files = deleted, "thinned snapshots");
        Ok((plan.removed.len(), plan.new_tags.len(), deleted))
    }

    /// Deletes what no snapshot of the committed metadata uses.
    async fn delete_unused(&self, store: &WarehouseStore) -> Result<usize> {
        let table = self.table();
        let meta = table.metadata();
        let mut keep: HashSet<String> = HashSet::new();
        for snapshot in meta.snapshots() {
            keep.insert(normalize_uri(snapshot.manifest_list()));
            let list = table
                .manifest_list_reader(snapshot)
                .load()
                .await
                .map_err(Error::iceberg("reading a manifest list"))?;
            for mf in list.entries() {
                keep.insert(normalize_uri(&mf.manifest_path));
            }
        }
        for entry in meta.metadata_log() {
            keep.insert(normalize_uri(&entry.metadata_file));
        }
        if let Some(loc) = table.metadata_location() {
            keep.insert(normalize_uri(loc));
        }
        let data = crate::table::referenced_files(&table).await?;
        let root = meta.location().trim_end_matches('/');
        let mut deleted = 0;
        for uri in store.list_files(&format!("{root}/data")).await? {
            let name = uri.rsplit('/').next().unwrap_or_default();
            if name.starts_with(FILE_PREFIX) && !data.contains(&normalize_uri(&uri)) {
                store.delete(&uri).await?;
                deleted += 1;
            }
        }
        for uri in store.list_files(&format!("{root}/metadata")).await? {
            let name = uri.rsplit('/').next().unwrap_or_default();
            let ours = name.ends_with(".avro") || name.ends_with(".metadata.json");
            if ours && !keep.contains(&normalize_uri(&uri)) {
                store.delete(&uri).await?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

/// Groups of small files worth compacting: per time partition, per size tier (files
/// within a factor of 4 of each other), `compact_min_files` or more. Tiering keeps a
/// partition that grows by small rounds from being rewritten whole every pass.
fn compaction_groups(live: &[LiveFile], policy: &Housekeeping) -> Vec<Vec<LiveFile>> {
    if policy.compact_min_files < 2 {
        return Vec::new();
    }
    let mut tiers: BTreeMap<(Option<i32>, u32), Vec<LiveFile>> = BTreeMap::new();
    for f in live {
        let size = f.file().file_size_in_bytes();
        if size >= policy.small_file_bytes || f.file().content_type() != DataContentType::Data {
            continue;
        }
        let tier = (size.max(1).ilog2()) / 2;
        tiers.entry((f.bucket(), tier)).or_default().push(f.clone());
    }
    tiers
        .into_values()
        .filter(|g| g.len() >= policy.compact_min_files)
        .map(|mut g| {
            // Bound one rewrite's memory: about four target files of input.
            let mut total = 0u64;
            g.retain(|f| {
                total += f.file().file_size_in_bytes();
                total <= policy.small_file_bytes.saturating_mul(16)
            });
            g
        })
        .filter(|g| g.len() >= 2)
        .collect()
}

/// Decodes Parquet files and returns their rows in one batch sorted by (partition,
/// offset), in the table's Arrow schema.
fn read_sorted(files: Vec<bytes::Bytes>, target: &arrow_schema::SchemaRef) -> Result<RecordBatch> {
    let mut batches = Vec::new();
    for bytes in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(|e| Error::Encode(format!("reading Parquet for compaction: {e}")))?;
        for batch in reader {
            let batch = batch.map_err(Error::arrow("reading Parquet for compaction"))?;
            // On the table schema: field metadata may differ, and a typed topic's file
            // written before its schema gained or widened fields has the older types
            // (before 2026-12-07 such files failed every compaction they were picked for).
            batches.push(
                crate::evolve::conform(&batch, target)
                    .map_err(Error::arrow("matching compacted rows to the table schema"))?,
            );
        }
    }
    let all = arrow_select::concat::concat_batches(target, &batches)
        .map_err(Error::arrow("concatenating rows to compact"))?;
    let Some((p, o)) = schema::partition_and_offset(&all) else {
        return Err(Error::Encode("partition/offset columns missing".into()));
    };
    let mut idx: Vec<u32> = (0..u32::try_from(all.num_rows()).unwrap_or(u32::MAX)).collect();
    idx.sort_unstable_by_key(|&i| (p.value(i as usize), o.value(i as usize)));
    let idx = arrow_array::UInt32Array::from(idx);
    let columns = all
        .columns()
        .iter()
        .map(|c| arrow_select::take::take(c, &idx, None))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(Error::arrow("sorting rows to compact"))?;
    RecordBatch::try_new(all.schema(), columns).map_err(Error::arrow("sorting rows to compact"))
}

/// The rows of `all` at or above their partition's floor in `floors` (all rows of a
/// partition without one).
fn rows_at_or_above(all: &RecordBatch, floors: &BTreeMap<i32, i64>) -> Result<RecordBatch> {
    let Some((p, o)) = schema::partition_and_offset(all) else {
        return Err(Error::Encode("partition/offset columns missing".into()));
    };
    let keep: arrow_array::BooleanArray = (0..all.num_rows())
        .map(|i| Some(floors.get(&p.value(i)).is_none_or(|&f| o.value(i) >= f)))
        .collect();
    arrow_select::filter::filter_record_batch(all, &keep)
        .map_err(Error::arrow("removing deleted rows"))
}

/// The summary of a rewrite: `floe.offsets` unchanged, `floe.deleted-before` carried or
/// replaced by `deleted`, Iceberg's added/deleted/total counters for engines that show
/// them.
async fn rewrite_summary(
    table: &Table,
    removed: &[LiveFile],
    added: &[DataFile],
    operation: Operation,
    round: &str,
    deleted: Option<&BTreeMap<i32, i64>>,
) -> Result<Summary> {
    let parent = table.metadata().current_snapshot();
    let mut props = HashMap::new();
    if let Some(offsets) =
        parent.and_then(|s| s.summary().additional_properties.get(OFFSETS_PROPERTY))
    {
        props.insert(OFFSETS_PROPERTY.to_owned(), offsets.clone());
    }
    let deleted = match deleted {
        Some(d) => d.clone(),
        None => crate::table::deleted_of(table)?,
    };
    if !deleted.is_empty() {
        props.insert(
            DELETED_PROPERTY.to_owned(),
            crate::table::offsets_json(&deleted),
        );
    }
    props.insert(ROUND_PROPERTY.to_owned(), round.to_owned());
    let rows = |fs: &mut dyn Iterator<Item = &DataFile>| -> (u64, u64, u64) {
        fs.fold((0, 0, 0), |(n, r, b), f| {
            (n + 1, r + f.record_count(), b + f.file_size_in_bytes())
        })
    };
    let (del_n, del_r, del_b) = rows(&mut removed.iter().map(LiveFile::file));
    let (add_n, add_r, add_b) = rows(&mut added.iter());
    // Totals carry forward from the parent's summary (every Floe and iceberg-rust
    // snapshot writes them); only a snapshot without them costs a manifest read.
    let total = |k: &str| {
        parent
            .and_then(|s| s.summary().additional_properties.get(k))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let (all_n, all_r, all_b) = match (
        total("total-data-files"),
        total("total-records"),
        total("total-files-size"),
    ) {
        (Some(n), Some(r), Some(b)) => (n, r, b),
        _ => rows(&mut live_files(table).await?.iter().map(LiveFile::file)),
    };
    for (k, v) in [
        ("added-data-files", add_n),
        ("added-records", add_r),
        ("added-files-size", add_b),
        ("deleted-data-files", del_n),
        ("deleted-records", del_r),
        ("removed-files-size", del_b),
        ("total-data-files", all_n + add_n - del_n),
        ("total-records", all_r + add_r - del_r),
        ("total-files-size", all_b + add_b - del_b),
        ("total-delete-files", 0),
        ("total-position-deletes", 0),
        ("total-equality-deletes", 0),
    ] {
        props.insert(k.to_owned(), v.to_string());
    }
    Ok(Summary {
        operation,
        additional_properties: props,
    })
}

fn new_snapshot_id(table: &Table) -> i64 {
    loop {
        let (a, b) = uuid::Uuid::new_v4().as_u64_pair();
        let id = ((a ^ b) & (i64::MAX as u64)) as i64;
        if id != 0 && table.metadata().snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

/// Writes `meta`, built on `table`, as the table's next metadata file; returns its
/// location.
///
/// # Errors
/// The table has no metadata location, or the write failed.
pub(crate) async fn write_next_metadata(table: &Table, meta: &TableMetadata) -> Result<String> {
    let old_location = table.metadata_location().ok_or_else(|| {
        Error::TableState(format!("{} has no metadata location", table.identifier()))
    })?;
    let new_location = MetadataLocation::from_str(old_location)
        .map_err(Error::iceberg("parsing the metadata location"))?
        .with_next_version()
        .with_new_metadata(meta);
    meta.write_to(table.file_io(), &new_location)
        .await
        .map_err(Error::iceberg("writing table metadata"))?;
    Ok(new_location.to_string())
}

/// Best-effort removal of the files of a rewrite that did not commit.
async fn delete_written(io: &iceberg::io::FileIO, written: &[String]) {
    for f in written {
        if let Err(e) = io.delete(f).await {
            warn!(file = %f, error = %e, "could not delete a file of an abandoned rewrite");
        }
    }
}
