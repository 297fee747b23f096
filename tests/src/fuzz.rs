//! A small mutation fuzzer on stable Rust, for the time-boxed fuzz run of the test suite
//! (`tests/tests/fuzz.rs`). It feeds the same target functions as the cargo-fuzz targets
//! in `fuzz/` (`floe_kafka::fuzz`, `floe_server::fuzz`), starting from the same seed
//! corpus and the checked-in regressions, with libFuzzer's simplest mutations: bit flips,
//! interesting bytes and integers, inserted, removed and repeated runs, and splices. It
//! has no coverage feedback; libFuzzer (`fuzz/README.md`) goes deeper when run by hand.

use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One fuzz target: a name (its corpus folder) and the function fed each input.
pub struct Target {
    /// Folder name under `fuzz/corpus` and `fuzz/regressions`.
    pub name: &'static str,
    /// Runs one input; must return (a panic or an abort is a finding).
    pub run: fn(&[u8]),
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// Inputs fed.
    pub executions: u64,
}

/// Every file of `dir` (none when it does not exist).
pub fn files(dir: &Path) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .collect();
    out.sort();
    out
}

const INTERESTING_8: &[u8] = &[0, 1, 0x7f, 0x80, 0xff, 0x10, 0x40];
const INTERESTING_32: &[i32] = &[
    0,
    1,
    -1,
    16,
    255,
    256,
    4096,
    65535,
    i32::MAX,
    i32::MIN,
    0x7fff,
    -0x8000,
];

/// `input` with one to four random mutations; `corpus` for splices.
pub fn mutate(rng: &mut StdRng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        if out.is_empty() {
            out.push(rng.random());
            continue;
        }
        let at = rng.random_range(0..out.len());
        match rng.random_range(0..8) {
            0 => out[at] ^= 1 << rng.random_range(0..8),
            1 => out[at] = INTERESTING_8[rng.random_range(0..INTERESTING_8.len())],
            2 if out.len() >= at + 4 => {
                let v = INTERESTING_32[rng.random_range(0..INTERESTING_32.len())];
                out[at..at + 4].copy_from_slice(&v.to_be_bytes());
            }
            3 => {
                let n = rng.random_range(1..=16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                out.splice(at..at, bytes);
            }
            4 => {
                let end = (at + rng.random_range(1..=16)).min(out.len());
                out.drain(at..end);
            }
            5 => {
                let end = (at + rng.random_range(1..=32)).min(out.len());
                let run = out[at..end].to_vec();
                for _ in 0..rng.random_range(1..=8) {
                    out.splice(at..at, run.iter().copied());
                }
            }
            6 if !corpus.is_empty() => {
                let other = &corpus[rng.random_range(0..corpus.len())];
                let from = rng.random_range(0..=other.len());
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
            _ => out[at] = rng.random(),
        }
        out.truncate(1 << 20);
    }
    out
}

/// Feeds `target` mutations of `corpus` for `budget`. A panic that escapes the target is
/// a finding: the input is written to `found` (created if needed) and the run panics
/// with its path, so that it can be checked in under `fuzz/regressions/`.
pub fn run(
    target: &Target,
    corpus: &[Vec<u8>],
    budget: Duration,
    seed: u64,
    found: &Path,
) -> Stats {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut stats = Stats::default();
    let mut pool: Vec<Vec<u8>> = corpus.to_vec();
    if pool.is_empty() {
        pool.push(Vec::new());
    }
    // The seeds and regressions as they are, then mutations until the budget is spent.
    let started = Instant::now();
    let mut next: Vec<Vec<u8>> = pool.clone();
    loop {
        let input = match next.pop() {
            Some(i) => i,
            None => {
                if started.elapsed() >= budget {
                    break;
                }
                let base = &pool[rng.random_range(0..pool.len())];
                mutate(&mut rng, base, &pool)
            }
        };
        stats.executions += 1;
        let outcome = std::panic::catch_unwind(|| (target.run)(&input));
        if outcome.is_err() {
            std::fs::create_dir_all(found).expect("findings folder");
            let path = found.join(format!("{}-{seed}-{}", target.name, stats.executions));
            std::fs::write(&path, &input).expect("write the finding");
            panic!(
                "{}: a panic escaped the target; input written to {} (seed {seed})",
                target.name,
                path.display()
            );
        }
        // Keep some mutants around to mutate further (a crude stand-in for coverage).
        if stats.executions.is_multiple_of(64) && pool.len() < 4096 {
            pool.push(input);
        }
    }
    stats
}
