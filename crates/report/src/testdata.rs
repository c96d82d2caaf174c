//! A small synthetic results tree for the tests: suite `smoke`, 3 tasks, 1 probe, methods `mssr`
//! and `seq` with seeds 0 and 1, plus a `seq/2` run that is still running.

use std::fs;
use std::path::Path;

use serde_json::{Value, json};

pub(crate) fn write_json(path: &Path, v: &Value) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

const TASKS: [&str; 3] = ["map-a", "add-a", "rev-a"];

struct Spec {
    method: &'static str,
    seed: u64,
    budget: Option<u64>,
    rows: [[f64; 3]; 4],
    /// aa, bwt, forgetting, fwt, general_forgetting
    metrics: (f64, f64, f64, f64, Option<f64>),
    replayed: u64,
    wall: f64,
    log: &'static [&'static str],
}

const MSSR_LOG: &[&str] = &[
    r#"{"type":"step","task":0,"step":1,"lr":0.001,"loss":2.0,"sft":2.0,"kl":null,"ntp":null,"grad_norm":1.0,"replayed":0,"tokens":64}"#,
    r#"{"type":"eval","stage":0,"step":0,"scores":[0.1,0.2,0.3],"probe_scores":[0.5],"seconds":0.1}"#,
    r#"{"type":"stage","stage":1,"task":0,"step":10,"seconds":1.0}"#,
    r#"{"type":"strengths","step":10,"stage":1,"values":[0.9,0.95,0.15,null]}"#,
    r#"{"type":"replay","step":12,"task":0,"n":4,"reason":{"kind":"due","task":0,"interval":4,"due_step":12,"mean_strength":0.7}}"#,
    r#"{"type":"interval","step":12,"task":0,"interval":4,"mean_strength":0.7}"#,
    r#"{"type":"replay","step":16,"task":0,"n":4,"reason":{"kind":"due","task":0,"interval":8,"due_step":14,"mean_strength":0.8}}"#,
    r#"{"type":"interval","step":16,"task":0,"interval":8,"mean_strength":0.8}"#,
    r#"{"type":"stage","stage":2,"task":1,"step":20,"seconds":1.0}"#,
    r#"{"type":"strengths","step":20,"stage":2,"values":[0.5,0.6,0.7]}"#,
    r#"{"type":"replay","step":25,"task":null,"n":2,"reason":{"kind":"interval","every":5}}"#,
    r#"{"type":"interval","step":25,"task":1,"interval":5,"mean_strength":0.6}"#,
    r#"{"type":"future_event","step":26,"anything":[1,2,3]}"#,
    r#"{"type":"stage","stage":3,"task":2,"step":30,"seconds":1.0}"#,
];

const SEQ_LOG: &[&str] = &[
    r#"{"type":"stage","stage":1,"task":0,"step":10,"seconds":1.0}"#,
    r#"{"type":"sharpness_probe","stage":1,"step":10,"rho":0.05,"records":8,"loss":1.2,"perturbed_loss":1.25,"sharpness":0.05,"grad_norm":2.0}"#,
    r#"{"type":"sharpness","step":5,"loss":1.0,"grad_norm":1.0,"psi":0.1,"alpha":0.3}"#,
    r#"{"type":"sharpness","step":15,"loss":1.0,"grad_norm":1.0,"psi":null,"alpha":0.5}"#,
    r#"{"type":"sharpness","step":20,"loss":1.0,"grad_norm":1.0,"psi":null,"alpha":null}"#,
    r#"{"type":"stage","stage":2,"task":1,"step":20,"seconds":1.0}"#,
    r#"{"type":"sharpness_probe","stage":2,"step":20,"rho":0.05,"records":8,"loss":1.0,"perturbed_loss":1.07,"sharpness":0.07,"grad_norm":2.0}"#,
    "",
    r#"{"type":"stage","stage":3,"task":2,"step":30,"seconds":1.0}"#,
];

fn specs() -> Vec<Spec> {
    vec![
        Spec {
            method: "mssr",
            seed: 0,
            budget: Some(128),
            rows: [
                [0.1, 0.2, 0.3],
                [0.8, 0.2, 0.3],
                [0.7, 0.8, 0.3],
                [0.5, 0.6, 0.9],
            ],
            metrics: (0.5, -0.1, 0.2, 0.01, Some(0.02)),
            replayed: 100,
            wall: 10.0,
            log: MSSR_LOG,
        },
        Spec {
            method: "mssr",
            seed: 1,
            budget: Some(128),
            rows: [
                [0.1, 0.2, 0.3],
                [0.9, 0.25, 0.3],
                [0.8, 0.85, 0.35],
                [0.6, 0.7, 0.8],
            ],
            metrics: (0.7, -0.3, 0.1, 0.03, Some(0.04)),
            replayed: 120,
            wall: 12.0,
            log: MSSR_LOG,
        },
        Spec {
            method: "seq",
            seed: 0,
            budget: None,
            rows: [
                [0.1, 0.2, 0.3],
                [0.7, 0.2, 0.3],
                [0.4, 0.7, 0.3],
                [0.3, 0.3, 0.6],
            ],
            metrics: (0.4, -0.4, 0.4, 0.0, None),
            replayed: 0,
            wall: 8.0,
            log: SEQ_LOG,
        },
        Spec {
            method: "seq",
            seed: 1,
            budget: None,
            rows: [
                [0.1, 0.2, 0.3],
                [0.6, 0.2, 0.3],
                [0.3, 0.6, 0.3],
                [0.1, 0.2, 0.3],
            ],
            metrics: (0.2, -0.5, 0.5, 0.02, None),
            replayed: 0,
            wall: 9.0,
            log: SEQ_LOG,
        },
    ]
}

/// Edits `root/smoke/<method>/<seed>/<file>` (a JSON file written by [`write_tree`]) in place.
pub(crate) fn edit_json(
    root: &Path,
    method: &str,
    seed: u64,
    file: &str,
    edit: impl FnOnce(&mut Value),
) {
    let path = root
        .join("smoke")
        .join(method)
        .join(seed.to_string())
        .join(file);
    let mut v: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v);
    write_json(&path, &v);
}

/// Two `landscape` lines (1-D slices after stages 1 and 2, 5 points each) for a `log.jsonl`.
pub(crate) const LANDSCAPE_LINES: [&str; 2] = [
    r#"{"type":"landscape","stage":1,"step":10,"a":[-1.0,-0.5,0.0,0.5,1.0],"b":[0.0],"losses":[[2.5],[1.6],[1.2],[1.7],[2.9]],"seed":0,"records":8}"#,
    r#"{"type":"landscape","stage":2,"step":20,"a":[-1.0,-0.5,0.0,0.5,1.0],"b":[0.0],"losses":[[2.1],[1.3],[1.0],[1.4],[null]],"seed":0,"records":8}"#,
];

/// Writes the tree under `root` (`root/smoke/<method>/<seed>/…` and `root/smoke/index.jsonl`).
pub(crate) fn write_tree(root: &Path) {
    for s in specs() {
        let dir = root.join("smoke").join(s.method).join(s.seed.to_string());
        let scheduler = if s.method == "seq" { "none" } else { "mssr" };
        // Seed 1 uses xtask's key names for provenance; seed 0 the documented ones.
        let provenance = if s.seed == 0 {
            json!({"git_rev": "0123456789abcdef", "git_dirty": false, "crate_version": "0.1.0",
                   "burn": "0.22.1", "date": "2025-05-01"})
        } else {
            json!({"git_revision": "0123456789abcdef", "git_dirty": false, "workspace_version": "0.1.0",
                   "burn": "0.22.1", "date": "2025-05-02"})
        };
        write_json(
            &dir.join("run.json"),
            &json!({"suite": "smoke", "method": s.method, "seed": s.seed, "status": "complete",
                    "method_config": {"name": s.method, "replay": {"scheduler": {"kind": scheduler}}},
                    "suite_spec": {}, "model": "tiny-random",
                    "device": "cpu", "replay_budget": s.budget, "provenance": provenance,
                    "training": {"replay_pacing": "even"},
                    "tasks": TASKS, "probes": ["probe-x"]}),
        );
        write_json(
            &dir.join("matrix.json"),
            &json!({"tasks": TASKS, "probes": ["probe-x"], "rows": s.rows,
                    "probe_rows": [[0.5], [0.49], [0.48], [0.47]]}),
        );
        let (aa, bwt, f, fwt, gf) = s.metrics;
        write_json(
            &dir.join("metrics.json"),
            &json!({"aa": aa, "bwt": bwt, "forgetting": f, "fwt": fwt, "ans": 0.8, "general_forgetting": gf,
                    "cost": {"wall_seconds": s.wall, "optimizer_steps": 60, "forward_passes": 130,
                             "backward_passes": 60, "tokens": 51234, "replayed_samples": s.replayed,
                             "probe_forwards": 0, "strategy_eval_examples": 0, "eval_examples": 48,
                             "train_seconds": s.wall - 2.0, "eval_seconds": 2.0, "this_process_seconds": s.wall},
                    "replay_budget": s.budget}),
        );
        fs::write(dir.join("log.jsonl"), s.log.join("\n") + "\n").unwrap();
    }
    let running = root.join("smoke/seq/2");
    write_json(
        &running.join("run.json"),
        &json!({"suite": "smoke", "method": "seq", "seed": 2, "status": "running", "tasks": TASKS,
                "probes": ["probe-x"], "replay_budget": null, "provenance": {}}),
    );
    fs::write(root.join("smoke/index.jsonl"), "{}\n").unwrap();
}
