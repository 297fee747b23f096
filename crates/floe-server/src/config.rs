//! The server's configuration sections. The binary assembles them from `floe.toml`,
//! `FLOE_*` variables and flags; this crate only defines and documents them.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything `floe serve` needs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Folder holding the WAL (`log/`) and, by default, the SQLite metadata.
    pub data_dir: PathBuf,
    /// This broker's node id, as clients see it in Metadata.
    pub node_id: i32,
    /// Cluster id reported to clients.
    pub cluster_id: String,
    /// The Kafka listener.
    pub kafka: KafkaConfig,
    /// Log defaults for every topic (topic configs override them).
    pub log: LogDefaults,
    /// Consumer-group coordinator settings.
    pub groups: GroupConfig,
    /// Metadata store.
    pub meta: MetaConfig,
    /// Landing into Iceberg.
    pub lake: LakeConfig,
    /// The HTTP listener (Iceberg REST catalog, SQL, metrics, health).
    pub http: HttpConfig,
    /// SQL: the Flight SQL listener and the limits of each query.
    pub query: QuerySection,
    /// The schema registry (Confluent REST API).
    pub registry: RegistryConfig,
    /// How long a SIGTERM may take in all: draining connections, fsyncing the WAL and
    /// the last landing round. Past it the broker exits anyway; the WAL keeps what did
    /// not land.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("floe-data"),
            node_id: 1,
            cluster_id: "floe-cluster".into(),
            kafka: KafkaConfig::default(),
            log: LogDefaults::default(),
            groups: GroupConfig::default(),
            meta: MetaConfig::default(),
            lake: LakeConfig::default(),
            http: HttpConfig::default(),
            query: QuerySection::default(),
            registry: RegistryConfig::default(),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// The Kafka protocol listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Address to listen on. Port 0 picks a free port (tests).
    pub listen: String,
    /// Host clients are told to connect to. Default: the listen host, or `localhost` when
    /// listening on a wildcard address, so a client on the same machine needs no settings.
    pub advertised_host: Option<String>,
    /// Port clients are told to connect to. Default: the port actually bound.
    pub advertised_port: Option<u16>,
    /// Largest request frame accepted (Kafka's `socket.request.max.bytes`).
    pub max_request_bytes: usize,
    /// Most bytes the compressed records of one produce request may decompress to, over
    /// all its partitions (they decompress concurrently). Records of one partition over it
    /// are refused with INVALID_RECORD; partitions that find it used by the request's
    /// others get REQUEST_TIMED_OUT, and the client retries them.
    pub max_request_decompressed_bytes: usize,
    /// Memory for decompressed produce records over all requests in flight; a request
    /// waits up to 5 s for room, then its partitions get REQUEST_TIMED_OUT.
    pub decompression_pool_bytes: usize,
    /// Most bytes of records one Fetch response carries, whatever the request asks
    /// (Kafka's `fetch.max.bytes`); the first batch still goes out whole.
    pub fetch_max_bytes: usize,
    /// Connections served at once; further ones wait in the accept queue.
    pub max_connections: usize,
    /// Connections one client address may hold at once (Kafka's
    /// `max.connections.per.ip`); a further one is closed as soon as it is accepted.
    pub max_connections_per_ip: usize,
    /// A connection that starts no request for this long is closed (Kafka's
    /// `connections.max.idle.ms`).
    #[serde(with = "humantime_serde")]
    pub connections_max_idle: Duration,
    /// A request must arrive whole within this time of its first byte; else its
    /// connection is closed (a peer that announces a frame and stalls holds nothing).
    #[serde(with = "humantime_serde")]
    pub request_arrival_timeout: Duration,
    /// Create a topic when a client asks for metadata of one that does not exist.
    pub auto_create_topics: bool,
    /// Partition count of auto-created topics and of CreateTopics with `-1`.
    pub default_partitions: i32,
    /// Partitions the whole broker may hold; CreateTopics, CreatePartitions and
    /// auto-creation past it are refused with POLICY_VIOLATION.
    pub max_partitions: usize,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:9092".into(),
            advertised_host: None,
            advertised_port: None,
            max_request_bytes: 100 * 1024 * 1024,
            max_request_decompressed_bytes: 256 << 20,
            decompression_pool_bytes: 1 << 30,
            fetch_max_bytes: 55 << 20,
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            connections_max_idle: Duration::from_secs(600),
            request_arrival_timeout: Duration::from_secs(60),
            auto_create_topics: true,
            default_partitions: 1,
            max_partitions: 10_000,
        }
    }
}

/// When appended data is forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every `acks=all`/`acks=1` produce waits for an fsync covering it
    /// (group commit: one fsync serves every request waiting at that moment).
    Always,
    /// A background task fsyncs dirty partitions every interval; produces are acknowledged
    /// once written to the operating system.
    Interval(Duration),
}

impl<'de> Deserialize<'de> for FsyncPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for FsyncPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FsyncPolicy::Always => s.serialize_str("always"),
            FsyncPolicy::Interval(d) => {
                s.serialize_str(&humantime::format_duration(*d).to_string())
            }
        }
    }
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "always" {
            return Ok(FsyncPolicy::Always);
        }
        match humantime::parse_duration(s) {
            Ok(d) if d.is_zero() => {
                Err("fsync interval must be positive; use 'always' to fsync every write".into())
            }
            Ok(d) => Ok(FsyncPolicy::Interval(d)),
            Err(e) => Err(format!(
                "fsync must be 'always' or a duration such as '50ms' ({e})"
            )),
        }
    }
}

/// Log defaults; the matching topic configs override them per topic.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogDefaults {
    /// Fsync policy: `"always"` or an interval such as `"50ms"`.
    pub fsync: FsyncPolicy,
    /// `segment.bytes`.
    pub segment_bytes: i64,
    /// `retention.ms`; -1 keeps data forever.
    pub retention_ms: i64,
    /// `retention.bytes` per partition; -1 is unlimited.
    pub retention_bytes: i64,
    /// `max.message.bytes`.
    pub max_message_bytes: i32,
    /// Bytes of log between two sparse index entries.
    pub index_interval_bytes: u32,
    /// How often retention runs.
    #[serde(with = "humantime_serde")]
    pub retention_check_interval: Duration,
    /// `message.timestamp.type` default: `CreateTime` or `LogAppendTime`.
    pub message_timestamp_type: String,
    /// Newest bytes of the partitions' active segments left in the OS page cache after
    /// an fsync, for the whole broker: split evenly over its partitions (at least 8 MiB
    /// each); older pages are dropped. -1 leaves the page cache to the OS.
    pub page_cache_bytes: i64,
    /// How long an idempotent producer id may go without appending before a partition
    /// forgets its sequence state (Kafka's `producer.id.expiration.ms`). Checked on
    /// every retention pass.
    #[serde(with = "humantime_serde")]
    pub producer_id_expiration: Duration,
    /// Idempotent producer ids one partition keeps sequence state for; past it the least
    /// recently seen are forgotten early (as expiry would forget them later).
    pub max_producer_ids_per_partition: usize,
}

impl Default for LogDefaults {
    fn default() -> Self {
        let t = floe_common::TopicConfig::default();
        Self {
            fsync: FsyncPolicy::Interval(Duration::from_millis(50)),
            segment_bytes: t.segment_bytes,
            retention_ms: t.retention_ms,
            retention_bytes: t.retention_bytes,
            max_message_bytes: t.max_message_bytes,
            index_interval_bytes: 4096,
            retention_check_interval: Duration::from_secs(30),
            message_timestamp_type: "CreateTime".into(),
            page_cache_bytes: 256 << 20,
            producer_id_expiration: Duration::from_secs(24 * 3600),
            max_producer_ids_per_partition: 10_000,
        }
    }
}

/// Consumer-group coordinator.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupConfig {
    /// Smallest session timeout a member may ask for.
    #[serde(with = "humantime_serde")]
    pub min_session_timeout: Duration,
    /// Largest session timeout a member may ask for.
    #[serde(with = "humantime_serde")]
    pub max_session_timeout: Duration,
    /// How long the first rebalance of an empty group waits for more members.
    #[serde(with = "humantime_serde")]
    pub initial_rebalance_delay: Duration,
    /// How long committed offsets outlive their group's last member, or their last
    /// commit (Kafka's `offsets.retention.minutes`).
    #[serde(with = "humantime_serde")]
    pub offsets_retention: Duration,
    /// How often offsets are checked for expiry (Kafka's
    /// `offsets.retention.check.interval.ms`).
    #[serde(with = "humantime_serde")]
    pub offsets_retention_check_interval: Duration,
    /// Longest group id accepted (INVALID_GROUP_ID past it).
    pub max_group_id_bytes: usize,
    /// Groups the broker keeps, in memory or with committed offsets; a new group past it
    /// is refused with GROUP_MAX_SIZE_REACHED until offsets expire or groups are deleted.
    pub max_groups: usize,
    /// Members (and member ids handed out but not yet joined) one group may hold (Kafka's
    /// `group.max.size`).
    pub max_members_per_group: usize,
    /// Bytes of protocol metadata one member may send in JoinGroup, and of assignment one
    /// member may get in SyncGroup.
    pub max_member_metadata_bytes: usize,
    /// Consumer-protocol (KIP-848) groups: how long a member may go without a heartbeat
    /// before it is removed (Kafka's `group.consumer.session.timeout.ms`).
    #[serde(with = "humantime_serde")]
    pub consumer_session_timeout: Duration,
    /// Consumer-protocol groups: how often members heartbeat (Kafka's
    /// `group.consumer.heartbeat.interval.ms`; told to each member).
    #[serde(with = "humantime_serde")]
    pub consumer_heartbeat_interval: Duration,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            min_session_timeout: Duration::from_secs(1),
            max_session_timeout: Duration::from_secs(1800),
            // Kafka's group.initial.rebalance.delay.ms.
            initial_rebalance_delay: Duration::from_secs(3),
            offsets_retention: Duration::from_secs(7 * 24 * 3600),
            offsets_retention_check_interval: Duration::from_secs(600),
            max_group_id_bytes: 1024,
            max_groups: 10_000,
            max_members_per_group: 1_000,
            max_member_metadata_bytes: 1 << 20,
            consumer_session_timeout: Duration::from_secs(45),
            consumer_heartbeat_interval: Duration::from_secs(5),
        }
    }
}

/// Metadata store.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetaConfig {
    /// `postgres://...` or `sqlite://...`; default: `sqlite://<data_dir>/meta.db`.
    pub url: Option<String>,
}

/// Landing every topic into an Iceberg table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LakeConfig {
    /// Land topics at all. Off, Floe is a plain Kafka broker.
    pub enabled: bool,
    /// `sql` (SQLite or Postgres, Floe commits itself) or `rest` (an external Iceberg REST
    /// catalog).
    pub catalog: String,
    /// Catalog location: a database URL for `sql` (default
    /// `sqlite://<data_dir>/catalog.db`), the base URI for `rest`.
    pub catalog_uri: Option<String>,
    /// Warehouse root: `file:/abs/path` or `s3://bucket/prefix`; default
    /// `file:<data_dir>/warehouse`.
    pub warehouse: Option<String>,
    /// Iceberg namespace of the topic tables.
    pub namespace: String,
    /// Longest time between landing rounds (`lake.commit.interval.ms`).
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// A topic starts a round early once this many bytes wait in its tails; a topic's
    /// `lake.commit.bytes` overrides it.
    pub commit_bytes: u64,
    /// Data files roll past this size.
    pub target_file_size_bytes: usize,
    /// Most threads one landing round encodes Parquet on at once; 0 means one per core,
    /// at most 4. A round is cut into contiguous runs of at least 16 MiB of rows, so a
    /// round at a low produce rate uses one.
    pub write_threads: usize,
    /// Parquet compression: zstd, snappy, gzip, lz4 or none.
    pub compression: String,
    /// Memory for unlanded rows across all tails. Past 80 % produce responses carry a
    /// throttle time; when full, produce requests wait for landing.
    pub max_buffer_bytes: usize,
    /// How often each topic's table gets housekeeping: retention, compaction, snapshot
    /// expiry (needs the `sql` catalog).
    #[serde(with = "humantime_serde")]
    pub housekeeping_interval: Duration,
    /// Compact a time partition once it holds this many small files of similar size
    /// (below a quarter of `target_file_size_bytes`); 0 turns compaction off.
    pub compact_min_files: usize,
    /// Memory for rows lake-tier Fetches read ahead of their consumers, over all topics
    /// (a scan reads at most an eighth of it, and 32 MiB).
    pub read_ahead_bytes: usize,
    /// Every snapshot younger than this stays (time travel by timestamp from any engine).
    #[serde(with = "humantime_serde")]
    pub snapshot_dense_window: Duration,
    /// Older snapshots stay one per this interval, tagged `floe-<interval start>`, up to
    /// the topic's `lake.snapshot.retention.ms`.
    #[serde(with = "humantime_serde")]
    pub snapshot_tag_interval: Duration,
    /// The kept snapshots of one table take at most about this many bytes of its metadata
    /// file: a topic whose snapshots are large (thousands of partitions) keeps shorter
    /// windows rather than a larger file rewritten on every round.
    pub max_metadata_bytes: usize,
    /// The default of every topic's `lake.value.schema` (`raw`, `wire`, `latest` or
    /// `auto`); a topic's own setting replaces it.
    pub value_schema: String,
    /// The default of every topic's `lake.key.schema`.
    pub key_schema: String,
    /// S3 settings, used when the warehouse is `s3://`.
    pub s3: S3Config,
}

impl Default for LakeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            catalog: "sql".into(),
            catalog_uri: None,
            warehouse: None,
            namespace: "kafka".into(),
            commit_interval: Duration::from_millis(2000),
            commit_bytes: 64 << 20,
            target_file_size_bytes: 128 << 20,
            write_threads: 0,
            compression: "zstd".into(),
            max_buffer_bytes: 512 << 20,
            housekeeping_interval: Duration::from_secs(60),
            compact_min_files: 8,
            read_ahead_bytes: 256 << 20,
            snapshot_dense_window: Duration::from_secs(3600),
            snapshot_tag_interval: Duration::from_secs(3600),
            max_metadata_bytes: 8 << 20,
            value_schema: "raw".into(),
            key_schema: "raw".into(),
            s3: S3Config::default(),
        }
    }
}

/// Object storage over the S3 API.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Endpoint URL (`http://127.0.0.1:9000`); AWS when unset.
    pub endpoint: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most S3-compatible servers need.
    pub path_style: bool,
    /// Access key id the REST catalog hands to Iceberg readers. Unset (the default), the
    /// catalog hands out no credentials at all and readers bring their own: the keys Floe
    /// writes with are never served. Meant for a separate, read-only key.
    pub reader_access_key_id: Option<String>,
    /// Secret of `reader_access_key_id`.
    pub reader_secret_access_key: Option<String>,
    /// Session token of a temporary reader key, if it has one.
    pub reader_session_token: Option<String>,
}

/// SQL over topics (`[query]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuerySection {
    /// Serve SQL at all (Flight SQL and `POST /v1/sql`; needs the lake).
    pub enabled: bool,
    /// Address of the Arrow Flight SQL listener (port 0 picks a free port).
    pub flight_listen: String,
    /// Memory all queries together may hold in sorts, aggregations and joins; past it a
    /// query fails with "Resources exhausted".
    pub memory_limit_bytes: usize,
    /// Queries running at once; a further one waits up to `queue_wait`, then is refused
    /// as busy (HTTP 503, Flight `UNAVAILABLE`).
    pub max_concurrent: usize,
    /// How long a query waits for a turn.
    #[serde(with = "humantime_serde")]
    pub queue_wait: Duration,
    /// The most one call of a function whose output size comes from its arguments
    /// (`repeat`, `range`, `lpad`, `array_repeat`, `concat`, ...) may return for one batch,
    /// unless an input column is larger; past it the query fails before the function
    /// allocates.
    pub max_function_output_bytes: usize,
    /// The longest SQL statement accepted.
    pub max_sql_bytes: usize,
    /// Rows one `POST /v1/sql` answer carries; past it a JSON answer ends with
    /// `"truncated": true` and an Arrow answer is cut off with an error.
    pub http_max_rows: usize,
    /// Bytes one `POST /v1/sql` answer carries (checked every 1,024 rows), likewise.
    pub http_max_bytes: usize,
    /// How long a statement planned over Flight SQL waits for its DoGet.
    #[serde(with = "humantime_serde")]
    pub flight_ticket_ttl: Duration,
    /// Longest a query may run; past it the query is cancelled.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Worker threads for queries, apart from the broker's own (0: one per core).
    pub threads: usize,
}

impl Default for QuerySection {
    fn default() -> Self {
        Self {
            enabled: true,
            flight_listen: "0.0.0.0:50051".into(),
            memory_limit_bytes: 1 << 30,
            max_concurrent: 4,
            queue_wait: Duration::from_secs(5),
            max_function_output_bytes: 256 << 20,
            max_sql_bytes: 16 << 10,
            http_max_rows: 1_000_000,
            http_max_bytes: 256 << 20,
            flight_ticket_ttl: Duration::from_secs(60),
            timeout: Duration::from_secs(300),
            threads: 0,
        }
    }
}

/// The HTTP listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Serve HTTP at all.
    pub enabled: bool,
    /// Address to listen on (port 0 picks a free port).
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "0.0.0.0:8181".into(),
        }
    }
}

/// The schema registry's listener: Confluent's REST API on the port Confluent and
/// Redpanda use, stored in the metadata store.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Serve the schema registry at all.
    pub enabled: bool,
    /// Address to listen on (port 0 picks a free port).
    pub listen: String,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "0.0.0.0:8081".into(),
        }
    }
}

impl ServerConfig {
    /// Checks settings that cannot work together.
    ///
    /// # Errors
    /// A message naming the settings.
    pub fn validate(&self) -> Result<(), String> {
        let k = &self.kafka;
        if k.decompression_pool_bytes < k.max_request_decompressed_bytes {
            return Err(format!(
                "[kafka] decompression_pool_bytes ({}) is below max_request_decompressed_bytes ({}): \
                 a request could never get the room its budget allows",
                k.decompression_pool_bytes, k.max_request_decompressed_bytes
            ));
        }
        Ok(())
    }

    /// The topic defaults these settings describe.
    ///
    /// # Errors
    /// A [`floe_common::ConfigError`] when a default is out of range.
    pub fn topic_defaults(&self) -> Result<floe_common::TopicConfig, floe_common::ConfigError> {
        let mut t = floe_common::TopicConfig::default();
        t.set("segment.bytes", &self.log.segment_bytes.to_string())?;
        t.set("retention.ms", &self.log.retention_ms.to_string())?;
        t.set("retention.bytes", &self.log.retention_bytes.to_string())?;
        t.set("max.message.bytes", &self.log.max_message_bytes.to_string())?;
        t.set("message.timestamp.type", &self.log.message_timestamp_type)?;
        t.set(
            "index.interval.bytes",
            &self.log.index_interval_bytes.to_string(),
        )?;
        t.set("lake.value.schema", &self.lake.value_schema)?;
        t.set("lake.key.schema", &self.lake.key_schema)?;
        Ok(t)
    }
}
