//! Every topic config a broker accepts: Apache Kafka 4.x's (`LogConfig`), then Floe's own
//! `lake.*` keys, each with its Kafka type, default, valid values, broker-level synonym
//! and what it does in Floe.
//!
//! Tools set Kafka's configs on their own (Kafka Connect and Debezium send
//! `compression.type` and `cleanup.policy`, Terraform providers send whatever a module
//! lists, often `min.insync.replicas`), so refusing a key Kafka knows breaks them. Every
//! key Kafka 4.x defines is therefore accepted with Kafka's own validation, stored and
//! reported; the ones with no effect here say why ([`Effect::None`]), and that reason is
//! what DescribeConfigs documents and docs/configuration.md lists.

/// A config's type as DescribeConfigs v3+ reports it (`ConfigType` in Kafka's protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// `true` / `false`.
    Boolean = 1,
    /// Free text or one of a set of names.
    String = 2,
    /// 32-bit integer.
    Int = 3,
    /// 64-bit integer.
    Long = 5,
    /// Floating point.
    Double = 6,
    /// Comma-separated list.
    List = 7,
}

impl ConfigType {
    /// The protocol's code.
    pub fn code(self) -> i8 {
        self as i8
    }
}

/// What values a config accepts, as Kafka's `ConfigDef` validators say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Valid {
    /// Anything of the type.
    Any,
    /// An integer of the type at least this.
    AtLeast(i64),
    /// An integer of the type in this closed range.
    Between(i64, i64),
    /// An integer in the range, or this one value besides (gzip's level: 1–9 or -1).
    BetweenOr(i64, i64, i64),
    /// A number from 0 to 1.
    Fraction,
    /// One of these names (case-sensitive, as Kafka's `ValidString`).
    OneOf(&'static [&'static str]),
    /// A list whose members are each one of these.
    ListOf(&'static [&'static str]),
    /// Kafka's throttled-replicas list: empty, `*`, or `partition:broker` pairs.
    ReplicaList,
    /// A registry subject name (at most 255 characters, none of them control characters).
    Subject,
}

/// What a config does in Floe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Applied as Kafka applies it (or as the note in docs/configuration.md says).
    Applied,
    /// Accepted, stored and reported, with no effect; the reason why.
    None(&'static str),
}

/// One topic config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigDef {
    /// The topic-level name.
    pub name: &'static str,
    /// Its type.
    pub kind: ConfigType,
    /// Kafka's default (the broker's own default may differ: see `floe.toml` `[log]`).
    pub default: &'static str,
    /// Accepted values.
    pub valid: Valid,
    /// The broker-level name whose value is the default for topics (Kafka's
    /// `ServerTopicConfigSynonyms`), if there is one.
    pub broker_name: Option<&'static str>,
    /// What it does here.
    pub effect: Effect,
    /// One line of documentation (DescribeConfigs `include_documentation`).
    pub doc: &'static str,
}

const NO_REPLICAS: Effect = Effect::None(
    "one broker holds every partition: there are no replicas to elect, throttle or count",
);
const NO_COMPACTION: Effect = Effect::None(
    "a compacted topic keeps every record: Floe does not remove superseded records yet",
);
const LONG_MAX: &str = "9223372036854775807";

const fn def(
    name: &'static str,
    kind: ConfigType,
    default: &'static str,
    valid: Valid,
    broker_name: Option<&'static str>,
    effect: Effect,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        kind,
        default,
        valid,
        broker_name,
        effect,
        doc,
    }
}

use ConfigType::{Boolean, Double, Int, List, Long, String as Str};
use Effect::Applied;

/// Every topic config, Kafka's in its documentation's order, then Floe's.
#[rustfmt::skip]
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    def("cleanup.policy", List, "delete", Valid::ListOf(&["compact", "delete"]), Some("log.cleanup.policy"), Applied,
        "delete: old data is deleted by retention; compact: keys are required and retention deletes nothing (superseded records are kept)"),
    def("compression.gzip.level", Int, "-1", Valid::BetweenOr(1, 9, -1), Some("compression.gzip.level"), Applied,
        "gzip level used when compression.type=gzip recompresses batches; -1 = the codec's default"),
    def("compression.lz4.level", Int, "9", Valid::Between(1, 17), Some("compression.lz4.level"), Applied,
        "lz4 level used when compression.type=lz4 recompresses batches"),
    def("compression.type", Str, "producer",
        Valid::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]), Some("compression.type"), Applied,
        "the codec batches are stored with: producer keeps the producer's, any other recompresses batches that use another codec"),
    def("compression.zstd.level", Int, "3", Valid::Between(-131_072, 22), Some("compression.zstd.level"), Applied,
        "zstd level used when compression.type=zstd recompresses batches"),
    def("delete.retention.ms", Long, "86400000", Valid::AtLeast(0), Some("log.cleaner.delete.retention.ms"), NO_COMPACTION,
        "how long tombstones stay for compacted topics"),
    def("file.delete.delay.ms", Long, "60000", Valid::AtLeast(0), Some("log.segment.delete.delay.ms"),
        Effect::None("segments are unlinked at once: a reader holding one keeps its open file"),
        "how long a deleted segment waits before its files are removed"),
    def("flush.messages", Long, LONG_MAX, Valid::AtLeast(1), Some("log.flush.interval.messages"),
        Effect::None("fsync follows the broker's [log] fsync policy (always, or an interval)"),
        "fsync after this many records"),
    def("flush.ms", Long, LONG_MAX, Valid::AtLeast(0), Some("log.flush.interval.ms"),
        Effect::None("fsync follows the broker's [log] fsync policy (always, or an interval)"),
        "fsync after this many ms"),
    def("follower.replication.throttled.replicas", List, "", Valid::ReplicaList, None, NO_REPLICAS,
        "replicas whose follower replication is throttled"),
    def("index.interval.bytes", Int, "4096", Valid::AtLeast(0), Some("log.index.interval.bytes"), Applied,
        "bytes of log between two offset-index entries"),
    def("leader.replication.throttled.replicas", List, "", Valid::ReplicaList, None, NO_REPLICAS,
        "replicas whose leader replication is throttled"),
    def("local.retention.bytes", Long, "-2", Valid::AtLeast(-2), Some("log.local.retention.bytes"), Applied,
        "local per-partition size bound for data already landed; -2 = retention.bytes, -1 unlimited"),
    def("local.retention.ms", Long, "-2", Valid::AtLeast(-2), Some("log.local.retention.ms"), Applied,
        "how long the local log keeps data already landed in the lake, in ms; -2 = retention.ms, -1 forever"),
    def("max.compaction.lag.ms", Long, LONG_MAX, Valid::AtLeast(1), Some("log.cleaner.max.compaction.lag.ms"), NO_COMPACTION,
        "longest a record stays uncompacted"),
    def("max.message.bytes", Int, "1048588", Valid::AtLeast(0), Some("message.max.bytes"), Applied,
        "largest record batch accepted, in bytes, after recompression"),
    def("message.timestamp.after.max.ms", Long, "3600000", Valid::AtLeast(0), Some("log.message.timestamp.after.max.ms"), Applied,
        "CreateTime records stamped more than this many ms after the broker's clock are refused (INVALID_TIMESTAMP)"),
    def("message.timestamp.before.max.ms", Long, LONG_MAX, Valid::AtLeast(0), Some("log.message.timestamp.before.max.ms"), Applied,
        "CreateTime records stamped more than this many ms before the broker's clock are refused (INVALID_TIMESTAMP)"),
    def("message.timestamp.type", Str, "CreateTime", Valid::OneOf(&["CreateTime", "LogAppendTime"]),
        Some("log.message.timestamp.type"), Applied, "CreateTime or LogAppendTime"),
    def("min.cleanable.dirty.ratio", Double, "0.5", Valid::Fraction, Some("log.cleaner.min.cleanable.ratio"), NO_COMPACTION,
        "dirty share of a log that starts compaction"),
    def("min.compaction.lag.ms", Long, "0", Valid::AtLeast(0), Some("log.cleaner.min.compaction.lag.ms"), NO_COMPACTION,
        "shortest a record stays uncompacted"),
    def("min.insync.replicas", Int, "1", Valid::AtLeast(1), Some("min.insync.replicas"),
        Effect::None("one broker holds every partition: acks=all waits for the [log] fsync policy, not for replicas"),
        "replicas that must acknowledge an acks=all write"),
    def("preallocate", Boolean, "false", Valid::Any, Some("log.preallocate"),
        Effect::None("segment files grow as they are written"),
        "preallocate segment files"),
    def("remote.log.copy.disable", Boolean, "false", Valid::Any, None,
        Effect::None("the lake ([lake], lake.* configs) is Floe's remote tier and lands every topic"),
        "stop copying to remote storage"),
    def("remote.log.delete.on.disable", Boolean, "false", Valid::Any, None,
        Effect::None("the lake ([lake], lake.* configs) is Floe's remote tier and lands every topic"),
        "delete remote data when remote storage is disabled"),
    def("remote.storage.enable", Boolean, "false", Valid::Any, None,
        Effect::None("the lake ([lake], lake.* configs) is Floe's remote tier and lands every topic"),
        "tiered storage for the topic"),
    def("retention.bytes", Long, "-1", Valid::Any, Some("log.retention.bytes"), Applied,
        "per-partition size bound in bytes; -1 is unlimited"),
    def("retention.ms", Long, "604800000", Valid::AtLeast(-1), Some("log.retention.ms"), Applied,
        "how long to keep data, in ms; -1 keeps it forever"),
    def("segment.bytes", Int, "1073741824", Valid::AtLeast(1024), Some("log.segment.bytes"), Applied,
        "segment file size at which the log rolls (>= 1024)"),
    def("segment.index.bytes", Int, "10485760", Valid::AtLeast(4), Some("log.index.size.max.bytes"),
        Effect::None("a segment's sparse index grows with it and is not preallocated"),
        "size of a segment's index files"),
    def("segment.jitter.ms", Long, "0", Valid::AtLeast(0), Some("log.roll.jitter.ms"),
        Effect::None("time-based rolls are per partition and already spread by their first append"),
        "random jitter subtracted from segment.ms"),
    def("segment.ms", Long, "604800000", Valid::AtLeast(1), Some("log.roll.ms"), Applied,
        "roll the active segment once its first append is this many ms old"),
    def("unclean.leader.election.enable", Boolean, "false", Valid::Any, Some("unclean.leader.election.enable"), NO_REPLICAS,
        "elect an out-of-sync replica as leader"),
    def("lake.partition.by", Str, "day", Valid::OneOf(&["day", "hour"]), Some("log.lake.partition.by"), Applied,
        "time partitioning of the topic's Iceberg table: day or hour (fixed when the table is created)"),
    def("lake.commit.interval.ms", Long, "-1", Valid::AtLeast(-1), Some("log.lake.commit.interval.ms"), Applied,
        "how often the topic lands a round into its table, in ms (>= 10); -1 = the broker's [lake] commit_interval"),
    def("lake.commit.bytes", Long, "-1", Valid::AtLeast(-1), Some("log.lake.commit.bytes"), Applied,
        "the topic lands a round early once this many bytes of rows wait in its tails (>= 1); -1 = the broker's [lake] commit_bytes"),
    def("lake.snapshot.retention.ms", Long, "604800000", Valid::AtLeast(0), Some("log.lake.snapshot.retention.ms"), Applied,
        "how long table snapshots stay for time travel before they expire, in ms (>= 0)"),
    def("lake.key.schema", Str, "raw", Valid::OneOf(&["raw", "wire", "latest", "auto"]), Some("log.lake.key.schema"), Applied,
        "how keys land: raw (bytes), wire (Confluent wire format, schema id in each record), latest (the subject's latest schema) or auto (wire once the subject has a schema, raw until then)"),
    def("lake.key.subject", Str, "", Valid::Subject, Some("log.lake.key.subject"), Applied,
        "registry subject of the keys; empty = <topic>-key"),
    def("lake.value.schema", Str, "raw", Valid::OneOf(&["raw", "wire", "latest", "auto"]), Some("log.lake.value.schema"), Applied,
        "how values land: raw (bytes), wire (Confluent wire format, schema id in each record), latest (the subject's latest schema) or auto (wire once the subject has a schema, raw until then)"),
    def("lake.value.subject", Str, "", Valid::Subject, Some("log.lake.value.subject"), Applied,
        "registry subject of the values; empty = <topic>-value"),
    def("confluent.key.schema.validation", Boolean, "false", Valid::Any, None, Applied,
        "produce refuses (INVALID_RECORD) records whose key does not decode under lake.key.schema (Confluent Server's name)"),
    def("confluent.value.schema.validation", Boolean, "false", Valid::Any, None, Applied,
        "produce refuses (INVALID_RECORD) records whose value does not decode under lake.value.schema (Confluent Server's name)"),
];

const FIXED_THREADS: Effect =
    Effect::None("Floe's work runs on tokio's runtime, whose threads are fixed at start");
const NO_SASL: Effect = Effect::None("Floe has no SASL yet");
const NO_CLEANER: Effect = Effect::None("Floe has no log cleaner yet (cleanup.policy)");
const CONNECTION_LIMITS: Effect =
    Effect::None("connections are bounded by [kafka] max_connections_per_ip in floe.toml");

/// Kafka's dynamic broker configs that are not a topic config's synonym (those are
/// dynamic too, as cluster-wide topic defaults): accepted by AlterConfigs and
/// IncrementalAlterConfigs on a BROKER resource, with Kafka's types and validation,
/// stored and reported. Each says why it has no effect here.
#[rustfmt::skip]
pub const DYNAMIC_BROKER_CONFIGS: &[ConfigDef] = &[
    def("background.threads", Int, "10", Valid::AtLeast(1), None, FIXED_THREADS,
        "threads for background tasks"),
    def("num.io.threads", Int, "8", Valid::AtLeast(1), None, FIXED_THREADS,
        "threads that handle requests"),
    def("num.network.threads", Int, "3", Valid::AtLeast(1), None, FIXED_THREADS,
        "threads that read and write the network"),
    def("num.recovery.threads.per.data.dir", Int, "2", Valid::AtLeast(1), None, FIXED_THREADS,
        "threads per data directory for log recovery"),
    def("num.replica.fetchers", Int, "1", Valid::Any, None, NO_REPLICAS,
        "fetcher threads per source broker"),
    def("log.cleaner.threads", Int, "1", Valid::AtLeast(0), None, NO_CLEANER,
        "log cleaner threads"),
    def("log.cleaner.backoff.ms", Long, "15000", Valid::AtLeast(0), None, NO_CLEANER,
        "sleep between cleaner passes with nothing to clean"),
    def("log.cleaner.dedupe.buffer.size", Long, "134217728", Valid::Any, None, NO_CLEANER,
        "memory for the cleaner's key map"),
    def("log.cleaner.io.buffer.size", Int, "524288", Valid::AtLeast(0), None, NO_CLEANER,
        "the cleaner's I/O buffers"),
    def("max.connections", Int, "2147483647", Valid::AtLeast(0), None, CONNECTION_LIMITS,
        "connections the broker accepts in all"),
    def("max.connections.per.ip", Int, "2147483647", Valid::AtLeast(0), None, CONNECTION_LIMITS,
        "connections the broker accepts from one address"),
    def("max.connection.creation.rate", Int, "2147483647", Valid::AtLeast(0), None, CONNECTION_LIMITS,
        "new connections per second the broker accepts"),
    def("sasl.enabled.mechanisms", List, "GSSAPI", Valid::Any, None, NO_SASL,
        "SASL mechanisms the listeners offer"),
    def("sasl.kerberos.kinit.cmd", Str, "/usr/bin/kinit", Valid::Any, None, NO_SASL,
        "Kerberos kinit command"),
    def("sasl.kerberos.min.time.before.relogin", Long, "60000", Valid::Any, None, NO_SASL,
        "Kerberos login thread sleep between refresh attempts"),
    def("sasl.kerberos.principal.to.local.rules", List, "DEFAULT", Valid::Any, None, NO_SASL,
        "rules mapping principal names to short names"),
    def("sasl.kerberos.ticket.renew.jitter", Double, "0.05", Valid::Fraction, None, NO_SASL,
        "random jitter added to the renewal time"),
    def("sasl.kerberos.ticket.renew.window.factor", Double, "0.8", Valid::Fraction, None, NO_SASL,
        "share of the ticket lifetime after which it is renewed"),
];

/// The definition of dynamic broker config `name` that is not a topic config's synonym.
pub fn dynamic_broker_config(name: &str) -> Option<&'static ConfigDef> {
    DYNAMIC_BROKER_CONFIGS.iter().find(|d| d.name == name)
}

/// The definition of topic config `name`.
pub fn topic_config(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// The topic config whose broker-level synonym is `broker_name`.
pub fn by_broker_name(broker_name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS
        .iter()
        .find(|d| d.broker_name == Some(broker_name))
}

impl ConfigDef {
    /// Checks `value` against the type and the validator, as Kafka's `ConfigDef.parse`
    /// does: surrounding spaces are trimmed for numbers, booleans and list members.
    ///
    /// # Errors
    /// What is allowed, in words.
    pub fn check(&self, value: &str) -> Result<(), String> {
        let v = value.trim();
        let int = |min: i64, max: i64| -> Result<i64, String> {
            let n: i64 = v.parse().map_err(|_| "expected an integer".to_string())?;
            if n < min || n > max {
                return Err(
                    if max == i64::MAX || (self.kind == Int && max == i32::MAX.into()) {
                        format!("must be at least {min}")
                    } else {
                        format!("must be between {min} and {max}")
                    },
                );
            }
            Ok(n)
        };
        let (lo, hi) = match self.kind {
            Int => (i32::MIN.into(), i32::MAX.into()),
            _ => (i64::MIN, i64::MAX),
        };
        match (self.kind, self.valid) {
            (Int | Long, Valid::Any) => {
                let n: i64 = v.parse().map_err(|_| "expected an integer".to_string())?;
                if n < lo || n > hi {
                    return Err("must fit in a 32-bit integer".into());
                }
            }
            (Int | Long, Valid::AtLeast(min)) => {
                let n: i64 = v.parse().map_err(|_| "expected an integer".to_string())?;
                if n > hi {
                    return Err("must fit in a 32-bit integer".into());
                }
                int(min, hi)?;
            }
            (Int | Long, Valid::Between(min, max)) => {
                int(min, max)?;
            }
            (Int | Long, Valid::BetweenOr(min, max, or)) => {
                let n: i64 = v.parse().map_err(|_| "expected an integer".to_string())?;
                if n != or && !(min..=max).contains(&n) {
                    return Err(format!("must be between {min} and {max}, or {or}"));
                }
            }
            (Double, _) => {
                let x: f64 = v.parse().map_err(|_| "expected a number".to_string())?;
                if !(0.0..=1.0).contains(&x) {
                    return Err("must be between 0 and 1".into());
                }
            }
            (Boolean, _) => {
                if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                    return Err("expected true or false".into());
                }
            }
            (Str, Valid::OneOf(names)) => {
                if !names.contains(&value) {
                    return Err(format!("expected one of {}", names.join(", ")));
                }
            }
            (Str, Valid::Subject) => {
                if value.len() > 255 || value.chars().any(char::is_control) {
                    return Err(
                        "a subject is at most 255 characters, none of them control characters"
                            .into(),
                    );
                }
            }
            (List, Valid::ListOf(names)) => {
                for member in list(value) {
                    if !names.contains(&member) {
                        return Err(format!("each member must be one of {}", names.join(", ")));
                    }
                }
            }
            (List, Valid::ReplicaList) => {
                let members: Vec<&str> = list(value).collect();
                let pair = |m: &str| {
                    m.split_once(':').is_some_and(|(p, b)| {
                        p.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok()
                    })
                };
                if !(members == ["*"] || members.iter().all(|m| pair(m))) {
                    return Err(
                        "expected *, or a list of partition:broker pairs such as 0:1,1:1".into(),
                    );
                }
            }
            (Str | List, Valid::Any) => {
                if value.len() > 4096 || value.chars().any(char::is_control) {
                    return Err("at most 4096 characters, none of them control characters".into());
                }
            }
            (kind, valid) => return Err(format!("no check for {kind:?} values {valid:?}")),
        }
        Ok(())
    }
}

/// The members of a list value: comma-separated, trimmed, empty members skipped.
pub fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|m| !m.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_passes_its_own_check() {
        for d in TOPIC_CONFIGS.iter().chain(DYNAMIC_BROKER_CONFIGS) {
            assert_eq!(d.check(d.default), Ok(()), "{}", d.name);
        }
        let threads = dynamic_broker_config("background.threads").unwrap();
        assert_eq!(threads.check("0").unwrap_err(), "must be at least 1");
    }

    #[test]
    fn names_and_broker_names_are_unique() {
        for (i, d) in TOPIC_CONFIGS.iter().enumerate() {
            assert_eq!(topic_config(d.name).map(|f| f.name), Some(d.name));
            for e in &TOPIC_CONFIGS[i + 1..] {
                assert_ne!(d.name, e.name);
                if d.broker_name.is_some() {
                    assert_ne!(d.broker_name, e.broker_name, "{} and {}", d.name, e.name);
                }
            }
        }
        assert_eq!(
            by_broker_name("log.roll.ms").map(|d| d.name),
            Some("segment.ms")
        );
        assert_eq!(
            by_broker_name("message.max.bytes").map(|d| d.name),
            Some("max.message.bytes")
        );
    }

    #[test]
    fn kafkas_validators() {
        let check = |k: &str, v: &str| topic_config(k).unwrap().check(v);
        assert_eq!(
            check("compression.type", "brotli").unwrap_err(),
            "expected one of uncompressed, zstd, lz4, snappy, gzip, producer"
        );
        assert!(check("compression.type", "zstd").is_ok());
        assert!(check("compression.gzip.level", "-1").is_ok());
        assert_eq!(
            check("compression.gzip.level", "0").unwrap_err(),
            "must be between 1 and 9, or -1"
        );
        assert_eq!(
            check("compression.lz4.level", "18").unwrap_err(),
            "must be between 1 and 17"
        );
        assert!(check("compression.zstd.level", "-5").is_ok());
        assert_eq!(
            check("min.insync.replicas", "0").unwrap_err(),
            "must be at least 1"
        );
        assert_eq!(
            check("min.insync.replicas", "3000000000").unwrap_err(),
            "must fit in a 32-bit integer"
        );
        assert_eq!(
            check("min.cleanable.dirty.ratio", "1.5").unwrap_err(),
            "must be between 0 and 1"
        );
        assert_eq!(
            check("preallocate", "yes").unwrap_err(),
            "expected true or false"
        );
        assert!(check("preallocate", "TRUE").is_ok());
        assert!(check("cleanup.policy", "delete, compact").is_ok());
        assert!(check("cleanup.policy", "archive").is_err());
        assert!(check("leader.replication.throttled.replicas", "0:1, 1:1").is_ok());
        assert!(check("leader.replication.throttled.replicas", "*").is_ok());
        assert!(check("leader.replication.throttled.replicas", "").is_ok());
        assert!(check("leader.replication.throttled.replicas", "0-1").is_err());
        assert!(check("retention.bytes", "-5").is_ok());
        assert_eq!(check("segment.ms", "0").unwrap_err(), "must be at least 1");
        assert_eq!(
            check("flush.ms", "soon").unwrap_err(),
            "expected an integer"
        );
    }
}
