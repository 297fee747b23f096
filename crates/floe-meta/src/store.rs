//! [`MetaStore`]: connection pool, migrations and the queries.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor, Row};
use tracing::{debug, info, warn};

use crate::url::{backend_of, redact_url, sqlite_url};
use crate::{Backend, CommittedOffset, Error, MetaStoreOptions, Result, TopicRecord};

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../../sql/migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("../../sql/migrations/postgres");

/// Rows per multi-row `INSERT` in [`MetaStore::commit_offsets`] (7 bind parameters each).
const OFFSET_ROWS_PER_INSERT: usize = 100;

/// Handle to the metadata database. Cheap to clone (shares one pool).
#[derive(Clone)]
pub struct MetaStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: AnyPool,
    backend: Backend,
    /// Store URL with the password removed.
    url: String,
    acquire_timeout: Duration,
    op_timeout: Duration,
}

impl std::fmt::Debug for MetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaStore")
            .field("backend", &self.inner.backend)
            .field("url", &self.inner.url)
            .finish_non_exhaustive()
    }
}

impl MetaStore {
    /// Connects with default [`MetaStoreOptions`] and runs migrations.
    ///
    /// `url` is `sqlite:///abs/path/meta.db`, `sqlite://relative.db` or
    /// `postgres://user:pass@host:port/db`. The SQLite file is created if
    /// missing. Errors name the URL with any password removed.
    pub async fn connect(url: &str) -> Result<MetaStore> {
        Self::connect_with(url, MetaStoreOptions::default()).await
    }

    /// Like [`MetaStore::connect`], with explicit pool size and deadlines.
    pub async fn connect_with(url: &str, options: MetaStoreOptions) -> Result<MetaStore> {
        let redacted = redact_url(url);
        let backend = backend_of(url)?;
        sqlx::any::install_default_drivers();
        let op_timeout = options.op_timeout;
        match tokio::time::timeout(
            op_timeout,
            Self::open(url, redacted.clone(), backend, options),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => {
                warn!(url = %redacted, %backend, after = ?op_timeout, "metadata store connect timed out");
                Err(Error::Timeout {
                    op: "connect",
                    after: op_timeout,
                })
            }
        }
    }

    async fn open(
        url: &str,
        redacted: String,
        backend: Backend,
        options: MetaStoreOptions,
    ) -> Result<MetaStore> {
        let mut pool_options = AnyPoolOptions::new().acquire_timeout(options.acquire_timeout);
        let (connect_url, migrator) = match backend {
            Backend::Sqlite => {
                let sqlite = sqlite_url(url)?;
                if let Some(parent) = sqlite.file.as_deref().and_then(|f| f.parent()) {
                    if !parent.as_os_str().is_empty() {
                        if let Err(error) = tokio::fs::create_dir_all(parent).await {
                            warn!(dir = %parent.display(), %error, "cannot create metadata store directory");
                        }
                    }
                }
                let busy_ms = options.sqlite_busy_timeout.as_millis();
                pool_options = pool_options
                    .max_connections(options.max_connections.unwrap_or(4))
                    .after_connect(move |conn, _meta| {
                        Box::pin(async move {
                            let busy = format!("PRAGMA busy_timeout = {busy_ms}");
                            conn.execute(busy.as_str()).await?;
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            Ok(())
                        })
                    });
                (sqlite.url, &SQLITE_MIGRATOR)
            }
            Backend::Postgres => {
                pool_options = pool_options.max_connections(options.max_connections.unwrap_or(8));
                (url.to_owned(), &POSTGRES_MIGRATOR)
            }
        };

        let pool = pool_options
            .connect(&connect_url)
            .await
            .map_err(|source| Error::Connect {
                url: redacted.clone(),
                source,
            })?;
        if let Err(source) = migrator.run(&pool).await {
            pool.close().await;
            return Err(Error::Migrate {
                url: redacted,
                backend,
                source,
            });
        }
        info!(url = %redacted, %backend, "metadata store connected");
        Ok(MetaStore {
            inner: Arc::new(Inner {
                pool,
                backend,
                url: redacted,
                acquire_timeout: options.acquire_timeout,
                op_timeout: options.op_timeout,
            }),
        })
    }

    /// Which backend this store runs on.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The store URL with any password removed.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Closes the pool, waiting for checked-out connections to be returned.
    pub async fn close(&self) {
        self.inner.pool.close().await;
        debug!(url = %self.inner.url, "metadata store closed");
    }

    // ---- topics ----------------------------------------------------------

    /// Inserts a new topic; [`Error::TopicExists`] if the name is taken.
    pub async fn create_topic(&self, topic: &TopicRecord) -> Result<()> {
        const OP: &str = "create_topic";
        check_partitions(OP, topic.partitions)?;
        let configs = configs_to_json(&topic.name, &topic.configs)?;
        self.run(OP, async {
            let done = sqlx::query(
                "INSERT INTO topics (name, topic_id, partitions, configs, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
            )
            .bind(topic.name.as_str())
            .bind(topic.topic_id.hyphenated().to_string())
            .bind(i64::from(topic.partitions))
            .bind(configs)
            .bind(topic.created_at_ms)
            .execute(&self.inner.pool)
            .await
            .map_err(self.db(OP))?;
            if done.rows_affected() == 0 {
                return Err(Error::TopicExists {
                    name: topic.name.clone(),
                });
            }
            debug!(topic = %topic.name, topic_id = %topic.topic_id, partitions = topic.partitions, "topic created");
            Ok(())
        })
        .await
    }

    /// All topics, sorted by name (byte order).
    pub async fn list_topics(&self) -> Result<Vec<TopicRecord>> {
        const OP: &str = "list_topics";
        self.run(OP, async {
            let rows = sqlx::query(
                "SELECT name, topic_id, partitions, configs, created_at_ms FROM topics",
            )
            .fetch_all(&self.inner.pool)
            .await
            .map_err(self.db(OP))?;
            let mut topics = rows
                .iter()
                .map(|row| self.topic_from_row(OP, row))
                .collect::<Result<Vec<_>>>()?;
            topics.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(topics)
        })
        .await
    }

    /// One topic by name.
    pub async fn get_topic(&self, name: &str) -> Result<Option<TopicRecord>> {
        const OP: &str = "get_topic";
        self.run(OP, async {
            let row = sqlx::query(
                "SELECT name, topic_id, partitions, configs, created_at_ms FROM topics \
                 WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(self.db(OP))?;
            row.map(|row| self.topic_from_row(OP, &row)).transpose()
        })
        .await
    }

    /// Deletes a topic and every committed offset for it, in one transaction.
    /// Returns whether the topic existed.
    pub async fn delete_topic(&self, name: &str) -> Result<bool> {
        const OP: &str = "delete_topic";
        self.run(OP, async {
            let mut tx = self.inner.pool.begin().await.map_err(self.db(OP))?;
            let offsets = sqlx::query("DELETE FROM committed_offsets WHERE topic = $1")
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(self.db(OP))?
                .rows_affected();
            let topics = sqlx::query("DELETE FROM topics WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(self.db(OP))?
                .rows_affected();
            tx.commit().await.map_err(self.db(OP))?;
            debug!(
                topic = name,
                existed = topics > 0,
                offsets_deleted = offsets,
                "topic deleted"
            );
            Ok(topics > 0)
        })
        .await
    }

    /// Sets a topic's partition count; [`Error::UnknownTopic`] if absent.
    /// Does not check that the count grows (the server's job).
    pub async fn set_partition_count(&self, name: &str, partitions: i32) -> Result<()> {
        const OP: &str = "set_partition_count";
        check_partitions(OP, partitions)?;
        self.run(OP, async {
            let done = sqlx::query("UPDATE topics SET partitions = $1 WHERE name = $2")
                .bind(i64::from(partitions))
                .bind(name)
                .execute(&self.inner.pool)
                .await
                .map_err(self.db(OP))?;
            if done.rows_affected() == 0 {
                return Err(Error::UnknownTopic { name: name.into() });
            }
            debug!(topic = name, partitions, "partition count set");
            Ok(())
        })
        .await
    }

    /// Replaces a topic's whole config map; [`Error::UnknownTopic`] if absent.
    pub async fn set_topic_configs(
        &self,
        name: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<()> {
        const OP: &str = "set_topic_configs";
        let json = configs_to_json(name, configs)?;
        self.run(OP, async {
            let done = sqlx::query("UPDATE topics SET configs = $1 WHERE name = $2")
                .bind(json)
                .bind(name)
                .execute(&self.inner.pool)
                .await
                .map_err(self.db(OP))?;
            if done.rows_affected() == 0 {
                return Err(Error::UnknownTopic { name: name.into() });
            }
            debug!(topic = name, configs = configs.len(), "topic configs set");
            Ok(())
        })
        .await
    }

    // ---- consumer-group offsets ------------------------------------------

    /// Upserts offsets for `group` in one transaction. If the same
    /// (topic, partition) appears twice, the last entry wins.
    pub async fn commit_offsets(&self, group: &str, offsets: &[CommittedOffset]) -> Result<()> {
        const OP: &str = "commit_offsets";
        if offsets.is_empty() {
            return Ok(());
        }
        let latest: BTreeMap<(&str, i32), &CommittedOffset> = offsets
            .iter()
            .map(|o| ((o.topic.as_str(), o.partition), o))
            .collect();
        let latest: Vec<&CommittedOffset> = latest.into_values().collect();
        self.run(OP, async {
            let mut tx = self.inner.pool.begin().await.map_err(self.db(OP))?;
            for chunk in latest.chunks(OFFSET_ROWS_PER_INSERT) {
                let sql = upsert_offsets_sql(chunk.len());
                let mut query = sqlx::query(&sql);
                for o in chunk {
                    query = query
                        .bind(group)
                        .bind(o.topic.as_str())
                        .bind(i64::from(o.partition))
                        .bind(o.offset)
                        .bind(i64::from(o.leader_epoch))
                        .bind(o.metadata.clone())
                        .bind(o.commit_timestamp_ms);
                }
                query.execute(&mut *tx).await.map_err(self.db(OP))?;
            }
            tx.commit().await.map_err(self.db(OP))?;
            debug!(group, partitions = latest.len(), "offsets committed");
            Ok(())
        })
        .await
    }

    /// All committed offsets of `group`, sorted by (topic, partition).
    pub async fn fetch_offsets(&self, group: &str) -> Result<Vec<CommittedOffset>> {
        const OP: &str = "fetch_offsets";
        self.run(OP, async {
            let rows = sqlx::query(
                "SELECT topic, partition_index, committed_offset, leader_epoch, metadata, \
                 commit_timestamp_ms FROM committed_offsets WHERE group_id = $1",
            )
            .bind(group)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(self.db(OP))?;
            let mut offsets = rows
                .iter()
                .map(|row| self.offset_from_row(OP, group, row))
                .collect::<Result<Vec<_>>>()?;
            offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
            Ok(offsets)
        })
        .await
    }

    /// Groups that have at least one committed offset, sorted.
    pub async fn list_offset_groups(&self) -> Result<Vec<String>> {
        const OP: &str = "list_offset_groups";
        self.run(OP, async {
            let rows = sqlx::query("SELECT DISTINCT group_id FROM committed_offsets")
                .fetch_all(&self.inner.pool)
                .await
                .map_err(self.db(OP))?;
            let mut groups = rows
                .iter()
                .map(|row| row.try_get::<String, _>("group_id"))
                .collect::<Result<Vec<_>, _>>()
                .map_err(self.db(OP))?;
            groups.sort();
            Ok(groups)
        })
        .await
    }

    // ---- group and broker configs -----------------------------------------

    /// Replaces the config overrides of `group` (none: the row goes).
    pub async fn set_group_configs(
        &self,
        group: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<()> {
        self.set_configs(ConfigTable::Groups, group, configs).await
    }

    /// Every group's config overrides.
    pub async fn list_group_configs(&self) -> Result<Vec<(String, BTreeMap<String, String>)>> {
        self.list_configs(ConfigTable::Groups).await
    }

    /// Replaces the dynamic broker configs of `resource`: `""` for the cluster-wide
    /// default, else a broker's node id (none: the row goes).
    pub async fn set_broker_configs(
        &self,
        resource: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<()> {
        self.set_configs(ConfigTable::Brokers, resource, configs)
            .await
    }

    /// Every resource's dynamic broker configs.
    pub async fn list_broker_configs(&self) -> Result<Vec<(String, BTreeMap<String, String>)>> {
        self.list_configs(ConfigTable::Brokers).await
    }

    async fn set_configs(
        &self,
        table: ConfigTable,
        key: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<()> {
        let (op, name, column) = table.parts();
        let json = serde_json::to_string(configs)
            .map_err(|e| Error::corrupt(format!("configs of {column} {key:?}"), e))?;
        self.run(op, async {
            let delete = format!("DELETE FROM {name} WHERE {column} = $1");
            let upsert = format!(
                "INSERT INTO {name} ({column}, configs) VALUES ($1, $2) \
                 ON CONFLICT ({column}) DO UPDATE SET configs = excluded.configs"
            );
            let query = if configs.is_empty() {
                sqlx::query(&delete).bind(key)
            } else {
                sqlx::query(&upsert).bind(key).bind(json)
            };
            query.execute(&self.inner.pool).await.map_err(self.db(op))?;
            debug!(table = name, key, configs = configs.len(), "configs set");
            Ok(())
        })
        .await
    }

    async fn list_configs(
        &self,
        table: ConfigTable,
    ) -> Result<Vec<(String, BTreeMap<String, String>)>> {
        let (op, name, column) = table.parts();
        self.run(op, async {
            let select = format!("SELECT {column}, configs FROM {name} ORDER BY {column}");
            let rows = sqlx::query(&select)
                .fetch_all(&self.inner.pool)
                .await
                .map_err(self.db(op))?;
            rows.iter()
                .map(|row| {
                    let key: String = row.try_get(column).map_err(self.db(op))?;
                    let json: String = row.try_get("configs").map_err(self.db(op))?;
                    let configs = serde_json::from_str(&json)
                        .map_err(|e| Error::corrupt(format!("configs of {column} {key:?}"), e))?;
                    Ok((key, configs))
                })
                .collect()
        })
        .await
    }

    /// Deletes every committed offset of `group`; returns how many rows went.
    pub async fn delete_group_offsets(&self, group: &str) -> Result<u64> {
        const OP: &str = "delete_group_offsets";
        self.run(OP, async {
            let deleted = sqlx::query("DELETE FROM committed_offsets WHERE group_id = $1")
                .bind(group)
                .execute(&self.inner.pool)
                .await
                .map_err(self.db(OP))?
                .rows_affected();
            debug!(group, deleted, "group offsets deleted");
            Ok(deleted)
        })
        .await
    }

    /// Deletes `group`'s offsets for the given partitions of `topic` (one
    /// transaction); returns how many rows went.
    pub async fn delete_offsets(
        &self,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Result<u64> {
        const OP: &str = "delete_offsets";
        if partitions.is_empty() {
            return Ok(0);
        }
        self.run(OP, async {
            let mut tx = self.inner.pool.begin().await.map_err(self.db(OP))?;
            let mut deleted = 0;
            for &partition in partitions {
                deleted += sqlx::query(
                    "DELETE FROM committed_offsets \
                     WHERE group_id = $1 AND topic = $2 AND partition_index = $3",
                )
                .bind(group)
                .bind(topic)
                .bind(i64::from(partition))
                .execute(&mut *tx)
                .await
                .map_err(self.db(OP))?
                .rows_affected();
            }
            tx.commit().await.map_err(self.db(OP))?;
            debug!(
                group,
                topic,
                partitions = partitions.len(),
                deleted,
                "offsets deleted"
            );
            Ok(deleted)
        })
        .await
    }

    /// Deletes the given offsets of `group` (one transaction), each only if it was not
    /// committed again since it was read: its `commit_timestamp_ms` must still be the
    /// one given. Offset expiry decides from a read, and a commit that lands in between
    /// must survive. Returns how many rows went.
    pub async fn expire_offsets(&self, group: &str, offsets: &[CommittedOffset]) -> Result<u64> {
        const OP: &str = "expire_offsets";
        if offsets.is_empty() {
            return Ok(0);
        }
        self.run(OP, async {
            let mut tx = self.inner.pool.begin().await.map_err(self.db(OP))?;
            let mut deleted = 0;
            for o in offsets {
                deleted += sqlx::query(
                    "DELETE FROM committed_offsets WHERE group_id = $1 AND topic = $2 \
                     AND partition_index = $3 AND commit_timestamp_ms = $4",
                )
                .bind(group)
                .bind(o.topic.as_str())
                .bind(i64::from(o.partition))
                .bind(o.commit_timestamp_ms)
                .execute(&mut *tx)
                .await
                .map_err(self.db(OP))?
                .rows_affected();
            }
            tx.commit().await.map_err(self.db(OP))?;
            debug!(group, deleted, "expired offsets deleted");
            Ok(deleted)
        })
        .await
    }

    // ---- producer ids ----------------------------------------------------

    /// Allocates `count` producer ids and returns the first of the block
    /// `[first, first + count)`. Ids are never handed out twice, across
    /// restarts and across brokers sharing the database: the allocation is a
    /// single atomic `UPDATE .. RETURNING`.
    pub async fn allocate_producer_ids(&self, count: i64) -> Result<i64> {
        const OP: &str = "allocate_producer_ids";
        if count <= 0 {
            return Err(Error::InvalidArgument {
                op: OP,
                reason: format!("count must be positive, got {count}"),
            });
        }
        self.run(OP, async {
            // The `next_id <= MAX - count` guard keeps the addition from
            // overflowing (SQLite would silently turn it into a float).
            let row = sqlx::query(
                "UPDATE producer_id_allocator SET next_id = next_id + $1 \
                 WHERE id = 1 AND next_id <= $2 RETURNING next_id",
            )
            .bind(count)
            .bind(i64::MAX - count)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(self.db(OP))?;
            let Some(row) = row else {
                return Err(Error::ProducerIdsExhausted { requested: count });
            };
            let next: i64 = row.try_get("next_id").map_err(self.db(OP))?;
            let first = next - count;
            debug!(first, count, "producer ids allocated");
            Ok(first)
        })
        .await
    }

    // ---- helpers ---------------------------------------------------------

    /// Runs one public operation under the operation deadline.
    pub(crate) async fn run<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let after = self.inner.op_timeout;
        match tokio::time::timeout(after, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                match &error {
                    Error::TopicExists { .. } | Error::UnknownTopic { .. } => {}
                    _ => warn!(op, %error, "metadata store operation failed"),
                }
                Err(error)
            }
            Err(_) => {
                warn!(op, ?after, "metadata store operation timed out");
                Err(Error::Timeout { op, after })
            }
        }
    }

    /// Error mapper for driver errors of operation `op`.
    pub(crate) fn db(&self, op: &'static str) -> impl Fn(sqlx::Error) -> Error {
        let acquire_timeout = self.inner.acquire_timeout;
        move |source| Error::db(op, acquire_timeout, source)
    }

    fn topic_from_row(&self, op: &'static str, row: &AnyRow) -> Result<TopicRecord> {
        let db = self.db(op);
        let name: String = row.try_get("name").map_err(&db)?;
        let topic_id: String = row.try_get("topic_id").map_err(&db)?;
        let partitions: i64 = row.try_get("partitions").map_err(&db)?;
        let configs: String = row.try_get("configs").map_err(&db)?;
        let created_at_ms: i64 = row.try_get("created_at_ms").map_err(&db)?;
        let topic_id = uuid::Uuid::parse_str(&topic_id)
            .map_err(|e| Error::corrupt(format!("topic id of topic {name:?}"), e))?;
        let partitions = i32::try_from(partitions)
            .map_err(|e| Error::corrupt(format!("partition count of topic {name:?}"), e))?;
        let configs = serde_json::from_str(&configs)
            .map_err(|e| Error::corrupt(format!("configs of topic {name:?}"), e))?;
        Ok(TopicRecord {
            name,
            topic_id,
            partitions,
            configs,
            created_at_ms,
        })
    }

    fn offset_from_row(
        &self,
        op: &'static str,
        group: &str,
        row: &AnyRow,
    ) -> Result<CommittedOffset> {
        let db = self.db(op);
        let topic: String = row.try_get("topic").map_err(&db)?;
        let partition: i64 = row.try_get("partition_index").map_err(&db)?;
        let offset: i64 = row.try_get("committed_offset").map_err(&db)?;
        let leader_epoch: i64 = row.try_get("leader_epoch").map_err(&db)?;
        let metadata: Option<String> = row.try_get("metadata").map_err(&db)?;
        let commit_timestamp_ms: i64 = row.try_get("commit_timestamp_ms").map_err(&db)?;
        let partition = i32::try_from(partition)
            .map_err(|e| Error::corrupt(format!("partition of offset {group:?}/{topic:?}"), e))?;
        let leader_epoch = i32::try_from(leader_epoch).map_err(|e| {
            Error::corrupt(
                format!("leader epoch of offset {group:?}/{topic:?}/{partition}"),
                e,
            )
        })?;
        Ok(CommittedOffset {
            topic,
            partition,
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
        })
    }
}

fn check_partitions(op: &'static str, partitions: i32) -> Result<()> {
    if partitions < 0 {
        return Err(Error::InvalidArgument {
            op,
            reason: format!("partition count must not be negative, got {partitions}"),
        });
    }
    Ok(())
}

fn configs_to_json(topic: &str, configs: &BTreeMap<String, String>) -> Result<String> {
    serde_json::to_string(configs)
        .map_err(|e| Error::corrupt(format!("configs of topic {topic:?}"), e))
}

/// `INSERT .. VALUES (..), (..) ON CONFLICT .. DO UPDATE` for `rows` offsets.
fn upsert_offsets_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO committed_offsets (group_id, topic, partition_index, committed_offset, \
         leader_epoch, metadata, commit_timestamp_ms) VALUES ",
    );
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        let p = row * 7;
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5,
            p + 6,
            p + 7
        ));
    }
    sql.push_str(
        " ON CONFLICT (group_id, topic, partition_index) DO UPDATE SET \
         committed_offset = excluded.committed_offset, \
         leader_epoch = excluded.leader_epoch, \
         metadata = excluded.metadata, \
         commit_timestamp_ms = excluded.commit_timestamp_ms",
    );
    sql
}

/// The tables that keep config overrides as a JSON object per key.
#[derive(Debug, Clone, Copy)]
enum ConfigTable {
    /// `group_configs`, by group id.
    Groups,
    /// `broker_configs`, by resource (`""` or a node id).
    Brokers,
}

impl ConfigTable {
    /// The operation name (for errors), the table and its key column.
    fn parts(self) -> (&'static str, &'static str, &'static str) {
        match self {
            ConfigTable::Groups => ("group_configs", "group_configs", "group_id"),
            ConfigTable::Brokers => ("broker_configs", "broker_configs", "resource"),
        }
    }
}
