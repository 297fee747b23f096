//! Catalog and object-store set-up: which Iceberg catalog holds the tables (SQL in
//! SQLite or Postgres, or an external REST catalog) and where the files live (local
//! directory or S3, through opendal).

use std::collections::HashMap;
use std::sync::Arc;

use iceberg::{Catalog, CatalogBuilder};
use iceberg_catalog_rest::RestCatalogBuilder;
use iceberg_catalog_sql::SqlCatalogBuilder;
use opendal::Operator;

use crate::storage::PiecewiseStorageFactory;
use crate::{Error, Result};

/// Which catalog Floe commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogKind {
    /// An Iceberg SQL catalog (`sqlite://...` or `postgres://...`).
    Sql {
        /// Database URL.
        uri: String,
    },
    /// An external Iceberg REST catalog, as a client.
    Rest {
        /// Base URI (`http://host:8181`).
        uri: String,
    },
}

/// Everything the lake needs to know about where tables live.
#[derive(Debug, Clone)]
pub struct LakeOptions {
    /// The catalog.
    pub catalog: CatalogKind,
    /// Warehouse root: an absolute `file:/...` URI or `s3://bucket/prefix`.
    pub warehouse: String,
    /// Iceberg namespace holding the topic tables (`kafka`).
    pub namespace: String,
    /// FileIO properties (`s3.endpoint`, `s3.region`, `s3.access-key-id`,
    /// `s3.secret-access-key`, `s3.path-style-access`), passed to readers too.
    pub storage: HashMap<String, String>,
    /// Parquet compression (`zstd`, `snappy`, `gzip`, `lz4`, `none`).
    pub compression: String,
    /// Roll to a new data file past this size.
    pub target_file_size: usize,
    /// Most threads a landing round encodes Parquet on at once (at least 1). A round is
    /// cut into contiguous lanes of at least 16 MiB, so smaller rounds use one.
    pub write_threads: usize,
}

/// The catalog name Floe registers its tables under (SQL catalog rows, REST prefix).
pub const CATALOG_NAME: &str = "floe";

/// Connects to the configured catalog.
///
/// # Errors
/// [`Error::Iceberg`] when the catalog is unreachable or rejects the configuration.
pub async fn open_catalog(options: &LakeOptions) -> Result<Arc<dyn Catalog>> {
    let factory = Arc::new(PiecewiseStorageFactory::new());
    let mut props = options.storage.clone();
    props.insert("warehouse".into(), options.warehouse.clone());
    match &options.catalog {
        CatalogKind::Sql { uri } => {
            probe_database(uri).await?;
            props.insert("uri".into(), uri.clone());
            let style = if uri.starts_with("sqlite:") {
                "QMark"
            } else {
                "DollarNumeric"
            };
            props.insert("sql_bind_style".into(), style.into());
            let catalog = SqlCatalogBuilder::default()
                .with_storage_factory(factory)
                .load(CATALOG_NAME, props)
                .await
                .map_err(Error::iceberg(format!(
                    "opening the SQL catalog at {}",
                    redact(uri)
                )))?;
            Ok(Arc::new(catalog))
        }
        CatalogKind::Rest { uri } => {
            props.insert("uri".into(), uri.clone());
            let catalog = RestCatalogBuilder::default()
                .with_storage_factory(factory)
                .load(CATALOG_NAME, props)
                .await
                .map_err(Error::iceberg(format!("opening the REST catalog at {uri}")))?;
            Ok(Arc::new(catalog))
        }
    }
}

/// How long the one connection attempt of [`probe_database`] may take.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens and closes one connection to the SQL catalog's database. The catalog's own pool
/// retries a refused connection until its 30 s acquire timeout and then reports only
/// "pool timed out"; one direct attempt fails at once and says why ("Connection
/// refused", "unable to open database file").
///
/// A SQLite catalog is switched to write-ahead logging on this connection (the mode is
/// kept in the database file, so the catalog's own connections use it too), as the
/// metadata store is. In SQLite's default rollback-journal mode each commit created,
/// fsynced and deleted a journal file beside the database and fsynced the database; with
/// WAL a commit appends to the `-wal` file and fsyncs it once (`synchronous` stays FULL:
/// a commit is as durable as before). With the catalog on the partition logs' disk,
/// its commit once per landing round still shows in the slowest acknowledgements
/// (p99.9 7–12 ms against 2.5 ms with the catalog elsewhere, docs/benchmarks.md); WAL
/// mode did not measurably change that.
async fn probe_database(uri: &str) -> Result<()> {
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    let context = || format!("connecting to the SQL catalog at {}", redact(uri));
    let attempt = tokio::time::timeout(PROBE_TIMEOUT, sqlx::AnyConnection::connect(uri)).await;
    match attempt {
        Ok(Ok(mut conn)) => {
            if uri.starts_with("sqlite:") {
                conn.execute("PRAGMA journal_mode = WAL")
                    .await
                    .map_err(|source| Error::Database {
                        context: format!(
                            "switching the SQL catalog at {} to write-ahead logging",
                            redact(uri)
                        ),
                        source: Box::new(source),
                    })?;
            }
            // A failed close only leaves a connection for the server to time out.
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(source)) => Err(Error::Database {
            context: context(),
            source: Box::new(source),
        }),
        Err(_) => Err(Error::Timeout {
            operation: context(),
            after: PROBE_TIMEOUT,
        }),
    }
}

/// Hides the password of a database URL in log lines.
pub fn redact(uri: &str) -> String {
    match (uri.find("://"), uri.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &uri[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &uri[..scheme + 3], &uri[at..]),
                None => uri.to_owned(),
            }
        }
        _ => uri.to_owned(),
    }
}

/// An opendal operator over the warehouse, for what FileIO cannot do (listing, for orphan
/// clean-up), plus the function that maps a file URI to the operator's path.
#[derive(Clone)]
pub struct WarehouseStore {
    op: Operator,
    /// URI prefix that maps to the operator's root (`file:` or `s3://bucket`).
    prefix: String,
}

impl WarehouseStore {
    /// Builds the operator for `options.warehouse`.
    ///
    /// # Errors
    /// [`Error::Config`] for an unsupported scheme, [`Error::Storage`] if opendal refuses.
    pub fn new(options: &LakeOptions) -> Result<Self> {
        let w = options.warehouse.as_str();
        if let Some(rest) = w.strip_prefix("s3://").or_else(|| w.strip_prefix("s3a://")) {
            let bucket = rest.split('/').next().unwrap_or_default();
            let get = |k: &str| options.storage.get(k).cloned();
            let mut builder = opendal::services::S3::default().bucket(bucket).root("/");
            if let Some(endpoint) = get("s3.endpoint") {
                builder = builder.endpoint(&endpoint);
            }
            builder = builder.region(&get("s3.region").unwrap_or_else(|| "us-east-1".into()));
            if let Some(key) = get("s3.access-key-id") {
                builder = builder.access_key_id(&key);
            }
            if let Some(secret) = get("s3.secret-access-key") {
                builder = builder.secret_access_key(&secret);
            }
            if get("s3.path-style-access").as_deref() != Some("true") {
                builder = builder.enable_virtual_host_style();
            }
            let op = Operator::new(builder)
                .map_err(Error::storage("configuring S3"))?
                .finish();
            let scheme = if w.starts_with("s3a://") { "s3a" } else { "s3" };
            Ok(Self {
                op,
                prefix: format!("{scheme}://{bucket}"),
            })
        } else if w.starts_with("file:/") {
            let op = Operator::new(opendal::services::Fs::default().root("/"))
                .map_err(Error::storage("configuring the local warehouse"))?
                .finish();
            Ok(Self {
                op,
                prefix: "file:".into(),
            })
        } else {
            Err(Error::Config(format!(
                "warehouse {w:?} must be an absolute file:/ URI or s3://bucket/prefix"
            )))
        }
    }

    /// The operator path of a file URI (None if it is outside this store).
    fn path_of(&self, uri: &str) -> Option<String> {
        let rest = uri.strip_prefix(&self.prefix)?;
        // file:///a, file:/a and s3://bucket/a all map to "a" under root "/".
        Some(rest.trim_start_matches('/').to_owned())
    }

    fn uri_of(&self, path: &str) -> String {
        if self.prefix == "file:" {
            format!("file:/{path}")
        } else {
            format!("{}/{path}", self.prefix)
        }
    }

    /// Every file under the folder `dir_uri`, as URIs in the same form as `dir_uri`'s.
    ///
    /// # Errors
    /// [`Error::Storage`] when listing fails.
    pub async fn list_files(&self, dir_uri: &str) -> Result<Vec<String>> {
        let Some(mut dir) = self.path_of(dir_uri) else {
            return Ok(Vec::new());
        };
        if !dir.ends_with('/') {
            dir.push('/');
        }
        let entries = match self.op.list_with(&dir).recursive(true).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::storage(format!("listing {dir_uri}"))(e)),
        };
        Ok(entries
            .into_iter()
            .filter(|e| e.metadata().is_file())
            .map(|e| self.uri_of(e.path()))
            .collect())
    }

    /// Deletes one file.
    ///
    /// # Errors
    /// [`Error::Storage`] when the delete fails.
    pub async fn delete(&self, uri: &str) -> Result<()> {
        let Some(path) = self.path_of(uri) else {
            return Ok(());
        };
        self.op
            .delete(&path)
            .await
            .map_err(Error::storage(format!("deleting {uri}")))
    }
}

/// Normalises `file:///x`, `file:/x` and `s3a://` spellings so file sets compare equal.
pub fn normalize_uri(uri: &str) -> String {
    if let Some(rest) = uri.strip_prefix("file:") {
        format!("file:/{}", rest.trim_start_matches('/'))
    } else if let Some(rest) = uri.strip_prefix("s3a://") {
        format!("s3://{rest}")
    } else {
        uri.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sqlite_catalog_is_switched_to_write_ahead_logging() {
        use sqlx::{Connection, Row};
        let dir = tempfile::tempdir().unwrap();
        let uri = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("catalog.db").display()
        );
        probe_database(&uri).await.unwrap();
        // A new connection finds the mode in the file.
        let mut conn = sqlx::AnyConnection::connect(&uri).await.unwrap();
        let row = sqlx::query("PRAGMA journal_mode")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(row.get::<String, _>(0), "wal");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("sqlite:///x/y.db"), "sqlite:///x/y.db");
    }

    #[test]
    fn normalizes_file_uris() {
        assert_eq!(normalize_uri("file:///a/b"), "file:/a/b");
        assert_eq!(normalize_uri("file:/a/b"), "file:/a/b");
        assert_eq!(normalize_uri("s3a://b/k"), "s3://b/k");
    }
}
