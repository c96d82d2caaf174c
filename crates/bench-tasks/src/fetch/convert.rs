//! Converters from Hub dataset rows to the files of the data-directory layout (see
//! [`RowFormat`] for each one's input and output).

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use super::rows::HubRow;
use super::{DatasetEntry, RowFormat};

/// What a converter produces.
pub(super) enum Output {
    /// One file's bytes.
    File(Vec<u8>),
    /// Files of a folder, by name.
    Folder(Vec<(String, Vec<u8>)>),
}

/// A malformed row: its index in the split, the field and the problem.
#[derive(Debug)]
pub(super) struct RowError {
    row: u64,
    field: String,
    problem: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "row {}: field `{}`: {}",
            self.row, self.field, self.problem
        )
    }
}

type Result<T> = std::result::Result<T, RowError>;

/// Typed access to a row's cells, with errors naming the row and the field.
struct Cells<'a>(&'a HubRow);

impl<'a> Cells<'a> {
    fn err(&self, field: &str, problem: impl Into<String>) -> RowError {
        RowError {
            row: self.0.idx,
            field: field.to_string(),
            problem: problem.into(),
        }
    }

    /// The value at a dotted path (`choices.text`).
    fn get(&self, field: &str) -> Result<&'a Value> {
        let mut keys = field.split('.');
        let first = keys.next().unwrap_or(field);
        if self.0.truncated.iter().any(|c| c == first) {
            return Err(self.err(field, "truncated by the dataset viewer (cell too large)"));
        }
        let mut v = self
            .0
            .cells
            .get(first)
            .ok_or_else(|| self.err(field, "missing"))?;
        for key in keys {
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

    fn strs(&self, field: &str) -> Result<Vec<&'a str>> {
        self.get(field)?
            .as_array()
            .ok_or_else(|| self.err(field, "expected an array of strings"))?
            .iter()
            .map(|x| {
                x.as_str()
                    .ok_or_else(|| self.err(field, "expected an array of strings"))
            })
            .collect()
    }

    /// `{label: [..], text: [..]}` under `field`, of equal lengths.
    fn labelled_choices(&self, field: &str) -> Result<(Vec<&'a str>, Vec<&'a str>)> {
        let labels = self.strs(&format!("{field}.label"))?;
        let texts = self.strs(&format!("{field}.text"))?;
        if labels.len() != texts.len() || labels.is_empty() {
            return Err(self.err(
                field,
                format!("{} labels for {} texts", labels.len(), texts.len()),
            ));
        }
        Ok((labels, texts))
    }
}

/// Converts `rows` of `entry`'s split by its format.
pub(super) fn convert(entry: &DatasetEntry, rows: &[HubRow]) -> Result<Output> {
    match entry.format {
        RowFormat::Gsm8kJsonl => jsonl(rows, gsm8k),
        RowFormat::ArcJsonArray => {
            let items = rows
                .iter()
                .map(|r| arc(&Cells(r)))
                .collect::<Result<Vec<_>>>()?;
            let mut out = to_bytes(rows, serde_json::to_vec_pretty(&items))?;
            out.push(b'\n');
            Ok(Output::File(out))
        }
        RowFormat::ArcJsonl => jsonl(rows, arc),
        RowFormat::CsqaJsonl => jsonl(rows, csqa),
        RowFormat::MmluCsv => mmlu(entry, rows),
        RowFormat::CorpusJsonl => corpus(rows),
    }
}

/// A serialisation failure (not expected for these plain structures), blamed on the first row.
fn to_bytes(rows: &[HubRow], r: serde_json::Result<Vec<u8>>) -> Result<Vec<u8>> {
    r.map_err(|e| RowError {
        row: rows.first().map_or(0, |r| r.idx),
        field: "(all)".to_string(),
        problem: format!("cannot serialise: {e}"),
    })
}

/// One JSON line per row.
fn jsonl<'a, T: Serialize>(
    rows: &'a [HubRow],
    f: impl Fn(&Cells<'a>) -> Result<T>,
) -> Result<Output> {
    let mut out = Vec::new();
    for r in rows {
        let c = Cells(r);
        let item = f(&c)?;
        let line = serde_json::to_vec(&item).map_err(|e| c.err("(row)", e.to_string()))?;
        out.extend_from_slice(&line);
        out.push(b'\n');
    }
    Ok(Output::File(out))
}

#[derive(Serialize)]
struct Gsm8k<'a> {
    question: &'a str,
    answer: &'a str,
}

fn gsm8k<'a>(c: &Cells<'a>) -> Result<Gsm8k<'a>> {
    Ok(Gsm8k {
        question: c.str("question")?,
        answer: c.str("answer")?,
    })
}

#[derive(Serialize)]
struct ArcChoices<'a> {
    text: Vec<&'a str>,
    label: Vec<&'a str>,
}

/// An `ai2_arc` row, keys in the Hub's order.
#[derive(Serialize)]
struct Arc<'a> {
    id: &'a str,
    question: &'a str,
    choices: ArcChoices<'a>,
    #[serde(rename = "answerKey")]
    answer_key: &'a str,
}

fn arc<'a>(c: &Cells<'a>) -> Result<Arc<'a>> {
    let (label, text) = c.labelled_choices("choices")?;
    Ok(Arc {
        id: c.str("id")?,
        question: c.str("question")?,
        choices: ArcChoices { text, label },
        answer_key: c.str("answerKey")?,
    })
}

#[derive(Serialize)]
struct CsqaChoice<'a> {
    label: &'a str,
    text: &'a str,
}

#[derive(Serialize)]
struct CsqaQuestion<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    question_concept: Option<&'a str>,
    choices: Vec<CsqaChoice<'a>>,
    stem: &'a str,
}

/// A CommonsenseQA row in the original AI2 JSONL shape (and key order).
#[derive(Serialize)]
struct Csqa<'a> {
    #[serde(rename = "answerKey", skip_serializing_if = "Option::is_none")]
    answer_key: Option<&'a str>,
    id: &'a str,
    question: CsqaQuestion<'a>,
}

fn csqa<'a>(c: &Cells<'a>) -> Result<Csqa<'a>> {
    let (labels, texts) = c.labelled_choices("choices")?;
    let key = c.str("answerKey")?;
    let question_concept = match c.0.cells.get("question_concept") {
        None | Some(Value::Null) => None,
        Some(_) => Some(c.str("question_concept")?),
    };
    Ok(Csqa {
        answer_key: (!key.is_empty()).then_some(key),
        id: c.str("id")?,
        question: CsqaQuestion {
            question_concept,
            choices: labels
                .into_iter()
                .zip(texts)
                .map(|(label, text)| CsqaChoice { label, text })
                .collect(),
            stem: c.str("question")?,
        },
    })
}

#[derive(Serialize)]
struct Text<'a> {
    text: &'a str,
}

fn corpus(rows: &[HubRow]) -> Result<Output> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for r in rows {
        let c = Cells(r);
        let text = c.str("text")?;
        if text.trim().is_empty() || !seen.insert(text) {
            continue;
        }
        let line = serde_json::to_vec(&Text { text }).map_err(|e| c.err("text", e.to_string()))?;
        out.extend_from_slice(&line);
        out.push(b'\n');
    }
    Ok(Output::File(out))
}

/// The layout's file-name suffix for an MMLU split: the split's name, `val` for `validation`.
fn mmlu_suffix(split: &str) -> &str {
    match split {
        "validation" => "val",
        s => s,
    }
}

fn mmlu(entry: &DatasetEntry, rows: &[HubRow]) -> Result<Output> {
    let mut by_subject: BTreeMap<&str, Vec<[String; 6]>> = BTreeMap::new();
    for r in rows {
        let c = Cells(r);
        let mut subject = c.str("subject")?;
        if subject.is_empty() && !matches!(entry.config.as_str(), "all" | "default") {
            subject = &entry.config;
        }
        if subject.is_empty()
            || !subject
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        {
            return Err(c.err(
                "subject",
                format!("`{subject}` is not a subject name (letters, digits, `_`)"),
            ));
        }
        let choices = c.strs("choices")?;
        if choices.len() != 4 {
            return Err(c.err(
                "choices",
                format!("expected 4 options, found {}", choices.len()),
            ));
        }
        let answer = c
            .get("answer")?
            .as_u64()
            .filter(|a| *a < 4)
            .ok_or_else(|| c.err("answer", "expected an option index 0-3"))?;
        by_subject.entry(subject).or_default().push([
            c.str("question")?.to_string(),
            choices[0].to_string(),
            choices[1].to_string(),
            choices[2].to_string(),
            choices[3].to_string(),
            answer.to_string(),
        ]);
    }
    let suffix = mmlu_suffix(&entry.split);
    let mut files = Vec::new();
    for (subject, records) in by_subject {
        let csv_err = |e: String| RowError {
            row: rows.first().map_or(0, |r| r.idx),
            field: "(csv)".to_string(),
            problem: format!("writing {subject}: {e}"),
        };
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "question", "choice0", "choice1", "choice2", "choice3", "answer",
        ])
        .map_err(|e| csv_err(e.to_string()))?;
        for rec in &records {
            w.write_record(rec).map_err(|e| csv_err(e.to_string()))?;
        }
        let bytes = w.into_inner().map_err(|e| csv_err(e.to_string()))?;
        files.push((format!("{subject}_{suffix}.csv"), bytes));
    }
    Ok(Output::Folder(files))
}
