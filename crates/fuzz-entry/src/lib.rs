//! The fuzz entry points of the readers of untrusted files: `fuzz_*(data: &[u8])` feed arbitrary
//! bytes to one family of parsers and only promise not to panic (errors are the expected
//! outcome).
//!
//! Two callers share them: the cargo fuzz targets in `fuzz/fuzz_targets/` (coverage-guided,
//! `sh fuzz/run_all.sh`), and the ordinary `cargo test` through
//! `crates/bad-inputs/tests/fuzz_regressions.rs`, which replays `fuzz/regressions/<target>/` and
//! the corpus. Everything here is free of Burn (`formats`, `bench-tasks`), so the instrumented
//! build takes minutes. The method TOML reader (`continual::MethodConfig`) lives in a crate that
//! uses Burn; its entry point is `bad_inputs::fuzz_method_toml` (regression replay and the blind
//! mutation run only).
//!
//! ```
//! // Any bytes: no panic, whatever they hold.
//! for target in fuzz_entry::TARGETS {
//!     (target.1)(b"GGUF\x03\x00\x00\x00garbage");
//! }
//! ```
#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A scratch file in the system temporary directory, removed on drop; unique per call so
/// parallel tests and fuzz jobs do not collide.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    /// Writes `data` to `<fresh dir>/<name>` and returns the holder and the file's path.
    fn write(name: &str, data: &[u8]) -> Option<(Self, PathBuf)> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("fuzz-entry-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let path = dir.join(name);
        let scratch = Self { dir };
        std::fs::write(&path, data).ok()?;
        Some((scratch, path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Safetensors: the header is validated (naming the tensor at fault), then every tensor it
/// lists is converted to f32; the same bytes are also read as a shard index.
pub fn fuzz_safetensors(data: &[u8]) {
    if let Ok(st) = formats::safetensors::deserialize(data) {
        for (name, (dtype, shape)) in formats::safetensors::tensor_table(&st) {
            if let Ok(view) = st.tensor(&name) {
                let values = formats::safetensors::to_f32(dtype, view.data());
                let count: usize = shape.iter().product();
                if let Some(v) = values {
                    assert_eq!(v.len(), count, "tensor `{name}`: element count");
                }
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = formats::safetensors::shard_files(Path::new("model.safetensors.index.json"), text);
    }
}

/// GGUF: header and metadata, the model configuration and the tokenizer metadata they
/// describe, and every tensor of the directory dequantised.
pub fn fuzz_gguf(data: &[u8]) {
    let Ok(file) = formats::gguf::GgufFile::parse(Path::new("fuzz.gguf"), data.to_vec()) else {
        return;
    };
    let _ = formats::gguf::config_from_metadata(&file);
    let _ = file.tokenizer_metadata();
    for t in &file.tensors {
        if let Ok(h) = file.dequantize(&t.name) {
            assert_eq!(
                h.data.len(),
                h.shape.iter().product::<usize>(),
                "{}",
                t.name
            );
        }
    }
}

/// Hugging Face `config.json`: parsed into `HfConfig`, resolved into `ModelConfig`, and a
/// resolved configuration written back and read again must give itself.
pub fn fuzz_config_json(data: &[u8]) {
    use formats::config::ModelConfig;
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(cfg) = ModelConfig::from_hf_json(&value) {
        // A configuration this reader accepts must survive its own writer.
        let back = ModelConfig::from_hf_json(&cfg.to_hf_json());
        assert!(back.is_ok(), "{cfg:?} does not read back: {back:?}");
    }
}

/// PEFT `adapter_config.json`.
pub fn fuzz_adapter_config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = formats::peft::PeftConfig::from_json_str(text, Path::new("adapter_config.json"));
    }
}

/// The task-data loaders: the first byte picks the format (LLM-CL JSON, LLM-CL labels,
/// SuperNI JSON, GSM8K JSONL, ARC JSON, ARC JSONL, MMLU CSV, CommonsenseQA JSONL, corpus JSONL)
/// and the rest is written to a file of the name that loader expects.
pub fn fuzz_data_loaders(data: &[u8]) {
    use bench_tasks::loaders;
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 9 {
        0 => run_file("train.json", rest, |p| loaders::load_llm_cl(p).map(drop)),
        1 => run_file("labels.json", rest, |p| {
            loaders::load_llm_cl_labels(p.parent().unwrap_or(Path::new("."))).map(drop)
        }),
        2 => run_file("task001_fuzz.json", rest, |p| {
            loaders::load_superni(p).map(drop)
        }),
        3 => run_file("train.jsonl", rest, |p| loaders::load_gsm8k(p).map(drop)),
        4 => run_file("ARC-Easy-Train.json", rest, |p| {
            loaders::load_arc_json(p).map(drop)
        }),
        5 => run_file("ARC-Easy-Train.jsonl", rest, |p| {
            loaders::load_arc_jsonl(p).map(drop)
        }),
        6 => run_file("astronomy_test.csv", rest, |p| {
            loaders::load_mmlu_csv(p).map(drop)
        }),
        7 => run_file("train_rand_split.jsonl", rest, |p| {
            loaders::load_commonsenseqa(p).map(drop)
        }),
        _ => run_file("corpus.jsonl", rest, |p| loaders::load_corpus(p).map(drop)),
    }
}

fn run_file<E>(name: &str, data: &[u8], load: impl FnOnce(&Path) -> Result<(), E>) {
    if let Some((_scratch, path)) = Scratch::write(name, data) {
        let _ = load(&path);
    }
}

/// The Burn-free TOML configurations: an even first byte parses the rest as a suite TOML
/// (`bench_tasks::SuiteSpec`), an odd one as the data-fetch manifest
/// (`bench_tasks::fetch::Manifest`).
pub fn fuzz_toml_configs(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if selector % 2 == 0 {
        let _ = bench_tasks::SuiteSpec::from_toml_str(text, Path::new("fuzz-suite.toml"));
    } else {
        let _ = bench_tasks::fetch::Manifest::from_toml_str(text, Path::new("fetch-manifest.toml"));
    }
}

/// A fuzz entry point: takes any bytes, must not panic.
pub type FuzzEntry = fn(&[u8]);

/// The fuzz targets by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/regressions/<name>/`.
pub const TARGETS: [(&str, FuzzEntry); 6] = [
    ("fuzz_safetensors", fuzz_safetensors),
    ("fuzz_gguf", fuzz_gguf),
    ("fuzz_config_json", fuzz_config_json),
    ("fuzz_adapter_config", fuzz_adapter_config),
    ("fuzz_data_loaders", fuzz_data_loaders),
    ("fuzz_toml_configs", fuzz_toml_configs),
];
