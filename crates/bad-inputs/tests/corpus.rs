//! Runs the whole bad-input corpus (`corpus/<case>/case.toml`, see `README.md`).
//!
//! Every `valid-*` case must load. Every other case must end in `Err` whose message contains
//! each `expect` substring (the file and the place), without a panic (each case runs inside
//! `catch_unwind`), and no case may create, change or remove a file anywhere in the corpus.
//! A PEFT case must also leave the model without the adapter it failed to load.
//!
//! Cases marked `expect_panic_bug = true` are skipped and listed; cases with `gap = "..."` run,
//! must not panic, and are listed with what is still missing instead of failing the test.
//!
//! `BAD_INPUTS_CASE=<substring>` runs only the matching cases (the `valid-*` ones always run);
//! `BAD_INPUTS_RUN_PANIC_BUGS=1` runs the `expect_panic_bug` cases too, to see whether they
//! still panic (a case that aborts the process instead of panicking takes the test with it);
//! `BAD_INPUTS_VERBOSE=1` prints every case's outcome (run with `--nocapture`).

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use bench_tasks::loaders;
use burn::tensor::Device;
use serde::Deserialize;

/// One `case.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// Which loader to call (see [`run_case`]).
    kind: String,
    /// The file or directory handed to the loader, relative to the case directory.
    input: String,
    /// Substrings the error message must contain.
    #[serde(default)]
    expect: Vec<String>,
    /// A known-good input: it must load.
    #[serde(default)]
    valid: bool,
    /// The valid case this one differs from.
    based_on: Option<String>,
    /// What is wrong with the input.
    defect: String,
    /// A known weakness of the error (or its absence): printed, not failed.
    gap: Option<String>,
    /// The loader is known to panic on this input: skipped and printed.
    #[serde(default)]
    expect_panic_bug: bool,
    /// `peft`: the model directory the adapter is loaded onto, relative to the case.
    model: Option<String>,
    /// `train_settings`: the method file, relative to the case (absent: an empty method).
    method: Option<String>,
    /// `suite_load`: the data directory, relative to the case.
    data_dir: Option<String>,
    /// `format`: the formatter's `max_len`.
    max_len: Option<usize>,
}

/// What calling the loader gave: `Ok`, or the error's message; and problems beyond the message.
struct Outcome {
    result: Result<(), String>,
    problems: Vec<String>,
}

impl From<Result<(), String>> for Outcome {
    fn from(result: Result<(), String>) -> Self {
        Self {
            result,
            problems: Vec::new(),
        }
    }
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn ok<T>(_: T) {}

fn need<'a>(field: &'a Option<String>, name: &str, kind: &str) -> &'a str {
    field
        .as_deref()
        .unwrap_or_else(|| panic!("case.toml: kind `{kind}` needs `{name}`"))
}

/// Calls the loader the case names on its input.
fn run_case(case: &Case, dir: &Path) -> Outcome {
    let input = dir.join(&case.input);
    let device = Device::flex();
    match case.kind.as_str() {
        "model" => backbone::LoadedModel::load(&input, &device)
            .map(ok)
            .map_err(err)
            .into(),
        "peft" => {
            let base = dir.join(need(&case.model, "model", "peft"));
            let mut lm = match backbone::LoadedModel::load(&base, &device) {
                Ok(lm) => lm,
                Err(e) => {
                    return Outcome {
                        result: Ok(()),
                        problems: vec![format!(
                            "the base model {} does not load: {e}",
                            base.display()
                        )],
                    };
                }
            };
            let result = lora::load_peft(&mut lm.model, &input, "corpus", &device)
                .map(ok)
                .map_err(err);
            let mut problems = Vec::new();
            let left = lora::adapter_names(&lm.model);
            if result.is_err() && !left.is_empty() {
                problems.push(format!(
                    "the model still carries adapter(s) {left:?} after the error (half-applied)"
                ));
            }
            Outcome { result, problems }
        }
        "llm_cl" => loaders::load_llm_cl(&input).map(ok).map_err(err).into(),
        "gsm8k" => loaders::load_gsm8k(&input).map(ok).map_err(err).into(),
        "arc_json" => loaders::load_arc_json(&input).map(ok).map_err(err).into(),
        "arc_jsonl" => loaders::load_arc_jsonl(&input).map(ok).map_err(err).into(),
        "mmlu_csv" => loaders::load_mmlu_csv(&input).map(ok).map_err(err).into(),
        "commonsenseqa" => loaders::load_commonsenseqa(&input)
            .map(ok)
            .map_err(err)
            .into(),
        "superni" => loaders::load_superni(&input).map(ok).map_err(err).into(),
        "corpus" => loaders::load_corpus(&input).map(ok).map_err(err).into(),
        "labels" => loaders::load_llm_cl_labels(&input)
            .map(ok)
            .map_err(err)
            .into(),
        "suite_spec" => bench_tasks::SuiteSpec::from_path(&input)
            .map(ok)
            .map_err(err)
            .into(),
        "suite_load" => {
            let data = dir.join(need(&case.data_dir, "data_dir", "suite_load"));
            bench_tasks::Suite::load(&input, &data)
                .map(ok)
                .map_err(err)
                .into()
        }
        "format" => {
            let max_len = case
                .max_len
                .expect("case.toml: kind `format` needs `max_len`");
            let records = match loaders::load_llm_cl(&input) {
                Ok(r) => r,
                Err(e) => {
                    return Outcome {
                        result: Ok(()),
                        problems: vec![format!("the records do not load: {e}")],
                    };
                }
            };
            let config = bench_tasks::FormatConfig {
                max_len,
                ..Default::default()
            };
            let formatter = bench_tasks::Formatter::new(config, bench_tasks::ByteTokenizer);
            // As the engine encodes a task's records: an error names the origin and the record.
            let origin = input.display().to_string();
            formatter
                .encode_each(None, &origin, &records)
                .into_iter()
                .try_for_each(|r| r.map(ok))
                .map_err(err)
                .into()
        }
        "method" => continual::MethodConfig::from_path(&input)
            .map(ok)
            .map_err(err)
            .into(),
        "train_settings" => {
            let run = || -> Result<(), String> {
                let spec = bench_tasks::SuiteSpec::from_path(&input).map_err(err)?;
                let method = match &case.method {
                    Some(m) => continual::MethodConfig::from_path(&dir.join(m)).map_err(err)?,
                    None => continual::MethodConfig::from_toml_str("", Path::new("(empty method)"))
                        .map_err(err)?,
                };
                method
                    .train_settings(spec.training.as_ref(), &spec.path)
                    .map(ok)
                    .map_err(err)
            };
            run().into()
        }
        other => panic!("case.toml: unknown kind `{other}`"),
    }
}

/// Every file under `root` with its bytes.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                out.insert(p.clone(), Vec::new());
                walk(&p, out);
            } else {
                let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                out.insert(p, bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, &mut out);
    out
}

/// What differs between two snapshots, one line per path.
fn changes(before: &BTreeMap<PathBuf, Vec<u8>>, after: &BTreeMap<PathBuf, Vec<u8>>) -> Vec<String> {
    let mut out = Vec::new();
    for (p, b) in after {
        match before.get(p) {
            None => out.push(format!("created {}", p.display())),
            Some(a) if a != b => out.push(format!("changed {}", p.display())),
            _ => {}
        }
    }
    out.extend(
        before
            .keys()
            .filter(|p| !after.contains_key(*p))
            .map(|p| format!("removed {}", p.display())),
    );
    out
}

/// The names of the files and directories a case holds (its `case.toml` aside), and its own name.
fn path_components(dir: &Path, snap: &BTreeMap<PathBuf, Vec<u8>>) -> Vec<String> {
    let mut names = vec![dir.file_name().unwrap().to_string_lossy().into_owned()];
    for p in snap
        .keys()
        .filter(|p| p.starts_with(dir) && p.file_name().is_some_and(|n| n != "case.toml"))
    {
        names.push(p.file_name().unwrap().to_string_lossy().into_owned());
    }
    names
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".into())
}

fn one_line(s: &str) -> String {
    s.replace('\n', "\\n")
}

#[test]
fn every_bad_input_is_a_clear_error() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let only = std::env::var("BAD_INPUTS_CASE").ok();
    let run_panic_bugs = std::env::var("BAD_INPUTS_RUN_PANIC_BUGS").is_ok_and(|v| v == "1");
    let verbose = std::env::var("BAD_INPUTS_VERBOSE").is_ok_and(|v| v == "1");

    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut cases: Vec<(String, PathBuf, Case)> = dirs
        .into_iter()
        .map(|d| {
            let name = d.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(d.join("case.toml"))
                .unwrap_or_else(|e| panic!("{name}/case.toml: {e}"));
            let case: Case =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{name}/case.toml: {e}"));
            (name, d, case)
        })
        .collect();
    // The known-good inputs first: a bad case only means something if its valid twin loads.
    cases.sort_by_key(|(name, _, case)| (!case.valid, name.clone()));

    let valid: Vec<String> = cases
        .iter()
        .filter(|(_, _, c)| c.valid)
        .map(|(n, _, _)| n.clone())
        .collect();
    let bad_count = cases.len() - valid.len();
    assert!(
        bad_count >= 30,
        "the corpus has {bad_count} bad cases; it promises at least 30"
    );

    let original = snapshot(&root);
    let mut failures: Vec<String> = Vec::new();
    let mut gaps: Vec<String> = Vec::new();
    let mut panic_bugs: Vec<String> = Vec::new();
    let mut passed = 0usize;

    // Panics are caught and reported per case; the default hook would print each one.
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));

    for (name, dir, case) in &cases {
        if !case.valid && only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        // The case file itself must be coherent.
        match &case.based_on {
            Some(b) if !valid.contains(b) => {
                failures.push(format!("{name}: based_on `{b}` is not a valid case"))
            }
            None if !case.valid => failures.push(format!(
                "{name}: a bad case needs `based_on` (its valid twin)"
            )),
            _ => {}
        }
        if !case.valid {
            let names = path_components(dir, &original);
            if !case
                .expect
                .iter()
                .any(|e| names.iter().any(|n| e.contains(n.as_str())))
            {
                failures.push(format!(
                    "{name}: no `expect` entry names a file or directory of the case ({names:?}): {:?}",
                    case.expect
                ));
            }
            if case.gap.is_none() && !case.expect_panic_bug && case.expect.len() < 2 {
                failures.push(format!(
                    "{name}: `expect` must name the file and the place: {:?}",
                    case.expect
                ));
            }
        }
        if case.expect_panic_bug && !run_panic_bugs {
            panic_bugs.push(format!("{name} [{}]: {} (skipped)", case.kind, case.defect));
            continue;
        }

        let before = snapshot(&root);
        let caught = panic::catch_unwind(AssertUnwindSafe(|| run_case(case, dir)));
        let after = snapshot(&root);
        let written = changes(&before, &after);
        if !written.is_empty() {
            failures.push(format!(
                "{name}: loading changed the corpus: {}",
                written.join("; ")
            ));
        }

        let outcome = match caught {
            Ok(o) => o,
            Err(payload) => {
                let msg = panic_message(payload.as_ref());
                if case.expect_panic_bug {
                    panic_bugs.push(format!(
                        "{name} [{}]: {} -> still panics: {}",
                        case.kind,
                        case.defect,
                        one_line(&msg)
                    ));
                } else {
                    failures.push(format!(
                        "{name} [{}]: PANIC instead of an error: {}",
                        case.kind,
                        one_line(&msg)
                    ));
                }
                continue;
            }
        };
        if case.expect_panic_bug {
            let got = match &outcome.result {
                Ok(()) => "loads".to_string(),
                Err(m) => format!("error: {}", one_line(m)),
            };
            panic_bugs.push(format!(
                "{name}: no longer panics ({got}); clear `expect_panic_bug`"
            ));
            continue;
        }

        if verbose {
            match &outcome.result {
                Ok(()) => println!("{name}: Ok"),
                Err(m) => println!("{name}: {}", one_line(m)),
            }
        }
        let mut problems = outcome.problems;
        if case.valid {
            if let Err(m) = &outcome.result {
                problems.push(format!("the valid input does not load: {}", one_line(m)));
            }
        } else {
            match &outcome.result {
                Ok(()) => problems.push("loaded without an error".into()),
                Err(m) => {
                    let normalised = m.replace('\\', "/");
                    let missing: Vec<&String> = case
                        .expect
                        .iter()
                        .filter(|e| !normalised.contains(e.as_str()))
                        .collect();
                    if !missing.is_empty() {
                        problems.push(format!("the message lacks {missing:?}: {}", one_line(m)));
                    }
                }
            }
        }
        match (&case.gap, problems.is_empty()) {
            (None, true) => passed += 1,
            (None, false) => failures.push(format!("{name} [{}]: {}", case.kind, problems.join("; "))),
            (Some(gap), false) => gaps.push(format!("{name} [{}]: {gap}\n      -> {}", case.kind, problems.join("; "))),
            (Some(_), true) => gaps.push(format!(
                "{name}: the gap seems closed (every expectation holds); remove `gap` from its case.toml"
            )),
        }
    }

    panic::set_hook(default_hook);
    let end = snapshot(&root);
    let written = changes(&original, &end);
    if !written.is_empty() {
        failures.push(format!(
            "the corpus changed during the run: {}",
            written.join("; ")
        ));
    }

    println!(
        "bad-inputs corpus: {} cases ({} valid, {bad_count} bad); {passed} passed",
        cases.len(),
        valid.len()
    );
    if !gaps.is_empty() {
        println!("\nknown gaps ({}), not failures:", gaps.len());
        gaps.iter().for_each(|g| println!("  {g}"));
    }
    if !panic_bugs.is_empty() {
        println!("\nknown panic bugs ({}):", panic_bugs.len());
        panic_bugs.iter().for_each(|b| println!("  {b}"));
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

/// `cli-cases.toml`, the command-line part of the corpus, is run by
/// `xtask/tests/bad_inputs_cli.rs` (it needs the xtask binary); here: every case is complete,
/// names are unique, and every corpus input it names exists.
#[test]
fn the_command_line_cases_are_well_formed_and_their_corpus_inputs_exist() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(crate_dir.join("cli-cases.toml")).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    let cases = table["case"].as_array().unwrap();
    assert!(cases.len() >= 20, "{} cases", cases.len());
    let mut names = std::collections::BTreeSet::new();
    for c in cases {
        let name = c["name"].as_str().unwrap();
        assert!(names.insert(name), "{name}: given twice");
        let args = c["args"].as_array().unwrap();
        let expect = c["expect"].as_array().unwrap();
        assert!(
            !args.is_empty() && !expect.is_empty(),
            "{name}: args and expect"
        );
        for a in args {
            if let Some(rest) = a.as_str().unwrap().strip_prefix("{corpus}/") {
                assert!(
                    crate_dir.join("corpus").join(rest).exists(),
                    "{name}: {rest}"
                );
            }
        }
    }
}
