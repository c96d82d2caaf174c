//! Readers for every file format in the data directory, each returning [`Record`]s.
//!
//! Each loader reads one file (MMLU: one file or a folder of them). A malformed row is a
//! [`DataError`] naming the file, the row (JSONL/CSV line, or JSON array index) and the field;
//! loaders never panic on bad data.
//!
//! Prompt layouts chosen here (the data's own prompts are kept where the source has them):
//! - LLM-CL-Benchmark: `prompt` as given (it already holds the instruction and options).
//! - SuperNI: `"{Definition}\n\nInput: {input}"`; the first output is the answer, the others are
//!   extra references.
//! - GSM8K: the question; the answer is the whole solution (reasoning, then `#### n`).
//! - Multiple choice (ARC, MMLU, CommonsenseQA): the question, then one `"{label}. {text}"` line
//!   per option, then `"Answer:"`; the options are the labels (`A`..`E`, or ARC's `1`..`4`) and
//!   the answer is the correct label, so ranking and generation both compare short labels.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{DataError, Location, Result};
use crate::task::{Record, TaskKind};

/// Reads a whole file to a string.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))
}

/// Parses a whole file as one JSON value.
fn read_json(path: &Path) -> Result<Value> {
    let text = read_text(path)?;
    serde_json::from_str(&text).map_err(|e| DataError::Syntax {
        path: path.to_path_buf(),
        at: Location::Line(e.line()),
        message: e.to_string(),
    })
}

/// Parses a JSONL file: one value per non-blank line, each with its 1-based line number.
fn read_jsonl(path: &Path) -> Result<Vec<(usize, Value)>> {
    let text = read_text(path)?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v = serde_json::from_str(line).map_err(|e| DataError::Syntax {
            path: path.to_path_buf(),
            at: Location::Line(i + 1),
            message: e.to_string(),
        })?;
        rows.push((i + 1, v));
    }
    Ok(rows)
}

/// The elements of a top-level JSON array, or an error naming `field`.
fn json_array<'a>(path: &Path, v: &'a Value, field: &str) -> Result<&'a Vec<Value>> {
    v.as_array()
        .ok_or_else(|| DataError::field(path, Location::File, field, "expected a JSON array"))
}

/// One row of a file, with what is needed to name it in errors.
struct Row<'a> {
    path: &'a Path,
    at: Location,
    v: &'a Value,
}

impl<'a> Row<'a> {
    fn err(&self, field: &str, problem: impl Into<String>) -> DataError {
        DataError::field(self.path, self.at, field, problem)
    }

    /// The value at a dotted path (`question.stem`).
    fn get(&self, field: &str) -> Result<&'a Value> {
        let mut v = self.v;
        for key in field.split('.') {
            v = v
                .as_object()
                .ok_or_else(|| self.err(field, "expected an object"))?
                .get(key)
                .ok_or_else(|| self.err(field, "missing"))?;
        }
        Ok(v)
    }

    fn str(&self, field: &str) -> Result<&'a str> {
        self.get(field)?
            .as_str()
            .ok_or_else(|| self.err(field, "expected a string"))
    }

    /// A string that is not empty (nor only white space): an answer to train on and score
    /// against.
    fn answer(&self, field: &str) -> Result<&'a str> {
        let s = self.str(field)?;
        if s.trim().is_empty() {
            let what = if s.is_empty() {
                "empty"
            } else {
                "empty apart from white space"
            };
            return Err(self.err(
                field,
                format!("{what}: a record needs an answer to train on and to score against"),
            ));
        }
        Ok(s)
    }

    /// A string, or a non-empty array of strings (SuperNI outputs come in both shapes).
    fn str_or_strs(&self, field: &str) -> Result<Vec<String>> {
        match self.get(field)? {
            Value::String(s) => Ok(vec![s.clone()]),
            Value::Array(items) if !items.is_empty() => items
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| self.err(field, "expected an array of strings"))
                })
                .collect(),
            Value::Array(_) => Err(self.err(field, "empty array")),
            _ => Err(self.err(field, "expected a string or an array of strings")),
        }
    }

    fn strs(&self, field: &str) -> Result<Vec<String>> {
        let items = self
            .get(field)?
            .as_array()
            .ok_or_else(|| self.err(field, "expected an array of strings"))?;
        items
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| self.err(field, "expected an array of strings"))
            })
            .collect()
    }
}

/// Renders a multiple-choice prompt (see the module doc) and checks that `answer` is one of the
/// `labels`.
fn multiple_choice(
    row: &Row<'_>,
    header: Option<&str>,
    question: &str,
    labels: Vec<String>,
    texts: &[String],
    answer: &str,
    answer_field: &str,
) -> Result<Record> {
    if labels.len() != texts.len() || labels.is_empty() {
        return Err(row.err(
            "choices",
            format!("{} labels for {} option texts", labels.len(), texts.len()),
        ));
    }
    if !labels.iter().any(|l| l == answer) {
        return Err(row.err(
            answer_field,
            format!("`{answer}` is not one of the option labels {labels:?}"),
        ));
    }
    let mut prompt = String::new();
    if let Some(h) = header {
        prompt.push_str(h);
        prompt.push_str("\n\n");
    }
    prompt.push_str(question.trim());
    for (l, t) in labels.iter().zip(texts) {
        prompt.push_str(&format!("\n{l}. {t}"));
    }
    prompt.push_str("\nAnswer:");
    Ok(Record {
        prompt,
        answer: answer.to_string(),
        options: Some(labels),
        references: Vec::new(),
    })
}

/// The cloze form of a lettered multiple-choice record (as [`multiple_choice`] builds them):
/// the question alone, then `Answer:`, with the option texts as options and the gold text as
/// the answer. `None` when the prompt does not list the record's options as `\n<L>. text` lines
/// ending in `\nAnswer:`.
pub fn to_cloze(record: &Record) -> Option<Record> {
    let labels = record.options.as_ref()?;
    let gold = labels.iter().position(|l| *l == record.answer)?;
    let mut rest = record.prompt.strip_suffix("\nAnswer:")?;
    let mut texts = vec![String::new(); labels.len()];
    // The last option first: an option text may contain anything but the next marker.
    for (l, text) in labels.iter().zip(texts.iter_mut()).rev() {
        let at = rest.rfind(&format!("\n{l}. "))?;
        *text = rest[at + l.len() + 3..].to_string();
        rest = &rest[..at];
    }
    Some(Record {
        prompt: format!("{rest}\nAnswer:"),
        answer: texts[gold].clone(),
        options: Some(texts),
        references: Vec::new(),
    })
}

/// LLM-CL-Benchmark split file: a JSON array of `{"prompt", "answer"}`. An empty answer is an
/// error (Lima's `eval`/`test` splits have only empty answers: suites hold out Lima train
/// records instead).
pub fn load_llm_cl(path: &Path) -> Result<Vec<Record>> {
    let v = read_json(path)?;
    json_array(path, &v, "(top level)")?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let row = Row {
                path,
                at: Location::Index(i),
                v,
            };
            Ok(Record::new(row.str("prompt")?, row.answer("answer")?))
        })
        .collect()
}

/// The label set of an LLM-CL-Benchmark classification task: its `labels.json` (a JSON array of
/// strings) when present, else `None`.
pub fn load_llm_cl_labels(task_dir: &Path) -> Result<Option<Vec<String>>> {
    let path = task_dir.join("labels.json");
    if !path.exists() {
        return Ok(None);
    }
    let v = read_json(&path)?;
    json_array(&path, &v, "(top level)")?
        .iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_str().map(str::to_string).ok_or_else(|| {
                DataError::field(&path, Location::Index(i), "(label)", "expected a string")
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// A label set derived from training answers: the distinct answers in order of first
/// appearance. Used for classification tasks without `labels.json` (FOMC, C-STANCE: `A`/`B`/`C`),
/// whose train split of 500 records covers every label.
pub fn derive_labels(train: &[Record]) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    for r in train {
        if !labels.contains(&r.answer) {
            labels.push(r.answer.clone());
        }
    }
    labels
}

/// The kind of an LLM-CL-Benchmark task, from its folder name and (for classification) its
/// label set. Classification: the 15 standard tasks, FOMC, C-STANCE. Maths: NumGLUE-cm/-ds.
/// Multiple choice: ScienceQA (the answer is the letter then a rationale; the options are the
/// letters of its `Choices:` list and the letter is a reference). Open generation: Lima,
/// 20Minuten, MeetingBank, Py150 and any folder without `labels.json` not named here.
pub fn llm_cl_kind(task: &str, labels: Option<Vec<String>>, train: &[Record]) -> TaskKind {
    match (task, labels) {
        (_, Some(labels)) => TaskKind::Classification { labels },
        ("FOMC" | "C-STANCE", None) => TaskKind::Classification {
            labels: derive_labels(train),
        },
        ("NumGLUE-cm" | "NumGLUE-ds", None) => TaskKind::MathNumber,
        ("ScienceQA", None) => TaskKind::MultipleChoice,
        _ => TaskKind::OpenGeneration,
    }
}

/// Adds ScienceQA's option letters (lines `A. ...` after `Choices:`) and the answer's leading
/// letter as a reference, so multiple-choice scoring applies while the answer (letter and
/// rationale) stays the training target. Records whose prompt lists no choices are left as
/// they are.
pub fn add_scienceqa_options(records: &mut [Record]) {
    for r in records {
        let Some(choices) = r.prompt.split("Choices:").nth(1) else {
            continue;
        };
        let letters: Vec<String> = choices
            .lines()
            .filter_map(|l| {
                let mut chars = l.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), Some('.')) if c.is_ascii_uppercase() => Some(c.to_string()),
                    _ => None,
                }
            })
            .collect();
        if letters.is_empty() {
            continue;
        }
        let lead: String = r.answer.trim_start().chars().take(1).collect();
        if letters.contains(&lead) {
            r.references = vec![lead];
        }
        r.options = Some(letters);
    }
}

/// A SuperNI task file.
#[derive(Debug, Clone)]
pub struct SuperNiFile {
    /// The task definition (the instruction), joined when given as a list.
    pub definition: String,
    /// The positive examples (usable as few-shot demonstrations).
    pub positive_examples: Vec<Record>,
    /// The instances.
    pub instances: Vec<Record>,
}

/// SuperNI (Natural-Instructions) JSON: `Definition`, `Positive Examples`, `Instances` of
/// `{id, input, output}` where `output` is a string or a list (first = answer, rest =
/// references). Prompts are `"{Definition}\n\nInput: {input}"`.
pub fn load_superni(path: &Path) -> Result<SuperNiFile> {
    let v = read_json(path)?;
    let top = Row {
        path,
        at: Location::File,
        v: &v,
    };
    let definition = top.str_or_strs("Definition")?.join("\n");
    let to_record = |row: Row<'_>| -> Result<Record> {
        let input = row.str("input")?;
        let mut outputs = row.str_or_strs("output")?;
        let answer = outputs.remove(0);
        Ok(Record {
            prompt: format!("{definition}\n\nInput: {input}"),
            answer,
            options: None,
            references: outputs,
        })
    };
    let instances = json_array(path, top.get("Instances")?, "Instances")?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            to_record(Row {
                path,
                at: Location::Index(i),
                v,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let positive_examples = match v.get("Positive Examples") {
        Some(pe) => json_array(path, pe, "Positive Examples")?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                to_record(Row {
                    path,
                    at: Location::Index(i),
                    v,
                })
            })
            .collect::<Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    Ok(SuperNiFile {
        definition,
        positive_examples,
        instances,
    })
}

/// The kind of a SuperNI-15 task from its folder name (`task591_sciq_answer_generation`):
/// classification for sentiment140, SST-2 and emotion (labels derived from the train outputs),
/// short-answer QA for quoref, CommonsenseQA, SciQ, relation and outcome extraction, open
/// generation for the rest.
pub fn superni_kind(task: &str, train: &[Record]) -> TaskKind {
    let id = task.split('_').next().unwrap_or(task);
    match id {
        "task1687" | "task363" | "task875" => TaskKind::Classification {
            labels: derive_labels(train),
        },
        "task002" | "task073" | "task591" | "task1510" | "task181" => TaskKind::ShortAnswerQa,
        _ => TaskKind::OpenGeneration,
    }
}

/// GSM8K JSONL: `{"question", "answer"}`; the answer is the worked solution ending in `#### n`.
pub fn load_gsm8k(path: &Path) -> Result<Vec<Record>> {
    read_jsonl(path)?
        .iter()
        .map(|(line, v)| {
            let row = Row {
                path,
                at: Location::Line(*line),
                v,
            };
            let answer = row.str("answer")?;
            if !answer.contains("####") {
                return Err(row.err("answer", "no `#### ` final answer"));
            }
            Ok(Record::new(row.str("question")?, answer))
        })
        .collect()
}

fn arc_row(row: &Row<'_>) -> Result<Record> {
    let labels = row.strs("choices.label")?;
    let texts = row.strs("choices.text")?;
    let key = row.str("answerKey")?;
    multiple_choice(
        row,
        None,
        row.str("question")?,
        labels,
        &texts,
        key,
        "answerKey",
    )
}

/// ARC JSON (ARC-Easy here): a JSON array of HF `ai2_arc` rows
/// `{id, question, choices: {text, label}, answerKey}`.
pub fn load_arc_json(path: &Path) -> Result<Vec<Record>> {
    let v = read_json(path)?;
    json_array(path, &v, "(top level)")?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            arc_row(&Row {
                path,
                at: Location::Index(i),
                v,
            })
        })
        .collect()
}

/// ARC JSONL (ARC-Challenge here): one HF `ai2_arc` row per line; extra fields (`answer`,
/// `response`) are ignored.
pub fn load_arc_jsonl(path: &Path) -> Result<Vec<Record>> {
    read_jsonl(path)?
        .iter()
        .map(|(line, v)| {
            arc_row(&Row {
                path,
                at: Location::Line(*line),
                v,
            })
        })
        .collect()
}

const MMLU_HEADER: [&str; 6] = [
    "question", "choice0", "choice1", "choice2", "choice3", "answer",
];
const LETTERS: [&str; 5] = ["A", "B", "C", "D", "E"];

/// One MMLU CSV (`<subject>_{dev,test}.csv`, header
/// `question,choice0,choice1,choice2,choice3,answer`, answer = index 0-3). The prompt starts
/// with `"The following is a multiple choice question about {subject}."`, the subject taken
/// from the file name.
pub fn load_mmlu_csv(path: &Path) -> Result<Vec<Record>> {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let subject = stem
        .strip_suffix("_test")
        .or_else(|| stem.strip_suffix("_dev"))
        .or_else(|| stem.strip_suffix("_val"))
        .unwrap_or(stem)
        .replace('_', " ");
    let header = format!("The following is a multiple choice question about {subject}.");
    let syntax = |e: csv::Error| DataError::Syntax {
        path: path.to_path_buf(),
        at: e
            .position()
            .map_or(Location::File, |p| Location::Line(p.line() as usize)),
        message: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(file);
    let head = reader.headers().map_err(syntax)?.clone();
    if head.iter().collect::<Vec<_>>() != MMLU_HEADER {
        return Err(DataError::field(
            path,
            Location::Line(1),
            "(header)",
            format!(
                "expected {}, found {}",
                MMLU_HEADER.join(","),
                head.iter().collect::<Vec<_>>().join(",")
            ),
        ));
    }
    let mut out = Vec::new();
    for rec in reader.records() {
        let rec = rec.map_err(syntax)?;
        let at = Location::Line(rec.position().map_or(0, |p| p.line() as usize));
        let answer = rec.get(5).unwrap_or("").trim();
        let idx: usize = answer.parse().ok().filter(|i| *i < 4).ok_or_else(|| {
            DataError::field(
                path,
                at,
                "answer",
                format!("`{answer}` is not an index 0-3"),
            )
        })?;
        let texts: Vec<String> = (1..5)
            .map(|i| rec.get(i).unwrap_or("").to_string())
            .collect();
        let labels: Vec<String> = LETTERS[..4].iter().map(|s| s.to_string()).collect();
        let v = Value::Null;
        let row = Row { path, at, v: &v };
        out.push(multiple_choice(
            &row,
            Some(&header),
            rec.get(0).unwrap_or(""),
            labels,
            &texts,
            LETTERS[idx],
            "answer",
        )?);
    }
    Ok(out)
}

/// Every `*.csv` of an MMLU split folder (`mmlu/test`), in file-name order.
pub fn load_mmlu_dir(dir: &Path) -> Result<Vec<Record>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        out.extend(load_mmlu_csv(&f)?);
    }
    Ok(out)
}

/// CommonsenseQA JSONL (original AI2 format):
/// `{answerKey, question: {stem, choices: [{label, text}]}}`. The unlabelled test split fails
/// with a missing `answerKey` error.
pub fn load_commonsenseqa(path: &Path) -> Result<Vec<Record>> {
    read_jsonl(path)?
        .iter()
        .map(|(line, v)| {
            let row = Row {
                path,
                at: Location::Line(*line),
                v,
            };
            let key = row.str("answerKey")?;
            let stem = row.str("question.stem")?;
            let choices = row
                .get("question.choices")?
                .as_array()
                .ok_or_else(|| row.err("question.choices", "expected an array"))?;
            let mut labels = Vec::new();
            let mut texts = Vec::new();
            for c in choices {
                let crow = Row {
                    path,
                    at: row.at,
                    v: c,
                };
                labels.push(
                    crow.str("label")
                        .map_err(|_| row.err("question.choices.label", "missing or not a string"))?
                        .to_string(),
                );
                texts.push(
                    crow.str("text")
                        .map_err(|_| row.err("question.choices.text", "missing or not a string"))?
                        .to_string(),
                );
            }
            multiple_choice(&row, None, stem, labels, &texts, key, "answerKey")
        })
        .collect()
}

/// Corpus JSONL for approximate replay: `{"text": str}` per line, one passage each.
pub fn load_corpus(path: &Path) -> Result<Vec<String>> {
    read_jsonl(path)?
        .iter()
        .map(|(line, v)| {
            Row {
                path,
                at: Location::Line(*line),
                v,
            }
            .str("text")
            .map(str::to_string)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        (dir, path)
    }

    #[test]
    fn llm_cl_reads_prompt_and_answer() {
        let (_d, p) = file(
            "t.json",
            r#"[{"prompt":"p1","answer":"a1"},{"prompt":"p2","answer":"a2"}]"#,
        );
        let r = load_llm_cl(&p).unwrap();
        assert_eq!(r, vec![Record::new("p1", "a1"), Record::new("p2", "a2")]);
    }

    #[test]
    fn llm_cl_missing_answer_names_index_and_field() {
        let (_d, p) = file("t.json", r#"[{"prompt":"p","answer":"a"},{"prompt":"p"}]"#);
        let e = load_llm_cl(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("t.json, array index 1: field `answer`: missing"),
            "{e}"
        );
    }

    #[test]
    fn llm_cl_empty_answer_names_index_and_field() {
        let (_d, p) = file(
            "t.json",
            r#"[{"prompt":"p","answer":"a"},{"prompt":"q","answer":""}]"#,
        );
        let e = load_llm_cl(&p).unwrap_err().to_string();
        assert!(
            e.ends_with(
                "t.json, array index 1: field `answer`: empty: a record needs an answer to train \
                 on and to score against"
            ),
            "{e}"
        );
        let (_d, p) = file("t.json", r#"[{"prompt":"p","answer":" \n"}]"#);
        let e = load_llm_cl(&p).unwrap_err().to_string();
        assert!(
            e.contains("array index 0: field `answer`: empty apart from white space"),
            "{e}"
        );
    }

    #[test]
    fn invalid_json_reports_line() {
        let (_d, p) = file("t.json", "[\n{\"prompt\": }\n]");
        let e = load_llm_cl(&p).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Syntax {
                    at: Location::Line(2),
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn labels_are_derived_in_first_appearance_order() {
        let train = [
            Record::new("", "C"),
            Record::new("", "A"),
            Record::new("", "C"),
        ];
        assert_eq!(derive_labels(&train), ["C", "A"]);
    }

    #[test]
    fn scienceqa_gets_letter_options_and_reference() {
        let mut r = vec![Record::new(
            "Question:\nX?\n\nChoices:\nA. one\nB. two\n\nAnswer:",
            "B\nBecause.",
        )];
        add_scienceqa_options(&mut r);
        assert_eq!(r[0].options.as_deref().unwrap(), ["A", "B"]);
        assert_eq!(r[0].references, ["B"]);
    }

    #[test]
    fn superni_joins_definition_and_splits_outputs() {
        let (_d, p) = file(
            "s.json",
            r#"{"Definition":["Answer it."],"Positive Examples":[{"input":"i","output":"o","explanation":"e"}],
               "Instances":[{"id":"1","input":"Q?","output":["x","y"]},{"id":"2","input":"R?","output":"z"}]}"#,
        );
        let s = load_superni(&p).unwrap();
        assert_eq!(s.instances[0].prompt, "Answer it.\n\nInput: Q?");
        assert_eq!(s.instances[0].answer, "x");
        assert_eq!(s.instances[0].references, ["y"]);
        assert_eq!(s.instances[1].answer, "z");
        assert_eq!(s.positive_examples[0].answer, "o");
    }

    #[test]
    fn superni_bad_output_names_instance() {
        let (_d, p) = file(
            "s.json",
            r#"{"Definition":"d","Instances":[{"id":"1","input":"Q","output":3}]}"#,
        );
        let e = load_superni(&p).unwrap_err().to_string();
        assert!(e.contains("array index 0: field `output`"), "{e}");
    }

    #[test]
    fn gsm8k_error_names_line() {
        let (_d, p) = file(
            "g.jsonl",
            "{\"question\":\"q\",\"answer\":\"1+1=2\\n#### 2\"}\n\n{\"question\":\"q\"}\n",
        );
        let e = load_gsm8k(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("g.jsonl, line 3: field `answer`: missing"),
            "{e}"
        );
    }

    #[test]
    fn cloze_form_poses_the_question_alone_with_the_option_texts() {
        let (_d, p) = file(
            "a.json",
            r#"[{"id":"x","question":"Why is B.\nA. odd?","choices":{"text":["a b","b. c"],"label":["A","B"]},"answerKey":"B"}]"#,
        );
        let r = load_arc_json(&p).unwrap();
        let c = to_cloze(&r[0]).unwrap();
        assert_eq!(c.prompt, "Why is B.\nA. odd?\nAnswer:");
        assert_eq!(c.options, Some(vec!["a b".to_string(), "b. c".to_string()]));
        assert_eq!(c.answer, "b. c");
        assert_eq!(to_cloze(&Record::new("Why?\nA. a\nAnswer:", "A")), None);
    }

    #[test]
    fn arc_row_becomes_lettered_prompt() {
        let (_d, p) = file(
            "a.json",
            r#"[{"id":"x","question":"Why?","choices":{"text":["a","b"],"label":["A","B"]},"answerKey":"B"}]"#,
        );
        let r = load_arc_json(&p).unwrap();
        assert_eq!(r[0].prompt, "Why?\nA. a\nB. b\nAnswer:");
        assert_eq!(r[0].answer, "B");
        assert_eq!(r[0].options.as_deref().unwrap(), ["A", "B"]);
    }

    #[test]
    fn arc_answer_outside_labels_is_an_error() {
        let (_d, p) = file(
            "a.jsonl",
            r#"{"question":"Why?","choices":{"text":["a","b"],"label":["A","B"]},"answerKey":"C"}"#,
        );
        let e = load_arc_jsonl(&p).unwrap_err().to_string();
        assert!(e.contains("line 1: field `answerKey`"), "{e}");
    }

    #[test]
    fn mmlu_maps_index_to_letter_and_names_subject() {
        let (_d, p) = file(
            "high_school_physics_test.csv",
            "question,choice0,choice1,choice2,choice3,answer\n\"Q, with comma\",w,x,y,z,2\n",
        );
        let r = load_mmlu_csv(&p).unwrap();
        assert_eq!(
            r[0].prompt,
            "The following is a multiple choice question about high school physics.\n\n\
             Q, with comma\nA. w\nB. x\nC. y\nD. z\nAnswer:"
        );
        assert_eq!(r[0].answer, "C");
    }

    #[test]
    fn mmlu_bad_answer_names_line() {
        let (_d, p) = file(
            "x_dev.csv",
            "question,choice0,choice1,choice2,choice3,answer\nq,a,b,c,d,1\nq,a,b,c,d,7\n",
        );
        let e = load_mmlu_csv(&p).unwrap_err().to_string();
        assert!(e.contains("line 3: field `answer`"), "{e}");
    }

    #[test]
    fn commonsenseqa_without_answer_key_is_an_error() {
        let row = r#"{"question":{"stem":"S?","choices":[{"label":"A","text":"a"},{"label":"B","text":"b"}]}}"#;
        let (_d, p) = file("c.jsonl", row);
        let e = load_commonsenseqa(&p).unwrap_err().to_string();
        assert!(e.contains("line 1: field `answerKey`: missing"), "{e}");
    }

    #[test]
    fn commonsenseqa_reads_stem_and_choices() {
        let row = r#"{"answerKey":"A","question":{"stem":"S?","choices":[{"label":"A","text":"a"},{"label":"B","text":"b"}]}}"#;
        let (_d, p) = file("c.jsonl", row);
        let r = load_commonsenseqa(&p).unwrap();
        assert_eq!(r[0].prompt, "S?\nA. a\nB. b\nAnswer:");
    }

    #[test]
    fn corpus_reads_text_lines() {
        let (_d, p) = file("c.jsonl", "{\"text\":\"one\"}\n{\"text\":\"two\"}\n");
        assert_eq!(load_corpus(&p).unwrap(), ["one", "two"]);
        let (_d2, p2) = file("c.jsonl", "{\"text\":\"one\"}\n{\"txt\":\"two\"}\n");
        assert!(
            load_corpus(&p2)
                .unwrap_err()
                .to_string()
                .contains("line 2: field `text`")
        );
    }
}
