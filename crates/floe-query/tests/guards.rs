//! What a query may take from the process: functions whose output size comes from an
//! argument are refused before they allocate, window aggregates that repeat their input
//! are stopped, all queries share one memory pool, only `max_concurrent` run at once,
//! and query threads run at the lowest CPU priority. No topics are needed: every case
//! here is SQL over generated values.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use floe_query::arrow::array::AsArray;
use floe_query::arrow::datatypes::Int64Type;
use floe_query::{
    GroupOffset, PartitionInfo, QueryConfig, QueryEngine, QueryLimits, TopicView, Topics,
};

struct NoTopics;

#[async_trait]
impl Topics for NoTopics {
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
    async fn view(&self, topic: &str) -> Result<TopicView, floe_query::TopicError> {
        Err(floe_query::TopicError::Unknown(topic.to_owned()))
    }
    async fn table(&self, topic: &str) -> Result<iceberg::table::Table, floe_query::TopicError> {
        Err(floe_query::TopicError::Unknown(topic.to_owned()))
    }
    async fn partitions(&self) -> Vec<PartitionInfo> {
        Vec::new()
    }
    async fn group_offsets(&self) -> Vec<GroupOffset> {
        Vec::new()
    }
}

fn engine(limits: QueryLimits) -> QueryEngine {
    QueryEngine::new(
        QueryConfig {
            limits,
            ..QueryConfig::default()
        },
        Arc::new(NoTopics),
    )
    .expect("engine")
}

/// The statements that made the broker allocate without bound, and their kin.
const BOMBS: &[&str] = &[
    "SELECT range(10000000000000)",
    "SELECT generate_series(1, 10000000000)",
    "SELECT range(TIMESTAMP '1970-01-01T00:00:00', TIMESTAMP '2100-01-01T00:00:00', INTERVAL '1' SECOND)",
    "SELECT array_repeat(0, 10000000000000)",
    "SELECT array_repeat(repeat('x', 1000), 10000000)",
    "SELECT array_resize([1], 10000000000)",
    "SELECT repeat('x', 10000000000)",
    "SELECT lpad('', 2000000000)",
    "SELECT rpad('x', 2000000000, 'yz')",
    "SELECT replace(repeat('x', 1000000), '', repeat('y', 1000))",
    "SELECT regexp_replace(repeat('x', 100000), '', repeat('y', 10000), 'g')",
    "SELECT array_to_string(range(1000000), repeat('-', 1000))",
    "SELECT string_to_array(repeat('x', 100000000), '')",
    "SELECT concat(s, s, s, s, s, s, s, s, s, s) FROM (SELECT repeat('x', 100000000) AS s)",
    "SELECT [s, s, s, s, s, s, s, s, s, s] FROM (SELECT repeat('x', 100000000) AS s)",
    "SELECT array_agg(value) OVER (ORDER BY value) FROM generate_series(1, 300000)",
    // Found in review: fill values, per-row elements, sub-unit steps, separators, replace.
    "SELECT array_resize(['a'], 100000, repeat('x', 1000000))",
    "SELECT range(to_timestamp_seconds(0), to_timestamp_seconds(100000), INTERVAL '1 microsecond')",
    "SELECT concat_ws(repeat('x', 20000000), '', '', '', '', '', '', '', '', '', '', '', '', '', '', '', '', '', '', '', '')",
    "SELECT array_replace_all(array_repeat('a', 1000), 'a', repeat('x', 2000000))",
    "SELECT array_repeat(CASE WHEN value = 1 THEN repeat('x', 16000000) ELSE 'y' END, CASE WHEN value = 1 THEN 10000 ELSE 1 END) FROM generate_series(1, 8192)",
    // Many calls in one statement share the limit instead of taking it each.
    "SELECT repeat('x', 20000000) a, repeat('x', 20000000) b, repeat('x', 20000000) c, repeat('x', 20000000) d, repeat('x', 20000000) e, repeat('x', 20000000) f, repeat('x', 20000000) g, repeat('x', 20000000) h, repeat('x', 20000000) i, repeat('x', 20000000) j, repeat('x', 20000000) k, repeat('x', 20000000) l, repeat('x', 20000000) m, repeat('x', 20000000) n",
    "SELECT string_agg(repeat('x', 100), ',') OVER (ORDER BY value) FROM generate_series(1, 100000)",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_functions_are_refused_before_they_allocate() {
    let e = engine(QueryLimits::default());
    for sql in BOMBS {
        let started = Instant::now();
        let err = e.collect(sql).await.expect_err(sql);
        let msg = err.to_string();
        assert!(msg.contains("max_function_output_bytes"), "{sql}: {msg}");
        assert!(err.is_user_error(), "{sql}: {msg}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{sql}: {:?}",
            started.elapsed()
        );
    }
    // A fixed-size type wide enough to fill memory with nulls is refused while planning.
    let err = e
        .collect(
            "SELECT arrow_cast(NULL, 'FixedSizeBinary(10000000)') FROM generate_series(1, 100000)",
        )
        .await
        .expect_err("wide cast");
    assert!(err.to_string().contains("bytes per row"), "{err}");
    // A recursive CTE could double a value on every round.
    let err = e
        .collect("WITH RECURSIVE r(s) AS (SELECT 'x' UNION ALL SELECT concat(s, s) FROM r) SELECT * FROM r")
        .await
        .expect_err("recursive CTE");
    assert!(err.is_user_error(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_functions_answer_ordinary_queries() {
    let e = engine(QueryLimits::default());
    let (_, b) = e
        .collect(
            "SELECT repeat('ab', 3), lpad('x', 3, '-'), rpad('x', 3), replace('aXbX', 'X', 'yy'), \
             regexp_replace('a1b2', '[0-9]', '#', 'g'), concat('a', 'b', 'c'), \
             array_to_string([1, 2, 3], '-'), cardinality(range(5)), \
             cardinality(generate_series(1, 10)), cardinality(array_repeat('z', 4)), \
             cardinality(array_resize([1], 3)), cardinality(string_to_array('a,b', ',')), \
             encode('ab', 'hex')",
        )
        .await
        .expect("ordinary calls");
    let row: Vec<String> = (0..b[0].num_columns())
        .map(|c| {
            floe_query::arrow::util::display::array_value_to_string(b[0].column(c), 0)
                .expect("cell")
        })
        .collect();
    assert_eq!(
        row,
        [
            "ababab", "--x", "x  ", "ayybyy", "a#b#", "abc", "1-2-3", "5", "10", "4", "3", "2",
            "6162"
        ]
    );
    // A running array over small partitions repeats each value a few dozen times: fine.
    // So is one array per group.
    let (_, b) = e
        .collect(
            "SELECT sum(cardinality(a)) FROM (SELECT array_agg(value) OVER \
             (PARTITION BY value % 1000 ORDER BY value) AS a FROM generate_series(1, 100000))",
        )
        .await
        .expect("running arrays per partition");
    assert_eq!(
        b[0].column(0)
            .as_primitive::<floe_query::arrow::datatypes::UInt64Type>()
            .value(0),
        5_050_000
    );
    let (_, b) = e
        .collect("SELECT cardinality(array_agg(value)) FROM generate_series(1, 1000000)")
        .await
        .expect("one array");
    assert_eq!(
        b[0].column(0)
            .as_primitive::<floe_query::arrow::datatypes::UInt64Type>()
            .value(0),
        1_000_000
    );
    // Ordinary data comes in batches of 8192 rows, far below the limit however long the
    // column; a value larger than the limit may not grow further, until the limit is
    // raised.
    let small = engine(QueryLimits {
        max_function_output_bytes: 1 << 20,
        ..QueryLimits::default()
    });
    let (_, b) = small
        .collect("SELECT sum(length(concat(CAST(value AS VARCHAR), '!'))) FROM generate_series(1, 500000)")
        .await
        .expect("ordinary rows");
    assert_eq!(
        b[0].column(0).as_primitive::<Int64Type>().value(0),
        2_888_895 + 500_000
    );
    let big = "SELECT length(concat(s, '!')) FROM \
               (SELECT string_agg(CAST(value AS VARCHAR), '') AS s FROM generate_series(1, 500000))";
    let err = small.collect(big).await.expect_err("a 3 MB value grows");
    assert!(
        err.to_string().contains("max_function_output_bytes"),
        "{err}"
    );
    let larger = engine(QueryLimits {
        max_function_output_bytes: 16 << 20,
        ..QueryLimits::default()
    });
    let (_, b) = larger.collect(big).await.expect("within a raised limit");
    assert_eq!(
        b[0].column(0)
            .as_primitive::<floe_query::arrow::datatypes::Int32Type>()
            .value(0),
        2_888_896
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_are_bounded_and_queries_take_turns() {
    // Too long.
    let e = engine(QueryLimits {
        max_sql_bytes: 100,
        max_concurrent: 1,
        queue_wait: Duration::from_millis(300),
        ..QueryLimits::default()
    });
    let long = format!("SELECT 1 {}", " ".repeat(100));
    let err = e.collect(&long).await.expect_err("too long");
    assert!(err.to_string().contains("max_sql_bytes"), "{err}");
    assert!(err.is_user_error());

    // One turn: a second query waits, then is told the broker is busy.
    let holding = e
        .execute("SELECT value FROM generate_series(1, 100000000)")
        .await
        .expect("first query");
    let started = Instant::now();
    let err = e.collect("SELECT 1").await.expect_err("busy");
    assert!(matches!(err, floe_query::Error::Busy { .. }), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(!err.is_user_error());
    drop(holding);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match e.collect("SELECT 1").await {
            Ok(_) => break,
            Err(floe_query::Error::Busy { .. }) if Instant::now() < deadline => {}
            Err(other) => panic!("after the first query stopped: {other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_queries_draw_on_one_memory_pool() {
    let limits = QueryLimits {
        memory_limit: 40 << 20,
        ..QueryLimits::default()
    };
    let e = engine(limits);
    let sort = "SELECT value FROM generate_series(1, 2000000) ORDER BY value DESC";
    // Alone, a sort fits.
    e.collect(sort).await.expect("one sort alone");
    // One that has sorted holds its memory until its answer is read: a second one finds
    // the pool taken by the first, so the pool is the process's, not the query's.
    let first = e.execute(sort).await.expect("first sort");
    let deadline = Instant::now() + Duration::from_secs(30);
    while e.memory_reserved() < 16 << 20 {
        assert!(
            Instant::now() < deadline,
            "the first sort holds {} bytes",
            e.memory_reserved()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut failed = None;
    for _ in 0..3 {
        if let Err(err) = e.collect(sort).await {
            failed = Some(err);
            break;
        }
    }
    let err = failed.expect("a second sort beside the first exhausts the shared pool");
    assert!(err.to_string().contains("Resources exhausted"), "{err}");
    drop(first);
}

#[test]
fn query_threads_run_at_the_lowest_cpu_priority() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let e = rt.block_on(async { engine(QueryLimits::default()) });
    rt.block_on(async { e.collect("SELECT 1").await.expect("a query") });
    let mut seen = 0;
    for task in std::fs::read_dir("/proc/self/task").expect("tasks") {
        let dir = task.expect("task").path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !name.starts_with("floe-query") {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).expect("stat");
        // Field 19 (nice), counted after the parenthesised name.
        let after = &stat[stat.rfind(')').expect("name") + 2..];
        let nice: i32 = after
            .split(' ')
            .nth(16)
            .expect("nice")
            .parse()
            .expect("number");
        assert_eq!(nice, 19, "{name}");
        seen += 1;
    }
    assert!(seen > 0, "no floe-query thread found");
    drop(e);
}

/// Statements as long as `max_sql_bytes` allows, shaped to make the deepest plans: each
/// is answered or refused, and the process is still there (a stack overflow would abort
/// it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deepest_plans_a_statement_can_make_do_not_take_the_process_down() {
    let e = engine(QueryLimits::default());
    let max = QueryLimits::default().max_sql_bytes;
    let fill = |head: &str, each: &dyn Fn(usize) -> String, tail: &str| {
        let mut sql = head.to_owned();
        let mut i = 0;
        loop {
            let next = each(i);
            if sql.len() + next.len() + tail.len() > max {
                break;
            }
            sql.push_str(&next);
            i += 1;
        }
        sql.push_str(tail);
        sql
    };
    let unions = fill("SELECT 1 AS x", &|_| " UNION ALL SELECT 1".to_owned(), "");
    let ctes = fill(
        "WITH c0 AS (SELECT 1 AS x)",
        &|i| format!(", c{} AS (SELECT x + 1 AS x FROM c{i})", i + 1),
        " SELECT 1",
    );
    let joins = fill(
        "SELECT count(*) FROM generate_series(1, 1) t0",
        &|i| format!(" JOIN generate_series(1, 1) t{} ON true", i + 1),
        "",
    );
    let nested = fill("SELECT ", &|_| "(".to_owned(), "1");
    for (what, sql) in [
        ("unions", unions),
        ("ctes", ctes),
        ("joins", joins),
        ("nested", nested),
    ] {
        // Answered or refused with an error; either way within the deadline.
        let outcome = tokio::time::timeout(Duration::from_secs(120), e.collect(&sql)).await;
        assert!(
            outcome.is_ok(),
            "{what} ({} bytes) took over 120 s",
            sql.len()
        );
    }
    e.collect("SELECT 1").await.expect("still answering");
}
