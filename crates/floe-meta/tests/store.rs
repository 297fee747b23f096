//! Behaviour tests, each body run against SQLite (tempdir file) and Postgres.
//!
//! Postgres: set `FLOE_TEST_POSTGRES_URL` to an admin URL (e.g. from
//! `scripts/postgres.sh start DIR`); every test creates and drops its own
//! `floe_test_<random>` database. Without the variable the Postgres tests fail,
//! unless `FLOE_SKIP_POSTGRES=1`.

// Tests own each task they spawn by awaiting its handle before they end.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use floe_meta::{Backend, CommittedOffset, Error, MetaStore, MetaStoreOptions, TopicRecord};
use sqlx::Connection;

// ---- harness -------------------------------------------------------------

/// What a test body gets: a URL for a fresh, empty store.
struct Ctx {
    url: String,
    backend: Backend,
}

impl Ctx {
    async fn connect(&self) -> MetaStore {
        let store = MetaStore::connect(&self.url).await.unwrap();
        assert_eq!(store.backend(), self.backend);
        store
    }
}

async fn run<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/meta.db", dir.path().display());
            body(Ctx { url, backend }).await;
        }
        Backend::Postgres => {
            let Some(admin_url) = postgres_admin_url() else {
                return;
            };
            let db = format!("floe_test_{}", uuid::Uuid::new_v4().simple());
            let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&mut admin)
                .await
                .unwrap();
            let url = with_database(&admin_url, &db);
            // Run the body in its own task so a panic still lets us drop the database.
            let result = tokio::spawn(body(Ctx { url, backend })).await;
            sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
                .execute(&mut admin)
                .await
                .unwrap();
            admin.close().await.unwrap();
            if let Err(e) = result {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
}

fn postgres_admin_url() -> Option<String> {
    match std::env::var("FLOE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("FLOE_SKIP_POSTGRES").as_deref() == Ok("1") => {
            eprintln!("note: FLOE_SKIP_POSTGRES=1, skipping Postgres test");
            None
        }
        _ => panic!(
            "FLOE_TEST_POSTGRES_URL is not set: point it at a Postgres admin URL \
             (e.g. `export FLOE_TEST_POSTGRES_URL=$(scripts/postgres.sh start /tmp/floe-pg)`), \
             or set FLOE_SKIP_POSTGRES=1 to skip the Postgres tests"
        ),
    }
}

/// `admin_url` with its database path replaced by `db`.
fn with_database(admin_url: &str, db: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin_url, None),
    };
    let authority_start = base.find("://").unwrap() + 3;
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// One `#[tokio::test]` per backend for each behaviour body.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::run(floe_meta::Backend::Sqlite, super::$name).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::run(floe_meta::Backend::Postgres, super::$name).await
            }
        }
    )*};
}

on_both_backends!(
    topics_crud,
    topic_configs_round_trip,
    partition_count_change,
    offsets_commit_upsert_fetch_delete,
    expiry_spares_offsets_committed_again,
    delete_topic_removes_offsets,
    producer_ids_never_overlap,
    persistence_across_reconnect,
    registry_ids_versions_and_deletes,
    group_configs_round_trip,
    broker_configs_round_trip,
);

fn topic(name: &str, partitions: i32) -> TopicRecord {
    TopicRecord::new(name, partitions, BTreeMap::new())
}

fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn offset(topic: &str, partition: i32, offset: i64, metadata: Option<&str>) -> CommittedOffset {
    CommittedOffset {
        topic: topic.into(),
        partition,
        offset,
        leader_epoch: 3,
        metadata: metadata.map(str::to_owned),
        commit_timestamp_ms: 1_700_000_000_000 + offset,
    }
}

// ---- behaviours ----------------------------------------------------------

async fn topics_crud(ctx: Ctx) {
    let store = ctx.connect().await;
    assert!(store.list_topics().await.unwrap().is_empty());
    assert_eq!(store.get_topic("b").await.unwrap(), None);

    // Insert out of order, including a name that sorts differently under
    // locale collations ("B" vs "a").
    let b = topic("b", 3);
    let a = topic("a", 1);
    let upper = topic("B", 2);
    for t in [&b, &a, &upper] {
        store.create_topic(t).await.unwrap();
    }
    assert_eq!(store.get_topic("b").await.unwrap().as_ref(), Some(&b));
    let names: Vec<_> = store
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["B", "a", "b"]);

    let err = store.create_topic(&topic("b", 9)).await.unwrap_err();
    assert!(
        matches!(&err, Error::TopicExists { name } if name == "b"),
        "{err:?}"
    );
    assert_eq!(store.get_topic("b").await.unwrap().unwrap().partitions, 3);

    let err = store.set_partition_count("nope", 4).await.unwrap_err();
    assert!(
        matches!(&err, Error::UnknownTopic { name } if name == "nope"),
        "{err:?}"
    );
    let err = store
        .set_topic_configs("nope", &BTreeMap::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownTopic { name } if name == "nope"),
        "{err:?}"
    );
    let err = store.create_topic(&topic("neg", -1)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");

    assert!(store.delete_topic("b").await.unwrap());
    assert!(!store.delete_topic("b").await.unwrap());
    assert_eq!(store.get_topic("b").await.unwrap(), None);
    assert_eq!(store.list_topics().await.unwrap(), vec![upper, a]);

    // The name is free again, with a new id.
    let b2 = topic("b", 5);
    store.create_topic(&b2).await.unwrap();
    assert_eq!(store.get_topic("b").await.unwrap(), Some(b2));
    store.close().await;
}

async fn group_configs_round_trip(ctx: Ctx) {
    let store = ctx.connect().await;
    assert!(store.list_group_configs().await.unwrap().is_empty());
    let a = configs(&[("consumer.session.timeout.ms", "50000")]);
    store.set_group_configs("g1", &a).await.unwrap();
    store
        .set_group_configs(
            "g2",
            &configs(&[("consumer.heartbeat.interval.ms", "6000")]),
        )
        .await
        .unwrap();
    // Replaced whole, and an empty map removes the group's row.
    let b = configs(&[("consumer.heartbeat.interval.ms", "7000")]);
    store.set_group_configs("g1", &b).await.unwrap();
    store
        .set_group_configs("g2", &BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(
        store.list_group_configs().await.unwrap(),
        vec![("g1".to_string(), b)]
    );
}

async fn broker_configs_round_trip(ctx: Ctx) {
    let store = ctx.connect().await;
    assert!(store.list_broker_configs().await.unwrap().is_empty());
    let cluster = configs(&[("log.retention.ms", "3600000")]);
    let broker = configs(&[("background.threads", "9")]);
    store.set_broker_configs("", &cluster).await.unwrap();
    store.set_broker_configs("1", &broker).await.unwrap();
    assert_eq!(
        store.list_broker_configs().await.unwrap(),
        vec![("".to_string(), cluster.clone()), ("1".to_string(), broker)]
    );
    // Group configs live apart.
    assert!(store.list_group_configs().await.unwrap().is_empty());
    store
        .set_broker_configs("1", &BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(
        store.list_broker_configs().await.unwrap(),
        vec![("".to_string(), cluster)]
    );
}

async fn topic_configs_round_trip(ctx: Ctx) {
    let store = ctx.connect().await;
    let original = configs(&[
        ("retention.ms", "604800000"),
        ("cleanup.policy", "compact,delete"),
        ("weird \"key\"", "ünïcødé \\ \n value"),
        ("empty", ""),
    ]);
    let t = TopicRecord::new("configured", 2, original.clone());
    store.create_topic(&t).await.unwrap();
    assert_eq!(
        store
            .get_topic("configured")
            .await
            .unwrap()
            .unwrap()
            .configs,
        original
    );

    // set_topic_configs replaces the whole map.
    let replaced = configs(&[("segment.bytes", "1048576")]);
    store
        .set_topic_configs("configured", &replaced)
        .await
        .unwrap();
    let got = store.get_topic("configured").await.unwrap().unwrap();
    assert_eq!(got.configs, replaced);
    assert_eq!((got.topic_id, got.partitions), (t.topic_id, t.partitions));

    store
        .set_topic_configs("configured", &BTreeMap::new())
        .await
        .unwrap();
    assert!(store
        .get_topic("configured")
        .await
        .unwrap()
        .unwrap()
        .configs
        .is_empty());
    store.close().await;
}

async fn partition_count_change(ctx: Ctx) {
    let store = ctx.connect().await;
    let t = TopicRecord::new("grow", 1, configs(&[("k", "v")]));
    store.create_topic(&t).await.unwrap();
    store.set_partition_count("grow", 12).await.unwrap();
    let got = store.get_topic("grow").await.unwrap().unwrap();
    assert_eq!(
        got,
        TopicRecord {
            partitions: 12,
            ..t.clone()
        }
    );
    store.set_partition_count("grow", i32::MAX).await.unwrap();
    assert_eq!(
        store.get_topic("grow").await.unwrap().unwrap().partitions,
        i32::MAX
    );
    let err = store.set_partition_count("grow", -3).await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    store.close().await;
}

async fn offsets_commit_upsert_fetch_delete(ctx: Ctx) {
    let store = ctx.connect().await;
    assert!(store.fetch_offsets("g1").await.unwrap().is_empty());
    assert!(store.list_offset_groups().await.unwrap().is_empty());
    store.commit_offsets("g1", &[]).await.unwrap();

    store
        .commit_offsets(
            "g1",
            &[
                offset("t2", 0, 5, None),
                offset("t1", 1, 10, Some("m")),
                offset("t1", 0, 7, Some("")),
                // Same partition twice in one batch: last wins.
                offset("t2", 0, 6, Some("last")),
            ],
        )
        .await
        .unwrap();
    store
        .commit_offsets("g0", &[offset("t1", 0, 1, None)])
        .await
        .unwrap();
    assert_eq!(
        store.fetch_offsets("g1").await.unwrap(),
        vec![
            offset("t1", 0, 7, Some("")),
            offset("t1", 1, 10, Some("m")),
            offset("t2", 0, 6, Some("last")),
        ]
    );
    assert_eq!(store.list_offset_groups().await.unwrap(), ["g0", "g1"]);

    // Upsert: overwrite one, add one, leave the rest.
    let mut moved = offset("t1", 1, 42, None);
    moved.leader_epoch = -1;
    store
        .commit_offsets("g1", &[moved.clone(), offset("t3", 2, 1, None)])
        .await
        .unwrap();
    assert_eq!(
        store.fetch_offsets("g1").await.unwrap(),
        vec![
            offset("t1", 0, 7, Some("")),
            moved.clone(),
            offset("t2", 0, 6, Some("last")),
            offset("t3", 2, 1, None),
        ]
    );

    // A large batch spans several multi-row inserts.
    let big: Vec<_> = (0..250)
        .map(|p| offset("big", p, i64::from(p), None))
        .collect();
    store.commit_offsets("g2", &big).await.unwrap();
    assert_eq!(store.fetch_offsets("g2").await.unwrap(), big);

    assert_eq!(
        store.delete_offsets("g1", "t1", &[0, 1, 99]).await.unwrap(),
        2
    );
    assert_eq!(store.delete_offsets("g1", "t1", &[]).await.unwrap(), 0);
    assert_eq!(
        store.fetch_offsets("g1").await.unwrap(),
        vec![offset("t2", 0, 6, Some("last")), offset("t3", 2, 1, None)]
    );
    assert_eq!(store.delete_group_offsets("g2").await.unwrap(), 250);
    assert_eq!(store.delete_group_offsets("g2").await.unwrap(), 0);
    assert_eq!(store.list_offset_groups().await.unwrap(), ["g0", "g1"]);
    assert_eq!(
        store.fetch_offsets("g0").await.unwrap(),
        vec![offset("t1", 0, 1, None)]
    );
    store.close().await;
}

async fn expiry_spares_offsets_committed_again(ctx: Ctx) {
    let store = ctx.connect().await;
    let read = vec![offset("t", 0, 5, None), offset("t", 1, 6, None)];
    store.commit_offsets("g", &read).await.unwrap();
    assert_eq!(store.expire_offsets("g", &[]).await.unwrap(), 0);
    // Partition 1 is committed again after expiry read it: only partition 0 goes.
    let mut again = offset("t", 1, 9, None);
    again.commit_timestamp_ms = read[1].commit_timestamp_ms + 1;
    store.commit_offsets("g", &[again.clone()]).await.unwrap();
    assert_eq!(store.expire_offsets("g", &read).await.unwrap(), 1);
    assert_eq!(store.fetch_offsets("g").await.unwrap(), vec![again]);
    store.close().await;
}

async fn delete_topic_removes_offsets(ctx: Ctx) {
    let store = ctx.connect().await;
    store.create_topic(&topic("gone", 2)).await.unwrap();
    store.create_topic(&topic("kept", 1)).await.unwrap();
    let batch = [
        offset("gone", 0, 1, None),
        offset("gone", 1, 2, None),
        offset("kept", 0, 3, None),
    ];
    store.commit_offsets("ga", &batch).await.unwrap();
    store.commit_offsets("gb", &batch[..1]).await.unwrap();

    assert!(store.delete_topic("gone").await.unwrap());
    assert_eq!(
        store.fetch_offsets("ga").await.unwrap(),
        vec![offset("kept", 0, 3, None)]
    );
    // gb only had offsets for the deleted topic, so it has none left.
    assert!(store.fetch_offsets("gb").await.unwrap().is_empty());
    assert_eq!(store.list_offset_groups().await.unwrap(), ["ga"]);
    store.close().await;
}

async fn producer_ids_never_overlap(ctx: Ctx) {
    let mut blocks: Vec<(i64, i64)> = Vec::new();
    let store = ctx.connect().await;
    let first = store.allocate_producer_ids(1).await.unwrap();
    assert!(first >= 0);
    blocks.push((first, 1));
    let second = store.allocate_producer_ids(10).await.unwrap();
    assert!(second > first);
    blocks.push((second, 10));
    for bad in [0, -5] {
        let err = store.allocate_producer_ids(bad).await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    }

    // Concurrently: several tasks on this store and on a second store (a
    // second "broker") sharing the database.
    let other = ctx.connect().await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = if i % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for j in 0..20 {
                let count = 1 + (i * 20 + j) % 7;
                mine.push((s.allocate_producer_ids(count).await.unwrap(), count));
            }
            mine
        }));
    }
    for task in tasks {
        blocks.extend(task.await.unwrap());
    }
    other.close().await;
    let max_end = blocks.iter().map(|(f, c)| f + c).max().unwrap();
    store.close().await;

    // Across reconnect: new blocks start after everything handed out before.
    let store = ctx.connect().await;
    let after = store.allocate_producer_ids(1000).await.unwrap();
    assert!(after >= max_end, "{after} < {max_end}");
    blocks.push((after, 1000));
    store.close().await;

    let mut seen = BTreeSet::new();
    let total: i64 = blocks.iter().map(|(_, c)| c).sum();
    for (first, count) in &blocks {
        for id in *first..first + count {
            assert!(seen.insert(id), "producer id {id} handed out twice");
        }
    }
    assert_eq!(seen.len() as i64, total);
}

async fn persistence_across_reconnect(ctx: Ctx) {
    let t = TopicRecord::new("durable", 4, configs(&[("retention.ms", "1000")]));
    let committed = vec![
        offset("durable", 0, 11, Some("x")),
        offset("durable", 3, 12, None),
    ];
    {
        let store = ctx.connect().await;
        store.create_topic(&t).await.unwrap();
        store.commit_offsets("g", &committed).await.unwrap();
        store.close().await;
    }
    let store = ctx.connect().await;
    assert_eq!(store.list_topics().await.unwrap(), vec![t.clone()]);
    assert_eq!(store.fetch_offsets("g").await.unwrap(), committed);
    // Reconnecting ran the migrations again without harm; the store still writes.
    store.set_partition_count("durable", 5).await.unwrap();
    store.close().await;
    let store = ctx.connect().await;
    assert_eq!(
        store
            .get_topic("durable")
            .await
            .unwrap()
            .unwrap()
            .partitions,
        5
    );
    store.close().await;
}

// ---- backend-specific ----------------------------------------------------

#[tokio::test]
async fn sqlite_creates_file_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/dir/meta.db");
    let url = format!("sqlite://{}", path.display());
    let store = MetaStore::connect(&url).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    assert!(path.exists());
    store.create_topic(&topic("t", 1)).await.unwrap();
    store.close().await;

    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    conn.close().await.unwrap();
}

#[tokio::test]
async fn sqlite_relative_url() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("floe-meta-test-{}.db", uuid::Uuid::new_v4().simple());
    // Relative to the current directory: use a path through the tempdir via "..".
    let rel = pathdiff(dir.path(), &std::env::current_dir().unwrap()).join(&name);
    let store = MetaStore::connect(&format!("sqlite://{}", rel.display()))
        .await
        .unwrap();
    store.create_topic(&topic("t", 1)).await.unwrap();
    store.close().await;
    assert!(dir.path().join(&name).exists());
}

/// `path` relative to `base` (both absolute), with `..` components.
fn pathdiff(path: &std::path::Path, base: &std::path::Path) -> std::path::PathBuf {
    let path: Vec<_> = path.components().collect();
    let base: Vec<_> = base.components().collect();
    let common = path.iter().zip(&base).take_while(|(a, b)| a == b).count();
    let mut out = std::path::PathBuf::new();
    for _ in common..base.len() {
        out.push("..");
    }
    for c in &path[common..] {
        out.push(c);
    }
    out
}

#[tokio::test]
async fn connect_errors_hide_password_and_respect_deadline() {
    let options = MetaStoreOptions {
        acquire_timeout: Duration::from_millis(500),
        op_timeout: Duration::from_secs(5),
        ..MetaStoreOptions::default()
    };
    // Port 1 on localhost: refused (or filtered) quickly either way.
    let url = "postgres://floe:hunter2@127.0.0.1:1/meta";
    let started = std::time::Instant::now();
    let err = MetaStore::connect_with(url, options).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let text = format!("{err} / {err:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        matches!(&err, Error::Connect { url, .. } if url == "postgres://floe:***@127.0.0.1:1/meta")
            || matches!(err, Error::Timeout { .. }),
        "{text}"
    );

    let err = MetaStore::connect("mysql://u:pw@h/db").await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidUrl { url, .. } if url == "mysql://u:***@h/db"),
        "{err:?}"
    );
}

#[test]
fn with_database_replaces_path() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://h:1?sslmode=disable", "x"),
        "postgres://h:1/x?sslmode=disable"
    );
}

/// The schema registry's rows: one global id per fingerprint across subjects, versions
/// from 1 that keep counting past soft deletes, hard deletes that drop orphaned schemas,
/// settings per subject and global.
async fn registry_ids_versions_and_deletes(ctx: Ctx) {
    use floe_meta::RegistrySetting;
    let store = ctx.connect().await;
    let (a, v1) = store
        .registry_register("orders-value", "AVRO", "\"long\"", "[]", "fp-a")
        .await
        .unwrap();
    assert_eq!((a, v1), (1, 1));
    let (b, v2) = store
        .registry_register("orders-value", "AVRO", "\"int\"", "[]", "fp-b")
        .await
        .unwrap();
    assert_eq!((b, v2), (2, 2));
    // The same schema under another subject keeps its id.
    let (same, v) = store
        .registry_register("other-value", "AVRO", "\"long\"", "[]", "fp-a")
        .await
        .unwrap();
    assert_eq!((same, v), (a, 1));
    assert_eq!(store.registry_schema_id("fp-b").await.unwrap(), Some(b));
    assert_eq!(
        store.registry_schema(b).await.unwrap().unwrap().schema,
        "\"int\""
    );

    assert_eq!(
        store
            .registry_soft_delete("orders-value", Some(2))
            .await
            .unwrap(),
        1
    );
    let (_, v3) = store
        .registry_register("orders-value", "AVRO", "\"string\"", "[]", "fp-c")
        .await
        .unwrap();
    assert_eq!(v3, 3, "versions keep counting past a soft delete");
    let versions = store.registry_versions(Some("orders-value")).await.unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| (v.version, v.deleted))
            .collect::<Vec<_>>(),
        vec![(1, false), (2, true), (3, false)]
    );
    assert_eq!(
        store
            .registry_hard_delete("orders-value", Some(2))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.registry_schema(b).await.unwrap(),
        None,
        "orphaned schema removed"
    );
    assert_eq!(
        store
            .registry_hard_delete("orders-value", Some(3))
            .await
            .unwrap(),
        0,
        "live versions stay"
    );

    assert_eq!(
        store
            .registry_setting("", RegistrySetting::Compatibility)
            .await
            .unwrap(),
        None
    );
    store
        .registry_set_setting("", RegistrySetting::Compatibility, Some("FULL"))
        .await
        .unwrap();
    store
        .registry_set_setting("orders-value", RegistrySetting::Mode, Some("READONLY"))
        .await
        .unwrap();
    assert_eq!(
        store
            .registry_setting("", RegistrySetting::Compatibility)
            .await
            .unwrap()
            .as_deref(),
        Some("FULL")
    );
    assert_eq!(
        store
            .registry_setting("orders-value", RegistrySetting::Compatibility)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .registry_setting("orders-value", RegistrySetting::Mode)
            .await
            .unwrap()
            .as_deref(),
        Some("READONLY")
    );
    store
        .registry_set_setting("orders-value", RegistrySetting::Mode, None)
        .await
        .unwrap();
    assert_eq!(
        store
            .registry_setting("orders-value", RegistrySetting::Mode)
            .await
            .unwrap(),
        None
    );
}
