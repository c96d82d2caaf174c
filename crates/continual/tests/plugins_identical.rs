//! KL, corpus next-token prediction and WiSE-FT became method plugins (issue 20); their runs
//! must stay bit-identical to the engine that had them as branches. The fixture
//! `tests/fixtures/plugins_identical.json` was recorded with that engine (commit 9aee995) by
//! `CONTINUAL_RECORD=1 cargo test -p continual --test plugins_identical`: every step's loss
//! terms and gradient norm, and the accuracy matrix, of each case below.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{config, config_for, root, smoke_spec};
use continual::MethodConfig;
use serde_json::{Value, json};

/// A run's numbers: per step `[loss, sft, kl, ntp, grad_norm]` as written in `log.jsonl` (the
/// text itself: serde_json's float parsing may be one ulp off, the shortest representation the
/// engine writes is exact), the matrix rows and the probe rows.
fn numbers(run: &Path) -> Value {
    let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    let steps: Vec<Value> = log
        .lines()
        .filter(|l| l.contains("\"type\":\"step\""))
        .map(|l| {
            ["loss", "sft", "kl", "ntp", "grad_norm"]
                .iter()
                .map(|k| Value::String(raw_field(l, k)))
                .collect()
        })
        .collect();
    let matrix: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("matrix.json")).unwrap()).unwrap();
    json!({"steps": steps, "rows": matrix["rows"], "probe_rows": matrix["probe_rows"]})
}

/// The text of field `key`'s value in a flat JSON line.
fn raw_field(line: &str, key: &str) -> String {
    let tag = format!("\"{key}\":");
    let start = line
        .find(&tag)
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + tag.len();
    let rest = &line[start..];
    rest[..rest.find([',', '}']).unwrap()].to_string()
}

fn inline_method(text: &str) -> MethodConfig {
    MethodConfig::from_toml_str(text, Path::new("inline.toml")).unwrap()
}

/// Every case: its name and the numbers of a fresh run.
fn run_cases() -> BTreeMap<String, Value> {
    let tmp = tempfile::tempdir().unwrap();
    let mut out = BTreeMap::new();
    let mut go = |name: &str, mut cfg: continual::engine::RunConfig| {
        cfg.out_dir = tmp.path().join(name);
        cfg.index_path = None;
        continual::engine::run(&cfg, &mut []).unwrap();
        out.insert(name.to_string(), numbers(&cfg.out_dir));
    };
    let dir = tmp.path().to_path_buf();
    // Three epochs per task instead of twelve: the same code paths in a quarter of the time.
    let short = "epochs = 3";
    for method in ["sequential", "kl", "wise-ft", "mssr-kl", "xsam"] {
        go(method, config(method, &dir, short));
    }
    // The smoke suite trains every weight; with LoRA the KL reference is the adapters-off model.
    go("kl-lora", config("kl", &dir, "epochs = 3\nmode = \"lora\""));
    let mut corpus = config("kl-corpus", &dir, short);
    corpus.corpus = (0..6)
        .map(|i| format!("Open text passage number {i} about rivers, bread and counting."))
        .collect();
    go("kl-corpus", corpus);
    let stage_start = inline_method(
        "[objective]\nkl_weight = 0.05\nkl_reference = \"stage_start\"\n[wise_ft]\nalpha = 0.7\n",
    );
    go(
        "kl-stage-start-wise",
        config_for(stage_start, &dir, smoke_spec(short)),
    );
    out
}

/// The path of the first leaf where `a` and `b` differ, with both values.
fn first_difference(a: &Value, b: &Value, path: String) -> Option<String> {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, format!("{path}[{i}]"))),
        (Value::Object(x), Value::Object(y)) if x.len() == y.len() => x
            .iter()
            .find_map(|(k, p)| first_difference(p, y.get(k)?, format!("{path}.{k}"))),
        _ => (a != b).then(|| format!("{path}: {a:?} vs recorded {b:?}")),
    }
}

#[test]
fn kl_corpus_and_wise_ft_as_plugins_repeat_the_recorded_runs_bit_for_bit() {
    let fixture = root().join("crates/continual/tests/fixtures/plugins_identical.json");
    let fresh = run_cases();
    if std::env::var_os("CONTINUAL_RECORD").is_some() {
        std::fs::create_dir_all(fixture.parent().unwrap()).unwrap();
        std::fs::write(&fixture, serde_json::to_string_pretty(&fresh).unwrap()).unwrap();
        return;
    }
    let recorded: BTreeMap<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(&fixture).unwrap()).unwrap();
    assert_eq!(
        recorded.keys().collect::<Vec<_>>(),
        fresh.keys().collect::<Vec<_>>()
    );
    for (name, want) in &recorded {
        let got = &fresh[name];
        assert!(
            want["steps"].as_array().is_some_and(|s| !s.is_empty()),
            "{name}: no steps"
        );
        if let Some(at) = first_difference(got, want, String::new()) {
            panic!("{name} differs from the recorded run at {at}");
        }
    }
}
