//! The time-boxed fuzz run of the test suite: the request and record-batch decoders of
//! the Kafka port, the `POST /v1/sql` body and Flight SQL ticket parsing, and the REST
//! catalog's namespace paths, fed mutations of `fuzz/corpus` and `fuzz/regressions` on
//! stable Rust (`floe_tests::fuzz`). It runs in a process of its own whose address space
//! is capped at 3 GiB above its size at start, as libFuzzer's `-malloc_limit_mb` does: a
//! decoder that allocates from an announced size aborts that process, and the test fails
//! with its output. `FLOE_FUZZ_SECONDS` sets the whole run's length (120 s by default),
//! `FLOE_FUZZ_SEED` its seed (printed; by default the time).

use std::path::PathBuf;
use std::time::Duration;

use floe_tests::fuzz::{files, run, Target};

const TARGETS: &[(Target, u32)] = &[
    (
        Target {
            name: "decode_request",
            run: floe_kafka::fuzz::request,
        },
        35,
    ),
    (
        Target {
            name: "decode_records",
            run: floe_kafka::fuzz::records,
        },
        35,
    ),
    (
        Target {
            name: "sql_request",
            run: floe_server::fuzz::sql_request,
        },
        15,
    ),
    (
        Target {
            name: "rest_path",
            run: floe_server::fuzz::rest_path,
        },
        15,
    ),
];

fn fuzz_dir() -> PathBuf {
    floe_tests::package_path("../fuzz")
}

/// The run itself, in the process `decoders_and_parsers_survive_a_time_boxed_fuzz_run`
/// starts (it does nothing when started otherwise).
#[test]
#[ignore = "run in a process of its own by decoders_and_parsers_survive_a_time_boxed_fuzz_run"]
fn fuzz_child() {
    let Ok(seconds) = std::env::var("FLOE_FUZZ_CHILD") else {
        return;
    };
    let total = Duration::from_secs(seconds.parse().unwrap_or(120));
    let seed = std::env::var("FLOE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| floe_common::now_ms() as u64);
    cap_address_space(3 << 30);
    // Caught panics are the decoders' business (their guards turn them into errors).
    std::panic::set_hook(Box::new(|_| {}));
    let found = std::env::temp_dir().join("floe-fuzz-findings");
    let weights: u32 = TARGETS.iter().map(|(_, w)| w).sum();
    for (target, weight) in TARGETS {
        let mut corpus = files(&fuzz_dir().join("corpus").join(target.name));
        corpus.extend(files(&fuzz_dir().join("regressions").join(target.name)));
        let budget = total * *weight / weights;
        let stats = run(target, &corpus, budget, seed, &found);
        println!(
            "fuzz {}: {} inputs in {budget:?} from {} seeds (seed {seed})",
            target.name,
            stats.executions,
            corpus.len()
        );
    }
}

/// Caps this process's address space at `extra` bytes above what it uses now, so that an
/// allocation sized by an input fails (and aborts) here instead of succeeding on a large
/// machine.
fn cap_address_space(extra: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let vm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmSize");
    let cap = vm_kib * 1024 + extra;
    let current = getrlimit(Resource::As);
    let cap = current.maximum.map_or(cap, |max| max.min(cap));
    setrlimit(
        Resource::As,
        Rlimit {
            current: Some(cap),
            maximum: current.maximum,
        },
    )
    .expect("cap the address space");
}

#[test]
fn decoders_and_parsers_survive_a_time_boxed_fuzz_run() {
    let seconds = std::env::var("FLOE_FUZZ_SECONDS").unwrap_or_else(|_| "120".into());
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--ignored",
            "--exact",
            "fuzz::fuzz_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("FLOE_FUZZ_CHILD", &seconds)
        .output()
        .expect("run the fuzz process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the fuzz run failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for (target, _) in TARGETS {
        assert!(
            stdout.contains(&format!("fuzz {}:", target.name)),
            "{} did not run:\n{stdout}",
            target.name
        );
    }
    println!("{stdout}");
}
