//! Writes a small synthetic results tree (one suite, 4 tasks, 4 methods × 3 seeds, plus a run
//! still in progress) and renders it.
//!
//! ```sh
//! cargo run -p report --example synthetic_report -- /tmp/report-example
//! # → /tmp/report-example/results/…, /tmp/report-example/report.html, /tmp/report-example/report.md
//! #   and the forest plots of the paired differences beside it (forest-synthetic-4-*.svg)
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

const TASKS: [&str; 4] = ["map-a", "add-a", "rev-a", "sort-a"];
const STEPS_PER_STAGE: u64 = 50;

/// A tiny deterministic generator (SplitMix64), so the example needs no `rand`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn write_json(path: &Path, v: &Value) -> std::io::Result<()> {
    fs::create_dir_all(path.parent().expect("a parent"))?;
    fs::write(path, serde_json::to_string_pretty(v).expect("serialises"))
}

/// Per-stage retention of earlier tasks and the replay budget of each method.
fn method_params(method: &str) -> (f64, Option<u64>) {
    match method {
        "sequential" => (0.62, None),
        "fixed-replay" => (0.80, Some(400)),
        "mssr" => (0.90, Some(400)),
        _ => (0.70, None), // xsam
    }
}

fn write_run(root: &Path, method: &str, seed: u64, complete: bool) -> std::io::Result<()> {
    let mut rng = Rng(seed * 7919 + method.len() as u64 * 104_729);
    let (retention, budget) = method_params(method);
    let dir = root
        .join("results/synthetic-4")
        .join(method)
        .join(seed.to_string());
    let t = TASKS.len();

    // Accuracy matrix: low before training, high right after the own stage, then decaying.
    let before: Vec<f64> = (0..t).map(|_| 0.1 + 0.15 * rng.next()).collect();
    let peak: Vec<f64> = (0..t).map(|_| 0.78 + 0.15 * rng.next()).collect();
    let mut rows = vec![before.clone()];
    for j in 1..=t {
        rows.push(
            (0..t)
                .map(|i| {
                    let v = if i + 1 == j {
                        peak[i]
                    } else if i + 1 < j {
                        let kept = retention.powi((j - i - 1) as i32) + 0.04 * (rng.next() - 0.5);
                        before[i] + (peak[i] - before[i]) * kept.min(1.0)
                    } else {
                        before[i] + 0.05 * rng.next() // a little forward transfer
                    };
                    (v * 1000.0).round() / 1000.0
                })
                .collect::<Vec<f64>>(),
        );
    }
    let probe_rows: Vec<Vec<f64>> = (0..=t)
        .map(|j| vec![0.45 - 0.01 * j as f64 * (1.0 - retention) * 3.0])
        .collect();

    // Log.
    let mut log: Vec<String> = Vec::new();
    let mut replayed = 0u64;
    let mut intervals = [4.0f64; 4];
    let mut next_due = [0u64; 4];
    for stage in 1..=t {
        let task = stage - 1;
        for s in 0..STEPS_PER_STAGE {
            let step = (stage as u64 - 1) * STEPS_PER_STAGE + s + 1;
            let loss = 2.5 * (-(s as f64) / 15.0).exp() + 0.3 + 0.1 * rng.next();
            log.push(
                json!({"type": "step", "task": task, "step": step, "lr": 1e-4, "loss": loss, "sft": loss,
                            "kl": null, "ntp": null, "grad_norm": 1.0, "replayed": 0, "tokens": 512})
                .to_string(),
            );
            if method == "fixed-replay" && task > 0 && step.is_multiple_of(5) {
                let src = (rng.next() * task as f64) as usize;
                replayed += 4;
                log.push(
                    json!({"type": "replay", "step": step, "task": src, "n": 4,
                                "reason": {"kind": "interval", "every": 5}})
                    .to_string(),
                );
            }
            if method == "mssr" {
                for src in 0..task {
                    if step >= next_due[src] {
                        let strength = 0.55 + 0.4 * rng.next();
                        replayed += 4;
                        log.push(
                            json!({"type": "replay", "step": step, "task": src, "n": 4,
                            "reason": {"kind": "due", "task": src, "interval": intervals[src],
                                       "due_step": next_due[src], "mean_strength": strength}})
                            .to_string(),
                        );
                        intervals[src] = if strength > 0.7 {
                            intervals[src] * 1.6
                        } else {
                            (intervals[src] * 0.8).max(2.0)
                        };
                        next_due[src] = step + intervals[src].round() as u64;
                        log.push(
                            json!({"type": "interval", "step": step, "task": src,
                                        "interval": intervals[src], "mean_strength": strength})
                            .to_string(),
                        );
                    }
                }
            }
            if method == "xsam" && step.is_multiple_of(10) {
                let alpha = 0.5 + 0.35 * (step as f64 / 40.0).sin() + 0.05 * rng.next();
                log.push(
                    json!({"type": "sharpness", "step": step, "loss": loss, "grad_norm": 1.0,
                                "psi": 0.01, "alpha": alpha})
                    .to_string(),
                );
            }
        }
        let step = stage as u64 * STEPS_PER_STAGE;
        log.push(
            json!({"type": "stage", "stage": stage, "task": task, "step": step, "seconds": 3.0})
                .to_string(),
        );
        if method == "mssr" {
            next_due[task] = step + 4;
            let values: Vec<f64> = (0..16 * stage)
                .map(|k| {
                    let age = (stage - 1 - k / 16) as f64; // stages since the sample's task was learned
                    (0.95 - 0.12 * age - 0.35 * rng.next()).clamp(0.0, 1.0)
                })
                .collect();
            log.push(
                json!({"type": "strengths", "step": step, "stage": stage, "values": values})
                    .to_string(),
            );
        }
        if method == "mssr" || method == "xsam" {
            // A 1-D loss-landscape slice: a bowl that sharpens stage by stage (less under XSAM).
            let curv = if method == "xsam" { 0.6 } else { 1.0 } * (1.0 + 0.5 * stage as f64);
            let a: Vec<f64> = (0..21).map(|k| -1.0 + 0.1 * k as f64).collect();
            let losses: Vec<Vec<f64>> = a
                .iter()
                .map(|x| vec![0.4 + 0.05 * stage as f64 + curv * x * x + 0.02 * rng.next()])
                .collect();
            log.push(
                json!({"type": "landscape", "stage": stage, "step": step, "a": a, "b": [0.0],
                       "losses": losses, "seed": 0, "records": 16})
                .to_string(),
            );
        }
    }

    let date = format!("2025-06-{:02}T10:00:00Z", 10 + seed);
    let scheduler = match method {
        "fixed-replay" => "fixed_interval",
        "mssr" => "mssr",
        _ => "none",
    };
    write_json(
        &dir.join("run.json"),
        &json!({"suite": "synthetic-4", "method": method, "seed": seed,
                "status": if complete { "complete" } else { "running" },
                "method_config": {"name": method, "replay": {"scheduler": {"kind": scheduler}}},
                "suite_spec": {"name": "synthetic-4"},
                "model": "tiny-random", "device": "cpu", "replay_budget": budget,
                "provenance": {"git_rev": "7727e38c0ffee", "git_dirty": false, "crate_version": "0.1.0",
                               "rustc": "1.95.0", "burn": "0.22.1", "date": date},
                "tasks": TASKS, "probes": ["arc-challenge-probe"]}),
    )?;
    if !complete {
        return Ok(());
    }
    write_json(
        &dir.join("matrix.json"),
        &json!({"tasks": TASKS, "probes": ["arc-challenge-probe"], "rows": rows, "probe_rows": probe_rows}),
    )?;
    let a = |j: usize, i: usize| rows[j][i];
    let aa = rows[t].iter().sum::<f64>() / t as f64;
    let bwt = (0..t - 1).map(|i| a(t, i) - a(i + 1, i)).sum::<f64>() / (t - 1) as f64;
    let forgetting = (0..t - 1)
        .map(|i| {
            (i + 1..t)
                .map(|l| a(l, i))
                .fold(f64::NEG_INFINITY, f64::max)
                - a(t, i)
        })
        .sum::<f64>()
        / (t - 1) as f64;
    let fwt = (1..t).map(|i| a(i, i) - a(0, i)).sum::<f64>() / (t - 1) as f64;
    let gf = probe_rows[0][0] - probe_rows[t][0];
    let steps = STEPS_PER_STAGE * t as u64;
    let train = 12.0 + replayed as f64 * 0.01 + rng.next();
    write_json(
        &dir.join("metrics.json"),
        &json!({"aa": aa, "bwt": bwt, "forgetting": forgetting, "fwt": fwt, "ans": 0.8, "general_forgetting": gf,
                "cost": {"optimizer_steps": steps, "forward_passes": steps * 2, "backward_passes": steps,
                         "tokens": steps * 512 + replayed * 128, "replayed_samples": replayed, "probe_forwards": 0,
                         "strategy_eval_examples": 0, "eval_examples": 320, "wall_seconds": train + 4.0,
                         "train_seconds": train, "eval_seconds": 4.0},
                "replay_budget": budget}),
    )?;
    fs::write(dir.join("log.jsonl"), log.join("\n") + "\n")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out: PathBuf = std::env::args_os().nth(1).map_or_else(
        || std::env::temp_dir().join("report-example"),
        PathBuf::from,
    );
    let results = out.join("results");
    if results.exists() {
        fs::remove_dir_all(&results)?;
    }
    for method in ["sequential", "fixed-replay", "mssr", "xsam"] {
        for seed in 0..3 {
            write_run(&out, method, seed, true)?;
        }
    }
    write_run(&out, "mssr", 3, false)?;

    let cfg = report::ReportConfig {
        title: "Synthetic continual-learning results".into(),
        ..Default::default()
    };
    let (html, md) = (out.join("report.html"), out.join("report.md"));
    let summary = report::write_report(&results, &html, &md, &cfg)?;
    println!(
        "{} runs of {} methods ({} skipped) → {} and {}",
        summary.runs,
        summary.methods,
        summary.skipped,
        html.display(),
        md.display()
    );
    Ok(())
}
