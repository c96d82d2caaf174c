//! The command-line part of the bad-input corpus (`crates/bad-inputs/cli-cases.toml`): every
//! case runs `cargo xtask` (the built binary) and must exit with status 2, printing exactly one
//! line, `error: ...`, that contains each `expect` string, with no panic and no backtrace even
//! under `RUST_BACKTRACE=1`.
//!
//! `BAD_INPUTS_CASE=<substring>` runs only the matching cases; `BAD_INPUTS_VERBOSE=1` prints
//! every case's line (run with `--nocapture`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// One `[[case]]` of the file.
struct Case {
    name: String,
    args: Vec<String>,
    expect: Vec<String>,
    /// Run as user nobody when this test runs as root (root reads a mode-000 file).
    unprivileged: bool,
}

fn read_cases(text: &str) -> Vec<Case> {
    let table: toml::Table = toml::from_str(text).unwrap();
    let strings = |v: &toml::Value, key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .unwrap_or_else(|| panic!("{v}: `{key}` is not an array"))
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    table["case"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap().to_string(),
            args: strings(c, "args"),
            expect: strings(c, "expect"),
            unprivileged: c.get("unprivileged").and_then(|u| u.as_bool()) == Some(true),
        })
        .collect()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

/// Makes `dir` traversable by other users, so user nobody reaches the scratch files.
fn open_up(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn every_bad_command_line_is_one_clear_line_and_exit_status_2() {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("crates/bad-inputs/cli-cases.toml")).unwrap();
    let cases = read_cases(&text);
    let only = std::env::var("BAD_INPUTS_CASE").ok();
    let verbose = std::env::var("BAD_INPUTS_VERBOSE").is_ok();
    let tmp = tempfile::tempdir().unwrap();
    open_up(tmp.path());
    std::fs::write(tmp.path().join("a-file"), "not a model, not a directory\n").unwrap();
    let unreadable = tmp.path().join("unreadable.toml");
    std::fs::write(&unreadable, "name = 'x'\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let corpus = root.join("crates/bad-inputs/corpus");
    let subst = |a: &str| {
        a.replace("{corpus}", &corpus.display().to_string())
            .replace("{tmp}", &tmp.path().display().to_string())
    };
    let as_root = running_as_root();
    let has_setpriv = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in &cases {
        if only.as_deref().is_some_and(|o| !case.name.contains(o)) {
            continue;
        }
        let args: Vec<String> = case.args.iter().map(|a| subst(a)).collect();
        if case.unprivileged && as_root && !has_setpriv {
            println!(
                "{}: SKIPPED (root reads any file, and no setpriv to drop to nobody)",
                case.name
            );
            continue;
        }
        let mut cmd = if case.unprivileged && as_root {
            // The binary and the corpus are world-readable; /tmp/... is opened up above.
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(env!("CARGO_BIN_EXE_xtask"));
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_xtask"))
        };
        let out = cmd
            .args(&args)
            .current_dir(&root)
            .env("RUST_BACKTRACE", "1")
            .env("CONTINUAL_DATA_DIR", tmp.path())
            .env_remove("CONTINUAL_TEST_PAUSE")
            .output()
            .unwrap();
        ran += 1;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        // Progress lines of a suite that got as far as a run (`== smoke / sequential / seed 0
        // -> DIR`) come before the error; anything else counts.
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("== "))
            .collect();
        if verbose {
            println!("{}: {:?} {stderr}", case.name, out.status.code());
        }
        let mut problems = Vec::new();
        if out.status.code() != Some(2) {
            problems.push(format!("exit status {:?}, not 2", out.status.code()));
        }
        match lines.as_slice() {
            [one] if one.starts_with("error: ") => {
                let missing: Vec<&String> = case
                    .expect
                    .iter()
                    .filter(|e| !one.contains(e.as_str()))
                    .collect();
                if !missing.is_empty() {
                    problems.push(format!("the line lacks {missing:?}"));
                }
            }
            _ => problems.push(format!(
                "{} lines on stderr, not one `error: ` line",
                lines.len()
            )),
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{} ({}): {}\n      stderr: {}",
                case.name,
                args.join(" "),
                problems.join("; "),
                stderr.trim_end().replace('\n', "\n              ")
            ));
        }
    }
    println!("bad command lines: {ran} run, {} failed", failures.len());
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}
