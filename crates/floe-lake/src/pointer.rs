//! The metadata-pointer swap for commits iceberg-rust cannot express.
//!
//! iceberg-rust 0.10 offers fast-append and snapshot expiry as transactions, but no
//! rewrite or delete of data files, and its `TableCommit` cannot be built outside the
//! crate. Housekeeping therefore writes the new table metadata itself (with iceberg-rust's
//! public manifest, manifest-list and metadata builders) and swaps the catalog's pointer
//! to it exactly as the SQL catalog does: one conditional `UPDATE` that only succeeds if
//! the pointer still names the metadata the change was built on. A lost race changes
//! nothing and is reported as [`Error::Conflict`].

use iceberg::TableIdent;
use sqlx::any::{install_default_drivers, AnyPoolOptions};
use sqlx::AnyPool;

use crate::catalog::{redact, CatalogKind, LakeOptions, CATALOG_NAME};
use crate::{Error, Result};

/// Swaps a table's metadata pointer in the catalog Floe commits to.
#[derive(Debug, Clone)]
pub struct MetadataPointer {
    pool: AnyPool,
    dollar: bool,
}

impl MetadataPointer {
    /// Connects to the SQL catalog's database. With an external REST catalog there is no
    /// pointer Floe may swap: housekeeping is then the catalog owner's job.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a REST catalog, [`Error::Database`] when the database is down.
    pub async fn connect(options: &LakeOptions) -> Result<Self> {
        let uri = match &options.catalog {
            CatalogKind::Sql { uri } => uri,
            CatalogKind::Rest { uri } => {
                return Err(Error::Unsupported(format!(
                    "table housekeeping (retention, compaction, snapshot expiry) needs Floe's SQL catalog; the external REST catalog at {uri} must run its own maintenance"
                )))
            }
        };
        install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            .connect(uri)
            .await
            .map_err(Error::sql(format!(
                "connecting to the catalog at {}",
                redact(uri)
            )))?;
        Ok(Self {
            pool,
            dollar: !uri.starts_with("sqlite:"),
        })
    }

    /// Points `ident` at `new` if it still points at `old`. Returns false when it did not
    /// (someone else committed); an error means the outcome is unknown.
    ///
    /// # Errors
    /// [`Error::Database`] when the database fails.
    pub async fn swap(&self, ident: &TableIdent, old: &str, new: &str) -> Result<bool> {
        let sql =
            "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? \
             WHERE catalog_name = ? AND table_namespace = ? AND table_name = ? \
             AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL) AND metadata_location = ?";
        let sql = if self.dollar {
            numbered(sql)
        } else {
            sql.to_owned()
        };
        let namespace = ident.namespace().join(".");
        let done = sqlx::query(&sql)
            .bind(new)
            .bind(old)
            .bind(CATALOG_NAME)
            .bind(namespace)
            .bind(ident.name())
            .bind(old)
            .execute(&self.pool)
            .await
            .map_err(Error::sql(format!(
                "swapping the metadata pointer of {ident}"
            )))?;
        Ok(done.rows_affected() == 1)
    }
}

/// `?` placeholders as `$1, $2, ...` (Postgres).
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(super::numbered("a = ? AND b = ?"), "a = $1 AND b = $2");
    }
}
