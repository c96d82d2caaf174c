//! Loads every suite of `experiments/suites/` from the real data directory and checks the counts
//! against `../shared/data/README.md`.
//!
//! The data directory is `CONTINUAL_DATA_DIR` when set, else `../shared/data` beside the
//! repository (`CARGO_MANIFEST_DIR/../../../shared/data`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use bench_tasks::suite::{Source, SuiteSpec};
use bench_tasks::{ByteTokenizer, FormatConfig, Formatter, Metric, Suite, Task, TaskKind};
use chat_template::{ChatConfig, ChatTemplate};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CONTINUAL_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/data"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: no data directory at {}", dir.display());
        None
    }
}

fn suite_path(name: &str) -> PathBuf {
    repo_root()
        .join("experiments/suites")
        .join(format!("{name}.toml"))
}

/// Source split sizes from the data README (name of source, split) → records.
fn readme_count(source: &str, split: &str) -> usize {
    match (source, split) {
        ("gsm8k", "train") => 7473,
        ("gsm8k", "test") => 1319,
        ("arc-easy", "train") => 2251,
        ("arc-easy", "validation") => 570,
        ("arc-easy", "test") => 2376,
        ("arc-challenge", "train") => 1056,
        ("arc-challenge", "test") => 1172,
        ("mmlu", "dev") => 285,
        ("mmlu", "test") => 14042,
        ("commonsenseqa", "train") => 9741,
        ("commonsenseqa", "valid") => 1221,
        ("llm-cl/CB", "train") => 250,
        ("llm-cl/CB", "test") => 56,
        ("llm-cl/COPA", "train") => 400,
        ("llm-cl/NumGLUE-cm", "test") => 81,
        ("llm-cl/Lima", "train") => 1030,
        (s, "train") if s.starts_with("llm-cl/") => 500,
        (s, "test") if s.starts_with("llm-cl/") => 100,
        // "~1000 / 100 / 100 per task"; these two are exactly that.
        (
            "superni/task002_quoref_answer_generation" | "superni/task591_sciq_answer_generation",
            "train",
        ) => 1000,
        (
            "superni/task002_quoref_answer_generation" | "superni/task591_sciq_answer_generation",
            "test",
        ) => 100,
        other => panic!("no README count for {other:?}"),
    }
}

/// Checks every task's source counts against the README and its subsample sizes.
fn check(spec: &SuiteSpec, suite: &Suite, sizes: impl Fn(&Task) -> (usize, usize)) {
    for (task, is_probe) in suite
        .tasks
        .iter()
        .map(|t| (t, false))
        .chain(suite.probes.iter().map(|t| (t, true)))
    {
        let ts = spec
            .tasks
            .iter()
            .chain(&spec.probes)
            .find(|s| s.name == task.name)
            .unwrap();
        let source = Source::parse(&ts.source).unwrap();
        let train_split = ts
            .train_split
            .clone()
            .unwrap_or_else(|| source.default_train_split().into());
        let test_split = ts
            .test_split
            .clone()
            .unwrap_or_else(|| source.default_test_split().into());
        assert_eq!(
            task.source_counts.train,
            readme_count(&ts.source, &train_split),
            "{} train source",
            task.name
        );
        assert_eq!(
            task.source_counts.test,
            readme_count(&ts.source, &test_split),
            "{} test source",
            task.name
        );
        let want = if is_probe {
            (0, ts.test.unwrap())
        } else {
            sizes(task)
        };
        assert_eq!(
            (task.train.len(), task.test.len()),
            want,
            "{} subsample",
            task.name
        );
        if train_split == test_split {
            let train: HashSet<_> = task.train.iter().map(|r| (&r.prompt, &r.answer)).collect();
            assert!(
                task.test
                    .iter()
                    .all(|r| !train.contains(&(&r.prompt, &r.answer))),
                "{} overlaps",
                task.name
            );
        }
        for r in task.train.iter().chain(&task.test) {
            assert!(!r.answer.trim().is_empty(), "{}: empty answer", task.name);
            if let Some(opts) = task.kind.options_of(r) {
                assert!(
                    bench_tasks::score::gold_option(r, opts).is_some(),
                    "{}: answer not an option",
                    task.name
                );
            }
        }
    }
}

#[test]
fn smoke_suite_needs_no_data_and_has_four_tasks() {
    let suite = Suite::load(&suite_path("smoke"), Path::new("/nonexistent")).unwrap();
    assert_eq!(suite.tasks.len(), 4);
    assert_eq!(suite.max_len, Some(64));
    // Every record fits the suite's max_len with a byte-level vocabulary, uncut.
    let config = FormatConfig {
        chat: ChatConfig::new(ChatTemplate::Plain),
        max_len: 64,
    };
    let formatter = Formatter::new(config, ByteTokenizer);
    for t in &suite.tasks {
        // 72 train records: 64 trained on, the last 8 held out as validation records.
        assert_eq!((t.train.len(), t.test.len()), (72, 32));
        for r in t.train.iter().chain(&t.test) {
            assert_eq!(
                formatter.encode(None, r).unwrap().truncated,
                0,
                "{}",
                r.prompt
            );
        }
    }
    // map-a and map-b give the same inputs different colours.
    let (a, b) = (&suite.tasks[0], &suite.tasks[2]);
    assert_eq!(a.kind, b.kind);
    let strip = |p: &str| p.split_once(' ').unwrap().1.to_string();
    for ra in &a.train {
        for rb in &b.train {
            if strip(&ra.prompt) == strip(&rb.prompt) {
                assert_ne!(ra.answer, rb.answer);
            }
        }
    }
}

#[test]
fn quick_suite_loads_11_tasks_of_64_and_32() {
    let Some(data) = data_dir() else { return };
    let path = suite_path("quick");
    let spec = SuiteSpec::from_path(&path).unwrap();
    let suite = Suite::load(&path, &data).unwrap();
    assert_eq!(suite.tasks.len(), 11);
    assert_eq!(suite.max_len, Some(192));
    check(&spec, &suite, |_| (64, 32));
    for t in &suite.tasks {
        assert!(
            t.train.iter().all(|r| r.answer.chars().count() <= 600),
            "{}",
            t.name
        );
    }
}

#[test]
fn power_suite_loads_5_tasks_of_200_and_48_with_cloze_options_and_families() {
    let Some(data) = data_dir() else { return };
    let path = suite_path("power");
    let spec = SuiteSpec::from_path(&path).unwrap();
    let suite = Suite::load(&path, &data).unwrap();
    let names: Vec<_> = suite.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["agnews", "sciq", "fomc", "numglue", "commonsenseqa"]
    );
    check(&spec, &suite, |_| (200, 48));
    // Every task names its family; the probe is not one of the stream's sources.
    let families: Vec<_> = spec.tasks.iter().map(|t| t.family.as_deref()).collect();
    assert_eq!(
        families,
        [
            Some("multiple_choice"),
            Some("generation"),
            Some("multiple_choice"),
            Some("reasoning"),
            Some("multiple_choice")
        ]
    );
    let probe = &suite.probes[0];
    assert!(spec.tasks.iter().all(|t| t.source != spec.probes[0].source));
    // Cloze: the options are the answer texts (not letters), and the prompt lists none of them.
    for t in [probe, &suite.tasks[4]] {
        assert_eq!(t.metric, Metric::RankAccuracyNorm, "{}", t.name);
        for r in t.train.iter().chain(&t.test) {
            let options = r.options.as_ref().unwrap();
            assert!(options.contains(&r.answer), "{}", t.name);
            assert!(
                options.iter().any(|o| o.chars().count() > 1),
                "{:?}",
                options
            );
            assert!(!r.prompt.contains("\nA. ") && r.prompt.ends_with("\nAnswer:"));
        }
    }
    assert_eq!(probe.test.len(), 256);
    // The reversed order is the same tasks backwards.
    let reversed = spec.load(&data, Some("reversed")).unwrap();
    let back: Vec<_> = reversed
        .tasks
        .iter()
        .rev()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(back, names);
}

#[test]
fn mssr11_suite_loads_in_methods_order() {
    let Some(data) = data_dir() else { return };
    let path = suite_path("mssr-11");
    let spec = SuiteSpec::from_path(&path).unwrap();
    let suite = Suite::load(&path, &data).unwrap();
    let names: Vec<_> = suite.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "lima",
            "gsm8k",
            "numglue",
            "mmlu",
            "quoref",
            "sciq",
            "boolq",
            "arc-easy",
            "agnews",
            "commonsenseqa",
            "fomc"
        ]
    );
    check(&spec, &suite, |_| (500, 100));
    let metric = |n: &str| suite.tasks.iter().find(|t| t.name == n).unwrap().metric;
    assert_eq!(metric("lima"), Metric::RougeL);
    assert_eq!(metric("gsm8k"), Metric::FinalNumber);
    assert_eq!(metric("quoref"), Metric::TokenF1);
    assert_eq!(metric("agnews"), Metric::GenAccuracy);
    assert_eq!(suite.replay_corpus, ["wikipedia", "openwebtext"]);
}

#[test]
fn long15_suite_loads_all_three_orders_with_full_splits() {
    let Some(data) = data_dir() else { return };
    let path = suite_path("long-15");
    let spec = SuiteSpec::from_path(&path).unwrap();
    let full = |t: &Task| match t.name.as_str() {
        "cb" => (250, 56),
        "mnli" => (500, 98), // two test records are labelled `-` (no majority) and dropped
        "copa" => (400, 100),
        _ => (500, 100),
    };
    let default = Suite::load(&path, &data).unwrap();
    assert_eq!(default.order.as_deref(), Some("order4"));
    check(&spec, &default, full);
    let first = |s: &Suite| s.tasks[0].name.clone();
    assert_eq!(first(&default), "mnli");
    let o5 = Suite::load_order(&path, &data, "order5").unwrap();
    let o6 = Suite::load_order(&path, &data, "order6").unwrap();
    assert_eq!(
        (first(&o5), first(&o6)),
        ("multirc".to_string(), "yelp".to_string())
    );
    for s in [&o5, &o6] {
        assert_eq!(s.tasks.len(), 15);
        // Same task, same records, whatever the order.
        let mnli = s.tasks.iter().find(|t| t.name == "mnli").unwrap();
        assert_eq!(mnli, &default.tasks[0]);
    }
    for t in &default.tasks {
        assert!(
            matches!(t.kind, TaskKind::Classification { .. }),
            "{}",
            t.name
        );
    }
}

#[test]
fn trace_suite_loads_the_seven_tasks_with_train_data() {
    let Some(data) = data_dir() else { return };
    let path = suite_path("trace");
    let spec = SuiteSpec::from_path(&path).unwrap();
    let suite = Suite::load(&path, &data).unwrap();
    assert_eq!(suite.tasks.len(), 7);
    check(&spec, &suite, |t| {
        if t.name == "numglue-cm" {
            (500, 81)
        } else {
            (500, 100)
        }
    });
    let sqa = suite.tasks.iter().find(|t| t.name == "scienceqa").unwrap();
    assert_eq!(sqa.kind, TaskKind::MultipleChoice);
}

#[test]
fn replay_corpora_have_readme_passage_counts() {
    let Some(data) = data_dir() else { return };
    assert_eq!(
        bench_tasks::load_corpus(&data, "openwebtext")
            .unwrap()
            .len(),
        10523
    );
    assert_eq!(
        bench_tasks::load_corpus(&data, "wikipedia").unwrap().len(),
        10815
    );
}

#[test]
fn every_llm_cl_and_superni_folder_loads() {
    let Some(data) = data_dir() else { return };
    for (group, splits) in [
        ("llm-cl-benchmark-500", ["train", "test"]),
        ("superni", ["train", "test"]),
    ] {
        for entry in std::fs::read_dir(data.join(group)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let source = Source::parse(&format!(
                "{}/{name}",
                if group == "superni" {
                    "superni"
                } else {
                    "llm-cl"
                }
            ))
            .unwrap();
            for split in splits {
                if name == "MeetingBank" && split == "train" {
                    continue; // no train split (README)
                }
                if name == "Lima" && split == "test" {
                    continue; // answers all empty (README): rejected, see below
                }
                let records = source.load_split(&data, split).unwrap();
                assert!(!records.is_empty(), "{group}/{name}/{split}");
            }
        }
    }
    // Lima's test split, whose answers are all empty, is rejected with a precise error.
    let e = Source::parse("llm-cl/Lima")
        .unwrap()
        .load_split(&data, "test")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Lima/test.json, array index 0: field `answer`: empty"),
        "{e}"
    );
    // The unlabelled CommonsenseQA test split is rejected with a precise error.
    let e = Source::CommonsenseQa
        .load_split(&data, "test")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("test.jsonl, line 1: field `answerKey`: missing"),
        "{e}"
    );
}
