//! The landing round: one append snapshot per round, committed only on top of the
//! `floe.offsets` it started from (see the parent module), and the metadata files a
//! commit drops.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use iceberg::spec::DataFile;
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use tracing::warn;

use crate::catalog::normalize_uri;
use crate::pointer::MetadataPointer;
use crate::tail::TailBuffer;
use crate::{Error, Result};

use super::*;

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
    /// Rows whose typed key or value did not decode (they landed with `typed_error`).
    pub typed_errors: u64,
}

impl LakeTable {
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
        self.land_typed(tails, limits, None).await
    }

    /// [`Self::land`] for a topic whose keys or values land typed as well
    /// ([`crate::typed`]): the round reads the schemas it needs, adds the columns a new
    /// schema version brings to the table (a schema-only commit before the data's), and
    /// writes the typed columns beside the raw ones.
    ///
    /// # Errors
    /// As [`Self::land`], and a failed schema change. A record that does not decode is
    /// no error: it lands with `typed_error` set.
    pub async fn land_typed(
        &self,
        tails: &[Arc<TailBuffer>],
        limits: &[i64],
        typed: Option<&crate::typed::TypedLanding>,
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
        let plan = match typed {
            Some(t) if !batches.is_empty() => {
                t.learn_messages(self.table().metadata().properties());
                Some(t.plan(&batches).await.map_err(Error::Registry)?)
            }
            _ => None,
        };
        if let (Some(plan), Some(typed)) = (&plan, typed) {
            // Renames and promotions first: the fields they keep are then found by name.
            self.reshape(plan, typed).await?;
            self.evolve(plan).await?;
        }
        let table = self.table();
        // After the schema commit: the Protobuf writers' schemas it stored say which
        // values are rebuilt from their typed column.
        let plan = plan.map(|p| p.with_stored(table.metadata().properties()));
        if let (Some(p), Some(t)) = (&plan, typed) {
            t.remember(p);
        }
        let batches = self.to_table_layout(&table, batches, plan.as_ref())?;
        let typed_errors = crate::typed::error_count(&batches);
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
            typed_errors,
        }))
    }

    /// Adds the columns `plan` needs that the table lacks, the Avro and Protobuf writers'
    /// schemas its rebuilt values need (table properties, see [`crate::typed::rebuild`]
    /// and [`crate::typed::proto_rebuild`]; a Protobuf schema once its fields all have
    /// columns, so from the round after one that adds them) and the
    /// Protobuf schema that shapes its typed columns now ([`crate::typed::shape_property`]), in a
    /// commit of its own before the data's (it changes no offsets, so a crash after it
    /// only leaves the columns and properties there).
    async fn evolve(&self, plan: &crate::typed::Plan) -> Result<()> {
        let table = self.table();
        let adds = plan.additions(table.metadata().current_schema());
        let held = table.metadata().properties();
        let properties: Vec<(String, String)> = plan
            .writer_properties()
            .into_iter()
            .chain(plan.shape_properties())
            .filter(|(k, v)| held.get(k) != Some(v))
            .chain(plan.protobuf_properties(table.metadata().current_schema(), held))
            .collect();
        if adds.is_empty() && properties.is_empty() {
            return Ok(());
        }
        let (count, schemas) = (adds.len(), properties.len());
        let mut tx = Transaction::new(&table);
        if !adds.is_empty() {
            let mut action = tx.update_schema();
            for add in adds {
                action = action.add_column(add);
            }
            tx = action
                .apply(tx)
                .map_err(Error::iceberg("preparing the schema change"))?;
        }
        if !properties.is_empty() {
            let mut action = tx.update_table_properties();
            for (k, v) in properties {
                action = action.set(k, v);
            }
            tx = action
                .apply(tx)
                .map_err(Error::iceberg("preparing the writer schemas' properties"))?;
        }
        let updated = tx
            .commit(self.catalog.as_ref())
            .await
            .map_err(Error::iceberg(format!(
                "adding typed columns to {}",
                self.ident
            )))?;
        tracing::info!(table = %self.ident, schema_id = updated.metadata().current_schema_id(), columns_added = count, writer_schemas_stored = schemas, "table schema evolved");
        *self.table.write() = updated;
        Ok(())
    }

    /// Renames the typed columns' fields that a Protobuf version renamed (same number)
    /// since the schema the table's column was last shaped with, and widens those the
    /// plan's latest schemas promote (int to long, float to double, a decimal's
    /// precision), keeping their field ids ([`crate::typed::Plan::reshaped_schema`]).
    /// iceberg-rust 0.10's schema update can neither rename nor change a type, so the new
    /// schema is committed as housekeeping commits: new metadata written beside the old,
    /// and the SQL catalog's pointer swapped if nobody committed meanwhile. Tables in an
    /// external REST catalog are left as they are (the registry refuses promotions for
    /// them; a renamed field becomes a new column there).
    async fn reshape(
        &self,
        plan: &crate::typed::Plan,
        typed: &crate::typed::TypedLanding,
    ) -> Result<()> {
        if !self.promotes_types() {
            return Ok(());
        }
        let table = self.table();
        let shapes = typed
            .shapes(table.metadata().properties())
            .await
            .map_err(Error::Registry)?;
        let Some(schema) = plan.reshaped_schema(table.metadata().current_schema(), &shapes)? else {
            return Ok(());
        };
        let old_location = table
            .metadata_location()
            .ok_or_else(|| Error::TableState(format!("{} has no metadata location", self.ident)))?
            .to_owned();
        let meta = table
            .metadata()
            .clone()
            .into_builder(Some(old_location))
            .add_current_schema(schema)
            .and_then(|b| b.build())
            .map_err(Error::iceberg("building the reshaped schema"))?
            .metadata;
        let pointer = MetadataPointer::connect(&self.options).await?;
        let location = crate::maintain::write_next_metadata(&table, &meta).await?;
        self.swap_to(&pointer, &table, &location, std::slice::from_ref(&location))
            .await?;
        tracing::info!(table = %self.ident, schema_id = self.table().metadata().current_schema_id(), "typed columns renamed or widened");
        Ok(())
    }

    /// The round's batches in the table's current layout: typed columns decoded with
    /// `plan`, columns the batches lack (the topic was typed once) null.
    fn to_table_layout(
        &self,
        table: &Table,
        batches: Vec<arrow_array::RecordBatch>,
        plan: Option<&crate::typed::Plan>,
    ) -> Result<Vec<arrow_array::RecordBatch>> {
        let target = crate::schema::current_arrow_schema(table)?;
        batches
            .iter()
            .map(|b| match plan {
                Some(p) => p.apply(b, &target),
                None => crate::typed::conform(b, &target),
            })
            .collect()
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
