//! The schema registry's rows: schemas by global id, subjects' versions, and the
//! compatibility level and mode per subject. The registry's rules (what may be
//! registered, what a delete means) live in `floe-registry`; these are its queries.

use sqlx::any::AnyRow;
use sqlx::Row;
use tracing::debug;

use crate::{Error, MetaStore, Result};

/// A schema as stored under its global id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSchema {
    /// Global id (from 1).
    pub id: i64,
    /// `AVRO`, `PROTOBUF` or `JSON`.
    pub schema_type: String,
    /// The schema text as registered.
    pub schema: String,
    /// The references, a JSON array of `{name, subject, version}`.
    pub refs: String,
}

/// One version of a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectVersion {
    /// Subject name.
    pub subject: String,
    /// Version (from 1).
    pub version: i64,
    /// The schema's global id.
    pub schema_id: i64,
    /// Soft-deleted: hidden unless a caller asks for deleted versions.
    pub deleted: bool,
}

/// A per-subject setting of the registry (the empty subject is the global one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrySetting {
    /// The compatibility level (`BACKWARD`, ...).
    Compatibility,
    /// The mode (`READWRITE`, `READONLY`, ...).
    Mode,
}

impl RegistrySetting {
    fn column(self) -> &'static str {
        match self {
            RegistrySetting::Compatibility => "compatibility",
            RegistrySetting::Mode => "mode",
        }
    }
}

/// Attempts at registering a version when another writer takes the same version number
/// at the same moment (several brokers on one Postgres).
const REGISTER_ATTEMPTS: usize = 5;

impl MetaStore {
    /// The schema with global id `id`.
    pub async fn registry_schema(&self, id: i64) -> Result<Option<StoredSchema>> {
        const OP: &str = "registry_schema";
        self.run(OP, async {
            let row = sqlx::query(
                "SELECT id, schema_type, schema_text, refs FROM registry_schemas WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(self.db(OP))?;
            row.map(|r| self.schema_from_row(OP, &r)).transpose()
        })
        .await
    }

    /// The global id of the schema with this fingerprint, if one is stored.
    pub async fn registry_schema_id(&self, fingerprint: &str) -> Result<Option<i64>> {
        const OP: &str = "registry_schema_id";
        self.run(OP, async {
            let row = sqlx::query("SELECT id FROM registry_schemas WHERE fingerprint = $1")
                .bind(fingerprint)
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(self.db(OP))?;
            row.map(|r| r.try_get::<i64, _>("id").map_err(self.db(OP)))
                .transpose()
        })
        .await
    }

    /// Versions of `subject` (all subjects when None), soft-deleted ones included, sorted
    /// by subject (byte order) and version.
    pub async fn registry_versions(&self, subject: Option<&str>) -> Result<Vec<SubjectVersion>> {
        const OP: &str = "registry_versions";
        self.run(OP, async {
            let query = match subject {
                Some(s) => sqlx::query(
                    "SELECT subject, version, schema_id, deleted FROM registry_versions \
                     WHERE subject = $1",
                )
                .bind(s),
                None => sqlx::query(
                    "SELECT subject, version, schema_id, deleted FROM registry_versions",
                ),
            };
            let rows = query
                .fetch_all(&self.inner.pool)
                .await
                .map_err(self.db(OP))?;
            let mut versions = rows
                .iter()
                .map(|r| self.version_from_row(OP, r))
                .collect::<Result<Vec<_>>>()?;
            versions.sort_by(|a, b| (&a.subject, a.version).cmp(&(&b.subject, b.version)));
            Ok(versions)
        })
        .await
    }

    /// Registers the schema (`fingerprint` identifies its type, text and references)
    /// under `subject` as the next version, in one transaction: the schema gets the
    /// stored id for its fingerprint or a new one, the version is one past the highest
    /// the subject ever had (soft-deleted versions included). Returns (id, version).
    pub async fn registry_register(
        &self,
        subject: &str,
        schema_type: &str,
        schema: &str,
        refs: &str,
        fingerprint: &str,
    ) -> Result<(i64, i64)> {
        const OP: &str = "registry_register";
        self.run(OP, async {
            for _ in 0..REGISTER_ATTEMPTS {
                let mut tx = self.inner.pool.begin().await.map_err(self.db(OP))?;
                let existing = sqlx::query("SELECT id FROM registry_schemas WHERE fingerprint = $1")
                    .bind(fingerprint)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(self.db(OP))?;
                let id: i64 = match existing {
                    Some(row) => row.try_get("id").map_err(self.db(OP))?,
                    None => {
                        let row = sqlx::query(
                            "UPDATE registry_id_allocator SET next_id = next_id + 1 \
                             WHERE id = 1 RETURNING next_id",
                        )
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(self.db(OP))?;
                        let id = row.try_get::<i64, _>("next_id").map_err(self.db(OP))? - 1;
                        let inserted = sqlx::query(
                            "INSERT INTO registry_schemas (id, schema_type, schema_text, refs, fingerprint) \
                             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                        )
                        .bind(id)
                        .bind(schema_type)
                        .bind(schema)
                        .bind(refs)
                        .bind(fingerprint)
                        .execute(&mut *tx)
                        .await
                        .map_err(self.db(OP))?;
                        if inserted.rows_affected() == 0 {
                            // Another writer stored the same schema first: use its id.
                            continue;
                        }
                        id
                    }
                };
                let row = sqlx::query(
                    "SELECT COALESCE(MAX(version), 0) AS v FROM registry_versions WHERE subject = $1",
                )
                .bind(subject)
                .fetch_one(&mut *tx)
                .await
                .map_err(self.db(OP))?;
                let version = row.try_get::<i64, _>("v").map_err(self.db(OP))? + 1;
                let inserted = sqlx::query(
                    "INSERT INTO registry_versions (subject, version, schema_id, deleted) \
                     VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING",
                )
                .bind(subject)
                .bind(version)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(self.db(OP))?;
                if inserted.rows_affected() == 0 {
                    continue;
                }
                tx.commit().await.map_err(self.db(OP))?;
                debug!(subject, id, version, "schema version registered");
                return Ok((id, version));
            }
            Err(Error::InvalidArgument {
                op: OP,
                reason: format!(
                    "subject {subject:?} kept changing under {REGISTER_ATTEMPTS} attempts to register"
                ),
            })
        })
        .await
    }

    /// Marks `subject`'s `version` (every version when None) soft-deleted. Returns the
    /// versions it marked.
    pub async fn registry_soft_delete(&self, subject: &str, version: Option<i64>) -> Result<u64> {
        const OP: &str = "registry_soft_delete";
        self.run(OP, async {
            let query = match version {
                Some(v) => sqlx::query(
                    "UPDATE registry_versions SET deleted = 1 \
                     WHERE subject = $1 AND version = $2 AND deleted = 0",
                )
                .bind(subject)
                .bind(v),
                None => sqlx::query(
                    "UPDATE registry_versions SET deleted = 1 WHERE subject = $1 AND deleted = 0",
                )
                .bind(subject),
            };
            let done = query.execute(&self.inner.pool).await.map_err(self.db(OP))?;
            Ok(done.rows_affected())
        })
        .await
    }

    /// Removes `subject`'s soft-deleted `version` (every soft-deleted version when None)
    /// for good, and the schemas no version refers to any more; with no version left,
    /// the subject's settings go too. Returns the versions removed.
    pub async fn registry_hard_delete(&self, subject: &str, version: Option<i64>) -> Result<u64> {
        const OP: &str = "registry_hard_delete";
        self.run(OP, async {
            let mut tx = self.inner.pool.begin().await.map_err(self.db(OP))?;
            let query = match version {
                Some(v) => sqlx::query(
                    "DELETE FROM registry_versions WHERE subject = $1 AND version = $2 AND deleted = 1",
                )
                .bind(subject)
                .bind(v),
                None => sqlx::query(
                    "DELETE FROM registry_versions WHERE subject = $1 AND deleted = 1",
                )
                .bind(subject),
            };
            let removed = query
                .execute(&mut *tx)
                .await
                .map_err(self.db(OP))?
                .rows_affected();
            sqlx::query(
                "DELETE FROM registry_schemas WHERE id NOT IN (SELECT schema_id FROM registry_versions)",
            )
            .execute(&mut *tx)
            .await
            .map_err(self.db(OP))?;
            sqlx::query(
                "DELETE FROM registry_config WHERE subject = $1 \
                 AND NOT EXISTS (SELECT 1 FROM registry_versions WHERE subject = $1)",
            )
            .bind(subject)
            .execute(&mut *tx)
            .await
            .map_err(self.db(OP))?;
            tx.commit().await.map_err(self.db(OP))?;
            debug!(subject, ?version, removed, "schema versions removed");
            Ok(removed)
        })
        .await
    }

    /// A setting of `subject` ("" for the global one), if set there.
    pub async fn registry_setting(
        &self,
        subject: &str,
        setting: RegistrySetting,
    ) -> Result<Option<String>> {
        const OP: &str = "registry_setting";
        let sql = format!(
            "SELECT {} AS value FROM registry_config WHERE subject = $1",
            setting.column()
        );
        self.run(OP, async {
            let row = sqlx::query(&sql)
                .bind(subject)
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(self.db(OP))?;
            Ok(match row {
                Some(r) => r
                    .try_get::<Option<String>, _>("value")
                    .map_err(self.db(OP))?,
                None => None,
            })
        })
        .await
    }

    /// Sets (`Some`) or clears (`None`) a setting of `subject` ("" for the global one).
    pub async fn registry_set_setting(
        &self,
        subject: &str,
        setting: RegistrySetting,
        value: Option<&str>,
    ) -> Result<()> {
        const OP: &str = "registry_set_setting";
        let column = setting.column();
        let sql = format!(
            "INSERT INTO registry_config (subject, {column}) VALUES ($1, $2) \
             ON CONFLICT (subject) DO UPDATE SET {column} = excluded.{column}"
        );
        self.run(OP, async {
            sqlx::query(&sql)
                .bind(subject)
                .bind(value)
                .execute(&self.inner.pool)
                .await
                .map_err(self.db(OP))?;
            debug!(subject, setting = column, ?value, "registry setting stored");
            Ok(())
        })
        .await
    }

    fn schema_from_row(&self, op: &'static str, row: &AnyRow) -> Result<StoredSchema> {
        let db = self.db(op);
        Ok(StoredSchema {
            id: row.try_get("id").map_err(&db)?,
            schema_type: row.try_get("schema_type").map_err(&db)?,
            schema: row.try_get("schema_text").map_err(&db)?,
            refs: row.try_get("refs").map_err(&db)?,
        })
    }

    fn version_from_row(&self, op: &'static str, row: &AnyRow) -> Result<SubjectVersion> {
        let db = self.db(op);
        let deleted: i64 = row.try_get("deleted").map_err(&db)?;
        Ok(SubjectVersion {
            subject: row.try_get("subject").map_err(&db)?,
            version: row.try_get("version").map_err(&db)?,
            schema_id: row.try_get("schema_id").map_err(&db)?,
            deleted: deleted != 0,
        })
    }
}
