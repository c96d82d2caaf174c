//! Rescored runs: `results/<suite>/rescore/*.json`, written by `cargo xtask rescore` (format in
//! `docs/results-format.md`). Each file scores the runs' final adapters and the bare backbone
//! on more records of one task, or on held-out text, so that ↓F-like measures rest on more than
//! the runs' own `eval_limit` records.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ReportError;
use crate::stats::{Stat, fmt_stat, mean_std};

/// One rescore file.
#[derive(Debug, Clone, PartialEq)]
pub struct Rescore {
    /// The file.
    pub path: PathBuf,
    /// Suite name (the directory above `rescore/`).
    pub suite: String,
    /// What was scored: `<task>-<limit>` or `corpus-<name>-<limit>` (the file stem).
    pub label: String,
    /// How the file defines forgetting (`score[0] - score[T]`, or the increase of a loss).
    pub definition: String,
    /// Records or passages scored.
    pub records: usize,
    /// The backbone's score(s) (one per backbone; a random model has one per seed).
    pub bases: Vec<f64>,
    /// Per run: method, seed, final score, forgetting.
    pub runs: Vec<RescoredRun>,
    /// The task or probe scored (`task` of the file; `None` for a corpus or an older file).
    pub task: Option<String>,
    /// The corpus scored (`corpus` of the file; `None` for a task).
    pub corpus: Option<String>,
    /// Each backbone by name (the keys of the file's `bases`; a run's `base` names its own):
    /// its score and every record's score.
    pub backbones: BTreeMap<String, Backbone>,
}

/// A backbone's entry in a rescore file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Backbone {
    /// Its score without an adapter (row 0).
    pub score: f64,
    /// Every record's (or passage's) score, in the order of every run's `per_record`.
    #[serde(default)]
    pub per_record: Vec<f64>,
}

/// One run's entry in a rescore file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RescoredRun {
    /// Method name.
    pub method: String,
    /// Seed.
    pub seed: u64,
    /// Score with the run's final adapter.
    pub score: f64,
    /// Its forgetting against the backbone, as the file defines it.
    pub forgetting: f64,
    /// The backbone it is measured against (a key of [`Rescore::backbones`]).
    #[serde(default)]
    pub base: Option<String>,
    /// Every record's (or passage's) score with the run's final adapter.
    #[serde(default)]
    pub per_record: Vec<f64>,
}

impl Rescore {
    /// Whether the file scores held-out text (`corpus-<name>-<limit>`: a loss, higher is
    /// worse) rather than a task's records.
    pub fn is_corpus(&self) -> bool {
        self.corpus.is_some() || self.label.starts_with("corpus-")
    }

    /// The backbone `run` is measured against: the one its `base` names, else the only one.
    pub fn backbone_of(&self, run: &RescoredRun) -> Option<&Backbone> {
        match &run.base {
            Some(name) => self.backbones.get(name),
            None if self.backbones.len() == 1 => self.backbones.values().next(),
            None => None,
        }
    }
}

#[derive(Deserialize)]
struct File {
    forgetting: String,
    records: Option<Records>,
    bases: BTreeMap<String, Backbone>,
    runs: Vec<RescoredRun>,
    #[serde(default)]
    task: Option<String>,
    #[serde(default)]
    corpus: Option<String>,
}

#[derive(Deserialize)]
struct Records {
    count: usize,
}

/// Reads every `results_dir/<suite>/rescore/*.json`, sorted by suite and label. A malformed
/// file is an error naming it.
pub fn load_rescores(results_dir: &Path) -> Result<Vec<Rescore>, ReportError> {
    let mut out = Vec::new();
    let Ok(suites) = std::fs::read_dir(results_dir) else {
        return Ok(out);
    };
    for suite in suites
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("rescore").is_dir())
    {
        let dir = suite.join("rescore");
        for path in std::fs::read_dir(&dir)
            .map_err(|e| ReportError::io(&dir, e))?
            .flatten()
            .map(|e| e.path())
        {
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|e| ReportError::io(&path, e))?;
            let f: File = serde_json::from_str(&text).map_err(|source| ReportError::Json {
                path: path.clone(),
                source,
            })?;
            out.push(Rescore {
                suite: suite
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                label: path
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                definition: f.forgetting,
                records: f.records.map_or(0, |r| r.count),
                bases: f.bases.values().map(|b| b.score).collect(),
                runs: f.runs,
                task: f.task,
                corpus: f.corpus,
                backbones: f.bases,
                path,
            });
        }
    }
    out.sort_by(|a, b| (&a.suite, &a.label).cmp(&(&b.suite, &b.label)));
    Ok(out)
}

impl Rescore {
    /// Per method (sorted by name): mean ± std over seeds of the final score and of the
    /// forgetting, and the number of runs.
    pub fn per_method(&self) -> Vec<(String, Option<Stat>, Option<Stat>)> {
        let mut methods: Vec<&str> = self.runs.iter().map(|r| r.method.as_str()).collect();
        methods.sort_unstable();
        methods.dedup();
        methods
            .into_iter()
            .map(|m| {
                let of = |f: fn(&RescoredRun) -> f64| {
                    mean_std(
                        &self
                            .runs
                            .iter()
                            .filter(|r| r.method == m)
                            .map(f)
                            .collect::<Vec<_>>(),
                    )
                };
                (m.to_string(), of(|r| r.score), of(|r| r.forgetting))
            })
            .collect()
    }

    fn caption(&self) -> String {
        let bases = self
            .bases
            .iter()
            .map(|b| format!("{b:.4}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{} records; backbone {bases}; forgetting = {}; positive: worse than the backbone",
            self.records, self.definition
        )
    }

    /// A Markdown section: a caption and one row per method.
    pub(crate) fn markdown(&self, out: &mut String) {
        let _ = writeln!(out, "### Rescored: {}\n\n{}.\n", self.label, self.caption());
        out.push_str("| method | score | forgetting | runs |\n|---|---:|---:|---:|\n");
        for (m, score, forgetting) in self.per_method() {
            let n = score.map_or(0, |s| s.n);
            let _ = writeln!(
                out,
                "| {m} | {} | {} | {n} |",
                fmt_stat(score, 4),
                fmt_stat(forgetting, 4)
            );
        }
        out.push('\n');
    }

    /// An HTML section with the same table.
    pub(crate) fn html(&self, h: &mut String) {
        use crate::svg::escape;
        let _ = writeln!(
            h,
            "<h3>Rescored: {}</h3>\n<p class=\"sub\">{}.</p>",
            escape(&self.label),
            escape(&self.caption())
        );
        h.push_str("<div class=\"scroll\"><table>\n<thead><tr><th>method</th><th>score</th><th>forgetting</th><th>runs</th></tr></thead>\n<tbody>\n");
        for (m, score, forgetting) in self.per_method() {
            let n = score.map_or(0, |s| s.n);
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{n}</td></tr>",
                escape(&m),
                fmt_stat(score, 4),
                fmt_stat(forgetting, 4)
            );
        }
        h.push_str("</tbody></table></div>\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rescore_file_is_summarised_per_method_with_sample_std() {
        let dir = tempfile::tempdir().unwrap();
        let rescore = dir.path().join("quick/rescore");
        std::fs::create_dir_all(&rescore).unwrap();
        let run = |m: &str, seed: u64, score: f64| serde_json::json!({"method": m, "seed": seed, "score": score, "forgetting": 0.5 - score, "per_record": []});
        let file = serde_json::json!({
            "forgetting": "score[0] - score[T]", "records": {"count": 4, "texts_sha256": "x"},
            "bases": {"model": {"score": 0.5, "per_record": []}},
            "runs": [run("b", 0, 0.25), run("a", 0, 0.5), run("a", 1, 0.75)],
        });
        std::fs::write(rescore.join("probe-4.json"), file.to_string()).unwrap();
        std::fs::write(rescore.join("notes.txt"), "not a rescore").unwrap();
        let all = load_rescores(dir.path()).unwrap();
        assert_eq!(all.len(), 1);
        let r = &all[0];
        assert_eq!(
            (
                r.suite.as_str(),
                r.label.as_str(),
                r.records,
                r.bases.clone()
            ),
            ("quick", "probe-4", 4, vec![0.5])
        );
        let per = r.per_method();
        assert_eq!(
            per.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        // a: scores 0.5, 0.75 → mean 0.625, std sqrt(2 · 0.125² / 1) = 0.1768; forgetting 0, −0.25.
        let (score, forgetting) = (per[0].1.unwrap(), per[0].2.unwrap());
        assert!(
            (score.mean - 0.625).abs() < 1e-12 && (score.std.unwrap() - 0.176_776_7).abs() < 1e-6
        );
        assert!((forgetting.mean + 0.125).abs() < 1e-12);
        let mut md = String::new();
        r.markdown(&mut md);
        assert!(
            md.contains("| a | 0.6250 ± 0.1768 | -0.1250 ± 0.1768 | 2 |"),
            "{md}"
        );
        assert!(md.contains("| b | 0.2500 ± – | 0.2500 ± – | 1 |"), "{md}");
    }

    #[test]
    fn a_malformed_rescore_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let rescore = dir.path().join("quick/rescore");
        std::fs::create_dir_all(&rescore).unwrap();
        std::fs::write(rescore.join("bad-4.json"), "{\"runs\": 3}").unwrap();
        let err = load_rescores(dir.path()).unwrap_err().to_string();
        assert!(err.contains("bad-4.json"), "{err}");
    }
}
