//! Replays the fuzz regression corpus (`fuzz/regressions/<target>/`) and the seeds the fuzz
//! targets start from (this crate's `corpus/` and the backbone's small test fixtures) through
//! the same entry points as the cargo fuzz targets (`bad_inputs::fuzz_*`, re-exported from `fuzz-entry`), asserting that none
//! panics. Runs in the ordinary `cargo test`; no nightly toolchain or cargo fuzz needed.
//!
//! `mutation_run` (ignored) is a cheap stand-in for libFuzzer where none is installed: it
//! mutates the seeds at random (bit flips, byte overwrites, truncation, splices, boundary
//! integers) for `FUZZ_SECONDS` per target (default 10) and stops at the first panic, writing
//! the input to `fuzz/regressions/<target>/`.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, out);
        } else if std::fs::metadata(&p).is_ok_and(|m| m.len() <= 1 << 20) {
            out.push(p);
        }
    }
}

/// The inputs for one target, as the fuzz target sees them (selector byte included).
fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = repo_root();
    let mut files = Vec::new();
    files_under(&root.join("fuzz/regressions").join(target), &mut files);
    let mut corpus = Vec::new();
    files_under(&root.join("crates/bad-inputs/corpus"), &mut corpus);
    files_under(&root.join("crates/backbone/tests/fixtures"), &mut corpus);
    let mut out: Vec<(PathBuf, Vec<u8>)> = files
        .into_iter()
        .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
        .collect();
    for p in corpus {
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        match target {
            "fuzz_safetensors" if name.ends_with(".safetensors") => out.push((p, bytes)),
            "fuzz_gguf" if name.ends_with(".gguf") => out.push((p, bytes)),
            "fuzz_data_loaders"
                if name.ends_with(".json")
                    || name.ends_with(".jsonl")
                    || name.ends_with(".csv") =>
            {
                // Every loader sees every data file: the selector byte picks the loader.
                for sel in 0..9u8 {
                    let mut v = vec![sel];
                    v.extend_from_slice(&bytes);
                    out.push((p.clone(), v));
                }
            }
            "fuzz_config_json" if name == "config.json" => out.push((p, bytes)),
            "fuzz_adapter_config" if name == "adapter_config.json" => out.push((p, bytes)),
            "fuzz_method_toml" if name.ends_with(".toml") && name != "case.toml" => {
                out.push((p, bytes))
            }
            "fuzz_toml_configs" if name.ends_with(".toml") && name != "case.toml" => {
                for sel in 0..2u8 {
                    let mut v = vec![sel];
                    v.extend_from_slice(&bytes);
                    out.push((p.clone(), v));
                }
            }
            _ => {}
        }
    }
    out
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic)".into())
}

fn quiet<R>(f: impl FnOnce() -> R) -> R {
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let r = f();
    panic::set_hook(hook);
    r
}

#[test]
fn regressions_and_seeds_do_not_panic() {
    let mut failures = Vec::new();
    let mut total = 0;
    quiet(|| {
        for (target, entry) in bad_inputs::TARGETS {
            let inputs = seeds(target);
            assert!(!inputs.is_empty(), "{target}: no seeds found");
            for (path, bytes) in inputs {
                total += 1;
                if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| entry(&bytes))) {
                    failures.push(format!(
                        "{target} {}: panicked: {}",
                        path.display(),
                        panic_message(&*p)
                    ));
                }
            }
        }
    });
    assert!(
        failures.is_empty(),
        "{} of {total} inputs panicked:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = rng.next() as u8;
            }
            2 if len > 1 => v.truncate(rng.below(len)),
            3 => {
                let i = rng.below(len + 1);
                let bytes: &[u8] = match rng.below(8) {
                    0 => b"\"",
                    1 => b"\n",
                    2 => b",",
                    3 => b"{",
                    4 => b"[]",
                    5 => b"=",
                    6 => b"\xff\xff\xff\xff\xff\xff\xff\x7f",
                    _ => b"\x00\x00\x00\x00",
                };
                v.splice(i..i, bytes.iter().copied());
            }
            4 if len >= 8 => {
                // Overwrite a little-endian integer with a boundary value.
                let i = rng.below(len - 7);
                let val: u64 = match rng.below(5) {
                    0 => 0,
                    1 => u64::MAX,
                    2 => u32::MAX as u64,
                    3 => 1 << 40,
                    _ => rng.next() % 4096,
                };
                let w = [1usize, 2, 4, 8][rng.below(4)];
                v[i..i + w].copy_from_slice(&val.to_le_bytes()[..w]);
            }
            5 if !other.is_empty() && len > 0 => {
                let at = rng.below(len);
                let from = rng.below(other.len());
                let n = rng.below(other.len() - from).min(256);
                v.splice(at..at, other[from..from + n].iter().copied());
            }
            6 if len > 2 => {
                let a = rng.below(len);
                let b = a + rng.below((len - a).min(64));
                v.drain(a..b);
            }
            7 if len > 1 && len < 1 << 20 => {
                // Duplicate a chunk.
                let a = rng.below(len);
                let b = a + rng.below((len - a).min(64));
                let chunk = v[a..b].to_vec();
                v.splice(a..a, chunk);
            }
            _ => {}
        }
    }
    v
}

#[test]
#[ignore = "long: a random-mutation run over all fuzz targets (FUZZ_SECONDS per target)"]
fn mutation_run() {
    let secs: u64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let only = std::env::var("FUZZ_TARGET").ok();
    let mut rng = Rng(std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15));
    let mut found = Vec::new();
    quiet(|| {
        for (target, entry) in bad_inputs::TARGETS {
            if only.as_deref().is_some_and(|o| o != target) {
                continue;
            }
            // Seeds larger than 64 KiB are kept out of the mutation pool (too slow per run).
            let pool: Vec<Vec<u8>> = seeds(target)
                .into_iter()
                .map(|(_, b)| b)
                .filter(|b| b.len() <= 64 << 10)
                .collect();
            let start = Instant::now();
            let mut execs = 0u64;
            while start.elapsed() < Duration::from_secs(secs) {
                let a = &pool[rng.below(pool.len())];
                let b = &pool[rng.below(pool.len())];
                let input = mutate(&mut rng, a, b);
                execs += 1;
                if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| entry(&input))) {
                    let dir = repo_root().join("fuzz/regressions").join(target);
                    let _ = std::fs::create_dir_all(&dir);
                    let file = dir.join(format!("mutation-{execs}-{:016x}", rng.next()));
                    let _ = std::fs::write(&file, &input);
                    found.push(format!(
                        "{target}: {} -> {}",
                        panic_message(&*p),
                        file.display()
                    ));
                    break;
                }
            }
            let t = start.elapsed().as_secs_f64();
            println!(
                "{target}: {execs} execs in {t:.1} s ({:.0}/s), {} seeds",
                execs as f64 / t,
                pool.len()
            );
        }
    });
    assert!(found.is_empty(), "panics found:\n{}", found.join("\n"));
}
