//! `cargo xtask rescore`: the saved adapters of finished runs, scored again, give the runs' own
//! last-row scores when asked for the same records, the bare backbone gives row 0, and a
//! second call skips what the result file holds.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn xtask(args: &[&str], out: &Path) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(root())
        .args(args)
        .arg(out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{args:?}: {stderr}");
    stderr
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

#[test]
fn rescoring_on_the_runs_own_records_reproduces_rows_0_and_t_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    // LoRA runs (the smoke suite trains the full model otherwise): they save an adapter. That
    // rescoring is not comparing two untouched models is checked in the continual crate's tests.
    xtask(
        &[
            "suite",
            "--suite",
            "smoke",
            "--methods",
            "sequential",
            "--seeds",
            "2",
            "--device",
            "cpu",
            "--log-level",
            "warn",
            "--set",
            "mode=\"lora\"",
            "--set",
            "eval_limit=4",
            "--out",
        ],
        dir.path(),
    );
    let rescore = [
        "rescore",
        "--suite",
        "smoke",
        "--task",
        "map-a",
        "--limit",
        "4",
        "--device",
        "cpu",
        "--results",
    ];
    xtask(&rescore, dir.path());
    let file = json(&dir.path().join("smoke/rescore/map-a-4.json"));
    let runs = file["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        let matrix = json(&Path::new(run["dir"].as_str().unwrap()).join("matrix.json"));
        let rows = matrix["rows"].as_array().unwrap();
        // map-a is task 0; the random backbone is per seed.
        assert_eq!(run["score"], rows.last().unwrap()[0], "{run}");
        assert_eq!(run["score"], run["run_row_t_score"]);
        let base = &file["bases"][run["base"].as_str().unwrap()];
        assert_eq!(base["score"], rows[0][0], "{run}");
        assert_eq!(run["per_record"].as_array().unwrap().len(), 4);
        let forgetting = base["score"].as_f64().unwrap() - run["score"].as_f64().unwrap();
        assert!((run["forgetting"].as_f64().unwrap() - forgetting).abs() < 1e-12);
    }
    assert_eq!(file["summary"]["sequential"]["n"], 2);
    assert_eq!(
        file["provenance"]["burn"], "0.22.1",
        "the file records where it came from"
    );
    let again = xtask(&rescore, dir.path());
    assert_eq!(
        again.matches("scored already, skipped").count(),
        2,
        "{again}"
    );

    // The loss on a corpus: the same text for every run, the increase over the backbone's.
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("corpus")).unwrap();
    let lines: Vec<String> = (0..5)
        .map(|i| format!("{{\"text\": \"passage {i}: map the letters a to b and c to d\"}}"))
        .collect();
    std::fs::write(data.path().join("corpus/held-out.jsonl"), lines.join("\n")).unwrap();
    let data_dir = data.path().to_str().unwrap();
    xtask(
        &[
            "rescore",
            "--suite",
            "smoke",
            "--corpus",
            "held-out",
            "--limit",
            "3",
            "--device",
            "cpu",
            "--data-dir",
            data_dir,
            "--results",
        ],
        dir.path(),
    );
    let file = json(&dir.path().join("smoke/rescore/corpus-held-out-3.json"));
    for run in file["runs"].as_array().unwrap() {
        let base = file["bases"][run["base"].as_str().unwrap()]["score"]
            .as_f64()
            .unwrap();
        let nll = run["score"].as_f64().unwrap();
        assert_eq!(
            run["per_record"].as_array().unwrap().len(),
            3,
            "the first --limit passages"
        );
        assert!(
            nll > 0.0 && (run["forgetting"].as_f64().unwrap() - (nll - base)).abs() < 1e-12,
            "{run}"
        );
        // Training moved the weights: the loss on the same text changed.
        assert_ne!(nll, base, "{run}");
    }
}
