//! The TensorBoard events of a run, read back by TensorBoard's own reader (the `tensorboard`
//! Python package's `EventAccumulator`), hold every scalar of `log.jsonl`: the tags, steps and
//! values worked out here from the log, also after the run was stopped and resumed (the events
//! file is rebuilt from the log, which a resume cuts back to its checkpoint).
//!
//! Without the Python package the test prints why and passes, unless
//! `CONTINUAL_REQUIRE_TENSORBOARD=1` (CI sets it after `pip install tensorboard`).
//! Its own test binary: it stops a run with the process-wide interrupt flag.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::config;
use continual::tensorboard::TensorBoard;
use continual::{EngineError, HookContext, Plugin, StepRecord};

const READ: &str = r#"
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
ea = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
ea.Reload()
print(json.dumps({t: [[e.step, e.value] for e in ea.Scalars(t)] for t in ea.Tags()["scalars"]}))
"#;

type Series = BTreeMap<String, Vec<(i64, f64)>>;

/// TensorBoard's reading of the events files in `dir`, or why it cannot read them.
fn read_back(dir: &Path) -> Result<Series, String> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&python)
        .args(["-c", READ])
        .arg(dir)
        .output()
        .map_err(|e| format!("{python}: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: BTreeMap<String, Vec<(i64, f64)>> = serde_json::from_slice(&out.stdout).unwrap();
    // The values are 32-bit floats; serde_json may parse Python's decimal of one a unit in
    // the last place off as f64, never as f32.
    Ok(v.into_iter()
        .map(|(t, s)| {
            (
                t,
                s.into_iter().map(|(i, x)| (i, x as f32 as f64)).collect(),
            )
        })
        .collect())
}

/// Whether python3 imports TensorBoard's reader, or why not.
fn reader_available() -> Result<(), String> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            "import tensorboard.backend.event_processing.event_accumulator",
        ])
        .output()
        .map_err(|e| format!("{python}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The scalars expected from the log, worked out from its events one by one.
fn expected(run: &Path, tasks: &[&str], probes: &[&str]) -> Series {
    let mut s = Series::new();
    let mut put = |tag: String, step: i64, x: f64| {
        // Stored as 32-bit floats.
        s.entry(tag).or_default().push((step, x as f32 as f64));
    };
    for line in std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
    {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        let step = e["step"].as_i64().unwrap_or(-1);
        match e["type"].as_str().unwrap() {
            "step" => {
                for k in [
                    "loss",
                    "sft",
                    "kl",
                    "ntp",
                    "lr",
                    "grad_norm",
                    "replayed",
                    "allowance",
                ] {
                    if let Some(x) = e[k].as_f64() {
                        put(format!("train/{k}"), step, x);
                    }
                }
            }
            "eval" => {
                let scores: Vec<f64> = e["scores"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect();
                for (t, x) in tasks.iter().zip(&scores) {
                    put(format!("eval/{t}"), step, *x);
                }
                for (p, x) in probes.iter().zip(e["probe_scores"].as_array().unwrap()) {
                    put(format!("probe/{p}"), step, x.as_f64().unwrap());
                }
                let stage = e["stage"].as_u64().unwrap() as usize;
                if stage > 0 {
                    put(
                        "eval/aa_so_far".into(),
                        step,
                        scores[..stage].iter().sum::<f64>() / stage as f64,
                    );
                }
            }
            "interval" => {
                let t = tasks[e["task"].as_u64().unwrap() as usize];
                for k in ["interval", "mean_strength", "relative_strength"] {
                    if let Some(x) = e[k].as_f64() {
                        put(format!("mssr/{k}/{t}"), step, x);
                    }
                }
            }
            "strengths" => {
                let v: Vec<f64> = e["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|x| x.as_f64())
                    .collect();
                put(
                    "mssr/strength/mean".into(),
                    step,
                    v.iter().sum::<f64>() / v.len() as f64,
                );
                put(
                    "mssr/strength/min".into(),
                    step,
                    v.iter().cloned().fold(f64::MAX, f64::min),
                );
                put(
                    "mssr/strength/max".into(),
                    step,
                    v.iter().cloned().fold(f64::MIN, f64::max),
                );
            }
            "sharpness_probe" => put(
                "measure/sharpness".into(),
                step,
                e["sharpness"].as_f64().unwrap(),
            ),
            _ => {}
        }
    }
    s
}

/// Asks for a stop after global step `at` (as a SIGTERM would).
struct StopAt(u64);

impl Plugin for StopAt {
    fn after_update(&mut self, ctx: &HookContext<'_>, _step: &StepRecord) {
        if ctx.step == self.0 {
            continual::interrupt::request();
        }
    }
}

#[test]
fn tensorboard_reads_back_every_scalar_of_the_log_also_after_a_resume() {
    if let Err(why) = reader_available() {
        let why = why.lines().last().unwrap_or("").to_string();
        assert!(
            std::env::var_os("CONTINUAL_REQUIRE_TENSORBOARD").is_none(),
            "CONTINUAL_REQUIRE_TENSORBOARD is set but TensorBoard's reader fails: {why}"
        );
        eprintln!(
            "skipped: python3 cannot import tensorboard ({why}); `pip install tensorboard` runs this test"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // MSSR logs intervals and strengths; the smoke suite measures sharpness after each stage.
    let set = "epochs = 2\ncheckpoint_every = 5\n";
    let out = dir.path().join("mssr");
    let mut cfg = config("mssr", &out, set);
    let tasks: Vec<String> = cfg.suite.tasks.iter().map(|t| t.name.clone()).collect();
    let probes: Vec<String> = cfg.suite.probes.iter().map(|t| t.name.clone()).collect();
    let mut stop = StopAt(27);
    let mut tb = TensorBoard::new(&out, tasks.clone(), probes.clone());
    match continual::run(&cfg, &mut [&mut stop, &mut tb]) {
        Err(EngineError::Interrupted { step: 27 }) => {}
        other => panic!(
            "expected a stop at step 27, got {:?}",
            other.map(|o| o.rows)
        ),
    }
    continual::interrupt::clear();
    let first = read_back(&out).unwrap();
    assert_eq!(
        first["train/loss"].len(),
        27,
        "27 steps written before the stop"
    );
    // The resumed process: a new plugin rebuilds the file from the log, cut back to the checkpoint of the stop.
    cfg.resume = true;
    let mut tb = TensorBoard::new(&out, tasks.clone(), probes.clone());
    continual::run(&cfg, &mut [&mut tb]).unwrap();
    assert_eq!(
        TensorBoard::event_files(&out).len(),
        1,
        "the stopped process's file is replaced"
    );
    let got = read_back(&out).unwrap();
    let names: Vec<&str> = tasks.iter().map(String::as_str).collect();
    let probe_names: Vec<&str> = probes.iter().map(String::as_str).collect();
    let want = expected(&out, &names, &probe_names);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    assert_eq!(got, want);
    // What the test covers: 64 steps, 5 evaluations, MSSR's intervals and strengths.
    assert_eq!(got["train/loss"].len(), 64);
    assert_eq!(got["eval/aa_so_far"].len(), 4);
    assert!(
        got.keys().any(|k| k.starts_with("mssr/interval/")),
        "{:?}",
        got.keys()
    );
    assert_eq!(got["mssr/strength/mean"].len(), 4);
}
