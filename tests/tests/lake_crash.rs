//! Exactly once into Iceberg across crashes: SIGKILL a `floe serve` process again and
//! again while an `acks=all` idempotent producer writes to three partitions and the
//! committer starts a round 20 ms after the last one ended, so rounds run nearly back to
//! back and kills hit Parquet writes, the gap between writing and committing, and
//! commits (each kill is classified by what it left on disk). After every restart the topic's table, read with
//! PyIceberg through Floe's REST catalog, must hold every acknowledged record exactly
//! once at its acknowledged offset, with offsets contiguous from 0 in each partition,
//! and every data file in the table's folder must be referenced by the current snapshot:
//! what a killed round left behind is deleted by the restart's clean-up. At the end a
//! Kafka consumer must read the same records as the table holds.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use floe_lake::{CatalogKind, LakeOptions};
use floe_tests::rdkafka::consumer::{BaseConsumer, Consumer};
use floe_tests::rdkafka::message::Message;
use floe_tests::rdkafka::producer::FutureRecord;
use floe_tests::rdkafka::{Offset, TopicPartitionList};
use floe_tests::*;
use iceberg::TableIdent;
use rand::Rng;

const CYCLES: usize = 8;
const PARTITIONS: i32 = 3;
const TOPIC: &str = "landing";
const NAMESPACE: &str = "kafka";

/// An acknowledged record: value, partition, offset.
type Ack = (String, i32, i64);

/// What a table holds, by (partition, offset).
type Rows = HashMap<(i32, i64), String>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_landing_keeps_every_acknowledged_record_once_in_the_table() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut broker = BrokerProcess::spawn(
        &data,
        0,
        &["--lake-enabled", "true", "--lake-commit-interval", "20ms"],
    );
    let b = broker.bootstrap();
    create_topic(&b, TOPIC, PARTITIONS, &[("segment.bytes", "65536")]).await;

    let acked: Arc<Mutex<Vec<Ack>>> = Arc::default();
    let (mut sent, mut orphans_found, mut planted) = (0, 0, 0);
    let mut moments = BTreeMap::<&str, usize>::new();
    let mut commit_leftovers = HashSet::new();
    let mut rows = Rows::new();
    for cycle in 0..CYCLES {
        let stop = Arc::new(AtomicBool::new(false));
        let task = start_producer(&b, cycle, acked.clone(), stop.clone());
        // When to kill is random; nothing is asserted on time.
        let wait = rand::rng().random_range(300..1000);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        broker.kill();

        // What the kill left: data files no snapshot references (a round killed between
        // writing and committing, or mid-write). Plus two planted ones, so that the
        // clean-up is exercised in every cycle, not only when the kill is lucky: a
        // finished file and a truncated one, both named like Floe's.
        let left = leftovers(&data, &mut commit_leftovers).await;
        orphans_found += left.data.len();
        *moments.entry(left.moment()).or_insert(0) += 1;
        let fakes = plant_orphans(&data, cycle);
        planted += fakes.len();

        broker.respawn();
        // The producer goes on against the restarted broker for a moment.
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);
        sent += task.await.unwrap();

        let ends = log_ends(&b).await;
        let acks = acked.lock().unwrap().clone();
        rows = check_table(&broker, &data, &acks, &ends).await;
        for f in &fakes {
            assert!(!f.exists(), "planted orphan {} survived", f.display());
        }
        eprintln!(
            "cycle {cycle}: killed after {wait} ms {}, {} orphan data files, log ends {ends:?}, {} rows",
            left.moment(),
            left.data.len(),
            rows.len()
        );
    }
    let acks = acked.lock().unwrap().clone();
    assert!(
        acks.len() > 1000,
        "the producer got only {} acks in {CYCLES} cycles",
        acks.len()
    );

    // The Kafka side agrees with the table.
    let consumer = consumer(&b, "lake-crash-check", &[]);
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let got = recv_n(&consumer, rows.len(), Duration::from_secs(60)).await;
    let mut kafka = Rows::new();
    for m in &got {
        let value = String::from_utf8_lossy(m.payload().unwrap()).into_owned();
        assert!(
            kafka.insert((m.partition(), m.offset()), value).is_none(),
            "consumer got partition {} offset {} twice",
            m.partition(),
            m.offset()
        );
    }
    assert!(kafka == rows, "Kafka and the table disagree");

    eprintln!(
        "{CYCLES} kill cycles in {:.1} s: {sent} sent, {} acknowledged, {} rows in the table; \
         {orphans_found} orphan data files left by kills and {planted} planted, all cleaned up; \
         kills landed {moments:?}",
        started.elapsed().as_secs_f64(),
        acks.len(),
        rows.len()
    );
}

/// Produces `c<cycle>-<i>` round-robin over the partitions until `stop`, recording what
/// is acknowledged. Returns how many records it queued.
fn start_producer(
    bootstrap: &str,
    cycle: usize,
    acked: Arc<Mutex<Vec<Ack>>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    let p = producer(
        bootstrap,
        &[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "20000"),
            ("linger.ms", "2"),
        ],
    );
    tokio::spawn(async move {
        let mut inflight = std::collections::VecDeque::new();
        let (mut i, mut queued) = (0usize, 0usize);
        let record = |d: rdkafka::producer::future_producer::Delivery, v: String| {
            acked.lock().unwrap().push((v, d.partition, d.offset));
        };
        while !stop.load(Ordering::Relaxed) {
            let v = format!("c{cycle}-{i}");
            let partition = (i % PARTITIONS as usize) as i32;
            match p.send_result(
                FutureRecord::<(), str>::to(TOPIC)
                    .partition(partition)
                    .payload(&v),
            ) {
                Ok(f) => {
                    inflight.push_back((v, f));
                    queued += 1;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
            i += 1;
            if inflight.len() >= 300 {
                let (v, f) = inflight.pop_front().unwrap();
                if let Ok(Ok(d)) = f.await {
                    record(d, v);
                }
            }
            if i.is_multiple_of(50) {
                tokio::task::yield_now().await;
            }
        }
        for (v, f) in inflight {
            if let Ok(Ok(d)) = f.await {
                record(d, v);
            }
        }
        queued
    })
}

/// The log end offset of every partition, through the Kafka API.
async fn log_ends(bootstrap: &str) -> Vec<i64> {
    let c: BaseConsumer = client_config(bootstrap).create().unwrap();
    tokio::task::spawn_blocking(move || {
        (0..PARTITIONS)
            .map(|p| {
                c.fetch_watermarks(TOPIC, p, Duration::from_secs(30))
                    .unwrap()
                    .1
            })
            .collect()
    })
    .await
    .unwrap()
}

/// Waits until the table's `floe.offsets` reaches `ends`, then reads the table with
/// PyIceberg and checks it: every acknowledged record once at its offset, offsets
/// contiguous from 0, and no data file on disk that the snapshot does not reference.
async fn check_table(broker: &BrokerProcess, data: &Path, acks: &[Ack], ends: &[i64]) -> Rows {
    let url = format!(
        "{}/v1/namespaces/{NAMESPACE}/tables/{TOPIC}",
        broker.http_url()
    );
    let landed = eventually(
        Duration::from_secs(60),
        "floe.offsets to reach the log end",
        || {
            let url = url.clone();
            async move {
                let offsets = tokio::task::spawn_blocking(move || table_offsets(&url))
                    .await
                    .unwrap()?;
                ends.iter()
                    .enumerate()
                    .all(|(p, e)| offsets.get(&(p as i32)).unwrap_or(&0) >= e)
                    .then_some(offsets)
            }
        },
    )
    .await;
    for (p, e) in ends.iter().enumerate() {
        assert_eq!(
            landed.get(&(p as i32)).copied().unwrap_or(0),
            *e,
            "floe.offsets of partition {p} is past the log end"
        );
    }

    // Nothing is produced now and everything is landed, so no round is writing: every
    // file in the table's folder must be in the snapshot.
    let http = broker.http_url();
    let table = tokio::task::spawn_blocking(move || read_with_pyiceberg(&http))
        .await
        .unwrap();
    let mut rows = Rows::new();
    for r in table["rows"].as_array().expect("rows") {
        let (p, o) = (
            r["partition"].as_i64().unwrap() as i32,
            r["offset"].as_i64().unwrap(),
        );
        let v = r["value"].as_str().unwrap().to_owned();
        assert!(
            rows.insert((p, o), v).is_none(),
            "partition {p} offset {o} is in the table twice"
        );
    }
    for (p, end) in ends.iter().enumerate() {
        let p = p as i32;
        let mut offsets: Vec<i64> = rows.keys().filter(|k| k.0 == p).map(|k| k.1).collect();
        offsets.sort_unstable();
        let first_gap = offsets
            .iter()
            .zip(0..)
            .find(|(o, i)| **o != *i)
            .map(|(o, i)| format!("offset {i} missing, the next row has {o}"));
        assert!(
            offsets.len() as i64 == *end && first_gap.is_none(),
            "partition {p}: {} rows for offsets 0..{end}; {}",
            offsets.len(),
            first_gap.unwrap_or_default()
        );
    }
    let mut values = HashSet::new();
    for v in rows.values() {
        assert!(values.insert(v), "value {v} is in the table twice");
    }
    for (v, p, o) in acks {
        assert_eq!(
            rows.get(&(*p, *o)),
            Some(v),
            "acknowledged record {v} at partition {p} offset {o}"
        );
    }

    let referenced: HashSet<PathBuf> = table["data_files"]
        .as_array()
        .expect("data_files")
        .iter()
        .map(|f| uri_path(f.as_str().unwrap()))
        .collect();
    let on_disk = files_under(&table_data_dir(data));
    let orphans: Vec<_> = on_disk.difference(&referenced).collect();
    assert!(
        orphans.is_empty(),
        "data files on disk that the table does not reference: {orphans:?}"
    );
    let missing: Vec<_> = referenced.difference(&on_disk).collect();
    assert!(
        missing.is_empty(),
        "referenced data files missing: {missing:?}"
    );
    rows
}

/// `floe.offsets` of the current snapshot, through the REST catalog (None until the
/// table and a snapshot exist, or while the broker does not answer).
fn table_offsets(url: &str) -> Option<BTreeMap<i32, i64>> {
    let (status, body) = http_get(url).ok()?;
    if status != 200 {
        return None;
    }
    let answer: serde_json::Value = serde_json::from_str(&body).ok()?;
    let metadata = &answer["metadata"];
    let current = metadata["current-snapshot-id"].as_i64()?;
    let snapshot = metadata["snapshots"]
        .as_array()?
        .iter()
        .find(|s| s["snapshot-id"].as_i64() == Some(current))?;
    let raw = snapshot["summary"][floe_lake::table::OFFSETS_PROPERTY].as_str()?;
    let offsets: BTreeMap<String, i64> = serde_json::from_str(raw).ok()?;
    offsets
        .into_iter()
        .map(|(p, o)| Some((p.parse().ok()?, o)))
        .collect()
}

fn read_with_pyiceberg(http: &str) -> serde_json::Value {
    let args = vec![http.to_string(), NAMESPACE.to_string(), TOPIC.to_string()];
    floe_tests::python_json_blocking("python/read_table.py", args)
}

/// The lake settings `floe serve --data-dir <data>` uses by default.
fn lake_options(data: &Path) -> LakeOptions {
    LakeOptions {
        catalog: CatalogKind::Sql {
            uri: format!("sqlite://{}?mode=rw", data.join("catalog.db").display()),
        },
        warehouse: format!("file:{}", data.join("warehouse").display()),
        namespace: NAMESPACE.into(),
        storage: HashMap::new(),
        compression: "zstd".into(),
        target_file_size: 128 << 20,
        write_threads: 1,
    }
}

/// The table's data folder (`<warehouse>/<namespace>/<topic>/data`).
fn table_data_dir(data: &Path) -> PathBuf {
    data.join("warehouse")
        .join(NAMESPACE)
        .join(TOPIC)
        .join("data")
}

/// What a kill left in the table's folders, read while the broker is down.
#[derive(Debug, Default)]
struct Leftovers {
    /// Data files no snapshot references: a round killed between starting its Parquet
    /// files and its catalog commit.
    data: Vec<PathBuf>,
    /// Of those, files without the Parquet footer: killed mid-write.
    truncated: usize,
    /// Manifests, manifest lists or a metadata file newer than the catalog's that earlier
    /// kills did not leave: killed during the commit, before the catalog row moved.
    /// (Clean-up only deletes data files, so a killed commit's metadata files stay.)
    commit: usize,
}

impl Leftovers {
    /// Where the kill landed, as far as the files tell.
    fn moment(&self) -> &'static str {
        if self.truncated > 0 {
            "mid Parquet write"
        } else if self.commit > 0 {
            "during the commit"
        } else if !self.data.is_empty() {
            "between write and commit"
        } else {
            "outside a round's write and commit"
        }
    }
}

/// While the broker is down: what the kill left behind, judged against the table as
/// the SQLite catalog has it (opened directly; nobody else uses it now). `seen` holds
/// the metadata leftovers of earlier kills.
async fn leftovers(data: &Path, seen: &mut HashSet<PathBuf>) -> Leftovers {
    if !data.join("catalog.db").exists() {
        return Leftovers::default();
    }
    let catalog = floe_lake::open_catalog(&lake_options(data))
        .await
        .expect("open the SQLite catalog");
    let ident = TableIdent::from_strs([NAMESPACE, TOPIC]).unwrap();
    if !catalog.table_exists(&ident).await.unwrap() {
        return Leftovers::default();
    }
    let table = catalog.load_table(&ident).await.unwrap();
    let referenced: HashSet<PathBuf> = floe_lake::table::referenced_files(&table)
        .await
        .unwrap()
        .iter()
        .map(|f| uri_path(f))
        .collect();
    let mut out = Leftovers {
        data: files_under(&table_data_dir(data))
            .difference(&referenced)
            .cloned()
            .collect(),
        ..Leftovers::default()
    };
    out.data.sort();
    out.truncated = out
        .data
        .iter()
        .filter(|f| !std::fs::read(f).unwrap().ends_with(b"PAR1"))
        .count();

    let mut manifests = HashSet::new();
    for snapshot in table.metadata().snapshots() {
        manifests.insert(uri_path(snapshot.manifest_list()));
        let list = table.manifest_list_reader(snapshot).load().await.unwrap();
        manifests.extend(list.entries().iter().map(|m| uri_path(&m.manifest_path)));
    }
    let version = |p: &Path| -> Option<u64> {
        let name = p.file_name()?.to_str()?;
        name.strip_suffix(".metadata.json")?
            .split('-')
            .next()?
            .parse()
            .ok()
    };
    let current = version(&uri_path(table.metadata_location().unwrap()));
    let metadata_dir = table_data_dir(data).with_file_name("metadata");
    let unpublished: Vec<PathBuf> = files_under(&metadata_dir)
        .into_iter()
        .filter(|f| match version(f) {
            Some(v) => Some(v) > current,
            None => f.extension().is_some_and(|e| e == "avro") && !manifests.contains(f),
        })
        .collect();
    out.commit = unpublished.iter().filter(|f| !seen.contains(*f)).count();
    seen.extend(unpublished);
    out
}

/// Next to a data file already there, a copy and a truncated copy under names a killed
/// round could have used. Returns their paths (none before the first data file).
fn plant_orphans(data: &Path, cycle: usize) -> Vec<PathBuf> {
    let Some(model) = files_under(&table_data_dir(data)).into_iter().next() else {
        return Vec::new();
    };
    let bytes = std::fs::read(&model).unwrap();
    let folder = model.parent().unwrap();
    let whole = folder.join(format!("floe-planted-{cycle}-00000.parquet"));
    let cut = folder.join(format!("floe-planted-{cycle}-00001.parquet"));
    std::fs::write(&whole, &bytes).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    vec![whole, cut]
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> HashSet<PathBuf> {
    let mut out = HashSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.insert(path);
            }
        }
    }
    out
}

/// `file:/a/b`, `file:///a/b` -> `/a/b`.
fn uri_path(uri: &str) -> PathBuf {
    let rest = uri.strip_prefix("file:").unwrap_or(uri);
    PathBuf::from(format!("/{}", rest.trim_start_matches('/')))
}
