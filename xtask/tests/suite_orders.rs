//! `cargo xtask suite` and task orders: the suite's `default_order` runs without `--order`, a
//! named order with it (also in `--jobs` children), each in its own results directory with the
//! order in run.json; an unknown order is a one-line usage error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Two of the smoke suite's generated tasks, trained for one short epoch, with the orders `fwd`
/// (the `[[tasks]]` order) and `rev`, the default.
const SUITE: &str = r#"
name = "orders"
seed = 2024
max_len = 64
default_order = "rev"

[defaults]
train = 16
test = 8

[[tasks]]
name = "map-a"
source = "smoke"
generator = "label_map"

[[tasks]]
name = "add-a"
source = "smoke"
generator = "offset_add"
variant = 1

[orders]
fwd = ["map-a", "add-a"]
rev = ["add-a", "map-a"]

[training]
mode = "full"
epochs = 1
batch_size = 8
max_new_tokens = 6
eval_batch_size = 8
eval_limit = 4
buffer_per_task = 4
validation_records = 4
checkpoint_every = 16

[training.optim]
lr = 1e-2
"#;

fn suite(dir: &Path, extra: &[&str]) -> Output {
    let file = dir.join("orders.toml");
    std::fs::write(&file, SUITE).unwrap();
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(root())
        .args([
            "suite",
            "--methods",
            "sequential",
            "--seeds",
            "1",
            "--device",
            "cpu",
            "--model",
            "tiny-random",
            "--log-level",
            "warn",
        ])
        .arg("--suite")
        .arg(&file)
        .arg("--out")
        .arg(dir.join("results"))
        .args(extra)
        .output()
        .unwrap()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

#[test]
fn default_and_named_orders_run_in_their_order_into_their_own_directories() {
    let dir = tempfile::tempdir().unwrap();
    let out = suite(dir.path(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A named order through a --jobs child, as the children get the flag passed on.
    let out = suite(dir.path(), &["--order", "fwd", "--jobs", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results = dir.path().join("results");
    for (suite, order, tasks) in [
        ("orders", "rev", ["add-a", "map-a"]),
        ("orders@fwd", "fwd", ["map-a", "add-a"]),
    ] {
        let run = json(&results.join(suite).join("sequential/0/run.json"));
        assert_eq!(run["status"], "complete", "{suite}");
        assert_eq!(run["suite"], suite);
        assert_eq!(run["tasks"], serde_json::json!(tasks), "{suite}");
        assert_eq!(run["suite_spec"]["name"], "orders");
        assert_eq!(
            run["suite_spec"]["default_order"], order,
            "{suite}: the order used is recorded"
        );
        assert_eq!(
            json(&results.join(suite).join("sequential/0/matrix.json"))["tasks"],
            serde_json::json!(tasks)
        );
        let index = std::fs::read_to_string(results.join(suite).join("index.jsonl")).unwrap();
        let rows: Vec<serde_json::Value> = index
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 1, "{suite}: {index}");
        assert_eq!(rows[0]["suite"], suite);
    }
    // Naming the default order is the run already there.
    let again = suite(dir.path(), &["--order", "rev"]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        again.status.success() && stderr.contains("complete, skipped") && !stderr.contains("=="),
        "{stderr}"
    );
}

#[test]
fn an_unknown_order_is_one_line_naming_the_flag_and_the_known_orders_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = suite(dir.path(), &["--order", "order9", "--jobs", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let file = dir.path().join("orders.toml");
    assert_eq!(
        stderr,
        format!(
            "error: --order order9: no such order in {} (known: fwd, rev)\n",
            file.display()
        )
    );
    assert!(!dir.path().join("results").exists(), "nothing is written");
}

#[test]
fn the_slurm_launcher_writes_one_task_per_unfinished_run_of_every_order() {
    let dir = tempfile::tempdir().unwrap();
    // The default order's seed 0 is finished before the array is written.
    let out = suite(dir.path(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(root())
        .args([
            "suite",
            "--methods",
            "sequential",
            "--seeds",
            "2",
            "--order",
            "rev,fwd",
        ])
        .args(["--launcher", "slurm", "--max-parallel", "3", "--suite"])
        .arg(dir.path().join("orders.toml"))
        .arg("--out")
        .arg(dir.path().join("results"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("sequential/0: complete, skipped"),
        "{stderr}"
    );
    let slurm = dir.path().join("results/slurm/orders");
    let tsv = std::fs::read_to_string(slurm.join("tasks.tsv")).unwrap();
    let method = root().join("experiments/methods/sequential.toml");
    let method = method.canonicalize().unwrap();
    let line = |seed: u64, order: &str| format!("{}\t{seed}\t{order}", method.display());
    assert_eq!(
        tsv.lines().collect::<Vec<_>>(),
        [line(1, "rev"), line(0, "fwd"), line(1, "fwd")]
    );
    let array = std::fs::read_to_string(slurm.join("array.sbatch")).unwrap();
    assert!(array.contains("\n#SBATCH --array=0-2%3\n"), "{array}");
    assert!(array.contains("\n#SBATCH --signal=B:USR1@120\n"), "{array}");
    // Nothing is submitted without --submit: no sbatch is needed to write the scripts.
    assert!(stderr.contains("submit with: sh "), "{stderr}");
}
